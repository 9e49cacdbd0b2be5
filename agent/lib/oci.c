#include "oci.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "util.h"

#define MAX_JSON (4u << 20)

static void json_unrefp(json_t **j)
{
    if (*j)
        json_decref(*j);
}
#define _cleanup_json_ _cleanup_(json_unrefp)

const char *berth_oci_host_arch(void)
{
    static const struct {
        const char *machine, *arch;
    } map[] = {{"x86_64", "amd64"},    {"aarch64", "arm64"}, {"armv7l", "arm"},
               {"armv6l", "arm"},      {"i686", "386"},      {"i386", "386"},
               {"ppc64le", "ppc64le"}, {"s390x", "s390x"},   {"riscv64", "riscv64"}};
    static struct utsname u;

    if (uname(&u) < 0)
        return "amd64";
    for (size_t i = 0; i < ARRAY_SIZE(map); i++)
        if (!strcmp(u.machine, map[i].machine))
            return map[i].arch;
    return u.machine;
}

void berth_image_config_init(struct berth_image_config *c)
{
    c->entrypoint = xcalloc(1, sizeof(char *));
    c->cmd = xcalloc(1, sizeof(char *));
    c->env = xcalloc(1, sizeof(char *));
    c->workdir = xstrdup("");
    c->user = xstrdup("");
    c->stop_signal = xstrdup("");
    c->blobs = xcalloc(1, sizeof(char *));
}

void berth_image_config_release(struct berth_image_config *c)
{
    berth_strv_free(c->entrypoint);
    berth_strv_free(c->cmd);
    berth_strv_free(c->env);
    free(c->workdir);
    free(c->user);
    free(c->stop_signal);
    berth_strv_free(c->blobs);
    memset(c, 0, sizeof(*c));
}

static char **strv_from_json(json_t *a)
{
    size_t n = json_is_array(a) ? json_array_size(a) : 0, k = 0;
    char **v = xcalloc(n + 1, sizeof(char *));

    for (size_t i = 0; i < n; i++)
        if (json_is_string(json_array_get(a, i)))
            v[k++] = xstrdup(json_string_value(json_array_get(a, i)));
    return v;
}

static char *str_from_json(json_t *s)
{
    return xstrdup(json_is_string(s) ? json_string_value(s) : "");
}

static json_t *strv_to_json(char **v)
{
    json_t *a = json_array();
    for (char **p = v; p && *p; p++)
        json_array_append_new(a, json_string(*p));
    return a;
}

/* The six fields of an image config, under the names `keys` gives them:
 * the OCI/docker config's or config.json's. */
static void fields_from_json(json_t *o, const char *const keys[6], struct berth_image_config *ret)
{
    ret->entrypoint = strv_from_json(json_object_get(o, keys[0]));
    ret->cmd = strv_from_json(json_object_get(o, keys[1]));
    ret->env = strv_from_json(json_object_get(o, keys[2]));
    ret->workdir = str_from_json(json_object_get(o, keys[3]));
    ret->user = str_from_json(json_object_get(o, keys[4]));
    ret->stop_signal = str_from_json(json_object_get(o, keys[5]));
}

/* The OCI/docker config object ("config" in the image config). */
static void config_from_json(json_t *c, struct berth_image_config *ret)
{
    static const char *const keys[6] = {"Entrypoint", "Cmd",  "Env",
                                        "WorkingDir", "User", "StopSignal"};

    fields_from_json(c, keys, ret);
    ret->blobs = xcalloc(1, sizeof(char *));
}

int berth_image_config_write(const char *path, enum berth_image_format format,
                             const struct berth_image_config *c, uint64_t artifact_size,
                             berth_error *err)
{
    _cleanup_json_ json_t *j =
        json_pack("{s:s, s:o, s:o, s:o, s:s, s:s, s:s, s:I}", "format",
                  berth_image_format_name(format), "entrypoint", strv_to_json(c->entrypoint), "cmd",
                  strv_to_json(c->cmd), "env", strv_to_json(c->env), "workdir", c->workdir, "user",
                  c->user, "stop_signal", c->stop_signal, "size", (json_int_t)artifact_size);
    _cleanup_free_ char *text = NULL;

    if (j && c->blobs && c->blobs[0])
        json_object_set_new(j, "blobs", strv_to_json(c->blobs));
    if (!j || !(text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS)))
        return berth_error_set(err, ENOMEM, "encoding '%s'", path);
    size_t len = strlen(text);
    text = xrealloc(text, len + 2);
    text[len] = '\n';
    text[len + 1] = '\0';
    return berth_write_file_atomic(path, text, len + 1, 0644, err);
}

