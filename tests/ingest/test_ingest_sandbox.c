/*
 * test_ingest_sandbox.c - ac-ingest against the sandbox's AC: the
 * `register` command sets the webhook up idempotently (and repairs what
 * it finds), then the sandbox's own webhook deliveries (real
 * form-urlencoded POSTs) land on optsync.ac.events as the right envelopes.
 */
#include "osy_test.h"
#include "osy_test_kafka.h"
#include "osy_test_sandbox.h"
#include "ingest_harness.h"
#include "optsync/envelope.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RECS 256
#define PUBLIC "https://ingest.example.com"

static struct osy_test_kafka kafka;
static struct osy_test_sandbox sbx;
static struct ingest_proc ing;
static struct rec recs[MAX_RECS];

static int group_setup(void **state)
{
        (void)state;
        if (osy_test_kafka_start(&kafka, 1, INGEST_TEST_PARTITIONS))
                return -1;
        if (osy_test_sandbox_start(&sbx, NULL, NULL)) {
                osy_test_kafka_stop(&kafka);
                return -1;
        }
        return 0;
}

static int group_teardown(void **state)
{
        (void)state;
        osy_test_sandbox_stop(&sbx);
        osy_test_kafka_stop(&kafka);
        return 0;
}

static int case_teardown(void **state)
{
        (void)state;
        ingest_cleanup(&ing);
        return 0;
}

/* Load a fixture: tenant @p t (Api-Token @p key) with two lists and one
 * contact on both, plus @p hooks (a JSON array text, or NULL). */
static void fixture_key(const char *t, const char *key, const char *hooks)
{
        char fx[4096];
        char *resp = NULL;
        int st;

        snprintf(fx, sizeof(fx),
                 "{\"tenants\":{\"%s\":{\"ac\":{\"api_token\":\"%s\","
                 "\"timezone\":\"-06:00\",\"rate_per_s\":0,"
                 "\"lists\":[{\"id\":\"1\",\"name\":\"News\"},"
                 "{\"id\":\"2\",\"name\":\"Promo\"}],"
                 "\"tags\":[{\"id\":\"1\",\"tag\":\"added-to-salesforce-"
                 "contact\"}],"
                 "\"contacts\":[{\"id\":\"7\",\"email\":\"Ann.Lee@X.com\","
                 "\"tags\":[\"added-to-salesforce-contact\"],"
                 "\"lists\":{\"1\":1,\"2\":1}}],"
                 "\"webhooks\":%s}}}}",
                 t, key, hooks ? hooks : "[]");
        st = osy_test_sandbox_call(&sbx, "POST", "/sandbox/fixture", NULL, fx,
                                   &resp);
        if (st != 200)
                fail_msg("fixture: %d %s", st, resp ? resp : "");
        free(resp);
}

/* The same with the key the harness's tenant file gives @p t. */
static void fixture(const char *t, const char *hooks)
{
        char key[96];

        snprintf(key, sizeof(key), "api-%s-token", t);
        fixture_key(t, key, hooks);
}

/* Start ac-ingest with the sandbox as tenant @p t's AC account. */
static void start(const char *t)
{
        snprintf(ing.ac_base, sizeof(ing.ac_base), "%s/ac/%s", sbx.base_url, t);
        if (ingest_start(&ing, kafka.bootstrap, t, NULL))
                fail_msg("ac-ingest did not start (log %s)", ing.log);
}

/* GET the tenant's webhooks through the AC API. */
static cJSON *hooks(const char *t)
{
        char path[128], auth[128];
        const char *hdrs[] = {auth, NULL};
        char *resp         = NULL;
        cJSON *root, *arr;

        snprintf(path, sizeof(path), "/ac/%s/api/3/webhooks?limit=100", t);
        snprintf(auth, sizeof(auth), "Api-Token: api-%s-token", t);
        assert_int_equal(
            osy_test_sandbox_call(&sbx, "GET", path, hdrs, NULL, &resp), 200);
        root = cJSON_Parse(resp);
        free(resp);
        arr = cJSON_DetachItemFromObject(root, "webhooks");
        cJSON_Delete(root);
        assert_non_null(arr);
        return arr;
}

