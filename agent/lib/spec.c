/* The desired-state file: libyaml events → a small node tree (bounded in
 * size, depth and alias expansion) → a validated, typed struct berth_spec.
 *
 * libyaml's own document loader is not used: it neither limits alias
 * expansion nor nesting, and it does not tell a plain scalar's YAML 1.1 type
 * the way PyYAML (and so the JSON Schema tests) see it. Scalars are typed
 * here with PyYAML's implicit resolvers so that berth and the schema agree. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seccomp-profile.h"
#include "spec-yaml.h"
#include "spec.h"
#include "registry.h"
#include "util.h"

/* ---- Errors ------------------------------------------------------------ */

struct ctx {
    const char *file;
    struct berth_spec_errors *errs;
    size_t nerrs;
    bool failed;
    char *path; /* key path of the node being checked */
    size_t plen, pcap;
};

static void add_error(struct ctx *c, unsigned line, unsigned col, const char *path, char *msg)
{
    c->failed = true;
    if (!c->errs || c->nerrs > BERTH_SPEC_MAX_ERRORS) {
        free(msg);
        return;
    }
    if (c->nerrs == BERTH_SPEC_MAX_ERRORS) {
        free(msg);
        msg = xasprintf("too many errors; stopped after %d", BERTH_SPEC_MAX_ERRORS);
        line = col = 0;
        path = "";
    }
    c->nerrs++;
    c->errs->v = xrealloc(c->errs->v, (c->errs->n + 1) * sizeof(*c->errs->v));
    c->errs->v[c->errs->n++] = (struct berth_spec_error){
        .file = xstrdup(c->file),
        .line = line,
        .column = col,
        .path = xstrdup(path),
        .message = msg,
    };
}

__attribute__((format(printf, 4, 5))) static void errat(struct ctx *c, unsigned line, unsigned col,
                                                        const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    va_end(ap);
    add_error(c, line, col, c->path ? c->path : "", msg);
}

#define ERR(c, n, ...) errat((c), (n)->line, (n)->col, __VA_ARGS__)

static size_t path_push(struct ctx *c, const char *key)
{
    size_t old = c->plen, klen = strlen(key);

    if (c->plen + klen + 2 > c->pcap) {
        c->pcap = 2 * (c->plen + klen + 2);
        c->path = xrealloc(c->path, c->pcap);
    }
    if (c->plen)
        c->path[c->plen++] = '.';
    memcpy(c->path + c->plen, key, klen + 1);
    c->plen += klen;
    return old;
}

/* "[i]", written without snprintf: every item of every list pushes one */
static size_t path_push_index(struct ctx *c, size_t i)
{
    size_t old = c->plen;
    char buf[32];
    size_t at = sizeof(buf), k;

    buf[--at] = '\0';
    buf[--at] = ']';
    do
        buf[--at] = (char)('0' + i % 10);
    while (i /= 10);
    buf[--at] = '[';
    k = sizeof(buf) - at - 1;
    if (c->plen + k + 1 > c->pcap) {
        c->pcap = 2 * (c->plen + k + 1);
        c->path = xrealloc(c->path, c->pcap);
    }
    memcpy(c->path + c->plen, buf + at, k + 1);
    c->plen += k;
    return old;
}

static void path_pop(struct ctx *c, size_t old)
{
    c->plen = old;
    if (c->path)
        c->path[old] = '\0';
}

/* Run `stmt` with `key` appended to the error path. */
#define AT(c, key, stmt)                     \
    do {                                     \
        size_t _old = path_push((c), (key)); \
        stmt;                                \
        path_pop((c), _old);                 \
    } while (0)

/* ---- Typed getters ------------------------------------------------------ */

static const char *kind_name(const struct spec_node *n)
{
    switch (n->kind) {
    case N_MAP:
        return "a mapping";
    case N_SEQ:
        return "a list";
    default:
        break;
    }
    switch (n->sk) {
    case S_NULL:
        return "an empty value";
    case S_BOOL:
        return "a boolean";
    case S_INT:
        return "an integer";
    case S_FLOAT:
        return "a number";
    default:
        return "a string";
    }
}

static bool is_str(const struct spec_node *n)
{
    return n->kind == N_SCALAR && n->sk == S_STR;
}

static bool want_str(struct ctx *c, const struct spec_node *n, const char *what)
{
    if (is_str(n)) {
        if (strlen(n->text) == n->len)
            return true;
        ERR(c, n, "%s must not contain a NUL character", what);
        return false;
    }
    ERR(c, n, "expected %s, got %s", what, kind_name(n));
    return false;
}

static bool get_bool(struct ctx *c, const struct spec_node *n, bool *out)
{
    if (n->kind == N_SCALAR && n->sk == S_BOOL) {
        *out = n->bval;
        return true;
    }
    ERR(c, n, "expected true or false, got %s", kind_name(n));
    return false;
}

/* An integer in [min, max]. A float with an integral value counts, as in
 * JSON Schema; hex, octal and sexagesimal forms do not (YAML 1.1 and 1.2
 * disagree on them). */
static bool get_uint(struct ctx *c, const struct spec_node *n, uint64_t min, uint64_t max,
                     uint64_t *out)
{
    if (n->kind == N_SCALAR && n->sk == S_INT && !n->decimal) {
        ERR(c, n, "write the integer '%s' in plain decimal", n->text);
        return false;
    }
    if (n->kind == N_SCALAR && n->sk == S_INT) {
        errno = 0;
        bool neg = n->text[0] == '-';
        unsigned long long v = strtoull(n->text + (n->text[0] == '+' || neg), NULL, 10);
        if (neg && v)
            goto range;
        if (errno || v < min || v > max)
            goto range;
        *out = v;
        return true;
    }
    if (n->kind == N_SCALAR && n->sk == S_FLOAT && n->decimal) {
        double v = strtod(n->text, NULL);
        /* integral? without libm: compare with its truncation */
        if (!isfinite(v) || (v > -9e18 && v < 9e18 && v != (double)(long long)v)) {
            ERR(c, n, "expected an integer, got %s", n->text);
            return false;
        }
        if (v < (double)min || v > (double)max)
            goto range;
        *out = (uint64_t)v;
        return true;
    }
    ERR(c, n, "expected an integer, got %s", kind_name(n));
    return false;
range:
    ERR(c, n, "%s is out of range: must be between %llu and %llu", n->text, (unsigned long long)min,
        (unsigned long long)max);
    return false;
}

