/*
 * rules-bench-gen - the input of bench/rules.sh: seeds the person state of
 * M people in Redis (so no event needs an AC look-up: the steady state of
 * a warm cache), produces N pre-encoded events for them to a topic before
 * anything is timed, and follows an output topic's end to time a stage
 * (kcat or rules) from the outside.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "optsync/envelope.h"
#include "optsync/kafka.h"
#include "optsync/redis.h"
#include "rules_decide.h"
#include "rules_state.h"
#include "rules_worker.h"

#define T0 INT64_C(1795666380000)

struct gen_opts {
        const char *bootstrap, *topic, *tenant, *prefix;
        const char *ready_file; /* --wait: written once it follows */
        long events, persons;
        double timeout_s;
        int redis_port;
        int seed, produce, wait, cpu, redis_floor;
};

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
        fprintf(stderr, "usage: rules-bench-gen [--seed-redis PORT] [--produce "
                        "BOOTSTRAP TOPIC]\n"
                        "                       [--wait BOOTSTRAP OUT_TOPIC "
                        "[--ready FILE] [--timeout S]]\n"
                        "                       [--cpu] [--redis-floor PORT] "
                        "[--events N] [--persons M]\n"
                        "                       [--tenant T] [--prefix P]\n");
}

/* Person p's state: qualified, contact "<p>", no active list yet. */
static int seed(const struct gen_opts *o)
{
        struct osy_redis_opts ro = {.host = "127.0.0.1", .port = o->redis_port};
        osy_redis_t *r           = NULL;
        char errstr[OSY_ERRSTR_SIZE];
        int rc = 1;

        if (osy_redis_connect(&r, &ro, errstr, sizeof(errstr))) {
                fprintf(stderr, "seed: %s\n", errstr);
                return 1;
        }
        for (long p = 0; p < o->persons;) {
                redisReply *replies[1000];
                size_t n = 0;
                for (; p < o->persons && n < 1000; p++, n++) {
                        char email[64], key[OSY_RULES_KEY_BUFSZ], val[128];
                        const char *argv[3] = {"SET", key, val};
                        snprintf(email, sizeof(email), "p%ld@example.com", p);
                        if (osy_rules_state_key(key, sizeof(key), o->prefix,
                                                o->tenant, email))
                                goto out;
                        snprintf(val, sizeof(val), "1|0||3|4|-|%ld|", p);
                        if (osy_redis_pipeline_append_argv(
                                r, 3, argv, NULL, errstr, sizeof(errstr)))
                                goto fail;
                }
                if (osy_redis_pipeline_exec(r, replies, n, errstr,
                                            sizeof(errstr)))
                        goto fail;
                osy_redis_replies_free(replies, n);
        }
        rc = 0;
        goto out;
fail:
        fprintf(stderr, "seed: %s\n", errstr);
out:
        osy_redis_destroy(r);
        return rc;
}

/* Event k of person p, in a cycle of eight: R1, a second list, a tag,
 * unsubscribe (lists left), a soft bounce, R2, an SF tick (known state:
 * no command), an SF untick. */
static int make_event(const struct gen_opts *o, long p, long k,
                      struct osy_msg *m, char *errstr, size_t errstr_size)
{
        char email[64], cid[24];
        int sf = (k % 8) >= 6;

