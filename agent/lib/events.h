/* A service's history: every transition of its keeper (a start, an exit
 * and why, a stop or restart request, a health change, an adoption) and
 * what apply and the agent did to it (create, replace, remove, rollback),
 * with the time and the cause, so that "why did it restart?" has an
 * answer after the fact.
 *
 * ROOT/services/<name>/events holds one JSON object per line:
 *   {"time": "2026-12-07T16:00:41.123456Z", "service": "web",
 *    "cause": "oom", "from": "running", "to": "backoff",
 *    "message": "'web' was killed by the OOM killer ...",
 *    "exit": {"code": 137, "signal": 9, "oom": true},
 *    "pid": 1234, "restarts": 3, ...}
 * Optional members: "from", "to" (keeper states; apply's "removed" and
 * "rolled-back"), "exit", "pid", "restarts", "health" ({"status",
 * "result", "output"}: a check's output, the first 1024 bytes), "action"
 * and "spec" (apply's), "rejected" (a rollback's).
 *
 * Causes: "start", "start-failed", "exit" (the service exited by itself),
 * "signal" (it died of a signal nobody in berth sent), "oom" (a SIGKILL
 * while its cgroup's OOM kill count rose), "stop" (a stop request:
 * berth stop, apply, SIGTERM to the keeper), "restart" (berth restart),
 * "unhealthy", "healthy", "stop-timeout" (SIGKILL after the stop
 * timeout), "keeper-gone" (the keeper before ended without stopping
 * its service: killed, or it crashed), "adopted" (a new keeper took a
 * running container over),
 * "apply" (with "action": create, replace, remove, start, stop),
 * "rollback".
 *
 * Every record is one write(2) to an O_APPEND file, so that the keeper,
 * apply and the agent never interleave. The file is bounded: past
 * BERTH_EVENTS_MAX_SIZE it becomes events.1 (one rotated file; the rename
 * is done under an flock of the file, so that two writers never both
 * rotate). A removed service's events go with its log to
 * ROOT/removed/<name>@<time>/.
 */
#ifndef BERTH_EVENTS_H
#define BERTH_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#define BERTH_EVENTS_MAX_SIZE (64 * 1024)
/* the part of a health check's output an event keeps */
#define BERTH_EVENT_OUTPUT_MAX 1024

struct berth_event {
    int64_t time_us;     /* unix microseconds; 0: now (berth_event_record) */
    char *service;       /* reading: from the record; writing: NULL is the dir's name */
    char *cause;         /* see above */
    char *from, *to;     /* NULL: none */
    char *message;       /* one line for people */
    bool has_exit;       /* the service's exit */
    int exit_code;       /* 128+N for signal N */
    int exit_signal;     /* 0: none */
    bool exit_oom;       /* killed by the OOM killer */
    pid_t pid;           /* the container's init, 0: none */
    int restarts;        /* by the restart policy, -1: not said */
    char *health;        /* "healthy", "unhealthy", ..., NULL: not said */
    char *health_result; /* "exit code 3", ... */
    char *health_output; /* the check's output (bounded) */
    char *action, *spec; /* apply's */
    char *rejected;      /* a rollback's rejected spec hash */
};

/* Append one event to the events file in service directory `dir`
 * (ROOT/services/<name>); time_us 0 is now. */
BERTH_MUST_CHECK int berth_event_record(const char *dir, const struct berth_event *ev,
                                        berth_error *err);

/* The same, for callers that have no use for a failure (the history is
 * no reason to fail a start or a stop). */
void berth_event_record_quiet(const char *dir, const struct berth_event *ev);

/* Every event in `dir` (events.1, then events), oldest first, from
 * `since_us` on (0: all). Lines that do not parse are skipped. */
BERTH_MUST_CHECK int berth_events_read(const char *dir, int64_t since_us, struct berth_event **ret,
                                       size_t *ret_n, berth_error *err);
/* Append to *v the events of the complete lines in buf[0..len) from
 * `since_us` on, with `service` (when not NULL) for those that do not
 * name theirs; lines that do not parse are skipped. Returns how many bytes
 * it read: up to the end of the last complete line. */
size_t berth_events_parse_lines(const char *buf, size_t len, const char *service, int64_t since_us,
                                struct berth_event **v, size_t *n);
/* Parse one line; -1 when it is not an event. */
int berth_event_parse(const char *line, size_t len, struct berth_event *ret);
void berth_event_release(struct berth_event *ev);
void berth_events_free(struct berth_event *v, size_t n);

/* The record as one line of JSON without its newline (malloc'ed). */
char *berth_event_json(const struct berth_event *ev);

/* "2026-12-07T16:00:41.123456Z" (`digits` of the fraction: 0, 3 or 6)
 * into buf (at least 32 bytes). */
void berth_format_time_us(int64_t us, int digits, char *buf, size_t len);

/* The current time in unix microseconds. */
int64_t berth_realtime_us(void);

/* A time as `--since` takes it: RFC 3339 ("2026-12-07T16:00:41Z",
 * "2026-12-07T17:00:41.5+01:00", a space for the "T"), or a duration
 * back from `now_us` as the file writes them ("10m", "1.5h", "30s"). */
int berth_parse_since(const char *s, int64_t now_us, int64_t *ret_us);

/* Move the events files of the service in `dir` into `to` (a removed
 * service's kept log directory). */
BERTH_MUST_CHECK int berth_events_move(const char *dir, const char *to, berth_error *err);

#endif
