#include "history.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply.h"
#include "record.h"
#include "util.h"

/* One service's events file, read as it grows. */
struct source {
    char *name;
    char *dir;
    int fd;      /* "events", -1 while there is none */
    ino_t ino;   /* of fd */
    off_t off;   /* what has been read: up to the last complete line */
    bool follow; /* a removed service's: read once */
};

/* Read what was appended since the last call: its complete lines. */
static void source_read(struct source *s, int64_t since, struct berth_event **v, size_t *n)
{
    char buf[65536];
    ssize_t got;

    while (s->fd >= 0 && (got = pread(s->fd, buf, sizeof(buf), s->off)) > 0) {
        size_t used = berth_events_parse_lines(buf, (size_t)got, s->name, since, v, n);
        if (used == 0)
            break; /* a line being written (or one longer than buf: never ours) */
        s->off += (off_t)used;
    }
}

/* (Re)open "events" when it is new or was rotated: what is left of the old
 * one first. */
static void source_reopen(struct source *s, int64_t since, struct berth_event **v, size_t *n)
{
    _cleanup_free_ char *path = xasprintf("%s/events", s->dir);
    struct stat st;

    if (stat(path, &st) < 0 || (s->fd >= 0 && st.st_ino == s->ino))
        return;
    source_read(s, since, v, n);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = open(path, O_RDONLY | O_CLOEXEC);
    s->off = 0;
    if (s->fd >= 0 && fstat(s->fd, &st) == 0)
        s->ino = st.st_ino;
}

static int cmp_time(const void *a, const void *b)
{
    const struct berth_event *x = a, *y = b;
    return x->time_us < y->time_us ? -1 : x->time_us > y->time_us;
}

/* Hand a batch to the caller, merged by time: one service's are in order
 * already, several are interleaved. */
static void deliver(struct berth_event *v, size_t n, berth_events_fn fn, void *ud)
{
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_time);
    fn(ud, v, n);
    berth_events_free(v, n);
}

static void add_source(struct source **srcs, size_t *n, const char *name, char *dir, bool follow)
{
    *srcs = xrealloc(*srcs, (*n + 1) * sizeof(**srcs));
    (*srcs)[(*n)++] = (struct source){xstrdup(name), dir, -1, 0, 0, follow};
}

/* The services to read: NAME... (a removed one's kept events), or all. */
static int find_sources(const char *root, char **names, size_t nnames, struct source **srcs,
                        size_t *n, berth_error *err)
{
    if (nnames == 0) {
        _cleanup_free_ char *dir = xasprintf("%s/services", root);
        DIR *d = opendir(dir);
        struct dirent *de;
        while (d && (de = readdir(d)))
            if (de->d_name[0] != '.')
                add_source(srcs, n, de->d_name, berth_record_dir(root, de->d_name), true);
        if (d)
            closedir(d);
        /* and what is kept of removed services (NAME@TIME), read once */
        _cleanup_free_ char *removed = xasprintf("%s/removed", root);
        d = opendir(removed);
        while (d && (de = readdir(d))) {
            char *at = strrchr(de->d_name, '@');
            if (de->d_name[0] == '.' || !at)
                continue;
            _cleanup_free_ char *name = strndup(de->d_name, (size_t)(at - de->d_name));
            add_source(srcs, n, name, xasprintf("%s/%s", removed, de->d_name), false);
        }
        if (d)
            closedir(d);
        return 0;
    }
    for (size_t i = 0; i < nnames; i++) {
        int64_t removed_at;
        char *dir;
        if (berth_service_history_dir(root, names[i], &dir, &removed_at, err) < 0)
            return -1;
        add_source(srcs, n, names[i], dir, removed_at == 0);
    }
    return 0;
}

static void read_old(const struct source *s, int64_t since, struct berth_event **v, size_t *n)
{
    _cleanup_free_ char *path = xasprintf("%s/events.1", s->dir);
    struct source old = {s->name, (char *)s->dir, open(path, O_RDONLY | O_CLOEXEC), 0, 0, false};

    source_read(&old, since, v, n);
    if (old.fd >= 0)
        close(old.fd);
}

static int follow(const char *root, struct source **srcs, size_t *nsrcs, bool all, int64_t since,
                  berth_events_fn fn, void *ud)
{
    _cleanup_close_ int in = inotify_init1(IN_CLOEXEC);
    _cleanup_free_ char *services = xasprintf("%s/services", root);
    char buf[4096];

    if (in < 0)
        return -1;
    for (size_t i = 0; i < *nsrcs; i++)
        if ((*srcs)[i].follow)
            inotify_add_watch(in, (*srcs)[i].dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO);
    if (all && inotify_add_watch(in, services, IN_CREATE | IN_MOVED_TO) < 0 && errno != ENOENT)
        return -1;
    for (;;) {
        struct berth_event *v = NULL;
        size_t n = 0;
        if (read(in, buf, sizeof(buf)) < 0 && errno != EINTR)
            return -1;
        if (all) { /* a new service */
            DIR *d = opendir(services);
            struct dirent *de;
            while (d && (de = readdir(d))) {
                bool known = de->d_name[0] == '.';
                for (size_t i = 0; i < *nsrcs && !known; i++)
                    known = !strcmp((*srcs)[i].name, de->d_name);
                if (known)
                    continue;
                add_source(srcs, nsrcs, de->d_name, berth_record_dir(root, de->d_name), true);
                inotify_add_watch(in, (*srcs)[*nsrcs - 1].dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO);
                read_old(&(*srcs)[*nsrcs - 1], since, &v, &n);
            }
            if (d)
                closedir(d);
        }
        for (size_t i = 0; i < *nsrcs; i++) {
            if (!(*srcs)[i].follow)
                continue;
            source_reopen(&(*srcs)[i], since, &v, &n);
            source_read(&(*srcs)[i], since, &v, &n);
        }
        deliver(v, n, fn, ud);
    }
}

static void sources_free(struct source *srcs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (srcs[i].fd >= 0)
            close(srcs[i].fd);
        free(srcs[i].name);
        free(srcs[i].dir);
    }
    free(srcs);
}

int berth_events_watch(const char *root, char **names, size_t nnames, int64_t since_us,
                       bool follow_on, berth_events_fn fn, void *ud, berth_error *err)
{
    struct source *srcs = NULL;
    size_t nsrcs = 0;
    struct berth_event *v = NULL;
    size_t n = 0;
    int rc = 0;

    if (find_sources(root, names, nnames, &srcs, &nsrcs, err) < 0) {
        sources_free(srcs, nsrcs);
        return -1;
    }
    for (size_t i = 0; i < nsrcs; i++) {
        read_old(&srcs[i], since_us, &v, &n);
        source_reopen(&srcs[i], since_us, &v, &n);
        source_read(&srcs[i], since_us, &v, &n);
    }
    deliver(v, n, fn, ud);
    if (follow_on && follow(root, &srcs, &nsrcs, nnames == 0, since_us, fn, ud) < 0)
        rc = berth_error_set(err, errno, "following the events under '%s'", root);
    sources_free(srcs, nsrcs);
    return rc;
}
