#include "container.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include "child.h"
#include "handover.h"
#include "kernel.h"
#include "proctitle.h"
#include "user.h"
#include "util.h"

const int berth_forwarded_signals[] = {SIGTERM, SIGINT,  SIGHUP,  SIGQUIT,
                                       SIGUSR1, SIGUSR2, SIGWINCH};
const size_t berth_n_forwarded_signals = ARRAY_SIZE(berth_forwarded_signals);

/* runc's defaults: hidden behind /dev/null or an empty read-only tmpfs */
static const char *const masked_paths[] = {
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
};
static const char *const readonly_paths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

#define FAIL(...) berth_child_fail(errfd, errno, false, __VA_ARGS__)

static void sigset_forwarded(sigset_t *set)
{
    sigemptyset(set);
    for (size_t i = 0; i < berth_n_forwarded_signals; i++)
        sigaddset(set, berth_forwarded_signals[i]);
    sigaddset(set, SIGCHLD);
}

/* A detached mount of a fresh filesystem; `opts` are "key=value" or "flag". */
static int fs_new(const char *type, const char *const *opts, unsigned int attrs)
{
    _cleanup_close_ int fs = fsopen(type, FSOPEN_CLOEXEC);

    if (fs < 0)
        return -1;
    for (; opts && *opts; opts++) {
        char key[64];
        const char *eq = strchr(*opts, '=');
        if (!eq) {
            if (fsconfig(fs, FSCONFIG_SET_FLAG, *opts, NULL, 0) < 0)
                return -1;
            continue;
        }
        snprintf(key, sizeof(key), "%.*s", (int)(eq - *opts), *opts);
        if (fsconfig(fs, FSCONFIG_SET_STRING, key, eq + 1, 0) < 0)
            return -1;
    }
    if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        return -1;
    return fsmount(fs, FSMOUNT_CLOEXEC, attrs);
}

static int set_attr(int mfd, uint64_t attr)
{
    struct mount_attr a = {.attr_set = attr};

    return mount_setattr(mfd, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof(a));
}

