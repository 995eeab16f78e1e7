/*
 * pipeline.c - Kafka first, spool second: per-webhook delivery tracking
 * with a deadline, spooling on failure or timeout, and a replay thread
 * that drains the spool in order once Kafka acknowledges again.
 */
#include "pipeline.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "optsync/log.h"

#define POLL_SLICE_MS 10   /* poller turn: bounds deadline lateness */
#define STATS_EVERY_MS 100 /* spool gauges refresh (cheap) */
#define REPLAY_IDLE_MS 200 /* replayer nap when the spool is empty */
#define REPLAY_MAX_BYTES 4194304
#define REPLAY_BACKOFF_MIN_MS 100
#define REPLAY_BACKOFF_MAX_MS 5000
#define DEFAULT_REPLAY_BATCH 500

/*
 * One submitted webhook. refs = one per expected delivery report plus one
 * for the completion; whoever drops the last frees it. The completion is
 * owned by whoever first sets done (under the lock): the last good report,
 * a failed report, the deadline, or submit itself when producing fails.
 */
struct pending {
        struct pending *prev, *next; /* deadline list, while !done */
        osy_pipe_t *p;
        const struct osy_acwh_out *evs;
        size_t n;
        size_t left; /* good reports still needed */
        int refs;
        int failed;
        int done;
        int64_t start_ms, deadline_ms; /* monotonic */
        osy_pipe_done_cb *cb;
        void *opaque;
        struct pending *expired_next; /* poller's local list */
};

/* A replayed record's delivery report lands in its slot. */
struct replay_slot {
        osy_pipe_t *p;
        size_t idx;
};

struct osy_pipe_s {
        osy_kafka_producer_t *prod; /* NULL: no Kafka (baseline mode) */
        char *topic;
        osy_spool_t *spool;
        int64_t ack_timeout_ms;
        size_t replay_batch;

        pthread_mutex_t lock;
        pthread_cond_t cond; /* pending count changes; replayer wakeups */
        struct pending list; /* sentinel; oldest deadline first */
        size_t n_pending;

        /* Closed (osy_pipe_close): submits go to the spool. Set under
         * lock; read without it only for readiness. */
        atomic_int closed;
        int submitting; /* submits past the closed check (under lock) */

        atomic_int degraded;    /* spool first: Kafka failed recently */
        atomic_int stop_replay; /* replayer: finish the batch and exit */
        atomic_int stop_poller;
        pthread_t poller, replayer;
        int poller_started, replayer_started;

        /* Replay batch state, under lock. */
        size_t rp_outstanding;
        unsigned char *rp_ok;
        pthread_cond_t rp_cond;

        osy_series_t *m_latency;    /* produce -> last good report */
        osy_series_t *m_spooled;    /* events appended to the spool */
        osy_series_t *m_spool_fail; /* events neither in Kafka nor spool */
        osy_series_t *m_replayed;   /* spool records delivered */
        osy_series_t *m_timeouts;   /* webhooks past the ack deadline */
        osy_series_t *m_depth;      /* gauge: undelivered spool records */
        osy_series_t *m_bytes;      /* gauge: spool file size */
        osy_series_t *m_age;        /* gauge: oldest undelivered, seconds */
        osy_series_t *m_degraded;   /* gauge: 1 while spooling first */
};

static int64_t mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait on @p cond for up to @p ms (lock held). */
static void cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *lock, int ms)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(cond, lock, &ts);
}

/* ---- metrics ------------------------------------------------------------- */

static osy_series_t *series(osy_metrics_t *reg, int kind, const char *name,
                            const char *help)
{
        static const double buckets[] = {0.001, 0.002, 0.005, 0.01, 0.025,
                                         0.05,  0.1,   0.25,  0.5,  1,
                                         2.5,   5,     10};
        char errstr[OSY_ERRSTR_SIZE];
        osy_metric_t *m = NULL;
        osy_err_t err;

        if (!reg)
                return NULL;
        err = kind == 0   ? osy_metrics_counter_new(reg, &m, name, help, NULL,
                                                    errstr, sizeof(errstr))
              : kind == 1 ? osy_metrics_gauge_new(reg, &m, name, help, NULL,
                                                  errstr, sizeof(errstr))
                          : osy_metrics_histogram_new(
                                reg, &m, name, help, NULL, buckets,
                                sizeof(buckets) / sizeof(buckets[0]), errstr,
                                sizeof(errstr));
        if (err) {
                osy_log_error("metrics: %s", errstr);
                return NULL;
        }
        return osy_metric_series(m, NULL);
}

