/* berth events: the history of the services: every transition of their
 * keepers and what apply and the agent did to them, with the causes. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "events.h"
#include "history.h"
#include "util.h"

static const char usage_text[] =
    "Usage: berth events [--since TIME] [-f] [--json] [--root DIR] [NAME...]\n"
    "\n"
    "What happened to the services (NAME...: those only), oldest first: each\n"
    "start, each exit with its cause, each stop and restart request, health\n"
    "changes, adoptions by a new keeper, and what apply and the agent did\n"
    "(create, replace, remove, rollback). Causes: start, start-failed, exit\n"
    "(it exited by itself), signal (a signal berth did not send), oom (killed\n"
    "by the OOM killer: a SIGKILL while its cgroup's OOM kill count rose), stop\n"
    "(berth stop, apply, SIGTERM to its keeper), restart (berth restart),\n"
    "unhealthy, healthy, stop-timeout (SIGKILL after the stop timeout),\n"
    "keeper-gone (its last keeper was killed or crashed), adopted (a new keeper\n"
    "took its running container over), apply, rollback.\n"
    "Read from ROOT/services/NAME/events (and events.1: each service keeps the\n"
    "last 64 to 128 KiB); needs no daemon. A removed service's events are kept\n"
    "with its log in ROOT/removed/NAME@TIME/ for 7 days: without NAME they are\n"
    "among the others; NAME of a removed service shows its newest.\n"
    "\n"
    "Options:\n"
    "      --since TIME  only events from TIME on: RFC 3339\n"
    "                    (2026-12-07T16:00:00Z, 2026-12-07T17:00:00+01:00)\n"
    "                    or a duration back from now (10m, 1h, 30s)\n"
    "  -f, --follow      keep printing events as they happen\n"
    "      --json        one JSON object per line, as in the events file:\n"
    "                    {\"time\", \"service\", \"cause\", \"from\", \"to\",\n"
    "                    \"message\", \"exit\": {\"code\", \"signal\", \"oom\"},\n"
    "                    \"pid\", \"restarts\", \"health\": {\"status\", \"result\",\n"
    "                    \"output\"}, \"action\", \"spec\", \"rejected\"}\n"
    "      --root DIR    state directory (default " BERTH_DEFAULT_ROOT ")\n"
    "  -h, --help        this help\n";

static void print_event(const struct berth_event *ev, bool json)
{
    char when[40];

    if (json) {
        _cleanup_free_ char *text = berth_event_json(ev);
        puts(text);
        return;
    }
    berth_format_time_us(ev->time_us, 3, when, sizeof(when));
    printf("%s  %-12s %-12s %-9s -> %-11s ", when, ev->service ? ev->service : "-", ev->cause,
           ev->from ? ev->from : "-", ev->to ? ev->to : "-");
    berth_print_container_text(ev->message ? ev->message : "",
                               strlen(ev->message ? ev->message : ""));
    putchar('\n');
    /* a failing check's output says why */
    const char *out = ev->health && !strcmp(ev->health, "unhealthy") ? ev->health_output : NULL;
    if (out)
        berth_print_container_lines(out);
}

struct printer {
    int64_t since;
    bool json, follow;
    bool first; /* the first batch: what was there before */
};

static void print_batch(void *ud, const struct berth_event *v, size_t n)
{
    struct printer *p = ud;

    if (p->first && !p->json && !p->follow && n == 0)
        fprintf(stderr, "berth events: no events%s\n", p->since ? " since then" : "");
    for (size_t i = 0; i < n; i++)
        print_event(&v[i], p->json);
    fflush(stdout);
    p->first = false;
}

int cmd_events(int argc, char **argv, struct berth_globals *g)
{
    enum { OPT_SINCE = 0x2001, OPT_JSON };
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"since", required_argument, NULL, OPT_SINCE},
        {"follow", no_argument, NULL, 'f'},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct berth_getopt o = {"events", usage_text, "fhqv", longopts, g, NULL, 0};
    struct printer p = {.first = true};
    berth_error err = BERTH_ERROR_INIT;
    int c, rc;

    while ((c = berth_getopt(argc, argv, &o)) != -1) {
        if (c == BERTH_OPT_EXIT)
            return o.exit;
        if (c == OPT_SINCE && (rc = berth_since_option("events", optarg, &p.since)))
            return rc;
        p.follow |= c == 'f';
        p.json |= c == OPT_JSON;
    }
    if (berth_events_watch(g->root, argv + optind, (size_t)(argc - optind), p.since, p.follow,
                           print_batch, &p, &err) < 0) {
        berth_print_error("events", &err);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}
