/*
 * rules_worker.c - the batch loop of the rules worker: Kafka in, one Redis
 * round trip to read, pure decisions in order, outputs produced and
 * acknowledged, one Redis round trip to write state and dedup entries, then
 * offsets stored. Commit order is the at-least-once contract: outputs ->
 * state + dedup -> offset, so a crash anywhere means reprocessing, never a
 * skipped event, and reprocessing is harmless (commands are desired states
 * with deterministic ids).
 */
#include "rules_worker.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "optsync/envelope.h"
#include "optsync/kafka.h"
#include "optsync/log.h"
#include "optsync/topics.h"
#include "rules_decide.h"
#include "rules_state.h"

/*
 * Apply a batch's person states: each is written unless an event with a
 * later occurrence time was applied meanwhile (by another member during a
 * rebalance: then that one stands). Compare and set are atomic per person,
 * and one call covers the batch, so Redis dispatches once, not once per
 * person. Version times are below 2^53 ms, exact in Lua numbers. The
 * events are remembered (dedup) by HSETs in the same pipeline.
 *
 * One redis.call per person in the usual case: SET ... GET writes and
 * returns what was there (Redis >= 6.2); only when that was newer is it
 * put back (with a fresh TTL), which no one can observe in between since
 * a script runs atomically. A GET before every SET cost about a third of
 * the script's time.
 *
 * KEYS: the state keys. ARGV: state TTL ms, then per key: the state and
 * its version ms. Returns the number of writes refused as older.
 */
const char osy_rules_apply_lua[] =
    "local sttl, refused = ARGV[1], 0\n"
    "for i = 1, #KEYS do\n"
    "  local ms = tonumber(ARGV[2 * i + 1])\n"
    "  local cur = redis.call('SET', KEYS[i], ARGV[2 * i], 'PX', sttl, "
    "'GET')\n"
    "  local cms = cur and tonumber(string.match(cur, '^1|(%d+)|'))\n"
    "  if cms and cms > ms then\n"
    "    redis.call('SET', KEYS[i], cur, 'PX', sttl)\n"
    "    refused = refused + 1\n"
    "  end\n"
    "end\n"
    "return refused\n";

/* Longest a batch spends on AC look-ups before it goes out with what is
 * decided (see decide_batch). About one look-up at AC's 5 calls/s. */
#define RULES_LOOKUP_BUDGET_MS 250

#define MAX_OUT 4 /* sf.command, ac.command, audit | dlq, audit */
/* Batches produced and not yet written. 7: once the dedup writes got
 * cheaper, A/B in bench/rules.sh (alternating, 6 pairs) gave 7 the win in
 * 5, by 4-12% (e.g. 87,125 against 80,747 events/s), for about 5 MB more
 * RSS (53 MB). Before that, 5 won against 4 and 6 did not help. */
#define MAX_INFLIGHT 7
/* Ring slots: the batches in flight, the one whose Redis read is on its
 * way (P) and the one decoded meanwhile (X). */
#define BATCH_SLOTS (MAX_INFLIGHT + 2)
#define IDLE_POLL_MS 100     /* consumer poll when nothing is in flight */
#define BUSY_POLL_MS 2       /* ... and while acknowledgements are awaited */
#define WRITE_ATTEMPTS 4     /* Redis writes retried in place */
#define PRODUCE_ATTEMPTS 3   /* failed deliveries re-produced in place */
#define LAG_INTERVAL_MS 1000 /* consumer lag gauge refresh */
#define KICK_INTERVAL_MS 10  /* kick_fetcher() at most this often */
#define KICK_TIMEOUT_MS 50   /* ... waiting this long for the leaders */
#define KICK_BACKOFF_MS 1000 /* ... and not again this soon if it failed */
#define OVERLAY_BUCKETS 4096
#define WARM_TOPICS 4 /* the outputs: see warm_producer() */
/* Batches this small are parsed on the main thread alone. */
#define DECODE_SPLIT_MIN 64
/* Redis writers, each a thread with its own connection: a batch's write
 * (about 8 ms of Redis time per 1,000 events, 17 ms on the clock) was
 * the one serial stage of the pipeline, and the worker waited on it.
 * Writes of different batches commute (state versions decide, dedup entries
 * are idempotent); offsets are still stored in batch order. */
#define WRITERS 2
/* Arenas of a batch slot larger than this are freed after use. */
#define ARENA_KEEP_MAX (4u << 20)
/* States per EVALSHA of the apply script: a script runs atomically, so
 * one over a whole batch (8 ms for 1,000) held up the next batch's MGET
 * on the other connection for that long; chunks let it in between. */
#define APPLY_CHUNK 200

struct batch;

/* One output of a message, from encode to acknowledgement. */
struct rout {
        osy_topic_t topic;
        size_t off; /* the JSON: in the batch's output arena */
        size_t len;
        const void *key; /* borrowed: person key or the record's key */
        size_t keylen;
        int state; /* 0 in flight, 1 acknowledged, 2 failed */
        struct batch *b;
};

/* One consumed record through a batch. */
struct rmsg {
        rd_kafka_message_t *rkm; /* owned until the batch ends */
        int parsed;              /* 1: ev holds a valid event */
        int decoded;             /* 1: ... and its person is known */
        struct osy_msg ev;
        int person;    /* index in the batch's persons[], -1 if none */
        int next_same; /* next message of the same person, -1 */
        int dup_redis; /* seen before (in Redis, or decided in flight) */
        int set_dedup; /* to be remembered as seen */
        int dlq;       /* dead-lettered */
        struct rout out[MAX_OUT];
        int n_out;
        osy_rule_t rule;
        osy_outcome_t outcome;
        int64_t t_in; /* monotonic ms when polled */
};

/* A person touched by a batch. */
struct rperson {
        const char *pkey; /* tenant|email: the Kafka key (in the arena) */
        const char *skey; /* its state key (in the arena) */
        size_t pkey_off, pkey_len, skey_off;
        struct osy_rules_person st; /* current, events applied in order */
        int first, last;            /* message indices */
        int changed;                /* st must be written */
        int nmsgs;
};

/* A batch: decided together, produced, acknowledged, then written. Its
 * arrays stay allocated between uses of the slot. */
struct batch {
        struct rmsg *msgs;
        size_t n, msgs_cap;
        struct rperson *persons;
        size_t persons_n, persons_cap;
        int *ptable; /* open addressing into persons[], -1 empty */
        size_t ptable_cap;
        /* Every key of the batch, back to back: keys are short and fixed
         * buffers per record would dominate the worker's memory. Filled
         * while decoding, never moved after (outputs point into it). */
        char *arena;
        size_t arena_len, arena_cap;
        /* The outputs' JSON, back to back: lent to the producer (no copy)
         * until acknowledged, and freed as a whole with the batch rather
         * than as thousands of buffers. */
        char *oarena;
        size_t oarena_len, oarena_cap;
        int64_t acks_outstanding;
        int produce_attempts;
        int writing; /* handed to writer wr (its write not taken yet) */
        int wr;
        int written; /* the write is over: write_err says how */
        osy_err_t write_err;
        char write_why[OSY_TEXT_MAX];
        int dlq_head; /* the worker's dlq_head record, alone */
        /* It changed a person an earlier batch in flight changed too: its
         * write waits for theirs (see complete()). */
        int shares_persons;
        /* Its MGET: 1 sent, the reply owed on the worker's connection;
         * -1 the send failed (read_why says why); 0 none needed. */
        int read_sent;
        uint64_t read_seq;  /* its read's number (w->read_seq) */
        uint64_t taken_seq; /* reads sent when its write was taken */
        osy_err_t read_err;
        char read_why[OSY_TEXT_MAX];
        int64_t produced_at, t_start, t_read, t_decided; /* monotonic ms */
        int64_t t_acked, t_decoded;
};

/* The state of a person decided by a batch in flight, not yet in Redis:
 * later batches decide from it instead of Redis. refs counts the batches
 * in flight that changed it. */
struct ov_person {
        struct ov_person *next;
        size_t hash; /* of pkey: compared before the string */
        char *pkey;
        struct osy_rules_person st;
        int refs;
};

/* An event decided by a batch in flight: its dedup entry is not yet set.
 * Entries are recycled through a free list (one per event otherwise
 * means a malloc and a free per event). */
struct ov_id {
        struct ov_id *next;
        size_t hash;
        char id[OSY_ID_BUFSZ];
        int refs;
};

/* A queued record and when it was polled. */
struct qitem {
        rd_kafka_message_t *rkm;
        int64_t t_in;
};

/* The decoder thread: parses half of each large batch (parse_batch). */
struct decoder {
        pthread_t th;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        int started, stop;
        struct rmsg *msgs; /* the job: msgs[0..n) */
        size_t n;
        int busy; /* a job is posted and not done */
};

/* Metrics series, looked up once (all NULL-safe). */
struct rmetrics {
        osy_metric_t *decisions;
        osy_series_t *dedup_hits, *stale, *cache_hit, *cache_miss;
        osy_series_t *cache_ratio, *lag, *latency, *events, *dlq;
        osy_series_t *rtt, *lookups, *lookup_fail, *blocked, *write_stale;
        osy_series_t *not_owned;
        osy_series_t *dec[OSY_RULE__CNT][OSY_OUTCOME__CNT];
};

struct osy_rules_worker_s {
        struct osy_rules_worker_opts o;
        struct osy_rules_ctx ctx;
        struct osy_topic_names topics;
        char *redis_prefix;
        osy_kafka_producer_t *producer;
        osy_kafka_consumer_t *consumer;
        osy_redis_t *redis;  /* reads (main thread) */
        osy_redis_t *dredis; /* dedup checks of possible replays (main) */
        osy_redis_script_t *apply;

        /* The Redis writes run on threads of their own with their own
         * connections, so deciding the next batches overlaps the writes
         * of acknowledged ones (it took a third of the time when the loop
         * waited for them). A batch is not touched by the main thread
         * while a writer has it. */
        struct rwriter {
                osy_rules_worker_t *w;
                osy_redis_t *conn;
                pthread_t th;
                int started;
                struct batch *job; /* being written, or written, not taken */
                int done;
                osy_err_t err;
                char why[OSY_TEXT_MAX];
                long long refused;
                int rtt;
        } writers[WRITERS];
        struct decoder dec;
        pthread_mutex_t wlock;
        pthread_cond_t wcond;
        int wstop;

        /* Records polled and not yet decided, in poll order. */
        struct qitem *queue;
        size_t q_n, q_cap;

        /* Batches: in flight from b_head for b_count slots (a ring); the
         * next free slot is the one being decided. */
        struct batch batches[BATCH_SLOTS];
        size_t b_head, b_count;
        /* After the b_count batches in flight: P, decoded with its Redis
         * read sent and not yet answered, then X, decoded (its read sent
         * too) while Redis answers P's. The overlay is applied when a
         * reply is taken in, so X sees what P decides; written batches
         * leave the overlay as may_release() allows. */
        int have_p, have_x;
        /* Reads sent so far; a written batch leaves the overlay only once
         * every read still unanswered was sent after its write was seen
         * to be over (batch.taken_seq). */
        uint64_t read_seq;
        struct ov_person *ovp[OVERLAY_BUCKETS];
        struct ov_id *ovi[OVERLAY_BUCKETS];
        struct ov_id *ovi_free; /* recycled entries */
        rd_kafka_topic_t *warm_rkt[WARM_TOPICS];

        /* The failure being backed off, for the record at the queue's
         * head (identified by position). */
        int blocked;
        int64_t blocked_until; /* monotonic ms */
        struct osy_retry_state retry;
        char retry_topic[OSY_TOPIC_NAME_SIZE];
        int32_t retry_partition;
        int64_t retry_offset;
        char first_error[OSY_TEXT_MAX];
        int64_t first_failed_at;
        int paused;
        /* Retries of the head ran out on an infrastructure failure: the
         * next batch dead-letters it alone, with this reason. */
        int dlq_head;
        char dlq_reason[OSY_REASON_MAX];
        char last_error[OSY_TEXT_MAX];

