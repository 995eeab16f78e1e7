/*
 * ac-ingest - receives ActiveCampaign webhooks and puts them on Kafka as
 * ac.event messages, answering 200 only once Kafka (or the durable spool)
 * has them; `ac-ingest register` sets the webhooks up in AC.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"
#include "register.h"
#include "server.h"
#include "spool.h"
#include "optsync/admin.h"
#include "optsync/config.h"
#include "optsync/log.h"
#include "optsync/shutdown.h"
#include "optsync/tenants.h"
#include "optsync/topics.h"

#define EXIT_FATAL 1
#define EXIT_USAGE 2
#define LOOP_TICK_MS 500
#define MAX_EXTRA 24

static void usage(FILE *out)
{
        fprintf(out,
                "Usage: ac-ingest [serve] [--no-produce]\n"
                "       ac-ingest register [--tenant ID] [--dry-run] "
                "[--prune]\n"
                "\n"
                "serve (default)  receive AC webhooks on "
                "/webhooks/ac/<tenant>/<token>\n"
                "  --no-produce   answer 200 after decoding, without Kafka "
                "or spool\n"
                "                 (benchmark baseline only: events are "
                "dropped)\n"
                "register         create or fix each tenant's webhook in AC "
                "(idempotent)\n"
                "  --tenant ID    only this tenant\n"
                "  --dry-run      report what would change, change nothing\n"
                "  --prune        also delete our hooks that carry an old "
                "token\n"
                "\n"
                "Configuration: OPTSYNC_* environment variables (see "
                "docs/configuration.md);\n"
                "tenants and their webhook tokens: OPTSYNC_TENANTS_FILE.\n");
}

/* librdkafka properties from the configuration (strings owned by cfg). */
static void kafka_extra(const osy_config_t *cfg, const char **extra,
                        char *timeout, size_t timeout_size, char *linger,
                        size_t linger_size)
{
        size_t n = 0;

        snprintf(timeout, timeout_size, "%lld",
                 (long long)osy_config_ms(cfg, OSY_CFG_KAFKA_PRODUCE_TIMEOUT));
        snprintf(linger, linger_size, "%lld",
                 (long long)osy_config_ms(cfg, OSY_CFG_INGEST_LINGER));
        n          = osy_config_kafka_security(cfg, extra, n);
        extra[n++] = "message.timeout.ms";
        extra[n++] = timeout;
        /* A broker that comes back should be found within a second: the
         * spool replays only once the producer reconnects. */
        extra[n++] = "reconnect.backoff.max.ms";
        extra[n++] = "1000";
        /* Every webhook waits for its batch's acks: a short linger keeps
         * that wait small while still batching bursts. */
        extra[n++] = "linger.ms";
        extra[n++] = linger;
        extra[n]   = NULL;
}

static int ready_cb(void *opaque, char *reason, size_t reason_size)
{
        return osy_pipe_ready(opaque, reason, reason_size);
}

