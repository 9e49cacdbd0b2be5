#include "run-config.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caps.h"
#include "oci.h"
#include "seccomp-profile.h"
#include "spec.h"
#include "user.h"
#include "util.h"

/* ---- berth run's flags ---------------------------------------------------- */

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

/* ---- what the source asks ------------------------------------------------- */

static char *strdup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

uint64_t berth_run_config_caps(const struct berth_service *svc)
{
    return berth_caps_resolve(svc->cap_add, svc->ncap_add, svc->cap_drop, svc->ncap_drop);
}

static void service_supervision(const struct berth_service *svc, struct berth_run_config *c)
{
    c->restart = svc->restart;
    c->backoff_initial_ms = svc->backoff.initial_ms;
    c->backoff_max_ms = svc->backoff.max_ms;
    c->backoff_reset_ms = svc->backoff.reset_after_ms;
    c->log_max_size = svc->log.max_size;
    c->log_max_files = svc->log.max_files ? svc->log.max_files : 1;
    if (svc->healthcheck.ncommand) {
        size_t n = 0;
        for (size_t i = 0; i < svc->healthcheck.ncommand; i++)
            berth_strv_push(&c->health_argv, &n, svc->healthcheck.command[i]);
        c->health_interval_ms = svc->healthcheck.interval_ms;
        c->health_timeout_ms = svc->healthcheck.timeout_ms;
        c->health_retries = svc->healthcheck.retries;
        c->health_restart = svc->healthcheck.restart_on_unhealthy;
    }
}

/* A service of the file: all it says; its env, as KEY=VALUE, in *env. */
static void from_service(const struct berth_service *svc, const char *hash,
                         struct berth_run_config *c, char ***env, size_t *nenv)
{
    size_t n = 0;

    c->name = xstrdup(svc->name);
    c->spec_hash = strdup_or_null(hash);
    for (size_t i = 0; i < svc->ncommand; i++)
        berth_strv_push(&c->argv, &n, svc->command[i]);
    c->workdir = strdup_or_null(svc->workdir);
    c->user = strdup_or_null(svc->user);
    c->hostname = strdup_or_null(svc->hostname);
    c->network_none = svc->network == BERTH_NETWORK_NONE;
    c->readonly = svc->readonly_rootfs;
    c->nmounts = svc->nmounts;
    c->mounts = berth_mounts_dup(svc->mounts, svc->nmounts);
    c->limits = (struct berth_limits){svc->limits.memory, svc->limits.cpus_milli, svc->limits.pids,
                                      svc->limits.nofile};
    c->caps = berth_run_config_caps(svc);
    c->seccomp = xstrdup(svc->seccomp ? svc->seccomp : "default");
    c->stop_signal = svc->stop_signal;
    c->stop_timeout_ms = svc->stop_timeout_ms;
    service_supervision(svc, c);
    for (size_t i = 0; i < svc->nenv; i++) {
        _cleanup_free_ char *kv = xasprintf("%s=%s", svc->env[i].name, svc->env[i].value);
        berth_strv_push(env, nenv, kv);
    }
}

/* The flags of `berth run`; its -e, as given, in *env. */
static void from_flags(const struct berth_run_options *o, struct berth_run_config *c, char ***env,
                       size_t *nenv)
{
    size_t n = 0;

    c->name = xstrdup(o->name);
    for (char **p = o->command; p && *p; p++)
        berth_strv_push(&c->argv, &n, *p);
    c->workdir = strdup_or_null(o->workdir);
    c->user = strdup_or_null(o->user);
    c->hostname = strdup_or_null(o->hostname);
    c->network_none = o->network_none;
    c->readonly = o->readonly;
    c->nmounts = o->nmounts;
    c->mounts = berth_mounts_dup(o->mounts, o->nmounts);
    c->limits = o->limits;
    c->caps = o->caps;
    c->seccomp = xstrdup(o->seccomp);
    c->stop_signal = o->stop_signal;
    c->stop_timeout_ms = o->stop_timeout_ms;
    for (size_t i = 0; i < o->nenv; i++)
        berth_strv_push(env, nenv, o->env[i]);
}

/* ---- the image's defaults ------------------------------------------------- */

/* The image's entrypoint + cmd, for a source that gives no command. */
static int image_command(const struct berth_run_source *src, struct berth_run_config *c,
                         berth_error *err)
{
    const struct berth_image_config *ic = src->image;
    char **parts[] = {ic ? ic->entrypoint : NULL, ic ? ic->cmd : NULL};
    size_t n = 0;

    for (size_t k = 0; k < ARRAY_SIZE(parts); k++)
        for (char **p = parts[k]; p && *p; p++)
            berth_strv_push(&c->argv, &n, *p);
    if (n)
        return 0;
    if (src->service)
        return berth_error_set(err, EINVAL,
                               "no command: the service sets none and the image "
                               "has no entrypoint or cmd");
    return berth_error_set(err, EINVAL, "no command given, and '%s' has no default command",
                           src->image_name ? src->image_name : src->image_rootfs);
}

