/*
 * optsync-smoke - the demo's smoke path: publish a few opt-out change
 * events (and one duplicate delivery and one malformed record) with the
 * idempotent producer, consume them as a consumer-group member, suppress
 * the duplicate with a Redis dedup key, dead-letter the malformed record,
 * and store each offset only after its processing is done. Prints every
 * step; exits 0 only when the outcome is exactly the expected one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "optsync/envelope.h"
#include "optsync/err.h"
#include "optsync/kafka.h"
#include "optsync/log.h"
#include "optsync/redis.h"
#include "optsync/shutdown.h"
#include "optsync/topics.h"

/* Dedup keys outlive SF CDC's 72 h replay window, as in the rules worker. */
#define DEDUP_TTL_MS "288000000"
#define CONSUME_DEADLINE_MS 60000

struct smoke_opts {
        const char *bootstrap;
        const char *redis_host;
        int redis_port;
        const char *prefix;
        const char *tenant;
};

/* One scripted event of the smoke path. */
struct scripted_event {
        osy_msg_type_t type;
        const char *email;
        const char *what; /* printed */
        osy_ac_kind_t ac_kind;
        const char *list_id;
        osy_bounce_t bounce;
        int sf_opted_out;
};

static const struct scripted_event script[] = {
    {OSY_MSG_AC_EVENT, "Jane.Doe@Example.com ", "AC unsubscribe from list 1",
     OSY_AC_UNSUBSCRIBE, "1", OSY_BOUNCE_NONE, 0},
    {OSY_MSG_AC_EVENT, "john@example.com", "AC subscribe to list 2",
     OSY_AC_SUBSCRIBE, "2", OSY_BOUNCE_NONE, 0},
    {OSY_MSG_AC_EVENT, "ann@example.com", "AC hard bounce", OSY_AC_BOUNCE, NULL,
     OSY_BOUNCE_HARD, 0},
    {OSY_MSG_SF_EVENT, "bob@example.com", "SF Contact ticks Email Opt Out",
     OSY_AC_KIND_NONE, NULL, OSY_BOUNCE_NONE, 1},
};
#define SCRIPT_LEN (sizeof(script) / sizeof(*script))

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int usage(const char *argv0)
{
        fprintf(stderr,
                "usage: %s --bootstrap HOST:PORT --redis-port PORT\n"
                "          [--redis-host HOST] [--prefix optsync] "
                "[--tenant demo]\n",
                argv0);
        return 2;
}

static int parse_args(int argc, char **argv, struct smoke_opts *o)
{
        o->redis_host = "127.0.0.1";
        o->prefix     = OSY_TOPIC_DEFAULT_PREFIX;
        o->tenant     = "demo";
        /* Options come in pairs: the loop steps over both. */
        for (int i = 1; i < argc; i += 2) {
                const char *v = i + 1 < argc ? argv[i + 1] : NULL;
                if (!strcmp(argv[i], "--help"))
                        return -1;
                if (!v)
                        return -1;
                if (!strcmp(argv[i], "--bootstrap"))
                        o->bootstrap = v;
                else if (!strcmp(argv[i], "--redis-host"))
                        o->redis_host = v;
                else if (!strcmp(argv[i], "--redis-port"))
                        o->redis_port = (int)strtol(v, NULL, 10);
                else if (!strcmp(argv[i], "--prefix"))
                        o->prefix = v;
                else if (!strcmp(argv[i], "--tenant"))
                        o->tenant = v;
                else
                        return -1;
        }
        return o->bootstrap && o->redis_port > 0 && o->redis_port < 65536 ? 0
                                                                          : -1;
}

/* Builds the envelope of one scripted event; the caller clears @p msg. */
static osy_err_t build_event(const struct smoke_opts *o,
                             const struct scripted_event *s, int64_t at,
                             struct osy_msg *msg, char *errstr, size_t size)
{
        osy_err_t err;

