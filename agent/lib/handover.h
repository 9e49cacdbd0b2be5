/* Keepers are replaceable: a keeper's death (SIGKILL, the OOM killer)
 * costs its service nothing, and the next keeper of the service adopts the
 * container that is still running.
 *
 * What has to outlive a keeper lives in the container's init (pid 1), the
 * one process that lives exactly as long as the container:
 *   - the read end of the service's output pipe, never read by the init:
 *     while no keeper reads it, the output waits in the pipe (1 MiB), and
 *     the successor takes the same pipe over; nothing is lost;
 *   - a SOCK_SEQPACKET pair: the init reports the service's exit on its
 *     end and waits for an acknowledgement; it keeps a spare of the
 *     keeper's end too, so that the report waits in that end's queue until
 *     a keeper (the same one or a successor) reads it. The parent keeper
 *     could wait for the init; a successor is no parent and cannot.
 * Both are at fixed descriptor numbers in the init, and a successor takes
 * them with pidfd_getfd(2) (root on the host may: the keeper's ptrace
 * access to its container's init). Nothing else passes between keepers:
 * no socket to connect to, no helper process that could die in turn.
 *
 * The record's init.json (record.h) says where the container is: the init's
 * pid and start time (against pid reuse) and the service's cgroup (a
 * systemd scope or berth's subtree), written by the keeper between the
 * clone and the container's set-up, removed when the container is gone.
 * Until the set-up is done the init still dies with its keeper
 * (PR_SET_PDEATHSIG), so a record never names a half-made container
 * that lives on.
 */
#ifndef BERTH_HANDOVER_H
#define BERTH_HANDOVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* The init's descriptors (container.c moves them there). */
#define BERTH_INIT_FD_LOG    3 /* the output pipe's read end (a spare) */
#define BERTH_INIT_FD_KEEPER 4 /* the keeper's end of the report socket (a spare) */
#define BERTH_INIT_FD_INIT   5 /* the init's end */

/* The init's report: "exit <code>" (code as berth_exit's: 128+N for
 * signal N); the keeper answers with one byte, BERTH_HANDOVER_ACK. */
#define BERTH_HANDOVER_ACK 'a'

/* The size the output pipe is given (a keeper-less service blocks in
 * write(2) only once this much waits). */
#define BERTH_HANDOVER_PIPE_SIZE (1 << 20)

struct berth_handover_record {
    pid_t init_pid;
    uint64_t init_start; /* /proc/PID/stat starttime, clock ticks since boot */
    char *cgroup;        /* the service's cgroup, relative to the hierarchy root */
    unsigned cgroup_levels;
    int64_t started_at; /* unix seconds: when the container started */
};

/* The record at `path` (the service record's init.json, record.h),
 * written atomically. */
BERTH_MUST_CHECK int berth_handover_record_write(const char *path,
                                                 const struct berth_handover_record *r,
                                                 berth_error *err);
/* 0 and *ret filled; -1 with ENOENT when there is none. */
BERTH_MUST_CHECK int berth_handover_record_read(const char *path, struct berth_handover_record *ret,
                                                berth_error *err);
/* The same for `path` relative to the directory fd `dfd` (or AT_FDCWD). */
BERTH_MUST_CHECK int berth_handover_record_read_at(int dfd, const char *path,
                                                   struct berth_handover_record *ret,
                                                   berth_error *err);
void berth_handover_record_remove(const char *path);
void berth_handover_record_release(struct berth_handover_record *r);

/* The starttime field of /proc/PID/stat; 0 when the process is gone. */
uint64_t berth_handover_start_time(pid_t pid);

/* A pidfd on the init that the record names, if it still runs (the same
 * process: its start time matches); -1 with ESRCH when it does not. */
BERTH_MUST_CHECK int berth_handover_open_init(const struct berth_handover_record *r,
                                              berth_error *err);

/* Whether the record at `path` (relative to the directory fd `dfd`, or
 * AT_FDCWD) names a container that runs (its keeper is gone when the
 * caller knows no keeper holds the lock). */
bool berth_handover_orphan(int dfd, const char *path);

/* Take the init's output pipe and report socket over (pidfd_getfd). */
BERTH_MUST_CHECK int berth_handover_take(int init_pidfd, int *ret_logr, int *ret_statusfd,
                                         berth_error *err);

/* Read the init's report from `statusfd` once it is readable: 1 and the
 * code in *ret_code (acknowledged: the init then exits), 0 when nothing
 * is there yet (what does not parse is skipped), -1 once the init's end
 * is closed. */
int berth_handover_read_report(int statusfd, int *ret_code);

#endif
