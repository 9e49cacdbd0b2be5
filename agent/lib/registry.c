#include "registry.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "oci.h"
#include "util.h"
#include "verify.h"

#define MAX_AUTH_FILE  (1u << 20)
#define MAX_TOKEN_BODY (256u << 10)

static const char accept_header[] = "Accept: application/vnd.oci.image.index.v1+json, "
                                    "application/vnd.oci.image.manifest.v1+json, "
                                    "application/vnd.docker.distribution.manifest.list.v2+json, "
                                    "application/vnd.docker.distribution.manifest.v2+json";

static void json_unrefp(json_t **j)
{
    if (*j)
        json_decref(*j);
}
#define _cleanup_json_ _cleanup_(json_unrefp)

/* ---- credentials ------------------------------------------------------- */

/* "https://host:5000/v1/" → "host:5000"; "host/team/web" stays. */
static char *auth_key_normal(const char *key)
{
    const char *p = strstr(key, "://");
    char *k = xstrdup(p ? p + 3 : key);
    size_t n = strlen(k);

    while (n && k[n - 1] == '/')
        k[--n] = '\0';
    if (n > 3 && (!strcmp(k + n - 3, "/v1") || !strcmp(k + n - 3, "/v2")))
        k[n - 3] = '\0';
    return k;
}

static bool is_hub(const char *host)
{
    return !strcmp(host, "docker.io") || !strcmp(host, "index.docker.io") ||
           !strcmp(host, "registry-1.docker.io");
}

/* The base64 "user:password" for an entry of `auths`. */
static char *entry_credentials(json_t *e, const char *file, const char *key, berth_error *err)
{
    const char *auth = json_string_value(json_object_get(e, "auth"));
    const char *user = json_string_value(json_object_get(e, "username"));
    const char *pass = json_string_value(json_object_get(e, "password"));

    if (((auth && *auth) || (user && pass)) && berth_crypto_ready(err) < 0)
        return NULL;
    if (auth && *auth) {
        size_t n = strlen(auth);
        _cleanup_free_ unsigned char *dec = xmalloc(n + 4);
        int d = EVP_DecodeBlock(dec, (const unsigned char *)auth, (int)n);
        if (d < 0 || !memchr(dec, ':', (size_t)d) ||
            strspn(auth, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") !=
                n) {
            berth_error_set(err, 0, "'%s': the \"auth\" of '%s' is not base64 of \"user:password\"",
                            file, key);
            return NULL;
        }
        return xstrdup(auth);
    }
    if (user && pass) {
        _cleanup_free_ char *plain = xasprintf("%s:%s", user, pass);
        size_t n = strlen(plain);
        char *enc = xmalloc(4 * ((n + 2) / 3) + 1);
        EVP_EncodeBlock((unsigned char *)enc, (const unsigned char *)plain, (int)n);
        return enc;
    }
    return NULL;
}

/* The credentials for the repository from the auth file; NULL (and no
 * error) when there are none. */
static char *lookup_credentials(const struct berth_registry *r, berth_error *err)
{
    const char *file = r->opt ? r->opt->registry_auth : NULL;
    _cleanup_free_ char *data = NULL;
    _cleanup_json_ json_t *j = NULL;
    json_error_t je;
    size_t len;
    const char *key;
    json_t *v, *host_entry = NULL;
    const char *host_key = NULL;

    if (!file)
        return NULL;
    if (berth_read_file(file, MAX_AUTH_FILE, &data, &len, err) < 0) {
        berth_error_wrap(err, "reading the registry credentials");
        return NULL;
    }
    if (!(j = json_loadb(data, len, 0, &je))) {
        berth_error_set(err, 0, "parsing '%s': line %d: %s", file, je.line, je.text);
        return NULL;
    }
    json_t *auths = json_object_get(j, "auths");
    if (auths && !json_is_object(auths)) {
        berth_error_set(err, 0, "'%s': \"auths\" is not an object", file);
        return NULL;
    }
    _cleanup_free_ char *full = xasprintf("%s/%s", r->ref->host, r->ref->repo);
    json_object_foreach(auths, key, v)
    {
        _cleanup_free_ char *k = auth_key_normal(key);
        if (!strcmp(k, full))
            return entry_credentials(v, file, key, err);
        if (!strcmp(k, r->ref->host) || (is_hub(k) && is_hub(r->ref->host))) {
            host_entry = v;
            host_key = key;
        }
    }
    return host_entry ? entry_credentials(host_entry, file, host_key, err) : NULL;
}

/* ---- challenges and tokens --------------------------------------------- */

/* The value of `name` in a challenge's parameters (realm="...", ...). */
static char *challenge_param(const char *params, const char *name)
{
    const char *p = params;
    size_t nlen = strlen(name);

    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        const char *k = p;
        while (*p && *p != '=' && *p != ',' && *p != ' ')
            p++;
        size_t klen = (size_t)(p - k);
        if (*p != '=')
            continue;
        p++;
        char buf[2048];
        size_t n = 0;
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1])
                    p++;
                if (n < sizeof(buf) - 1)
                    buf[n++] = *p;
            }
            if (*p == '"')
                p++;
        } else
            while (*p && *p != ',' && *p != ' ' && n < sizeof(buf) - 1)
                buf[n++] = *p++;
        buf[n] = '\0';
        if (klen == nlen && !strncasecmp(k, name, nlen))
            return xstrdup(buf);
    }
    return NULL;
}

