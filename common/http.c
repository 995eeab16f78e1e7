/*
 * http.c - HTTP client on one reused libcurl easy handle per client: keeps
 * connections alive, caps response bodies, captures the final headers.
 */
#include "optsync/http.h"
#include "optsync/log.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct osy_http_client_s {
        CURL *curl;
        struct osy_http_opts opts; /* resolved; user_agent points below */
        char *user_agent;
        char curl_err[CURL_ERROR_SIZE];
};

/* State of one transfer, filled by the libcurl callbacks. */
struct xfer {
        char *body;
        size_t len, cap, max;
        int too_large; /* the write callback refused: body over max */
        int nomem;
        struct osy_http_header *hdrs;
        size_t n_hdrs, cap_hdrs;
};

/* Header names whose values are credentials: never printed. */
static const char *const secret_headers[] = {
    "authorization", "proxy-authorization", "api-token", "x-api-key",
    "cookie",        "set-cookie",          NULL};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc         = CURLE_FAILED_INIT;

/* curl_global_init() is not safe to race with itself on every libcurl
 * build, so exactly one thread runs it; it is never undone (process-long). */
static void global_init(void)
{
        global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

const char *osy_http_method2str(osy_http_method_t method)
{
        switch (method) {
        case OSY_HTTP_GET:
                return "GET";
        case OSY_HTTP_POST:
                return "POST";
        case OSY_HTTP_PUT:
                return "PUT";
        case OSY_HTTP_PATCH:
                return "PATCH";
        case OSY_HTTP_DELETE:
                return "DELETE";
        }
        return NULL;
}

osy_err_t osy_http_opts_resolve(struct osy_http_opts *out,
                                const struct osy_http_opts *in, char *errstr,
                                size_t errstr_size)
{
        struct osy_http_opts o = {0};

        if (!out)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "http: no options to fill");
        if (in)
                o = *in;
        if (o.connect_timeout_ms < 0 || o.timeout_ms < 0)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "http: negative timeout (%ld, %ld ms)",
                                   o.connect_timeout_ms, o.timeout_ms);
        if (!o.connect_timeout_ms)
                o.connect_timeout_ms = OSY_HTTP_DEFAULT_CONNECT_TIMEOUT_MS;
        if (!o.timeout_ms)
                o.timeout_ms = OSY_HTTP_DEFAULT_TIMEOUT_MS;
        if (!o.max_body)
                o.max_body = OSY_HTTP_DEFAULT_MAX_BODY;
        if (!o.user_agent || !*o.user_agent)
                o.user_agent = OSY_HTTP_DEFAULT_USER_AGENT;
        *out = o;
        return OSY_OK;
}

osy_err_t osy_http_client_new(osy_http_client_t **cp,
                              const struct osy_http_opts *opts, char *errstr,
                              size_t errstr_size)
{
        osy_http_client_t *c = NULL;
        osy_err_t err;

        if (!cp)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "http: no client pointer");
        *cp = NULL;
        pthread_once(&global_once, global_init);
        if (global_rc != CURLE_OK)
                return osy_err_set(OSY_ERR_FATAL, errstr, errstr_size,
                                   "http: curl_global_init: %s",
                                   curl_easy_strerror(global_rc));
        err = OSY_ERR_NOMEM;
        c   = calloc(1, sizeof(*c));
        if (!c) {
                osy_err_set(err, errstr, errstr_size, "http: out of memory");
                goto out;
        }
        err = osy_http_opts_resolve(&c->opts, opts, errstr, errstr_size);
        if (err != OSY_OK)
                goto out;
        err           = OSY_ERR_NOMEM;
        c->user_agent = strdup(c->opts.user_agent);
        c->curl       = curl_easy_init();
        if (!c->user_agent || !c->curl) {
                osy_err_set(err, errstr, errstr_size, "http: out of memory");
                goto out;
        }
        c->opts.user_agent = c->user_agent; /* the caller's may go away */
        *cp                = c;
        c                  = NULL; /* the caller owns it now */
        err                = OSY_OK;
