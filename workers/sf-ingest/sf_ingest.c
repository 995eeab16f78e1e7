/*
 * sf_ingest.c - the sf-ingest worker: per tenant, a thread that follows
 * Salesforce CDC over CometD (handshake, subscribe with replay, long-poll
 * connect, advice), polls SOQL as the safety net, turns changes into
 * sf.events, and commits replay ids, watermarks and record states to Redis
 * only once Kafka acknowledged every event of the batch. A lease thread
 * keeps each tenant's lease in Redis: a tenant thread works only while its
 * replica holds the tenant's lease, and stands by otherwise.
 */
#include "sf_ingest.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cdc.h"
#include "cometd_http.h"
#include "lease.h"
#include "mapping.h"
#include "optsync/log.h"
#include "optsync/sf_auth.h"
#include "optsync/timeutil.h"
#include "store.h"

#define DEF_POLL_INTERVAL_MS 30000
#define DEF_POLL_OVERLAP_MS 60000
#define DEF_SAFETY_POLL_MS (15 * 60 * 1000)
#define DEF_FALLBACK_AFTER_MS (2 * 60 * 1000)
#define DEF_CDC_MARGIN_MS 10000
#define DEF_CDC_TIMEOUT_MS 110000
#define DEF_BACKOFF_BASE_MS 1000
#define DEF_BACKOFF_MAX_MS 60000
#define DEF_RECORD_TTL_MS (30LL * 24 * 3600 * 1000)
#define DEF_ACK_TIMEOUT_MS 15000
#define DISCONNECT_TIMEOUT_MS 2000
#define DEF_LEASE_MS 15000
/* The lease thread's pace while Redis is unreachable. */
#define LEASE_RETRY_MS 500
/* Consecutive connect failures before the session is given up. */
#define CONNECT_RETRIES 3

static const char *const channels[OSY_SF_OBJ__CNT] = {
    [OSY_SF_CONTACT] = OSY_SFI_CHANNEL_CONTACT,
    [OSY_SF_LEAD]    = OSY_SFI_CHANNEL_LEAD};
static const char *const object_names[OSY_SF_OBJ__CNT] = {
    [OSY_SF_CONTACT] = "Contact", [OSY_SF_LEAD] = "Lead"};

enum cdc_state {
        ST_HANDSHAKE = 0,
        ST_SUBSCRIBE,
        ST_CONNECT
};

/* Outstanding deliveries of one batch. The delivery callback may run in
 * any thread that polls the producer, so the counters sit under the
 * worker's ack lock. */
struct batch {
        pthread_mutex_t *lock;
        size_t outstanding;
        size_t failed;
        size_t delivered;
        char error[OSY_ERRSTR_SIZE];
};

struct tenant {
        osy_sfi_t *w;
        const struct osy_tenant *t;
        const char *id;
        pthread_t thr;
        int started;
        osy_sf_auth_t *auth;
        osy_http_client_t *rest;
        osy_sfi_cometd_http_t *cometd;
        osy_redis_t *redis;
        osy_sfi_store_t *store;
        uint64_t fetches_seen; /* token fetches already counted */

        /* Lease: the lease thread owns @lease and publishes its validity
         * in @lease_until (monotonic ms, 0 when not held); the tenant
         * thread checks it before it publishes or commits anything. */
        osy_sfi_lease_t *lease;
        _Atomic int64_t lease_until;
        int active; /* tenant thread: working as the holder */
        char standby_holder[OSY_SFI_OWNER_BUFSZ]; /* lease thread, logs */

        /* CDC session. */
        enum cdc_state state;
        char client_id[256];
        char url[1024];
        struct osy_sf_token tok;
        uint64_t msg_id;
        int64_t advice_timeout_ms;
        int failures; /* consecutive, drives the backoff */
        uint64_t rng;
        int64_t down_since_ms; /* monotonic; -1 while subscribed */
        atomic_int abortable;  /* 0 while closing the session politely */

        /* Polling. */
        int64_t next_poll_ms;   /* monotonic */
        int64_t next_safety_ms; /* monotonic */
        int64_t next_backfill_ms;
        int backfill[OSY_SF_OBJ__CNT];
        unsigned poll_gen_seen;

        /* Counters (read by other threads). */
        _Atomic uint64_t published, cdc_events, api_calls, cometd_calls,
            token_fetches, handshakes, reconnects, replay_invalid, polls,
            batch_failures, lease_acquired, lease_lost;
        atomic_int subscribed, poll_ok;
};

struct osy_sfi_s {
        struct osy_sfi_opts opts;
        char *topic, *prefix, *client, *redis_host, *redis_password;
        const osy_tenants_t *tenants;
        osy_kafka_producer_t *producer;
        osy_metrics_t *metrics;
        struct tenant *ts;
        size_t n;

        pthread_mutex_t ack_lock;
        pthread_mutex_t wake_lock;
        pthread_cond_t wake_cond;
        atomic_int stopping;
        atomic_uint poll_gen;
        atomic_uint wake_gen; /* bumped when a lease is taken or lost */
        atomic_int failed;
        int running;

        /* The lease thread. */
        char owner[OSY_SFI_OWNER_BUFSZ];
        pthread_t lease_thr;
        int lease_started;
        atomic_int lease_stop;
        atomic_int lease_tried;    /* a first round ran */
        atomic_int lease_redis_ok; /* the last round reached Redis */

        osy_metric_t *m_events, *m_published, *m_skipped, *m_lag, *m_api,
            *m_reconnects, *m_replay_invalid, *m_polls, *m_subscribed,
            *m_batch_failures, *m_lease_held, *m_lease_changes;
};

/* ---- time, sleep, logging ----------------------------------------------- */

/* Scheduling (polls, backoff, timeouts) runs on the monotonic clock; what
 * goes to Salesforce or into watermarks uses wall-clock time. */
static int64_t mono_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How far ahead of our clock a SystemModstamp may move the polling
 * watermark: clock skew between Salesforce and us, not more. */
#define OSY_SFI_MODSTAMP_AHEAD_MS (5 * 60 * 1000)

static int64_t wall_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Set once by osy_sfi_stop(); every loop and wait checks it. */
static int stopping(const osy_sfi_t *w)
{
        return atomic_load(&w->stopping);
}

/* Sleeps up to @p ms, woken early by stop and by osy_sfi_poll_now(). */
static void nap(osy_sfi_t *w, int64_t ms)
{
        struct timespec ts;
        unsigned gen  = atomic_load(&w->poll_gen);
        unsigned wgen = atomic_load(&w->wake_gen);

        if (ms <= 0)
                return;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
        }
        pthread_mutex_lock(&w->wake_lock);
        while (!stopping(w) && gen == atomic_load(&w->poll_gen) &&
               wgen == atomic_load(&w->wake_gen))
                if (pthread_cond_timedwait(&w->wake_cond, &w->wake_lock, &ts))
                        break;
        pthread_mutex_unlock(&w->wake_lock);
}

/* Wakes every nap() (a lease was taken or lost). */
static void wake_all(osy_sfi_t *w)
{
        pthread_mutex_lock(&w->wake_lock);
        atomic_fetch_add(&w->wake_gen, 1);
        pthread_cond_broadcast(&w->wake_cond);
        pthread_mutex_unlock(&w->wake_lock);
}

/*
 * Fencing: 1 while this replica holds the tenant's lease and may publish
 * and commit. The deadline is the last successful take or renew plus the
 * lease minus the margin, on this process's monotonic clock, so the
 * holder stops before another replica could take the lease, even when
 * the lease thread is stuck (Redis unreachable, a long pause).
 */
static int lease_ok(const struct tenant *tn)
{
        int64_t until = atomic_load(&tn->lease_until);

        return until > 0 && mono_ms() < until;
}

#define TLOG(tn, level, ...)                                                   \
        do {                                                                   \
                if ((level) >= osy_log_level()) {                              \
                        const char *kv_[] = {"tenant", (tn)->id, NULL};        \
                        osy_log_kv((level), kv_, __VA_ARGS__);                 \
                }                                                              \
        } while (0)

/* ---- metrics ------------------------------------------------------------ */

/* Counter {tenant, label} += v (series are found or created on the fly:
 * the label sets are small and bounded). */
static void metric_add(struct tenant *tn, osy_metric_t *m, const char *label,
                       double v)
{
        const char *values[] = {tn->id, label};

        if (m)
                osy_counter_add(osy_metric_series(m, values), v);
}

/* Gauge {tenant, label} = v. */
static void metric_set(struct tenant *tn, osy_metric_t *m, const char *label,
                       double v)
{
        const char *values[] = {tn->id, label};

        if (m)
                osy_gauge_set(osy_metric_series(m, values), v);
}

/* Registers the worker's metric families (see docs/sf-ingest.md). */
static osy_err_t metrics_init(osy_sfi_t *w, char *errstr, size_t errstr_size)
{
        static const char *const l_type[]    = {"tenant", "type", NULL};
        static const char *const l_kind[]    = {"tenant", "kind", NULL};
        static const char *const l_reason[]  = {"tenant", "reason", NULL};
        static const char *const l_channel[] = {"tenant", "channel", NULL};
        static const char *const l_api[]     = {"tenant", "api", NULL};
        static const char *const l_trigger[] = {"tenant", "trigger", NULL};
        static const char *const l_stage[]   = {"tenant", "stage", NULL};
        static const char *const l_change[]  = {"tenant", "change", NULL};
        static const char *const l_tenant[]  = {"tenant", NULL};
        osy_metrics_t *r                     = w->metrics;
        osy_err_t err;

        if (!r)
                return OSY_OK;
        if ((err = osy_metrics_counter_new(
                 r, &w->m_events, "optsync_sf_ingest_cdc_events_total",
                 "CDC change events received, by changeType", l_type, errstr,
                 errstr_size)) ||
            (err = osy_metrics_counter_new(
                 r, &w->m_published, "optsync_sf_ingest_events_published_total",
                 "sf.events acknowledged by Kafka, by kind", l_kind, errstr,
                 errstr_size)) ||
            (err = osy_metrics_counter_new(
                 r, &w->m_skipped, "optsync_sf_ingest_changes_skipped_total",
                 "Changes that produced no event, by reason", l_reason, errstr,
                 errstr_size)) ||
            (err = osy_metrics_gauge_new(
                 r, &w->m_lag, "optsync_sf_ingest_replay_lag_seconds",
                 "Age of the newest committed CDC event when it was "
                 "committed",
                 l_channel, errstr, errstr_size)) ||
            (err = osy_metrics_counter_new(
                 r, &w->m_api, "optsync_sf_ingest_api_calls_total",
                 "Salesforce calls: query (REST), cometd, token", l_api, errstr,
                 errstr_size)) ||
            (err = osy_metrics_counter_new(r, &w->m_reconnects,
                                           "optsync_sf_ingest_reconnects_total",
                                           "CometD sessions lost, by reason",
                                           l_reason, errstr, errstr_size)) ||
            (err = osy_metrics_counter_new(
                 r, &w->m_replay_invalid,
                 "optsync_sf_ingest_replay_invalid_total",
                 "Stored replay ids refused by Salesforce (backfilled by "
                 "polling)",
                 l_channel, errstr, errstr_size)) ||
            (err = osy_metrics_counter_new(
                 r, &w->m_polls, "optsync_sf_ingest_polls_total",
                 "Completed SOQL polls of one object, by trigger", l_trigger,
                 errstr, errstr_size)) ||
            (err = osy_metrics_gauge_new(
                 r, &w->m_subscribed, "optsync_sf_ingest_subscribed",
                 "1 while the tenant's CDC channels are subscribed", l_tenant,
                 errstr, errstr_size)) ||
            (err = osy_metrics_counter_new(
                 r, &w->m_batch_failures,
                 "optsync_sf_ingest_batch_failures_total",
                 "Batches not committed (they are delivered again)", l_stage,
                 errstr, errstr_size)) ||
            (err = osy_metrics_gauge_new(
                 r, &w->m_lease_held, "optsync_sf_ingest_lease_held",
                 "1 while this replica holds the tenant's lease (follows its "
                 "CDC and polls), 0 on standby",
                 l_tenant, errstr, errstr_size)) ||
            (err = osy_metrics_counter_new(
                 r, &w->m_lease_changes,
                 "optsync_sf_ingest_lease_changes_total",
                 "Tenant leases acquired, lost and released by this replica",
                 l_change, errstr, errstr_size)))
                return err;
        return OSY_OK;
}

