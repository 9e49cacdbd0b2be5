/* berth logs: a service's captured stdout and stderr. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apply.h"
#include "cmd.h"
#include "events.h"
#include "record.h"
#include "logs.h"
#include "util.h"

static const char usage_text[] =
    "Usage: berth logs [-f] [-n N] [-t] [--since TIME] [--root DIR] NAME\n"
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
    "Each line's time is when its keeper moved it into the log (to within\n"
    "10 ms; for output that waited while no keeper ran, when the next keeper\n"
    "took it): kept beside the log in times, times.1, ... (see HACKING.md).\n"
    "\n"
    "Options:\n"
    "  -n, --lines N      only the last N lines (of those --since asks for)\n"
    "  -f, --follow       keep printing what it writes (across rotations)\n"
    "  -t, --timestamps   each line after its time, RFC 3339 in UTC with\n"
    "                     microseconds (\"-\" for lines of unknown time)\n"
    "      --since TIME   only lines from TIME on: RFC 3339\n"
    "                     (2026-12-07T16:00:00Z, 2026-12-07T17:00:00+01:00)\n"
    "                     or a duration back from now (10m, 1h, 30s)\n"
    "  -h, --help         this help\n";

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

void berth_print_container_lines(const char *text)
{
    while (*text) {
        const char *nl = strchr(text, '\n');
        size_t len = nl ? (size_t)(nl - text) : strlen(text);
        fputs("    | ", stdout);
        berth_print_container_text(text, len);
        putchar('\n');
        text += len + (nl ? 1 : 0);
    }
}

struct print_opts {
    bool timestamps;
};

/* One line (or a piece of one, when following), after its time with
 * --timestamps: "2026-12-07T16:00:41.123456Z " (as RFC 3339 as Docker's;
 * "-" for a line written before berth kept times). */
static void print_line(const char *text, size_t len, int64_t time_us, bool line_start, void *ud)
{
    const struct print_opts *o = ud;
    char when[40];

    if (o->timestamps && line_start) {
        if (time_us)
            berth_format_time_us(time_us, 6, when, sizeof(when));
        else
            snprintf(when, sizeof(when), "%-27s", "-");
        fputs(when, stdout);
        putchar(' ');
    }
    berth_print_container_text(text, len);
}

static void flush_line(const char *text, size_t len, int64_t time_us, bool line_start, void *ud)
{
    print_line(text, len, time_us, line_start, ud);
    fflush(stdout);
}

struct logs_args {
    struct berth_log_read_options read;
    struct print_opts print;
    bool follow;
};

/* The command line into `a`: true to go on, else false with the exit
 * status of --help or the usage error in *ret_exit. */
static bool parse_args(int argc, char **argv, struct berth_globals *g, struct logs_args *a,
                       int *ret_exit)
{
    enum { OPT_SINCE = 0x2001 };
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"follow", no_argument, NULL, 'f'},
        {"lines", required_argument, NULL, 'n'},
        {"timestamps", no_argument, NULL, 't'},
        {"since", required_argument, NULL, OPT_SINCE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct berth_getopt o = {"logs", usage_text, "fn:thqv", longopts, g, NULL, 0};
    char *rest;
    int c;

    *ret_exit = EXIT_OK;
    while ((c = berth_getopt(argc, argv, &o)) != -1) {
        if (c == BERTH_OPT_EXIT)
            *ret_exit = o.exit;
        else if (c == 't')
            a->print.timestamps = true;
        else if (c == OPT_SINCE)
            *ret_exit = berth_since_option("logs", optarg, &a->read.since_us);
        else if (c == 'f')
            a->follow = true;
        else if (c == 'n' && ((a->read.lines = strtol(optarg, &rest, 10)) < 0 || *rest))
            *ret_exit = berth_usage_error("logs", "invalid --lines '%s'", optarg);
        if (c == BERTH_OPT_EXIT || *ret_exit)
            return false;
    }
    if (optind + 1 != argc) {
        *ret_exit = berth_usage_error("logs", "expected one service name");
        return false;
    }
    return true;
}

/* The log of service `name`: its record's, or the one kept of it once it
 * was removed (said on stderr; nothing more comes to it: no following). */
static char *find_log(const char *root, const char *name, bool *follow, berth_error *err)
{
    _cleanup_free_ char *dir = NULL;
    int64_t removed_at;
    char at[32];

    if (berth_service_history_dir(root, name, &dir, &removed_at, err) < 0)
        return NULL;
    if (!removed_at)
        return berth_record_path(dir, BERTH_RECORD_LOG);
    time_t t = (time_t)removed_at;
    strftime(at, sizeof(at), "%Y-%m-%d %H:%M:%S UTC", gmtime(&t));
    fprintf(stderr, "berth logs: '%s' was removed at %s; its log is kept in '%s'\n", name, at, dir);
    *follow = false;
    return TAKE_PTR(dir);
}

int cmd_logs(int argc, char **argv, struct berth_globals *g)
{
    struct logs_args a = {.read = {.lines = -1}};
    berth_error err = BERTH_ERROR_INIT;
    _cleanup_free_ char *logdir = NULL;
    struct berth_log_pos end;
    int rc;

    if (!parse_args(argc, argv, g, &a, &rc))
        return rc;
    logdir = find_log(g->root, argv[optind], &a.follow, &err);
    if (!logdir || berth_log_read(logdir, &a.read, print_line, &a.print, &end, &err) < 0) {
        berth_print_error("logs", &err);
        return EXIT_FAIL;
    }
    fflush(stdout);
    if (a.follow && berth_log_follow(logdir, &end, flush_line, &a.print, &err) < 0) {
        berth_print_error("logs", &err);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}
