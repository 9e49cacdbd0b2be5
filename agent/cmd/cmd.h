/* The `berth` binary: global options shared by every verb, and the verb
 * entry points. Each cmd-<verb>.c owns its option table and --help. */
#ifndef BERTH_CMD_H
#define BERTH_CMD_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

#define BERTH_DEFAULT_ROOT   "/var/lib/berth"
#define BERTH_DEFAULT_CONFIG "/etc/berth/services.yaml"

/* Exit codes. diff (and apply --dry-run) use 2 for "changes pending", so
 * their usage errors exit EXIT_DIFF_USAGE: 64 is sysexits.h's EX_USAGE,
 * which no other outcome of berth uses. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_DIFF_USAGE = 64 };

/* --color: whether to colour what berth prints on a terminal */
enum berth_colour_mode { BERTH_COLOUR_AUTO, BERTH_COLOUR_ALWAYS, BERTH_COLOUR_NEVER };

struct berth_globals {
    const char *root;              /* --root */
    const char *config;            /* --config */
    enum berth_colour_mode colour; /* --color */
    char **argv;                   /* main's whole command line, for a re-exec (selfexe.h) */
};

/* Long options every verb accepts, so that `berth run --root DIR` and
 * `berth --root DIR run` both work. Put BERTH_GLOBAL_LONGOPTS in a verb's
 * table and pass unknown option characters to berth_global_option(). */
#define OPT_ROOT   0x1001
#define OPT_CONFIG 0x1002
#define OPT_COLOR  0x1003
/* clang-format off */
#define BERTH_GLOBAL_LONGOPTS                                                                     \
    {"root", required_argument, NULL, OPT_ROOT},                                                  \
    {"config", required_argument, NULL, OPT_CONFIG},                                              \
    {"color", required_argument, NULL, OPT_COLOR},                                                \
    {"colour", required_argument, NULL, OPT_COLOR},                                               \
    {"quiet", no_argument, NULL, 'q'},                                                            \
    {"verbose", no_argument, NULL, 'v'}
/* clang-format on */

/* Handles OPT_ROOT, OPT_CONFIG, OPT_COLOR, -q and -v; returns false for
 * anything else. A --color value other than auto, always or never is a
 * usage error: printed, and the program exits with berth_usage_code(). */
bool berth_global_option(int c, const char *arg, struct berth_globals *g);

/* A verb's getopt_long loop, with what every verb's has in common. */
struct berth_fetch_options;
struct berth_getopt {
    const char *verb;
    const char *usage;                 /* what --help prints; NULL: -h is the verb's */
    const char *shortopts;             /* a leading ':' keeps getopt's own messages quiet */
    const struct option *longopts;     /* with BERTH_GLOBAL_LONGOPTS */
    struct berth_globals *g;           /* the global options go there */
    struct berth_fetch_options *fetch; /* non-NULL: BERTH_FETCH_LONGOPTS go there (image-opts.h) */
    int exit;                          /* after BERTH_OPT_EXIT: the exit status */
};
#define BERTH_OPT_EXIT (-2)

/* The next option that is the verb's own, in optarg as getopt_long leaves
 * it, or -1 after the last option (optind: the first operand). Handled
 * here: the global options, the fetch options, --help (printed: exit 0)
 * and the usage errors "option '--x' needs a value" and "unknown option
 * '--x'" (printed: exit berth_usage_code()); for those it returns
 * BERTH_OPT_EXIT with o->exit set, and the verb returns o->exit. */
int berth_getopt(int argc, char **argv, struct berth_getopt *o);

/* --since TIME of events and logs into *ret_us (unix microseconds): 0, or
 * the usage error's exit status (printed). */
int berth_since_option(const char *verb, const char *arg, int64_t *ret_us);

/* Whether to colour output written to `fd`: --color=always yes,
 * --color=never no; auto (the default) only on a terminal, with NO_COLOR
 * unset or empty (no-color.org) and TERM other than "dumb". */
bool berth_colour(const struct berth_globals *g, int fd);

/* Whether -q asked for errors only. */
bool berth_quiet(void);

/* The exit code of usage errors: EXIT_USAGE, or EXIT_DIFF_USAGE once a verb
 * whose 2 means something else has set it. */
int berth_usage_code(void);
void berth_set_usage_code(int code);

/* Print "berth: <msg>" (or "berth <verb>: ...") on stderr. */
void berth_die_msg(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print the message of `err` as berth_die_msg() does. */
void berth_print_error(const char *verb, const berth_error *err);
/* Print "berth VERB: MSG (see 'berth VERB --help')" and return
 * berth_usage_code(). */
int berth_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* -e/--env KEY=VALUE (KEY alone: copy ours) and -w/--workdir DIR, as run
 * and exec take them: 1 when `c` is one of them (`arg` appended to *env,
 * or *workdir set), 0 when not, -1 for a bad value (a usage error has
 * been printed). */
int berth_env_workdir_option(const char *verb, int c, const char *arg, const char ***env,
                             size_t *nenv, const char **workdir);

int cmd_run(int argc, char **argv, struct berth_globals *g);
int cmd_exec(int argc, char **argv, struct berth_globals *g);
int cmd_keeper(int argc, char **argv, struct berth_globals *g);
int cmd_agent(int argc, char **argv, struct berth_globals *g);
int cmd_diff(int argc, char **argv, struct berth_globals *g);
int cmd_apply(int argc, char **argv, struct berth_globals *g);
int cmd_ps(int argc, char **argv, struct berth_globals *g);
int cmd_status(int argc, char **argv, struct berth_globals *g);
int cmd_logs(int argc, char **argv, struct berth_globals *g);
int cmd_events(int argc, char **argv, struct berth_globals *g);
/* Print what a container wrote (a log, a health check's output): on a
 * terminal its control characters show as \xNN (cmd-logs.c). */
void berth_print_container_text(const char *buf, size_t len);
/* The same, line by line, each after "    | " (a health check's output). */
void berth_print_container_lines(const char *text);

int cmd_stop(int argc, char **argv, struct berth_globals *g);
int cmd_restart(int argc, char **argv, struct berth_globals *g);

/* Shared by diff and apply (cmd-diff.c). */
struct berth_plan;
struct berth_spec;
/* Parse FILE; on errors print each as FILE:LINE:COLUMN: PATH: message. */
int berth_load_spec(const char *file, struct berth_spec *spec);
void berth_print_plan(FILE *out, const struct berth_plan *plan, const char *file, bool colours);
/* The width of the plan's column of service names: the longest, at least 24. */
int berth_plan_name_width(const struct berth_plan *plan);

int cmd_fetch(int argc, char **argv, struct berth_globals *g);
int cmd_pin(int argc, char **argv, struct berth_globals *g);
int cmd_images(int argc, char **argv, struct berth_globals *g);
int cmd_gc(int argc, char **argv, struct berth_globals *g);
int cmd_validate(int argc, char **argv, struct berth_globals *g);
int cmd_schema(int argc, char **argv, struct berth_globals *g);
int cmd_export(int argc, char **argv, struct berth_globals *g);
int cmd_import(int argc, char **argv, struct berth_globals *g);
int cmd_stats(int argc, char **argv, struct berth_globals *g);

#endif
