/* berth's Prometheus metrics (`berth status --format prometheus`, and the
 * textfile that node_exporter's textfile collector reads), rendered from
 * the service records (status.h), their cgroups (stats.h) and the agent's
 * ROOT/agent.json.
 *
 * Series stay stable: a service's state is one 0/1 series per state
 * (berth_service_state{state="..."}), its image is a label of
 * berth_service_info only, so that no transition or replacement starts a
 * new series of a gauge that alerts watch (which would reset their
 * `for:`).
 */
#ifndef BERTH_METRICS_H
#define BERTH_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "stats.h"
#include "status.h"

/* What ROOT/agent.json and ROOT/agent.lock say about the agent. */
struct berth_metrics_agent {
    int running;     /* 1 an agent serves the root now, 0 none, -1 unknown */
    bool has_record; /* an agent.json exists: the fields below are set */
    bool file_valid;
    int64_t started_at; /* unix seconds, 0: unknown */
    uint64_t converges, converge_failures;
    bool has_converge; /* a converge happened: the four below */
    int64_t converge_at_ms;
    uint64_t converge_duration_ms;
    bool converge_ok;
    uint64_t converge_failed; /* services that failed to converge (or held failed) */
};

void berth_metrics_agent_read(const char *root, struct berth_metrics_agent *ret);

/* Write the metrics of services `v` (with their samples `s`, both `n`
 * long) and of the agent to `out`, in the Prometheus text format. */
void berth_metrics_write(FILE *out, const struct berth_status *v,
                         const struct berth_service_stats *s, size_t n,
                         const struct berth_metrics_agent *agent);

/* The same into a malloc'ed string. */
char *berth_metrics_render(const struct berth_status *v, const struct berth_service_stats *s,
                           size_t n, const struct berth_metrics_agent *agent);

/* DIR/berth.prom, atomically (a temporary file that the collector does not
 * read, "berth.prom.tmp.PID", fsync'ed and renamed over it). */
BERTH_MUST_CHECK int berth_metrics_write_textfile(const char *dir, const char *text,
                                                  berth_error *err);

#endif
