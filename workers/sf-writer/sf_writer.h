/*
 * sf_writer.h - the sf-writer's parts: SOQL building (escaping, chunked
 * Email IN lookups), the record cache format, the write plan (per-record
 * newest wins, Contacts before Leads, 200 per call), SaveResult
 * classification, the daily quota, and the handler for the writer runtime.
 */
#ifndef OPTSYNC_SF_WRITER_H
#define OPTSYNC_SF_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "optsync/envelope.h"
#include "optsync/err.h"
#include "optsync/http.h"
#include "optsync/metrics.h"
#include "optsync/ratelimit.h"
#include "optsync/redis.h"
#include "optsync/tenants.h"
#include "optsync/writer.h"

/** Records per sObject Collections call (Salesforce's maximum). */
#define SFW_BATCH_MAX 200

/** Buffer for an 18-character id. */
#define SFW_ID_BUFSZ 19

/* ---- a growing text buffer ----------------------------------------------- */

struct sfw_buf {
        char *p; /**< NUL-terminated once anything was added */
        size_t len, cap;
        int oom; /**< an append failed: the content is cut */
};

void sfw_buf_add(struct sfw_buf *b, const char *s, size_t n);
void sfw_buf_adds(struct sfw_buf *b, const char *s);
void sfw_buf_addf(struct sfw_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sfw_buf_free(struct sfw_buf *b);

/* ---- SOQL ---------------------------------------------------------------- */

/**
 * @brief Append @p in escaped for a SOQL string literal (no quotes): '\'
 *        first, then ' and ", and \n \r \t \b \f as escapes.
 * @returns OSY_OK; OSY_ERR_INVALID for any other control character, which
 *          a SOQL literal cannot carry.
 */
osy_err_t sfw_soql_escape(struct sfw_buf *out, const char *in) OSY_MUSTCHECK;

/**
 * @brief Append @p len bytes percent-encoded for a URL query value: every
 *        byte but [A-Za-z0-9-._~] is %XX, so '+' becomes %2B (a literal '+'
 *        would be read as a space) and ' ' becomes %20.
 */
void sfw_url_encode(struct sfw_buf *out, const char *in, size_t len);

typedef enum {
        SFW_CONTACT = 0,
        SFW_LEAD    = 1
} sfw_obj_t;

/** @returns "Contact" or "Lead". */
const char *sfw_obj2str(sfw_obj_t obj);

/**
 * @brief Build the query path of one lookup chunk:
 *        "/services/data/v<ver>/query?q=" + the encoded SOQL
 *        SELECT Id, Email FROM Contact WHERE Email IN ('a','b')
 *        (for Leads "... AND IsConverted = false"), taking emails from the
 *        front of @p emails while the chunk stays within @p max_emails and
 *        the path within @p max_path bytes.
 * @param used receives how many emails the chunk holds (>= 1 on OSY_OK).
 * @returns OSY_OK; OSY_ERR_INVALID (an email cannot be escaped: it is
 *          skipped and counted in *used, with no path when it was alone);
 *          OSY_ERR_TOO_LARGE (the first email alone passes @p max_path);
 *          OSY_ERR_NOMEM.
 */
osy_err_t sfw_lookup_path(struct sfw_buf *out, const char *api_version,
                          sfw_obj_t obj, const char *const *emails, size_t n,
                          size_t max_emails, size_t max_path, size_t *used,
                          char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Build the query path that reads ConvertedContactId of Leads:
 *        SELECT Id, ConvertedContactId FROM Lead WHERE Id IN (...).
 * @returns OSY_OK, OSY_ERR_INVALID (a bad id), OSY_ERR_NOMEM.
 */
osy_err_t sfw_converted_path(struct sfw_buf *out, const char *api_version,
                             const char *const *lead_ids,
                             size_t n) OSY_MUSTCHECK;

/** @returns 1 if @p id is a 15- or 18-character Salesforce id. */
int sfw_id_valid(const char *id);

/* ---- records and their cache form ---------------------------------------- */

/** One Salesforce record of a person. */
struct sfw_rec {
        sfw_obj_t obj;
        char id[SFW_ID_BUFSZ];
};

/** @brief Write "C:<id>,L:<id>" (the Redis cache value). */
void sfw_recs_format(const struct sfw_rec *r, size_t n, struct sfw_buf *out);

/**
 * @brief Parse a cache value (written by sfw_recs_format()).
 * @param out receives a malloc()ed array (NULL for ""), caller frees.
 * @returns OSY_OK, OSY_ERR_INVALID (not our format), OSY_ERR_NOMEM.
 */
osy_err_t sfw_recs_parse(const char *s, struct sfw_rec **out,
                         size_t *n) OSY_MUSTCHECK;

/** One row of a lookup query. */
struct sfw_row {
        sfw_obj_t obj;
        char id[SFW_ID_BUFSZ];
        char email[OSY_EMAIL_BUFSZ];     /**< lower-cased; "" if null */
        char converted_id[SFW_ID_BUFSZ]; /**< ConvertedContactId or "" */
};

/**
 * @brief Parse a query result {"records":[...],"done":..,"nextRecordsUrl":..}
 *        and append its rows to @p rows (grown with realloc).
 * @param obj  the object queried (used when attributes are missing).
 * @param next receives a malloc()ed nextRecordsUrl, or NULL when done.
 * @returns OSY_OK, OSY_ERR_INVALID (not a query result), OSY_ERR_NOMEM.
 */
osy_err_t sfw_parse_query(const char *body, sfw_obj_t obj,
                          struct sfw_row **rows, size_t *nrows, char **next,
                          char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/** @brief sfw_parse_query() on parsed JSON (a composite sub-response). */
osy_err_t sfw_parse_query_json(const cJSON *root, sfw_obj_t obj,
                               struct sfw_row **rows, size_t *nrows,
                               char **next, char *errstr,
                               size_t errstr_size) OSY_MUSTCHECK;

/* ---- the write plan ------------------------------------------------------ */

/** One record a command wants written. */
struct sfw_target {
        struct sfw_rec rec;
        int value;                         /**< HasOptedOutOfEmail wanted */
        const struct osy_version *version; /**< of the command */
        size_t owner;                      /**< caller's index (the item) */
};

/** One record to write: the value of the newest command targeting it. */
struct sfw_write {
        struct sfw_rec rec;
        int value;
        size_t winner; /**< index of the target whose value is written */
};

/**
 * @brief Coalesce targets per record (newest version wins; a tie keeps
 *        the first), then order the writes Contacts first, then Leads, by
 *        id, so a call of 200 holds at most two type chunks.
 * @param writes  receives a malloc()ed array (caller frees).
 * @param of_target receives, for each target, the index of its write
 *                (array of @p n, caller's).
 * @returns OSY_OK or OSY_ERR_NOMEM.
 */
osy_err_t sfw_plan(const struct sfw_target *t, size_t n,
                   struct sfw_write **writes, size_t *nwrites,
                   size_t *of_target) OSY_MUSTCHECK;

/**
 * @brief The PATCH /composite/sobjects body for @p n writes:
 *        {"allOrNone":false,"records":[{"attributes":{"type":"Contact"},
 *        "id":"003..","HasOptedOutOfEmail":true},...]}.
 */
void sfw_collection_body(const struct sfw_write *w, size_t n,
                         struct sfw_buf *out);

/** What became of one record of a collections call. */
typedef enum {
        SFW_RES_OK = 0,    /**< written */
        SFW_RES_RETRY,     /**< passing condition (UNABLE_TO_LOCK_ROW, ...) */
        SFW_RES_PERMANENT, /**< refused for good: the DLQ */
        SFW_RES_CONVERTED, /**< converted Lead: write its Contact instead */
        SFW_RES_GONE       /**< deleted / not found: resolve again */
} sfw_res_t;

struct sfw_result {
        sfw_res_t res;
        osy_err_t err;     /**< class, for retries */
        char code[64];     /**< statusCode of the first error, "" if none */
        char message[256]; /**< its message */
};

/** @returns the class of a per-record statusCode. */
sfw_res_t sfw_classify_code(const char *code);

/**
 * @brief Read an array of SaveResults, matched to the request BY POSITION
 *        (failed items may omit their id).
 * @returns OSY_OK; OSY_ERR_INVALID when the body is not an array of
 *          exactly @p n results (the call's outcome is then unknown).
 */
osy_err_t sfw_parse_save_results(const char *body, size_t n,
                                 struct sfw_result *out, char *errstr,
                                 size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief First errorCode and message of a REST error body
 *        [{"message":..,"errorCode":..}] (or "" when it is not one, e.g.
 *        an HTML page).
 */
void sfw_rest_error(const char *body, char *code, size_t code_size,
                    char *message, size_t message_size);

/* ---- quota --------------------------------------------------------------- */

/** The largest API count the quota parsers accept: 2^53, exact as a JSON
 *  number, and small enough that max * reserve percent cannot overflow.
 *  An org's daily allowance is in the millions. */
#define SFW_QUOTA_MAX INT64_C(9007199254740992)

/**
 * @brief Parse "api-usage=USED/MAX" out of a Sforce-Limit-Info value
 *        (other parts such as "; per-app-api-usage=..." are ignored).
 *        USED may exceed MAX (SF allows a brief overage).
 * @returns 0 and the numbers, or -1 if absent or malformed: not digits,
 *          MAX 0, or either over SFW_QUOTA_MAX.
 */
int sfw_limit_info_parse(const char *value, int64_t *used, int64_t *max);

/**
 * @brief Parse GET /limits: DailyApiRequests Max and Remaining (whole
 *        numbers, as JSON numbers or strings).
 * @returns 0, or -1 if either is missing or malformed (a fraction, a sign,
 *          over SFW_QUOTA_MAX), Max is 0, or Remaining exceeds Max.
 */
int sfw_limits_parse(const char *body, int64_t *max, int64_t *remaining);

/**
 * @returns 1 when a 403 REQUEST_LIMIT_EXCEEDED means the daily allowance
 *          (TotalRequests), not the concurrent-request cap (which passes
 *          in seconds and is retried like a 429).
 */
int sfw_is_daily_limit(int status, const char *body);

/** The org's daily allowance as optsync sees it. */
struct sfw_quota {
        int reserve_pct;  /**< share left for other integrations */
        int64_t probe_ms; /**< wait between checks while paused */
        int have;         /**< 1 once a usage was seen */
        int64_t used, max;
        int paused;           /**< 1: no calls but the probe */
        int64_t paused_until; /**< the next probe */
};

/** @brief Start with no knowledge (calls allowed). */
void sfw_quota_init(struct sfw_quota *q, int reserve_pct, int64_t probe_ms);

/** @returns the calls kept for others: max * reserve_pct / 100. */
int64_t sfw_quota_reserve(const struct sfw_quota *q);

/**
 * @brief Record a usage seen at @p now_ms (a Sforce-Limit-Info header or
 *        /limits). At or below the reserve the quota pauses until a probe
 *        @c probe_ms later; above it, a paused quota resumes.
 */
void sfw_quota_observe(struct sfw_quota *q, int64_t used, int64_t max,
                       int64_t now_ms);

/** @brief Salesforce refused a call for the daily limit: pause. */
void sfw_quota_exhausted(struct sfw_quota *q, int64_t now_ms);

/**
 * @returns 1 when calls may be made at @p now_ms; 0 when paused, with
 *          *until the time of the next probe (when the caller may make one
 *          check call, GET /limits).
 */
int sfw_quota_may_call(const struct sfw_quota *q, int64_t now_ms,
                       int64_t *until);

/* ---- the handler --------------------------------------------------------- */

/** What the handler needs; pointers are borrowed and must outlive it. */
struct sfw_opts {
        const osy_tenants_t *tenants;
        osy_redis_t *redis;       /**< record cache */
        const char *redis_prefix; /**< "optsync" */
        int64_t cache_ttl_ms;     /**< record cache lifetime */
        osy_rl_t *rl;             /**< per-tenant SF call rate ("sf") */
        int64_t rl_max_wait_ms;   /**< longest limiter sleep per call */
        struct osy_http_opts http;
        int reserve_pct;
        int64_t probe_ms;
        size_t lookup_chunk;    /**< emails per SOQL query */
        size_t max_path;        /**< bytes of one query path (URL limit) */
        int64_t auth_pause_ms;  /**< wait after the token endpoint refused */
        osy_metrics_t *metrics; /**< may be NULL */
};

typedef struct sfw_s sfw_t;

/** @brief Make the handler. @returns OSY_OK, OSY_ERR_INVALID, NOMEM. */
osy_err_t sfw_new(sfw_t **sp, const struct sfw_opts *opts, char *errstr,
                  size_t errstr_size) OSY_MUSTCHECK;

/** @brief Tell the handler its runtime (for audit records). */
void sfw_set_writer(sfw_t *s, osy_writer_t *w);

/** @returns the handler callbacks for osy_writer_opts.handler. */
struct osy_writer_handler sfw_handler(sfw_t *s);

/** Counters for tests and the benchmark. */
struct sfw_stats {
        uint64_t calls;       /**< every REST call made (queries too) */
        uint64_t write_calls; /**< PATCH /composite/sobjects */
        uint64_t query_calls; /**< GET query, POST composite of queries */
        uint64_t probe_calls; /**< GET /limits */
        uint64_t records;     /**< records sent in write calls */
        uint64_t cache_hits, cache_misses;
        uint64_t followed; /**< converted leads followed */
};

void sfw_get_stats(const sfw_t *s, struct sfw_stats *out);

/** @brief Free the handler. NULL-safe. */
void sfw_destroy(sfw_t *s);

#endif /* OPTSYNC_SF_WRITER_H */