        /* Set when the worker cannot go on safely: the next step fails. */
        char fatal_why[OSY_TEXT_MAX];
        int64_t lag_at;
        int64_t kick_at; /* last kick_fetcher() */
        double cache_hits, cache_misses;
        _Atomic int ready;
        int closed;
        struct osy_rules_worker_stats stats;
        struct rmetrics m;
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

/* ---- metrics ----------------------------------------------------------------
 */

static osy_err_t metrics_init(osy_rules_worker_t *w, char *errstr,
                              size_t errstr_size)
{
        static const double lat_buckets[]       = {0.001, 0.0025, 0.005, 0.01,
                                                   0.025, 0.05,   0.1,   0.25,
                                                   0.5,   1,      2.5,   10};
        static const char *const rule_outcome[] = {"rule", "outcome", NULL};
        osy_metrics_t *reg                      = w->o.metrics;
        osy_metric_t *f;
        osy_err_t err;

        if (!reg)
                return OSY_OK;
#define COUNTER(field, name, help)                                             \
        do {                                                                   \
                if ((err = osy_metrics_counter_new(reg, &f, name, help, NULL,  \
                                                   errstr, errstr_size)))      \
                        return err;                                            \
                w->m.field = osy_metric_series(f, NULL);                       \
        } while (0)
#define GAUGE(field, name, help)                                               \
        do {                                                                   \
                if ((err = osy_metrics_gauge_new(reg, &f, name, help, NULL,    \
                                                 errstr, errstr_size)))        \
                        return err;                                            \
                w->m.field = osy_metric_series(f, NULL);                       \
        } while (0)
        if ((err = osy_metrics_counter_new(
                 reg, &w->m.decisions, "optsync_rules_decisions_total",
                 "Events decided, by rule and outcome.", rule_outcome, errstr,
                 errstr_size)))
                return err;
        COUNTER(dedup_hits, "optsync_rules_dedup_hits_total",
                "Events dropped because their id was seen before.");
        COUNTER(stale, "optsync_rules_stale_total",
                "Events older than the person's last applied event.");
        COUNTER(cache_hit, "optsync_rules_state_cache_hits_total",
                "Events decided from the person state in Redis alone.");
        COUNTER(cache_miss, "optsync_rules_state_cache_misses_total",
                "Events that needed an AC look-up first.");
        GAUGE(cache_ratio, "optsync_rules_state_cache_hit_ratio",
              "Share of events decided without an AC look-up, since start.");
        GAUGE(lag, "optsync_rules_consumer_lag_messages",
              "Messages behind the end of the assigned partitions.");
        COUNTER(events, "optsync_rules_events_total",
                "Records fully handled (outputs acknowledged, offset "
                "stored).");
        COUNTER(dlq, "optsync_rules_dead_letters_total",
                "Records sent to the DLQ.");
        COUNTER(rtt, "optsync_rules_redis_roundtrips_total",
                "Redis round trips (a pipeline counts once).");
        COUNTER(lookups, "optsync_rules_ac_lookups_total",
                "AC look-ups made to fill cache misses.");
        COUNTER(lookup_fail, "optsync_rules_ac_lookup_failures_total",
                "AC look-ups that failed (retried or dead-lettered).");
        COUNTER(blocked, "optsync_rules_retry_waits_total",
                "Times processing paused to back off a transient failure.");
        COUNTER(write_stale, "optsync_rules_state_write_conflicts_total",
                "State writes refused because a newer version was there.");
        COUNTER(not_owned, "optsync_rules_offsets_not_owned_total",
                "Offsets not stored because the partition was revoked.");
        if ((err = osy_metrics_histogram_new(
                 reg, &f, "optsync_rules_processing_seconds",
                 "Time from poll to stored offset, per record.", NULL,
                 lat_buckets, sizeof(lat_buckets) / sizeof(*lat_buckets),
                 errstr, errstr_size)))
                return err;
        w->m.latency = osy_metric_series(f, NULL);
#undef COUNTER
#undef GAUGE
        return OSY_OK;
}

static void count_decision(osy_rules_worker_t *w, osy_rule_t rule,
                           osy_outcome_t outcome)
{
        osy_series_t **s;

        if (!w->m.decisions || rule >= OSY_RULE__CNT ||
            outcome >= OSY_OUTCOME__CNT)
                return;
        s = &w->m.dec[rule][outcome];
        if (!*s) {
                const char *v[] = {rule ? osy_rule2str(rule) : "none",
                                   osy_outcome2str(outcome)};
                *s = osy_metric_series(w->m.decisions, v);
        }
        osy_counter_inc(*s);
}

/* Sum of (high watermark - position) over the assignment. Watermarks
 * are the cached ones from fetch answers: no broker round trip. */
static void update_lag(osy_rules_worker_t *w)
{
        rd_kafka_t *rk = osy_kafka_consumer_handle(w->consumer);
        rd_kafka_topic_partition_list_t *parts = NULL;
        int64_t lag = 0, now = mono_ms();

        if (!w->m.lag || now - w->lag_at < LAG_INTERVAL_MS)
                return;
        w->lag_at = now;
        if (rd_kafka_assignment(rk, &parts) || !parts)
                return;
        if (!rd_kafka_position(rk, parts)) {
                for (int i = 0; i < parts->cnt; i++) {
                        int64_t lo, hi;
                        rd_kafka_topic_partition_t *p = &parts->elems[i];
                        if (rd_kafka_get_watermark_offsets(
                                rk, p->topic, p->partition, &lo, &hi) ||
                            hi < 0 || p->offset < 0)
                                continue;
                        if (hi > p->offset)
                                lag += hi - p->offset;
                }
        }
        rd_kafka_topic_partition_list_destroy(parts);
        osy_gauge_set(w->m.lag, (double)lag);
}

/* ---- the queue of undecided records ---------------------------------------
 */

static int queue_reserve(osy_rules_worker_t *w, size_t n)
{
        if (n > w->q_cap) {
                size_t cap = w->q_cap ? w->q_cap : 1024;
                struct qitem *nq;
                while (cap < n)
                        cap *= 2;
                if (!(nq = realloc(w->queue, cap * sizeof(*nq))))
                        return -1;
                w->queue = nq;
                w->q_cap = cap;
        }
        return 0;
}

static int queue_push(osy_rules_worker_t *w, rd_kafka_message_t *rkm,
                      int64_t t_in)
{
        if (queue_reserve(w, w->q_n + 1))
                return -1;
        w->queue[w->q_n].rkm    = rkm;
        w->queue[w->q_n++].t_in = t_in;
        return 0;
}

/* Put records of a batch back at the queue's head, undecided, in order
 * (they are older than everything queued). Takes the records. */
static void queue_prepend(osy_rules_worker_t *w, struct batch *b, size_t from,
                          size_t to)
{
        size_t n = to - from;

        if (!n)
                return;
        if (queue_reserve(w, w->q_n + n)) {
                /* Cannot keep them: they stay unstored and come again
                 * after a restart or rebalance. Nothing later of their
                 * partitions may be stored now either, so drop the queue
                 * too. */
                osy_log_error("rules: out of memory requeueing records");
                for (size_t i = from; i < to; i++)
                        rd_kafka_message_destroy(b->msgs[i].rkm);
                for (size_t i = 0; i < w->q_n; i++)
                        rd_kafka_message_destroy(w->queue[i].rkm);
                w->q_n = 0;
                return;
        }
        memmove(w->queue + n, w->queue, w->q_n * sizeof(*w->queue));
        for (size_t i = 0; i < n; i++) {
                w->queue[i].rkm  = b->msgs[from + i].rkm;
                w->queue[i].t_in = b->msgs[from + i].t_in;
        }
        w->q_n += n;
}

/* ---- the overlay: decided, not yet written ----------------------------------
 */

static size_t hash_bytes(const char *s, size_t len)
{
        uint64_t h = 1469598103934665603ULL; /* FNV-1a */
        for (size_t i = 0; i < len; i++)
                h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
        return (size_t)h;
}

static struct ov_person *ov_person_find(osy_rules_worker_t *w, const char *pkey,
                                        size_t len)
{
        size_t h            = hash_bytes(pkey, len);
        struct ov_person *e = w->ovp[h % OVERLAY_BUCKETS];
        for (; e; e = e->next)
                if (e->hash == h && !strcmp(e->pkey, pkey))
                        return e;
        return NULL;
}

/* Record @p st as the newest state of @p pkey (one more reference). */
static osy_err_t ov_person_put(osy_rules_worker_t *w, const char *pkey,
                               size_t len, const struct osy_rules_person *st)
{
        struct ov_person *e = ov_person_find(w, pkey, len);
        size_t h            = hash_bytes(pkey, len);
        size_t b            = h % OVERLAY_BUCKETS;

        if (!e) {
                if (!(e = calloc(1, sizeof(*e))) || !(e->pkey = strdup(pkey))) {
                        free(e);
                        return OSY_ERR_NOMEM;
                }
                e->hash   = h;
                e->next   = w->ovp[b];
                w->ovp[b] = e;
        }
        if (osy_rules_person_copy(&e->st, st))
                return OSY_ERR_NOMEM; /* e stays, with refs as before */
        e->refs++;
        return OSY_OK;
}

static void ov_person_release(osy_rules_worker_t *w, const char *pkey,
                              size_t len)
{
        size_t h              = hash_bytes(pkey, len);
        struct ov_person **pp = &w->ovp[h % OVERLAY_BUCKETS], *e;

        for (; (e = *pp); pp = &e->next) {
                if (e->hash != h || strcmp(e->pkey, pkey))
                        continue;
                if (--e->refs <= 0) {
                        *pp = e->next;
                        osy_rules_person_clear(&e->st);
                        free(e->pkey);
                        free(e);
                }
                return;
        }
}

static int ov_id_has(osy_rules_worker_t *w, const char *id)
{
        size_t h        = hash_bytes(id, OSY_ID_LEN);
        struct ov_id *e = w->ovi[h % OVERLAY_BUCKETS];

        for (; e; e = e->next)
                if (e->hash == h && !strcmp(e->id, id))
                        return 1;
        return 0;
}

static osy_err_t ov_id_add(osy_rules_worker_t *w, const char *id)
{
        size_t h        = hash_bytes(id, OSY_ID_LEN);
        struct ov_id *e = w->ovi[h % OVERLAY_BUCKETS];

        for (; e; e = e->next)
                if (e->hash == h && !strcmp(e->id, id)) {
                        e->refs++;
                        return OSY_OK;
                }
        if ((e = w->ovi_free))
                w->ovi_free = e->next;
        else if (!(e = malloc(sizeof(*e))))
                return OSY_ERR_NOMEM;
        e->hash = h;
        memcpy(e->id, id, OSY_ID_BUFSZ);
        e->refs                     = 1;
        e->next                     = w->ovi[h % OVERLAY_BUCKETS];
        w->ovi[h % OVERLAY_BUCKETS] = e;
        return OSY_OK;
}

static void ov_id_release(osy_rules_worker_t *w, const char *id)
{
        size_t h          = hash_bytes(id, OSY_ID_LEN);
        struct ov_id **pp = &w->ovi[h % OVERLAY_BUCKETS];
        struct ov_id *e;

        for (; (e = *pp); pp = &e->next) {
                if (e->hash != h || strcmp(e->id, id))
                        continue;
                if (--e->refs <= 0) {
                        *pp         = e->next;
                        e->next     = w->ovi_free;
                        w->ovi_free = e;
                }
                return;
        }
}

static void ov_clear(osy_rules_worker_t *w)
{
        for (size_t b = 0; b < OVERLAY_BUCKETS; b++) {
                struct ov_person *p, *pn;
                struct ov_id *i, *in;
                for (p = w->ovp[b]; p; p = pn) {
                        pn = p->next;
                        osy_rules_person_clear(&p->st);
                        free(p->pkey);
                        free(p);
                }
                for (i = w->ovi[b]; i; i = in) {
                        in          = i->next;
                        i->next     = w->ovi_free;
                        w->ovi_free = i;
                }
                w->ovp[b] = NULL;
                w->ovi[b] = NULL;
        }
}

/* What batch @p b put in the overlay, taken out again (written or
 * abandoned). */
static void ov_release_batch(osy_rules_worker_t *w, struct batch *b)
{
        for (size_t p = 0; p < b->persons_n; p++)
                if (b->persons[p].changed)
                        ov_person_release(w, b->persons[p].pkey,
                                          b->persons[p].pkey_len);
        for (size_t i = 0; i < b->n; i++)
                if (b->msgs[i].set_dedup)
                        ov_id_release(w, b->msgs[i].ev.id);
}

static osy_err_t ov_add_batch(osy_rules_worker_t *w, struct batch *b)
{
        b->shares_persons = 0;
        for (size_t p = 0; p < b->persons_n; p++) {
                if (!b->persons[p].changed)
                        continue;
                if (ov_person_find(w, b->persons[p].pkey,
                                   b->persons[p].pkey_len))
                        b->shares_persons = 1;
                if (ov_person_put(w, b->persons[p].pkey, b->persons[p].pkey_len,
                                  &b->persons[p].st))
                        return OSY_ERR_NOMEM;
        }
        for (size_t i = 0; i < b->n; i++)
                if (b->msgs[i].set_dedup && ov_id_add(w, b->msgs[i].ev.id))
                        return OSY_ERR_NOMEM;
        return OSY_OK;
}

/* ---- batches
 * ------------------------------------------------------------------ */

static struct batch *slot(osy_rules_worker_t *w, size_t k)
{
        return &w->batches[(w->b_head + k) % BATCH_SLOTS];
}

/* Forget @p m's outputs (their bytes stay in the arena until the batch
 * is released). */
static void free_outputs(struct rmsg *m)
{
        m->n_out = 0;
}

/* Release what a batch holds: outputs, decoded events, and the records
 * [0, done) (the rest was handed back to the queue). */
static void batch_release(struct batch *b, size_t done)
{
        for (size_t i = 0; i < b->n; i++) {
                struct rmsg *m = &b->msgs[i];
                free_outputs(m);
                osy_msg_clear(&m->ev);
                if (i < done)
                        rd_kafka_message_destroy(m->rkm);
                m->rkm = NULL;
        }
        for (size_t p = 0; p < b->persons_n; p++)
                osy_rules_person_clear(&b->persons[p].st);
        b->n          = 0;
        b->persons_n  = 0;
        b->oarena_len = 0;
        /* A burst of big dead letters must not pin its memory for good. */
        if (b->oarena_cap > ARENA_KEEP_MAX) {
                free(b->oarena);
                b->oarena     = NULL;
                b->oarena_cap = 0;
        }
        if (b->arena_cap > ARENA_KEEP_MAX) {
                free(b->arena);
                b->arena     = NULL;
                b->arena_cap = 0;
        }
}

static void batch_free(struct batch *b)
{
        batch_release(b, 0);
        free(b->arena);
        free(b->oarena);
        free(b->msgs);
        free(b->persons);
        free(b->ptable);
        memset(b, 0, sizeof(*b));
}

static int batch_reserve(struct batch *b, size_t n)
{
        if (n > b->msgs_cap) {
                struct rmsg *nm = realloc(b->msgs, n * sizeof(*nm));
                if (!nm)
                        return -1;
                b->msgs     = nm;
                b->msgs_cap = n;
        }
        if (n > b->persons_cap) {
                struct rperson *np = realloc(b->persons, n * sizeof(*np));
                if (!np)
                        return -1;
                memset(np + b->persons_cap, 0,
                       (n - b->persons_cap) * sizeof(*np));
                b->persons     = np;
                b->persons_cap = n;
        }
        if (b->ptable_cap < 2 * n) {
                size_t cap = 16;
                int *nt;
                while (cap < 2 * n)
                        cap *= 2;
                if (!(nt = realloc(b->ptable, cap * sizeof(*nt))))
                        return -1;
                b->ptable     = nt;
                b->ptable_cap = cap;
        }
        return 0;
}

/* Copy @p s (NUL included) into the batch's key arena.
 * @returns its offset, or (size_t)-1 without memory. */
static size_t arena_put(struct batch *b, const char *s)
{
        size_t len = strlen(s) + 1, off = b->arena_len;

        if (off + len > b->arena_cap) {
                size_t cap = b->arena_cap ? b->arena_cap : 65536;
                char *na;
                while (cap < off + len)
                        cap *= 2;
                if (!(na = realloc(b->arena, cap)))
                        return (size_t)-1;
                b->arena     = na;
                b->arena_cap = cap;
        }
        memcpy(b->arena + off, s, len);
        b->arena_len += len;
        return off;
}

/* The arena is complete: point the records and persons into it. */
static void arena_fix(struct batch *b)
{
        for (size_t p = 0; p < b->persons_n; p++) {
                b->persons[p].pkey = b->arena + b->persons[p].pkey_off;
                b->persons[p].skey = b->arena + b->persons[p].skey_off;
        }
}

/* The person of message @p i (decoded), added on first sight. */
static int person_of(osy_rules_worker_t *w, struct batch *b, int i)
{
        struct rmsg *m = &b->msgs[i];
        char key[OSY_PARTITION_KEY_BUFSZ], skey[OSY_RULES_KEY_BUFSZ];
        size_t len, h;
        struct rperson *p;
        int idx;

        if (osy_partition_key(m->ev.tenant, m->ev.email, key, sizeof(key)))
                return -1;
        len = strlen(key);
        h   = hash_bytes(key, len) & (b->ptable_cap - 1);
        while ((idx = b->ptable[h]) >= 0) {
                p = &b->persons[idx];
                if (p->pkey_len == len &&
                    !memcmp(b->arena + p->pkey_off, key, len)) {
                        b->msgs[p->last].next_same = i;
                        p->last                    = i;
                        p->nmsgs++;
                        return idx;
                }
                h = (h + 1) & (b->ptable_cap - 1);
        }
        p = &b->persons[b->persons_n];
        memset(&p->st, 0, sizeof(p->st));
        if (osy_rules_state_key(skey, sizeof(skey), w->redis_prefix,
                                m->ev.tenant, m->ev.email) ||
            (p->pkey_off = arena_put(b, key)) == (size_t)-1 ||
            (p->skey_off = arena_put(b, skey)) == (size_t)-1)
                return -1;
        p->pkey_len = len;
        p->first = p->last = i;
        p->nmsgs           = 1;
        p->changed         = 0;
        idx                = (int)b->persons_n++;
        b->ptable[h]       = idx;
        return idx;
}

/* ---- rebalance hooks and pausing -------------------------------------------
 */

static int in_parts(const rd_kafka_topic_partition_list_t *parts,
                    const rd_kafka_message_t *rkm)
{
        const char *topic = rd_kafka_topic_name(rkm->rkt);
        for (int i = 0; i < parts->cnt; i++)
                if (parts->elems[i].partition == rkm->partition &&
                    !strcmp(parts->elems[i].topic, topic))
                        return 1;
        return 0;
}

static void drain(osy_rules_worker_t *w, int64_t deadline);
static void unprepare(osy_rules_worker_t *w);
static void *writer_main(void *arg);
static void *decoder_main(void *arg);

/*
 * Partitions are about to go. Batches in flight are finished first (their
 * acknowledgements awaited, state written, offsets stored while the
 * partitions are still ours); what is queued for the revoked partitions
 * is undecided and abandoned uncommitted: the new owner starts from the
 * last stored offset.
 */
static void on_revoke(void *opaque,
                      const rd_kafka_topic_partition_list_t *parts)
{
        osy_rules_worker_t *w = opaque;
        size_t keep = 0, dropped = 0;

        unprepare(w);
        drain(w, mono_ms() + w->o.produce_timeout_ms + 5000);
        for (size_t i = 0; i < w->q_n; i++) {
                if (in_parts(parts, w->queue[i].rkm)) {
                        rd_kafka_message_destroy(w->queue[i].rkm);
                        dropped++;
                } else {
                        w->queue[keep++] = w->queue[i];
                }
        }
        w->q_n = keep;
        if (dropped)
                osy_log_info("rules: %zu undecided record(s) of revoked "
                             "partitions left to the next owner",
                             dropped);
}

static void on_assign(void *opaque,
                      const rd_kafka_topic_partition_list_t *parts)
{
        osy_rules_worker_t *w = opaque;

        /* While backing off, new partitions wait too. */
        if (w->paused)
                rd_kafka_pause_partitions(
                    osy_kafka_consumer_handle(w->consumer),
                    (rd_kafka_topic_partition_list_t *)parts);
}

static void set_paused(osy_rules_worker_t *w, int pause)
{
        rd_kafka_t *rk = osy_kafka_consumer_handle(w->consumer);
        rd_kafka_topic_partition_list_t *parts = NULL;

        if (w->paused == pause)
                return;
        if (rd_kafka_assignment(rk, &parts) || !parts)
                return;
        if (pause)
                rd_kafka_pause_partitions(rk, parts);
        else
                rd_kafka_resume_partitions(rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        w->paused = pause;
}

/* ---- life cycle -------------------------------------------------------------
 */

/*
 * Have the producer look the output topics up at start. librdkafka
 * otherwise does it at a topic's first produce, and the first batch's
 * outputs waited for the answer (330 ms in bench/rules.sh) after every
 * start. Creating the handles is enough: each new topic's metadata is
 * requested at once, in the background, so a broker that is down at start
 * delays nothing here. The handles are kept so the topics stay known.
 */
static void warm_producer(osy_rules_worker_t *w)
{
        static const osy_topic_t outs[WARM_TOPICS] = {
            OSY_TOPIC_SF_COMMANDS, OSY_TOPIC_AC_COMMANDS, OSY_TOPIC_AUDIT,
            OSY_TOPIC_DLQ};
        rd_kafka_t *rk = osy_kafka_producer_handle(w->producer);

        for (size_t k = 0; k < WARM_TOPICS; k++)
                if (!(w->warm_rkt[k] = rd_kafka_topic_new(
                          rk, w->topics.name[outs[k]], NULL)))
                        osy_log_debug("rules: no handle for %s: %s",
                                      w->topics.name[outs[k]],
                                      rd_kafka_err2str(rd_kafka_last_error()));
}

osy_err_t osy_rules_worker_new(osy_rules_worker_t **wp,
                               const struct osy_rules_worker_opts *opts,
                               char *errstr, size_t errstr_size)
{
        osy_rules_worker_t *w                 = NULL;
        struct osy_kafka_opts ko              = {0};
        struct osy_kafka_consumer_hooks hooks = {0};
        const char *topics[3];
        osy_err_t err;

        *wp = NULL;
        if (!opts || !opts->bootstrap || !opts->group_id)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "rules: bootstrap and group_id are "
                                   "required");
        if (!(w = calloc(1, sizeof(*w)))) {
                err = osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                  "rules: out of memory");
                goto out;
        }
        pthread_mutex_init(&w->wlock, NULL);
        pthread_cond_init(&w->wcond, NULL);
        pthread_mutex_init(&w->dec.mu, NULL);
        pthread_cond_init(&w->dec.cv, NULL);
        w->o = *opts;
        if (w->o.batch_size <= 0)
                w->o.batch_size = OSY_RULES_DEFAULT_BATCH_SIZE;
        if (w->o.batch_wait_ms <= 0)
                w->o.batch_wait_ms = OSY_RULES_DEFAULT_BATCH_WAIT_MS;
        if (w->o.dedup_ttl_ms <= 0)
                w->o.dedup_ttl_ms = OSY_RULES_DEFAULT_DEDUP_TTL_MS;
        if (w->o.state_ttl_ms <= 0)
                w->o.state_ttl_ms = OSY_RULES_DEFAULT_STATE_TTL_MS;
        if (w->o.produce_timeout_ms <= 0)
                w->o.produce_timeout_ms = OSY_RULES_DEFAULT_PRODUCE_TIMEOUT_MS;
        if (osy_retry_policy_validate(&w->o.retry, NULL, 0)) {
                struct osy_retry_policy def = OSY_RETRY_POLICY_DEFAULT;
                w->o.retry                  = def;
        }
        w->ctx.sync_all_contacts = opts->sync_all_contacts;
        w->retry_partition       = -1;
        if (!(w->redis_prefix = strdup(opts->redis_prefix ? opts->redis_prefix
                                                          : "optsync"))) {
                err = osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                  "rules: out of memory");
                goto out;
        }
        {
                /* Every key must fit; the longest is a seen hash of the
                 * latest time there is. */
                char key[OSY_RULES_KEY_BUFSZ];
                if (osy_rules_seen_key(key, sizeof(key), w->redis_prefix,
                                       INT64_MAX)) {
                        err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                          "rules: Redis key prefix too long");
                        goto out;
                }
        }
        if ((err = osy_topic_names_init(&w->topics, opts->topic_prefix, errstr,
                                        errstr_size)) ||
            (err = metrics_init(w, errstr, errstr_size)) ||
            (err = osy_redis_script_new(&w->apply, osy_rules_apply_lua, errstr,
                                        errstr_size)) ||
            (err = osy_redis_connect(&w->redis, &opts->redis, errstr,
                                     errstr_size)) ||
            (err = osy_redis_connect(&w->dredis, &opts->redis, errstr,
                                     errstr_size)))
                goto out;
        for (int k = 0; k < WRITERS; k++) {
                struct rwriter *wr = &w->writers[k];
                wr->w              = w;
                if ((err = osy_redis_connect(&wr->conn, &opts->redis, errstr,
                                             errstr_size)))
                        goto out;
                if (pthread_create(&wr->th, NULL, writer_main, wr)) {
                        err = osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                          "rules: cannot start a writer "
                                          "thread");
                        goto out;
                }
                wr->started = 1;
        }
        /* Without it the main thread parses everything: slower, not
         * wrong. */
        if (pthread_create(&w->dec.th, NULL, decoder_main, &w->dec))
                osy_log_warn("rules: no decoder thread: parsing on the main "
                             "thread only");
        else
                w->dec.started = 1;

        ko.bootstrap = opts->bootstrap;
        ko.client_id = opts->client_id ? opts->client_id : "optsync-rules";
        ko.extra     = opts->producer_extra;
        ko.close_timeout_ms = w->o.produce_timeout_ms + 1000;
        if ((err = osy_kafka_producer_new(&w->producer, &ko, errstr,
                                          errstr_size)))
                goto out;
        warm_producer(w);
        ko.extra        = opts->consumer_extra;
        hooks.on_assign = on_assign;
        hooks.on_revoke = on_revoke;
        hooks.opaque    = w;
        topics[0]       = w->topics.name[OSY_TOPIC_AC_EVENTS];
        topics[1]       = w->topics.name[OSY_TOPIC_SF_EVENTS];
        topics[2]       = NULL;
        if ((err = osy_kafka_consumer_new(&w->consumer, &ko, opts->group_id,
                                          topics, &hooks, errstr, errstr_size)))
                goto out;
        atomic_store(&w->ready, 1);
        *wp = w;
        w   = NULL;
        err = OSY_OK;
