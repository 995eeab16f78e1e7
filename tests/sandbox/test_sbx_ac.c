/*
 * test_sbx_ac.c - the AC simulator's /api/3 through real HTTP: auth, the
 * account-wide rate limit, contacts, list memberships, tags, bounces and
 * bulk import, each checked against the shapes of AC's real answers.
 */
#include "test_sbx_ac.h"

/* Five contacts (ids 1,2,3,5,8), two lists, two tags; no rate limit. */
static const char *FIXTURE =
    "{\"tenants\":{\"t1\":{\"ac\":{"
    "\"api_tokens\":[\"tok\",\"tok2\"],\"timezone\":\"-06:00\","
    "\"rate_per_s\":0,"
    "\"lists\":[{\"id\":\"1\",\"name\":\"Newsletter\"},"
    "{\"id\":\"2\",\"name\":\"Promo\"}],"
    "\"tags\":[{\"id\":\"1\",\"tag\":\"added-to-salesforce-contact\"},"
    "{\"id\":\"2\",\"tag\":\"vip\"}],"
    "\"contacts\":["
    "{\"id\":\"1\",\"email\":\"ann@x.com\",\"first_name\":\"Ann\","
    "\"last_name\":\"A\",\"tags\":[\"added-to-salesforce-contact\"],"
    "\"lists\":{\"1\":1,\"2\":1}},"
    "{\"id\":\"2\",\"email\":\"bob@x.com\",\"first_name\":\"Bob\","
    "\"lists\":{\"1\":2}},"
    "{\"id\":\"3\",\"email\":\"cy@x.com\",\"lists\":{\"1\":0,\"2\":3}},"
    "{\"id\":\"5\",\"email\":\"dee@x.com\"},"
    "{\"id\":\"8\",\"email\":\"Eve@X.com\",\"tags\":[\"vip\"]}]"
    "}}}}";

static int setup(void **state)
{
        (void)state;
        return t_start(FIXTURE, NULL);
}

/* A fixture with a small rate limit (2/s) and the given extra knobs. */
static int setup_rate(void **state)
{
        (void)state;
        return t_start("{\"tenants\":{\"t1\":{\"ac\":{"
                       "\"api_tokens\":[\"tok\",\"tok2\"],\"rate_per_s\":2,"
                       "\"contacts\":[{\"email\":\"a@x.com\"}]}}}}",
                       NULL);
}

/* No rate in the fixture: AC's 5 requests per second. */
static int setup_default_rate(void **state)
{
        (void)state;
        return t_start("{\"tenants\":{\"t1\":{\"ac\":{\"api_token\":\"tok\"}}"
                       "}}",
                       NULL);
}

static int setup_503(void **state)
{
        (void)state;
        static const char *const args[] = {"--set", "ac.rate_per_s=1", "--set",
                                           "ac.rate_mode=503", NULL};
        return t_start("{\"tenants\":{\"t1\":{\"ac\":{\"api_token\":\"tok\"}}"
                       "}}",
                       args);
}

/* ---- auth ---------------------------------------------------------------- */

static void auth_missing_or_wrong_token_is_403(void **state)
{
        (void)state;
        struct osy_http_response rs;
        assert_int_equal(t_raw("GET", "/ac/t1/api/3/contacts", NULL, NULL, &rs),
                         403);
        cJSON *j = cJSON_Parse(rs.body);
        assert_non_null(t_str(j, "message"));
        cJSON_Delete(j);
        osy_http_response_free(&rs);
        assert_int_equal(
            t_raw("GET", "/ac/t1/api/3/contacts", "nope", NULL, &rs), 403);
        osy_http_response_free(&rs);
        /* every key of the account works, not only the first */
        assert_int_equal(
            t_raw("GET", "/ac/t1/api/3/contacts", "tok2", NULL, &rs), 200);
        osy_http_response_free(&rs);
        /* an unknown route under /api/3 is a 404 once authenticated */
        assert_int_equal(t_raw("GET", "/ac/t1/api/3/nothing", "tok", NULL, &rs),
                         404);
        osy_http_response_free(&rs);
}

/* ---- rate limit ---------------------------------------------------------- */

static void rate_limit_429_with_retry_after(void **state)
{
        (void)state;
        struct osy_http_response rs;
        assert_int_equal(
            t_raw("GET", "/ac/t1/api/3/contacts", "tok", NULL, &rs), 200);
        assert_string_equal(osy_http_response_header(&rs, "RateLimit-Limit"),
                            "2");
        assert_string_equal(
            osy_http_response_header(&rs, "RateLimit-Remaining"), "1");
        osy_http_response_free(&rs);
        assert_int_equal(
            t_raw("GET", "/ac/t1/api/3/contacts", "tok", NULL, &rs), 200);
        osy_http_response_free(&rs);
        assert_int_equal(
            t_raw("GET", "/ac/t1/api/3/contacts", "tok", NULL, &rs), 429);
        assert_string_equal(osy_http_response_header(&rs, "Retry-After"), "1");
        assert_string_equal(
            osy_http_response_header(&rs, "RateLimit-Remaining"), "0");
        osy_http_response_free(&rs);
        /* the window follows the simulator clock */
        t_clock_advance(1000);
        assert_int_equal(
            t_raw("GET", "/ac/t1/api/3/contacts", "tok", NULL, &rs), 200);
        osy_http_response_free(&rs);
}

