/* canonical form: specs stored by earlier berths read, write and hash the
 * same. tests/unit/canon/NAME.yaml are desired-state files (the valid
 * examples, the demo's, and edge.yaml with every field, escapes, unicode,
 * the largest numbers, empty lists and maps); NAME/SERVICE.json,
 * SERVICE.sha256 and SERVICE.fields are what berth wrote for them before
 * its canonical form was rewritten: the spec.json bytes, the spec.sha256
 * line (the shape hash) and the fields its reader made of spec.json,
 * "PATH\tVALUE" per line. Never regenerate them: they are the contract
 * with the records on the hosts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "spec.h"
#include "util.h"

static char *fixture(const char *dir, const char *name, const char *ext)
{
    _cleanup_free_ char *path = xasprintf("%s/%s.%s", dir, name, ext);
    berth_error e = BERTH_ERROR_INIT;
    char *data = NULL;

    if (berth_read_file(path, 1 << 20, &data, NULL, &e) < 0)
        fail_msg("%s: %s", path, e.msg);
    return data;
}

static char *fields_text(const struct berth_field *f, long n)
{
    char *s = xstrdup("");

    for (long i = 0; i < n; i++) {
        char *t = xasprintf("%s%s\t%s\n", s, f[i].path, f[i].value);
        free(s);
        s = t;
    }
    return s;
}

/* every object's keys in bytewise order, as the writer promises */
static void assert_keys_sorted(const json_t *v)
{
    const char *key, *prev = NULL;
    json_t *item;
    size_t i;

    if (json_is_array(v))
        json_array_foreach(v, i, item) assert_keys_sorted(item);
    if (!json_is_object(v))
        return;
    json_object_foreach((json_t *)v, key, item)
    {
        if (prev)
            assert_true(strcmp(prev, key) < 0);
        prev = key;
        assert_keys_sorted(item);
    }
}

static void check_service(const char *dir, const char *name, const struct berth_service *s)
{
    _cleanup_free_ char *json = fixture(dir, name, "json");
    _cleanup_free_ char *sha = fixture(dir, name, "sha256");
    _cleanup_free_ char *fields = fixture(dir, name, "fields");
    _cleanup_free_ char *mine = berth_service_canonical_json(s);
    _cleanup_free_ char *json_path = xasprintf("%s/%s.json", dir, name);
    _cleanup_free_ char *read_back = NULL, *made = NULL;
    char hash[65], shape[65], file_hash[65];
    berth_error e = BERTH_ERROR_INIT;
    struct berth_field *f;
    long n;

    /* written byte for byte as before, and hashed the same */
    assert_string_equal(mine, json);
    berth_service_shape_hash(s, shape);
    assert_int_equal(strlen(sha), 65);
    assert_memory_equal(shape, sha, 64);
    berth_service_hash(s, hash);
    assert_int_equal(berth_sha256_file(json_path, file_hash, &e), 0);
    assert_string_equal(hash, file_hash);

    /* the stored spec reads back to the fields it read to before */
    n = berth_canonical_json_fields(json, &f);
    assert_true(n > 0);
    read_back = fields_text(f, n);
    berth_fields_free(f, (size_t)n);
    assert_string_equal(read_back, fields);
    n = (long)berth_service_fields(s, &f);
    made = fields_text(f, n);
    berth_fields_free(f, (size_t)n);
    assert_string_equal(made, fields);

    json_t *t = json_loads(json, 0, NULL);
    assert_non_null(t);
    assert_keys_sorted(t);
    json_decref(t);
}

/* The services of NAME.yaml, and for "edge" a profile file's fields too
 * (a path in a file would differ from checkout to checkout). */
static size_t check_file(const char *canon, const char *file)
{
    _cleanup_free_ char *yaml = xasprintf("%s/%s", canon, file);
    _cleanup_free_ char *dir = xstrdup(yaml);
    struct berth_spec spec = BERTH_SPEC_INIT;
    size_t checked = 0;

    dir[strlen(dir) - strlen(".yaml")] = '\0';
    assert_int_equal(berth_spec_parse_file(yaml, &spec, NULL), 0);
    for (size_t i = 0; i < spec.nservices; i++) {
        struct berth_service *s = &spec.services[i];
        check_service(dir, s->name, s);
        checked++;
        if (!strcmp(s->name, "edge")) {
            struct berth_service v = *s;
            v.seccomp = "/etc/berth/seccomp/\xc3\xa9"
                        "dge.json";
            v.seccomp_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
            check_service(dir, "edge+seccomp-file", &v);
            checked++;
        }
    }
    berth_spec_release(&spec);
    return checked;
}

static void test_stored_specs(void **state)
{
    (void)state;
    const char *src = getenv("BERTH_SOURCE_DIR");
    _cleanup_free_ char *canon = xasprintf("%s/tests/unit/canon", src ? src : ".");
    DIR *d = opendir(canon);
    struct dirent *de;
    size_t files = 0, services = 0;

    assert_non_null(d);
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len > 5 && !strcmp(de->d_name + len - 5, ".yaml")) {
            services += check_file(canon, de->d_name);
            files++;
        }
    }
    closedir(d);
    assert_int_equal(files, 9);
    assert_int_equal(services, 14);
}

/* what the writer never writes is not a canonical spec */
static void test_not_canonical(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"a\":", "[]", "{\"a\":1.5}", "{\"a\":-1}", "\"x\"", "",
    };
    struct berth_field *f;

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(berth_canonical_json_fields(bad[i], &f), -1);
    assert_int_equal(berth_canonical_json_fields("{\"env\":{},\"m\":[{\"a\":1},2]}", &f), 2);
    assert_string_equal(f[0].path, "m[0].a");
    assert_string_equal(f[1].path, "m[1]");
    assert_string_equal(f[1].value, "2");
    berth_fields_free(f, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stored_specs),
        cmocka_unit_test(test_not_canonical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
