/* berth error reporting, after crun's libcrun_error_t.
 *
 * Library functions return < 0 on failure and fill a caller-owned
 * `berth_error` with the errno (0 when none applies) and a message. Callers
 * add context on the way up with berth_error_wrap(), so the user sees the
 * whole chain: "running 'web': mounting '/proc': Operation not permitted".
 * Only agent/cmd prints errors and picks exit codes.
 */
#ifndef BERTH_ERROR_H
#define BERTH_ERROR_H

#include <stddef.h>

#define BERTH_ERROR_MAX 2048

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