/* PATH, HOSTNAME and HOME by default, the image's Env over them, then
 * what the source sets (KEY=VALUE, or KEY to copy ours). */
static char **merge_env(const struct berth_run_config *c, const char *home, char **image_env,
                        char **asked)
{
    char **env = NULL;
    size_t n = 0;
    char host[HOST_NAME_MAX + 1] = "";
    _cleanup_free_ char *hostname = NULL;
    _cleanup_free_ char *homevar = xasprintf("HOME=%s", home);

    berth_env_set(&env, &n, BERTH_DEFAULT_PATH);
    gethostname(host, sizeof(host) - 1);
    hostname = xasprintf("HOSTNAME=%s", c->hostname ? c->hostname : host);
    berth_env_set(&env, &n, hostname);
    berth_env_set(&env, &n, homevar);
    for (char **p = image_env; p && *p; p++)
        if (strchr(*p, '='))
            berth_env_set(&env, &n, *p);
    for (char **p = asked; p && *p; p++)
        berth_env_set_arg(&env, &n, *p);
    return env ? env : xcalloc(1, sizeof(char *));
}

/* What the source leaves open, from the image's config. */
static int image_defaults(const struct berth_run_source *src, char **asked_env,
                          struct berth_run_config *c, berth_error *err)
{
    const struct berth_image_config *ic = src->image;
    struct berth_user u;

    if (!c->argv && image_command(src, c, err) < 0)
        return -1;
    if (!c->user && ic && ic->user && *ic->user)
        c->user = xstrdup(ic->user);
    if (!c->workdir && ic && ic->workdir && *ic->workdir)
        c->workdir = xstrdup(ic->workdir);
    if (!src->service && !src->flags->stop_signal_set && ic && ic->stop_signal &&
        berth_signal_from_name(ic->stop_signal) > 0)
        c->stop_signal = berth_signal_from_name(ic->stop_signal);
    /* the user must exist in the image: say so now, not at every start */
    if (berth_user_resolve(src->image_rootfs, c->user, &u, err) < 0)
        return -1;
    c->env = merge_env(c, u.home, ic ? ic->env : NULL, asked_env);
    if (src->ret_user)
        *src->ret_user = u;
    else
        berth_user_release(&u);
    return 0;
}

/* `profile` from `seccomp` and, for a file, its text (`len` bytes). */
static int parse_profile(struct berth_run_config *c, size_t len, berth_error *err)
{
    c->profile = NULL;
    if (!strcmp(c->seccomp, "default")) {
        c->profile = &berth_seccomp_default;
        return 0;
    }
    if (!strcmp(c->seccomp, "unconfined"))
        return 0;
    if (!c->seccomp_profile)
        return berth_error_set(err, EINVAL, "the seccomp profile '%s' of '%s' is missing",
                               c->seccomp, c->name);
    if (berth_seccomp_profile_parse(c->seccomp_profile, len, c->seccomp, &c->profile_owned, err) <
        0)
        return -1;
    c->profile = c->profile_owned;
    return 0;
}

/* A service's profile file is read and checked now and kept in
 * container.json: the keeper starts with what was checked, whatever
 * happens to the file. `berth run` only parses it (jansson), and only when
 * given: Docker's default is compiled in. */
static int resolve_seccomp(const struct berth_run_source *src, struct berth_run_config *c,
                           berth_error *err)
{
    size_t len = 0;

    if (!strcmp(c->seccomp, "default") || !strcmp(c->seccomp, "unconfined"))
        return parse_profile(c, 0, err);
    if (!src->service) {
        if (berth_seccomp_profile_load(c->seccomp, &c->profile_owned, err) < 0)
            return -1;
        c->profile = c->profile_owned;
        return 0;
    }
    if (berth_read_file(c->seccomp, BERTH_SECCOMP_PROFILE_MAX, &c->seccomp_profile, &len, err) <
            0 ||
        parse_profile(c, len, err) < 0)
        return berth_error_wrap(err, "service '%s'", c->name);
    return 0;
}

int berth_run_config_resolve(const struct berth_run_source *src, struct berth_run_config *c,
                             berth_error *err)
{
    char **env = NULL;
    size_t nenv = 0;
    int r;

    memset(c, 0, sizeof(*c));
    if (src->service)
        from_service(src->service, src->spec_hash, c, &env, &nenv);
    else
        from_flags(src->flags, c, &env, &nenv);
    c->image_rootfs = xstrdup(src->image_rootfs);
    c->image_digest = src->image_digest ? xasprintf("sha256:%s", src->image_digest) : NULL;
    r = image_defaults(src, env, c, err) < 0 || resolve_seccomp(src, c, err) < 0 ? -1 : 0;
    berth_strv_free(env);
    if (r < 0)
        berth_run_config_release(c);
    return r;
}

