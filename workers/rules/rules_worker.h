/*
 * rules_worker.h - the rules worker's engine: a consumer-group member over
 * the event topics that decides each event (rules_decide.h) against the
 * person state in Redis and emits commands, audit and dead letters,
 * at least once. docs/rules.md describes the guarantees.
 */
#ifndef OPTSYNC_RULES_WORKER_H
#define OPTSYNC_RULES_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "optsync/err.h"
#include "optsync/metrics.h"
#include "optsync/redis.h"
#include "optsync/retry.h"
#include "rules_lookup.h"

/** Defaults for option fields left at 0. */
#define OSY_RULES_DEFAULT_BATCH_SIZE 1000
#define OSY_RULES_DEFAULT_BATCH_WAIT_MS 5
#define OSY_RULES_DEFAULT_DEDUP_TTL_MS (80LL * 3600 * 1000)
#define OSY_RULES_DEFAULT_STATE_TTL_MS (30LL * 24 * 3600 * 1000)
#define OSY_RULES_DEFAULT_PRODUCE_TIMEOUT_MS 5000

/** Everything the worker needs; strings and arrays are copied or must
 *  outlive the worker (noted per field). */
struct osy_rules_worker_opts {
        const char *bootstrap;    /**< Kafka bootstrap servers (required) */
        const char *client_id;    /**< NULL: "optsync-rules" */
        const char *group_id;     /**< consumer group (required) */
        const char *topic_prefix; /**< NULL: "optsync" */
        /** Extra librdkafka properties (name, value, ..., NULL) for the
         *  producer and for the consumer; must outlive the worker. */
        const char *const *producer_extra;
        const char *const *consumer_extra;
        int produce_timeout_ms; /**< message.timeout.ms of outputs */

        struct osy_redis_opts redis; /**< strings must outlive the worker */
        const char *redis_prefix;    /**< key prefix; NULL: "optsync" */
        int64_t dedup_ttl_ms;        /**< least lifetime of a dedup entry */
        int64_t state_ttl_ms;        /**< person state lifetime */

        int batch_size;    /**< most messages decided together */
        int batch_wait_ms; /**< longest wait to fill a batch */
        int sync_all_contacts;

        /** Retries of transient failures (AC look-ups, Redis, Kafka). */
        struct osy_retry_policy retry;

        /** Fills cache misses; NULL: every miss is a permanent failure
         *  (the event goes to the DLQ). */
        osy_rules_lookup_fn *lookup;
        void *lookup_opaque;

        /** Registry for the worker's metrics; may be NULL. Not owned. */
        osy_metrics_t *metrics;
};

typedef struct osy_rules_worker_s osy_rules_worker_t;

/** Counters for tests and the benchmark. */
struct osy_rules_worker_stats {
        uint64_t events;        /**< messages fully handled (offset
                                     storable) */
        uint64_t dead_lettered; /**< of which sent to the DLQ */
        uint64_t batches;       /**< batches decided */
        uint64_t redis_roundtrips;
        uint64_t lookups;         /**< AC look-ups made */
        uint64_t blocked;         /**< times a batch waited for a retry */
        uint64_t store_not_owned; /**< offsets of revoked partitions */
};

/**
 * @brief Connect to Redis, create the producer and join the group.
 * @param wp receives the worker (caller destroys it).
 * @returns OSY_OK; OSY_ERR_INVALID (bad options, named); errors of
 *          osy_redis_connect() and the Kafka constructors.
 */
osy_err_t osy_rules_worker_new(osy_rules_worker_t **wp,
                               const struct osy_rules_worker_opts *opts,
                               char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief One turn of the loop: serve delivery reports and finish the
 *        batches whose outputs are all acknowledged (state and dedup entries
 *        written, offsets stored, in batch order); then, with fewer than 7
 *        batches in flight, gather a batch (up to batch_size records or
 *        batch_wait_ms), decide it and produce its outputs. While a
 *        transient failure is being backed off, the assigned partitions are
 *        paused and this only serves the group and the batches in flight.
 *        Returns within about 100 ms plus the AC look-ups it makes.
 * @returns OSY_OK (also after transient failures, which it retries);
 *          OSY_ERR_FATAL when the producer or consumer is unusable;
 *          OSY_ERR_NOMEM.
 */
osy_err_t osy_rules_worker_step(osy_rules_worker_t *w, char *errstr,
                                size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Leave cleanly: the batches in flight are finished (bounded by the
 *        produce timeout; what cannot finish is abandoned uncommitted),
 *        records not yet decided are abandoned uncommitted (the next owner
 *        decides them), the stored offsets are committed and the group is
 *        left. Idempotent.
 */
osy_err_t osy_rules_worker_close(osy_rules_worker_t *w, char *errstr,
                                 size_t errstr_size);

/** @brief Close (if not yet) and free. NULL-safe. */
void osy_rules_worker_destroy(osy_rules_worker_t *w);

/** @returns 1 when the worker is healthy enough to take traffic (joined,
 *           Redis answering); safe from any thread. */
int osy_rules_worker_ready(const osy_rules_worker_t *w);

/** @brief Copy the counters (same thread as step). */
void osy_rules_worker_get_stats(const osy_rules_worker_t *w,
                                struct osy_rules_worker_stats *out);

/** The Lua script that writes a batch's person states
 *  (rules_worker.c documents its KEYS and ARGV); returns the number of
 *  state writes refused because a later version was already stored. */
extern const char osy_rules_apply_lua[];

#endif /* OPTSYNC_RULES_WORKER_H */