out:
        osy_http_client_destroy(c);
        return err;
}

void osy_http_client_destroy(osy_http_client_t *c)
{
        if (!c)
                return;
        if (c->curl)
                curl_easy_cleanup(c->curl); /* closes cached connections */
        free(c->user_agent);
        free(c);
}

static int is_ows(char ch)
{
        return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Trim [*s, *e) of optional whitespace on both ends. */
static void trim(const char **s, const char **e)
{
        while (*s < *e && is_ows(**s))
                (*s)++;
        while (*e > *s && is_ows((*e)[-1]))
                (*e)--;
}

static char *dup_range(const char *s, const char *e)
{
        char *d = malloc((size_t)(e - s) + 1);

        if (!d)
                return NULL;
        memcpy(d, s, (size_t)(e - s));
        d[e - s] = '\0';
        return d;
}

static void free_headers(struct osy_http_header *h, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(h[i].name);
                free(h[i].value);
        }
        free(h);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *opaque)
{
        struct xfer *x = opaque;
        size_t n       = size * nmemb; /* size is always 1 for curl */

        /* Refusing the bytes makes curl abort with CURLE_WRITE_ERROR right
         * here, so an oversize answer costs at most max_body of memory. */
        if (n > x->max - x->len) {
                x->too_large = 1;
                return 0;
        }
        if (x->len + n + 1 > x->cap) {
                size_t cap = x->cap ? x->cap : 4096;
                char *nb;

                while (cap < x->len + n + 1)
                        cap *= 2;
                nb = realloc(x->body, cap);
                if (!nb) {
                        x->nomem = 1;
                        return 0;
                }
                x->body = nb;
                x->cap  = cap;
        }
        memcpy(x->body + x->len, ptr, n);
        x->len += n;
        x->body[x->len] = '\0';
        return n;
}

/* Append a continuation line (obsolete folding) to the last value. */
static int append_folded(struct xfer *x, const char *s, const char *e)
{
        struct osy_http_header *h = &x->hdrs[x->n_hdrs - 1];
        size_t old                = strlen(h->value);
        char *nv = realloc(h->value, old + 1 + (size_t)(e - s) + 1);

        if (!nv)
                return -1;
        nv[old] = ' ';
        memcpy(nv + old + 1, s, (size_t)(e - s));
        nv[old + 1 + (e - s)] = '\0';
        h->value              = nv;
        return 0;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *opaque)
{
        struct xfer *x = opaque;
        size_t n       = size * nmemb;
        const char *s = ptr, *e = ptr + n, *colon, *ns, *ne;

        /* A status line starts a new answer (after 100 Continue, or a
         * proxy's CONNECT reply): keep only the final answer's headers. */
        if (n >= 5 && !memcmp(ptr, "HTTP/", 5)) {
                free_headers(x->hdrs, x->n_hdrs);
                x->hdrs   = NULL;
                x->n_hdrs = x->cap_hdrs = 0;
                return n;
        }
        if (n > 0 && (ptr[0] == ' ' || ptr[0] == '\t') && x->n_hdrs > 0) {
                trim(&s, &e);
                if (s < e && append_folded(x, s, e) != 0)
                        goto nomem;
                return n;
        }
        colon = memchr(ptr, ':', n);
        if (!colon)
                return n; /* the blank line ending the block, or junk */
        ns = ptr;
        ne = colon;
        trim(&ns, &ne);
        s = colon + 1;
        trim(&s, &e);
        if (ns == ne)
                return n;
        if (x->n_hdrs == x->cap_hdrs) {
                size_t cap = x->cap_hdrs ? x->cap_hdrs * 2 : 16;
                struct osy_http_header *nh =
                    realloc(x->hdrs, cap * sizeof(*nh));

                if (!nh)
                        goto nomem;
                x->hdrs     = nh;
                x->cap_hdrs = cap;
        }
        x->hdrs[x->n_hdrs].name  = dup_range(ns, ne);
        x->hdrs[x->n_hdrs].value = dup_range(s, e);
        if (!x->hdrs[x->n_hdrs].name || !x->hdrs[x->n_hdrs].value) {
                free(x->hdrs[x->n_hdrs].name);
                free(x->hdrs[x->n_hdrs].value);
                goto nomem;
        }
        x->n_hdrs++;
        return n;
nomem:
        x->nomem = 1;
        return 0; /* aborts the transfer */
}

