/* The desired-state file (schema version 1): YAML → typed, validated,
 * normalised spec, and the canonical form of each service that the
 * reconciler stores and compares.
 *
 * The rules are the ones of manifests-schema/berth.schema.json (the written
 * contract); berth and the JSON Schema agree on every example file. Beyond
 * the schema, berth rejects what a JSON Schema cannot see: duplicate keys
 * (and so duplicate service names), YAML merge keys, explicit tags other
 * than !!str, and documents that exceed the resource bounds below.
 *
 * Typical use:
 *
 *     struct berth_spec spec = BERTH_SPEC_INIT;
 *     struct berth_spec_errors errs = BERTH_SPEC_ERRORS_INIT;
 *     if (berth_spec_parse_file(path, &spec, &errs) < 0) {
 *         for (size_t i = 0; i < errs.n; i++) ... errs.v[i] ...
 *     }
 *     ... spec.services[i] ...
 *     berth_spec_release(&spec);
 *     berth_spec_errors_release(&errs);
 */
#ifndef BERTH_SPEC_H
#define BERTH_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Resource bounds: a file beyond any of them is rejected quickly with one
 * clear error instead of consuming memory or time. The YAML tree's, its
 * depth and node count, are spec-yaml.h's (BERTH_SPEC_MAX_DEPTH,
 * BERTH_SPEC_MAX_NODES), which enforces them. */
#define BERTH_SPEC_MAX_SIZE   (16u << 20) /* bytes of YAML */
#define BERTH_SPEC_MAX_ERRORS 1000        /* errors collected, then one "too many" */

#define BERTH_SPEC_VERSION 1

/* ---- Errors ------------------------------------------------------------ */

struct berth_spec_error {
    char *file;    /* display name given to the parser */
    unsigned line; /* 1-based; 0 when the error is about the whole file */
    unsigned column;
    char *path;    /* "services.web.limits.memory", "" for the whole file */
    char *message; /* lowercase, no final full stop */
};

struct berth_spec_errors {
    struct berth_spec_error *v;
    size_t n;
};

#define BERTH_SPEC_ERRORS_INIT \
    {                          \
        NULL, 0                \
    }

/* Format one error as "FILE:LINE:COLUMN: PATH: message" (line 0:
 * "FILE: message"; empty path: no "PATH: "). Returns a malloc'ed string. */
char *berth_spec_error_format(const struct berth_spec_error *e);

/* Free all errors and reset to empty. */
void berth_spec_errors_release(struct berth_spec_errors *errs);

/* ---- The typed spec ---------------------------------------------------- */

#include "format.h"
#include "run-types.h"

enum berth_network {
    BERTH_NETWORK_HOST = 0, /* default */
    BERTH_NETWORK_NONE,
};

struct berth_image_spec {
    char *url;      /* http(s) */
    char **mirrors; /* tried in order after url; may be NULL */
    size_t nmirrors;
    char *digest; /* "sha256:" + 64 lowercase hex */
    enum berth_image_format format;
    char *signature_url;        /* NULL: no signature */
    char *signature_public_key; /* minisign public key line; set iff signature_url */
};

struct berth_env_var {
    char *name;
    char *value; /* the scalar as written: "8080", "true", "info" */
};

struct berth_service {
    char *name; /* [a-z0-9][a-z0-9_.-]{0,62} */
    struct berth_image_spec image;
    char **command; /* NULL (ncommand 0): the image's entrypoint + cmd */
    size_t ncommand;
    char *workdir;             /* NULL: the image's */
    char *user;                /* "uid[:gid]" or "name[:group]"; NULL: the image's */
    struct berth_env_var *env; /* in file order; names unique */
    size_t nenv;
    enum berth_network network;
    char *hostname;             /* NULL: the host's */
    struct berth_mount *mounts; /* in file order */
    size_t nmounts;
    bool readonly_rootfs;
    enum berth_restart restart;
    struct {
        uint64_t initial_ms;     /* default 1 s */
        uint64_t max_ms;         /* default 5 min */
        uint64_t reset_after_ms; /* default 10 min */
    } backoff;
    struct {
        uint64_t max_size;  /* bytes, default 10 MiB */
        unsigned max_files; /* default 5 */
    } log;
    int stop_signal;          /* default SIGTERM */
    uint64_t stop_timeout_ms; /* default 10 s */
    struct {
        uint64_t memory;     /* bytes; 0 = unlimited */
        unsigned cpus_milli; /* 1500 = 1.5 CPUs; 0 = unlimited */
        uint64_t pids;       /* 0 = unlimited */
        uint64_t nofile;     /* 0 = inherit */
    } limits;
    /* Normalised names ("NET_ADMIN": upper case, no CAP_ prefix, or "ALL"),
     * sorted, without duplicates. */
    char **cap_add;
    size_t ncap_add;
    char **cap_drop;
    size_t ncap_drop;
    /* NULL: Docker's default profile; "unconfined"; or the absolute path of
     * a profile file in Docker's format (it existed and parsed when the
     * file was read) */
    char *seccomp;
    /* a profile file's sha256 (64 hex digits) when it was read, so that an
     * edited profile is a change like any field's; else NULL */
    char *seccomp_sha256;
    struct {
        char **command; /* NULL (ncommand 0): no healthcheck */
        size_t ncommand;
        uint64_t interval_ms;      /* default 30 s */
        uint64_t timeout_ms;       /* default 30 s */
        unsigned retries;          /* default 3 */
        bool restart_on_unhealthy; /* default false: report only */
    } healthcheck;
    bool enabled; /* default true */
};

