/*
 * kafka.c - librdkafka wrappers for the at-least-once contract: one error
 * mapping, an idempotent producer with per-message callbacks, and a
 * cooperative consumer group member that stores offsets after processing.
 */
#include "optsync/kafka.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "optsync/log.h"

/* After the bounded flush in destroy, purged messages get their reports
 * within this time (no broker round trip is involved). */
#define PURGE_DRAIN_MS 2000

/* Slice of rd_kafka_poll() while produce_sync waits, so a report served by
 * another thread's poll is noticed quickly. */
#define SYNC_POLL_SLICE_MS 10

osy_err_t osy_kafka_err(rd_kafka_resp_err_t err)
{
        switch (err) {
        case RD_KAFKA_RESP_ERR_NO_ERROR:
                return OSY_OK;

        /* The idempotent producer can no longer guarantee order without
         * gaps or duplicates: the handle is done, the process restarts. */
        case RD_KAFKA_RESP_ERR__FATAL:
        case RD_KAFKA_RESP_ERR__GAPLESS_GUARANTEE:
        case RD_KAFKA_RESP_ERR__FENCED:
        case RD_KAFKA_RESP_ERR__INCONSISTENT:
        case RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER:
        case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
        case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_ID_MAPPING:
        case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
        case RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID:
        case RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION:
        case RD_KAFKA_RESP_ERR__CRIT_SYS_RESOURCE:
                return OSY_ERR_FATAL;

        /* The cluster is moving or unreachable, or our own queue is full:
         * the same message succeeds later. Purged messages (shutdown) were
         * not acknowledged, so they must be retried by someone. */
        case RD_KAFKA_RESP_ERR__TRANSPORT:
        case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
        case RD_KAFKA_RESP_ERR__RESOLVE:
        case RD_KAFKA_RESP_ERR__TIMED_OUT:
        case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
        case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
        case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        case RD_KAFKA_RESP_ERR__ISR_INSUFF:
        case RD_KAFKA_RESP_ERR__NODE_UPDATE:
        case RD_KAFKA_RESP_ERR__WAIT_COORD:
        case RD_KAFKA_RESP_ERR__WAIT_CACHE:
        case RD_KAFKA_RESP_ERR__IN_PROGRESS:
        case RD_KAFKA_RESP_ERR__PREV_IN_PROGRESS:
        case RD_KAFKA_RESP_ERR__RETRY:
        case RD_KAFKA_RESP_ERR__INTR:
        case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
        case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
        case RD_KAFKA_RESP_ERR__DESTROY:
        case RD_KAFKA_RESP_ERR__MAX_POLL_EXCEEDED:
        case RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST:
        case RD_KAFKA_RESP_ERR__UNKNOWN_BROKER:
        case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
        case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
        case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_REPLICA_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
        case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
        case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
        case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
        case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
        case RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION:
        case RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID:
        case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
        case RD_KAFKA_RESP_ERR_NOT_CONTROLLER:
        case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
        case RD_KAFKA_RESP_ERR_UNKNOWN_PRODUCER_ID:
        case RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS:
        case RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH:
        case RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH:
        case RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_PREFERRED_LEADER_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_ELIGIBLE_LEADERS_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_FETCH_SESSION_ID_NOT_FOUND:
        case RD_KAFKA_RESP_ERR_INVALID_FETCH_SESSION_EPOCH:
        case RD_KAFKA_RESP_ERR_UNSTABLE_OFFSET_COMMIT:
        case RD_KAFKA_RESP_ERR_MEMBER_ID_REQUIRED:
                return OSY_ERR_TRANSIENT;

        case RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED:
                return OSY_ERR_THROTTLED;

        case RD_KAFKA_RESP_ERR__AUTHENTICATION:
        case RD_KAFKA_RESP_ERR__SSL:
        case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
        case RD_KAFKA_RESP_ERR_UNSUPPORTED_SASL_MECHANISM:
        case RD_KAFKA_RESP_ERR_ILLEGAL_SASL_STATE:
        case RD_KAFKA_RESP_ERR_DELEGATION_TOKEN_AUTH_DISABLED:
        case RD_KAFKA_RESP_ERR_DELEGATION_TOKEN_EXPIRED:
        case RD_KAFKA_RESP_ERR_DELEGATION_TOKEN_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_UNACCEPTABLE_CREDENTIAL:
                return OSY_ERR_AUTH;

        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE:
                return OSY_ERR_TOO_LARGE;

        /* A name or setting of ours is wrong: fix the configuration. */
        case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
        case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
        case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
        case RD_KAFKA_RESP_ERR__INVALID_ARG:
        case RD_KAFKA_RESP_ERR__INVALID_TYPE:
        case RD_KAFKA_RESP_ERR__NOT_CONFIGURED:
        case RD_KAFKA_RESP_ERR__CONFLICT:
        case RD_KAFKA_RESP_ERR__EXISTING_SUBSCRIPTION:
        case RD_KAFKA_RESP_ERR__UNKNOWN_GROUP:
        case RD_KAFKA_RESP_ERR__UNKNOWN_PROTOCOL:
        case RD_KAFKA_RESP_ERR__NOT_IMPLEMENTED:
        case RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE:
        case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
        case RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS:
        case RD_KAFKA_RESP_ERR_INVALID_GROUP_ID:
        case RD_KAFKA_RESP_ERR_INVALID_SESSION_TIMEOUT:
        case RD_KAFKA_RESP_ERR_INCONSISTENT_GROUP_PROTOCOL:
        case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
        case RD_KAFKA_RESP_ERR_GROUP_MAX_SIZE_REACHED:
                return OSY_ERR_INVALID;

        /* __STATE: e.g. storing an offset for a partition no longer
         * assigned. Callers that expect it (consumer_store) handle it
         * first; elsewhere nothing the remote will change. */
        case RD_KAFKA_RESP_ERR__NOENT:
        case RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND:
        case RD_KAFKA_RESP_ERR_RESOURCE_NOT_FOUND:
                return OSY_ERR_NOT_FOUND;

        default:
                /* Remaining broker answers (INVALID_RECORD, CORRUPT
                 * messages, POLICY_VIOLATION, ...) refuse this message for
                 * good; unknown local errors are treated the same way so
                 * they surface in the DLQ instead of looping forever. */
                return OSY_ERR_PERMANENT;
        }
}

