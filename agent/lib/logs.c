#include "logs.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "util.h"

uint64_t berth_log_index_max(uint64_t log_max_size)
{
    uint64_t m = log_max_size / 8;

    if (m < 4096)
        m = 4096;
    return m / sizeof(struct berth_log_stamp) * sizeof(struct berth_log_stamp);
}

struct stamps {
    struct berth_log_stamp *v;
    size_t n;
    uint64_t base;     /* of the file whose records are being added */
    uint64_t file_pos; /* how much of that index has been read */
};

/* Add the records of one index (of a file that begins at s->base in what
 * is read), from where the last call stopped; a record that goes back
 * (an index left behind by a keeper killed during a rotation) is skipped. */
static void stamps_add(struct stamps *s, int fd)
{
    struct berth_log_stamp buf[512];
    ssize_t got;

    while (fd >= 0 && (got = pread(fd, buf, sizeof(buf), (off_t)s->file_pos)) > 0) {
        size_t n = (size_t)got / sizeof(buf[0]);
        if (n == 0)
            break; /* a record being written */
        for (size_t i = 0; i < n; i++) {
            struct berth_log_stamp st = {buf[i].offset + s->base, buf[i].time_us};
            if (s->n && st.offset < s->v[s->n - 1].offset)
                continue;
            s->v = xrealloc(s->v, (s->n + 1) * sizeof(*s->v));
            s->v[s->n++] = st;
        }
        s->file_pos += n * sizeof(buf[0]);
    }
}

/* A file's first bytes have no time unless its index says so: its lines
 * must not take the previous file's last time. */
static void stamps_begin_file(struct stamps *s, uint64_t base)
{
    s->base = base;
    s->file_pos = 0;
    s->v = xrealloc(s->v, (s->n + 1) * sizeof(*s->v));
    s->v[s->n++] = (struct berth_log_stamp){base, 0};
}

/* The time of the byte at `pos`: the last record at or before it. */
static int64_t stamps_at(const struct stamps *s, uint64_t pos)
{
    size_t lo = 0, hi = s->n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->v[mid].offset <= pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? s->v[lo - 1].time_us : 0;
}

static bool wanted(const struct berth_log_read_options *o, int64_t t)
{
    return !o->since_us || (t && t >= o->since_us);
}

int berth_log_read(const char *logdir, const struct berth_log_read_options *o, berth_log_fn fn,
                   void *ud, struct berth_log_pos *ret_end, berth_error *err)
{
    _cleanup_free_ char *all = xstrdup("");
    struct stamps st = {0};
    size_t len = 0, total = 0, skip = 0;
    struct stat cur = {0};

    if (ret_end)
        *ret_end = (struct berth_log_pos){0};
    if (access(logdir, F_OK) < 0)
        return berth_error_set(err, errno, "reading the log in '%s'", logdir);
    /* the rotated files, oldest first, then current */
    for (int i = 99; i >= 0; i--) {
        _cleanup_free_ char *p =
            i ? xasprintf("%s/current.%d", logdir, i) : xasprintf("%s/current", logdir);
        _cleanup_free_ char *tp =
            i ? xasprintf("%s/times.%d", logdir, i) : xasprintf("%s/times", logdir);
        _cleanup_free_ char *data = NULL;
        _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
        size_t n = 0;
        berth_error e = BERTH_ERROR_INIT;
        if (fd < 0 || fstat(fd, &cur) < 0)
            continue;
        /* this very file: its inode tells a follower whether it was rotated since */
        _cleanup_free_ char *self = xasprintf("/proc/self/fd/%d", fd);
        if (berth_read_file(self, 1ULL << 32, &data, &n, &e) < 0)
            continue;
        _cleanup_close_ int tfd = open(tp, O_RDONLY | O_CLOEXEC);
        stamps_begin_file(&st, len);
        stamps_add(&st, tfd);
        all = xrealloc(all, len + n + 1);
        memcpy(all + len, data, n);
        len += n;
        all[len] = '\0';
        if (i == 0 && ret_end)
            *ret_end = (struct berth_log_pos){(uint64_t)cur.st_ino, n, true};
    }
    if (ret_end)
        ret_end->line_start = len == 0 || all[len - 1] == '\n';
    /* which lines: those since, and of them the last N */
    for (size_t p = 0; p < len;) {
        const char *nl = memchr(all + p, '\n', len - p);
        size_t end = nl ? (size_t)(nl - all) + 1 : len;
        total += wanted(o, stamps_at(&st, p));
        p = end;
    }
    if (o->lines >= 0 && (size_t)o->lines < total)
        skip = total - (size_t)o->lines;
    for (size_t p = 0; p < len;) {
        const char *nl = memchr(all + p, '\n', len - p);
        size_t end = nl ? (size_t)(nl - all) + 1 : len;
        int64_t t = stamps_at(&st, p);
        if (wanted(o, t)) {
            if (skip)
                skip--;
            else
                fn(all + p, end - p, t, true, ud);
        }
        p = end;
    }
    free(st.v);
    return 0;
}

