/* Service status records (ROOT/services/<name>/status.json), written
 * atomically by the keeper after every transition and read by `berth ps`,
 * `berth status` and the planner without any daemon. */
#ifndef BERTH_STATUS_H
#define BERTH_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct berth_status {
    char *name;
    char *state;       /* running starting backoff stopped failed rolled-back */
    pid_t pid;         /* the container's init on the host, 0 when none ("pid", "init_pid") */
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
    /* the last health check: "last_check" in JSON, null before the first */
    bool has_check;
    char *check_result;  /* "exit code 1", "killed by signal SIGKILL", "timed out after 2000 ms" */
    int check_exit_code; /* -1: it did not exit */
    int check_signal;    /* 0: none */
    bool check_timed_out;
    char *check_output; /* its stdout+stderr, the first 4096 bytes */
    int64_t check_at;
};

int berth_status_write(const char *root, const struct berth_status *st, berth_error *err);

/* Read one record. A record whose keeper is gone although its state says
 * it is alive has keeper_gone set, and is reported as "failed" (the
 * keeper was killed) unless its container runs on without it. */
int berth_status_read(const char *root, const char *name, struct berth_status *ret,
                      berth_error *err);
void berth_status_release(struct berth_status *st);

/* Every service record under ROOT/services, sorted by name. */
int berth_status_list(const char *root, struct berth_status **ret, size_t *ret_n, berth_error *err);
void berth_status_list_free(struct berth_status *v, size_t n);

/* {"services": [...]} as DESIGN.md's `berth status --json` (malloc'ed). */
char *berth_status_json(const struct berth_status *v, size_t n);

/* Whether `root` can be read as a berth root: an existing directory and,
 * with `used`, one that berth has worked in (it has services/, lock or
 * agent.json). ENOENT or ENOTDIR otherwise, the message naming the root:
 * a mistyped --root is an error, not an empty list. */
int berth_status_root_check(const char *root, bool used, berth_error *err);

/* Whether `state` means a keeper should be alive. */
bool berth_status_state_live(const char *state);

#endif
