/* The keeper's table (keeper-fsm.h), driven without root, processes or
 * clocks: each event's next state, actions, cause and message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "keeper-fsm.h"
#include "status.h"
#include "util.h"

enum {
    DISARM = BERTH_KEEPER_DISARM,
    KILL = BERTH_KEEPER_KILL,
    KILL_HARD = BERTH_KEEPER_KILL_HARD,
    BACKOFF = BERTH_KEEPER_ARM_BACKOFF,
    STATUS = BERTH_KEEPER_WRITE_STATUS,
    TELL = BERTH_KEEPER_TELL,
    START = BERTH_KEEPER_START,
};

static const struct berth_keeper_rules rules = {
    .name = "web",
    .restart = BERTH_RESTART_ALWAYS,
    .backoff_initial_ms = 100,
    .backoff_max_ms = 1000,
    .backoff_reset_ms = 10000,
    .stop_signal = SIGTERM,
    .stop_timeout_ms = 2000,
};

static struct berth_keeper_step step;

static void ev(struct berth_keeper_fsm *m, enum berth_keeper_event type)
{
    struct berth_keeper_input in = {
        .type = type, .pid = 42, .keeper_pid = 7, .why = "a stop request"};
    berth_keeper_fsm_step(m, &in, &step);
}

static void fail_start(struct berth_keeper_fsm *m, bool transient)
{
    struct berth_keeper_input in = {.type = BERTH_KEEPER_EV_START_FAILED,
                                    .error = "no such user 'nobody'",
                                    .transient = transient};
    berth_keeper_fsm_step(m, &in, &step);
}

static void exit_with(struct berth_keeper_fsm *m, int code, bool oom, uint64_t ran_ms)
{
    struct berth_keeper_input in = {
        .type = BERTH_KEEPER_EV_EXIT, .code = code, .oom = oom, .ran_ms = ran_ms};
    berth_keeper_fsm_step(m, &in, &step);
}

static void expect(struct berth_keeper_fsm *m, enum berth_state to, unsigned actions,
                   const char *cause)
{
    assert_int_equal(m->state, to);
    assert_int_equal(step.to, to);
    assert_int_equal(step.actions, actions);
    if (cause)
        assert_string_equal(step.cause, cause);
    else
        assert_null(step.cause);
}

/* A keeper whose service runs: started, the start over. */
static void running(struct berth_keeper_fsm *m, const struct berth_keeper_rules *r)
{
    berth_keeper_fsm_init(m, r);
    ev(m, BERTH_KEEPER_EV_START);
    expect(m, BERTH_STATE_STARTING, START, NULL);
    ev(m, BERTH_KEEPER_EV_START_OK);
    expect(m, BERTH_STATE_RUNNING, STATUS | TELL, "start");
    assert_true(step.from_predecessor);
    assert_string_equal(step.message, "started 'web' (pid 42)");
}

static void test_names(void **state)
{
    (void)state;
    static const char *const names[] = {"stopped",  "starting", "running",    "backoff",
                                        "stopping", "failed",   "rolled-back"};
    for (int i = 0; i < BERTH_STATE_N; i++) {
        enum berth_state s;
        assert_string_equal(berth_state_name((enum berth_state)i), names[i]);
        assert_true(berth_state_parse(names[i], &s));
        assert_int_equal(s, i);
    }
    enum berth_state s = BERTH_STATE_RUNNING;
    assert_false(berth_state_parse("exploded", &s));
    assert_false(berth_state_parse(NULL, &s));
    assert_int_equal(s, BERTH_STATE_RUNNING);
    assert_true(berth_state_live(BERTH_STATE_RUNNING));
    assert_true(berth_state_live(BERTH_STATE_STOPPING));
    assert_true(berth_state_live(BERTH_STATE_ROLLED_BACK));
    assert_true(berth_state_live(BERTH_STATE_BACKOFF));
    assert_true(berth_state_live(BERTH_STATE_STARTING));
    assert_false(berth_state_live(BERTH_STATE_STOPPED));
    assert_false(berth_state_live(BERTH_STATE_FAILED));
}

static void test_policy_always(void **state)
{
    (void)state;
    struct berth_keeper_fsm m;
    running(&m, &rules);
    exit_with(&m, 0, false, 50);
    expect(&m, BERTH_STATE_BACKOFF, DISARM | BACKOFF | STATUS | TELL, "exit");
    assert_int_equal(step.from, BERTH_STATE_RUNNING);
    assert_int_equal(step.delay_ms, 100);
    assert_string_equal(step.message, "'web' exited with code 0; restarting in 100 ms");
    assert_string_equal(step.why, "exited with code 0");
    ev(&m, BERTH_KEEPER_EV_TIMER);
    expect(&m, BERTH_STATE_STARTING, START, NULL);
    assert_int_equal(m.restarts, 1);
    ev(&m, BERTH_KEEPER_EV_START_OK);
    expect(&m, BERTH_STATE_RUNNING, STATUS | TELL, "start");
    assert_int_equal(step.from, BERTH_STATE_BACKOFF);
    assert_false(step.from_predecessor);
}

