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
#include <sys/stat.h>

#include "events.h"
#include "history.h"
#include "logs.h"
#include "util.h"

#define T0 1796659241000000LL /* 2026-12-07T16:00:41Z */

static void test_since(void **state)
{
    (void)state;
    int64_t t;
    assert_int_equal(berth_parse_since("2026-12-07T16:00:41Z", 0, &t), 0);
    assert_int_equal(t, T0);
    assert_int_equal(berth_parse_since("2026-12-07 16:00:41.25z", 0, &t), 0);
    assert_int_equal(t, T0 + 250000);
    assert_int_equal(berth_parse_since("2026-12-07T17:30:41.000001+01:30", 0, &t), 0);
    assert_int_equal(t, T0 + 1);
    assert_int_equal(berth_parse_since("2026-12-07T11:00:41-05:00", 0, &t), 0);
    assert_int_equal(t, T0);
    /* durations back from now, as the file writes them */
    assert_int_equal(berth_parse_since("10m", T0, &t), 0);
    assert_int_equal(t, T0 - 600000000LL);
    assert_int_equal(berth_parse_since("1.5s", T0, &t), 0);
    assert_int_equal(t, T0 - 1500000);
    const char *bad[] = {"",
                         "yesterday",
                         "2026-12-07",
                         "2026-12-07T16:00:41",
                         "2026-12-07T16:00:41+0100",
                         "2026-12-07T16:00:41.Z",
                         "2026-12-07T16:00:41Zjunk",
                         "-10m",
                         "10x"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(berth_parse_since(bad[i], T0, &t), -1);
}

static void test_event_round_trip(void **state)
{
    (void)state;
    struct berth_event in = {
        .time_us = T0 + 123456,
        .service = (char *)"web",
        .cause = (char *)"unhealthy",
        .from = (char *)"stopping",
        .to = (char *)"backoff",
        .message = (char *)"'web' exited with code 143 (SIGTERM)",
        .has_exit = true,
        .exit_code = 143,
        .exit_signal = 15,
        .pid = 42,
        .restarts = 3,
        .health = (char *)"unhealthy",
        .health_result = (char *)"exit code 3",
        .health_output = (char *)"not \xff ready\n",
    };
    struct berth_event out;
    char *json = berth_event_json(&in);

    assert_null(strchr(json, '\n'));
    assert_non_null(strstr(json, "\"time\":\"2026-12-07T16:00:41.123456Z\""));
    assert_int_equal(berth_event_parse(json, strlen(json), &out), 0);
    assert_true(out.time_us == in.time_us);
    assert_string_equal(out.cause, "unhealthy");
    assert_string_equal(out.from, "stopping");
    assert_string_equal(out.to, "backoff");
    assert_true(out.has_exit && out.exit_code == 143 && out.exit_signal == 15 && !out.exit_oom);
    assert_int_equal(out.pid, 42);
    assert_int_equal(out.restarts, 3);
    assert_string_equal(out.health_result, "exit code 3");
    assert_string_equal(out.health_output, "not ? ready\n"); /* not UTF-8: '?' */
    berth_event_release(&out);
    free(json);
    assert_int_equal(berth_event_parse("{\"time\": \"now\", \"cause\": \"x\"}", 30, &out), -1);
    assert_int_equal(berth_event_parse("not json", 8, &out), -1);
}

static char *tmpdir(void)
{
    char tmpl[] = "/tmp/berth-test-events-XXXXXX";
    return xstrdup(mkdtemp(tmpl));
}

static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
    _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void test_record_and_rotate(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = tmpdir();
    berth_error err = BERTH_ERROR_INIT;
    struct berth_event *v;
    size_t n;
    int total = 0;

    /* enough to pass the bound once */
    while (total < 2000) {
        struct berth_event ev = {.cause = (char *)"exit", .restarts = total, .time_us = T0 + total};
        assert_int_equal(berth_event_record(dir, &ev, &err), 0);
        total++;
    }
    _cleanup_free_ char *cur = xasprintf("%s/events", dir);
    _cleanup_free_ char *old = xasprintf("%s/events.1", dir);
    struct stat a, b;
    assert_int_equal(stat(cur, &a), 0);
    assert_int_equal(stat(old, &b), 0);
    assert_true(a.st_size <= BERTH_EVENTS_MAX_SIZE && b.st_size <= BERTH_EVENTS_MAX_SIZE);
    assert_int_equal(berth_events_read(dir, 0, &v, &n, &err), 0);
    assert_true(n > 100 && n < 2000);
    /* the newest, in order, named after the directory */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(v[i].restarts, 2000 - (int)n + (int)i);
        assert_string_equal(v[i].service, strrchr(dir, '/') + 1);
    }
    berth_events_free(v, n);
    assert_int_equal(berth_events_read(dir, T0 + 1999, &v, &n, &err), 0);
    assert_int_equal(n, 1);
    berth_events_free(v, n);
    assert_int_equal(berth_rm_rf(dir, &err), 0);
}

