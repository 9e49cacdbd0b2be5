#include "metrics.h"

#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent.h"
#include "util.h"

/* Every state a record can have: one berth_service_state series each, in
 * this order. */
static const enum berth_state states[] = {
    BERTH_STATE_RUNNING, BERTH_STATE_STARTING, BERTH_STATE_BACKOFF,    BERTH_STATE_STOPPING,
    BERTH_STATE_STOPPED, BERTH_STATE_FAILED,   BERTH_STATE_ROLLED_BACK};

void berth_metrics_agent_read(const char *root, struct berth_metrics_agent *ret)
{
    json_t *o = berth_agent_state(root), *last;
    json_t *running = json_object_get(o, "running");

    memset(ret, 0, sizeof(*ret));
    ret->running = json_is_boolean(running) ? json_is_true(running) : -1;
    if (!json_object_get(o, "pid")) { /* no agent.json: it writes its pid first */
        json_decref(o);
        return;
    }
    ret->has_record = true;
    ret->file_valid = json_is_true(json_object_get(o, "file_valid"));
    ret->started_at = json_integer_value(json_object_get(o, "started_at"));
    ret->converges = (uint64_t)json_integer_value(json_object_get(o, "converges"));
    ret->converge_failures = (uint64_t)json_integer_value(json_object_get(o, "converge_failures"));
    last = json_object_get(o, "last_converge");
    if (json_is_object(last)) {
        const char *result = json_string_value(json_object_get(last, "result"));
        ret->has_converge = true;
        ret->converge_at_ms = json_integer_value(json_object_get(last, "at_ms"));
        ret->converge_duration_ms =
            (uint64_t)json_integer_value(json_object_get(last, "duration_ms"));
        ret->converge_ok = result && !strcmp(result, "ok");
        ret->converge_failed = (uint64_t)json_integer_value(json_object_get(last, "failed"));
    }
    json_decref(o);
}

/* A label value: backslash, double quote and newline escaped. */
static void label(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '\\' || *s == '"')
            fprintf(out, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", out);
        else
            fputc(*s, out);
    }
}

static void family(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_u64(FILE *out, const char *name, const char *service, uint64_t v)
{
    if (v == BERTH_STATS_NONE)
        return;
    fprintf(out, "%s{service=\"", name);
    label(out, service);
    fprintf(out, "\"} %llu\n", (unsigned long long)v);
}

static int healthy(const char *h)
{
    if (!h || !strcmp(h, "none"))
        return -1;
    return !strcmp(h, "healthy");
}

static void write_agent(FILE *out, const struct berth_metrics_agent *a)
{
    family(out, "berth_build_info", "gauge", "berth's version; always 1.");
    fprintf(out, "berth_build_info{version=\"%s\"} 1\n", BERTH_VERSION);
    if (a->running >= 0) {
        family(out, "berth_agent_running", "gauge",
               "1 when an agent serves this root (it holds ROOT/agent.lock).");
        fprintf(out, "berth_agent_running %d\n", a->running);
    }
    if (a->running == 1 && a->started_at) {
        family(out, "berth_agent_start_time_seconds", "gauge",
               "When the running agent started, in unix seconds.");
        fprintf(out, "berth_agent_start_time_seconds %lld\n", (long long)a->started_at);
    }
    if (!a->has_record)
        return;
    family(out, "berth_file_valid", "gauge", "1 when the desired-state file on disk is valid.");
    fprintf(out, "berth_file_valid %d\n", a->file_valid);
    family(out, "berth_converges_total", "counter",
           "Converges (reconciles) by the agent since it started.");
    fprintf(out, "berth_converges_total %llu\n", (unsigned long long)a->converges);
    family(out, "berth_converge_failures_total", "counter",
           "Converges by the agent that left a service failed, or found no plan.");
    fprintf(out, "berth_converge_failures_total %llu\n", (unsigned long long)a->converge_failures);
    if (!a->has_converge)
        return;
    family(out, "berth_converge_last_time_seconds", "gauge",
           "When the agent's last converge ended, in unix seconds.");
    fprintf(out, "berth_converge_last_time_seconds %.3f\n", (double)a->converge_at_ms / 1000.0);
    family(out, "berth_converge_last_duration_seconds", "gauge",
           "How long the agent's last converge took.");
    fprintf(out, "berth_converge_last_duration_seconds %.3f\n",
            (double)a->converge_duration_ms / 1000.0);
    family(out, "berth_converge_last_success", "gauge",
           "1 when the agent's last converge left every service as the file asks.");
    fprintf(out, "berth_converge_last_success %d\n", a->converge_ok);
    family(out, "berth_converge_last_failed_services", "gauge",
           "Services that the agent's last converge failed to converge.");
    fprintf(out, "berth_converge_last_failed_services %llu\n",
            (unsigned long long)a->converge_failed);
}

static void write_states(FILE *out, const struct berth_status *v, size_t n)
{
    family(out, "berth_service_info", "gauge", "The service's image digest; always 1.");
    for (size_t i = 0; i < n; i++) {
        fputs("berth_service_info{service=\"", out);
        label(out, v[i].name);
        fputs("\",image=\"", out);
        label(out, v[i].image ? v[i].image : "");
        fputs("\"} 1\n", out);
    }
    family(out, "berth_service_up", "gauge", "1 when the service's container is running.");
    for (size_t i = 0; i < n; i++)
        sample_u64(out, "berth_service_up", v[i].name, v[i].pid ? 1 : 0);
    family(out, "berth_service_state", "gauge",
           "1 for the state the service is in, 0 for every other state.");
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < ARRAY_SIZE(states); k++) {
            fputs("berth_service_state{service=\"", out);
            label(out, v[i].name);
            fprintf(out, "\",state=\"%s\"} %d\n", berth_state_name(states[k]),
                    v[i].state == states[k]);
        }
    }
    family(out, "berth_service_restarts_total", "counter",
           "Restarts by the service's restart policy (crashes, exits, unhealthy).");
    for (size_t i = 0; i < n; i++)
        sample_u64(out, "berth_service_restarts_total", v[i].name, v[i].restarts);
    family(out, "berth_service_manual_restarts_total", "counter",
           "Restarts asked for (berth restart).");
    for (size_t i = 0; i < n; i++)
        sample_u64(out, "berth_service_manual_restarts_total", v[i].name, v[i].manual_restarts);
    family(out, "berth_service_healthy", "gauge",
           "1 healthy, 0 unhealthy or starting, -1 no health check.");
    for (size_t i = 0; i < n; i++) {
        fputs("berth_service_healthy{service=\"", out);
        label(out, v[i].name);
        fprintf(out, "\"} %d\n", healthy(v[i].health));
    }
    family(out, "berth_service_rolled_back", "gauge", "1 when the service was rolled back.");
    for (size_t i = 0; i < n; i++)
        sample_u64(out, "berth_service_rolled_back", v[i].name,
                   v[i].state == BERTH_STATE_ROLLED_BACK);
}

