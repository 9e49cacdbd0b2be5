#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "oci.h"
#include "registry.h"
#include "util.h"
#include "verify.h"

#define MAX_SIGNATURE 4096

int berth_store_prepare_rootfs(const char *rootfs, berth_error *err)
{
    static const struct {
        const char *path;
        bool dir;
    } targets[] = {{"proc", true},
                   {"sys", true},
                   {"dev", true},
                   {"etc/resolv.conf", false},
                   {"etc/hosts", false}};
    _cleanup_close_ int rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);

    if (rootfd < 0)
        return berth_error_set(err, errno, "opening '%s'", rootfs);
    for (size_t i = 0; i < ARRAY_SIZE(targets); i++) {
        int fd = berth_open_in_root(rootfd, targets[i].path, true, targets[i].dir, err);
        if (fd < 0)
            return berth_error_set(err, err->code, "creating '/%s' in '%s'", targets[i].path,
                                   rootfs);
        close(fd);
    }
    return 0;
}

void berth_image_release(struct berth_image *img)
{
    free(img->dir);
    free(img->rootfs);
    berth_image_config_release(&img->config);
    memset(img, 0, sizeof(*img));
}

static int fsync_dir(const char *dir)
{
    _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd < 0 ? -1 : fsync(fd);
}

int berth_store_load_image(const char *root, const char *hex, struct berth_image *ret,
                           berth_error *err)
{
    _cleanup_free_ char *dir = xasprintf("%s/images/%s", root, hex);
    _cleanup_free_ char *cfg = xasprintf("%s/config.json", dir);
    struct stat st;

    memset(ret, 0, sizeof(*ret));
    if (stat(dir, &st) < 0)
        return berth_error_set(err, errno, "image sha256:%s", hex);
    if (access(cfg, F_OK) == 0) {
        if (berth_image_config_read(cfg, &ret->format, &ret->config, err) < 0)
            return -1;
    } else {
        ret->format = BERTH_FORMAT_ROOTFS;
        berth_image_config_init(&ret->config);
    }
    memcpy(ret->digest, hex, 65);
    ret->rootfs = xasprintf("%s/rootfs", dir);
    ret->dir = TAKE_PTR(dir);
    utimensat(AT_FDCWD, ret->dir, NULL, 0); /* last used: now */
    return 0;
}

/* Create `path` (a directory or an empty file) and flock it. sweep() may
 * lock and remove it between the creation and our flock; then the name no
 * longer leads to what we locked, and we try again. */
static int create_locked(const char *path, bool dir)
{
    for (int tries = 0; tries < 10; tries++) {
        struct stat a, b;
        int fd;
        if (dir) {
            if (mkdir(path, 0700) < 0 && errno != EEXIST)
                return -1;
            fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        } else
            fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            return -1;
        if (flock(fd, LOCK_EX) < 0) {
            close(fd);
            return -1;
        }
        if (fstat(fd, &a) == 0 && lstat(path, &b) == 0 && a.st_ino == b.st_ino &&
            a.st_dev == b.st_dev)
            return fd;
        close(fd);
    }
    errno = EAGAIN;
    return -1;
}

/* A working directory ROOT/images/.tmp-<hex>.<pid>.<n>, flock'ed while we
 * use it, so that sweep() can tell a dead berth's leftovers from ours. */
struct workdir {
    char *path;
    int lockfd;
};

static int workdir_make(const char *root, const char *hex, struct workdir *w, berth_error *err)
{
    static unsigned counter;
    _cleanup_free_ char *images = xasprintf("%s/images", root);

    if (berth_mkdir_p(images, 0700, err) < 0)
        return -1;
    w->path = xasprintf("%s/.tmp-%s.%d.%u", images, hex, (int)getpid(), counter++);
    if (berth_rm_rf(w->path, err) == 0) {
        w->lockfd = create_locked(w->path, true);
        if (w->lockfd >= 0)
            return 0;
        berth_error_set(err, errno, "creating '%s'", w->path);
    }
    free(w->path);
    w->path = NULL;
    return -1;
}

static void workdir_drop(struct workdir *w)
{
    berth_error ign = BERTH_ERROR_INIT;

    /* a leftover is removed by the next gc ("partial") */
    if (w->path && berth_rm_rf(w->path, &ign) < 0) {
    }
    if (w->lockfd >= 0)
        close(w->lockfd);
    free(w->path);
    w->path = NULL;
    w->lockfd = -1;
}

/* The partial file of a registry blob that the next pull resumes
 * (".resume-<hex>"): opened without truncating and locked, or -1 when
 * another berth holds it. */
static int open_resumable(const char *path)
{
    struct stat a, b;
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0 || fstat(fd, &a) < 0 || lstat(path, &b) < 0 ||
        a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
        close(fd);
        return -1;
    }
    return fd;
}

#define RESUME_PREFIX ".resume-"

/* Remove what killed berths left in `dir`: dot-entries nobody holds a lock
 * on (but the resumable blobs, unless `all`: gc). `cb` sees each. */
static void sweep_some(const char *dir, bool dry_run, bool all,
                       void (*cb)(void *, const char *, const char *, uint64_t), void *ud);

static void sweep(const char *dir, bool dry_run,
                  void (*cb)(void *, const char *, const char *, uint64_t), void *ud)
{
    sweep_some(dir, dry_run, false, cb, ud);
}

static void sweep_some(const char *dir, bool dry_run, bool all,
                       void (*cb)(void *, const char *, const char *, uint64_t), void *ud)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    if (!d)
        return;
    while ((de = readdir(d))) {
        if (de->d_name[0] != '.' || !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
            (!all && !strncmp(de->d_name, RESUME_PREFIX, strlen(RESUME_PREFIX))))
            continue;
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, de->d_name);
        _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
            continue; /* in use */
        if (cb)
            cb(ud, "partial", de->d_name, 0);
        if (!dry_run) {
            berth_error ign = BERTH_ERROR_INIT;
            if (berth_rm_rf(p, &ign) < 0) { /* the next gc tries again */
            }
        }
    }
    closedir(d);
}

/* ---- unpacking while downloading ---------------------------------------
 * A child process extracts the bytes as they arrive into the work
 * directory (libarchive extracts relative to the working directory, so it
 * cannot be a thread). Nothing it writes is used before the digest and the
 * signature check out; when the stream had to restart, its tree is thrown
 * away and the verified blob is extracted again. */
struct streamer {
    pid_t pid;
    int sock;       /* we write the artifact here */
    int status;     /* the child's verdict */
    bool restarted; /* the stream went back to byte 0: the tree is unusable */
};

struct verdict {
    int rc;
    struct berth_unpack_stats stats;
    berth_error err;
};

static void stream_data(void *ud, const void *buf, size_t len)
{
    struct streamer *s = ud;

    while (s->sock >= 0 && len) {
        ssize_t n = send(s->sock, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) { /* the child stopped reading: its verdict will say why */
            close(s->sock);
            s->sock = -1;
            return;
        }
        buf = (const char *)buf + n;
        len -= (size_t)n;
    }
}

static void stream_restart(void *ud)
{
    struct streamer *s = ud;

    s->restarted = true;
    if (s->sock >= 0)
        close(s->sock);
    s->sock = -1;
}

