/* berth events: the history of the services: every transition of their
 * keepers and what apply and the agent did to them, with the causes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>

#include "apply.h"
#include "cmd.h"
#include "events.h"
#include "record.h"
#include "util.h"

static const char usage_text[] =
    "Usage: berth events [--since TIME] [-f] [--json] [--root DIR] [NAME...]\n"
    "\n"
    "What happened to the services (NAME...: those only), oldest first: each\n"
    "start, each exit with its cause, each stop and restart request, health\n"
    "changes, adoptions by a new keeper, and what apply and the agent did\n"
    "(create, replace, remove, rollback). Causes: start, start-failed, exit\n"
    "(it exited by itself), signal (a signal berth did not send), oom (killed\n"
    "by the OOM killer: a SIGKILL while its cgroup's OOM kill count rose), stop\n"
    "(berth stop, apply, SIGTERM to its keeper), restart (berth restart),\n"
    "unhealthy, healthy, stop-timeout (SIGKILL after the stop timeout),\n"
    "keeper-gone (its last keeper was killed or crashed), adopted (a new keeper\n"
    "took its running container over), apply, rollback.\n"
    "Read from ROOT/services/NAME/events (and events.1: each service keeps the\n"
    "last 64 to 128 KiB); needs no daemon. A removed service's events are kept\n"
    "with its log in ROOT/removed/NAME@TIME/ for 7 days: without NAME they are\n"
    "among the others; NAME of a removed service shows its newest.\n"
    "\n"
    "Options:\n"
    "      --since TIME  only events from TIME on: RFC 3339\n"
    "                    (2026-12-07T16:00:00Z, 2026-12-07T17:00:00+01:00)\n"
    "                    or a duration back from now (10m, 1h, 30s)\n"
    "  -f, --follow      keep printing events as they happen\n"
    "      --json        one JSON object per line, as in the events file:\n"
    "                    {\"time\", \"service\", \"cause\", \"from\", \"to\",\n"
    "                    \"message\", \"exit\": {\"code\", \"signal\", \"oom\"},\n"
    "                    \"pid\", \"restarts\", \"health\": {\"status\", \"result\",\n"
    "                    \"output\"}, \"action\", \"spec\", \"rejected\"}\n"
    "      --root DIR    state directory (default " BERTH_DEFAULT_ROOT ")\n"
    "  -h, --help        this help\n";

/* One service's events file, read as it grows. */
struct source {
    char *name;
    char *dir;
    int fd;      /* "events", -1 while there is none */
    ino_t ino;   /* of fd */
    off_t off;   /* what has been read: up to the last complete line */
    bool follow; /* a removed service's: read once */
};

static void print_event(const struct berth_event *ev, bool json)
{
    char when[40];

    if (json) {
        _cleanup_free_ char *text = berth_event_json(ev);
        puts(text);
        return;
    }
    berth_format_time_us(ev->time_us, 3, when, sizeof(when));
    printf("%s  %-12s %-12s %-9s -> %-11s ", when, ev->service ? ev->service : "-", ev->cause,
           ev->from ? ev->from : "-", ev->to ? ev->to : "-");
    berth_print_container_text(ev->message ? ev->message : "",
                               strlen(ev->message ? ev->message : ""));
    putchar('\n');
    /* a failing check's output says why */
    const char *out = ev->health && !strcmp(ev->health, "unhealthy") ? ev->health_output : NULL;
    if (out)
        berth_print_container_lines(out);
}

/* Read what was appended since the last call: its complete lines. */
static void source_read(struct source *s, int64_t since, struct berth_event **v, size_t *n)
{
    char buf[65536];
    ssize_t got;

    while (s->fd >= 0 && (got = pread(s->fd, buf, sizeof(buf), s->off)) > 0) {
        char *p = buf, *end = buf + got;
        char *nl;
        while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
            struct berth_event ev;
            if (berth_event_parse(p, (size_t)(nl - p), &ev) == 0) {
                if (!ev.service)
                    ev.service = xstrdup(s->name);
                if (ev.time_us >= since) {
                    *v = xrealloc(*v, (*n + 1) * sizeof(**v));
                    (*v)[(*n)++] = ev;
                } else {
                    berth_event_release(&ev);
                }
            }
            p = nl + 1;
        }
        if (p == buf)
            break; /* a line being written (or one longer than buf: never ours) */
        s->off += p - buf;
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

static void print_sorted(struct berth_event *v, size_t n, bool json)
{
    /* one service's are in order already; the merge of several is by time */
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_time);
    for (size_t i = 0; i < n; i++)
        print_event(&v[i], json);
    berth_events_free(v, n);
    fflush(stdout);
}

static void add_source(struct source **srcs, size_t *n, const char *name, char *dir, bool follow)
{
    *srcs = xrealloc(*srcs, (*n + 1) * sizeof(**srcs));
    (*srcs)[(*n)++] = (struct source){xstrdup(name), dir, -1, 0, 0, follow};
}

/* The services to read: NAME... (a removed one's kept events), or all. */
static int find_sources(const char *root, char **names, int nnames, struct source **srcs, size_t *n)
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
    for (int i = 0; i < nnames; i++) {
        berth_error err = BERTH_ERROR_INIT;
        int64_t removed_at;
        char *dir;
        if (berth_service_history_dir(root, names[i], &dir, &removed_at, &err) < 0) {
            berth_print_error("events", &err);
            return -1;
        }
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
                  bool json)
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
        print_sorted(v, n, json);
    }
}

int cmd_events(int argc, char **argv, struct berth_globals *g)
{
    enum { OPT_SINCE = 0x2001, OPT_JSON };
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"since", required_argument, NULL, OPT_SINCE},
        {"follow", no_argument, NULL, 'f'},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int64_t since = 0;
    bool fol = false, json = false;
    struct source *srcs = NULL;
    size_t nsrcs = 0;
    struct berth_event *v = NULL;
    size_t n = 0;
    int c, rc = EXIT_OK;

    struct berth_getopt o = {"events", usage_text, "fhqv", longopts, g, NULL, 0};
    while ((c = berth_getopt(argc, argv, &o)) != -1) {
        switch (c) {
        case BERTH_OPT_EXIT:
            return o.exit;
        case OPT_SINCE:
            if ((rc = berth_since_option("events", optarg, &since)))
                return rc;
            break;
        case 'f':
            fol = true;
            break;
        case OPT_JSON:
            json = true;
            break;
        }
    }
    if (find_sources(g->root, argv + optind, argc - optind, &srcs, &nsrcs) < 0)
        return EXIT_FAIL;
    for (size_t i = 0; i < nsrcs; i++) {
        read_old(&srcs[i], since, &v, &n);
        source_reopen(&srcs[i], since, &v, &n);
        source_read(&srcs[i], since, &v, &n);
    }
    if (!json && !fol && n == 0)
        fprintf(stderr, "berth events: no events%s\n", since ? " since then" : "");
    print_sorted(v, n, json);
    if (fol && follow(g->root, &srcs, &nsrcs, optind == argc, since, json) < 0) {
        berth_die_msg("events", "following the events under '%s': %s", g->root, strerror(errno));
        rc = EXIT_FAIL;
    }
    for (size_t i = 0; i < nsrcs; i++) {
        if (srcs[i].fd >= 0)
            close(srcs[i].fd);
        free(srcs[i].name);
        free(srcs[i].dir);
    }
    free(srcs);
    return rc;
}
