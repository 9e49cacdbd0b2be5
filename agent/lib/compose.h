/* Migration bridge into berth: a desired-state file (schema version 1)
 * from a docker-compose.yml (the Compose specification, v3 files and the
 * current unversioned ones).
 *
 * The Compose file is read with the spec's bounded YAML layer
 * (spec-yaml.h), with what Compose files use and berth's own files do
 * not: merge keys ('<<', a mapping or a list of them, as YAML 1.1 says),
 * x- extension fields, and ${VAR} interpolation from the project's .env
 * file and the given environment. Each service's image tag is resolved to
 * its manifest's digest through the registry (registry.h), as `berth pin`
 * does.
 *
 * Whatever berth has no place for (bridge networks, published ports,
 * depends_on, build:, secrets, ...) becomes a note per service, with a
 * hint; a service that cannot be run at all (no image) is a fatal note
 * and is left out. */
#ifndef BERTH_COMPOSE_H
#define BERTH_COMPOSE_H

#include <stddef.h>

#include "error.h"
#include "export.h"
#include "fetch.h"

struct berth_compose_options {
    /* named volumes become bind mounts of VOLUMES_DIR/NAME; NULL: they are
     * fatal notes */
    const char *volumes_dir;
    /* "HOST=PREFIX": images of registry HOST ("docker.io", "127.0.0.1:5000")
     * are named PREFIX/REPO (PREFIX "oci+http://127.0.0.1:5000" for a plain
     * http registry or a mirror); the default is oci://HOST */
    char *const *registries;
    size_t nregistries;
    /* the environment for ${VAR} (after the project's .env); NULL: none */
    char *const *environ;
    const struct berth_fetch_options *fetch;
};

/* Read the Compose file at `path` (relative paths in it are relative to
 * its directory) and write the berth file into `ret` (malloc'ed YAML).
 * Notes go to `notes`. Returns -1 with `err` when the file cannot be read
 * or is not a Compose file; a service whose image cannot be resolved is a
 * fatal note, not an error. */
BERTH_MUST_CHECK int berth_compose_import(const char *path, const struct berth_compose_options *opt,
                                          char **ret, struct berth_notes *notes, berth_error *err);

#endif
