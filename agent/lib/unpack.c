#include "unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "confine.h"
#include "util.h"

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"

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

/* No ARCHIVE_EXTRACT_UNLINK: with it, libarchive "fixes" a symlink in the
 * middle of a path by replacing it with a directory, silently; without it,
 * a write through a symlink is refused, and an existing file is still
 * replaced (unlinked on EEXIST). */
static const int extract_flags = ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                 ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_OWNER |
                                 ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
                                 ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_ACL;

static const struct berth_unpack_limits default_limits = {
    BERTH_UNPACK_MAX_BYTES,
    BERTH_UNPACK_MAX_ENTRIES,
    {BERTH_MIN_FREE_DEFAULT, BERTH_MIN_FREE_PERCENT},
};

int berth_image_format_from_name(const char *name)
{
    static const char *const names[] = {"auto", "rootfs", "oci", "docker"};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (name && !strcmp(name, names[i]))
            return (int)i;
    return -1;
}

const char *berth_image_format_name(enum berth_image_format f)
{
    switch (f) {
    case BERTH_FORMAT_ROOTFS:
        return "rootfs";
    case BERTH_FORMAT_OCI:
        return "oci";
    case BERTH_FORMAT_DOCKER:
        return "docker";
    default:
        return "auto";
    }
}

static bool is_hex64(const char *s, size_t n)
{
    if (n != 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* Does `name` belong in an OCI layout or a docker-save archive? */
static void scan_name(const char *name, struct berth_unpack_stats *st)
{
    while (!strncmp(name, "./", 2))
        name += 2;
    if (!*name || !strcmp(name, "."))
        return;
    size_t first = strcspn(name, "/");
    bool nested = name[first] == '/' && name[first + 1];
    if (!nested) {
        if (!strncmp(name, "oci-layout", first) && first == 10)
            st->has_oci_layout = true;
        else if (first == 10 && !strncmp(name, "index.json", 10))
            st->has_index = true;
        else if (first == 13 && !strncmp(name, "manifest.json", 13))
            st->has_manifest = true;
        else if ((first == 12 && !strncmp(name, "repositories", 12)) ||
                 (first == 5 && !strncmp(name, "blobs", 5)) || is_hex64(name, first) ||
                 (first == 69 && is_hex64(name, 64) && !strncmp(name + 64, ".json", 5)))
            ;
        else
            st->layout_like = false;
        return;
    }
    if (!(first == 5 && !strncmp(name, "blobs", 5)) && !is_hex64(name, first))
        st->layout_like = false;
}

enum berth_image_format berth_unpack_format_of(const struct berth_unpack_stats *st)
{
    if (st->layout_like && st->has_oci_layout && st->has_index)
        return BERTH_FORMAT_OCI;
    if (st->layout_like && st->has_manifest)
        return BERTH_FORMAT_DOCKER;
    return BERTH_FORMAT_ROOTFS;
}

static int copy_data(struct archive *in, struct archive *out, uint64_t *bytes,
                     const struct berth_unpack_limits *lim, int rootfd, const char *name,
                     berth_error *err)
{
    uint64_t max = lim->max_bytes;
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
            return berth_error_set(err, EFBIG,
                                   "refusing '%s': the archive unpacks to more than %llu bytes",
                                   name, (unsigned long long)max);
        if (berth_space_check(rootfd, &lim->min_free, size, name, err) < 0)
            return -1;
        if (archive_write_data_block(out, buf, size, offset) < ARCHIVE_WARN)
            return berth_error_set(err, 0, "writing '%s': %s", name, archive_error_string(out));
    }
}

/* rm -rf of `name` in the directory `dirfd`, never following symlinks. */
static int rm_rf_at(int dirfd, const char *name)
{
    struct stat st;

    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -1 : 0;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -1;
    }
    struct dirent *de;
    int r = 0;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && rm_rf_at(fd, de->d_name) < 0)
            r = -1;
    closedir(d);
    if (r == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) < 0)
        r = -1;
    return r;
}

/* Empty the directory `fd` (an opaque marker). */
static int empty_dir(int fd)
{
    int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return -1;
    }
    struct dirent *de;
    int r = 0;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && rm_rf_at(dfd, de->d_name) < 0)
            r = -1;
    closedir(d);
    return r;
}

