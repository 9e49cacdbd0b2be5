/* Canonical form of a service: a small JSON value tree built from the typed
 * service, written with sorted keys (canonical JSON, its sha256) or
 * flattened into (path, value) leaves for field-by-field diffs. The same
 * tree can be read back from stored canonical JSON, so a stored spec.json
 * and a freshly parsed file flatten identically. */
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "spec.h"
#include "util.h"

enum jkind { J_RAW, J_OBJ, J_ARR };

struct jv {
    enum jkind k;
    char *raw;   /* J_RAW: the scalar's JSON text */
    char **keys; /* J_OBJ */
    struct jv **vals;
    size_t n, cap;
};

struct buf {
    char *s;
    size_t len, cap;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = 2 * (b->len + n + 1) + 64;
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

static void json_quote(struct buf *b, const char *s)
{
    buf_add(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        char esc[8];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            buf_add(b, esc, 2);
        } else if (ch == '\n')
            buf_add(b, "\\n", 2);
        else if (ch == '\t')
            buf_add(b, "\\t", 2);
        else if (ch < 0x20 || ch == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", ch);
            buf_add(b, esc, 6);
        } else
            buf_add(b, p, 1);
    }
    buf_add(b, "\"", 1);
}

/* ---- Tree construction -------------------------------------------------- */

static char *xstrndup(const char *s, size_t n)
{
    char *r = xmalloc(n + 1);

    memcpy(r, s, n);
    r[n] = '\0';
    return r;
}

static struct jv *jv_new(enum jkind k)
{
    struct jv *v = xcalloc(1, sizeof(*v));
    v->k = k;
    return v;
}

static void jv_free(struct jv *v)
{
    if (!v)
        return;
    free(v->raw);
    for (size_t i = 0; i < v->n; i++) {
        if (v->keys)
            free(v->keys[i]);
        jv_free(v->vals[i]);
    }
    free(v->keys);
    free(v->vals);
    free(v);
}

static struct jv *j_raw(char *take)
{
    struct jv *v = jv_new(J_RAW);
    v->raw = take;
    return v;
}

static struct jv *j_str(const char *s)
{
    struct buf b = {0};

    if (!s)
        return j_raw(xstrdup("null"));
    json_quote(&b, s);
    return j_raw(b.s);
}

static struct jv *j_u64(uint64_t u)
{
    return j_raw(xasprintf("%llu", (unsigned long long)u));
}

/* 0 means "not set" for limits */
static struct jv *j_u64_or_null(uint64_t u)
{
    return u ? j_u64(u) : j_raw(xstrdup("null"));
}

static struct jv *j_bool(bool b)
{
    return j_raw(xstrdup(b ? "true" : "false"));
}

static void j_push(struct jv *parent, const char *key, struct jv *v)
{
    if (parent->n == parent->cap) {
        parent->cap = parent->cap ? 2 * parent->cap : 8;
        parent->vals = xrealloc(parent->vals, parent->cap * sizeof(*parent->vals));
        if (parent->k == J_OBJ)
            parent->keys = xrealloc(parent->keys, parent->cap * sizeof(*parent->keys));
    }
    if (parent->k == J_OBJ)
        parent->keys[parent->n] = xstrdup(key);
    parent->vals[parent->n++] = v;
}

static struct jv *j_strv(char *const *v, size_t n, bool null_if_empty)
{
    if (n == 0 && null_if_empty)
        return j_raw(xstrdup("null"));
    struct jv *a = jv_new(J_ARR);
    for (size_t i = 0; i < n; i++)
        j_push(a, NULL, j_str(v[i]));
    return a;
}

static const char *const format_names[] = {"auto", "rootfs", "oci", "docker"};
static const char *const restart_names[] = {"always", "on-failure", "never"};
static const char *const network_names[] = {"host", "none"};

static struct jv *image_tree(const struct berth_image_spec *img)
{
    struct jv *o = jv_new(J_OBJ);

