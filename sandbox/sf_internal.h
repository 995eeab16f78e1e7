/*
 * sf_internal.h - shared by the Salesforce simulator's files (sf*.c and
 * cometd.c): the record model, the org state, the SOQL subset, the JWT
 * check and small helpers. Not part of the sandbox interface (sandbox.h).
 */
#ifndef OPTSYNC_SANDBOX_SF_INTERNAL_H
#define OPTSYNC_SANDBOX_SF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "sandbox.h"

/* ---- allocation ---------------------------------------------------------
 * The simulator is a test tool: running out of memory aborts it (tests
 * then fail loudly) instead of threading NOMEM through every handler. */

void *sf_xcalloc(size_t n, size_t size);
void *sf_xrealloc(void *p, size_t size);
char *sf_xstrdup(const char *s);
char *sf_xstrndup(const char *s, size_t n);

/* ---- string-keyed hash map (keys copied, values owned by the caller) --- */

struct sf_map_ent {
        char *key;
        void *val;
        struct sf_map_ent *next;
};

struct sf_map {
        struct sf_map_ent **b;
        size_t nb;
        size_t cnt;
};

struct sf_map_iter {
        size_t b;
        struct sf_map_ent *e;
};

void sf_map_init(struct sf_map *m);
void *sf_map_get(const struct sf_map *m, const char *key);
/** @brief Insert or replace; @returns the replaced value or NULL. */
void *sf_map_put(struct sf_map *m, const char *key, void *val);
/** @returns the removed value, or NULL. */
void *sf_map_del(struct sf_map *m, const char *key);
/** @brief Remove everything, calling @p free_val (may be NULL) on values. */
void sf_map_clear(struct sf_map *m, void (*free_val)(void *));
/** @returns 1 and the next entry, 0 at the end (iter zeroed to start).
 *  The map must not change during the iteration. */
int sf_map_next(const struct sf_map *m, struct sf_map_iter *it,
                const char **key, void **val);

/* ---- entities, fields, records ------------------------------------------ */

enum sf_entity {
        SF_CONTACT    = 0,
        SF_LEAD       = 1,
        SF_ENTITY_CNT = 2
};

enum sf_ftype {
        SF_T_ID,
        SF_T_STRING,
        SF_T_EMAIL,
        SF_T_BOOL,
        SF_T_DATETIME,
        SF_T_DATE
};

enum sf_field {
        SF_F_ID = 0,
        SF_F_ISDELETED,
        SF_F_FIRSTNAME,
        SF_F_LASTNAME,
        SF_F_EMAIL,
        SF_F_OPTOUT,
        SF_F_COMPANY,
        SF_F_ISCONVERTED,
        SF_F_CONVCONTACT,
        SF_F_CONVACCOUNT,
        SF_F_CONVDATE,
        SF_F_CREATED,
        SF_F_LASTMOD,
        SF_F_SYSMOD,
        SF_F_CNT
};

#define SF_ENT_BIT(e) (1u << (e))
#define SF_ENT_BOTH (SF_ENT_BIT(SF_CONTACT) | SF_ENT_BIT(SF_LEAD))

struct sf_field_def {
        const char *name; /**< canonical API name */
        enum sf_ftype type;
        unsigned entities; /**< SF_ENT_BIT mask */
        int writable;      /**< through the API (PATCH, collections) */
};

extern const struct sf_field_def sf_fields[SF_F_CNT];

/** @returns the field index for @p name (case-insensitive) on @p e, or
 *  -1 when the entity has no such column. */
int sf_field_lookup(enum sf_entity e, const char *name, size_t len);
/** @returns the entity for "Contact"/"Lead" (case-insensitive), or -1. */
int sf_entity_lookup(const char *name, size_t len);
const char *sf_entity_name(enum sf_entity e);
/** @returns the 3-char key prefix: "003" or "00Q". */
const char *sf_entity_prefix(enum sf_entity e);

#define SF_ID_LEN 18

