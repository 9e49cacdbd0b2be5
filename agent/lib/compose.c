#include "compose.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "caps.h"
#include "registry.h"
#include "spec-yaml.h"
#include "spec.h"
#include "util.h"
#include "yaml-emit.h"

#define COMPOSE_MAX_ENV_FILE (1u << 20)

struct pair {
    const struct spec_node *key, *value;
};

struct resolved {
    char *ref, *url;
    json_t *entrypoint; /* the image's, an array (maybe empty); NULL: unknown */
};

struct cctx {
    const struct berth_compose_options *opt;
    struct berth_notes *notes;
    char *dir;   /* the compose file's directory */
    char **vars; /* KEY=VALUE for interpolation: .env, then opt->environ */
    size_t nvars;
    const char *svc; /* the berth name of the service at hand */
    struct resolved *cache;
    size_t ncache;
};

#define NOTE(c, field, ...)  berth_notes_add((c)->notes, (c)->svc, field, false, __VA_ARGS__)
#define FATAL(c, field, ...) berth_notes_add((c)->notes, (c)->svc, field, true, __VA_ARGS__)

/* ---- mappings with merge keys ------------------------------------------ */

static bool is_merge(const struct spec_node *k)
{
    return k->kind == N_SCALAR && !strcmp(k->text, "<<");
}

static void flat_add(struct pair **v, size_t *n, const struct spec_node *k,
                     const struct spec_node *val)
{
    if (k->kind != N_SCALAR || !k->text)
        return; /* a complex key ("? [a, b]") names nothing Compose has */
    for (size_t i = 0; i < *n; i++)
        if ((*v)[i].key->kind == N_SCALAR && k->kind == N_SCALAR &&
            !strcmp((*v)[i].key->text, k->text))
            return; /* an earlier (stronger) one wins */
    *v = xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = (struct pair){k, val};
}

static void flat_into(const struct spec_node *m, struct pair **v, size_t *n, int depth)
{
    if (!m || m->kind != N_MAP || depth > BERTH_SPEC_MAX_DEPTH)
        return;
    /* the mapping's own keys first: they override what '<<' brings */
    for (size_t i = 0; i + 1 < m->n; i += 2)
        if (!is_merge(m->items[i]))
            flat_add(v, n, m->items[i], m->items[i + 1]);
    for (size_t i = 0; i + 1 < m->n; i += 2) {
        if (!is_merge(m->items[i]))
            continue;
        const struct spec_node *src = m->items[i + 1];
        if (src->kind == N_MAP)
            flat_into(src, v, n, depth + 1);
        else if (src->kind == N_SEQ) /* earlier mappings win */
            for (size_t j = 0; j < src->n; j++)
                flat_into(src->items[j], v, n, depth + 1);
    }
}

/* The keys of a mapping, merge keys resolved; free the array. */
static size_t flat(const struct spec_node *m, struct pair **ret)
{
    size_t n = 0;

    *ret = NULL;
    flat_into(m, ret, &n, 0);
    return n;
}

static const struct spec_node *mget(const struct spec_node *m, const char *key)
{
    _cleanup_free_ struct pair *v = NULL;
    size_t n = flat(m, &v);

    for (size_t i = 0; i < n; i++)
        if (v[i].key->kind == N_SCALAR && !strcmp(v[i].key->text, key))
            return v[i].value;
    return NULL;
}

/* ---- scalars and interpolation ----------------------------------------- */

static const char *var_get(const struct cctx *c, const char *name, size_t len)
{
    const char *found = NULL;

    /* later entries (the environment) override the .env file */
    for (size_t i = 0; i < c->nvars; i++)
        if (!strncmp(c->vars[i], name, len) && c->vars[i][len] == '=')
            found = c->vars[i] + len + 1;
    return found;
}

/* Compose's interpolation: $$, $VAR, ${VAR}, ${VAR:-default},
 * ${VAR-default}, ${VAR:?message}, ${VAR?message}, ${VAR:+alt}. */
static char *interpolate(struct cctx *c, const char *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    for (const char *p = s; *p; p++) {
        if (*p != '$') {
            fputc(*p, f);
            continue;
        }
        if (p[1] == '$') {
            fputc('$', f);
            p++;
            continue;
        }
        const char *name = p + 1, *end;
        bool braced = *name == '{';
        if (braced)
            name++;
        for (end = name; *end == '_' || (*end >= 'A' && *end <= 'Z') ||
                         (*end >= 'a' && *end <= 'z') || (end > name && *end >= '0' && *end <= '9');
             end++)
            ;
        if (end == name) {
            fputc('$', f);
            continue;
        }
        const char *val = var_get(c, name, (size_t)(end - name));
        const char *close = end;
        if (braced) {
            close = strchr(end, '}');
            if (!close) {
                fputc('$', f);
                continue;
            }
            bool colon = *end == ':';
            const char *op = colon ? end + 1 : end;
            _cleanup_free_ char *arg =
                op < close ? strndup(op + 1, (size_t)(close - op - 1)) : NULL;
            bool unset = !val || (colon && !*val);
            if (op < close && *op == '-' && unset)
                val = arg;
            else if (op < close && *op == '+')
                val = unset ? "" : arg;
            else if (op < close && *op == '?' && unset)
                NOTE(c, "interpolation", "${%.*s} is required: %s", (int)(end - name), name,
                     arg ? arg : "");
            fputs(val ? val : "", f);
            p = close;
        } else {
            fputs(val ? val : "", f);
            p = end - 1;
        }
        if (!val)
            NOTE(c, "interpolation", "$%.*s is not set: it became \"\"", (int)(end - name), name);
    }
    fclose(f);
    return buf;
}

/* A scalar's text, interpolated; NULL (and a note) for anything else. */
static char *sval(struct cctx *c, const struct spec_node *n, const char *field)
{
    if (!n || n->kind != N_SCALAR) {
        NOTE(c, field, "expected a single value: ignored");
        return NULL;
    }
    if (n->sk == S_NULL) {
        NOTE(c, field, "an empty value ('%s'): ignored", n->text);
        return NULL;
    }
    return interpolate(c, n->text);
}

/* A string or a list of strings (a string is split as a shell would, as
 * Compose does for command and entrypoint when `split`). */
static json_t *strlist(struct cctx *c, const struct spec_node *n, const char *field, bool split);