/* Readiness and the CDC-down clock that starts fallback polling. */
static void set_subscribed(struct tenant *tn, int on)
{
        const char *values[] = {tn->id};

        if (on) {
                tn->down_since_ms = -1;
        } else if (tn->down_since_ms < 0) {
                tn->down_since_ms = mono_ms();
        }
        atomic_store(&tn->subscribed, on);
        if (tn->w->m_subscribed)
                osy_gauge_set(osy_metric_series(tn->w->m_subscribed, values),
                              on);
}

/* Token fetches happen inside sf_auth: count them after each call. */
static void count_tokens(struct tenant *tn)
{
        uint64_t f = osy_sf_auth_fetches(tn->auth);

        if (f > tn->fetches_seen) {
                metric_add(tn, tn->w->m_api, "token",
                           (double)(f - tn->fetches_seen));
                atomic_fetch_add(&tn->token_fetches, f - tn->fetches_seen);
                tn->fetches_seen = f;
        }
}

/* Capped exponential backoff with "equal jitter": never 0, so a flapping
 * server is not hammered, and replicas that failed together spread out. */
static int64_t backoff_ms(struct tenant *tn)
{
        const struct osy_sfi_opts *o = &tn->w->opts;
        int64_t ceil                 = o->backoff_base_ms;
        int n                        = tn->failures > 0 ? tn->failures : 1;

        for (int i = 1; i < n && ceil < o->backoff_max_ms; i++)
                ceil *= 2;
        if (ceil > o->backoff_max_ms)
                ceil = o->backoff_max_ms;
        tn->rng ^= tn->rng << 13;
        tn->rng ^= tn->rng >> 7;
        tn->rng ^= tn->rng << 17;
        return ceil / 2 + (int64_t)(tn->rng % (uint64_t)(ceil / 2 + 1));
}

/* ---- Kafka batches ---------------------------------------------------- */

/* Delivery report of one sf.event: counts it against its batch. May run
 * in any thread that polls the producer, hence the lock. */
static void on_delivery(void *opaque, osy_err_t err, const char *errstr,
                        int32_t partition, int64_t offset)
{
        struct batch *b = opaque;

        (void)partition;
        (void)offset;
        pthread_mutex_lock(b->lock);
        if (err) {
                if (!b->failed)
                        snprintf(b->error, sizeof(b->error), "%s",
                                 errstr ? errstr : osy_err2str(err));
                b->failed++;
        } else {
                b->delivered++;
        }
        b->outstanding--;
        pthread_mutex_unlock(b->lock);
}

/* Reports still missing for @p b. */
static size_t batch_outstanding(struct tenant *tn, struct batch *b)
{
        size_t n;

        pthread_mutex_lock(&tn->w->ack_lock);
        n = b->outstanding;
        pthread_mutex_unlock(&tn->w->ack_lock);
        return n;
}

/* Encodes one change and hands it to the producer. An event that breaks
 * the schema is logged and counted, not retried: it would fail forever. */
static osy_err_t produce_change(struct tenant *tn, struct batch *b,
                                const struct osy_sfi_change *c, char *errstr,
                                size_t errstr_size)
{
        osy_sfi_t *w = tn->w;
        char key[OSY_PARTITION_KEY_BUFSZ], e[OSY_ERRSTR_SIZE];
        char *json    = NULL;
        size_t len    = 0;
        int64_t until = mono_ms() + w->opts.ack_timeout_ms;
        osy_err_t err;

        /* Fencing: nothing goes out once the lease may be someone else's;
         * the batch is then not committed, and the next holder replays
         * it from the stored position. */
        if (!lease_ok(tn))
                return osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                   "lease lost: not publishing");
        if ((err = osy_sfi_change_encode(c, tn->id, &json, &len, key, NULL, e,
                                         sizeof(e)))) {
                TLOG(tn, OSY_LOG_ERROR,
                     "sf-ingest: %s %s: cannot build its sf.event: %s",
                     object_names[c->object], c->record_id, e);
                metric_add(tn, w->m_skipped, "invalid_event", 1);
                return OSY_OK;
        }
        pthread_mutex_lock(&w->ack_lock);
        b->outstanding++;
        pthread_mutex_unlock(&w->ack_lock);
        for (;;) {
                err = osy_kafka_produce(w->producer, w->topic, key, strlen(key),
                                        json, len, on_delivery, b, errstr,
                                        errstr_size);
                /* A full local queue drains as reports are served. */
                if (err != OSY_ERR_TRANSIENT || mono_ms() > until)
                        break;
                osy_kafka_producer_poll(w->producer, 50);
        }
        if (err) {
                pthread_mutex_lock(&w->ack_lock);
                b->outstanding--;
                pthread_mutex_unlock(&w->ack_lock);
                if (err == OSY_ERR_FATAL)
                        atomic_store(&w->failed, 1);
        }
        free(json);
        return err;
}

/*
 * Waits for every delivery report of @p b. @returns 0 when all were
 * acknowledged, -1 otherwise. If the reports do not come in time (they
 * always do, within message.timeout.ms) the batch is leaked on purpose:
 * a late callback must never write into freed memory.
 */
static int batch_wait(struct tenant *tn, struct batch *b, int *leaked)
{
        int64_t until = mono_ms() + tn->w->opts.ack_timeout_ms;

        *leaked = 0;
        while (batch_outstanding(tn, b)) {
                if (mono_ms() > until) {
                        TLOG(tn, OSY_LOG_ERROR,
                             "sf-ingest: %zu delivery report(s) missing "
                             "after %lld ms",
                             batch_outstanding(tn, b),
                             (long long)tn->w->opts.ack_timeout_ms);
                        *leaked = 1;
                        return -1;
                }
                osy_kafka_producer_poll(tn->w->producer, 20);
        }
        if (b->failed) {
                TLOG(tn, OSY_LOG_WARN,
                     "sf-ingest: %zu event(s) not acknowledged by Kafka: %s",
                     b->failed, b->error);
                return -1;
        }
        return 0;
}

/* ---- Salesforce REST ---------------------------------------------------- */

/* One GET through OAuth (a 401 refreshes the token once). Non-200 answers
 * become errors classified by osy_err_from_http(). */
static osy_err_t rest_get(struct tenant *tn, const char *path,
                          struct osy_http_response *resp, char *errstr,
                          size_t errstr_size)
{
        osy_err_t err;

        err = osy_sf_call(tn->auth, tn->rest, OSY_HTTP_GET, path, NULL, 0,
                          wall_ms(), resp, errstr, errstr_size);
        count_tokens(tn);
        metric_add(tn, tn->w->m_api, "query", 1);
        atomic_fetch_add(&tn->api_calls, 1);
        if (err)
                return err;
        if (resp->status != 200) {
                char snippet[160];

                /* Never assume JSON (CDN 503 pages are HTML): show a
                 * sanitised start of whatever came back. */
                osy_sfi_copy_utf8(snippet, sizeof(snippet), resp->body);
                err = osy_err_from_http(resp->status, resp->body);
                if (!err)
                        err = OSY_ERR_PERMANENT;
                osy_err_set(err, errstr, errstr_size, "sf query: HTTP %d: %s",
                            resp->status, snippet);
                osy_http_response_free(resp);
        }
        return err;
}

/* Reads one page of a query. */
static osy_err_t query_page(struct tenant *tn, osy_sf_object_t obj,
                            const char *path, struct osy_sfi_page *pg,
                            char *errstr, size_t errstr_size)
{
        struct osy_http_response resp = {0};
        osy_err_t err;

        if ((err = rest_get(tn, path, &resp, errstr, errstr_size)))
                return err;
        err = osy_sfi_page_parse(resp.body, resp.body_len, obj, pg, errstr,
                                 errstr_size);
        /* A 200 that is not a query answer is a broken proxy or page:
         * worth another try later. */
        if (err == OSY_ERR_INVALID)
                err = OSY_ERR_TRANSIENT;
        osy_http_response_free(&resp);
        return err;
}

/* Reads the records @p ids of @p obj (all pages, chunks of IN_MAX). */
static osy_err_t lookup_records(struct tenant *tn, osy_sf_object_t obj,
                                const char (*ids)[OSY_SFI_ID_BUFSZ], size_t n,
                                struct osy_sfi_record **recs, size_t *cnt,
                                char *errstr, size_t errstr_size)
{
        struct osy_sf_token tok;
        size_t cap = 0, k = 0;
        osy_err_t err = OSY_OK;

        *recs = NULL;
        *cnt  = 0;
        /* The instance URL counts against the URL budget. */
        if ((err = osy_sf_auth_token(tn->auth, wall_ms(), &tok, errstr,
                                     errstr_size)))
                return err;
        count_tokens(tn);
        for (size_t base = 0; base < n && !err; base += k) {
                char *path = NULL;

                if ((err = osy_sfi_lookup_path(
                         osy_sf_auth_api_version(tn->auth), obj, ids + base,
                         n - base, OSY_SFI_URL_MAX - strlen(tok.instance_url),
                         &k, &path))) {
                        osy_err_set(err, errstr, errstr_size,
                                    "sf look-up: cannot build the query");
                        break;
                }
                while (path && !err) {
                        struct osy_sfi_page pg;

                        if ((err = query_page(tn, obj, path, &pg, errstr,
                                              errstr_size)))
                                break;
                        if (*cnt + pg.record_cnt > cap) {
                                size_t ncap = (*cnt + pg.record_cnt) * 2;
                                void *p = realloc(*recs, ncap * sizeof(**recs));
                                if (!p) {
                                        osy_sfi_page_clear(&pg);
                                        err = OSY_ERR_NOMEM;
                                        break;
                                }
                                *recs = p;
                                cap   = ncap;
                        }
                        if (pg.record_cnt)
                                memcpy(*recs + *cnt, pg.records,
                                       pg.record_cnt * sizeof(**recs));
                        *cnt += pg.record_cnt;
                        free(path);
                        path        = pg.next_url;
                        pg.next_url = NULL;
                        osy_sfi_page_clear(&pg);
                }
                free(path);
        }
        memset(&tok, 0, sizeof(tok)); /* the token stays in sf_auth */
        if (err) {
                free(*recs);
                *recs = NULL;
                *cnt  = 0;
        }
        return err;
}

/* Ids compare on their first 15 characters: an 18-character id is the
 * 15-character one plus a case checksum. */
static int same_id(const char *a, const char *b)
{
        return !strncmp(a, b, 15);
}

/* The looked-up row of @p id, if SOQL returned it (deleted records and
 * wrong ids do not come back). */
static const struct osy_sfi_record *find_record(const struct osy_sfi_record *r,
                                                size_t n, const char *id)
{
        for (size_t i = 0; i < n; i++)
                if (same_id(r[i].record_id, id))
                        return &r[i];
        return NULL;
}

