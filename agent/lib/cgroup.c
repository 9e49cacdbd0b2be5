#include "cgroup.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "util.h"

static const char *const v1_controller[BERTH_CG_N] = {"memory", "cpu", "pids"};

#define CPU_PERIOD_US 100000ULL

bool berth_limits_need_cgroup(const struct berth_limits *lim)
{
    return lim->memory || lim->cpus_milli || lim->pids;
}

enum berth_cgroup_mode berth_cgroup_detect(const char *fsroot)
{
    _cleanup_free_ char *p = xasprintf("%s/cgroup.controllers", fsroot);

    return access(p, F_OK) == 0 ? BERTH_CGROUP_V2 : BERTH_CGROUP_V1;
}

static bool file_exists(const char *dir, const char *name)
{
    _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);

    return access(p, F_OK) == 0;
}

static int write_at(const char *dir, const char *name, const char *value, berth_error *err)
{
    _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);

    return berth_write_string(p, value, err);
}

/* v2: a controller is usable in a child only when every ancestor lists it
 * in cgroup.subtree_control. Enable ours at `dir`, in one write. */
static int v2_enable(const char *dir, const struct berth_limits *lim, berth_error *err)
{
    _cleanup_free_ char *avail = NULL;
    _cleanup_free_ char *path = xasprintf("%s/cgroup.controllers", dir);
    const char *want[] = {lim->memory ? "memory" : NULL, lim->cpus_milli ? "cpu" : NULL,
                          lim->pids ? "pids" : NULL};
    char enable[64] = "";

    if (berth_read_file(path, 4096, &avail, NULL, err) < 0)
        return -1;
    for (char *s = avail; *s; s++)
        if (*s == '\n')
            *s = ' ';
    _cleanup_free_ char *padded = xasprintf(" %s ", avail);
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        char tok[16];
        if (!want[i])
            continue;
        snprintf(tok, sizeof(tok), " %s ", want[i]);
        if (!strstr(padded, tok))
            return berth_error_set(err, ENOTSUP,
                                   "the cgroup controller '%s' is not available "
                                   "in '%s'",
                                   want[i], dir);
        snprintf(enable + strlen(enable), sizeof(enable) - strlen(enable), "%s+%s",
                 *enable ? " " : "", want[i]);
    }
    return *enable ? write_at(dir, "cgroup.subtree_control", enable, err) : 0;
}

static int mkdir_ok(const char *path, berth_error *err)
{
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        return berth_error_set(err, errno, "creating cgroup '%s'", path);
    return 0;
}

static int v2_create(struct berth_cgroup *cg, const char *fsroot, const char *name,
                     const struct berth_limits *lim, berth_error *err)
{
    _cleanup_free_ char *parent = xasprintf("%s/berth", fsroot);
    _cleanup_free_ char *dir = xasprintf("%s/%s", parent, name);
    char buf[64];

    if (v2_enable(fsroot, lim, err) < 0 || mkdir_ok(parent, err) < 0 ||
        v2_enable(parent, lim, err) < 0 || mkdir_ok(dir, err) < 0)
        return -1;
    cg->paths[0] = TAKE_PTR(dir);
    if (lim->memory) {
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)lim->memory);
        if (write_at(cg->paths[0], "memory.max", buf, err) < 0)
            return -1;
        /* a limit is a limit: no swapping past it */
        if (file_exists(cg->paths[0], "memory.swap.max") &&
            write_at(cg->paths[0], "memory.swap.max", "0", err) < 0)
            return -1;
    }
    if (lim->cpus_milli) {
        snprintf(buf, sizeof(buf), "%llu %llu",
                 (unsigned long long)(lim->cpus_milli * CPU_PERIOD_US / 1000),
                 (unsigned long long)CPU_PERIOD_US);
        if (write_at(cg->paths[0], "cpu.max", buf, err) < 0)
            return -1;
    }
    if (lim->pids) {
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)lim->pids);
        if (write_at(cg->paths[0], "pids.max", buf, err) < 0)
            return -1;
    }
    return 0;
}

static int v1_limits(const char *dir, int ctl, const struct berth_limits *lim, berth_error *err)
{
    char buf[64];

    switch (ctl) {
    case BERTH_CG_MEMORY:
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)lim->memory);
        if (write_at(dir, "memory.limit_in_bytes", buf, err) < 0)
            return -1;
        if (file_exists(dir, "memory.memsw.limit_in_bytes"))
            return write_at(dir, "memory.memsw.limit_in_bytes", buf, err);
        return 0;
    case BERTH_CG_CPU:
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)CPU_PERIOD_US);
        if (write_at(dir, "cpu.cfs_period_us", buf, err) < 0)
            return -1;
        snprintf(buf, sizeof(buf), "%llu",
                 (unsigned long long)(lim->cpus_milli * CPU_PERIOD_US / 1000));
        return write_at(dir, "cpu.cfs_quota_us", buf, err);
    default:
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)lim->pids);
        return write_at(dir, "pids.max", buf, err);
    }
}

