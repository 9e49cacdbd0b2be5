#include "keeper.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "events.h"
#include "exec.h"
#include "handover.h"
#include "logs.h"
#include "record.h"
#include "run-config.h"
#include "seccomp-profile.h"
#include "status.h"
#include "systemd.h"
#include "user.h"
#include "util.h"

/* ---- liveness and control ------------------------------------------------ */

/* A unix socket address for a path of any length: through the directory's
 * fd in /proc, which keeps sun_path short. */
static int sock_addr(int dirfd, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    return snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", dirfd,
                    berth_record_file_name(BERTH_RECORD_KEEPER_SOCK)) < (int)sizeof(sa->sun_path)
               ? 0
               : -1;
}

static int read_line_timeout(int fd, char *buf, size_t len, int timeout_ms)
{
    size_t got = 0;

    while (got + 1 < len) {
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r == 0 ? -ETIMEDOUT : -errno;
        ssize_t n = read(fd, buf + got, 1);
        if (n <= 0)
            break;
        if (buf[got] == '\n')
            break;
        got++;
    }
    buf[got] = '\0';
    return (int)got;
}

/* Wait up to `ms` for process `pid` to exit (pidfd: an event, no polling). */
static void wait_pid_exit(pid_t pid, int ms)
{
    int fd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
    struct pollfd p = {fd, POLLIN, 0};

    if (fd < 0)
        return;
    poll(&p, 1, ms);
    close(fd);
}

static int connect_keeper(const char *root, const char *name, berth_error *err)
{
    _cleanup_free_ char *dir = berth_record_dir(root, name);
    _cleanup_close_ int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct sockaddr_un sa;

    if (dfd < 0)
        return berth_error_set(err, errno, "service '%s' has no record under '%s'", name, root);
    if (sock_addr(dfd, &sa) < 0)
        return berth_error_set(err, ENAMETOOLONG, "socket path");
    /* A keeper holds its lock slightly before it listens, and slightly
     * after it stopped listening: while it holds the lock and does not
     * answer, wait for it to exit, for at most 5 s in all. */
    for (int attempt = 0;; attempt++) {
        pid_t pid = 0;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return berth_error_set(err, errno, "creating a socket");
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return fd;
        int e = errno;
        close(fd);
        if (!berth_record_keeper_alive(root, name, &pid))
            return berth_error_set(err, ESRCH, "service '%s' has no keeper running", name);
        if (attempt == 50)
            return berth_error_set(err, e, "the keeper of '%s' (pid %d) does not answer", name,
                                   (int)pid);
        wait_pid_exit(pid, 100);
    }
}

int berth_keeper_request(const char *root, const char *name, const char *request, char *reply,
                         size_t len, berth_error *err)
{
    _cleanup_close_ int fd = connect_keeper(root, name, err);
    char buf[4096];
    _cleanup_free_ char *line = xasprintf("%s\n", request);

    if (fd < 0)
        return -1;
    if (write(fd, line, strlen(line)) != (ssize_t)strlen(line))
        return berth_error_set(err, errno, "talking to the keeper of '%s'", name);
    if (read_line_timeout(fd, buf, sizeof(buf), 10000) < 0)
        return berth_error_set(err, ETIMEDOUT, "the keeper of '%s' did not answer '%s'", name,
                               request);
    if (strncmp(buf, "ok", 2))
        return berth_error_set(err, EINVAL, "the keeper of '%s': %s", name, buf);
    if (reply)
        snprintf(reply, len, "%s", buf[2] == ' ' ? buf + 3 : "");
    return 0;
}

int berth_keeper_stop_begin(const char *root, const char *name, int *ret_fd, berth_error *err)
{
    _cleanup_close_ int fd = -1;
    berth_error e = BERTH_ERROR_INIT;

    *ret_fd = -1;
    if (!berth_record_keeper_alive(root, name, NULL)) {
        _cleanup_free_ char *dir = berth_record_dir(root, name);
        if (!berth_record_orphaned(dir))
            return 0;
        /* its container runs on without a keeper: a new one adopts it, and
         * stops it as any other (stop signal, timeout, exit recorded) */
        if (berth_keeper_spawn(root, name, "/proc/self/exe", NULL, &e) < 0 &&
            !berth_record_keeper_alive(root, name, NULL)) { /* else: another adopted it meanwhile */
            *err = e;
            return berth_error_wrap(err, "adopting '%s' to stop it", name);
        }
        memset(&e, 0, sizeof(e));
    }
    fd = connect_keeper(root, name, &e);
    if (fd < 0) {
        if (e.code == ESRCH)
            return 0; /* it exited meanwhile */
        *err = e;
        return -1;
    }
    if (write(fd, "stop\n", 5) != 5)
        return berth_error_set(err, errno, "asking the keeper of '%s' to stop", name);
    *ret_fd = TAKE_FD(fd);
    return 0;
}

int berth_keeper_stop_wait(int fd, const char *name, berth_error *err)
{
    return berth_keeper_stop_wait_until(fd, name, berth_now_ms() + BERTH_KEEPER_WAIT_MS, err);
}

int berth_keeper_stop_wait_until(int fd, const char *name, uint64_t deadline_ms, berth_error *err)
{
    char buf[256];

    /* "ok", then the keeper keeps the connection until it exits: EOF is the
     * event that says the service and its keeper are gone */
    for (;;) {
        uint64_t now = berth_now_ms();
        int r = read_line_timeout(fd, buf, sizeof(buf),
                                  now >= deadline_ms ? 0 : (int)(deadline_ms - now));
        if (r == 0)
            break;
        if (r == -ETIMEDOUT) {
            close(fd);
            return berth_error_set(err, ETIMEDOUT,
                                   "'%s' is not stopped yet: the wait timed out (its keeper goes "
                                   "on stopping it)",
                                   name);
        }
        if (r < 0) {
            close(fd);
            return berth_error_set(err, -r, "waiting for '%s' to stop", name);
        }
    }
    close(fd);
    return 0;
}

int berth_keeper_restart(const char *root, const char *name, uint64_t timeout_ms, pid_t *ret_pid,
                         berth_error *err)
{
    _cleanup_close_ int fd = connect_keeper(root, name, err);
    uint64_t deadline = berth_now_ms() + timeout_ms;
    char buf[BERTH_ERROR_MAX + 64];
    int r;

    if (fd < 0)
        return -1;
    if (write(fd, "restart-wait\n", 13) != 13)
        return berth_error_set(err, errno, "asking the keeper of '%s' to restart", name);
    if (read_line_timeout(fd, buf, sizeof(buf), 10000) < 0)
        return berth_error_set(err, ETIMEDOUT, "the keeper of '%s' did not answer 'restart'", name);
    if (strncmp(buf, "ok", 2))
        return berth_error_set(err, EINVAL, "the keeper of '%s': %s", name, buf);
    uint64_t now = berth_now_ms();
    r = read_line_timeout(fd, buf, sizeof(buf), now >= deadline ? 0 : (int)(deadline - now));
    if (r == -ETIMEDOUT)
        return berth_error_set(err, ETIMEDOUT,
                               "'%s' is not running again yet: the wait timed out (its keeper "
                               "goes on restarting it)",
                               name);
    if (r <= 0)
        return berth_error_set(err, r ? -r : EPIPE, "the keeper of '%s' exited during the restart",
                               name);
    if (!strncmp(buf, "done running ", 13)) {
        if (ret_pid)
            *ret_pid = (pid_t)atoi(buf + 13);
        return 0;
    }
    /* "done <state> <why>" */
    const char *state = strncmp(buf, "done ", 5) ? buf : buf + 5;
    const char *why = strchr(state, ' ');
    return berth_error_set(err, 0, "'%s' is %.*s after the restart%s%s", name,
                           why ? (int)(why - state) : (int)strlen(state), state,
                           why && why[1] ? ": " : "", why ? why + 1 : "");
}

