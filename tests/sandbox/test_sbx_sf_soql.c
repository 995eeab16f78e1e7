/*
 * test_sbx_sf_soql.c - the pure parts of the Salesforce simulator: the
 * SOQL subset (escape rules, parsing, errors, matching, ordering, index
 * hints), record ids, dateTime literals, versions, changeOrigin and form
 * decoding.
 */
#include "osy_test.h"

#include "sf_internal.h"

#include <stdlib.h>
#include <string.h>

static char *unesc(const char *in, int like, char *bad)
{
        return sf_soql_unescape(in, strlen(in), like, bad, 16);
}

static void unescape_valid_sequences(void **state)
{
        char bad[16];
        char *s;

        (void)state;
        s = unesc("a\\nb\\Nc\\rd\\te\\bf\\Fg", 0, bad);
        assert_string_equal(s, "a\nb\nc\rd\te\bf\fg");
        free(s);
        s = unesc("o\\'brien \\\"q\\\" back\\\\slash", 0, bad);
        assert_string_equal(s, "o'brien \"q\" back\\slash");
        free(s);
        s = unesc("caf\\u00e9 \\u0041", 0, bad);
        assert_string_equal(s, "caf\xc3\xa9 A");
        free(s);
        s = unesc("", 0, bad);
        assert_string_equal(s, "");
        free(s);
}

static void unescape_rejects_other_backslashes(void **state)
{
        char bad[16];

        (void)state;
        assert_null(unesc("a\\xb", 0, bad));
        assert_string_equal(bad, "\\x");
        assert_null(unesc("50\\%", 0, bad)); /* LIKE-only escapes */
        assert_string_equal(bad, "\\%");
        assert_null(unesc("a\\_b", 0, bad));
        assert_null(unesc("trailing\\", 0, bad));
        assert_null(unesc("\\u12", 0, bad));
        assert_null(unesc("\\u0000", 0, bad));
        assert_null(unesc("\\a", 1, bad)); /* unknown in LIKE too */
}

static void like_patterns(void **state)
{
        char bad[16];
        char *p;

        (void)state;
        assert_true(sf_soql_like("ann@example.com", "%@EXAMPLE.com"));
        assert_true(sf_soql_like("ann@example.com", "a_n@%"));
        assert_false(sf_soql_like("ann@example.com", "a_@%"));
        assert_true(sf_soql_like("", "%"));
        assert_false(sf_soql_like("abc", "ab"));
        /* \% in LIKE is a literal percent, kept escaped for the matcher */
        p = unesc("50\\%%", 1, bad);
        assert_string_equal(p, "50\\%%");
        assert_true(sf_soql_like("50% off", p));
        assert_false(sf_soql_like("500 off", p));
        free(p);
        p = unesc("a\\_b", 1, bad);
        assert_true(sf_soql_like("a_b", p));
        assert_false(sf_soql_like("axb", p));
        free(p);
}

/* ---- parsing
 * ------------------------------------------------------------------ */

static struct sf_soql *parse_ok(const char *q)
{
        struct sf_soql_error err;
        struct sf_soql *s = sf_soql_parse(q, &err);

        if (!s)
                fail_msg("%s: %s %s", q, err.code, err.message);
        return s;
}

static void parse_err(const char *q, const char *code, const char *needle)
{
        struct sf_soql_error err;
        struct sf_soql *s = sf_soql_parse(q, &err);

        if (s)
                fail_msg("%s: parsed, want %s", q, code);
        assert_string_equal(err.code, code);
        if (needle && !strstr(err.message, needle))
                fail_msg("%s: message %s lacks %s", q, err.message, needle);
}

static void parse_select_list_and_clauses(void **state)
{
        struct sf_soql *s;

        (void)state;
        s = parse_ok("select id, EMAIL, HasOptedOutOfEmail , IsConverted "
                     "FROM lead WHERE IsConverted = false ORDER BY "
                     "SystemModstamp DESC NULLS LAST, Id LIMIT 25");
        assert_int_equal(s->entity, SF_LEAD);
        assert_int_equal(s->field_cnt, 4);
        assert_int_equal(s->fields[0], SF_F_ID);
        assert_int_equal(s->fields[1], SF_F_EMAIL);
        assert_int_equal(s->fields[3], SF_F_ISCONVERTED);
        assert_int_equal(s->order_cnt, 2);
        assert_int_equal(s->order[0].field, SF_F_SYSMOD);
        assert_true(s->order[0].desc);
        assert_true(s->order[0].nulls_last);
        assert_false(s->order[1].desc);
        assert_int_equal(s->limit, 25);
        assert_non_null(s->where);
        sf_soql_free(s);
        s = parse_ok("SELECT Id FROM Contact");
        assert_null(s->where);
        assert_int_equal(s->limit, -1);
        sf_soql_free(s);
}

