/* berth apply: converge once. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "apply.h"
#include "cmd.h"
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

struct outcome {
    char *failed; /* "'a', 'b'" */
    int width;    /* of the names' column */
};

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

int cmd_apply(int argc, char **argv, struct berth_globals *g)
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
    struct berth_spec spec = BERTH_SPEC_INIT;
    struct berth_plan plan = {0};
    struct berth_fetch_options fopt;
    berth_error err = BERTH_ERROR_INIT;
    const char *want_plan = NULL;
    bool dry_run = false, purge = false, bad = false;
    int c, lockfd = -1, rc = EXIT_FAIL;

    berth_fetch_options_init(&fopt);
    /* a usage error is reported where it is found, and the exit code chosen
     * once the whole line is read: with --dry-run, 2 means "changes" */
    while ((c = getopt_long(argc, argv, "f:hqv", longopts, NULL)) != -1) {
        if (berth_global_option(c, optarg, g))
            continue;
        int r = berth_fetch_option("apply", c, optarg, &fopt);
        if (r < 0)
            bad = true;
        if (r != 0)
            continue;
        switch (c) {
        case 'f':
            g->config = optarg;
            break;
        case 'n':
            dry_run = true;
            break;
        case 'p':
            want_plan = optarg;
            break;
        case 'P':
            purge = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return EXIT_OK;
        default:
            berth_usage_error("apply", "unknown option '%s'", argv[optind - 1]);
            bad = true;
        }
    }
    if (optind != argc && !bad) {
        berth_usage_error("apply", "unexpected argument '%s'", argv[optind]);
        bad = true;
    }
    if (bad)
        return dry_run ? EXIT_DIFF_USAGE : EXIT_USAGE;
    if (dry_run) {
        char *dargv[] = {"diff", NULL};
        optind = 0;
        return cmd_diff(1, dargv, g);
    }

    lockfd = berth_lock_root(g->root, false, &err);
    if (lockfd < 0 && err.code == EWOULDBLOCK) {
        if (!berth_quiet())
            fprintf(stderr,
                    "berth apply: waiting for '%s/lock' (another apply or the agent holds "
                    "it)\n",
                    g->root);
        berth_error_clear(&err);
        lockfd = berth_lock_root(g->root, true, &err);
    }
    if (lockfd < 0) {
        berth_print_error("apply", &err);
        return EXIT_FAIL;
    }
    if (berth_load_spec(g->config, &spec) < 0)
        goto out;
    if (berth_plan_compute(g->root, &spec, &plan, &err) < 0) {
        berth_print_error("apply", &err);
        goto out;
    }
    if (want_plan && strcmp(want_plan, plan.id)) {
        fprintf(stderr,
                "berth apply: the plan changed since it was reviewed: reviewed %s, now %s; "
                "nothing was changed. The plan now:\n",
                want_plan, plan.id);
        berth_print_plan(stderr, &plan, g->config, false);
        goto out;
    }
    if (!berth_quiet())
        printf("Applying plan %s for '%s'\n", plan.id, g->config);
    fflush(stdout);
    struct outcome outcome = {NULL, berth_plan_name_width(&plan)};
    struct berth_apply_options opt = {
        .exe = "/proc/self/exe", .fetch = &fopt, .report = report, .ud = &outcome, .purge = purge};
    size_t failed = berth_apply_plan(g->root, &plan, &opt);
    if (berth_apply_write_status_summary(g->root, &err) < 0)
        berth_print_error("apply", &err);
    size_t acted = plan.n - plan.counts[BERTH_ACTION_UNCHANGED];
    if (!berth_quiet())
        printf("Applied: %zu changed, %zu failed, %zu unchanged.\n", acted - failed, failed,
               plan.counts[BERTH_ACTION_UNCHANGED]);
    if (failed)
        fprintf(stderr, "berth apply: %zu service%s failed: %s\n", failed, failed == 1 ? "" : "s",
                outcome.failed);
    free(outcome.failed);
    rc = failed ? EXIT_FAIL : EXIT_OK;
out:
    berth_plan_release(&plan);
    berth_spec_release(&spec);
    close(lockfd);
    return rc;
}
