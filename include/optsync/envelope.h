/*
 * envelope.h - the versioned JSON messages on every optsync topic: typed
 * structs, strict encode/decode/validate, deterministic ids, partition key.
 * The wire schema is docs/events.md; tests decode every example there.
 */
#ifndef OPTSYNC_ENVELOPE_H
#define OPTSYNC_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "optsync/email.h"
#include "optsync/err.h"
#include "optsync/topics.h"

/** The only envelope version this build writes and reads ("v":1). */
#define OSY_MSG_VERSION 1

/** Encoded messages larger than this are refused (both directions). */
#define OSY_MSG_MAX_BYTES 65536

/** Message ids: 32 lowercase hex digits (first 128 bits of SHA-256). */
#define OSY_ID_LEN 32
#define OSY_ID_BUFSZ (OSY_ID_LEN + 1)

/** Tenant names: 1..64 of [A-Za-z0-9_.-]. */
#define OSY_TENANT_MAX 64

/** Separator of the partition key "<tenant>|<email>": never in a tenant. */
#define OSY_PARTITION_KEY_SEP '|'

/** Buffer size that holds any partition key (tenant|email + NUL). */
#define OSY_PARTITION_KEY_BUFSZ (OSY_TENANT_MAX + 1 + OSY_EMAIL_MAX + 1)

/** dlq: the original value is kept up to this many bytes, the key up to
 *  OSY_DLQ_KEY_MAX, so the DLQ record itself fits OSY_MSG_MAX_BYTES. */
#define OSY_DLQ_VALUE_MAX 32768
#define OSY_DLQ_KEY_MAX 1024

/** Caps of free-text fields (bytes). */
#define OSY_TEXT_MAX 1024  /**< audit.detail, dlq.first_error/last_error */
#define OSY_REASON_MAX 256 /**< dlq.reason */
#define OSY_TAG_MAX 255    /**< one AC tag name */
#define OSY_TAGS_MAX 500   /**< tags per ac.event */

/** Message types, one per topic. 0 is "not set". */
typedef enum {
        OSY_MSG_NONE = 0,
        OSY_MSG_AC_EVENT,   /**< "ac.event"   on <prefix>.ac.events */
        OSY_MSG_SF_EVENT,   /**< "sf.event"   on <prefix>.sf.events */
        OSY_MSG_SF_COMMAND, /**< "sf.command" on <prefix>.sf.commands */
        OSY_MSG_AC_COMMAND, /**< "ac.command" on <prefix>.ac.commands */
        OSY_MSG_AUDIT,      /**< "audit"      on <prefix>.audit */
        OSY_MSG_DLQ,        /**< "dlq"        on <prefix>.dlq */
        OSY_MSG__CNT
} osy_msg_type_t;

/** Who produced a message ("source"). */
typedef enum {
        OSY_SRC_NONE = 0,
        OSY_SRC_AC,         /**< "ac": ac-ingest, from an AC webhook */
        OSY_SRC_SF,         /**< "sf": sf-ingest, from SF CDC or polling */
        OSY_SRC_RULES,      /**< "rules" */
        OSY_SRC_SF_WRITER,  /**< "sf-writer" */
        OSY_SRC_AC_WRITER,  /**< "ac-writer" */
        OSY_SRC_RECONCILER, /**< "reconciler" */
        OSY_SRC__CNT
} osy_source_t;

/** Optional booleans: 0 means absent, so a zeroed struct omits them. */
typedef enum {
        OSY_TRI_UNSET = 0,
        OSY_TRI_FALSE,
        OSY_TRI_TRUE
} osy_tri_t;

typedef enum {
        OSY_AC_KIND_NONE = 0,
        OSY_AC_SUBSCRIBE,   /**< "subscribe" */
        OSY_AC_UNSUBSCRIBE, /**< "unsubscribe" */
        OSY_AC_BOUNCE,      /**< "bounce" */
        OSY_AC_TAG_ADDED,   /**< "contact_tag_added" */
        OSY_AC_TAG_REMOVED, /**< "contact_tag_removed" */
        OSY_AC_UPDATE,      /**< "update" */
        OSY_AC_KIND__CNT
} osy_ac_kind_t;

