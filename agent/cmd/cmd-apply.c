/* berth apply: converge once. */
#include <stdio.h>
#include <stdlib.h>

#include "cmd.h"
#include "converge.h"
#include "image-opts.h"
#include "plan.h"
#include "util.h"

static const char usage_text[] =
    "Usage: berth apply [-f FILE] [--dry-run] [--plan ID] [--purge] [-q] [--root DIR]\n"
    "\n"
    "Bring this host to the state FILE describes (default " BERTH_DEFAULT_CONFIG "):\n"
    "validate it, compute the plan (see 'berth diff'), fetch and verify every image\n"
    "the plan needs, then create, replace, start, stop and remove services. Each\n"
    "service runs under its own keeper process, which outlives this command.\n"
    "An invalid file changes nothing. A service whose image cannot be fetched or\n"
    "verified, or which does not start, fails on its own: its running version is\n"
    "left alone and the other services still converge.\n"
    "\n"
    "Options:\n"
    "  -f, --file FILE   the desired-state file\n"
    "      --dry-run     print the plan only, and exit, as 'berth diff' does\n"
    "      --plan ID     apply only if the plan is still the one 'berth diff' showed\n"
    "                    as ID; otherwise change nothing and exit 1\n"
    "      --purge       delete the logs of the services it removes, and those kept of\n"
    "                    services removed before (kept otherwise for 7 days under\n"
    "                    ROOT/removed/; 'berth logs NAME' reads them)\n" BERTH_FETCH_OPTIONS_HELP
    "  -q, --quiet       print only what failed (on standard error), not the\n"
    "                    report of each service\n"
    "      --root DIR    state directory (default " BERTH_DEFAULT_ROOT ")\n"
    "  -h, --help        this help\n"
    "\n"
    "Concurrent applies (and the agent) are serialised on ROOT/lock: a second\n"
    "apply says that it waits, then waits for the first to finish.\n"
    "\n"
    "Exit status: 0 converged, 1 a service failed or the file is invalid, 2 usage\n"
    "error; with --dry-run those of 'berth diff' (0 in sync, 2 changes pending,\n"
    "64 usage error).\n";

/* What the converge reports into, for the lines after it. */
struct outcome {
    const char *root, *config;
    char *failed; /* "'a', 'b'" */
    int width;    /* of the names' column */
};

static void waiting(void *ud)
{
    const struct outcome *o = ud;

    if (!berth_quiet())
        fprintf(stderr,
                "berth apply: waiting for '%s/lock' (another apply or the agent holds it)\n",
                o->root);
}

static void planned(void *ud, const struct berth_plan *plan)
{
    struct outcome *o = ud;

    o->width = berth_plan_name_width(plan);
    if (!berth_quiet())
        printf("Applying plan %s for '%s'\n", plan->id, o->config);
    fflush(stdout);
}

static void report(void *ud, const struct berth_plan_item *it, int rc, const char *msg)
{
    static const char *const done[BERTH_ACTION_N] = {"created", "replaced", "removed",
                                                     "started", "stopped",  "unchanged"};
    struct outcome *o = ud;

    if (rc == 0 && berth_quiet()) {
        /* -q: errors only */
    } else if (rc == 0 && it->action == BERTH_ACTION_START && it->orphaned) {
        printf("  %-*s adopted (its keeper was gone; the container ran on)\n", o->width, it->name);
    } else if (rc == 0) {
        printf("  %-*s %s\n", o->width, it->name, done[it->action]);
    } else {
        fprintf(berth_quiet() ? stderr : stdout, "  %-*s FAILED to %s: %s\n", o->width, it->name,
                berth_action_name(it->action), msg);
        char *more =
            xasprintf("%s%s'%s'", o->failed ? o->failed : "", o->failed ? ", " : "", it->name);
        free(o->failed);
        o->failed = more;
    }
    fflush(stdout);
}