/* The URL without its query string: queries may carry tokens, so errors
 * and logs only ever show scheme, host and path. */
static const char *url_for_log(const char *url, char *buf, size_t size)
{
        size_t n = strcspn(url, "?#");

        if (n >= size)
                n = size - 1;
        memcpy(buf, url, n);
        buf[n] = '\0';
        return buf;
}

static int is_secret_header(const char *line)
{
        size_t n = strcspn(line, ":");

        for (size_t i = 0; secret_headers[i]; i++)
                if (strlen(secret_headers[i]) == n &&
                    !strncasecmp(line, secret_headers[i], n))
                        return 1;
        return 0;
}

/* Debug line for a request, credentials masked by header name (the log's
 * own secret registry would only catch values registered in advance). */
static void log_request(const char *method, const char *url,
                        const char *const *headers)
{
        char ubuf[512], hbuf[1024];
        const char *kv[] = {"method",  method, "url", ubuf,
                            "headers", hbuf,   NULL};
        size_t off       = 0;

        url_for_log(url, ubuf, sizeof(ubuf));
        hbuf[0] = '\0';
        /* snprintf truncates safely; off past the end just ends the loop. */
        for (size_t i = 0; headers && headers[i] && off < sizeof(hbuf); i++) {
                int secret = is_secret_header(headers[i]);
                int w = snprintf(hbuf + off, sizeof(hbuf) - off, "%s%.*s%s",
                                 off ? "; " : "",
                                 secret ? (int)strcspn(headers[i], ":")
                                        : (int)strlen(headers[i]),
                                 headers[i], secret ? ": ***" : "");
                if (w < 0)
                        break;
                off += (size_t)w;
        }
        osy_log_kv(OSY_LOG_DEBUG, kv, "http request");
}

/* Header lines are passed to libcurl verbatim: a CR or LF inside one would
 * let a value smuggle in extra headers, so such lines are refused. */
static osy_err_t build_headers(const char *const *headers,
                               struct curl_slist **out, char *errstr,
                               size_t errstr_size)
{
        struct curl_slist *l = NULL, *t;
        int has_expect       = 0;

        *out = NULL;
        for (size_t i = 0; headers && headers[i]; i++) {
                const char *h = headers[i];
                size_t nlen   = strcspn(h, ":");

                if (nlen == 0 || !h[nlen] || strpbrk(h, "\r\n")) {
                        curl_slist_free_all(l);
                        return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                           "http: bad header line #%zu", i);
                }
                if (nlen == 6 && !strncasecmp(h, "expect", 6))
                        has_expect = 1;
                t = curl_slist_append(l, h);
                if (!t)
                        goto nomem;
                l = t;
        }
        /* No "Expect: 100-continue" round trip on larger bodies: the APIs
         * we talk to answer at once, and the wait costs a full second when
         * a server ignores it. */
        if (!has_expect) {
                t = curl_slist_append(l, "Expect:");
                if (!t)
                        goto nomem;
                l = t;
        }
        *out = l;
        return OSY_OK;
nomem:
        curl_slist_free_all(l);
        return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                           "http: out of memory");
}

