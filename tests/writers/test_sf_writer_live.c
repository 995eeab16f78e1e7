/*
 * test_sf_writer_live.c - sf-writer against the sandbox's Salesforce org
 * and a real redis-server (the runtime in-process, commands fed directly):
 * batching and coalescing, duplicate emails, converted leads, partial
 * failures, an expired token, 429 storms, 5xx, timeouts, HTML 503 pages,
 * the daily quota, and SOQL-hostile emails.
 */
#include "wt_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- fixtures
 * ----------------------------------------------------------------- */

/* n contacts p000@x.com..., and a lead for every tenth person. */
static char *people_fixture(int n, const char *extra_sf)
{
        size_t cap = (size_t)n * 160 + 4096;
        char *f    = malloc(cap);
        size_t len = 0;

        len += (size_t)snprintf(f + len, cap - len,
                                "{\"tenants\":{\"" WT_TENANT
                                "\":{\"sf\":{%s\"contacts\":[",
                                extra_sf ? extra_sf : "");
        for (int i = 0; i < n; i++)
                len += (size_t)snprintf(f + len, cap - len,
                                        "%s{\"Email\":\"p%03d@x.com\","
                                        "\"LastName\":\"C%03d\"}",
                                        i ? "," : "", i, i);
        len += (size_t)snprintf(f + len, cap - len, "],\"leads\":[");
        for (int i = 0; i < n; i += 10)
                len += (size_t)snprintf(f + len, cap - len,
                                        "%s{\"Email\":\"p%03d@x.com\","
                                        "\"LastName\":\"L%03d\","
                                        "\"Company\":\"Co\"}",
                                        i ? "," : "", i, i);
        snprintf(f + len, cap - len, "]}}}}");
        return f;
}

static void person(char *buf, size_t size, int i)
{
        snprintf(buf, size, "p%03d@x.com", i);
}

/* ---- tests
 * -------------------------------------------------------------------- */

static void batches_of_200_and_newest_wins(void **state)
{
        struct wt t;
        char *fx  = people_fixture(450, NULL);
        int64_t v = 1000000;
        char email[32];
        struct osy_writer_stats st;
        (void)state;

        assert_int_equal(wt_start(&t, fx, NULL), 0);
        free(fx);
        wt_sf_writer(&t);
        /* Everyone opts out; persons 0-49 then opt back in (newer), and
         * persons 50-99 get a stale opt-in (older) after their opt-out. */
        for (int i = 0; i < 450; i++) {
                person(email, sizeof(email), i);
                wt_feed(&t, email, 1, v + 10, NULL);
        }
        for (int i = 0; i < 100; i++) {
                person(email, sizeof(email), i);
                wt_feed(&t, email, 0, i < 50 ? v + 20 : v + 5, NULL);
        }
        assert_int_equal(wt_drain(&t, 30000), 0);
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.applied, 450);
        assert_int_equal(st.coalesced, 100);
        assert_int_equal(st.dead_letters, 0);

        /* 450 Contacts + 45 Leads = 495 records: 3 calls of <= 200, and
         * one lookup query per object for all 450 people. */
        assert_int_equal(wt_requests(&t, "sf.composite", "PATCH", 200, NULL),
                         3);
        assert_int_equal(wt_requests(&t, "sf.query", "GET", 200, NULL), 2);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "C000")), 0);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "L040")), 0);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "C060")), 1);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "L060")), 1);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "C449")), 1);
        /* One audit per person per write call; calls add up to 3. */
        /* 40 people have their Contact and Lead in different calls. */
        assert_int_equal(wt_count_out(&t, "optsync.audit", "\"sf_update\""),
                         490);
        assert_int_equal(wt_count_out(&t, "optsync.audit", "\"calls\":1"), 3);

        /* Warm cache: the same people again cost no query at all. */
        for (int i = 0; i < 450; i++) {
                person(email, sizeof(email), i);
                wt_feed(&t, email, 0, v + 30, NULL);
        }
        assert_int_equal(wt_drain(&t, 30000), 0);
        assert_int_equal(wt_requests(&t, "sf.query", "GET", 0, NULL), 2);
        assert_int_equal(wt_requests(&t, "sf.composite", "PATCH", 200, NULL),
                         6);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "C449")), 0);
        wt_stop(&t);
}

