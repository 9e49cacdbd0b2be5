/* berth logs: a service's captured stdout and stderr. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apply.h"
#include "cmd.h"
#include "keeper.h"
#include "util.h"

static const char usage_text[] =
    "Usage: berth logs [-f] [-n N] [--root DIR] NAME\n"
    "\n"
    "Print what service NAME wrote to stdout and stderr, oldest first, from the\n"
    "rotated files under ROOT/services/NAME/log/. Lines starting with\n"
    "\"[berth TIME]\" come from its keeper (starts, exits with their codes,\n"
    "restarts and their delays, OOM kills, health changes), with the time in UTC.\n"
    "On a terminal, control characters the service wrote (escape sequences) are\n"
    "shown as \\xNN instead of reaching the terminal; through a pipe the bytes\n"
    "pass unchanged.\n"
    "The log of a service that 'berth apply' removed is kept for 7 days in\n"
    "ROOT/removed/NAME@TIME/ (unless --purge): NAME then prints the newest.\n"
    "\n"
    "Options:\n"
    "  -n, --lines N   only the last N lines\n"
    "  -f, --follow    keep printing what it writes (across rotations)\n"
    "  -h, --help      this help\n";

/* On a terminal, what a container wrote must not drive the terminal: its
 * control characters (ESC and the other C0 ones but tab and newline, DEL,
 * and the C1 ones as UTF-8, U+0080..U+009F) are shown as \xNN. Through a
 * pipe or into a file the bytes pass unchanged. */
void berth_print_container_text(const char *buf, size_t len)
{
    static int tty = -1;

    if (tty < 0)
        tty = isatty(STDOUT_FILENO);
    if (!tty) {
        fwrite(buf, 1, len, stdout);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == 0xc2 && i + 1 < len && (unsigned char)buf[i + 1] >= 0x80 &&
            (unsigned char)buf[i + 1] <= 0x9f) {
            printf("\\xc2\\x%02x", (unsigned char)buf[++i]);
        } else if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
            printf("\\x%02x", c);
        } else {
            putchar(c);
        }
    }
}

static void print_tail(const char *data, size_t len, long lines)
{
    const char *start = data;

    if (lines >= 0) {
        const char *p = data + len;
        long seen = 0;
        if (p > data && p[-1] == '\n')
            p--;
        while (p > data) {
            if (p[-1] == '\n' && ++seen == lines)
                break;
            p--;
        }
        start = lines == 0 ? data + len : p;
    }
    berth_print_container_text(start, (size_t)(data + len - start));
}

/* All rotated files, oldest first, concatenated. */
static char *read_all(const char *logdir, unsigned *ret_max, size_t *ret_len)
{
    char *all = xstrdup("");
    size_t len = 0;

    for (int i = 99; i >= 0; i--) {
        _cleanup_free_ char *p =
            i ? xasprintf("%s/current.%d", logdir, i) : xasprintf("%s/current", logdir);
        _cleanup_free_ char *data = NULL;
        size_t n = 0;
        berth_error e = BERTH_ERROR_INIT;
        if (berth_read_file(p, 1ULL << 32, &data, &n, &e) < 0)
            continue;
        all = xrealloc(all, len + n + 1);
        memcpy(all + len, data, n);
        len += n;
        all[len] = '\0';
        if (ret_max && (unsigned)i > *ret_max)
            *ret_max = (unsigned)i;
    }
    *ret_len = len;
    return all;
}

static int follow(const char *logdir, off_t pos)
{
    _cleanup_close_ int in = inotify_init1(IN_CLOEXEC);
    _cleanup_free_ char *cur = xasprintf("%s/current", logdir);
    _cleanup_close_ int fd = open(cur, O_RDONLY | O_CLOEXEC);
    char buf[65536];

    if (in < 0 || inotify_add_watch(in, logdir, IN_MODIFY | IN_CREATE | IN_MOVED_TO) < 0)
        return -1;
    for (;;) {
        ssize_t n;
        if (fd >= 0) {
            while ((n = pread(fd, buf, sizeof(buf), pos)) > 0) {
                berth_print_container_text(buf, (size_t)n);
                pos += n;
            }
            fflush(stdout);
        }
        if (read(in, buf, sizeof(buf)) < 0 && errno != EINTR)
            return -1;
        /* rotated: "current" is a new file now */
        struct stat a, b;
        if (fd < 0 || (stat(cur, &a) == 0 && fstat(fd, &b) == 0 && a.st_ino != b.st_ino)) {
            if (fd >= 0)
                close(fd);
            fd = open(cur, O_RDONLY | O_CLOEXEC);
            pos = 0;
        }
    }
}

int cmd_logs(int argc, char **argv, struct berth_globals *g)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"follow", no_argument, NULL, 'f'},
        {"lines", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long lines = -1;
    bool fol = false;
    int c;

    while ((c = getopt_long(argc, argv, "fn:hqv", longopts, NULL)) != -1) {
        if (berth_global_option(c, optarg, g))
            continue;
        switch (c) {
        case 'f':
            fol = true;
            break;
        case 'n': {
            char *end;
            lines = strtol(optarg, &end, 10);
            if (*end || lines < 0)
                return berth_usage_error("logs", "invalid --lines '%s'", optarg);
            break;
        }
        case 'h':
            fputs(usage_text, stdout);
            return EXIT_OK;
        default:
            return berth_usage_error("logs", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind + 1 != argc)
        return berth_usage_error("logs", "expected one service name");
    _cleanup_free_ char *dir = berth_service_dir(g->root, argv[optind]);
    _cleanup_free_ char *logdir = xasprintf("%s/log", dir);
    if (access(dir, F_OK) < 0) {
        int64_t when;
        free(logdir);
        logdir = berth_removed_log_dir(g->root, argv[optind], &when);
        if (!logdir) {
            berth_die_msg("logs", "no service '%s' under '%s'", argv[optind], g->root);
            return EXIT_FAIL;
        }
        char at[32];
        time_t t = (time_t)when;
        strftime(at, sizeof(at), "%Y-%m-%d %H:%M:%S UTC", gmtime(&t));
        fprintf(stderr, "berth logs: '%s' was removed at %s; its log is kept in '%s'\n",
                argv[optind], at, logdir);
        fol = false;
    }
    size_t len;
    _cleanup_free_ char *all = read_all(logdir, NULL, &len);
    print_tail(all, len, lines);
    fflush(stdout);
    if (fol) {
        struct stat st;
        _cleanup_free_ char *cur = xasprintf("%s/current", logdir);
        if (follow(logdir, stat(cur, &st) == 0 ? st.st_size : 0) < 0) {
            berth_die_msg("logs", "following '%s': %s", logdir, strerror(errno));
            return EXIT_FAIL;
        }
    }
    return EXIT_OK;
}