static void rate_limit_defaults_to_5_per_second(void **state)
{
        (void)state;
        struct osy_http_response rs;
        for (int i = 0; i < 5; i++) {
                assert_int_equal(
                    t_raw("GET", "/ac/t1/api/3/tags", "tok", NULL, &rs), 200);
                assert_string_equal(
                    osy_http_response_header(&rs, "RateLimit-Limit"), "5");
                osy_http_response_free(&rs);
        }
        assert_int_equal(t_raw("GET", "/ac/t1/api/3/tags", "tok", NULL, &rs),
                         429);
        osy_http_response_free(&rs);
}

static void rate_limit_is_shared_by_every_key(void **state)
{
        (void)state;
        struct osy_http_response rs;
        assert_int_equal(t_raw("GET", "/ac/t1/api/3/tags", "tok", NULL, &rs),
                         200);
        osy_http_response_free(&rs);
        assert_int_equal(t_raw("GET", "/ac/t1/api/3/tags", "tok2", NULL, &rs),
                         200);
        osy_http_response_free(&rs);
        assert_int_equal(t_raw("GET", "/ac/t1/api/3/tags", "tok2", NULL, &rs),
                         429);
        osy_http_response_free(&rs);
        /* a refused token spends nothing and still gets its 403 */
        assert_int_equal(t_raw("GET", "/ac/t1/api/3/tags", "bad", NULL, &rs),
                         403);
        osy_http_response_free(&rs);
}

static void rate_limit_503_mode(void **state)
{
        (void)state;
        struct osy_http_response rs;
        assert_int_equal(
            t_raw("GET", "/ac/t1/api/3/contacts", "tok", NULL, &rs), 200);
        osy_http_response_free(&rs);
        assert_int_equal(
            t_raw("GET", "/ac/t1/api/3/contacts", "tok", NULL, &rs), 503);
        assert_non_null(strstr(rs.body, "503"));
        osy_http_response_free(&rs);
        /* switched at run time to 429 by the settings control */
        t_ctl_ok("POST", "/sandbox/ac/t1/settings", "{\"rate_mode\":429}");
        assert_int_equal(
            t_raw("GET", "/ac/t1/api/3/contacts", "tok", NULL, &rs), 429);
        osy_http_response_free(&rs);
}

/* ---- contacts ------------------------------------------------------------ */

static void contacts_by_email_case_insensitive(void **state)
{
        (void)state;
        int st;
        cJSON *j = t_api("GET", "/contacts?email=EVE%40x.COM", NULL, &st);
        assert_int_equal(st, 200);
        assert_jstr(j, "contacts/0/id", "8");
        assert_jstr(j, "contacts/0/email", "Eve@X.com");
        assert_jstr(j, "meta/total", "1"); /* a string */
        assert_jstr(j, "meta/page_input/email", "EVE@x.COM");
        assert_jstr(j, "contacts/0/bounced_hard", "0");
        assert_non_null(t_item(j, "scoreValues"));
        cJSON_Delete(j);
        j = t_api("GET", "/contacts?email=nobody%40x.com", NULL, &st);
        assert_int_equal(st, 200);
        assert_int_equal(cJSON_GetArraySize(t_item(j, "contacts")), 0);
        assert_jstr(j, "meta/total", "0");
        cJSON_Delete(j);
}

static void contacts_paging_id_greater_and_orders(void **state)
{
        (void)state;
        int st;
        cJSON *j =
            t_api("GET", "/contacts?id_greater=2&orders%5Bid%5D=ASC&limit=2",
                  NULL, &st);
        assert_int_equal(st, 200);
        assert_int_equal(cJSON_GetArraySize(t_item(j, "contacts")), 2);
        assert_jstr(j, "contacts/0/id", "3");
        assert_jstr(j, "contacts/1/id", "5");
        assert_jstr(j, "meta/total", "3"); /* 3, 5, 8 match */
        cJSON_Delete(j);
        j = t_api("GET", "/contacts?orders%5Bid%5D=DESC&limit=2", NULL, &st);
        assert_jstr(j, "contacts/0/id", "8");
        assert_jstr(j, "contacts/1/id", "5");
        assert_jstr(j, "meta/total", "5");
        cJSON_Delete(j);
        j = t_api("GET", "/contacts?limit=1&offset=1", NULL, &st);
        assert_jstr(j, "contacts/0/id", "2");
        cJSON_Delete(j);
        /* limit is capped at 100; the default is 20 */
        j = t_api("GET", "/contacts?limit=1000", NULL, &st);
        assert_int_equal(
            (int)cJSON_GetNumberValue(t_item(j, "meta/page_input/limit")), 100);
        cJSON_Delete(j);
        j = t_api("GET", "/contacts", NULL, &st);
        assert_int_equal(
            (int)cJSON_GetNumberValue(t_item(j, "meta/page_input/limit")), 20);
        cJSON_Delete(j);
}

static void contacts_filter_by_list_status_and_tag(void **state)
{
        (void)state;
        int st;
        cJSON *j = t_api("GET", "/contacts?listid=1&status=2", NULL, &st);
        assert_jstr(j, "meta/total", "1");
        assert_jstr(j, "contacts/0/id", "2");
        cJSON_Delete(j);
        j = t_api("GET", "/contacts?tagid=2", NULL, &st);
        assert_jstr(j, "meta/total", "1");
        assert_jstr(j, "contacts/0/id", "8");
        cJSON_Delete(j);
        /* filters[updated_after] compares udate; PUT moves it forward */
        t_clock_advance(3600 * 1000);
        cJSON_Delete(t_api("PUT", "/contacts/5",
                           "{\"contact\":{\"firstName\":\"Dee\"}}", &st));
        assert_int_equal(st, 200);
        j = t_api("GET", "/contacts/5", NULL, &st);
        char q[128];
        snprintf(q, sizeof(q), "/contacts?filters%%5Bupdated_after%%5D=%.19s",
                 t_str(j, "contact/udate"));
        cJSON_Delete(j);
        j = t_api("GET", q, NULL, &st);
        assert_int_equal(st, 200);
        assert_jstr(j, "meta/total", "1");
        assert_jstr(j, "contacts/0/id", "5");
        cJSON_Delete(j);
}

