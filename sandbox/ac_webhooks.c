/*
 * ac_webhooks.c - AC webhooks: the /webhooks API, building an event's
 * form-urlencoded body, the delivery queue and its thread (never retried; a
 * 410 deactivates the hook), and the test controls that duplicate, drop,
 * hold, reorder and list deliveries.
 */
#include "ac_internal.h"

#include "optsync/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The 25 names GET /webhook/events lists. */
static const char *const events_listed[] = {
    "bounce",
    "click",
    "contact_tag_added",
    "contact_tag_removed",
    "deal_add",
    "deal_note_add",
    "deal_pipeline_add",
    "deal_stage_add",
    "deal_task_add",
    "deal_task_complete",
    "deal_tasktype_add",
    "deal_update",
    "forward",
    "list_add",
    "open",
    "reply",
    "sent",
    "share",
    "sms_reply",
    "sms_sent",
    "sms_unsub",
    "subscribe",
    "subscriber_note",
    "unsubscribe",
    "update",
};

/* Also accepted at registration: named in AC's listid note only. */
static const char *const events_extra[] = {
    "contact_task_add",       "account_add",
    "account_update",         "account_contact_add",
    "account_contact_update",
};

static const char *const sources_known[] = {"public", "admin", "api", "system"};

#define NELEM(a) (sizeof(a) / sizeof(*(a)))

/* Registration accepts the 25 listed events and the extra names. */
int ac_event_known(const char *name)
{
        for (size_t i = 0; i < NELEM(events_listed); i++)
                if (!strcmp(events_listed[i], name))
                        return 1;
        for (size_t i = 0; i < NELEM(events_extra); i++)
                if (!strcmp(events_extra[i], name))
                        return 1;
        return 0;
}

/* public, admin, api, system */
int ac_source_known(const char *name)
{
        for (size_t i = 0; i < NELEM(sources_known); i++)
                if (!strcmp(sources_known[i], name))
                        return 1;
        return 0;
}

/* Events on which a webhook's listid has no effect (AC's note). */
static int list_exempt(const char *type)
{
        static const char *const exempt[] = {
            "subscriber_note", "contact_tag_added", "contact_tag_removed",
            "contact_task_add", "list_add"};
        for (size_t i = 0; i < NELEM(exempt); i++)
                if (!strcmp(exempt[i], type))
                        return 1;
        return !strncmp(type, "sms_", 4) || !strncmp(type, "deal_", 5) ||
               !strncmp(type, "account_", 8);
}

/* ---- hooks --------------------------------------------------------------- */

/* Webhooks are few per account: a scan. */
struct ac_webhook *ac_hook_find(struct ac_account *a, long id)
{
        for (size_t i = 0; i < a->nhooks; i++)
                if (a->hooks[i]->id == id)
                        return a->hooks[i];
        return NULL;
}

/* NULL-safe. */
void ac_hook_free(struct ac_webhook *h)
{
        if (!h)
                return;
        free(h->name);
        free(h->url);
        for (size_t i = 0; i < h->nev; i++)
                free(h->events[i]);
        for (size_t i = 0; i < h->nsrc; i++)
                free(h->sources[i]);
        free(h);
}

/* Fill @p dst from a JSON array of known names; @returns 0 or -1. */
static int names_from_json(const cJSON *arr, char **dst, size_t *n, size_t max,
                           int (*known)(const char *))
{
        if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1)
                return -1;
        const cJSON *e;
        cJSON_ArrayForEach(e, arr)
        {
                if (!cJSON_IsString(e) || !known(e->valuestring))
                        return -1;
                int dup = 0;
                for (size_t i = 0; i < *n; i++)
                        dup |= !strcmp(dst[i], e->valuestring);
                if (dup)
                        continue;
                if (*n >= max)
                        return -1;
                dst[*n] = ac_strdup(e->valuestring);
                if (!dst[*n])
                        return -1;
                (*n)++;
        }
        return 0;
}

/* http(s) only; any host and port (AC: HTTPS on 443 only). */
static int url_ok(const char *url)
{
        return url &&
               (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8)) &&
               strlen(url) < 2048;
}

/* listid: "0", 0, "3", 3 or absent (0). @returns -1 if malformed. */
static long listid_from_json(const cJSON *v)
{
        if (!v || cJSON_IsNull(v))
                return 0;
        if ((cJSON_IsString(v) && !strcmp(v->valuestring, "0")) ||
            (cJSON_IsNumber(v) && v->valuedouble == 0))
                return 0;
        long id = ac_json_id(v);
        return id ? id : -1;
}

