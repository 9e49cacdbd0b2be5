#include "fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "util.h"
#include "verify.h"

#define MAX_REDIRECTS        5
#define MAX_RETRY_AFTER_MS   (5 * 60 * 1000ULL)
#define PROGRESS_INTERVAL_MS 100

static void durations_from_env(struct berth_fetch_options *opt)
{
    static const char *const names[] = {"BERTH_STALL_TIMEOUT", "BERTH_FETCH_TIMEOUT"};
    uint64_t *fields[] = {&opt->stall_timeout_ms, &opt->fetch_timeout_ms};

    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        const char *v = getenv(names[i]);
        uint64_t ms;
        if (!v || !*v)
            continue;
        if (berth_parse_duration(v, &ms) < 0 || !ms) {
            berth_error_set(&opt->setting_err, EINVAL,
                            "invalid %s '%s': expected a duration such as 30s or 10m", names[i], v);
            return;
        }
        *fields[i] = ms;
    }
}

void berth_fetch_deadline(const struct berth_fetch_options *opt, struct berth_fetch_options *ret)
{
    *ret = *opt;
    if (!ret->deadline_ms && ret->fetch_timeout_ms)
        ret->deadline_ms = berth_now_ms() + ret->fetch_timeout_ms;
}

/* "90s", "1500ms", "10m" */
static void human_ms(uint64_t ms, char *buf, size_t len)
{
    if (ms % 1000)
        snprintf(buf, len, "%llums", (unsigned long long)ms);
    else if (ms % 60000 || ms < 600000)
        snprintf(buf, len, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(buf, len, "%llum", (unsigned long long)(ms / 60000));
}

void berth_fetch_options_init(struct berth_fetch_options *opt)
{
    memset(opt, 0, sizeof(*opt));
    opt->connect_timeout_ms = 30000;
    opt->stall_timeout_ms = 30000;
    opt->low_speed_limit = 1024;
    opt->fetch_timeout_ms = 60 * 60 * 1000;
    opt->transfer_child = true;
    opt->retries = 5;
    opt->retry_delay_ms = 1000;
    opt->retry_max_delay_ms = 60000;
    opt->max_size = BERTH_MAX_ARTIFACT_DEFAULT;
    opt->min_free = (struct berth_space_reserve){BERTH_MIN_FREE_DEFAULT, BERTH_MIN_FREE_PERCENT};
    if (berth_space_from_env(&opt->max_size, &opt->min_free, &opt->setting_err) == 0)
        durations_from_env(opt);
    const char *auth = getenv("REGISTRY_AUTH_FILE");
    opt->registry_auth = auth && *auth ? auth : NULL;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

enum xstate { X_WAITING, X_RUNNING, X_DONE };

struct xfer {
    const struct berth_fetch_request *req;
    struct berth_fetch_result *res;
    enum xstate state;
    size_t url;        /* index into req->urls */
    unsigned attempts; /* counted attempts on this URL */
    uint64_t next_ms;  /* when X_WAITING: start no earlier than this */
    int fd;
    bool own_fd;
    bool resumed; /* the file began with the bytes of an earlier request */
    bool discard; /* the bytes are wrong: a resumable file goes too */
    struct berth_digest dg;
    uint64_t offset; /* bytes in the file (and hashed) */
    uint64_t total;  /* expected size, 0 unknown */
    CURL *easy;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
    /* the current attempt */
    uint64_t range_from; /* Range we asked for, 0 none */
    bool body_started;
    berth_error werr; /* why the write callback refused */
    /* headers of the last response */
    char *etag, *last_modified;
    uint64_t retry_after_ms;
    bool has_retry_after;
    int64_t content_range_start;
    int64_t declared_length; /* the Content-Length header, -1 none */
    char failures[1024];     /* "url: why; " for each URL that failed */
    char redirect_to[512];   /* the last Location seen */
};

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\r' || s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * n;
    _cleanup_free_ char *line = strndup(buf, len);

    if (!line)
        return 0;
    trim(line);
    if (!strncmp(line, "HTTP/", 5)) { /* a new response (redirect or 100) */
        x->res->www_authenticate[0] = x->res->content_type[0] = '\0';
        free(x->etag);
        free(x->last_modified);
        x->etag = x->last_modified = NULL;
        x->has_retry_after = false;
        x->content_range_start = -1;
        x->declared_length = -1;
        return len;
    }
    char *colon = strchr(line, ':');
    if (!colon)
        return len;
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (!strcasecmp(line, "location"))
        snprintf(x->redirect_to, sizeof(x->redirect_to), "%s", v);
    else if (!strcasecmp(line, "www-authenticate") && !x->res->www_authenticate[0])
        snprintf(x->res->www_authenticate, sizeof(x->res->www_authenticate), "%s", v);
    else if (!strcasecmp(line, "content-type"))
        snprintf(x->res->content_type, sizeof(x->res->content_type), "%s", v);
    if (!strcasecmp(line, "etag")) {
        free(x->etag);
        x->etag = xstrdup(v);
    } else if (!strcasecmp(line, "last-modified")) {
        free(x->last_modified);
        x->last_modified = xstrdup(v);
    } else if (!strcasecmp(line, "retry-after")) {
        char *end;
        unsigned long long s = strtoull(v, &end, 10);
        if (*v >= '0' && *v <= '9' && !*end)
            x->retry_after_ms = s * 1000;
        else {
            time_t t = curl_getdate(v, NULL);
            time_t now = time(NULL);
            if (t < 0)
                return len;
            x->retry_after_ms = t > now ? (uint64_t)(t - now) * 1000 : 0;
        }
        x->has_retry_after = true;
    } else if (!strcasecmp(line, "content-length")) {
        /* kept even where curl ignores it (beside Transfer-Encoding): the
         * server said this is all there is */
        char *end;
        unsigned long long l = strtoull(v, &end, 10);
        if (*v >= '0' && *v <= '9' && !*end)
            x->declared_length = (int64_t)l;
    } else if (!strcasecmp(line, "content-range")) {
        unsigned long long a;
        if (sscanf(v, "bytes %llu-", &a) == 1)
            x->content_range_start = (int64_t)a;
    }
    return len;
}

/* The server sent the whole body again: start the file and digests over. */
static int restart_stream(struct xfer *x)
{
    if (ftruncate(x->fd, 0) < 0 || lseek(x->fd, 0, SEEK_SET) < 0)
        return berth_error_set(&x->werr, errno, "truncating '%s'", x->req->dest);
    berth_digest_reset(&x->dg);
    x->offset = 0;
    if (x->req->sink && x->req->sink->restart)
        x->req->sink->restart(x->req->sink->userdata);
    return 0;
}

static const struct berth_fetch_options *xfer_opt(struct xfer *x)
{
    const struct berth_fetch_options *opt = NULL;
    curl_easy_getinfo(x->easy, CURLINFO_PRIVATE, &opt);
    return opt;
}

/* The most this request may bring: its own bound (a registry descriptor's
 * size) or the maximum artifact size. */
static uint64_t xfer_max(struct xfer *x, const struct berth_fetch_options *opt)
{
    if (x->req->max_size && (!opt || !opt->max_size || x->req->max_size < opt->max_size))
        return x->req->max_size;
    return opt ? opt->max_size : 0;
}

/* What the server says is coming must fit: the maximum artifact size and
 * the free space above the reserve. */
static int check_declared(struct xfer *x)
{
    const struct berth_fetch_options *opt = xfer_opt(x);
    char a[32], b[32];

    if (!x->total || !opt)
        return 0;
    uint64_t max = xfer_max(x, opt);
    if (max && x->total > max && max != opt->max_size)
        return berth_error_set(&x->werr, EFBIG,
                               "the server declares %llu bytes, more than the %llu bytes "
                               "expected",
                               (unsigned long long)x->total, (unsigned long long)max);
    if (opt->max_size && x->total > opt->max_size) {
        berth_space_human(x->total, a, sizeof(a));
        berth_space_human(opt->max_size, b, sizeof(b));
        return berth_error_set(&x->werr, EFBIG,
                               "the server declares %s (%llu bytes), more than the maximum "
                               "artifact size of %s (--max-artifact-size, "
                               "BERTH_MAX_ARTIFACT_SIZE)",
                               a, (unsigned long long)x->total, b);
    }
    if (x->own_fd &&
        berth_space_check(x->fd, &opt->min_free, x->total - x->offset, x->req->dest, &x->werr) < 0)
        return -1;
    return 0;
}

static int start_body(struct xfer *x)
{
    long status = 0;
    curl_off_t cl = -1;

    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 300) /* FAILONERROR lets some through (401): never a body of an error */
        return berth_error_set(&x->werr, 0, "HTTP status %ld", status);
    curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    if (cl < 0 && x->declared_length >= 0)
        cl = (curl_off_t)x->declared_length;
    if (x->range_from && status == 206 && x->content_range_start == (int64_t)x->offset) {
        x->total = cl >= 0 ? x->offset + (uint64_t)cl : 0;
        return check_declared(x);
    }
    if (x->offset && restart_stream(x) < 0)
        return -1;
    x->total = cl >= 0 ? (uint64_t)cl : 0;
    return check_declared(x);
}

