#include "apply.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "cgroup.h"
#include "events.h"
#include "keeper.h"
#include "log.h"
#include "record.h"
#include "run-config.h"
#include "status.h"
#include "store.h"
#include "util.h"

int berth_lock_root(const char *root, bool wait, berth_error *err)
{
    _cleanup_free_ char *path = xasprintf("%s/lock", root);

    if (berth_mkdir_p(root, 0700, err) < 0)
        return -1;
    return berth_lock_file(path, 0600, wait, err);
}

static bool needs_image(const struct berth_plan_item *it)
{
    return it->desired && (it->action == BERTH_ACTION_CREATE ||
                           it->action == BERTH_ACTION_REPLACE || it->action == BERTH_ACTION_START);
}

/* The service and its image's defaults: what the keeper runs. */
static int resolve(const struct berth_plan_item *it, const struct berth_image *img,
                   struct berth_run_config *ret, berth_error *err)
{
    struct berth_run_source src = {.service = it->desired,
                                   .spec_hash = it->hash,
                                   .image_rootfs = img->rootfs,
                                   .image_digest = img->digest,
                                   .image = &img->config};

    return berth_run_config_resolve(&src, ret, err);
}

/* Leftovers of a keeper that was killed: its cgroups (empty: the
 * container died with its keeper) in berth's own subtree. A systemd scope
 * goes away by itself once empty. */
static void remove_stale(const char *root, const char *name)
{
    _cleanup_free_ char *cgroup = berth_cgroup_service_path(root, name);
    _cleanup_free_ char *container = xasprintf("%s/container", cgroup);
    _cleanup_free_ char *keeper = xasprintf("%s/keeper", cgroup);

    berth_cgroup_remove(BERTH_CGROUP_FSROOT, container, 1);
    berth_cgroup_remove(BERTH_CGROUP_FSROOT, keeper, 2);
}

static int write_record(const char *root, const struct berth_plan_item *it,
                        const struct berth_run_config *k, berth_error *err)
{
    _cleanup_free_ char *conf = berth_run_config_json(k, err);
    _cleanup_free_ char *spec = NULL;

    if (!conf)
        return -1;
    spec = berth_service_canonical_json(it->desired);
    struct berth_record_version v = {.container_json = conf, .spec_json = spec, .hash = it->hash};
    return berth_record_write(root, it->name, &v, it->action == BERTH_ACTION_REPLACE, err);
}

/* A keeper alive when apply starts one was left by an earlier berth, killed
 * since: one on its way out (a stop that berth asked for), or one it had
 * spawned and that took the lock first, running the record as it read it
 * then. Either way it goes, once its service is gone. */
static int stop_leftover_keeper(const char *root, const char *name, berth_error *err)
{
    if (!berth_record_keeper_alive(root, name, NULL))
        return 0;
    if (berth_keeper_stop(root, name, err) < 0)
        return berth_error_wrap(err, "stopping the keeper of '%s' that an earlier berth started",
                                name);
    return 0;
}

static int start_keeper(const char *root, const struct berth_plan_item *it, const char *exe,
                        berth_error *err)
{
    if (stop_leftover_keeper(root, it->name, err) < 0)
        return -1;
    remove_stale(root, it->name);
    if (berth_keeper_spawn(root, it->name, exe, NULL, err) == 0)
        return 0;
    if (!berth_record_keeper_alive(root, it->name, NULL))
        return -1;
    /* a keeper spawned by a killed berth took the lock after the check */
    memset(err, 0, sizeof(*err));
    if (stop_leftover_keeper(root, it->name, err) < 0)
        return -1;
    remove_stale(root, it->name);
    return berth_keeper_spawn(root, it->name, exe, NULL, err);
}

/* A removed service's log outlives its record: moved to
 * ROOT/removed/NAME@TIME/, pruned after BERTH_REMOVED_LOG_RETENTION. */
