#include "systemd.h"

#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "util.h"

#define SD_FUNCTIONS(X)                                                                          \
    X(int, sd_bus_new, (sd_bus * *ret))                                                          \
    X(int, sd_bus_set_address, (sd_bus * bus, const char *address))                              \
    X(int, sd_bus_start, (sd_bus * bus))                                                         \
    X(int, sd_bus_open_system, (sd_bus * *ret))                                                  \
    X(sd_bus *, sd_bus_flush_close_unref, (sd_bus * bus))                                        \
    X(int, sd_bus_match_signal,                                                                  \
      (sd_bus * bus, sd_bus_slot * *ret, const char *sender, const char *path,                   \
       const char *interface, const char *member, sd_bus_message_handler_t callback,             \
       void *userdata))                                                                          \
    X(int, sd_bus_call_method,                                                                   \
      (sd_bus * bus, const char *destination, const char *path, const char *interface,           \
       const char *member, sd_bus_error *ret_error, sd_bus_message **reply, const char *types,   \
       ...))                                                                                     \
    X(int, sd_bus_message_new_method_call,                                                       \
      (sd_bus * bus, sd_bus_message * *m, const char *destination, const char *path,             \
       const char *interface, const char *member))                                               \
    X(int, sd_bus_message_append, (sd_bus_message * m, const char *types, ...))                  \
    X(int, sd_bus_message_open_container, (sd_bus_message * m, char type, const char *contents)) \
    X(int, sd_bus_message_close_container, (sd_bus_message * m))                                 \
    X(int, sd_bus_message_read, (sd_bus_message * m, const char *types, ...))                    \
    X(sd_bus_message *, sd_bus_message_unref, (sd_bus_message * m))                              \
    X(int, sd_bus_call,                                                                          \
      (sd_bus * bus, sd_bus_message * m, uint64_t usec, sd_bus_error * ret_error,                \
       sd_bus_message * *reply))                                                                 \
    X(int, sd_bus_process, (sd_bus * bus, sd_bus_message * *r))                                  \
    X(int, sd_bus_wait, (sd_bus * bus, uint64_t timeout_usec))                                   \
    X(void, sd_bus_error_free, (sd_bus_error * e))                                               \
    X(int, sd_bus_error_has_name, (const sd_bus_error *e, const char *name))

static struct {
#define FIELD(ret, name, args) ret(*name) args;
    SD_FUNCTIONS(FIELD)
#undef FIELD
} sd;

