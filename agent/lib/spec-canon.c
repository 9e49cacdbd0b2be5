/* Canonical form of a service: its JSON written straight from the typed
 * service with the keys in sorted order (canonical JSON, its sha256), and
 * read back with jansson to be flattened into (path, value) leaves for
 * field-by-field diffs, so that a stored spec.json and a freshly parsed
 * file flatten identically.
 *
 * Why a writer of its own rather than json_dumps(JSON_SORT_KEYS |
 * JSON_COMPACT): the bytes are hashed and stored, and jansson's differ
 * from the ones berth has always written wherever a string holds
 * \b, \f, \r (jansson: short escapes; here \u0008, \u000c, \u000d), an
 * escape with a hex letter (\u001B against \u001b) or DEL (jansson: the
 * raw byte; here \u007f): such a service would hash anew and be replaced
 * by an upgrade. And the writer runs for every service at every diff and
 * converge: for a service of bench/reconcile, a jansson tree dumped with
 * sorted keys costs about 124,000 instructions, writing the text directly
 * (some 600 bytes) about 10,000; their sha256 takes 0.7 us here.
 * tests/unit/test-canon.c holds specs written before, byte for byte.
 */
#include <jansson.h>
#include <nettle/sha2.h>
#include <string.h>

#include "spec.h"
#include "util.h"