static int keep_removed_log(const char *root, const char *name, berth_error *err)
{
    _cleanup_free_ char *svc = berth_record_dir(root, name);
    _cleanup_free_ char *from = berth_record_path(svc, BERTH_RECORD_LOG);
    _cleanup_free_ char *dir = xasprintf("%s/removed", root);
    _cleanup_free_ char *to = xasprintf("%s/%s@%lld", dir, name, (long long)time(NULL));

    if (access(from, F_OK) < 0)
        return 0;
    if (berth_mkdir_p(dir, 0700, err) < 0)
        return -1;
    /* removed twice within a second */
    if (berth_rm_rf(to, err) < 0)
        return berth_error_wrap(err, "keeping the log of '%s'", name);
    if (rename(from, to) < 0)
        return berth_error_set(err, errno, "keeping the log of '%s' in '%s'", name, to);
    /* its history goes with it (events.h) */
    return berth_events_move(svc, to, err);
}

/* NAME@TIME: the removal time of NAME, or -1 for another name */
static int64_t removed_at(const char *entry, const char *name)
{
    const char *at = strrchr(entry, '@');

    if (!at ||
        (name && ((size_t)(at - entry) != strlen(name) || strncmp(entry, name, strlen(name)))))
        return -1;
    return strtoll(at + 1, NULL, 10);
}

void berth_apply_prune_removed_logs(const char *root, int64_t max_age_s)
{
    _cleanup_free_ char *dir = xasprintf("%s/removed", root);
    int64_t now = (int64_t)time(NULL);
    DIR *d = opendir(dir);
    struct dirent *de;

    if (!d)
        return;
    while ((de = readdir(d))) {
        int64_t t = removed_at(de->d_name, NULL);
        if (de->d_name[0] == '.' || t < 0 || (max_age_s && now - t < max_age_s))
            continue;
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, de->d_name);
        berth_error e = BERTH_ERROR_INIT;
        if (berth_rm_rf(p, &e) < 0)
            berth_log(BERTH_LOG_WARN, "%s", e.msg);
    }
    closedir(d);
}

char *berth_removed_log_dir(const char *root, const char *name, int64_t *ret_removed_at)
{
    _cleanup_free_ char *dir = xasprintf("%s/removed", root);
    DIR *d = opendir(dir);
    struct dirent *de;
    char *best = NULL;
    int64_t best_t = -1;

    if (!d)
        return NULL;
    while ((de = readdir(d))) {
        int64_t t = removed_at(de->d_name, name);
        if (t > best_t) {
            free(best);
            best = xasprintf("%s/%s", dir, de->d_name);
            best_t = t;
        }
    }
    closedir(d);
    if (ret_removed_at)
        *ret_removed_at = best_t;
    return best;
}

int berth_service_history_dir(const char *root, const char *name, char **ret_dir,
                              int64_t *ret_removed_at, berth_error *err)
{
    char *dir = berth_record_dir(root, name);

    *ret_removed_at = 0;
    if (access(dir, F_OK) < 0) {
        free(dir);
        dir = berth_removed_log_dir(root, name, ret_removed_at);
    }
    if (!dir) {
        berth_error_set(err, 0, "no service '%s' under '%s'", name, root);
        err->code = ENOENT;
        return -1;
    }
    *ret_dir = dir;
    return 0;
}

/* What apply does to a service, in its history (events.h), before it does
 * it: so that the keeper's stop that follows has its reason. */
static void record_action(const char *dir, const struct berth_plan_item *it)
{
    static const char *const what[] = {
        [BERTH_ACTION_CREATE] = "created by apply",
        [BERTH_ACTION_REPLACE] = "replaced by apply: the file asks for a new spec",
        [BERTH_ACTION_REMOVE] = "removed by apply: the file no longer has it",
        [BERTH_ACTION_START] = "started by apply",
        [BERTH_ACTION_STOP] = "stopped by apply: the file disables it",
    };
    const char *msg = what[it->action < ARRAY_SIZE(what) ? it->action : 0];

    if (it->action == BERTH_ACTION_START && it->orphaned)
        msg = "started by apply: its keeper is gone, a new one adopts its container";
    if (it->action >= ARRAY_SIZE(what) || !what[it->action])
        return;
    if (access(dir, F_OK) < 0)
        return;
    struct berth_event ev = {
        .restarts = -1,
        .cause = (char *)"apply",
        .action = (char *)berth_action_name(it->action),
        .message = (char *)msg,
        .spec = it->hash[0] ? (char *)it->hash : NULL,
        .from = (char *)it->state,
        .to = it->action == BERTH_ACTION_REMOVE ? (char *)"removed" : NULL,
    };
    berth_event_record_quiet(dir, &ev);
}

