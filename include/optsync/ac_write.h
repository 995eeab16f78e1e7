/*
 * ac_write.h - the ActiveCampaign writes of the ac-writer: unsubscribe a
 * contact from one list (POST /contactLists, status 2), unsubscribe many at
 * once with bulk import (asynchronous: confirmed with GET /import/info).
 * Every call takes a token from the shared per-account limiter first.
 */
#ifndef OPTSYNC_AC_WRITE_H
#define OPTSYNC_AC_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "optsync/err.h"
#include "optsync/http.h"
#include "optsync/ratelimit.h"

/** Contacts per bulk import request (AC's maximum). */
#define OSY_AC_BULK_MAX 250

/** Bulk import payloads must stay below this many bytes (AC: 400,000). */
#define OSY_AC_BULK_MAX_BYTES 399999

/** Limiter API name of multi-contact bulk imports (per minute). */
#define OSY_AC_BULK_RL_API "ac-import"

/** Longest batch id kept (AC sends a UUID). */
#define OSY_AC_BATCH_ID_MAX 64

typedef struct osy_ac_write_s osy_ac_write_t;

/** Options; strings are copied. */
struct osy_ac_write_opts {
        const char *base_url;  /**< without "/api/3"; required */
        const char *api_token; /**< the Api-Token; required, never logged */
        const char *tenant;    /**< the limiter bucket; required */
        /** The shared 5 req/s limiter (bucket (tenant, "ac")); not owned;
         *  NULL: no limit (tests only). */
        osy_rl_t *limiter;
        /** Bulk import requests per minute (bucket (tenant, "ac-import"));
         *  not owned; may be NULL. */
        osy_rl_t *bulk_limiter;
        /** Longest wait for a limiter token; 0 means 30 s. */
        int64_t limiter_max_wait_ms;
        const struct osy_http_opts *http; /**< NULL: defaults */
};

/** What came back from one call, for retries, audits and metrics. */
struct osy_ac_answer {
        int status;             /**< HTTP status; 0 when none arrived */
        int64_t retry_after_ms; /**< Retry-After hint, -1 if none */
        int64_t waited_ms;      /**< time spent waiting for the limiter */
        int limited;            /**< 1: no limiter token came in time */
};

/**
 * @brief Create a writer client for one account.
 * @returns OSY_OK, OSY_ERR_INVALID (a missing option), OSY_ERR_NOMEM.
 */
osy_err_t osy_ac_write_new(osy_ac_write_t **wp,
                           const struct osy_ac_write_opts *opts, char *errstr,
                           size_t errstr_size) OSY_MUSTCHECK;

/** @brief Free the client. NULL-safe. */
void osy_ac_write_destroy(osy_ac_write_t *w);

/**
 * @brief POST /contactLists {"contactList":{"list","contact","status":2}}.
 * @returns OSY_OK (2xx); OSY_ERR_NOT_FOUND (the contact or the list does
 *          not exist; @p list_missing tells which); the class of
 *          osy_err_from_http() otherwise; OSY_ERR_THROTTLED with
 *          ans->limited when the limiter gave no token in time.
 * @param list_missing receives 1 when the 404 names the list.
 */
osy_err_t osy_ac_unsubscribe_list(osy_ac_write_t *w, const char *contact_id,
                                  const char *list_id,
                                  struct osy_ac_answer *ans, int *list_missing,
                                  char *errstr,
                                  size_t errstr_size) OSY_MUSTCHECK;

/** One contact of a bulk unsubscribe. */
struct osy_ac_bulk_contact {
        const char *email;
        const char *const *lists; /**< list ids to unsubscribe from */
        size_t n_lists;
};

/**
 * @brief Build the bulk import body:
 *        {"contacts":[{"email":..,"unsubscribe":[{"listid":N},..]}],
 *         "exclude_automations":true}. List ids that are decimal numbers
 *        are sent as numbers, as AC's examples do.
 * @param json receives a malloc()ed string (caller frees).
 * @returns OSY_OK; OSY_ERR_INVALID (0 or more than OSY_AC_BULK_MAX
 *          contacts); OSY_ERR_TOO_LARGE (over OSY_AC_BULK_MAX_BYTES);
 *          OSY_ERR_NOMEM.
 */
osy_err_t osy_ac_bulk_body(const struct osy_ac_bulk_contact *c, size_t n,
                           char **json, size_t *len) OSY_MUSTCHECK;

/**
 * @brief Read a bulk import answer: 200 {"Success":1,"batchId":..}.
 *        A 400 "Rate limit exceeded." is OSY_ERR_THROTTLED; a 400 with
 *        object failureReasons is OSY_ERR_PERMANENT (the payload was
 *        refused, nothing queued).
 * @returns OSY_OK with @p batch_id; else the class, detail in @p errstr.
 */
osy_err_t osy_ac_bulk_parse(int status, const char *body, char *batch_id,
                            size_t batch_id_size, char *errstr,
                            size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief POST /import/bulk_import with the body of osy_ac_bulk_body().
 *        Takes a bulk limiter token (multi-contact requests) and an AC
 *        token.
 * @returns as osy_ac_bulk_parse(), or the call's error.
 */
osy_err_t osy_ac_bulk_unsubscribe(osy_ac_write_t *w,
                                  const struct osy_ac_bulk_contact *c, size_t n,
                                  char *batch_id, size_t batch_id_size,
                                  struct osy_ac_answer *ans, char *errstr,
                                  size_t errstr_size) OSY_MUSTCHECK;

/** Progress of one import. */
struct osy_ac_import_status {
        int completed;  /**< 1: applied; success/failure are final */
        char **failure; /**< emails AC refused (malloc()ed), lower-cased */
        size_t n_failure;
        size_t n_success; /**< contacts imported */
};

/** @brief Free what @p s holds and zero it. */
void osy_ac_import_status_clear(struct osy_ac_import_status *s);

/**
 * @brief Read GET /import/info: {"status":"completed","success":[..],
 *        "failure":[..]}; "status":false (just queued) or any other value
 *        means not completed yet.
 * @returns OSY_OK or OSY_ERR_INVALID.
 */
osy_err_t osy_ac_import_info_parse(const char *body,
                                   struct osy_ac_import_status *out,
                                   char *errstr,
                                   size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief GET /import/info?batchId=.
 * @returns OSY_OK with @p out filled; OSY_ERR_NOT_FOUND for an unknown
 *          batch; the class of any other failure.
 */
osy_err_t osy_ac_import_info(osy_ac_write_t *w, const char *batch_id,
                             struct osy_ac_import_status *out,
                             struct osy_ac_answer *ans, char *errstr,
                             size_t errstr_size) OSY_MUSTCHECK;

#endif /* OPTSYNC_AC_WRITE_H */
