/* berth: containers the way you run programs, one declarative file per host.
 * This file holds the global options and the verb table; each verb lives in
 * cmd-<verb>.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "events.h"
#include "image-opts.h"
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
    {"events", cmd_events, "what happened to the services and why: exits, restarts, rollbacks",
     false},
    {"logs", cmd_logs, "print a service's captured output", false},
    {"stats", cmd_stats, "what each service uses: CPU, memory, pids, OOM kills", false},
    {"stop", cmd_stop, "stop one service", false},
    {"restart", cmd_restart, "restart one service", false},
    /* run re-executes itself only when it must (cmd-run.c) */
    {"run", cmd_run, "run one container in the foreground, like a program", false},
    {"exec", cmd_exec, "run a command inside a running service's container", true},
    {"fetch", cmd_fetch, "download and verify an image into the store", false},
    {"pin", cmd_pin, "download an image once and print its image: block", false},
    {"images", cmd_images, "list the images in the store", false},
    {"gc", cmd_gc, "remove images that no service uses", false},
    {"export", cmd_export, "the services for Kubernetes (kube) or as a systemd unit", false},
    {"import", cmd_import, "a desired-state file from a docker-compose.yml", false},
    {"schema", cmd_schema, "print the JSON Schema of the desired-state file", false},
    {"keeper", cmd_keeper, "(internal) the supervisor of one service", true},
};

static int usage_code = EXIT_USAGE;

int berth_usage_code(void)
{
    return usage_code;
}

void berth_set_usage_code(int code)
{
    usage_code = code;
}

bool berth_quiet(void)
{
    return berth_log_get_level() >= BERTH_LOG_QUIET;
}

bool berth_colour(const struct berth_globals *g, int fd)
{
    const char *v;

    if (g->colour != BERTH_COLOUR_AUTO)
        return g->colour == BERTH_COLOUR_ALWAYS;
    if ((v = getenv("NO_COLOR")) && *v)
        return false;
    if ((v = getenv("TERM")) && !strcmp(v, "dumb"))
        return false;
    return isatty(fd);
}

bool berth_global_option(int c, const char *arg, struct berth_globals *g)
{
    switch (c) {
    case OPT_COLOR:
        if (!strcmp(arg, "auto"))
            g->colour = BERTH_COLOUR_AUTO;
        else if (!strcmp(arg, "always"))
            g->colour = BERTH_COLOUR_ALWAYS;
        else if (!strcmp(arg, "never"))
            g->colour = BERTH_COLOUR_NEVER;
        else
            exit(berth_usage_error(NULL, "invalid --color '%s': expected auto, always or never",
                                   arg));
        return true;
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

int berth_getopt(int argc, char **argv, struct berth_getopt *o)
{
    int c;

    while ((c = getopt_long(argc, argv, o->shortopts, o->longopts, NULL)) != -1) {
        if (berth_global_option(c, optarg, o->g))
            continue;
        int r = o->fetch ? berth_fetch_option(o->verb, c, optarg, o->fetch) : 0;
        if (r > 0)
            continue;
        if (r < 0) {
            o->exit = EXIT_USAGE;
        } else if (c == 'h' && o->usage) {
            fputs(o->usage, stdout);
            o->exit = EXIT_OK;
        } else if (c == ':') {
            o->exit = berth_usage_error(o->verb, "option '%s' needs a value", argv[optind - 1]);
        } else if (c == '?') {
            o->exit = berth_usage_error(o->verb, "unknown option '%s'", argv[optind - 1]);
        } else {
            return c;
        }
        return BERTH_OPT_EXIT;
    }
    return -1;
}

int berth_since_option(const char *verb, const char *arg, int64_t *ret_us)
{
    if (berth_parse_since(arg, berth_realtime_us(), ret_us) == 0)
        return 0;
    return berth_usage_error(verb,
                             "invalid --since '%s': expected an RFC 3339 time "
                             "(2026-12-07T16:00:00Z) or a duration (10m, 1h)",
                             arg);
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
    if (verb)
        berth_die_msg(verb, "%s (see 'berth %s --help')", buf, verb);
    else
        berth_die_msg(NULL, "%s (see 'berth --help')", buf);
    return usage_code;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: berth [--root DIR] [--config FILE] [-q|-v] [--color WHEN] COMMAND [ARGS...]\n"
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
                 "      --color WHEN auto (default), always or never: colour on a terminal;\n"
                 "                   auto colours nothing when NO_COLOR is set (not empty)\n"
                 "                   or TERM is 'dumb'\n"
                 "  -h, --help       this help; 'berth COMMAND --help' for a command\n"
                 "  -V, --version    print the version\n"
                 "\n"
                 "Options go before or after a command's operands (GNU style), except for\n"
                 "'run' and 'exec', whose options end at the image or service: what follows\n"
                 "is the command to run. '--' ends the options of every command.\n"
                 "These global options are accepted by every command, too.\n"
                 "\n"
                 "Exit status: 0 ok, 1 failure, 2 usage error; 'berth diff' (and 'apply\n"
                 "--dry-run'): 2 changes pending, 64 usage error (sysexits' EX_USAGE).\n");
}

/* The verb on the command line, found before the global options are
 * parsed, so that a usage error in them exits with the verb's usage code
 * ('berth --bogus diff' must not exit 2, "changes pending"). */
static const char *find_verb(int argc, char **argv)
{
    static const char *const with_value[] = {"--root", "--config", "--color", "--colour"};

    for (int i = 1; i < argc; i++) {
        bool skip = false;
        if (!strcmp(argv[i], "--"))
            return i + 1 < argc ? argv[i + 1] : NULL;
        if (argv[i][0] != '-' || !argv[i][1])
            return argv[i];
        for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++)
            skip |= !strcmp(argv[i], with_value[k]);
        i += skip;
    }
    return NULL;
}

/* Run the verb argv[0] with the rest of the line. */
static int run_verb(int argc, char **argv, struct berth_globals *g)
{
    const char *name = argv[0];

    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (strcmp(name, verbs[i].name))
            continue;
        berth_error err = BERTH_ERROR_INIT;
        /* as root only: nobody else can start a container (or mount) */
        if (verbs[i].enters && geteuid() == 0 &&
            (berth_kernel_check(&err) < 0 || berth_selfexe_readonly(g->argv, &err) < 0)) {
            berth_print_error(name, &err);
            return EXIT_FAIL;
        }
        optind = 0; /* full getopt re-initialisation for the verb */
        return verbs[i].fn(argc, argv, g);
    }
    fprintf(stderr, "berth: unknown command '%s'\nTry 'berth --help'.\n", name);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct berth_globals g = {BERTH_DEFAULT_ROOT, BERTH_DEFAULT_CONFIG, BERTH_COLOUR_AUTO, argv};
    const char *verb;
    int c;

    berth_proctitle_init(argc, argv);

    verb = find_verb(argc, argv);
    if (verb && !strcmp(verb, "diff"))
        berth_set_usage_code(EXIT_DIFF_USAGE);
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
            return berth_usage_code();
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[optind], "help")) {
        usage(stdout);
        return EXIT_OK;
    }
    return run_verb(argc - optind, argv + optind, &g);
}