/* ---- Shared configuration ---------------------------------------------- */

/* Properties the contract depends on; opts.extra may not change them. */
static const char *const producer_fixed[] = {
    "enable.idempotence",    "acks",
    "request.required.acks", "bootstrap.servers",
    "metadata.broker.list",  NULL};
static const char *const consumer_fixed[] = {"enable.auto.offset.store",
                                             "group.id", "bootstrap.servers",
                                             "metadata.broker.list", NULL};

static const char *const producer_defaults[] = {
    "enable.idempotence", "true",
    /* Ingest acknowledges a source only once every in-sync replica has
     * the event (implied by idempotence; set so the intent is visible). */
    "acks", "all",
    /* A short linger batches bursts (bulk imports) at little latency cost
     * for a single webhook waiting on produce_sync. */
    "linger.ms", "5", NULL};

static const char *const consumer_defaults[] = {
    "partition.assignment.strategy", "cooperative-sticky",
    /*
     * At-least-once with automatic commits: librdkafka never stores an
     * offset by itself (auto.offset.store=false); the caller stores offset
     * + 1 only after a message's outputs are acknowledged. The
     * auto-committer then commits what was stored, every second, on
     * revoke and on close. A crash can only lose the last second of
     * *commits*, which means redelivery (duplicates, suppressed by the
     * Redis dedup entries), never a skipped message. Manual commits would
     * add a broker round trip per batch for no extra safety.
     */
    "enable.auto.commit", "true", "enable.auto.offset.store", "false",
    "auto.commit.interval.ms", "1000",
    /* A new group must start from the oldest event, not skip history. */
    "auto.offset.reset", "earliest", "enable.partition.eof", "false", NULL};

static int name_in(const char *name, const char *const *list)
{
        for (size_t i = 0; list[i]; i++)
                if (!strcmp(name, list[i]))
                        return 1;
        return 0;
}

/* Properties whose values must never reach a log line or an errstr. */
static int is_sensitive(const char *name)
{
        return strstr(name, "password") || strstr(name, "secret") ||
               !strcmp(name, "sasl.oauthbearer.config") ||
               !strcmp(name, "ssl.key.pem");
}

static osy_err_t conf_set(rd_kafka_conf_t *conf, const char *name,
                          const char *value, char *errstr, size_t errstr_size)
{
        char rderr[512];

        if (rd_kafka_conf_set(conf, name, value, rderr, sizeof(rderr)) ==
            RD_KAFKA_CONF_OK)
                return OSY_OK;
        /* librdkafka's message may quote the value: keep it out. */
        if (is_sensitive(name))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "kafka property \"%s\": invalid value "
                                   "(not shown, sensitive)",
                                   name);
        return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                           "kafka property \"%s\": %s", name, rderr);
}

