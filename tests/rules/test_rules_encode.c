/*
 * test_rules_encode.c - the hand-written JSON writer behind osy_msg_encode()
 * (it replaced a cJSON tree for the rules worker's throughput): its bytes
 * must be exactly what cJSON prints for the same members, with escapes,
 * UTF-8 and every number range, and must decode back to the same message.
 */
#include "osy_test.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optsync/envelope.h"
#include "rules_decide.h"

#define T0 INT64_C(1795666380000)
#define CAUSE "0123456789abcdef0123456789abcdef"

/* Text with every escape cJSON makes and UTF-8 it must leave alone. */
static const char tricky[] =
    "quote \" backslash \\ slash / tab \t nl \n cr \r bs \b ff \f "
    "ctl \x01\x1f del \x7f e\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac "
    "\xf0\x9f\x98\x80 end";

static void set(char **field, const char *v)
{
        assert_int_equal(osy_msg_strset(field, v), OSY_OK);
}

static void envelope(struct osy_msg *m, osy_msg_type_t type, osy_source_t src)
{
        char err[OSY_ERRSTR_SIZE];

        osy_msg_init(m, type);
        assert_int_equal(osy_msg_set_envelope(m, "acme", "Ann.O@Example.COM",
                                              src, T0, err, sizeof(err)),
                         OSY_OK);
}

/*
 * The oracle: cJSON parses the encoding and prints it again; for the same
 * members in the same order that is exactly what the old cJSON encoder
 * produced. Then decode and encode again: the same bytes.
 */
static void check(const struct osy_msg *m)
{
        char err[OSY_ERRSTR_SIZE] = "";
        char *json = NULL, *again = NULL, *printed;
        size_t len = 0, len2 = 0;
        struct osy_msg back;
        cJSON *root;

        if (osy_msg_encode(m, &json, &len, err, sizeof(err)) != OSY_OK)
                fail_msg("encode: %s", err);
        assert_int_equal(strlen(json), len);
        root = cJSON_Parse(json);
        assert_non_null(root);
        printed = cJSON_PrintUnformatted(root);
        assert_non_null(printed);
        assert_string_equal(json, printed);
        cJSON_free(printed);
        cJSON_Delete(root);

        assert_int_equal(osy_msg_decode(json, len, &back, err, sizeof(err)),
                         OSY_OK);
        assert_int_equal(osy_msg_encode(&back, &again, &len2, err, sizeof(err)),
                         OSY_OK);
        assert_int_equal(len2, len);
        assert_memory_equal(again, json, len);
        osy_msg_clear(&back);
        free(again);
        free(json);
}

static void audit_detail_escapes_and_utf8(void **state)
{
        struct osy_msg m, back;
        char err[OSY_ERRSTR_SIZE] = "";
        char *json                = NULL;
        size_t len;
        (void)state;

        envelope(&m, OSY_MSG_AUDIT, OSY_SRC_RULES);
        m.audit.stage   = OSY_STAGE_RULES;
        m.audit.rule    = OSY_RULE_R2;
        m.audit.outcome = OSY_OUTCOME_APPLIED;
        memcpy(m.audit.ref_id, CAUSE, OSY_ID_BUFSZ);
        set(&m.audit.action, "decide");
        set(&m.audit.detail, tricky);
        check(&m);
        /* The detail comes back byte for byte. */
        assert_int_equal(osy_msg_encode(&m, &json, &len, err, sizeof(err)),
                         OSY_OK);
        assert_non_null(strstr(json, "\\u0001\\u001f"));
        assert_non_null(strstr(json, "\\\" backslash \\\\ slash /"));
        assert_int_equal(osy_msg_decode(json, len, &back, err, sizeof(err)),
                         OSY_OK);
        assert_string_equal(back.audit.detail, tricky);
        osy_msg_clear(&back);
        free(json);
        osy_msg_clear(&m);
}

