#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apply.h"
#include "converge.h"
#include "keeper.h"
#include "log.h"
#include "plan.h"
#include "record.h"
#include "spec.h"
#include "status.h"
#include "systemd.h"
#include "util.h"

void berth_agent_options_init(struct berth_agent_options *o)
{
    memset(o, 0, sizeof(*o));
    o->exe = "/proc/self/exe";
    o->resync_ms = 60000;
    o->debounce_ms = 250;
    o->settle_ms = 10000;
    o->health_settle_ms = 120000;
}

struct settle {
    char *name;
    uint64_t deadline; /* monotonic ms */
    unsigned restarts0;
    bool has_health;
};

/* A keeper the agent watches: its death is an event (a pidfd), so that a
 * killed keeper's container is adopted at once, not at the next resync. */
struct kwatch {
    char *name;
    pid_t pid;
    int fd;
};

/* What a converge child tells the agent over its pipe: a settle window to
 * open for each replacement it made, then how the converge went. One
 * record per write(), below PIPE_BUF: never torn. */
struct child_msg {
    char kind; /* 's': settle, 'd': done; 'v' valid, 'e' invalid: `len` bytes follow */
    size_t len;
    char name[64];
    bool has_health;
    unsigned restarts0;
    uint64_t deadline;
    char plan[sizeof(((struct berth_plan *)0)->id)];
    int result; /* converge_results[] */
    size_t failed, held;
};

static const char *const converge_results[] = {"ok", "failed", "error"};

struct agent {
    const struct berth_agent_options *o;
    int msg_fd;       /* in a converge child: the pipe to the agent; else -1 */
    int agent_lock;   /* ROOT/agent.lock, held for the agent's life */
    char *dir, *base; /* of the file */
    int ino, sig, debounce, resync, settle_timer, summary, ep;
    int dir_wd;
    char *valid_text; /* the last valid file's bytes */
    size_t valid_len;
    bool have_valid;
    int64_t invalid_since; /* 0: the file on disk is valid */
    char *invalid_errors;  /* JSON array text of the current errors */
    struct settle *settles;
    size_t nsettles;
    struct kwatch *kw;
    size_t nkw;
    /* the last converge, for agent.json (`berth status --format prometheus`) */
    int64_t started_at;
    int64_t converge_at; /* unix ms of its end, 0: none yet */
    uint64_t converge_ms;
    const char *converge_result; /* "ok", "failed" (services), "error" (no plan) */
    size_t converge_failed;
    uint64_t converges, converge_failures;
};

static void arm(int tfd, uint64_t ms, uint64_t interval_ms)
{
    struct itimerspec its = {0};

    its.it_value.tv_sec = (time_t)(ms / 1000);
    its.it_value.tv_nsec = (long)(ms % 1000) * 1000000L + (ms ? 0 : 1);
    its.it_interval.tv_sec = (time_t)(interval_ms / 1000);
    its.it_interval.tv_nsec = (long)(interval_ms % 1000) * 1000000L;
    timerfd_settime(tfd, 0, &its, NULL);
}

static void drain(int fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof(v)) == sizeof(v))
        ;
}

/* ROOT/agent.json: what `berth status` shows about the agent and the file. */
static void write_agent_status(struct agent *a)
{
    _cleanup_free_ char *path = xasprintf("%s/agent.json", a->o->root);
    json_t *errors = a->invalid_errors ? json_loads(a->invalid_errors, 0, NULL) : NULL;
    json_t *o =
        json_pack("{s:i, s:s, s:b, s:I, s:o, s:I, s:I, s:I}", "pid", (int)getpid(), "file",
                  a->o->file, "file_valid", a->invalid_since == 0, "invalid_since",
                  (json_int_t)a->invalid_since, "errors", errors ? errors : json_array(),
                  "started_at", (json_int_t)a->started_at, "converges", (json_int_t)a->converges,
                  "converge_failures", (json_int_t)a->converge_failures);
    char *text;
    berth_error err = BERTH_ERROR_INIT;

    if (a->converge_at)
        json_object_set_new(o, "last_converge",
                            json_pack("{s:I, s:I, s:s, s:I}", "at_ms", (json_int_t)a->converge_at,
                                      "duration_ms", (json_int_t)a->converge_ms, "result",
                                      a->converge_result, "failed",
                                      (json_int_t)a->converge_failed));
    text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (text && berth_write_file_atomic(path, text, strlen(text), 0644, &err) < 0)
        berth_log(BERTH_LOG_WARN, "%s", err.msg);
    free(text);
}

