/* stats.c against fake cgroupfs trees (cgroup v2, which this machine's
 * controllers are not on, and v1 with cpuacct apart or co-mounted), CPU %
 * between samples, and metrics.c's rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"
#include "stats.h"
#include "util.h"

static char *tmpdir;

static void put(const char *dir, const char *name, const char *content)
{
    _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
    berth_error err = BERTH_ERROR_INIT;

    assert_int_equal(berth_mkdir_p(dir, 0755, &err), 0);
    assert_int_equal(berth_write_file_atomic(p, content, strlen(content), 0644, &err), 0);
}

static int setup(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/berth-stats-test-XXXXXX";
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

static void test_v2(void **state)
{
    (void)state;
    struct berth_cgroup cg = {.mode = BERTH_CGROUP_V2};
    struct berth_cgroup_stats s;

    cg.paths[0] = xasprintf("%s/berth/web/container", tmpdir);
    put(cg.paths[0], "memory.current", "1048576\n");
    put(cg.paths[0], "memory.peak", "2097152\n");
    put(cg.paths[0], "memory.max", "67108864\n");
    put(cg.paths[0], "cpu.stat", "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n");
    put(cg.paths[0], "pids.current", "3\n");
    put(cg.paths[0], "pids.max", "max\n");
    put(cg.paths[0], "memory.events", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\n");
    berth_stats_read_cgroup(&cg, &s);
    assert_int_equal(s.memory, 1048576);
    assert_int_equal(s.memory_peak, 2097152);
    assert_int_equal(s.memory_limit, 67108864);
    assert_int_equal(s.cpu_usec, 2500000);
    assert_int_equal(s.pids, 3);
    assert_true(s.pids_limit == BERTH_STATS_NONE); /* "max" */
    assert_int_equal(s.oom_kills, 1);              /* oom_kill, not oom */

    /* before Linux 5.19 there is no memory.peak; no limit is "max" */
    put(cg.paths[0], "memory.max", "max\n");
    _cleanup_free_ char *peak = xasprintf("%s/memory.peak", cg.paths[0]);
    unlink(peak);
    berth_stats_read_cgroup(&cg, &s);
    assert_true(s.memory_peak == BERTH_STATS_NONE);
    assert_true(s.memory_limit == BERTH_STATS_NONE);
    assert_int_equal(s.memory, 1048576);
    berth_cgroup_paths_free(&cg);
}

