/* `berth run`: one container in the foreground, like a program.
 *
 * The image is resolved (a rootfs directory as it is; an OCI layout or
 * archive, a docker save archive or a rootfs tarball unpacked into the
 * store; sha256:DIGEST from the store; oci://... pulled into it), and its
 * config gives what the options leave open: the command, the environment,
 * the working directory, the user and the stop signal. The container runs
 * under ROOT/run/<name>, locked for as long as it runs, with the signals of
 * berth_forwarded_signals passed on; then its run directory is removed.
 */
#ifndef BERTH_RUN_H
#define BERTH_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "container.h"
#include "error.h"
#include "run-config.h"

/* Run o->command (NULL: the image's entrypoint and cmd) from `source` in a
 * container in the foreground under ROOT/run/<o->name> and wait for it:
 * `ret` says how it ended. What the flags leave open comes from the
 * image's config (berth_run_config_resolve()). Returns -1 when it could
 * not be started (or waited for), having removed what it made. */
BERTH_MUST_CHECK int berth_run_foreground(const char *root, struct berth_run_options *o,
                                          const char *source, struct berth_exit *ret,
                                          berth_error *err);

#endif
