/*
 * test_sf_ingest_cdc.c - sf-ingest in CDC mode against the sandbox (CometD
 * with replay), the embedded Kafka and redis-server: what gets published,
 * what is committed, and recovery from expired tokens, unknown clients,
 * refused replay ids, HTML 503s, connect timeouts, restarts and outages.
 */
#include "test_sf_harness.h"

#include "optsync/sf_auth.h"

#include <time.h>

/* JWT expiry is wall-clock time: osy_sf_call() wants real UTC ms. */
static int64_t wall_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Contacts 0..3 not opted out, 4 opted out years ago (no event), 5..24 for
 * bulk changes; one unconverted Lead. */
static char *fixture(void)
{
        /* Contact 4 was opted out years ago: no poll sees it by itself. */
        static const char old_stamps[] =
            ",\"LastModifiedDate\":\"2020-01-01T00:00:00.000Z\","
            "\"SystemModstamp\":\"2020-01-01T00:00:00.000Z\"";
        size_t n   = 8192;
        char *s    = malloc(n);
        size_t off = 0;

        off += (size_t)snprintf(s + off, n - off,
                                "{\"tenants\":{\"" SFH_TENANT "\":{\"sf\":{"
                                "\"contacts\":[");
        for (int i = 0; i < 25; i++)
                off += (size_t)snprintf(s + off, n - off,
                                        "%s{\"LastName\":\"C%d\",\"Email\":"
                                        "\"Person%d@Example.com\","
                                        "\"HasOptedOutOfEmail\":%s%s}",
                                        i ? "," : "", i, i,
                                        i == 4 ? "true" : "false",
                                        i == 4 ? old_stamps : "");
        snprintf(s + off, n - off,
                 "],\"leads\":[{\"LastName\":\"Lee\",\"Company\":\"X\","
                 "\"Email\":\"lee@example.com\"}]}}}}");
        return s;
}

static int setup(void **state)
{
        struct sfh *h = calloc(1, sizeof(*h));
        char *fx      = fixture();
        int rc        = sfh_start(h, fx, NULL);

        free(fx);
        *state = h;
        return rc;
}

static int teardown(void **state)
{
        struct sfh *h = *state;

        sfh_stop(h);
        free(h);
        return 0;
}

static struct sfh_rec recs[SFH_MAX_RECS];

static void start_and_subscribe(struct sfh *h)
{
        sfh_worker_start(h);
        SFH_WAIT(sfh_ready(h), 10000);
}

/* ---- the happy paths ---------------------------------------------------- */

static void opt_out_change_is_published_then_committed(void **state)
{
        struct sfh *h  = *state;
        const char *c0 = sfh_id(h, "contacts", 0);
        char buf[64], name[96];
        size_t n;

        start_and_subscribe(h);
        sfh_optout(h, c0, 1);
        n = sfh_consume(h, 1, 300, 10000, recs);
        assert_int_equal(n, 1);
        assert_int_equal(recs[0].kind, OSY_SF_OPT_OUT_CHANGED);
        assert_string_equal(recs[0].record_id, c0);
        assert_string_equal(recs[0].email, "person0@example.com");
        assert_int_equal(recs[0].opt_out, OSY_TRI_TRUE);
        assert_true(recs[0].replay_id[0] != '\0');
        assert_false(recs[0].echo);
        /* The replay id moves once Kafka has the event. */
        snprintf(name, sizeof(name), "replay:/data/ContactChangeEvent");
        SFH_WAIT((sfh_redis_get(h, name, buf, sizeof(buf)),
                  !strcmp(buf, recs[0].replay_id)),
                 5000);
        assert_int_equal(sfh_stats(h).published, 1);
        sfh_recs_free(recs, n);
}

static void other_changes_publish_nothing(void **state)
{
        struct sfh *h  = *state;
        const char *c1 = sfh_id(h, "contacts", 1);
        char path[128];
        size_t n;

        start_and_subscribe(h);
        snprintf(path, sizeof(path), "/records/%s/edit", c1);
        sfh_ctl(h, "POST", path, "{\"LastName\":\"Renamed\"}");
        SFH_WAIT(sfh_stats(h).cdc_events >= 1, 5000);
        sfh_optout(h, c1, 1);
        sfh_optout(h, c1, 0);
        n = sfh_consume(h, 2, 500, 10000, recs);
        assert_int_equal(n, 2);
        assert_int_equal(recs[0].opt_out + recs[1].opt_out,
                         OSY_TRI_TRUE + OSY_TRI_FALSE);
        assert_int_equal(sfh_stats(h).cdc_events, 3);
        sfh_recs_free(recs, n);
}

