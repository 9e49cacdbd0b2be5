#include "user.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>

#include "util.h"

static FILE *open_image_file(const char *rootfs, const char *path)
{
    _cleanup_close_ int rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int pfd = -1;
    berth_error err = BERTH_ERROR_INIT;
    char proc[64];
    int fd;

    if (rootfd < 0)
        return NULL;
    pfd = berth_open_in_root(rootfd, path, false, false, &err);
    if (pfd < 0)
        return NULL;
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
    fd = open(proc, O_RDONLY | O_CLOEXEC);
    return fd < 0 ? NULL : fdopen(fd, "r");
}

static bool parse_id(const char *s, unsigned long *ret)
{
    char *end;

    if (!*s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    *ret = strtoul(s, &end, 10);
    return !errno && !*end && *ret < 0xFFFFFFFFUL;
}

static int lookup_passwd(const char *rootfs, const char *name, unsigned long uid, bool by_name,
                         struct berth_user *u)
{
    _cleanup_fclose_ FILE *f = open_image_file(rootfs, "/etc/passwd");
    struct passwd *pw;

    if (!f)
        return -1;
    while ((pw = fgetpwent(f))) {
        if (by_name ? strcmp(pw->pw_name, name) == 0 : pw->pw_uid == uid) {
            u->uid = pw->pw_uid;
            u->gid = pw->pw_gid;
            u->home = xstrdup(pw->pw_dir && *pw->pw_dir ? pw->pw_dir : "/");
            return 0;
        }
    }
    return -1;
}

static int lookup_group(const char *rootfs, const char *name, gid_t *ret)
{
    _cleanup_fclose_ FILE *f = open_image_file(rootfs, "/etc/group");
    struct group *gr;

    if (!f)
        return -1;
    while ((gr = fgetgrent(f)))
        if (!strcmp(gr->gr_name, name)) {
            *ret = gr->gr_gid;
            return 0;
        }
    return -1;
}

static void supplementary_groups(const char *rootfs, const char *user, struct berth_user *u)
{
    _cleanup_fclose_ FILE *f = open_image_file(rootfs, "/etc/group");
    struct group *gr;

    if (!f || !user)
        return;
    while ((gr = fgetgrent(f))) {
        for (char **m = gr->gr_mem; m && *m; m++) {
            if (strcmp(*m, user))
                continue;
            u->groups = xrealloc(u->groups, (u->ngroups + 1) * sizeof(gid_t));
            u->groups[u->ngroups++] = gr->gr_gid;
        }
    }
}

int berth_user_resolve(const char *rootfs, const char *spec, struct berth_user *u, berth_error *err)
{
    _cleanup_free_ char *copy = xstrdup(spec ? spec : "");
    char *group = strchr(copy, ':');
    const char *user = copy;
    unsigned long id;

    memset(u, 0, sizeof(*u));
    if (group)
        *group++ = '\0';
    if (!*user)
        user = "0";
    if (parse_id(user, &id)) {
        if (lookup_passwd(rootfs, NULL, id, false, u) < 0) {
            /* a numeric uid needs no entry (Docker's behaviour) */
            u->uid = (uid_t)id;
            u->gid = 0;
            u->home = xstrdup(id == 0 ? "/root" : "/");
        }
    } else if (lookup_passwd(rootfs, user, 0, true, u) < 0) {
        return berth_error_set(err, ENOENT, "user '%s' not found in the image's /etc/passwd", user);
    }
    if (group && *group) {
        if (parse_id(group, &id))
            u->gid = (gid_t)id;
        else if (lookup_group(rootfs, group, &u->gid) < 0) {
            berth_user_release(u);
            return berth_error_set(err, ENOENT,
                                   "group '%s' not found in the image's "
                                   "/etc/group",
                                   group);
        }
    }
    if (!parse_id(user, &id))
        supplementary_groups(rootfs, user, u);
    return 0;
}

void berth_user_release(struct berth_user *u)
{
    free(u->groups);
    free(u->home);
    u->groups = NULL;
    u->home = NULL;
    u->ngroups = 0;
}
