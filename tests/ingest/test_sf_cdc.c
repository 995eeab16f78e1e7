/*
 * test_sf_cdc.c - the CometD/CDC message parser and request builders of
 * sf-ingest: Salesforce's documented shapes, advice, error strings, and
 * what the parser does with malformed or hostile input.
 */
#include "osy_test.h"
#include "cdc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* A connect answer as Salesforce sends it: one event, then the reply. */
static const char connect_reply[] =
    "[{\"data\":{\"schema\":\"IeRuaY6cbI_HsV8Rv1Mc5g\",\"payload\":{"
    "\"ChangeEventHeader\":{\"entityName\":\"Contact\",\"recordIds\":["
    "\"0035g00000AbCdEAAZ\",\"0035g00000AbCdFAAZ\"],\"changeType\":"
    "\"UPDATE\",\"changeOrigin\":\"com/salesforce/api/rest/60.0;client="
    "optsync\",\"transactionKey\":\"0002343d-9d90-e395-ed20-cf416ba652ad\","
    "\"sequenceNumber\":1,\"commitTimestamp\":1795666445123,"
    "\"commitNumber\":10951666463431,\"commitUser\":\"0055g000003ufR3AAI\","
    "\"changedFields\":[\"HasOptedOutOfEmail\",\"LastModifiedDate\"]},"
    "\"HasOptedOutOfEmail\":true,\"LastModifiedDate\":"
    "\"2026-11-26T04:14:05.000Z\"},\"event\":{\"replayId\":48213}},"
    "\"channel\":\"/data/ContactChangeEvent\"},"
    "{\"clientId\":\"3ll1abc\",\"channel\":\"/meta/connect\",\"id\":\"3\","
    "\"successful\":true,\"advice\":{\"reconnect\":\"retry\",\"interval\":0,"
    "\"timeout\":110000}}]";

static void parse_ok(const char *json, struct osy_sfi_reply *r)
{
        char e[OSY_ERRSTR_SIZE] = "";

        if (osy_sfi_reply_parse(json, strlen(json), r, e, sizeof(e)))
                fail_msg("parse failed: %s", e);
}

/* Wraps a payload into a one-event answer on @p channel. */
static char *event_json(const char *channel, const char *header,
                        const char *body_fields, const char *replay)
{
        size_t n = strlen(header) + strlen(body_fields) + strlen(channel) +
                   strlen(replay) + 200;
        char *s = malloc(n);

        snprintf(s, n,
                 "[{\"channel\":\"%s\",\"data\":{\"payload\":{"
                 "\"ChangeEventHeader\":%s%s%s},\"event\":{\"replayId\":%s}}}]",
                 channel, header, body_fields[0] ? "," : "", body_fields,
                 replay);
        return s;
}

static void parse_event(const char *header, const char *body,
                        const char *replay, struct osy_sfi_reply *r)
{
        char *s = event_json("/data/LeadChangeEvent", header, body, replay);

        parse_ok(s, r);
        free(s);
        assert_int_equal(r->event_cnt, 1);
}

#define HDR(type, ids)                                                         \
        "{\"entityName\":\"Lead\",\"recordIds\":" ids                          \
        ",\"changeType\":\"" type                                              \
        "\",\"commitTimestamp\":1795666445123,\"changedFields\":[]}"

/* ---- answers ---------------------------------------------------------- */

static void handshake_reply_gives_client_and_advice(void **state)
{
        struct osy_sfi_reply r;
        const struct osy_sfi_meta *m;
        (void)state;

        parse_ok("[{\"ext\":{\"replay\":true,\"payload.format\":true},"
                 "\"minimumVersion\":\"1.0\",\"clientId\":\"3ll1xyz\","
                 "\"supportedConnectionTypes\":[\"long-polling\"],\"channel\":"
                 "\"/meta/handshake\",\"id\":\"1\",\"version\":\"1.0\","
                 "\"successful\":true,\"advice\":{\"reconnect\":\"retry\","
                 "\"interval\":0,\"timeout\":110000}}]",
                 &r);
        assert_int_equal(r.meta_cnt, 1);
        assert_int_equal(r.event_cnt, 0);
        m = osy_sfi_reply_meta(&r, "/meta/handshake");
        assert_non_null(m);
        assert_true(m->successful);
        assert_string_equal(m->client_id, "3ll1xyz");
        assert_int_equal(m->advice.reconnect, OSY_SFI_RECONNECT_RETRY);
        assert_int_equal(m->advice.interval_ms, 0);
        assert_int_equal(m->advice.timeout_ms, 110000);
        assert_null(osy_sfi_reply_meta(&r, "/meta/connect"));
        osy_sfi_reply_clear(&r);
}

