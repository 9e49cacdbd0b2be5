/* cgroup.c against fake cgroupfs trees: the v2 code path (this machine's
 * controllers are on v1, so v2 is covered here) and the v1 one. The test
 * lays out the files the kernel would show; the code must write the right
 * values into them and never create files of its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "cgroup.h"
#include "util.h"

static char *tmpdir;

static void put(const char *dir, const char *name, const char *content)
{
    _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
    berth_error err = BERTH_ERROR_INIT;

    assert_int_equal(berth_write_file_atomic(p, content, strlen(content), 0644, &err), 0);
}

static char *get(const char *dir, const char *name)
{
    _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
    berth_error err = BERTH_ERROR_INIT;
    char *data = NULL;

    assert_int_equal(berth_read_file(p, 4096, &data, NULL, &err), 0);
    return data;
}

static void mkd(const char *path)
{
    berth_error err = BERTH_ERROR_INIT;
    assert_int_equal(berth_mkdir_p(path, 0755, &err), 0);
}

static int setup(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/berth-cgroup-test-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    tmpdir = xstrdup(tmpl);
    return 0;
}

static int teardown(void **state)
{
    berth_error err = BERTH_ERROR_INIT;
    (void)state;
    assert_int_equal(berth_rm_rf(tmpdir, &err), 0);
    free(tmpdir);
    return 0;
}

/* root/berth/web: the files the kernel shows in each (an existing tree:
 * the real kernel creates them at mkdir) */
static void v2_tree(const char *root, const char *controllers)
{
    static const char *files[] = {"cgroup.procs", "memory.max", "memory.swap.max",
                                  "cpu.max",      "pids.max",   "memory.events"};
    _cleanup_free_ char *parent = xasprintf("%s/berth", root);
    _cleanup_free_ char *leaf = xasprintf("%s/berth/web", root);

    mkd(leaf);
    put(root, "cgroup.controllers", controllers);
    put(root, "cgroup.subtree_control", "");
    put(parent, "cgroup.controllers", controllers);
    put(parent, "cgroup.subtree_control", "");
    put(parent, "cgroup.procs", "");
    for (size_t i = 0; i < ARRAY_SIZE(files); i++)
        put(leaf, files[i], "");
}

static void test_v2_limits(void **state)
{
    (void)state;
    struct berth_limits lim = {.memory = 64 << 20, .cpus_milli = 1500, .pids = 100};
    struct berth_cgroup cg;
    berth_error err = BERTH_ERROR_INIT;
    _cleanup_free_ char *leaf = xasprintf("%s/berth/web", tmpdir);
    _cleanup_free_ char *parent = xasprintf("%s/berth", tmpdir);

    v2_tree(tmpdir, "cpuset cpu io memory hugetlb pids rdma\n");
    assert_int_equal(berth_cgroup_detect(tmpdir), BERTH_CGROUP_V2);
    assert_int_equal(berth_cgroup_create(&cg, tmpdir, "berth/web", &lim, &err), 0);
    assert_string_equal(cg.paths[0], leaf);
    assert_null(cg.paths[1]);

    char *v;
    v = get(tmpdir, "cgroup.subtree_control");
    assert_string_equal(v, "+memory +cpu +pids");
    free(v);
    v = get(parent, "cgroup.subtree_control");
    assert_string_equal(v, "+memory +cpu +pids");
    free(v);
    v = get(leaf, "memory.max");
    assert_string_equal(v, "67108864");
    free(v);
    v = get(leaf, "memory.swap.max");
    assert_string_equal(v, "0");
    free(v);
    v = get(leaf, "cpu.max");
    assert_string_equal(v, "150000 100000");
    free(v);
    v = get(leaf, "pids.max");
    assert_string_equal(v, "100");
    free(v);

    assert_int_equal(berth_cgroup_add_pid(&cg, 4242, &err), 0);
    v = get(leaf, "cgroup.procs");
    assert_string_equal(v, "4242");
    free(v);

    put(leaf, "memory.events", "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\n");
    assert_int_equal(berth_cgroup_oom_kills(&cg), 2);

    /* the kernel empties a dead cgroup's files for us; here, we do */
    static const char *files[] = {"cgroup.procs", "memory.max", "memory.swap.max",
                                  "cpu.max",      "pids.max",   "memory.events"};
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        _cleanup_free_ char *p = xasprintf("%s/%s", leaf, files[i]);
        unlink(p);
    }
    assert_int_equal(berth_cgroup_destroy(&cg, &err), 0);
    assert_int_equal(access(leaf, F_OK), -1);
    assert_null(cg.paths[0]);
}

/* Every container is accounted for (memory, cpu, pids where available);
 * only the limits asked for are written. */
static void test_v2_accounting_always_limits_when_asked(void **state)
{
    (void)state;
    struct berth_limits lim = {.pids = 10};
    struct berth_cgroup cg;
    berth_error err = BERTH_ERROR_INIT;

    v2_tree(tmpdir, "cpu memory pids");
    assert_int_equal(berth_cgroup_create(&cg, tmpdir, "berth/web", &lim, &err), 0);
    char *v = get(tmpdir, "cgroup.subtree_control");
    assert_string_equal(v, "+memory +cpu +pids");
    free(v);
    v = get(cg.paths[0], "memory.max");
    assert_string_equal(v, ""); /* untouched */
    free(v);
    v = get(cg.paths[0], "pids.max");
    assert_string_equal(v, "10");
    free(v);
    free(cg.paths[0]);
}

/* A level that delegates the controllers already (systemd's slices and
 * the scope's parents) is not written to; a controller that is not
 * available is left out when no limit needs it. */
