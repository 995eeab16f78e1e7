/*
 * cometd.c - Change Data Capture for the simulated orgs: the per-tenant
 * event log (replay ids, 72 h retention by the sandbox clock) and the
 * CometD/Bayeux long-polling endpoint /cometd/NN.N with the replay
 * extension, session cookie, client expiry and Salesforce's error shapes.
 */
#include "sf_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CDC_ALL_CHANNEL "/data/ChangeEvents"
#define CDC_MAX_BODY 32768   /* Streaming API request size cap */
#define CDC_MAX_DELIVERY 500 /* events per /meta/connect answer */
#define CDC_MIN_VERSION 37
#define CDC_MAX_VERSION 66
#define CDC_DEFAULT_TIMEOUT_MS 110000
#define CDC_DEFAULT_RETENTION_MS (72LL * 3600 * 1000)
#define CDC_DEFAULT_CLIENT_TTL_MS 40000
#define CDC_DEFAULT_MAX_EVENTS 100000

struct cdc_event {
        int64_t replay_id;
        int64_t commit_ms; /* sandbox clock: retention */
        int entity;
        cJSON *payload; /* ChangeEventHeader + fields */
};

struct cdc_sub {
        char *channel;
        int64_t cursor; /* last replay id delivered (or skipped) */
};

struct cdc_client {
        char id[40];
        char browser[48]; /* the BAYEUX_BROWSER cookie it belongs to */
        struct cdc_sub *subs;
        size_t nsubs;
        int64_t last_seen_ms;
        int connected;        /* the first /meta/connect happened */
        uint64_t connect_gen; /* a newer connect ends an older one */
        int waiting;          /* connects in a long-poll right now */
};

struct cdc_tenant {
        struct cdc_event *ev; /* live events: ev[head .. n) */
        size_t head, n, cap;
        int64_t last_replay;
        int stalled;
        struct sf_map clients; /* clientId -> struct cdc_client */
};

struct sbx_cdc {
        sbx_t *sbx;
        struct sf_map tenants; /* tenant -> struct cdc_tenant */
        uint64_t client_seq, browser_seq, commit_seq;
        int txn_active;
        char txn_key[48];
        int txn_seqno;
        char user[SF_ID_LEN + 1];
};

/* ---- state --------------------------------------------------------------- */

static void client_free(void *p)
{
        struct cdc_client *c = p;

        if (!c)
                return;
        for (size_t i = 0; i < c->nsubs; i++)
                free(c->subs[i].channel);
        free(c->subs);
        free(c);
}

/* Free a tenant's event log and clients. */
static void tenant_free(void *p)
{
        struct cdc_tenant *t = p;

        if (!t)
                return;
        for (size_t i = t->head; i < t->n; i++)
                cJSON_Delete(t->ev[i].payload);
        free(t->ev);
        sf_map_clear(&t->clients, client_free);
        free(t);
}

/* Module state: one event log and client table per tenant. */
struct sbx_cdc *sbx_cdc_new(sbx_t *sbx)
{
        struct sbx_cdc *cdc = sf_xcalloc(1, sizeof(*cdc));

        cdc->sbx = sbx;
        sf_map_init(&cdc->tenants);
        return cdc;
}

/* Free everything (NULL-safe). */
void sbx_cdc_free(struct sbx_cdc *cdc)
{
        if (!cdc)
                return;
        sf_map_clear(&cdc->tenants, tenant_free);
        free(cdc);
}

void sbx_cdc_reset(struct sbx_cdc *cdc)
{
        if (!cdc)
                return;
        /* Long-polls re-look-up their client after each wait, so freeing
         * here is safe: they answer 403::Unknown client. */
        sf_map_clear(&cdc->tenants, tenant_free);
        cdc->txn_active = 0;
        sbx_notify(cdc->sbx);
}

/* The tenant's CDC state, created on first use. */
static struct cdc_tenant *tenant_get(struct sbx_cdc *cdc, const char *tenant)
{
        struct cdc_tenant *t = sf_map_get(&cdc->tenants, tenant);

        if (!t) {
                t = sf_xcalloc(1, sizeof(*t));
                sf_map_init(&t->clients);
                sf_map_put(&cdc->tenants, tenant, t);
        }
        return t;
}

