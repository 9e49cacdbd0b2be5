/* The content store under the state root:
 *   blobs/sha256/<hex>         verified artifacts, named by their sha256
 *   blobs/.partial/            downloads in progress (locked while in use)
 *   images/<hex>/rootfs/       the unpacked image, shared read-only
 *   images/<hex>/config.json   the image's defaults (entrypoint, cmd, env,
 *                              workdir, user, stop_signal) and its format
 *   images/.tmp-*              unpacks in progress (locked while in use)
 * Entries appear by rename only when complete and verified, so a crash
 * never leaves a half-written blob or image under its final name; what a
 * killed berth left behind is removed by the next fetch or gc (a registry
 * blob's .resume- file, which the next pull resumes, only by gc). An image
 * directory's mtime is when it was last used.
 */
#ifndef BERTH_STORE_H
#define BERTH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "fetch.h"
#include "oci.h"
#include "unpack.h"

/* What to fetch: plain C types, so that any front end (the spec parser,
 * `berth fetch`) can fill it in. */
struct berth_image_ref {
    const char *const *urls; /* the URL, then its mirrors, tried in order */
    size_t nurls;
    const char *digest; /* "sha256:<64 hex>", required */
    enum berth_image_format format;
    const char *signature_url;   /* minisign signature, NULL for none */
    const char *public_key;      /* minisign public key, required with a signature */
    uint64_t max_unpacked_bytes; /* 0: BERTH_UNPACK_MAX_BYTES */
    uint64_t max_entries;        /* 0: BERTH_UNPACK_MAX_ENTRIES */
};

struct berth_image {
    char digest[65]; /* hex */
    enum berth_image_format format;
    char *dir;    /* ROOT/images/<hex> */
    char *rootfs; /* ROOT/images/<hex>/rootfs */
    struct berth_image_config config;
    uint64_t skipped_devices; /* device nodes left out by this unpack (berth makes /dev) */
};

void berth_image_release(struct berth_image *img);

/* Make sure the image `ref` names is in the store: unpacked already, or
 * from the blob when that is there, or downloaded (unpacking while the
 * bytes arrive; nothing is renamed into the store before the digest and
 * the signature check out). Fills `ret` (release it with
 * berth_image_release) and marks the image used now. The signature is
 * checked whenever the artifact is downloaded or unpacked from its blob;
 * an image already unpacked under the digest is trusted by the digest. */
BERTH_MUST_CHECK int berth_store_ensure_image(const char *root, const struct berth_image_ref *ref,
                                              const struct berth_fetch_options *opt,
                                              struct berth_image *ret, berth_error *err);

/* The same for several images at once, downloading in parallel; each gets
 * its own result: `rets[i]` on success, `errs[i]` on failure (one failure
 * does not stop the others). Returns the number of failures. With
 * opt->transfer_child (the default) the fetching and unpacking happen in a
 * short-lived child, unless every image is in the store already: a
 * long-lived caller (the agent) never maps libcurl, TLS or a registry's
 * JSON. */
size_t berth_store_ensure_images(const char *root, const struct berth_image_ref *refs, size_t n,
                                 const struct berth_fetch_options *opt, struct berth_image *rets,
                                 berth_error *errs);

/* Download `url` whose digest is not known yet into the store (for `berth
 * pin`): the blob is named by what arrived. Returns its hex digest and the
 * detected format. */
BERTH_MUST_CHECK int
berth_store_fetch_unpinned(const char *root, const char *url, const struct berth_fetch_options *opt,
                           char ret_hex[65], enum berth_image_format *ret_format, berth_error *err);

/* Load an unpacked image by hex digest; -1 with ENOENT when absent. */
BERTH_MUST_CHECK int berth_store_load_image(const char *root, const char *hex,
                                            struct berth_image *ret, berth_error *err);

/* Import an image file into the store, its kind told by its content: an
 * OCI image layout directory (oci-layout, index.json), or a rootfs
 * tarball, OCI archive or docker save archive (tar, optionally compressed).
 * Unpacked once (reused when already there) with the default bounds;
 * anything else is an error naming what the file is. */
BERTH_MUST_CHECK int berth_store_import(const char *root, const char *path, struct berth_image *ret,
                                        berth_error *err);

/* Make sure an image rootfs has the directories and files the runtime
 * mounts over (/proc, /sys, /dev, /etc/resolv.conf, /etc/hosts), so that it
 * also runs with a read-only root. */
BERTH_MUST_CHECK int berth_store_prepare_rootfs(const char *rootfs, berth_error *err);

/* One row of `berth images`. */
struct berth_store_entry {
    char digest[65];
    bool has_blob, has_image;
    char format[16];     /* from config.json; "" when only the blob is there */
    uint64_t blob_size;  /* bytes of the artifact */
    uint64_t image_size; /* bytes of the unpacked tree (st_blocks) */
    int64_t last_used;   /* epoch seconds, 0 unknown */
    char **services;     /* NULL-terminated names using it (spec or previous) */
};

/* What uses the store's images: digests[i] (hex) is used by names[i]
 * ("web", "web (previous)": record.h's berth_record_images). */
struct berth_store_users {
    char **digests;
    char **names;
    size_t n;
};
void berth_store_users_add(struct berth_store_users *u, const char *hex, const char *name);
void berth_store_users_release(struct berth_store_users *u);

/* Everything in the store, sorted by digest, with its users (an image's
 * blobs are used by whatever uses the image). Free with
 * berth_store_entries_free. */
void berth_store_list(const char *root, const struct berth_store_users *users,
                      struct berth_store_entry **ret, size_t *ret_n);
void berth_store_entries_free(struct berth_store_entry *e, size_t n);

/* Remove blobs and images that `users` does not use, and what killed
 * berths left behind. `cb` (may be NULL) sees each digest removed (or that
 * would be with `dry_run`) and what it was ("blob", "image", "partial"). */
BERTH_MUST_CHECK int
berth_store_gc(const char *root, const struct berth_store_users *users, bool dry_run,
               void (*cb)(void *ud, const char *what, const char *name, uint64_t bytes), void *ud,
               berth_error *err);

#endif