static int streamer_start(struct streamer *s, const char *dest,
                          const struct berth_unpack_limits *lim, berth_error *err)
{
    int sv[2], st[2];

    s->pid = -1;
    s->sock = s->status = -1;
    s->restarted = false;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return berth_error_set(err, errno, "creating a socket pair");
    if (pipe2(st, O_CLOEXEC) < 0) {
        close(sv[0]);
        close(sv[1]);
        return berth_error_set(err, errno, "creating a pipe");
    }
    int size = 4 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    s->pid = fork();
    if (s->pid < 0) {
        close(sv[0]), close(sv[1]), close(st[0]), close(st[1]);
        return berth_error_set(err, errno, "forking the unpacker");
    }
    if (s->pid == 0) {
        struct verdict v = {0};
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* keep nothing else: a copy of another unpacker's socket would
         * keep that one from ever seeing the end of its stream, and a
         * copy of a lock would outlive the parent */
        int in = fcntl(sv[1], F_DUPFD, 100), out = fcntl(st[1], F_DUPFD, 100);
        if (in < 0 || out < 0 || dup2(in, 3) < 0 || dup2(out, 4) < 0)
            _exit(1);
        close_range(5, ~0U, 0);
        v.rc = berth_unpack_tar_fd(3, dest, lim, &v.stats, &v.err);
        (void)!write(4, &v, sizeof(v));
        _exit(0);
    }
    close(sv[1]);
    close(st[1]);
    s->sock = sv[0];
    s->status = st[0];
    return 0;
}

/* End of stream: the child's verdict. -1 when it failed or was cut off. */
static int streamer_finish(struct streamer *s, struct berth_unpack_stats *ret, berth_error *err)
{
    struct verdict v;
    ssize_t n;

    if (s->pid < 0)
        return berth_error_set(err, ECHILD, "no unpacker");
    if (s->sock >= 0)
        close(s->sock);
    s->sock = -1;
    do
        n = read(s->status, &v, sizeof(v));
    while (n < 0 && errno == EINTR);
    close(s->status);
    s->status = -1;
    waitpid(s->pid, NULL, 0);
    s->pid = -1;
    if (n != sizeof(v))
        return berth_error_set(err, EIO, "the unpacker died");
    if (v.rc < 0) {
        *err = v.err;
        return -1;
    }
    *ret = v.stats;
    return 0;
}

static void streamer_abort(struct streamer *s)
{
    if (s->sock >= 0)
        close(s->sock);
    if (s->status >= 0)
        close(s->status);
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    }
    s->pid = -1;
    s->sock = s->status = -1;
}

/* ---- images from registries --------------------------------------------
 * The image's digest is its manifest's or index's; the index, the
 * manifest, the config and each layer become blobs of their own, so that a
 * layer is stored once for every image that has it. Nothing is renamed
 * into blobs/ before every blob of the image arrived and verified, and
 * the layers are applied from there by the confined unpacker. */

struct manifest_doc {
    char hex[65];
    char *body;
    size_t len;
    char media_type[128];
    bool stored; /* already a blob */
};

static void manifest_doc_release(struct manifest_doc *m)
{
    free(m->body);
    m->body = NULL;
}

/* The manifest `hex`: from the store when it is there, else the registry. */
static int manifest_get(struct berth_registry *reg, const char *root, const char *hex,
                        struct manifest_doc *ret, berth_error *err)
{
    _cleanup_free_ char *blob = xasprintf("%s/blobs/sha256/%s", root, hex);
    _cleanup_free_ char *reference = xasprintf("sha256:%s", hex);

    memcpy(ret->hex, hex, 65);
    if (access(blob, F_OK) == 0 &&
        berth_read_file(blob, BERTH_REGISTRY_MAX_MANIFEST, &ret->body, &ret->len, err) == 0) {
        berth_registry_media_type(ret->body, ret->len, "", ret->media_type,
                                  sizeof(ret->media_type));
        ret->stored = true;
        return 0;
    }
    berth_error_clear(err);
    char got[65];
    if (berth_registry_get_manifest(reg, reference, &ret->body, &ret->len, got, ret->media_type,
                                    sizeof(ret->media_type), err) < 0)
        return -1;
    return 0;
}

static int check_manifest_type(const struct manifest_doc *m, bool index_ok, berth_error *err)
{
    if (berth_registry_is_manifest(m->media_type) ||
        (index_ok && berth_registry_is_index(m->media_type)))
        return 0;
    if (!strcmp(m->media_type, "application/vnd.docker.distribution.manifest.v1+json"))
        return berth_error_set(err, 0,
                               "sha256:%s is a Docker schema 1 manifest, which berth does not "
                               "take: push the image again as Docker schema 2 or OCI",
                               m->hex);
    return berth_error_set(err, 0, "sha256:%s is not an image manifest or index (%s)", m->hex,
                           m->media_type[0] ? m->media_type : "no media type");
}

struct pull {
    const char *root;
    struct berth_registry reg;
    struct manifest_doc top, man; /* man.body NULL: top is the manifest */
    struct berth_registry_manifest m;
    char **blobs; /* every blob of the image, hex, NULL-terminated */
    size_t nblobs;
    struct berth_registry_blob *dl;
    char **partials;
    int *locks;
    bool *resumable; /* partials[k] is a .resume- file: kept when the pull fails */
    size_t ndl;
    char **ready; /* .resume- files complete and verified already: published with the rest */
    int *ready_locks;
    size_t nready;
};

static void pull_release(struct pull *p)
{
    for (size_t i = 0; i < p->ndl; i++) {
        if (p->partials[i] && !p->resumable[i])
            unlink(p->partials[i]);
        free(p->partials[i]);
        if (p->locks[i] >= 0)
            close(p->locks[i]);
    }
    for (size_t i = 0; i < p->nready; i++) {
        free(p->ready[i]);
        close(p->ready_locks[i]);
    }
    free(p->ready);
    free(p->ready_locks);
    free(p->resumable);
    free(p->partials);
    free(p->locks);
    free(p->dl);
    berth_strv_free(p->blobs);
    berth_registry_manifest_release(&p->m);
    manifest_doc_release(&p->top);
    manifest_doc_release(&p->man);
    berth_registry_release(&p->reg);
}

static void pull_add_blob(struct pull *p, const char *hex)
{
    for (size_t i = 0; i < p->nblobs; i++)
        if (!strcmp(p->blobs[i], hex))
            return;
    p->blobs = xrealloc(p->blobs, (p->nblobs + 2) * sizeof(char *));
    p->blobs[p->nblobs++] = xstrdup(hex);
    p->blobs[p->nblobs] = NULL;
}