/* Drop events older than the retention window (sandbox clock). */
static void purge_events(sbx_t *sbx, struct cdc_tenant *t)
{
        int64_t keep =
            sf_opt_int(sbx, "sf.cdc_retention_ms", CDC_DEFAULT_RETENTION_MS);
        int64_t now = sbx_now_ms(sbx);

        /* events are in commit order: expired ones are at the front */
        while (t->head < t->n && now - t->ev[t->head].commit_ms > keep) {
                cJSON_Delete(t->ev[t->head].payload);
                t->head++;
        }
        /* compact when half the array is dead, so memory stays bounded */
        if (t->head && t->head * 2 >= t->n) {
                memmove(t->ev, t->ev + t->head,
                        (t->n - t->head) * sizeof(*t->ev));
                t->n -= t->head;
                t->head = 0;
        }
}

/* @returns the index of the first live event with replay id > @p after. */
static size_t events_after(const struct cdc_tenant *t, int64_t after)
{
        size_t lo = t->head, hi = t->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (t->ev[mid].replay_id <= after)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

/* @returns 1 if the event with replay id @p id is still retained. */
static int replay_retained(const struct cdc_tenant *t, int64_t id)
{
        size_t i = events_after(t, id - 1);

        return i < t->n && t->ev[i].replay_id == id;
}

/* A client unseen for longer than the TTL (and not in a long-poll) is
 * gone, like a Salesforce subscription not renewed in time. */
static struct cdc_client *client_find(sbx_t *sbx, struct cdc_tenant *t,
                                      const char *id)
{
        struct cdc_client *c = id ? sf_map_get(&t->clients, id) : NULL;
        int64_t ttl          = sf_opt_int(sbx, "sf.cometd_client_ttl_ms",
                                          CDC_DEFAULT_CLIENT_TTL_MS);

        if (c && !c->waiting && sbx_now_ms(sbx) - c->last_seen_ms > ttl) {
                client_free(sf_map_del(&t->clients, id));
                c = NULL;
        }
        return c;
}

/* Forget every expired client (before counting or handshaking). */
static void purge_clients(sbx_t *sbx, struct cdc_tenant *t)
{
        struct sf_map_iter it = {0};
        const char *key;
        char **dead = NULL;
        size_t n    = 0;
        int64_t ttl = sf_opt_int(sbx, "sf.cometd_client_ttl_ms",
                                 CDC_DEFAULT_CLIENT_TTL_MS);
        void *val;

        while (sf_map_next(&t->clients, &it, &key, &val)) {
                struct cdc_client *c = val;

                if (!c->waiting && sbx_now_ms(sbx) - c->last_seen_ms > ttl) {
                        dead      = sf_xrealloc(dead, (n + 1) * sizeof(*dead));
                        dead[n++] = sf_xstrdup(key);
                }
        }
        for (size_t i = 0; i < n; i++) {
                client_free(sf_map_del(&t->clients, dead[i]));
                free(dead[i]);
        }
        free(dead);
}

/* ---- publishing ---------------------------------------------------------- */

void sf_cdc_txn_begin(sbx_t *sbx)
{
        struct sbx_cdc *cdc = sbx_cdc_state(sbx);

        cdc->txn_active = 1;
        cdc->txn_key[0] = '\0';
        cdc->txn_seqno  = 0;
}

void sf_cdc_txn_end(sbx_t *sbx)
{
        sbx_cdc_state(sbx)->txn_active = 0;
}

/* The commitUser of the next events. */
void sf_cdc_set_user(sbx_t *sbx, const char *user_id)
{
        struct sbx_cdc *cdc = sbx_cdc_state(sbx);

        snprintf(cdc->user, sizeof(cdc->user), "%s", user_id ? user_id : "");
}

static void new_txn_key(struct sbx_cdc *cdc)
{
        /* UUID-shaped, from the seeded generator so runs replay */
        snprintf(cdc->txn_key, sizeof(cdc->txn_key),
                 "%08x-%04x-%04x-%04x-%012llx",
                 (unsigned)(sbx_random(cdc->sbx) * 4294967295.0),
                 (unsigned)(sbx_random(cdc->sbx) * 65535.0),
                 (unsigned)(sbx_random(cdc->sbx) * 65535.0),
                 (unsigned)(sbx_random(cdc->sbx) * 65535.0),
                 (unsigned long long)++cdc->commit_seq);
        cdc->txn_seqno = 0;
}

static cJSON *string_array(const char *const *v, size_t n)
{
        cJSON *a = cJSON_CreateArray();

        for (size_t i = 0; i < n; i++)
                cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
        return a;
}

/* Build the event (header first, then the body fields), append it
 * with the next replay id and wake every long-poll. */
void sbx_cdc_publish(sbx_t *sbx, const char *tenant, const char *entity,
                     const char *change_type, const char *const *record_ids,
                     size_t record_cnt, const cJSON *changed, cJSON *body,
                     const char *change_origin)
{
        struct sbx_cdc *cdc = sbx_cdc_state(sbx);
        struct cdc_tenant *t;
        cJSON *payload, *hdr, *nulled, *it;
        int64_t now = sbx_now_ms(sbx), max_events;
        int e       = sf_entity_lookup(entity, strlen(entity));
        struct cdc_event *ev;

        if (!cdc || e < 0) {
                cJSON_Delete(body);
                return;
        }
        t = tenant_get(cdc, tenant);
        purge_events(sbx, t);
        /* outside a transaction every event gets its own key */
        if (!cdc->txn_active || !cdc->txn_key[0])
                new_txn_key(cdc);
        payload = cJSON_CreateObject();
        hdr     = cJSON_AddObjectToObject(payload, "ChangeEventHeader");
        cJSON_AddStringToObject(hdr, "entityName", entity);
        cJSON_AddItemToObject(hdr, "recordIds",
                              string_array(record_ids, record_cnt));
        cJSON_AddStringToObject(hdr, "changeType", change_type);
        cJSON_AddStringToObject(hdr, "changeOrigin",
                                change_origin ? change_origin : "");
        cJSON_AddStringToObject(hdr, "transactionKey", cdc->txn_key);
        cJSON_AddNumberToObject(hdr, "sequenceNumber", ++cdc->txn_seqno);
        cJSON_AddNumberToObject(hdr, "commitTimestamp", (double)now);
        cJSON_AddNumberToObject(hdr, "commitNumber",
                                (double)(10000000000ULL + ++cdc->commit_seq));
        cJSON_AddStringToObject(hdr, "commitUser", cdc->user);
        cJSON_AddItemToObject(hdr, "changedFields",
                              changed ? cJSON_Duplicate(changed, 1)
                                      : cJSON_CreateArray());
        nulled = cJSON_AddArrayToObject(hdr, "nulledFields");
        cJSON_AddArrayToObject(hdr, "diffFields");
        /* body fields after the header; nulls set by an UPDATE are nulledFields
         */
        cJSON_ArrayForEach(it, body)
        {
                if (cJSON_IsNull(it) && !strcmp(change_type, "UPDATE"))
                        cJSON_AddItemToArray(nulled,
                                             cJSON_CreateString(it->string));
                cJSON_AddItemToObject(payload, it->string,
                                      cJSON_Duplicate(it, 1));
        }
        cJSON_Delete(body);
        max_events =
            sf_opt_int(sbx, "sf.cdc_max_events", CDC_DEFAULT_MAX_EVENTS);
        if (max_events > 0 && (int64_t)(t->n - t->head) >= max_events) {
                cJSON_Delete(t->ev[t->head].payload);
                t->head++;
        }
        if (t->n == t->cap) {
                t->cap = t->cap ? t->cap * 2 : 64;
                t->ev  = sf_xrealloc(t->ev, t->cap * sizeof(*t->ev));
        }
        ev = &t->ev[t->n++];
        /* replay ids rise but are not contiguous: clients must not
         * compute them */
        t->last_replay += 1 + (int64_t)(sbx_random(sbx) * 3);
        ev->replay_id = t->last_replay;
        ev->commit_ms = now;
        ev->entity    = e;
        ev->payload   = payload;
        sbx_notify(sbx);
}

/* ---- Bayeux helpers ------------------------------------------------------ */

/* -1: every entity (/data/ChangeEvents); an entity; -2: no such channel */
static int channel_entity(const char *ch)
{
        if (!strcmp(ch, CDC_ALL_CHANNEL))
                return -1;
        if (!strcmp(ch, "/data/ContactChangeEvent"))
                return SF_CONTACT;
        if (!strcmp(ch, "/data/LeadChangeEvent"))
                return SF_LEAD;
        return -2;
}

/* Fixed schema ids per entity (clients treat them as opaque). */
static const char *schema_id(int e)
{
        return e == SF_CONTACT ? "SBXcontactChangeEvent1A"
                               : "SBXleadChangeEvent001A";
}

/* A reply skeleton echoing channel, id and clientId of @p msg. */
static cJSON *reply(const cJSON *msg, const char *channel, int ok)
{
        cJSON *r         = cJSON_CreateObject();
        const cJSON *id  = cJSON_GetObjectItemCaseSensitive(msg, "id");
        const cJSON *cid = cJSON_GetObjectItemCaseSensitive(msg, "clientId");

        if (cJSON_IsString(cid))
                cJSON_AddStringToObject(r, "clientId", cid->valuestring);
        cJSON_AddStringToObject(r, "channel", channel);
        if (id)
                cJSON_AddItemToObject(r, "id", cJSON_Duplicate(id, 1));
        cJSON_AddBoolToObject(r, "successful", ok);
        return r;
}

/* Bayeux advice; @p timeout < 0 leaves it out. */
static void add_advice(cJSON *r, const char *reconnect, int64_t timeout)
{
        cJSON *a = cJSON_AddObjectToObject(r, "advice");

        cJSON_AddStringToObject(a, "reconnect", reconnect);
        cJSON_AddNumberToObject(a, "interval", 0);
        if (timeout >= 0)
                cJSON_AddNumberToObject(a, "timeout", (double)timeout);
}

static cJSON *error_reply(const cJSON *msg, const char *channel,
                          const char *error, const char *reconnect)
{
        cJSON *r = reply(msg, channel, 0);

        cJSON_AddStringToObject(r, "error", error);
        if (reconnect)
                add_advice(r, reconnect, -1);
        return r;
}

/* The BAYEUX_BROWSER value of the Cookie header, or "" (static buffer
 * per call site: the caller copies). */
static void cookie_value(const struct sbx_req *req, char *out, size_t outsz)
{
        const char *h = sbx_req_header(req, "Cookie");
        const char *p = h;

        out[0] = '\0';
        while (p && (p = strstr(p, "BAYEUX_BROWSER=")) != NULL) {
                if (p == h || p[-1] == ' ' || p[-1] == ';') {
                        size_t n = strcspn(p + 15, "; ");

                        snprintf(out, outsz, "%.*s", (int)n, p + 15);
                        return;
                }
                p += 15;
        }
}

/* Long-poll deadlines use the monotonic clock: the sandbox clock may
 * jump when tests advance it. */
static int64_t mono_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the /meta channels -------------------------------------------------- */

struct batch {
        sbx_t *sbx;
        struct sbx_cdc *cdc;
        const struct sbx_req *req;
        const char *tenant;
        int authed;
        char cookie[48];
        char set_cookie[48]; /* a new BAYEUX_BROWSER to send, or "" */
        cJSON *out;
};

/* /meta/handshake: a session is required; issues a clientId bound to
 * the browser cookie (set here when the request had none). */
static void meta_handshake(struct batch *b, const cJSON *msg)
{
        struct cdc_tenant *t = tenant_get(b->cdc, b->tenant);
        struct sf_org *org   = sf_org_get(b->sbx, b->tenant);
        struct cdc_client *c;
        cJSON *r, *ext, *types;
        static const char an[] = "abcdefghijklmnopqrstuvwxyz0123456789";

        if (!b->authed) {
                r = error_reply(msg, "/meta/handshake", "403::Handshake denied",
                                "none");
                ext = cJSON_AddObjectToObject(r, "ext");
                cJSON_AddStringToObject(cJSON_AddObjectToObject(ext, "sfdc"),
                                        "failureReason",
                                        "401::Authentication invalid");
                cJSON_AddItemToArray(b->out, r);
                return;
        }
        purge_clients(b->sbx, t);
        /* the org's concurrent-client allowance */
        if (org && (int)t->clients.cnt >= org->cometd_max_clients) {
                cJSON_AddItemToArray(
                    b->out, error_reply(msg, "/meta/handshake",
                                        "403::Organization concurrent user "
                                        "limit exceeded",
                                        "none"));
                return;
        }
        /* a new browser: issue its BAYEUX_BROWSER cookie */
        if (!b->cookie[0]) {
                snprintf(b->cookie, sizeof(b->cookie), "sbx%llx%08x",
                         (unsigned long long)++b->cdc->browser_seq,
                         (unsigned)(sbx_random(b->sbx) * 4294967295.0));
                snprintf(b->set_cookie, sizeof(b->set_cookie), "%s", b->cookie);
        }
        c = sf_xcalloc(1, sizeof(*c));
        /* clientId: random from the seeded generator, plus a counter */
        for (int i = 0; i < 20; i++)
                c->id[i] = an[(int)(sbx_random(b->sbx) * 36) % 36];
        snprintf(c->id + 20, sizeof(c->id) - 20, "%llx",
                 (unsigned long long)++b->cdc->client_seq);
        snprintf(c->browser, sizeof(c->browser), "%s", b->cookie);
        c->last_seen_ms = sbx_now_ms(b->sbx);
        sf_map_put(&t->clients, c->id, c);
        r   = reply(msg, "/meta/handshake", 1);
        ext = cJSON_AddObjectToObject(r, "ext");
        cJSON_AddBoolToObject(ext, "replay", 1);
        cJSON_AddBoolToObject(ext, "payload.format", 1);
        cJSON_AddStringToObject(r, "minimumVersion", "1.0");
        cJSON_AddStringToObject(r, "clientId", c->id);
        types = cJSON_AddArrayToObject(r, "supportedConnectionTypes");
        cJSON_AddItemToArray(types, cJSON_CreateString("long-polling"));
        cJSON_AddStringToObject(r, "version", "1.0");
        cJSON_AddItemToArray(b->out, r);
}

/* Common checks of the non-handshake messages: the session, then the
 * client and its cookie. @returns the client, or NULL (reply added). */
static struct cdc_client *known_client(struct batch *b, const cJSON *msg,
                                       const char *channel)
{
        const cJSON *cid = cJSON_GetObjectItemCaseSensitive(msg, "clientId");
        struct cdc_tenant *t = tenant_get(b->cdc, b->tenant);
        struct cdc_client *c;

        if (!b->authed) {
                cJSON_AddItemToArray(
                    b->out, error_reply(msg, channel,
                                        "401::Authentication invalid", "none"));
                return NULL;
        }
        c = cJSON_IsString(cid) ? client_find(b->sbx, t, cid->valuestring)
                                : NULL;
        /* Without its BAYEUX_BROWSER cookie a request cannot reach the
         * client's session: Salesforce answers 403::Unknown client. */
        if (!c || strcmp(c->browser, b->cookie)) {
                cJSON_AddItemToArray(b->out, error_reply(msg, channel,
                                                         "403::Unknown client",
                                                         "handshake"));
                return NULL;
        }
        c->last_seen_ms = sbx_now_ms(b->sbx);
        return c;
}

/* /meta/subscribe with the replay extension. */
static void meta_subscribe(struct batch *b, const cJSON *msg)
{
        struct cdc_client *c = known_client(b, msg, "/meta/subscribe");
        const cJSON *sub =
            cJSON_GetObjectItemCaseSensitive(msg, "subscription");
        const cJSON *replay, *rid;
        struct cdc_tenant *t = tenant_get(b->cdc, b->tenant);
        struct cdc_sub *s    = NULL;
        int64_t cursor;
        cJSON *r;
        char err[256];

        if (!c)
                return;
        if (!cJSON_IsString(sub) || channel_entity(sub->valuestring) == -2) {
                snprintf(err, sizeof(err),
                         "400::The channel you requested to subscribe to does "
                         "not exist {%s}",
                         cJSON_IsString(sub) ? sub->valuestring : "");
                r = error_reply(msg, "/meta/subscribe", err, NULL);
                if (cJSON_IsString(sub))
                        cJSON_AddStringToObject(r, "subscription",
                                                sub->valuestring);
                cJSON_AddItemToArray(b->out, r);
                return;
        }
        /* ext.replay maps the exact channel string to -1, -2 or an id;
         * no entry means -1 (new events only). */
        replay = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(msg, "ext"), "replay");
        rid = cJSON_GetObjectItemCaseSensitive(replay, sub->valuestring);
        purge_events(b->sbx, t);
        /* -1: from the tip; -2: from before the oldest retained event;
         * an id: after that event, if it is still retained */
        if (!rid || (cJSON_IsNumber(rid) && rid->valuedouble == -1)) {
                cursor = t->last_replay;
        } else if (cJSON_IsNumber(rid) && rid->valuedouble == -2) {
                cursor = 0;
        } else if (cJSON_IsNumber(rid) &&
                   replay_retained(t, (int64_t)rid->valuedouble)) {
                cursor = (int64_t)rid->valuedouble;
        } else {
                char *txt = cJSON_PrintUnformatted(rid);

                snprintf(err, sizeof(err),
                         "400::The replayId {%s} you provided was invalid.  "
                         "Please provide a valid ID, -2 to replay all events, "
                         "or -1 to replay only new events.",
                         txt ? txt : "");
                free(txt);
                r = error_reply(msg, "/meta/subscribe", err, NULL);
                cJSON_AddStringToObject(r, "subscription", sub->valuestring);
                cJSON_AddItemToArray(b->out, r);
                return;
        }
        /* subscribing again moves the existing subscription's position */
        for (size_t i = 0; i < c->nsubs; i++)
                if (!strcmp(c->subs[i].channel, sub->valuestring))
                        s = &c->subs[i];
        if (!s) {
                c->subs    = sf_xrealloc(c->subs, (c->nsubs + 1) * sizeof(*s));
                s          = &c->subs[c->nsubs++];
                s->channel = sf_xstrdup(sub->valuestring);
        }
        s->cursor = cursor;
        r         = reply(msg, "/meta/subscribe", 1);
        cJSON_AddStringToObject(r, "subscription", sub->valuestring);
        cJSON_AddItemToArray(b->out, r);
}