static void parse_errors(void **state)
{
        (void)state;
        parse_err("SELECT FROM Contact", "MALFORMED_QUERY",
                  "unexpected token: FROM");
        parse_err("SELECT Id Contact", "MALFORMED_QUERY", "unexpected token");
        parse_err("SELECT Id, Id FROM Contact", "MALFORMED_QUERY",
                  "duplicate field selected: Id");
        parse_err("SELECT Id FROM Contact WHERE Email = \"a@x.com\"",
                  "MALFORMED_QUERY", "no viable alternative at character '\"'");
        parse_err("SELECT Id FROM Contact WHERE Email = 'a@x.com",
                  "MALFORMED_QUERY", "'<EOF>'");
        parse_err("SELECT Id FROM Contact WHERE Email = 'a' OR Email = 'b' "
                  "AND IsDeleted = false",
                  "MALFORMED_QUERY", "unexpected token: AND");
        parse_err("SELECT Id FROM Contact LIMIT abc", "MALFORMED_QUERY", NULL);
        parse_err("SELECT Id FROM Contact LIMIT 5 junk", "MALFORMED_QUERY",
                  "unexpected token: junk");
        parse_err("SELECT Company FROM Contact", "INVALID_FIELD",
                  "No such column 'Company' on entity 'Contact'");
        parse_err("SELECT Id FROM Contacts", "INVALID_TYPE",
                  "sObject type 'Contacts' is not supported");
        parse_err("SELECT Id FROM Lead WHERE IsConverted = 'false'",
                  "INVALID_QUERY_FILTER_OPERATOR", "type boolean");
        parse_err("SELECT Id FROM Lead WHERE Email = true",
                  "INVALID_QUERY_FILTER_OPERATOR", "enclosed in quotes");
        parse_err("SELECT Id FROM Lead WHERE SystemModstamp > "
                  "2024-01-01T00:00:00",
                  "INVALID_QUERY_FILTER_OPERATOR", "type dateTime");
        parse_err("SELECT Id FROM Lead WHERE SystemModstamp > 2024-01-01",
                  "INVALID_QUERY_FILTER_OPERATOR", NULL);
        parse_err("SELECT Id FROM Lead WHERE IsConverted < true",
                  "INVALID_QUERY_FILTER_OPERATOR", "boolean");
        parse_err("SELECT Id FROM Lead WHERE Id = '123'",
                  "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: 123");
}

static void error_message_points_at_the_column(void **state)
{
        static const char want[] =
            "\nSELECT Id, Bogus FROM Contact\n           ^\n"
            "ERROR at Row:1:Column:12\nNo such column 'Bogus'";
        struct sf_soql_error err;

        (void)state;
        assert_null(sf_soql_parse("SELECT Id, Bogus FROM Contact", &err));
        /* the query, a caret under the column, row and column, detail */
        assert_int_equal(strncmp(err.message, want, strlen(want)), 0);
}

/* ---- matching
 * -------------------------------------------------------------------- */

static void rec_init(struct sf_record *r, enum sf_entity e, const char *id,
                     char *email, int optout, int64_t sysmod)
{
        memset(r, 0, sizeof(*r));
        r->entity = e;
        assert_int_equal(sf_id_normalize(id, r->id), 0);
        r->email              = email;
        r->opted_out          = optout;
        r->conv_date_ms       = -1;
        r->system_modstamp_ms = sysmod;
        r->last_modified_ms   = sysmod;
}

static int match(const char *q, const struct sf_record *r)
{
        struct sf_soql *s = parse_ok(q);
        int m             = sf_soql_match(s, r);

        sf_soql_free(s);
        return m;
}

