#include "cgroup.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "util.h"

static const char *const v1_controller[BERTH_CG_N] = {"memory", "cpu", "pids", "cpuacct"};

const char *berth_cgroup_v1_controller(int i)
{
    return v1_controller[i];
}

#define CPU_PERIOD_US 100000ULL

/* Whether the comma-separated list `list` has `word` ("cpu,cpuacct"). */
static bool list_has_comma(const char *list, const char *word)
{
    size_t n = strlen(word);

    for (const char *s = list; (s = strstr(s, word)); s += n)
        if ((s == list || s[-1] == ',') && (!s[n] || s[n] == ','))
            return true;
    return false;
}

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

/* Whether the space-separated list in dir/name has `word`. */
static bool list_has(const char *dir, const char *name, const char *word)
{
    _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
    _cleanup_free_ char *data = NULL;
    berth_error err = BERTH_ERROR_INIT;
    size_t n = strlen(word);

    if (berth_read_file(p, 4096, &data, NULL, &err) < 0)
        return false;
    for (char *s = data; (s = strstr(s, word)); s += n)
        if ((s == data || isspace((unsigned char)s[-1])) && (!s[n] || isspace((unsigned char)s[n])))
            return true;
    return false;
}

/* v2: a controller works in a cgroup only when its parent lists it in
 * cgroup.subtree_control. Enable at `dir` what its children need: the
 * controllers of the limits (an error when `dir` does not have one) and,
 * for accounting, memory, cpu and pids wherever they are available. Levels
 * that already delegate them (systemd's slices) are not written. */
static int v2_enable(const char *dir, const struct berth_limits *lim, berth_error *err)
{
    const bool need[BERTH_CG_N] = {lim->memory != 0, lim->cpus_milli != 0, lim->pids != 0};
    char enable[64] = "";

    /* v2 has no cpuacct: its cpu.stat always counts */
    for (int i = 0; i < BERTH_CG_CPUACCT; i++) {
        if (!list_has(dir, "cgroup.controllers", v1_controller[i])) {
            if (need[i])
                return berth_error_set(err, ENOTSUP,
                                       "the cgroup controller '%s' is not available in '%s'",
                                       v1_controller[i], dir);
            continue;
        }
        if (list_has(dir, "cgroup.subtree_control", v1_controller[i]))
            continue;
        snprintf(enable + strlen(enable), sizeof(enable) - strlen(enable), "%s+%s",
                 *enable ? " " : "", v1_controller[i]);
    }
    return *enable ? write_at(dir, "cgroup.subtree_control", enable, err) : 0;
}

/* mkdir that remembers what it made, so that a failure can undo it */
struct made {
    char *dirs[16];
    size_t n;
};

static int mkdir_once(const char *path, struct made *made, berth_error *err)
{
    if (mkdir(path, 0755) == 0) {
        if (made && made->n < ARRAY_SIZE(made->dirs))
            made->dirs[made->n++] = xstrdup(path);
        return 0;
    }
    if (errno != EEXIST)
        return berth_error_set(err, errno, "creating cgroup '%s'", path);
    return 0;
}

static void made_undo(struct made *made, bool remove)
{
    while (made->n > 0) {
        char *d = made->dirs[--made->n];
        if (remove)
            rmdir(d);
        free(d);
    }
}

/* Create every level of `path` below `base` (with `lim`: enabling the
 * controllers on the way down); the leaf's full path in *ret. */
static int mkdir_levels(const char *base, const char *path, const struct berth_limits *lim,
                        struct made *made, char **ret, berth_error *err)
{
    _cleanup_free_ char *dir = xstrdup(base);
    _cleanup_free_ char *rest = xstrdup(path);
    char *save = NULL;

    for (char *c = strtok_r(rest, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (lim && v2_enable(dir, lim, err) < 0)
            return -1;
        char *next = xasprintf("%s/%s", dir, c);
        free(dir);
        dir = next;
        if (mkdir_once(dir, made, err) < 0)
            return -1;
    }
    *ret = TAKE_PTR(dir);
    return 0;
}

static int write_u64(const char *dir, const char *name, uint64_t v, berth_error *err)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    return write_at(dir, name, buf, err);
}