/* Map a failed curl_easy_perform() to our error classes. */
static osy_err_t classify_curl(CURLcode rc, const struct xfer *x,
                               const osy_http_client_t *c, const char *method,
                               const char *url, char *errstr,
                               size_t errstr_size)
{
        char ubuf[256];
        const char *msg = c->curl_err[0] ? c->curl_err : curl_easy_strerror(rc);

        url_for_log(url, ubuf, sizeof(ubuf));
        if (x->too_large || rc == CURLE_FILESIZE_EXCEEDED)
                return osy_err_set(OSY_ERR_TOO_LARGE, errstr, errstr_size,
                                   "%s %s: response body over %zu bytes",
                                   method, ubuf, c->opts.max_body);
        if (x->nomem || rc == CURLE_OUT_OF_MEMORY)
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "%s %s: out of memory", method, ubuf);
        switch (rc) {
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_BAD_FUNCTION_ARGUMENT:
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "%s %s: %s", method, ubuf, msg);
        default:
                /* Timeouts, refused or reset connections, DNS and TLS
                 * failures: no answer arrived, so try again later. */
                return osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                   "%s %s: %s (curl %d)", method, ubuf, msg,
                                   (int)rc);
        }
}

#define SETOPT(opt, val)                                                       \
        do {                                                                   \
                if ((rc = curl_easy_setopt(c->curl, opt, val)) != CURLE_OK)    \
                        goto setopt_failed;                                    \
        } while (0)

osy_err_t osy_http_do(osy_http_client_t *c, const struct osy_http_request *req,
                      struct osy_http_response *resp, char *errstr,
                      size_t errstr_size)
{
        struct curl_slist *hl = NULL;
        struct xfer x         = {0};
        const char *method;
        osy_err_t err;
        CURLcode rc;
        long status      = 0;
        curl_off_t total = 0;

        if (resp)
                memset(resp, 0, sizeof(*resp));
        if (!c || !req || !resp || !req->url || !*req->url)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "http: missing client, request or URL");
        method = osy_http_method2str(req->method);
        if (!method)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "http: unknown method %d", (int)req->method);
        if (req->body_len && !req->body)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "http: body_len %zu without a body",
                                   req->body_len);
        err = build_headers(req->headers, &hl, errstr, errstr_size);
        if (err != OSY_OK)
                return err;
        x.max = c->opts.max_body;
        if (osy_log_level() <= OSY_LOG_DEBUG)
                log_request(method, req->url, req->headers);

        /* Reset forgets the previous request's options but keeps the
         * connection cache, so the next call to the same host reuses the
         * open (TLS) connection. */
        curl_easy_reset(c->curl);
        c->curl_err[0] = '\0';
        SETOPT(CURLOPT_ERRORBUFFER, c->curl_err);
        SETOPT(CURLOPT_URL, req->url);
        SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
        SETOPT(CURLOPT_NOSIGNAL, 1L); /* no SIGALRM: we are threaded */
        SETOPT(CURLOPT_CONNECTTIMEOUT_MS, c->opts.connect_timeout_ms);
        SETOPT(CURLOPT_TIMEOUT_MS, c->opts.timeout_ms);
        SETOPT(CURLOPT_USERAGENT, c->opts.user_agent);
        SETOPT(CURLOPT_ACCEPT_ENCODING, ""); /* whatever curl can decode */
        SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
        /* Refuses early when Content-Length already says too much; the
         * write callback catches chunked and decompressed bodies. */
        SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->opts.max_body);
        SETOPT(CURLOPT_WRITEFUNCTION, on_body);
        SETOPT(CURLOPT_WRITEDATA, &x);
        SETOPT(CURLOPT_HEADERFUNCTION, on_header);
        SETOPT(CURLOPT_HEADERDATA, &x);
        SETOPT(CURLOPT_HTTPHEADER, hl);
        if (req->method == OSY_HTTP_GET) {
                SETOPT(CURLOPT_HTTPGET, 1L);
        } else {
                if (req->method != OSY_HTTP_POST)
                        SETOPT(CURLOPT_CUSTOMREQUEST, method);
                /* DELETE carries a body only when given one; the others
                 * always send Content-Length, even 0. */
                if (req->method != OSY_HTTP_DELETE || req->body_len) {
                        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE,
                               (curl_off_t)req->body_len);
                        SETOPT(CURLOPT_POSTFIELDS,
                               req->body_len ? req->body : "");
                }
        }

        rc = curl_easy_perform(c->curl);
        if (rc != CURLE_OK) {
                err = classify_curl(rc, &x, c, method, req->url, errstr,
                                    errstr_size);
                goto out;
        }
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(c->curl, CURLINFO_TOTAL_TIME_T, &total);
        if (!x.body) {
                /* Callers may always treat body as a string. */
                x.body = calloc(1, 1);
                if (!x.body) {
                        err = osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                          "http: out of memory");
                        goto out;
                }
        }
        resp->status    = (int)status;
        resp->body      = x.body;
        resp->body_len  = x.len;
        resp->headers   = x.hdrs;
        resp->n_headers = x.n_hdrs;
        resp->total_ms  = (int64_t)(total / 1000);
        x.body          = NULL; /* the response owns them now */
        x.hdrs          = NULL;
        x.n_hdrs        = 0;
        osy_log_debug("http %s answered %d in %lld ms", method, resp->status,
                      (long long)resp->total_ms);
        err = OSY_OK;
        goto out;