/* Complete lines only, from `since` on, named when they are not */
static void test_parse_lines(void **state)
{
    (void)state;
    const char buf[] = "{\"time\": \"2026-12-07T16:00:00Z\", \"cause\": \"start\"}\n"
                       "not an event\n"
                       "{\"time\": \"2026-12-07T16:00:02Z\", \"service\": \"db\", "
                       "\"cause\": \"exit\"}\n"
                       "{\"time\": \"2026-12-07T16:00:03Z\", \"cau";
    struct berth_event *v = NULL;
    size_t n = 0;
    size_t used = berth_events_parse_lines(buf, strlen(buf), "web", 0, &v, &n);

    assert_int_equal(used, strrchr(buf, '\n') + 1 - buf);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].service, "web");
    assert_string_equal(v[1].service, "db");
    assert_int_equal(berth_events_parse_lines(buf, used, NULL, v[1].time_us, &v, &n), used);
    assert_int_equal(n, 3);
    assert_string_equal(v[2].cause, "exit");
    berth_events_free(v, n);
}

struct batches {
    size_t calls, n;
    char services[8][16];
};

static void take(void *ud, const struct berth_event *v, size_t n)
{
    struct batches *b = ud;
    b->calls++;
    for (size_t i = 0; i < n && b->n < 8; i++)
        snprintf(b->services[b->n++], sizeof(b->services[0]), "%s", v[i].service);
}

/* Every service's and every removed one's, merged by time; a name that
 * is neither fails */
static void test_watch_without_following(void **state)
{
    (void)state;
    _cleanup_free_ char *root = tmpdir();
    _cleanup_free_ char *web = xasprintf("%s/services/web", root);
    _cleanup_free_ char *old = xasprintf("%s/removed/old@100", root);
    berth_error err = BERTH_ERROR_INIT;
    struct berth_event a = {.cause = (char *)"start", .time_us = T0 + 2};
    struct berth_event b = {.service = (char *)"old", .cause = (char *)"stop", .time_us = T0 + 1};
    struct batches got = {0};

    assert_int_equal(berth_mkdir_p(web, 0755, &err), 0);
    assert_int_equal(berth_mkdir_p(old, 0755, &err), 0);
    assert_int_equal(berth_event_record(web, &a, &err), 0);
    assert_int_equal(berth_event_record(old, &b, &err), 0);
    assert_int_equal(berth_events_watch(root, NULL, 0, 0, false, take, &got, &err), 0);
    assert_int_equal(got.calls, 1);
    assert_int_equal(got.n, 2);
    assert_string_equal(got.services[0], "old");
    assert_string_equal(got.services[1], "web");

    char *names[] = {"nope"};
    assert_int_equal(berth_events_watch(root, names, 1, 0, false, take, &got, &err), -1);
    assert_int_equal(err.code, ENOENT);
    assert_non_null(strstr(err.msg, "no service 'nope' under"));
    assert_int_equal(berth_rm_rf(root, &err), 0);
}

struct got {
    char text[4096];
    int64_t times[16];
    size_t n;
};

static void collect(const char *text, size_t len, int64_t t, bool line_start, void *ud)
{
    struct got *g = ud;
    assert_true(line_start);
    strncat(g->text, text, len);
    g->times[g->n++] = t;
}

static void test_log_reader(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = tmpdir();
    berth_error err = BERTH_ERROR_INIT;
    /* current.1 ends in the middle of a line that current finishes; the
     * first bytes of current.1 have no record (written before times) */
    const char *old = "a0\na1\nb-sp";
    struct berth_log_stamp old_ts[] = {{3, T0 + 1000}, {6, T0 + 2000}};
    const char *cur = "lit\nc\n";
    struct berth_log_stamp cur_ts[] = {{4, T0 + 3000}};
    struct got g = {0};
    struct berth_log_pos end;

    write_file(dir, "current.1", old, strlen(old));
    write_file(dir, "times.1", old_ts, sizeof(old_ts));
    write_file(dir, "current", cur, strlen(cur));
    /* and half a record, as a full disk may leave */
    char torn[sizeof(cur_ts) + 7] = {0};
    memcpy(torn, cur_ts, sizeof(cur_ts));
    write_file(dir, "times", torn, sizeof(torn));

    struct berth_log_read_options all = {.lines = -1};
    assert_int_equal(berth_log_read(dir, &all, collect, &g, &end, &err), 0);
    assert_string_equal(g.text, "a0\na1\nb-split\nc\n");
    assert_int_equal(end.offset, strlen(cur));
    assert_true(end.line_start && end.ino);
    assert_int_equal(g.n, 4);
    assert_true(g.times[0] == 0 && g.times[1] == T0 + 1000 && g.times[2] == T0 + 2000 &&
                g.times[3] == T0 + 3000);

    struct berth_log_read_options since = {.lines = -1, .since_us = T0 + 1500};
    memset(&g, 0, sizeof(g));
    assert_int_equal(berth_log_read(dir, &since, collect, &g, NULL, &err), 0);
    assert_string_equal(g.text, "b-split\nc\n");

    struct berth_log_read_options last = {.lines = 1, .since_us = T0 + 500};
    memset(&g, 0, sizeof(g));
    assert_int_equal(berth_log_read(dir, &last, collect, &g, NULL, &err), 0);
    assert_string_equal(g.text, "c\n");
    assert_int_equal(berth_rm_rf(dir, &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_since),
        cmocka_unit_test(test_event_round_trip),
        cmocka_unit_test(test_record_and_rotate),
        cmocka_unit_test(test_log_reader),
        cmocka_unit_test(test_parse_lines),
        cmocka_unit_test(test_watch_without_following),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
