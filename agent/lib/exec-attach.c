/* berth exec's side of running a command in a service's container
 * (exec-attach.h): the service's recorded configuration, a pty of the container,
 * the relay between it and our terminal, the forwarded signals. */
#include "exec-attach.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "container.h"
#include "exec.h"
#include "record.h"
#include "run-config.h"
#include "status.h"
#include "user.h"
#include "util.h"

/* The service's environment, then HOME for another user, TERM for a
 * terminal, then -e. */
static char **build_env(char **base, const struct berth_exec_attach_options *o, const char *home,
                        bool tty)
{
    char **env = NULL;
    size_t n = 0;

    for (char **p = base; p && *p; p++)
        if (strchr(*p, '='))
            berth_env_set(&env, &n, *p);
    if (o->user) {
        _cleanup_free_ char *h = xasprintf("HOME=%s", home);
        berth_env_set(&env, &n, h);
    }
    if (tty) {
        bool has = false;
        for (size_t i = 0; i < n; i++)
            has |= !strncmp(env[i], "TERM=", 5);
        if (!has) {
            _cleanup_free_ char *t =
                xasprintf("TERM=%s", getenv("TERM") ? getenv("TERM") : "xterm");
            berth_env_set(&env, &n, t);
        }
    }
    for (size_t i = 0; i < o->nenv; i++)
        berth_env_set_arg(&env, &n, o->env[i]);
    /* never NULL: it becomes the command's environ */
    return env ? env : xcalloc(1, sizeof(char *));
}

static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;

    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* The running service's init: its pid and a pidfd, or a message. */
static int open_init(const char *root, const char *name, pid_t *ret_pid, int *ret_pidfd,
                     berth_error *err)
{
    berth_error e = BERTH_ERROR_INIT;
    struct berth_status st;
    bool running;
    int fd = -1;

    if (berth_status_read(root, name, &st, &e) < 0)
        return berth_error_set(err, 0, "service '%s' is not running (it has not started yet)",
                               name);
    running = st.state == BERTH_STATE_RUNNING && st.pid > 0;
    if (running)
        fd = (int)syscall(SYS_pidfd_open, st.pid, 0);
    if (fd >= 0) {
        /* the pid is still a container's init, not a reused host pid */
        _cleanup_free_ char *ns = xasprintf("/proc/%d/ns/pid", (int)st.pid);
        if (same_file(ns, "/proc/self/ns/pid")) {
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        berth_error_set(err, 0, "service '%s' is not running (state: %s)", name,
                        running ? "exited" : berth_state_name(st.state));
        berth_status_release(&st);
        return -1;
    }
    *ret_pid = st.pid;
    *ret_pidfd = fd;
    berth_status_release(&st);
    return 0;
}

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the reader is gone; keep draining */
        buf += n;
        len -= (size_t)n;
    }
}

/* Copy what `from` has now to `to`; false at EOF or error (for a pty
 * master: EIO once no slave is open). */
static bool relay(int from, int to)
{
    char buf[16384];
    ssize_t n = read(from, buf, sizeof(buf));

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n <= 0)
        return false;
    write_all(to, buf, (size_t)n);
    return true;
}

static void copy_winsize(int master)
{
    struct winsize ws;

    if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
        ioctl(master, TIOCSWINSZ, &ws);
}

struct waiter {
    int pidfd;  /* the command */
    int sfd;    /* signalfd of the forwarded signals */
    int master; /* pty master, or -1 */
    bool stdin_open;
    uint64_t deadline; /* monotonic ms, 0: none */
};

static void on_signals(struct waiter *w)
{
    struct signalfd_siginfo si;

    while (read(w->sfd, &si, sizeof(si)) == sizeof(si)) {
        int sig = (int)si.ssi_signo;
        if (sig == SIGWINCH && w->master >= 0) {
            copy_winsize(w->master);
            continue;
        }
        /* CMD has a session of its own: our terminal's signals are ours to pass on */
        syscall(SYS_pidfd_send_signal, w->pidfd, sig, NULL, 0);
    }
}

/* Relay and forward until the command exits or the deadline passes: its
 * exit code, or -1 (*ret_exit: 124 when it was killed at the deadline). */