static void connect_reply_with_event_is_read_in_full(void **state)
{
        struct osy_sfi_reply r;
        const struct osy_sfi_event *ev;
        (void)state;

        parse_ok(connect_reply, &r);
        assert_int_equal(r.event_cnt, 1);
        assert_int_equal(r.meta_cnt, 1);
        ev = &r.events[0];
        assert_null(ev->error);
        assert_string_equal(ev->channel, "/data/ContactChangeEvent");
        assert_string_equal(ev->replay_id, "48213");
        assert_int_equal(ev->object, OSY_SF_CONTACT);
        assert_int_equal(ev->change_type, OSY_SFI_CT_UPDATE);
        assert_int_equal(ev->record_cnt, 2);
        assert_string_equal(ev->record_ids[1], "0035g00000AbCdFAAZ");
        assert_int_equal(ev->changed_cnt, 2);
        assert_string_equal(ev->changed_fields[0], "HasOptedOutOfEmail");
        assert_int_equal(ev->commit_ts, 1795666445123LL);
        assert_string_equal(ev->change_origin,
                            "com/salesforce/api/rest/60.0;client=optsync");
        assert_int_equal(ev->opt_out, OSY_TRI_TRUE);
        assert_int_equal(ev->email_present, 0);
        assert_true(r.metas[0].successful);
        osy_sfi_reply_clear(&r);
}

