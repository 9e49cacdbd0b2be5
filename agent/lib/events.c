#include "events.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "util.h"

int64_t berth_realtime_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void berth_format_time_us(int64_t us, int digits, char *buf, size_t len)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    size_t n;

    gmtime_r(&t, &tm);
    n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    if (digits == 3)
        snprintf(buf + n, len - n, ".%03dZ", (int)(us % 1000000 / 1000));
    else if (digits == 6)
        snprintf(buf + n, len - n, ".%06dZ", (int)(us % 1000000));
    else
        snprintf(buf + n, len - n, "Z");
}

/* RFC 3339: DATE ("T" or " ") TIME [.FRACTION] ("Z" | +HH:MM | -HH:MM) */
static int parse_rfc3339(const char *s, int64_t *ret_us)
{
    struct tm tm = {0};
    const char *p = strptime(s, "%Y-%m-%d", &tm);
    int64_t frac = 0, scale = 100000, off = 0;

    if (!p || (*p != 'T' && *p != 't' && *p != ' '))
        return -1;
    p = strptime(p + 1, "%H:%M:%S", &tm);
    if (!p)
        return -1;
    if (*p == '.') {
        if (!(p[1] >= '0' && p[1] <= '9'))
            return -1;
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
            frac += scale > 0 ? (*p - '0') * scale : 0;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int h, m;
        if (sscanf(p + 1, "%2d:%2d", &h, &m) != 2 || h > 23 || m > 59)
            return -1;
        off = (h * 3600 + m * 60) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    *ret_us = ((int64_t)timegm(&tm) - off) * 1000000 + frac;
    return 0;
}

int berth_parse_since(const char *s, int64_t now_us, int64_t *ret_us)
{
    uint64_t ms;

    if (parse_rfc3339(s, ret_us) == 0)
        return 0;
    if (berth_parse_duration(s, &ms) < 0 || (int64_t)ms * 1000 > now_us)
        return -1;
    *ret_us = now_us - (int64_t)ms * 1000;
    return 0;
}

static void set_str(json_t *o, const char *key, const char *v)
{
    if (!v)
        return;
    json_t *j = json_string(v);
    if (!j) {
        /* not UTF-8 (a check prints what it likes): '?' for those bytes */
        _cleanup_free_ char *copy = xstrdup(v);
        for (char *p = copy; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        j = json_string(copy);
    }
    json_object_set_new(o, key, j);
}

char *berth_event_json(const struct berth_event *ev)
{
    json_t *o = json_object();
    char when[40];
    char *text;

    berth_format_time_us(ev->time_us, 6, when, sizeof(when));
    set_str(o, "time", when);
    set_str(o, "service", ev->service);
    set_str(o, "cause", ev->cause);
    set_str(o, "from", ev->from);
    set_str(o, "to", ev->to);
    set_str(o, "message", ev->message);
    if (ev->has_exit)
        json_object_set_new(o, "exit",
                            json_pack("{s:i, s:o, s:b}", "code", ev->exit_code, "signal",
                                      ev->exit_signal ? json_integer(ev->exit_signal) : json_null(),
                                      "oom", ev->exit_oom));
    if (ev->pid)
        json_object_set_new(o, "pid", json_integer(ev->pid));
    if (ev->restarts >= 0)
        json_object_set_new(o, "restarts", json_integer(ev->restarts));
    if (ev->health) {
        json_t *h = json_object();
        _cleanup_free_ char *out = NULL;
        set_str(h, "status", ev->health);
        set_str(h, "result", ev->health_result);
        if (ev->health_output) {
            size_t n = strnlen(ev->health_output, BERTH_EVENT_OUTPUT_MAX);
            out = xmalloc(n + 1);
            memcpy(out, ev->health_output, n);
            out[n] = '\0';
            set_str(h, "output", out);
        }
        json_object_set_new(o, "health", h);
    }
    set_str(o, "action", ev->action);
    set_str(o, "spec", ev->spec);
    set_str(o, "rejected", ev->rejected);
    text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text)
        abort();
    return text;
}

static char *get_str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? xstrdup(s) : NULL;
}

int berth_event_parse(const char *line, size_t len, struct berth_event *ev)
{
    json_t *o = json_loadb(line, len, 0, NULL);
    json_t *ex, *h, *v;
    const char *t;

    memset(ev, 0, sizeof(*ev));
    ev->restarts = -1;
    t = json_string_value(json_object_get(o, "time"));
    if (!json_is_object(o) || !t || parse_rfc3339(t, &ev->time_us) < 0) {
        json_decref(o);
        return -1;
    }
    ev->service = get_str(o, "service");
    ev->cause = get_str(o, "cause");
    ev->from = get_str(o, "from");
    ev->to = get_str(o, "to");
    ev->message = get_str(o, "message");
    ex = json_object_get(o, "exit");
    if (json_is_object(ex)) {
        ev->has_exit = true;
        ev->exit_code = (int)json_integer_value(json_object_get(ex, "code"));
        ev->exit_signal = (int)json_integer_value(json_object_get(ex, "signal"));
        ev->exit_oom = json_is_true(json_object_get(ex, "oom"));
    }
    ev->pid = (pid_t)json_integer_value(json_object_get(o, "pid"));
    if (json_is_integer(v = json_object_get(o, "restarts")))
        ev->restarts = (int)json_integer_value(v);
    h = json_object_get(o, "health");
    if (json_is_object(h)) {
        ev->health = get_str(h, "status");
        ev->health_result = get_str(h, "result");
        ev->health_output = get_str(h, "output");
    }
    ev->action = get_str(o, "action");
    ev->spec = get_str(o, "spec");
    ev->rejected = get_str(o, "rejected");
    json_decref(o);
    if (!ev->cause) {
        berth_event_release(ev);
        return -1;
    }
    return 0;
}

