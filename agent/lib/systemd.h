/* systemd, where it runs the host: a transient scope per service, and the
 * agent's readiness. libsystemd is opened with dlopen() when first needed
 * (as libcurl is, see curl-dl.c), so `berth run` and hosts without
 * systemd never load it.
 *
 * Why transient scopes and not a delegated subtree of the agent's unit: a
 * service must not belong to whichever unit started it. `berth apply`
 * runs from puppet.service, a timer's oneshot or a shell; the agent
 * restarts; each of them may be stopped, and systemd then kills every
 * process of that unit's cgroup. A scope of its own in berth.slice makes
 * each service a unit that only berth stops: `systemctl status` and
 * `systemd-cgls` show it under berth.slice, and its TasksMax and limits
 * are its own. The keeper asks for the scope for itself (StartTransientUnit
 * with Delegate=yes) before it starts the container, then keeps the scope's
 * cgroup as a subtree of its own: ".../berth-<name>.scope/keeper" for
 * itself and ".../container" for the container (cgroup.h).
 */
#ifndef BERTH_SYSTEMD_H
#define BERTH_SYSTEMD_H

#include <stdbool.h>

#include "error.h"

/* The slice that holds the services' scopes, and the unit that stops
 * them at shutdown (packaging/berth-shutdown.service.in): each scope is
 * ordered before it, so that its ExecStop stops every service with its
 * stop signal and timeout before systemd kills what is left. */
#define BERTH_SYSTEMD_SLICE         "berth.slice"
#define BERTH_SYSTEMD_SHUTDOWN_UNIT "berth-shutdown.service"

/* Whether systemd is the init system (sd_booted(): /run/systemd/system). */
bool berth_systemd_booted(void);

/* Move the calling process into a new transient scope `unit` (in
 * berth.slice, delegated, TasksMax=infinity) and wait for systemd to have
 * done it. A scope of that name that is still going away (the previous
 * keeper's) is waited for, a few seconds at most. */
BERTH_MUST_CHECK int berth_systemd_start_scope(const char *unit, const char *description,
                                               berth_error *err);

/* sd_notify(): "READY=1", "STOPPING=1", "STATUS=..."; nothing happens
 * when the caller was not started by systemd with NOTIFY_SOCKET. */
void berth_systemd_notify(const char *state);

#endif
