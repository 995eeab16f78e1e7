/*
 * ac_client.h - a small ActiveCampaign API v3 client for one account:
 * contacts by email, list memberships, tag names (cached), bounce info.
 * Every call goes through the shared rate limiter; errors are classified
 * by osy_err_from_http().
 */
#ifndef OPTSYNC_AC_CLIENT_H
#define OPTSYNC_AC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "optsync/config.h"
#include "optsync/err.h"
#include "optsync/http.h"
#include "optsync/ratelimit.h"

/** Longest AC id kept (contact, list, tag, campaign). */
#define OSY_AC_ID_MAX 64

/** List membership statuses (AC's contactLists "status"). */
#define OSY_AC_LIST_UNCONFIRMED 0
#define OSY_AC_LIST_ACTIVE 1
#define OSY_AC_LIST_UNSUBSCRIBED 2
#define OSY_AC_LIST_BOUNCED 3

/** Limiter API name of AC: the bucket is (tenant, "ac"). */
#define OSY_AC_RL_API "ac"

/** A client for one AC account. Not thread-safe: one per thread. */
typedef struct osy_ac_client_s osy_ac_client_t;

/** Options; strings are copied by osy_ac_client_new(). */
struct osy_ac_client_opts {
        /** Account URL without "/api/3", e.g. "https://acct.api-us1.com"
         *  or the sandbox's "http://127.0.0.1:PORT/ac/acme". Required. */
        const char *base_url;
        /** The Api-Token header value. Required; never logged. */
        const char *api_token;
        /** Tenant name: the rate-limit bucket. Required. */
        const char *tenant;
        /** Shared limiter (5 req/s per account across every key and
         *  replica); not owned. NULL: no limit (tests only). */
        osy_rl_t *limiter;
        /** Longest a call waits for a token before it gives up with
         *  OSY_ERR_THROTTLED; 0 means 2000 ms. */
        int64_t limiter_max_wait_ms;
        /** HTTP settings; NULL: the defaults of http.h. */
        const struct osy_http_opts *http;
};

/** What the rules need of a contact. */
struct osy_ac_contact {
        char id[OSY_AC_ID_MAX + 1];
        int64_t bounced_hard; /**< AC's counter ("0" when never) */
        int64_t bounced_soft;
};

/** One list membership of a contact. */
struct osy_ac_membership {
        char list[OSY_AC_ID_MAX + 1];
        int status; /**< OSY_AC_LIST_*, or another AC value (91, ...) */
};

/** One bounce log row of a contact. */
struct osy_ac_bounce_log {
        char id[OSY_AC_ID_MAX + 1];
        char campaign[OSY_AC_ID_MAX + 1]; /**< "" when none */
        char bounce[OSY_AC_ID_MAX + 1];   /**< the bounce (type) object id */
        char code[OSY_AC_ID_MAX + 1];     /**< the bounce code id */
};

/** Counters, for metrics and tests. */
struct osy_ac_client_stats {
        uint64_t calls;            /**< HTTP requests sent */
        uint64_t throttled;        /**< 429/503 answers and limiter waits
                                        that ran out */
        uint64_t tag_cache_hits;   /**< tag names found in the cache */
        uint64_t tag_cache_misses; /**< tag names fetched one by one */
};

/**
 * @brief Create a client.
 * @param cp receives the client (caller destroys it).
 * @returns OSY_OK; OSY_ERR_INVALID (missing option, with the reason);
 *          OSY_ERR_NOMEM.
 */
osy_err_t osy_ac_client_new(osy_ac_client_t **cp,
                            const struct osy_ac_client_opts *opts, char *errstr,
                            size_t errstr_size) OSY_MUSTCHECK;

/** @brief Free the client and its tag cache. NULL-safe. */
void osy_ac_client_destroy(osy_ac_client_t *c);