static void replayed_command_is_skipped(void **state)
{
        struct wt t;
        char *fx = people_fixture(3, NULL);
        struct osy_writer_stats st;
        (void)state;

        assert_int_equal(wt_start(&t, fx, NULL), 0);
        free(fx);
        wt_sf_writer(&t);
        wt_feed(&t, "p001@x.com", 1, 5000, NULL);
        assert_int_equal(wt_drain(&t, 10000), 0);
        /* The same command again (a crash before the commit), and an
         * older one: Redis says both are done; no call is made. */
        wt_feed(&t, "p001@x.com", 1, 5000, NULL);
        assert_int_equal(wt_drain(&t, 10000), 0);
        wt_feed(&t, "p001@x.com", 0, 4000, NULL);
        assert_int_equal(wt_drain(&t, 10000), 0);
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.applied, 1);
        assert_int_equal(st.duplicates, 1);
        assert_int_equal(st.stale, 1);
        assert_int_equal(wt_requests(&t, "sf.composite", "PATCH", 0, NULL), 1);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "C001")), 1);
        wt_stop(&t);
}

/* A person's applied marker reads "99999999999999999999 x" (a broken or
 * tampered Redis). strtoll saturated it to INT64_MAX: "a newer command
 * was applied", and every command of the person was skipped until the
 * marker expired (7 days). Out of range now reads as no marker. */
static void out_of_range_marker_does_not_skip_commands(void **state)
{
        struct wt t;
        char *fx = people_fixture(3, NULL);
        char key[256], e[OSY_ERRSTR_SIZE];
        const char *argv[3] = {"SET", key, "99999999999999999999 x"};
        redisReply *r       = NULL;
        struct osy_writer_stats st;
        (void)state;

        assert_int_equal(wt_start(&t, fx, NULL), 0);
        free(fx);
        wt_sf_writer(&t);
        assert_int_equal(osy_writer_applied_key(key, sizeof(key), "wt",
                                                OSY_STAGE_SF_WRITER, WT_TENANT,
                                                "p001@x.com"),
                         OSY_OK);
        assert_int_equal(
            osy_redis_command_argv(t.redis, 3, argv, NULL, &r, e, sizeof(e)),
            OSY_OK);
        freeReplyObject(r);
        wt_feed(&t, "p001@x.com", 1, 5000, NULL);
        assert_int_equal(wt_drain(&t, 10000), 0);
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.stale, 0);
        assert_int_equal(st.applied, 1);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "C001")), 1);
        wt_stop(&t);
}

static void every_record_of_a_duplicate_email_is_written(void **state)
{
        struct wt t;
        const char *fx =
            "{\"tenants\":{\"t1\":{\"sf\":{\"contacts\":["
            "{\"Email\":\"dup@x.com\",\"LastName\":\"C1\"},"
            "{\"Email\":\"DUP@X.com\",\"LastName\":\"C2\"},"
            "{\"Email\":\"other@x.com\",\"LastName\":\"C3\"}],"
            "\"leads\":[{\"Email\":\"dup@x.com\",\"LastName\":\"L1\","
            "\"Company\":\"Co\"},"
            "{\"Email\":\"dup@x.com\",\"LastName\":\"L2\",\"Company\":\"Co\","
            "\"IsConverted\":true}]}}}}";
        (void)state;

        assert_int_equal(wt_start(&t, fx, NULL), 0);
        wt_sf_writer(&t);
        wt_feed(&t, "dup@x.com", 1, 1000, NULL);
        assert_int_equal(wt_drain(&t, 10000), 0);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "C1")), 1);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "C2")), 1);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "L1")), 1);
        /* A converted Lead is never written; neither is anyone else. */
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "L2")), 0);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "C3")), 0);
        const char *audit = wt_last_out(&t, "optsync.audit");
        assert_non_null(strstr(audit, wt_sf_id(&t, "C1")));
        assert_non_null(strstr(audit, wt_sf_id(&t, "C2")));
        assert_non_null(strstr(audit, wt_sf_id(&t, "L1")));
        assert_int_equal(wt_requests(&t, "sf.composite", "PATCH", 200, NULL),
                         1);
        wt_stop(&t);
}

