/* The services' histories read back as `berth events` shows them: the
 * events (events.h) of every live service, and of those removed (kept
 * beside their logs in ROOT/removed/NAME@TIME/, apply.h), merged by time
 * and followed as they are written. Above apply, record and events. */
#ifndef BERTH_HISTORY_H
#define BERTH_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "events.h"

/* Called with a batch of events, oldest first (n may be 0); the events
 * are released after the call. */
typedef void (*berth_events_fn)(void *ud, const struct berth_event *v, size_t n);

/* Hand `fn` the events of services `names` (nnames 0: of every service,
 * and of what is kept of removed ones) from `since_us` on, in one batch.
 * With `follow`, then every event as it is appended, across rotations (and
 * of the services created meanwhile when nnames is 0): it returns only on
 * an error. A removed service's events are read once. Fails with ENOENT,
 * "no service 'X' under 'ROOT'", for a name with neither a record nor a
 * kept log. */
BERTH_MUST_CHECK int berth_events_watch(const char *root, char **names, size_t nnames,
                                        int64_t since_us, bool follow, berth_events_fn fn, void *ud,
                                        berth_error *err);

#endif
