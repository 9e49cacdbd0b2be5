#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "unpack.h"
#include "util.h"

int berth_store_prepare_rootfs(const char *rootfs, berth_error *err)
{
    static const struct {
        const char *path;
        bool dir;
    } targets[] = {{"proc", true},  {"sys", true},  {"dev", true},
                   {"etc/resolv.conf", false}, {"etc/hosts", false}};
    _cleanup_close_ int rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);

    if (rootfd < 0)
        return berth_error_set(err, errno, "opening '%s'", rootfs);
    for (size_t i = 0; i < ARRAY_SIZE(targets); i++) {
        int fd = berth_open_in_root(rootfd, targets[i].path, true, targets[i].dir);
        if (fd < 0)
            return berth_error_set(err, errno, "creating '/%s' in '%s'", targets[i].path,
                                   rootfs);
        close(fd);
    }
    return 0;
}

int berth_store_import_rootfs_tar(const char *root, const char *tarball, char **ret_rootfs,
                                  berth_error *err)
{
    char hex[65];
    _cleanup_free_ char *images = xasprintf("%s/images", root);
    _cleanup_free_ char *final = NULL;
    _cleanup_free_ char *tmp = NULL;
    _cleanup_free_ char *tmp_rootfs = NULL;
    struct stat st;

    if (berth_sha256_file(tarball, hex, err) < 0)
        return -1;
    final = xasprintf("%s/%s", images, hex);
    if (stat(final, &st) == 0) {
        *ret_rootfs = xasprintf("%s/rootfs", final);
        return 0;
    }
    if (berth_mkdir_p(images, 0700, err) < 0)
        return -1;
    tmp = xasprintf("%s/.tmp-%s.%d", images, hex, (int)getpid());
    tmp_rootfs = xasprintf("%s/rootfs", tmp);
    if (berth_rm_rf(tmp, err) < 0)
        return -1;
    if (mkdir(tmp, 0700) < 0 || mkdir(tmp_rootfs, 0755) < 0)
        return berth_error_set(err, errno, "creating '%s'", tmp_rootfs);
    if (berth_unpack_tar(tarball, tmp_rootfs, NULL, NULL, err) < 0 ||
        berth_store_prepare_rootfs(tmp_rootfs, err) < 0)
        goto fail;
    if (rename(tmp, final) < 0) {
        /* another berth unpacked the same digest first: use theirs */
        if (errno != EEXIST && errno != ENOTEMPTY) {
            berth_error_set(err, errno, "renaming '%s' to '%s'", tmp, final);
            goto fail;
        }
        berth_rm_rf(tmp, err);
    }
    *ret_rootfs = xasprintf("%s/rootfs", final);
    return 0;
fail:
    {
        berth_error ign = BERTH_ERROR_INIT;
        berth_rm_rf(tmp, &ign);
    }
    return berth_error_wrap(err, "importing '%s'", tarball);
}
