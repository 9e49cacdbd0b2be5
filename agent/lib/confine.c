#include "confine.h"

#include <errno.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <stdbool.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static const cap_value_t keep_caps[] = {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID,
                                        CAP_SETFCAP};

/* What libarchive, libc and the sanitizers call while extracting. */
static const char *const allowed[] = {"read",
                                      "readv",
                                      "pread64",
                                      "preadv",
                                      "preadv2",
                                      "write",
                                      "writev",
                                      "pwrite64",
                                      "pwritev",
                                      "pwritev2",
                                      "lseek",
                                      "close",
                                      "close_range",
                                      "open",
                                      "openat",
                                      "openat2",
                                      "fstat",
                                      "stat",
                                      "lstat",
                                      "newfstatat",
                                      "statx",
                                      "fstatfs",
                                      "statfs",
                                      "access",
                                      "faccessat",
                                      "faccessat2",
                                      "mkdir",
                                      "mkdirat",
                                      "unlink",
                                      "unlinkat",
                                      "rmdir",
                                      "rename",
                                      "renameat",
                                      "renameat2",
                                      "symlink",
                                      "symlinkat",
                                      "link",
                                      "linkat",
                                      "readlink",
                                      "readlinkat",
                                      "chown",
                                      "fchown",
                                      "lchown",
                                      "fchownat",
                                      "chmod",
                                      "fchmod",
                                      "fchmodat",
                                      "utime",
                                      "utimes",
                                      "utimensat",
                                      "futimesat",
                                      "setxattr",
                                      "lsetxattr",
                                      "fsetxattr",
                                      "getxattr",
                                      "lgetxattr",
                                      "fgetxattr",
                                      "listxattr",
                                      "llistxattr",
                                      "flistxattr",
                                      "removexattr",
                                      "lremovexattr",
                                      "fremovexattr",
                                      "truncate",
                                      "ftruncate",
                                      "fallocate",
                                      "fadvise64",
                                      "fsync",
                                      "fdatasync",
                                      "fchdir",
                                      "chdir",
                                      "getcwd",
                                      "umask",
                                      "getdents",
                                      "getdents64",
                                      "fcntl",
                                      "dup",
                                      "dup2",
                                      "dup3",
                                      "brk",
                                      "mmap",
                                      "munmap",
                                      "mremap",
                                      "mprotect",
                                      "madvise",
                                      "exit",
                                      "exit_group",
                                      "rt_sigreturn",
                                      "rt_sigprocmask",
                                      "rt_sigaction",
                                      "sigaltstack",
                                      "getpid",
                                      "gettid",
                                      "getppid",
                                      "getuid",
                                      "geteuid",
                                      "getgid",
                                      "getegid",
                                      "getresuid",
                                      "getresgid",
                                      "clock_gettime",
                                      "clock_getres",
                                      "gettimeofday",
                                      "time",
                                      "nanosleep",
                                      "clock_nanosleep",
                                      "futex",
                                      "set_robust_list",
                                      "sched_yield",
                                      "getrandom",
                                      "recvfrom",
                                      "recvmsg",
                                      "getrlimit",
                                      "prlimit64",
                                      "uname",
                                      "poll",
                                      "ppoll",
                                      "restart_syscall",
                                      "sysinfo"};

static int drop_caps(berth_error *err)
{
    /* the bounding set first: dropping from it needs CAP_SETPCAP */
    for (int c = 0; prctl(PR_CAPBSET_READ, c, 0, 0, 0) >= 0; c++) {
        bool keep = false;
        for (size_t i = 0; i < ARRAY_SIZE(keep_caps); i++)
            keep = keep || keep_caps[i] == c;
        if (!keep && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
            return berth_error_set(err, errno, "dropping capability %d from the bounding set", c);
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return berth_error_set(err, errno, "clearing the ambient capabilities");
    cap_t caps = cap_init(); /* all clear */
    if (!caps)
        return berth_error_set(err, errno, "allocating capabilities");
    int r = cap_set_flag(caps, CAP_EFFECTIVE, ARRAY_SIZE(keep_caps), keep_caps, CAP_SET);
    if (r == 0)
        r = cap_set_flag(caps, CAP_PERMITTED, ARRAY_SIZE(keep_caps), keep_caps, CAP_SET);
    if (r == 0)
        r = cap_set_proc(caps);
    int e = errno;
    cap_free(caps);
    return r < 0 ? berth_error_set(err, e, "dropping capabilities") : 0;
}

static int add(scmp_filter_ctx ctx, int nr, unsigned n, const struct scmp_arg_cmp *cmp)
{
    return seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, n, cmp);
}

static int install_filter(berth_error *err)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    int r = 0, nr;

    if (!ctx)
        return berth_error_set(err, ENOMEM, "creating the seccomp filter");
    for (size_t i = 0; i < ARRAY_SIZE(allowed) && r == 0; i++)
        if ((nr = seccomp_syscall_resolve_name(allowed[i])) != __NR_SCMP_ERROR)
            r = add(ctx, nr, 0, NULL);
    /* FIFOs only: a device node would reach the host's disks */
    struct scmp_arg_cmp fifo1 = SCMP_A1(SCMP_CMP_MASKED_EQ, S_IFMT, S_IFIFO);
    struct scmp_arg_cmp fifo2 = SCMP_A2(SCMP_CMP_MASKED_EQ, S_IFMT, S_IFIFO);
    if (r == 0 && (nr = seccomp_syscall_resolve_name("mknod")) != __NR_SCMP_ERROR)
        r = add(ctx, nr, 1, &fifo1);
    if (r == 0)
        r = add(ctx, SCMP_SYS(mknodat), 1, &fifo2);
    /* abort() signals itself; nothing else (uid 0 could signal any root
     * process without CAP_KILL) */
    struct scmp_arg_cmp self[2] = {SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()),
                                   SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)gettid())};
    if (r == 0)
        r = add(ctx, SCMP_SYS(tgkill), 2, self);
    if (r == 0)
        r = seccomp_load(ctx);
    seccomp_release(ctx);
    return r < 0 ? berth_error_set(err, -r, "installing the seccomp filter") : 0;
}

int berth_confine_unpacker(int rootfd, berth_error *err)
{
    bool root = geteuid() == 0;

    prctl(PR_SET_NAME, BERTH_UNPACKER_COMM, 0, 0, 0);
    if (fchdir(rootfd) < 0)
        return berth_error_set(err, errno, "entering the unpack directory");
    if (root && chroot(".") < 0)
        return berth_error_set(err, errno, "chroot into the unpack directory");
    if (root && chdir("/") < 0)
        return berth_error_set(err, errno, "entering the unpack directory");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return berth_error_set(err, errno, "setting no_new_privs");
    if (root && drop_caps(err) < 0)
        return -1;
    return install_filter(err);
}
