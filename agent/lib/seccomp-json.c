/* Docker's seccomp profile format → struct berth_seccomp_profile. Also
 * compiled into the build-time generator (agent/gen/seccomp-gen.c), so it
 * uses nothing of libberth but errors and capability names. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <jansson.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caps.h"
#include "seccomp-profile.h"

#define FAIL(...) berth_error_set(err, EINVAL, __VA_ARGS__)

static void *zalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);

    if (!p)
        abort();
    return p;
}

/* A growing buffer of NUL-terminated strings. */
struct strs {
    char *buf;
    size_t len;
    uint32_t n;
};

static void strs_add(struct strs *s, const char *str, size_t n)
{
    char *b = realloc(s->buf, s->len + n + 1);

    if (!b)
        abort();
    memcpy(b + s->len, str, n);
    b[s->len + n] = '\0';
    s->buf = b;
    s->len += n + 1;
    s->n++;
}

static const struct {
    const char *name;
    uint32_t bit;
} goarches[] = {
    {"amd64", BERTH_SECCOMP_GOARCH_AMD64},     {"x32", BERTH_SECCOMP_GOARCH_X32},
    {"x86", BERTH_SECCOMP_GOARCH_X86},         {"386", BERTH_SECCOMP_GOARCH_386},
    {"arm", BERTH_SECCOMP_GOARCH_ARM},         {"arm64", BERTH_SECCOMP_GOARCH_ARM64},
    {"ppc64le", BERTH_SECCOMP_GOARCH_PPC64LE}, {"s390x", BERTH_SECCOMP_GOARCH_S390X},
    {"riscv64", BERTH_SECCOMP_GOARCH_RISCV64},
};

static const struct {
    const char *name;
    uint32_t op;
} ops[] = {
    {"SCMP_CMP_NE", SCMP_CMP_NE},
    {"SCMP_CMP_LT", SCMP_CMP_LT},
    {"SCMP_CMP_LE", SCMP_CMP_LE},
    {"SCMP_CMP_EQ", SCMP_CMP_EQ},
    {"SCMP_CMP_GE", SCMP_CMP_GE},
    {"SCMP_CMP_GT", SCMP_CMP_GT},
    {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
};

/* "SCMP_ARCH_X86_64" → "x86_64", which libseccomp must know */
static int arch_name(const char *scmp, char *out, size_t size)
{
    size_t i = 0;

    if (strncmp(scmp, "SCMP_ARCH_", 10) != 0 || strlen(scmp + 10) + 1 > size)
        return -1;
    for (const char *p = scmp + 10; *p; p++)
        out[i++] = (char)tolower((unsigned char)*p);
    out[i] = '\0';
    return seccomp_arch_resolve_name(out) ? 0 : -1;
}

static int action_of(const char *s, json_t *errno_ret, uint32_t *ret)
{
    int e = json_is_integer(errno_ret) ? (int)json_integer_value(errno_ret) : EPERM;

    if (e < 0 || e > 4095)
        return -1;
    if (!strcmp(s, "SCMP_ACT_ALLOW"))
        *ret = SCMP_ACT_ALLOW;
    else if (!strcmp(s, "SCMP_ACT_ERRNO"))
        *ret = SCMP_ACT_ERRNO((unsigned)e);
    else if (!strcmp(s, "SCMP_ACT_TRACE"))
        *ret = SCMP_ACT_TRACE((unsigned)e);
    else if (!strcmp(s, "SCMP_ACT_KILL") || !strcmp(s, "SCMP_ACT_KILL_THREAD"))
        *ret = SCMP_ACT_KILL_THREAD;
    else if (!strcmp(s, "SCMP_ACT_KILL_PROCESS"))
        *ret = SCMP_ACT_KILL_PROCESS;
    else if (!strcmp(s, "SCMP_ACT_TRAP"))
        *ret = SCMP_ACT_TRAP;
    else if (!strcmp(s, "SCMP_ACT_LOG"))
        *ret = SCMP_ACT_LOG;
    else
        return -1;
    return 0;
}

/* "4.8" (or "5.10.0-rc1") → 4 << 16 | 8 */
static int kernel_of(const char *s, uint32_t *ret)
{
    unsigned major, minor;

    if (sscanf(s, "%u.%u", &major, &minor) != 2 || major > 65535 || minor > 65535)
        return -1;
    *ret = major << 16 | minor;
    return 0;
}

static int parse_cond(json_t *o, bool include, struct berth_seccomp_rule *r, const char *where,
                      berth_error *err)
{
    const char *what = include ? "includes" : "excludes";
    json_t *v;
    size_t i;

    if (!o || json_is_null(o))
        return 0;
    if (!json_is_object(o))
        return FAIL("%s: '%s' is not an object", where, what);
    json_array_foreach(json_object_get(o, "caps"), i, v)
    {
        berth_error e = BERTH_ERROR_INIT;
        uint64_t m = 0;
        if (!json_is_string(v))
            return FAIL("%s: %s.caps[%zu] is not a string", where, what, i);
        /* one capability a name: ALL is none in a profile */
        bool known = berth_caps_from_name(json_string_value(v), &m, &e) == 0 && m != ~0ULL;
        if (!known && include)
            r->arches_in = BERTH_SECCOMP_GOARCH_OTHER; /* never held: never applies */
        else if (known)
            *(include ? &r->caps_all : &r->caps_none) |= m;
    }
    json_array_foreach(json_object_get(o, "arches"), i, v)
    {
        uint32_t bit = BERTH_SECCOMP_GOARCH_OTHER;
        if (!json_is_string(v))
            return FAIL("%s: %s.arches[%zu] is not a string", where, what, i);
        for (size_t k = 0; k < sizeof(goarches) / sizeof(goarches[0]); k++)
            if (!strcmp(goarches[k].name, json_string_value(v)))
                bit = goarches[k].bit;
        *(include ? &r->arches_in : &r->arches_out) |= bit;
    }
    v = json_object_get(o, "minKernel");
    if (v && !json_is_null(v) &&
        (!json_is_string(v) ||
         kernel_of(json_string_value(v), include ? &r->kernel_min : &r->kernel_below) < 0))
        return FAIL("%s: %s.minKernel: expected a kernel version such as \"4.8\"", where, what);
    return 0;
}

static int parse_args(json_t *a, struct berth_seccomp_rule *r, const char *where, berth_error *err)
{
    struct berth_seccomp_arg *args;
    json_t *v;
    size_t i;

    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a))
        return FAIL("%s: 'args' is not an array", where);
    args = zalloc(json_array_size(a), sizeof(*args));
    r->args = args;
    json_array_foreach(a, i, v)
    {
        json_t *idx = json_object_get(v, "index");
        const char *op = json_string_value(json_object_get(v, "op"));
        args[i].op = 0;
        for (size_t k = 0; op && k < sizeof(ops) / sizeof(ops[0]); k++)
            if (!strcmp(ops[k].name, op))
                args[i].op = ops[k].op;
        if (!json_is_integer(idx) || json_integer_value(idx) < 0 || json_integer_value(idx) > 5)
            return FAIL("%s: args[%zu]: 'index' must be 0 to 5", where, i);
        if (!args[i].op)
            return FAIL("%s: args[%zu]: unknown op '%s'", where, i, op ? op : "(none)");
        args[i].index = (uint32_t)json_integer_value(idx);
        args[i].value = (uint64_t)json_integer_value(json_object_get(v, "value"));
        args[i].value_two = (uint64_t)json_integer_value(json_object_get(v, "valueTwo"));
        r->nargs++;
    }
    return 0;
}

