/*
 * acwh.h - ActiveCampaign webhook bodies: form-urlencoded with PHP-style
 * bracket keys (or JSON), parsed into the fields optsync needs and turned
 * into ac.event envelopes (docs/events.md section 4). Pure: no I/O.
 */
#ifndef OSY_ACWH_H
#define OSY_ACWH_H

#include <stddef.h>
#include <stdint.h>

#include "optsync/envelope.h"
#include "optsync/err.h"

/** Most fields (key=value pairs, or JSON leaves) one body may carry. */
#define OSY_ACWH_MAX_FIELDS 5000

/** Most segments of one key ("contact[fields][x]" has 3); deeper keys are
 *  dropped, as PHP does past its nesting limit. */
#define OSY_ACWH_MAX_DEPTH 16

/** Most distinct list ids one (un)subscribe may name: one event each. */
#define OSY_ACWH_MAX_LISTS 100

/** Body encodings AC (or a relay in front of it) may use. */
typedef enum {
        OSY_ACWH_FORM = 0, /**< application/x-www-form-urlencoded */
        OSY_ACWH_JSON      /**< application/json, nested or flat keys */
} osy_acwh_format_t;

/** One decoded field: the key split PHP-style into segments
 *  ("list[][id]" -> "list", "", "id"), and its value. */
struct osy_acwh_field {
        const char *seg[OSY_ACWH_MAX_DEPTH];
        size_t nseg;
        const char *value; /**< never NULL */
        char *mem;         /**< owns the strings above */
};

/** A parsed body: every field in body order. */
struct osy_acwh_form {
        struct osy_acwh_field *f;
        size_t n, cap;
};

/**
 * @brief What one webhook says, in optsync's terms. Strings point into
 *        the form it was extracted from (valid while the form is).
 */
struct osy_acwh_event {
        const struct osy_acwh_form *form;
        const char *type;   /**< AC's "type", as sent */
        osy_ac_kind_t kind; /**< OSY_AC_KIND_NONE: a type optsync ignores */
        int64_t occurred_at;
        const char *email;       /**< as sent (normalised when built) */
        const char *contact_id;  /**< contact[id] */
        const char *tag;         /**< top-level "tag" of tag events */
        const char *campaign_id; /**< campaign[id], NULL if absent or "0" */
        const char *tags_csv;    /**< contact[tags] as one string, or NULL */
        size_t tag_items;        /**< contact[tags][] items (array form) */
        const char *lists[OSY_ACWH_MAX_LISTS]; /**< distinct list ids */
        size_t n_lists;
        osy_initiator_t initiated_by;
        osy_bounce_t bounce_type; /**< bounce only; UNKNOWN if not said */
        int automation;
        /** 1: date_time was more than OSY_ACWH_AHEAD_MS ahead of our
         *  clock, so occurred_at is the time we got it. */
        int time_clamped;
};

/** How far ahead of ac-ingest's clock a webhook's date_time may be (clock
 *  skew); beyond it, occurred_at is the receive time. */
#define OSY_ACWH_AHEAD_MS (5 * 60 * 1000)

/** One event ready for Kafka: key, encoded envelope and its id. */
struct osy_acwh_out {
        char *key; /**< "<tenant>|<email>", owned */
        size_t key_len;
        char *value; /**< the ac.event JSON, owned */
        size_t value_len;
        char id[OSY_ID_BUFSZ];
};

/** Result of osy_acwh_decode(). */
struct osy_acwh_result {
        /** Metrics label: the kind's wire name, "other" for a type optsync
         *  ignores, "none" when the body had no usable type. */
        const char *type_label;
        osy_ac_kind_t kind; /**< NONE: acknowledge and count, produce nothing */
        size_t n;           /**< events in @c out (0 when ignored) */
        struct osy_acwh_out *out;
};

/**
 * @brief Pick the body format from the Content-Type header (may be NULL):
 *        JSON for application/json or any "+json" type; otherwise a body
 *        whose first non-blank byte is '{' is JSON too; else form.
 */
osy_acwh_format_t osy_acwh_format_of(const char *content_type, const char *body,
                                     size_t len);