static void test_backoff_doubles_and_resets(void **state)
{
    (void)state;
    struct berth_keeper_fsm m;
    static const uint64_t delays[] = {100, 200, 400, 800, 1000, 1000};
    running(&m, &rules);
    for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
        exit_with(&m, 1, false, 10);
        expect(&m, BERTH_STATE_BACKOFF, DISARM | BACKOFF | STATUS | TELL, "exit");
        assert_int_equal(step.delay_ms, delays[i]);
        ev(&m, BERTH_KEEPER_EV_TIMER);
        ev(&m, BERTH_KEEPER_EV_START_OK);
    }
    assert_int_equal(m.restarts, 6);
    /* it ran long enough: the backoff starts over */
    exit_with(&m, 1, false, 10000);
    assert_int_equal(step.delay_ms, 100);
}

static void test_policy_on_failure(void **state)
{
    (void)state;
    struct berth_keeper_rules r = rules;
    struct berth_keeper_fsm m;
    r.restart = BERTH_RESTART_ON_FAILURE;
    running(&m, &r);
    exit_with(&m, 3, false, 10);
    expect(&m, BERTH_STATE_BACKOFF, DISARM | BACKOFF | STATUS | TELL, "exit");
    ev(&m, BERTH_KEEPER_EV_TIMER);
    ev(&m, BERTH_KEEPER_EV_START_OK);
    exit_with(&m, 0, false, 10);
    expect(&m, BERTH_STATE_STOPPED, DISARM | STATUS | TELL, "exit");
    assert_string_equal(step.message, "'web' exited with code 0; restart policy says stay stopped");
    assert_string_equal(step.why, "it was stopped");
    assert_true(berth_keeper_fsm_done(&m));
    /* a signal is a failure */
    running(&m, &r);
    exit_with(&m, 128 + SIGSEGV, false, 10);
    expect(&m, BERTH_STATE_BACKOFF, DISARM | BACKOFF | STATUS | TELL, "signal");
    assert_int_equal(step.exit_signal, SIGSEGV);
    assert_string_equal(step.why, "exited with code 139 (SIGSEGV)");
}

static void test_policy_never(void **state)
{
    (void)state;
    struct berth_keeper_rules r = rules;
    struct berth_keeper_fsm m;
    r.restart = BERTH_RESTART_NEVER;
    running(&m, &r);
    exit_with(&m, 1, false, 10);
    expect(&m, BERTH_STATE_STOPPED, DISARM | STATUS | TELL, "exit");
    assert_true(berth_keeper_fsm_done(&m));
    /* once done, nothing moves it */
    ev(&m, BERTH_KEEPER_EV_RESTART);
    expect(&m, BERTH_STATE_STOPPED, 0, NULL);
    ev(&m, BERTH_KEEPER_EV_TIMER);
    expect(&m, BERTH_STATE_STOPPED, 0, NULL);
}

static void test_oom(void **state)
{
    (void)state;
    struct berth_keeper_fsm m;
    running(&m, &rules);
    exit_with(&m, 128 + SIGKILL, true, 10);
    expect(&m, BERTH_STATE_BACKOFF, DISARM | BACKOFF | STATUS | TELL, "oom");
    assert_true(step.exit_oom);
    assert_string_equal(step.why, "exited with code 137 (SIGKILL, killed by the OOM killer)");
    /* the count rose but no SIGKILL: not the OOM killer's */
    running(&m, &rules);
    exit_with(&m, 1, true, 10);
    assert_false(step.exit_oom);
    assert_string_equal(step.cause, "exit");
}