/* The manifests, then what they name. */
static int pull_manifests(struct pull *p, const char *hex, berth_error *err)
{
    if (manifest_get(&p->reg, p->root, hex, &p->top, err) < 0 ||
        check_manifest_type(&p->top, true, err) < 0)
        return -1;
    const struct manifest_doc *man = &p->top;
    pull_add_blob(p, p->top.hex);
    if (berth_registry_is_index(p->top.media_type)) {
        char digest[72], mt[128];
        if (berth_oci_pick_platform(p->top.body, p->top.len, digest, mt, sizeof(mt), err) < 0)
            return berth_error_wrap(err, "index sha256:%s", hex);
        if (manifest_get(&p->reg, p->root, digest + 7, &p->man, err) < 0)
            return -1;
        if (check_manifest_type(&p->man, false, err) < 0)
            return berth_error_wrap(err, "the index's manifest for this platform");
        man = &p->man;
        pull_add_blob(p, p->man.hex);
    }
    if (berth_registry_manifest_parse(man->body, man->len, &p->m, err) < 0)
        return berth_error_wrap(err, "manifest sha256:%s", man->hex);
    pull_add_blob(p, p->m.config);
    for (size_t i = 0; i < p->m.nlayers; i++)
        pull_add_blob(p, p->m.layers[i]);
    return 0;
}

static uint64_t pull_blob_size(const struct pull *p, const char *hex)
{
    if (!strcmp(hex, p->m.config))
        return p->m.config_size;
    for (size_t i = 0; i < p->m.nlayers; i++)
        if (!strcmp(hex, p->m.layers[i]))
            return p->m.layer_sizes[i];
    return 0;
}

/* Download the blobs the store does not have, in parallel, into locked
 * partial files; publish them all only when all verified. */
static int pull_blobs(struct pull *p, berth_error *err)
{
    _cleanup_free_ char *pdir = xasprintf("%s/blobs/.partial", p->root);
    _cleanup_free_ char *sdir = xasprintf("%s/blobs/sha256", p->root);
    static unsigned counter;

    if (berth_mkdir_p(pdir, 0700, err) < 0 || berth_mkdir_p(sdir, 0700, err) < 0)
        return -1;
    p->dl = xcalloc(p->nblobs, sizeof(*p->dl));
    p->partials = xcalloc(p->nblobs, sizeof(char *));
    p->locks = xcalloc(p->nblobs, sizeof(int));
    p->resumable = xcalloc(p->nblobs, sizeof(bool));
    p->ready = xcalloc(p->nblobs, sizeof(char *));
    p->ready_locks = xcalloc(p->nblobs, sizeof(int));
    for (size_t i = 0; i < p->nblobs; i++) {
        const char *hex = p->blobs[i];
        _cleanup_free_ char *blob = xasprintf("%s/%s", sdir, hex);
        if (!strcmp(hex, p->top.hex) || (p->man.body && !strcmp(hex, p->man.hex)) ||
            access(blob, F_OK) == 0)
            continue;
        uint64_t size = pull_blob_size(p, hex);
        /* what an earlier pull received of it is resumed (one berth at a time) */
        char *resume = xasprintf("%s/" RESUME_PREFIX "%s", pdir, hex);
        int fd = open_resumable(resume);
        struct stat st;
        char have[65];
        if (fd >= 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_size == size &&
            berth_sha256_file(resume, have, err) == 0 && !strcmp(have, hex)) {
            p->ready_locks[p->nready] = fd;
            p->ready[p->nready++] = resume;
            continue;
        }
        berth_error_clear(err);
        size_t k = p->ndl++;
        if (fd >= 0) {
            p->partials[k] = resume;
            p->locks[k] = fd;
            p->resumable[k] = true;
        } else {
            free(resume);
            p->partials[k] = xasprintf("%s/.%s.%d.%u", pdir, hex, (int)getpid(), counter++);
            p->locks[k] = create_locked(p->partials[k], false);
            if (p->locks[k] < 0)
                return berth_error_set(err, errno, "creating '%s'", p->partials[k]);
        }
        p->dl[k] = (struct berth_registry_blob){hex, size, p->partials[k], p->resumable[k], {0}};
    }
    if (p->ndl && berth_registry_get_blobs(&p->reg, p->dl, p->ndl)) {
        size_t first = p->ndl, nfailed = 0;
        for (size_t k = 0; k < p->ndl; k++)
            if (p->dl[k].res.rc < 0 && nfailed++ == 0)
                first = k;
        *err = p->dl[first].res.err;
        if (nfailed > 1)
            berth_error_wrap(err, "blob sha256:%s (and %zu more that failed)", p->dl[first].hex,
                             nfailed - 1);
        else
            berth_error_wrap(err, "blob sha256:%s", p->dl[first].hex);
        return -1;
    }
    for (size_t k = 0; k < p->ndl; k++) {
        _cleanup_free_ char *blob = xasprintf("%s/%s", sdir, p->dl[k].hex);
        if (rename(p->partials[k], blob) < 0)
            return berth_error_set(err, errno, "renaming '%s' to '%s'", p->partials[k], blob);
        free(p->partials[k]);
        p->partials[k] = NULL;
    }
    for (size_t k = 0; k < p->nready; k++) {
        const char *hex = strrchr(p->ready[k], '/') + 1 + strlen(RESUME_PREFIX);
        _cleanup_free_ char *blob = xasprintf("%s/%s", sdir, hex);
        if (fsync(p->ready_locks[k]) < 0 || rename(p->ready[k], blob) < 0)
            return berth_error_set(err, errno, "renaming '%s' to '%s'", p->ready[k], blob);
    }
    const struct manifest_doc *docs[] = {&p->top, &p->man};
    for (size_t i = 0; i < ARRAY_SIZE(docs); i++) {
        if (!docs[i]->body || docs[i]->stored)
            continue;
        _cleanup_free_ char *blob = xasprintf("%s/%s", sdir, docs[i]->hex);
        if (berth_write_file_atomic(blob, docs[i]->body, docs[i]->len, 0600, err) < 0)
            return -1;
    }
    fsync_dir(sdir);
    return 0;
}

/* Apply the layers in order onto a new tree, and publish it. */
static int pull_unpack(struct pull *p, const char *hex, const struct berth_unpack_limits *lim,
                       struct berth_image *ret, berth_error *err)
{
    struct workdir w = {NULL, -1};
    struct berth_unpack_stats stats = {0};
    struct berth_image_config cfg;
    _cleanup_free_ char *cfgdata = NULL;
    size_t cfglen;
    uint64_t size = 0;
    int r = -1;
    _cleanup_free_ char *rootfs = NULL, *cfgpath = NULL, *final = NULL;

