/* berth fetch: download, verify and unpack an image into the store ahead
 * of a rollout, so that `apply` finds it there. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "image-opts.h"
#include "registry.h"
#include "store.h"
#include "util.h"

static const char usage_text[] =
    "Usage: berth fetch [OPTIONS] URL --digest sha256:HEX\n"
    "       berth fetch [OPTIONS] oci://HOST[:PORT]/REPO@sha256:HEX\n"
    "\n"
    "Download an image artifact into the store under --root, verify its sha256\n"
    "(and its minisign signature, when given), and unpack it, so that services\n"
    "using it start without waiting. Nothing lands in the store unverified.\n"
    "Prints the digest and the unpacked rootfs path.\n"
    "\n"
    "A registry image (oci:// over https, oci+http:// over plain http) is pulled\n"
    "by its manifest's or index's digest (the one after '@', or --digest): the\n"
    "manifest for this host's platform, its config and layers, each verified; a\n"
    "layer the store has already is not downloaded again.\n"
    "\n"
    "Options:\n"
    "      --digest sha256:HEX     the artifact's digest (required, except in a\n"
    "                              registry URL with @sha256:HEX)\n"
    "      --mirror URL            another URL of the same artifact, tried in order\n"
    "      --format FORMAT         auto (default), rootfs, oci or docker\n"
    "      --signature URL         the artifact's minisign signature\n"
    "      --public-key KEY|FILE   the minisign public key (the RW... line, or a .pub "
    "file)\n" BERTH_FETCH_OPTIONS_HELP
    "      --root DIR              state directory (default " BERTH_DEFAULT_ROOT ")\n"
    "  -h, --help                  this help\n"
    "\n"
    "Exit status: 0 when the image is in the store, 1 otherwise.\n"
    "\n"
    "Example:\n"
    "  berth fetch https://artifacts.example/web-1.4.2.tar.zst --digest sha256:3f1c...\n"
    "  berth fetch oci://registry.example/team/web@sha256:3f1c...\n";

enum {
    OPT_DIGEST = 0x100,
    OPT_MIRROR,
    OPT_FORMAT,
    OPT_SIGNATURE,
    OPT_PUBKEY,
    OPT_MAX_SIZE,
    OPT_MAX_ENTRIES
};

/* A key given as a file: its contents. */
char *berth_cmd_load_public_key(const char *arg, berth_error *err);

char *berth_cmd_load_public_key(const char *arg, berth_error *err)
{
    char *data = NULL;
    size_t len;

    if (access(arg, F_OK) < 0) /* not a file: the key itself */
        return xstrdup(arg);
    if (berth_read_file(arg, 4096, &data, &len, err) < 0) {
        berth_error_wrap(err, "reading the public key");
        return NULL;
    }
    return data;
}

struct fetch_args {
    struct berth_fetch_options opt;
    struct berth_image_ref ref;
    const char **urls; /* urls[0]: the URL argument, then each --mirror */
    size_t nurls;
    const char *pubkey;
};

#define STOP(code) return (*ret_exit = (code), false)
#define BAD(...)   STOP(berth_usage_error("fetch", __VA_ARGS__))

/* The options, into `a`: true to go on, else false with the exit status
 * of the usage error or --help that ends the command. */