static void contact_get_shape_and_404(void **state)
{
        (void)state;
        int st;
        cJSON *j = t_api("GET", "/contacts/1", NULL, &st);
        assert_int_equal(st, 200);
        assert_jstr(j, "contact/id", "1");
        assert_jstr(j, "contact/firstName", "Ann");
        assert_true(t_is_iso(t_str(j, "contact/cdate"), "-06:00"));
        assert_true(t_is_iso(t_str(j, "contact/udate"), "-06:00"));
        assert_true(t_is_wall(t_str(j, "contact/created_utc_timestamp")));
        /* the "utc" stamp repeats the local wall clock of cdate */
        assert_memory_equal(t_str(j, "contact/cdate"),
                            t_str(j, "contact/created_utc_timestamp"), 10);
        assert_true(cJSON_IsNull(t_item(j, "contact/bounced_date")));
        assert_jstr(j, "contact/contactLists/0", "1"); /* ids */
        assert_non_null(t_item(j, "contactLists/1/status"));
        assert_non_null(t_item(j, "fieldValues"));
        const char *link = t_str(j, "contact/links/contactTags");
        assert_non_null(link);
        assert_non_null(strstr(link, "/ac/t1/api/3/contacts/1/contactTags"));
        cJSON_Delete(j);
        j = t_api("GET", "/contacts/999", NULL, &st);
        assert_int_equal(st, 404);
        assert_jstr(j, "message", "No Result found for Subscriber with id 999");
        cJSON_Delete(j);
        j = t_api("GET", "/contacts/999/contactLists", NULL, &st);
        assert_int_equal(st, 404);
        assert_jstr(j, "message", "No Result found for Subscriber with id 999");
        cJSON_Delete(j);
}

static void contact_create_201_duplicate_and_invalid_422(void **state)
{
        (void)state;
        int st;
        cJSON *j = t_api("POST", "/contacts",
                         "{\"contact\":{\"email\":\"new@x.com\","
                         "\"firstName\":\"N\",\"fieldValues\":[{\"field\":"
                         "\"2\",\"value\":\"Albany\"}]}}",
                         &st);
        assert_int_equal(st, 201);
        assert_jstr(j, "contact/id", "9"); /* after the fixture's 8 */
        assert_jstr(j, "contact/email", "new@x.com");
        assert_jstr(j, "contact/firstName", "N");
        assert_jstr(j, "fieldValues/0/value", "Albany");
        assert_jstr(j, "fieldValues/0/field", "2");
        assert_true(cJSON_IsFalse(t_item(j, "contact/email_empty")));
        cJSON_Delete(j);
        j = t_api("POST", "/contacts",
                  "{\"contact\":{\"email\":\"ANN@x.com\"}}", &st);
        assert_int_equal(st, 422);
        assert_jstr(j, "errors/0/code", "duplicate");
        assert_jstr(j, "errors/0/title",
                    "Email address already exists in the system");
        assert_jstr(j, "errors/0/source/pointer", "/data/attributes/email");
        cJSON_Delete(j);
        j = t_api("POST", "/contacts", "{\"contact\":{\"email\":\"no-at\"}}",
                  &st);
        assert_int_equal(st, 422);
        assert_jstr(j, "errors/0/code", "email_invalid");
        cJSON_Delete(j);
}

static void contact_sync_creates_then_updates(void **state)
{
        (void)state;
        int st;
        cJSON *j = t_api("POST", "/contact/sync",
                         "{\"contact\":{\"email\":\"s@x.com\",\"lastName\":"
                         "\"One\"}}",
                         &st);
        assert_int_equal(st, 201);
        char id[16];
        snprintf(id, sizeof(id), "%s", t_str(j, "contact/id"));
        cJSON_Delete(j);
        /* same email, other case: the same contact, updated (200) */
        j = t_api("POST", "/contact/sync",
                  "{\"contact\":{\"email\":\"S@x.com\",\"lastName\":\"Two\"}}",
                  &st);
        assert_int_equal(st, 200);
        assert_jstr(j, "contact/id", id);
        assert_jstr(j, "contact/lastName", "Two");
        assert_jstr(j, "contact/bounced_hard", "0"); /* the full shape */
        cJSON_Delete(j);
}