static json_t *shell_split(const char *s)
{
    json_t *a = json_array();
    _cleanup_free_ char *w = xmalloc(strlen(s) + 1);
    size_t k = 0;
    bool in = false;
    char q = 0;

    for (const char *p = s;; p++) {
        if (!*p || (!q && (*p == ' ' || *p == '\t' || *p == '\n'))) {
            if (in) {
                w[k] = '\0';
                json_array_append_new(a, json_string(w));
                k = 0;
                in = false;
            }
            if (!*p)
                break;
            continue;
        }
        in = true;
        if (q == '\'') {
            if (*p == '\'')
                q = 0;
            else
                w[k++] = *p;
        } else if (*p == '\\' && p[1] && (!q || strchr("\"\\$`", p[1]))) {
            w[k++] = *++p;
        } else if (q == '"' && *p == '"') {
            q = 0;
        } else if (!q && (*p == '\'' || *p == '"')) {
            q = *p;
        } else {
            w[k++] = *p;
        }
    }
    return a;
}

static json_t *strlist(struct cctx *c, const struct spec_node *n, const char *field, bool split)
{
    if (n->kind == N_SCALAR) {
        _cleanup_free_ char *s = interpolate(c, n->text);
        return split ? shell_split(s) : json_pack("[s]", s);
    }
    if (n->kind != N_SEQ) {
        NOTE(c, field, "expected a string or a list: ignored");
        return NULL;
    }
    json_t *a = json_array();
    for (size_t i = 0; i < n->n; i++) {
        _cleanup_free_ char *s = sval(c, n->items[i], field);
        if (s)
            json_array_append_new(a, json_string(s));
    }
    return a;
}

/* ---- units --------------------------------------------------------------- */

/* Docker's sizes: "512m", "1g", "1024", "512mb", "1.5g" (b, k, m, g, t). */
static int compose_size(const char *s, uint64_t *ret)
{
    char *end;
    double v = strtod(s, &end);
    double mul = 1;

    if (end == s || v < 0)
        return -1;
    switch (*end ? (*end | 0x20) : 0) {
    case 0:
    case 'b':
        break;
    case 'k':
        mul = 1024.0;
        break;
    case 'm':
        mul = 1024.0 * 1024;
        break;
    case 'g':
        mul = 1024.0 * 1024 * 1024;
        break;
    case 't':
        mul = 1024.0 * 1024 * 1024 * 1024;
        break;
    default:
        return -1;
    }
    if (*end && (*end | 0x20) != 'b')
        end++;
    if ((*end | 0x20) == 'b')
        end++;
    if (*end)
        return -1;
    *ret = (uint64_t)(v * mul + 0.5);
    return 0;
}

static json_t *berth_size(uint64_t b)
{
    static const char units[] = "KMGT";
    int u = -1;

    while (u < 3 && b && b % 1024 == 0) {
        b /= 1024;
        u++;
    }
    if (u < 0)
        return json_integer((json_int_t)b);
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu%c", (unsigned long long)b, units[u]);
    return json_string(buf);
}

/* Go durations, as Compose writes them: "1m30s", "10s", "500ms", "1h". */
static int compose_duration(const char *s, uint64_t *ret_ms)
{
    double total = 0;
    const char *p = s;

    if (!*p)
        return -1;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || v < 0)
            return -1;
        p = end;
        double mul;
        if (!strncmp(p, "ms", 2))
            mul = 1, p += 2;
        else if (!strncmp(p, "us", 2) || !strncmp(p, "\xc2\xb5s", 3))
            mul = 0.001, p += *p == 'u' ? 2 : 3;
        else if (!strncmp(p, "ns", 2))
            mul = 0.000001, p += 2;
        else if (*p == 'h')
            mul = 3600000, p++;
        else if (*p == 'm')
            mul = 60000, p++;
        else if (*p == 's')
            mul = 1000, p++;
        else if (!*p && p == s + strlen(s) && total == 0)
            mul = 1000; /* a bare number: seconds */
        else
            return -1;
        total += v * mul;
    }
    *ret_ms = (uint64_t)(total + 0.5);
    return 0;
}