static int v1_create(struct berth_cgroup *cg, const char *fsroot, const char *name,
                     const struct berth_limits *lim, berth_error *err)
{
    const bool want[BERTH_CG_N] = {lim->memory != 0, lim->cpus_milli != 0, lim->pids != 0};

    for (int i = 0; i < BERTH_CG_N; i++) {
        if (!want[i])
            continue;
        _cleanup_free_ char *mnt = xasprintf("%s/%s", fsroot, v1_controller[i]);
        _cleanup_free_ char *parent = xasprintf("%s/berth", mnt);
        _cleanup_free_ char *dir = xasprintf("%s/%s", parent, name);
        if (access(mnt, F_OK) < 0)
            return berth_error_set(err, errno,
                                   "the cgroup controller '%s' is not mounted at "
                                   "'%s'",
                                   v1_controller[i], mnt);
        if (mkdir_ok(parent, err) < 0 || mkdir_ok(dir, err) < 0)
            return -1;
        cg->paths[i] = TAKE_PTR(dir);
        if (v1_limits(cg->paths[i], i, lim, err) < 0)
            return -1;
    }
    return 0;
}

int berth_cgroup_create(struct berth_cgroup *cg, const char *fsroot, const char *name,
                        const struct berth_limits *lim, berth_error *err)
{
    int r;

    memset(cg, 0, sizeof(*cg));
    cg->mode = berth_cgroup_detect(fsroot);
    r = cg->mode == BERTH_CGROUP_V2 ? v2_create(cg, fsroot, name, lim, err)
                                    : v1_create(cg, fsroot, name, lim, err);
    if (r < 0) {
        berth_error e2 = BERTH_ERROR_INIT;
        berth_cgroup_destroy(cg, &e2);
        return berth_error_wrap(err, "setting up the cgroup of '%s' (cgroup %s)", name,
                                cg->mode == BERTH_CGROUP_V2 ? "v2" : "v1");
    }
    return 0;
}

int berth_cgroup_add_pid(const struct berth_cgroup *cg, pid_t pid, berth_error *err)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%d", (int)pid);
    for (int i = 0; i < BERTH_CG_N; i++)
        if (cg->paths[i] && write_at(cg->paths[i], "cgroup.procs", buf, err) < 0)
            return -1;
    return 0;
}

static uint64_t keyed_value(const char *dir, const char *file, const char *key)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", dir, file);
    _cleanup_free_ char *data = NULL;
    size_t klen = strlen(key);
    berth_error err = BERTH_ERROR_INIT;

    if (berth_read_file(path, 1 << 16, &data, NULL, &err) < 0)
        return 0;
    for (char *line = data; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (!strncmp(line, key, klen) && line[klen] == ' ')
            return strtoull(line + klen + 1, NULL, 10);
    return 0;
}

uint64_t berth_cgroup_oom_kills(const struct berth_cgroup *cg)
{
    if (cg->mode == BERTH_CGROUP_V2)
        return cg->paths[0] ? keyed_value(cg->paths[0], "memory.events", "oom_kill") : 0;
    return cg->paths[BERTH_CG_MEMORY]
               ? keyed_value(cg->paths[BERTH_CG_MEMORY], "memory.oom_control", "oom_kill")
               : 0;
}

/* SIGKILL everything listed in cgroup.procs; returns how many were listed. */
static int kill_procs(const char *dir)
{
    _cleanup_free_ char *path = xasprintf("%s/cgroup.procs", dir);
    _cleanup_free_ char *data = NULL;
    berth_error err = BERTH_ERROR_INIT;
    int n = 0;

    if (berth_read_file(path, 1 << 20, &data, NULL, &err) < 0)
        return 0;
    for (char *s = data; *s;) {
        char *end;
        long pid = strtol(s, &end, 10);
        if (end == s)
            break;
        if (pid > 0) {
            kill((pid_t)pid, SIGKILL);
            n++;
        }
        s = end;
        while (*s == '\n')
            s++;
    }
    return n;
}

static int remove_one(const char *dir, berth_error *err)
{
    /* Normally empty by now: the container's init is pid 1 of its pid
     * namespace, and the kernel reaps the whole namespace before that init
     * is reported dead. Anything that is still listed (a process that
     * joined the cgroup from outside, say) is killed, and its exit waited
     * for, for at most about a second. */
    for (int i = 0; i < 100; i++) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY)
            break;
        kill_procs(dir);
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    return berth_error_set(err, errno, "removing cgroup '%s'", dir);
}

int berth_cgroup_destroy(struct berth_cgroup *cg, berth_error *err)
{
    int r = 0;

    for (int i = 0; i < BERTH_CG_N; i++) {
        if (!cg->paths[i])
            continue;
        if (remove_one(cg->paths[i], err) < 0)
            r = -1;
        free(cg->paths[i]);
        cg->paths[i] = NULL;
    }
    return r;
}