static bool header_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

static char *escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *copy = e ? xstrdup(e) : NULL;

    curl_free(e);
    return copy;
}

static int get_token(struct berth_registry *r, const char *params, const char *creds,
                     berth_error *err)
{
    _cleanup_free_ char *realm = challenge_param(params, "realm");
    _cleanup_free_ char *service = challenge_param(params, "service");
    _cleanup_free_ char *scope = challenge_param(params, "scope");
    _cleanup_free_ char *want_scope = xasprintf("repository:%s:pull", r->ref->repo);

    if (!realm)
        return berth_error_set(err, 0, "the registry's Bearer challenge names no realm");
    if (strncasecmp(realm, "https://", 8) &&
        (strncasecmp(realm, "http://", 7) || !r->ref->plain_http))
        return berth_error_set(err, 0,
                               "refusing the token realm '%s' of an https registry: a token "
                               "server is asked over https only",
                               realm);
    _cleanup_free_ char *esc_scope = escape(scope ? scope : want_scope);
    _cleanup_free_ char *esc_service = service ? escape(service) : NULL;
    if (!esc_scope || (service && !esc_service))
        return berth_error_set(err, ENOMEM, "escaping the token request");
    _cleanup_free_ char *url =
        xasprintf("%s%cscope=%s%s%s", realm, strchr(realm, '?') ? '&' : '?', esc_scope,
                  service ? "&service=" : "", service ? esc_service : "");
    _cleanup_free_ char *basic = creds ? xasprintf("Authorization: Basic %s", creds) : NULL;
    const char *headers[] = {basic, NULL};
    const char *urls[] = {url};
    struct berth_fetch_request req = {.urls = urls, .nurls = 1, .headers = headers};
    struct berth_fetch_result res;
    _cleanup_free_ char *body = NULL;
    size_t len;
    if (berth_fetch_memory(&req, r->opt, MAX_TOKEN_BODY, &body, &len, &res, err) < 0) {
        if (res.http_status == 401)
            berth_error_wrap(err, "the token server refused %s",
                             creds ? "the credentials" : "an anonymous request");
        return berth_error_wrap(err, "asking for a registry token");
    }
    json_error_t je;
    _cleanup_json_ json_t *j = json_loadb(body, len, 0, &je);
    const char *token = json_string_value(json_object_get(j, "token"));
    if (!token)
        token = json_string_value(json_object_get(j, "access_token"));
    if (!token || !*token || !header_safe(token))
        return berth_error_set(err, 0, "the token server '%s' answered no usable token", realm);
    free(r->authorization);
    r->authorization = xasprintf("Authorization: Bearer %s", token);
    return 0;
}

