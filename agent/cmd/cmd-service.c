/* berth stop NAME, berth restart NAME: imperative operations on one service
 * through its keeper. The next apply (or the agent) converges again: a
 * stopped service that the file says should run is started. */
#include <stdio.h>
#include <string.h>

#include "apply.h"
#include "cmd.h"
#include "keeper.h"
#include "util.h"

static int one(int argc, char **argv, struct berth_globals *g, const char *verb)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    berth_error err = BERTH_ERROR_INIT;
    int c;

    while ((c = getopt_long(argc, argv, "+hqv", longopts, NULL)) != -1) {
        if (berth_global_option(c, optarg, g))
            continue;
        if (c == 'h') {
            if (!strcmp(verb, "stop"))
                printf("Usage: berth stop [--root DIR] NAME\n\n"
                       "Stop service NAME (its stop signal, then SIGKILL after its stop\n"
                       "timeout) and wait until it is gone. 'berth apply' starts it again\n"
                       "while the file says it should run; use 'enabled: false' to keep it\n"
                       "stopped.\n");
            else
                printf("Usage: berth restart [--root DIR] NAME\n\n"
                       "Restart service NAME: stop it as 'berth stop' does and start it\n"
                       "again under the same keeper; a stopped service is started.\n");
            return EXIT_OK;
        }
        return berth_usage_error(verb, "unknown option '%s'", argv[optind - 1]);
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
