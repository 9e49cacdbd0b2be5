#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <dirent.h>
#include <dlfcn.h>

#include <openssl/evp.h>

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        abort();
    return p;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        abort();
    return p;
}

char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        abort();
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        abort();
    va_end(ap);
    return s;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int berth_write_file_atomic(const char *path, const void *data, size_t len, int mode,
                            berth_error *err)
{
    _cleanup_free_ char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
    _cleanup_free_ char *dir = xstrdup(path);
    _cleanup_close_ int fd = -1;
    _cleanup_close_ int dfd = -1;
    char *slash;

    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return berth_error_set(err, errno, "creating '%s'", tmp);
    if (write_all(fd, data, len) < 0 || fsync(fd) < 0) {
        int e = errno;
        unlink(tmp);
        return berth_error_set(err, e, "writing '%s'", tmp);
    }
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return berth_error_set(err, e, "renaming '%s' to '%s'", tmp, path);
    }
    slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0)
        fsync(dfd);
    return 0;
}

int berth_read_file(const char *path, size_t max, char **ret_data, size_t *ret_len,
                    berth_error *err)
{
    return berth_read_file_at(AT_FDCWD, path, max, ret_data, ret_len, err);
}

int berth_read_file_at(int dfd, const char *path, size_t max, char **ret_data, size_t *ret_len,
                       berth_error *err)
{
    _cleanup_close_ int fd = openat(dfd, path, O_RDONLY | O_CLOEXEC);
    _cleanup_free_ char *buf = NULL;
    size_t len = 0, cap = 4096;

    if (fd < 0)
        return berth_error_set(err, errno, "opening '%s'", path);
    buf = xmalloc(cap);
    for (;;) {
        ssize_t n;
        if (len + 1 >= cap) {
            if (cap > max)
                return berth_error_set(err, EFBIG, "reading '%s': larger than %zu bytes", path,
                                       max);
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return berth_error_set(err, errno, "reading '%s'", path);
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max)
            return berth_error_set(err, EFBIG, "reading '%s': larger than %zu bytes", path, max);
    }
    buf[len] = '\0';
    if (ret_len)
        *ret_len = len;
    *ret_data = TAKE_PTR(buf);
    return 0;
}

int berth_write_string(const char *path, const char *value, berth_error *err)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);

    if (fd < 0)
        return berth_error_set(err, errno, "opening '%s'", path);
    if (write_all(fd, value, strlen(value)) < 0)
        return berth_error_set(err, errno, "writing '%s' to '%s'", value, path);
    return 0;
}

int berth_mkdir_p(const char *path, int mode, berth_error *err)
{
    _cleanup_free_ char *p = xstrdup(path);
    char *s = p;

    while (*s == '/')
        s++;
    for (;;) {
        char *slash = strchr(s, '/');
        if (slash)
            *slash = '\0';
        if (*p && mkdir(p, mode) < 0 && errno != EEXIST)
            return berth_error_set(err, errno, "creating directory '%s'", p);
        if (!slash)
            break;
        *slash = '/';
        s = slash + 1;
    }
    return 0;
}

static int rm_rf_at(int dfd, const char *name, dev_t dev, berth_error *err)
{
    struct stat st;

    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : berth_error_set(err, errno, "inspecting '%s'", name);
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
            return berth_error_set(err, errno, "removing '%s'", name);
        return 0;
    }
    if (st.st_dev != dev)
        return berth_error_set(err, EXDEV,
                               "refusing to remove '%s': another filesystem is "
                               "mounted there",
                               name);
    {
        int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *d;
        struct dirent *de;
        int r = 0;

        if (fd < 0)
            return berth_error_set(err, errno, "opening '%s'", name);
        /* overlayfs leaves work/work with mode 000; root may still read it,
         * but make sure a non-root caller can as well */
        fchmod(fd, 0700);
        d = fdopendir(fd);
        if (!d) {
            close(fd);
            return berth_error_set(err, errno, "opening '%s'", name);
        }
        while (r == 0 && (de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            r = rm_rf_at(dirfd(d), de->d_name, dev, err);
        }
        closedir(d);
        if (r < 0)
            return berth_error_wrap(err, "removing '%s'", name);
    }
    if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return berth_error_set(err, errno, "removing directory '%s'", name);
    return 0;
}

