/* berth error reporting, after crun's libcrun_error_t.
 *
 * The contract, for every function of agent/lib:
 *
 * The single call. `int berth_x(..., berth_error *err)` returns 0 (or a
 * count, a pid, an fd: >= 0) on success and -1 on failure, having filled
 * the caller-owned `err` with the errno of the root cause (0 when none
 * applies) and a message. Nothing else is a failure value: no -2, no
 * errno in the return value, no NULL without `err`. Callers add context
 * on the way up with berth_error_wrap(), so the user sees the whole chain:
 * "running 'web': mounting '/proc': Operation not permitted". Such
 * functions are declared BERTH_MUST_CHECK: a result cannot be dropped
 * silently, only on purpose with a comment saying why.
 *
 * Predicates and look-ups that cannot fail in a way the caller must tell
 * apart (is this keeper alive? what is this capability's number?) return
 * bool or a value, and say in their header what an error reads as.
 *
 * The batch. A function that acts on many items (apply a plan, stop every
 * service) does not stop at the first failure: it reports each item's
 * outcome (a callback or an array with a berth_error per item, as its
 * header says) and returns how many failed.
 *
 * The file. The desired-state file's errors are positional and many:
 * struct berth_spec_errors (spec.h) collects every error of a file with
 * its line, column and path, up to BERTH_SPEC_MAX_ERRORS.
 *
 * Only agent/cmd prints errors and picks exit codes. A failure of the
 * process itself (out of memory) ends it: xmalloc() and friends (util.h).
 */
#ifndef BERTH_ERROR_H
#define BERTH_ERROR_H

#include <stddef.h>

#define BERTH_ERROR_MAX 2048

/* on every `int berth_*(..., berth_error *)`: its -1 must be looked at */
#define BERTH_MUST_CHECK __attribute__((warn_unused_result))

typedef struct berth_error {
    int code;                  /* errno of the root cause, or 0 */
    char msg[BERTH_ERROR_MAX]; /* "" when no error is recorded */
} berth_error;

#define BERTH_ERROR_INIT \
    {                    \
        0, ""            \
    }

/* Record an error: the message from fmt, then ": strerror(errnum)" when
 * errnum is not 0. Always returns -1 so callers can `return berth_error_set(...)`. */
int berth_error_set(berth_error *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the recorded message with "context: ". Returns -1. */
int berth_error_wrap(berth_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Forget a recorded error. */
void berth_error_clear(berth_error *err);

#endif
