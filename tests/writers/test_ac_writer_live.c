/*
 * test_ac_writer_live.c - ac-writer against the sandbox's AC account and a
 * real redis-server (the runtime in-process): every active list is
 * unsubscribed, the command's hint and the rules' cached state save calls,
 * bulk import when a backlog builds (done only once /import/info says so),
 * 429/503 answers honoured, the shared 5 req/s limit kept.
 */
#include "wt_harness.h"

#include "rules_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* n contacts c<i>@x.com (ids 1..n) active on lists 1 and 2, unsubscribed
 * from 3, unconfirmed on 4; @p ac_extra goes into the "ac" object. */
static char *ac_fixture(int n, const char *ac_extra)
{
        size_t cap = (size_t)n * 120 + 4096;
        char *f    = malloc(cap);
        size_t len = 0;

        len += (size_t)snprintf(
            f + len, cap - len,
            "{\"tenants\":{\"" WT_TENANT "\":{\"ac\":{%s"
            "\"lists\":[{\"id\":\"1\",\"name\":\"A\"},{\"id\":\"2\","
            "\"name\":\"B\"},{\"id\":\"3\",\"name\":\"C\"},{\"id\":\"4\","
            "\"name\":\"D\"}],\"contacts\":[",
            ac_extra ? ac_extra : "\"rate_per_s\":0,");
        for (int i = 1; i <= n; i++)
                len += (size_t)snprintf(
                    f + len, cap - len,
                    "%s{\"id\":\"%d\",\"email\":\"c%d@x.com\",\"lists\":{"
                    "\"1\":1,\"2\":1,\"3\":2,\"4\":0}}",
                    i > 1 ? "," : "", i, i);
        snprintf(f + len, cap - len, "]}}}}");
        return f;
}

static void unsubscribes_from_every_active_list(void **state)
{
        struct wt t;
        char *fx = ac_fixture(2, NULL);
        struct osy_writer_stats st;
        (void)state;

        assert_int_equal(wt_start(&t, fx, NULL), 0);
        free(fx);
        t.wo.cmd_type = OSY_MSG_AC_COMMAND;
        wt_ac_writer(&t);
        wt_feed(&t, "c1@x.com", 1, 1000, NULL);
        assert_int_equal(wt_drain(&t, 10000), 0);
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.applied, 1);
        assert_int_equal(wt_ac_status(&t, "1", "1"), 2);
        assert_int_equal(wt_ac_status(&t, "1", "2"), 2);
        assert_int_equal(wt_ac_status(&t, "1", "3"), 2);
        /* Unconfirmed is not active: left alone. So is the other contact. */
        assert_int_equal(wt_ac_status(&t, "1", "4"), 0);
        assert_int_equal(wt_ac_status(&t, "2", "1"), 1);
        /* Look-up, lists, one POST per active list. */
        assert_int_equal(wt_requests(&t, "ac.contacts", "GET", 200, "email="),
                         1);
        assert_int_equal(wt_requests(&t, "ac.*", "POST", 0, "/contactLists"),
                         2);
        assert_int_equal(
            wt_count_out(&t, "optsync.audit", "\"ac_unsubscribe\""), 2);
        assert_int_equal(
            wt_count_out(&t, "optsync.audit", "\"http_status\":201"), 2);
        /* Again (a new R4): the contact id is cached, no look-up. */
        wt_feed(&t, "c1@x.com", 1, 2000, NULL);
        assert_int_equal(wt_drain(&t, 10000), 0);
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.skipped, 1); /* no active list left */
        assert_int_equal(wt_requests(&t, "ac.contacts", "GET", 200, "email="),
                         1);
        wt_stop(&t);
}

