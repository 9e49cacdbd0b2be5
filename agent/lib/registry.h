/* Images from OCI registries: the distribution API (GET of manifests and
 * blobs under /v2/REPO/) over fetch.h, so that the download bounds
 * (space.h), the retries and the "https never redirects to http" rule
 * hold for registries too.
 *
 * References are URLs:
 *   oci://HOST[:PORT]/REPO[:TAG][@sha256:HEX]       HTTPS
 *   oci+http://HOST[:PORT]/REPO[:TAG][@sha256:HEX]  plain HTTP (a private network)
 * docker.io is registry-1.docker.io, and its one-component repositories
 * are library/NAME.
 *
 * Authentication follows the registry's WWW-Authenticate challenge on a
 * 401: Basic with the credentials for the host, or Bearer with a token
 * for "repository:REPO:pull" from the challenge's realm (asked for with
 * those credentials when there are any, anonymously otherwise), asked
 * again when a request with it answers 401. Credentials come from a file
 * in Docker's config.json format ({"auths": {"HOST[:PORT]": {"auth":
 * base64("user:password")}}}, or "username" and "password"; a
 * "HOST/REPO" key is preferred to the host's), named by
 * berth_fetch_options.registry_auth (--registry-auth, $REGISTRY_AUTH_FILE),
 * never by the desired-state file. A token realm of an https registry must
 * be https.
 *
 * What is parsed here: the registry's manifests once their sha256 is
 * known to be the one asked for (a tag's manifest, for `berth pin`, is
 * named by its own sha256), the token server's JSON and the challenge
 * header, each bounded. Layers are only ever parsed by the confined
 * unpacker (unpack.h), after their digest verified.
 */
#ifndef BERTH_REGISTRY_H
#define BERTH_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "fetch.h"

#define BERTH_REGISTRY_MAX_MANIFEST (4u << 20)

struct berth_registry_ref {
    bool plain_http;
    char *host;   /* HOST[:PORT] as written */
    char *base;   /* "https://HOST[:PORT]/v2/REPO" */
    char *repo;   /* "team/web" */
    char *tag;    /* NULL when none */
    char *digest; /* "sha256:HEX", NULL when none */
};

/* Does `url` start with oci:// or oci+http://? */
bool berth_registry_is_url(const char *url);

/* Parse a registry reference (the form above); -1 with err naming what is
 * wrong. */
BERTH_MUST_CHECK int berth_registry_ref_parse(const char *url, struct berth_registry_ref *ret,
                                              berth_error *err);
void berth_registry_ref_release(struct berth_registry_ref *r);

/* A client for one repository: its authorization, kept across requests. */
struct berth_registry {
    const struct berth_registry_ref *ref;
    const struct berth_fetch_options *opt;
    char *authorization; /* "Authorization: ..." header, NULL: anonymous */
    bool has_fallback;   /* a mirror follows: a stalled transfer fails at once */
};

void berth_registry_init(struct berth_registry *r, const struct berth_registry_ref *ref,
                         const struct berth_fetch_options *opt);
void berth_registry_release(struct berth_registry *r);

/* Media types */
bool berth_registry_is_index(const char *media_type);
bool berth_registry_is_manifest(const char *media_type);

/* The media type of the manifest `body`: its "mediaType", else the
 * response's `content_type` (may be ""), else what its members show. */
void berth_registry_media_type(const char *body, size_t len, const char *content_type, char *ret,
                               size_t mtlen);

/* GET the manifest or index `reference` (a tag or "sha256:HEX"), at most
 * BERTH_REGISTRY_MAX_MANIFEST bytes: its body (NUL-terminated), its
 * sha256 (hex) and its media type (from the document, else the
 * Content-Type). A digest reference whose body hashes to anything else is
 * refused. */
BERTH_MUST_CHECK int berth_registry_get_manifest(struct berth_registry *r, const char *reference,
                                                 char **ret_body, size_t *ret_len, char ret_hex[65],
                                                 char *ret_media_type, size_t mtlen,
                                                 berth_error *err);

/* One blob to download into `dest` (created; removed when it fails),
 * verified against `hex` and never longer than `size`. */
struct berth_registry_blob {
    const char *hex;
    uint64_t size;
    const char *dest;
    bool resume; /* dest may hold its first bytes already (berth_fetch_request.resume) */
    struct berth_fetch_result res;
};

/* Download the blobs in parallel, asking for a new token once when the
 * registry answers 401. Returns the number that failed (their res.err). */
size_t berth_registry_get_blobs(struct berth_registry *r, struct berth_registry_blob *blobs,
                                size_t n);

/* A manifest's content: the config and layer descriptors. */
struct berth_registry_manifest {
    char config[65]; /* hex */
    uint64_t config_size;
    size_t nlayers;
    char (*layers)[65];
    uint64_t *layer_sizes;
};

BERTH_MUST_CHECK int berth_registry_manifest_parse(const char *body, size_t len,
                                                   struct berth_registry_manifest *ret,
                                                   berth_error *err);
void berth_registry_manifest_release(struct berth_registry_manifest *m);

/* The digest (hex) a registry reference pins: its @sha256: as the registry
 * serves it, else its tag's (latest by default); the manifest for this
 * platform, or with `index` the index itself. */
BERTH_MUST_CHECK int berth_registry_resolve(const char *url, bool index,
                                            const struct berth_fetch_options *opt, char ret_hex[65],
                                            berth_error *err);

#endif
