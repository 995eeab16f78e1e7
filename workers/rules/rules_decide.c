/*
 * rules_decide.c - the opt-out rules R1..R4 as one pure function over an
 * event and the person's known state. docs/rules.md has the table.
 */
#include "rules_decide.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void osy_rules_decision_clear(struct osy_rules_decision *d)
{
        if (!d)
                return;
        osy_rules_person_clear(&d->next);
        memset(d, 0, sizeof(*d));
}

static void detail(struct osy_rules_decision *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void detail(struct osy_rules_decision *d, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->detail, sizeof(d->detail), fmt, ap);
        va_end(ap);
}

static const char *tri2str(osy_tri_t t)
{
        return t == OSY_TRI_TRUE ? "true" : t == OSY_TRI_FALSE ? "false" : "?";
}

/* Qualification as the audit shows it. Tags are known whenever it is
 * asked, unless the scope setting makes them irrelevant. */
static int qualified(const struct osy_rules_ctx *ctx,
                     const struct osy_rules_person *p)
{
        return ctx->sync_all_contacts || (p->tags_known && p->tag_mask != 0);
}

static const char *qual2str(const struct osy_rules_ctx *ctx,
                            const struct osy_rules_person *p)
{
        if (p->tags_known && p->tag_mask)
                return "tagged";
        if (ctx->sync_all_contacts)
                return "all-contacts scope";
        return p->tags_known ? "no qualifying tag" : "tags unknown";
}

/* Replace p's lists with a copy of an unordered array. */
static osy_err_t lists_set(struct osy_rules_person *p, char *const *lists,
                           size_t n)
{
        osy_err_t err;

        osy_rules_lists_clear(p);
        for (size_t i = 0; i < n; i++)
                if ((err = osy_rules_lists_add(p, lists[i])))
                        return err;
        p->lists_known = 1;
        return OSY_OK;
}

/* Fold what the AC API said into the working state (the parts that do
 * not depend on the event's kind). */
static osy_err_t merge_lookup(struct osy_rules_person *next,
                              const struct osy_rules_lookup *lk)
{
        if (!lk || !lk->done)
                return OSY_OK;
        if (!lk->found) {
                /* No contact: nothing to sync, no lists, no tags. A later
                 * AC event naming the contact clears this. */
                next->ac_missing    = 1;
                next->contact_id[0] = '\0';
                next->tags_known    = 1;
                next->tag_mask      = 0;
                osy_rules_lists_clear(next);
                next->lists_known = 1;
                return OSY_OK;
        }
        next->ac_missing = 0;
        snprintf(next->contact_id, sizeof(next->contact_id), "%s",
                 lk->contact_id);
        if (lk->have_tags) {
                next->tags_known = 1;
                next->tag_mask   = lk->tag_mask;
        }
        return OSY_OK;
}

/* ---- AC events ----------------------------------------------------------- */

/*
 * Subscribe / unsubscribe. B is the set of active lists before the event,
 * A after it. The cached set (from earlier events) is a "before" view; a
 * look-up is an "after" view (the webhook fires once the change is made),
 * so B is derived from it by undoing the event.
 *   R1: subscribe and |B| = 0 and |A| >= 1.
 *   R2: unsubscribe and |A| = 0 and (|B| >= 1, or the SF side is not
 *       known to be opted out already). The second half covers an
 *       unsubscribe from a list the cache did not know about: AC says the
 *       contact was on it, so it did leave its last list. When the SF side
 *       is already opted out (our own R4 unsubscribes echoed back), there
 *       is nothing to do, whether or not AC echoes.
 */
static osy_err_t decide_list_event(const struct osy_rules_ctx *ctx,
                                   const struct osy_msg *ev,
                                   const struct osy_rules_person *prev,
                                   const struct osy_rules_lookup *lk,
                                   struct osy_rules_decision *d)
{
        const struct osy_ac_event *e  = &ev->ac_event;
        struct osy_rules_person *next = &d->next;
        int sub                       = e->kind == OSY_AC_SUBSCRIBE;
        int unnamed                   = !strcmp(e->list_id, "0");
        int lk_lists    = lk && lk->done && (lk->have_lists || !lk->found);
        size_t before_n = 0, after_n;
        int trigger;
        osy_err_t err;

