/* sysprobe CALL...: make each system call and print "CALL: ok" or
 * "CALL: ERRNO-NAME" (a line each); exit with the errno of the last one
 * (0: it succeeded). For tests/integration/test_seccomp.py; static. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <unistd.h>

static long call(const char *name)
{
    if (!strcmp(name, "unshare-user"))
        return unshare(CLONE_NEWUSER);
    if (!strcmp(name, "keyctl"))
        return syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);
    if (!strcmp(name, "add_key"))
        return syscall(SYS_add_key, "user", "berth-test", "x", 1, KEY_SPEC_PROCESS_KEYRING);
    if (!strcmp(name, "mount"))
        return mount("none", "/tmp", "tmpfs", 0, NULL);
    if (!strcmp(name, "umount"))
        return umount2("/tmp", MNT_DETACH);
    if (!strcmp(name, "personality-odd"))
        return personality(0x0fff);
    if (!strcmp(name, "personality-query"))
        return personality(0xffffffff);
    if (!strcmp(name, "getpid"))
        return syscall(SYS_getpid);
    errno = EINVAL;
    return -2;
}

int main(int argc, char **argv)
{
    int e = 0;

    for (int i = 1; i < argc; i++) {
        long r;
        errno = 0;
        r = call(argv[i]);
        if (r == -2) {
            fprintf(stderr, "sysprobe: unknown call '%s'\n", argv[i]);
            return 100;
        }
        e = r < 0 ? errno : 0;
        printf("%s: %s\n", argv[i], e ? strerrorname_np(e) : "ok");
    }
    fflush(stdout);
    return e;
}