static int serve(const osy_config_t *cfg, const osy_tenants_t *tenants,
                 int no_produce)
{
        struct osy_ingest_route *routes = NULL;
        struct osy_topic_names topics;
        struct osy_kafka_opts kopts;
        struct osy_pipe_opts popts;
        struct osy_ingest_server_opts sopts;
        struct osy_admin_opts aopts;
        const char *extra[MAX_EXTRA];
        char timeout[32], linger[32], errstr[OSY_ERRSTR_SIZE];
        osy_metrics_t *metrics      = NULL;
        osy_spool_t *spool          = NULL;
        osy_pipe_t *pipe            = NULL;
        osy_ingest_server_t *server = NULL;
        osy_admin_t *admin          = NULL;
        size_t n                    = osy_tenants_count(tenants);
        int rc                      = EXIT_FATAL;
        int64_t grace;

        if (osy_topic_names_init(
                &topics, osy_config_str(cfg, OSY_CFG_KAFKA_TOPIC_PREFIX),
                errstr, sizeof(errstr))) {
                osy_log_error("ac-ingest: %s", errstr);
                goto out;
        }
        if (!(metrics = osy_metrics_new()) ||
            !(routes = calloc(n ? n : 1, sizeof(*routes)))) {
                osy_log_error("ac-ingest: out of memory");
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                const struct osy_tenant *t = osy_tenants_at(tenants, i);
                routes[i].tenant           = t->id;
                routes[i].token = t->has_ac ? t->ac.webhook_token : NULL;
                if (!routes[i].token || !*routes[i].token)
                        osy_log_warn("ac-ingest: tenant %s has no "
                                     "ac.webhook_token: its route is off",
                                     t->id);
        }
        kafka_extra(cfg, extra, timeout, sizeof(timeout), linger,
                    sizeof(linger));
        memset(&kopts, 0, sizeof(kopts));
        kopts.bootstrap = osy_config_str(cfg, OSY_CFG_KAFKA_BOOTSTRAP);
        kopts.client_id = "ac-ingest";
        kopts.extra     = extra;
        if (!no_produce &&
            osy_spool_open(
                &spool, osy_config_str(cfg, OSY_CFG_INGEST_SPOOL_DIR),
                (uint64_t)osy_config_int(cfg, OSY_CFG_INGEST_SPOOL_MAX_BYTES),
                errstr, sizeof(errstr))) {
                osy_log_error("ac-ingest: %s", errstr);
                goto out;
        }
        memset(&popts, 0, sizeof(popts));
        popts.kafka          = no_produce ? NULL : &kopts;
        popts.topic          = topics.name[OSY_TOPIC_AC_EVENTS];
        popts.spool          = spool;
        popts.ack_timeout_ms = osy_config_ms(cfg, OSY_CFG_INGEST_ACK_TIMEOUT);
        popts.metrics        = metrics;
        popts.warmup_ms      = 5000;
        if (osy_pipe_new(&pipe, &popts, errstr, sizeof(errstr))) {
                osy_log_error("ac-ingest: %s", errstr);
                goto out;
        }
        if (no_produce)
                osy_log_warn("ac-ingest: --no-produce: events are decoded "
                             "and DROPPED (benchmark baseline)");
        memset(&aopts, 0, sizeof(aopts));
        aopts.bind_addr    = osy_config_str(cfg, OSY_CFG_ADMIN_ADDR);
        aopts.port         = (int)osy_config_int(cfg, OSY_CFG_ADMIN_PORT);
        aopts.metrics      = metrics;
        aopts.ready_cb     = ready_cb;
        aopts.ready_opaque = pipe;
        aopts.heartbeat_timeout_ms = 30000;
        if (osy_admin_start(&admin, &aopts, errstr, sizeof(errstr))) {
                osy_log_error("ac-ingest: %s", errstr);
                goto out;
        }
        memset(&sopts, 0, sizeof(sopts));
        sopts.bind_addr = osy_config_str(cfg, OSY_CFG_INGEST_LISTEN_ADDR);
        sopts.port      = (int)osy_config_int(cfg, OSY_CFG_INGEST_PORT);
        sopts.threads   = (unsigned)osy_config_int(cfg, OSY_CFG_INGEST_THREADS);
        sopts.max_connections =
            (unsigned)osy_config_int(cfg, OSY_CFG_INGEST_MAX_CONNECTIONS);
        sopts.max_body = (size_t)osy_config_int(cfg, OSY_CFG_INGEST_MAX_BODY);
        sopts.routes   = routes;
        sopts.n_routes = n;
        sopts.pipe     = pipe;
        sopts.metrics  = metrics;
        if (osy_ingest_server_start(&server, &sopts, errstr, sizeof(errstr))) {
                osy_log_error("ac-ingest: %s", errstr);
                goto out;
        }
        /* One line tests and scripts can wait for. */
        printf("ingest_port=%d admin_port=%d\n", osy_ingest_server_port(server),
               osy_admin_port(admin));
        fflush(stdout);

        rc = 0;
        while (!osy_shutdown_wait(LOOP_TICK_MS)) {
                osy_admin_heartbeat(admin, osy_admin_now_ms());
                if (osy_pipe_fatal(pipe, errstr, sizeof(errstr))) {
                        /* The idempotent producer cannot go on; what it
                         * did not deliver is spooled below, and the next
                         * process replays it. */
                        osy_log_error("ac-ingest: %s; restarting", errstr);
                        rc = EXIT_FATAL;
                        break;
                }
        }
        osy_log_info("ac-ingest: shutting down (signal %d)",
                     osy_shutdown_signal());
out:
        /* Order matters: stop taking connections, let pending webhooks get
         * their answer (Kafka or spool), close the pipeline (what still
         * comes, from requests already being received, is spooled), stop
         * the HTTP threads, and only then free the pipeline they call:
         * freeing it first let a late request or a readiness probe use
         * freed memory (found by scripts/tsan.sh). */
        osy_ingest_server_quiesce(server);
        grace = cfg ? osy_config_ms(cfg, OSY_CFG_SHUTDOWN_GRACE) : 0;
        if (pipe && osy_pipe_drain(pipe, (int)(grace / 2)))
                osy_log_warn("ac-ingest: webhooks still waiting at shutdown "
                             "go to the spool");
        osy_pipe_close(pipe);
        if (osy_ingest_server_wait_idle(server, 2000))
                osy_log_warn("ac-ingest: some answers were not sent before "
                             "the HTTP server stopped");
        osy_ingest_server_stop(server);
        osy_admin_stop(admin);
        osy_pipe_destroy(pipe);
        osy_spool_close(spool);
        osy_metrics_destroy(metrics);
        free(routes);
        return rc;
}