static void metrics_init(osy_pipe_t *p, osy_metrics_t *reg)
{
        p->m_latency = series(reg, 2, "optsync_ingest_produce_latency_seconds",
                              "Time from produce to Kafka's last delivery "
                              "report (acks=all) of one webhook");
        p->m_spooled = series(reg, 0, "optsync_ingest_spooled_events_total",
                              "Events appended to the durable spool");
        p->m_spool_fail =
            series(reg, 0, "optsync_ingest_spool_failures_total",
                   "Events that reached neither Kafka nor the spool (503)");
        p->m_replayed = series(reg, 0, "optsync_ingest_replayed_events_total",
                               "Spooled events delivered to Kafka");
        p->m_timeouts = series(reg, 0, "optsync_ingest_ack_timeouts_total",
                               "Webhooks whose delivery report did not "
                               "arrive within the ack timeout");
        p->m_depth    = series(reg, 1, "optsync_ingest_spool_depth",
                               "Spooled events not yet delivered to Kafka");
        p->m_bytes    = series(reg, 1, "optsync_ingest_spool_bytes",
                               "Size of the spool file");
        p->m_age = series(reg, 1, "optsync_ingest_spool_oldest_age_seconds",
                          "Age of the oldest undelivered spooled event");
        p->m_degraded = series(reg, 1, "optsync_ingest_spooling",
                               "1 while new events go to the spool first "
                               "(Kafka failed; replay in progress)");
}

static void stats_refresh(osy_pipe_t *p)
{
        struct osy_spool_stats st;

        osy_gauge_set(p->m_degraded, atomic_load(&p->degraded));
        if (!p->spool)
                return;
        osy_spool_stats(p->spool, &st);
        osy_gauge_set(p->m_depth, (double)st.records);
        osy_gauge_set(p->m_bytes, (double)st.bytes);
        osy_gauge_set(p->m_age,
                      st.oldest_ms ? (double)(wall_ms() - st.oldest_ms) / 1000.0
                                   : 0.0);
}

/* ---- spooling ------------------------------------------------------------ */

/* Append a webhook's events to the spool; switches to spool-first mode,
 * since Kafka failed (or was bypassed because earlier events wait). */
static osy_pipe_result_t spool_events(osy_pipe_t *p,
                                      const struct osy_acwh_out *evs, size_t n)
{
        struct osy_spool_rec *recs = calloc(n ? n : 1, sizeof(*recs));
        char errstr[OSY_ERRSTR_SIZE];
        osy_err_t err;

        if (!atomic_exchange(&p->degraded, 1) && !atomic_load(&p->closed))
                osy_log_warn("ac-ingest: Kafka did not acknowledge; "
                             "spooling events until it does");
        if (!recs) {
                osy_counter_add(p->m_spool_fail, (double)n);
                return OSY_PIPE_FAILED;
        }
        for (size_t i = 0; i < n; i++) {
                recs[i].key       = evs[i].key;
                recs[i].key_len   = evs[i].key_len;
                recs[i].value     = evs[i].value;
                recs[i].value_len = evs[i].value_len;
        }
        err = osy_spool_append(p->spool, recs, n, wall_ms(), errstr,
                               sizeof(errstr));
        free(recs);
        pthread_mutex_lock(&p->lock);
        pthread_cond_broadcast(&p->cond); /* wake the replayer */
        pthread_mutex_unlock(&p->lock);
        if (err) {
                osy_log_error("ac-ingest: %zu event(s) neither in Kafka nor "
                              "spooled: %s",
                              n, errstr);
                osy_counter_add(p->m_spool_fail, (double)n);
                return OSY_PIPE_FAILED;
        }
        osy_counter_add(p->m_spooled, (double)n);
        return OSY_PIPE_SPOOLED;
}

/* ---- pending webhooks ---------------------------------------------------- */

static void unlink_pending(osy_pipe_t *p, struct pending *pd)
{
        pd->prev->next = pd->next;
        pd->next->prev = pd->prev;
        pd->prev = pd->next = NULL;
        p->n_pending--;
        pthread_cond_broadcast(&p->cond);
}

static void unref(osy_pipe_t *p, struct pending *pd, int n)
{
        int last;

        pthread_mutex_lock(&p->lock);
        pd->refs -= n;
        last = pd->refs == 0;
        pthread_mutex_unlock(&p->lock);
        if (last)
                free(pd);
}