static bool get_str(struct ctx *c, const struct spec_node *n, const char *what, char **out)
{
    if (!want_str(c, n, what))
        return false;
    free(*out);
    *out = xstrdup(n->text);
    return true;
}

static bool get_enum(struct ctx *c, const struct spec_node *n, const char *const *names, int *out)
{
    if (is_str(n))
        for (int i = 0; names[i]; i++)
            if (!strcmp(n->text, names[i])) {
                *out = i;
                return true;
            }
    char list[256] = "";
    for (int i = 0; names[i]; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", names[i]);
    if (is_str(n))
        ERR(c, n, "invalid value '%s': expected one of %s", n->text, list);
    else
        ERR(c, n, "expected one of %s, got %s", list, kind_name(n));
    return false;
}

/* ---- Formats (each mirrors a pattern of berth.schema.json) ------------- */

static bool is_lower_or_digit(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}
static bool is_alnum(char ch)
{
    return is_lower_or_digit(ch) || (ch >= 'A' && ch <= 'Z');
}
static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* ^[a-z0-9][a-z0-9_.-]{0,62}$ */
static bool valid_service_name(const char *s)
{
    size_t i;

    if (!is_lower_or_digit(s[0]))
        return false;
    for (i = 1; s[i]; i++)
        if (!is_lower_or_digit(s[i]) && !strchr("_.-", s[i]))
            return false;
    return i <= 63;
}

/* ^[A-Za-z_][A-Za-z0-9_]*$ */
static bool valid_env_name(const char *s)
{
    if (!*s || is_digit(*s))
        return false;
    for (; *s; s++)
        if (!is_alnum(*s) && *s != '_')
            return false;
    return true;
}

static bool is_space(char ch)
{
    return ch == ' ' || (ch >= '\t' && ch <= '\r');
}

/* ^https?://[^\s/?#]+([/?#]\S*)?$ */
static bool valid_url(const char *s)
{
    const char *p;

    if (!strncmp(s, "https://", 8))
        p = s + 8;
    else if (!strncmp(s, "http://", 7))
        p = s + 7;
    else
        return false;
    if (!*p || strchr("/?#", *p))
        return false;
    for (; *p; p++)
        if (is_space(*p))
            return false;
    return true;
}

/* ^sha256:[0-9a-f]{64}$ */
static bool valid_digest(const char *s)
{
    if (strncmp(s, "sha256:", 7) || strlen(s) != 71)
        return false;
    for (s += 7; *s; s++)
        if (!is_digit(*s) && !(*s >= 'a' && *s <= 'f'))
            return false;
    return true;
}

/* ^RW[A-Za-z0-9+/]{54}$ (a minisign public key: "Ed" + key id + key) */
static bool valid_public_key(const char *s)
{
    if (strncmp(s, "RW", 2) || strlen(s) != 56)
        return false;
    for (s += 2; *s; s++)
        if (!is_alnum(*s) && *s != '+' && *s != '/')
            return false;
    return true;
}

/* [a-z_][a-z0-9_.-]* | [0-9]+ */
static const char *user_part(const char *s)
{
    if (is_digit(*s)) {
        while (is_digit(*s))
            s++;
        return s;
    }
    if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
        return NULL;
    for (s++; *s && (is_lower_or_digit(*s) || strchr("_.-", *s)); s++)
        ;
    return s;
}

/* ^(NAME|[0-9]+)(:(NAME|[0-9]+))?$, at most 65 characters */
static bool valid_user(const char *s)
{
    const char *p = user_part(s);

    if (!p || strlen(s) > 65)
        return false;
    if (*p == ':')
        p = user_part(p + 1);
    return p && !*p;
}

/* ^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.same)*$, at most 64 characters */
static bool valid_hostname(const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len > 64)
        return false;
    for (const char *label = s;;) {
        const char *end = strchr(label, '.');
        size_t n = end ? (size_t)(end - label) : strlen(label);
        if (n == 0 || !is_alnum(label[0]) || !is_alnum(label[n - 1]))
            return false;
        for (size_t i = 0; i < n; i++)
            if (!is_alnum(label[i]) && label[i] != '-')
                return false;
        if (!end)
            return true;
        label = end + 1;
    }
}

/* ^[1-9][0-9]*([KMGTkmgt]i?)?[Bb]?$ */
static bool size_syntax(const char *s)
{
    if (*s < '1' || *s > '9')
        return false;
    while (is_digit(*s))
        s++;
    if (*s && strchr("KMGTkmgt", *s)) {
        s++;
        if (*s == 'i')
            s++;
    }
    if (*s == 'B' || *s == 'b')
        s++;
    return *s == '\0';
}

#define SIZE_MAX_BYTES (1ULL << 53)

static bool get_size(struct ctx *c, const struct spec_node *n, uint64_t *out)
{
    if (n->kind == N_SCALAR && (n->sk == S_INT || n->sk == S_FLOAT))
        return get_uint(c, n, 1, SIZE_MAX_BYTES, out);
    if (!want_str(c, n, "a size such as 512M"))
        return false;
    if (!size_syntax(n->text)) {
        ERR(c, n,
            "invalid size '%s': expected a positive number with an optional K, M, G or T "
            "suffix, such as 512M",
            n->text);
        return false;
    }
    if (berth_parse_size(n->text, out) < 0 || *out > SIZE_MAX_BYTES) {
        ERR(c, n, "size '%s' is too large", n->text);
        return false;
    }
    return true;
}

