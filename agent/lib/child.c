#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "caps.h"
#include "seccomp-profile.h"
#include "util.h"

void berth_child_fail(int fd, int code, bool exec_failed, const char *fmt, ...)
{
    struct berth_child_msg m = {.code = code, .exec_failed = exec_failed};
    va_list ap;
    ssize_t n;

    va_start(ap, fmt);
    vsnprintf(m.msg, sizeof(m.msg), fmt, ap);
    va_end(ap);
    do
        n = write(fd, &m, sizeof(m));
    while (n < 0 && errno == EINTR);
    _exit(127);
}

void berth_child_fail_error(int fd, const berth_error *e)
{
    struct berth_child_msg m = {.code = e->code, .complete = 1};
    ssize_t n;

    snprintf(m.msg, sizeof(m.msg), "%.*s", (int)sizeof(m.msg) - 1, e->msg);
    do
        n = write(fd, &m, sizeof(m));
    while (n < 0 && errno == EINTR);
    _exit(127);
}

int berth_child_msg_error(const struct berth_child_msg *m, berth_error *err)
{
    if (!m->complete)
        return berth_error_set(err, m->code, "%s", m->msg);
    berth_error_set(err, 0, "%s", m->msg);
    err->code = m->code;
    return -1;
}

int berth_child_read(int fd, struct berth_child_msg *m)
{
    size_t got = 0;

    while (got < sizeof(*m)) {
        ssize_t n = read(fd, (char *)m + got, sizeof(*m) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got == 0)
        return 0;
    if (got < sizeof(*m))
        return -1;
    m->msg[sizeof(m->msg) - 1] = '\0';
    return 1;
}

int berth_child_keep_fds(int *const *fds, size_t n)
{
    unsigned next = 3;

    /* first a copy of each above every target, then each copy to its
     * target: no dup3 clobbers a source still to be copied */
    for (size_t i = 0; i < n; i++)
        if (*fds[i] >= 0 && (*fds[i] = fcntl(*fds[i], F_DUPFD_CLOEXEC, (int)(3 + n))) < 0)
            return -1;
    for (size_t i = 0; i < n; i++) {
        if (*fds[i] < 0)
            continue;
        if (dup3(*fds[i], (int)next, O_CLOEXEC) < 0)
            return -1;
        *fds[i] = (int)next++;
    }
    return (int)syscall(SYS_close_range, next, ~0U, 0);
}

int berth_child_open_workdir(const char *path, bool create)
{
    _cleanup_close_ int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);

    berth_error err = BERTH_ERROR_INIT;
    int fd;

    if (root < 0)
        return -1;
    fd = berth_open_in_root(root, path, create, true, &err);
    if (fd < 0)
        errno = err.code; /* the child's report names the path itself */
    return fd;
}

int berth_child_chdir(int fd, const char *path, berth_error *err)
{
    char cwd[4096];

    if (fchdir(fd) < 0)
        return berth_error_set(err, errno, "changing to the working directory '%s'", path);
    /* Linux's getcwd says ENOENT (glibc) or "(unreachable)" for a directory
     * outside our root */
    if (!getcwd(cwd, sizeof(cwd)) || cwd[0] != '/')
        return berth_error_set(
            err, 0, "the working directory '%s' is outside the container: refused", path);
    return 0;
}

void berth_child_default_signals(void)
{
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
}

void berth_child_reset_signals(void)
{
    sigset_t none;

    berth_child_default_signals();
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

int berth_child_stdio(const int stdio[3], berth_error *err)
{
    int fds[3];

    /* copies above 2 first, so that no dup2 clobbers a source still needed */
    for (int i = 0; i < 3; i++) {
        fds[i] = stdio[i] < 0 ? open("/dev/null", O_RDWR | O_CLOEXEC)
                              : fcntl(stdio[i], F_DUPFD_CLOEXEC, 3);
        if (fds[i] < 0)
            return berth_error_set(err, errno, "setting up the standard streams");
    }
    for (int i = 0; i < 3; i++)
        if (dup2(fds[i], i) < 0)
            return berth_error_set(err, errno, "setting up the standard streams");
    return 0;
}

int berth_child_become(const struct berth_credentials *c, berth_error *err)
{
    if (c->nofile) {
        struct rlimit rl = {c->nofile, c->nofile};
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            return berth_error_set(err, errno, "setting the open file limit to %llu",
                                   (unsigned long long)c->nofile);
    }
    /* runc's order: the bounding set while still root with every
     * capability, the ids with the capabilities kept, then the sets */
    if (berth_caps_drop_bounding(c->caps, err) < 0)
        return -1;
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        return berth_error_set(err, errno, "PR_SET_KEEPCAPS");
    if (setgroups(c->ngroups, c->groups) < 0)
        return berth_error_set(err, errno, "setting supplementary groups");
    if (setresgid(c->gid, c->gid, c->gid) < 0)
        return berth_error_set(err, errno, "setting gid %u", (unsigned)c->gid);
    if (setresuid(c->uid, c->uid, c->uid) < 0)
        return berth_error_set(err, errno, "setting uid %u", (unsigned)c->uid);
    if (berth_caps_set(c->caps, err) < 0)
        return -1;
    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return berth_error_set(err, errno, "setting no_new_privs");
    if (c->seccomp && berth_seccomp_install(c->seccomp) < 0)
        return berth_error_set(err, errno, "loading the seccomp filter");
    return 0;
}

extern char **environ;

void berth_child_exec(int errfd, char **argv, char **env, const char *where)
{
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        berth_child_fail(errfd, errno, false, "marking inherited descriptors close-on-exec");
    environ = env;
    execvp(argv[0], argv);
    if (errno == ENOENT)
        berth_child_fail(errfd, ENOENT, true, "executable '%s' not found in %s (PATH searched)",
                         argv[0], where);
    berth_child_fail(errfd, errno, true, "executing '%s' in %s", argv[0], where);
}
