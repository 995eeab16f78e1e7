/*
 * sf-ingest - follows Salesforce Contact and Lead opt-out changes (CDC over
 * CometD, SOQL polling as the safety net or as the mode) and puts them on
 * Kafka as sf.event messages. main.c: configuration, signals, the admin
 * port, the loop and an orderly shutdown; the logic is in sf_ingest.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optsync/admin.h"
#include "optsync/config.h"
#include "optsync/log.h"
#include "optsync/sf_auth.h"
#include "optsync/shutdown.h"
#include "optsync/tenants.h"
#include "optsync/topics.h"
#include "sf_ingest.h"

#define EXIT_FATAL 1
#define EXIT_USAGE 2
#define LOOP_TICK_MS 500
#define MAX_EXTRA 24

/* --help text. */
static void usage(FILE *out)
{
        fprintf(out,
                "Usage: sf-ingest\n"
                "\n"
                "Publishes Salesforce Contact/Lead opt-out changes as "
                "sf.events.\n"
                "Configuration: OPTSYNC_* environment variables (see "
                "docs/configuration.md,\n"
                "OPTSYNC_SF_* for this worker); tenants and their Salesforce "
                "credentials:\n"
                "OPTSYNC_TENANTS_FILE. Details: docs/sf-ingest.md.\n");
}

/* librdkafka properties from the configuration (strings owned by cfg). */
static void kafka_extra(const osy_config_t *cfg, const char **extra,
                        char *timeout, size_t timeout_size)
{
        size_t n = 0;

        snprintf(timeout, timeout_size, "%lld",
                 (long long)osy_config_ms(cfg, OSY_CFG_KAFKA_PRODUCE_TIMEOUT));
        n          = osy_config_kafka_security(cfg, extra, n);
        extra[n++] = "message.timeout.ms";
        extra[n++] = timeout;
        extra[n]   = NULL;
}

/* The worker's options from the configuration (strings owned by cfg). */
static void sfi_options(const osy_config_t *cfg, const char *topic,
                        struct osy_sfi_opts *o)
{
        memset(o, 0, sizeof(*o));
        o->mode           = osy_config_enum(cfg, OSY_CFG_SF_INGEST_MODE) == 1
                                ? OSY_SFI_MODE_POLL
                                : OSY_SFI_MODE_CDC;
        o->topic          = topic;
        o->redis_prefix   = osy_config_str(cfg, OSY_CFG_REDIS_KEY_PREFIX);
        o->redis.host     = osy_config_str(cfg, OSY_CFG_REDIS_HOST);
        o->redis.port     = (int)osy_config_int(cfg, OSY_CFG_REDIS_PORT);
        o->redis.password = osy_config_str(cfg, OSY_CFG_REDIS_PASSWORD);
        o->redis.db       = (int)osy_config_int(cfg, OSY_CFG_REDIS_DB);
        o->redis.connect_timeout_ms =
            (int)osy_config_ms(cfg, OSY_CFG_REDIS_CONNECT_TIMEOUT);
        o->redis.command_timeout_ms =
            (int)osy_config_ms(cfg, OSY_CFG_REDIS_COMMAND_TIMEOUT);
        o->http.connect_timeout_ms =
            (long)osy_config_ms(cfg, OSY_CFG_HTTP_CONNECT_TIMEOUT);
        o->http.timeout_ms = (long)osy_config_ms(cfg, OSY_CFG_HTTP_TIMEOUT);
        o->http.max_body   = (size_t)osy_config_int(cfg, OSY_CFG_HTTP_MAX_BODY);
        o->client          = OSY_SF_CALL_CLIENT;
        o->poll_interval_ms = osy_config_ms(cfg, OSY_CFG_SF_POLL_INTERVAL);
        /* 0 means "none" in the configuration, "default" in the options. */
        o->poll_overlap_ms = osy_config_ms(cfg, OSY_CFG_SF_POLL_OVERLAP);
        if (!o->poll_overlap_ms)
                o->poll_overlap_ms = 1; /* 1 ms: as good as none */
        o->safety_poll_ms = osy_config_ms(cfg, OSY_CFG_SF_CDC_SAFETY_POLL);
        if (!o->safety_poll_ms)
                o->safety_poll_ms = -1;
        o->fallback_after_ms =
            osy_config_ms(cfg, OSY_CFG_SF_CDC_FALLBACK_AFTER);
        o->replay_earliest =
            osy_config_enum(cfg, OSY_CFG_SF_CDC_REPLAY_START) == 1;
        o->cdc_timeout_margin_ms =
            osy_config_ms(cfg, OSY_CFG_SF_CDC_TIMEOUT_MARGIN);
        o->backoff_base_ms = osy_config_ms(cfg, OSY_CFG_SF_CDC_BACKOFF_BASE);
        o->backoff_max_ms  = osy_config_ms(cfg, OSY_CFG_SF_CDC_BACKOFF_MAX);
        o->record_ttl_ms   = osy_config_ms(cfg, OSY_CFG_SF_INGEST_STATE_TTL);
        /* librdkafka reports every message within message.timeout.ms. */
        o->ack_timeout_ms =
            osy_config_ms(cfg, OSY_CFG_KAFKA_PRODUCE_TIMEOUT) + 10000;
        o->lease_ms = osy_config_ms(cfg, OSY_CFG_SF_INGEST_LEASE);
}

/* Builds everything (metrics, producer, worker, admin), runs until a
 * signal or a fatal producer error, then tears down in commit order.
 * @returns the process exit status. */
