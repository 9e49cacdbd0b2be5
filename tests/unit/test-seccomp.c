/* Seccomp profiles: the compiled-in Docker table, parsing Docker's format,
 * the conditions (caps, arches, minKernel, args), filters loaded into a
 * child (no root needed: no_new_privs suffices) and the filter cache. The
 * containers' side is tests/integration/test_seccomp.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "caps.h"
#include "seccomp-profile.h"
#include "util.h"

#define CAP(c) (1ULL << (c))

static bool has_name(const struct berth_seccomp_rule *r, const char *name)
{
    const char *n = r->names;

    for (uint32_t i = 0; i < r->nnames; i++, n += strlen(n) + 1)
        if (!strcmp(n, name))
            return true;
    return false;
}

static void test_default_table(void **state)
{
    const struct berth_seccomp_profile *p = &berth_seccomp_default;
    bool execve = false, unshare_allowed_plain = false, mount_needs_admin = false;
    bool ptrace_48 = false;

    (void)state;
    /* SCMP_ACT_ERRNO(EPERM) */
    assert_int_equal(p->default_action, 0x00050000U | EPERM);
    assert_true(p->nrules > 20);
    assert_int_equal(strcmp(p->arch_groups, "x86_64 x86 x32"), 0);
    for (uint32_t i = 0; i < p->nrules; i++) {
        const struct berth_seccomp_rule *r = &p->rules[i];
        if (has_name(r, "execve") && !r->caps_all)
            execve = true;
        if (has_name(r, "unshare") && !r->caps_all)
            unshare_allowed_plain = true;
        if (has_name(r, "mount") && r->caps_all == CAP(CAP_SYS_ADMIN))
            mount_needs_admin = true;
        if (has_name(r, "ptrace") && !r->caps_all)
            ptrace_48 = r->kernel_min == (4 << 16 | 8);
    }
    assert_true(execve);
    assert_false(unshare_allowed_plain);
    assert_true(mount_needs_admin);
    assert_true(ptrace_48);
}

static struct berth_seccomp_profile *parse(const char *json)
{
    berth_error err = BERTH_ERROR_INIT;
    struct berth_seccomp_profile *p = NULL;

    if (berth_seccomp_profile_parse(json, strlen(json), "t.json", &p, &err) < 0)
        fail_msg("%s", err.msg);
    return p;
}

static void parse_fails(const char *json, const char *fragment)
{
    berth_error err = BERTH_ERROR_INIT;
    struct berth_seccomp_profile *p = NULL;

    assert_int_equal(berth_seccomp_profile_parse(json, strlen(json), "t.json", &p, &err), -1);
    assert_null(p);
    if (!strstr(err.msg, fragment))
        fail_msg("'%s' does not say '%s'", err.msg, fragment);
    assert_non_null(strstr(err.msg, "seccomp profile 't.json'"));
}

static void test_parse(void **state)
{
    struct berth_seccomp_profile *p = parse(
        "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 38,"
        " \"archMap\": [{\"architecture\": \"SCMP_ARCH_X86_64\","
        "                \"subArchitectures\": [\"SCMP_ARCH_X86\"]}],"
        " \"syscalls\": ["
        "  {\"names\": [\"read\", \"write\"], \"action\": \"SCMP_ACT_ALLOW\"},"
        "  {\"name\": \"kill\", \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 1,"
        "   \"args\": [{\"index\": 1, \"value\": 9, \"valueTwo\": 0, \"op\": \"SCMP_CMP_EQ\"}],"
        "   \"includes\": {\"caps\": [\"CAP_KILL\"], \"minKernel\": \"5.4\"},"
        "   \"excludes\": {\"caps\": [\"CAP_SYS_ADMIN\"], \"arches\": [\"s390x\"]}}]}");

    (void)state;
    assert_int_equal(p->default_action, 0x00050000U | 38);
    assert_int_equal(p->narch_groups, 1);
    assert_string_equal(p->arch_groups, "x86_64 x86");
    assert_int_equal(p->nrules, 2);
    assert_int_equal(p->rules[0].nnames, 2);
    assert_true(has_name(&p->rules[0], "write"));
    assert_int_equal(p->rules[0].action, 0x7fff0000U);
    assert_int_equal(p->rules[1].action, 0x00050000U | 1);
    assert_int_equal(p->rules[1].nargs, 1);
    assert_int_equal(p->rules[1].args[0].index, 1);
    assert_int_equal(p->rules[1].args[0].value, 9);
    assert_int_equal(p->rules[1].caps_all, CAP(CAP_KILL));
    assert_int_equal(p->rules[1].caps_none, CAP(CAP_SYS_ADMIN));
    assert_int_equal(p->rules[1].arches_out, BERTH_SECCOMP_GOARCH_S390X);
    assert_int_equal(p->rules[1].kernel_min, 5 << 16 | 4);
    berth_seccomp_profile_free(p);
}

