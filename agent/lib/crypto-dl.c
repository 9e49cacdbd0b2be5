/* libcrypto, loaded when the first digest or signature needs it.
 *
 * Linked statically, libcrypto's provider tables are 360 KB of pointers
 * that the dynamic loader relocates at every start of every berth process,
 * about a hundred page faults, whether or not the process hashes anything:
 * most do not (`berth run` of a stored image, keepers, `ps`, `diff`). So
 * berth is not linked with libcrypto; this file defines the few EVP
 * functions that util.c, verify.c and registry.c use, each forwarding to
 * libcrypto.so.3 opened with dlopen() on first use, as curl-dl.c does for
 * libcurl (whose TLS loads the same libcrypto.so.3, so a fetch loads it
 * once). Without libcrypto, the constructors return NULL and the rest fail;
 * callers ask berth_crypto_ready() first, which says why. */
#include <dlfcn.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <errno.h>
#include <stdio.h>

#include "util.h"

#define CRYPTO_FUNCTIONS(X)                                                                      \
    X(EVP_MD_CTX *, EVP_MD_CTX_new, (void))                                                      \
    X(void, EVP_MD_CTX_free, (EVP_MD_CTX * c))                                                   \
    X(int, EVP_DigestInit_ex, (EVP_MD_CTX * c, const EVP_MD *t, ENGINE *e))                      \
    X(int, EVP_DigestUpdate, (EVP_MD_CTX * c, const void *d, size_t n))                          \
    X(int, EVP_DigestFinal_ex, (EVP_MD_CTX * c, unsigned char *md, unsigned int *n))             \
    X(int, EVP_Digest,                                                                           \
      (const void *d, size_t n, unsigned char *md, unsigned int *s, const EVP_MD *t, ENGINE *e)) \
    X(const EVP_MD *, EVP_sha256, (void))                                                        \
    X(const EVP_MD *, EVP_blake2b512, (void))                                                    \
    X(int, EVP_EncodeBlock, (unsigned char *t, const unsigned char *f, int n))                   \
    X(int, EVP_DecodeBlock, (unsigned char *t, const unsigned char *f, int n))                   \
    X(EVP_PKEY *, EVP_PKEY_new_raw_public_key,                                                   \
      (int type, ENGINE *e, const unsigned char *pub, size_t len))                               \
    X(void, EVP_PKEY_free, (EVP_PKEY * k))                                                       \
    X(int, EVP_DigestVerifyInit,                                                                 \
      (EVP_MD_CTX * c, EVP_PKEY_CTX * *pc, const EVP_MD *t, ENGINE *e, EVP_PKEY *k))             \
    X(int, EVP_DigestVerify,                                                                     \
      (EVP_MD_CTX * c, const unsigned char *sig, size_t siglen, const unsigned char *tbs,        \
       size_t tbslen))

static struct {
#define FIELD(ret, name, args) ret(*name) args;
    CRYPTO_FUNCTIONS(FIELD)
#undef FIELD
} fn;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded;
static char why[256];

static void load(void)
{
    void *h = berth_dlopen_host("libcrypto.so.3", why, sizeof(why));

    if (!h)
        return;
#define SYM(ret, name, args)                                                          \
    if (!(*(void **)&fn.name = dlsym(h, #name))) {                                    \
        snprintf(why, sizeof(why), "libcrypto.so.3 has no %s: %s", #name, dlerror()); \
        return;                                                                       \
    }
    CRYPTO_FUNCTIONS(SYM)
#undef SYM
    loaded = 1;
}

static int ready(void)
{
    pthread_once(&once, load);
    return loaded;
}

int berth_crypto_ready(berth_error *err)
{
    return ready() ? 0 : berth_error_set(err, ELIBACC, "%s", why);
}

/* The constructors and the functions that take no object load the library
 * and fail when it is missing... */
EVP_MD_CTX *EVP_MD_CTX_new(void)
{
    return ready() ? fn.EVP_MD_CTX_new() : NULL;
}

const EVP_MD *EVP_sha256(void)
{
    return ready() ? fn.EVP_sha256() : NULL;
}

const EVP_MD *EVP_blake2b512(void)
{
    return ready() ? fn.EVP_blake2b512() : NULL;
}

int EVP_Digest(const void *d, size_t n, unsigned char *md, unsigned int *s, const EVP_MD *t,
               ENGINE *e)
{
    return ready() ? fn.EVP_Digest(d, n, md, s, t, e) : 0;
}

int EVP_EncodeBlock(unsigned char *t, const unsigned char *f, int n)
{
    return ready() ? fn.EVP_EncodeBlock(t, f, n) : -1;
}

int EVP_DecodeBlock(unsigned char *t, const unsigned char *f, int n)
{
    return ready() ? fn.EVP_DecodeBlock(t, f, n) : -1;
}

EVP_PKEY *EVP_PKEY_new_raw_public_key(int type, ENGINE *e, const unsigned char *pub, size_t len)
{
    return ready() ? fn.EVP_PKEY_new_raw_public_key(type, e, pub, len) : NULL;
}

/* ...the rest take an object that only a loaded library made, or NULL. */
void EVP_MD_CTX_free(EVP_MD_CTX *c)
{
    if (c)
        fn.EVP_MD_CTX_free(c);
}

void EVP_PKEY_free(EVP_PKEY *k)
{
    if (k)
        fn.EVP_PKEY_free(k);
}

int EVP_DigestInit_ex(EVP_MD_CTX *c, const EVP_MD *t, ENGINE *e)
{
    return c && t ? fn.EVP_DigestInit_ex(c, t, e) : 0;
}

int EVP_DigestUpdate(EVP_MD_CTX *c, const void *d, size_t n)
{
    return fn.EVP_DigestUpdate(c, d, n);
}

int EVP_DigestFinal_ex(EVP_MD_CTX *c, unsigned char *md, unsigned int *n)
{
    return fn.EVP_DigestFinal_ex(c, md, n);
}

int EVP_DigestVerifyInit(EVP_MD_CTX *c, EVP_PKEY_CTX **pc, const EVP_MD *t, ENGINE *e, EVP_PKEY *k)
{
    return fn.EVP_DigestVerifyInit(c, pc, t, e, k);
}

int EVP_DigestVerify(EVP_MD_CTX *c, const unsigned char *sig, size_t siglen,
                     const unsigned char *tbs, size_t tbslen)
{
    return fn.EVP_DigestVerify(c, sig, siglen, tbs, tbslen);
}
