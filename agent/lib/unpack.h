/* libarchive extraction of image archives into a directory, refusing what
 * could escape it: "..", absolute paths, writes through symlinks, hard links
 * to outside; device nodes are skipped; sizes and entry counts are capped.
 * Owners are kept as the archive's numeric ids (an image's user names mean
 * nothing on the host), modes, times, xattrs and hard links preserved.
 *
 * Every extraction (and detection) runs in a child process confined to
 * the destination (confine.h: chroot, no_new_privs, a seccomp allow-list,
 * only the capabilities extraction needs), with libarchive's tar formats
 * and its built-in gzip, xz, zstd, bzip2 and lz4 decompressors only: the
 * bytes may come from a hostile image server and not be verified yet.
 * Writes stop before the reserve of free space on the destination's
 * filesystem (space.h). */
#ifndef BERTH_UNPACK_H
#define BERTH_UNPACK_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "space.h"

struct berth_unpack_limits {
    uint64_t max_bytes; /* total size of regular files */
    uint64_t max_entries;
    struct berth_space_reserve min_free; /* keep this free where the tree is */
};

#define BERTH_UNPACK_MAX_BYTES   (64ULL << 30)
#define BERTH_UNPACK_MAX_ENTRIES 2000000ULL

/* What an extraction saw: counts, and whether the archive looks like an
 * image layout (only oci-layout, index.json, manifest.json, blobs/...,
 * <hex>/... entries) rather than a root filesystem. */
struct berth_unpack_stats {
    uint64_t entries;
    uint64_t bytes;
    uint64_t skipped_devices;
    uint64_t whiteouts;
    bool layout_like;
    bool has_oci_layout; /* "oci-layout" and "index.json" */
    bool has_index;
    bool has_manifest; /* docker's "manifest.json" */
};

/* Extract the tar archive at `archive` (plain, gzip, xz, zstd, bzip2 or
 * lz4) into the existing directory `dest`. `limits` may be NULL for the
 * defaults (including the default free-space reserve). */
BERTH_MUST_CHECK int berth_unpack_tar(const char *archive, const char *dest,
                                      const struct berth_unpack_limits *limits,
                                      struct berth_unpack_stats *ret_stats, berth_error *err);

/* The same from a stream (a pipe), read to its end. */
BERTH_MUST_CHECK int berth_unpack_tar_fd(int fd, const char *dest,
                                         const struct berth_unpack_limits *limits,
                                         struct berth_unpack_stats *ret_stats, berth_error *err);

/* Apply one OCI/docker layer on top of `dest`: whiteouts (".wh.NAME")
 * remove NAME from the layers below, opaque markers (".wh..wh..opq") empty
 * their directory first, a non-directory replaces a directory. `stats`
 * accumulates over the layers of one image, and the limits apply to the
 * sum. */
BERTH_MUST_CHECK int berth_unpack_layer(const char *layer, const char *dest,
                                        const struct berth_unpack_limits *limits,
                                        struct berth_unpack_stats *stats, berth_error *err);

#include "format.h"

/* "auto", "rootfs", "oci", "docker" ↔ the enum; -1 when unknown. */
int berth_image_format_from_name(const char *name);
const char *berth_image_format_name(enum berth_image_format f);

/* The format `stats` of an extraction points at. */
enum berth_image_format berth_unpack_format_of(const struct berth_unpack_stats *stats);

/* Read only the headers of `archive` to tell rootfs from oci/docker. */
BERTH_MUST_CHECK int berth_unpack_detect(const char *archive, enum berth_image_format *ret,
                                         berth_error *err);

#endif