        snprintf(email, sizeof(email), "p%ld@example.com", p);
        snprintf(cid, sizeof(cid), "%ld", p);
        osy_msg_init(m, sf ? OSY_MSG_SF_EVENT : OSY_MSG_AC_EVENT);
        if (osy_msg_set_envelope(m, o->tenant, email,
                                 sf ? OSY_SRC_SF : OSY_SRC_AC, T0 + k * 1000,
                                 errstr, errstr_size))
                return -1;
        if (sf) {
                m->sf_event.kind   = OSY_SF_OPT_OUT_CHANGED;
                m->sf_event.object = OSY_SF_CONTACT;
                m->sf_event.has_opted_out_of_email =
                    k % 8 == 6 ? OSY_TRI_TRUE : OSY_TRI_FALSE;
                return osy_msg_strset(&m->sf_event.record_id,
                                      "0035g00000AbCdEAAZ")
                           ? -1
                           : 0;
        }
        if (osy_msg_strset(&m->ac_event.contact_id, cid))
                return -1;
        m->ac_event.initiated_by = OSY_INIT_PUBLIC;
        switch (k % 8) {
        case 0:
        case 1:
                m->ac_event.kind = OSY_AC_SUBSCRIBE;
                return osy_msg_strset(&m->ac_event.list_id, k % 8 ? "2" : "1")
                           ? -1
                           : 0;
        case 2:
                m->ac_event.kind = OSY_AC_TAG_ADDED;
                return osy_msg_strset(&m->ac_event.tag, "vip") ? -1 : 0;
        case 3:
        case 5:
                m->ac_event.kind = OSY_AC_UNSUBSCRIBE;
                return osy_msg_strset(&m->ac_event.list_id,
                                      k % 8 == 3 ? "1" : "2")
                           ? -1
                           : 0;
        default:
                m->ac_event.kind        = OSY_AC_BOUNCE;
                m->ac_event.bounce_type = OSY_BOUNCE_SOFT;
                return 0;
        }
}

/* The end offsets of every partition of @p topic, summed: one
 * ListOffsets request per leader (offsets_for_times with "latest"), so
 * following an output topic costs the broker little. -1 on failure. */
static long end_offsets(rd_kafka_t *rk, const char *topic, int partitions,
                        int beginning)
{
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new(partitions);
        long sum = 0;

        for (int p = 0; p < partitions; p++)
                rd_kafka_topic_partition_list_add(l, topic, p)->offset =
                    beginning ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END;
        if (rd_kafka_offsets_for_times(rk, l, 5000)) {
                sum = -1;
        } else {
                for (int p = 0; p < l->cnt && sum >= 0; p++)
                        sum = l->elems[p].err || l->elems[p].offset < 0
                                  ? -1
                                  : sum + (long)l->elems[p].offset;
        }
        rd_kafka_topic_partition_list_destroy(l);
        return sum;
}

static int partition_count(rd_kafka_t *rk, const char *topic)
{
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        int n                 = -1;

        if (rkt && !rd_kafka_metadata(rk, 0, rkt, &md, 10000) &&
            md->topic_cnt == 1 && !md->topics[0].err)
                n = md->topics[0].partition_cnt;
        if (md)
                rd_kafka_metadata_destroy(md);
        if (rkt)
                rd_kafka_topic_destroy(rkt);
        return n;
}

struct encoded {
        char *val;
        size_t len;
        char key[OSY_PARTITION_KEY_BUFSZ];
};

/*
 * Produce the whole backlog before anything is timed: lz4-compressed
 * batches of 1,000, as a busy ingest writes them (the embedded broker
 * keeps 5 MB per partition,
 * counted compressed, so 300,000 events fit in 6 partitions), then check
 * that every partition still starts at offset 0: nothing was dropped.
 */