static void test_stop(void **state)
{
    (void)state;
    struct berth_keeper_fsm m;
    running(&m, &rules);
    ev(&m, BERTH_KEEPER_EV_STOP);
    expect(&m, BERTH_STATE_STOPPING, KILL | STATUS, "stop");
    assert_false(step.log);
    assert_string_equal(step.message,
                        "stopping 'web' (a stop request): sending SIGTERM, SIGKILL after 2000 ms");
    assert_true(m.stop_requested);
    /* the stop timeout */
    ev(&m, BERTH_KEEPER_EV_TIMER);
    expect(&m, BERTH_STATE_STOPPING, KILL_HARD, "stop-timeout");
    assert_string_equal(step.message, "'web' did not stop within 2000 ms; sending SIGKILL");
    /* a second stop changes nothing; a restart does not undo the stop */
    ev(&m, BERTH_KEEPER_EV_STOP);
    expect(&m, BERTH_STATE_STOPPING, 0, NULL);
    ev(&m, BERTH_KEEPER_EV_RESTART);
    expect(&m, BERTH_STATE_STOPPING, 0, NULL);
    assert_false(m.restart_requested);
    exit_with(&m, 128 + SIGKILL, false, 10);
    expect(&m, BERTH_STATE_STOPPED, DISARM | STATUS | TELL, "stop");
    assert_string_equal(step.message, "stopped 'web' (exit code 137)");
    assert_true(berth_keeper_fsm_done(&m));
}

static void test_stop_during_backoff(void **state)
{
    (void)state;
    struct berth_keeper_fsm m;
    running(&m, &rules);
    exit_with(&m, 1, false, 10);
    ev(&m, BERTH_KEEPER_EV_STOP);
    expect(&m, BERTH_STATE_STOPPED, DISARM | STATUS | TELL, "stop");
    assert_int_equal(step.from, BERTH_STATE_BACKOFF);
    assert_true(step.log);
    assert_string_equal(step.message, "stopped 'web' (it was backoff)");
    assert_true(berth_keeper_fsm_done(&m));
}

/* A stop in the same wake-up as the end that made the keeper done: the
 * service is stopped, as asked (the keeper exits either way). */
static void test_stop_when_done(void **state)
{
    (void)state;
    struct berth_keeper_fsm m;
    berth_keeper_fsm_init(&m, &rules);
    ev(&m, BERTH_KEEPER_EV_START);
    fail_start(&m, false);
    ev(&m, BERTH_KEEPER_EV_STOP);
    expect(&m, BERTH_STATE_STOPPED, DISARM | STATUS | TELL, "stop");
    assert_int_equal(step.from, BERTH_STATE_FAILED);
    assert_string_equal(step.message, "stopped 'web' (it was failed)");
    assert_true(berth_keeper_fsm_done(&m));
}

static void test_restart(void **state)
{
    (void)state;
    struct berth_keeper_fsm m;
    running(&m, &rules);
    ev(&m, BERTH_KEEPER_EV_RESTART);
    expect(&m, BERTH_STATE_STOPPING, KILL | STATUS, "restart");
    assert_string_equal(step.message,
                        "restarting 'web' as asked: sending SIGTERM, SIGKILL after 2000 ms");
    exit_with(&m, 0, false, 10);
    expect(&m, BERTH_STATE_STARTING, DISARM | START, "restart");
    assert_false(step.log);
    assert_string_equal(step.message, "'web' exited with code 0; starting it again as asked");
    assert_int_equal(m.manual_restarts, 1);
    assert_int_equal(m.restarts, 0);
    ev(&m, BERTH_KEEPER_EV_START_OK);
    expect(&m, BERTH_STATE_RUNNING, STATUS | TELL, "start");
    assert_int_equal(step.from, BERTH_STATE_STARTING);
    /* a restart during a stop for good is dropped; the stop wins over a
     * restart under way */
    ev(&m, BERTH_KEEPER_EV_RESTART);
    ev(&m, BERTH_KEEPER_EV_STOP);
    expect(&m, BERTH_STATE_STOPPING, 0, NULL);
    exit_with(&m, 0, false, 10);
    expect(&m, BERTH_STATE_STOPPED, DISARM | STATUS | TELL, "stop");
}

static void test_restart_during_backoff(void **state)
{
    (void)state;
    struct berth_keeper_fsm m;
    running(&m, &rules);
    exit_with(&m, 1, false, 10);
    exit_with(&m, 1, false, 10); /* no container in backoff: nothing */
    expect(&m, BERTH_STATE_BACKOFF, 0, NULL);
    ev(&m, BERTH_KEEPER_EV_RESTART);
    expect(&m, BERTH_STATE_STARTING, DISARM | START, NULL);
    assert_int_equal(m.manual_restarts, 1);
    assert_int_equal(m.failures, 0);
    ev(&m, BERTH_KEEPER_EV_START_OK);
    assert_int_equal(step.from, BERTH_STATE_BACKOFF);
}

