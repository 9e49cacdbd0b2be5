#include "kernel.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "util.h"

/* Each probe passes arguments the kernel refuses at once (a bad fd, a
 * NULL struct): ENOSYS means the call is missing, anything else that it
 * exists. */
static const struct {
    long nr;
    const char *name;
    const char *since;
    const char *use;
} probes[] = {
    {SYS_clone3, "clone3", "5.3", "starting containers with a pidfd"},
    {SYS_pidfd_open, "pidfd_open", "5.3", "following containers and commands by pidfd"},
    {SYS_pidfd_send_signal, "pidfd_send_signal", "5.1", "signalling containers"},
    {SYS_fsopen, "fsopen", "5.2", "the mount API"},
    {SYS_fsmount, "fsmount", "5.2", "the mount API"},
    {SYS_move_mount, "move_mount", "5.2", "the mount API"},
    {SYS_open_tree, "open_tree", "5.2", "bind mounts"},
    {SYS_openat2, "openat2", "5.6", "resolving paths inside an image (RESOLVE_IN_ROOT)"},
    {SYS_close_range, "close_range", "5.9", "closing inherited descriptors"},
    {SYS_mount_setattr, "mount_setattr", "5.12", "read-only, nosuid and nodev mounts"},
};

static int probe(long nr)
{
    long r;

    switch (nr) {
    case SYS_clone3:
        r = syscall(nr, NULL, 0);
        break;
    case SYS_close_range:
        r = syscall(nr, 2U, 1U, 0); /* first > last: EINVAL */
        break;
    default:
        r = syscall(nr, -1, NULL, 0, NULL, 0);
        break;
    }
    return r < 0 && errno == ENOSYS ? -1 : 0;
}

int berth_kernel_check(berth_error *err)
{
    static int checked = -1; /* index of the missing call, or ARRAY_SIZE when all are there */
    struct utsname u;

    if (checked < 0) {
        checked = (int)ARRAY_SIZE(probes);
        for (size_t i = 0; i < ARRAY_SIZE(probes); i++)
            if (probe(probes[i].nr) < 0) {
                checked = (int)i;
                break;
            }
    }
    if (checked == (int)ARRAY_SIZE(probes))
        return 0;
    if (uname(&u) < 0)
        snprintf(u.release, sizeof(u.release), "unknown");
    berth_error_set(err, 0,
                    "berth needs Linux >= " BERTH_KERNEL_FLOOR " for %s (%s, Linux %s); this is %s",
                    probes[checked].name, probes[checked].use, probes[checked].since, u.release);
    err->code = ENOSYS;
    return -1;
}
