/* Resolving the `user` of a service ("1000", "1000:1000", "www-data",
 * "www-data:adm") against the image's own /etc/passwd and /etc/group,
 * read without following symlinks out of the image. */
#ifndef BERTH_USER_H
#define BERTH_USER_H

#include <stddef.h>
#include <sys/types.h>

#include "error.h"

struct berth_user {
    uid_t uid;
    gid_t gid;
    gid_t *groups; /* supplementary groups from /etc/group */
    size_t ngroups;
    char *home; /* from /etc/passwd; "/" when the user has no entry */
};

/* NULL or "" means root. */
BERTH_MUST_CHECK int berth_user_resolve(const char *rootfs, const char *spec,
                                        struct berth_user *ret, berth_error *err);
void berth_user_release(struct berth_user *u);

#endif