static void audit_with_api_numbers(void **state)
{
        struct osy_msg m;
        (void)state;

        envelope(&m, OSY_MSG_AUDIT, OSY_SRC_SF_WRITER);
        m.audit.stage = OSY_STAGE_SF_WRITER;
        set(&m.audit.action, "sf_update");
        m.audit.outcome = OSY_OUTCOME_APPLIED;
        memcpy(m.audit.ref_id, CAUSE, OSY_ID_BUFSZ);
        m.audit.api         = OSY_API_SF;
        m.audit.http_status = 503;
        m.audit.calls       = 1000; /* (capped by the schema) */
        check(&m);
        osy_msg_clear(&m);
}

static void commands_with_versions(void **state)
{
        struct osy_msg sf, ac;
        (void)state;

        envelope(&sf, OSY_MSG_SF_COMMAND, OSY_SRC_RULES);
        sf.sf_command.has_opted_out_of_email = 0;
        sf.sf_command.rule                   = OSY_RULE_R1;
        memcpy(sf.sf_command.cause_event_id, CAUSE, OSY_ID_BUFSZ);
        sf.sf_command.version.ms = T0;
        set(&sf.sf_command.version.tie, CAUSE);
        check(&sf);
        sf.sf_command.version.ms = 0;
        check(&sf);
        osy_msg_clear(&sf);

        envelope(&ac, OSY_MSG_AC_COMMAND, OSY_SRC_RULES);
        ac.ac_command.action = OSY_AC_UNSUBSCRIBE_ALL_LISTS;
        ac.ac_command.rule   = OSY_RULE_R4;
        memcpy(ac.ac_command.cause_event_id, CAUSE, OSY_ID_BUFSZ);
        set(&ac.ac_command.contact_id, "18723");
        ac.ac_command.version.ms = INT64_C(253402300799999); /* 9999-12-31 */
        set(&ac.ac_command.version.tie, "tie\"x\\y");
        check(&ac);
        osy_msg_clear(&ac);
}

static void events_with_tags_and_flags(void **state)
{
        struct osy_msg m, sf;
        (void)state;

        envelope(&m, OSY_MSG_AC_EVENT, OSY_SRC_AC);
        m.ac_event.kind = OSY_AC_SUBSCRIBE;
        set(&m.ac_event.contact_id, "7");
        set(&m.ac_event.list_id, "2");
        m.ac_event.initiated_by = OSY_INIT_API;
        m.ac_event.automation   = 1;
        m.ac_event.echo         = 1;
        m.ac_event.has_tags     = 1; /* known and empty: "tags":[] */
        check(&m);
        assert_int_equal(osy_ac_event_add_tag(&m.ac_event, "vip"), OSY_OK);
        assert_int_equal(osy_ac_event_add_tag(&m.ac_event, "caf\xc3\xa9 \"q\""),
                         OSY_OK);
        check(&m);
        osy_msg_clear(&m);

        envelope(&sf, OSY_MSG_SF_EVENT, OSY_SRC_SF);
        sf.sf_event.kind                   = OSY_SF_OPT_OUT_CHANGED;
        sf.sf_event.object                 = OSY_SF_LEAD;
        sf.sf_event.has_opted_out_of_email = OSY_TRI_FALSE;
        sf.sf_event.is_converted           = OSY_TRI_TRUE;
        set(&sf.sf_event.record_id, "00Q5g00000AbCdE");
        set(&sf.sf_event.replay_id, "98765");
        check(&sf);
        osy_msg_clear(&sf);
}

/* Numbers at cJSON's format boundaries: int, beyond int ("%1.15g"), 16
 * digits ("%1.17g"), exactly 1e15 ("1e+15"), the JSON-safe maximum. */
