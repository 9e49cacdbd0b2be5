/* The migration bridges without a registry: YAML scalars that must stay
 * strings, the Kubernetes and systemd texts for parsed specs, what becomes
 * a note, and a Compose file whose services cannot be imported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compose.h"
#include "export.h"
#include "spec.h"
#include "util.h"
#include "yaml-emit.h"

#define DIGEST "sha256:3f1c0a4b7e2d9c8f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f"

static void test_plain_scalars(void **state)
{
    (void)state;
    const char *plain[] = {"info",
                           "/usr/bin/web",
                           "app.kubernetes.io/name",
                           "NET_ADMIN",
                           "registry.example/web@" DIGEST,
                           "a=b",
                           "x-y_z"};
    const char *quoted[] = {"",    "8080", "yes", "On",   "NULL", "~",    "1e3",   ".inf",
                            "-x",  "x:",   "a b", "a: b", "#c",   "*ref", "12:30", "y",
                            "0x1", "{a}",  "[a]", "a,b",  "!tag", "a\nb"};

    for (size_t i = 0; i < ARRAY_SIZE(plain); i++)
        assert_true(berth_yaml_plain_ok(plain[i]));
    for (size_t i = 0; i < ARRAY_SIZE(quoted); i++)
        assert_false(berth_yaml_plain_ok(quoted[i]));
}

static void test_emit_keeps_strings(void **state)
{
    (void)state;
    berth_error err = BERTH_ERROR_INIT;
    /* "n" would read back as false: quoted, as are "8080" and "on" */
    json_t *doc = json_pack("{s:s,s:s,s:i,s:b,s:[s,s]}", "port", "8080", "debug", "on", "n", 3, "t",
                            1, "cmd", "/bin/sh", "-c");
    char *text = NULL;

    assert_int_equal(berth_yaml_emit(&doc, 1, &text, &err), 0);
    assert_non_null(strstr(text, "port: \"8080\"\n"));
    assert_non_null(strstr(text, "debug: \"on\"\n"));
    assert_non_null(strstr(text, "\"n\": 3\n"));
    assert_non_null(strstr(text, "t: true\n"));
    assert_non_null(strstr(text, "cmd: [/bin/sh, \"-c\"]\n"));
    assert_null(strstr(text, "---"));
    free(text);
    json_t *two[] = {doc, doc};
    assert_int_equal(berth_yaml_emit(two, 2, &text, &err), 0);
    assert_non_null(strstr(text, "---"));
    free(text);
    json_decref(doc);
}

static void parse(const char *yaml, struct berth_spec *spec)
{
    struct berth_spec_errors errs = BERTH_SPEC_ERRORS_INIT;
    int r = berth_spec_parse_buffer(yaml, strlen(yaml), "<test>", spec, &errs);
    if (r < 0) {
        char *line = berth_spec_error_format(&errs.v[0]);
        fail_msg("%s", line);
    }
}

static bool has_note(const struct berth_notes *notes, const char *svc, const char *field,
                     bool fatal)
{
    for (size_t i = 0; i < notes->n; i++)
        if (!strcmp(notes->v[i].service, svc) && !strcmp(notes->v[i].field, field) &&
            notes->v[i].fatal == fatal)
            return true;
    return false;
}

static const char two_services[] =
    "version: 1\n"
    "services:\n"
    "  web_1:\n"
    "    image: {url: 'oci://registry.example:5000/team/web:1@" DIGEST "', digest: " DIGEST "}\n"
    "    command: [/bin/web, '$(HOME)', '$$x']\n"
    "    env: {PRICE: '5 $$'}\n"
    "    user: app\n"
    "    limits: {memory: 1536M, cpus: 2, pids: 10}\n"
    "    stop_timeout: 1500ms\n"
    "  tarball:\n"
    "    image: {url: 'https://artifacts.example/t.tar', digest: " DIGEST "}\n";

