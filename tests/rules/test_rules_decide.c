/*
 * test_rules_decide.c - the decision table of docs/rules.md, one case per
 * row: every rule, its edges (second list, unknown list, unknown bounce
 * type, echoes, stale and duplicate events, qualification), and the
 * person-state codec the worker keeps in Redis.
 */
#include "osy_test.h"
#include "rules_decide.h"
#include "rules_state.h"
#include "optsync/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 INT64_C(1795666380000)

/* One event to decide. Zero fields are defaults (AC event, echo 0). */
struct ev_spec {
        int sf;
        osy_ac_kind_t kind;
        const char *list;
        osy_bounce_t bounce;
        const char *tags; /* contact[tags] csv; NULL: not given */
        const char *tag;  /* tag events */
        osy_sf_kind_t sfkind;
        osy_tri_t opted;
        int64_t at; /* offset from T0 */
        int echo;
};

/* An AC look-up answer; NULL spec: none made. */
struct lk_spec {
        int found;
        const char *lists; /* csv of active lists; NULL: not fetched */
        int have_tags;
        unsigned mask;
        int have_bounce, hard;
};

/* Expected decision. lists: csv of the next active set, "?" for unknown,
 * NULL to skip the check. */
struct expect {
        int need;
        osy_rule_t rule;
        osy_outcome_t outcome;
        int emit_sf, sf_val, emit_ac;
        const char *lists;
        osy_tri_t sf;
};

static struct osy_msg *mk_event(const struct ev_spec *s)
{
        struct osy_msg *m =
            osy_msg_new(s->sf ? OSY_MSG_SF_EVENT : OSY_MSG_AC_EVENT);
        char errstr[OSY_ERRSTR_SIZE];

        assert_non_null(m);
        assert_int_equal(osy_msg_set_envelope(m, "acme", "jane@example.com",
                                              s->sf ? OSY_SRC_SF : OSY_SRC_AC,
                                              T0 + s->at, errstr,
                                              sizeof(errstr)),
                         OSY_OK);
        if (s->sf) {
                struct osy_sf_event *e = &m->sf_event;
                e->kind   = s->sfkind ? s->sfkind : OSY_SF_OPT_OUT_CHANGED;
                e->object = OSY_SF_CONTACT;
                assert_int_equal(
                    osy_msg_strset(&e->record_id, "0035g00000AbCdEAAZ"),
                    OSY_OK);
                if (e->kind == OSY_SF_LEAD_CONVERTED) {
                        e->object       = OSY_SF_LEAD;
                        e->is_converted = OSY_TRI_TRUE;
                        assert_int_equal(
                            osy_msg_strset(&e->record_id, "00Q5g00000AbCdEAAZ"),
                            OSY_OK);
                        assert_int_equal(
                            osy_msg_strset(&e->converted_contact_id,
                                           "0035g00000AbCdEAAZ"),
                            OSY_OK);
                } else {
                        e->has_opted_out_of_email = s->opted;
                }
                e->echo = s->echo;
        } else {
                struct osy_ac_event *e = &m->ac_event;
                e->kind                = s->kind;
                assert_int_equal(osy_msg_strset(&e->contact_id, "c1"), OSY_OK);
                if (s->list)
                        assert_int_equal(osy_msg_strset(&e->list_id, s->list),
                                         OSY_OK);
                e->bounce_type = s->bounce;
                if (s->tag)
                        assert_int_equal(osy_msg_strset(&e->tag, s->tag),
                                         OSY_OK);
                if (s->tags)
                        assert_int_equal(osy_ac_event_set_tags_csv(e, s->tags),
                                         OSY_OK);
                e->initiated_by = OSY_INIT_PUBLIC;
                e->echo         = s->echo;
        }
        if (osy_msg_finalize(m, errstr, sizeof(errstr)) != OSY_OK)
                fail_msg("finalize: %s", errstr);
        return m;
}

static void state_from(struct osy_rules_person *p, const char *enc)
{
        char errstr[OSY_ERRSTR_SIZE];

        memset(p, 0, sizeof(*p));
        if (!enc)
                return;
        if (osy_rules_person_decode(enc, strlen(enc), p, errstr,
                                    sizeof(errstr)))
                fail_msg("state '%s': %s", enc, errstr);
}

/* "1,2" from a person's lists; "?" when unknown. */
static void lists_str(const struct osy_rules_person *p, char *buf, size_t n)
{
        size_t len = 0;

        buf[0] = '\0';
        if (!p->lists_known) {
                snprintf(buf, n, "?");
                return;
        }
        for (size_t i = 0; i < p->lists_cnt; i++)
                len += (size_t)snprintf(buf + len, n - len, "%s%s",
                                        i ? "," : "", p->lists[i]);
}

/* Owned storage behind a struct osy_rules_lookup built from a spec. */
struct lk_store {
        struct osy_rules_lookup lk;
        char *items[8];
        char buf[128];
};

static const struct osy_rules_lookup *mk_lookup(struct lk_store *st,
                                                const struct lk_spec *s)
{
        memset(st, 0, sizeof(*st));
        if (!s)
                return NULL;
        st->lk.done  = 1;
        st->lk.found = s->found;
        snprintf(st->lk.contact_id, sizeof(st->lk.contact_id), "c1");
        if (s->lists) {
                char *p = st->buf;
                snprintf(st->buf, sizeof(st->buf), "%s", s->lists);
                st->lk.have_lists = 1;
                st->lk.lists      = st->items;
                while (*p) {
                        char *c                       = strchr(p, ',');
                        st->items[st->lk.lists_cnt++] = p;
                        if (!c)
                                break;
                        *c = '\0';
                        p  = c + 1;
                }
        }
        st->lk.have_tags   = s->have_tags;
        st->lk.tag_mask    = s->mask;
        st->lk.have_bounce = s->have_bounce;
        st->lk.bounce_hard = s->hard;
        return &st->lk;
}