int berth_lock_file(const char *path, int mode, bool wait, berth_error *err)
{
    _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, mode);

    if (fd < 0)
        return berth_error_set(err, errno, "opening '%s'", path);
    if (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0)
        return berth_error_set(err, errno, "locking '%s'", path);
    return TAKE_FD(fd);
}

int berth_rm_rf(const char *path, berth_error *err)
{
    struct stat st;

    /* most often an empty directory (a container's mount points): one
     * call; a mount point says EBUSY and takes the long way to its error */
    if (rmdir(path) == 0 || errno == ENOENT)
        return 0;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : berth_error_set(err, errno, "inspecting '%s'", path);
    return rm_rf_at(AT_FDCWD, path, st.st_dev, err);
}

int berth_parse_size(const char *s, uint64_t *ret_bytes)
{
    char *end;
    unsigned long long v;
    uint64_t mul = 1;

    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    switch (*end) {
    case 'k':
    case 'K':
        mul = 1ULL << 10;
        end++;
        break;
    case 'm':
    case 'M':
        mul = 1ULL << 20;
        end++;
        break;
    case 'g':
    case 'G':
        mul = 1ULL << 30;
        end++;
        break;
    case 't':
    case 'T':
        mul = 1ULL << 40;
        end++;
        break;
    default:
        break;
    }
    if (mul > 1 && *end == 'i')
        end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end)
        return -1;
    if (v > UINT64_MAX / mul)
        return -1;
    *ret_bytes = v * mul;
    return 0;
}

int berth_parse_duration(const char *s, uint64_t *ret_ms)
{
    char *end;
    double v;
    double mul = 1000;

    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || v != v)
        return -1;
    if (!strcmp(end, "ms"))
        mul = 1;
    else if (!strcmp(end, "s") || !*end)
        mul = 1000;
    else if (!strcmp(end, "m"))
        mul = 60e3;
    else if (!strcmp(end, "h"))
        mul = 3600e3;
    else
        return -1;
    if (v * mul > 1e15)
        return -1;
    *ret_ms = (uint64_t)(v * mul + 0.5);
    return 0;
}

void berth_hex(const unsigned char *bytes, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * len] = '\0';
}

int berth_sha256_file(const char *path, char ret_hex[65], berth_error *err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx;
    static char buf[1 << 16];
    int r = 0;

    if (fd < 0)
        return berth_error_set(err, errno, "opening '%s'", path);
    if (berth_crypto_ready(err) < 0)
        return -1;
    ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(ctx);
        return berth_error_set(err, ENOMEM, "initialising sha256");
    }
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = berth_error_set(err, errno, "reading '%s'", path);
            break;
        }
        if (n == 0)
            break;
        EVP_DigestUpdate(ctx, buf, (size_t)n);
    }
    if (r == 0)
        EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    if (r == 0)
        berth_hex(md, mdlen, ret_hex);
    return r;
}

uint64_t berth_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#include <linux/openat2.h>
#include <sys/syscall.h>

static int openat2_in_root(int rootfd, const char *path, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };

    return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
}

/* Append component `c` (of length n) to the root-relative path `p`. */
static void path_push(char **p, const char *c, size_t n)
{
    size_t len = strlen(*p);

    *p = xrealloc(*p, len + n + 2);
    if (len)
        (*p)[len++] = '/';
    memcpy(*p + len, c, n);
    (*p)[len + n] = '\0';
}

static void path_pop(char *p)
{
    char *slash = strrchr(p, '/');

    if (slash)
        *slash = '\0';
    else
        *p = '\0';
}

