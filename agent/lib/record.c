#include "record.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "container.h"
#include "handover.h"
#include "store.h"
#include "util.h"

const char *berth_record_file_name(enum berth_record_file f)
{
    static const char *const names[] = {
        [BERTH_RECORD_CONTAINER] = "container.json",
        [BERTH_RECORD_SPEC] = "spec.json",
        [BERTH_RECORD_HASH] = "spec.sha256",
        [BERTH_RECORD_PREVIOUS] = "previous",
        [BERTH_RECORD_PREVIOUS_SPEC] = "previous/spec.json",
        [BERTH_RECORD_PREVIOUS_HASH] = "previous/spec.sha256",
        [BERTH_RECORD_REJECTED] = "rejected.sha256",
        [BERTH_RECORD_STATUS] = "status.json",
        [BERTH_RECORD_KEEPER_LOCK] = "keeper.lock",
        [BERTH_RECORD_KEEPER_SOCK] = "keeper.sock",
        [BERTH_RECORD_INIT] = "init.json",
        [BERTH_RECORD_LOG] = "log",
    };
    return names[f];
}

char *berth_record_dir(const char *root, const char *name)
{
    return xasprintf("%s/services/%s", root, name);
}

char *berth_record_path(const char *dir, enum berth_record_file f)
{
    return xasprintf("%s/%s", dir, berth_record_file_name(f));
}

static char *record_path(const char *root, const char *name, enum berth_record_file f)
{
    _cleanup_free_ char *dir = berth_record_dir(root, name);
    return berth_record_path(dir, f);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int berth_records_open(const char *root, struct berth_records *ret, berth_error *err)
{
    _cleanup_free_ char *dir = xasprintf("%s/services", root);
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int fd = dfd < 0 ? -1 : fcntl(dfd, F_DUPFD_CLOEXEC, 0);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    struct dirent *de;

    memset(ret, 0, sizeof(*ret));
    ret->dfd = -1;
    if (dfd < 0 && errno == ENOENT)
        return 0;
    if (!d) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return berth_error_set(err, e, "opening '%s'", dir);
    }
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            berth_strv_push(&ret->names, &ret->n, de->d_name);
    closedir(d);
    if (ret->n > 1)
        qsort(ret->names, ret->n, sizeof(*ret->names), cmp_str);
    ret->dfd = TAKE_FD(dfd);
    return 0;
}

void berth_records_close(struct berth_records *recs)
{
    if (recs->dfd >= 0)
        close(recs->dfd);
    berth_strv_free(recs->names);
    memset(recs, 0, sizeof(*recs));
    recs->dfd = -1;
}

struct berth_record_at berth_records_at(const struct berth_records *recs, size_t i)
{
    return (struct berth_record_at){.dfd = recs->dfd, .dir = recs->names[i]};
}

int berth_record_list(const char *root, char ***ret_names, size_t *ret_n, berth_error *err)
{
    struct berth_records recs;

    *ret_names = NULL;
    *ret_n = 0;
    if (berth_records_open(root, &recs, err) < 0)
        return -1;
    *ret_names = TAKE_PTR(recs.names);
    *ret_n = recs.n;
    berth_records_close(&recs);
    return 0;
}

/* `f` of the record `at` into `buf`, to be opened relative to at->dfd;
 * false when the path does not fit */
static bool at_path(char buf[PATH_MAX], const struct berth_record_at *at, enum berth_record_file f)
{
    const char *file = berth_record_file_name(f);
    size_t d = strlen(at->dir), n = strlen(file);

    /* no snprintf: a diff makes two of these for every service */
    if (d + 1 + n >= PATH_MAX) {
        errno = ENAMETOOLONG;
        return false;
    }
    memcpy(buf, at->dir, d);
    buf[d] = '/';
    memcpy(buf + d + 1, file, n + 1);
    return true;
}