/** One Contact or Lead. Strings are malloc()ed or NULL (= null). */
struct sf_record {
        enum sf_entity entity;
        char id[SF_ID_LEN + 1];
        uint64_t seq; /**< creation order, the default query order */
        char *first_name, *last_name, *email, *company;
        int opted_out;
        int is_converted;
        int is_deleted;
        char conv_contact[SF_ID_LEN + 1]; /**< "" = null */
        char conv_account[SF_ID_LEN + 1];
        int64_t conv_date_ms; /**< midnight UTC, -1 = null */
        int64_t created_ms, last_modified_ms, system_modstamp_ms;
};

/** A typed field value; strings borrowed from the record or the query. */
struct sf_value {
        enum sf_ftype type;
        int is_null;
        const char *s;
        int b;
        int64_t t; /**< ms since the epoch (datetime, date) */
};

/** @brief Read field @p f of @p r (null if the entity lacks it). */
void sf_record_get(const struct sf_record *r, enum sf_field f,
                   struct sf_value *v);
/** @returns the REST JSON form of @p v (string, bool, null). */
cJSON *sf_value_json(const struct sf_value *v);
/** @brief Free a record's strings and the record. NULL-safe. */
void sf_record_free(struct sf_record *r);

/* ---- ids ------------------------------------------------------------------
 */

/** @brief Build an 18-char id: @p prefix (3 chars) + "SB" + zero-padded
 *  @p n, then the case-checksum suffix. Deterministic. */
void sf_id_make(const char *prefix, uint64_t n, char out[SF_ID_LEN + 1]);
/** @brief Normalise a 15- or 18-char id to 18 chars (checksum checked).
 *  @returns 0, or -1 for a malformed id. */
int sf_id_normalize(const char *in, char out[SF_ID_LEN + 1]);

/* ---- time -----------------------------------------------------------------
 */

#define SF_TIME_BUFSZ 32

/** @brief "2024-01-02T03:04:05.000+0000", the REST dateTime form. */
void sf_time_format(int64_t ms, char *buf, size_t size);
/** @brief "2024-01-02", the REST date form. */
void sf_date_format(int64_t ms, char *buf, size_t size);
/** @brief SOQL dateTime literal: YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm|-hh:mm).
 *  @returns 0 and *ms, or -1. */
int sf_datetime_parse(const char *s, size_t len, int64_t *ms);
/** @brief SOQL date literal YYYY-MM-DD. @returns 0 and *ms, or -1. */
int sf_date_parse(const char *s, size_t len, int64_t *ms);

/* ---- SOQL subset ---------------------------------------------------------
 * SELECT f[, f...] FROM Contact|Lead
 *   [WHERE cond {AND|OR cond}, NOT, parentheses]
 *   [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST][, ...]] [LIMIT n]
 * cond: f (= | != | <> | < | <= | > | >=) value | f [NOT] IN (v, ...) |
 *       f LIKE 'pattern'; value: 'string' | true | false | null |
 *       dateTime | date | integer. */

#define SF_SOQL_MAX_ORDER 4

struct sf_soql_expr;

struct sf_soql {
        enum sf_entity entity;
        int *fields; /**< enum sf_field, in SELECT order */
        size_t field_cnt;
        struct sf_soql_expr *where; /**< NULL: every row */
        struct {
                int field;
                int desc;
                int nulls_last;
        } order[SF_SOQL_MAX_ORDER];
        size_t order_cnt;
        long limit; /**< -1: none */
};

/** A parse failure in Salesforce's terms. */
struct sf_soql_error {
        char code[40];     /**< MALFORMED_QUERY, INVALID_FIELD, ... */
        char message[768]; /**< the REST "message" text */
};

/**
 * @brief Parse @p q.
 * @returns the query (free with sf_soql_free()), or NULL with @p err set.
 */
