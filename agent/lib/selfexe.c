#include "selfexe.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "util.h"

bool berth_selfexe_is_readonly(void)
{
    struct statvfs sv;

    return statvfs("/proc/self/exe", &sv) == 0 && (sv.f_flag & ST_RDONLY);
}

int berth_selfexe_readonly(char *const argv[], berth_error *err)
{
    struct mount_attr a = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
    extern char **environ;

    if (berth_selfexe_is_readonly())
        return 0;
    _cleanup_close_ int fd =
        open_tree(AT_FDCWD, "/proc/self/exe", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (fd < 0)
        return berth_error_set(err, errno,
                               "making a read-only mount of berth's own binary (open_tree)");
    if (mount_setattr(fd, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0)
        return berth_error_set(err, errno,
                               "making a read-only mount of berth's own binary (mount_setattr)");
    execveat(fd, "", argv, environ, AT_EMPTY_PATH);
    return berth_error_set(err, errno, "re-executing berth from a read-only mount of itself");
}
