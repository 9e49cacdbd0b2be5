#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "converge.h"
#include "spec.h"
#include "util.h"

static char *make_root(void)
{
    char tmpl[] = "/tmp/berth-test-converge-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    return xstrdup(tmpl);
}

static void remove_root(const char *root)
{
    _cleanup_free_ char *cmd = xasprintf("rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

struct calls {
    int waiting, planned;
    char plan[13];
};

static void on_waiting(void *ud)
{
    ((struct calls *)ud)->waiting++;
}

static void on_planned(void *ud, const struct berth_plan *plan)
{
    struct calls *c = ud;
    c->planned++;
    memcpy(c->plan, plan->id, sizeof(c->plan));
}

static bool exists(const char *root, const char *name)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", root, name);
    return access(path, F_OK) == 0;
}

/* `services: {}`: a plan of nothing, carried out, the summary written */
static void test_empty_spec(void **state)
{
    (void)state;
    _cleanup_free_ char *root = make_root();
    struct berth_spec spec = BERTH_SPEC_INIT;
    struct calls calls = {0};
    struct berth_converge_options o = {
        .root = root, .exe = "/bin/false", .planned = on_planned, .ud = &calls};
    struct berth_converge res;
    berth_error err = BERTH_ERROR_INIT;

    assert_int_equal(berth_converge_once(&spec, &o, &res, &err), 0);
    assert_true(res.locked && res.planned);
    assert_int_equal(res.plan.n, 0);
    assert_int_equal(res.failed, 0);
    assert_string_equal(res.summary_error.msg, "");
    assert_int_equal(calls.planned, 1);
    assert_int_equal(calls.waiting, 0);
    assert_string_equal(calls.plan, res.plan.id);
    assert_true(exists(root, "status.json") && exists(root, "lock"));
    berth_converge_release(&res);
    remove_root(root);
}

/* --plan: another plan than the one reviewed changes nothing */
static void test_want_plan(void **state)
{
    (void)state;
    _cleanup_free_ char *root = make_root();
    struct berth_spec spec = BERTH_SPEC_INIT;
    struct calls calls = {0};
    struct berth_converge_options o = {.root = root,
                                       .exe = "/bin/false",
                                       .want_plan = "000000000000",
                                       .planned = on_planned,
                                       .ud = &calls};
    struct berth_converge res;
    berth_error err = BERTH_ERROR_INIT;

    assert_int_equal(berth_converge_once(&spec, &o, &res, &err), -1);
    assert_int_equal(err.code, ESTALE);
    assert_non_null(strstr(err.msg, "reviewed 000000000000, now "));
    assert_true(res.locked && res.planned);
    assert_int_equal(calls.planned, 0);
    assert_false(exists(root, "status.json"));
    /* the plan now is the one to review */
    o.want_plan = res.plan.id;
    struct berth_converge again;
    berth_error_clear(&err);
    assert_int_equal(berth_converge_once(&spec, &o, &again, &err), 0);
    assert_int_equal(calls.planned, 1);
    assert_true(exists(root, "status.json"));
    berth_converge_release(&again);
    berth_converge_release(&res);
    remove_root(root);
}

/* A held ROOT/lock: told, then waited for */
static void test_waits_for_the_lock(void **state)
{
    (void)state;
    _cleanup_free_ char *root = make_root();
    _cleanup_free_ char *lock = xasprintf("%s/lock", root);
    int sync[2];
    char c;

    assert_int_equal(pipe(sync), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0 || flock(fd, LOCK_EX) < 0 || write(sync[1], "x", 1) != 1)
            _exit(1);
        usleep(200 * 1000);
        _exit(0);
    }
    close(sync[1]);
    assert_int_equal(read(sync[0], &c, 1), 1);
    close(sync[0]);

    struct berth_spec spec = BERTH_SPEC_INIT;
    struct calls calls = {0};
    struct berth_converge_options o = {
        .root = root, .exe = "/bin/false", .waiting = on_waiting, .ud = &calls};
    struct berth_converge res;
    berth_error err = BERTH_ERROR_INIT;
    int status;

    assert_int_equal(berth_converge_once(&spec, &o, &res, &err), 0);
    assert_int_equal(calls.waiting, 1);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    berth_converge_release(&res);
    remove_root(root);
}

/* A root that cannot be made: nothing locked, nothing planned */
static void test_unusable_root(void **state)
{
    (void)state;
    struct berth_spec spec = BERTH_SPEC_INIT;
    struct berth_converge_options o = {.root = "/dev/null/berth", .exe = "/bin/false"};
    struct berth_converge res;
    berth_error err = BERTH_ERROR_INIT;

    assert_int_equal(berth_converge_once(&spec, &o, &res, &err), -1);
    assert_false(res.locked || res.planned);
    assert_non_null(strstr(err.msg, "/dev/null/berth"));
    berth_converge_release(&res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_spec),
        cmocka_unit_test(test_want_plan),
        cmocka_unit_test(test_waits_for_the_lock),
        cmocka_unit_test(test_unusable_root),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
