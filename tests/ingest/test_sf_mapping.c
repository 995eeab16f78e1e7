/*
 * test_sf_mapping.c - what sf-ingest makes of Salesforce changes: which CDC
 * events become sf.events (and with what), what is re-read or polled back,
 * which polled records count as changed, the SOQL it sends, and the
 * envelopes it publishes (decoded back as a consumer would).
 */
#include "osy_test.h"
#include "cdc.h"
#include "mapping.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLIENT "optsync"

/* Parses one event answer on @p channel; the test owns @p r. */
static const struct osy_sfi_event *
one_event(struct osy_sfi_reply *r, const char *channel, const char *entity,
          const char *type, const char *ids, const char *changed,
          const char *body, const char *replay)
{
        char json[4096], e[OSY_ERRSTR_SIZE] = "";

        snprintf(json, sizeof(json),
                 "[{\"channel\":\"%s\",\"data\":{\"event\":{\"replayId\":%s},"
                 "\"payload\":{\"ChangeEventHeader\":{\"entityName\":\"%s\","
                 "\"changeType\":\"%s\",\"recordIds\":%s,\"changedFields\":%s,"
                 "\"changeOrigin\":\"com/salesforce/api/rest/59.0\","
                 "\"commitTimestamp\":1795666445123}%s%s}}}]",
                 channel, replay, entity, type, ids, changed,
                 body[0] ? "," : "", body);
        if (osy_sfi_reply_parse(json, strlen(json), r, e, sizeof(e)))
                fail_msg("parse: %s", e);
        assert_int_equal(r->event_cnt, 1);
        return &r->events[0];
}

static void plan_one(struct osy_sfi_plan *p, const char *entity,
                     const char *type, const char *ids, const char *changed,
                     const char *body)
{
        struct osy_sfi_reply r;
        const char *ch = !strcmp(entity, "Lead") ? OSY_SFI_CHANNEL_LEAD
                                                 : OSY_SFI_CHANNEL_CONTACT;

        osy_sfi_plan_init(p);
        assert_int_equal(
            osy_sfi_plan_add_event(
                p, one_event(&r, ch, entity, type, ids, changed, body, "500"),
                CLIENT),
            OSY_OK);
        osy_sfi_reply_clear(&r);
}

/* ---- CDC events -> plan ------------------------------------------------ */

static void update_of_opt_out_gives_one_event_per_record(void **state)
{
        struct osy_sfi_plan p;
        (void)state;

        plan_one(&p, "Contact", "UPDATE",
                 "[\"003000000000001AAA\",\"003000000000002AAA\"]",
                 "[\"HasOptedOutOfEmail\",\"LastModifiedDate\"]",
                 "\"HasOptedOutOfEmail\":true");
        assert_int_equal(p.change_cnt, 2);
        for (size_t i = 0; i < 2; i++) {
                const struct osy_sfi_change *c = &p.changes[i];
                assert_int_equal(c->kind, OSY_SF_OPT_OUT_CHANGED);
                assert_int_equal(c->object, OSY_SF_CONTACT);
                assert_int_equal(c->opt_out, OSY_TRI_TRUE);
                assert_int_equal(c->occurred_at, 1795666445123LL);
                assert_string_equal(c->replay_id, "500");
                assert_string_equal(c->email, ""); /* to look up */
                assert_false(c->echo);
        }
        assert_string_equal(p.changes[1].record_id, "003000000000002AAA");
        assert_int_equal(p.pos_cnt, 1);
        assert_string_equal(p.pos[0].channel, OSY_SFI_CHANNEL_CONTACT);
        assert_string_equal(p.pos[0].replay_id, "500");
        assert_int_equal(p.pos[0].commit_ts, 1795666445123LL);
        /* What the event taught: both records now opted out. */
        assert_int_equal(p.state_cnt, 2);
        assert_int_equal(p.states[0].opt_out, OSY_TRI_TRUE);
        osy_sfi_plan_clear(&p);
}

static void update_of_other_fields_only_moves_the_position(void **state)
{
        struct osy_sfi_plan p;
        (void)state;

        plan_one(&p, "Contact", "UPDATE", "[\"003000000000001AAA\"]",
                 "[\"Phone\",\"LastModifiedDate\"]", "\"Phone\":\"1\"");
        assert_int_equal(p.change_cnt, 0);
        assert_int_equal(p.skipped[OSY_SFI_SKIP_NOT_OPT_OUT], 1);
        assert_int_equal(p.pos_cnt, 1);
        assert_int_equal(p.by_type[OSY_SFI_CT_UPDATE], 1);
        osy_sfi_plan_clear(&p);
}