/* ^(0|[1-9][0-9]{0,7})(\.[0-9]{1,3})?(ms|s|m|h)$ → milliseconds, exactly */
static bool parse_duration(const char *s, uint64_t *ret_ms)
{
    uint64_t whole = 0, frac = 0, mul;
    int ndig = 0, nfrac = 0;

    if (*s == '0' && is_digit(s[1]))
        return false;
    for (; is_digit(*s); s++, ndig++)
        whole = whole * 10 + (uint64_t)(*s - '0');
    if (ndig == 0 || ndig > 8)
        return false;
    if (*s == '.') {
        for (s++; is_digit(*s); s++, nfrac++)
            frac = frac * 10 + (uint64_t)(*s - '0');
        if (nfrac == 0 || nfrac > 3)
            return false;
        for (int i = nfrac; i < 3; i++)
            frac *= 10;
    }
    if (!strcmp(s, "ms"))
        mul = 1;
    else if (!strcmp(s, "s"))
        mul = 1000;
    else if (!strcmp(s, "m"))
        mul = 60000;
    else if (!strcmp(s, "h"))
        mul = 3600000;
    else
        return false;
    *ret_ms = whole * mul + (frac * mul + 500) / 1000;
    return true;
}

static bool get_duration(struct ctx *c, const struct spec_node *n, bool positive, uint64_t *out)
{
    if (n->kind == N_SCALAR && (n->sk == S_INT || n->sk == S_FLOAT)) {
        ERR(c, n, "expected a duration with a unit such as 10s, got %s", n->text);
        return false;
    }
    if (!want_str(c, n, "a duration such as 10s"))
        return false;
    if (!parse_duration(n->text, out)) {
        ERR(c, n,
            "invalid duration '%s': expected a number and a unit (ms, s, m or h), such as "
            "1.5s",
            n->text);
        return false;
    }
    if (positive && *out == 0) {
        if (strpbrk(n->text, "123456789")) {
            *out = 1; /* below one millisecond, but not zero */
            return true;
        }
        ERR(c, n, "duration '%s' must be greater than zero", n->text);
        return false;
    }
    return true;
}

/* clang-format off */
static const char *const capability_names[] = {
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE", "ALL", NULL,
};
/* clang-format on */

/* ^(CAP_)?(CHOWN|...|ALL)$ → the name without CAP_ */
static const char *normal_capability(const char *s)
{
    if (!strncmp(s, "CAP_", 4))
        s += 4;
    for (size_t i = 0; capability_names[i]; i++)
        if (!strcmp(s, capability_names[i]))
            return capability_names[i];
    return NULL;
}

static const char *const signal_names[] = {
    "HUP",  "INT",  "QUIT",   "ILL",  "TRAP",  "ABRT", "BUS",  "FPE",  "KILL", "USR1", "SEGV",
    "USR2", "PIPE", "ALRM",   "TERM", "CHLD",  "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
    "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO",   "PWR",  "SYS",  NULL};

/* ^(SIG)?(HUP|INT|...|SYS)$ */
static int signal_number(const char *s)
{
    const char *name = strncmp(s, "SIG", 3) ? s : s + 3;

    for (size_t i = 0; signal_names[i]; i++)
        if (!strcmp(name, signal_names[i]))
            return berth_signal_from_name(name);
    return -1;
}

/* ---- Mappings ---------------------------------------------------------- */

static size_t levenshtein(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[64];

    if (la >= 64 || lb >= 64)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t best = prev + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            prev = cur;
        }
    }
    return row[lb];
}

static int cmp_key_ptr(const void *a, const void *b)
{
    const struct spec_node *x = *(struct spec_node *const *)a, *y = *(struct spec_node *const *)b;
    int r = strcmp(x->text, y->text);

    if (r)
        return r;
    return x->line != y->line ? (x->line < y->line ? -1 : 1) : (x->col < y->col ? -1 : 1);
}

/* Check the keys of mapping `n`: scalars, no duplicates. Duplicates are
 * reported at the later occurrence. Returns false if a key is unusable. */
static bool check_keys(struct ctx *c, const struct spec_node *n, const char *dup_what)
{
    size_t nkeys = n->n / 2;
    bool ok = true;

    for (size_t i = 0; i < nkeys; i++) {
        const struct spec_node *k = n->items[2 * i];
        if (k->kind != N_SCALAR) {
            ERR(c, k, "mapping keys must be plain strings, got %s", kind_name(k));
            ok = false;
        }
    }
    if (!ok || nkeys < 2)
        return ok;
    /* a service's mappings have a few keys: sorted in place on the stack */
    struct spec_node *few[16];
    _cleanup_free_ struct spec_node **many =
        nkeys > ARRAY_SIZE(few) ? xmalloc(nkeys * sizeof(*many)) : NULL;
    struct spec_node **keys = many ? many : few;
    for (size_t i = 0; i < nkeys; i++)
        keys[i] = n->items[2 * i];
    if (many)
        qsort(keys, nkeys, sizeof(*keys), cmp_key_ptr);
    else
        for (size_t i = 1; i < nkeys; i++)
            for (size_t j = i; j > 0 && cmp_key_ptr(&keys[j - 1], &keys[j]) > 0; j--) {
                struct spec_node *t = keys[j];
                keys[j] = keys[j - 1];
                keys[j - 1] = t;
            }
    for (size_t i = 1; i < nkeys; i++)
        if (!strcmp(keys[i]->text, keys[i - 1]->text)) {
            size_t j = i - 1;
            while (j > 0 && !strcmp(keys[j - 1]->text, keys[i]->text))
                j--;
            AT(c, keys[i]->text,
               ERR(c, keys[i], "duplicate %s '%s' (first at line %u)", dup_what, keys[i]->text,
                   keys[j]->line));
        }
    return true;
}

/* `n` must be a mapping with only the keys in `names`; vals[i] is the value
 * of names[i] (the last one when duplicated) or NULL. */
static bool get_map(struct ctx *c, const struct spec_node *n, const char *const *names,
                    const struct spec_node **vals)
{
    if (n->kind != N_MAP) {
        ERR(c, n, "expected a mapping, got %s", kind_name(n));
        return false;
    }
    if (!check_keys(c, n, "key"))
        return false;
    for (size_t i = 0; i < n->n; i += 2) {
        const struct spec_node *k = n->items[i];
        size_t j;
        /* the first byte rules most names out without a call */
        for (j = 0; names[j]; j++)
            if (k->text[0] == names[j][0] && !strcmp(k->text, names[j]))
                break;
        if (names[j]) {
            vals[j] = n->items[i + 1];
            continue;
        }
        const char *best = NULL;
        size_t bestd = 3;
        for (j = 0; names[j]; j++) {
            size_t dist = levenshtein(k->text, names[j]);
            if (dist < bestd && dist < strlen(names[j])) {
                bestd = dist;
                best = names[j];
            }
        }
        if (!strcmp(k->text, "<<"))
            ERR(c, k, "YAML merge keys ('<<') are not supported; repeat the keys");
        else if (best)
            AT(c, k->text, ERR(c, k, "unknown key '%s' (did you mean '%s'?)", k->text, best));
        else
            AT(c, k->text, ERR(c, k, "unknown key '%s'", k->text));
    }
    return true;
}