/* Starts the sf-writer on a Lead (b@x.com) and a Contact with another
 * email, writes the Lead once (so the cache names it), then converts the
 * Lead into that Contact. Their ids go to @p lead and @p contact. */
static void start_with_converted_lead(struct wt *t, char lead[32],
                                      char contact[32])
{
        const char *fx =
            "{\"tenants\":{\"t1\":{\"sf\":{\"contacts\":["
            "{\"Email\":\"zed@other.com\",\"LastName\":\"CZ\"}],"
            "\"leads\":[{\"Email\":\"b@x.com\",\"LastName\":\"LB\","
            "\"Company\":\"Co\"}]}}}}";
        char path[128], body[96];

        assert_int_equal(wt_start(t, fx, NULL), 0);
        wt_sf_writer(t);
        snprintf(lead, 32, "%s", wt_sf_id(t, "LB"));
        snprintf(contact, 32, "%s", wt_sf_id(t, "CZ"));
        /* First write: the Lead (cached for b@x.com). */
        wt_feed(t, "b@x.com", 0, 1000, NULL);
        assert_int_equal(wt_drain(t, 10000), 0);
        /* The Lead is converted into an existing Contact with another
         * email; the cache still names the Lead. */
        snprintf(path, sizeof(path),
                 "/sandbox/sf/" WT_TENANT "/leads/%s/convert", lead);
        snprintf(body, sizeof(body), "{\"contact_id\":\"%s\"}", contact);
        wt_post(t, path, body);
}

static void converted_lead_is_followed_to_its_contact(void **state)
{
        struct wt t;
        char lead[32], contact[32];
        struct osy_writer_stats st;
        (void)state;

        start_with_converted_lead(&t, lead, contact);
        wt_feed(&t, "b@x.com", 1, 2000, NULL);
        assert_int_equal(wt_drain(&t, 10000), 0);
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.applied, 2);
        assert_int_equal(st.dead_letters, 0);
        assert_int_equal(wt_sf_optout(&t, contact), 1);
        assert_int_equal(wt_sf_optout(&t, lead), 0);
        assert_int_equal(
            wt_requests(&t, "sf.query", "GET", 200, "ConvertedContactId"), 1);
        /* The third command goes straight to the Contact (cache fixed). */
        wt_feed(&t, "b@x.com", 0, 3000, NULL);
        assert_int_equal(wt_drain(&t, 10000), 0);
        assert_int_equal(wt_sf_optout(&t, contact), 0);
        assert_int_equal(wt_requests(&t, "sf.composite", "PATCH", 200, NULL),
                         4);
        wt_stop(&t);
}

/* The query that follows a converted Lead gets an answer that cannot be
 * read (a 200 with no records array, as a proxy might send). Before, that
 * read as "no Contact to follow" and the command was reported applied
 * with nothing written; now it is retried, and the Contact is written. */
static void unreadable_converted_answer_is_retried_not_applied(void **state)
{
        struct wt t;
        char lead[32], contact[32];
        struct osy_writer_stats st;
        (void)state;

        start_with_converted_lead(&t, lead, contact);
        /* The next query (the converted Lead's) answers 200 {} once. */
        wt_post(&t, "/sandbox/faults",
                "{\"endpoint\":\"sf.query\",\"kind\":\"status\","
                "\"status\":200,\"count\":1,\"body\":{}}");
        wt_feed(&t, "b@x.com", 1, 2000, NULL);
        assert_int_equal(wt_drain(&t, 20000), 0);
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.applied, 2);
        assert_int_equal(st.dead_letters, 0);
        assert_int_equal(wt_sf_optout(&t, contact), 1);
        assert_int_equal(
            wt_requests(&t, "sf.query", "GET", 200, "ConvertedContactId"), 2);
        wt_stop(&t);
}

