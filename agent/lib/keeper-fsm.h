/* The keeper's state machine (keeper.h), after s6-supervise: a table of
 * states × events whose cells say the next state and what to do. Pure:
 * no I/O, no clock, no processes. keeper.c turns what happens (a start,
 * an exit, a timer, a request on its socket, a health result) into an
 * event, feeds it here and performs the step's actions.
 *
 *            start     adopt    start-ok  start-  exit  timer     stop      restart   unhealthy
 *                                          failed
 * starting   starting  running  running   (1)     -     -         stopped   -         -
 * running    -         -        -         -       (2)   -         stopping  stopping  (3)
 * backoff    -         -        -         -       -     starting  stopped   starting  -
 * stopping   -         -        -         -       (2)   SIGKILL   (4)       (5)       -
 * stopped, failed: the keeper exits; only a stop that came in the same
 * wake-up moves them (to stopped: "stopped 'web' (it was failed)").
 * "starting" means the container starts: its end is start-ok or start-failed.
 *
 * (1) stopped if a stop was asked for; backoff for a transient error
 *     (restart policy not never); failed otherwise.
 * (2) stopped if a stop was asked for; starting again if a restart was;
 *     stopped if the restart policy says so (never; on-failure and code 0);
 *     backoff otherwise, the delay doubling from backoff.initial up to
 *     backoff.max, starting over once the service ran backoff.reset_after.
 * (3) stopping, only with healthcheck.restart; else it runs on, unhealthy.
 * (4) it stops for good: the stop wins over a restart under way.
 * (5) it starts again once it ended (it was stopping for being
 *     unhealthy), unless it is stopping for good.
 */
#ifndef BERTH_KEEPER_FSM_H
#define BERTH_KEEPER_FSM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "run-types.h"
#include "status.h"

enum berth_keeper_event {
    BERTH_KEEPER_EV_START,        /* the keeper's first start: nothing to adopt */
    BERTH_KEEPER_EV_ADOPT,        /* it adopted the container of a keeper that died */
    BERTH_KEEPER_EV_START_OK,     /* the container started (.pid) */
    BERTH_KEEPER_EV_START_FAILED, /* its set-up failed (.error, .transient) */
    BERTH_KEEPER_EV_EXIT,         /* the container ended (.code, .oom, .ran_ms) */
    BERTH_KEEPER_EV_TIMER,        /* the keeper's timer: the backoff or the stop timeout is over */
    BERTH_KEEPER_EV_STOP,         /* a stop was asked for (.why: "a stop request", "SIGTERM") */
    BERTH_KEEPER_EV_RESTART,      /* a restart was asked for (berth restart) */
    BERTH_KEEPER_EV_UNHEALTHY,    /* the health checks turned it unhealthy */
    BERTH_KEEPER_EV_N,
};

struct berth_keeper_input {
    enum berth_keeper_event type;
    pid_t pid;         /* START_OK, ADOPT: the container's init */
    pid_t keeper_pid;  /* ADOPT: this keeper */
    const char *error; /* START_FAILED: why */
    bool transient;    /* START_FAILED: a retry may not meet the error again */
    int code;          /* EXIT: the init's exit code, 128+N for a signal N */
    bool oom;          /* EXIT: the cgroup's OOM kill count rose meanwhile */
    uint64_t ran_ms;   /* EXIT: how long it ran */
    const char *why;   /* STOP: who asked */
};

/* What the keeper does for a step, in this order (after recording the
 * transition): */
enum {
    BERTH_KEEPER_DISARM = 1 << 0,       /* disarm the timer */
    BERTH_KEEPER_KILL = 1 << 1,         /* the stop signal; the timer to the stop timeout */
    BERTH_KEEPER_KILL_HARD = 1 << 2,    /* SIGKILL */
    BERTH_KEEPER_ARM_BACKOFF = 1 << 3,  /* the timer to delay_ms */
    BERTH_KEEPER_WRITE_STATUS = 1 << 4, /* write the status */
    BERTH_KEEPER_TELL = 1 << 5,         /* answer the clients waiting for a restart (why) */
    BERTH_KEEPER_START = 1 << 6,        /* start the container; then START_OK or START_FAILED */
};

/* What the machine does not change: the service's config. */
struct berth_keeper_rules {
    const char *name;
    enum berth_restart restart;
    uint64_t backoff_initial_ms, backoff_max_ms, backoff_reset_ms;
    int stop_signal;
    uint64_t stop_timeout_ms;
    bool health_restart; /* restart the service when it turns unhealthy */
};

struct berth_keeper_fsm {
    struct berth_keeper_rules rules;
    enum berth_state state; /* starting running backoff stopping stopped failed */
    bool stop_requested;    /* stopping for good: the keeper exits once it is stopped */
    bool restart_requested; /* start again once the running instance ended */
    bool unhealthy_kill;    /* the running stop is for being unhealthy */
    unsigned failures;      /* in a row, for the backoff */
    unsigned restarts;      /* by the restart policy: crashes, exits, unhealthy */
    unsigned manual_restarts;
    /* the state the running start came from, for the history;
     * start_from_predecessor: the first start, from the state the record
     * had before this keeper */
    enum berth_state start_from;
    bool start_from_predecessor;
};

/* One step: a transition to record (cause not NULL) and the actions. */
struct berth_keeper_step {
    enum berth_state from, to;
    bool from_predecessor; /* from: the state the record had before this keeper */
    const char *cause;     /* the history's cause (events.h); NULL: nothing to record */
    bool log;              /* the message goes to the service's log too */
    char message[1024];
    unsigned actions;
    uint64_t delay_ms;              /* ARM_BACKOFF */
    char why[BERTH_ERROR_MAX + 32]; /* TELL: why the restart did not lead to a running service */
    int exit_signal;                /* EXIT: N of 128+N, 0 for an exit of its own */
    bool exit_oom;                  /* EXIT: killed by the OOM killer */
};

/* The state before the first event: starting. */
void berth_keeper_fsm_init(struct berth_keeper_fsm *m, const struct berth_keeper_rules *rules);

/* Apply one event: m's state moves, *ret says what to do. An event that
 * means nothing in the current state leaves everything as it was
 * (ret->actions 0, ret->cause NULL). */
void berth_keeper_fsm_step(struct berth_keeper_fsm *m, const struct berth_keeper_input *in,
                           struct berth_keeper_step *ret);

/* Whether the keeper is done: stopped or failed. */
bool berth_keeper_fsm_done(const struct berth_keeper_fsm *m);

/* The delay before the next restart by the policy: backoff.initial
 * (1 s if 0) doubled for each failure in a row, at most backoff.max. */
uint64_t berth_keeper_fsm_backoff(const struct berth_keeper_fsm *m);

#endif
