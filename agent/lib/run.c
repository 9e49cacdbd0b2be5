#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caps.h"
#include "cgroup.h"
#include "log.h"
#include "registry.h"
#include "seccomp-profile.h"
#include "store.h"
#include "user.h"
#include "util.h"

void berth_run_options_init(struct berth_run_options *o)
{
    *o = (struct berth_run_options){.caps = berth_caps_default(),
                                    .stop_signal = SIGTERM,
                                    .stop_timeout_ms = 10000,
                                    .seccomp = "default"};
}

void berth_run_options_release(struct berth_run_options *o)
{
    berth_mounts_free(o->mounts, o->nmounts);
    free(o->env);
    o->mounts = NULL;
    o->env = NULL;
    o->nmounts = o->nenv = 0;
}

/* The service's environment: PATH, HOSTNAME and HOME defaults, the
 * image's Env, then -e. */
static char **build_env(const struct berth_run_options *o, const char *home, char **image_env)
{
    char **env = NULL;
    size_t n = 0;
    char host[HOST_NAME_MAX + 1] = "";
    _cleanup_free_ char *hostname = NULL;
    _cleanup_free_ char *homevar = xasprintf("HOME=%s", home);

    berth_env_set(&env, &n, BERTH_DEFAULT_PATH);
    gethostname(host, sizeof(host) - 1);
    hostname = xasprintf("HOSTNAME=%s", o->hostname ? o->hostname : host);
    berth_env_set(&env, &n, hostname);
    berth_env_set(&env, &n, homevar);
    for (char **p = image_env; p && *p; p++)
        if (strchr(*p, '='))
            berth_env_set(&env, &n, *p);
    for (size_t i = 0; i < o->nenv; i++)
        berth_env_set_arg(&env, &n, o->env[i]);
    return env;
}

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
    char **argv; /* the image's entrypoint + cmd (borrowed strings), or NULL */
    struct berth_user user;
    char *rundir;
    int lockfd;
    struct berth_seccomp_profile *profile; /* a profile file's */
    char *seccomp_cache;
    char *cgroup;
    char **env;
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
    free(r->argv);
    free(r->rootfs);
    berth_user_release(&r->user);
    berth_seccomp_profile_free(r->profile);
    free(r->seccomp_cache);
    free(r->cgroup);
    berth_strv_free(r->env);
}

/* The image's entrypoint + cmd, for a run given no command. */
static int image_command(const struct run *r, const char *source, char ***ret, berth_error *err)
{
    char **parts[] = {r->have_img ? r->img.config.entrypoint : NULL,
                      r->have_img ? r->img.config.cmd : NULL};
    char **argv = NULL;
    size_t n = 0;

    for (size_t k = 0; k < ARRAY_SIZE(parts); k++)
        for (char **p = parts[k]; p && *p; p++) {
            argv = xrealloc(argv, (n + 2) * sizeof(char *));
            argv[n++] = *p;
            argv[n] = NULL;
        }
    if (!n)
        return berth_error_set(err, EINVAL, "no command given, and '%s' has no default command",
                               source);
    *ret = argv;
    return 0;
}

/* Everything the container needs, the options' blanks filled from the
 * image's config. */
static int prepare(const char *root, struct berth_run_options *o, const char *source, char **argv,
                   struct run *r, berth_error *err)
{
    const struct berth_image_config *ic = NULL;

    if (resolve_image(root, source, &r->rootfs, &r->img, &r->have_img, err) < 0)
        return -1;
    if (r->have_img) {
        ic = &r->img.config;
        if (!o->stop_signal_set && *ic->stop_signal && berth_signal_from_name(ic->stop_signal) > 0)
            o->stop_signal = berth_signal_from_name(ic->stop_signal);
    }
    o->stop_signal_set = true;
    if (!argv && image_command(r, source, &r->argv, err) < 0)
        return -1;
    const char *user = o->user ? o->user : ic && *ic->user ? ic->user : NULL;
    if (berth_user_resolve(r->rootfs, user, &r->user, err) < 0 ||
        make_rundir(root, o->name, &r->rundir, &r->lockfd, err) < 0)
        return -1;
    /* a profile file is parsed (jansson) only when given: Docker's default
     * is compiled in */
    if (strcmp(o->seccomp, "default") && strcmp(o->seccomp, "unconfined") &&
        berth_seccomp_profile_load(o->seccomp, &r->profile, err) < 0)
        return -1;
    r->seccomp_cache = berth_seccomp_cache_dir(root);
    r->env = build_env(o, r->user.home, ic ? ic->env : NULL);
    /* a cgroup for the limits; "_" cannot start a service name: no clash
     * with a keeper's cgroup */
    if (berth_limits_need_cgroup(&o->limits)) {
        _cleanup_free_ char *run = xasprintf("_run-%s", o->name);
        r->cgroup = berth_cgroup_service_path(root, run);
    }
    return 0;
}

static int start(const struct berth_run_options *o, char **argv, const struct run *r,
                 struct berth_container *c, berth_error *err)
{
    const struct berth_image_config *ic = r->have_img ? &r->img.config : NULL;
    struct berth_container_config cfg = {
        .name = o->name,
        .cgroup = r->cgroup,
        .image = r->rootfs,
        .rundir = r->rundir,
        .argv = argv ? argv : r->argv,
        .env = r->env,
        .workdir = o->workdir           ? o->workdir
                   : ic && *ic->workdir ? ic->workdir
                                        : NULL,
        .uid = r->user.uid,
        .gid = r->user.gid,
        .groups = r->user.groups,
        .ngroups = r->user.ngroups,
        .hostname = o->hostname,
        .network_none = o->network_none,
        .readonly = o->readonly,
        .mounts = o->mounts,
        .nmounts = o->nmounts,
        .limits = o->limits,
        .caps = o->caps,
        .seccomp = r->profile                       ? r->profile
                   : !strcmp(o->seccomp, "default") ? &berth_seccomp_default
                                                    : NULL,
        .seccomp_cache = r->seccomp_cache,
        .stop_signal = o->stop_signal,
        .stop_timeout_ms = o->stop_timeout_ms,
        .memory_layer = true,
    };
    return berth_container_start(&cfg, c, err);
}

int berth_run_foreground(const char *root, struct berth_run_options *o, const char *source,
                         char **argv, struct berth_exit *ret, berth_error *err)
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
    if (prepare(root, o, source, argv, &r, err) == 0 && start(o, argv, &r, &c, err) == 0) {
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
