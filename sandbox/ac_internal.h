/*
 * ac_internal.h - private to the ActiveCampaign simulator (sandbox/ac*.c):
 * the per-tenant account state, the pure helpers (hash map, form encoding,
 * AC date formats, token bucket) and the functions the ac*.c files share.
 */
#ifndef OPTSYNC_SANDBOX_AC_INTERNAL_H
#define OPTSYNC_SANDBOX_AC_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "sandbox.h"

/* ---- pure helpers (ac_util.c; no sandbox core needed) -------------------- */

/** A chained hash map from a NUL-terminated string key (copied) to a
 *  pointer (not owned). Used for contact-by-id, contact-by-email, etc. */
struct ac_map_ent {
        struct ac_map_ent *next;
        uint64_t hash;
        void *val;
        char key[]; /* copied key */
};

struct ac_map {
        struct ac_map_ent **b;
        size_t nb; /* buckets, a power of two (0 before first put) */
        size_t n;  /* entries */
};

/** @returns the value stored for @p key, or NULL. */
void *ac_map_get(const struct ac_map *m, const char *key);
/** @brief Store (or replace) @p key -> @p val. @returns 0, -1 on OOM. */
int ac_map_put(struct ac_map *m, const char *key, void *val);
/** @brief Remove @p key if present. */
void ac_map_del(struct ac_map *m, const char *key);
/** @brief Free the entries (not the values) and zero the map. */
void ac_map_clear(struct ac_map *m);

/** A growing byte buffer (NUL-terminated once anything was appended). */
struct ac_buf {
        char *p;
        size_t len, cap;
        int oom; /* set when an append failed; the content is then cut */
};

void ac_buf_add(struct ac_buf *b, const char *s, size_t n);
void ac_buf_adds(struct ac_buf *b, const char *s);
/** @brief Hand the buffer over (caller frees); @p b is zeroed. */
char *ac_buf_take(struct ac_buf *b);
void ac_buf_free(struct ac_buf *b);

/**
 * @brief Append one "key=value" pair of an application/x-www-form-urlencoded
 *        body the way PHP's http_build_query() writes it: every byte but
 *        [A-Za-z0-9._-] is %XX (so "contact[email]" becomes
 *        "contact%5Bemail%5D"), a space is '+', pairs are joined by '&'.
 */
void ac_form_add(struct ac_buf *b, const char *key, const char *value);

/**
 * @brief Decode a form body into a JSON object of key -> string (the keys
 *        stay flat, e.g. "contact[email]"). A repeated key keeps the last
 *        value, as PHP does. @returns a new object (caller frees) or NULL.
 */
cJSON *ac_form_decode(const char *body, size_t len);

/** @brief Parse an account offset "-06:00" / "+05:30" / "Z" into minutes
 *         east of UTC. @returns 0 on success, -1 if malformed. */
int ac_tz_parse(const char *s, int *minutes);

/** Buffer sizes for the formatters below. */
#define AC_TIME_LEN 32

/** @brief "2024-02-28T07:04:13-06:00": @p ms (UTC) shown at the account
 *         offset @p tz_min, the form of cdate, udate and date_time. */
void ac_fmt_iso(char *out, size_t outsz, int64_t ms, int tz_min);
/** @brief "2024-02-28 07:04:13": the account-local wall clock without an
 *         offset. AC's "*_utc_timestamp" and "*_timestamp" fields carry
 *         exactly this (the same wall time as udate), whatever their name. */
void ac_fmt_wall(char *out, size_t outsz, int64_t ms, int tz_min);
/** @brief "2024-02-28": the account-local date (bounced_date, forDate). */
void ac_fmt_date(char *out, size_t outsz, int64_t ms, int tz_min);

/**
 * @brief Parse a filter time: "YYYY-MM-DD", "YYYY-MM-DD HH:MM:SS" or
 *        "YYYY-MM-DDTHH:MM:SS" (read at the account offset @p tz_min
 *        unless an offset or "Z" follows). @returns 0 and *ms (UTC), or -1.
 */
int ac_parse_time(const char *s, int tz_min, int64_t *ms);

/** A token bucket: @p rate tokens per second, at most @p rate in store. */
struct ac_bucket {
        double tokens;
        int64_t last_ms; /* 0 = untouched (full) */
};

/**
 * @brief Take one token at @p now_ms.
 * @returns 1 if taken; 0 if empty, with *wait_ms (time until a token).
 *          A rate <= 0 means unlimited (always 1).
 */
int ac_bucket_take(struct ac_bucket *b, double rate, int64_t now_ms,
                   int64_t *wait_ms);

/** @returns 1 when @p email looks like an address AC accepts
 *          (local@domain.tld, no spaces). */
