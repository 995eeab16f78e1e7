/*
 * writer.h - the runtime both writers (sf-writer, ac-writer) share: consume
 * commands, coalesce them per person (newest wins), hand due batches to a
 * worker-specific handler, retry on an in-process schedule, dead-letter,
 * audit, and store offsets only past commands that are finished.
 */
#ifndef OPTSYNC_WRITER_H
#define OPTSYNC_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "optsync/admin.h"
#include "optsync/config.h"
#include "optsync/envelope.h"
#include "optsync/err.h"
#include "optsync/http.h"
#include "optsync/kafka.h"
#include "optsync/metrics.h"
#include "optsync/redis.h"
#include "optsync/retry.h"
#include "optsync/tenants.h"
#include "optsync/topics.h"

/* ---- offset tracking ------------------------------------------------------
 * Commands finish out of order (a failing one waits while later ones are
 * written), so the offset stored for a partition is the one just below the
 * oldest unfinished command: a crash then replays only unfinished (and some
 * finished, harmless) commands, never skips one. */

typedef struct osy_offsets_s osy_offsets_t;

/** @returns an empty tracker, or NULL when out of memory. */
osy_offsets_t *osy_offsets_new(void);

/** @brief Free @p o. NULL-safe. */
void osy_offsets_destroy(osy_offsets_t *o);

/**
 * @brief Note that the message at @p offset of @p partition is in progress.
 *        Offsets normally arrive in increasing order; older ones (after a
 *        seek) are inserted in place. Tracking one twice is a no-op.
 * @returns OSY_OK or OSY_ERR_NOMEM.
 */
osy_err_t osy_offsets_track(osy_offsets_t *o, int32_t partition,
                            int64_t offset) OSY_MUSTCHECK;

/** @brief Mark a tracked message finished (unknown ones are ignored). */
void osy_offsets_done(osy_offsets_t *o, int32_t partition, int64_t offset);

/**
 * @returns the offset of the newest message of @p partition that is
 *          finished together with every tracked message before it (pass it
 *          to osy_kafka_consumer_store_offset()), or -1 when there is none.
 */
int64_t osy_offsets_committable(const osy_offsets_t *o, int32_t partition);

/** @returns the number of unfinished messages of @p partition. */
size_t osy_offsets_outstanding(const osy_offsets_t *o, int32_t partition);

/** @brief Forget a partition (revoked by a rebalance). */
void osy_offsets_forget(osy_offsets_t *o, int32_t partition);

/* ---- the runtime --------------------------------------------------------- */

/** What the handler decided for one command in one process() call. */
typedef enum {
        OSY_WRITER_UNDECIDED = 0, /**< left as is: treated as DEFER to now */
        OSY_WRITER_APPLIED,       /**< done: the desired state is in place */
        OSY_WRITER_SKIPPED,       /**< done: nothing to write (detail says) */
        OSY_WRITER_RETRY,         /**< retryable failure: err, retry_after */
        OSY_WRITER_FAILED,        /**< permanent failure: to the DLQ */
        OSY_WRITER_DEFER          /**< not attempted: call again at
                                       defer_until_ms (quota, tenant pause,
                                       waiting for an asynchronous job) */
} osy_writer_verdict_t;

/** Longest error or detail text an item keeps per attempt. */
#define OSY_WRITER_TEXT_MAX 512

/**
 * One command as the handler sees it. The runtime owns it; the handler
 * reads @c cmd and @c person and writes the verdict fields.
 */
struct osy_writer_item {
        struct osy_msg cmd; /**< the decoded command (owned by the item) */
        const char *tenant; /**< = cmd.tenant */
        const char *email;  /**< = cmd.email */
        int attempts;       /**< failed attempts so far (before this one) */
        /* ---- set by the handler in process()
         * ------------------------------------- */
        osy_writer_verdict_t verdict;
        osy_err_t err;          /**< RETRY / FAILED: class of the failure */
        int64_t retry_after_ms; /**< RETRY: the server's hint, -1 if none */
        int64_t defer_until_ms; /**< DEFER: when to call again */
        char text[OSY_WRITER_TEXT_MAX]; /**< error (RETRY/FAILED) or detail
                                             (APPLIED/SKIPPED) */
        /** Handler state kept across calls (e.g. an import batch id);
         *  freed with the handler's free_priv. */
        void *priv;
};