static int load_json(const char *path, json_t **ret, berth_error *err)
{
    _cleanup_free_ char *data = NULL;
    size_t len;
    json_error_t je;

    if (berth_read_file(path, MAX_JSON, &data, &len, err) < 0)
        return -1;
    *ret = json_loadb(data, len, 0, &je);
    if (!*ret)
        return berth_error_set(err, EINVAL, "parsing '%s': line %d: %s", path, je.line, je.text);
    return 0;
}

int berth_image_config_read(const char *path, enum berth_image_format *ret_format,
                            struct berth_image_config *ret, berth_error *err)
{
    static const char *const keys[6] = {"entrypoint", "cmd",  "env",
                                        "workdir",    "user", "stop_signal"};
    _cleanup_json_ json_t *j = NULL;

    if (load_json(path, &j, err) < 0)
        return -1;
    int f = berth_image_format_from_name(json_string_value(json_object_get(j, "format")));
    *ret_format = f < 0 ? BERTH_FORMAT_AUTO : (enum berth_image_format)f;
    fields_from_json(j, keys, ret);
    ret->blobs = strv_from_json(json_object_get(j, "blobs"));
    return 0;
}

/* Open `rel` inside the layout only: resolved as if the layout were "/"
 * (a symlink in it, or "..", cannot leave it), never through /proc magic
 * links, with O_NONBLOCK so that a FIFO cannot block the open, and only
 * when it is a regular file. `nofollow`: not even a symlink inside (the
 * JSON files of the layout are never symlinks). */
static int open_in_layout(int layoutfd, const char *rel, bool nofollow, berth_error *err)
{
    struct open_how how = {
        .flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    struct stat st;
    int fd;

    do
        fd = (int)syscall(SYS_openat2, layoutfd, rel, &how, sizeof(how));
    while (fd < 0 && errno == EAGAIN);
    if (fd < 0 && errno == ELOOP && nofollow)
        return berth_error_set(err, ELOOP,
                               "refusing '%s' in the image: it is a symlink (it could lead "
                               "to a file of the host)",
                               rel);
    if (fd < 0)
        return berth_error_set(err, errno, "opening '%s' in the image", rel);
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return berth_error_set(err, EINVAL, "refusing '%s' in the image: not a regular file", rel);
    }
    return fd;
}

/* The same, with the path of the fd for code that opens by name. */
static int open_inside(int layoutfd, const char *rel, int *ret_fd, char **ret_path,
                       berth_error *err)
{
    int fd = open_in_layout(layoutfd, rel, false, err);

    if (fd < 0)
        return -1;
    *ret_fd = fd;
    *ret_path = xasprintf("/proc/self/fd/%d", fd);
    return 0;
}

/* A JSON document of at most MAX_JSON bytes from the regular file `fd`. */
static int load_json_fd(int fd, const char *name, json_t **ret, berth_error *err)
{
    struct stat st;
    json_error_t je;

    if (fstat(fd, &st) < 0)
        return berth_error_set(err, errno, "reading '%s'", name);
    if (st.st_size > MAX_JSON)
        return berth_error_set(err, EFBIG, "refusing '%s' in the image: larger than %u bytes", name,
                               MAX_JSON);
    _cleanup_free_ char *data = xmalloc((size_t)st.st_size + 1);
    size_t len = 0;
    for (;;) {
        ssize_t n = pread(fd, data + len, (size_t)st.st_size + 1 - len, (off_t)len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return berth_error_set(err, errno, "reading '%s'", name);
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > (size_t)st.st_size) /* it grew */
            return berth_error_set(err, EFBIG, "refusing '%s' in the image: it changes", name);
    }
    *ret = json_loadb(data, len, 0, &je);
    if (!*ret)
        return berth_error_set(err, EINVAL, "parsing '%s': line %d: %s", name, je.line, je.text);
    return 0;
}

/* One of the layout's own JSON files (index.json, manifest.json). */
static int load_layout_json(int layoutfd, const char *rel, json_t **ret, berth_error *err)
{
    _cleanup_close_ int fd = open_in_layout(layoutfd, rel, true, err);

    if (fd < 0)
        return -1;
    return load_json_fd(fd, rel, ret, err);
}

