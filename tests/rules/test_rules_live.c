/*
 * test_rules_live.c - the `rules` binary end to end, through the embedded
 * broker and a real redis-server: every rule from event to command,
 * poison to the DLQ, duplicates and replays giving one command,
 * out-of-order events giving the newest state, Redis going away, SIGTERM,
 * and three group members killed and added mid-stream with every event
 * decided exactly once in effect.
 */
#include "osy_test.h"
#include "osy_test_kafka.h"
#include "osy_test_sandbox.h"
#include "redis_restart.h"

#include <cjson/cJSON.h>

#include "optsync/envelope.h"
#include "optsync/kafka.h"
#include "optsync/redis.h"
#include "rules_state.h"

#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define RULES_BIN OSY_BINARY_DIR "/workers/rules/rules"
#define PARTITIONS 4
#define T0 INT64_C(1795666380000)
#define MAX_WORKERS 8
#define WAIT_MS 25000
#define QUAL_TAGS "added-to-salesforce-contact"

/* Everything one case runs against. */
struct env {
        struct osy_test_kafka kafka;
        struct osy_test_redis redis;
        char *dir;
        osy_redis_t *r;
        osy_kafka_producer_t *prod;
        osy_kafka_consumer_t *col;
        struct osy_test_sandbox sbx;
        char tenants_file[700];
        pid_t workers[MAX_WORKERS];
        int n_workers;
        char group[64];
        /* Every output message seen, decoded. */
        struct osy_msg *got;
        size_t n_got, cap_got;
};

static struct env E;

static int setup(void **state)
{
        struct osy_redis_opts ro = {0};
        struct osy_kafka_opts ko = {0};
        const char *topics[] = {"optsync.sf.commands", "optsync.ac.commands",
                                "optsync.audit", "optsync.dlq", NULL};
        char errstr[OSY_ERRSTR_SIZE], group[64];
        (void)state;

        memset(&E, 0, sizeof(E));
        if (osy_test_kafka_start(&E.kafka, 1, PARTITIONS) ||
            osy_test_redis_start(&E.redis) || !(E.dir = osy_test_mkdtemp("rl")))
                return -1;
        ro.host = "127.0.0.1";
        ro.port = E.redis.port;
        if (osy_redis_connect(&E.r, &ro, errstr, sizeof(errstr)))
                return -1;
        ko.bootstrap        = E.kafka.bootstrap;
        ko.client_id        = "test";
        ko.extra            = osy_test_kafka_fast_props;
        ko.close_timeout_ms = 5000;
        if (osy_kafka_producer_new(&E.prod, &ko, errstr, sizeof(errstr)))
                return -1;
        snprintf(group, sizeof(group), "collector-%d", (int)getpid());
        if (osy_kafka_consumer_new(&E.col, &ko, group, topics, NULL, errstr,
                                   sizeof(errstr)))
                return -1;
        snprintf(E.group, sizeof(E.group), "rules-%d", (int)getpid());
        return 0;
}

static void stop_workers(void)
{
        for (int i = 0; i < E.n_workers; i++)
                if (E.workers[i] > 0)
                        osy_test_stop(E.workers[i], 15000);
        E.n_workers = 0;
}

static int teardown(void **state)
{
        (void)state;
        stop_workers();
        osy_test_sandbox_stop(&E.sbx);
        osy_kafka_consumer_destroy(E.col);
        osy_kafka_producer_destroy(E.prod);
        osy_redis_destroy(E.r);
        for (size_t i = 0; i < E.n_got; i++)
                osy_msg_clear(&E.got[i]);
        free(E.got);
        osy_test_redis_stop(&E.redis);
        osy_test_kafka_stop(&E.kafka);
        /* RULES_TEST_KEEP=1 keeps the workers' logs for a post-mortem. */
        if (E.dir && getenv("RULES_TEST_KEEP"))
                fprintf(stderr, "worker logs kept in %s\n", E.dir);
        else if (E.dir)
                osy_test_rmtree(E.dir);
        free(E.dir);
        return 0;
}

/* ---- the worker process ---------------------------------------------------
 */

static void set_env(const char *group, const char *tenants_file)
{
        char port[16];

        snprintf(port, sizeof(port), "%d", E.redis.port);
        setenv("OPTSYNC_KAFKA_BOOTSTRAP", E.kafka.bootstrap, 1);
        setenv("OPTSYNC_REDIS_PORT", port, 1);
        setenv("OPTSYNC_ADMIN_ADDR", "127.0.0.1", 1);
        setenv("OPTSYNC_ADMIN_PORT", "0", 1);
        setenv("OPTSYNC_KAFKA_GROUP_ID", group, 1);
        setenv("OPTSYNC_RULES_SESSION_TIMEOUT", "3s", 1);
        setenv("OPTSYNC_SHUTDOWN_GRACE", "10s", 1);
        setenv("OPTSYNC_RETRY_BASE", "50ms", 1);
        setenv("OPTSYNC_RETRY_MAX_DELAY", "400ms", 1);
        setenv("OPTSYNC_LOG_LEVEL", "info", 1);
        if (tenants_file)
                setenv("OPTSYNC_TENANTS_FILE", tenants_file, 1);
        else
                unsetenv("OPTSYNC_TENANTS_FILE");
}

static int start_worker_in(const char *group)
{
        char log[700];
        char *const argv[] = {RULES_BIN, NULL};
        int idx            = E.n_workers;

        assert_true(idx < MAX_WORKERS);
        set_env(group, E.tenants_file[0] ? E.tenants_file : NULL);
        snprintf(log, sizeof(log), "%s/rules-%d.log", E.dir, idx);
        E.workers[idx] = osy_test_spawn(argv, log);
        assert_true(E.workers[idx] > 0);
        E.n_workers++;
        return idx;
}

static int start_worker(void)
{
        return start_worker_in(E.group);
}

static void kill_worker(int idx)
{
        kill(E.workers[idx], SIGKILL);
        waitpid(E.workers[idx], NULL, 0);
        E.workers[idx] = -1;
}

/* ---- inputs
 * ------------------------------------------------------------------ */

static void email_of(int person, char *buf, size_t size)
{
        snprintf(buf, size, "p%d@example.com", person);
}

/* Seed a person's state: qualified, these active lists (csv), SF side
 * as given ('-', '0', '1'). */
static void seed(int person, const char *lists, char sf)
{
        char email[64], key[OSY_RULES_KEY_BUFSZ], errstr[256];
        char val[OSY_RULES_LISTS_MAX * 8 + 64];
        const char *argv[3];
        redisReply *reply;

        email_of(person, email, sizeof(email));
        assert_int_equal(
            osy_rules_state_key(key, sizeof(key), "optsync", "acme", email),
            OSY_OK);
        snprintf(val, sizeof(val), "1|0||3|4|%c|c%d|%s", sf, person, lists);
        argv[0] = "SET";
        argv[1] = key;
        argv[2] = val;
        assert_int_equal(osy_redis_command_argv(E.r, 3, argv, NULL, &reply,
                                                errstr, sizeof(errstr)),
                         OSY_OK);
        freeReplyObject(reply);
}

/* The person's state as stored ("" when none). */
static void state_of(int person, char *buf, size_t size)
{
        char email[64], key[OSY_RULES_KEY_BUFSZ], errstr[256];
        const char *argv[2];
        redisReply *reply;

        email_of(person, email, sizeof(email));
        assert_int_equal(
            osy_rules_state_key(key, sizeof(key), "optsync", "acme", email),
            OSY_OK);
        argv[0] = "GET";
        argv[1] = key;
        assert_int_equal(osy_redis_command_argv(E.r, 2, argv, NULL, &reply,
                                                errstr, sizeof(errstr)),
                         OSY_OK);
        snprintf(buf, size, "%s",
                 reply->type == REDIS_REPLY_STRING ? reply->str : "");
        freeReplyObject(reply);
}

/* Wait (up to WAIT_MS) until the person's state names event @p id: its
 * batch is written. The state last seen is left in @p buf. */
static void wait_state_names(int person, const char *id, char *buf, size_t size)
{
        for (int64_t end = osy_test_now_ms() + WAIT_MS;;) {
                state_of(person, buf, size);
                if (strstr(buf, id) || osy_test_now_ms() > end)
                        return;
                osy_test_sleep_ms(50);
        }
}

static void produce_raw(const char *topic, const char *key, const void *val,
                        size_t len)
{
        char errstr[OSY_ERRSTR_SIZE];
        osy_err_t err;

        while ((err = osy_kafka_produce(
                    E.prod, topic, key, key ? strlen(key) : 0, val, len, NULL,
                    NULL, errstr, sizeof(errstr))) == OSY_ERR_TRANSIENT)
                osy_kafka_producer_poll(E.prod, 10);
        assert_int_equal(err, OSY_OK);
}

