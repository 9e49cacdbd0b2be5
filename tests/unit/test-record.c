#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "record.h"
#include "status.h"
#include "store.h"
#include "util.h"

#define H1 "1111111111111111111111111111111111111111111111111111111111111111"
#define H2 "2222222222222222222222222222222222222222222222222222222222222222"
#define D1 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define D2 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static char *make_root(void)
{
    char tmpl[] = "/tmp/berth-test-record-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    return xstrdup(tmpl);
}

static char *slurp(const char *dir, enum berth_record_file f)
{
    _cleanup_free_ char *path = berth_record_path(dir, f);
    char *text = NULL;
    berth_error err = BERTH_ERROR_INIT;
    return berth_read_file(path, 1 << 20, &text, NULL, &err) < 0 ? NULL : text;
}

static void test_paths(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = berth_record_dir("/r", "web");
    _cleanup_free_ char *status = berth_record_path(dir, BERTH_RECORD_STATUS);
    _cleanup_free_ char *prev = berth_record_path(dir, BERTH_RECORD_PREVIOUS_HASH);

    /* the layout DESIGN.md and HACKING.md promise, and tests rely on */
    assert_string_equal(dir, "/r/services/web");
    assert_string_equal(status, "/r/services/web/status.json");
    assert_string_equal(prev, "/r/services/web/previous/spec.sha256");
    assert_string_equal(berth_record_file_name(BERTH_RECORD_CONTAINER), "container.json");
    assert_string_equal(berth_record_file_name(BERTH_RECORD_SPEC), "spec.json");
    assert_string_equal(berth_record_file_name(BERTH_RECORD_HASH), "spec.sha256");
    assert_string_equal(berth_record_file_name(BERTH_RECORD_REJECTED), "rejected.sha256");
    assert_string_equal(berth_record_file_name(BERTH_RECORD_KEEPER_LOCK), "keeper.lock");
    assert_string_equal(berth_record_file_name(BERTH_RECORD_KEEPER_SOCK), "keeper.sock");
    assert_string_equal(berth_record_file_name(BERTH_RECORD_INIT), "init.json");
    assert_string_equal(berth_record_file_name(BERTH_RECORD_LOG), "log");
}

static void test_cgroup_names(void **state)
{
    (void)state;
    _cleanup_free_ char *def = berth_cgroup_service_path("/var/lib/berth", "web");
    _cleanup_free_ char *other = berth_cgroup_service_path("/nonexistent/root", "web");
    _cleanup_free_ char *scope = berth_cgroup_service_scope("/nonexistent/root", "web");
    _cleanup_free_ char *defscope = berth_cgroup_service_scope("/var/lib/berth", "web");

    assert_string_equal(def, "berth/web");
    assert_string_equal(defscope, "berth-web.scope");
    /* "web@<8 hex>" under another root; the scope has "-" for the "@" */
    assert_int_equal(strlen(other), strlen("berth/web@") + 8);
    assert_memory_equal(other, "berth/web@", 10);
    assert_memory_equal(scope, "berth-web-", 10);
    assert_string_equal(scope + 10 + 8, ".scope");
    assert_memory_equal(scope + 10, other + 10, 8);
}