/* Answer the registry's challenge: a new Authorization header. */
static int authenticate(struct berth_registry *r, const char *challenge, berth_error *err)
{
    _cleanup_free_ char *creds = NULL;
    berth_error e = BERTH_ERROR_INIT;
    const char *file = r->opt && r->opt->registry_auth ? r->opt->registry_auth : NULL;
    size_t slen = strcspn(challenge, " ");

    creds = lookup_credentials(r, &e);
    if (!creds && e.msg[0]) {
        *err = e;
        return -1;
    }
    if (slen == 5 && !strncasecmp(challenge, "Basic", 5)) {
        if (!creds)
            return berth_error_set(err, 0,
                                   "the registry '%s' asks for credentials (Basic) and %s%s%s",
                                   r->ref->host, file ? "there are none for it in '" : "",
                                   file ? file
                                        : "no credentials file is given (--registry-auth "
                                          "FILE, $REGISTRY_AUTH_FILE)",
                                   file ? "'" : "");
        free(r->authorization);
        r->authorization = xasprintf("Authorization: Basic %s", creds);
        return 0;
    }
    if (slen == 6 && !strncasecmp(challenge, "Bearer", 6))
        return get_token(r, challenge + slen, creds, err);
    return berth_error_set(err, 0, "the registry '%s' asks for an unsupported authentication: %s",
                           r->ref->host, challenge);
}

void berth_registry_init(struct berth_registry *r, const struct berth_registry_ref *ref,
                         const struct berth_fetch_options *opt)
{
    r->ref = ref;
    r->opt = opt;
    r->authorization = NULL;
    r->has_fallback = false;
}

void berth_registry_release(struct berth_registry *r)
{
    free(r->authorization);
    r->authorization = NULL;
    r->has_fallback = false;
}

/* ---- manifests --------------------------------------------------------- */

bool berth_registry_is_index(const char *mt)
{
    return mt && (!strcmp(mt, "application/vnd.oci.image.index.v1+json") ||
                  !strcmp(mt, "application/vnd.docker.distribution.manifest.list.v2+json"));
}

bool berth_registry_is_manifest(const char *mt)
{
    return mt && (!strcmp(mt, "application/vnd.oci.image.manifest.v1+json") ||
                  !strcmp(mt, "application/vnd.docker.distribution.manifest.v2+json"));
}

/* The media type of a manifest: its own "mediaType", else the response's
 * Content-Type, else what its members say it is. */
void berth_registry_media_type(const char *body, size_t len, const char *content_type, char *ret,
                               size_t mtlen)
{
    json_error_t je;
    _cleanup_json_ json_t *j = json_loadb(body, len, 0, &je);
    const char *mt = json_string_value(json_object_get(j, "mediaType"));
    size_t ctlen = strcspn(content_type, "; ");

    if (mt)
        snprintf(ret, mtlen, "%s", mt);
    else if (ctlen && strncmp(content_type, "application/json", ctlen) &&
             strncmp(content_type, "text/plain", ctlen))
        snprintf(ret, mtlen, "%.*s", (int)ctlen, content_type);
    else if (json_is_array(json_object_get(j, "manifests")))
        snprintf(ret, mtlen, "application/vnd.oci.image.index.v1+json");
    else if (json_is_array(json_object_get(j, "layers")))
        snprintf(ret, mtlen, "application/vnd.oci.image.manifest.v1+json");
    else
        snprintf(ret, mtlen, "%s", "");
    if (json_integer_value(json_object_get(j, "schemaVersion")) == 1)
        snprintf(ret, mtlen, "application/vnd.docker.distribution.manifest.v1+json");
}

