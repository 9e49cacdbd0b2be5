/* A service's log, read back: what its keeper (keeper.c) wrote to
 * ROOT/services/<name>/log/ (or what apply kept of a removed service in
 * ROOT/removed/<name>@<time>/).
 *
 *   current, current.1, ... current.N   the output, newest first, rotated
 *   times, times.1, ... times.N         each file's time index
 *
 * The keeper splices the container's output into `current` (so that a
 * killed keeper loses nothing, keeper.h), and never holds a line in a
 * buffer of its own: it cannot put a time into the text. Instead, before
 * it moves a chunk into the file it appends one record to `times`: the
 * offset in `current` where the chunk begins and the time (struct
 * berth_log_stamp, 16 bytes, the host's byte order, one write(2) each).
 * A chunk within BERTH_LOG_STAMP_US of the last record gets none: its
 * bytes have that record's time, at most that much too early. A line's
 * time is the time of the chunk where it begins. A file's index is
 * bounded by an eighth of the file's size limit (at least 4 KiB); when it
 * is full the log rotates early, so the index never takes more than that
 * share of the disk, whatever the service writes.
 */
#ifndef BERTH_LOGS_H
#define BERTH_LOGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct berth_log_stamp {
    uint64_t offset; /* where the chunk begins in its file */
    int64_t time_us; /* unix microseconds, when the keeper moved it */
};

#define BERTH_LOG_STAMP_US (10 * 1000)

/* The size limit of a log file's index (a multiple of the record). */
uint64_t berth_log_index_max(uint64_t log_max_size);

/* Called for each line, oldest first: its text (with its newline, when it
 * has one yet), its time (0: unknown: written before berth kept times),
 * and whether `text` starts a line (when following, a line may come in
 * pieces: the rest of it has line_start false). */
typedef void (*berth_log_fn)(const char *text, size_t len, int64_t time_us, bool line_start,
                             void *ud);

struct berth_log_read_options {
    int64_t since_us; /* 0: every line; else lines from this time on (lines of unknown time not) */
    long lines;       /* < 0: all; else only the last N (of those since) */
};

/* Where a reader stopped in `current`: the file (its inode: a rotation
 * may have renamed it since), the offset, and whether that offset starts
 * a line (a rotation can split one). */
struct berth_log_pos {
    uint64_t ino; /* 0: no file */
    uint64_t offset;
    bool line_start;
};

/* Every line of the log in `logdir`, oldest first, rotated files joined
 * (a rotation may split a line). *ret_end (may be NULL): the end of what
 * was read, where berth_log_follow() goes on. */
BERTH_MUST_CHECK int berth_log_read(const char *logdir, const struct berth_log_read_options *o,
                                    berth_log_fn fn, void *ud, struct berth_log_pos *ret_end,
                                    berth_error *err);

/* What is written to the log after `from`, as it comes, across rotations
 * (the rest of a rotated file first, also of one rotated since `from`),
 * until an error. */
BERTH_MUST_CHECK int berth_log_follow(const char *logdir, const struct berth_log_pos *from,
                                      berth_log_fn fn, void *ud, berth_error *err);

#endif
