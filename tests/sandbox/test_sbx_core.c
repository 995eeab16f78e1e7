/*
 * test_sbx_core.c - the sandbox core through real HTTP: routing and error
 * shapes, tenants, the body cap, fixtures, reset, the clock, seeded
 * faults of every kind, the request log, stats, wait/notify and SIGTERM.
 */
#include "osy_test.h"
#include "osy_test_sandbox.h"

#include "optsync/http.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#define FIXTURE "{\"tenants\":{\"t1\":{},\"t2\":{}}}"

static struct osy_test_sandbox sb;

static int start_with(const char *fixture, const char *const *args)
{
        if (osy_test_sandbox_start(&sb, fixture, args)) {
                fail_msg("sandbox did not start");
                return -1;
        }
        return 0;
}

static int setup(void **state)
{
        (void)state;
        return start_with(FIXTURE, NULL);
}

static int teardown(void **state)
{
        (void)state;
        osy_test_sandbox_stop(&sb);
        return 0;
}

/* One request with full control: headers, timeout, the whole response. */
static osy_err_t do_req(osy_http_method_t m, const char *path,
                        const char *const *headers, const char *body,
                        long timeout_ms, struct osy_http_response *r)
{
        struct osy_http_opts o     = {.timeout_ms = timeout_ms,
                                      .user_agent = "sbx-core-test/1"};
        struct osy_http_request rq = {0};
        osy_http_client_t *c       = NULL;
        char errstr[OSY_ERRSTR_SIZE], url[2048];
        osy_err_t err;

        snprintf(url, sizeof(url), "%s%s", sb.base_url, path);
        rq.method   = m;
        rq.url      = url;
        rq.headers  = headers;
        rq.body     = body;
        rq.body_len = body ? strlen(body) : 0;
        assert_int_equal(osy_http_client_new(&c, &o, errstr, sizeof(errstr)),
                         OSY_OK);
        err = osy_http_do(c, &rq, r, errstr, sizeof(errstr));
        osy_http_client_destroy(c);
        return err;
}

/* Call and parse the JSON answer; asserts the status. */
static cJSON *call_json(const char *method, const char *path, const char *body,
                        int want_status)
{
        char *text = NULL;
        int status =
            osy_test_sandbox_call(&sb, method, path, NULL, body, &text);
        cJSON *json;

        if (status != want_status)
                fprintf(stderr, "%s %s -> %d: %s\n", method, path, status,
                        text ? text : "(none)");
        assert_int_equal(status, want_status);
        json = cJSON_Parse(text);
        free(text);
        assert_non_null(json);
        return json;
}

static int call_status(const char *method, const char *path, const char *body)
{
        return osy_test_sandbox_call(&sb, method, path, NULL, body, NULL);
}

static const char *jstr(const cJSON *o, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        assert_true(cJSON_IsNumber(v));
        return v->valuedouble;
}

static void add_fault(const char *rule)
{
        cJSON *r = call_json("POST", "/sandbox/faults", rule, 201);

        cJSON_Delete(r);
}

static int ping_status(const char *path)
{
        return call_status("GET", path ? path : "/sandbox/ping", NULL);
}

/* The log entries (array owned by *holder). */
static cJSON *requests(const char *query, cJSON **holder)
{
        char path[256];

        snprintf(path, sizeof(path), "/sandbox/requests%s", query ? query : "");
        *holder = call_json("GET", path, NULL, 200);
        return cJSON_GetObjectItemCaseSensitive(*holder, "requests");
}

/* ---- routing and error shapes -------------------------------------------- */

static void test_ping_answers_ok(void **state)
{
        cJSON *r = call_json("GET", "/sandbox/ping", NULL, 200);

        (void)state;
        assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok")));
        cJSON_Delete(r);
}

static void test_unknown_route_is_404_json(void **state)
{
        cJSON *r = call_json("GET", "/nope/x", NULL, 404);

        (void)state;
        assert_string_equal(jstr(r, "error"), "not_found");
        assert_non_null(strstr(jstr(r, "message"), "/nope/x"));
        cJSON_Delete(r);
}

static void test_unknown_control_is_404_json(void **state)
{
        cJSON *r = call_json("GET", "/sandbox/frobnicate", NULL, 404);

        (void)state;
        assert_non_null(strstr(jstr(r, "message"), "/sandbox/frobnicate"));
        cJSON_Delete(r);
}

static void test_control_wrong_method_is_405_with_allow(void **state)
{
        struct osy_http_response r = {0};
        const char *allow;

        (void)state;
        assert_int_equal(
            do_req(OSY_HTTP_PUT, "/sandbox/clock", NULL, "{}", 5000, &r),
            OSY_OK);
        assert_int_equal(r.status, 405);
        allow = osy_http_response_header(&r, "Allow");
        assert_non_null(allow);
        assert_non_null(strstr(allow, "GET"));
        assert_non_null(strstr(allow, "POST"));
        osy_http_response_free(&r);
}

