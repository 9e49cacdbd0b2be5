#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "log.h"
#include "registry.h"
#include "run-config.h"
#include "seccomp-profile.h"
#include "store.h"
#include "user.h"
#include "util.h"

/* ROOT/run/ID, held with a lock for as long as we run; a directory left
 * by a berth that was killed is taken over. */
static int make_rundir(const char *root, const char *id, char **ret_dir, int *ret_lockfd,
                       berth_error *err)
{
    _cleanup_free_ char *runroot = xasprintf("%s/run", root);
    _cleanup_free_ char *dir = xasprintf("%s/%s", runroot, id);
    _cleanup_free_ char *lock = xasprintf("%s.lock", dir);
    _cleanup_close_ int fd = -1;

    if (berth_mkdir_p(runroot, 0700, err) < 0)
        return -1;
    fd = berth_lock_file(lock, 0600, false, err);
    if (fd < 0 && err->code == EWOULDBLOCK)
        return berth_error_set(err, EBUSY, "a container named '%s' is already running", id);
    if (fd < 0)
        return -1;
    if (berth_rm_rf(dir, err) < 0 || (mkdir(dir, 0700) < 0 && errno != EEXIST))
        return berth_error_set(err, errno, "creating '%s'", dir);
    *ret_dir = TAKE_PTR(dir);
    *ret_lockfd = TAKE_FD(fd);
    return 0;
}

/* An oci:// reference: pulled (unless the store has it) by its digest, or
 * its tag's for this platform. */
static int pull_image(const char *root, const char *url, struct berth_image *img, berth_error *err)
{
    struct berth_fetch_options opt;
    struct berth_registry_ref rr;
    char hex[65];

    berth_fetch_options_init(&opt);
    if (berth_registry_ref_parse(url, &rr, err) < 0)
        return -1;
    bool pinned = rr.digest != NULL;
    if (pinned)
        memcpy(hex, rr.digest + 7, 65);
    berth_registry_ref_release(&rr);
    if (!pinned && berth_registry_resolve(url, false, &opt, hex, err) < 0)
        return -1;
    _cleanup_free_ char *digest = xasprintf("sha256:%s", hex);
    const char *urls[] = {url};
    struct berth_image_ref ref = {
        .urls = urls, .nurls = 1, .digest = digest, .format = BERTH_FORMAT_OCI};
    return berth_store_ensure_image(root, &ref, &opt, img, err);
}

/* The rootfs `source` names: a rootfs directory as it is; every other kind
 * of image through the store, its config (in `img`) giving the defaults. */
static int resolve_image(const char *root, const char *source, char **ret, struct berth_image *img,
                         bool *have_img, berth_error *err)
{
    struct stat st;
    _cleanup_free_ char *marker = xasprintf("%s/oci-layout", source);

    if (!strncmp(source, "sha256:", 7)) {
        if (berth_store_load_image(root, source + 7, img, err) < 0) {
            if (err->code == ENOENT)
                berth_error_set(err, ENOENT,
                                "image '%s' is not in the store under '%s' (berth fetch it "
                                "first; berth images lists the store)",
                                source, root);
            return -1;
        }
    } else if (berth_registry_is_url(source)) {
        if (pull_image(root, source, img, err) < 0)
            return -1;
    } else if (stat(source, &st) < 0) {
        return berth_error_set(err, errno, "image '%s'", source);
    } else if (S_ISDIR(st.st_mode) && access(marker, F_OK) < 0) {
        char *real = realpath(source, NULL);
        if (!real)
            return berth_error_set(err, errno, "rootfs '%s'", source);
        *ret = real;
        return 0;
    } else if (berth_store_import(root, source, img, err) < 0) {
        return -1;
    }
    *have_img = true;
    *ret = xstrdup(img->rootfs);
    return 0;
}

/* What a run holds until it is over. */
struct run {
    char *rootfs;
    struct berth_image img; /* when `have_img`: its config gives the defaults */
    bool have_img;
    struct berth_run_config cfg;
    struct berth_user user;
    char *rundir;
    int lockfd;
    char *seccomp_cache;
    char *cgroup;
};

static void run_release(struct run *r)
{
    if (r->rundir) {
        berth_error ign = BERTH_ERROR_INIT;
        _cleanup_free_ char *lock = xasprintf("%s.lock", r->rundir);
        if (berth_rm_rf(r->rundir, &ign) < 0)
            berth_log(BERTH_LOG_WARN, "%s", ign.msg);
        unlink(lock);
        free(r->rundir);
    }
    if (r->lockfd >= 0)
        close(r->lockfd);
    if (r->have_img)
        berth_image_release(&r->img);
    free(r->rootfs);
    berth_run_config_release(&r->cfg);
    berth_user_release(&r->user);
    free(r->seccomp_cache);
    free(r->cgroup);
}

/* Everything the container needs: the image, the flags resolved against
 * its config, the user, the run directory, the cgroup. */
static int prepare(const char *root, struct berth_run_options *o, const char *source, struct run *r,
                   berth_error *err)
{
    if (resolve_image(root, source, &r->rootfs, &r->img, &r->have_img, err) < 0)
        return -1;
    struct berth_run_source src = {.flags = o,
                                   .image_name = source,
                                   .image_rootfs = r->rootfs,
                                   .image_digest = r->have_img ? r->img.digest : NULL,
                                   .image = r->have_img ? &r->img.config : NULL,
                                   .ret_user = &r->user};
    if (berth_run_config_resolve(&src, &r->cfg, err) < 0)
        return -1;
    o->stop_signal = r->cfg.stop_signal;
    o->stop_signal_set = true;
    if (make_rundir(root, o->name, &r->rundir, &r->lockfd, err) < 0)
        return -1;
    r->seccomp_cache = berth_seccomp_cache_dir(root);
    /* a cgroup for the limits; "_" cannot start a service name: no clash
     * with a keeper's cgroup */
    if (berth_limits_need_cgroup(&o->limits)) {
        _cleanup_free_ char *run = xasprintf("_run-%s", o->name);
        r->cgroup = berth_cgroup_service_path(root, run);
    }
    return 0;
}

static int start(const struct run *r, struct berth_container *c, berth_error *err)
{
    struct berth_container_config cfg = {
        .run = &r->cfg,
        .user = &r->user,
        .cgroup = r->cgroup,
        .rundir = r->rundir,
        .seccomp_cache = r->seccomp_cache,
        .memory_layer = true,
    };
    return berth_container_start(&cfg, c, err);
}

int berth_run_foreground(const char *root, struct berth_run_options *o, const char *source,
                         struct berth_exit *ret, berth_error *err)
{
    struct run r = {.lockfd = -1};
    struct berth_container c = {.pidfd = -1};
    berth_error ign = BERTH_ERROR_INIT;
    sigset_t block, old;
    int rc = -1;

    /* blocked before the container exists, so that no signal is lost */
    sigemptyset(&block);
    for (size_t i = 0; i < berth_n_forwarded_signals; i++)
        sigaddset(&block, berth_forwarded_signals[i]);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &old);
    if (prepare(root, o, source, &r, err) == 0 && start(&r, &c, err) == 0) {
        if (berth_container_wait(&c, ret, err) == 0)
            rc = 0;
        else if (berth_container_kill(&c, SIGKILL, &ign) < 0) {
            /* gone already: the release below reaps it */
        }
        if (berth_container_release(&c, rc == 0 ? err : &ign) < 0 && rc == 0) {
            /* it ran: what it left is worth a word, not its exit code */
            berth_log(BERTH_LOG_WARN, "%s", err->msg);
            berth_error_clear(err);
        }
    }
    run_release(&r);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return rc;
}