static void lead_conversion_is_published(void **state)
{
        struct sfh *h  = *state;
        const char *l0 = sfh_id(h, "leads", 0);
        char path[128];
        size_t n;

        start_and_subscribe(h);
        snprintf(path, sizeof(path), "/leads/%s/convert", l0);
        sfh_ctl(h, "POST", path, "{}");
        n = sfh_consume(h, 1, 500, 10000, recs);
        assert_int_equal(sfh_count(recs, n, l0, OSY_SF_LEAD_CONVERTED), 1);
        for (size_t i = 0; i < n; i++)
                if (recs[i].kind == OSY_SF_LEAD_CONVERTED) {
                        assert_string_equal(recs[i].email, "lee@example.com");
                        assert_true(recs[i].converted_contact_id[0] == '0');
                }
        sfh_recs_free(recs, n);
}

static void our_own_writes_come_back_as_echoes(void **state)
{
        struct sfh *h                 = *state;
        const char *c2                = sfh_id(h, "contacts", 2);
        struct osy_http_response resp = {0};
        osy_http_client_t *http       = NULL;
        osy_sf_auth_t *auth           = NULL;
        char path[160], e[OSY_ERRSTR_SIZE] = "";
        const char *body = "{\"HasOptedOutOfEmail\":true}";
        size_t n;

        start_and_subscribe(h);
        /* What sf-writer does: PATCH with Sforce-Call-Options client. */
        assert_int_equal(osy_sf_auth_new(&auth, osy_tenants_at(h->tenants, 0),
                                         NULL, e, sizeof(e)),
                         OSY_OK);
        assert_int_equal(osy_http_client_new(&http, NULL, e, sizeof(e)),
                         OSY_OK);
        snprintf(path, sizeof(path), "/services/data/v59.0/sobjects/Contact/%s",
                 c2);
        assert_int_equal(osy_sf_call(auth, http, OSY_HTTP_PATCH, path, body,
                                     strlen(body), wall_ms(), &resp, e,
                                     sizeof(e)),
                         OSY_OK);
        assert_int_equal(resp.status, 204);
        osy_http_response_free(&resp);
        n = sfh_consume(h, 1, 300, 10000, recs);
        assert_int_equal(n, 1);
        assert_true(recs[0].echo);
        assert_non_null(strstr(recs[0].value, "client=optsync"));
        sfh_recs_free(recs, n);
        osy_http_client_destroy(http);
        osy_sf_auth_destroy(auth);
}

static void gap_events_are_read_back(void **state)
{
        struct sfh *h  = *state;
        const char *c4 = sfh_id(h, "contacts", 4); /* opted out, no event */
        const char *c0 = sfh_id(h, "contacts", 0);
        char body[160], path[128];
        size_t n;

        start_and_subscribe(h);
        snprintf(body, sizeof(body),
                 "{\"ids\":[\"%s\",\"%s\"],\"change_type\":\"GAP_UPDATE\"}", c4,
                 c0);
        sfh_ctl(h, "POST", "/cdc/gap", body);
        /* c4 is opted out: news. c0 is not and never was: nothing. */
        n = sfh_consume(h, 1, 500, 10000, recs);
        assert_int_equal(n, 1);
        assert_string_equal(recs[0].record_id, c4);
        assert_int_equal(recs[0].opt_out, OSY_TRI_TRUE);
        sfh_recs_free(recs, n);

        /* Overflow: the record is found by polling back from the event. */
        snprintf(path, sizeof(path), "/records/%s/automation", c0);
        sfh_ctl(h, "POST", path, "{}");
        sfh_optout(h, c0, 1); /* CDC: one event */
        sfh_ctl(h, "POST", "/cdc/gap",
                "{\"entity\":\"Contact\",\"change_type\":\"GAP_OVERFLOW\"}");
        SFH_WAIT(sfh_stats(h).polls >= 1, 10000);
        n = sfh_consume(h, 2, 500, 10000, recs);
        /* The poll knows c0 is opted out already (CDC said so): no
         * duplicate; c4 is known too. */
        assert_int_equal(n, 2);
        assert_int_equal(sfh_count(recs, n, c0, OSY_SF_OPT_OUT_CHANGED), 1);
        sfh_recs_free(recs, n);
}