/* An OCI descriptor's blob, its digest and size checked. */
static int open_blob(int layoutfd, json_t *desc, int *ret_fd, char **ret_path, berth_error *err)
{
    const char *digest = json_string_value(json_object_get(desc, "digest"));
    json_t *size = json_object_get(desc, "size");
    char hex[65];
    struct stat st;

    if (!digest || strncmp(digest, "sha256:", 7) || strlen(digest) != 71 ||
        strspn(digest + 7, "0123456789abcdef") != 64)
        return berth_error_set(err, EINVAL, "unsupported blob digest '%s'",
                               digest ? digest : "(none)");
    _cleanup_free_ char *rel = xasprintf("blobs/sha256/%s", digest + 7);
    if (open_inside(layoutfd, rel, ret_fd, ret_path, err) < 0)
        return -1;
    if (berth_sha256_file(*ret_path, hex, err) < 0)
        goto fail;
    if (strcmp(hex, digest + 7)) {
        berth_error_set(err, EINVAL, "blob '%s' does not match its digest (sha256:%s)", digest,
                        hex);
        goto fail;
    }
    if (json_is_integer(size) &&
        (fstat(*ret_fd, &st) < 0 || st.st_size != json_integer_value(size))) {
        berth_error_set(err, EINVAL, "blob '%s' is not of the size its descriptor says", digest);
        goto fail;
    }
    return 0;
fail:
    close(*ret_fd);
    free(*ret_path);
    *ret_fd = -1;
    *ret_path = NULL;
    return -1;
}

static int load_blob_json(int layoutfd, json_t *desc, json_t **ret, berth_error *err)
{
    _cleanup_close_ int fd = -1;
    _cleanup_free_ char *path = NULL;

    if (open_blob(layoutfd, desc, &fd, &path, err) < 0)
        return -1;
    return load_json_fd(fd, json_string_value(json_object_get(desc, "digest")), ret, err);
}

int berth_oci_config_parse(const char *data, size_t len, struct berth_image_config *ret,
                           berth_error *err)
{
    json_error_t je;
    _cleanup_json_ json_t *j = json_loadb(data, len, 0, &je);

    if (!j || !json_is_object(j))
        return berth_error_set(err, EINVAL, "parsing the image config: line %d: %s",
                               j ? 1 : je.line, j ? "not an object" : je.text);
    config_from_json(json_object_get(j, "config"), ret);
    return 0;
}

static bool is_index(const char *mt)
{
    return mt && (!strcmp(mt, "application/vnd.oci.image.index.v1+json") ||
                  !strcmp(mt, "application/vnd.docker.distribution.manifest.list.v2+json"));
}

/* The descriptor of the manifest for this host in `index`. */
static json_t *pick_manifest(json_t *index, berth_error *err)
{
    json_t *ms = json_object_get(index, "manifests");
    const char *arch = berth_oci_host_arch();
    char have[512] = "";
    size_t n = json_array_size(ms);

    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(ms, i);
        json_t *p = json_object_get(m, "platform");
        if (!p && n == 1)
            return m;
        const char *os = json_string_value(json_object_get(p, "os"));
        const char *a = json_string_value(json_object_get(p, "architecture"));
        if ((!os || !strcmp(os, "linux")) && a && !strcmp(a, arch))
            return m;
        if (!p)
            return m; /* no platform given: assume it is for us */
        size_t used = strlen(have);
        snprintf(have + used, sizeof(have) - used, "%s%s/%s", used ? ", " : "", os ? os : "?",
                 a ? a : "?");
    }
    berth_error_set(err, ENOENT, "the image index has no manifest for linux/%s (it has: %s)", arch,
                    n ? have : "none");
    return NULL;
}

int berth_oci_pick_platform(const char *data, size_t len, char ret_digest[72], char *ret_media_type,
                            size_t mtlen, berth_error *err)
{
    json_error_t je;
    _cleanup_json_ json_t *j = json_loadb(data, len, 0, &je);
    json_t *desc;

    if (!j)
        return berth_error_set(err, EINVAL, "parsing the image index: line %d: %s", je.line,
                               je.text);
    if (!json_is_array(json_object_get(j, "manifests")))
        return berth_error_set(err, EINVAL, "the image index has no manifests");
    if (!(desc = pick_manifest(j, err)))
        return -1;
    const char *d = json_string_value(json_object_get(desc, "digest"));
    const char *mt = json_string_value(json_object_get(desc, "mediaType"));
    if (!d || strlen(d) != 71 || strncmp(d, "sha256:", 7) ||
        strspn(d + 7, "0123456789abcdef") != 64)
        return berth_error_set(err, EINVAL, "unsupported manifest digest '%s' in the image index",
                               d ? d : "(none)");
    memcpy(ret_digest, d, 72);
    snprintf(ret_media_type, mtlen, "%s", mt ? mt : "");
    return 0;
}

static int apply_layer(const char *path, const char *name, const char *rootfs,
                       const struct berth_unpack_limits *limits, struct berth_unpack_stats *st,
                       berth_error *err)
{
    if (berth_unpack_layer(path, rootfs, limits, st, err) < 0)
        return berth_error_wrap(err, "layer '%s'", name);
    return 0;
}

