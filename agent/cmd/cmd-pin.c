/* berth pin: download an artifact once and print the image: block that
 * pins it, ready to paste into services.yaml. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "image-opts.h"
#include "store.h"
#include "util.h"

static const char usage_text[] =
    "Usage: berth pin [OPTIONS] URL\n"
    "\n"
    "Download URL once into the store under --root, detect its format, unpack it,\n"
    "and print an image: block with its digest for the desired-state file.\n"
    "\n"
    "Options:\n" BERTH_FETCH_OPTIONS_HELP
    "      --root DIR              state directory (default " BERTH_DEFAULT_ROOT ")\n"
    "  -h, --help                  this help\n"
    "\n"
    "Example:\n"
    "  berth pin https://artifacts.example/web-1.4.2.tar.zst >> web.yaml\n";

static bool yaml_plain(const char *s)
{
    /* URLs as berth sees them need no quotes unless they hold these */
    return !strpbrk(s, " #'\"{}[],&*!|>%@`\n\t") && *s;
}

int cmd_pin(int argc, char **argv, struct berth_globals *g)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        BERTH_FETCH_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct berth_fetch_options opt;
    berth_error err = BERTH_ERROR_INIT;
    char hex[65];
    enum berth_image_format fmt;
    int c;

    berth_fetch_options_init(&opt);
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hqv", longopts, NULL)) != -1) {
        if (berth_global_option(c, optarg, g))
            continue;
        int r = berth_fetch_option("pin", c, optarg, &opt);
        if (r < 0)
            return EXIT_USAGE;
        if (r > 0)
            continue;
        switch (c) {
        case 'h':
            fputs(usage_text, stdout);
            return EXIT_OK;
        case ':':
            return berth_usage_error("pin", "option '%s' needs a value", argv[optind - 1]);
        default:
            return berth_usage_error("pin", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind + 1 != argc)
        return berth_usage_error("pin", optind >= argc ? "no URL given" : "one URL only");
    const char *url = argv[optind];
    berth_progress_attach(&opt);
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
    return EXIT_OK;
}