static int act(const char *root, const struct berth_plan_item *it, const struct berth_image *img,
               const struct berth_apply_options *opt, berth_error *err)
{
    const char *exe = opt->exe;
    _cleanup_free_ char *dir = berth_record_dir(root, it->name);
    struct berth_run_config k = {0};
    int r;

    if (it->action != BERTH_ACTION_CREATE && it->action != BERTH_ACTION_REPLACE)
        record_action(dir, it);
    switch (it->action) {
    case BERTH_ACTION_REMOVE:
        if (berth_keeper_stop(root, it->name, err) < 0)
            return -1;
        remove_stale(root, it->name);
        if (!opt->purge && keep_removed_log(root, it->name, err) < 0)
            return -1;
        return berth_rm_rf(dir, err);
    case BERTH_ACTION_STOP:
        return berth_keeper_stop(root, it->name, err);
    case BERTH_ACTION_START:
        return start_keeper(root, it, exe, err);
    case BERTH_ACTION_CREATE:
    case BERTH_ACTION_REPLACE:
        break;
    default:
        return 0;
    }
    /* everything that can be checked before the running version is
     * stopped is (the user, the command): a service that cannot run leaves
     * the old one running and no record behind */
    if (resolve(it, img, &k, err) < 0)
        return -1;
    if (it->action == BERTH_ACTION_REPLACE) {
        record_action(dir, it);
        /* a new spec starts from a clean writable layer */
        if (berth_keeper_stop(root, it->name, err) < 0 ||
            berth_container_layer_remove(dir, err) < 0) {
            berth_run_config_release(&k);
            return -1;
        }
    }
    r = write_record(root, it, &k, err);
    berth_run_config_release(&k);
    if (r < 0)
        return -1;
    if (it->action == BERTH_ACTION_CREATE)
        record_action(dir, it);
    return it->desired->enabled ? start_keeper(root, it, exe, err) : 0;
}

void berth_apply_forget_rejections(const char *root, const struct berth_plan *plan)
{
    for (size_t i = 0; i < plan->n; i++) {
        if (plan->items[i].forget_rejection)
            berth_record_forget_rejection(root, plan->items[i].name);
    }
}

