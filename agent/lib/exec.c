#include "exec.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>

#include "child.h"
#include "cgroup.h"
#include "user.h"
#include "util.h"

#define FAIL(...) berth_child_fail(errfd, errno, false, __VA_ARGS__)

static int pidfd_open_(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* The pid behind a pidfd, in our pid namespace (fdinfo's "Pid:"). */
static pid_t pidfd_pid(int pidfd)
{
    char path[64];
    _cleanup_free_ char *info = NULL;
    berth_error ign = BERTH_ERROR_INIT;
    const char *p;

    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
    if (berth_read_file(path, 4096, &info, NULL, &ign) < 0)
        return 0;
    p = strstr(info, "\nPid:");
    return p ? (pid_t)atoi(p + 5) : 0;
}

/* The command, inside every namespace of the container: stdio, session,
 * then the service's identity as container.c takes it, exec. */
static __attribute__((noreturn)) void run_command(const struct berth_exec_config *cfg,
                                                  const struct berth_seccomp_bpf *bpf, int errfd,
                                                  const int stdio[3])
{
    berth_error err = BERTH_ERROR_INIT;
    const struct berth_credentials cred = {cfg->user->uid,
                                           cfg->user->gid,
                                           cfg->user->groups,
                                           cfg->user->ngroups,
                                           cfg->run->caps,
                                           cfg->run->limits.nofile,
                                           bpf};
    _cleanup_free_ char *where = xasprintf("the container of '%s'", cfg->run->name);
    const char *wd = cfg->workdir ? cfg->workdir : cfg->run->workdir ? cfg->run->workdir : "/";
    int workdir;

    berth_child_reset_signals();
    if (cfg->redirect_stdio && berth_child_stdio(stdio, &err) < 0)
        berth_child_fail_error(errfd, &err);
    /* inside the container's root (setns made it ours), no magic links */
    workdir = berth_child_open_workdir(wd, false);
    if (workdir < 0)
        FAIL("opening the working directory '%s' in '%s'", wd, cfg->run->name);
    /* A session of its own: nothing the command does reaches the caller's
     * terminal (TIOCSTI needs it as the controlling terminal), and the
     * timeout of berth_exec_wait() kills the whole process group. */
    if (setsid() < 0)
        FAIL("creating a session");
    if (cfg->tty && ioctl(0, TIOCSCTTY, 0) < 0)
        FAIL("making standard input the controlling terminal");
    if (berth_child_become(&cred, &err) < 0)
        berth_child_fail_error(errfd, &err);
    /* after the uid change, which clears it: the command dies with the
     * caller (berth exec killed, keeper gone) instead of lingering */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (berth_child_chdir(workdir, wd, &err) < 0)
        berth_child_fail_error(errfd, &err);
    berth_child_exec(errfd, cfg->argv, cfg->env ? cfg->env : cfg->run->env, where);
}

/* The helper: in the caller's namespaces, join the cgroups (the paths are
 * the host's), then every namespace of the init, then clone the command
 * as a sibling (CLONE_PARENT): a child of the caller, and the first
 * process of ours that is really inside the pid namespace. */
static __attribute__((noreturn)) void helper(const struct berth_exec_config *cfg,
                                             const struct berth_seccomp_bpf *bpf, int initfd,
                                             int errfd, int pidout)
{
    berth_error err = BERTH_ERROR_INIT;
    struct clone_args args = {.flags = CLONE_PARENT}; /* exit_signal: ours (SIGCHLD) */
    int stdio[3] = {-1, -1, -1};
    int *const keep[] = {&initfd, &errfd, &pidout, &stdio[0], &stdio[1], &stdio[2]};
    pid_t pid, init;

    /* Until exec, the container's processes cannot open our /proc/PID/fd,
     * cwd, root or exe; and of the caller's descriptors (a keeper's log,
     * socket, directories) only the command's standard streams stay. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (cfg->redirect_stdio)
        memcpy(stdio, cfg->stdio, sizeof(stdio));
    if (berth_child_keep_fds(keep, ARRAY_SIZE(keep)) < 0)
        FAIL("closing the caller's descriptors");
    init = pidfd_pid(initfd);

    if (init <= 0 ||
        berth_cgroup_join(getpid(), init, cfg->cgroup_root ? cfg->cgroup_root : BERTH_CGROUP_FSROOT,
                          &err) < 0) {
        if (init <= 0 || err.code == ESRCH)
            berth_child_fail(errfd, ESRCH, false, "the container of '%s' is not running",
                             cfg->run->name);
        berth_child_fail_error(errfd, &err);
    }
    if (setns(initfd, CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET |
                          CLONE_NEWCGROUP) < 0) {
        if (errno == ESRCH)
            berth_child_fail(errfd, ESRCH, false, "the container of '%s' is not running",
                             cfg->run->name);
        FAIL("joining the namespaces of the container of '%s' (setns)", cfg->run->name);
    }
    pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
    if (pid < 0) {
        /* a pid namespace whose init has died takes no new members */
        if (errno == ENOMEM)
            berth_child_fail(errfd, ESRCH, false, "the container of '%s' is not running",
                             cfg->run->name);
        FAIL("starting the command in the container of '%s' (clone3)", cfg->run->name);
    }
    if (pid == 0) {
        close(pidout);
        run_command(cfg, bpf, errfd, stdio);
    }
    if (write(pidout, &pid, sizeof(pid)) != sizeof(pid))
        _exit(1);
    _exit(0);
}

static int read_child_error(int fd, bool *exec_failed, berth_error *err)
{
    struct berth_child_msg m;
    int r = berth_child_read(fd, &m);

    if (r == 0)
        return 0;
    if (r < 0)
        return berth_error_set(err, EIO, "the command died before it started");
    *exec_failed = m.exec_failed;
    if ((m.exec_failed && m.code == ENOENT) || m.code == ESRCH) {
        /* the message says it all; keep the code for the caller */
        berth_error_set(err, 0, "%s", m.msg);
        err->code = m.code;
        return -1;
    }
    return berth_child_msg_error(&m, err);
}

static void reap(pid_t pid)
{
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* Wait for the helper and collect the command's pid from it. */
static pid_t collect_helper(pid_t helper_pid, int pidin)
{
    pid_t pid = 0;
    ssize_t n;

    reap(helper_pid);
    do
        n = read(pidin, &pid, sizeof(pid));
    while (n < 0 && errno == EINTR);
    return n == sizeof(pid) ? pid : 0;
}

static int spawn(const struct berth_exec_config *cfg, const struct berth_seccomp_bpf *bpf,
                 pid_t *ret_pid, int *ret_pidfd, bool *ret_exec_failed, berth_error *err)
{
    _cleanup_close_ int own = -1, errrd = -1, pidrd = -1, cmdfd = -1;
    int initfd = cfg->init_pidfd;
    int errpipe[2], pidpipe[2];
    pid_t helper_pid, pid;

    if (!cfg->argv || !cfg->argv[0])
        return berth_error_set(err, EINVAL, "no command to run in '%s'", cfg->run->name);
    if (initfd < 0) {
        initfd = own = cfg->init_pid > 0 ? pidfd_open_(cfg->init_pid) : -1;
        if (own < 0) {
            berth_error_set(err, 0, "the container of '%s' is not running", cfg->run->name);
            err->code = ESRCH;
            return -1;
        }
    }
    if (pipe2(errpipe, O_CLOEXEC) < 0)
        return berth_error_set(err, errno, "creating a pipe");
    errrd = errpipe[0];
    if (pipe2(pidpipe, O_CLOEXEC) < 0) {
        close(errpipe[1]);
        return berth_error_set(err, errno, "creating a pipe");
    }
    pidrd = pidpipe[0];
    helper_pid = fork();
    if (helper_pid == 0) {
        close(errpipe[0]);
        close(pidpipe[0]);
        helper(cfg, bpf, initfd, errpipe[1], pidpipe[1]);
    }
    close(errpipe[1]);
    close(pidpipe[1]);
    if (helper_pid < 0)
        return berth_error_set(err, errno, "forking to run a command in '%s'", cfg->run->name);
    pid = collect_helper(helper_pid, pidrd);
    if (pid > 0) {
        /* our own child: nobody else can reap it, so the pid is stable */
        cmdfd = pidfd_open_(pid);
        if (cmdfd < 0) {
            berth_error_set(err, errno, "opening a pidfd of the command in '%s'", cfg->run->name);
            kill(pid, SIGKILL);
            reap(pid);
            return -1;
        }
    }
    if (read_child_error(errrd, ret_exec_failed, err) < 0) {
        if (pid > 0)
            reap(pid);
        return -1;
    }
    if (pid <= 0)
        return berth_error_set(err, EIO, "running a command in '%s': the helper died",
                               cfg->run->name);
    *ret_pid = pid;
    *ret_pidfd = TAKE_FD(cmdfd);
    return 0;
}

int berth_exec_spawn(const struct berth_exec_config *cfg, pid_t *ret_pid, int *ret_pidfd,
                     bool *ret_exec_failed, berth_error *err)
{
    struct berth_seccomp_bpf bpf = {0};
    bool exec_failed = false;
    int r;

    /* the service's filter, built here: the command only loads it */
    if (cfg->run->profile &&
        berth_seccomp_build(cfg->run->profile, cfg->run->caps, cfg->seccomp_cache, &bpf, err) < 0)
        return berth_error_wrap(err, "running a command in '%s'", cfg->run->name);
    r = spawn(cfg, cfg->run->profile ? &bpf : NULL, ret_pid, ret_pidfd, &exec_failed, err);
    berth_seccomp_bpf_release(&bpf);
    if (ret_exec_failed)
        *ret_exec_failed = exec_failed;
    return r;
}

int berth_exec_open_pty(pid_t init_pid, int *ret_master, int *ret_slave, berth_error *err)
{
    _cleanup_free_ char *root = xasprintf("/proc/%d/root", (int)init_pid);
    _cleanup_close_ int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int path = -1, master = -1, slave = -1;
    char self[64];
    struct stat st;
    int unlock = 0;

    if (rootfd < 0)
        return berth_error_set(err, errno, "opening the root of the container (pid %d)",
                               (int)init_pid);
    /* resolved as if the container's root were "/": nothing it links can
     * lead us elsewhere; and it must be the devpts multiplexer (5:2) */
    path = berth_open_in_root(rootfd, "/dev/pts/ptmx", false, false, err);
    if (path < 0)
        return berth_error_set(err, err->code, "opening '/dev/pts/ptmx' in the container");
    snprintf(self, sizeof(self), "/proc/self/fd/%d", path);
    master = open(self, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || fstat(master, &st) < 0)
        return berth_error_set(err, errno, "opening '/dev/pts/ptmx' in the container");
    if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != 5 || minor(st.st_rdev) != 2)
        return berth_error_set(err, EINVAL,
                               "'/dev/pts/ptmx' in the container is not a "
                               "pseudo-terminal multiplexer");
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
        return berth_error_set(err, errno, "unlocking a pseudo-terminal");
    slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0)
        return berth_error_set(err, errno, "opening a pseudo-terminal");
    *ret_master = TAKE_FD(master);
    *ret_slave = TAKE_FD(slave);
    return 0;
}