struct berth_spec {
    int version;                    /* BERTH_SPEC_VERSION */
    struct berth_service *services; /* sorted by name, names unique */
    size_t nservices;
};

#define BERTH_SPEC_INIT \
    {                   \
        0, NULL, 0      \
    }

/* ---- Parsing ----------------------------------------------------------- */

/* Parse and validate the file at `path`. On success returns 0 and fills
 * `ret` (release with berth_spec_release()); `errs` stays empty. On failure
 * returns -1, leaves `ret` empty and appends every error of the file to
 * `errs` (a missing, unreadable, empty or oversized file is one error with
 * line 0). `errs` may be NULL when only validity matters. */
int berth_spec_parse_file(const char *path, struct berth_spec *ret, struct berth_spec_errors *errs);

/* The same for `len` bytes in memory (stdin, tests, the fuzzer); `filename`
 * is the name used in errors ("<stdin>"). `data` need not be NUL-terminated. */
int berth_spec_parse_buffer(const char *data, size_t len, const char *filename,
                            struct berth_spec *ret, struct berth_spec_errors *errs);

/* Free everything `spec` owns and reset it to BERTH_SPEC_INIT. */
void berth_spec_release(struct berth_spec *spec);

/* The service called `name`, or NULL (binary search). */
const struct berth_service *berth_spec_find(const struct berth_spec *spec, const char *name);

/* ---- Canonical form ---------------------------------------------------- */

/* The canonical JSON of one service: one line, no spaces, keys sorted
 * bytewise at every level (as in RFC 8785), every field present with its
 * default filled in (fields without a default, such as command, are null),
 * values normalised: sizes in bytes, durations in milliseconds (keys keep
 * their file names: "stop_timeout": 10000), cpus in milli-CPUs, stop_signal
 * as its name ("SIGTERM"), capability lists sorted and deduplicated,
 * seccomp only when not the default (so that older specs keep their hash)
 * and with seccomp_sha256, its file's sha256, when it is a file, env as
 * an object sorted by name; mirrors, command and mounts keep their order.
 * Two files that mean the same service give the same bytes. Malloc'ed. */
char *berth_service_canonical_json(const struct berth_service *svc);

/* sha256 of berth_service_canonical_json() as 64 lowercase hex digits. */
void berth_service_hash(const struct berth_service *svc, char out[65]);

/* One leaf of a service's canonical form, for field-by-field diffs. */
struct berth_field {
    char *path;  /* "limits.memory", "env.LOG_LEVEL", "mounts[0].target", "command" */
    char *value; /* its canonical JSON text: "536870912", "\"info\"", "null",
                  * arrays of scalars whole: "[\"/bin/web\",\"-v\"]" */
};

/* The leaves of the canonical JSON in its order (sorted paths, arrays of
 * objects indexed). Paths present in one service and absent in another
 * (env names, extra mounts) are additions/removals. Returns the number of
 * fields; free with berth_fields_free(). */
size_t berth_service_fields(const struct berth_service *svc, struct berth_field **ret);
void berth_fields_free(struct berth_field *fields, size_t n);

/* Canonical JSON text → same fields as berth_service_fields(), so the
 * reconciler can diff against a stored services/<name>/spec.json without
 * re-parsing YAML. Returns the count, or -1 when `json` is not a JSON
 * object made of what berth_service_canonical_json() writes (objects,
 * arrays, strings, integers >= 0, true, false, null). */
long berth_canonical_json_fields(const char *json, struct berth_field **ret);

#endif