static void test_unknown_ac_tenant_is_404_object(void **state)
{
        cJSON *r = call_json("GET", "/ac/zz/api/3/contacts", NULL, 404);

        (void)state;
        assert_true(cJSON_IsObject(r));
        assert_non_null(strstr(jstr(r, "message"), "zz"));
        cJSON_Delete(r);
}

static void test_unknown_sf_tenant_is_404_sf_array(void **state)
{
        cJSON *r =
            call_json("GET", "/sf/zz/services/data/v59.0/limits", NULL, 404);

        (void)state;
        assert_true(cJSON_IsArray(r));
        assert_string_equal(jstr(cJSON_GetArrayItem(r, 0), "errorCode"),
                            "NOT_FOUND");
        cJSON_Delete(r);
}

static void test_bad_tenant_name_is_404(void **state)
{
        (void)state;
        assert_int_equal(call_status("GET", "/ac/b%24d/api/3/contacts", NULL),
                         404);
        assert_int_equal(call_status("GET", "/ac//api/3/contacts", NULL), 404);
}

static void test_unknown_tenant_control_is_404(void **state)
{
        (void)state;
        assert_int_equal(call_status("POST", "/sandbox/ac/zz/anything", "{}"),
                         404);
}

/* The newest log entry (owned by *holder). */
static cJSON *last_request(cJSON **holder)
{
        cJSON *list = requests(NULL, holder);
        int n       = cJSON_GetArraySize(list);

        assert_true(n > 0);
        return cJSON_GetArrayItem(list, n - 1);
}

static void test_ac_route_reaches_ac_module(void **state)
{
        cJSON *h, *e;

        (void)state;
        call_status("GET", "/ac/t1/api/3/contacts?email=a%40b.c", NULL);
        e = last_request(&h);
        assert_string_equal(jstr(e, "tenant"), "t1");
        /* The module, not the core, answered: "ac" or its own class. */
        assert_int_equal(strncmp(jstr(e, "endpoint"), "ac", 2), 0);
        assert_string_equal(jstr(e, "url"),
                            "/ac/t1/api/3/contacts?email=a%40b.c");
        cJSON_Delete(h);
}

static void test_sf_routes_reach_sf_and_cometd(void **state)
{
        cJSON *h, *list;

        (void)state;
        call_status("GET", "/sf/t2/services/data/v59.0/limits", NULL);
        call_status("POST", "/sf/t2/cometd/59.0", "[]");
        list = requests(NULL, &h);
        assert_int_equal(cJSON_GetArraySize(list), 2);
        assert_int_equal(
            strncmp(jstr(cJSON_GetArrayItem(list, 0), "endpoint"), "sf", 2), 0);
        assert_string_equal(jstr(cJSON_GetArrayItem(list, 1), "endpoint"),
                            "cometd");
        assert_string_equal(jstr(cJSON_GetArrayItem(list, 1), "tenant"), "t2");
        cJSON_Delete(h);
}

/* ---- the body cap -------------------------------------------------------- */

static void test_body_over_cap_is_413(void **state)
{
        const char *args[] = {"--max-body", "1024", NULL};
        char *body         = malloc(2001);
        cJSON *r;

        (void)state;
        osy_test_sandbox_stop(&sb);
        start_with(FIXTURE, args);
        memset(body, 'x', 2000);
        body[2000] = '\0';
        r          = call_json("POST", "/ac/t1/api/3/contacts", body, 413);
        assert_string_equal(jstr(r, "error"), "too_large");
        cJSON_Delete(r);
        /* The connection stays usable: the next request works. */
        assert_int_equal(ping_status(NULL), 200);
        free(body);
}

static void test_body_under_cap_reaches_module(void **state)
{
        const char *args[] = {"--max-body", "1024", NULL};
        char body[1001];
        cJSON *h, *e;

        (void)state;
        osy_test_sandbox_stop(&sb);
        start_with(FIXTURE, args);
        memset(body, 'y', 1000);
        body[1000] = '\0';
        assert_int_not_equal(call_status("POST", "/ac/t1/api/3/contacts", body),
                             413);
        e = last_request(&h);
        assert_string_equal(jstr(e, "body"), body);
        cJSON_Delete(h);
}

static void test_default_cap_refuses_9_mib(void **state)
{
        size_t n   = (size_t)9 * 1024 * 1024;
        char *body = malloc(n + 1);
        cJSON *r;

        (void)state;
        memset(body, 'z', n);
        body[n] = '\0';
        r = call_json("POST", "/sf/t1/services/data/v59.0/composite", body,
                      413);
        assert_non_null(strstr(jstr(r, "message"), "8388608"));
        cJSON_Delete(r);
        free(body);
}

/* ---- fixtures, state, reset ---------------------------------------------- */

static void test_fixture_bad_json_is_400(void **state)
{
        cJSON *r = call_json("POST", "/sandbox/fixture", "{\"tenants\":", 400);

        (void)state;
        assert_non_null(strstr(jstr(r, "message"), "not valid JSON"));
        cJSON_Delete(r);
}