static void test_versions(void **state)
{
    (void)state;
    _cleanup_free_ char *root = make_root();
    _cleanup_free_ char *dir = berth_record_dir(root, "web");
    berth_error err = BERTH_ERROR_INIT;
    char hash[65];

    struct berth_record_version v1 = {"{\"c\": 1}", "{\"s\": 1}", H1};
    assert_int_equal(berth_record_write(root, "web", &v1, true, &err), 0);
    assert_true(berth_record_read_hash(dir, BERTH_RECORD_HASH, hash));
    assert_string_equal(hash, H1);
    /* the first version has nothing before it */
    assert_false(berth_record_read_hash(dir, BERTH_RECORD_PREVIOUS_HASH, hash));
    assert_int_equal(berth_record_check_previous(root, "web", &err), -1);

    struct berth_record_version v2 = {"{\"c\": 2}", "{\"s\": 2}", H2};
    assert_int_equal(berth_record_write(root, "web", &v2, true, &err), 0);
    assert_true(berth_record_read_hash(dir, BERTH_RECORD_PREVIOUS_HASH, hash));
    assert_string_equal(hash, H1);
    _cleanup_free_ char *spec = berth_record_read_spec(root, "web");
    assert_string_equal(spec, "{\"s\": 2}");

    /* back to v1: v2 is rejected until a new version forgets it */
    assert_int_equal(berth_record_check_previous(root, "web", &err), 0);
    assert_int_equal(berth_record_restore_previous(root, "web", &err), 0);
    assert_true(berth_record_read_hash(dir, BERTH_RECORD_HASH, hash));
    assert_string_equal(hash, H1);
    assert_true(berth_record_read_hash(dir, BERTH_RECORD_REJECTED, hash));
    assert_string_equal(hash, H2);
    _cleanup_free_ char *conf = slurp(dir, BERTH_RECORD_CONTAINER);
    assert_string_equal(conf, "{\"c\": 1}");
    berth_record_forget_rejection(root, "web");
    assert_false(berth_record_read_hash(dir, BERTH_RECORD_REJECTED, hash));

    assert_int_equal(berth_record_write(root, "web", &v2, false, &err), 0);
    assert_int_equal(berth_record_restore_previous(root, "web", &err), 0);
    assert_int_equal(berth_record_write(root, "web", &v2, false, &err), 0);
    /* a new version forgets the rejection */
    assert_false(berth_record_read_hash(dir, BERTH_RECORD_REJECTED, hash));
    assert_int_equal(berth_rm_rf(root, &err), 0);
}

