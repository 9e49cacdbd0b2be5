#include "export.h"

#include <errno.h>
#include <jansson.h>
#include <sys/capability.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "caps.h"
#include "registry.h"
#include "run-config.h"
#include "user.h"
#include "util.h"
#include "yaml-emit.h"

/* ---- notes ----------------------------------------------------------- */

void berth_notes_add(struct berth_notes *notes, const char *service, const char *field, bool fatal,
                     const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    notes->v = xrealloc(notes->v, (notes->n + 1) * sizeof(*notes->v));
    notes->v[notes->n++] = (struct berth_note){
        .service = xstrdup(service),
        .field = xstrdup(field),
        .message = msg ? msg : xstrdup("(out of memory)"),
        .fatal = fatal,
    };
}

void berth_notes_release(struct berth_notes *notes)
{
    for (size_t i = 0; i < notes->n; i++) {
        free(notes->v[i].service);
        free(notes->v[i].field);
        free(notes->v[i].message);
    }
    free(notes->v);
    notes->v = NULL;
    notes->n = 0;
}

size_t berth_notes_fatal(const struct berth_notes *notes, const char *service)
{
    size_t k = 0;

    for (size_t i = 0; i < notes->n; i++)
        if (notes->v[i].fatal && (!service || !strcmp(notes->v[i].service, service)))
            k++;
    return k;
}

/* ---- helpers --------------------------------------------------------- */

int berth_kube_kind_from_name(const char *name)
{
    if (!strcmp(name, "pod"))
        return BERTH_KUBE_POD;
    if (!strcmp(name, "deployment"))
        return BERTH_KUBE_DEPLOYMENT;
    if (!strcmp(name, "daemonset"))
        return BERTH_KUBE_DAEMONSET;
    return -1;
}

char *berth_kube_name(const char *service)
{
    char *s = xstrdup(service);

    for (char *p = s; *p; p++)
        if (*p == '_' || *p == '.')
            *p = '-';
    return s;
}

/* Kubernetes expands $(VAR) in command, args and env values, and turns
 * $$ into $; berth passes them as written. */
static json_t *kube_literal(const char *s)
{
    size_t n = strlen(s);
    _cleanup_free_ char *out = xmalloc(2 * n + 1);
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        out[k++] = s[i];
        if (s[i] == '$' && (s[i + 1] == '$' || s[i + 1] == '('))
            out[k++] = '$';
    }
    out[k] = '\0';
    return json_string(out);
}

static json_t *literal_array(char *const *v, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, kube_literal(v[i]));
    return a;
}

/* A quantity in bytes, in the largest binary unit that divides it. */
static json_t *kube_bytes(uint64_t b)
{
    static const char *const units[] = {"Ki", "Mi", "Gi", "Ti"};
    const char *unit = "";

    for (size_t i = 0; i < ARRAY_SIZE(units) && b && b % 1024 == 0; i++) {
        b /= 1024;
        unit = units[i];
    }
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu%s", (unsigned long long)b, unit);
    return json_string(buf);
}

static json_t *kube_cpu(unsigned milli)
{
    char buf[32];

    if (milli % 1000 == 0)
        snprintf(buf, sizeof(buf), "%u", milli / 1000);
    else
        snprintf(buf, sizeof(buf), "%um", milli);
    return json_string(buf);
}

/* Whole seconds, rounded up; at least `min`. */
static json_int_t seconds_up(uint64_t ms, json_int_t min)
{
    json_int_t s = (json_int_t)((ms + 999) / 1000);
    return s < min ? min : s;
}

static char *ms_text(uint64_t ms)
{
    if (ms % 1000)
        return xasprintf("%llums", (unsigned long long)ms);
    return xasprintf("%llus", (unsigned long long)(ms / 1000));
}

