/*
 * test_tenants.c - the tenants file: a valid document loads; every mistake
 * is an error naming its JSON path; secrets never reach errors or logs.
 */
#include "osy_test.h"
#include "optsync/log.h"
#include "optsync/tenants.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char valid[] =
    "{\"tenants\":[{\"id\":\"acme\",\"ac\":{\"base_url\":\"https://acme.api-"
    "us1.com\",\"api_token\":\"ac-token-123456\",\"webhook_token\":\"hook-"
    "secret-987\"},\"sf\":{\"login_url\":\"https://login.salesforce.com\","
    "\"api_version\":\"59.0\",\"auth\":\"client_credentials\",\"client_id\":"
    "\"cid\",\"client_secret\":\"sf-secret-555\"}},{\"id\":\"globex\",\"ac\":"
    "{\"base_url\":\"http://127.0.0.1:8080/ac/globex\",\"api_token\":\"t2-"
    "abcdef\"},\"sync_all_contacts\":true}]}";

/* Parses @p json expecting failure; returns the error text (static). */
static const char *parse_error(const char *json)
{
        static char err[OSY_ERRSTR_SIZE];
        osy_tenants_t *ts = NULL;
        err[0]            = '\0';
        assert_int_equal(
            osy_tenants_parse(&ts, json, strlen(json), err, sizeof(err)),
            OSY_ERR_INVALID);
        assert_null(ts);
        return err;
}

static void valid_document_loads(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        osy_tenants_t *ts = NULL;
        (void)state;
        assert_int_equal(
            osy_tenants_parse(&ts, valid, strlen(valid), err, sizeof(err)),
            OSY_OK);
        assert_int_equal(osy_tenants_count(ts), 2);
        const struct osy_tenant *acme = osy_tenants_find(ts, "acme");
        assert_non_null(acme);
        assert_true(acme->has_ac && acme->has_sf);
        assert_string_equal(acme->ac.api_token, "ac-token-123456");
        assert_string_equal(acme->ac.webhook_token, "hook-secret-987");
        assert_int_equal(acme->sf.auth, OSY_SF_AUTH_CLIENT_CREDENTIALS);
        assert_string_equal(acme->sf.api_version, "59.0");
        assert_false(acme->sync_all_contacts);
        const struct osy_tenant *g = osy_tenants_at(ts, 1);
        assert_string_equal(g->id, "globex");
        assert_false(g->has_sf);
        assert_null(g->ac.webhook_token);
        assert_true(g->sync_all_contacts);
        assert_null(osy_tenants_find(ts, "initech"));
        assert_null(osy_tenants_at(ts, 2));
        osy_tenants_destroy(ts);
        osy_log_clear_secrets();
}

static void unknown_keys_are_named(void **state)
{
        (void)state;
        assert_non_null(strstr(
            parse_error("{\"tenants\":[{\"id\":\"a\",\"ac\":{\"api_tokn\":"
                        "\"x\"}}]}"),
            "tenants[0].ac.api_tokn: unknown key"));
        assert_non_null(
            strstr(parse_error("{\"tenants\":[{\"id\":\"a\",\"colour\":1}]}"),
                   "tenants[0].colour: unknown key"));
        assert_non_null(
            strstr(parse_error("{\"tenant\":[]}"), "tenant: unknown key"));
}

static void structure_errors(void **state)
{
        (void)state;
        assert_non_null(strstr(parse_error("not json"), "not a JSON object"));
        assert_non_null(
            strstr(parse_error("{\"tenants\":[]}"), "non-empty array"));
        assert_non_null(strstr(parse_error("{\"tenants\":[{}]}"),
                               "tenants[0].id: required"));
        assert_non_null(strstr(parse_error("{\"tenants\":[{\"id\":\"a b\"}]}"),
                               "tenants[0].id"));
        assert_non_null(
            strstr(parse_error("{\"tenants\":[{\"id\":\"a\"},{\"id\":\"a\"}]}"),
                   "tenants[1].id: 'a' repeats tenants[0]"));
        assert_non_null(
            strstr(parse_error("{\"tenants\":[{\"id\":\"a\",\"ac\":{\"base_"
                               "url\":\"ftp://x\"}}]}"),
                   "tenants[0].ac.base_url: must start with http"));
        assert_non_null(strstr(
            parse_error("{\"tenants\":[{\"id\":\"a\",\"ac\":{\"api_token\":"
                        "\"\"}}]}"),
            "tenants[0].ac.api_token: must be a non-empty string"));
        assert_non_null(
            strstr(parse_error("{\"tenants\":[{\"id\":\"a\",\"sync_all_"
                               "contacts\":\"yes\"}]}"),
                   "sync_all_contacts: must be true or false"));
}

static void sf_auth_is_checked(void **state)
{
        (void)state;
        assert_non_null(strstr(
            parse_error("{\"tenants\":[{\"id\":\"a\",\"sf\":{\"client_id\":"
                        "\"x\"}}]}"),
            "tenants[0].sf.auth: required"));
        assert_non_null(
            strstr(parse_error("{\"tenants\":[{\"id\":\"a\",\"sf\":{\"auth\":"
                               "\"password\"}}]}"),
                   "'password' is not one of"));
}

static void secrets_never_in_errors_or_logs(void **state)
{
        char *buf  = NULL;
        size_t len = 0;
        FILE *mem  = open_memstream(&buf, &len);
        (void)state;
        /* The second tenant is broken after the first one's secrets were
         * read: the error names the path, never a value. */
        const char *json =
            "{\"tenants\":[{\"id\":\"a\",\"ac\":{\"api_token\":\"sekrit-"
            "value-1\"}},{\"id\":\"b\",\"ac\":{\"api_token\":\"sekrit-value-"
            "2\",\"bogus\":\"x\"}}]}";
        const char *err = parse_error(json);
        assert_null(strstr(err, "sekrit"));
        osy_log_init("test", OSY_LOG_DEBUG, mem);
        osy_log_info("token is sekrit-value-1 and sekrit-value-2");
        fflush(mem);
        assert_null(strstr(buf, "sekrit-value"));
        osy_log_init("optsync", OSY_LOG_INFO, NULL);
        osy_log_clear_secrets();
        fclose(mem);
        free(buf);
}

static void load_file_and_its_errors(void **state)
{
        char err[OSY_ERRSTR_SIZE], path[] = "/tmp/optsync-tenants-XXXXXX";
        osy_tenants_t *ts = NULL;
        (void)state;
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, valid, strlen(valid)),
                         (ssize_t)strlen(valid));
        close(fd);
        assert_int_equal(osy_tenants_load_file(&ts, path, err, sizeof(err)),
                         OSY_OK);
        assert_int_equal(osy_tenants_count(ts), 2);
        osy_tenants_destroy(ts);
        unlink(path);
        assert_int_equal(osy_tenants_load_file(&ts, path, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(err, "OPTSYNC_TENANTS_FILE"));
        assert_non_null(strstr(err, path));
        assert_int_equal(osy_tenants_load_file(&ts, "", err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(err, "not set"));
        osy_tenants_destroy(NULL); /* NULL-safe */
        osy_log_clear_secrets();
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(valid_document_loads),
    cmocka_unit_test(unknown_keys_are_named),
    cmocka_unit_test(structure_errors),
    cmocka_unit_test(sf_auth_is_checked),
    cmocka_unit_test(secrets_never_in_errors_or_logs),
    cmocka_unit_test(load_file_and_its_errors),
};
OSY_TEST_MAIN(tests, NULL, NULL)
