/*
 * http.h - a small HTTP client on libcurl for the AC and SF APIs: one
 * keep-alive connection cache per client, capped bodies, captured headers.
 */
#ifndef OPTSYNC_HTTP_H
#define OPTSYNC_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "optsync/err.h"

/** Defaults applied to option fields left at 0 / NULL. */
#define OSY_HTTP_DEFAULT_CONNECT_TIMEOUT_MS 5000L
#define OSY_HTTP_DEFAULT_TIMEOUT_MS 30000L
#define OSY_HTTP_DEFAULT_MAX_BODY ((size_t)4 * 1024 * 1024)
#define OSY_HTTP_DEFAULT_USER_AGENT "optsync/0.1"

/** Options a caller fills; zero fields take the defaults above. */
struct osy_http_opts {
        long connect_timeout_ms; /**< TCP + TLS handshake budget */
        long timeout_ms;         /**< whole-request budget */
        size_t max_body; /**< cap on a response body; more is TOO_LARGE */
        const char *user_agent; /**< copied by osy_http_client_new() */
};

/** A client: one libcurl easy handle, reused so connections stay open.
 *  Not thread-safe: use one client per thread. */
typedef struct osy_http_client_s osy_http_client_t;

typedef enum {
        OSY_HTTP_GET = 0,
        OSY_HTTP_POST,
        OSY_HTTP_PUT,
        OSY_HTTP_PATCH,
        OSY_HTTP_DELETE
} osy_http_method_t;

/** One request. Nothing here is copied beyond the osy_http_do() call. */
struct osy_http_request {
        osy_http_method_t method;
        const char *url;
        /** NULL-terminated array of "Name: value" lines, or NULL. */
        const char *const *headers;
        const void *body; /**< may hold NUL bytes; NULL when body_len 0 */
        size_t body_len;
};

/** One captured response header, name and value trimmed. */
struct osy_http_header {
        char *name;
        char *value;
};

/**
 * @brief What osy_http_do() received. Every pointer is owned by the
 *        response and freed by osy_http_response_free().
 */
struct osy_http_response {
        int status;      /**< HTTP status of the final answer */
        char *body;      /**< NUL-terminated (never NULL after OSY_OK) */
        size_t body_len; /**< bytes in body, without the NUL */
        struct osy_http_header *headers; /**< of the final answer, in order */
        size_t n_headers;
        int64_t total_ms; /**< whole transfer, as libcurl measured it */
};

/** @returns "GET", "POST", ... or NULL for an unknown method. */
const char *osy_http_method2str(osy_http_method_t method);

/**
 * @brief Copy @p in (may be NULL) to @p out with defaults for zero fields.
 * @returns OSY_ERR_INVALID (with detail) for negative timeouts.
 */
osy_err_t osy_http_opts_resolve(struct osy_http_opts *out,
                                const struct osy_http_opts *in, char *errstr,
                                size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Create a client. Initialises libcurl once per process.
 * @param opts may be NULL (all defaults); not kept after the call.
 * @returns OSY_OK and *cp (caller destroys), else *cp is NULL.
 */
osy_err_t osy_http_client_new(osy_http_client_t **cp,
                              const struct osy_http_opts *opts, char *errstr,
                              size_t errstr_size) OSY_MUSTCHECK;

/** @brief Close connections and free the client. NULL-safe. */
void osy_http_client_destroy(osy_http_client_t *c);

/**
 * @brief Perform one request and wait for the answer.
 *
 * @param resp filled on OSY_OK (caller frees with osy_http_response_free());
 *             left empty (zeroed) on any error.
 * @returns OSY_OK when any HTTP answer arrived, whatever its status: the
 *          caller classifies it with osy_err_from_http(), the single
 *          decision. OSY_ERR_TRANSIENT on timeout or connection failure,
 *          OSY_ERR_TOO_LARGE when the body passes max_body (the transfer is
 *          cut short), OSY_ERR_INVALID on bad arguments or URLs.
 */
osy_err_t osy_http_do(osy_http_client_t *c, const struct osy_http_request *req,
                      struct osy_http_response *resp, char *errstr,
                      size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Case-insensitive header lookup.
 * @returns the trimmed value of the LAST header named @p name (owned by
 *          @p resp), or NULL.
 */
const char *osy_http_response_header(const struct osy_http_response *resp,
                                     const char *name);

/** @brief Free what @p resp holds and zero it. Safe to call twice. */
void osy_http_response_free(struct osy_http_response *resp);

/**
 * @brief Parse a Retry-After value: delta-seconds ("120") or an HTTP-date
 *        (IMF-fixdate, RFC 850 or asctime form, GMT).
 * @param now the current wall-clock time (a parameter so tests can fix it).
 * @returns milliseconds to wait (0 for a date in the past; huge values
 *          saturate at 10^9 s), or -1 if @p value cannot be parsed.
 */
int64_t osy_http_retry_after_ms(const char *value, time_t now);

#endif /* OPTSYNC_HTTP_H */
