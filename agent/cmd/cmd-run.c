/* berth run: one container in the foreground, like a program. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caps.h"
#include "cmd.h"
#include "container.h"
#include "keeper.h"
#include "registry.h"
#include "seccomp-profile.h"
#include "selfexe.h"
#include "store.h"
#include "user.h"
#include "util.h"

static const char usage_text[] =
    "Usage: berth run [OPTIONS] IMAGE [--] [CMD [ARGS...]]\n"
    "\n"
    "Run one container in the foreground, like a program: pid, mount, uts and ipc\n"
    "namespaces, the host's network, an overlay over the read-only image whose\n"
    "writable layer is in memory and gone when the container exits (use -v for\n"
    "data; with --memory its pages count against the limit). Signals\n"
    "are forwarded to the service; berth exits with the service's exit code\n"
    "(128+N when it died of signal N), so systemd, runit or supervisord can\n"
    "supervise it directly.\n"
    "\n"
    "IMAGE is any of these, told apart by content, not by name:\n"
    "  a rootfs directory           run as it is\n"
    "  an OCI layout directory      (oci-layout, index.json: umoci, skopeo oci:DIR)\n"
    "  a rootfs tarball, an OCI archive or a docker save archive (tar, optionally\n"
    "                               gzip/xz/zstd/bzip2)\n"
    "  sha256:DIGEST                an image of the store ('berth fetch', 'berth images')\n"
    "  oci://HOST[:PORT]/REPO[:TAG|@sha256:HEX]  (oci+http:// for plain http) pulled\n"
    "                               into the store ($REGISTRY_AUTH_FILE for credentials)\n"
    "Every kind but a rootfs directory is unpacked once into the store under --root,\n"
    "and its OCI/docker config gives the default command (entrypoint + cmd),\n"
    "environment, working directory, user and stop signal.\n"
    "\n"
    "Options:\n"
    "      --name NAME           container name (cgroup, messages; default run-PID)\n"
    "  -e, --env KEY=VALUE       set an environment variable (KEY alone: copy from here)\n"
    "  -w, --workdir DIR         working directory inside the container\n"
    "  -u, --user USER[:GROUP]   uid[:gid] or names from the image's /etc/passwd\n"
    "  -v, --mount SRC:DST[:ro]  bind mount a host path\n"
    "      --tmpfs DST[:SIZE]    mount a tmpfs (SIZE like 64M)\n"
    "      --read-only           make the root filesystem read-only\n"
    "      --network host|none   host network (default) or only a private 'lo'\n"
    "      --hostname NAME       hostname (default: the host's)\n"
    "      --memory SIZE         memory limit (K/M/G suffixes)\n"
    "      --cpus N              CPU limit, e.g. 1.5\n"
    "      --pids N              process limit\n"
    "      --nofile N            open file limit (RLIMIT_NOFILE)\n"
    "      --cap-add CAP         add a capability to podman's default set (ALL: all)\n"
    "      --cap-drop CAP        remove a capability (ALL: all)\n"
    "      --seccomp PROFILE     default (Docker's profile: the default), unconfined,\n"
    "                            or a profile file in Docker's JSON format\n"
    "      --stop-signal SIG     signal sent on SIGTERM (default SIGTERM)\n"
    "      --stop-timeout DUR    then SIGKILL after this long (default 10s)\n"
    "      --root DIR            state directory (default " BERTH_DEFAULT_ROOT ")\n"
    "  -h, --help                this help\n"
    "\n"
    "Exit status: the service's; 1 when the container could not be started\n"
    "(the reason is printed on one line).\n"
    "\n"
    "Examples:\n"
    "  berth run ./rootfs /bin/echo hello\n"
    "  berth run --memory 256M -v /srv/data:/data:ro -e PORT=8080 web.tar.zst -- /bin/web\n";

enum {
    OPT_NAME = 0x100,
    OPT_TMPFS,
    OPT_READONLY,
    OPT_NETWORK,
    OPT_HOSTNAME,
    OPT_MEMORY,
    OPT_CPUS,
    OPT_PIDS,
    OPT_NOFILE,
    OPT_CAP_ADD,
    OPT_CAP_DROP,
    OPT_STOP_SIGNAL,
    OPT_STOP_TIMEOUT,
    OPT_SECCOMP,
};

struct run_opts {
    const char *name;
    char **env; /* -e as given */
    size_t nenv;
    const char *workdir;
    const char *user;
    struct berth_mount *mounts;
    size_t nmounts;
    bool readonly;
    bool network_none;
    const char *hostname;
    struct berth_limits limits;
    uint64_t caps;
    int stop_signal;
    bool stop_signal_set;
    uint64_t stop_timeout_ms;
    const char *seccomp; /* "default", "unconfined" or a profile file */
};

