/*
 * cometd_http.c - libcurl transport for CometD long-polling. The common
 * HTTP client (optsync/http.h) keeps no cookies and cannot be interrupted,
 * and a Bayeux session needs both, so this one owns its easy handle.
 */
#include "cometd_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 5000L
#define DEFAULT_MAX_BODY ((size_t)8 * 1024 * 1024)

struct osy_sfi_cometd_http_s {
        CURL *curl;
        struct osy_sfi_cometd_opts opts;
        char *user_agent;
        char curl_err[CURL_ERROR_SIZE];
};

/* Growing answer buffer, cut at max_body. */
struct sink {
        char *buf;
        size_t len, cap, max;
        int too_large, nomem;
};

/* libcurl write callback: append to the sink; returning less than given
 * aborts the transfer (cap reached or no memory). */
static size_t on_body(char *data, size_t size, size_t nmemb, void *opaque)
{
        struct sink *s = opaque;
        size_t n       = size * nmemb;

        if (s->len + n > s->max) {
                s->too_large = 1;
                return 0; /* makes curl fail with CURLE_WRITE_ERROR */
        }
        if (s->len + n + 1 > s->cap) {
                size_t ncap = s->cap ? s->cap : 4096;
                char *p;
                while (ncap < s->len + n + 1)
                        ncap *= 2;
                if (!(p = realloc(s->buf, ncap))) {
                        s->nomem = 1;
                        return 0;
                }
                s->buf = p;
                s->cap = ncap;
        }
        memcpy(s->buf + s->len, data, n);
        s->len += n;
        s->buf[s->len] = '\0';
        return n;
}

/* libcurl calls this at least once a second, also while a long-poll is
 * parked: the only way to end a 110 s wait early on SIGTERM. */
static int on_progress(void *opaque, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
        osy_sfi_cometd_http_t *h = opaque;

        (void)dltotal;
        (void)dlnow;
        (void)ultotal;
        (void)ulnow;
        return h->opts.abort_cb && h->opts.abort_cb(h->opts.abort_opaque);
}

osy_err_t osy_sfi_cometd_http_new(osy_sfi_cometd_http_t **hp,
                                  const struct osy_sfi_cometd_opts *opts,
                                  char *errstr, size_t errstr_size)
{
        osy_sfi_cometd_http_t *h;

        *hp = NULL;
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return osy_err_set(OSY_ERR_FATAL, errstr, errstr_size,
                                   "cometd: curl_global_init failed");
        if (!(h = calloc(1, sizeof(*h))))
                return OSY_ERR_NOMEM;
        if (opts)
                h->opts = *opts;
        if (h->opts.connect_timeout_ms <= 0)
                h->opts.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
        if (!h->opts.max_body)
                h->opts.max_body = DEFAULT_MAX_BODY;
        h->user_agent      = strdup(h->opts.user_agent ? h->opts.user_agent
                                                       : "optsync-sf-ingest");
        h->opts.user_agent = NULL; /* not kept: the copy above is */
        if (!h->user_agent || !(h->curl = curl_easy_init())) {
                osy_sfi_cometd_http_destroy(h);
                return OSY_ERR_NOMEM;
        }
        /* "" turns the cookie engine on without reading a file: cookies
         * live in this handle only, for this session. */
        curl_easy_setopt(h->curl, CURLOPT_COOKIEFILE, "");
        *hp = h;
        return OSY_OK;
}

void osy_sfi_cometd_http_destroy(osy_sfi_cometd_http_t *h)
{
        if (!h)
                return;
        if (h->curl)
                curl_easy_cleanup(h->curl);
        free(h->user_agent);
        free(h);
}

void osy_sfi_cometd_http_reset(osy_sfi_cometd_http_t *h)
{
        curl_easy_setopt(h->curl, CURLOPT_COOKIELIST, "ALL");
}

size_t osy_sfi_cometd_http_cookies(osy_sfi_cometd_http_t *h)
{
        struct curl_slist *list = NULL, *it;
        size_t n                = 0;

        if (curl_easy_getinfo(h->curl, CURLINFO_COOKIELIST, &list) != CURLE_OK)
                return 0;
        for (it = list; it; it = it->next)
                n++;
        curl_slist_free_all(list);
        return n;
}

osy_err_t osy_sfi_cometd_http_post(osy_sfi_cometd_http_t *h, const char *url,
                                   const char *bearer, const char *json,
                                   long timeout_ms, int *status, char **body,
                                   size_t *body_len, char *errstr,
                                   size_t errstr_size)
{
        struct curl_slist *hl = NULL, *tmp;
        struct sink sink      = {.max = h->opts.max_body};
        char *auth            = NULL;
        size_t alen   = strlen(bearer) + sizeof("Authorization: Bearer ");
        long code     = 0;
        osy_err_t err = OSY_OK;
        CURLcode rc;

        *status = 0;
        *body   = NULL;
        if (body_len)
                *body_len = 0;
        if (!(auth = malloc(alen)))
                return OSY_ERR_NOMEM;
        snprintf(auth, alen, "Authorization: Bearer %s", bearer);
        const char *lines[] = {auth, "Content-Type: application/json",
                               "Accept: application/json", NULL};
        for (size_t i = 0; lines[i]; i++) {
                if (!(tmp = curl_slist_append(hl, lines[i]))) {
                        err = OSY_ERR_NOMEM;
                        goto out;
                }
                hl = tmp;
        }
        h->curl_err[0] = '\0';
        curl_easy_setopt(h->curl, CURLOPT_URL, url);
        curl_easy_setopt(h->curl, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, h->curl_err);
        curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT_MS,
                         h->opts.connect_timeout_ms);
        curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(h->curl, CURLOPT_USERAGENT, h->user_agent);
        curl_easy_setopt(h->curl, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, json);
        curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)strlen(json));
        curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, &sink);
        curl_easy_setopt(h->curl, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h->curl, CURLOPT_XFERINFODATA, h);
        /* The cookie engine sends back BAYEUX_BROWSER (and any other
         * cookie the server set) on every request of this handle. */
        rc = curl_easy_perform(h->curl);
        /* The header list and body are ours: unhook them before freeing. */
        curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, NULL);
        if (sink.nomem) {
                err = OSY_ERR_NOMEM;
        } else if (sink.too_large) {
                err = osy_err_set(OSY_ERR_TOO_LARGE, errstr, errstr_size,
                                  "cometd: answer larger than %zu bytes",
                                  h->opts.max_body);
        } else if (rc == CURLE_ABORTED_BY_CALLBACK) {
                err = osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                  "cometd: request aborted (shutdown)");
        } else if (rc != CURLE_OK) {
                err = osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                  "cometd: %s%s%s", curl_easy_strerror(rc),
                                  h->curl_err[0] ? ": " : "", h->curl_err);
        }
        if (err)
                goto out;
        curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &code);
        *status = (int)code;
        if (!sink.buf && !(sink.buf = calloc(1, 1))) {
                err = OSY_ERR_NOMEM;
                goto out;
        }
        *body = sink.buf;
        if (body_len)
                *body_len = sink.len;
        sink.buf = NULL;
out:
        free(sink.buf);
        curl_slist_free_all(hl);
        /* The header held the token: wipe it before it goes back. */
        memset(auth, 0, alen);
        free(auth);
        return err;
}
