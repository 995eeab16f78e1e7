/*
 * test_kafka.c - Kafka helpers without a broker: the error mapping, option
 * validation, the properties that reach librdkafka, secrets kept out of
 * logs, and delivery callbacks that still run when nothing is reachable.
 */
#include "osy_test.h"
#include "optsync/kafka.h"
#include "optsync/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nothing listens on port 1: connections are refused at once. */
#define NO_BROKER "127.0.0.1:1"

static int teardown(void **state)
{
        (void)state;
        osy_log_init("test", OSY_LOG_INFO, NULL);
        osy_log_clear_secrets();
        return 0;
}

/* Read a configuration value back from a live handle. */
static void conf_value(rd_kafka_t *rk, const char *name, char *buf, size_t size)
{
        size_t sz = size;
        assert_int_equal(rd_kafka_conf_get(rd_kafka_conf(rk), name, buf, &sz),
                         RD_KAFKA_CONF_OK);
}

static char *slurp(FILE *f)
{
        long n;
        char *buf;

        fflush(f);
        fseek(f, 0, SEEK_END);
        n = ftell(f);
        rewind(f);
        buf = calloc(1, (size_t)n + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
        return buf;
}

/* ---- error mapping ------------------------------------------------------ */

static void err_fatal_idempotence_errors(void **state)
{
        (void)state;
        assert_int_equal(osy_kafka_err(RD_KAFKA_RESP_ERR__FATAL),
                         OSY_ERR_FATAL);
        assert_int_equal(osy_kafka_err(RD_KAFKA_RESP_ERR__GAPLESS_GUARANTEE),
                         OSY_ERR_FATAL);
        assert_int_equal(
            osy_kafka_err(RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER),
            OSY_ERR_FATAL);
        assert_int_equal(
            osy_kafka_err(RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH),
            OSY_ERR_FATAL);
        assert_int_equal(osy_kafka_err(RD_KAFKA_RESP_ERR_PRODUCER_FENCED),
                         OSY_ERR_FATAL);
}

static void err_transient_network_and_timeouts(void **state)
{
        static const rd_kafka_resp_err_t transient[] = {
            RD_KAFKA_RESP_ERR__TRANSPORT,
            RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN,
            RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
            RD_KAFKA_RESP_ERR__TIMED_OUT,
            RD_KAFKA_RESP_ERR__QUEUE_FULL,
            RD_KAFKA_RESP_ERR__PURGE_QUEUE,
            RD_KAFKA_RESP_ERR__PURGE_INFLIGHT,
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS};
        (void)state;

        for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++) {
                osy_err_t e = osy_kafka_err(transient[i]);
                if (e != OSY_ERR_TRANSIENT)
                        fail_msg("%s mapped to %s",
                                 rd_kafka_err2name(transient[i]),
                                 osy_err2str(e));
                assert_true(osy_err_is_retryable(e));
        }
        assert_int_equal(
            osy_kafka_err(RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED),
            OSY_ERR_THROTTLED);
}

static void err_permanent_classes_are_not_retried(void **state)
{
        (void)state;
        assert_int_equal(osy_kafka_err(RD_KAFKA_RESP_ERR_NO_ERROR), OSY_OK);
        assert_int_equal(osy_kafka_err(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE),
                         OSY_ERR_TOO_LARGE);
        assert_int_equal(osy_kafka_err(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART),
                         OSY_ERR_INVALID);
        assert_int_equal(osy_kafka_err(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC),
                         OSY_ERR_INVALID);
        assert_int_equal(osy_kafka_err(RD_KAFKA_RESP_ERR__INVALID_ARG),
                         OSY_ERR_INVALID);
        assert_int_equal(
            osy_kafka_err(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED),
            OSY_ERR_AUTH);
        assert_int_equal(
            osy_kafka_err(RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED),
            OSY_ERR_AUTH);
        assert_int_equal(osy_kafka_err(RD_KAFKA_RESP_ERR_INVALID_RECORD),
                         OSY_ERR_PERMANENT);
        assert_int_equal(osy_kafka_err(RD_KAFKA_RESP_ERR_POLICY_VIOLATION),
                         OSY_ERR_PERMANENT);
        for (int e = RD_KAFKA_RESP_ERR__BEGIN; e < RD_KAFKA_RESP_ERR_END_ALL;
             e++) {
                osy_err_t o = osy_kafka_err((rd_kafka_resp_err_t)e);
                /* Only success maps to OK, and fatal is never retried. */
                assert_true(o != OSY_OK || e == 0);
                if (o == OSY_ERR_FATAL || o == OSY_ERR_INVALID)
                        assert_false(osy_err_is_retryable(o));
        }
}

