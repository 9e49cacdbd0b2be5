/* enosys SYSCALL CMD [ARGS...]: run CMD with SYSCALL failing with ENOSYS,
 * as on a kernel that predates it (libseccomp), to test that berth names
 * the missing feature instead of failing deep inside its set-up. */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    scmp_filter_ctx ctx;
    int nr;

    if (argc < 3) {
        fprintf(stderr, "usage: enosys SYSCALL CMD [ARGS...]\n");
        return 2;
    }
    nr = seccomp_syscall_resolve_name(argv[1]);
    ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (nr == __NR_SCMP_ERROR || !ctx || seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0) < 0 ||
        seccomp_load(ctx) < 0) {
        fprintf(stderr, "enosys: cannot filter '%s'\n", argv[1]);
        return 2;
    }
    execvp(argv[2], argv + 2);
    perror(argv[2]);
    return 127;
}
