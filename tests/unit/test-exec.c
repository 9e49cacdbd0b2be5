/* exec.c's waiting half, which health checks depend on: exit codes, the
 * timeout killing the command and everything in its process group, and
 * spawn's error for a container that is gone. Joining a real container is
 * covered by tests/integration/test_exec.py (it needs root). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "cgroup.h"
#include "child.h"
#include "exec.h"
#include "user.h"
#include "util.h"

static int child(pid_t *ret_pid, void (*body)(int fd), int fd)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        body(fd);
        _exit(0);
    }
    *ret_pid = pid;
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    assert_true(pidfd >= 0);
    return pidfd;
}

static void exit3(int fd)
{
    (void)fd;
    _exit(3);
}

static void sleeper(int fd)
{
    (void)fd;
    pause();
}

static void killed_by_term(int fd)
{
    (void)fd;
    raise(SIGTERM);
}

/* a group leader whose own child would outlive it without the group kill */
static void group_with_grandchild(int fd)
{
    pid_t g;

    setpgid(0, 0);
    g = fork();
    if (g == 0)
        pause();
    if (write(fd, &g, sizeof(g)) != sizeof(g))
        _exit(1);
    pause();
}

static void test_exit_codes(void **state)
{
    berth_error err = BERTH_ERROR_INIT;
    pid_t pid;
    int code = -1;
    (void)state;

    _cleanup_close_ int a = child(&pid, exit3, -1);
    assert_int_equal(berth_exec_wait(a, -1, &code, &err), 0);
    assert_int_equal(code, 3);
    _cleanup_close_ int b = child(&pid, killed_by_term, -1);
    assert_int_equal(berth_exec_wait(b, 5000, &code, &err), 0);
    assert_int_equal(code, 128 + SIGTERM);
}

static void test_timeout_kills(void **state)
{
    berth_error err = BERTH_ERROR_INIT;
    pid_t pid;
    int code = -1;
    (void)state;

    _cleanup_close_ int fd = child(&pid, sleeper, -1);
    uint64_t t0 = berth_now_ms();
    assert_int_equal(berth_exec_wait(fd, 100, &code, &err), 1);
    uint64_t took = berth_now_ms() - t0;
    assert_int_equal(code, 128 + SIGKILL);
    assert_true(took >= 100 && took < 5000);
    /* reaped: the pid is no child of ours any more */
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void test_timeout_kills_the_process_group(void **state)
{
    berth_error err = BERTH_ERROR_INIT;
    int p[2], code = -1, status = 0;
    pid_t pid, grandchild = 0;
    (void)state;

    /* the orphaned grandchild comes back to us, so we can see how it died */
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
    assert_int_equal(pipe(p), 0);
    _cleanup_close_ int fd = child(&pid, group_with_grandchild, p[1]);
    close(p[1]);
    assert_int_equal(read(p[0], &grandchild, sizeof(grandchild)), sizeof(grandchild));
    close(p[0]);
    assert_int_equal(berth_exec_wait(fd, 50, &code, &err), 1);
    assert_int_equal(waitpid(grandchild, &status, 0), grandchild);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
}

static void test_spawn_into_a_gone_container(void **state)
{
    berth_error err = BERTH_ERROR_INIT;
    char *argv[] = {"true", NULL};
    pid_t pid, got = 0;
    int fd = -1;
    (void)state;

    int pidfd = child(&pid, exit3, -1);
    int code;
    assert_int_equal(berth_exec_wait(pidfd, -1, &code, &err), 0);
    close(pidfd);
    struct berth_run_config run = {.name = "web"};
    struct berth_user root = {0};
    struct berth_exec_config cfg = {
        .init_pid = pid, .init_pidfd = -1, .run = &run, .user = &root, .argv = argv};
    assert_int_equal(berth_exec_spawn(&cfg, &got, &fd, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "the container of 'web' is not running"));
    assert_int_equal(err.code, ESRCH);
    assert_int_equal(fd, -1);

    cfg.init_pid = 0;
    assert_int_equal(berth_exec_spawn(&cfg, &got, &fd, NULL, &err), -1);
    cfg.init_pid = getpid();
    cfg.argv = NULL;
    assert_int_equal(berth_exec_spawn(&cfg, &got, &fd, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "no command"));
}

static void mkfile(const char *dir, const char *name)
{
    berth_error err = BERTH_ERROR_INIT;
    _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);

    assert_int_equal(berth_mkdir_p(dir, 0755, &err), 0);
    assert_int_equal(berth_write_file_atomic(p, "", 0, 0644, &err), 0);
}

static char *slurp(const char *dir, const char *name)
{
    berth_error err = BERTH_ERROR_INIT;
    _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
    char *data = NULL;

    assert_int_equal(berth_read_file(p, 4096, &data, NULL, &err), 0);
    return data;
}

/* Spawn against ourselves as the "init", with a fake cgroupfs: the helper
 * writes its pid into the service's cgroup.procs before setns. As root the
 * setns into our own namespaces works and `true` runs; otherwise setns
 * fails. Either way the cgroup files show what the helper joined. */