static int produce(const struct gen_opts *o)
{
        struct osy_kafka_opts ko         = {.bootstrap = o->bootstrap,
                                            .client_id = "rules-bench-gen"};
        static const char *const extra[] = {"linger.ms",
                                            "50",
                                            "batch.num.messages",
                                            "1000",
                                            "batch.size",
                                            "1000000",
                                            "compression.codec",
                                            "lz4",
                                            "queue.buffering.max.messages",
                                            "1000000",
                                            NULL};
        osy_kafka_producer_t *pr         = NULL;
        struct encoded *ev = calloc((size_t)o->events, sizeof(*ev));
        char errstr[OSY_ERRSTR_SIZE];
        double t0, t1;
        long base, lo, hi;
        size_t bytes   = 0;
        int partitions = 0, rc = 1;
        rd_kafka_t *rk;

        if (!ev)
                return 1;
        for (long i = 0; i < o->events; i++) {
                struct osy_msg m;
                long p = i % o->persons, k = i / o->persons;
                if (make_event(o, p, k, &m, errstr, sizeof(errstr)) ||
                    osy_msg_encode(&m, &ev[i].val, &ev[i].len, errstr,
                                   sizeof(errstr)) ||
                    osy_partition_key(m.tenant, m.email, ev[i].key,
                                      sizeof(ev[i].key))) {
                        fprintf(stderr, "gen: %s\n", errstr);
                        osy_msg_clear(&m);
                        goto out;
                }
                bytes += ev[i].len;
                osy_msg_clear(&m);
        }
        ko.extra = extra;
        if (osy_kafka_producer_new(&pr, &ko, errstr, sizeof(errstr))) {
                fprintf(stderr, "gen: %s\n", errstr);
                goto out;
        }
        rk = osy_kafka_producer_handle(pr);
        if ((partitions = partition_count(rk, o->topic)) < 1 ||
            (base = end_offsets(rk, o->topic, partitions, 0)) < 0) {
                fprintf(stderr, "gen: cannot read %s\n", o->topic);
                goto out;
        }
        t0 = now_s();
        for (long i = 0; i < o->events; i++) {
                osy_err_t err;
                while ((err = osy_kafka_produce(
                            pr, o->topic, ev[i].key, strlen(ev[i].key),
                            ev[i].val, ev[i].len, NULL, NULL, errstr,
                            sizeof(errstr))) == OSY_ERR_TRANSIENT)
                        osy_kafka_producer_poll(pr, 5);
                if (err) {
                        fprintf(stderr, "gen: %s\n", errstr);
                        goto out;
                }
        }
        if (osy_kafka_producer_flush(pr, 120000, errstr, sizeof(errstr))) {
                fprintf(stderr, "gen: %s\n", errstr);
                goto out;
        }
        t1 = now_s();
        lo = end_offsets(rk, o->topic, partitions, 1);
        hi = end_offsets(rk, o->topic, partitions, 0);
        if (lo != 0 || hi != base + o->events) {
                fprintf(stderr,
                        "gen: %s holds offsets %ld..%ld, not 0..%ld: the "
                        "broker dropped events (fewer EVENTS or more "
                        "PARTITIONS)\n",
                        o->topic, lo, hi, base + o->events);
                goto out;
        }
        printf("produced=%ld bytes=%zu seconds=%.3f per_s=%.0f\n", o->events,
               bytes, t1 - t0, (double)o->events / (t1 - t0));
        rc = 0;
out:
        osy_kafka_producer_destroy(pr);
        for (long i = 0; i < o->events; i++)
                free(ev[i].val);
        free(ev);
        return rc;
}

/*
 * --cpu: the worker's per-event CPU stages in isolation, on this thread,
 * without Kafka or Redis, in batches of 1,000 as the worker takes them:
 * decode the JSON, decide from the seeded state, build and encode the
 * outputs, free the batch. Prints microseconds per event per stage: what
 * bounds one rules worker's main thread, whatever the I/O does.
 */
#define CPU_BATCH 1000