/* See ac_internal.h: name, url, events and sources are required. */
struct ac_webhook *ac_hook_from_json(const cJSON *o, long id, int64_t now,
                                     const char **err)
{
        struct ac_webhook *h = calloc(1, sizeof(*h));
        if (!h) {
                *err = "memory";
                return NULL;
        }
        h->id            = id;
        h->active        = 1;
        h->cdate         = now;
        const char *name = ac_json_str(o, "name");
        const char *url  = ac_json_str(o, "url");
        if (!name || !*name) {
                *err = "name";
                goto bad;
        }
        if (!url_ok(url)) {
                *err = "url";
                goto bad;
        }
        if (names_from_json(cJSON_GetObjectItemCaseSensitive(o, "events"),
                            h->events, &h->nev, AC_MAX_EVENTS,
                            ac_event_known) != 0) {
                *err = "events";
                goto bad;
        }
        if (names_from_json(cJSON_GetObjectItemCaseSensitive(o, "sources"),
                            h->sources, &h->nsrc, AC_MAX_SOURCES,
                            ac_source_known) != 0) {
                *err = "sources";
                goto bad;
        }
        h->listid =
            listid_from_json(cJSON_GetObjectItemCaseSensitive(o, "listid"));
        if (h->listid < 0) {
                *err = "listid";
                goto bad;
        }
        h->name = ac_strdup(name);
        h->url  = ac_strdup(url);
        if (!h->name || !h->url) {
                *err = "memory";
                goto bad;
        }
        return h;
bad:
        ac_hook_free(h);
        return NULL;
}

/* A webhook as AC shows it (listid a string, links an empty array). */
cJSON *ac_hook_json(const struct ac_ctx *x, const struct ac_webhook *h)
{
        cJSON *o = cJSON_CreateObject();
        ac_add_iso(o, "cdate", h->cdate, x->a->tz_min);
        cJSON_AddItemToObject(o, "listid", ac_str_id(h->listid));
        cJSON_AddStringToObject(o, "name", h->name);
        cJSON_AddStringToObject(o, "url", h->url);
        cJSON *ev = cJSON_AddArrayToObject(o, "events");
        for (size_t i = 0; i < h->nev; i++)
                cJSON_AddItemToArray(ev, cJSON_CreateString(h->events[i]));
        cJSON *src = cJSON_AddArrayToObject(o, "sources");
        for (size_t i = 0; i < h->nsrc; i++)
                cJSON_AddItemToArray(src, cJSON_CreateString(h->sources[i]));
        cJSON_AddArrayToObject(o, "links");
        cJSON_AddItemToObject(o, "id", ac_str_id(h->id));
        return o;
}

/* ---- the /webhooks API --------------------------------------------------- */

/* {"webhook":{...}} with @p status. */
static void reply_hook(struct ac_ctx *x, int status, const struct ac_webhook *h)
{
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "webhook", ac_hook_json(x, h));
        ac_reply(x, status, o);
}

/* POST /webhooks: a bad field is a 422 naming it. */
static void hook_create(struct ac_ctx *x)
{
        cJSON *body     = ac_body_json(x);
        const cJSON *w  = cJSON_GetObjectItemCaseSensitive(body, "webhook");
        const char *bad = "webhook";
        struct ac_webhook *h =
            cJSON_IsObject(w)
                ? ac_hook_from_json(w, x->a->next_hook, x->now, &bad)
                : NULL;
        struct ac_webhook **arr =
            h ? realloc(x->a->hooks, (x->a->nhooks + 1) * sizeof(*arr)) : NULL;
        if (!h || !arr) {
                char title[96], ptr[96];
                snprintf(title, sizeof(title), "The %s field is invalid.", bad);
                snprintf(ptr, sizeof(ptr), "/data/attributes/%s", bad);
                ac_reply_errors(x, 422, title, "field_invalid", ptr);
                ac_hook_free(h);
                goto out;
        }
        x->a->hooks                 = arr;
        x->a->hooks[x->a->nhooks++] = h;
        x->a->next_hook++;
        reply_hook(x, 201, h);
out:
        cJSON_Delete(body);
}

/* PUT merges the given fields into the hook; AC answers a bad one with a
 * bare 400 {}. A hook made inactive by a 410 stays inactive. */
