/* Artifact verification: a SHA-256 (and, for prehashed minisign
 * signatures, BLAKE2b-512) computed while the bytes stream in, and minisign
 * signature checks with OpenSSL's libcrypto.
 *
 * minisign formats (https://jedisct1.github.io/minisign/):
 *   public key:  base64("Ed" || keynum[8] || ed25519 pk[32])
 *   signature:   "untrusted comment: ..." line,
 *                base64(alg[2] || keynum[8] || sig[64]) where alg is "Ed"
 *                (sig over the file itself) or "ED" (sig over the
 *                BLAKE2b-512 of the file),
 *                "trusted comment: TEXT" line,
 *                base64(global sig[64]) = ed25519 over sig[64] || TEXT
 */
#ifndef BERTH_VERIFY_H
#define BERTH_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Streaming digests of one artifact. */
struct berth_digest {
    void *sha256;  /* EVP_MD_CTX */
    void *blake2b; /* EVP_MD_CTX, NULL unless asked for */
    uint64_t size;
};

/* Start digesting; `blake2b` also computes BLAKE2b-512. */
BERTH_MUST_CHECK int berth_digest_init(struct berth_digest *d, bool blake2b, berth_error *err);
void berth_digest_update(struct berth_digest *d, const void *buf, size_t len);
/* Start over (a download restarted from byte 0). */
void berth_digest_reset(struct berth_digest *d);
/* Finish: the SHA-256 as 64 lowercase hex digits, and the BLAKE2b-512 when
 * it was asked for (ret_blake2b may be NULL). The context may be reset. */
void berth_digest_final(struct berth_digest *d, char ret_sha256[65], unsigned char ret_blake2b[64]);
void berth_digest_release(struct berth_digest *d);

/* "sha256:<64 lowercase hex>" → the hex part. */
BERTH_MUST_CHECK int berth_digest_parse(const char *digest, char ret_hex[65], berth_error *err);

struct berth_minisign_key {
    unsigned char keynum[8];
    unsigned char pk[32];
};

struct berth_minisign_sig {
    bool prehashed; /* "ED": the signature covers BLAKE2b-512(file) */
    unsigned char keynum[8];
    unsigned char sig[64];
    char *trusted_comment; /* without the "trusted comment: " prefix */
    unsigned char global_sig[64];
};

/* A public key: the base64 line alone, or a whole minisign .pub file. */
BERTH_MUST_CHECK int berth_minisign_key_parse(const char *text, struct berth_minisign_key *ret,
                                              berth_error *err);

/* A .minisig file's contents (`len` bytes, need not be NUL-terminated). */
BERTH_MUST_CHECK int berth_minisign_sig_parse(const char *text, size_t len,
                                              struct berth_minisign_sig *ret, berth_error *err);
void berth_minisign_sig_release(struct berth_minisign_sig *sig);

/* Verify `sig` by `key` for the file at `path`: the key number, the
 * signature and the trusted comment's global signature. For a prehashed
 * signature, `blake2b` (computed while downloading) is used when not NULL,
 * so the file is not read again. */
BERTH_MUST_CHECK int berth_minisign_verify_file(const struct berth_minisign_key *key,
                                                const struct berth_minisign_sig *sig,
                                                const char *path, const unsigned char *blake2b,
                                                berth_error *err);

/* The same over a buffer (the unit tests). */
BERTH_MUST_CHECK int berth_minisign_verify(const struct berth_minisign_key *key,
                                           const struct berth_minisign_sig *sig, const void *data,
                                           size_t len, berth_error *err);

#endif