typedef enum {
        OSY_BOUNCE_NONE = 0,
        OSY_BOUNCE_HARD,    /**< "hard" */
        OSY_BOUNCE_SOFT,    /**< "soft" */
        OSY_BOUNCE_UNKNOWN, /**< "unknown": the webhook did not say */
        OSY_BOUNCE__CNT
} osy_bounce_t;

/** AC's initiated_from: who caused the AC event. */
typedef enum {
        OSY_INIT_NONE = 0,
        OSY_INIT_PUBLIC,  /**< "public": the contact */
        OSY_INIT_ADMIN,   /**< "admin": a user in the AC UI */
        OSY_INIT_API,     /**< "api": an API call (ours, or anyone's) */
        OSY_INIT_SYSTEM,  /**< "system": automations, AC itself */
        OSY_INIT_UNKNOWN, /**< "unknown": absent or a new AC value */
        OSY_INIT__CNT
} osy_initiator_t;

typedef enum {
        OSY_SF_KIND_NONE = 0,
        OSY_SF_OPT_OUT_CHANGED, /**< "opt_out_changed" */
        OSY_SF_LEAD_CONVERTED,  /**< "lead_converted" */
        OSY_SF_CREATED,         /**< "created" */
        OSY_SF_UNDELETED,       /**< "undeleted" */
        OSY_SF_KIND__CNT
} osy_sf_kind_t;

typedef enum {
        OSY_SF_OBJ_NONE = 0,
        OSY_SF_CONTACT, /**< "Contact" */
        OSY_SF_LEAD,    /**< "Lead" */
        OSY_SF_OBJ__CNT
} osy_sf_object_t;

/** The rules of ARCHITECTURE.md section 1. */
typedef enum {
        OSY_RULE_NONE = 0,
        OSY_RULE_R1, /**< AC 0 -> >=1 active lists: SF opt-out false */
        OSY_RULE_R2, /**< AC -> 0 active lists: SF opt-out true */
        OSY_RULE_R3, /**< AC hard bounce: SF opt-out true */
        OSY_RULE_R4, /**< SF opt-out true: AC unsubscribe all (+ R2) */
        OSY_RULE__CNT
} osy_rule_t;

typedef enum {
        OSY_AC_ACTION_NONE = 0,
        OSY_AC_UNSUBSCRIBE_ALL_LISTS, /**< "unsubscribe_all_lists" */
        OSY_AC_ACTION__CNT
} osy_ac_action_t;

/** Pipeline stages, for audit and dlq records. */
typedef enum {
        OSY_STAGE_NONE = 0,
        OSY_STAGE_AC_INGEST,  /**< "ac-ingest" */
        OSY_STAGE_SF_INGEST,  /**< "sf-ingest" */
        OSY_STAGE_RULES,      /**< "rules" */
        OSY_STAGE_SF_WRITER,  /**< "sf-writer" */
        OSY_STAGE_AC_WRITER,  /**< "ac-writer" */
        OSY_STAGE_RECONCILER, /**< "reconciler" */
        OSY_STAGE__CNT
} osy_stage_t;

typedef enum {
        OSY_OUTCOME_NONE = 0,
        OSY_OUTCOME_APPLIED,       /**< "applied": done / written */
        OSY_OUTCOME_SKIPPED,       /**< "skipped": nothing to do */
        OSY_OUTCOME_DUPLICATE,     /**< "duplicate": id seen before */
        OSY_OUTCOME_STALE,         /**< "stale": a newer version won */
        OSY_OUTCOME_COALESCED,     /**< "coalesced": merged into newer */
        OSY_OUTCOME_RETRYING,      /**< "retrying": retryable failure */
        OSY_OUTCOME_FAILED,        /**< "failed": permanent failure */
        OSY_OUTCOME_DEAD_LETTERED, /**< "dead_lettered": sent to the DLQ */
        OSY_OUTCOME__CNT
} osy_outcome_t;

typedef enum {
        OSY_API_NONE = 0,
        OSY_API_AC, /**< "ac" */
        OSY_API_SF, /**< "sf" */
        OSY_API__CNT
} osy_api_t;

/**
 * Newest-wins order of commands: compare ms, then tie bytewise
 * (osy_version_cmp()). The rules worker uses the cause event's occurrence
 * time and id.
 */
struct osy_version {
        int64_t ms; /**< "ms": occurrence time, ms since epoch */
        char *tie;  /**< "tie": 1..64 printable ASCII, owned */
};