static void hook_update(struct ac_ctx *x, struct ac_webhook *h)
{
        cJSON *body    = ac_body_json(x);
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(body, "webhook");
        /* validate the merged result with the same code as POST */
        cJSON *merged = cJSON_IsObject(w) ? ac_hook_json(x, h) : NULL;
        const cJSON *f;
        cJSON_ArrayForEach(f, w)
        {
                if (f->string)
                        cJSON_ReplaceItemInObjectCaseSensitive(
                            merged, f->string, cJSON_Duplicate(f, 1));
        }
        const char *bad = NULL;
        struct ac_webhook *nh =
            merged ? ac_hook_from_json(merged, h->id, h->cdate, &bad) : NULL;
        cJSON_Delete(merged);
        if (!nh) {
                ac_reply_empty(x, 400);
                goto out;
        }
        nh->active = h->active;
        for (size_t i = 0; i < x->a->nhooks; i++)
                if (x->a->hooks[i] == h)
                        x->a->hooks[i] = nh;
        ac_hook_free(h);
        reply_hook(x, 200, nh);
out:
        cJSON_Delete(body);
}

/* GET /webhooks with filters[name|url|listid] (exact). */
static void hooks_list(struct ac_ctx *x)
{
        const char *fname = sbx_req_query(x->req, "filters[name]");
        const char *furl  = sbx_req_query(x->req, "filters[url]");
        const char *flist = sbx_req_query(x->req, "filters[listid]");
        size_t limit      = ac_query_size(x, "limit", 20, 100);
        size_t offset     = ac_query_size(x, "offset", 0, 0);
        if (!limit)
                limit = 20;
        cJSON *o     = cJSON_CreateObject();
        cJSON *arr   = cJSON_AddArrayToObject(o, "webhooks");
        size_t total = 0;
        for (size_t i = 0; i < x->a->nhooks; i++) {
                const struct ac_webhook *h = x->a->hooks[i];
                if ((fname && strcmp(fname, h->name)) ||
                    (furl && strcmp(furl, h->url)) ||
                    (flist && strtol(flist, NULL, 10) != h->listid))
                        continue;
                if (total >= offset && total < offset + limit)
                        cJSON_AddItemToArray(arr, ac_hook_json(x, h));
                total++;
        }
        cJSON_AddItemToObject(o, "meta", ac_meta_total(total));
        ac_reply(x, 200, o);
}

/* /webhooks, /webhooks/{id} */
void ac_api_webhooks(struct ac_ctx *x, const char *const *seg, size_t nseg)
{
        const char *m = x->req->method;
        if (nseg == 0) {
                if (!strcmp(m, "GET"))
                        hooks_list(x);
                else if (!strcmp(m, "POST"))
                        hook_create(x);
                return;
        }
        if (nseg != 1)
                return;
        struct ac_webhook *h = ac_hook_find(x->a, ac_id_parse(seg[0]));
        if (!h) {
                ac_reply_message(
                    x, 404, "No Result found for Webhook with id %s", seg[0]);
                return;
        }
        if (!strcmp(m, "GET")) {
                reply_hook(x, 200, h);
        } else if (!strcmp(m, "PUT")) {
                hook_update(x, h);
        } else if (!strcmp(m, "DELETE")) {
                for (size_t i = 0; i < x->a->nhooks; i++) {
                        if (x->a->hooks[i] != h)
                                continue;
                        memmove(&x->a->hooks[i], &x->a->hooks[i + 1],
                                (x->a->nhooks - i - 1) * sizeof(*x->a->hooks));
                        x->a->nhooks--;
                        break;
                }
                ac_hook_free(h);
                ac_reply_empty(x, 200);
        }
}

/* GET /webhook/events */
void ac_api_webhook_events(struct ac_ctx *x)
{
        if (strcmp(x->req->method, "GET"))
                return;
        cJSON *o   = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(o, "webhookEvents");
        for (size_t i = 0; i < NELEM(events_listed); i++)
                cJSON_AddItemToArray(arr, cJSON_CreateString(events_listed[i]));
        cJSON *meta = cJSON_AddObjectToObject(o, "meta");
        /* a number here, unlike every other meta.total */
        cJSON_AddNumberToObject(meta, "total", (double)NELEM(events_listed));
        ac_reply(x, 200, o);
}

/* ---- event bodies -------------------------------------------------------- */