static void where_clause_matching(void **state)
{
        char e1[] = "Ann@Example.com";
        struct sf_record c, l, n;
        int64_t t = 1704067200000; /* 2024-01-01T00:00:00Z */

        (void)state;
        rec_init(&c, SF_CONTACT, "003SB0000000001", e1, 0, t);
        rec_init(&l, SF_LEAD, "00QSB0000000002", e1, 1, t + 1000);
        rec_init(&n, SF_CONTACT, "003SB0000000003", NULL, 0, t);
        l.is_converted = 1;
        assert_true(match("SELECT Id FROM Contact WHERE Email = "
                          "'ann@EXAMPLE.COM'",
                          &c));
        assert_false(
            match("SELECT Id FROM Contact WHERE Email = 'ann@x.com'", &c));
        assert_true(match("SELECT Id FROM Contact WHERE Email IN ('x@y.z', "
                          "'ANN@example.com')",
                          &c));
        assert_true(match("SELECT Id FROM Contact WHERE Email NOT IN "
                          "('x@y.z')",
                          &c));
        assert_true(match("SELECT Id FROM Lead WHERE IsConverted = true AND "
                          "HasOptedOutOfEmail = true",
                          &l));
        assert_false(
            match("SELECT Id FROM Lead WHERE IsConverted = false", &l));
        assert_true(match("SELECT Id FROM Lead WHERE SystemModstamp > "
                          "2024-01-01T00:00:00Z",
                          &l));
        assert_false(match("SELECT Id FROM Contact WHERE SystemModstamp > "
                           "2024-01-01T00:00:00Z",
                           &c));
        assert_true(match("SELECT Id FROM Contact WHERE SystemModstamp >= "
                          "2024-01-01T01:00:00.000+01:00",
                          &c));
        assert_true(match("SELECT Id FROM Contact WHERE Id = "
                          "'003SB0000000001YAA'",
                          &c));
        assert_true(match("SELECT Id FROM Contact WHERE (Email = 'no@x.com' "
                          "OR Email LIKE 'ann%') AND NOT HasOptedOutOfEmail "
                          "= true",
                          &c));
        /* null semantics: != includes nulls, < excludes them */
        assert_true(match("SELECT Id FROM Contact WHERE Email = null", &n));
        assert_true(match("SELECT Id FROM Contact WHERE Email != 'a@b.c'", &n));
        assert_false(match("SELECT Id FROM Contact WHERE Email > 'a'", &n));
        assert_false(match("SELECT Id FROM Contact WHERE Email != null", &n));
}

static void order_by_comparison(void **state)
{
        char ea[] = "a@x.com", eb[] = "B@x.com";
        struct sf_record a, b, n;
        struct sf_soql *s;

        (void)state;
        rec_init(&a, SF_CONTACT, "003SB0000000001", ea, 0, 2000);
        rec_init(&b, SF_CONTACT, "003SB0000000002", eb, 1, 1000);
        rec_init(&n, SF_CONTACT, "003SB0000000003", NULL, 0, 1000);
        s = parse_ok("SELECT Id FROM Contact ORDER BY SystemModstamp DESC");
        assert_true(sf_soql_cmp(s, &a, &b) < 0);
        sf_soql_free(s);
        s = parse_ok("SELECT Id FROM Contact ORDER BY Email");
        assert_true(sf_soql_cmp(s, &a, &b) < 0); /* case-insensitive */
        assert_true(sf_soql_cmp(s, &n, &a) < 0); /* nulls first */
        sf_soql_free(s);
        s = parse_ok("SELECT Id FROM Contact ORDER BY Email NULLS LAST");
        assert_true(sf_soql_cmp(s, &n, &a) > 0);
        sf_soql_free(s);
        s = parse_ok("SELECT Id FROM Contact ORDER BY SystemModstamp, Id");
        assert_true(sf_soql_cmp(s, &b, &n) < 0); /* tie broken by Id */
        sf_soql_free(s);
}

static void index_hints(void **state)
{
        const struct sf_value *vals;
        size_t cnt = 0;
        struct sf_soql *s;

        (void)state;
        s = parse_ok("SELECT Id FROM Lead WHERE IsConverted = false AND Email "
                     "IN ('a@x.com', 'b@x.com')");
        assert_int_equal(sf_soql_hint(s, &vals, &cnt), SF_F_EMAIL);
        assert_int_equal(cnt, 2);
        assert_string_equal(vals[1].s, "b@x.com");
        sf_soql_free(s);
        s = parse_ok("SELECT Id FROM Lead WHERE Id = '00QSB0000000002'");
        assert_int_equal(sf_soql_hint(s, &vals, &cnt), SF_F_ID);
        assert_string_equal(vals[0].s, "00QSB00000000022AA"); /* normalised */
        sf_soql_free(s);
        s = parse_ok("SELECT Id FROM Lead WHERE Email = 'a@x.com' OR "
                     "IsConverted = false");
        assert_int_equal(sf_soql_hint(s, &vals, &cnt), -1);
        sf_soql_free(s);
        s = parse_ok("SELECT Id FROM Lead WHERE Email NOT IN ('a@x.com')");
        assert_int_equal(sf_soql_hint(s, &vals, &cnt), -1);
        sf_soql_free(s);
}

/* ---- ids, times, requests
 * ------------------------------------------------------------ */