        osy_msg_init(msg, s->type);
        err = osy_msg_set_envelope(msg, o->tenant, s->email,
                                   s->type == OSY_MSG_AC_EVENT ? OSY_SRC_AC
                                                               : OSY_SRC_SF,
                                   at, errstr, size);
        if (err)
                return err;
        if (s->type == OSY_MSG_AC_EVENT) {
                struct osy_ac_event *ev = &msg->ac_event;
                ev->kind                = s->ac_kind;
                ev->bounce_type         = s->bounce;
                ev->initiated_by        = OSY_INIT_PUBLIC;
                if ((err = osy_msg_strset(&ev->contact_id, "1001")) ||
                    (s->list_id &&
                     (err = osy_msg_strset(&ev->list_id, s->list_id))) ||
                    (err = osy_ac_event_set_tags_csv(
                         ev, "added-to-salesforce-contact, newsletter")))
                        return err;
        } else {
                struct osy_sf_event *ev = &msg->sf_event;
                ev->kind                = OSY_SF_OPT_OUT_CHANGED;
                ev->object              = OSY_SF_CONTACT;
                ev->has_opted_out_of_email =
                    s->sf_opted_out ? OSY_TRI_TRUE : OSY_TRI_FALSE;
                if ((err =
                         osy_msg_strset(&ev->record_id, "0035e00000AbCdEAAZ")))
                        return err;
        }
        return osy_msg_finalize(msg, errstr, size);
}

/* Publishes one record and waits for its acks=all delivery report. */
static osy_err_t publish(osy_kafka_producer_t *p, const char *topic,
                         const char *key, const char *value, size_t len,
                         char *errstr, size_t size)
{
        return osy_kafka_produce_sync(p, topic, key, key ? strlen(key) : 0,
                                      value, len, 10000, errstr, size);
}

/* The counts the smoke path must end with. */
struct tally {
        int produced, consumed, processed, duplicates, dead_lettered;
};

/*
 * Processes one consumed record: decode; dedup in Redis (the key is
 * written only after processing succeeded, so a crash in between means a
 * retry, never a skip); malformed records go to the DLQ. Returns OSY_OK
 * when the record is finished and its offset may be stored.
 */
static osy_err_t process(const struct smoke_opts *o, osy_redis_t *redis,
                         osy_kafka_producer_t *p,
                         const struct osy_topic_names *topics,
                         const rd_kafka_message_t *rkm, struct tally *t)
{
        char errstr[OSY_ERRSTR_SIZE], dedup_key[128];
        struct osy_msg msg;
        redisReply *reply = NULL;
        osy_err_t err;
        const char *topic = rd_kafka_topic_name(rkm->rkt);

        osy_msg_init(&msg, OSY_MSG_NONE);
        err = osy_msg_decode(rkm->payload, rkm->len, &msg, errstr,
                             sizeof(errstr));
        if (err == OSY_ERR_INVALID) {
                /* Bad input never crashes a consumer, and is never dropped
                 * silently: it goes to the DLQ with the reason. */
                struct osy_msg dlq;
                char *json = NULL, why[OSY_ERRSTR_SIZE];
                size_t len = 0;
                int64_t at = now_ms();
                osy_msg_init(&dlq, OSY_MSG_DLQ);
                dlq.source              = OSY_SRC_RULES;
                dlq.occurred_at         = at;
                dlq.dlq.stage           = OSY_STAGE_RULES;
                dlq.dlq.attempts        = 1;
                dlq.dlq.first_failed_at = at;
                dlq.dlq.last_failed_at  = at;
                if ((err = osy_msg_strset(&dlq.dlq.reason, "undecodable")) ||
                    (err = osy_msg_strset_trunc(&dlq.dlq.first_error, errstr,
                                                OSY_TEXT_MAX)) ||
                    (err = osy_msg_strset_trunc(&dlq.dlq.last_error, errstr,
                                                OSY_TEXT_MAX)) ||
                    (err = osy_msg_dlq_set_original(
                         &dlq, topic, rkm->partition, rkm->offset, rkm->key,
                         rkm->key_len, rkm->payload, rkm->len)) ||
                    (err =
                         osy_msg_encode(&dlq, &json, &len, why, sizeof(why))) ||
                    (err = publish(p, topics->name[OSY_TOPIC_DLQ],
                                   (const char *)rkm->key, json, len, why,
                                   sizeof(why))))
                        fprintf(stderr, "  dlq write failed: %s\n",
                                osy_err2str(err));
                else {
                        printf("  %-10s p%d@%-3lld malformed record -> %s "
                               "(%s)\n",
                               "DLQ", rkm->partition, (long long)rkm->offset,
                               topics->name[OSY_TOPIC_DLQ], errstr);
                        t->dead_lettered++;
                }
                free(json);
                osy_msg_clear(&dlq);
                return err;
        }
        if (err)
                goto out;

        snprintf(dedup_key, sizeof(dedup_key), "%s:dedup:%s", o->prefix,
                 msg.id);
        const char *exists[] = {"EXISTS", dedup_key};
        err = osy_redis_command_argv(redis, 2, exists, NULL, &reply, errstr,
                                     sizeof(errstr));
        if (err)
                goto out;
        if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
                printf("  %-10s p%d@%-3lld %s %s id=%.12s... already "
                       "processed\n",
                       "DUPLICATE", rkm->partition, (long long)rkm->offset,
                       osy_msg_type2str(msg.type), msg.email, msg.id);
                t->duplicates++;
                goto out;
        }
        freeReplyObject(reply);
        reply = NULL;

        /* "Processing" in the smoke path is the decision log line; the
         * rules worker puts its decision function here. */
        printf("  %-10s p%d@%-3lld %s %s id=%.12s...\n", "PROCESSED",
               rkm->partition, (long long)rkm->offset,
               osy_msg_type2str(msg.type), msg.email, msg.id);
        const char *set[] = {"SET", dedup_key, "1", "NX", "PX", DEDUP_TTL_MS};
        err = osy_redis_command_argv(redis, 6, set, NULL, &reply, errstr,
                                     sizeof(errstr));
        if (!err)
                t->processed++;