    j_push(o, "url", j_str(img->url));
    j_push(o, "mirrors", j_strv(img->mirrors, img->nmirrors, false));
    j_push(o, "digest", j_str(img->digest));
    j_push(o, "format", j_str(format_names[img->format]));
    if (img->signature_url) {
        struct jv *sig = jv_new(J_OBJ);
        j_push(sig, "url", j_str(img->signature_url));
        j_push(sig, "public_key", j_str(img->signature_public_key));
        j_push(o, "signature", sig);
    } else
        j_push(o, "signature", j_raw(xstrdup("null")));
    return o;
}

static struct jv *mounts_tree(const struct berth_service *s)
{
    struct jv *a = jv_new(J_ARR);

    for (size_t i = 0; i < s->nmounts; i++) {
        const struct berth_spec_mount *m = &s->mounts[i];
        struct jv *o = jv_new(J_OBJ);
        j_push(o, "type", j_str(m->tmpfs ? "tmpfs" : "bind"));
        j_push(o, "target", j_str(m->target));
        if (m->tmpfs)
            j_push(o, "size", j_u64_or_null(m->size));
        else {
            j_push(o, "source", j_str(m->source));
            j_push(o, "readonly", j_bool(m->readonly));
        }
        j_push(a, NULL, o);
    }
    return a;
}

static struct jv *service_tree(const struct berth_service *s)
{
    struct jv *o = jv_new(J_OBJ), *sub;

    j_push(o, "name", j_str(s->name));
    j_push(o, "image", image_tree(&s->image));
    j_push(o, "command", j_strv(s->command, s->ncommand, true));
    j_push(o, "workdir", j_str(s->workdir));
    j_push(o, "user", j_str(s->user));
    sub = jv_new(J_OBJ);
    for (size_t i = 0; i < s->nenv; i++)
        j_push(sub, s->env[i].name, j_str(s->env[i].value));
    j_push(o, "env", sub);
    j_push(o, "network", j_str(network_names[s->network]));
    j_push(o, "hostname", j_str(s->hostname));
    j_push(o, "mounts", mounts_tree(s));
    j_push(o, "readonly_rootfs", j_bool(s->readonly_rootfs));
    j_push(o, "restart", j_str(restart_names[s->restart]));
    sub = jv_new(J_OBJ);
    j_push(sub, "initial", j_u64(s->backoff.initial_ms));
    j_push(sub, "max", j_u64(s->backoff.max_ms));
    j_push(sub, "reset_after", j_u64(s->backoff.reset_after_ms));
    j_push(o, "backoff", sub);
    sub = jv_new(J_OBJ);
    j_push(sub, "max_size", j_u64(s->log.max_size));
    j_push(sub, "max_files", j_u64(s->log.max_files));
    j_push(o, "log", sub);
    j_push(o, "stop_signal", j_str(berth_signal_name(s->stop_signal)));
    j_push(o, "stop_timeout", j_u64(s->stop_timeout_ms));
    sub = jv_new(J_OBJ);
    j_push(sub, "memory", j_u64_or_null(s->limits.memory));
    j_push(sub, "cpus", j_u64_or_null(s->limits.cpus_milli));
    j_push(sub, "pids", j_u64_or_null(s->limits.pids));
    j_push(sub, "nofile", j_u64_or_null(s->limits.nofile));
    j_push(o, "limits", sub);
    sub = jv_new(J_OBJ);
    j_push(sub, "add", j_strv(s->cap_add, s->ncap_add, false));
    j_push(sub, "drop", j_strv(s->cap_drop, s->ncap_drop, false));
    j_push(o, "capabilities", sub);
    /* only when not the default: the specs of services made before berth
     * knew the field keep their hash (an upgrade restarts nothing) */
    if (s->seccomp)
        j_push(o, "seccomp", j_str(s->seccomp));
    if (s->seccomp_sha256)
        j_push(o, "seccomp_sha256", j_str(s->seccomp_sha256));
    if (s->healthcheck.ncommand) {
        sub = jv_new(J_OBJ);
        j_push(sub, "command", j_strv(s->healthcheck.command, s->healthcheck.ncommand, false));
        j_push(sub, "interval", j_u64(s->healthcheck.interval_ms));
        j_push(sub, "timeout", j_u64(s->healthcheck.timeout_ms));
        j_push(sub, "retries", j_u64(s->healthcheck.retries));
        j_push(sub, "restart_on_unhealthy", j_bool(s->healthcheck.restart_on_unhealthy));
        j_push(o, "healthcheck", sub);
    } else
        j_push(o, "healthcheck", j_raw(xstrdup("null")));
    j_push(o, "enabled", j_bool(s->enabled));
    return o;
}

