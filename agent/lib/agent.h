/* berth agent: stay running and keep the host in the state the file
 * describes. One epoll loop over
 *   inotify    the file's directory (edits in place, rename-replace as
 *              Puppet and editors do, delete + create), and the status files
 *              of services that were just replaced
 *   signalfd   SIGHUP: reconcile now; SIGTERM/SIGINT: exit (services keep
 *              running under their keepers)
 *   timerfd    the debounce after an edit, the periodic resync, the end of
 *              each replaced service's settle window
 * Idle, it wakes for nothing but the resync timer.
 *
 * After a replacement the agent watches the service for a settle window:
 * with a health check, until it reports healthy; without, for `settle_ms`
 * of staying up. A service that crash-loops, stops or turns unhealthy in
 * that window is rolled back to its previous version (apply.h), and its
 * spec is not tried again until the file changes.
 */
#ifndef BERTH_AGENT_H
#define BERTH_AGENT_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "fetch.h"

struct berth_agent_options {
    const char *root;
    const char *file;
    const char *exe;           /* what keepers run: "/proc/self/exe" */
    uint64_t resync_ms;        /* periodic reconcile, default 60 s */
    uint64_t debounce_ms;      /* after a change of the file, default 250 ms */
    uint64_t settle_ms;        /* settle window without a health check, default 10 s */
    uint64_t health_settle_ms; /* the longest wait for healthy, default 120 s */
    const struct berth_fetch_options *fetch;
};

void berth_agent_options_init(struct berth_agent_options *o);

/* Run until SIGTERM or SIGINT. Fails at once when another agent serves the
 * same root. */
BERTH_MUST_CHECK int berth_agent_run(const struct berth_agent_options *o, berth_error *err);

/* Whether an agent serves `root` now: one holds ROOT/agent.lock (a flock,
 * held for the agent's whole life, so a killed agent holds none). Found in
 * /proc/locks, without touching the lock, so that asking never makes an
 * agent that starts at that moment fail. Returns 1 (*ret_pid: the holder,
 * 0 when its pid is not visible here), 0 when none runs, < 0 on errors. */
BERTH_MUST_CHECK int berth_agent_alive(const char *root, pid_t *ret_pid, berth_error *err);

/* What the agent of `root` says and whether it runs: ROOT/agent.json as it
 * last wrote it ("pid", "file", "file_valid", "invalid_since", "errors",
 * "started_at", "converges", "converge_failures", "last_converge"), with
 * "running" (berth_agent_alive: true, false, or null when that cannot be
 * told) and "running_pid" (null when none runs or its pid is not visible
 * here); without an agent.json, only those two. A new reference. */
json_t *berth_agent_state(const char *root);

#endif