out:
        osy_rules_worker_destroy(w);
        return err;
}

int osy_rules_worker_ready(const osy_rules_worker_t *w)
{
        return w && atomic_load(&((osy_rules_worker_t *)w)->ready);
}

void osy_rules_worker_get_stats(const osy_rules_worker_t *w,
                                struct osy_rules_worker_stats *out)
{
        *out = w->stats;
}

osy_err_t osy_rules_worker_close(osy_rules_worker_t *w, char *errstr,
                                 size_t errstr_size)
{
        osy_err_t err = OSY_OK;

        if (!w || w->closed)
                return OSY_OK;
        /* Finish what is in flight: outputs acknowledged, state written,
         * offsets stored; then the queue is abandoned uncommitted. */
        unprepare(w);
        if (w->consumer)
                drain(w, mono_ms() + w->o.produce_timeout_ms + 5000);
        w->closed = 1;
        atomic_store(&w->ready, 0);
        if (w->q_n)
                osy_log_info("rules: leaving %zu undecided record(s) "
                             "uncommitted",
                             w->q_n);
        for (size_t i = 0; i < w->q_n; i++)
                rd_kafka_message_destroy(w->queue[i].rkm);
        w->q_n = 0;
        /* Stored offsets are committed and the group is left (the revoke
         * hook finds nothing in flight). */
        if (w->consumer)
                err =
                    osy_kafka_consumer_close(w->consumer, errstr, errstr_size);
        return err;
}

