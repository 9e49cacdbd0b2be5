/* run-config: the run configuration resolved from a service or the flags
 * of `berth run` plus the image's config, and container.json read back,
 * also as earlier berths wrote it (tests/unit/container-json/). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caps.h"
#include "oci.h"
#include "run-config.h"
#include "seccomp-profile.h"
#include "spec.h"
#include "util.h"

#define HEX              "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DEFAULT_PATH_VAR BERTH_DEFAULT_PATH

/* ---- container.json ---------------------------------------------------- */

static char *fixture(const char *name)
{
    const char *src = getenv("BERTH_SOURCE_DIR");
    return xasprintf("%s/tests/unit/container-json/%s", src ? src : ".", name);
}

static char *slurp(const char *path)
{
    berth_error err = BERTH_ERROR_INIT;
    char *text = NULL;

    assert_int_equal(berth_read_file(path, 1 << 20, &text, NULL, &err), 0);
    return text;
}

/* What today's code writes for what it read is what the earlier berth
 * wrote: byte for byte. */
static void assert_round_trip(const char *name, const char *expect_name)
{
    _cleanup_free_ char *path = fixture(name);
    _cleanup_free_ char *expect_path = fixture(expect_name);
    _cleanup_free_ char *expect = slurp(expect_path);
    struct berth_run_config c;
    berth_error err = BERTH_ERROR_INIT;

    assert_int_equal(berth_run_config_read(path, &c, &err), 0);
    _cleanup_free_ char *text = berth_run_config_json(&c, &err);
    assert_non_null(text);
    assert_string_equal(text, expect);
    berth_run_config_release(&c);
}

static void test_container_json_full(void **state)
{
    (void)state;
    _cleanup_free_ char *path = fixture("full.json");
    struct berth_run_config c;
    berth_error err = BERTH_ERROR_INIT;

    assert_int_equal(berth_run_config_read(path, &c, &err), 0);
    assert_string_equal(c.name, "web");
    assert_string_equal(c.argv[2], "a \"quoted\" arg");
    assert_null(c.argv[3]);
    assert_string_equal(c.env[2], "HOME=/home/web");
    assert_string_equal(c.workdir, "/srv/web");
    assert_string_equal(c.user, "1000:1000");
    assert_true(c.network_none && c.readonly);
    assert_int_equal(c.nmounts, 2);
    assert_true(c.mounts[0].readonly);
    assert_string_equal(c.mounts[0].source, "/etc/awesome/blah.xml");
    assert_true(c.mounts[1].tmpfs);
    assert_null(c.mounts[1].source);
    assert_int_equal(c.mounts[1].size, 64 << 20);
    assert_int_equal(c.limits.memory, 512 << 20);
    assert_int_equal(c.limits.cpus_milli, 1500);
    assert_int_equal(c.limits.nofile, 65536);
    assert_int_equal(c.stop_signal, SIGQUIT);
    assert_int_equal(c.restart, BERTH_RESTART_ON_FAILURE);
    assert_string_equal(c.health_argv[1], "--quick");
    assert_int_equal(c.health_retries, 3);
    assert_true(c.health_restart);
    /* the profile file's text as apply read it, parsed */
    assert_string_equal(c.seccomp, "/etc/berth/seccomp.json");
    assert_non_null(c.profile);
    assert_ptr_equal(c.profile, c.profile_owned);
    berth_run_config_release(&c);
    assert_round_trip("full.json", "full.json");
}

static void test_container_json_plain(void **state)
{
    (void)state;
    _cleanup_free_ char *path = fixture("plain.json");
    struct berth_run_config c;
    berth_error err = BERTH_ERROR_INIT;

    assert_int_equal(berth_run_config_read(path, &c, &err), 0);
    assert_null(c.workdir);
    assert_null(c.user);
    assert_null(c.health_argv);
    assert_int_equal(c.nmounts, 0);
    assert_ptr_equal(c.profile, &berth_seccomp_default);
    berth_run_config_release(&c);
    assert_round_trip("plain.json", "plain.json");
}