struct buf {
    char *s;
    size_t len, cap;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = 2 * (b->len + n + 1) + 256;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void buf_puts(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

/* A string as JSON: \" \\ \n \t short, every other control character and
 * DEL as \u00xx, everything else (UTF-8 included) as it is. */
static void put_str(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *run = s;

    if (!s) {
        buf_add(b, "null", 4);
        return;
    }
    buf_add(b, "\"", 1);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char esc[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
        if (ch >= 0x20 && ch != '"' && ch != '\\' && ch != 0x7f)
            continue;
        buf_add(b, run, (size_t)(s - run));
        run = s + 1;
        if (ch == '"' || ch == '\\' || ch == '\n' || ch == '\t') {
            esc[1] = ch == '\n' ? 'n' : ch == '\t' ? 't' : (char)ch;
            buf_add(b, esc, 2);
        } else
            buf_add(b, esc, 6);
    }
    buf_add(b, run, (size_t)(s - run));
    buf_add(b, "\"", 1);
}

static void put_u64(struct buf *b, uint64_t u)
{
    char d[20];
    size_t i = sizeof(d);

    do
        d[--i] = (char)('0' + u % 10);
    while (u /= 10);
    buf_add(b, d + i, sizeof(d) - i);
}

/* 0 means "not set" for limits and a tmpfs size */
static void put_u64_or_null(struct buf *b, uint64_t u)
{
    if (u)
        put_u64(b, u);
    else
        buf_add(b, "null", 4);
}

static void put_bool(struct buf *b, bool v)
{
    if (v)
        buf_add(b, "true", 4);
    else
        buf_add(b, "false", 5);
}

static void put_strv(struct buf *b, char *const *v, size_t n)
{
    buf_add(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_add(b, ",", 1);
        put_str(b, v[i]);
    }
    buf_add(b, "]", 1);
}

static const char *const format_names[] = {"auto", "rootfs", "oci", "docker"};
static const char *const restart_names[] = {"always", "on-failure", "never"};
static const char *const network_names[] = {"host", "none"};

static void put_image(struct buf *b, const struct berth_image_spec *img)
{
    buf_puts(b, "{\"digest\":");
    put_str(b, img->digest);
    buf_puts(b, ",\"format\":");
    put_str(b, format_names[img->format]);
    buf_puts(b, ",\"mirrors\":");
    put_strv(b, img->mirrors, img->nmirrors);
    buf_puts(b, ",\"signature\":");
    if (img->signature_url) {
        buf_puts(b, "{\"public_key\":");
        put_str(b, img->signature_public_key);
        buf_puts(b, ",\"url\":");
        put_str(b, img->signature_url);
        buf_add(b, "}", 1);
    } else
        buf_add(b, "null", 4);
    buf_puts(b, ",\"url\":");
    put_str(b, img->url);
    buf_add(b, "}", 1);
}

static void put_mounts(struct buf *b, const struct berth_service *s)
{
    buf_add(b, "[", 1);
    for (size_t i = 0; i < s->nmounts; i++) {
        const struct berth_mount *m = &s->mounts[i];
        if (i)
            buf_add(b, ",", 1);
        if (m->tmpfs) {
            buf_puts(b, "{\"size\":");
            put_u64_or_null(b, m->size);
        } else {
            buf_puts(b, "{\"readonly\":");
            put_bool(b, m->readonly);
            buf_puts(b, ",\"source\":");
            put_str(b, m->source);
        }
        buf_puts(b, ",\"target\":");
        put_str(b, m->target);
        buf_puts(b, m->tmpfs ? ",\"type\":\"tmpfs\"}" : ",\"type\":\"bind\"}");
    }
    buf_add(b, "]", 1);
}

static int cmp_env(const void *a, const void *b)
{
    return strcmp((*(const struct berth_env_var *const *)a)->name,
                  (*(const struct berth_env_var *const *)b)->name);
}

/* env is kept in file order: written sorted by name */
static void put_env(struct buf *b, const struct berth_service *s)
{
    _cleanup_free_ const struct berth_env_var **v = xmalloc((s->nenv + 1) * sizeof(*v));

    for (size_t i = 0; i < s->nenv; i++)
        v[i] = &s->env[i];
    if (s->nenv > 1)
        qsort(v, s->nenv, sizeof(*v), cmp_env);
    buf_add(b, "{", 1);
    for (size_t i = 0; i < s->nenv; i++) {
        if (i)
            buf_add(b, ",", 1);
        put_str(b, v[i]->name);
        buf_add(b, ":", 1);
        put_str(b, v[i]->value);
    }
    buf_add(b, "}", 1);
}

static void put_healthcheck(struct buf *b, const struct berth_service *s)
{
    if (!s->healthcheck.ncommand) {
        buf_add(b, "null", 4);
        return;
    }
    buf_puts(b, "{\"command\":");
    put_strv(b, s->healthcheck.command, s->healthcheck.ncommand);
    buf_puts(b, ",\"interval\":");
    put_u64(b, s->healthcheck.interval_ms);
    buf_puts(b, ",\"restart_on_unhealthy\":");
    put_bool(b, s->healthcheck.restart_on_unhealthy);
    buf_puts(b, ",\"retries\":");
    put_u64(b, s->healthcheck.retries);
    buf_puts(b, ",\"timeout\":");
    put_u64(b, s->healthcheck.timeout_ms);
    buf_add(b, "}", 1);
}

/* Every object's keys in bytewise order, as written here. */
static void put_service(struct buf *b, const struct berth_service *s)
{
    buf_puts(b, "{\"backoff\":{\"initial\":");
    put_u64(b, s->backoff.initial_ms);
    buf_puts(b, ",\"max\":");
    put_u64(b, s->backoff.max_ms);
    buf_puts(b, ",\"reset_after\":");
    put_u64(b, s->backoff.reset_after_ms);
    buf_puts(b, "},\"capabilities\":{\"add\":");
    put_strv(b, s->cap_add, s->ncap_add);
    buf_puts(b, ",\"drop\":");
    put_strv(b, s->cap_drop, s->ncap_drop);
    buf_puts(b, "},\"command\":");
    if (s->ncommand)
        put_strv(b, s->command, s->ncommand);
    else
        buf_add(b, "null", 4);
    buf_puts(b, ",\"enabled\":");
    put_bool(b, s->enabled);
    buf_puts(b, ",\"env\":");
    put_env(b, s);
    buf_puts(b, ",\"healthcheck\":");
    put_healthcheck(b, s);
    buf_puts(b, ",\"hostname\":");
    put_str(b, s->hostname);
    buf_puts(b, ",\"image\":");
    put_image(b, &s->image);
    buf_puts(b, ",\"limits\":{\"cpus\":");
    put_u64_or_null(b, s->limits.cpus_milli);
    buf_puts(b, ",\"memory\":");
    put_u64_or_null(b, s->limits.memory);
    buf_puts(b, ",\"nofile\":");
    put_u64_or_null(b, s->limits.nofile);
    buf_puts(b, ",\"pids\":");
    put_u64_or_null(b, s->limits.pids);
    buf_puts(b, "},\"log\":{\"max_files\":");
    put_u64(b, s->log.max_files);
    buf_puts(b, ",\"max_size\":");
    put_u64(b, s->log.max_size);
    buf_puts(b, "},\"mounts\":");
    put_mounts(b, s);
    buf_puts(b, ",\"name\":");
    put_str(b, s->name);
    buf_puts(b, ",\"network\":");
    put_str(b, network_names[s->network]);
    buf_puts(b, ",\"readonly_rootfs\":");
    put_bool(b, s->readonly_rootfs);
    buf_puts(b, ",\"restart\":");
    put_str(b, restart_names[s->restart]);
    /* only when not the default: the specs of services made before berth
     * knew the field keep their hash (an upgrade restarts nothing) */
    if (s->seccomp) {
        buf_puts(b, ",\"seccomp\":");
        put_str(b, s->seccomp);
    }
    if (s->seccomp_sha256) {
        buf_puts(b, ",\"seccomp_sha256\":");
        put_str(b, s->seccomp_sha256);
    }
    buf_puts(b, ",\"stop_signal\":");
    put_str(b, berth_signal_name(s->stop_signal));
    buf_puts(b, ",\"stop_timeout\":");
    put_u64(b, s->stop_timeout_ms);
    buf_puts(b, ",\"user\":");
    put_str(b, s->user);
    buf_puts(b, ",\"workdir\":");
    put_str(b, s->workdir);
    buf_add(b, "}", 1);
}

char *berth_service_canonical_json(const struct berth_service *svc)
{
    struct buf b = {0};

    put_service(&b, svc);
    return b.s;
}

void berth_service_hash(const struct berth_service *svc, char out[65])
{
    _cleanup_free_ char *json = berth_service_canonical_json(svc);
    struct sha256_ctx ctx;
    uint8_t md[SHA256_DIGEST_SIZE];

    sha256_init(&ctx);
    sha256_update(&ctx, strlen(json), (const uint8_t *)json);
    sha256_digest(&ctx, sizeof(md), md);
    berth_hex(md, sizeof(md), out);
}

/* ---- Fields ------------------------------------------------------------- */

struct fields {
    struct berth_field *v;
    size_t n, cap;
};

static void field_add(struct fields *f, const char *path, char *value)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 32;
        f->v = xrealloc(f->v, f->cap * sizeof(*f->v));
    }
    f->v[f->n].path = xstrdup(path);
    f->v[f->n++].value = value;
}