static int wait_command(struct waiter *w, const char *name, int *ret_exit, berth_error *err)
{
    int code, timeout = -1, r;

    for (;;) {
        if (w->deadline) {
            uint64_t now = berth_now_ms();
            if (now >= w->deadline)
                break;
            timeout = (int)(w->deadline - now);
        }
        struct pollfd p[4] = {{w->pidfd, POLLIN, 0},
                              {w->sfd, POLLIN, 0},
                              {w->master, POLLIN, 0},
                              {w->stdin_open ? STDIN_FILENO : -1, POLLIN, 0}};
        if (poll(p, 4, timeout) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            on_signals(w);
        if (p[2].revents && !relay(w->master, STDOUT_FILENO))
            w->master = -1;
        if (p[3].revents && !relay(STDIN_FILENO, w->master))
            w->stdin_open = false;
        if (p[0].revents)
            break;
    }
    if (w->master >= 0) {
        /* what CMD wrote before it exited; not what its orphans may
         * still write */
        fcntl(w->master, F_SETFL, fcntl(w->master, F_GETFL) | O_NONBLOCK);
        char buf[16384];
        ssize_t n;
        while ((n = read(w->master, buf, sizeof(buf))) > 0)
            write_all(STDOUT_FILENO, buf, (size_t)n);
    }
    /* past the deadline this kills CMD and its process group */
    r = berth_exec_wait(w->pidfd, w->deadline ? 0 : -1, &code, err);
    if (r < 0)
        return -1;
    if (r == 1) {
        *ret_exit = 124;
        return berth_error_set(err, 0, "the command in '%s' did not finish in time; killed", name);
    }
    return code;
}

/* What an attached command holds. */
struct attach {
    struct berth_run_config kc; /* the service's container.json */
    char *seccomp_cache;
    struct berth_user user;
    char **env;
    pid_t init_pid;
    int initfd, cmdfd, sfd, master, slave;
};

static void attach_release(struct attach *a)
{
    int *fds[] = {&a->initfd, &a->cmdfd, &a->sfd, &a->master, &a->slave};

    for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
        if (*fds[i] >= 0)
            close(*fds[i]);
    berth_strv_free(a->env);
    berth_user_release(&a->user);
    berth_run_config_release(&a->kc);
    free(a->seccomp_cache);
}

/* The service's init, the configuration its container runs with, and a
 * pty of the container for a terminal. */
static int attach_prepare(const char *root, const char *name,
                          const struct berth_exec_attach_options *o, bool tty, struct attach *a,
                          berth_error *err)
{
    _cleanup_free_ char *dir = berth_record_dir(root, name);
    _cleanup_free_ char *cfgpath = berth_record_path(dir, BERTH_RECORD_CONTAINER);

    if (access(dir, F_OK) < 0)
        return berth_error_set(err, 0, "no service '%s' under '%s'", name, root);
    if (open_init(root, name, &a->init_pid, &a->initfd, err) < 0 ||
        berth_run_config_read(cfgpath, &a->kc, err) < 0 ||
        berth_user_resolve(a->kc.image_rootfs, o->user ? o->user : a->kc.user, &a->user, err) < 0)
        return -1;
    a->seccomp_cache = berth_seccomp_cache_dir(root);
    if (tty) {
        if (berth_exec_open_pty(a->init_pid, &a->master, &a->slave, err) < 0)
            return -1;
        copy_winsize(a->master);
        /* the terminal belongs to whoever uses it, as login does */
        if (fchown(a->slave, a->user.uid, (gid_t)-1) < 0) {
            /* it stays root's: CMD has it open regardless */
        }
    }
    a->env = build_env(a->kc.env, o, a->user.home, tty);
    return 0;
}

static int attach_spawn(char **argv, const struct berth_exec_attach_options *o, bool tty,
                        struct attach *a, int *ret_exit, berth_error *err)
{
    struct berth_exec_config cfg = {
        .init_pid = a->init_pid,
        .init_pidfd = a->initfd,
        .run = &a->kc,
        .user = &a->user,
        .argv = argv,
        .env = a->env,
        .workdir = o->workdir,
        .seccomp_cache = a->seccomp_cache,
        .redirect_stdio = tty || !o->interactive,
        .stdio = {tty ? a->slave : -1, tty ? a->slave : STDOUT_FILENO,
                  tty ? a->slave : STDERR_FILENO},
        .tty = tty,
    };
    pid_t pid;
    bool exec_failed;

    if (berth_exec_spawn(&cfg, &pid, &a->cmdfd, &exec_failed, err) < 0) {
        if (exec_failed)
            *ret_exit = err->code == ENOENT ? 127 : 126;
        return -1;
    }
    if (a->slave >= 0) {
        close(a->slave);
        a->slave = -1;
    }
    return 0;
}

int berth_exec_attach(const char *root, const char *name, char **argv,
                      const struct berth_exec_attach_options *o, int *ret_exit, berth_error *err)
{
    struct attach a = {.initfd = -1, .cmdfd = -1, .sfd = -1, .master = -1, .slave = -1};
    bool tty = o->tty && isatty(STDIN_FILENO), raw = false;
    struct termios saved;
    sigset_t block, old;
    int rc = -1;

    *ret_exit = 1;
    if (attach_prepare(root, name, o, tty, &a, err) < 0)
        goto out;
    /* blocked before CMD exists, so that no signal is lost */
    sigemptyset(&block);
    for (size_t i = 0; i < berth_n_forwarded_signals; i++)
        sigaddset(&block, berth_forwarded_signals[i]);
    sigprocmask(SIG_BLOCK, &block, &old);
    a.sfd = signalfd(-1, &block, SFD_CLOEXEC | SFD_NONBLOCK);
    if (a.sfd < 0) {
        berth_error_set(err, errno, "creating a signalfd");
    } else if (attach_spawn(argv, o, tty, &a, ret_exit, err) == 0) {
        if (tty && o->interactive && tcgetattr(STDIN_FILENO, &saved) == 0) {
            struct termios t = saved;
            cfmakeraw(&t);
            raw = tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0;
        }
        struct waiter w = {a.cmdfd, a.sfd, a.master, tty && o->interactive,
                           o->timeout_ms ? berth_now_ms() + o->timeout_ms : 0};
        rc = wait_command(&w, name, ret_exit, err);
        if (raw)
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
out:
    attach_release(&a);
    return rc;
}
