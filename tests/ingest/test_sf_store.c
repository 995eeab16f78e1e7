/*
 * test_sf_store.c - sf-ingest's Redis state against a real redis-server:
 * replay ids and watermarks, per-record state merged field by field with
 * a TTL, and transactions whose failures are reported.
 */
#include "osy_test.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fx {
        struct osy_test_redis srv;
        osy_redis_t *r;
        osy_redis_t *other; /* a second client, to look from outside */
        osy_sfi_store_t *s;
};

static int setup(void **state)
{
        struct fx *f            = calloc(1, sizeof(*f));
        struct osy_redis_opts o = {0};
        char e[OSY_ERRSTR_SIZE];

        if (!f || osy_test_redis_start(&f->srv))
                return -1;
        o.host = "127.0.0.1";
        o.port = f->srv.port;
        if (osy_redis_connect(&f->r, &o, e, sizeof(e)) ||
            osy_redis_connect(&f->other, &o, e, sizeof(e)) ||
            osy_sfi_store_new(&f->s, f->r, "t", "acme", 60000, e, sizeof(e)))
                return -1;
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fx *f = *state;

        osy_sfi_store_destroy(f->s);
        osy_redis_destroy(f->r);
        osy_redis_destroy(f->other);
        osy_test_redis_stop(&f->srv);
        free(f);
        return 0;
}

/* A test starts from an empty database. */
static int flush(void **state)
{
        struct fx *f       = *state;
        const char *argv[] = {"FLUSHALL"};
        redisReply *rep    = NULL;
        char e[OSY_ERRSTR_SIZE];

        if (osy_redis_command_argv(f->r, 1, argv, NULL, &rep, e, sizeof(e)))
                return -1;
        freeReplyObject(rep);
        return 0;
}

static redisReply *cmd(struct fx *f, int argc, const char **argv)
{
        redisReply *rep = NULL;
        char e[OSY_ERRSTR_SIZE];

        if (osy_redis_command_argv(f->other, argc, argv, NULL, &rep, e,
                                   sizeof(e)))
                fail_msg("redis: %s", e);
        return rep;
}

static void tx_ok(struct fx *f)
{
        char e[OSY_ERRSTR_SIZE] = "";

        if (osy_sfi_store_exec(f->s, e, sizeof(e)))
                fail_msg("exec: %s", e);
}

static void missing_keys_are_not_found(void **state)
{
        struct fx *f = *state;
        char buf[64], e[OSY_ERRSTR_SIZE];
        int64_t v = 42;

        assert_int_equal(osy_sfi_store_get(f->s, "replay:/data/X", buf,
                                           sizeof(buf), e, sizeof(e)),
                         OSY_ERR_NOT_FOUND);
        assert_int_equal(
            osy_sfi_store_get_ms(f->s, "wm:Lead", &v, e, sizeof(e)),
            OSY_ERR_NOT_FOUND);
        assert_int_equal(v, 42);
}

static void values_round_trip_under_the_tenant_prefix(void **state)
{
        struct fx *f = *state;
        char buf[64], e[OSY_ERRSTR_SIZE];
        const char *get[] = {"GET", "t:sfi:acme:replay:/data/LeadChangeEvent"};
        redisReply *rep;
        int64_t v = 0;

        assert_int_equal(osy_sfi_store_begin(f->s, e, sizeof(e)), OSY_OK);
        assert_int_equal(osy_sfi_store_set(f->s, "replay:/data/LeadChangeEvent",
                                           "48213", e, sizeof(e)),
                         OSY_OK);
        assert_int_equal(osy_sfi_store_set_ms(f->s, "wm:Lead", 1795666445123LL,
                                              e, sizeof(e)),
                         OSY_OK);
        /* Nothing is visible before exec. */
        rep = cmd(f, 2, get);
        assert_int_equal(rep->type, REDIS_REPLY_NIL);
        freeReplyObject(rep);
        tx_ok(f);
        assert_int_equal(osy_sfi_store_get(f->s, "replay:/data/LeadChangeEvent",
                                           buf, sizeof(buf), e, sizeof(e)),
                         OSY_OK);
        assert_string_equal(buf, "48213");
        rep = cmd(f, 2, get);
        assert_string_equal(rep->str, "48213");
        freeReplyObject(rep);
        assert_int_equal(
            osy_sfi_store_get_ms(f->s, "wm:Lead", &v, e, sizeof(e)), OSY_OK);
        assert_int_equal(v, 1795666445123LL);

        assert_int_equal(osy_sfi_store_begin(f->s, e, sizeof(e)), OSY_OK);
        assert_int_equal(osy_sfi_store_del(f->s, "wm:Lead", e, sizeof(e)),
                         OSY_OK);
        tx_ok(f);
        assert_int_equal(
            osy_sfi_store_get_ms(f->s, "wm:Lead", &v, e, sizeof(e)),
            OSY_ERR_NOT_FOUND);
}