int berth_keeper_stop(const char *root, const char *name, berth_error *err)
{
    int fd;

    if (berth_keeper_stop_begin(root, name, &fd, err) < 0)
        return -1;
    return fd < 0 ? 0 : berth_keeper_stop_wait(fd, name, err);
}

/* PATH, and the sanitizers' settings of a test build (their reports of a
 * detached keeper go to files only through these) */
static char **keeper_env(void)
{
    static const char *const pass[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"};
    static char *env[ARRAY_SIZE(pass) + 2];
    size_t n = 0;

    env[n++] = (char *)BERTH_DEFAULT_PATH;
    for (size_t i = 0; i < ARRAY_SIZE(pass); i++) {
        const char *v = getenv(pass[i]);
        if (v)
            env[n++] = xasprintf("%s=%s", pass[i], v);
    }
    env[n] = NULL;
    return env;
}

int berth_keeper_spawn(const char *root, const char *name, const char *exe, pid_t *ret_pid,
                       berth_error *err)
{
    int p[2];
    pid_t child;
    char buf[1024];
    int r;

    /* the keeper starts in "/": a relative --root must not change meaning */
    _cleanup_free_ char *abs = realpath(root, NULL);

    if (!abs)
        return berth_error_set(err, errno, "resolving the root '%s'", root);
    if (pipe2(p, O_CLOEXEC) < 0)
        return berth_error_set(err, errno, "creating a pipe");
    child = fork();
    if (child < 0) {
        close(p[0]);
        close(p[1]);
        return berth_error_set(err, errno, "forking the keeper of '%s'", name);
    }
    if (child == 0) {
        sigset_t none;
        int devnull;
        /* detach: own session, reparented to init when the middle child exits */
        setsid();
        if (fork() != 0)
            _exit(0);
        devnull = open("/dev/null", O_RDWR);
        for (int i = 0; i < 3; i++)
            dup2(devnull, i);
        if (dup2(p[1], 3) < 0)
            _exit(127);
        syscall(SYS_close_range, 4U, ~0U, 0);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* nothing of the caller's: its cwd, umask and environment (a secret
         * in the shell that ran `berth apply`) reach no keeper, init or
         * service */
        if (chdir("/") < 0)
            _exit(127);
        umask(022);
        execle(exe, "berth", "keeper", "--root", abs, "--ready-fd", "3", name, (char *)NULL,
               keeper_env());
        dprintf(3, "error: executing '%s': %s\n", exe, strerror(errno));
        _exit(127);
    }
    close(p[1]);
    waitpid(child, NULL, 0);
    r = read_line_timeout(p[0], buf, sizeof(buf), 30000);
    close(p[0]);
    if (r < 0)
        return berth_error_set(err, -r, "waiting for the keeper of '%s' to start", name);
    if (!strncmp(buf, "fail ", 5)) {
        const char *why = strchr(buf + 5, ' ');
        return berth_error_set(err, 0, "did not start: %s", why ? why + 1 : "unknown reason");
    }
    if (strncmp(buf, "ok ", 3))
        return berth_error_set(err, 0, "the keeper of '%s' did not start: %s", name,
                               r == 0 ? "it exited" : buf);
    if (ret_pid)
        *ret_pid = (pid_t)atoi(buf + 3);
    return 0;
}

/* ---- the keeper itself --------------------------------------------------- */

struct logw {
    int dirfd;
    int fd;
    uint64_t size;
    uint64_t max_size;
    unsigned max_files;
    /* the time index of `current` (logs.h): "times" */
    int tsfd;
    uint64_t ts_size, ts_max;
    int64_t ts_last_us; /* of the last record, 0: none in this file yet */
};

/* A health check's end, as `status` shows it: its output is bounded as
 * Docker's (the first 4096 bytes). */
#define HEALTH_OUTPUT_MAX 4096
struct health_check {
    bool done;
    int exit_code; /* -1: it did not exit (a signal, or it did not run) */
    int signal;    /* 0: none */
    bool timed_out;
    bool not_run; /* it could not be started; `output` says why */
    int64_t at;
    size_t len;
    char output[HEALTH_OUTPUT_MAX + 1];
};

struct keeper {
    const char *root;
    char *dir;
    char *init_path;             /* the record's init.json (handover.h) */
    struct berth_run_config cfg; /* container.json */
    char *seccomp_cache;
    struct berth_keeper_fsm fsm; /* the state, the requests, the restart counts */
    struct berth_container c;
    bool has_container;
    pid_t service_pid; /* the init's child running the service, 0: not known yet */
    /* clients of "restart-wait", answered when the restart is over */
    int restart_waiters[16];
    size_t nrestart_waiters;
    uint64_t started_mono;
    int64_t started_at;
    bool has_exit;
    int exit_code;
    bool exit_oom;
    int64_t exit_at;
    pid_t init_pid;         /* of the container that runs or ran last (k->c's is 0 once reaped) */
    const char *first_from; /* the recorded state this keeper found (its first event's "from") */
    /* health checks: run in the container every interval, each with a
     * timeout; `retries` failures in a row make the service unhealthy */
    enum { H_NONE, H_STARTING, H_HEALTHY, H_UNHEALTHY } health;
    int health_timer;
    int health_pidfd; /* the running check, -1 when none */
    int health_outfd; /* its stdout+stderr (a pipe), -1 when none or at EOF */
    unsigned health_failures;
    struct health_check check; /* the running one's output, then the last one's */
    struct health_check last_check;
    struct berth_user user;             /* of the running container */
    char start_error[BERTH_ERROR_MAX];  /* why the last start failed, "" when it did not */
    char keeper_error[BERTH_ERROR_MAX]; /* why this keeper cannot go on (keeper.h), "" */
    int timerfd, sigfd, lfd, logr, logwr, devnull;
    struct logw log;
    /* adopted from a keeper that died (handover.h): the init's record, the
     * output pipe of that container (its own: ours is for our starts),
     * and whether its report socket is still to be read */
    struct berth_handover_record adopted;
    bool adopting;
    int logr_adopted;
    bool watch_report;
    /* the service's cgroup (relative to the hierarchy root): a systemd
     * scope or berth/<cgroup name>; the keeper lives in its "keeper"
     * leaf, the container in "container" */
    char *cgroup;
    char *container_cgroup;
    unsigned cgroup_levels; /* what the keeper removes at exit: 1 in a scope (systemd's) */
};

