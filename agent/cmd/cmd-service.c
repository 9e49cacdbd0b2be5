/* berth stop NAME|--all, berth restart NAME: imperative operations on
 * services through their keepers, which return once the transition is done
 * (the old instance gone, the new one running) unless --no-wait. The next
 * apply (or the agent) converges again: a stopped service that the file
 * says should run is started. */
#include <stdio.h>
#include <string.h>

#include "apply.h"
#include "cmd.h"
#include "keeper.h"
#include "record.h"
#include "status.h"
#include "util.h"

/* Every service at once, each with its own stop signal and timeout: the
 * shutdown unit's ExecStop (packaging/berth-shutdown.service.in). */
struct service_opts {
    bool all, no_wait;
    uint64_t timeout_ms;
};

static int stop_all(struct berth_globals *g, const struct service_opts *o)
{
    uint64_t deadline = berth_now_ms() + o->timeout_ms;
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
        if (berth_keeper_stop_wait_until(fds[i], v[i].name, deadline, &err) < 0) {
            berth_print_error("stop", &err);
            failed++;
        } else {
            printf("stopped '%s'\n", v[i].name);
        }
    }
    free(fds);
    berth_status_list_free(v, n);
    berth_error_clear(&err);
    if (berth_apply_write_status_summary(g->root, &err) < 0)
        berth_print_error("stop", &err);
    return failed ? EXIT_FAIL : EXIT_OK;
}

static void print_help(const char *verb)
{
    if (!strcmp(verb, "stop"))
        printf("Usage: berth stop [--no-wait] [--timeout DUR] [--root DIR] NAME\n"
               "       berth stop [--timeout DUR] [--root DIR] --all\n\n"
               "Stop service NAME (its stop signal, then SIGKILL after its stop\n"
               "timeout) and return once it is gone. 'berth apply' starts it again\n"
               "while the file says it should run; use 'enabled: false' to keep it\n"
               "stopped.\n\n"
               "  --all           stop every service of the root at once, each with its\n"
               "                  own stop signal and timeout, and wait for all of them\n"
               "                  (what berth-shutdown.service does before the host goes\n"
               "                  down)\n"
               "  --no-wait       return once the keeper has the request\n"
               "  --timeout DUR   wait at most DUR (default 15m); then exit 1, the keeper\n"
               "                  goes on stopping it\n"
               "\nExit status: 0 stopped, 1 failure or timeout.\n");
    else
        printf("Usage: berth restart [--no-wait] [--timeout DUR] [--root DIR] NAME\n\n"
               "Restart service NAME under the same keeper: stop it as 'berth stop'\n"
               "does, start it again, and return once the new instance runs (a service\n"
               "in backoff starts at once; a stopped or failed one gets a keeper). The\n"
               "restart counts in 'manual_restarts', not in 'restarts' (crashes).\n\n"
               "  --no-wait       return once the keeper has the request\n"
               "  --timeout DUR   wait at most DUR (default 15m); then exit 1, the keeper\n"
               "                  goes on restarting it\n"
               "\nExit status: 0 running again, 1 its start failed, it was stopped\n"
               "meanwhile, or the wait timed out.\n");
}

static int parse(int argc, char **argv, struct berth_globals *g, const char *verb,
                 struct service_opts *o)
{
    enum { OPT_NO_WAIT = 0x100, OPT_TIMEOUT };
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {"all", no_argument, NULL, 'a'},
        {"no-wait", no_argument, NULL, OPT_NO_WAIT},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {NULL, 0, NULL, 0},
    };
    int c;

    o->timeout_ms = BERTH_KEEPER_WAIT_MS;
    while ((c = getopt_long(argc, argv, "hqv", longopts, NULL)) != -1) {
        if (berth_global_option(c, optarg, g))
            continue;
        switch (c) {
        case 'h':
            print_help(verb);
            return EXIT_OK;
        case 'a':
            if (strcmp(verb, "stop"))
                break;
            o->all = true;
            continue;
        case OPT_NO_WAIT:
            o->no_wait = true;
            continue;
        case OPT_TIMEOUT:
            if (berth_parse_duration(optarg, &o->timeout_ms) < 0)
                return berth_usage_error(verb, "invalid --timeout '%s' (a duration: 30s, 2m)",
                                         optarg);
            continue;
        default:
            break;
        }
        return berth_usage_error(verb, "unknown option '%s'", argv[optind - 1]);
    }
    if (o->all && optind != argc)
        return berth_usage_error(verb, "--all takes no service name");
    if (o->all && o->no_wait)
        return berth_usage_error(verb, "--all always waits");
    if (!o->all && optind + 1 != argc)
        return berth_usage_error(verb, "expected one service name");
    return -1;
}

static int stop_one(struct berth_globals *g, const char *name, const struct service_opts *o,
                    berth_error *err)
{
    int fd;

    if (o->no_wait) {
        if (!berth_record_keeper_alive(g->root, name, NULL)) {
            printf("'%s' is not running\n", name);
            return 0;
        }
        if (berth_keeper_request(g->root, name, "stop", NULL, 0, err) < 0)
            return -1;
        printf("stopping '%s'\n", name);
        return 0;
    }
    if (berth_keeper_stop_begin(g->root, name, &fd, err) < 0 ||
        (fd >= 0 &&
         berth_keeper_stop_wait_until(fd, name, berth_now_ms() + o->timeout_ms, err) < 0))
        return -1;
    printf("stopped '%s'\n", name);
    return 0;
}

static int restart_one(struct berth_globals *g, const char *name, const struct service_opts *o,
                       berth_error *err)
{
    pid_t pid = 0;

    if (!berth_record_keeper_alive(g->root, name, NULL)) {
        if (berth_keeper_spawn(g->root, name, "/proc/self/exe", NULL, err) < 0)
            return -1;
        printf("started '%s'\n", name);
    } else if (o->no_wait) {
        if (berth_keeper_request(g->root, name, "restart", NULL, 0, err) < 0)
            return -1;
        printf("restarting '%s'\n", name);
    } else {
        if (berth_keeper_restart(g->root, name, o->timeout_ms, &pid, err) < 0)
            return -1;
        printf("restarted '%s' (pid %d)\n", name, (int)pid);
    }
    return 0;
}

static int one(int argc, char **argv, struct berth_globals *g, const char *verb)
{
    struct service_opts o = {0};
    berth_error err = BERTH_ERROR_INIT;
    int r = parse(argc, argv, g, verb, &o);

    if (r >= 0)
        return r;
    if (o.all)
        return stop_all(g, &o);
    const char *name = argv[optind];
    _cleanup_free_ char *dir = berth_record_dir(g->root, name);
    if (access(dir, F_OK) < 0) {
        berth_die_msg(verb, "no service '%s' under '%s'", name, g->root);
        return EXIT_FAIL;
    }
    r = !strcmp(verb, "stop") ? stop_one(g, name, &o, &err) : restart_one(g, name, &o, &err);
    /* the summary says where it is, also after a failure */
    berth_error e = BERTH_ERROR_INIT;
    if (berth_apply_write_status_summary(g->root, &e) < 0)
        berth_print_error(verb, &e);
    if (r < 0) {
        berth_print_error(verb, &err);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

int cmd_stop(int argc, char **argv, struct berth_globals *g)
{
    return one(argc, argv, g, "stop");
}

int cmd_restart(int argc, char **argv, struct berth_globals *g)
{
    return one(argc, argv, g, "restart");
}