static void test_fixture_bad_shape_is_400_with_reason(void **state)
{
        cJSON *r;

        (void)state;
        r = call_json("POST", "/sandbox/fixture", "{\"tenants\":{\"t9\":5}}",
                      400);
        assert_non_null(strstr(jstr(r, "message"), "t9"));
        cJSON_Delete(r);
        r = call_json("POST", "/sandbox/fixture", "{\"tenant\":{}}", 400);
        assert_non_null(strstr(jstr(r, "message"), "unknown top-level key"));
        cJSON_Delete(r);
        r = call_json("POST", "/sandbox/fixture",
                      "{\"tenants\":{\"t9\":{\"xx\":{}}}}", 400);
        assert_non_null(strstr(jstr(r, "message"), "xx"));
        cJSON_Delete(r);
}

static void test_fixture_replaces_tenants(void **state)
{
        cJSON *r, *tenants;

        (void)state;
        r = call_json("POST", "/sandbox/fixture",
                      "{\"tenants\":{\"t3\":{\"ac\":{},\"sf\":{}}}}", 200);
        cJSON_Delete(r);
        assert_int_equal(call_status("GET", "/sandbox/state?tenant=t1", NULL),
                         404);
        r       = call_json("GET", "/sandbox/state", NULL, 200);
        tenants = cJSON_GetObjectItemCaseSensitive(r, "tenants");
        assert_int_equal(cJSON_GetArraySize(tenants), 1);
        assert_non_null(cJSON_GetObjectItemCaseSensitive(tenants, "t3"));
        cJSON_Delete(r);
}

static void test_bad_fixture_keeps_previous_state(void **state)
{
        (void)state;
        assert_int_equal(
            call_status("POST", "/sandbox/fixture", "{\"tenants\":[1]}"), 400);
        assert_int_equal(call_status("GET", "/sandbox/state?tenant=t1", NULL),
                         200);
}

static void test_state_of_one_tenant(void **state)
{
        cJSON *r = call_json("GET", "/sandbox/state?tenant=t2", NULL, 200);

        (void)state;
        assert_string_equal(jstr(r, "tenant"), "t2");
        assert_non_null(cJSON_GetObjectItemCaseSensitive(r, "ac"));
        assert_non_null(cJSON_GetObjectItemCaseSensitive(r, "sf"));
        cJSON_Delete(r);
        assert_int_equal(call_status("GET", "/sandbox/state?tenant=nope", NULL),
                         404);
}

static void test_fixture_get_returns_loaded(void **state)
{
        cJSON *r = call_json("GET", "/sandbox/fixture", NULL, 200);

        (void)state;
        assert_non_null(cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(r, "tenants"), "t2"));
        cJSON_Delete(r);
}

static void test_fixture_faults_apply(void **state)
{
        (void)state;
        osy_test_sandbox_stop(&sb);
        start_with("{\"tenants\":{\"t1\":{}},\"faults\":[{\"endpoint\":"
                   "\"sandbox.ping\",\"kind\":\"status\",\"status\":502}]}",
                   NULL);
        assert_int_equal(ping_status(NULL), 502);
}

static void test_start_fails_on_bad_fixture(void **state)
{
        struct osy_test_sandbox bad;

        (void)state;
        assert_int_equal(osy_test_sandbox_start(&bad, "{not json", NULL), -1);
        assert_int_equal(bad.pid, 0);
}

static void test_cli_rejects_bad_option(void **state)
{
        struct osy_test_sandbox bad;
        const char *args[] = {"--port", "99999", NULL};

        (void)state;
        assert_int_equal(osy_test_sandbox_start(&bad, NULL, args), -1);
}

static void test_reset_clears_faults_log_clock(void **state)
{
        cJSON *r, *h;

        (void)state;
        add_fault("{\"endpoint\":\"sandbox.ping\",\"kind\":\"status\"}");
        assert_int_equal(ping_status(NULL), 500);
        cJSON_Delete(call_json("POST", "/sandbox/clock",
                               "{\"advance_ms\":3600000}", 200));
        cJSON_Delete(call_json("POST", "/sandbox/reset", NULL, 200));
        assert_int_equal(ping_status(NULL), 200);
        r = call_json("GET", "/sandbox/clock", NULL, 200);
        assert_true(jnum(r, "offset_ms") == 0);
        cJSON_Delete(r);
        /* Only the ping after the reset is logged. */
        assert_int_equal(cJSON_GetArraySize(requests(NULL, &h)), 1);
        cJSON_Delete(h);
        /* The fixture's tenants are back. */
        assert_int_equal(call_status("GET", "/sandbox/state?tenant=t1", NULL),
                         200);
}

static void test_reset_empty_drops_tenants(void **state)
{
        (void)state;
        cJSON_Delete(
            call_json("POST", "/sandbox/reset", "{\"empty\":true}", 200));
        assert_int_equal(call_status("GET", "/sandbox/state?tenant=t1", NULL),
                         404);
}

static void test_reset_bad_body_is_400(void **state)
{
        (void)state;
        assert_int_equal(call_status("POST", "/sandbox/reset", "[oops"), 400);
}

/* ---- clock, seed, options ------------------------------------------------ */