/* librdkafka logs (syslog levels) become JSON lines tagged with the
 * client and facility. Called from librdkafka threads: osy_log locks. */
static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac,
                         const char *buf)
{
        /* Connection failures are also reported to kafka_error_cb, which
         * classifies them; keep librdkafka's own copy at debug. */
        osy_log_level_t lvl = !strcmp(fac, "FAIL") ? OSY_LOG_DEBUG
                              : level <= 3         ? OSY_LOG_ERROR
                              : level == 4         ? OSY_LOG_WARN
                              : level <= 6         ? OSY_LOG_INFO
                                                   : OSY_LOG_DEBUG;
        const char *kv[]    = {
               "source",   "librdkafka", "client", rd_kafka_name(rk),
               "facility", fac,          NULL};

        if (lvl >= osy_log_level())
                osy_log_kv(lvl, kv, "%s", buf);
}

static void kafka_error_cb(rd_kafka_t *rk, int err, const char *reason,
                           void *opaque)
{
        const char *kv[] = {
            "source", "librdkafka",
            "client", rd_kafka_name(rk),
            "error",  rd_kafka_err2name((rd_kafka_resp_err_t)err),
            NULL};
        (void)opaque;

        if (err == RD_KAFKA_RESP_ERR__FATAL) {
                char why[512];
                rd_kafka_resp_err_t orig =
                    rd_kafka_fatal_error(rk, why, sizeof(why));
                osy_log_kv(OSY_LOG_ERROR, kv, "fatal kafka error %s: %s",
                           rd_kafka_err2name(orig), why);
                return;
        }
        /* librdkafka recovers from these by itself; they matter only if
         * they last, which the callers see as transient failures. */
        if (osy_kafka_err((rd_kafka_resp_err_t)err) == OSY_ERR_TRANSIENT) {
                if (OSY_LOG_WARN >= osy_log_level())
                        osy_log_kv(OSY_LOG_WARN, kv, "kafka: %s", reason);
                return;
        }
        osy_log_kv(OSY_LOG_ERROR, kv, "kafka: %s", reason);
}

/*
 * Build a configuration: bootstrap and client id from @p opts, then
 * @p defaults, then opts->extra (refusing names in @p fixed). On success
 * the caller owns *confp.
 */
static osy_err_t conf_build(rd_kafka_conf_t **confp,
                            const struct osy_kafka_opts *opts,
                            const char *const *defaults,
                            const char *const *fixed, char *errstr,
                            size_t errstr_size)
{
        rd_kafka_conf_t *conf = NULL;
        osy_err_t err;

        *confp = NULL;
        if (!opts || !opts->bootstrap || !*opts->bootstrap)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "kafka bootstrap servers are not set "
                                   "(opts.bootstrap)");
        if (!(conf = rd_kafka_conf_new()))
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "out of memory");
        if ((err = conf_set(conf, "bootstrap.servers", opts->bootstrap, errstr,
                            errstr_size)) ||
            (err = conf_set(conf, "client.id",
                            opts->client_id ? opts->client_id : "optsync",
                            errstr, errstr_size)))
                goto out;
        for (size_t i = 0; defaults[i]; i += 2)
                if ((err = conf_set(conf, defaults[i], defaults[i + 1], errstr,
                                    errstr_size)))
                        goto out;
        for (size_t i = 0; opts->extra && opts->extra[i]; i += 2) {
                const char *name = opts->extra[i], *value = opts->extra[i + 1];
                if (!value) {
                        err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                          "kafka property \"%s\" has no value",
                                          name);
                        goto out;
                }
                if (name_in(name, fixed)) {
                        err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                          "kafka property \"%s\" is fixed by "
                                          "optsync (the at-least-once "
                                          "contract depends on it)",
                                          name);
                        goto out;
                }
                /* Before anything can log it. */
                if (is_sensitive(name))
                        osy_log_add_secret(value);
                if ((err = conf_set(conf, name, value, errstr, errstr_size)))
                        goto out;
        }
        rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
        rd_kafka_conf_set_error_cb(conf, kafka_error_cb);
        *confp = conf;
        conf   = NULL;
        err    = OSY_OK;
out:
        if (conf)
                rd_kafka_conf_destroy(conf);
        return err;
}