static void locked_row_is_retried_and_bad_record_dead_lettered(void **state)
{
        struct wt t;
        char *fx = people_fixture(5, NULL);
        char body[160], key[128];
        const char *dlq;
        struct osy_writer_stats st;
        redisReply *r = NULL;
        char e[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(wt_start(&t, fx, NULL), 0);
        free(fx);
        wt_sf_writer(&t);
        snprintf(body, sizeof(body), "{\"ids\":[\"%s\"],\"count\":2}",
                 wt_sf_id(&t, "C002"));
        wt_post(&t, "/sandbox/sf/" WT_TENANT "/lock_rows", body);
        /* A stale cache entry with a Lead id sent as a Contact:
         * Salesforce answers MALFORMED_ID for that record only. */
        snprintf(key, sizeof(key),
                 "wt:sf-writer:recs:{" WT_TENANT "}:p004@x.com");
        snprintf(body, sizeof(body), "C:%s", wt_sf_id(&t, "L000"));
        const char *set[] = {"SET", key, body};
        assert_int_equal(
            osy_redis_command_argv(t.redis, 3, set, NULL, &r, e, sizeof(e)),
            OSY_OK);
        freeReplyObject(r);
        for (int i = 1; i < 5; i++) {
                char email[32];
                person(email, sizeof(email), i);
                wt_feed(&t, email, 1, 1000, NULL);
        }
        assert_int_equal(wt_drain(&t, 15000), 0);
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.applied, 3);
        assert_int_equal(st.dead_letters, 1);
        assert_int_equal(st.retries, 2);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "C002")), 1);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "C001")), 1);
        dlq = wt_last_out(&t, "optsync.dlq");
        assert_non_null(dlq);
        assert_non_null(strstr(dlq, "\"reason\":\"permanent error\""));
        assert_non_null(strstr(dlq, "MALFORMED_ID"));
        assert_non_null(strstr(dlq, wt_sf_id(&t, "L000")));
        assert_non_null(strstr(dlq, "p004@x.com"));
        assert_true(wt_count_out(&t, "optsync.audit", "UNABLE_TO_LOCK_ROW") >=
                    2);
        wt_stop(&t);
}

static void expired_token_is_refreshed_once(void **state)
{
        struct wt t;
        char *fx = people_fixture(3, NULL);
        struct osy_writer_stats st;
        (void)state;

        assert_int_equal(wt_start(&t, fx, NULL), 0);
        free(fx);
        wt_sf_writer(&t);
        wt_feed(&t, "p000@x.com", 1, 1000, NULL);
        assert_int_equal(wt_drain(&t, 10000), 0);
        wt_post(&t, "/sandbox/sf/" WT_TENANT "/tokens/expire", "{}");
        wt_feed(&t, "p001@x.com", 1, 1000, NULL);
        assert_int_equal(wt_drain(&t, 10000), 0);
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.applied, 2);
        assert_int_equal(st.retries, 0);
        assert_int_equal(wt_requests(&t, "sf.token", "POST", 200, NULL), 2);
        assert_int_equal(wt_requests(&t, "sf.*", NULL, 401, NULL), 1);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "C001")), 1);
        /* Every call said who it was (CDC echo recognition). */
        char *log = wt_call(
            &t, "GET", "/sandbox/requests?endpoint=sf.composite", NULL, NULL);
        assert_non_null(
            strstr(log, "\"Sforce-Call-Options\":\"client=optsync\""));
        free(log);
        wt_stop(&t);
}