/* ---- one batch: re-reads, emails, publish ------------------------------ */

/* Counts changes that produced no event, by reason: never silent. */
static void skip(struct tenant *tn, osy_sfi_skip_t why, uint64_t n)
{
        if (n)
                metric_add(tn, tn->w->m_skipped, osy_sfi_skip2str(why),
                           (double)n);
}

/* GAP events and unreadable events: read the records back and publish
 * what differs from what we know. */
static osy_err_t do_rereads(struct tenant *tn, struct osy_sfi_plan *plan,
                            char *errstr, size_t errstr_size)
{
        osy_err_t err = OSY_OK;

        for (int obj = OSY_SF_CONTACT; obj <= OSY_SF_LEAD && !err; obj++) {
                char(*ids)[OSY_SFI_ID_BUFSZ] = NULL;
                struct osy_sfi_record *recs  = NULL;
                struct osy_sfi_recstate *st  = NULL;
                size_t n = 0, cnt = 0;

                for (size_t i = 0; i < plan->reread_cnt; i++)
                        if ((int)plan->rereads[i].object == obj)
                                n++;
                if (!n)
                        continue;
                if (!(ids = calloc(n, sizeof(*ids)))) {
                        err = OSY_ERR_NOMEM;
                        break;
                }
                n = 0;
                for (size_t i = 0; i < plan->reread_cnt; i++)
                        if ((int)plan->rereads[i].object == obj)
                                memcpy(ids[n++], plan->rereads[i].record_id,
                                       OSY_SFI_ID_BUFSZ);
                err = lookup_records(tn, (osy_sf_object_t)obj,
                                     (const char(*)[OSY_SFI_ID_BUFSZ])ids, n,
                                     &recs, &cnt, errstr, errstr_size);
                if (!err && cnt && !(st = calloc(cnt, sizeof(*st))))
                        err = OSY_ERR_NOMEM;
                for (size_t i = 0; !err && i < cnt; i++)
                        memcpy(ids[i], recs[i].record_id, OSY_SFI_ID_BUFSZ);
                if (!err && cnt)
                        err = osy_sfi_store_get_states(
                            tn->store, (const char(*)[OSY_SFI_ID_BUFSZ])ids,
                            cnt, st, errstr, errstr_size);
                if (!err && n > cnt)
                        skip(tn, OSY_SFI_SKIP_NOT_FOUND, n - cnt);
                for (size_t i = 0; !err && i < cnt; i++) {
                        struct osy_sfi_change out[2];
                        struct osy_sfi_state_update u = {0};
                        size_t k = osy_sfi_decide(&recs[i], &st[i], out);

                        memcpy(u.record_id, recs[i].record_id,
                               OSY_SFI_ID_BUFSZ);
                        u.opt_out      = recs[i].opt_out;
                        u.is_converted = recs[i].is_converted;
                        if (recs[i].email_ok)
                                memcpy(u.email, recs[i].email, sizeof(u.email));
                        err = osy_sfi_plan_add_state(plan, &u);
                        if (!k)
                                skip(tn, OSY_SFI_SKIP_UNCHANGED, 1);
                        for (size_t j = 0; j < k && !err; j++)
                                err = osy_sfi_plan_add_change(plan, &out[j]);
                }
                free(ids);
                free(recs);
                free(st);
        }
        return err;
}

/* CDC updates carry no Email: the cached one, else one SOQL per object
 * for all the records still unknown. */
static osy_err_t resolve_emails(struct tenant *tn, struct osy_sfi_plan *plan,
                                char *errstr, size_t errstr_size)
{
        char(*ids)[OSY_SFI_ID_BUFSZ] = NULL;
        struct osy_sfi_recstate *st  = NULL;
        size_t *idx                  = NULL;
        size_t n                     = 0;
        osy_err_t err                = OSY_OK;

        for (size_t i = 0; i < plan->change_cnt; i++)
                if (!plan->changes[i].email[0])
                        n++;
        if (!n)
                return OSY_OK;
        ids = calloc(n, sizeof(*ids));
        st  = calloc(n, sizeof(*st));
        idx = calloc(n, sizeof(*idx));
        if (!ids || !st || !idx) {
                err = OSY_ERR_NOMEM;
                goto out;
        }
        n = 0;
        for (size_t i = 0; i < plan->change_cnt; i++)
                if (!plan->changes[i].email[0]) {
                        memcpy(ids[n], plan->changes[i].record_id,
                               OSY_SFI_ID_BUFSZ);
                        idx[n++] = i;
                }
        /* 1. The cache: records seen before (CREATE bodies, polls, earlier
         *    events) cost one Redis round trip for the whole batch. */
        if ((err = osy_sfi_store_get_states(
                 tn->store, (const char(*)[OSY_SFI_ID_BUFSZ])ids, n, st, errstr,
                 errstr_size)))
                goto out;
        for (size_t i = 0; i < n; i++)
                if (st[i].email[0])
                        memcpy(plan->changes[idx[i]].email, st[i].email,
                               OSY_EMAIL_BUFSZ);

        /* 2. The rest: one SOQL "Id IN (...)" per object (per URL-sized
         *    chunk), not one call per record. A record that is gone or has
         *    no Email stays without one and is skipped, counted, logged. */
        for (int obj = OSY_SF_CONTACT; obj <= OSY_SF_LEAD && !err; obj++) {
                struct osy_sfi_record *recs = NULL;
                size_t m = 0, cnt = 0;

                for (size_t i = 0; i < n; i++) {
                        const struct osy_sfi_change *c = &plan->changes[idx[i]];
                        if (!c->email[0] && (int)c->object == obj)
                                memcpy(ids[m++], c->record_id,
                                       OSY_SFI_ID_BUFSZ);
                }
                if (!m)
                        continue;
                if ((err = lookup_records(tn, (osy_sf_object_t)obj,
                                          (const char(*)[OSY_SFI_ID_BUFSZ])ids,
                                          m, &recs, &cnt, errstr, errstr_size)))
                        break;
                for (size_t i = 0; i < n; i++) {
                        struct osy_sfi_change *c = &plan->changes[idx[i]];
                        const struct osy_sfi_record *r;

                        if (c->email[0] || (int)c->object != obj)
                                continue;
                        r = find_record(recs, cnt, c->record_id);
                        if (r && r->email_ok)
                                memcpy(c->email, r->email, OSY_EMAIL_BUFSZ);
                }
                free(recs);
        }
out:
        free(ids);
        free(st);
        free(idx);
        return err;
}

/*
 * Publishes the plan's changes and waits for Kafka. Changes whose email
 * is still unknown are skipped (counted, logged): an event needs a person.
 * @returns OSY_OK when every produced event was acknowledged.
 */
static osy_err_t publish_plan(struct tenant *tn, struct osy_sfi_plan *plan,
                              char *errstr, size_t errstr_size)
{
        struct batch *b;
        osy_err_t err = OSY_OK;
        int leaked    = 0;

        int64_t t0 = mono_ms(), t1;

        if (!lease_ok(tn))
                return osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                   "lease lost: not publishing");
        if (plan->reread_cnt &&
            (err = do_rereads(tn, plan, errstr, errstr_size)))
                return err;
        if ((err = resolve_emails(tn, plan, errstr, errstr_size)))
                return err;
        t1 = mono_ms();
        /* On the heap: if reports were ever overdue, batch_wait() leaves it
         * to the late callbacks instead of freeing it under them. */
        if (!(b = calloc(1, sizeof(*b))))
                return OSY_ERR_NOMEM;
        b->lock = &tn->w->ack_lock;
        for (size_t i = 0; i < plan->change_cnt && !err; i++) {
                const struct osy_sfi_change *c = &plan->changes[i];

                if (!c->email[0]) {
                        TLOG(tn, OSY_LOG_WARN,
                             "sf-ingest: %s %s changed (%s) but has no "
                             "usable Email: no event",
                             object_names[c->object], c->record_id,
                             osy_sf_kind2str(c->kind));
                        skip(tn, OSY_SFI_SKIP_NO_EMAIL, 1);
                        continue;
                }
                err = produce_change(tn, b, c, errstr, errstr_size);
        }
        /* Wait even after a produce error: what was queued before it must
         * report before the batch can be freed. */
        if (batch_wait(tn, b, &leaked)) {
                if (!err)
                        err =
                            osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                        "kafka: batch not acknowledged: %s",
                                        b->error[0] ? b->error : "timeout");
        }
        if (!err) {
                for (size_t i = 0; i < plan->change_cnt; i++) {
                        const struct osy_sfi_change *c = &plan->changes[i];
                        if (c->email[0])
                                metric_add(tn, tn->w->m_published,
                                           osy_sf_kind2str(c->kind), 1);
                }
                atomic_fetch_add(&tn->published, b->delivered);
        }
        TLOG(tn, OSY_LOG_DEBUG,
             "sf-ingest: batch of %zu change(s): look-ups %lld ms, Kafka "
             "%lld ms",
             plan->change_cnt, (long long)(t1 - t0),
             (long long)(mono_ms() - t1));
        if (!leaked)
                free(b);
        return err;
}

/* What a published change teaches about its record. */
static osy_err_t states_of_changes(struct osy_sfi_plan *plan)
{
        size_t n      = plan->change_cnt;
        osy_err_t err = OSY_OK;

        for (size_t i = 0; i < n && !err; i++) {
                const struct osy_sfi_change *c = &plan->changes[i];
                struct osy_sfi_state_update u  = {0};

                if (!c->email[0])
                        continue;
                memcpy(u.record_id, c->record_id, OSY_SFI_ID_BUFSZ);
                memcpy(u.email, c->email, OSY_EMAIL_BUFSZ);
                u.opt_out      = c->opt_out;
                u.is_converted = c->is_converted;
                err            = osy_sfi_plan_add_state(plan, &u);
        }
        return err;
}

/* A batch that was not committed: its events come again (replay from the
 * stored id, or the next poll from the stored watermark). */
static void batch_failed(struct tenant *tn, const char *stage, const char *why)
{
        atomic_fetch_add(&tn->batch_failures, 1);
        metric_add(tn, tn->w->m_batch_failures, stage, 1);
        TLOG(tn, OSY_LOG_WARN,
             "sf-ingest: %s batch not committed (it will be read again): %s",
             stage, why);
}

/* Sends a store transaction, but only while the lease is held: a replica
 * that lost it must not move the replay ids or watermarks the next holder
 * resumes from (its batch was not acknowledged to Redis: duplicates, not
 * losses). */
static osy_err_t store_commit(struct tenant *tn, char *errstr,
                              size_t errstr_size)
{
        if (!lease_ok(tn)) {
                osy_sfi_store_abort(tn->store);
                return osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                   "lease lost: not committed");
        }
        return osy_sfi_store_exec(tn->store, errstr, errstr_size);
}

/* ---- polling ------------------------------------------------------------ */

/* Store name of an object's polling watermark. */
static void wm_name(char *buf, size_t size, osy_sf_object_t obj)
{
        snprintf(buf, size, "wm:%s", object_names[obj]);
}

/* Polls one object from its watermark minus the overlap, page by page:
 * each page is published, acknowledged, then committed with the new
 * watermark (the newest SystemModstamp of the page). */
