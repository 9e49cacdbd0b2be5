#include "space.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "util.h"

int berth_space_reserve_parse(const char *s, struct berth_space_reserve *ret)
{
    size_t n = s ? strlen(s) : 0;

    if (n > 1 && s[n - 1] == '%') {
        char *end;
        unsigned long p = strtoul(s, &end, 10);
        if (*s < '0' || *s > '9' || end != s + n - 1 || p > 90)
            return -1;
        *ret = (struct berth_space_reserve){0, (unsigned)p};
        return 0;
    }
    uint64_t b;
    if (berth_parse_size(s, &b) < 0)
        return -1;
    *ret = (struct berth_space_reserve){b, 0};
    return 0;
}

void berth_space_human(uint64_t b, char *buf, size_t len)
{
    if (b >= (1ULL << 30))
        snprintf(buf, len, "%.1f GiB", (double)b / (1 << 30));
    else if (b >= (1ULL << 20))
        snprintf(buf, len, "%.1f MiB", (double)b / (1 << 20));
    else if (b >= (1ULL << 10))
        snprintf(buf, len, "%.1f KiB", (double)b / (1 << 10));
    else
        snprintf(buf, len, "%llu bytes", (unsigned long long)b);
}

void berth_space_reserve_describe(const struct berth_space_reserve *r, char *buf, size_t len)
{
    char b[32];

    berth_space_human(r->bytes, b, sizeof(b));
    if (r->bytes && r->percent)
        snprintf(buf, len, "max(%s, %u%%)", b, r->percent);
    else if (r->percent)
        snprintf(buf, len, "%u%%", r->percent);
    else
        snprintf(buf, len, "%s", b);
}

int berth_space_check(int fd, const struct berth_space_reserve *r, uint64_t more, const char *what,
                      berth_error *err)
{
    struct statvfs sv;

    if (!r || (!r->bytes && !r->percent))
        return 0;
    if (fstatvfs(fd, &sv) < 0)
        return berth_error_set(err, errno, "checking the free space for '%s'", what);
    uint64_t bs = sv.f_frsize ? sv.f_frsize : sv.f_bsize;
    uint64_t size = (uint64_t)sv.f_blocks * bs, avail = (uint64_t)sv.f_bavail * bs;
    uint64_t keep = r->bytes;
    if (r->percent && size / 100 * r->percent > keep)
        keep = size / 100 * r->percent;
    if (avail >= keep + BERTH_SPACE_SLACK && avail - keep - BERTH_SPACE_SLACK >= more)
        return 0;
    char k[32], a[32], m[32], fs[32], desc[64];
    berth_space_human(keep, k, sizeof(k));
    berth_space_human(avail, a, sizeof(a));
    berth_space_human(more, m, sizeof(m));
    berth_space_human(size, fs, sizeof(fs));
    berth_space_reserve_describe(r, desc, sizeof(desc));
    return berth_error_set(err, ENOSPC,
                           "stopped before the disk fills: writing %s more of '%s' would leave "
                           "less than the reserve of %s free (%s of a %s filesystem; %s "
                           "available; --min-free-space, BERTH_MIN_FREE_SPACE)",
                           m, what, k, desc, fs, a);
}

int berth_space_from_env(uint64_t *max_artifact, struct berth_space_reserve *reserve,
                         berth_error *err)
{
    const char *v = getenv("BERTH_MAX_ARTIFACT_SIZE");

    if (v && *v) {
        if (berth_parse_size(v, max_artifact) < 0 || !*max_artifact)
            return berth_error_set(err, EINVAL,
                                   "invalid BERTH_MAX_ARTIFACT_SIZE '%s': expected a size "
                                   "such as 8G",
                                   v);
    }
    v = getenv("BERTH_MIN_FREE_SPACE");
    if (v && *v && berth_space_reserve_parse(v, reserve) < 0)
        return berth_error_set(err, EINVAL,
                               "invalid BERTH_MIN_FREE_SPACE '%s': expected a size such as 1G "
                               "or a percentage such as 5%%",
                               v);
    return 0;
}
