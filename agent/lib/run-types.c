#include "run-types.h"

#include <stdlib.h>

#include "util.h"

struct berth_mount *berth_mounts_dup(const struct berth_mount *v, size_t n)
{
    struct berth_mount *c = xcalloc(n ? n : 1, sizeof(*c));

    for (size_t i = 0; i < n; i++) {
        c[i] = v[i];
        c[i].source = v[i].source ? xstrdup(v[i].source) : NULL;
        c[i].target = xstrdup(v[i].target);
    }
    return c;
}

void berth_mounts_free(struct berth_mount *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].source);
        free(v[i].target);
    }
    free(v);
}
