/* berth ps and berth status: the service records, read without a daemon. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "cmd.h"
#include "events.h"
#include "metrics.h"
#include "record.h"
#include "stats.h"
#include "status.h"
#include "util.h"

static void uptime(char *buf, size_t len, int64_t since)
{
    berth_format_age(buf, len, since ? (int64_t)time(NULL) - since : -1);
}

static void print_table(const struct berth_status *v, size_t n)
{
    int w = 24; /* names are up to 63 characters: the column fits the longest */

    for (size_t i = 0; i < n; i++)
        w = (int)strlen(v[i].name) > w ? (int)strlen(v[i].name) : w;
    printf("%-*s %-11s %-8s %-8s %-8s %-8s %-6s %-9s %-10s %s\n", w, "NAME", "STATE", "PID", "INIT",
           "UPTIME", "RESTARTS", "MANUAL", "HEALTH", "LAST EXIT", "IMAGE");
    for (size_t i = 0; i < n; i++) {
        char up[32], pid[16], init[16], last[32];
        pid_t svc = v[i].pid && v[i].service_pid ? v[i].service_pid : 0;
        uptime(up, sizeof(up), berth_state_live(v[i].state) ? v[i].started_at : 0);
        snprintf(pid, sizeof(pid), svc ? "%d" : "-", (int)svc);
        snprintf(init, sizeof(init), v[i].pid ? "%d" : "-", (int)v[i].pid);
        if (v[i].has_exit)
            snprintf(last, sizeof(last), "%d%s", v[i].exit_code, v[i].exit_oom ? " (OOM)" : "");
        else
            snprintf(last, sizeof(last), "-");
        printf("%-*s %-11s %-8s %-8s %-8s %-8u %-6u %-9s %-10s %.19s\n", w, v[i].name,
               berth_state_name(v[i].state), pid, init, up, v[i].restarts, v[i].manual_restarts,
               v[i].health ? v[i].health : "none", last, v[i].image ? v[i].image : "-");
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i].keeper_error)
            printf("WARNING: the keeper of '%s' could not go on: %s\n", v[i].name,
                   v[i].keeper_error);
        if (!v[i].keeper_gone)
            continue;
        if (v[i].pid)
            printf("WARNING: the keeper of '%s' is gone; its container (pid %d) runs on "
                   "unsupervised until `berth apply` or the agent adopts it\n",
                   v[i].name, (int)v[i].pid);
        else
            printf("WARNING: the keeper of '%s' is gone, and its container with it; "
                   "`berth apply` or the agent starts it again\n",
                   v[i].name);
    }
}

static void print_time(const char *label, int64_t t)
{
    char buf[32];
    time_t tt = (time_t)t;

    if (!t)
        return;
    strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", gmtime(&tt));
    printf("  %-13s %s\n", label, buf);
}

/* The last exits of a service with their causes, newest first, from its
 * history (events.h). */
static void print_last_exits(const char *root, const char *name)
{
    _cleanup_free_ char *dir = berth_record_dir(root, name);
    struct berth_event *v;
    size_t n, shown = 0;
    berth_error err = BERTH_ERROR_INIT;

    if (berth_events_read(dir, 0, &v, &n, &err) < 0)
        return;
    for (size_t i = n; i-- > 0 && shown < 5;) {
        const struct berth_event *e = &v[i];
        char when[40], sig[48] = "";
        if (!e->has_exit)
            continue;
        if (!shown++)
            printf("  %-13s (newest first; 'berth events %s' has them all)\n", "last exits:", name);
        berth_format_time_us(e->time_us, 3, when, sizeof(when));
        if (e->exit_signal)
            snprintf(sig, sizeof(sig), " (%s%s)", berth_signal_name(e->exit_signal),
                     e->exit_oom ? ", killed by the OOM killer" : "");
        printf("    %s  %-9s code %d%s -> %s", when, e->cause, e->exit_code, sig,
               e->to ? e->to : "-");
        if (e->health_result)
            printf("; last check: %s", e->health_result);
        putchar('\n');
    }
    berth_events_free(v, n);
}