static void log_rotate(struct logw *l)
{
    static const char *const kinds[] = {"times", "current"};
    char from[32], to[32];

    /* each file with its index: times.N is the index of current.N */
    for (unsigned i = l->max_files > 1 ? l->max_files - 1 : 0; i >= 1; i--) {
        for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
            if (i == 1)
                snprintf(from, sizeof(from), "%s", kinds[k]);
            else
                snprintf(from, sizeof(from), "%s.%u", kinds[k], i - 1);
            snprintf(to, sizeof(to), "%s.%u", kinds[k], i);
            renameat(l->dirfd, from, l->dirfd, to);
        }
    }
    if (l->fd >= 0)
        close(l->fd);
    if (l->tsfd >= 0)
        close(l->tsfd);
    /* not O_APPEND: splice(2) refuses such files; the keeper is the only writer */
    l->fd = openat(l->dirfd, "current", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    l->tsfd = openat(l->dirfd, "times", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
    l->size = 0;
    l->ts_size = 0;
    l->ts_last_us = 0;
}

/* Whether the next bytes need a record in the index (logs.h): the first
 * of a file, and then one per BERTH_LOG_STAMP_US at most. */
static bool log_stamp_due(const struct logw *l, int64_t now)
{
    return !l->ts_last_us || now - l->ts_last_us >= BERTH_LOG_STAMP_US || now < l->ts_last_us;
}

/* Room in the file and in its index for what comes now; rotate if not. */
static bool log_full(const struct logw *l)
{
    return l->size >= l->max_size ||
           (l->tsfd >= 0 && l->ts_size + sizeof(struct berth_log_stamp) > l->ts_max &&
            log_stamp_due(l, berth_realtime_us()));
}

/* Before bytes go into the file at l->size: the time they arrived. */
static void log_stamp(struct logw *l)
{
    int64_t now = berth_realtime_us();
    struct berth_log_stamp st = {l->size, now};

    if (l->tsfd < 0 || !log_stamp_due(l, now))
        return;
    if (write(l->tsfd, &st, sizeof(st)) == (ssize_t)sizeof(st)) {
        l->ts_size += sizeof(st);
        l->ts_last_us = now;
    }
}

/* Append to the log, rotating before the file would pass max_size, so that
 * the files together never exceed max_size * max_files. */
static void log_write(struct logw *l, const char *buf, size_t len)
{
    while (len > 0) {
        size_t room = l->max_size > l->size ? (size_t)(l->max_size - l->size) : 0;
        if (log_full(l)) {
            log_rotate(l);
            continue;
        }
        size_t n = len < room ? len : room;
        log_stamp(l);
        if (l->fd >= 0 && write(l->fd, buf, n) < 0)
            return;
        l->size += n;
        buf += n;
        len -= n;
    }
}

/* Move what waits in the output pipe into the log: spliced, so that a
 * keeper killed at any instant has each byte either still in the pipe
 * (for its successor) or in the file, never in a buffer of its own. */
static void log_pump(struct logw *l, int from)
{
    for (;;) {
        size_t room = l->max_size > l->size ? (size_t)(l->max_size - l->size) : 0;
        int avail = 0;
        if (log_full(l)) {
            log_rotate(l);
            continue;
        }
        if (l->fd < 0)
            break;
        /* the record goes first: a reader that sees the bytes finds their time */
        if (ioctl(from, FIONREAD, &avail) == 0 && avail > 0)
            log_stamp(l);
        ssize_t n = splice(from, NULL, l->fd, NULL, room < (1 << 20) ? room : (1 << 20),
                           SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
        if (n > 0)
            l->size += (uint64_t)n;
        if (n >= 0 || errno != EINVAL)
            return;
        break; /* a log on a filesystem that cannot splice */
    }
    char buf[65536];
    ssize_t n = read(from, buf, sizeof(buf));
    if (n > 0)
        log_write(l, buf, (size_t)n);
}

static void klog(struct keeper *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void klog(struct keeper *k, const char *fmt, ...)
{
    char line[1200];
    va_list ap;
    time_t now = time(NULL);
    struct tm tm;
    int n;

    gmtime_r(&now, &tm);
    /* the service's own output has no time; berth's lines about it do */
    n = (int)strftime(line, sizeof(line), "[berth %Y-%m-%dT%H:%M:%SZ] ", &tm);

    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    log_write(&k->log, line, (size_t)n);
}

static const char *const health_name[] = {"none", "starting", "healthy", "unhealthy"};

/* A transition from `from` to the current state, for the service's
 * history (events.h) and, with `log`, its log: the same line in both.
 * `ev` (may be NULL) has the details. */
static void transition(struct keeper *k, const char *from, const char *cause,
                       const struct berth_event *ev, bool log, const char *msg)
{
    struct berth_event e = {.restarts = -1};

    if (ev)
        e = *ev;
    if (log)
        klog(k, "%s", msg);
    e.service = k->cfg.name;
    e.cause = (char *)cause;
    e.from = (char *)from;
    e.to = (char *)berth_state_name(k->fsm.state);
    e.message = (char *)msg;
    if (!e.pid && k->has_container)
        e.pid = k->c.pid;
    e.restarts = (int)k->fsm.restarts;
    berth_event_record_quiet(k->dir, &e);
}

/* "exit code 1", "killed by signal SIGKILL", "timed out after 2000 ms",
 * "could not run it" (malloc'ed), NULL before the first check. */
static char *check_result(const struct keeper *k)
{
    const struct health_check *c = &k->last_check;
    const char *sig = c->signal ? sigabbrev_np(c->signal) : NULL;

    if (!c->done)
        return NULL;
    if (c->timed_out)
        return xasprintf("timed out after %llu ms", (unsigned long long)k->cfg.health_timeout_ms);
    if (c->not_run)
        return xstrdup("could not run it");
    if (c->signal)
        return sig ? xasprintf("killed by signal SIG%s", sig)
                   : xasprintf("killed by signal %d", c->signal);
    return xasprintf("exit code %d", c->exit_code);
}

static void write_status(struct keeper *k)
{
    berth_error err = BERTH_ERROR_INIT;
    _cleanup_free_ char *result = check_result(k);
    enum berth_state state = k->fsm.state;
    bool done = berth_keeper_fsm_done(&k->fsm);

    if (!k->has_container)
        k->service_pid = 0;
    else if (!k->service_pid)
        k->service_pid = berth_container_service_pid(k->c.pid);
    struct berth_status st = {
        .check_result = result,
        .name = k->cfg.name,
        /* DESIGN.md's states: a service in its stop grace period still runs */
        .state = state == BERTH_STATE_STOPPING ? BERTH_STATE_RUNNING : state,
        .pid = k->has_container ? k->c.pid : 0,
        .service_pid = k->service_pid,
        .keeper_pid = done ? 0 : getpid(),
        .stopping = k->fsm.stop_requested,
        .restarts = k->fsm.restarts,
        .manual_restarts = k->fsm.manual_restarts,
        .started_at = k->has_container ? k->started_at : 0,
        .image = k->cfg.image_digest,
        .health = (char *)health_name[k->health],
        .has_check = k->last_check.done,
        .check_exit_code = k->last_check.exit_code,
        .check_signal = k->last_check.signal,
        .check_timed_out = k->last_check.timed_out,
        .check_output = k->last_check.output,
        .check_at = k->last_check.at,
        .spec_hash = k->cfg.spec_hash,
        .has_exit = k->has_exit,
        .exit_code = k->exit_code,
        .exit_oom = k->exit_oom,
        .exit_at = k->exit_at,
        .start_error = k->start_error[0] ? k->start_error : NULL,
        .keeper_error = k->keeper_error[0] ? k->keeper_error : NULL,
    };
    if (berth_status_write(k->root, &st, &err) < 0)
        klog(k, "warning: the status of '%s' (%s) is not recorded: %s", k->cfg.name,
             berth_state_name(state), err.msg);
}

/* The end of a restart for the clients waiting for it: "done running
 * <pid>", or "done <state> <why>" when it did not lead to a running service. */
static void tell_restart_waiters(struct keeper *k, const char *why)
{
    for (size_t i = 0; i < k->nrestart_waiters; i++) {
        int fd = k->restart_waiters[i];
        if (k->fsm.state == BERTH_STATE_RUNNING)
            dprintf(fd, "done running %d\n", (int)k->c.pid);
        else
            dprintf(fd, "done %s %s\n", berth_state_name(k->fsm.state), why);
        close(fd);
    }
    k->nrestart_waiters = 0;
}

static void arm_timer(struct keeper *k, uint64_t ms)
{
    struct itimerspec its = {0};

    its.it_value.tv_sec = (time_t)(ms / 1000);
    its.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
    if (ms == 0)
        its.it_value.tv_nsec = 1; /* 0 would disarm */
    timerfd_settime(k->timerfd, 0, &its, NULL);
}

static void disarm_timer(struct keeper *k)
{
    struct itimerspec its = {0};
    timerfd_settime(k->timerfd, 0, &its, NULL);
}

static void health_arm(struct keeper *k, uint64_t ms);
static void start_service(struct keeper *k);

/* A signal that finds the init gone (ESRCH) is followed by its exit, an
 * event of the table; any other failure is worth a line in the log. */
static void kill_container(struct keeper *k, int sig)
{
    berth_error e = BERTH_ERROR_INIT;

    if (berth_container_kill(&k->c, sig, &e) < 0 && e.code != ESRCH)
        klog(k, "warning: %s", e.msg);
}

/* Do what a step of the table (keeper-fsm.h) says, in its order. `ev`
 * (may be NULL) has the transition's details for the history. */
static void perform(struct keeper *k, const struct berth_keeper_step *s,
                    const struct berth_event *ev)
{
    if (s->cause)
        transition(k, s->from_predecessor ? k->first_from : berth_state_name(s->from), s->cause, ev,
                   s->log, s->message);
    if (s->actions & BERTH_KEEPER_DISARM)
        disarm_timer(k);
    if (s->actions & BERTH_KEEPER_KILL) {
        kill_container(k, k->cfg.stop_signal);
        arm_timer(k, k->cfg.stop_timeout_ms);
    }
    if ((s->actions & BERTH_KEEPER_KILL_HARD) && k->has_container)
        kill_container(k, SIGKILL);
    if (s->actions & BERTH_KEEPER_ARM_BACKOFF)
        arm_timer(k, s->delay_ms);
    if (s->actions & BERTH_KEEPER_WRITE_STATUS)
        write_status(k);
    if (s->actions & BERTH_KEEPER_TELL)
        tell_restart_waiters(k, s->why);
    if (s->actions & BERTH_KEEPER_START)
        start_service(k);
}

/* One event for the table, and what it says done. */
static void feed(struct keeper *k, const struct berth_keeper_input *in,
                 const struct berth_event *ev)
{
    struct berth_keeper_step s;

    berth_keeper_fsm_step(&k->fsm, in, &s);
    perform(k, &s, ev);
}

/* Between the clone and the container's set-up: where a successor finds
 * the container, should we die (handover.h). */
static void record_init(const struct berth_container *c, void *ud)
{
    struct keeper *k = ud;
    berth_error err = BERTH_ERROR_INIT;
    struct berth_handover_record r = {
        .init_pid = c->pid,
        .init_start = berth_handover_start_time(c->pid),
        .cgroup = k->cgroup,
        .cgroup_levels = k->cgroup_levels,
        .started_at = (int64_t)time(NULL),
    };

    if (berth_handover_record_write(k->init_path, &r, &err) < 0)
        klog(k, "warning: %s; a keeper after this one cannot adopt '%s'", err.msg, k->cfg.name);
}

static int container_start(struct keeper *k, berth_error *err)
{
    struct berth_container_config cc = {
        .run = &k->cfg,
        .user = &k->user,
        .cgroup = k->container_cgroup,
        .rundir = k->dir,
        .seccomp_cache = k->seccomp_cache,
        .redirect_stdio = true,
        .stdio = {k->devnull, k->logwr, k->logwr},
        .keep_layer = true,
        .handover = true,
        .handover_logr = k->logr,
        .on_clone = record_init,
        .on_clone_ud = k,
    };

    return berth_container_start(&cc, &k->c, err);
}

/* Errors of a start that a retry may not meet again: a shortage of memory,
 * processes, descriptors or space, an interrupted or dying set-up. */
static bool start_error_transient(int code)
{
    switch (code) {
    case EAGAIN:
    case ENOMEM:
    case EBUSY:
    case EINTR:
    case EIO:
    case EMFILE:
    case ENFILE:
    case ENOSPC:
    case EDQUOT:
    case ETIMEDOUT:
        return true;
    default:
        return false;
    }
}

/* The table's START: the status says starting, the container starts, and
 * how that went is the next event. A start can fail before the service
 * runs, in its set-up (a mount, the user, the working directory, the
 * command's exec): the table retries it with the backoff only for a
 * shortage (start_error_transient()); for a reason in the file, the image
 * or the host's paths the service is failed with that reason and its
 * keeper exits, until the file changes or `berth apply` or `berth restart`
 * try again. */
static void start_service(struct keeper *k)
{
    berth_error err = BERTH_ERROR_INIT;
    struct berth_keeper_input in = {.type = BERTH_KEEPER_EV_START_OK};

    k->start_error[0] = '\0';
    write_status(k);
    berth_user_release(&k->user);
    if (berth_user_resolve(k->cfg.image_rootfs, k->cfg.user, &k->user, &err) == 0 &&
        container_start(k, &err) == 0) {
        k->has_container = true;
        k->watch_report = true;
        k->init_pid = k->c.pid;
        k->started_mono = berth_now_ms();
        k->started_at = (int64_t)time(NULL);
        if (k->cfg.health_argv) {
            k->health = H_STARTING;
            k->health_failures = 0;
            health_arm(k, k->cfg.health_interval_ms);
        }
        in.pid = k->c.pid;
    } else {
        berth_handover_record_remove(k->init_path);
        snprintf(k->start_error, sizeof(k->start_error), "%s", err.msg);
        in.type = BERTH_KEEPER_EV_START_FAILED;
        in.error = err.msg;
        in.transient = start_error_transient(err.code);
    }
    feed(k, &in, NULL);
}

/* ---- health checks ---- */

static void health_arm(struct keeper *k, uint64_t ms)
{
    struct itimerspec its = {0};

    its.it_value.tv_sec = (time_t)(ms / 1000);
    its.it_value.tv_nsec = (long)(ms % 1000) * 1000000L + (ms ? 0 : 1);
    timerfd_settime(k->health_timer, 0, &its, NULL);
}

/* Read what the running check wrote, keeping the first HEALTH_OUTPUT_MAX
 * bytes and draining the rest (a check must never block on its output). */
static void health_read_output(struct keeper *k)
{
    char buf[4096];
    ssize_t n;

    while (k->health_outfd >= 0 && (n = read(k->health_outfd, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return;
            n = 0;
        }
        for (ssize_t i = 0; i < n && k->check.len < HEALTH_OUTPUT_MAX; i++)
            k->check.output[k->check.len++] = buf[i] ? buf[i] : '?';
        k->check.output[k->check.len] = '\0';
        if (n == 0)
            break;
    }
    close(k->health_outfd);
    k->health_outfd = -1;
}

/* Collect the running check (killing it if it is still going: a timeout);
 * with `record`, it becomes the last check. Returns its exit code, 128+N
 * for a signal N, -1 when it could not be collected. */
static int health_collect(struct keeper *k, bool record)
{
    berth_error err = BERTH_ERROR_INIT;
    siginfo_t si = {0};
    int r;

    if (k->health_pidfd < 0)
        return -1;
    r = berth_exec_wait_siginfo(k->health_pidfd, 0, &si, &err);
    close(k->health_pidfd);
    k->health_pidfd = -1;
    health_read_output(k);
    if (k->health_outfd >= 0) {
        /* something the check left running holds its end of the pipe */
        close(k->health_outfd);
        k->health_outfd = -1;
    }
    k->check.done = true;
    k->check.at = (int64_t)time(NULL);
    k->check.timed_out = r == 1;
    k->check.exit_code = r >= 0 && si.si_code == CLD_EXITED ? si.si_status : -1;
    k->check.signal = r >= 0 && si.si_code != CLD_EXITED ? si.si_status : 0;
    if (record)
        k->last_check = k->check;
    if (r < 0)
        return -1;
    return k->check.exit_code >= 0 ? k->check.exit_code : 128 + k->check.signal;
}

static void health_result(struct keeper *k, int code)
{
    int before = k->health;

    if (code == 0) {
        k->health_failures = 0;
        k->health = H_HEALTHY;
    } else if (++k->health_failures >= k->cfg.health_retries) {
        k->health = H_UNHEALTHY;
    }
    if ((int)k->health == before) {
        write_status(k); /* the last check's result and output */
        return;
    }
    _cleanup_free_ char *last = check_result(k);
    struct berth_event ev = {
        .restarts = -1,
        .health = (char *)health_name[k->health],
        .health_result = last,
        .health_output = code ? k->last_check.output : NULL,
    };
    char msg[1024];
    if (k->health == H_UNHEALTHY)
        snprintf(msg, sizeof(msg), "'%s' is unhealthy: %u checks in a row failed (last: %s)",
                 k->cfg.name, k->health_failures, last);
    else
        snprintf(msg, sizeof(msg), "'%s' is %s", k->cfg.name, health_name[k->health]);
    transition(k, berth_state_name(k->fsm.state), ev.health, &ev, true, msg);
    write_status(k);
    /* the table restarts it, if the service says so and it runs */
    if (k->health == H_UNHEALTHY)
        feed(k, &(struct berth_keeper_input){.type = BERTH_KEEPER_EV_UNHEALTHY}, &ev);
}

/* The health timer: start a check, or time the running one out. */
static void on_health_timer(struct keeper *k)
{
    uint64_t expirations;
    berth_error err = BERTH_ERROR_INIT;
    pid_t pid;

    if (read(k->health_timer, &expirations, sizeof(expirations)) < 0 ||
        k->fsm.state != BERTH_STATE_RUNNING)
        return;
    if (k->health_pidfd >= 0) {
        health_result(k, health_collect(k, true));
        health_arm(k, k->cfg.health_interval_ms);
        return;
    }
    int out[2];
    if (pipe2(out, O_CLOEXEC) < 0) {
        klog(k, "running the health check of '%s': creating a pipe: %s", k->cfg.name,
             strerror(errno));
        health_arm(k, k->cfg.health_interval_ms);
        return;
    }
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    memset(&k->check, 0, sizeof(k->check));
    k->health_outfd = out[0];
    struct berth_exec_config ec = {
        .init_pid = k->c.pid,
        .init_pidfd = k->c.pidfd,
        .run = &k->cfg,
        .user = &k->user,
        .argv = k->cfg.health_argv,
        .seccomp_cache = k->seccomp_cache,
        .redirect_stdio = true,
        .stdio = {-1, out[1], out[1]},
    };
    int r = berth_exec_spawn(&ec, &pid, &k->health_pidfd, NULL, &err);
    close(out[1]);
    if (r != 0) {
        k->health_pidfd = -1;
        close(k->health_outfd);
        k->health_outfd = -1;
        k->check.done = k->check.not_run = true;
        k->check.exit_code = -1;
        k->check.at = (int64_t)time(NULL);
        k->check.len = (size_t)snprintf(k->check.output, sizeof(k->check.output), "%s", err.msg);
        if (k->check.len > HEALTH_OUTPUT_MAX)
            k->check.len = HEALTH_OUTPUT_MAX;
        k->last_check = k->check;
        health_result(k, 127);
        health_arm(k, k->cfg.health_interval_ms);
        return;
    }
    health_arm(k, k->cfg.health_timeout_ms);
}

static void on_health_exit(struct keeper *k)
{
    health_result(k, health_collect(k, true));
    health_arm(k, k->cfg.health_interval_ms);
}

/* The container is gone: let go of its health check, its cgroup, its
 * handover record and the output pipe of an adopted one. */
static void container_gone(struct keeper *k)
{
    struct itimerspec off = {0};

    if (k->health_pidfd >= 0)
        health_collect(k, false);
    /* no container, no health; the last check stays to be read */
    k->health = H_NONE;
    k->health_failures = 0;
    timerfd_settime(k->health_timer, 0, &off, NULL);
    k->exit_at = (int64_t)time(NULL);
    if (k->has_container) {
        berth_error err = BERTH_ERROR_INIT;
        if (berth_container_release(&k->c, &err) < 0)
            klog(k, "cleaning up: %s", err.msg);
        k->has_container = false;
        k->watch_report = false;
        berth_handover_record_remove(k->init_path);
    }
    if (k->logr_adopted >= 0) {
        close(k->logr_adopted);
        k->logr_adopted = -1;
    }
}

static void on_exit_code(struct keeper *k, int code, bool oom_count_rose)
{
    struct berth_keeper_input in = {
        .type = BERTH_KEEPER_EV_EXIT,
        .code = code,
        .oom = oom_count_rose,
        .ran_ms = k->has_container ? berth_now_ms() - k->started_mono : 0,
    };
    /* stopped for being unhealthy: the check that said so */
    _cleanup_free_ char *last = k->fsm.unhealthy_kill ? check_result(k) : NULL;
    struct berth_keeper_step s;

    berth_keeper_fsm_step(&k->fsm, &in, &s);
    struct berth_event ev = {
        .restarts = -1,
        .has_exit = true,
        .exit_code = code,
        .exit_signal = s.exit_signal,
        .exit_oom = s.exit_oom,
        .pid = k->init_pid,
    };
    if (last && s.cause && !strcmp(s.cause, "unhealthy")) {
        ev.health = (char *)"unhealthy";
        ev.health_result = last;
        ev.health_output = k->last_check.output;
    }
    k->has_exit = true;
    k->exit_code = code;
    k->exit_oom = s.exit_oom;
    container_gone(k);
    if (s.exit_oom)
        klog(k, "'%s' was killed by the OOM killer (memory limit %llu bytes)", k->cfg.name,
             (unsigned long long)k->cfg.limits.memory);
    perform(k, &s, &ev);
}

/* `why`: who asked ("a stop request", "SIGTERM"), for the history */
static void request_stop(struct keeper *k, const char *why)
{
    feed(k, &(struct berth_keeper_input){.type = BERTH_KEEPER_EV_STOP, .why = why}, NULL);
}

static void on_timer(struct keeper *k)
{
    uint64_t expirations;

    if (read(k->timerfd, &expirations, sizeof(expirations)) < 0)
        return;
    feed(k, &(struct berth_keeper_input){.type = BERTH_KEEPER_EV_TIMER}, NULL);
}

static void on_client(struct keeper *k, int *held, size_t *nheld)
{
    int fd = accept4(k->lfd, NULL, NULL, SOCK_CLOEXEC);
    char buf[64];

    if (fd < 0)
        return;
    if (read_line_timeout(fd, buf, sizeof(buf), 2000) < 0) {
        close(fd);
        return;
    }
    if (!strcmp(buf, "stop")) {
        dprintf(fd, "ok stopping\n");
        request_stop(k, "a stop request");
        /* keep the connection: the client waits for our exit (EOF) */
        if (*nheld < 64) {
            held[(*nheld)++] = fd;
            return;
        }
    } else if (!strcmp(buf, "restart")) {
        feed(k, &(struct berth_keeper_input){.type = BERTH_KEEPER_EV_RESTART}, NULL);
        dprintf(fd, "ok %s\n", berth_state_name(k->fsm.state));
    } else if (!strcmp(buf, "restart-wait")) {
        if (k->fsm.stop_requested) {
            dprintf(fd, "error: '%s' is being stopped\n", k->cfg.name);
        } else if (k->nrestart_waiters == ARRAY_SIZE(k->restart_waiters)) {
            dprintf(fd, "error: too many clients wait for a restart of '%s'\n", k->cfg.name);
        } else {
            /* answered again (tell_restart_waiters) once the new
             * instance runs or the restart came to nothing */
            dprintf(fd, "ok restarting\n");
            k->restart_waiters[k->nrestart_waiters++] = fd;
            feed(k, &(struct berth_keeper_input){.type = BERTH_KEEPER_EV_RESTART}, NULL);
            return;
        }
    } else if (!strcmp(buf, "status")) {
        dprintf(fd, "ok %s %d %u %u\n", berth_state_name(k->fsm.state),
                k->has_container ? (int)k->c.pid : 0, k->fsm.restarts, k->fsm.manual_restarts);
    } else {
        dprintf(fd, "error: unknown request '%s'\n", buf);
    }
    close(fd);
}

static void on_signal(struct keeper *k)
{
    struct signalfd_siginfo si;

    while (read(k->sigfd, &si, sizeof(si)) == sizeof(si))
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
            request_stop(k, si.ssi_signo == SIGTERM ? "the keeper got SIGTERM"
                                                    : "the keeper got SIGINT");
}

static void on_log(struct keeper *k)
{
    log_pump(&k->log, k->logr);
}

/* ---- adoption (handover.h) ------------------------------------------------ */

/* A container whose keeper died: take its init's pipe and report socket
 * over. 1: adopting; 0: none to adopt (its record is removed); -1: one
 * runs that cannot be adopted (no second container is started beside it). */
static int adopt_find(struct keeper *k, berth_error *err)
{
    struct berth_handover_record *r = &k->adopted;
    berth_error e = BERTH_ERROR_INIT;
    int pidfd;

    if (berth_handover_record_read(k->init_path, r, &e) < 0) {
        if (e.code != ENOENT)
            berth_handover_record_remove(k->init_path);
        return 0;
    }
    pidfd = berth_handover_open_init(r, &e);
    if (pidfd >= 0 && berth_handover_take(pidfd, &k->logr_adopted, &k->c.statusfd, &e) < 0) {
        struct pollfd p = {pidfd, POLLIN, 0};
        bool gone = poll(&p, 1, 0) == 1; /* a zombie has no descriptors to take */
        close(pidfd);
        pidfd = -1;
        if (!gone) {
            *err = e;
            berth_error_wrap(err,
                             "the container of '%s' (init pid %d) runs without a keeper "
                             "and cannot be adopted",
                             k->cfg.name, (int)r->init_pid);
            berth_handover_record_release(r);
            return -1;
        }
    }
    if (pidfd < 0) {
        berth_handover_record_remove(k->init_path);
        berth_handover_record_release(r);
        return 0;
    }
    k->c.pid = r->init_pid;
    k->c.pidfd = pidfd;
    k->c.adopted = true;
    k->c.rundir = xstrdup(k->dir);
    k->c.keep_layer = true;
    k->c.stop_signal = k->cfg.stop_signal ? k->cfg.stop_signal : SIGTERM;
    k->c.stop_timeout_ms = k->cfg.stop_timeout_ms;
    k->adopting = true;
    return 1;
}

/* The last keeper's last health check, for `status` until ours runs. */
static void adopt_last_check(struct keeper *k, const struct berth_status *st)
{
    struct health_check *c = &k->last_check;

    if (!st->has_check)
        return;
    memset(c, 0, sizeof(*c));
    c->done = true;
    c->exit_code = st->check_exit_code;
    c->signal = st->check_signal;
    c->timed_out = st->check_timed_out;
    c->at = st->check_at;
    c->len = (size_t)snprintf(c->output, sizeof(c->output), "%s",
                              st->check_output ? st->check_output : "");
    if (c->len > HEALTH_OUTPUT_MAX)
        c->len = HEALTH_OUTPUT_MAX;
}

/* Once placed: take the container's cgroup and what the last keeper
 * recorded (restarts, health) over, and carry on as if we had started it. */
static void adopt_finish(struct keeper *k)
{
    berth_error e = BERTH_ERROR_INIT;
    struct berth_status st;
    uint64_t age;

    if (berth_cgroup_create(&k->c.cgroup, BERTH_CGROUP_FSROOT, k->container_cgroup, &k->cfg.limits,
                            &e) == 0)
        k->c.has_cgroup = true;
    else
        klog(k, "warning: %s", e.msg);
    if (berth_user_resolve(k->cfg.image_rootfs, k->cfg.user, &k->user, &e) < 0)
        klog(k, "warning: %s; health checks run as root", e.msg);
    if (berth_status_read(k->root, k->cfg.name, &st, &e) == 0) {
        k->fsm.restarts = st.restarts;
        k->fsm.manual_restarts = st.manual_restarts;
        adopt_last_check(k, &st);
        if (k->cfg.health_argv && st.health) {
            for (size_t i = 0; i < ARRAY_SIZE(health_name); i++)
                if (!strcmp(st.health, health_name[i]))
                    k->health = i;
        }
        berth_status_release(&st);
    }
    k->has_container = true;
    k->watch_report = true;
    k->init_pid = k->c.pid;
    k->started_at = k->adopted.started_at ? k->adopted.started_at : (int64_t)time(NULL);
    age = (uint64_t)((int64_t)time(NULL) - k->started_at) * 1000;
    k->started_mono = berth_now_ms() > age ? berth_now_ms() - age : 0;
    if (k->cfg.health_argv) {
        if (k->health == H_NONE)
            k->health = H_STARTING;
        health_arm(k, k->cfg.health_interval_ms);
    }
    feed(k,
         &(struct berth_keeper_input){
             .type = BERTH_KEEPER_EV_ADOPT, .pid = k->c.pid, .keeper_pid = getpid()},
         NULL);
}

/* Leave the caller's cgroup before anything runs: on a systemd host into
 * a scope of the service's own (systemd.h says why), elsewhere into
 * berth's subtree; either way into its "keeper" leaf, so that the
 * container's cgroup beside it can have controllers (cgroup v2 allows
 * them only in cgroups without processes of their own). */
static int place_keeper(struct keeper *k, berth_error *err)
{
    _cleanup_free_ char *leaf = NULL;
    const char *fsroot = BERTH_CGROUP_FSROOT;

    /* a successor: where the container is (the scope systemd made for the
     * first keeper, or berth's subtree) */
    if (k->adopting && k->adopted.cgroup) {
        k->cgroup = xstrdup(k->adopted.cgroup);
        k->cgroup_levels = k->adopted.cgroup_levels ? k->adopted.cgroup_levels : 2;
    }
    if (!k->cgroup && berth_cgroup_detect(fsroot) == BERTH_CGROUP_V2 && berth_systemd_booted()) {
        _cleanup_free_ char *unit = berth_cgroup_service_scope(k->root, k->cfg.name);
        _cleanup_free_ char *desc = xasprintf("berth service '%s' (%s)", k->cfg.name, k->root);
        berth_error e = BERTH_ERROR_INIT;
        if (berth_systemd_start_scope(unit, desc, &e) == 0) {
            k->cgroup = berth_cgroup_of(0, NULL);
            k->cgroup_levels = 1;
        }
        if (!k->cgroup)
            klog(k, "warning: %s; the service runs in berth's own cgroup subtree instead",
                 e.msg[0] ? e.msg : "the scope has no cgroup");
    }
    if (!k->cgroup) {
        k->cgroup = berth_cgroup_service_path(k->root, k->cfg.name);
        k->cgroup_levels = 2;
    }
    leaf = xasprintf("%s/keeper", k->cgroup);
    k->container_cgroup = xasprintf("%s/container", k->cgroup);
    return berth_cgroup_enter(fsroot, leaf, err);
}

static void unplace_keeper(struct keeper *k)
{
    berth_error e = BERTH_ERROR_INIT;

    if (k->cgroup) {
        _cleanup_free_ char *leaf = xasprintf("%s/keeper", k->cgroup);
        if (berth_cgroup_leave(BERTH_CGROUP_FSROOT, leaf, k->cgroup_levels + 1, &e) < 0)
            klog(k, "warning: %s", e.msg);
    }
    free(k->cgroup);
    free(k->container_cgroup);
}

static void raise_nofile(void)
{
    struct rlimit rl = {BERTH_SERVICE_NOFILE, BERTH_SERVICE_NOFILE};

    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int setup(struct keeper *k, int *lockfd, berth_error *err)
{
    _cleanup_free_ char *conf = berth_record_path(k->dir, BERTH_RECORD_CONTAINER);
    _cleanup_free_ char *logdir = berth_record_path(k->dir, BERTH_RECORD_LOG);
    _cleanup_free_ char *sock = berth_record_path(k->dir, BERTH_RECORD_KEEPER_SOCK);
    _cleanup_close_ int dfd = open(k->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct sockaddr_un sa;
    sigset_t set;
    int pipefd[2];

    if (berth_record_keeper_lock(k->dir, lockfd, err) < 0)
        return -1;
    if (berth_run_config_read(conf, &k->cfg, err) < 0)
        return -1;
    k->seccomp_cache = berth_seccomp_cache_dir(k->root);
    if (berth_mkdir_p(logdir, 0750, err) < 0)
        return -1;
    k->log.dirfd = open(logdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    k->log.fd = openat(k->log.dirfd, "current", O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
    if (k->log.dirfd < 0 || k->log.fd < 0)
        return berth_error_set(err, errno, "opening the log in '%s'", logdir);
    off_t end = lseek(k->log.fd, 0, SEEK_END);
    k->log.size = end > 0 ? (uint64_t)end : 0;
    k->log.max_size = k->cfg.log_max_size ? k->cfg.log_max_size : 10 << 20;
    k->log.max_files = k->cfg.log_max_files;
    k->log.ts_max = berth_log_index_max(k->log.max_size);
    k->log.tsfd = openat(k->log.dirfd, "times", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    end = k->log.tsfd >= 0 ? lseek(k->log.tsfd, 0, SEEK_END) : 0;
    /* whole records only (a keeper before us cannot have torn one: one
     * write each; but a full disk can) */
    if (end > 0 && end % (off_t)sizeof(struct berth_log_stamp))
        end = ftruncate(k->log.tsfd, end - end % (off_t)sizeof(struct berth_log_stamp)) == 0
                  ? end - end % (off_t)sizeof(struct berth_log_stamp)
                  : end;
    k->log.ts_size = end > 0 ? (uint64_t)end : 0;

    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return berth_error_set(err, errno, "creating the log pipe");
    k->logr = pipefd[0];
    k->logwr = pipefd[1];
    /* room for the output of a service whose keeper is being replaced */
    fcntl(k->logr, F_SETPIPE_SZ, BERTH_HANDOVER_PIPE_SIZE);
    k->devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    k->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    k->health_timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    sigemptyset(&set);
    for (size_t i = 0; i < berth_n_forwarded_signals; i++)
        sigaddset(&set, berth_forwarded_signals[i]);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGPIPE);
    sigprocmask(SIG_BLOCK, &set, NULL);
    k->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (k->timerfd < 0 || k->health_timer < 0 || k->sigfd < 0 || k->devnull < 0)
        return berth_error_set(err, errno, "setting up the keeper");

    k->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (k->lfd < 0 || dfd < 0 || sock_addr(dfd, &sa) < 0)
        return berth_error_set(err, errno, "creating the control socket");
    unlink(sock);
    if (bind(k->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(k->lfd, 16) < 0)
        return berth_error_set(err, errno, "listening on '%s'", sock);
    raise_nofile();
    if (adopt_find(k, err) < 0)
        return -1;
    return place_keeper(k, err);
}

/* What the record said before us: the first event's "from", and whether
 * the keeper before us ended without stopping its service (killed, or
 * it crashed): the history says so before the adoption or the fresh
 * start that follows. */
static void find_predecessor(struct keeper *k)
{
    struct berth_status st;
    berth_error e = BERTH_ERROR_INIT;

    if (berth_status_read(k->root, k->cfg.name, &st, &e) < 0)
        return;
    if (berth_state_live(st.state) && st.keeper_pid && st.keeper_pid != getpid()) {
        _cleanup_free_ char *msg = xasprintf(
            "the last keeper of '%s' (pid %d) is gone without having stopped it (killed, or "
            "it crashed); %s",
            k->cfg.name, (int)st.keeper_pid,
            k->adopting ? "its container runs on: this keeper adopts it"
                        : "its container is gone too: this keeper starts it again");
        struct berth_event ev = {
            .restarts = (int)st.restarts,
            .cause = (char *)"keeper-gone",
            .from = (char *)berth_state_name(st.state),
            .to = (char *)berth_state_name(st.state),
            .message = msg,
            .pid = k->adopting ? k->adopted.init_pid : 0,
        };
        berth_event_record_quiet(k->dir, &ev);
    }
    k->first_from = berth_state_name(st.state);
    berth_status_release(&st);
}

/* The ready line (keeper.h); returns -1, the fd being closed. */
static int tell_ready(const struct keeper *k, int ready_fd)
{
    if (ready_fd < 0)
        return -1;
    if (k->start_error[0])
        dprintf(ready_fd, "fail %d %s\n", (int)getpid(), k->start_error);
    else
        dprintf(ready_fd, "ok %d\n", (int)getpid());
    close(ready_fd);
    return -1;
}

/* The container's init ended: what the service wrote just before comes
 * first, then its exit. -1 when it cannot be reaped. */
static int on_container_exit(struct keeper *k, berth_error *err)
{
    const int pipes[] = {k->logr, k->logr_adopted};
    struct berth_exit ex = {0};

    for (size_t i = 0; i < ARRAY_SIZE(pipes); i++) {
        struct pollfd lp = {pipes[i], POLLIN, 0};
        while (pipes[i] >= 0 && poll(&lp, 1, 0) == 1 && (lp.revents & POLLIN))
            log_pump(&k->log, pipes[i]);
    }
    if (berth_container_reap(&k->c, &ex, err) < 0)
        return berth_error_wrap(err, "reaping the container of '%s' (init pid %d)", k->cfg.name,
                                (int)k->init_pid);
    on_exit_code(k, ex.code, ex.oom_killed);
    return 0;
}

/* Until the service is stopped for good; -1 when the keeper cannot go on. */
static int serve(struct keeper *k, int *held, size_t *nheld, berth_error *err)
{
    while (!berth_keeper_fsm_done(&k->fsm)) {
        struct pollfd p[10] = {
            {k->sigfd, POLLIN, 0},
            {k->timerfd, POLLIN, 0},
            {k->lfd, POLLIN, 0},
            {k->logr, POLLIN, 0},
            {k->has_container ? k->c.pidfd : -1, POLLIN, 0},
            {k->health_timer, POLLIN, 0},
            {k->health_pidfd, POLLIN, 0},
            {k->has_container && k->watch_report ? k->c.statusfd : -1, POLLIN, 0},
            {k->logr_adopted, POLLIN, 0},
            {k->health_outfd, POLLIN, 0},
        };
        if (poll(p, 10, -1) < 0) {
            if (errno == EINTR)
                continue;
            return berth_error_set(err, errno, "waiting for the events of '%s'", k->cfg.name);
        }
        if (p[3].revents & POLLIN)
            on_log(k);
        if (p[8].revents & POLLIN)
            log_pump(&k->log, k->logr_adopted);
        if (p[7].revents && !berth_container_on_report(&k->c))
            k->watch_report = false;
        if (p[4].revents && on_container_exit(k, err) < 0)
            return -1;
        if (p[0].revents)
            on_signal(k);
        if (p[1].revents)
            on_timer(k);
        if (p[2].revents)
            on_client(k, held, nheld);
        if (p[9].revents && k->health_outfd >= 0)
            health_read_output(k);
        if (p[6].revents && k->health_pidfd >= 0)
            on_health_exit(k);
        if (p[5].revents)
            on_health_timer(k);
    }
    return 0;
}

/* The keeper cannot go on: said in the log and in the status, where
 * `berth ps` shows it; its container is left to the next keeper. */
static void give_up(struct keeper *k, const berth_error *err)
{
    klog(k,
         "the keeper of '%s' cannot go on: %s; it exits, its container (if any) is left to "
         "the next keeper",
         k->cfg.name, err->msg);
    snprintf(k->keeper_error, sizeof(k->keeper_error), "%s", err->msg);
    write_status(k);
}

static void keeper_release(struct keeper *k)
{
    _cleanup_free_ char *sock = berth_record_path(k->dir, BERTH_RECORD_KEEPER_SOCK);

    unlink(sock);
    unplace_keeper(k);
    berth_handover_record_release(&k->adopted);
    berth_run_config_release(&k->cfg);
    free(k->seccomp_cache);
    berth_user_release(&k->user);
    free(k->dir);
    free(k->init_path);
}

int berth_keeper_main(const char *root, const char *name, int ready_fd, berth_error *err)
{
    struct keeper k = {.root = root,
                       .timerfd = -1,
                       .sigfd = -1,
                       .lfd = -1,
                       .logr = -1,
                       .logwr = -1,
                       .devnull = -1,
                       .log = {.dirfd = -1, .fd = -1, .tsfd = -1},
                       .health_timer = -1,
                       .health_pidfd = -1,
                       .logr_adopted = -1,
                       .health_outfd = -1};
    int held[64];
    size_t nheld = 0;
    int lockfd = -1;
    int r;

    k.dir = berth_record_dir(root, name);
    k.init_path = berth_record_path(k.dir, BERTH_RECORD_INIT);
    if (setup(&k, &lockfd, err) < 0) {
        if (ready_fd >= 0)
            dprintf(ready_fd, "error: %s\n", err->msg);
        unplace_keeper(&k);
        free(k.dir);
        free(k.init_path);
        return -1;
    }
    berth_keeper_fsm_init(&k.fsm, &(struct berth_keeper_rules){
                                      .name = k.cfg.name,
                                      .restart = k.cfg.restart,
                                      .backoff_initial_ms = k.cfg.backoff_initial_ms,
                                      .backoff_max_ms = k.cfg.backoff_max_ms,
                                      .backoff_reset_ms = k.cfg.backoff_reset_ms,
                                      .stop_signal = k.cfg.stop_signal,
                                      .stop_timeout_ms = k.cfg.stop_timeout_ms,
                                      .health_restart = k.cfg.health_restart,
                                  });
    find_predecessor(&k);
    if (k.adopting)
        adopt_finish(&k);
    else
        feed(&k, &(struct berth_keeper_input){.type = BERTH_KEEPER_EV_START}, NULL);
    /* the spawner learns how the first start went; of a service that
     * cannot start, once this keeper is gone (not alive for the planner) */
    if (!berth_keeper_fsm_done(&k.fsm))
        ready_fd = tell_ready(&k, ready_fd);
    r = serve(&k, held, &nheld, err);
    if (r < 0)
        give_up(&k, err);
    keeper_release(&k);
    if (ready_fd >= 0) {
        close(lockfd);
        tell_ready(&k, ready_fd);
    }
    /* the held stop clients, the lock and the rest close with us */
    return r;
}