static osy_err_t poll_object(struct tenant *tn, osy_sf_object_t obj,
                             const char *trigger, char *errstr,
                             size_t errstr_size)
{
        const struct osy_sfi_opts *o = &tn->w->opts;
        char name[32], *soql = NULL, *path = NULL;
        int64_t wm;
        osy_err_t err;

        /* The mark is read at every poll (not cached): a backfill may have
         * lowered it in Redis since the last one. */
        wm_name(name, sizeof(name), obj);
        err = osy_sfi_store_get_ms(tn->store, name, &wm, errstr, errstr_size);
        if (err == OSY_ERR_NOT_FOUND) {
                wm  = wall_ms();
                err = OSY_OK;
        }
        if (err)
                return err;
        if ((err = osy_sfi_soql_since(obj, wm - o->poll_overlap_ms, &soql)) ||
            (err = osy_sfi_query_path(osy_sf_auth_api_version(tn->auth), soql,
                                      &path)))
                goto out;
        while (path && !err) {
                struct osy_sfi_page pg;
                struct osy_sfi_plan plan;
                struct osy_sfi_recstate *st  = NULL;
                char(*ids)[OSY_SFI_ID_BUFSZ] = NULL;
                int64_t new_wm               = wm;

                if ((err = query_page(tn, obj, path, &pg, errstr, errstr_size)))
                        break;
                osy_sfi_plan_init(&plan);
                if (pg.record_cnt &&
                    (!(st = calloc(pg.record_cnt, sizeof(*st))) ||
                     !(ids = calloc(pg.record_cnt, sizeof(*ids)))))
                        err = OSY_ERR_NOMEM;
                for (size_t i = 0; !err && i < pg.record_cnt; i++)
                        memcpy(ids[i], pg.records[i].record_id,
                               OSY_SFI_ID_BUFSZ);
                if (!err && pg.record_cnt)
                        err = osy_sfi_store_get_states(
                            tn->store, (const char(*)[OSY_SFI_ID_BUFSZ])ids,
                            pg.record_cnt, st, errstr, errstr_size);
                for (size_t i = 0; !err && i < pg.record_cnt; i++) {
                        const struct osy_sfi_record *r = &pg.records[i];
                        struct osy_sfi_state_update u  = {0};
                        struct osy_sfi_change out[2];
                        size_t k = osy_sfi_decide(r, &st[i], out);

                        /* A row stamped in the future (a bad clock, a
                         * bad import) is published, but does not carry
                         * the mark with it: a mark in year 9999 would
                         * make every later poll find nothing. */
                        if (r->system_modstamp > new_wm &&
                            r->system_modstamp <=
                                wall_ms() + OSY_SFI_MODSTAMP_AHEAD_MS)
                                new_wm = r->system_modstamp;
                        memcpy(u.record_id, r->record_id, OSY_SFI_ID_BUFSZ);
                        u.opt_out      = r->opt_out;
                        u.is_converted = r->is_converted;
                        if (r->email_ok)
                                memcpy(u.email, r->email, sizeof(u.email));
                        err = osy_sfi_plan_add_state(&plan, &u);
                        for (size_t j = 0; j < k && !err; j++)
                                err = osy_sfi_plan_add_change(&plan, &out[j]);
                }
                skip(tn, OSY_SFI_SKIP_UNCHANGED,
                     pg.record_cnt > plan.change_cnt
                         ? pg.record_cnt - plan.change_cnt
                         : 0);
                /* As for CDC: Kafka first, then the mark and the states,
                 * so a failed page is simply read again next time. The
                 * states of unchanged rows are written too: that is what
                 * makes the overlap re-reads no-ops. */
                if (!err)
                        err = publish_plan(tn, &plan, errstr, errstr_size);
                if (!err)
                        err = states_of_changes(&plan);
                if (!err && !(err = osy_sfi_store_begin(tn->store, errstr,
                                                        errstr_size))) {
                        for (size_t i = 0; i < plan.state_cnt && !err; i++)
                                err = osy_sfi_store_state(tn->store,
                                                          &plan.states[i],
                                                          errstr, errstr_size);
                        if (!err)
                                err = osy_sfi_store_set_ms(tn->store, name,
                                                           new_wm, errstr,
                                                           errstr_size);
                        if (!err)
                                err = store_commit(tn, errstr, errstr_size);
                }
                if (!err)
                        wm = new_wm;
                free(st);
                free(ids);
                osy_sfi_plan_clear(&plan);
                free(path);
                path        = pg.next_url;
                pg.next_url = NULL;
                osy_sfi_page_clear(&pg);
        }
        if (!err) {
                atomic_fetch_add(&tn->polls, 1);
                metric_add(tn, tn->w->m_polls, trigger, 1);
        }
out:
        free(soql);
        free(path);
        return err;
}

/* Polls both objects (or just those waiting for a backfill). A failure
 * keeps the backfill flag, so it is tried again after a backoff. */
static void poll_all(struct tenant *tn, const char *trigger, int only_backfill)
{
        char e[OSY_ERRSTR_SIZE];
        int ok = 1;

        for (int obj = OSY_SF_CONTACT; obj <= OSY_SF_LEAD; obj++) {
                osy_err_t err;

                if (only_backfill && !tn->backfill[obj])
                        continue;
                err = poll_object(tn, (osy_sf_object_t)obj, trigger, e,
                                  sizeof(e));
                if (err) {
                        ok = 0;
                        batch_failed(tn, "poll", e);
                        continue;
                }
                if (tn->backfill[obj])
                        TLOG(tn, OSY_LOG_INFO,
                             "sf-ingest: backfill of %s by polling done",
                             object_names[obj]);
                tn->backfill[obj] = 0;
        }
        atomic_store(&tn->poll_ok, ok);
        if (!ok)
                tn->next_backfill_ms = mono_ms() + backoff_ms(tn);
}

/* Runs whatever poll is due; @returns the monotonic time of the next. */
static int64_t maybe_poll(struct tenant *tn)
{
        const struct osy_sfi_opts *o = &tn->w->opts;
        int64_t now                  = mono_ms();
        int64_t next                 = now + 3600000;
        unsigned gen                 = atomic_load(&tn->w->poll_gen);
        int cdc                      = o->mode == OSY_SFI_MODE_CDC;
        int any_backfill =
            tn->backfill[OSY_SF_CONTACT] || tn->backfill[OSY_SF_LEAD];

        /* Standby: the holder polls (a nap is woken by a lease change). */
        if (!lease_ok(tn))
                return next;
        if (gen != tn->poll_gen_seen) {
                tn->poll_gen_seen = gen;
                poll_all(tn, "manual", 0);
                now = mono_ms();
        } else if (any_backfill && now >= tn->next_backfill_ms) {
                poll_all(tn, "backfill", 1);
                now = mono_ms();
        }
        if (!cdc) {
                if (now >= tn->next_poll_ms) {
                        poll_all(tn, "interval", 0);
                        now              = mono_ms();
                        tn->next_poll_ms = now + o->poll_interval_ms;
                }
                if (tn->next_poll_ms < next)
                        next = tn->next_poll_ms;
        } else {
                if (o->safety_poll_ms > 0) {
                        if (now >= tn->next_safety_ms) {
                                poll_all(tn, "safety", 0);
                                now                = mono_ms();
                                tn->next_safety_ms = now + o->safety_poll_ms;
                        }
                        if (tn->next_safety_ms < next)
                                next = tn->next_safety_ms;
                }
                /* CDC down for long: poll at the polling pace meanwhile. */
                if (!atomic_load(&tn->subscribed) && tn->down_since_ms >= 0) {
                        int64_t from = tn->down_since_ms + o->fallback_after_ms;
                        if (now >= from && now >= tn->next_poll_ms) {
                                poll_all(tn, "fallback", 0);
                                now              = mono_ms();
                                tn->next_poll_ms = now + o->poll_interval_ms;
                        }
                        if (from < tn->next_poll_ms)
                                from = tn->next_poll_ms;
                        if (from < next)
                                next = from;
                }
        }
        if ((tn->backfill[OSY_SF_CONTACT] || tn->backfill[OSY_SF_LEAD]) &&
            tn->next_backfill_ms < next)
                next = tn->next_backfill_ms;
        return next;
}

/* Waits @p ms while keeping the polls going (a CDC backoff can be long). */
static void idle(struct tenant *tn, int64_t ms)
{
        int64_t until = mono_ms() + ms;

        while (!stopping(tn->w) && lease_ok(tn)) {
                int64_t now = mono_ms(), next;

                if (now >= until)
                        return;
                next = maybe_poll(tn);
                now  = mono_ms();
                nap(tn->w, (next < until ? next : until) - now);
        }
}

/* ---- CDC ------------------------------------------------------------ */

/* The CometD transport's abort hook: a parked long-poll ends on stop and
 * when the lease is lost, except the polite /meta/disconnect. */
static int abort_cb(void *opaque)
{
        struct tenant *tn = opaque;

        return (stopping(tn->w) || !lease_ok(tn)) &&
               atomic_load(&tn->abortable);
}

/* The CometD session is over: count why, drop readiness, start again
 * with a handshake (after a backoff when @p wait). The stored replay ids
 * make the new session resume where Kafka's acknowledgements stopped. */
static void session_lost(struct tenant *tn, const char *reason, int wait)
{
        atomic_fetch_add(&tn->reconnects, 1);
        metric_add(tn, tn->w->m_reconnects, reason, 1);
        set_subscribed(tn, 0);
        tn->state        = ST_HANDSHAKE;
        tn->client_id[0] = '\0';
        if (wait) {
                tn->failures++;
                idle(tn, backoff_ms(tn));
        }
}

/* POSTs one Bayeux array with the current token. @returns OSY_OK when an
 * answer arrived (status in *status, parsed into @p reply when 200). */
static osy_err_t cometd_post(struct tenant *tn, const char *json,
                             int64_t timeout_ms, int *status,
                             struct osy_sfi_reply *reply, char *errstr,
                             size_t errstr_size)
{
        char *body = NULL;
        size_t len = 0;
        osy_err_t err;

        memset(reply, 0, sizeof(*reply));
        atomic_fetch_add(&tn->cometd_calls, 1);
        metric_add(tn, tn->w->m_api, "cometd", 1);
        err = osy_sfi_cometd_http_post(
            tn->cometd, tn->url, tn->tok.access_token, json, (long)timeout_ms,
            status, &body, &len, errstr, errstr_size);
        if (err)
                return err;
        if (*status == 200)
                err =
                    osy_sfi_reply_parse(body, len, reply, errstr, errstr_size);
        else {
                char snippet[160];
                osy_sfi_copy_utf8(snippet, sizeof(snippet), body);
                osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                            "cometd: HTTP %d: %s", *status, snippet);
        }
        free(body);
        return err;
}

/* /meta/handshake with a (possibly new) token. A 401 or a handshake
 * refused with 401::Authentication invalid drops the token first. */
