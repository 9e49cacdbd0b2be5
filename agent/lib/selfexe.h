/* berth's own binary, out of a container's reach (the CVE-2019-5736 class).
 *
 * What berth starts in a container is a fork of berth until it executes
 * the service's program (the container's init for ever), so its
 * /proc/PID/exe is berth's binary. A container process that may open that
 * link (with CAP_SYS_PTRACE: the processes are non-dumpable) must not be
 * able to write through it, whatever the kernel's rules for writing to a
 * running executable (ETXTBSY) are. So the verbs that enter containers
 * (exec, keeper; run when the container gets CAP_SYS_PTRACE, without which
 * the links stay closed to it) first re-execute the binary through a detached
 * read-only bind mount of itself: open_tree(OPEN_TREE_CLONE) of
 * /proc/self/exe, mount_setattr(MOUNT_ATTR_RDONLY), execveat. The mount is
 * in no namespace (nothing to clean up; it lives while a process runs from
 * it) and an open for writing through it fails with EROFS. The cost is one
 * exec; /proc/PID/exe of such a process reads "/".
 */
#ifndef BERTH_SELFEXE_H
#define BERTH_SELFEXE_H

#include <stdbool.h>

#include "error.h"

/* true when the running binary sits on a read-only mount (the re-executed
 * process, or a binary installed on a read-only filesystem) */
bool berth_selfexe_is_readonly(void);

/* Re-execute the running binary with argv (and the current environment)
 * through a detached read-only mount of itself, unless it already runs
 * from a read-only mount (then returns 0). Returns -1 with err set only
 * when that cannot be done: nothing has changed then. */
BERTH_MUST_CHECK int berth_selfexe_readonly(char *const argv[], berth_error *err);

#endif