setopt_failed:
        err = osy_err_set(
            rc == CURLE_OUT_OF_MEMORY ? OSY_ERR_NOMEM : OSY_ERR_INVALID, errstr,
            errstr_size, "http: curl_easy_setopt: %s", curl_easy_strerror(rc));
out:
        /* The handle must not keep pointers into this call's stack. */
        curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, NULL);
        curl_slist_free_all(hl);
        free(x.body);
        free_headers(x.hdrs, x.n_hdrs);
        return err;
}

const char *osy_http_response_header(const struct osy_http_response *resp,
                                     const char *name)
{
        if (!resp || !name)
                return NULL;
        /* Walk backwards: for repeated headers the last one wins. */
        for (size_t i = resp->n_headers; i > 0; i--)
                if (!strcasecmp(resp->headers[i - 1].name, name))
                        return resp->headers[i - 1].value;
        return NULL;
}

void osy_http_response_free(struct osy_http_response *resp)
{
        if (!resp)
                return;
        free(resp->body);
        free_headers(resp->headers, resp->n_headers);
        memset(resp, 0, sizeof(*resp));
}

/* ---- Retry-After -------------------------------------------------------- */

static const char *const wkdays[]   = {"Mon", "Tue", "Wed", "Thu",
                                       "Fri", "Sat", "Sun", NULL};
static const char *const weekdays[] = {"Monday",   "Tuesday", "Wednesday",
                                       "Thursday", "Friday",  "Saturday",
                                       "Sunday",   NULL};
static const char *const months[]   = {"Jan", "Feb", "Mar", "Apr", "May",
                                       "Jun", "Jul", "Aug", "Sep", "Oct",
                                       "Nov", "Dec", NULL};
static const char *const gmt[]      = {"GMT", NULL};

/* Match one of @p words exactly (case-sensitive, as RFC 9110 requires)
 * at *p; advance and return its index, or -1. */
static int match_word(const char **p, const char *end, const char *const *words)
{
        for (int i = 0; words[i]; i++) {
                size_t n = strlen(words[i]);

                if ((size_t)(end - *p) >= n && !memcmp(*p, words[i], n)) {
                        *p += n;
                        return i;
                }
        }
        return -1;
}

static int match_char(const char **p, const char *end, char ch)
{
        if (*p >= end || **p != ch)
                return -1;
        (*p)++;
        return 0;
}

/* Exactly @p n decimal digits. */
static int match_digits(const char **p, const char *end, int n, int *out)
{
        int v = 0;

        for (int i = 0; i < n; i++) {
                if (*p >= end || **p < '0' || **p > '9')
                        return -1;
                v = v * 10 + (**p - '0');
                (*p)++;
        }
        *out = v;
        return 0;
}