static void test_parse_errors(void **state)
{
    (void)state;
    parse_fails("{\"defaultAction\": ", "line 1");
    parse_fails("[]", "expected a JSON object");
    parse_fails("{\"defaultAction\": \"SCMP_ACT_NOPE\"}", "unknown defaultAction 'SCMP_ACT_NOPE'");
    parse_fails("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"read\"],"
                " \"action\": \"SCMP_ACT_NOTIFY\"}]}",
                "syscalls[0]: unknown action 'SCMP_ACT_NOTIFY'");
    parse_fails("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"read\"],"
                " \"action\": \"SCMP_ACT_ERRNO\", \"args\": [{\"index\": 6, \"value\": 1,"
                " \"op\": \"SCMP_CMP_EQ\"}]}]}",
                "args[0]: 'index' must be 0 to 5");
    parse_fails("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"read\"],"
                " \"action\": \"SCMP_ACT_ERRNO\", \"args\": [{\"index\": 0, \"value\": 1,"
                " \"op\": \"SCMP_CMP_SOMETIMES\"}]}]}",
                "unknown op 'SCMP_CMP_SOMETIMES'");
    parse_fails("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"archMap\": [{\"architecture\":"
                " \"SCMP_ARCH_VAX\"}]}",
                "unknown architecture 'SCMP_ARCH_VAX'");
    parse_fails("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"read\"],"
                " \"action\": \"SCMP_ACT_ERRNO\", \"includes\": {\"minKernel\": \"new\"}}]}",
                "includes.minKernel");
}

/* In a child: load the filter of `p` for `caps`, then report what the
 * probe calls return as the exit status (errno, 0 for success). */
static int in_child(const struct berth_seccomp_profile *p, uint64_t caps, int (*probe)(void))
{
    berth_error err = BERTH_ERROR_INIT;
    struct berth_seccomp_bpf bpf;
    pid_t pid;
    int status;

    if (berth_seccomp_build(p, caps, NULL, &bpf, &err) < 0)
        fail_msg("%s", err.msg);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || berth_seccomp_install(&bpf) < 0)
            _exit(255);
        _exit(probe());
    }
    berth_seccomp_bpf_release(&bpf);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_not_equal(WEXITSTATUS(status), 255);
    return WEXITSTATUS(status);
}

static int call_errno(long r)
{
    return r < 0 ? errno : 0;
}

static int probe_unshare(void)
{
    return call_errno(unshare(CLONE_NEWUSER));
}

static int probe_personality(void)
{
    return call_errno(personality(0x0fff)); /* no value Docker allows */
}

static int probe_personality_query(void)
{
    return call_errno(personality(0xffffffff));
}

static int probe_getppid(void)
{
    return call_errno(syscall(SYS_getppid));
}

static int probe_keyctl(void)
{
    return call_errno(syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
}

static int probe_getpid(void)
{
    return call_errno(syscall(SYS_getpid));
}

static void test_default_filter_in_a_child(void **state)
{
    const struct berth_seccomp_profile *p = &berth_seccomp_default;
    uint64_t caps = berth_caps_default();

    (void)state;
    assert_int_equal(in_child(p, caps, probe_unshare), EPERM);
    assert_int_equal(in_child(p, caps, probe_personality), EPERM);
    assert_int_equal(in_child(p, caps, probe_keyctl), EPERM);
    assert_int_equal(in_child(p, caps, probe_personality_query), 0);
    assert_int_equal(in_child(p, caps, probe_getpid), 0);
}

static void test_conditions(void **state)
{
    /* getppid fails with ERANGE when the rule applies */
    static const char *const rules[] = {
        "\"excludes\": {\"caps\": [\"CAP_SYS_ADMIN\"]}",
        "\"includes\": {\"caps\": [\"CAP_SYS_ADMIN\", \"CAP_SYS_PTRACE\"]}",
        "\"includes\": {\"arches\": [\"amd64\"]}",
        "\"includes\": {\"arches\": [\"s390x\", \"arm64\"]}",
        "\"excludes\": {\"arches\": [\"amd64\"]}",
        "\"includes\": {\"minKernel\": \"4.8\"}",
        "\"includes\": {\"minKernel\": \"999.0\"}",
        "\"excludes\": {\"minKernel\": \"4.8\"}",
        "\"includes\": {\"caps\": [\"CAP_NOT_A_CAP\"]}",
    };
    static const struct {
        uint64_t caps;
        int want[9];
    } cases[] = {
        {0, {ERANGE, 0, ERANGE, 0, 0, ERANGE, 0, 0, 0}},
        {CAP(CAP_SYS_ADMIN), {0, 0, ERANGE, 0, 0, ERANGE, 0, 0, 0}},
        {CAP(CAP_SYS_ADMIN) | CAP(CAP_SYS_PTRACE), {0, ERANGE, ERANGE, 0, 0, ERANGE, 0, 0, 0}},
    };

    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(rules); i++) {
        _cleanup_free_ char *json = xasprintf(
            "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"getppid\"],"
            " \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": %d, %s}]}",
            ERANGE, rules[i]);
        struct berth_seccomp_profile *p = parse(json);
        for (size_t k = 0; k < ARRAY_SIZE(cases); k++) {
            int got = in_child(p, cases[k].caps, probe_getppid);
            if (got != cases[k].want[i])
                fail_msg("rule %s with caps %#llx: errno %d, expected %d", rules[i],
                         (unsigned long long)cases[k].caps, got, cases[k].want[i]);
        }
        berth_seccomp_profile_free(p);
    }
}

