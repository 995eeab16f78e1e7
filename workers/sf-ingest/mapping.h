/*
 * mapping.h - what sf-ingest makes of Salesforce changes, as pure
 * functions: which CDC events become sf.events (and which need a REST
 * re-read), which polled records changed for real, the SOQL it sends, and
 * the envelope it publishes.
 */
#ifndef OPTSYNC_SF_INGEST_MAPPING_H
#define OPTSYNC_SF_INGEST_MAPPING_H

#include <stddef.h>
#include <stdint.h>

#include "cdc.h"
#include "optsync/email.h"
#include "optsync/envelope.h"
#include "optsync/err.h"

/** payload.change_origin is capped at 255 bytes (docs/events.md). */
#define OSY_SFI_ORIGIN_BUFSZ 256

/** Why a change produced no event; counted per reason in the metrics. */
typedef enum {
        OSY_SFI_SKIP_NOT_OPT_OUT = 0, /**< the change did not touch it */
        OSY_SFI_SKIP_OTHER_ENTITY,    /**< not a Contact or Lead */
        OSY_SFI_SKIP_DELETE,          /**< deletes change no opt-out */
        OSY_SFI_SKIP_MALFORMED,       /**< event unreadable (re-read) */
        OSY_SFI_SKIP_NO_EMAIL,        /**< the record has no Email */
        OSY_SFI_SKIP_BAD_EMAIL,       /**< Email does not normalise */
        OSY_SFI_SKIP_NOT_FOUND,       /**< record gone when looked up */
        OSY_SFI_SKIP_UNCHANGED,       /**< polled/re-read, same as known */
        OSY_SFI_SKIP__CNT
} osy_sfi_skip_t;

/** @returns "not_opt_out", "no_email", ... (metrics label values). */
const char *osy_sfi_skip2str(osy_sfi_skip_t r);

/** One sf.event to publish (once its email is known). */
struct osy_sfi_change {
        osy_sf_kind_t kind;
        osy_sf_object_t object;
        char record_id[OSY_SFI_ID_BUFSZ];
        osy_tri_t opt_out;
        osy_tri_t is_converted;                      /**< Lead only */
        char converted_contact_id[OSY_SFI_ID_BUFSZ]; /**< "" = none */
        char email[OSY_EMAIL_BUFSZ]; /**< normalised; "" = look it up */
        int64_t occurred_at;         /**< commitTimestamp/SystemModstamp */
        char change_origin[OSY_SFI_ORIGIN_BUFSZ]; /**< "" = none */
        char replay_id[OSY_SFI_REPLAY_MAX + 1];   /**< "" = none (polling) */
        int echo;                                 /**< our own write */
};

/** What sf-ingest remembers per record (Redis), to publish only real
 *  changes and to skip the email lookup of CDC updates. */
struct osy_sfi_recstate {
        int known;              /**< 1: a state was stored */
        osy_tri_t opt_out;      /**< last published/seen HasOptedOutOfEmail */
        osy_tri_t is_converted; /**< Lead: last seen IsConverted */
        char email[OSY_EMAIL_BUFSZ]; /**< normalised; "" = unknown */
};

/** A change to a record's stored state (fields left UNSET/"" stay). */
struct osy_sfi_state_update {
        char record_id[OSY_SFI_ID_BUFSZ];
        osy_tri_t opt_out;
        osy_tri_t is_converted;
        char email[OSY_EMAIL_BUFSZ];
};

/** A record to read back through REST (GAP events, unreadable events). */
struct osy_sfi_ref {
        osy_sf_object_t object;
        char record_id[OSY_SFI_ID_BUFSZ];
};

/** The replay position one batch reached on one channel. */
struct osy_sfi_position {
        char channel[64];
        char replay_id[OSY_SFI_REPLAY_MAX + 1];
        int64_t commit_ts; /**< of the last event with a time; -1: none */
};

#define OSY_SFI_MAX_CHANNELS 4

/**
 * Everything one CometD answer asks for, decided before any I/O: the
 * events to publish, the records to re-read, state to remember, polls to
 * trigger (GAP_OVERFLOW) and the replay positions reached.
 */