/* Decide and compare; the decision goes to @p keep if given. */
static void run_full(const struct ev_spec *es, const char *state,
                     const struct lk_spec *ls, int dup, int sync_all,
                     const struct expect *x, struct osy_rules_decision *keep)
{
        struct osy_rules_ctx ctx = {.sync_all_contacts = sync_all};
        struct osy_rules_person prev;
        struct osy_rules_decision d;
        struct lk_store st;
        struct osy_msg *ev = mk_event(es);
        char errstr[OSY_ERRSTR_SIZE], got[256];

        state_from(&prev, state);
        assert_int_equal(osy_rules_decide(&ctx, ev, &prev, mk_lookup(&st, ls),
                                          dup, &d, errstr, sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(d.need, x->need);
        if (!x->need) {
                if (d.rule != x->rule || d.outcome != x->outcome)
                        fail_msg("rule %s outcome %s (want %s %s): %s",
                                 osy_rule2str(d.rule),
                                 osy_outcome2str(d.outcome),
                                 osy_rule2str(x->rule),
                                 osy_outcome2str(x->outcome), d.detail);
                assert_int_equal(d.emit_sf, x->emit_sf);
                if (x->emit_sf)
                        assert_int_equal(d.sf_opted_out, x->sf_val);
                assert_int_equal(d.emit_ac, x->emit_ac);
                if (x->lists) {
                        lists_str(&d.next, got, sizeof(got));
                        assert_string_equal(got, x->lists);
                }
                assert_int_equal(d.next.sf_opted_out, x->sf);
                assert_true(d.detail[0] != '\0');
                /* A decided event moves the version; stale and duplicate
                 * ones change nothing. */
                if (x->outcome == OSY_OUTCOME_STALE ||
                    x->outcome == OSY_OUTCOME_DUPLICATE) {
                        assert_int_equal(d.state_changed, 0);
                } else {
                        assert_int_equal(d.state_changed, 1);
                        assert_true(d.next.version_ms == ev->occurred_at);
                        assert_string_equal(d.next.version_tie, ev->id);
                }
        }
        if (keep)
                *keep = d;
        else
                osy_rules_decision_clear(&d);
        osy_rules_person_clear(&prev);
        osy_msg_free(ev);
}

static void run(const struct ev_spec *es, const char *state,
                const struct lk_spec *ls, const struct expect *x)
{
        run_full(es, state, ls, 0, 0, x, NULL);
}

/* States: "1|ms|tie|flags|mask|sf|contact|lists"; flags 1 lists known,
 * 2 tags known, 4 no AC contact. Mask 1 = added-to-salesforce-lead. */
#define Q_NOLISTS "1|0||3|1|-|c1|"
#define Q_L1 "1|0||3|1|-|c1|1"
#define Q_L12 "1|0||3|1|-|c1|1,2"
#define Q_L2 "1|0||3|1|-|c1|2"
#define UNQ_NOLISTS "1|0||3|0|-|c1|"
#define TAGS_ONLY "1|0||2|1|-|c1|"
#define LISTS_ONLY "1|0||1|0|-|c1|"

#define SUB(l)                                                                 \
        {                                                                      \
                .kind = OSY_AC_SUBSCRIBE, .list = (l)                          \
        }
#define UNSUB(l)                                                               \
        {                                                                      \
                .kind = OSY_AC_UNSUBSCRIBE, .list = (l)                        \
        }
#define BOUNCE(t)                                                              \
        {                                                                      \
                .kind = OSY_AC_BOUNCE, .bounce = (t)                           \
        }
#define TICK                                                                   \
        {                                                                      \
                .sf = 1, .opted = OSY_TRI_TRUE                                 \
        }
#define UNTICK                                                                 \
        {                                                                      \
                .sf = 1, .opted = OSY_TRI_FALSE                                \
        }

#define APPLIED_SF(r, v, l, s)                                                 \
        {                                                                      \
                .rule = (r), .outcome = OSY_OUTCOME_APPLIED, .emit_sf = 1,     \
                .sf_val = (v), .lists = (l), .sf = (s)                         \
        }
#define SKIPPED(r, l, s)                                                       \
        {                                                                      \
                .rule = (r), .outcome = OSY_OUTCOME_SKIPPED, .lists = (l),     \
                .sf = (s)                                                      \
        }
#define NEED(n)                                                                \
        {                                                                      \
                .need = (n)                                                    \
        }

/* ---- R1 ------------------------------------------------------------------ */

static void r1_subscribe_from_zero_lists(void **s)
{
        (void)s;
        run(&(struct ev_spec)SUB("1"), Q_NOLISTS, NULL,
            &(struct expect)APPLIED_SF(OSY_RULE_R1, 0, "1", OSY_TRI_FALSE));
}

static void r1_second_list_does_nothing(void **s)
{
        (void)s;
        run(&(struct ev_spec)SUB("2"), Q_L1, NULL,
            &(struct expect)SKIPPED(OSY_RULE_NONE, "1,2", OSY_TRI_UNSET));
}

static void r1_resubscribe_same_list_does_nothing(void **s)
{
        (void)s;
        run(&(struct ev_spec)SUB("1"), Q_L1, NULL,
            &(struct expect)SKIPPED(OSY_RULE_NONE, "1", OSY_TRI_UNSET));
}

static void r1_cache_miss_needs_lists(void **s)
{
        (void)s;
        run(&(struct ev_spec)SUB("1"), TAGS_ONLY, NULL,
            &(struct expect)NEED(OSY_RULES_NEED_LISTS));
}

static void r1_cache_miss_needs_lists_and_tags(void **s)
{
        (void)s;
        run(&(struct ev_spec)SUB("1"), NULL, NULL,
            &(struct expect)NEED(OSY_RULES_NEED_LISTS | OSY_RULES_NEED_TAGS));
}

static void r1_lookup_shows_only_this_list(void **s)
{
        (void)s;
        run(&(struct ev_spec)SUB("1"), TAGS_ONLY,
            &(struct lk_spec){.found = 1, .lists = "1"},
            &(struct expect)APPLIED_SF(OSY_RULE_R1, 0, "1", OSY_TRI_FALSE));
}

static void r1_lookup_shows_other_lists(void **s)
{
        (void)s;
        run(&(struct ev_spec)SUB("1"), TAGS_ONLY,
            &(struct lk_spec){.found = 1, .lists = "1,2"},
            &(struct expect)SKIPPED(OSY_RULE_NONE, "1,2", OSY_TRI_UNSET));
}

/* AC already shows a later unsubscribe: the event still counts as the
 * 0 -> 1 transition (the unsubscribe that follows it decides R2). */
static void r1_lookup_after_later_unsubscribe(void **s)
{
        (void)s;
        run(&(struct ev_spec)SUB("1"), TAGS_ONLY,
            &(struct lk_spec){.found = 1, .lists = ""},
            &(struct expect)APPLIED_SF(OSY_RULE_R1, 0, "1", OSY_TRI_FALSE));
}

static void r1_unqualified_contact_no_command(void **s)
{
        (void)s;
        run(&(struct ev_spec)SUB("1"), UNQ_NOLISTS, NULL,
            &(struct expect)SKIPPED(OSY_RULE_R1, "1", OSY_TRI_UNSET));
}

static void r1_sync_all_scope_qualifies_untagged(void **s)
{
        (void)s;
        run_full(&(struct ev_spec)SUB("1"), UNQ_NOLISTS, NULL, 0, 1,
                 &(struct expect)APPLIED_SF(OSY_RULE_R1, 0, "1", OSY_TRI_FALSE),
                 NULL);
}

static void r1_sync_all_needs_no_tags(void **s)
{
        (void)s;
        run_full(&(struct ev_spec)SUB("1"), LISTS_ONLY, NULL, 0, 1,
                 &(struct expect)APPLIED_SF(OSY_RULE_R1, 0, "1", OSY_TRI_FALSE),
                 NULL);
}

static void r1_unknown_tags_need_lookup(void **s)
{
        (void)s;
        run(&(struct ev_spec)SUB("1"), LISTS_ONLY, NULL,
            &(struct expect)NEED(OSY_RULES_NEED_TAGS));
}

static void r1_event_tags_qualify(void **s)
{
        (void)s;
        run(&(struct ev_spec){.kind = OSY_AC_SUBSCRIBE,
                              .list = "1",
                              .tags = "newsletter, Added-To-Salesforce-Lead"},
            LISTS_ONLY, NULL,
            &(struct expect)APPLIED_SF(OSY_RULE_R1, 0, "1", OSY_TRI_FALSE));
}

static void r1_event_without_qualifying_tag(void **s)
{
        (void)s;
        run(&(struct ev_spec){.kind = OSY_AC_SUBSCRIBE,
                              .list = "1",
                              .tags = "newsletter"},
            Q_NOLISTS, NULL,
            &(struct expect)SKIPPED(OSY_RULE_R1, "1", OSY_TRI_UNSET));
}

static void r1_list_zero_needs_lookup_despite_cache(void **s)
{
        (void)s;
        run(&(struct ev_spec)SUB("0"), Q_NOLISTS, NULL,
            &(struct expect)NEED(OSY_RULES_NEED_LISTS));
}

static void r1_list_zero_resolved_from_ac(void **s)
{
        (void)s;
        run(&(struct ev_spec)SUB("0"), Q_NOLISTS,
            &(struct lk_spec){.found = 1, .lists = "5"},
            &(struct expect)APPLIED_SF(OSY_RULE_R1, 0, "5", OSY_TRI_FALSE));
}

static void r1_list_zero_cached_nonempty(void **s)
{
        (void)s;
        run(&(struct ev_spec)SUB("0"), Q_L1,
            &(struct lk_spec){.found = 1, .lists = "1,5"},
            &(struct expect)SKIPPED(OSY_RULE_NONE, "1,5", OSY_TRI_UNSET));
}

static void r1_list_zero_no_cache_one_list(void **s)
{
        (void)s;
        run(&(struct ev_spec)SUB("0"), TAGS_ONLY,
            &(struct lk_spec){.found = 1, .lists = "5"},
            &(struct expect)APPLIED_SF(OSY_RULE_R1, 0, "5", OSY_TRI_FALSE));
}

static void r1_list_zero_no_cache_two_lists(void **s)
{
        (void)s;
        run(&(struct ev_spec)SUB("0"), TAGS_ONLY,
            &(struct lk_spec){.found = 1, .lists = "5,6"},
            &(struct expect)SKIPPED(OSY_RULE_NONE, "5,6", OSY_TRI_UNSET));
}

/* ---- R2 ------------------------------------------------------------------ */

static void r2_last_list_left(void **s)
{
        (void)s;
        run(&(struct ev_spec)UNSUB("1"), Q_L1, NULL,
            &(struct expect)APPLIED_SF(OSY_RULE_R2, 1, "", OSY_TRI_TRUE));
}

static void r2_other_list_still_active(void **s)
{
        (void)s;
        run(&(struct ev_spec)UNSUB("1"), Q_L12, NULL,
            &(struct expect)SKIPPED(OSY_RULE_NONE, "2", OSY_TRI_UNSET));
}

static void r2_unknown_list_while_others_active(void **s)
{
        (void)s;
        run(&(struct ev_spec)UNSUB("1"), Q_L2, NULL,
            &(struct expect)SKIPPED(OSY_RULE_NONE, "2", OSY_TRI_UNSET));
}

/* AC says the contact left list 1, which the cache did not know: it did
 * leave its last list, and SF is not known to be opted out. */
static void r2_unknown_list_empty_cache(void **s)
{
        (void)s;
        run(&(struct ev_spec)UNSUB("1"), Q_NOLISTS, NULL,
            &(struct expect)APPLIED_SF(OSY_RULE_R2, 1, "", OSY_TRI_TRUE));
}

/* Our own R4 unsubscribes echoed back: nothing to do. */
static void r2_echo_of_r4_is_noop(void **s)
{
        (void)s;
        run(&(struct ev_spec){.kind = OSY_AC_UNSUBSCRIBE,
                              .list = "1",
                              .echo = 1},
            "1|0||3|1|1|c1|", NULL,
            &(struct expect)SKIPPED(OSY_RULE_NONE, "", OSY_TRI_TRUE));
}

static void r2_same_noop_without_echo_flag(void **s)
{
        (void)s;
        run(&(struct ev_spec)UNSUB("1"), "1|0||3|1|1|c1|", NULL,
            &(struct expect)SKIPPED(OSY_RULE_NONE, "", OSY_TRI_TRUE));
}

static void r2_cache_miss_lookup_empty(void **s)
{
        (void)s;
        run(&(struct ev_spec)UNSUB("1"), TAGS_ONLY,
            &(struct lk_spec){.found = 1, .lists = ""},
            &(struct expect)APPLIED_SF(OSY_RULE_R2, 1, "", OSY_TRI_TRUE));
}

static void r2_cache_miss_lookup_other_list(void **s)
{
        (void)s;
        run(&(struct ev_spec)UNSUB("1"), TAGS_ONLY,
            &(struct lk_spec){.found = 1, .lists = "2"},
            &(struct expect)SKIPPED(OSY_RULE_NONE, "2", OSY_TRI_UNSET));
}

static void r2_list_zero_resolved_empty(void **s)
{
        (void)s;
        run(&(struct ev_spec)UNSUB("0"), Q_L12,
            &(struct lk_spec){.found = 1, .lists = ""},
            &(struct expect)APPLIED_SF(OSY_RULE_R2, 1, "", OSY_TRI_TRUE));
}

static void r2_list_zero_resolved_nonempty(void **s)
{
        (void)s;
        run(&(struct ev_spec)UNSUB("0"), Q_L12,
            &(struct lk_spec){.found = 1, .lists = "2"},
            &(struct expect)SKIPPED(OSY_RULE_NONE, "2", OSY_TRI_UNSET));
}

static void r2_unqualified_no_command(void **s)
{
        (void)s;
        run(&(struct ev_spec)UNSUB("1"), "1|0||3|0|-|c1|1", NULL,
            &(struct expect)SKIPPED(OSY_RULE_R2, "", OSY_TRI_UNSET));
}

/* ---- R3 ------------------------------------------------------------------ */

static void r3_hard_bounce_opts_out(void **s)
{
        (void)s;
        run(&(struct ev_spec)BOUNCE(OSY_BOUNCE_HARD), Q_L12, NULL,
            &(struct expect)APPLIED_SF(OSY_RULE_R3, 1, "", OSY_TRI_TRUE));
}

static void r3_soft_bounce_does_nothing(void **s)
{
        (void)s;
        run(&(struct ev_spec)BOUNCE(OSY_BOUNCE_SOFT), Q_L12, NULL,
            &(struct expect)SKIPPED(OSY_RULE_NONE, "1,2", OSY_TRI_UNSET));
}

static void r3_soft_bounce_needs_no_lookup(void **s)
{
        (void)s;
        run(&(struct ev_spec)BOUNCE(OSY_BOUNCE_SOFT), NULL, NULL,
            &(struct expect)SKIPPED(OSY_RULE_NONE, "?", OSY_TRI_UNSET));
}

static void r3_unknown_type_needs_lookup(void **s)
{
        (void)s;
        run(&(struct ev_spec)BOUNCE(OSY_BOUNCE_UNKNOWN), Q_L1, NULL,
            &(struct expect)NEED(OSY_RULES_NEED_BOUNCE));
}

static void r3_unknown_type_and_tags_need_lookup(void **s)
{
        (void)s;
        run(&(struct ev_spec)BOUNCE(OSY_BOUNCE_UNKNOWN), NULL, NULL,
            &(struct expect)NEED(OSY_RULES_NEED_BOUNCE | OSY_RULES_NEED_TAGS));
}

static void r3_unknown_resolved_hard(void **s)
{
        (void)s;
        run(&(struct ev_spec)BOUNCE(OSY_BOUNCE_UNKNOWN), Q_L1,
            &(struct lk_spec){.found = 1, .have_bounce = 1, .hard = 1},
            &(struct expect)APPLIED_SF(OSY_RULE_R3, 1, "", OSY_TRI_TRUE));
}

static void r3_unknown_resolved_soft(void **s)
{
        (void)s;
        run(&(struct ev_spec)BOUNCE(OSY_BOUNCE_UNKNOWN), Q_L1,
            &(struct lk_spec){.found = 1, .have_bounce = 1, .hard = 0},
            &(struct expect)SKIPPED(OSY_RULE_NONE, "1", OSY_TRI_UNSET));
}

static void r3_hard_bounce_unqualified(void **s)
{
        (void)s;
        run(&(struct ev_spec)BOUNCE(OSY_BOUNCE_HARD), "1|0||3|0|-|c1|1", NULL,
            &(struct expect)SKIPPED(OSY_RULE_R3, "", OSY_TRI_UNSET));
}

static void r3_hard_bounce_unknown_tags_need_lookup(void **s)
{
        (void)s;
        run(&(struct ev_spec)BOUNCE(OSY_BOUNCE_HARD), LISTS_ONLY, NULL,
            &(struct expect)NEED(OSY_RULES_NEED_TAGS));
}

/* ---- R4 ------------------------------------------------------------------ */

static void r4_tick_unsubscribes_all_and_ticks_others(void **s)
{
        struct osy_rules_decision d;
        (void)s;
        run_full(&(struct ev_spec)TICK, Q_L12, NULL, 0, 0,
                 &(struct expect){.rule    = OSY_RULE_R4,
                                  .outcome = OSY_OUTCOME_APPLIED,
                                  .emit_sf = 1,
                                  .sf_val  = 1,
                                  .emit_ac = 1,
                                  .lists   = "",
                                  .sf      = OSY_TRI_TRUE},
                 &d);
        assert_string_equal(d.next.contact_id, "c1");
        osy_rules_decision_clear(&d);
}

static void r4_echo_of_our_write_is_noop(void **s)
{
        (void)s;
        run(&(struct ev_spec){.sf = 1, .opted = OSY_TRI_TRUE, .echo = 1},
            "1|0||3|1|1|c1|", NULL,
            &(struct expect)SKIPPED(OSY_RULE_R4, "", OSY_TRI_TRUE));
}

static void r4_no_active_list_only_sf_command(void **s)
{
        (void)s;
        run(&(struct ev_spec)TICK, Q_NOLISTS, NULL,
            &(struct expect)APPLIED_SF(OSY_RULE_R4, 1, "", OSY_TRI_TRUE));
}

static void r4_sf_already_out_only_ac_command(void **s)
{
        (void)s;
        run(&(struct ev_spec)TICK, "1|0||3|1|1|c1|1", NULL,
            &(struct expect){.rule    = OSY_RULE_R4,
                             .outcome = OSY_OUTCOME_APPLIED,
                             .emit_ac = 1,
                             .lists   = "",
                             .sf      = OSY_TRI_TRUE});
}

static void r4_unknown_lists_still_unsubscribes(void **s)
{
        (void)s;
        run(&(struct ev_spec)TICK, TAGS_ONLY, NULL,
            &(struct expect){.rule    = OSY_RULE_R4,
                             .outcome = OSY_OUTCOME_APPLIED,
                             .emit_sf = 1,
                             .sf_val  = 1,
                             .emit_ac = 1,
                             .lists   = "",
                             .sf      = OSY_TRI_TRUE});
}

static void r4_untick_does_nothing_in_ac(void **s)
{
        (void)s;
        run(&(struct ev_spec)UNTICK, "1|0||3|1|1|c1|", NULL,
            &(struct expect)SKIPPED(OSY_RULE_NONE, "", OSY_TRI_FALSE));
}

static void r4_unknown_contact_needs_lookup(void **s)
{
        (void)s;
        run(&(struct ev_spec)TICK, NULL, NULL,
            &(struct expect)NEED(OSY_RULES_NEED_TAGS | OSY_RULES_NEED_CONTACT));
}

static void r4_sync_all_needs_contact_only(void **s)
{
        (void)s;
        run_full(&(struct ev_spec)TICK, NULL, NULL, 0, 1,
                 &(struct expect)NEED(OSY_RULES_NEED_CONTACT), NULL);
}

static void r4_lookup_qualified_contact(void **s)
{
        (void)s;
        run(&(struct ev_spec)TICK, NULL,
            &(struct lk_spec){.found = 1, .have_tags = 1, .mask = 4},
            &(struct expect){.rule    = OSY_RULE_R4,
                             .outcome = OSY_OUTCOME_APPLIED,
                             .emit_sf = 1,
                             .sf_val  = 1,
                             .emit_ac = 1,
                             .lists   = "",
                             .sf      = OSY_TRI_TRUE});
}

static void r4_no_ac_contact(void **s)
{
        struct osy_rules_decision d;
        (void)s;
        run_full(&(struct ev_spec)TICK, NULL, &(struct lk_spec){.found = 0}, 0,
                 0, &(struct expect)SKIPPED(OSY_RULE_R4, "", OSY_TRI_UNSET),
                 &d);
        assert_int_equal(d.next.ac_missing, 1);
        osy_rules_decision_clear(&d);
}

static void r4_cached_missing_contact_needs_no_lookup(void **s)
{
        (void)s;
        run(&(struct ev_spec)TICK, "1|0||7|0|-||", NULL,
            &(struct expect)SKIPPED(OSY_RULE_R4, "", OSY_TRI_UNSET));
}

static void r4_unqualified_contact(void **s)
{
        (void)s;
        run(&(struct ev_spec)TICK, "1|0||3|0|-|c1|1", NULL,
            &(struct expect)SKIPPED(OSY_RULE_R4, "1", OSY_TRI_UNSET));
}

static void r4_created_ticked_record_triggers(void **s)
{
        (void)s;
        run(&(struct ev_spec){.sf     = 1,
                              .sfkind = OSY_SF_CREATED,
                              .opted  = OSY_TRI_TRUE},
            Q_L1, NULL,
            &(struct expect){.rule    = OSY_RULE_R4,
                             .outcome = OSY_OUTCOME_APPLIED,
                             .emit_sf = 1,
                             .sf_val  = 1,
                             .emit_ac = 1,
                             .lists   = "",
                             .sf      = OSY_TRI_TRUE});
}

static void r4_lead_converted_no_rule(void **s)
{
        (void)s;
        run(&(struct ev_spec){.sf = 1, .sfkind = OSY_SF_LEAD_CONVERTED}, Q_L1,
            NULL, &(struct expect)SKIPPED(OSY_RULE_NONE, "1", OSY_TRI_UNSET));
}

/* Contact A ticked, AC never echoes (bulk import): the R2 effect is in the
 * same decision; then the CDC echo of our write to Lead B changes nothing,
 * and so do AC's echoes of the unsubscribes, if they come. */
static void r4_then_echoes_change_nothing(void **s)
{
        struct ev_spec tick      = TICK,
                       echo_b    = {.sf    = 1,
                                    .opted = OSY_TRI_TRUE,
                                    .echo  = 1,
                                    .at    = 2000},
                       unsub     = {.kind = OSY_AC_UNSUBSCRIBE,
                                    .list = "2",
                                    .echo = 1,
                                    .at   = 3000};
        struct osy_rules_ctx ctx = {0};
        struct osy_rules_person prev;
        struct osy_rules_decision d1, d2, d3;
        struct osy_msg *e1 = mk_event(&tick), *e2 = mk_event(&echo_b),
                       *e3 = mk_event(&unsub);
        char errstr[OSY_ERRSTR_SIZE];
        (void)s;

        state_from(&prev, Q_L12);
        assert_int_equal(osy_rules_decide(&ctx, e1, &prev, NULL, 0, &d1, errstr,
                                          sizeof(errstr)),
                         OSY_OK);
        assert_true(d1.emit_ac && d1.emit_sf && d1.sf_opted_out);
        assert_int_equal(osy_rules_decide(&ctx, e2, &d1.next, NULL, 0, &d2,
                                          errstr, sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(d2.outcome, OSY_OUTCOME_SKIPPED);
        assert_false(d2.emit_ac || d2.emit_sf);
        assert_int_equal(osy_rules_decide(&ctx, e3, &d2.next, NULL, 0, &d3,
                                          errstr, sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(d3.outcome, OSY_OUTCOME_SKIPPED);
        assert_false(d3.emit_ac || d3.emit_sf);
        osy_rules_decision_clear(&d1);
        osy_rules_decision_clear(&d2);
        osy_rules_decision_clear(&d3);
        osy_rules_person_clear(&prev);
        osy_msg_free(e1);
        osy_msg_free(e2);
        osy_msg_free(e3);
}

/* The echo flag is never read: every event decides the same with it on. */
static void echo_flag_never_changes_outcome(void **s)
{
        static const char *const states[] = {
            NULL, Q_NOLISTS, Q_L1, Q_L12, TAGS_ONLY, "1|0||3|1|1|c1|"};
        struct ev_spec evs[]     = {SUB("1"), UNSUB("1"), SUB("0"),
                                    TICK,     UNTICK,     BOUNCE(OSY_BOUNCE_HARD)};
        struct osy_rules_ctx ctx = {0};
        char errstr[OSY_ERRSTR_SIZE];
        (void)s;

        for (size_t i = 0; i < sizeof(states) / sizeof(*states); i++) {
                for (size_t j = 0; j < sizeof(evs) / sizeof(*evs); j++) {
                        struct osy_rules_person prev;
                        struct osy_rules_decision a, b;
                        struct osy_msg *m0, *m1;
                        char *sa, *sb;

                        evs[j].echo = 0;
                        m0          = mk_event(&evs[j]);
                        evs[j].echo = 1;
                        m1          = mk_event(&evs[j]);
                        state_from(&prev, states[i]);
                        assert_int_equal(osy_rules_decide(&ctx, m0, &prev, NULL,
                                                          0, &a, errstr,
                                                          sizeof(errstr)),
                                         OSY_OK);
                        assert_int_equal(osy_rules_decide(&ctx, m1, &prev, NULL,
                                                          0, &b, errstr,
                                                          sizeof(errstr)),
                                         OSY_OK);
                        assert_int_equal(a.need, b.need);
                        assert_int_equal(a.rule, b.rule);
                        assert_int_equal(a.outcome, b.outcome);
                        assert_int_equal(a.emit_sf, b.emit_sf);
                        assert_int_equal(a.emit_ac, b.emit_ac);
                        assert_string_equal(a.detail, b.detail);
                        assert_int_equal(
                            osy_rules_person_encode(&a.next, &sa, NULL),
                            OSY_OK);
                        assert_int_equal(
                            osy_rules_person_encode(&b.next, &sb, NULL),
                            OSY_OK);
                        assert_string_equal(sa, sb);
                        free(sa);
                        free(sb);
                        osy_rules_decision_clear(&a);
                        osy_rules_decision_clear(&b);
                        osy_rules_person_clear(&prev);
                        osy_msg_free(m0);
                        osy_msg_free(m1);
                }
        }
}

/* ---- tags ------------------------------------------------------------------
 */

static void tag_added_qualifies_contact(void **s)
{
        struct osy_rules_decision d;
        (void)s;
        run_full(&(struct ev_spec){.kind = OSY_AC_TAG_ADDED,
                                   .tag  = "created-from-salesforce-contact"},
                 UNQ_NOLISTS, NULL, 0, 0,
                 &(struct expect)SKIPPED(OSY_RULE_NONE, "", OSY_TRI_UNSET), &d);
        assert_int_equal(d.next.tag_mask, 1u << 3);
        assert_int_equal(d.next.tags_known, 1);
        osy_rules_decision_clear(&d);
}

static void tag_removed_unqualifies_contact(void **s)
{
        struct osy_rules_decision d;
        (void)s;
        run_full(&(struct ev_spec){.kind = OSY_AC_TAG_REMOVED,
                                   .tag  = "added-to-salesforce-lead"},
                 Q_L1, NULL, 0, 0,
                 &(struct expect)SKIPPED(OSY_RULE_NONE, "1", OSY_TRI_UNSET),
                 &d);
        assert_int_equal(d.next.tag_mask, 0);
        osy_rules_decision_clear(&d);
}

static void tag_event_other_tag_keeps_mask(void **s)
{
        struct osy_rules_decision d;
        (void)s;
        run_full(
            &(struct ev_spec){.kind = OSY_AC_TAG_REMOVED, .tag = "newsletter"},
            Q_L1, NULL, 0, 0,
            &(struct expect)SKIPPED(OSY_RULE_NONE, "1", OSY_TRI_UNSET), &d);
        assert_int_equal(d.next.tag_mask, 1);
        osy_rules_decision_clear(&d);
}

static void tag_event_with_unknown_tags_stays_unknown(void **s)
{
        struct osy_rules_decision d;
        (void)s;
        run_full(&(struct ev_spec){.kind = OSY_AC_TAG_ADDED,
                                   .tag  = "added-to-salesforce-lead"},
                 LISTS_ONLY, NULL, 0, 0,
                 &(struct expect)SKIPPED(OSY_RULE_NONE, "", OSY_TRI_UNSET), &d);
        assert_int_equal(d.next.tags_known, 0);
        osy_rules_decision_clear(&d);
}

static void tag_event_contact_tags_are_authoritative(void **s)
{
        struct osy_rules_decision d;
        (void)s;
        /* contact[tags] lists the full set, plus the removal itself. */
        run_full(&(struct ev_spec){.kind = OSY_AC_TAG_REMOVED,
                                   .tag  = "added-to-salesforce-lead",
                                   .tags = "added-to-salesforce-contact"},
                 Q_L1, NULL, 0, 0,
                 &(struct expect)SKIPPED(OSY_RULE_NONE, "1", OSY_TRI_UNSET),
                 &d);
        assert_int_equal(d.next.tag_mask, 1u << 2);
        osy_rules_decision_clear(&d);
}

/* ---- versions and duplicates --------------------------------------------- */

static void stale_subscribe_does_not_fire_r1(void **s)
{
        (void)s;
        run(&(struct ev_spec){.kind = OSY_AC_SUBSCRIBE,
                              .list = "1",
                              .at   = 1000},
            "1|1795666382000|abc|3|1|-|c1|", NULL,
            &(struct expect){.outcome = OSY_OUTCOME_STALE,
                             .lists   = "",
                             .sf      = OSY_TRI_UNSET});
}

static void stale_unsubscribe_does_not_fire_r2(void **s)
{
        (void)s;
        run(&(struct ev_spec){.kind = OSY_AC_UNSUBSCRIBE,
                              .list = "1",
                              .at   = 1000},
            "1|1795666382000|abc|3|1|-|c1|1", NULL,
            &(struct expect){.outcome = OSY_OUTCOME_STALE,
                             .lists   = "1",
                             .sf      = OSY_TRI_UNSET});
}

static void same_second_other_event_is_applied(void **s)
{
        (void)s;
        run(&(struct ev_spec){.kind = OSY_AC_SUBSCRIBE, .list = "2"},
            "1|1795666380000|ffffffffffffffffffffffffffffffff|3|1|-|c1|1", NULL,
            &(struct expect)SKIPPED(OSY_RULE_NONE, "1,2", OSY_TRI_UNSET));
}

static void last_applied_event_again_is_duplicate(void **s)
{
        struct ev_spec es = UNSUB("1");
        struct osy_msg *m = mk_event(&es);
        char state[256];
        (void)s;

        snprintf(state, sizeof(state), "1|%lld|%s|3|1|1|c1|",
                 (long long)m->occurred_at, m->id);
        run(&es, state, NULL,
            &(struct expect){.outcome = OSY_OUTCOME_DUPLICATE,
                             .lists   = "",
                             .sf      = OSY_TRI_TRUE});
        osy_msg_free(m);
}

static void dedup_hit_is_duplicate(void **s)
{
        (void)s;
        run_full(&(struct ev_spec)UNSUB("1"), Q_L1, NULL, 1, 0,
                 &(struct expect){.outcome = OSY_OUTCOME_DUPLICATE,
                                  .lists   = "1",
                                  .sf      = OSY_TRI_UNSET},
                 NULL);
}

static void not_an_event_is_refused(void **s)
{
        struct osy_rules_ctx ctx     = {0};
        struct osy_rules_person prev = {0};
        struct osy_rules_decision d;
        struct osy_msg m;
        char errstr[OSY_ERRSTR_SIZE];
        (void)s;

        osy_msg_init(&m, OSY_MSG_SF_COMMAND);
        assert_int_equal(osy_rules_decide(&ctx, &m, &prev, NULL, 0, &d, errstr,
                                          sizeof(errstr)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(errstr, "sf.command"));
}

/* ---- outputs
 * ------------------------------------------------------------------ */

static void outputs_carry_cause_and_version(void **s)
{
        struct ev_spec es        = TICK;
        struct osy_msg *ev       = mk_event(&es), sf, ac, audit;
        struct osy_rules_ctx ctx = {0};
        struct osy_rules_person prev;
        struct osy_rules_decision d;
        char errstr[OSY_ERRSTR_SIZE], *js;
        (void)s;

        state_from(&prev, Q_L12);
        assert_int_equal(osy_rules_decide(&ctx, ev, &prev, NULL, 0, &d, errstr,
                                          sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(osy_rules_build_outputs(ev, &d, &sf, &ac, &audit,
                                                 errstr, sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(sf.type, OSY_MSG_SF_COMMAND);
        assert_int_equal(sf.sf_command.has_opted_out_of_email, 1);
        assert_int_equal(sf.sf_command.rule, OSY_RULE_R4);
        assert_string_equal(sf.sf_command.cause_event_id, ev->id);
        assert_true(sf.sf_command.version.ms == ev->occurred_at);
        assert_string_equal(sf.sf_command.version.tie, ev->id);
        assert_int_equal(sf.source, OSY_SRC_RULES);
        assert_true(sf.occurred_at == ev->occurred_at);
        assert_int_equal(ac.type, OSY_MSG_AC_COMMAND);
        assert_int_equal(ac.ac_command.action, OSY_AC_UNSUBSCRIBE_ALL_LISTS);
        assert_string_equal(ac.ac_command.contact_id, "c1");
        assert_string_equal(ac.ac_command.cause_event_id, ev->id);
        assert_int_equal(audit.audit.stage, OSY_STAGE_RULES);
        assert_int_equal(audit.audit.rule, OSY_RULE_R4);
        assert_int_equal(audit.audit.outcome, OSY_OUTCOME_APPLIED);
        assert_string_equal(audit.audit.ref_id, ev->id);
        assert_string_equal(audit.audit.detail, d.detail);
        /* Every output is valid on the wire. */
        assert_int_equal(osy_msg_encode(&sf, &js, NULL, errstr, sizeof(errstr)),
                         OSY_OK);
        free(js);
        assert_int_equal(osy_msg_encode(&ac, &js, NULL, errstr, sizeof(errstr)),
                         OSY_OK);
        free(js);
        assert_int_equal(
            osy_msg_encode(&audit, &js, NULL, errstr, sizeof(errstr)), OSY_OK);
        free(js);
        osy_msg_clear(&sf);
        osy_msg_clear(&ac);
        osy_msg_clear(&audit);
        osy_rules_decision_clear(&d);
        osy_rules_person_clear(&prev);
        osy_msg_free(ev);
}

/* A reprocessed event re-emits the very same ids (writers and audit
 * consumers dedup on them). */
static void outputs_ids_are_deterministic(void **s)
{
        struct ev_spec es        = UNSUB("1");
        struct osy_msg *ev       = mk_event(&es), sf[2], ac[2], audit[2];
        struct osy_rules_ctx ctx = {0};
        struct osy_rules_person prev;
        char errstr[OSY_ERRSTR_SIZE];
        (void)s;

        state_from(&prev, Q_L1);
        for (int i = 0; i < 2; i++) {
                struct osy_rules_decision d;
                assert_int_equal(osy_rules_decide(&ctx, ev, &prev, NULL, 0, &d,
                                                  errstr, sizeof(errstr)),
                                 OSY_OK);
                assert_int_equal(osy_rules_build_outputs(ev, &d, &sf[i], &ac[i],
                                                         &audit[i], errstr,
                                                         sizeof(errstr)),
                                 OSY_OK);
                assert_int_equal(
                    osy_msg_finalize(&sf[i], errstr, sizeof(errstr)), OSY_OK);
                assert_int_equal(
                    osy_msg_finalize(&audit[i], errstr, sizeof(errstr)),
                    OSY_OK);
                assert_int_equal(ac[i].type, OSY_MSG_NONE);
                osy_rules_decision_clear(&d);
        }
        assert_string_equal(sf[0].id, sf[1].id);
        assert_string_equal(audit[0].id, audit[1].id);
        assert_string_not_equal(sf[0].id, audit[0].id);
        for (int i = 0; i < 2; i++) {
                osy_msg_clear(&sf[i]);
                osy_msg_clear(&ac[i]);
                osy_msg_clear(&audit[i]);
        }
        osy_rules_person_clear(&prev);
        osy_msg_free(ev);
}

/* ---- person state codec ------------------------------------------------- */

static void state_roundtrip(void **s)
{
        struct osy_rules_person p = {0}, q;
        char *enc, errstr[OSY_ERRSTR_SIZE];
        size_t len;
        (void)s;

        p.version_ms = T0;
        snprintf(p.version_tie, sizeof(p.version_tie), "%s",
                 "0123456789abcdef0123456789abcdef");
        snprintf(p.contact_id, sizeof(p.contact_id), "18723");
        p.lists_known  = 1;
        p.tags_known   = 1;
        p.tag_mask     = 0x15;
        p.sf_opted_out = OSY_TRI_FALSE;
        assert_int_equal(osy_rules_lists_add(&p, "7"), OSY_OK);
        assert_int_equal(osy_rules_lists_add(&p, "12"), OSY_OK);
        assert_int_equal(osy_rules_lists_add(&p, "7"), OSY_OK);
        assert_int_equal(p.lists_cnt, 2);
        assert_int_equal(osy_rules_person_encode(&p, &enc, &len), OSY_OK);
        assert_string_equal(enc, "1|1795666380000|0123456789abcdef0123456789ab"
                                 "cdef|3|21|0|18723|12,7");
        assert_int_equal(len, strlen(enc));
        assert_int_equal(
            osy_rules_person_decode(enc, len, &q, errstr, sizeof(errstr)),
            OSY_OK);
        assert_true(q.version_ms == T0);
        assert_string_equal(q.version_tie, p.version_tie);
        assert_string_equal(q.contact_id, "18723");
        assert_int_equal(q.tag_mask, 0x15);
        assert_int_equal(q.sf_opted_out, OSY_TRI_FALSE);
        assert_int_equal(q.lists_cnt, 2);
        assert_true(osy_rules_lists_has(&q, "7"));
        assert_true(osy_rules_lists_has(&q, "12"));
        assert_false(osy_rules_lists_has(&q, "1"));
        free(enc);
        osy_rules_person_clear(&p);
        osy_rules_person_clear(&q);
}

static void state_decode_refuses_garbage(void **s)
{
        static const char *const bad[] = {
            "",
            "garbage",
            "2|0||3|1|-|c1|",                    /* unknown format */
            "1|x||3|1|-|c1|",                    /* ms */
            "1|0||9|1|-|c1|",                    /* flags */
            "1|0||3|32|-|c1|",                   /* mask */
            "1|0||3|1|x|c1|",                    /* sf */
            "1|0||3|1|-|c 1|",                   /* contact */
            "1|0||3|1|-|c1|1,,2",                /* empty list */
            "1|0||3|1|-|c1|1,",                  /* trailing comma */
            "1|0||3|1|-|c1",                     /* 7 fields */
            "1|99999999999999999999||3|1|-|c1|", /* overflow */
            /* no time: as a version it made every later event stale */
            "1|9223372036854775807||3|1|-|c1|",
            "1|253402300800000||3|1|-|c1|",
        };
        struct osy_rules_person p;
        char errstr[OSY_ERRSTR_SIZE];
        (void)s;

        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                if (osy_rules_person_decode(bad[i], strlen(bad[i]), &p, errstr,
                                            sizeof(errstr)) != OSY_ERR_INVALID)
                        fail_msg("accepted '%s'", bad[i]);
                assert_int_equal(p.lists_cnt, 0);
        }
        /* The last millisecond of 9999 is still a time. */
        assert_int_equal(osy_rules_person_decode("1|253402300799999||3|1|-|c1|",
                                                 28, &p, errstr,
                                                 sizeof(errstr)),
                         OSY_OK);
        assert_true(p.version_ms == OSY_TIME_MAX_MS);
        osy_rules_person_clear(&p);
}

static void state_lists_are_a_sorted_set(void **s)
{
        struct osy_rules_person p = {0};
        (void)s;

        assert_int_equal(osy_rules_lists_add(&p, "b"), OSY_OK);
        assert_int_equal(osy_rules_lists_add(&p, "a"), OSY_OK);
        assert_int_equal(osy_rules_lists_add(&p, "c"), OSY_OK);
        assert_string_equal(p.lists[0], "a");
        assert_string_equal(p.lists[2], "c");
        osy_rules_lists_remove(&p, "b");
        osy_rules_lists_remove(&p, "zz");
        assert_int_equal(p.lists_cnt, 2);
        assert_string_equal(p.lists[1], "c");
        osy_rules_person_clear(&p);
}

static void state_key_per_person_and_seen_hash_per_second(void **s)
{
        char k1[OSY_RULES_KEY_BUFSZ], k2[OSY_RULES_KEY_BUFSZ];
        (void)s;

        assert_int_equal(osy_rules_state_key(k1, sizeof(k1), "optsync", "acme",
                                             "jane@example.com"),
                         OSY_OK);
        assert_string_equal(k1, "optsync:rules:p:{acme|jane@example.com}");
        /* Events are remembered per second of occurrence: every
         * millisecond of one second shares a hash, the next one does not. */
        assert_int_equal(osy_rules_seen_key(k2, sizeof(k2), "optsync",
                                            INT64_C(1767225600000)),
                         OSY_OK);
        assert_string_equal(k2, "optsync:rules:seen:1767225600");
        assert_int_equal(osy_rules_seen_key(k2, sizeof(k2), "optsync",
                                            INT64_C(1767225600999)),
                         OSY_OK);
        assert_string_equal(k2, "optsync:rules:seen:1767225600");
        assert_int_equal(osy_rules_seen_key(k2, sizeof(k2), "optsync",
                                            INT64_C(1767225601000)),
                         OSY_OK);
        assert_string_equal(k2, "optsync:rules:seen:1767225601");
        assert_int_equal(
            osy_rules_seen_key(k2, 20, "optsync", INT64_C(1767225601000)),
            OSY_ERR_TOO_LARGE);
        assert_int_equal(
            osy_rules_state_key(k1, 10, "optsync", "acme", "jane@example.com"),
            OSY_ERR_TOO_LARGE);
}

static void tag_bits_match_the_five_tags(void **s)
{
        const char *const tags[] = {"x",
                                    " salesforce-lead-converted-to-contact",
                                    "ADDED-TO-SALESFORCE-LEAD"};
        (void)s;

        assert_int_equal(osy_rules_tag_bit("added-to-salesforce-contact"),
                         1u << 2);
        assert_int_equal(osy_rules_tag_bit("added-to-salesforce"), 0);
        assert_int_equal(osy_rules_tag_bit(NULL), 0);
        assert_int_equal(osy_rules_tag_mask(tags, 3), (1u << 4) | 1u);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(r1_subscribe_from_zero_lists),
            cmocka_unit_test(r1_second_list_does_nothing),
            cmocka_unit_test(r1_resubscribe_same_list_does_nothing),
            cmocka_unit_test(r1_cache_miss_needs_lists),
            cmocka_unit_test(r1_cache_miss_needs_lists_and_tags),
            cmocka_unit_test(r1_lookup_shows_only_this_list),
            cmocka_unit_test(r1_lookup_shows_other_lists),
            cmocka_unit_test(r1_lookup_after_later_unsubscribe),
            cmocka_unit_test(r1_unqualified_contact_no_command),
            cmocka_unit_test(r1_sync_all_scope_qualifies_untagged),
            cmocka_unit_test(r1_sync_all_needs_no_tags),
            cmocka_unit_test(r1_unknown_tags_need_lookup),
            cmocka_unit_test(r1_event_tags_qualify),
            cmocka_unit_test(r1_event_without_qualifying_tag),
            cmocka_unit_test(r1_list_zero_needs_lookup_despite_cache),
            cmocka_unit_test(r1_list_zero_resolved_from_ac),
            cmocka_unit_test(r1_list_zero_cached_nonempty),
            cmocka_unit_test(r1_list_zero_no_cache_one_list),
            cmocka_unit_test(r1_list_zero_no_cache_two_lists),
            cmocka_unit_test(r2_last_list_left),
            cmocka_unit_test(r2_other_list_still_active),
            cmocka_unit_test(r2_unknown_list_while_others_active),
            cmocka_unit_test(r2_unknown_list_empty_cache),
            cmocka_unit_test(r2_echo_of_r4_is_noop),
            cmocka_unit_test(r2_same_noop_without_echo_flag),
            cmocka_unit_test(r2_cache_miss_lookup_empty),
            cmocka_unit_test(r2_cache_miss_lookup_other_list),
            cmocka_unit_test(r2_list_zero_resolved_empty),
            cmocka_unit_test(r2_list_zero_resolved_nonempty),
            cmocka_unit_test(r2_unqualified_no_command),
            cmocka_unit_test(r3_hard_bounce_opts_out),
            cmocka_unit_test(r3_soft_bounce_does_nothing),
            cmocka_unit_test(r3_soft_bounce_needs_no_lookup),
            cmocka_unit_test(r3_unknown_type_needs_lookup),
            cmocka_unit_test(r3_unknown_type_and_tags_need_lookup),
            cmocka_unit_test(r3_unknown_resolved_hard),
            cmocka_unit_test(r3_unknown_resolved_soft),
            cmocka_unit_test(r3_hard_bounce_unqualified),
            cmocka_unit_test(r3_hard_bounce_unknown_tags_need_lookup),
            cmocka_unit_test(r4_tick_unsubscribes_all_and_ticks_others),
            cmocka_unit_test(r4_echo_of_our_write_is_noop),
            cmocka_unit_test(r4_no_active_list_only_sf_command),
            cmocka_unit_test(r4_sf_already_out_only_ac_command),
            cmocka_unit_test(r4_unknown_lists_still_unsubscribes),
            cmocka_unit_test(r4_untick_does_nothing_in_ac),
            cmocka_unit_test(r4_unknown_contact_needs_lookup),
            cmocka_unit_test(r4_sync_all_needs_contact_only),
            cmocka_unit_test(r4_lookup_qualified_contact),
            cmocka_unit_test(r4_no_ac_contact),
            cmocka_unit_test(r4_cached_missing_contact_needs_no_lookup),
            cmocka_unit_test(r4_unqualified_contact),
            cmocka_unit_test(r4_created_ticked_record_triggers),
            cmocka_unit_test(r4_lead_converted_no_rule),
            cmocka_unit_test(r4_then_echoes_change_nothing),
            cmocka_unit_test(echo_flag_never_changes_outcome),
            cmocka_unit_test(tag_added_qualifies_contact),
            cmocka_unit_test(tag_removed_unqualifies_contact),
            cmocka_unit_test(tag_event_other_tag_keeps_mask),
            cmocka_unit_test(tag_event_with_unknown_tags_stays_unknown),
            cmocka_unit_test(tag_event_contact_tags_are_authoritative),
            cmocka_unit_test(stale_subscribe_does_not_fire_r1),
            cmocka_unit_test(stale_unsubscribe_does_not_fire_r2),
            cmocka_unit_test(same_second_other_event_is_applied),
            cmocka_unit_test(last_applied_event_again_is_duplicate),
            cmocka_unit_test(dedup_hit_is_duplicate),
            cmocka_unit_test(not_an_event_is_refused),
            cmocka_unit_test(outputs_carry_cause_and_version),
            cmocka_unit_test(outputs_ids_are_deterministic),
            cmocka_unit_test(state_roundtrip),
            cmocka_unit_test(state_decode_refuses_garbage),
            cmocka_unit_test(state_lists_are_a_sorted_set),
            cmocka_unit_test(state_key_per_person_and_seen_hash_per_second),
            cmocka_unit_test(tag_bits_match_the_five_tags),
        };
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