    _cleanup_free_ char *cfgblob = xasprintf("%s/blobs/sha256/%s", p->root, p->m.config);
    if (berth_read_file(cfgblob, BERTH_REGISTRY_MAX_MANIFEST, &cfgdata, &cfglen, err) < 0)
        return berth_error_wrap(err, "image config");
    memset(&cfg, 0, sizeof(cfg));
    if (berth_oci_config_parse(cfgdata, cfglen, &cfg, err) < 0)
        return berth_error_wrap(err, "image config sha256:%s", p->m.config);
    if (workdir_make(p->root, hex, &w, err) < 0)
        goto out;
    rootfs = xasprintf("%s/rootfs", w.path);
    if (mkdir(rootfs, 0755) < 0) {
        berth_error_set(err, errno, "creating '%s'", rootfs);
        goto out;
    }
    for (size_t i = 0; i < p->m.nlayers; i++) {
        _cleanup_free_ char *blob = xasprintf("%s/blobs/sha256/%s", p->root, p->m.layers[i]);
        if (berth_unpack_layer(blob, rootfs, lim, &stats, err) < 0) {
            berth_error_wrap(err, "layer sha256:%s", p->m.layers[i]);
            goto out;
        }
        size += p->m.layer_sizes[i];
    }
    berth_strv_free(cfg.blobs);
    cfg.blobs = xcalloc(p->nblobs + 1, sizeof(char *));
    for (size_t i = 0; i < p->nblobs; i++)
        cfg.blobs[i] = xstrdup(p->blobs[i]);
    cfgpath = xasprintf("%s/config.json", w.path);
    if (berth_image_config_write(cfgpath, BERTH_FORMAT_OCI, &cfg, size, err) < 0 ||
        berth_store_prepare_rootfs(rootfs, err) < 0)
        goto out;
    if (syncfs(w.lockfd) < 0) {
        berth_error_set(err, errno, "syncing '%s'", w.path);
        goto out;
    }
    final = xasprintf("%s/images/%s", p->root, hex);
    if (rename(w.path, final) < 0) {
        if (errno != EEXIST && errno != ENOTEMPTY) {
            berth_error_set(err, errno, "renaming '%s' to '%s'", w.path, final);
            goto out;
        }
    } else {
        free(w.path);
        w.path = NULL;
        _cleanup_free_ char *images = xasprintf("%s/images", p->root);
        fsync_dir(images);
    }
    if (berth_store_load_image(p->root, hex, ret, err) < 0)
        goto out;
    ret->skipped_devices = stats.skipped_devices;
    r = 0;
out:
    berth_image_config_release(&cfg);
    workdir_drop(&w);
    return r;
}

static int registry_pull(const char *root, const char *url, const char *hex,
                         const struct berth_fetch_options *opt, bool has_fallback,
                         const struct berth_unpack_limits *lim, struct berth_image *ret,
                         berth_error *err)
{
    struct berth_registry_ref rr;
    struct pull p = {.root = root};
    int r = -1;

    if (berth_registry_ref_parse(url, &rr, err) < 0)
        return -1;
    if (rr.digest && strcmp(rr.digest + 7, hex)) {
        berth_error_set(err, 0, "the URL names %s, not the image's digest sha256:%s", rr.digest,
                        hex);
        goto out;
    }
    berth_registry_init(&p.reg, &rr, opt);
    p.reg.has_fallback = has_fallback;
    if (pull_manifests(&p, hex, err) == 0 && pull_blobs(&p, err) == 0)
        r = pull_unpack(&p, hex, lim, ret, err);
out:
    pull_release(&p);
    berth_registry_ref_release(&rr);
    return r;
}

/* A registry image: unpacked already, or pulled from the first of its
 * registries that delivers it. */
static int registry_image(const char *root, const struct berth_image_ref *ref,
                          const struct berth_fetch_options *opt,
                          const struct berth_unpack_limits *lim, struct berth_image *ret,
                          berth_error *err)
{
    char hex[65], failures[2048] = "";
    struct berth_fetch_options o;

    berth_fetch_deadline(opt, &o); /* one deadline over the image's registries */
    if (berth_digest_parse(ref->digest, hex, err) < 0)
        return -1;
    if (berth_store_load_image(root, hex, ret, err) == 0)
        return 0;
    berth_error_clear(err);
    if (ref->signature_url)
        return berth_error_set(err, 0,
                               "a minisign signature is not taken for a registry image (its "
                               "digest pins it)");
    if (opt->setting_err.msg[0]) {
        *err = opt->setting_err;
        return -1;
    }
    for (size_t i = 0; i < ref->nurls; i++) {
        berth_error e = BERTH_ERROR_INIT;
        if (!berth_registry_is_url(ref->urls[i]))
            berth_error_set(&e, 0, "not a registry URL (oci:// or oci+http://)");
        else if (registry_pull(root, ref->urls[i], hex, &o, i + 1 < ref->nurls, lim, ret, &e) == 0)
            return 0;
        if (ref->nurls == 1) {
            *err = e;
            return berth_error_wrap(err, "pulling '%s'", ref->urls[i]);
        }
        size_t used = strlen(failures);
        snprintf(failures + used, sizeof(failures) - used, "%s'%s': %s", used ? "; " : "",
                 ref->urls[i], e.msg);
    }
    return berth_error_set(err, 0, "pulling failed from every registry: %s", failures);
}

/* ---- one image --------------------------------------------------------- */

struct job {
    const struct berth_image_ref *ref;
    bool registry; /* pulled from a registry (registry_image), not downloaded here */
    char hex[65];
    struct workdir w;
    char *stream; /* w.path/stream: the artifact extracted */
    char *blob;   /* ROOT/blobs/sha256/<hex> */
    char *partial;
    int partial_lock;
    bool download;
    struct streamer s;
    struct berth_unpack_limits limits;
    struct berth_fetch_sink sink;
    struct berth_minisign_key key;
    struct berth_minisign_sig sig;
    bool has_sig;
    int rc;
    berth_error *err;
    struct berth_image *ret;
};

static int job_prepare_signature(struct job *j, const struct berth_fetch_options *opt)
{
    const struct berth_image_ref *r = j->ref;
    _cleanup_free_ char *text = NULL;
    size_t len;

    if (!r->signature_url)
        return 0;
    if (!r->public_key)
        return berth_error_set(j->err, EINVAL, "a signature URL needs a public key");
    if (berth_minisign_key_parse(r->public_key, &j->key, j->err) < 0)
        return -1;
    if (berth_fetch_small(r->signature_url, opt, MAX_SIGNATURE, &text, &len, j->err) < 0 ||
        berth_minisign_sig_parse(text, len, &j->sig, j->err) < 0)
        return berth_error_wrap(j->err, "signature '%s'", r->signature_url);
    j->has_sig = true;
    return 0;
}