static int run(const osy_config_t *cfg, const osy_tenants_t *tenants)
{
        struct osy_topic_names topics;
        struct osy_kafka_opts kopts;
        struct osy_admin_opts aopts;
        struct osy_sfi_opts sopts;
        const char *extra[MAX_EXTRA];
        char timeout[32], errstr[OSY_ERRSTR_SIZE];
        osy_metrics_t *metrics         = NULL;
        osy_kafka_producer_t *producer = NULL;
        osy_admin_t *admin             = NULL;
        osy_sfi_t *sfi                 = NULL;
        int rc                         = EXIT_FATAL;

        if (osy_topic_names_init(
                &topics, osy_config_str(cfg, OSY_CFG_KAFKA_TOPIC_PREFIX),
                errstr, sizeof(errstr))) {
                osy_log_error("sf-ingest: %s", errstr);
                goto out;
        }
        if (!(metrics = osy_metrics_new())) {
                osy_log_error("sf-ingest: out of memory");
                goto out;
        }
        kafka_extra(cfg, extra, timeout, sizeof(timeout));
        memset(&kopts, 0, sizeof(kopts));
        kopts.bootstrap = osy_config_str(cfg, OSY_CFG_KAFKA_BOOTSTRAP);
        kopts.client_id = "sf-ingest";
        kopts.extra     = extra;
        if (osy_kafka_producer_new(&producer, &kopts, errstr, sizeof(errstr))) {
                osy_log_error("sf-ingest: %s", errstr);
                goto out;
        }
        sfi_options(cfg, topics.name[OSY_TOPIC_SF_EVENTS], &sopts);
        if (osy_sfi_new(&sfi, &sopts, tenants, producer, metrics, errstr,
                        sizeof(errstr))) {
                osy_log_error("sf-ingest: %s", errstr);
                rc = EXIT_USAGE;
                goto out;
        }
        memset(&aopts, 0, sizeof(aopts));
        aopts.bind_addr    = osy_config_str(cfg, OSY_CFG_ADMIN_ADDR);
        aopts.port         = (int)osy_config_int(cfg, OSY_CFG_ADMIN_PORT);
        aopts.metrics      = metrics;
        aopts.ready_cb     = osy_sfi_ready;
        aopts.ready_opaque = sfi;
        aopts.heartbeat_timeout_ms = 30000;
        if (osy_admin_start(&admin, &aopts, errstr, sizeof(errstr))) {
                osy_log_error("sf-ingest: %s", errstr);
                goto out;
        }
        if (osy_sfi_start(sfi, errstr, sizeof(errstr))) {
                osy_log_error("sf-ingest: %s", errstr);
                goto out;
        }
        /* One line tests and scripts can wait for. */
        printf("admin_port=%d\n", osy_admin_port(admin));
        fflush(stdout);
        osy_log_info("sf-ingest: started (%s mode)",
                     sopts.mode == OSY_SFI_MODE_CDC ? "cdc" : "poll");

        rc = 0;
        while (!osy_shutdown_wait(LOOP_TICK_MS)) {
                osy_admin_heartbeat(admin, osy_admin_now_ms());
                /* Reports of threads that are not waiting right now. */
                osy_kafka_producer_poll(producer, 0);
                if (osy_kafka_producer_fatal(producer, errstr,
                                             sizeof(errstr))) {
                        /* Nothing was committed past what Kafka has: the
                         * next process resumes from the stored ids. */
                        osy_log_error("sf-ingest: %s; exiting", errstr);
                        rc = EXIT_FATAL;
                        break;
                }
        }
        osy_log_info("sf-ingest: shutting down (signal %d)",
                     osy_shutdown_signal());
out:
        /* Order matters: the tenant threads finish and commit their batch
         * (which needs the producer), then the producer flushes. */
        osy_sfi_stop(sfi);
        osy_kafka_producer_destroy(producer);
        osy_sfi_destroy(sfi);
        osy_admin_stop(admin);
        osy_metrics_destroy(metrics);
        return rc;
}

/* Arguments, configuration and tenants (exit 2 when wrong), signals. */
int main(int argc, char **argv)
{
        osy_config_t *cfg      = NULL;
        osy_tenants_t *tenants = NULL;
        const char *tenants_file;
        char errstr[4096];
        int rc;

        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
                        usage(stdout);
                        return 0;
                }
                fprintf(stderr, "sf-ingest: unknown argument %s\n", argv[i]);
                usage(stderr);
                return EXIT_USAGE;
        }
        if (osy_config_load(&cfg, NULL, errstr, sizeof(errstr))) {
                fprintf(stderr, "sf-ingest: bad configuration: %s\n", errstr);
                return EXIT_USAGE;
        }
        osy_log_init("sf-ingest",
                     (osy_log_level_t)osy_config_enum(cfg, OSY_CFG_LOG_LEVEL),
                     NULL);
        tenants_file = osy_config_str(cfg, OSY_CFG_TENANTS_FILE);
        if (!*tenants_file) {
                osy_log_error("sf-ingest: OPTSYNC_TENANTS_FILE is not set "
                              "(the tenants and their Salesforce "
                              "credentials)");
                rc = EXIT_USAGE;
                goto out;
        }
        if (osy_tenants_load_file(&tenants, tenants_file, errstr,
                                  sizeof(errstr))) {
                osy_log_error("sf-ingest: %s", errstr);
                rc = EXIT_USAGE;
                goto out;
        }
        if (osy_shutdown_install(errstr, sizeof(errstr))) {
                osy_log_error("sf-ingest: %s", errstr);
                rc = EXIT_FATAL;
                goto out;
        }
        rc = run(cfg, tenants);
out:
        osy_tenants_destroy(tenants);
        osy_config_destroy(cfg);
        return rc;
}