static void require(struct ctx *c, const struct spec_node *map, const struct spec_node *val,
                    const char *key)
{
    if (!val)
        AT(c, key, ERR(c, map, "missing required key '%s'", key));
}

/* A list of strings, each checked by `check` (NULL: any string). */
static bool get_str_list(struct ctx *c, const struct spec_node *n, size_t min, const char *what,
                         bool (*check)(struct ctx *, const struct spec_node *), char ***ret,
                         size_t *ret_n)
{
    bool ok = true;

    if (n->kind != N_SEQ) {
        ERR(c, n, "expected a list of %s, got %s", what, kind_name(n));
        return false;
    }
    if (n->n < min) {
        ERR(c, n, "expected at least %zu %s", min, what);
        return false;
    }
    char **v = xcalloc(n->n + 1, sizeof(*v));
    for (size_t i = 0; i < n->n; i++) {
        size_t old = path_push_index(c, i);
        const struct spec_node *it = n->items[i];
        if (!want_str(c, it, what) || (check && !check(c, it)))
            ok = false;
        else
            v[i] = xstrdup(it->text);
        path_pop(c, old);
    }
    *ret = v;
    *ret_n = n->n;
    return ok;
}

static bool check_url(struct ctx *c, const struct spec_node *n)
{
    if (valid_url(n->text))
        return true;
    ERR(c, n, "invalid url '%s': expected an http:// or https:// url", n->text);
    return false;
}

/* An image's URL: http(s), or a registry reference pinned by digest. */
static bool check_image_url(struct ctx *c, const struct spec_node *n)
{
    struct berth_registry_ref rr;
    berth_error e = BERTH_ERROR_INIT;

    if (!berth_registry_is_url(n->text))
        return check_url(c, n);
    if (berth_registry_ref_parse(n->text, &rr, &e) < 0) {
        ERR(c, n, "%s", e.msg);
        return false;
    }
    bool pinned = rr.digest != NULL;
    berth_registry_ref_release(&rr);
    if (!pinned)
        ERR(c, n,
            "registry reference '%s' has no digest: write oci://HOST/REPO@sha256:HEX "
            "('berth pin' resolves a tag)",
            n->text);
    return pinned;
}

/* The URLs of one image agree: all registry references of its digest, or
 * all http(s); no signature and no archive format for a registry image. */
static void check_image_urls(struct ctx *c, const struct spec_node *const *v,
                             const struct berth_image_spec *img)
{
    bool reg = berth_registry_is_url(img->url);

    for (size_t i = 0; i < img->nmirrors; i++)
        if (img->mirrors[i] && berth_registry_is_url(img->mirrors[i]) != reg) {
            size_t old = path_push(c, "mirrors");
            size_t old2 = path_push_index(c, i);
            ERR(c, v[1]->items[i],
                "mirror '%s' is %s, the url is %s: an image's URLs are all http(s) or all "
                "registry references",
                img->mirrors[i], reg ? "http(s)" : "a registry reference",
                reg ? "a registry reference" : "http(s)");
            path_pop(c, old2);
            path_pop(c, old);
        }
    if (!reg)
        return;
    const char *urls[] = {img->url};
    for (size_t i = 0; i <= img->nmirrors; i++) {
        const char *u = i ? img->mirrors[i - 1] : urls[0];
        const char *at = u ? strchr(u, '@') : NULL;
        if (at && img->digest && strcmp(at + 1, img->digest)) {
            const struct spec_node *n = i ? v[1]->items[i - 1] : v[0];
            AT(c, i ? "mirrors" : "url",
               ERR(c, n, "'%s' names %s, but the image's digest is %s", u, at + 1, img->digest));
        }
    }
    if (img->format == BERTH_FORMAT_ROOTFS || img->format == BERTH_FORMAT_DOCKER)
        AT(c, "format",
           ERR(c, v[3], "format '%s' is for archives: a registry image is auto or oci",
               v[3]->text));
    if (img->signature_url)
        AT(c, "signature",
           ERR(c, v[4],
               "a registry image takes no signature: its digest pins the manifest, which pins "
               "every layer"));
}

static bool check_abs_path(struct ctx *c, const struct spec_node *n)
{
    if (n->text[0] == '/')
        return true;
    ERR(c, n, "path '%s' must be absolute", n->text);
    return false;
}

static bool check_capability(struct ctx *c, const struct spec_node *n)
{
    if (normal_capability(n->text))
        return true;
    ERR(c, n, "unknown capability '%s' (write it in upper case, such as NET_BIND_SERVICE)",
        n->text);
    return false;
}

/* ---- Service fields ---------------------------------------------------- */

static void parse_signature(struct ctx *c, const struct spec_node *n, struct berth_image_spec *img)
{
    static const char *const keys[] = {"url", "public_key", NULL};
    const struct spec_node *v[2] = {NULL};

    if (!get_map(c, n, keys, v))
        return;
    require(c, n, v[0], "url");
    require(c, n, v[1], "public_key");
    if (v[0])
        AT(c, "url", if (get_str(c, v[0], "a url", &img->signature_url)) check_url(c, v[0]));
    if (v[1] && want_str(c, v[1], "a minisign public key")) {
        if (valid_public_key(v[1]->text))
            img->signature_public_key = xstrdup(v[1]->text);
        else
            AT(c, "public_key",
               ERR(c, v[1],
                   "invalid minisign public key: expected 56 base64 characters "
                   "starting with 'RW'"));
    }
}