/**
 * @brief The worker-specific part. process() gets due items of one tenant
 *        (at most batch_max), makes the external calls, emits one audit
 *        record per external write with osy_writer_audit(), and sets each
 *        item's verdict.
 * @returns OSY_OK; OSY_ERR_FATAL stops the worker (verdicts are ignored
 *          and the items stay unfinished, so they are replayed).
 */
struct osy_writer_handler {
        osy_err_t (*process)(void *opaque, struct osy_writer_item *const *items,
                             size_t n, int64_t now_ms);
        void (*free_priv)(void *opaque, void *priv); /**< may be NULL */
        void *opaque;
};

/**
 * @brief Where audit and DLQ records go. The default (NULL) produces them
 *        with osy_kafka_produce(); tests capture them. @p cb must be
 *        called exactly once per OSY_OK return, with the delivery outcome.
 */
typedef osy_err_t(osy_writer_emit_fn)(void *opaque, const char *topic,
                                      const void *key, size_t keylen,
                                      const void *value, size_t len,
                                      osy_kafka_dr_cb *cb, void *cb_opaque);

/** Options; strings and pointers are not copied and must outlive the
 *  runtime. */
struct osy_writer_opts {
        osy_stage_t stage;       /**< OSY_STAGE_SF_WRITER / _AC_WRITER */
        osy_source_t source;     /**< OSY_SRC_SF_WRITER / _AC_WRITER */
        osy_msg_type_t cmd_type; /**< OSY_MSG_SF_COMMAND / _AC_COMMAND */
        const char *name;        /**< "sf-writer": logs, metric labels */
        const char *audit_topic; /**< "optsync.audit" */
        const char *dlq_topic;   /**< "optsync.dlq" */
        /** Consumer of the command topic; may be NULL when the caller feeds
         *  messages with osy_writer_feed() (tests). */
        osy_kafka_consumer_t *consumer;
        /** Producer for audit and DLQ records when @p emit is NULL. */
        osy_kafka_producer_t *producer;
        osy_writer_emit_fn *emit;
        void *emit_opaque;
        /** Applied markers ("skip a replay"); NULL: no markers. */
        osy_redis_t *redis;
        const char *redis_prefix; /**< "optsync" */
        int64_t applied_ttl_ms;   /**< marker lifetime; 0: 7 days */
        struct osy_retry_policy retry;
        size_t batch_max;       /**< items per process() call; 0: 1000 */
        int64_t linger_ms;      /**< wait for more items before a batch */
        size_t max_pending;     /**< pause consumption above; 0: 20000 */
        osy_metrics_t *metrics; /**< may be NULL */
        struct osy_writer_handler handler;
};

typedef struct osy_writer_s osy_writer_t;

/**
 * @brief Make a runtime. Register its rebalance hooks with the consumer
 *        (osy_writer_consumer_hooks()) before creating the consumer, then
 *        osy_writer_set_consumer().
 * @returns OSY_OK, OSY_ERR_INVALID (bad options) or OSY_ERR_NOMEM.
 */