static int probe_personality_other(void)
{
    return call_errno(personality(0x0ffe));
}

static void test_args(void **state)
{
    /* two conditions on one argument are ORed (runc's way: one rule each);
     * everything else is allowed (the sanitizers make calls of their own) */
    struct berth_seccomp_profile *p =
        parse("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": ["
              " {\"names\": [\"personality\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 34,"
              "  \"args\": [{\"index\": 0, \"value\": 4095, \"op\": \"SCMP_CMP_EQ\"},"
              "            {\"index\": 0, \"value\": 4094, \"op\": \"SCMP_CMP_EQ\"}]}"
              "]}");

    (void)state;
    assert_int_equal(in_child(p, 0, probe_personality), ERANGE);
    assert_int_equal(in_child(p, 0, probe_personality_other), ERANGE);
    assert_int_equal(in_child(p, 0, probe_personality_query), 0);
    berth_seccomp_profile_free(p);
}

static void test_unknown_syscalls_are_skipped(void **state)
{
    struct berth_seccomp_profile *p =
        parse("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\":"
              " [\"no_such_call_2099\", \"getppid\"], \"action\": \"SCMP_ACT_ERRNO\","
              " \"errnoRet\": 34}]}");

    (void)state;
    assert_int_equal(in_child(p, 0, probe_getppid), ERANGE);
    berth_seccomp_profile_free(p);
}

static void test_cache(void **state)
{
    char dir[] = "/tmp/berth-seccomp-test-XXXXXX";
    berth_error err = BERTH_ERROR_INIT;
    struct berth_seccomp_bpf a, b;
    _cleanup_free_ char *cache = NULL;
    struct stat st;

    (void)state;
    assert_non_null(mkdtemp(dir));
    cache = xasprintf("%s/cache/seccomp", dir);
    /* a mask no other test used: not the in-memory filter */
    assert_int_equal(
        berth_seccomp_build(&berth_seccomp_default, CAP(CAP_SYS_TIME), cache, &a, &err), 0);
    assert_int_equal(stat(cache, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(
        berth_seccomp_build(&berth_seccomp_default, CAP(CAP_SYS_TIME), cache, &b, &err), 0);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.insns, b.insns, a.len * 8u);
    berth_seccomp_bpf_release(&b);
    /* from the file, in a process without the in-memory one */
    pid_t pid = fork();
    if (pid == 0) {
        struct berth_seccomp_bpf c;
        berth_error e = BERTH_ERROR_INIT;
        if (berth_seccomp_build(&berth_seccomp_default, 0, NULL, &c, &e) < 0) /* evict */
            _exit(1);
        if (berth_seccomp_build(&berth_seccomp_default, CAP(CAP_SYS_TIME), cache, &c, &e) < 0 ||
            c.len != a.len || memcmp(c.insns, a.insns, a.len * 8u))
            _exit(1);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* another mask, another filter */
    assert_int_equal(
        berth_seccomp_build(&berth_seccomp_default, CAP(CAP_SYS_ADMIN), cache, &b, &err), 0);
    assert_true(b.len > a.len);
    berth_seccomp_bpf_release(&a);
    berth_seccomp_bpf_release(&b);
    assert_int_equal(berth_rm_rf(dir, &err), 0);
}

static void test_load_file(void **state)
{
    berth_error err = BERTH_ERROR_INIT;
    struct berth_seccomp_profile *p = NULL;

    (void)state;
    assert_int_equal(berth_seccomp_profile_load("/nonexistent/p.json", &p, &err), -1);
    assert_non_null(strstr(err.msg, "seccomp profile '/nonexistent/p.json'"));
    assert_non_null(strstr(err.msg, "No such file"));
    berth_error_clear(&err);
    assert_int_equal(berth_seccomp_profile_load("/dev/null", &p, &err), -1);
    assert_non_null(strstr(err.msg, "not a regular file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_table),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_default_filter_in_a_child),
        cmocka_unit_test(test_conditions),
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_unknown_syscalls_are_skipped),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