static void storm_of_429_is_waited_out(void **state)
{
        struct wt t;
        char *fx = people_fixture(3, NULL);
        struct osy_writer_stats st;
        (void)state;

        assert_int_equal(wt_start(&t, fx, NULL), 0);
        free(fx);
        wt_sf_writer(&t);
        wt_post(&t, "/sandbox/faults",
                "{\"endpoint\":\"sf.composite\",\"kind\":\"storm429\","
                "\"retry_after\":1,\"count\":3}");
        wt_feed(&t, "p000@x.com", 1, 1000, NULL);
        wt_feed(&t, "p001@x.com", 1, 1000, NULL);
        assert_int_equal(wt_drain(&t, 20000), 0);
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.applied, 2);
        assert_int_equal(st.dead_letters, 0);
        assert_int_equal(wt_requests(&t, "sf.composite", "PATCH", 429, NULL),
                         3);
        assert_int_equal(wt_requests(&t, "sf.composite", "PATCH", 200, NULL),
                         1);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "C001")), 1);
        wt_stop(&t);
}

static void server_errors_timeouts_and_html_pages_are_retried(void **state)
{
        struct wt t;
        char *fx = people_fixture(4, NULL);
        struct osy_writer_stats st;
        (void)state;

        assert_int_equal(wt_start(&t, fx, NULL), 0);
        free(fx);
        t.so.http.timeout_ms    = 1000;
        t.wo.retry.max_attempts = 10;
        wt_sf_writer(&t);
        wt_post(
            &t, "/sandbox/faults",
            "[{\"endpoint\":\"sf.query\",\"kind\":\"json503\",\"count\":1},"
            "{\"endpoint\":\"sf.composite\",\"kind\":\"html503\","
            "\"count\":1},"
            "{\"endpoint\":\"sf.composite\",\"kind\":\"timeout\","
            "\"ms\":3000,\"count\":1},"
            "{\"endpoint\":\"sf.composite\",\"kind\":\"reset\",\"count\":1},"
            "{\"endpoint\":\"sf.composite\",\"kind\":\"malformed\","
            "\"count\":1},"
            "{\"endpoint\":\"sf.composite\",\"kind\":\"status\","
            "\"status\":500,\"count\":1}]");
        for (int i = 0; i < 4; i++) {
                char email[32];
                person(email, sizeof(email), i);
                wt_feed(&t, email, 1, 1000, NULL);
        }
        assert_int_equal(wt_drain(&t, 30000), 0);
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.applied, 4);
        assert_int_equal(st.dead_letters, 0);
        assert_true(st.retries >= 6);
        for (int i = 0; i < 4; i++) {
                char name[8];
                snprintf(name, sizeof(name), "C%03d", i);
                assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, name)), 1);
        }
        assert_true(wt_count_out(&t, "optsync.audit", "HTTP 503") >= 1);
        wt_stop(&t);
}

static void retries_exhausted_go_to_dlq(void **state)
{
        struct wt t;
        char *fx = people_fixture(2, NULL);
        struct osy_writer_stats st;
        const char *dlq;
        (void)state;

        assert_int_equal(wt_start(&t, fx, NULL), 0);
        free(fx);
        t.wo.retry.max_attempts = 3;
        wt_sf_writer(&t);
        wt_post(&t, "/sandbox/faults",
                "{\"endpoint\":\"sf.composite\",\"kind\":\"json503\"}");
        wt_feed(&t, "p001@x.com", 1, 1000, NULL);
        assert_int_equal(wt_drain(&t, 15000), 0);
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.dead_letters, 1);
        dlq = wt_last_out(&t, "optsync.dlq");
        assert_non_null(strstr(dlq, "\"reason\":\"retries exhausted\""));
        assert_non_null(strstr(dlq, "\"attempts\":3"));
        assert_non_null(strstr(dlq, "1-3) PATCH composite_sobjects: HTTP 503"));
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "C001")), 0);
        wt_stop(&t);
}

