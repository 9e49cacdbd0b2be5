/* berth stats: what each service uses, from its container's cgroup
 * (stats.h), once or every interval. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "cmd.h"
#include "stats.h"
#include "status.h"
#include "util.h"

struct opts {
    bool json;
    bool stream;
    uint64_t interval_ms;
    char **names;
    int nnames;
};

/* One round: the records (narrowed to the names asked for) and a sample
 * of each. */
struct round {
    struct berth_status *v;
    struct berth_service_stats *s;
    size_t n;
};

static void round_free(struct round *r)
{
    berth_status_list_free(r->v, r->n);
    free(r->s);
    memset(r, 0, sizeof(*r));
}

static int take(const char *root, const struct opts *o, const struct round *prev, struct round *r,
                berth_error *err)
{
    size_t k = 0;

    memset(r, 0, sizeof(*r));
    if (berth_status_list(root, &r->v, &r->n, err) < 0)
        return -1;
    for (size_t i = 0; i < r->n; i++) {
        bool keep = o->nnames == 0;
        for (int a = 0; a < o->nnames; a++)
            keep |= !strcmp(r->v[i].name, o->names[a]);
        if (keep)
            r->v[k++] = r->v[i];
        else
            berth_status_release(&r->v[i]);
    }
    r->n = k;
    r->s = xcalloc(r->n ? r->n : 1, sizeof(*r->s));
    for (size_t i = 0; i < r->n; i++) {
        berth_stats_sample(BERTH_CGROUP_FSROOT, &r->v[i], &r->s[i]);
        /* the same container as last time: CPU % over the interval */
        for (size_t j = 0; prev && j < prev->n; j++)
            if (!strcmp(prev->v[j].name, r->v[i].name) && prev->v[j].pid == r->v[i].pid)
                berth_stats_cpu_interval(&prev->s[j], &r->s[i]);
    }
    return 0;
}

static void bytes(char *buf, size_t len, uint64_t v)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double d = (double)v;
    size_t u = 0;

    if (v == BERTH_STATS_NONE) {
        snprintf(buf, len, "-");
        return;
    }
    while (d >= 1024 && u + 1 < ARRAY_SIZE(unit)) {
        d /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f%s" : "%.0f%s", d, unit[u]);
}

static void u64_col(char *buf, size_t len, uint64_t v)
{
    if (v == BERTH_STATS_NONE)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%llu", (unsigned long long)v);
}

static void print_table(const struct round *r)
{
    int w = 24;

    for (size_t i = 0; i < r->n; i++)
        w = (int)strlen(r->v[i].name) > w ? (int)strlen(r->v[i].name) : w;
    printf("%-*s %-11s %7s %9s %9s %9s %6s %9s %6s %4s %8s %s\n", w, "NAME", "STATE", "CPU %",
           "CPU TIME", "MEM", "LIMIT", "MEM %", "MEM PEAK", "PIDS", "OOM", "RESTARTS", "UPTIME");
    for (size_t i = 0; i < r->n; i++) {
        const struct berth_service_stats *s = &r->s[i];
        const struct berth_cgroup_stats *c = &s->cg;
        char cpu[32] = "-", cput[32] = "-", mem[32], lim[32], memp[32] = "-", peak[32], pids[32],
             oom[32], up[32];
        if (s->cpu_percent >= 0)
            snprintf(cpu, sizeof(cpu), "%.1f", s->cpu_percent);
        if (c->cpu_usec != BERTH_STATS_NONE)
            snprintf(cput, sizeof(cput), "%.2fs", (double)c->cpu_usec / 1e6);
        bytes(mem, sizeof(mem), c->memory);
        bytes(lim, sizeof(lim), c->memory_limit);
        if (c->memory != BERTH_STATS_NONE && c->memory_limit != BERTH_STATS_NONE && c->memory_limit)
            snprintf(memp, sizeof(memp), "%.1f",
                     100.0 * (double)c->memory / (double)c->memory_limit);
        bytes(peak, sizeof(peak), c->memory_peak);
        u64_col(pids, sizeof(pids), c->pids);
        u64_col(oom, sizeof(oom), c->oom_kills);
        berth_format_age(up, sizeof(up), s->uptime_s);
        printf("%-*s %-11s %7s %9s %9s %9s %6s %9s %6s %4s %8u %s\n", w, r->v[i].name,
               berth_state_name(r->v[i].state), cpu, cput, s->running ? mem : "-",
               s->running ? lim : "-", memp, s->running ? peak : "-", pids, oom, r->v[i].restarts,
               up);
    }
}

static void print_round(const struct round *r, const struct opts *o, bool tty)
{
    if (o->json) {
        _cleanup_free_ char *text = berth_stats_json(r->v, r->s, r->n, o->stream);
        puts(text);
    } else {
        /* a terminal is redrawn in place, like `podman stats`; a pipe gets
         * one table per interval */
        if (tty && o->stream)
            fputs("\033[H\033[2J", stdout);
        print_table(r);
        if (!tty && o->stream)
            putchar('\n');
    }
    fflush(stdout);
}