static void test_list_status_and_images(void **state)
{
    (void)state;
    _cleanup_free_ char *root = make_root();
    berth_error err = BERTH_ERROR_INIT;
    char **names;
    size_t n;
    json_t *o;
    struct berth_store_users u;

    /* no services/ yet: nothing, no error */
    assert_int_equal(berth_record_list(root, &names, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(berth_record_status_load(root, "web", &o, &err), -1);

    struct berth_record_version web = {"{}", "{\"image\": {\"digest\": \"sha256:" D1 "\"}}", H1};
    struct berth_record_version web2 = {"{}", "{\"image\": {\"digest\": \"sha256:" D2 "\"}}", H2};
    struct berth_record_version db = {"{}", "{\"x\": [{\"image\": \"sha256:" D2 "\"}]}", H1};
    assert_int_equal(berth_record_write(root, "web", &web, true, &err), 0);
    assert_int_equal(berth_record_write(root, "web", &web2, true, &err), 0);
    assert_int_equal(berth_record_write(root, "db", &db, true, &err), 0);
    assert_int_equal(berth_record_list(root, &names, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "db");
    assert_string_equal(names[1], "web");
    berth_strv_free(names);

    assert_int_equal(berth_record_images(root, &u, &err), 0);
    assert_int_equal(u.n, 3);
    assert_string_equal(u.digests[0], D2);
    assert_string_equal(u.names[0], "db");
    assert_string_equal(u.digests[1], D2);
    assert_string_equal(u.names[1], "web");
    assert_string_equal(u.digests[2], D1);
    assert_string_equal(u.names[2], "web (previous)");
    berth_store_users_release(&u);

    assert_int_equal(berth_record_status_write(root, "web", "{\"state\": \"running\"}", &err), 0);
    assert_int_equal(berth_record_status_load(root, "web", &o, &err), 0);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "running");
    json_decref(o);
    assert_int_equal(berth_rm_rf(root, &err), 0);
}

static void test_keeper_lock(void **state)
{
    (void)state;
    _cleanup_free_ char *root = make_root();
    _cleanup_free_ char *dir = berth_record_dir(root, "web");
    berth_error err = BERTH_ERROR_INIT;
    pid_t pid = 0;
    int fd = -1, fd2 = -1;

    assert_int_equal(berth_mkdir_p(dir, 0700, &err), 0);
    assert_false(berth_record_keeper_alive(root, "web", &pid));
    assert_int_equal(berth_record_keeper_lock(dir, &fd, &err), 0);
    assert_true(berth_record_keeper_alive(root, "web", &pid));
    assert_int_equal(pid, getpid());
    /* one keeper at a time */
    assert_int_equal(berth_record_keeper_lock(dir, &fd2, &err), -1);
    close(fd2);
    close(fd);
    assert_false(berth_record_keeper_alive(root, "web", NULL));
    assert_int_equal(berth_rm_rf(root, &err), 0);
}

/* The readers of a whole list: relative to the open ROOT/services, the
 * keeper lock first (a record no keeper ran is "stopped" at once). */
static void test_records_at(void **state)
{
    (void)state;
    _cleanup_free_ char *root = make_root();
    _cleanup_free_ char *dir = berth_record_dir(root, "web");
    berth_error err = BERTH_ERROR_INIT;
    struct berth_records recs;
    struct berth_record_at at;
    struct berth_status st;
    char hash[65];
    int fd = -1;

    assert_int_equal(berth_records_open(root, &recs, &err), 0);
    assert_int_equal(recs.dfd, -1);
    assert_int_equal(recs.n, 0);
    berth_records_close(&recs);

    struct berth_record_version v = {"{}", "{}", H1};
    assert_int_equal(berth_record_write(root, "web", &v, false, &err), 0);
    assert_int_equal(berth_record_write(root, "db", &v, false, &err), 0);
    assert_int_equal(berth_records_open(root, &recs, &err), 0);
    assert_true(recs.dfd >= 0);
    assert_int_equal(recs.n, 2);
    assert_string_equal(recs.names[0], "db");
    assert_string_equal(recs.names[1], "web");
    at = berth_records_at(&recs, 1);
    assert_true(berth_record_read_hash_at(&at, BERTH_RECORD_HASH, hash));
    assert_string_equal(hash, H1);
    assert_false(berth_record_read_hash_at(&at, BERTH_RECORD_PREVIOUS_HASH, hash));

    /* never ran */
    assert_int_equal(berth_record_keeper_probe_at(&at, NULL), BERTH_KEEPER_NEVER);
    berth_status_read_listed(&recs, 1, true, &st);
    assert_string_equal(st.name, "web");
    assert_int_equal(st.state, BERTH_STATE_STOPPED);
    assert_int_equal(st.keeper, BERTH_KEEPER_NEVER);
    berth_status_release(&st);
    /* a list of statuses does not ask the lock of a stopped record */
    berth_status_read_listed(&recs, 1, false, &st);
    assert_int_equal(st.state, BERTH_STATE_STOPPED);
    assert_int_equal(st.keeper, BERTH_KEEPER_UNKNOWN);
    berth_status_release(&st);

    /* running, its keeper alive */
    assert_int_equal(berth_record_keeper_lock(dir, &fd, &err), 0);
    assert_int_equal(berth_record_status_write(root, "web", "{\"state\": \"running\"}", &err), 0);
    berth_status_read_listed(&recs, 1, true, &st);
    assert_int_equal(st.state, BERTH_STATE_RUNNING);
    assert_int_equal(st.keeper, BERTH_KEEPER_ALIVE);
    assert_false(st.keeper_gone);
    berth_status_release(&st);

    /* its keeper killed, no container left: failed */
    close(fd);
    berth_status_read_listed(&recs, 1, true, &st);
    assert_int_equal(st.state, BERTH_STATE_FAILED);
    assert_int_equal(st.keeper, BERTH_KEEPER_GONE);
    assert_true(st.keeper_gone);
    assert_false(st.orphaned);
    berth_status_release(&st);

    berth_records_close(&recs);
    assert_int_equal(berth_rm_rf(root, &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),       cmocka_unit_test(test_cgroup_names),
        cmocka_unit_test(test_versions),    cmocka_unit_test(test_list_status_and_images),
        cmocka_unit_test(test_keeper_lock), cmocka_unit_test(test_records_at),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