static void parse_image(struct ctx *c, const struct spec_node *n, struct berth_image_spec *img)
{
    static const char *const keys[] = {"url", "mirrors", "digest", "format", "signature", NULL};
    static const char *const formats[] = {"auto", "rootfs", "oci", "docker", NULL};
    const struct spec_node *v[5] = {NULL};
    int fmt = 0;

    if (!get_map(c, n, keys, v))
        return;
    require(c, n, v[0], "url");
    require(c, n, v[2], "digest");
    if (v[0])
        AT(c, "url",
           if (want_str(c, v[0], "a url") && check_image_url(c, v[0])) img->url =
               xstrdup(v[0]->text));
    if (v[1])
        AT(c, "mirrors",
           get_str_list(c, v[1], 0, "urls", check_image_url, &img->mirrors, &img->nmirrors));
    if (v[2]) {
        size_t old = path_push(c, "digest");
        if (want_str(c, v[2], "a digest")) {
            if (valid_digest(v[2]->text))
                img->digest = xstrdup(v[2]->text);
            else
                ERR(c, v[2], "invalid digest '%s': expected 'sha256:' and 64 lowercase hex digits",
                    v[2]->text);
        }
        path_pop(c, old);
    }
    if (v[3])
        AT(c, "format",
           if (get_enum(c, v[3], formats, &fmt)) img->format = (enum berth_image_format)fmt);
    if (v[4])
        AT(c, "signature", parse_signature(c, v[4], img));
    if (img->url)
        check_image_urls(c, v, img);
}

static void parse_env(struct ctx *c, const struct spec_node *n, struct berth_service *s)
{
    if (n->kind != N_MAP) {
        ERR(c, n, "expected a mapping of variable names to values, got %s", kind_name(n));
        return;
    }
    if (!check_keys(c, n, "variable"))
        return;
    s->env = xcalloc(n->n / 2 + 1, sizeof(*s->env));
    for (size_t i = 0; i < n->n; i += 2) {
        const struct spec_node *k = n->items[i], *v = n->items[i + 1];
        size_t old = path_push(c, k->text);
        if (!valid_env_name(k->text))
            ERR(c, k,
                "invalid variable name '%s': letters, digits and '_', not starting with a "
                "digit",
                k->text);
        if (v->kind != N_SCALAR || v->sk == S_NULL)
            ERR(c, v, "expected a string, number or boolean value, got %s", kind_name(v));
        else if (strlen(v->text) != v->len)
            ERR(c, v, "value must not contain a NUL character");
        else {
            s->env[s->nenv].name = xstrdup(k->text);
            s->env[s->nenv++].value = xstrdup(v->text);
        }
        path_pop(c, old);
    }
}

static void parse_mount(struct ctx *c, const struct spec_node *n, struct berth_mount *m)
{
    static const char *const keys[] = {"type", "source", "target", "readonly", "size", NULL};
    static const char *const types[] = {"bind", "tmpfs", NULL};
    const struct spec_node *v[5] = {NULL};
    int type = 0;

    if (!get_map(c, n, keys, v))
        return;
    if (v[0])
        AT(c, "type", get_enum(c, v[0], types, &type));
    m->tmpfs = type == 1;
    require(c, n, v[2], "target");
    if (m->tmpfs) {
        if (v[1])
            AT(c, "source", ERR(c, v[1], "a tmpfs mount has no source"));
        if (v[3])
            AT(c, "readonly", ERR(c, v[3], "a tmpfs mount has no readonly option"));
        if (v[4])
            AT(c, "size", get_size(c, v[4], &m->size));
    } else {
        require(c, n, v[1], "source");
        if (v[1])
            AT(c, "source",
               if (want_str(c, v[1], "a path") && check_abs_path(c, v[1])) m->source =
                   xstrdup(v[1]->text));
        if (v[3])
            AT(c, "readonly", get_bool(c, v[3], &m->readonly));
        if (v[4])
            AT(c, "size", ERR(c, v[4], "only a tmpfs mount has a size (add type: tmpfs)"));
    }
    if (v[2])
        AT(c, "target",
           if (want_str(c, v[2], "a path") && check_abs_path(c, v[2])) m->target =
               xstrdup(v[2]->text));
}

static void parse_mounts(struct ctx *c, const struct spec_node *n, struct berth_service *s)
{
    if (n->kind != N_SEQ) {
        ERR(c, n, "expected a list of mounts, got %s", kind_name(n));
        return;
    }
    s->mounts = xcalloc(n->n + 1, sizeof(*s->mounts));
    s->nmounts = n->n;
    for (size_t i = 0; i < n->n; i++) {
        size_t old = path_push_index(c, i);
        parse_mount(c, n->items[i], &s->mounts[i]);
        path_pop(c, old);
    }
}

static void parse_backoff(struct ctx *c, const struct spec_node *n, struct berth_service *s)
{
    static const char *const keys[] = {"initial", "max", "reset_after", NULL};
    const struct spec_node *v[3] = {NULL};

    if (!get_map(c, n, keys, v))
        return;
    if (v[0])
        AT(c, "initial", get_duration(c, v[0], false, &s->backoff.initial_ms));
    if (v[1])
        AT(c, "max", get_duration(c, v[1], false, &s->backoff.max_ms));
    if (v[2])
        AT(c, "reset_after", get_duration(c, v[2], false, &s->backoff.reset_after_ms));
}

static void parse_log(struct ctx *c, const struct spec_node *n, struct berth_service *s)
{
    static const char *const keys[] = {"max_size", "max_files", NULL};
    const struct spec_node *v[2] = {NULL};
    uint64_t files;

    if (!get_map(c, n, keys, v))
        return;
    if (v[0])
        AT(c, "max_size", get_size(c, v[0], &s->log.max_size));
    if (v[1])
        AT(c, "max_files",
           if (get_uint(c, v[1], 1, 1000, &files)) s->log.max_files = (unsigned)files);
}

static void parse_cpus(struct ctx *c, const struct spec_node *n, struct berth_service *s)
{
    double v;

    if (n->kind != N_SCALAR || (n->sk != S_INT && n->sk != S_FLOAT)) {
        ERR(c, n, "expected a number of CPUs such as 1.5, got %s", kind_name(n));
        return;
    }
    if (!n->decimal) {
        ERR(c, n, "write the number '%s' in plain decimal", n->text);
        return;
    }
    v = strtod(n->text, NULL);
    if (!(v >= 0.001 && v <= 4096)) {
        ERR(c, n, "cpus %s is out of range: must be between 0.001 and 4096", n->text);
        return;
    }
    s->limits.cpus_milli = (unsigned)(v * 1000 + 0.5);
}