/* The owner of a completion: spool if Kafka failed, then answer. */
static void complete(osy_pipe_t *p, struct pending *pd, int kafka_ok)
{
        osy_pipe_result_t res = OSY_PIPE_KAFKA;

        if (kafka_ok)
                osy_histogram_observe(
                    p->m_latency, (double)(mono_ms() - pd->start_ms) / 1000.0);
        else
                res = spool_events(p, pd->evs, pd->n);
        pd->cb(pd->opaque, res);
        unref(p, pd, 1);
}

static void pending_dr(void *opaque, osy_err_t err, const char *errstr,
                       int32_t partition, int64_t offset)
{
        struct pending *pd = opaque;
        osy_pipe_t *p      = pd->p;
        int owner          = 0;
        (void)partition;
        (void)offset;

        pthread_mutex_lock(&p->lock);
        if (err)
                pd->failed = 1;
        else if (pd->left)
                pd->left--;
        if (!pd->done && (pd->failed || pd->left == 0)) {
                pd->done = 1;
                owner    = 1;
                unlink_pending(p, pd);
        }
        pthread_mutex_unlock(&p->lock);
        if (err && owner)
                osy_log_warn("ac-ingest: Kafka delivery failed (%s); "
                             "spooling the webhook",
                             errstr);
        if (owner)
                complete(p, pd, !pd->failed);
        unref(p, pd, 1);
}

/* osy_pipe_submit() on an open pipeline with a producer. */
static int submit_open(osy_pipe_t *p, const struct osy_acwh_out *evs, size_t n,
                       osy_pipe_done_cb *cb, void *opaque,
                       osy_pipe_result_t *res)
{
        char errstr[OSY_ERRSTR_SIZE];
        struct pending *pd;
        size_t i;
        int owner = 0;

        /* Earlier events wait in the spool: queue behind them, in order. */
        if (atomic_load(&p->degraded)) {
                *res = spool_events(p, evs, n);
                return 0;
        }
        if (!(pd = calloc(1, sizeof(*pd)))) {
                *res = spool_events(p, evs, n);
                return 0;
        }
        pd->p           = p;
        pd->evs         = evs;
        pd->n           = n;
        pd->left        = n;
        pd->refs        = (int)n + 1;
        pd->cb          = cb;
        pd->opaque      = opaque;
        pd->start_ms    = mono_ms();
        pd->deadline_ms = pd->start_ms + p->ack_timeout_ms;
        pthread_mutex_lock(&p->lock);
        pd->prev           = p->list.prev;
        pd->next           = &p->list;
        p->list.prev->next = pd;
        p->list.prev       = pd;
        p->n_pending++;
        pthread_mutex_unlock(&p->lock);

        for (i = 0; i < n; i++)
                if (osy_kafka_produce(p->prod, p->topic, evs[i].key,
                                      evs[i].key_len, evs[i].value,
                                      evs[i].value_len, pending_dr, pd, errstr,
                                      sizeof(errstr)))
                        break;
        if (i == n)
                return 1;

        /* Producing failed (local queue full, fatal error): the events
         * not produced get no report, so drop their references. */
        osy_log_warn("ac-ingest: cannot produce: %s; spooling", errstr);
        pthread_mutex_lock(&p->lock);
        pd->refs -= (int)(n - i);
        pd->failed = 1;
        if (!pd->done) {
                pd->done = 1;
                owner    = 1;
                unlink_pending(p, pd);
        }
        pthread_mutex_unlock(&p->lock);
        if (!owner) {
                /* A report or the deadline already owns the answer. */
                unref(p, pd, 0);
                return 1;
        }
        *res = spool_events(p, evs, n);
        unref(p, pd, 1);
        return 0;
}

int osy_pipe_submit(osy_pipe_t *p, const struct osy_acwh_out *evs, size_t n,
                    osy_pipe_done_cb *cb, void *opaque, osy_pipe_result_t *res)
{
        int async;

        if (!p->prod || n == 0) {
                *res = OSY_PIPE_KAFKA; /* baseline mode, or nothing to do */
                return 0;
        }
        /* A request whose body was still arriving when the process began
         * to stop comes here after osy_pipe_close(): its events go to the
         * spool, replayed by the next start, and it is answered. */
        pthread_mutex_lock(&p->lock);
        if (atomic_load(&p->closed)) {
                pthread_mutex_unlock(&p->lock);
                *res = spool_events(p, evs, n);
                return 0;
        }
        p->submitting++;
        pthread_mutex_unlock(&p->lock);

        async = submit_open(p, evs, n, cb, opaque, res);

        pthread_mutex_lock(&p->lock);
        if (--p->submitting == 0 && atomic_load(&p->closed))
                pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        return async;
}

