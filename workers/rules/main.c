/*
 * rules - the rules worker: configuration, signals, the loop and teardown.
 * The logic is in the optsync_rules library (rules_worker.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optsync/ac_client.h"
#include "optsync/admin.h"
#include "optsync/config.h"
#include "optsync/http.h"
#include "optsync/log.h"
#include "optsync/metrics.h"
#include "optsync/ratelimit.h"
#include "optsync/redis.h"
#include "optsync/shutdown.h"
#include "optsync/tenants.h"
#include "rules_lookup.h"
#include "rules_worker.h"

#define EXIT_FATAL 1
#define MAX_EXTRA 24

/* librdkafka properties from the configuration (strings owned by cfg or
 * the caller's buffers). */
static void kafka_extra(const osy_config_t *cfg, const char **extra,
                        int consumer, char *timeout, size_t timeout_size,
                        char *session, char *heartbeat, size_t num_size)
{
        int64_t sess = osy_config_ms(cfg, OSY_CFG_RULES_SESSION_TIMEOUT);
        size_t n     = 0;

        n = osy_config_kafka_security(cfg, extra, n);
        if (consumer) {
                snprintf(session, num_size, "%" PRId64, sess);
                snprintf(heartbeat, num_size, "%" PRId64,
                         sess / 10 > 100 ? sess / 10 : 100);
                extra[n++] = "session.timeout.ms";
                extra[n++] = session;
                extra[n++] = "heartbeat.interval.ms";
                extra[n++] = heartbeat;
                /* Prefetch at most 4 MB (librdkafka's default is 64 MB):
                 * a worker that falls behind must not grow without bound;
                 * 4 MB is still over ten batches ahead. */
                extra[n++] = "queued.max.messages.kbytes";
                extra[n++] = "4096";
                /* librdkafka keeps one fetch in flight per broker, and the
                 * broker holds a fetch that finds no data for up to this
                 * long (500 ms by default). After an assignment the first
                 * partition ready is fetched alone; when it was empty,
                 * every other partition of that broker waited 500 ms
                 * (bench/rules.sh, each start). 100 ms bounds that, for
                 * up to 10 empty fetches a second per broker when idle. */
                extra[n++] = "fetch.wait.max.ms";
                extra[n++] = "100";
        } else {
                snprintf(timeout, timeout_size, "%" PRId64,
                         osy_config_ms(cfg, OSY_CFG_KAFKA_PRODUCE_TIMEOUT));
                extra[n++] = "message.timeout.ms";
                extra[n++] = timeout;
                /* librdkafka's own default, set so the choice is seen: a
                 * batch's outputs are produced at once, and at 1 ms they
                 * went out as many small requests whose acknowledgements
                 * then limited the worker (bench/rules.sh: 38,500 events/s
                 * at 1 ms, 45,000-48,500 at 5 ms, 42,800 at 20 ms). */
                extra[n++] = "linger.ms";
                extra[n++] = "5";
        }
        extra[n++] = "reconnect.backoff.max.ms";
        extra[n++] = "1000";
        extra[n]   = NULL;
}

static int ready_cb(void *opaque, char *reason, size_t reason_size)
{
        if (osy_rules_worker_ready(opaque))
                return 1;
        snprintf(reason, reason_size, "redis unavailable or not started");
        return 0;
}