static void quota_pauses_without_a_hot_loop_and_resumes(void **state)
{
        struct wt t;
        char *fx = people_fixture(3, NULL);
        struct osy_writer_stats st;
        int64_t start;
        (void)state;

        assert_int_equal(wt_start(&t, fx, NULL), 0);
        free(fx);
        wt_sf_writer(&t);
        /* The org has used its whole allowance. */
        wt_post(&t, "/sandbox/sf/" WT_TENANT "/limits",
                "{\"used\":15000,\"max\":15000}");
        wt_feed(&t, "p001@x.com", 1, 1000, NULL);
        start = osy_test_now_ms();
        while (osy_test_now_ms() - start < 3500) {
                assert_int_equal(osy_writer_step(t.w, wt_wall_ms(), 0), OSY_OK);
                osy_test_sleep_ms(10);
        }
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.applied, 0);
        assert_int_equal(st.retries, 0);
        assert_int_equal(st.dead_letters, 0);
        /* 3.5 s paused with a 1 s probe: the refused call plus about one
         * GET /limits per second, nothing more. */
        int calls = wt_requests(&t, "sf.*", NULL, 403, NULL);
        assert_true(calls >= 2 && calls <= 6);
        /* The allowance comes back: the next probe sees it and the
         * command is written. */
        wt_post(&t, "/sandbox/sf/" WT_TENANT "/limits",
                "{\"used\":100,\"max\":15000}");
        assert_int_equal(wt_drain(&t, 10000), 0);
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.applied, 1);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "C001")), 1);
        assert_true(wt_requests(&t, "sf.limits", "GET", 200, NULL) >= 1);
        wt_stop(&t);
}

static void reserve_is_left_to_other_integrations(void **state)
{
        struct wt t;
        char *fx = people_fixture(3, NULL);
        struct osy_writer_stats st;
        (void)state;

        assert_int_equal(wt_start(&t, fx, NULL), 0);
        free(fx);
        wt_sf_writer(&t);
        /* 20 % of 15,000 is kept: at 12,100 used only 2,900 are left. */
        wt_post(&t, "/sandbox/sf/" WT_TENANT "/limits",
                "{\"used\":12100,\"max\":15000}");
        wt_feed(&t, "p001@x.com", 1, 1000, NULL);
        for (int i = 0; i < 30; i++) {
                assert_int_equal(osy_writer_step(t.w, wt_wall_ms(), 1), OSY_OK);
                osy_test_sleep_ms(20);
        }
        osy_writer_get_stats(t.w, &st);
        /* The lookup query showed the usage; the write waits. */
        assert_int_equal(st.applied, 0);
        assert_int_equal(wt_requests(&t, "sf.composite", NULL, 0, NULL), 0);
        wt_post(&t, "/sandbox/sf/" WT_TENANT "/limits",
                "{\"used\":1000,\"max\":15000}");
        assert_int_equal(wt_drain(&t, 10000), 0);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "C001")), 1);
        wt_stop(&t);
}