static bool load(void)
{
    static int loaded = -1;
    char why[256];
    void *h;

    if (loaded >= 0)
        return loaded;
    loaded = 0;
    h = berth_dlopen_host("libsystemd.so.0", why, sizeof(why));
    if (!h)
        return false;
#define SYM(ret, name, args)                     \
    if (!(*(void **)&sd.name = dlsym(h, #name))) \
        return false;
    SD_FUNCTIONS(SYM)
#undef SYM
    loaded = 1;
    return true;
}

bool berth_systemd_booted(void)
{
    return access("/run/systemd/system", F_OK) == 0;
}

/* The notify protocol is one datagram to the AF_UNIX socket that
 * $NOTIFY_SOCKET names ("@" for the abstract namespace; sd_notify(3)),
 * written here: libsystemd and what it loads (liblzma, libzstd, liblz4,
 * libgcrypt) added 1.1 MB to the agent's RSS for a few bytes. systemd takes
 * the sender's pid from the socket's credentials. */
void berth_systemd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = path ? strlen(path) : 0;
    int fd;

    if (n < 2 || n >= sizeof(sa.sun_path) || (path[0] != '/' && path[0] != '@'))
        return;
    memcpy(sa.sun_path, path, n);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    (void)!sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
                  (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
    close(fd);
}

/* systemd's own socket first: it needs no D-Bus daemon (systemctl does the
 * same as root); the system bus where that is not ours to use. */
static int bus_open(sd_bus **ret, berth_error *err)
{
    sd_bus *bus = NULL;
    int r;

    if (!load())
        return berth_error_set(err, 0, "cannot load libsystemd.so.0: %s", dlerror());
    if (geteuid() == 0 && access("/run/systemd/private", F_OK) == 0 && sd.sd_bus_new(&bus) >= 0) {
        if (sd.sd_bus_set_address(bus, "unix:path=/run/systemd/private") >= 0 &&
            sd.sd_bus_start(bus) >= 0) {
            *ret = bus;
            return 0;
        }
        sd.sd_bus_flush_close_unref(bus);
    }
    r = sd.sd_bus_open_system(ret);
    if (r < 0)
        return berth_error_set(err, -r, "connecting to systemd");
    return 0;
}

struct job_wait {
    const char *job;
    char result[32];
};

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
    struct job_wait *w = userdata;
    const char *path, *unit, *result;
    uint32_t id;

    (void)e;
    if (sd.sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) >= 0 && !strcmp(path, w->job))
        snprintf(w->result, sizeof(w->result), "%s", result);
    return 0;
}

static int append_props(sd_bus_message *m, const char *description)
{
    int r = sd.sd_bus_message_open_container(m, 'a', "(sv)");

    if (r >= 0)
        r = sd.sd_bus_message_append(
            m, "(sv)(sv)(sv)(sv)(sv)(sv)(sv)(sv)", "Description", "s", description, "Slice", "s",
            BERTH_SYSTEMD_SLICE, "Delegate", "b", 1, "TasksMax", "t", UINT64_MAX, "PIDs", "au", 1,
            (uint32_t)getpid(), "CollectMode", "s", "inactive-or-failed", "Wants", "as", 1,
            BERTH_SYSTEMD_SHUTDOWN_UNIT, "Before", "as", 1, BERTH_SYSTEMD_SHUTDOWN_UNIT);
    if (r >= 0)
        r = sd.sd_bus_message_close_container(m);
    if (r >= 0)
        r = sd.sd_bus_message_append(m, "a(sa(sv))", 0);
    return r;
}

/* One StartTransientUnit; the job's path in `job` (128 bytes). 1 when a
 * unit of that name exists still. */
static int start_transient(sd_bus *bus, const char *unit, const char *description, char *job,
                           berth_error *err)
{
    sd_bus_message *m = NULL, *reply = NULL;
    sd_bus_error e = SD_BUS_ERROR_NULL;
    const char *path;
    int r;

    r = sd.sd_bus_message_new_method_call(bus, &m, "org.freedesktop.systemd1",
                                          "/org/freedesktop/systemd1",
                                          "org.freedesktop.systemd1.Manager", "StartTransientUnit");
    if (r >= 0)
        r = sd.sd_bus_message_append(m, "ss", unit, "fail");
    if (r >= 0)
        r = append_props(m, description);
    if (r < 0) {
        sd.sd_bus_message_unref(m);
        return berth_error_set(err, -r, "building the request for '%s'", unit);
    }
    r = sd.sd_bus_call(bus, m, 10 * 1000000ULL, &e, &reply);
    sd.sd_bus_message_unref(m);
    if (r < 0) {
        bool exists = sd.sd_bus_error_has_name(&e, "org.freedesktop.systemd1.UnitExists");
        berth_error_set(err, 0, "systemd refused the scope '%s': %s", unit,
                        e.message ? e.message : strerror(-r));
        sd.sd_bus_error_free(&e);
        return exists ? 1 : -1;
    }
    r = sd.sd_bus_message_read(reply, "o", &path);
    if (r >= 0)
        snprintf(job, 128, "%s", path);
    sd.sd_bus_message_unref(reply);
    return r < 0 ? berth_error_set(err, -r, "reading systemd's answer for '%s'", unit) : 0;
}

int berth_systemd_start_scope(const char *unit, const char *description, berth_error *err)
{
    sd_bus *bus = NULL;
    char job[128] = "";
    struct job_wait w = {.job = job};
    uint64_t deadline = berth_now_ms() + 10000;
    int r;

    if (bus_open(&bus, err) < 0)
        return -1;
    /* subscribe before the call: the job may be done before it returns */
    r = sd.sd_bus_match_signal(bus, NULL, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                               "org.freedesktop.systemd1.Manager", "JobRemoved", on_job_removed,
                               &w);
    if (r >= 0)
        r = sd.sd_bus_call_method(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                  "org.freedesktop.systemd1.Manager", "Subscribe", NULL, NULL, "");
    if (r < 0) {
        berth_error_set(err, -r, "subscribing to systemd's jobs");
        goto out;
    }
    /* a scope of the same name is still there while its last processes
     * (the previous keeper's) exit: no event tells us when it is gone */
    while ((r = start_transient(bus, unit, description, job, err)) == 1 &&
           berth_now_ms() < deadline)
        poll(NULL, 0, 50);
    if (r != 0) {
        r = -1;
        goto out;
    }
    while (!w.result[0]) {
        uint64_t now = berth_now_ms();
        if (now >= deadline) {
            r = berth_error_set(err, ETIMEDOUT, "waiting for systemd to start the scope '%s'",
                                unit);
            goto out;
        }
        r = sd.sd_bus_process(bus, NULL);
        if (r < 0) {
            berth_error_set(err, -r, "talking to systemd");
            goto out;
        }
        if (r == 0)
            sd.sd_bus_wait(bus, (deadline - now) * 1000);
    }
    r = strcmp(w.result, "done")
            ? berth_error_set(err, 0, "systemd could not start the scope '%s' (%s)", unit, w.result)
            : 0;
out:
    sd.sd_bus_flush_close_unref(bus);
    return r;
}
