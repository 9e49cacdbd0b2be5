/* Bounds on what an image server can make berth write: the size of one
 * artifact, and a reserve of free space that downloads and unpacks never
 * eat into on the filesystem of the state root (where the services' logs
 * and writable layers live too: a full disk there breaks running services).
 *
 * Defaults: artifacts up to 8 GiB; keep max(64 MiB, 5% of the filesystem)
 * free. berth runs as root, so the filesystem's own root reserve (ext4's
 * 5%) does not stop it; 5% keeps that headroom for the services, and 64 MiB
 * is the floor on small disks (a root on a 1 GiB disk or tmpfs can still
 * take small images; a bigger floor would refuse every fetch there). The host settings
 * BERTH_MAX_ARTIFACT_SIZE and BERTH_MIN_FREE_SPACE (environment, e.g. set by the systemd unit)
 * change the defaults; command-line flags change them again.
 */
#ifndef BERTH_SPACE_H
#define BERTH_SPACE_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define BERTH_MAX_ARTIFACT_DEFAULT (8ULL << 30)
#define BERTH_MIN_FREE_DEFAULT     (64ULL << 20)
#define BERTH_MIN_FREE_PERCENT     5u

/* Keep max(bytes, percent% of the filesystem) free. All zero: no reserve. */
struct berth_space_reserve {
    uint64_t bytes;
    unsigned percent;
};

/* What other writers to the same filesystem may have in flight while one
 * checks (the streaming unpacker beside the download): every check keeps
 * this much more than the reserve, so that together they stay above it. */
#define BERTH_SPACE_SLACK (8ULL << 20)

/* "512M" → {512 MiB, 0}; "5%" → {0, 5}; "0" → no reserve. */
int berth_space_reserve_parse(const char *s, struct berth_space_reserve *ret);

/* "max(1.0 GiB, 5%)", "512.0 MiB", "5%" into `buf`. */
void berth_space_reserve_describe(const struct berth_space_reserve *r, char *buf, size_t len);

/* "1.5 GiB" (or "123 bytes") into `buf`. */
void berth_space_human(uint64_t bytes, char *buf, size_t len);

/* Would writing `more` bytes to the filesystem of `fd` leave less than
 * the reserve (plus BERTH_SPACE_SLACK) free? Then fail with a message
 * naming `what`, the sizes and the reserve. */
BERTH_MUST_CHECK int berth_space_check(int fd, const struct berth_space_reserve *r, uint64_t more,
                                       const char *what, berth_error *err);

/* The host settings: BERTH_MAX_ARTIFACT_SIZE into *max_artifact and
 * BERTH_MIN_FREE_SPACE into *reserve, when set; -1 with err when a value
 * is invalid. */
BERTH_MUST_CHECK int berth_space_from_env(uint64_t *max_artifact,
                                          struct berth_space_reserve *reserve, berth_error *err);

#endif