static void test_clock_advance_shows(void **state)
{
        cJSON *a = call_json("GET", "/sandbox/clock", NULL, 200), *b;

        (void)state;
        b = call_json("POST", "/sandbox/clock", "{\"advance_ms\":86400000}",
                      200);
        assert_true(jnum(b, "offset_ms") == 86400000);
        assert_true(jnum(b, "now_ms") >= jnum(a, "now_ms") + 86400000);
        assert_true(jnum(b, "now_ms") < jnum(a, "now_ms") + 86400000 + 5000);
        cJSON_Delete(b);
        /* Advances add up. */
        b = call_json("POST", "/sandbox/clock", "{\"advance_ms\":1000}", 200);
        assert_true(jnum(b, "offset_ms") == 86401000);
        cJSON_Delete(b);
        cJSON_Delete(a);
}

static void test_clock_set_now(void **state)
{
        /* 2030-01-01T00:00:00Z */
        cJSON *r = call_json("POST", "/sandbox/clock",
                             "{\"now_ms\":1893456000000}", 200);

        (void)state;
        assert_true(jnum(r, "now_ms") >= 1893456000000.0);
        assert_true(jnum(r, "now_ms") < 1893456000000.0 + 2000);
        assert_int_equal(strncmp(jstr(r, "now"), "2030-01-01T00:00:0", 18), 0);
        cJSON_Delete(r);
}

static void test_clock_bad_body_is_400(void **state)
{
        cJSON *r;

        (void)state;
        r = call_json("POST", "/sandbox/clock", "{\"advance_ms\":\"x\"}", 400);
        assert_non_null(strstr(jstr(r, "message"), "advance_ms"));
        cJSON_Delete(r);
        assert_int_equal(call_status("POST", "/sandbox/clock", "{}"), 400);
        assert_int_equal(
            call_status("POST", "/sandbox/clock", "{\"advance_ms\":-5}"), 400);
        assert_int_equal(call_status("POST", "/sandbox/clock", NULL), 400);
}

static void test_seed_set_and_get(void **state)
{
        cJSON *r;

        (void)state;
        cJSON_Delete(call_json("POST", "/sandbox/seed", "{\"seed\":42}", 200));
        r = call_json("GET", "/sandbox/seed", NULL, 200);
        assert_true(jnum(r, "seed") == 42);
        cJSON_Delete(r);
        assert_int_equal(call_status("POST", "/sandbox/seed", "{\"seed\":-1}"),
                         400);
}

static void test_set_options_are_visible(void **state)
{
        const char *args[] = {"--set", "ac.rate=5", "--set", "x=1",
                              "--set", "x=2",       NULL};
        cJSON *r, *o;

        (void)state;
        osy_test_sandbox_stop(&sb);
        start_with(FIXTURE, args);
        r = call_json("GET", "/sandbox/info", NULL, 200);
        o = cJSON_GetObjectItemCaseSensitive(r, "options");
        assert_string_equal(jstr(o, "ac.rate"), "5");
        assert_string_equal(jstr(o, "x"), "2"); /* the last one wins */
        cJSON_Delete(r);
}

/* ---- faults -------------------------------------------------------------- */

static void test_fault_status_500_json(void **state)
{
        struct osy_http_response r = {0};
        cJSON *b;

        (void)state;
        add_fault("{\"endpoint\":\"sandbox.*\",\"kind\":\"status\","
                  "\"status\":500}");
        assert_int_equal(
            do_req(OSY_HTTP_GET, "/sandbox/ping", NULL, NULL, 5000, &r),
            OSY_OK);
        assert_int_equal(r.status, 500);
        assert_non_null(
            strstr(osy_http_response_header(&r, "Content-Type"), "json"));
        b = cJSON_Parse(r.body);
        assert_non_null(jstr(b, "message"));
        cJSON_Delete(b);
        osy_http_response_free(&r);
}

static void test_fault_status_custom_body(void **state)
{
        char *text = NULL;

        (void)state;
        add_fault("{\"endpoint\":\"sandbox.ping\",\"kind\":\"status\","
                  "\"status\":400,\"body\":{\"errors\":[{\"title\":\"x\"}]}}");
        assert_int_equal(osy_test_sandbox_call(&sb, "GET", "/sandbox/ping",
                                               NULL, NULL, &text),
                         400);
        assert_string_equal(text, "{\"errors\":[{\"title\":\"x\"}]}");
        free(text);
}

static void test_fault_json503(void **state)
{
        cJSON *r;

        (void)state;
        add_fault("{\"endpoint\":\"sandbox.ping\",\"kind\":\"json503\"}");
        r = call_json("GET", "/sandbox/ping", NULL, 503);
        assert_non_null(jstr(r, "message"));
        cJSON_Delete(r);
}

static void test_fault_html503(void **state)
{
        struct osy_http_response r = {0};

        (void)state;
        add_fault("{\"endpoint\":\"sandbox.ping\",\"kind\":\"html503\"}");
        assert_int_equal(
            do_req(OSY_HTTP_GET, "/sandbox/ping", NULL, NULL, 5000, &r),
            OSY_OK);
        assert_int_equal(r.status, 503);
        assert_non_null(
            strstr(osy_http_response_header(&r, "Content-Type"), "text/html"));
        assert_non_null(strstr(r.body, "<html>"));
        osy_http_response_free(&r);
}

