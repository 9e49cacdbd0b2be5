/* cgroup limits for one container, on the unified hierarchy (v2) or, where
 * the controllers live on v1 hierarchies (v1 hosts and hybrid hosts such as
 * Debian's with systemd.unified_cgroup_hierarchy=0), on v1.
 *
 * A container's cgroup is "berth/<name>" below the hierarchy root (v2), or
 * below each controller's mount (v1): "<root>/memory/berth/<name>". The
 * filesystem root is a parameter so that tests can point it at a fake tree.
 */
#ifndef BERTH_CGROUP_H
#define BERTH_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#define BERTH_CGROUP_FSROOT "/sys/fs/cgroup"

struct berth_limits {
    uint64_t memory;     /* bytes, 0 = unlimited */
    uint64_t cpus_milli; /* 1.5 CPUs = 1500, 0 = unlimited */
    uint64_t pids;       /* 0 = unlimited */
    uint64_t nofile;     /* RLIMIT_NOFILE, 0 = inherited */
};

enum berth_cgroup_mode { BERTH_CGROUP_V1 = 1, BERTH_CGROUP_V2 = 2 };

enum { BERTH_CG_MEMORY, BERTH_CG_CPU, BERTH_CG_PIDS, BERTH_CG_N };

struct berth_cgroup {
    enum berth_cgroup_mode mode;
    /* v2: paths[0] is the cgroup; v1: one path per controller, NULL where
     * the container needs no such controller */
    char *paths[BERTH_CG_N];
};

/* True when the container needs a cgroup at all (any of memory, cpus, pids). */
bool berth_limits_need_cgroup(const struct berth_limits *lim);

/* v2 when `fsroot` is a unified hierarchy (it has cgroup.controllers), v1
 * otherwise. */
enum berth_cgroup_mode berth_cgroup_detect(const char *fsroot);

/* Create the cgroup(s) for container `name` and write the limits. On
 * failure nothing is left behind. */
int berth_cgroup_create(struct berth_cgroup *cg, const char *fsroot, const char *name,
                        const struct berth_limits *lim, berth_error *err);

/* Move process `pid` into the container's cgroup(s). */
int berth_cgroup_add_pid(const struct berth_cgroup *cg, pid_t pid, berth_error *err);

/* How many times the OOM killer killed a process of the cgroup (0 when
 * there is no memory cgroup or the kernel does not say). */
uint64_t berth_cgroup_oom_kills(const struct berth_cgroup *cg);

/* Kill what is left in the cgroup(s), remove them and free `cg`. */
int berth_cgroup_destroy(struct berth_cgroup *cg, berth_error *err);

#endif
