/*
 * kafka.h - the Kafka side of the at-least-once contract: an idempotent
 * acks=all producer with per-message delivery callbacks, and a consumer
 * group member whose offsets are stored only after processing.
 */
#ifndef OPTSYNC_KAFKA_H
#define OPTSYNC_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "optsync/err.h"

/** Default time destroy/close wait for outstanding deliveries and commits. */
#define OSY_KAFKA_CLOSE_TIMEOUT_MS 10000

/**
 * @brief Connection settings shared by producers and consumers. Nothing is
 *        owned: the strings are copied into librdkafka's configuration.
 */
struct osy_kafka_opts {
        /** "host:port[,host:port]"; required. */
        const char *bootstrap;
        /** client.id, shown in broker logs; NULL means "optsync". */
        const char *client_id;
        /**
         * NULL-terminated list of librdkafka property name, value pairs
         * applied after optsync's defaults (security.protocol, sasl.*,
         * session.timeout.ms, ...). Values of names containing "password"
         * or "secret" are registered with osy_log_add_secret(). The
         * properties the at-least-once contract depends on are refused:
         * producer: enable.idempotence, acks; consumer:
         * enable.auto.offset.store; both: bootstrap.servers, group.id.
         */
        const char *const *extra;
        /** How long osy_kafka_producer_destroy() waits for outstanding
         *  deliveries; 0 means OSY_KAFKA_CLOSE_TIMEOUT_MS. (A consumer's
         *  close is bounded by librdkafka, at about session.timeout.ms.) */
        int close_timeout_ms;
};

typedef struct osy_kafka_producer_s osy_kafka_producer_t;
typedef struct osy_kafka_consumer_s osy_kafka_consumer_t;

/**
 * @brief Map a librdkafka error code to the project's error classes. The
 *        one place that decides, shared by every module:
 *        fatal idempotence errors -> OSY_ERR_FATAL; timeouts, transport,
 *        all brokers down, leader moves, purged messages ->
 *        OSY_ERR_TRANSIENT; quota -> OSY_ERR_THROTTLED; message too large
 *        -> OSY_ERR_TOO_LARGE; unknown topic/partition, bad arguments and
 *        configuration -> OSY_ERR_INVALID; authorization -> OSY_ERR_AUTH;
 *        other broker refusals -> OSY_ERR_PERMANENT.
 */
osy_err_t osy_kafka_err(rd_kafka_resp_err_t err);

/* ---- Producer ----------------------------------------------------------- */

/**
 * @brief Delivery report for one message, called from
 *        osy_kafka_producer_poll()/flush() (or produce_sync, destroy) in the
 *        thread that polls.
 *
 * @param opaque    the pointer given to osy_kafka_produce().
 * @param err       OSY_OK once the message is written with acks=all.
 * @param errstr    librdkafka's reason ("" on success); valid only during
 *                  the call.
 * @param partition partition written to (-1 if unknown).
 * @param offset    offset of the message (-1 if unknown).
 */
typedef void(osy_kafka_dr_cb)(void *opaque, osy_err_t err, const char *errstr,
                              int32_t partition, int64_t offset);

/**
 * @brief Create an idempotent producer (enable.idempotence=true, acks=all,
 *        linger.ms=5), logging through osy_log.
 *
 * @param pp receives the producer (caller owns; osy_kafka_producer_destroy).
 * @returns OSY_OK; OSY_ERR_INVALID for missing bootstrap or a bad property
 *          (named in @p errstr); OSY_ERR_NOMEM.
 */