static const cJSON *hook_by_id(const cJSON *arr, const char *id)
{
        const cJSON *h;
        cJSON_ArrayForEach(h, arr)
        {
                const cJSON *v = cJSON_GetObjectItem(h, "id");
                if (cJSON_IsString(v) && !strcmp(v->valuestring, id))
                        return h;
        }
        return NULL;
}

static int names_count(const cJSON *h, const char *field)
{
        return cJSON_GetArraySize(cJSON_GetObjectItem(h, field));
}

/* ---- registration ---------------------------------------------------------
 */

static void register_creates_hook_then_unchanged(void **state)
{
        char *out, url[256];
        cJSON *arr;
        const cJSON *h;
        (void)state;

        fixture("reg", NULL);
        start("reg");
        assert_int_equal(ingest_register(&ing, PUBLIC, NULL, &out), 0);
        assert_non_null(strstr(out, "reg: webhook created for " PUBLIC
                                    "/webhooks/ac/reg/***"));
        assert_null(strstr(out, ing.token)); /* never printed */
        free(out);
        arr = hooks("reg");
        assert_int_equal(cJSON_GetArraySize(arr), 1);
        h = cJSON_GetArrayItem(arr, 0);
        snprintf(url, sizeof(url), PUBLIC "/webhooks/ac/reg/%s", ing.token);
        assert_string_equal(cJSON_GetObjectItem(h, "url")->valuestring, url);
        assert_int_equal(names_count(h, "events"), 6);
        assert_int_equal(names_count(h, "sources"), 4);
        assert_string_equal(cJSON_GetObjectItem(h, "listid")->valuestring, "0");
        cJSON_Delete(arr);

        /* Idempotent: a second run changes nothing. */
        assert_int_equal(ingest_register(&ing, PUBLIC, NULL, &out), 0);
        assert_non_null(strstr(out, "unchanged"));
        assert_null(strstr(out, "created"));
        free(out);
        arr = hooks("reg");
        assert_int_equal(cJSON_GetArraySize(arr), 1);
        cJSON_Delete(arr);
}

static void register_repairs_duplicates_stale_and_incomplete(void **state)
{
        char fx[4096], ours[256], *out;
        const char *const prune[] = {"--prune", NULL};
        const char *const dry[]   = {"--dry-run", NULL};
        const char *const only[]  = {"--tenant", "nobody", NULL};
        cJSON *arr;
        const cJSON *h;
        (void)state;

        snprintf(ours, sizeof(ours), PUBLIC "/webhooks/ac/rep/tok-rep-s3cret");
        snprintf(fx, sizeof(fx),
                 "[{\"id\":\"5\",\"name\":\"half\",\"url\":\"%s\","
                 "\"events\":[\"subscribe\"],\"sources\":[\"public\"]},"
                 "{\"id\":\"6\",\"name\":\"optsync\",\"url\":\"%s\","
                 "\"events\":[\"subscribe\",\"unsubscribe\",\"bounce\","
                 "\"contact_tag_added\",\"contact_tag_removed\",\"update\"],"
                 "\"sources\":[\"public\",\"admin\",\"api\",\"system\"]},"
                 "{\"id\":\"7\",\"name\":\"old\",\"url\":\"" PUBLIC
                 "/webhooks/ac/rep/old-token\",\"events\":[\"update\"],"
                 "\"sources\":[\"api\"]},"
                 "{\"id\":\"8\",\"name\":\"crm\",\"url\":\"https://crm."
                 "example.com/hook\",\"events\":[\"open\"],"
                 "\"sources\":[\"public\"]}]",
                 ours, ours);
        fixture("rep", fx);
        start("rep");

        /* --dry-run says what it would do and does nothing. */
        assert_int_equal(ingest_register(&ing, PUBLIC, dry, &out), 0);
        assert_non_null(strstr(out, "webhook 5 would be deleted (duplicate)"));
        free(out);
        arr = hooks("rep");
        assert_int_equal(cJSON_GetArraySize(arr), 4);
        cJSON_Delete(arr);

        /* The complete hook is kept, its half-made twin deleted, the one
         * with an old token only reported, someone else's left alone. */
        assert_int_equal(ingest_register(&ing, PUBLIC, NULL, &out), 0);
        assert_non_null(strstr(out, "webhook 5 deleted (duplicate)"));
        assert_non_null(strstr(out, "webhook 7 points here with another"));
        assert_non_null(strstr(out, "webhook 6 unchanged"));
        assert_null(strstr(out, "old-token"));
        free(out);
        arr = hooks("rep");
        assert_int_equal(cJSON_GetArraySize(arr), 3);
        assert_null(hook_by_id(arr, "5"));
        assert_non_null(hook_by_id(arr, "8"));
        cJSON_Delete(arr);

        /* --prune removes the stale one. */
        assert_int_equal(ingest_register(&ing, PUBLIC, prune, &out), 0);
        assert_non_null(strstr(out, "webhook 7 deleted (old token)"));
        free(out);

        /* Someone narrows our hook: the next run puts it right. */
        char auth[64];
        const char *hdrs[] = {auth, NULL};
        char *resp         = NULL;
        snprintf(auth, sizeof(auth), "Api-Token: api-rep-token");
        assert_int_equal(
            osy_test_sandbox_call(&sbx, "PUT", "/ac/rep/api/3/webhooks/6", hdrs,
                                  "{\"webhook\":{\"events\":[\"update\"],"
                                  "\"listid\":\"2\"}}",
                                  &resp),
            200);
        free(resp);
        assert_int_equal(ingest_register(&ing, PUBLIC, NULL, &out), 0);
        assert_non_null(strstr(out, "webhook 6 updated"));
        free(out);
        arr = hooks("rep");
        h   = hook_by_id(arr, "6");
        assert_non_null(h);
        assert_int_equal(names_count(h, "events"), 6);
        assert_string_equal(cJSON_GetObjectItem(h, "listid")->valuestring, "0");
        assert_int_equal(cJSON_GetArraySize(arr), 2);
        cJSON_Delete(arr);

        /* An unknown --tenant is a usage error. */
        assert_int_equal(ingest_register(&ing, PUBLIC, only, &out), 2);
        free(out);
}