void berth_run_config_release(struct berth_run_config *c)
{
    free(c->name);
    free(c->image_digest);
    free(c->spec_hash);
    free(c->image_rootfs);
    berth_strv_free(c->argv);
    berth_strv_free(c->env);
    berth_strv_free(c->health_argv);
    free(c->workdir);
    free(c->user);
    free(c->hostname);
    free(c->seccomp);
    free(c->seccomp_profile);
    berth_mounts_free(c->mounts, c->nmounts);
    berth_seccomp_profile_free(c->profile_owned);
    memset(c, 0, sizeof(*c));
}

/* ---- container.json --------------------------------------------------------- */

static json_t *strv_json(char **v)
{
    json_t *a = json_array();
    for (; v && *v; v++)
        json_array_append_new(a, json_string(*v));
    return a;
}

static char **json_strv(json_t *a)
{
    size_t n = json_array_size(a);
    char **v = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        v[i] = xstrdup(s ? s : "");
    }
    return v;
}

static json_t *opt_str(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *mounts_json(const struct berth_run_config *c)
{
    json_t *mounts = json_array();

    for (size_t i = 0; i < c->nmounts; i++) {
        const struct berth_mount *m = &c->mounts[i];
        json_array_append_new(mounts,
                              json_pack("{s:o, s:s, s:b, s:b, s:I}", "source", opt_str(m->source),
                                        "target", m->target, "readonly", m->readonly, "tmpfs",
                                        m->tmpfs, "size", (json_int_t)m->size));
    }
    return mounts;
}

/* The keeper's part: the restart policy, the log, the health check. */
static void supervision_json(const struct berth_run_config *c, json_t *o)
{
    json_object_set_new(o, "restart", json_integer(c->restart));
    json_object_set_new(
        o, "backoff",
        json_pack("{s:I, s:I, s:I}", "initial_ms", (json_int_t)c->backoff_initial_ms, "max_ms",
                  (json_int_t)c->backoff_max_ms, "reset_ms", (json_int_t)c->backoff_reset_ms));
    json_object_set_new(o, "log",
                        json_pack("{s:I, s:i}", "max_size", (json_int_t)c->log_max_size,
                                  "max_files", (int)c->log_max_files));
    json_object_set_new(
        o, "healthcheck",
        c->health_argv ? json_pack("{s:o, s:I, s:I, s:i, s:b}", "argv", strv_json(c->health_argv),
                                   "interval_ms", (json_int_t)c->health_interval_ms, "timeout_ms",
                                   (json_int_t)c->health_timeout_ms, "retries",
                                   (int)c->health_retries, "restart", c->health_restart)
                       : json_null());
}

char *berth_run_config_json(const struct berth_run_config *c, berth_error *err)
{
    json_t *o;
    char *text;

    o = json_pack("{s:s, s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:b, s:b, s:o}", "name", c->name,
                  "image_digest", opt_str(c->image_digest), "spec_hash", opt_str(c->spec_hash),
                  "image_rootfs", c->image_rootfs, "argv", strv_json(c->argv), "env",
                  strv_json(c->env), "workdir", opt_str(c->workdir), "user", opt_str(c->user),
                  "hostname", opt_str(c->hostname), "network_none", c->network_none, "readonly",
                  c->readonly, "mounts", mounts_json(c));
    if (!o) {
        berth_error_set(err, EINVAL, "encoding the container of '%s'", c->name);
        return NULL;
    }
    json_object_set_new(o, "limits",
                        json_pack("{s:I, s:I, s:I, s:I}", "memory", (json_int_t)c->limits.memory,
                                  "cpus_milli", (json_int_t)c->limits.cpus_milli, "pids",
                                  (json_int_t)c->limits.pids, "nofile",
                                  (json_int_t)c->limits.nofile));
    json_object_set_new(o, "caps", json_integer((json_int_t)c->caps));
    json_object_set_new(o, "seccomp", json_string(c->seccomp ? c->seccomp : "default"));
    if (c->seccomp_profile) {
        json_t *prof = json_loads(c->seccomp_profile, 0, NULL);
        if (!prof) {
            json_decref(o);
            berth_error_set(err, EINVAL, "encoding the seccomp profile of '%s'", c->name);
            return NULL;
        }
        json_object_set_new(o, "seccomp_profile", prof);
    }
    json_object_set_new(o, "stop_signal", json_integer(c->stop_signal));
    json_object_set_new(o, "stop_timeout_ms", json_integer((json_int_t)c->stop_timeout_ms));
    supervision_json(c, o);
    text = json_dumps(o, JSON_SORT_KEYS | JSON_INDENT(2));
    json_decref(o);
    if (!text)
        berth_error_set(err, ENOMEM, "encoding the container of '%s'", c->name);
    return text;
}

static uint64_t u64(json_t *o, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(o, key));
    return v < 0 ? 0 : (uint64_t)v;
}