static int parse_rule(json_t *o, struct berth_seccomp_rule *r, const char *where, berth_error *err)
{
    struct strs names = {0};
    const char *action = json_string_value(json_object_get(o, "action"));
    json_t *v, *names_a = json_object_get(o, "names");
    size_t i;

    if (!json_is_object(o))
        return FAIL("%s: not an object", where);
    if (json_is_string(json_object_get(o, "name")))
        strs_add(&names, json_string_value(json_object_get(o, "name")),
                 strlen(json_string_value(json_object_get(o, "name"))));
    if (names_a && !json_is_array(names_a))
        return FAIL("%s: 'names' is not an array", where);
    json_array_foreach(names_a, i, v)
    {
        if (!json_is_string(v)) {
            free(names.buf);
            return FAIL("%s: names[%zu] is not a string", where, i);
        }
        strs_add(&names, json_string_value(v), json_string_length(v));
    }
    r->names = names.buf ? names.buf : zalloc(1, 1);
    r->nnames = names.n;
    if (!action || action_of(action, json_object_get(o, "errnoRet"), &r->action) < 0)
        return FAIL("%s: unknown action '%s'", where, action ? action : "(none)");
    if (parse_args(json_object_get(o, "args"), r, where, err) < 0 ||
        parse_cond(json_object_get(o, "includes"), true, r, where, err) < 0 ||
        parse_cond(json_object_get(o, "excludes"), false, r, where, err) < 0)
        return -1;
    return 0;
}