static void create_opted_out_is_published_with_its_email(void **state)
{
        struct osy_sfi_plan p;
        (void)state;

        plan_one(&p, "Lead", "CREATE", "[\"00Q000000000001AAA\"]", "[]",
                 "\"Email\":\" Jane.Doe@Example.COM \","
                 "\"HasOptedOutOfEmail\":true,\"IsConverted\":false");
        assert_int_equal(p.change_cnt, 1);
        assert_int_equal(p.changes[0].kind, OSY_SF_CREATED);
        assert_string_equal(p.changes[0].email, "jane.doe@example.com");
        assert_int_equal(p.changes[0].is_converted, OSY_TRI_FALSE);
        osy_sfi_plan_clear(&p);

        plan_one(&p, "Contact", "UNDELETE", "[\"003000000000001AAA\"]", "[]",
                 "\"Email\":\"a@b.c\",\"HasOptedOutOfEmail\":true");
        assert_int_equal(p.change_cnt, 1);
        assert_int_equal(p.changes[0].kind, OSY_SF_UNDELETED);
        osy_sfi_plan_clear(&p);
}

static void create_not_opted_out_is_remembered_not_published(void **state)
{
        struct osy_sfi_plan p;
        (void)state;

        plan_one(&p, "Contact", "CREATE", "[\"003000000000001AAA\"]", "[]",
                 "\"Email\":\"a@b.c\",\"HasOptedOutOfEmail\":false");
        assert_int_equal(p.change_cnt, 0);
        assert_int_equal(p.skipped[OSY_SFI_SKIP_NOT_OPT_OUT], 1);
        /* The email is kept: the next UPDATE needs no lookup. */
        assert_int_equal(p.state_cnt, 1);
        assert_string_equal(p.states[0].email, "a@b.c");
        assert_int_equal(p.states[0].opt_out, OSY_TRI_FALSE);
        osy_sfi_plan_clear(&p);
}

static void email_change_is_remembered(void **state)
{
        struct osy_sfi_plan p;
        (void)state;

        plan_one(&p, "Contact", "UPDATE", "[\"003000000000001AAA\"]",
                 "[\"Email\",\"HasOptedOutOfEmail\"]",
                 "\"Email\":\"New@X.org\",\"HasOptedOutOfEmail\":false");
        assert_int_equal(p.change_cnt, 1);
        assert_string_equal(p.changes[0].email, "new@x.org");
        assert_int_equal(p.changes[0].opt_out, OSY_TRI_FALSE);
        assert_string_equal(p.states[0].email, "new@x.org");
        osy_sfi_plan_clear(&p);
}

static void lead_conversion_is_its_own_event(void **state)
{
        struct osy_sfi_plan p;
        (void)state;

        plan_one(&p, "Lead", "UPDATE", "[\"00Q000000000001AAA\"]",
                 "[\"IsConverted\",\"ConvertedContactId\",\"Status\"]",
                 "\"IsConverted\":true,\"ConvertedContactId\":"
                 "\"003000000000009AAA\"");
        assert_int_equal(p.change_cnt, 1);
        assert_int_equal(p.changes[0].kind, OSY_SF_LEAD_CONVERTED);
        assert_int_equal(p.changes[0].is_converted, OSY_TRI_TRUE);
        assert_string_equal(p.changes[0].converted_contact_id,
                            "003000000000009AAA");
        assert_int_equal(p.changes[0].opt_out, OSY_TRI_UNSET);
        osy_sfi_plan_clear(&p);

        /* Converted and opted out in one transaction: both facts. */
        plan_one(&p, "Lead", "UPDATE", "[\"00Q000000000001AAA\"]",
                 "[\"IsConverted\",\"ConvertedContactId\","
                 "\"HasOptedOutOfEmail\"]",
                 "\"IsConverted\":true,\"ConvertedContactId\":"
                 "\"003000000000009AAA\",\"HasOptedOutOfEmail\":true");
        assert_int_equal(p.change_cnt, 2);
        assert_int_equal(p.changes[0].kind, OSY_SF_OPT_OUT_CHANGED);
        assert_int_equal(p.changes[1].kind, OSY_SF_LEAD_CONVERTED);
        assert_int_equal(p.changes[1].opt_out, OSY_TRI_TRUE);
        osy_sfi_plan_clear(&p);

        /* Converted without the contact id: read the lead back. */
        plan_one(&p, "Lead", "UPDATE", "[\"00Q000000000001AAA\"]",
                 "[\"IsConverted\"]", "\"IsConverted\":true");
        assert_int_equal(p.change_cnt, 0);
        assert_int_equal(p.reread_cnt, 1);
        osy_sfi_plan_clear(&p);
}

