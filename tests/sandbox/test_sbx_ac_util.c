/*
 * test_sbx_ac_util.c - the pure parts of the AC simulator: PHP-style form
 * encoding of webhook bodies, AC's date formats at the account offset,
 * filter-time parsing, the token bucket and the string map.
 */
#include "osy_test.h"

#include "ac_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2024-02-28T13:04:13Z */
#define T0_MS 1709125453000LL

static void form_encodes_brackets_like_php(void **state)
{
        (void)state;
        struct ac_buf b = {0};
        ac_form_add(&b, "contact[email]", "a+b@x.com");
        ac_form_add(&b, "contact[tags]", "tag one, tag-2");
        ac_form_add(&b, "list", "0");
        assert_string_equal(b.p, "contact%5Bemail%5D=a%2Bb%40x.com"
                                 "&contact%5Btags%5D=tag+one%2C+tag-2"
                                 "&list=0");
        ac_buf_free(&b);
}

static void form_keeps_unreserved_and_escapes_utf8(void **state)
{
        (void)state;
        struct ac_buf b = {0};
        ac_form_add(&b, "k", "A-z_0.9~/é");
        /* PHP urlencode() escapes '~' and '/' too, and each UTF-8 byte */
        assert_string_equal(b.p, "k=A-z_0.9%7E%2F%C3%A9");
        ac_buf_free(&b);
        ac_form_add(&b, "empty", NULL);
        assert_string_equal(b.p, "empty=");
        ac_buf_free(&b);
}

static void form_decode_round_trip(void **state)
{
        (void)state;
        struct ac_buf b = {0};
        ac_form_add(&b, "contact[first_name]", "Zoë & Co = 100%");
        ac_form_add(&b, "type", "unsubscribe");
        ac_form_add(&b, "type", "update"); /* PHP: the last one wins */
        cJSON *o = ac_form_decode(b.p, b.len);
        assert_non_null(o);
        assert_int_equal(cJSON_GetArraySize(o), 2);
        assert_string_equal(ac_json_str(o, "contact[first_name]"),
                            "Zoë & Co = 100%");
        assert_string_equal(ac_json_str(o, "type"), "update");
        cJSON_Delete(o);
        ac_buf_free(&b);
        /* a bad escape is kept literally, a key without '=' is empty */
        o = ac_form_decode("a=%zz&b", 7);
        assert_string_equal(ac_json_str(o, "a"), "%zz");
        assert_string_equal(ac_json_str(o, "b"), "");
        cJSON_Delete(o);
}

static void dates_use_the_account_offset(void **state)
{
        (void)state;
        char buf[AC_TIME_LEN];
        int tz = 0;
        assert_int_equal(ac_tz_parse("-06:00", &tz), 0);
        assert_int_equal(tz, -360);
        ac_fmt_iso(buf, sizeof(buf), T0_MS, tz);
        assert_string_equal(buf, "2024-02-28T07:04:13-06:00");
        /* the "*_utc_timestamp" fields hold the same local wall clock */
        ac_fmt_wall(buf, sizeof(buf), T0_MS, tz);
        assert_string_equal(buf, "2024-02-28 07:04:13");
        ac_fmt_date(buf, sizeof(buf), T0_MS - 8 * 3600 * 1000LL, tz);
        assert_string_equal(buf, "2024-02-27");
        assert_int_equal(ac_tz_parse("+05:30", &tz), 0);
        ac_fmt_iso(buf, sizeof(buf), T0_MS, tz);
        assert_string_equal(buf, "2024-02-28T18:34:13+05:30");
}

static void tz_parse_rejects_garbage(void **state)
{
        (void)state;
        int tz = 7;
        assert_int_equal(ac_tz_parse("-6", &tz), -1);
        assert_int_equal(ac_tz_parse("06:00", &tz), -1);
        assert_int_equal(ac_tz_parse("+25:00", &tz), -1);
        assert_int_equal(ac_tz_parse(NULL, &tz), -1);
        assert_int_equal(tz, 7);
        assert_int_equal(ac_tz_parse("Z", &tz), 0);
        assert_int_equal(tz, 0);
}