static void test_kube(void **state)
{
    (void)state;
    struct berth_spec spec = BERTH_SPEC_INIT;
    struct berth_notes notes = BERTH_NOTES_INIT;
    berth_error err = BERTH_ERROR_INIT;
    char *text = NULL;

    parse(two_services, &spec);
    assert_int_equal(berth_export_kube(spec.services, spec.nservices, BERTH_KUBE_DEPLOYMENT, false,
                                       NULL, &text, &notes, &err),
                     0);
    assert_non_null(strstr(text, "kind: Deployment\n"));
    assert_non_null(strstr(text, "name: web-1\n"));
    assert_non_null(strstr(text, "image: registry.example:5000/team/web@" DIGEST "\n"));
    assert_non_null(strstr(text, "app.kubernetes.io/name: web-1\n"));
    /* Kubernetes would expand $(HOME) and turn $$ into $ */
    assert_non_null(strstr(text, "args: [\"$$(HOME)\", \"$$$x\"]"));
    assert_non_null(strstr(text, "value: \"5 $$$\"\n"));
    assert_non_null(strstr(text, "memory: \"1536Mi\"\n"));
    assert_non_null(strstr(text, "cpu: \"2\"\n"));
    assert_non_null(strstr(text, "terminationGracePeriodSeconds: 2\n"));
    assert_null(strstr(text, "tarball"));
    assert_null(strstr(text, "runAsUser"));
    assert_true(has_note(&notes, "tarball", "image.url", true));
    assert_true(has_note(&notes, "web_1", "user", false));
    assert_true(has_note(&notes, "web_1", "limits.pids", false));
    assert_true(has_note(&notes, "web_1", "stop_timeout", false));
    assert_true(has_note(&notes, "web_1", "name", false));
    assert_int_equal(berth_notes_fatal(&notes, NULL), 1);
    assert_int_equal(berth_notes_fatal(&notes, "web_1"), 0);
    free(text);
    berth_notes_release(&notes);
    berth_spec_release(&spec);
}

static void test_systemd_quoting(void **state)
{
    (void)state;
    static const char yaml[] =
        "version: 1\n"
        "services:\n"
        "  job:\n"
        "    image: {url: 'https://artifacts.example/t.tar', digest: " DIGEST "}\n"
        "    command: [/bin/sh, -c, 'echo \"$HOME\" 100% \\ done']\n"
        "    env: {A: 'two words'}\n"
        "    restart: on-failure\n"
        "    mounts: [{type: tmpfs, target: /tmp, size: 1M}]\n"
        "    healthcheck: {command: [/bin/check]}\n";
    struct berth_spec spec = BERTH_SPEC_INIT;
    struct berth_notes notes = BERTH_NOTES_INIT;
    berth_error err = BERTH_ERROR_INIT;
    struct berth_systemd_options opt = {.root = "/var/lib/other root"};
    char *text = NULL;

    parse(yaml, &spec);
    assert_int_equal(berth_export_systemd(&spec.services[0], &opt, &text, &notes, &err), 0);
    assert_non_null(strstr(text, "ExecStartPre=/usr/bin/berth --root \"/var/lib/other root\" "
                                 "fetch https://artifacts.example/t.tar --digest " DIGEST "\n"));
    assert_non_null(strstr(text, " -e \"A=two words\" "));
    assert_non_null(strstr(text, " --tmpfs /tmp:1048576 "));
    assert_non_null(strstr(text, " " DIGEST " -- /bin/sh -c \"echo \\\"$$HOME\\\" 100%% \\\\ "
                                 "done\"\n"));
    assert_non_null(strstr(text, "Restart=on-failure\n"));
    assert_true(has_note(&notes, "job", "healthcheck", false));
    free(text);
    berth_notes_release(&notes);
    berth_spec_release(&spec);
}

static void test_compose_without_images(void **state)
{
    (void)state;
    char dir[] = "/tmp/berth-test-compose-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/docker-compose.yml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("x-base: &base\n"
          "  build: .\n"
          "  ports: ['80:80']\n"
          "services:\n"
          "  Web:\n"
          "    <<: *base\n"
          "  worker:\n"
          "    build: ./w\n"
          "networks: {front: {}}\n",
          f);
    fclose(f);
    struct berth_fetch_options fopt;
    berth_fetch_options_init(&fopt);
    struct berth_compose_options opt = {.fetch = &fopt};
    struct berth_notes notes = BERTH_NOTES_INIT;
    berth_error err = BERTH_ERROR_INIT;
    char *text = NULL;

    assert_int_equal(berth_compose_import(path, &opt, &text, &notes, &err), 0);
    assert_string_equal(text, "version: 1\nservices: {}\n");
    /* the merged build: and ports: are the service's */
    assert_true(has_note(&notes, "web", "build", true));
    assert_true(has_note(&notes, "web", "ports", false));
    assert_true(has_note(&notes, "web", "name", false));
    assert_true(has_note(&notes, "worker", "build", true));
    assert_true(has_note(&notes, "(file)", "networks", false));
    free(text);
    berth_notes_release(&notes);
    /* not a Compose file */
    f = fopen(path, "w");
    fputs("version: 1\n", f);
    fclose(f);
    assert_int_equal(berth_compose_import(path, &opt, &text, &notes, &err), -1);
    assert_non_null(strstr(err.msg, "not a Compose file"));
    berth_notes_release(&notes);
    unlink(path);
    rmdir(dir);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_scalars),
        cmocka_unit_test(test_emit_keeps_strings),
        cmocka_unit_test(test_kube),
        cmocka_unit_test(test_systemd_quoting),
        cmocka_unit_test(test_compose_without_images),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