        if ((unnamed || !prev->lists_known) && !lk_lists)
                d->need |= OSY_RULES_NEED_LISTS;
        if (!ctx->sync_all_contacts && !next->tags_known)
                d->need |= OSY_RULES_NEED_TAGS;
        if (d->need)
                return OSY_OK;

        if (lk_lists) {
                /* After view S from AC. */
                if ((err = lists_set(next, lk->found ? lk->lists : NULL,
                                     lk->found ? lk->lists_cnt : 0)))
                        return err;
                if (unnamed) {
                        /* AC did not say which list: compare with what
                         * we knew; without a cache, a subscribe whose
                         * contact is now on exactly one list came from
                         * zero, and an unsubscribe left at least one. */
                        if (prev->lists_known)
                                before_n = prev->lists_cnt;
                        else if (sub)
                                before_n =
                                    next->lists_cnt == 1 ? 0 : next->lists_cnt;
                        else
                                before_n = next->lists_cnt + 1;
                } else if (sub) {
                        if ((err = osy_rules_lists_add(next, e->list_id)))
                                return err;
                        before_n = next->lists_cnt - 1;
                } else {
                        before_n = next->lists_cnt +
                                   !osy_rules_lists_has(next, e->list_id);
                        osy_rules_lists_remove(next, e->list_id);
                }
        } else {
                /* Before view from the cache. */
                before_n = next->lists_cnt;
                if (sub) {
                        if ((err = osy_rules_lists_add(next, e->list_id)))
                                return err;
                } else {
                        osy_rules_lists_remove(next, e->list_id);
                }
        }
        next->lists_known = 1;
        after_n           = next->lists_cnt;

        if (sub)
                trigger = before_n == 0 && after_n >= 1;
        else
                trigger = after_n == 0 &&
                          (before_n >= 1 || prev->sf_opted_out != OSY_TRI_TRUE);

        if (!trigger) {
                d->outcome = OSY_OUTCOME_SKIPPED;
                detail(d,
                       "%s list %s: active lists %zu -> %zu, %s; "
                       "no transition",
                       osy_ac_kind2str(e->kind), e->list_id, before_n, after_n,
                       sub       ? "already subscribed elsewhere"
                       : after_n ? "other lists still active"
                                 : "already known opted out");
                return OSY_OK;
        }
        d->rule = sub ? OSY_RULE_R1 : OSY_RULE_R2;
        if (!qualified(ctx, next)) {
                d->outcome = OSY_OUTCOME_SKIPPED;
                detail(d,
                       "%s list %s: active lists %zu -> %zu; contact not "
                       "qualified (%s): no command",
                       osy_ac_kind2str(e->kind), e->list_id, before_n, after_n,
                       qual2str(ctx, next));
                return OSY_OK;
        }
        d->outcome         = OSY_OUTCOME_APPLIED;
        d->emit_sf         = 1;
        d->sf_opted_out    = !sub;
        next->sf_opted_out = sub ? OSY_TRI_FALSE : OSY_TRI_TRUE;
        detail(d,
               "%s list %s: active lists %zu -> %zu (%s, %s); "
               "SF HasOptedOutOfEmail=%s",
               osy_ac_kind2str(e->kind), e->list_id, before_n, after_n,
               lk_lists ? "lists from AC" : "lists cached", qual2str(ctx, next),
               sub ? "false" : "true");
        return OSY_OK;
}

static osy_err_t decide_bounce(const struct osy_rules_ctx *ctx,
                               const struct osy_msg *ev,
                               const struct osy_rules_lookup *lk,
                               struct osy_rules_decision *d)
{
        const struct osy_ac_event *e  = &ev->ac_event;
        struct osy_rules_person *next = &d->next;
        int hard = e->bounce_type == OSY_BOUNCE_HARD, resolved = 0;