/* The form body of one event, PHP $_POST style with bracketed keys. */
static char *event_body(const struct ac_account *a, const char *type,
                        const char *source, const struct ac_contact *c,
                        long list, const struct ac_kv *extra, size_t nextra,
                        int64_t now)
{
        struct ac_buf b = {0};
        char buf[AC_TIME_LEN];
        /* common fields first, then the event's own, then the contact */
        ac_form_add(&b, "type", type);
        ac_fmt_iso(buf, sizeof(buf), now, a->tz_min);
        ac_form_add(&b, "date_time", buf);
        ac_form_add(&b, "initiated_from", source);
        ac_form_add(&b, "initiated_by", source);
        snprintf(buf, sizeof(buf), "%ld", list);
        /* an extra "list" replaces the event's list in the body (the
         * list[][id] form of public unsubscribes says list=0) */
        const char *lv = buf;
        for (size_t i = 0; i < nextra; i++)
                if (!strcmp(extra[i].key, "list"))
                        lv = extra[i].value;
        ac_form_add(&b, "list", lv);
        for (size_t i = 0; i < nextra; i++)
                if (strcmp(extra[i].key, "list"))
                        ac_form_add(&b, extra[i].key, extra[i].value);
        if (c) {
                ac_form_add(&b, "contact[id]", c->idstr);
                ac_form_add(&b, "contact[email]", c->email);
                ac_form_add(&b, "contact[first_name]", c->first_name);
                ac_form_add(&b, "contact[last_name]", c->last_name);
                ac_form_add(&b, "contact[phone]", c->phone);
                ac_form_add(&b, "contact[ip]", "0.0.0.0");
                /* one string, names joined by comma and space */
                struct ac_buf tags = {0};
                for (size_t i = 0; i < c->nct; i++) {
                        const struct ac_tag *t =
                            ac_tag_by_id((struct ac_account *)a, c->ct[i].tag);
                        if (!t)
                                continue;
                        if (tags.len)
                                ac_buf_adds(&tags, ", ");
                        ac_buf_adds(&tags, t->tag);
                }
                ac_form_add(&b, "contact[tags]", tags.p ? tags.p : "");
                ac_buf_free(&tags);
                ac_form_add(&b, "contact[orgname]", "");
                ac_form_add(&b, "contact[customer_acct_name]", "");
                for (size_t i = 0; i < c->nfv; i++) {
                        char key[64];
                        snprintf(key, sizeof(key), "contact[fields][%ld]",
                                 c->fv[i].field);
                        ac_form_add(&b, key, c->fv[i].value);
                }
        }
        ac_form_add(&b, "orgname", "");
        ac_form_add(&b, "customer_acct_name", "");
        ac_form_add(&b, "customer_acct_id", "0");
        if (b.oom) {
                ac_buf_free(&b);
                return NULL;
        }
        return ac_buf_take(&b);
}

/* @returns 1 if @p name is among the @p n strings of @p arr. */
static int has_name(char *const *arr, size_t n, const char *name)
{
        for (size_t i = 0; i < n; i++)
                if (!strcmp(arr[i], name))
                        return 1;
        return 0;
}

/* Does @p h want this event? Active, event and source listed, list
 * filter passed (see list_exempt for where it does not apply). */
static int hook_matches(const struct ac_webhook *h, const char *type,
                        const char *source, const struct ac_contact *c,
                        long list)
{
        if (!h->active || !has_name(h->events, h->nev, type) ||
            !has_name(h->sources, h->nsrc, source))
                return 0;
        /* listid 0: every list */
        if (!h->listid || list_exempt(type))
                return 1;
        if (list)
                return list == h->listid;
        /* an account-level event (update, bounce) reaches a list's hook
         * when the contact is on that list */
        for (size_t i = 0; c && i < c->nml; i++)
                if (c->ml[i].list == h->listid)
                        return 1;
        return 0;
}

/* ---- delivery records ---------------------------------------------------- */

/* The state names the inspect control shows. */
static const char *dstate_name(enum ac_dstate s)
{
        switch (s) {
        case AC_D_QUEUED:
                return "queued";
        case AC_D_HELD:
                return "held";
        case AC_D_SENDING:
                return "sending";
        case AC_D_DELIVERED:
                return "delivered";
        case AC_D_FAILED:
                return "failed";
        case AC_D_DROPPED:
                return "dropped";
        case AC_D_SKIPPED:
                return "skipped";
        }
        return "?";
}

/* Free what a delivery record holds. */
static void rec_clear(struct ac_delivery *r)
{
        free(r->url);
        free(r->type);
        free(r->body);
        free(r->error);
        memset(r, 0, sizeof(*r));
}

/* A record by id, O(1): ids are consecutive from first_rec. */
static struct ac_delivery *rec_get(struct ac_account *a, uint64_t id)
{
        if (id < a->first_rec || id - a->first_rec >= a->nrecs)
                return NULL;
        return &a->recs[id - a->first_rec];
}