static size_t on_data(char *buf, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * n;
    if (!x->body_started) {
        x->body_started = true;
        if (start_body(x) < 0)
            return 0;
    }
    const struct berth_fetch_options *opt = xfer_opt(x);
    char a[32];
    if (x->total && x->offset + len > x->total) {
        berth_error_set(&x->werr, EPROTO,
                        "the server sent more than the %llu bytes its Content-Length declared",
                        (unsigned long long)x->total);
        return 0;
    }
    uint64_t max = xfer_max(x, opt);
    if (opt && max && max != opt->max_size && x->offset + len > max) {
        berth_error_set(&x->werr, EFBIG, "the server sent more than the %llu bytes expected",
                        (unsigned long long)max);
        return 0;
    }
    if (opt && opt->max_size && x->offset + len > opt->max_size) {
        berth_space_human(opt->max_size, a, sizeof(a));
        berth_error_set(&x->werr, EFBIG,
                        "the artifact is larger than the maximum artifact size of %s (%llu "
                        "bytes; --max-artifact-size, BERTH_MAX_ARTIFACT_SIZE)",
                        a, (unsigned long long)opt->max_size);
        return 0;
    }
    if (opt && x->own_fd &&
        berth_space_check(x->fd, &opt->min_free, len, x->req->dest, &x->werr) < 0) {
        berth_space_human(x->offset, a, sizeof(a));
        berth_error_wrap(&x->werr, "after %s received", a);
        return 0;
    }
    for (size_t done = 0; done < len;) {
        ssize_t w = write(x->fd, buf + done, len - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            berth_error_set(&x->werr, errno, "writing '%s'", x->req->dest);
            return 0;
        }
        done += (size_t)w;
    }
    berth_digest_update(&x->dg, buf, len);
    if (x->req->sink && x->req->sink->data)
        x->req->sink->data(x->req->sink->userdata, buf, len);
    x->offset += len;
    return len;
}