/* Written before berth knew seccomp: Docker's profile. */
static void test_container_json_before_seccomp(void **state)
{
    (void)state;
    _cleanup_free_ char *path = fixture("before-seccomp.json");
    struct berth_run_config c;
    berth_error err = BERTH_ERROR_INIT;

    assert_int_equal(berth_run_config_read(path, &c, &err), 0);
    assert_string_equal(c.seccomp, "default");
    assert_ptr_equal(c.profile, &berth_seccomp_default);
    berth_run_config_release(&c);
    assert_round_trip("before-seccomp.json", "plain.json");
}

static void test_container_json_incomplete(void **state)
{
    (void)state;
    char path[] = "/tmp/berth-test-run-config-XXXXXX";
    int fd = mkstemp(path);
    struct berth_run_config c;
    berth_error err = BERTH_ERROR_INIT;

    assert_true(fd >= 0);
    assert_int_equal(write(fd, "{\"name\": \"web\", \"argv\": []}", 27), 27);
    close(fd);
    assert_int_equal(berth_run_config_read(path, &c, &err), -1);
    assert_non_null(strstr(err.msg, "is incomplete"));
    unlink(path);
}

/* ---- resolving ----------------------------------------------------------- */

struct fixture {
    char *rootfs;
    struct berth_spec spec;
    struct berth_image_config ic;
};

static char **strv(const char *a, const char *b, const char *c)
{
    char **v = NULL;
    size_t n = 0;
    const char *s[] = {a, b, c};

    for (size_t i = 0; i < ARRAY_SIZE(s) && s[i]; i++)
        berth_strv_push(&v, &n, s[i]);
    return v ? v : xcalloc(1, sizeof(char *));
}

static void write_file(const char *dir, const char *name, const char *text)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* An image with a user "web", its config: entrypoint + cmd, Env, WorkingDir,
 * User and StopSignal. */
static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    char tmpl[] = "/tmp/berth-test-run-config-XXXXXX";

    assert_non_null(mkdtemp(tmpl));
    f->rootfs = xstrdup(tmpl);
    _cleanup_free_ char *etc = xasprintf("%s/etc", f->rootfs);
    assert_int_equal(mkdir(etc, 0755), 0);
    write_file(etc, "passwd",
               "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1000:web:/home/web:/bin/sh\n");
    write_file(etc, "group", "root:x:0:\nweb:x:1000:\n");
    f->ic.entrypoint = strv("/bin/web", NULL, NULL);
    f->ic.cmd = strv("--port=80", NULL, NULL);
    f->ic.env = strv("PATH=/image/bin", "LANG=C", "FOO=image");
    f->ic.workdir = xstrdup("/srv");
    f->ic.user = xstrdup("web");
    f->ic.stop_signal = xstrdup("SIGQUIT");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    berth_error err = BERTH_ERROR_INIT;

    assert_int_equal(berth_rm_rf(f->rootfs, &err), 0);
    free(f->rootfs);
    berth_image_config_release(&f->ic);
    berth_spec_release(&f->spec);
    free(f);
    return 0;
}

static const struct berth_service *service(struct fixture *f, const char *body)
{
    _cleanup_free_ char *yaml = xasprintf("version: 1\nservices:\n  web:\n    image: {url: "
                                          "https://a.example/web.tar, digest: sha256:" HEX "}\n%s",
                                          body);
    struct berth_spec_errors errs = BERTH_SPEC_ERRORS_INIT;

    berth_spec_release(&f->spec);
    if (berth_spec_parse_buffer(yaml, strlen(yaml), "t.yaml", &f->spec, &errs) < 0) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s: %s\n", errs.v[i].path, errs.v[i].message);
        fail_msg("unexpected errors");
    }
    return &f->spec.services[0];
}