/* /meta/unsubscribe: drop the subscription (unknown ones are fine). */
static void meta_unsubscribe(struct batch *b, const cJSON *msg)
{
        struct cdc_client *c = known_client(b, msg, "/meta/unsubscribe");
        const cJSON *sub =
            cJSON_GetObjectItemCaseSensitive(msg, "subscription");
        cJSON *r;

        if (!c)
                return;
        for (size_t i = 0; cJSON_IsString(sub) && i < c->nsubs; i++)
                if (!strcmp(c->subs[i].channel, sub->valuestring)) {
                        free(c->subs[i].channel);
                        c->subs[i] = c->subs[--c->nsubs];
                        break;
                }
        r = reply(msg, "/meta/unsubscribe", 1);
        if (cJSON_IsString(sub))
                cJSON_AddStringToObject(r, "subscription", sub->valuestring);
        cJSON_AddItemToArray(b->out, r);
}

/* /meta/disconnect: forget the client. */
static void meta_disconnect(struct batch *b, const cJSON *msg)
{
        struct cdc_client *c = known_client(b, msg, "/meta/disconnect");

        if (!c)
                return;
        client_free(sf_map_del(&tenant_get(b->cdc, b->tenant)->clients, c->id));
        cJSON_AddItemToArray(b->out, reply(msg, "/meta/disconnect", 1));
}