void osy_rules_worker_destroy(osy_rules_worker_t *w)
{
        if (!w)
                return;
        osy_rules_worker_close(w, NULL, 0);
        osy_kafka_consumer_destroy(w->consumer);
        /* Close drained the batches: no write is in flight. */
        pthread_mutex_lock(&w->wlock);
        w->wstop = 1;
        pthread_cond_broadcast(&w->wcond);
        pthread_mutex_unlock(&w->wlock);
        for (int k = 0; k < WRITERS; k++)
                if (w->writers[k].started)
                        pthread_join(w->writers[k].th, NULL);
        pthread_mutex_lock(&w->dec.mu);
        w->dec.stop = 1;
        pthread_cond_broadcast(&w->dec.cv);
        pthread_mutex_unlock(&w->dec.mu);
        if (w->dec.started)
                pthread_join(w->dec.th, NULL);
        /* Anything still in flight (a close that timed out) has its
         * delivery callbacks run by the producer's destroy: the batches
         * must still exist then. Topic handles go before their client. */
        for (size_t k = 0; k < WARM_TOPICS; k++)
                if (w->warm_rkt[k])
                        rd_kafka_topic_destroy(w->warm_rkt[k]);
        osy_kafka_producer_destroy(w->producer);
        for (size_t k = 0; k < BATCH_SLOTS; k++)
                batch_free(&w->batches[k]);
        ov_clear(w);
        while (w->ovi_free) {
                struct ov_id *e = w->ovi_free;
                w->ovi_free     = e->next;
                free(e);
        }
        osy_redis_destroy(w->redis);
        osy_redis_destroy(w->dredis);
        for (int k = 0; k < WRITERS; k++)
                osy_redis_destroy(w->writers[k].conn);
        osy_redis_script_destroy(w->apply);
        pthread_cond_destroy(&w->wcond);
        pthread_mutex_destroy(&w->wlock);
        pthread_cond_destroy(&w->dec.cv);
        pthread_mutex_destroy(&w->dec.mu);
        free(w->queue);
        free(w->redis_prefix);
        free(w);
}

/* ---- outputs ----------------------------------------------------------------
 */

static void dr_cb(void *opaque, osy_err_t err, const char *errstr,
                  int32_t partition, int64_t offset)
{
        struct rout *o = opaque;
        (void)partition;
        (void)offset;

        o->state = err ? 2 : 1;
        o->b->acks_outstanding--;
        if (err)
                osy_log_warn("rules: %s output not acknowledged: %s",
                             osy_topic_suffix(o->topic), errstr);
}

/* Encode @p msg as an output of @p m, into @p b's output arena (moved
 * only before the batch is produced: outputs keep offsets). */
static osy_err_t add_output(struct batch *b, struct rmsg *m, osy_topic_t topic,
                            const struct osy_msg *msg, const void *key,
                            size_t keylen, char *errstr, size_t errstr_size)
{
        struct rout *o;
        char *json = NULL;
        size_t len = 0;
        osy_err_t err;

        if (m->n_out >= MAX_OUT)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "rules: too many outputs");
        o = &m->out[m->n_out];
        memset(o, 0, sizeof(*o));
        if ((err = osy_msg_encode(msg, &json, &len, errstr, errstr_size)))
                return err;
        if (b->oarena_len + len > b->oarena_cap) {
                size_t cap = b->oarena_cap ? b->oarena_cap : 256 * 1024;
                char *na;
                while (cap < b->oarena_len + len)
                        cap *= 2;
                if (!(na = realloc(b->oarena, cap))) {
                        free(json);
                        return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                           "rules: out of memory");
                }
                b->oarena     = na;
                b->oarena_cap = cap;
        }
        memcpy(b->oarena + b->oarena_len, json, len);
        free(json);
        o->off = b->oarena_len;
        o->len = len;
        b->oarena_len += len;
        o->topic  = topic;
        o->key    = key;
        o->keylen = keylen;
        m->n_out++;
        return OSY_OK;
}

/*
 * Dead-letter @p m: the original record plus the reason. A valid event
 * also gets an audit record (outcome dead_lettered), so the audit trail
 * covers every event.
 */
static osy_err_t add_dlq(struct batch *b, struct rmsg *m, const char *reason,
                         const char *first_error, const char *last_error,
                         int attempts, int64_t first_ms, char *errstr,
                         size_t errstr_size)
{
        rd_kafka_message_t *r = m->rkm;
        struct osy_msg d, audit;
        char tenant[OSY_TENANT_MAX + 1], email[OSY_EMAIL_MAX + 1];
        int64_t now = wall_ms();
        osy_err_t err;

        osy_msg_init(&d, OSY_MSG_DLQ);
        osy_msg_init(&audit, OSY_MSG_NONE);
        m->dlq = 1;
        if (m->decoded) {
                snprintf(tenant, sizeof(tenant), "%s", m->ev.tenant);
                snprintf(email, sizeof(email), "%s", m->ev.email);
        } else if (!osy_msg_peek_person(r->payload, r->len, tenant,
                                        sizeof(tenant), email, sizeof(email))) {
                tenant[0] = email[0] = '\0';
        }
        if (tenant[0] && email[0] &&
            (err = osy_msg_set_envelope(&d, tenant, email, OSY_SRC_RULES, now,
                                        errstr, errstr_size)))
                goto out;
        d.source       = OSY_SRC_RULES;
        d.occurred_at  = now;
        d.dlq.stage    = OSY_STAGE_RULES;
        d.dlq.attempts = attempts;
        d.dlq.first_failed_at =
            first_ms > 0 && first_ms <= now ? first_ms : now;
        d.dlq.last_failed_at = now;
        if ((err =
                 osy_msg_strset_trunc(&d.dlq.reason, reason, OSY_REASON_MAX)) ||
            (err = osy_msg_strset_trunc(&d.dlq.first_error,
                                        first_error[0] ? first_error : reason,
                                        OSY_TEXT_MAX)) ||
            (err = osy_msg_strset_trunc(&d.dlq.last_error,
                                        last_error[0] ? last_error : reason,
                                        OSY_TEXT_MAX)) ||
            (err = osy_msg_dlq_set_original(&d, rd_kafka_topic_name(r->rkt),
                                            r->partition, r->offset, r->key,
                                            r->key_len, r->payload, r->len)))
                goto out;
        if ((err = add_output(b, m, OSY_TOPIC_DLQ, &d, r->key, r->key_len,
                              errstr, errstr_size)))
                goto out;
        if (m->decoded) {
                char detail[OSY_TEXT_MAX];
                const struct rperson *p = &b->persons[m->person];

                snprintf(detail, sizeof(detail), "%s: %s", reason, last_error);
                if ((err = osy_msg_set_envelope(
                         &audit, m->ev.tenant, m->ev.email, OSY_SRC_RULES,
                         m->ev.occurred_at, errstr, errstr_size)))
                        goto out;
                audit.type          = OSY_MSG_AUDIT;
                audit.audit.stage   = OSY_STAGE_RULES;
                audit.audit.outcome = OSY_OUTCOME_DEAD_LETTERED;
                memcpy(audit.audit.ref_id, m->ev.id, OSY_ID_BUFSZ);
                if ((err = osy_msg_strset(&audit.audit.action, "decide")) ||
                    (err = osy_msg_strset_trunc(&audit.audit.detail, detail,
                                                OSY_TEXT_MAX)))
                        goto out;
                if ((err = add_output(b, m, OSY_TOPIC_AUDIT, &audit, p->pkey,
                                      p->pkey_len, errstr, errstr_size)))
                        goto out;
        }
        m->outcome = OSY_OUTCOME_DEAD_LETTERED;
        err        = OSY_OK;
out:
        osy_msg_clear(&d);
        osy_msg_clear(&audit);
        return err;
}

/* The outputs of a decision: commands, then the audit record. */
static osy_err_t add_decision_outputs(struct batch *b, struct rmsg *m,
                                      const struct osy_rules_decision *d,
                                      char *errstr, size_t errstr_size)
{
        const struct rperson *p = &b->persons[m->person];
        struct osy_msg sf, ac, audit;
        osy_err_t err;

        if ((err = osy_rules_build_outputs(&m->ev, d, &sf, &ac, &audit, errstr,
                                           errstr_size)))
                return err;
        if ((sf.type &&
             (err = add_output(b, m, OSY_TOPIC_SF_COMMANDS, &sf, p->pkey,
                               p->pkey_len, errstr, errstr_size))) ||
            (ac.type &&
             (err = add_output(b, m, OSY_TOPIC_AC_COMMANDS, &ac, p->pkey,
                               p->pkey_len, errstr, errstr_size))) ||
            (err = add_output(b, m, OSY_TOPIC_AUDIT, &audit, p->pkey,
                              p->pkey_len, errstr, errstr_size)))
                free_outputs(m);
        osy_msg_clear(&sf);
        osy_msg_clear(&ac);
        osy_msg_clear(&audit);
        return err;
}

/* Produce every output of @p b not yet acknowledged; the delivery reports
 * arrive later (served by complete()). */
static osy_err_t produce_batch(osy_rules_worker_t *w, struct batch *b,
                               char *errstr, size_t errstr_size)
{
        osy_err_t err;

        for (size_t i = 0; i < b->n; i++) {
                struct rmsg *m = &b->msgs[i];
                for (int k = 0; k < m->n_out; k++) {
                        struct rout *o = &m->out[k];
                        if (o->state == 1)
                                continue;
                        o->state = 0;
                        o->b     = b;
                        while ((err = osy_kafka_produce_borrowed(
                                    w->producer, w->topics.name[o->topic],
                                    o->key, o->keylen, b->oarena + o->off,
                                    o->len, dr_cb, o, errstr, errstr_size)) ==
                               OSY_ERR_TRANSIENT)
                                osy_kafka_producer_poll(w->producer, 10);
                        if (err)
                                return err; /* fatal or invalid */
                        b->acks_outstanding++;
                }
        }
        b->produced_at = mono_ms();
        return OSY_OK;
}

/* ---- Redis ----------------------------------------------------------------
 */

/* One round trip: a single MGET of every person's state, sent as soon as
 * the batch is decoded and answered while the batch before it is decided
 * (redis_read_recv() reads it; the overlay is applied then, so what that
 * batch decides is seen). Records the outcome in b->read_sent. */
static void redis_read_send(osy_rules_worker_t *w, struct batch *b)
{
        const char **argv = NULL;
        size_t argc       = 0, owed;
        osy_err_t err;

        b->read_sent   = 0;
        b->read_err    = OSY_OK;
        b->read_why[0] = '\0';
        if (!b->persons_n)
                return;
        if (!(argv = malloc((1 + b->persons_n) * sizeof(*argv)))) {
                b->read_sent = -1;
                b->read_err =
                    osy_err_set(OSY_ERR_NOMEM, b->read_why, sizeof(b->read_why),
                                "rules: out of memory");
                return;
        }
        argv[argc++] = "MGET";
        for (size_t p = 0; p < b->persons_n; p++)
                argv[argc++] = b->persons[p].skey;
        w->stats.redis_roundtrips++;
        osy_counter_inc(w->m.rtt);
        owed = osy_redis_pipeline_pending(w->redis);
        if ((err = osy_redis_pipeline_append_argv(w->redis, (int)argc, argv,
                                                  NULL, b->read_why,
                                                  sizeof(b->read_why))) ||
            (err = osy_redis_pipeline_send(w->redis, b->read_why,
                                           sizeof(b->read_why)))) {
                /* Clear what the failure left queued, unless an earlier
                 * read is owed: then its receive reports the failure
                 * and clears it. */
                if (!owed &&
                    osy_redis_pipeline_exec(w->redis, NULL, 0, NULL, 0))
                        osy_log_debug("rules: discarded pipeline cleared");
                b->read_sent = -1;
                b->read_err  = err;
        } else {
                b->read_sent = 1;
                b->read_seq  = ++w->read_seq;
        }
        free(argv);
}

/*
 * 1 if event @p m may have been applied before (a replay), so its dedup
 * entry must be looked up. A dedup entry is written only after the event's
 * state write, which leaves the person's version at or past the event's
 * (the apply script keeps the newest), and states outlive dedup entries
 * (30 days against 80 hours by default). So an event newer than the
 * person's known version was never applied: no look-up, which halved
 * the entries a batch reads. A person with no state (never seen, expired,
 * evicted) is always looked up.
 */
static int may_be_replay(const struct rmsg *m, const struct rperson *p)
{
        return !p->st.version_ms || m->ev.occurred_at <= p->st.version_ms;
}

/* Append one command to the pipeline; on failure clear the discarded
 * pipeline so the connection is clean for the next batch. */
static osy_err_t append(osy_redis_t *conn, int argc, const char **argv,
                        char *errstr, size_t errstr_size)
{
        osy_err_t err = osy_redis_pipeline_append_argv(conn, argc, argv, NULL,
                                                       errstr, errstr_size);
        if (err && osy_redis_pipeline_exec(conn, NULL, 0, NULL, 0))
                osy_log_debug("rules: discarded pipeline cleared");
        return err;
}

/* The errors inside an EXEC's reply (a command of the transaction failed
 * when run), or OSY_OK; any other reply is OSY_OK. */
static osy_err_t exec_reply_err(const redisReply *r, char *errstr,
                                size_t errstr_size)
{
        if (r->type == REDIS_REPLY_NIL)
                return osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                   "rules: transaction discarded");
        if (r->type != REDIS_REPLY_ARRAY)
                return OSY_OK;
        for (size_t k = 0; k < r->elements; k++) {
                osy_err_t e =
                    osy_redis_reply_err(r->element[k], errstr, errstr_size);
                if (e)
                        return e;
        }
        return OSY_OK;
}

/*
 * Dedup: the events decided are remembered in one hash per second of
 * occurrence (osy_rules_seen_key), field = event id. A batch touches a
 * few hashes, not a key per event: a pipelined SET PX per event was the
 * largest part of Redis' time (300,000 SETs 1.65 s of Redis CPU, the same
 * ids as HSETs of 1,000 fields 0.46-0.79 s, and 38 against 67 MB). A
 * hash's TTL is renewed to the dedup TTL by every write into it, so each
 * id is kept at least that long after it was written.
 */