static void parse_limits(struct ctx *c, const struct spec_node *n, struct berth_service *s)
{
    static const char *const keys[] = {"memory", "cpus", "pids", "nofile", NULL};
    const struct spec_node *v[4] = {NULL};

    if (!get_map(c, n, keys, v))
        return;
    if (v[0])
        AT(c, "memory", get_size(c, v[0], &s->limits.memory));
    if (v[1])
        AT(c, "cpus", parse_cpus(c, v[1], s));
    if (v[2])
        AT(c, "pids", get_uint(c, v[2], 1, 4194304, &s->limits.pids));
    if (v[3])
        AT(c, "nofile", get_uint(c, v[3], 1, 1048576, &s->limits.nofile));
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Normalise (no CAP_ prefix), sort, deduplicate. */
static void normalise_caps(char **v, size_t *n)
{
    size_t k = 0;

    for (size_t i = 0; i < *n; i++) {
        const char *name = v[i] ? normal_capability(v[i]) : NULL;
        free(v[i]);
        v[i] = name ? xstrdup(name) : NULL;
        if (v[i])
            v[k++] = v[i];
    }
    for (size_t i = k; i < *n; i++)
        v[i] = NULL;
    if (k > 1)
        if (k > 1)
            qsort(v, k, sizeof(*v), cmp_str_ptr);
    *n = 0;
    for (size_t i = 0; i < k; i++) {
        if (*n && !strcmp(v[*n - 1], v[i]))
            free(v[i]);
        else
            v[(*n)++] = v[i];
        if (i >= *n)
            v[i] = NULL;
    }
}

static void parse_capabilities(struct ctx *c, const struct spec_node *n, struct berth_service *s)
{
    static const char *const keys[] = {"add", "drop", NULL};
    const struct spec_node *v[2] = {NULL};

    if (!get_map(c, n, keys, v))
        return;
    if (v[0])
        AT(c, "add",
           get_str_list(c, v[0], 0, "capability names", check_capability, &s->cap_add,
                        &s->ncap_add));
    if (v[1])
        AT(c, "drop",
           get_str_list(c, v[1], 0, "capability names", check_capability, &s->cap_drop,
                        &s->ncap_drop));
    normalise_caps(s->cap_add, &s->ncap_add);
    normalise_caps(s->cap_drop, &s->ncap_drop);
}

static void parse_healthcheck(struct ctx *c, const struct spec_node *n, struct berth_service *s)
{
    static const char *const keys[] = {
        "command", "interval", "timeout", "retries", "restart_on_unhealthy", NULL};
    const struct spec_node *v[5] = {NULL};
    uint64_t retries;

    if (!get_map(c, n, keys, v))
        return;
    require(c, n, v[0], "command");
    if (v[0])
        AT(c, "command",
           get_str_list(c, v[0], 1, "command arguments", NULL, &s->healthcheck.command,
                        &s->healthcheck.ncommand));
    if (v[1])
        AT(c, "interval", get_duration(c, v[1], true, &s->healthcheck.interval_ms));
    if (v[2])
        AT(c, "timeout", get_duration(c, v[2], true, &s->healthcheck.timeout_ms));
    if (v[3])
        AT(c, "retries",
           if (get_uint(c, v[3], 1, 1000, &retries)) s->healthcheck.retries = (unsigned)retries);
    if (v[4])
        AT(c, "restart_on_unhealthy", get_bool(c, v[4], &s->healthcheck.restart_on_unhealthy));
}

static void service_defaults(struct berth_service *s)
{
    s->image.format = BERTH_FORMAT_AUTO;
    s->network = BERTH_NETWORK_HOST;
    s->restart = BERTH_RESTART_ALWAYS;
    s->backoff.initial_ms = 1000;
    s->backoff.max_ms = 5 * 60 * 1000;
    s->backoff.reset_after_ms = 10 * 60 * 1000;
    s->log.max_size = 10ULL << 20;
    s->log.max_files = 5;
    s->stop_signal = SIGTERM;
    s->stop_timeout_ms = 10000;
    s->healthcheck.interval_ms = 30000;
    s->healthcheck.timeout_ms = 30000;
    s->healthcheck.retries = 3;
    s->enabled = true;
}

enum {
    K_IMAGE,
    K_COMMAND,
    K_WORKDIR,
    K_USER,
    K_ENV,
    K_NETWORK,
    K_HOSTNAME,
    K_MOUNTS,
    K_READONLY_ROOTFS,
    K_RESTART,
    K_BACKOFF,
    K_LOG,
    K_STOP_SIGNAL,
    K_STOP_TIMEOUT,
    K_LIMITS,
    K_CAPABILITIES,
    K_SECCOMP,
    K_HEALTHCHECK,
    K_ENABLED,
    K_COUNT,
};

static void parse_user(struct ctx *c, const struct spec_node *n, struct berth_service *s)
{
    /* an integer is a uid; PyYAML also reads an unquoted 1000:1000 as one */
    if (n->kind == N_SCALAR && n->sk == S_INT && n->text[0] != '-' && n->text[0] != '+' &&
        valid_user(n->text)) {
        s->user = xstrdup(n->text);
        return;
    }
    if (!want_str(c, n, "a user such as 1000:1000 or www-data"))
        return;
    if (!valid_user(n->text)) {
        ERR(c, n, "invalid user '%s': expected uid[:gid] or name[:group]", n->text);
        return;
    }
    s->user = xstrdup(n->text);
}

static void parse_hostname(struct ctx *c, const struct spec_node *n, struct berth_service *s)
{
    if (!want_str(c, n, "a hostname"))
        return;
    if (valid_hostname(n->text))
        s->hostname = xstrdup(n->text);
    else
        ERR(c, n, "invalid hostname '%s': letters, digits, '-' and '.', at most 64 characters",
            n->text);
}

static void parse_stop_signal(struct ctx *c, const struct spec_node *n, struct berth_service *s)
{
    int sig;

    if (!want_str(c, n, "a signal name such as SIGTERM"))
        return;
    sig = signal_number(n->text);
    if (sig > 0)
        s->stop_signal = sig;
    else
        ERR(c, n, "unknown signal '%s' (write it in upper case, such as SIGTERM)", n->text);
}

/* default | unconfined | an absolute path of a profile file in Docker's
 * format, which must exist and parse now: a service is never started with
 * a profile that is not there */
static void parse_seccomp(struct ctx *c, const struct spec_node *n, struct berth_service *s)
{
    berth_error err = BERTH_ERROR_INIT;
    struct berth_seccomp_profile *p = NULL;

    if (!want_str(c, n, "default, unconfined or the path of a seccomp profile"))
        return;
    if (!strcmp(n->text, "default"))
        return;
    if (strcmp(n->text, "unconfined") && n->text[0] != '/') {
        ERR(c, n,
            "invalid seccomp '%s': expected default, unconfined or an absolute path of a "
            "profile file",
            n->text);
        return;
    }
    if (n->text[0] == '/' && berth_seccomp_profile_load(n->text, &p, &err) < 0) {
        ERR(c, n, "%s", err.msg);
        return;
    }
    berth_seccomp_profile_free(p);
    if (n->text[0] == '/') {
        char hex[65];
        if (berth_sha256_file(n->text, hex, &err) < 0) {
            ERR(c, n, "%s", err.msg);
            return;
        }
        s->seccomp_sha256 = xstrdup(hex);
    }
    s->seccomp = xstrdup(n->text);
}

static void parse_simple_fields(struct ctx *c, const struct spec_node **v, struct berth_service *s)
{
    static const char *const networks[] = {"host", "none", NULL};
    static const char *const restarts[] = {"always", "on-failure", "never", NULL};
    int e;

    if (v[K_COMMAND])
        AT(c, "command",
           get_str_list(c, v[K_COMMAND], 1, "command arguments", NULL, &s->command, &s->ncommand));
    if (v[K_WORKDIR])
        AT(c, "workdir",
           if (want_str(c, v[K_WORKDIR], "a path") && check_abs_path(c, v[K_WORKDIR])) s->workdir =
               xstrdup(v[K_WORKDIR]->text));
    if (v[K_USER])
        AT(c, "user", parse_user(c, v[K_USER], s));
    if (v[K_NETWORK])
        AT(c, "network",
           if (get_enum(c, v[K_NETWORK], networks, &e)) s->network = (enum berth_network)e);
    if (v[K_HOSTNAME])
        AT(c, "hostname", parse_hostname(c, v[K_HOSTNAME], s));
    if (v[K_READONLY_ROOTFS])
        AT(c, "readonly_rootfs", get_bool(c, v[K_READONLY_ROOTFS], &s->readonly_rootfs));
    if (v[K_RESTART])
        AT(c, "restart",
           if (get_enum(c, v[K_RESTART], restarts, &e)) s->restart = (enum berth_restart)e);
    if (v[K_STOP_SIGNAL])
        AT(c, "stop_signal", parse_stop_signal(c, v[K_STOP_SIGNAL], s));
    if (v[K_STOP_TIMEOUT])
        AT(c, "stop_timeout", get_duration(c, v[K_STOP_TIMEOUT], false, &s->stop_timeout_ms));
    if (v[K_ENABLED])
        AT(c, "enabled", get_bool(c, v[K_ENABLED], &s->enabled));
    if (v[K_SECCOMP])
        AT(c, "seccomp", parse_seccomp(c, v[K_SECCOMP], s));
}

static void parse_service(struct ctx *c, const struct spec_node *n, struct berth_service *s)
{
    static const char *const keys[] = {"image",
                                       "command",
                                       "workdir",
                                       "user",
                                       "env",
                                       "network",
                                       "hostname",
                                       "mounts",
                                       "readonly_rootfs",
                                       "restart",
                                       "backoff",
                                       "log",
                                       "stop_signal",
                                       "stop_timeout",
                                       "limits",
                                       "capabilities",
                                       "seccomp",
                                       "healthcheck",
                                       "enabled",
                                       NULL};
    const struct spec_node *v[K_COUNT] = {NULL};

    service_defaults(s);
    if (!get_map(c, n, keys, v))
        return;
    require(c, n, v[K_IMAGE], "image");
    if (v[K_IMAGE])
        AT(c, "image", parse_image(c, v[K_IMAGE], &s->image));
    parse_simple_fields(c, v, s);
    if (v[K_ENV])
        AT(c, "env", parse_env(c, v[K_ENV], s));
    if (v[K_MOUNTS])
        AT(c, "mounts", parse_mounts(c, v[K_MOUNTS], s));
    if (v[K_BACKOFF])
        AT(c, "backoff", parse_backoff(c, v[K_BACKOFF], s));
    if (v[K_LOG])
        AT(c, "log", parse_log(c, v[K_LOG], s));
    if (v[K_LIMITS])
        AT(c, "limits", parse_limits(c, v[K_LIMITS], s));
    if (v[K_CAPABILITIES])
        AT(c, "capabilities", parse_capabilities(c, v[K_CAPABILITIES], s));
    if (v[K_HEALTHCHECK])
        AT(c, "healthcheck", parse_healthcheck(c, v[K_HEALTHCHECK], s));
}

static int cmp_service(const void *a, const void *b)
{
    return strcmp(((const struct berth_service *)a)->name, ((const struct berth_service *)b)->name);
}

static void parse_services(struct ctx *c, const struct spec_node *n, struct berth_spec *spec)
{
    if (n->kind != N_MAP) {
        ERR(c, n, "expected a mapping of service names to services, got %s", kind_name(n));
        return;
    }
    /* duplicate names are reported here; the last definition is checked */
    if (!check_keys(c, n, "service"))
        return;
    spec->services = xcalloc(n->n / 2 + 1, sizeof(*spec->services));
    for (size_t i = 0; i < n->n; i += 2) {
        const struct spec_node *k = n->items[i];
        size_t old = path_push(c, k->text);
        if (!valid_service_name(k->text))
            ERR(c, k,
                "invalid service name '%s': lowercase letters, digits, '_', '.' and '-', "
                "starting with a letter or digit, at most 63 characters",
                k->text);
        struct berth_service *s = &spec->services[spec->nservices++];
        s->name = xstrdup(k->text);
        parse_service(c, n->items[i + 1], s);
        path_pop(c, old);
    }
    if (spec->nservices > 1)
        qsort(spec->services, spec->nservices, sizeof(*spec->services), cmp_service);
}

static void parse_root(struct ctx *c, const struct spec_node *root, struct berth_spec *spec)
{
    static const char *const keys[] = {"version", "services", NULL};
    const struct spec_node *v[2] = {NULL};
    uint64_t version;

    if (root->kind != N_MAP) {
        ERR(c, root,
            "expected a mapping with 'version' and 'services' at the top of the file, "
            "got %s",
            kind_name(root));
        return;
    }
    if (!get_map(c, root, keys, v))
        return;
    require(c, root, v[0], "version");
    require(c, root, v[1], "services");
    if (v[0]) {
        size_t old = path_push(c, "version");
        const struct spec_node *vn = v[0];
        if (vn->kind == N_SCALAR && (vn->sk == S_INT || vn->sk == S_FLOAT) &&
            get_uint(c, vn, 0, UINT32_MAX, &version)) {
            if (version != BERTH_SPEC_VERSION)
                ERR(c, vn, "unsupported version %llu: this berth reads version %d",
                    (unsigned long long)version, BERTH_SPEC_VERSION);
        } else if (!(vn->kind == N_SCALAR && (vn->sk == S_INT || vn->sk == S_FLOAT)))
            ERR(c, vn, "expected the integer %d, got %s", BERTH_SPEC_VERSION, kind_name(vn));
        path_pop(c, old);
        spec->version = BERTH_SPEC_VERSION;
    }
    if (v[1])
        AT(c, "services", parse_services(c, v[1], spec));
}

/* ---- Public API ---------------------------------------------------------- */

static void strv_free(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void service_release(struct berth_service *s)
{
    free(s->name);
    free(s->image.url);
    strv_free(s->image.mirrors, s->image.nmirrors);
    free(s->image.digest);
    free(s->image.signature_url);
    free(s->image.signature_public_key);
    strv_free(s->command, s->ncommand);
    free(s->workdir);
    free(s->user);
    for (size_t i = 0; i < s->nenv; i++) {
        free(s->env[i].name);
        free(s->env[i].value);
    }
    free(s->env);
    free(s->hostname);
    free(s->seccomp);
    free(s->seccomp_sha256);
    berth_mounts_free(s->mounts, s->nmounts);
    strv_free(s->cap_add, s->ncap_add);
    strv_free(s->cap_drop, s->ncap_drop);
    strv_free(s->healthcheck.command, s->healthcheck.ncommand);
}

void berth_spec_release(struct berth_spec *spec)
{
    for (size_t i = 0; i < spec->nservices; i++)
        service_release(&spec->services[i]);
    free(spec->services);
    *spec = (struct berth_spec)BERTH_SPEC_INIT;
}

const struct berth_service *berth_spec_find(const struct berth_spec *spec, const char *name)
{
    struct berth_service key = {.name = (char *)name};

    if (!spec->nservices)
        return NULL;
    return bsearch(&key, spec->services, spec->nservices, sizeof(key), cmp_service);
}

void berth_spec_errors_release(struct berth_spec_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++) {
        free(errs->v[i].file);
        free(errs->v[i].path);
        free(errs->v[i].message);
    }
    free(errs->v);
    errs->v = NULL;
    errs->n = 0;
}

char *berth_spec_error_format(const struct berth_spec_error *e)
{
    const char *sep = e->path[0] ? ": " : "";

    if (e->line == 0)
        return xasprintf("%s: %s%s%s", e->file, e->path, sep, e->message);
    return xasprintf("%s:%u:%u: %s%s%s", e->file, e->line, e->column, e->path, sep, e->message);
}

static int cmp_error(const void *a, const void *b)
{
    const struct berth_spec_error *x = a, *y = b;

    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->column != y->column)
        return x->column < y->column ? -1 : 1;
    return strcmp(x->path, y->path);
}