size_t berth_apply_plan(const char *root, const struct berth_plan *plan,
                        const struct berth_apply_options *opt)
{
    struct berth_image_ref *refs = xcalloc(plan->n, sizeof(*refs));
    struct berth_image *imgs = xcalloc(plan->n, sizeof(*imgs));
    berth_error *errs = xcalloc(plan->n, sizeof(*errs));
    size_t *which = xcalloc(plan->n, sizeof(size_t));
    const char ***urls = xcalloc(plan->n, sizeof(*urls));
    size_t nrefs = 0, failed = 0;

    /* 1. every image first (invariant 3: fetch before you stop) */
    for (size_t i = 0; i < plan->n; i++) {
        const struct berth_plan_item *it = &plan->items[i];
        which[i] = SIZE_MAX;
        if (!needs_image(it))
            continue;
        const struct berth_image_spec *im = &it->desired->image;
        size_t j;
        for (j = 0; j < nrefs && strcmp(refs[j].digest, im->digest); j++)
            ;
        which[i] = j;
        if (j < nrefs)
            continue;
        urls[j] = xcalloc(im->nmirrors + 1, sizeof(char *));
        urls[j][0] = im->url;
        for (size_t m = 0; m < im->nmirrors; m++)
            urls[j][m + 1] = im->mirrors[m];
        refs[j] = (struct berth_image_ref){
            .urls = urls[j],
            .nurls = im->nmirrors + 1,
            .digest = im->digest,
            .format = im->format,
            .signature_url = im->signature_url,
            .public_key = im->signature_public_key,
        };
        nrefs++;
    }
    if (nrefs)
        berth_store_ensure_images(root, refs, nrefs, opt->fetch, imgs, errs);
    berth_apply_forget_rejections(root, plan);
    berth_apply_prune_removed_logs(root, opt->purge ? 0 : BERTH_REMOVED_LOG_RETENTION);

    /* 2. act, each service on its own */
    for (size_t i = 0; i < plan->n; i++) {
        const struct berth_plan_item *it = &plan->items[i];
        berth_error err = BERTH_ERROR_INIT;
        int rc;

        if (it->action == BERTH_ACTION_UNCHANGED)
            continue;
        if (which[i] != SIZE_MAX && errs[which[i]].msg[0]) {
            err = errs[which[i]];
            rc = -1;
        } else {
            rc = act(root, it, which[i] != SIZE_MAX ? &imgs[which[i]] : NULL, opt, &err);
        }
        if (rc < 0)
            failed++;
        if (opt->report)
            opt->report(opt->ud, it, rc, err.msg);
    }
    for (size_t j = 0; j < nrefs; j++) {
        if (!errs[j].msg[0])
            berth_image_release(&imgs[j]);
        free(urls[j]);
    }
    free(urls);
    free(which);
    free(errs);
    free(imgs);
    free(refs);
    return failed;
}

/* The rollback in the service's history, before the stop it causes. */
static void record_rollback(const char *root, const char *name, const char *why)
{
    _cleanup_free_ char *dir = berth_record_dir(root, name);
    _cleanup_free_ char *msg = NULL;
    char rejected[65], prev[65];
    berth_error e = BERTH_ERROR_INIT;
    struct berth_status st;
    bool has_st = berth_status_read(root, name, &st, &e) == 0;
    bool has_rejected = berth_record_read_hash(dir, BERTH_RECORD_HASH, rejected);
    bool has_prev = berth_record_read_hash(dir, BERTH_RECORD_PREVIOUS_HASH, prev);

    msg = xasprintf("'%s' %s after its replacement: rolled back to its previous version; the new "
                    "spec is not tried again until the file changes",
                    name, why ? why : "failed");
    struct berth_event ev = {
        .restarts = has_st ? (int)st.restarts : -1,
        .cause = (char *)"rollback",
        .from = has_st ? (char *)berth_state_name(st.state) : NULL,
        .to = (char *)"rolled-back",
        .message = msg,
        .spec = has_prev ? prev : NULL,
        .rejected = has_rejected ? rejected : NULL,
    };
    berth_event_record_quiet(dir, &ev);
    if (has_st)
        berth_status_release(&st);
}

int berth_apply_rollback(const char *root, const char *name, const char *why, const char *exe,
                         berth_error *err)
{
    if (berth_record_check_previous(root, name, err) < 0)
        return -1;
    record_rollback(root, name, why);
    if (berth_keeper_stop(root, name, err) < 0)
        return -1;
    if (berth_record_restore_previous(root, name, err) < 0)
        return berth_error_wrap(err, "rolling '%s' back", name);
    remove_stale(root, name);
    return berth_keeper_spawn(root, name, exe, NULL, err);
}

int berth_apply_write_status_summary(const char *root, berth_error *err)
{
    struct berth_status *v;
    size_t n;
    _cleanup_free_ char *path = xasprintf("%s/status.json", root);
    _cleanup_free_ char *text = NULL;

    if (berth_status_list(root, &v, &n, err) < 0)
        return -1;
    text = berth_status_json(v, n);
    berth_status_list_free(v, n);
    return berth_write_file_atomic(path, text, strlen(text), 0644, err);
}
