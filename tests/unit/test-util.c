#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "caps.h"
#include "util.h"

static void test_sizes(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(berth_parse_size("1024", &v), 0);
    assert_int_equal(v, 1024);
    assert_int_equal(berth_parse_size("64k", &v), 0);
    assert_int_equal(v, 64 << 10);
    assert_int_equal(berth_parse_size("512M", &v), 0);
    assert_int_equal(v, 512ULL << 20);
    assert_int_equal(berth_parse_size("2G", &v), 0);
    assert_int_equal(v, 2ULL << 30);
    assert_int_equal(berth_parse_size("10MiB", &v), 0);
    assert_int_equal(v, 10ULL << 20);
    assert_int_equal(berth_parse_size("10MB", &v), 0);
    assert_int_equal(v, 10ULL << 20);
    const char *bad[] = {
        "",   "M", "-1M", "+1", " 1", "1X", "1.5G", "99999999999999999999", "18014398509481984T",
        "1MM"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(berth_parse_size(bad[i], &v), -1);
}

static void test_durations(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(berth_parse_duration("250ms", &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(berth_parse_duration("1.5s", &v), 0);
    assert_int_equal(v, 1500);
    assert_int_equal(berth_parse_duration("10", &v), 0);
    assert_int_equal(v, 10000);
    assert_int_equal(berth_parse_duration("5m", &v), 0);
    assert_int_equal(v, 300000);
    assert_int_equal(berth_parse_duration("1h", &v), 0);
    assert_int_equal(v, 3600000);
    const char *bad[] = {"", "s", "-1s", "1d", "nan", "1e300h", "1 s"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(berth_parse_duration(bad[i], &v), -1);
}

static void test_signals(void **state)
{
    (void)state;
    assert_int_equal(berth_signal_from_name("SIGTERM"), SIGTERM);
    assert_int_equal(berth_signal_from_name("term"), SIGTERM);
    assert_int_equal(berth_signal_from_name("9"), SIGKILL);
    assert_int_equal(berth_signal_from_name("SIGWINCH"), SIGWINCH);
    assert_int_equal(berth_signal_from_name("SIGNOPE"), -1);
    assert_int_equal(berth_signal_from_name("0"), -1);
    assert_int_equal(berth_signal_from_name("999"), -1);
    assert_string_equal(berth_signal_name(SIGQUIT), "SIGQUIT");
}

static void test_caps(void **state)
{
    (void)state;
    /* podman's: Docker's 0xa80425fb without NET_RAW, MKNOD, AUDIT_WRITE */
    assert_int_equal(berth_caps_default(), 0x800405fbULL);
    berth_error err = BERTH_ERROR_INIT;
    uint64_t m = 0;
    assert_int_equal(berth_caps_from_name("NET_ADMIN", &m, &err), 0);
    assert_true(m == 1ULL << 12);
    assert_int_equal(berth_caps_from_name("cap_net_admin", &m, &err), 0);
    assert_true(m == 1ULL << 12);
    assert_int_equal(berth_caps_from_name("CAP_SYS_ADMIN", &m, &err), 0);
    assert_true(m == 1ULL << 21);
    assert_int_equal(berth_caps_from_name("ALL", &m, &err), 0);
    assert_true(m == ~0ULL);
    assert_int_equal(berth_caps_from_name("BOGUS", &m, &err), -1);
    assert_string_equal(err.msg, "unknown capability 'BOGUS'");
    assert_int_equal(err.code, EINVAL);
    assert_int_equal(berth_caps_from_name("12", &m, &err), -1);
    assert_int_equal(berth_caps_from_name("", &m, &err), -1);

    char *add[] = {"NET_ADMIN", "BOGUS"}, *drop[] = {"CHOWN"}, *all[] = {"ALL"};
    uint64_t def = berth_caps_default();
    assert_true(berth_caps_resolve(NULL, 0, NULL, 0) == def);
    assert_true(berth_caps_resolve(add, 2, drop, 1) == ((def | 1ULL << 12) & ~1ULL));
    assert_true(berth_caps_resolve(all, 1, NULL, 0) == ~0ULL);
    assert_true(berth_caps_resolve(add, 1, all, 1) == 0);
}

static void test_error_wrap(void **state)
{
    (void)state;
    berth_error err = BERTH_ERROR_INIT;
    assert_int_equal(berth_error_set(&err, ENOENT, "opening '%s'", "/x"), -1);
    assert_int_equal(berth_error_wrap(&err, "starting '%s'", "web"), -1);
    assert_string_equal(err.msg, "starting 'web': opening '/x': No such file or directory");
    assert_int_equal(err.code, ENOENT);
}

static void test_atomic_write_and_rm_rf(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/berth-util-test-XXXXXX";
    berth_error err = BERTH_ERROR_INIT;
    char *data = NULL;
    size_t len;

    assert_non_null(mkdtemp(tmpl));
    _cleanup_free_ char *deep = xasprintf("%s/a/b/c", tmpl);
    _cleanup_free_ char *file = xasprintf("%s/a/b/c/state.json", tmpl);
    assert_int_equal(berth_mkdir_p(deep, 0755, &err), 0);
    assert_int_equal(berth_write_file_atomic(file, "{}", 2, 0600, &err), 0);
    assert_int_equal(berth_write_file_atomic(file, "{\"a\":1}", 7, 0600, &err), 0);
    assert_int_equal(berth_read_file(file, 100, &data, &len, &err), 0);
    assert_string_equal(data, "{\"a\":1}");
    free(data);
    assert_int_equal(berth_read_file(file, 3, &data, &len, &err), -1);
    assert_int_equal(berth_rm_rf(tmpl, &err), 0);
    assert_int_equal(access(tmpl, F_OK), -1);
    assert_int_equal(berth_rm_rf(tmpl, &err), 0); /* missing is fine */
}

/* Mount targets are created inside the root even through hostile symlinks. */
/* A library opened on first use is looked up in the host's tree only:
 * after a chroot (as the unpacker's, or a container's pivot_root) the
 * lookup would go to a tree an image chose. */
static void test_dlopen_only_from_the_host_root(void **state)
{
    char dir[] = "/tmp/berth-test-dlopen-XXXXXX";
    char why[256];
    int status;
    pid_t pid;

    (void)state;
    if (geteuid() != 0) {
        if (getenv("CI"))
            fail_msg("needs root (chroot)");
        skip();
    }
    assert_non_null(mkdtemp(dir));
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        void *h = berth_dlopen_host("libcrypto.so.3", why, sizeof(why));
        if (!h) /* control: the host's root */
            _exit(2);
        if (chroot(dir) < 0 || chdir("/") < 0)
            _exit(3);
        h = berth_dlopen_host("libz.so.1", why, sizeof(why));
        _exit(!h && strstr(why, "no longer sees the host's root") ? 0 : 4);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_open_in_root_never_escapes(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/berth-root-test-XXXXXX";
    berth_error err = BERTH_ERROR_INIT;

    assert_non_null(mkdtemp(tmpl));
    _cleanup_free_ char *root = xasprintf("%s/root", tmpl);
    _cleanup_free_ char *outside = xasprintf("%s/outside", tmpl);
    assert_int_equal(berth_mkdir_p(root, 0755, &err), 0);
    assert_int_equal(berth_mkdir_p(outside, 0755, &err), 0);
    _cleanup_free_ char *l1 = xasprintf("%s/abs", root);
    _cleanup_free_ char *l2 = xasprintf("%s/rel", root);
    _cleanup_free_ char *l3 = xasprintf("%s/loop", root);
    assert_int_equal(symlink(outside, l1), 0);
    assert_int_equal(symlink("../../../../outside", l2), 0);
    assert_int_equal(symlink("loop", l3), 0);

    int rootfd = open(root, O_PATH | O_DIRECTORY);
    assert_true(rootfd >= 0);
    int fd = berth_open_in_root(rootfd, "/abs/x/y", true, true, &err);
    assert_true(fd >= 0);
    close(fd);
    fd = berth_open_in_root(rootfd, "rel/file", true, false, &err);
    assert_true(fd >= 0);
    close(fd);
    fd = berth_open_in_root(rootfd, "/loop/z", true, true, &err);
    assert_int_equal(fd, -1);
    assert_int_equal(err.code, ELOOP);
    assert_non_null(strstr(err.msg, "creating '/loop/z' inside the root"));
    close(rootfd);

    struct stat st;
    _cleanup_free_ char *inside_abs = xasprintf("%s%s/x/y", root, outside);
    _cleanup_free_ char *inside_rel = xasprintf("%s/outside/file", root);
    assert_int_equal(stat(inside_abs, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(stat(inside_rel, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    /* nothing appeared in the real outside */
    _cleanup_free_ char *o1 = xasprintf("%s/x", outside);
    _cleanup_free_ char *o2 = xasprintf("%s/file", outside);
    assert_int_equal(access(o1, F_OK), -1);
    assert_int_equal(access(o2, F_OK), -1);
    assert_int_equal(berth_rm_rf(tmpl, &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_signals),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_error_wrap),
        cmocka_unit_test(test_atomic_write_and_rm_rf),
        cmocka_unit_test(test_open_in_root_never_escapes),
        cmocka_unit_test(test_dlopen_only_from_the_host_root),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