static void contact_put_updates_and_404(void **state)
{
        (void)state;
        int st;
        cJSON *j = t_api("GET", "/contacts/2", NULL, &st);
        char before[32];
        snprintf(before, sizeof(before), "%s", t_str(j, "contact/udate"));
        cJSON_Delete(j);
        t_clock_advance(120 * 1000);
        j = t_api("PUT", "/contacts/2",
                  "{\"contact\":{\"lastName\":\"Builder\",\"phone\":\"555\"}}",
                  &st);
        assert_int_equal(st, 200);
        assert_jstr(j, "contact/lastName", "Builder");
        assert_jstr(j, "contact/phone", "555");
        assert_string_not_equal(t_str(j, "contact/udate"), before);
        cJSON_Delete(j);
        /* taking another contact's email is a duplicate */
        j = t_api("PUT", "/contacts/2",
                  "{\"contact\":{\"email\":\"ann@x.com\"}}", &st);
        assert_int_equal(st, 422);
        assert_jstr(j, "errors/0/code", "duplicate");
        cJSON_Delete(j);
        j = t_api("PUT", "/contacts/77", "{\"contact\":{}}", &st);
        assert_int_equal(st, 404);
        assert_jstr(j, "message", "No Result found for Subscriber with id 77");
        cJSON_Delete(j);
        j = t_api("DELETE", "/contacts/77", NULL, &st);
        assert_int_equal(st, 404);
        cJSON_Delete(j);
        j = t_api("DELETE", "/contacts/5", NULL, &st);
        assert_int_equal(st, 200);
        cJSON_Delete(j);
        j = t_api("GET", "/contacts?email=dee%40x.com", NULL, &st);
        assert_jstr(j, "meta/total", "0");
        cJSON_Delete(j);
}

/* ---- list memberships ---------------------------------------------------- */

static void contact_lists_post_changes_status(void **state)
{
        (void)state;
        int st;
        cJSON *j = t_api("POST", "/contactLists",
                         "{\"contactList\":{\"list\":\"2\",\"contact\":\"1\","
                         "\"status\":\"2\"}}",
                         &st);
        assert_int_equal(st, 201);
        assert_jstr(j, "contacts/0/id", "1");
        assert_jstr(j, "contactList/list", "2");
        /* a number in this answer, a string on GET */
        assert_int_equal(
            (int)cJSON_GetNumberValue(t_item(j, "contactList/status")), 2);
        assert_true(t_is_iso(t_str(j, "contactList/sdate"), "-06:00"));
        cJSON_Delete(j);
        j = t_api("GET", "/contacts/1/contactLists", NULL, &st);
        assert_int_equal(st, 200);
        assert_jstr(j, "contactLists/1/list", "2");
        assert_jstr(j, "contactLists/1/status", "2");
        assert_jstr(j, "contactLists/0/status", "1");
        assert_true(t_is_wall(t_str(j, "contactLists/1/updated_timestamp")));
        cJSON_Delete(j);
        /* subscribe to a list the contact was not on: a new membership */
        cJSON_Delete(t_api("POST", "/contactLists",
                           "{\"contactList\":{\"list\":1,\"contact\":5,"
                           "\"status\":1}}",
                           &st));
        assert_int_equal(st, 201);
        j = t_api("GET", "/contacts/5/contactLists", NULL, &st);
        assert_jstr(j, "contactLists/0/status", "1");
        cJSON_Delete(j);
}

static void contact_lists_errors(void **state)
{
        (void)state;
        int st;
        /* a bad status and missing fields: a bare {} with 400 */
        cJSON *j = t_api("POST", "/contactLists",
                         "{\"contactList\":{\"list\":\"1\",\"contact\":\"1\","
                         "\"status\":\"7\"}}",
                         &st);
        assert_int_equal(st, 400);
        assert_int_equal(cJSON_GetArraySize(j), 0);
        cJSON_Delete(j);
        j = t_api("POST", "/contactLists", "{\"contactList\":{}}", &st);
        assert_int_equal(st, 400);
        cJSON_Delete(j);
        j = t_api("POST", "/contactLists",
                  "{\"contactList\":{\"list\":\"1\",\"contact\":\"404\","
                  "\"status\":\"1\"}}",
                  &st);
        assert_int_equal(st, 404);
        assert_jstr(j, "message", "No Result found for Subscriber with id 404");
        cJSON_Delete(j);
        j = t_api("POST", "/contactLists",
                  "{\"contactList\":{\"list\":\"9\",\"contact\":\"1\","
                  "\"status\":\"1\"}}",
                  &st);
        assert_int_equal(st, 404);
        cJSON_Delete(j);
}

static void contact_lists_statuses_0_to_3_and_91(void **state)
{
        (void)state;
        int st;
        cJSON *j = t_api("GET", "/contacts/3/contactLists", NULL, &st);
        assert_jstr(j, "contactLists/0/status", "0");
        assert_jstr(j, "contactLists/1/status", "3");
        cJSON_Delete(j);
        /* the rare 91 ("subscription removed") can be injected */
        t_ctl_ok("POST", "/sandbox/ac/t1/status",
                 "{\"contact\":\"3\",\"list\":\"1\",\"status\":91}");
        j = t_api("GET", "/contacts/3/contactLists", NULL, &st);
        assert_jstr(j, "contactLists/0/status", "91");
        cJSON_Delete(j);
        j = t_api("GET", "/lists", NULL, &st);
        assert_jstr(j, "meta/total", "2");
        assert_jstr(j, "lists/1/name", "Promo");
        cJSON_Delete(j);
}

/* ---- tags ---------------------------------------------------------------- */

