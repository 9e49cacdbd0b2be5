/* berth keeper: the per-service supervisor, started by apply and the agent
 * (not meant to be run by hand; see keeper.h). */
#include <stdio.h>
#include <stdlib.h>

#include "cmd.h"
#include "keeper.h"
#include "proctitle.h"
#include "util.h"

int cmd_keeper(int argc, char **argv, struct berth_globals *g)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"ready-fd", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    berth_error err = BERTH_ERROR_INIT;
    int ready_fd = -1;
    int c;

    struct berth_getopt o = {"keeper", NULL, "hqv", longopts, g, NULL, 0};
    while ((c = berth_getopt(argc, argv, &o)) != -1) {
        switch (c) {
        case BERTH_OPT_EXIT:
            return o.exit;
        case 'r':
            ready_fd = atoi(optarg);
            break;
        case 'h':
            printf("Usage: berth keeper [--root DIR] [--ready-fd FD] NAME\n"
                   "\n"
                   "The supervisor of one service: started, detached, by 'berth apply' and\n"
                   "'berth agent'; it runs ROOT/services/NAME/container.json, restarts it\n"
                   "per its policy, captures its output and keeps status.json current.\n");
            return EXIT_OK;
        }
    }
    if (optind + 1 != argc)
        return berth_usage_error("keeper", "expected one service name");
    /* copies: the title is written over argv */
    _cleanup_free_ char *root = xstrdup(g->root);
    _cleanup_free_ char *name = xstrdup(argv[optind]);
    const char *title[] = {"berth-keeper", name, "--root", root, NULL};
    g->root = root;
    berth_proctitle_set(title);
    if (berth_keeper_main(root, name, ready_fd, &err) < 0) {
        berth_print_error("keeper", &err);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}
