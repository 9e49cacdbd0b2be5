/* berth validate: parse and check a desired-state file, no side effects.
 * Usable as Puppet's validate_cmd ("berth validate %"). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "spec.h"
#include "util.h"

static const char usage_text[] =
    "Usage: berth validate [--json] [FILE|-]\n"
    "\n"
    "Parse and validate a desired-state file against schema version 1 (see\n"
    "'berth schema'). Nothing is changed. Every error is printed on stderr as\n"
    "FILE:LINE:COLUMN: KEY.PATH: message. FILE defaults to --config\n"
    "(" BERTH_DEFAULT_CONFIG "); '-' reads standard input.\n"
    "\n"
    "Options:\n"
    "      --json    print {\"valid\": bool, \"errors\": [...]} on stdout instead\n"
    "  -h, --help    this help\n"
    "\n"
    "Exit status: 0 valid, 1 invalid or unreadable, 2 usage error.\n"
    "\n"
    "Examples:\n"
    "  berth validate /etc/berth/services.yaml\n"
    "  puppet: validate_cmd => '/usr/bin/berth validate %'\n";

enum { OPT_JSON = 0x100 };

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch == '\n')
            fputs("\\n", out);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static void print_json(const struct berth_spec_errors *errs, bool valid)
{
    printf("{\"valid\":%s,\"errors\":[", valid ? "true" : "false");
    for (size_t i = 0; i < errs->n; i++) {
        const struct berth_spec_error *e = &errs->v[i];
        printf("%s{\"file\":", i ? "," : "");
        json_string(stdout, e->file);
        printf(",\"line\":%u,\"column\":%u,\"path\":", e->line, e->column);
        json_string(stdout, e->path);
        printf(",\"message\":");
        json_string(stdout, e->message);
        printf("}");
    }
    printf("]}\n");
}

static int read_stdin(char **ret, size_t *ret_len)
{
    size_t len = 0, cap = 65536;
    char *buf = xmalloc(cap);

    for (;;) {
        ssize_t n;
        if (len == cap) {
            if (cap > BERTH_SPEC_MAX_SIZE) /* enough to report "too large" */
                break;
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        n = read(STDIN_FILENO, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free(buf);
            return -errno;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    *ret = buf;
    *ret_len = len;
    return 0;
}

int cmd_validate(int argc, char **argv, struct berth_globals *g)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct berth_spec spec = BERTH_SPEC_INIT;
    struct berth_spec_errors errs = BERTH_SPEC_ERRORS_INIT;
    bool json = false;
    const char *path;
    int c, r;

    while ((c = getopt_long(argc, argv, "hqv", longopts, NULL)) != -1) {
        if (berth_global_option(c, optarg, g))
            continue;
        switch (c) {
        case OPT_JSON:
            json = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return EXIT_OK;
        default:
            return berth_usage_error("validate", "unknown option");
        }
    }
    if (argc - optind > 1)
        return berth_usage_error("validate", "expected at most one FILE");
    path = optind < argc ? argv[optind] : g->config;

    if (!strcmp(path, "-")) {
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        if ((r = read_stdin(&data, &len)) < 0) {
            berth_die_msg("validate", "reading standard input: %s", strerror(-r));
            return EXIT_FAIL;
        }
        r = berth_spec_parse_buffer(data, len, "<stdin>", &spec, &errs);
    } else
        r = berth_spec_parse_file(path, &spec, &errs);

    if (json)
        print_json(&errs, r == 0);
    else
        for (size_t i = 0; i < errs.n; i++) {
            _cleanup_free_ char *line = berth_spec_error_format(&errs.v[i]);
            fprintf(stderr, "%s\n", line);
        }
    berth_spec_release(&spec);
    berth_spec_errors_release(&errs);
    return r == 0 ? EXIT_OK : EXIT_FAIL;
}
