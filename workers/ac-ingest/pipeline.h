/*
 * pipeline.h - where ac-ingest's events go: Kafka (idempotent, acks=all)
 * within a bounded wait, else the durable spool, replayed in order once
 * Kafka answers again. Decides what a webhook is answered.
 */
#ifndef OSY_INGEST_PIPELINE_H
#define OSY_INGEST_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "acwh.h"
#include "spool.h"
#include "optsync/err.h"
#include "optsync/kafka.h"
#include "optsync/metrics.h"

/** Where a submitted webhook's events ended up. */
typedef enum {
        OSY_PIPE_KAFKA = 0, /**< every event acknowledged by Kafka: 200 */
        OSY_PIPE_SPOOLED,   /**< durable in the spool (fsync'd): 200 */
        OSY_PIPE_FAILED     /**< neither: 503, AC's event is not kept */
} osy_pipe_result_t;

/**
 * @brief Completion of an asynchronous submit, called exactly once from
 *        the pipeline's poller thread. After it returns the pipeline no
 *        longer touches the events or @p opaque.
 */
typedef void(osy_pipe_done_cb)(void *opaque, osy_pipe_result_t res);

/** Options a caller fills. */
struct osy_pipe_opts {
        /** Kafka connection; NULL bootstrap means "no Kafka": every submit
         *  is answered at once as if acknowledged (benchmark baseline). */
        const struct osy_kafka_opts *kafka;
        const char *topic; /**< e.g. "optsync.ac.events"; required */
        /** Borrowed; required unless kafka is NULL. Must outlive the
         *  pipeline. */
        osy_spool_t *spool;
        int64_t ack_timeout_ms; /**< wait for a delivery report, then spool */
        osy_metrics_t *metrics; /**< may be NULL */
        /** Replay batch: records in flight at once (0: 500). */
        size_t replay_batch;
        /** At start, wait up to this long for the cluster's metadata, so
         *  the first webhooks do not pay for connecting (0: no wait). */
        int warmup_ms;
};

typedef struct osy_pipe_s osy_pipe_t;

/**
 * @brief Create the producer and start the poller and replay threads.
 *        Undelivered spool records are replayed first, in order.
 * @param pp receives the pipeline (caller owns; osy_pipe_destroy).
 * @returns OSY_OK; OSY_ERR_INVALID (bad options, Kafka properties);
 *          OSY_ERR_NOMEM.
 */
osy_err_t osy_pipe_new(osy_pipe_t **pp, const struct osy_pipe_opts *opts,
                       char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Hand over one webhook's events (all or nothing).
 *
 * While Kafka works, each event is produced and the call returns 1: @p cb
 * runs later (poller thread) with KAFKA once every delivery report says
 * so, or SPOOLED / FAILED when a report fails or none arrives within the
 * ack timeout (the events are then spooled; Kafka may still get them, a
 * duplicate with the same id). While the spool holds undelivered events
 * (Kafka is or was unreachable), events are appended to the spool here
 * and the call returns 0 with the result in @p *res, so they keep their
 * order behind the ones already waiting.
 *
 * @param evs  borrowed until @p cb runs (or this returns 0).
 * @returns 1 (asynchronous: @p cb will be called) or 0 (done: @p *res).
 */
int osy_pipe_submit(osy_pipe_t *p, const struct osy_acwh_out *evs, size_t n,
                    osy_pipe_done_cb *cb, void *opaque, osy_pipe_result_t *res);

/**
 * @brief Wait until no submit is pending (each ends within the ack
 *        timeout), at most @p timeout_ms. @returns the number still
 *        pending (0: drained).
 */
size_t osy_pipe_drain(osy_pipe_t *p, int timeout_ms);

/** @returns 1 while Kafka acknowledges (no pending spool replay), else 0. */
int osy_pipe_kafka_ok(osy_pipe_t *p);

/**
 * @brief Readiness: Kafka reachable or the spool writable.
 * @returns 1 ready, else 0 with the reason in @p reason.
 */
int osy_pipe_ready(osy_pipe_t *p, char *reason, size_t reason_size);

/** @returns OSY_ERR_FATAL once the producer hit a fatal error (the
 *           process must restart); else OSY_OK. */
osy_err_t osy_pipe_fatal(osy_pipe_t *p, char *errstr, size_t errstr_size);

/**
 * @brief Stop taking events to Kafka: complete every pending submit
 *        (spooling what Kafka did not acknowledge) and stop replaying.
 *        Submits after this go to the spool (answered SPOOLED or FAILED),
 *        and readiness says "shutting down"; the pipeline stays valid for
 *        callers on other threads (HTTP handlers, readiness probes) until
 *        osy_pipe_destroy(). Idempotent; NULL-safe.
 */
void osy_pipe_close(osy_pipe_t *p);

/**
 * @brief osy_pipe_close() if not done, then flush and destroy the
 *        producer and free the pipeline. Nothing may call into it any
 *        more: stop the HTTP servers that use it first. Undelivered spool
 *        records stay for the next start. NULL-safe.
 */
void osy_pipe_destroy(osy_pipe_t *p);

#endif /* OSY_INGEST_PIPELINE_H */