static void hint_and_rules_state_save_the_lookup_not_the_list_read(void **state)
{
        struct wt t;
        char *fx = ac_fixture(3, NULL);
        struct osy_rules_person p;
        char key[OSY_RULES_KEY_BUFSZ], *val = NULL, e[OSY_ERRSTR_SIZE];
        size_t len;
        redisReply *r = NULL;
        (void)state;

        assert_int_equal(wt_start(&t, fx, NULL), 0);
        free(fx);
        /* The rules know c2's contact; the lists in their state are the
         * decided state, which an R4 has already emptied. */
        memset(&p, 0, sizeof(p));
        snprintf(p.contact_id, sizeof(p.contact_id), "2");
        p.lists_known = 1; /* and empty, as after the R4 decision */
        assert_int_equal(osy_rules_person_encode(&p, &val, &len), OSY_OK);
        assert_int_equal(
            osy_rules_state_key(key, sizeof(key), "wt", WT_TENANT, "c2@x.com"),
            OSY_OK);
        const char *set[] = {"SET", key, val};
        assert_int_equal(
            osy_redis_command_argv(t.redis, 3, set, NULL, &r, e, sizeof(e)),
            OSY_OK);
        freeReplyObject(r);
        free(val);
        osy_rules_person_clear(&p);

        t.wo.cmd_type = OSY_MSG_AC_COMMAND;
        wt_ac_writer(&t);
        wt_feed(&t, "c2@x.com", 1, 1000, NULL);
        /* c3: only the command's contact hint. */
        wt_feed(&t, "c3@x.com", 1, 1000, "3");
        assert_int_equal(wt_drain(&t, 10000), 0);
        assert_int_equal(wt_ac_status(&t, "2", "1"), 2);
        assert_int_equal(wt_ac_status(&t, "2", "2"), 2);
        assert_int_equal(wt_ac_status(&t, "3", "2"), 2);
        /* No look-up by email; each contact's lists read once from AC. */
        assert_int_equal(wt_requests(&t, "ac.contacts", "GET", 0, "email="), 0);
        assert_int_equal(wt_requests(&t, "ac.*", "GET", 200, "/contacts/2/"),
                         1);
        assert_int_equal(wt_requests(&t, "ac.*", "GET", 200, "/contacts/3/"),
                         1);
        assert_int_equal(wt_requests(&t, "ac.*", "POST", 0, "/contactLists"),
                         4);
        wt_stop(&t);
}

static void unknown_contact_is_skipped(void **state)
{
        struct wt t;
        char *fx = ac_fixture(1, NULL);
        struct osy_writer_stats st;
        (void)state;

        assert_int_equal(wt_start(&t, fx, NULL), 0);
        free(fx);
        t.wo.cmd_type = OSY_MSG_AC_COMMAND;
        wt_ac_writer(&t);
        wt_feed(&t, "nobody@x.com", 1, 1000, NULL);
        /* A stale hint: that contact id no longer exists; the email does. */
        wt_feed(&t, "c1@x.com", 1, 1000, "999");
        assert_int_equal(wt_drain(&t, 10000), 0);
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.skipped, 1);
        assert_int_equal(st.applied, 1);
        assert_int_equal(st.dead_letters, 0);
        assert_int_equal(wt_ac_status(&t, "1", "1"), 2);
        assert_int_equal(
            wt_count_out(&t, "optsync.audit", "no AC contact has this email"),
            1);
        wt_stop(&t);
}

static void backlog_goes_by_bulk_import(void **state)
{
        struct wt t;
        char *fx = ac_fixture(12, "\"rate_per_s\":0,\"import\":{\"delay_ms\":"
                                  "1500},");
        struct osy_writer_stats st;
        struct acw_stats as;
        char email[32];
        (void)state;

        assert_int_equal(wt_start(&t, fx, NULL), 0);
        free(fx);
        t.wo.cmd_type       = OSY_MSG_AC_COMMAND;
        t.ao.bulk_threshold = 5;
        wt_ac_writer(&t);
        for (int i = 1; i <= 12; i++) {
                char hint[8];
                snprintf(email, sizeof(email), "c%d@x.com", i);
                snprintf(hint, sizeof(hint), "%d", i);
                wt_feed(&t, email, 1, 1000, hint);
        }
        /* Queued, not applied yet: nothing is finished before
         * /import/info says so. */
        for (int k = 0; k < 10; k++) {
                assert_int_equal(osy_writer_step(t.w, wt_wall_ms(), 1), OSY_OK);
                osy_test_sleep_ms(20);
        }
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.applied, 0);
        assert_int_equal(wt_requests(&t, "ac.import", "POST", 200, NULL), 1);
        assert_int_equal(wt_drain(&t, 15000), 0);
        osy_writer_get_stats(t.w, &st);
        acw_get_stats(t.acw, &as);
        assert_int_equal(st.applied, 12);
        assert_true(as.import_polls >= 1);
        for (int i = 1; i <= 12; i++) {
                char id[8];
                snprintf(id, sizeof(id), "%d", i);
                assert_int_equal(wt_ac_status(&t, id, "1"), 2);
                assert_int_equal(wt_ac_status(&t, id, "2"), 2);
        }
        /* No list-by-list calls: one import for twelve people. */
        assert_int_equal(wt_requests(&t, "ac.*", "POST", 0, "/contactLists"),
                         0);
        assert_int_equal(
            wt_count_out(&t, "optsync.audit", "\"ac_bulk_unsubscribe\""), 12);
        /* calls add up: one POST plus the polls, on one audit record. */
        assert_int_equal(wt_count_out(&t, "optsync.audit", "\"calls\":"), 1);
        wt_stop(&t);
}

