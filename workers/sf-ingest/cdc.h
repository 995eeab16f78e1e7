/*
 * cdc.h - the Bayeux (CometD) messages of Salesforce Change Data Capture:
 * requests built for handshake/subscribe/connect, and a strict, crash-free
 * parser of the server's answers (meta replies and change events).
 */
#ifndef OPTSYNC_SF_INGEST_CDC_H
#define OPTSYNC_SF_INGEST_CDC_H

#include <stddef.h>
#include <stdint.h>

#include "optsync/envelope.h"
#include "optsync/err.h"

/** The two channels sf-ingest subscribes to (case-sensitive). */
#define OSY_SFI_CHANNEL_CONTACT "/data/ContactChangeEvent"
#define OSY_SFI_CHANNEL_LEAD "/data/LeadChangeEvent"

/** Replay presets of the replay extension. */
#define OSY_SFI_REPLAY_TIP "-1"      /**< only new events */
#define OSY_SFI_REPLAY_EARLIEST "-2" /**< every retained event */

/** Bounds of what one event may carry; more is a malformed event. */
#define OSY_SFI_MAX_RECORD_IDS 10000
#define OSY_SFI_MAX_FIELDS 2000
#define OSY_SFI_REPLAY_MAX 128 /**< as payload.replay_id in docs/events.md */
#define OSY_SFI_ID_BUFSZ 19    /**< an 18-character SF id + NUL */

/** Bayeux "advice.reconnect". */
typedef enum {
        OSY_SFI_RECONNECT_UNSET = 0, /**< no advice given */
        OSY_SFI_RECONNECT_RETRY,     /**< "retry": connect again */
        OSY_SFI_RECONNECT_HANDSHAKE, /**< "handshake": new session */
        OSY_SFI_RECONNECT_NONE,      /**< "none": this session is over */
        OSY_SFI_RECONNECT_OTHER      /**< a value we do not know */
} osy_sfi_reconnect_t;

/** CDC ChangeEventHeader.changeType. */
typedef enum {
        OSY_SFI_CT_UNKNOWN = 0,
        OSY_SFI_CT_CREATE,
        OSY_SFI_CT_UPDATE,
        OSY_SFI_CT_DELETE,
        OSY_SFI_CT_UNDELETE,
        OSY_SFI_CT_GAP_CREATE,
        OSY_SFI_CT_GAP_UPDATE,
        OSY_SFI_CT_GAP_DELETE,
        OSY_SFI_CT_GAP_UNDELETE,
        OSY_SFI_CT_GAP_OVERFLOW,
        OSY_SFI_CT__CNT
} osy_sfi_change_type_t;

/** Advice attached to a meta reply. */
struct osy_sfi_advice {
        osy_sfi_reconnect_t reconnect;
        int64_t interval_ms; /**< -1: not given */
        int64_t timeout_ms;  /**< -1: not given */
};

/** One /meta/... reply. Strings are owned (NULL when absent). */
struct osy_sfi_meta {
        char *channel;        /**< "/meta/handshake", "/meta/connect", ... */
        int successful;       /**< 1 only for "successful": true */
        char *error;          /**< "403::Unknown client", ... */
        char *client_id;      /**< handshake: the session's clientId */
        char *subscription;   /**< subscribe: the channel it is about */
        char *failure_reason; /**< ext.sfdc.failureReason */
        struct osy_sfi_advice advice;
};

/**
 * One change event. Everything that could be read is kept even when the
 * event is malformed (@c error set), so the caller can still advance past
 * its replay id, re-read its records, and log something precise.
 */
