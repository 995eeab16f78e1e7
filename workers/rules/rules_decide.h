/*
 * rules_decide.h - the pure decision function of the rules worker:
 * (event, person state, AC look-up) -> (commands, audit, new state).
 * No I/O, no clock: docs/rules.md has the decision table, and
 * tests/rules/test_rules_decide.c tests every row.
 */
#ifndef OPTSYNC_RULES_DECIDE_H
#define OPTSYNC_RULES_DECIDE_H

#include <stddef.h>

#include "optsync/envelope.h"
#include "optsync/err.h"
#include "rules_state.h"

/** Settings the decision depends on. */
struct osy_rules_ctx {
        /** Sync every contact on both sides, not only the tagged ones
         *  (OPTSYNC_SYNC_ALL_CONTACTS). */
        int sync_all_contacts;
};

/** What the decision needs from the AC API before it can be made. */
enum {
        OSY_RULES_NEED_CONTACT = 1, /**< does an AC contact exist (by email) */
        OSY_RULES_NEED_LISTS   = 2, /**< the contact's active lists */
        OSY_RULES_NEED_TAGS    = 4, /**< the contact's tags */
        OSY_RULES_NEED_BOUNCE  = 8  /**< hard or soft, for a bounce of
                                         unknown type */
};

/**
 * The AC API's answer, fetched after the event happened: it shows the
 * contact as it is NOW (the event included, maybe later changes too).
 * Zeroed: no look-up was made.
 */
struct osy_rules_lookup {
        int done;  /**< 1: a look-up was made for this event */
        int found; /**< 1: AC has a contact with the person's email */
        char contact_id[OSY_RULES_ID_MAX + 1];
        int have_lists; /**< lists[] holds the ACTIVE (status 1) lists */
        char **lists;   /**< borrowed, any order */
        size_t lists_cnt;
        int have_tags;
        unsigned tag_mask;
        int have_bounce; /**< bounce_hard is the resolved bounce type */
        int bounce_hard;
};

/** The outcome of one event. Owns @c next; free with
 *  osy_rules_decision_clear(). */
struct osy_rules_decision {
        /** Non-zero: OSY_RULES_NEED_* bits to look up in AC, then decide
         *  again with the answer. Nothing else below is set. */
        int need;
        /** The rule whose trigger matched (NONE: no rule's trigger). */
        osy_rule_t rule;
        /** applied (a command is emitted), skipped, stale, duplicate. */
        osy_outcome_t outcome;
        /** 1: emit an sf.command with this desired opt-out. */
        int emit_sf;
        int sf_opted_out;
        /** 1: emit an ac.command unsubscribe_all_lists (R4). */
        int emit_ac;
        /** Audit detail for people: inputs and why. */
        char detail[384];
        /** 1: @c next differs from the input state and must be written
         *  (always with a new version unless stale or duplicate). */
        int state_changed;
        /** The person's state after the event. */
        struct osy_rules_person next;
};

/**
 * @brief Decide one event.
 *
 * @param ev        a decoded ac.event or sf.event (its id and occurred_at
 *                  are the version).
 * @param prev      the person's state before the event (zeroed: unknown).
 * @param lk        the AC look-up for this event, or NULL.
 * @param duplicate 1 if the event's dedup entry exists (seen and done).
 * @param out       cleared, then filled; the caller clears it.
 * @returns OSY_OK; OSY_ERR_INVALID if @p ev is not an event;
 *          OSY_ERR_NOMEM.
 */
osy_err_t osy_rules_decide(const struct osy_rules_ctx *ctx,
                           const struct osy_msg *ev,
                           const struct osy_rules_person *prev,
                           const struct osy_rules_lookup *lk, int duplicate,
                           struct osy_rules_decision *out, char *errstr,
                           size_t errstr_size) OSY_MUSTCHECK;

/** @brief Free what @p d owns and zero it. NULL-safe. */
void osy_rules_decision_clear(struct osy_rules_decision *d);

/**
 * @brief Build the messages a decision emits, ready to encode: the
 *        sf.command and ac.command (when emitted) and the audit record.
 *        Each is osy_msg_init()ed here; the caller osy_msg_clear()s them.
 * @param sf, ac receive the commands when d->emit_sf / d->emit_ac (else
 *               left as OSY_MSG_NONE).
 * @param audit  always filled.
 * @returns OSY_OK, OSY_ERR_NOMEM, OSY_ERR_INVALID (a field refused).
 */
osy_err_t osy_rules_build_outputs(const struct osy_msg *ev,
                                  const struct osy_rules_decision *d,
                                  struct osy_msg *sf, struct osy_msg *ac,
                                  struct osy_msg *audit, char *errstr,
                                  size_t errstr_size) OSY_MUSTCHECK;

#endif /* OPTSYNC_RULES_DECIDE_H */