static void tags_search_create_get(void **state)
{
        (void)state;
        int st;
        cJSON *j = t_api("GET", "/tags?search=SALESFORCE", NULL, &st);
        assert_int_equal(st, 200);
        assert_jstr(j, "meta/total", "1");
        assert_jstr(j, "tags/0/tag", "added-to-salesforce-contact");
        assert_jstr(j, "tags/0/tagType", "contact");
        assert_jstr(j, "tags/0/subscriber_count", "1");
        cJSON_Delete(j);
        j = t_api("GET", "/tags?filters%5Bsearch%5D%5Beq%5D=vi", NULL, &st);
        assert_jstr(j, "meta/total", "0");
        cJSON_Delete(j);
        j = t_api("GET", "/tags?filters%5Bsearch%5D%5Beq%5D=VIP", NULL, &st);
        assert_jstr(j, "meta/total", "1");
        cJSON_Delete(j);
        j = t_api("POST", "/tags",
                  "{\"tag\":{\"tag\":\"My Tag\",\"tagType\":\"contact\","
                  "\"description\":\"d\"}}",
                  &st);
        assert_int_equal(st, 201);
        assert_jstr(j, "tag/id", "3");
        assert_jstr(j, "tag/tag", "My Tag");
        assert_true(t_is_iso(t_str(j, "tag/cdate"), "-06:00"));
        cJSON_Delete(j);
        j = t_api("POST", "/tags", "{\"tag\":{\"tag\":\"my tag\"}}", &st);
        assert_int_equal(st, 422);
        assert_jstr(j, "errors/0/code", "duplicate");
        cJSON_Delete(j);
        j = t_api("GET", "/tags/3", NULL, &st);
        assert_jstr(j, "tag/description", "d");
        cJSON_Delete(j);
        j = t_api("GET", "/tags/30", NULL, &st);
        assert_int_equal(st, 404);
        assert_jstr(j, "message", "No Result found for Tag with id 30");
        cJSON_Delete(j);
}

static void contact_tags_add_list_delete(void **state)
{
        (void)state;
        int st;
        cJSON *j =
            t_api("POST", "/contactTags",
                  "{\"contactTag\":{\"contact\":\"2\",\"tag\":\"2\"}}", &st);
        assert_int_equal(st, 201);
        assert_jstr(j, "contactTag/contact", "2");
        assert_jstr(j, "contactTag/tag", "2");
        assert_jstr(j, "contacts/0/id", "2");
        char ct[16];
        snprintf(ct, sizeof(ct), "%s", t_str(j, "contactTag/id"));
        cJSON_Delete(j);
        /* tag ids only, never names */
        j = t_api("GET", "/contacts/2/contactTags", NULL, &st);
        assert_int_equal(cJSON_GetArraySize(t_item(j, "contactTags")), 1);
        assert_jstr(j, "contactTags/0/tag", "2");
        assert_null(t_item(j, "contactTags/0/name"));
        cJSON_Delete(j);
        char path[64];
        snprintf(path, sizeof(path), "/contactTags/%s", ct);
        j = t_api("DELETE", path, NULL, &st);
        assert_int_equal(st, 200);
        assert_int_equal(cJSON_GetArraySize(j), 0);
        cJSON_Delete(j);
        j = t_api("DELETE", path, NULL, &st);
        assert_int_equal(st, 404);
        char want[96];
        snprintf(want, sizeof(want),
                 "No Result found for SubscriberTag with id %s", ct);
        assert_jstr(j, "message", want);
        cJSON_Delete(j);
        j = t_api("GET", "/contacts/2/contactTags", NULL, &st);
        assert_int_equal(cJSON_GetArraySize(t_item(j, "contactTags")), 0);
        cJSON_Delete(j);
}

static void contact_tags_errors_in_their_own_shape(void **state)
{
        (void)state;
        int st;
        cJSON *j = t_api("POST", "/contactTags",
                         "{\"contactTag\":{\"tag\":\"1\"}}", &st);
        assert_int_equal(st, 422);
        assert_int_equal(
            (int)cJSON_GetNumberValue(t_item(j, "errors/0/status")), 422);
        assert_jstr(j, "errors/0/title", "Missing attribute");
        assert_jstr(j, "errors/0/source/pointer", "/data/attributes/contact");
        cJSON_Delete(j);
        j = t_api("POST", "/contactTags",
                  "{\"contactTag\":{\"contact\":\"99\",\"tag\":\"1\"}}", &st);
        assert_int_equal(st, 404);
        assert_jstr(j, "errors/0/detail", "Contact not found");
        cJSON_Delete(j);
}

static void contact_tags_filters(void **state)
{
        (void)state;
        int st;
        cJSON *j = t_api("GET", "/contactTags", NULL, &st);
        assert_jstr(j, "meta/total", "2");
        cJSON_Delete(j);
        j = t_api("GET", "/contactTags?filters%5Bsubscriberid%5D=8", NULL, &st);
        assert_jstr(j, "meta/total", "1");
        assert_jstr(j, "contactTags/0/contact", "8");
        cJSON_Delete(j);
        j = t_api("GET", "/contactTags?filters%5Btagid%5D=1", NULL, &st);
        assert_jstr(j, "meta/total", "1");
        assert_jstr(j, "contactTags/0/contact", "1");
        cJSON_Delete(j);
        /* filters[contact] is not a column: ignored, everything comes back */
        j = t_api("GET", "/contactTags?filters%5Bcontact%5D=8", NULL, &st);
        assert_jstr(j, "meta/total", "2");
        cJSON_Delete(j);
}

/* ---- bounces ------------------------------------------------------------- */