int berth_spec_parse_buffer(const char *data, size_t len, const char *filename,
                            struct berth_spec *ret, struct berth_spec_errors *errs)
{
    struct ctx c = {.file = filename, .errs = errs};
    struct spec_doc d = {0};
    struct spec_yaml_error yerr = {0};
    size_t first = errs ? errs->n : 0;

    *ret = (struct berth_spec)BERTH_SPEC_INIT;
    if (len > BERTH_SPEC_MAX_SIZE)
        errat(&c, 0, 0, "file too large: %zu bytes, at most %u", len, BERTH_SPEC_MAX_SIZE);
    else if (spec_yaml_load(&d, data, len, &yerr) < 0)
        errat(&c, yerr.line, yerr.col, "%s", yerr.msg);
    else if (!d.root)
        errat(&c, 0, 0, "the file is empty (write 'services: {}' to run no services)");
    else
        parse_root(&c, d.root, ret);
    spec_yaml_free(&d);
    free(c.path);
    if (!c.failed)
        return 0;
    berth_spec_release(ret);
    /* the line:column order reads best; file-level errors (line 0) first */
    if (errs && errs->n - first > 1)
        if (errs->n - first > 1)
            qsort(errs->v + first, errs->n - first, sizeof(*errs->v), cmp_error);
    return -1;
}

int berth_spec_parse_file(const char *path, struct berth_spec *ret, struct berth_spec_errors *errs)
{
    berth_error err = BERTH_ERROR_INIT;
    _cleanup_free_ char *data = NULL;
    size_t len = 0;

    *ret = (struct berth_spec)BERTH_SPEC_INIT;
    if (berth_read_file(path, BERTH_SPEC_MAX_SIZE, &data, &len, &err) < 0) {
        struct ctx c = {.file = path, .errs = errs};
        errat(&c, 0, 0, "%s", err.msg);
        return -1;
    }
    return berth_spec_parse_buffer(data, len, path, ret, errs);
}