/* Deadline arithmetic for produce_sync; not wall time, never jumps. */
static int64_t mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int close_timeout(const struct osy_kafka_opts *opts)
{
        return opts->close_timeout_ms > 0 ? opts->close_timeout_ms
                                          : OSY_KAFKA_CLOSE_TIMEOUT_MS;
}

/* ---- Producer ----------------------------------------------------------- */

/* The producer handle: librdkafka does the work, we keep the contract's
 * settings and the shutdown bound. */
struct osy_kafka_producer_s {
        rd_kafka_t *rk;
        int close_timeout_ms;
};

/* Travels with each message as its opaque; freed by the report. */
struct dr_ticket {
        osy_kafka_dr_cb *cb;
        void *opaque;
};

static void producer_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm,
                           void *opaque)
{
        struct dr_ticket *t = rkm->_private;
        (void)rk;
        (void)opaque;

        if (!t)
                return;
        if (t->cb)
                t->cb(t->opaque, osy_kafka_err(rkm->err),
                      rkm->err ? rd_kafka_err2str(rkm->err) : "",
                      rkm->partition, rkm->err ? -1 : rkm->offset);
        free(t);
}

osy_err_t osy_kafka_producer_new(osy_kafka_producer_t **pp,
                                 const struct osy_kafka_opts *opts,
                                 char *errstr, size_t errstr_size)
{
        osy_kafka_producer_t *p = NULL;
        rd_kafka_conf_t *conf   = NULL;
        char rderr[512];
        osy_err_t err;

        *pp = NULL;
        if ((err = conf_build(&conf, opts, producer_defaults, producer_fixed,
                              errstr, errstr_size)))
                goto out;
        if (!(p = calloc(1, sizeof(*p)))) {
                err = osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                  "out of memory");
                goto out;
        }
        p->close_timeout_ms = close_timeout(opts);
        rd_kafka_conf_set_dr_msg_cb(conf, producer_dr_cb);
        rd_kafka_conf_set_opaque(conf, p);
        if (!(p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rderr,
                                   sizeof(rderr)))) {
                /* Cross-property checks (e.g. linger vs. timeouts). */
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "kafka producer: %s", rderr);
                goto out;
        }
        conf = NULL; /* owned by rk now */
        *pp  = p;
        p    = NULL;
        err  = OSY_OK;
out:
        if (conf)
                rd_kafka_conf_destroy(conf);
        osy_kafka_producer_destroy(p);
        return err;
}

/* The fatal state of a client handle, shared by producer and consumer. */
static osy_err_t handle_fatal(rd_kafka_t *rk, const char *role, char *errstr,
                              size_t errstr_size)
{
        char why[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof(why));

        if (!orig)
                return OSY_OK;
        return osy_err_set(OSY_ERR_FATAL, errstr, errstr_size,
                           "kafka %s fatal error %s: %s", role,
                           rd_kafka_err2name(orig), why);
}

osy_err_t osy_kafka_producer_fatal(osy_kafka_producer_t *p, char *errstr,
                                   size_t errstr_size)
{
        return handle_fatal(p->rk, "producer", errstr, errstr_size);
}

static osy_err_t produce_flags(osy_kafka_producer_t *p, const char *topic,
                               const void *key, size_t keylen,
                               const void *value, size_t vallen, int msgflags,
                               osy_kafka_dr_cb *cb, void *opaque, char *errstr,
                               size_t errstr_size)
{
        struct dr_ticket *t;
        rd_kafka_resp_err_t rerr;
        osy_err_t err;

        if (!topic || !*topic)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "kafka produce: no topic");
        if ((err = osy_kafka_producer_fatal(p, errstr, errstr_size)))
                return err;
        if (!(t = calloc(1, sizeof(*t))))
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "out of memory");
        t->cb     = cb;
        t->opaque = opaque;
        rerr      = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic),
                                      RD_KAFKA_V_KEY(key, key ? keylen : 0),
                                      RD_KAFKA_V_VALUE((void *)value, vallen),
                                      RD_KAFKA_V_MSGFLAGS(msgflags),
                                      RD_KAFKA_V_OPAQUE(t), RD_KAFKA_V_END);
        if (rerr) {
                free(t); /* no report will come for it */
                return osy_err_set(osy_kafka_err(rerr), errstr, errstr_size,
                                   "kafka produce to %s: %s", topic,
                                   rd_kafka_err2str(rerr));
        }
        return OSY_OK;
}