struct sf_soql *sf_soql_parse(const char *q, struct sf_soql_error *err);
void sf_soql_free(struct sf_soql *s);
/** @returns 1 if @p r satisfies the WHERE clause. */
int sf_soql_match(const struct sf_soql *s, const struct sf_record *r);
/** @returns <0, 0, >0 by the ORDER BY clause (0: equal keys). */
int sf_soql_cmp(const struct sf_soql *s, const struct sf_record *a,
                const struct sf_record *b);
/**
 * @brief Index hint: if the WHERE clause is "F = v" or "F IN (...)" on Id
 *        or Email, possibly ANDed with more, every match must have F in
 *        the returned values.
 * @returns the field (SF_F_ID or SF_F_EMAIL) and sets *vals and *cnt
 *          (borrowed from @p s), or -1 when there is no such conjunct.
 */
int sf_soql_hint(const struct sf_soql *s, const struct sf_value **vals,
                 size_t *cnt);
/**
 * @brief Decode a SOQL string literal body (between the quotes).
 * @param like 1 inside LIKE: \% and \_ are allowed and stay escaped.
 * @returns a malloc()ed string, or NULL with the offending sequence in
 *          @p bad (e.g. "\\x").
 */
char *sf_soql_unescape(const char *in, size_t len, int like, char *bad,
                       size_t badsz);
/** @returns 1 if @p s matches the LIKE @p pattern (case-insensitive). */
int sf_soql_like(const char *s, const char *pattern);

/* ---- JWT bearer assertions --------------------------------------------- */

enum sf_jwt_result {
        SF_JWT_OK = 0,
        SF_JWT_MALFORMED,
        SF_JWT_BAD_ALG,
        SF_JWT_BAD_SIGNATURE,
        SF_JWT_BAD_ISS,
        SF_JWT_BAD_SUB,
        SF_JWT_BAD_AUD,
        SF_JWT_EXPIRED,
        SF_JWT_EXP_TOO_FAR
};

struct sf_jwt_expect {
        const char *iss;        /**< the connected app's client_id */
        const char *sub;        /**< the pre-authorised username */
        const char *const *aud; /**< accepted audiences */
        size_t aud_cnt;
        int64_t now_s;       /**< current time, seconds */
        int64_t max_ahead_s; /**< exp may be at most this far ahead */
};

/** @returns the PEM public key (SubjectPublicKeyInfo or PKCS#1), or NULL. */
EVP_PKEY *sf_jwt_load_pubkey(const char *pem, size_t len);
/** @brief Verify an RS256 assertion's signature and claims. */
enum sf_jwt_result sf_jwt_verify(const char *jwt, EVP_PKEY *key,
                                 const struct sf_jwt_expect *e);
/** @brief The OAuth error and description Salesforce answers for @p r. */
void sf_jwt_oauth_error(enum sf_jwt_result r, const char **error,
                        const char **description);
/** @brief base64url without padding; @returns malloc()ed, *outlen set. */
unsigned char *sf_b64url_decode(const char *in, size_t len, size_t *outlen);
char *sf_b64url_encode(const unsigned char *in, size_t len);

/* ---- the simulated orgs (sf.c) ------------------------------------------ */

struct sf_reclist {
        struct sf_record **v;
        size_t n, cap;
};

struct sf_token {
        char *value;
        int64_t last_used_ms;
        struct sf_token *prev, *next; /* issue order, oldest first */
};

struct sf_cursor {
        char locator[SF_ID_LEN + 1];
        char ver[16];
        enum sf_entity entity;
        int *fields;
        size_t field_cnt;
        char (*ids)[SF_ID_LEN + 1];
        size_t n;
        size_t batch;
        int64_t created_ms;
};