osy_err_t osy_kafka_producer_new(osy_kafka_producer_t **pp,
                                 const struct osy_kafka_opts *opts,
                                 char *errstr,
                                 size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Enqueue one message (key and value are copied).
 *
 * @param key    may be NULL (then keylen is ignored); keyed messages go to
 *               the partition of their key, so one person stays in order.
 * @param cb     called exactly once with the outcome if this returns OSY_OK,
 *               never if it returns an error. May be NULL.
 * @returns OSY_OK; OSY_ERR_TRANSIENT when the local queue is full (poll,
 *          then retry); OSY_ERR_FATAL after a fatal producer error; other
 *          classes from osy_kafka_err().
 */
osy_err_t osy_kafka_produce(osy_kafka_producer_t *p, const char *topic,
                            const void *key, size_t keylen, const void *value,
                            size_t vallen, osy_kafka_dr_cb *cb, void *opaque,
                            char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief osy_kafka_produce() without copying the value: librdkafka sends
 *        from @p value itself, which must stay valid and unchanged until
 *        the message's delivery report has been served (or the producer
 *        is destroyed). For callers that keep their outputs anyway until
 *        they are acknowledged; the key is still copied.
 */
osy_err_t osy_kafka_produce_borrowed(osy_kafka_producer_t *p, const char *topic,
                                     const void *key, size_t keylen,
                                     const void *value, size_t vallen,
                                     osy_kafka_dr_cb *cb, void *opaque,
                                     char *errstr,
                                     size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Take back every message not yet acknowledged (queued or in
 *        flight): each gets its delivery report with an error at the next
 *        poll. For callers that must release buffers they lent.
 */
void osy_kafka_producer_purge(osy_kafka_producer_t *p);

/**
 * @brief Serve delivery reports and log events, waiting up to
 *        @p timeout_ms for the first one. @returns the number served.
 */
int osy_kafka_producer_poll(osy_kafka_producer_t *p, int timeout_ms);

/**
 * @brief Wait until every queued message has its delivery report.
 * @returns OSY_OK, or OSY_ERR_TRANSIENT if @p timeout_ms ran out first.
 */
osy_err_t osy_kafka_producer_flush(osy_kafka_producer_t *p, int timeout_ms,
                                   char *errstr,
                                   size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Produce one message and return only after its delivery report
 *        (or after @p timeout_ms). Safe to call from several threads.
 *
 * @returns the delivery outcome; OSY_ERR_TRANSIENT if no report arrived in
 *          time (the message may still be delivered later: the caller must
 *          treat it as "not acknowledged", never as "lost for sure").
 */
osy_err_t osy_kafka_produce_sync(osy_kafka_producer_t *p, const char *topic,
                                 const void *key, size_t keylen,
                                 const void *value, size_t vallen,
                                 int timeout_ms, char *errstr,
                                 size_t errstr_size) OSY_MUSTCHECK;

/**
 * @returns OSY_ERR_FATAL (reason in @p errstr) once librdkafka has raised a
 *          fatal error (the idempotence guarantee could not be kept): the
 *          producer is unusable and the process should exit. Else OSY_OK.
 */
osy_err_t osy_kafka_producer_fatal(osy_kafka_producer_t *p, char *errstr,
                                   size_t errstr_size);

/** @returns the librdkafka handle (still owned by @p p), for metadata and
 *           statistics. */
rd_kafka_t *osy_kafka_producer_handle(osy_kafka_producer_t *p);

/**
 * @brief Flush (bounded by opts.close_timeout_ms), then fail whatever is
 *        still queued: every pending callback is called (with
 *        OSY_ERR_TRANSIENT) before this returns. NULL-safe.
 */
void osy_kafka_producer_destroy(osy_kafka_producer_t *p);

/* ---- Consumer group member --------------------------------------------- */

/**
 * @brief Called with the partitions a rebalance gives (on_assign, after
 *        they are assigned) or takes (on_revoke, BEFORE they are given up,
 *        so the caller can finish in-flight work and store its offsets).
 *        Runs inside osy_kafka_consumer_poll()/close(), only for non-empty
 *        changes. With cooperative-sticky, @p parts holds just the
 *        partitions that move; the rest stay assigned. @p parts is owned
 *        by librdkafka and valid only during the call.
 */
typedef void(osy_kafka_rebalance_hook)(
    void *opaque, const rd_kafka_topic_partition_list_t *parts);

/** Optional rebalance hooks; any member may be NULL. */
struct osy_kafka_consumer_hooks {
        osy_kafka_rebalance_hook *on_assign;
        osy_kafka_rebalance_hook *on_revoke;
        void *opaque;
};

/**
 * @brief Create a consumer group member subscribed to @p topics.
 *
 * Defaults: partition.assignment.strategy=cooperative-sticky,
 * enable.auto.offset.store=false (offsets are stored only by
 * osy_kafka_consumer_store*, after processing), enable.auto.commit=true
 * (the stored offsets are committed every auto.commit.interval.ms=1000, on
 * revoke and on close), auto.offset.reset=earliest.
 *
 * @param topics NULL-terminated list of topic names (at least one).
 * @param hooks  may be NULL; copied.
 * @param cp     receives the consumer (caller owns; close, then destroy).
 * @returns OSY_OK; OSY_ERR_INVALID for missing bootstrap/group/topics or a
 *          bad property (named in @p errstr); OSY_ERR_NOMEM.
 */
osy_err_t osy_kafka_consumer_new(osy_kafka_consumer_t **cp,
                                 const struct osy_kafka_opts *opts,
                                 const char *group_id,
                                 const char *const *topics,
                                 const struct osy_kafka_consumer_hooks *hooks,
                                 char *errstr,
                                 size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Wait up to @p timeout_ms for the next message; serves rebalances
 *        (and so the hooks) too. Consumer errors are logged, not returned.
 *
 * @returns a message with err == 0 (caller destroys it with
 *          rd_kafka_message_destroy), or NULL.
 */
rd_kafka_message_t *osy_kafka_consumer_poll(osy_kafka_consumer_t *c,
                                            int timeout_ms);

/**
 * @brief Mark @p msg processed: store msg->offset + 1 for its partition,
 *        to be committed by the auto-committer (or commit_sync/close).
 *        Call it only once every output of the message is acknowledged.
 *
 * @returns OSY_OK; OSY_ERR_NOT_FOUND if the partition is no longer assigned
 *          to this member (revoked by a rebalance: not an error to act on,
 *          the new owner will see the message again); other classes from
 *          osy_kafka_err().
 */
osy_err_t osy_kafka_consumer_store(osy_kafka_consumer_t *c,
                                   const rd_kafka_message_t *msg, char *errstr,
                                   size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Like osy_kafka_consumer_store() for a message known by position.
 * @param offset the offset of the processed message itself (not + 1).
 */
osy_err_t osy_kafka_consumer_store_offset(osy_kafka_consumer_t *c,
                                          const char *topic, int32_t partition,
                                          int64_t offset, char *errstr,
                                          size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Commit the stored offsets now and wait for the answer.
 * @returns OSY_OK (also when nothing new was stored), else the class of
 *          the failure.
 */
osy_err_t osy_kafka_consumer_commit_sync(osy_kafka_consumer_t *c, char *errstr,
                                         size_t errstr_size) OSY_MUSTCHECK;

/** @returns OSY_ERR_FATAL (reason in @p errstr) after a fatal consumer
 *           error (e.g. a fenced static member), else OSY_OK. */
osy_err_t osy_kafka_consumer_fatal(osy_kafka_consumer_t *c, char *errstr,
                                   size_t errstr_size);

/** @returns the librdkafka handle (still owned by @p c). */
rd_kafka_t *osy_kafka_consumer_handle(osy_kafka_consumer_t *c);

/**
 * @brief Leave the group cleanly: run on_revoke for the whole assignment
 *        (the last chance to store), commit the stored offsets, leave.
 *        Blocks for at most about session.timeout.ms. Idempotent.
 * @returns OSY_OK, or the class of the failure.
 */
osy_err_t osy_kafka_consumer_close(osy_kafka_consumer_t *c, char *errstr,
                                   size_t errstr_size);

/** @brief Close (if not yet) and free. NULL-safe. */
void osy_kafka_consumer_destroy(osy_kafka_consumer_t *c);

#endif /* OPTSYNC_KAFKA_H */
