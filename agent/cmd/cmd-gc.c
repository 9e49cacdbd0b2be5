/* berth gc: remove what no service uses. */
#include <stdio.h>

#include <errno.h>
#include <unistd.h>

#include "apply.h"
#include "cmd.h"
#include "record.h"
#include "store.h"

static const char usage_text[] =
    "Usage: berth gc [--dry-run]\n"
    "\n"
    "Remove the artifacts and unpacked images in the store under --root that no\n"
    "service uses: neither services/*/spec.json nor the previous/spec.json kept for\n"
    "rollback names them. Also removes what interrupted fetches left behind.\n"
    "Refuses to run while an apply or the agent holds ROOT/lock.\n"
    "Prints one line per removal: 'removed image|blob|partial NAME'.\n"
    "\n"
    "Options:\n"
    "  -n, --dry-run     only list what would be removed ('would remove ...')\n"
    "      --root DIR    state directory (default " BERTH_DEFAULT_ROOT ")\n"
    "  -h, --help        this help\n";

struct gc_print {
    bool dry_run;
    unsigned long long bytes;
    unsigned count;
};

static void report(void *ud, const char *what, const char *name, uint64_t bytes)
{
    struct gc_print *p = ud;

    printf("%s %s %s%s\n", p->dry_run ? "would remove" : "removed", what,
           name[0] == '.' ? "" : "sha256:", name);
    p->bytes += bytes;
    p->count++;
}

int cmd_gc(int argc, char **argv, struct berth_globals *g)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {"dry-run", no_argument, NULL, 'n'},
        {NULL, 0, NULL, 0},
    };
    struct gc_print p = {0};
    berth_error err = BERTH_ERROR_INIT;
    int c;

    struct berth_getopt o = {"gc", usage_text, ":hnqv", longopts, g, NULL, 0};
    while ((c = berth_getopt(argc, argv, &o)) != -1) {
        if (c == BERTH_OPT_EXIT)
            return o.exit;
        if (c == 'n')
            p.dry_run = true;
    }
    if (optind != argc)
        return berth_usage_error("gc", "unexpected argument '%s'", argv[optind]);
    /* an apply fetches images before its services name them: hold it off */
    int lock = berth_lock_root(g->root, false, &err);
    if (lock < 0) {
        if (err.code == EWOULDBLOCK)
            berth_die_msg("gc",
                          "another apply or the agent holds '%s/lock': try again when it "
                          "is done",
                          g->root);
        else
            berth_print_error("gc", &err);
        return EXIT_FAIL;
    }
    struct berth_store_users users;
    int r = berth_record_images(g->root, &users, &err);
    if (r < 0)
        berth_error_wrap(&err, "collecting garbage");
    else
        r = berth_store_gc(g->root, &users, p.dry_run, report, &p, &err);
    berth_store_users_release(&users);
    close(lock);
    if (r < 0) {
        berth_print_error("gc", &err);
        return EXIT_FAIL;
    }
    if (!p.count)
        printf("nothing to remove: every image in the store is used or kept for rollback\n");
    else
        printf("%s %u entr%s, %.1f MiB\n", p.dry_run ? "would free" : "freed", p.count,
               p.count == 1 ? "y" : "ies", (double)p.bytes / (1 << 20));
    return EXIT_OK;
}
