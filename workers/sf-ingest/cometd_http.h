/*
 * cometd_http.h - the HTTP transport of the CometD client: one libcurl
 * handle with its cookie engine on (Salesforce ties a session to the
 * BAYEUX_BROWSER cookie), long-poll timeouts per request, and an abort hook
 * so a parked long-poll ends at once on shutdown.
 */
#ifndef OPTSYNC_SF_INGEST_COMETD_HTTP_H
#define OPTSYNC_SF_INGEST_COMETD_HTTP_H

#include <stddef.h>

#include "optsync/err.h"

/** @returns non-zero to abort the transfer in progress. */
typedef int(osy_sfi_abort_fn)(void *opaque);

/** Options; zero fields take defaults. Strings are copied. */
struct osy_sfi_cometd_opts {
        long connect_timeout_ms;    /**< TCP connect; 0: 5 s */
        size_t max_body;            /**< answer cap; 0: 8 MiB */
        const char *user_agent;     /**< NULL: "optsync-sf-ingest" */
        osy_sfi_abort_fn *abort_cb; /**< checked about every 100 ms */
        void *abort_opaque;
};

typedef struct osy_sfi_cometd_http_s osy_sfi_cometd_http_t;

/** @brief Create a transport. @returns OSY_OK and *hp (caller destroys). */
osy_err_t osy_sfi_cometd_http_new(osy_sfi_cometd_http_t **hp,
                                  const struct osy_sfi_cometd_opts *opts,
                                  char *errstr,
                                  size_t errstr_size) OSY_MUSTCHECK;

/** @brief Free the transport. NULL-safe. */
void osy_sfi_cometd_http_destroy(osy_sfi_cometd_http_t *h);

/** @brief Forget every cookie: a new handshake starts a new session. */
void osy_sfi_cometd_http_reset(osy_sfi_cometd_http_t *h);

/** @returns the number of cookies held (tests). */
size_t osy_sfi_cometd_http_cookies(osy_sfi_cometd_http_t *h);

/**
 * @brief POST one Bayeux message array to @p url.
 *
 * @param bearer     the access token (never logged).
 * @param timeout_ms whole-request budget (a long-poll: the server's
 *                   advice.timeout plus a margin).
 * @param status     receives the HTTP status.
 * @param body       receives the malloc()ed, NUL-terminated answer
 *                   (caller frees); NULL on error.
 * @returns OSY_OK when any HTTP answer arrived; OSY_ERR_TRANSIENT on
 *          timeouts, connection errors and aborts (the detail says
 *          which); OSY_ERR_TOO_LARGE past max_body; OSY_ERR_NOMEM.
 */
osy_err_t osy_sfi_cometd_http_post(osy_sfi_cometd_http_t *h, const char *url,
                                   const char *bearer, const char *json,
                                   long timeout_ms, int *status, char **body,
                                   size_t *body_len, char *errstr,
                                   size_t errstr_size) OSY_MUSTCHECK;

#endif /* OPTSYNC_SF_INGEST_COMETD_HTTP_H */