static void test_v1(void **state)
{
    (void)state;
    struct berth_cgroup cg = {.mode = BERTH_CGROUP_V1};
    struct berth_cgroup_stats s;

    cg.paths[BERTH_CG_MEMORY] = xasprintf("%s/memory/berth/db/container", tmpdir);
    cg.paths[BERTH_CG_CPU] = xasprintf("%s/cpu/berth/db/container", tmpdir);
    cg.paths[BERTH_CG_PIDS] = xasprintf("%s/pids/berth/db/container", tmpdir);
    cg.paths[BERTH_CG_CPUACCT] = xasprintf("%s/cpuacct/berth/db/container", tmpdir);
    put(cg.paths[BERTH_CG_MEMORY], "memory.usage_in_bytes", "4096\n");
    put(cg.paths[BERTH_CG_MEMORY], "memory.max_usage_in_bytes", "8192\n");
    /* v1's "unlimited" */
    put(cg.paths[BERTH_CG_MEMORY], "memory.limit_in_bytes", "9223372036854771712\n");
    put(cg.paths[BERTH_CG_MEMORY], "memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
    put(cg.paths[BERTH_CG_CPUACCT], "cpuacct.usage", "1500000000\n");
    put(cg.paths[BERTH_CG_PIDS], "pids.current", "6\n");
    put(cg.paths[BERTH_CG_PIDS], "pids.max", "32\n");
    berth_stats_read_cgroup(&cg, &s);
    assert_int_equal(s.memory, 4096);
    assert_int_equal(s.memory_peak, 8192);
    assert_true(s.memory_limit == BERTH_STATS_NONE);
    assert_int_equal(s.oom_kills, 2);
    assert_int_equal(s.cpu_usec, 1500000);
    assert_int_equal(s.pids, 6);
    assert_int_equal(s.pids_limit, 32);

    /* "cpu,cpuacct" co-mounted: the cpu directory has cpuacct.usage */
    free(cg.paths[BERTH_CG_CPUACCT]);
    cg.paths[BERTH_CG_CPUACCT] = NULL;
    put(cg.paths[BERTH_CG_CPU], "cpuacct.usage", "3000000\n");
    put(cg.paths[BERTH_CG_MEMORY], "memory.limit_in_bytes", "33554432\n");
    berth_stats_read_cgroup(&cg, &s);
    assert_int_equal(s.cpu_usec, 3000);
    assert_int_equal(s.memory_limit, 33554432);

    /* no pids controller: none of its figures */
    free(cg.paths[BERTH_CG_PIDS]);
    cg.paths[BERTH_CG_PIDS] = NULL;
    berth_stats_read_cgroup(&cg, &s);
    assert_true(s.pids == BERTH_STATS_NONE && s.pids_limit == BERTH_STATS_NONE);
    berth_cgroup_paths_free(&cg);
}

static void test_cpu_interval(void **state)
{
    (void)state;
    struct berth_service_stats a = {.running = true, .sampled_ms = 1000, .cpu_percent = 7};
    struct berth_service_stats b = {.running = true, .sampled_ms = 2000, .cpu_percent = 7};

    a.cg.cpu_usec = 1000000;
    b.cg.cpu_usec = 1500000;
    berth_stats_cpu_interval(&a, &b);
    assert_true(b.cpu_percent > 49.99 && b.cpu_percent < 50.01);
    /* two CPUs busy */
    b.cg.cpu_usec = 3000000;
    berth_stats_cpu_interval(&a, &b);
    assert_true(b.cpu_percent > 199.99 && b.cpu_percent < 200.01);
    /* restarted in between: the counter went back; the value stays */
    b.cpu_percent = 7;
    b.cg.cpu_usec = 10;
    berth_stats_cpu_interval(&a, &b);
    assert_true(b.cpu_percent == 7);
    b.cg.cpu_usec = BERTH_STATS_NONE;
    berth_stats_cpu_interval(&a, &b);
    assert_true(b.cpu_percent == 7);
}

static struct berth_service_stats none(void)
{
    struct berth_service_stats s = {.uptime_s = -1, .cpu_percent = -1};
    memset(&s.cg, 0xff, sizeof(s.cg));
    return s;
}

static void test_metrics(void **state)
{
    (void)state;
    struct berth_status v[2] = {
        {.name = "db", .state = BERTH_STATE_STOPPED, .image = "sha256:aa\"b\\c", .restarts = 2},
        {.name = "web",
         .state = BERTH_STATE_RUNNING,
         .pid = 42,
         .started_at = 1700000000,
         .image = "sha256:bb",
         .health = "healthy"},
    };
    struct berth_service_stats s[2] = {none(), none()};
    struct berth_metrics_agent agent = {.running = 1,
                                        .has_record = true,
                                        .file_valid = true,
                                        .started_at = 1690000000,
                                        .converges = 3,
                                        .has_converge = true,
                                        .converge_at_ms = 1700000000500,
                                        .converge_duration_ms = 1250,
                                        .converge_ok = true};

    s[1].running = true;
    s[1].cg.memory = 1024;
    s[1].cg.memory_limit = 4096;
    s[1].cg.cpu_usec = 1500000;
    s[1].cg.oom_kills = 0;
    _cleanup_free_ char *t = berth_metrics_render(v, s, 2, &agent);
    const char *want[] = {
        "berth_build_info{version=\"" BERTH_VERSION "\"} 1\n",
        "berth_agent_running 1\n",
        "berth_agent_start_time_seconds 1690000000\n",
        "berth_converges_total 3\n",
        "berth_converge_last_time_seconds 1700000000.500\n",
        "berth_converge_last_duration_seconds 1.250\n",
        "berth_converge_last_success 1\n",
        "berth_service_info{service=\"db\",image=\"sha256:aa\\\"b\\\\c\"} 1\n",
        "berth_service_up{service=\"db\"} 0\n",
        "berth_service_up{service=\"web\"} 1\n",
        "berth_service_state{service=\"db\",state=\"stopped\"} 1\n",
        "berth_service_state{service=\"db\",state=\"running\"} 0\n",
        "berth_service_state{service=\"web\",state=\"running\"} 1\n",
        "berth_service_state{service=\"web\",state=\"rolled-back\"} 0\n",
        "berth_service_restarts_total{service=\"db\"} 2\n",
        "berth_service_healthy{service=\"db\"} -1\n",
        "berth_service_healthy{service=\"web\"} 1\n",
        "berth_service_cpu_seconds_total{service=\"web\"} 1.500000\n",
        "berth_service_memory_bytes{service=\"web\"} 1024\n",
        "berth_service_memory_limit_bytes{service=\"web\"} 4096\n",
        "berth_service_oom_kills_total{service=\"web\"} 0\n",
        "berth_service_start_time_seconds{service=\"web\"} 1700000000\n",
        "# TYPE berth_service_cpu_seconds_total counter\n",
        "# TYPE berth_service_state gauge\n",
    };
    for (size_t i = 0; i < ARRAY_SIZE(want); i++)
        if (!strstr(t, want[i]))
            fail_msg("missing %s in:\n%s", want[i], t);
    /* nothing measured is not 0: no series for what is unknown */
    assert_null(strstr(t, "berth_service_memory_bytes{service=\"db\"}"));
    assert_null(strstr(t, "berth_service_pids{service=\"web\"}"));
    assert_null(strstr(t, "berth_service_start_time_seconds{service=\"db\"}"));
}

static void test_json(void **state)
{
    (void)state;
    struct berth_status v = {.name = "web", .state = BERTH_STATE_STOPPED};
    struct berth_service_stats s = none();
    _cleanup_free_ char *t = berth_stats_json(&v, &s, 1, true);

    assert_string_equal(
        t, "{\"services\":[{\"name\":\"web\",\"state\":\"stopped\",\"running\":false,"
           "\"memory_bytes\":null,\"memory_peak_bytes\":null,\"memory_limit_bytes\":null,"
           "\"cpu_seconds\":null,\"cpu_percent\":null,\"pids\":null,\"pids_limit\":null,"
           "\"oom_kills\":null,\"restarts\":0,\"manual_restarts\":0,\"uptime_seconds\":null}]}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_v2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1, setup, teardown),
        cmocka_unit_test(test_cpu_interval),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