/* Six contacts go by one bulk import while GET /import/info answers
 * with @p fault (a sandbox fault rule); the import gives up after
 * @p give_up_ms (0: the default). Every contact must end unsubscribed
 * list by list, nothing dead-lettered, with no second import. */
static void six_by_import_then_list_by_list(const char *fault,
                                            int64_t give_up_ms)
{
        struct wt t;
        char *fx = ac_fixture(6, "\"rate_per_s\":0,\"import\":{\"delay_ms\":"
                                 "200},");
        struct osy_writer_stats st;
        char email[32], hint[8];

        assert_int_equal(wt_start(&t, fx, NULL), 0);
        free(fx);
        t.wo.cmd_type          = OSY_MSG_AC_COMMAND;
        t.ao.bulk_threshold    = 5;
        t.ao.bulk_poll_ms      = 200;
        t.ao.import_give_up_ms = give_up_ms;
        wt_ac_writer(&t);
        wt_post(&t, "/sandbox/faults", fault);
        for (int i = 1; i <= 6; i++) {
                snprintf(email, sizeof(email), "c%d@x.com", i);
                snprintf(hint, sizeof(hint), "%d", i);
                wt_feed(&t, email, 1, 1000, hint);
        }
        assert_int_equal(wt_drain(&t, 20000), 0);
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.applied, 6);
        assert_int_equal(st.dead_letters, 0);
        assert_int_equal(wt_requests(&t, "ac.import", "POST", 200, NULL), 1);
        assert_true(wt_requests(&t, "ac.*", "POST", 0, "/contactLists") >= 6);
        for (int i = 1; i <= 6; i++) {
                char id[8];
                snprintf(id, sizeof(id), "%d", i);
                assert_int_equal(wt_ac_status(&t, id, "1"), 2);
                assert_int_equal(wt_ac_status(&t, id, "2"), 2);
        }
        wt_stop(&t);
}

/* GET /import/info answers "completed" with a failure list in a shape we
 * do not know. Before, its items were skipped and every contact counted
 * as applied by the import; now the answer is unreadable and the
 * contacts go list by list. */
static void unreadable_import_status_goes_list_by_list(void **state)
{
        (void)state;
        six_by_import_then_list_by_list(
            "{\"endpoint\":\"ac.import\",\"method\":\"GET\","
            "\"kind\":\"status\",\"status\":200,\"count\":1,"
            "\"body\":{\"status\":\"completed\",\"success\":[],"
            "\"failure\":[{\"email\":\"c1@x.com\"}]}}",
            0);
}

/* GET /import/info fails on every poll (503). Before, the commands were
 * polled for forever (the give-up covered only "not completed"), holding
 * their partition's offsets; past the give-up they now go list by list. */
static void
import_status_failing_past_the_give_up_goes_list_by_list(void **state)
{
        (void)state;
        six_by_import_then_list_by_list(
            "{\"endpoint\":\"ac.import\",\"method\":\"GET\","
            "\"kind\":\"json503\",\"count\":100000}",
            1500);
}

/*
 * 250 contacts, each active on 100 lists with five-digit ids: one import
 * of all of them is over the importer's 400,000 bytes. It is split and
 * sent in halves. Before, the encoder's TOO_LARGE dead-lettered all 250
 * opt-outs without a call.
 */