static void print_outcome(const struct berth_converge *res, const struct outcome *o)
{
    const struct berth_plan *plan = &res->plan;
    size_t unchanged = plan->counts[BERTH_ACTION_UNCHANGED];

    if (res->summary_error.msg[0])
        berth_print_error("apply", &res->summary_error);
    if (!berth_quiet())
        printf("Applied: %zu changed, %zu failed, %zu unchanged.\n",
               plan->n - unchanged - res->failed, res->failed, unchanged);
    if (res->failed)
        fprintf(stderr, "berth apply: %zu service%s failed: %s\n", res->failed,
                res->failed == 1 ? "" : "s", o->failed);
}

struct apply_args {
    struct berth_fetch_options fetch;
    const char *want_plan;
    bool dry_run, purge;
};

/* The command line into `a`: true to go on, else false with the exit
 * status in *ret_exit. A usage error is reported where it is found, and
 * the exit code chosen once the whole line is read: with --dry-run, 2
 * means "changes". */
static bool parse_args(int argc, char **argv, struct berth_globals *g, struct apply_args *a,
                       int *ret_exit)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"file", required_argument, NULL, 'f'},
        {"dry-run", no_argument, NULL, 'n'},
        {"plan", required_argument, NULL, 'p'},
        {"purge", no_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        BERTH_FETCH_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    struct berth_getopt o = {"apply", usage_text, "f:hqv", longopts, g, &a->fetch, 0};
    bool bad = false;
    int c;

    berth_fetch_options_init(&a->fetch);
    while ((c = berth_getopt(argc, argv, &o)) != -1) {
        if (c == BERTH_OPT_EXIT && o.exit == EXIT_OK) { /* --help */
            *ret_exit = EXIT_OK;
            return false;
        }
        bad |= c == BERTH_OPT_EXIT;
        if (c == 'f')
            g->config = optarg;
        else if (c == 'n')
            a->dry_run = true;
        else if (c == 'p')
            a->want_plan = optarg;
        else if (c == 'P')
            a->purge = true;
    }
    if (optind != argc && !bad) {
        berth_usage_error("apply", "unexpected argument '%s'", argv[optind]);
        bad = true;
    }
    if (bad)
        *ret_exit = a->dry_run ? EXIT_DIFF_USAGE : EXIT_USAGE;
    return !bad;
}

int cmd_apply(int argc, char **argv, struct berth_globals *g)
{
    struct apply_args a = {0};
    struct berth_spec spec = BERTH_SPEC_INIT;
    struct berth_converge res;
    berth_error err = BERTH_ERROR_INIT;
    int rc;

    if (!parse_args(argc, argv, g, &a, &rc))
        return rc;
    if (a.dry_run) {
        char *dargv[] = {"diff", NULL};
        optind = 0;
        return cmd_diff(1, dargv, g);
    }
    if (berth_load_spec(g->config, &spec) < 0)
        return EXIT_FAIL;
    struct outcome outcome = {.root = g->root, .config = g->config};
    struct berth_converge_options opt = {.root = g->root,
                                         .exe = "/proc/self/exe",
                                         .fetch = &a.fetch,
                                         .want_plan = a.want_plan,
                                         .purge = a.purge,
                                         .waiting = waiting,
                                         .planned = planned,
                                         .report = report,
                                         .ud = &outcome};
    rc = berth_converge_once(&spec, &opt, &res, &err);
    if (rc < 0 && res.planned) { /* not the plan reviewed */
        fprintf(stderr, "berth apply: %s. The plan now:\n", err.msg);
        berth_print_plan(stderr, &res.plan, g->config, false);
    } else if (rc < 0) {
        berth_print_error("apply", &err);
    } else {
        print_outcome(&res, &outcome);
    }
    /* the plan points into the spec */
    berth_converge_release(&res);
    berth_spec_release(&spec);
    free(outcome.failed);
    return rc < 0 || res.failed ? EXIT_FAIL : EXIT_OK;
}