static int resolve_service(struct fixture *f, const char *body, struct berth_run_config *c,
                           berth_error *err)
{
    struct berth_run_source src = {.service = service(f, body),
                                   .spec_hash = "1111",
                                   .image_rootfs = f->rootfs,
                                   .image_digest = HEX,
                                   .image = &f->ic};
    return berth_run_config_resolve(&src, c, err);
}

static int resolve_flags(struct fixture *f, const struct berth_run_options *o,
                         struct berth_run_config *c, berth_error *err)
{
    struct berth_run_source src = {
        .flags = o, .image_name = "web.tar", .image_rootfs = f->rootfs, .image = &f->ic};
    return berth_run_config_resolve(&src, c, err);
}

static char *hostname_var(const char *given)
{
    char host[HOST_NAME_MAX + 1] = "";

    gethostname(host, sizeof(host) - 1);
    return xasprintf("HOSTNAME=%s", given ? given : host);
}

/* A service that sets none of them takes the image's command, user,
 * working directory and environment, not its stop signal. */
static void test_service_image_defaults(void **state)
{
    struct fixture *f = *state;
    struct berth_run_config c;
    berth_error err = BERTH_ERROR_INIT;
    _cleanup_free_ char *hn = hostname_var(NULL);

    assert_int_equal(resolve_service(f, "    restart: never\n", &c, &err), 0);
    assert_string_equal(c.name, "web");
    assert_string_equal(c.image_digest, "sha256:" HEX);
    assert_string_equal(c.spec_hash, "1111");
    assert_string_equal(c.image_rootfs, f->rootfs);
    assert_string_equal(c.argv[0], "/bin/web");
    assert_string_equal(c.argv[1], "--port=80");
    assert_null(c.argv[2]);
    assert_string_equal(c.user, "web");
    assert_string_equal(c.workdir, "/srv");
    /* the defaults, the image's Env over them (PATH in its place) */
    assert_string_equal(c.env[0], "PATH=/image/bin");
    assert_string_equal(c.env[1], hn);
    assert_string_equal(c.env[2], "HOME=/home/web");
    assert_string_equal(c.env[3], "LANG=C");
    assert_string_equal(c.env[4], "FOO=image");
    assert_null(c.env[5]);
    assert_int_equal(c.stop_signal, SIGTERM);
    assert_int_equal(c.stop_timeout_ms, 10000);
    assert_int_equal(c.restart, BERTH_RESTART_NEVER);
    assert_int_equal(c.caps, berth_caps_default());
    assert_string_equal(c.seccomp, "default");
    assert_ptr_equal(c.profile, &berth_seccomp_default);
    assert_int_equal(c.log_max_files, 5);
    assert_null(c.health_argv);
    berth_run_config_release(&c);
}

/* What the service sets wins over the image; its env goes over the
 * image's, in the file's order. */
static void test_service_overrides(void **state)
{
    struct fixture *f = *state;
    struct berth_run_config c;
    berth_error err = BERTH_ERROR_INIT;

    assert_int_equal(resolve_service(f,
                                     "    command: [/bin/other, -x]\n"
                                     "    user: root\n"
                                     "    workdir: /w\n"
                                     "    hostname: box\n"
                                     "    env: {FOO: svc, LANG: en, ZED: z}\n"
                                     "    network: none\n"
                                     "    stop_signal: SIGINT\n"
                                     "    capabilities: {add: [ALL], drop: [CHOWN]}\n"
                                     "    seccomp: unconfined\n"
                                     "    mounts: [{type: tmpfs, target: /tmp, size: 1M}]\n"
                                     "    limits: {memory: 64M, nofile: 100}\n"
                                     "    healthcheck: {command: [/bin/check], retries: 2}\n",
                                     &c, &err),
                     0);
    assert_string_equal(c.argv[0], "/bin/other");
    assert_string_equal(c.argv[1], "-x");
    assert_null(c.argv[2]);
    assert_string_equal(c.user, "root");
    assert_string_equal(c.workdir, "/w");
    assert_string_equal(c.hostname, "box");
    assert_string_equal(c.env[1], "HOSTNAME=box");
    assert_string_equal(c.env[2], "HOME=/root");
    assert_string_equal(c.env[3], "LANG=en");
    assert_string_equal(c.env[4], "FOO=svc");
    assert_string_equal(c.env[5], "ZED=z");
    assert_null(c.env[6]);
    assert_true(c.network_none);
    assert_int_equal(c.stop_signal, SIGINT);
    assert_int_equal(c.caps, ~0ULL & ~1ULL); /* CAP_CHOWN is 0 */
    assert_null(c.profile);
    assert_int_equal(c.nmounts, 1);
    assert_int_equal(c.mounts[0].size, 1 << 20);
    assert_int_equal(c.limits.memory, 64 << 20);
    assert_int_equal(c.limits.nofile, 100);
    assert_string_equal(c.health_argv[0], "/bin/check");
    assert_int_equal(c.health_retries, 2);
    berth_run_config_release(&c);
}