static void test_fault_latency_delays(void **state)
{
        struct osy_http_response r = {0};

        (void)state;
        add_fault("{\"endpoint\":\"sandbox.ping\",\"kind\":\"latency\","
                  "\"ms\":300}");
        assert_int_equal(
            do_req(OSY_HTTP_GET, "/sandbox/ping", NULL, NULL, 5000, &r),
            OSY_OK);
        assert_int_equal(r.status, 200); /* delayed, then answered */
        assert_true(r.total_ms >= 280);
        assert_true(r.total_ms < 3000);
        osy_http_response_free(&r);
}

static void test_fault_reset_is_transient(void **state)
{
        struct osy_http_response r = {0};

        (void)state;
        add_fault("{\"endpoint\":\"sandbox.ping\",\"kind\":\"reset\"}");
        assert_int_equal(
            do_req(OSY_HTTP_GET, "/sandbox/ping", NULL, NULL, 5000, &r),
            OSY_ERR_TRANSIENT);
}

static void test_fault_timeout_hits_client_timeout(void **state)
{
        struct osy_http_response r = {0};
        int64_t t0                 = osy_test_now_ms();

        (void)state;
        add_fault("{\"endpoint\":\"sandbox.ping\",\"kind\":\"timeout\","
                  "\"ms\":10000}");
        assert_int_equal(
            do_req(OSY_HTTP_GET, "/sandbox/ping", NULL, NULL, 300, &r),
            OSY_ERR_TRANSIENT);
        assert_true(osy_test_now_ms() - t0 < 3000);
}

static void test_fault_storm429_retry_after(void **state)
{
        struct osy_http_response r = {0};
        const char *ra;

        (void)state;
        add_fault("{\"endpoint\":\"sandbox.ping\",\"kind\":\"storm429\","
                  "\"retry_after\":7}");
        assert_int_equal(
            do_req(OSY_HTTP_GET, "/sandbox/ping", NULL, NULL, 5000, &r),
            OSY_OK);
        assert_int_equal(r.status, 429);
        ra = osy_http_response_header(&r, "Retry-After");
        assert_non_null(ra);
        assert_int_equal(osy_http_retry_after_ms(ra, time(NULL)), 7000);
        osy_http_response_free(&r);
}

static void test_fault_truncate_cuts_the_answer(void **state)
{
        struct osy_http_response r = {0};

        (void)state;
        add_fault("{\"endpoint\":\"sandbox.ping\",\"kind\":\"truncate\"}");
        /* Content-Length promised more than came: a transfer error. */
        assert_int_equal(
            do_req(OSY_HTTP_GET, "/sandbox/ping", NULL, NULL, 5000, &r),
            OSY_ERR_TRANSIENT);
}

static void test_fault_malformed_spoils_json(void **state)
{
        char *text = NULL;
        cJSON *j;

        (void)state;
        add_fault("{\"endpoint\":\"sandbox.ping\",\"kind\":\"malformed\","
                  "\"count\":1}");
        assert_int_equal(osy_test_sandbox_call(&sb, "GET", "/sandbox/ping",
                                               NULL, NULL, &text),
                         200);
        assert_string_equal(text, "{\"ok\""); /* half of {"ok":true} */
        j = cJSON_Parse(text);
        assert_null(j);
        free(text);
        assert_int_equal(ping_status(NULL), 200); /* count 1: spent */
}

static void test_fault_count_stops_after_n(void **state)
{
        cJSON *r, *rule;

        (void)state;
        add_fault("{\"endpoint\":\"sandbox.ping\",\"kind\":\"status\","
                  "\"status\":502,\"count\":2}");
        assert_int_equal(ping_status(NULL), 502);
        assert_int_equal(ping_status(NULL), 502);
        assert_int_equal(ping_status(NULL), 200);
        assert_int_equal(ping_status(NULL), 200);
        r = call_json("GET", "/sandbox/faults", NULL, 200);
        rule =
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "rules"), 0);
        assert_true(jnum(rule, "remaining") == 0);
        assert_true(jnum(rule, "fired") == 2);
        cJSON_Delete(r);
}

static void test_fault_every_nth(void **state)
{
        int got[6];

        (void)state;
        add_fault("{\"endpoint\":\"sandbox.ping\",\"kind\":\"status\","
                  "\"every_nth\":3}");
        for (int i = 0; i < 6; i++)
                got[i] = ping_status(NULL);
        assert_int_equal(got[0], 200);
        assert_int_equal(got[1], 200);
        assert_int_equal(got[2], 500);
        assert_int_equal(got[3], 200);
        assert_int_equal(got[4], 200);
        assert_int_equal(got[5], 500);
}

