/*
 * test_ac_client.c - the AC API v3 client against the sandbox over real
 * HTTP: contacts by email, list memberships, tag names through the cached
 * tag map, bounce logs, error classes (403, 404, 429 with Retry-After), and
 * every call going through the shared Redis rate limiter.
 */
#include "osy_test.h"
#include "osy_test_sandbox.h"

#include "optsync/ac_client.h"
#include "optsync/ratelimit.h"
#include "optsync/redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN "sandbox-ac-token"

static struct osy_test_sandbox sbx;

static const char fixture[] =
    "{\"tenants\":{\"acme\":{\"ac\":{"
    "\"rate_per_s\":0,"
    "\"lists\":[{\"id\":\"1\"},{\"id\":\"2\"},{\"id\":\"3\"}],"
    "\"tags\":[{\"id\":\"9\",\"tag\":\"newsletter\"}],"
    "\"contacts\":["
    "{\"id\":\"11\",\"email\":\"ann@example.com\","
    "\"tags\":[\"newsletter\",\"added-to-salesforce-contact\"],"
    "\"lists\":{\"1\":1,\"2\":2,\"3\":3}},"
    "{\"id\":\"12\",\"email\":\"bob@example.com\","
    "\"tags\":[\"added-to-salesforce-contact\"],\"bounced_hard\":2}]}},"
    "\"slow\":{\"ac\":{\"rate_per_s\":1,\"retry_after_s\":3,"
    "\"contacts\":[{\"id\":\"1\",\"email\":\"c@example.com\"}]}}}}";

static int setup(void **state)
{
        (void)state;
        return osy_test_sandbox_start(&sbx, fixture, NULL);
}

static int teardown(void **state)
{
        (void)state;
        osy_test_sandbox_stop(&sbx);
        return 0;
}

static osy_ac_client_t *client(const char *tenant, const char *token,
                               osy_rl_t *rl)
{
        char base[128], errstr[OSY_ERRSTR_SIZE];
        struct osy_ac_client_opts o = {0};
        osy_ac_client_t *c;

        snprintf(base, sizeof(base), "%s/ac/%s/", sbx.base_url, tenant);
        o.base_url  = base;
        o.api_token = token;
        o.tenant    = tenant;
        o.limiter   = rl;
        assert_int_equal(osy_ac_client_new(&c, &o, errstr, sizeof(errstr)),
                         OSY_OK);
        return c;
}

static void finds_contact_by_email(void **s)
{
        osy_ac_client_t *c = client("acme", TOKEN, NULL);
        struct osy_ac_contact ct;
        char errstr[OSY_ERRSTR_SIZE];
        (void)s;

        assert_int_equal(osy_ac_find_contact(c, "bob@example.com", &ct, errstr,
                                             sizeof(errstr)),
                         OSY_OK);
        assert_string_equal(ct.id, "12");
        assert_true(ct.bounced_hard == 2);
        assert_int_equal(osy_ac_find_contact(c, "nobody+x@example.com", &ct,
                                             errstr, sizeof(errstr)),
                         OSY_ERR_NOT_FOUND);
        assert_int_equal(
            osy_ac_get_contact(c, "11", &ct, errstr, sizeof(errstr)), OSY_OK);
        assert_string_equal(ct.id, "11");
        assert_true(ct.bounced_hard == 0);
        assert_int_equal(
            osy_ac_get_contact(c, "999", &ct, errstr, sizeof(errstr)),
            OSY_ERR_NOT_FOUND);
        /* An id that would change the URL is refused before any call. */
        assert_int_equal(
            osy_ac_get_contact(c, "1/../2", &ct, errstr, sizeof(errstr)),
            OSY_ERR_INVALID);
        osy_ac_client_destroy(c);
}

static void reads_list_statuses(void **s)
{
        osy_ac_client_t *c          = client("acme", TOKEN, NULL);
        struct osy_ac_membership *m = NULL;
        char errstr[OSY_ERRSTR_SIZE];
        int seen[4] = {0};
        size_t n;
        (void)s;

        assert_int_equal(
            osy_ac_contact_lists(c, "11", &m, &n, errstr, sizeof(errstr)),
            OSY_OK);
        assert_int_equal(n, 3);
        for (size_t i = 0; i < n; i++) {
                long list = strtol(m[i].list, NULL, 10);
                assert_true(list >= 1 && list <= 3);
                seen[list] = m[i].status;
        }
        assert_int_equal(seen[1], OSY_AC_LIST_ACTIVE);
        assert_int_equal(seen[2], OSY_AC_LIST_UNSUBSCRIBED);
        assert_int_equal(seen[3], OSY_AC_LIST_BOUNCED);
        free(m);
        assert_int_equal(
            osy_ac_contact_lists(c, "999", &m, &n, errstr, sizeof(errstr)),
            OSY_ERR_NOT_FOUND);
        osy_ac_client_destroy(c);
}