/**
 * @brief One API call: take a limiter token, send, classify the answer.
 * @param path   after "/api/3", with its query ("/contacts?email=...").
 * @param body   JSON text or NULL.
 * @param json   receives the parsed body of a 2xx answer (caller frees it
 *               with cJSON_Delete()); NULL on error.
 * @returns OSY_OK for 2xx with a JSON body; otherwise the class of
 *          osy_err_from_http() (404 OSY_ERR_NOT_FOUND, 429/503 retryable,
 *          403 OSY_ERR_AUTH, ...), OSY_ERR_THROTTLED when no limiter token
 *          came in time, OSY_ERR_PERMANENT for a 2xx body that is not JSON.
 */
osy_err_t osy_ac_call(osy_ac_client_t *c, osy_http_method_t method,
                      const char *path, const char *body, cJSON **json,
                      char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/**
 * @returns the Retry-After hint of the last throttled answer in ms, or -1
 *          when the last call gave none (for osy_retry_next()).
 */
int64_t osy_ac_client_retry_after_ms(const osy_ac_client_t *c);

/** @brief Copy the counters. */
void osy_ac_client_get_stats(const osy_ac_client_t *c,
                             struct osy_ac_client_stats *out);

/**
 * @brief GET /contacts?email=: the contact with this address.
 * @returns OSY_OK; OSY_ERR_NOT_FOUND when AC has none; errors of
 *          osy_ac_call(); OSY_ERR_PERMANENT for an answer without an id.
 */
osy_err_t osy_ac_find_contact(osy_ac_client_t *c, const char *email,
                              struct osy_ac_contact *out, char *errstr,
                              size_t errstr_size) OSY_MUSTCHECK;

/** @brief GET /contacts/{id}. @returns as osy_ac_find_contact(). */
osy_err_t osy_ac_get_contact(osy_ac_client_t *c, const char *id,
                             struct osy_ac_contact *out, char *errstr,
                             size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief GET /contacts/{id}/contactLists: every membership with its status.
 * @param out receives a malloc()ed array (caller free()s; NULL when empty).
 * @returns OSY_OK; OSY_ERR_NOT_FOUND for an unknown contact; errors of
 *          osy_ac_call().
 */
osy_err_t osy_ac_contact_lists(osy_ac_client_t *c, const char *id,
                               struct osy_ac_membership **out, size_t *n,
                               char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief The names of a contact's tags: GET /contacts/{id}/contactTags
 *        gives tag ids only; names come from the client's id -> name
 *        cache, filled from GET /tags (every page) on first use and by
 *        GET /tags/{id} for an id it has not seen. A tag deleted meanwhile
 *        (404) is left out.
 * @param names receives a malloc()ed array of malloc()ed names (free with
 *              osy_ac_strv_free()).
 */
osy_err_t osy_ac_contact_tag_names(osy_ac_client_t *c, const char *id,
                                   char ***names, size_t *n, char *errstr,
                                   size_t errstr_size) OSY_MUSTCHECK;

/** @brief Free an array from osy_ac_contact_tag_names(). NULL-safe. */
void osy_ac_strv_free(char **v, size_t n);

/**
 * @brief GET /contacts/{id}/bounceLogs.
 * @param out receives a malloc()ed array (caller free()s; NULL when empty).
 */
osy_err_t osy_ac_contact_bounce_logs(osy_ac_client_t *c, const char *id,
                                     struct osy_ac_bounce_log **out, size_t *n,
                                     char *errstr,
                                     size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Percent-encode @p in for a URL query value (RFC 3986 unreserved
 *        characters kept).
 * @returns OSY_OK or OSY_ERR_TOO_LARGE when @p out is too small.
 */
osy_err_t osy_ac_url_escape(const char *in, char *out,
                            size_t out_size) OSY_MUSTCHECK;

/**
 * @brief The options of the account-wide AC limiter, from the config: the
 *        one bucket that every AC call of every worker and replica (rules'
 *        look-ups, ac-writer's writes) draws from, so that together they
 *        keep to AC's 5 requests/s. Filled here once so that no two
 *        workers can disagree on rate, burst or skew.
 * @param prefix the Redis key prefix (not copied: keep it alive).
 */
void osy_ac_rl_opts(const osy_config_t *cfg, const char *prefix,
                    struct osy_rl_opts *out);

#endif /* OPTSYNC_AC_CLIENT_H */
