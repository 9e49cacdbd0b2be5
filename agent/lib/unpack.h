/* libarchive extraction of image archives into a directory, refusing what
 * could escape it: "..", absolute paths, writes through symlinks, hard links
 * to outside; device nodes are skipped; sizes and entry counts are capped. */
#ifndef BERTH_UNPACK_H
#define BERTH_UNPACK_H

#include <stdint.h>

#include "error.h"

struct berth_unpack_limits {
    uint64_t max_bytes;   /* total size of regular files */
    uint64_t max_entries;
};

#define BERTH_UNPACK_MAX_BYTES   (64ULL << 30)
#define BERTH_UNPACK_MAX_ENTRIES 2000000ULL

struct berth_unpack_stats {
    uint64_t entries;
    uint64_t bytes;
    uint64_t skipped_devices;
};

/* Extract the tar archive at `archive` (plain, gzip, xz, zstd or bzip2)
 * into the existing directory `dest`, preserving owners, modes, times,
 * xattrs and hard links. `limits` may be NULL for the defaults. */
int berth_unpack_tar(const char *archive, const char *dest, const struct berth_unpack_limits *limits,
                     struct berth_unpack_stats *ret_stats, berth_error *err);

#endif