/* ---- options ------------------------------------------------------------ */

static void producer_requires_bootstrap(void **state)
{
        struct osy_kafka_opts opts = {0};
        osy_kafka_producer_t *p    = (void *)1;
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(
            osy_kafka_producer_new(&p, &opts, errstr, sizeof(errstr)),
            OSY_ERR_INVALID);
        assert_null(p);
        assert_non_null(strstr(errstr, "bootstrap"));
        opts.bootstrap = "";
        errstr[0]      = '\0';
        assert_int_equal(
            osy_kafka_producer_new(&p, &opts, errstr, sizeof(errstr)),
            OSY_ERR_INVALID);
        assert_non_null(strstr(errstr, "bootstrap"));
}

static void consumer_requires_bootstrap_group_and_topics(void **state)
{
        const char *const topics[] = {"t", NULL};
        const char *const none[]   = {NULL};
        struct osy_kafka_opts opts = {.bootstrap = NO_BROKER};
        struct osy_kafka_opts nobs = {0};
        osy_kafka_consumer_t *c;
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(osy_kafka_consumer_new(&c, &nobs, "g", topics, NULL,
                                                errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(errstr, "bootstrap"));
        assert_int_equal(osy_kafka_consumer_new(&c, &opts, NULL, topics, NULL,
                                                errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(errstr, "group"));
        assert_int_equal(osy_kafka_consumer_new(&c, &opts, "g", none, NULL,
                                                errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(errstr, "topic"));
        assert_null(c);
}

static void producer_contract_and_extra_properties_applied(void **state)
{
        const char *const extra[]  = {"linger.ms", "42", "compression.type",
                                      "lz4", NULL};
        struct osy_kafka_opts opts = {
            .bootstrap = NO_BROKER, .client_id = "ac-ingest-7", .extra = extra};
        osy_kafka_producer_t *p;
        char errstr[OSY_ERRSTR_SIZE], v[256];
        (void)state;

        assert_int_equal(
            osy_kafka_producer_new(&p, &opts, errstr, sizeof(errstr)), OSY_OK);
        rd_kafka_t *rk = osy_kafka_producer_handle(p);
        conf_value(rk, "linger.ms", v, sizeof(v));
        assert_string_equal(v, "42");
        conf_value(rk, "compression.type", v, sizeof(v));
        assert_string_equal(v, "lz4");
        conf_value(rk, "client.id", v, sizeof(v));
        assert_string_equal(v, "ac-ingest-7");
        conf_value(rk, "bootstrap.servers", v, sizeof(v));
        assert_string_equal(v, NO_BROKER);
        conf_value(rk, "enable.idempotence", v, sizeof(v));
        assert_string_equal(v, "true");
        conf_value(rk, "acks", v, sizeof(v));
        assert_string_equal(v, "-1"); /* all */
        osy_kafka_producer_destroy(p);
}

static void producer_default_linger_and_client_id(void **state)
{
        struct osy_kafka_opts opts = {.bootstrap = NO_BROKER};
        osy_kafka_producer_t *p;
        char v[256];
        (void)state;

        assert_int_equal(osy_kafka_producer_new(&p, &opts, NULL, 0), OSY_OK);
        conf_value(osy_kafka_producer_handle(p), "linger.ms", v, sizeof(v));
        assert_string_equal(v, "5");
        conf_value(osy_kafka_producer_handle(p), "client.id", v, sizeof(v));
        assert_string_equal(v, "optsync");
        osy_kafka_producer_destroy(p);
}

static void consumer_contract_and_extra_properties_applied(void **state)
{
        const char *const topics[] = {"optsync.ac.events", "optsync.sf.events",
                                      NULL};
        const char *const extra[]  = {"session.timeout.ms", "7000", NULL};
        struct osy_kafka_opts opts = {.bootstrap = NO_BROKER, .extra = extra};
        osy_kafka_consumer_t *c;
        char errstr[OSY_ERRSTR_SIZE], v[256];
        (void)state;

        assert_int_equal(osy_kafka_consumer_new(&c, &opts, "rules", topics,
                                                NULL, errstr, sizeof(errstr)),
                         OSY_OK);
        rd_kafka_t *rk = osy_kafka_consumer_handle(c);
        conf_value(rk, "group.id", v, sizeof(v));
        assert_string_equal(v, "rules");
        conf_value(rk, "enable.auto.offset.store", v, sizeof(v));
        assert_string_equal(v, "false");
        conf_value(rk, "enable.auto.commit", v, sizeof(v));
        assert_string_equal(v, "true");
        conf_value(rk, "partition.assignment.strategy", v, sizeof(v));
        assert_string_equal(v, "cooperative-sticky");
        conf_value(rk, "session.timeout.ms", v, sizeof(v));
        assert_string_equal(v, "7000");

        rd_kafka_topic_partition_list_t *subs;
        assert_int_equal(rd_kafka_subscription(rk, &subs), 0);
        assert_int_equal(subs->cnt, 2);
        rd_kafka_topic_partition_list_destroy(subs);

        int64_t t0 = osy_test_now_ms();
        assert_int_equal(osy_kafka_consumer_close(c, errstr, sizeof(errstr)),
                         OSY_OK);
        /* Closing twice is harmless; closing without a broker is quick. */
        assert_int_equal(osy_kafka_consumer_close(c, errstr, sizeof(errstr)),
                         OSY_OK);
        assert_true(osy_test_now_ms() - t0 < 5000);
        osy_kafka_consumer_destroy(c);
}

static void bad_property_name_is_named(void **state)
{
        const char *const extra[]  = {"linger.ms", "1", "no.such.property", "1",
                                      NULL};
        struct osy_kafka_opts opts = {.bootstrap = NO_BROKER, .extra = extra};
        const char *const topics[] = {"t", NULL};
        osy_kafka_producer_t *p;
        osy_kafka_consumer_t *c;
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(
            osy_kafka_producer_new(&p, &opts, errstr, sizeof(errstr)),
            OSY_ERR_INVALID);
        assert_null(p);
        assert_non_null(strstr(errstr, "\"no.such.property\""));
        errstr[0] = '\0';
        assert_int_equal(osy_kafka_consumer_new(&c, &opts, "g", topics, NULL,
                                                errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
        assert_null(c);
        assert_non_null(strstr(errstr, "\"no.such.property\""));
}

static void bad_property_value_is_refused(void **state)
{
        const char *const extra[]  = {"linger.ms", "soon", NULL};
        struct osy_kafka_opts opts = {.bootstrap = NO_BROKER, .extra = extra};
        osy_kafka_producer_t *p;
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(
            osy_kafka_producer_new(&p, &opts, errstr, sizeof(errstr)),
            OSY_ERR_INVALID);
        assert_non_null(strstr(errstr, "linger.ms"));
}

static void property_without_value_is_refused(void **state)
{
        const char *const extra[]  = {"security.protocol", NULL};
        struct osy_kafka_opts opts = {.bootstrap = NO_BROKER, .extra = extra};
        osy_kafka_producer_t *p;
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(
            osy_kafka_producer_new(&p, &opts, errstr, sizeof(errstr)),
            OSY_ERR_INVALID);
        assert_non_null(strstr(errstr, "security.protocol"));
        assert_non_null(strstr(errstr, "no value"));
}

static void contract_properties_cannot_be_overridden(void **state)
{
        const char *const acks[]   = {"acks", "1", NULL};
        const char *const idemp[]  = {"enable.idempotence", "false", NULL};
        const char *const store[]  = {"enable.auto.offset.store", "true", NULL};
        const char *const topics[] = {"t", NULL};
        struct osy_kafka_opts opts = {.bootstrap = NO_BROKER};
        osy_kafka_producer_t *p;
        osy_kafka_consumer_t *c;
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        opts.extra = acks;
        assert_int_equal(
            osy_kafka_producer_new(&p, &opts, errstr, sizeof(errstr)),
            OSY_ERR_INVALID);
        assert_non_null(strstr(errstr, "\"acks\" is fixed"));
        opts.extra = idemp;
        assert_int_equal(
            osy_kafka_producer_new(&p, &opts, errstr, sizeof(errstr)),
            OSY_ERR_INVALID);
        assert_non_null(strstr(errstr, "enable.idempotence"));
        opts.extra = store;
        assert_int_equal(osy_kafka_consumer_new(&c, &opts, "g", topics, NULL,
                                                errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(errstr, "enable.auto.offset.store"));
}

/* ---- logging ------------------------------------------------------------ */

static void sasl_password_never_logged(void **state)
{
        const char *const extra[]  = {"security.protocol",
                                      "sasl_plaintext",
                                      "sasl.mechanisms",
                                      "PLAIN",
                                      "sasl.username",
                                      "optsync-user",
                                      "sasl.password",
                                      "hunter2-very-secret",
                                      "debug",
                                      "conf,security,broker",
                                      NULL};
        struct osy_kafka_opts opts = {.bootstrap = NO_BROKER, .extra = extra};
        osy_kafka_producer_t *p;
        FILE *f = tmpfile();
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        assert_non_null(f);
        osy_log_init("test", OSY_LOG_DEBUG, f);
        assert_int_equal(
            osy_kafka_producer_new(&p, &opts, errstr, sizeof(errstr)), OSY_OK);
        osy_test_sleep_ms(300); /* let it try to connect and log */
        /* The value is registered: even a careless caller cannot log it. */
        osy_log_info("connecting with %s", "hunter2-very-secret");
        osy_kafka_producer_destroy(p);
        osy_log_init("test", OSY_LOG_INFO, NULL);

        char *out = slurp(f);
        fclose(f);
        assert_null(strstr(out, "hunter2-very-secret"));
        assert_non_null(strstr(out, "connecting with ***"));
        /* librdkafka's own lines arrived as JSON with their facility. */
        assert_non_null(strstr(out, "\"source\":\"librdkafka\""));
        assert_non_null(strstr(out, "\"facility\":"));
        assert_non_null(strstr(out, "\"facility\":\"CONF\""));
        free(out);
}

/* ---- delivery callbacks without a broker ------------------------------- */

struct dr_count {
        int calls;
        int transient;
        int ok;
};

static void count_dr(void *opaque, osy_err_t err, const char *errstr,
                     int32_t partition, int64_t offset)
{
        struct dr_count *cnt = opaque;
        (void)partition;
        cnt->calls++;
        if (err == OSY_OK)
                cnt->ok++;
        if (err == OSY_ERR_TRANSIENT) {
                cnt->transient++;
                assert_true(*errstr);
                assert_int_equal(offset, -1);
        }
}

static void destroy_fails_pending_messages_through_callbacks(void **state)
{
        struct osy_kafka_opts opts = {.bootstrap        = NO_BROKER,
                                      .close_timeout_ms = 200};
        struct dr_count cnt        = {0};
        osy_kafka_producer_t *p;
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(
            osy_kafka_producer_new(&p, &opts, errstr, sizeof(errstr)), OSY_OK);
        for (int i = 0; i < 3; i++)
                assert_int_equal(osy_kafka_produce(p, "optsync.audit", "k", 1,
                                                   "v", 1, count_dr, &cnt,
                                                   errstr, sizeof(errstr)),
                                 OSY_OK);
        assert_int_equal(
            osy_kafka_producer_flush(p, 100, errstr, sizeof(errstr)),
            OSY_ERR_TRANSIENT);
        assert_non_null(strstr(errstr, "3 message"));
        assert_int_equal(cnt.calls, 0);
        int64_t t0 = osy_test_now_ms();
        osy_kafka_producer_destroy(p);
        assert_true(osy_test_now_ms() - t0 < 3000);
        assert_int_equal(cnt.calls, 3);
        assert_int_equal(cnt.transient, 3);
}

static void produce_sync_times_out_transiently(void **state)
{
        struct osy_kafka_opts opts = {.bootstrap        = NO_BROKER,
                                      .close_timeout_ms = 100};
        osy_kafka_producer_t *p;
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(
            osy_kafka_producer_new(&p, &opts, errstr, sizeof(errstr)), OSY_OK);
        int64_t t0  = osy_test_now_ms();
        osy_err_t e = osy_kafka_produce_sync(p, "optsync.audit", "k", 1, "v", 1,
                                             300, errstr, sizeof(errstr));
        int64_t took = osy_test_now_ms() - t0;
        assert_int_equal(e, OSY_ERR_TRANSIENT);
        assert_non_null(strstr(errstr, "not acknowledged"));
        assert_true(took >= 290 && took < 2000);
        /* The abandoned wait is released by the purge in destroy (ASan
         * reports a leak or use-after-free otherwise). */
        osy_kafka_producer_destroy(p);
}

static void produce_requires_topic(void **state)
{
        struct osy_kafka_opts opts = {.bootstrap = NO_BROKER};
        struct dr_count cnt        = {0};
        osy_kafka_producer_t *p;
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(osy_kafka_producer_new(&p, &opts, NULL, 0), OSY_OK);
        assert_int_equal(osy_kafka_produce(p, NULL, "k", 1, "v", 1, count_dr,
                                           &cnt, errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
        assert_int_equal(osy_kafka_produce(p, "", NULL, 0, "v", 1, count_dr,
                                           &cnt, errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(errstr, "topic"));
        assert_int_equal(osy_kafka_producer_fatal(p, errstr, sizeof(errstr)),
                         OSY_OK);
        osy_kafka_producer_destroy(p);
        assert_int_equal(cnt.calls, 0); /* refused: no callback, ever */
}

static void store_on_unassigned_partition_is_not_found(void **state)
{
        const char *const topics[] = {"optsync.ac.events", NULL};
        struct osy_kafka_opts opts = {.bootstrap = NO_BROKER};
        osy_kafka_consumer_t *c;
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(osy_kafka_consumer_new(&c, &opts, "g", topics, NULL,
                                                errstr, sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(osy_kafka_consumer_store_offset(c, "optsync.ac.events",
                                                         0, 41, errstr,
                                                         sizeof(errstr)),
                         OSY_ERR_NOT_FOUND);
        assert_non_null(strstr(errstr, "not assigned"));
        assert_int_equal(osy_kafka_consumer_store_offset(c, "optsync.ac.events",
                                                         -1, 41, errstr,
                                                         sizeof(errstr)),
                         OSY_ERR_INVALID);
        assert_int_equal(
            osy_kafka_consumer_store(c, NULL, errstr, sizeof(errstr)),
            OSY_ERR_INVALID);
        assert_null(osy_kafka_consumer_poll(c, 10));
        /* Nothing stored: committing is a no-op, not an error. */
        assert_int_equal(
            osy_kafka_consumer_commit_sync(c, errstr, sizeof(errstr)), OSY_OK);
        osy_kafka_consumer_destroy(c); /* closes implicitly */
}

static void destroy_is_null_safe(void **state)
{
        (void)state;
        osy_kafka_producer_destroy(NULL);
        osy_kafka_consumer_destroy(NULL);
        assert_int_equal(osy_kafka_consumer_close(NULL, NULL, 0), OSY_OK);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(err_fatal_idempotence_errors),
    cmocka_unit_test(err_transient_network_and_timeouts),
    cmocka_unit_test(err_permanent_classes_are_not_retried),
    cmocka_unit_test(producer_requires_bootstrap),
    cmocka_unit_test(consumer_requires_bootstrap_group_and_topics),
    cmocka_unit_test(producer_contract_and_extra_properties_applied),
    cmocka_unit_test(producer_default_linger_and_client_id),
    cmocka_unit_test(consumer_contract_and_extra_properties_applied),
    cmocka_unit_test(bad_property_name_is_named),
    cmocka_unit_test(bad_property_value_is_refused),
    cmocka_unit_test(property_without_value_is_refused),
    cmocka_unit_test(contract_properties_cannot_be_overridden),
    cmocka_unit_test_teardown(sasl_password_never_logged, teardown),
    cmocka_unit_test(destroy_fails_pending_messages_through_callbacks),
    cmocka_unit_test(produce_sync_times_out_transiently),
    cmocka_unit_test(produce_requires_topic),
    cmocka_unit_test(store_on_unassigned_partition_is_not_found),
    cmocka_unit_test(destroy_is_null_safe),
};

OSY_TEST_MAIN(tests, NULL, NULL)