static void oversized_import_is_split_not_dead_lettered(void **state)
{
        enum {
                PEOPLE = 250,
                LISTS  = 100
        };
        size_t cap = 64 + LISTS * 40 + (size_t)PEOPLE * (LISTS * 11 + 80);
        char *f    = malloc(cap);
        size_t len = 0;
        struct wt t;
        struct osy_writer_stats st;
        struct acw_stats as;
        char email[32], hint[8];
        (void)state;

        assert_non_null(f);
        len += (size_t)snprintf(f + len, cap - len,
                                "{\"tenants\":{\"" WT_TENANT "\":{\"ac\":{"
                                "\"rate_per_s\":0,\"import\":{\"delay_ms\":"
                                "200},\"lists\":[");
        for (int l = 0; l < LISTS; l++)
                len += (size_t)snprintf(f + len, cap - len,
                                        "%s{\"id\":\"%d\",\"name\":\"L%d\"}",
                                        l ? "," : "", 10000 + l, l);
        len += (size_t)snprintf(f + len, cap - len, "],\"contacts\":[");
        for (int i = 1; i <= PEOPLE; i++) {
                len +=
                    (size_t)snprintf(f + len, cap - len,
                                     "%s{\"id\":\"%d\",\"email\":\"c%d@x.com\","
                                     "\"lists\":{",
                                     i > 1 ? "," : "", i, i);
                for (int l = 0; l < LISTS; l++)
                        len +=
                            (size_t)snprintf(f + len, cap - len, "%s\"%d\":1",
                                             l ? "," : "", 10000 + l);
                len += (size_t)snprintf(f + len, cap - len, "}}");
        }
        snprintf(f + len, cap - len, "]}}}}");
        assert_int_equal(wt_start(&t, f, NULL), 0);
        free(f);
        t.wo.cmd_type       = OSY_MSG_AC_COMMAND;
        t.ao.bulk_threshold = 5;
        wt_ac_writer(&t);
        for (int i = 1; i <= PEOPLE; i++) {
                snprintf(email, sizeof(email), "c%d@x.com", i);
                snprintf(hint, sizeof(hint), "%d", i);
                wt_feed(&t, email, 1, 1000, hint);
        }
        assert_int_equal(wt_drain(&t, 60000), 0);
        osy_writer_get_stats(t.w, &st);
        acw_get_stats(t.acw, &as);
        assert_int_equal(st.dead_letters, 0);
        assert_int_equal(st.applied, PEOPLE);
        assert_true(as.imports >= 2);
        for (int i = 1; i <= PEOPLE; i += 83) {
                char id[8];
                snprintf(id, sizeof(id), "%d", i);
                assert_int_equal(wt_ac_status(&t, id, "10000"), 2);
                assert_int_equal(wt_ac_status(&t, id, "10099"), 2);
        }
        wt_stop(&t);
}

/*
 * A backlog whose lists must all be read from AC (the usual case: the
 * rules' state gives the contact, never the lists) fills every call's time
 * budget with reads. The import must still go out once enough commands are
 * read; it used to wait for spare time that never came, while the first
 * lists read went stale and were read again.
 */
