#include "keeper-fsm.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

typedef void handler(struct berth_keeper_fsm *m, const struct berth_keeper_input *in,
                     struct berth_keeper_step *s);

static void say(struct berth_keeper_step *s, const char *cause, bool log, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void say(struct berth_keeper_step *s, const char *cause, bool log, const char *fmt, ...)
{
    va_list ap;

    s->cause = cause;
    s->log = log;
    va_start(ap, fmt);
    vsnprintf(s->message, sizeof(s->message), fmt, ap);
    va_end(ap);
}

uint64_t berth_keeper_fsm_backoff(const struct berth_keeper_fsm *m)
{
    uint64_t d = m->rules.backoff_initial_ms ? m->rules.backoff_initial_ms : 1000;

    for (unsigned i = 0; i < m->failures && d < m->rules.backoff_max_ms; i++)
        d *= 2;
    return d < m->rules.backoff_max_ms ? d : m->rules.backoff_max_ms;
}

/* Into starting: the keeper starts the container and tells us how it went. */
static void start(struct berth_keeper_fsm *m, struct berth_keeper_step *s)
{
    m->start_from = m->state;
    m->start_from_predecessor = false;
    m->state = BERTH_STATE_STARTING;
    m->unhealthy_kill = false;
    s->actions |= BERTH_KEEPER_START;
}

/* Stopped for good: the keeper exits. */
static void finish(struct berth_keeper_fsm *m, struct berth_keeper_step *s)
{
    m->state = BERTH_STATE_STOPPED;
    s->actions |= BERTH_KEEPER_DISARM | BERTH_KEEPER_WRITE_STATUS | BERTH_KEEPER_TELL;
    snprintf(s->why, sizeof(s->why), "it was stopped");
}

/* The restart policy's next attempt, after the backoff delay. */
static void backoff(struct berth_keeper_fsm *m, struct berth_keeper_step *s, const char *cause,
                    const char *what)
{
    s->delay_ms = berth_keeper_fsm_backoff(m);
    m->failures++;
    m->state = BERTH_STATE_BACKOFF;
    say(s, cause, true, "'%s' %s; restarting in %llu ms", m->rules.name, what,
        (unsigned long long)s->delay_ms);
    s->actions |= BERTH_KEEPER_ARM_BACKOFF | BERTH_KEEPER_WRITE_STATUS | BERTH_KEEPER_TELL;
    snprintf(s->why, sizeof(s->why), "%s", what);
}

/* Send the stop signal, SIGKILL after the stop timeout. */
static void kill_gently(struct berth_keeper_fsm *m, struct berth_keeper_step *s)
{
    m->state = BERTH_STATE_STOPPING;
    s->actions |= BERTH_KEEPER_KILL | BERTH_KEEPER_WRITE_STATUS;
}

static void first_start(struct berth_keeper_fsm *m, const struct berth_keeper_input *in,
                        struct berth_keeper_step *s)
{
    (void)in;
    start(m, s);
    m->start_from_predecessor = true;
}

static void adopted(struct berth_keeper_fsm *m, const struct berth_keeper_input *in,
                    struct berth_keeper_step *s)
{
    m->state = BERTH_STATE_RUNNING;
    s->from_predecessor = true;
    say(s, "adopted", true,
        "a new keeper (pid %d) adopted '%s' (init pid %d): its last keeper is gone, the service "
        "runs on",
        (int)in->keeper_pid, m->rules.name, (int)in->pid);
    s->actions |= BERTH_KEEPER_WRITE_STATUS;
}

static void started(struct berth_keeper_fsm *m, const struct berth_keeper_input *in,
                    struct berth_keeper_step *s)
{
    m->state = BERTH_STATE_RUNNING;
    say(s, "start", true, "started '%s' (pid %d)", m->rules.name, (int)in->pid);
    s->actions |= BERTH_KEEPER_WRITE_STATUS | BERTH_KEEPER_TELL;
}

/* Before the service ran: for a reason in the file, the image or the
 * host's paths, retrying with the backoff would only repeat it. */
static void start_failed(struct berth_keeper_fsm *m, const struct berth_keeper_input *in,
                         struct berth_keeper_step *s)
{
    s->actions |= BERTH_KEEPER_DISARM;
    if (m->stop_requested) {
        m->state = BERTH_STATE_STOPPED;
        say(s, "stop", true, "stopped '%s' (its start failed: %s)", m->rules.name, in->error);
        finish(m, s);
    } else if (in->transient && m->rules.restart != BERTH_RESTART_NEVER) {
        char what[sizeof(s->why)];
        snprintf(what, sizeof(what), "could not start (%s)", in->error);
        backoff(m, s, "start-failed", what);
    } else {
        m->state = BERTH_STATE_FAILED;
        say(s, "start-failed", true,
            "'%s' cannot start: %s; it stays failed until the file changes or 'berth apply' or "
            "'berth restart' tries again",
            m->rules.name, in->error);
        s->actions |= BERTH_KEEPER_WRITE_STATUS | BERTH_KEEPER_TELL;
        snprintf(s->why, sizeof(s->why), "%s", in->error);
    }
}

/* Why the container ended, for the history: the OOM killer (a SIGKILL
 * while the cgroup's OOM kill count rose: berth_exit's oom_killed), what
 * berth asked for, or the service itself. */
static const char *exit_cause(const struct berth_keeper_fsm *m, int sig, bool oom)
{
    if (oom)
        return "oom";
    if (m->stop_requested)
        return "stop";
    if (m->unhealthy_kill)
        return "unhealthy";
    if (m->restart_requested)
        return "restart";
    return sig ? "signal" : "exit";
}

static void exited(struct berth_keeper_fsm *m, const struct berth_keeper_input *in,
                   struct berth_keeper_step *s)
{
    int sig = in->code > 128 && in->code < 128 + 65 ? in->code - 128 : 0;
    bool oom = in->oom && sig == SIGKILL;
    const char *cause = exit_cause(m, sig, oom);
    char what[128];

    s->exit_signal = sig;
    s->exit_oom = oom;
    if (sig)
        snprintf(what, sizeof(what), "exited with code %d (%s%s)", in->code, berth_signal_name(sig),
                 oom ? ", killed by the OOM killer" : "");
    else
        snprintf(what, sizeof(what), "exited with code %d", in->code);
    s->actions |= BERTH_KEEPER_DISARM;
    if (m->stop_requested) {
        m->state = BERTH_STATE_STOPPED;
        say(s, cause, true, "stopped '%s' (exit code %d)", m->rules.name, in->code);
        finish(m, s);
    } else if (m->restart_requested) {
        m->restart_requested = false;
        m->failures = 0;
        m->manual_restarts++;
        m->state = BERTH_STATE_STARTING;
        say(s, cause, false, "'%s' %s; starting it again as asked", m->rules.name, what);
        start(m, s);
    } else if (m->rules.restart == BERTH_RESTART_NEVER ||
               (m->rules.restart == BERTH_RESTART_ON_FAILURE && in->code == 0)) {
        m->state = BERTH_STATE_STOPPED;
        say(s, cause, true, "'%s' %s; restart policy says stay stopped", m->rules.name, what);
        finish(m, s);
    } else {
        if (in->ran_ms >= m->rules.backoff_reset_ms)
            m->failures = 0;
        backoff(m, s, cause, what);
    }
}

static void backoff_over(struct berth_keeper_fsm *m, const struct berth_keeper_input *in,
                         struct berth_keeper_step *s)
{
    (void)in;
    m->restarts++;
    start(m, s);
}

static void stop_timeout(struct berth_keeper_fsm *m, const struct berth_keeper_input *in,
                         struct berth_keeper_step *s)
{
    (void)in;
    say(s, "stop-timeout", true, "'%s' did not stop within %llu ms; sending SIGKILL", m->rules.name,
        (unsigned long long)m->rules.stop_timeout_ms);
    s->actions |= BERTH_KEEPER_KILL_HARD;
}

static void stop_running(struct berth_keeper_fsm *m, const struct berth_keeper_input *in,
                         struct berth_keeper_step *s)
{
    m->stop_requested = true;
    say(s, "stop", false, "stopping '%s' (%s): sending %s, SIGKILL after %llu ms", m->rules.name,
        in->why, berth_signal_name(m->rules.stop_signal),
        (unsigned long long)m->rules.stop_timeout_ms);
    kill_gently(m, s);
}

/* Nothing runs: stopped at once. */
static void stop_now(struct berth_keeper_fsm *m, const struct berth_keeper_input *in,
                     struct berth_keeper_step *s)
{
    (void)in;
    m->stop_requested = true;
    say(s, "stop", true, "stopped '%s' (it was %s)", m->rules.name, berth_state_name(m->state));
    finish(m, s);
}

static void stop_stopping(struct berth_keeper_fsm *m, const struct berth_keeper_input *in,
                          struct berth_keeper_step *s)
{
    (void)in;
    (void)s;
    m->stop_requested = true;
}

static void restart_running(struct berth_keeper_fsm *m, const struct berth_keeper_input *in,
                            struct berth_keeper_step *s)
{
    (void)in;
    m->restart_requested = true;
    say(s, "restart", false, "restarting '%s' as asked: sending %s, SIGKILL after %llu ms",
        m->rules.name, berth_signal_name(m->rules.stop_signal),
        (unsigned long long)m->rules.stop_timeout_ms);
    kill_gently(m, s);
}

static void restart_backoff(struct berth_keeper_fsm *m, const struct berth_keeper_input *in,
                            struct berth_keeper_step *s)
{
    (void)in;
    s->actions |= BERTH_KEEPER_DISARM;
    m->failures = 0;
    m->manual_restarts++;
    start(m, s);
}

/* Stopping because it turned unhealthy: start again at once. */
static void restart_stopping(struct berth_keeper_fsm *m, const struct berth_keeper_input *in,
                             struct berth_keeper_step *s)
{
    (void)in;
    (void)s;
    if (!m->stop_requested)
        m->restart_requested = true;
}

static void unhealthy(struct berth_keeper_fsm *m, const struct berth_keeper_input *in,
                      struct berth_keeper_step *s)
{
    (void)in;
    if (!m->rules.health_restart)
        return;
    m->unhealthy_kill = true;
    say(s, "unhealthy", true,
        "restarting '%s' because it is unhealthy: sending %s, SIGKILL after %llu ms", m->rules.name,
        berth_signal_name(m->rules.stop_signal), (unsigned long long)m->rules.stop_timeout_ms);
    kill_gently(m, s);
}

/* NULL: the event means nothing in that state. */
static handler *const table[BERTH_STATE_N][BERTH_KEEPER_EV_N] = {
    [BERTH_STATE_STARTING] =
        {
            [BERTH_KEEPER_EV_START] = first_start,
            [BERTH_KEEPER_EV_ADOPT] = adopted,
            [BERTH_KEEPER_EV_START_OK] = started,
            [BERTH_KEEPER_EV_START_FAILED] = start_failed,
            [BERTH_KEEPER_EV_STOP] = stop_now,
        },
    [BERTH_STATE_RUNNING] =
        {
            [BERTH_KEEPER_EV_EXIT] = exited,
            [BERTH_KEEPER_EV_STOP] = stop_running,
            [BERTH_KEEPER_EV_RESTART] = restart_running,
            [BERTH_KEEPER_EV_UNHEALTHY] = unhealthy,
        },
    [BERTH_STATE_BACKOFF] =
        {
            [BERTH_KEEPER_EV_TIMER] = backoff_over,
            [BERTH_KEEPER_EV_STOP] = stop_now,
            [BERTH_KEEPER_EV_RESTART] = restart_backoff,
        },
    [BERTH_STATE_STOPPING] =
        {
            [BERTH_KEEPER_EV_EXIT] = exited,
            [BERTH_KEEPER_EV_TIMER] = stop_timeout,
            [BERTH_KEEPER_EV_STOP] = stop_stopping,
            [BERTH_KEEPER_EV_RESTART] = restart_stopping,
        },
    /* the keeper is done, but a stop that came in the same wake-up as the
     * end is still answered: the service is stopped, as asked */
    [BERTH_STATE_STOPPED] = {[BERTH_KEEPER_EV_STOP] = stop_now},
    [BERTH_STATE_FAILED] = {[BERTH_KEEPER_EV_STOP] = stop_now},
};

void berth_keeper_fsm_init(struct berth_keeper_fsm *m, const struct berth_keeper_rules *rules)
{
    memset(m, 0, sizeof(*m));
    m->rules = *rules;
    m->state = BERTH_STATE_STARTING;
    m->start_from = BERTH_STATE_STARTING;
    m->start_from_predecessor = true;
}

void berth_keeper_fsm_step(struct berth_keeper_fsm *m, const struct berth_keeper_input *in,
                           struct berth_keeper_step *s)
{
    enum berth_state from = m->state;
    bool start_ends =
        in->type == BERTH_KEEPER_EV_START_OK || in->type == BERTH_KEEPER_EV_START_FAILED;
    handler *h = NULL;

    memset(s, 0, sizeof(*s));
    if ((unsigned)from < BERTH_STATE_N && (unsigned)in->type < BERTH_KEEPER_EV_N)
        h = table[from][in->type];
    /* a start's end is recorded from where the start came from */
    s->from = start_ends ? m->start_from : from;
    s->from_predecessor = start_ends && m->start_from_predecessor;
    if (h)
        h(m, in, s);
    s->to = m->state;
}

bool berth_keeper_fsm_done(const struct berth_keeper_fsm *m)
{
    return m->state == BERTH_STATE_STOPPED || m->state == BERTH_STATE_FAILED;
}
