/* A service's record: what berth keeps of service <name> in
 * ROOT/services/<name>/, and the one place that knows its layout:
 *   container.json   what the keeper runs (its format: run-config.h)
 *   spec.json        the canonical spec it came from (spec.h)
 *   spec.sha256      its shape hash (plan.h), written last: a record
 *                    without it is incomplete (a killed apply) and replaced
 *   previous/        container.json, spec.json and spec.sha256 of the
 *                    version before the last replacement, for rollback
 *   rejected.sha256  the spec rolled back from (its hash, then its image's
 *                    digest), not tried again until the file asks for another
 *   status.json      the keeper's, after every transition (status.h)
 *   keeper.lock      flock()ed by the live keeper, its pid inside; made by
 *                    the first keeper before anything else it writes
 *                    (status.json, init.json) and never removed, so a
 *                    record without it never ran
 *   keeper.sock      the keeper's control socket
 *   init.json        where the running container's init is (handover.h)
 *   events           its history (events.h), log/ its output (logs.h)
 *   upper/ work/ rootfs/   the container's writable layer (container.h)
 * The formats are their owners'; this module names the files, writes a
 * new record in an order that a killed berth cannot tear, and keeps and
 * restores the previous version. Below keeper, status, plan and apply
 * (and above the container, whose writable layer it may remove); it
 * never starts or stops anything.
 */
#ifndef BERTH_RECORD_H
#define BERTH_RECORD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

enum berth_record_file {
    BERTH_RECORD_CONTAINER,
    BERTH_RECORD_SPEC,
    BERTH_RECORD_HASH,
    BERTH_RECORD_PREVIOUS,
    BERTH_RECORD_PREVIOUS_SPEC,
    BERTH_RECORD_PREVIOUS_HASH,
    BERTH_RECORD_REJECTED,
    BERTH_RECORD_STATUS,
    BERTH_RECORD_KEEPER_LOCK,
    BERTH_RECORD_KEEPER_SOCK,
    BERTH_RECORD_INIT,
    BERTH_RECORD_LOG,
};

/* The file's name relative to the record's directory ("status.json",
 * "previous/spec.sha256"): for openat() and inotify. */
const char *berth_record_file_name(enum berth_record_file f);

/* ROOT/services/<name> (malloc'ed). */
char *berth_record_dir(const char *root, const char *name);

/* DIR/<file> for the record directory `dir` (malloc'ed). */
char *berth_record_path(const char *dir, enum berth_record_file f);

/* The names of every record under ROOT/services, sorted (none when there
 * is no such directory). Free with berth_strv_free(). */
BERTH_MUST_CHECK int berth_record_list(const char *root, char ***ret_names, size_t *ret_n,
                                       berth_error *err);

/* Every record under ROOT/services, for readers that go through all of
 * them (a status list, a plan): the directory stays open and each
 * record's files are opened relative to it, so that the kernel looks up
 * two names per file rather than the whole path (a diff opens four files
 * of every record; on a VM the lookups were most of its time). */
struct berth_records {
    int dfd;      /* ROOT/services; -1 when there is none (and no records) */
    char **names; /* sorted */
    size_t n;
};

BERTH_MUST_CHECK int berth_records_open(const char *root, struct berth_records *ret,
                                        berth_error *err);
void berth_records_close(struct berth_records *recs);

/* Where the readers below find a record: its directory `dir` relative to
 * the directory fd `dfd`, that is its name under berth_records' dfd, or
 * the whole path with AT_FDCWD. */
struct berth_record_at {
    int dfd;
    const char *dir;
};

/* The record `i` of `recs`. */
struct berth_record_at berth_records_at(const struct berth_records *recs, size_t i);

/* A new version of a service: its container.json and spec.json texts
 * and its shape hash (64 hex digits). */
struct berth_record_version {
    const char *container_json;
    const char *spec_json;
    const char *hash;
};

/* Write the record of `name` (creating its directory). With
 * `keep_previous`, the version there is kept in previous/ first (when it
 * is complete). spec.sha256 is removed first and written last, so a
 * berth killed in between leaves an incomplete record (plan.h); a
 * rejection is forgotten (a new spec). */