/* Append the client's pending events to b->out. @returns how many. */
static size_t deliver(struct batch *b, struct cdc_tenant *t,
                      struct cdc_client *c)
{
        size_t sent = 0;

        if (t->stalled)
                return 0; /* a backlog: silence, events stay queued */
        purge_events(b->sbx, t);
        for (size_t k = 0; k < c->nsubs; k++) {
                struct cdc_sub *s = &c->subs[k];
                int want          = channel_entity(s->channel);
                size_t i          = events_after(t, s->cursor);

                for (; i < t->n && sent < CDC_MAX_DELIVERY; i++) {
                        struct cdc_event *ev = &t->ev[i];
                        cJSON *m, *data;

                        /* skipped events (other entity) advance the position
                         * too */
                        s->cursor = ev->replay_id;
                        if (want >= 0 && ev->entity != want)
                                continue;
                        /* the CometD shape of a CDC event */
                        m    = cJSON_CreateObject();
                        data = cJSON_AddObjectToObject(m, "data");
                        cJSON_AddStringToObject(data, "schema",
                                                schema_id(ev->entity));
                        cJSON_AddItemToObject(data, "payload",
                                              cJSON_Duplicate(ev->payload, 1));
                        cJSON_AddNumberToObject(
                            cJSON_AddObjectToObject(data, "event"), "replayId",
                            (double)ev->replay_id);
                        cJSON_AddStringToObject(m, "channel", s->channel);
                        cJSON_AddItemToArray(b->out, m);
                        sent++;
                }
        }
        return sent;
}