struct seen_ref {
        int64_t second; /* occurrence second: which hash */
        int msg;        /* index in the batch */
};

static int seen_ref_cmp(const void *a, const void *b)
{
        const struct seen_ref *x = a, *y = b;

        if (x->second != y->second)
                return x->second < y->second ? -1 : 1;
        return (x->msg > y->msg) - (x->msg < y->msg);
}

/* Length of the run of @p refs[from..n) in the same hash. */
static size_t seen_run(const struct seen_ref *refs, size_t from, size_t n)
{
        size_t to = from + 1;

        while (to < n && refs[to].second == refs[from].second)
                to++;
        return to - from;
}

/*
 * Append, per hash, "HMGET <hash> <id>..." (@p remember 0) or
 * "MULTI", "HSET <hash> <id> 1 ...", "PEXPIRE <hash> <dedup TTL>", "EXEC"
 * (1) over the events @p refs[0..n) of @p b, which are sorted here. The
 * transaction makes the two one: a worker killed while its pipeline was
 * on the wire could otherwise leave a hash without a TTL, kept forever.
 * @p argv has room for 2 * n + 2 arguments; *ncmds counts the commands
 * appended.
 */
static osy_err_t seen_append(osy_rules_worker_t *w, osy_redis_t *conn,
                             const struct batch *b, struct seen_ref *refs,
                             size_t n, int remember, const char **argv,
                             size_t *ncmds, char *errstr, size_t errstr_size)
{
        char key[OSY_RULES_KEY_BUFSZ], ttl[24];
        const char *expire[3] = {"PEXPIRE", key, ttl};
        const char *multi[1] = {"MULTI"}, *exec[1] = {"EXEC"};
        osy_err_t err;

        qsort(refs, n, sizeof(*refs), seen_ref_cmp);
        snprintf(ttl, sizeof(ttl), "%" PRId64, w->o.dedup_ttl_ms);
        for (size_t r = 0, run; r < n; r += run) {
                size_t argc = 2;

                run = seen_run(refs, r, n);
                if (osy_rules_seen_key(key, sizeof(key), w->redis_prefix,
                                       b->msgs[refs[r].msg].ev.occurred_at)) {
                        /* Refused at start (osy_rules_worker_new); still,
                         * leave the connection clean. */
                        if (osy_redis_pipeline_exec(conn, NULL, 0, NULL, 0))
                                osy_log_debug("rules: discarded pipeline "
                                              "cleared");
                        return osy_err_set(OSY_ERR_TOO_LARGE, errstr,
                                           errstr_size,
                                           "rules: Redis prefix too long");
                }
                argv[0] = remember ? "HSET" : "HMGET";
                argv[1] = key;
                for (size_t k = r; k < r + run; k++) {
                        argv[argc++] = b->msgs[refs[k].msg].ev.id;
                        if (remember)
                                argv[argc++] = "1";
                }
                /* The arguments are copied into the pipeline here, so
                 * key and ttl may change for the next hash. */
                if (remember) {
                        if ((err = append(conn, 1, multi, errstr, errstr_size)))
                                return err;
                        (*ncmds)++;
                }
                if ((err = append(conn, (int)argc, argv, errstr, errstr_size)))
                        return err;
                (*ncmds)++;
                if (remember) {
                        if ((err = append(conn, 3, expire, errstr,
                                          errstr_size)) ||
                            (err = append(conn, 1, exec, errstr, errstr_size)))
                                return err;
                        *ncmds += 2;
                }
        }
        return OSY_OK;
}

/* Whether the events of @p b that may be replays were seen: one HMGET
 * per hash, pipelined on their own connection (the read connection has
 * the next batch's read on its way). Events decided by batches in flight
 * count as seen. */
static osy_err_t dedup_check(osy_rules_worker_t *w, struct batch *b,
                             char *errstr, size_t errstr_size)
{
        struct seen_ref *refs = NULL;
        const char **argv     = NULL;
        redisReply **rep      = NULL;
        size_t n = 0, ncmds = 0;
        osy_err_t err = OSY_OK;

        for (size_t i = 0; i < b->n; i++) {
                struct rmsg *m = &b->msgs[i];
                if (m->person >= 0)
                        m->dup_redis = ov_id_has(w, m->ev.id);
        }
        for (size_t i = 0; i < b->n; i++) {
                const struct rmsg *m = &b->msgs[i];
                if (m->person < 0 || m->dup_redis ||
                    !may_be_replay(m, &b->persons[m->person]))
                        continue;
                if (!refs && !(refs = malloc(b->n * sizeof(*refs))))
                        goto nomem;
                refs[n].second = m->ev.occurred_at / OSY_RULES_SEEN_BUCKET_MS;
                refs[n].msg    = (int)i;
                n++;
        }
        if (!n)
                goto out;
        if (!(argv = malloc((2 * n + 2) * sizeof(*argv))) ||
            !(rep = calloc(n, sizeof(*rep))))
                goto nomem;
        if ((err = seen_append(w, w->dredis, b, refs, n, 0, argv, &ncmds,
                               errstr, errstr_size)))
                goto out;
        w->stats.redis_roundtrips++;
        osy_counter_inc(w->m.rtt);
        if ((err = osy_redis_pipeline_exec(w->dredis, rep, ncmds, errstr,
                                           errstr_size)))
                goto out;
        for (size_t c = 0, r = 0, run; c < ncmds; c++, r += run) {
                run = seen_run(refs, r, n);
                if ((err = osy_redis_reply_err(rep[c], errstr, errstr_size)))
                        goto out;
                if (rep[c]->type != REDIS_REPLY_ARRAY ||
                    rep[c]->elements != run) {
                        err =
                            osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                        "rules: unexpected HMGET reply");
                        goto out;
                }
                for (size_t k = 0; k < run; k++)
                        b->msgs[refs[r + k].msg].dup_redis =
                            rep[c]->element[k]->type != REDIS_REPLY_NIL;
        }
        goto out;
nomem:
        err = osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                          "rules: out of memory");
out:
        if (rep) {
                osy_redis_replies_free(rep, ncmds);
                free(rep);
        }
        free(argv);
        free(refs);
        return err;
}

/* The answer of redis_read_send(): each person's state, or the overlay's
 * for those decided by batches still in flight (not yet written); then
 * whether each event that may be a replay has its dedup entry. */
static osy_err_t redis_read_recv(osy_rules_worker_t *w, struct batch *b,
                                 char *errstr, size_t errstr_size)
{
        redisReply *r = NULL;
        osy_err_t err = OSY_OK;

        if (b->read_sent < 0)
                return osy_err_set(b->read_err, errstr, errstr_size, "%s",
                                   b->read_why);
        if (!b->read_sent)
                return OSY_OK;
        b->read_sent = 0;
        if ((err =
                 osy_redis_pipeline_recv(w->redis, &r, 1, errstr, errstr_size)))
                return err;
        if ((err = osy_redis_reply_err(r, errstr, errstr_size)))
                goto out;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != b->persons_n) {
                err = osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                  "rules: unexpected MGET reply");
                goto out;
        }
        for (size_t p = 0; p < b->persons_n; p++) {
                struct rperson *rp  = &b->persons[p];
                const redisReply *e = r->element[p];
                const struct ov_person *ov =
                    ov_person_find(w, rp->pkey, rp->pkey_len);
                char why[OSY_ERRSTR_SIZE];

                if (ov) {
                        if (osy_rules_person_copy(&rp->st, &ov->st)) {
                                err = osy_err_set(OSY_ERR_NOMEM, errstr,
                                                  errstr_size,
                                                  "rules: out of memory");
                                goto out;
                        }
                } else if (e->type == REDIS_REPLY_STRING &&
                           osy_rules_person_decode(e->str, e->len, &rp->st, why,
                                                   sizeof(why))) {
                        /* Unreadable: a cache miss, overwritten later. */
                        osy_log_warn("rules: state of %s ignored: %s", rp->skey,
                                     why);
                }
        }
        freeReplyObject(r);
        r   = NULL;
        err = dedup_check(w, b, errstr, errstr_size);
out:
        if (r)
                freeReplyObject(r);
        return err;
}

/*
 * One round trip: the apply script over the changed states, then the
 * events remembered as seen (seen_append). A crash between the two leaves
 * states without dedup entries: the events come again, and the state's
 * version makes them duplicates or stale, never decided twice.
 */
static osy_err_t redis_write(osy_rules_worker_t *w, osy_redis_t *conn,
                             struct batch *b, long long *refused, int *rtt,
                             char *errstr, size_t errstr_size)
{
        const char **argv     = NULL;
        const char **skeys    = NULL;
        char **states         = NULL;
        char *nums            = NULL; /* one 24-byte number per person */
        redisReply **rep      = NULL;
        struct seen_ref *refs = NULL;
        size_t argc = 0, nstates = 0, ncmds = 0, neval = 0, nseen = 0;
        size_t argv_max = 4 + 3 * APPLY_CHUNK;
        char sttl[32], nk[24];
        osy_err_t err = OSY_OK;
        int reloaded  = 0;

        if (argv_max < 2 * b->n + 2)
                argv_max = 2 * b->n + 2;
        if (!(argv = malloc(argv_max * sizeof(*argv))) ||
            !(skeys = malloc((b->persons_n + 1) * sizeof(*skeys))) ||
            !(states = calloc(b->persons_n + 1, sizeof(*states))) ||
            !(nums = malloc(b->persons_n * 24 + 1)) ||
            !(refs = malloc((b->n + 1) * sizeof(*refs))) ||
            !(rep = calloc(4 * b->n + b->persons_n / APPLY_CHUNK + 2,
                           sizeof(*rep)))) {
                err = osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                  "rules: out of memory");
                goto out;
        }
        snprintf(sttl, sizeof(sttl), "%" PRId64, w->o.state_ttl_ms);
        for (size_t i = 0; i < b->n; i++) {
                if (!b->msgs[i].set_dedup)
                        continue;
                refs[nseen].second =
                    b->msgs[i].ev.occurred_at / OSY_RULES_SEEN_BUCKET_MS;
                refs[nseen].msg = (int)i;
                nseen++;
        }
        for (size_t p = 0; p < b->persons_n; p++) {
                struct rperson *rp = &b->persons[p];
                if (!rp->changed)
                        continue;
                if ((err = osy_rules_person_encode(&rp->st, &states[nstates],
                                                   NULL))) {
                        osy_err_set(err, errstr, errstr_size,
                                    "rules: out of memory");
                        goto out;
                }
                snprintf(nums + nstates * 24, 24, "%" PRId64,
                         rp->st.version_ms);
                skeys[nstates] = rp->skey;
                nstates++;
        }
again:
        ncmds = neval = 0;
        for (size_t c0 = 0; c0 < nstates; c0 += APPLY_CHUNK) {
                size_t cn =
                    nstates - c0 < APPLY_CHUNK ? nstates - c0 : APPLY_CHUNK;
                /* EVALSHA sha n key... sttl (state ms)... (the args are
                 * copied into the pipeline at once) */
                argv[0] = "EVALSHA";
                argv[1] = osy_redis_script_sha(w->apply);
                argv[2] = nk;
                snprintf(nk, sizeof(nk), "%zu", cn);
                argc = 3;
                for (size_t k = 0; k < cn; k++)
                        argv[argc++] = skeys[c0 + k];
                argv[argc++] = sttl;
                for (size_t k = 0; k < cn; k++) {
                        argv[argc++] = states[c0 + k];
                        argv[argc++] = nums + (c0 + k) * 24;
                }
                if ((err = append(conn, (int)argc, argv, errstr, errstr_size)))
                        goto out;
                ncmds++;
                neval++;
        }
        /* Again after a reload too: the first replies were not read. */
        if (nseen && (err = seen_append(w, conn, b, refs, nseen, 1, argv,
                                        &ncmds, errstr, errstr_size)))
                goto out;
        if (!ncmds)
                goto out;
        (*rtt)++;
        if ((err = osy_redis_pipeline_exec(conn, rep, ncmds, errstr,
                                           errstr_size)))
                goto out;
        for (size_t c = 0; c < ncmds; c++) {
                osy_err_t e = osy_redis_reply_err(rep[c], errstr, errstr_size);
                if (c == 0 && neval && e == OSY_ERR_NOT_FOUND && !reloaded) {
                        /* NOSCRIPT (Redis restarted or flushed): load it
                         * and run the whole pipeline again (its HSETs are
                         * idempotent, and their replies are not read). */
                        osy_redis_replies_free(rep, ncmds);
                        if ((err = osy_redis_script_load(conn, w->apply, errstr,
                                                         errstr_size)))
                                goto out;
                        reloaded = 1;
                        goto again;
                }
                if (!e && c >= neval)
                        e = exec_reply_err(rep[c], errstr, errstr_size);
                if (e) {
                        err = e;
                        goto out;
                }
        }
        for (size_t c = 0; c < neval; c++)
                if (rep[c]->type == REDIS_REPLY_INTEGER && rep[c]->integer > 0)
                        *refused += rep[c]->integer;
out:
        if (rep) {
                osy_redis_replies_free(rep, ncmds);
                free(rep);
        }
        if (states)
                for (size_t k = 0; k < nstates; k++)
                        free(states[k]);
        free(states);
        free(nums);
        free(skeys);
        free(refs);
        free(argv);
        return err;
}

/* ---- retries --------------------------------------------------------------
 */

/* 1 if @p rkm is the record the retry state follows. */
static int is_retry_head(const osy_rules_worker_t *w,
                         const rd_kafka_message_t *rkm)
{
        return w->retry_partition == rkm->partition &&
               w->retry_offset == rkm->offset &&
               !strcmp(w->retry_topic, rd_kafka_topic_name(rkm->rkt));
}