static bool is_https(const char *url)
{
    return !strncasecmp(url, "https:", 6);
}

static CURL *make_easy(struct xfer *x, const struct berth_fetch_options *opt)
{
    CURL *e = curl_easy_init();

    if (!e)
        return NULL;
    curl_easy_setopt(e, CURLOPT_URL, x->req->urls[x->url]);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    /* https stays https: a redirect to http would let anyone on the path
     * choose the bytes (the digest still catches it, the signature URL and
     * credentials would not be protected) */
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR,
                     is_https(x->req->urls[x->url]) ? "https" : "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)MAX_REDIRECTS);
    curl_easy_setopt(e, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "berth/" BERTH_VERSION);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)opt->connect_timeout_ms);
    /* a stall, in the headers as in the body: curl's low-speed check */
    if (opt->stall_timeout_ms) {
        long secs = (long)((opt->stall_timeout_ms + 999) / 1000);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, secs);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT,
                         (long)(opt->low_speed_limit ? opt->low_speed_limit : 1));
    }
    if (opt->deadline_ms) {
        uint64_t now = berth_now_ms();
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                         (long)(opt->deadline_ms > now ? opt->deadline_ms - now : 1));
    }
    curl_easy_setopt(e, CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
    if (opt->netrc_file)
        curl_easy_setopt(e, CURLOPT_NETRC_FILE, opt->netrc_file);
    if (opt->cacert)
        curl_easy_setopt(e, CURLOPT_CAINFO, opt->cacert);
    if (opt->cert)
        curl_easy_setopt(e, CURLOPT_SSLCERT, opt->cert);
    if (opt->key)
        curl_easy_setopt(e, CURLOPT_SSLKEY, opt->key);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, NULL); /* the bytes as stored */
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)opt);
    x->errbuf[0] = '\0';
    x->redirect_to[0] = '\0';
    x->body_started = false;
    x->range_from = 0;
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
    for (const char *const *h = x->req->headers; h && *h; h++)
        x->hdrs = curl_slist_append(x->hdrs, *h);
    if (x->offset) {
        char range[32];
        snprintf(range, sizeof(range), "%llu-", (unsigned long long)x->offset);
        curl_easy_setopt(e, CURLOPT_RANGE, range);
        x->range_from = x->offset;
        /* a changed file answers 200 with all of it, instead of the rest */
        const char *validator = x->etag && strncmp(x->etag, "W/", 2) ? x->etag : x->last_modified;
        if (validator) {
            _cleanup_free_ char *h = xasprintf("If-Range: %s", validator);
            x->hdrs = curl_slist_append(x->hdrs, h);
        }
    }
    if (x->hdrs)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    return e;
}