static int missing_name(const struct round *r, const struct opts *o)
{
    for (int a = 0; a < o->nnames; a++) {
        bool found = false;
        for (size_t i = 0; i < r->n; i++)
            found |= !strcmp(r->v[i].name, o->names[a]);
        if (!found) {
            berth_die_msg("stats", "no service '%s'", o->names[a]);
            return -1;
        }
    }
    return 0;
}

static void sleep_until(struct timespec *next, uint64_t ms)
{
    next->tv_sec += (time_t)(ms / 1000);
    next->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (next->tv_nsec >= 1000000000L) {
        next->tv_sec++;
        next->tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, next, NULL) != 0)
        ;
}

static int run(const char *root, const struct opts *o)
{
    struct round prev = {0}, cur;
    berth_error err = BERTH_ERROR_INIT;
    bool tty = isatty(STDOUT_FILENO);
    struct timespec next;

    clock_gettime(CLOCK_MONOTONIC, &next);
    for (bool first = true;; first = false) {
        if (take(root, o, first ? NULL : &prev, &cur, &err) < 0) {
            berth_print_error("stats", &err);
            round_free(&prev);
            return EXIT_FAIL;
        }
        if (first && missing_name(&cur, o) < 0) {
            round_free(&cur);
            return EXIT_FAIL;
        }
        print_round(&cur, o, tty);
        round_free(&prev);
        prev = cur;
        if (!o->stream)
            break;
        sleep_until(&next, o->interval_ms);
    }
    round_free(&prev);
    return EXIT_OK;
}

static void help(void)
{
    fputs("Usage: berth stats [--no-stream] [--json] [--interval DURATION] [--root DIR] "
          "[NAME...]\n"
          "\n"
          "What each service (or each NAME) uses, read from its container's cgroup\n"
          "(cgroup v2, or the memory, cpuacct and pids controllers of v1): CPU %\n"
          "(100 = one CPU busy), CPU time, memory charged (page cache included),\n"
          "its limit and the share of it, the most ever charged (MEM PEAK; none\n"
          "on cgroup v2 before Linux 5.19), tasks, OOM kills, restarts by the\n"
          "restart policy and uptime. The cgroup is the container's, made afresh\n"
          "at each start: CPU time and OOM kills count since the container\n"
          "started. A service whose container does not run shows '-'.\n"
          "\n"
          "Every interval, until interrupted: on a terminal the table is redrawn\n"
          "in place; otherwise one table per interval, each followed by an empty\n"
          "line. CPU % is the CPU time used over the interval; in the first\n"
          "table, and with --no-stream, it is the average since the container\n"
          "started.\n"
          "\n"
          "Options:\n"
          "      --no-stream      print one sample and exit\n"
          "      --interval DURATION   between samples (default 2s; 500ms, 10s, ...)\n"
          "      --json           {\"services\": [{\"name\", \"state\", \"running\",\n"
          "                       \"memory_bytes\", \"memory_peak_bytes\",\n"
          "                       \"memory_limit_bytes\", \"cpu_seconds\", \"cpu_percent\",\n"
          "                       \"pids\", \"pids_limit\", \"oom_kills\", \"restarts\",\n"
          "                       \"manual_restarts\", \"uptime_seconds\"}]}: null where\n"
          "                       unknown, no container runs or no limit is set\n"
          "                       (memory_limit_bytes, pids_limit); streamed, one\n"
          "                       such object per line and interval\n"
          "      --root DIR       state directory (default " BERTH_DEFAULT_ROOT ")\n"
          "\n"
          "Exit status: 0, or 1 when ROOT is no berth root or a NAME is no service.\n",
          stdout);
}

int cmd_stats(int argc, char **argv, struct berth_globals *g)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"json", no_argument, NULL, 'j'},
        {"no-stream", no_argument, NULL, 'n'},
        {"interval", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct opts o = {.stream = true, .interval_ms = 2000};
    berth_error err = BERTH_ERROR_INIT;
    int c;

    struct berth_getopt opts = {"stats", NULL, "hqv", longopts, g, NULL, 0};
    while ((c = berth_getopt(argc, argv, &opts)) != -1) {
        switch (c) {
        case BERTH_OPT_EXIT:
            return opts.exit;
        case 'j':
            o.json = true;
            break;
        case 'n':
            o.stream = false;
            break;
        case 'i':
            if (berth_parse_duration(optarg, &o.interval_ms) < 0 || o.interval_ms < 100)
                return berth_usage_error("stats", "invalid --interval '%s': at least 100ms",
                                         optarg);
            break;
        case 'h':
            help();
            return EXIT_OK;
        }
    }
    o.names = argv + optind;
    o.nnames = argc - optind;
    if (berth_status_root_check(g->root, true, &err) < 0) {
        berth_print_error("stats", &err);
        return EXIT_FAIL;
    }
    return run(g->root, &o);
}