osy_err_t osy_kafka_produce(osy_kafka_producer_t *p, const char *topic,
                            const void *key, size_t keylen, const void *value,
                            size_t vallen, osy_kafka_dr_cb *cb, void *opaque,
                            char *errstr, size_t errstr_size)
{
        return produce_flags(p, topic, key, keylen, value, vallen,
                             RD_KAFKA_MSG_F_COPY, cb, opaque, errstr,
                             errstr_size);
}

osy_err_t osy_kafka_produce_borrowed(osy_kafka_producer_t *p, const char *topic,
                                     const void *key, size_t keylen,
                                     const void *value, size_t vallen,
                                     osy_kafka_dr_cb *cb, void *opaque,
                                     char *errstr, size_t errstr_size)
{
        /* No flag: librdkafka neither copies nor frees the value. */
        return produce_flags(p, topic, key, keylen, value, vallen, 0, cb,
                             opaque, errstr, errstr_size);
}

void osy_kafka_producer_purge(osy_kafka_producer_t *p)
{
        rd_kafka_resp_err_t rerr = rd_kafka_purge(
            p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);

        if (rerr)
                osy_log_warn("kafka: purge: %s", rd_kafka_err2str(rerr));
}

int osy_kafka_producer_poll(osy_kafka_producer_t *p, int timeout_ms)
{
        return rd_kafka_poll(p->rk, timeout_ms);
}

osy_err_t osy_kafka_producer_flush(osy_kafka_producer_t *p, int timeout_ms,
                                   char *errstr, size_t errstr_size)
{
        if (rd_kafka_flush(p->rk, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR)
                return OSY_OK;
        return osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                           "kafka flush: %d message(s) still without a "
                           "delivery report after %d ms",
                           rd_kafka_outq_len(p->rk), timeout_ms);
}

/*
 * State shared by a produce_sync caller and the report of its message. If
 * the caller gives up first, the report still arrives later: whoever drops
 * the last reference frees it.
 */
struct sync_wait {
        pthread_mutex_t lock;
        int refs;
        int done;
        osy_err_t err;
        char errstr[OSY_ERRSTR_SIZE];
};

static void sync_wait_unref(struct sync_wait *w)
{
        int last;

        pthread_mutex_lock(&w->lock);
        last = --w->refs == 0;
        pthread_mutex_unlock(&w->lock);
        if (last) {
                pthread_mutex_destroy(&w->lock);
                free(w);
        }
}

static void sync_dr(void *opaque, osy_err_t err, const char *errstr,
                    int32_t partition, int64_t offset)
{
        struct sync_wait *w = opaque;
        (void)partition;
        (void)offset;

        pthread_mutex_lock(&w->lock);
        w->done = 1;
        w->err  = err;
        snprintf(w->errstr, sizeof(w->errstr), "%s", errstr);
        pthread_mutex_unlock(&w->lock);
        sync_wait_unref(w);
}

osy_err_t osy_kafka_produce_sync(osy_kafka_producer_t *p, const char *topic,
                                 const void *key, size_t keylen,
                                 const void *value, size_t vallen,
                                 int timeout_ms, char *errstr,
                                 size_t errstr_size)
{
        struct sync_wait *w = calloc(1, sizeof(*w));
        int64_t deadline    = mono_ms() + timeout_ms;
        osy_err_t err;
        int done = 0;

        if (!w)
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "out of memory");
        pthread_mutex_init(&w->lock, NULL);
        w->refs = 2; /* this caller + the delivery report */
        if ((err = osy_kafka_produce(p, topic, key, keylen, value, vallen,
                                     sync_dr, w, errstr, errstr_size))) {
                pthread_mutex_destroy(&w->lock);
                free(w);
                return err;
        }
        for (;;) {
                pthread_mutex_lock(&w->lock);
                done = w->done;
                pthread_mutex_unlock(&w->lock);
                int64_t left = deadline - mono_ms();
                if (done || left <= 0)
                        break;
                rd_kafka_poll(p->rk, left < SYNC_POLL_SLICE_MS
                                         ? (int)left
                                         : SYNC_POLL_SLICE_MS);
        }
        if (done) {
                err = w->err;
                if (err)
                        osy_err_set(err, errstr, errstr_size,
                                    "kafka delivery to %s: %s", topic,
                                    w->errstr);
        } else {
                err = osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                  "kafka delivery to %s: no report within "
                                  "%d ms (not acknowledged)",
                                  topic, timeout_ms);
        }
        sync_wait_unref(w);
        return err;
}

rd_kafka_t *osy_kafka_producer_handle(osy_kafka_producer_t *p)
{
        return p->rk;
}