osy_err_t osy_writer_new(osy_writer_t **wp, const struct osy_writer_opts *opts,
                         char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/** @brief Hooks that keep offsets right across rebalances; opaque = @p w. */
struct osy_kafka_consumer_hooks osy_writer_consumer_hooks(osy_writer_t *w);

/** @brief Attach the consumer made with those hooks (not owned). */
void osy_writer_set_consumer(osy_writer_t *w, osy_kafka_consumer_t *c);

/**
 * @brief Free the runtime and every item still held (their offsets are
 *        not stored, so they are consumed again). NULL-safe. Call after
 *        the producer is flushed or destroyed (no callbacks may follow).
 */
void osy_writer_destroy(osy_writer_t *w);

/**
 * @brief Take one Kafka record: decode it and queue it, coalescing with a
 *        queued command of the same person (the older is finished as
 *        "coalesced"); an undecodable record or a wrong type goes to the
 *        DLQ. The offset is tracked until the command is finished.
 * @returns OSY_OK, or OSY_ERR_NOMEM (the record is then not tracked).
 */
osy_err_t osy_writer_feed(osy_writer_t *w, const char *topic, int32_t partition,
                          int64_t offset, const void *key, size_t keylen,
                          const void *value, size_t len,
                          int64_t now_ms) OSY_MUSTCHECK;

/**
 * @brief Run what is due at @p now_ms: batches (when batch_max items are
 *        due, or the first due one waited linger_ms, or @p force), verdicts,
 *        retries, DLQ, applied markers, offset stores.
 * @returns OSY_OK, or OSY_ERR_FATAL from the handler.
 */
osy_err_t osy_writer_step(osy_writer_t *w, int64_t now_ms,
                          int force) OSY_MUSTCHECK;

/**
 * @returns milliseconds until something is due (a batch or a retry), at
 *          most @p cap_ms, and 0 when something is due now.
 */
int64_t osy_writer_next_wait(const osy_writer_t *w, int64_t now_ms,
                             int64_t cap_ms);

/**
 * @brief The worker loop: poll the consumer (up to batch_max records per
 *        turn), step, serve delivery reports, pause consumption above
 *        max_pending, until osy_shutdown_requested(); then finish the
 *        running batch, wait up to @p drain_ms for outstanding audit/DLQ
 *        deliveries and store the final offsets (the caller then closes
 *        the consumer).
 * @param heartbeat called every turn (admin liveness); may be NULL.
 * @returns OSY_OK after a shutdown request, or OSY_ERR_FATAL.
 */
osy_err_t osy_writer_run(osy_writer_t *w, int64_t drain_ms,
                         void (*heartbeat)(void *opaque, int64_t now_ms),
                         void *heartbeat_opaque) OSY_MUSTCHECK;

/**
 * @brief Emit one audit record about @p item (from process()): stage and
 *        source from the options, ref_id the command id, rule the
 *        command's rule. The command is finished only once every audit
 *        record of it is acknowledged.
 * @param action   "sf_update", "ac_unsubscribe", ...
 * @param api      OSY_API_NONE when no call was made.
 * @param http_status 0 when no answer (or no call).
 * @param calls    API calls this record accounts for (0: none).
 * @param detail   free text (cut to 1,024 bytes), may be NULL.
 */
void osy_writer_audit(osy_writer_t *w, struct osy_writer_item *item,
                      const char *action, osy_outcome_t outcome, osy_api_t api,
                      int http_status, int64_t calls, const char *detail,
                      int64_t now_ms);

/**
 * @returns the offset of @p partition that may be stored now (every
 *          command up to it finished), or -1; what the runtime stores.
 */
int64_t osy_writer_committable(const osy_writer_t *w, int32_t partition);

/** Counters for tests and logs. */
struct osy_writer_stats {
        uint64_t received;      /**< records fed */
        uint64_t applied;       /**< commands finished as applied */
        uint64_t skipped;       /**< nothing to do */
        uint64_t duplicates;    /**< skipped: the marker shows it applied */
        uint64_t stale;         /**< skipped: a newer version was applied */
        uint64_t coalesced;     /**< superseded by a newer queued command */
        uint64_t retries;       /**< retryable failures scheduled again */
        uint64_t dead_letters;  /**< sent to the DLQ */
        uint64_t batches;       /**< process() calls */
        uint64_t emit_failures; /**< audit/DLQ deliveries that failed */
        size_t pending;         /**< items held now (queued or finishing) */
};

/** @brief Copy the counters. */
void osy_writer_get_stats(const osy_writer_t *w, struct osy_writer_stats *out);

/**
 * @brief The Redis key of a person's applied marker:
 *        "<prefix>:<stage>:applied:{<tenant>}:<email>".
 * @returns OSY_OK or OSY_ERR_TOO_LARGE.
 */
osy_err_t osy_writer_applied_key(char *buf, size_t size, const char *prefix,
                                 osy_stage_t stage, const char *tenant,
                                 const char *email) OSY_MUSTCHECK;

/* ---- a writer process ------------------------------------------------------
 * What both writer mains set up from the configuration, in one place, so
 * they share the start-up checks and the teardown order. */

#define OSY_WRITER_ENV_EXTRA 24

struct osy_writer_env {
        osy_tenants_t *tenants;
        struct osy_topic_names topics;
        osy_metrics_t *metrics;
        osy_redis_t *redis;
        osy_kafka_producer_t *producer;
        osy_kafka_consumer_t *consumer;
        osy_admin_t *admin;
        osy_writer_t *writer;
        struct osy_retry_policy retry; /**< from OPTSYNC_RETRY_* */
        struct osy_http_opts http;     /**< from OPTSYNC_HTTP_* */
        /* private */
        const osy_config_t *cfg;
        const char *name;
        struct osy_kafka_opts kopts;
        const char *extra[OSY_WRITER_ENV_EXTRA];
        char timeout[32], session[32], heartbeat[32];
};

/** osy_writer_main_begin(): go on with the start-up. */
#define OSY_WRITER_MAIN_GO (-1)

/**
 * @brief The start every writer's main() shares: `--help` (usage on
 *        stdout) and any other argument (usage on stderr), the
 *        configuration from the environment (every problem listed at
 *        once), JSON logging at the configured level, SIGTERM/SIGINT
 *        handling, then osy_writer_env_open().
 * @param name the binary ("sf-writer"), used in usage and log lines.
 * @param cfg receives the configuration (caller destroys it, also when an
 *        exit code is returned).
 * @returns OSY_WRITER_MAIN_GO to go on; otherwise the exit status main()
 *          returns: 0 after --help, 2 for bad usage or configuration, 1
 *          when a dependency cannot be opened (logged; call
 *          osy_writer_env_close()).
 */
int osy_writer_main_begin(int argc, char **argv, const char *name,
                          osy_config_t **cfg, struct osy_writer_env *env);

/**
 * @brief Load the tenants, make the metrics registry, connect Redis and
 *        create the audit/DLQ producer. @p env is zeroed first.
 * @returns OSY_OK, or the error (detail in @p errstr); then call
 *          osy_writer_env_close().
 */
osy_err_t osy_writer_env_open(struct osy_writer_env *env,
                              const osy_config_t *cfg, const char *name,
                              char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Fill the configuration-given fields of @p opts (topics, producer,
 *        Redis, retry policy, batch, linger, limits, metrics), create the
 *        runtime and the consumer group member on @p topic, start the
 *        admin server and print "admin_port=N" on stdout.
 * @param opts stage, source, cmd_type, name and handler set by the caller.
 */
osy_err_t osy_writer_env_start(struct osy_writer_env *env,
                               struct osy_writer_opts *opts,
                               const char *group_id, osy_topic_t topic,
                               char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/** @brief osy_writer_run() with the admin heartbeat and the configured
 *         grace. @returns the process exit status (0 after SIGTERM). */
int osy_writer_env_run(struct osy_writer_env *env);

/** @brief Tear down in order: consumer (its revoke stores the final
 *         offsets), producer (flushed), runtime, admin, Redis, metrics,
 *         tenants. Safe on a partly opened env. */
void osy_writer_env_close(struct osy_writer_env *env);

/** Runs of equal consecutive attempt errors a history keeps. */
#define OSY_WRITER_HIST_RUNS 12

/**
 * Every attempt's error of one command, for its dead letter: consecutive
 * equal errors fold into one run ("2-4) HTTP 503"); when the runs are
 * full the oldest after the first three are dropped (and counted), so the
 * first and the latest errors always stay.
 */
struct osy_writer_history {
        int n;       /**< runs in use */
        int dropped; /**< runs dropped from the middle */
        struct {
                int from, to; /**< attempt numbers, 1-based */
                char text[160];
        } run[OSY_WRITER_HIST_RUNS];
};

/** @brief Add the error of attempt @p attempt (1-based) to @p h. */
void osy_writer_history_add(struct osy_writer_history *h, int attempt,
                            const char *error);

/** @brief Write "1) a; 2-4) b; (2 more); 9) c" into @p buf (cut to fit). */
void osy_writer_history_format(const struct osy_writer_history *h, char *buf,
                               size_t size);

#endif /* OPTSYNC_WRITER_H */