static int parse_arches(json_t *o, struct berth_seccomp_profile *p, struct strs *groups,
                        berth_error *err)
{
    json_t *archs = json_object_get(o, "architectures"), *map = json_object_get(o, "archMap");
    char group[256], one[32];
    json_t *v, *s;
    size_t i, k;

    if (json_array_size(archs) && json_array_size(map))
        return FAIL("'architectures' and 'archMap' were both given: use one");
    if (json_array_size(archs)) {
        p->arches_explicit = 1;
        map = NULL;
        group[0] = '\0';
        json_array_foreach(archs, i, v)
        {
            if (!json_is_string(v) || arch_name(json_string_value(v), one, sizeof(one)) < 0)
                return FAIL("architectures[%zu]: unknown architecture", i);
            if (strlen(group) + strlen(one) + 2 > sizeof(group))
                return FAIL("too many architectures");
            strcat(strcat(group, *group ? " " : ""), one);
        }
        strs_add(groups, group, strlen(group));
    }
    json_array_foreach(map, i, v)
    {
        const char *main = json_string_value(json_object_get(v, "architecture"));
        if (!main || arch_name(main, group, sizeof(group)) < 0)
            return FAIL("archMap[%zu]: unknown architecture '%s'", i, main ? main : "(none)");
        json_array_foreach(json_object_get(v, "subArchitectures"), k, s)
        {
            if (!json_is_string(s) || arch_name(json_string_value(s), one, sizeof(one)) < 0)
                return FAIL("archMap[%zu].subArchitectures[%zu]: unknown architecture", i, k);
            if (strlen(group) + strlen(one) + 2 > sizeof(group))
                return FAIL("archMap[%zu]: too many architectures", i);
            strcat(strcat(group, " "), one);
        }
        strs_add(groups, group, strlen(group));
    }
    return 0;
}

static int parse_profile(json_t *o, struct berth_seccomp_profile *p, berth_error *err)
{
    const char *def = json_string_value(json_object_get(o, "defaultAction"));
    json_t *calls = json_object_get(o, "syscalls"), *v;
    struct berth_seccomp_rule *rules;
    struct strs groups = {0};
    char where[64];
    size_t i;
    int r;

    if (!json_is_object(o))
        return FAIL("expected a JSON object");
    if (!def || action_of(def, json_object_get(o, "defaultErrnoRet"), &p->default_action) < 0)
        return FAIL("unknown defaultAction '%s'", def ? def : "(none)");
    r = parse_arches(o, p, &groups, err);
    p->arch_groups = groups.buf ? groups.buf : zalloc(1, 1);
    p->narch_groups = groups.n;
    if (r < 0)
        return -1;
    if (calls && !json_is_null(calls) && !json_is_array(calls))
        return FAIL("'syscalls' is not an array");
    rules = zalloc(json_array_size(calls), sizeof(*rules));
    p->rules = rules;
    json_array_foreach(calls, i, v)
    {
        snprintf(where, sizeof(where), "syscalls[%zu]", i);
        p->nrules++;
        if (parse_rule(v, &rules[i], where, err) < 0)
            return -1;
    }
    return 0;
}

int berth_seccomp_profile_parse(const char *text, size_t len, const char *name,
                                struct berth_seccomp_profile **ret, berth_error *err)
{
    struct berth_seccomp_profile *p;
    json_error_t jerr;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);

    if (!o)
        return berth_error_set(err, EINVAL, "seccomp profile '%s': line %d, column %d: %s", name,
                               jerr.line, jerr.column, jerr.text);
    p = zalloc(1, sizeof(*p));
    if (parse_profile(o, p, err) < 0) {
        json_decref(o);
        berth_seccomp_profile_free(p);
        return berth_error_wrap(err, "seccomp profile '%s'", name);
    }
    json_decref(o);
    *ret = p;
    return 0;
}

void berth_seccomp_profile_free(struct berth_seccomp_profile *p)
{
    if (!p)
        return;
    for (uint32_t i = 0; i < p->nrules; i++) {
        free((void *)p->rules[i].names);
        free((void *)p->rules[i].args);
    }
    free((void *)p->rules);
    free((void *)p->arch_groups);
    free(p);
}

int berth_seccomp_profile_load(const char *path, struct berth_seccomp_profile **ret,
                               berth_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int r = -1;

    if (fd < 0)
        return berth_error_set(err, errno, "seccomp profile '%s'", path);
    if (fstat(fd, &st) < 0)
        berth_error_set(err, errno, "seccomp profile '%s'", path);
    else if (!S_ISREG(st.st_mode))
        berth_error_set(err, EINVAL, "seccomp profile '%s': not a regular file", path);
    else if (st.st_size > (off_t)BERTH_SECCOMP_PROFILE_MAX)
        berth_error_set(err, EFBIG, "seccomp profile '%s': larger than %u bytes", path,
                        BERTH_SECCOMP_PROFILE_MAX);
    else
        r = 0;
    if (r == 0) {
        buf = zalloc((size_t)st.st_size + 1, 1);
        while (len < (size_t)st.st_size) {
            ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                r = berth_error_set(err, errno, "reading the seccomp profile '%s'", path);
            if (n <= 0)
                break;
            len += (size_t)n;
        }
    }
    close(fd);
    if (r == 0)
        r = berth_seccomp_profile_parse(buf, len, path, ret, err);
    free(buf);
    return r;
}