/* A new record; the oldest half is forgotten past AC_DELIVERY_KEEP. */
static struct ac_delivery *rec_new(struct ac_account *a)
{
        if (a->nrecs == AC_DELIVERY_KEEP) {
                size_t half = AC_DELIVERY_KEEP / 2;
                for (size_t i = 0; i < half; i++)
                        rec_clear(&a->recs[i]);
                memmove(a->recs, a->recs + half,
                        (a->nrecs - half) * sizeof(*a->recs));
                a->nrecs -= half;
                a->first_rec += half;
        }
        if (!a->recs) {
                a->recs = calloc(AC_DELIVERY_KEEP, sizeof(*a->recs));
                if (!a->recs)
                        return NULL;
        }
        struct ac_delivery *r = &a->recs[a->nrecs++];
        memset(r, 0, sizeof(*r));
        r->id = a->next_rec++;
        return r;
}

/* NULL-safe. */
static void qitem_free(struct ac_qitem *q)
{
        if (!q)
                return;
        free(q->tenant);
        free(q->url);
        free(q->body);
        free(q);
}

/* Records and held items of an account (its queued items live in the
 * global queue and are dropped by ac_delivery_clear or go stale). */
void ac_account_deliveries_free(struct ac_account *a)
{
        for (size_t i = 0; i < a->nrecs; i++)
                rec_clear(&a->recs[i]);
        free(a->recs);
        a->recs            = NULL;
        a->nrecs           = 0;
        struct ac_qitem *q = a->held_head, *next;
        for (; q; q = next) {
                next = q->next;
                qitem_free(q);
        }
        a->held_head = a->held_tail = NULL;
        a->nheld                    = 0;
}

/* Hand items to the delivery thread (lock held; qmu nests inside). */
static void queue_push(struct sbx_ac *ac, struct ac_qitem *first,
                       struct ac_qitem *last)
{
        pthread_mutex_lock(&ac->qmu);
        if (ac->qtail)
                ac->qtail->next = first;
        else
                ac->qhead = first;
        ac->qtail = last;
        pthread_cond_signal(&ac->qcv);
        pthread_mutex_unlock(&ac->qmu);
}

/* Record, then queue (or hold, or drop) one delivery of @p body. */
static void enqueue(struct sbx_ac *ac, struct ac_account *a,
                    const struct ac_webhook *h, const char *type,
                    const char *body, int duplicate, int64_t now)
{
        /* every delivery gets a record first, whatever becomes of it */
        struct ac_delivery *r = rec_new(a);
        if (!r)
                return;
        r->hook      = h->id;
        r->url       = ac_strdup(h->url);
        r->type      = ac_strdup(type);
        r->body      = ac_strdup(body);
        r->duplicate = duplicate;
        r->queued_ms = now;
        /* the drop control: recorded as dropped, never sent */
        if (!duplicate && a->drop_next > 0) {
                a->drop_next--;
                r->state   = AC_D_DROPPED;
                r->done_ms = now;
                return;
        }
        struct ac_qitem *q = calloc(1, sizeof(*q));
        if (q) {
                q->epoch  = ac->epoch;
                q->tenant = ac_strdup(a->tenant);
                q->rec    = r->id;
                q->hook   = h->id;
                q->url    = ac_strdup(h->url);
                q->body   = ac_strdup(body);
        }
        if (!q || !q->tenant || !q->url || !q->body) {
                qitem_free(q);
                r->state = AC_D_FAILED;
                r->error = ac_strdup("out of memory");
                return;
        }
        /* held items wait on the account until the release control;
         * they are not "pending", so a flush does not wait for them */
        if (a->hold) {
                r->state = AC_D_HELD;
                if (a->held_tail)
                        a->held_tail->next = q;
                else
                        a->held_head = q;
                a->held_tail = q;
                a->nheld++;
        } else {
                r->state = AC_D_QUEUED;
                a->pending++;
                queue_push(ac, q, q);
        }
        /* the duplicate control: the same body once more, right after */
        if (!duplicate && a->dup_next > 0) {
                a->dup_next--;
                enqueue(ac, a, h, type, body, 1, now);
        }
}

/* See ac_internal.h. The body is built once per event, so every
 * matching hook gets the same bytes (and the same date_time). */
int ac_fire(struct sbx_ac *ac, struct ac_account *a, const char *type,
            const char *source, const struct ac_contact *c, long list,
            const struct ac_kv *extra, size_t nextra, int64_t now)
{
        if (!source)
                return 0;
        char *body = NULL;
        int n      = 0;
        for (size_t i = 0; i < a->nhooks; i++) {
                const struct ac_webhook *h = a->hooks[i];
                if (!hook_matches(h, type, source, c, list))
                        continue;
                /* built once, on the first match: same body for every hook */
                if (!body)
                        body = event_body(a, type, source, c, list, extra,
                                          nextra, now);
                if (!body)
                        break;
                enqueue(ac, a, h, type, body, 0, now);
                n++;
        }
        free(body);
        return n;
}

