#include "image-opts.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include "cmd.h"
#include "log.h"
#include "util.h"

/* A duration option's value into *ret_ms: 1, or -1 after a usage error. */
static int duration(const char *verb, const char *arg, bool zero_ok, uint64_t *ret_ms)
{
    uint64_t v;

    if (berth_parse_duration(arg, &v) < 0 || (v == 0 && !zero_ok)) {
        berth_usage_error(verb, "invalid duration '%s': expected e.g. 10s or 500ms", arg);
        return -1;
    }
    *ret_ms = v;
    return 1;
}

int berth_fetch_option(const char *verb, int c, const char *arg, struct berth_fetch_options *opt)
{
    uint64_t v;
    char *end;

    switch (c) {
    case OPT_NETRC_FILE:
        opt->netrc_file = arg;
        return 1;
    case OPT_CACERT:
        opt->cacert = arg;
        return 1;
    case OPT_CERT:
        opt->cert = arg;
        return 1;
    case OPT_KEY:
        opt->key = arg;
        return 1;
    case OPT_CONNECT_TIMEOUT:
        return duration(verb, arg, false, &opt->connect_timeout_ms);
    case OPT_LOW_SPEED_TIME:
    case OPT_STALL_TIMEOUT:
        return duration(verb, arg, false, &opt->stall_timeout_ms);
    case OPT_FETCH_TIMEOUT:
        return duration(verb, arg, false, &opt->fetch_timeout_ms);
    case OPT_RETRY_DELAY:
        return duration(verb, arg, true, &opt->retry_delay_ms);
    case OPT_MAX_ARTIFACT:
        if (berth_parse_size(arg, &v) < 0 || !v) {
            berth_usage_error(verb, "invalid --max-artifact-size '%s': expected e.g. 8G", arg);
            return -1;
        }
        opt->max_size = v;
        return 1;
    case OPT_REGISTRY_AUTH:
        if (access(arg, R_OK) < 0) {
            berth_usage_error(verb, "cannot read --registry-auth '%s': %s", arg, strerror(errno));
            return -1;
        }
        opt->registry_auth = arg;
        return 1;
    case OPT_MIN_FREE:
        if (berth_space_reserve_parse(arg, &opt->min_free) < 0) {
            berth_usage_error(verb, "invalid --min-free-space '%s': expected e.g. 1G or 5%%", arg);
            return -1;
        }
        return 1;
    case OPT_RETRIES:
        v = strtoull(arg, &end, 10);
        if (*arg < '0' || *arg > '9' || *end || v > 100) {
            berth_usage_error(verb, "invalid --retries '%s': expected 0 to 100", arg);
            return -1;
        }
        opt->retries = (unsigned)v;
        return 1;
    default:
        return 0;
    }
}

static void human(uint64_t b, char *buf, size_t len)
{
    if (b >= (1ULL << 30))
        snprintf(buf, len, "%.1f GiB", (double)b / (1 << 30));
    else if (b >= (1ULL << 20))
        snprintf(buf, len, "%.1f MiB", (double)b / (1 << 20));
    else
        snprintf(buf, len, "%.1f KiB", (double)b / (1 << 10));
}

static void show(void *ud, const struct berth_fetch_progress *p)
{
    static uint64_t start;
    char done[32], total[32];

    (void)ud;
    if (!start)
        start = berth_now_ms();
    if (p->final) {
        fputs("\r\033[K", stderr);
        return;
    }
    uint64_t ms = berth_now_ms() - start;
    human(p->done, done, sizeof(done));
    human(p->total, total, sizeof(total));
    double rate = ms ? (double)p->done * 1000 / (double)ms / (1 << 20) : 0;
    if (p->total)
        fprintf(stderr, "\r\033[Kfetching %zu/%zu: %s of %s (%d%%) %.1f MiB/s", p->finished,
                p->transfers, done, total, (int)(p->done * 100 / p->total), rate);
    else
        fprintf(stderr, "\r\033[Kfetching %zu/%zu: %s %.1f MiB/s", p->finished, p->transfers, done,
                rate);
    fflush(stderr);
}

void berth_progress_attach(struct berth_fetch_options *opt)
{
    const char *term = getenv("TERM");

    /* the line is redrawn with ESC [ K, which a dumb terminal lacks */
    if (isatty(STDERR_FILENO) && berth_log_get_level() < BERTH_LOG_QUIET &&
        !(term && !strcmp(term, "dumb"))) {
        opt->progress = show;
        opt->progress_userdata = NULL;
    }
}