/** Payload of "ac.event". Strings are owned by the message; NULL = absent. */
struct osy_ac_event {
        osy_ac_kind_t kind;
        char *contact_id;         /**< required */
        char *list_id;            /**< required for (un)subscribe; "0":
                                       AC did not say which list */
        osy_bounce_t bounce_type; /**< required for bounce, else NONE */
        char *campaign_id;        /**< optional */
        int automation;           /**< 1: sent by an automation */
        char *tag;                /**< required for tag events, else NULL */
        char **tags;              /**< the contact's tags, if given */
        size_t tags_cnt;
        int has_tags;                 /**< 1: tags[] is known (maybe empty) */
        osy_initiator_t initiated_by; /**< required */
        int echo;                     /**< 1: caused by our own ac-writer */
};

/** Payload of "sf.event". */
struct osy_sf_event {
        osy_sf_kind_t kind;
        osy_sf_object_t object;
        char *record_id;                  /**< 15 or 18 chars */
        osy_tri_t has_opted_out_of_email; /**< required unless
                                               lead_converted */
        osy_tri_t is_converted;           /**< Lead only, optional */
        char *converted_contact_id;       /**< required for lead_converted */
        char *change_origin;              /**< optional, CDC changeOrigin */
        int echo;                         /**< 1: written by optsync */
        char *replay_id;                  /**< optional, opaque */
};

/** Payload of "sf.command": the desired SF state of a person. */
struct osy_sf_command {
        int has_opted_out_of_email; /**< 0/1; R1 -> 0, R2..R4 -> 1 */
        osy_rule_t rule;
        char cause_event_id[OSY_ID_BUFSZ];
        struct osy_version version;
};

/** Payload of "ac.command": the desired AC action for a person. */
struct osy_ac_command {
        osy_ac_action_t action;
        osy_rule_t rule; /**< R4 */
        char cause_event_id[OSY_ID_BUFSZ];
        char *contact_id; /**< optional hint; else look up by email */
        struct osy_version version;
};

/** Payload of "audit". */
struct osy_audit {
        osy_stage_t stage;
        char *action; /**< [a-z0-9_.-]{1,64}, e.g. "sf_update" */
        osy_rule_t rule;
        osy_outcome_t outcome;
        char *detail;              /**< optional, <= OSY_TEXT_MAX */
        char ref_id[OSY_ID_BUFSZ]; /**< the event or command it is about */
        osy_api_t api;             /**< optional: an external call */
        int http_status;           /**< optional (0 = absent), needs api */
        int64_t calls;             /**< optional (0 = absent), needs api */
};

/** The Kafka record a dlq message carries. Bytes are owned copies. */
struct osy_dlq_original {
        char *topic;
        int32_t partition;
        int64_t offset;
        int has_key;        /**< 0: the record had no key */
        unsigned char *key; /**< key_len bytes (<= OSY_DLQ_KEY_MAX) */
        size_t key_len;
        unsigned char *value; /**< value_len bytes (<= OSY_DLQ_VALUE_MAX) */
        size_t value_len;
        int64_t value_size; /**< original length; > value_len: truncated */
};

/** Payload of "dlq". */
struct osy_dlq {
        osy_stage_t stage;
        char *reason; /**< 1..OSY_REASON_MAX bytes */
        int64_t attempts;
        char *first_error;
        char *last_error;
        int64_t first_failed_at; /**< ms since epoch */
        int64_t last_failed_at;
        struct osy_dlq_original original;
};

/**
 * One message. The envelope fields, then one payload struct per type:
 * only the one matching @c type is encoded, but osy_msg_clear() frees
 * them all, so a wrong @c type never leaks or double-frees.
 */
struct osy_msg {
        osy_msg_type_t type;
        char id[OSY_ID_BUFSZ]; /**< "" until finalised, encoded or decoded */
        char *tenant;          /**< owned; NULL allowed only for dlq */
        char *email;           /**< owned, normalised; NULL only for dlq */
        osy_source_t source;
        int64_t occurred_at; /**< ms since epoch, UTC */
        struct osy_ac_event ac_event;
        struct osy_sf_event sf_event;
        struct osy_sf_command sf_command;
        struct osy_ac_command ac_command;
        struct osy_audit audit;
        struct osy_dlq dlq;
};