int main(int argc, char **argv)
{
        osy_config_t *cfg          = NULL;
        osy_tenants_t *tenants     = NULL;
        osy_metrics_t *metrics     = NULL;
        osy_redis_t *rl_redis      = NULL;
        osy_rl_t *limiter          = NULL;
        osy_rules_ac_t *ac         = NULL;
        osy_rules_worker_t *worker = NULL;
        osy_admin_t *admin         = NULL;
        struct osy_rules_worker_opts wo;
        struct osy_rules_ac_opts ao;
        struct osy_admin_opts aopts;
        struct osy_http_opts hopts;
        struct osy_rl_opts rlo;
        const char *pextra[MAX_EXTRA], *cextra[MAX_EXTRA];
        char timeout[32], session[32], heartbeat[32];
        char errstr[4096];
        const char *tfile;
        int rc = EXIT_FATAL;
        int64_t grace, deadline;

        if (argc > 1 &&
            (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
                printf("usage: rules\n\nThe rules worker: decides opt-out "
                       "commands from AC and SF events.\nConfiguration: "
                       "OPTSYNC_* environment variables (docs/"
                       "configuration.md); docs/rules.md.\n");
                return 0;
        }
        if (osy_config_load(&cfg, NULL, errstr, sizeof(errstr))) {
                fprintf(stderr, "rules: bad configuration: %s\n", errstr);
                return 2;
        }
        osy_log_init("rules",
                     (osy_log_level_t)osy_config_enum(cfg, OSY_CFG_LOG_LEVEL),
                     NULL);
        if (osy_shutdown_install(errstr, sizeof(errstr))) {
                osy_log_error("rules: %s", errstr);
                goto out;
        }
        tfile = osy_config_str(cfg, OSY_CFG_TENANTS_FILE);
        if (*tfile &&
            osy_tenants_load_file(&tenants, tfile, errstr, sizeof(errstr))) {
                osy_log_error("rules: %s", errstr);
                goto out;
        }
        if (!*tfile)
                osy_log_warn("rules: OPTSYNC_TENANTS_FILE not set: cache "
                             "misses cannot be filled from AC and go to "
                             "the DLQ");
        if (!(metrics = osy_metrics_new())) {
                osy_log_error("rules: out of memory");
                goto out;
        }

        memset(&wo, 0, sizeof(wo));
        wo.redis.host     = osy_config_str(cfg, OSY_CFG_REDIS_HOST);
        wo.redis.port     = (int)osy_config_int(cfg, OSY_CFG_REDIS_PORT);
        wo.redis.password = osy_config_str(cfg, OSY_CFG_REDIS_PASSWORD);
        wo.redis.db       = (int)osy_config_int(cfg, OSY_CFG_REDIS_DB);
        wo.redis.connect_timeout_ms =
            (int)osy_config_ms(cfg, OSY_CFG_REDIS_CONNECT_TIMEOUT);
        wo.redis.command_timeout_ms =
            (int)osy_config_ms(cfg, OSY_CFG_REDIS_COMMAND_TIMEOUT);

        /* The AC limiter gets a connection of its own: the worker's is
         * busy with pipelines. */
        if (tenants) {
                if (osy_redis_connect(&rl_redis, &wo.redis, errstr,
                                      sizeof(errstr))) {
                        osy_log_error("rules: %s", errstr);
                        goto out;
                }
                osy_ac_rl_opts(
                    cfg, osy_config_str(cfg, OSY_CFG_REDIS_KEY_PREFIX), &rlo);
                if (osy_rl_new(&limiter, rl_redis, &rlo, errstr,
                               sizeof(errstr))) {
                        osy_log_error("rules: %s", errstr);
                        goto out;
                }
        }
        memset(&hopts, 0, sizeof(hopts));
        hopts.connect_timeout_ms =
            (long)osy_config_ms(cfg, OSY_CFG_HTTP_CONNECT_TIMEOUT);
        hopts.timeout_ms = (long)osy_config_ms(cfg, OSY_CFG_HTTP_TIMEOUT);
        hopts.max_body   = (size_t)osy_config_int(cfg, OSY_CFG_HTTP_MAX_BODY);
        memset(&ao, 0, sizeof(ao));
        ao.tenants             = tenants;
        ao.limiter             = limiter;
        ao.limiter_max_wait_ms = osy_config_ms(cfg, OSY_CFG_AC_LOOKUP_TIMEOUT);
        ao.http                = &hopts;
        if (osy_rules_ac_new(&ac, &ao, errstr, sizeof(errstr))) {
                osy_log_error("rules: %s", errstr);
                goto out;
        }

        kafka_extra(cfg, pextra, 0, timeout, sizeof(timeout), session,
                    heartbeat, sizeof(session));
        kafka_extra(cfg, cextra, 1, timeout, sizeof(timeout), session,
                    heartbeat, sizeof(session));
        wo.bootstrap      = osy_config_str(cfg, OSY_CFG_KAFKA_BOOTSTRAP);
        wo.client_id      = "rules";
        wo.group_id       = osy_config_str(cfg, OSY_CFG_KAFKA_GROUP_ID);
        wo.topic_prefix   = osy_config_str(cfg, OSY_CFG_KAFKA_TOPIC_PREFIX);
        wo.producer_extra = pextra;
        wo.consumer_extra = cextra;
        wo.produce_timeout_ms =
            (int)osy_config_ms(cfg, OSY_CFG_KAFKA_PRODUCE_TIMEOUT);
        wo.redis_prefix = osy_config_str(cfg, OSY_CFG_REDIS_KEY_PREFIX);
        wo.dedup_ttl_ms = osy_config_ms(cfg, OSY_CFG_DEDUP_TTL);
        wo.state_ttl_ms = osy_config_ms(cfg, OSY_CFG_RULES_STATE_TTL);
        /* Dedup keys are looked up only for events not newer than the
         * person's state, which is sound only while states outlive them. */
        if (wo.state_ttl_ms < wo.dedup_ttl_ms) {
                osy_log_error("rules: OPTSYNC_RULES_STATE_TTL must be at "
                              "least OPTSYNC_DEDUP_TTL (a replay must still "
                              "find its person's version)");
                goto out;
        }
        wo.batch_size    = (int)osy_config_int(cfg, OSY_CFG_RULES_BATCH_SIZE);
        wo.batch_wait_ms = (int)osy_config_ms(cfg, OSY_CFG_RULES_BATCH_WAIT);
        wo.sync_all_contacts  = osy_config_bool(cfg, OSY_CFG_SYNC_ALL_CONTACTS);
        wo.retry.base_ms      = osy_config_ms(cfg, OSY_CFG_RETRY_BASE);
        wo.retry.max_delay_ms = osy_config_ms(cfg, OSY_CFG_RETRY_MAX_DELAY);
        wo.retry.max_attempts =
            (int)osy_config_int(cfg, OSY_CFG_RETRY_MAX_ATTEMPTS);
        wo.retry.max_age_ms = osy_config_ms(cfg, OSY_CFG_RETRY_MAX_AGE);
        wo.retry.retry_after_cap_ms =
            osy_config_ms(cfg, OSY_CFG_RETRY_AFTER_CAP);
        wo.lookup        = osy_rules_ac_lookup;
        wo.lookup_opaque = ac;
        wo.metrics       = metrics;
        if (osy_rules_worker_new(&worker, &wo, errstr, sizeof(errstr))) {
                osy_log_error("rules: %s", errstr);
                goto out;
        }

        memset(&aopts, 0, sizeof(aopts));
        aopts.bind_addr    = osy_config_str(cfg, OSY_CFG_ADMIN_ADDR);
        aopts.port         = (int)osy_config_int(cfg, OSY_CFG_ADMIN_PORT);
        aopts.metrics      = metrics;
        aopts.ready_cb     = ready_cb;
        aopts.ready_opaque = worker;
        aopts.heartbeat_timeout_ms = 60000;
        if (osy_admin_start(&admin, &aopts, errstr, sizeof(errstr))) {
                osy_log_error("rules: %s", errstr);
                goto out;
        }
        /* One line tests and scripts can wait for. */
        printf("admin_port=%d\n", osy_admin_port(admin));
        fflush(stdout);
        osy_log_info("rules: consuming (group %s)", wo.group_id);

        rc = 0;
        while (!osy_shutdown_requested()) {
                osy_admin_heartbeat(admin, osy_admin_now_ms());
                if (osy_rules_worker_step(worker, errstr, sizeof(errstr))) {
                        osy_log_error("rules: %s; exiting", errstr);
                        rc = EXIT_FATAL;
                        break;
                }
        }
        /* SIGTERM: the step in progress finished (its outputs are
         * acknowledged and its offsets stored); commit, leave the group,
         * within the grace period. */
        grace    = osy_config_ms(cfg, OSY_CFG_SHUTDOWN_GRACE);
        deadline = osy_admin_now_ms() + grace;
        osy_log_info("rules: shutting down (signal %d)", osy_shutdown_signal());
        if (osy_rules_worker_close(worker, errstr, sizeof(errstr)))
                osy_log_warn("rules: close: %s", errstr);
        if (osy_admin_now_ms() > deadline)
                osy_log_warn("rules: shutdown took longer than "
                             "OPTSYNC_SHUTDOWN_GRACE");
out:
        osy_admin_stop(admin);
        osy_rules_worker_destroy(worker);
        osy_rules_ac_destroy(ac);
        osy_rl_destroy(limiter);
        osy_redis_destroy(rl_redis);
        osy_tenants_destroy(tenants);
        osy_metrics_destroy(metrics);
        osy_config_destroy(cfg);
        return rc;
}