/* AC lists our hook twice: once as itself, once with an id that is a
 * path ("../contacts/7"). Before, the run deleted "the duplicate":
 * DELETE /api/3/webhooks/../contacts/7, which curl sends as
 * DELETE /api/3/contacts/7. Now an id that is not digits is left alone. */
static void register_leaves_unreadable_hook_ids_alone(void **state)
{
        char ours[256], hook[1024], body[2300], rule[2600], *out, *resp = NULL;
        char auth[64];
        const char *hdrs[] = {auth, NULL};
        (void)state;

        snprintf(ours, sizeof(ours), PUBLIC "/webhooks/ac/rid/tok-rid-s3cret");
        snprintf(hook, sizeof(hook),
                 "\"url\":\"%s\",\"events\":[\"subscribe\",\"unsubscribe\","
                 "\"bounce\",\"contact_tag_added\",\"contact_tag_removed\","
                 "\"update\"],\"sources\":[\"public\",\"admin\",\"api\","
                 "\"system\"],\"listid\":\"0\"",
                 ours);
        snprintf(body, sizeof(body), "[{\"id\":\"6\",\"name\":\"optsync\",%s}]",
                 hook);
        fixture("rid", body);
        start("rid");
        snprintf(body, sizeof(body),
                 "{\"webhooks\":[{\"id\":\"6\",\"name\":\"optsync\",%s},"
                 "{\"id\":\"../contacts/7\",\"name\":\"optsync\",%s},"
                 "{\"id\":12.6,\"name\":\"optsync\",%s}]}",
                 hook, hook, hook);
        snprintf(rule, sizeof(rule),
                 "{\"endpoint\":\"ac.webhooks\",\"method\":\"GET\","
                 "\"kind\":\"status\",\"status\":200,\"count\":1,"
                 "\"body\":%s}",
                 body);
        assert_int_equal(osy_test_sandbox_call(&sbx, "POST", "/sandbox/faults",
                                               NULL, rule, NULL),
                         201);
        assert_int_equal(ingest_register(&ing, PUBLIC, NULL, &out), 0);
        if (strstr(out, "deleted"))
                fail_msg("register deleted something:\n%s", out);
        assert_non_null(strstr(out, "webhook 6 unchanged"));
        assert_non_null(strstr(out, "unreadable id left alone"));
        free(out);
        snprintf(auth, sizeof(auth), "Api-Token: api-rid-token");
        assert_int_equal(osy_test_sandbox_call(&sbx, "GET",
                                               "/ac/rid/api/3/contacts/7", hdrs,
                                               NULL, &resp),
                         200);
        free(resp);
}