static void hard_bounce_marks_bounced_at_once(void **state)
{
        (void)state;
        int st;
        cJSON *r = t_ctl("POST", "/sandbox/ac/t1/bounce",
                         "{\"email\":\"ann@x.com\",\"type\":\"hard\","
                         "\"campaign\":\"11\",\"message\":\"12\"}",
                         &st);
        assert_int_equal(st, 200);
        assert_true(cJSON_IsTrue(t_item(r, "newly_bounced")));
        cJSON_Delete(r);
        cJSON *j = t_api("GET", "/contacts/1", NULL, &st);
        assert_jstr(j, "contact/bounced_hard", "1");
        assert_int_equal(strlen(t_str(j, "contact/bounced_date")), 10);
        cJSON_Delete(j);
        j = t_api("GET", "/contacts/1/contactLists", NULL, &st);
        assert_jstr(j, "contactLists/0/status", "3");
        assert_jstr(j, "contactLists/1/status", "3");
        cJSON_Delete(j);
        j = t_api("GET", "/contacts/1/bounceLogs", NULL, &st);
        assert_int_equal(st, 200);
        assert_jstr(j, "bounceLogs/0/campaignid", "11");
        assert_jstr(j, "bounceLogs/0/messageid", "12");
        assert_jstr(j, "bounceLogs/0/subscriberid", "1");
        assert_jstr(j, "bounceLogs/0/email", "ann@x.com");
        assert_true(t_is_iso(t_str(j, "bounceLogs/0/tstamp"), "-06:00"));
        cJSON_Delete(j);
}

static void soft_bounces_need_three_campaigns_in_a_row(void **state)
{
        (void)state;
        int st;
        const char *b1 = "{\"contact\":\"1\",\"type\":\"soft\",\"campaign\":1}";
        const char *b2 = "{\"contact\":\"1\",\"type\":\"soft\",\"campaign\":2}";
        const char *b3 = "{\"contact\":\"1\",\"type\":\"soft\",\"campaign\":3}";
        t_ctl_ok("POST", "/sandbox/ac/t1/bounce", b1);
        t_ctl_ok("POST", "/sandbox/ac/t1/bounce", b1); /* same campaign */
        t_ctl_ok("POST", "/sandbox/ac/t1/bounce", b2);
        cJSON *j = t_api("GET", "/contacts/1/contactLists", NULL, &st);
        assert_jstr(j, "contactLists/0/status", "1");
        cJSON_Delete(j);
        /* a delivered campaign breaks the streak */
        t_ctl_ok("POST", "/sandbox/ac/t1/delivered", "{\"contact\":\"1\"}");
        t_ctl_ok("POST", "/sandbox/ac/t1/bounce", b3);
        j = t_api("GET", "/contacts/1/contactLists", NULL, &st);
        assert_jstr(j, "contactLists/0/status", "1");
        cJSON_Delete(j);
        t_ctl_ok("POST", "/sandbox/ac/t1/bounce", b1);
        cJSON *r = t_ctl("POST", "/sandbox/ac/t1/bounce", b2, &st);
        assert_true(cJSON_IsTrue(t_item(r, "newly_bounced")));
        cJSON_Delete(r);
        j = t_api("GET", "/contacts/1", NULL, &st);
        assert_jstr(j, "contact/bounced_hard", "0");
        assert_jstr(j, "contact/bounced_soft", "6");
        cJSON_Delete(j);
        j = t_api("GET", "/contacts/1/contactLists", NULL, &st);
        assert_jstr(j, "contactLists/0/status", "3");
        cJSON_Delete(j);
        j = t_api("GET", "/contacts/1/bounceLogs", NULL, &st);
        assert_int_equal(cJSON_GetArraySize(t_item(j, "bounceLogs")), 6);
        cJSON_Delete(j);
}

/* ---- bulk import --------------------------------------------------------- */

static char *import_body(int n, const char *extra)
{
        size_t cap = (size_t)n * 64 + 256 + strlen(extra);
        char *b    = malloc(cap);
        size_t len = (size_t)snprintf(b, cap, "{\"contacts\":[");
        for (int i = 0; i < n; i++)
                len += (size_t)snprintf(b + len, cap - len,
                                        "%s{\"email\":\"i%d@x.com\"}",
                                        i ? "," : "", i);
        snprintf(b + len, cap - len, "]%s}", extra);
        return b;
}

static void import_limits_answer_400_in_their_shape(void **state)
{
        (void)state;
        int st;
        char *b  = import_body(251, "");
        cJSON *j = t_api("POST", "/import/bulk_import", b, &st);
        free(b);
        assert_int_equal(st, 400);
        assert_int_equal((int)cJSON_GetNumberValue(t_item(j, "success")), 0);
        assert_true(cJSON_IsString(t_item(j, "failureReasons/0")));
        cJSON_Delete(j);
        /* 400,000 bytes or more */
        b         = import_body(2, "");
        char *big = malloc(400100);
        snprintf(big, 400100, "%.*s,\"pad\":\"%0*d\"}", (int)strlen(b) - 1, b,
                 400000, 0);
        free(b);
        j = t_api("POST", "/import/bulk_import", big, &st);
        free(big);
        assert_int_equal(st, 400);
        cJSON_Delete(j);
        j = t_api("POST", "/import/bulk_import",
                  "{\"contacts\":[{\"email\":\"ok@x.com\"},{\"email\":\"bad\"}"
                  "]}",
                  &st);
        assert_int_equal(st, 400);
        assert_int_equal(
            (int)cJSON_GetNumberValue(t_item(j, "failureReasons/0/contact")),
            1);
        assert_non_null(t_str(j, "failureReasons/0/failureReason"));
        cJSON_Delete(j);
}

