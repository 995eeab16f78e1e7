/*
 * test_sf_ingest_poll.c - sf-ingest in polling mode against the sandbox:
 * only real opt-out changes are published (overlap re-reads and other
 * edits are not), pages are followed, the watermark moves after Kafka's
 * acknowledgement and a restart resumes from it, errors are retried.
 */
#include "test_sf_harness.h"

/* Ten contacts, none opted out; one lead; small query pages. */
static const char fixture[] =
    "{\"tenants\":{\"" SFH_TENANT "\":{\"sf\":{\"query_batch_size\":3,"
    "\"contacts\":["
    "{\"LastName\":\"A\",\"Email\":\"a@example.com\"},"
    "{\"LastName\":\"B\",\"Email\":\"b@example.com\"},"
    "{\"LastName\":\"C\",\"Email\":\"c@example.com\"},"
    "{\"LastName\":\"D\",\"Email\":\"d@example.com\"},"
    "{\"LastName\":\"E\",\"Email\":\"e@example.com\"},"
    "{\"LastName\":\"F\",\"Email\":\"f@example.com\"},"
    "{\"LastName\":\"G\",\"Email\":\"g@example.com\"},"
    "{\"LastName\":\"H\",\"Email\":\"h@example.com\"},"
    "{\"LastName\":\"I\",\"Email\":\"i@example.com\"},"
    "{\"LastName\":\"J\"}],"
    "\"leads\":[{\"LastName\":\"Lee\",\"Company\":\"X\","
    "\"Email\":\"lee@example.com\"}]}}}}";

static struct sfh_rec recs[SFH_MAX_RECS];

static int setup(void **state)
{
        struct sfh *h = calloc(1, sizeof(*h));
        int rc        = sfh_start(h, fixture, NULL);

        h->o.mode = OSY_SFI_MODE_POLL;
        *state    = h;
        return rc;
}

static int teardown(void **state)
{
        struct sfh *h = *state;

        sfh_stop(h);
        free(h);
        return 0;
}

/* Waits for @p k more completed polls (each object counts). */
static void polls(struct sfh *h, uint64_t k)
{
        uint64_t want = sfh_stats(h).polls + 2 * k;

        SFH_WAIT(sfh_stats(h).polls >= want, 10000);
}

static void only_real_changes_are_published(void **state)
{
        struct sfh *h = *state;
        const char *a = sfh_id(h, "contacts", 0);
        const char *b = sfh_id(h, "contacts", 1);
        char path[128], wm[32];
        size_t n;

        sfh_worker_start(h);
        SFH_WAIT(sfh_ready(h), 10000);
        sfh_optout(h, a, 1);
        snprintf(path, sizeof(path), "/records/%s/edit", b);
        sfh_ctl(h, "POST", path, "{\"LastName\":\"Bee\"}");
        /* Several polls: the overlap re-reads both records each time. */
        polls(h, 3);
        n = sfh_consume(h, 1, 300, 10000, recs);
        assert_int_equal(n, 1);
        assert_string_equal(recs[0].record_id, a);
        assert_string_equal(recs[0].email, "a@example.com");
        assert_int_equal(recs[0].opt_out, OSY_TRI_TRUE);
        assert_string_equal(recs[0].replay_id, "");
        sfh_recs_free(recs, n);

        /* Unticking is a change too. */
        sfh_optout(h, a, 0);
        polls(h, 2);
        n = sfh_consume(h, 2, 300, 10000, recs);
        assert_int_equal(n, 2);
        assert_int_equal(recs[1].opt_out + recs[0].opt_out,
                         OSY_TRI_TRUE + OSY_TRI_FALSE);
        /* occurred_at is SystemModstamp: the second is not older. */
        sfh_redis_get(h, "wm:Contact", wm, sizeof(wm));
        assert_true(strtoll(wm, NULL, 10) > 0);
        sfh_recs_free(recs, n);
}

static void pages_are_followed_and_the_mark_moves(void **state)
{
        struct sfh *h = *state;
        char wm[32], before[32];
        struct osy_sfi_stats s0;
        size_t n;

        sfh_worker_start(h);
        SFH_WAIT(sfh_ready(h), 10000);
        sfh_redis_get(h, "wm:Contact", before, sizeof(before));
        s0 = sfh_stats(h);
        for (int i = 0; i < 9; i++)
                sfh_optout(h, sfh_id(h, "contacts", i), 1);
        n = sfh_consume(h, 9, 500, 15000, recs);
        assert_int_equal(n, 9);
        for (int i = 0; i < 9; i++)
                assert_int_equal(sfh_count(recs, n, sfh_id(h, "contacts", i),
                                           OSY_SF_OPT_OUT_CHANGED),
                                 1);
        /* Nine rows in pages of three: at least three calls that poll. */
        assert_true(sfh_stats(h).api_calls - s0.api_calls >= 3);
        sfh_redis_get(h, "wm:Contact", wm, sizeof(wm));
        assert_true(strtoll(wm, NULL, 10) >= strtoll(before, NULL, 10));
        sfh_recs_free(recs, n);
}

static void a_record_without_email_is_skipped(void **state)
{
        struct sfh *h = *state;
        const char *j = sfh_id(h, "contacts", 9);
        const char *a = sfh_id(h, "contacts", 0);
        size_t n;

        sfh_worker_start(h);
        SFH_WAIT(sfh_ready(h), 10000);
        sfh_optout(h, j, 1);
        sfh_optout(h, a, 1);
        n = sfh_consume(h, 1, 800, 10000, recs);
        assert_int_equal(n, 1);
        assert_string_equal(recs[0].record_id, a);
        sfh_recs_free(recs, n);
}