/* ---- the delivery thread ------------------------------------------------- */

/* Monotonic ms for real-time waits (the flush control). */
static int64_t mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Find the live account and record of @p q, or NULL when a reset made them
 * stale (lock held). */
static struct ac_account *item_account(struct sbx_ac *ac,
                                       const struct ac_qitem *q)
{
        if (q->epoch != ac->epoch)
                return NULL;
        return ac_account_find(ac, q->tenant);
}

/* Before sending: is the hook still active? Marks the record "sending". */
static int item_begin(struct sbx_ac *ac, const struct ac_qitem *q)
{
        int ok = 0;
        sbx_lock(ac->sbx);
        struct ac_account *a = item_account(ac, q);
        if (a) {
                struct ac_webhook *h  = ac_hook_find(a, q->hook);
                struct ac_delivery *r = rec_get(a, q->rec);
                ok                    = h && h->active;
                if (r)
                        r->state = ok ? AC_D_SENDING : AC_D_SKIPPED;
                if (!ok) {
                        if (a->pending)
                                a->pending--;
                        sbx_notify(ac->sbx);
                }
        }
        sbx_unlock(ac->sbx);
        return ok;
}

/* After sending: record the answer; a 410 deactivates the hook. */
static void item_done(struct sbx_ac *ac, const struct ac_qitem *q, int status,
                      const char *error)
{
        sbx_lock(ac->sbx);
        struct ac_account *a = item_account(ac, q);
        if (a) {
                struct ac_delivery *r = rec_get(a, q->rec);
                if (r) {
                        r->state       = status ? AC_D_DELIVERED : AC_D_FAILED;
                        r->http_status = status;
                        r->done_ms     = sbx_now_ms(ac->sbx);
                        if (error)
                                r->error = ac_strdup(error);
                }
                /* 410 Gone: AC turns the webhook off for good */
                struct ac_webhook *h = ac_hook_find(a, q->hook);
                if (status == 410 && h)
                        h->active = 0;
                if (a->pending)
                        a->pending--;
        }
        sbx_notify(ac->sbx);
        sbx_unlock(ac->sbx);
}

/* The delivery thread: pop, check, POST (lock not held), record. One
 * at a time, so deliveries leave in queue order. */
static void *delivery_main(void *arg)
{
        struct sbx_ac *ac       = arg;
        osy_http_client_t *http = NULL;
        char errstr[OSY_ERRSTR_SIZE];
        struct osy_http_opts o = {
            .connect_timeout_ms = ac->timeout_ms,
            .timeout_ms         = ac->timeout_ms,
            .max_body           = 64 * 1024,
            .user_agent         = "ActiveCampaign-Webhook/1.0 (sandbox)",
        };
        if (osy_http_client_new(&http, &o, errstr, sizeof(errstr)) != OSY_OK)
                http = NULL;
        for (;;) {
                pthread_mutex_lock(&ac->qmu);
                while (!ac->qhead && !ac->stop)
                        pthread_cond_wait(&ac->qcv, &ac->qmu);
                if (ac->stop) {
                        pthread_mutex_unlock(&ac->qmu);
                        break;
                }
                struct ac_qitem *q = ac->qhead;
                ac->qhead          = q->next;
                if (!ac->qhead)
                        ac->qtail = NULL;
                pthread_mutex_unlock(&ac->qmu);

                /* a hook made inactive (410) while this waited: skip */
                if (!item_begin(ac, q)) {
                        qitem_free(q);
                        continue;
                }
                /* "Expect:" off: no 100-continue round trip */
                static const char *const hdrs[] = {
                    "Content-Type: application/x-www-form-urlencoded",
                    "Expect:", NULL};
                struct osy_http_request rq = {
                    .method   = OSY_HTTP_POST,
                    .url      = q->url,
                    .headers  = hdrs,
                    .body     = q->body,
                    .body_len = strlen(q->body),
                };
                struct osy_http_response rs = {0};
                osy_err_t e =
                    http ? osy_http_do(http, &rq, &rs, errstr, sizeof(errstr))
                         : OSY_ERR_FATAL;
                /* Never retried, whatever happened. */
                if (e == OSY_OK)
                        item_done(ac, q, rs.status, NULL);
                else
                        item_done(ac, q, 0, http ? errstr : "no HTTP client");
                osy_http_response_free(&rs);
                qitem_free(q);
        }
        osy_http_client_destroy(http);
        return NULL;
}