/* Keep the running version as previous/ (container.json, spec.json,
 * spec.sha256) for rollback; its image stays in the store (gc keeps what
 * previous/spec.json names). The new directory is complete before it
 * replaces the old one. */
static int keep_previous(const char *dir, berth_error *err)
{
    static const enum berth_record_file files[] = {BERTH_RECORD_CONTAINER, BERTH_RECORD_SPEC,
                                                   BERTH_RECORD_HASH};
    _cleanup_free_ char *prev = berth_record_path(dir, BERTH_RECORD_PREVIOUS);
    _cleanup_free_ char *tmp = xasprintf("%s.tmp", prev);
    _cleanup_free_ char *old = xasprintf("%s.old", prev);

    /* an incomplete record is nothing to go back to */
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        _cleanup_free_ char *p = berth_record_path(dir, files[i]);
        if (access(p, F_OK) < 0)
            return 0;
    }
    if (berth_rm_rf(tmp, err) < 0 || berth_rm_rf(old, err) < 0)
        return -1;
    if (mkdir(tmp, 0700) < 0)
        return berth_error_set(err, errno, "creating '%s'", tmp);
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        _cleanup_free_ char *from = berth_record_path(dir, files[i]);
        _cleanup_free_ char *to = berth_record_path(tmp, files[i]);
        if (link(from, to) < 0)
            return berth_error_set(err, errno, "keeping '%s' for rollback", from);
    }
    if (rename(prev, old) < 0 && errno != ENOENT)
        return berth_error_set(err, errno, "renaming '%s'", prev);
    if (rename(tmp, prev) < 0)
        return berth_error_set(err, errno, "renaming '%s'", tmp);
    return berth_rm_rf(old, err);
}

int berth_record_write(const char *root, const char *name, const struct berth_record_version *v,
                       bool keep_previous_version, berth_error *err)
{
    _cleanup_free_ char *dir = berth_record_dir(root, name);
    _cleanup_free_ char *conf = berth_record_path(dir, BERTH_RECORD_CONTAINER);
    _cleanup_free_ char *spec = berth_record_path(dir, BERTH_RECORD_SPEC);
    _cleanup_free_ char *hashp = berth_record_path(dir, BERTH_RECORD_HASH);
    _cleanup_free_ char *rejected = berth_record_path(dir, BERTH_RECORD_REJECTED);
    _cleanup_free_ char *hashline = xasprintf("%s\n", v->hash);

    if (berth_mkdir_p(dir, 0700, err) < 0 || (keep_previous_version && keep_previous(dir, err) < 0))
        return -1;
    /* from here until spec.sha256 is written the record is incomplete, and
     * a berth killed meanwhile is followed by a replace */
    unlink(hashp);
    unlink(rejected); /* a new spec: the rolled-back one no longer applies */
    if (berth_write_file_atomic(conf, v->container_json, strlen(v->container_json), 0600, err) <
            0 ||
        berth_write_file_atomic(spec, v->spec_json, strlen(v->spec_json), 0644, err) < 0)
        return -1;
    return berth_write_file_atomic(hashp, hashline, strlen(hashline), 0644, err);
}

bool berth_record_read_hash(const char *dir, enum berth_record_file f, char ret[65])
{
    struct berth_record_at at = {.dfd = AT_FDCWD, .dir = dir};
    return berth_record_read_hash_at(&at, f, ret);
}

/* one open, one read, one close, with no error message made: a diff
 * reads one of these for every service */
bool berth_record_read_hash_at(const struct berth_record_at *at, enum berth_record_file f,
                               char ret[65])
{
    char path[PATH_MAX];
    _cleanup_close_ int fd =
        at_path(path, at, f) ? openat(at->dfd, path, O_RDONLY | O_CLOEXEC) : -1;
    char buf[258];
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

    ret[0] = '\0';
    /* a regular file reads whole up to the count asked for; more than 256
     * bytes (rejected.sha256 has a second line) is no hash */
    if (n < 0 || n > 256)
        return false;
    buf[n] = '\0';
    if (strlen(buf) < 64)
        return false;
    memcpy(ret, buf, 64);
    ret[64] = '\0';
    return true;
}