static int cpu_stages(const struct gen_opts *o)
{
        struct encoded *ev           = calloc((size_t)o->events, sizeof(*ev));
        struct osy_msg *dec          = calloc(CPU_BATCH, sizeof(*dec));
        struct osy_rules_decision *d = calloc(CPU_BATCH, sizeof(*d));
        struct osy_rules_ctx ctx     = {0};
        char errstr[OSY_ERRSTR_SIZE];
        double t_dec = 0, t_decide = 0, t_enc = 0, t0, t1;
        size_t out_bytes = 0;
        int rc           = 1;

        if (!ev || !dec || !d)
                goto out;
        for (long i = 0; i < o->events; i++) {
                struct osy_msg m;
                long p = i % o->persons, k = i / o->persons;
                if (make_event(o, p, k, &m, errstr, sizeof(errstr)) ||
                    osy_msg_encode(&m, &ev[i].val, &ev[i].len, errstr,
                                   sizeof(errstr))) {
                        fprintf(stderr, "cpu: %s\n", errstr);
                        osy_msg_clear(&m);
                        goto out;
                }
                osy_msg_clear(&m);
        }
        for (long b0 = 0; b0 < o->events; b0 += CPU_BATCH) {
                long n =
                    o->events - b0 < CPU_BATCH ? o->events - b0 : CPU_BATCH;
                t0 = now_s();
                for (long i = 0; i < n; i++)
                        if (osy_msg_decode(ev[b0 + i].val, ev[b0 + i].len,
                                           &dec[i], errstr, sizeof(errstr))) {
                                fprintf(stderr, "cpu: decode: %s\n", errstr);
                                goto out;
                        }
                t1 = now_s();
                t_dec += t1 - t0;
                /* Each from the seeded state, as a warm cache holds it. */
                for (long i = 0; i < n; i++) {
                        struct osy_rules_person st = {0};
                        char val[128];
                        int len = snprintf(val, sizeof(val), "1|0||3|4|-|%ld|",
                                           (b0 + i) % o->persons);
                        if (osy_rules_person_decode(val, (size_t)len, &st,
                                                    errstr, sizeof(errstr)) ||
                            osy_rules_decide(&ctx, &dec[i], &st, NULL, 0, &d[i],
                                             errstr, sizeof(errstr))) {
                                fprintf(stderr, "cpu: decide: %s\n", errstr);
                                osy_rules_person_clear(&st);
                                goto out;
                        }
                        osy_rules_person_clear(&st);
                }
                t0 = now_s();
                t_decide += t0 - t1;
                for (long i = 0; i < n; i++) {
                        struct osy_msg sf, ac, audit;
                        struct osy_msg *outs[3] = {&sf, &ac, &audit};
                        if (osy_rules_build_outputs(&dec[i], &d[i], &sf, &ac,
                                                    &audit, errstr,
                                                    sizeof(errstr))) {
                                fprintf(stderr, "cpu: outputs: %s\n", errstr);
                                goto out;
                        }
                        for (int k = 0; k < 3; k++) {
                                char *json = NULL;
                                size_t len = 0;
                                if (outs[k]->type &&
                                    osy_msg_encode(outs[k], &json, &len, errstr,
                                                   sizeof(errstr)) == OSY_OK)
                                        out_bytes += len;
                                free(json);
                                osy_msg_clear(outs[k]);
                        }
                        osy_rules_decision_clear(&d[i]);
                        osy_msg_clear(&dec[i]);
                }
                t_enc += now_s() - t0;
        }
        printf("cpu_us_per_event decode=%.2f decide=%.2f encode=%.2f "
               "total=%.2f out_bytes_per_event=%.0f\n",
               t_dec * 1e6 / (double)o->events,
               t_decide * 1e6 / (double)o->events,
               t_enc * 1e6 / (double)o->events,
               (t_dec + t_decide + t_enc) * 1e6 / (double)o->events,
               (double)out_bytes / (double)o->events);
        rc = 0;
out:
        for (long i = 0; ev && i < o->events; i++)
                free(ev[i].val);
        for (long i = 0; dec && d && i < CPU_BATCH; i++) {
                osy_msg_clear(&dec[i]);
                osy_rules_decision_clear(&d[i]);
        }
        free(ev);
        free(dec);
        free(d);
        return rc;
}

/*
 * --redis-floor PORT: Redis' own time per event (INFO commandstats, so
 * neither the client nor the network counts) for the rules worker's Redis
 * work on the seeded people, in batches of 1,000 events as the worker
 * sends it: the state read (one MGET), the state write (the worker's apply
 * script, EVALSHA over chunks of 200) and the dedup entries (MULTI, HSET,
 * PEXPIRE, EXEC). For scale, two cheaper variants that the worker cannot
 * use: the write without the script (SET ... PX ... GET pipelined, which
 * loses the atomic compare-and-set) and one plain GET per person (the
 * least any per-person command costs). What no change to the worker can
 * save, whatever it does with its own CPU.
 */
#define FLOOR_BATCH 1000
#define FLOOR_CHUNK 200 /* the worker's APPLY_CHUNK */
#define FLOOR_TTL_MS "2592000000"

enum floor_phase {
        F_MGET,
        F_APPLY,
        F_SETGET,
        F_DEDUP,
        F_GET,
        F_PHASES
};

/* Sum of usec over INFO commandstats, but for INFO and CONFIG. */
static int server_us(osy_redis_t *r, double *us, char *errstr,
                     size_t errstr_size)
{
        const char *argv[2] = {"INFO", "commandstats"};
        redisReply *rep     = NULL;
        const char *line;

        *us = 0;
        if (osy_redis_command_argv(r, 2, argv, NULL, &rep, errstr, errstr_size))
                return -1;
        for (line = rep->str; line && *line;) {
                const char *usec = strstr(line, ",usec=");
                const char *eol  = strchr(line, '\n');
                if (!strncmp(line, "cmdstat_", 8) &&
                    strncmp(line, "cmdstat_info", 12) &&
                    strncmp(line, "cmdstat_config", 14) && usec &&
                    (!eol || usec < eol))
                        *us += strtod(usec + 6, NULL);
                line = eol ? eol + 1 : NULL;
        }
        freeReplyObject(rep);
        return 0;
}

