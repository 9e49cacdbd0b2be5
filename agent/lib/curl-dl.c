/* libcurl, loaded when the first transfer needs it.
 *
 * Linking libcurl pulls some twenty shared libraries (TLS, HTTP/2, SSH,
 * LDAP, Kerberos, IDN...) into every start of berth, and relocating them
 * costs about 4 ms and 5 MB: more than all of `berth run`'s own work. So
 * berth is not linked with libcurl; this file defines the curl functions
 * that fetch.c uses, each forwarding to libcurl.so.4 opened with dlopen()
 * on first use. Without libcurl, the init functions fail (curl_global_init
 * returns CURLE_FAILED_INIT, the handle constructors NULL) and fetch.c
 * reports that. */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>

#include "util.h"

#define CURL_FUNCTIONS(X)                                                        \
    X(CURLcode, global_init, (long flags))                                       \
    X(void, global_cleanup, (void))                                              \
    X(CURL *, easy_init, (void))                                                 \
    X(void, easy_cleanup, (CURL * h))                                            \
    X(void, easy_reset, (CURL * h))                                              \
    X(CURLcode, easy_setopt, (CURL * h, CURLoption opt, ...))                    \
    X(CURLcode, easy_getinfo, (CURL * h, CURLINFO info, ...))                    \
    X(const char *, easy_strerror, (CURLcode c))                                 \
    X(time_t, getdate, (const char *s, const time_t *unused))                    \
    X(CURLM *, multi_init, (void))                                               \
    X(CURLMcode, multi_cleanup, (CURLM * m))                                     \
    X(CURLMcode, multi_add_handle, (CURLM * m, CURL * h))                        \
    X(CURLMcode, multi_remove_handle, (CURLM * m, CURL * h))                     \
    X(CURLMcode, multi_perform, (CURLM * m, int *running))                       \
    X(CURLMcode, multi_poll,                                                     \
      (CURLM * m, struct curl_waitfd * fds, unsigned n, int ms, int *numfds))    \
    X(CURLMcode, multi_wait,                                                     \
      (CURLM * m, struct curl_waitfd * fds, unsigned n, int ms, int *numfds))    \
    X(CURLMcode, multi_wakeup, (CURLM * m))                                      \
    X(CURLMcode, multi_setopt, (CURLM * m, CURLMoption opt, ...))                \
    X(CURLMsg *, multi_info_read, (CURLM * m, int *left))                        \
    X(const char *, multi_strerror, (CURLMcode c))                               \
    X(struct curl_slist *, slist_append, (struct curl_slist * l, const char *s)) \
    X(void, slist_free_all, (struct curl_slist * l))                             \
    X(char *, easy_escape, (CURL * h, const char *s, int len))                   \
    X(void, free, (void *p))                                                     \
    X(char *, version, (void))

static struct {
#define FIELD(ret, name, args) ret(*name) args;
    CURL_FUNCTIONS(FIELD)
#undef FIELD
} fn;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded;

