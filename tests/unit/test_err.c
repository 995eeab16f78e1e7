/*
 * test_err.c - the single retry decision: which HTTP answers and Salesforce
 * codes are retried, and which go to the DLQ.
 */
#include "osy_test.h"
#include "optsync/err.h"

#include <string.h>

static void retryable_only_transient_and_throttled(void **state)
{
        (void)state;
        for (int e = OSY_OK; e <= OSY_ERR_FATAL; e++)
                assert_int_equal(osy_err_is_retryable((osy_err_t)e),
                                 e == OSY_ERR_TRANSIENT ||
                                     e == OSY_ERR_THROTTLED);
}

static void every_code_has_a_name(void **state)
{
        (void)state;
        for (int e = OSY_OK; e <= OSY_ERR_FATAL; e++)
                assert_string_not_equal(osy_err2str((osy_err_t)e), "unknown");
        assert_string_equal(osy_err2str(OSY_ERR_THROTTLED), "throttled");
}

static void http_status_classes(void **state)
{
        (void)state;
        assert_int_equal(osy_err_from_http(200, NULL), OSY_OK);
        assert_int_equal(osy_err_from_http(201, "{}"), OSY_OK);
        assert_int_equal(osy_err_from_http(0, NULL), OSY_ERR_TRANSIENT);
        assert_int_equal(osy_err_from_http(429, NULL), OSY_ERR_THROTTLED);
        assert_int_equal(osy_err_from_http(500, NULL), OSY_ERR_TRANSIENT);
        assert_int_equal(osy_err_from_http(503, "<html>busy</html>"),
                         OSY_ERR_TRANSIENT);
        assert_int_equal(osy_err_from_http(401, NULL), OSY_ERR_AUTH);
        /* AC answers a bad Api-Token with 403, not 401. */
        assert_int_equal(osy_err_from_http(403, "{\"message\":\"No Result\"}"),
                         OSY_ERR_AUTH);
        assert_int_equal(osy_err_from_http(404, NULL), OSY_ERR_NOT_FOUND);
        assert_int_equal(osy_err_from_http(413, NULL), OSY_ERR_TOO_LARGE);
        assert_int_equal(osy_err_from_http(422, "{\"errors\":[]}"),
                         OSY_ERR_PERMANENT);
}

static void http_bodies_that_override_status(void **state)
{
        (void)state;
        /* SF reports row locks inside a 400 body: retry, never DLQ. */
        assert_int_equal(
            osy_err_from_http(400, "[{\"errorCode\":\"UNABLE_TO_LOCK_ROW\"}]"),
            OSY_ERR_TRANSIENT);
        assert_int_equal(
            osy_err_from_http(403,
                              "[{\"errorCode\":\"REQUEST_LIMIT_EXCEEDED\"}]"),
            OSY_ERR_THROTTLED);
        /* AC bulk import's rate limit is a 400. */
        assert_int_equal(
            osy_err_from_http(400, "{\"success\":0,\"message\":\"Rate limit "
                                   "exceeded.\"}"),
            OSY_ERR_THROTTLED);
        assert_int_equal(osy_err_from_http(400, "{\"success\":0}"),
                         OSY_ERR_PERMANENT);
}

static void salesforce_codes(void **state)
{
        (void)state;
        assert_int_equal(osy_err_from_sf_code("UNABLE_TO_LOCK_ROW"),
                         OSY_ERR_TRANSIENT);
        assert_int_equal(osy_err_from_sf_code("REQUEST_LIMIT_EXCEEDED"),
                         OSY_ERR_THROTTLED);
        assert_int_equal(osy_err_from_sf_code("INVALID_SESSION_ID"),
                         OSY_ERR_AUTH);
        assert_int_equal(osy_err_from_sf_code("CANNOT_UPDATE_CONVERTED_LEAD"),
                         OSY_ERR_PERMANENT);
        assert_int_equal(osy_err_from_sf_code("ENTITY_IS_DELETED"),
                         OSY_ERR_NOT_FOUND);
        assert_int_equal(osy_err_from_sf_code(NULL), OSY_ERR_PERMANENT);
}

static void set_formats_and_returns(void **state)
{
        char buf[16];
        (void)state;
        assert_int_equal(osy_err_set(OSY_ERR_INVALID, buf, sizeof(buf),
                                     "key %s is bad and long", "X"),
                         OSY_ERR_INVALID);
        assert_int_equal(strlen(buf), sizeof(buf) - 1); /* truncated */
        assert_int_equal(osy_err_set(OSY_OK, NULL, 0, "ignored"), OSY_OK);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(retryable_only_transient_and_throttled),
    cmocka_unit_test(every_code_has_a_name),
    cmocka_unit_test(http_status_classes),
    cmocka_unit_test(http_bodies_that_override_status),
    cmocka_unit_test(salesforce_codes),
    cmocka_unit_test(set_formats_and_returns),
};
OSY_TEST_MAIN(tests, NULL, NULL)