static void html_503_page_is_refused_with_reason(void **state)
{
        const char *page = "<html><head><title>503 Service Unavailable"
                           "</title></head><body>busy</body></html>";
        struct osy_sfi_reply r;
        char e[OSY_ERRSTR_SIZE] = "";
        (void)state;

        assert_int_equal(
            osy_sfi_reply_parse(page, strlen(page), &r, e, sizeof(e)),
            OSY_ERR_INVALID);
        assert_non_null(strstr(e, "not JSON"));
        assert_int_equal(r.event_cnt + r.meta_cnt, 0);
        assert_int_equal(osy_sfi_reply_parse("{\"a\":1}", 7, &r, e, sizeof(e)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(e, "not a JSON array"));
        assert_int_equal(osy_sfi_reply_parse("", 0, &r, e, sizeof(e)),
                         OSY_ERR_INVALID);
        /* Trailing garbage after a valid array is not an answer either. */
        assert_int_equal(osy_sfi_reply_parse("[] x", 4, &r, e, sizeof(e)),
                         OSY_ERR_INVALID);
}

static void items_without_channel_are_counted_not_kept(void **state)
{
        struct osy_sfi_reply r;
        (void)state;

        parse_ok("[1,\"x\",{},{\"channel\":5},{\"channel\":\"nope\"},"
                 "{\"channel\":\"/meta/connect\",\"successful\":false,"
                 "\"error\":\"403::Unknown client\",\"advice\":{\"reconnect\":"
                 "\"handshake\",\"interval\":0}}]",
                 &r);
        assert_int_equal(r.skipped, 5);
        assert_int_equal(r.meta_cnt, 1);
        assert_false(r.metas[0].successful);
        assert_string_equal(r.metas[0].error, "403::Unknown client");
        assert_int_equal(r.metas[0].advice.reconnect,
                         OSY_SFI_RECONNECT_HANDSHAKE);
        assert_int_equal(r.metas[0].advice.timeout_ms, -1);
        osy_sfi_reply_clear(&r);
}

static void malformed_event_keeps_what_it_can(void **state)
{
        struct osy_sfi_reply r;
        (void)state;

        /* No commitTimestamp, and a replay id as a string. */
        parse_ok("[{\"channel\":\"/data/ContactChangeEvent\",\"data\":{"
                 "\"event\":{\"replayId\":\"77\"},\"payload\":{"
                 "\"ChangeEventHeader\":{\"entityName\":\"Contact\","
                 "\"changeType\":\"UPDATE\",\"recordIds\":["
                 "\"003000000000001\"],\"changedFields\":["
                 "\"HasOptedOutOfEmail\"]},\"HasOptedOutOfEmail\":false}}}]",
                 &r);
        assert_non_null(r.events[0].error);
        assert_non_null(strstr(r.events[0].error, "commitTimestamp"));
        assert_string_equal(r.events[0].replay_id, "77");
        assert_int_equal(r.events[0].record_cnt, 1);
        assert_int_equal(r.events[0].object, OSY_SF_CONTACT);
        osy_sfi_reply_clear(&r);
}

static void bad_record_ids_and_replay_ids_are_errors(void **state)
{
        struct osy_sfi_reply r;
        (void)state;

        parse_event(HDR("UPDATE", "[\"00Q' OR 1=1\"]"), "", "1", &r);
        assert_non_null(strstr(r.events[0].error, "recordIds[0]"));
        assert_int_equal(r.events[0].record_cnt, 0);
        osy_sfi_reply_clear(&r);

        parse_event(HDR("UPDATE", "[\"00Q000000000001\"]"), "", "-5", &r);
        assert_non_null(strstr(r.events[0].error, "replayId"));
        assert_null(r.events[0].replay_id);
        osy_sfi_reply_clear(&r);

        /* Beyond 2^53 a JSON number is not exact: refused, not rounded. */
        parse_event(HDR("UPDATE", "[\"00Q000000000001\"]"), "",
                    "18014398509481985", &r);
        assert_non_null(r.events[0].error);
        osy_sfi_reply_clear(&r);

        /* As a string, only what the next subscribe can send back as the
         * same number: "-2" would replay 72 h, "-1" skip to the tip, and
         * the rest could not be sent at all (both channels reset). */
        static const char *const bad_strings[] = {"\"-2\"",
                                                  "\"-1\"",
                                                  "\"+7\"",
                                                  "\"1.5\"",
                                                  "\"\"",
                                                  "\"7 \"",
                                                  "\"99999999999999999999\"",
                                                  "\"9007199254740993\"",
                                                  "\"abc\""};
        for (size_t i = 0; i < sizeof(bad_strings) / sizeof(*bad_strings);
             i++) {
                parse_event(HDR("UPDATE", "[\"00Q000000000001\"]"), "",
                            bad_strings[i], &r);
                if (!r.events[0].error ||
                    !strstr(r.events[0].error, "replayId") ||
                    r.events[0].replay_id)
                        fail_msg("replay id %s accepted", bad_strings[i]);
                osy_sfi_reply_clear(&r);
        }
        parse_event(HDR("UPDATE", "[\"00Q000000000001\"]"), "",
                    "\"9007199254740991\"", &r);
        assert_null(r.events[0].error);
        assert_string_equal(r.events[0].replay_id, "9007199254740991");
        osy_sfi_reply_clear(&r);

        parse_event(HDR("UPDATE", "[]"), "", "3", &r);
        assert_non_null(strstr(r.events[0].error, "empty"));
        osy_sfi_reply_clear(&r);

        parse_event(HDR("FROBNICATE", "[\"00Q000000000001\"]"), "", "3", &r);
        assert_non_null(strstr(r.events[0].error, "changeType"));
        osy_sfi_reply_clear(&r);
}

static void too_many_record_ids_is_an_error(void **state)
{
        size_t n   = (OSY_SFI_MAX_RECORD_IDS + 1) * 20 + 200;
        char *hdr  = malloc(n);
        size_t off = 0;
        struct osy_sfi_reply r;
        (void)state;

        off += (size_t)snprintf(hdr + off, n - off,
                                "{\"entityName\":\"Lead\",\"changeType\":"
                                "\"UPDATE\",\"commitTimestamp\":1,"
                                "\"recordIds\":[");
        for (int i = 0; i <= OSY_SFI_MAX_RECORD_IDS; i++)
                off += (size_t)snprintf(hdr + off, n - off, "%s\"00Q%012d\"",
                                        i ? "," : "", i);
        snprintf(hdr + off, n - off, "]}");
        parse_event(hdr, "", "1", &r);
        assert_non_null(strstr(r.events[0].error, "more than"));
        assert_int_equal(r.events[0].record_cnt, 0);
        osy_sfi_reply_clear(&r);
        free(hdr);
}

static void body_fields_and_their_types(void **state)
{
        struct osy_sfi_reply r;
        (void)state;

        parse_event(HDR("UPDATE", "[\"00Q000000000001\"]"),
                    "\"IsConverted\":true,\"ConvertedContactId\":"
                    "\"003000000000009\",\"Email\":null",
                    "9", &r);
        assert_null(r.events[0].error);
        assert_int_equal(r.events[0].is_converted, OSY_TRI_TRUE);
        assert_string_equal(r.events[0].converted_contact_id,
                            "003000000000009");
        assert_int_equal(r.events[0].email_present, 1);
        assert_null(r.events[0].email);
        assert_int_equal(r.events[0].opt_out, OSY_TRI_UNSET);
        osy_sfi_reply_clear(&r);

        parse_event(HDR("CREATE", "[\"00Q000000000001\"]"),
                    "\"HasOptedOutOfEmail\":\"yes\"", "9", &r);
        assert_non_null(strstr(r.events[0].error, "HasOptedOutOfEmail"));
        osy_sfi_reply_clear(&r);

        parse_event(HDR("CREATE", "[\"00Q000000000001\"]"),
                    "\"Email\":\"A@B.C\",\"HasOptedOutOfEmail\":false", "9",
                    &r);
        assert_string_equal(r.events[0].email, "A@B.C");
        assert_int_equal(r.events[0].opt_out, OSY_TRI_FALSE);
        osy_sfi_reply_clear(&r);
}

static void gap_overflow_needs_no_record_ids(void **state)
{
        struct osy_sfi_reply r;
        (void)state;

        parse_event(HDR("GAP_OVERFLOW", "[]"), "", "12", &r);
        assert_null(r.events[0].error);
        assert_int_equal(r.events[0].change_type, OSY_SFI_CT_GAP_OVERFLOW);
        assert_true(osy_sfi_change_type_is_gap(r.events[0].change_type));
        assert_false(osy_sfi_change_type_is_gap(OSY_SFI_CT_UPDATE));
        osy_sfi_reply_clear(&r);
}

static void other_entities_parse_without_object(void **state)
{
        struct osy_sfi_reply r;
        (void)state;

        parse_ok("[{\"channel\":\"/data/ChangeEvents\",\"data\":{\"event\":{"
                 "\"replayId\":5},\"payload\":{\"ChangeEventHeader\":{"
                 "\"entityName\":\"Account\",\"changeType\":\"CREATE\","
                 "\"recordIds\":[\"001000000000001\"],\"commitTimestamp\":1}}"
                 "}}]",
                 &r);
        assert_null(r.events[0].error);
        assert_int_equal(r.events[0].object, OSY_SF_OBJ_NONE);
        assert_string_equal(r.events[0].entity_name, "Account");
        osy_sfi_reply_clear(&r);
}

/* ---- error strings, echoes, ids --------------------------------------- */

static void documented_error_strings(void **state)
{
        struct osy_sfi_meta m = {0};
        (void)state;

        assert_true(osy_sfi_error_is_invalid_replay(
            "400::The replayId {48213} you provided was invalid.  Please "
            "provide a valid ID, -2 to replay all events, or -1 to replay "
            "only new events."));
        assert_false(osy_sfi_error_is_invalid_replay("403::Unknown client"));
        assert_false(osy_sfi_error_is_invalid_replay(
            "400::Channel /data/Foo does not exist"));
        assert_false(osy_sfi_error_is_invalid_replay(NULL));

        m.error = "401::Authentication invalid";
        assert_true(osy_sfi_meta_is_auth_error(&m));
        m.error = "403::Unknown client";
        assert_false(osy_sfi_meta_is_auth_error(&m));
        /* A refused handshake hides the 401 in ext.sfdc.failureReason. */
        m.error          = "403::Handshake denied";
        m.failure_reason = "401::Authentication invalid";
        assert_true(osy_sfi_meta_is_auth_error(&m));
}

static void echo_is_our_client_only(void **state)
{
        (void)state;
        assert_true(osy_sfi_origin_is_client(
            "com/salesforce/api/rest/60.0;client=optsync", "optsync"));
        assert_true(osy_sfi_origin_is_client(
            "com/salesforce/api/rest/60.0;foo=1;client=optsync;x=y",
            "optsync"));
        assert_false(osy_sfi_origin_is_client(
            "com/salesforce/api/rest/60.0;client=optsync2", "optsync"));
        assert_false(osy_sfi_origin_is_client(
            "com/salesforce/api/rest/60.0;client=other", "optsync"));
        assert_false(osy_sfi_origin_is_client("com/salesforce/api/rest/60.0",
                                              "optsync"));
        assert_false(osy_sfi_origin_is_client("client=optsync", "optsync"));
        assert_false(osy_sfi_origin_is_client(NULL, "optsync"));
        assert_false(osy_sfi_origin_is_client("x;client=", ""));
}

static void salesforce_ids(void **state)
{
        (void)state;
        assert_true(osy_sfi_id_valid("003000000000001"));
        assert_true(osy_sfi_id_valid("0035g00000AbCdEAAZ"));
        assert_false(osy_sfi_id_valid("0035g00000AbCdEAA"));   /* 17 */
        assert_false(osy_sfi_id_valid("0035g00000AbCdEAAZZ")); /* 19 */
        assert_false(osy_sfi_id_valid("003000000000-01"));
        assert_false(osy_sfi_id_valid(""));
        assert_false(osy_sfi_id_valid(NULL));
}

/* ---- requests --------------------------------------------------------- */

static void handshake_request_asks_for_replay(void **state)
{
        char *s = osy_sfi_req_handshake(1);
        cJSON *a, *m;
        (void)state;

        assert_non_null(s);
        a = cJSON_Parse(s);
        m = cJSON_GetArrayItem(a, 0);
        assert_string_equal(cJSON_GetObjectItem(m, "channel")->valuestring,
                            "/meta/handshake");
        assert_true(cJSON_IsTrue(
            cJSON_GetObjectItem(cJSON_GetObjectItem(m, "ext"), "replay")));
        assert_string_equal(
            cJSON_GetArrayItem(
                cJSON_GetObjectItem(m, "supportedConnectionTypes"), 0)
                ->valuestring,
            "long-polling");
        assert_string_equal(cJSON_GetObjectItem(m, "id")->valuestring, "1");
        cJSON_Delete(a);
        free(s);
}

static void subscribe_request_keys_replay_by_channel(void **state)
{
        const char *ch[] = {OSY_SFI_CHANNEL_CONTACT, OSY_SFI_CHANNEL_LEAD};
        const char *rp[] = {"48213", "-1"};
        uint64_t id      = 7;
        char *s          = osy_sfi_req_subscribe("cid", ch, rp, 2, &id);
        cJSON *a, *m, *map;
        (void)state;

        assert_non_null(s);
        assert_int_equal(id, 9);
        a = cJSON_Parse(s);
        assert_int_equal(cJSON_GetArraySize(a), 2);
        m = cJSON_GetArrayItem(a, 0);
        assert_string_equal(cJSON_GetObjectItem(m, "subscription")->valuestring,
                            OSY_SFI_CHANNEL_CONTACT);
        assert_string_equal(cJSON_GetObjectItem(m, "clientId")->valuestring,
                            "cid");
        map = cJSON_GetObjectItem(cJSON_GetObjectItem(m, "ext"), "replay");
        /* The key is the channel, the id a JSON number. */
        assert_true(cJSON_IsNumber(
            cJSON_GetObjectItemCaseSensitive(map, OSY_SFI_CHANNEL_CONTACT)));
        assert_int_equal(
            cJSON_GetObjectItemCaseSensitive(map, OSY_SFI_CHANNEL_CONTACT)
                ->valuedouble,
            48213);
        m   = cJSON_GetArrayItem(a, 1);
        map = cJSON_GetObjectItem(cJSON_GetObjectItem(m, "ext"), "replay");
        assert_int_equal(
            cJSON_GetObjectItemCaseSensitive(map, OSY_SFI_CHANNEL_LEAD)
                ->valuedouble,
            -1);
        cJSON_Delete(a);
        free(s);

        rp[0] = "12abc";
        assert_null(osy_sfi_req_subscribe("cid", ch, rp, 2, &id));
        rp[0] = "-3";
        assert_null(osy_sfi_req_subscribe("cid", ch, rp, 2, &id));
}

static void connect_and_disconnect_requests(void **state)
{
        char *s = osy_sfi_req_connect("cid", 3);
        cJSON *a, *m;
        (void)state;

        a = cJSON_Parse(s);
        m = cJSON_GetArrayItem(a, 0);
        assert_string_equal(cJSON_GetObjectItem(m, "channel")->valuestring,
                            "/meta/connect");
        assert_string_equal(
            cJSON_GetObjectItem(m, "connectionType")->valuestring,
            "long-polling");
        assert_string_equal(cJSON_GetObjectItem(m, "clientId")->valuestring,
                            "cid");
        cJSON_Delete(a);
        free(s);
        s = osy_sfi_req_disconnect("cid", 4);
        assert_non_null(strstr(s, "\"/meta/disconnect\""));
        free(s);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(handshake_reply_gives_client_and_advice),
            cmocka_unit_test(connect_reply_with_event_is_read_in_full),
            cmocka_unit_test(html_503_page_is_refused_with_reason),
            cmocka_unit_test(items_without_channel_are_counted_not_kept),
            cmocka_unit_test(malformed_event_keeps_what_it_can),
            cmocka_unit_test(bad_record_ids_and_replay_ids_are_errors),
            cmocka_unit_test(too_many_record_ids_is_an_error),
            cmocka_unit_test(body_fields_and_their_types),
            cmocka_unit_test(gap_overflow_needs_no_record_ids),
            cmocka_unit_test(other_entities_parse_without_object),
            cmocka_unit_test(documented_error_strings),
            cmocka_unit_test(echo_is_our_client_only),
            cmocka_unit_test(salesforce_ids),
            cmocka_unit_test(handshake_request_asks_for_replay),
            cmocka_unit_test(subscribe_request_keys_replay_by_channel),
            cmocka_unit_test(connect_and_disconnect_requests),
        };

        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