/* `berth status NAME...`: everything of each service, the last health
 * check's output and the last exits included. */
static void print_details(const char *root, const struct berth_status *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct berth_status *s = &v[i];
        char up[32];
        if (i)
            printf("\n");
        printf("%s\n", s->name);
        printf("  %-13s %s\n", "state:", berth_state_name(s->state));
        if (s->start_error)
            printf("  %-13s %s\n", "start error:", s->start_error);
        if (s->keeper_error)
            printf("  %-13s %s\n", "keeper error:", s->keeper_error);
        if (s->pid && s->service_pid)
            printf("  %-13s %d\n", "pid:", (int)s->service_pid);
        if (s->pid)
            printf("  %-13s %d\n", "init pid:", (int)s->pid);
        if (s->keeper_pid)
            printf("  %-13s %d\n", "keeper pid:", (int)s->keeper_pid);
        if (berth_state_live(s->state) && s->started_at) {
            uptime(up, sizeof(up), s->started_at);
            printf("  %-13s %s\n", "uptime:", up);
        }
        print_time("started:", berth_state_live(s->state) ? s->started_at : 0);
        printf("  %-13s %u (and %u manual)\n", "restarts:", s->restarts, s->manual_restarts);
        printf("  %-13s %s\n", "image:", s->image ? s->image : "-");
        if (s->has_exit)
            printf("  %-13s code %d%s\n", "last exit:", s->exit_code,
                   s->exit_oom ? " (killed by the OOM killer)" : "");
        print_time("exited:", s->has_exit ? s->exit_at : 0);
        print_last_exits(root, s->name);
        printf("  %-13s %s\n", "health:", s->health ? s->health : "none");
        if (s->has_check) {
            printf("  %-13s %s\n", "last check:", s->check_result ? s->check_result : "-");
            print_time("checked:", s->check_at);
            const char *out = s->check_output ? s->check_output : "";
            if (*out)
                printf("  %-13s\n", "check output:");
            berth_print_container_lines(out);
        }
    }
}

static void warn_agent(json_t *agent)
{
    json_t *pid = json_object_get(agent, "pid");

    /* an agent.json without an agent: it ran and is gone */
    if (json_is_false(json_object_get(agent, "running")) && json_is_integer(pid))
        printf("WARNING: the agent (last pid %lld) is not running: nothing converges, and a "
               "keeper that dies is not replaced\n\n",
               (long long)json_integer_value(pid));
}

static void warn_invalid(json_t *agent)
{
    json_t *errors;
    time_t since;
    char when[32];

    if (!json_is_false(json_object_get(agent, "file_valid")))
        return;
    since = (time_t)json_integer_value(json_object_get(agent, "invalid_since"));
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime(&since));
    errors = json_object_get(agent, "errors");
    printf("WARNING: '%s' is invalid since %s; the last valid state stays in force:\n",
           json_string_value(json_object_get(agent, "file")), when);
    for (size_t i = 0; i < json_array_size(errors) && i < 5; i++)
        printf("  %s\n", json_string_value(json_array_get(errors, i)));
    printf("\n");
}

/* node_exporter's textfile-collector format (metrics.h): on stdout, or
 * into DIR/berth.prom with --textfile DIR */
