/* berth images: what the store holds, and which services use it. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "record.h"
#include "store.h"
#include "util.h"

static const char usage_text[] =
    "Usage: berth images [--json]\n"
    "\n"
    "List the artifacts and unpacked images in the store under --root: digest,\n"
    "format, size (artifact / unpacked), when an image was last used, and which\n"
    "services use it (services/*/spec.json, and previous.json kept for rollback).\n"
    "\n"
    "Options:\n"
    "      --json        {\"images\": [{\"digest\", \"format\", \"blob\", \"unpacked\",\n"
    "                    \"blob_size\", \"image_size\", \"last_used\", \"services\"}]}\n"
    "      --root DIR    state directory (default " BERTH_DEFAULT_ROOT ")\n"
    "  -h, --help        this help\n";

enum { OPT_JSON = 0x100 };

static void human(uint64_t b, char *buf, size_t len)
{
    if (b >= (1ULL << 30))
        snprintf(buf, len, "%.1fG", (double)b / (1 << 30));
    else if (b >= (1ULL << 20))
        snprintf(buf, len, "%.1fM", (double)b / (1 << 20));
    else
        snprintf(buf, len, "%.1fK", (double)b / (1 << 10));
}

static void when(int64_t t, char *buf, size_t len)
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (!t || !localtime_r(&tt, &tm))
        snprintf(buf, len, "-");
    else
        strftime(buf, len, "%Y-%m-%d %H:%M", &tm);
}

static int print_json(const struct berth_store_entry *es, size_t n)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < n; i++) {
        const struct berth_store_entry *e = &es[i];
        json_t *svcs = json_array();
        char ts[32] = "";
        for (char **p = e->services; *p; p++)
            json_array_append_new(svcs, json_string(*p));
        if (e->last_used) {
            struct tm tm;
            time_t t = (time_t)e->last_used;
            gmtime_r(&t, &tm);
            strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
        }
        char *digest = xasprintf("sha256:%s", e->digest);
        json_array_append_new(arr, json_pack("{s:s, s:s?, s:b, s:b, s:I, s:I, s:s?, s:o}", "digest",
                                             digest, "format", e->format[0] ? e->format : NULL,
                                             "blob", e->has_blob, "unpacked", e->has_image,
                                             "blob_size", (json_int_t)e->blob_size, "image_size",
                                             (json_int_t)e->image_size, "last_used",
                                             ts[0] ? ts : NULL, "services", svcs));
        free(digest);
    }
    json_t *top = json_pack("{s:o}", "images", arr);
    char *text = json_dumps(top, JSON_INDENT(2));
    json_decref(top);
    if (!text)
        return -1;
    puts(text);
    free(text);
    return 0;
}

static void print_table(const struct berth_store_entry *es, size_t n)
{
    printf("%-19s  %-6s  %8s  %8s  %-16s  %s\n", "DIGEST", "FORMAT", "ARTIFACT", "UNPACKED",
           "LAST USED", "SERVICES");
    for (size_t i = 0; i < n; i++) {
        const struct berth_store_entry *e = &es[i];
        char a[16] = "-", u[16] = "-", w[32], svcs[512] = "";
        if (e->has_blob)
            human(e->blob_size, a, sizeof(a));
        if (e->has_image)
            human(e->image_size, u, sizeof(u));
        when(e->last_used, w, sizeof(w));
        for (char **p = e->services; *p; p++) {
            size_t used = strlen(svcs);
            snprintf(svcs + used, sizeof(svcs) - used, "%s%s", used ? ", " : "", *p);
        }
        printf("sha256:%.12s  %-6s  %8s  %8s  %-16s  %s\n", e->digest,
               e->format[0] ? e->format : "-", a, u, w, svcs[0] ? svcs : "-");
    }
}

int cmd_images(int argc, char **argv, struct berth_globals *g)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {"json", no_argument, NULL, OPT_JSON},
        {NULL, 0, NULL, 0},
    };
    struct berth_store_entry *es;
    size_t n;
    bool json = false;
    berth_error err = BERTH_ERROR_INIT;
    int c;

    struct berth_getopt o = {"images", usage_text, ":hqv", longopts, g, NULL, 0};
    while ((c = berth_getopt(argc, argv, &o)) != -1) {
        if (c == BERTH_OPT_EXIT)
            return o.exit;
        if (c == OPT_JSON)
            json = true;
    }
    if (optind != argc)
        return berth_usage_error("images", "unexpected argument '%s'", argv[optind]);
    struct berth_store_users users;
    if (berth_record_images(g->root, &users, &err) < 0) {
        berth_print_error("images", &err);
        return EXIT_FAIL;
    }
    berth_store_list(g->root, &users, &es, &n);
    berth_store_users_release(&users);
    if (json)
        print_json(es, n);
    else
        print_table(es, n);
    berth_store_entries_free(es, n);
    return EXIT_OK;
}