/* ---- life cycle ------------------------------------------------------- */

/** @brief Zero @p msg and set its type. Owns nothing yet. */
void osy_msg_init(struct osy_msg *msg, osy_msg_type_t type);

/** @brief Free every string the message owns and zero it (NULL-safe). */
void osy_msg_clear(struct osy_msg *msg);

/** @returns a heap message from osy_msg_init(), or NULL (no memory). */
struct osy_msg *osy_msg_new(osy_msg_type_t type);

/** @brief osy_msg_clear() then free() a message from osy_msg_new()
 *         (NULL-safe). */
void osy_msg_free(struct osy_msg *msg);

/* ---- filling ------------------------------------------------------------ */

/**
 * @brief Replace the owned string at @p field with a copy of @p value
 *        (NULL clears it).
 * @returns OSY_OK or OSY_ERR_NOMEM (the field is then unchanged).
 */
osy_err_t osy_msg_strset(char **field, const char *value) OSY_MUSTCHECK;

/**
 * @brief osy_msg_strset() that keeps at most @p max bytes of @p value,
 *        cut at a UTF-8 character boundary (for error texts, details).
 */
osy_err_t osy_msg_strset_trunc(char **field, const char *value,
                               size_t max) OSY_MUSTCHECK;

/**
 * @brief Set the envelope: copies @p tenant, normalises and copies
 *        @p email (see osy_email_normalise()).
 * @returns OSY_OK; OSY_ERR_INVALID (bad tenant or email, in @p errstr);
 *          OSY_ERR_NOMEM.
 */
osy_err_t osy_msg_set_envelope(struct osy_msg *msg, const char *tenant,
                               const char *email, osy_source_t source,
                               int64_t occurred_at, char *errstr,
                               size_t errstr_size) OSY_MUSTCHECK;

/** @brief Append a copy of @p tag to ev->tags and set has_tags.
 *  @returns OSY_OK, OSY_ERR_NOMEM, or OSY_ERR_TOO_LARGE (OSY_TAGS_MAX). */
osy_err_t osy_ac_event_add_tag(struct osy_ac_event *ev,
                               const char *tag) OSY_MUSTCHECK;

/**
 * @brief Set ev->tags from AC's contact[tags] string ("tag1, tag2": split
 *        at commas, spaces trimmed, empty items skipped); has_tags = 1
 *        even when @p csv is empty (the contact has no tags).
 * @returns OSY_OK, OSY_ERR_NOMEM, OSY_ERR_TOO_LARGE.
 */
osy_err_t osy_ac_event_set_tags_csv(struct osy_ac_event *ev,
                                    const char *csv) OSY_MUSTCHECK;

/**
 * @brief Fill dlq.original with copies of a Kafka record. The key is cut
 *        to OSY_DLQ_KEY_MAX bytes and the value to OSY_DLQ_VALUE_MAX
 *        (value_size keeps the full length), so the DLQ record always
 *        fits. @p key NULL means "no key"; @p value NULL means empty.
 * @returns OSY_OK or OSY_ERR_NOMEM.
 */
osy_err_t osy_msg_dlq_set_original(struct osy_msg *msg, const char *topic,
                                   int32_t partition, int64_t offset,
                                   const void *key, size_t key_len,
                                   const void *value,
                                   size_t value_len) OSY_MUSTCHECK;

/* ---- validation, ids, wire ---------------------------------------------- */

/**
 * @brief Check every schema rule of docs/events.md on a filled message
 *        (not the id). The detail names the JSON path, e.g.
 *        "payload.list_id: required for kind=subscribe".
 * @returns OSY_OK or OSY_ERR_INVALID.
 */