        if (e->bounce_type == OSY_BOUNCE_SOFT) {
                d->outcome = OSY_OUTCOME_SKIPPED;
                detail(d, "soft bounce: no effect");
                return OSY_OK;
        }
        if (e->bounce_type == OSY_BOUNCE_UNKNOWN) {
                if (lk && lk->done && !lk->found) {
                        /* Nothing to resolve it from: not hard. */
                        resolved = 1;
                } else if (lk && lk->done && lk->have_bounce) {
                        hard     = lk->bounce_hard;
                        resolved = 1;
                } else {
                        d->need |= OSY_RULES_NEED_BOUNCE;
                }
        }
        if (!ctx->sync_all_contacts && !next->tags_known && (hard || !resolved))
                d->need |= OSY_RULES_NEED_TAGS;
        if (d->need)
                return OSY_OK;
        if (!hard) {
                d->outcome = OSY_OUTCOME_SKIPPED;
                detail(d, "bounce of unknown type resolved from AC: not "
                          "hard; no effect");
                return OSY_OK;
        }
        /* AC marks a hard-bounced contact bounced (status 3) on every
         * list: no list is active any more. */
        d->rule = OSY_RULE_R3;
        osy_rules_lists_clear(next);
        next->lists_known = 1;
        if (!qualified(ctx, next)) {
                d->outcome = OSY_OUTCOME_SKIPPED;
                detail(d,
                       "hard bounce%s; contact not qualified (%s): no "
                       "command",
                       resolved ? " (type resolved from AC)" : "",
                       qual2str(ctx, next));
                return OSY_OK;
        }
        d->outcome         = OSY_OUTCOME_APPLIED;
        d->emit_sf         = 1;
        d->sf_opted_out    = 1;
        next->sf_opted_out = OSY_TRI_TRUE;
        detail(d, "hard bounce%s%s%s (%s); SF HasOptedOutOfEmail=true",
               resolved ? " (type resolved from AC)" : "",
               e->campaign_id ? ", campaign " : "",
               e->campaign_id ? e->campaign_id : "", qual2str(ctx, next));
        return OSY_OK;
}

static osy_err_t decide_ac(const struct osy_rules_ctx *ctx,
                           const struct osy_msg *ev,
                           const struct osy_rules_person *prev,
                           const struct osy_rules_lookup *lk,
                           struct osy_rules_decision *d)
{
        const struct osy_ac_event *e  = &ev->ac_event;
        struct osy_rules_person *next = &d->next;

        /* The event names the contact: it exists. */
        next->ac_missing = 0;
        snprintf(next->contact_id, sizeof(next->contact_id), "%s",
                 e->contact_id);
        if (e->has_tags) {
                next->tags_known = 1;
                next->tag_mask   = osy_rules_tag_mask(
                      (const char *const *)e->tags, e->tags_cnt);
        }
        if (next->tags_known &&
            (e->kind == OSY_AC_TAG_ADDED || e->kind == OSY_AC_TAG_REMOVED)) {
                unsigned bit = osy_rules_tag_bit(e->tag);
                if (e->kind == OSY_AC_TAG_ADDED)
                        next->tag_mask |= bit;
                else
                        next->tag_mask &= ~bit;
        }

        switch (e->kind) {
        case OSY_AC_SUBSCRIBE:
        case OSY_AC_UNSUBSCRIBE:
                return decide_list_event(ctx, ev, prev, lk, d);
        case OSY_AC_BOUNCE:
                return decide_bounce(ctx, ev, lk, d);
        case OSY_AC_TAG_ADDED:
        case OSY_AC_TAG_REMOVED:
                d->outcome = OSY_OUTCOME_SKIPPED;
                detail(d, "tag '%.200s' %s; qualified: %s", e->tag,
                       e->kind == OSY_AC_TAG_ADDED ? "added" : "removed",
                       next->tags_known ? (next->tag_mask ? "yes" : "no")
                                        : "unknown");
                return OSY_OK;
        default:
                d->outcome = OSY_OUTCOME_SKIPPED;
                detail(d, "%s: no rule", osy_ac_kind2str(e->kind));
                return OSY_OK;
        }
}

/* ---- SF events ------------------------------------------------------------
 */

/*
 * R4: a record ticked. The AC contact is unsubscribed from every active
 * list, which leaves it with none, so R2's effect (every SF record of the
 * person ticked) is decided here too, not waited for: AC may never echo
 * the unsubscribes (bulk import sends no webhooks). Known state makes
 * echoes no-ops: when the contact is known to have no active list, no AC
 * command; when the rules already opted the person out in SF, no SF
 * command. The echo flag itself is never read.
 */
static osy_err_t decide_sf(const struct osy_rules_ctx *ctx,
                           const struct osy_msg *ev,
                           struct osy_rules_decision *d)
{
        const struct osy_sf_event *e  = &ev->sf_event;
        struct osy_rules_person *next = &d->next;
        const char *obj = e->object == OSY_SF_LEAD ? "Lead" : "Contact";
        osy_tri_t before_sf;