static void bulk_import_goes_while_the_backlog_is_still_read(void **state)
{
        struct wt t;
        char *fx = ac_fixture(40, "\"rate_per_s\":0,\"import\":{\"delay_ms\":"
                                  "100},");
        struct osy_writer_stats st;
        char *log   = NULL;
        int imports = 0, reads = 0;
        (void)state;

        assert_int_equal(wt_start(&t, fx, NULL), 0);
        free(fx);
        /* Each list read takes 300 ms: a call's 2 s budget holds about 6. */
        assert_int_equal(osy_test_sandbox_call(
                             &t.sb, "POST", "/sandbox/faults", NULL,
                             "{\"endpoint\":\"ac.contactLists\",\"method\":"
                             "\"GET\",\"kind\":\"latency\",\"ms\":300}",
                             NULL),
                         201);
        t.wo.cmd_type       = OSY_MSG_AC_COMMAND;
        t.ao.bulk_threshold = 5;
        wt_ac_writer(&t);
        for (int i = 1; i <= 40; i++) {
                char email[32], hint[8];
                snprintf(email, sizeof(email), "c%d@x.com", i);
                snprintf(hint, sizeof(hint), "%d", i);
                wt_feed(&t, email, 1, 1000, hint);
        }
        assert_int_equal(wt_drain(&t, 60000), 0);
        /* In the sandbox's request log, the first import came before the
         * last list read. */
        assert_int_equal(osy_test_sandbox_call(&t.sb, "GET",
                                               "/sandbox/requests?limit=1000",
                                               NULL, NULL, &log),
                         200);
        for (const char *p = log; (p = strstr(p, "\"method\":"));) {
                const char *url = strstr(p, "\"url\":\"");
                p += 9;
                if (!url)
                        break;
                if (!strncmp(p, "\"POST\"", 6) && strstr(url, "/import/bulk") &&
                    strstr(url, "/import/bulk") < strchr(url + 7, '"')) {
                        imports++;
                        break;
                }
                if (!strncmp(p, "\"GET\"", 5) && strstr(url, "/contactLists") &&
                    strstr(url, "/contactLists") < strchr(url + 7, '"'))
                        reads++;
        }
        free(log);
        assert_int_equal(imports, 1);
        assert_true(reads < 40);
        assert_int_equal(wt_drain(&t, 30000), 0);
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.applied, 40);
        for (int i = 1; i <= 40; i++) {
                char id[8];
                snprintf(id, sizeof(id), "%d", i);
                assert_int_equal(wt_ac_status(&t, id, "1"), 2);
                assert_int_equal(wt_ac_status(&t, id, "2"), 2);
        }
        wt_stop(&t);
}

static void contact_refused_by_the_importer_goes_list_by_list(void **state)
{
        struct wt t;
        char *fx = ac_fixture(6, "\"rate_per_s\":0,\"import\":{\"delay_ms\":"
                                 "200},\"exclusions\":[\"c3@x.com\"],");
        struct osy_writer_stats st;
        (void)state;

        assert_int_equal(wt_start(&t, fx, NULL), 0);
        free(fx);
        t.wo.cmd_type       = OSY_MSG_AC_COMMAND;
        t.ao.bulk_threshold = 3;
        wt_ac_writer(&t);
        for (int i = 1; i <= 6; i++) {
                char email[32], hint[8];
                snprintf(email, sizeof(email), "c%d@x.com", i);
                snprintf(hint, sizeof(hint), "%d", i);
                wt_feed(&t, email, 1, 1000, hint);
        }
        assert_int_equal(wt_drain(&t, 15000), 0);
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.applied, 6);
        assert_int_equal(wt_ac_status(&t, "3", "1"), 2);
        assert_int_equal(wt_ac_status(&t, "3", "2"), 2);
        assert_int_equal(wt_requests(&t, "ac.*", "POST", 0, "/contactLists"),
                         2);
        wt_stop(&t);
}

static void throttling_and_503_are_honoured(void **state)
{
        struct wt t;
        char *fx = ac_fixture(2, NULL);
        struct osy_writer_stats st;
        (void)state;

        assert_int_equal(wt_start(&t, fx, NULL), 0);
        free(fx);
        t.wo.cmd_type = OSY_MSG_AC_COMMAND;
        wt_ac_writer(&t);
        wt_post(&t, "/sandbox/faults",
                "[{\"endpoint\":\"ac.contactLists\",\"kind\":\"storm429\","
                "\"retry_after\":1,\"count\":2},"
                "{\"endpoint\":\"ac.contacts\",\"kind\":\"html503\","
                "\"count\":1},"
                "{\"endpoint\":\"ac.contactLists\",\"method\":\"POST\","
                "\"kind\":\"json503\",\"count\":1}]");
        wt_feed(&t, "c1@x.com", 1, 1000, NULL);
        wt_feed(&t, "c2@x.com", 1, 1000, NULL);
        assert_int_equal(wt_drain(&t, 25000), 0);
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.applied, 2);
        assert_int_equal(st.dead_letters, 0);
        assert_true(st.retries >= 3);
        assert_int_equal(wt_ac_status(&t, "1", "2"), 2);
        assert_int_equal(wt_ac_status(&t, "2", "2"), 2);
        assert_int_equal(wt_requests(&t, "ac.*", NULL, 429, NULL), 2);
        wt_stop(&t);
}