out:
        if (err)
                fprintf(stderr, "  failed %s p%d@%lld: %s: %s\n", topic,
                        rkm->partition, (long long)rkm->offset,
                        osy_err2str(err), errstr);
        if (reply)
                freeReplyObject(reply);
        osy_msg_clear(&msg);
        return err;
}

int main(int argc, char **argv)
{
        char errstr[OSY_ERRSTR_SIZE];
        struct smoke_opts o = {0};
        struct osy_topic_names topics;
        struct tally t                 = {0};
        osy_kafka_producer_t *producer = NULL;
        osy_kafka_consumer_t *consumer = NULL;
        osy_redis_t *redis             = NULL;
        int status                     = 1;
        int64_t base                   = now_ms() - 60000, deadline;

        if (parse_args(argc, argv, &o) != 0)
                return usage(argv[0]);
        osy_log_init("smoke", OSY_LOG_WARN, NULL);
        if (osy_shutdown_install(errstr, sizeof(errstr)) ||
            osy_topic_names_init(&topics, o.prefix, errstr, sizeof(errstr))) {
                fprintf(stderr, "smoke: %s\n", errstr);
                return 2;
        }

        struct osy_redis_opts ropts   = {.host = o.redis_host,
                                         .port = o.redis_port};
        struct osy_kafka_opts kopts   = {.bootstrap = o.bootstrap,
                                         .client_id = "optsync-smoke"};
        const char *const subscribe[] = {topics.name[OSY_TOPIC_AC_EVENTS],
                                         topics.name[OSY_TOPIC_SF_EVENTS],
                                         NULL};
        if (osy_redis_connect(&redis, &ropts, errstr, sizeof(errstr)) ||
            osy_kafka_producer_new(&producer, &kopts, errstr, sizeof(errstr)) ||
            osy_kafka_consumer_new(&consumer, &kopts, "optsync-smoke",
                                   subscribe, NULL, errstr, sizeof(errstr))) {
                fprintf(stderr, "smoke: %s\n", errstr);
                goto out;
        }

        printf("== publishing (idempotent producer, acks=all)\n");
        for (size_t i = 0; i <= SCRIPT_LEN; i++) {
                /* The last round re-delivers the first event, as AC may:
                 * the same fields give the same id. */
                const struct scripted_event *s = &script[i % SCRIPT_LEN];
                struct osy_msg msg;
                char key[OSY_PARTITION_KEY_BUFSZ], *json = NULL;
                size_t len = 0;
                osy_err_t err =
                    build_event(&o, s, base + (int64_t)(i % SCRIPT_LEN) * 1000,
                                &msg, errstr, sizeof(errstr));
                if (!err)
                        err = osy_partition_key(msg.tenant, msg.email, key,
                                                sizeof(key));
                if (!err)
                        err = osy_msg_encode(&msg, &json, &len, errstr,
                                             sizeof(errstr));
                osy_topic_t topic = osy_msg_type_topic(msg.type);
                if (!err)
                        err = publish(producer, topics.name[topic], key, json,
                                      len, errstr, sizeof(errstr));
                if (err) {
                        fprintf(stderr, "smoke: publish: %s: %s\n",
                                osy_err2str(err), errstr);
                        free(json);
                        osy_msg_clear(&msg);
                        goto out;
                }
                printf("  %-10s %-18s %-22s -> %s key=%s id=%.12s...%s\n",
                       "PUBLISHED", osy_msg_type2str(msg.type), msg.email,
                       topics.name[topic], key, msg.id,
                       i == SCRIPT_LEN ? " (duplicate delivery)" : "");
                printf("  %-10s   (%s)\n", "", s->what);
                free(json);
                osy_msg_clear(&msg);
                t.produced++;
        }
        static const char garbage[] = "{\"v\":1,\"type\":\"ac.event\",oops";
        if (publish(producer, topics.name[OSY_TOPIC_AC_EVENTS], "demo|bad",
                    garbage, sizeof(garbage) - 1, errstr, sizeof(errstr))) {
                fprintf(stderr, "smoke: publish: %s\n", errstr);
                goto out;
        }
        printf("  %-10s a malformed record -> %s\n", "PUBLISHED",
               topics.name[OSY_TOPIC_AC_EVENTS]);
        t.produced++;

        printf("== consuming (group optsync-smoke, cooperative-sticky, "
               "offsets stored after processing)\n");
        deadline = now_ms() + CONSUME_DEADLINE_MS;
        while (t.consumed < t.produced && now_ms() < deadline &&
               !osy_shutdown_requested()) {
                rd_kafka_message_t *rkm =
                    osy_kafka_consumer_poll(consumer, 200);
                if (!rkm)
                        continue;
                t.consumed++;
                if (process(&o, redis, producer, &topics, rkm, &t) == OSY_OK &&
                    osy_kafka_consumer_store(consumer, rkm, errstr,
                                             sizeof(errstr)) != OSY_OK)
                        fprintf(stderr, "  store offset: %s\n", errstr);
                rd_kafka_message_destroy(rkm);
        }
        if (osy_kafka_consumer_commit_sync(consumer, errstr, sizeof(errstr)))
                fprintf(stderr, "smoke: commit: %s\n", errstr);
        else
                printf("== offsets committed\n");

        printf("== result: published %d, consumed %d, processed %d, "
               "duplicates suppressed %d, dead-lettered %d\n",
               t.produced, t.consumed, t.processed, t.duplicates,
               t.dead_lettered);
        status = t.consumed == t.produced && t.processed == (int)SCRIPT_LEN &&
                         t.duplicates == 1 && t.dead_lettered == 1
                     ? 0
                     : 1;
        printf("== smoke path %s\n", status == 0 ? "OK" : "FAILED");
out:
        if (consumer) {
                if (osy_kafka_consumer_close(consumer, errstr, sizeof(errstr)))
                        fprintf(stderr, "smoke: close: %s\n", errstr);
                osy_kafka_consumer_destroy(consumer);
        }
        osy_kafka_producer_destroy(producer);
        osy_redis_destroy(redis);
        return status;
}