static void test_v2_delegated_levels_untouched(void **state)
{
    (void)state;
    struct berth_limits lim = {0};
    struct berth_cgroup cg;
    berth_error err = BERTH_ERROR_INIT;
    _cleanup_free_ char *parent = xasprintf("%s/berth", tmpdir);

    v2_tree(tmpdir, "memory pids");
    put(tmpdir, "cgroup.subtree_control", "memory pids\n");
    assert_int_equal(berth_cgroup_create(&cg, tmpdir, "berth/web", &lim, &err), 0);
    char *v = get(tmpdir, "cgroup.subtree_control");
    assert_string_equal(v, "memory pids\n");
    free(v);
    v = get(parent, "cgroup.subtree_control");
    assert_string_equal(v, "+memory +pids");
    free(v);
    free(cg.paths[0]);
}

/* The keeper's own leaf: created, joined, and on leave the process goes
 * back to the root and the leaf and its parent (levels = 2) go away. */
static void test_enter_and_leave(void **state)
{
    (void)state;
    berth_error err = BERTH_ERROR_INIT;
    _cleanup_free_ char *svc = xasprintf("%s/berth/web", tmpdir);
    _cleanup_free_ char *leaf = xasprintf("%s/berth/web/keeper", tmpdir);
    char pid[32];

    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    put(tmpdir, "cgroup.controllers", "memory");
    put(tmpdir, "cgroup.procs", "");
    mkd(leaf);
    put(leaf, "cgroup.procs", "");
    assert_int_equal(berth_cgroup_enter(tmpdir, "berth/web/keeper", &err), 0);
    char *v = get(leaf, "cgroup.procs");
    assert_string_equal(v, pid);
    free(v);
    _cleanup_free_ char *procs = xasprintf("%s/cgroup.procs", leaf);
    unlink(procs); /* the kernel's files go with the cgroup */
    assert_int_equal(berth_cgroup_leave(tmpdir, "berth/web/keeper", 2, &err), 0);
    v = get(tmpdir, "cgroup.procs");
    assert_string_equal(v, pid);
    free(v);
    assert_int_equal(access(leaf, F_OK), -1);
    assert_int_equal(access(svc, F_OK), -1);
    _cleanup_free_ char *berthdir = xasprintf("%s/berth", tmpdir);
    assert_int_equal(access(berthdir, F_OK), 0); /* shared with other services: kept */
}

static void test_v2_missing_controller_is_a_clear_error(void **state)
{
    (void)state;
    struct berth_limits lim = {.memory = 1 << 20};
    struct berth_cgroup cg;
    berth_error err = BERTH_ERROR_INIT;
    _cleanup_free_ char *berthdir = xasprintf("%s/berth", tmpdir);

    put(tmpdir, "cgroup.controllers", "cpu pids hugetlb\n");
    put(tmpdir, "cgroup.subtree_control", "");
    assert_int_equal(berth_cgroup_create(&cg, tmpdir, "berth/web", &lim, &err), -1);
    assert_non_null(strstr(err.msg, "controller 'memory' is not available"));
    assert_non_null(strstr(err.msg, "cgroup v2"));
    assert_int_equal(access(berthdir, F_OK), -1); /* nothing created */
}

static void test_v1_limits(void **state)
{
    (void)state;
    struct berth_limits lim = {.memory = 32 << 20, .cpus_milli = 500, .pids = 64};
    struct berth_cgroup cg;
    berth_error err = BERTH_ERROR_INIT;
    _cleanup_free_ char *mem = xasprintf("%s/memory/berth/db", tmpdir);
    _cleanup_free_ char *cpu = xasprintf("%s/cpu/berth/db", tmpdir);
    _cleanup_free_ char *pids = xasprintf("%s/pids/berth/db", tmpdir);

    mkd(mem);
    mkd(cpu);
    mkd(pids);
    put(mem, "memory.limit_in_bytes", "");
    put(mem, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n");
    put(mem, "cgroup.procs", "");
    put(cpu, "cpu.cfs_period_us", "");
    put(cpu, "cpu.cfs_quota_us", "");
    put(cpu, "cgroup.procs", "");
    put(pids, "pids.max", "");
    put(pids, "cgroup.procs", "");

    assert_int_equal(berth_cgroup_detect(tmpdir), BERTH_CGROUP_V1);
    assert_int_equal(berth_cgroup_create(&cg, tmpdir, "berth/db", &lim, &err), 0);
    char *v = get(mem, "memory.limit_in_bytes");
    assert_string_equal(v, "33554432");
    free(v);
    v = get(cpu, "cpu.cfs_quota_us");
    assert_string_equal(v, "50000");
    free(v);
    v = get(cpu, "cpu.cfs_period_us");
    assert_string_equal(v, "100000");
    free(v);
    v = get(pids, "pids.max");
    assert_string_equal(v, "64");
    free(v);
    assert_int_equal(berth_cgroup_add_pid(&cg, 77, &err), 0);
    v = get(pids, "cgroup.procs");
    assert_string_equal(v, "77");
    free(v);
    assert_int_equal(berth_cgroup_oom_kills(&cg), 1);
    for (int i = 0; i < BERTH_CG_N; i++)
        free(cg.paths[i]);
}

static void test_need_cgroup(void **state)
{
    (void)state;
    struct berth_limits none = {.nofile = 10};
    struct berth_limits some = {.pids = 1};
    assert_false(berth_limits_need_cgroup(&none));
    assert_true(berth_limits_need_cgroup(&some));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_v2_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_accounting_always_limits_when_asked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_v2_delegated_levels_untouched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enter_and_leave, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_missing_controller_is_a_clear_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_v1_limits, setup, teardown),
        cmocka_unit_test(test_need_cgroup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