static void test_unhealthy(void **state)
{
    (void)state;
    struct berth_keeper_rules r = rules;
    struct berth_keeper_fsm m;
    /* without healthcheck.restart it runs on */
    running(&m, &r);
    ev(&m, BERTH_KEEPER_EV_UNHEALTHY);
    expect(&m, BERTH_STATE_RUNNING, 0, NULL);
    r.health_restart = true;
    running(&m, &r);
    ev(&m, BERTH_KEEPER_EV_UNHEALTHY);
    expect(&m, BERTH_STATE_STOPPING, KILL | STATUS, "unhealthy");
    assert_true(step.log);
    assert_string_equal(step.message, "restarting 'web' because it is unhealthy: sending "
                                      "SIGTERM, SIGKILL after 2000 ms");
    /* a second verdict while stopping does nothing */
    ev(&m, BERTH_KEEPER_EV_UNHEALTHY);
    expect(&m, BERTH_STATE_STOPPING, 0, NULL);
    exit_with(&m, 128 + SIGTERM, false, 10);
    expect(&m, BERTH_STATE_BACKOFF, DISARM | BACKOFF | STATUS | TELL, "unhealthy");
    /* a restart asked for while it stops for being unhealthy: at once */
    ev(&m, BERTH_KEEPER_EV_TIMER);
    ev(&m, BERTH_KEEPER_EV_START_OK);
    assert_false(m.unhealthy_kill);
    ev(&m, BERTH_KEEPER_EV_UNHEALTHY);
    ev(&m, BERTH_KEEPER_EV_RESTART);
    expect(&m, BERTH_STATE_STOPPING, 0, NULL);
    assert_true(m.restart_requested);
    exit_with(&m, 128 + SIGTERM, false, 10);
    expect(&m, BERTH_STATE_STARTING, DISARM | START, "unhealthy");
    assert_false(m.unhealthy_kill);
}

static void test_start_errors(void **state)
{
    (void)state;
    struct berth_keeper_rules r = rules;
    struct berth_keeper_fsm m;
    /* permanent: failed, the keeper exits */
    berth_keeper_fsm_init(&m, &r);
    ev(&m, BERTH_KEEPER_EV_START);
    fail_start(&m, false);
    expect(&m, BERTH_STATE_FAILED, DISARM | STATUS | TELL, "start-failed");
    assert_true(step.from_predecessor);
    assert_string_equal(step.why, "no such user 'nobody'");
    assert_string_equal(step.message,
                        "'web' cannot start: no such user 'nobody'; it stays failed until the "
                        "file changes or 'berth apply' or 'berth restart' tries again");
    assert_true(berth_keeper_fsm_done(&m));
    /* transient: the backoff */
    berth_keeper_fsm_init(&m, &r);
    ev(&m, BERTH_KEEPER_EV_START);
    fail_start(&m, true);
    expect(&m, BERTH_STATE_BACKOFF, DISARM | BACKOFF | STATUS | TELL, "start-failed");
    assert_string_equal(step.why, "could not start (no such user 'nobody')");
    ev(&m, BERTH_KEEPER_EV_TIMER);
    fail_start(&m, true);
    assert_int_equal(step.from, BERTH_STATE_BACKOFF);
    assert_int_equal(step.delay_ms, 200);
    /* transient, but the policy never restarts: failed */
    r.restart = BERTH_RESTART_NEVER;
    berth_keeper_fsm_init(&m, &r);
    ev(&m, BERTH_KEEPER_EV_START);
    fail_start(&m, true);
    expect(&m, BERTH_STATE_FAILED, DISARM | STATUS | TELL, "start-failed");
}

static void test_adopt(void **state)
{
    (void)state;
    struct berth_keeper_fsm m;
    berth_keeper_fsm_init(&m, &rules);
    m.restarts = 4; /* the last keeper's */
    ev(&m, BERTH_KEEPER_EV_ADOPT);
    expect(&m, BERTH_STATE_RUNNING, STATUS, "adopted");
    assert_true(step.from_predecessor);
    assert_string_equal(step.message, "a new keeper (pid 7) adopted 'web' (init pid 42): its "
                                      "last keeper is gone, the service runs on");
    /* from then on, as any running service */
    exit_with(&m, 1, false, 10);
    expect(&m, BERTH_STATE_BACKOFF, DISARM | BACKOFF | STATUS | TELL, "exit");
    ev(&m, BERTH_KEEPER_EV_TIMER);
    assert_int_equal(m.restarts, 5);
    /* adopt and the first start mean nothing once it runs */
    ev(&m, BERTH_KEEPER_EV_START_OK);
    ev(&m, BERTH_KEEPER_EV_ADOPT);
    expect(&m, BERTH_STATE_RUNNING, 0, NULL);
    ev(&m, BERTH_KEEPER_EV_START);
    expect(&m, BERTH_STATE_RUNNING, 0, NULL);
}