static void import_single_contact_rate_is_20_per_minute(void **state)
{
        (void)state;
        int st;
        for (int i = 0; i < 20; i++) {
                cJSON_Delete(t_api("POST", "/import/bulk_import",
                                   "{\"contacts\":[{\"email\":\"r@x.com\"}]}",
                                   &st));
                assert_int_equal(st, 200);
        }
        cJSON *j = t_api("POST", "/import/bulk_import",
                         "{\"contacts\":[{\"email\":\"r@x.com\"}]}", &st);
        assert_int_equal(st, 400); /* not 429 */
        assert_jstr(j, "message", "Rate limit exceeded.");
        assert_true(cJSON_IsString(t_item(j, "failureReasons/0")));
        cJSON_Delete(j);
        /* multi-contact imports have their own budget */
        char *b = import_body(2, "");
        cJSON_Delete(t_api("POST", "/import/bulk_import", b, &st));
        free(b);
        assert_int_equal(st, 200);
        t_clock_advance(61 * 1000);
        cJSON_Delete(t_api("POST", "/import/bulk_import",
                           "{\"contacts\":[{\"email\":\"r@x.com\"}]}", &st));
        assert_int_equal(st, 200);
}

static void import_applies_later_without_resubscribing(void **state)
{
        (void)state;
        int st;
        cJSON *j = t_api(
            "POST", "/import/bulk_import",
            "{\"contacts\":[{\"email\":\"imp@x.com\",\"first_name\":\"Imp\","
            "\"tags\":[\"brand-new\"],\"subscribe\":[{\"listid\":1}]},"
            "{\"email\":\"bob@x.com\",\"subscribe\":[{\"listid\":1}]},"
            "{\"email\":\"ann@x.com\",\"unsubscribe\":[{\"listid\":2}]}]}",
            &st);
        assert_int_equal(st, 200);
        assert_int_equal((int)cJSON_GetNumberValue(t_item(j, "Success")), 1);
        assert_int_equal(
            (int)cJSON_GetNumberValue(t_item(j, "queued_contacts")), 3);
        assert_jstr(j, "message", "Contact import queued");
        char q[128];
        snprintf(q, sizeof(q), "/import/info?batchId=%s", t_str(j, "batchId"));
        assert_int_equal(strlen(t_str(j, "batchId")), 36);
        cJSON_Delete(j);
        /* not applied yet: status false, the contact does not exist */
        j = t_api("GET", q, NULL, &st);
        assert_int_equal(st, 200);
        assert_true(cJSON_IsFalse(t_item(j, "status")));
        cJSON_Delete(j);
        j = t_api("GET", "/contacts?email=imp%40x.com", NULL, &st);
        assert_jstr(j, "meta/total", "0");
        cJSON_Delete(j);
        j = t_api("GET", "/import/bulk_import", NULL, &st);
        assert_jstr(j, "outstanding/0/contacts", "3");
        cJSON_Delete(j);

        t_clock_advance(1500);
        j = t_api("GET", q, NULL, &st);
        assert_jstr(j, "status", "completed");
        assert_int_equal(cJSON_GetArraySize(t_item(j, "success")), 3);
        cJSON_Delete(j);
        j = t_api("GET", "/contacts?email=imp%40x.com", NULL, &st);
        assert_jstr(j, "contacts/0/firstName", "Imp");
        char path[64];
        snprintf(path, sizeof(path), "/contacts/%s/contactLists",
                 t_str(j, "contacts/0/id"));
        cJSON_Delete(j);
        j = t_api("GET", path, NULL, &st);
        assert_jstr(j, "contactLists/0/status", "1");
        cJSON_Delete(j);
        j = t_api("GET", "/tags?search=brand-new", NULL, &st);
        assert_jstr(j, "meta/total", "1"); /* created by the import */
        cJSON_Delete(j);
        /* bob had unsubscribed from list 1: the import leaves him so */
        j = t_api("GET", "/contacts/2/contactLists", NULL, &st);
        assert_jstr(j, "contactLists/0/status", "2");
        cJSON_Delete(j);
        j = t_api("GET", "/contacts/1/contactLists", NULL, &st);
        assert_jstr(j, "contactLists/1/status", "2");
        cJSON_Delete(j);
        j = t_api("GET", "/import/bulk_import", NULL, &st);
        assert_jstr(j, "recentlyCompleted/0/batches", "1");
        cJSON_Delete(j);
}

static void import_fails_bounced_and_excluded_addresses(void **state)
{
        (void)state;
        int st;
        cJSON_Delete(t_ctl("POST", "/sandbox/fixture",
                           "{\"tenants\":{\"t1\":{\"ac\":{\"api_token\":"
                           "\"tok\",\"rate_per_s\":0,\"exclusions\":["
                           "\"No@x.com\"],\"import\":{\"delay_ms\":0},"
                           "\"contacts\":[{\"email\":\"hb@x.com\","
                           "\"bounced_hard\":1}]}}}}",
                           &st));
        assert_int_equal(st, 200);
        cJSON *j = t_api("POST", "/import/bulk_import",
                         "{\"contacts\":[{\"email\":\"hb@x.com\"},"
                         "{\"email\":\"no@x.com\"},{\"email\":"
                         "\"yes@x.com\"}]}",
                         &st);
        assert_int_equal(st, 200); /* the refusals show only at status time */
        char q[128];
        snprintf(q, sizeof(q), "/import/info?batchId=%s", t_str(j, "batchId"));
        cJSON_Delete(j);
        j = t_api("GET", q, NULL, &st);
        assert_jstr(j, "status", "completed"); /* delay_ms 0 */
        assert_int_equal(cJSON_GetArraySize(t_item(j, "success")), 1);
        assert_jstr(j, "failure/0", "hb@x.com");
        assert_jstr(j, "failure/1", "no@x.com");
        cJSON_Delete(j);
}

