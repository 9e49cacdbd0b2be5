/* Registry references (registry.h): parsed apart from the client so that
 * the spec's validator, and the parser's fuzzer, need no transfer code. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "util.h"

bool berth_registry_is_url(const char *url)
{
    return url && (!strncmp(url, "oci://", 6) || !strncmp(url, "oci+http://", 11));
}

static bool lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* A repository path: components of [a-z0-9]+([._-]+[a-z0-9]+)* split by '/'. */
static bool valid_repo(const char *s)
{
    bool start = true;

    if (!*s)
        return false;
    for (const char *p = s; *p; p++) {
        if (*p == '/') {
            if (start)
                return false;
            start = true;
        } else if (lower_alnum(*p))
            start = false;
        else if (strchr("._-", *p)) {
            if (start || p[1] == '/' || !p[1])
                return false;
        } else
            return false;
    }
    return !start;
}

static bool valid_tag(const char *s)
{
    size_t n = strlen(s);

    if (!n || n > 128 || *s == '.' || *s == '-')
        return false;
    for (const char *p = s; *p; p++)
        if (!lower_alnum(*p) && !(*p >= 'A' && *p <= 'Z') && !strchr("_.-", *p))
            return false;
    return true;
}

/* HOST[:PORT], HOST a name or address, or [IPv6]. */
static bool valid_host(const char *s)
{
    const char *p = s, *port;

    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (!close || close == p + 1 ||
            strspn(p + 1, "0123456789abcdefABCDEF:.") != (size_t)(close - p - 1))
            return false;
        port = close + 1;
    } else {
        size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-");
        if (!n || *p == '.' || *p == '-')
            return false;
        port = p + n;
    }
    if (!*port)
        return true;
    if (*port != ':' || !port[1] || strspn(port + 1, "0123456789") != strlen(port + 1) ||
        strlen(port + 1) > 5 || atoi(port + 1) > 65535)
        return false;
    return true;
}

int berth_registry_ref_parse(const char *url, struct berth_registry_ref *ret, berth_error *err)
{
    const char *rest;

    memset(ret, 0, sizeof(*ret));
    if (!strncmp(url, "oci://", 6))
        rest = url + 6;
    else if (!strncmp(url, "oci+http://", 11)) {
        rest = url + 11;
        ret->plain_http = true;
    } else
        return berth_error_set(
            err, EINVAL, "invalid registry reference '%s': expected oci:// or oci+http://", url);
    const char *slash = strchr(rest, '/');
    if (!slash)
        return berth_error_set(err, 0, "invalid registry reference '%s': expected HOST[:PORT]/REPO",
                               url);
    ret->host = strndup(rest, (size_t)(slash - rest));
    _cleanup_free_ char *path = xstrdup(slash + 1);
    char *at = strchr(path, '@');
    if (at) {
        *at = '\0';
        const char *d = at + 1;
        if (strncmp(d, "sha256:", 7) || strlen(d) != 71 ||
            strspn(d + 7, "0123456789abcdef") != 64) {
            berth_error_set(err, 0,
                            "invalid registry reference '%s': the digest after '@' must be "
                            "'sha256:' and 64 lowercase hex digits",
                            url);
            goto fail;
        }
        ret->digest = xstrdup(d);
    }
    char *lastslash = strrchr(path, '/');
    char *colon = strchr(lastslash ? lastslash : path, ':');
    if (colon) {
        *colon = '\0';
        ret->tag = xstrdup(colon + 1);
        if (!valid_tag(ret->tag)) {
            berth_error_set(err, 0, "invalid registry reference '%s': invalid tag '%s'", url,
                            ret->tag);
            goto fail;
        }
    }
    if (!ret->host || !valid_host(ret->host)) {
        berth_error_set(err, 0, "invalid registry reference '%s': invalid host '%s'", url,
                        ret->host ? ret->host : "");
        goto fail;
    }
    if (!valid_repo(path)) {
        berth_error_set(err, 0,
                        "invalid registry reference '%s': invalid repository '%s' (lowercase "
                        "letters, digits and . _ - between them, components split by /)",
                        url, path);
        goto fail;
    }
    bool hub = !strcmp(ret->host, "docker.io") || !strcmp(ret->host, "index.docker.io");
    ret->repo = hub && !strchr(path, '/') ? xasprintf("library/%s", path) : xstrdup(path);
    ret->base = xasprintf("%s://%s/v2/%s", ret->plain_http ? "http" : "https",
                          hub ? "registry-1.docker.io" : ret->host, ret->repo);
    return 0;
fail:
    berth_registry_ref_release(ret);
    return -1;
}

void berth_registry_ref_release(struct berth_registry_ref *r)
{
    free(r->host);
    free(r->base);
    free(r->repo);
    free(r->tag);
    free(r->digest);
    memset(r, 0, sizeof(*r));
}