/*
 * A transient failure at record @p head (the first undecided one). The
 * retry state follows that record (by position), so its attempts and age
 * add up across batches. @p infra: Redis or Kafka, not the record's fault:
 * only the age limit applies.
 */
static osy_retry_verdict_t backoff(osy_rules_worker_t *w,
                                   const rd_kafka_message_t *head,
                                   osy_err_t err, int64_t retry_after_ms,
                                   int infra, const char *why)
{
        const char *topic           = rd_kafka_topic_name(head->rkt);
        struct osy_retry_policy pol = w->o.retry;
        int64_t now = mono_ms(), delay = 0;
        osy_retry_verdict_t v;

        if (!is_retry_head(w, head)) {
                memset(&w->retry, 0, sizeof(w->retry));
                snprintf(w->retry_topic, sizeof(w->retry_topic), "%s", topic);
                w->retry_partition = head->partition;
                w->retry_offset    = head->offset;
                snprintf(w->first_error, sizeof(w->first_error), "%s", why);
                w->first_failed_at = wall_ms();
        }
        snprintf(w->last_error, sizeof(w->last_error), "%s", why);
        if (infra)
                pol.max_attempts = 1 << 30;
        v = osy_retry_next(&pol, &w->retry, err, retry_after_ms, now, &delay);
        if (v == OSY_RETRY_AGAIN) {
                w->blocked       = 1;
                w->blocked_until = now + delay;
                w->stats.blocked++;
                osy_counter_inc(w->m.blocked);
                set_paused(w, 1);
                osy_log_warn("rules: %s; retry %d in %" PRId64 " ms "
                             "(partitions paused)",
                             why, w->retry.attempts, delay);
        }
        return v;
}

static void retry_done(osy_rules_worker_t *w)
{
        w->retry_partition = -1;
        w->retry_topic[0]  = '\0';
        w->blocked         = 0;
        set_paused(w, 0);
}

/* An infrastructure failure (Redis, Kafka) with the queue's head waiting:
 * back off, and once its age runs out dead-letter it alone next time. */
static void infra_failure(osy_rules_worker_t *w, const char *why)
{
        if (!w->q_n)
                return;
        if (w->dlq_head) {
                /* Even the dead letter cannot go out: wait the longest
                 * backoff, then try again. */
                w->blocked       = 1;
                w->blocked_until = mono_ms() + w->o.retry.max_delay_ms;
                set_paused(w, 1);
                osy_log_warn("rules: dead-lettering failed: %s", why);
        } else if (backoff(w, w->queue[0].rkm, OSY_ERR_TRANSIENT, -1, 1, why) !=
                   OSY_RETRY_AGAIN) {
                w->dlq_head = 1;
                snprintf(w->dlq_reason, sizeof(w->dlq_reason),
                         "retries exhausted");
                w->blocked = 0;
        }
}

/*
 * Give up every batch in flight: their records go back to the queue's
 * head, undecided and unstored, to be decided again (re-emitting the same
 * outputs: same ids, desired states). The overlay empties with them.
 */
static int write_take(osy_rules_worker_t *w, struct batch *b, int timeout_ms);
static void finish_head(osy_rules_worker_t *w);

/* 1 if a batch in flight still waits for a delivery report. */
static int reports_outstanding(const osy_rules_worker_t *w)
{
        for (size_t k = 0; k < w->b_count; k++)
                if (w->batches[(w->b_head + k) % BATCH_SLOTS].acks_outstanding)
                        return 1;
        return 0;
}

static void abandon_all(osy_rules_worker_t *w, const char *why)
{
        /* P and X hold later records: they go back first, behind which
         * the batches in flight are put. */
        unprepare(w);
        /* The producer sends outputs from the batches' own memory (lent,
         * not copied): take back what is not acknowledged and serve its
         * reports before any batch is reused. */
        if (reports_outstanding(w)) {
                int64_t end = mono_ms() + 10000;
                osy_kafka_producer_purge(w->producer);
                while (reports_outstanding(w) && mono_ms() < end)
                        osy_kafka_producer_poll(w->producer, 50);
                if (reports_outstanding(w)) {
                        /* Never seen: librdkafka reports purged messages
                         * at the next poll. Reusing the memory would be
                         * worse than stopping. */
                        snprintf(w->fatal_why, sizeof(w->fatal_why),
                                 "rules: delivery reports missing after a "
                                 "purge (%s)",
                                 why);
                        return;
                }
        }
        /* Writers read their batches: wait for them. Written heads are
         * done (their outputs were acknowledged); a later batch written
         * behind a failed one goes back with the rest, and deciding it
         * again finds its dedup entries: duplicates, nothing emitted twice
         * that was not already. */
        for (size_t k = 0; k < w->b_count; k++)
                if (slot(w, k)->writing)
                        write_take(w, slot(w, k), -1);
        while (w->b_count && slot(w, 0)->written && !slot(w, 0)->write_err)
                finish_head(w);
        if (!w->b_count)
                return;
        osy_log_warn("rules: %zu batch(es) in flight given back: %s",
                     w->b_count, why);
        /* Newest first, each in front of the last: the oldest ends first. */
        for (size_t k = w->b_count; k-- > 0;) {
                struct batch *b = slot(w, k);
                queue_prepend(w, b, 0, b->n);
                batch_release(b, 0);
        }
        w->b_count = 0;
        ov_clear(w);
        atomic_store(&w->ready, 0);
        infra_failure(w, why);
}

/* ---- deciding -------------------------------------------------------------
 */

/* 1 if an earlier message of the batch for the same person had this id. */
static int dup_in_batch(const struct batch *b, int i)
{
        const struct rmsg *m = &b->msgs[i];
        for (int j = b->persons[m->person].first; j >= 0 && j < i;
             j     = b->msgs[j].next_same)
                if (!b->msgs[j].dlq && !strcmp(b->msgs[j].ev.id, m->ev.id))
                        return 1;
        return 0;
}

/*
 * Decide message @p i of @p b. @returns OSY_OK when decided or
 * dead-lettered; OSY_ERR_TRANSIENT when it must wait (backoff set): the
 * batch is cut there; other errors are the worker's own (no memory).
 */
/*
 * An event the rules cannot decide, or whose outputs cannot be written
 * (error @p err, its text in @p errstr): a person state past the list
 * limit, an id from AC that is no token. It goes to the DLQ with why and
 * the stream moves on. Returning the error instead made the worker exit,
 * meet the same event after the restart, and stop every opt-out behind
 * it. Only running out of memory still stops the batch.
 */
static osy_err_t undecidable(struct batch *b, struct rmsg *m, osy_err_t err,
                             const char *reason, char *errstr,
                             size_t errstr_size)
{
        char why[OSY_TEXT_MAX];

        if (err == OSY_ERR_NOMEM)
                return err;
        snprintf(why, sizeof(why), "%s", errstr);
        osy_log_warn("rules: %s (%s): %s", reason, m->ev.id, why);
        return add_dlq(b, m, reason, why, why, 1, 0, errstr, errstr_size);
}

static osy_err_t decide_one(osy_rules_worker_t *w, struct batch *b, int i,
                            char *errstr, size_t errstr_size)
{
        struct rmsg *m             = &b->msgs[i];
        struct rperson *p          = &b->persons[m->person];
        struct osy_rules_lookup lk = {0};
        struct osy_rules_decision d;
        int dup  = m->dup_redis || dup_in_batch(b, i);
        int used = 0;
        osy_err_t err;

        if ((err = osy_rules_decide(&w->ctx, &m->ev, &p->st, NULL, dup, &d,
                                    errstr, errstr_size)))
                return undecidable(b, m, err, "decision failed", errstr,
                                   errstr_size);
        if (d.need) {
                char why[OSY_TEXT_MAX];
                int64_t ra = -1;
                int need   = d.need;

                osy_rules_decision_clear(&d);
                used = 1;
                w->stats.lookups++;
                osy_counter_inc(w->m.lookups);
                if (!w->o.lookup)
                        err = osy_err_set(OSY_ERR_PERMANENT, why, sizeof(why),
                                          "no AC look-up configured");
                else
                        err = w->o.lookup(w->o.lookup_opaque, &m->ev, &p->st,
                                          need, &lk, &ra, why, sizeof(why));
                if (!err &&
                    (err = osy_rules_decide(&w->ctx, &m->ev, &p->st, &lk, 0, &d,
                                            why, sizeof(why))) == OSY_OK &&
                    d.need) {
                        osy_rules_decision_clear(&d);
                        err = osy_err_set(OSY_ERR_PERMANENT, why, sizeof(why),
                                          "AC look-up did not answer what "
                                          "the decision needs");
                }
                osy_rules_lookup_clear(&lk);
                if (err == OSY_ERR_NOMEM)
                        return osy_err_set(err, errstr, errstr_size, "%s", why);
                if (err) {
                        osy_retry_verdict_t v;
                        char msg[OSY_TEXT_MAX + 64];
                        int ex;

                        osy_counter_inc(w->m.lookup_fail);
                        snprintf(msg, sizeof(msg), "AC look-up: %s", why);
                        v = osy_err_is_retryable(err)
                                ? backoff(w, m->rkm, err, ra, 0, msg)
                                : OSY_RETRY_PERMANENT;
                        if (v == OSY_RETRY_AGAIN)
                                return OSY_ERR_TRANSIENT;
                        ex  = v == OSY_RETRY_EXHAUSTED;
                        err = add_dlq(
                            b, m,
                            ex ? "retries exhausted" : "AC look-up failed",
                            ex ? w->first_error : msg, msg,
                            ex ? w->retry.attempts : 1,
                            ex ? w->first_failed_at : 0, errstr, errstr_size);
                        retry_done(w);
                        return err;
                }
        }
        if (used) {
                w->cache_misses++;
                osy_counter_inc(w->m.cache_miss);
        } else {
                w->cache_hits++;
                osy_counter_inc(w->m.cache_hit);
        }
        if ((err = add_decision_outputs(b, m, &d, errstr, errstr_size))) {
                osy_rules_decision_clear(&d);
                return undecidable(b, m, err, "outputs invalid", errstr,
                                   errstr_size);
        }
        m->rule    = d.rule;
        m->outcome = d.outcome;
        /* Duplicates already have their key; everything else decided
         * gets one once its outputs are acknowledged. */
        m->set_dedup = !m->dup_redis;
        if (d.state_changed) {
                /* Later events of the person see it: in this batch
                 * directly, in later batches through the overlay. */
                osy_rules_person_clear(&p->st);
                p->st = d.next;
                memset(&d.next, 0, sizeof(d.next));
                p->changed = 1;
        }
        osy_rules_decision_clear(&d);
        return OSY_OK;
}

/* Parse record @p m into m->ev: 1 if it is a valid event; otherwise 0,
 * m->ev cleared and the reason in @p why. Touches nothing but @p m, so
 * the decoder thread runs it too (decode_range). */
static int parse_event(struct rmsg *m, char *why, size_t whysz)
{
        rd_kafka_message_t *r = m->rkm;

        why[0] = '\0';
        if (osy_msg_decode(r->payload, r->len, &m->ev, why, whysz))
                return 0;
        if (m->ev.type != OSY_MSG_AC_EVENT && m->ev.type != OSY_MSG_SF_EVENT) {
                snprintf(why, whysz, "type: %s is not an event",
                         osy_msg_type2str(m->ev.type));
                osy_msg_clear(&m->ev);
                return 0;
        }
        return 1;
}

/* Parse @p n records; each one's m->parsed says whether it is an event
 * (the reasons of the others are found again by decode_one: rare). */
static void decode_range(struct rmsg *msgs, size_t n)
{
        char why[OSY_TEXT_MAX];

        for (size_t i = 0; i < n; i++)
                msgs[i].parsed = parse_event(&msgs[i], why, sizeof(why));
}

static void *decoder_main(void *arg)
{
        struct decoder *d = arg;

        pthread_mutex_lock(&d->mu);
        for (;;) {
                while (!d->busy && !d->stop)
                        pthread_cond_wait(&d->cv, &d->mu);
                if (!d->busy)
                        break; /* told to stop, and no job */
                pthread_mutex_unlock(&d->mu);
                decode_range(d->msgs, d->n);
                pthread_mutex_lock(&d->mu);
                d->busy = 0;
                pthread_cond_broadcast(&d->cv);
        }
        pthread_mutex_unlock(&d->mu);
        return NULL;
}

/*
 * Parse the records of @p b: from DECODE_SPLIT_MIN records on, the
 * decoder thread takes the second half while this thread does the first.
 * Parsing (JSON, checks, the id's hash) is about 3 ms per 1,000 events,
 * on the main thread's path between batches. A/B in bench/rules.sh,
 * alternating: faster in 6 pairs of 8, by 5% on average.
 */
static void parse_batch(osy_rules_worker_t *w, struct batch *b)
{
        struct decoder *d = &w->dec;
        size_t half       = b->n / 2;

        if (!d->started || b->n < DECODE_SPLIT_MIN) {
                decode_range(b->msgs, b->n);
                return;
        }
        pthread_mutex_lock(&d->mu);
        d->msgs = b->msgs + half;
        d->n    = b->n - half;
        d->busy = 1;
        pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->mu);
        decode_range(b->msgs, half);
        pthread_mutex_lock(&d->mu);
        while (d->busy)
                pthread_cond_wait(&d->cv, &d->mu);
        pthread_mutex_unlock(&d->mu);
}

/* Message @p i, parsed: its person added, or it is marked for the DLQ
 * with the reason in @p why. */