static void load(void)
{
    char why[256];
    void *h = berth_dlopen_host("libcurl.so.4", why, sizeof(why));

    if (!h)
        return;
#define SYM(ret, name, args)                             \
    if (!(*(void **)&fn.name = dlsym(h, "curl_" #name))) \
        return;
    CURL_FUNCTIONS(SYM)
#undef SYM
    loaded = 1;
}

static int ready(void)
{
    pthread_once(&once, load);
    return loaded;
}

CURLcode curl_global_init(long flags)
{
    return ready() ? fn.global_init(flags) : CURLE_FAILED_INIT;
}

void curl_global_cleanup(void)
{
    if (ready())
        fn.global_cleanup();
}

CURL *curl_easy_init(void)
{
    return ready() ? fn.easy_init() : NULL;
}

CURLM *curl_multi_init(void)
{
    return ready() ? fn.multi_init() : NULL;
}

char *curl_version(void)
{
    return ready() ? fn.version() : (char *)"libcurl not loaded";
}

const char *curl_easy_strerror(CURLcode c)
{
    return ready() ? fn.easy_strerror(c) : "libcurl.so.4 could not be loaded";
}

const char *curl_multi_strerror(CURLMcode c)
{
    return ready() ? fn.multi_strerror(c) : "libcurl.so.4 could not be loaded";
}

char *curl_easy_escape(CURL *h, const char *s, int len)
{
    return ready() ? fn.easy_escape(h, s, len) : NULL;
}

void curl_free(void *p)
{
    if (p)
        fn.free(p);
}

struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s)
{
    return ready() ? fn.slist_append(l, s) : NULL;
}

/* The rest need a handle, so libcurl is loaded by the time they run. */
void curl_easy_cleanup(CURL *h)
{
    if (h)
        fn.easy_cleanup(h);
}

void curl_easy_reset(CURL *h)
{
    fn.easy_reset(h);
}

void curl_slist_free_all(struct curl_slist *l)
{
    if (l)
        fn.slist_free_all(l);
}

time_t curl_getdate(const char *s, const time_t *unused)
{
    return ready() ? fn.getdate(s, unused) : -1;
}

CURLMcode curl_multi_cleanup(CURLM *m)
{
    return m ? fn.multi_cleanup(m) : CURLM_BAD_HANDLE;
}

CURLMcode curl_multi_add_handle(CURLM *m, CURL *h)
{
    return fn.multi_add_handle(m, h);
}

CURLMcode curl_multi_remove_handle(CURLM *m, CURL *h)
{
    return fn.multi_remove_handle(m, h);
}

CURLMcode curl_multi_perform(CURLM *m, int *running)
{
    return fn.multi_perform(m, running);
}

CURLMcode curl_multi_poll(CURLM *m, struct curl_waitfd *fds, unsigned n, int ms, int *numfds)
{
    return fn.multi_poll(m, fds, n, ms, numfds);
}

CURLMcode curl_multi_wait(CURLM *m, struct curl_waitfd *fds, unsigned n, int ms, int *numfds)
{
    return fn.multi_wait(m, fds, n, ms, numfds);
}

CURLMcode curl_multi_wakeup(CURLM *m)
{
    return fn.multi_wakeup(m);
}

CURLMsg *curl_multi_info_read(CURLM *m, int *left)
{
    return fn.multi_info_read(m, left);
}

/* The variadic setters take exactly one more argument, whose type the
 * option number says (curl.h: CURLOPTTYPE_*); pass it on as that type. */
static int opt_is_off_t(int opt)
{
    return opt >= CURLOPTTYPE_OFF_T && opt < CURLOPTTYPE_BLOB;
}

CURLcode curl_easy_setopt(CURL *h, CURLoption opt, ...)
{
    va_list ap;
    CURLcode r;

    va_start(ap, opt);
    if (opt < CURLOPTTYPE_OBJECTPOINT)
        r = fn.easy_setopt(h, opt, va_arg(ap, long));
    else if (opt_is_off_t((int)opt))
        r = fn.easy_setopt(h, opt, va_arg(ap, curl_off_t));
    else
        r = fn.easy_setopt(h, opt, va_arg(ap, void *));
    va_end(ap);
    return r;
}

CURLMcode curl_multi_setopt(CURLM *m, CURLMoption opt, ...)
{
    va_list ap;
    CURLMcode r;

    va_start(ap, opt);
    if (opt < CURLOPTTYPE_OBJECTPOINT)
        r = fn.multi_setopt(m, opt, va_arg(ap, long));
    else if (opt_is_off_t((int)opt))
        r = fn.multi_setopt(m, opt, va_arg(ap, curl_off_t));
    else
        r = fn.multi_setopt(m, opt, va_arg(ap, void *));
    va_end(ap);
    return r;
}

CURLcode curl_easy_getinfo(CURL *h, CURLINFO info, ...)
{
    va_list ap;
    void *p;

    va_start(ap, info);
    p = va_arg(ap, void *);
    va_end(ap);
    return fn.easy_getinfo(h, info, p);
}