static int v2_limits(const char *dir, const struct berth_limits *lim, berth_error *err)
{
    char buf[64];

    if (lim->memory) {
        if (write_u64(dir, "memory.max", lim->memory, err) < 0)
            return -1;
        /* a limit is a limit: no swapping past it */
        if (file_exists(dir, "memory.swap.max") && write_at(dir, "memory.swap.max", "0", err) < 0)
            return -1;
    }
    if (lim->cpus_milli) {
        snprintf(buf, sizeof(buf), "%llu %llu",
                 (unsigned long long)(lim->cpus_milli * CPU_PERIOD_US / 1000),
                 (unsigned long long)CPU_PERIOD_US);
        if (write_at(dir, "cpu.max", buf, err) < 0)
            return -1;
    }
    if (lim->pids && write_u64(dir, "pids.max", lim->pids, err) < 0)
        return -1;
    return 0;
}

static int v2_create(struct berth_cgroup *cg, const char *fsroot, const char *path,
                     const struct berth_limits *lim, struct made *made, berth_error *err)
{
    if (mkdir_levels(fsroot, path, lim, made, &cg->paths[0], err) < 0)
        return -1;
    return v2_limits(cg->paths[0], lim, err);
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
    case BERTH_CG_PIDS:
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)lim->pids);
        return write_at(dir, "pids.max", buf, err);
    default:
        return 0; /* cpuacct counts, it does not limit */
    }
}

static int v1_create(struct berth_cgroup *cg, const char *fsroot, const char *path,
                     const struct berth_limits *lim, struct made *made, berth_error *err)
{
    const bool need[BERTH_CG_N] = {lim->memory != 0, lim->cpus_milli != 0, lim->pids != 0};

    for (int i = 0; i < BERTH_CG_N; i++) {
        _cleanup_free_ char *mnt = xasprintf("%s/%s", fsroot, v1_controller[i]);
        if (access(mnt, F_OK) < 0) {
            if (!need[i])
                continue; /* accounting only where the controller is mounted */
            return berth_error_set(err, errno, "the cgroup controller '%s' is not mounted at '%s'",
                                   v1_controller[i], mnt);
        }
        if (mkdir_levels(mnt, path, NULL, made, &cg->paths[i], err) < 0)
            return -1;
        if (need[i] && v1_limits(cg->paths[i], i, lim, err) < 0)
            return -1;
    }
    return 0;
}

int berth_cgroup_create(struct berth_cgroup *cg, const char *fsroot, const char *path,
                        const struct berth_limits *lim, berth_error *err)
{
    struct made made = {0};
    int r;

    memset(cg, 0, sizeof(*cg));
    cg->mode = berth_cgroup_detect(fsroot);
    r = cg->mode == BERTH_CGROUP_V2 ? v2_create(cg, fsroot, path, lim, &made, err)
                                    : v1_create(cg, fsroot, path, lim, &made, err);
    if (r < 0) {
        for (int i = 0; i < BERTH_CG_N; i++) {
            free(cg->paths[i]);
            cg->paths[i] = NULL;
        }
        made_undo(&made, true);
        return berth_error_wrap(err, "setting up the cgroup '%s' (cgroup %s)", path,
                                cg->mode == BERTH_CGROUP_V2 ? "v2" : "v1");
    }
    made_undo(&made, false);
    return 0;
}

/* The roots of the hierarchies berth uses: fsroot (v2), or the mount of
 * each of memory, cpu and pids that exists (v1). */
static size_t hierarchy_tops(const char *fsroot, char *ret[BERTH_CG_N])
{
    size_t n = 0;

    if (berth_cgroup_detect(fsroot) == BERTH_CGROUP_V2) {
        ret[n++] = xstrdup(fsroot);
        return n;
    }
    for (int i = 0; i < BERTH_CG_N; i++) {
        char *mnt = xasprintf("%s/%s", fsroot, v1_controller[i]);
        if (access(mnt, F_OK) == 0)
            ret[n++] = mnt;
        else
            free(mnt);
    }
    return n;
}

static int move_self(const char *dir, berth_error *err)
{
    char pid[32];

    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    return write_at(dir, "cgroup.procs", pid, err);
}

int berth_cgroup_enter(const char *fsroot, const char *path, berth_error *err)
{
    char *tops[BERTH_CG_N];
    size_t n = hierarchy_tops(fsroot, tops);
    int r = 0;

    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *dir = xasprintf("%s/%s", tops[i], path);
        if (r == 0 && (berth_mkdir_p(dir, 0755, err) < 0 || move_self(dir, err) < 0))
            r = berth_error_wrap(err, "moving into the cgroup '%s'", path);
        free(tops[i]);
    }
    return r;
}

