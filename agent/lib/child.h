/* What runs in a child between fork and exec, shared by the container's
 * service (container.c) and commands run inside a container (exec.c):
 * reporting failure to the parent over a close-on-exec pipe, standard
 * streams, and taking the service's identity in runc's order. */
#ifndef BERTH_CHILD_H
#define BERTH_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* What a child writes to its error pipe before it dies. The pipe is
 * close-on-exec, so EOF without a message means the exec succeeded. */
struct berth_child_msg {
    int code;        /* errno */
    int exec_failed; /* the exec itself failed (not found, not executable) */
    int complete;    /* msg names the cause already (a berth_error's) */
    char msg[1012];
};

/* Report and _exit(127). Only in a child. */
__attribute__((noreturn, format(printf, 4, 5))) void
berth_child_fail(int fd, int code, bool exec_failed, const char *fmt, ...);

/* Report a berth_error, whose message has its cause already, and
 * _exit(127). Only in a child. */
__attribute__((noreturn)) void berth_child_fail_error(int fd, const berth_error *e);

/* In the parent: 0 when the pipe closed without a message (the exec
 * succeeded), 1 with *ret filled, -1 when the child died mid-message. */
int berth_child_read(int fd, struct berth_child_msg *ret);

/* The child's message as an error: its text, then the errno's unless the
 * message has it already. Returns -1. */
BERTH_MUST_CHECK int berth_child_msg_error(const struct berth_child_msg *m, berth_error *err);

/* Keep only the descriptors *fds[0..n-1] (entries of -1 are skipped) and
 * 0, 1 and 2: they move to 3, 4, ... (the pointers are updated) and every
 * other descriptor is closed, not just marked close-on-exec, so that
 * nothing a path chosen by the image or the spec resolves ("/proc/self/fd/N")
 * can reach a descriptor of the host. */
int berth_child_keep_fds(int *const *fds, size_t n);

/* The working directory, opened inside the root of the calling process
 * (after pivot_root or setns: the container's) without magic links, and
 * created there when `create`. O_PATH fd, or -1 with errno. */
int berth_child_open_workdir(const char *path, bool create);

/* fchdir to `fd` (from berth_child_open_workdir) and make sure the result
 * is inside our root (runc's check since 1.1.12): getcwd must not say
 * "unreachable". `path` names it in the error. */
BERTH_MUST_CHECK int berth_child_chdir(int fd, const char *path, berth_error *err);

/* Reset every signal disposition to the default (the mask stays). */
void berth_child_default_signals(void);

/* Reset every signal disposition and the mask to the defaults. */
void berth_child_reset_signals(void);

/* Make stdio[0..2] the standard streams (-1: /dev/null), safe when the
 * sources are themselves 0, 1 or 2. */
BERTH_MUST_CHECK int berth_child_stdio(const int stdio[3], berth_error *err);

struct berth_seccomp_bpf;

struct berth_credentials {
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    size_t ngroups;
    uint64_t caps;   /* capability mask (caps.h) */
    uint64_t nofile; /* RLIMIT_NOFILE, 0: inherited */
    /* the container's seccomp filter (seccomp-profile.h), NULL: unconfined */
    const struct berth_seccomp_bpf *seccomp;
};

/* Become `c`: RLIMIT_NOFILE, the bounding set, groups/gid/uid with the
 * capabilities kept across, the capability sets, no_new_privs, and last
 * the seccomp filter: after it, only what the container may do is left
 * (the caller's fchdir, getcwd, close_range and execve are). */
BERTH_MUST_CHECK int berth_child_become(const struct berth_credentials *c, berth_error *err);

/* Close every descriptor above stderr at exec (the error pipe too) and
 * exec argv with env, the command looked up in env's PATH; on failure
 * report "executable 'X' not found in WHERE (PATH searched)" or why. */
__attribute__((noreturn)) void berth_child_exec(int errfd, char **argv, char **env,
                                                const char *where);

#endif