void osy_kafka_producer_destroy(osy_kafka_producer_t *p)
{
        if (!p)
                return;
        if (p->rk) {
                if (rd_kafka_flush(p->rk, p->close_timeout_ms)) {
                        osy_log_warn("kafka producer: %d message(s) not "
                                     "delivered after %d ms; failing them",
                                     rd_kafka_outq_len(p->rk),
                                     p->close_timeout_ms);
                        /* Fail what is left so every caller's callback
                         * runs (with a transient error) before we go. */
                        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE |
                                                  RD_KAFKA_PURGE_F_INFLIGHT);
                        if (rd_kafka_flush(p->rk, PURGE_DRAIN_MS))
                                osy_log_error("kafka producer: %d delivery "
                                              "report(s) lost at shutdown",
                                              rd_kafka_outq_len(p->rk));
                }
                rd_kafka_destroy(p->rk);
        }
        free(p);
}

/* ---- Consumer group member --------------------------------------------- */

/* A group member: the handle, the caller's hooks (called from the
 * rebalance callback) and whether librdkafka commits by itself. */
struct osy_kafka_consumer_s {
        rd_kafka_t *rk;
        struct osy_kafka_consumer_hooks hooks;
        int auto_commit; /* enable.auto.commit as finally configured */
        int closed;
};

/* One info line per rebalance step, listing topic[partition] pairs, so
 * an operator can follow who owns what. */
static void log_partitions(const char *what,
                           const rd_kafka_topic_partition_list_t *parts)
{
        char buf[1024];
        size_t len = 0;

        if (OSY_LOG_INFO < osy_log_level() || parts->cnt == 0)
                return;
        buf[0] = '\0';
        for (int i = 0; i < parts->cnt && len < sizeof(buf); i++) {
                int n = snprintf(buf + len, sizeof(buf) - len, "%s%s[%d]",
                                 i ? "," : "", parts->elems[i].topic,
                                 (int)parts->elems[i].partition);
                if (n < 0)
                        break;
                len += (size_t)n;
        }
        osy_log_info("kafka consumer %s %d partition(s): %s", what, parts->cnt,
                     buf);
}