/* Hand every pending past its deadline (or all, with @p all) to the
 * spool. Runs on the poller thread (or osy_pipe_close(), after it
 * stopped). */
static void expire(osy_pipe_t *p, int64_t now, int all)
{
        struct pending *expired = NULL, **tail = &expired;

        pthread_mutex_lock(&p->lock);
        while (p->list.next != &p->list &&
               (all || p->list.next->deadline_ms <= now)) {
                struct pending *pd = p->list.next;
                pd->done           = 1;
                unlink_pending(p, pd);
                *tail = pd;
                tail  = &pd->expired_next;
        }
        pthread_mutex_unlock(&p->lock);
        for (struct pending *pd = expired, *next; pd; pd = next) {
                next = pd->expired_next;
                osy_counter_inc(p->m_timeouts);
                /* Kafka may still deliver it: a duplicate with the same
                 * id, which the rules' dedup drops. Never a loss. */
                complete(p, pd, 0);
        }
}

static void *poller_main(void *arg)
{
        osy_pipe_t *p      = arg;
        int64_t next_stats = 0;

        while (!atomic_load(&p->stop_poller)) {
                int64_t now;

                osy_kafka_producer_poll(p->prod, POLL_SLICE_MS);
                now = mono_ms();
                expire(p, now, 0);
                if (now >= next_stats) {
                        stats_refresh(p);
                        next_stats = now + STATS_EVERY_MS;
                }
        }
        return NULL;
}

/* ---- replay -------------------------------------------------------------- */

static void replay_dr(void *opaque, osy_err_t err, const char *errstr,
                      int32_t partition, int64_t offset)
{
        struct replay_slot *s = opaque;
        osy_pipe_t *p         = s->p;
        (void)errstr;
        (void)partition;
        (void)offset;

        pthread_mutex_lock(&p->lock);
        p->rp_ok[s->idx] = err == OSY_OK;
        if (--p->rp_outstanding == 0)
                pthread_cond_broadcast(&p->rp_cond);
        pthread_mutex_unlock(&p->lock);
}

/* Produce one batch and wait for every report. @returns how many records
 * from the start of the batch Kafka acknowledged, in a row. */
static size_t replay_batch(osy_pipe_t *p, const struct osy_spool_batch *b,
                           struct replay_slot *slots)
{
        char errstr[OSY_ERRSTR_SIZE];
        size_t k   = 0;
        int purged = 0;
        int64_t start;

        pthread_mutex_lock(&p->lock);
        memset(p->rp_ok, 0, b->n);
        p->rp_outstanding = 0;
        pthread_mutex_unlock(&p->lock);
        for (size_t i = 0; i < b->n; i++) {
                slots[i].p   = p;
                slots[i].idx = i;
                pthread_mutex_lock(&p->lock);
                p->rp_outstanding++;
                pthread_mutex_unlock(&p->lock);
                if (osy_kafka_produce(p->prod, p->topic, b->items[i].key,
                                      b->items[i].key_len, b->items[i].value,
                                      b->items[i].value_len, replay_dr,
                                      &slots[i], errstr, sizeof(errstr))) {
                        pthread_mutex_lock(&p->lock);
                        p->rp_outstanding--;
                        pthread_mutex_unlock(&p->lock);
                        osy_log_warn("ac-ingest: replay: %s", errstr);
                        break; /* the rest waits for the next round */
                }
        }
        /* The slots must outlive every report: wait for all of them. */
        start = mono_ms();
        pthread_mutex_lock(&p->lock);
        while (p->rp_outstanding > 0) {
                cond_wait_ms(&p->rp_cond, &p->lock, 100);
                if (!purged && atomic_load(&p->stop_replay) &&
                    mono_ms() - start > 1000) {
                        /* Shutting down with Kafka away: fail what is
                         * still queued; it stays in the spool. */
                        pthread_mutex_unlock(&p->lock);
                        rd_kafka_purge(osy_kafka_producer_handle(p->prod),
                                       RD_KAFKA_PURGE_F_QUEUE);
                        pthread_mutex_lock(&p->lock);
                        purged = 1;
                }
        }
        while (k < b->n && p->rp_ok[k])
                k++;
        pthread_mutex_unlock(&p->lock);
        return k;
}