int ac_email_valid(const char *email);

/** @brief Lower-case copy (caller frees), or NULL on OOM. */
char *ac_strlower(const char *s);

/** @brief Parse a decimal id ("12" or 12 in JSON). @returns > 0, else 0. */
long ac_id_parse(const char *s);
long ac_json_id(const cJSON *item);

/** @brief strdup that returns "" copies for NULL. */
char *ac_strdup(const char *s);

/* ---- account state (one per tenant) ------------------------------------- */

/** List membership of a contact: AC's "contactList". */
struct ac_membership {
        long id; /* the contactList id */
        long list;
        int status; /* 0 unconfirmed, 1 active, 2 unsubscribed, 3 bounced,
                       91 removed (injected only) */
        int sourceid;
        int64_t sdate, udate;
        long campaign;     /* 0 = none (the unsubscribe's campaign) */
        char *unsubreason; /* NULL = none */
};

struct ac_ctag {
        long id; /* the contactTag (association) id */
        long tag;
        int64_t cdate;
};

struct ac_bouncelog {
        long id;
        long campaign;
        long message;
        long code;
        int hard;
        int64_t tstamp;
};

struct ac_fieldval {
        long id;
        long field;
        char *value;
        int64_t cdate, udate;
};

struct ac_contact {
        long id;
        char idstr[24];
        char *email;
        char *email_lc; /* the by_email key */
        char *first_name, *last_name, *phone;
        int64_t cdate, udate;
        int bounced_hard, bounced_soft; /* counters */
        int64_t bounced_date;           /* 0 = never */
        /* soft bounces in a row, each on a different campaign */
        int soft_streak;
        long soft_campaigns[3];
        char hash[33];
        struct ac_membership *ml;
        size_t nml;
        struct ac_ctag *ct;
        size_t nct;
        struct ac_bouncelog *bl;
        size_t nbl;
        struct ac_fieldval *fv;
        size_t nfv;
};

struct ac_list {
        long id;
        char *name;
        char *stringid;
        int64_t cdate;
};

struct ac_tag {
        long id;
        char *tag;
        char *tag_lc;
        char *description;
        char *type; /* "contact" or "template" */
        int64_t cdate;
        long count; /* contacts carrying it (subscriber_count) */
};

#define AC_MAX_EVENTS 32
#define AC_MAX_SOURCES 4

struct ac_webhook {
        long id;
        char *name, *url;
        char *events[AC_MAX_EVENTS];
        size_t nev;
        char *sources[AC_MAX_SOURCES];
        size_t nsrc;
        long listid; /* 0 = every list */
        int active;  /* 0 after a 410 answer */
        int64_t cdate;
};

struct ac_import {
        char batch_id[40];
        int64_t created_ms, due_ms;
        int applied;
        size_t ncontacts;
        cJSON *contacts; /* the request's contacts, until applied */
        cJSON *success;  /* contact ids (strings), after apply */
        cJSON *failure;  /* emails, after apply */
};

/* Delivery record states (the inspect control shows their names). */
enum ac_dstate {
        AC_D_QUEUED = 0,
        AC_D_HELD,
        AC_D_SENDING,
        AC_D_DELIVERED, /* an HTTP answer came (any status) */
        AC_D_FAILED,    /* no answer: connection error, timeout */
        AC_D_DROPPED,   /* the drop control ate it */
        AC_D_SKIPPED    /* its webhook went inactive while queued */
};

struct ac_delivery {
        uint64_t id;
        long hook;
        char *url;
        char *type; /* event type */
        char *body;
        enum ac_dstate state;
        int http_status;
        char *error;
        int duplicate;
        int64_t queued_ms, done_ms;
};

/** One queued outbound POST (copied, so the thread needs no lock to send). */
struct ac_qitem {
        struct ac_qitem *next;
        uint64_t epoch; /* sbx_ac.epoch when queued; stale after a reset */
        char *tenant;
        uint64_t rec; /* ac_delivery id */
        long hook;
        char *url;
        char *body;
};

#define AC_DELIVERY_KEEP 10000 /* records kept for the inspect control */

struct ac_account {
        char *tenant;
        char **tokens;
        size_t ntok;
        int tz_min;
        /* account-wide rate limit (every key shares it) */
        double rate_per_s;
        int rate_mode; /* 429 or 503 */
        int rate_headers;
        int retry_after_s;    /* 0 = computed from the bucket */
        int unsub_list_array; /* public unsubscribes say list[0][id] */
        struct ac_bucket bucket;
        /* bulk import knobs and sliding windows */
        int64_t import_delay_ms;
        int import_single_per_min, import_multi_per_min;
        size_t import_max_contacts, import_max_bytes;
        int64_t *imp_single, *imp_multi; /* ring of request times */
        size_t imp_single_pos, imp_multi_pos;

