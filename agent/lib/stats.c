#include "stats.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "handover.h"
#include "util.h"

/* v1 reports "no limit" as the largest page-aligned counter value */
#define V1_UNLIMITED (1ULL << 62)

/* The first number in dir/name; "max" and what does not parse are NONE. */
static uint64_t read_u64(const char *dir, const char *name)
{
    _cleanup_free_ char *path = NULL;
    _cleanup_free_ char *data = NULL;
    berth_error err = BERTH_ERROR_INIT;
    char *end;
    uint64_t v;

    if (!dir)
        return BERTH_STATS_NONE;
    path = xasprintf("%s/%s", dir, name);
    if (berth_read_file(path, 4096, &data, NULL, &err) < 0)
        return BERTH_STATS_NONE;
    errno = 0;
    v = strtoull(data, &end, 10);
    if (end == data || errno)
        return BERTH_STATS_NONE;
    return v;
}

/* The value of "KEY VALUE" lines in dir/name (cpu.stat, memory.events,
 * memory.oom_control). */
static uint64_t read_keyed(const char *dir, const char *name, const char *key)
{
    _cleanup_free_ char *path = NULL;
    _cleanup_free_ char *data = NULL;
    berth_error err = BERTH_ERROR_INIT;
    size_t klen = strlen(key);

    if (!dir)
        return BERTH_STATS_NONE;
    path = xasprintf("%s/%s", dir, name);
    if (berth_read_file(path, 1 << 16, &data, NULL, &err) < 0)
        return BERTH_STATS_NONE;
    for (char *line = data; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (!strncmp(line, key, klen) && line[klen] == ' ')
            return strtoull(line + klen + 1, NULL, 10);
    return BERTH_STATS_NONE;
}

static void read_v2(const char *dir, struct berth_cgroup_stats *s)
{
    uint64_t usec = read_keyed(dir, "cpu.stat", "usage_usec");

    s->memory = read_u64(dir, "memory.current");
    s->memory_peak = read_u64(dir, "memory.peak"); /* Linux 5.19 */
    s->memory_limit = read_u64(dir, "memory.max");
    s->cpu_usec = usec;
    s->pids = read_u64(dir, "pids.current");
    s->pids_limit = read_u64(dir, "pids.max");
    s->oom_kills = read_keyed(dir, "memory.events", "oom_kill");
}

static void read_v1(char *const paths[BERTH_CG_N], struct berth_cgroup_stats *s)
{
    const char *mem = paths[BERTH_CG_MEMORY];
    uint64_t ns = read_u64(paths[BERTH_CG_CPUACCT], "cpuacct.usage");

    /* co-mounted "cpu,cpuacct": the cpu directory has it */
    if (ns == BERTH_STATS_NONE)
        ns = read_u64(paths[BERTH_CG_CPU], "cpuacct.usage");
    s->memory = read_u64(mem, "memory.usage_in_bytes");
    s->memory_peak = read_u64(mem, "memory.max_usage_in_bytes");
    s->memory_limit = read_u64(mem, "memory.limit_in_bytes");
    if (s->memory_limit != BERTH_STATS_NONE && s->memory_limit >= V1_UNLIMITED)
        s->memory_limit = BERTH_STATS_NONE;
    s->cpu_usec = ns == BERTH_STATS_NONE ? ns : ns / 1000;
    s->pids = read_u64(paths[BERTH_CG_PIDS], "pids.current");
    s->pids_limit = read_u64(paths[BERTH_CG_PIDS], "pids.max");
    s->oom_kills = read_keyed(mem, "memory.oom_control", "oom_kill");
}

void berth_stats_read_cgroup(const struct berth_cgroup *cg, struct berth_cgroup_stats *ret)
{
    if (cg->mode == BERTH_CGROUP_V2)
        read_v2(cg->paths[0], ret);
    else
        read_v1(cg->paths, ret);
}

void berth_cgroup_paths_free(struct berth_cgroup *cg)
{
    for (int i = 0; i < BERTH_CG_N; i++) {
        free(cg->paths[i]);
        cg->paths[i] = NULL;
    }
}

int berth_stats_cgroup_of(const char *fsroot, pid_t pid, struct berth_cgroup *ret, berth_error *err)
{
    bool any = false;

    memset(ret, 0, sizeof(*ret));
    ret->mode = berth_cgroup_detect(fsroot);
    for (int i = 0; i < (ret->mode == BERTH_CGROUP_V2 ? 1 : BERTH_CG_N); i++) {
        const char *ctl = ret->mode == BERTH_CGROUP_V2 ? NULL : berth_cgroup_v1_controller(i);
        _cleanup_free_ char *rel = berth_cgroup_of(pid, ctl);
        /* "/" : not in a cgroup of that controller (a container started
         * before berth used cpuacct); its root's figures are the host's */
        if (!rel || !*rel)
            continue;
        ret->paths[i] =
            ctl ? xasprintf("%s/%s/%s", fsroot, ctl, rel) : xasprintf("%s/%s", fsroot, rel);
        any = true;
    }
    if (!any)
        return berth_error_set(err, ESRCH, "process %d is in no cgroup of its own", (int)pid);
    return 0;
}

static uint64_t boottime_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void berth_stats_sample(const char *fsroot, const struct berth_status *st,
                        struct berth_service_stats *ret)
{
    struct berth_cgroup cg;
    berth_error err = BERTH_ERROR_INIT;
    uint64_t start_ticks, now = boottime_ms();
    long hz = sysconf(_SC_CLK_TCK);

    memset(ret, 0, sizeof(*ret));
    ret->sampled_ms = berth_now_ms();
    ret->uptime_s = -1;
    ret->cpu_percent = -1;
    memset(&ret->cg, 0xff, sizeof(ret->cg)); /* all BERTH_STATS_NONE */
    if (!st->pid || !berth_state_live(st->state))
        return;
    start_ticks = berth_handover_start_time(st->pid);
    if (!start_ticks || berth_stats_cgroup_of(fsroot, st->pid, &cg, &err) < 0)
        return;
    berth_stats_read_cgroup(&cg, &ret->cg);
    berth_cgroup_paths_free(&cg);
    ret->running = true;
    /* the init's start time (ticks since boot) is finer than started_at */
    if (hz > 0) {
        uint64_t start_ms = start_ticks * 1000 / (uint64_t)hz;
        uint64_t age_ms = now > start_ms ? now - start_ms : 0;
        ret->uptime_s = (int64_t)(age_ms / 1000);
        if (ret->cg.cpu_usec != BERTH_STATS_NONE && age_ms > 0)
            ret->cpu_percent = (double)ret->cg.cpu_usec / 10.0 / (double)age_ms;
    }
}

void berth_stats_cpu_interval(const struct berth_service_stats *prev,
                              struct berth_service_stats *cur)
{
    if (!prev->running || !cur->running || prev->cg.cpu_usec == BERTH_STATS_NONE ||
        cur->cg.cpu_usec == BERTH_STATS_NONE || cur->cg.cpu_usec < prev->cg.cpu_usec ||
        cur->sampled_ms <= prev->sampled_ms)
        return;
    cur->cpu_percent = (double)(cur->cg.cpu_usec - prev->cg.cpu_usec) / 10.0 /
                       (double)(cur->sampled_ms - prev->sampled_ms);
}

static json_t *u64_json(uint64_t v)
{
    return v == BERTH_STATS_NONE ? json_null() : json_integer((json_int_t)v);
}

static json_t *one_json(const struct berth_status *st, const struct berth_service_stats *s)
{
    const struct berth_cgroup_stats *c = &s->cg;
    json_t *o = json_object();

    json_object_set_new(o, "name", json_string(st->name));
    json_object_set_new(o, "state", json_string(berth_state_name(st->state)));
    json_object_set_new(o, "running", json_boolean(s->running));
    json_object_set_new(o, "memory_bytes", u64_json(c->memory));
    json_object_set_new(o, "memory_peak_bytes", u64_json(c->memory_peak));
    json_object_set_new(o, "memory_limit_bytes", u64_json(c->memory_limit));
    json_object_set_new(o, "cpu_seconds",
                        c->cpu_usec == BERTH_STATS_NONE ? json_null()
                                                        : json_real((double)c->cpu_usec / 1e6));
    json_object_set_new(o, "cpu_percent",
                        s->cpu_percent < 0 ? json_null() : json_real(s->cpu_percent));
    json_object_set_new(o, "pids", u64_json(c->pids));
    json_object_set_new(o, "pids_limit", u64_json(c->pids_limit));
    json_object_set_new(o, "oom_kills", u64_json(c->oom_kills));
    json_object_set_new(o, "restarts", json_integer(st->restarts));
    json_object_set_new(o, "manual_restarts", json_integer(st->manual_restarts));
    json_object_set_new(o, "uptime_seconds",
                        s->uptime_s < 0 ? json_null() : json_integer(s->uptime_s));
    return o;
}

char *berth_stats_json(const struct berth_status *v, const struct berth_service_stats *s, size_t n,
                       bool compact)
{
    json_t *arr = json_array();
    json_t *o;
    char *text;

    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, one_json(&v[i], &s[i]));
    o = json_pack("{s:o}", "services", arr);
    /* 12 significant digits: microseconds of CPU time for 11 days */
    text = json_dumps(o, (compact ? JSON_COMPACT : JSON_INDENT(2)) | JSON_PRESERVE_ORDER |
                             JSON_REAL_PRECISION(12));
    json_decref(o);
    if (!text)
        abort();
    return text;
}