static int apply_oci(int layoutfd, const char *layout, const char *rootfs,
                     const struct berth_unpack_limits *limits, struct berth_image_config *ret,
                     struct berth_unpack_stats *st, berth_error *err)
{
    _cleanup_json_ json_t *index = NULL, *manifest = NULL, *config = NULL;
    json_t *desc;

    (void)layout;
    if (load_layout_json(layoutfd, "index.json", &index, err) < 0)
        return -1;
    for (int depth = 0;; depth++) {
        if (!(desc = pick_manifest(index, err)))
            return -1;
        if (!is_index(json_string_value(json_object_get(desc, "mediaType"))))
            break;
        if (depth == 4)
            return berth_error_set(err, ELOOP, "image indexes nested too deeply");
        json_t *inner = NULL;
        if (load_blob_json(layoutfd, desc, &inner, err) < 0)
            return -1;
        json_decref(index);
        index = inner;
    }
    if (load_blob_json(layoutfd, desc, &manifest, err) < 0)
        return berth_error_wrap(err, "image manifest");
    if (load_blob_json(layoutfd, json_object_get(manifest, "config"), &config, err) < 0)
        return berth_error_wrap(err, "image config");
    json_t *layers = json_object_get(manifest, "layers");
    for (size_t i = 0; i < json_array_size(layers); i++) {
        json_t *l = json_array_get(layers, i);
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *path = NULL;
        const char *digest = json_string_value(json_object_get(l, "digest"));
        if (open_blob(layoutfd, l, &fd, &path, err) < 0 ||
            apply_layer(path, digest, rootfs, limits, st, err) < 0)
            return -1;
    }
    config_from_json(json_object_get(config, "config"), ret);
    return 0;
}

static int apply_docker(int layoutfd, const char *layout, const char *rootfs,
                        const struct berth_unpack_limits *limits, struct berth_image_config *ret,
                        struct berth_unpack_stats *st, berth_error *err)
{
    _cleanup_json_ json_t *manifest = NULL, *config = NULL;
    _cleanup_close_ int cfd = -1;

    (void)layout;
    if (load_layout_json(layoutfd, "manifest.json", &manifest, err) < 0)
        return -1;
    json_t *m = json_array_get(manifest, 0);
    const char *cfg = json_string_value(json_object_get(m, "Config"));
    json_t *layers = json_object_get(m, "Layers");
    if (!cfg || !json_is_array(layers))
        return berth_error_set(err, EINVAL, "'manifest.json' has no Config or Layers");
    if ((cfd = open_in_layout(layoutfd, cfg, true, err)) < 0 ||
        load_json_fd(cfd, cfg, &config, err) < 0)
        return berth_error_wrap(err, "image config");
    json_t *diff_ids = json_object_get(json_object_get(config, "rootfs"), "diff_ids");
    for (size_t i = 0; i < json_array_size(layers); i++) {
        const char *rel = json_string_value(json_array_get(layers, i));
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *path = NULL;
        if (!rel)
            return berth_error_set(err, EINVAL, "'manifest.json': layer %zu is not a path", i);
        if (open_inside(layoutfd, rel, &fd, &path, err) < 0)
            return -1;
        /* docker save writes layers uncompressed: the diff_id is their digest */
        const char *want = json_string_value(json_array_get(diff_ids, i));
        char hex[65];
        if (want && json_array_size(diff_ids) == json_array_size(layers)) {
            if (berth_sha256_file(path, hex, err) < 0)
                return -1;
            if (strncmp(want, "sha256:", 7) || strcmp(want + 7, hex))
                return berth_error_set(err, EINVAL,
                                       "layer '%s' does not match its diff_id '%s' (sha256:%s)",
                                       rel, want, hex);
        }
        if (apply_layer(path, rel, rootfs, limits, st, err) < 0)
            return -1;
    }
    config_from_json(json_object_get(config, "config"), ret);
    return 0;
}

int berth_oci_apply(const char *layout, enum berth_image_format format, const char *rootfs,
                    const struct berth_unpack_limits *limits, struct berth_image_config *ret_config,
                    struct berth_unpack_stats *ret_stats, berth_error *err)
{
    _cleanup_close_ int layoutfd = open(layout, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int r;

    memset(ret_config, 0, sizeof(*ret_config));
    memset(ret_stats, 0, sizeof(*ret_stats));
    if (layoutfd < 0)
        return berth_error_set(err, errno, "opening '%s'", layout);
    if (format == BERTH_FORMAT_OCI)
        r = apply_oci(layoutfd, layout, rootfs, limits, ret_config, ret_stats, err);
    else
        r = apply_docker(layoutfd, layout, rootfs, limits, ret_config, ret_stats, err);
    if (r < 0) {
        berth_image_config_release(ret_config);
        return berth_error_wrap(err, "applying the %s image", berth_image_format_name(format));
    }
    return 0;
}
