/* The kernel berth needs, checked before the first container starts.
 *
 * Linux 5.12 is the floor: it brought mount_setattr(2), with which berth
 * makes mounts read-only, nosuid, nodev and noexec as a tree; the rest of
 * what berth relies on is older (the mount API of 5.2, clone3 with pidfds
 * of 5.3, waitid(P_PIDFD) of 5.4, openat2 of 5.6, setns with a pidfd of
 * 5.8, close_range of 5.9/5.11). Debian 12's 6.1, bookworm's and Debian
 * 13's 6.12 and RHEL 9's 5.14 (which carries these) all qualify.
 */
#ifndef BERTH_KERNEL_H
#define BERTH_KERNEL_H

#include "error.h"

#define BERTH_KERNEL_FLOOR "5.12"

/* 0 when every system call berth uses exists; otherwise -1 with one error
 * that names the first one missing and the running kernel: "berth needs
 * Linux >= 5.12 for mount_setattr (...); this is 5.10.0-28-amd64". Probes
 * once per process, a few microseconds. */
BERTH_MUST_CHECK int berth_kernel_check(berth_error *err);

#endif
