/*
 * test_ac_write.c - the pure parts of the AC write calls: the bulk import
 * body and its limits, the importer's answers (including its rate limit
 * sent as a 400), and GET /import/info.
 */
#include "osy_test.h"
#include "optsync/ac_write.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

static void bulk_body_lists_each_contact_unsubscribes(void **state)
{
        const char *l1[]               = {"1", "22"};
        const char *l2[]               = {"abc"};
        struct osy_ac_bulk_contact c[] = {{"a@x.com", l1, 2},
                                          {"b+tag@x.com", l2, 1}};
        char *json                     = NULL;
        size_t len                     = 0;
        cJSON *root;
        const cJSON *c0, *un;
        (void)state;

        assert_int_equal(osy_ac_bulk_body(c, 2, &json, &len), OSY_OK);
        assert_int_equal(len, strlen(json));
        root = cJSON_Parse(json);
        assert_non_null(root);
        assert_true(
            cJSON_IsTrue(cJSON_GetObjectItem(root, "exclude_automations")));
        c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "contacts"), 0);
        assert_string_equal(cJSON_GetObjectItem(c0, "email")->valuestring,
                            "a@x.com");
        un = cJSON_GetObjectItem(c0, "unsubscribe");
        assert_int_equal(cJSON_GetArraySize(un), 2);
        /* Numeric list ids go as numbers, as in AC's examples. */
        assert_int_equal(
            cJSON_GetObjectItem(cJSON_GetArrayItem(un, 1), "listid")->valueint,
            22);
        un = cJSON_GetObjectItem(
            cJSON_GetArrayItem(cJSON_GetObjectItem(root, "contacts"), 1),
            "unsubscribe");
        assert_string_equal(
            cJSON_GetObjectItem(cJSON_GetArrayItem(un, 0), "listid")
                ->valuestring,
            "abc");
        cJSON_Delete(root);
        free(json);
}

static void bulk_body_limits(void **state)
{
        struct osy_ac_bulk_contact *c = calloc(OSY_AC_BULK_MAX + 1, sizeof(*c));
        const char *l[]               = {"1"};
        char *json                    = NULL;
        size_t len;
        (void)state;
        for (int i = 0; i <= OSY_AC_BULK_MAX; i++) {
                c[i].email   = "someone@example.com";
                c[i].lists   = l;
                c[i].n_lists = 1;
        }
        assert_int_equal(osy_ac_bulk_body(c, 0, &json, &len), OSY_ERR_INVALID);
        assert_int_equal(osy_ac_bulk_body(c, OSY_AC_BULK_MAX + 1, &json, &len),
                         OSY_ERR_INVALID);
        assert_int_equal(osy_ac_bulk_body(c, OSY_AC_BULK_MAX, &json, &len),
                         OSY_OK);
        free(json);
        free(c);
}

static void bulk_answers_are_classified(void **state)
{
        char id[OSY_AC_BATCH_ID_MAX + 1], e[OSY_ERRSTR_SIZE];
        (void)state;
        assert_int_equal(
            osy_ac_bulk_parse(200,
                              "{\"Success\":1,\"queued_contacts\":2,"
                              "\"batchId\":\"4f2c-aa\",\"message\":"
                              "\"Contact import queued\"}",
                              id, sizeof(id), e, sizeof(e)),
            OSY_OK);
        assert_string_equal(id, "4f2c-aa");
        /* The importer's rate limit is a 400, and must be retried. */
        assert_int_equal(
            osy_ac_bulk_parse(400,
                              "{\"success\":0,\"message\":\"Rate limit "
                              "exceeded.\",\"failureReasons\":[\"Up to 100 "
                              "imports may be requested per minute\"]}",
                              id, sizeof(id), e, sizeof(e)),
            OSY_ERR_THROTTLED);
        assert_int_equal(
            osy_ac_bulk_parse(400,
                              "{\"success\":0,\"message\":\"JSON payload did "
                              "not pass validation\",\"failureReasons\":[{"
                              "\"contact\":1,\"failureReason\":\"x\"}]}",
                              id, sizeof(id), e, sizeof(e)),
            OSY_ERR_PERMANENT);
        assert_non_null(strstr(e, "did not pass validation"));
        assert_int_equal(osy_ac_bulk_parse(200, "{\"Success\":1}", id,
                                           sizeof(id), e, sizeof(e)),
                         OSY_ERR_TRANSIENT);
        assert_int_equal(osy_ac_bulk_parse(503, "<html>busy</html>", id,
                                           sizeof(id), e, sizeof(e)),
                         OSY_ERR_TRANSIENT);
}

static void import_info_reports_completion_and_failures(void **state)
{
        struct osy_ac_import_status s;
        char e[OSY_ERRSTR_SIZE];
        (void)state;
        assert_int_equal(osy_ac_import_info_parse(
                             "{\"status\":\"completed\",\"success\":[\"1\","
                             "\"2\"],\"failure\":[\"Bad@X.com\"]}",
                             &s, e, sizeof(e)),
                         OSY_OK);
        assert_true(s.completed);
        assert_int_equal(s.n_success, 2);
        assert_int_equal(s.n_failure, 1);
        assert_string_equal(s.failure[0], "bad@x.com");
        osy_ac_import_status_clear(&s);
        /* Right after the POST AC says status:false. */
        assert_int_equal(osy_ac_import_info_parse(
                             "{\"status\":false,\"success\":[],\"failure\":[]}",
                             &s, e, sizeof(e)),
                         OSY_OK);
        assert_false(s.completed);
        assert_int_equal(osy_ac_import_info_parse(
                             "{\"status\":\"outstanding\"}", &s, e, sizeof(e)),
                         OSY_OK);
        assert_false(s.completed);
        assert_int_equal(osy_ac_import_info_parse("[]", &s, e, sizeof(e)),
                         OSY_ERR_INVALID);
        /* A failure list in another shape is not "none refused": before,
         * its items were skipped and every contact counted as done. */
        assert_int_equal(
            osy_ac_import_info_parse("{\"status\":\"completed\",\"success\":[],"
                                     "\"failure\":[{\"email\":\"bad@x.com\"}]}",
                                     &s, e, sizeof(e)),
            OSY_ERR_INVALID);
        assert_int_equal(
            osy_ac_import_info_parse("{\"status\":\"completed\",\"failure\":"
                                     "\"bad@x.com\"}",
                                     &s, e, sizeof(e)),
            OSY_ERR_INVALID);
        assert_null(s.failure);
}

static void write_client_needs_its_options(void **state)
{
        osy_ac_write_t *w = NULL;
        char e[OSY_ERRSTR_SIZE];
        struct osy_ac_write_opts o = {.base_url  = "http://127.0.0.1:1/ac/t",
                                      .api_token = "tok-secret",
                                      .tenant    = NULL};
        (void)state;
        assert_int_equal(osy_ac_write_new(&w, &o, e, sizeof(e)),
                         OSY_ERR_INVALID);
        assert_null(w);
        o.tenant = "t";
        assert_int_equal(osy_ac_write_new(&w, &o, e, sizeof(e)), OSY_OK);
        osy_ac_write_destroy(w);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(bulk_body_lists_each_contact_unsubscribes),
            cmocka_unit_test(bulk_body_limits),
            cmocka_unit_test(bulk_answers_are_classified),
            cmocka_unit_test(import_info_reports_completion_and_failures),
            cmocka_unit_test(write_client_needs_its_options),
        };
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