/* Split "a/b/.wh.c" into its directory "a/b" and last component. */
static void split(const char *path, char **ret_dir, const char **ret_base)
{
    const char *slash = strrchr(path, '/');
    *ret_dir = slash ? strndup(path, (size_t)(slash - path)) : xstrdup(".");
    *ret_base = slash ? slash + 1 : path;
}

/* Apply one whiteout entry inside the tree `rootfd`. */
static int whiteout(int rootfd, const char *path, berth_error *err)
{
    _cleanup_free_ char *dir = NULL;
    const char *base;
    _cleanup_close_ int dfd = -1;

    split(path, &dir, &base);
    if (!dir)
        return berth_error_set(err, ENOMEM, "whiteout '%s'", path);
    dfd = berth_open_in_root(rootfd, dir, false, false, err);
    if (dfd < 0 && err->code == ENOENT) {
        berth_error_clear(err); /* nothing to white out */
        return 0;
    }
    if (dfd < 0)
        return berth_error_set(err, err->code, "whiteout '%s'", path);
    struct stat st;
    if (fstat(dfd, &st) < 0 || !S_ISDIR(st.st_mode))
        return 0;
    int r;
    if (!strcmp(base, WH_OPAQUE)) {
        _cleanup_close_ int real = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        r = real < 0 ? -1 : empty_dir(real);
    } else {
        const char *victim = base + strlen(WH_PREFIX);
        if (!*victim || !strcmp(victim, ".") || !strcmp(victim, ".."))
            return berth_error_set(err, EINVAL, "refusing whiteout '%s'", path);
        _cleanup_close_ int real = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        r = real < 0 ? -1 : rm_rf_at(real, victim);
    }
    if (r < 0)
        return berth_error_set(err, errno, "applying whiteout '%s'", path);
    return 0;
}

static bool is_whiteout(const char *name)
{
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    return !strncmp(base, WH_PREFIX, strlen(WH_PREFIX));
}

enum mode { MODE_PLAIN, MODE_WHITEOUTS, MODE_LAYER, MODE_DETECT };

struct ctx {
    enum mode mode;
    const struct berth_unpack_limits *lim;
    struct berth_unpack_stats *st;
    int rootfd;
};

/* In a layer, a file may replace a directory of a lower layer, which
 * libarchive's unlink cannot remove when it is not empty. */
