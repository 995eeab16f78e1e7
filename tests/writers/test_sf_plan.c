/*
 * test_sf_plan.c - the sf-writer's pure decisions: newest wins per record,
 * Contacts before Leads, the collections body, SaveResults read by
 * position and classified, Sforce-Limit-Info and the daily reserve.
 */
#include "osy_test.h"
#include "sf_writer.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

static const struct osy_version v1 = {1000, "a"}, v2 = {2000, "a"},
                                v2b = {2000, "b"};

static void newest_command_wins_per_record(void **state)
{
        /* Two people's commands reach one Contact (a converted Lead was
         * followed to it): the newer value is written, once. */
        struct sfw_target t[] = {
            {{SFW_CONTACT, "003000000000001AAA"}, 1, &v2, 0},
            {{SFW_CONTACT, "003000000000001AAA"}, 0, &v2b, 1},
            {{SFW_CONTACT, "003000000000001AAA"}, 1, &v1, 2},
        };
        struct sfw_write *w = NULL;
        size_t nw           = 0, of[3];
        (void)state;
        assert_int_equal(sfw_plan(t, 3, &w, &nw, of), OSY_OK);
        assert_int_equal(nw, 1);
        assert_int_equal(w[0].value, 0);
        assert_int_equal(w[0].winner, 1);
        assert_int_equal(of[0], 0);
        assert_int_equal(of[2], 0);
        free(w);
}

static void equal_versions_keep_the_first(void **state)
{
        struct sfw_target t[] = {
            {{SFW_LEAD, "00Q000000000001AAA"}, 1, &v2, 0},
            {{SFW_LEAD, "00Q000000000001AAA"}, 0, &v2, 1},
        };
        struct sfw_write *w = NULL;
        size_t nw           = 0, of[2];
        (void)state;
        assert_int_equal(sfw_plan(t, 2, &w, &nw, of), OSY_OK);
        assert_int_equal(nw, 1);
        assert_int_equal(w[0].winner, 0);
        assert_int_equal(w[0].value, 1);
        free(w);
}

static void contacts_come_before_leads(void **state)
{
        struct sfw_target t[] = {
            {{SFW_LEAD, "00Q000000000002AAA"}, 1, &v1, 0},
            {{SFW_CONTACT, "003000000000009AAA"}, 1, &v1, 1},
            {{SFW_LEAD, "00Q000000000001AAA"}, 1, &v1, 2},
            {{SFW_CONTACT, "003000000000001AAA"}, 1, &v1, 3},
        };
        struct sfw_write *w = NULL;
        size_t nw           = 0, of[4];
        (void)state;
        assert_int_equal(sfw_plan(t, 4, &w, &nw, of), OSY_OK);
        assert_int_equal(nw, 4);
        /* One Contact chunk, then one Lead chunk. */
        assert_int_equal(w[0].rec.obj, SFW_CONTACT);
        assert_int_equal(w[1].rec.obj, SFW_CONTACT);
        assert_int_equal(w[2].rec.obj, SFW_LEAD);
        assert_int_equal(w[3].rec.obj, SFW_LEAD);
        assert_string_equal(w[0].rec.id, "003000000000001AAA");
        assert_int_equal(of[0], 3);
        assert_int_equal(of[1], 1);
        free(w);
}

static void collection_body_is_valid_json(void **state)
{
        struct sfw_write w[] = {{{SFW_CONTACT, "003000000000001AAA"}, 1, 0},
                                {{SFW_LEAD, "00Q000000000001AAA"}, 0, 1}};
        struct sfw_buf b     = {0};
        cJSON *root;
        const cJSON *recs, *r1;
        (void)state;
        sfw_collection_body(w, 2, &b);
        root = cJSON_Parse(b.p);
        assert_non_null(root);
        assert_true(cJSON_IsFalse(cJSON_GetObjectItem(root, "allOrNone")));
        recs = cJSON_GetObjectItem(root, "records");
        assert_int_equal(cJSON_GetArraySize(recs), 2);
        r1 = cJSON_GetArrayItem(recs, 1);
        assert_string_equal(
            cJSON_GetObjectItem(cJSON_GetObjectItem(r1, "attributes"), "type")
                ->valuestring,
            "Lead");
        assert_string_equal(cJSON_GetObjectItem(r1, "id")->valuestring,
                            "00Q000000000001AAA");
        assert_true(
            cJSON_IsFalse(cJSON_GetObjectItem(r1, "HasOptedOutOfEmail")));
        cJSON_Delete(root);
        sfw_buf_free(&b);
}

