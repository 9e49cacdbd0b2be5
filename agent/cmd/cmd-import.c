/* berth import compose: a desired-state file from a docker-compose.yml
 * (compose.h). What berth has no place for is listed on stderr, per
 * service, with a hint. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "compose.h"
#include "image-opts.h"
#include "spec.h"
#include "util.h"

extern char **environ;

static const char usage_text[] =
    "Usage: berth import compose [OPTIONS] FILE\n"
    "\n"
    "Write a berth desired-state file (on stdout, or -o FILE) from a Compose file\n"
    "(docker-compose.yml, Compose specification v3 and current): image (the tag\n"
    "resolved to its digest through the registry, as 'berth pin' does), command and\n"
    "entrypoint, environment and env_file, working_dir, user, hostname, volumes\n"
    "(bind and tmpfs; named volumes become directories under --volumes-dir),\n"
    "read_only, cap_add/cap_drop, mem_limit, cpus, pids_limit, ulimits.nofile and\n"
    "deploy.resources.limits, healthcheck, restart, stop_signal, stop_grace_period,\n"
    "network_mode host/none. YAML merge keys, x- fields and ${VAR} interpolation\n"
    "(the .env beside FILE, then this environment) are followed.\n"
    "\n"
    "What berth does not have (bridge networks, published ports, depends_on,\n"
    "build:, secrets, ...) is listed on stderr as \"berth import: 'NAME': KEY:\n"
    "why\". A service that cannot run at all (no image, an image that cannot be\n"
    "resolved, a named volume without --volumes-dir) is left out, and berth exits 1\n"
    "unless --skip-unmappable. The file written is checked as 'berth validate' does.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE        write the file there (default: standard output)\n"
    "      --volumes-dir DIR    named volumes become bind mounts of DIR/NAME\n"
    "      --registry HOST=PREFIX  name images of HOST as PREFIX/REPO, e.g.\n"
    "                           docker.io=oci://mirror.example or\n"
    "                           127.0.0.1:5000=oci+http://127.0.0.1:5000 (plain http)\n"
    "      --skip-unmappable    leave out what cannot be imported, exit "
    "0\n" BERTH_FETCH_OPTIONS_HELP "  -h, --help               this help\n"
    "\n"
    "Exit status: 0 imported, 1 a service could not be imported or the Compose file\n"
    "is unreadable, 2 usage error.\n"
    "\n"
    "Example:\n"
    "  berth import compose --volumes-dir /srv/volumes docker-compose.yml -o services.yaml\n"
    "  berth validate services.yaml && berth diff -f services.yaml\n";

enum { OPT_VOLUMES = 0x100, OPT_REGISTRY, OPT_SKIP };

static int write_output(const char *out, const char *text)
{
    berth_error err = BERTH_ERROR_INIT;

    if (!out) {
        fputs(text, stdout);
        return fflush(stdout) == 0 ? 0 : -1;
    }
    if (berth_write_file_atomic(out, text, strlen(text), 0644, &err) < 0) {
        berth_print_error("import", &err);
        return -1;
    }
    return 0;
}

/* The file written must be one berth reads: a failure here is a bug in
 * the import, or a value that passed through unchecked. */
static int check_output(const char *text)
{
    struct berth_spec spec = BERTH_SPEC_INIT;
    struct berth_spec_errors errs = BERTH_SPEC_ERRORS_INIT;

    if (berth_spec_parse_buffer(text, strlen(text), "<imported>", &spec, &errs) == 0) {
        berth_spec_release(&spec);
        return 0;
    }
    for (size_t i = 0; i < errs.n; i++) {
        char *line = berth_spec_error_format(&errs.v[i]);
        fprintf(stderr, "berth import: the result is invalid: %s\n", line);
        free(line);
    }
    berth_spec_errors_release(&errs);
    return -1;
}

struct import_args {
    struct berth_fetch_options fetch;
    struct berth_compose_options compose;
    char **registries; /* compose.registries, room for one per argument */
    const char *out;   /* -o FILE, NULL: stdout */
    bool skip;
};

/* The command line into `a`: true to go on, else false with the exit
 * status of --help or the usage error in *ret_exit. */
static bool parse_args(int argc, char **argv, struct berth_globals *g, struct import_args *a,
                       int *ret_exit)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        BERTH_FETCH_LONGOPTS,
        {"output", required_argument, NULL, 'o'},
        {"volumes-dir", required_argument, NULL, OPT_VOLUMES},
        {"registry", required_argument, NULL, OPT_REGISTRY},
        {"skip-unmappable", no_argument, NULL, OPT_SKIP},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct berth_getopt o = {"import", usage_text, ":o:hqv", longopts, g, &a->fetch, 0};
    struct berth_compose_options *copt = &a->compose;
    int c;

    *ret_exit = EXIT_OK;
    while ((c = berth_getopt(argc, argv, &o)) != -1) {
        if (c == BERTH_OPT_EXIT)
            *ret_exit = o.exit;
        else if (c == 'o')
            a->out = optarg;
        else if (c == OPT_VOLUMES && optarg[0] != '/')
            *ret_exit = berth_usage_error("import", "--volumes-dir must be an absolute path");
        else if (c == OPT_VOLUMES)
            copt->volumes_dir = optarg;
        else if (c == OPT_REGISTRY && (!strchr(optarg, '=') || !strstr(optarg, "://")))
            *ret_exit = berth_usage_error("import", "--registry takes HOST=oci://PREFIX");
        else if (c == OPT_REGISTRY)
            a->registries[copt->nregistries++] = optarg;
        else if (c == OPT_SKIP)
            a->skip = true;
        if (c == BERTH_OPT_EXIT || *ret_exit)
            return false;
    }
    if (optind >= argc || strcmp(argv[optind], "compose"))
        *ret_exit = berth_usage_error("import", "expected: berth import compose FILE");
    else if (optind + 2 != argc)
        *ret_exit = berth_usage_error("import", "one Compose FILE");
    return *ret_exit == EXIT_OK;
}

int cmd_import(int argc, char **argv, struct berth_globals *g)
{
    _cleanup_free_ char **registries = xcalloc((size_t)argc + 1, sizeof(char *));
    struct import_args a = {.compose = {.environ = environ, .registries = registries},
                            .registries = registries};
    struct berth_notes notes = BERTH_NOTES_INIT;
    berth_error err = BERTH_ERROR_INIT;
    _cleanup_free_ char *text = NULL;
    int rc;

    berth_fetch_options_init(&a.fetch);
    a.compose.fetch = &a.fetch;
    if (!parse_args(argc, argv, g, &a, &rc))
        return rc;
    if (berth_compose_import(argv[optind + 1], &a.compose, &text, &notes, &err) < 0) {
        berth_print_error("import", &err);
        berth_notes_release(&notes);
        return EXIT_FAIL;
    }
    for (size_t i = 0; i < notes.n; i++)
        fprintf(stderr, "berth import: '%s': %s%s: %s\n", notes.v[i].service,
                notes.v[i].fatal ? (a.skip ? "skipped: " : "cannot import: ") : "",
                notes.v[i].field, notes.v[i].message);
    size_t fatal = berth_notes_fatal(&notes, NULL);
    berth_notes_release(&notes);
    if (check_output(text) < 0 || write_output(a.out, text) < 0)
        return EXIT_FAIL;
    return fatal && !a.skip ? EXIT_FAIL : EXIT_OK;
}