static void parse_time_forms(void **state)
{
        (void)state;
        int64_t ms = 0;
        assert_int_equal(ac_parse_time("2024-02-28T07:04:13-06:00", 0, &ms), 0);
        assert_int_equal(ms, T0_MS);
        /* no offset: read at the account's */
        assert_int_equal(ac_parse_time("2024-02-28 07:04:13", -360, &ms), 0);
        assert_int_equal(ms, T0_MS);
        assert_int_equal(ac_parse_time("2024-02-28T13:04:13Z", -360, &ms), 0);
        assert_int_equal(ms, T0_MS);
        assert_int_equal(ac_parse_time("2024-02-28T13:04:13.250Z", 0, &ms), 0);
        assert_int_equal(ms, T0_MS);
        assert_int_equal(ac_parse_time("2024-02-28", -360, &ms), 0);
        assert_int_equal(ms, T0_MS - (7 * 3600 + 4 * 60 + 13) * 1000LL);
        assert_int_equal(ac_parse_time("2024-13-01", 0, &ms), -1);
        assert_int_equal(ac_parse_time("yesterday", 0, &ms), -1);
        assert_int_equal(ac_parse_time("2024-02-28T07:04", 0, &ms), -1);
}

static void bucket_allows_rate_then_refills(void **state)
{
        (void)state;
        struct ac_bucket b = {0};
        int64_t wait       = 0;
        int64_t t          = 1000000;
        for (int i = 0; i < 5; i++)
                assert_int_equal(ac_bucket_take(&b, 5, t, &wait), 1);
        assert_int_equal(ac_bucket_take(&b, 5, t, &wait), 0);
        assert_int_equal(wait, 200); /* one token per 200 ms at 5/s */
        assert_int_equal(ac_bucket_take(&b, 5, t + 199, &wait), 0);
        assert_true(wait >= 1 && wait <= 2);
        assert_int_equal(ac_bucket_take(&b, 5, t + 200, &wait), 1);
        /* a long pause refills to 5, never more: no hidden burst */
        t += 60000;
        for (int i = 0; i < 5; i++)
                assert_int_equal(ac_bucket_take(&b, 5, t, &wait), 1);
        assert_int_equal(ac_bucket_take(&b, 5, t, &wait), 0);
        /* rate 0 = unlimited */
        assert_int_equal(ac_bucket_take(&b, 0, t, &wait), 1);
}

static void map_put_get_delete_many(void **state)
{
        (void)state;
        struct ac_map m = {0};
        char k[32];
        static int vals[3000];
        for (int i = 0; i < 3000; i++) {
                snprintf(k, sizeof(k), "%d", i);
                assert_int_equal(ac_map_put(&m, k, &vals[i]), 0);
        }
        assert_int_equal(m.n, 3000);
        assert_true(m.nb >= 3000); /* grew: load stays <= 1 */
        for (int i = 0; i < 3000; i += 7) {
                snprintf(k, sizeof(k), "%d", i);
                assert_ptr_equal(ac_map_get(&m, k), &vals[i]);
        }
        ac_map_del(&m, "42");
        assert_null(ac_map_get(&m, "42"));
        assert_ptr_equal(ac_map_get(&m, "43"), &vals[43]);
        assert_int_equal(ac_map_put(&m, "43", &vals[0]), 0); /* replace */
        assert_ptr_equal(ac_map_get(&m, "43"), &vals[0]);
        assert_int_equal(m.n, 2999);
        ac_map_clear(&m);
        assert_null(ac_map_get(&m, "1"));
}

static void email_and_id_checks(void **state)
{
        (void)state;
        assert_true(ac_email_valid("a@x.com"));
        assert_true(ac_email_valid("first.last+tag@sub.example.org"));
        assert_false(ac_email_valid("a@x"));
        assert_false(ac_email_valid("@x.com"));
        assert_false(ac_email_valid("a b@x.com"));
        assert_false(ac_email_valid("a@@x.com"));
        assert_false(ac_email_valid("a@x."));
        assert_false(ac_email_valid(""));
        assert_int_equal(ac_id_parse("12"), 12);
        assert_int_equal(ac_id_parse("0"), 0);
        assert_int_equal(ac_id_parse("12x"), 0);
        assert_int_equal(ac_id_parse("-3"), 0);
        cJSON *n = cJSON_CreateNumber(7);
        assert_int_equal(ac_json_id(n), 7);
        cJSON_Delete(n);
        n = cJSON_CreateNumber(7.5);
        assert_int_equal(ac_json_id(n), 0);
        cJSON_Delete(n);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(form_encodes_brackets_like_php),
            cmocka_unit_test(form_keeps_unreserved_and_escapes_utf8),
            cmocka_unit_test(form_decode_round_trip),
            cmocka_unit_test(dates_use_the_account_offset),
            cmocka_unit_test(tz_parse_rejects_garbage),
            cmocka_unit_test(parse_time_forms),
            cmocka_unit_test(bucket_allows_rate_then_refills),
            cmocka_unit_test(map_put_get_delete_many),
            cmocka_unit_test(email_and_id_checks),
        };
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