struct osy_sfi_plan {
        struct osy_sfi_change *changes;
        size_t change_cnt, change_cap;
        struct osy_sfi_ref *rereads;
        size_t reread_cnt, reread_cap;
        struct osy_sfi_state_update *states;
        size_t state_cnt, state_cap;
        /** Per object: poll back from this time (GAP_OVERFLOW, or a
         *  malformed event naming no record); -1: no. */
        int64_t overflow_from[OSY_SF_OBJ__CNT];
        /** Per object: poll now from the watermark (a malformed event
         *  naming no record, with no commit time known to go back to). */
        int poll_now[OSY_SF_OBJ__CNT];
        struct osy_sfi_position pos[OSY_SFI_MAX_CHANNELS];
        size_t pos_cnt;
        uint64_t by_type[OSY_SFI_CT__CNT]; /**< events seen per type */
        uint64_t skipped[OSY_SFI_SKIP__CNT];
        uint64_t malformed; /**< events with ev->error */
};

/** @brief Zero a plan (overflow_from to -1). */
void osy_sfi_plan_init(struct osy_sfi_plan *p);

/** @brief Free a plan's arrays and re-init it. NULL-safe. */
void osy_sfi_plan_clear(struct osy_sfi_plan *p);

/**
 * @brief Decide what one CDC event means for opt-out sync.
 *
 * - UPDATE naming HasOptedOutOfEmail in changedFields: opt_out_changed.
 * - CREATE / UNDELETE whose body has HasOptedOutOfEmail true: created /
 *   undeleted (a new record that is not opted out changes nothing).
 * - Lead UPDATE naming IsConverted, with IsConverted true and a
 *   ConvertedContactId: lead_converted.
 * - One change per record id (merged events list several).
 * - GAP_* with ids, and unreadable events with ids: re-read the records.
 * - GAP_OVERFLOW: poll the object back from its commitTimestamp.
 * - Email in a body (CREATE, or an UPDATE naming Email): remembered, so
 *   later updates need no lookup.
 * - changeOrigin naming @p client: echo.
 * The event's replay id always advances the channel's position.
 *
 * @returns OSY_OK or OSY_ERR_NOMEM (the plan is then partial: clear it).
 */
osy_err_t osy_sfi_plan_add_event(struct osy_sfi_plan *p,
                                 const struct osy_sfi_event *ev,
                                 const char *client) OSY_MUSTCHECK;

/** @brief Append @p c to the plan's changes. */
osy_err_t osy_sfi_plan_add_change(struct osy_sfi_plan *p,
                                  const struct osy_sfi_change *c) OSY_MUSTCHECK;

/** @brief Append a state update. */
osy_err_t
osy_sfi_plan_add_state(struct osy_sfi_plan *p,
                       const struct osy_sfi_state_update *u) OSY_MUSTCHECK;

/** A Contact or Lead as read back through SOQL. */
struct osy_sfi_record {
        osy_sf_object_t object;
        char record_id[OSY_SFI_ID_BUFSZ];
        int email_ok;                /**< 1: Email normalised into email */
        int email_null;              /**< 1: Email is null/empty */
        char email[OSY_EMAIL_BUFSZ]; /**< normalised */
        osy_tri_t opt_out;
        osy_tri_t is_converted;
        char converted_contact_id[OSY_SFI_ID_BUFSZ];
        int64_t system_modstamp; /**< ms; -1 if absent */
};

/**
 * @brief Compare a record read through REST (poll, GAP re-read) with its
 *        stored state and write the events it deserves into @p out.
 *
 * opt_out_changed when the opt-out differs from the known one; for a
 * record never seen, only when it is true (a record that was never opted
 * out has nothing to sync, and publishing every new record at the first
 * poll would flood the rules). lead_converted when IsConverted turned
 * true. occurred_at is SystemModstamp.
 *
 * @returns the number of changes written (0..2).
 */
size_t osy_sfi_decide(const struct osy_sfi_record *rec,
                      const struct osy_sfi_recstate *prev,
                      struct osy_sfi_change out[2]);

