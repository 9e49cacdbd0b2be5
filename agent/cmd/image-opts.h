/* Options shared by the verbs that download images (fetch, pin), and the
 * one-line progress display they show when stderr is a terminal. */
#ifndef BERTH_IMAGE_OPTS_H
#define BERTH_IMAGE_OPTS_H

#include <getopt.h>
#include <stdbool.h>

#include "fetch.h"

#define OPT_NETRC_FILE      0x1101
#define OPT_CACERT          0x1102
#define OPT_CERT            0x1103
#define OPT_KEY             0x1104
#define OPT_CONNECT_TIMEOUT 0x1105
#define OPT_LOW_SPEED_TIME  0x1106
#define OPT_RETRIES         0x1107
#define OPT_RETRY_DELAY     0x1108
#define OPT_MAX_ARTIFACT    0x1109
#define OPT_MIN_FREE        0x110a
#define OPT_REGISTRY_AUTH   0x110b
#define OPT_STALL_TIMEOUT   0x110c
#define OPT_FETCH_TIMEOUT   0x110d

/* The bounds on downloads (space.h), also taken by the verbs that fetch
 * without the transport options (apply). */
#define BERTH_FETCH_BOUND_LONGOPTS                                    \
    {"max-artifact-size", required_argument, NULL, OPT_MAX_ARTIFACT}, \
        {"min-free-space", required_argument, NULL, OPT_MIN_FREE},    \
    {                                                                 \
        "registry-auth", required_argument, NULL, OPT_REGISTRY_AUTH   \
    }

#define BERTH_FETCH_BOUND_HELP                                                                \
    "      --max-artifact-size SIZE  refuse artifacts larger than SIZE (default 8G, or\n"     \
    "                              $BERTH_MAX_ARTIFACT_SIZE)\n"                               \
    "      --min-free-space SIZE|N%  stop a download or unpack before the filesystem of\n"    \
    "                              --root has less than this free (default max(64M, 5%),\n"   \
    "                              or $BERTH_MIN_FREE_SPACE; 0: no reserve)\n"                \
    "      --registry-auth FILE    credentials for oci:// registries, Docker's config.json\n" \
    "                              \"auths\" format (default $REGISTRY_AUTH_FILE)\n"

#define BERTH_FETCH_LONGOPTS                                                                    \
    {"netrc-file", required_argument, NULL, OPT_NETRC_FILE},                                    \
        {"cacert", required_argument, NULL, OPT_CACERT},                                        \
        {"cert", required_argument, NULL, OPT_CERT}, {"key", required_argument, NULL, OPT_KEY}, \
        {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},                      \
        {"stall-timeout", required_argument, NULL, OPT_STALL_TIMEOUT},                          \
        {"low-speed-time", required_argument, NULL, OPT_LOW_SPEED_TIME},                        \
        {"fetch-timeout", required_argument, NULL, OPT_FETCH_TIMEOUT},                          \
        {"retries", required_argument, NULL, OPT_RETRIES},                                      \
        {"retry-delay", required_argument, NULL, OPT_RETRY_DELAY}, BERTH_FETCH_BOUND_LONGOPTS

#define BERTH_FETCH_OPTIONS_HELP                                                                 \
    "      --netrc-file FILE       credentials (default: ~/.netrc when it exists)\n"             \
    "      --cacert FILE           CA bundle for https (default: the system's)\n"                \
    "      --cert FILE             client certificate (PEM)\n"                                   \
    "      --key FILE              its private key (default: in --cert)\n"                       \
    "      --connect-timeout DUR   give up connecting after DUR (default 30s)\n"                 \
    "      --stall-timeout DUR     a transfer below 1 KiB/s for DUR stalled: the next mirror\n"  \
    "                              (default 30s, or $BERTH_STALL_TIMEOUT; --low-speed-time\n"    \
    "                              is the old name)\n"                                           \
    "      --fetch-timeout DUR     one image's whole fetch, every mirror and retry (default\n"   \
    "                              1h, or $BERTH_FETCH_TIMEOUT)\n"                               \
    "      --retries N             retries per URL on connection errors, 5xx, 429 (default 5)\n" \
    "      --retry-delay DUR       first backoff, doubling up to 60s (default "                  \
    "1s)\n" BERTH_FETCH_BOUND_HELP                                                               \
    "  The proxy variables (http_proxy, https_proxy, no_proxy) are honoured.\n"

/* Handle one of BERTH_FETCH_LONGOPTS (or BERTH_FETCH_BOUND_LONGOPTS): 1 handled, 0 not ours, -1 bad
 * value (a usage error has been printed). */
int berth_fetch_option(const char *verb, int c, const char *arg, struct berth_fetch_options *opt);

/* Set opt->progress to the terminal display when stderr is a terminal
 * and the log level is not quiet. */
void berth_progress_attach(struct berth_fetch_options *opt);

#endif