/* `berth run` with no flags: the image's command, user, workdir, env and
 * stop signal. */
static void test_flags_image_defaults(void **state)
{
    struct fixture *f = *state;
    struct berth_run_options o;
    struct berth_run_config c;
    berth_error err = BERTH_ERROR_INIT;

    berth_run_options_init(&o);
    o.name = "run-1";
    assert_int_equal(resolve_flags(f, &o, &c, &err), 0);
    assert_string_equal(c.name, "run-1");
    assert_null(c.image_digest);
    assert_null(c.spec_hash);
    assert_string_equal(c.argv[0], "/bin/web");
    assert_string_equal(c.argv[1], "--port=80");
    assert_string_equal(c.user, "web");
    assert_string_equal(c.workdir, "/srv");
    assert_string_equal(c.env[0], "PATH=/image/bin");
    assert_string_equal(c.env[2], "HOME=/home/web");
    assert_string_equal(c.env[4], "FOO=image");
    assert_int_equal(c.stop_signal, SIGQUIT);
    assert_int_equal(c.stop_timeout_ms, 10000);
    assert_int_equal(c.caps, berth_caps_default());
    assert_ptr_equal(c.profile, &berth_seccomp_default);
    berth_run_config_release(&c);
    berth_run_options_release(&o);
}

/* Flags win over the image; -e goes over the image's Env in the order
 * given, KEY alone copies ours. */
static void test_flags_override(void **state)
{
    struct fixture *f = *state;
    struct berth_run_options o;
    struct berth_run_config c;
    berth_error err = BERTH_ERROR_INIT;
    char *cmd[] = {"/bin/sh", "-c", "true", NULL};
    const char *env[] = {"FOO=flag", "NEW=1", "BERTH_TEST_COPIED", "FOO=last", "BERTH_TEST_UNSET"};

    setenv("BERTH_TEST_COPIED", "ours", 1);
    unsetenv("BERTH_TEST_UNSET");
    berth_run_options_init(&o);
    o.name = "run-2";
    o.command = cmd;
    o.user = "0";
    o.workdir = "/flag";
    o.hostname = "h";
    o.stop_signal = SIGUSR1;
    o.stop_signal_set = true;
    o.seccomp = "unconfined";
    o.env = xcalloc(ARRAY_SIZE(env), sizeof(char *));
    memcpy(o.env, env, sizeof(env));
    o.nenv = ARRAY_SIZE(env);
    assert_int_equal(resolve_flags(f, &o, &c, &err), 0);
    assert_string_equal(c.argv[0], "/bin/sh");
    assert_string_equal(c.argv[2], "true");
    assert_null(c.argv[3]);
    assert_string_equal(c.user, "0");
    assert_string_equal(c.workdir, "/flag");
    assert_string_equal(c.env[1], "HOSTNAME=h");
    assert_string_equal(c.env[2], "HOME=/root");
    assert_string_equal(c.env[3], "LANG=C");
    assert_string_equal(c.env[4], "FOO=last");
    assert_string_equal(c.env[5], "NEW=1");
    assert_string_equal(c.env[6], "BERTH_TEST_COPIED=ours");
    assert_null(c.env[7]);
    assert_int_equal(c.stop_signal, SIGUSR1);
    assert_null(c.profile);
    berth_run_config_release(&c);
    berth_run_options_release(&o);
}