/* 40 pings against a p=0.5 rule after seeding: '1' failed, '0' passed. */
static void probability_run(int seed, char out[41])
{
        char body[64];

        cJSON_Delete(call_json("DELETE", "/sandbox/faults", NULL, 200));
        snprintf(body, sizeof(body), "{\"seed\":%d}", seed);
        cJSON_Delete(call_json("POST", "/sandbox/seed", body, 200));
        add_fault("{\"endpoint\":\"sandbox.ping\",\"kind\":\"status\","
                  "\"probability\":0.5}");
        for (int i = 0; i < 40; i++)
                out[i] = ping_status(NULL) == 500 ? '1' : '0';
        out[40] = '\0';
}

static void test_fault_probability_replays_with_seed(void **state)
{
        char a[41], b[41], c[41];

        (void)state;
        probability_run(7, a);
        probability_run(7, b);
        probability_run(8, c);
        assert_string_equal(a, b);
        assert_string_not_equal(a, c);
        /* Roughly half fail: both outcomes appear. */
        assert_non_null(strchr(a, '0'));
        assert_non_null(strchr(a, '1'));
}

static void test_fault_probability_zero_never_fires(void **state)
{
        (void)state;
        add_fault("{\"endpoint\":\"sandbox.ping\",\"kind\":\"status\","
                  "\"probability\":0}");
        for (int i = 0; i < 10; i++)
                assert_int_equal(ping_status(NULL), 200);
}

static void test_fault_per_tenant(void **state)
{
        (void)state;
        add_fault("{\"endpoint\":\"sandbox.ping\",\"tenant\":\"t1\","
                  "\"kind\":\"status\",\"status\":503}");
        assert_int_equal(ping_status("/sandbox/ping?tenant=t1"), 503);
        assert_int_equal(ping_status("/sandbox/ping?tenant=t2"), 200);
        assert_int_equal(ping_status(NULL), 200);
}

static void test_fault_endpoint_pattern_must_match(void **state)
{
        (void)state;
        add_fault("{\"endpoint\":\"ac.*\",\"kind\":\"status\"}");
        assert_int_equal(ping_status(NULL), 200);
}

static void test_fault_bad_rule_is_400(void **state)
{
        cJSON *r;

        (void)state;
        r = call_json("POST", "/sandbox/faults", "{\"kind\":\"explode\"}", 400);
        assert_non_null(strstr(jstr(r, "message"), "kind"));
        cJSON_Delete(r);
        r = call_json("POST", "/sandbox/faults",
                      "{\"kind\":\"status\",\"probability\":2}", 400);
        assert_non_null(strstr(jstr(r, "message"), "probability"));
        cJSON_Delete(r);
        r = call_json("POST", "/sandbox/faults",
                      "[{\"kind\":\"reset\"},{\"kind\":\"latency\"}]", 400);
        assert_non_null(strstr(jstr(r, "message"), "rule 1"));
        cJSON_Delete(r);
        /* All or nothing: the valid first rule was not added. */
        assert_int_equal(ping_status(NULL), 200);
}

static void test_fault_delete_one_and_all(void **state)
{
        cJSON *r;
        int id;

        (void)state;
        r  = call_json("POST", "/sandbox/faults",
                       "{\"endpoint\":\"sandbox.ping\",\"kind\":\"status\","
                        "\"status\":501}",
                       201);
        id = (int)jnum(
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "rules"), 0),
            "id");
        cJSON_Delete(r);
        add_fault("{\"endpoint\":\"sandbox.ping\",\"kind\":\"status\","
                  "\"status\":502}");
        assert_int_equal(ping_status(NULL), 501);
        char path[64];
        snprintf(path, sizeof(path), "/sandbox/faults?id=%d", id);
        assert_int_equal(call_status("DELETE", path, NULL), 200);
        assert_int_equal(call_status("DELETE", path, NULL), 404);
        assert_int_equal(ping_status(NULL), 502);
        assert_int_equal(call_status("DELETE", "/sandbox/faults", NULL), 200);
        assert_int_equal(ping_status(NULL), 200);
}

/* ---- the request log and stats ------------------------------------------- */

static void test_log_records_request_and_headers(void **state)
{
        const char *hdrs[] = {"Sforce-Call-Options: client=optsync", NULL};
        struct osy_http_response r = {0};
        cJSON *h, *e, *hd;

        (void)state;
        assert_int_equal(do_req(OSY_HTTP_GET, "/sandbox/ping?tenant=t1", hdrs,
                                NULL, 5000, &r),
                         OSY_OK);
        osy_http_response_free(&r);
        e  = last_request(&h);
        hd = cJSON_GetObjectItemCaseSensitive(e, "headers");
        assert_string_equal(jstr(hd, "Sforce-Call-Options"), "client=optsync");
        assert_string_equal(jstr(hd, "User-Agent"), "sbx-core-test/1");
        assert_string_equal(jstr(e, "method"), "GET");
        assert_string_equal(jstr(e, "url"), "/sandbox/ping?tenant=t1");
        assert_string_equal(jstr(e, "tenant"), "t1");
        assert_true(jnum(e, "status") == 200);
        assert_true(jnum(e, "seq") >= 1);
        assert_true(jnum(e, "duration_ms") >= 0);
        cJSON_Delete(h);
}