static void import_info_needs_batch_id(void **state)
{
        (void)state;
        int st;
        cJSON *j = t_api("GET", "/import/info", NULL, &st);
        assert_int_equal(st, 400);
        assert_jstr(j, "message", "'batchId' is a required field.");
        assert_int_equal((int)cJSON_GetNumberValue(t_item(j, "success")), 0);
        cJSON_Delete(j);
        j = t_api("GET", "/import/info?batchId=nope", NULL, &st);
        assert_int_equal(st, 404);
        cJSON_Delete(j);
}

/* ---- faults from the core apply to the AC classes ------------------------ */

static void fault_rule_on_ac_contacts(void **state)
{
        (void)state;
        int st;
        cJSON_Delete(t_ctl("POST", "/sandbox/faults",
                           "{\"endpoint\":\"ac.contacts\",\"kind\":"
                           "\"json503\",\"count\":1}",
                           &st));
        assert_int_equal(st, 201);
        cJSON_Delete(t_api("GET", "/tags", NULL, &st));
        assert_int_equal(st, 200); /* another class: untouched */
        cJSON_Delete(t_api("GET", "/contacts", NULL, &st));
        assert_int_equal(st, 503);
        cJSON_Delete(t_api("GET", "/contacts", NULL, &st));
        assert_int_equal(st, 200);
}

/* ---- state dump ---------------------------------------------------------- */

static void state_dump_lists_statuses_and_tag_names(void **state)
{
        (void)state;
        int st;
        cJSON *j = t_ctl("GET", "/sandbox/state?tenant=t1", NULL, &st);
        assert_int_equal(st, 200);
        assert_jstr(j, "ac/timezone", "-06:00");
        assert_jstr(j, "ac/contacts/0/email", "ann@x.com");
        assert_int_equal(
            (int)cJSON_GetNumberValue(t_item(j, "ac/contacts/0/lists/2")), 1);
        assert_jstr(j, "ac/contacts/0/tags/0", "added-to-salesforce-contact");
        assert_int_equal(
            (int)cJSON_GetNumberValue(t_item(j, "ac/contacts/2/lists/2")), 3);
        cJSON_Delete(j);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(auth_missing_or_wrong_token_is_403,
                                            setup, t_stop),
            cmocka_unit_test_setup_teardown(rate_limit_429_with_retry_after,
                                            setup_rate, t_stop),
            cmocka_unit_test_setup_teardown(rate_limit_defaults_to_5_per_second,
                                            setup_default_rate, t_stop),
            cmocka_unit_test_setup_teardown(rate_limit_is_shared_by_every_key,
                                            setup_rate, t_stop),
            cmocka_unit_test_setup_teardown(rate_limit_503_mode, setup_503,
                                            t_stop),
            cmocka_unit_test_setup_teardown(contacts_by_email_case_insensitive,
                                            setup, t_stop),
            cmocka_unit_test_setup_teardown(
                contacts_paging_id_greater_and_orders, setup, t_stop),
            cmocka_unit_test_setup_teardown(
                contacts_filter_by_list_status_and_tag, setup, t_stop),
            cmocka_unit_test_setup_teardown(contact_get_shape_and_404, setup,
                                            t_stop),
            cmocka_unit_test_setup_teardown(
                contact_create_201_duplicate_and_invalid_422, setup, t_stop),
            cmocka_unit_test_setup_teardown(contact_sync_creates_then_updates,
                                            setup, t_stop),
            cmocka_unit_test_setup_teardown(contact_put_updates_and_404, setup,
                                            t_stop),
            cmocka_unit_test_setup_teardown(contact_lists_post_changes_status,
                                            setup, t_stop),
            cmocka_unit_test_setup_teardown(contact_lists_errors, setup,
                                            t_stop),
            cmocka_unit_test_setup_teardown(
                contact_lists_statuses_0_to_3_and_91, setup, t_stop),
            cmocka_unit_test_setup_teardown(tags_search_create_get, setup,
                                            t_stop),
            cmocka_unit_test_setup_teardown(contact_tags_add_list_delete, setup,
                                            t_stop),
            cmocka_unit_test_setup_teardown(
                contact_tags_errors_in_their_own_shape, setup, t_stop),
            cmocka_unit_test_setup_teardown(contact_tags_filters, setup,
                                            t_stop),
            cmocka_unit_test_setup_teardown(hard_bounce_marks_bounced_at_once,
                                            setup, t_stop),
            cmocka_unit_test_setup_teardown(
                soft_bounces_need_three_campaigns_in_a_row, setup, t_stop),
            cmocka_unit_test_setup_teardown(
                import_limits_answer_400_in_their_shape, setup, t_stop),
            cmocka_unit_test_setup_teardown(
                import_single_contact_rate_is_20_per_minute, setup, t_stop),
            cmocka_unit_test_setup_teardown(
                import_applies_later_without_resubscribing, setup, t_stop),
            cmocka_unit_test_setup_teardown(
                import_fails_bounced_and_excluded_addresses, setup, t_stop),
            cmocka_unit_test_setup_teardown(import_info_needs_batch_id, setup,
                                            t_stop),
            cmocka_unit_test_setup_teardown(fault_rule_on_ac_contacts, setup,
                                            t_stop),
            cmocka_unit_test_setup_teardown(
                state_dump_lists_statuses_and_tag_names, setup, t_stop),
        };
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
