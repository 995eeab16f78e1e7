/*
 * test_sf_soql.c - the sf-writer's SOQL: literal escaping, URL encoding
 * ('+' as %2B), chunked Email IN lookups, the record cache format and
 * query result parsing.
 */
#include "osy_test.h"
#include "sf_writer.h"

#include <stdlib.h>
#include <string.h>

/* Decodes %XX (the inverse of sfw_url_encode) so tests read the SOQL. */
static char *url_decode(const char *s)
{
        char *out = malloc(strlen(s) + 1), *o = out;
        for (; *s; s++) {
                if (*s == '%' && s[1] && s[2]) {
                        char hex[3] = {s[1], s[2], 0};
                        *o++        = (char)strtol(hex, NULL, 16);
                        s += 2;
                } else
                        *o++ = *s;
        }
        *o = '\0';
        return out;
}

static char *escaped(const char *in, osy_err_t want)
{
        struct sfw_buf b = {0};
        assert_int_equal(sfw_soql_escape(&b, in), want);
        sfw_buf_adds(&b, "");
        return b.p;
}

static void escape_quotes_and_backslashes(void **state)
{
        char *e;
        (void)state;
        /* Backslash first, so the quote's escape is not escaped again. */
        e = escaped("o'brien\\x@example.com", OSY_OK);
        assert_string_equal(e, "o\\'brien\\\\x@example.com");
        free(e);
        e = escaped("\\'", OSY_OK);
        assert_string_equal(e, "\\\\\\'");
        free(e);
        e = escaped("say \"hi\"", OSY_OK);
        assert_string_equal(e, "say \\\"hi\\\"");
        free(e);
}

static void escape_known_control_characters(void **state)
{
        char *e;
        (void)state;
        e = escaped("a\nb\rc\td\be\ff", OSY_OK);
        assert_string_equal(e, "a\\nb\\rc\\td\\be\\ff");
        free(e);
}

static void escape_refuses_other_control_characters(void **state)
{
        struct sfw_buf b = {0};
        (void)state;
        assert_int_equal(sfw_soql_escape(&b, "a\x01"
                                             "b"),
                         OSY_ERR_INVALID);
        assert_int_equal(sfw_soql_escape(&b, "a\x7f"), OSY_ERR_INVALID);
        sfw_buf_free(&b);
}

static void escape_keeps_utf8(void **state)
{
        char *e;
        (void)state;
        e = escaped("j\xc3\xbcrgen@m\xc3\xbcller.de", OSY_OK);
        assert_string_equal(e, "j\xc3\xbcrgen@m\xc3\xbcller.de");
        free(e);
}

static void url_encoding_sends_plus_as_2b(void **state)
{
        struct sfw_buf b = {0};
        const char *in   = "a+b c@x.com'~_.-";
        (void)state;
        sfw_url_encode(&b, in, strlen(in));
        /* A raw '+' would reach Salesforce as a space. */
        assert_string_equal(b.p, "a%2Bb%20c%40x.com%27~_.-");
        sfw_buf_free(&b);
}