/* Every state × event pair: nothing that means nothing moves anything. */
static void test_inert_cells(void **state)
{
    (void)state;
    static const struct {
        enum berth_state s;
        enum berth_keeper_event e;
    } inert[] = {
        {BERTH_STATE_RUNNING, BERTH_KEEPER_EV_TIMER},
        {BERTH_STATE_RUNNING, BERTH_KEEPER_EV_START_OK},
        {BERTH_STATE_RUNNING, BERTH_KEEPER_EV_START_FAILED},
        {BERTH_STATE_BACKOFF, BERTH_KEEPER_EV_EXIT},
        {BERTH_STATE_BACKOFF, BERTH_KEEPER_EV_UNHEALTHY},
        {BERTH_STATE_BACKOFF, BERTH_KEEPER_EV_START_OK},
        {BERTH_STATE_STOPPING, BERTH_KEEPER_EV_START},
        {BERTH_STATE_STOPPING, BERTH_KEEPER_EV_ADOPT},
        {BERTH_STATE_FAILED, BERTH_KEEPER_EV_TIMER},
        {BERTH_STATE_STOPPED, BERTH_KEEPER_EV_RESTART},
        {BERTH_STATE_FAILED, BERTH_KEEPER_EV_RESTART},
        {BERTH_STATE_STARTING, BERTH_KEEPER_EV_TIMER},
        {BERTH_STATE_STARTING, BERTH_KEEPER_EV_EXIT},
    };
    for (size_t i = 0; i < sizeof(inert) / sizeof(inert[0]); i++) {
        struct berth_keeper_fsm m, before;
        berth_keeper_fsm_init(&m, &rules);
        m.state = inert[i].s;
        before = m;
        ev(&m, inert[i].e);
        assert_int_equal(step.actions, 0);
        assert_null(step.cause);
        assert_int_equal(m.state, before.state);
        assert_int_equal(m.stop_requested, before.stop_requested);
        assert_int_equal(m.restart_requested, before.restart_requested);
        assert_int_equal(m.unhealthy_kill, before.unhealthy_kill);
        assert_int_equal(m.failures, before.failures);
        assert_int_equal(m.restarts, before.restarts);
        assert_int_equal(m.manual_restarts, before.manual_restarts);
    }
}

/* A keeper that gave up (keeper.h) left its reason in its status: the
 * reader shows it with the keeper gone; a status without one has no key. */
static void test_keeper_error_in_status(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/berth-test-keeper-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    _cleanup_free_ char *services = xasprintf("%s/services", tmpl);
    _cleanup_free_ char *dir = xasprintf("%s/web", services);
    _cleanup_free_ char *path = xasprintf("%s/status.json", dir);
    berth_error err = BERTH_ERROR_INIT;
    struct berth_status st = {.name = (char *)"web", .state = BERTH_STATE_RUNNING, .keeper_pid = 1};
    struct berth_status got;

    assert_int_equal(mkdir(services, 0700), 0);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(berth_status_write(tmpl, &st, &err), 0);
    _cleanup_free_ char *text = NULL;
    size_t len;
    assert_int_equal(berth_read_file(path, 1 << 20, &text, &len, &err), 0);
    assert_null(strstr(text, "keeper_error"));
    assert_non_null(strstr(text, "\"state\": \"running\""));

    st.keeper_error = (char *)"waiting for the events of 'web': Bad file descriptor";
    assert_int_equal(berth_status_write(tmpl, &st, &err), 0);
    assert_int_equal(berth_status_read(tmpl, "web", &got, &err), 0);
    assert_string_equal(got.keeper_error, st.keeper_error);
    assert_true(got.keeper_gone); /* no keeper holds the lock */
    assert_int_equal(got.state, BERTH_STATE_FAILED);
    _cleanup_free_ char *json = berth_status_json(&got, 1);
    assert_non_null(strstr(json, "\"keeper_error\": \"waiting for the events of 'web'"));
    berth_status_release(&got);
    _cleanup_free_ char *rm = xasprintf("rm -rf '%s'", tmpl);
    assert_int_equal(system(rm), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_policy_always),
        cmocka_unit_test(test_backoff_doubles_and_resets),
        cmocka_unit_test(test_policy_on_failure),
        cmocka_unit_test(test_policy_never),
        cmocka_unit_test(test_oom),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_stop_during_backoff),
        cmocka_unit_test(test_stop_when_done),
        cmocka_unit_test(test_restart),
        cmocka_unit_test(test_restart_during_backoff),
        cmocka_unit_test(test_unhealthy),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_adopt),
        cmocka_unit_test(test_inert_cells),
        cmocka_unit_test(test_keeper_error_in_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