/* One file of the log as it grows, with its index. */
struct tail {
    const char *logdir;
    const char *suffix; /* "" for current and times, ".1" for current.1 and times.1 */
    int fd, tfd;
    ino_t ino;
    uint64_t pos;
    struct stamps st;
    bool line_start;
};

static void tail_open(struct tail *t)
{
    _cleanup_free_ char *cur = xasprintf("%s/current%s", t->logdir, t->suffix);
    _cleanup_free_ char *times = xasprintf("%s/times%s", t->logdir, t->suffix);
    struct stat s;

    t->fd = open(cur, O_RDONLY | O_CLOEXEC);
    t->ino = t->fd >= 0 && fstat(t->fd, &s) == 0 ? s.st_ino : 0;
    /* the keeper writes a chunk's record before the chunk: once the bytes
     * are read, their record is there to read */
    t->tfd = open(times, O_RDONLY | O_CLOEXEC);
    t->st.n = 0;
    stamps_begin_file(&t->st, 0);
}

static void tail_close(struct tail *t)
{
    if (t->fd >= 0)
        close(t->fd);
    if (t->tfd >= 0)
        close(t->tfd);
    t->fd = t->tfd = -1;
}

/* Pass on what was appended, a line's start apart from its rest. */
static void tail_drain(struct tail *t, berth_log_fn fn, void *ud)
{
    char buf[65536];
    ssize_t n;

    while (t->fd >= 0 && (n = pread(t->fd, buf, sizeof(buf), (off_t)t->pos)) > 0) {
        if (t->tfd < 0) {
            _cleanup_free_ char *times = xasprintf("%s/times%s", t->logdir, t->suffix);
            t->tfd = open(times, O_RDONLY | O_CLOEXEC);
        }
        stamps_add(&t->st, t->tfd);
        for (ssize_t i = 0; i < n;) {
            const char *nl = memchr(buf + i, '\n', (size_t)(n - i));
            ssize_t end = nl ? nl - buf + 1 : n;
            fn(buf + i, (size_t)(end - i), stamps_at(&t->st, t->pos + (uint64_t)i), t->line_start,
               ud);
            t->line_start = nl != NULL;
            i = end;
        }
        t->pos += (uint64_t)n;
    }
}

/* The file that was read is no longer `current`: the rest of it (now
 * current.1, unless rotated further: then it is gone from view) first. */
static void tail_catch_up(const char *logdir, const struct berth_log_pos *from, bool *line_start,
                          berth_log_fn fn, void *ud)
{
    struct tail old = {.logdir = logdir, .suffix = ".1", .fd = -1, .tfd = -1};

    tail_open(&old);
    old.line_start = from->line_start;
    if (old.fd >= 0 && old.ino == from->ino) {
        old.pos = from->offset;
        tail_drain(&old, fn, ud);
        *line_start = old.line_start;
    }
    tail_close(&old);
    free(old.st.v);
}

int berth_log_follow(const char *logdir, const struct berth_log_pos *from, berth_log_fn fn,
                     void *ud, berth_error *err)
{
    _cleanup_close_ int in = inotify_init1(IN_CLOEXEC);
    _cleanup_free_ char *cur = xasprintf("%s/current", logdir);
    struct tail t = {
        .logdir = logdir, .suffix = "", .fd = -1, .tfd = -1, .line_start = from->line_start};
    char ev[4096];
    int r = 0;

    if (in < 0 || inotify_add_watch(in, logdir, IN_MODIFY | IN_CREATE | IN_MOVED_TO) < 0)
        return berth_error_set(err, errno, "watching '%s'", logdir);
    tail_open(&t);
    if (from->ino && t.ino != from->ino)
        tail_catch_up(logdir, from, &t.line_start, fn, ud);
    else
        t.pos = from->offset;
    for (;;) {
        struct stat s;
        tail_drain(&t, fn, ud);
        if (read(in, ev, sizeof(ev)) < 0 && errno != EINTR) {
            r = berth_error_set(err, errno, "watching '%s'", logdir);
            break;
        }
        /* rotated: the rest of the old file, then the new one from its start */
        if (t.fd < 0 || (stat(cur, &s) == 0 && s.st_ino != t.ino)) {
            tail_drain(&t, fn, ud);
            tail_close(&t);
            tail_open(&t);
            t.pos = 0;
        }
    }
    tail_close(&t);
    free(t.st.v);
    return r;
}