/* ---- Writing ------------------------------------------------------------ */

static int cmp_key_index(const void *a, const void *b, void *obj)
{
    const struct jv *o = obj;

    return strcmp(o->keys[*(const size_t *)a], o->keys[*(const size_t *)b]);
}

/* Indices of an object's members in bytewise key order. */
static size_t *sorted_members(const struct jv *o)
{
    size_t *idx = xmalloc((o->n + 1) * sizeof(*idx));

    for (size_t i = 0; i < o->n; i++)
        idx[i] = i;
    if (o->n > 1)
        qsort_r(idx, o->n, sizeof(*idx), cmp_key_index, (void *)o);
    return idx;
}

static void jv_write(struct buf *b, const struct jv *v)
{
    if (v->k == J_RAW) {
        buf_puts(b, v->raw);
        return;
    }
    if (v->k == J_ARR) {
        buf_add(b, "[", 1);
        for (size_t i = 0; i < v->n; i++) {
            if (i)
                buf_add(b, ",", 1);
            jv_write(b, v->vals[i]);
        }
        buf_add(b, "]", 1);
        return;
    }
    _cleanup_free_ size_t *idx = sorted_members(v);
    buf_add(b, "{", 1);
    for (size_t i = 0; i < v->n; i++) {
        if (i)
            buf_add(b, ",", 1);
        json_quote(b, v->keys[idx[i]]);
        buf_add(b, ":", 1);
        jv_write(b, v->vals[idx[i]]);
    }
    buf_add(b, "}", 1);
}

char *berth_service_canonical_json(const struct berth_service *svc)
{
    struct jv *t = service_tree(svc);
    struct buf b = {0};

    jv_write(&b, t);
    jv_free(t);
    return b.s;
}

void berth_service_hash(const struct berth_service *svc, char out[65])
{
    _cleanup_free_ char *json = berth_service_canonical_json(svc);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (!EVP_Digest(json, strlen(json), md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        abort(); /* sha256 of memory cannot fail short of OOM */
    berth_hex(md, 32, out);
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

static bool all_raw(const struct jv *a)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->vals[i]->k != J_RAW)
            return false;
    return true;
}

static void flatten(struct fields *f, struct buf *path, const struct jv *v)
{
    size_t plen = path->len;

    if (v->k == J_RAW || (v->k == J_ARR && all_raw(v))) {
        struct buf val = {0};
        jv_write(&val, v);
        field_add(f, path->s ? path->s : "", val.s);
        return;
    }
    if (v->k == J_ARR) {
        for (size_t i = 0; i < v->n; i++) {
            char idx[32];
            snprintf(idx, sizeof(idx), "[%zu]", i);
            buf_puts(path, idx);
            flatten(f, path, v->vals[i]);
            path->len = plen;
            path->s[plen] = '\0';
        }
        return;
    }
    _cleanup_free_ size_t *idx = sorted_members(v);
    for (size_t i = 0; i < v->n; i++) {
        if (plen)
            buf_add(path, ".", 1);
        buf_puts(path, v->keys[idx[i]]);
        flatten(f, path, v->vals[idx[i]]);
        path->len = plen;
        if (path->s)
            path->s[plen] = '\0';
    }
}

static size_t tree_fields(const struct jv *t, struct berth_field **ret)
{
    struct fields f = {0};
    struct buf path = {0};

    flatten(&f, &path, t);
    free(path.s);
    *ret = f.v;
    return f.n;
}

size_t berth_service_fields(const struct berth_service *svc, struct berth_field **ret)
{
    struct jv *t = service_tree(svc);
    size_t n = tree_fields(t, ret);

    jv_free(t);
    return n;
}

void berth_fields_free(struct berth_field *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(fields[i].path);
        free(fields[i].value);
    }
    free(fields);
}