json_t *berth_agent_state(const char *root)
{
    _cleanup_free_ char *path = xasprintf("%s/agent.json", root);
    json_t *o = json_load_file(path, 0, NULL);
    berth_error err = BERTH_ERROR_INIT;
    pid_t pid;
    int alive = berth_agent_alive(root, &pid, &err);

    if (!json_is_object(o)) {
        json_decref(o);
        o = json_object();
    }
    json_object_set_new(o, "running", alive < 0 ? json_null() : json_boolean(alive));
    json_object_set_new(o, "running_pid", alive > 0 && pid ? json_integer(pid) : json_null());
    return o;
}

/* In the agent: what a converge child found the file to be. Valid, its
 * bytes (`payload`, taken over) are the last valid state from now on;
 * invalid, `payload` is the JSON array of its errors. */
static void on_parsed(struct agent *a, char kind, char *payload, size_t len)
{
    if (kind == 'v') {
        free(a->valid_text);
        a->valid_text = payload;
        a->valid_len = len;
        a->have_valid = true;
        a->invalid_since = 0;
        free(a->invalid_errors);
        a->invalid_errors = NULL;
    } else {
        if (!a->invalid_since)
            a->invalid_since = (int64_t)time(NULL);
        free(a->invalid_errors);
        a->invalid_errors = payload;
    }
    write_agent_status(a);
}

static void settle_remove(struct agent *a, size_t i)
{
    free(a->settles[i].name);
    a->settles[i] = a->settles[--a->nsettles];
}

static void settle_rearm(struct agent *a)
{
    uint64_t next = 0, now = berth_now_ms();

    for (size_t i = 0; i < a->nsettles; i++)
        if (!next || a->settles[i].deadline < next)
            next = a->settles[i].deadline;
    if (next) {
        arm(a->settle_timer, next > now ? next - now : 0, 0);
    } else {
        struct itimerspec off = {0};
        timerfd_settime(a->settle_timer, 0, &off, NULL);
    }
}

/* In the agent: open the settle window a converge child asked for. */
static void settle_add(struct agent *a, const struct child_msg *m)
{
    struct settle s = {.name = xstrdup(m->name),
                       .deadline = m->deadline,
                       .restarts0 = m->restarts0,
                       .has_health = m->has_health};

    for (size_t i = 0; i < a->nsettles; i++)
        if (!strcmp(a->settles[i].name, s.name))
            settle_remove(a, i);
    a->settles = xrealloc(a->settles, (a->nsettles + 1) * sizeof(*a->settles));
    a->settles[a->nsettles++] = s;
    settle_rearm(a);
}

static void send_msg(struct agent *a, const struct child_msg *m)
{
    if (write(a->msg_fd, m, sizeof(*m)) != (ssize_t)sizeof(*m))
        berth_log(BERTH_LOG_ERROR, "telling the agent: %s", strerror(errno));
}

static void send_payload(struct agent *a, char kind, const char *data, size_t len)
{
    struct child_msg m = {.kind = kind, .len = len};

    send_msg(a, &m);
    while (len) {
        ssize_t n = write(a->msg_fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            berth_log(BERTH_LOG_ERROR, "telling the agent: %s", strerror(errno));
            _exit(1);
        }
        data += n;
        len -= (size_t)n;
    }
}

/* In the agent: the `len` bytes after a record, NUL-terminated; NULL when
 * the child died before writing them all. */
static char *read_payload(int fd, size_t len)
{
    char *buf = xmalloc(len + 1);
    size_t got = 0;

    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            return NULL;
        }
        got += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

/* In a converge child, after a replacement: the settle window starts now,
 * with the restarts the service has so far. */
static void settle_request(struct agent *a, const struct berth_service *svc)
{
    struct berth_status st;
    berth_error e = BERTH_ERROR_INIT;
    struct child_msg m = {.kind = 's', .has_health = svc->healthcheck.ncommand > 0};

    snprintf(m.name, sizeof(m.name), "%s", svc->name);
    m.deadline = berth_now_ms() + (m.has_health ? a->o->health_settle_ms : a->o->settle_ms);
    if (berth_status_read(a->o->root, svc->name, &st, &e) == 0) {
        m.restarts0 = st.restarts;
        berth_status_release(&st);
    }
    send_msg(a, &m);
}