static void cdc_handshake(struct tenant *tn)
{
        osy_sfi_t *w = tn->w;
        char e[OSY_ERRSTR_SIZE], *json;
        struct osy_sfi_reply reply;
        const struct osy_sfi_meta *m;
        int status = 0;
        osy_err_t err;

        err = osy_sf_auth_token(tn->auth, wall_ms(), &tn->tok, e, sizeof(e));
        count_tokens(tn);
        if (err) {
                TLOG(tn, err == OSY_ERR_AUTH ? OSY_LOG_ERROR : OSY_LOG_WARN,
                     "sf-ingest: no Salesforce token: %s", e);
                tn->failures++;
                idle(tn, backoff_ms(tn));
                return;
        }
        snprintf(tn->url, sizeof(tn->url), "%s/cometd/%s", tn->tok.instance_url,
                 osy_sf_auth_api_version(tn->auth));
        /* A new session starts without the old session's cookies. */
        osy_sfi_cometd_http_reset(tn->cometd);
        if (!(json = osy_sfi_req_handshake(++tn->msg_id)))
                return;
        err = cometd_post(tn, json, tn->w->opts.http.timeout_ms, &status,
                          &reply, e, sizeof(e));
        free(json);
        if (stopping(w))
                goto out;
        if (err || status != 200) {
                if (status == 401)
                        osy_sf_auth_invalidate(tn->auth, tn->tok.generation);
                TLOG(tn, OSY_LOG_WARN, "sf-ingest: cometd handshake: %s", e);
                metric_add(tn, w->m_reconnects, "handshake_failed", 1);
                tn->failures++;
                idle(tn, backoff_ms(tn));
                goto out;
        }
        m = osy_sfi_reply_meta(&reply, "/meta/handshake");
        if (!m || !m->successful || !m->client_id ||
            strlen(m->client_id) >= sizeof(tn->client_id)) {
                int64_t wait;

                if (m && osy_sfi_meta_is_auth_error(m))
                        osy_sf_auth_invalidate(tn->auth, tn->tok.generation);
                metric_add(tn, w->m_reconnects, "handshake_refused", 1);
                TLOG(tn, OSY_LOG_WARN,
                     "sf-ingest: cometd handshake refused: %s%s%s",
                     m && m->error ? m->error : "no handshake reply",
                     m && m->failure_reason ? " / " : "",
                     m && m->failure_reason ? m->failure_reason : "");
                tn->failures++;
                wait = backoff_ms(tn);
                if (m && m->advice.interval_ms > wait)
                        wait = m->advice.interval_ms;
                idle(tn, wait);
                goto out;
        }
        /* The session is the clientId plus the cookie the transport kept. */
        snprintf(tn->client_id, sizeof(tn->client_id), "%s", m->client_id);
        if (m->advice.timeout_ms > 0)
                tn->advice_timeout_ms = m->advice.timeout_ms;
        tn->state = ST_SUBSCRIBE;
        atomic_fetch_add(&tn->handshakes, 1);
        TLOG(tn, OSY_LOG_DEBUG, "sf-ingest: cometd handshake done");
out:
        osy_sfi_reply_clear(&reply);
}

/*
 * The stored replay id was refused (older than the retention, or never
 * valid): log it, count it, forget it, and lower the object's polling
 * watermark to the last commit time CDC reached, so the next poll
 * backfills the gap. All in one transaction, so a crash cannot lose it.
 */
static osy_err_t invalid_replay(struct tenant *tn, osy_sf_object_t obj,
                                const char *bad, char *errstr,
                                size_t errstr_size)
{
        const struct osy_sfi_opts *o = &tn->w->opts;
        char name[96], wname[32], ts[OSY_TIME_BUFSZ] = "(unknown)";
        int64_t cdctime = -1, wm = -1, from = -1;
        osy_err_t err;

        snprintf(name, sizeof(name), "cdctime:%s", channels[obj]);
        wm_name(wname, sizeof(wname), obj);
        err = osy_sfi_store_get_ms(tn->store, name, &cdctime, errstr,
                                   errstr_size);
        if (err && err != OSY_ERR_NOT_FOUND)
                return err;
        err = osy_sfi_store_get_ms(tn->store, wname, &wm, errstr, errstr_size);
        if (err && err != OSY_ERR_NOT_FOUND)
                return err;
        if (cdctime >= 0) {
                from = cdctime - o->poll_overlap_ms;
                if (wm >= 0 && wm < from)
                        from = wm;
                if (osy_time_format_ms(from > 0 ? from : 0, ts, sizeof(ts)))
                        snprintf(ts, sizeof(ts), "(unknown)");
        }
        atomic_fetch_add(&tn->replay_invalid, 1);
        metric_add(tn, tn->w->m_replay_invalid, channels[obj], 1);
        TLOG(tn, OSY_LOG_WARN,
             "sf-ingest: replay id %s of %s was refused (expired or "
             "unknown): backfilling %s by polling from %s, then "
             "resubscribing at the tip",
             bad, channels[obj], object_names[obj], ts);
        snprintf(name, sizeof(name), "replay:%s", channels[obj]);
        if ((err = osy_sfi_store_begin(tn->store, errstr, errstr_size)) ||
            (err = osy_sfi_store_del(tn->store, name, errstr, errstr_size)) ||
            (from >= 0 && (err = osy_sfi_store_set_ms(tn->store, wname, from,
                                                      errstr, errstr_size))) ||
            (err = store_commit(tn, errstr, errstr_size)))
                return err;
        tn->backfill[obj]    = 1;
        tn->next_backfill_ms = 0;
        return OSY_OK;
}

/* Makes sure a backfill after a refused replay id has a lower bound even
 * if no event ever arrived: the time we first subscribed. */
static void init_cdctime(struct tenant *tn)
{
        char e[OSY_ERRSTR_SIZE], name[96];
        int64_t v;
        int need[OSY_SF_OBJ__CNT] = {0}, any = 0;

        for (int obj = OSY_SF_CONTACT; obj <= OSY_SF_LEAD; obj++) {
                snprintf(name, sizeof(name), "cdctime:%s", channels[obj]);
                if (osy_sfi_store_get_ms(tn->store, name, &v, e, sizeof(e)) ==
                    OSY_ERR_NOT_FOUND)
                        any = need[obj] = 1;
        }
        if (!any || osy_sfi_store_begin(tn->store, e, sizeof(e)))
                return;
        for (int obj = OSY_SF_CONTACT; obj <= OSY_SF_LEAD; obj++) {
                snprintf(name, sizeof(name), "cdctime:%s", channels[obj]);
                if (need[obj] && osy_sfi_store_set_ms(tn->store, name,
                                                      wall_ms(), e, sizeof(e)))
                        return;
        }
        if (store_commit(tn, e, sizeof(e)))
                TLOG(tn, OSY_LOG_WARN, "sf-ingest: cannot store cdctime: %s",
                     e);
}

/* /meta/subscribe to both channels, each from its stored replay id (or
 * the configured start). A refused id is handled once (invalid_replay())
 * and the channel subscribed at the tip; any other refusal ends the
 * session. Success makes the tenant ready. */
static void cdc_subscribe(struct tenant *tn)
{
        const char *want_ch[OSY_SF_OBJ__CNT], *want_rp[OSY_SF_OBJ__CNT];
        char replay[OSY_SF_OBJ__CNT][OSY_SFI_REPLAY_MAX + 1];
        int done[OSY_SF_OBJ__CNT] = {0};
        char e[OSY_ERRSTR_SIZE], name[96];
        osy_err_t err;

        for (int obj = OSY_SF_CONTACT; obj <= OSY_SF_LEAD; obj++) {
                snprintf(name, sizeof(name), "replay:%s", channels[obj]);
                err = osy_sfi_store_get(tn->store, name, replay[obj],
                                        sizeof(replay[obj]), e, sizeof(e));
                if (err == OSY_ERR_NOT_FOUND) {
                        snprintf(replay[obj], sizeof(replay[obj]), "%s",
                                 tn->w->opts.replay_earliest
                                     ? OSY_SFI_REPLAY_EARLIEST
                                     : OSY_SFI_REPLAY_TIP);
                } else if (err) {
                        TLOG(tn, OSY_LOG_WARN,
                             "sf-ingest: cannot read the replay id of %s: "
                             "%s",
                             channels[obj], e);
                        session_lost(tn, "redis", 1);
                        return;
                }
        }
        /* Two rounds at most: the second resubscribes, at the tip, the
         * channels whose stored replay id was refused. */
        for (int round = 0; round < 2; round++) {
                struct osy_sfi_reply reply;
                size_t n   = 0;
                int status = 0, refused = 0, again = 0;
                char *json;

                for (int obj = OSY_SF_CONTACT; obj <= OSY_SF_LEAD; obj++)
                        if (!done[obj]) {
                                want_ch[n]   = channels[obj];
                                want_rp[n++] = replay[obj];
                        }
                json = osy_sfi_req_subscribe(tn->client_id, want_ch, want_rp, n,
                                             &tn->msg_id);
                if (!json) {
                        /* Only a corrupt stored id gets here: drop it. */
                        TLOG(tn, OSY_LOG_ERROR,
                             "sf-ingest: stored replay id is not a number; "
                             "starting at the tip");
                        for (int obj = OSY_SF_CONTACT; obj <= OSY_SF_LEAD;
                             obj++)
                                snprintf(replay[obj], sizeof(replay[obj]), "%s",
                                         OSY_SFI_REPLAY_TIP);
                        continue;
                }
                err = cometd_post(tn, json, tn->w->opts.http.timeout_ms,
                                  &status, &reply, e, sizeof(e));
                free(json);
                if (stopping(tn->w)) {
                        osy_sfi_reply_clear(&reply);
                        return;
                }
                if (err || status != 200) {
                        if (status == 401)
                                osy_sf_auth_invalidate(tn->auth,
                                                       tn->tok.generation);
                        TLOG(tn, OSY_LOG_WARN, "sf-ingest: subscribe: %s", e);
                        osy_sfi_reply_clear(&reply);
                        session_lost(tn, status == 401 ? "auth" : "error", 1);
                        return;
                }
                for (size_t i = 0; i < reply.meta_cnt; i++) {
                        const struct osy_sfi_meta *m = &reply.metas[i];
                        int obj                      = -1;

                        if (strcmp(m->channel, "/meta/subscribe"))
                                continue;
                        for (int o = OSY_SF_CONTACT; o <= OSY_SF_LEAD; o++)
                                if (m->subscription &&
                                    !strcmp(m->subscription, channels[o]))
                                        obj = o;
                        if (m->successful && obj >= 0) {
                                done[obj] = 1;
                                continue;
                        }
                        if (obj >= 0 &&
                            osy_sfi_error_is_invalid_replay(m->error) &&
                            round == 0) {
                                if ((err = invalid_replay(
                                         tn, (osy_sf_object_t)obj, replay[obj],
                                         e, sizeof(e)))) {
                                        TLOG(tn, OSY_LOG_WARN, "sf-ingest: %s",
                                             e);
                                        refused = 1;
                                        continue;
                                }
                                snprintf(replay[obj], sizeof(replay[obj]), "%s",
                                         OSY_SFI_REPLAY_TIP);
                                again = 1;
                                continue;
                        }
                        if (osy_sfi_meta_is_auth_error(m))
                                osy_sf_auth_invalidate(tn->auth,
                                                       tn->tok.generation);
                        TLOG(tn, OSY_LOG_WARN,
                             "sf-ingest: subscribe to %s refused: %s",
                             m->subscription ? m->subscription : "?",
                             m->error ? m->error : "no reason given");
                        refused = 1;
                }
                osy_sfi_reply_clear(&reply);
                if (refused) {
                        session_lost(tn, "subscribe_refused", 1);
                        return;
                }
                if (done[OSY_SF_CONTACT] && done[OSY_SF_LEAD])
                        break;
                if (!again) {
                        TLOG(tn, OSY_LOG_WARN,
                             "sf-ingest: subscribe: no answer for every "
                             "channel");
                        session_lost(tn, "subscribe_refused", 1);
                        return;
                }
        }
        if (!done[OSY_SF_CONTACT] || !done[OSY_SF_LEAD]) {
                session_lost(tn, "subscribe_refused", 1);
                return;
        }
        /* At the tip (nothing stored, or a refused id), whatever changed
         * before this moment is not coming over CDC: poll the object back
         * from its watermark. CDC covers everything from now on, so no
         * gap opens between the two. */
        for (int obj = OSY_SF_CONTACT; obj <= OSY_SF_LEAD; obj++)
                if (!strcmp(replay[obj], OSY_SFI_REPLAY_TIP)) {
                        tn->backfill[obj]    = 1;
                        tn->next_backfill_ms = 0;
                }
        /* Before the first connect (the server keeps what arrives
         * meanwhile), and before /readyz turns true: ready means caught
         * up. A failed backfill is retried by maybe_poll(). */
        if (tn->backfill[OSY_SF_CONTACT] || tn->backfill[OSY_SF_LEAD])
                poll_all(tn, "backfill", 1);
        init_cdctime(tn);
        tn->state    = ST_CONNECT;
        tn->failures = 0;
        set_subscribed(tn, 1);
        TLOG(tn, OSY_LOG_INFO,
             "sf-ingest: subscribed to %s and %s (replay %s, %s)",
             OSY_SFI_CHANNEL_CONTACT, OSY_SFI_CHANNEL_LEAD,
             replay[OSY_SF_CONTACT], replay[OSY_SF_LEAD]);
}

