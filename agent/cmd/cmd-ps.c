/* berth ps and berth status: the service records, read without a daemon. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "status.h"
#include "util.h"

static void uptime(char *buf, size_t len, int64_t since)
{
    int64_t s = since ? (int64_t)time(NULL) - since : -1;

    if (s < 0)
        snprintf(buf, len, "-");
    else if (s < 120)
        snprintf(buf, len, "%llds", (long long)s);
    else if (s < 7200)
        snprintf(buf, len, "%lldm", (long long)(s / 60));
    else if (s < 172800)
        snprintf(buf, len, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
    else
        snprintf(buf, len, "%lldd", (long long)(s / 86400));
}

static void print_table(const struct berth_status *v, size_t n)
{
    printf("%-24s %-11s %-8s %-8s %-8s %-8s %-10s %s\n", "NAME", "STATE", "PID", "UPTIME",
           "RESTARTS", "HEALTH", "LAST EXIT", "IMAGE");
    for (size_t i = 0; i < n; i++) {
        char up[32], pid[16], last[32];
        uptime(up, sizeof(up), berth_status_state_live(v[i].state) ? v[i].started_at : 0);
        snprintf(pid, sizeof(pid), v[i].pid ? "%d" : "-", (int)v[i].pid);
        if (v[i].has_exit)
            snprintf(last, sizeof(last), "%d%s", v[i].exit_code, v[i].exit_oom ? " (OOM)" : "");
        else
            snprintf(last, sizeof(last), "-");
        printf("%-24s %-11s %-8s %-8s %-8u %-8s %-10s %.19s\n", v[i].name, v[i].state, pid, up,
               v[i].restarts, v[i].health ? v[i].health : "none", last,
               v[i].image ? v[i].image : "-");
    }
}

static int list(int argc, char **argv, struct berth_globals *g, const char *verb, bool json)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct berth_status *v;
    size_t n;
    berth_error err = BERTH_ERROR_INIT;
    int c;

    while ((c = getopt_long(argc, argv, "+hqv", longopts, NULL)) != -1) {
        if (berth_global_option(c, optarg, g))
            continue;
        switch (c) {
        case 'j':
            json = true;
            break;
        case 'h':
            printf("Usage: berth %s [--json] [--root DIR] [NAME...]\n"
                   "\n"
                   "The services berth runs: state (running, starting, backoff, stopping,\n"
                   "stopped, failed), the container's pid, uptime, restarts, health, the last\n"
                   "exit code and the image digest. Reads ROOT/services; needs no daemon.\n"
                   "'failed' means the service's keeper is gone although it should run.\n"
                   "\n"
                   "Options:\n"
                   "      --json     {\"services\": [{\"name\", \"state\", \"pid\", \"restarts\",\n"
                   "                 \"started_at\", \"image\", \"health\", \"last_exit\"}]}\n"
                   "      --root DIR state directory (default " BERTH_DEFAULT_ROOT ")\n",
                   verb);
            return EXIT_OK;
        default:
            return berth_usage_error(verb, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (berth_status_list(g->root, &v, &n, &err) < 0) {
        berth_print_error(verb, &err);
        return EXIT_FAIL;
    }
    /* NAME... narrows the list */
    if (optind < argc) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            bool keep = false;
            for (int a = optind; a < argc; a++)
                keep |= !strcmp(v[i].name, argv[a]);
            if (keep)
                v[k++] = v[i];
            else
                berth_status_release(&v[i]);
        }
        n = k;
    }
    if (json) {
        char *text = berth_status_json(v, n);
        puts(text);
        free(text);
    } else {
        print_table(v, n);
    }
    berth_status_list_free(v, n);
    return EXIT_OK;
}

int cmd_ps(int argc, char **argv, struct berth_globals *g)
{
    return list(argc, argv, g, "ps", false);
}

int cmd_status(int argc, char **argv, struct berth_globals *g)
{
    return list(argc, argv, g, "status", false);
}
