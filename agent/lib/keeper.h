/* The keeper: one small process per service, detached from whoever started
 * it (setsid), that owns the service's container for as long as the
 * service should run. Agents and `berth apply` come and go; keepers stay,
 * like runit's runsv or podman's conmon.
 *
 * A keeper works in its service's record (record.h): it runs the record's
 * container (container.json: run-config.h), holds its lock for as long as it lives,
 * listens on its control socket ("stop", "restart", "restart-wait",
 * "status"), writes its status after every transition and its output to
 * its log.
 *
 * The keeper is a small state machine (as s6-supervise; its table is in
 * keeper-fsm.h): states starting, running, backoff, stopping, stopped,
 * failed; events: the container started, failed to start or exited, stop
 * and restart requests, the timer, the health checks. It exits once the
 * service is stopped for good (stop request, or the restart policy says
 * so) or cannot start for a set-up reason (failed), with 0.
 *
 * A keeper that cannot go on (poll() fails, the container's init cannot
 * be reaped) says why in the service's log, records it as "keeper_error"
 * in its status and exits with 1, leaving its container to a successor
 * (handover.h): `berth ps` shows the keeper as gone, and why. A status it
 * cannot write is said in the log; the keeper goes on.
 */
#ifndef BERTH_KEEPER_H
#define BERTH_KEEPER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "container.h"
#include "error.h"
#include "keeper-fsm.h"

/* RLIMIT_NOFILE of a service whose file sets none (podman's for root), or
 * the hard limit this host allows if lower: the keeper's own, which its
 * containers inherit, never whatever the caller of `berth apply` had (a
 * unit's soft 1024). */
#define BERTH_SERVICE_NOFILE 1048576

/* The keeper's main loop; `ready_fd` (or -1) receives one line once the
 * keeper holds its lock, listens and has tried the first start of its
 * container: "ok <pid>", "fail <pid> <why>" (for a set-up reason the
 * service is failed and the keeper has exited, releasing its lock, before
 * it says so; for a shortage it goes on per the restart policy), or
 * "error: <why>" when the keeper cannot run at all.
 * Returns when the service is stopped for good. */
BERTH_MUST_CHECK int berth_keeper_main(const char *root, const char *name, int ready_fd,
                                       berth_error *err);

/* Start a detached keeper for service `name` by executing `exe` (normally
 * "/proc/self/exe") with the verb "keeper"; returns once it holds its lock
 * and its first start of the container is over: -1 with the reason when
 * that start failed (see berth_keeper_main for whether the keeper stays). */
BERTH_MUST_CHECK int berth_keeper_spawn(const char *root, const char *name, const char *exe,
                                        pid_t *ret_pid, berth_error *err);

/* Send a request ("stop", "restart", "status") and read the one-line reply
 * into `reply` (may be NULL). */
BERTH_MUST_CHECK int berth_keeper_request(const char *root, const char *name, const char *request,
                                          char *reply, size_t len, berth_error *err);

/* Ask the keeper to stop its service and wait until the keeper has exited
 * (at most the stop timeout plus a margin). No keeper: nothing to do,
 * unless its container runs on (handover.h): then a new keeper adopts it
 * first. */
BERTH_MUST_CHECK int berth_keeper_stop(const char *root, const char *name, berth_error *err);

/* The same in two halves, to stop several services at once: send the
 * request (*ret_fd is -1 when there is no keeper), then wait on the fd
 * until the keeper has exited; the wait closes the fd. */
BERTH_MUST_CHECK int berth_keeper_stop_begin(const char *root, const char *name, int *ret_fd,
                                             berth_error *err);
BERTH_MUST_CHECK int berth_keeper_stop_wait(int fd, const char *name, berth_error *err);

/* How long the waits above and berth_keeper_stop() take at most: the
 * longest stop timeout anyone sets, and then some. */
#define BERTH_KEEPER_WAIT_MS (15 * 60 * 1000)

/* berth_keeper_stop_wait() until `deadline_ms` (berth_now_ms()'s clock):
 * -1 with ETIMEDOUT when the keeper is still there then (it goes on
 * stopping the service). Closes the fd either way. */
BERTH_MUST_CHECK int berth_keeper_stop_wait_until(int fd, const char *name, uint64_t deadline_ms,
                                                  berth_error *err);

/* Restart the service and wait, for at most timeout_ms, until the new
 * instance runs (its init's pid in *ret_pid): the old one has stopped
 * (its stop signal, then SIGKILL after its stop timeout) and the new one
 * has been started. -1 when the restart did not lead to a running service
 * (with the reason: its start failed, it was stopped meanwhile) or the wait
 * timed out (ETIMEDOUT; the keeper goes on). A service in backoff starts at
 * once. */
BERTH_MUST_CHECK int berth_keeper_restart(const char *root, const char *name, uint64_t timeout_ms,
                                          pid_t *ret_pid, berth_error *err);

#endif