/* "NET_ADMIN" for CAP_NET_ADMIN (libcap says "cap_net_admin") */
static char *cap_to_name_upper(int c)
{
    char *lc = cap_to_name((cap_value_t)c);
    char *s = xstrdup(lc && !strncmp(lc, "cap_", 4) ? lc + 4 : lc ? lc : "?");

    cap_free(lc);
    for (char *p = s; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    return s;
}

/* ---- Kubernetes: the container --------------------------------------- */

/* "HOST/REPO@sha256:HEX" for a registry image; NULL (and a fatal note)
 * for anything a node cannot pull. */
static char *kube_image(const struct berth_service *s, struct berth_notes *notes)
{
    struct berth_registry_ref ref = {0};
    berth_error err = BERTH_ERROR_INIT;

    if (!berth_registry_is_url(s->image.url)) {
        berth_notes_add(notes, s->name, "image.url", true,
                        "'%s' is an HTTP(S) artifact; Kubernetes nodes pull images only from "
                        "registries: push the image to one (skopeo copy) and name it with "
                        "oci://HOST/REPO@sha256:...",
                        s->image.url);
        return NULL;
    }
    if (berth_registry_ref_parse(s->image.url, &ref, &err) < 0) {
        berth_notes_add(notes, s->name, "image.url", true, "%s", err.msg);
        return NULL;
    }
    const char *host = !strcmp(ref.host, "registry-1.docker.io") ? "docker.io" : ref.host;
    char *image = xasprintf("%s/%s@%s", host, ref.repo, s->image.digest);
    if (ref.plain_http)
        berth_notes_add(notes, s->name, "image.url", false,
                        "'%s' is served over plain HTTP: the nodes' container runtime must list "
                        "'%s' as an insecure registry",
                        ref.host, ref.host);
    if (s->image.nmirrors)
        berth_notes_add(notes, s->name, "image.mirrors", false,
                        "%zu mirror(s) not exported: registry mirrors are the nodes' container "
                        "runtime configuration (containerd hosts.toml, registries.conf)",
                        s->image.nmirrors);
    if (s->image.signature_url)
        berth_notes_add(notes, s->name, "image.signature", false,
                        "the minisign signature is not checked by Kubernetes; use an admission "
                        "policy that verifies images (sigstore policy-controller, Kyverno)");
    berth_registry_ref_release(&ref);
    return image;
}

static json_t *kube_capabilities(const struct berth_service *s)
{
    uint64_t caps = berth_run_config_caps(s);

    /* Runtimes differ in their default set (containerd: Docker's, with
     * NET_RAW; CRI-O: a smaller one): drop them all and add berth's set,
     * so the container gets exactly what it has under berth. */
    json_t *add = json_array();
    bool all = true;
    for (int c = 0; c < (int)cap_max_bits() && c < 64; c++) {
        if (!(caps & (1ULL << c))) {
            all = false;
            continue;
        }
        char *name = cap_to_name_upper(c);
        json_array_append_new(add, json_string(name));
        free(name);
    }
    if (all) {
        json_decref(add);
        return json_pack("{s:[s]}", "add", "ALL");
    }
    return json_pack("{s:[s],s:o}", "drop", "ALL", "add", add);
}

static bool numeric(const char *s, size_t n)
{
    if (!n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* A user name, as berth would resolve it: in the image's /etc/passwd, if
 * the image is in the store. */
static bool user_from_image(const struct berth_service *s, const char *root, json_t *sc)
{
    struct berth_user u = {0};
    berth_error err = BERTH_ERROR_INIT;

    if (!root)
        return false;
    _cleanup_free_ char *rootfs = xasprintf("%s/images/%s/rootfs", root, s->image.digest + 7);
    if (access(rootfs, F_OK) < 0 || berth_user_resolve(rootfs, s->user, &u, &err) < 0)
        return false;
    json_object_set_new(sc, "runAsUser", json_integer(u.uid));
    json_object_set_new(sc, "runAsGroup", json_integer(u.gid));
    berth_user_release(&u);
    return true;
}

static void kube_security(const struct berth_service *s, const char *root, json_t *c,
                          struct berth_notes *notes)
{
    json_t *sc = json_object();

    if (s->user) {
        const char *colon = strchr(s->user, ':');
        size_t ulen = colon ? (size_t)(colon - s->user) : strlen(s->user);
        if (numeric(s->user, ulen) && (!colon || numeric(colon + 1, strlen(colon + 1)))) {
            json_object_set_new(sc, "runAsUser", json_integer(strtoll(s->user, NULL, 10)));
            if (colon)
                json_object_set_new(sc, "runAsGroup", json_integer(strtoll(colon + 1, NULL, 10)));
        } else if (!user_from_image(s, root, sc)) {
            berth_notes_add(notes, s->name, "user", false,
                            "'%s' names a user of the image, which is not in the store under "
                            "--root; Kubernetes takes only numbers (runAsUser, runAsGroup): not "
                            "exported, the image's user applies",
                            s->user);
        }
    }
    /* berth sets no_new_privs on every container */
    json_object_set_new(sc, "allowPrivilegeEscalation", json_false());
    json_object_set_new(sc, "capabilities", kube_capabilities(s));
    json_object_set_new(sc, "readOnlyRootFilesystem", json_boolean(s->readonly_rootfs));
    if (!s->seccomp) {
        json_object_set_new(sc, "seccompProfile", json_pack("{s:s}", "type", "RuntimeDefault"));
    } else if (!strcmp(s->seccomp, "unconfined")) {
        json_object_set_new(sc, "seccompProfile", json_pack("{s:s}", "type", "Unconfined"));
    } else {
        const char *base = strrchr(s->seccomp, '/') + 1;
        _cleanup_free_ char *rel = xasprintf("berth/%s", base);
        json_object_set_new(sc, "seccompProfile",
                            json_pack("{s:s,s:s}", "type", "Localhost", "localhostProfile", rel));
        berth_notes_add(notes, s->name, "seccomp", false,
                        "the profile '%s' must be copied to every node as "
                        "<kubelet root>/seccomp/%s",
                        s->seccomp, rel);
    }
    json_object_set_new(c, "securityContext", sc);
}

static void kube_resources(const struct berth_service *s, json_t *c, struct berth_notes *notes)
{
    json_t *limits = json_object();

    if (s->limits.memory)
        json_object_set_new(limits, "memory", kube_bytes(s->limits.memory));
    if (s->limits.cpus_milli)
        json_object_set_new(limits, "cpu", kube_cpu(s->limits.cpus_milli));
    if (json_object_size(limits))
        json_object_set_new(c, "resources", json_pack("{s:o}", "limits", limits));
    else
        json_decref(limits);
    if (s->limits.pids)
        berth_notes_add(notes, s->name, "limits.pids", false,
                        "%llu pids: Kubernetes limits pids per pod only on the node "
                        "(kubelet's podPidsLimit), not in the manifest",
                        (unsigned long long)s->limits.pids);
    if (s->limits.nofile)
        berth_notes_add(notes, s->name, "limits.nofile", false,
                        "nofile %llu: Kubernetes has no per-container RLIMIT_NOFILE; it is the "
                        "container runtime's default",
                        (unsigned long long)s->limits.nofile);
}

static void kube_mounts(const struct berth_service *s, json_t *c, json_t *pod)
{
    json_t *vols = json_array(), *vms = json_array();

    for (size_t i = 0; i < s->nmounts; i++) {
        const struct berth_mount *m = &s->mounts[i];
        _cleanup_free_ char *name = xasprintf("mount-%zu", i);
        json_t *vm = json_pack("{s:s,s:s}", "name", name, "mountPath", m->target);
        if (m->tmpfs) {
            json_t *ed = json_pack("{s:s}", "medium", "Memory");
            if (m->size)
                json_object_set_new(ed, "sizeLimit", kube_bytes(m->size));
            json_array_append_new(vols, json_pack("{s:s,s:o}", "name", name, "emptyDir", ed));
        } else {
            json_array_append_new(
                vols, json_pack("{s:s,s:{s:s}}", "name", name, "hostPath", "path", m->source));
            if (m->readonly)
                json_object_set_new(vm, "readOnly", json_true());
        }
        json_array_append_new(vms, vm);
    }
    if (s->nmounts) {
        json_object_set_new(c, "volumeMounts", vms);
        json_object_set_new(pod, "volumes", vols);
    } else {
        json_decref(vms);
        json_decref(vols);
    }
}

static void kube_health(const struct berth_service *s, json_t *c, struct berth_notes *notes)
{
    if (!s->healthcheck.ncommand)
        return;
    json_t *probe = json_pack("{s:{s:o},s:I,s:I,s:I}", "exec", "command",
                              literal_array(s->healthcheck.command, s->healthcheck.ncommand),
                              "periodSeconds", seconds_up(s->healthcheck.interval_ms, 1),
                              "timeoutSeconds", seconds_up(s->healthcheck.timeout_ms, 1),
                              "failureThreshold", (json_int_t)s->healthcheck.retries);
    if (s->healthcheck.interval_ms % 1000 || s->healthcheck.timeout_ms % 1000)
        berth_notes_add(notes, s->name, "healthcheck", false,
                        "probes count whole seconds: interval and timeout rounded up");
    if (s->healthcheck.restart_on_unhealthy) {
        json_object_set_new(c, "livenessProbe", probe);
    } else {
        /* berth only reports an unhealthy service; a liveness probe would
         * restart it */
        json_object_set_new(c, "readinessProbe", probe);
        berth_notes_add(notes, s->name, "healthcheck", false,
                        "berth only reports an unhealthy service (restart_on_unhealthy: false): "
                        "exported as a readinessProbe, which takes the pod out of Services; with "
                        "restart_on_unhealthy: true it is a livenessProbe");
    }
}

static void kube_stop(const struct berth_service *s, json_t *c, json_t *pod,
                      struct berth_notes *notes)
{
    json_object_set_new(pod, "terminationGracePeriodSeconds",
                        json_integer(seconds_up(s->stop_timeout_ms, 0)));
    if (s->stop_timeout_ms % 1000)
        berth_notes_add(notes, s->name, "stop_timeout", false,
                        "terminationGracePeriodSeconds counts whole seconds: rounded up");
    if (s->stop_signal == SIGTERM)
        return;
    const char *sig = berth_signal_name(s->stop_signal);
    _cleanup_free_ char *script = xasprintf("kill -%s 1", sig + 3);
    json_object_set_new(
        c, "lifecycle",
        json_pack("{s:{s:{s:[s,s,s]}}}", "preStop", "exec", "command", "/bin/sh", "-c", script));
    berth_notes_add(notes, s->name, "stop_signal", false,
                    "Kubernetes stops with SIGTERM; a preStop hook sends %s to the container's "
                    "pid 1 first (it needs /bin/sh and kill in the image)",
                    sig);
}

static json_t *kube_container(const struct berth_service *s, const char *kname, const char *image,
                              const char *root, json_t *pod, struct berth_notes *notes)
{
    json_t *c = json_pack("{s:s,s:s}", "name", kname, "image", image);

    if (s->ncommand) {
        /* command replaces the entrypoint, args its cmd: berth's command
         * replaces both */
        json_object_set_new(c, "command", literal_array(s->command, 1));
        if (s->ncommand > 1)
            json_object_set_new(c, "args", literal_array(s->command + 1, s->ncommand - 1));
    }
    if (s->workdir)
        json_object_set_new(c, "workingDir", json_string(s->workdir));
    if (s->nenv) {
        json_t *env = json_array();
        for (size_t i = 0; i < s->nenv; i++)
            json_array_append_new(env, json_pack("{s:s,s:o}", "name", s->env[i].name, "value",
                                                 kube_literal(s->env[i].value)));
        json_object_set_new(c, "env", env);
    }
    kube_resources(s, c, notes);
    kube_mounts(s, c, pod);
    kube_health(s, c, notes);
    kube_stop(s, c, pod, notes);
    kube_security(s, root, c, notes);
    return c;
}

static const char *const restart_policies[] = {"Always", "OnFailure", "Never"};

static void kube_notes_service(const struct berth_service *s, enum berth_kube_kind kind,
                               struct berth_notes *notes)
{
    /* berth's default (1s) is not the kubelet's either: said unless equal */
    if (s->backoff.initial_ms != 10000 || s->backoff.max_ms != 300000 ||
        s->backoff.reset_after_ms != 600000)
        berth_notes_add(notes, s->name, "backoff", false,
                        "the kubelet's restart back-off is fixed (10s doubling to 5m, reset "
                        "after 10m of running): berth's (%llums to %llums) is not exported",
                        (unsigned long long)s->backoff.initial_ms,
                        (unsigned long long)s->backoff.max_ms);
    if (s->log.max_size != 10ULL << 20 || s->log.max_files != 5)
        berth_notes_add(notes, s->name, "log", false,
                        "log rotation is the kubelet's (containerLogMaxSize, "
                        "containerLogMaxFiles; 10Mi and 5 by default), not the manifest's");
    if (s->hostname && s->network == BERTH_NETWORK_HOST)
        berth_notes_add(notes, s->name, "hostname", false,
                        "'%s' not exported: a pod on the host network has the node's hostname",
                        s->hostname);
    if (kind != BERTH_KUBE_POD && s->restart != BERTH_RESTART_ALWAYS)
        berth_notes_add(notes, s->name, "restart", false,
                        "'%s' is exported as Always: Deployments and DaemonSets restart every "
                        "exit (use --kind pod for OnFailure or Never)",
                        s->restart == BERTH_RESTART_NEVER ? "never" : "on-failure");
    if (!s->enabled && kind != BERTH_KUBE_DEPLOYMENT)
        berth_notes_add(notes, s->name, "enabled", false,
                        "the service is disabled, but this %s will run (a Deployment has "
                        "replicas: 0 for it)",
                        kind == BERTH_KUBE_POD ? "Pod" : "DaemonSet");
    if (s->network == BERTH_NETWORK_NONE)
        berth_notes_add(notes, s->name, "network", false,
                        "Kubernetes has no pod without a network: the pod gets the cluster "
                        "network, and a NetworkPolicy denying all its ingress and egress, which "
                        "only a network plugin that enforces policies (Calico, Cilium) applies");
}

static json_t *kube_pod_spec(const struct berth_service *s, const char *kname, const char *image,
                             const char *root, enum berth_kube_kind kind, struct berth_notes *notes)
{
    json_t *pod = json_object();

    if (s->network == BERTH_NETWORK_HOST) {
        json_object_set_new(pod, "hostNetwork", json_true());
        /* berth gives a container the host's /etc/resolv.conf */
        json_object_set_new(pod, "dnsPolicy", json_string("Default"));
    } else if (s->hostname) {
        json_object_set_new(pod, "hostname", json_string(s->hostname));
    }
    json_object_set_new(
        pod, "restartPolicy",
        json_string(kind == BERTH_KUBE_POD ? restart_policies[s->restart] : "Always"));
    json_t *c = kube_container(s, kname, image, root, pod, notes);
    json_object_set_new(pod, "containers", json_pack("[o]", c));
    kube_notes_service(s, kind, notes);
    return pod;
}

static json_t *kube_object(const struct berth_service *s, const char *kname, const char *image,
                           const char *root, enum berth_kube_kind kind, struct berth_notes *notes)
{
    json_t *labels = json_pack("{s:s}", "app.kubernetes.io/name", kname);
    json_t *meta = json_pack("{s:s,s:O,s:{s:s}}", "name", kname, "labels", labels, "annotations",
                             "berth.example/service", s->name);
    json_t *spec = kube_pod_spec(s, kname, image, root, kind, notes);

    if (kind == BERTH_KUBE_POD) {
        json_decref(labels);
        return json_pack("{s:s,s:s,s:o,s:o}", "apiVersion", "v1", "kind", "Pod", "metadata", meta,
                         "spec", spec);
    }
    json_t *tmpl = json_pack("{s:{s:O},s:o}", "metadata", "labels", labels, "spec", spec);
    json_t *ctl = json_pack("{s:{s:O},s:o}", "selector", "matchLabels", labels, "template", tmpl);
    json_decref(labels);
    if (kind == BERTH_KUBE_DEPLOYMENT) {
        json_object_set_new(ctl, "replicas", json_integer(s->enabled ? 1 : 0));
        /* berth stops the old container before it starts the new one */
        json_object_set_new(ctl, "strategy", json_pack("{s:s}", "type", "Recreate"));
    }
    return json_pack("{s:s,s:s,s:o,s:o}", "apiVersion", "apps/v1", "kind",
                     kind == BERTH_KUBE_DEPLOYMENT ? "Deployment" : "DaemonSet", "metadata", meta,
                     "spec", ctl);
}

static json_t *kube_deny_all(const char *kname)
{
    _cleanup_free_ char *name = xasprintf("%s-no-network", kname);
    return json_pack("{s:s,s:s,s:{s:s},s:{s:{s:{s:s}},s:[s,s]}}", "apiVersion",
                     "networking.k8s.io/v1", "kind", "NetworkPolicy", "metadata", "name", name,
                     "spec", "podSelector", "matchLabels", "app.kubernetes.io/name", kname,
                     "policyTypes", "Ingress", "Egress");
}

int berth_export_kube(const struct berth_service *svcs, size_t n, enum berth_kube_kind kind,
                      bool json, const char *root, char **ret, struct berth_notes *notes,
                      berth_error *err)
{
    json_t **docs = NULL;
    size_t ndocs = 0;
    int r = 0;

    for (size_t i = 0; i < n; i++) {
        const struct berth_service *s = &svcs[i];
        _cleanup_free_ char *image = kube_image(s, notes);
        if (!image)
            continue;
        _cleanup_free_ char *kname = berth_kube_name(s->name);
        if (strcmp(kname, s->name))
            berth_notes_add(notes, s->name, "name", false,
                            "named '%s' in Kubernetes (names take no '_' or '.')", kname);
        docs = xrealloc(docs, (ndocs + 2) * sizeof(*docs));
        docs[ndocs++] = kube_object(s, kname, image, root, kind, notes);
        if (s->network == BERTH_NETWORK_NONE)
            docs[ndocs++] = kube_deny_all(kname);
    }
    if (json) {
        json_t *list = json_pack("{s:s,s:s,s:[]}", "apiVersion", "v1", "kind", "List", "items");
        for (size_t i = 0; i < ndocs; i++)
            json_array_append(json_object_get(list, "items"), docs[i]);
        *ret = json_dumps(list, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(list);
        if (!*ret)
            r = berth_error_set(err, ENOMEM, "writing JSON");
    } else if (ndocs) {
        r = berth_yaml_emit(docs, ndocs, ret, err);
    } else {
        *ret = xstrdup("");
    }
    for (size_t i = 0; i < ndocs; i++)
        json_decref(docs[i]);
    free(docs);
    return r;
}

/* ---- systemd ----------------------------------------------------------- */

/* One word of a command line in a unit: quoted unless plain; % and $ are
 * specifiers and variables there, doubled to stay literal. */
static void unit_word(FILE *f, const char *w)
{
    bool plain = *w != '\0';

    for (const char *p = w; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("/_.:=@+,-", *p)))
            plain = false;
    if (plain) {
        fputs(w, f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)w; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '%' || *p == '$')
            fprintf(f, "%c%c", *p, *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void unit_words(FILE *f, const char *first, ...)
{
    va_list ap;

    va_start(ap, first);
    for (const char *w = first; w; w = va_arg(ap, const char *)) {
        fputc(' ', f);
        unit_word(f, w);
    }
    va_end(ap);
}

static void unit_berth(FILE *f, const char *key, const struct berth_systemd_options *opt)
{
    fprintf(f, "%s=", key);
    unit_word(f, opt->berth ? opt->berth : "/usr/bin/berth");
    if (opt->root)
        unit_words(f, "--root", opt->root, NULL);
}

static void unit_fetch(FILE *f, const struct berth_service *s,
                       const struct berth_systemd_options *opt)
{
    static const char *const formats[] = {"auto", "rootfs", "oci", "docker"};

    unit_berth(f, "ExecStartPre", opt);
    unit_words(f, "fetch", s->image.url, "--digest", s->image.digest, NULL);
    for (size_t i = 0; i < s->image.nmirrors; i++)
        unit_words(f, "--mirror", s->image.mirrors[i], NULL);
    if (s->image.format != BERTH_FORMAT_AUTO)
        unit_words(f, "--format", formats[s->image.format], NULL);
    if (s->image.signature_url)
        unit_words(f, "--signature", s->image.signature_url, "--public-key",
                   s->image.signature_public_key, NULL);
    if (opt->auth)
        unit_words(f, "--registry-auth", opt->auth, NULL);
    fputc('\n', f);
}

static int unit_mounts(FILE *f, const struct berth_service *s, struct berth_notes *notes)
{
    for (size_t i = 0; i < s->nmounts; i++) {
        const struct berth_mount *m = &s->mounts[i];
        _cleanup_free_ char *arg = NULL;
        if (m->tmpfs) {
            arg = m->size ? xasprintf("%s:%llu", m->target, (unsigned long long)m->size)
                          : xstrdup(m->target);
            unit_words(f, "--tmpfs", arg, NULL);
            continue;
        }
        if (strchr(m->source, ':') || strchr(m->target, ':')) {
            berth_notes_add(notes, s->name, "mounts", true,
                            "berth run -v cannot name '%s' or '%s': a path holds ':'", m->source,
                            m->target);
            return -1;
        }
        arg = xasprintf("%s:%s%s", m->source, m->target, m->readonly ? ":ro" : "");
        unit_words(f, "-v", arg, NULL);
    }
    return 0;
}

static int unit_run(FILE *f, const struct berth_service *s, const struct berth_systemd_options *opt,
                    struct berth_notes *notes)
{
    char num[64];

    unit_berth(f, "ExecStart", opt);
    unit_words(f, "run", "--name", s->name, NULL);
    for (size_t i = 0; i < s->nenv; i++) {
        _cleanup_free_ char *kv = xasprintf("%s=%s", s->env[i].name, s->env[i].value);
        unit_words(f, "-e", kv, NULL);
    }
    if (s->workdir)
        unit_words(f, "-w", s->workdir, NULL);
    if (s->user)
        unit_words(f, "-u", s->user, NULL);
    if (unit_mounts(f, s, notes) < 0)
        return -1;
    if (s->readonly_rootfs)
        unit_words(f, "--read-only", NULL);
    if (s->network == BERTH_NETWORK_NONE)
        unit_words(f, "--network", "none", NULL);
    if (s->hostname)
        unit_words(f, "--hostname", s->hostname, NULL);
    if (s->limits.memory) {
        snprintf(num, sizeof(num), "%llu", (unsigned long long)s->limits.memory);
        unit_words(f, "--memory", num, NULL);
    }
    if (s->limits.cpus_milli) {
        snprintf(num, sizeof(num), "%u.%03u", s->limits.cpus_milli / 1000,
                 s->limits.cpus_milli % 1000);
        unit_words(f, "--cpus", num, NULL);
    }
    if (s->limits.pids) {
        snprintf(num, sizeof(num), "%llu", (unsigned long long)s->limits.pids);
        unit_words(f, "--pids", num, NULL);
    }
    if (s->limits.nofile) {
        snprintf(num, sizeof(num), "%llu", (unsigned long long)s->limits.nofile);
        unit_words(f, "--nofile", num, NULL);
    }
    /* drops after adds: berth applies add, then drop */
    for (size_t i = 0; i < s->ncap_add; i++)
        unit_words(f, "--cap-add", s->cap_add[i], NULL);
    for (size_t i = 0; i < s->ncap_drop; i++)
        unit_words(f, "--cap-drop", s->cap_drop[i], NULL);
    if (s->seccomp)
        unit_words(f, "--seccomp", s->seccomp, NULL);
    _cleanup_free_ char *stop = ms_text(s->stop_timeout_ms);
    unit_words(f, "--stop-signal", berth_signal_name(s->stop_signal), "--stop-timeout", stop, NULL);
    _cleanup_free_ char *image = xasprintf("%s", s->image.digest);
    unit_words(f, image, NULL);
    if (s->ncommand) {
        unit_words(f, "--", NULL);
        for (size_t i = 0; i < s->ncommand; i++)
            unit_words(f, s->command[i], NULL);
    }
    fputc('\n', f);
    return 0;
}

static void systemd_notes(const struct berth_service *s, struct berth_notes *notes)
{
    if (s->healthcheck.ncommand)
        berth_notes_add(notes, s->name, "healthcheck", false,
                        "berth run has no health checks: the unit does not run '%s'",
                        s->healthcheck.command[0]);
    if (s->backoff.max_ms != s->backoff.initial_ms)
        berth_notes_add(notes, s->name, "backoff", false,
                        "RestartSec= is the first delay; systemd 252 does not grow it (254's "
                        "RestartSteps= and RestartMaxDelaySec= do)");
    if (s->log.max_size != 10ULL << 20 || s->log.max_files != 5)
        berth_notes_add(notes, s->name, "log", false,
                        "the output goes to the journal: its size is journald's "
                        "(SystemMaxUse=), not log.max_size and max_files");
    if (!s->enabled)
        berth_notes_add(notes, s->name, "enabled", false,
                        "the service is disabled: do not enable the unit");
}

int berth_export_systemd(const struct berth_service *s, const struct berth_systemd_options *opt,
                         char **ret, struct berth_notes *notes, berth_error *err)
{
    static const char *const restart[] = {"always", "on-failure", "no"};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (!f)
        return berth_error_set(err, errno, "open_memstream");
    fprintf(f,
            "# The berth service '%s' as a unit of its own: berth run in the foreground,\n"
            "# the image fetched and verified by digest first (berth export systemd).\n"
            "[Unit]\nDescription=%s (berth run)\n"
            "Wants=network-online.target\nAfter=network-online.target\n\n"
            "[Service]\nType=exec\n",
            s->name, s->name);
    unit_fetch(f, s, opt);
    if (unit_run(f, s, opt, notes) < 0) {
        fclose(f);
        free(buf);
        return berth_error_set(err, 0, "'%s' cannot be run by berth run", s->name);
    }
    _cleanup_free_ char *sec = ms_text(s->backoff.initial_ms);
    /* berth run turns SIGTERM into the stop signal and kills after the stop
     * timeout; systemd waits a little longer, then kills what is left */
    _cleanup_free_ char *tstop = ms_text(s->stop_timeout_ms + 5000);
    fprintf(f,
            "Restart=%s\nRestartSec=%s\nKillMode=mixed\nKillSignal=SIGTERM\nTimeoutStopSec=%s\n"
            "\n[Install]\nWantedBy=multi-user.target\n",
            restart[s->restart], sec, tstop);
    systemd_notes(s, notes);
    if (fclose(f) != 0) {
        free(buf);
        return berth_error_set(err, ENOMEM, "writing the unit");
    }
    *ret = buf;
    return 0;
}