/* Run `fn` in a forked child and wait for it, opening the settle windows it
 * asks for; *ret_done is its last record, kind 'd' when it sent one.
 * Returns the child's wait status.
 *
 * The agent lives as long as the host and should stay small: planning
 * hashes specs (OpenSSL's digest machinery), applying fetches, unpacks and
 * starts keepers, and all of it maps code and grows a heap that a
 * long-lived process keeps for good. A child gives it all back when it
 * exits; the agent keeps its loop, the last valid file and the windows. */
static int in_child(struct agent *a, void (*fn)(struct agent *, const void *), const void *arg,
                    struct child_msg *ret_done)
{
    struct child_msg m;
    int p[2], status = 0;
    pid_t pid;

    ret_done->kind = 0;
    if (pipe2(p, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
        berth_log(BERTH_LOG_ERROR, "starting a converge process: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* the lock is the agent's alone: an agent killed in mid-converge
         * frees it at once for its successor, whose converge then waits
         * for this one's on the root's lock */
        close(a->agent_lock);
        close(p[0]);
        a->msg_fd = p[1];
        fn(a, arg);
        _exit(0);
    }
    close(p[1]);
    for (;;) {
        ssize_t n = read(p[0], &m, sizeof(m));
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof(m))
            break;
        m.name[sizeof(m.name) - 1] = '\0';
        if (m.kind == 'v' || m.kind == 'e') {
            char *payload = read_payload(p[0], m.len);
            if (!payload)
                break;
            on_parsed(a, m.kind, payload, m.len);
        } else if (m.kind == 's')
            settle_add(a, &m);
        else if (m.kind == 'd')
            *ret_done = m;
    }
    close(p[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(status))
        berth_log(BERTH_LOG_ERROR, "the converge process (pid %d) died of signal %d", (int)pid,
                  WTERMSIG(status));
    return status;
}

static int lock_root(struct agent *a)
{
    berth_error err = BERTH_ERROR_INIT;
    int fd = berth_lock_root(a->o->root, true, &err);

    if (fd < 0)
        berth_log(BERTH_LOG_ERROR, "%s", err.msg);
    return fd;
}

static void rollback(struct agent *a, const char *name, const char *why)
{
    berth_error err = BERTH_ERROR_INIT;
    int lock = lock_root(a);

    if (lock < 0)
        return;
    berth_log(BERTH_LOG_WARN, "'%s' %s after its replacement: rolling back", name, why);
    if (berth_apply_rollback(a->o->root, name, why, a->o->exe, &err) < 0)
        berth_log(BERTH_LOG_ERROR, "rolling '%s' back: %s", name, err.msg);
    else
        berth_log(BERTH_LOG_WARN,
                  "'%s' rolled back to its previous version; its new spec is "
                  "not tried again until the file changes",
                  name);
    if (berth_apply_write_status_summary(a->o->root, &err) < 0)
        berth_log(BERTH_LOG_WARN, "%s", err.msg);
    close(lock);
}

struct rollback_arg {
    const char *name, *why;
};

static void rollback_job(struct agent *a, const void *arg)
{
    const struct rollback_arg *r = arg;

    rollback(a, r->name, r->why);
}

/* Judge one service in its settle window; true when the window is over. */
static bool settle_check(struct agent *a, struct settle *s)
{
    struct berth_status st;
    berth_error e = BERTH_ERROR_INIT;
    bool over = berth_now_ms() >= s->deadline;
    const char *why = NULL;

    if (berth_status_read(a->o->root, s->name, &st, &e) < 0)
        return true; /* removed meanwhile */
    if (st.restarts > s->restarts0 || st.state == BERTH_STATE_BACKOFF ||
        st.state == BERTH_STATE_STOPPED || st.state == BERTH_STATE_FAILED)
        why = "crashed";
    else if (st.health && !strcmp(st.health, "unhealthy"))
        why = "turned unhealthy";
    else if (over && s->has_health && (!st.health || strcmp(st.health, "healthy")))
        why = "did not turn healthy in time";
    bool healthy = s->has_health && st.health && !strcmp(st.health, "healthy");
    berth_status_release(&st);
    if (why) {
        struct rollback_arg r = {s->name, why};
        struct child_msg done;
        in_child(a, rollback_job, &r, &done);
        return true;
    }
    if (healthy || over) {
        berth_log(BERTH_LOG_INFO, "'%s' settled after its replacement", s->name);
        return true;
    }
    return false;
}

static void settle_all(struct agent *a)
{
    for (size_t i = 0; i < a->nsettles;) {
        if (settle_check(a, &a->settles[i]))
            settle_remove(a, i);
        else
            i++;
    }
    settle_rearm(a);
}

static void report(void *ud, const struct berth_plan_item *it, int rc, const char *msg)
{
    struct agent *a = ud;

    if (rc < 0) {
        berth_log(BERTH_LOG_ERROR, "'%s': %s failed: %s", it->name, berth_action_name(it->action),
                  msg);
        return;
    }
    berth_log(BERTH_LOG_INFO, "'%s': %s", it->name, berth_action_name(it->action));
    if (it->action == BERTH_ACTION_REPLACE && it->desired->enabled)
        settle_request(a, it->desired);
}

/* Every service's status.json is replaced by rename at each transition of
 * its keeper: watch them all, to judge settle windows and to keep
 * ROOT/status.json (the Puppet fact's source) current. inotify gives a
 * directory watched twice the same watch, and drops it with the directory. */
static void watch_services(struct agent *a)
{
    berth_error e = BERTH_ERROR_INIT;
    char **names;
    size_t n;

    if (berth_record_list(a->o->root, &names, &n, &e) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *sd = berth_record_dir(a->o->root, names[i]);
        inotify_add_watch(a->ino, sd, IN_MOVED_TO);
    }
    berth_strv_free(names);
}

/* systemd's view (systemctl status): what the last reconcile did */
static void notify_status(struct agent *a, const char *plan, size_t failed)
{
    _cleanup_free_ char *st = NULL;

    if (failed)
        st = xasprintf("STATUS=plan %s: %zu service%s failed to converge (%s)", plan, failed,
                       failed == 1 ? "" : "s", a->o->file);
    else
        st = xasprintf("STATUS=in sync with '%s' (plan %s)", a->o->file, plan);
    berth_systemd_notify(st);
}

static void kwatch_remove(struct agent *a, size_t i)
{
    epoll_ctl(a->ep, EPOLL_CTL_DEL, a->kw[i].fd, NULL);
    close(a->kw[i].fd);
    free(a->kw[i].name);
    a->kw[i] = a->kw[--a->nkw];
}

/* Watch every live keeper under the root (a pidfd each, in the epoll set). */
static void watch_keepers(struct agent *a)
{
    berth_error e = BERTH_ERROR_INIT;
    char **names;
    size_t n;

    for (size_t i = 0; i < a->nkw;) {
        pid_t pid = 0;
        if (!berth_record_keeper_alive(a->o->root, a->kw[i].name, &pid) || pid != a->kw[i].pid)
            kwatch_remove(a, i);
        else
            i++;
    }
    if (berth_record_list(a->o->root, &names, &n, &e) < 0)
        return;
    for (size_t j = 0; j < n; j++) {
        pid_t pid = 0;
        bool known = false;
        if (!berth_record_keeper_alive(a->o->root, names[j], &pid) || pid <= 0)
            continue;
        for (size_t i = 0; i < a->nkw; i++)
            known |= !strcmp(a->kw[i].name, names[j]);
        if (known)
            continue;
        int fd = (int)syscall(SYS_pidfd_open, pid, 0);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (fd < 0)
            continue;
        if (epoll_ctl(a->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            continue;
        }
        a->kw = xrealloc(a->kw, (a->nkw + 1) * sizeof(*a->kw));
        a->kw[a->nkw++] = (struct kwatch){xstrdup(names[j]), pid, fd};
    }
    berth_strv_free(names);
}

static void reconcile(struct agent *a, bool file_event, bool retry_failed);

/* A watched keeper exited: a keeper that stopped its service for good
 * said so in its status; one that was killed did not, and its container
 * may run on: the reconcile starts a keeper, which adopts it. */
static bool on_keeper_exit(struct agent *a, int fd)
{
    struct berth_status st;
    berth_error e = BERTH_ERROR_INIT;
    bool gone = false;

    for (size_t i = 0; i < a->nkw; i++) {
        struct pollfd p = {fd, POLLIN, 0};
        if (a->kw[i].fd != fd)
            continue;
        /* an event of this batch for a pidfd a reconcile closed meanwhile
         * (and whose number a new watch took) */
        if (poll(&p, 1, 0) != 1)
            return true;
        if (berth_status_read(a->o->root, a->kw[i].name, &st, &e) == 0) {
            gone = st.keeper_gone;
            if (gone)
                berth_log(BERTH_LOG_WARN, "the keeper of '%s' (pid %d) died; %s", a->kw[i].name,
                          (int)a->kw[i].pid,
                          st.pid ? "a new one adopts its container" : "starting it again");
            berth_status_release(&st);
        }
        kwatch_remove(a, i);
        if (gone)
            reconcile(a, false, false);
        return true;
    }
    return false;
}

/* A reconcile is done: agent.json says when, how long it took and how it
 * went (`berth status --format prometheus`: berth_converge_*). */
static void converged(struct agent *a, uint64_t t0, const char *result, size_t failed)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    a->converge_at = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    a->converge_ms = berth_now_ms() - t0;
    a->converge_result = result;
    a->converge_failed = failed;
    a->converges++;
    a->converge_failures += strcmp(result, "ok") != 0;
    write_agent_status(a);
}

struct converge_arg {
    bool file_event;
    /* start again the services whose spec failed to start for a set-up
     * reason (not on the periodic resync: see berth_plan_hold_failed) */
    bool retry_failed;
};

/* In a converge child: parse the file into *ret and tell the agent what it
 * is. An invalid edit changes nothing; the resync keeps the last valid
 * state in force (repairing drift), parsed again from the bytes the agent
 * kept. False: nothing to converge. */
static bool parse(struct agent *a, bool file_event, struct berth_spec *ret)
{
    berth_error err = BERTH_ERROR_INIT;
    struct berth_spec_errors errs = BERTH_SPEC_ERRORS_INIT;
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r;

    if (berth_read_file(a->o->file, BERTH_SPEC_MAX_SIZE, &data, &len, &err) == 0) {
        r = berth_spec_parse_buffer(data, len, a->o->file, ret, &errs);
    } else if ((r = berth_spec_parse_file(a->o->file, ret, &errs)) == 0) {
        /* the parser's own message for an unreadable file; readable now,
         * it was just written, and its event is on its way */
        berth_spec_release(ret);
        return false;
    }
    if (r == 0) {
        if (a->invalid_since)
            berth_log(BERTH_LOG_INFO, "'%s' is valid again", a->o->file);
        send_payload(a, 'v', data, len);
        return true;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < errs.n; i++) {
        char *line = berth_spec_error_format(&errs.v[i]);
        berth_log(BERTH_LOG_ERROR, "%s", line);
        json_array_append_new(arr, json_string(line));
        free(line);
    }
    berth_spec_errors_release(&errs);
    berth_log(BERTH_LOG_ERROR, "'%s' is invalid: nothing changed; %s", a->o->file,
              a->have_valid ? "the last valid state stays in force" : "no valid state yet");
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    send_payload(a, 'e', text ? text : "[]", text ? strlen(text) : 2);
    free(text);
    if (file_event || !a->have_valid)
        return false;
    if (berth_spec_parse_buffer(a->valid_text, a->valid_len, a->o->file, ret, NULL) < 0) {
        berth_log(BERTH_LOG_ERROR,
                  "the last valid '%s' is no longer valid (a file it names changed): "
                  "nothing changed",
                  a->o->file);
        return false;
    }
    return true;
}

/* In a converge child: the plan is about to be carried out */
static void planned(void *ud, const struct berth_plan *plan)
{
    struct agent *a = ud;

    if (!berth_plan_is_noop(plan))
        berth_log(BERTH_LOG_INFO, "converging to '%s' (plan %s)", a->o->file, plan->id);
}

/* In a converge child: parse, converge, and tell the agent how it went. */
static void converge(struct agent *a, const void *arg)
{
    const struct converge_arg *c = arg;
    struct child_msg done = {.kind = 'd', .result = 2};
    struct berth_spec spec = BERTH_SPEC_INIT;
    struct berth_converge res;
    berth_error err = BERTH_ERROR_INIT;
    struct berth_converge_options opt = {.root = a->o->root,
                                         .exe = a->o->exe,
                                         .fetch = a->o->fetch,
                                         .hold_failed = !c->retry_failed,
                                         .planned = planned,
                                         .report = report,
                                         .ud = a};

    if (!parse(a, c->file_event, &spec))
        _exit(0);
    int r = berth_converge_once(&spec, &opt, &res, &err);
    if (r < 0)
        berth_log(BERTH_LOG_ERROR, "%s", err.msg);
    if (!res.locked)
        _exit(1);
    if (r == 0) {
        if (res.failed)
            berth_log(BERTH_LOG_WARN, "%zu service%s failed to converge", res.failed,
                      res.failed == 1 ? "" : "s");
        if (res.summary_error.msg[0])
            berth_log(BERTH_LOG_WARN, "%s", res.summary_error.msg);
        done.failed = res.failed;
        done.held = res.held;
        done.result = res.failed + res.held ? 1 : 0;
        memcpy(done.plan, res.plan.id, sizeof(done.plan));
    }
    /* the plan points into the spec */
    berth_converge_release(&res);
    berth_spec_release(&spec);
    send_msg(a, &done);
}

static void reconcile(struct agent *a, bool file_event, bool retry_failed)
{
    struct converge_arg arg = {file_event, retry_failed};
    struct child_msg done;
    uint64_t t0 = berth_now_ms();
    int status = in_child(a, converge, &arg, &done);

    if (done.kind != 'd') {
        /* the file is invalid, or the root could not be locked (it said
         * why), or it died */
        if (status != 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 1))
            converged(a, t0, "error", 0);
        return;
    }
    if (done.result != 2) /* a plan was made */
        notify_status(a, done.plan, done.failed + done.held);
    converged(a, t0, converge_results[done.result], done.failed + done.held);
    watch_services(a);
    watch_keepers(a);
    /* agent.json's and the status records' garbage: give the free pages
     * back (glibc returns only a free top above M_TRIM_THRESHOLD itself) */
    malloc_trim(0);
}

static void on_inotify(struct agent *a)
{
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool file = false, status = false;
    ssize_t n;

    while ((n = read(a->ino, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (ev->wd == a->dir_wd && ev->len && !strcmp(ev->name, a->base))
                file = true;
            else if (ev->wd != a->dir_wd && ev->len &&
                     !strcmp(ev->name, berth_record_file_name(BERTH_RECORD_STATUS)))
                status = true;
            p += sizeof(*ev) + ev->len;
        }
    }
    if (file)
        arm(a->debounce, a->o->debounce_ms, 0);
    if (status) {
        watch_keepers(a); /* keepers started by `berth apply`, `restart` */
        settle_all(a);
        /* a burst of transitions makes one summary */
        arm(a->summary, 200, 0);
    }
}

static int setup(struct agent *a, berth_error *err)
{
    _cleanup_free_ char *d = xstrdup(a->o->file);
    _cleanup_free_ char *b = xstrdup(a->o->file);
    sigset_t set;

    a->dir = xstrdup(dirname(d));
    a->base = xstrdup(basename(b));
    a->ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (a->ino < 0)
        return berth_error_set(err, errno, "inotify");
    /* the directory, not the file: editors and Puppet replace the file by
     * rename, and it may be deleted and created again */
    a->dir_wd = inotify_add_watch(a->ino, a->dir,
                                  IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE |
                                      IN_MOVED_FROM | IN_ATTRIB);
    if (a->dir_wd < 0)
        return berth_error_set(err, errno, "watching '%s'", a->dir);
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGPIPE);
    sigprocmask(SIG_BLOCK, &set, NULL);
    a->sig = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    a->debounce = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    a->resync = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    a->settle_timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    a->summary = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    a->ep = epoll_create1(EPOLL_CLOEXEC);
    if (a->sig < 0 || a->debounce < 0 || a->resync < 0 || a->settle_timer < 0 || a->summary < 0 ||
        a->ep < 0)
        return berth_error_set(err, errno, "setting up the agent's event loop");
    const int fds[] = {a->ino, a->sig, a->debounce, a->resync, a->settle_timer, a->summary};
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fds[i]};
        if (epoll_ctl(a->ep, EPOLL_CTL_ADD, fds[i], &ev) < 0)
            return berth_error_set(err, errno, "epoll");
    }
    arm(a->resync, a->o->resync_ms, a->o->resync_ms);
    return 0;
}