/** One org (tenant). Everything is guarded by the sandbox lock. */
struct sf_org {
        char *tenant;
        char org_id[SF_ID_LEN + 1];
        char user_id[SF_ID_LEN + 1];    /**< the integration user */
        char ui_user_id[SF_ID_LEN + 1]; /**< the human editing in the UI */
        char *client_id, *client_secret, *username;
        struct sf_map refresh_tokens; /* value: (void *)1 */
        int rotate_refresh;
        EVP_PKEY *jwt_key;
        char *jwt_username;
        char **jwt_aud;
        size_t jwt_aud_cnt;
        struct sf_map tokens; /* access token -> struct sf_token */
        struct sf_token *tok_head, *tok_tail;
        uint64_t token_seq;
        int64_t session_timeout_ms;
        int64_t api_used, api_max;
        long concurrent_fail; /* next N REST calls: ConcurrentRequests */
        long query_batch_size;
        int cometd_max_clients;
        struct sf_map by_id;    /* id -> struct sf_record */
        struct sf_map by_email; /* lower-cased email -> struct sf_reclist */
        struct sf_reclist all[SF_ENTITY_CNT];
        uint64_t id_seq, rec_seq, account_seq;
        struct sf_map cursors; /* locator -> struct sf_cursor */
        uint64_t cursor_seq;
        struct sf_map lockfail; /* id -> long * (remaining failures) */
};

struct sbx_sf {
        sbx_t *sbx;
        struct sf_map orgs; /* tenant -> struct sf_org */
        uint64_t org_seq;   /* numbers org and user ids */
};

/** A REST error in Salesforce's shape. */
struct sf_err {
        int status;
        char code[48];
        char message[512];
        char field[40]; /**< "" or the field the error is about */
};

