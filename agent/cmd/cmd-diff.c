/* berth diff: the plan — what `berth apply` would do — without doing it. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "plan.h"
#include "util.h"

static const char usage_text[] =
    "Usage: berth diff [-f FILE] [--json] [--color WHEN] [--root DIR]\n"
    "\n"
    "Show what 'berth apply' would do to bring this host to the state FILE\n"
    "describes (default " BERTH_DEFAULT_CONFIG "), one line per service:\n"
    "  +  create      the service is new\n"
    "  ~  replace     its spec changed (every changed field is listed: path: old -> new)\n"
    "  -  remove      berth runs it but the file no longer has it\n"
    "  >  start       it should run and does not (with the reason when it failed\n"
    "                 to start: a mount, its user, its working directory, its command)\n"
    "  <  stop        it has 'enabled: false' and runs\n"
    "  =  unchanged\n"
    "The values of env variables whose names contain PASSWORD, PASSWD, PASS,\n"
    "SECRET, TOKEN, KEY, CREDENTIAL, AUTH, CERT or PRIVATE (any case) are never\n"
    "printed: they show as (changed).\n"
    "\n"
    "The plan id names this plan: 'berth apply --plan ID' applies only while the\n"
    "plan computed then is still the same.\n"
    "\n"
    "Options:\n"
    "  -f, --file FILE   the desired-state file\n"
    "      --json        machine-readable output (see DESIGN.md)\n"
    "      --color WHEN  colour the markers: auto (default: on a terminal, unless\n"
    "                    NO_COLOR is set or TERM is 'dumb'), always or never\n"
    "      --root DIR    state directory (default " BERTH_DEFAULT_ROOT ")\n"
    "  -h, --help        this help\n"
    "\n"
    "Exit status: 0 in sync, 2 changes pending, 1 error, 64 usage error (an\n"
    "unknown option or argument: 64 is sysexits' EX_USAGE, since 2 already means\n"
    "changes pending).\n";

static const char *const marker[BERTH_ACTION_N] = {"+", "~", "-", ">", "<", "="};
static const char *const colour[BERTH_ACTION_N] = {"\033[32m", "\033[33m", "\033[31m",
                                                   "\033[36m", "\033[36m", ""};

static void print_change(FILE *out, const struct berth_change *c)
{
    fprintf(out, "      %s: ", c->path);
    if (c->secret)
        fputs(!c->old ? "(added)" : !c->new ? "(removed)" : "(changed)", out);
    else
        fprintf(out, "%s → %s", c->old ? c->old : "(none)", c->new ? c->new : "(none)");
    fputc('\n', out);
}

int berth_plan_name_width(const struct berth_plan *plan)
{
    int w = 24;

    for (size_t i = 0; i < plan->n; i++)
        if ((int)strlen(plan->items[i].name) > w)
            w = (int)strlen(plan->items[i].name);
    return w;
}

void berth_print_plan(FILE *out, const struct berth_plan *plan, const char *file, bool colours)
{
    const char *reset = colours ? "\033[0m" : "";
    int width = berth_plan_name_width(plan);

    fprintf(out, "Plan %s for '%s' (apply exactly this with: berth apply --plan %s)\n\n", plan->id,
            file, plan->id);
    for (size_t i = 0; i < plan->n; i++) {
        const struct berth_plan_item *it = &plan->items[i];
        fprintf(out, "  %s%s %-*s %s%s", colours ? colour[it->action] : "", marker[it->action],
                width, it->name, berth_action_name(it->action), reset);
        if (it->action == BERTH_ACTION_CREATE)
            fprintf(out, "  %s", it->desired->image.digest);
        else if (it->action == BERTH_ACTION_START && it->start_error)
            fprintf(out, "  (failed: %s)", it->start_error);
        else if (it->action == BERTH_ACTION_START && it->state)
            fprintf(out, "  (now %s)", it->state);
        else if (it->rolled_back)
            fputs("  (rolled back: this spec failed after a replace; berth will not try it "
                  "again until the file changes)",
                  out);
        else if (it->action == BERTH_ACTION_REPLACE && !it->desired->enabled)
            fputs("  (disabled: the new spec is recorded, not started)", out);
        fputc('\n', out);
        for (size_t k = 0; k < it->nchanges; k++)
            print_change(out, &it->changes[k]);
    }
    fprintf(out,
            "\nPlan: %zu to create, %zu to replace, %zu to remove, %zu to start, %zu to stop, "
            "%zu unchanged.\n",
            plan->counts[BERTH_ACTION_CREATE], plan->counts[BERTH_ACTION_REPLACE],
            plan->counts[BERTH_ACTION_REMOVE], plan->counts[BERTH_ACTION_START],
            plan->counts[BERTH_ACTION_STOP], plan->counts[BERTH_ACTION_UNCHANGED]);
}

static json_t *value_json(const struct berth_change *c, const char *v)
{
    json_t *j;

    if (!v)
        return json_null();
    if (c->secret)
        return json_string("(changed)");
    j = json_loads(v, JSON_DECODE_ANY, NULL);
    return j ? j : json_string(v);
}

static void print_plan_json(const struct berth_plan *plan)
{
    json_t *changes = json_array();
    json_t *summary = json_object();
    json_t *o;
    char *text;

    for (size_t i = 0; i < plan->n; i++) {
        const struct berth_plan_item *it = &plan->items[i];
        json_t *fields = json_array();
        for (size_t k = 0; k < it->nchanges; k++) {
            const struct berth_change *c = &it->changes[k];
            json_array_append_new(fields,
                                  json_pack("{s:s, s:o, s:o}", "path", c->path, "old",
                                            value_json(c, c->old), "new", value_json(c, c->new)));
        }
        json_array_append_new(
            changes, json_pack("{s:s, s:s, s:o, s:b, s:o}", "service", it->name, "action",
                               berth_action_name(it->action), "fields", fields, "rolled_back",
                               it->rolled_back, "start_error",
                               it->start_error ? json_string(it->start_error) : json_null()));
    }
    for (int a = 0; a < BERTH_ACTION_N; a++)
        json_object_set_new(summary, berth_action_name(a),
                            json_integer((json_int_t)plan->counts[a]));
    o = json_pack("{s:s, s:o, s:o}", "plan_id", plan->id, "changes", changes, "summary", summary);
    text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    puts(text);
    free(text);
    json_decref(o);
}

int berth_load_spec(const char *file, struct berth_spec *spec)
{
    struct berth_spec_errors errs = BERTH_SPEC_ERRORS_INIT;

    if (berth_spec_parse_file(file, spec, &errs) == 0)
        return 0;
    for (size_t i = 0; i < errs.n; i++) {
        char *line = berth_spec_error_format(&errs.v[i]);
        fprintf(stderr, "%s\n", line);
        free(line);
    }
    fprintf(stderr, "berth: '%s' is invalid (%zu error%s): nothing was changed\n", file, errs.n,
            errs.n == 1 ? "" : "s");
    berth_spec_errors_release(&errs);
    return -1;
}

int cmd_diff(int argc, char **argv, struct berth_globals *g)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"file", required_argument, NULL, 'f'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct berth_spec spec = BERTH_SPEC_INIT;
    struct berth_plan plan;
    berth_error err = BERTH_ERROR_INIT;
    bool json = false;
    int c, rc;

    /* 2 means "changes pending" */
    berth_set_usage_code(EXIT_DIFF_USAGE);
    struct berth_getopt o = {"diff", usage_text, "f:hqv", longopts, g, NULL, 0};
    while ((c = berth_getopt(argc, argv, &o)) != -1) {
        switch (c) {
        case BERTH_OPT_EXIT:
            return o.exit;
        case 'f':
            g->config = optarg;
            break;
        case 'j':
            json = true;
            break;
        }
    }
    if (optind != argc)
        return berth_usage_error("diff", "unexpected argument '%s'", argv[optind]);
    if (berth_load_spec(g->config, &spec) < 0)
        return EXIT_FAIL;
    if (berth_plan_compute(g->root, &spec, &plan, &err) < 0) {
        berth_print_error("diff", &err);
        berth_spec_release(&spec);
        return EXIT_FAIL;
    }
    if (json)
        print_plan_json(&plan);
    else
        berth_print_plan(stdout, &plan, g->config, berth_colour(g, STDOUT_FILENO));
    rc = berth_plan_is_noop(&plan) ? 0 : 2;
    berth_plan_release(&plan);
    berth_spec_release(&spec);
    return rc;
}
