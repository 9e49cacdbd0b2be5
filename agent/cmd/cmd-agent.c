/* berth agent: converge on every change of the file, and periodically. */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "cmd.h"
#include "log.h"
#include "util.h"

static const char usage_text[] =
    "Usage: berth agent [-f FILE] [--resync DUR] [--settle DUR] [--root DIR]\n"
    "\n"
    "Stay running and keep this host in the state FILE describes (default\n" BERTH_DEFAULT_CONFIG
    "): converge at start, on every change of FILE (edited in place, replaced by\n"
    "rename as Puppet and editors do, or deleted and created again), on SIGHUP, and\n"
    "every --resync period to repair drift. An invalid edit is logged as\n"
    "FILE:LINE:COLUMN and changes nothing: the last valid state stays in force, and\n"
    "'berth status' shows the file is invalid and since when.\n"
    "\n"
    "After replacing a service the agent watches it for a settle window: until its\n"
    "health check passes, or for --settle of staying up without one. A service that\n"
    "crashes or turns unhealthy in that window is rolled back to its previous\n"
    "version, marked rolled-back, and its new spec is not tried again until the\n"
    "file changes.\n"
    "\n"
    "SIGTERM and SIGINT stop the agent only: services keep running under their\n"
    "keepers, and the next agent takes over where this one stopped. Run it under\n"
    "systemd with KillMode=process (packaging/berth-agent.service). Logs go to\n"
    "stderr with levels (journald collects them); -v for info, -vv for debug.\n"
    "\n"
    "Options:\n"
    "  -f, --file FILE    the desired-state file\n"
    "      --resync DUR   periodic reconcile (default 60s)\n"
    "      --settle DUR   settle window without a health check (default 10s)\n"
    "      --health-settle DUR  the longest wait for a health check to pass (default 2m)\n"
    "      --registry-auth FILE  credentials for oci:// registries (Docker's config.json\n"
    "                     \"auths\"; default $REGISTRY_AUTH_FILE)\n"
    "      --root DIR     state directory (default " BERTH_DEFAULT_ROOT ")\n"
    "  -h, --help         this help\n";

/* The command line into `o` (and --registry-auth into fetch): true to go
 * on, else false with the exit status of --help or the usage error in
 * *ret_exit. */
static bool parse_args(int argc, char **argv, struct berth_globals *g,
                       struct berth_agent_options *o, struct berth_fetch_options *fetch,
                       int *ret_exit)
{
    enum { OPT_RESYNC = 0x100, OPT_SETTLE, OPT_HSETTLE, OPT_DEBOUNCE, OPT_AUTH };
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"file", required_argument, NULL, 'f'},
        {"resync", required_argument, NULL, OPT_RESYNC},
        {"settle", required_argument, NULL, OPT_SETTLE},
        {"health-settle", required_argument, NULL, OPT_HSETTLE},
        {"debounce", required_argument, NULL, OPT_DEBOUNCE},
        {"registry-auth", required_argument, NULL, OPT_AUTH},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct berth_getopt opts = {"agent", usage_text, "f:hqv", longopts, g, NULL, 0};
    uint64_t *dur;
    int c;

    while ((c = berth_getopt(argc, argv, &opts)) != -1) {
        switch (c) {
        case BERTH_OPT_EXIT:
            *ret_exit = opts.exit;
            return false;
        case 'f':
            g->config = optarg;
            break;
        case OPT_RESYNC:
        case OPT_SETTLE:
        case OPT_HSETTLE:
        case OPT_DEBOUNCE:
            dur = c == OPT_RESYNC    ? &o->resync_ms
                  : c == OPT_SETTLE  ? &o->settle_ms
                  : c == OPT_HSETTLE ? &o->health_settle_ms
                                     : &o->debounce_ms;
            if (berth_parse_duration(optarg, dur) < 0 || (c == OPT_RESYNC && *dur < 100)) {
                *ret_exit = berth_usage_error("agent", "invalid duration '%s' for '%s'", optarg,
                                              argv[optind - 1]);
                return false;
            }
            break;
        case OPT_AUTH:
            fetch->registry_auth = optarg;
            break;
        }
    }
    if (optind != argc) {
        *ret_exit = berth_usage_error("agent", "unexpected argument '%s'", argv[optind]);
        return false;
    }
    return true;
}

int cmd_agent(int argc, char **argv, struct berth_globals *g)
{
    struct berth_agent_options o;
    struct berth_fetch_options fopt;
    berth_error err = BERTH_ERROR_INIT;
    int rc;

    berth_agent_options_init(&o);
    berth_fetch_options_init(&fopt);
    /* the agent's log is its output: info by default */
    if (berth_log_get_level() > BERTH_LOG_INFO)
        berth_log_set_level(BERTH_LOG_INFO);
    if (!parse_args(argc, argv, g, &o, &fopt, &rc))
        return rc;
    o.root = g->root;
    o.file = g->config;
    o.fetch = &fopt;
    if (berth_agent_run(&o, &err) < 0) {
        berth_print_error("agent", &err);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}