static void spawn_with_fake_cgroups(const char *fsroot, const char *const *dirs, size_t ndirs,
                                    const char *const *absent, size_t nabsent)
{
    berth_error err = BERTH_ERROR_INIT;
    char *argv[] = {"true", NULL};
    struct berth_run_config run = {.name = "web", .caps = 0};
    struct berth_user user = {.uid = getuid(), .gid = getgid()};
    struct berth_exec_config cfg = {.init_pid = getpid(),
                                    .init_pidfd = -1,
                                    .cgroup_root = fsroot,
                                    .run = &run,
                                    .user = &user,
                                    .argv = argv};
    pid_t pid = 0, helper = 0;
    int fd = -1, code = -1;

    int r = berth_exec_spawn(&cfg, &pid, &fd, NULL, &err);
    if (r == 0) {
        assert_int_equal(berth_exec_wait(fd, 10000, &code, &err), 0);
        assert_int_equal(code, 0);
        close(fd);
    } else {
        assert_non_null(strstr(err.msg, "setns"));
    }
    for (size_t i = 0; i < ndirs; i++) {
        _cleanup_free_ char *procs = slurp(dirs[i], "cgroup.procs");
        pid_t p = (pid_t)atoi(procs);
        assert_true(p > 0 && p != getpid());
        assert_true(helper == 0 || p == helper);
        helper = p;
    }
    for (size_t i = 0; i < nabsent; i++)
        assert_int_not_equal(access(absent[i], F_OK), 0);
}

static void test_joins_v2_and_v1_cgroups(void **state)
{
    berth_error err = BERTH_ERROR_INIT;
    char tmpl[] = "/tmp/berth-test-exec-XXXXXX";
    char *tmp = mkdtemp(tmpl);
    (void)state;

    assert_non_null(tmp);
    /* The command joins the cgroups the init is in (here: ours, as
     * /proc/self/cgroup names them), below the given hierarchy root. */
    _cleanup_free_ char *mine = berth_cgroup_of(0, NULL);
    _cleanup_free_ char *mine_mem = berth_cgroup_of(0, "memory");
    _cleanup_free_ char *mine_pids = berth_cgroup_of(0, "pids");
    assert_non_null(mine);

    /* v2: one directory, found through cgroup.controllers at the root */
    _cleanup_free_ char *v2 = xasprintf("%s/v2", tmp);
    _cleanup_free_ char *v2dir = xasprintf("%s/%s", v2, mine);
    mkfile(v2, "cgroup.controllers");
    mkfile(v2dir, "cgroup.procs");
    const char *v2dirs[] = {v2dir};
    spawn_with_fake_cgroups(v2, v2dirs, 1, NULL, 0);

    /* v1: each mounted controller of memory, cpu and pids; here cpu is not */
    if (mine_mem && mine_pids) {
        _cleanup_free_ char *v1 = xasprintf("%s/v1", tmp);
        _cleanup_free_ char *mem = xasprintf("%s/memory/%s", v1, mine_mem);
        _cleanup_free_ char *pids = xasprintf("%s/pids/%s", v1, mine_pids);
        _cleanup_free_ char *cpu = xasprintf("%s/cpu", v1);
        mkfile(mem, "cgroup.procs");
        mkfile(pids, "cgroup.procs");
        const char *v1dirs[] = {mem, pids};
        const char *absent[] = {cpu};
        spawn_with_fake_cgroups(v1, v1dirs, 2, absent, 1);
    }
    assert_int_equal(berth_rm_rf(tmp, &err), 0);
}

/* berth_child_keep_fds: the kept descriptors move to 3, 4, ... in order
 * (whatever numbers they had, one of them already a target), all others
 * are closed. In a child, whose descriptors are its own. */
static void test_keep_fds(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int p[2], q[2];
        if (pipe(p) < 0 || pipe(q) < 0)
            _exit(10);
        /* a at 3 (a target), b far above, c in between; d is not kept */
        int a = dup2(p[0], 3), b = dup2(p[1], 40), c = dup2(q[1], 9), d = dup2(q[0], 12);
        if (a != 3 || b != 40 || c != 9 || d != 12)
            _exit(11);
        int none = -1;
        int *const keep[] = {&b, &none, &a, &c};
        if (berth_child_keep_fds(keep, 4) < 0)
            _exit(12);
        if (b != 3 || a != 4 || c != 5 || none != -1)
            _exit(13);
        /* b is p's write end, a its read end: the pair still works */
        if (write(b, "x", 1) != 1)
            _exit(14);
        char ch;
        if (read(a, &ch, 1) != 1 || ch != 'x')
            _exit(15);
        for (int fd = 6; fd < 64; fd++)
            if (fcntl(fd, F_GETFD) >= 0)
                _exit(16);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_timeout_kills),
        cmocka_unit_test(test_timeout_kills_the_process_group),
        cmocka_unit_test(test_spawn_into_a_gone_container),
        cmocka_unit_test(test_joins_v2_and_v1_cgroups),
        cmocka_unit_test(test_keep_fds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
