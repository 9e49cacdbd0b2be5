/* berth exec: run a command inside a running service's container. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "exec-attach.h"
#include "util.h"

static const char usage_text[] =
    "Usage: berth exec [OPTIONS] NAME [--] CMD [ARGS...]\n"
    "\n"
    "Run CMD inside the running service NAME: in its container's pid, mount,\n"
    "uts, ipc and network namespaces and its cgroup, as the service's user, with\n"
    "its environment, working directory, capabilities and open file limit. CMD is\n"
    "looked up in the container's PATH. Signals sent to berth exec are passed on\n"
    "to CMD; if berth exec is killed, CMD is killed too.\n"
    "\n"
    "Options:\n"
    "  -u, --user USER[:GROUP]  run as this user instead of the service's (uid[:gid]\n"
    "                           or names from the image's /etc/passwd; sets HOME)\n"
    "  -e, --env KEY=VALUE      add or override an environment variable (KEY alone:\n"
    "                           copy its value from here)\n"
    "  -w, --workdir DIR        working directory inside the container\n"
    "  -i, --interactive        keep standard input attached (default: /dev/null)\n"
    "  -t, --tty                when standard input is a terminal, run CMD on a new\n"
    "                           pseudo-terminal of the container (raw mode here with\n"
    "                           -i; window size changes follow); otherwise ignored\n"
    "      --timeout DUR        kill CMD and its process group after DUR (like 5s or\n"
    "                           500ms) and exit with 124, as timeout(1) does; CMD\n"
    "                           then runs in a process group of its own\n"
    "      --root DIR           state directory (default " BERTH_DEFAULT_ROOT ")\n"
    "  -h, --help               this help\n"
    "\n"
    "Exit status: CMD's own (128+N when it died of signal N); 127 when CMD is not\n"
    "found in the container, 126 when it cannot be executed, 124 when --timeout\n"
    "expired; 1 when NAME is not a service or is not running, or another error\n"
    "kept CMD from starting (the reason is printed on one line); 2 for a usage\n"
    "error.\n"
    "\n"
    "Examples:\n"
    "  berth exec web -- ps\n"
    "  berth exec -it -u root web -- sh\n"
    "  echo 'SELECT 1' | berth exec -i db -- psql\n";

enum { OPT_TIMEOUT = 0x100 };

#define BAD(...) return berth_usage_error("exec", __VA_ARGS__)

static int parse_args(int argc, char **argv, struct berth_globals *g,
                      struct berth_exec_attach_options *o)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {"user", required_argument, NULL, 'u'},
        {"env", required_argument, NULL, 'e'},
        {"workdir", required_argument, NULL, 'w'},
        {"interactive", no_argument, NULL, 'i'},
        {"tty", no_argument, NULL, 't'},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {NULL, 0, NULL, 0},
    };
    /* '+': options end at NAME; what follows is the command */
    struct berth_getopt opts = {"exec", usage_text, "+:hu:e:w:itqv", longopts, g, NULL, 0};
    int c;

    while ((c = berth_getopt(argc, argv, &opts)) != -1) {
        if (c == BERTH_OPT_EXIT)
            return opts.exit == EXIT_OK ? -1 : opts.exit;
        int r = berth_env_workdir_option("exec", c, optarg, &o->env, &o->nenv, &o->workdir);
        if (r != 0) {
            if (r < 0)
                return berth_usage_code();
            continue;
        }
        switch (c) {
        case 'u':
            o->user = optarg;
            break;
        case 'i':
            o->interactive = true;
            break;
        case 't':
            o->tty = true;
            break;
        case OPT_TIMEOUT:
            if (berth_parse_duration(optarg, &o->timeout_ms) < 0 || !o->timeout_ms ||
                o->timeout_ms > INT32_MAX)
                BAD("invalid --timeout '%s': expected a duration like 5s or 500ms", optarg);
            break;
        }
    }
    if (optind >= argc)
        BAD("no service name given");
    return 0;
}

int cmd_exec(int argc, char **argv, struct berth_globals *g)
{
    struct berth_exec_attach_options o = {0};
    berth_error err = BERTH_ERROR_INIT;
    int r, code;

    r = parse_args(argc, argv, g, &o);
    if (r != 0) {
        free(o.env);
        return r < 0 ? EXIT_OK : EXIT_USAGE;
    }
    const char *name = argv[optind++];
    if (optind < argc && !strcmp(argv[optind], "--"))
        optind++;
    /* a closed stdout must not end us while CMD runs (exec-attach.h) */
    signal(SIGPIPE, SIG_IGN);
    if (optind >= argc)
        r = berth_usage_error("exec", "no command given");
    else if (!*name || strchr(name, '/') || name[0] == '.')
        r = berth_usage_error("exec", "invalid service name '%s'", name);
    else if ((r = berth_exec_attach(g->root, name, argv + optind, &o, &code, &err)) < 0) {
        berth_print_error("exec", &err);
        r = code;
    }
    free(o.env);
    return r;
}