        if (e->kind == OSY_SF_LEAD_CONVERTED) {
                d->outcome = OSY_OUTCOME_SKIPPED;
                detail(d,
                       "Lead %s converted: writes go to the converted "
                       "Contact; no rule",
                       e->record_id);
                return OSY_OK;
        }
        if (e->has_opted_out_of_email != OSY_TRI_TRUE) {
                /* Unticking never subscribes anyone in AC. The person
                 * now has a record that is not opted out. */
                next->sf_opted_out = OSY_TRI_FALSE;
                d->outcome         = OSY_OUTCOME_SKIPPED;
                detail(d,
                       "%s %s %s with HasOptedOutOfEmail=false: no "
                       "effect in AC",
                       obj, e->record_id, osy_sf_kind2str(e->kind));
                return OSY_OK;
        }
        d->rule = OSY_RULE_R4;
        if (next->ac_missing) {
                d->outcome = OSY_OUTCOME_SKIPPED;
                detail(d,
                       "%s %s ticked; no AC contact with this email: "
                       "nothing to sync",
                       obj, e->record_id);
                return OSY_OK;
        }
        if (!ctx->sync_all_contacts && !next->tags_known)
                d->need |= OSY_RULES_NEED_TAGS;
        if (!next->contact_id[0])
                d->need |= OSY_RULES_NEED_CONTACT;
        if (d->need)
                return OSY_OK;
        if (!qualified(ctx, next)) {
                d->outcome = OSY_OUTCOME_SKIPPED;
                detail(d,
                       "%s %s ticked; AC contact %s not qualified (%s): "
                       "no command",
                       obj, e->record_id, next->contact_id,
                       qual2str(ctx, next));
                return OSY_OK;
        }
        before_sf       = next->sf_opted_out;
        d->emit_ac      = !(next->lists_known && next->lists_cnt == 0);
        d->emit_sf      = before_sf != OSY_TRI_TRUE;
        d->sf_opted_out = 1;
        d->outcome      = d->emit_ac || d->emit_sf ? OSY_OUTCOME_APPLIED
                                                   : OSY_OUTCOME_SKIPPED;
        detail(d,
               "%s %s ticked (%s); AC contact %s: %s; every SF record of the "
               "person (known opted out: %s): %s",
               obj, e->record_id, qual2str(ctx, next), next->contact_id,
               d->emit_ac ? "unsubscribe from every active list"
                          : "known to have no active list",
               tri2str(before_sf),
               d->emit_sf ? "HasOptedOutOfEmail=true (R2 effect)"
                          : "already opted out by the rules");
        osy_rules_lists_clear(next);
        next->lists_known  = 1;
        next->sf_opted_out = OSY_TRI_TRUE;
        return OSY_OK;
}

/* ---- entry point ------------------------------------------------------ */

osy_err_t osy_rules_decide(const struct osy_rules_ctx *ctx,
                           const struct osy_msg *ev,
                           const struct osy_rules_person *prev,
                           const struct osy_rules_lookup *lk, int duplicate,
                           struct osy_rules_decision *d, char *errstr,
                           size_t errstr_size)
{
        osy_err_t err;

        memset(d, 0, sizeof(*d));
        if (ev->type != OSY_MSG_AC_EVENT && ev->type != OSY_MSG_SF_EVENT)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "rules: %s is not an event",
                                   osy_msg_type2str(ev->type));
        if ((err = osy_rules_person_copy(&d->next, prev)))
                goto nomem;

        if (duplicate) {
                d->outcome = OSY_OUTCOME_DUPLICATE;
                detail(d, "event id seen before: already decided");
                return OSY_OK;
        }
        /* Stale events lose. At equal times the partition order decides
         * (AC times have one-second resolution, so two events of one
         * second are both applied, in arrival order), except for the very
         * event already applied. */
        if (prev->version_ms && ev->occurred_at < prev->version_ms) {
                d->outcome = OSY_OUTCOME_STALE;
                detail(d,
                       "occurred %" PRId64 " ms before the last applied event "
                       "%s: dropped",
                       prev->version_ms - ev->occurred_at, prev->version_tie);
                return OSY_OK;
        }
        if (prev->version_ms && ev->occurred_at == prev->version_ms &&
            !strcmp(ev->id, prev->version_tie)) {
                d->outcome = OSY_OUTCOME_DUPLICATE;
                detail(d, "event is the last one applied: already decided");
                return OSY_OK;
        }
        if ((err = merge_lookup(&d->next, lk)))
                goto nomem;
        err = ev->type == OSY_MSG_AC_EVENT ? decide_ac(ctx, ev, prev, lk, d)
                                           : decide_sf(ctx, ev, d);
        if (err)
                goto nomem;
        if (d->need) {
                /* Nothing is decided yet: leave no half-made state. */
                int need = d->need;
                osy_rules_decision_clear(d);
                d->need = need;
                return OSY_OK;
        }
        d->next.version_ms = ev->occurred_at;
        memcpy(d->next.version_tie, ev->id, sizeof(d->next.version_tie));
        d->state_changed = 1;
        return OSY_OK;