        /* contacts, ascending by id */
        struct ac_contact **contacts;
        size_t ncontacts, ccap;
        struct ac_map by_id, by_email;
        struct ac_map ctag_by_id; /* contactTag id -> contact */
        long next_contact, next_ctag, next_clist, next_bounce, next_field;

        struct ac_list *lists;
        size_t nlists;
        struct ac_tag **tags;
        size_t ntags;
        struct ac_map tag_by_id, tag_by_name;
        long next_tag;

        struct ac_webhook **hooks;
        size_t nhooks;
        long next_hook;

        struct ac_import **imports;
        size_t nimports;
        size_t imports_pending; /* not applied yet: skip the scan when 0 */

        struct ac_map exclusions; /* lower-case emails -> (void *)1 */

        /* webhook delivery controls and records */
        int dup_next, drop_next, hold;
        struct ac_qitem *held_head, *held_tail;
        size_t nheld;
        struct ac_delivery *recs;
        size_t nrecs;
        uint64_t first_rec, next_rec;
        size_t pending; /* queued or sending */
};

struct sbx_ac {
        sbx_t *sbx;
        struct ac_account **acc;
        size_t nacc;
        uint64_t epoch;
        /* the delivery thread; qmu is always taken after the global lock */
        pthread_t thr;
        int thr_started;
        pthread_mutex_t qmu;
        pthread_cond_t qcv;
        struct ac_qitem *qhead, *qtail;
        int stop;
        long timeout_ms;
};

/* ---- shared between ac*.c (lock held unless said otherwise) ------------- */

/** One API call in flight. */
struct ac_ctx {
        sbx_t *sbx;
        struct sbx_ac *ac;
        struct ac_account *a;
        const struct sbx_req *req;
        struct sbx_resp *resp;
        int64_t now;
        char base[256]; /* ".../ac/<tenant>/api/3" for links */
};

struct ac_account *ac_account_find(struct sbx_ac *ac, const char *tenant);
void ac_apply_due_imports(struct sbx_ac *ac, struct ac_account *a, int64_t now);

/* contacts (ac_contacts.c) */
struct ac_contact *ac_contact_by_id(struct ac_account *a, long id);
struct ac_contact *ac_contact_by_email(struct ac_account *a, const char *email);
struct ac_contact *ac_contact_create(struct ac_account *a, long id,
                                     const char *email, int64_t now);
void ac_contact_free(struct ac_contact *c);
int ac_contact_delete(struct ac_account *a, struct ac_contact *c);
struct ac_membership *ac_membership_find(struct ac_contact *c, long list);
struct ac_membership *ac_membership_get(struct ac_account *a,
                                        struct ac_contact *c, long list,
                                        int64_t now, int *created);
struct ac_list *ac_list_find(struct ac_account *a, long id);
struct ac_tag *ac_tag_by_id(struct ac_account *a, long id);
struct ac_tag *ac_tag_by_name(struct ac_account *a, const char *name);
struct ac_tag *ac_tag_create(struct ac_account *a, long id, const char *name,
                             const char *description, const char *type,
                             int64_t now);
struct ac_ctag *ac_ctag_find_tag(struct ac_contact *c, long tag);
struct ac_ctag *ac_ctag_add(struct ac_account *a, struct ac_contact *c,
                            long tag, int64_t now);
void ac_ctag_remove(struct ac_account *a, struct ac_contact *c, long ctag_id);

/**
 * @brief Change a contact's status on a list and fire subscribe /
 *        unsubscribe webhooks when it really changes.
 * @param source "public", "admin", "api", "system" or NULL (no webhook).
 * @returns 1 if changed, 0 if it already had that status, -1 on OOM.
 */
int ac_set_status(struct sbx_ac *ac, struct ac_account *a, struct ac_contact *c,
                  long list, int status, const char *source, const char *reason,
                  long campaign, int64_t now);
/** @brief Record a bounce; hard: bounced at once, soft: after 3 in a row
 *         on different campaigns. Fires "bounce" (source system). */
void ac_bounce(struct sbx_ac *ac, struct ac_account *a, struct ac_contact *c,
               int hard, long campaign, long message, long code, int64_t now);

/** JSON views */
/* contact JSON shapes, as AC's different endpoints answer */
enum ac_cshape {
        AC_CJ_SHORT = 0, /* POST /contacts 201, /contact/sync 201 */
        AC_CJ_LIST,      /* GET /contacts items */
        AC_CJ_ONE,       /* GET /contacts/{id} */
        AC_CJ_EMBED      /* "contacts":[...] of POST contactLists/Tags */
};
cJSON *ac_contact_json(const struct ac_ctx *x, const struct ac_contact *c,
                       enum ac_cshape shape);