/* /meta/connect: deliver at once if anything is pending, else hold
 * the request (lock released in sbx_wait) until an event, the timeout,
 * a newer connect of the same client, or shutdown. */
static void meta_connect(struct batch *b, const cJSON *msg)
{
        struct cdc_client *c = known_client(b, msg, "/meta/connect");
        int64_t timeout =
            sf_opt_int(b->sbx, "sf.cometd_timeout_ms", CDC_DEFAULT_TIMEOUT_MS);
        int64_t deadline = mono_ms() + timeout;
        struct cdc_tenant *t;
        char cid[40];
        uint64_t gen;
        cJSON *r;

        if (!c)
                return;
        t = tenant_get(b->cdc, b->tenant);
        /* the client may be freed while we wait: keep its id, not the pointer
         */
        snprintf(cid, sizeof(cid), "%s", c->id);
        gen = ++c->connect_gen;
        if (c->waiting)
                sbx_notify(b->sbx); /* end the connect this one replaces */
        if (!c->connected) {
                /* the first connect answers at once, with the advice */
                c->connected = 1;
                (void)deliver(b, t, c);
        } else {
                c->waiting++;
                for (;;) {
                        int64_t left;

                        /* events (or shutdown) end the long-poll */
                        if (deliver(b, t, c) || sbx_stopping(b->sbx))
                                break;
                        left = deadline - mono_ms();
                        if (left <= 0)
                                break;
                        (void)sbx_wait(b->sbx,
                                       (int)(left > 1000000 ? 1000000 : left));
                        /* the lock was released: look everything up again */
                        t = tenant_get(b->cdc, b->tenant);
                        c = sf_map_get(&t->clients, cid);
                        if (!c) {
                                cJSON_AddItemToArray(
                                    b->out, error_reply(msg, "/meta/connect",
                                                        "403::Unknown client",
                                                        "handshake"));
                                return;
                        }
                        if (c->connect_gen != gen)
                                break; /* a newer connect took over */
                }
                c->waiting--;
        }
        c->last_seen_ms = sbx_now_ms(b->sbx);
        r               = reply(msg, "/meta/connect", 1);
        add_advice(r, "retry", timeout);
        cJSON_AddItemToArray(b->out, r);
}