osy_err_t osy_msg_validate(const struct osy_msg *msg, char *errstr,
                           size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Validate, then compute the deterministic id of @p msg from the
 *        fields docs/events.md lists for its type (never the produce
 *        time), into @p out (OSY_ID_BUFSZ bytes).
 * @returns OSY_OK, OSY_ERR_INVALID, or OSY_ERR_NOMEM.
 */
osy_err_t osy_msg_compute_id(const struct osy_msg *msg, char *out, char *errstr,
                             size_t errstr_size) OSY_MUSTCHECK;

/** @brief osy_msg_compute_id() into msg->id. */
osy_err_t osy_msg_finalize(struct osy_msg *msg, char *errstr,
                           size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Encode @p msg as compact JSON with a fixed key order.
 *
 * Validates first. msg->id may be "" (it is computed); if set it must
 * equal the computed id, which catches a field changed after
 * osy_msg_finalize().
 *
 * @param jsonp receives a NUL-terminated malloc()ed string the caller
 *              free()s; NULL on error.
 * @param lenp  receives strlen(*jsonp) (may be NULL).
 * @returns OSY_OK; OSY_ERR_INVALID; OSY_ERR_TOO_LARGE (over
 *          OSY_MSG_MAX_BYTES); OSY_ERR_NOMEM.
 */
osy_err_t osy_msg_encode(const struct osy_msg *msg, char **jsonp, size_t *lenp,
                         char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Decode and fully check one message: any bytes in, never a crash.
 *
 * Refuses (OSY_ERR_INVALID, with the JSON path in @p errstr) empty or
 * oversize input, NUL bytes, invalid UTF-8 or JSON, trailing data, a
 * non-object, "v" other than 1, an unknown type, unknown or duplicate
 * keys, missing or wrong-typed fields, bad enum values, timestamps not in
 * canonical form, schema rule violations, and an id that does not match
 * the fields.
 *
 * @param msg filled on success (the caller then owns it and calls
 *            osy_msg_clear()); left cleared on error.
 * @returns OSY_OK, OSY_ERR_INVALID, or OSY_ERR_NOMEM.
 */
osy_err_t osy_msg_decode(const void *buf, size_t len, struct osy_msg *msg,
                         char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Best effort for dead-lettering a message that did not decode:
 *        copy its "tenant" and "email" if it is a JSON object whose two
 *        fields are valid (tenant checked, email normalised).
 * @returns 1 if both were found and copied, else 0 (outputs "").
 */
int osy_msg_peek_person(const void *buf, size_t len, char *tenant,
                        size_t tenant_size, char *email, size_t email_size);

/**
 * @brief Generic id: hex of the first 128 bits of SHA-256 over the
 *        length-prefixed encoding of @p fields: for each field,
 *        "<decimal byte length>:<bytes>," or "~," for a NULL field.
 * @param out OSY_ID_BUFSZ bytes; receives 32 lowercase hex digits.
 * @returns OSY_OK, or OSY_ERR_NOMEM if libcrypto could not allocate.
 */
osy_err_t osy_id_hash(const char *const *fields, size_t n,
                      char out[OSY_ID_BUFSZ]) OSY_MUSTCHECK;

/**
 * @brief The Kafka key of a person: "<tenant>|<normalised email>".
 *        '|' is not allowed in tenants, so the first '|' splits the key.
 * @returns OSY_OK; OSY_ERR_INVALID (bad tenant or email);
 *          OSY_ERR_TOO_LARGE (@p size below what is needed).
 */
osy_err_t osy_partition_key(const char *tenant, const char *email, char *buf,
                            size_t size) OSY_MUSTCHECK;

/** @brief Check a tenant name. @returns OSY_OK or OSY_ERR_INVALID. */
osy_err_t osy_tenant_check(const char *tenant, char *errstr,
                           size_t errstr_size) OSY_MUSTCHECK;

/** @returns <0, 0, >0 as @p a is older than, equal to, newer than @p b
 *           (a NULL tie sorts first). */
int osy_version_cmp(const struct osy_version *a, const struct osy_version *b);

/* ---- names ------------------------------------------------------------ */

/** @returns the wire name of each enum value ("ac.event", "R4", ...),
 *           or "?" for a value out of range. Static strings. */
const char *osy_msg_type2str(osy_msg_type_t type);
const char *osy_source2str(osy_source_t source);
const char *osy_ac_kind2str(osy_ac_kind_t kind);
const char *osy_sf_kind2str(osy_sf_kind_t kind);
const char *osy_rule2str(osy_rule_t rule);
const char *osy_stage2str(osy_stage_t stage);
const char *osy_outcome2str(osy_outcome_t outcome);

/** @returns the topic a message type travels on, or OSY_TOPIC__CNT for
 *           OSY_MSG_NONE or a value out of range. */
osy_topic_t osy_msg_type_topic(osy_msg_type_t type);

#endif /* OPTSYNC_ENVELOPE_H */