/* Before downloading: the image may be there already, or its blob. */
static int job_start(struct job *j, const char *root, const struct berth_fetch_options *opt)
{
    struct stat st;

    if (berth_digest_parse(j->ref->digest, j->hex, j->err) < 0)
        return -1;
    if (j->ref->nurls == 0 && !j->ref->urls)
        return berth_error_set(j->err, EINVAL, "no URL for sha256:%s", j->hex);
    if (berth_store_load_image(root, j->hex, j->ret, j->err) == 0)
        return 1; /* done */
    berth_error_clear(j->err);
    j->blob = xasprintf("%s/blobs/sha256/%s", root, j->hex);
    if (job_prepare_signature(j, opt) < 0 || workdir_make(root, j->hex, &j->w, j->err) < 0)
        return -1;
    j->stream = xasprintf("%s/stream", j->w.path);
    if (mkdir(j->stream, 0755) < 0)
        return berth_error_set(j->err, errno, "creating '%s'", j->stream);
    if (stat(j->blob, &st) == 0)
        return 0;
    _cleanup_free_ char *pdir = xasprintf("%s/blobs/.partial", root);
    _cleanup_free_ char *sdir = xasprintf("%s/blobs/sha256", root);
    if (berth_mkdir_p(pdir, 0700, j->err) < 0 || berth_mkdir_p(sdir, 0700, j->err) < 0)
        return -1;
    j->partial = xasprintf("%s/.%s.%d.%p", pdir, j->hex, (int)getpid(), (void *)j);
    j->partial_lock = create_locked(j->partial, false);
    if (j->partial_lock < 0)
        return berth_error_set(j->err, errno, "creating '%s'", j->partial);
    if (streamer_start(&j->s, j->stream, &j->limits, j->err) < 0)
        return -1;
    j->sink = (struct berth_fetch_sink){stream_data, stream_restart, &j->s};
    j->download = true;
    return 0;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* After downloading: verify, publish the blob, unpack, publish the image. */
static int job_finish(struct job *j, const char *root, const struct berth_fetch_result *res)
{
    struct berth_unpack_stats stats = {0};
    berth_error serr = BERTH_ERROR_INIT;
    bool streamed = false;

    if (j->has_sig &&
        berth_minisign_verify_file(&j->key, &j->sig, j->download ? j->partial : j->blob,
                                   res ? res->blake2b : NULL, j->err) < 0)
        return -1;
    if (j->download) {
        if (rename(j->partial, j->blob) < 0)
            return berth_error_set(j->err, errno, "renaming '%s' to '%s'", j->partial, j->blob);
        free(j->partial);
        j->partial = NULL;
        _cleanup_free_ char *sdir = xasprintf("%s/blobs/sha256", root);
        fsync_dir(sdir);
        bool restarted = j->s.restarted;
        int r = streamer_finish(&j->s, &stats, &serr);
        if (r < 0 && !restarted) { /* the archive itself is bad */
            *j->err = serr;
            return -1;
        }
        streamed = r == 0 && !restarted;
    }
    if (!streamed) {
        if (berth_rm_rf(j->stream, j->err) < 0 || mkdir(j->stream, 0755) < 0 ||
            berth_unpack_tar(j->blob, j->stream, &j->limits, &stats, j->err) < 0)
            return -1;
    }
    enum berth_image_format fmt = j->ref->format;
    if (fmt == BERTH_FORMAT_AUTO)
        fmt = berth_unpack_format_of(&stats);
    _cleanup_free_ char *rootfs = xasprintf("%s/rootfs", j->w.path);
    struct berth_image_config cfg;
    if (fmt == BERTH_FORMAT_ROOTFS) {
        if (rename(j->stream, rootfs) < 0)
            return berth_error_set(j->err, errno, "renaming '%s'", j->stream);
        berth_image_config_init(&cfg);
    } else {
        if (mkdir(rootfs, 0755) < 0)
            return berth_error_set(j->err, errno, "creating '%s'", rootfs);
        if (berth_oci_apply(j->stream, fmt, rootfs, &j->limits, &cfg, &stats, j->err) < 0)
            return -1;
        if (berth_rm_rf(j->stream, j->err) < 0) {
            berth_image_config_release(&cfg);
            return -1;
        }
    }
    _cleanup_free_ char *cfgpath = xasprintf("%s/config.json", j->w.path);
    int r = berth_image_config_write(cfgpath, fmt, &cfg, file_size(j->blob), j->err);
    berth_image_config_release(&cfg);
    if (r < 0 || berth_store_prepare_rootfs(rootfs, j->err) < 0)
        return -1;
    /* the tree must be on disk before its name says it is complete */
    if (syncfs(j->w.lockfd) < 0)
        return berth_error_set(j->err, errno, "syncing '%s'", j->w.path);
    _cleanup_free_ char *final = xasprintf("%s/images/%s", root, j->hex);
    if (rename(j->w.path, final) < 0) {
        if (errno != EEXIST && errno != ENOTEMPTY) /* else another berth was first */
            return berth_error_set(j->err, errno, "renaming '%s' to '%s'", j->w.path, final);
    } else {
        free(j->w.path);
        j->w.path = NULL;
        _cleanup_free_ char *images = xasprintf("%s/images", root);
        fsync_dir(images);
    }
    if (berth_store_load_image(root, j->hex, j->ret, j->err) < 0)
        return -1;
    j->ret->skipped_devices = stats.skipped_devices;
    return 0;
}

static void job_cleanup(struct job *j)
{
    streamer_abort(&j->s);
    if (j->partial) {
        unlink(j->partial);
        free(j->partial);
    }
    if (j->partial_lock >= 0)
        close(j->partial_lock);
    workdir_drop(&j->w);
    berth_minisign_sig_release(&j->sig);
    free(j->stream);
    free(j->blob);
}

static size_t ensure_images_here(const char *root, const struct berth_image_ref *refs, size_t n,
                                 const struct berth_fetch_options *opt, struct berth_image *rets,
                                 berth_error *errs)
{
    _cleanup_free_ struct job *jobs = xcalloc(n, sizeof(*jobs));
    _cleanup_free_ struct berth_fetch_request *reqs = xcalloc(n, sizeof(*reqs));
    _cleanup_free_ struct berth_fetch_result *res = xcalloc(n, sizeof(*res));
    _cleanup_free_ size_t *which = xcalloc(n, sizeof(*which));
    _cleanup_free_ char *pdir = xasprintf("%s/blobs/.partial", root);
    _cleanup_free_ char *idir = xasprintf("%s/images", root);
    size_t nreq = 0, failed = 0;

    sweep(pdir, false, NULL, NULL);
    sweep(idir, false, NULL, NULL);
    for (size_t i = 0; i < n; i++) {
        struct job *j = &jobs[i];
        j->ref = &refs[i];
        j->err = &errs[i];
        j->ret = &rets[i];
        j->w.lockfd = j->partial_lock = -1;
        j->s.pid = j->s.sock = j->s.status = -1;
        j->limits.max_bytes =
            refs[i].max_unpacked_bytes ? refs[i].max_unpacked_bytes : BERTH_UNPACK_MAX_BYTES;
        j->limits.max_entries =
            refs[i].max_entries ? refs[i].max_entries : BERTH_UNPACK_MAX_ENTRIES;
        j->limits.min_free = opt->min_free;
        berth_error_clear(j->err);
        memset(j->ret, 0, sizeof(*j->ret));
        j->registry = refs[i].nurls && berth_registry_is_url(refs[i].urls[0]);
        j->rc = j->registry ? 0 : job_start(j, root, opt);
        if (j->rc == 0 && j->download) {
            reqs[nreq] = (struct berth_fetch_request){.urls = refs[i].urls,
                                                      .nurls = refs[i].nurls,
                                                      .dest = j->partial,
                                                      .sha256 = j->hex,
                                                      .blake2b = j->has_sig && j->sig.prehashed,
                                                      .sink = &j->sink};
            which[nreq++] = i;
        }
    }
    if (nreq) {
        struct berth_fetch_options o; /* they start together: one deadline is each one's */
        berth_fetch_deadline(opt, &o);
        berth_fetch_many(reqs, nreq, &o, res);
    }
    for (size_t k = 0, r = 0; k < n; k++) {
        struct job *j = &jobs[k];
        const struct berth_fetch_result *fr = NULL;
        if (r < nreq && which[r] == k)
            fr = &res[r++];
        if (j->rc == 0 && fr && fr->rc < 0) {
            *j->err = fr->err;
            free(j->partial); /* fetch removed it */
            j->partial = NULL;
            j->rc = -1;
        }
        if (j->rc == 0 && j->registry)
            j->rc = registry_image(root, j->ref, opt, &j->limits, j->ret, j->err);
        else if (j->rc == 0)
            j->rc = job_finish(j, root, fr);
        if (j->rc < 0) {
            berth_error_wrap(j->err, "image %s", refs[k].digest ? refs[k].digest : "(no digest)");
            failed++;
        }
        job_cleanup(j);
    }
    return failed;
}

/* What the transfer process reports of one image. */
struct child_result {
    int rc;
    uint64_t skipped_devices;
    berth_error err;
};

static bool write_all(int fd, const void *buf, size_t len)
{
    for (const char *p = buf; len;) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        len -= (size_t)w;
    }
    return true;
}