static void teardown(struct agent *a)
{
    int fds[] = {a->ino, a->sig, a->debounce, a->resync, a->settle_timer, a->summary, a->ep};

    while (a->nkw)
        kwatch_remove(a, 0);
    free(a->kw);

    for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    while (a->nsettles)
        settle_remove(a, 0);
    free(a->settles);
    free(a->valid_text);
    free(a->invalid_errors);
    free(a->dir);
    free(a->base);
}

int berth_agent_run(const struct berth_agent_options *o, berth_error *err)
{
    struct agent a = {.o = o,
                      .msg_fd = -1,
                      .agent_lock = -1,
                      .ino = -1,
                      .sig = -1,
                      .debounce = -1,
                      .resync = -1,
                      .settle_timer = -1,
                      .summary = -1,
                      .ep = -1,
                      .started_at = (int64_t)time(NULL)};
    _cleanup_free_ char *lockp = xasprintf("%s/agent.lock", o->root);
    _cleanup_close_ int lock = -1;
    bool running = true;

    if (berth_mkdir_p(o->root, 0700, err) < 0)
        return -1;
    lock = berth_lock_file(lockp, 0600, false, err);
    if (lock < 0)
        return berth_error_set(err, err->code, "another agent serves '%s' ('%s' is locked)",
                               o->root, lockp);
    a.agent_lock = lock;
    if (setup(&a, err) < 0) {
        teardown(&a);
        return -1;
    }
    berth_log(BERTH_LOG_INFO, "agent started for '%s' (root '%s', resync every %llu ms)", o->file,
              o->root, (unsigned long long)o->resync_ms);
    /* the keepers run on by themselves: starting is a reconcile like any;
     * then systemd (Type=notify) counts the agent as started */
    reconcile(&a, false, true);
    berth_systemd_notify("READY=1");
    while (running) {
        struct epoll_event evs[8];
        int n = epoll_wait(a.ep, evs, 8, -1);
        if (n < 0 && errno == EINTR)
            continue;
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == a.ino) {
                on_inotify(&a);
            } else if (fd == a.sig) {
                struct signalfd_siginfo si;
                while (read(a.sig, &si, sizeof(si)) == sizeof(si)) {
                    if (si.ssi_signo == SIGHUP) {
                        berth_log(BERTH_LOG_INFO, "SIGHUP: reconciling now");
                        berth_systemd_notify("RELOADING=1");
                        reconcile(&a, false, true);
                        berth_systemd_notify("READY=1");
                    } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
                        running = false;
                    }
                }
            } else if (fd == a.debounce) {
                drain(a.debounce);
                berth_log(BERTH_LOG_INFO, "'%s' changed", o->file);
                reconcile(&a, true, true);
            } else if (fd == a.resync) {
                drain(a.resync);
                reconcile(&a, false, false);
            } else if (fd == a.summary) {
                berth_error e = BERTH_ERROR_INIT;
                drain(a.summary);
                if (berth_apply_write_status_summary(o->root, &e) < 0)
                    berth_log(BERTH_LOG_WARN, "%s", e.msg);
                malloc_trim(0); /* 100 status files were read */
            } else if (fd == a.settle_timer) {
                drain(a.settle_timer);
                settle_all(&a);
            } else {
                on_keeper_exit(&a, fd);
            }
        }
    }
    berth_systemd_notify("STOPPING=1");
    berth_log(BERTH_LOG_INFO, "agent stopping; the services keep running under their keepers");
    teardown(&a);
    return 0;
}

int berth_agent_alive(const char *root, pid_t *ret_pid, berth_error *err)
{
    _cleanup_free_ char *path = xasprintf("%s/agent.lock", root);
    _cleanup_fclose_ FILE *f = NULL;
    char line[256];
    struct stat st;

    *ret_pid = 0;
    if (stat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return berth_error_set(err, errno, "checking '%s'", path);
    }
    f = fopen("/proc/locks", "re");
    if (!f)
        return berth_error_set(err, errno, "reading '/proc/locks'");
    /* "1: FLOCK  ADVISORY  WRITE 9076 fe:00:11174283 0 EOF"; a waiter's
     * line has "->" after the number: it holds nothing */
    while (fgets(line, sizeof(line), f)) {
        char kind[16];
        unsigned maj, min;
        unsigned long long ino;
        int pid;
        if (sscanf(line, "%*d: %15s %*s %*s %d %x:%x:%llu", kind, &pid, &maj, &min, &ino) != 5)
            continue;
        if (strcmp(kind, "FLOCK") || maj != major(st.st_dev) || min != minor(st.st_dev) ||
            ino != (unsigned long long)st.st_ino)
            continue;
        *ret_pid = pid > 0 ? pid : 0;
        return 1;
    }
    return 0;
}