/**
 * @brief Parse a body into fields. Form bodies follow PHP's $_POST rules:
 *        '&'-separated pairs, '+' and %XX decoded (a malformed %XX is kept
 *        literally), keys split at brackets ("a[b][]"), empty base names
 *        dropped. JSON objects are flattened to the same paths (array
 *        items get their index as segment; object keys are bracket-split
 *        too, so {"contact[email]":"x"} equals {"contact":{"email":"x"}}).
 *
 * @param form  zeroed or cleared by the caller; filled on success, cleared
 *              on error. The caller frees it with osy_acwh_form_clear().
 * @returns OSY_OK; OSY_ERR_INVALID (NUL bytes, bad JSON, not an object, too
 *          deep) or OSY_ERR_TOO_LARGE (too many fields), reason in
 *          @p errstr; OSY_ERR_NOMEM.
 */
osy_err_t osy_acwh_form_parse(struct osy_acwh_form *form, const char *body,
                              size_t len, osy_acwh_format_t fmt, char *errstr,
                              size_t errstr_size) OSY_MUSTCHECK;

/** @brief Free every field and zero the form. NULL-safe. */
void osy_acwh_form_clear(struct osy_acwh_form *form);

/**
 * @returns the value of the LAST field whose key is exactly the @p n
 *          segments of @p path (PHP: a later duplicate wins), or NULL.
 *          Owned by @p form.
 */
const char *osy_acwh_form_get(const struct osy_acwh_form *form,
                              const char *const *path, size_t n);

/**
 * @brief Read the webhook fields out of a parsed body.
 *
 * "type" is required. A type other than the six optsync uses gives
 * OSY_OK with kind NONE and nothing else checked. For those six,
 * date_time (account-local ISO 8601, converted to UTC), contact[email]
 * and contact[id] are required, and "tag" for the tag events. Lists are
 * collected from every shape seen ("list", "list[]", "list[][id]",
 * "list[0][id]", "list[id]"), duplicates and, when a real list is named,
 * "0" dropped. The bounce type is bounce[type] (or bounce_type) when it
 * says hard or soft, else UNKNOWN for the rules to resolve.
 *
 * @returns OSY_OK; OSY_ERR_INVALID with a reason naming the field
 *          ("date_time: missing").
 */
osy_err_t osy_acwh_extract(const struct osy_acwh_form *form,
                           struct osy_acwh_event *ev, char *errstr,
                           size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Build the ac.event messages of one extracted webhook: one per
 *        named list for (un)subscribe (list "0" when none is named), one
 *        otherwise. Each is finalised (deterministic id). The contact's
 *        tags are left out when they would break the schema (too many,
 *        too long), as docs/events.md allows.
 *
 * @param msgs  room for @p max messages; on success msgs[0..*n) are
 *              filled and owned by the caller (osy_msg_clear each); on
 *              error none is left allocated.
 * @returns OSY_OK; OSY_ERR_INVALID (bad email, contact id, ...) with the
 *          reason; OSY_ERR_TOO_LARGE if @p max is too small; OSY_ERR_NOMEM.
 */
osy_err_t osy_acwh_build(const struct osy_acwh_event *ev, const char *tenant,
                         struct osy_msg *msgs, size_t max, size_t *n,
                         char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief The whole receiver path for one body: parse, extract, build,
 *        encode, partition keys.
 *
 * @param res  zeroed by the caller; filled on OSY_OK (free it with
 *             osy_acwh_result_clear()); type_label is set even on error.
 * @returns OSY_OK (res->kind NONE means "ignored type"); OSY_ERR_INVALID
 *          or OSY_ERR_TOO_LARGE for a malformed body, with the reason for
 *          a 400; OSY_ERR_NOMEM.
 */
osy_err_t osy_acwh_decode(const char *tenant, const char *body, size_t len,
                          osy_acwh_format_t fmt, struct osy_acwh_result *res,
                          char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/** @brief Free the events of @p res and zero it. NULL-safe. */
void osy_acwh_result_clear(struct osy_acwh_result *res);

#endif /* OSY_ACWH_H */