static void replay_nap(osy_pipe_t *p, int ms)
{
        pthread_mutex_lock(&p->lock);
        if (!atomic_load(&p->stop_replay))
                cond_wait_ms(&p->cond, &p->lock, ms);
        pthread_mutex_unlock(&p->lock);
}

static void *replayer_main(void *arg)
{
        osy_pipe_t *p            = arg;
        struct osy_spool_batch b = {0};
        struct replay_slot *slots;
        int backoff = REPLAY_BACKOFF_MIN_MS;
        char errstr[OSY_ERRSTR_SIZE];

        if (!(slots = calloc(p->replay_batch, sizeof(*slots)))) {
                osy_log_error("ac-ingest: replay: out of memory");
                return NULL;
        }
        while (!atomic_load(&p->stop_replay)) {
                size_t k;

                if (osy_spool_peek(p->spool, &b, p->replay_batch,
                                   REPLAY_MAX_BYTES, errstr, sizeof(errstr))) {
                        osy_log_error("ac-ingest: replay: %s", errstr);
                        replay_nap(p, REPLAY_BACKOFF_MAX_MS);
                        continue;
                }
                if (b.n == 0) {
                        /* Drained: new events may go straight to Kafka. */
                        if (atomic_load(&p->degraded) &&
                            osy_spool_depth(p->spool) == 0 &&
                            atomic_exchange(&p->degraded, 0))
                                osy_log_info("ac-ingest: spool drained; "
                                             "producing directly again");
                        replay_nap(p, REPLAY_IDLE_MS);
                        continue;
                }
                k = replay_batch(p, &b, slots);
                if (k &&
                    osy_spool_consume(p->spool, &b, k, errstr, sizeof(errstr)))
                        osy_log_warn("ac-ingest: replay: %s", errstr);
                osy_counter_add(p->m_replayed, (double)k);
                if (k < b.n) {
                        osy_log_warn("ac-ingest: replay: Kafka took %zu of "
                                     "%zu spooled event(s); retrying in "
                                     "%d ms",
                                     k, b.n, backoff);
                        replay_nap(p, backoff);
                        backoff = backoff * 2 > REPLAY_BACKOFF_MAX_MS
                                      ? REPLAY_BACKOFF_MAX_MS
                                      : backoff * 2;
                } else {
                        backoff = REPLAY_BACKOFF_MIN_MS;
                }
        }
        osy_spool_batch_clear(&b);
        free(slots);
        return NULL;
}

/* ---- life cycle ---------------------------------------------------------- */

/* Connect before the first webhook: a fresh idempotent producer needs
 * the cluster's metadata and a producer id, which can take longer than
 * the ack timeout. Kafka being down here is no error: the spool takes
 * over. */
static void warmup(osy_pipe_t *p, int timeout_ms)
{
        rd_kafka_t *rk      = osy_kafka_producer_handle(p->prod);
        rd_kafka_topic_t *t = rd_kafka_topic_new(rk, p->topic, NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err;

        if (!t)
                return;
        err = rd_kafka_metadata(rk, 0, t, &md, timeout_ms);
        if (err)
                osy_log_warn("ac-ingest: no Kafka metadata for %s within %d ms "
                             "(%s); webhooks go to the spool until it answers",
                             p->topic, timeout_ms, rd_kafka_err2str(err));
        if (md)
                rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(t);
}

osy_err_t osy_pipe_new(osy_pipe_t **pp, const struct osy_pipe_opts *opts,
                       char *errstr, size_t errstr_size)
{
        osy_pipe_t *p = NULL;
        osy_err_t err;

        *pp = NULL;
        if (!opts || !opts->topic || !*opts->topic)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "pipeline: no topic");
        if (opts->kafka && !opts->spool)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "pipeline: a spool is required with "
                                   "Kafka");
        if (!(p = calloc(1, sizeof(*p))))
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "out of memory");
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        pthread_cond_init(&p->rp_cond, NULL);
        p->list.next = p->list.prev = &p->list;
        p->spool                    = opts->spool;
        p->ack_timeout_ms =
            opts->ack_timeout_ms > 0 ? opts->ack_timeout_ms : 2000;
        p->replay_batch =
            opts->replay_batch ? opts->replay_batch : DEFAULT_REPLAY_BATCH;
        metrics_init(p, opts->metrics);
        if (!(p->topic = strdup(opts->topic)) ||
            !(p->rp_ok = calloc(p->replay_batch, 1))) {
                err = osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                  "out of memory");
                goto out;
        }
        if (!opts->kafka) {
                *pp = p; /* baseline mode: no threads, no Kafka */
                return OSY_OK;
        }
        if ((err = osy_kafka_producer_new(&p->prod, opts->kafka, errstr,
                                          errstr_size)))
                goto out;
        if (opts->warmup_ms > 0)
                warmup(p, opts->warmup_ms);
        /* Left-over spool records go first, so new events queue behind. */
        if (osy_spool_depth(p->spool) > 0)
                atomic_store(&p->degraded, 1);
        stats_refresh(p);
        if (pthread_create(&p->poller, NULL, poller_main, p)) {
                err = osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                  "pipeline: cannot start a thread");
                goto out;
        }
        p->poller_started = 1;
        if (pthread_create(&p->replayer, NULL, replayer_main, p)) {
                err = osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                  "pipeline: cannot start a thread");
                goto out;
        }
        p->replayer_started = 1;
        *pp                 = p;
        p                   = NULL;
        err                 = OSY_OK;