char *berth_record_read_spec(const char *root, const char *name)
{
    _cleanup_free_ char *path = record_path(root, name, BERTH_RECORD_SPEC);
    char *text = NULL;
    berth_error e = BERTH_ERROR_INIT;

    return berth_read_file(path, 16 << 20, &text, NULL, &e) < 0 ? NULL : text;
}

void berth_record_forget_rejection(const char *root, const char *name)
{
    _cleanup_free_ char *path = record_path(root, name, BERTH_RECORD_REJECTED);
    unlink(path);
}

int berth_record_check_previous(const char *root, const char *name, berth_error *err)
{
    _cleanup_free_ char *path = record_path(root, name, BERTH_RECORD_PREVIOUS_HASH);

    if (access(path, F_OK) < 0)
        return berth_error_set(err, errno, "'%s' has no previous version to roll back to", name);
    return 0;
}

static int copy_file(const char *from, const char *to, berth_error *err)
{
    _cleanup_free_ char *data = NULL;
    size_t len;

    if (berth_read_file(from, 64 << 20, &data, &len, err) < 0)
        return -1;
    return berth_write_file_atomic(to, data, len, 0644, err);
}

/* rejected.sha256: the refused spec's hash, then its image's digest (for
 * the fact and `status --json`), in place of spec.sha256 */
static int mark_rejected(const char *dir, const char *hashp, const char *rejected, berth_error *err)
{
    _cleanup_free_ char *specp = berth_record_path(dir, BERTH_RECORD_SPEC);
    _cleanup_free_ char *hash = NULL, *text = NULL;
    json_t *spec = json_load_file(specp, 0, NULL);
    const char *image =
        json_string_value(json_object_get(json_object_get(spec, "image"), "digest"));

    if (berth_read_file(hashp, 128, &hash, NULL, err) < 0) {
        json_decref(spec);
        return -1;
    }
    hash[strcspn(hash, "\n")] = '\0';
    text = xasprintf("%s\n%s\n", hash, image ? image : "");
    json_decref(spec);
    if (berth_write_file_atomic(rejected, text, strlen(text), 0644, err) < 0)
        return -1;
    return unlink(hashp) < 0 ? berth_error_set(err, errno, "removing '%s'", hashp) : 0;
}

bool berth_record_read_rejected(const char *dir, char ret_hash[65], char **ret_image)
{
    struct berth_record_at at = {.dfd = AT_FDCWD, .dir = dir};
    return berth_record_read_rejected_at(&at, ret_hash, ret_image);
}

bool berth_record_read_rejected_at(const struct berth_record_at *at, char ret_hash[65],
                                   char **ret_image)
{
    char path[PATH_MAX];
    _cleanup_free_ char *text = NULL;
    char *image;

    *ret_image = NULL;
    if (!at_path(path, at, BERTH_RECORD_REJECTED) ||
        berth_read_file_at(at->dfd, path, 256, &text, NULL, NULL) < 0)
        return false;
    image = text + strcspn(text, "\n");
    if (*image)
        *image++ = '\0';
    image[strcspn(image, "\n")] = '\0';
    if (strlen(text) != 64)
        return false;
    memcpy(ret_hash, text, 65);
    *ret_image = *image ? xstrdup(image) : NULL;
    return true;
}

