/*
 * tenants.h - per-tenant settings and credentials (one AC account paired
 * with one SF org per tenant), read from the JSON file named by
 * OPTSYNC_TENANTS_FILE, typically a mounted Kubernetes Secret.
 */
#ifndef OPTSYNC_TENANTS_H
#define OPTSYNC_TENANTS_H

#include <stddef.h>

#include "optsync/err.h"

/** How sf-ingest and sf-writer obtain a Salesforce access token. */
typedef enum {
        OSY_SF_AUTH_NONE = 0,           /**< no "sf" block */
        OSY_SF_AUTH_CLIENT_CREDENTIALS, /**< "client_credentials" */
        OSY_SF_AUTH_JWT,                /**< "jwt": RS256 JWT bearer */
        OSY_SF_AUTH_REFRESH_TOKEN       /**< "refresh_token" */
} osy_sf_grant_t;

/** ActiveCampaign account of a tenant. Strings NULL when absent. */
struct osy_tenant_ac {
        char *base_url;      /**< "https://acct.api-us1.com" (no /api/3) */
        char *api_token;     /**< secret: the Api-Token header */
        char *webhook_token; /**< secret: ac-ingest's per-tenant route token */
};

/** Salesforce org of a tenant. Strings NULL when absent. */
struct osy_tenant_sf {
        char *login_url;   /**< token endpoint base,
                              "https://login.salesforce.com" */
        char *api_version; /**< "59.0" */
        osy_sf_grant_t auth;
        char *client_id;
        char *client_secret;    /**< secret */
        char *username;         /**< JWT subject */
        char *private_key_file; /**< JWT signing key (PEM) path */
        char *refresh_token;    /**< secret */
};

/** One tenant. */
struct osy_tenant {
        char *id; /**< the tenant name used in keys and messages */
        struct osy_tenant_ac ac;
        struct osy_tenant_sf sf;
        int has_ac, has_sf;    /**< 1 when the block was given */
        int sync_all_contacts; /**< widen scope beyond the five tags */
};

typedef struct osy_tenants_s osy_tenants_t;

/**
 * @brief Parse a tenants document:
 * {"tenants":[{"id":"acme","ac":{...},"sf":{...},"sync_all_contacts":false}]}
 *
 * Strict: unknown keys, duplicate ids, bad ids (osy_tenant_check) and
 * URLs that are not http(s) are errors naming the JSON path. Secret values
 * are registered with osy_log_add_secret() and never appear in errors.
 * @param tp receives the set (caller owns; osy_tenants_destroy).
 */
osy_err_t osy_tenants_parse(osy_tenants_t **tp, const char *json, size_t len,
                            char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/** @brief osy_tenants_parse() on the contents of @p path (max 1 MiB). */
osy_err_t osy_tenants_load_file(osy_tenants_t **tp, const char *path,
                                char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/** @returns the number of tenants. */
size_t osy_tenants_count(const osy_tenants_t *ts);

/** @returns tenant @p i (0-based), or NULL. Owned by @p ts. */
const struct osy_tenant *osy_tenants_at(const osy_tenants_t *ts, size_t i);

/** @returns the tenant named @p id, or NULL. Owned by @p ts. */
const struct osy_tenant *osy_tenants_find(const osy_tenants_t *ts,
                                          const char *id);

/** @brief Free the set, wiping secrets. NULL-safe. */
void osy_tenants_destroy(osy_tenants_t *ts);

#endif /* OPTSYNC_TENANTS_H */
