/* spec: parsing, defaults, canonical form and hash, error collection, bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"
#include "util.h"

#define DIGEST "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static int parse(const char *yaml, struct berth_spec *spec, struct berth_spec_errors *errs)
{
    return berth_spec_parse_buffer(yaml, strlen(yaml), "t.yaml", spec, errs);
}

static void hash_of(const char *yaml, const char *name, char out[65])
{
    struct berth_spec spec = BERTH_SPEC_INIT;
    struct berth_spec_errors errs = BERTH_SPEC_ERRORS_INIT;

    if (parse(yaml, &spec, &errs) < 0) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%u:%u: %s: %s\n", errs.v[i].line, errs.v[i].column, errs.v[i].path,
                    errs.v[i].message);
        fail_msg("unexpected errors");
    }
    const struct berth_service *s = berth_spec_find(&spec, name);
    assert_non_null(s);
    berth_service_hash(s, out);
    berth_spec_release(&spec);
}

static void test_full_example(void **state)
{
    (void)state;
    const char *src = getenv("BERTH_SOURCE_DIR");
    _cleanup_free_ char *path =
        xasprintf("%s/manifests-schema/examples/valid/full.yaml", src ? src : ".");
    struct berth_spec spec = BERTH_SPEC_INIT;
    struct berth_spec_errors errs = BERTH_SPEC_ERRORS_INIT;

    assert_int_equal(berth_spec_parse_file(path, &spec, &errs), 0);
    assert_int_equal(errs.n, 0);
    assert_int_equal(spec.version, 1);
    assert_int_equal(spec.nservices, 1);
    const struct berth_service *s = &spec.services[0];
    assert_string_equal(s->name, "web");
    assert_string_equal(s->image.url, "https://artifacts.example/web-1.4.2.tar.zst");
    assert_int_equal(s->image.nmirrors, 1);
    assert_non_null(s->image.signature_public_key);
    assert_int_equal(s->ncommand, 2);
    assert_string_equal(s->command[1], "--port=8080");
    assert_string_equal(s->user, "1000:1000");
    assert_int_equal(s->nenv, 1);
    assert_string_equal(s->env[0].name, "LOG_LEVEL");
    assert_string_equal(s->env[0].value, "info");
    assert_int_equal(s->nmounts, 2);
    assert_true(s->mounts[0].readonly);
    assert_true(s->mounts[1].tmpfs);
    assert_int_equal(s->mounts[1].size, 64 << 20);
    assert_int_equal(s->limits.memory, 512 << 20);
    assert_int_equal(s->limits.cpus_milli, 1500);
    assert_int_equal(s->limits.pids, 256);
    assert_int_equal(s->limits.nofile, 65536);
    assert_int_equal(s->ncap_add, 1);
    assert_string_equal(s->cap_add[0], "NET_BIND_SERVICE");
    assert_int_equal(s->healthcheck.interval_ms, 10000);
    assert_int_equal(s->healthcheck.timeout_ms, 2000);
    assert_int_equal(s->backoff.max_ms, 300000);
    assert_int_equal(s->stop_signal, SIGTERM);
    berth_spec_release(&spec);
    assert_int_equal(spec.nservices, 0);
}

static void test_defaults(void **state)
{
    (void)state;
    struct berth_spec spec = BERTH_SPEC_INIT;

    assert_int_equal(
        parse("version: 1\nservices:\n  a:\n    image: {url: http://x/a, digest: " DIGEST "}\n",
              &spec, NULL),
        0);
    const struct berth_service *s = &spec.services[0];
    assert_int_equal(s->restart, BERTH_RESTART_ALWAYS);
    assert_int_equal(s->network, BERTH_NETWORK_HOST);
    assert_int_equal(s->image.format, BERTH_FORMAT_AUTO);
    assert_int_equal(s->backoff.initial_ms, 1000);
    assert_int_equal(s->backoff.max_ms, 300000);
    assert_int_equal(s->backoff.reset_after_ms, 600000);
    assert_int_equal(s->log.max_size, 10 << 20);
    assert_int_equal(s->log.max_files, 5);
    assert_int_equal(s->stop_signal, SIGTERM);
    assert_int_equal(s->stop_timeout_ms, 10000);
    assert_true(s->enabled);
    assert_null(s->command);
    assert_int_equal(s->healthcheck.ncommand, 0);
    assert_int_equal(s->limits.memory, 0);

    _cleanup_free_ char *json = berth_service_canonical_json(s);
    assert_string_equal(
        json, "{\"backoff\":{\"initial\":1000,\"max\":300000,\"reset_after\":600000},"
              "\"capabilities\":{\"add\":[],\"drop\":[]},\"command\":null,\"enabled\":true,"
              "\"env\":{},\"healthcheck\":null,\"hostname\":null,"
              "\"image\":{\"digest\":\"" DIGEST "\",\"format\":\"auto\",\"mirrors\":[],"
              "\"signature\":null,\"url\":\"http://x/a\"},"
              "\"limits\":{\"cpus\":null,\"memory\":null,\"nofile\":null,\"pids\":null},"
              "\"log\":{\"max_files\":5,\"max_size\":10485760},\"mounts\":[],\"name\":\"a\","
              "\"network\":\"host\",\"readonly_rootfs\":false,\"restart\":\"always\","
              "\"stop_signal\":\"SIGTERM\",\"stop_timeout\":10000,\"user\":null,"
              "\"workdir\":null}");
    berth_spec_release(&spec);
}

static const char block_form[] = "version: 1\n"
                                 "services:\n"
                                 "  web:\n"
                                 "    image:\n"
                                 "      url: https://a.example/web.tar\n"
                                 "      digest: " DIGEST "\n"
                                 "    env:\n"
                                 "      B: 2\n"
                                 "      A: x\n"
                                 "    limits:\n"
                                 "      memory: 512M\n"
                                 "      cpus: 1.5\n"
                                 "    capabilities:\n"
                                 "      add: [NET_ADMIN, CAP_NET_RAW]\n"
                                 "    stop_timeout: 10s\n";

/* the same service: flow style, other key order, other units, defaults
 * written out, capability names repeated and prefixed */