/* ---- recovery ---------------------------------------------------------- */

static void expired_token_mid_stream_is_refreshed(void **state)
{
        struct sfh *h  = *state;
        const char *c0 = sfh_id(h, "contacts", 0);
        const char *c1 = sfh_id(h, "contacts", 1);
        size_t n;

        start_and_subscribe(h);
        sfh_optout(h, c0, 1);
        SFH_WAIT(sfh_stats(h).published == 1, 10000);
        sfh_ctl(h, "POST", "/tokens/expire", "{}");
        sfh_optout(h, c1, 1);
        n = sfh_consume(h, 2, 500, 15000, recs);
        assert_int_equal(sfh_count(recs, n, c1, OSY_SF_OPT_OUT_CHANGED), 1);
        assert_true(sfh_stats(h).token_fetches >= 2);
        assert_true(sfh_stats(h).handshakes >= 2);
        SFH_WAIT(sfh_ready(h), 10000);
        sfh_recs_free(recs, n);
}

static void unknown_client_makes_a_new_session(void **state)
{
        struct sfh *h  = *state;
        const char *c0 = sfh_id(h, "contacts", 0);
        size_t n;

        start_and_subscribe(h);
        sfh_ctl(h, "POST", "/cdc/drop_clients", "{}");
        /* The parked connect answers 403::Unknown client: handshake. */
        SFH_WAIT(sfh_stats(h).handshakes >= 2, 10000);
        SFH_WAIT(sfh_ready(h), 10000);
        assert_true(sfh_stats(h).reconnects >= 1);
        /* A fresh session only needs one token. */
        assert_int_equal(sfh_stats(h).token_fetches, 1);
        sfh_optout(h, c0, 1);
        n = sfh_consume(h, 1, 300, 10000, recs);
        assert_int_equal(n, 1);
        sfh_recs_free(recs, n);
}

static void refused_replay_id_is_backfilled_by_polling(void **state)
{
        struct sfh *h  = *state;
        const char *c0 = sfh_id(h, "contacts", 0);
        const char *c1 = sfh_id(h, "contacts", 1);
        const char *c2 = sfh_id(h, "contacts", 2);
        char buf[64];
        size_t n;

        start_and_subscribe(h);
        sfh_optout(h, c0, 1);
        SFH_WAIT(sfh_stats(h).published == 1, 10000);
        sfh_worker_stop(h);
        /* While down: a change, then the events age out of retention. */
        sfh_optout(h, c1, 1);
        sfh_ctl(h, "POST", "/sandbox/clock", "{\"advance_ms\":262800000}");
        sfh_worker_start(h);
        SFH_WAIT(sfh_ready(h), 15000);
        SFH_WAIT(sfh_stats(h).polls >= 1, 10000);
        assert_int_equal(sfh_stats(h).replay_invalid, 1);
        /* The refused id was dropped, not retried forever. */
        sfh_redis_get(h, "replay:/data/ContactChangeEvent", buf, sizeof(buf));
        assert_true(sfh_stats(h).handshakes <= 3);
        sfh_optout(h, c2, 1); /* after resubscribing at the tip */
        n = sfh_consume(h, 3, 500, 15000, recs);
        assert_int_equal(n, 3);
        assert_int_equal(sfh_count(recs, n, c0, OSY_SF_OPT_OUT_CHANGED), 1);
        assert_int_equal(sfh_count(recs, n, c1, OSY_SF_OPT_OUT_CHANGED), 1);
        assert_int_equal(sfh_count(recs, n, c2, OSY_SF_OPT_OUT_CHANGED), 1);
        for (size_t i = 0; i < n; i++)
                if (!strcmp(recs[i].record_id, c1))
                        assert_string_equal(recs[i].replay_id, ""); /* poll */
        sfh_recs_free(recs, n);
}

static void html_503_and_connect_timeouts_are_survived(void **state)
{
        struct sfh *h  = *state;
        const char *c0 = sfh_id(h, "contacts", 0);
        char *body     = NULL;
        size_t n;

        start_and_subscribe(h);
        /* The next long-poll hangs past our timeout (1 s advice + 1 s
         * margin), then three CometD calls get a CDN's HTML 503. */
        sfh_ctl(h, "POST", "/sandbox/faults",
                "[{\"endpoint\":\"cometd\",\"kind\":\"timeout\",\"ms\":3000,"
                "\"count\":1},{\"endpoint\":\"cometd\",\"kind\":\"html503\","
                "\"count\":3}]");
        sfh_optout(h, c0, 1);
        n = sfh_consume(h, 1, 300, 20000, recs);
        assert_int_equal(n, 1);
        assert_string_equal(recs[0].record_id, c0);
        assert_int_equal(osy_test_sandbox_call(&h->sb, "GET", "/sandbox/faults",
                                               NULL, NULL, &body),
                         200);
        /* Both rules were used up. */
        assert_null(strstr(body, "\"remaining\":1"));
        free(body);
        SFH_WAIT(sfh_ready(h), 10000);
        sfh_recs_free(recs, n);
}

