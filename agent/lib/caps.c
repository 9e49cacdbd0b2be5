#include "caps.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/capability.h>
#include <sys/prctl.h>

#include "util.h"

uint64_t berth_caps_default(void)
{
    static const cap_value_t set[] = {
        CAP_CHOWN,  CAP_DAC_OVERRIDE, CAP_FOWNER,  CAP_FSETID,           CAP_KILL,       CAP_SETGID,
        CAP_SETUID, CAP_SETPCAP,      CAP_SETFCAP, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
    };
    uint64_t mask = 0;

    for (size_t i = 0; i < ARRAY_SIZE(set); i++)
        mask |= 1ULL << set[i];
    return mask;
}

static int unknown(const char *name, berth_error *err)
{
    berth_error_set(err, 0, "unknown capability '%s'", name);
    err->code = EINVAL;
    return -1;
}

int berth_caps_from_name(const char *name, uint64_t *ret_mask, berth_error *err)
{
    const char *bare = strncasecmp(name, "CAP_", 4) ? name : name + 4;
    char buf[64];
    cap_value_t v;

    if (!strcasecmp(name, "ALL")) {
        *ret_mask = ~0ULL;
        return 0;
    }
    if (strlen(bare) + 5 > sizeof(buf) || !*bare)
        return unknown(name, err);
    snprintf(buf, sizeof(buf), "cap_%s", bare);
    for (char *p = buf; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    /* cap_from_name() also takes numbers; names only here */
    if ((buf[4] >= '0' && buf[4] <= '9') || cap_from_name(buf, &v) < 0 || v < 0 || v > 63)
        return unknown(name, err);
    *ret_mask = 1ULL << v;
    return 0;
}

uint64_t berth_caps_resolve(char *const *add, size_t nadd, char *const *drop, size_t ndrop)
{
    berth_error err = BERTH_ERROR_INIT;
    uint64_t caps = berth_caps_default(), m;

    for (size_t i = 0; i < nadd; i++)
        if (berth_caps_from_name(add[i], &m, &err) == 0)
            caps |= m;
    for (size_t i = 0; i < ndrop; i++)
        if (berth_caps_from_name(drop[i], &m, &err) == 0)
            caps &= ~m;
    return caps;
}

static cap_value_t last_cap(void)
{
    cap_value_t last = CAP_LAST_CAP;

    /* the running kernel may know more capabilities than our headers */
    while (prctl(PR_CAPBSET_READ, last + 1, 0, 0, 0) >= 0)
        last++;
    return last;
}

int berth_caps_drop_bounding(uint64_t mask, berth_error *err)
{
    cap_value_t last = last_cap();

    for (cap_value_t c = 0; c <= last; c++) {
        if (c < 64 && (mask & (1ULL << c)))
            continue;
        if (cap_drop_bound(c) < 0 && errno != EINVAL)
            return berth_error_set(err, errno, "dropping capability %d from the bounding set", c);
    }
    return 0;
}

int berth_caps_set(uint64_t mask, berth_error *err)
{
    cap_value_t last = last_cap();
    cap_t caps = cap_init();
    int r = 0;

    if (!caps)
        return berth_error_set(err, errno, "allocating a capability set");
    for (cap_value_t c = 0; c <= last && c < 64; c++) {
        if (!(mask & (1ULL << c)))
            continue;
        if (cap_set_flag(caps, CAP_PERMITTED, 1, &c, CAP_SET) < 0 ||
            cap_set_flag(caps, CAP_EFFECTIVE, 1, &c, CAP_SET) < 0) {
            r = berth_error_set(err, errno, "building the capability set");
            break;
        }
    }
    if (r == 0 && cap_set_proc(caps) < 0)
        r = berth_error_set(err, errno, "setting capabilities");
    cap_free(caps);
    if (r == 0 && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        r = berth_error_set(err, errno, "clearing ambient capabilities");
    return r;
}