int berth_record_restore_previous(const char *root, const char *name, berth_error *err)
{
    static const enum berth_record_file files[] = {BERTH_RECORD_CONTAINER, BERTH_RECORD_SPEC};
    _cleanup_free_ char *dir = berth_record_dir(root, name);
    _cleanup_free_ char *prev = berth_record_path(dir, BERTH_RECORD_PREVIOUS);
    _cleanup_free_ char *hashp = berth_record_path(dir, BERTH_RECORD_HASH);
    _cleanup_free_ char *prev_hash = berth_record_path(dir, BERTH_RECORD_PREVIOUS_HASH);
    _cleanup_free_ char *rejected = berth_record_path(dir, BERTH_RECORD_REJECTED);

    /* remember what failed: the planner leaves that spec alone until the
     * file asks for something else */
    if (mark_rejected(dir, hashp, rejected, err) < 0)
        return berth_error_wrap(err, "marking the spec of '%s' rejected", name);
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        _cleanup_free_ char *from = berth_record_path(prev, files[i]);
        _cleanup_free_ char *to = berth_record_path(dir, files[i]);
        if (copy_file(from, to, err) < 0)
            return -1;
    }
    /* a fresh writable layer before the record is complete again */
    if (berth_container_layer_remove(dir, err) < 0)
        return -1;
    return copy_file(prev_hash, hashp, err);
}

int berth_record_status_write(const char *root, const char *name, const char *text,
                              berth_error *err)
{
    _cleanup_free_ char *path = record_path(root, name, BERTH_RECORD_STATUS);
    return berth_write_file_atomic(path, text, strlen(text), 0644, err);
}

int berth_record_status_load(const char *root, const char *name, json_t **ret, berth_error *err)
{
    _cleanup_free_ char *dir = berth_record_dir(root, name);
    struct berth_record_at at = {.dfd = AT_FDCWD, .dir = dir};

    return berth_record_status_load_at(&at, ret, err);
}

int berth_record_status_load_at(const struct berth_record_at *at, json_t **ret, berth_error *err)
{
    char path[PATH_MAX];
    _cleanup_free_ char *text = NULL;
    size_t len;
    berth_error e = BERTH_ERROR_INIT;
    json_error_t jerr;

    /* read whole rather than with json_load_file: a missing file (a record
     * being created, a service never started) costs one failed open, not
     * that and an access(), at every service of every diff */
    *ret = NULL;
    if (!at_path(path, at, BERTH_RECORD_STATUS))
        return berth_error_set(err, ENAMETOOLONG, "reading the status of '%s'", at->dir);
    if (berth_read_file_at(at->dfd, path, 1 << 20, &text, &len, err ? &e : NULL) < 0)
        return berth_error_set(err, e.code, "reading '%s'", path);
    *ret = json_loadb(text, len, 0, &jerr);
    if (!*ret)
        return berth_error_set(err, EINVAL, "'%s':%d:%d: %s", path, jerr.line, jerr.column,
                               jerr.text);
    return 0;
}

int berth_record_keeper_lock(const char *dir, int *ret_fd, berth_error *err)
{
    _cleanup_free_ char *lock = berth_record_path(dir, BERTH_RECORD_KEEPER_LOCK);
    char pid[32];

    *ret_fd = berth_lock_file(lock, 0644, false, err);
    if (*ret_fd < 0 && err->code == EWOULDBLOCK)
        return berth_error_set(err, EWOULDBLOCK, "another keeper runs '%s'", dir);
    if (*ret_fd < 0)
        return -1;
    snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(*ret_fd, 0) < 0 || pwrite(*ret_fd, pid, strlen(pid), 0) < 0)
        return berth_error_set(err, errno, "writing '%s'", lock);
    return 0;
}

bool berth_record_keeper_alive(const char *root, const char *name, pid_t *ret_pid)
{
    _cleanup_free_ char *dir = berth_record_dir(root, name);
    struct berth_record_at at = {.dfd = AT_FDCWD, .dir = dir};

    return berth_record_keeper_probe_at(&at, ret_pid) == BERTH_KEEPER_ALIVE;
}