static void record_ids(void **state)
{
        char id[SF_ID_LEN + 1];

        (void)state;
        sf_id_make("003", 1, id);
        assert_string_equal(id, "003SB0000000001YAA");
        sf_id_make("00Q", 42, id);
        assert_string_equal(id, "00QSB00000000422AA");
        assert_int_equal(sf_id_normalize("003SB0000000001", id), 0);
        assert_string_equal(id, "003SB0000000001YAA");
        /* the suffix encodes letter case: a wrong one is malformed */
        assert_int_equal(sf_id_normalize("003SB0000000001AAA", id), -1);
        assert_int_equal(sf_id_normalize("003sb0000000001", id), 0);
        assert_string_equal(id, "003sb0000000001AAA");
        assert_int_equal(sf_id_normalize("003SB00000000", id), -1);
        assert_int_equal(sf_id_normalize("003SB-000000001", id), -1);
        assert_int_equal(sf_id_normalize(NULL, id), -1);
}

static void datetime_literals_and_formats(void **state)
{
        int64_t ms = 0;
        char buf[SF_TIME_BUFSZ];

        (void)state;
        assert_int_equal(sf_datetime_parse("2024-01-01T00:00:00Z", 20, &ms), 0);
        assert_int_equal(ms, 1704067200000);
        assert_int_equal(
            sf_datetime_parse("2024-01-01T02:00:00.250+02:00", 29, &ms), 0);
        assert_int_equal(ms, 1704067200250);
        assert_int_equal(
            sf_datetime_parse("2023-12-31T19:00:00-05:00", 25, &ms), 0);
        assert_int_equal(ms, 1704067200000);
        assert_int_equal(sf_datetime_parse("2024-01-01T00:00:00", 19, &ms), -1);
        assert_int_equal(sf_datetime_parse("2024-13-01T00:00:00Z", 20, &ms),
                         -1);
        assert_int_equal(sf_datetime_parse("2023-02-29T00:00:00Z", 20, &ms),
                         -1);
        assert_int_equal(sf_datetime_parse("2024-02-29T00:00:00Z", 20, &ms), 0);
        assert_int_equal(sf_datetime_parse("2024-01-01 00:00:00Z", 20, &ms),
                         -1);
        assert_int_equal(sf_date_parse("2024-03-05", 10, &ms), 0);
        sf_date_format(ms, buf, sizeof(buf));
        assert_string_equal(buf, "2024-03-05");
        sf_time_format(1709644455123, buf, sizeof(buf));
        assert_string_equal(buf, "2024-03-05T13:14:15.123+0000");
}

static void versions_origins_forms(void **state)
{
        char v[16], o[160], *f;
        static const char form[] =
            "grant_type=client_credentials&client_id2=x&client_id=a%2Bb+c"
            "&empty=&flag";

        (void)state;
        assert_int_equal(sf_version_parse("v59.0", 5, v, sizeof(v)), 0);
        assert_string_equal(v, "59.0");
        assert_int_equal(sf_version_parse("v59", 3, v, sizeof(v)), -1);
        assert_int_equal(sf_version_parse("v59.1", 5, v, sizeof(v)), -1);
        assert_int_equal(sf_version_parse("v19.0", 5, v, sizeof(v)), -1);
        assert_int_equal(sf_version_parse("v67.0", 5, v, sizeof(v)), -1);
        sf_origin_build("client=optsync", "59.0", o, sizeof(o));
        assert_string_equal(o, "com/salesforce/api/rest/59.0;client=optsync");
        sf_origin_build("defaultNamespace=ns, client=optsync ", "60.0", o,
                        sizeof(o));
        assert_string_equal(o, "com/salesforce/api/rest/60.0;client=optsync");
        sf_origin_build(NULL, "59.0", o, sizeof(o));
        assert_string_equal(o, "com/salesforce/api/rest/59.0");
        f = sf_form_get(form, strlen(form), "client_id");
        assert_string_equal(f, "a+b c");
        free(f);
        f = sf_form_get(form, strlen(form), "empty");
        assert_string_equal(f, "");
        free(f);
        f = sf_form_get(form, strlen(form), "flag");
        assert_string_equal(f, "");
        free(f);
        assert_null(sf_form_get(form, strlen(form), "client"));
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(unescape_valid_sequences),
            cmocka_unit_test(unescape_rejects_other_backslashes),
            cmocka_unit_test(like_patterns),
            cmocka_unit_test(parse_select_list_and_clauses),
            cmocka_unit_test(parse_errors),
            cmocka_unit_test(error_message_points_at_the_column),
            cmocka_unit_test(where_clause_matching),
            cmocka_unit_test(order_by_comparison),
            cmocka_unit_test(index_hints),
            cmocka_unit_test(record_ids),
            cmocka_unit_test(datetime_literals_and_formats),
            cmocka_unit_test(versions_origins_forms),
        };

        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