/* The images in a short-lived child: libcurl, its TLS stack and what a
 * registry answers are mapped there and gone with it; this process then
 * only loads the published images. */
static size_t ensure_images_in_child(const char *root, const struct berth_image_ref *refs, size_t n,
                                     const struct berth_fetch_options *opt,
                                     struct berth_image *rets, berth_error *errs)
{
    int fds[2];
    size_t failed = 0, i;
    char hex[65];
    berth_error e = BERTH_ERROR_INIT;

    /* all of them in the store already: no child */
    for (i = 0; i < n; i++) {
        berth_error_clear(&e);
        memset(&rets[i], 0, sizeof(rets[i]));
        if (berth_digest_parse(refs[i].digest, hex, &e) < 0 ||
            berth_store_load_image(root, hex, &rets[i], &e) < 0)
            break;
    }
    if (i == n) {
        for (i = 0; i < n; i++)
            berth_error_clear(&errs[i]);
        return 0;
    }
    while (i--)
        berth_image_release(&rets[i]);
    if (pipe2(fds, O_CLOEXEC) < 0)
        return ensure_images_here(root, refs, n, opt, rets, errs);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return ensure_images_here(root, refs, n, opt, rets, errs);
    }
    if (pid == 0) {
        struct berth_fetch_options o = *opt;
        struct berth_image *r = xcalloc(n, sizeof(*r));
        berth_error *er = xcalloc(n, sizeof(*er));
        close(fds[0]);
        o.transfer_child = false;
        ensure_images_here(root, refs, n, &o, r, er);
        for (size_t k = 0; k < n; k++) {
            struct child_result cr = {er[k].msg[0] ? -1 : 0, r[k].skipped_devices, er[k]};
            if (!write_all(fds[1], &cr, sizeof(cr)))
                _exit(1);
        }
        _exit(0);
    }
    close(fds[1]);
    size_t k = 0, got = 0;
    struct child_result cr;
    for (;;) {
        ssize_t r = read(fds[0], (char *)&cr + got, sizeof(cr) - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if ((got += (size_t)r) < sizeof(cr))
            continue;
        got = 0;
        if (k >= n)
            break;
        memset(&rets[k], 0, sizeof(rets[k]));
        errs[k] = cr.err;
        if (cr.rc == 0 && (berth_digest_parse(refs[k].digest, hex, &errs[k]) < 0 ||
                           berth_store_load_image(root, hex, &rets[k], &errs[k]) < 0))
            cr.rc = -1;
        if (cr.rc == 0)
            rets[k].skipped_devices = cr.skipped_devices;
        else
            failed++;
        k++;
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    for (; k < n; k++, failed++) { /* it died before saying */
        memset(&rets[k], 0, sizeof(rets[k]));
        if (WIFSIGNALED(status))
            berth_error_set(&errs[k], 0, "image %s: the transfer process died of signal %d",
                            refs[k].digest ? refs[k].digest : "(no digest)", WTERMSIG(status));
        else
            berth_error_set(&errs[k], 0, "image %s: the transfer process exited early (%d)",
                            refs[k].digest ? refs[k].digest : "(no digest)",
                            WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    return failed;
}

size_t berth_store_ensure_images(const char *root, const struct berth_image_ref *refs, size_t n,
                                 const struct berth_fetch_options *opt, struct berth_image *rets,
                                 berth_error *errs)
{
    if (opt->transfer_child)
        return ensure_images_in_child(root, refs, n, opt, rets, errs);
    return ensure_images_here(root, refs, n, opt, rets, errs);
}

int berth_store_ensure_image(const char *root, const struct berth_image_ref *ref,
                             const struct berth_fetch_options *opt, struct berth_image *ret,
                             berth_error *err)
{
    return berth_store_ensure_images(root, ref, 1, opt, ret, err) ? -1 : 0;
}

int berth_store_fetch_unpinned(const char *root, const char *url,
                               const struct berth_fetch_options *opt, char ret_hex[65],
                               enum berth_image_format *ret_format, berth_error *err)
{
    _cleanup_free_ char *pdir = xasprintf("%s/blobs/.partial", root);
    _cleanup_free_ char *sdir = xasprintf("%s/blobs/sha256", root);
    _cleanup_free_ char *partial = NULL;
    _cleanup_free_ char *blob = NULL;
    _cleanup_close_ int lock = -1;
    struct berth_fetch_request req = {.urls = &url, .nurls = 1};
    struct berth_fetch_result res;

    if (berth_mkdir_p(pdir, 0700, err) < 0 || berth_mkdir_p(sdir, 0700, err) < 0)
        return -1;
    sweep(pdir, false, NULL, NULL);
    partial = xasprintf("%s/.pin.%d", pdir, (int)getpid());
    lock = create_locked(partial, false);
    if (lock < 0)
        return berth_error_set(err, errno, "creating '%s'", partial);
    req.dest = partial;
    struct berth_fetch_options o;
    berth_fetch_deadline(opt, &o);
    if (berth_fetch(&req, &o, &res, err) < 0)
        return -1;
    blob = xasprintf("%s/%s", sdir, res.sha256);
    if (berth_unpack_detect(partial, ret_format, err) < 0 || rename(partial, blob) < 0) {
        if (!err->msg[0])
            berth_error_set(err, errno, "renaming '%s' to '%s'", partial, blob);
        unlink(partial);
        return -1;
    }
    fsync_dir(sdir);
    memcpy(ret_hex, res.sha256, 65);
    return 0;
}

/* ---- image files ------------------------------------------------------ */

/* What the first bytes of a file that cannot be an image say it is; NULL
 * when it may be a (compressed) tar archive. */
static const char *not_an_archive(const unsigned char *b, size_t n)
{
    static const struct {
        const char *magic;
        size_t len;
        const char *what;
    } kinds[] = {
        {"PK\x03\x04", 4, "a zip archive"},
        {"PK\x05\x06", 4, "an empty zip archive"},
        {"\x7f"
         "ELF",
         4, "an ELF executable"},
        {"7z\xbc\xaf\x27\x1c", 6, "a 7-zip archive"},
        {"Rar!", 4, "a RAR archive"},
        {"%PDF", 4, "a PDF document"},
        {"\x89PNG", 4, "a PNG image"},
        {"!<arch>", 7, "an ar archive (a .deb?)"},
        {"\xed\xab\xee\xdb", 4, "an RPM package"},
        {"hsqs", 4, "a squashfs image"},
    };

    if (n == 0)
        return "an empty file";
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
        if (n >= kinds[i].len && !memcmp(b, kinds[i].magic, kinds[i].len))
            return kinds[i].what;
    if (n >= 262 && !memcmp(b + 257, "ustar", 5))
        return NULL;
    if (b[0] == '{' || b[0] == '[')
        return "a JSON file (an OCI layout is a directory: give the directory)";
    bool text = true;
    for (size_t i = 0; i < n && i < 512 && text; i++)
        text = b[i] == '\n' || b[i] == '\r' || b[i] == '\t' || (b[i] >= 0x20 && b[i] < 0x7f);
    return text ? "a text file" : NULL;
}

static const char image_kinds[] =
    "a rootfs directory, a rootfs tarball, an OCI layout directory, an OCI archive, a "
    "docker save archive, sha256:DIGEST of the store or an oci:// reference";

/* Move a finished working directory to images/<hex> and load it. */
static int publish(const char *root, const char *hex, struct workdir *w, struct berth_image *ret,
                   berth_error *err)
{
    if (syncfs(w->lockfd) < 0)
        return berth_error_set(err, errno, "syncing '%s'", w->path);
    _cleanup_free_ char *final = xasprintf("%s/images/%s", root, hex);
    if (rename(w->path, final) < 0) {
        if (errno != EEXIST && errno != ENOTEMPTY) /* else another berth was first */
            return berth_error_set(err, errno, "renaming '%s' to '%s'", w->path, final);
    } else {
        free(w->path);
        w->path = NULL;
        _cleanup_free_ char *images = xasprintf("%s/images", root);
        fsync_dir(images);
    }
    return berth_store_load_image(root, hex, ret, err);
}

static void default_limits(struct berth_unpack_limits *lim)
{
    lim->max_bytes = BERTH_UNPACK_MAX_BYTES;
    lim->max_entries = BERTH_UNPACK_MAX_ENTRIES;
    lim->min_free = (struct berth_space_reserve){BERTH_MIN_FREE_DEFAULT, BERTH_MIN_FREE_PERCENT};
}

/* An OCI image layout directory: keyed by the sha256 of its index.json,
 * which names (by digest, each verified) everything the image is made of. */
static int import_layout(const char *root, const char *dir, struct berth_image *ret,
                         berth_error *err)
{
    _cleanup_free_ char *index = xasprintf("%s/index.json", dir);
    char hex[65];
    struct workdir w = {NULL, -1};
    struct berth_image_config cfg;
    struct berth_unpack_limits lim;
    struct berth_unpack_stats stats = {0};
    int r = -1;

    if (berth_sha256_file(index, hex, err) < 0)
        return -1;
    if (berth_store_load_image(root, hex, ret, err) == 0)
        return 0;
    berth_error_clear(err);
    default_limits(&lim);
    if (workdir_make(root, hex, &w, err) < 0)
        return -1;
    _cleanup_free_ char *rootfs = xasprintf("%s/rootfs", w.path);
    _cleanup_free_ char *cfgpath = xasprintf("%s/config.json", w.path);
    if (mkdir(rootfs, 0755) < 0) {
        berth_error_set(err, errno, "creating '%s'", rootfs);
        goto out;
    }
    if (berth_oci_apply(dir, BERTH_FORMAT_OCI, rootfs, &lim, &cfg, &stats, err) < 0)
        goto out;
    r = berth_image_config_write(cfgpath, BERTH_FORMAT_OCI, &cfg, 0, err);
    berth_image_config_release(&cfg);
    if (r < 0 || (r = berth_store_prepare_rootfs(rootfs, err)) < 0 ||
        (r = publish(root, hex, &w, ret, err)) < 0)
        goto out;
    ret->skipped_devices = stats.skipped_devices;
out:
    workdir_drop(&w);
    return r;
}

/* An archive file: a rootfs tarball, an OCI archive or a docker save
 * archive, keyed by its sha256 as if fetched with that digest. */
static int import_archive(const char *root, const char *path, struct berth_image *ret,
                          berth_error *err)
{
    unsigned char head[512];
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    char digest[72];
    ssize_t n;

    if (fd < 0)
        return berth_error_set(err, errno, "opening '%s'", path);
    if ((n = pread(fd, head, sizeof(head), 0)) < 0)
        return berth_error_set(err, errno, "reading '%s'", path);
    const char *what = not_an_archive(head, (size_t)n);
    if (what)
        return berth_error_set(err, 0, "'%s' is %s, not an image: expected %s", path, what,
                               image_kinds);
    struct berth_image_ref ref = {.digest = digest};
    struct job j = {.ref = &ref, .err = err, .ret = ret};
    memcpy(digest, "sha256:", 7);
    if (berth_sha256_file(path, j.hex, err) < 0)
        return -1;
    memcpy(digest + 7, j.hex, 65);
    if (berth_store_load_image(root, j.hex, ret, err) == 0)
        return 0;
    berth_error_clear(err);
    j.w.lockfd = j.partial_lock = -1;
    j.s.pid = j.s.sock = j.s.status = -1;
    default_limits(&j.limits);
    j.blob = xstrdup(path);
    int r = -1;
    if (workdir_make(root, j.hex, &j.w, err) == 0) {
        j.stream = xasprintf("%s/stream", j.w.path);
        if (mkdir(j.stream, 0755) < 0)
            berth_error_set(err, errno, "creating '%s'", j.stream);
        else
            r = job_finish(&j, root, NULL);
    }
    job_cleanup(&j);
    if (r < 0 && !memcmp(head + 257, "ustar", 5))
        return -1;
    if (r < 0)
        return berth_error_wrap(err, "'%s' is not a tar archive, nor compressed tar (expected %s)",
                                path, image_kinds);
    return r;
}

int berth_store_import(const char *root, const char *path, struct berth_image *ret,
                       berth_error *err)
{
    struct stat st;

    memset(ret, 0, sizeof(*ret));
    if (stat(path, &st) < 0)
        return berth_error_set(err, errno, "image '%s'", path);
    if (S_ISDIR(st.st_mode)) {
        _cleanup_free_ char *marker = xasprintf("%s/oci-layout", path);
        _cleanup_free_ char *index = xasprintf("%s/index.json", path);
        if (access(marker, F_OK) < 0 || access(index, F_OK) < 0)
            return berth_error_set(err, EINVAL,
                                   "'%s' is a directory without oci-layout and index.json: not "
                                   "an OCI layout",
                                   path);
        return import_layout(root, path, ret, err);
    }
    if (!S_ISREG(st.st_mode))
        return berth_error_set(err, EINVAL, "'%s' is neither a file nor a directory: expected %s",
                               path, image_kinds);
    return import_archive(root, path, ret, err);
}

/* ---- listing and garbage collection ------------------------------------ */

void berth_store_users_add(struct berth_store_users *u, const char *hex, const char *name)
{
    u->digests = xrealloc(u->digests, (u->n + 1) * sizeof(char *));
    u->names = xrealloc(u->names, (u->n + 1) * sizeof(char *));
    u->digests[u->n] = xstrdup(hex);
    u->names[u->n] = xstrdup(name);
    u->n++;
}

void berth_store_users_release(struct berth_store_users *u)
{
    for (size_t i = 0; i < u->n; i++) {
        free(u->digests[i]);
        free(u->names[i]);
    }
    free(u->digests);
    free(u->names);
    memset(u, 0, sizeof(*u));
}

static uint64_t tree_bytes(int dirfd, const char *name, int depth)
{
    struct stat st;
    uint64_t sum = 0;

    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return 0;
    sum = (uint64_t)st.st_blocks * 512;
    if (!S_ISDIR(st.st_mode) || depth > 256)
        return sum;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    struct dirent *de;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return sum;
    }
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            sum += tree_bytes(fd, de->d_name, depth + 1);
    closedir(d);
    return sum;
}

/* `v` (NULL-terminated) with the strings of `add` it lacks. */
static char **strv_append_missing(char **v, char *const *add)
{
    size_t n = 0;

    while (v[n])
        n++;
    for (; *add; add++) {
        bool have = false;
        for (size_t i = 0; i < n && !have; i++)
            have = !strcmp(v[i], *add);
        if (have)
            continue;
        v = xrealloc(v, (n + 2) * sizeof(char *));
        v[n++] = xstrdup(*add);
        v[n] = NULL;
    }
    return v;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct berth_store_entry *)a)->digest,
                  ((const struct berth_store_entry *)b)->digest);
}