void sf_err_set(struct sf_err *e, int status, const char *code,
                const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/** @returns {"message","errorCode","fields"} for REST error arrays. */
cJSON *sf_err_json(const struct sf_err *e, const char *code_key);
/** @brief Answer [{"message":..,"errorCode":..,"fields":[]}] . */
void sf_resp_err(struct sbx_resp *resp, const struct sf_err *e);

/** @returns the org for @p tenant, created with defaults if absent
 *  (lock held), or NULL for an unusable tenant name. */
struct sf_org *sf_org_get(sbx_t *sbx, const char *tenant);
/** @returns the live or deleted record with id @p id (15/18), or NULL. */
struct sf_record *sf_org_find(struct sf_org *org, const char *id);
/** @returns an integer option (--set key=value), or @p def. */
int64_t sf_opt_int(sbx_t *sbx, const char *key, int64_t def);

/** Field assignments parsed from a JSON object. */
struct sf_change {
        int set[SF_F_CNT];
        char *str[SF_F_CNT]; /**< new strings (NULL = null), owned */
        int b[SF_F_CNT];
        int64_t t[SF_F_CNT]; /**< dates and dateTimes (-1 = null) */
};

/**
 * @brief Validate a JSON object of field values for @p e.
 * @param ui 1 for simulator controls (read-only fields allowed).
 * @returns 0, or -1 with @p err (INVALID_FIELD, JSON_PARSER_ERROR, ...).
 */
int sf_change_parse(enum sf_entity e, const cJSON *obj, int ui,
                    struct sf_change *ch, struct sf_err *err);
void sf_change_free(struct sf_change *ch);
/** @brief Per-record checks before a write (deleted, converted lead,
 *  email format and, for API writes (@p api 1), the injected
 *  UNABLE_TO_LOCK_ROW failures, which this consumes). @returns 0 or -1. */
int sf_change_check(struct sf_org *org, const struct sf_record *r,
                    const struct sf_change *ch, int api, struct sf_err *err);

/** What one write did, for the change event. */
struct sf_delta {
        cJSON *changed; /**< array of field names */
        cJSON *body;    /**< changed values + LastModifiedDate */
};

/**
 * @brief Apply @p ch to @p r: update the email index, bump
 *        LastModifiedDate and SystemModstamp, fill @p d (caller publishes
 *        and frees it).
 */
void sf_change_apply(sbx_t *sbx, struct sf_org *org, struct sf_record *r,
                     const struct sf_change *ch, struct sf_delta *d);
/** @brief Publish @p d (consumed) as an UPDATE of @p ids. */
void sf_delta_publish(sbx_t *sbx, struct sf_org *org, enum sf_entity e,
                      const char *const *ids, size_t cnt, struct sf_delta *d,
                      const char *origin);
/**
 * @brief Create a record from @p ch (already validated) and publish its
 *        CREATE event with @p origin.
 */
struct sf_record *sf_record_create(sbx_t *sbx, struct sf_org *org,
                                   enum sf_entity e, const struct sf_change *ch,
                                   const char *origin);
/** @returns the CDC body (all non-empty fields) of a CREATE. */
cJSON *sf_record_event_body(const struct sf_record *r);
/** @returns a record as REST JSON with attributes; @p fields NULL: all. */
cJSON *sf_record_json(const struct sf_record *r, const char *ver,
                      const int *fields, size_t field_cnt);
/** @brief Set or clear a record's email, keeping the index right. */
void sf_record_set_email(struct sf_org *org, struct sf_record *r,
                         const char *email);
/** @brief Convert lead @p lead into @p contact (NULL: a new contact).
 *  @returns the contact, or NULL with @p err. */
struct sf_record *sf_lead_convert(sbx_t *sbx, struct sf_org *org,
                                  struct sf_record *lead,
                                  struct sf_record *contact,
                                  struct sf_err *err);
/** @brief Issue a new access token (an opaque session id "00D...!AQ...").
 *  @returns it, owned by @p org. */
const char *sf_token_issue(sbx_t *sbx, struct sf_org *org);
/** @returns the token of "Authorization: Bearer X" (or "OAuth X"), or
 *  NULL; points into the request. */
const char *sf_bearer(const struct sbx_req *req);
/** @brief Forget every access token of @p org (refresh tokens stay). */
void sf_tokens_expire(struct sf_org *org);
/**
 * @brief Check the request's bearer token (Authorization: Bearer|OAuth)
 *        against @p tenant's live sessions and touch it (lock held).
 * @returns 1 if valid.
 */
int sf_session_check(sbx_t *sbx, const char *tenant, const struct sbx_req *req);

/* ---- CDC helpers (cometd.c) --------------------------------------------- */

/** @brief Group the next publishes into one transaction (one
 *  transactionKey, rising sequenceNumber) until sf_cdc_txn_end(). */
void sf_cdc_txn_begin(sbx_t *sbx);
void sf_cdc_txn_end(sbx_t *sbx);
/** @brief Use @p user_id as commitUser of the next publishes. */
void sf_cdc_set_user(sbx_t *sbx, const char *user_id);
/** @brief Scenario controls under /sandbox/sf/<tenant>/cdc/<action>
 *  (lock held). */
void sf_cdc_control(sbx_t *sbx, const char *tenant, const char *action,
                    const char *method, const cJSON *body,
                    struct sbx_resp *resp);
/** @returns the number of live CometD clients of @p tenant. */
int sf_cdc_client_count(sbx_t *sbx, const char *tenant);
/** @returns a JSON summary of @p tenant's event log for state dumps. */
cJSON *sf_cdc_dump(sbx_t *sbx, const char *tenant);

/* ---- misc helpers (sf_util.c) ---------------------------------------------
 */

/** @brief Parse "vNN.N" (a known REST version) into @p out ("59.0").
 *  @returns 0, or -1. */
int sf_version_parse(const char *s, size_t len, char *out, size_t outsz);
/** @brief Build the CDC changeOrigin for an API call of version @p ver
 *  from the Sforce-Call-Options header (may be NULL). */
void sf_origin_build(const char *call_options, const char *ver, char *out,
                     size_t outsz);
/** @brief Decode application/x-www-form-urlencoded @p body: @returns the
 *  malloc()ed value of @p key, or NULL. */
char *sf_form_get(const char *body, size_t len, const char *key);
/** @brief ASCII lower-case copy (malloc()ed). */
char *sf_lower(const char *s);

#endif /* OPTSYNC_SANDBOX_SF_INTERNAL_H */