static void record_errors_are_classified(void **state)
{
        (void)state;
        assert_int_equal(sfw_classify_code("UNABLE_TO_LOCK_ROW"),
                         SFW_RES_RETRY);
        assert_int_equal(sfw_classify_code("ALL_OR_NONE_OPERATION_ROLLED_BACK"),
                         SFW_RES_RETRY);
        assert_int_equal(sfw_classify_code("CANNOT_UPDATE_CONVERTED_LEAD"),
                         SFW_RES_CONVERTED);
        assert_int_equal(sfw_classify_code("ENTITY_IS_DELETED"), SFW_RES_GONE);
        assert_int_equal(sfw_classify_code("INVALID_CROSS_REFERENCE_KEY"),
                         SFW_RES_GONE);
        assert_int_equal(sfw_classify_code("FIELD_CUSTOM_VALIDATION_EXCEPTION"),
                         SFW_RES_PERMANENT);
        assert_int_equal(sfw_classify_code("MALFORMED_ID"), SFW_RES_PERMANENT);
        assert_int_equal(sfw_classify_code(""), SFW_RES_PERMANENT);
}

static void save_results_are_read_by_position(void **state)
{
        /* The failed item has no id: only its position identifies it. */
        const char *body =
            "[{\"id\":\"003000000000001AAA\",\"success\":true,\"errors\":[]},"
            "{\"success\":false,\"errors\":[{\"statusCode\":"
            "\"UNABLE_TO_LOCK_ROW\",\"message\":\"unable to obtain exclusive "
            "access\",\"fields\":[]}]},"
            "{\"success\":false,\"errors\":[{\"statusCode\":"
            "\"CANNOT_UPDATE_CONVERTED_LEAD\",\"message\":\"cannot reference "
            "converted lead\",\"fields\":[]}]},"
            "{\"id\":\"00Q000000000004AAA\",\"success\":false,\"errors\":[{"
            "\"statusCode\":\"FIELD_INTEGRITY_EXCEPTION\",\"message\":\"bad\","
            "\"fields\":[\"HasOptedOutOfEmail\"]}]}]";
        struct sfw_result r[4];
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;
        assert_int_equal(
            sfw_parse_save_results(body, 4, r, errstr, sizeof(errstr)), OSY_OK);
        assert_int_equal(r[0].res, SFW_RES_OK);
        assert_int_equal(r[1].res, SFW_RES_RETRY);
        assert_int_equal(r[1].err, OSY_ERR_TRANSIENT);
        assert_string_equal(r[1].code, "UNABLE_TO_LOCK_ROW");
        assert_int_equal(r[2].res, SFW_RES_CONVERTED);
        assert_int_equal(r[3].res, SFW_RES_PERMANENT);
        assert_string_equal(r[3].message, "bad");
}