static void free_opts(struct run_opts *o)
{
    for (size_t i = 0; i < o->nmounts; i++) {
        free(o->mounts[i].source);
        free(o->mounts[i].target);
    }
    free(o->mounts);
    free(o->env);
}

static int parse_uint(const char *s, uint64_t *ret)
{
    char *end;

    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    *ret = strtoull(s, &end, 10);
    return errno || *end || *ret == 0 ? -1 : 0;
}

static int parse_cpus(const char *s, uint64_t *ret_milli)
{
    char *end;
    double v;

    if (!s || !*s || *s == '-' || *s == ' ')
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno || *end || !(v >= 0.01) || v > 4096)
        return -1;
    *ret_milli = (uint64_t)(v * 1000 + 0.5);
    return 0;
}

static struct berth_mount *add_mount(struct run_opts *o)
{
    o->mounts = xrealloc(o->mounts, (o->nmounts + 1) * sizeof(*o->mounts));
    memset(&o->mounts[o->nmounts], 0, sizeof(*o->mounts));
    return &o->mounts[o->nmounts++];
}

/* SRC:DST[:ro|:rw] */
static int parse_bind(struct run_opts *o, const char *arg)
{
    _cleanup_free_ char *s = xstrdup(arg);
    char *dst = strchr(s, ':');
    char *mode;
    bool ro = false;

    if (!dst)
        return -1;
    *dst++ = '\0';
    mode = strchr(dst, ':');
    if (mode) {
        *mode++ = '\0';
        if (!strcmp(mode, "ro"))
            ro = true;
        else if (strcmp(mode, "rw"))
            return -1;
    }
    if (*s != '/' || *dst != '/')
        return -1;
    struct berth_mount *m = add_mount(o);
    m->source = xstrdup(s);
    m->target = xstrdup(dst);
    m->readonly = ro;
    return 0;
}

/* DST[:SIZE] */
static int parse_tmpfs(struct run_opts *o, const char *arg)
{
    _cleanup_free_ char *s = xstrdup(arg);
    char *size = strchr(s, ':');
    uint64_t bytes = 0;

    if (size) {
        *size++ = '\0';
        if (berth_parse_size(size, &bytes) < 0 || bytes == 0)
            return -1;
    }
    if (*s != '/')
        return -1;
    struct berth_mount *m = add_mount(o);
    m->target = xstrdup(s);
    m->tmpfs = true;
    m->size = bytes;
    return 0;
}

static int parse_cap(uint64_t *caps, const char *name, bool add)
{
    int c = berth_caps_from_name(name);

    if (c == -1)
        return -1;
    if (c == -2)
        *caps = add ? ~0ULL : 0;
    else if (add)
        *caps |= 1ULL << c;
    else
        *caps &= ~(1ULL << c);
    return 0;
}

#define BAD(...) return berth_usage_error("run", __VA_ARGS__)

