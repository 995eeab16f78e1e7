/*
 * test_embedded_kafka.c - the optsync-embedded-kafka launcher: readiness
 * files and stdout, the contract's topics, the control channel's commands
 * and its refusals, fault injection seen by a real producer, clean exit.
 */
#include "osy_test.h"
#include "osy_test_kafka.h"
#include "optsync/kafka.h"
#include "optsync/topics.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define LAUNCHER OSY_BINARY_DIR "/tools/embedded-kafka/optsync-embedded-kafka"

static struct osy_test_kafka kafka;

/* The launcher must also exit 0 after whatever the case did to it (under
 * the sanitizer build a leak or an error makes that fail). */
static int teardown(void **state)
{
        int running = kafka.pid > 0;
        int status  = osy_test_kafka_stop(&kafka);
        (void)state;

        if (running && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
                fprintf(stderr, "launcher exit status 0x%x\n", status);
                return -1;
        }
        return 0;
}

static osy_kafka_producer_t *producer(void)
{
        struct osy_kafka_opts opts = {.bootstrap = kafka.bootstrap,
                                      .client_id = "test",
                                      .extra     = osy_test_kafka_fast_props,
                                      .close_timeout_ms = 2000};
        osy_kafka_producer_t *p;
        char errstr[OSY_ERRSTR_SIZE];

        if (osy_kafka_producer_new(&p, &opts, errstr, sizeof(errstr)))
                fail_msg("producer: %s", errstr);
        return p;
}

/* Metadata for one topic (or all with NULL); caller destroys. */
static const rd_kafka_metadata_t *metadata(osy_kafka_producer_t *p,
                                           const char *topic)
{
        const rd_kafka_metadata_t *md = NULL;
        rd_kafka_topic_t *rkt         = NULL;
        rd_kafka_t *rk                = osy_kafka_producer_handle(p);
        rd_kafka_resp_err_t err;

        if (topic)
                rkt = rd_kafka_topic_new(rk, topic, NULL);
        err = rd_kafka_metadata(rk, topic ? 0 : 1, rkt, &md, 5000);
        if (rkt)
                rd_kafka_topic_destroy(rkt);
        if (err)
                fail_msg("metadata: %s", rd_kafka_err2str(err));
        return md;
}

static const rd_kafka_metadata_topic_t *
find_topic(const rd_kafka_metadata_t *md, const char *name)
{
        for (int i = 0; i < md->topic_cnt; i++)
                if (!strcmp(md->topics[i].topic, name))
                        return &md->topics[i];
        return NULL;
}

static void control_ok(const char *cmd)
{
        char reply[2048];
        if (osy_test_kafka_control(&kafka, cmd, reply, sizeof(reply)))
                fail_msg("control \"%s\": %s", cmd, reply);
}

static void writes_bootstrap_and_prints_it_first(void **state)
{
        char path[600], want[300];
        (void)state;

        assert_int_equal(osy_test_kafka_start(&kafka, 2, 6), 0);
        assert_memory_equal(kafka.bootstrap, "127.0.0.1:", 10);
        assert_non_null(strchr(kafka.bootstrap, ',')); /* two brokers */
        assert_true(kafka.control_port > 0);

        /* stdout is the launcher log's head: bootstrap, then control. */
        snprintf(path, sizeof(path), "%s/launcher.log", kafka.dir);
        char *log = osy_test_read_file(path);
        assert_non_null(log);
        snprintf(want, sizeof(want), "bootstrap=%s\ncontrol=127.0.0.1:%d\n",
                 kafka.bootstrap, kafka.control_port);
        assert_memory_equal(log, want, strlen(want));
        free(log);

        char reply[512];
        assert_int_equal(
            osy_test_kafka_control(&kafka, "bootstrap", reply, sizeof(reply)),
            0);
        snprintf(want, sizeof(want), "OK %s", kafka.bootstrap);
        assert_string_equal(reply, want);
}