static const char flow_form[] =
    "services: {web: {capabilities: {add: [NET_RAW, CAP_NET_ADMIN, NET_ADMIN], drop: []},\n"
    "  limits: {cpus: 1.500, memory: 524288K}, stop_timeout: 10000ms, restart: always,\n"
    "  env: {A: \"x\", B: \"2\"}, enabled: true, backoff: {initial: 1s, max: 5m},\n"
    "  image: {digest: '" DIGEST "', url: 'https://a.example/web.tar', format: auto}}}\n"
    "version: 1\n";

static void test_hash_ignores_form(void **state)
{
    (void)state;
    char a[65], b[65], c[65];

    hash_of(block_form, "web", a);
    hash_of(flow_form, "web", b);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), 64);

    /* and changes with the meaning */
    _cleanup_free_ char *changed = xstrdup(block_form);
    char *p = strstr(changed, "512M");
    p[0] = '6';
    hash_of(changed, "web", c);
    assert_string_not_equal(a, c);
}

static void test_fields(void **state)
{
    (void)state;
    struct berth_spec spec = BERTH_SPEC_INIT;
    struct berth_field *f = NULL, *g = NULL;

    assert_int_equal(parse(block_form, &spec, NULL), 0);
    size_t n = berth_service_fields(&spec.services[0], &f);
    assert_true(n > 20);
    bool seen_env = false, seen_mem = false;
    for (size_t i = 0; i < n; i++) {
        if (i)
            assert_true(strcmp(f[i - 1].path, f[i].path) < 0);
        if (!strcmp(f[i].path, "env.B")) {
            assert_string_equal(f[i].value, "\"2\"");
            seen_env = true;
        }
        if (!strcmp(f[i].path, "limits.memory")) {
            assert_string_equal(f[i].value, "536870912");
            seen_mem = true;
        }
        if (!strcmp(f[i].path, "capabilities.add"))
            assert_string_equal(f[i].value, "[\"NET_ADMIN\",\"NET_RAW\"]");
    }
    assert_true(seen_env && seen_mem);

    /* a stored spec.json flattens the same */
    _cleanup_free_ char *json = berth_service_canonical_json(&spec.services[0]);
    long m = berth_canonical_json_fields(json, &g);
    assert_int_equal(m, (long)n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(f[i].path, g[i].path);
        assert_string_equal(f[i].value, g[i].value);
    }
    berth_fields_free(f, n);
    berth_fields_free(g, n);
    assert_int_equal(berth_canonical_json_fields("{\"a\":", &g), -1);
    berth_spec_release(&spec);
}

