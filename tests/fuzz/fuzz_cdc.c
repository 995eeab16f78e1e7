/*
 * fuzz_cdc.c - fuzz sf-ingest's network parsers: CometD answers (meta
 * replies and CDC events) and REST query pages. Any bytes in, no crash;
 * and every sf.event the mapping derives from what was accepted must
 * encode, and decode back as a valid envelope with the same id.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdc.h"
#include "mapping.h"
#include "optsync/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const char *detail)
{
        fprintf(stderr, "fuzz_cdc: %s: %s\n", what, detail ? detail : "");
        abort();
}

/* What the parser promises about an event it kept. */
static void check_event(const struct osy_sfi_event *ev)
{
        if (!ev->channel)
                die("event without channel", NULL);
        for (size_t i = 0; i < ev->record_cnt; i++)
                if (!osy_sfi_id_valid(ev->record_ids[i]))
                        die("invalid record id kept", ev->record_ids[i]);
        if (ev->replay_id &&
            (!ev->replay_id[0] || strlen(ev->replay_id) > OSY_SFI_REPLAY_MAX))
                die("bad replay id kept", ev->replay_id);
        if (ev->error)
                return;
        if (!ev->record_cnt && ev->change_type != OSY_SFI_CT_GAP_OVERFLOW)
                die("well-formed event without record ids", ev->channel);
        if (ev->commit_ts < 0 || ev->change_type == OSY_SFI_CT_UNKNOWN)
                die("well-formed event without time or type", ev->channel);
}

/* Every change the plan derives must become a valid sf.event. */
static void check_change(const struct osy_sfi_change *c0)
{
        struct osy_sfi_change c = *c0;
        char key[OSY_PARTITION_KEY_BUFSZ], id[OSY_ID_BUFSZ];
        char e[OSY_ERRSTR_SIZE];
        char *json = NULL;
        size_t len = 0;
        struct osy_msg m;

        if (!c.email[0]) /* sf-ingest looks these up first */
                snprintf(c.email, sizeof(c.email), "fuzz@example.com");
        if (osy_sfi_change_encode(&c, "fuzz", &json, &len, key, id, e,
                                  sizeof(e)))
                die("derived change does not encode", e);
        if (osy_msg_decode(json, len, &m, e, sizeof(e)))
                die("encoded sf.event does not decode", e);
        if (strcmp(m.id, id) || strncmp(key, "fuzz|", 5))
                die("id or key changed on the way", json);
        osy_msg_clear(&m);
        free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *buf = (const char *)data;
        struct osy_sfi_reply r;
        struct osy_sfi_plan plan;
        struct osy_sfi_page pg;
        char e[OSY_ERRSTR_SIZE];

        if (!osy_sfi_reply_parse(buf, size, &r, e, sizeof(e))) {
                osy_sfi_plan_init(&plan);
                for (size_t i = 0; i < r.event_cnt; i++) {
                        check_event(&r.events[i]);
                        if (osy_sfi_plan_add_event(&plan, &r.events[i],
                                                   "optsync"))
                                die("plan: out of memory", NULL);
                }
                for (size_t i = 0; i < plan.change_cnt; i++)
                        check_change(&plan.changes[i]);
                for (size_t i = 0; i < plan.reread_cnt; i++)
                        if (!osy_sfi_id_valid(plan.rereads[i].record_id))
                                die("re-read of an invalid id",
                                    plan.rereads[i].record_id);
                for (size_t i = 0; i < r.meta_cnt; i++)
                        (void)osy_sfi_meta_is_auth_error(&r.metas[i]);
                osy_sfi_plan_clear(&plan);
                osy_sfi_reply_clear(&r);
        }
        /* The same bytes as a REST query page, for both objects. */
        for (int obj = OSY_SF_CONTACT; obj <= OSY_SF_LEAD; obj++) {
                if (osy_sfi_page_parse(buf, size, (osy_sf_object_t)obj, &pg, e,
                                       sizeof(e)))
                        continue;
                for (size_t i = 0; i < pg.record_cnt; i++) {
                        struct osy_sfi_change out[2];
                        size_t k = osy_sfi_decide(&pg.records[i], NULL, out);

                        for (size_t j = 0; j < k; j++)
                                if (out[j].occurred_at >= 0)
                                        check_change(&out[j]);
                }
                osy_sfi_page_clear(&pg);
        }
        return 0;
}