/* librdkafka's incremental calls return an error object to free. */
static void check_assign_error(const char *what, rd_kafka_error_t *error)
{
        if (!error)
                return;
        osy_log_error("kafka consumer %s failed: %s", what,
                      rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
}

/*
 * Runs inside rd_kafka_consumer_poll()/close(). With the cooperative
 * protocol only the partitions that move are passed, and must be added or
 * removed incrementally; the eager protocol replaces the whole assignment.
 * The user's revoke hook runs while the partitions are still ours, so it
 * can still store the offsets of work it finishes.
 */
static void consumer_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                                  rd_kafka_topic_partition_list_t *parts,
                                  void *opaque)
{
        osy_kafka_consumer_t *c = opaque;
        int cooperative =
            !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
        rd_kafka_resp_err_t rerr;

        switch (err) {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
                log_partitions("assigned", parts);
                if (cooperative) {
                        check_assign_error(
                            "incremental assign",
                            rd_kafka_incremental_assign(rk, parts));
                } else if ((rerr = rd_kafka_assign(rk, parts))) {
                        osy_log_error("kafka consumer assign failed: %s",
                                      rd_kafka_err2str(rerr));
                }
                /* The cooperative protocol also reports empty
                 * increments; hooks only hear about real changes. */
                if (c->hooks.on_assign && parts->cnt > 0)
                        c->hooks.on_assign(c->hooks.opaque, parts);
                break;

        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
                log_partitions("revoked", parts);
                if (c->hooks.on_revoke && parts->cnt > 0)
                        c->hooks.on_revoke(c->hooks.opaque, parts);
                if (rd_kafka_assignment_lost(rk)) {
                        /* Someone else may own them already: our stored
                         * offsets cannot be committed any more. */
                        osy_log_warn("kafka consumer: assignment lost, "
                                     "uncommitted work will be redelivered");
                } else if (!c->auto_commit) {
                        /* Auto commit commits on unassign by itself;
                         * without it, do so before giving them up. */
                        rerr = rd_kafka_commit(rk, NULL, 0);
                        if (rerr && rerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
                                osy_log_warn("kafka consumer: commit on "
                                             "revoke failed: %s",
                                             rd_kafka_err2str(rerr));
                }
                if (cooperative)
                        check_assign_error(
                            "incremental unassign",
                            rd_kafka_incremental_unassign(rk, parts));
                else if ((rerr = rd_kafka_assign(rk, NULL)))
                        osy_log_error("kafka consumer unassign failed: %s",
                                      rd_kafka_err2str(rerr));
                break;

        default:
                osy_log_error("kafka consumer rebalance error: %s",
                              rd_kafka_err2str(err));
                /* Get back to a known state: nothing assigned. */
                if (cooperative && parts)
                        check_assign_error(
                            "incremental unassign",
                            rd_kafka_incremental_unassign(rk, parts));
                else
                        rd_kafka_assign(rk, NULL);
                break;
        }
}

osy_err_t osy_kafka_consumer_new(osy_kafka_consumer_t **cp,
                                 const struct osy_kafka_opts *opts,
                                 const char *group_id,
                                 const char *const *topics,
                                 const struct osy_kafka_consumer_hooks *hooks,
                                 char *errstr, size_t errstr_size)
{
        osy_kafka_consumer_t *c               = NULL;
        rd_kafka_conf_t *conf                 = NULL;
        rd_kafka_topic_partition_list_t *subs = NULL;
        char rderr[512], val[16];
        size_t val_size = sizeof(val);
        rd_kafka_resp_err_t rerr;
        osy_err_t err;

        *cp = NULL;
        if (!group_id || !*group_id) {
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "kafka consumer: no group id");
                goto out;
        }
        if (!topics || !topics[0]) {
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "kafka consumer: no topics to subscribe");
                goto out;
        }
        if ((err = conf_build(&conf, opts, consumer_defaults, consumer_fixed,
                              errstr, errstr_size)) ||
            (err = conf_set(conf, "group.id", group_id, errstr, errstr_size)))
                goto out;
        if (!(c = calloc(1, sizeof(*c)))) {
                err = osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                  "out of memory");
                goto out;
        }
        if (hooks)
                c->hooks = *hooks;
        c->auto_commit = rd_kafka_conf_get(conf, "enable.auto.commit", val,
                                           &val_size) == RD_KAFKA_CONF_OK &&
                         !strcmp(val, "true");
        rd_kafka_conf_set_rebalance_cb(conf, consumer_rebalance_cb);
        rd_kafka_conf_set_opaque(conf, c);
        if (!(c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rderr,
                                   sizeof(rderr)))) {
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "kafka consumer: %s", rderr);
                goto out;
        }
        conf = NULL; /* owned by rk now */
        /* Rebalances and errors arrive on the consumer queue, served
         * by osy_kafka_consumer_poll(). */
        rd_kafka_poll_set_consumer(c->rk);

        subs = rd_kafka_topic_partition_list_new(4);
        for (size_t i = 0; topics[i]; i++) {
                if (!*topics[i]) {
                        err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                          "kafka consumer: empty topic name");
                        goto out;
                }
                rd_kafka_topic_partition_list_add(subs, topics[i],
                                                  RD_KAFKA_PARTITION_UA);
        }
        if ((rerr = rd_kafka_subscribe(c->rk, subs))) {
                err =
                    osy_err_set(osy_kafka_err(rerr), errstr, errstr_size,
                                "kafka subscribe: %s", rd_kafka_err2str(rerr));
                goto out;
        }
        *cp = c;
        c   = NULL;
        err = OSY_OK;
out:
        if (subs)
                rd_kafka_topic_partition_list_destroy(subs);
        if (conf)
                rd_kafka_conf_destroy(conf);
        osy_kafka_consumer_destroy(c);
        return err;
}

rd_kafka_message_t *osy_kafka_consumer_poll(osy_kafka_consumer_t *c,
                                            int timeout_ms)
{
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(c->rk, timeout_ms);

        if (!rkm || !rkm->err)
                return rkm;
        /* Errors come as messages; they describe the client's state, not
         * data, and librdkafka keeps retrying: log them here once. */
        {
                const char *kv[] = {
                    "source", "librdkafka",
                    "error",  rd_kafka_err2name(rkm->err),
                    "topic",  rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : "",
                    NULL};
                osy_log_level_t lvl =
                    osy_kafka_err(rkm->err) == OSY_ERR_TRANSIENT
                        ? OSY_LOG_WARN
                        : OSY_LOG_ERROR;
                if (lvl >= osy_log_level())
                        osy_log_kv(lvl, kv, "kafka consumer: %s",
                                   rd_kafka_message_errstr(rkm));
        }
        rd_kafka_message_destroy(rkm);
        return NULL;
}