enum berth_keeper_probe berth_record_keeper_probe_at(const struct berth_record_at *at,
                                                     pid_t *ret_pid)
{
    char path[PATH_MAX];
    _cleanup_close_ int fd = at_path(path, at, BERTH_RECORD_KEEPER_LOCK)
                                 ? openat(at->dfd, path, O_RDONLY | O_CLOEXEC)
                                 : -1;
    char buf[32] = "";

    if (fd < 0)
        return errno == ENOENT ? BERTH_KEEPER_NEVER : BERTH_KEEPER_GONE;
    /* the live keeper holds LOCK_EX; a shared lock is only granted when it is gone */
    if (flock(fd, LOCK_SH | LOCK_NB) == 0)
        return BERTH_KEEPER_GONE;
    if (ret_pid) {
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        *ret_pid = n > 0 ? (pid_t)atoi(buf) : 0;
    }
    return BERTH_KEEPER_ALIVE;
}

bool berth_record_orphaned(const char *dir)
{
    struct berth_record_at at = {.dfd = AT_FDCWD, .dir = dir};
    return berth_record_orphaned_at(&at);
}

bool berth_record_orphaned_at(const struct berth_record_at *at)
{
    char path[PATH_MAX];
    return at_path(path, at, BERTH_RECORD_INIT) && berth_handover_orphan(at->dfd, path);
}

/* "sha256:<hex>" of an "image" member (a string or {"digest": ...}): the hex */
static const char *image_digest(json_t *image)
{
    const char *d = json_is_string(image) ? json_string_value(image)
                                          : json_string_value(json_object_get(image, "digest"));
    return d && !strncmp(d, "sha256:", 7) && strlen(d) == 71 ? d + 7 : NULL;
}

/* Every "image" member anywhere in `j`: the spec format may nest it. */
static void collect_images(json_t *j, const char *who, struct berth_store_users *u, int depth)
{
    const char *key;
    json_t *v;
    size_t i;

    if (depth > 16)
        return;
    if (json_is_object(j)) {
        json_object_foreach(j, key, v)
        {
            const char *d = !strcmp(key, "image") ? image_digest(v) : NULL;
            if (d)
                berth_store_users_add(u, d, who);
            else
                collect_images(v, who, u, depth + 1);
        }
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v) collect_images(v, who, u, depth + 1);
    }
}

static int spec_images(const char *root, const char *name, enum berth_record_file f,
                       struct berth_store_users *u, berth_error *err)
{
    _cleanup_free_ char *dir = berth_record_dir(root, name);
    _cleanup_free_ char *p = berth_record_path(dir, f);
    _cleanup_free_ char *who =
        f == BERTH_RECORD_SPEC ? xstrdup(name) : xasprintf("%s (previous)", name);
    _cleanup_free_ char *data = NULL;
    size_t len;
    berth_error e = BERTH_ERROR_INIT;
    json_error_t je;
    json_t *j;

    if (berth_read_file(p, 16u << 20, &data, &len, &e) < 0) {
        if (e.code == ENOENT)
            return 0;
        *err = e;
        return -1;
    }
    j = json_loadb(data, len, 0, &je);
    if (!j)
        return berth_error_set(err, EINVAL, "parsing '%s': line %d: %s", p, je.line, je.text);
    collect_images(j, who, u, 0);
    json_decref(j);
    return 0;
}

int berth_record_images(const char *root, struct berth_store_users *ret, berth_error *err)
{
    char **names;
    size_t n;
    int r = 0;

    memset(ret, 0, sizeof(*ret));
    if (berth_record_list(root, &names, &n, err) < 0)
        return -1;
    for (size_t i = 0; i < n && r == 0; i++)
        if (spec_images(root, names[i], BERTH_RECORD_SPEC, ret, err) < 0 ||
            spec_images(root, names[i], BERTH_RECORD_PREVIOUS_SPEC, ret, err) < 0)
            r = -1;
    berth_strv_free(names);
    if (r < 0)
        berth_store_users_release(ret);
    return r;
}
