#include "verify.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "util.h"

int berth_digest_init(struct berth_digest *d, bool blake2b, berth_error *err)
{
    memset(d, 0, sizeof(*d));
    if (berth_crypto_ready(err) < 0)
        return -1;
    d->sha256 = EVP_MD_CTX_new();
    if (!d->sha256 || !EVP_DigestInit_ex(d->sha256, EVP_sha256(), NULL))
        goto fail;
    if (blake2b) {
        d->blake2b = EVP_MD_CTX_new();
        if (!d->blake2b || !EVP_DigestInit_ex(d->blake2b, EVP_blake2b512(), NULL))
            goto fail;
    }
    return 0;
fail:
    berth_digest_release(d);
    return berth_error_set(err, ENOMEM, "initialising the digests");
}

void berth_digest_update(struct berth_digest *d, const void *buf, size_t len)
{
    EVP_DigestUpdate(d->sha256, buf, len);
    if (d->blake2b)
        EVP_DigestUpdate(d->blake2b, buf, len);
    d->size += len;
}

void berth_digest_reset(struct berth_digest *d)
{
    EVP_DigestInit_ex(d->sha256, EVP_sha256(), NULL);
    if (d->blake2b)
        EVP_DigestInit_ex(d->blake2b, EVP_blake2b512(), NULL);
    d->size = 0;
}

void berth_digest_final(struct berth_digest *d, char ret_sha256[65], unsigned char ret_blake2b[64])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    EVP_DigestFinal_ex(d->sha256, md, &n);
    berth_hex(md, n, ret_sha256);
    if (d->blake2b) {
        EVP_DigestFinal_ex(d->blake2b, md, &n);
        if (ret_blake2b)
            memcpy(ret_blake2b, md, 64);
    }
}

void berth_digest_release(struct berth_digest *d)
{
    EVP_MD_CTX_free(d->sha256);
    EVP_MD_CTX_free(d->blake2b);
    d->sha256 = d->blake2b = NULL;
}

int berth_digest_parse(const char *digest, char ret_hex[65], berth_error *err)
{
    if (!digest || strncmp(digest, "sha256:", 7))
        return berth_error_set(err, EINVAL, "invalid digest '%s': expected sha256:<64 hex digits>",
                               digest ? digest : "");
    const char *h = digest + 7;
    size_t n = strlen(h);
    if (n != 64 || strspn(h, "0123456789abcdef") != 64)
        return berth_error_set(err, EINVAL,
                               "invalid digest '%s': expected 64 lowercase hex digits after "
                               "'sha256:'",
                               digest);
    memcpy(ret_hex, h, 65);
    return 0;
}

/* Decode one base64 line of exactly `want` bytes. */
static int b64_exact(const char *s, size_t slen, unsigned char *out, size_t want)
{
    _cleanup_free_ unsigned char *buf = NULL;
    size_t pad = 0;
    int n;

    while (slen && isspace((unsigned char)s[slen - 1]))
        slen--;
    if (slen == 0 || slen % 4)
        return -1;
    for (size_t i = slen; i > 0 && s[i - 1] == '='; i--)
        pad++;
    buf = xmalloc(slen / 4 * 3 + 1);
    n = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)slen);
    if (n < 0 || (size_t)n - pad != want)
        return -1;
    memcpy(out, buf, want);
    return 0;
}

int berth_minisign_key_parse(const char *text, struct berth_minisign_key *ret, berth_error *err)
{
    unsigned char raw[42];
    const char *line = text;

    if (berth_crypto_ready(err) < 0)
        return -1;
    /* a .pub file: skip the untrusted comment */
    if (!strncmp(line, "untrusted comment:", 18)) {
        line = strchr(line, '\n');
        line = line ? line + 1 : "";
    }
    while (*line == ' ' || *line == '\t')
        line++;
    size_t len = strcspn(line, "\r\n");
    if (b64_exact(line, len, raw, sizeof(raw)) < 0 || memcmp(raw, "Ed", 2))
        return berth_error_set(err, EINVAL,
                               "invalid minisign public key: expected the base64 line of a "
                               "minisign .pub file (starting with 'RW')");
    memcpy(ret->keynum, raw + 2, 8);
    memcpy(ret->pk, raw + 10, 32);
    return 0;
}

/* The next line of [*p, end), without its "\n" or "\r\n". */
static bool next_line(const char **p, const char *end, const char **ret, size_t *ret_len)
{
    if (*p >= end)
        return false;
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    const char *e = nl ? nl : end;
    *ret = *p;
    *ret_len = (size_t)(e - *p);
    if (*ret_len && (*ret)[*ret_len - 1] == '\r')
        (*ret_len)--;
    *p = nl ? nl + 1 : end;
    return true;
}