/* ---- SOQL ------------------------------------------------------------- */

/** Most ids in one "Id IN (...)" query. */
#define OSY_SFI_IN_MAX 200

/**
 * Longest URL (instance URL + query path) sf-ingest sends. osy_sf_call()
 * builds URLs in a 2 KiB buffer, and proxies commonly stop near there, so
 * look-ups are cut into as many queries as this needs.
 */
#define OSY_SFI_URL_MAX 2000

/**
 * @brief SELECT the fields sf-ingest reads from @p object WHERE Id IN
 *        (@p ids). Ids must be valid (osy_sfi_id_valid): they need no
 *        escaping then.
 * @param out malloc()ed statement (caller frees).
 */
osy_err_t osy_sfi_soql_by_ids(osy_sf_object_t object,
                              const char (*ids)[OSY_SFI_ID_BUFSZ], size_t n,
                              char **out) OSY_MUSTCHECK;

/**
 * @brief The polling statement: records of @p object with SystemModstamp
 *        >= @p from_ms (cut down to the second), oldest first, ties by Id.
 */
osy_err_t osy_sfi_soql_since(osy_sf_object_t object, int64_t from_ms,
                             char **out) OSY_MUSTCHECK;

/**
 * @brief "/services/data/v<ver>/query?q=<percent-encoded soql>".
 * @param out malloc()ed (caller frees).
 */
osy_err_t osy_sfi_query_path(const char *api_version, const char *soql,
                             char **out) OSY_MUSTCHECK;

/**
 * @brief The query path of a look-up of the first ids of @p ids: as many
 *        as fit (at most OSY_SFI_IN_MAX, at least 1) in @p max_len bytes.
 * @param k    receives how many ids the path covers.
 * @param path receives the malloc()ed path (caller frees).
 * @returns OSY_OK; OSY_ERR_TOO_LARGE when not even one id fits;
 *          OSY_ERR_INVALID for a bad id; OSY_ERR_NOMEM.
 */
osy_err_t osy_sfi_lookup_path(const char *api_version, osy_sf_object_t object,
                              const char (*ids)[OSY_SFI_ID_BUFSZ], size_t n,
                              size_t max_len, size_t *k,
                              char **path) OSY_MUSTCHECK;

/** One page of a query answer. */
struct osy_sfi_page {
        struct osy_sfi_record *records;
        size_t record_cnt;
        size_t bad; /**< rows that could not be read (no valid Id) */
        int done;
        char *next_url; /**< nextRecordsUrl (path), or NULL */
};

/**
 * @brief Parse a REST query answer of Contacts or Leads.
 * @returns OSY_OK; OSY_ERR_INVALID if it is not a query answer (with
 *          detail); OSY_ERR_NOMEM.
 */
osy_err_t osy_sfi_page_parse(const char *body, size_t len,
                             osy_sf_object_t object, struct osy_sfi_page *out,
                             char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/** @brief Free a page. NULL-safe. */
void osy_sfi_page_clear(struct osy_sfi_page *pg);

/* ---- the envelope ----------------------------------------------------- */

/**
 * @brief Build the sf.event for @p c (email required) and encode it.
 * @param jsonp receives the malloc()ed message (caller frees).
 * @param key   receives the partition key (OSY_PARTITION_KEY_BUFSZ).
 * @param id    receives the message id (OSY_ID_BUFSZ), may be NULL.
 * @returns OSY_OK; OSY_ERR_INVALID when the message breaks the schema.
 */
osy_err_t osy_sfi_change_encode(const struct osy_sfi_change *c,
                                const char *tenant, char **jsonp, size_t *lenp,
                                char *key, char *id, char *errstr,
                                size_t errstr_size) OSY_MUSTCHECK;

/** @brief Copy @p src into @p dst (size @p size), cut at a UTF-8
 *         character boundary when it does not fit. */
void osy_sfi_copy_utf8(char *dst, size_t size, const char *src);

#endif /* OPTSYNC_SF_INGEST_MAPPING_H */