/* Attach detached mount `mfd` at `target` inside the rootfs. */
static int attach(int mfd, int rootfd, const char *target, bool create, bool dir)
{
    berth_error err = BERTH_ERROR_INIT;
    _cleanup_close_ int tfd = berth_open_in_root(rootfd, target, create, dir, &err);

    if (tfd < 0) {
        errno = err.code; /* for the child's report (FAIL) */
        return -1;
    }
    return move_mount(mfd, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

static void mount_new(int errfd, int rootfd, const char *type, const char *target,
                      const char *const *opts, unsigned int attrs, bool create)
{
    _cleanup_close_ int mfd = fs_new(type, opts, attrs);

    if (mfd < 0)
        FAIL("creating the %s filesystem for '%s'", type, target);
    if (attach(mfd, rootfd, target, create, true) < 0)
        FAIL("mounting %s on '%s'", type, target);
}

/* Bind host path `src` onto `target` in the rootfs. Missing targets are
 * created when `create`; with `optional`, a missing source or (read-only
 * rootfs) target is skipped. */
static void bind_host(int errfd, int rootfd, const char *src, const char *target, bool ro,
                      bool create, bool optional)
{
    _cleanup_close_ int mfd =
        open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    struct stat st;

    if (mfd < 0) {
        if (optional && errno == ENOENT)
            return;
        FAIL("bind mount source '%s'", src);
    }
    if (fstat(mfd, &st) < 0)
        FAIL("inspecting bind mount source '%s'", src);
    /* nodev: no device node made through a writable mount works; a device
     * node bound on purpose does */
    if (set_attr(mfd, (ro ? MOUNT_ATTR_RDONLY : 0) |
                          (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? 0 : MOUNT_ATTR_NODEV)) < 0)
        FAIL("setting the attributes of the bind mount of '%s'", src);
    if (attach(mfd, rootfd, target, create, S_ISDIR(st.st_mode)) < 0) {
        if (optional && errno == ENOENT)
            return;
        FAIL("bind mounting '%s' on '%s'", src, target);
    }
}

/* /dev: a nodev tmpfs with the minimal set of nodes, each bound from the
 * host's /dev. nodev is what keeps a node that the container makes itself
 * (with CAP_MKNOD, or one in the image) from opening a host device: it
 * holds on every mount the container can write, whatever its cgroup layout
 * (a device cgroup would need a BPF program on v2, and `berth run` may
 * have no cgroup at all). */
static void setup_dev(int errfd, int rootfd)
{
    static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
    static const char *const links[][2] = {
        {"ptmx", "pts/ptmx"},          {"fd", "/proc/self/fd"},       {"stdin", "/proc/self/fd/0"},
        {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"}, {"core", "/proc/kcore"},
    };
    const char *const dev_opts[] = {"mode=755", "size=65536k", NULL};
    const char *const pts_opts[] = {"newinstance", "ptmxmode=0666", "mode=0620", "gid=5", NULL};
    const char *const shm_opts[] = {"mode=1777", "size=65536k", NULL};
    _cleanup_close_ int devfd = -1;
    berth_error err = BERTH_ERROR_INIT;

    mount_new(errfd, rootfd, "tmpfs", "/dev", dev_opts,
              MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, true);
    devfd = berth_open_in_root(rootfd, "/dev", false, true, &err);
    if (devfd < 0) {
        errno = err.code; /* for FAIL */
        FAIL("opening '/dev'");
    }
    for (size_t i = 0; i < ARRAY_SIZE(nodes); i++) {
        _cleanup_free_ char *host = xasprintf("/dev/%s", nodes[i]);
        _cleanup_close_ int f = openat(devfd, nodes[i], O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        _cleanup_close_ int mfd = open_tree(AT_FDCWD, host, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (f < 0 || mfd < 0 ||
            move_mount(mfd, "", f, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
            FAIL("binding '/dev/%s'", nodes[i]);
    }
    for (size_t i = 0; i < ARRAY_SIZE(links); i++)
        if (symlinkat(links[i][1], devfd, links[i][0]) < 0)
            FAIL("creating '/dev/%s'", links[i][0]);
    if (mkdirat(devfd, "pts", 0755) < 0 || mkdirat(devfd, "shm", 01777) < 0)
        FAIL("creating '/dev/pts' and '/dev/shm'");
    mount_new(errfd, rootfd, "devpts", "/dev/pts", pts_opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
              false);
    mount_new(errfd, rootfd, "tmpfs", "/dev/shm", shm_opts,
              MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, false);
}

static void mask_paths(int errfd, int rootfd)
{
    const char *const ro_opts[] = {"size=0", "nr_inodes=1", NULL};
    /* One empty read-only tmpfs for every masked directory: attached over
     * the first, then cloned from there. Kernels before 6.15 refuse to
     * clone a mount that is not attached anywhere (EINVAL). */
    _cleanup_close_ int empty = -1;
    berth_error err = BERTH_ERROR_INIT; /* a path this kernel lacks is skipped */
    bool attached = false;

    for (size_t i = 0; i < ARRAY_SIZE(masked_paths); i++) {
        _cleanup_close_ int tfd = berth_open_in_root(rootfd, masked_paths[i], false, false, &err);
        _cleanup_close_ int mfd = -1;
        struct stat st;
        if (tfd < 0 || fstat(tfd, &st) < 0)
            continue; /* not on this kernel */
        if (S_ISDIR(st.st_mode) && !attached) {
            empty = fs_new("tmpfs", ro_opts,
                           MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                               MOUNT_ATTR_NOEXEC);
            if (empty < 0 || move_mount(empty, "", tfd, "",
                                        MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                FAIL("masking '%s'", masked_paths[i]);
            attached = true;
            continue;
        }
        if (S_ISDIR(st.st_mode))
            mfd = open_tree(empty, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        else
            mfd = open_tree(AT_FDCWD, "/dev/null", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (mfd < 0 ||
            move_mount(mfd, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
            FAIL("masking '%s'", masked_paths[i]);
    }
    for (size_t i = 0; i < ARRAY_SIZE(readonly_paths); i++) {
        _cleanup_close_ int tfd = berth_open_in_root(rootfd, readonly_paths[i], false, false, &err);
        _cleanup_close_ int mfd = -1;
        if (tfd < 0)
            continue;
        mfd =
            open_tree(tfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
        if (mfd < 0 ||
            set_attr(mfd, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                              MOUNT_ATTR_NOEXEC) < 0 ||
            move_mount(mfd, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
            FAIL("making '%s' read-only", readonly_paths[i]);
    }
}

/* Whether the root gets a writable layer: always but for a read-only root
 * on an image path that overlayfs cannot take (',' or ':'), which is bound
 * as it is (its mount targets must then exist). */
static bool has_layer(const struct berth_container_config *cfg)
{
    return !cfg->run->readonly || !strpbrk(cfg->run->image_rootfs, ",:");
}

static bool in_memory(const struct berth_container_config *cfg)
{
    return has_layer(cfg) && (cfg->memory_layer || cfg->run->readonly);
}

/* A read-only root is an overlay too, over a layer in memory, as runc
 * creates missing mount targets in the rootfs before it makes it
 * read-only: the targets (and a missing working directory) are made in
 * that layer, never in the shared image, and vanish with the container.
 * A layer in memory is a tmpfs over the whole run directory, in this
 * mount namespace only, that also holds the mount point `mnt`: nothing of
 * it is made (and removed again) on the disk. */
static void mount_rootfs(int errfd, const struct berth_container_config *cfg, const char *mnt)
{
    if (!has_layer(cfg)) {
        struct mount_attr a = {.attr_set = MOUNT_ATTR_NODEV};
        if (mount(cfg->run->image_rootfs, mnt, NULL, MS_BIND | MS_REC, NULL) < 0 ||
            mount_setattr(AT_FDCWD, mnt, AT_RECURSIVE, &a, sizeof(a)) < 0)
            FAIL("bind mounting the image '%s'", cfg->run->image_rootfs);
        return;
    }
    _cleanup_free_ char *opts = NULL;
    if (in_memory(cfg)) {
        _cleanup_free_ char *u = xasprintf("%s/u", cfg->rundir);
        _cleanup_free_ char *w = xasprintf("%s/w", cfg->rundir);
        if (mount("tmpfs", cfg->rundir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
            FAIL("mounting the in-memory layer on '%s'", cfg->rundir);
        if (mkdir(u, 0755) < 0 || mkdir(w, 0755) < 0 || mkdir(mnt, 0755) < 0)
            FAIL("creating the in-memory layer");
        opts = xasprintf("lowerdir=%s,upperdir=%s,workdir=%s", cfg->run->image_rootfs, u, w);
    } else {
        opts = xasprintf("lowerdir=%s,upperdir=%s/upper,workdir=%s/work", cfg->run->image_rootfs,
                         cfg->rundir, cfg->rundir);
    }
    if (mount("overlay", mnt, "overlay", MS_NODEV, opts) < 0)
        FAIL("mounting the overlay over '%s'", cfg->run->image_rootfs);
}

static void setup_mounts(int errfd, const struct berth_container_config *cfg, int rootfd)
{
    const char *const proc_opts[] = {NULL};
    bool create = has_layer(cfg);

    mount_new(errfd, rootfd, "proc", "/proc", proc_opts,
              MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, create);
    mount_new(errfd, rootfd, "sysfs", "/sys", proc_opts,
              MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, create);
    if (cfg->cgroup_v2)
        mount_new(errfd, rootfd, "cgroup2", "/sys/fs/cgroup", proc_opts,
                  MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                  false);
    setup_dev(errfd, rootfd);
    bind_host(errfd, rootfd, "/etc/resolv.conf", "/etc/resolv.conf", true, create, true);
    bind_host(errfd, rootfd, "/etc/hosts", "/etc/hosts", true, create, true);
    for (size_t i = 0; i < cfg->run->nmounts; i++) {
        const struct berth_mount *m = &cfg->run->mounts[i];
        if (m->tmpfs) {
            char size[48];
            const char *opts[] = {"mode=1777", m->size ? size : NULL, NULL};
            snprintf(size, sizeof(size), "size=%llu", (unsigned long long)m->size);
            mount_new(errfd, rootfd, "tmpfs", m->target, opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                      create);
        } else {
            bind_host(errfd, rootfd, m->source, m->target, m->readonly, create, false);
        }
    }
    mask_paths(errfd, rootfd);
}

static void loopback_up(int errfd)
{
    _cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {0};

    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        FAIL("reading the flags of 'lo'");
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        FAIL("bringing 'lo' up");
}

static void pivot(int errfd, int rootfd)
{
    if (fchdir(rootfd) < 0)
        FAIL("entering the rootfs");
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        FAIL("pivot_root");
    /* the old root is stacked under the new one; detach it */
    if (umount2(".", MNT_DETACH) < 0)
        FAIL("detaching the host's root");
    if (chdir("/") < 0)
        FAIL("chdir to '/'");
}

/* Last of the set-up that writes to the root: what the mounts and the
 * working directory needed is in place. */
static void make_root_readonly(int errfd)
{
    struct mount_attr a = {.attr_set = MOUNT_ATTR_RDONLY};

    if (mount_setattr(AT_FDCWD, "/", 0, &a, sizeof(a)) < 0)
        FAIL("making the rootfs read-only");
}

/* The service: forked from the set-up process once it had taken the
 * service's identity and seccomp filter (container_child). */
static __attribute__((noreturn)) void exec_service(const struct berth_container_config *cfg,
                                                   int errfd, const int stdio[3], int workdir,
                                                   const int handover[3])
{
    berth_error err = BERTH_ERROR_INIT;

    sigset_t none;

    for (int i = 0; i < 3; i++)
        if (handover[i] >= 0)
            close(handover[i]);
    /* the dispositions are the defaults already (container_child) */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if ((cfg->redirect_stdio && berth_child_stdio(stdio, &err) < 0) ||
        berth_child_chdir(workdir, cfg->run->workdir ? cfg->run->workdir : "/", &err) < 0)
        berth_child_fail_error(errfd, &err);
    berth_child_exec(errfd, cfg->run->argv, cfg->run->env, "the image");
}

/* The service shares our memory until its exec, and we wait for that
 * (CLONE_VFORK): no copy of berth's page tables, and none of the
 * copy-on-write faults that follow a fork in both processes (12-27 us each
 * on a VM): a fork cost more than the service's whole set-up. It runs on a stack of its own,
 * writes nothing of ours but that stack, errno and environ (the init uses
 * neither), and has no signal handler that could run on our memory: the
 * set-up process reset them all. */
#ifndef __SANITIZE_ADDRESS__
struct service_start {
    const struct berth_container_config *cfg;
    int errfd;
    const int *stdio;
    int workdir;
    const int *handover;
};

static int service_main(void *arg)
{
    const struct service_start *s = arg;

    exec_service(s->cfg, s->errfd, s->stdio, s->workdir, s->handover);
}

#endif

static pid_t spawn_service(const struct berth_container_config *cfg, int errfd, const int stdio[3],
                           int workdir, const int handover[3])
{
#ifdef __SANITIZE_ADDRESS__
    /* AddressSanitizer cannot follow a switch to a stack of our own (it
     * warns at the first noreturn call there): its build forks */
    pid_t pid = fork();

    if (pid == 0)
        exec_service(cfg, errfd, stdio, workdir, handover);
    return pid;
#else
    /* below our own frame, which waits: a static array would be resident
     * in every berth process (the kernel maps .bss eagerly here) */
    char stack[64 * 1024] __attribute__((aligned(16)));
    struct service_start s = {cfg, errfd, stdio, workdir, handover};

    return clone(service_main, stack + sizeof(stack), CLONE_VM | CLONE_VFORK | SIGCHLD, &s);
#endif
}

/* With handover, the service is gone: end what it left behind (what we
 * may signal; the kernel ends the rest at our exit), then report its code
 * and wait until a keeper has it. The report waits in the spare of the
 * keeper's end while no keeper runs (handover.h). */
static __attribute__((noreturn)) void init_report(int code)
{
    char msg[32];
    char ack;
    int n = snprintf(msg, sizeof(msg), "exit %d", code);

    kill(-1, SIGKILL);
    /* no blocking wait: a process we could not signal would hang us */
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    send(BERTH_INIT_FD_INIT, msg, (size_t)n, MSG_NOSIGNAL);
    while (recv(BERTH_INIT_FD_INIT, &ack, 1, 0) < 0 && errno == EINTR)
        ;
    _exit(code);
}

/* pid 1 of the container: forward signals to the service, reap every
 * zombie, exit with the service's status once it is gone (the kernel then
 * kills whatever the service left behind). It holds no more than the
 * service: its user, capabilities, no_new_privs and seccomp filter, taken
 * before the fork (container_child); no descriptor but, with handover,
 * the output pipe's read end and the report socket (handover.h). */
static __attribute__((noreturn)) void init_loop(pid_t service, int handover[3])
{
    sigset_t set;

    /* the uid change cleared both */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (handover[0] >= 0) {
        /* set up and recorded (on_clone): the container outlives its keeper */
        prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
        int *const keep[] = {&handover[0], &handover[1], &handover[2]};
        if (berth_child_keep_fds(keep, ARRAY_SIZE(keep)) < 0)
            _exit(127);
        syscall(SYS_close_range, 0U, 2U, 0);
    } else {
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        syscall(SYS_close_range, 0U, ~0U, 0);
    }
    sigset_forwarded(&set);
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&set, &si);
        if (sig < 0)
            continue;
        if (sig != SIGCHLD) {
            kill(service, sig);
            continue;
        }
        for (;;) {
            int status;
            pid_t p = waitpid(-1, &status, WNOHANG);
            if (p <= 0)
                break;
            if (p != service)
                continue;
            int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            if (handover[0] >= 0)
                init_report(code);
            _exit(code);
        }
    }
}

static __attribute__((noreturn)) void container_child(const struct berth_container_config *cfg,
                                                      int errfd, int syncfd, int handover[3])
{
    _cleanup_free_ char *mnt = xasprintf("%s/rootfs", cfg->rundir);
    const struct berth_credentials cred = {
        cfg->user->uid, cfg->user->gid,          cfg->user->groups, cfg->user->ngroups,
        cfg->run->caps, cfg->run->limits.nofile, cfg->seccomp_bpf};
    int stdio[3] = {-1, -1, -1};
    int *const keep[] = {&errfd,    &syncfd,      &stdio[0],    &stdio[1],
                         &stdio[2], &handover[0], &handover[1], &handover[2]};
    berth_error err = BERTH_ERROR_INIT;
    int rootfd, workdir;
    char go;
    pid_t service;

    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    /* Until exec, the container's processes cannot open our /proc/PID/fd,
     * cwd, root or exe (ptrace access); and of the caller's descriptors
     * only the service's standard streams stay open. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (cfg->redirect_stdio)
        memcpy(stdio, cfg->stdio, sizeof(stdio));
    if (berth_child_keep_fds(keep, ARRAY_SIZE(keep)) < 0)
        FAIL("closing the caller's descriptors");
    /* a session of its own: nothing in the container can push input into
     * the caller's terminal (TIOCSTI) or take it as its controlling one */
    if (setsid() < 0)
        FAIL("creating a session");
    /* berth's handlers are not the container's, and spawn_service() needs
     * none (the mask stays: the init waits for the signals it blocks) */
    berth_child_default_signals();
    /* Wait until the parent has put us in our cgroup: the cgroup namespace
     * made next is rooted there, and everything the set-up allocates is
     * charged to the container. */
    if (read(syncfd, &go, 1) != 1)
        _exit(127);
    close(syncfd);
    if (unshare(CLONE_NEWCGROUP) < 0)
        FAIL("creating the cgroup namespace");
    umask(0);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        FAIL("making mounts private");
    mount_rootfs(errfd, cfg, mnt);
    rootfd = open(mnt, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        FAIL("opening the rootfs '%s'", mnt);
    setup_mounts(errfd, cfg, rootfd);
    pivot(errfd, rootfd);
    close(rootfd);
    umask(022);
    if (cfg->run->hostname && sethostname(cfg->run->hostname, strlen(cfg->run->hostname)) < 0)
        FAIL("setting the hostname '%s'", cfg->run->hostname);
    if (cfg->run->network_none)
        loopback_up(errfd);
    /* inside the root, no magic links ("/proc/self/fd/N"), created as root */
    workdir = berth_child_open_workdir(cfg->run->workdir ? cfg->run->workdir : "/", has_layer(cfg));
    if (workdir < 0)
        FAIL("opening the working directory '%s'", cfg->run->workdir);
    if (cfg->run->readonly)
        make_root_readonly(errfd);
    /* The service's identity, then its filter, once for pid 1 and the
     * service: they share one filter in the kernel (loading Docker's costs
     * ~0.7 ms each time), and what is left to do is allowed by it. */
    if (berth_child_become(&cred, &err) < 0)
        berth_child_fail_error(errfd, &err);
    service = spawn_service(cfg, errfd, stdio, workdir, handover);
    if (service < 0)
        FAIL("starting the service");
    /* what the container sees of its pid 1, not the command line of the
     * berth it was forked from (the service has its own copy of that
     * memory, which its config points into: `berth run`'s command) */
    berth_proctitle_set((const char *const[]){"berth-init", NULL});
    init_loop(service, handover);
}

static int read_child_error(int fd, berth_error *err)
{
    struct berth_child_msg m;

    switch (berth_child_read(fd, &m)) {
    case 0:
        return 0;
    case 1:
        return berth_child_msg_error(&m, err);
    default:
        return berth_error_set(err, EIO, "the container died during setup");
    }
}

static int make_rundir(const struct berth_container_config *cfg, berth_error *err)
{
    static const char *const subdirs[] = {"rootfs", "upper", "work"};
    size_t n = in_memory(cfg) ? 0 : !has_layer(cfg) ? 1 : ARRAY_SIZE(subdirs);

    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *p = xasprintf("%s/%s", cfg->rundir, subdirs[i]);
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
            return berth_error_set(err, errno, "creating '%s'", p);
    }
    return 0;
}

/* Tell the child to go on: a socket rather than a pipe, so that a child
 * that died already gives EPIPE here instead of killing us with SIGPIPE
 * (its reason is then read from the error pipe). */
static int send_go(int fd, berth_error *err)
{
    if (send(fd, "g", 1, MSG_NOSIGNAL) != 1)
        return berth_error_set(err, errno, "starting the container");
    return 0;
}

static pid_t clone_container(const struct berth_container_config *cfg, int *ret_pidfd,
                             int *ret_errfd, int *ret_syncfd, int *ret_statusfd, berth_error *err)
{
    struct clone_args args = {0};
    int errpipe[2], sync[2];
    /* the init's: the output pipe, the keeper's end (a spare), its own */
    int handover[3] = {-1, -1, -1};
    pid_t pid;

    if (cfg->handover) {
        int sp[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
            return berth_error_set(err, errno, "creating the init's report socket");
        handover[0] = cfg->handover_logr;
        handover[1] = sp[1];
        handover[2] = sp[0];
    }

    if (pipe2(errpipe, O_CLOEXEC) < 0) {
        berth_error_set(err, errno, "creating a pipe");
        goto fail;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync) < 0) {
        berth_error_set(err, errno, "creating a socket pair");
        close(errpipe[0]);
        close(errpipe[1]);
        goto fail;
    }
    args.flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_PIDFD |
                 (cfg->run->network_none ? CLONE_NEWNET : 0);
    args.pidfd = (uint64_t)(uintptr_t)ret_pidfd;
    args.exit_signal = SIGCHLD;
    pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
    if (pid == 0) {
        close(errpipe[0]);
        close(sync[1]);
        container_child(cfg, errpipe[1], sync[0], handover);
    }
    close(errpipe[1]);
    close(sync[0]);
    if (pid < 0) {
        berth_error_set(err, errno, "creating the container's namespaces (clone3)");
        close(errpipe[0]);
        close(sync[1]);
        goto fail;
    }
    *ret_errfd = errpipe[0];
    *ret_syncfd = sync[1];
    if (cfg->handover) {
        close(handover[2]);
        *ret_statusfd = handover[1];
    }
    return pid;
fail:
    if (cfg->handover) {
        close(handover[1]);
        close(handover[2]);
    }
    return -1;
}

int berth_container_start(const struct berth_container_config *cfg, struct berth_container *c,
                          berth_error *err)
{
    struct berth_container_config conf = *cfg;
    struct berth_seccomp_bpf bpf = {0};
    berth_error ign = BERTH_ERROR_INIT;
    _cleanup_close_ int errfd = -1;
    _cleanup_close_ int syncfd = -1;
    const char *fsroot = cfg->cgroup_root ? cfg->cgroup_root : BERTH_CGROUP_FSROOT;
    int pidfd = -1;
    pid_t pid;

    memset(c, 0, sizeof(*c));
    c->pidfd = -1;
    c->statusfd = -1;
    c->rundir = xstrdup(cfg->rundir);
    c->keep_layer = cfg->keep_layer;
    c->stop_signal = cfg->run->stop_signal ? cfg->run->stop_signal : SIGTERM;
    c->stop_timeout_ms = cfg->run->stop_timeout_ms;
    if (berth_kernel_check(err) < 0)
        goto fail;
    if (strpbrk(cfg->run->image_rootfs, ",:") && has_layer(cfg)) {
        berth_error_set(err, EINVAL,
                        "the image path '%s' contains ',' or ':', which overlayfs cannot take",
                        cfg->run->image_rootfs);
        goto fail;
    }
    if (make_rundir(cfg, err) < 0)
        goto fail;
    /* one filter for the init and the service, built here: the children
     * only load it */
    if (cfg->run->profile) {
        if (berth_seccomp_build(cfg->run->profile, cfg->run->caps, cfg->seccomp_cache, &bpf, err) <
            0)
            goto fail;
        conf.seccomp_bpf = &bpf;
    }
    if (cfg->cgroup) {
        if (berth_cgroup_create(&c->cgroup, fsroot, cfg->cgroup, &cfg->run->limits, err) < 0)
            goto fail;
        c->has_cgroup = true;
        c->oom_kills0 = berth_cgroup_oom_kills(&c->cgroup);
    }
    /* the container sees its own cgroup at /sys/fs/cgroup (v2) */
    conf.cgroup_v2 = berth_cgroup_detect(BERTH_CGROUP_FSROOT) == BERTH_CGROUP_V2;
    pid = clone_container(&conf, &pidfd, &errfd, &syncfd, &c->statusfd, err);
    if (pid < 0)
        goto fail;
    c->pid = pid;
    c->pidfd = pidfd;
    if (c->has_cgroup && berth_cgroup_add_pid(&c->cgroup, pid, err) < 0)
        goto kill;
    if (cfg->on_clone)
        cfg->on_clone(c, cfg->on_clone_ud);
    if (send_go(syncfd, err) < 0) {
        /* it died before it read: its own reason, if it left one, is better */
        read_child_error(errfd, err);
        goto kill;
    }
    if (read_child_error(errfd, err) < 0)
        goto kill;
    berth_seccomp_bpf_release(&bpf);
    return 0;
kill:
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
fail:
    berth_seccomp_bpf_release(&bpf);
    if (berth_container_release(c, &ign) < 0) {
        /* the start's own error is the one to report */
    }
    return berth_error_wrap(err, "starting container '%s'", cfg->run->name);
}

int berth_container_kill(const struct berth_container *c, int sig, berth_error *err)
{
    if (syscall(SYS_pidfd_send_signal, c->pidfd, sig, NULL, 0) < 0)
        return berth_error_set(err, errno, "sending %s to the container", berth_signal_name(sig));
    return 0;
}

/* A signal passed on while waiting: one that finds the init gone (ESRCH)
 * is followed by its exit, which the wait reaps. */
static void pass_on(const struct berth_container *c, int sig)
{
    berth_error ign = BERTH_ERROR_INIT;

    if (berth_container_kill(c, sig, &ign) < 0) {
        /* see above */
    }
}

int berth_container_reap(struct berth_container *c, struct berth_exit *ret, berth_error *err)
{
    siginfo_t si = {0};

    /* a report may have come with the exit */
    if (c->statusfd >= 0 && !c->has_report)
        berth_container_on_report(c);
    if (c->adopted) {
        /* no parent of the init: what it said, or it was killed */
        ret->code = c->has_report ? c->report_code : 128 + SIGKILL;
    } else {
        if (waitid(P_PIDFD, (id_t)c->pidfd, &si, WEXITED) < 0)
            return berth_error_set(err, errno, "waiting for the container");
        ret->code = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
    }
    if (c->statusfd >= 0) {
        close(c->statusfd);
        c->statusfd = -1;
    }
    if (c->has_cgroup)
        ret->oom_killed = berth_cgroup_oom_kills(&c->cgroup) > c->oom_kills0;
    close(c->pidfd);
    c->pidfd = -1;
    c->pid = 0;
    return 0;
}

int berth_container_wait(struct berth_container *c, struct berth_exit *ret, berth_error *err)
{
    _cleanup_close_ int sfd = -1;
    uint64_t deadline = 0;
    sigset_t set;

    memset(ret, 0, sizeof(*ret));
    sigset_forwarded(&set);
    sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0)
        return berth_error_set(err, errno, "creating a signalfd");
    for (;;) {
        struct pollfd pfd[2] = {{c->pidfd, POLLIN, 0}, {sfd, POLLIN, 0}};
        int timeout = -1;
        if (deadline) {
            uint64_t now = berth_now_ms();
            timeout = now >= deadline ? 0 : (int)(deadline - now);
        }
        int n = poll(pfd, 2, timeout);
        if (n < 0 && errno != EINTR)
            return berth_error_set(err, errno, "waiting for the container");
        if (n == 0 && deadline) {
            pass_on(c, SIGKILL);
            ret->stop_timed_out = true;
            deadline = 0;
            continue;
        }
        if (pfd[0].revents)
            return berth_container_reap(c, ret, err);
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
            int sig = (int)si.ssi_signo;
            if (sig == SIGCHLD)
                continue; /* the container has a session of its own: our terminal's signals are
                           * ours to pass on */
            if (sig == SIGTERM || sig == SIGINT) {
                pass_on(c, sig == SIGTERM ? c->stop_signal : sig);
                if (!deadline)
                    deadline = berth_now_ms() + c->stop_timeout_ms;
            } else {
                pass_on(c, sig);
            }
        }
    }
}

bool berth_container_on_report(struct berth_container *c)
{
    int code;
    int r = berth_handover_read_report(c->statusfd, &code);

    if (r > 0) {
        c->has_report = true;
        c->report_code = code;
    }
    return r == 0;
}

int berth_container_layer_remove(const char *rundir, berth_error *err)
{
    static const char *const layer[] = {"upper", "work"};
    int r = 0;

    for (size_t i = 0; i < ARRAY_SIZE(layer); i++) {
        _cleanup_free_ char *p = xasprintf("%s/%s", rundir, layer[i]);
        if (berth_rm_rf(p, err) < 0)
            r = -1;
    }
    return r;
}

int berth_container_release(struct berth_container *c, berth_error *err)
{
    int r = 0;

    if (c->pidfd >= 0) {
        close(c->pidfd);
        c->pidfd = -1;
    }
    if (c->statusfd >= 0) {
        close(c->statusfd);
        c->statusfd = -1;
    }
    if (c->has_cgroup && berth_cgroup_destroy(&c->cgroup, err) < 0)
        r = -1;
    c->has_cgroup = false;
    if (c->rundir) {
        _cleanup_free_ char *p = xasprintf("%s/rootfs", c->rundir);
        if (berth_rm_rf(p, err) < 0)
            r = -1;
        if (!c->keep_layer && berth_container_layer_remove(c->rundir, err) < 0)
            r = -1;
        free(c->rundir);
        c->rundir = NULL;
    }
    return r;
}

/* The innermost pid of process `pid` (NSpid's last field); 0 when unknown. */
static pid_t ns_pid(pid_t pid)
{
    _cleanup_free_ char *path = xasprintf("/proc/%d/status", (int)pid);
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    char line[256];
    pid_t last = 0;

    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "NSpid:", 6))
            continue;
        for (char *tok = strtok(line + 6, " \t\n"); tok; tok = strtok(NULL, " \t\n"))
            last = (pid_t)atoi(tok);
        break;
    }
    return last;
}

pid_t berth_container_service_pid(pid_t init)
{
    _cleanup_free_ char *path = xasprintf("/proc/%d/task/%d/children", (int)init, (int)init);
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    pid_t first = 0;
    int pid;

    /* the service is the init's first fork: pid 2 inside; orphans the
     * init adopted follow it */
    while (f && fscanf(f, "%d", &pid) == 1) {
        if (ns_pid(pid) == 2)
            return pid;
        if (!first)
            first = pid;
    }
    return first;
}