static void every_contract_topic_has_requested_partitions(void **state)
{
        struct osy_topic_names names;
        (void)state;

        assert_int_equal(osy_test_kafka_start(&kafka, 3, 4), 0);
        assert_int_equal(osy_topic_names_init(&names, NULL, NULL, 0), OSY_OK);
        osy_kafka_producer_t *p       = producer();
        const rd_kafka_metadata_t *md = metadata(p, NULL);
        assert_int_equal(md->broker_cnt, 3);
        for (int t = 0; t < OSY_TOPIC__CNT; t++) {
                const rd_kafka_metadata_topic_t *mt =
                    find_topic(md, names.name[t]);
                if (!mt)
                        fail_msg("topic %s missing", names.name[t]);
                assert_int_equal(mt->err, 0);
                assert_int_equal(mt->partition_cnt, 4);
                for (int i = 0; i < mt->partition_cnt; i++)
                        assert_int_equal(mt->partitions[i].replica_cnt, 3);
        }
        rd_kafka_metadata_destroy(md);
        osy_kafka_producer_destroy(p);
}

static void prefix_option_names_the_topics(void **state)
{
        (void)state;

        assert_int_equal(osy_test_kafka_start_prefix(&kafka, 1, 2, "acme"), 0);
        osy_kafka_producer_t *p             = producer();
        const rd_kafka_metadata_t *md       = metadata(p, NULL);
        const rd_kafka_metadata_topic_t *mt = find_topic(md, "acme.dlq");
        assert_non_null(mt);
        assert_int_equal(mt->partition_cnt, 2);
        assert_non_null(find_topic(md, "acme.ac.commands"));
        assert_null(find_topic(md, "optsync.dlq"));
        rd_kafka_metadata_destroy(md);
        osy_kafka_producer_destroy(p);
}

static void control_answers_ping_and_help(void **state)
{
        char reply[2048];
        (void)state;

        assert_int_equal(osy_test_kafka_start(&kafka, 1, 1), 0);
        assert_int_equal(
            osy_test_kafka_control(&kafka, "ping", reply, sizeof(reply)), 0);
        assert_string_equal(reply, "OK pong");
        assert_int_equal(
            osy_test_kafka_control(&kafka, "help", reply, sizeof(reply)), 0);
        assert_non_null(strstr(reply, "broker-down <id>"));
        assert_non_null(strstr(reply, "request-errors <api_key>"));
        /* Trailing CR (telnet, nc -C) is tolerated. */
        assert_int_equal(
            osy_test_kafka_control(&kafka, "ping\r", reply, sizeof(reply)), 0);
}

static void control_rejects_garbage_and_survives(void **state)
{
        static const char *const bad[] = {
            "frobnicate",
            "",
            "PING",
            "ping extra",
            "broker-down",
            "broker-down x",
            "broker-down 0",
            "broker-down 9",
            "broker-up 1 2",
            "rtt 1 -5",
            "rtt 1 abc",
            "request-errors 0 abc 6",
            "request-errors 0 1 999999",
            "request-errors 0 1 NO_SUCH_ERROR",
            "request-errors -1 1 6",
            "request-errors 0 0 6",
            "clear-request-errors x",
            "topic-error bad/name 3",
            "topic-error optsync.audit zzz",
            "create-topic optsync.audit 3", /* exists */
            "create-topic new 0",
            "create-topic sp ace 1",
            "leader optsync.audit 99 1",
            "leader optsync.audit 0 7",
            "a b c d e f g h i",
            "\x01\x02\xff junk"};
        char reply[2048], longline[3000];
        (void)state;

        assert_int_equal(osy_test_kafka_start(&kafka, 1, 1), 0);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                int rc = osy_test_kafka_control(&kafka, bad[i], reply,
                                                sizeof(reply));
                if (rc != -1 || strncmp(reply, "ERR ", 4))
                        fail_msg("\"%s\" got \"%s\"", bad[i], reply);
        }
        memset(longline, 'x', sizeof(longline) - 1);
        longline[sizeof(longline) - 1] = '\0';
        assert_int_equal(
            osy_test_kafka_control(&kafka, longline, reply, sizeof(reply)), -1);
        assert_non_null(strstr(reply, "ERR line longer"));
        /* Still alive and answering. */
        assert_int_equal(kill(kafka.pid, 0), 0);
        assert_int_equal(
            osy_test_kafka_control(&kafka, "ping", reply, sizeof(reply)), 0);
}