static void shared_limiter_keeps_the_account_rate(void **state)
{
        struct wt t;
        char *fx = ac_fixture(10, "\"rate_per_s\":5,");
        struct osy_writer_stats st;
        int64_t start;
        (void)state;

        assert_int_equal(wt_start(&t, fx, NULL), 0);
        free(fx);
        t.wo.cmd_type = OSY_MSG_AC_COMMAND;
        wt_limiters(&t, 5, 1);
        wt_ac_writer(&t);
        start = osy_test_now_ms();
        for (int i = 1; i <= 10; i++) {
                char email[32], hint[8];
                snprintf(email, sizeof(email), "c%d@x.com", i);
                snprintf(hint, sizeof(hint), "%d", i);
                wt_feed(&t, email, 1, 1000, hint);
        }
        /* 10 list reads + 20 unsubscribes = 30 calls at 5 per second. */
        assert_int_equal(wt_drain(&t, 30000), 0);
        osy_writer_get_stats(t.w, &st);
        assert_int_equal(st.applied, 10);
        assert_int_equal(wt_requests(&t, "ac.*", NULL, 429, NULL), 0);
        assert_int_equal(wt_requests(&t, "ac.*", NULL, 0, NULL), 30);
        /* 30 calls cannot fit in less than 29 intervals of 200 ms. */
        assert_true(osy_test_now_ms() - start >= 29 * 200 - 50);
        wt_stop(&t);
}

static void refused_token_pauses_the_tenant(void **state)
{
        struct wt t;
        char *fx = ac_fixture(5, NULL);
        char tj[1024], e[OSY_ERRSTR_SIZE];
        struct osy_writer_stats st;
        int64_t end;
        (void)state;

        assert_int_equal(wt_start(&t, fx, NULL), 0);
        free(fx);
        /* The tenant's key was revoked: AC answers 403 to everything. */
        osy_tenants_destroy(t.tenants);
        snprintf(tj, sizeof(tj),
                 "{\"tenants\":[{\"id\":\"" WT_TENANT "\",\"ac\":{"
                 "\"base_url\":\"%s/ac/" WT_TENANT "\","
                 "\"api_token\":\"revoked-token\"}}]}",
                 t.sb.base_url);
        assert_int_equal(
            osy_tenants_parse(&t.tenants, tj, strlen(tj), e, sizeof(e)),
            OSY_OK);
        t.ao.tenants  = t.tenants;
        t.wo.cmd_type = OSY_MSG_AC_COMMAND;
        wt_ac_writer(&t);
        for (int i = 1; i <= 5; i++) {
                char email[32];
                snprintf(email, sizeof(email), "c%d@x.com", i);
                wt_feed(&t, email, 1, 1000, NULL);
        }
        end = osy_test_now_ms() + 1500;
        while (osy_test_now_ms() < end) {
                assert_int_equal(osy_writer_step(t.w, wt_wall_ms(), 0), OSY_OK);
                osy_test_sleep_ms(20);
        }
        osy_writer_get_stats(t.w, &st);
        /* Nobody is dead-lettered for a configuration problem, and the
         * tenant waits: one refused call, not one per command. */
        assert_int_equal(st.dead_letters, 0);
        assert_int_equal(st.applied, 0);
        assert_int_equal(st.pending, 5);
        assert_int_equal(wt_requests(&t, "ac.*", NULL, 403, NULL), 1);
        wt_stop(&t);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(unsubscribes_from_every_active_list),
            cmocka_unit_test(
                hint_and_rules_state_save_the_lookup_not_the_list_read),
            cmocka_unit_test(unknown_contact_is_skipped),
            cmocka_unit_test(backlog_goes_by_bulk_import),
            cmocka_unit_test(oversized_import_is_split_not_dead_lettered),
            cmocka_unit_test(unreadable_import_status_goes_list_by_list),
            cmocka_unit_test(
                import_status_failing_past_the_give_up_goes_list_by_list),
            cmocka_unit_test(bulk_import_goes_while_the_backlog_is_still_read),
            cmocka_unit_test(contact_refused_by_the_importer_goes_list_by_list),
            cmocka_unit_test(throttling_and_503_are_honoured),
            cmocka_unit_test(shared_limiter_keeps_the_account_rate),
            cmocka_unit_test(refused_token_pauses_the_tenant),
        };
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
