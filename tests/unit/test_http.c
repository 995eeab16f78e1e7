/*
 * test_http.c - the HTTP client without a network: Retry-After parsing,
 * option defaults, argument checks and header lookup.
 */
#include "osy_test.h"
#include "optsync/http.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* 1994-11-06 08:49:07 UTC: 30 s before the RFC 9110 example date. */
static time_t example_now(void)
{
        struct tm tm = {.tm_year = 94,
                        .tm_mon  = 10,
                        .tm_mday = 6,
                        .tm_hour = 8,
                        .tm_min  = 49,
                        .tm_sec  = 7};

        return timegm(&tm);
}

static void retry_after_delta_seconds(void **state)
{
        (void)state;
        assert_int_equal(osy_http_retry_after_ms("120", 0), 120000);
        assert_int_equal(osy_http_retry_after_ms("0", 0), 0);
        assert_int_equal(osy_http_retry_after_ms(" 7\t", 0), 7000);
        /* Nonsense magnitudes saturate instead of overflowing. */
        assert_int_equal(osy_http_retry_after_ms("99999999999999999999999", 0),
                         (int64_t)1000000000 * 1000);
}

static void retry_after_imf_date_in_future(void **state)
{
        (void)state;
        assert_int_equal(osy_http_retry_after_ms(
                             "Sun, 06 Nov 1994 08:49:37 GMT", example_now()),
                         30000);
        assert_int_equal(osy_http_retry_after_ms(
                             "Mon, 07 Nov 1994 08:49:07 GMT", example_now()),
                         86400 * 1000);
}

static void retry_after_date_in_past_is_zero(void **state)
{
        (void)state;
        assert_int_equal(osy_http_retry_after_ms(
                             "Sun, 06 Nov 1994 08:49:06 GMT", example_now()),
                         0);
        assert_int_equal(osy_http_retry_after_ms(
                             "Sun, 06 Nov 1994 08:49:07 GMT", example_now()),
                         0);
}

static void retry_after_obsolete_date_forms(void **state)
{
        (void)state;
        /* RFC 850 and asctime forms, which RFC 9110 says to accept. */
        assert_int_equal(osy_http_retry_after_ms(
                             "Sunday, 06-Nov-94 08:49:37 GMT", example_now()),
                         30000);
        assert_int_equal(
            osy_http_retry_after_ms("Sun Nov  6 08:49:37 1994", example_now()),
            30000);
        assert_int_equal(
            osy_http_retry_after_ms("Sun Nov 16 08:49:07 1994", example_now()),
            10 * 86400 * 1000LL);
}

static void retry_after_garbage_is_minus_one(void **state)
{
        const char *bad[] = {"",
                             "   ",
                             "abc",
                             "12abc",
                             "-5",
                             "+5",
                             "1.5",
                             "Sun, 06 Nov 1994 08:49:37 UTC",
                             "Sun, 06 Nov 1994 08:49:37 GMT trailing",
                             "Sun, 6 Nov 1994 08:49:37 GMT",
                             "Sun, 31 Feb 1994 08:49:37 GMT",
                             "Sun, 06 Nov 1994 25:49:37 GMT",
                             "Sun, 06 Foo 1994 08:49:37 GMT",
                             "Sun, 06 Nov 1994 08:49 GMT",
                             "Xyz, 06 Nov 1994 08:49:37 GMT",
                             NULL};
        (void)state;

        for (size_t i = 0; bad[i]; i++) {
                if (osy_http_retry_after_ms(bad[i], example_now()) != -1)
                        fail_msg("\"%s\" parsed", bad[i]);
        }
        assert_int_equal(osy_http_retry_after_ms(NULL, 0), -1);
}

