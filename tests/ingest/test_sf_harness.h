/*
 * test_sf_harness.h - shared by sf-ingest's integration tests (header-only,
 * static): start the sandbox, the embedded Kafka and redis-server, run the
 * worker in-process against them, drive the simulated org, and read back
 * the sf.events that landed on the topic.
 */
#ifndef OSY_TEST_SF_HARNESS_H
#define OSY_TEST_SF_HARNESS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>

#include "optsync/envelope.h"
#include "optsync/kafka.h"
#include "optsync/log.h"
#include "optsync/metrics.h"
#include "optsync/redis.h"
#include "optsync/tenants.h"
#include "osy_test.h"
#include "osy_test_kafka.h"
#include "osy_test_sandbox.h"
#include "sf_ingest.h"

#define SFH_TENANT "acme"
#define SFH_PARTITIONS 3
#define SFH_TOPIC "optsync.sf.events"
#define SFH_MAX_RECS 512

/** Everything one test runs against. */
struct sfh {
        struct osy_test_sandbox sb;
        struct osy_test_kafka k;
        struct osy_test_redis r;
        osy_redis_t *redis; /* the test's own connection */
        osy_tenants_t *tenants;
        osy_kafka_producer_t *producer;
        osy_metrics_t *metrics;
        osy_sfi_t *w;
        struct osy_sfi_opts o; /* the options the next worker gets */
};

/** One sf.event read back from Kafka, decoded. */
struct sfh_rec {
        char id[OSY_ID_BUFSZ];
        char email[OSY_EMAIL_BUFSZ];
        char record_id[24];
        char replay_id[140];
        char converted_contact_id[24];
        osy_sf_kind_t kind;
        osy_tri_t opt_out;
        int echo;
        int64_t occurred_at;
        char *value; /* the raw message (owned) */
};

static inline void sfh_recs_free(struct sfh_rec *r, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(r[i].value);
}

/* Options every test starts from: fast backoff, short long-polls. */
static inline void sfh_default_opts(struct sfh *h)
{
        memset(&h->o, 0, sizeof(h->o));
        h->o.mode                  = OSY_SFI_MODE_CDC;
        h->o.topic                 = SFH_TOPIC;
        h->o.redis_prefix          = "optsync";
        h->o.redis.host            = "127.0.0.1";
        h->o.redis.port            = h->r.port;
        h->o.http.timeout_ms       = 5000;
        h->o.poll_interval_ms      = 300;
        h->o.poll_overlap_ms       = 2000;
        h->o.safety_poll_ms        = -1;
        h->o.fallback_after_ms     = 60000;
        h->o.cdc_timeout_margin_ms = 1000;
        h->o.backoff_base_ms       = 50;
        h->o.backoff_max_ms        = 400;
        h->o.ack_timeout_ms        = 15000;
}

static inline void sfh_worker_stop(struct sfh *h);

/* Stops everything sfh_start() started (safe on a half-started one). */
static inline void sfh_stop(struct sfh *h)
{
        if (h->w)
                sfh_worker_stop(h);
        osy_tenants_destroy(h->tenants);
        osy_redis_destroy(h->redis);
        osy_test_sandbox_stop(&h->sb);
        osy_test_kafka_stop(&h->k);
        osy_test_redis_stop(&h->r);
}

/**
 * Starts Kafka, Redis and the sandbox (fixture @p fixture, long-polls of
 * 1 s, plus @p extra sandbox flags) and writes the tenants file pointing
 * at the sandbox with client credentials.
 */
