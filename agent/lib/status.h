/* Service status records (the record's status file, record.h), written
 * atomically by the keeper after every transition and read by `berth ps`,
 * `berth status` and the planner without any daemon. */
#ifndef BERTH_STATUS_H
#define BERTH_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "record.h"

/* A service's state, as status.json's "state" spells it (DESIGN.md):
 * stopped, starting, running, backoff, stopping (a keeper's own: its
 * record says "running" with "stopping" true), failed, and rolled-back
 * (running the version a rollback brought back: berth_status_read()'s,
 * never written). */
enum berth_state {
    BERTH_STATE_STOPPED = 0,
    BERTH_STATE_STARTING,
    BERTH_STATE_RUNNING,
    BERTH_STATE_BACKOFF,
    BERTH_STATE_STOPPING,
    BERTH_STATE_FAILED,
    BERTH_STATE_ROLLED_BACK,
    BERTH_STATE_N,
};

/* "running", "rolled-back", ... */
const char *berth_state_name(enum berth_state s);
/* The state a name spells; false for NULL or a name berth does not know. */
bool berth_state_parse(const char *name, enum berth_state *ret);
/* Whether a keeper should be alive in state `s`: starting, running,
 * backoff, stopping, rolled-back. */
bool berth_state_live(enum berth_state s);

struct berth_status {
    char *name;
    enum berth_state state; /* "stopped" when the record has none, or one berth does not know */
    pid_t pid;              /* the container's init on the host, 0 when none ("pid", "init_pid") */
    pid_t service_pid; /* its child running the service's command ("service_pid"), 0: unknown */
    pid_t keeper_pid;  /* 0 when none */
    unsigned restarts; /* by the restart policy (crashes, exits, unhealthy) */
    unsigned manual_restarts; /* asked for: berth restart */
    int64_t started_at;       /* unix seconds of the current start, 0 when none */
    char *image;              /* "sha256:..." */
    char *health;             /* "none" until health checks exist for it */
    char *spec_hash;
    bool has_exit; /* last_exit below is set */
    int exit_code;
    bool exit_oom;
    int64_t exit_at;
    char *start_error; /* why the last start failed (set-up, exec); NULL when it did not */
    /* why its keeper exited without having stopped it (keeper.h: poll or
     * reap failed); NULL when it did not. "keeper_error" in JSON, only
     * when set */
    char *keeper_error;
    /* rolled back from (rejected.sha256), "rejected" in JSON; NULL when not */
    char *rejected_spec_hash;
    char *rejected_image;
    /* a stop was asked for: the keeper exits once the service is gone (its
     * state stays "running" through the stop's grace period) */
    bool stopping;
    /* berth_status_read(): the record says a keeper runs, none does (it
     * was killed); the container may run on (`pid`), until a new keeper
     * adopts it (handover.h) */
    bool keeper_gone;
    /* What the keeper's lock said (record.h): berth_status_read() looks
     * when the state says a keeper runs, berth_status_read_listed() with
     * keeper_first always. With keeper_gone, `orphaned`: the container
     * runs on without it. Neither is in JSON */
    enum berth_keeper_probe keeper;
    bool orphaned;
    /* the last health check: "last_check" in JSON, null before the first */
    bool has_check;
    char *check_result;  /* "exit code 1", "killed by signal SIGKILL", "timed out after 2000 ms" */
    int check_exit_code; /* -1: it did not exit */
    int check_signal;    /* 0: none */
    bool check_timed_out;
    char *check_output; /* its stdout+stderr, the first 4096 bytes */
    int64_t check_at;
};

BERTH_MUST_CHECK int berth_status_write(const char *root, const struct berth_status *st,
                                        berth_error *err);

/* Read one record. A record whose keeper is gone although its state says
 * it is alive has keeper_gone set, and is reported as "failed" (the
 * keeper was killed) unless its container runs on without it. */
BERTH_MUST_CHECK int berth_status_read(const char *root, const char *name, struct berth_status *ret,
                                       berth_error *err);
void berth_status_release(struct berth_status *st);

/* Every service record under ROOT/services, sorted by name. */
BERTH_MUST_CHECK int berth_status_list(const char *root, struct berth_status **ret, size_t *ret_n,
                                       berth_error *err);
/* Record `i` of `recs` as berth_status_list reads it: one without a
 * status that reads (being created: its spec before the first status) is
 * "stopped". With `keeper_first` (the planner, which needs every record's
 * keeper) the keeper lock is looked at before anything else and `keeper`
 * is always set: a record no keeper ran then costs no other open. Without
 * it (a list of statuses) the lock is looked at only when the state says
 * a keeper runs, as berth_status_read does. */
void berth_status_read_listed(const struct berth_records *recs, size_t i, bool keeper_first,
                              struct berth_status *ret);
void berth_status_list_free(struct berth_status *v, size_t n);

/* {"services": [...]} as DESIGN.md's `berth status --json` (malloc'ed). */
char *berth_status_json(const struct berth_status *v, size_t n);

/* Whether `root` can be read as a berth root: an existing directory and,
 * with `used`, one that berth has worked in (it has services/, lock or
 * agent.json). ENOENT or ENOTDIR otherwise, the message naming the root:
 * a mistyped --root is an error, not an empty list. */
BERTH_MUST_CHECK int berth_status_root_check(const char *root, bool used, berth_error *err);

#endif
