/* berth export: the services of a desired-state file for another
 * supervisor, Kubernetes or systemd (export.h). What the target cannot
 * express is listed on stderr, never dropped silently. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "export.h"
#include "spec.h"
#include "util.h"

static const char usage_text[] =
    "Usage: berth export kube [OPTIONS] [NAME...]\n"
    "       berth export systemd [OPTIONS] NAME\n"
    "\n"
    "kube: Kubernetes manifests for the services of the file (all of them, or the\n"
    "NAMEs): a Pod per service, or with --kind a Deployment or DaemonSet with the\n"
    "pod template; on the host network (berth's default), the image by digest,\n"
    "command, env, user, mounts (hostPath, tmpfs as emptyDir in memory), limits,\n"
    "capabilities (exactly berth's set), the health check as a probe, the stop\n"
    "timeout as terminationGracePeriodSeconds; a user given by name is looked up\n"
    "in the image when the store under --root has it. A service whose image is\n"
    "not in a registry cannot be named by Kubernetes: it is reported, and berth\n"
    "exits 1 unless --skip-unmappable.\n"
    "\n"
    "systemd: a unit that runs the service with 'berth run' (the same settings,\n"
    "the image fetched and verified by digest first), for hosts that keep their\n"
    "supervisor. A global --root is passed on to the unit's berth commands.\n"
    "\n"
    "Every setting that has no equivalent in the target is listed on stderr as\n"
    "\"berth export: 'NAME': FIELD: why\".\n"
    "\n"
    "Options:\n"
    "  -f, --file FILE          the desired-state file (default --config,\n"
    "                           " BERTH_DEFAULT_CONFIG ")\n"
    "      --kind KIND          kube: pod (default), deployment or daemonset\n"
    "      --json               kube: one JSON List instead of YAML documents\n"
    "      --skip-unmappable    kube: leave out what cannot be exported, exit 0\n"
    "      --berth PATH         systemd: the berth binary (default /usr/bin/berth)\n"
    "      --registry-auth FILE systemd: credentials for the unit's fetch\n"
    "  -h, --help               this help\n"
    "\n"
    "Exit status: 0 exported (notes or not), 1 a service could not be exported\n"
    "or the file is invalid, 2 usage error.\n"
    "\n"
    "Examples:\n"
    "  berth export kube -f services.yaml > pods.yaml && kubectl apply -f pods.yaml\n"
    "  berth export kube --kind deployment web > web.yaml\n"
    "  berth export systemd web > /etc/systemd/system/web.service\n";

enum { OPT_KIND = 0x100, OPT_JSON, OPT_SKIP, OPT_BERTH, OPT_AUTH };

struct export_opts {
    const char *target;
    int kind;
    bool json, skip;
    const char *berth, *auth;
};

static void print_notes(const struct berth_notes *notes, bool skip)
{
    for (size_t i = 0; i < notes->n; i++) {
        const struct berth_note *n = &notes->v[i];
        fprintf(stderr, "berth export: '%s': %s%s: %s\n", n->service,
                n->fatal ? (skip ? "skipped: " : "cannot export: ") : "", n->field, n->message);
    }
}

static int export_kube(const struct berth_globals *g, struct berth_spec *spec, char **names,
                       size_t nnames, const struct export_opts *o)
{
    struct berth_notes notes = BERTH_NOTES_INIT;
    berth_error err = BERTH_ERROR_INIT;
    struct berth_service *svcs = spec->services;
    size_t n = spec->nservices;
    _cleanup_free_ struct berth_service *picked = NULL;
    _cleanup_free_ char *text = NULL;

    if (nnames) {
        picked = xcalloc(nnames, sizeof(*picked));
        for (size_t i = 0; i < nnames; i++) {
            const struct berth_service *s = berth_spec_find(spec, names[i]);
            if (!s) {
                berth_die_msg("export", "no service '%s' in '%s'", names[i], g->config);
                return EXIT_FAIL;
            }
            picked[i] = *s; /* a shallow copy: spec owns the strings */
        }
        svcs = picked;
        n = nnames;
    }
    if (berth_export_kube(svcs, n, (enum berth_kube_kind)o->kind, o->json, g->root, &text, &notes,
                          &err) < 0) {
        berth_print_error("export", &err);
        berth_notes_release(&notes);
        return EXIT_FAIL;
    }
    fputs(text, stdout);
    if (o->json && *text)
        fputc('\n', stdout);
    print_notes(&notes, o->skip);
    size_t fatal = berth_notes_fatal(&notes, NULL);
    berth_notes_release(&notes);
    return fatal && !o->skip ? EXIT_FAIL : EXIT_OK;
}