static struct berth_store_entry *entry_for(struct berth_store_entry **es, size_t *n,
                                           const char *hex)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*es)[i].digest, hex))
            return &(*es)[i];
    *es = xrealloc(*es, (*n + 1) * sizeof(**es));
    struct berth_store_entry *e = &(*es)[(*n)++];
    memset(e, 0, sizeof(*e));
    snprintf(e->digest, sizeof(e->digest), "%s", hex);
    return e;
}

static bool hex64(const char *s)
{
    return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

void berth_store_list(const char *root, const struct berth_store_users *users,
                      struct berth_store_entry **ret, size_t *ret_n)
{
    _cleanup_free_ char *bdir = xasprintf("%s/blobs/sha256", root);
    _cleanup_free_ char *idir = xasprintf("%s/images", root);
    struct berth_store_entry *es = NULL;
    size_t n = 0, nparts = 0;
    struct {
        char *image, *blob;
    } *parts = NULL;
    struct dirent *de;
    DIR *d;

    if ((d = opendir(bdir))) {
        while ((de = readdir(d))) {
            if (!hex64(de->d_name))
                continue;
            struct berth_store_entry *e = entry_for(&es, &n, de->d_name);
            struct stat st;
            e->has_blob = fstatat(dirfd(d), de->d_name, &st, 0) == 0;
            e->blob_size = e->has_blob ? (uint64_t)st.st_size : 0;
        }
        closedir(d);
    }
    if ((d = opendir(idir))) {
        while ((de = readdir(d))) {
            if (!hex64(de->d_name))
                continue;
            struct berth_store_entry *e = entry_for(&es, &n, de->d_name);
            struct stat st;
            e->has_image = true;
            if (fstatat(dirfd(d), de->d_name, &st, 0) == 0)
                e->last_used = st.st_mtim.tv_sec;
            e->image_size = tree_bytes(dirfd(d), de->d_name, 0);
            _cleanup_free_ char *cfg = xasprintf("%s/%s/config.json", idir, de->d_name);
            struct berth_image_config c;
            enum berth_image_format f;
            berth_error ign = BERTH_ERROR_INIT;
            if (berth_image_config_read(cfg, &f, &c, &ign) == 0) {
                snprintf(e->format, sizeof(e->format), "%s", berth_image_format_name(f));
                for (char **b = c.blobs; *b; b++)
                    if (hex64(*b)) {
                        parts = xrealloc(parts, (nparts + 1) * sizeof(*parts));
                        parts[nparts].image = xstrdup(de->d_name);
                        parts[nparts++].blob = xstrdup(*b);
                    }
                berth_image_config_release(&c);
            }
        }
        closedir(d);
    }
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        es[i].services = xcalloc(users->n + 1, sizeof(char *));
        for (size_t r = 0; r < users->n; r++)
            if (!strcmp(users->digests[r], es[i].digest))
                es[i].services[k++] = xstrdup(users->names[r]);
    }
    /* the blobs of a registry image (its manifests, config, layers) are used
     * by whatever uses the image; gc keeps them with it */
    for (size_t q = 0; q < nparts; q++) {
        struct berth_store_entry *img = NULL, *blob = NULL;
        for (size_t i = 0; i < n; i++) {
            if (!strcmp(es[i].digest, parts[q].image))
                img = &es[i];
            if (!strcmp(es[i].digest, parts[q].blob))
                blob = &es[i];
        }
        if (img && blob && img != blob)
            blob->services = strv_append_missing(blob->services, img->services);
        free(parts[q].image);
        free(parts[q].blob);
    }
    free(parts);
    if (n > 1)
        qsort(es, n, sizeof(*es), cmp_entry);
    *ret = es;
    *ret_n = n;
}

