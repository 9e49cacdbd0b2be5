/* The `berth` binary: global options shared by every verb, and the verb
 * entry points. Each cmd-<verb>.c owns its option table and --help. */
#ifndef BERTH_CMD_H
#define BERTH_CMD_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "error.h"

#define BERTH_DEFAULT_ROOT   "/var/lib/berth"
#define BERTH_DEFAULT_CONFIG "/etc/berth/services.yaml"

/* Exit codes. diff uses 2 for "changes pending" instead of usage errors. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

struct berth_globals {
    const char *root;   /* --root */
    const char *config; /* --config */
};

/* Long options every verb accepts, so that `berth run --root DIR` and
 * `berth --root DIR run` both work. Put BERTH_GLOBAL_LONGOPTS in a verb's
 * table and pass unknown option characters to berth_global_option(). */
#define OPT_ROOT   0x1001
#define OPT_CONFIG 0x1002
#define BERTH_GLOBAL_LONGOPTS                                                                     \
    {"root", required_argument, NULL, OPT_ROOT}, {"config", required_argument, NULL, OPT_CONFIG}, \
        {"quiet", no_argument, NULL, 'q'},                                                        \
    {                                                                                             \
        "verbose", no_argument, NULL, 'v'                                                         \
    }

/* Handles OPT_ROOT, OPT_CONFIG, -q and -v; returns false for anything else. */
bool berth_global_option(int c, const char *arg, struct berth_globals *g);

/* Print "berth: <msg>" (or "berth <verb>: ...") on stderr. */
void berth_die_msg(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print the message of `err` as berth_die_msg() does. */
void berth_print_error(const char *verb, const berth_error *err);
/* Print "berth VERB: MSG (see 'berth VERB --help')" and return EXIT_USAGE. */
int berth_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int cmd_run(int argc, char **argv, struct berth_globals *g);
int cmd_exec(int argc, char **argv, struct berth_globals *g);
int cmd_keeper(int argc, char **argv, struct berth_globals *g);
int cmd_agent(int argc, char **argv, struct berth_globals *g);
int cmd_diff(int argc, char **argv, struct berth_globals *g);
int cmd_apply(int argc, char **argv, struct berth_globals *g);
int cmd_ps(int argc, char **argv, struct berth_globals *g);
int cmd_status(int argc, char **argv, struct berth_globals *g);
int cmd_logs(int argc, char **argv, struct berth_globals *g);
/* Print what a container wrote (a log, a health check's output): on a
 * terminal its control characters show as \xNN (cmd-logs.c). */
void berth_print_container_text(const char *buf, size_t len);

int cmd_stop(int argc, char **argv, struct berth_globals *g);
int cmd_restart(int argc, char **argv, struct berth_globals *g);

/* Shared by diff and apply (cmd-diff.c). */
struct berth_plan;
struct berth_spec;
/* Parse FILE; on errors print each as FILE:LINE:COLUMN: PATH: message. */
int berth_load_spec(const char *file, struct berth_spec *spec);
void berth_print_plan(FILE *out, const struct berth_plan *plan, const char *file, bool colours);

int cmd_fetch(int argc, char **argv, struct berth_globals *g);
int cmd_pin(int argc, char **argv, struct berth_globals *g);
int cmd_images(int argc, char **argv, struct berth_globals *g);
int cmd_gc(int argc, char **argv, struct berth_globals *g);
int cmd_validate(int argc, char **argv, struct berth_globals *g);
int cmd_schema(int argc, char **argv, struct berth_globals *g);

#endif