static void decode_one(osy_rules_worker_t *w, struct batch *b, int i, char *why,
                       size_t whysz)
{
        struct rmsg *m = &b->msgs[i];

        why[0] = '\0';
        if (!m->parsed) {
                /* Parse again for the reason: the first pass may have
                 * run on the decoder thread, which keeps none. */
                if (parse_event(m, why, whysz)) {
                        osy_msg_clear(&m->ev); /* parsing is pure */
                        snprintf(why, whysz, "decode: not repeatable");
                }
                return;
        }
        if ((m->person = person_of(w, b, i)) < 0) {
                snprintf(why, whysz, "email: too long for a key");
                osy_msg_clear(&m->ev);
                m->person = -1;
                return;
        }
        m->decoded = 1;
}

/* ---- completing batches
 * ------------------------------------------------------ */

/* Store, per partition, the offset of the batch's last record of it: the
 * batches before it are done, and its records are in offset order. */
static void store_offsets(osy_rules_worker_t *w, struct batch *b)
{
        char errstr[OSY_ERRSTR_SIZE];
        /* Walk backwards: the first record seen of a partition is its
         * last. A batch spans few partitions, so the list stays short. */
        struct seen {
                rd_kafka_topic_t *rkt;
                int32_t partition;
        } seen[64];
        size_t n_seen = 0;

        for (size_t i = b->n; i-- > 0;) {
                rd_kafka_message_t *r = b->msgs[i].rkm;
                int last              = 1;
                osy_err_t err;

                for (size_t j = 0; j < n_seen && last; j++)
                        if (seen[j].rkt == r->rkt &&
                            seen[j].partition == r->partition)
                                last = 0;
                if (last && n_seen == sizeof(seen) / sizeof(*seen)) {
                        /* More than 64 partitions in one batch: check the
                         * rest of the batch the slow way. */
                        for (size_t j = i + 1; j < b->n && last; j++)
                                if (b->msgs[j].rkm->rkt == r->rkt &&
                                    b->msgs[j].rkm->partition == r->partition)
                                        last = 0;
                } else if (last) {
                        seen[n_seen].rkt         = r->rkt;
                        seen[n_seen++].partition = r->partition;
                }
                if (!last)
                        continue;
                err = osy_kafka_consumer_store(w->consumer, r, errstr,
                                               sizeof(errstr));
                if (err == OSY_ERR_NOT_FOUND) {
                        /* Revoked meanwhile: the new owner decides these
                         * again, which is harmless. */
                        w->stats.store_not_owned++;
                        osy_counter_inc(w->m.not_owned);
                } else if (err) {
                        osy_log_warn("rules: %s", errstr);
                }
        }
}

/* ---- the writer thread ------------------------------------------------------
 */

/* Write one batch at a time: state and dedup entries, retried in place (the
 * main thread goes on deciding meanwhile). */
static void *writer_main(void *arg)
{
        struct rwriter *wr    = arg;
        osy_rules_worker_t *w = wr->w;

        pthread_mutex_lock(&w->wlock);
        for (;;) {
                struct batch *b;
                char why[OSY_TEXT_MAX] = "";
                long long refused      = 0;
                int rtt                = 0;
                osy_err_t err;

                while (!w->wstop && (!wr->job || wr->done))
                        pthread_cond_wait(&w->wcond, &w->wlock);
                if (w->wstop)
                        break;
                b = wr->job;
                pthread_mutex_unlock(&w->wlock);
                for (int attempt = 0;; attempt++) {
                        if (!(err = redis_write(w, wr->conn, b, &refused, &rtt,
                                                why, sizeof(why))))
                                break;
                        if (err == OSY_ERR_NOMEM ||
                            attempt + 1 >= WRITE_ATTEMPTS)
                                break;
                        {
                                struct timespec ts = {
                                    0, (long)(50L << attempt) * 1000000L};
                                nanosleep(&ts, NULL);
                        }
                }
                pthread_mutex_lock(&w->wlock);
                wr->err     = err;
                wr->refused = refused;
                wr->rtt     = rtt;
                memcpy(wr->why, why, sizeof(why));
                wr->done = 1;
                pthread_cond_broadcast(&w->wcond);
        }
        pthread_mutex_unlock(&w->wlock);
        return NULL;
}

/* Hand @p b to a free writer. @returns 0 when every writer is busy. */
static int write_start(osy_rules_worker_t *w, struct batch *b)
{
        int k;

        pthread_mutex_lock(&w->wlock);
        for (k = 0; k < WRITERS && w->writers[k].job; k++)
                ;
        if (k < WRITERS) {
                b->writing         = 1;
                b->wr              = k;
                b->t_acked         = mono_ms();
                w->writers[k].job  = b;
                w->writers[k].done = 0;
                pthread_cond_broadcast(&w->wcond);
        }
        pthread_mutex_unlock(&w->wlock);
        return k < WRITERS;
}

/*
 * Take @p b's write once it is over (waiting up to @p timeout_ms, -1: for
 * good): b->written is then set and b->write_err says how it went; the
 * round trips are counted here, on the main thread. @returns 1 when
 * taken, 0 while the write runs.
 */
static int write_take(osy_rules_worker_t *w, struct batch *b, int timeout_ms)
{
        struct rwriter *wr = &w->writers[b->wr];
        int done;

        pthread_mutex_lock(&w->wlock);
        if (!wr->done && timeout_ms != 0) {
                if (timeout_ms < 0) {
                        while (!wr->done)
                                pthread_cond_wait(&w->wcond, &w->wlock);
                } else {
                        struct timespec ts;
                        clock_gettime(CLOCK_REALTIME, &ts);
                        ts.tv_nsec += (long)timeout_ms * 1000000L;
                        ts.tv_sec += ts.tv_nsec / 1000000000L;
                        ts.tv_nsec %= 1000000000L;
                        while (!wr->done &&
                               pthread_cond_timedwait(&w->wcond, &w->wlock,
                                                      &ts) != ETIMEDOUT)
                                ;
                }
        }
        done = wr->done;
        if (done) {
                b->write_err = wr->err;
                b->taken_seq = w->read_seq;
                memcpy(b->write_why, wr->why, sizeof(b->write_why));
                w->stats.redis_roundtrips += (uint64_t)wr->rtt;
                osy_counter_add(w->m.rtt, (double)wr->rtt);
                if (wr->refused > 0)
                        osy_counter_add(w->m.write_stale, (double)wr->refused);
                wr->job    = NULL;
                wr->done   = 0;
                b->writing = 0;
                b->written = 1;
        }
        pthread_mutex_unlock(&w->wlock);
        return done;
}

/* The head batch is acknowledged and written: store the offsets, count,
 * release it. */
static void finish_head(osy_rules_worker_t *w)
{
        struct batch *b = slot(w, 0);
        int64_t now;

        atomic_store(&w->ready, 1);
        store_offsets(w, b);
        now = mono_ms();
        osy_log_debug("rules: batch of %zu: decode %" PRId64
                      " ms, read %" PRId64 " ms, decide %" PRId64
                      " ms, acks %" PRId64 " ms, write %" PRId64 " ms",
                      b->n, b->t_decoded - b->t_start, b->t_read - b->t_decoded,
                      b->t_decided - b->t_read, b->t_acked - b->t_decided,
                      now - b->t_acked);
        for (size_t i = 0; i < b->n; i++) {
                struct rmsg *m = &b->msgs[i];
                w->stats.events++;
                osy_counter_inc(w->m.events);
                osy_histogram_observe(w->m.latency,
                                      (double)(now - m->t_in) / 1000.0);
                if (m->dlq) {
                        w->stats.dead_lettered++;
                        osy_counter_inc(w->m.dlq);
                }
                if (m->decoded)
                        count_decision(w, m->rule, m->outcome);
                if (m->outcome == OSY_OUTCOME_DUPLICATE)
                        osy_counter_inc(w->m.dedup_hits);
                else if (m->outcome == OSY_OUTCOME_STALE)
                        osy_counter_inc(w->m.stale);
        }
        if (w->cache_hits + w->cache_misses > 0)
                osy_gauge_set(w->m.cache_ratio,
                              w->cache_hits /
                                  (w->cache_hits + w->cache_misses));
        ov_release_batch(w, b);
        batch_release(b, b->n);
        w->b_head = (w->b_head + 1) % BATCH_SLOTS;
        w->b_count--;
        w->stats.batches++;
}

static int may_release(osy_rules_worker_t *w, const struct batch *b);

/* 1 if every batch in flight before the @p k-th was written successfully. */
static int earlier_written(osy_rules_worker_t *w, size_t k)
{
        for (size_t j = 0; j < k; j++)
                if (!slot(w, j)->written || slot(w, j)->write_err)
                        return 0;
        return 1;
}

/*
 * Serve delivery reports (waiting up to @p timeout_ms for the first), hand
 * the batches whose outputs are all acknowledged to free writers (in
 * batch order), then finish the written batches at the head, in order.
 * @returns OSY_ERR_FATAL when the producer cannot go on.
 */
static osy_err_t complete(osy_rules_worker_t *w, int timeout_ms, char *errstr,
                          size_t errstr_size)
{
        osy_err_t err;

        osy_kafka_producer_poll(w->producer, timeout_ms);
        for (size_t k = 0; k < w->b_count; k++) {
                struct batch *b = slot(w, k);
                int failed      = 0;

                /* A finished write frees its writer at once, whether or
                 * not its batch is the head. */
                if (b->writing)
                        write_take(w, b, 0);
                if (b->writing || b->written)
                        continue;
                if (b->acks_outstanding > 0) {
                        /* Every report comes within message.timeout.ms;
                         * past it with a margin, something is wrong. */
                        if (mono_ms() - b->produced_at >
                            w->o.produce_timeout_ms + 5000) {
                                abandon_all(w, "delivery reports overdue");
                                return OSY_OK;
                        }
                        break;
                }
                for (size_t i = 0; i < b->n; i++)
                        for (int o = 0; o < b->msgs[i].n_out; o++)
                                failed += b->msgs[i].out[o].state != 1;
                if (failed) {
                        if ((err = osy_kafka_producer_fatal(w->producer, errstr,
                                                            errstr_size)))
                                return err;
                        if (++b->produce_attempts < PRODUCE_ATTEMPTS) {
                                osy_log_warn("rules: %d output(s) not "
                                             "acknowledged, producing them "
                                             "again",
                                             failed);
                                return produce_batch(w, b, errstr, errstr_size);
                        }
                        abandon_all(w, "outputs not acknowledged");
                        return OSY_OK;
                }
                /* Every output acknowledged: state and dedup entries next,
                 * on a writer thread; later batches go on meanwhile.
                 * Writes of batches with no person in common commute
                 * (versions decide, dedup entries are idempotent), but two
                 * events of one person at the same millisecond are
                 * ordered only by arrival: the apply script keeps
                 * whichever was written last. So a batch that shares a
                 * person with an earlier one in flight is written only
                 * after every earlier batch was written. */
                if (b->shares_persons && !earlier_written(w, k))
                        break;
                if (!write_start(w, b))
                        break;
        }
        while (w->b_count) {
                struct batch *b = slot(w, 0);

                if (!b->written && (!b->writing || !write_take(w, b, 0)))
                        return OSY_OK; /* still acknowledging or writing */
                if (b->write_err == OSY_ERR_NOMEM)
                        return osy_err_set(b->write_err, errstr, errstr_size,
                                           "%s", b->write_why);
                if (b->write_err) {
                        abandon_all(w, b->write_why);
                        return OSY_OK;
                }
                /* A read on its way may have been answered before this
                 * write ran: the overlay must keep covering it until that
                 * read is taken in. */
                if (!may_release(w, b))
                        return OSY_OK;
                finish_head(w);
                /* (the retried record may sit in P or X, undecided) */
                if (!w->blocked && !w->b_count && !w->have_p && !w->have_x &&
                    w->retry_partition >= 0)
                        retry_done(w);
        }
        return OSY_OK;
}

/* Finish every batch in flight, or give them back after @p deadline. */
static void drain(osy_rules_worker_t *w, int64_t deadline)
{
        char errstr[OSY_ERRSTR_SIZE];

        while (w->b_count && mono_ms() < deadline)
                if (complete(w, 10, errstr, sizeof(errstr)))
                        break; /* fatal: nothing will be acknowledged */
        if (w->b_count)
                abandon_all(w, "not finished in time");
}

/* ---- starting batches
 * -------------------------------------------------------- */

/* The batch being read (P) and the one decoded meanwhile (X). */
static struct batch *batch_p(osy_rules_worker_t *w)
{
        return slot(w, w->b_count);
}

static struct batch *batch_x(osy_rules_worker_t *w)
{
        return slot(w, w->b_count + (size_t)w->have_p);
}

/* Give @p b's records from @p from on back to the queue's head, its
 * decoded events and outputs dropped. */
static void batch_giveback(osy_rules_worker_t *w, struct batch *b, size_t from)
{
        queue_prepend(w, b, from, b->n);
        for (size_t i = from; i < b->n; i++) {
                free_outputs(&b->msgs[i]);
                osy_msg_clear(&b->msgs[i].ev);
        }
        b->n = from;
}

/* Read and drop @p b's unanswered read: the connection stays in step. */
static void read_drop(osy_rules_worker_t *w, struct batch *b)
{
        char why[OSY_TEXT_MAX];
        redisReply *r = NULL;

        if (b->read_sent <= 0)
                return;
        b->read_sent = 0;
        if (osy_redis_pipeline_recv(w->redis, &r, 1, why, sizeof(why)))
                osy_log_debug("rules: dropped read: %s", why);
        if (r)
                freeReplyObject(r);
}

/* Drop X: its read (answered after P's, if P's is still owed) and its
 * records back to the queue's head. */