/* /cometd/NN.0 with a streaming version (37.0 and later). */
static int version_ok(const char *path)
{
        const char *v = path + strlen("/cometd/");
        char *end;
        long major;

        if (strncmp(path, "/cometd/", 8))
                return 0;
        if (!strncmp(v, "replay/", 7))
                v += 7; /* the pre-37.0 form */
        major = strtol(v, &end, 10);
        return end != v && !strcmp(end, ".0") && major >= CDC_MIN_VERSION &&
               major <= CDC_MAX_VERSION;
}

/* POST /cometd/NN.N: a batch of Bayeux messages answered in order. */
void sbx_cometd_handle(sbx_t *sbx, const struct sbx_req *req,
                       struct sbx_resp *resp)
{
        struct batch b;
        cJSON *in, *msg;
        char cookie_hdr[96];

        if (sbx_fault_apply(sbx, "cometd", req, resp))
                return;
        /* the Streaming API's request size cap */
        if (req->body_len > CDC_MAX_BODY) {
                sbx_resp_text(resp, 413, "text/plain",
                              "Maximum Request Size Exceeded");
                return;
        }
        memset(&b, 0, sizeof(b));
        b.out = cJSON_CreateArray();
        if (!version_ok(req->path) || strcmp(req->method, "POST")) {
                cJSON *r = cJSON_CreateObject();

                cJSON_AddStringToObject(r, "channel", "/meta/handshake");
                cJSON_AddBoolToObject(r, "successful", 0);
                cJSON_AddStringToObject(
                    r, "error",
                    strcmp(req->method, "POST")
                        ? "400::Only POST is supported"
                        : "400::API version in the URI is mandatory. URI "
                          "format: '/cometd/60.0'");
                cJSON_AddItemToArray(b.out, r);
                sbx_resp_json(resp, 400, b.out);
                return;
        }
        in = cJSON_ParseWithLength(req->body ? req->body : "", req->body_len);
        if (!in || (!cJSON_IsArray(in) && !cJSON_IsObject(in))) {
                cJSON *r = cJSON_CreateObject();

                cJSON_AddBoolToObject(r, "successful", 0);
                cJSON_AddStringToObject(r, "error", "400::Invalid message");
                cJSON_AddItemToArray(b.out, r);
                cJSON_Delete(in);
                sbx_resp_json(resp, 400, b.out);
                return;
        }
        b.sbx    = sbx;
        b.cdc    = sbx_cdc_state(sbx);
        b.req    = req;
        b.tenant = req->tenant;
        cookie_value(req, b.cookie, sizeof(b.cookie));
        sbx_lock(sbx);
        /* one session check per batch (it also touches the session) */
        b.authed = sf_session_check(sbx, req->tenant, req);
        for (msg = cJSON_IsArray(in) ? in->child : in; msg;
             msg = cJSON_IsArray(in) ? msg->next : NULL) {
                const cJSON *ch =
                    cJSON_GetObjectItemCaseSensitive(msg, "channel");
                const char *name = cJSON_IsString(ch) ? ch->valuestring : "";

                if (!strcmp(name, "/meta/handshake"))
                        meta_handshake(&b, msg);
                else if (!strcmp(name, "/meta/connect"))
                        meta_connect(&b, msg);
                else if (!strcmp(name, "/meta/subscribe"))
                        meta_subscribe(&b, msg);
                else if (!strcmp(name, "/meta/unsubscribe"))
                        meta_unsubscribe(&b, msg);
                else if (!strcmp(name, "/meta/disconnect"))
                        meta_disconnect(&b, msg);
                else
                        cJSON_AddItemToArray(
                            b.out,
                            error_reply(msg, name, "403::Publish not allowed",
                                        NULL));
        }
        sbx_unlock(sbx);
        cJSON_Delete(in);
        sbx_resp_json(resp, 200, b.out);
        /* only a handshake without a cookie sets one */
        if (b.set_cookie[0]) {
                snprintf(cookie_hdr, sizeof(cookie_hdr),
                         "BAYEUX_BROWSER=%s; Path=/; HttpOnly", b.set_cookie);
                sbx_resp_header(resp, "Set-Cookie", cookie_hdr);
        }
}