static void restart_mid_stream_loses_nothing(void **state)
{
        struct sfh *h = *state;
        size_t n;

        start_and_subscribe(h);
        for (int i = 5; i < 15; i++)
                sfh_optout(h, sfh_id(h, "contacts", i), 1);
        /* Stop while the events are flowing, change more while down. */
        sfh_worker_stop(h);
        for (int i = 15; i < 25; i++)
                sfh_optout(h, sfh_id(h, "contacts", i), 1);
        sfh_worker_start(h);
        n = sfh_consume(h, 20, 1000, 20000, recs);
        assert_true(n >= 20);
        for (int i = 5; i < 25; i++) {
                const char *id    = sfh_id(h, "contacts", i);
                const char *first = NULL;

                assert_true(sfh_count(recs, n, id, OSY_SF_OPT_OUT_CHANGED) >=
                            1);
                /* A duplicate is the same event: the same id. */
                for (size_t k = 0; k < n; k++) {
                        if (strcmp(recs[k].record_id, id))
                                continue;
                        if (!first)
                                first = recs[k].id;
                        else
                                assert_string_equal(recs[k].id, first);
                }
        }
        sfh_recs_free(recs, n);
}

static void polling_covers_while_cdc_is_down(void **state)
{
        struct sfh *h  = *state;
        const char *c0 = sfh_id(h, "contacts", 0);
        const char *c1 = sfh_id(h, "contacts", 1);
        char why[128];
        size_t n;

        sfh_ctl(h, "POST", "/sandbox/faults",
                "{\"endpoint\":\"cometd\",\"kind\":\"html503\"}");
        h->o.fallback_after_ms = 500;
        sfh_worker_start(h);
        osy_test_sleep_ms(300);
        assert_false(osy_sfi_ready(h->w, why, sizeof(why)));
        assert_non_null(strstr(why, "not subscribed"));
        sfh_optout(h, c0, 1);
        SFH_WAIT(sfh_stats(h).published >= 1, 10000);
        n = sfh_consume(h, 1, 300, 10000, recs);
        assert_int_equal(n, 1);
        assert_int_equal(sfh_count(recs, n, c0, OSY_SF_OPT_OUT_CHANGED), 1);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(recs[i].replay_id, ""); /* polling */
        sfh_recs_free(recs, n);

        sfh_ctl(h, "DELETE", "/sandbox/faults", NULL);
        SFH_WAIT(sfh_ready(h), 10000);
        sfh_optout(h, c1, 1);
        n = sfh_consume(h, 2, 500, 10000, recs);
        assert_int_equal(n, 2);
        assert_int_equal(sfh_count(recs, n, c0, OSY_SF_OPT_OUT_CHANGED), 1);
        assert_int_equal(sfh_count(recs, n, c1, OSY_SF_OPT_OUT_CHANGED), 1);
        for (size_t i = 0; i < n; i++)
                if (!strcmp(recs[i].record_id, c1))
                        assert_true(recs[i].replay_id[0] != '\0'); /* CDC */
        sfh_recs_free(recs, n);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(
                opt_out_change_is_published_then_committed, setup, teardown),
            cmocka_unit_test_setup_teardown(other_changes_publish_nothing,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(lead_conversion_is_published, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(our_own_writes_come_back_as_echoes,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(gap_events_are_read_back, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(
                expired_token_mid_stream_is_refreshed, setup, teardown),
            cmocka_unit_test_setup_teardown(unknown_client_makes_a_new_session,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                refused_replay_id_is_backfilled_by_polling, setup, teardown),
            cmocka_unit_test_setup_teardown(
                html_503_and_connect_timeouts_are_survived, setup, teardown),
            cmocka_unit_test_setup_teardown(restart_mid_stream_loses_nothing,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(polling_covers_while_cdc_is_down,
                                            setup, teardown),
        };

        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
