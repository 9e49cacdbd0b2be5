/* berth: containers the way you run programs, one declarative file per host.
 * This file holds the global options and the verb table; each verb lives in
 * cmd-<verb>.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "kernel.h"
#include "log.h"
#include "proctitle.h"
#include "selfexe.h"

struct verb {
    const char *name;
    int (*fn)(int argc, char **argv, struct berth_globals *g);
    const char *summary;
    bool enters; /* starts processes in containers: runs from a read-only mount (selfexe.h) */
};

static const struct verb verbs[] = {
    {"validate", cmd_validate, "check a desired-state file; no side effects", false},
    {"diff", cmd_diff, "show the plan: what apply would change (exit 2: changes)", false},
    {"apply", cmd_apply, "converge this host to the desired-state file once", false},
    {"agent", cmd_agent, "stay running: converge on every change of the file", false},
    {"ps", cmd_ps, "list services: state, pid, uptime, restarts, image", false},
    {"status", cmd_status, "the same as ps; --json, --format prometheus", false},
    {"logs", cmd_logs, "print a service's captured output", false},
    {"stop", cmd_stop, "stop one service", false},
    {"restart", cmd_restart, "restart one service", false},
    {"run", cmd_run, "run one container in the foreground, like a program", true},
    {"exec", cmd_exec, "run a command inside a running service's container", true},
    {"fetch", cmd_fetch, "download and verify an image into the store", false},
    {"pin", cmd_pin, "download an image once and print its image: block", false},
    {"images", cmd_images, "list the images in the store", false},
    {"gc", cmd_gc, "remove images that no service uses", false},
    {"schema", cmd_schema, "print the JSON Schema of the desired-state file", false},
    {"keeper", cmd_keeper, "(internal) the supervisor of one service", true},
};

bool berth_global_option(int c, const char *arg, struct berth_globals *g)
{
    switch (c) {
    case OPT_ROOT:
        g->root = arg;
        return true;
    case OPT_CONFIG:
        g->config = arg;
        return true;
    case 'q':
        berth_log_set_level(BERTH_LOG_QUIET);
        return true;
    case 'v':
        berth_log_set_level(berth_log_get_level() > BERTH_LOG_INFO ? BERTH_LOG_INFO
                                                                   : BERTH_LOG_DEBUG);
        return true;
    default:
        return false;
    }
}

static void vmsg(const char *verb, const char *fmt, va_list ap)
{
    char buf[4096];

    vsnprintf(buf, sizeof(buf), fmt, ap);
    if (verb)
        fprintf(stderr, "berth %s: %s\n", verb, buf);
    else
        fprintf(stderr, "berth: %s\n", buf);
}

void berth_die_msg(const char *verb, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vmsg(verb, fmt, ap);
    va_end(ap);
}

void berth_print_error(const char *verb, const berth_error *err)
{
    berth_die_msg(verb, "%s", err->msg[0] ? err->msg : "unknown error");
}

int berth_usage_error(const char *verb, const char *fmt, ...)
{
    va_list ap;

    char buf[2048];

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    /* one line: supervisors and log collectors keep the last line */
    berth_die_msg(verb, "%s (see 'berth %s --help')", buf, verb ? verb : "");
    return EXIT_USAGE;
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: berth [--root DIR] [--config FILE] [-q|-v] COMMAND [ARGS...]\n"
                 "\n"
                 "Run containers like programs and keep this host in the state that one\n"
                 "declarative file describes.\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        fprintf(out, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
    fprintf(out, "\n"
                 "Global options:\n"
                 "  --root DIR       state directory (default " BERTH_DEFAULT_ROOT ")\n"
                 "  --config FILE    desired-state file (default " BERTH_DEFAULT_CONFIG ")\n"
                 "  -q, --quiet      only errors\n"
                 "  -v, --verbose    more detail (twice for debug)\n"
                 "  -h, --help       this help; 'berth COMMAND --help' for a command\n"
                 "  -V, --version    print the version\n"
                 "\n"
                 "Exit status: 0 ok, 1 failure, 2 usage error ('berth diff': changes pending).\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct berth_globals g = {BERTH_DEFAULT_ROOT, BERTH_DEFAULT_CONFIG};
    char **all = argv;
    int c;

    berth_proctitle_init(argc, argv);

    /* '+': stop at the verb; the verb parses the rest */
    while ((c = getopt_long(argc, argv, "+qvhV", longopts, NULL)) != -1) {
        if (berth_global_option(c, optarg, &g))
            continue;
        switch (c) {
        case 'h':
            usage(stdout);
            return EXIT_OK;
        case 'V':
            printf("berth %s\n", BERTH_VERSION);
            return EXIT_OK;
        default:
            fprintf(stderr, "Try 'berth --help'.\n");
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[optind];
    if (!strcmp(name, "help")) {
        usage(stdout);
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (!strcmp(name, verbs[i].name)) {
            berth_error err = {0};
            /* as root only: nobody else can start a container (or mount) */
            if (verbs[i].enters && geteuid() == 0 &&
                (berth_kernel_check(&err) < 0 || berth_selfexe_readonly(all, &err) < 0)) {
                berth_print_error(name, &err);
                return EXIT_FAIL;
            }
            argc -= optind;
            argv += optind;
            optind = 0; /* full getopt re-initialisation for the verb */
            return verbs[i].fn(argc, argv, &g);
        }
    }
    fprintf(stderr, "berth: unknown command '%s'\nTry 'berth --help'.\n", name);
    return EXIT_USAGE;
}
