/* The plan: the desired state (a validated spec) against the actual state
 * (the records under ROOT/services plus the live keepers), as one action
 * per service, in name order.
 *
 * A service's identity for change detection is its "shape hash": the hash
 * of its canonical form with `enabled` left out, so that enabling or
 * disabling a service starts or stops it instead of replacing it. The
 * record keeps it (record.h), written last, so a record without it is
 * incomplete (a killed apply) and gets replaced.
 */
#ifndef BERTH_PLAN_H
#define BERTH_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "spec.h"

enum berth_action {
    BERTH_ACTION_CREATE,
    BERTH_ACTION_REPLACE,
    BERTH_ACTION_REMOVE,
    BERTH_ACTION_START,
    BERTH_ACTION_STOP,
    BERTH_ACTION_UNCHANGED,
    BERTH_ACTION_N,
};

/* "create", "replace", ... as in DESIGN.md's `berth diff --json`. */
const char *berth_action_name(enum berth_action a);

struct berth_change {
    char *path;  /* "env.LOG_LEVEL", "image.digest" */
    char *old;   /* canonical JSON text, NULL when added */
    char *new;   /* canonical JSON text, NULL when removed */
    bool secret; /* an env value whose name looks like a secret */
};

struct berth_plan_item {
    char *name;
    enum berth_action action;
    const struct berth_service *desired; /* NULL for remove */
    char hash[65];                       /* desired shape hash, "" for remove */
    bool running;                        /* a keeper runs it now */
    bool orphaned;    /* no keeper, but its container runs on: start adopts it (handover.h) */
    bool rolled_back; /* the desired spec is the one rolled back from */
    /* the record has a spec rolled back from, and the file no longer asks
     * for it: the rollback is over (apply forgets it) */
    bool forget_rejection;
    /* the record's state (status.h); NULL without record */
    const char *state;
    /* start: this very spec failed to start for a set-up reason (a mount,
     * the user, the command...) and stays failed until tried again */
    char *start_error;
    struct berth_change *changes; /* replace: what differs */
    size_t nchanges;
};

struct berth_plan {
    struct berth_plan_item *items;
    size_t n;
    size_t counts[BERTH_ACTION_N];
    char id[13]; /* hash of desired + actual state; see berth_plan_compute */
};

/* Compute the plan of `spec` against ROOT. The id is the first 12 hex
 * digits of a sha256 over every desired service (name, shape hash, enabled)
 * and every record (name, stored hash, whether its keeper runs), so it
 * changes whenever the file changes or a service is started or stopped;
 * a crash-looping service (its keeper runs) does not change it. */
BERTH_MUST_CHECK int berth_plan_compute(const char *root, const struct berth_spec *spec,
                                        struct berth_plan *ret, berth_error *err);
void berth_plan_release(struct berth_plan *plan);

/* Leave alone the services whose spec failed to start for a set-up reason
 * (start_error): their start becomes "unchanged". For a periodic resync,
 * which must not turn a failure in the file, the image or the host's
 * paths into a retry loop. Returns how many were held. */
size_t berth_plan_hold_failed(struct berth_plan *plan);

/* Whether the plan has nothing to do (every item unchanged). */
bool berth_plan_is_noop(const struct berth_plan *plan);

/* The shape hash of a service (see above). */
void berth_service_shape_hash(const struct berth_service *svc, char out[65]);

/* Whether an env variable's name looks like it holds a secret: it
 * contains, in any case, PASSWORD, PASSWD, PASS, SECRET, TOKEN, KEY,
 * CREDENTIAL, AUTH, CERT or PRIVATE. Its values are never printed. */
bool berth_env_name_is_secret(const char *name);

#endif
