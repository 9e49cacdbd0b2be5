/* cgroups for containers and keepers, on the unified hierarchy (v2) or,
 * where the controllers live on v1 hierarchies (v1 hosts and hybrid hosts
 * such as Debian's with systemd.unified_cgroup_hierarchy=0), on v1.
 *
 * A cgroup is named by its path relative to the hierarchy's root (v2), or
 * to each controller's mount (v1: "<fsroot>/memory/<path>"). Which of a
 * service's cgroups is used (a systemd scope, or berth's own subtree) is
 * the keeper's business (keeper.c); this file names them, and creates,
 * fills, joins and removes them. The filesystem root is a parameter so that tests can point
 * it at a fake tree.
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

/* v1 controllers; cpuacct only counts (CPU time for `berth stats`), it
 * limits nothing, and is often co-mounted with cpu ("cpu,cpuacct") */
enum { BERTH_CG_MEMORY, BERTH_CG_CPU, BERTH_CG_PIDS, BERTH_CG_CPUACCT, BERTH_CG_N };

/* The v1 controller of BERTH_CG_* `i`: "memory", "cpu", "pids", "cpuacct". */
const char *berth_cgroup_v1_controller(int i);

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

/* Create the cgroup `path` for a container and write the limits. The
 * levels above are created as needed; on v2 each one delegates memory,
 * cpu and pids to the next wherever they are available (accounting for
 * every container, limits or not), and those that the limits need must
 * be. On failure nothing that this call created is left behind. */
BERTH_MUST_CHECK int berth_cgroup_create(struct berth_cgroup *cg, const char *fsroot,
                                         const char *path, const struct berth_limits *lim,
                                         berth_error *err);

/* Move the calling process into `path` (created as needed, no limits):
 * how a keeper leaves whatever cgroup its caller had. */
BERTH_MUST_CHECK int berth_cgroup_enter(const char *fsroot, const char *path, berth_error *err);

/* Move the calling process back to the root of each hierarchy and remove
 * `path` and, while they are empty, up to `levels` - 1 of its parents. */
BERTH_MUST_CHECK int berth_cgroup_leave(const char *fsroot, const char *path, unsigned levels,
                                        berth_error *err);

/* rmdir top/path and then its parents while they are empty, `levels`
 * directories at most. */
void berth_cgroup_prune(const char *top, const char *path, unsigned levels);

/* The same in every hierarchy berth uses below `fsroot`. */
void berth_cgroup_remove(const char *fsroot, const char *path, unsigned levels);

/* The cgroup of process `pid` (0: ourselves) relative to the hierarchy
 * root, from /proc/PID/cgroup: the unified one when `controller` is NULL,
 * else the v1 hierarchy that has it. Malloc'ed; NULL when not found. */
char *berth_cgroup_of(pid_t pid, const char *controller);

/* Move process `pid` into the cgroups that process `like` is in (on v1,
 * those of memory, cpu and pids): how a command joins a container. */
BERTH_MUST_CHECK int berth_cgroup_join(pid_t pid, pid_t like, const char *fsroot, berth_error *err);

/* Move process `pid` into the container's cgroup(s). */
BERTH_MUST_CHECK int berth_cgroup_add_pid(const struct berth_cgroup *cg, pid_t pid,
                                          berth_error *err);

/* How many times the OOM killer killed a process of the cgroup (0 when
 * there is no memory cgroup or the kernel does not say). */
uint64_t berth_cgroup_oom_kills(const struct berth_cgroup *cg);

/* Kill what is left in the cgroup(s), remove them and free `cg`. */
BERTH_MUST_CHECK int berth_cgroup_destroy(struct berth_cgroup *cg, berth_error *err);

/* The cgroup of service `name` in berth's own subtree: "berth/<name>"
 * under the default root (/var/lib/berth), "berth/<name>@<8 hex digits:
 * FNV-1a of the root>" under any other, so that berths with different
 * roots on one host (tests, a second installation) never share, and so
 * never kill, each other's cgroups. "@" cannot occur in a service name.
 * Its keeper and container are the leaves "keeper" and "container" below
 * it. Malloc'ed. */
char *berth_cgroup_service_path(const char *root, const char *name);

/* The systemd scope of a service, used instead of that path where systemd
 * runs: "berth-<name>.scope", "berth-<name>-<8 hex digits>.scope" under
 * another root. Malloc'ed. */
char *berth_cgroup_service_scope(const char *root, const char *name);

#endif