/* ---- controls and dumps -------------------------------------------------- */

int sf_cdc_client_count(sbx_t *sbx, const char *tenant)
{
        struct sbx_cdc *cdc  = sbx_cdc_state(sbx);
        struct cdc_tenant *t = cdc ? sf_map_get(&cdc->tenants, tenant) : NULL;

        if (!t)
                return 0;
        purge_clients(sbx, t);
        return (int)t->clients.cnt;
}

cJSON *sf_cdc_dump(sbx_t *sbx, const char *tenant)
{
        struct sbx_cdc *cdc  = sbx_cdc_state(sbx);
        struct cdc_tenant *t = cdc ? sf_map_get(&cdc->tenants, tenant) : NULL;
        cJSON *o             = cJSON_CreateObject();

        cJSON_AddNumberToObject(o, "events", t ? (double)(t->n - t->head) : 0);
        cJSON_AddNumberToObject(o, "last_replay_id",
                                t ? (double)t->last_replay : 0);
        cJSON_AddNumberToObject(o, "clients", t ? (double)t->clients.cnt : 0);
        cJSON_AddBoolToObject(o, "stalled", t && t->stalled);
        return o;
}

/* The /sandbox/sf/<tenant>/cdc/... controls owned by this file. */
void sf_cdc_control(sbx_t *sbx, const char *tenant, const char *action,
                    const char *method, const cJSON *body,
                    struct sbx_resp *resp)
{
        struct sbx_cdc *cdc  = sbx_cdc_state(sbx);
        struct cdc_tenant *t = tenant_get(cdc, tenant);
        cJSON *o             = cJSON_CreateObject();

