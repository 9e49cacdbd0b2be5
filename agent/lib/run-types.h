/* The words the desired-state file (spec.h), the run configuration
 * (run-config.h), the container and the keeper (keeper-fsm.h) share about
 * how a container runs: one restart policy, one mount. Below all of them,
 * so that the resolver (run-config.c) can read the file's spec. */
#ifndef BERTH_RUN_TYPES_H
#define BERTH_RUN_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The values are those container.json stores ("restart": 0, 1, 2). */
enum berth_restart {
    BERTH_RESTART_ALWAYS = 0, /* the default */
    BERTH_RESTART_ON_FAILURE,
    BERTH_RESTART_NEVER,
};

struct berth_mount {
    bool tmpfs;    /* false: a bind mount */
    char *source;  /* absolute host path; NULL for tmpfs */
    char *target;  /* absolute path in the container */
    bool readonly; /* bind only */
    uint64_t size; /* tmpfs only, bytes; 0 = the kernel's default */
};

/* A deep copy of n mounts (never NULL), and its release. */
struct berth_mount *berth_mounts_dup(const struct berth_mount *v, size_t n);
void berth_mounts_free(struct berth_mount *v, size_t n);

#endif