static int parse_args(int argc, char **argv, struct berth_globals *g, struct run_opts *o)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {"name", required_argument, NULL, OPT_NAME},
        {"env", required_argument, NULL, 'e'},
        {"workdir", required_argument, NULL, 'w'},
        {"user", required_argument, NULL, 'u'},
        {"mount", required_argument, NULL, 'v'},
        {"volume", required_argument, NULL, 'v'},
        {"tmpfs", required_argument, NULL, OPT_TMPFS},
        {"read-only", no_argument, NULL, OPT_READONLY},
        {"network", required_argument, NULL, OPT_NETWORK},
        {"hostname", required_argument, NULL, OPT_HOSTNAME},
        {"memory", required_argument, NULL, OPT_MEMORY},
        {"cpus", required_argument, NULL, OPT_CPUS},
        {"pids", required_argument, NULL, OPT_PIDS},
        {"nofile", required_argument, NULL, OPT_NOFILE},
        {"cap-add", required_argument, NULL, OPT_CAP_ADD},
        {"cap-drop", required_argument, NULL, OPT_CAP_DROP},
        {"stop-signal", required_argument, NULL, OPT_STOP_SIGNAL},
        {"stop-timeout", required_argument, NULL, OPT_STOP_TIMEOUT},
        {"seccomp", required_argument, NULL, OPT_SECCOMP},
        {NULL, 0, NULL, 0},
    };
    int c;

    opterr = 0;
    /* '+': options end at SOURCE; what follows is the command */
    while ((c = getopt_long(argc, argv, "+:he:w:u:v:q", longopts, NULL)) != -1) {
        /* run's -v is --mount (Docker's), not the global --verbose */
        switch (c) {
        case 'h':
            fputs(usage_text, stdout);
            exit(EXIT_OK);
        case OPT_NAME:
            o->name = optarg;
            break;
        case 'e':
            if (!*optarg || *optarg == '=')
                BAD("invalid environment variable '%s': expected KEY=VALUE", optarg);
            o->env = xrealloc(o->env, (o->nenv + 1) * sizeof(char *));
            o->env[o->nenv++] = optarg;
            break;
        case 'w':
            if (*optarg != '/')
                BAD("invalid --workdir '%s': must be an absolute path", optarg);
            o->workdir = optarg;
            break;
        case 'u':
            o->user = optarg;
            break;
        case 'v':
            if (parse_bind(o, optarg) < 0)
                BAD("invalid --mount '%s': expected /SRC:/DST[:ro]", optarg);
            break;
        case OPT_TMPFS:
            if (parse_tmpfs(o, optarg) < 0)
                BAD("invalid --tmpfs '%s': expected /DST[:SIZE]", optarg);
            break;
        case OPT_READONLY:
            o->readonly = true;
            break;
        case OPT_NETWORK:
            if (!strcmp(optarg, "none"))
                o->network_none = true;
            else if (strcmp(optarg, "host"))
                BAD("invalid --network '%s': expected 'host' or 'none'", optarg);
            break;
        case OPT_HOSTNAME:
            if (!*optarg || strlen(optarg) > 64)
                BAD("invalid --hostname '%s': 1 to 64 characters", optarg);
            o->hostname = optarg;
            break;
        case OPT_MEMORY:
            if (berth_parse_size(optarg, &o->limits.memory) < 0 || o->limits.memory < (1 << 20))
                BAD("invalid --memory '%s': expected a size of at least 1M, like 512M or 2G",
                    optarg);
            break;
        case OPT_CPUS:
            if (parse_cpus(optarg, &o->limits.cpus_milli) < 0)
                BAD("invalid --cpus '%s': expected a number of CPUs like 0.5 or 2", optarg);
            break;
        case OPT_PIDS:
            if (parse_uint(optarg, &o->limits.pids) < 0)
                BAD("invalid --pids '%s': expected a positive number", optarg);
            break;
        case OPT_NOFILE:
            if (parse_uint(optarg, &o->limits.nofile) < 0)
                BAD("invalid --nofile '%s': expected a positive number", optarg);
            break;
        case OPT_CAP_ADD:
        case OPT_CAP_DROP:
            if (parse_cap(&o->caps, optarg, c == OPT_CAP_ADD) < 0)
                BAD("unknown capability '%s'", optarg);
            break;
        case OPT_STOP_SIGNAL:
            o->stop_signal = berth_signal_from_name(optarg);
            if (o->stop_signal < 0)
                BAD("unknown signal '%s'", optarg);
            o->stop_signal_set = true;
            break;
        case OPT_STOP_TIMEOUT:
            if (berth_parse_duration(optarg, &o->stop_timeout_ms) < 0)
                BAD("invalid --stop-timeout '%s': expected a duration like 10s or 500ms", optarg);
            break;
        case OPT_SECCOMP:
            if (!*optarg)
                BAD("invalid --seccomp '': expected default, unconfined or a profile file");
            o->seccomp = optarg;
            break;
        case ':':
            BAD("option '%s' needs a value", argv[optind - 1]);
        default:
            if (!berth_global_option(c, optarg, g))
                BAD("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        BAD("no rootfs given");
    return 0;
}

/* The service's environment: PATH, HOSTNAME and HOME defaults, the
 * image's Env, then -e. */
static char **build_env(const struct run_opts *o, const char *home, char **image_env)
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
    fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return berth_error_set(err, errno, "creating '%s'", lock);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0)
        return berth_error_set(err, errno == EWOULDBLOCK ? EBUSY : errno,
                               "a container named '%s' is already running", id);
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

static int report_exit(const char *name, const struct run_opts *o, const struct berth_exit *ex)
{
    if (ex->oom_killed)
        berth_die_msg("run", "'%s' was killed by the OOM killer (memory limit %llu bytes)", name,
                      (unsigned long long)o->limits.memory);
    else if (ex->stop_timed_out)
        berth_die_msg("run", "'%s' did not stop within %llu ms of %s; killed with SIGKILL", name,
                      (unsigned long long)o->stop_timeout_ms, berth_signal_name(o->stop_signal));
    return ex->code;
}

int cmd_run(int argc, char **argv, struct berth_globals *g)
{
    struct run_opts o = {.caps = berth_caps_default(),
                         .stop_signal = SIGTERM,
                         .stop_timeout_ms = 10000,
                         .seccomp = "default"};
    berth_error err = BERTH_ERROR_INIT;
    _cleanup_free_ char *image = NULL;
    _cleanup_free_ char *rundir = NULL;
    _cleanup_free_ char *id = NULL;
    _cleanup_free_ char *cgroup = NULL;
    _cleanup_close_ int lockfd = -1;
    struct berth_user user = {0};
    struct berth_container c = {.pidfd = -1};
    struct berth_exit ex;
    struct berth_image img = {0};
    struct berth_seccomp_profile *profile = NULL;
    _cleanup_free_ char *seccomp_cache = NULL;
    bool have_img = false;
    char **env = NULL;
    char **cmd = NULL;
    size_t ncmd = 0;
    sigset_t block, old;
    int rc = EXIT_FAIL;

    if (parse_args(argc, argv, g, &o) != 0) {
        free_opts(&o);
        return EXIT_FAIL;
    }
    /* Only a container with CAP_SYS_PTRACE can open the exe link of our
     * (non-dumpable) processes in it: then from a read-only mount of the
     * binary (selfexe.h); else the exec this costs is saved on every run. */
    if ((o.caps & (1ULL << CAP_SYS_PTRACE)) && geteuid() == 0 &&
        berth_selfexe_readonly(g->argv, &err) < 0) {
        free_opts(&o);
        berth_print_error("run", &err);
        return EXIT_FAIL;
    }
    const char *source = argv[optind++];
    if (optind < argc && !strcmp(argv[optind], "--"))
        optind++;
    id = o.name ? xstrdup(o.name) : xasprintf("run-%d", (int)getpid());
    if (strchr(id, '/') || id[0] == '.' || strlen(id) > 63) {
        free_opts(&o);
        berth_usage_error("run", "invalid --name '%s'", id);
        return EXIT_FAIL;
    }

    /* block before the container exists so that no signal is lost */
    sigemptyset(&block);
    for (size_t i = 0; i < berth_n_forwarded_signals; i++)
        sigaddset(&block, berth_forwarded_signals[i]);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &old);

    if (resolve_image(g->root, source, &image, &img, &have_img, &err) < 0)
        goto out;
    if (have_img) { /* its config gives the defaults */
        if (!o.user && *img.config.user)
            o.user = img.config.user;
        if (!o.workdir && *img.config.workdir)
            o.workdir = img.config.workdir;
        if (!o.stop_signal_set && *img.config.stop_signal &&
            berth_signal_from_name(img.config.stop_signal) > 0)
            o.stop_signal = berth_signal_from_name(img.config.stop_signal);
    }
    if (optind < argc) {
        cmd = argv + optind;
    } else {
        /* the image's entrypoint + cmd (borrowed strings) */
        char **parts[] = {have_img ? img.config.entrypoint : NULL,
                          have_img ? img.config.cmd : NULL};
        for (size_t k = 0; k < ARRAY_SIZE(parts); k++)
            for (char **p = parts[k]; p && *p; p++) {
                cmd = xrealloc(cmd, (ncmd + 2) * sizeof(char *));
                cmd[ncmd++] = *p;
            }
        if (!ncmd) {
            berth_error_set(&err, EINVAL, "no command given, and '%s' has no default command",
                            source);
            goto out;
        }
        cmd[ncmd] = NULL;
    }
    if (berth_user_resolve(image, o.user, &user, &err) < 0 ||
        make_rundir(g->root, id, &rundir, &lockfd, &err) < 0)
        goto out;
    /* a profile file is parsed (jansson) only when given: Docker's default
     * is compiled in */
    if (strcmp(o.seccomp, "default") && strcmp(o.seccomp, "unconfined") &&
        berth_seccomp_profile_load(o.seccomp, &profile, &err) < 0)
        goto out;
    seccomp_cache = berth_seccomp_cache_dir(g->root);
    env = build_env(&o, user.home, have_img ? img.config.env : NULL);
    /* a cgroup for the limits; "_" cannot start a service name: no clash
     * with a keeper's cgroup */
    if (berth_limits_need_cgroup(&o.limits)) {
        _cleanup_free_ char *unique = berth_service_cgroup_name(g->root, id);
        cgroup = xasprintf("berth/_run-%s", unique);
    }
    struct berth_container_config cfg = {
        .name = id,
        .cgroup = cgroup,
        .image = image,
        .rundir = rundir,
        .argv = cmd,
        .env = env,
        .workdir = o.workdir,
        .uid = user.uid,
        .gid = user.gid,
        .groups = user.groups,
        .ngroups = user.ngroups,
        .hostname = o.hostname,
        .network_none = o.network_none,
        .readonly = o.readonly,
        .mounts = o.mounts,
        .nmounts = o.nmounts,
        .limits = o.limits,
        .caps = o.caps,
        .seccomp = profile                         ? profile
                   : !strcmp(o.seccomp, "default") ? &berth_seccomp_default
                                                   : NULL,
        .seccomp_cache = seccomp_cache,
        .stop_signal = o.stop_signal,
        .stop_timeout_ms = o.stop_timeout_ms,
        .memory_layer = true,
    };
    if (berth_container_start(&cfg, &c, &err) < 0)
        goto out;
    if (berth_container_wait(&c, &ex, &err) < 0) {
        berth_container_kill(&c, SIGKILL);
        goto out;
    }
    rc = report_exit(id, &o, &ex);
    if (berth_container_release(&c, &err) < 0)
        berth_print_error("run", &err);
    berth_error_clear(&err);
out:
    if (err.msg[0]) {
        berth_print_error("run", &err);
        berth_error ign = BERTH_ERROR_INIT;
        berth_container_release(&c, &ign);
    }
    if (rundir) {
        berth_error ign = BERTH_ERROR_INIT;
        berth_rm_rf(rundir, &ign);
        _cleanup_free_ char *lock = xasprintf("%s.lock", rundir);
        unlink(lock);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    berth_strv_free(env);
    if (ncmd)
        free(cmd);
    if (have_img)
        berth_image_release(&img);
    berth_user_release(&user);
    berth_seccomp_profile_free(profile);
    free_opts(&o);
    return rc;
}
