/* Converging once: what `berth apply` and the agent's converge child both
 * do with a parsed file. Take ROOT/lock (apply.h: concurrent converges are
 * serialised), compute the plan (plan.h), apply it (apply.h), write the
 * status summary (ROOT/status.json), let the lock go. The callers parse the
 * file before and report after; this module never prints. */
#ifndef BERTH_CONVERGE_H
#define BERTH_CONVERGE_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "fetch.h"
#include "plan.h"

struct berth_converge_options {
    const char *root;
    const char *exe; /* the berth binary the keepers run ("/proc/self/exe") */
    const struct berth_fetch_options *fetch;
    /* apply only if the plan's id is this one (`apply --plan`); otherwise
     * change nothing and fail with ESTALE, the plan in ret->plan */
    const char *want_plan;
    /* leave alone the services whose spec failed to start for a set-up
     * reason (berth_plan_hold_failed): the agent's periodic resync */
    bool hold_failed;
    bool purge; /* berth_apply_options.purge */
    /* called when another apply or the agent holds ROOT/lock, before
     * waiting for it */
    void (*waiting)(void *ud);
    /* called with the plan once it is computed and before anything is done */
    void (*planned)(void *ud, const struct berth_plan *plan);
    /* called once per item acted on (berth_apply_options.report) */
    void (*report)(void *ud, const struct berth_plan_item *it, int rc, const char *msg);
    void *ud;
};

struct berth_converge {
    bool locked;  /* ROOT/lock was taken: a failure came after */
    bool planned; /* `plan` holds the plan (also one not wanted) */
    struct berth_plan plan;
    size_t failed; /* services whose action failed */
    size_t held;   /* services held by hold_failed */
    /* ROOT/status.json could not be written (the converge went on): a
     * warning, "" when it was written */
    berth_error summary_error;
};

/* Converge ROOT once to `spec`. Returns 0 when the plan was carried out
 * (some services may have failed: ret->failed), -1 when the lock could
 * not be taken, the plan not computed, or it was not the one wanted (err
 * says which). Release *ret with berth_converge_release() either way. */
BERTH_MUST_CHECK int berth_converge_once(const struct berth_spec *spec,
                                         const struct berth_converge_options *o,
                                         struct berth_converge *ret, berth_error *err);
void berth_converge_release(struct berth_converge *c);

#endif