static void test_all_errors(void **state)
{
    (void)state;
    struct berth_spec spec = BERTH_SPEC_INIT;
    struct berth_spec_errors errs = BERTH_SPEC_ERRORS_INIT;
    const char *yaml = "version: 1\n"
                       "services:\n"
                       "  web:\n"
                       "    image: {url: http://x/a, digest: nope}\n"
                       "    limits: {memory: 12Q, pids: -3}\n"
                       "    enabeld: true\n";

    assert_int_equal(parse(yaml, &spec, &errs), -1);
    assert_int_equal(spec.nservices, 0);
    assert_int_equal(errs.n, 4);
    assert_string_equal(errs.v[0].path, "services.web.image.digest");
    assert_int_equal(errs.v[0].line, 4);
    assert_int_equal(errs.v[0].column, 38);
    assert_string_equal(errs.v[1].path, "services.web.limits.memory");
    assert_string_equal(errs.v[2].path, "services.web.limits.pids");
    assert_string_equal(errs.v[3].path, "services.web.enabeld");
    assert_non_null(strstr(errs.v[3].message, "did you mean 'enabled'"));
    _cleanup_free_ char *line = berth_spec_error_format(&errs.v[1]);
    assert_string_equal(line, "t.yaml:5:22: services.web.limits.memory: invalid size '12Q': "
                              "expected a positive number with an optional K, M, G or T "
                              "suffix, such as 512M");
    berth_spec_errors_release(&errs);
    assert_int_equal(errs.n, 0);
}

static void expect_one_error(const char *data, size_t len, const char *fragment)
{
    struct berth_spec spec = BERTH_SPEC_INIT;
    struct berth_spec_errors errs = BERTH_SPEC_ERRORS_INIT;
    uint64_t t0 = berth_now_ms();

    assert_int_equal(berth_spec_parse_buffer(data, len, "x", &spec, &errs), -1);
    assert_true(berth_now_ms() - t0 < 2000);
    assert_int_equal(errs.n, 1);
    if (!strstr(errs.v[0].message, fragment))
        fail_msg("'%s' does not contain '%s'", errs.v[0].message, fragment);
    berth_spec_errors_release(&errs);
}

static void test_bounds(void **state)
{
    (void)state;
    /* 10,000-deep nesting */
    size_t n = 10000;
    _cleanup_free_ char *deep = xmalloc(2 * n + 32);
    strcpy(deep, "version: 1\nservices: ");
    size_t k = strlen(deep);
    memset(deep + k, '[', n);
    memset(deep + k + n, ']', n);
    expect_one_error(deep, k + 2 * n, "nesting deeper than");

    /* billion laughs */
    char bomb[4096] = "a: &a [x,x,x,x,x,x,x,x,x,x]\n";
    for (char c = 'b'; c <= 'k'; c++)
        snprintf(bomb + strlen(bomb), sizeof(bomb) - strlen(bomb),
                 "%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n", c, c, c - 1, c - 1, c - 1,
                 c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1);
    expect_one_error(bomb, strlen(bomb), "alias bomb");

    /* oversized */
    size_t big = BERTH_SPEC_MAX_SIZE + 1;
    _cleanup_free_ char *huge = xmalloc(big);
    memset(huge, '#', big);
    expect_one_error(huge, big, "file too large");

    /* binary garbage: NULs and invalid UTF-8 */
    char garbage[256];
    for (size_t i = 0; i < sizeof(garbage); i++)
        garbage[i] = (char)(i * 37 + 11);
    expect_one_error(garbage, sizeof(garbage), "invalid input");

    expect_one_error("", 0, "the file is empty");
    expect_one_error("a: *nope\n", 9, "undefined alias");
}

static void test_find_and_sorted(void **state)
{
    (void)state;
    struct berth_spec spec = BERTH_SPEC_INIT;
    const char *yaml = "version: 1\nservices:\n"
                       "  zeta: {image: {url: http://x/a, digest: " DIGEST "}}\n"
                       "  alpha: {image: {url: http://x/a, digest: " DIGEST "}}\n";

    assert_int_equal(parse(yaml, &spec, NULL), 0);
    assert_string_equal(spec.services[0].name, "alpha");
    assert_non_null(berth_spec_find(&spec, "zeta"));
    assert_null(berth_spec_find(&spec, "beta"));
    berth_spec_release(&spec);
}

static void test_missing_file(void **state)
{
    (void)state;
    struct berth_spec spec = BERTH_SPEC_INIT;
    struct berth_spec_errors errs = BERTH_SPEC_ERRORS_INIT;

    assert_int_equal(berth_spec_parse_file("/nonexistent/services.yaml", &spec, &errs), -1);
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.v[0].line, 0);
    assert_string_equal(errs.v[0].file, "/nonexistent/services.yaml");
    berth_spec_errors_release(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_example),      cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_hash_ignores_form), cmocka_unit_test(test_fields),
        cmocka_unit_test(test_all_errors),        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_find_and_sorted),   cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