static void garbage_watermark_is_an_error(void **state)
{
        struct fx *f = *state;
        /* Not a number; and numbers no time is: INT64_MIN made the poll's
         * "watermark - overlap" overflow, and past year 9999 every poll
         * failed to format its SOQL. */
        static const char *const bad[] = {"12x", "-9223372036854775808", "-1",
                                          "253402300800000"};
        const char *argv[]             = {"SET", "t:sfi:acme:wm:Contact", NULL};
        char e[OSY_ERRSTR_SIZE];
        int64_t v;

        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                argv[2] = bad[i];
                freeReplyObject(cmd(f, 3, argv));
                if (osy_sfi_store_get_ms(f->s, "wm:Contact", &v, e,
                                         sizeof(e)) != OSY_ERR_INVALID)
                        fail_msg("watermark %s accepted", bad[i]);
        }
        argv[2] = "253402300799999";
        freeReplyObject(cmd(f, 3, argv));
        assert_int_equal(
            osy_sfi_store_get_ms(f->s, "wm:Contact", &v, e, sizeof(e)), OSY_OK);
}

static void record_state_merges_fields_with_a_ttl(void **state)
{
        struct fx *f                        = *state;
        struct osy_sfi_state_update u       = {0};
        const char ids[3][OSY_SFI_ID_BUFSZ] = {
            "003000000000001AAA", "00Q000000000002AAA", "003000000000003AAA"};
        struct osy_sfi_recstate st[3];
        const char *pttl[] = {"PTTL", "t:sfi:acme:rec:003000000000001AAA"};
        char e[OSY_ERRSTR_SIZE];
        redisReply *rep;

        assert_int_equal(osy_sfi_store_begin(f->s, e, sizeof(e)), OSY_OK);
        snprintf(u.record_id, sizeof(u.record_id), "%s", ids[0]);
        snprintf(u.email, sizeof(u.email), "a@b.c");
        assert_int_equal(osy_sfi_store_state(f->s, &u, e, sizeof(e)), OSY_OK);
        memset(&u, 0, sizeof(u));
        snprintf(u.record_id, sizeof(u.record_id), "%s", ids[1]);
        u.opt_out      = OSY_TRI_FALSE;
        u.is_converted = OSY_TRI_TRUE;
        assert_int_equal(osy_sfi_store_state(f->s, &u, e, sizeof(e)), OSY_OK);
        tx_ok(f);

        /* A later update of one field keeps the others. */
        assert_int_equal(osy_sfi_store_begin(f->s, e, sizeof(e)), OSY_OK);
        memset(&u, 0, sizeof(u));
        snprintf(u.record_id, sizeof(u.record_id), "%s", ids[0]);
        u.opt_out = OSY_TRI_TRUE;
        assert_int_equal(osy_sfi_store_state(f->s, &u, e, sizeof(e)), OSY_OK);
        tx_ok(f);

        assert_int_equal(
            osy_sfi_store_get_states(f->s, ids, 3, st, e, sizeof(e)), OSY_OK);
        assert_true(st[0].known);
        assert_int_equal(st[0].opt_out, OSY_TRI_TRUE);
        assert_string_equal(st[0].email, "a@b.c");
        assert_int_equal(st[0].is_converted, OSY_TRI_UNSET);
        assert_true(st[1].known);
        assert_int_equal(st[1].opt_out, OSY_TRI_FALSE);
        assert_int_equal(st[1].is_converted, OSY_TRI_TRUE);
        assert_string_equal(st[1].email, "");
        assert_false(st[2].known);

        rep = cmd(f, 2, pttl);
        assert_true(rep->integer > 0 && rep->integer <= 60000);
        freeReplyObject(rep);
}