static int prometheus(const char *verb, const char *root, const struct berth_status *v, size_t n,
                      const char *textfile)
{
    _cleanup_free_ struct berth_service_stats *s = xcalloc(n ? n : 1, sizeof(*s));
    _cleanup_free_ char *text = NULL;
    struct berth_metrics_agent agent;
    berth_error err = BERTH_ERROR_INIT;

    for (size_t i = 0; i < n; i++)
        berth_stats_sample(BERTH_CGROUP_FSROOT, &v[i], &s[i]);
    berth_metrics_agent_read(root, &agent);
    text = berth_metrics_render(v, s, n, &agent);
    if (!textfile) {
        fputs(text, stdout);
        return EXIT_OK;
    }
    if (berth_metrics_write_textfile(textfile, text, &err) < 0) {
        berth_print_error(verb, &err);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* %s: the verb (ps or status) */
static const char usage_fmt[] =
    "Usage: berth %s [--json|--format FORMAT] [--textfile DIR] [--root DIR] "
    "[NAME...]\n"
    "\n"
    "The services berth runs: state (running, starting, backoff, stopped,\n"
    "failed, rolled-back), the service's pid (its main process; INIT: the\n"
    "container's pid 1, berth-init; both as the host sees them), uptime,\n"
    "restarts by the restart policy (crashes, exits, unhealthy) and manual\n"
    "ones (MANUAL: berth restart), health, the last exit code and the image\n"
    "digest. Reads ROOT/services; needs no daemon.\n"
    "'failed' means the service's keeper is gone although it should run,\n"
    "and its container with it, or that it cannot start for a set-up reason\n"
    "(a mount, its user, its working directory, its command: \"start_error\"\n"
    "in --json): it is not retried until the file changes or 'berth apply'\n"
    "or 'berth restart' try again. A keeper that is gone while its container\n"
    "runs on is named below the table (\"keeper_gone\": true in JSON); the\n"
    "agent or `berth apply` starts a keeper that adopts the container.\n"
    "A keeper that could not go on (it failed to wait for events or to\n"
    "reap its container) is named below the table with its reason\n"
    "(\"keeper_error\" in JSON, present only then).\n"
    "\n"
    "A warning heads the table while the agent finds the file on disk\n"
    "invalid (the last valid state stays in force). 'berth status NAME...'\n"
    "shows each service in full: why it cannot start, its last health check\n"
    "(exit code, signal or timeout) and that check's output (the first\n"
    "4096 bytes; \"last_check\" in --json), and its last 5 exits with their\n"
    "causes (exit, signal, oom, unhealthy, stop, ...: 'berth events NAME').\n"
    "\n"
    "Options:\n"
    "      --json     {\"services\": [{\"name\", \"state\", \"pid\" (the init's, as\n"
    "                 \"init_pid\"), \"service_pid\", \"restarts\",\n"
    "                 \"manual_restarts\", \"started_at\", \"image\", \"health\",\n"
    "                 \"last_exit\", \"keeper_pid\", \"start_error\", "
    "\"keeper_gone\",\n"
    "                 \"stopping\" (a stop is under way: the service is gone\n"
    "                 once it ends, though its state says running until then),\n"
    "                 \"last_check\": {\"result\", \"exit_code\", \"signal\",\n"
    "                 \"timed_out\", \"output\", \"at\"}, ...}],\n"
    "                 \"agent\": {\"running\", \"running_pid\", \"pid\", \"file\",\n"
    "                 \"file_valid\", \"invalid_since\", \"started_at\",\n"
    "                 \"converges\", \"converge_failures\", \"last_converge\":\n"
    "                 {\"at_ms\", \"duration_ms\", \"result\" (ok, failed,\n"
    "                 error), \"failed\"}, ...}}: running is whether an agent\n"
    "                 serves ROOT now (it holds ROOT/agent.lock); pid is the\n"
    "                 last agent's\n"
    "      --format table|json|prometheus   prometheus: the Prometheus text\n"
    "                 format (node_exporter's textfile collector): berth_build_info;\n"
    "                 the agent's berth_agent_running, berth_file_valid,\n"
    "                 berth_converge_last_{time,duration}_seconds,\n"
    "                 berth_converge_last_success, berth_converges_total; per\n"
    "                 service berth_service_info{image}, berth_service_up,\n"
    "                 berth_service_state{state} (one 0/1 series per state),\n"
    "                 restarts, health, and while its container runs the figures\n"
    "                 of 'berth stats' (memory, CPU seconds, pids, OOM kills)\n"
    "      --textfile DIR   write the prometheus format to DIR/berth.prom\n"
    "                 atomically (a temporary file, fsync, rename) instead of\n"
    "                 stdout; packaging's berth-textfile.timer runs it\n"
    "      --root DIR state directory (default " BERTH_DEFAULT_ROOT "); one that\n"
    "                 does not exist is an error (exit 1), and for metrics one\n"
    "                 that berth has not used (no services/, lock, agent.json)\n";

/* NAME... narrows the list */
static void keep_named(struct berth_status *v, size_t *n, char **names, int nnames)
{
    size_t k = 0;

    if (!nnames)
        return;
    for (size_t i = 0; i < *n; i++) {
        bool keep = false;
        for (int a = 0; a < nnames; a++)
            keep |= !strcmp(v[i].name, names[a]);
        if (keep)
            v[k++] = v[i];
        else
            berth_status_release(&v[i]);
    }
    *n = k;
}

static void print_json(const struct berth_status *v, size_t n, json_t *agent)
{
    char *text = berth_status_json(v, n);
    json_t *o = json_loads(text, 0, NULL);

    free(text);
    if (agent)
        json_object_set(o, "agent", agent);
    text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    puts(text);
    free(text);
    json_decref(o);
}

/* The list with the agent's state: as JSON, in full (status NAME...) or
 * as a table, after the warnings an operator must not miss. */
static void show(const char *root, const struct berth_status *v, size_t n, bool json, bool details)
{
    json_t *agent = berth_agent_state(root);

    if (json) {
        print_json(v, n, agent);
    } else {
        warn_agent(agent);
        warn_invalid(agent);
        if (details)
            print_details(root, v, n);
        else
            print_table(v, n);
    }
    json_decref(agent);
}

struct ps_args {
    bool json, prom;
    const char *textfile; /* --textfile DIR */
};

/* The command line into `a`: true to go on, else false with the exit
 * status of --help or the usage error in *ret_exit. */
static bool parse_args(int argc, char **argv, struct berth_globals *g, const char *verb,
                       struct ps_args *a, int *ret_exit)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"json", no_argument, NULL, 'j'},
        {"format", required_argument, NULL, 'F'},
        {"textfile", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct berth_getopt o = {verb, NULL, "hqv", longopts, g, NULL, 0};
    int c;

    *ret_exit = EXIT_OK;
    while ((c = berth_getopt(argc, argv, &o)) != -1) {
        if (c == BERTH_OPT_EXIT)
            *ret_exit = o.exit;
        else if (c == 'h')
            printf(usage_fmt, verb);
        else if (c == 'j' || (c == 'F' && !strcmp(optarg, "json")))
            a->json = true;
        else if (c == 'F' && !strcmp(optarg, "prometheus"))
            a->prom = true;
        else if (c == 'F' && strcmp(optarg, "table"))
            *ret_exit = berth_usage_error(verb, "unknown --format '%s'", optarg);
        else if (c == 'T') {
            a->textfile = optarg;
            a->prom = true;
        }
        if (c == BERTH_OPT_EXIT || c == 'h' || *ret_exit)
            return false;
    }
    return true;
}

static int list(int argc, char **argv, struct berth_globals *g, const char *verb)
{
    struct ps_args a = {0};
    struct berth_status *v;
    size_t n;
    berth_error err = BERTH_ERROR_INIT;
    int rc;

    if (!parse_args(argc, argv, g, verb, &a, &rc))
        return rc;
    /* a mistyped root is an error, not an empty list; metrics ask more: a
     * root that berth has used */
    if (berth_status_root_check(g->root, a.prom, &err) < 0 ||
        berth_status_list(g->root, &v, &n, &err) < 0) {
        berth_print_error(verb, &err);
        return EXIT_FAIL;
    }
    keep_named(v, &n, argv + optind, argc - optind);
    rc = EXIT_OK;
    if (a.prom)
        rc = prometheus(verb, g->root, v, n, a.textfile);
    else
        show(g->root, v, n, a.json, !strcmp(verb, "status") && optind < argc);
    berth_status_list_free(v, n);
    return rc;
}

int cmd_ps(int argc, char **argv, struct berth_globals *g)
{
    return list(argc, argv, g, "ps");
}

int cmd_status(int argc, char **argv, struct berth_globals *g)
{
    return list(argc, argv, g, "status");
}