static void register_refused_token_reported(void **state)
{
        char *out;
        (void)state;

        /* The account's key differs from the tenant file's. */
        fixture_key("nokey", "another-key-entirely", NULL);
        start("nokey");
        assert_int_equal(ingest_register(&ing, PUBLIC, NULL, &out), 1);
        assert_non_null(strstr(out, "nokey: FAILED: AC refused the "
                                    "tenant's Api-Token"));
        assert_null(strstr(out, "api-nokey-token"));
        assert_null(strstr(out, ing.token));
        free(out);
}

/* ---- the sandbox delivering webhooks ---------------------------------------
 */

/* Register ac-ingest's real URL in the sandbox for tenant @p t. */
static void register_live(const char *t)
{
        char pub[64], *out;

        fixture(t, NULL);
        start(t);
        snprintf(pub, sizeof(pub), "http://127.0.0.1:%d", ing.port);
        if (ingest_register(&ing, pub, NULL, &out))
                fail_msg("register: %s", out);
        free(out);
}

static void control(const char *t, const char *what, const char *body)
{
        char path[128], *resp = NULL;
        int st;

        snprintf(path, sizeof(path), "/sandbox/ac/%s/%s", t, what);
        st = osy_test_sandbox_call(&sbx, "POST", path, NULL, body, &resp);
        if (st != 200)
                fail_msg("%s: %d %s", what, st, resp ? resp : "");
        free(resp);
}

/* Wait for the deliveries, then check every one got 200 from us. */
static int deliveries_all_200(const char *t)
{
        char path[128], *resp = NULL;
        const cJSON *d;
        cJSON *root;
        int n = 0;

        control(t, "webhooks/flush", "{\"timeout_ms\":10000}");
        snprintf(path, sizeof(path), "/sandbox/ac/%s/webhooks/deliveries", t);
        assert_int_equal(
            osy_test_sandbox_call(&sbx, "GET", path, NULL, NULL, &resp), 200);
        root = cJSON_Parse(resp);
        free(resp);
        cJSON_ArrayForEach(d, cJSON_GetObjectItem(root, "deliveries"))
        {
                const cJSON *st = cJSON_GetObjectItem(d, "http_status");
                if (!cJSON_IsNumber(st) || st->valueint != 200)
                        fail_msg("delivery %s: %s",
                                 cJSON_GetObjectItem(d, "type")->valuestring,
                                 cJSON_PrintUnformatted(d));
                n++;
        }
        cJSON_Delete(root);
        return n;
}