out:
        osy_pipe_destroy(p);
        return err;
}

size_t osy_pipe_drain(osy_pipe_t *p, int timeout_ms)
{
        int64_t deadline = mono_ms() + timeout_ms;
        size_t n;

        pthread_mutex_lock(&p->lock);
        while (p->n_pending > 0 && mono_ms() < deadline)
                cond_wait_ms(&p->cond, &p->lock, 50);
        n = p->n_pending;
        pthread_mutex_unlock(&p->lock);
        return n;
}

int osy_pipe_kafka_ok(osy_pipe_t *p)
{
        return !atomic_load(&p->degraded);
}

int osy_pipe_ready(osy_pipe_t *p, char *reason, size_t reason_size)
{
        struct osy_spool_stats st = {0};
        char why[OSY_ERRSTR_SIZE];

        if (atomic_load(&p->closed)) {
                snprintf(reason, reason_size, "shutting down");
                return 0;
        }
        if (!p->prod)
                return 1;
        if (osy_pipe_fatal(p, why, sizeof(why))) {
                snprintf(reason, reason_size, "%s", why);
                return 0;
        }
        if (!atomic_load(&p->degraded))
                return 1;
        osy_spool_stats(p->spool, &st);
        if (st.writable)
                return 1;
        snprintf(reason, reason_size,
                 "Kafka does not acknowledge and the spool is not writable "
                 "(%" PRIu64 " bytes)",
                 st.bytes);
        return 0;
}

osy_err_t osy_pipe_fatal(osy_pipe_t *p, char *errstr, size_t errstr_size)
{
        if (!p->prod)
                return OSY_OK;
        return osy_kafka_producer_fatal(p->prod, errstr, errstr_size);
}

void osy_pipe_close(osy_pipe_t *p)
{
        if (!p)
                return;
        pthread_mutex_lock(&p->lock);
        if (atomic_load(&p->closed)) {
                pthread_mutex_unlock(&p->lock);
                return;
        }
        atomic_store(&p->closed, 1);
        /* A submit past the check may be producing: its pending entry
         * must be listed before expire() below looks. */
        while (p->submitting > 0)
                pthread_cond_wait(&p->cond, &p->lock);
        /* Replayer first: its in-flight reports need the poller. */
        atomic_store(&p->stop_replay, 1);
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        if (p->replayer_started)
                pthread_join(p->replayer, NULL);
        p->replayer_started = 0;
        atomic_store(&p->stop_poller, 1);
        if (p->poller_started)
                pthread_join(p->poller, NULL);
        p->poller_started = 0;
        /* Whatever Kafka has not acknowledged by now goes to the spool, so
         * every caller gets its answer before we go. */
        expire(p, 0, 1);
}

void osy_pipe_destroy(osy_pipe_t *p)
{
        if (!p)
                return;
        osy_pipe_close(p);
        if (p->prod) {
                stats_refresh(p);
                osy_kafka_producer_destroy(p->prod);
        }
        pthread_cond_destroy(&p->rp_cond);
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        free(p->rp_ok);
        free(p->topic);
        free(p);
}