int berth_minisign_sig_parse(const char *text, size_t len, struct berth_minisign_sig *ret,
                             berth_error *err)
{
    static const char tc[] = "trusted comment: ";
    const char *p = text, *end = text + len, *l[4];
    size_t ll[4];
    unsigned char raw[74];

    if (berth_crypto_ready(err) < 0)
        return -1;
    memset(ret, 0, sizeof(*ret));
    for (int i = 0; i < 4; i++)
        if (!next_line(&p, end, &l[i], &ll[i]))
            return berth_error_set(err, EINVAL, "invalid minisign signature: expected 4 lines");
    if (ll[0] < 18 || memcmp(l[0], "untrusted comment:", 18))
        return berth_error_set(err, EINVAL,
                               "invalid minisign signature: no 'untrusted comment:' line");
    if (b64_exact(l[1], ll[1], raw, sizeof(raw)) < 0)
        return berth_error_set(err, EINVAL, "invalid minisign signature: bad signature line");
    if (!memcmp(raw, "ED", 2))
        ret->prehashed = true;
    else if (memcmp(raw, "Ed", 2))
        return berth_error_set(err, EINVAL, "invalid minisign signature: unknown algorithm '%.2s'",
                               (const char *)raw);
    memcpy(ret->keynum, raw + 2, 8);
    memcpy(ret->sig, raw + 10, 64);
    if (ll[2] < sizeof(tc) - 1 || memcmp(l[2], tc, sizeof(tc) - 1))
        return berth_error_set(err, EINVAL,
                               "invalid minisign signature: no 'trusted comment:' line");
    if (b64_exact(l[3], ll[3], ret->global_sig, 64) < 0)
        return berth_error_set(err, EINVAL,
                               "invalid minisign signature: bad global signature line");
    ret->trusted_comment = xmalloc(ll[2] - (sizeof(tc) - 1) + 1);
    memcpy(ret->trusted_comment, l[2] + sizeof(tc) - 1, ll[2] - (sizeof(tc) - 1));
    ret->trusted_comment[ll[2] - (sizeof(tc) - 1)] = '\0';
    return 0;
}

void berth_minisign_sig_release(struct berth_minisign_sig *sig)
{
    free(sig->trusted_comment);
    sig->trusted_comment = NULL;
}

static bool ed25519_ok(const unsigned char pk[32], const unsigned char sig[64], const void *msg,
                       size_t len)
{
    EVP_PKEY *key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk, 32);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = key && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
              EVP_DigestVerify(ctx, sig, 64, msg, len) == 1;

    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return ok;
}

static char *hexnum(const unsigned char keynum[8], char buf[17])
{
    /* minisign prints key ids as a little-endian 64-bit number */
    for (int i = 0; i < 8; i++)
        snprintf(buf + 2 * i, 3, "%02X", keynum[7 - i]);
    return buf;
}

/* Key number, then the trusted comment; `msg` is the signed message. */
static int verify_msg(const struct berth_minisign_key *key, const struct berth_minisign_sig *sig,
                      const void *msg, size_t len, berth_error *err)
{
    char a[17], b[17];

    if (memcmp(key->keynum, sig->keynum, 8))
        return berth_error_set(err, EPERM, "signature made with key %s, but the trusted key is %s",
                               hexnum(sig->keynum, a), hexnum(key->keynum, b));
    if (!ed25519_ok(key->pk, sig->sig, msg, len))
        return berth_error_set(err, EPERM, "signature verification failed");
    size_t clen = strlen(sig->trusted_comment);
    _cleanup_free_ unsigned char *g = xmalloc(64 + clen);
    memcpy(g, sig->sig, 64);
    memcpy(g + 64, sig->trusted_comment, clen);
    if (!ed25519_ok(key->pk, sig->global_sig, g, 64 + clen))
        return berth_error_set(err, EPERM,
                               "the trusted comment's signature is invalid (comment tampered "
                               "with?)");
    return 0;
}

static void blake2b(const void *data, size_t len, unsigned char out[64])
{
    unsigned int n = 64;
    EVP_Digest(data, len, out, &n, EVP_blake2b512(), NULL);
}

int berth_minisign_verify(const struct berth_minisign_key *key,
                          const struct berth_minisign_sig *sig, const void *data, size_t len,
                          berth_error *err)
{
    unsigned char h[64];

    if (!sig->prehashed)
        return verify_msg(key, sig, data, len, err);
    blake2b(data, len, h);
    return verify_msg(key, sig, h, 64, err);
}

int berth_minisign_verify_file(const struct berth_minisign_key *key,
                               const struct berth_minisign_sig *sig, const char *path,
                               const unsigned char *b2, berth_error *err)
{
    _cleanup_close_ int fd = -1;
    struct stat st;
    void *map = NULL;
    int r;

    if (sig->prehashed && b2)
        r = verify_msg(key, sig, b2, 64, err);
    else {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0)
            return berth_error_set(err, errno, "opening '%s'", path);
        if (st.st_size > 0) {
            map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (map == MAP_FAILED)
                return berth_error_set(err, errno, "mapping '%s'", path);
        }
        r = berth_minisign_verify(key, sig, map ? map : "", (size_t)st.st_size, err);
        if (map)
            munmap(map, (size_t)st.st_size);
    }
    if (r < 0)
        return berth_error_wrap(err, "minisign signature of '%s'", path);
    return 0;
}