nomem:
        osy_rules_decision_clear(d);
        return osy_err_set(err, errstr, errstr_size, "rules: %s",
                           err == OSY_ERR_TOO_LARGE ? "too many active lists"
                                                    : "out of memory");
}

/* ---- outputs ------------------------------------------------------------ */

static osy_err_t command_envelope(struct osy_msg *m, osy_msg_type_t type,
                                  const struct osy_msg *ev, char *errstr,
                                  size_t errstr_size)
{
        osy_msg_init(m, type);
        /* The cause event's time: a reprocessed event re-emits the same
         * ids, and end-to-end latency can be read off the command. */
        return osy_msg_set_envelope(m, ev->tenant, ev->email, OSY_SRC_RULES,
                                    ev->occurred_at, errstr, errstr_size);
}

osy_err_t osy_rules_build_outputs(const struct osy_msg *ev,
                                  const struct osy_rules_decision *d,
                                  struct osy_msg *sf, struct osy_msg *ac,
                                  struct osy_msg *audit, char *errstr,
                                  size_t errstr_size)
{
        osy_err_t err;

        osy_msg_init(sf, OSY_MSG_NONE);
        osy_msg_init(ac, OSY_MSG_NONE);
        if ((err = command_envelope(audit, OSY_MSG_AUDIT, ev, errstr,
                                    errstr_size)))
                goto out;
        audit->audit.stage   = OSY_STAGE_RULES;
        audit->audit.rule    = d->rule;
        audit->audit.outcome = d->outcome;
        memcpy(audit->audit.ref_id, ev->id, sizeof(audit->audit.ref_id));
        if ((err = osy_msg_strset(&audit->audit.action, "decide")) ||
            (d->detail[0] &&
             (err = osy_msg_strset_trunc(&audit->audit.detail, d->detail,
                                         OSY_TEXT_MAX))))
                goto nomem;

        if (d->emit_sf) {
                if ((err = command_envelope(sf, OSY_MSG_SF_COMMAND, ev, errstr,
                                            errstr_size)))
                        goto out;
                sf->sf_command.has_opted_out_of_email = d->sf_opted_out;
                sf->sf_command.rule                   = d->rule;
                memcpy(sf->sf_command.cause_event_id, ev->id, OSY_ID_BUFSZ);
                sf->sf_command.version.ms = ev->occurred_at;
                if ((err = osy_msg_strset(&sf->sf_command.version.tie, ev->id)))
                        goto nomem;
        }
        if (d->emit_ac) {
                if ((err = command_envelope(ac, OSY_MSG_AC_COMMAND, ev, errstr,
                                            errstr_size)))
                        goto out;
                ac->ac_command.action = OSY_AC_UNSUBSCRIBE_ALL_LISTS;
                ac->ac_command.rule   = OSY_RULE_R4;
                memcpy(ac->ac_command.cause_event_id, ev->id, OSY_ID_BUFSZ);
                ac->ac_command.version.ms = ev->occurred_at;
                if ((err =
                         osy_msg_strset(&ac->ac_command.version.tie, ev->id)) ||
                    (d->next.contact_id[0] &&
                     (err = osy_msg_strset(&ac->ac_command.contact_id,
                                           d->next.contact_id))))
                        goto nomem;
        }
        return OSY_OK;
nomem:
        osy_err_set(err, errstr, errstr_size, "rules: out of memory");
out:
        osy_msg_clear(sf);
        osy_msg_clear(ac);
        osy_msg_clear(audit);
        return err;
}
