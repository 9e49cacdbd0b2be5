#include "handover.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

int berth_handover_record_write(const char *path, const struct berth_handover_record *r,
                                berth_error *err)
{
    json_t *o =
        json_pack("{s:i, s:I, s:s, s:i, s:I}", "pid", (int)r->init_pid, "start_time",
                  (json_int_t)r->init_start, "cgroup", r->cgroup ? r->cgroup : "", "cgroup_levels",
                  (int)r->cgroup_levels, "started_at", (json_int_t)r->started_at);
    char *text = o ? json_dumps(o, JSON_SORT_KEYS) : NULL;
    int ret;

    json_decref(o);
    if (!text)
        return berth_error_set(err, ENOMEM, "encoding '%s'", path);
    ret = berth_write_file_atomic(path, text, strlen(text), 0600, err);
    free(text);
    return ret;
}

int berth_handover_record_read(const char *path, struct berth_handover_record *r, berth_error *err)
{
    return berth_handover_record_read_at(AT_FDCWD, path, r, err);
}

int berth_handover_record_read_at(int dfd, const char *path, struct berth_handover_record *r,
                                  berth_error *err)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    berth_error e = BERTH_ERROR_INIT;
    json_error_t jerr;
    json_t *o;
    const char *cg;

    memset(r, 0, sizeof(*r));
    /* one failed open when there is none (every service not running, at
     * every diff), not json_load_file's and an access() */
    if (berth_read_file_at(dfd, path, 1 << 20, &text, &len, err ? &e : NULL) < 0) {
        if (e.code && e.code != ENOENT)
            return berth_error_set(err, EINVAL, "%s", e.msg);
        return berth_error_set(err, ENOENT, "no container record '%s'", path);
    }
    o = json_loadb(text, len, 0, &jerr);
    if (!o)
        return berth_error_set(err, EINVAL, "reading '%s': %s", path, jerr.text);
    r->init_pid = (pid_t)json_integer_value(json_object_get(o, "pid"));
    r->init_start = (uint64_t)json_integer_value(json_object_get(o, "start_time"));
    cg = json_string_value(json_object_get(o, "cgroup"));
    r->cgroup = cg && *cg ? xstrdup(cg) : NULL;
    r->cgroup_levels = (unsigned)json_integer_value(json_object_get(o, "cgroup_levels"));
    r->started_at = json_integer_value(json_object_get(o, "started_at"));
    json_decref(o);
    if (r->init_pid <= 0 || !r->init_start) {
        berth_handover_record_release(r);
        return berth_error_set(err, EINVAL, "'%s' names no process", path);
    }
    return 0;
}

void berth_handover_record_remove(const char *path)
{
    unlink(path);
}

void berth_handover_record_release(struct berth_handover_record *r)
{
    free(r->cgroup);
    memset(r, 0, sizeof(*r));
}

uint64_t berth_handover_start_time(pid_t pid)
{
    _cleanup_free_ char *path = xasprintf("/proc/%d/stat", (int)pid);
    _cleanup_free_ char *text = NULL;
    berth_error e = BERTH_ERROR_INIT;
    char *p;

    if (pid <= 0 || berth_read_file(path, 4096, &text, NULL, &e) < 0)
        return 0;
    /* the name in parentheses may hold anything: fields count from the last ')' */
    p = strrchr(text, ')');
    if (!p)
        return 0;
    p++;
    /* after ')': field 3 (state) ... field 22 (starttime) */
    for (int field = 3; field < 22; field++) {
        p = strchr(p + 1, ' ');
        if (!p)
            return 0;
    }
    return strtoull(p + 1, NULL, 10);
}

int berth_handover_open_init(const struct berth_handover_record *r, berth_error *err)
{
    int fd = (int)syscall(SYS_pidfd_open, r->init_pid, 0);

    if (fd < 0)
        return berth_error_set(err, errno == ESRCH ? ESRCH : errno, "opening the init (pid %d)",
                               (int)r->init_pid);
    /* checked after the pidfd is open: it is the recorded process, or the
     * pid was reused and the start time differs */
    if (berth_handover_start_time(r->init_pid) != r->init_start) {
        close(fd);
        return berth_error_set(err, ESRCH, "the init (pid %d) is gone", (int)r->init_pid);
    }
    return fd;
}

bool berth_handover_orphan(int dfd, const char *path)
{
    struct berth_handover_record r;
    berth_error e = BERTH_ERROR_INIT;
    int fd;

    if (berth_handover_record_read_at(dfd, path, &r, NULL) < 0)
        return false;
    fd = berth_handover_open_init(&r, &e);
    berth_handover_record_release(&r);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

int berth_handover_take(int init_pidfd, int *ret_logr, int *ret_statusfd, berth_error *err)
{
    int logr = (int)syscall(SYS_pidfd_getfd, init_pidfd, BERTH_INIT_FD_LOG, 0);
    int statusfd;

    if (logr < 0)
        return berth_error_set(err, errno, "taking over the init's output pipe (pidfd_getfd)");
    statusfd = (int)syscall(SYS_pidfd_getfd, init_pidfd, BERTH_INIT_FD_KEEPER, 0);
    if (statusfd < 0) {
        close(logr);
        return berth_error_set(err, errno, "taking over the init's report socket (pidfd_getfd)");
    }
    *ret_logr = logr;
    *ret_statusfd = statusfd;
    return 0;
}

int berth_handover_read_report(int statusfd, int *ret_code)
{
    char ack = BERTH_HANDOVER_ACK;

    for (;;) {
        char buf[64];
        ssize_t n = recv(statusfd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
        char *end;
        long code;

        if (n == 0)
            return -1;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 0 : -1;
        }
        buf[n] = '\0';
        /* the init runs as the service, in the container: a strict parse,
         * and what does not parse is skipped */
        if (strncmp(buf, "exit ", 5))
            continue;
        errno = 0;
        code = strtol(buf + 5, &end, 10);
        if (errno || *end || end == buf + 5 || code < 0 || code > 255)
            continue;
        *ret_code = (int)code;
        send(statusfd, &ack, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        return 1;
    }
}