static int match_time(const char **p, const char *end, struct tm *tm)
{
        if (match_digits(p, end, 2, &tm->tm_hour) || match_char(p, end, ':') ||
            match_digits(p, end, 2, &tm->tm_min) || match_char(p, end, ':') ||
            match_digits(p, end, 2, &tm->tm_sec))
                return -1;
        return 0;
}

/* HTTP-date in its three RFC 9110 forms; returns -1 when not one. */
static time_t parse_http_date(const char *p, const char *end)
{
        struct tm tm = {0}, chk;
        int mon = -1, year = 0;
        time_t t;

        if (match_word(&p, end, weekdays) >= 0) {
                /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
                if (match_char(&p, end, ',') || match_char(&p, end, ' ') ||
                    match_digits(&p, end, 2, &tm.tm_mday) ||
                    match_char(&p, end, '-') ||
                    (mon = match_word(&p, end, months)) < 0 ||
                    match_char(&p, end, '-') ||
                    match_digits(&p, end, 2, &year) ||
                    match_char(&p, end, ' ') || match_time(&p, end, &tm) ||
                    match_char(&p, end, ' ') || match_word(&p, end, gmt) < 0)
                        return -1;
                year += year < 70 ? 2000 : 1900;
        } else if (match_word(&p, end, wkdays) >= 0) {
                if (p < end && *p == ',') {
                        /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
                        p++;
                        if (match_char(&p, end, ' ') ||
                            match_digits(&p, end, 2, &tm.tm_mday) ||
                            match_char(&p, end, ' ') ||
                            (mon = match_word(&p, end, months)) < 0 ||
                            match_char(&p, end, ' ') ||
                            match_digits(&p, end, 4, &year) ||
                            match_char(&p, end, ' ') ||
                            match_time(&p, end, &tm) ||
                            match_char(&p, end, ' ') ||
                            match_word(&p, end, gmt) < 0)
                                return -1;
                } else {
                        /* asctime: "Sun Nov  6 08:49:37 1994" */
                        if (match_char(&p, end, ' ') ||
                            (mon = match_word(&p, end, months)) < 0 ||
                            match_char(&p, end, ' '))
                                return -1;
                        if (p < end && *p == ' ') {
                                p++;
                                if (match_digits(&p, end, 1, &tm.tm_mday))
                                        return -1;
                        } else if (match_digits(&p, end, 2, &tm.tm_mday)) {
                                return -1;
                        }
                        if (match_char(&p, end, ' ') ||
                            match_time(&p, end, &tm) ||
                            match_char(&p, end, ' ') ||
                            match_digits(&p, end, 4, &year))
                                return -1;
                }
        } else {
                return -1;
        }
        if (p != end || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
            tm.tm_min > 59 || tm.tm_sec > 60)
                return -1;
        tm.tm_mon  = mon;
        tm.tm_year = year - 1900;
        t          = timegm(&tm);
        /* timegm() rolls "31 Feb" over into March: refuse such dates. */
        if (t == (time_t)-1 || !gmtime_r(&t, &chk) || chk.tm_mon != mon)
                return -1;
        return t;
}

int64_t osy_http_retry_after_ms(const char *value, time_t now)
{
        const int64_t max_s = 1000000000; /* ~31 years: "forever" */
        const char *s, *e;
        time_t when;

        if (!value)
                return -1;
        s = value;
        e = value + strlen(value);
        trim(&s, &e);
        if (s == e)
                return -1;
        if (*s >= '0' && *s <= '9') {
                int64_t secs = 0;

                for (const char *p = s; p < e; p++) {
                        if (*p < '0' || *p > '9')
                                return -1;
                        if (secs < max_s)
                                secs = secs * 10 + (*p - '0');
                }
                return (secs > max_s ? max_s : secs) * 1000;
        }
        when = parse_http_date(s, e);
        if (when == (time_t)-1)
                return -1;
        if (when <= now)
                return 0; /* already passed: retry now */
        if ((int64_t)(when - now) > max_s)
                return max_s * 1000;
        return (int64_t)(when - now) * 1000;
}
