/* `berth run`: one container in the foreground, like a program.
 *
 * The image is resolved (a rootfs directory as it is; an OCI layout or
 * archive, a docker save archive or a rootfs tarball unpacked into the
 * store; sha256:DIGEST from the store; oci://... pulled into it), and its
 * config gives what the options leave open: the command, the environment,
 * the working directory, the user and the stop signal. The container runs
 * under ROOT/run/<name>, locked for as long as it runs, with the signals of
 * berth_forwarded_signals passed on; then its run directory is removed.
 */
#ifndef BERTH_RUN_H
#define BERTH_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "container.h"
#include "error.h"

struct berth_run_options {
    const char *name; /* the container's (its run directory, cgroup, messages) */
    char **env;       /* -e as given: KEY=VALUE, or KEY to copy ours */
    size_t nenv;
    const char *workdir; /* NULL: the image's, else "/" */
    const char *user;    /* NULL: the image's, else root */
    struct berth_mount *mounts;
    size_t nmounts;
    bool readonly;
    bool network_none;
    const char *hostname; /* NULL: the host's */
    struct berth_limits limits;
    uint64_t caps;
    int stop_signal;      /* the image's replaces it unless stop_signal_set */
    bool stop_signal_set; /* berth_run_foreground() sets the one it used */
    uint64_t stop_timeout_ms;
    const char *seccomp; /* "default" (Docker's profile), "unconfined" or a profile file */
};

/* podman's capabilities, SIGTERM after 10 s, Docker's seccomp profile */
void berth_run_options_init(struct berth_run_options *o);
/* Free the mounts and the env array (their strings are the caller's). */
void berth_run_options_release(struct berth_run_options *o);

/* Run `argv` (NULL: the image's entrypoint and cmd) from `source` in a
 * container in the foreground under ROOT/run/<o->name> and wait for it:
 * `ret` says how it ended. Returns -1 when it could not be started (or
 * waited for), having removed what it made. */
BERTH_MUST_CHECK int berth_run_foreground(const char *root, struct berth_run_options *o,
                                          const char *source, char **argv, struct berth_exit *ret,
                                          berth_error *err);

#endif