/* One answer of @p cls is replaced by a 200 with @p body. */
static void answer_once(const char *cls, const char *body)
{
        char rule[512];

        snprintf(rule, sizeof(rule),
                 "{\"endpoint\":\"%s\",\"kind\":\"status\",\"status\":200,"
                 "\"count\":1,\"body\":%s}",
                 cls, body);
        assert_int_equal(osy_test_sandbox_call(&sbx, "POST", "/sandbox/faults",
                                               NULL, rule, NULL),
                         201);
}

/* What AC's answers say is read exactly or not at all. Before: the id
 * 113.7 became contact "114" (another person), list 13.6 list "14", the
 * status "4294967297" was cut to 1 (active), a status of "1.0" or a
 * row without its list was skipped (hiding an active list from R2), and
 * ".." passed as a contact id (curl resolves it in the path). */
static void answers_are_read_exactly_or_refused(void **s)
{
        static const char *const bad_contacts[] = {
            "{\"contacts\":[{\"id\":113.7}]}",
            "{\"contacts\":[{\"id\":\"12 34\"}]}",
            "{\"contacts\":[{\"id\":\"..\"}]}"};
        static const char *const bad_lists[] = {
            "{\"contactLists\":[{\"list\":13.6,\"status\":\"1\"}]}",
            "{\"contactLists\":[{\"list\":\"1\",\"status\":\"4294967297\"}]}",
            "{\"contactLists\":[{\"list\":\"1\",\"status\":\"1.0\"}]}",
            "{\"contactLists\":[{\"list\":\"1\",\"status\":1.4}]}",
            "{\"contactLists\":[{\"status\":\"1\"}]}"};
        osy_ac_client_t *c          = client("acme", TOKEN, NULL);
        struct osy_ac_membership *m = NULL;
        struct osy_ac_contact ct;
        char errstr[OSY_ERRSTR_SIZE];
        size_t n;
        (void)s;

        for (size_t i = 0; i < sizeof(bad_contacts) / sizeof(*bad_contacts);
             i++) {
                answer_once("ac.contacts", bad_contacts[i]);
                if (osy_ac_find_contact(c, "bob@example.com", &ct, errstr,
                                        sizeof(errstr)) == OSY_OK)
                        fail_msg("%s read as contact %s", bad_contacts[i],
                                 ct.id);
        }
        for (size_t i = 0; i < sizeof(bad_lists) / sizeof(*bad_lists); i++) {
                answer_once("ac.contactLists", bad_lists[i]);
                if (osy_ac_contact_lists(c, "11", &m, &n, errstr,
                                         sizeof(errstr)) == OSY_OK)
                        fail_msg("%s read as %zu memberships (first: list "
                                 "%s, status %d)",
                                 bad_lists[i], n, n ? m[0].list : "-",
                                 n ? m[0].status : -1);
                assert_null(m);
        }
        assert_int_equal(
            osy_ac_get_contact(c, "..", &ct, errstr, sizeof(errstr)),
            OSY_ERR_INVALID);
        /* Whole numbers are fine as numbers. */
        answer_once("ac.contactLists",
                    "{\"contactLists\":[{\"list\":2,\"status\":1}]}");
        assert_int_equal(
            osy_ac_contact_lists(c, "11", &m, &n, errstr, sizeof(errstr)),
            OSY_OK);
        assert_int_equal(n, 1);
        assert_string_equal(m[0].list, "2");
        assert_int_equal(m[0].status, OSY_AC_LIST_ACTIVE);
        free(m);
        osy_ac_client_destroy(c);
}

