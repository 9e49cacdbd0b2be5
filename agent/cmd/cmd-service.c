/* berth stop NAME|--all, berth restart NAME: imperative operations on
 * services through their keepers. The next apply (or the agent) converges
 * again: a stopped service that the file says should run is started. */
#include <stdio.h>
#include <string.h>

#include "apply.h"
#include "cmd.h"
#include "keeper.h"
#include "status.h"
#include "util.h"

/* Every service at once, each with its own stop signal and timeout: the
 * shutdown unit's ExecStop (packaging/berth-shutdown.service.in). */
static int stop_all(struct berth_globals *g)
{
    struct berth_status *v = NULL;
    berth_error err = BERTH_ERROR_INIT;
    size_t n = 0, failed = 0;
    int *fds;

    if (berth_status_list(g->root, &v, &n, &err) < 0) {
        berth_print_error("stop", &err);
        return EXIT_FAIL;
    }
    fds = xcalloc(n ? n : 1, sizeof(*fds));
    for (size_t i = 0; i < n; i++) {
        berth_error_clear(&err);
        if (berth_keeper_stop_begin(g->root, v[i].name, &fds[i], &err) < 0) {
            berth_print_error("stop", &err);
            failed++;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (fds[i] < 0)
            continue;
        berth_error_clear(&err);
        if (berth_keeper_stop_wait(fds[i], v[i].name, &err) < 0) {
            berth_print_error("stop", &err);
            failed++;
        } else {
            printf("stopped '%s'\n", v[i].name);
        }
    }
    free(fds);
    berth_status_list_free(v, n);
    berth_error_clear(&err);
    berth_apply_write_status_summary(g->root, &err);
    return failed ? EXIT_FAIL : EXIT_OK;
}

static int one(int argc, char **argv, struct berth_globals *g, const char *verb)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {"all", no_argument, NULL, 'a'},
        {NULL, 0, NULL, 0},
    };
    berth_error err = BERTH_ERROR_INIT;
    bool all = false;
    int c;

    while ((c = getopt_long(argc, argv, "+hqv", longopts, NULL)) != -1) {
        if (berth_global_option(c, optarg, g))
            continue;
        if (c == 'h') {
            if (!strcmp(verb, "stop"))
                printf("Usage: berth stop [--root DIR] NAME\n"
                       "       berth stop [--root DIR] --all\n\n"
                       "Stop service NAME (its stop signal, then SIGKILL after its stop\n"
                       "timeout) and wait until it is gone. 'berth apply' starts it again\n"
                       "while the file says it should run; use 'enabled: false' to keep it\n"
                       "stopped.\n\n"
                       "  --all   stop every service of the root at once, each with its own\n"
                       "          stop signal and timeout, and wait for all of them (what\n"
                       "          berth-shutdown.service does before the host goes down)\n");
            else
                printf("Usage: berth restart [--root DIR] NAME\n\n"
                       "Restart service NAME: stop it as 'berth stop' does and start it\n"
                       "again under the same keeper; a stopped service is started.\n");
            return EXIT_OK;
        }
        if (c == 'a' && !strcmp(verb, "stop")) {
            all = true;
            continue;
        }
        return berth_usage_error(verb, "unknown option '%s'", argv[optind - 1]);
    }
    if (all) {
        if (optind != argc)
            return berth_usage_error(verb, "--all takes no service name");
        return stop_all(g);
    }
    if (optind + 1 != argc)
        return berth_usage_error(verb, "expected one service name");
    const char *name = argv[optind];
    _cleanup_free_ char *dir = berth_service_dir(g->root, name);
    if (access(dir, F_OK) < 0) {
        berth_die_msg(verb, "no service '%s' under '%s'", name, g->root);
        return EXIT_FAIL;
    }
    if (!strcmp(verb, "stop")) {
        if (berth_keeper_stop(g->root, name, &err) < 0)
            goto fail;
        printf("stopped '%s'\n", name);
    } else if (berth_keeper_alive(g->root, name, NULL)) {
        if (berth_keeper_request(g->root, name, "restart", NULL, 0, &err) < 0)
            goto fail;
        printf("restarting '%s'\n", name);
    } else {
        if (berth_keeper_spawn(g->root, name, "/proc/self/exe", NULL, &err) < 0)
            goto fail;
        printf("started '%s'\n", name);
    }
    berth_apply_write_status_summary(g->root, &err);
    return EXIT_OK;
fail:
    berth_print_error(verb, &err);
    return EXIT_FAIL;
}

int cmd_stop(int argc, char **argv, struct berth_globals *g)
{
    return one(argc, argv, g, "stop");
}

int cmd_restart(int argc, char **argv, struct berth_globals *g)
{
    return one(argc, argv, g, "restart");
}