/* Start the delivery thread. @returns 0, -1 on failure. */
int ac_delivery_start(struct sbx_ac *ac)
{
        if (pthread_create(&ac->thr, NULL, delivery_main, ac) != 0)
                return -1;
        ac->thr_started = 1;
        return 0;
}

/* Stop and join the delivery thread (lock NOT held: the thread may be
 * waiting for it), then drop what is still queued. */
void ac_delivery_stop(struct sbx_ac *ac)
{
        pthread_mutex_lock(&ac->qmu);
        ac->stop = 1;
        pthread_cond_broadcast(&ac->qcv);
        pthread_mutex_unlock(&ac->qmu);
        if (ac->thr_started)
                pthread_join(ac->thr, NULL);
        ac->thr_started = 0;
        ac_delivery_clear(ac);
}

/* Drop every queued item (qmu nests inside the state lock). */
void ac_delivery_clear(struct sbx_ac *ac)
{
        pthread_mutex_lock(&ac->qmu);
        struct ac_qitem *q = ac->qhead, *next;
        ac->qhead = ac->qtail = NULL;
        pthread_mutex_unlock(&ac->qmu);
        for (; q; q = next) {
                next = q->next;
                qitem_free(q);
        }
}

/* ---- delivery controls: /sandbox/ac/<tenant>/webhooks/... ---------------- */

/* A number from a control body (number or numeric string). */
static long body_long(const cJSON *body, const char *key, long dflt)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);
        if (cJSON_IsNumber(v))
                return (long)v->valuedouble;
        if (cJSON_IsString(v) && v->valuestring[0])
                return strtol(v->valuestring, NULL, 10);
        return dflt;
}

/* Counters every delivery control answers with. */
static cJSON *queue_status(const struct ac_account *a)
{
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "pending", (double)a->pending);
        cJSON_AddNumberToObject(o, "held", (double)a->nheld);
        cJSON_AddBoolToObject(o, "hold", a->hold);
        cJSON_AddNumberToObject(o, "duplicate_next", a->dup_next);
        cJSON_AddNumberToObject(o, "drop_next", a->drop_next);
        cJSON_AddNumberToObject(o, "last_id", (double)(a->next_rec - 1));
        return o;
}

/* GET .../webhooks/deliveries[?since_id=N&webhook=ID]: what was sent,
 * to where, and what came back. */
static void deliveries_list(struct ac_ctx *x)
{
        struct ac_account *a = x->a;
        const char *s        = sbx_req_query(x->req, "since_id");
        uint64_t since       = s ? (uint64_t)strtoull(s, NULL, 10) : 0;
        const char *hook     = sbx_req_query(x->req, "webhook");
        long hid             = hook ? ac_id_parse(hook) : 0;
        cJSON *o             = queue_status(a);
        cJSON *arr           = cJSON_AddArrayToObject(o, "deliveries");
        for (size_t i = 0; i < a->nrecs; i++) {
                const struct ac_delivery *r = &a->recs[i];
                if (r->id <= since || (hid && r->hook != hid))
                        continue;
                cJSON *d = cJSON_CreateObject();
                cJSON_AddNumberToObject(d, "id", (double)r->id);
                cJSON_AddItemToObject(d, "webhook", ac_str_id(r->hook));
                cJSON_AddStringToObject(d, "url", r->url ? r->url : "");
                cJSON_AddStringToObject(d, "type", r->type ? r->type : "");
                cJSON_AddStringToObject(d, "body", r->body ? r->body : "");
                cJSON_AddStringToObject(d, "state", dstate_name(r->state));
                if (r->http_status)
                        cJSON_AddNumberToObject(d, "http_status",
                                                r->http_status);
                else
                        cJSON_AddNullToObject(d, "http_status");
                if (r->error)
                        cJSON_AddStringToObject(d, "error", r->error);
                else
                        cJSON_AddNullToObject(d, "error");
                cJSON_AddBoolToObject(d, "duplicate", r->duplicate);
                cJSON_AddNumberToObject(d, "queued_ms", (double)r->queued_ms);
                cJSON_AddNumberToObject(d, "done_ms", (double)r->done_ms);
                cJSON_AddItemToArray(arr, d);
        }
        ac_reply(x, 200, o);
}