static void lookup_path_for_contacts(void **state)
{
        const char *emails[] = {"a+tag@x.com", "o'neil@y.org",
                                "back\\slash@z.io"};
        struct sfw_buf b     = {0};
        char errstr[OSY_ERRSTR_SIZE], *soql;
        size_t used = 0;
        (void)state;
        assert_int_equal(sfw_lookup_path(&b, "59.0", SFW_CONTACT, emails, 3,
                                         100, 15000, &used, errstr,
                                         sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(used, 3);
        assert_true(!strncmp(b.p, "/services/data/v59.0/query?q=", 29));
        assert_null(strchr(b.p + 29, '+'));
        assert_null(strchr(b.p + 29, ' '));
        assert_non_null(strstr(b.p, "a%2Btag%40x.com"));
        soql = url_decode(b.p + 29);
        assert_string_equal(soql,
                            "SELECT Id, Email FROM Contact WHERE Email IN "
                            "('a+tag@x.com','o\\'neil@y.org',"
                            "'back\\\\slash@z.io')");
        free(soql);
        sfw_buf_free(&b);
}

static void lookup_path_for_leads_skips_converted(void **state)
{
        const char *emails[] = {"a@x.com"};
        struct sfw_buf b     = {0};
        char errstr[OSY_ERRSTR_SIZE], *soql;
        size_t used = 0;
        (void)state;
        assert_int_equal(sfw_lookup_path(&b, "59.0", SFW_LEAD, emails, 1, 100,
                                         15000, &used, errstr, sizeof(errstr)),
                         OSY_OK);
        soql = url_decode(b.p + 29);
        assert_string_equal(soql, "SELECT Id, Email FROM Lead WHERE Email IN "
                                  "('a@x.com') AND IsConverted = false");
        free(soql);
        sfw_buf_free(&b);
}

static void lookup_chunks_by_count_and_length(void **state)
{
        const char *emails[50];
        char store[50][32];
        struct sfw_buf b = {0};
        char errstr[OSY_ERRSTR_SIZE];
        size_t used = 0;
        (void)state;
        for (int i = 0; i < 50; i++) {
                snprintf(store[i], sizeof(store[i]), "person%02d@example.com",
                         i);
                emails[i] = store[i];
        }
        assert_int_equal(sfw_lookup_path(&b, "59.0", SFW_CONTACT, emails, 50,
                                         20, 15000, &used, errstr,
                                         sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(used, 20);
        sfw_buf_free(&b);
        /* A 600-byte path holds fewer; each path stays within it. */
        assert_int_equal(sfw_lookup_path(&b, "59.0", SFW_CONTACT, emails, 50,
                                         100, 600, &used, errstr,
                                         sizeof(errstr)),
                         OSY_OK);
        assert_true(used > 1 && used < 20);
        assert_true(b.len <= 600);
        sfw_buf_free(&b);
}

static void lookup_single_email_too_long(void **state)
{
        const char *emails[] = {"a-very-long-address-indeed@example.com"};
        struct sfw_buf b     = {0};
        char errstr[OSY_ERRSTR_SIZE];
        size_t used = 0;
        (void)state;
        assert_int_equal(sfw_lookup_path(&b, "59.0", SFW_CONTACT, emails, 1,
                                         100, 100, &used, errstr,
                                         sizeof(errstr)),
                         OSY_ERR_TOO_LARGE);
        assert_int_equal(used, 1);
        sfw_buf_free(&b);
}

static void converted_path_lists_lead_ids(void **state)
{
        const char *ids[] = {"00Q000000000001AAA", "00Q000000000002"};
        const char *bad[] = {"00Q' OR Id != '"};
        struct sfw_buf b  = {0};
        char *soql;
        (void)state;
        assert_int_equal(sfw_converted_path(&b, "59.0", ids, 2), OSY_OK);
        soql = url_decode(strchr(b.p, '=') + 1);
        assert_string_equal(soql, "SELECT Id, ConvertedContactId FROM Lead "
                                  "WHERE Id IN ('00Q000000000001AAA',"
                                  "'00Q000000000002')");
        free(soql);
        sfw_buf_free(&b);
        assert_int_equal(sfw_converted_path(&b, "59.0", bad, 1),
                         OSY_ERR_INVALID);
        sfw_buf_free(&b);
}

static void ids_are_15_or_18_alphanumerics(void **state)
{
        (void)state;
        assert_true(sfw_id_valid("003000000000001"));
        assert_true(sfw_id_valid("003000000000001AAA"));
        assert_false(sfw_id_valid("0030000000000"));
        assert_false(sfw_id_valid("003000000000001AA'"));
        assert_false(sfw_id_valid(NULL));
}

static void record_cache_round_trip(void **state)
{
        struct sfw_rec in[2] = {{SFW_CONTACT, "003000000000001AAA"},
                                {SFW_LEAD, "00Q000000000002AAA"}};
        struct sfw_rec *out  = NULL;
        struct sfw_buf b     = {0};
        size_t n             = 0;
        (void)state;
        sfw_recs_format(in, 2, &b);
        assert_string_equal(b.p, "C:003000000000001AAA,L:00Q000000000002AAA");
        assert_int_equal(sfw_recs_parse(b.p, &out, &n), OSY_OK);
        assert_int_equal(n, 2);
        assert_int_equal(out[1].obj, SFW_LEAD);
        assert_string_equal(out[1].id, "00Q000000000002AAA");
        free(out);
        sfw_buf_free(&b);
        assert_int_equal(sfw_recs_parse("", &out, &n), OSY_OK);
        assert_int_equal(n, 0);
        assert_int_equal(sfw_recs_parse("X:123", &out, &n), OSY_ERR_INVALID);
        assert_int_equal(sfw_recs_parse("C:bad id", &out, &n), OSY_ERR_INVALID);
}

static void query_result_rows_and_next_page(void **state)
{
        const char *body =
            "{\"totalSize\":4,\"done\":false,\"nextRecordsUrl\":"
            "\"/services/data/v59.0/query/01gX-2\",\"records\":["
            "{\"attributes\":{\"type\":\"Contact\",\"url\":\"/x\"},"
            "\"Id\":\"003000000000001AAA\",\"Email\":\"Jane.Doe@Example.COM\"},"
            "{\"attributes\":{\"type\":\"Lead\"},\"Id\":\"00Q000000000002AAA\","
            "\"Email\":\"jane.doe@example.com\",\"ConvertedContactId\":null},"
            "{\"attributes\":{\"type\":\"Lead\"},\"Id\":\"00Q000000000003AAA\","
            "\"Email\":null,\"ConvertedContactId\":\"003000000000009AAA\"},"
            "{\"Id\":\"not-an-id\",\"Email\":\"x@y.z\"}]}";
        struct sfw_row *rows = NULL;
        size_t n             = 0;
        char *next           = NULL, errstr[OSY_ERRSTR_SIZE];
        (void)state;
        assert_int_equal(sfw_parse_query(body, SFW_CONTACT, &rows, &n, &next,
                                         errstr, sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(n, 3);
        assert_string_equal(rows[0].email, "jane.doe@example.com");
        assert_int_equal(rows[0].obj, SFW_CONTACT);
        assert_int_equal(rows[1].obj, SFW_LEAD);
        assert_string_equal(rows[2].email, "");
        assert_string_equal(rows[2].converted_id, "003000000000009AAA");
        assert_string_equal(next, "/services/data/v59.0/query/01gX-2");
        free(next);
        /* The last page: no nextRecordsUrl (or null) means done. */
        assert_int_equal(sfw_parse_query("{\"done\":true,\"records\":[],"
                                         "\"nextRecordsUrl\":null}",
                                         SFW_LEAD, &rows, &n, &next, errstr,
                                         sizeof(errstr)),
                         OSY_OK);
        assert_null(next);
        assert_int_equal(n, 3);
        assert_int_equal(sfw_parse_query("<html>busy</html>", SFW_LEAD, &rows,
                                         &n, &next, errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
        free(rows);
}

/* What a query answer may carry into a write is checked: a
 * ConvertedContactId becomes the id of a PATCH (one quote in it broke the
 * whole 200-record body), and nextRecordsUrl is fetched with the bearer
 * token ("@evil.example/x" after the instance URL makes evil.example the
 * host). Either refuses the answer; so does "done": false with no next
 * page, which used to pass as complete and leave records unwritten. */
static void query_result_refuses_what_would_misdirect_a_write(void **state)
{
        static const char *const bad[] = {
            "{\"done\":true,\"records\":[{\"Id\":\"00Q000000000001AAA\","
            "\"ConvertedContactId\":\"x\\\",\\\"Email\\\":\\\"a\"}]}",
            "{\"done\":true,\"records\":[{\"Id\":\"00Q000000000001AAA\","
            "\"ConvertedContactId\":\"003-not-an-id\"}]}",
            "{\"done\":false,\"nextRecordsUrl\":\"@evil.example/x\","
            "\"records\":[]}",
            "{\"done\":false,\"nextRecordsUrl\":\"/services/data/v59.0/"
            "query/01g x\",\"records\":[]}",
            "{\"done\":false,\"records\":[]}"};
        struct sfw_row *rows = NULL;
        size_t n             = 0;
        char *next           = NULL, errstr[OSY_ERRSTR_SIZE];
        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                if (sfw_parse_query(bad[i], SFW_LEAD, &rows, &n, &next, errstr,
                                    sizeof(errstr)) != OSY_ERR_INVALID)
                        fail_msg("accepted: %s", bad[i]);
                assert_null(next);
        }
        /* A converted Lead with a real Contact id still reads. */
        assert_int_equal(
            sfw_parse_query("{\"done\":true,\"records\":[{\"Id\":"
                            "\"00Q000000000001AAA\",\"ConvertedContactId\":"
                            "\"003000000000009AAA\"}]}",
                            SFW_LEAD, &rows, &n, &next, errstr, sizeof(errstr)),
            OSY_OK);
        assert_string_equal(rows[n - 1].converted_id, "003000000000009AAA");
        free(rows);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(escape_quotes_and_backslashes),
            cmocka_unit_test(escape_known_control_characters),
            cmocka_unit_test(escape_refuses_other_control_characters),
            cmocka_unit_test(escape_keeps_utf8),
            cmocka_unit_test(url_encoding_sends_plus_as_2b),
            cmocka_unit_test(lookup_path_for_contacts),
            cmocka_unit_test(lookup_path_for_leads_skips_converted),
            cmocka_unit_test(lookup_chunks_by_count_and_length),
            cmocka_unit_test(lookup_single_email_too_long),
            cmocka_unit_test(converted_path_lists_lead_ids),
            cmocka_unit_test(ids_are_15_or_18_alphanumerics),
            cmocka_unit_test(record_cache_round_trip),
            cmocka_unit_test(query_result_rows_and_next_page),
            cmocka_unit_test(query_result_refuses_what_would_misdirect_a_write),
        };
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