/* berth_open_in_root(), -1 with errno */
static int open_in_root(int rootfd, const char *path, bool create, bool create_dir)
{
    _cleanup_free_ char *resolved = xstrdup("");
    _cleanup_free_ char *pending = NULL;
    const char *rest;
    int links = 0;
    int fd;

    fd = openat2_in_root(rootfd, path, O_PATH);
    if (fd >= 0 || errno != ENOENT || !create)
        return fd;

    /* Something is missing. Walk the path one component at a time, as
     * filepath-securejoin does: symlinks are read and expanded against the
     * root by hand, ".." stops at the root, and every missing component is
     * created where the walk says it belongs, so a dangling symlink such as
     * "/data -> /srv/x" creates "/srv/x" inside the root, never outside. */
    pending = xstrdup(path);
    rest = pending;
    while (*rest) {
        const char *end = strchrnul(rest, '/');
        size_t n = (size_t)(end - rest);
        const char *next = *end ? end + 1 : end;
        struct stat st;

        if (n == 0 || (n == 1 && rest[0] == '.')) {
            rest = next;
            continue;
        }
        if (n == 2 && rest[0] == '.' && rest[1] == '.') {
            path_pop(resolved);
            rest = next;
            continue;
        }
        size_t keep = strlen(resolved);
        path_push(&resolved, rest, n);
        if (fstatat(rootfd, resolved, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT)
                return -1;
            bool last = !*next;
            if (!last || create_dir) {
                if (mkdirat(rootfd, resolved, 0755) < 0 && errno != EEXIST)
                    return -1;
            } else {
                int f = openat(rootfd, resolved,
                               O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (f < 0)
                    return -1;
                close(f);
            }
        } else if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX];
            ssize_t len = readlinkat(rootfd, resolved, target, sizeof(target) - 1);
            if (len < 0)
                return -1;
            if (++links > 40) {
                errno = ELOOP;
                return -1;
            }
            target[len] = '\0';
            resolved[keep] = '\0';
            if (target[0] == '/')
                resolved[0] = '\0';
            char *joined = xasprintf("%s/%s", target, next);
            free(pending);
            pending = joined;
            rest = pending;
            continue;
        }
        rest = next;
    }
    return openat2_in_root(rootfd, *resolved ? resolved : ".", O_PATH);
}

int berth_open_in_root(int rootfd, const char *path, bool create, bool create_dir, berth_error *err)
{
    int fd = open_in_root(rootfd, path, create, create_dir);

    if (fd < 0)
        return berth_error_set(err, errno, "%s '%s' inside the root",
                               create ? "creating" : "opening", path);
    return fd;
}

#include <signal.h>
#include <strings.h>