static void unprepare_x(osy_rules_worker_t *w)
{
        if (!w->have_x)
                return;
        read_drop(w, batch_x(w));
        batch_giveback(w, batch_x(w), 0);
        batch_release(batch_x(w), 0);
        w->have_x = 0;
}

/*
 * Undo P and X (a rebalance, an abandon, close): their records go back
 * to the queue's head in order, undecided; their unanswered reads are
 * read and thrown away, in the order sent, so the connection is clean
 * and, with no read owed, written batches may leave the overlay.
 */
static void unprepare(osy_rules_worker_t *w)
{
        if (w->have_p)
                read_drop(w, batch_p(w));
        unprepare_x(w);
        if (!w->have_p)
                return;
        batch_giveback(w, batch_p(w), 0);
        batch_release(batch_p(w), 0);
        w->have_p = 0;
}

/* 1 if written batch @p b may leave the overlay: every read still owed
 * was sent after its write was seen to be over, so Redis ran the write
 * first and those reads see it. */
static int may_release(osy_rules_worker_t *w, const struct batch *b)
{
        uint64_t oldest = 0;

        if (w->have_p && batch_p(w)->read_sent > 0)
                oldest = batch_p(w)->read_seq;
        else if (w->have_x && batch_x(w)->read_sent > 0)
                oldest = batch_x(w)->read_seq;
        return !oldest || oldest > b->taken_seq;
}

/*
 * Take up to batch_size queued records into @p b and decode them (the
 * worker's dlq_head record alone, dead-lettered). @returns OSY_OK;
 * OSY_ERR_NOMEM with the records given back.
 */
static osy_err_t decode_batch(osy_rules_worker_t *w, struct batch *b,
                              char *errstr, size_t errstr_size)
{
        size_t n =
            w->q_n < (size_t)w->o.batch_size ? w->q_n : (size_t)w->o.batch_size;
        char why[OSY_TEXT_MAX];
        osy_err_t err = OSY_OK;

        /* The record whose retries ran out must still be the head: a
         * rebalance may have dropped it, or an abandon put earlier records
         * in front of it. Otherwise nothing is dead-lettered now. */
        if (w->dlq_head && !is_retry_head(w, w->queue[0].rkm))
                w->dlq_head = 0;
        b->dlq_head = w->dlq_head;
        if (b->dlq_head)
                n = 1; /* its retries ran out: dead-letter it alone */
        if (batch_reserve(b, n))
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "rules: out of memory");
        b->t_start          = mono_ms();
        b->n                = n;
        b->persons_n        = 0;
        b->acks_outstanding = 0;
        b->produce_attempts = 0;
        b->arena_len        = 0;
        b->oarena_len       = 0;
        b->read_sent        = 0;
        b->writing          = 0;
        b->written          = 0;
        b->write_err        = OSY_OK;
        memset(b->ptable, 0xff, b->ptable_cap * sizeof(*b->ptable));
        for (size_t i = 0; i < n; i++) {
                struct rmsg *m = &b->msgs[i];
                memset(m, 0, sizeof(*m));
                m->rkm       = w->queue[i].rkm;
                m->t_in      = w->queue[i].t_in;
                m->person    = -1;
                m->next_same = -1;
        }
        /* The batch owns the records now. */
        memmove(w->queue, w->queue + n, (w->q_n - n) * sizeof(*w->queue));
        w->q_n -= n;

        parse_batch(w, b);
        for (size_t i = 0; i < n; i++) {
                struct rmsg *m = &b->msgs[i];
                decode_one(w, b, (int)i, why, sizeof(why));
                if (b->dlq_head) {
                        arena_fix(b); /* n is 1: the arena is complete */
                        if ((err = add_dlq(b, m, w->dlq_reason, w->first_error,
                                           w->last_error, w->retry.attempts,
                                           w->first_failed_at, errstr,
                                           errstr_size)))
                                goto fail;
                } else if (!m->decoded &&
                           (err = add_dlq(b, m, "invalid message", why, why, 1,
                                          0, errstr, errstr_size))) {
                        /* (an undecoded record's outputs use its own key,
                         * not the arena) */
                        goto fail;
                }
        }
        arena_fix(b);
        b->t_decoded = mono_ms();
        return OSY_OK;
fail:
        queue_prepend(w, b, 0, b->n);
        batch_release(b, 0);
        return err;
}

/*
 * P's read is answered: decide in order, produce. The outputs are then in
 * flight; complete() finishes the batch. A look-up that must wait, or a
 * failed read, cuts P there: the rest of P and all of X go back to the
 * queue, undecided, so order per partition holds.
 */
static osy_err_t finish_batch(osy_rules_worker_t *w, char *errstr,
                              size_t errstr_size)
{
        struct batch *b = batch_p(w);
        size_t n = b->n, cut = n;
        char why[OSY_TEXT_MAX];
        osy_err_t err = OSY_OK;

        if (!b->dlq_head) {
                if ((err = redis_read_recv(w, b, why, sizeof(why)))) {
                        unprepare_x(w);
                        if (err == OSY_ERR_NOMEM) {
                                osy_err_set(err, errstr, errstr_size, "%s",
                                            why);
                                goto fail;
                        }
                        /* Nothing decided: all back, wait, try again. */
                        batch_giveback(w, b, 0);
                        batch_release(b, 0);
                        w->have_p = 0;
                        atomic_store(&w->ready, 0);
                        infra_failure(w, why);
                        return OSY_OK;
                }
                atomic_store(&w->ready, 1);
        }
        b->t_read = mono_ms();
        for (size_t i = 0; i < n && !b->dlq_head; i++) {
                if (b->msgs[i].dlq)
                        continue;
                /* Deciding takes microseconds; AC look-ups take the
                 * limiter's time (5 calls/s per account). Once a batch has
                 * spent its budget on them, what is decided goes out and
                 * the rest waits for the next batch, so a burst of people
                 * optsync has not seen does not hold back every write
                 * behind the last look-up (order per partition is kept). */
                if (i > 0 && mono_ms() - b->t_read >= RULES_LOOKUP_BUDGET_MS) {
                        cut = i;
                        break;
                }
                err = decide_one(w, b, (int)i, errstr, errstr_size);
                if (err == OSY_ERR_TRANSIENT) {
                        cut = i;
                        break;
                }
                if (err) {
                        unprepare_x(w);
                        goto fail;
                }
        }
        b->t_decided = mono_ms();
        err          = OSY_OK;
        if (cut < n) {
                /* A look-up must wait: the rest goes back, undecided,
                 * and X behind it. */
                unprepare_x(w);
                batch_giveback(w, b, cut);
        }
        if (!b->n) {
                batch_release(b, 0);
                w->have_p = 0;
                return OSY_OK;
        }
        if ((err = ov_add_batch(w, b))) {
                osy_err_set(err, errstr, errstr_size, "rules: out of memory");
                ov_release_batch(w, b);
                unprepare_x(w);
                goto fail;
        }
        if (b->dlq_head)
                w->dlq_head = 0;
        /* P is in flight now; X, if any, is next in the ring. */
        w->have_p = 0;
        w->b_count++;
        if ((err = produce_batch(w, b, errstr, errstr_size)))
                return err; /* fatal or invalid: the process exits */
        if (!w->blocked && w->retry_partition >= 0)
                retry_done(w);
        return OSY_OK;
fail:
        /* The worker's own failure (no memory): give the records back so
         * nothing is stored past them, and report. */
        queue_prepend(w, b, 0, b->n);
        batch_release(b, 0);
        w->have_p = 0;
        return err;
}

/*
 * librdkafka 2.0 stops fetching a partition once the prefetch queue is
 * over queued.max.messages.kbytes, and decides again only when the
 * partition leader's broker thread wakes up: on network I/O, or once a
 * second. A worker catching up on a backlog empties the queue well
 * within that second and then sat idle (over half the time in
 * bench/rules.sh). So when the queue runs dry while the assigned
 * partitions are known to have more (cached high watermarks), a
 * ListOffsets request to their leaders wakes those threads, which fetch
 * again. Newer librdkafka has fetch.queue.backoff.ms for this.
 */
static void kick_fetcher(osy_rules_worker_t *w)
{
        rd_kafka_t *rk = osy_kafka_consumer_handle(w->consumer);
        rd_kafka_topic_partition_list_t *parts = NULL;
        int64_t now = mono_ms(), behind = 0;

        if (now - w->kick_at < KICK_INTERVAL_MS)
                return;
        w->kick_at = now;
        if (rd_kafka_assignment(rk, &parts) || !parts)
                return;
        if (parts->cnt && !rd_kafka_position(rk, parts)) {
                for (int i = 0; i < parts->cnt; i++) {
                        int64_t lo, hi;
                        rd_kafka_topic_partition_t *p = &parts->elems[i];
                        if (!rd_kafka_get_watermark_offsets(
                                rk, p->topic, p->partition, &lo, &hi) &&
                            p->offset >= 0 && hi > p->offset)
                                behind += hi - p->offset;
                }
        }
        if (behind > 0) {
                for (int i = 0; i < parts->cnt; i++)
                        parts->elems[i].offset = RD_KAFKA_OFFSET_END;
                /* The answer itself is not needed; a leader that does not
                 * answer is not asked again for a while (the loop must
                 * not spend its time here during a broker outage). */
                if (rd_kafka_offsets_for_times(rk, parts, KICK_TIMEOUT_MS))
                        w->kick_at = now + KICK_BACKOFF_MS;
        }
        rd_kafka_topic_partition_list_destroy(parts);
}

/* Poll until the batch is full, or batch_wait_ms after its first record;
 * return when nothing comes within @p idle_ms. */
static void gather(osy_rules_worker_t *w, int idle_ms)
{
        int64_t deadline = w->q_n ? mono_ms() + w->o.batch_wait_ms : -1;

        while (w->q_n < (size_t)w->o.batch_size) {
                int64_t now = mono_ms();
                int timeout = deadline < 0     ? idle_ms
                              : deadline > now ? (int)(deadline - now)
                                               : 0;
                rd_kafka_message_t *rkm =
                    osy_kafka_consumer_poll(w->consumer, timeout);

                if (!rkm) {
                        kick_fetcher(w);
                        if (deadline < 0 || mono_ms() >= deadline)
                                return;
                        continue;
                }
                if (queue_push(w, rkm, mono_ms())) {
                        /* No memory to keep it: it stays unstored and
                         * comes again after a restart or rebalance. */
                        osy_log_error("rules: out of memory queueing a "
                                      "record");
                        rd_kafka_message_destroy(rkm);
                        return;
                }
                if (deadline < 0)
                        deadline = mono_ms() + w->o.batch_wait_ms;
        }
}

/* X becomes P (its read is on its way already). */
static void promote_x(osy_rules_worker_t *w)
{
        if (!w->have_x || w->have_p)
                return;
        w->have_x = 0;
        w->have_p = 1;
}

/*
 * One turn of the loop, a pipeline of three: the batch decoded now (X)
 * overlaps Redis answering the read of the one before (P), which is
 * then decided and produced, while the batches before it wait for their
 * acknowledgements and writes.
 */
osy_err_t osy_rules_worker_step(osy_rules_worker_t *w, char *errstr,
                                size_t errstr_size)
{
        osy_err_t err;

        if (w->fatal_why[0])
                return osy_err_set(OSY_ERR_FATAL, errstr, errstr_size, "%s",
                                   w->fatal_why);
        if ((err =
                 osy_kafka_producer_fatal(w->producer, errstr, errstr_size)) ||
            (err = osy_kafka_consumer_fatal(w->consumer, errstr, errstr_size)))
                return err;
        update_lag(w);
        if (w->blocked) {
                int64_t now = mono_ms();
                if ((err = complete(w, 0, errstr, errstr_size)))
                        return err;
                if (now < w->blocked_until) {
                        /* Serve the group (rebalances, liveness) and the
                         * batches in flight while backing off; paused
                         * partitions bring nothing new, and what arrives
                         * anyway is kept in order. */
                        int64_t t = w->blocked_until - now;
                        int cap   = w->b_count ? BUSY_POLL_MS : IDLE_POLL_MS;
                        rd_kafka_message_t *rkm = osy_kafka_consumer_poll(
                            w->consumer, (int)(t < cap ? t : cap));
                        if (rkm && queue_push(w, rkm, mono_ms()))
                                rd_kafka_message_destroy(rkm);
                        return OSY_OK;
                }
                /* Try again with what is queued; the partitions stay
                 * paused until the waiting record goes through. */
                w->blocked = 0;
        } else if (w->b_count + (size_t)w->have_p < MAX_INFLIGHT) {
                gather(w,
                       w->b_count || w->have_p ? BUSY_POLL_MS : IDLE_POLL_MS);
        }
        /* gather() may have run a rebalance: P and X are re-read then. */
        if (w->q_n && !w->have_x &&
            w->b_count + (size_t)w->have_p < MAX_INFLIGHT &&
            !(w->dlq_head && w->have_p)) {
                if ((err = decode_batch(w, batch_x(w), errstr, errstr_size)))
                        return err;
                w->have_x = 1;
                if (!batch_x(w)->dlq_head)
                        redis_read_send(w, batch_x(w));
        }
        if (w->have_p && (err = finish_batch(w, errstr, errstr_size)))
                return err;
        /* Written batches finish as may_release() allows. */
        if ((err = complete(w, 0, errstr, errstr_size)))
                return err;
        if (w->have_x && !w->blocked) {
                promote_x(w);
                return OSY_OK;
        }
        if (w->have_x) /* blocked meanwhile: X waits in the queue */
                unprepare_x(w);
        if (w->b_count)
                return complete(w, BUSY_POLL_MS, errstr, errstr_size);
        if (w->retry_partition >= 0 && !w->q_n)
                retry_done(w);
        return OSY_OK;
}