static char *str_or_null(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? xstrdup(s) : NULL;
}

static void read_mounts(json_t *mounts, struct berth_run_config *c)
{
    c->nmounts = json_array_size(mounts);
    c->mounts = xcalloc(c->nmounts, sizeof(*c->mounts));
    for (size_t i = 0; i < c->nmounts; i++) {
        json_t *m = json_array_get(mounts, i);
        c->mounts[i].source = str_or_null(m, "source");
        c->mounts[i].target = str_or_null(m, "target");
        c->mounts[i].readonly = json_is_true(json_object_get(m, "readonly"));
        c->mounts[i].tmpfs = json_is_true(json_object_get(m, "tmpfs"));
        c->mounts[i].size = u64(m, "size");
    }
}

static void read_supervision(json_t *o, struct berth_run_config *c)
{
    json_t *bo = json_object_get(o, "backoff");
    json_t *log = json_object_get(o, "log");
    json_t *hc = json_object_get(o, "healthcheck");

    c->restart = (enum berth_restart)u64(o, "restart");
    c->backoff_initial_ms = u64(bo, "initial_ms");
    c->backoff_max_ms = u64(bo, "max_ms");
    c->backoff_reset_ms = u64(bo, "reset_ms");
    c->log_max_size = u64(log, "max_size");
    c->log_max_files = (unsigned)u64(log, "max_files");
    if (!json_is_object(hc))
        return;
    c->health_argv = json_strv(json_object_get(hc, "argv"));
    c->health_interval_ms = u64(hc, "interval_ms");
    c->health_timeout_ms = u64(hc, "timeout_ms");
    c->health_retries = (unsigned)u64(hc, "retries");
    c->health_restart = json_is_true(json_object_get(hc, "restart"));
    if (!c->health_argv[0] || !c->health_interval_ms || !c->health_retries) {
        berth_strv_free(c->health_argv);
        c->health_argv = NULL;
    }
}

static void read_object(json_t *o, struct berth_run_config *c)
{
    json_t *lim = json_object_get(o, "limits");

    c->name = str_or_null(o, "name");
    c->image_digest = str_or_null(o, "image_digest");
    c->spec_hash = str_or_null(o, "spec_hash");
    c->image_rootfs = str_or_null(o, "image_rootfs");
    c->argv = json_strv(json_object_get(o, "argv"));
    c->env = json_strv(json_object_get(o, "env"));
    c->workdir = str_or_null(o, "workdir");
    c->user = str_or_null(o, "user");
    c->hostname = str_or_null(o, "hostname");
    c->network_none = json_is_true(json_object_get(o, "network_none"));
    c->readonly = json_is_true(json_object_get(o, "readonly"));
    read_mounts(json_object_get(o, "mounts"), c);
    c->limits.memory = u64(lim, "memory");
    c->limits.cpus_milli = u64(lim, "cpus_milli");
    c->limits.pids = u64(lim, "pids");
    c->limits.nofile = u64(lim, "nofile");
    c->caps = u64(o, "caps");
    c->seccomp = str_or_null(o, "seccomp");
    if (!c->seccomp)
        c->seccomp = xstrdup("default");
    if (json_is_object(json_object_get(o, "seccomp_profile")))
        c->seccomp_profile = json_dumps(json_object_get(o, "seccomp_profile"), JSON_COMPACT);
    c->stop_signal = (int)u64(o, "stop_signal");
    c->stop_timeout_ms = u64(o, "stop_timeout_ms");
    read_supervision(o, c);
}

int berth_run_config_read(const char *path, struct berth_run_config *c, berth_error *err)
{
    json_error_t jerr;
    json_t *o = json_load_file(path, 0, &jerr);

    memset(c, 0, sizeof(*c));
    if (!o)
        return berth_error_set(err, EINVAL, "reading '%s': %s", path, jerr.text);
    read_object(o, c);
    json_decref(o);
    if (!c->name || !c->image_rootfs || !c->argv[0] || c->log_max_files == 0) {
        berth_run_config_release(c);
        return berth_error_set(err, EINVAL, "'%s' is incomplete", path);
    }
    /* the service's own filter, as its init and service have */
    if (parse_profile(c, c->seccomp_profile ? strlen(c->seccomp_profile) : 0, err) < 0) {
        berth_run_config_release(c);
        return -1;
    }
    return 0;
}
