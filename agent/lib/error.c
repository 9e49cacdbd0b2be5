#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int berth_error_set(berth_error *err, int errnum, const char *fmt, ...)
{
    va_list ap;
    size_t n;

    if (!err)
        return -1;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    n = strlen(err->msg);
    if (errnum && n < sizeof(err->msg))
        snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(errnum));
    err->code = errnum;
    return -1;
}

int berth_error_wrap(berth_error *err, const char *fmt, ...)
{
    char prefix[BERTH_ERROR_MAX], joined[2 * BERTH_ERROR_MAX + 4];
    va_list ap;

    if (!err)
        return -1;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    snprintf(joined, sizeof(joined), "%s: %s", prefix, err->msg);
    memcpy(err->msg, joined, sizeof(err->msg) - 1);
    err->msg[sizeof(err->msg) - 1] = '\0';
    return -1;
}

void berth_error_clear(berth_error *err)
{
    err->code = 0;
    err->msg[0] = '\0';
}