static void restart_resumes_from_the_watermark(void **state)
{
        struct sfh *h = *state;
        const char *a = sfh_id(h, "contacts", 0);
        const char *b = sfh_id(h, "contacts", 1);
        size_t n;

        sfh_worker_start(h);
        SFH_WAIT(sfh_ready(h), 10000);
        sfh_optout(h, a, 1);
        SFH_WAIT(sfh_stats(h).published == 1, 10000);
        sfh_worker_stop(h);
        sfh_optout(h, b, 1);
        sfh_worker_start(h);
        SFH_WAIT(sfh_stats(h).published >= 1, 10000);
        polls(h, 2);
        n = sfh_consume(h, 2, 300, 10000, recs);
        /* b once; a not again (known as opted out). */
        assert_int_equal(n, 2);
        assert_int_equal(sfh_count(recs, n, a, OSY_SF_OPT_OUT_CHANGED), 1);
        assert_int_equal(sfh_count(recs, n, b, OSY_SF_OPT_OUT_CHANGED), 1);
        sfh_recs_free(recs, n);
}

static void lead_conversion_is_seen_by_polling(void **state)
{
        struct sfh *h  = *state;
        const char *l0 = sfh_id(h, "leads", 0);
        char path[128];
        size_t n;

        sfh_worker_start(h);
        SFH_WAIT(sfh_ready(h), 10000);
        polls(h, 1); /* the lead is known unconverted now */
        snprintf(path, sizeof(path), "/leads/%s/convert", l0);
        sfh_ctl(h, "POST", path, "{}");
        polls(h, 2);
        n = sfh_consume(h, 1, 300, 10000, recs);
        assert_int_equal(sfh_count(recs, n, l0, OSY_SF_LEAD_CONVERTED), 1);
        sfh_recs_free(recs, n);
}

static void query_errors_are_retried(void **state)
{
        struct sfh *h = *state;
        const char *a = sfh_id(h, "contacts", 0);
        size_t n;

        /* Two HTML 503 pages, then a 401 with SF's body: each poll that
         * fails is retried, the 401 by a fresh token. */
        sfh_ctl(h, "POST", "/sandbox/faults",
                "[{\"endpoint\":\"sf.query\",\"kind\":\"html503\",\"count\":2},"
                "{\"endpoint\":\"sf.query\",\"kind\":\"status\",\"status\":401,"
                "\"count\":1,\"body\":[{\"message\":\"Session expired or "
                "invalid\",\"errorCode\":\"INVALID_SESSION_ID\"}]}]");
        sfh_optout(h, a, 1);
        sfh_worker_start(h);
        n = sfh_consume(h, 1, 300, 15000, recs);
        assert_int_equal(sfh_count(recs, n, a, OSY_SF_OPT_OUT_CHANGED), 1);
        assert_true(sfh_stats(h).batch_failures >= 2);
        assert_true(sfh_stats(h).token_fetches >= 2);
        SFH_WAIT(sfh_ready(h), 10000);
        sfh_recs_free(recs, n);
}

/* One contact stamped in year 2999 (a bad import or clock). Before, the
 * first poll moved the watermark there, and every later poll asked for
 * SystemModstamp >= 2999: the next opt-out was never published. */
static const char future_fixture[] =
    "{\"tenants\":{\"" SFH_TENANT "\":{\"sf\":{\"contacts\":["
    "{\"LastName\":\"A\",\"Email\":\"a@example.com\"},"
    "{\"LastName\":\"F\",\"Email\":\"f@example.com\","
    "\"SystemModstamp\":\"2999-01-01T00:00:00.000Z\"}]}}}}";

static int setup_future(void **state)
{
        struct sfh *h = calloc(1, sizeof(*h));
        int rc        = sfh_start(h, future_fixture, NULL);

        h->o.mode = OSY_SFI_MODE_POLL;
        *state    = h;
        return rc;
}

static void a_future_modstamp_does_not_carry_the_mark(void **state)
{
        struct sfh *h = *state;
        const char *a = sfh_id(h, "contacts", 0);
        struct timespec now;
        char wm[32];
        size_t n;

        sfh_worker_start(h);
        SFH_WAIT(sfh_ready(h), 10000);
        polls(h, 2);
        clock_gettime(CLOCK_REALTIME, &now);
        sfh_redis_get(h, "wm:Contact", wm, sizeof(wm));
        /* At most the allowed skew (5 min) ahead of now. */
        assert_true(strtoll(wm, NULL, 10) <=
                    (int64_t)now.tv_sec * 1000 + 5 * 60 * 1000);
        sfh_optout(h, a, 1);
        n = sfh_consume(h, 1, 300, 10000, recs);
        assert_int_equal(n, 1);
        assert_string_equal(recs[0].record_id, a);
        assert_int_equal(recs[0].opt_out, OSY_TRI_TRUE);
        sfh_recs_free(recs, n);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(only_real_changes_are_published,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                pages_are_followed_and_the_mark_moves, setup, teardown),
            cmocka_unit_test_setup_teardown(a_record_without_email_is_skipped,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(restart_resumes_from_the_watermark,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(lead_conversion_is_seen_by_polling,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                a_future_modstamp_does_not_carry_the_mark, setup_future,
                teardown),
            cmocka_unit_test_setup_teardown(query_errors_are_retried, setup,
                                            teardown),
        };

        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