int berth_registry_get_manifest(struct berth_registry *r, const char *reference, char **ret_body,
                                size_t *ret_len, char ret_hex[65], char *ret_media_type,
                                size_t mtlen, berth_error *err)
{
    _cleanup_free_ char *url = xasprintf("%s/manifests/%s", r->ref->base, reference);
    const char *urls[] = {url};
    struct berth_fetch_result res;
    char *body = NULL;
    size_t len = 0;

    for (int attempt = 0;; attempt++) {
        const char *headers[] = {accept_header, r->authorization, NULL};
        struct berth_fetch_request req = {
            .urls = urls, .nurls = 1, .headers = headers, .has_fallback = r->has_fallback};
        berth_error e = BERTH_ERROR_INIT;
        if (berth_fetch_memory(&req, r->opt, BERTH_REGISTRY_MAX_MANIFEST, &body, &len, &res, &e) ==
            0)
            break;
        if (res.http_status == 401 && res.www_authenticate[0] && attempt == 0) {
            if (authenticate(r, res.www_authenticate, err) < 0)
                return berth_error_wrap(err, "'%s'", url);
            continue;
        }
        *err = e;
        if (res.http_status == 401)
            berth_error_wrap(err, "the registry refused %s",
                             r->authorization ? "the credentials" : "an anonymous pull");
        else if (res.http_status == 404)
            berth_error_wrap(err, "the registry has no manifest '%s' in '%s'", reference,
                             r->ref->repo);
        return -1;
    }
    struct berth_digest dg;
    if (berth_digest_init(&dg, false, err) < 0) {
        free(body);
        return -1;
    }
    berth_digest_update(&dg, body, len);
    berth_digest_final(&dg, ret_hex, NULL);
    berth_digest_release(&dg);
    if (!strncmp(reference, "sha256:", 7) && strcmp(reference + 7, ret_hex)) {
        berth_error_set(err, 0,
                        "refusing the manifest from '%s': its digest is sha256:%s, not the %s "
                        "asked for (nothing of it was used)",
                        url, ret_hex, reference);
        free(body);
        return -1;
    }
    berth_registry_media_type(body, len, res.content_type, ret_media_type, mtlen);
    *ret_body = body;
    *ret_len = len;
    return 0;
}

int berth_registry_manifest_parse(const char *body, size_t len, struct berth_registry_manifest *ret,
                                  berth_error *err)
{
    json_error_t je;
    _cleanup_json_ json_t *j = json_loadb(body, len, 0, &je);
    json_t *layers;

    memset(ret, 0, sizeof(*ret));
    if (!j)
        return berth_error_set(err, 0, "parsing the image manifest: line %d: %s", je.line, je.text);
    json_t *descs[1] = {json_object_get(j, "config")};
    layers = json_object_get(j, "layers");
    if (!json_is_object(descs[0]) || !json_is_array(layers))
        return berth_error_set(err, 0, "the image manifest has no config or no layers");
    ret->nlayers = json_array_size(layers);
    ret->layers = xcalloc(ret->nlayers + 1, sizeof(*ret->layers));
    ret->layer_sizes = xcalloc(ret->nlayers + 1, sizeof(*ret->layer_sizes));
    for (size_t i = 0; i <= ret->nlayers; i++) {
        json_t *d = i == 0 ? descs[0] : json_array_get(layers, i - 1);
        const char *digest = json_string_value(json_object_get(d, "digest"));
        const char *mt = json_string_value(json_object_get(d, "mediaType"));
        json_t *size = json_object_get(d, "size");
        if (!digest || strncmp(digest, "sha256:", 7) || strlen(digest) != 71 ||
            strspn(digest + 7, "0123456789abcdef") != 64) {
            berth_error_set(err, 0, "unsupported digest '%s' in the image manifest",
                            digest ? digest : "(none)");
            goto fail;
        }
        if (!json_is_integer(size) || json_integer_value(size) < 0) {
            berth_error_set(err, 0, "'%s' in the image manifest has no size", digest);
            goto fail;
        }
        if (mt && strstr(mt, "encrypted")) {
            berth_error_set(err, 0, "layer '%s' is encrypted (%s)", digest, mt);
            goto fail;
        }
        if (i == 0) {
            memcpy(ret->config, digest + 7, 65);
            ret->config_size = (uint64_t)json_integer_value(size);
        } else {
            memcpy(ret->layers[i - 1], digest + 7, 65);
            ret->layer_sizes[i - 1] = (uint64_t)json_integer_value(size);
        }
    }
    return 0;
fail:
    berth_registry_manifest_release(ret);
    return -1;
}

void berth_registry_manifest_release(struct berth_registry_manifest *m)
{
    free(m->layers);
    free(m->layer_sizes);
    memset(m, 0, sizeof(*m));
}