static int exit_code(const siginfo_t *si)
{
    return si->si_code == CLD_EXITED ? si->si_status : 128 + si->si_status;
}

int berth_exec_wait(int pidfd, int timeout_ms, int *ret_code, berth_error *err)
{
    siginfo_t si = {0};
    int r = berth_exec_wait_siginfo(pidfd, timeout_ms, &si, err);

    if (r >= 0)
        *ret_code = exit_code(&si);
    return r;
}

int berth_exec_wait_siginfo(int pidfd, int timeout_ms, siginfo_t *ret_si, berth_error *err)
{
    uint64_t deadline = timeout_ms >= 0 ? berth_now_ms() + (uint64_t)timeout_ms : 0;
    struct pollfd p = {pidfd, POLLIN, 0};
    siginfo_t si = {0};
    int n;

    for (;;) {
        int left = -1;
        if (timeout_ms >= 0) {
            uint64_t now = berth_now_ms();
            left = now >= deadline ? 0 : (int)(deadline - now);
        }
        n = poll(&p, 1, left);
        if (n >= 0 || errno != EINTR)
            break;
    }
    if (n < 0)
        return berth_error_set(err, errno, "waiting for the command");
    if (n == 0) {
        /* the command and, when it leads its own process group, all it
         * started; our unreaped child keeps its pid and group id valid */
        pid_t pid = pidfd_pid(pidfd);
        if (pid > 0 && getpgid(pid) == pid)
            kill(-pid, SIGKILL);
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    }
    while (waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED) < 0)
        if (errno != EINTR)
            return berth_error_set(err, errno, "waiting for the command");
    *ret_si = si;
    return n == 0 ? 1 : 0;
}