static inline int sfh_start(struct sfh *h, const char *fixture,
                            const char *const *extra)
{
        const char *args[32] = {"--set", "sf.cometd_timeout_ms=1000"};
        size_t n             = 2;
        char tjson[1024], e[OSY_ERRSTR_SIZE];
        struct osy_redis_opts ro = {0};

        memset(h, 0, sizeof(*h));
        osy_log_init("sf-ingest-test", OSY_LOG_WARN, NULL);
        for (size_t i = 0; extra && extra[i] && n < 30; i++)
                args[n++] = extra[i];
        args[n] = NULL;
        if (osy_test_kafka_start(&h->k, 1, SFH_PARTITIONS) ||
            osy_test_redis_start(&h->r) ||
            osy_test_sandbox_start(&h->sb, fixture, args))
                goto fail;
        ro.host = "127.0.0.1";
        ro.port = h->r.port;
        if (osy_redis_connect(&h->redis, &ro, e, sizeof(e)))
                goto fail;
        snprintf(tjson, sizeof(tjson),
                 "{\"tenants\":[{\"id\":\"" SFH_TENANT "\",\"sf\":{"
                 "\"login_url\":\"%s/sf/" SFH_TENANT "\","
                 "\"auth\":\"client_credentials\","
                 "\"client_id\":\"sandbox-client-id\","
                 "\"client_secret\":\"sandbox-client-secret\"}}]}",
                 h->sb.base_url);
        if (osy_tenants_parse(&h->tenants, tjson, strlen(tjson), e, sizeof(e)))
                goto fail;
        sfh_default_opts(h);
        return 0;
fail:
        /* cmocka skips the teardown of a failed setup: leave nothing. */
        sfh_stop(h);
        return -1;
}

/** Starts a worker with h->o (and a fresh producer and registry). */
static inline void sfh_worker_start(struct sfh *h)
{
        struct osy_kafka_opts ko         = {0};
        static const char *const extra[] = {"message.timeout.ms", "5000", NULL};
        char e[OSY_ERRSTR_SIZE]          = "";

        ko.bootstrap = h->k.bootstrap;
        ko.extra     = extra;
        if (osy_kafka_producer_new(&h->producer, &ko, e, sizeof(e)))
                fail_msg("producer: %s", e);
        h->metrics = osy_metrics_new();
        if (osy_sfi_new(&h->w, &h->o, h->tenants, h->producer, h->metrics, e,
                        sizeof(e)) ||
            osy_sfi_start(h->w, e, sizeof(e)))
                fail_msg("worker: %s", e);
}

/** Stops the worker the way main.c does (threads, then producer). */
static inline void sfh_worker_stop(struct sfh *h)
{
        osy_sfi_stop(h->w);
        osy_kafka_producer_destroy(h->producer);
        osy_sfi_destroy(h->w);
        osy_metrics_destroy(h->metrics);
        h->w        = NULL;
        h->producer = NULL;
        h->metrics  = NULL;
}

/** Waits until @p cond holds (polled every 20 ms), failing the test with
 *  the condition's text after @p timeout_ms. */
