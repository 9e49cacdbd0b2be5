/* Image layouts: an extracted OCI image layout (index.json, blobs/) or
 * `docker save` archive (manifest.json, layer tars), applied layer by layer
 * onto a root filesystem, and the image's config as berth keeps it. */
#ifndef BERTH_OCI_H
#define BERTH_OCI_H

#include "error.h"
#include "unpack.h"

/* An image's defaults, from the OCI/docker config (all empty for rootfs).
 * The string vectors are NULL-terminated, never NULL themselves. */
struct berth_image_config {
    char **entrypoint;
    char **cmd;
    char **env;
    char *workdir; /* "" when unset, as the strings below */
    char *user;
    char *stop_signal;
    char **blobs; /* the store's blobs the image was made of (a registry image's
                     manifests, config and layers): gc keeps them with it */
};

/* Apply the image in the extracted layout `layout` (`format` oci or
 * docker) onto the empty directory `rootfs`: for OCI, the manifest for
 * this host's platform, every blob's digest verified; the layers in order
 * with whiteouts. Fills `ret_config` from the image config. */
BERTH_MUST_CHECK int berth_oci_apply(const char *layout, enum berth_image_format format,
                                     const char *rootfs, const struct berth_unpack_limits *limits,
                                     struct berth_image_config *ret_config,
                                     struct berth_unpack_stats *ret_stats, berth_error *err);

/* The defaults in an image config blob (its "config" object). */
BERTH_MUST_CHECK int berth_oci_config_parse(const char *data, size_t len,
                                            struct berth_image_config *ret, berth_error *err);

/* The descriptor of the manifest for this host's platform in the image
 * index (or Docker manifest list) `data`: its "sha256:..." digest and its
 * media type ("" when it names none). */
BERTH_MUST_CHECK int berth_oci_pick_platform(const char *data, size_t len, char ret_digest[72],
                                             char *ret_media_type, size_t mtlen, berth_error *err);

/* This host's platform as OCI names it ("amd64", "arm64", ...). */
const char *berth_oci_host_arch(void);

/* images/<hex>/config.json: write it (atomically), read it back. */
BERTH_MUST_CHECK int berth_image_config_write(const char *path, enum berth_image_format format,
                                              const struct berth_image_config *c,
                                              uint64_t artifact_size, berth_error *err);
BERTH_MUST_CHECK int berth_image_config_read(const char *path, enum berth_image_format *ret_format,
                                             struct berth_image_config *ret, berth_error *err);

/* Empty defaults (vectors with no elements). */
void berth_image_config_init(struct berth_image_config *c);
void berth_image_config_release(struct berth_image_config *c);

#endif
