/* berth run: one container in the foreground, like a program. */
#include <errno.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "caps.h"
#include "cmd.h"
#include "run.h"
#include "selfexe.h"
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

static struct berth_mount *add_mount(struct berth_run_options *o)
{
    o->mounts = xrealloc(o->mounts, (o->nmounts + 1) * sizeof(*o->mounts));
    memset(&o->mounts[o->nmounts], 0, sizeof(*o->mounts));
    return &o->mounts[o->nmounts++];
}

/* SRC:DST[:ro|:rw] */
static int parse_bind(struct berth_run_options *o, const char *arg)
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
static int parse_tmpfs(struct berth_run_options *o, const char *arg)
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
    berth_error err = BERTH_ERROR_INIT;
    uint64_t m;

    if (berth_caps_from_name(name, &m, &err) < 0)
        return -1;
    *caps = add ? *caps | m : *caps & ~m;
    return 0;
}

#define BAD(...) return berth_usage_error("run", __VA_ARGS__)

/* The limits and the confinement: 0 when `c` was one (and valid), a usage
 * error's exit code when it was not valid, -1 when it is not one of them. */
static int limit_option(int c, const char *optarg, struct berth_run_options *o)
{
    switch (c) {
    case OPT_MEMORY:
        if (berth_parse_size(optarg, &o->limits.memory) < 0 || o->limits.memory < (1 << 20))
            BAD("invalid --memory '%s': expected a size of at least 1M, like 512M or 2G", optarg);
        return 0;
    case OPT_CPUS:
        if (parse_cpus(optarg, &o->limits.cpus_milli) < 0)
            BAD("invalid --cpus '%s': expected a number of CPUs like 0.5 or 2", optarg);
        return 0;
    case OPT_PIDS:
        if (parse_uint(optarg, &o->limits.pids) < 0)
            BAD("invalid --pids '%s': expected a positive number", optarg);
        return 0;
    case OPT_NOFILE:
        if (parse_uint(optarg, &o->limits.nofile) < 0)
            BAD("invalid --nofile '%s': expected a positive number", optarg);
        return 0;
    case OPT_CAP_ADD:
    case OPT_CAP_DROP:
        if (parse_cap(&o->caps, optarg, c == OPT_CAP_ADD) < 0)
            BAD("unknown capability '%s'", optarg);
        return 0;
    case OPT_STOP_SIGNAL:
        o->stop_signal = berth_signal_from_name(optarg);
        if (o->stop_signal < 0)
            BAD("unknown signal '%s'", optarg);
        o->stop_signal_set = true;
        return 0;
    case OPT_STOP_TIMEOUT:
        if (berth_parse_duration(optarg, &o->stop_timeout_ms) < 0)
            BAD("invalid --stop-timeout '%s': expected a duration like 10s or 500ms", optarg);
        return 0;
    case OPT_SECCOMP:
        if (!*optarg)
            BAD("invalid --seccomp '': expected default, unconfined or a profile file");
        o->seccomp = optarg;
        return 0;
    default:
        return -1;
    }
}

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

static int parse_args(int argc, char **argv, struct berth_globals *g, struct berth_run_options *o)
{
    int c;

    opterr = 0;
    /* '+': options end at SOURCE; what follows is the command */
    while ((c = getopt_long(argc, argv, "+:he:w:u:v:q", longopts, NULL)) != -1) {
        int r = berth_env_workdir_option("run", c, optarg, &o->env, &o->nenv, &o->workdir);
        if (r != 0) {
            if (r < 0)
                return berth_usage_code();
            continue;
        }
        if ((r = limit_option(c, optarg, o)) >= 0) {
            if (r > 0)
                return r;
            continue;
        }
        /* run's -v is --mount (Docker's), not the global --verbose */
        switch (c) {
        case 'h':
            fputs(usage_text, stdout);
            exit(EXIT_OK);
        case OPT_NAME:
            o->name = optarg;
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

static int report_exit(const char *name, const struct berth_run_options *o,
                       const struct berth_exit *ex)
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
    struct berth_run_options o;
    berth_error err = BERTH_ERROR_INIT;
    _cleanup_free_ char *id = NULL;
    struct berth_exit ex;
    int rc = EXIT_FAIL;

    berth_run_options_init(&o);
    if (parse_args(argc, argv, g, &o) != 0)
        goto out;
    /* Only a container with CAP_SYS_PTRACE can open the exe link of our
     * (non-dumpable) processes in it: then from a read-only mount of the
     * binary (selfexe.h); else the exec this costs is saved on every run. */
    if ((o.caps & (1ULL << CAP_SYS_PTRACE)) && geteuid() == 0 &&
        berth_selfexe_readonly(g->argv, &err) < 0) {
        berth_print_error("run", &err);
        goto out;
    }
    const char *source = argv[optind++];
    if (optind < argc && !strcmp(argv[optind], "--"))
        optind++;
    id = o.name ? xstrdup(o.name) : xasprintf("run-%d", (int)getpid());
    if (strchr(id, '/') || id[0] == '.' || strlen(id) > 63) {
        berth_usage_error("run", "invalid --name '%s'", id);
        goto out;
    }
    o.name = id;
    o.command = optind < argc ? argv + optind : NULL;
    if (berth_run_foreground(g->root, &o, source, &ex, &err) < 0)
        berth_print_error("run", &err);
    else
        rc = report_exit(id, &o, &ex);
out:
    berth_run_options_release(&o);
    return rc;
}