static void control_creates_topics_and_moves_leaders(void **state)
{
        (void)state;

        assert_int_equal(osy_test_kafka_start(&kafka, 2, 1), 0);
        control_ok("create-topic extra.topic 3");
        control_ok("leader extra.topic 1 2");
        osy_kafka_producer_t *p             = producer();
        const rd_kafka_metadata_t *md       = metadata(p, "extra.topic");
        const rd_kafka_metadata_topic_t *mt = find_topic(md, "extra.topic");
        assert_non_null(mt);
        assert_int_equal(mt->partition_cnt, 3);
        assert_int_equal(mt->partitions[1].leader, 2);
        rd_kafka_metadata_destroy(md);

        control_ok("leader extra.topic 1 1");
        md = metadata(p, "extra.topic");
        assert_int_equal(find_topic(md, "extra.topic")->partitions[1].leader,
                         1);
        rd_kafka_metadata_destroy(md);
        osy_kafka_producer_destroy(p);
}

static void topic_error_reaches_metadata(void **state)
{
        (void)state;

        assert_int_equal(osy_test_kafka_start(&kafka, 1, 1), 0);
        control_ok("topic-error optsync.audit UNKNOWN_TOPIC_OR_PART");
        osy_kafka_producer_t *p       = producer();
        const rd_kafka_metadata_t *md = metadata(p, NULL);
        assert_int_equal(find_topic(md, "optsync.audit")->err,
                         RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
        assert_int_equal(find_topic(md, "optsync.dlq")->err, 0);
        rd_kafka_metadata_destroy(md);
        control_ok("topic-error optsync.audit 0");
        md = metadata(p, NULL);
        assert_int_equal(find_topic(md, "optsync.audit")->err, 0);
        rd_kafka_metadata_destroy(md);
        osy_kafka_producer_destroy(p);
}

static void broker_down_fails_transiently_then_recovers(void **state)
{
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(osy_test_kafka_start(&kafka, 1, 1), 0);
        osy_kafka_producer_t *p = producer();
        assert_int_equal(osy_kafka_produce_sync(p, "optsync.audit", "k", 1,
                                                "before", 6, 10000, errstr,
                                                sizeof(errstr)),
                         OSY_OK);

        control_ok("broker-down 1");
        osy_err_t e =
            osy_kafka_produce_sync(p, "optsync.audit", "k", 1, "during", 6,
                                   1500, errstr, sizeof(errstr));
        assert_int_equal(e, OSY_ERR_TRANSIENT);
        assert_true(osy_err_is_retryable(e));

        control_ok("broker-up 1");
        assert_int_equal(osy_kafka_produce_sync(p, "optsync.audit", "k", 1,
                                                "after", 5, 15000, errstr,
                                                sizeof(errstr)),
                         OSY_OK);
        /* The unacknowledged one was kept and delivered too. */
        assert_int_equal(
            osy_kafka_producer_flush(p, 5000, errstr, sizeof(errstr)), OSY_OK);
        osy_kafka_producer_destroy(p);
}

static void rtt_delays_acknowledgements(void **state)
{
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(osy_test_kafka_start(&kafka, 1, 1), 0);
        osy_kafka_producer_t *p = producer();
        /* Warm up: connection and producer id are in place. */
        assert_int_equal(osy_kafka_produce_sync(p, "optsync.audit", NULL, 0,
                                                "x", 1, 10000, errstr,
                                                sizeof(errstr)),
                         OSY_OK);
        int64_t t0 = osy_test_now_ms();
        assert_int_equal(osy_kafka_produce_sync(p, "optsync.audit", NULL, 0,
                                                "x", 1, 10000, errstr,
                                                sizeof(errstr)),
                         OSY_OK);
        int64_t fast = osy_test_now_ms() - t0;
        control_ok("rtt 1 500");
        t0 = osy_test_now_ms();
        assert_int_equal(osy_kafka_produce_sync(p, "optsync.audit", NULL, 0,
                                                "x", 1, 10000, errstr,
                                                sizeof(errstr)),
                         OSY_OK);
        int64_t slow = osy_test_now_ms() - t0;
        assert_true(fast < 400);
        assert_true(slow >= 450);
        control_ok("rtt 1 0");
        osy_kafka_producer_destroy(p);
}

static void request_errors_reach_the_producer(void **state)
{
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(osy_test_kafka_start(&kafka, 1, 1), 0);
        osy_kafka_producer_t *p = producer();
        assert_int_equal(osy_kafka_produce_sync(p, "optsync.audit", "k", 1, "x",
                                                1, 10000, errstr,
                                                sizeof(errstr)),
                         OSY_OK);
        /* ApiKey 0 = Produce; a refusal that is never retried. */
        control_ok("request-errors 0 1 MSG_SIZE_TOO_LARGE");
        osy_err_t e = osy_kafka_produce_sync(p, "optsync.audit", "k", 1, "y", 1,
                                             10000, errstr, sizeof(errstr));
        assert_int_equal(e, OSY_ERR_TOO_LARGE);
        assert_non_null(strstr(errstr, "too large"));

        /* Pushed then cleared: the next message goes through. */
        control_ok("request-errors 0 5 10");
        control_ok("clear-request-errors 0");
        assert_int_equal(osy_kafka_produce_sync(p, "optsync.audit", "k", 1, "z",
                                                1, 10000, errstr,
                                                sizeof(errstr)),
                         OSY_OK);
        osy_kafka_producer_destroy(p);
}

static void sigterm_exits_zero_promptly(void **state)
{
        (void)state;

        assert_int_equal(osy_test_kafka_start(&kafka, 3, 6), 0);
        control_ok("ping");
        int64_t t0 = osy_test_now_ms();
        int status = osy_test_kafka_stop(&kafka);
        assert_true(osy_test_now_ms() - t0 < 3000);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

static int run_launcher(char *const argv[])
{
        int status = -1;
        pid_t pid  = osy_test_spawn(argv, "/dev/null");
        assert_true(pid > 0);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        return WEXITSTATUS(status);
}

static void bad_flags_exit_2_and_help_exits_0(void **state)
{
        char *const help[]   = {LAUNCHER, "--help", NULL};
        char *const zero[]   = {LAUNCHER, "--partitions", "0", NULL};
        char *const junk[]   = {LAUNCHER, "--brokers", "3x", NULL};
        char *const prefix[] = {LAUNCHER, "--prefix", "bad prefix", NULL};
        char *const flag[]   = {LAUNCHER, "--nope", "1", NULL};
        char *const dangle[] = {LAUNCHER, "--brokers", NULL};
        (void)state;

        assert_int_equal(run_launcher(help), 0);
        assert_int_equal(run_launcher(zero), 2);
        assert_int_equal(run_launcher(junk), 2);
        assert_int_equal(run_launcher(prefix), 2);
        assert_int_equal(run_launcher(flag), 2);
        assert_int_equal(run_launcher(dangle), 2);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_teardown(writes_bootstrap_and_prints_it_first, teardown),
    cmocka_unit_test_teardown(every_contract_topic_has_requested_partitions,
                              teardown),
    cmocka_unit_test_teardown(prefix_option_names_the_topics, teardown),
    cmocka_unit_test_teardown(control_answers_ping_and_help, teardown),
    cmocka_unit_test_teardown(control_rejects_garbage_and_survives, teardown),
    cmocka_unit_test_teardown(control_creates_topics_and_moves_leaders,
                              teardown),
    cmocka_unit_test_teardown(topic_error_reaches_metadata, teardown),
    cmocka_unit_test_teardown(broker_down_fails_transiently_then_recovers,
                              teardown),
    cmocka_unit_test_teardown(rtt_delays_acknowledgements, teardown),
    cmocka_unit_test_teardown(request_errors_reach_the_producer, teardown),
    cmocka_unit_test_teardown(sigterm_exits_zero_promptly, teardown),
    cmocka_unit_test(bad_flags_exit_2_and_help_exits_0),
};

OSY_TEST_MAIN(tests, NULL, NULL)
