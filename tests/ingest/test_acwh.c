/*
 * test_acwh.c - the AC webhook body parser and normaliser: PHP bracket
 * keys and URL decoding, JSON bodies, every list/tag/custom-field shape
 * the reference notes, required fields, and the ac.event envelopes built
 * (decoded back with osy_msg_decode, so they are valid on the bus).
 */
#include "osy_test.h"
#include "acwh.h"
#include "acwh_samples.h"
#include "optsync/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define P(...) ((const char *const[]){__VA_ARGS__})
#define NP(...) (sizeof(P(__VA_ARGS__)) / sizeof(const char *))
#define GET(form, ...)                                                         \
        osy_acwh_form_get((form), P(__VA_ARGS__), NP(__VA_ARGS__))

static void parse_ok(struct osy_acwh_form *f, const char *body,
                     osy_acwh_format_t fmt)
{
        char errstr[OSY_ERRSTR_SIZE] = "";
        memset(f, 0, sizeof(*f));
        osy_err_t err = osy_acwh_form_parse(f, body, strlen(body), fmt, errstr,
                                            sizeof(errstr));
        if (err)
                fail_msg("parse failed: %s", errstr);
}

/* Parse and extract @p body; fails the test on error. */
static void extract_ok(struct osy_acwh_form *f, struct osy_acwh_event *ev,
                       const char *body)
{
        char errstr[OSY_ERRSTR_SIZE] = "";
        parse_ok(f, body, osy_acwh_format_of(NULL, body, strlen(body)));
        if (osy_acwh_extract(f, ev, errstr, sizeof(errstr)))
                fail_msg("extract failed: %s", errstr);
}

/* Decode a whole body; @returns the error, reason in @p why. */
static osy_err_t decode(const char *body, struct osy_acwh_result *res,
                        char *why, size_t why_size)
{
        memset(res, 0, sizeof(*res));
        return osy_acwh_decode("acme", body, strlen(body),
                               osy_acwh_format_of(NULL, body, strlen(body)),
                               res, why, why_size);
}

/* Decode output @p i back from the wire, as a consumer would. */
static void wire(const struct osy_acwh_result *res, size_t i, struct osy_msg *m)
{
        char errstr[OSY_ERRSTR_SIZE] = "";
        assert_true(i < res->n);
        if (osy_msg_decode(res->out[i].value, res->out[i].value_len, m, errstr,
                           sizeof(errstr)))
                fail_msg("envelope does not decode: %s", errstr);
        assert_string_equal(m->id, res->out[i].id);
}

/* ---- form decoding ------------------------------------------------------- */

static void form_php_bracket_keys_split(void **state)
{
        struct osy_acwh_form f;
        (void)state;

        parse_ok(&f,
                 "contact%5Bemail%5D=a%40b.c&list[][id]=3&"
                 "contact[fields][contact_owner]=9&plain=1",
                 OSY_ACWH_FORM);
        assert_int_equal(f.n, 4);
        assert_string_equal(GET(&f, "contact", "email"), "a@b.c");
        assert_string_equal(GET(&f, "list", "", "id"), "3");
        assert_string_equal(GET(&f, "contact", "fields", "contact_owner"), "9");
        assert_string_equal(GET(&f, "plain"), "1");
        assert_null(GET(&f, "contact")); /* a prefix is not a match */
        osy_acwh_form_clear(&f);
}

static void form_plus_and_percent_decoded(void **state)
{
        struct osy_acwh_form f;
        (void)state;

        parse_ok(&f, "a=Too+many%20emails&b=%C3%A9t%C3%A9&c=50%25",
                 OSY_ACWH_FORM);
        assert_string_equal(GET(&f, "a"), "Too many emails");
        assert_string_equal(GET(&f, "b"), "\xc3\xa9t\xc3\xa9");
        assert_string_equal(GET(&f, "c"), "50%");
        osy_acwh_form_clear(&f);
}

static void form_malformed_escape_kept_literally(void **state)
{
        struct osy_acwh_form f;
        (void)state;

        parse_ok(&f, "a=100%&b=%zz&c=%4", OSY_ACWH_FORM);
        assert_string_equal(GET(&f, "a"), "100%");
        assert_string_equal(GET(&f, "b"), "%zz");
        assert_string_equal(GET(&f, "c"), "%4");
        osy_acwh_form_clear(&f);
}

