/* HTTP(S) downloads with libcurl, for artifact servers that are sometimes
 * flaky: only http and https (redirects too, at most 5), connect and
 * low-speed timeouts, retries with exponential backoff on connection
 * errors, 5xx and 429 (honouring Retry-After), a stalled transfer
 * abandoned for the next mirror, a deadline for one image's whole fetch,
 * resume with Range
 * (If-Range with the ETag or Last-Modified the server gave), mirrors tried
 * in order, netrc, a CA bundle and a client certificate, the standard proxy
 * variables, and several transfers at once over curl multi.
 *
 * What a server can make berth write is bounded (space.h): never more
 * than the Content-Length it declared, never more than a maximum artifact
 * size, never into the reserve of free space on the destination's
 * filesystem; a failed request's file is removed. An https URL is never
 * redirected to http.
 *
 * Every byte is hashed as it arrives (verify.h), so no second pass over
 * the file is needed. The library never prints: progress goes to a
 * callback that agent/cmd implements.
 */
#ifndef BERTH_FETCH_H
#define BERTH_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "space.h"

struct berth_fetch_progress {
    uint64_t done;    /* bytes received over all transfers */
    uint64_t total;   /* bytes expected, 0 when not known yet */
    size_t transfers; /* how many */
    size_t finished;  /* how many are done (ok or failed) */
    bool final;       /* the last call */
};

typedef void (*berth_fetch_progress_fn)(void *userdata, const struct berth_fetch_progress *p);

struct berth_fetch_options {
    const char *netrc_file; /* NULL: ~/.netrc of the user, when it exists */
    const char *cacert;     /* CA bundle file, NULL: the system's */
    const char *cert;       /* client certificate (PEM) */
    const char *key;        /* its private key, NULL: in `cert` */
    uint64_t connect_timeout_ms;
    uint64_t stall_timeout_ms; /* a transfer below low_speed_limit for this long stalled */
    uint64_t low_speed_limit;  /* bytes/s */
    uint64_t fetch_timeout_ms; /* one image's whole fetch (berth_fetch_deadline), 0: none */
    uint64_t deadline_ms;      /* berth_now_ms() by which every transfer ends, 0: none */
    unsigned retries;          /* per URL, after the first attempt */
    uint64_t retry_delay_ms;   /* first backoff; doubles each time */
    uint64_t retry_max_delay_ms;
    uint64_t max_size;                   /* refuse artifacts larger than this, 0: no limit */
    struct berth_space_reserve min_free; /* keep this free where `dest` is */
    const char *registry_auth;           /* registry credentials (config.json `auths`), NULL: none;
                                            berth_fetch_options_init sets $REGISTRY_AUTH_FILE */
    berth_error setting_err;             /* an invalid host setting: every request fails with it */
    bool transfer_child; /* berth_store_ensure_images downloads in a short-lived child, so that
                            the caller never maps libcurl and TLS (set by default) */
    berth_fetch_progress_fn progress;
    void *progress_userdata;
};

/* Defaults: 30 s connect timeout, a transfer below 1 KiB/s for 30 s
 * stalled, 1 h for one image's fetch, 5 retries starting at 1 s up to 60 s,
 * artifacts up to 8 GiB, keep max(64 MiB, 5%) free; from the environment
 * (host settings) BERTH_STALL_TIMEOUT, BERTH_FETCH_TIMEOUT,
 * BERTH_MAX_ARTIFACT_SIZE and BERTH_MIN_FREE_SPACE (space.h). */
void berth_fetch_options_init(struct berth_fetch_options *opt);

/* A copy of `opt` whose deadline is fetch_timeout_ms from now (unless a
 * deadline is set already): what one image's fetch runs with. */
void berth_fetch_deadline(const struct berth_fetch_options *opt, struct berth_fetch_options *ret);

/* Where the bytes go besides the file: the store unpacks while downloading.
 * `data` sees every byte in order; `restart` says the stream starts again
 * from byte 0 (a server ignored a Range, or the next mirror is tried). */
struct berth_fetch_sink {
    void (*data)(void *userdata, const void *buf, size_t len);
    void (*restart)(void *userdata);
    void *userdata;
};

struct berth_fetch_request {
    const char *const *urls; /* the URL, then its mirrors */
    size_t nurls;
    const char *dest;                    /* file to create (truncated); the caller renames it */
    const char *sha256;                  /* expected hex digest, or NULL */
    bool blake2b;                        /* also compute BLAKE2b-512 (prehashed minisign) */
    const struct berth_fetch_sink *sink; /* may be NULL */
    const char *const *headers;          /* extra request headers, NULL-terminated; may be NULL */
    uint64_t max_size;                   /* refuse more than this, 0: opt->max_size */
    bool has_fallback; /* another source follows (a registry mirror): a stall on the last URL
                          fails the request at once instead of being retried */
    bool resume;       /* `dest` may hold the first bytes already (an earlier request's):
                          only the rest is asked for (Range); when the request fails, `dest`
                          is kept for the next one, unless its digest mismatched */
};

struct berth_fetch_result {
    int rc; /* 0 ok, -1 failed with err */
    berth_error err;
    char sha256[65];
    unsigned char blake2b[64];
    uint64_t size;
    size_t url_index; /* which URL delivered it */
    /* the last response: its HTTP status (also of a failure), and the
     * headers a registry client needs */
    long http_status;
    char www_authenticate[1024];
    char content_type[128];
};

/* Download every request in parallel; one failing does not stop the
 * others. A transfer that stalls (below low_speed_limit for
 * stall_timeout_ms, headers or body) moves to the next URL at once; on the
 * last URL it is retried (resuming) unless `has_fallback`. Past the
 * deadline nothing is retried. `dest` is fsync'ed when the transfer succeeds; when `sha256` is
 * given and does not match, the next mirror is tried and the request fails
 * when none matches. A failed request's `dest` is removed.
 * Returns the number of failed requests. */
size_t berth_fetch_many(const struct berth_fetch_request *reqs, size_t n,
                        const struct berth_fetch_options *opt, struct berth_fetch_result *results);

/* One request; returns 0 or -1 with err. */
BERTH_MUST_CHECK int berth_fetch(const struct berth_fetch_request *req,
                                 const struct berth_fetch_options *opt,
                                 struct berth_fetch_result *ret, berth_error *err);

/* Fetch a small file (a signature) into memory, at most `max` bytes. */
BERTH_MUST_CHECK int berth_fetch_small(const char *url, const struct berth_fetch_options *opt,
                                       size_t max, char **ret_data, size_t *ret_len,
                                       berth_error *err);

/* One request into memory, at most `max` bytes; `ret` (may be NULL) gets
 * the result also when it fails (the status and headers of a 401). */
BERTH_MUST_CHECK int berth_fetch_memory(const struct berth_fetch_request *req,
                                        const struct berth_fetch_options *opt, size_t max,
                                        char **ret_data, size_t *ret_len,
                                        struct berth_fetch_result *ret, berth_error *err);

#endif