/* ---- blobs ------------------------------------------------------------- */

static size_t blobs_round(struct berth_registry *r, struct berth_registry_blob *blobs, size_t *idx,
                          size_t n)
{
    _cleanup_free_ struct berth_fetch_request *reqs = xcalloc(n, sizeof(*reqs));
    _cleanup_free_ struct berth_fetch_result *res = xcalloc(n, sizeof(*res));
    char **urls = xcalloc(n, sizeof(char *));
    const char *headers[] = {r->authorization, NULL};
    size_t failed;

    for (size_t k = 0; k < n; k++) {
        struct berth_registry_blob *b = &blobs[idx[k]];
        urls[k] = xasprintf("%s/blobs/sha256:%s", r->ref->base, b->hex);
        reqs[k] = (struct berth_fetch_request){.urls = (const char *const *)&urls[k],
                                               .nurls = 1,
                                               .dest = b->dest,
                                               .sha256 = b->hex,
                                               .headers = headers,
                                               .max_size = b->size,
                                               .has_fallback = r->has_fallback,
                                               .resume = b->resume};
    }
    failed = berth_fetch_many(reqs, n, r->opt, res);
    for (size_t k = 0; k < n; k++) {
        blobs[idx[k]].res = res[k];
        free(urls[k]);
    }
    free(urls);
    return failed;
}

size_t berth_registry_get_blobs(struct berth_registry *r, struct berth_registry_blob *blobs,
                                size_t n)
{
    _cleanup_free_ size_t *idx = xcalloc(n + 1, sizeof(size_t));
    size_t failed, again = 0;

    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    if (!(failed = blobs_round(r, blobs, idx, n)))
        return 0;
    /* a 401: the token expired or was never asked for; once more with a new one */
    const char *challenge = NULL;
    for (size_t i = 0; i < n; i++)
        if (blobs[i].res.rc < 0 && blobs[i].res.http_status == 401) {
            idx[again++] = i;
            if (blobs[i].res.www_authenticate[0])
                challenge = blobs[i].res.www_authenticate;
        }
    if (!again || !challenge)
        return failed;
    berth_error e = BERTH_ERROR_INIT;
    _cleanup_free_ char *ch = xstrdup(challenge);
    if (authenticate(r, ch, &e) < 0) {
        for (size_t k = 0; k < again; k++)
            blobs[idx[k]].res.err = e;
        return failed;
    }
    return failed - again + blobs_round(r, blobs, idx, again);
}

/* ---- tags ------------------------------------------------------------- */

/* The digest a registry reference pins: its manifest for this platform,
 * or with `index` the index itself. */
int berth_registry_resolve(const char *url, bool index, const struct berth_fetch_options *opt,
                           char ret_hex[65], berth_error *err)
{
    struct berth_registry_ref rr;
    struct berth_registry reg;
    _cleanup_free_ char *body = NULL;
    size_t len;
    char mt[128], digest[72];
    int r = -1;

    if (berth_registry_ref_parse(url, &rr, err) < 0)
        return -1;
    berth_registry_init(&reg, &rr, opt);
    const char *reference = rr.digest ? rr.digest : rr.tag ? rr.tag : "latest";
    if (berth_registry_get_manifest(&reg, reference, &body, &len, ret_hex, mt, sizeof(mt), err) < 0)
        goto out;
    if (berth_registry_is_index(mt) && !index) {
        if (berth_oci_pick_platform(body, len, digest, mt, sizeof(mt), err) < 0)
            goto out;
        memcpy(ret_hex, digest + 7, 65);
    } else if (!berth_registry_is_index(mt) && index) {
        berth_error_set(err, EINVAL,
                        "'%s' is a manifest (%s), not an index: pin it without --index", url, mt);
        goto out;
    } else if (!berth_registry_is_index(mt) && !berth_registry_is_manifest(mt)) {
        berth_error_set(err, ENOTSUP, "'%s' is not an image manifest or index (%s)", url,
                        mt[0] ? mt : "no media type");
        goto out;
    }
    r = 0;
out:
    berth_registry_release(&reg);
    berth_registry_ref_release(&rr);
    return r;
}