void berth_store_entries_free(struct berth_store_entry *es, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (char **p = es[i].services; p && *p; p++)
            free(*p);
        free(es[i].services);
    }
    free(es);
}

int berth_store_gc(const char *root, const struct berth_store_users *users, bool dry_run,
                   void (*cb)(void *ud, const char *what, const char *name, uint64_t bytes),
                   void *ud, berth_error *err)
{
    struct berth_store_entry *es = NULL;
    size_t n = 0;
    _cleanup_free_ char *pdir = xasprintf("%s/blobs/.partial", root);
    _cleanup_free_ char *idir = xasprintf("%s/images", root);

    berth_store_list(root, users, &es, &n);
    sweep_some(pdir, dry_run, true, cb, ud);
    sweep(idir, dry_run, cb, ud);
    for (size_t i = 0; i < n; i++) {
        struct berth_store_entry *e = &es[i];
        if (e->services[0])
            continue;
        /* the image first: a blob without its image is re-unpacked,
         * an image without its blob still runs */
        if (e->has_image) {
            _cleanup_free_ char *p = xasprintf("%s/%s", idir, e->digest);
            if (cb)
                cb(ud, "image", e->digest, e->image_size);
            if (!dry_run) {
                /* hide it first so nothing sees a half-removed tree */
                _cleanup_free_ char *hidden =
                    xasprintf("%s/.gc-%s.%d", idir, e->digest, (int)getpid());
                if (rename(p, hidden) < 0 || berth_rm_rf(hidden, err) < 0) {
                    berth_store_entries_free(es, n);
                    return berth_error_set(err, errno, "removing '%s'", p);
                }
            }
        }
        if (e->has_blob) {
            _cleanup_free_ char *p = xasprintf("%s/blobs/sha256/%s", root, e->digest);
            if (cb)
                cb(ud, "blob", e->digest, e->blob_size);
            if (!dry_run && unlink(p) < 0 && errno != ENOENT) {
                berth_store_entries_free(es, n);
                return berth_error_set(err, errno, "removing '%s'", p);
            }
        }
    }
    berth_store_entries_free(es, n);
    return 0;
}
