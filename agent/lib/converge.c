#include "converge.h"
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "apply.h"
#include "util.h"

/* ROOT/lock, waiting for it when another converge holds it */
static int lock_root(const struct berth_converge_options *o, berth_error *err)
{
    int fd = berth_lock_root(o->root, false, err);

    if (fd >= 0 || err->code != EWOULDBLOCK)
        return fd;
    if (o->waiting)
        o->waiting(o->ud);
    berth_error_clear(err);
    return berth_lock_root(o->root, true, err);
}

static int plan_and_apply(const struct berth_spec *spec, const struct berth_converge_options *o,
                          struct berth_converge *ret, berth_error *err)
{
    if (berth_plan_compute(o->root, spec, &ret->plan, err) < 0)
        return -1;
    ret->planned = true;
    if (o->want_plan && strcmp(o->want_plan, ret->plan.id))
        return berth_error_set(err, ESTALE,
                               "the plan changed since it was reviewed: reviewed %s, now %s; "
                               "nothing was changed",
                               o->want_plan, ret->plan.id);
    if (o->hold_failed)
        ret->held = berth_plan_hold_failed(&ret->plan);
    if (o->planned)
        o->planned(o->ud, &ret->plan);
    struct berth_apply_options opt = {
        .exe = o->exe, .fetch = o->fetch, .report = o->report, .ud = o->ud, .purge = o->purge};
    ret->failed = berth_apply_plan(o->root, &ret->plan, &opt);
    if (berth_apply_write_status_summary(o->root, &ret->summary_error) < 0) {
        /* a warning in ret: every service converged as reported */
    }
    return 0;
}

int berth_converge_once(const struct berth_spec *spec, const struct berth_converge_options *o,
                        struct berth_converge *ret, berth_error *err)
{
    *ret = (struct berth_converge){.summary_error = BERTH_ERROR_INIT};
    _cleanup_close_ int lock = lock_root(o, err);

    if (lock < 0)
        return -1;
    ret->locked = true;
    return plan_and_apply(spec, o, ret, err);
}

void berth_converge_release(struct berth_converge *c)
{
    if (c->planned)
        berth_plan_release(&c->plan);
    c->planned = false;
}