#define SFH_WAIT(cond, timeout_ms)                                             \
        do {                                                                   \
                int64_t until_ = osy_test_now_ms() + (timeout_ms);             \
                while (!(cond) && osy_test_now_ms() < until_)                  \
                        osy_test_sleep_ms(20);                                 \
                if (!(cond))                                                   \
                        fail_msg("timed out waiting for %s", #cond);           \
        } while (0)

/* A fixture with @p n SF Contacts p0@example.com .. (caller frees). */
static inline char *sfh_contacts_fixture(int n)
{
        size_t cap = (size_t)n * 64 + 128, off = 0;
        char *s = malloc(cap);

        if (!s)
                return NULL;
        off += (size_t)snprintf(s + off, cap - off,
                                "{\"tenants\":{\"" SFH_TENANT "\":{\"sf\":{"
                                "\"contacts\":[");
        for (int i = 0; i < n; i++)
                off += (size_t)snprintf(s + off, cap - off,
                                        "%s{\"LastName\":\"C%d\",\"Email\":"
                                        "\"p%d@example.com\"}",
                                        i ? "," : "", i, i);
        snprintf(s + off, cap - off, "]}}}}");
        return s;
}

/*
 * For tests that run the sf-ingest binary: writes the tenants file (the
 * sandbox org, client credentials) to @p path and sets the environment the
 * children inherit: this harness's Kafka and Redis, admin on a free
 * loopback port, quick CometD back-off and timeouts, no safety poll.
 * @returns 0, or -1 when the file cannot be written.
 */
static inline int sfh_binary_env(struct sfh *h, const char *path)
{
        char port[16];
        FILE *f = fopen(path, "w");

        if (!f)
                return -1;
        fprintf(f,
                "{\"tenants\":[{\"id\":\"" SFH_TENANT "\",\"sf\":{"
                "\"login_url\":\"%s/sf/" SFH_TENANT "\",\"auth\":"
                "\"client_credentials\",\"client_id\":\"sandbox-client-id\","
                "\"client_secret\":\"sandbox-client-secret\"}}]}",
                h->sb.base_url);
        if (fclose(f))
                return -1;
        snprintf(port, sizeof(port), "%d", h->r.port);
        setenv("OPTSYNC_TENANTS_FILE", path, 1);
        setenv("OPTSYNC_KAFKA_BOOTSTRAP", h->k.bootstrap, 1);
        setenv("OPTSYNC_REDIS_PORT", port, 1);
        setenv("OPTSYNC_ADMIN_ADDR", "127.0.0.1", 1);
        setenv("OPTSYNC_ADMIN_PORT", "0", 1);
        setenv("OPTSYNC_SF_CDC_BACKOFF_BASE", "50ms", 1);
        setenv("OPTSYNC_SF_CDC_BACKOFF_MAX", "500ms", 1);
        setenv("OPTSYNC_SF_CDC_TIMEOUT_MARGIN", "1s", 1);
        setenv("OPTSYNC_SF_CDC_SAFETY_POLL", "0", 1);
        return 0;
}

static inline struct osy_sfi_stats sfh_stats(struct sfh *h)
{
        struct osy_sfi_stats s;

        osy_sfi_get_stats(h->w, &s);
        return s;
}

static inline int sfh_ready(struct sfh *h)
{
        char why[128];

        return osy_sfi_ready(h->w, why, sizeof(why));
}

/** A scenario control on the simulated org; fails the test unless 2xx. */
static inline void sfh_ctl(struct sfh *h, const char *method, const char *path,
                           const char *body)
{
        char url[512], *resp = NULL;
        int st;

        snprintf(url, sizeof(url), "%s%s",
                 !strncmp(path, "/sandbox", 8) ? "" : "/sandbox/sf/" SFH_TENANT,
                 path);
        st = osy_test_sandbox_call(&h->sb, method, url, NULL, body, &resp);
        if (st < 200 || st > 299)
                fail_msg("%s %s: HTTP %d %s", method, url, st,
                         resp ? resp : "");
        free(resp);
}

/** Ticks (1) or unticks (0) Email Opt Out on a record "as a user". */
static inline void sfh_optout(struct sfh *h, const char *id, int value)
{
        char path[128];

        snprintf(path, sizeof(path), "/records/%s/optout", id);
        sfh_ctl(h, "POST", path,
                value ? "{\"value\":true}" : "{\"value\":false}");
}

/** @returns the id of the @p i-th seeded Contact or Lead (static buffer). */
static inline const char *sfh_id(struct sfh *h, const char *what, int i)
{
        static char ids[8][24];
        static int slot;
        char *body = NULL;
        cJSON *o, *rec;
        char *out = ids[slot++ % 8];

        if (osy_test_sandbox_call(&h->sb, "GET",
                                  "/sandbox/state?tenant=" SFH_TENANT, NULL,
                                  NULL, &body) != 200)
                fail_msg("state");
        o   = cJSON_Parse(body);
        rec = cJSON_GetArrayItem(
            cJSON_GetObjectItem(cJSON_GetObjectItem(o, "sf"), what), i);
        if (!rec)
                fail_msg("no %s #%d", what, i);
        snprintf(out, 24, "%s", cJSON_GetObjectItem(rec, "Id")->valuestring);
        cJSON_Delete(o);
        free(body);
        return out;
}

/** Redis GET of "optsync:sfi:acme:<name>" into @p buf ("" when unset). */
static inline void sfh_redis_get(struct sfh *h, const char *name, char *buf,
                                 size_t size)
{
        char key[256], e[OSY_ERRSTR_SIZE];
        const char *argv[] = {"GET", key};
        redisReply *r      = NULL;

        snprintf(key, sizeof(key), "optsync:sfi:" SFH_TENANT ":%s", name);
        buf[0] = '\0';
        if (osy_redis_command_argv(h->redis, 2, argv, NULL, &r, e, sizeof(e)))
                fail_msg("redis: %s", e);
        if (r->type == REDIS_REPLY_STRING)
                snprintf(buf, size, "%s", r->str);
        freeReplyObject(r);
}

/** Reads the whole sf.events topic from the beginning: returns once at
 *  least @p want records came and none for @p quiet_ms, or at the
 *  timeout. Every record must decode as a valid envelope. */
static inline size_t sfh_consume(struct sfh *h, size_t want, int quiet_ms,
                                 int timeout_ms, struct sfh_rec *out)
{
        char errstr[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_topic_partition_list_t *parts;
        rd_kafka_t *rk;
        int64_t deadline = osy_test_now_ms() + timeout_ms, last_new;
        size_t n         = 0;

        rd_kafka_conf_set(conf, "bootstrap.servers", h->k.bootstrap, errstr,
                          sizeof(errstr));
        rd_kafka_conf_set(conf, "group.id", "sfh-reader", errstr,
                          sizeof(errstr));
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr,
                          sizeof(errstr));
        rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
        if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr,
                                sizeof(errstr))))
                fail_msg("consumer: %s", errstr);
        rd_kafka_poll_set_consumer(rk);
        parts = rd_kafka_topic_partition_list_new(SFH_PARTITIONS);
        for (int i = 0; i < SFH_PARTITIONS; i++)
                rd_kafka_topic_partition_list_add(parts, SFH_TOPIC, i)->offset =
                    RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_assign(rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        last_new = osy_test_now_ms();
        while (osy_test_now_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
                struct osy_msg msg;

                if (!m) {
                        if (n >= want &&
                            osy_test_now_ms() - last_new >= quiet_ms)
                                break;
                        continue;
                }
                if (!m->err && n < SFH_MAX_RECS) {
                        struct sfh_rec *r = &out[n];

                        memset(r, 0, sizeof(*r));
                        if (osy_msg_decode(m->payload, m->len, &msg, errstr,
                                           sizeof(errstr)))
                                fail_msg("bad sf.event on the topic: %s",
                                         errstr);
                        snprintf(r->id, sizeof(r->id), "%s", msg.id);
                        snprintf(r->email, sizeof(r->email), "%s", msg.email);
                        snprintf(r->record_id, sizeof(r->record_id), "%s",
                                 msg.sf_event.record_id);
                        snprintf(r->replay_id, sizeof(r->replay_id), "%s",
                                 msg.sf_event.replay_id ? msg.sf_event.replay_id
                                                        : "");
                        snprintf(r->converted_contact_id,
                                 sizeof(r->converted_contact_id), "%s",
                                 msg.sf_event.converted_contact_id
                                     ? msg.sf_event.converted_contact_id
                                     : "");
                        r->kind        = msg.sf_event.kind;
                        r->opt_out     = msg.sf_event.has_opted_out_of_email;
                        r->echo        = msg.sf_event.echo;
                        r->occurred_at = msg.occurred_at;
                        r->value       = strndup(m->payload, m->len);
                        osy_msg_clear(&msg);
                        n++;
                        last_new = osy_test_now_ms();
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return n;
}

/** @returns how many of @p recs are about @p record_id with @p kind. */
static inline size_t sfh_count(const struct sfh_rec *recs, size_t n,
                               const char *record_id, osy_sf_kind_t kind)
{
        size_t c = 0;

        for (size_t i = 0; i < n; i++)
                if (!strcmp(recs[i].record_id, record_id) &&
                    recs[i].kind == kind)
                        c++;
        return c;
}

#endif /* OSY_TEST_SF_HARNESS_H */
