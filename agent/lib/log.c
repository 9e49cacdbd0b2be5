#include "log.h"

#include <stdarg.h>
#include <stdio.h>
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

void berth_log(enum berth_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warning", "error"};
    char line[4096];
    va_list ap;
    int n;

    if (level < threshold || level >= BERTH_LOG_QUIET)
        return;
    n = snprintf(line, sizeof(line), "berth[%d]: %s: ", (int)getpid(), names[level]);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    /* one write per line so that concurrent writers do not interleave */
    dprintf(STDERR_FILENO, "%s\n", line);
}