static int do_register(const osy_config_t *cfg, const osy_tenants_t *tenants,
                       const char *only, int dry_run, int prune)
{
        struct osy_acwh_register_opts ropts = {
            .public_url = osy_config_str(cfg, OSY_CFG_INGEST_PUBLIC_URL),
            .dry_run    = dry_run,
            .prune      = prune};
        struct osy_http_opts hopts = {
            .connect_timeout_ms =
                (long)osy_config_ms(cfg, OSY_CFG_HTTP_CONNECT_TIMEOUT),
            .timeout_ms = (long)osy_config_ms(cfg, OSY_CFG_HTTP_TIMEOUT),
            .max_body   = (size_t)osy_config_int(cfg, OSY_CFG_HTTP_MAX_BODY)};
        osy_http_client_t *c = NULL;
        char errstr[OSY_ERRSTR_SIZE];
        int failed = 0, done = 0;

        if (osy_http_client_new(&c, &hopts, errstr, sizeof(errstr))) {
                fprintf(stderr, "ac-ingest register: %s\n", errstr);
                return EXIT_FATAL;
        }
        for (size_t i = 0; i < osy_tenants_count(tenants); i++) {
                const struct osy_tenant *t = osy_tenants_at(tenants, i);
                struct osy_acwh_register_report rep;

                if (only && strcmp(only, t->id))
                        continue;
                done++;
                /* No webhook token: the tenant has no route on purpose. */
                if (!only && (!t->has_ac || !t->ac.webhook_token ||
                              !*t->ac.webhook_token)) {
                        printf("%s: skipped (no ac.webhook_token)\n", t->id);
                        continue;
                }
                if (osy_acwh_register_tenant(c, t, &ropts, stdout, &rep, errstr,
                                             sizeof(errstr))) {
                        printf("%s: FAILED: %s\n", t->id, errstr);
                        failed++;
                }
        }
        osy_http_client_destroy(c);
        if (only && !done) {
                fprintf(stderr, "ac-ingest register: no tenant \"%s\"\n", only);
                return EXIT_USAGE;
        }
        fflush(stdout);
        return failed ? EXIT_FATAL : 0;
}

int main(int argc, char **argv)
{
        osy_config_t *cfg      = NULL;
        osy_tenants_t *tenants = NULL;
        const char *only       = NULL, *tenants_file;
        int reg = 0, no_produce = 0, dry_run = 0, prune = 0, rc;
        char errstr[4096];
        int i = 1;

        if (argc > 1 &&
            (!strcmp(argv[1], "serve") || !strcmp(argv[1], "register"))) {
                reg = !strcmp(argv[1], "register");
                i   = 2;
        }
        for (; i < argc; i++) {
                if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
                        usage(stdout);
                        return 0;
                } else if (!reg && !strcmp(argv[i], "--no-produce")) {
                        no_produce = 1;
                } else if (reg && !strcmp(argv[i], "--dry-run")) {
                        dry_run = 1;
                } else if (reg && !strcmp(argv[i], "--prune")) {
                        prune = 1;
                } else if (reg && !strcmp(argv[i], "--tenant") &&
                           i + 1 < argc) {
                        only = argv[++i];
                } else {
                        fprintf(stderr, "ac-ingest: unknown argument %s\n",
                                argv[i]);
                        usage(stderr);
                        return EXIT_USAGE;
                }
        }
        if (osy_config_load(&cfg, NULL, errstr, sizeof(errstr))) {
                fprintf(stderr, "ac-ingest: bad configuration: %s\n", errstr);
                return EXIT_USAGE;
        }
        osy_log_init("ac-ingest",
                     (osy_log_level_t)osy_config_enum(cfg, OSY_CFG_LOG_LEVEL),
                     NULL);
        tenants_file = osy_config_str(cfg, OSY_CFG_TENANTS_FILE);
        if (!*tenants_file) {
                osy_log_error("ac-ingest: OPTSYNC_TENANTS_FILE is not set "
                              "(the tenants and their webhook tokens)");
                rc = EXIT_USAGE;
                goto out;
        }
        if (osy_tenants_load_file(&tenants, tenants_file, errstr,
                                  sizeof(errstr))) {
                osy_log_error("ac-ingest: %s", errstr);
                rc = EXIT_USAGE;
                goto out;
        }
        if (reg) {
                rc = do_register(cfg, tenants, only, dry_run, prune);
                goto out;
        }
        if (osy_shutdown_install(errstr, sizeof(errstr))) {
                osy_log_error("ac-ingest: %s", errstr);
                rc = EXIT_FATAL;
                goto out;
        }
        rc = serve(cfg, tenants, no_produce);
out:
        osy_tenants_destroy(tenants);
        osy_config_destroy(cfg);
        return rc;
}
