/* Small helpers shared by every module: cleanup attributes in the style of
 * systemd, atomic file writes, recursive mkdir/remove, and the size and
 * duration syntax of the desired-state file. */
#ifndef BERTH_UTIL_H
#define BERTH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "error.h"

static inline void freep(void *p)
{
    free(*(void **)p);
}
static inline void closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}
static inline void fclosep(FILE **f)
{
    if (*f)
        fclose(*f);
}

#define _cleanup_(f)     __attribute__((cleanup(f)))
#define _cleanup_free_   _cleanup_(freep)
#define _cleanup_close_  _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Hand ownership out of a cleanup variable. */
#define TAKE_PTR(p)             \
    ({                          \
        __typeof__(p) _p = (p); \
        (p) = NULL;             \
        _p;                     \
    })
#define TAKE_FD(fd)     \
    ({                  \
        int _fd = (fd); \
        (fd) = -1;      \
        _fd;            \
    })

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation that cannot fail: berth aborts on out-of-memory, as git does. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A span of `s` seconds as ps shows it: "45s", "12m", "3h07m", "4d";
 * "-" when negative (unknown). */
void berth_format_age(char *buf, size_t len, int64_t s);

/* Write `len` bytes to `path` atomically: a temporary file in the same
 * directory, fsync, rename, fsync of the directory. */
BERTH_MUST_CHECK int berth_write_file_atomic(const char *path, const void *data, size_t len,
                                             int mode, berth_error *err);

/* Read a whole file (at most `max` bytes) into a NUL-terminated buffer. */
BERTH_MUST_CHECK int berth_read_file(const char *path, size_t max, char **ret_data, size_t *ret_len,
                                     berth_error *err);
/* The same for `path` relative to the directory fd `dfd` (or AT_FDCWD). */
BERTH_MUST_CHECK int berth_read_file_at(int dfd, const char *path, size_t max, char **ret_data,
                                        size_t *ret_len, berth_error *err);

/* Write a short string to an existing file (sysfs, cgroupfs, procfs). */
BERTH_MUST_CHECK int berth_write_string(const char *path, const char *value, berth_error *err);

/* Open (creating it with `mode`) and flock `path` exclusively: the fd to
 * keep, or -1. Without `wait`, a lock held elsewhere fails at once with
 * err->code EWOULDBLOCK, for the caller to say who holds it. */
BERTH_MUST_CHECK int berth_lock_file(const char *path, int mode, bool wait, berth_error *err);

/* mkdir -p with `mode` for the created directories. */
BERTH_MUST_CHECK int berth_mkdir_p(const char *path, int mode, berth_error *err);

/* rm -rf that never crosses into another filesystem (so that a stray mount
 * below `path` is not emptied) and never follows symlinks. A missing path
 * is not an error. */
BERTH_MUST_CHECK int berth_rm_rf(const char *path, berth_error *err);

/* "512M", "64k", "1G", "1024" → bytes (K/M/G/T are powers of 1024; a
 * trailing "B" or "i" is accepted: "64MiB", "10MB"). */
int berth_parse_size(const char *s, uint64_t *ret_bytes);

/* "1.5s", "250ms", "5m", "1h", "10" (seconds) → milliseconds. */
int berth_parse_duration(const char *s, uint64_t *ret_ms);

/* Lowercase hex of `len` bytes into `out` (2*len+1 bytes). */
void berth_hex(const unsigned char *bytes, size_t len, char *out);

/* dlopen(soname) for the libraries berth opens on first use (libcurl,
 * libcrypto, libsystemd), or NULL with the reason in `why`. Refused once
 * this process sees another root than the one it started with (after a
 * chroot, pivot_root or setns into a container or the unpacker's tree):
 * the library would be looked up in a tree an image chose. */
void *berth_dlopen_host(const char *soname, char *why, size_t whylen);

/* libcrypto is opened on first use (crypto-dl.c): 0 once it is, or an
 * error saying why it cannot be. Ask before the first EVP call. */
BERTH_MUST_CHECK int berth_crypto_ready(berth_error *err);

/* sha256 of a file as 64 lowercase hex digits. */
BERTH_MUST_CHECK int berth_sha256_file(const char *path, char ret_hex[65], berth_error *err);

/* NULL-terminated string vectors (argv, environments). */
#define BERTH_DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* Append a copy of `s`; *v stays NULL-terminated, *n counts the strings. */
void berth_strv_push(char ***v, size_t *n, const char *s);
/* Free every string and the vector; NULL is fine. */
void berth_strv_free(char **v);
/* Put KEY=VALUE into an environment vector, replacing an earlier KEY. */
void berth_env_set(char ***env, size_t *n, const char *kv);
/* The same for a `-e` argument: KEY=VALUE, or KEY alone for KEY's value in
 * berth's own environment (skipped when it has none), as `docker run -e`. */
void berth_env_set_arg(char ***env, size_t *n, const char *arg);

/* Monotonic clock in milliseconds. */
uint64_t berth_now_ms(void);

/* Open `path` inside the directory tree `rootfd` as an O_PATH descriptor,
 * resolving every symlink and ".." as if `rootfd` were "/" (openat2's
 * RESOLVE_IN_ROOT), so nothing resolves outside the tree.
 * With `create` set, missing components are created: directories, and for
 * the last component a directory when `create_dir`, an empty file
 * otherwise. Returns the fd, or -1 with err->code the errno of the step
 * that failed (ENOENT: a component is missing). */
BERTH_MUST_CHECK int berth_open_in_root(int rootfd, const char *path, bool create, bool create_dir,
                                        berth_error *err);

/* "SIGTERM", "TERM", "term" or "15" → 15; -1 when unknown. */
int berth_signal_from_name(const char *name);
/* 15 → "SIGTERM" (a static string; "SIG?" when unknown). */
const char *berth_signal_name(int sig);

#endif
