/* Resource figures of services, read from their containers' cgroups:
 * what `berth stats` prints and `berth status --format prometheus` exports.
 *
 * A container's cgroup is found from its init (/proc/PID/cgroup), so the
 * same code reads berth's own subtree and a systemd scope, on cgroup v2
 * and on v1 or hybrid hosts:
 *
 *   figure        v2                     v1
 *   memory        memory.current         memory.usage_in_bytes
 *   memory_peak   memory.peak (5.19+)    memory.max_usage_in_bytes
 *   memory_limit  memory.max             memory.limit_in_bytes
 *   cpu_usec      cpu.stat usage_usec    cpuacct.usage (ns) / 1000
 *   pids          pids.current           pids.current
 *   pids_limit    pids.max               pids.max
 *   oom_kills     memory.events oom_kill memory.oom_control oom_kill
 *
 * The figures are the container's (its cgroup is made afresh at every
 * start): CPU time and OOM kills count since the container started.
 */
#ifndef BERTH_STATS_H
#define BERTH_STATS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cgroup.h"
#include "error.h"
#include "status.h"

/* A figure the kernel does not give (no such file, no such controller),
 * or a limit that is not set. */
#define BERTH_STATS_NONE UINT64_MAX

struct berth_cgroup_stats {
    uint64_t memory;       /* bytes charged, page cache included */
    uint64_t memory_peak;  /* the most ever charged */
    uint64_t memory_limit; /* NONE: unlimited */
    uint64_t cpu_usec;     /* CPU time of all its processes, alive and gone */
    uint64_t pids;         /* tasks */
    uint64_t pids_limit;   /* NONE: unlimited */
    uint64_t oom_kills;    /* processes the OOM killer killed in it */
};

/* Read the figures of `cg` (paths as berth_cgroup_create fills them: v2
 * paths[0]; v1 one per controller, NULL where there is none). What cannot
 * be read is BERTH_STATS_NONE. */
void berth_stats_read_cgroup(const struct berth_cgroup *cg, struct berth_cgroup_stats *ret);

/* The cgroup(s) of process `pid` below `fsroot` (berth_cgroup_detect's
 * mode); *ret as berth_cgroup_create leaves it, freed with
 * berth_cgroup_paths_free. ESRCH when the process is gone. */
BERTH_MUST_CHECK int berth_stats_cgroup_of(const char *fsroot, pid_t pid, struct berth_cgroup *ret,
                                           berth_error *err);
void berth_cgroup_paths_free(struct berth_cgroup *cg);

/* One sample of one service. */
struct berth_service_stats {
    bool running; /* a container runs and its cgroup was read */
    struct berth_cgroup_stats cg;
    uint64_t sampled_ms; /* CLOCK_MONOTONIC, ms */
    int64_t uptime_s;    /* since the container started; -1 when none runs */
    /* CPU in % of one CPU (200 = two CPUs busy): over the last interval
     * once berth_stats_cpu_interval() saw two samples, else the average
     * since the container started; < 0 when unknown */
    double cpu_percent;
};

/* Sample service `st` (a record from berth_status_list): its container's
 * cgroup below `fsroot` when it runs. A service without a container is
 * sampled as not running; that is no error. */
void berth_stats_sample(const char *fsroot, const struct berth_status *st,
                        struct berth_service_stats *ret);

/* CPU % between two samples of the same container: delta of CPU time over
 * delta of wall time. Sets cur->cpu_percent when both have a CPU time and
 * time passed; leaves it as it is otherwise (a restart in between: the
 * counter went backwards). */
void berth_stats_cpu_interval(const struct berth_service_stats *prev,
                              struct berth_service_stats *cur);

/* {"services": [...]} with the fields `berth stats --help` documents
 * (malloc'ed, indented unless `compact`: one line per sample). */
char *berth_stats_json(const struct berth_status *v, const struct berth_service_stats *s, size_t n,
                       bool compact);

#endif