static void replace_dir(struct ctx *c, struct archive_entry *entry, const char *name)
{
    struct stat st;

    if (archive_entry_filetype(entry) == AE_IFDIR)
        return;
    _cleanup_free_ char *dir = NULL;
    const char *base;
    split(name, &dir, &base);
    if (!dir || !*base)
        return;
    berth_error err = BERTH_ERROR_INIT;
    _cleanup_close_ int dfd = berth_open_in_root(c->rootfd, dir, false, false, &err);
    if (dfd < 0)
        return;
    _cleanup_close_ int real = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (real >= 0 && fstatat(real, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
        rm_rf_at(real, base);
}

static int entry_one(struct ctx *c, struct archive *in, struct archive *out,
                     struct archive_entry *entry, berth_error *err)
{
    const char *name = archive_entry_pathname(entry);

    if (!name)
        return berth_error_set(err, EINVAL, "refusing an entry without a name");
    if (c->mode == MODE_DETECT) {
        scan_name(name, c->st);
        return c->st->layout_like ? 0 : 1; /* 1: seen enough */
    }
    if (c->mode == MODE_WHITEOUTS) {
        if (!is_whiteout(name))
            return 0;
        c->st->whiteouts++;
        return whiteout(c->rootfd, name, err);
    }
    if (c->mode == MODE_LAYER && is_whiteout(name))
        return 0;
    if (c->mode == MODE_PLAIN)
        scan_name(name, c->st);
    if (++c->st->entries > c->lim->max_entries)
        return berth_error_set(err, EFBIG, "refusing '%s': the archive has more than %llu entries",
                               name, (unsigned long long)c->lim->max_entries);
    mode_t type = archive_entry_filetype(entry);
    if (type == AE_IFCHR || type == AE_IFBLK) {
        c->st->skipped_devices++; /* /dev is berth's to make */
        return 0;
    }
    if (archive_entry_size(entry) > 0 &&
        c->st->bytes + (uint64_t)archive_entry_size(entry) > c->lim->max_bytes)
        return berth_error_set(err, EFBIG,
                               "refusing '%s': the archive unpacks to more than %llu bytes", name,
                               (unsigned long long)c->lim->max_bytes);
    if (c->mode == MODE_LAYER)
        replace_dir(c, entry, name);
    int r = archive_write_header(out, entry);
    if (r < ARCHIVE_WARN)
        return berth_error_set(err, 0, "refusing '%s': %s", name, archive_error_string(out));
    if (archive_entry_size(entry) > 0 &&
        copy_data(in, out, &c->st->bytes, c->lim, c->rootfd, name, err) < 0)
        return -1;
    if (archive_write_finish_entry(out) < ARCHIVE_WARN)
        return berth_error_set(err, 0, "finishing '%s': %s", name, archive_error_string(out));
    return 0;
}

static int extract(struct ctx *c, struct archive *in, struct archive *out, berth_error *err)
{
    struct archive_entry *entry;

    for (;;) {
        int r = archive_read_next_header(in, &entry);
        if (r == ARCHIVE_EOF)
            return 0;
        if (r < ARCHIVE_WARN)
            return berth_error_set(err, 0, "reading the archive: %s", archive_error_string(in));
        r = entry_one(c, in, out, entry, err);
        if (r < 0)
            return -1;
        if (r > 0)
            return 0;
    }
}

/* The built-in decompressors only: archive_read_support_filter_all()
 * would fall back to external programs (lrzip, lzop, grzip...) run from
 * the unpacker. Each of these answers ARCHIVE_WARN when libarchive was
 * built without the library and would run a program instead. */
static int support_filters(struct archive *a, berth_error *err)
{
    static const struct {
        const char *name;
        int (*fn)(struct archive *);
    } filters[] = {{"gzip", archive_read_support_filter_gzip},
                   {"xz", archive_read_support_filter_xz},
                   {"zstd", archive_read_support_filter_zstd},
                   {"bzip2", archive_read_support_filter_bzip2},
                   {"lz4", archive_read_support_filter_lz4}};

    for (size_t i = 0; i < ARRAY_SIZE(filters); i++)
        if (filters[i].fn(a) != ARCHIVE_OK)
            return berth_error_set(err, ENOTSUP,
                                   "libarchive has no built-in %s decompressor (it would run "
                                   "an external program)",
                                   filters[i].name);
    return 0;
}

/* The decompressed tar stream, with zeros appended up to a block boundary
 * plus the two end blocks: layers written by Go's archive/tar without
 * closing the writer (umoci's insert, among others) end right after the
 * last file's data, which GNU tar and containerd accept but libarchive
 * calls truncated. Every byte read was verified by its digest first (or,
 * while streaming, is used only once the whole artifact verifies). */
struct padded {
    struct archive *raw;
    uint64_t total;
    bool eof;
    char zeros[512 * 3];
};

static la_ssize_t padded_read(struct archive *a, void *ud, const void **buf)
{
    struct padded *p = ud;
    size_t size;
    la_int64_t off;

    if (p->eof)
        return 0;
    int r = archive_read_data_block(p->raw, buf, &size, &off);
    if (r == ARCHIVE_OK) {
        p->total += size;
        return (la_ssize_t)size;
    }
    if (r != ARCHIVE_EOF) {
        archive_set_error(a, archive_errno(p->raw), "%s", archive_error_string(p->raw));
        return -1;
    }
    p->eof = true;
    *buf = p->zeros;
    return (la_ssize_t)((512 - p->total % 512) % 512 + 1024);
}

static int padded_close(struct archive *a, void *ud)
{
    struct padded *p = ud;

    (void)a;
    archive_read_free(p->raw);
    free(p);
    return ARCHIVE_OK;
}

/* A tar reader over `archive` (or `fd`), decompressing and padding. */
static struct archive *open_tar(const char *archive, int fd, berth_error *err)
{
    struct padded *p = xcalloc(1, sizeof(*p));
    struct archive_entry *e;
    struct archive *in;

    p->raw = archive_read_new();
    if (!p->raw) {
        free(p);
        berth_error_set(err, ENOMEM, "allocating libarchive handles");
        return NULL;
    }
    if (support_filters(p->raw, err) < 0) {
        archive_read_free(p->raw);
        free(p);
        return NULL;
    }
    archive_read_support_format_raw(p->raw);
    int r = archive_read_open_fd(p->raw, fd, 1 << 17);
    if (r != ARCHIVE_OK || archive_read_next_header(p->raw, &e) != ARCHIVE_OK) {
        berth_error_set(err, 0, "opening archive '%s': %s", archive ? archive : "the stream",
                        archive_error_string(p->raw));
        archive_read_free(p->raw);
        free(p);
        return NULL;
    }
    in = archive_read_new();
    if (!in) {
        padded_close(NULL, p);
        berth_error_set(err, ENOMEM, "allocating libarchive handles");
        return NULL;
    }
    archive_read_support_format_tar(in);
    archive_read_support_format_gnutar(in);
    if (archive_read_open(in, p, NULL, padded_read, padded_close) != ARCHIVE_OK) {
        berth_error_set(err, 0, "reading archive '%s': %s", archive ? archive : "the stream",
                        archive_error_string(in));
        archive_read_free(in);
        return NULL;
    }
    return in;
}

/* In the confined child: extract the stream `fd` into the tree `rootfd`,
 * which is the process's root and working directory by now (libarchive
 * extracts relative to the working directory; the secure flags keep every
 * entry below it, and the chroot keeps everything else out of reach). */
static int extract_here(int fd, int rootfd, const char *what, struct ctx *c, berth_error *err)
{
    _cleanup_(archive_writep) struct archive *out = archive_write_disk_new();
    _cleanup_(archive_readp) struct archive *in = NULL;
    int r;

    if (!out)
        return berth_error_set(err, ENOMEM, "allocating libarchive handles");
    c->rootfd = rootfd;
    /* numeric owners: no set_standard_lookup */
    archive_write_disk_set_options(out, extract_flags);
    if (!(in = open_tar(what, fd, err)))
        return -1;
    r = extract(c, in, out, err);
    if (r == 0 && archive_write_close(out) < ARCHIVE_WARN)
        r = berth_error_set(err, 0, "finishing extraction: %s", archive_error_string(out));
    return r;
}

/* What the unpacker reports back. It is as untrusted as the bytes it
 * parsed: the parent only takes numbers and a terminated message. */
struct verdict {
    int rc;
    struct berth_unpack_stats stats;
    berth_error err;
};

/* Whatever libc loads from the filesystem on first use, loaded while the
 * host's files are still in reach (character set conversions, the zone). */
static void preload(void)
{
    iconv_t cd = iconv_open("UTF-8", "ISO-8859-1");
    if (cd != (iconv_t)-1)
        iconv_close(cd);
    tzset();
}

/* The child: only `in`, the tree and the verdict pipe open, then confined.
 * Never returns. */
_Noreturn static void unpacker_child(int in, int rootfd, int vpipe, pid_t parent, const char *what,
                                     struct ctx *c)
{
    struct verdict v = {0};
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    preload();
    /* fds 3, 4, 5, by way of high numbers so that none is clobbered; every
     * other one closed: a directory fd outside the tree would undo the
     * chroot, a socket or lock of the parent would outlive it */
    int a = fcntl(in, F_DUPFD, 100), b = fcntl(rootfd, F_DUPFD, 100),
        p = fcntl(vpipe, F_DUPFD, 100);
    if (null < 0 || a < 0 || b < 0 || p < 0 || dup2(a, 3) < 0 || dup2(b, 4) < 0 || dup2(p, 5) < 0 ||
        dup2(null, 0) < 0 || dup2(null, 1) < 0)
        _exit(1);
    close_range(6, ~0U, 0);
    v.stats = *c->st;
    if (berth_confine_unpacker(4, &v.err) == 0) {
        c->st = &v.stats;
        v.rc = extract_here(3, 4, what, c, &v.err);
    } else
        v.rc = -1;
    (void)!write(5, &v, sizeof(v));
    _exit(0);
}

/* Extract the archive `archive` (or the stream `fd` when archive is NULL)
 * into `dest`, in a confined child process (confine.h). */
static int unpack(const char *archive, int fd, const char *dest, struct ctx *c, berth_error *err)
{
    _cleanup_close_ int rootfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int afd = -1;
    const char *what = archive ? archive : "the stream";
    int vp[2];
    struct verdict v;

    if (rootfd < 0)
        return berth_error_set(err, errno, "opening '%s'", dest);
    if (archive && (afd = open(archive, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
        return berth_error_set(err, errno, "opening archive '%s'", archive);
    if (pipe2(vp, O_CLOEXEC) < 0)
        return berth_error_set(err, errno, "creating a pipe");
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        close(vp[0]), close(vp[1]);
        return berth_error_set(err, errno, "forking the unpacker");
    }
    if (pid == 0)
        unpacker_child(archive ? afd : fd, rootfd, vp[1], parent, what, c);
    close(vp[1]);
    ssize_t n;
    do
        n = read(vp[0], &v, sizeof(v));
    while (n < 0 && errno == EINTR);
    close(vp[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (n != sizeof(v)) {
        if (WIFSIGNALED(status))
            berth_error_set(err, 0, "the unpacker was killed by %s",
                            berth_signal_name(WTERMSIG(status)));
        else
            berth_error_set(err, 0, "the unpacker exited without a verdict");
        return berth_error_wrap(err, "unpacking '%s'", what);
    }
    v.err.msg[sizeof(v.err.msg) - 1] = '\0';
    *c->st = v.stats;
    if (v.rc < 0) {
        *err = v.err;
        return berth_error_wrap(err, "unpacking '%s'", what);
    }
    return 0;
}

static int unpack_plain(const char *archive, int fd, const char *dest,
                        const struct berth_unpack_limits *limits,
                        struct berth_unpack_stats *ret_stats, berth_error *err)
{
    struct berth_unpack_stats st = {.layout_like = true};
    struct ctx c = {MODE_PLAIN, limits ? limits : &default_limits, &st, -1};

    if (unpack(archive, fd, dest, &c, err) < 0)
        return -1;
    if (ret_stats)
        *ret_stats = st;
    return 0;
}

int berth_unpack_tar(const char *archive, const char *dest,
                     const struct berth_unpack_limits *limits, struct berth_unpack_stats *ret_stats,
                     berth_error *err)
{
    return unpack_plain(archive, -1, dest, limits, ret_stats, err);
}

int berth_unpack_tar_fd(int fd, const char *dest, const struct berth_unpack_limits *limits,
                        struct berth_unpack_stats *ret_stats, berth_error *err)
{
    return unpack_plain(NULL, fd, dest, limits, ret_stats, err);
}

int berth_unpack_layer(const char *layer, const char *dest,
                       const struct berth_unpack_limits *limits, struct berth_unpack_stats *stats,
                       berth_error *err)
{
    struct ctx c = {MODE_WHITEOUTS, limits ? limits : &default_limits, stats, -1};

    /* whiteouts first: they act on the layers below, while the entries
     * of this layer (maybe in the same directory) must survive them */
    if (unpack(layer, -1, dest, &c, err) < 0)
        return -1;
    c.mode = MODE_LAYER;
    return unpack(layer, -1, dest, &c, err);
}

int berth_unpack_detect(const char *archive, enum berth_image_format *ret, berth_error *err)
{
    struct berth_unpack_stats st = {.layout_like = true};
    struct ctx c = {MODE_DETECT, &default_limits, &st, -1};
    char empty[] = "/tmp/berth-detect-XXXXXX";

    /* the headers are the image server's bytes too: read them where an
     * empty directory is all there is */
    if (!mkdtemp(empty))
        return berth_error_set(err, errno, "creating a directory for the unpacker");
    int r = unpack(archive, -1, empty, &c, err);
    rmdir(empty);
    if (r < 0)
        return -1;
    *ret = berth_unpack_format_of(&st);
    return 0;
}
