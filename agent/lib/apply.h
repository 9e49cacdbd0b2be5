/* Carrying out a plan (plan.h): fetch and verify every image the plan
 * needs first, all at once, then act service by service: stop the old
 * keeper and start a new one for a replacement, spawn keepers for
 * creations and starts, stop keepers for stops and removals. Services fail
 * independently: a bad image or a failing start affects only its service,
 * whose running version is left alone. */
#ifndef BERTH_APPLY_H
#define BERTH_APPLY_H

#include "fetch.h"
#include "plan.h"

struct berth_apply_options {
    const char *exe; /* the berth binary the keepers run ("/proc/self/exe") */
    const struct berth_fetch_options *fetch;
    /* called once per item acted on: rc 0 done, -1 failed with `msg` */
    void (*report)(void *ud, const struct berth_plan_item *it, int rc, const char *msg);
    void *ud;
    /* removals delete the service's log at once, and every log kept of a
     * service removed before (otherwise kept for BERTH_REMOVED_LOG_RETENTION) */
    bool purge;
};

/* How long the log of a removed service is kept, in ROOT/removed/NAME@TIME/
 * (TIME: unix seconds of the removal); `berth logs NAME` reads the newest. */
#define BERTH_REMOVED_LOG_RETENTION (7 * 24 * 3600)

/* Delete the kept logs of removed services older than `max_age_s`
 * seconds (0: all of them). */
void berth_apply_prune_removed_logs(const char *root, int64_t max_age_s);

/* The newest kept log directory of removed service `name` (malloc'ed) and
 * when it was removed; NULL when there is none. */
char *berth_removed_log_dir(const char *root, const char *name, int64_t *ret_removed_at);

/* Where the history of service `name` (its events and log) is: its record
 * (ROOT/services/NAME, record.h) while it exists, *ret_removed_at 0; else
 * the newest kept log directory of it (berth_removed_log_dir), with when
 * it was removed. Fails with ENOENT, "no service 'NAME' under 'ROOT'", when
 * there is neither. */
BERTH_MUST_CHECK int berth_service_history_dir(const char *root, const char *name, char **ret_dir,
                                               int64_t *ret_removed_at, berth_error *err);

/* Returns how many services failed. */
size_t berth_apply_plan(const char *root, const struct berth_plan *plan,
                        const struct berth_apply_options *opt);

/* Forget the rejection (record.h) of every service whose file no longer asks
 * for the spec it was rolled back from (forget_rejection): it is no longer
 * "rolled-back". berth_apply_plan() does it first; a caller that skips an
 * empty plan calls it itself. */
void berth_apply_forget_rejections(const char *root, const struct berth_plan *plan);

/* Go back to the version the record kept (record.h) after a failed
 * replacement (`why`: "crashed", "turned unhealthy", ... for its history,
 * events.h): stop the new one, mark its spec rejected (the planner does
 * not try it again until the file changes), restore the previous version
 * with a fresh writable layer, start it. */
BERTH_MUST_CHECK int berth_apply_rollback(const char *root, const char *name, const char *why,
                                          const char *exe, berth_error *err);

/* Write ROOT/status.json: every service's status (for the Puppet fact and
 * monitoring), atomically. */
BERTH_MUST_CHECK int berth_apply_write_status_summary(const char *root, berth_error *err);

/* Take ROOT/lock (flock) for apply/agent. With `wait`, block until it is
 * free; otherwise fail with EWOULDBLOCK. Returns the fd to keep open. */
BERTH_MUST_CHECK int berth_lock_root(const char *root, bool wait, berth_error *err);

#endif
