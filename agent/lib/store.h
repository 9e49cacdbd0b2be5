/* The content store under the state root:
 *   images/<sha256>/rootfs/   an unpacked image, shared read-only
 * Entries appear by rename only when complete, so a crash never leaves a
 * half-unpacked image under its final name. */
#ifndef BERTH_STORE_H
#define BERTH_STORE_H

#include "error.h"

/* Import a rootfs tarball: unpack it once into images/<sha256 of the
 * file>/rootfs (reused when already there) and return that rootfs path. */
int berth_store_import_rootfs_tar(const char *root, const char *tarball, char **ret_rootfs,
                                  berth_error *err);

/* Make sure an image rootfs has the directories and files the runtime
 * mounts over (/proc, /sys, /dev, /etc/resolv.conf, /etc/hosts), so that it
 * also runs with a read-only root. */
int berth_store_prepare_rootfs(const char *rootfs, berth_error *err);

#endif