/* Encode and produce; the id goes to @p id (may be NULL). */
static void produce_msg(struct osy_msg *m, char *id)
{
        char errstr[OSY_ERRSTR_SIZE], key[OSY_PARTITION_KEY_BUFSZ], *js;
        size_t len;

        assert_int_equal(osy_msg_finalize(m, errstr, sizeof(errstr)), OSY_OK);
        assert_int_equal(osy_msg_encode(m, &js, &len, errstr, sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(
            osy_partition_key(m->tenant, m->email, key, sizeof(key)), OSY_OK);
        produce_raw(m->type == OSY_MSG_AC_EVENT ? "optsync.ac.events"
                                                : "optsync.sf.events",
                    key, js, len);
        if (id)
                memcpy(id, m->id, OSY_ID_BUFSZ);
        free(js);
}

static void flush_inputs(void)
{
        char errstr[OSY_ERRSTR_SIZE];
        assert_int_equal(
            osy_kafka_producer_flush(E.prod, 10000, errstr, sizeof(errstr)),
            OSY_OK);
}

/* An AC event of person @p person at T0 + @p at. */
static void ac_event(int person, osy_ac_kind_t kind, const char *list,
                     osy_bounce_t bounce, const char *tags, int64_t at,
                     int echo, char *id)
{
        struct osy_msg m;
        char email[64], errstr[OSY_ERRSTR_SIZE], cid[16];

        email_of(person, email, sizeof(email));
        /* AC contact ids: the person's number (the sandbox fixtures use
         * the same); seeded states say "c<n>". */
        snprintf(cid, sizeof(cid), "%d", person);
        osy_msg_init(&m, OSY_MSG_AC_EVENT);
        assert_int_equal(osy_msg_set_envelope(&m, "acme", email, OSY_SRC_AC,
                                              T0 + at, errstr, sizeof(errstr)),
                         OSY_OK);
        m.ac_event.kind = kind;
        assert_int_equal(osy_msg_strset(&m.ac_event.contact_id, cid), OSY_OK);
        if (list)
                assert_int_equal(osy_msg_strset(&m.ac_event.list_id, list),
                                 OSY_OK);
        m.ac_event.bounce_type = bounce;
        if (tags)
                assert_int_equal(osy_ac_event_set_tags_csv(&m.ac_event, tags),
                                 OSY_OK);
        m.ac_event.initiated_by = echo ? OSY_INIT_API : OSY_INIT_PUBLIC;
        m.ac_event.echo         = echo;
        produce_msg(&m, id);
        osy_msg_clear(&m);
}

static void sf_event(int person, const char *record, int opted, int64_t at,
                     int echo, char *id)
{
        struct osy_msg m;
        char email[64], errstr[OSY_ERRSTR_SIZE];

        email_of(person, email, sizeof(email));
        osy_msg_init(&m, OSY_MSG_SF_EVENT);
        assert_int_equal(osy_msg_set_envelope(&m, "acme", email, OSY_SRC_SF,
                                              T0 + at, errstr, sizeof(errstr)),
                         OSY_OK);
        m.sf_event.kind   = OSY_SF_OPT_OUT_CHANGED;
        m.sf_event.object = record[2] == 'Q' ? OSY_SF_LEAD : OSY_SF_CONTACT;
        assert_int_equal(osy_msg_strset(&m.sf_event.record_id, record), OSY_OK);
        m.sf_event.has_opted_out_of_email =
            opted ? OSY_TRI_TRUE : OSY_TRI_FALSE;
        m.sf_event.echo = echo;
        produce_msg(&m, id);
        osy_msg_clear(&m);
}

/* ---- outputs
 * ----------------------------------------------------------------- */

static void collect(int timeout_ms)
{
        int64_t end = osy_test_now_ms() + timeout_ms;

        do {
                rd_kafka_message_t *rkm = osy_kafka_consumer_poll(E.col, 50);
                char errstr[OSY_ERRSTR_SIZE];

                if (!rkm)
                        continue;
                if (E.n_got == E.cap_got) {
                        E.cap_got = E.cap_got ? E.cap_got * 2 : 256;
                        E.got     = realloc(E.got, E.cap_got * sizeof(*E.got));
                        assert_non_null(E.got);
                }
                if (osy_msg_decode(rkm->payload, rkm->len, &E.got[E.n_got],
                                   errstr, sizeof(errstr)))
                        fail_msg("undecodable output: %s", errstr);
                E.n_got++;
                rd_kafka_message_destroy(rkm);
        } while (osy_test_now_ms() < end);
}

/* Outputs of @p type (OSY_MSG_NONE: any) about event @p ref. */
static size_t count_about(osy_msg_type_t type, const char *ref)
{
        size_t n = 0;
        for (size_t i = 0; i < E.n_got; i++) {
                const struct osy_msg *m = &E.got[i];
                const char *about = m->type == OSY_MSG_AUDIT ? m->audit.ref_id
                                    : m->type == OSY_MSG_SF_COMMAND
                                        ? m->sf_command.cause_event_id
                                    : m->type == OSY_MSG_AC_COMMAND
                                        ? m->ac_command.cause_event_id
                                        : "";
                if ((type == OSY_MSG_NONE || m->type == type) &&
                    !strcmp(about, ref))
                        n++;
        }
        return n;
}

static size_t count_type(osy_msg_type_t type)
{
        size_t n = 0;
        for (size_t i = 0; i < E.n_got; i++)
                n += E.got[i].type == type;
        return n;
}

/* Collect until every id in @p ids has an audit record, or time is up. */
static void wait_audits(char (*ids)[OSY_ID_BUFSZ], size_t n, int timeout_ms)
{
        int64_t end = osy_test_now_ms() + timeout_ms;

        for (;;) {
                size_t have = 0;
                for (size_t i = 0; i < n; i++)
                        have += count_about(OSY_MSG_AUDIT, ids[i]) > 0;
                if (have == n)
                        return;
                if (osy_test_now_ms() > end)
                        fail_msg("only %zu of %zu events audited", have, n);
                collect(200);
        }
}

static const struct osy_msg *find(osy_msg_type_t type, const char *ref)
{
        for (size_t i = 0; i < E.n_got; i++) {
                const struct osy_msg *m = &E.got[i];
                if (m->type != type)
                        continue;
                if ((type == OSY_MSG_AUDIT && !strcmp(m->audit.ref_id, ref)) ||
                    (type == OSY_MSG_SF_COMMAND &&
                     !strcmp(m->sf_command.cause_event_id, ref)) ||
                    (type == OSY_MSG_AC_COMMAND &&
                     !strcmp(m->ac_command.cause_event_id, ref)))
                        return m;
        }
        return NULL;
}

/*
 * find(), collecting for up to WAIT_MS until it is there: a decision's
 * outputs go to different topics, so the test's consumer may see its
 * audit record before its command.
 */
static const struct osy_msg *find_wait(osy_msg_type_t type, const char *ref)
{
        int64_t end = osy_test_now_ms() + WAIT_MS;
        const struct osy_msg *m;

        while (!(m = find(type, ref)) && osy_test_now_ms() < end)
                collect(100);
        return m;
}

static void expect_audit(const char *ref, osy_rule_t rule,
                         osy_outcome_t outcome)
{
        const struct osy_msg *a = find(OSY_MSG_AUDIT, ref);
        assert_non_null(a);
        if (a->audit.rule != rule || a->audit.outcome != outcome)
                fail_msg("audit %s %s, want %s %s (%s)",
                         osy_rule2str(a->audit.rule),
                         osy_outcome2str(a->audit.outcome), osy_rule2str(rule),
                         osy_outcome2str(outcome),
                         a->audit.detail ? a->audit.detail : "");
        assert_int_equal(a->audit.stage, OSY_STAGE_RULES);
}

static void expect_sf(const char *ref, osy_rule_t rule, int opted)
{
        const struct osy_msg *c = find_wait(OSY_MSG_SF_COMMAND, ref);
        assert_non_null(c);
        assert_int_equal(c->sf_command.rule, rule);
        assert_int_equal(c->sf_command.has_opted_out_of_email, opted);
        assert_string_equal(c->sf_command.version.tie, ref);
        assert_int_equal(count_about(OSY_MSG_SF_COMMAND, ref), 1);
}

/* ---- every rule end to end
 * --------------------------------------------------- */

static void r1_subscribe_from_zero_commands_sf_false(void **s)
{
        char ids[2][OSY_ID_BUFSZ];
        (void)s;

        seed(1, "", '-');
        start_worker();
        ac_event(1, OSY_AC_SUBSCRIBE, "7", 0, NULL, 0, 0, ids[0]);
        /* A second list: nothing more. */
        ac_event(1, OSY_AC_SUBSCRIBE, "8", 0, NULL, 1000, 0, ids[1]);
        flush_inputs();
        wait_audits(ids, 2, WAIT_MS);
        expect_audit(ids[0], OSY_RULE_R1, OSY_OUTCOME_APPLIED);
        expect_sf(ids[0], OSY_RULE_R1, 0);
        expect_audit(ids[1], OSY_RULE_NONE, OSY_OUTCOME_SKIPPED);
        assert_int_equal(count_about(OSY_MSG_SF_COMMAND, ids[1]), 0);
        assert_int_equal(count_type(OSY_MSG_AC_COMMAND), 0);
}

static void r2_last_unsubscribe_commands_sf_true(void **s)
{
        char ids[2][OSY_ID_BUFSZ], st[256];
        (void)s;

        seed(2, "7,8", '0');
        start_worker();
        ac_event(2, OSY_AC_UNSUBSCRIBE, "7", 0, NULL, 0, 0, ids[0]);
        ac_event(2, OSY_AC_UNSUBSCRIBE, "8", 0, NULL, 1000, 0, ids[1]);
        flush_inputs();
        wait_audits(ids, 2, WAIT_MS);
        expect_audit(ids[0], OSY_RULE_NONE, OSY_OUTCOME_SKIPPED);
        expect_audit(ids[1], OSY_RULE_R2, OSY_OUTCOME_APPLIED);
        expect_sf(ids[1], OSY_RULE_R2, 1);
        assert_int_equal(count_type(OSY_MSG_SF_COMMAND), 1);
        state_of(2, st, sizeof(st));
        assert_non_null(strstr(st, "|1|2|")); /* SF opted out, no lists */
        assert_true(st[strlen(st) - 1] == '|');
}

static void r3_hard_bounce_commands_sf_true(void **s)
{
        char ids[2][OSY_ID_BUFSZ];
        (void)s;

        /* Nothing cached: the event's contact[tags] qualify it, and a
         * hard bounce needs no list look-up. */
        start_worker();
        ac_event(3, OSY_AC_BOUNCE, NULL, OSY_BOUNCE_SOFT, QUAL_TAGS, 0, 0,
                 ids[0]);
        ac_event(3, OSY_AC_BOUNCE, NULL, OSY_BOUNCE_HARD, QUAL_TAGS, 1000, 0,
                 ids[1]);
        flush_inputs();
        wait_audits(ids, 2, WAIT_MS);
        expect_audit(ids[0], OSY_RULE_NONE, OSY_OUTCOME_SKIPPED);
        expect_audit(ids[1], OSY_RULE_R3, OSY_OUTCOME_APPLIED);
        expect_sf(ids[1], OSY_RULE_R3, 1);
        assert_int_equal(count_type(OSY_MSG_SF_COMMAND), 1);
}

/* Contact A ticked: AC unsubscribe-all and every SF record ticked in one
 * decision; then the echoes (Lead B's CDC event from our write, AC's
 * unsubscribe webhooks) change nothing and cost no command. */
static void r4_tick_then_echoes_give_no_more_commands(void **s)
{
        char ids[4][OSY_ID_BUFSZ];
        const struct osy_msg *ac;
        (void)s;

        seed(4, "7,8", '-');
        start_worker();
        sf_event(4, "0035g00000AbCdEAAZ", 1, 0, 0, ids[0]);
        flush_inputs();
        /* The echoes are caused by the decision, so they come after it
         * (SF and AC events travel on different topics: no order between
         * them otherwise). */
        wait_audits(ids, 1, WAIT_MS);
        sf_event(4, "00Q5g00000XyZaBAAZ", 1, 2000, 1, ids[1]);
        ac_event(4, OSY_AC_UNSUBSCRIBE, "7", 0, NULL, 3000, 1, ids[2]);
        ac_event(4, OSY_AC_UNSUBSCRIBE, "8", 0, NULL, 3000, 1, ids[3]);
        flush_inputs();
        wait_audits(ids, 4, WAIT_MS);
        expect_audit(ids[0], OSY_RULE_R4, OSY_OUTCOME_APPLIED);
        expect_sf(ids[0], OSY_RULE_R4, 1);
        ac = find_wait(OSY_MSG_AC_COMMAND, ids[0]);
        assert_non_null(ac);
        assert_int_equal(ac->ac_command.action, OSY_AC_UNSUBSCRIBE_ALL_LISTS);
        assert_string_equal(ac->ac_command.contact_id, "c4");
        expect_audit(ids[1], OSY_RULE_R4, OSY_OUTCOME_SKIPPED);
        expect_audit(ids[2], OSY_RULE_NONE, OSY_OUTCOME_SKIPPED);
        expect_audit(ids[3], OSY_RULE_NONE, OSY_OUTCOME_SKIPPED);
        assert_int_equal(count_type(OSY_MSG_SF_COMMAND), 1);
        assert_int_equal(count_type(OSY_MSG_AC_COMMAND), 1);
}

static void untick_and_unqualified_give_audit_only(void **s)
{
        char ids[2][OSY_ID_BUFSZ];
        (void)s;

        seed(5, "7", '1');
        start_worker();
        sf_event(5, "0035g00000AbCdEAAZ", 0, 0, 0, ids[0]);
        /* Tags given and none qualifies: audited, no command. */
        ac_event(6, OSY_AC_BOUNCE, NULL, OSY_BOUNCE_HARD, "newsletter", 0, 0,
                 ids[1]);
        flush_inputs();
        wait_audits(ids, 2, WAIT_MS);
        expect_audit(ids[0], OSY_RULE_NONE, OSY_OUTCOME_SKIPPED);
        expect_audit(ids[1], OSY_RULE_R3, OSY_OUTCOME_SKIPPED);
        assert_int_equal(count_type(OSY_MSG_SF_COMMAND), 0);
        assert_int_equal(count_type(OSY_MSG_AC_COMMAND), 0);
}

/* ---- bad input, misses without AC
 * ---------------------------------------------- */

/* Collects outputs until @p n dead letters arrived or 5 s passed. */
static void wait_dlq(size_t n)
{
        for (int64_t end = osy_test_now_ms() + 5000;
             count_type(OSY_MSG_DLQ) < n && osy_test_now_ms() < end;)
                collect(100);
}

static void poison_goes_to_dlq_and_the_stream_moves_on(void **s)
{
        static const char junk[] = "\x01\x02not json";
        static const char bad[] =
            "{\"v\":1,\"type\":\"ac.event\",\"tenant\":\"acme\","
            "\"email\":\"p9@example.com\",\"payload\":{\"kind\":\"subscribe\"}"
            "}";
        char ids[1][OSY_ID_BUFSZ];
        (void)s;

        seed(9, "", '-');
        start_worker();
        produce_raw("optsync.ac.events", "acme|p9@example.com", junk,
                    sizeof(junk) - 1);
        produce_raw("optsync.ac.events", "acme|p9@example.com", bad,
                    sizeof(bad) - 1);
        ac_event(9, OSY_AC_SUBSCRIBE, "1", 0, NULL, 0, 0, ids[0]);
        flush_inputs();
        wait_audits(ids, 1, WAIT_MS);
        expect_sf(ids[0], OSY_RULE_R1, 0);
        wait_dlq(2);
        assert_int_equal(count_type(OSY_MSG_DLQ), 2);
        for (size_t i = 0; i < E.n_got; i++) {
                const struct osy_msg *d = &E.got[i];
                if (d->type != OSY_MSG_DLQ)
                        continue;
                assert_string_equal(d->dlq.reason, "invalid message");
                assert_int_equal(d->dlq.stage, OSY_STAGE_RULES);
                assert_string_equal(d->dlq.original.topic, "optsync.ac.events");
                assert_true(d->dlq.original.value_len > 0);
        }
}

/*
 * An event the rules cannot decide: a subscribe for a person whose state
 * already holds the most active lists a state may (1,000). It goes to the
 * DLQ with why, and the next person's event is decided. Before, the error
 * stopped the batch, the worker exited, and after every restart it met
 * the same event again: no opt-out went through at all.
 */
static void undecidable_event_goes_to_dlq_and_the_stream_moves_on(void **s)
{
        static char lists[OSY_RULES_LISTS_MAX * 6];
        char ids[2][OSY_ID_BUFSZ];
        size_t n = 0, dlq = 0;
        (void)s;

        for (int l = 0; l < OSY_RULES_LISTS_MAX; l++)
                n += (size_t)snprintf(lists + n, sizeof(lists) - n, "%s%d",
                                      l ? "," : "", 10000 + l);
        seed(7, lists, '-');
        seed(8, "", '-');
        start_worker();
        ac_event(7, OSY_AC_SUBSCRIBE, "1", 0, NULL, 0, 0, ids[0]);
        ac_event(8, OSY_AC_SUBSCRIBE, "1", 0, NULL, 0, 0, ids[1]);
        flush_inputs();
        wait_audits(ids + 1, 1, WAIT_MS);
        expect_sf(ids[1], OSY_RULE_R1, 0);
        wait_dlq(1);
        for (size_t i = 0; i < E.n_got; i++) {
                const struct osy_msg *d = &E.got[i];
                if (d->type != OSY_MSG_DLQ)
                        continue;
                dlq++;
                assert_string_equal(d->dlq.reason, "decision failed");
                assert_non_null(strstr(d->dlq.last_error, "lists"));
                assert_string_equal(d->email, "p7@example.com");
        }
        assert_int_equal(dlq, 1);
}

/*
 * A backlog big enough for the decoder thread to parse half of the batch:
 * the bad records in either half are dead-lettered with their own reason
 * (found again on the main thread), and every event around them is
 * decided, in order.
 */
static void poison_in_a_large_batch_keeps_its_reason(void **s)
{
        static const char junk[] = "\x01\x02not json";
        static const char cmd[] =
            "{\"v\":1,\"type\":\"sf.command\",\"tenant\":\"acme\"}";
        enum {
                EVENTS = 150
        };
        char(*ids)[OSY_ID_BUFSZ] = calloc(EVENTS, sizeof(*ids));
        char st[256];
        size_t dlq = 0;
        (void)s;

        assert_non_null(ids);
        seed(18, "1", '-');
        for (int i = 0; i < EVENTS; i++) {
                if (i == 20)
                        produce_raw("optsync.ac.events", "acme|p18@example.com",
                                    junk, sizeof(junk) - 1);
                if (i == 120)
                        produce_raw("optsync.ac.events", "acme|p18@example.com",
                                    cmd, sizeof(cmd) - 1);
                ac_event(18, i % 2 ? OSY_AC_UNSUBSCRIBE : OSY_AC_SUBSCRIBE, "2",
                         0, NULL, i * 10, 0, ids[i]);
        }
        flush_inputs();
        start_worker(); /* after the backlog: one batch of 152 */
        wait_audits(ids, EVENTS, WAIT_MS);
        wait_dlq(2);
        for (size_t i = 0; i < E.n_got; i++) {
                const struct osy_msg *d = &E.got[i];
                if (d->type != OSY_MSG_DLQ)
                        continue;
                dlq++;
                assert_string_equal(d->dlq.reason, "invalid message");
                assert_non_null(d->dlq.last_error);
                assert_true(strlen(d->dlq.last_error) > 0);
        }
        assert_int_equal(dlq, 2);
        /* In order: the last event (an unsubscribe of list 2) stands. */
        wait_state_names(18, ids[EVENTS - 1], st, sizeof(st));
        assert_non_null(strstr(st, ids[EVENTS - 1]));
        assert_true(st[strlen(st) - 1] == '1'); /* lists: just "1" */
        free(ids);
}

static void miss_without_ac_credentials_is_dead_lettered(void **s)
{
        char ids[1][OSY_ID_BUFSZ];
        const struct osy_msg *a;
        (void)s;

        /* Nothing cached and no tenants file: the needed look-up cannot
         * be made, so the event is dead-lettered and audited. */
        start_worker();
        sf_event(10, "0035g00000AbCdEAAZ", 1, 0, 0, ids[0]);
        flush_inputs();
        wait_audits(ids, 1, WAIT_MS);
        a = find(OSY_MSG_AUDIT, ids[0]);
        assert_int_equal(a->audit.outcome, OSY_OUTCOME_DEAD_LETTERED);
        collect(500);
        assert_int_equal(count_type(OSY_MSG_DLQ), 1);
        assert_int_equal(count_type(OSY_MSG_SF_COMMAND), 0);
}

/* ---- duplicates, replays, order
 * -------------------------------------------------- */

static void duplicates_and_replays_give_one_command(void **s)
{
        char ids[1][OSY_ID_BUFSZ], dup[OSY_ID_BUFSZ];
        int64_t end;
        (void)s;

        seed(11, "3", '-');
        start_worker();
        /* AC delivered the webhook three times: same id. */
        for (int i = 0; i < 3; i++) {
                ac_event(11, OSY_AC_UNSUBSCRIBE, "3", 0, NULL, 0, 0, dup);
                if (i == 0)
                        memcpy(ids[0], dup, sizeof(dup));
                else
                        assert_string_equal(dup, ids[0]);
        }
        flush_inputs();
        wait_audits(ids, 1, WAIT_MS);
        end = osy_test_now_ms() + WAIT_MS;
        while (count_about(OSY_MSG_AUDIT, ids[0]) < 3 &&
               osy_test_now_ms() < end)
                collect(200);
        assert_int_equal(count_about(OSY_MSG_AUDIT, ids[0]), 3);
        assert_int_equal(count_about(OSY_MSG_SF_COMMAND, ids[0]), 1);

        /* A replay of the whole topic (a second group from the start):
         * every event is a duplicate, nothing is commanded again. */
        start_worker_in("replay-group");
        end = osy_test_now_ms() + WAIT_MS;
        while (count_about(OSY_MSG_AUDIT, ids[0]) < 6 &&
               osy_test_now_ms() < end)
                collect(200);
        assert_int_equal(count_about(OSY_MSG_AUDIT, ids[0]), 6);
        collect(1000);
        assert_int_equal(count_about(OSY_MSG_SF_COMMAND, ids[0]), 1);
        {
                size_t dups = 0;
                for (size_t i = 0; i < E.n_got; i++)
                        dups += E.got[i].type == OSY_MSG_AUDIT &&
                                E.got[i].audit.outcome == OSY_OUTCOME_DUPLICATE;
                assert_int_equal(dups, 5);
        }
}

/*
 * The worker looks a dedup entry up only when the event may be a replay: not
 * newer than the person's known version, or the person has no state. A
 * replay whose person's state is gone (expired, evicted) is found by its
 * dedup entry still: a duplicate, not a second R2 (and not an AC look-up).
 */
static void replay_after_the_state_is_gone_is_a_duplicate(void **s)
{
        char ids[1][OSY_ID_BUFSZ], again[OSY_ID_BUFSZ];
        char email[64], key[OSY_RULES_KEY_BUFSZ], errstr[256];
        const char *del[2] = {"DEL", key};
        redisReply *reply;
        int64_t end;
        (void)s;

        seed(13, "3", '-');
        start_worker();
        ac_event(13, OSY_AC_UNSUBSCRIBE, "3", 0, NULL, 0, 0, ids[0]);
        flush_inputs();
        wait_audits(ids, 1, WAIT_MS);
        expect_audit(ids[0], OSY_RULE_R2, OSY_OUTCOME_APPLIED);
        expect_sf(ids[0], OSY_RULE_R2, 1);
        /* The state goes; the dedup entry stays. Give the worker time to
         * finish the write first: the audit goes out before it. */
        email_of(13, email, sizeof(email));
        assert_int_equal(
            osy_rules_state_key(key, sizeof(key), "optsync", "acme", email),
            OSY_OK);
        {
                char st[256];
                wait_state_names(13, ids[0], st, sizeof(st));
        }
        osy_test_sleep_ms(300);
        assert_int_equal(osy_redis_command_argv(E.r, 2, del, NULL, &reply,
                                                errstr, sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(reply->integer, 1);
        freeReplyObject(reply);
        ac_event(13, OSY_AC_UNSUBSCRIBE, "3", 0, NULL, 0, 0, again);
        assert_string_equal(again, ids[0]);
        flush_inputs();
        end = osy_test_now_ms() + WAIT_MS;
        while (count_about(OSY_MSG_AUDIT, ids[0]) < 2 &&
               osy_test_now_ms() < end)
                collect(200);
        collect(500);
        assert_int_equal(count_about(OSY_MSG_AUDIT, ids[0]), 2);
        assert_int_equal(count_about(OSY_MSG_SF_COMMAND, ids[0]), 1);
        assert_int_equal(count_type(OSY_MSG_DLQ), 0);
        {
                size_t dups = 0;
                for (size_t i = 0; i < E.n_got; i++)
                        dups += E.got[i].type == OSY_MSG_AUDIT &&
                                E.got[i].audit.outcome == OSY_OUTCOME_DUPLICATE;
                assert_int_equal(dups, 1);
        }
}

/*
 * Events decided are remembered in one hash per second of occurrence,
 * field = event id, and each write renews the hash's TTL to
 * OPTSYNC_DEDUP_TTL: two events of one second share a hash, a third one
 * second later has its own, and no hash is left without a TTL (it would
 * never go).
 */
static void
events_decided_are_remembered_per_second_with_the_dedup_ttl(void **s)
{
        static const int64_t at[3] = {100, 900, 1100};
        char ids[3][OSY_ID_BUFSZ], key[OSY_RULES_KEY_BUFSZ], errstr[256];
        const char *hlen[2] = {"HLEN", key}, *pttl[2] = {"PTTL", key};
        const char *hexists[3] = {"HEXISTS", key, NULL};
        const int64_t ttl_ms   = INT64_C(90) * 3600 * 1000;
        redisReply *reply;
        (void)s;

        seed(14, "1", '-');
        setenv("OPTSYNC_DEDUP_TTL", "90h", 1);
        start_worker();
        unsetenv("OPTSYNC_DEDUP_TTL");
        ac_event(14, OSY_AC_SUBSCRIBE, "2", 0, NULL, at[0], 0, ids[0]);
        ac_event(14, OSY_AC_SUBSCRIBE, "3", 0, NULL, at[1], 0, ids[1]);
        ac_event(14, OSY_AC_UNSUBSCRIBE, "2", 0, NULL, at[2], 0, ids[2]);
        flush_inputs();
        wait_audits(ids, 3, WAIT_MS);
        /* The audit goes out before the write: wait for the last hash. */
        assert_int_equal(
            osy_rules_seen_key(key, sizeof(key), "optsync", T0 + at[2]),
            OSY_OK);
        for (int64_t end = osy_test_now_ms() + WAIT_MS;;) {
                assert_int_equal(osy_redis_command_argv(E.r, 2, hlen, NULL,
                                                        &reply, errstr,
                                                        sizeof(errstr)),
                                 OSY_OK);
                long long n = reply->integer;
                freeReplyObject(reply);
                if (n > 0 || osy_test_now_ms() > end)
                        break;
                osy_test_sleep_ms(50);
        }
        for (int i = 0; i < 3; i++) {
                assert_int_equal(
                    osy_rules_seen_key(key, sizeof(key), "optsync", T0 + at[i]),
                    OSY_OK);
                hexists[2] = ids[i];
                assert_int_equal(osy_redis_command_argv(E.r, 3, hexists, NULL,
                                                        &reply, errstr,
                                                        sizeof(errstr)),
                                 OSY_OK);
                assert_int_equal(reply->integer, 1);
                freeReplyObject(reply);
                assert_int_equal(osy_redis_command_argv(E.r, 2, hlen, NULL,
                                                        &reply, errstr,
                                                        sizeof(errstr)),
                                 OSY_OK);
                assert_int_equal(reply->integer, i < 2 ? 2 : 1);
                freeReplyObject(reply);
                assert_int_equal(osy_redis_command_argv(E.r, 2, pttl, NULL,
                                                        &reply, errstr,
                                                        sizeof(errstr)),
                                 OSY_OK);
                assert_true(reply->integer > ttl_ms - 60 * 1000);
                assert_true(reply->integer <= ttl_ms);
                freeReplyObject(reply);
        }
        /* A later write into a hash renews its TTL to the full dedup TTL
         * (not only when the hash is made): shorten it by hand, decide
         * another event of that second, and it is back. */
        {
                const char *shorten[3] = {"PEXPIRE", key, "60000"};
                char late[1][OSY_ID_BUFSZ];

                assert_int_equal(
                    osy_rules_seen_key(key, sizeof(key), "optsync", T0 + at[0]),
                    OSY_OK);
                assert_int_equal(osy_redis_command_argv(E.r, 3, shorten, NULL,
                                                        &reply, errstr,
                                                        sizeof(errstr)),
                                 OSY_OK);
                freeReplyObject(reply);
                seed(15, "1", '-');
                ac_event(15, OSY_AC_SUBSCRIBE, "2", 0, NULL, at[0] + 400, 0,
                         late[0]);
                flush_inputs();
                wait_audits(late, 1, WAIT_MS);
                hexists[2] = late[0];
                for (int64_t end = osy_test_now_ms() + WAIT_MS;;) {
                        assert_int_equal(osy_redis_command_argv(
                                             E.r, 3, hexists, NULL, &reply,
                                             errstr, sizeof(errstr)),
                                         OSY_OK);
                        long long there = reply->integer;
                        freeReplyObject(reply);
                        if (there || osy_test_now_ms() > end)
                                break;
                        osy_test_sleep_ms(50);
                }
                assert_int_equal(osy_redis_command_argv(E.r, 2, pttl, NULL,
                                                        &reply, errstr,
                                                        sizeof(errstr)),
                                 OSY_OK);
                assert_true(reply->integer > ttl_ms - 60 * 1000);
                freeReplyObject(reply);
        }
}

/*
 * Replays whose dedup entries sit in different hashes, out of order and
 * in one batch with an event never seen that shares a hash with one of
 * them: each is told apart by its own entry (the HMGET replies mapped back
 * to the right events). The person's state is gone, so only the entries
 * can say "duplicate".
 */
static void replays_across_seconds_are_each_found_in_their_hash(void **s)
{
        static const int64_t at[3] = {100, 1100, 2100};
        char ids[3][OSY_ID_BUFSZ], again[OSY_ID_BUFSZ], fresh[1][OSY_ID_BUFSZ];
        char email[64], key[OSY_RULES_KEY_BUFSZ], errstr[256];
        const char *del[2] = {"DEL", key};
        redisReply *reply;
        size_t dups = 0;
        (void)s;

        seed(16, "1", '-');
        seed(17, "1", '-');
        start_worker();
        ac_event(16, OSY_AC_SUBSCRIBE, "2", 0, NULL, at[0], 0, ids[0]);
        ac_event(16, OSY_AC_SUBSCRIBE, "3", 0, NULL, at[1], 0, ids[1]);
        ac_event(16, OSY_AC_UNSUBSCRIBE, "2", 0, NULL, at[2], 0, ids[2]);
        flush_inputs();
        wait_audits(ids, 3, WAIT_MS);
        {
                char st[256];
                wait_state_names(16, ids[2], st, sizeof(st));
        }
        /* SIGTERM: the worker finishes its writes and commits. */
        stop_workers();
        email_of(16, email, sizeof(email));
        assert_int_equal(
            osy_rules_state_key(key, sizeof(key), "optsync", "acme", email),
            OSY_OK);
        assert_int_equal(osy_redis_command_argv(E.r, 2, del, NULL, &reply,
                                                errstr, sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(reply->integer, 1);
        freeReplyObject(reply);
        /* The backlog the next worker finds: replays of the third and the
         * first, and a new event of another person in the first's second
         * (its person has no version, so it is looked up too). */
        ac_event(16, OSY_AC_UNSUBSCRIBE, "2", 0, NULL, at[2], 0, again);
        assert_string_equal(again, ids[2]);
        ac_event(17, OSY_AC_SUBSCRIBE, "2", 0, NULL, at[0] + 50, 0, fresh[0]);
        ac_event(16, OSY_AC_SUBSCRIBE, "2", 0, NULL, at[0], 0, again);
        assert_string_equal(again, ids[0]);
        flush_inputs();
        start_worker();
        for (int64_t end = osy_test_now_ms() + WAIT_MS;
             (count_about(OSY_MSG_AUDIT, ids[0]) < 2 ||
              count_about(OSY_MSG_AUDIT, ids[2]) < 2 ||
              !count_about(OSY_MSG_AUDIT, fresh[0])) &&
             osy_test_now_ms() < end;)
                collect(200);
        collect(500);
        assert_int_equal(count_about(OSY_MSG_AUDIT, ids[0]), 2);
        assert_int_equal(count_about(OSY_MSG_AUDIT, ids[2]), 2);
        assert_int_equal(count_about(OSY_MSG_AUDIT, fresh[0]), 1);
        assert_int_equal(count_type(OSY_MSG_DLQ), 0);
        for (size_t i = 0; i < E.n_got; i++) {
                const struct osy_msg *m = &E.got[i];
                if (m->type != OSY_MSG_AUDIT)
                        continue;
                if (m->audit.outcome == OSY_OUTCOME_DUPLICATE) {
                        dups++;
                        assert_true(!strcmp(m->audit.ref_id, ids[0]) ||
                                    !strcmp(m->audit.ref_id, ids[2]));
                }
        }
        assert_int_equal(dups, 2);
        expect_audit(fresh[0], OSY_RULE_NONE, OSY_OUTCOME_SKIPPED);
}

/* Newest first, older ones after: the older are stale, the newest state
 * stands. */
static void out_of_order_events_keep_the_newest_state(void **s)
{
        char ids[3][OSY_ID_BUFSZ], st[256];
        (void)s;

        seed(12, "1", '-');
        start_worker();
        ac_event(12, OSY_AC_UNSUBSCRIBE, "1", 0, NULL, 3000, 0, ids[0]);
        ac_event(12, OSY_AC_SUBSCRIBE, "1", 0, NULL, 1000, 0, ids[1]);
        ac_event(12, OSY_AC_SUBSCRIBE, "2", 0, NULL, 2000, 0, ids[2]);
        flush_inputs();
        wait_audits(ids, 3, WAIT_MS);
        expect_audit(ids[0], OSY_RULE_R2, OSY_OUTCOME_APPLIED);
        expect_sf(ids[0], OSY_RULE_R2, 1);
        expect_audit(ids[1], OSY_RULE_NONE, OSY_OUTCOME_STALE);
        expect_audit(ids[2], OSY_RULE_NONE, OSY_OUTCOME_STALE);
        assert_int_equal(count_type(OSY_MSG_SF_COMMAND), 1);
        state_of(12, st, sizeof(st));
        /* Version of the newest event, no active list. */
        assert_non_null(strstr(st, "1795666383000|"));
        assert_non_null(strstr(st, ids[0]));
        assert_true(st[strlen(st) - 1] == '|');
}

/* Dedup look-ups rest on states outliving dedup entries: a configuration
 * where they would not is refused at start, with the reason. */
static void state_ttl_below_dedup_ttl_is_refused(void **s)
{
        char log[700], *text;
        int status = 0, exited = 0;
        (void)s;

        setenv("OPTSYNC_RULES_STATE_TTL", "72h", 1);
        setenv("OPTSYNC_DEDUP_TTL", "80h", 1);
        start_worker();
        unsetenv("OPTSYNC_RULES_STATE_TTL");
        unsetenv("OPTSYNC_DEDUP_TTL");
        for (int i = 0; i < 200 && !exited; i++) {
                exited = waitpid(E.workers[0], &status, WNOHANG) > 0;
                if (!exited)
                        osy_test_sleep_ms(50);
        }
        assert_true(exited);
        E.workers[0] = -1;
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
        snprintf(log, sizeof(log), "%s/rules-0.log", E.dir);
        text = osy_test_read_file(log);
        assert_non_null(text);
        assert_non_null(strstr(text, "must be at least OPTSYNC_DEDUP_TTL"));
        free(text);
}

/* ---- failures and shutdown
 * ------------------------------------------------------ */

static void redis_outage_waits_then_decides_everything(void **s)
{
        char ids[3][OSY_ID_BUFSZ];
        (void)s;

        start_worker();
        ac_event(13, OSY_AC_BOUNCE, NULL, OSY_BOUNCE_HARD, QUAL_TAGS, 0, 0,
                 ids[0]);
        flush_inputs();
        wait_audits(ids, 1, WAIT_MS);
        assert_int_equal(osy_test_redis_halt(&E.redis), 0);
        ac_event(14, OSY_AC_BOUNCE, NULL, OSY_BOUNCE_HARD, QUAL_TAGS, 0, 0,
                 ids[1]);
        ac_event(15, OSY_AC_BOUNCE, NULL, OSY_BOUNCE_HARD, QUAL_TAGS, 0, 0,
                 ids[2]);
        flush_inputs();
        collect(2500);
        /* Nothing decided without Redis, nothing dead-lettered. */
        assert_int_equal(count_about(OSY_MSG_AUDIT, ids[1]), 0);
        assert_int_equal(count_type(OSY_MSG_DLQ), 0);
        assert_int_equal(osy_test_redis_restart(&E.redis), 0);
        wait_audits(ids, 3, WAIT_MS);
        expect_sf(ids[1], OSY_RULE_R3, 1);
        expect_sf(ids[2], OSY_RULE_R3, 1);
        assert_int_equal(count_type(OSY_MSG_DLQ), 0);
}

/* Every partition of the audit topic led by @p broker (-1: none). */
static void audit_leaders(int broker)
{
        for (int p = 0; p < PARTITIONS; p++) {
                char cmd[96];
                snprintf(cmd, sizeof(cmd), "leader optsync.audit %d %d", p,
                         broker);
                assert_int_equal(osy_test_kafka_control(&E.kafka, cmd, NULL, 0),
                                 0);
        }
}

/*
 * Outputs whose acknowledgements time out (no leader to take them within
 * OPTSYNC_KAFKA_PRODUCE_TIMEOUT) are produced again from the batch's own
 * memory (lent to the producer, not copied), and once those attempts run
 * out the batch is given back and decided again, until the broker answers
 * in time. Every output that arrives is whole (the collector decodes
 * each), every event ends decided, nothing is dead-lettered.
 */
static void outputs_timed_out_are_produced_again_whole(void **s)
{
        char ids[3][OSY_ID_BUFSZ], log[700], *text;
        (void)s;

        setenv("OPTSYNC_KAFKA_PRODUCE_TIMEOUT", "1s", 1);
        start_worker();
        unsetenv("OPTSYNC_KAFKA_PRODUCE_TIMEOUT");
        ac_event(16, OSY_AC_BOUNCE, NULL, OSY_BOUNCE_HARD, QUAL_TAGS, 0, 0,
                 ids[0]);
        flush_inputs();
        wait_audits(ids, 1, WAIT_MS);
        /* The audit topic loses its leaders: audit records wait, then
         * time out; the worker's inputs and commands still flow. */
        audit_leaders(-1);
        ac_event(17, OSY_AC_BOUNCE, NULL, OSY_BOUNCE_HARD, QUAL_TAGS, 0, 0,
                 ids[1]);
        ac_event(18, OSY_AC_BOUNCE, NULL, OSY_BOUNCE_HARD, QUAL_TAGS, 0, 0,
                 ids[2]);
        flush_inputs();
        collect(4000);
        audit_leaders(1);
        wait_audits(ids, 3, WAIT_MS);
        collect(500);
        for (int e = 1; e < 3; e++) {
                const struct osy_msg *c = find_wait(OSY_MSG_SF_COMMAND, ids[e]);
                assert_non_null(c);
                assert_int_equal(c->sf_command.rule, OSY_RULE_R3);
                assert_int_equal(c->sf_command.has_opted_out_of_email, 1);
                /* The broker may have kept a copy the producer gave up
                 * on: the same command again, never another one. */
                for (size_t i = 0; i < E.n_got; i++)
                        if (E.got[i].type == OSY_MSG_SF_COMMAND &&
                            !strcmp(E.got[i].sf_command.cause_event_id, ids[e]))
                                assert_string_equal(E.got[i].id, c->id);
        }
        assert_int_equal(count_type(OSY_MSG_DLQ), 0);
        /* The path under test was taken. */
        snprintf(log, sizeof(log), "%s/rules-0.log", E.dir);
        text = osy_test_read_file(log);
        assert_non_null(text);
        assert_non_null(strstr(text, "not acknowledged"));
        free(text);
}

static void sigterm_commits_and_exits_zero(void **s)
{
        char ids[2][OSY_ID_BUFSZ];
        int status, idx;
        (void)s;

        idx = start_worker();
        ac_event(16, OSY_AC_BOUNCE, NULL, OSY_BOUNCE_HARD, QUAL_TAGS, 0, 0,
                 ids[0]);
        flush_inputs();
        wait_audits(ids, 1, WAIT_MS);
        status         = osy_test_stop(E.workers[idx], 15000);
        E.workers[idx] = -1;
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        /* The next member starts after the committed offset: the first
         * event is not seen again (not even as a duplicate). */
        start_worker();
        ac_event(17, OSY_AC_BOUNCE, NULL, OSY_BOUNCE_HARD, QUAL_TAGS, 0, 0,
                 ids[1]);
        flush_inputs();
        wait_audits(ids, 2, WAIT_MS);
        collect(500);
        assert_int_equal(count_about(OSY_MSG_AUDIT, ids[0]), 1);
}

/* ---- cache misses filled from AC (the sandbox) ----------------------------
 */

/* Start the sandbox with the AC part of tenant "acme" and point the
 * worker's tenants file at it. */
static void start_sandbox(const char *ac_fixture)
{
        char fixture[4096], tenants[512];
        FILE *f;

        snprintf(fixture, sizeof(fixture),
                 "{\"tenants\":{\"acme\":{\"ac\":%s}}}", ac_fixture);
        assert_int_equal(osy_test_sandbox_start(&E.sbx, fixture, NULL), 0);
        snprintf(tenants, sizeof(tenants),
                 "{\"tenants\":[{\"id\":\"acme\",\"ac\":{\"base_url\":"
                 "\"%s/ac/acme\",\"api_token\":\"sandbox-ac-token\"}}]}",
                 E.sbx.base_url);
        snprintf(E.tenants_file, sizeof(E.tenants_file), "%s/tenants.json",
                 E.dir);
        assert_non_null(f = fopen(E.tenants_file, "w"));
        fputs(tenants, f);
        fclose(f);
}

/* AC API requests the sandbox answered for tenant acme so far. */
static int ac_requests(void)
{
        char *body = NULL;
        cJSON *j, *arr;
        int n = -1;

        assert_int_equal(osy_test_sandbox_call(&E.sbx, "GET",
                                               "/sandbox/requests?tenant=acme"
                                               "&limit=1000",
                                               NULL, NULL, &body),
                         200);
        j   = cJSON_Parse(body);
        arr = cJSON_GetObjectItemCaseSensitive(j, "requests");
        if (cJSON_IsArray(arr))
                n = cJSON_GetArraySize(arr);
        cJSON_Delete(j);
        free(body);
        return n;
}

/* A tick with nothing cached: the contact and its tags come from AC
 * (through two injected 503s, retried), the decision is R4; the echo of
 * our own write that follows is decided from the cache, with no call. */
static void ac_lookup_fills_a_miss_once_through_503s(void **s)
{
        char ids[2][OSY_ID_BUFSZ], body[256];
        const struct osy_msg *ac;
        int calls;
        (void)s;

        start_sandbox(
            "{\"lists\":[{\"id\":\"1\"},{\"id\":\"2\"}],"
            "\"tags\":[{\"id\":\"5\",\"tag\":\"newsletter\"}],"
            "\"contacts\":[{\"id\":\"77\",\"email\":\"p20@example.com\","
            "\"tags\":[\"newsletter\",\"created-from-salesforce-lead\"],"
            "\"lists\":{\"1\":1,\"2\":1}}]}");
        snprintf(body, sizeof(body),
                 "{\"endpoint\":\"ac.contacts\",\"kind\":\"json503\","
                 "\"count\":2}");
        assert_int_equal(osy_test_sandbox_call(&E.sbx, "POST",
                                               "/sandbox/faults", NULL, body,
                                               NULL),
                         201);
        start_worker();
        sf_event(20, "0035g00000AbCdEAAZ", 1, 0, 0, ids[0]);
        flush_inputs();
        wait_audits(ids, 1, WAIT_MS);
        expect_audit(ids[0], OSY_RULE_R4, OSY_OUTCOME_APPLIED);
        expect_sf(ids[0], OSY_RULE_R4, 1);
        assert_non_null(ac = find_wait(OSY_MSG_AC_COMMAND, ids[0]));
        assert_string_equal(ac->ac_command.contact_id, "77");
        assert_int_equal(count_type(OSY_MSG_DLQ), 0);
        calls = ac_requests();
        /* 2 refused + find by email + contact tags + the tag list. */
        assert_true(calls >= 4);

        sf_event(20, "00Q5g00000XyZaBAAZ", 1, 2000, 1, ids[1]);
        flush_inputs();
        wait_audits(ids, 2, WAIT_MS);
        expect_audit(ids[1], OSY_RULE_R4, OSY_OUTCOME_SKIPPED);
        assert_int_equal(ac_requests(), calls);
        assert_int_equal(count_type(OSY_MSG_SF_COMMAND), 1);
}

/* Lists and bounce types from AC: a subscribe with nothing cached is R1
 * only when AC shows no other active list; a bounce of unknown type is
 * hard when AC counted a hard bounce. */
static void ac_lookup_resolves_lists_and_bounce_type(void **s)
{
        char ids[4][OSY_ID_BUFSZ];
        (void)s;

        start_sandbox(
            "{\"lists\":[{\"id\":\"1\"},{\"id\":\"2\"}],"
            "\"contacts\":["
            "{\"id\":\"31\",\"email\":\"p31@example.com\","
            "\"tags\":[\"added-to-salesforce-lead\"],\"lists\":{\"1\":1}},"
            "{\"id\":\"32\",\"email\":\"p32@example.com\","
            "\"tags\":[\"added-to-salesforce-lead\"],"
            "\"lists\":{\"1\":1,\"2\":1}},"
            "{\"id\":\"33\",\"email\":\"p33@example.com\","
            "\"tags\":[\"added-to-salesforce-lead\"],\"bounced_hard\":1},"
            "{\"id\":\"34\",\"email\":\"p34@example.com\","
            "\"tags\":[\"added-to-salesforce-lead\"]}]}");
        start_worker();
        ac_event(31, OSY_AC_SUBSCRIBE, "1", 0, NULL, 0, 0, ids[0]);
        ac_event(32, OSY_AC_SUBSCRIBE, "2", 0, NULL, 0, 0, ids[1]);
        ac_event(33, OSY_AC_BOUNCE, NULL, OSY_BOUNCE_UNKNOWN, NULL, 0, 0,
                 ids[2]);
        ac_event(34, OSY_AC_BOUNCE, NULL, OSY_BOUNCE_UNKNOWN, NULL, 0, 0,
                 ids[3]);
        flush_inputs();
        wait_audits(ids, 4, WAIT_MS);
        expect_audit(ids[0], OSY_RULE_R1, OSY_OUTCOME_APPLIED);
        expect_sf(ids[0], OSY_RULE_R1, 0);
        expect_audit(ids[1], OSY_RULE_NONE, OSY_OUTCOME_SKIPPED);
        expect_audit(ids[2], OSY_RULE_R3, OSY_OUTCOME_APPLIED);
        expect_sf(ids[2], OSY_RULE_R3, 1);
        expect_audit(ids[3], OSY_RULE_NONE, OSY_OUTCOME_SKIPPED);
        assert_int_equal(count_type(OSY_MSG_SF_COMMAND), 2);
        assert_int_equal(count_type(OSY_MSG_DLQ), 0);
}

/* Sandbox time (ms) of the last AC request of tenant acme. */
static int64_t last_ac_request_ms(void)
{
        char *body = NULL;
        cJSON *j, *r;
        int64_t last = 0;

        assert_int_equal(osy_test_sandbox_call(&E.sbx, "GET",
                                               "/sandbox/requests?tenant=acme"
                                               "&limit=1000",
                                               NULL, NULL, &body),
                         200);
        j = cJSON_Parse(body);
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(j, "requests"))
        {
                double t = cJSON_GetNumberValue(
                    cJSON_GetObjectItemCaseSensitive(r, "time_ms"));
                if ((int64_t)t > last)
                        last = (int64_t)t;
        }
        cJSON_Delete(j);
        free(body);
        return last;
}

/*
 * A burst of people the rules have never seen: each needs an AC look-up
 * at the account's 5 calls/s. What is decided must go out while the later
 * look-ups are still being made, not all at once after the last one.
 */
static void burst_of_misses_goes_out_while_looking_up(void **s)
{
        char ids[12][OSY_ID_BUFSZ], fx[4096];
        size_t off = 0;
        struct timespec ts;
        int64_t first_seen;
        (void)s;

        off += (size_t)snprintf(fx + off, sizeof(fx) - off,
                                "{\"rate_per_s\":0,\"lists\":[{\"id\":\"1\"}],"
                                "\"contacts\":[");
        for (int i = 0; i < 12; i++)
                off += (size_t)snprintf(
                    fx + off, sizeof(fx) - off,
                    "%s{\"id\":\"%d\",\"email\":\"p%d@example.com\","
                    "\"tags\":[\"added-to-salesforce-lead\"],"
                    "\"lists\":{\"1\":1}}",
                    i ? "," : "", 60 + i, 60 + i);
        snprintf(fx + off, sizeof(fx) - off, "]}");
        start_sandbox(fx);
        start_worker();
        for (int i = 0; i < 12; i++)
                ac_event(60 + i, OSY_AC_SUBSCRIBE, "1", 0, NULL, 0, 0, ids[i]);
        flush_inputs();
        while (!count_type(OSY_MSG_SF_COMMAND))
                collect(20);
        clock_gettime(CLOCK_REALTIME, &ts);
        first_seen = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        wait_audits(ids, 12, WAIT_MS);
        for (int i = 0; i < 12; i++)
                expect_sf(ids[i], OSY_RULE_R1, 0);
        /* The first command was out before the last look-up was made. */
        assert_true(first_seen < last_ac_request_ms());
}

/* ---- three members, killed and added mid-stream
 * ------------------------------ */

#define G_PERSONS 60
#define G_ROUNDS 12 /* events per person, in cycles of 4 */

/* Cycle per person: subscribe 1 (R1), subscribe 2 (none), unsubscribe 1
 * (none), unsubscribe 2 (R2). */
static void group_wave(char (*ids)[OSY_ID_BUFSZ], int round)
{
        static const osy_ac_kind_t kinds[4] = {
            OSY_AC_SUBSCRIBE, OSY_AC_SUBSCRIBE, OSY_AC_UNSUBSCRIBE,
            OSY_AC_UNSUBSCRIBE};
        static const char *const lists[4] = {"1", "2", "1", "2"};

        for (int p = 0; p < G_PERSONS; p++)
                ac_event(100 + p, kinds[round % 4], lists[round % 4], 0, NULL,
                         (int64_t)round * 1000, 0, ids[p * G_ROUNDS + round]);
        flush_inputs();
}

static void group_members_killed_and_added_decide_each_event_once(void **s)
{
        static char ids[G_PERSONS * G_ROUNDS][OSY_ID_BUFSZ];
        int round = 0, w[5];
        (void)s;

        for (int p = 0; p < G_PERSONS; p++)
                seed(100 + p, "", '-');
        for (int i = 0; i < 3; i++)
                w[i] = start_worker();
        for (; round < 4; round++)
                group_wave(ids, round);
        collect(3000);
        kill_worker(w[0]); /* mid-stream, without warning */
        for (; round < 7; round++)
                group_wave(ids, round);
        w[3] = start_worker();
        collect(1500);
        kill_worker(w[1]);
        for (; round < 10; round++)
                group_wave(ids, round);
        w[4] = start_worker();
        for (; round < G_ROUNDS; round++)
                group_wave(ids, round);
        wait_audits(ids, G_PERSONS * G_ROUNDS, 40000);
        collect(1000);

        /* Every event decided exactly once in effect: one distinct
         * non-duplicate audit; reprocessing after a kill may only add
         * "duplicate" audits or the very same records again. */
        for (int e = 0; e < G_PERSONS * G_ROUNDS; e++) {
                const char *first = NULL;
                int round_of      = e % G_ROUNDS;
                size_t cmds       = 0;

                for (size_t i = 0; i < E.n_got; i++) {
                        const struct osy_msg *m = &E.got[i];
                        if (m->type == OSY_MSG_AUDIT &&
                            !strcmp(m->audit.ref_id, ids[e]) &&
                            m->audit.outcome != OSY_OUTCOME_DUPLICATE) {
                                if (!first)
                                        first = m->id;
                                else if (strcmp(first, m->id))
                                        fail_msg("event %d decided twice "
                                                 "differently",
                                                 e);
                        }
                        /* A command re-emitted after a kill has the
                         * same id; distinct ids are counted below. */
                        if (m->type == OSY_MSG_SF_COMMAND &&
                            !strcmp(m->sf_command.cause_event_id, ids[e]))
                                cmds++;
                }
                if (!first)
                        fail_msg("event %d never decided", e);
                /* R1 on round 0 mod 4, R2 on round 3 mod 4, else none. */
                if (round_of % 4 == 0 || round_of % 4 == 3)
                        assert_true(cmds >= 1);
                else
                        assert_int_equal(cmds, 0);
        }
        /* One distinct command per expected cause, no other. */
        {
                size_t distinct = 0;
                for (size_t i = 0; i < E.n_got; i++) {
                        int seen = 0;
                        if (E.got[i].type != OSY_MSG_SF_COMMAND)
                                continue;
                        for (size_t j = 0; j < i && !seen; j++)
                                seen = E.got[j].type == OSY_MSG_SF_COMMAND &&
                                       !strcmp(E.got[j].id, E.got[i].id);
                        distinct += !seen;
                }
                assert_int_equal(distinct, G_PERSONS * (G_ROUNDS / 2));
        }
        /* And the final state of everyone: no active list, opted out. */
        for (int p = 0; p < G_PERSONS; p++) {
                char st[256], want[64];
                state_of(100 + p, st, sizeof(st));
                snprintf(want, sizeof(want), "|1|%d|", 100 + p);
                if (!strstr(st, want) || st[strlen(st) - 1] != '|')
                        fail_msg("person %d: state '%s'", p, st);
        }
}

/*
 * A backlog of events that each depend on the one before for the same
 * person, in batches of two: the worker decodes a batch while Redis
 * answers the read of the one before, and decides it only once that one
 * is decided (and in the overlay), so every event still sees the state
 * its predecessor left, whether that is written, in flight, or in the
 * batch just ahead. One missed predecessor turns an R1 into nothing or
 * an R2 into a second R2's worth of silence.
 */
#define C_PERSONS 6
#define C_ROUNDS 40

static void chained_events_in_small_batches_see_the_state_before_them(void **s)
{
        static char ids[C_PERSONS * C_ROUNDS][OSY_ID_BUFSZ];
        static const osy_ac_kind_t kinds[4] = {
            OSY_AC_SUBSCRIBE, OSY_AC_SUBSCRIBE, OSY_AC_UNSUBSCRIBE,
            OSY_AC_UNSUBSCRIBE};
        static const char *const lists[4] = {"1", "2", "1", "2"};
        (void)s;

        for (int p = 0; p < C_PERSONS; p++)
                seed(200 + p, "", '-');
        /* The whole backlog first: the worker then runs full pipelines. */
        for (int round = 0; round < C_ROUNDS; round++)
                for (int p = 0; p < C_PERSONS; p++)
                        ac_event(200 + p, kinds[round % 4], lists[round % 4], 0,
                                 NULL, (int64_t)round * 1000, 0,
                                 ids[p * C_ROUNDS + round]);
        flush_inputs();
        setenv("OPTSYNC_RULES_BATCH_SIZE", "2", 1);
        start_worker();
        unsetenv("OPTSYNC_RULES_BATCH_SIZE");
        wait_audits(ids, C_PERSONS * C_ROUNDS, WAIT_MS);
        collect(500);
        for (int p = 0; p < C_PERSONS; p++) {
                char st[256], want[64];
                for (int round = 0; round < C_ROUNDS; round++) {
                        const char *id = ids[p * C_ROUNDS + round];
                        if (round % 4 == 0) {
                                expect_audit(id, OSY_RULE_R1,
                                             OSY_OUTCOME_APPLIED);
                                expect_sf(id, OSY_RULE_R1, 0);
                        } else if (round % 4 == 3) {
                                expect_audit(id, OSY_RULE_R2,
                                             OSY_OUTCOME_APPLIED);
                                expect_sf(id, OSY_RULE_R2, 1);
                        } else {
                                expect_audit(id, OSY_RULE_NONE,
                                             OSY_OUTCOME_SKIPPED);
                                assert_int_equal(
                                    count_about(OSY_MSG_SF_COMMAND, id), 0);
                        }
                }
                /* The last event's version, no active list, opted out. */
                state_of(200 + p, st, sizeof(st));
                snprintf(want, sizeof(want), "|1|%d|", 200 + p);
                if (!strstr(st, want) || st[strlen(st) - 1] != '|' ||
                    !strstr(st, ids[p * C_ROUNDS + C_ROUNDS - 1]))
                        fail_msg("person %d: state '%s'", p, st);
        }
        assert_int_equal(count_type(OSY_MSG_SF_COMMAND),
                         C_PERSONS * (C_ROUNDS / 2));
        assert_int_equal(count_type(OSY_MSG_DLQ), 0);
}

/*
 * Two events of one person at the same millisecond are ordered by arrival
 * only: the later must win in Redis too. With two Redis writers, a batch
 * that shares a person with an earlier one in flight is written only
 * after it. Each round: every person subscribes to list 5, then
 * unsubscribes at the same millisecond (in reverse person order, so a
 * person sits in different script chunks of the two batches); each
 * subscription must find no active list (R1) and each unsubscription
 * must leave none (R2).
 */
#define S_PERSONS 300
#define S_ROUNDS 4

static void same_millisecond_events_across_batches_keep_arrival_order(void **s)
{
        static char ids[2 * S_PERSONS * S_ROUNDS][OSY_ID_BUFSZ];
        size_t n = 0;
        (void)s;

        for (int p = 0; p < S_PERSONS; p++)
                seed(400 + p, "", '-');
        for (int round = 0; round < S_ROUNDS; round++) {
                for (int p = 0; p < S_PERSONS; p++)
                        ac_event(400 + p, OSY_AC_SUBSCRIBE, "5", 0, NULL,
                                 (int64_t)round * 1000, 0, ids[n++]);
                for (int p = S_PERSONS - 1; p >= 0; p--)
                        ac_event(400 + p, OSY_AC_UNSUBSCRIBE, "5", 0, NULL,
                                 (int64_t)round * 1000, 0, ids[n++]);
        }
        flush_inputs();
        setenv("OPTSYNC_RULES_BATCH_SIZE", "250", 1);
        start_worker();
        unsetenv("OPTSYNC_RULES_BATCH_SIZE");
        wait_audits(ids, n, 60000);
        for (size_t i = 0; i < n; i++) {
                int sub = (i / S_PERSONS) % 2 == 0;
                expect_audit(ids[i], sub ? OSY_RULE_R1 : OSY_RULE_R2,
                             OSY_OUTCOME_APPLIED);
        }
        for (int p = 0; p < S_PERSONS; p++) {
                char st[256];
                state_of(400 + p, st, sizeof(st));
                if (st[strlen(st) - 1] != '|')
                        fail_msg("person %d: state '%s'", p, st);
        }
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(
                r1_subscribe_from_zero_commands_sf_false, setup, teardown),
            cmocka_unit_test_setup_teardown(
                r2_last_unsubscribe_commands_sf_true, setup, teardown),
            cmocka_unit_test_setup_teardown(r3_hard_bounce_commands_sf_true,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                r4_tick_then_echoes_give_no_more_commands, setup, teardown),
            cmocka_unit_test_setup_teardown(
                untick_and_unqualified_give_audit_only, setup, teardown),
            cmocka_unit_test_setup_teardown(
                poison_goes_to_dlq_and_the_stream_moves_on, setup, teardown),
            cmocka_unit_test_setup_teardown(
                undecidable_event_goes_to_dlq_and_the_stream_moves_on, setup,
                teardown),
            cmocka_unit_test_setup_teardown(
                poison_in_a_large_batch_keeps_its_reason, setup, teardown),
            cmocka_unit_test_setup_teardown(
                miss_without_ac_credentials_is_dead_lettered, setup, teardown),
            cmocka_unit_test_setup_teardown(
                duplicates_and_replays_give_one_command, setup, teardown),
            cmocka_unit_test_setup_teardown(
                out_of_order_events_keep_the_newest_state, setup, teardown),
            cmocka_unit_test_setup_teardown(
                replay_after_the_state_is_gone_is_a_duplicate, setup, teardown),
            cmocka_unit_test_setup_teardown(
                state_ttl_below_dedup_ttl_is_refused, setup, teardown),
            cmocka_unit_test_setup_teardown(
                events_decided_are_remembered_per_second_with_the_dedup_ttl,
                setup, teardown),
            cmocka_unit_test_setup_teardown(
                replays_across_seconds_are_each_found_in_their_hash, setup,
                teardown),
            cmocka_unit_test_setup_teardown(
                redis_outage_waits_then_decides_everything, setup, teardown),
            cmocka_unit_test_setup_teardown(sigterm_commits_and_exits_zero,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                outputs_timed_out_are_produced_again_whole, setup, teardown),
            cmocka_unit_test_setup_teardown(
                ac_lookup_fills_a_miss_once_through_503s, setup, teardown),
            cmocka_unit_test_setup_teardown(
                ac_lookup_resolves_lists_and_bounce_type, setup, teardown),
            cmocka_unit_test_setup_teardown(
                burst_of_misses_goes_out_while_looking_up, setup, teardown),
            cmocka_unit_test_setup_teardown(
                group_members_killed_and_added_decide_each_event_once, setup,
                teardown),
            cmocka_unit_test_setup_teardown(
                chained_events_in_small_batches_see_the_state_before_them,
                setup, teardown),
            cmocka_unit_test_setup_teardown(
                same_millisecond_events_across_batches_keep_arrival_order,
                setup, teardown),
        };
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