static json_t *berth_duration(uint64_t ms)
{
    char buf[32];

    if (ms % 1000 == 0)
        snprintf(buf, sizeof(buf), "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(buf, sizeof(buf), "%llums", (unsigned long long)ms);
    return json_string(buf);
}

/* A field holding a duration: set `key` of `obj`, or note why not. */
static void set_duration(struct cctx *c, json_t *obj, const char *key, const struct spec_node *n,
                         const char *field)
{
    _cleanup_free_ char *s = sval(c, n, field);
    uint64_t ms;

    if (!s)
        return;
    if (compose_duration(s, &ms) < 0 || (!ms && strcmp(key, "stop_timeout"))) {
        NOTE(c, field, "'%s' is not a duration berth takes: ignored", s);
        return;
    }
    json_object_set_new(obj, key, berth_duration(ms));
}

/* ---- the environment ---------------------------------------------------- */

/* A variable berth takes (letters, digits and '_', not starting with a
 * digit), or a note. */
static void env_put(struct cctx *c, json_t *env, const char *k, const char *v)
{
    bool ok = *k && !(*k >= '0' && *k <= '9');

    for (const char *p = k; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            ok = false;
    if (ok)
        json_object_set_new(env, k, json_string(v));
    else
        NOTE(c, "environment", "'%s' is not a variable name berth takes: left out", k);
}

static void env_set(struct cctx *c, json_t *env, const char *kv)
{
    const char *eq = strchr(kv, '=');
    _cleanup_free_ char *k = strndup(kv, (size_t)(eq - kv));

    env_put(c, env, k, eq + 1);
}

/* KEY=VALUE lines: comments, blank lines, "export " and quotes as Compose
 * reads them. */
static int read_env_file(const char *path, char ***vars, size_t *n, berth_error *err)
{
    _cleanup_free_ char *data = NULL;
    size_t len;

    if (berth_read_file(path, COMPOSE_MAX_ENV_FILE, &data, &len, err) < 0)
        return -1;
    for (char *line = data, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        while (*line == ' ' || *line == '\t')
            line++;
        size_t l = strlen(line);
        while (l && (line[l - 1] == '\r' || line[l - 1] == ' '))
            line[--l] = '\0';
        if (!*line || *line == '#')
            continue;
        if (!strncmp(line, "export ", 7))
            line += 7;
        char *eq = strchr(line, '=');
        if (!eq || eq == line)
            continue;
        char *v = eq + 1;
        size_t vl = strlen(v);
        if (vl >= 2 && (v[0] == '"' || v[0] == '\'') && v[vl - 1] == v[0]) {
            v[vl - 1] = '\0';
            v++;
        } else {
            char *hash = strstr(v, " #"); /* an inline comment */
            if (hash)
                *hash = '\0';
        }
        *eq = '\0';
        _cleanup_free_ char *kv = xasprintf("%s=%s", line, v);
        berth_strv_push(vars, n, kv);
    }
    return 0;
}

static char *rel_path(const struct cctx *c, const char *p)
{
    if (p[0] == '/')
        return xstrdup(p);
    if (p[0] == '~' && p[1] == '/' && getenv("HOME"))
        return xasprintf("%s/%s", getenv("HOME"), p + 2);
    if (p[0] == '.' && p[1] == '/')
        p += 2;
    if (!strcmp(p, "."))
        return xstrdup(c->dir);
    return xasprintf("%s/%s", c->dir, p);
}

static void env_files(struct cctx *c, const struct spec_node *n, json_t *env)
{
    const struct spec_node *one = n;
    size_t count = n->kind == N_SEQ ? n->n : 1;

    for (size_t i = 0; i < count; i++) {
        if (n->kind == N_SEQ)
            one = n->items[i];
        bool required = true;
        const struct spec_node *pn = one;
        if (one->kind == N_MAP) { /* {path: FILE, required: false} */
            const struct spec_node *r = mget(one, "required");
            required = !(r && r->kind == N_SCALAR && r->sk == S_BOOL && !r->bval);
            pn = mget(one, "path");
        }
        _cleanup_free_ char *s = sval(c, pn, "env_file");
        if (!s)
            continue;
        _cleanup_free_ char *path = rel_path(c, s);
        char **vars = NULL;
        size_t nv = 0;
        berth_error err = BERTH_ERROR_INIT;
        if (read_env_file(path, &vars, &nv, &err) < 0) {
            if (required)
                FATAL(c, "env_file", "%s", err.msg);
            continue;
        }
        for (size_t k = 0; k < nv; k++)
            env_set(c, env, vars[k]);
        berth_strv_free(vars);
    }
}

static void environment(struct cctx *c, const struct spec_node *n, json_t *env)
{
    if (n->kind == N_SEQ) {
        for (size_t i = 0; i < n->n; i++) {
            _cleanup_free_ char *s = sval(c, n->items[i], "environment");
            if (!s)
                continue;
            if (!strchr(s, '='))
                NOTE(c, "environment",
                     "'%s' has no value: Compose copies it from its caller's environment; "
                     "set it in the file",
                     s);
            else
                env_set(c, env, s);
        }
        return;
    }
    _cleanup_free_ struct pair *v = NULL;
    size_t nv = flat(n, &v);
    for (size_t i = 0; i < nv; i++) {
        const char *k = v[i].key->text;
        if (v[i].value->kind == N_SCALAR && v[i].value->sk == S_NULL) {
            NOTE(c, "environment",
                 "'%s' has no value: Compose copies it from its caller's environment; set it in "
                 "the file",
                 k);
            continue;
        }
        _cleanup_free_ char *s = sval(c, v[i].value, "environment");
        if (s)
            env_put(c, env, k, s);
    }
}

/* ---- volumes -------------------------------------------------------------- */

static bool target_ok(struct cctx *c, const char *dst)
{
    if (dst[0] == '/')
        return true;
    NOTE(c, "volumes", "target '%s' is not an absolute path: left out", dst);
    return false;
}

static void add_bind(struct cctx *c, json_t *mounts, const char *src, const char *dst, bool ro)
{
    if (!target_ok(c, dst))
        return;
    json_t *m = json_pack("{s:s,s:s}", "source", src, "target", dst);

    if (ro)
        json_object_set_new(m, "readonly", json_true());
    json_array_append_new(mounts, m);
}

static void add_tmpfs(struct cctx *c, json_t *mounts, const char *dst, uint64_t size)
{
    if (!target_ok(c, dst))
        return;
    json_t *m = json_pack("{s:s,s:s}", "type", "tmpfs", "target", dst);

    if (size)
        json_object_set_new(m, "size", berth_size(size));
    json_array_append_new(mounts, m);
}

/* A named (or, with an empty name, anonymous) volume as a bind mount. */
static void add_volume(struct cctx *c, json_t *mounts, const char *name, const char *dst, bool ro)
{
    if (!c->opt->volumes_dir) {
        FATAL(c, "volumes",
              "'%s' is a %s volume: berth has bind mounts only; give --volumes-dir DIR to make "
              "it DIR/NAME",
              *name ? name : dst, *name ? "named" : "anonymous");
        return;
    }
    _cleanup_free_ char *anon = NULL;
    if (!*name) {
        anon = xasprintf("%s%s", c->svc, dst);
        for (char *p = anon; *p; p++)
            if (*p == '/')
                *p = '-';
        name = anon;
    }
    _cleanup_free_ char *src = xasprintf("%s/%s", c->opt->volumes_dir, name);
    add_bind(c, mounts, src, dst, ro);
    NOTE(c, "volumes", "volume '%s' is the directory '%s' (create it; Compose's data is not moved)",
         name, src);
}

static bool is_path(const char *s)
{
    return s[0] == '/' || s[0] == '.' || s[0] == '~';
}

static void volume_short(struct cctx *c, const char *spec, json_t *mounts)
{
    _cleanup_free_ char *s = xstrdup(spec);
    char *parts[3] = {s, NULL, NULL};
    size_t np = 1;

    for (char *p = s; *p && np < 3; p++)
        if (*p == ':') {
            *p = '\0';
            parts[np++] = p + 1;
        }
    if (np == 1) { /* "/data": an anonymous volume */
        add_volume(c, mounts, "", parts[0], false);
        return;
    }
    bool ro = false;
    for (char *o = np == 3 ? strtok(parts[2], ",") : NULL; o; o = strtok(NULL, ",")) {
        if (!strcmp(o, "ro"))
            ro = true;
        else if (strcmp(o, "rw"))
            NOTE(c, "volumes", "mount option '%s' of '%s' ignored", o, parts[1]);
    }
    if (is_path(parts[0])) {
        _cleanup_free_ char *src = rel_path(c, parts[0]);
        add_bind(c, mounts, src, parts[1], ro);
    } else {
        add_volume(c, mounts, parts[0], parts[1], ro);
    }
}

static void volume_long(struct cctx *c, const struct spec_node *n, json_t *mounts)
{
    _cleanup_free_ char *type = mget(n, "type") ? sval(c, mget(n, "type"), "volumes") : NULL;
    _cleanup_free_ char *src = mget(n, "source") ? sval(c, mget(n, "source"), "volumes") : NULL;
    _cleanup_free_ char *dst = mget(n, "target") ? sval(c, mget(n, "target"), "volumes") : NULL;
    const struct spec_node *ro = mget(n, "read_only");
    bool readonly = ro && ro->kind == N_SCALAR && ro->sk == S_BOOL && ro->bval;

    if (!dst) {
        NOTE(c, "volumes", "a volume without a target: ignored");
        return;
    }
    if (!type || !strcmp(type, "volume")) {
        add_volume(c, mounts, src ? src : "", dst, readonly);
    } else if (!strcmp(type, "bind")) {
        _cleanup_free_ char *abs = src ? rel_path(c, src) : NULL;
        if (abs)
            add_bind(c, mounts, abs, dst, readonly);
    } else if (!strcmp(type, "tmpfs")) {
        const struct spec_node *t = mget(n, "tmpfs");
        const struct spec_node *sz = t ? mget(t, "size") : NULL;
        _cleanup_free_ char *szs = sz ? sval(c, sz, "volumes") : NULL;
        uint64_t size = 0;
        if (szs && compose_size(szs, &size) < 0)
            NOTE(c, "volumes", "tmpfs size '%s' not understood: no size", szs);
        add_tmpfs(c, mounts, dst, size);
    } else {
        NOTE(c, "volumes", "a '%s' mount of '%s': berth has bind and tmpfs mounts only", type, dst);
    }
}

static void tmpfs_entries(struct cctx *c, const struct spec_node *n, json_t *mounts)
{
    json_t *l = strlist(c, n, "tmpfs", false);
    size_t i;
    json_t *v;

    json_array_foreach(l, i, v)
    {
        _cleanup_free_ char *s = xstrdup(json_string_value(v));
        char *opts = strchr(s, ':');
        uint64_t size = 0;
        if (opts) {
            *opts++ = '\0';
            for (char *o = strtok(opts, ","); o; o = strtok(NULL, ","))
                if (strncmp(o, "size=", 5) || compose_size(o + 5, &size) < 0)
                    NOTE(c, "tmpfs", "tmpfs option '%s' of '%s' ignored", o, s);
        }
        add_tmpfs(c, mounts, s, size);
    }
    json_decref(l);
}

/* ---- health, limits, restart ---------------------------------------------- */

static void healthcheck(struct cctx *c, const struct spec_node *n, json_t *svc)
{
    const struct spec_node *test = mget(n, "test"), *dis = mget(n, "disable");
    json_t *hc = json_object(), *cmd = NULL;

    if ((dis && dis->kind == N_SCALAR && dis->sk == S_BOOL && dis->bval) || !test)
        goto none;
    json_t *t = strlist(c, test, "healthcheck.test", false);
    const char *first = json_string_value(json_array_get(t, 0));
    if (test->kind == N_SCALAR) {
        cmd = json_pack("[s,s,O]", "/bin/sh", "-c", json_array_get(t, 0));
    } else if (first && !strcmp(first, "CMD")) {
        cmd = json_array();
        for (size_t i = 1; i < json_array_size(t); i++)
            json_array_append(cmd, json_array_get(t, i));
    } else if (first && !strcmp(first, "CMD-SHELL") && json_array_size(t) == 2) {
        cmd = json_pack("[s,s,O]", "/bin/sh", "-c", json_array_get(t, 1));
    } else if (!first || strcmp(first, "NONE")) {
        NOTE(c, "healthcheck.test", "expected CMD, CMD-SHELL or NONE first: no health check");
    }
    json_decref(t);
    if (!cmd || !json_array_size(cmd)) {
        json_decref(cmd);
        goto none;
    }
    json_object_set_new(hc, "command", cmd);
    if (mget(n, "interval"))
        set_duration(c, hc, "interval", mget(n, "interval"), "healthcheck.interval");
    if (mget(n, "timeout"))
        set_duration(c, hc, "timeout", mget(n, "timeout"), "healthcheck.timeout");
    if (mget(n, "retries")) {
        _cleanup_free_ char *r = sval(c, mget(n, "retries"), "healthcheck.retries");
        long v = r ? strtol(r, NULL, 10) : 0;
        if (v >= 1 && v <= 1000)
            json_object_set_new(hc, "retries", json_integer(v));
    }
    if (mget(n, "start_period") || mget(n, "start_interval"))
        NOTE(c, "healthcheck.start_period",
             "berth has no start period: failures count from the first check (raise retries)");
    json_object_set_new(svc, "healthcheck", hc);
    return;
none:
    json_decref(hc);
}

static void set_memory(struct cctx *c, json_t *limits, const struct spec_node *n, const char *f)
{
    _cleanup_free_ char *s = sval(c, n, f);
    uint64_t b;

    if (s && compose_size(s, &b) == 0 && b >= (1 << 20))
        json_object_set_new(limits, "memory", berth_size(b));
    else if (s && strcmp(s, "0"))
        NOTE(c, f, "'%s' is not a memory limit berth takes (at least 1M): ignored", s);
}

static void set_cpus(struct cctx *c, json_t *limits, const struct spec_node *n, const char *f)
{
    _cleanup_free_ char *s = sval(c, n, f);
    double v = s ? strtod(s, NULL) : 0;

    if (v >= 0.001 && v <= 4096)
        json_object_set_new(limits, "cpus", json_real((double)(long)(v * 1000 + 0.5) / 1000));
    else if (s && v != 0)
        NOTE(c, f, "'%s' is not a CPU limit berth takes: ignored", s);
}

static void set_pids(struct cctx *c, json_t *limits, const struct spec_node *n, const char *f)
{
    _cleanup_free_ char *s = sval(c, n, f);
    long long v = s ? strtoll(s, NULL, 10) : 0;

    if (v > 0)
        json_object_set_new(limits, "pids", json_integer(v));
}

static void deploy(struct cctx *c, const struct spec_node *n, json_t *svc, json_t *limits)
{
    _cleanup_free_ struct pair *v = NULL;
    size_t nv = flat(n, &v);

    if (n->kind != N_MAP)
        NOTE(c, "deploy", "expected a mapping: ignored");

    for (size_t i = 0; i < nv; i++) {
        const char *k = v[i].key->text;
        const struct spec_node *val = v[i].value;
        if (!strcmp(k, "resources")) {
            const struct spec_node *l = mget(val, "limits");
            if (l && mget(l, "memory"))
                set_memory(c, limits, mget(l, "memory"), "deploy.resources.limits.memory");
            if (l && mget(l, "cpus"))
                set_cpus(c, limits, mget(l, "cpus"), "deploy.resources.limits.cpus");
            if (l && mget(l, "pids"))
                set_pids(c, limits, mget(l, "pids"), "deploy.resources.limits.pids");
            if (mget(val, "reservations"))
                NOTE(c, "deploy.resources.reservations",
                     "berth reserves nothing: only limits are imported");
        } else if (!strcmp(k, "restart_policy")) {
            _cleanup_free_ char *cond =
                mget(val, "condition") ? sval(c, mget(val, "condition"), "restart_policy") : NULL;
            if (cond)
                json_object_set_new(svc, "restart",
                                    json_string(!strcmp(cond, "none")         ? "never"
                                                : !strcmp(cond, "on-failure") ? "on-failure"
                                                                              : "always"));
            if (mget(val, "delay")) {
                json_t *b = json_object();
                set_duration(c, b, "initial", mget(val, "delay"), "deploy.restart_policy.delay");
                if (json_object_size(b))
                    json_object_set_new(svc, "backoff", b);
                else
                    json_decref(b);
            }
            if (mget(val, "max_attempts") || mget(val, "window"))
                NOTE(c, "deploy.restart_policy",
                     "berth restarts without a limit of attempts (with a growing backoff)");
        } else if (!strcmp(k, "replicas")) {
            _cleanup_free_ char *r = sval(c, val, "deploy.replicas");
            if (r && !strcmp(r, "0")) {
                json_object_set_new(svc, "enabled", json_false());
                NOTE(c, "deploy.replicas", "0 replicas: imported with enabled: false");
            } else if (r && strcmp(r, "1"))
                NOTE(c, "deploy.replicas",
                     "%s replicas: berth runs one container per service; copy the service "
                     "under other names (on other ports) for more",
                     r);
        } else {
            NOTE(c, "deploy", "deploy.%s is for Swarm: berth has no equivalent", k);
        }
    }
}

static void restart(struct cctx *c, const struct spec_node *n, json_t *svc)
{
    _cleanup_free_ char *s = sval(c, n, "restart");

    if (!s)
        return;
    if (!strcmp(s, "no"))
        json_object_set_new(svc, "restart", json_string("never"));
    else if (!strcmp(s, "always") || !strcmp(s, "unless-stopped"))
        json_object_set_new(svc, "restart", json_string("always"));
    else if (!strncmp(s, "on-failure", 10)) {
        json_object_set_new(svc, "restart", json_string("on-failure"));
        if (s[10] == ':')
            NOTE(c, "restart", "berth restarts on failure without a limit of %s attempts", s + 11);
    } else
        NOTE(c, "restart", "unknown restart policy '%s': berth's default (always)", s);
}

static void caps(struct cctx *c, const struct spec_node *n, json_t *svc, const char *which)
{
    json_t *l = strlist(c, n, which, false);
    json_t *out = json_array();
    size_t i;
    json_t *v;

    json_array_foreach(l, i, v)
    {
        const char *name = json_string_value(v);
        uint64_t mask;
        berth_error e = BERTH_ERROR_INIT;
        if (berth_caps_from_name(name, &mask, &e) < 0) {
            NOTE(c, which, "unknown capability '%s': left out", name);
            continue;
        }
        /* Docker takes any case and the CAP_ prefix; berth's file, NET_ADMIN */
        _cleanup_free_ char *up = xstrdup(strncasecmp(name, "CAP_", 4) ? name : name + 4);
        for (char *p = up; *p; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 'a' + 'A');
        json_array_append_new(out, json_string(up));
    }
    json_decref(l);
    json_t *capsobj = json_object_get(svc, "capabilities");
    if (!capsobj) {
        capsobj = json_object();
        json_object_set_new(svc, "capabilities", capsobj);
    }
    json_object_set_new(capsobj, !strcmp(which, "cap_add") ? "add" : "drop", out);
}

/* ---- images -------------------------------------------------------------- */

/* The image's entrypoint, from its config blob: Compose's command keeps
 * it, berth's command replaces it, so the import puts it first. */
static json_t *image_entrypoint(const char *url, const char *hex,
                                const struct berth_fetch_options *fopt, berth_error *err)
{
    struct berth_registry_ref ref = {0};
    struct berth_registry reg;
    struct berth_registry_manifest m = {0};
    _cleanup_free_ char *body = NULL;
    char got[65], mt[128];
    size_t len;
    json_t *ep = NULL;

    if (berth_registry_ref_parse(url, &ref, err) < 0)
        return NULL;
    berth_registry_init(&reg, &ref, fopt);
    _cleanup_free_ char *digest = xasprintf("sha256:%s", hex);
    if (berth_registry_get_manifest(&reg, digest, &body, &len, got, mt, sizeof(mt), err) < 0 ||
        berth_registry_manifest_parse(body, len, &m, err) < 0)
        goto out;
    char tmp[] = "/tmp/berth-import-config-XXXXXX";
    int fd = mkstemp(tmp);
    if (fd < 0) {
        berth_error_set(err, errno, "creating a temporary file");
        goto out;
    }
    close(fd);
    unlink(tmp); /* the blob is created afresh */
    struct berth_registry_blob blob = {.hex = m.config, .size = m.config_size, .dest = tmp};
    if (berth_registry_get_blobs(&reg, &blob, 1)) {
        *err = blob.res.err;
        goto out;
    }
    json_error_t jerr;
    json_t *cfg = json_load_file(tmp, 0, &jerr);
    unlink(tmp);
    if (!cfg) {
        berth_error_set(err, 0, "the image config: %s", jerr.text);
        goto out;
    }
    json_t *e = json_object_get(json_object_get(cfg, "config"), "Entrypoint");
    ep = json_is_array(e) ? json_incref(e) : json_array();
    json_decref(cfg);
out:
    berth_registry_manifest_release(&m);
    berth_registry_release(&reg);
    berth_registry_ref_release(&ref);
    return ep;
}

/* "nginx:1.25", "ghcr.io/org/app:v1", "127.0.0.1:5000/x@sha256:..." → the
 * registry reference berth reads, the tag resolved to a digest. */
static char *resolve_image(struct cctx *c, const char *ref, json_t **ret_entrypoint)
{
    *ret_entrypoint = NULL;
    for (size_t i = 0; i < c->ncache; i++)
        if (!strcmp(c->cache[i].ref, ref)) {
            *ret_entrypoint = c->cache[i].entrypoint;
            return xstrdup(c->cache[i].url);
        }

    _cleanup_free_ char *s = xstrdup(ref);
    char *digest = strchr(s, '@');
    if (digest)
        *digest++ = '\0';
    char *slash = strchr(s, '/');
    const char *host = "docker.io";
    char *path = s;
    if (slash && (memchr(s, '.', (size_t)(slash - s)) || memchr(s, ':', (size_t)(slash - s)) ||
                  !strncmp(s, "localhost/", 10))) {
        *slash = '\0';
        host = s;
        path = slash + 1;
    }
    char *last = strrchr(path, '/');
    char *colon = strchr(last ? last : path, ':');
    const char *tag = "latest";
    if (colon) {
        *colon = '\0';
        tag = colon + 1;
    }
    _cleanup_free_ char *repo = !strcmp(host, "docker.io") && !strchr(path, '/')
                                    ? xasprintf("library/%s", path)
                                    : xstrdup(path);
    _cleanup_free_ char *prefix = xasprintf("oci://%s", host);
    for (size_t i = 0; i < c->opt->nregistries; i++) {
        const char *m = c->opt->registries[i], *eq = strchr(m, '=');
        if (eq && strlen(host) == (size_t)(eq - m) && !strncmp(m, host, (size_t)(eq - m))) {
            free(prefix);
            prefix = xstrdup(eq + 1);
        }
    }
    _cleanup_free_ char *want = digest ? xasprintf("%s/%s@%s", prefix, repo, digest)
                                       : xasprintf("%s/%s:%s", prefix, repo, tag);
    char hex[65];
    berth_error err = BERTH_ERROR_INIT;
    if (berth_registry_resolve(want, false, c->opt->fetch, hex, &err) < 0) {
        FATAL(c, "image", "'%s' (%s) cannot be resolved to a digest: %s", ref, want, err.msg);
        return NULL;
    }
    char *url = digest ? xasprintf("%s/%s@sha256:%s", prefix, repo, hex)
                       : xasprintf("%s/%s:%s@sha256:%s", prefix, repo, tag, hex);
    json_t *ep = image_entrypoint(want, hex, c->opt->fetch, &err);
    if (!ep)
        NOTE(c, "image", "the entrypoint of '%s' is unknown (%s)", ref, err.msg);
    c->cache = xrealloc(c->cache, (c->ncache + 1) * sizeof(*c->cache));
    c->cache[c->ncache++] = (struct resolved){xstrdup(ref), xstrdup(url), ep};
    *ret_entrypoint = ep;
    return url;
}

/* ---- one service --------------------------------------------------------- */

/* Compose keys berth has no place for, and what to say about each. */
static const struct {
    const char *key, *hint;
} unsupported[] = {
    {"depends_on", "berth starts every service on its own: make it retry until what it needs "
                   "answers (or add a health check and watch it)"},
    {"networks", "berth runs services on the host's network (or none): no bridge networks, "
                 "services reach each other on 127.0.0.1"},
    {"links", "no links: the other service is on 127.0.0.1"},
    {"external_links", "no links: the other service is on 127.0.0.1"},
    {"expose", "nothing to expose: the service listens on the host network directly"},
    {"secrets", "mount the secret's file read-only with a bind mount"},
    {"configs", "mount the config's file read-only with a bind mount"},
    {"container_name", "the container is named after the service"},
    {"labels", "berth keeps no labels"},
    {"logging", "berth captures the output itself (log.max_size, log.max_files)"},
    {"privileged", "berth has no privileged mode: add the capabilities it needs (cap_add)"},
    {"devices", "berth's /dev has only null, zero, full, random, urandom and tty"},
    {"extra_hosts", "the container uses the host's /etc/hosts"},
    {"dns", "the container uses the host's /etc/resolv.conf"},
    {"dns_search", "the container uses the host's /etc/resolv.conf"},
    {"sysctls", "berth sets no sysctls"},
    {"init", "berth always runs an init as pid 1"},
    {"shm_size", "berth's /dev/shm is a tmpfs of the kernel's default size"},
    {"stdin_open", "services have no stdin"},
    {"tty", "services have no terminal"},
    {"platform", "berth pulls the manifest for this host's platform"},
    {"pull_policy", "berth pulls by digest once, into its store"},
    {"scale", "berth runs one container per service"},
    {"extends", "extends is not followed: copy the keys in (or use a YAML merge key)"},
    {"pid", "each service has its own pid namespace"},
    {"ipc", "each service has its own ipc namespace"},
    {"userns_mode", "berth has no user namespaces"},
    {"cgroup_parent", "berth puts every service in a cgroup of its own"},
    {"domainname", "set hostname only"},
    {"mac_address", "the service is on the host's network"},
    {"develop", "compose watch has no equivalent"},
    {"runtime", "berth is the runtime"},
    {"oom_score_adj", "berth leaves the OOM score alone"},
};

static void note_unsupported(struct cctx *c, const char *key)
{
    for (size_t i = 0; i < ARRAY_SIZE(unsupported); i++)
        if (unsupported[i].hint && !strcmp(unsupported[i].key, key)) {
            NOTE(c, key, "not imported: %s", unsupported[i].hint);
            return;
        }
    NOTE(c, key, "not imported: berth has no such setting");
}

static void ports(struct cctx *c, const struct spec_node *n)
{
    size_t count = n->kind == N_SEQ ? n->n : 1;

    for (size_t i = 0; i < count; i++) {
        const struct spec_node *p = n->kind == N_SEQ ? n->items[i] : n;
        _cleanup_free_ char *s = p->kind == N_MAP && mget(p, "target")
                                     ? sval(c, mget(p, "target"), "ports")
                                     : sval(c, p, "ports");
        if (!s)
            continue;
        const char *target = strrchr(s, ':') ? strrchr(s, ':') + 1 : s;
        NOTE(c, "ports",
             "'%s' not imported: the service listens on the host network directly, on port "
             "%s itself%s",
             s, target,
             strchr(s, ':') ? " (not remapped: change its configuration if that port is taken)"
                            : "");
    }
}

static void security_opt(struct cctx *c, const struct spec_node *n, json_t *svc)
{
    json_t *l = strlist(c, n, "security_opt", false);
    size_t i;
    json_t *v;

    json_array_foreach(l, i, v)
    {
        const char *o = json_string_value(v);
        if (!strcmp(o, "seccomp:unconfined") || !strcmp(o, "seccomp=unconfined"))
            json_object_set_new(svc, "seccomp", json_string("unconfined"));
        else if (!strncmp(o, "seccomp:", 8) || !strncmp(o, "seccomp=", 8)) {
            _cleanup_free_ char *p = rel_path(c, o + 8);
            json_object_set_new(svc, "seccomp", json_string(p));
        } else if (!strncmp(o, "no-new-privileges", 17))
            ; /* berth always sets it */
        else
            NOTE(c, "security_opt", "'%s' not imported: berth has no such option", o);
    }
    json_decref(l);
}

static void ulimits(struct cctx *c, const struct spec_node *n, json_t *limits)
{
    _cleanup_free_ struct pair *v = NULL;
    size_t nv = flat(n, &v);

    for (size_t i = 0; i < nv; i++) {
        const struct spec_node *val = v[i].value;
        if (strcmp(v[i].key->text, "nofile")) {
            NOTE(c, "ulimits", "ulimit '%s' not imported: berth sets only nofile", v[i].key->text);
            continue;
        }
        /* a number, or {soft, hard}: the soft limit is what a process gets */
        const struct spec_node *num = val->kind == N_MAP ? mget(val, "soft") : val;
        _cleanup_free_ char *s = num ? sval(c, num, "ulimits.nofile") : NULL;
        long long x = s ? strtoll(s, NULL, 10) : 0;
        if (x > 0)
            json_object_set_new(limits, "nofile", json_integer(x));
        if (val->kind == N_MAP)
            NOTE(c, "ulimits.nofile", "berth sets one nofile limit: the soft one (%lld)", x);
    }
}

static void command(struct cctx *c, const struct spec_node *svcn, json_t *svc, json_t *image_ep)
{
    const struct spec_node *ep = mget(svcn, "entrypoint"), *cmd = mget(svcn, "command");
    json_t *e = ep ? strlist(c, ep, "entrypoint", true) : NULL;
    json_t *a = cmd ? strlist(c, cmd, "command", true) : NULL;

    if (e && json_array_size(e)) {
        /* Compose: an entrypoint resets the image's cmd */
        if (a)
            json_array_extend(e, a);
        json_object_set_new(svc, "command", e);
        e = NULL;
    } else if (a && json_array_size(a)) {
        /* Compose's command keeps the image's entrypoint; berth's replaces
         * it: put it first */
        json_t *full = json_array();
        if (image_ep)
            json_array_extend(full, image_ep);
        else
            NOTE(c, "command",
                 "the image's entrypoint is unknown: berth's command replaces it; if the image "
                 "has one, put it first in command");
        json_array_extend(full, a);
        json_object_set_new(svc, "command", full);
    }
    json_decref(e);
    json_decref(a);
}

static void mounts(struct cctx *c, const struct spec_node *svcn, json_t *svc)
{
    json_t *mounts = json_array();
    const struct spec_node *v = mget(svcn, "volumes"), *t = mget(svcn, "tmpfs");

    for (size_t i = 0; v && v->kind == N_SEQ && i < v->n; i++) {
        if (v->items[i]->kind == N_MAP) {
            volume_long(c, v->items[i], mounts);
        } else {
            _cleanup_free_ char *s = sval(c, v->items[i], "volumes");
            if (s)
                volume_short(c, s, mounts);
        }
    }
    if (t)
        tmpfs_entries(c, t, mounts);
    if (json_array_size(mounts))
        json_object_set_new(svc, "mounts", mounts);
    else
        json_decref(mounts);
}

static void network_mode(struct cctx *c, const struct spec_node *svcn, json_t *svc)
{
    const struct spec_node *nm = mget(svcn, "network_mode");
    _cleanup_free_ char *s = nm ? sval(c, nm, "network_mode") : NULL;

    if (s && !strcmp(s, "host"))
        return; /* berth's default */
    if (s && !strcmp(s, "none")) {
        json_object_set_new(svc, "network", json_string("none"));
        return;
    }
    if (s)
        NOTE(c, "network_mode", "'%s' not imported: berth has the host network or none", s);
    else if (!mget(svcn, "networks"))
        NOTE(c, "network_mode",
             "Compose puts the service on a bridge network; berth runs it on the host's: it "
             "reaches the others on 127.0.0.1, not by their names, and its ports are the host's");
}

/* Simple fields: a string each */
static void scalars(struct cctx *c, const struct spec_node *svcn, json_t *svc)
{
    static const char *const map[][2] = {
        {"working_dir", "workdir"},
        {"user", "user"},
        {"hostname", "hostname"},
        {"stop_signal", "stop_signal"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
        const struct spec_node *n = mget(svcn, map[i][0]);
        _cleanup_free_ char *s = n ? sval(c, n, map[i][0]) : NULL;
        if (s)
            json_object_set_new(svc, map[i][1], json_string(s));
    }
    const struct spec_node *ro = mget(svcn, "read_only");
    if (ro && ro->kind == N_SCALAR && ro->sk == S_BOOL && ro->bval)
        json_object_set_new(svc, "readonly_rootfs", json_true());
    if (mget(svcn, "stop_grace_period"))
        set_duration(c, svc, "stop_timeout", mget(svcn, "stop_grace_period"), "stop_grace_period");
}

static const char *const handled[] = {
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "working_dir",
    "user",
    "hostname",
    "volumes",
    "tmpfs",
    "read_only",
    "cap_add",
    "cap_drop",
    "mem_limit",
    "memswap_limit",
    "mem_reservation",
    "cpus",
    "cpu_count",
    "pids_limit",
    "deploy",
    "ulimits",
    "healthcheck",
    "restart",
    "stop_signal",
    "stop_grace_period",
    "network_mode",
    "ports",
    "security_opt",
    "profiles",
    NULL,
};

static bool is_handled(const char *k)
{
    for (const char *const *h = handled; *h; h++)
        if (!strcmp(*h, k))
            return true;
    return false;
}

static json_t *service(struct cctx *c, const struct spec_node *n)
{
    json_t *svc = json_object(), *env = json_object(), *limits = json_object();
    _cleanup_free_ struct pair *v = NULL;
    size_t nv = flat(n, &v);

    const struct spec_node *img = mget(n, "image");
    json_t *image_ep = NULL; /* borrowed from the cache */
    _cleanup_free_ char *ref = img ? sval(c, img, "image") : NULL;
    if (!ref) {
        FATAL(c, mget(n, "build") ? "build" : "image",
              "no image: berth runs built images; build and push it (docker build, buildah, "
              "then skopeo copy to a registry) and set image:");
    } else {
        if (mget(n, "build"))
            NOTE(c, "build", "not imported: the image '%s' is used as it is", ref);
        _cleanup_free_ char *url = resolve_image(c, ref, &image_ep);
        if (url)
            json_object_set_new(svc, "image",
                                json_pack("{s:s,s:s#,s:s}", "url", url, "digest",
                                          strstr(url, "@sha256:") + 1, (int)71, "format", "oci"));
    }
    command(c, n, svc, image_ep);
    if (mget(n, "env_file"))
        env_files(c, mget(n, "env_file"), env);
    if (mget(n, "environment"))
        environment(c, mget(n, "environment"), env);
    if (json_object_size(env))
        json_object_set(svc, "env", env);
    scalars(c, n, svc);
    network_mode(c, n, svc);
    mounts(c, n, svc);
    if (mget(n, "restart")) {
        restart(c, mget(n, "restart"), svc);
    } else {
        /* Compose restarts nothing unless asked (deploy.restart_policy, read
         * below, is Swarm's, whose default is any) */
        const struct spec_node *d = mget(n, "deploy");
        if (!d || !mget(d, "restart_policy")) {
            json_object_set_new(svc, "restart", json_string("never"));
            NOTE(c, "restart",
                 "none in the Compose file, where that means \"no\": imported as never (berth's "
                 "default is always)");
        }
    }
    if (mget(n, "profiles")) {
        json_object_set_new(svc, "enabled", json_false());
        NOTE(c, "profiles",
             "Compose starts it only for its profiles: imported with enabled: false (set true "
             "to run it)");
    }
    if (mget(n, "mem_limit"))
        set_memory(c, limits, mget(n, "mem_limit"), "mem_limit");
    if (mget(n, "cpus"))
        set_cpus(c, limits, mget(n, "cpus"), "cpus");
    if (mget(n, "pids_limit"))
        set_pids(c, limits, mget(n, "pids_limit"), "pids_limit");
    if (mget(n, "deploy"))
        deploy(c, mget(n, "deploy"), svc, limits);
    if (mget(n, "ulimits"))
        ulimits(c, mget(n, "ulimits"), limits);
    if (json_object_size(limits))
        json_object_set(svc, "limits", limits);
    if (mget(n, "cap_add"))
        caps(c, mget(n, "cap_add"), svc, "cap_add");
    if (mget(n, "cap_drop"))
        caps(c, mget(n, "cap_drop"), svc, "cap_drop");
    if (mget(n, "security_opt"))
        security_opt(c, mget(n, "security_opt"), svc);
    if (mget(n, "healthcheck"))
        healthcheck(c, mget(n, "healthcheck"), svc);
    if (mget(n, "ports"))
        ports(c, mget(n, "ports"));
    for (size_t i = 0; i < nv; i++) {
        const char *k = v[i].key->text;
        if (!strcmp(k, "memswap_limit") || !strcmp(k, "mem_reservation") || !strcmp(k, "cpu_count"))
            NOTE(c, k, "not imported: berth limits memory and cpus only (limits)");
        else if (strncmp(k, "x-", 2) && !is_handled(k))
            note_unsupported(c, k);
    }
    json_decref(env);
    json_decref(limits);
    return svc;
}

/* ---- the file ---------------------------------------------------------- */

static char *berth_name(const char *s)
{
    char *n = xstrdup(s);

    for (char *p = n; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
        else if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("_.-", *p)))
            *p = '-';
    }
    if (strlen(n) > 63)
        n[63] = '\0';
    if (!((n[0] >= 'a' && n[0] <= 'z') || (n[0] >= '0' && n[0] <= '9'))) {
        char *m = xasprintf("s%s", n);
        free(n);
        n = m;
        n[strlen(n) > 63 ? 63 : strlen(n)] = '\0';
    }
    return n;
}

static void top_level(struct cctx *c, const struct spec_node *root)
{
    _cleanup_free_ struct pair *v = NULL;
    size_t nv = flat(root, &v);

    c->svc = "(file)";
    for (size_t i = 0; i < nv; i++) {
        const char *k = v[i].key->text;
        if (!strcmp(k, "services") || !strcmp(k, "version") || !strcmp(k, "name") ||
            !strncmp(k, "x-", 2))
            continue;
        if (!strcmp(k, "volumes")) {
            _cleanup_free_ struct pair *vols = NULL;
            size_t nvol = flat(v[i].value, &vols);
            for (size_t j = 0; j < nvol; j++) {
                const struct spec_node *d = vols[j].value;
                if (d->kind == N_MAP &&
                    (mget(d, "driver") || mget(d, "external") || mget(d, "driver_opts")))
                    NOTE(c, "volumes",
                         "volume '%s': its driver, options and external data are not imported: "
                         "it is a plain directory",
                         vols[j].key->text);
            }
        } else if (!strcmp(k, "networks")) {
            NOTE(c, k, "not imported: berth runs services on the host's network (or none)");
        } else if (!strcmp(k, "secrets") || !strcmp(k, "configs")) {
            NOTE(c, k, "not imported: mount each file read-only with a bind mount");
        } else {
            NOTE(c, k, "not imported: berth has no such setting");
        }
    }
}

static int import_doc(struct cctx *c, const struct spec_node *root, char **ret, berth_error *err)
{
    const struct spec_node *services = root && root->kind == N_MAP ? mget(root, "services") : NULL;

    if (!services || services->kind != N_MAP)
        return berth_error_set(err, 0, "no services: mapping: not a Compose file");
    json_t *out = json_pack("{s:i,s:{}}", "version", 1, "services");
    json_t *svcs = json_object_get(out, "services");
    _cleanup_free_ struct pair *v = NULL;
    size_t nv = flat(services, &v);
    for (size_t i = 0; i < nv; i++) {
        _cleanup_free_ char *name = berth_name(v[i].key->text);
        c->svc = name;
        if (strcmp(name, v[i].key->text))
            NOTE(c, "name",
                 "the Compose service '%s' is named '%s' (berth's names are "
                 "[a-z0-9][a-z0-9_.-]*)",
                 v[i].key->text, name);
        if (json_object_get(svcs, name)) {
            FATAL(c, "name", "two Compose services are named '%s' in berth", name);
            continue;
        }
        json_t *s = service(c, v[i].value);
        if (berth_notes_fatal(c->notes, name))
            json_decref(s);
        else
            json_object_set_new(svcs, name, s);
    }
    top_level(c, root);
    int r = berth_yaml_emit(&out, 1, ret, err);
    json_decref(out);
    return r;
}

int berth_compose_import(const char *path, const struct berth_compose_options *opt, char **ret,
                         struct berth_notes *notes, berth_error *err)
{
    _cleanup_free_ char *data = NULL;
    size_t len;
    struct spec_doc doc = {0};
    struct spec_yaml_error yerr = {0};
    struct cctx c = {.opt = opt, .notes = notes, .svc = "(file)"};
    int r = -1;

    if (berth_read_file(path, BERTH_SPEC_MAX_SIZE, &data, &len, err) < 0)
        return berth_error_wrap(err, "reading '%s'", path);
    /* bind sources are absolute in berth's file: the directory, resolved */
    const char *slash = strrchr(path, '/');
    _cleanup_free_ char *dir =
        slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
    c.dir = realpath(dir, NULL);
    if (!c.dir)
        return berth_error_set(err, errno, "resolving the directory of '%s'", path);
    _cleanup_free_ char *dotenv = xasprintf("%s/.env", c.dir);
    berth_error ignored = BERTH_ERROR_INIT;
    if (access(dotenv, F_OK) == 0 && read_env_file(dotenv, &c.vars, &c.nvars, &ignored) < 0)
        NOTE(&c, ".env", "%s", ignored.msg);
    for (char *const *e = opt->environ; e && *e; e++)
        if (strchr(*e, '='))
            berth_strv_push(&c.vars, &c.nvars, *e);
    if (spec_yaml_load(&doc, data, len, &yerr) < 0) {
        berth_error_set(err, 0, "%s:%u:%u: %s", path, yerr.line, yerr.col, yerr.msg);
        goto out;
    }
    r = import_doc(&c, doc.root, ret, err);
    if (r < 0)
        berth_error_wrap(err, "'%s'", path);
out:
    spec_yaml_free(&doc);
    berth_strv_free(c.vars);
    for (size_t i = 0; i < c.ncache; i++) {
        free(c.cache[i].ref);
        free(c.cache[i].url);
        json_decref(c.cache[i].entrypoint);
    }
    free(c.cache);
    free(c.dir);
    return r;
}
