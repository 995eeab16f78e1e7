/*
 * sf_ingest.h - the sf-ingest worker as a library: one thread per tenant
 * follows Salesforce Change Data Capture over CometD (or polls SOQL on
 * SystemModstamp), publishes sf.events to Kafka, and moves its replay ids
 * and watermarks in Redis only after Kafka acknowledged what they cover.
 */
#ifndef OPTSYNC_SF_INGEST_H
#define OPTSYNC_SF_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "optsync/err.h"
#include "optsync/http.h"
#include "optsync/kafka.h"
#include "optsync/metrics.h"
#include "optsync/redis.h"
#include "optsync/tenants.h"

/** Where changes come from. */
typedef enum {
        OSY_SFI_MODE_CDC = 0, /**< CometD CDC, polling as the safety net */
        OSY_SFI_MODE_POLL     /**< SOQL polling only */
} osy_sfi_mode_t;

/** Worker settings; main.c fills them from the configuration. Zero
 *  durations take the defaults in parentheses. Strings are copied. */
struct osy_sfi_opts {
        osy_sfi_mode_t mode;
        const char *topic;           /**< the sf.events topic, required */
        const char *redis_prefix;    /**< key prefix (optsync) */
        struct osy_redis_opts redis; /**< one connection per tenant thread */
        struct osy_http_opts http;   /**< REST and token calls */
        const char *client; /**< Sforce-Call-Options client of our writers,
                                 marks echoes (OSY_SF_CALL_CLIENT) */
        int64_t poll_interval_ms;  /**< poll mode, and CDC fallback (30 s) */
        int64_t poll_overlap_ms;   /**< re-read window before the mark (60 s)*/
        int64_t safety_poll_ms;    /**< CDC mode: poll this often anyway;
                                        -1 disables (15 min) */
        int64_t fallback_after_ms; /**< CDC mode: poll every interval once
                                        CDC is down this long (2 min) */
        int replay_earliest;       /**< 1: no stored replay id -> -2 (all
                                        retained events), else -1 (tip) */
        int64_t cdc_timeout_margin_ms;  /**< added to advice.timeout (10 s) */
        int64_t cdc_default_timeout_ms; /**< long-poll when no advice (110 s)*/
        int64_t backoff_base_ms;        /**< reconnect backoff (1 s) */
        int64_t backoff_max_ms;         /**< its cap (60 s) */
        int64_t record_ttl_ms;          /**< per-record state TTL (30 d) */
        int64_t ack_timeout_ms;         /**< give up waiting for a batch's acks
                                             (produce timeout + 10 s; 15 s) */
        int64_t lease_ms;        /**< per-tenant lease in Redis: only its holder
                                      follows CDC and polls; renewed every third,
                                      publishing stops a fifth before it could
                                      expire (15 s) */
        const char *lease_owner; /**< this replica's id in the lease keys;
                                      NULL: osy_sfi_lease_owner_id() */
};

typedef struct osy_sfi_s osy_sfi_t;

/** Counters summed over tenants (tests, bench). */
struct osy_sfi_stats {
        uint64_t published;      /**< sf.events acknowledged by Kafka */
        uint64_t cdc_events;     /**< CDC events received */
        uint64_t api_calls;      /**< SF REST calls (queries) */
        uint64_t cometd_calls;   /**< CometD requests */
        uint64_t token_fetches;  /**< OAuth token requests that succeeded */
        uint64_t handshakes;     /**< successful handshakes */
        uint64_t reconnects;     /**< sessions lost and re-established */
        uint64_t replay_invalid; /**< refused replay ids */
        uint64_t polls;          /**< completed polls (per object) */
        uint64_t batch_failures; /**< batches not committed */
        uint64_t subscribed;     /**< tenants subscribed now */
        uint64_t lease_held;     /**< tenants whose lease this replica holds */
        uint64_t lease_acquired; /**< leases taken */
        uint64_t lease_lost;     /**< leases lost (not renewed in time, or
                                      taken by another replica) */
};

/**
 * @brief Create the worker for every tenant with an "sf" block.
 *
 * @param tenants  borrowed; must outlive the worker.
 * @param producer borrowed; the worker polls it for its delivery reports.
 * @param metrics  borrowed; may be NULL.
 * @returns OSY_OK and *wp (caller destroys); OSY_ERR_INVALID for bad
 *          options, a tenant whose OAuth settings are incomplete, or no
 *          tenant with an "sf" block.
 */
osy_err_t osy_sfi_new(osy_sfi_t **wp, const struct osy_sfi_opts *opts,
                      const osy_tenants_t *tenants,
                      osy_kafka_producer_t *producer, osy_metrics_t *metrics,
                      char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/** @brief Start one thread per tenant, and the lease thread. */
osy_err_t osy_sfi_start(osy_sfi_t *w, char *errstr,
                        size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Stop: long-polls are aborted, a batch in flight is finished and
 *        committed, CometD sessions are closed, then the leases are
 *        released; returns when every thread has ended. Idempotent.
 */
void osy_sfi_stop(osy_sfi_t *w);

/** @brief Stop (if needed) and free. NULL-safe. */
void osy_sfi_destroy(osy_sfi_t *w);

/**
 * @brief Readiness (the admin /readyz callback): for every tenant whose
 *        lease this replica holds, CDC mode: subscribed; poll mode: the
 *        last poll succeeded. A tenant on standby (another replica holds
 *        its lease) is ready as long as Redis answers: it can take over.
 */
int osy_sfi_ready(void *w, char *reason, size_t reason_size);

/** @brief Ask every tenant to poll now (tests, operators). */
void osy_sfi_poll_now(osy_sfi_t *w);

/** @brief Sum the counters of every tenant into @p out. */
void osy_sfi_get_stats(osy_sfi_t *w, struct osy_sfi_stats *out);

/** @returns this replica's lease owner id (owned by @p w). */
const char *osy_sfi_owner(const osy_sfi_t *w);

/** @returns 1 once a tenant thread hit an error it cannot recover from
 *           (Kafka producer fatal): the process should exit. */
int osy_sfi_failed(osy_sfi_t *w);

#endif /* OPTSYNC_SF_INGEST_H */