static void tag_names_come_from_the_cached_map(void **s)
{
        osy_ac_client_t *c = client("acme", TOKEN, NULL);
        struct osy_ac_client_stats st;
        char **names, errstr[OSY_ERRSTR_SIZE];
        size_t n;
        uint64_t calls;
        int found = 0;
        (void)s;

        assert_int_equal(osy_ac_contact_tag_names(c, "11", &names, &n, errstr,
                                                  sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(n, 2);
        for (size_t i = 0; i < n; i++)
                found += !strcmp(names[i], "added-to-salesforce-contact") ||
                         !strcmp(names[i], "newsletter");
        assert_int_equal(found, 2);
        osy_ac_strv_free(names, n);
        osy_ac_client_get_stats(c, &st);
        calls = st.calls; /* contactTags + the tag list */
        /* Another contact: one call for its associations, names cached. */
        assert_int_equal(osy_ac_contact_tag_names(c, "12", &names, &n, errstr,
                                                  sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(n, 1);
        assert_string_equal(names[0], "added-to-salesforce-contact");
        osy_ac_strv_free(names, n);
        osy_ac_client_get_stats(c, &st);
        assert_true(st.calls == calls + 1);
        assert_true(st.tag_cache_hits >= 3);
        assert_true(st.tag_cache_misses == 0);
        osy_ac_client_destroy(c);
}

static void reads_bounce_logs(void **s)
{
        osy_ac_client_t *c             = client("acme", TOKEN, NULL);
        struct osy_ac_bounce_log *logs = NULL;
        char errstr[OSY_ERRSTR_SIZE];
        size_t n;
        (void)s;

        assert_int_equal(
            osy_test_sandbox_call(&sbx, "POST", "/sandbox/ac/acme/bounce", NULL,
                                  "{\"email\":\"ann@example.com\",\"type\":"
                                  "\"hard\",\"campaign\":41,\"code\":5}",
                                  NULL),
            200);
        assert_int_equal(osy_ac_contact_bounce_logs(c, "11", &logs, &n, errstr,
                                                    sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(n, 1);
        assert_string_equal(logs[0].campaign, "41");
        assert_string_equal(logs[0].code, "5");
        assert_true(logs[0].bounce[0] != '\0');
        free(logs);
        osy_ac_client_destroy(c);
}

static void bad_token_is_an_auth_error(void **s)
{
        osy_ac_client_t *c = client("acme", "wrong-token", NULL);
        struct osy_ac_contact ct;
        char errstr[OSY_ERRSTR_SIZE];
        (void)s;

        assert_int_equal(osy_ac_find_contact(c, "ann@example.com", &ct, errstr,
                                             sizeof(errstr)),
                         OSY_ERR_AUTH);
        assert_non_null(strstr(errstr, "403"));
        assert_null(strstr(errstr, "wrong-token"));
        osy_ac_client_destroy(c);
}

/* The account allows 1 request per second: the second call at once gets
 * 429 with Retry-After, a retryable class and the hint for the backoff. */
static void too_many_requests_is_throttled_with_hint(void **s)
{
        osy_ac_client_t *c = client("slow", TOKEN, NULL);
        struct osy_ac_contact ct;
        char errstr[OSY_ERRSTR_SIZE];
        osy_err_t err = OSY_OK;
        (void)s;

        for (int i = 0; i < 3 && err != OSY_ERR_THROTTLED; i++)
                err = osy_ac_find_contact(c, "c@example.com", &ct, errstr,
                                          sizeof(errstr));
        assert_int_equal(err, OSY_ERR_THROTTLED);
        assert_true(osy_err_is_retryable(err));
        assert_true(osy_ac_client_retry_after_ms(c) == 3000);
        osy_ac_client_destroy(c);
}

/* With the shared limiter a little under the account's rate (the two
 * clocks are not one), the same burst gets no 429: every call waited for
 * its token instead. */
static void shared_limiter_keeps_under_the_account_rate(void **s)
{
        struct osy_test_redis redis;
        struct osy_redis_opts ro = {.host = "127.0.0.1"};
        struct osy_rl_opts lo    = {
               .prefix = "t", .rate = 1, .period_ms = 1250, .burst = 1};
        osy_redis_t *r = NULL;
        osy_rl_t *rl   = NULL;
        osy_ac_client_t *c;
        struct osy_ac_client_stats st;
        struct osy_ac_contact ct;
        char errstr[OSY_ERRSTR_SIZE];
        (void)s;

        assert_int_equal(osy_test_redis_start(&redis), 0);
        ro.port = redis.port;
        assert_int_equal(osy_redis_connect(&r, &ro, errstr, sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(osy_rl_new(&rl, r, &lo, errstr, sizeof(errstr)),
                         OSY_OK);
        /* Let the sandbox's own bucket refill after the previous case. */
        osy_test_sleep_ms(1300);
        c = client("slow", TOKEN, rl);
        for (int i = 0; i < 3; i++)
                assert_int_equal(osy_ac_find_contact(c, "c@example.com", &ct,
                                                     errstr, sizeof(errstr)),
                                 OSY_OK);
        osy_ac_client_get_stats(c, &st);
        assert_true(st.calls == 3);
        assert_true(st.throttled == 0);
        osy_ac_client_destroy(c);
        osy_rl_destroy(rl);
        osy_redis_destroy(r);
        osy_test_redis_stop(&redis);
}

static void url_escape_keeps_unreserved_only(void **s)
{
        char out[64];
        (void)s;

        assert_int_equal(osy_ac_url_escape("a+b@c.d_~-", out, sizeof(out)),
                         OSY_OK);
        assert_string_equal(out, "a%2Bb%40c.d_~-");
        assert_int_equal(osy_ac_url_escape("@@@@", out, 12), OSY_ERR_TOO_LARGE);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(finds_contact_by_email),
            cmocka_unit_test(reads_list_statuses),
            cmocka_unit_test(answers_are_read_exactly_or_refused),
            cmocka_unit_test(tag_names_come_from_the_cached_map),
            cmocka_unit_test(reads_bounce_logs),
            cmocka_unit_test(bad_token_is_an_auth_error),
            cmocka_unit_test(too_many_requests_is_throttled_with_hint),
            cmocka_unit_test(shared_limiter_keeps_under_the_account_rate),
            cmocka_unit_test(url_escape_keeps_unreserved_only),
        };
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, setup, teardown);
}