/* A scalar or an array of scalars as the writer above writes it; false for
 * numbers it never writes (reals, negative ones). */
static bool put_leaf(struct buf *b, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        put_str(b, json_string_value(v));
        return true;
    case JSON_INTEGER:
        if (json_integer_value(v) < 0)
            return false;
        put_u64(b, (uint64_t)json_integer_value(v));
        return true;
    case JSON_TRUE:
        buf_add(b, "true", 4);
        return true;
    case JSON_FALSE:
        buf_add(b, "false", 5);
        return true;
    case JSON_NULL:
        buf_add(b, "null", 4);
        return true;
    case JSON_ARRAY: /* of scalars */
        buf_add(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                buf_add(b, ",", 1);
            if (!put_leaf(b, json_array_get(v, i)))
                return false;
        }
        buf_add(b, "]", 1);
        return true;
    default:
        return false;
    }
}

static bool is_scalar(const json_t *v)
{
    return !json_is_object(v) && !json_is_array(v);
}

static bool scalars_only(const json_t *a)
{
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!is_scalar(json_array_get(a, i)))
            return false;
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Leaves in key order, arrays of objects indexed: "mounts[0].target". */
static bool flatten(struct fields *f, struct buf *path, const json_t *v)
{
    size_t plen = path->len;
    bool ok = true;

    if (is_scalar(v) || (json_is_array(v) && scalars_only(v))) {
        struct buf val = {0};
        ok = put_leaf(&val, v);
        if (ok)
            field_add(f, path->s ? path->s : "", val.s);
        else
            free(val.s);
        return ok;
    }
    if (json_is_array(v)) {
        for (size_t i = 0; ok && i < json_array_size(v); i++) {
            char idx[32];
            snprintf(idx, sizeof(idx), "[%zu]", i);
            buf_puts(path, idx);
            ok = flatten(f, path, json_array_get(v, i));
            path->s[path->len = plen] = '\0';
        }
        return ok;
    }
    size_t n = json_object_size(v), i = 0;
    _cleanup_free_ const char **keys = xmalloc((n + 1) * sizeof(*keys));
    const char *key;
    json_t *item;
    json_object_foreach((json_t *)v, key, item) keys[i++] = key;
    if (n > 1)
        qsort(keys, n, sizeof(*keys), cmp_str);
    for (i = 0; ok && i < n; i++) {
        if (plen)
            buf_add(path, ".", 1);
        buf_puts(path, keys[i]);
        ok = flatten(f, path, json_object_get(v, keys[i]));
        path->len = plen;
        if (path->s)
            path->s[plen] = '\0';
    }
    return ok;
}

long berth_canonical_json_fields(const char *json, struct berth_field **ret)
{
    json_t *t = json_loads(json, 0, NULL);
    struct fields f = {0};
    struct buf path = {0};
    bool ok = json_is_object(t) && flatten(&f, &path, t);

    json_decref(t);
    free(path.s);
    if (!ok) {
        berth_fields_free(f.v, f.n);
        *ret = NULL;
        return -1;
    }
    *ret = f.v;
    return (long)f.n;
}

size_t berth_service_fields(const struct berth_service *svc, struct berth_field **ret)
{
    _cleanup_free_ char *json = berth_service_canonical_json(svc);
    long n = berth_canonical_json_fields(json, ret);

    /* the writer's strings are the parser's: UTF-8, no NUL */
    if (n < 0)
        abort();
    return (size_t)n;
}

void berth_fields_free(struct berth_field *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(fields[i].path);
        free(fields[i].value);
    }
    free(fields);
}
