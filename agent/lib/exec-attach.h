/* `berth exec` in the library: a command in a running service's
 * container, attached to our terminal. Above the keeper and the status
 * (it reads the service's record); exec.h is what it, the keeper's health
 * checks and `berth run` share below them. */
#ifndef BERTH_EXEC_ATTACH_H
#define BERTH_EXEC_ATTACH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* `berth exec`: run `argv` in the running service `name`'s container as
 * the service runs (its user unless o->user, its environment with o->env
 * over it, its working directory unless o->workdir, its capabilities,
 * filter and open file limit), in the foreground: attached to our standard
 * streams, or with `tty` (when stdin is a terminal) to a pty of the
 * container whose other end we relay; our forwarded signals
 * (berth_forwarded_signals) are passed on. The caller ignores SIGPIPE, so
 * that a closed stdout does not end it while the command runs (the command
 * gets the default disposition back). */
struct berth_exec_attach_options {
    const char *user; /* NULL: the service's */
    const char **env; /* KEY=VALUE, or KEY to copy ours */
    size_t nenv;
    const char *workdir; /* NULL: the service's */
    bool interactive;    /* keep stdin open: our own, or relayed to the pty */
    bool tty;
    uint64_t timeout_ms; /* 0: none; then the command and its group are killed */
};

/* Returns the command's exit code, or -1 with the exit status to end with
 * in *ret_exit: 124 when the command was killed at the timeout, 127 when
 * it was not found, 126 when it could not be executed, else 1. */
BERTH_MUST_CHECK int berth_exec_attach(const char *root, const char *name, char **argv,
                                       const struct berth_exec_attach_options *o, int *ret_exit,
                                       berth_error *err);

#endif
