#include "unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

static void archive_readp(struct archive **a)
{
    if (*a)
        archive_read_free(*a);
}
static void archive_writep(struct archive **a)
{
    if (*a)
        archive_write_free(*a);
}

static const int extract_flags =
    ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
    ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM |
    ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_ACL |
    ARCHIVE_EXTRACT_UNLINK;

static int copy_data(struct archive *in, struct archive *out, uint64_t *bytes, uint64_t max,
                     const char *name, berth_error *err)
{
    const void *buf;
    size_t size;
    la_int64_t offset;

    for (;;) {
        int r = archive_read_data_block(in, &buf, &size, &offset);
        if (r == ARCHIVE_EOF)
            return 0;
        if (r < ARCHIVE_WARN)
            return berth_error_set(err, 0, "reading '%s': %s", name, archive_error_string(in));
        *bytes += size;
        if (*bytes > max)
            return berth_error_set(err, EFBIG, "'%s': the archive unpacks to more than %llu "
                                               "bytes", name, (unsigned long long)max);
        if (archive_write_data_block(out, buf, size, offset) < ARCHIVE_WARN)
            return berth_error_set(err, 0, "writing '%s': %s", name, archive_error_string(out));
    }
}

static int extract(struct archive *in, struct archive *out, const struct berth_unpack_limits *lim,
                   struct berth_unpack_stats *st, berth_error *err)
{
    struct archive_entry *entry;

    for (;;) {
        int r = archive_read_next_header(in, &entry);
        if (r == ARCHIVE_EOF)
            return 0;
        if (r < ARCHIVE_WARN)
            return berth_error_set(err, 0, "reading the archive: %s", archive_error_string(in));
        const char *name = archive_entry_pathname(entry);
        if (++st->entries > lim->max_entries)
            return berth_error_set(err, EFBIG, "the archive has more than %llu entries",
                                   (unsigned long long)lim->max_entries);
        mode_t type = archive_entry_filetype(entry);
        if (type == AE_IFCHR || type == AE_IFBLK) {
            st->skipped_devices++; /* /dev is berth's to make */
            continue;
        }
        r = archive_write_header(out, entry);
        if (r < ARCHIVE_WARN)
            return berth_error_set(err, 0, "refusing '%s': %s", name ? name : "?",
                                   archive_error_string(out));
        if (archive_entry_size(entry) > 0 &&
            copy_data(in, out, &st->bytes, lim->max_bytes, name, err) < 0)
            return -1;
        if (archive_write_finish_entry(out) < ARCHIVE_WARN)
            return berth_error_set(err, 0, "finishing '%s': %s", name,
                                   archive_error_string(out));
    }
}

int berth_unpack_tar(const char *archive, const char *dest, const struct berth_unpack_limits *limits,
                     struct berth_unpack_stats *ret_stats, berth_error *err)
{
    static const struct berth_unpack_limits defaults = {BERTH_UNPACK_MAX_BYTES,
                                                        BERTH_UNPACK_MAX_ENTRIES};
    _cleanup_(archive_readp) struct archive *in = archive_read_new();
    _cleanup_(archive_writep) struct archive *out = archive_write_disk_new();
    _cleanup_close_ int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct berth_unpack_stats st = {0};
    int r;

    if (!in || !out)
        return berth_error_set(err, ENOMEM, "allocating libarchive handles");
    if (cwd < 0)
        return berth_error_set(err, errno, "opening the current directory");
    archive_read_support_filter_all(in);
    archive_read_support_format_tar(in);
    archive_read_support_format_gnutar(in);
    archive_write_disk_set_options(out, extract_flags);
    archive_write_disk_set_standard_lookup(out);
    if (archive_read_open_filename(in, archive, 1 << 16) != ARCHIVE_OK)
        return berth_error_set(err, 0, "opening archive '%s': %s", archive,
                               archive_error_string(in));
    /* libarchive extracts relative to the working directory; the secure
     * flags keep every entry below it */
    if (chdir(dest) < 0)
        return berth_error_set(err, errno, "entering '%s'", dest);
    r = extract(in, out, limits ? limits : &defaults, &st, err);
    if (r == 0 && archive_write_close(out) < ARCHIVE_WARN)
        r = berth_error_set(err, 0, "finishing extraction: %s", archive_error_string(out));
    if (fchdir(cwd) < 0 && r == 0)
        r = berth_error_set(err, errno, "returning to the working directory");
    if (r < 0)
        return berth_error_wrap(err, "unpacking '%s'", archive);
    if (ret_stats)
        *ret_stats = st;
    return 0;
}