/* One batch of @p phase over events [b0, b0 + n), as one pipeline. */
static int floor_batch(osy_redis_t *r, const struct gen_opts *o,
                       enum floor_phase phase, char **keys, const char *sha,
                       long b0, long n, long version, long salt, char *errstr,
                       size_t errstr_size)
{
        enum {
                ARGS = 3 + 3 * FLOOR_BATCH + 8
        };
        static const char *argv[ARGS];
        static char vals[FLOOR_BATCH][64], nums[FLOOR_BATCH][24];
        static char ids[FLOOR_BATCH][OSY_ID_BUFSZ];
        char seen[OSY_RULES_KEY_BUFSZ], nk[16];
        redisReply *rep[FLOOR_BATCH / FLOOR_CHUNK + 4 + FLOOR_BATCH] = {0};
        size_t ncmds                                                 = 0;
        int argc                                                     = 0;

        for (long i = 0; i < n; i++) {
                long e = b0 + i, p = e % o->persons;
                snprintf(nums[i], sizeof(nums[i]), "%ld", version + e);
                snprintf(vals[i], sizeof(vals[i]), "1|%ld|%ld|3|4|-|%ld|1",
                         version + e, e, p);
                snprintf(ids[i], sizeof(ids[i]), "%016lx%0*lx",
                         (unsigned long)salt, OSY_ID_LEN - 16,
                         (unsigned long)e);
        }
#define FLOOR_APPEND()                                                         \
        do {                                                                   \
                if (osy_redis_pipeline_append_argv(r, argc, argv, NULL,        \
                                                   errstr, errstr_size))       \
                        return -1;                                             \
                ncmds++;                                                       \
                argc = 0;                                                      \
        } while (0)
        switch (phase) {
        case F_MGET:
                argv[argc++] = "MGET";
                for (long i = 0; i < n; i++)
                        argv[argc++] = keys[(b0 + i) % o->persons];
                FLOOR_APPEND();
                break;
        case F_APPLY:
                for (long c0 = 0; c0 < n; c0 += FLOOR_CHUNK) {
                        long cn = n - c0 < FLOOR_CHUNK ? n - c0 : FLOOR_CHUNK;
                        snprintf(nk, sizeof(nk), "%ld", cn);
                        argv[argc++] = "EVALSHA";
                        argv[argc++] = sha;
                        argv[argc++] = nk;
                        for (long k = c0; k < c0 + cn; k++)
                                argv[argc++] = keys[(b0 + k) % o->persons];
                        argv[argc++] = FLOOR_TTL_MS;
                        for (long k = c0; k < c0 + cn; k++) {
                                argv[argc++] = vals[k];
                                argv[argc++] = nums[k];
                        }
                        FLOOR_APPEND();
                }
                break;
        case F_SETGET:
        case F_GET:
                for (long i = 0; i < n; i++) {
                        argv[argc++] = phase == F_GET ? "GET" : "SET";
                        argv[argc++] = keys[(b0 + i) % o->persons];
                        if (phase == F_SETGET) {
                                argv[argc++] = vals[i];
                                argv[argc++] = "PX";
                                argv[argc++] = FLOOR_TTL_MS;
                                argv[argc++] = "GET";
                        }
                        FLOOR_APPEND();
                }
                break;
        default: /* F_DEDUP: the events' second, as the worker buckets */
                if (osy_rules_seen_key(seen, sizeof(seen), o->prefix,
                                       T0 + (b0 / o->persons) * 1000)) {
                        snprintf(errstr, errstr_size, "prefix too long");
                        return -1;
                }
                argv[argc++] = "MULTI";
                FLOOR_APPEND();
                argv[argc++] = "HSET";
                argv[argc++] = seen;
                for (long i = 0; i < n; i++) {
                        argv[argc++] = ids[i];
                        argv[argc++] = "1";
                }
                FLOOR_APPEND();
                argv[argc++] = "PEXPIRE";
                argv[argc++] = seen;
                argv[argc++] = FLOOR_TTL_MS;
                FLOOR_APPEND();
                argv[argc++] = "EXEC";
                FLOOR_APPEND();
                break;
        }
#undef FLOOR_APPEND
        if (osy_redis_pipeline_exec(r, rep, ncmds, errstr, errstr_size))
                return -1;
        for (size_t c = 0; c < ncmds; c++)
                if (osy_redis_reply_err(rep[c], errstr, errstr_size)) {
                        osy_redis_replies_free(rep, ncmds);
                        return -1;
                }
        osy_redis_replies_free(rep, ncmds);
        return 0;
}