static void form_encoded_nul_refused(void **state)
{
        struct osy_acwh_form f = {0};
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(osy_acwh_form_parse(&f, "a=x%00y", 7, OSY_ACWH_FORM,
                                             errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(errstr, "NUL"));
        assert_int_equal(f.n, 0);
        assert_int_equal(osy_acwh_form_parse(&f, "a=x\0y", 5, OSY_ACWH_FORM,
                                             errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
}

static void form_last_duplicate_wins(void **state)
{
        struct osy_acwh_form f;
        (void)state;

        parse_ok(&f, "type=open&type=unsubscribe", OSY_ACWH_FORM);
        assert_string_equal(GET(&f, "type"), "unsubscribe");
        osy_acwh_form_clear(&f);
}

static void form_odd_pairs_tolerated(void **state)
{
        struct osy_acwh_form f;
        (void)state;

        /* Empty pairs, a key without '=', a nameless value, a key whose
         * first bracket never closes, trailing text after a group. */
        parse_ok(&f, "&&flag&=orphan&[x]=dropped&a[b=lit&c[d]tail=v&",
                 OSY_ACWH_FORM);
        assert_string_equal(GET(&f, "flag"), "");
        assert_string_equal(GET(&f, "a[b"), "lit");
        assert_string_equal(GET(&f, "c", "d"), "v");
        assert_int_equal(f.n, 3);
        osy_acwh_form_clear(&f);
}

static void form_key_deeper_than_limit_dropped(void **state)
{
        char body[512];
        size_t o = (size_t)snprintf(body, sizeof(body), "a");
        struct osy_acwh_form f;
        (void)state;

        for (int i = 0; i < OSY_ACWH_MAX_DEPTH; i++)
                o += (size_t)snprintf(body + o, sizeof(body) - o, "[x]");
        snprintf(body + o, sizeof(body) - o, "=1&ok=2");
        parse_ok(&f, body, OSY_ACWH_FORM);
        assert_int_equal(f.n, 1);
        assert_string_equal(GET(&f, "ok"), "2");
        osy_acwh_form_clear(&f);
}

static void form_too_many_fields_refused(void **state)
{
        size_t n = OSY_ACWH_MAX_FIELDS + 1, len = 0;
        char *body             = malloc(n * 4 + 1);
        struct osy_acwh_form f = {0};
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        for (size_t i = 0; i < n; i++) {
                memcpy(body + len, "a=1&", 4);
                len += 4;
        }
        assert_int_equal(osy_acwh_form_parse(&f, body, len, OSY_ACWH_FORM,
                                             errstr, sizeof(errstr)),
                         OSY_ERR_TOO_LARGE);
        assert_int_equal(f.n, 0);
        free(body);
}

static void empty_body_refused(void **state)
{
        struct osy_acwh_form f = {0};
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(osy_acwh_form_parse(&f, "", 0, OSY_ACWH_FORM, errstr,
                                             sizeof(errstr)),
                         OSY_ERR_INVALID);
        assert_string_equal(errstr, "body: empty");
}

/* ---- JSON ---------------------------------------------------------------- */

static void json_nested_flattens_to_form_paths(void **state)
{
        struct osy_acwh_form f;
        (void)state;

        parse_ok(&f,
                 "{\"contact\":{\"email\":\"a@b.c\",\"fields\":[\"x\",\"y\"]},"
                 "\"list\":[{\"id\":3},{\"id\":\"5\"}],\"n\":null,"
                 "\"t\":true,\"big\":12345678901,\"f\":1.5}",
                 OSY_ACWH_JSON);
        assert_string_equal(GET(&f, "contact", "email"), "a@b.c");
        assert_string_equal(GET(&f, "contact", "fields", "1"), "y");
        assert_string_equal(GET(&f, "list", "0", "id"), "3");
        assert_string_equal(GET(&f, "list", "1", "id"), "5");
        assert_string_equal(GET(&f, "big"), "12345678901");
        assert_string_equal(GET(&f, "f"), "1.5");
        assert_string_equal(GET(&f, "t"), "true");
        assert_null(GET(&f, "n")); /* null is absent */
        osy_acwh_form_clear(&f);
}

static void json_flat_bracket_keys_split(void **state)
{
        struct osy_acwh_form f;
        (void)state;

        /* Relays that forward $_POST as JSON keep the bracket keys. */
        parse_ok(&f, "{\"contact[email]\":\"a@b.c\",\"list[][id]\":\"3\"}",
                 OSY_ACWH_JSON);
        assert_string_equal(GET(&f, "contact", "email"), "a@b.c");
        assert_string_equal(GET(&f, "list", "", "id"), "3");
        osy_acwh_form_clear(&f);
}

static void json_bad_documents_refused(void **state)
{
        static const char *const bad[] = {"{\"a\":", "[1,2]", "\"x\"",
                                          "{\"a\":1} trailing", NULL};
        char deep[200];
        struct osy_acwh_form f = {0};
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        for (size_t i = 0; bad[i]; i++)
                assert_int_equal(osy_acwh_form_parse(&f, bad[i], strlen(bad[i]),
                                                     OSY_ACWH_JSON, errstr,
                                                     sizeof(errstr)),
                                 OSY_ERR_INVALID);
        memset(deep, '[', sizeof(deep));
        deep[0] = '{';
        assert_int_equal(osy_acwh_form_parse(&f, deep, sizeof(deep),
                                             OSY_ACWH_JSON, errstr,
                                             sizeof(errstr)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(errstr, "deeper"));
}

static void format_from_content_type(void **state)
{
        (void)state;
        assert_int_equal(
            osy_acwh_format_of("application/x-www-form-urlencoded", "{}", 2),
            OSY_ACWH_FORM);
        assert_int_equal(
            osy_acwh_format_of("application/json; charset=utf-8", "a=1", 3),
            OSY_ACWH_JSON);
        assert_int_equal(osy_acwh_format_of("application/vnd.x+json", "", 0),
                         OSY_ACWH_JSON);
        assert_int_equal(osy_acwh_format_of(NULL, "  {\"a\":1}", 9),
                         OSY_ACWH_JSON);
        assert_int_equal(osy_acwh_format_of("text/plain", "{\"a\":1}", 7),
                         OSY_ACWH_JSON);
        assert_int_equal(osy_acwh_format_of(NULL, "a=1", 3), OSY_ACWH_FORM);
}

/* ---- extraction ---------------------------------------------------------- */

static void extract_public_unsubscribe(void **state)
{
        struct osy_acwh_form f;
        struct osy_acwh_event ev;
        int64_t want;
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        extract_ok(&f, &ev, ACWH_UNSUB_PUBLIC);
        assert_int_equal(ev.kind, OSY_AC_UNSUBSCRIBE);
        assert_int_equal(osy_time_parse("2024-02-28T13:04:13Z", &want, errstr,
                                        sizeof(errstr)),
                         OSY_OK);
        assert_true(ev.occurred_at == want); /* -06:00 made UTC */
        assert_string_equal(ev.email, "Jane.Doe@Example.com");
        assert_string_equal(ev.contact_id, "18723");
        assert_string_equal(ev.campaign_id, "41");
        assert_string_equal(ev.tags_csv, "added-to-salesforce-contact, "
                                         "newsletter");
        assert_int_equal(ev.initiated_by, OSY_INIT_PUBLIC);
        /* list=0 next to list[0][id]=2: only the real list counts. */
        assert_int_equal(ev.n_lists, 1);
        assert_string_equal(ev.lists[0], "2");
        assert_int_equal(ev.bounce_type, OSY_BOUNCE_NONE);
        osy_acwh_form_clear(&f);
}

/* A date_time ahead of our clock became the person's version in the
 * rules, and every real change after it was stale for the state's 30
 * days (9999 in a forged body; a wrong offset puts it hours ahead). Now
 * the receive time stands in; a few minutes of skew are kept as sent. */
static void extract_future_time_becomes_the_receive_time(void **state)
{
        struct osy_acwh_form f;
        struct osy_acwh_event ev;
        struct timespec ts;
        char body[256], soon[OSY_TIME_BUFSZ];
        int64_t now, want;
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        clock_gettime(CLOCK_REALTIME, &ts);
        now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        extract_ok(&f, &ev,
                   "type=unsubscribe&date_time=9999-12-31T23:59:59Z&"
                   "contact%5Bid%5D=7&contact%5Bemail%5D=a%40b.c&list=1");
        assert_true(ev.time_clamped);
        assert_true(ev.occurred_at >= now && ev.occurred_at < now + 60000);
        osy_acwh_form_clear(&f);

        want = now + 2 * 60 * 1000;
        want -= want % 1000;
        assert_int_equal(osy_time_format_ms(want, soon, sizeof(soon)), OSY_OK);
        snprintf(body, sizeof(body),
                 "type=unsubscribe&date_time=%s&contact%%5Bid%%5D=7&"
                 "contact%%5Bemail%%5D=a%%40b.c&list=1",
                 soon);
        extract_ok(&f, &ev, body);
        assert_false(ev.time_clamped);
        assert_true(ev.occurred_at == want);
        (void)errstr;
        osy_acwh_form_clear(&f);
}

static void extract_every_list_shape(void **state)
{
        static const char *const shapes[] = {
            "list=7",       "list[]=7",      "list[0]=7", "list[id]=7",
            "list[][id]=7", "list[3][id]=7", NULL};
        (void)state;

        for (size_t i = 0; shapes[i]; i++) {
                char body[512];
                struct osy_acwh_form f;
                struct osy_acwh_event ev;

                snprintf(body, sizeof(body),
                         "type=subscribe&date_time=2024-01-01T00:00:00Z&"
                         "contact[id]=1&contact[email]=a@b.c&%s",
                         shapes[i]);
                extract_ok(&f, &ev, body);
                assert_int_equal(ev.n_lists, 1);
                assert_string_equal(ev.lists[0], "7");
                osy_acwh_form_clear(&f);
        }
}

static void extract_lists_deduplicated_and_zero_only(void **state)
{
        struct osy_acwh_form f;
        struct osy_acwh_event ev;
        (void)state;

        extract_ok(&f, &ev,
                   "type=unsubscribe&date_time=2024-01-01T00:00:00Z&"
                   "contact[id]=1&contact[email]=a@b.c&list=3&"
                   "list[][id]=3&list[][id]=5&list[][name]=News&list=0");
        assert_int_equal(ev.n_lists, 2);
        assert_string_equal(ev.lists[0], "3");
        assert_string_equal(ev.lists[1], "5");
        osy_acwh_form_clear(&f);

        extract_ok(&f, &ev, ACWH_SUBSCRIBE);
        assert_int_equal(ev.n_lists, 1);
        assert_string_equal(ev.lists[0], "0");
        osy_acwh_form_clear(&f);
}

static void extract_too_many_lists_refused(void **state)
{
        size_t cap = 128 + (OSY_ACWH_MAX_LISTS + 1) * 24, o;
        char *body = malloc(cap);
        struct osy_acwh_form f;
        struct osy_acwh_event ev;
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        o = (size_t)snprintf(body, cap,
                             "type=unsubscribe&date_time=2024-01-01T00:00:00Z&"
                             "contact[id]=1&contact[email]=a@b.c");
        for (int i = 1; i <= OSY_ACWH_MAX_LISTS + 1; i++)
                o += (size_t)snprintf(body + o, cap - o, "&list[][id]=%d", i);
        parse_ok(&f, body, OSY_ACWH_FORM);
        assert_int_equal(osy_acwh_extract(&f, &ev, errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(errstr, "lists"));
        osy_acwh_form_clear(&f);
        free(body);
}

static void extract_tags_as_array(void **state)
{
        struct osy_acwh_form f;
        struct osy_acwh_event ev;
        struct osy_msg m[1];
        size_t n;
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        extract_ok(&f, &ev,
                   "type=update&date_time=2024-01-01T00:00:00Z&"
                   "contact[id]=1&contact[email]=a@b.c&"
                   "contact[tags][]=one&contact[tags][]=two%2C+three");
        assert_null(ev.tags_csv);
        assert_int_equal(ev.tag_items, 2);
        assert_int_equal(
            osy_acwh_build(&ev, "acme", m, 1, &n, errstr, sizeof(errstr)),
            OSY_OK);
        assert_int_equal(m[0].ac_event.tags_cnt, 2);
        assert_string_equal(m[0].ac_event.tags[1], "two, three");
        osy_msg_clear(&m[0]);
        osy_acwh_form_clear(&f);
}

static void extract_bounce_types(void **state)
{
        static const struct {
                const char *extra;
                osy_bounce_t want;
        } cases[] = {{"", OSY_BOUNCE_UNKNOWN},
                     {"&bounce[type]=hard", OSY_BOUNCE_HARD},
                     {"&bounce[type]=Soft", OSY_BOUNCE_SOFT},
                     {"&bounce_type=hard", OSY_BOUNCE_HARD},
                     {"&bounce[type]=weird", OSY_BOUNCE_UNKNOWN}};
        (void)state;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char body[1024];
                struct osy_acwh_form f;
                struct osy_acwh_event ev;

                snprintf(body, sizeof(body), "%s%s", ACWH_BOUNCE,
                         cases[i].extra);
                extract_ok(&f, &ev, body);
                assert_int_equal(ev.kind, OSY_AC_BOUNCE);
                assert_int_equal(ev.bounce_type, cases[i].want);
                assert_string_equal(ev.campaign_id, "12");
                osy_acwh_form_clear(&f);
        }
}

static void extract_initiators(void **state)
{
        static const struct {
                const char *from;
                osy_initiator_t want;
        } cases[] = {{"&initiated_from=public", OSY_INIT_PUBLIC},
                     {"&initiated_from=admin", OSY_INIT_ADMIN},
                     {"&initiated_from=API", OSY_INIT_API},
                     {"&initiated_from=system", OSY_INIT_SYSTEM},
                     {"&initiated_from=robot", OSY_INIT_UNKNOWN},
                     {"", OSY_INIT_UNKNOWN}};
        (void)state;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char body[512];
                struct osy_acwh_form f;
                struct osy_acwh_event ev;

                snprintf(body, sizeof(body),
                         "type=update&date_time=2024-01-01T00:00:00Z&"
                         "contact[id]=1&contact[email]=a@b.c%s",
                         cases[i].from);
                extract_ok(&f, &ev, body);
                assert_int_equal(ev.initiated_by, cases[i].want);
                osy_acwh_form_clear(&f);
        }
}

static void extract_campaign_zero_and_automation(void **state)
{
        struct osy_acwh_form f;
        struct osy_acwh_event ev;
        (void)state;

        extract_ok(&f, &ev,
                   "type=unsubscribe&date_time=2024-01-01T00:00:00Z&"
                   "contact[id]=1&contact[email]=a@b.c&campaign[id]=0&"
                   "automation[id]=0");
        assert_null(ev.campaign_id);
        assert_int_equal(ev.automation, 0);
        osy_acwh_form_clear(&f);
        extract_ok(&f, &ev,
                   "type=bounce&date_time=2024-01-01T00:00:00Z&"
                   "contact[id]=1&contact[email]=a@b.c&automation[id]=9");
        assert_int_equal(ev.automation, 1);
        osy_acwh_form_clear(&f);
}

static void extract_required_fields_named(void **state)
{
        static const struct {
                const char *body, *reason;
        } cases[] = {
            {"list=0", "type: missing"},
            {"type=", "type: missing"},
            {"type=update&contact[id]=1&contact[email]=a@b.c",
             "date_time: missing"},
            {"type=update&date_time=2024-01-01T00:00:00&contact[id]=1&"
             "contact[email]=a@b.c",
             "date_time: "},
            {"type=update&date_time=yesterday&contact[id]=1&"
             "contact[email]=a@b.c",
             "date_time: "},
            {"type=update&date_time=2024-01-01T00:00:00Z&contact[id]=1",
             "contact[email]: missing"},
            {"type=update&date_time=2024-01-01T00:00:00Z&"
             "contact[email]=a@b.c",
             "contact[id]: missing"},
            {"type=contact_tag_added&date_time=2024-01-01T00:00:00Z&"
             "contact[id]=1&contact[email]=a@b.c",
             "tag: missing for type contact_tag_added"}};
        (void)state;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct osy_acwh_form f;
                struct osy_acwh_event ev;
                char errstr[OSY_ERRSTR_SIZE] = "";

                parse_ok(&f, cases[i].body, OSY_ACWH_FORM);
                assert_int_equal(
                    osy_acwh_extract(&f, &ev, errstr, sizeof(errstr)),
                    OSY_ERR_INVALID);
                if (strncmp(errstr, cases[i].reason, strlen(cases[i].reason)))
                        fail_msg("case %zu: got \"%s\", want \"%s...\"", i,
                                 errstr, cases[i].reason);
                osy_acwh_form_clear(&f);
        }
}

static void extract_other_types_ignored_unchecked(void **state)
{
        struct osy_acwh_form f;
        struct osy_acwh_event ev;
        (void)state;

        /* No date or contact needed: nothing is produced from it. */
        extract_ok(&f, &ev, "type=deal_update&deal[id]=5");
        assert_int_equal(ev.kind, OSY_AC_KIND_NONE);
        assert_string_equal(ev.type, "deal_update");
        osy_acwh_form_clear(&f);
}

/* ---- building and the whole path ----------------------------------------- */

static void decode_public_unsubscribe_envelope(void **state)
{
        struct osy_acwh_result res;
        struct osy_msg m;
        char why[OSY_ERRSTR_SIZE], when[OSY_TIME_BUFSZ];
        (void)state;

        assert_int_equal(decode(ACWH_UNSUB_PUBLIC, &res, why, sizeof(why)),
                         OSY_OK);
        assert_string_equal(res.type_label, "unsubscribe");
        assert_int_equal(res.n, 1);
        assert_string_equal(res.out[0].key, "acme|jane.doe@example.com");
        assert_int_equal(res.out[0].key_len, strlen(res.out[0].key));
        wire(&res, 0, &m);
        assert_int_equal(m.type, OSY_MSG_AC_EVENT);
        assert_int_equal(m.source, OSY_SRC_AC);
        assert_string_equal(m.tenant, "acme");
        assert_string_equal(m.email, "jane.doe@example.com");
        assert_int_equal(osy_time_format_ms(m.occurred_at, when, sizeof(when)),
                         OSY_OK);
        assert_string_equal(when, "2024-02-28T13:04:13.000Z");
        assert_int_equal(m.ac_event.kind, OSY_AC_UNSUBSCRIBE);
        assert_string_equal(m.ac_event.contact_id, "18723");
        assert_string_equal(m.ac_event.list_id, "2");
        assert_string_equal(m.ac_event.campaign_id, "41");
        assert_int_equal(m.ac_event.initiated_by, OSY_INIT_PUBLIC);
        assert_int_equal(m.ac_event.tags_cnt, 2);
        assert_string_equal(m.ac_event.tags[0], "added-to-salesforce-contact");
        assert_string_equal(m.ac_event.tags[1], "newsletter");
        assert_int_equal(m.ac_event.echo, 0);
        osy_msg_clear(&m);
        osy_acwh_result_clear(&res);
}

static void decode_every_kind(void **state)
{
        static const struct {
                const char *body;
                osy_ac_kind_t kind;
                const char *list, *tag;
                osy_bounce_t bounce;
                osy_initiator_t by;
        } cases[] = {{ACWH_SUBSCRIBE, OSY_AC_SUBSCRIBE, "0", NULL,
                      OSY_BOUNCE_NONE, OSY_INIT_PUBLIC},
                     {ACWH_UNSUB_ADMIN, OSY_AC_UNSUBSCRIBE, "4", NULL,
                      OSY_BOUNCE_NONE, OSY_INIT_ADMIN},
                     {ACWH_UPDATE, OSY_AC_UPDATE, NULL, NULL, OSY_BOUNCE_NONE,
                      OSY_INIT_ADMIN},
                     {ACWH_TAG_ADDED, OSY_AC_TAG_ADDED, NULL, "tag2",
                      OSY_BOUNCE_NONE, OSY_INIT_ADMIN},
                     {ACWH_TAG_REMOVED, OSY_AC_TAG_REMOVED, NULL, "tag2",
                      OSY_BOUNCE_NONE, OSY_INIT_API},
                     {ACWH_BOUNCE, OSY_AC_BOUNCE, NULL, NULL,
                      OSY_BOUNCE_UNKNOWN, OSY_INIT_SYSTEM},
                     {ACWH_BOUNCE_HARD, OSY_AC_BOUNCE, NULL, NULL,
                      OSY_BOUNCE_HARD, OSY_INIT_SYSTEM}};
        (void)state;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct osy_acwh_result res;
                struct osy_msg m;
                char why[OSY_ERRSTR_SIZE] = "";

                if (decode(cases[i].body, &res, why, sizeof(why)))
                        fail_msg("case %zu: %s", i, why);
                assert_int_equal(res.n, 1);
                wire(&res, 0, &m);
                assert_int_equal(m.ac_event.kind, cases[i].kind);
                if (cases[i].list)
                        assert_string_equal(m.ac_event.list_id, cases[i].list);
                else
                        assert_null(m.ac_event.list_id);
                if (cases[i].tag)
                        assert_string_equal(m.ac_event.tag, cases[i].tag);
                else
                        assert_null(m.ac_event.tag);
                assert_int_equal(m.ac_event.bounce_type, cases[i].bounce);
                assert_int_equal(m.ac_event.initiated_by, cases[i].by);
                osy_msg_clear(&m);
                osy_acwh_result_clear(&res);
        }
}

static void decode_update_tags_and_subscribe_no_tags(void **state)
{
        struct osy_acwh_result res;
        struct osy_msg m;
        char why[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(decode(ACWH_UPDATE, &res, why, sizeof(why)), OSY_OK);
        wire(&res, 0, &m);
        assert_int_equal(m.ac_event.has_tags, 1);
        assert_int_equal(m.ac_event.tags_cnt, 2);
        assert_string_equal(m.ac_event.tags[1], "tag2");
        osy_msg_clear(&m);
        osy_acwh_result_clear(&res);

        /* contact[tags]= (empty): known to have no tags, "tags":[]. */
        assert_int_equal(decode(ACWH_SUBSCRIBE, &res, why, sizeof(why)),
                         OSY_OK);
        assert_non_null(strstr(res.out[0].value, "\"tags\":[]"));
        osy_acwh_result_clear(&res);

        /* No contact[tags] at all: "tags" absent, the rules look up. */
        assert_int_equal(decode(ACWH_BOUNCE, &res, why, sizeof(why)), OSY_OK);
        assert_null(strstr(res.out[0].value, "\"tags\""));
        osy_acwh_result_clear(&res);
}

static void decode_unsubscribe_split_per_list(void **state)
{
        struct osy_acwh_result res;
        struct osy_msg m0, m1;
        char why[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(decode("type=unsubscribe&date_time=2024-01-01T00:00:"
                                "00Z&contact[id]=1&contact[email]=a@b.c&"
                                "list[][id]=3&list[][id]=5",
                                &res, why, sizeof(why)),
                         OSY_OK);
        assert_int_equal(res.n, 2);
        wire(&res, 0, &m0);
        wire(&res, 1, &m1);
        assert_string_equal(m0.ac_event.list_id, "3");
        assert_string_equal(m1.ac_event.list_id, "5");
        assert_string_not_equal(res.out[0].id, res.out[1].id);
        assert_string_equal(res.out[0].key, res.out[1].key);
        osy_msg_clear(&m0);
        osy_msg_clear(&m1);
        osy_acwh_result_clear(&res);
}

static void decode_duplicate_delivery_same_id(void **state)
{
        struct osy_acwh_result a, b, c;
        char why[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(decode(ACWH_UNSUB_PUBLIC, &a, why, sizeof(why)),
                         OSY_OK);
        assert_int_equal(decode(ACWH_UNSUB_PUBLIC, &b, why, sizeof(why)),
                         OSY_OK);
        /* The same event as JSON (a relay's view) is the same event. */
        assert_int_equal(decode(ACWH_UNSUB_JSON, &c, why, sizeof(why)), OSY_OK);
        assert_string_equal(a.out[0].id, b.out[0].id);
        assert_string_equal(a.out[0].id, c.out[0].id);
        assert_string_equal(a.out[0].value, c.out[0].value);
        osy_acwh_result_clear(&a);
        osy_acwh_result_clear(&b);
        osy_acwh_result_clear(&c);

        /* One second later is another event. */
        assert_int_equal(decode(ACWH_TAG_ADDED, &a, why, sizeof(why)), OSY_OK);
        assert_int_equal(decode(ACWH_TAG_REMOVED, &b, why, sizeof(why)),
                         OSY_OK);
        assert_string_not_equal(a.out[0].id, b.out[0].id);
        osy_acwh_result_clear(&a);
        osy_acwh_result_clear(&b);
}

static void decode_oversized_tags_left_out(void **state)
{
        size_t cap = 700 * 12 + 512, o;
        char *body = malloc(cap);
        struct osy_acwh_result res;
        struct osy_msg m;
        char why[OSY_ERRSTR_SIZE];
        (void)state;

        /* 700 tags: over the 500 the schema allows. */
        o = (size_t)snprintf(body, cap,
                             "type=unsubscribe&date_time=2024-01-01T00:00:00Z&"
                             "contact[id]=1&contact[email]=a@b.c&list=3&"
                             "contact[tags]=t0");
        for (int i = 1; i < 700; i++)
                o += (size_t)snprintf(body + o, cap - o, "%%2C+t%d", i);
        assert_int_equal(decode(body, &res, why, sizeof(why)), OSY_OK);
        wire(&res, 0, &m);
        assert_int_equal(m.ac_event.has_tags, 0); /* left out, not refused */
        assert_string_equal(m.ac_event.list_id, "3");
        osy_msg_clear(&m);
        osy_acwh_result_clear(&res);
        free(body);
}

static void decode_malformed_gives_reason_and_label(void **state)
{
        struct osy_acwh_result res;
        char why[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(decode("type=unsubscribe&date_time=2024-01-01T00:00:"
                                "00Z&contact[id]=1&contact[email]=not-an-email",
                                &res, why, sizeof(why)),
                         OSY_ERR_INVALID);
        assert_string_equal(res.type_label, "unsubscribe");
        assert_int_equal(strncmp(why, "contact[email]: ", 16), 0);
        assert_int_equal(res.n, 0);

        assert_int_equal(decode("type=update&date_time=2024-01-01T00:00:00Z&"
                                "contact[id]=bad%20id&contact[email]=a@b.c",
                                &res, why, sizeof(why)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(why, "contact_id"));

        assert_int_equal(decode("garbage", &res, why, sizeof(why)),
                         OSY_ERR_INVALID);
        assert_string_equal(res.type_label, "none");
        assert_string_equal(why, "type: missing");

        assert_int_equal(decode(ACWH_OPEN, &res, why, sizeof(why)), OSY_OK);
        assert_int_equal(res.kind, OSY_AC_KIND_NONE);
        assert_string_equal(res.type_label, "other");
        assert_int_equal(res.n, 0);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(form_php_bracket_keys_split),
            cmocka_unit_test(form_plus_and_percent_decoded),
            cmocka_unit_test(form_malformed_escape_kept_literally),
            cmocka_unit_test(form_encoded_nul_refused),
            cmocka_unit_test(form_last_duplicate_wins),
            cmocka_unit_test(form_odd_pairs_tolerated),
            cmocka_unit_test(form_key_deeper_than_limit_dropped),
            cmocka_unit_test(form_too_many_fields_refused),
            cmocka_unit_test(empty_body_refused),
            cmocka_unit_test(json_nested_flattens_to_form_paths),
            cmocka_unit_test(json_flat_bracket_keys_split),
            cmocka_unit_test(json_bad_documents_refused),
            cmocka_unit_test(format_from_content_type),
            cmocka_unit_test(extract_public_unsubscribe),
            cmocka_unit_test(extract_future_time_becomes_the_receive_time),
            cmocka_unit_test(extract_every_list_shape),
            cmocka_unit_test(extract_lists_deduplicated_and_zero_only),
            cmocka_unit_test(extract_too_many_lists_refused),
            cmocka_unit_test(extract_tags_as_array),
            cmocka_unit_test(extract_bounce_types),
            cmocka_unit_test(extract_initiators),
            cmocka_unit_test(extract_campaign_zero_and_automation),
            cmocka_unit_test(extract_required_fields_named),
            cmocka_unit_test(extract_other_types_ignored_unchecked),
            cmocka_unit_test(decode_public_unsubscribe_envelope),
            cmocka_unit_test(decode_every_kind),
            cmocka_unit_test(decode_update_tags_and_subscribe_no_tags),
            cmocka_unit_test(decode_unsubscribe_split_per_list),
            cmocka_unit_test(decode_duplicate_delivery_same_id),
            cmocka_unit_test(decode_oversized_tags_left_out),
            cmocka_unit_test(decode_malformed_gives_reason_and_label),
        };
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