/* Commits a CDC batch: replay ids, commit times, lowered watermarks for
 * overflows, record states. Only called once Kafka has every event. */
static osy_err_t commit_cdc(struct tenant *tn, struct osy_sfi_plan *plan,
                            char *errstr, size_t errstr_size)
{
        int64_t wm[OSY_SF_OBJ__CNT] = {-1, -1, -1};
        char name[96];
        osy_err_t err;

        for (int obj = OSY_SF_CONTACT; obj <= OSY_SF_LEAD; obj++) {
                if (plan->overflow_from[obj] < 0)
                        continue;
                wm_name(name, sizeof(name), (osy_sf_object_t)obj);
                err = osy_sfi_store_get_ms(tn->store, name, &wm[obj], errstr,
                                           errstr_size);
                if (err && err != OSY_ERR_NOT_FOUND)
                        return err;
                /* Not below 0: a negative mark would not be stored, and
                 * the backfill would start from the old one. */
                int64_t from =
                    plan->overflow_from[obj] > tn->w->opts.poll_overlap_ms
                        ? plan->overflow_from[obj] - tn->w->opts.poll_overlap_ms
                        : 0;
                if (err || from < wm[obj])
                        wm[obj] = from;
                else
                        wm[obj] = -1; /* already low enough */
        }
        if ((err = osy_sfi_store_begin(tn->store, errstr, errstr_size)))
                return err;
        for (size_t i = 0; i < plan->pos_cnt && !err; i++) {
                const struct osy_sfi_position *p = &plan->pos[i];

                snprintf(name, sizeof(name), "replay:%s", p->channel);
                err = osy_sfi_store_set(tn->store, name, p->replay_id, errstr,
                                        errstr_size);
                if (!err && p->commit_ts >= 0) {
                        snprintf(name, sizeof(name), "cdctime:%s", p->channel);
                        err = osy_sfi_store_set_ms(
                            tn->store, name, p->commit_ts, errstr, errstr_size);
                }
        }
        for (int obj = OSY_SF_CONTACT; obj <= OSY_SF_LEAD && !err; obj++) {
                if (wm[obj] < 0 && plan->overflow_from[obj] < 0)
                        continue;
                if (wm[obj] >= 0) {
                        wm_name(name, sizeof(name), (osy_sf_object_t)obj);
                        err = osy_sfi_store_set_ms(tn->store, name, wm[obj],
                                                   errstr, errstr_size);
                }
        }
        for (size_t i = 0; i < plan->state_cnt && !err; i++)
                err = osy_sfi_store_state(tn->store, &plan->states[i], errstr,
                                          errstr_size);
        if (!err)
                err = store_commit(tn, errstr, errstr_size);
        if (err)
                return err;
        for (int obj = OSY_SF_CONTACT; obj <= OSY_SF_LEAD; obj++)
                if (plan->overflow_from[obj] >= 0 || plan->poll_now[obj]) {
                        TLOG(tn, OSY_LOG_WARN,
                             "sf-ingest: %s on %s: polling it back",
                             plan->malformed ? "GAP_OVERFLOW or an unreadable "
                                               "event"
                                             : "GAP_OVERFLOW",
                             object_names[obj]);
                        tn->backfill[obj]    = 1;
                        tn->next_backfill_ms = 0;
                }
        for (size_t i = 0; i < plan->pos_cnt; i++)
                if (plan->pos[i].commit_ts >= 0)
                        metric_set(
                            tn, tn->w->m_lag, plan->pos[i].channel,
                            (double)(wall_ms() - plan->pos[i].commit_ts) /
                                1000.0);
        return OSY_OK;
}

/* Turns the events of one answer into sf.events, then commits. */
static osy_err_t process_events(struct tenant *tn,
                                const struct osy_sfi_reply *reply)
{
        struct osy_sfi_plan plan;
        char e[OSY_ERRSTR_SIZE];
        osy_err_t err = OSY_OK;

        if (!reply->event_cnt)
                return OSY_OK;
        osy_sfi_plan_init(&plan);
        for (size_t i = 0; i < reply->event_cnt && !err; i++) {
                const struct osy_sfi_event *ev = &reply->events[i];

                if (ev->error)
                        TLOG(tn, OSY_LOG_WARN,
                             "sf-ingest: unreadable CDC event on %s (replay "
                             "%s): %s; its records are read back",
                             ev->channel, ev->replay_id ? ev->replay_id : "?",
                             ev->error);
                metric_add(tn, tn->w->m_events,
                           ev->change_type_name && !ev->error
                               ? osy_sfi_change_type2str(ev->change_type)
                               : "malformed",
                           1);
                err = osy_sfi_plan_add_event(&plan, ev, tn->w->client);
        }
        /* Deciding is pure (mapping.c); I/O starts below. */
        atomic_fetch_add(&tn->cdc_events, reply->event_cnt);
        for (int r = 0; r < OSY_SFI_SKIP__CNT; r++)
                if (r != OSY_SFI_SKIP_MALFORMED)
                        skip(tn, (osy_sfi_skip_t)r, plan.skipped[r]);
        if (err)
                snprintf(e, sizeof(e), "out of memory");
        /*
         * The order is the at-least-once contract: first every sf.event
         * of the answer is acknowledged by Kafka (publish_plan waits for
         * the reports), only then do the replay ids move in Redis. A crash
         * or failure anywhere before commit_cdc() leaves the old ids, and
         * the next session replays this answer: duplicates with the same
         * ids, never a gap.
         */
        if (!err)
                err = publish_plan(tn, &plan, e, sizeof(e));
        if (!err)
                err = states_of_changes(&plan);
        if (!err)
                err = commit_cdc(tn, &plan, e, sizeof(e));
        if (err)
                batch_failed(tn, "cdc", e);
        osy_sfi_plan_clear(&plan);
        return err;
}

/* One /meta/connect long-poll: process the events it brings, then follow
 * the advice (retry, handshake, none) and the documented errors. */
static void cdc_connect(struct tenant *tn)
{
        const struct osy_sfi_meta *m;
        struct osy_sfi_reply reply;
        char e[OSY_ERRSTR_SIZE], *json;
        int status = 0;
        osy_err_t err;

        if (!(json = osy_sfi_req_connect(tn->client_id, ++tn->msg_id)))
                return;
        err = cometd_post(
            tn, json, tn->advice_timeout_ms + tn->w->opts.cdc_timeout_margin_ms,
            &status, &reply, e, sizeof(e));
        free(json);
        /* Without the lease the events of this answer are left to the
         * next holder, which replays them from the stored replay id. */
        if (stopping(tn->w) || !lease_ok(tn))
                goto out;
        /* No answer, or not a Bayeux answer (a CDN's 503 page, a proxy
         * error). Nothing was delivered, so nothing is lost. */
        if (err || status != 200) {
                TLOG(tn, OSY_LOG_WARN, "sf-ingest: cometd connect: %s", e);
                if (status == 401) {
                        osy_sf_auth_invalidate(tn->auth, tn->tok.generation);
                        session_lost(tn, "auth", 0);
                        goto out;
                }
                /* The session may well survive a timeout or a 503: retry
                 * it a few times before starting a new one. */
                if (++tn->failures >= CONNECT_RETRIES) {
                        tn->failures--; /* session_lost counts it again */
                        session_lost(tn, status ? "http_error" : "timeout", 1);
                } else {
                        idle(tn, backoff_ms(tn));
                }
                goto out;
        }
        /* Events first: they are valid whatever the advice says next. */
        if (process_events(tn, &reply)) {
                session_lost(tn, "resync", 1);
                goto out;
        }
        m = osy_sfi_reply_meta(&reply, "/meta/connect");
        if (!m) {
                /* Events without the connect reply: just connect again. */
                goto out;
        }
        if (m->advice.timeout_ms > 0)
                tn->advice_timeout_ms = m->advice.timeout_ms;
        /* The server may shorten or lengthen its long-polls: the next
         * request's timeout follows advice.timeout. */
        if (m->successful) {
                tn->failures = 0;
                if (m->advice.interval_ms > 0)
                        idle(tn, m->advice.interval_ms);
                goto out;
        }
        TLOG(tn, OSY_LOG_WARN, "sf-ingest: cometd connect refused: %s",
             m->error ? m->error : "no reason given");
        if (osy_sfi_meta_is_auth_error(m)) {
                /* The token died: a new one, then a new session. */
                osy_sf_auth_invalidate(tn->auth, tn->tok.generation);
                session_lost(tn, "auth", 0);
        } else if (m->advice.reconnect == OSY_SFI_RECONNECT_HANDSHAKE ||
                   (m->error && strstr(m->error, "Unknown client"))) {
                session_lost(tn, "unknown_client", 0);
        } else if (m->advice.reconnect == OSY_SFI_RECONNECT_NONE) {
                session_lost(tn, "advice_none", 1);
        } else {
                int64_t wait = backoff_ms(tn);
                tn->failures++;
                if (m->advice.interval_ms > wait)
                        wait = m->advice.interval_ms;
                idle(tn, wait);
        }
out:
        osy_sfi_reply_clear(&reply);
}

/* Ends the session at shutdown, so Salesforce frees the client slot
 * (there are only 20 to 2,000 per org). Best effort. */
static void cdc_disconnect(struct tenant *tn)
{
        struct osy_sfi_reply reply;
        char e[OSY_ERRSTR_SIZE], *json;
        int status = 0;

        if (!tn->client_id[0] ||
            !(json = osy_sfi_req_disconnect(tn->client_id, ++tn->msg_id)))
                return;
        /* Polite, short, and not aborted by the stop flag. */
        atomic_store(&tn->abortable, 0);
        if (!cometd_post(tn, json, DISCONNECT_TIMEOUT_MS, &status, &reply, e,
                         sizeof(e)))
                osy_sfi_reply_clear(&reply);
        free(json);
        tn->client_id[0] = '\0';
}

/* ---- tenant thread ---------------------------------------------------- */

/* Connects the tenant's Redis (retrying until stop): nothing can be
 * committed without it, so nothing is fetched before. */
static int connect_redis(struct tenant *tn)
{
        osy_sfi_t *w = tn->w;
        char e[OSY_ERRSTR_SIZE];
        osy_err_t err;

        while (!stopping(w)) {
                err =
                    osy_redis_connect(&tn->redis, &w->opts.redis, e, sizeof(e));
                if (!err)
                        err = osy_sfi_store_new(
                            &tn->store, tn->redis, w->prefix, tn->id,
                            w->opts.record_ttl_ms, e, sizeof(e));
                if (!err)
                        return 0;
                TLOG(tn, OSY_LOG_WARN, "sf-ingest: redis: %s", e);
                osy_redis_destroy(tn->redis);
                tn->redis = NULL;
                tn->failures++;
                nap(w, backoff_ms(tn));
        }
        return -1;
}