static void test_log_since_seq(void **state)
{
        cJSON *h, *list;
        char q[64];
        double seq2;

        (void)state;
        for (int i = 0; i < 3; i++)
                ping_status(NULL);
        list = requests(NULL, &h);
        assert_int_equal(cJSON_GetArraySize(list), 3);
        seq2 = jnum(cJSON_GetArrayItem(list, 1), "seq");
        cJSON_Delete(h);
        snprintf(q, sizeof(q), "?since_seq=%.0f", seq2);
        list = requests(q, &h);
        assert_int_equal(cJSON_GetArraySize(list), 1);
        assert_true(jnum(cJSON_GetArrayItem(list, 0), "seq") == seq2 + 1);
        assert_true(jnum(h, "last_seq") == seq2 + 1);
        cJSON_Delete(h);
}

static void test_log_tenant_filter(void **state)
{
        cJSON *h, *list;

        (void)state;
        ping_status("/sandbox/ping?tenant=t1");
        ping_status("/sandbox/ping?tenant=t2");
        ping_status("/sandbox/ping?tenant=t1");
        list = requests("?tenant=t1", &h);
        assert_int_equal(cJSON_GetArraySize(list), 2);
        cJSON_Delete(h);
}

static void test_log_delete_clears(void **state)
{
        cJSON *h;

        (void)state;
        ping_status(NULL);
        ping_status(NULL);
        assert_int_equal(call_status("DELETE", "/sandbox/requests", NULL), 200);
        assert_int_equal(cJSON_GetArraySize(requests(NULL, &h)), 0);
        cJSON_Delete(h);
        /* Sequence numbers keep counting. */
        ping_status(NULL);
        assert_true(jnum(cJSON_GetArrayItem(requests(NULL, &h), 0), "seq") ==
                    3);
        cJSON_Delete(h);
}

static void test_log_ring_is_bounded(void **state)
{
        const char *args[] = {"--log-size", "5", NULL};
        cJSON *h, *list;

        (void)state;
        osy_test_sandbox_stop(&sb);
        start_with(FIXTURE, args);
        for (int i = 0; i < 8; i++)
                ping_status(NULL);
        list = requests(NULL, &h);
        assert_int_equal(cJSON_GetArraySize(list), 5);
        assert_true(jnum(cJSON_GetArrayItem(list, 0), "seq") == 4);
        assert_true(jnum(h, "dropped") == 3);
        cJSON_Delete(h);
}

static void test_log_marks_faults(void **state)
{
        cJSON *h, *e;

        (void)state;
        add_fault("{\"endpoint\":\"sandbox.ping\",\"kind\":\"reset\"}");
        ping_status(NULL);
        e = last_request(&h);
        assert_string_equal(jstr(e, "fault"), "reset");
        assert_true(jnum(e, "status") == 0);
        cJSON_Delete(h);
}

static void test_log_skips_controls(void **state)
{
        cJSON *h;

        (void)state;
        cJSON_Delete(call_json("GET", "/sandbox/clock", NULL, 200));
        cJSON_Delete(call_json("GET", "/sandbox/stats", NULL, 200));
        assert_int_equal(cJSON_GetArraySize(requests(NULL, &h)), 0);
        cJSON_Delete(h);
}

static void test_stats_count_by_endpoint_and_status(void **state)
{
        cJSON *r, *ep;

        (void)state;
        add_fault("{\"endpoint\":\"sandbox.ping\",\"kind\":\"status\","
                  "\"count\":1}");
        for (int i = 0; i < 3; i++)
                ping_status(NULL);
        call_status("GET", "/nowhere", NULL);
        r  = call_json("GET", "/sandbox/stats", NULL, 200);
        ep = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(r, "by_endpoint"), "sandbox.ping");
        assert_true(jnum(ep, "total") == 3);
        assert_true(jnum(cJSON_GetObjectItemCaseSensitive(ep, "by_status"),
                         "200") == 2);
        assert_true(jnum(cJSON_GetObjectItemCaseSensitive(ep, "by_status"),
                         "500") == 1);
        assert_true(
            jnum(cJSON_GetObjectItemCaseSensitive(r, "faults"), "status") == 1);
        assert_true(jnum(r, "total") == 4);
        cJSON_Delete(r);
        assert_int_equal(call_status("DELETE", "/sandbox/stats", NULL), 200);
        r = call_json("GET", "/sandbox/stats", NULL, 200);
        assert_true(jnum(r, "total") == 0);
        cJSON_Delete(r);
}

/* ---- wait/notify and stopping -------------------------------------------- */

struct waiter {
        const char *path;
        int status;
        char *body;
        int64_t took_ms;
};

static void *wait_thread(void *arg)
{
        struct waiter *w = arg;
        int64_t t0       = osy_test_now_ms();

        w->status =
            osy_test_sandbox_call(&sb, "GET", w->path, NULL, NULL, &w->body);
        w->took_ms = osy_test_now_ms() - t0;
        return NULL;
}