static void options_defaults(void **state)
{
        char errstr[OSY_ERRSTR_SIZE];
        struct osy_http_opts o, in = {.timeout_ms = 1234};
        (void)state;

        assert_int_equal(
            osy_http_opts_resolve(&o, NULL, errstr, sizeof(errstr)), OSY_OK);
        assert_int_equal(o.connect_timeout_ms,
                         OSY_HTTP_DEFAULT_CONNECT_TIMEOUT_MS);
        assert_int_equal(o.timeout_ms, OSY_HTTP_DEFAULT_TIMEOUT_MS);
        assert_int_equal(o.max_body, 4 * 1024 * 1024);
        assert_string_equal(o.user_agent, OSY_HTTP_DEFAULT_USER_AGENT);
        /* Fields the caller set are kept. */
        assert_int_equal(osy_http_opts_resolve(&o, &in, errstr, sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(o.timeout_ms, 1234);
        assert_int_equal(o.connect_timeout_ms,
                         OSY_HTTP_DEFAULT_CONNECT_TIMEOUT_MS);
}

static void options_negative_timeouts_rejected(void **state)
{
        char errstr[OSY_ERRSTR_SIZE];
        struct osy_http_opts o, in = {.connect_timeout_ms = -1};
        osy_http_client_t *c = (osy_http_client_t *)1;
        (void)state;

        assert_int_equal(osy_http_opts_resolve(&o, &in, errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(errstr, "negative"));
        assert_int_equal(osy_http_client_new(&c, &in, errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
        assert_null(c);
        assert_int_equal(
            osy_http_client_new(NULL, NULL, errstr, sizeof(errstr)),
            OSY_ERR_INVALID);
}

static void bad_requests_rejected(void **state)
{
        char errstr[OSY_ERRSTR_SIZE];
        osy_http_client_t *c = NULL;
        struct osy_http_response resp;
        const char *const no_colon[]   = {"Accept application/json", NULL};
        const char *const empty_name[] = {": x", NULL};
        const char *const injected[]   = {"X-A: 1\r\nX-Evil: 2", NULL};
        struct osy_http_request ok     = {.method = OSY_HTTP_GET,
                                          .url    = "http://127.0.0.1:1/"};
        struct osy_http_request r;
        (void)state;

        assert_int_equal(osy_http_client_new(&c, NULL, errstr, sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(osy_http_do(NULL, &ok, &resp, errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
        assert_int_equal(osy_http_do(c, NULL, &resp, errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
        assert_int_equal(osy_http_do(c, &ok, NULL, errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
#define BAD(field_init)                                                        \
        do {                                                                   \
                r = ok;                                                        \
                field_init;                                                    \
                memset(&resp, 0xab, sizeof(resp));                             \
                assert_int_equal(                                              \
                    osy_http_do(c, &r, &resp, errstr, sizeof(errstr)),         \
                    OSY_ERR_INVALID);                                          \
                assert_null(resp.body); /* left empty, safe to free */         \
                osy_http_response_free(&resp);                                 \
        } while (0)
        BAD(r.url = NULL);
        BAD(r.url = "");
        BAD(r.method = (osy_http_method_t)99);
        BAD(r.body_len = 3);
        BAD(r.headers = no_colon);
        BAD(r.headers = empty_name);
        BAD(r.headers = injected);
        /* Only http and https: never file:// or other schemes. */
        BAD(r.url = "file:///etc/passwd");
        BAD(r.url = "ftp://127.0.0.1/x");
#undef BAD
        osy_http_client_destroy(c);
        osy_http_client_destroy(NULL);
}

static void method_names(void **state)
{
        (void)state;
        assert_string_equal(osy_http_method2str(OSY_HTTP_GET), "GET");
        assert_string_equal(osy_http_method2str(OSY_HTTP_PATCH), "PATCH");
        assert_string_equal(osy_http_method2str(OSY_HTTP_DELETE), "DELETE");
        assert_null(osy_http_method2str((osy_http_method_t)42));
}

static void header_lookup_case_insensitive_last_wins(void **state)
{
        struct osy_http_response r = {0};
        const char *pairs[][2]     = {{"Content-Type", "text/plain"},
                                      {"X-Dup", "first"},
                                      {"Retry-After", "5"},
                                      {"x-dup", "second"}};
        (void)state;

        r.n_headers = 4;
        r.headers   = calloc(4, sizeof(*r.headers));
        assert_non_null(r.headers);
        for (size_t i = 0; i < 4; i++) {
                r.headers[i].name  = strdup(pairs[i][0]);
                r.headers[i].value = strdup(pairs[i][1]);
        }
        r.body = strdup("");
        assert_string_equal(osy_http_response_header(&r, "retry-after"), "5");
        assert_string_equal(osy_http_response_header(&r, "CONTENT-TYPE"),
                            "text/plain");
        assert_string_equal(osy_http_response_header(&r, "X-DUP"), "second");
        assert_null(osy_http_response_header(&r, "Location"));
        assert_null(osy_http_response_header(&r, NULL));
        assert_null(osy_http_response_header(NULL, "X-Dup"));
        osy_http_response_free(&r);
        assert_null(r.headers);
        assert_int_equal(r.n_headers, 0);
        osy_http_response_free(&r); /* twice is fine */
        osy_http_response_free(NULL);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(retry_after_delta_seconds),
    cmocka_unit_test(retry_after_imf_date_in_future),
    cmocka_unit_test(retry_after_date_in_past_is_zero),
    cmocka_unit_test(retry_after_obsolete_date_forms),
    cmocka_unit_test(retry_after_garbage_is_minus_one),
    cmocka_unit_test(options_defaults),
    cmocka_unit_test(options_negative_timeouts_rejected),
    cmocka_unit_test(bad_requests_rejected),
    cmocka_unit_test(method_names),
    cmocka_unit_test(header_lookup_case_insensitive_last_wins),
};
OSY_TEST_MAIN(tests, NULL, NULL)