static const struct {
    const char *name;
    int sig;
} signals[] = {
    {"HUP", SIGHUP},       {"INT", SIGINT},   {"QUIT", SIGQUIT},   {"ILL", SIGILL},
    {"TRAP", SIGTRAP},     {"ABRT", SIGABRT}, {"BUS", SIGBUS},     {"FPE", SIGFPE},
    {"KILL", SIGKILL},     {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},   {"USR2", SIGUSR2},
    {"PIPE", SIGPIPE},     {"ALRM", SIGALRM}, {"TERM", SIGTERM},   {"CHLD", SIGCHLD},
    {"CONT", SIGCONT},     {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},   {"TTIN", SIGTTIN},
    {"TTOU", SIGTTOU},     {"URG", SIGURG},   {"XCPU", SIGXCPU},   {"XFSZ", SIGXFSZ},
    {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
    {"PWR", SIGPWR},       {"SYS", SIGSYS},
};

int berth_signal_from_name(const char *name)
{
    char *end;
    long n;

    if (!name || !*name)
        return -1;
    if (*name >= '0' && *name <= '9') {
        n = strtol(name, &end, 10);
        return (*end || n < 1 || n >= NSIG) ? -1 : (int)n;
    }
    if (!strncasecmp(name, "SIG", 3))
        name += 3;
    for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
        if (!strcasecmp(name, signals[i].name))
            return signals[i].sig;
    return -1;
}

const char *berth_signal_name(int sig)
{
    static const char *const full[] = {
        [SIGHUP] = "SIGHUP",       [SIGINT] = "SIGINT",   [SIGQUIT] = "SIGQUIT",
        [SIGILL] = "SIGILL",       [SIGTRAP] = "SIGTRAP", [SIGABRT] = "SIGABRT",
        [SIGBUS] = "SIGBUS",       [SIGFPE] = "SIGFPE",   [SIGKILL] = "SIGKILL",
        [SIGUSR1] = "SIGUSR1",     [SIGSEGV] = "SIGSEGV", [SIGUSR2] = "SIGUSR2",
        [SIGPIPE] = "SIGPIPE",     [SIGALRM] = "SIGALRM", [SIGTERM] = "SIGTERM",
        [SIGCHLD] = "SIGCHLD",     [SIGCONT] = "SIGCONT", [SIGSTOP] = "SIGSTOP",
        [SIGTSTP] = "SIGTSTP",     [SIGTTIN] = "SIGTTIN", [SIGTTOU] = "SIGTTOU",
        [SIGURG] = "SIGURG",       [SIGXCPU] = "SIGXCPU", [SIGXFSZ] = "SIGXFSZ",
        [SIGVTALRM] = "SIGVTALRM", [SIGPROF] = "SIGPROF", [SIGWINCH] = "SIGWINCH",
        [SIGIO] = "SIGIO",         [SIGPWR] = "SIGPWR",   [SIGSYS] = "SIGSYS",
    };

    if (sig > 0 && (size_t)sig < ARRAY_SIZE(full) && full[sig])
        return full[sig];
    return "SIG?";
}

void berth_strv_push(char ***v, size_t *n, const char *s)
{
    *v = xrealloc(*v, (*n + 2) * sizeof(char *));
    (*v)[(*n)++] = xstrdup(s);
    (*v)[*n] = NULL;
}

void berth_strv_free(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
}

void berth_env_set(char ***env, size_t *n, const char *kv)
{
    size_t klen = strcspn(kv, "=") + 1;

    for (size_t i = 0; i < *n; i++) {
        if (!strncmp((*env)[i], kv, klen)) {
            free((*env)[i]);
            (*env)[i] = xstrdup(kv);
            return;
        }
    }
    berth_strv_push(env, n, kv);
}

void berth_env_set_arg(char ***env, size_t *n, const char *arg)
{
    const char *v;

    if (strchr(arg, '=')) {
        berth_env_set(env, n, arg);
    } else if ((v = getenv(arg))) {
        _cleanup_free_ char *kv = xasprintf("%s=%s", arg, v);
        berth_env_set(env, n, kv);
    }
}

void berth_format_age(char *buf, size_t len, int64_t s)
{
    if (s < 0)
        snprintf(buf, len, "-");
    else if (s < 120)
        snprintf(buf, len, "%llds", (long long)s);
    else if (s < 7200)
        snprintf(buf, len, "%lldm", (long long)(s / 60));
    else if (s < 172800)
        snprintf(buf, len, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
    else
        snprintf(buf, len, "%lldd", (long long)(s / 86400));
}

/* "/" as this process saw it when it started: one stat per start */
static struct stat start_root;
static bool have_start_root;

__attribute__((constructor)) static void remember_root(void)
{
    have_start_root = stat("/", &start_root) == 0;
}

void *berth_dlopen_host(const char *soname, char *why, size_t whylen)
{
    struct stat st;
    void *h;

    if (!have_start_root || stat("/", &st) < 0 || st.st_dev != start_root.st_dev ||
        st.st_ino != start_root.st_ino) {
        snprintf(why, whylen, "%s is not opened: this process no longer sees the host's root",
                 soname);
        return NULL;
    }
    h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        snprintf(why, whylen, "%s could not be loaded: %s", soname, dlerror());
    return h;
}