static bool retryable(CURLcode rc, long status)
{
    switch (rc) {
    case CURLE_HTTP_RETURNED_ERROR:
        return status >= 500 || status == 429 || status == 408;
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_PARTIAL_FILE:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

/* Why an attempt failed, in words. */
static void describe(struct xfer *x, CURLcode rc, long status, char *buf, size_t len)
{
    if (x->werr.msg[0]) {
        size_t n = strnlen(x->werr.msg, len - 1);
        memcpy(buf, x->werr.msg, n);
        buf[n] = '\0';
    } else if (rc == CURLE_HTTP_RETURNED_ERROR)
        snprintf(buf, len, "HTTP status %ld", status);
    else if (rc == CURLE_UNSUPPORTED_PROTOCOL && is_https(x->req->urls[x->url]) &&
             x->redirect_to[0] && strncasecmp(x->redirect_to, "https:", 6))
        snprintf(buf, len,
                 "refused a redirect from https to '%s': an https URL is never "
                 "followed to http or another protocol",
                 x->redirect_to);
    else if (rc == CURLE_UNSUPPORTED_PROTOCOL)
        snprintf(buf, len, "refused: only http and https are allowed, also in redirects (%s)",
                 x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        snprintf(buf, len, "timed out: %s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
    else
        snprintf(buf, len, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
}

static uint64_t backoff_ms(const struct berth_fetch_options *opt, unsigned attempt)
{
    uint64_t d = opt->retry_delay_ms;

    for (unsigned i = 0; i < attempt && d < opt->retry_max_delay_ms; i++)
        d *= 2;
    return d < opt->retry_max_delay_ms ? d : opt->retry_max_delay_ms;
}

static void finish(struct xfer *x, bool ok)
{
    x->state = X_DONE;
    x->res->rc = ok ? 0 : -1;
    if (ok)
        return;
    if (x->fd >= 0 && x->own_fd)
        close(x->fd);
    x->fd = -1;
    if (x->req->dest && (!x->req->resume || x->discard))
        unlink(x->req->dest);
}

/* This URL is done for: the next mirror, or the request fails. */
static void next_url(struct xfer *x, const char *why)
{
    size_t used = strlen(x->failures);
    snprintf(x->failures + used, sizeof(x->failures) - used, "%s'%s': %s", used ? "; " : "",
             x->req->urls[x->url], why);
    if (x->url + 1 < x->req->nurls) {
        berth_error ign = BERTH_ERROR_INIT;
        x->url++;
        x->attempts = 0;
        x->next_ms = 0;
        x->state = X_WAITING;
        free(x->etag);
        free(x->last_modified);
        x->etag = x->last_modified = NULL;
        if (x->offset) {
            x->werr = ign;
            if (restart_stream(x) < 0) {
                berth_error_set(&x->res->err, x->werr.code, "%s", x->werr.msg);
                finish(x, false);
            }
        }
        return;
    }
    if (x->req->nurls > 1)
        berth_error_set(&x->res->err, 0, "fetching failed from every URL: %s", x->failures);
    else
        berth_error_set(&x->res->err, 0, "fetching %s", x->failures);
    finish(x, false);
}

/* The image's fetch is out of time: no retry, no mirror. */
static void past_deadline(struct xfer *x, const struct berth_fetch_options *opt, const char *why)
{
    char d[32];
    size_t used = strlen(x->failures);

    if (why)
        snprintf(x->failures + used, sizeof(x->failures) - used, "%s'%s': %s", used ? "; " : "",
                 x->req->urls[x->url], why);
    human_ms(opt->fetch_timeout_ms, d, sizeof(d));
    berth_error_set(&x->res->err, 0,
                    "the fetch ran out of time (%s for one image: --fetch-timeout, "
                    "BERTH_FETCH_TIMEOUT): %s",
                    d, x->failures[0] ? x->failures : "no URL tried");
    finish(x, false);
}

static bool deadline_passed(const struct berth_fetch_options *opt, uint64_t at)
{
    return opt->deadline_ms && at >= opt->deadline_ms;
}

static void completed(struct xfer *x, CURLcode rc, const struct berth_fetch_options *opt)
{
    long status = 0;
    char why[1024];
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    x->res->http_status = status;
    if (rc == CURLE_OK && !x->body_started && start_body(x) < 0) /* empty body */
        rc = CURLE_WRITE_ERROR;
    if (rc == CURLE_OK) {
        if (status != 200 && status != 206) {
            snprintf(why, sizeof(why), "unexpected HTTP status %ld", status);
            return next_url(x, why);
        }
        berth_digest_final(&x->dg, x->res->sha256, x->res->blake2b);
        x->res->size = x->offset;
        if (x->req->sha256 && strcmp(x->req->sha256, x->res->sha256)) {
            snprintf(why, sizeof(why), "digest mismatch: expected sha256:%s, got sha256:%s",
                     x->req->sha256, x->res->sha256);
            berth_digest_reset(&x->dg);
            berth_error_clear(&x->werr);
            if (x->resumed && restart_stream(x) == 0) {
                /* the earlier bytes may be what was wrong: once more, all of it */
                x->resumed = false;
                x->state = X_WAITING;
                x->next_ms = 0;
                return;
            }
            x->discard = true;
            return next_url(x, why);
        }
        if (fsync(x->fd) < 0) {
            berth_error_set(&x->res->err, errno, "writing '%s'", x->req->dest);
            return finish(x, false);
        }
        if (x->own_fd)
            close(x->fd);
        x->fd = -1;
        x->res->url_index = x->url;
        return finish(x, true);
    }
    describe(x, rc, status, why, sizeof(why));
    if (rc == CURLE_OPERATION_TIMEDOUT && !x->werr.msg[0]) {
        curl_off_t sent = 0;
        if (deadline_passed(opt, berth_now_ms() + 100))
            return past_deadline(x, opt, "abandoned at the deadline");
        curl_easy_getinfo(x->easy, CURLINFO_PRETRANSFER_TIME_T, &sent);
        if (sent > 0) { /* connected and asked: the low-speed check */
            char d[32], got[32];
            human_ms(opt->stall_timeout_ms, d, sizeof(d));
            berth_space_human(x->offset, got, sizeof(got));
            snprintf(why, sizeof(why),
                     "stalled: less than %llu bytes/s for %s, %s of it received "
                     "(--stall-timeout, BERTH_STALL_TIMEOUT)",
                     (unsigned long long)(opt->low_speed_limit ? opt->low_speed_limit : 1), d, got);
            if (x->url + 1 < x->req->nurls || x->req->has_fallback)
                return next_url(x, why);
        }
    }
    if (rc == CURLE_HTTP_RETURNED_ERROR && status == 416 && x->offset) {
        /* our partial file no longer fits the resource: start over */
        berth_error_clear(&x->werr);
        if (restart_stream(x) == 0) {
            x->state = X_WAITING;
            x->next_ms = 0;
            return;
        }
    }
    if (x->werr.msg[0] || !retryable(rc, status))
        return next_url(x, why);
    /* the bytes already here are kept: the next attempt resumes */
    if (x->attempts >= opt->retries)
        return next_url(x, why);
    uint64_t delay = backoff_ms(opt, x->attempts++);
    if (x->has_retry_after)
        delay = x->retry_after_ms < MAX_RETRY_AFTER_MS ? x->retry_after_ms : MAX_RETRY_AFTER_MS;
    if (deadline_passed(opt, berth_now_ms() + delay))
        return past_deadline(x, opt, why);
    x->state = X_WAITING;
    x->next_ms = berth_now_ms() + delay;
}

static void report(const struct xfer *xs, size_t n, const struct berth_fetch_options *opt,
                   bool final)
{
    struct berth_fetch_progress p = {.transfers = n, .final = final};

    if (!opt->progress)
        return;
    for (size_t i = 0; i < n; i++) {
        p.done += xs[i].offset;
        p.total += xs[i].total;
        if (xs[i].state == X_DONE)
            p.finished++;
    }
    opt->progress(opt->progress_userdata, &p);
}

static int open_dest(struct xfer *x, int given_fd)
{
    if (given_fd >= 0) {
        x->fd = given_fd;
        return 0;
    }
    x->own_fd = true;
    x->fd = open(x->req->dest, (x->req->resume ? O_RDWR : O_WRONLY | O_TRUNC) | O_CREAT | O_CLOEXEC,
                 0600);
    if (x->fd < 0)
        return berth_error_set(&x->res->err, errno, "creating '%s'", x->req->dest);
    return 0;
}

/* A resumable request's file holds the bytes an earlier one received:
 * hash them, and ask for the rest. */
static int resume_from_file(struct xfer *x, const struct berth_fetch_options *opt)
{
    char buf[64 * 1024];
    uint64_t max = xfer_max(x, opt);
    ssize_t n;

    if (!x->req->resume || x->fd < 0)
        return 0;
    for (;;) {
        n = read(x->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return berth_error_set(&x->res->err, errno, "reading '%s'", x->req->dest);
        if (n == 0)
            break;
        berth_digest_update(&x->dg, buf, (size_t)n);
        x->offset += (uint64_t)n;
        if (max && x->offset >= max) /* never more than expected; all of it: ask again */
            break;
    }
    if (max && x->offset >= max) {
        berth_error_clear(&x->werr);
        if (restart_stream(x) < 0) {
            x->res->err = x->werr;
            return -1;
        }
    }
    x->resumed = x->offset > 0;
    return 0;
}

static size_t run(const struct berth_fetch_request *reqs, const int *fds, size_t n,
                  const struct berth_fetch_options *opt, struct berth_fetch_result *results)
{
    _cleanup_free_ struct xfer *xs = xcalloc(n, sizeof(*xs));
    CURLM *multi;
    size_t failed = 0, live = 0;
    uint64_t last_report = 0;

    pthread_once(&curl_once, curl_init_once);
    multi = curl_multi_init();
    for (size_t i = 0; i < n; i++) {
        struct xfer *x = &xs[i];
        memset(&results[i], 0, sizeof(results[i]));
        x->req = &reqs[i];
        x->res = &results[i];
        x->fd = -1;
        x->content_range_start = -1;
        x->declared_length = -1;
        if (opt->setting_err.msg[0]) {
            x->res->err = opt->setting_err;
            finish(x, false);
        } else if (!multi) {
            berth_error_set(&x->res->err, ENOMEM, "initialising libcurl");
            finish(x, false);
        } else if (reqs[i].nurls == 0) {
            berth_error_set(&x->res->err, EINVAL, "no URL to fetch from");
            finish(x, false);
        } else if (open_dest(x, fds ? fds[i] : -1) < 0 ||
                   berth_digest_init(&x->dg, reqs[i].blake2b, &x->res->err) < 0 ||
                   resume_from_file(x, opt) < 0)
            finish(x, false);
        else
            live++;
    }
    while (live) {
        uint64_t now = berth_now_ms(), wait = PROGRESS_INTERVAL_MS;
        for (size_t i = 0; i < n; i++) {
            struct xfer *x = &xs[i];
            if (x->state != X_WAITING)
                continue;
            if (x->next_ms > now) {
                wait = x->next_ms - now < wait ? x->next_ms - now : wait;
                continue;
            }
            if (deadline_passed(opt, now)) {
                past_deadline(x, opt, NULL);
                live--;
                continue;
            }
            x->easy = make_easy(x, opt);
            berth_error_clear(&x->werr);
            if (!x->easy || curl_multi_add_handle(multi, x->easy) != CURLM_OK) {
                berth_error_set(&x->res->err, ENOMEM, "starting a transfer");
                finish(x, false);
                live--;
                continue;
            }
            x->state = X_RUNNING;
        }
        int running;
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        int q;
        while ((m = curl_multi_info_read(multi, &q))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct xfer *x = NULL;
            for (size_t i = 0; i < n && !x; i++)
                if (xs[i].easy == m->easy_handle)
                    x = &xs[i];
            CURLcode rc = m->data.result;
            curl_multi_remove_handle(multi, x->easy);
            completed(x, rc, opt);
            curl_easy_cleanup(x->easy);
            x->easy = NULL;
            if (x->state == X_DONE)
                live--;
        }
        if (berth_now_ms() - last_report >= PROGRESS_INTERVAL_MS) {
            report(xs, n, opt, false);
            last_report = berth_now_ms();
        }
        if (live && running)
            curl_multi_poll(multi, NULL, 0, (int)wait, NULL);
        else if (live) {
            struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    report(xs, n, opt, true);
    for (size_t i = 0; i < n; i++) {
        struct xfer *x = &xs[i];
        if (x->fd >= 0 && x->own_fd)
            close(x->fd);
        berth_digest_release(&x->dg);
        curl_slist_free_all(x->hdrs);
        free(x->etag);
        free(x->last_modified);
        if (results[i].rc < 0)
            failed++;
    }
    if (multi)
        curl_multi_cleanup(multi);
    return failed;
}

size_t berth_fetch_many(const struct berth_fetch_request *reqs, size_t n,
                        const struct berth_fetch_options *opt, struct berth_fetch_result *results)
{
    return run(reqs, NULL, n, opt, results);
}

int berth_fetch(const struct berth_fetch_request *req, const struct berth_fetch_options *opt,
                struct berth_fetch_result *ret, berth_error *err)
{
    if (run(req, NULL, 1, opt, ret) == 0)
        return 0;
    *err = ret->err;
    return -1;
}

int berth_fetch_memory(const struct berth_fetch_request *req, const struct berth_fetch_options *opt,
                       size_t max, char **ret_data, size_t *ret_len, struct berth_fetch_result *ret,
                       berth_error *err)
{
    struct berth_fetch_options o = *opt;
    struct berth_fetch_request r = *req;
    struct berth_fetch_result own, *res = ret ? ret : &own;
    _cleanup_close_ int fd = memfd_create("berth-fetch", MFD_CLOEXEC);
    struct stat st;
    const char *url = req->nurls ? req->urls[0] : "(none)";

    if (fd < 0)
        return berth_error_set(err, errno, "creating a memory file");
    o.max_size = max;
    o.progress = NULL;
    r.dest = NULL;
    r.sink = NULL;
    if (run(&r, &fd, 1, &o, res)) {
        *err = res->err;
        return -1;
    }
    if (fstat(fd, &st) < 0)
        return berth_error_set(err, errno, "reading the download of '%s'", url);
    char *buf = xmalloc((size_t)st.st_size + 1);
    ssize_t n = pread(fd, buf, (size_t)st.st_size, 0);
    if (n != st.st_size) {
        free(buf);
        return berth_error_set(err, errno, "reading the download of '%s'", url);
    }
    buf[n] = '\0';
    *ret_data = buf;
    *ret_len = (size_t)n;
    return 0;
}

int berth_fetch_small(const char *url, const struct berth_fetch_options *opt, size_t max,
                      char **ret_data, size_t *ret_len, berth_error *err)
{
    struct berth_fetch_request req = {.urls = &url, .nurls = 1};

    return berth_fetch_memory(&req, opt, max, ret_data, ret_len, NULL, err);
}
