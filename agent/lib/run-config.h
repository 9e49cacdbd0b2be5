/* The resolved run configuration of a container: everything its process
 * runs with, the image's defaults merged in, in one struct.
 *
 *   berth_run_config_resolve()  a service of the file (spec.h) or the flags
 *                               of `berth run`, plus the image's config: the
 *                               only place where the image's defaults
 *                               (entrypoint, cmd, env, workdir, user, stop
 *                               signal) are merged
 *   berth_run_config_json()     container.json (record.h), written by apply
 *   berth_run_config_read()     and read back by the keeper and `berth exec`
 *
 * The container (container.h), `berth exec` and health checks (exec.h)
 * point at it rather than copy it. */
#ifndef BERTH_RUN_CONFIG_H
#define BERTH_RUN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cgroup.h"
#include "error.h"
#include "run-types.h"

struct berth_user;

struct berth_image_config;
struct berth_seccomp_profile;
struct berth_service;

struct berth_run_config {
    char *name;         /* the service's, or `berth run --name` */
    char *image_digest; /* "sha256:<hex>"; NULL: a rootfs directory (`berth run DIR`) */
    char *spec_hash;    /* of the canonical spec this came from; NULL: `berth run` */
    char *image_rootfs; /* the unpacked image (the container's read-only lower layer) */
    char **argv;        /* NULL-terminated, not empty */
    char **env;         /* NULL-terminated KEY=VALUE, complete */
    char *workdir;      /* NULL: "/" */
    char *user;         /* uid[:gid] or names in the image; NULL: root */
    char *hostname;     /* NULL: the host's */
    bool network_none;
    bool readonly;
    struct berth_mount *mounts;
    size_t nmounts;
    struct berth_limits limits;
    uint64_t caps; /* capability mask, see caps.h */
    /* "default" (Docker's profile; also when container.json has no
     * "seccomp", as those written before berth knew it), "unconfined", or
     * the path of a profile file, whose text was read and checked when the
     * configuration was resolved: */
    char *seccomp;
    char *seccomp_profile; /* the JSON of that file (in container.json as an object) */
    int stop_signal;
    uint64_t stop_timeout_ms;
    /* A service's supervision (the keeper's); `berth run` has none. */
    enum berth_restart restart;
    uint64_t backoff_initial_ms, backoff_max_ms, backoff_reset_ms;
    uint64_t log_max_size;
    unsigned log_max_files;
    char **health_argv; /* NULL: no health check */
    uint64_t health_interval_ms, health_timeout_ms;
    unsigned health_retries;
    bool health_restart; /* restart the service when it turns unhealthy */
    /* Not in container.json: the profile `seccomp` names, parsed by resolve
     * and read: &berth_seccomp_default, NULL (unconfined) or `profile_owned`. */
    const struct berth_seccomp_profile *profile;
    struct berth_seccomp_profile *profile_owned;
};

/* The flags of `berth run`: what they leave open (NULL, not set) the image
 * gives. */
struct berth_run_options {
    const char *name; /* the container's (its run directory, cgroup, messages) */
    char **command;   /* NULL-terminated, after IMAGE; NULL: the image's entrypoint + cmd */
    const char **env; /* -e as given: KEY=VALUE, or KEY to copy ours */
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

/* What a configuration is resolved from: a service of the file (with the
 * hash of its canonical spec) or the flags of `berth run`, and the image
 * (its config NULL for a rootfs directory, which has none). */
struct berth_run_source {
    const struct berth_service *service;
    const char *spec_hash;
    const struct berth_run_options *flags; /* when service is NULL */
    const char *image_name;                /* as `berth run` was given it, for messages */
    const char *image_rootfs;
    const char *image_digest;               /* "<hex>" of the store, or NULL */
    const struct berth_image_config *image; /* its defaults, or NULL */
    struct berth_user *ret_user;            /* the resolved user, kept here; NULL: not kept */
};

/* The configuration `src` asks for, what it leaves open filled from the
 * image: the command (the image's entrypoint + cmd unless given; none at
 * all is an error), the user (which must exist in the image: said now,
 * not at every start), the working directory, and the environment: PATH,
 * HOSTNAME and HOME (the user's) by default, then the image's Env, then
 * the service's env or `-e` in order. `berth run` also takes the image's
 * stop signal unless --stop-signal is given; a service's is the file's.
 * A seccomp profile file is read and parsed now. Release with
 * berth_run_config_release(). */
BERTH_MUST_CHECK int berth_run_config_resolve(const struct berth_run_source *src,
                                              struct berth_run_config *ret, berth_error *err);

/* The capabilities a service runs with: podman's default set, plus its
 * capabilities.add, minus its capabilities.drop (ALL: every one, none). */
uint64_t berth_run_config_caps(const struct berth_service *svc);

/* container.json: the text (malloc'ed; NULL on failure), and read back
 * (every container.json berth has written reads, `profile` parsed). */
char *berth_run_config_json(const struct berth_run_config *c, berth_error *err);
BERTH_MUST_CHECK int berth_run_config_read(const char *path, struct berth_run_config *ret,
                                           berth_error *err);

void berth_run_config_release(struct berth_run_config *c);

#endif