/* A rootfs directory has no config: root in "/", the defaults only. */
static void test_flags_rootfs_without_config(void **state)
{
    struct fixture *f = *state;
    struct berth_run_options o;
    struct berth_run_config c;
    berth_error err = BERTH_ERROR_INIT;
    char *cmd[] = {"/bin/true", NULL};
    struct berth_run_source src = {
        .flags = &o, .image_name = "./rootfs", .image_rootfs = f->rootfs};
    _cleanup_free_ char *hn = hostname_var(NULL);

    berth_run_options_init(&o);
    o.name = "run-3";
    assert_int_equal(berth_run_config_resolve(&src, &c, &err), -1);
    assert_non_null(strstr(err.msg, "no command given, and './rootfs' has no default command"));
    o.command = cmd;
    assert_int_equal(berth_run_config_resolve(&src, &c, &err), 0);
    assert_null(c.user);
    assert_null(c.workdir);
    assert_string_equal(c.env[0], DEFAULT_PATH_VAR);
    assert_string_equal(c.env[1], hn);
    assert_string_equal(c.env[2], "HOME=/root");
    assert_null(c.env[3]);
    assert_int_equal(c.stop_signal, SIGTERM);
    berth_run_config_release(&c);
    berth_run_options_release(&o);
}

static void test_errors(void **state)
{
    struct fixture *f = *state;
    struct berth_run_config c;
    berth_error err = BERTH_ERROR_INIT;

    /* a user the image does not have: said now */
    assert_int_equal(resolve_service(f, "    user: nobody\n", &c, &err), -1);
    assert_non_null(strstr(err.msg, "nobody"));
    /* no command anywhere */
    berth_strv_free(f->ic.entrypoint);
    berth_strv_free(f->ic.cmd);
    f->ic.entrypoint = strv(NULL, NULL, NULL);
    f->ic.cmd = strv(NULL, NULL, NULL);
    berth_error_clear(&err);
    assert_int_equal(resolve_service(f, "    restart: always\n", &c, &err), -1);
    assert_non_null(strstr(
        err.msg, "no command: the service sets none and the image has no entrypoint or cmd"));
}

/* What resolve makes, container.json keeps. */
static void test_resolved_round_trip(void **state)
{
    struct fixture *f = *state;
    struct berth_run_config c, back;
    berth_error err = BERTH_ERROR_INIT;
    _cleanup_free_ char *path = xasprintf("%s/container.json", f->rootfs);

    assert_int_equal(resolve_service(f,
                                     "    mounts: [{source: /etc, target: /h, readonly: true}]\n"
                                     "    healthcheck: {command: [/bin/check]}\n",
                                     &c, &err),
                     0);
    _cleanup_free_ char *text = berth_run_config_json(&c, &err);
    assert_non_null(text);
    write_file(f->rootfs, "container.json", text);
    assert_int_equal(berth_run_config_read(path, &back, &err), 0);
    _cleanup_free_ char *again = berth_run_config_json(&back, &err);
    assert_string_equal(text, again);
    assert_string_equal(back.mounts[0].source, "/etc");
    assert_string_equal(back.health_argv[0], "/bin/check");
    berth_run_config_release(&back);
    berth_run_config_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_container_json_full),
        cmocka_unit_test(test_container_json_plain),
        cmocka_unit_test(test_container_json_before_seccomp),
        cmocka_unit_test(test_container_json_incomplete),
        cmocka_unit_test_setup_teardown(test_service_image_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_overrides, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flags_image_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flags_override, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flags_rootfs_without_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolved_round_trip, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
