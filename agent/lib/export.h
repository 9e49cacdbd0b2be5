/* Migration bridges out of berth: the services of a desired-state file as
 * Kubernetes manifests, or as a systemd unit that runs the same container
 * with `berth run`.
 *
 * Nothing is dropped silently: every setting that the target cannot
 * express, or expresses only approximately, becomes a note (service,
 * field, message) for the caller to show. A service that the target
 * cannot run at all (an image Kubernetes cannot name) is an error for
 * that service, with the reason.
 *
 *     struct berth_notes notes = BERTH_NOTES_INIT;
 *     char *yaml;
 *     if (berth_export_kube(svcs, n, BERTH_KUBE_POD, &yaml, &notes, &err) < 0) ...
 *     for (size_t i = 0; i < notes.n; i++) ... notes.v[i] ...
 *     berth_notes_release(&notes);
 */
#ifndef BERTH_EXPORT_H
#define BERTH_EXPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "spec.h"

/* ---- Notes: what did not carry over --------------------------------- */

struct berth_note {
    char *service; /* the service's name */
    char *field;   /* "limits.pids", "ports", "image" */
    char *message; /* lowercase, no final full stop */
    bool fatal;    /* the service itself could not be carried over */
};

struct berth_notes {
    struct berth_note *v;
    size_t n;
};

#define BERTH_NOTES_INIT \
    {                    \
        NULL, 0          \
    }

void berth_notes_add(struct berth_notes *notes, const char *service, const char *field, bool fatal,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void berth_notes_release(struct berth_notes *notes);
/* How many notes are fatal for `service` (NULL: for any service). */
size_t berth_notes_fatal(const struct berth_notes *notes, const char *service);

/* ---- Kubernetes ------------------------------------------------------ */

enum berth_kube_kind {
    BERTH_KUBE_POD = 0, /* a Pod per service (the default) */
    BERTH_KUBE_DEPLOYMENT,
    BERTH_KUBE_DAEMONSET,
};

/* "pod", "deployment", "daemonset" → its kind; -1 for anything else. */
int berth_kube_kind_from_name(const char *name);

/* The Kubernetes name for a berth service name: '_' and '.' become '-'
 * (a DNS-1123 label, as container names must be). */
char *berth_kube_name(const char *service);

/* Kubernetes manifests for the `n` services, one YAML document per object
 * (`json`: one JSON document, a v1 List, instead). Per service: the
 * Pod (or the controller with the pod template), and for `network: none`
 * a NetworkPolicy that denies all ingress and egress of its pods. A
 * service Kubernetes cannot run (an image that is an HTTP(S) tarball: a
 * node pulls from registries only) gets a fatal note and no manifest;
 * the others are exported. A user given by name is looked up in the
 * image's /etc/passwd when the image is in the store under `root` (NULL:
 * never), since Kubernetes takes numbers only. Returns 0 with the text in
 * `ret` (malloc'ed;
 * "" when every service was fatal), -1 only when the text could not be
 * made. */
BERTH_MUST_CHECK int berth_export_kube(const struct berth_service *svcs, size_t n,
                                       enum berth_kube_kind kind, bool json, const char *root,
                                       char **ret, struct berth_notes *notes, berth_error *err);

/* ---- systemd --------------------------------------------------------- */

struct berth_systemd_options {
    const char *berth; /* the binary in ExecStart= (default /usr/bin/berth) */
    const char *root;  /* --root for berth run and fetch; NULL: berth's default */
    const char *auth;  /* --registry-auth FILE for the fetch; NULL: none */
};

/* A systemd service unit that runs `svc` with `berth run` in the
 * foreground: ExecStartPre= fetches and verifies the image by digest
 * (`berth fetch`, its mirrors too), ExecStart= runs `berth run
 * sha256:DIGEST` with every setting berth run takes (the command, env,
 * workdir, user, mounts, network, hostname, limits, capabilities,
 * seccomp, stop signal and timeout), Restart= from the restart policy,
 * RestartSec= from backoff.initial, TimeoutStopSec= the stop timeout plus
 * a margin (berth run forwards SIGTERM as the stop signal and kills after
 * the stop timeout itself). What a unit has no place for (health checks,
 * the backoff's growth, log rotation, enabled: false) is noted. */
BERTH_MUST_CHECK int berth_export_systemd(const struct berth_service *svc,
                                          const struct berth_systemd_options *opt, char **ret,
                                          struct berth_notes *notes, berth_error *err);

#endif