static void many_states_read_in_chunks(void **state)
{
        struct fx *f                 = *state;
        size_t n                     = 1234;
        char(*ids)[OSY_SFI_ID_BUFSZ] = calloc(n, sizeof(*ids));
        struct osy_sfi_recstate *st  = calloc(n, sizeof(*st));
        char e[OSY_ERRSTR_SIZE];

        assert_int_equal(osy_sfi_store_begin(f->s, e, sizeof(e)), OSY_OK);
        for (size_t i = 0; i < n; i++) {
                struct osy_sfi_state_update u = {0};
                snprintf(ids[i], sizeof(ids[i]), "003%015zu", i);
                memcpy(u.record_id, ids[i], sizeof(u.record_id));
                u.opt_out = i % 2 ? OSY_TRI_TRUE : OSY_TRI_FALSE;
                if (i % 3)
                        assert_int_equal(
                            osy_sfi_store_state(f->s, &u, e, sizeof(e)),
                            OSY_OK);
        }
        tx_ok(f);
        assert_int_equal(
            osy_sfi_store_get_states(f->s, (const char(*)[OSY_SFI_ID_BUFSZ])ids,
                                     n, st, e, sizeof(e)),
            OSY_OK);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(st[i].known, i % 3 != 0);
                if (i % 3)
                        assert_int_equal(st[i].opt_out,
                                         i % 2 ? OSY_TRI_TRUE : OSY_TRI_FALSE);
        }
        free(ids);
        free(st);
}

static void failing_command_in_transaction_is_reported(void **state)
{
        struct fx *f                  = *state;
        struct osy_sfi_state_update u = {0};
        const char *set[] = {"SET", "t:sfi:acme:rec:003000000000001AAA", "x"};
        char buf[32], e[OSY_ERRSTR_SIZE] = "";

        /* The record key holds a string: HSET fails inside EXEC. */
        freeReplyObject(cmd(f, 3, set));
        assert_int_equal(osy_sfi_store_begin(f->s, e, sizeof(e)), OSY_OK);
        assert_int_equal(
            osy_sfi_store_set(f->s, "replay:/data/C", "5", e, sizeof(e)),
            OSY_OK);
        snprintf(u.record_id, sizeof(u.record_id), "003000000000001AAA");
        u.opt_out = OSY_TRI_TRUE;
        assert_int_equal(osy_sfi_store_state(f->s, &u, e, sizeof(e)), OSY_OK);
        assert_int_not_equal(osy_sfi_store_exec(f->s, e, sizeof(e)), OSY_OK);
        assert_true(e[0] != '\0');
        /* Redis runs the other commands of a failed EXEC, so the failure is
         * what the caller acts on (the batch is not counted as
         * committed); a new transaction still works. */
        assert_int_equal(osy_sfi_store_begin(f->s, e, sizeof(e)), OSY_OK);
        assert_int_equal(
            osy_sfi_store_set(f->s, "replay:/data/L", "6", e, sizeof(e)),
            OSY_OK);
        tx_ok(f);
        assert_int_equal(osy_sfi_store_get(f->s, "replay:/data/L", buf,
                                           sizeof(buf), e, sizeof(e)),
                         OSY_OK);
        assert_string_equal(buf, "6");
}

static void abandoned_transaction_is_never_sent(void **state)
{
        struct fx *f = *state;
        char buf[32], e[OSY_ERRSTR_SIZE];
        const char ids[1][OSY_SFI_ID_BUFSZ] = {"003000000000001AAA"};
        struct osy_sfi_recstate st;

        assert_int_equal(osy_sfi_store_begin(f->s, e, sizeof(e)), OSY_OK);
        assert_int_equal(
            osy_sfi_store_set(f->s, "replay:/data/C", "1", e, sizeof(e)),
            OSY_OK);
        /* A read in between abandons it ... */
        assert_int_equal(
            osy_sfi_store_get_states(f->s, ids, 1, &st, e, sizeof(e)), OSY_OK);
        /* ... and so does a new begin. */
        assert_int_equal(osy_sfi_store_begin(f->s, e, sizeof(e)), OSY_OK);
        assert_int_equal(
            osy_sfi_store_set(f->s, "replay:/data/D", "2", e, sizeof(e)),
            OSY_OK);
        assert_int_equal(osy_sfi_store_begin(f->s, e, sizeof(e)), OSY_OK);
        tx_ok(f);
        assert_int_equal(osy_sfi_store_get(f->s, "replay:/data/C", buf,
                                           sizeof(buf), e, sizeof(e)),
                         OSY_ERR_NOT_FOUND);
        assert_int_equal(osy_sfi_store_get(f->s, "replay:/data/D", buf,
                                           sizeof(buf), e, sizeof(e)),
                         OSY_ERR_NOT_FOUND);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup(missing_keys_are_not_found, flush),
            cmocka_unit_test_setup(values_round_trip_under_the_tenant_prefix,
                                   flush),
            cmocka_unit_test_setup(garbage_watermark_is_an_error, flush),
            cmocka_unit_test_setup(record_state_merges_fields_with_a_ttl,
                                   flush),
            cmocka_unit_test_setup(many_states_read_in_chunks, flush),
            cmocka_unit_test_setup(failing_command_in_transaction_is_reported,
                                   flush),
            cmocka_unit_test_setup(abandoned_transaction_is_never_sent, flush),
        };

        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, setup, teardown);
}