static int redis_floor(const struct gen_opts *o)
{
        static const char *const names[F_PHASES] = {"read_mget", "apply_script",
                                                    "write_without_script",
                                                    "dedup", "plain_get"};
        struct osy_redis_opts ro = {.host = "127.0.0.1", .port = o->redis_port};
        osy_redis_t *r           = NULL;
        osy_redis_script_t *apply = NULL;
        char **keys               = calloc((size_t)o->persons, sizeof(*keys));
        char errstr[OSY_ERRSTR_SIZE] = "out of memory";
        double us[F_PHASES];
        /* Event ids new to Redis in every run, as the worker's are: an
         * HSET that adds a field costs more than one that overwrites. */
        long salt = (long)(wall_s() * 1e6);
        int rc    = 1;

        if (!keys || osy_redis_connect(&r, &ro, errstr, sizeof(errstr)) ||
            osy_redis_script_new(&apply, osy_rules_apply_lua, errstr,
                                 sizeof(errstr)) ||
            osy_redis_script_load(r, apply, errstr, sizeof(errstr)))
                goto fail;
        for (long p = 0; p < o->persons; p++) {
                char email[64], key[OSY_RULES_KEY_BUFSZ];
                snprintf(email, sizeof(email), "p%ld@example.com", p);
                if (osy_rules_state_key(key, sizeof(key), o->prefix, o->tenant,
                                        email) ||
                    !(keys[p] = strdup(key)))
                        goto fail;
        }
        for (int ph = 0; ph < F_PHASES; ph++) {
                const char *reset[2] = {"CONFIG", "RESETSTAT"};
                redisReply *rep      = NULL;
                /* Every phase writes newer versions than the last. */
                long version = T0 + (long)(ph + 1) * o->events;
                if (osy_redis_command_argv(r, 2, reset, NULL, &rep, errstr,
                                           sizeof(errstr)))
                        goto fail;
                freeReplyObject(rep);
                for (long b0 = 0; b0 < o->events; b0 += FLOOR_BATCH) {
                        long n = o->events - b0 < FLOOR_BATCH ? o->events - b0
                                                              : FLOOR_BATCH;
                        if (floor_batch(r, o, (enum floor_phase)ph, keys,
                                        osy_redis_script_sha(apply), b0, n,
                                        version, salt, errstr, sizeof(errstr)))
                                goto fail;
                }
                if (server_us(r, &us[ph], errstr, sizeof(errstr)))
                        goto fail;
                us[ph] /= (double)o->events;
        }
        printf("redis_us_per_event");
        for (int ph = 0; ph < F_PHASES; ph++)
                printf(" %s=%.2f", names[ph], us[ph]);
        printf(" worker_total=%.2f\n", us[F_MGET] + us[F_APPLY] + us[F_DEDUP]);
        rc = 0;
        goto out;
fail:
        fprintf(stderr, "redis-floor: %s\n", errstr);
out:
        for (long p = 0; keys && p < o->persons; p++)
                free(keys[p]);
        free(keys);
        osy_redis_script_destroy(apply);
        osy_redis_destroy(r);
        return rc;
}

/*
 * Follow @p o->topic's end until it has grown by o->events: a consumer
 * and producer stage is done when its last output is acknowledged (the
 * broker moves a partition's end when it appends). Writes "ready" to
 * o->ready_file once the starting point is known, then prints the wall
 * clock (CLOCK_REALTIME, seconds) of the first growth and of the end.
 */