static void echo_of_our_own_write(void **state)
{
        struct osy_sfi_plan p;
        struct osy_sfi_reply r;
        const char *json =
            "[{\"channel\":\"/data/ContactChangeEvent\",\"data\":{\"event\":"
            "{\"replayId\":9},\"payload\":{\"ChangeEventHeader\":{"
            "\"entityName\":\"Contact\",\"changeType\":\"UPDATE\","
            "\"recordIds\":[\"003000000000001AAA\"],\"changedFields\":["
            "\"HasOptedOutOfEmail\"],\"changeOrigin\":"
            "\"com/salesforce/api/rest/59.0;client=optsync\","
            "\"commitTimestamp\":5},\"HasOptedOutOfEmail\":true}}}]";
        char e[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(
            osy_sfi_reply_parse(json, strlen(json), &r, e, sizeof(e)), OSY_OK);
        osy_sfi_plan_init(&p);
        assert_int_equal(osy_sfi_plan_add_event(&p, &r.events[0], CLIENT),
                         OSY_OK);
        assert_int_equal(p.change_cnt, 1);
        assert_true(p.changes[0].echo);
        assert_string_equal(p.changes[0].change_origin,
                            "com/salesforce/api/rest/59.0;client=optsync");
        osy_sfi_plan_clear(&p);
        osy_sfi_reply_clear(&r);
}

static void gap_events_ask_for_rereads_and_polls(void **state)
{
        struct osy_sfi_plan p;
        (void)state;

        plan_one(&p, "Contact", "GAP_UPDATE",
                 "[\"003000000000001AAA\",\"003000000000002AAA\"]", "[]", "");
        assert_int_equal(p.change_cnt, 0);
        assert_int_equal(p.reread_cnt, 2);
        assert_int_equal(p.rereads[1].object, OSY_SF_CONTACT);
        assert_string_equal(p.rereads[1].record_id, "003000000000002AAA");
        osy_sfi_plan_clear(&p);

        plan_one(&p, "Lead", "GAP_OVERFLOW", "[]", "[]", "");
        assert_int_equal(p.reread_cnt, 0);
        assert_int_equal(p.overflow_from[OSY_SF_LEAD], 1795666445123LL);
        assert_int_equal(p.overflow_from[OSY_SF_CONTACT], -1);
        assert_int_equal(p.pos_cnt, 1);
        osy_sfi_plan_clear(&p);

        plan_one(&p, "Lead", "DELETE", "[\"00Q000000000001AAA\"]", "[]", "");
        assert_int_equal(p.change_cnt + p.reread_cnt, 0);
        assert_int_equal(p.skipped[OSY_SFI_SKIP_DELETE], 1);
        osy_sfi_plan_clear(&p);
}

static void unreadable_events_are_read_back(void **state)
{
        struct osy_sfi_plan p;
        (void)state;

        /* Named as changed but absent from the body. */
        plan_one(&p, "Contact", "UPDATE", "[\"003000000000001AAA\"]",
                 "[\"HasOptedOutOfEmail\"]", "");
        assert_int_equal(p.change_cnt, 0);
        assert_int_equal(p.reread_cnt, 1);
        osy_sfi_plan_clear(&p);

        /* Wrong type in the body: the parser flags it, the plan re-reads
         * and still moves past its replay id. */
        plan_one(&p, "Contact", "UPDATE", "[\"003000000000001AAA\"]",
                 "[\"HasOptedOutOfEmail\"]", "\"HasOptedOutOfEmail\":1");
        assert_int_equal(p.malformed, 1);
        assert_int_equal(p.reread_cnt, 1);
        assert_int_equal(p.pos_cnt, 1);
        assert_string_equal(p.pos[0].replay_id, "500");
        osy_sfi_plan_clear(&p);
}

/* Malformed events that name no record to read back. Before, their
 * replay id was passed and nothing was done: a GAP_OVERFLOW with a bad
 * commitTimestamp, or an event without entityName, was lost until the
 * next safety poll (never, with that poll off). Now their object is
 * polled back from the last commit time known, or at once. */
static void unnamed_malformed_events_poll_their_object_back(void **state)
{
        struct osy_sfi_reply r;
        struct osy_sfi_plan p;
        char e[OSY_ERRSTR_SIZE];
        /* A good Lead event, then a GAP_OVERFLOW whose time is no time. */
        const char *overflow =
            "[{\"channel\":\"" OSY_SFI_CHANNEL_LEAD "\",\"data\":{\"event\":"
            "{\"replayId\":500},\"payload\":{\"ChangeEventHeader\":{"
            "\"entityName\":\"Lead\",\"changeType\":\"UPDATE\",\"recordIds\":"
            "[\"00Q000000000001AAA\"],\"changedFields\":[\"Phone\"],"
            "\"commitTimestamp\":1795666445123}}}},"
            "{\"channel\":\"" OSY_SFI_CHANNEL_LEAD "\",\"data\":{\"event\":"
            "{\"replayId\":501},\"payload\":{\"ChangeEventHeader\":{"
            "\"entityName\":\"Lead\",\"changeType\":\"GAP_OVERFLOW\","
            "\"recordIds\":[],\"changedFields\":[],"
            "\"commitTimestamp\":1795666445999.5}}}}]";
        /* Alone, without entityName: which object is unknown, and so is
         * any time before it. */
        const char *anonymous =
            "[{\"channel\":\"" OSY_SFI_CHANNEL_CONTACT "\",\"data\":{"
            "\"event\":{\"replayId\":700},\"payload\":{\"ChangeEventHeader\":"
            "{\"changeType\":\"UPDATE\",\"recordIds\":[\"003000000000001AAA\"],"
            "\"changedFields\":[\"HasOptedOutOfEmail\"]}}}}]";
        (void)state;

        osy_sfi_plan_init(&p);
        if (osy_sfi_reply_parse(overflow, strlen(overflow), &r, e, sizeof(e)))
                fail_msg("parse: %s", e);
        assert_int_equal(r.event_cnt, 2);
        assert_non_null(r.events[1].error);
        for (size_t i = 0; i < r.event_cnt; i++)
                assert_int_equal(
                    osy_sfi_plan_add_event(&p, &r.events[i], CLIENT), OSY_OK);
        osy_sfi_reply_clear(&r);
        assert_int_equal(p.malformed, 1);
        assert_true(p.overflow_from[OSY_SF_LEAD] == 1795666445123LL);
        assert_true(p.overflow_from[OSY_SF_CONTACT] < 0);
        assert_false(p.poll_now[OSY_SF_LEAD] || p.poll_now[OSY_SF_CONTACT]);
        assert_string_equal(p.pos[0].replay_id, "501");
        osy_sfi_plan_clear(&p);

        osy_sfi_plan_init(&p);
        if (osy_sfi_reply_parse(anonymous, strlen(anonymous), &r, e, sizeof(e)))
                fail_msg("parse: %s", e);
        assert_non_null(r.events[0].error);
        assert_int_equal(osy_sfi_plan_add_event(&p, &r.events[0], CLIENT),
                         OSY_OK);
        osy_sfi_reply_clear(&r);
        assert_true(p.poll_now[OSY_SF_CONTACT] && p.poll_now[OSY_SF_LEAD]);
        assert_int_equal(p.reread_cnt, 0);
        assert_string_equal(p.pos[0].replay_id, "700");
        osy_sfi_plan_clear(&p);
}

/* Events on channels nobody subscribed to: skipped, and no position is
 * kept for them. Before, four such events took every slot of pos[] and
 * the real channel's replay id was not saved (its events came again). */
static void events_on_other_channels_are_skipped(void **state)
{
        struct osy_sfi_reply r;
        struct osy_sfi_plan p;
        (void)state;

        osy_sfi_plan_init(&p);
        for (int i = 0; i < 4; i++) {
                char ch[16];
                snprintf(ch, sizeof(ch), "/x/%d", i);
                assert_int_equal(
                    osy_sfi_plan_add_event(
                        &p,
                        one_event(&r, ch, "Contact", "UPDATE",
                                  "[\"003000000000001AAA\"]",
                                  "[\"HasOptedOutOfEmail\"]",
                                  "\"HasOptedOutOfEmail\":true", "90"),
                        CLIENT),
                    OSY_OK);
                osy_sfi_reply_clear(&r);
        }
        assert_int_equal(p.change_cnt, 0);
        assert_int_equal(p.pos_cnt, 0);
        assert_int_equal(osy_sfi_plan_add_event(
                             &p,
                             one_event(&r, OSY_SFI_CHANNEL_CONTACT, "Contact",
                                       "UPDATE", "[\"003000000000001AAA\"]",
                                       "[\"HasOptedOutOfEmail\"]",
                                       "\"HasOptedOutOfEmail\":true", "91"),
                             CLIENT),
                         OSY_OK);
        osy_sfi_reply_clear(&r);
        assert_int_equal(p.change_cnt, 1);
        assert_int_equal(p.pos_cnt, 1);
        assert_string_equal(p.pos[0].channel, OSY_SFI_CHANNEL_CONTACT);
        assert_string_equal(p.pos[0].replay_id, "91");
        osy_sfi_plan_clear(&p);
}

static void records_without_email_are_skipped_and_counted(void **state)
{
        struct osy_sfi_plan p;
        (void)state;

        plan_one(&p, "Contact", "CREATE", "[\"003000000000001AAA\"]", "[]",
                 "\"Email\":null,\"HasOptedOutOfEmail\":true");
        assert_int_equal(p.change_cnt, 0);
        assert_int_equal(p.skipped[OSY_SFI_SKIP_NO_EMAIL], 1);
        osy_sfi_plan_clear(&p);

        plan_one(&p, "Contact", "CREATE", "[\"003000000000001AAA\"]", "[]",
                 "\"Email\":\"not an email\",\"HasOptedOutOfEmail\":true");
        assert_int_equal(p.change_cnt, 0);
        assert_int_equal(p.skipped[OSY_SFI_SKIP_BAD_EMAIL], 1);
        osy_sfi_plan_clear(&p);
}

static void other_entities_are_skipped(void **state)
{
        struct osy_sfi_plan p;
        (void)state;

        plan_one(&p, "Account", "UPDATE", "[\"001000000000001AAA\"]",
                 "[\"HasOptedOutOfEmail\"]", "\"HasOptedOutOfEmail\":true");
        assert_int_equal(p.change_cnt, 0);
        assert_int_equal(p.skipped[OSY_SFI_SKIP_OTHER_ENTITY], 1);
        osy_sfi_plan_clear(&p);
}

static void positions_follow_each_channel(void **state)
{
        struct osy_sfi_plan p;
        struct osy_sfi_reply r;
        (void)state;

        osy_sfi_plan_init(&p);
        assert_int_equal(
            osy_sfi_plan_add_event(
                &p,
                one_event(&r, OSY_SFI_CHANNEL_CONTACT, "Contact", "UPDATE",
                          "[\"003000000000001AAA\"]", "[]", "", "10"),
                CLIENT),
            OSY_OK);
        osy_sfi_reply_clear(&r);
        assert_int_equal(
            osy_sfi_plan_add_event(
                &p,
                one_event(&r, OSY_SFI_CHANNEL_LEAD, "Lead", "UPDATE",
                          "[\"00Q000000000001AAA\"]", "[]", "", "11"),
                CLIENT),
            OSY_OK);
        osy_sfi_reply_clear(&r);
        assert_int_equal(
            osy_sfi_plan_add_event(
                &p,
                one_event(&r, OSY_SFI_CHANNEL_CONTACT, "Contact", "UPDATE",
                          "[\"003000000000001AAA\"]", "[]", "", "12"),
                CLIENT),
            OSY_OK);
        osy_sfi_reply_clear(&r);
        assert_int_equal(p.pos_cnt, 2);
        assert_string_equal(p.pos[0].replay_id, "12");
        assert_string_equal(p.pos[1].replay_id, "11");
        osy_sfi_plan_clear(&p);
}

/* ---- polled records ---------------------------------------------------- */

static struct osy_sfi_record rec(osy_sf_object_t obj, osy_tri_t opt)
{
        struct osy_sfi_record r;

        memset(&r, 0, sizeof(r));
        r.object = obj;
        snprintf(r.record_id, sizeof(r.record_id), "%s",
                 obj == OSY_SF_LEAD ? "00Q000000000001AAA"
                                    : "003000000000001AAA");
        r.email_ok = 1;
        snprintf(r.email, sizeof(r.email), "a@b.c");
        r.opt_out         = opt;
        r.system_modstamp = 1700000000000LL;
        if (obj == OSY_SF_LEAD)
                r.is_converted = OSY_TRI_FALSE;
        return r;
}

static void decide_publishes_only_real_changes(void **state)
{
        struct osy_sfi_record r = rec(OSY_SF_CONTACT, OSY_TRI_TRUE);
        struct osy_sfi_recstate st;
        struct osy_sfi_change out[2];
        (void)state;

        /* Never seen: an opt-out is news, a non-opt-out is not. */
        memset(&st, 0, sizeof(st));
        assert_int_equal(osy_sfi_decide(&r, &st, out), 1);
        assert_int_equal(out[0].kind, OSY_SF_OPT_OUT_CHANGED);
        assert_int_equal(out[0].occurred_at, 1700000000000LL);
        assert_string_equal(out[0].email, "a@b.c");
        assert_string_equal(out[0].replay_id, "");
        r.opt_out = OSY_TRI_FALSE;
        assert_int_equal(osy_sfi_decide(&r, &st, out), 0);
        assert_int_equal(osy_sfi_decide(&r, NULL, out), 0);

        /* Known: only a different value. */
        st.known   = 1;
        st.opt_out = OSY_TRI_TRUE;
        assert_int_equal(osy_sfi_decide(&r, &st, out), 1);
        assert_int_equal(out[0].opt_out, OSY_TRI_FALSE);
        st.opt_out = OSY_TRI_FALSE;
        assert_int_equal(osy_sfi_decide(&r, &st, out), 0);
        /* Known email only (from CDC), opt-out unknown: like never seen. */
        st.opt_out = OSY_TRI_UNSET;
        assert_int_equal(osy_sfi_decide(&r, &st, out), 0);
}

static void decide_sees_lead_conversion_once(void **state)
{
        struct osy_sfi_record r = rec(OSY_SF_LEAD, OSY_TRI_FALSE);
        struct osy_sfi_recstate st;
        struct osy_sfi_change out[2];
        (void)state;

        memset(&st, 0, sizeof(st));
        st.known        = 1;
        st.opt_out      = OSY_TRI_FALSE;
        st.is_converted = OSY_TRI_FALSE;
        r.is_converted  = OSY_TRI_TRUE;
        snprintf(r.converted_contact_id, sizeof(r.converted_contact_id),
                 "003000000000009AAA");
        assert_int_equal(osy_sfi_decide(&r, &st, out), 1);
        assert_int_equal(out[0].kind, OSY_SF_LEAD_CONVERTED);
        assert_string_equal(out[0].converted_contact_id, "003000000000009AAA");
        st.is_converted = OSY_TRI_TRUE;
        assert_int_equal(osy_sfi_decide(&r, &st, out), 0);
}

/* ---- SOQL ------------------------------------------------------------ */

static void soql_by_ids_text(void **state)
{
        const char ids[2][OSY_SFI_ID_BUFSZ] = {"003000000000001AAA",
                                               "003000000000002"};
        char bad[1][OSY_SFI_ID_BUFSZ]       = {"003' OR Id != '"};
        char *s                             = NULL;
        (void)state;

        assert_int_equal(osy_sfi_soql_by_ids(OSY_SF_CONTACT, ids, 2, &s),
                         OSY_OK);
        assert_string_equal(s, "SELECT Id, Email, HasOptedOutOfEmail, "
                               "SystemModstamp FROM Contact WHERE Id IN "
                               "('003000000000001AAA', '003000000000002')");
        free(s);
        assert_int_equal(osy_sfi_soql_by_ids(OSY_SF_LEAD, ids, 1, &s), OSY_OK);
        assert_non_null(strstr(s, "IsConverted, ConvertedContactId"));
        assert_non_null(strstr(s, "FROM Lead WHERE"));
        free(s);
        assert_int_equal(
            osy_sfi_soql_by_ids(OSY_SF_LEAD, (const char(*)[19])bad, 1, &s),
            OSY_ERR_INVALID);
        assert_null(s);
        assert_int_equal(osy_sfi_soql_by_ids(OSY_SF_LEAD, ids, 0, &s),
                         OSY_ERR_INVALID);
}

static void soql_since_rounds_down_to_the_second(void **state)
{
        char *s = NULL;
        (void)state;

        /* 2026-11-26T04:13:00.999Z */
        assert_int_equal(
            osy_sfi_soql_since(OSY_SF_CONTACT, 1795666380999LL, &s), OSY_OK);
        assert_string_equal(s, "SELECT Id, Email, HasOptedOutOfEmail, "
                               "SystemModstamp FROM Contact WHERE "
                               "SystemModstamp >= 2026-11-26T04:13:00Z ORDER "
                               "BY SystemModstamp, Id");
        free(s);
}

static void query_path_percent_encodes(void **state)
{
        char *p = NULL;
        (void)state;

        assert_int_equal(osy_sfi_query_path("59.0",
                                            "SELECT Id FROM Lead "
                                            "WHERE Email = 'a+b@c.d'",
                                            &p),
                         OSY_OK);
        assert_string_equal(p, "/services/data/v59.0/query?q=SELECT%20Id%20"
                               "FROM%20Lead%20WHERE%20Email%20%3D%20%27a%2Bb"
                               "%40c.d%27");
        free(p);
}

static void lookups_fit_the_url_budget(void **state)
{
        char(*ids)[OSY_SFI_ID_BUFSZ] = calloc(300, sizeof(*ids));
        char *path                   = NULL;
        size_t k                     = 0, fit;
        (void)state;

        for (int i = 0; i < 300; i++)
                snprintf(ids[i], sizeof(ids[i]), "003%015d", i);
        /* Plenty of room: the IN cap decides. */
        assert_int_equal(osy_sfi_lookup_path("59.0", OSY_SF_CONTACT,
                                             (const char(*)[19])ids, 300,
                                             100000, &k, &path),
                         OSY_OK);
        assert_int_equal(k, OSY_SFI_IN_MAX);
        free(path);
        /* 2 KB: as many as fit, and the path really fits. */
        assert_int_equal(osy_sfi_lookup_path("59.0", OSY_SF_CONTACT,
                                             (const char(*)[19])ids, 300, 1960,
                                             &k, &path),
                         OSY_OK);
        assert_true(k > 10 && k < OSY_SFI_IN_MAX);
        assert_true(strlen(path) <= 1960);
        free(path);
        /* One more id would not have fitted. */
        fit = k;
        assert_int_equal(osy_sfi_lookup_path("59.0", OSY_SF_CONTACT,
                                             (const char(*)[19])ids, fit + 1,
                                             1960, &k, &path),
                         OSY_OK);
        assert_int_equal(k, fit);
        free(path);
        assert_int_equal(osy_sfi_lookup_path("59.0", OSY_SF_CONTACT,
                                             (const char(*)[19])ids, 5, 50, &k,
                                             &path),
                         OSY_ERR_TOO_LARGE);
        assert_null(path);
        free(ids);
}

static void query_pages_are_read(void **state)
{
        const char *json =
            "{\"totalSize\":3,\"done\":false,\"nextRecordsUrl\":"
            "\"/services/data/v59.0/query/01gSB-2\",\"records\":["
            "{\"attributes\":{\"type\":\"Lead\"},\"Id\":\"00Q000000000001AAA\","
            "\"Email\":\"X@Y.Z\",\"HasOptedOutOfEmail\":true,\"IsConverted\":"
            "true,\"ConvertedContactId\":\"003000000000009AAA\","
            "\"SystemModstamp\":\"2024-01-02T03:04:05.000+0000\"},"
            "{\"Id\":\"00Q000000000002AAA\",\"Email\":null,"
            "\"HasOptedOutOfEmail\":false,\"IsConverted\":false,"
            "\"ConvertedContactId\":null,\"SystemModstamp\":"
            "\"2024-01-02T03:04:06.000+0000\"},"
            "{\"Id\":7}]}";
        struct osy_sfi_page pg;
        char e[OSY_ERRSTR_SIZE] = "";
        (void)state;

        assert_int_equal(osy_sfi_page_parse(json, strlen(json), OSY_SF_LEAD,
                                            &pg, e, sizeof(e)),
                         OSY_OK);
        assert_false(pg.done);
        assert_string_equal(pg.next_url, "/services/data/v59.0/query/01gSB-2");
        assert_int_equal(pg.record_cnt, 2);
        assert_int_equal(pg.bad, 1);
        assert_string_equal(pg.records[0].email, "x@y.z");
        assert_true(pg.records[0].email_ok);
        assert_int_equal(pg.records[0].opt_out, OSY_TRI_TRUE);
        assert_int_equal(pg.records[0].is_converted, OSY_TRI_TRUE);
        assert_string_equal(pg.records[0].converted_contact_id,
                            "003000000000009AAA");
        assert_int_equal(pg.records[0].system_modstamp, 1704164645000LL);
        assert_true(pg.records[1].email_null);
        assert_false(pg.records[1].email_ok);
        osy_sfi_page_clear(&pg);

        json = "[{\"message\":\"Session expired or invalid\",\"errorCode\":"
               "\"INVALID_SESSION_ID\"}]";
        assert_int_equal(osy_sfi_page_parse(json, strlen(json), OSY_SF_LEAD,
                                            &pg, e, sizeof(e)),
                         OSY_ERR_INVALID);
        json = "{\"done\":false,\"records\":[]}";
        assert_int_equal(osy_sfi_page_parse(json, strlen(json), OSY_SF_LEAD,
                                            &pg, e, sizeof(e)),
                         OSY_ERR_INVALID);
        json = "{\"done\":true,\"records\":[],\"nextRecordsUrl\":null}";
        assert_int_equal(osy_sfi_page_parse(json, strlen(json), OSY_SF_LEAD,
                                            &pg, e, sizeof(e)),
                         OSY_OK);
        assert_true(pg.done);
        assert_null(pg.next_url);
        osy_sfi_page_clear(&pg);
}

/* ---- envelope ------------------------------------------------------------ */

static struct osy_sfi_change sample_change(void)
{
        struct osy_sfi_change c;

        memset(&c, 0, sizeof(c));
        c.kind        = OSY_SF_OPT_OUT_CHANGED;
        c.object      = OSY_SF_CONTACT;
        c.opt_out     = OSY_TRI_TRUE;
        c.occurred_at = 1795666445123LL;
        snprintf(c.record_id, sizeof(c.record_id), "0035g00000AbCdEAAZ");
        snprintf(c.email, sizeof(c.email), "jane.doe@example.com");
        snprintf(c.change_origin, sizeof(c.change_origin),
                 "com/salesforce/api/rest/60.0");
        snprintf(c.replay_id, sizeof(c.replay_id), "48213");
        return c;
}

static void change_encodes_to_a_valid_sf_event(void **state)
{
        struct osy_sfi_change c = sample_change();
        char key[OSY_PARTITION_KEY_BUFSZ], id[OSY_ID_BUFSZ], id2[OSY_ID_BUFSZ];
        char e[OSY_ERRSTR_SIZE] = "";
        char *json              = NULL;
        size_t len              = 0;
        struct osy_msg m;
        (void)state;

        if (osy_sfi_change_encode(&c, "acme", &json, &len, key, id, e,
                                  sizeof(e)))
                fail_msg("encode: %s", e);
        /* docs/events.md section 5 shows this very event and its id. */
        assert_string_equal(id, "99051f818f88ef5bd5d48ffda18ad300");
        assert_string_equal(key, "acme|jane.doe@example.com");
        if (osy_msg_decode(json, len, &m, e, sizeof(e)))
                fail_msg("decode: %s", e);
        assert_int_equal(m.type, OSY_MSG_SF_EVENT);
        assert_int_equal(m.source, OSY_SRC_SF);
        assert_string_equal(m.sf_event.replay_id, "48213");
        assert_false(m.sf_event.echo);
        osy_msg_clear(&m);
        free(json);

        /* A replay (other replay id, echo) keeps the id: dedup works. */
        snprintf(c.replay_id, sizeof(c.replay_id), "99999");
        c.echo = 1;
        assert_int_equal(osy_sfi_change_encode(&c, "acme", &json, &len, key,
                                               id2, e, sizeof(e)),
                         OSY_OK);
        assert_string_equal(id, id2);
        assert_non_null(strstr(json, "\"echo\":true"));
        free(json);
}

static void invalid_changes_are_refused_not_sent(void **state)
{
        struct osy_sfi_change c = sample_change();
        char key[OSY_PARTITION_KEY_BUFSZ], e[OSY_ERRSTR_SIZE] = "";
        char *json = NULL;
        size_t len;
        (void)state;

        c.kind = OSY_SF_LEAD_CONVERTED; /* on a Contact */
        assert_int_equal(osy_sfi_change_encode(&c, "acme", &json, &len, key,
                                               NULL, e, sizeof(e)),
                         OSY_ERR_INVALID);
        assert_null(json);
        c = sample_change();
        assert_int_equal(osy_sfi_change_encode(&c, "bad|tenant", &json, &len,
                                               key, NULL, e, sizeof(e)),
                         OSY_ERR_INVALID);
        assert_null(json);
}

static void copy_utf8_cuts_on_a_boundary_and_masks(void **state)
{
        char buf[6];
        (void)state;

        /* "abcé" + "x": é is 2 bytes; 5 bytes fit, not 6. */
        osy_sfi_copy_utf8(buf, sizeof(buf), "abc\xc3\xa9x");
        assert_string_equal(buf, "abc\xc3\xa9");
        osy_sfi_copy_utf8(buf, 5, "abc\xc3\xa9x");
        assert_string_equal(buf, "abc");
        osy_sfi_copy_utf8(buf, sizeof(buf), "a\nb\x01");
        assert_string_equal(buf, "a?b?");
        osy_sfi_copy_utf8(buf, sizeof(buf),
                          "a\xff"
                          "b");
        assert_string_equal(buf, "a?b");
        osy_sfi_copy_utf8(buf, sizeof(buf), NULL);
        assert_string_equal(buf, "");
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(update_of_opt_out_gives_one_event_per_record),
            cmocka_unit_test(update_of_other_fields_only_moves_the_position),
            cmocka_unit_test(create_opted_out_is_published_with_its_email),
            cmocka_unit_test(create_not_opted_out_is_remembered_not_published),
            cmocka_unit_test(email_change_is_remembered),
            cmocka_unit_test(lead_conversion_is_its_own_event),
            cmocka_unit_test(echo_of_our_own_write),
            cmocka_unit_test(gap_events_ask_for_rereads_and_polls),
            cmocka_unit_test(unreadable_events_are_read_back),
            cmocka_unit_test(unnamed_malformed_events_poll_their_object_back),
            cmocka_unit_test(events_on_other_channels_are_skipped),
            cmocka_unit_test(records_without_email_are_skipped_and_counted),
            cmocka_unit_test(other_entities_are_skipped),
            cmocka_unit_test(positions_follow_each_channel),
            cmocka_unit_test(decide_publishes_only_real_changes),
            cmocka_unit_test(decide_sees_lead_conversion_once),
            cmocka_unit_test(soql_by_ids_text),
            cmocka_unit_test(soql_since_rounds_down_to_the_second),
            cmocka_unit_test(query_path_percent_encodes),
            cmocka_unit_test(lookups_fit_the_url_budget),
            cmocka_unit_test(query_pages_are_read),
            cmocka_unit_test(change_encodes_to_a_valid_sf_event),
            cmocka_unit_test(invalid_changes_are_refused_not_sent),
            cmocka_unit_test(copy_utf8_cuts_on_a_boundary_and_masks),
        };

        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