BERTH_MUST_CHECK int berth_record_write(const char *root, const char *name,
                                        const struct berth_record_version *v, bool keep_previous,
                                        berth_error *err);

/* The 64 hex digits in `f` (BERTH_RECORD_HASH, _PREVIOUS_HASH or
 * _REJECTED) of record directory `dir`; false when it has none. */
bool berth_record_read_hash(const char *dir, enum berth_record_file f, char ret[65]);
bool berth_record_read_hash_at(const struct berth_record_at *at, enum berth_record_file f,
                               char ret[65]);

/* The stored canonical spec (malloc'ed), NULL when there is none. */
char *berth_record_read_spec(const char *root, const char *name);

/* Forget the spec `name` was rolled back from. */
void berth_record_forget_rejection(const char *root, const char *name);

/* rejected.sha256: the hash of the spec rolled back from, and its image's
 * digest (*ret_image, malloc'ed; NULL in a record from before berth kept
 * it). False when there is none. */
bool berth_record_read_rejected(const char *dir, char ret_hash[65], char **ret_image);
bool berth_record_read_rejected_at(const struct berth_record_at *at, char ret_hash[65],
                                   char **ret_image);

/* Whether `name` has a complete previous version (previous/spec.sha256);
 * -1 with the reason when not. */
BERTH_MUST_CHECK int berth_record_check_previous(const char *root, const char *name,
                                                 berth_error *err);

/* Make the previous version the current one: the current spec becomes
 * the rejected one (rejected.sha256), previous/'s container.json and
 * spec.json are copied back, the writable layer is removed
 * (container.h), and previous/spec.sha256 is copied last. */
BERTH_MUST_CHECK int berth_record_restore_previous(const char *root, const char *name,
                                                   berth_error *err);

/* status.json of `name`: written atomically (the text the keeper made of
 * its status), and loaded (-1 with ENOENT when there is none, EINVAL with
 * the line and column when it does not parse). */
BERTH_MUST_CHECK int berth_record_status_write(const char *root, const char *name, const char *text,
                                               berth_error *err);
BERTH_MUST_CHECK int berth_record_status_load(const char *root, const char *name, json_t **ret,
                                              berth_error *err);
BERTH_MUST_CHECK int berth_record_status_load_at(const struct berth_record_at *at, json_t **ret,
                                                 berth_error *err);

/* Take the keeper lock of record directory `dir` for good (the fd, which
 * the keeper keeps open, in *ret_fd) and write our pid into it; fails when
 * another keeper holds it. */
BERTH_MUST_CHECK int berth_record_keeper_lock(const char *dir, int *ret_fd, berth_error *err);

/* Whether a keeper holds the record's lock; its pid when it does. The
 * probe never takes the lock from a live keeper: a shared lock is granted
 * only once it is gone. */
bool berth_record_keeper_alive(const char *root, const char *name, pid_t *ret_pid);

/* What the keeper lock of the record at `at` says, in one open: */
enum berth_keeper_probe {
    BERTH_KEEPER_UNKNOWN = 0, /* not looked at (for callers' records) */
    BERTH_KEEPER_NEVER,       /* no lock: no keeper ever ran the record */
    BERTH_KEEPER_GONE,        /* its keeper is gone */
    BERTH_KEEPER_ALIVE,       /* a keeper holds it; its pid in *ret_pid */
};
enum berth_keeper_probe berth_record_keeper_probe_at(const struct berth_record_at *at,
                                                     pid_t *ret_pid);

/* Whether the container of record directory `dir` runs on without a
 * keeper: its init.json (handover.h) names an init that still runs (the
 * caller knows no keeper holds the lock). */
bool berth_record_orphaned(const char *dir);
bool berth_record_orphaned_at(const struct berth_record_at *at);

/* The images the records use: every "image" digest that spec.json and
 * previous/spec.json name, "name" or "name (previous)" as the user. A spec
 * that cannot be read is an error: better a full disk than a deleted
 * image that runs. */
struct berth_store_users;
BERTH_MUST_CHECK int berth_record_images(const char *root, struct berth_store_users *ret,
                                         berth_error *err);

#endif