static void test_wait_returns_on_notify(void **state)
{
        struct waiter w = {.path = "/sandbox/wait?ms=8000"};
        pthread_t th;
        cJSON *r;

        (void)state;
        assert_int_equal(pthread_create(&th, NULL, wait_thread, &w), 0);
        osy_test_sleep_ms(300);
        assert_int_equal(call_status("POST", "/sandbox/notify", NULL), 200);
        pthread_join(th, NULL);
        assert_int_equal(w.status, 200);
        assert_true(w.took_ms < 4000);
        r = cJSON_Parse(w.body);
        assert_true(
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "notified")));
        cJSON_Delete(r);
        free(w.body);
}

static void test_wait_times_out(void **state)
{
        struct waiter w = {.path = "/sandbox/wait?ms=200"};
        cJSON *r;

        (void)state;
        wait_thread(&w);
        assert_int_equal(w.status, 200);
        assert_true(w.took_ms >= 180);
        r = cJSON_Parse(w.body);
        assert_true(
            cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(r, "notified")));
        cJSON_Delete(r);
        free(w.body);
}

static void sigterm_while(const char *fault, const char *path)
{
        struct waiter w = {.path = path};
        pthread_t th;
        long took;
        int status;

        if (fault)
                add_fault(fault);
        assert_int_equal(pthread_create(&th, NULL, wait_thread, &w), 0);
        osy_test_sleep_ms(300); /* the request is parked by now */
        status = osy_test_sandbox_stop_status(&sb, &took);
        pthread_join(th, NULL);
        free(w.body);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_true(took < 3000);
        assert_true(w.took_ms < 5000);
}

static void test_sigterm_exits_0_while_waiting(void **state)
{
        (void)state;
        sigterm_while(NULL, "/sandbox/wait?ms=60000");
}

static void test_sigterm_exits_0_during_timeout_fault(void **state)
{
        (void)state;
        sigterm_while("{\"endpoint\":\"sandbox.ping\",\"kind\":\"timeout\","
                      "\"ms\":60000}",
                      "/sandbox/ping");
}

static void test_sigterm_exits_0_idle(void **state)
{
        long took;
        int status;

        (void)state;
        ping_status(NULL); /* leaves nothing open: the client is gone */
        status = osy_test_sandbox_stop_status(&sb, &took);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_true(took < 2000);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_ping_answers_ok, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_unknown_route_is_404_json,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_unknown_control_is_404_json,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                test_control_wrong_method_is_405_with_allow, setup, teardown),
            cmocka_unit_test_setup_teardown(
                test_unknown_ac_tenant_is_404_object, setup, teardown),
            cmocka_unit_test_setup_teardown(
                test_unknown_sf_tenant_is_404_sf_array, setup, teardown),
            cmocka_unit_test_setup_teardown(test_bad_tenant_name_is_404, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_unknown_tenant_control_is_404,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_ac_route_reaches_ac_module,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_sf_routes_reach_sf_and_cometd,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_body_over_cap_is_413, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_body_under_cap_reaches_module,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_default_cap_refuses_9_mib,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_fixture_bad_json_is_400, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(
                test_fixture_bad_shape_is_400_with_reason, setup, teardown),
            cmocka_unit_test_setup_teardown(test_fixture_replaces_tenants,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                test_bad_fixture_keeps_previous_state, setup, teardown),
            cmocka_unit_test_setup_teardown(test_state_of_one_tenant, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_fixture_get_returns_loaded,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_fixture_faults_apply, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_start_fails_on_bad_fixture,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_cli_rejects_bad_option, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_reset_clears_faults_log_clock,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_reset_empty_drops_tenants,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_reset_bad_body_is_400, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_clock_advance_shows, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_clock_set_now, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_clock_bad_body_is_400, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_seed_set_and_get, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_set_options_are_visible, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_fault_status_500_json, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_fault_status_custom_body,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_fault_json503, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_fault_html503, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_fault_latency_delays, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_fault_reset_is_transient,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                test_fault_timeout_hits_client_timeout, setup, teardown),
            cmocka_unit_test_setup_teardown(test_fault_storm429_retry_after,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_fault_truncate_cuts_the_answer,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_fault_malformed_spoils_json,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_fault_count_stops_after_n,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_fault_every_nth, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(
                test_fault_probability_replays_with_seed, setup, teardown),
            cmocka_unit_test_setup_teardown(
                test_fault_probability_zero_never_fires, setup, teardown),
            cmocka_unit_test_setup_teardown(test_fault_per_tenant, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(
                test_fault_endpoint_pattern_must_match, setup, teardown),
            cmocka_unit_test_setup_teardown(test_fault_bad_rule_is_400, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_fault_delete_one_and_all,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                test_log_records_request_and_headers, setup, teardown),
            cmocka_unit_test_setup_teardown(test_log_since_seq, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_log_tenant_filter, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_log_delete_clears, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_log_ring_is_bounded, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_log_marks_faults, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_log_skips_controls, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(
                test_stats_count_by_endpoint_and_status, setup, teardown),
            cmocka_unit_test_setup_teardown(test_wait_returns_on_notify, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_wait_times_out, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_sigterm_exits_0_while_waiting,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                test_sigterm_exits_0_during_timeout_fault, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sigterm_exits_0_idle, setup,
                                            teardown),
        };

        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        /* A client dropped by a reset fault must not kill the test. */
        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