        if (!strcmp(action, "stall") && !strcmp(method, "POST")) {
                const cJSON *s =
                    cJSON_GetObjectItemCaseSensitive(body, "stalled");

                /* a stall hides events without losing them */
                t->stalled = s ? cJSON_IsTrue(s) : 1;
                cJSON_AddBoolToObject(o, "stalled", t->stalled);
                sbx_notify(sbx); /* un-stalling releases held events */
                sbx_resp_json(resp, 200, o);
        } else if (!strcmp(action, "drop_clients") && !strcmp(method, "POST")) {
                cJSON_AddNumberToObject(o, "dropped", (double)t->clients.cnt);
                sf_map_clear(&t->clients, client_free);
                sf_map_init(&t->clients);
                sbx_notify(sbx);
                sbx_resp_json(resp, 200, o);
        } else if (!strcmp(action, "events") && !strcmp(method, "GET")) {
                cJSON *arr = cJSON_AddArrayToObject(o, "events");

                purge_events(sbx, t);
                for (size_t i = t->head; i < t->n; i++) {
                        cJSON *e = cJSON_CreateObject();

                        cJSON_AddNumberToObject(e, "replayId",
                                                (double)t->ev[i].replay_id);
                        cJSON_AddStringToObject(e, "channel",
                                                t->ev[i].entity == SF_CONTACT
                                                    ? "/data/ContactChangeEvent"
                                                    : "/data/LeadChangeEvent");
                        cJSON_AddItemToObject(
                            e, "payload", cJSON_Duplicate(t->ev[i].payload, 1));
                        cJSON_AddItemToArray(arr, e);
                }
                cJSON_AddNumberToObject(o, "last_replay_id",
                                        (double)t->last_replay);
                sbx_resp_json(resp, 200, o);
        } else {
                cJSON_AddStringToObject(o, "error", "unknown cdc control");
                sbx_resp_json(resp, 404, o);
        }
}
