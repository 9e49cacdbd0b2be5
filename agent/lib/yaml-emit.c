#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "util.h"
#include "yaml-emit.h"

struct outbuf {
    char *data;
    size_t len, cap;
};

static int write_handler(void *data, unsigned char *buffer, size_t size)
{
    struct outbuf *b = data;

    if (b->len + size + 1 > b->cap) {
        b->cap = (b->len + size + 1) * 2;
        b->data = xrealloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, buffer, size);
    b->len += size;
    b->data[b->len] = '\0';
    return 1;
}

/* YAML 1.1's implicit booleans and nulls (PyYAML's resolvers), any case */
static const char *const special_words[] = {
    "y", "n", "yes", "no", "true", "false", "on", "off", "null", "~", NULL,
};

bool berth_yaml_plain_ok(const char *s)
{
    size_t n = strlen(s);

    if (!n || n > 200)
        return false;
    for (const char *const *w = special_words; *w; w++)
        if (!strcasecmp(s, *w))
            return false;
    /* a digit, sign or dot first could read as a number (ints, floats,
     * sexagesimals, .inf); YAML indicators first are syntax */
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '/' ||
          s[0] == '_'))
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("/_.-+=@:", c);
        if (!ok)
            return false;
    }
    /* "a:" would be a key; "::" is kept out for readers that split on it */
    return s[n - 1] != ':' && !strstr(s, "::");
}

static int emit(yaml_emitter_t *em, yaml_event_t *ev, berth_error *err)
{
    if (!yaml_emitter_emit(em, ev))
        return berth_error_set(err, EINVAL, "writing YAML: %s",
                               em->problem ? em->problem : "unknown libyaml error");
    return 0;
}

static int emit_scalar(yaml_emitter_t *em, const char *text, bool plain, berth_error *err)
{
    yaml_event_t ev;

    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text), plain,
                                 !plain,
                                 plain ? YAML_PLAIN_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
    return emit(em, &ev, err);
}

static int emit_node(yaml_emitter_t *em, json_t *j, berth_error *err)
{
    yaml_event_t ev;
    char num[64];

    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *v;
        yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
        if (emit(em, &ev, err) < 0)
            return -1;
        json_object_foreach(j, key,
                            v) if (emit_scalar(em, key, berth_yaml_plain_ok(key), err) < 0 ||
                                   emit_node(em, v, err) < 0) return -1;
        yaml_mapping_end_event_initialize(&ev);
        return emit(em, &ev, err);
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *v;
        /* lists of scalars read best on one line: command: [a, b] */
        bool flat = json_array_size(j) > 0;
        json_array_foreach(j, i, v) if (json_is_object(v) || json_is_array(v)) flat = false;
        yaml_sequence_start_event_initialize(
            &ev, NULL, NULL, 1, flat ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
        if (emit(em, &ev, err) < 0)
            return -1;
        json_array_foreach(j, i, v) if (emit_node(em, v, err) < 0) return -1;
        yaml_sequence_end_event_initialize(&ev);
        return emit(em, &ev, err);
    }
    case JSON_STRING:
        return emit_scalar(em, json_string_value(j), berth_yaml_plain_ok(json_string_value(j)),
                           err);
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        return emit_scalar(em, num, true, err);
    case JSON_REAL:
        snprintf(num, sizeof(num), "%.15g", json_real_value(j));
        return emit_scalar(em, num, true, err);
    case JSON_TRUE:
        return emit_scalar(em, "true", true, err);
    case JSON_FALSE:
        return emit_scalar(em, "false", true, err);
    case JSON_NULL:
        return emit_scalar(em, "null", true, err);
    }
    return berth_error_set(err, EINVAL, "writing YAML: unknown JSON type");
}

static int emit_stream(yaml_emitter_t *em, json_t *const *docs, size_t n, berth_error *err)
{
    yaml_event_t ev;

    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    if (emit(em, &ev, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, n == 1);
        if (emit(em, &ev, err) < 0 || emit_node(em, docs[i], err) < 0)
            return -1;
        yaml_document_end_event_initialize(&ev, 1);
        if (emit(em, &ev, err) < 0)
            return -1;
    }
    yaml_stream_end_event_initialize(&ev);
    if (emit(em, &ev, err) < 0)
        return -1;
    if (!yaml_emitter_flush(em))
        return berth_error_set(err, EIO, "writing YAML: flush failed");
    return 0;
}

int berth_yaml_emit(json_t *const *docs, size_t n, char **ret, berth_error *err)
{
    struct outbuf b = {0};
    yaml_emitter_t em;

    if (!yaml_emitter_initialize(&em))
        return berth_error_set(err, ENOMEM, "writing YAML: cannot initialise libyaml");
    yaml_emitter_set_output(&em, write_handler, &b);
    yaml_emitter_set_unicode(&em, 1);
    yaml_emitter_set_width(&em, -1);
    yaml_emitter_set_indent(&em, 2);
    int r = emit_stream(&em, docs, n, err);
    yaml_emitter_delete(&em);
    if (r < 0) {
        free(b.data);
        return -1;
    }
    *ret = b.data ? b.data : xstrdup("");
    return 0;
}