static void soql_hostile_emails_are_matched(void **state)
{
        struct wt t;
        const char *fx =
            "{\"tenants\":{\"t1\":{\"sf\":{\"contacts\":["
            "{\"Email\":\"o'brien@x.com\",\"LastName\":\"Q\"},"
            "{\"Email\":\"back\\\\slash@x.com\",\"LastName\":\"B\"},"
            "{\"Email\":\"a+tag@x.com\",\"LastName\":\"P\"},"
            "{\"Email\":\"a tag@x.com\",\"LastName\":\"S\"},"
            "{\"Email\":\"say\\\"hi\\\"@x.com\",\"LastName\":\"D\"},"
            "{\"Email\":\"percent%41@x.com\",\"LastName\":\"PC\"},"
            "{\"Email\":\"x') OR (Email != '@x.com\",\"LastName\":\"I\"}"
            "]}}}}";
        struct osy_writer_stats st;
        (void)state;

        assert_int_equal(wt_start(&t, fx, NULL), 0);
        wt_sf_writer(&t);
        wt_feed(&t, "o'brien@x.com", 1, 1000, NULL);
        wt_feed(&t, "back\\slash@x.com", 1, 1000, NULL);
        wt_feed(&t, "a+tag@x.com", 1, 1000, NULL);
        wt_feed(&t, "say\"hi\"@x.com", 1, 1000, NULL);
        wt_feed(&t, "percent%41@x.com", 1, 1000, NULL);
        wt_feed(&t, "x')or(email!='@x.com", 1, 1000, NULL);
        assert_int_equal(wt_drain(&t, 10000), 0);
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.dead_letters, 0);
        assert_int_equal(st.applied, 5);
        assert_int_equal(st.skipped, 1); /* the injection attempt: nobody */
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "Q")), 1);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "B")), 1);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "P")), 1);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "D")), 1);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "PC")), 1);
        /* '+' went as %2B: "a tag" (what a raw '+' means) is untouched. */
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "S")), 0);
        assert_int_equal(wt_sf_optout(&t, wt_sf_id(&t, "I")), 0);
        assert_int_equal(wt_requests(&t, "sf.query", "GET", 200, "a%2Btag"), 2);
        assert_int_equal(wt_requests(&t, "sf.query", NULL, 400, NULL), 0);
        wt_stop(&t);
}

static void unknown_tenant_is_dead_lettered(void **state)
{
        struct wt t;
        struct osy_msg m;
        char e[OSY_ERRSTR_SIZE], *json = NULL;
        size_t len;
        struct osy_writer_stats st;
        (void)state;

        assert_int_equal(wt_start(&t, "{\"tenants\":{\"t1\":{}}}", NULL), 0);
        wt_sf_writer(&t);
        osy_msg_init(&m, OSY_MSG_SF_COMMAND);
        assert_int_equal(osy_msg_set_envelope(&m, "nobody", "a@x.com",
                                              OSY_SRC_RULES, 1000, e,
                                              sizeof(e)),
                         OSY_OK);
        m.sf_command.has_opted_out_of_email = 1;
        m.sf_command.rule                   = OSY_RULE_R3;
        memset(m.sf_command.cause_event_id, 'b', OSY_ID_LEN);
        m.sf_command.version.ms = 1000;
        assert_int_equal(osy_msg_strset(&m.sf_command.version.tie, "x"),
                         OSY_OK);
        assert_int_equal(osy_msg_encode(&m, &json, &len, e, sizeof(e)), OSY_OK);
        osy_msg_clear(&m);
        assert_int_equal(osy_writer_feed(t.w, "optsync.cmd", 0, 0, NULL, 0,
                                         json, len, wt_wall_ms()),
                         OSY_OK);
        free(json);
        assert_int_equal(wt_drain(&t, 5000), 0);
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.dead_letters, 1);
        assert_non_null(
            strstr(wt_last_out(&t, "optsync.dlq"), "no Salesforce org"));
        wt_stop(&t);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(batches_of_200_and_newest_wins),
            cmocka_unit_test(replayed_command_is_skipped),
            cmocka_unit_test(out_of_range_marker_does_not_skip_commands),
            cmocka_unit_test(every_record_of_a_duplicate_email_is_written),
            cmocka_unit_test(converted_lead_is_followed_to_its_contact),
            cmocka_unit_test(
                unreadable_converted_answer_is_retried_not_applied),
            cmocka_unit_test(
                locked_row_is_retried_and_bad_record_dead_lettered),
            cmocka_unit_test(expired_token_is_refreshed_once),
            cmocka_unit_test(storm_of_429_is_waited_out),
            cmocka_unit_test(server_errors_timeouts_and_html_pages_are_retried),
            cmocka_unit_test(retries_exhausted_go_to_dlq),
            cmocka_unit_test(quota_pauses_without_a_hot_loop_and_resumes),
            cmocka_unit_test(reserve_is_left_to_other_integrations),
            cmocka_unit_test(soql_hostile_emails_are_matched),
            cmocka_unit_test(unknown_tenant_is_dead_lettered),
        };
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