/* The figures of the services whose container runs; none for the others. */
static void write_usage(FILE *out, const struct berth_status *v,
                        const struct berth_service_stats *s, size_t n)
{
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } figures[] = {
        {"berth_service_memory_bytes", "gauge",
         "Memory charged to the service's cgroup, page cache included.",
         offsetof(struct berth_cgroup_stats, memory)},
        {"berth_service_memory_peak_bytes", "gauge",
         "The most memory the service's container was ever charged.",
         offsetof(struct berth_cgroup_stats, memory_peak)},
        {"berth_service_memory_limit_bytes", "gauge",
         "The service's memory limit (none when unlimited).",
         offsetof(struct berth_cgroup_stats, memory_limit)},
        {"berth_service_pids", "gauge", "Tasks in the service's container.",
         offsetof(struct berth_cgroup_stats, pids)},
        {"berth_service_pids_limit", "gauge", "The service's pids limit (none when unlimited).",
         offsetof(struct berth_cgroup_stats, pids_limit)},
        {"berth_service_oom_kills_total", "counter",
         "Processes the OOM killer killed in the service's container since it started.",
         offsetof(struct berth_cgroup_stats, oom_kills)},
    };

    family(out, "berth_service_cpu_seconds_total", "counter",
           "CPU time of the service's container since it started.");
    for (size_t i = 0; i < n; i++) {
        if (!s[i].running || s[i].cg.cpu_usec == BERTH_STATS_NONE)
            continue;
        fputs("berth_service_cpu_seconds_total{service=\"", out);
        label(out, v[i].name);
        fprintf(out, "\"} %.6f\n", (double)s[i].cg.cpu_usec / 1e6);
    }
    for (size_t f = 0; f < ARRAY_SIZE(figures); f++) {
        family(out, figures[f].name, figures[f].type, figures[f].help);
        for (size_t i = 0; i < n; i++)
            if (s[i].running)
                sample_u64(out, figures[f].name, v[i].name,
                           *(const uint64_t *)((const char *)&s[i].cg + figures[f].off));
    }
    family(out, "berth_service_start_time_seconds", "gauge",
           "When the service's container started, in unix seconds.");
    for (size_t i = 0; i < n; i++)
        if (v[i].pid && v[i].started_at)
            sample_u64(out, "berth_service_start_time_seconds", v[i].name,
                       (uint64_t)v[i].started_at);
}

void berth_metrics_write(FILE *out, const struct berth_status *v,
                         const struct berth_service_stats *s, size_t n,
                         const struct berth_metrics_agent *agent)
{
    write_agent(out, agent);
    write_states(out, v, n);
    write_usage(out, v, s, n);
}

char *berth_metrics_render(const struct berth_status *v, const struct berth_service_stats *s,
                           size_t n, const struct berth_metrics_agent *agent)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (!f)
        abort();
    berth_metrics_write(f, v, s, n, agent);
    if (fclose(f) != 0)
        abort();
    return buf;
}

int berth_metrics_write_textfile(const char *dir, const char *text, berth_error *err)
{
    _cleanup_free_ char *path = xasprintf("%s/berth.prom", dir);
    struct stat st;

    if (stat(dir, &st) < 0)
        return berth_error_set(err, errno, "the textfile directory '%s'", dir);
    if (!S_ISDIR(st.st_mode))
        return berth_error_set(err, ENOTDIR, "the textfile directory '%s'", dir);
    /* node_exporter runs as its own user: the file must be readable */
    return berth_write_file_atomic(path, text, strlen(text), 0644, err);
}