static int wait_output(const struct gen_opts *o)
{
        struct osy_kafka_opts ko = {.bootstrap = o->bootstrap,
                                    .client_id = "rules-bench-wait"};
        osy_kafka_producer_t *pr = NULL;
        char errstr[OSY_ERRSTR_SIZE];
        double first = 0, done = 0, deadline;
        long base, cur;
        int partitions, rc = 1;
        rd_kafka_t *rk;

        if (osy_kafka_producer_new(&pr, &ko, errstr, sizeof(errstr))) {
                fprintf(stderr, "wait: %s\n", errstr);
                return 1;
        }
        rk = osy_kafka_producer_handle(pr);
        if ((partitions = partition_count(rk, o->topic)) < 1 ||
            (base = end_offsets(rk, o->topic, partitions, 0)) < 0) {
                fprintf(stderr, "wait: cannot read %s\n", o->topic);
                goto out;
        }
        cur = base;
        if (o->ready_file) {
                FILE *f = fopen(o->ready_file, "w");
                if (!f || fputs("ready\n", f) < 0 || fclose(f)) {
                        fprintf(stderr, "wait: cannot write %s\n",
                                o->ready_file);
                        goto out;
                }
        }
        deadline = now_s() + o->timeout_s;
        while (cur - base < o->events) {
                struct timespec ts = {0, 5 * 1000000L}; /* 5 ms */
                long n             = end_offsets(rk, o->topic, partitions, 0);
                if (n > cur) {
                        cur = n;
                        if (!first && cur > base)
                                first = wall_s();
                }
                if (now_s() > deadline) {
                        fprintf(stderr, "wait: %s grew by %ld of %ld\n",
                                o->topic, cur - base, o->events);
                        goto out;
                }
                if (cur - base < o->events)
                        nanosleep(&ts, NULL);
        }
        done = wall_s();
        printf("first=%.6f done=%.6f\n", first, done);
        rc = 0;
out:
        osy_kafka_producer_destroy(pr);
        return rc;
}

int main(int argc, char **argv)
{
        struct gen_opts o = {.tenant    = "acme",
                             .prefix    = "optsync",
                             .events    = 100000,
                             .persons   = 20000,
                             .timeout_s = 600};
        char *end;

        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--seed-redis") && i + 1 < argc) {
                        o.seed       = 1;
                        o.redis_port = (int)strtol(argv[++i], &end, 10);
                } else if (!strcmp(argv[i], "--produce") && i + 2 < argc) {
                        o.produce   = 1;
                        o.bootstrap = argv[++i];
                        o.topic     = argv[++i];
                } else if (!strcmp(argv[i], "--events") && i + 1 < argc) {
                        o.events = strtol(argv[++i], &end, 10);
                } else if (!strcmp(argv[i], "--persons") && i + 1 < argc) {
                        o.persons = strtol(argv[++i], &end, 10);
                } else if (!strcmp(argv[i], "--wait") && i + 2 < argc) {
                        o.wait      = 1;
                        o.bootstrap = argv[++i];
                        o.topic     = argv[++i];
                } else if (!strcmp(argv[i], "--cpu")) {
                        o.cpu = 1;
                } else if (!strcmp(argv[i], "--redis-floor") && i + 1 < argc) {
                        o.redis_floor = 1;
                        o.redis_port  = (int)strtol(argv[++i], &end, 10);
                } else if (!strcmp(argv[i], "--ready") && i + 1 < argc) {
                        o.ready_file = argv[++i];
                } else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
                        o.timeout_s = strtod(argv[++i], &end);
                } else if (!strcmp(argv[i], "--tenant") && i + 1 < argc) {
                        o.tenant = argv[++i];
                } else if (!strcmp(argv[i], "--prefix") && i + 1 < argc) {
                        o.prefix = argv[++i];
                } else {
                        usage();
                        return 2;
                }
        }
        if ((!o.seed && !o.produce && !o.wait && !o.cpu && !o.redis_floor) ||
            o.events < 1 || o.persons < 1 || o.timeout_s <= 0) {
                usage();
                return 2;
        }
        if ((o.seed || o.redis_floor) && seed(&o))
                return 1;
        if (o.produce && produce(&o))
                return 1;
        if (o.wait && wait_output(&o))
                return 1;
        if (o.cpu && cpu_stages(&o))
                return 1;
        if (o.redis_floor && redis_floor(&o))
                return 1;
        return 0;
}
