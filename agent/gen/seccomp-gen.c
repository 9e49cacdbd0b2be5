/* Build-time generator: Docker's default seccomp profile (JSON) → the C
 * table `berth_seccomp_default` (agent/lib/seccomp-profile.h), so that starting a
 * container parses no JSON. It parses with the same code as a profile file
 * given at run time (agent/lib/seccomp-json.c).
 *
 *   berth-seccomp-gen default.json berth-seccomp-default.h
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seccomp-profile.h"

static char *slurp(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (!f)
        return NULL;
    do {
        if (len + 65536 > cap && !(buf = realloc(buf, cap = len + 65536)))
            abort();
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    fclose(f);
    *ret_len = len;
    return buf;
}

/* "a\0b\0" as adjacent literals, so that no "\0" runs into a digit */
static void put_strs(FILE *out, const char *s, uint32_t n)
{
    if (!n)
        fputs("\"\"", out);
    for (uint32_t i = 0; i < n; i++, s += strlen(s) + 1)
        fprintf(out, "%s\"%s\\0\"", i % 6 ? " " : "\n        ", s);
}

static void put_profile(FILE *out, const struct berth_seccomp_profile *p, const char *src)
{
    fprintf(out, "/* generated from %s by agent/gen/seccomp-gen.c; do not edit */\n", src);
    for (uint32_t i = 0; i < p->nrules; i++) {
        const struct berth_seccomp_rule *r = &p->rules[i];
        if (!r->nargs)
            continue;
        fprintf(out, "static const struct berth_seccomp_arg args_%u[] = {\n", i);
        for (uint32_t k = 0; k < r->nargs; k++)
            fprintf(out, "    {%u, %u, %#llxULL, %#llxULL},\n", r->args[k].index, r->args[k].op,
                    (unsigned long long)r->args[k].value, (unsigned long long)r->args[k].value_two);
        fputs("};\n", out);
    }
    fputs("static const struct berth_seccomp_rule default_rules[] = {\n", out);
    for (uint32_t i = 0; i < p->nrules; i++) {
        const struct berth_seccomp_rule *r = &p->rules[i];
        fputs("    {", out);
        put_strs(out, r->names, r->nnames);
        fprintf(out, ",\n        %u, %#xU, ", r->nnames, r->action);
        if (r->nargs)
            fprintf(out, "args_%u, %u, ", i, r->nargs);
        else
            fputs("NULL, 0, ", out);
        fprintf(out, "%#llxULL, %#llxULL, %#xU, %#xU, %#xU, %#xU},\n",
                (unsigned long long)r->caps_all, (unsigned long long)r->caps_none, r->arches_in,
                r->arches_out, r->kernel_min, r->kernel_below);
    }
    fputs("};\n", out);
    fprintf(out, "const struct berth_seccomp_profile berth_seccomp_default = {\n    %#xU, ",
            p->default_action);
    put_strs(out, p->arch_groups, p->narch_groups);
    fprintf(out, ",\n    %u, %d, default_rules, %u};\n", p->narch_groups, p->arches_explicit,
            p->nrules);
}

int main(int argc, char **argv)
{
    berth_error err = BERTH_ERROR_INIT;
    struct berth_seccomp_profile *p;
    size_t len;
    char *text;
    FILE *out;

    if (argc != 3) {
        fprintf(stderr, "usage: %s PROFILE.json OUTPUT.h\n", argv[0]);
        return 2;
    }
    text = slurp(argv[1], &len);
    if (!text) {
        fprintf(stderr, "%s: reading '%s': %s\n", argv[0], argv[1], strerror(errno));
        return 1;
    }
    if (berth_seccomp_profile_parse(text, len, argv[1], &p, &err) < 0) {
        fprintf(stderr, "%s: %s\n", argv[0], err.msg);
        return 1;
    }
    out = fopen(argv[2], "w");
    if (!out) {
        fprintf(stderr, "%s: writing '%s': %s\n", argv[0], argv[2], strerror(errno));
        return 1;
    }
    put_profile(out, p, argv[1]);
    if (fclose(out) != 0) {
        fprintf(stderr, "%s: writing '%s': %s\n", argv[0], argv[2], strerror(errno));
        return 1;
    }
    berth_seccomp_profile_free(p);
    free(text);
    return 0;
}
