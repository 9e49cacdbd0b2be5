/* Confinement of a child process that parses bytes from an image server
 * (the unpacker): crun's and containerd's unpackers are the models.
 *
 * berth_confine_unpacker() turns the calling process, which must do
 * nothing else afterwards, into one that can only write below `rootfd`:
 *   - chroot into `rootfd` (cwd "/"); no fd outside it may be open;
 *   - no_new_privs;
 *   - capabilities: CHOWN, DAC_OVERRIDE, FOWNER, FSETID and SETFCAP in the
 *     effective and permitted sets (owners, modes, setuid bits, times and
 *     file capabilities of the extracted files), nothing inheritable or
 *     ambient, the bounding set cut to the same; no MKNOD (device nodes
 *     are left out, berth makes /dev), no SYS_ADMIN, SYS_CHROOT, PTRACE;
 *   - a seccomp allow-list of the file and memory calls extraction needs
 *     (mknod only for FIFOs, signals only to itself); everything else
 *     fails with EPERM: no exec, clone, unshare, mount, ptrace, kill,
 *     sockets, ioctl, chroot.
 * When not run as root (unit tests), there is nothing to drop and chroot
 * is not allowed: only no_new_privs and the filter apply.
 * The process is also named "berth-unpack" (/proc/PID/comm).
 * Returns 0, or -1 with err (the process must then exit).
 */
#ifndef BERTH_CONFINE_H
#define BERTH_CONFINE_H

#include "error.h"

#define BERTH_UNPACKER_COMM "berth-unpack"

BERTH_MUST_CHECK int berth_confine_unpacker(int rootfd, berth_error *err);

#endif