/* The first start of a tenant sets its watermarks to "now": polling
 * covers what changes from then on (history is the reconciler's job). */
static void init_watermarks(struct tenant *tn)
{
        char e[OSY_ERRSTR_SIZE], name[32];
        int need[OSY_SF_OBJ__CNT] = {0}, any = 0;
        int64_t v;

        for (int obj = OSY_SF_CONTACT; obj <= OSY_SF_LEAD; obj++) {
                wm_name(name, sizeof(name), (osy_sf_object_t)obj);
                if (osy_sfi_store_get_ms(tn->store, name, &v, e, sizeof(e)) ==
                    OSY_ERR_NOT_FOUND)
                        any = need[obj] = 1;
        }
        if (!any || osy_sfi_store_begin(tn->store, e, sizeof(e)))
                return;
        for (int obj = OSY_SF_CONTACT; obj <= OSY_SF_LEAD; obj++) {
                wm_name(name, sizeof(name), (osy_sf_object_t)obj);
                if (need[obj] && osy_sfi_store_set_ms(tn->store, name,
                                                      wall_ms(), e, sizeof(e)))
                        return;
        }
        if (store_commit(tn, e, sizeof(e)))
                TLOG(tn, OSY_LOG_WARN,
                     "sf-ingest: cannot store the first watermarks: %s", e);
}

/* The lease was just taken: start as a fresh process would, from what
 * is stored (replay ids, watermarks). */
static void become_active(struct tenant *tn)
{
        osy_sfi_t *w = tn->w;
        int64_t now;

        tn->active   = 1;
        tn->failures = 0;
        tn->state    = ST_HANDSHAKE;
        init_watermarks(tn);
        now                = mono_ms();
        tn->next_poll_ms   = now;
        tn->next_safety_ms = now + w->opts.safety_poll_ms;
        tn->poll_gen_seen  = atomic_load(&w->poll_gen);
}

/* Another replica holds the lease (or nobody can tell): leave the CometD
 * session, so the org's client slot is free, and wait until the lease
 * thread takes the lease for us. */
static void stand_by(struct tenant *tn)
{
        osy_sfi_t *w = tn->w;

        if (tn->active) {
                TLOG(tn, OSY_LOG_WARN,
                     "sf-ingest: lease not held any more: CDC and polls of "
                     "this tenant stop here (the holder resumes from the "
                     "stored replay ids)");
                cdc_disconnect(tn);
                atomic_store(&tn->abortable, 1);
                set_subscribed(tn, 0);
                atomic_store(&tn->poll_ok, 0);
                tn->state  = ST_HANDSHAKE;
                tn->active = 0;
        }
        while (!stopping(w) && !lease_ok(tn))
                nap(w, 1000);
}

/* One tenant's thread: while this replica holds the tenant's lease, poll
 * mode loops on polls, CDC mode runs the handshake -> subscribe ->
 * connect state machine (with the polls that are due run between
 * long-polls and during backoffs); otherwise it stands by. */
static void *tenant_main(void *opaque)
{
        struct tenant *tn = opaque;
        osy_sfi_t *w      = tn->w;

        if (connect_redis(tn))
                return NULL;
        tn->failures = 0;
        while (!stopping(w)) {
                if (!lease_ok(tn)) {
                        stand_by(tn);
                        continue;
                }
                if (!tn->active)
                        become_active(tn);
                if (w->opts.mode == OSY_SFI_MODE_POLL) {
                        int64_t next = maybe_poll(tn);
                        nap(w, next - mono_ms());
                        continue;
                }
                maybe_poll(tn);
                if (stopping(w) || !lease_ok(tn))
                        continue;
                switch (tn->state) {
                case ST_HANDSHAKE:
                        cdc_handshake(tn);
                        break;
                case ST_SUBSCRIBE:
                        cdc_subscribe(tn);
                        break;
                case ST_CONNECT:
                        cdc_connect(tn);
                        break;
                }
        }
        cdc_disconnect(tn);
        set_subscribed(tn, 0);
        return NULL;
}

/* ---- the lease thread ----------------------------------------------------
 * One thread for every tenant's lease, on its own Redis connection, so a
 * tenant thread parked in a long-poll (or waiting for Kafka) never delays
 * a renewal. */

/* optsync_sf_ingest_lease_held{tenant} = @p on. */
static void lease_gauge(struct tenant *tn, int on)
{
        const char *values[] = {tn->id};

        if (tn->w->m_lease_held)
                osy_gauge_set(osy_metric_series(tn->w->m_lease_held, values),
                              on);
}

/* Reports a lease change: log, metrics, counters, and wakes the tenant
 * threads (a standby starts, a holder stops). */
static void lease_changed(struct tenant *tn, osy_sfi_lease_change_t change)
{
        osy_sfi_t *w = tn->w;

        atomic_store(&tn->lease_until, osy_sfi_lease_valid_until(tn->lease));
        switch (change) {
        case OSY_SFI_LEASE_UNCHANGED:
                if (osy_sfi_lease_valid_until(tn->lease) ||
                    !strcmp(tn->standby_holder,
                            osy_sfi_lease_holder(tn->lease)))
                        return;
                /* Standing by: say once who holds it. */
                snprintf(tn->standby_holder, sizeof(tn->standby_holder), "%s",
                         osy_sfi_lease_holder(tn->lease));
                if (tn->standby_holder[0])
                        TLOG(tn, OSY_LOG_INFO,
                             "sf-ingest: standing by: the lease is held by %s",
                             tn->standby_holder);
                return;
        case OSY_SFI_LEASE_ACQUIRED:
                atomic_fetch_add(&tn->lease_acquired, 1);
                metric_add(tn, w->m_lease_changes, "acquired", 1);
                TLOG(tn, OSY_LOG_INFO,
                     "sf-ingest: lease acquired by %s: following this tenant",
                     w->owner);
                tn->standby_holder[0] = '\0';
                break;
        case OSY_SFI_LEASE_LOST:
                atomic_fetch_add(&tn->lease_lost, 1);
                metric_add(tn, w->m_lease_changes, "lost", 1);
                TLOG(tn, OSY_LOG_WARN, "sf-ingest: lease lost (%s)",
                     osy_sfi_lease_lost_reason(tn->lease));
                break;
        case OSY_SFI_LEASE_RELEASED:
                metric_add(tn, w->m_lease_changes, "released", 1);
                TLOG(tn, OSY_LOG_INFO, "sf-ingest: lease released");
                break;
        }
        lease_gauge(tn, change == OSY_SFI_LEASE_ACQUIRED);
        wake_all(w);
}

/* Sleeps until @p until (monotonic) or the lease thread is told to end. */
static void lease_nap(osy_sfi_t *w, int64_t until)
{
        pthread_mutex_lock(&w->wake_lock);
        while (!atomic_load(&w->lease_stop)) {
                int64_t ms = until - mono_ms();
                struct timespec ts;

                if (ms <= 0)
                        break;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += ms / 1000;
                ts.tv_nsec += (ms % 1000) * 1000000;
                if (ts.tv_nsec >= 1000000000) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&w->wake_cond, &w->wake_lock, &ts);
        }
        pthread_mutex_unlock(&w->wake_lock);
}

/* One round over every tenant's lease; @returns when the next is due.
 * Once Redis failed in a round, the other tenants only check their
 * validity (each would wait for its own timeout). */
static int64_t lease_round(osy_sfi_t *w, osy_redis_t *r)
{
        int64_t next = mono_ms() + LEASE_RETRY_MS * 10;
        int down     = !r;
        char e[OSY_ERRSTR_SIZE];

        for (size_t i = 0; i < w->n; i++) {
                struct tenant *tn             = &w->ts[i];
                osy_sfi_lease_change_t change = OSY_SFI_LEASE_UNCHANGED;
                int64_t now                   = mono_ms(), due;

                if (down) {
                        change = osy_sfi_lease_expire(tn->lease, now);
                } else if (osy_sfi_lease_tick(tn->lease, r, now, &change, e,
                                              sizeof(e))) {
                        if (atomic_load(&w->lease_redis_ok))
                                TLOG(tn, OSY_LOG_WARN, "sf-ingest: lease: %s",
                                     e);
                        down = 1;
                }
                lease_changed(tn, change);
                due = osy_sfi_lease_next_ms(tn->lease);
                /* Skipped tenants are due again: on the retry pace. */
                if (down && due <= now)
                        due = now + LEASE_RETRY_MS;
                if (due < next)
                        next = due;
        }
        if (!down && !atomic_load(&w->lease_redis_ok))
                osy_log_info("sf-ingest: lease: Redis answers again");
        atomic_store(&w->lease_redis_ok, !down);
        atomic_store(&w->lease_tried, 1);
        return next;
}

static void *lease_main(void *opaque)
{
        osy_sfi_t *w   = opaque;
        osy_redis_t *r = NULL;
        char e[OSY_ERRSTR_SIZE];
        int warned = 0;

        atomic_store(&w->lease_redis_ok, 1);
        while (!atomic_load(&w->lease_stop)) {
                int64_t next;

                /* After the first connect the handle reconnects itself. */
                if (!r && osy_redis_connect(&r, &w->opts.redis, e, sizeof(e))) {
                        if (!warned++)
                                osy_log_warn("sf-ingest: lease: %s", e);
                        r = NULL;
                }
                next = lease_round(w, r);
                if (!r && next > mono_ms() + LEASE_RETRY_MS)
                        next = mono_ms() + LEASE_RETRY_MS;
                lease_nap(w, next);
        }
        /* The tenant threads have ended: give every lease back, so the
         * standby replicas take over at once. */
        for (size_t i = 0; i < w->n; i++) {
                struct tenant *tn             = &w->ts[i];
                osy_sfi_lease_change_t change = OSY_SFI_LEASE_UNCHANGED;

                if (r &&
                    osy_sfi_lease_release(tn->lease, r, &change, e, sizeof(e)))
                        TLOG(tn, OSY_LOG_WARN,
                             "sf-ingest: lease release: %s (it expires by "
                             "itself)",
                             e);
                if (change != OSY_SFI_LEASE_UNCHANGED)
                        lease_changed(tn, change);
        }
        osy_redis_destroy(r);
        return NULL;
}

/* ---- life cycle -------------------------------------------------------- */

/* Frees one tenant's handles (its thread has ended). */
static void tenant_free(struct tenant *tn)
{
        osy_sfi_lease_destroy(tn->lease);
        osy_sfi_store_destroy(tn->store);
        osy_redis_destroy(tn->redis);
        osy_sfi_cometd_http_destroy(tn->cometd);
        osy_http_client_destroy(tn->rest);
        osy_sf_auth_destroy(tn->auth);
        memset(&tn->tok, 0, sizeof(tn->tok));
}

/* The tenant's lease: key "<prefix>:sf-ingest:lease:{<tenant>}" (the
 * braces keep it in one Redis Cluster slot per tenant). */
static osy_err_t tenant_lease(struct tenant *tn, char *errstr,
                              size_t errstr_size)
{
        osy_sfi_t *w                 = tn->w;
        struct osy_sfi_lease_opts lo = {0};
        char key[512];
        osy_err_t err;

        if ((size_t)snprintf(key, sizeof(key), "%s:sf-ingest:lease:{%s}",
                             w->prefix, tn->id) >= sizeof(key))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "sf-ingest: tenant id too long");
        lo.key      = key;
        lo.owner    = w->owner;
        lo.lease_ms = w->opts.lease_ms;
        if ((err = osy_sfi_lease_new(&tn->lease, &lo, errstr, errstr_size)))
                return err;
        lease_gauge(tn, 0);
        return OSY_OK;
}