static int export_systemd(struct berth_globals *g, struct berth_spec *spec, const char *name,
                          const struct export_opts *o)
{
    struct berth_notes notes = BERTH_NOTES_INIT;
    berth_error err = BERTH_ERROR_INIT;
    _cleanup_free_ char *text = NULL;
    const struct berth_service *s = berth_spec_find(spec, name);

    if (!s) {
        berth_die_msg("export", "no service '%s' in the file", name);
        return EXIT_FAIL;
    }
    struct berth_systemd_options so = {
        .berth = o->berth,
        .root = strcmp(g->root, BERTH_DEFAULT_ROOT) ? g->root : NULL,
        .auth = o->auth,
    };
    int r = berth_export_systemd(s, &so, &text, &notes, &err);
    print_notes(&notes, false);
    berth_notes_release(&notes);
    if (r < 0) {
        berth_print_error("export", &err);
        return EXIT_FAIL;
    }
    fputs(text, stdout);
    return EXIT_OK;
}

static int parse_args(int argc, char **argv, struct berth_globals *g, struct export_opts *o)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"file", required_argument, NULL, 'f'},
        {"kind", required_argument, NULL, OPT_KIND},
        {"json", no_argument, NULL, OPT_JSON},
        {"skip-unmappable", no_argument, NULL, OPT_SKIP},
        {"berth", required_argument, NULL, OPT_BERTH},
        {"registry-auth", required_argument, NULL, OPT_AUTH},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    struct berth_getopt opts = {"export", usage_text, ":f:hqv", longopts, g, NULL, 0};
    while ((c = berth_getopt(argc, argv, &opts)) != -1) {
        switch (c) {
        case BERTH_OPT_EXIT:
            if (opts.exit == EXIT_OK)
                exit(EXIT_OK); /* --help */
            return opts.exit;
        case 'f':
            g->config = optarg;
            break;
        case OPT_KIND:
            if ((o->kind = berth_kube_kind_from_name(optarg)) < 0)
                return berth_usage_error("export", "--kind is pod, deployment or daemonset");
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_SKIP:
            o->skip = true;
            break;
        case OPT_BERTH:
            o->berth = optarg;
            break;
        case OPT_AUTH:
            o->auth = optarg;
            break;
        }
    }
    if (optind >= argc)
        return berth_usage_error("export", "no target given: kube or systemd");
    o->target = argv[optind++];
    if (strcmp(o->target, "kube") && strcmp(o->target, "systemd"))
        return berth_usage_error("export", "unknown target '%s': kube or systemd", o->target);
    if (!strcmp(o->target, "systemd") && optind + 1 != argc)
        return berth_usage_error("export", "systemd takes one NAME");
    return 0;
}

int cmd_export(int argc, char **argv, struct berth_globals *g)
{
    struct export_opts o = {0};
    struct berth_spec spec = BERTH_SPEC_INIT;
    int r = parse_args(argc, argv, g, &o);

    if (r)
        return r;
    if (berth_load_spec(g->config, &spec) < 0)
        return EXIT_FAIL;
    if (!strcmp(o.target, "kube"))
        r = export_kube(g, &spec, argv + optind, (size_t)(argc - optind), &o);
    else
        r = export_systemd(g, &spec, argv[optind], &o);
    berth_spec_release(&spec);
    return r;
}
