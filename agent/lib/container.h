/* The container runtime: one service process in new pid, mount, uts and ipc
 * namespaces (and a new network namespace for network "none"), on an
 * overlayfs over a shared read-only image, under berth's own init as pid 1.
 *
 *   berth_container_start()  clone, set up, exec; returns once the service's
 *                            exec has succeeded or with the reason it failed
 *   berth_container_wait()   forward signals, stop on request, reap
 *   berth_container_release() remove the per-run layer and the cgroup
 */
#ifndef BERTH_CONTAINER_H
#define BERTH_CONTAINER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cgroup.h"
#include "error.h"
#include "run-config.h"
#include "seccomp-profile.h"

struct berth_container;
struct berth_user;

struct berth_container_config {
    /* What runs and how (run-config.h): the image's rootfs (the read-only
     * lower layer), the command (argv[0] looked up in the image's PATH), its
     * complete environment, working directory, hostname, network, mounts,
     * limits, capabilities, seccomp profile (its filter is built for the
     * capabilities once, before the clone), stop signal and timeout. */
    const struct berth_run_config *run;
    const struct berth_user *user; /* run->user found in the image */
    /* The container's cgroup, relative to the root of the hierarchy (of
     * each v1 controller): created with the limits, removed at release.
     * NULL: the container stays in the caller's cgroup (limits need one). */
    const char *cgroup;
    const char *rundir;        /* per-run directory: upper/, work/ and rootfs/ go here */
    const char *seccomp_cache; /* berth_seccomp_build()'s cache_dir, NULL: none */
    const char *cgroup_root;   /* NULL: /sys/fs/cgroup */
    /* With redirect_stdio, the service gets these as fds 0, 1 and 2 instead
     * of the caller's (the keeper passes /dev/null and its log pipe). */
    bool redirect_stdio;
    int stdio[3];
    /* Keep upper/ and work/ when the container is released, so that a
     * restarted service finds the files it wrote (a keeper's service). */
    bool keep_layer;
    /* The container may outlive its caller (handover.h): the init keeps
     * `handover_logr` (the read end of the pipe in stdio[1] and stdio[2])
     * and a report socket, no longer dies with the caller once set up, and
     * reports the service's exit before it exits itself. `on_clone` is
     * called between the clone and the set-up, with the init's pid known
     * (to record it where a successor finds it). */
    bool handover;
    int handover_logr;
    void (*on_clone)(const struct berth_container *c, void *ud);
    void *on_clone_ud;
    /* The writable layer in memory: a tmpfs mounted on upper/ inside the
     * container's mount namespace, so it vanishes with the container, even
     * when berth is killed, and costs no disk writes (`berth run`). Its
     * pages count against the memory limit. */
    bool memory_layer;
    /* set by berth_container_start: mount the cgroup namespace's cgroup2
     * (the container's own cgroup) read-only on /sys/fs/cgroup */
    bool cgroup_v2;
    /* set by berth_container_start: the filter built from `seccomp` */
    const struct berth_seccomp_bpf *seccomp_bpf;
};

struct berth_container {
    pid_t pid; /* the container's init, in our pid namespace */
    int pidfd;
    /* With handover: our end of the init's report socket (-1: none), and
     * whether the container was adopted from another keeper (not our
     * child: its exit is known only from the init's report). */
    int statusfd;
    bool adopted;
    bool has_report;
    int report_code;
    char *rundir;
    bool keep_layer;
    struct berth_cgroup cgroup;
    bool has_cgroup;
    /* the cgroup's OOM kills before the container ran (0 for an adopted
     * one: those since its cgroup was made) */
    uint64_t oom_kills0;
    int stop_signal;
    uint64_t stop_timeout_ms;
};

struct berth_exit {
    int code;            /* the service's exit code, 128+N for death by signal N */
    bool oom_killed;     /* the cgroup's OOM killer killed a process while it ran */
    bool stop_timed_out; /* it ignored the stop signal and was killed */
};

/* The signals berth forwards: to the service (through its init), and from
 * `berth exec` to its command. */
extern const int berth_forwarded_signals[];
extern const size_t berth_n_forwarded_signals;

/* Remove the writable layer (upper/ and work/) of run directory `rundir`:
 * the next start begins from the image. */
BERTH_MUST_CHECK int berth_container_layer_remove(const char *rundir, berth_error *err);

/* Start the container. The caller must have blocked the forwarded signals
 * and SIGCHLD (berth_container_wait() reads them with a signalfd).
 * On failure nothing is left behind and `err` says which step failed. */
BERTH_MUST_CHECK int berth_container_start(const struct berth_container_config *cfg,
                                           struct berth_container *ret, berth_error *err);

/* Wait for the container to exit. Received SIGTERM/SIGINT start a stop
 * (the stop signal, then SIGKILL after the stop timeout); the other
 * forwarded signals pass through to the service. */
BERTH_MUST_CHECK int berth_container_wait(struct berth_container *c, struct berth_exit *ret,
                                          berth_error *err);

/* Collect the exit of a container whose pidfd became readable (for
 * callers that poll the pidfd in their own loop). An adopted container's
 * code is its init's report, or 128+SIGKILL when the init died without
 * one (killed). */
BERTH_MUST_CHECK int berth_container_reap(struct berth_container *c, struct berth_exit *ret,
                                          berth_error *err);

/* Send `sig` to the container's init (through its pidfd); used by wait and
 * by supervisors that drive their own loop. err->code is ESRCH when the
 * init has exited already (its exit is then waiting to be reaped). */
BERTH_MUST_CHECK int berth_container_kill(const struct berth_container *c, int sig,
                                          berth_error *err);

/* The service's main process (the init's child that runs the service's
 * command), in the caller's pid namespace; 0 when it is gone. */
pid_t berth_container_service_pid(pid_t init);

/* Remove the cgroup and the per-run directories (rootfs/, and upper/ and
 * work/ unless keep_layer), not the run directory itself. Safe to call
 * twice. */
BERTH_MUST_CHECK int berth_container_release(struct berth_container *c, berth_error *err);

/* Read the init's report when c->statusfd is readable (handover.h):
 * false once nothing more is to come (the report is in, or the init's
 * end is closed): stop polling it then. */
bool berth_container_on_report(struct berth_container *c);

#endif