int berth_cgroup_leave(const char *fsroot, const char *path, unsigned levels, berth_error *err)
{
    char *tops[BERTH_CG_N];
    size_t n = hierarchy_tops(fsroot, tops);
    int r = 0;

    for (size_t i = 0; i < n; i++) {
        /* the root of each hierarchy takes processes whatever is enabled */
        if (move_self(tops[i], err) < 0)
            r = -1;
        else
            berth_cgroup_prune(tops[i], path, levels);
        free(tops[i]);
    }
    return r;
}

void berth_cgroup_remove(const char *fsroot, const char *path, unsigned levels)
{
    char *tops[BERTH_CG_N];
    size_t n = hierarchy_tops(fsroot, tops);

    for (size_t i = 0; i < n; i++) {
        berth_cgroup_prune(tops[i], path, levels);
        free(tops[i]);
    }
}

void berth_cgroup_prune(const char *top, const char *path, unsigned levels)
{
    _cleanup_free_ char *p = xstrdup(path);

    /* leaf first, then each parent while it is empty */
    for (; levels > 0; levels--) {
        _cleanup_free_ char *dir = xasprintf("%s/%s", top, p);
        char *slash = strrchr(p, '/');
        if (rmdir(dir) < 0 || !slash)
            return;
        *slash = '\0';
    }
}

char *berth_cgroup_of(pid_t pid, const char *controller)
{
    _cleanup_free_ char *path =
        pid ? xasprintf("/proc/%d/cgroup", (int)pid) : xstrdup("/proc/self/cgroup");
    _cleanup_free_ char *data = NULL;
    berth_error err = BERTH_ERROR_INIT;

    if (berth_read_file(path, 1 << 16, &data, NULL, &err) < 0)
        return NULL;
    for (char *line = data, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        /* "ID:CONTROLLERS:PATH"; the unified hierarchy is "0::PATH" */
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        const char *ctls = c1 + 1;
        bool match = controller ? list_has_comma(ctls, controller) : !*ctls;
        if (match)
            return xstrdup(c2[1] == '/' ? c2 + 2 : c2 + 1);
    }
    return NULL;
}

int berth_cgroup_join(pid_t pid, pid_t like, const char *fsroot, berth_error *err)
{
    char buf[32];
    size_t n = berth_cgroup_detect(fsroot) == BERTH_CGROUP_V2 ? 1 : BERTH_CG_N;

    snprintf(buf, sizeof(buf), "%d", (int)pid);
    for (size_t i = 0; i < n; i++) {
        const char *ctl = n == 1 ? NULL : v1_controller[i];
        _cleanup_free_ char *mnt = ctl ? xasprintf("%s/%s", fsroot, ctl) : NULL;
        if (mnt && access(mnt, F_OK) < 0)
            continue; /* that controller is not mounted */
        _cleanup_free_ char *rel = berth_cgroup_of(like, ctl);
        if (!rel) {
            if (!ctl)
                return berth_error_set(err, ESRCH, "reading the cgroup of process %d", (int)like);
            continue; /* that controller is not mounted */
        }
        _cleanup_free_ char *dir = xasprintf("%s/%s", mnt ? mnt : fsroot, rel);
        if (write_at(dir, "cgroup.procs", buf, err) < 0)
            return berth_error_wrap(err, "joining the cgroup '%s'", dir);
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

/* "<name>", or "<name>@<FNV-1a of the root>" under any root but the default */
static char *service_name(const char *root, const char *name)
{
    _cleanup_free_ char *real = realpath(root, NULL);
    const char *r = real ? real : root;
    uint32_t h = 2166136261u; /* FNV-1a: no need for libcrypto on `berth run`'s path */

    if (!strcmp(r, "/var/lib/berth"))
        return xstrdup(name);
    for (const unsigned char *p = (const unsigned char *)r; *p; p++)
        h = (h ^ *p) * 16777619u;
    return xasprintf("%s@%08x", name, h);
}

char *berth_cgroup_service_path(const char *root, const char *name)
{
    _cleanup_free_ char *n = service_name(root, name);
    return xasprintf("berth/%s", n);
}

char *berth_cgroup_service_scope(const char *root, const char *name)
{
    _cleanup_free_ char *n = service_name(root, name);
    char *at = strchr(n, '@');

    /* "@" would make it a template instance's name */
    if (at)
        *at = '-';
    return xasprintf("berth-%s.scope", n);
}