static void sandbox_deliveries_land_as_envelopes(void **state)
{
        static const struct {
                const char *what, *body;
                osy_ac_kind_t kind;
                osy_initiator_t by;
        } steps[] = {
            {"unsubscribe",
             "{\"email\":\"ann.lee@x.com\",\"list\":\"1\",\"reason\":\"Too "
             "many\",\"campaign\":42}",
             OSY_AC_UNSUBSCRIBE, OSY_INIT_PUBLIC},
            {"subscribe", "{\"contact\":\"7\",\"list\":\"1\"}",
             OSY_AC_SUBSCRIBE, OSY_INIT_ADMIN},
            {"tag",
             "{\"contact\":\"7\",\"tag\":\"created-from-salesforce-lead\","
             "\"source\":\"system\"}",
             OSY_AC_TAG_ADDED, OSY_INIT_SYSTEM},
            {"untag",
             "{\"contact\":\"7\",\"tag\":\"created-from-salesforce-"
             "lead\"}",
             OSY_AC_TAG_REMOVED, OSY_INIT_ADMIN},
            {"update", "{\"contact\":\"7\",\"lastName\":\"Stone\"}",
             OSY_AC_UPDATE, OSY_INIT_ADMIN},
            {"bounce",
             "{\"email\":\"ann.lee@x.com\",\"type\":\"hard\",\"campaign\":11}",
             OSY_AC_BOUNCE, OSY_INIT_SYSTEM}};
        const size_t ns = sizeof(steps) / sizeof(steps[0]);
        (void)state;

        register_live("live");
        for (size_t i = 0; i < ns; i++)
                control("live", steps[i].what, steps[i].body);
        assert_int_equal(deliveries_all_200("live"), (int)ns);
        size_t n = consume_tenant(kafka.bootstrap, "live", ns, 500, 15000, recs,
                                  MAX_RECS);
        assert_int_equal(n, ns);
        for (size_t i = 0; i < n; i++) {
                struct osy_msg m;
                char errstr[OSY_ERRSTR_SIZE];
                if (osy_msg_decode(recs[i].value, recs[i].len, &m, errstr,
                                   sizeof(errstr)))
                        fail_msg("%s: %s", errstr, recs[i].value);
                assert_string_equal(m.email, "ann.lee@x.com");
                assert_string_equal(m.ac_event.contact_id, "7");
                assert_int_equal(m.ac_event.kind, steps[i].kind);
                assert_int_equal(m.ac_event.initiated_by, steps[i].by);
                if (i == 0) {
                        assert_string_equal(m.ac_event.list_id, "1");
                        assert_string_equal(m.ac_event.campaign_id, "42");
                        assert_int_equal(m.ac_event.has_tags, 1);
                }
                if (i == 2)
                        assert_string_equal(m.ac_event.tag,
                                            "created-from-salesforce-lead");
                if (i == 5)
                        assert_int_equal(m.ac_event.bounce_type,
                                         OSY_BOUNCE_HARD);
                osy_msg_clear(&m);
        }
        recs_free(recs, n);
}

static void sandbox_duplicate_delivery_keeps_one_id(void **state)
{
        (void)state;

        register_live("sdup");
        control("sdup", "webhooks/duplicate", "{\"count\":1}");
        control("sdup", "unsubscribe",
                "{\"email\":\"ann.lee@x.com\",\"list\":\"2\"}");
        assert_int_equal(deliveries_all_200("sdup"), 2);
        size_t n = consume_tenant(kafka.bootstrap, "sdup", 2, 500, 15000, recs,
                                  MAX_RECS);
        assert_int_equal(n, 2);
        assert_string_equal(recs[0].id, recs[1].id);
        recs_free(recs, n);
}

static void sandbox_public_unsubscribe_list_array_form(void **state)
{
        (void)state;

        register_live("arr");
        control("arr", "settings", "{\"public_unsubscribe_list\":\"array\"}");
        control("arr", "unsubscribe", "{\"contact\":\"7\",\"list\":\"all\"}");
        assert_int_equal(deliveries_all_200("arr"), 2);
        size_t n = consume_tenant(kafka.bootstrap, "arr", 2, 500, 15000, recs,
                                  MAX_RECS);
        assert_int_equal(n, 2);
        /* list=0&list[0][id]=N: the real list wins over "0". */
        int seen1 = 0, seen2 = 0;
        for (size_t i = 0; i < n; i++) {
                seen1 |= strstr(recs[i].value, "\"list_id\":\"1\"") != NULL;
                seen2 |= strstr(recs[i].value, "\"list_id\":\"2\"") != NULL;
        }
        assert_true(seen1 && seen2);
        recs_free(recs, n);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_teardown(register_creates_hook_then_unchanged,
                                      case_teardown),
            cmocka_unit_test_teardown(
                register_repairs_duplicates_stale_and_incomplete,
                case_teardown),
            cmocka_unit_test_teardown(register_leaves_unreadable_hook_ids_alone,
                                      case_teardown),
            cmocka_unit_test_teardown(register_refused_token_reported,
                                      case_teardown),
            cmocka_unit_test_teardown(sandbox_deliveries_land_as_envelopes,
                                      case_teardown),
            cmocka_unit_test_teardown(sandbox_duplicate_delivery_keeps_one_id,
                                      case_teardown),
            cmocka_unit_test_teardown(
                sandbox_public_unsubscribe_list_array_form, case_teardown),
        };
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