static void save_results_of_the_wrong_length_are_refused(void **state)
{
        struct sfw_result r[3];
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;
        assert_int_equal(sfw_parse_save_results("[{\"success\":true}]", 3, r,
                                                errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
        assert_int_equal(sfw_parse_save_results("<html>503</html>", 1, r,
                                                errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
        assert_int_equal(sfw_parse_save_results("[{\"errors\":[]}]", 1, r,
                                                errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
}

static void rest_errors_and_html_pages(void **state)
{
        char code[64], msg[256];
        (void)state;
        sfw_rest_error("[{\"message\":\"Session expired or invalid\","
                       "\"errorCode\":\"INVALID_SESSION_ID\"}]",
                       code, sizeof(code), msg, sizeof(msg));
        assert_string_equal(code, "INVALID_SESSION_ID");
        assert_string_equal(msg, "Session expired or invalid");
        sfw_rest_error("<html><body>Service Unavailable</body></html>", code,
                       sizeof(code), msg, sizeof(msg));
        assert_string_equal(code, "");
        sfw_rest_error(NULL, code, sizeof(code), msg, sizeof(msg));
        assert_string_equal(code, "");
}

static void limit_info_is_parsed_leniently(void **state)
{
        int64_t used = -1, max = -1;
        (void)state;
        assert_int_equal(sfw_limit_info_parse("api-usage=18/5000", &used, &max),
                         0);
        assert_int_equal(used, 18);
        assert_int_equal(max, 5000);
        assert_int_equal(
            sfw_limit_info_parse("api-usage=25/15000; "
                                 "per-app-api-usage=17/250(appName=sample)",
                                 &used, &max),
            0);
        assert_int_equal(used, 25);
        assert_int_equal(max, 15000);
        /* Only the per-app counter: not the org's usage. */
        assert_int_equal(
            sfw_limit_info_parse("per-app-api-usage=17/250", &used, &max), -1);
        assert_int_equal(sfw_limit_info_parse("api-usage=x/5", &used, &max),
                         -1);
        assert_int_equal(sfw_limit_info_parse("api-usage=5/0", &used, &max),
                         -1);
        assert_int_equal(sfw_limit_info_parse(NULL, &used, &max), -1);
}

static void limits_accept_numbers_and_strings(void **state)
{
        int64_t max = 0, rem = 0;
        (void)state;
        assert_int_equal(
            sfw_limits_parse("{\"DailyApiRequests\":{\"Max\":15000,"
                             "\"Remaining\":14998}}",
                             &max, &rem),
            0);
        assert_int_equal(max, 15000);
        assert_int_equal(rem, 14998);
        assert_int_equal(sfw_limits_parse("{\"DailyApiRequests\":{\"Max\":"
                                          "\"5000\",\"Remaining\":\"12\"}}",
                                          &max, &rem),
                         0);
        assert_int_equal(rem, 12);
        assert_int_equal(sfw_limits_parse("{}", &max, &rem), -1);
}

/* Quota numbers come from SF's answers: anything outside whole numbers
 * 0..2^53 is refused, so a hostile or broken answer can neither make the
 * double-to-integer conversion undefined nor overflow the reserve. Before,
 * 1e300 was cast to int64_t, and "99999999999999999999" became
 * LLONG_MAX, whose reserve (max * percent) overflowed. */
static void quota_numbers_out_of_range_are_refused(void **state)
{
        static const char *const bad_limits[] = {
            "{\"DailyApiRequests\":{\"Max\":1e300,\"Remaining\":1}}",
            "{\"DailyApiRequests\":{\"Max\":-5,\"Remaining\":1}}",
            "{\"DailyApiRequests\":{\"Max\":15000.5,\"Remaining\":1}}",
            "{\"DailyApiRequests\":{\"Max\":0,\"Remaining\":0}}",
            "{\"DailyApiRequests\":{\"Max\":100,\"Remaining\":101}}",
            "{\"DailyApiRequests\":{\"Max\":\"99999999999999999999\","
            "\"Remaining\":\"1\"}}",
            "{\"DailyApiRequests\":{\"Max\":\"-5\",\"Remaining\":\"1\"}}",
            "{\"DailyApiRequests\":{\"Max\":\"12abc\",\"Remaining\":\"1\"}}",
            "{\"DailyApiRequests\":{\"Max\":\"\",\"Remaining\":\"1\"}}",
            "{\"DailyApiRequests\":{\"Max\":15000,\"Remaining\":true}}"};
        static const char *const bad_info[] = {
            "api-usage=1/99999999999999999999",
            "api-usage=99999999999999999999/5000",
            "api-usage=+5/10",
            "api-usage=5/-10",
            "api-usage=5/",
            "api-usage=/10"};
        int64_t a = 0, b = 0;
        struct sfw_quota q;
        (void)state;
        for (size_t i = 0; i < sizeof(bad_limits) / sizeof(*bad_limits); i++)
                if (sfw_limits_parse(bad_limits[i], &a, &b) != -1)
                        fail_msg("accepted: %s", bad_limits[i]);
        for (size_t i = 0; i < sizeof(bad_info) / sizeof(*bad_info); i++)
                if (sfw_limit_info_parse(bad_info[i], &a, &b) != -1)
                        fail_msg("accepted: %s", bad_info[i]);
        /* The edges are fine, and an overage is what SF reports. */
        assert_int_equal(sfw_limit_info_parse("api-usage=5001/5000", &a, &b),
                         0);
        assert_int_equal(a, 5001);
        assert_int_equal(sfw_limits_parse("{\"DailyApiRequests\":{\"Max\":"
                                          "9007199254740992,\"Remaining\":0}}",
                                          &a, &b),
                         0);
        assert_true(a == SFW_QUOTA_MAX && b == 0);
        sfw_quota_init(&q, 10, 60000);
        sfw_quota_observe(&q, a - b, a, 0);
        assert_true(sfw_quota_reserve(&q) == SFW_QUOTA_MAX / 10);
}

static void daily_limit_is_told_from_concurrency(void **state)
{
        (void)state;
        assert_true(sfw_is_daily_limit(
            403, "[{\"message\":\"TotalRequests Limit exceeded.\","
                 "\"errorCode\":\"REQUEST_LIMIT_EXCEEDED\"}]"));
        assert_false(sfw_is_daily_limit(
            403, "[{\"message\":\"ConcurrentRequests (Concurrent API "
                 "Requests) Limit exceeded.\",\"errorCode\":"
                 "\"REQUEST_LIMIT_EXCEEDED\"}]"));
        assert_false(sfw_is_daily_limit(
            403,
            "[{\"message\":\"no\",\"errorCode\":\"INSUFFICIENT_ACCESS\"}]"));
        assert_false(sfw_is_daily_limit(
            400, "[{\"message\":\"TotalRequests Limit exceeded.\","
                 "\"errorCode\":\"REQUEST_LIMIT_EXCEEDED\"}]"));
}

static void quota_keeps_the_reserve(void **state)
{
        struct sfw_quota q;
        int64_t until = 0;
        (void)state;
        sfw_quota_init(&q, 20, 60000);
        /* Nothing known yet: calls may go. */
        assert_true(sfw_quota_may_call(&q, 0, &until));
        sfw_quota_observe(&q, 7900, 10000, 1000);
        assert_int_equal(sfw_quota_reserve(&q), 2000);
        assert_true(sfw_quota_may_call(&q, 1000, &until));
        /* 2,000 left is the reserve: stop until the next probe. */
        sfw_quota_observe(&q, 8000, 10000, 2000);
        assert_false(sfw_quota_may_call(&q, 2000, &until));
        assert_int_equal(until, 62000);
        /* A later answer still at the reserve does not move the probe
         * forward (no probe storm) ... */
        sfw_quota_observe(&q, 8001, 10000, 3000);
        assert_false(sfw_quota_may_call(&q, 3000, &until));
        assert_int_equal(until, 62000);
        /* ... the probe at 62 s that still sees it pushes it on ... */
        sfw_quota_observe(&q, 8001, 10000, 62000);
        assert_false(sfw_quota_may_call(&q, 62000, &until));
        assert_int_equal(until, 122000);
        /* ... and budget coming back (rolling 24 h) resumes. */
        sfw_quota_observe(&q, 5000, 10000, 122000);
        assert_true(sfw_quota_may_call(&q, 122000, &until));
}

static void quota_exhausted_pauses(void **state)
{
        struct sfw_quota q;
        int64_t until = 0;
        (void)state;
        sfw_quota_init(&q, 0, 30000);
        sfw_quota_observe(&q, 100, 10000, 0);
        sfw_quota_exhausted(&q, 5000);
        assert_false(sfw_quota_may_call(&q, 5000, &until));
        assert_int_equal(until, 35000);
        assert_int_equal(q.used, q.max);
        sfw_quota_observe(&q, 9999, 10000, 35000);
        assert_true(sfw_quota_may_call(&q, 35000, &until));
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(newest_command_wins_per_record),
            cmocka_unit_test(equal_versions_keep_the_first),
            cmocka_unit_test(contacts_come_before_leads),
            cmocka_unit_test(collection_body_is_valid_json),
            cmocka_unit_test(record_errors_are_classified),
            cmocka_unit_test(save_results_are_read_by_position),
            cmocka_unit_test(save_results_of_the_wrong_length_are_refused),
            cmocka_unit_test(rest_errors_and_html_pages),
            cmocka_unit_test(limit_info_is_parsed_leniently),
            cmocka_unit_test(limits_accept_numbers_and_strings),
            cmocka_unit_test(quota_numbers_out_of_range_are_refused),
            cmocka_unit_test(daily_limit_is_told_from_concurrency),
            cmocka_unit_test(quota_keeps_the_reserve),
            cmocka_unit_test(quota_exhausted_pauses),
        };
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