cJSON *ac_membership_json(const struct ac_ctx *x, const struct ac_contact *c,
                          const struct ac_membership *m, int for_post);
cJSON *ac_tag_json(const struct ac_ctx *x, const struct ac_tag *t);
cJSON *ac_ctag_json(const struct ac_ctx *x, const struct ac_contact *c,
                    const struct ac_ctag *t, int full);
cJSON *ac_dump_contact(const struct ac_account *a, const struct ac_contact *c);

/** Response helpers */
void ac_reply(struct ac_ctx *x, int status, cJSON *json);
void ac_reply_message(struct ac_ctx *x, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ac_reply_empty(struct ac_ctx *x, int status);
void ac_reply_errors(struct ac_ctx *x, int status, const char *title,
                     const char *code, const char *pointer);
cJSON *ac_str_id(long id);
cJSON *ac_body_json(const struct ac_ctx *x);
const char *ac_json_str(const cJSON *obj, const char *key);
cJSON *ac_meta_total(size_t total);
void ac_add_iso(cJSON *o, const char *key, int64_t ms, int tz_min);
void ac_add_wall(cJSON *o, const char *key, int64_t ms, int tz_min);
void ac_add_link(const struct ac_ctx *x, cJSON *links, const char *key,
                 const char *coll, long id, const char *sub);
size_t ac_query_size(const struct ac_ctx *x, const char *key, size_t dflt,
                     size_t max);

/* API handlers (routing in ac.c) */
void ac_api_contacts(struct ac_ctx *x, const char *const *seg, size_t nseg);
void ac_api_contact_sync(struct ac_ctx *x);
void ac_api_contact_lists(struct ac_ctx *x, const char *const *seg,
                          size_t nseg);
void ac_api_lists(struct ac_ctx *x, const char *const *seg, size_t nseg);
void ac_api_tags(struct ac_ctx *x, const char *const *seg, size_t nseg);
void ac_api_contact_tags(struct ac_ctx *x, const char *const *seg, size_t nseg);
void ac_api_webhooks(struct ac_ctx *x, const char *const *seg, size_t nseg);
void ac_api_webhook_events(struct ac_ctx *x);
void ac_api_import(struct ac_ctx *x, const char *const *seg, size_t nseg);

/* webhooks (ac_webhooks.c) */
int ac_event_known(const char *name);
int ac_source_known(const char *name);
struct ac_webhook *ac_hook_find(struct ac_account *a, long id);
void ac_hook_free(struct ac_webhook *h);
/** @brief Build (lock held) a hook from a JSON webhook object; @p err gets
 *         the offending field. @returns NULL on invalid input. */
struct ac_webhook *ac_hook_from_json(const cJSON *o, long id, int64_t now,
                                     const char **err);
cJSON *ac_hook_json(const struct ac_ctx *x, const struct ac_webhook *h);

/** An extra top-level form field of an event ("tag", "campaign[id]"). */
struct ac_kv {
        const char *key;
        const char *value;
};
/**
 * @brief Fire one AC event: every active webhook of @p a whose events,
 *        sources and list filter match gets a form-urlencoded POST queued.
 * @param list the event's list id (0 = account-level).
 * @returns how many deliveries were queued (or held / dropped).
 */
int ac_fire(struct sbx_ac *ac, struct ac_account *a, const char *type,
            const char *source, const struct ac_contact *c, long list,
            const struct ac_kv *extra, size_t nextra, int64_t now);
int ac_delivery_start(struct sbx_ac *ac);
void ac_delivery_stop(struct sbx_ac *ac);
/** @brief Drop every queued item (reset); lock held. */
void ac_delivery_clear(struct sbx_ac *ac);
void ac_account_deliveries_free(struct ac_account *a);
/** Scenario controls on the delivery queue (ac_webhooks.c). */
void ac_control_webhooks(struct ac_ctx *x, const char *const *seg, size_t nseg);

/* scenario controls (ac_control.c): /sandbox/ac/<tenant>/... */
void ac_control_dispatch(struct ac_ctx *x, const char *const *seg, size_t nseg);
/** @returns the contact a control body names ("contact" id or "email"). */
struct ac_contact *ac_control_contact(struct ac_ctx *x, const cJSON *body);
void ac_control_reply(struct ac_ctx *x, int status, const char *error);

/* bulk import (ac_import.c) */
void ac_import_free(struct ac_import *im);
/** @brief Apply every queued batch now, whatever the clock says. */
void ac_import_apply_all(struct ac_account *a, int64_t now);

#endif /* OPTSYNC_SANDBOX_AC_INTERNAL_H */
