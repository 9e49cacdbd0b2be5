/* Running a command inside a running container, as `docker exec` and
 * `nsenter` do: the command joins the container's cgroup(s) and its mount,
 * uts, ipc, pid, network and cgroup namespaces (those of the container's init),
 * then takes the given user, capabilities and rlimit and execs.
 *
 * Used by `berth exec` and by the keeper for `healthcheck.command`.
 *
 * Process shape: the caller forks a helper that joins the cgroups and the
 * namespaces (setns with a pidfd of the init); the helper clones the
 * command with CLONE_PARENT, so the command is the caller's own child
 * (wait for it with waitid(P_PIDFD) or berth_exec_wait()) while being a
 * member of the container's pid namespace; the helper exits at once and is
 * reaped inside berth_exec_spawn(). Orphans the command leaves behind are
 * reparented to the container's init, which reaps them.
 */
#ifndef BERTH_EXEC_H
#define BERTH_EXEC_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "run-config.h"
#include "seccomp-profile.h"

struct berth_user;

struct berth_exec_config {
    pid_t init_pid;          /* the container's init, as status.json's "pid" */
    int init_pidfd;          /* a pidfd of it, or -1: opened from init_pid */
    const char *cgroup_root; /* NULL: /sys/fs/cgroup; the command joins the
                              * cgroups the init is in, below this */
    /* The service's run configuration (run-config.h): its name (for
     * messages), capabilities, seccomp profile (its filter is built for
     * those capabilities before the fork) and open file limit, and its
     * environment and working directory unless given below. */
    const struct berth_run_config *run;
    const struct berth_user *user; /* as whom: the service's user, or another */
    char **argv;                   /* NULL-terminated; argv[0] is looked up in env's PATH */
    char **env;                    /* NULL-terminated KEY=VALUE list, complete; NULL: run->env */
    const char *workdir;           /* inside the container; NULL: run->workdir, else "/" */
    const char *seccomp_cache;     /* berth_seccomp_build()'s cache_dir, NULL: none */
    /* With redirect_stdio, the command gets these as fds 0, 1 and 2
     * (a -1 entry means /dev/null); otherwise it inherits the caller's. */
    bool redirect_stdio;
    int stdio[3];
    /* Make fd 0 (a terminal, see berth_exec_open_pty()) the controlling
     * terminal of the command's session. The command always has a session
     * (and so a process group) of its own. */
    bool tty;
};

/* Start cfg->argv inside the running container. Returns 0 once the exec
 * succeeded, with the command's pid (in the caller's pid namespace) and a
 * pidfd of it; the command is a child of the caller, whose exit status is
 * the command's own. On failure nothing is left running and `err` says
 * which step failed; err->code is ESRCH, and the message "the container
 * of 'web' is not running", when the init is gone; *ret_exec_failed (when
 * not NULL) tells whether the command itself could not be executed:
 * argv[0] not found in the container (err->code ENOENT) or not executable
 * (EACCES, ENOEXEC...). The caller's signal mask and ignored signals are
 * reset to the defaults in the command. The command is the caller's child: a caller that reaps with
 * waitpid(-1) or ignores SIGCHLD would lose its status. */
BERTH_MUST_CHECK int berth_exec_spawn(const struct berth_exec_config *cfg, pid_t *ret_pid,
                                      int *ret_pidfd, bool *ret_exec_failed, berth_error *err);

/* A pseudo-terminal from the container's own devpts instance (its
 * /dev/pts, reached through /proc/<init_pid>/root), so that the command
 * finds its terminal under /dev/pts inside: the master for the caller and
 * the slave to pass as stdio with `tty` set. Both close-on-exec. */
BERTH_MUST_CHECK int berth_exec_open_pty(pid_t init_pid, int *ret_master, int *ret_slave,
                                         berth_error *err);

/* Wait for the command of `pidfd` (a child of the caller) for at most
 * `timeout_ms` (< 0: forever). Returns 0 when it exited, with its code in
 * *ret_code (128+N for death by signal N); 1 when the timeout expired: the
 * command (and its process group) was then killed with
 * SIGKILL and reaped, *ret_code is then normally 137;
 * -1 on error. Does not close `pidfd`.
 * An event loop (the keeper) does not block here: it polls the pidfd with
 * its own timer and calls this with timeout_ms 0 once the pidfd is
 * readable (the exit) or the timer fired (kill now). */
BERTH_MUST_CHECK int berth_exec_wait(int pidfd, int timeout_ms, int *ret_code, berth_error *err);

/* The same with the command's end as waitid(2) gave it: si_code CLD_EXITED
 * and si_status its exit code, or CLD_KILLED/CLD_DUMPED and the signal. */
BERTH_MUST_CHECK int berth_exec_wait_siginfo(int pidfd, int timeout_ms, siginfo_t *ret_si,
                                             berth_error *err);

#endif