struct osy_sfi_event {
        char *channel;          /**< owned */
        char *replay_id;        /**< decimal text, owned; NULL when missing */
        char *error;            /**< owned; NULL: well-formed */
        osy_sf_object_t object; /**< OSY_SF_OBJ_NONE: another entity */
        char *entity_name;      /**< owned, as received */
        osy_sfi_change_type_t change_type;
        char *change_type_name;               /**< owned, as received */
        char (*record_ids)[OSY_SFI_ID_BUFSZ]; /**< owned array */
        size_t record_cnt;
        char **changed_fields; /**< owned */
        size_t changed_cnt;
        char *change_origin;   /**< owned; NULL when absent or "" */
        char *transaction_key; /**< owned */
        int64_t commit_ts;     /**< ms since the epoch; -1 if absent */
        /* Body fields sf-ingest reads (absent: UNSET / NULL). */
        osy_tri_t opt_out;          /**< HasOptedOutOfEmail */
        osy_tri_t is_converted;     /**< IsConverted (Lead) */
        char *converted_contact_id; /**< ConvertedContactId */
        char *email;                /**< Email as sent (not normalised) */
        int email_present;          /**< 1: Email was in the body (may be
                                         null: then email is NULL) */
};

/** A whole answer: its meta replies and its events, in arrival order. */
struct osy_sfi_reply {
        struct osy_sfi_meta *metas;
        size_t meta_cnt;
        struct osy_sfi_event *events;
        size_t event_cnt;
        size_t skipped; /**< array items that were not objects or had no
                             channel: counted, not kept */
};

/** @returns the wire name ("UPDATE", "GAP_OVERFLOW", ...) or "UNKNOWN". */
const char *osy_sfi_change_type2str(osy_sfi_change_type_t t);

/** @returns 1 for the GAP_* types. */
int osy_sfi_change_type_is_gap(osy_sfi_change_type_t t);

/** @returns 1 if @p s is a 15- or 18-character SF id ([A-Za-z0-9]). */
int osy_sfi_id_valid(const char *s);

/**
 * @brief Parse one CometD answer (a JSON array of messages). Never
 *        crashes, whatever the bytes.
 *
 * @param out filled on OSY_OK (caller frees it with osy_sfi_reply_clear());
 *            left zeroed on error.
 * @returns OSY_OK; OSY_ERR_INVALID when the body is not a JSON array (the
 *          detail says why; a 503 HTML page lands here); OSY_ERR_NOMEM.
 */
osy_err_t osy_sfi_reply_parse(const char *buf, size_t len,
                              struct osy_sfi_reply *out, char *errstr,
                              size_t errstr_size) OSY_MUSTCHECK;

/** @brief Free everything @p r holds and zero it. NULL-safe. */
void osy_sfi_reply_clear(struct osy_sfi_reply *r);

/** @returns the first meta reply on @p channel, or NULL. */
const struct osy_sfi_meta *osy_sfi_reply_meta(const struct osy_sfi_reply *r,
                                              const char *channel);

/**
 * @returns 1 if a meta error says the replay id was refused
 *          ("400::The replayId {N} you provided was invalid...").
 */
int osy_sfi_error_is_invalid_replay(const char *error);

/** @returns 1 if @p error is "401::..." (the session's token is dead),
 *           looking into failure_reason too. */
int osy_sfi_meta_is_auth_error(const struct osy_sfi_meta *m);

/**
 * @returns 1 if @p change_origin names @p client in its "client=" part
 *          ("com/salesforce/api/rest/59.0;client=optsync"): our own
 *          write coming back (an echo).
 */
int osy_sfi_origin_is_client(const char *change_origin, const char *client);

/* ---- requests (each a malloc()ed JSON array the caller frees) ---------- */

/** @brief The /meta/handshake request with the replay extension. */
char *osy_sfi_req_handshake(uint64_t msg_id);

/**
 * @brief One /meta/subscribe message per channel, in one array.
 * @param replay the replay id per channel: a stored id, "-1" or "-2".
 * @returns NULL on NOMEM or a replay id that is not an integer.
 */
char *osy_sfi_req_subscribe(const char *client_id, const char *const *channels,
                            const char *const *replay, size_t n,
                            uint64_t *msg_id);

/** @brief The /meta/connect (long-polling) request. */
char *osy_sfi_req_connect(const char *client_id, uint64_t msg_id);

/** @brief The /meta/disconnect request. */
char *osy_sfi_req_disconnect(const char *client_id, uint64_t msg_id);

#endif /* OPTSYNC_SF_INGEST_CDC_H */