/* Release held deliveries in "fifo", "reverse" or "shuffle" order. */
static void release(struct ac_ctx *x, const char *order, int keep_holding)
{
        struct ac_account *a = x->a;
        size_t n             = a->nheld;
        struct ac_qitem **v  = n ? calloc(n, sizeof(*v)) : NULL;
        if (n && !v) {
                ac_control_reply(x, 500, "out of memory");
                return;
        }
        size_t k = 0;
        for (struct ac_qitem *q = a->held_head; q; q = q->next)
                v[k++] = q;
        /* "fifo" (the default) keeps the order they were held in */
        if (order && !strcmp(order, "reverse")) {
                for (size_t i = 0; i < n / 2; i++) {
                        struct ac_qitem *t = v[i];
                        v[i]               = v[n - 1 - i];
                        v[n - 1 - i]       = t;
                }
        } else if (order && !strcmp(order, "shuffle")) {
                /* seeded (POST /sandbox/seed), so a failure replays */
                for (size_t i = n; i > 1; i--) {
                        size_t j = (size_t)(sbx_random(x->sbx) * (double)i);
                        if (j >= i)
                                j = i - 1;
                        struct ac_qitem *t = v[i - 1];
                        v[i - 1]           = v[j];
                        v[j]               = t;
                }
        }
        /* relink in the chosen order and hand the chain over at once */
        for (size_t i = 0; i < n; i++) {
                v[i]->next            = i + 1 < n ? v[i + 1] : NULL;
                struct ac_delivery *r = rec_get(a, v[i]->rec);
                if (r)
                        r->state = AC_D_QUEUED;
        }
        a->held_head = a->held_tail = NULL;
        a->nheld                    = 0;
        a->hold                     = keep_holding;
        if (n) {
                a->pending += n;
                queue_push(x->ac, v[0], v[n - 1]);
        }
        free(v);
        cJSON *o = queue_status(a);
        cJSON_AddNumberToObject(o, "released", (double)n);
        ac_reply(x, 200, o);
}

/* Wait until nothing of this tenant is queued or in flight. */
static void flush(struct ac_ctx *x, long timeout_ms)
{
        int64_t deadline     = mono_ms() + timeout_ms;
        char *tenant         = ac_strdup(x->a->tenant);
        struct ac_account *a = x->a;
        while (a && a->pending > 0 && !sbx_stopping(x->sbx)) {
                int64_t left = deadline - mono_ms();
                if (left <= 0)
                        break;
                /* sbx_wait releases the lock: re-find the account after */
                (void)sbx_wait(x->sbx, (int)(left > 200 ? 200 : left));
                a = ac_account_find(x->ac, tenant);
        }
        free(tenant);
        x->a = a;
        if (!a) {
                ac_control_reply(x, 404, "tenant removed while waiting");
                return;
        }
        cJSON *o = queue_status(a);
        cJSON_AddBoolToObject(o, "flushed", a->pending == 0);
        ac_reply(x, 200, o);
}

/* /sandbox/ac/<tenant>/webhooks/<duplicate|drop|hold|release|flush|
 * deliveries> */
void ac_control_webhooks(struct ac_ctx *x, const char *const *seg, size_t nseg)
{
        const char *m = x->req->method;
        const char *w = nseg ? seg[0] : "";
        cJSON *body   = ac_body_json(x);
        if (!strcmp(w, "deliveries") && !strcmp(m, "GET")) {
                deliveries_list(x);
        } else if (!strcmp(w, "deliveries") && !strcmp(m, "DELETE")) {
                for (size_t i = 0; i < x->a->nrecs; i++)
                        rec_clear(&x->a->recs[i]);
                x->a->first_rec = x->a->next_rec;
                x->a->nrecs     = 0;
                ac_reply(x, 200, queue_status(x->a));
        } else if (!strcmp(m, "POST") && !strcmp(w, "duplicate")) {
                x->a->dup_next = (int)body_long(body, "count", 1);
                ac_reply(x, 200, queue_status(x->a));
        } else if (!strcmp(m, "POST") && !strcmp(w, "drop")) {
                x->a->drop_next = (int)body_long(body, "count", 1);
                ac_reply(x, 200, queue_status(x->a));
        } else if (!strcmp(m, "POST") && !strcmp(w, "hold")) {
                x->a->hold = 1;
                ac_reply(x, 200, queue_status(x->a));
        } else if (!strcmp(m, "POST") && !strcmp(w, "release")) {
                const char *order = ac_json_str(body, "order");
                if (order && strcmp(order, "fifo") &&
                    strcmp(order, "reverse") && strcmp(order, "shuffle"))
                        ac_control_reply(x, 400,
                                         "order: fifo, reverse or shuffle");
                else
                        release(x, order,
                                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                                    body, "keep_holding")));
        } else if (!strcmp(m, "POST") && !strcmp(w, "flush")) {
                flush(x, body_long(body, "timeout_ms", 5000));
        }
        cJSON_Delete(body);
}
