/* berth pin: download an artifact once and print the image: block that
 * pins it, ready to paste into services.yaml. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "image-opts.h"
#include "oci.h"
#include "registry.h"
#include "store.h"
#include "util.h"

static const char usage_text[] =
    "Usage: berth pin [OPTIONS] URL\n"
    "       berth pin [OPTIONS] [--index] oci://HOST[:PORT]/REPO[:TAG]\n"
    "\n"
    "Download URL once into the store under --root, detect its format, unpack it,\n"
    "and print an image: block with its digest for the desired-state file.\n"
    "\n"
    "A registry reference (oci:// over https, oci+http:// over plain http; the tag\n"
    "defaults to latest) is resolved to the digest of the manifest for this host's\n"
    "platform, or with --index to the digest of the image index (then every host\n"
    "picks its own platform's manifest), pulled, and printed as\n"
    "oci://HOST/REPO@sha256:HEX.\n"
    "\n"
    "Options:\n"
    "      --index                 pin a registry image's index, not this platform's\n"
    "                              manifest\n" BERTH_FETCH_OPTIONS_HELP
    "      --root DIR              state directory (default " BERTH_DEFAULT_ROOT ")\n"
    "  -h, --help                  this help\n"
    "\n"
    "Example:\n"
    "  berth pin https://artifacts.example/web-1.4.2.tar.zst >> web.yaml\n"
    "  berth pin oci://registry.example/team/web:1.4.2\n";

static bool yaml_plain(const char *s)
{
    /* URLs as berth sees them need no quotes unless they hold these */
    return !strpbrk(s, " #'\"{}[],&*!|>%@`\n\t") && *s;
}

/* The image: block for services.yaml */
static void print_image(const char *url, const char *hex, enum berth_image_format fmt)
{
    if (yaml_plain(url))
        printf("image:\n  url: %s\n", url);
    else {
        printf("image:\n  url: \"");
        for (const char *p = url; *p; p++) {
            if (*p == '"' || *p == '\\')
                putchar('\\');
            putchar(*p);
        }
        printf("\"\n");
    }
    printf("  digest: sha256:%s\n  format: %s\n", hex, berth_image_format_name(fmt));
}

static int pin_registry(struct berth_globals *g, const char *url, bool index,
                        const struct berth_fetch_options *opt)
{
    berth_error err = BERTH_ERROR_INIT;
    char hex[65];

    if (berth_registry_resolve(url, index, opt, hex, &err) < 0) {
        berth_print_error("pin", &err);
        return EXIT_FAIL;
    }
    /* the reference as written, without its tag or digest */
    struct berth_registry_ref r;
    if (berth_registry_ref_parse(url, &r, &err) < 0) {
        berth_print_error("pin", &err);
        return EXIT_FAIL;
    }
    _cleanup_free_ char *pinned = xasprintf(
        "%s%s/%s@sha256:%s", r.plain_http ? "oci+http://" : "oci://", r.host, r.repo, hex);
    berth_registry_ref_release(&r);
    _cleanup_free_ char *digest = xasprintf("sha256:%s", hex);
    const char *urls[] = {pinned};
    struct berth_image_ref ref = {
        .urls = urls, .nurls = 1, .digest = digest, .format = BERTH_FORMAT_OCI};
    struct berth_image img;
    if (berth_store_ensure_image(g->root, &ref, opt, &img, &err) < 0) {
        berth_print_error("pin", &err);
        return EXIT_FAIL;
    }
    berth_image_release(&img);
    printf("image:\n  url: %s\n  digest: %s\n  format: oci\n", pinned, digest);
    return EXIT_OK;
}

int cmd_pin(int argc, char **argv, struct berth_globals *g)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        BERTH_FETCH_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {"index", no_argument, NULL, 'I'},
        {NULL, 0, NULL, 0},
    };
    struct berth_fetch_options opt;
    berth_error err = BERTH_ERROR_INIT;
    char hex[65];
    enum berth_image_format fmt;
    bool index = false;
    int c;

    struct berth_getopt o = {"pin", usage_text, ":hqv", longopts, g, &opt, 0};

    berth_fetch_options_init(&opt);
    while ((c = berth_getopt(argc, argv, &o)) != -1) {
        if (c == BERTH_OPT_EXIT)
            return o.exit;
        if (c == 'I')
            index = true;
    }
    if (optind + 1 != argc)
        return berth_usage_error("pin", optind >= argc ? "no URL given" : "one URL only");
    const char *url = argv[optind];
    berth_progress_attach(&opt);
    if (berth_registry_is_url(url))
        return pin_registry(g, url, index, &opt);
    if (index)
        return berth_usage_error("pin", "--index is for registry references (oci://...)");
    if (berth_store_fetch_unpinned(g->root, url, &opt, hex, &fmt, &err) < 0) {
        berth_print_error("pin", &err);
        return EXIT_FAIL;
    }
    /* unpack now too: the next apply finds it ready */
    _cleanup_free_ char *digest = xasprintf("sha256:%s", hex);
    struct berth_image_ref ref = {.urls = &url, .nurls = 1, .digest = digest, .format = fmt};
    struct berth_image img;
    if (berth_store_ensure_image(g->root, &ref, &opt, &img, &err) < 0) {
        berth_print_error("pin", &err);
        return EXIT_FAIL;
    }
    berth_image_release(&img);
    print_image(url, hex, fmt);
    return EXIT_OK;
}