osy_err_t osy_kafka_consumer_store_offset(osy_kafka_consumer_t *c,
                                          const char *topic, int32_t partition,
                                          int64_t offset, char *errstr,
                                          size_t errstr_size)
{
        rd_kafka_topic_partition_list_t *parts;
        rd_kafka_topic_partition_t *tp;
        rd_kafka_resp_err_t rerr;

        if (!topic || partition < 0 || offset < 0)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "kafka store: bad position %s[%d]@%lld",
                                   topic ? topic : "(null)", (int)partition,
                                   (long long)offset);
        parts = rd_kafka_topic_partition_list_new(1);
        tp    = rd_kafka_topic_partition_list_add(parts, topic, partition);
        /* The committed offset is the next message to read. */
        tp->offset = offset + 1;
        rerr       = rd_kafka_offsets_store(c->rk, parts);
        if (!rerr)
                rerr = tp->err;
        rd_kafka_topic_partition_list_destroy(parts);
        if (!rerr)
                return OSY_OK;
        if (rerr == RD_KAFKA_RESP_ERR__STATE ||
            rerr == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION) {
                /* Revoked meanwhile (or never ours): the new owner starts
                 * from the last commit and processes the message again.
                 * Expected during rebalances. */
                osy_log_debug("kafka store %s[%d]@%lld: partition no longer "
                              "assigned",
                              topic, (int)partition, (long long)offset);
                return osy_err_set(OSY_ERR_NOT_FOUND, errstr, errstr_size,
                                   "kafka store %s[%d]: partition not "
                                   "assigned to this member",
                                   topic, (int)partition);
        }
        return osy_err_set(osy_kafka_err(rerr), errstr, errstr_size,
                           "kafka store %s[%d]@%lld: %s", topic, (int)partition,
                           (long long)offset, rd_kafka_err2str(rerr));
}

osy_err_t osy_kafka_consumer_store(osy_kafka_consumer_t *c,
                                   const rd_kafka_message_t *msg, char *errstr,
                                   size_t errstr_size)
{
        if (!msg || !msg->rkt)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "kafka store: not a message");
        return osy_kafka_consumer_store_offset(c, rd_kafka_topic_name(msg->rkt),
                                               msg->partition, msg->offset,
                                               errstr, errstr_size);
}

osy_err_t osy_kafka_consumer_commit_sync(osy_kafka_consumer_t *c, char *errstr,
                                         size_t errstr_size)
{
        rd_kafka_resp_err_t rerr = rd_kafka_commit(c->rk, NULL, 0);

        /* __NO_OFFSET: nothing stored since the last commit. */
        if (!rerr || rerr == RD_KAFKA_RESP_ERR__NO_OFFSET)
                return OSY_OK;
        return osy_err_set(osy_kafka_err(rerr), errstr, errstr_size,
                           "kafka commit: %s", rd_kafka_err2str(rerr));
}

osy_err_t osy_kafka_consumer_fatal(osy_kafka_consumer_t *c, char *errstr,
                                   size_t errstr_size)
{
        return handle_fatal(c->rk, "consumer", errstr, errstr_size);
}

rd_kafka_t *osy_kafka_consumer_handle(osy_kafka_consumer_t *c)
{
        return c->rk;
}

osy_err_t osy_kafka_consumer_close(osy_kafka_consumer_t *c, char *errstr,
                                   size_t errstr_size)
{
        rd_kafka_resp_err_t rerr;

        if (!c || !c->rk || c->closed)
                return OSY_OK;
        c->closed = 1;
        /*
         * One call does it all, bounded by librdkafka (~session.timeout.ms,
         * so shutdown fits a Kubernetes grace period even with the broker
         * gone): the rebalance callback runs on_revoke for the whole
         * assignment (the caller's last chance to store), the stored
         * offsets are committed as the partitions are unassigned, and
         * LeaveGroup lets the other members take over at once instead of
         * after the session timeout. No separate commit first: with the
         * coordinator unreachable it could block for much longer.
         */
        rerr = rd_kafka_consumer_close(c->rk);
        if (rerr)
                return osy_err_set(osy_kafka_err(rerr), errstr, errstr_size,
                                   "kafka consumer close: %s",
                                   rd_kafka_err2str(rerr));
        return OSY_OK;
}

void osy_kafka_consumer_destroy(osy_kafka_consumer_t *c)
{
        if (!c)
                return;
        if (c->rk) {
                osy_kafka_consumer_close(c, NULL, 0);
                rd_kafka_destroy(c->rk);
        }
        free(c);
}
