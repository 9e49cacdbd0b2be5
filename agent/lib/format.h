/* The image formats berth unpacks, shared by the spec (image.format) and
 * the store. */
#ifndef BERTH_FORMAT_H
#define BERTH_FORMAT_H

enum berth_image_format {
    BERTH_FORMAT_AUTO = 0, /* default: detected from the artifact */
    BERTH_FORMAT_ROOTFS,
    BERTH_FORMAT_OCI,
    BERTH_FORMAT_DOCKER,
};

#endif