void berth_event_release(struct berth_event *ev)
{
    free(ev->service);
    free(ev->cause);
    free(ev->from);
    free(ev->to);
    free(ev->message);
    free(ev->health);
    free(ev->health_result);
    free(ev->health_output);
    free(ev->action);
    free(ev->spec);
    free(ev->rejected);
    memset(ev, 0, sizeof(*ev));
}

void berth_events_free(struct berth_event *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        berth_event_release(&v[i]);
    free(v);
}

/* Past the bound, the file becomes events.1. Writers that opened it
 * before the rename append to events.1: nothing is lost, and the flock
 * makes sure only one of them renames (the others see that "events" is
 * another file by now). */
static int open_for_append(const char *dir, size_t len, berth_error *err)
{
    _cleanup_free_ char *path = xasprintf("%s/events", dir);
    _cleanup_free_ char *old = xasprintf("%s/events.1", dir);

    for (int attempt = 0; attempt < 3; attempt++) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        struct stat a, b;
        if (fd < 0)
            return berth_error_set(err, errno, "opening '%s'", path);
        if (fstat(fd, &a) < 0)
            return berth_error_set(err, errno, "reading '%s'", path);
        if ((uint64_t)a.st_size + len <= BERTH_EVENTS_MAX_SIZE || a.st_size == 0)
            return TAKE_FD(fd);
        if (flock(fd, LOCK_EX) < 0)
            return berth_error_set(err, errno, "locking '%s'", path);
        /* still the file named "events": no other writer rotated it */
        if (stat(path, &b) == 0 && a.st_ino == b.st_ino && rename(path, old) < 0)
            return berth_error_set(err, errno, "rotating '%s'", path);
    }
    return berth_error_set(err, EAGAIN, "rotating '%s': it keeps changing", path);
}

int berth_event_record(const char *dir, const struct berth_event *ev, berth_error *err)
{
    struct berth_event e = *ev;
    _cleanup_free_ char *base = NULL;
    _cleanup_free_ char *json = NULL;
    _cleanup_free_ char *line = NULL;
    _cleanup_close_ int fd = -1;
    size_t len;

    if (!e.time_us)
        e.time_us = berth_realtime_us();
    if (!e.service) {
        const char *slash = strrchr(dir, '/');
        base = xstrdup(slash ? slash + 1 : dir);
        e.service = base;
    }
    json = berth_event_json(&e);
    line = xasprintf("%s\n", json);
    len = strlen(line);
    fd = open_for_append(dir, len, err);
    if (fd < 0)
        return -1;
    /* one write: O_APPEND places it whole after every other record */
    ssize_t n = write(fd, line, len);
    if (n != (ssize_t)len)
        return berth_error_set(err, n < 0 ? errno : EIO, "writing '%s/events'", dir);
    return 0;
}

void berth_event_record_quiet(const char *dir, const struct berth_event *ev)
{
    berth_error err = BERTH_ERROR_INIT;

    if (berth_event_record(dir, ev, &err) < 0) {
        /* quiet, as its callers have nobody to tell */
    }
}

static void read_file_events(const char *path, int64_t since_us, struct berth_event **v, size_t *n)
{
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    berth_error e = BERTH_ERROR_INIT;

    if (berth_read_file(path, 4 * BERTH_EVENTS_MAX_SIZE, &data, &len, &e) < 0)
        return;
    berth_events_parse_lines(data, len, NULL, since_us, v, n);
}

size_t berth_events_parse_lines(const char *buf, size_t len, const char *service, int64_t since_us,
                                struct berth_event **v, size_t *n)
{
    const char *p = buf, *nl;

    /* a line without its newline is a record being written */
    while ((nl = memchr(p, '\n', (size_t)(buf + len - p)))) {
        struct berth_event ev;
        if (berth_event_parse(p, (size_t)(nl - p), &ev) == 0) {
            if (!ev.service && service)
                ev.service = xstrdup(service);
            if (ev.time_us >= since_us) {
                *v = xrealloc(*v, (*n + 1) * sizeof(**v));
                (*v)[(*n)++] = ev;
            } else {
                berth_event_release(&ev);
            }
        }
        p = nl + 1;
    }
    return (size_t)(p - buf);
}

int berth_events_read(const char *dir, int64_t since_us, struct berth_event **ret, size_t *ret_n,
                      berth_error *err)
{
    _cleanup_free_ char *cur = xasprintf("%s/events", dir);
    _cleanup_free_ char *old = xasprintf("%s/events.1", dir);

    *ret = NULL;
    *ret_n = 0;
    if (access(dir, F_OK) < 0)
        return berth_error_set(err, errno, "reading '%s'", dir);
    read_file_events(old, since_us, ret, ret_n);
    read_file_events(cur, since_us, ret, ret_n);
    return 0;
}

int berth_events_move(const char *dir, const char *to, berth_error *err)
{
    static const char *const files[] = {"events.1", "events"};

    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        _cleanup_free_ char *from = xasprintf("%s/%s", dir, files[i]);
        _cleanup_free_ char *dest = xasprintf("%s/%s", to, files[i]);
        if (rename(from, dest) < 0 && errno != ENOENT)
            return berth_error_set(err, errno, "keeping '%s' in '%s'", from, to);
    }
    return 0;
}
