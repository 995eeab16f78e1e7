/*
 * sf_auth.h - Salesforce OAuth 2.0 for one tenant: client credentials,
 * JWT bearer (RS256, key from a PEM file) or refresh token. One token per
 * tenant is shared by the whole process; a 401 INVALID_SESSION_ID makes
 * osy_sf_call() fetch a new one once and retry.
 */
#ifndef OPTSYNC_SF_AUTH_H
#define OPTSYNC_SF_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "optsync/err.h"
#include "optsync/http.h"
#include "optsync/tenants.h"

/** The value optsync sends in Sforce-Call-Options, so that the CDC echoes
 *  of its own writes can be recognised (changeOrigin). */
#define OSY_SF_CALL_CLIENT "optsync"

/** Default REST API version when the tenant does not name one. */
#define OSY_SF_DEFAULT_API_VERSION "59.0"

typedef struct osy_sf_auth_s osy_sf_auth_t;

/** A copy of the current token. */
struct osy_sf_token {
        char access_token[1024];
        char instance_url[512];
        uint64_t generation; /**< bumps on every new token */
};

/**
 * @brief Prepare OAuth for @p tenant (its "sf" block).
 *
 * Checks that the flow has what it needs (client_credentials: client_id
 * and client_secret; jwt: client_id, username and a readable RSA
 * private_key_file, loaded now; refresh_token: client_id and
 * refresh_token). No network call is made here.
 * @param http options of the client used for token calls (NULL: defaults).
 * @param ap   receives the handle (caller owns; osy_sf_auth_destroy).
 */
osy_err_t osy_sf_auth_new(osy_sf_auth_t **ap, const struct osy_tenant *tenant,
                          const struct osy_http_opts *http, char *errstr,
                          size_t errstr_size) OSY_MUSTCHECK;

/** @brief Free the handle, wiping tokens. NULL-safe. */
void osy_sf_auth_destroy(osy_sf_auth_t *a);

/**
 * @brief Copy the current token into @p out, fetching one first when there
 *        is none (or it was invalidated). Thread-safe: concurrent callers
 *        wait for one fetch.
 * @returns OSY_OK; OSY_ERR_AUTH when the token endpoint refused the
 *          credentials (400 invalid_grant / invalid_client: fix the
 *          config); OSY_ERR_TRANSIENT on timeouts and 5xx.
 */
osy_err_t osy_sf_auth_token(osy_sf_auth_t *a, int64_t now_ms,
                            struct osy_sf_token *out, char *errstr,
                            size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Forget the token of @p generation (after a 401 with it). A token
 *        already replaced by another thread is left alone, so N threads
 *        seeing the same 401 cause one fetch.
 */
void osy_sf_auth_invalidate(osy_sf_auth_t *a, uint64_t generation);

/** @returns the number of successful token fetches (metrics, tests). */
uint64_t osy_sf_auth_fetches(const osy_sf_auth_t *a);

/** @returns the REST API version in use ("59.0"). */
const char *osy_sf_auth_api_version(const osy_sf_auth_t *a);

/**
 * @brief One authenticated REST call: @p path is relative to the
 *        instance URL ("/services/data/v59.0/limits"). Adds the bearer
 *        token, JSON content type and "Sforce-Call-Options:
 *        client=optsync". On 401 INVALID_SESSION_ID it fetches a new token
 *        once and repeats the call.
 * @returns as osy_http_do(): OSY_OK when an answer arrived (classify
 *          resp->status with osy_err_from_http), or the token fetch's error.
 */
osy_err_t osy_sf_call(osy_sf_auth_t *a, osy_http_client_t *client,
                      osy_http_method_t method, const char *path,
                      const char *body, size_t body_len, int64_t now_ms,
                      struct osy_http_response *resp, char *errstr,
                      size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Build a signed JWT bearer assertion (RS256): header
 *        {"alg":"RS256"}, claims iss, sub, aud and exp = now + 180 s.
 *        Exposed for tests.
 * @param out receives a malloc()ed string (caller frees).
 */
osy_err_t osy_sf_jwt_assertion(const char *pem_path, const char *iss,
                               const char *sub, const char *aud, int64_t now_s,
                               char **out, char *errstr,
                               size_t errstr_size) OSY_MUSTCHECK;

#endif /* OPTSYNC_SF_AUTH_H */