static void dlq_numbers_at_format_boundaries(void **state)
{
        static const int64_t offsets[]   = {0,
                                            1,
                                            INT64_C(2147483647),
                                            INT64_C(2147483648),
                                            INT64_C(999999999999999),
                                            INT64_C(1000000000000000),
                                            INT64_C(1234567890123456),
                                            INT64_C(9007199254740991)};
        static const unsigned char bin[] = {0x00, 0xff, 0x10, 'a'};
        (void)state;

        for (size_t i = 0; i < sizeof(offsets) / sizeof(*offsets); i++) {
                struct osy_msg m;
                char err[OSY_ERRSTR_SIZE] = "";
                char *json                = NULL;
                size_t len;
                cJSON *root, *o;

                envelope(&m, OSY_MSG_DLQ, OSY_SRC_RULES);
                m.dlq.stage    = OSY_STAGE_RULES;
                m.dlq.attempts = 1 + offsets[i] % 1000;
                set(&m.dlq.reason, "invalid message");
                set(&m.dlq.first_error, tricky);
                set(&m.dlq.last_error, "x");
                m.dlq.first_failed_at = T0;
                m.dlq.last_failed_at  = T0;
                assert_int_equal(osy_msg_dlq_set_original(
                                     &m, "optsync.ac.events", 5, offsets[i],
                                     i % 2 ? bin : NULL, sizeof(bin),
                                     i % 2 ? "{\"a\":\"\\u00e9\"}" : NULL,
                                     i % 2 ? 14 : 0),
                                 OSY_OK);
                /* cJSON's own print of the parsed text is the oracle; the
                 * decoder refuses exponent forms, so only the print is
                 * compared here. */
                if (osy_msg_encode(&m, &json, &len, err, sizeof(err)))
                        fail_msg("encode: %s", err);
                root = cJSON_Parse(json);
                assert_non_null(root);
                {
                        char *printed = cJSON_PrintUnformatted(root);
                        assert_string_equal(json, printed);
                        cJSON_free(printed);
                }
                o = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "payload"),
                                        "original");
                /* Exact up to 15 digits; above, cJSON's "%1.15g" may drop
                 * the last unit (kept: the bytes must not change). */
                {
                        double v =
                            cJSON_GetObjectItem(o, "offset")->valuedouble;
                        double x = (double)offsets[i];
                        if (offsets[i] < INT64_C(1000000000000000))
                                assert_true(v == x);
                        else
                                assert_true(v - x <= 2.0 && x - v <= 2.0);
                }
                cJSON_Delete(root);
                free(json);
                osy_msg_clear(&m);
        }
}

/* The worker's own outputs (osy_rules_build_outputs) read back equal. */
static void rules_outputs_roundtrip(void **state)
{
        struct osy_msg ev, sf, ac, audit;
        struct osy_rules_decision d;
        char err[OSY_ERRSTR_SIZE];
        (void)state;

        envelope(&ev, OSY_MSG_SF_EVENT, OSY_SRC_SF);
        ev.sf_event.kind                   = OSY_SF_OPT_OUT_CHANGED;
        ev.sf_event.object                 = OSY_SF_CONTACT;
        ev.sf_event.has_opted_out_of_email = OSY_TRI_TRUE;
        set(&ev.sf_event.record_id, "0035g00000AbCdEAAZ");
        assert_int_equal(osy_msg_finalize(&ev, err, sizeof(err)), OSY_OK);
        memset(&d, 0, sizeof(d));
        d.rule         = OSY_RULE_R4;
        d.outcome      = OSY_OUTCOME_APPLIED;
        d.emit_sf      = 1;
        d.emit_ac      = 1;
        d.sf_opted_out = 1;
        snprintf(d.detail, sizeof(d.detail), "lists {1,2} -> {} \"%s\"",
                 "caf\xc3\xa9");
        snprintf(d.next.contact_id, sizeof(d.next.contact_id), "18723");
        assert_int_equal(osy_rules_build_outputs(&ev, &d, &sf, &ac, &audit, err,
                                                 sizeof(err)),
                         OSY_OK);
        check(&sf);
        check(&ac);
        check(&audit);
        osy_msg_clear(&sf);
        osy_msg_clear(&ac);
        osy_msg_clear(&audit);
        osy_msg_clear(&ev);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(audit_detail_escapes_and_utf8),
            cmocka_unit_test(audit_with_api_numbers),
            cmocka_unit_test(commands_with_versions),
            cmocka_unit_test(events_with_tags_and_flags),
            cmocka_unit_test(dlq_numbers_at_format_boundaries),
            cmocka_unit_test(rules_outputs_roundtrip),
        };
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
