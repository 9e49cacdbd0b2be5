#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static enum berth_log_level threshold = BERTH_LOG_WARN;

void berth_log_set_level(enum berth_log_level level)
{
    threshold = level;
}

enum berth_log_level berth_log_get_level(void)
{
    return threshold;
}

/* Whether stderr is a stream to journald: systemd then sets JOURNAL_STREAM
 * to its "device:inode" (systemd.exec(5)); a redirected stderr no longer
 * matches. */
static bool stderr_is_journal(void)
{
    static int known = -1;
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (known < 0)
        known = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
                st.st_dev == (dev_t)dev && st.st_ino == (ino_t)ino;
    return known;
}

void berth_log(enum berth_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warning", "error"};
    /* syslog priorities, which journald reads from a "<N>" prefix */
    static const int prio[] = {7, 6, 4, 3};
    char line[4096];
    va_list ap;
    int n;

    if (level < threshold || level >= BERTH_LOG_QUIET)
        return;
    if (stderr_is_journal())
        n = snprintf(line, sizeof(line), "<%d>%s: ", prio[level], names[level]);
    else
        n = snprintf(line, sizeof(line), "berth[%d]: %s: ", (int)getpid(), names[level]);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    /* one write per line so that concurrent writers do not interleave */
    dprintf(STDERR_FILENO, "%s\n", line);
}