static bool parse_args(int argc, char **argv, struct berth_globals *g, struct fetch_args *a,
                       int *ret_exit)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        BERTH_FETCH_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {"digest", required_argument, NULL, OPT_DIGEST},
        {"mirror", required_argument, NULL, OPT_MIRROR},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"signature", required_argument, NULL, OPT_SIGNATURE},
        {"public-key", required_argument, NULL, OPT_PUBKEY},
        {"max-unpacked-size", required_argument, NULL, OPT_MAX_SIZE},
        {"max-entries", required_argument, NULL, OPT_MAX_ENTRIES},
        {NULL, 0, NULL, 0},
    };
    struct berth_image_ref *ref = &a->ref;
    struct berth_getopt o = {"fetch", usage_text, ":hqv", longopts, g, &a->opt, 0};
    int c, f;

    while ((c = berth_getopt(argc, argv, &o)) != -1) {
        switch (c) {
        case BERTH_OPT_EXIT:
            STOP(o.exit);
        case OPT_DIGEST:
            ref->digest = optarg;
            break;
        case OPT_MIRROR:
            a->urls[1 + a->nurls++] = optarg;
            break;
        case OPT_FORMAT:
            if ((f = berth_image_format_from_name(optarg)) < 0)
                BAD("invalid --format '%s': expected auto, "
                    "rootfs, oci or docker",
                    optarg);
            ref->format = (enum berth_image_format)f;
            break;
        case OPT_SIGNATURE:
            ref->signature_url = optarg;
            break;
        case OPT_PUBKEY:
            a->pubkey = optarg;
            break;
        case OPT_MAX_SIZE:
            if (berth_parse_size(optarg, &ref->max_unpacked_bytes) < 0 || !ref->max_unpacked_bytes)
                BAD("invalid --max-unpacked-size '%s'", optarg);
            break;
        case OPT_MAX_ENTRIES:
            if (berth_parse_size(optarg, &ref->max_entries) < 0 || !ref->max_entries)
                BAD("invalid --max-entries '%s'", optarg);
            break;
        }
    }
    if (optind + 1 != argc)
        BAD(optind >= argc ? "no URL given"
                           : "one URL only "
                             "(use --mirror)");
    return true;
}

/* A registry URL names its digest (@sha256:HEX) unless --digest does;
 * returns the copy it made of it, or an exit status in *ret_rc. */
static char *registry_digest(const char *url, struct berth_image_ref *ref, int *ret_rc)
{
    struct berth_registry_ref rr = {0};
    berth_error err = BERTH_ERROR_INIT;
    char *digest = NULL;

    *ret_rc = 0;
    if (!berth_registry_is_url(url))
        return NULL;
    if (berth_registry_ref_parse(url, &rr, &err) < 0) {
        *ret_rc = berth_usage_error("fetch", "%s", err.msg);
        return NULL;
    }
    if (!ref->digest && !rr.digest)
        *ret_rc = berth_usage_error("fetch", "a registry URL needs @sha256:HEX or --digest "
                                             "(berth pin resolves a tag)");
    else if (!ref->digest)
        ref->digest = digest = xstrdup(rr.digest);
    berth_registry_ref_release(&rr);
    return digest;
}

int cmd_fetch(int argc, char **argv, struct berth_globals *g)
{
    _cleanup_free_ const char **urls = xcalloc((size_t)argc + 1, sizeof(char *));
    struct fetch_args a = {.urls = urls};
    _cleanup_free_ char *key = NULL, *digest_buf = NULL;
    berth_error err = BERTH_ERROR_INIT;
    struct berth_image img;
    int rc;

    berth_fetch_options_init(&a.opt);
    if (!parse_args(argc, argv, g, &a, &rc))
        return rc;
    digest_buf = registry_digest(argv[optind], &a.ref, &rc);
    if (rc)
        return rc;
    if (!a.ref.digest)
        return berth_usage_error("fetch", "--digest sha256:HEX is required");
    if (!!a.ref.signature_url != !!a.pubkey)
        return berth_usage_error("fetch", "--signature and --public-key go together");
    if (a.pubkey && !(key = berth_cmd_load_public_key(a.pubkey, &err))) {
        berth_print_error("fetch", &err);
        return EXIT_FAIL;
    }
    urls[0] = argv[optind];
    a.ref.urls = urls;
    a.ref.nurls = a.nurls + 1;
    a.ref.public_key = key;
    berth_progress_attach(&a.opt);
    if (berth_store_ensure_image(g->root, &a.ref, &a.opt, &img, &err) < 0) {
        berth_print_error("fetch", &err);
        return EXIT_FAIL;
    }
    if (img.skipped_devices)
        berth_die_msg("fetch", "left out %llu device node%s of the image: berth makes /dev",
                      (unsigned long long)img.skipped_devices, img.skipped_devices > 1 ? "s" : "");
    printf("sha256:%s %s\n", img.digest, img.rootfs);
    berth_image_release(&img);
    return EXIT_OK;
}