/* Option default: 0 means "not set". */
static int64_t def(int64_t v, int64_t d)
{
        return v ? v : d;
}

osy_err_t osy_sfi_new(osy_sfi_t **wp, const struct osy_sfi_opts *opts,
                      const osy_tenants_t *tenants,
                      osy_kafka_producer_t *producer, osy_metrics_t *metrics,
                      char *errstr, size_t errstr_size)
{
        osy_sfi_t *w  = NULL;
        osy_err_t err = OSY_ERR_INVALID;
        size_t n      = 0;

        *wp = NULL;
        if (!opts || !opts->topic || !tenants || !producer)
                return osy_err_set(err, errstr, errstr_size,
                                   "sf-ingest: topic, tenants and producer "
                                   "are required");
        for (size_t i = 0; i < osy_tenants_count(tenants); i++)
                if (osy_tenants_at(tenants, i)->has_sf)
                        n++;
        if (!n)
                return osy_err_set(err, errstr, errstr_size,
                                   "sf-ingest: no tenant has an \"sf\" "
                                   "block");
        if (!(w = calloc(1, sizeof(*w))))
                return OSY_ERR_NOMEM;
        pthread_mutex_init(&w->ack_lock, NULL);
        pthread_mutex_init(&w->wake_lock, NULL);
        pthread_cond_init(&w->wake_cond, NULL);
        w->opts                = *opts;
        struct osy_sfi_opts *o = &w->opts;
        o->poll_interval_ms    = def(o->poll_interval_ms, DEF_POLL_INTERVAL_MS);
        o->poll_overlap_ms     = def(o->poll_overlap_ms, DEF_POLL_OVERLAP_MS);
        o->safety_poll_ms      = def(o->safety_poll_ms, DEF_SAFETY_POLL_MS);
        o->fallback_after_ms = def(o->fallback_after_ms, DEF_FALLBACK_AFTER_MS);
        o->cdc_timeout_margin_ms =
            def(o->cdc_timeout_margin_ms, DEF_CDC_MARGIN_MS);
        o->cdc_default_timeout_ms =
            def(o->cdc_default_timeout_ms, DEF_CDC_TIMEOUT_MS);
        o->backoff_base_ms = def(o->backoff_base_ms, DEF_BACKOFF_BASE_MS);
        o->backoff_max_ms  = def(o->backoff_max_ms, DEF_BACKOFF_MAX_MS);
        if (o->backoff_max_ms < o->backoff_base_ms)
                o->backoff_max_ms = o->backoff_base_ms;
        o->record_ttl_ms   = def(o->record_ttl_ms, DEF_RECORD_TTL_MS);
        o->http.timeout_ms = o->http.timeout_ms ? o->http.timeout_ms
                                                : OSY_HTTP_DEFAULT_TIMEOUT_MS;
        o->ack_timeout_ms  = def(o->ack_timeout_ms, DEF_ACK_TIMEOUT_MS);
        o->lease_ms        = def(o->lease_ms, DEF_LEASE_MS);
        if (opts->lease_owner)
                snprintf(w->owner, sizeof(w->owner), "%s", opts->lease_owner);
        else if (osy_sfi_lease_owner_id(w->owner, sizeof(w->owner)))
                snprintf(w->owner, sizeof(w->owner), "sf-ingest-%p", (void *)w);
        o->lease_owner = w->owner;
        w->topic       = strdup(opts->topic);
        w->prefix = strdup(opts->redis_prefix ? opts->redis_prefix : "optsync");
        w->client = strdup(opts->client ? opts->client : OSY_SF_CALL_CLIENT);
        w->redis_host = opts->redis.host ? strdup(opts->redis.host) : NULL;
        w->redis_password =
            opts->redis.password ? strdup(opts->redis.password) : NULL;
        o->topic           = w->topic;
        o->redis_prefix    = w->prefix;
        o->client          = w->client;
        o->redis.host      = w->redis_host;
        o->redis.password  = w->redis_password;
        o->http.user_agent = NULL; /* osy_http_client_new copies its own */
        w->tenants         = tenants;
        w->producer        = producer;
        w->metrics         = metrics;
        if (!w->topic || !w->prefix || !w->client ||
            (opts->redis.host && !w->redis_host) ||
            (opts->redis.password && !w->redis_password) ||
            !(w->ts = calloc(n, sizeof(*w->ts)))) {
                err = OSY_ERR_NOMEM;
                goto out;
        }
        if ((err = metrics_init(w, errstr, errstr_size)))
                goto out;
        for (size_t i = 0; i < osy_tenants_count(tenants); i++) {
                const struct osy_tenant *t    = osy_tenants_at(tenants, i);
                struct tenant *tn             = &w->ts[w->n];
                struct osy_sfi_cometd_opts co = {0};

                if (!t->has_sf)
                        continue;
                w->n++;
                tn->w                 = w;
                tn->t                 = t;
                tn->id                = t->id;
                tn->down_since_ms     = mono_ms();
                tn->advice_timeout_ms = o->cdc_default_timeout_ms;
                tn->rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)tn ^
                          (uint64_t)wall_ms();
                atomic_store(&tn->abortable, 1);
                co.connect_timeout_ms = o->http.connect_timeout_ms;
                co.max_body           = o->http.max_body;
                co.abort_cb           = abort_cb;
                co.abort_opaque       = tn;
                if ((err = tenant_lease(tn, errstr, errstr_size)) ||
                    (err = osy_sf_auth_new(&tn->auth, t, &o->http, errstr,
                                           errstr_size)) ||
                    (err = osy_http_client_new(&tn->rest, &o->http, errstr,
                                               errstr_size)) ||
                    (err = osy_sfi_cometd_http_new(&tn->cometd, &co, errstr,
                                                   errstr_size)))
                        goto out;
        }
        *wp = w;
        w   = NULL;
        err = OSY_OK;
out:
        osy_sfi_destroy(w);
        return err;
}

osy_err_t osy_sfi_start(osy_sfi_t *w, char *errstr, size_t errstr_size)
{
        osy_log_info("sf-ingest: lease owner id %s (lease %lld ms)", w->owner,
                     (long long)w->opts.lease_ms);
        if (pthread_create(&w->lease_thr, NULL, lease_main, w))
                return osy_err_set(OSY_ERR_FATAL, errstr, errstr_size,
                                   "sf-ingest: cannot start a thread");
        w->lease_started = 1;
        for (size_t i = 0; i < w->n; i++) {
                if (pthread_create(&w->ts[i].thr, NULL, tenant_main,
                                   &w->ts[i])) {
                        osy_sfi_stop(w);
                        return osy_err_set(OSY_ERR_FATAL, errstr, errstr_size,
                                           "sf-ingest: cannot start a "
                                           "thread");
                }
                w->ts[i].started = 1;
        }
        w->running = 1;
        return OSY_OK;
}

void osy_sfi_stop(osy_sfi_t *w)
{
        if (!w)
                return;
        pthread_mutex_lock(&w->wake_lock);
        atomic_store(&w->stopping, 1);
        pthread_cond_broadcast(&w->wake_cond);
        pthread_mutex_unlock(&w->wake_lock);
        for (size_t i = 0; i < w->n; i++)
                if (w->ts[i].started) {
                        pthread_join(w->ts[i].thr, NULL);
                        w->ts[i].started = 0;
                }
        /* Last: the leases covered the tenant threads' final commits. */
        if (w->lease_started) {
                pthread_mutex_lock(&w->wake_lock);
                atomic_store(&w->lease_stop, 1);
                pthread_cond_broadcast(&w->wake_cond);
                pthread_mutex_unlock(&w->wake_lock);
                pthread_join(w->lease_thr, NULL);
                w->lease_started = 0;
        }
        w->running = 0;
}

void osy_sfi_destroy(osy_sfi_t *w)
{
        if (!w)
                return;
        osy_sfi_stop(w);
        for (size_t i = 0; i < w->n; i++)
                tenant_free(&w->ts[i]);
        free(w->ts);
        free(w->topic);
        free(w->prefix);
        free(w->client);
        free(w->redis_host);
        free(w->redis_password);
        pthread_mutex_destroy(&w->ack_lock);
        pthread_mutex_destroy(&w->wake_lock);
        pthread_cond_destroy(&w->wake_cond);
        free(w);
}

int osy_sfi_ready(void *opaque, char *reason, size_t reason_size)
{
        osy_sfi_t *w = opaque;

        if (!atomic_load(&w->lease_tried)) {
                snprintf(reason, reason_size, "tenant %s: %s (no lease yet)",
                         w->n ? w->ts[0].id : "?",
                         w->opts.mode == OSY_SFI_MODE_CDC
                             ? "CDC not subscribed"
                             : "no successful poll yet");
                return 0;
        }
        for (size_t i = 0; i < w->n; i++) {
                struct tenant *tn = &w->ts[i];

                /* A standby is ready while it could take over. */
                if (!lease_ok(tn)) {
                        if (atomic_load(&w->lease_redis_ok))
                                continue;
                        snprintf(reason, reason_size,
                                 "tenant %s: no lease, Redis unreachable",
                                 tn->id);
                        return 0;
                }
                if (w->opts.mode == OSY_SFI_MODE_CDC &&
                    !atomic_load(&tn->subscribed)) {
                        snprintf(reason, reason_size,
                                 "tenant %s: CDC not subscribed", tn->id);
                        return 0;
                }
                if (w->opts.mode == OSY_SFI_MODE_POLL &&
                    !atomic_load(&tn->poll_ok)) {
                        snprintf(reason, reason_size,
                                 "tenant %s: no successful poll yet", tn->id);
                        return 0;
                }
        }
        snprintf(reason, reason_size, "ready");
        return 1;
}

void osy_sfi_poll_now(osy_sfi_t *w)
{
        pthread_mutex_lock(&w->wake_lock);
        atomic_fetch_add(&w->poll_gen, 1);
        pthread_cond_broadcast(&w->wake_cond);
        pthread_mutex_unlock(&w->wake_lock);
}

void osy_sfi_get_stats(osy_sfi_t *w, struct osy_sfi_stats *out)
{
        memset(out, 0, sizeof(*out));
        for (size_t i = 0; i < w->n; i++) {
                struct tenant *tn = &w->ts[i];
                out->published += atomic_load(&tn->published);
                out->cdc_events += atomic_load(&tn->cdc_events);
                out->api_calls += atomic_load(&tn->api_calls);
                out->cometd_calls += atomic_load(&tn->cometd_calls);
                out->token_fetches += atomic_load(&tn->token_fetches);
                out->handshakes += atomic_load(&tn->handshakes);
                out->reconnects += atomic_load(&tn->reconnects);
                out->replay_invalid += atomic_load(&tn->replay_invalid);
                out->polls += atomic_load(&tn->polls);
                out->batch_failures += atomic_load(&tn->batch_failures);
                out->subscribed += (uint64_t)atomic_load(&tn->subscribed);
                out->lease_held += (uint64_t)lease_ok(tn);
                out->lease_acquired += atomic_load(&tn->lease_acquired);
                out->lease_lost += atomic_load(&tn->lease_lost);
        }
}

const char *osy_sfi_owner(const osy_sfi_t *w)
{
        return w->owner;
}

int osy_sfi_failed(osy_sfi_t *w)
{
        return atomic_load(&w->failed);
}