/* ---- Reading canonical JSON back ---------------------------------------- */

struct jp {
    const char *s;
    int depth;
};

static struct jv *jp_value(struct jp *p);

/* A JSON string starting at p->s; returns its raw text (with quotes) and,
 * when `decoded` is set, the unescaped text (only the escapes json_quote
 * writes, plus \/ \b \f \r). */
static char *jp_string(struct jp *p, char **decoded)
{
    const char *start = p->s;
    struct buf d = {0};

    if (*p->s != '"')
        return NULL;
    for (p->s++; *p->s != '"'; p->s++) {
        char ch = *p->s;
        if (!ch || (unsigned char)ch < 0x20)
            goto fail;
        if (ch == '\\') {
            char e = *++p->s;
            unsigned u;
            if (e == 'u') {
                if (sscanf(p->s + 1, "%4x", &u) != 1 || u == 0 || u > 0x7f)
                    goto fail;
                ch = (char)u;
                p->s += 4;
            } else {
                const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
                const char *k = e ? strchr(from, e) : NULL;
                if (!k)
                    goto fail;
                ch = to[k - from];
            }
        }
        buf_add(&d, &ch, 1);
    }
    p->s++;
    if (decoded)
        *decoded = d.s ? d.s : xstrdup("");
    else
        free(d.s);
    return xstrndup(start, (size_t)(p->s - start));
fail:
    free(d.s);
    return NULL;
}

static struct jv *jp_container(struct jp *p, bool obj)
{
    struct jv *v = jv_new(obj ? J_OBJ : J_ARR);
    char close = obj ? '}' : ']';

    if (++p->depth > 32)
        goto fail;
    p->s++;
    if (*p->s == close) {
        p->s++;
        p->depth--;
        return v;
    }
    for (;;) {
        _cleanup_free_ char *key = NULL;
        if (obj) {
            free(jp_string(p, &key));
            if (!key || *p->s++ != ':')
                goto fail;
        }
        struct jv *item = jp_value(p);
        if (!item)
            goto fail;
        j_push(v, key, item);
        if (*p->s == ',') {
            p->s++;
            continue;
        }
        if (*p->s++ != close)
            goto fail;
        p->depth--;
        return v;
    }
fail:
    jv_free(v);
    return NULL;
}

static struct jv *jp_value(struct jp *p)
{
    const char *start = p->s;

    if (*p->s == '{' || *p->s == '[')
        return jp_container(p, *p->s == '{');
    if (*p->s == '"') {
        char *raw = jp_string(p, NULL);
        return raw ? j_raw(raw) : NULL;
    }
    static const char *const words[] = {"null", "true", "false"};
    for (size_t i = 0; i < ARRAY_SIZE(words); i++)
        if (!strncmp(p->s, words[i], strlen(words[i]))) {
            p->s += strlen(words[i]);
            return j_raw(xstrndup(start, (size_t)(p->s - start)));
        }
    while (*p->s >= '0' && *p->s <= '9')
        p->s++;
    if (p->s == start)
        return NULL;
    return j_raw(xstrndup(start, (size_t)(p->s - start)));
}

long berth_canonical_json_fields(const char *json, struct berth_field **ret)
{
    struct jp p = {json, 0};
    struct jv *t = jp_value(&p);
    long n;

    *ret = NULL;
    if (!t || *p.s || t->k != J_OBJ) {
        jv_free(t);
        return -1;
    }
    n = (long)tree_fields(t, ret);
    jv_free(t);
    return n;
}
