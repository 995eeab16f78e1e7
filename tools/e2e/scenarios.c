/*
 * scenarios.c - the user stories of the demo and the e2e suite: for each,
 * who in the seeded world fits it and what they do (see scenarios.h).
 */
#include "scenarios.h"

#include <string.h>

/* Index of the first unconverted record of @p type (any type if -1) whose
 * opt-out is @p opted_out (any if -1); -1 if none. */
static int find_record(const struct e2e_person *p, int type, int opted_out)
{
        for (size_t r = 0; r < p->n_sf; r++) {
                const struct e2e_sf_record *rec = &p->sf[r];
                if (rec->converted)
                        continue;
                if (type >= 0 && (int)rec->type != type)
                        continue;
                if (opted_out >= 0 && rec->opted_out != opted_out)
                        continue;
                return (int)r;
        }
        return -1;
}

static int has_converted(const struct e2e_person *p)
{
        for (size_t r = 0; r < p->n_sf; r++)
                if (p->sf[r].converted)
                        return 1;
        return 0;
}

static int list_not_active(const struct e2e_person *p)
{
        for (int l = 0; l < E2E_LISTS; l++)
                if (p->list_status[l] != E2E_ACTIVE &&
                    p->list_status[l] != E2E_BOUNCED)
                        return l;
        return -1;
}

static int pick_unsub_all(const struct e2e_person *p, struct e2e_change *c)
{
        c->kind = E2E_AC_UNSUBSCRIBE_ALL;
        return p->qualified && p->has_ac && e2e_person_active_lists(p) >= 2 &&
               find_record(p, E2E_SF_CONTACT, 0) >= 0 && !has_converted(p);
}

static int pick_resubscribe(const struct e2e_person *p, struct e2e_change *c)
{
        c->kind = E2E_AC_SUBSCRIBE;
        c->list = list_not_active(p);
        return p->qualified && p->has_ac && !p->bounced_hard &&
               e2e_person_active_lists(p) == 0 && c->list >= 0 &&
               find_record(p, -1, 1) >= 0;
}

static int pick_second_list(const struct e2e_person *p, struct e2e_change *c)
{
        c->kind = E2E_AC_SUBSCRIBE;
        c->list = list_not_active(p);
        return p->qualified && p->has_ac && !p->bounced_hard &&
               e2e_person_active_lists(p) == 1 && c->list >= 0 &&
               find_record(p, -1, 0) >= 0;
}

static int pick_hard_bounce(const struct e2e_person *p, struct e2e_change *c)
{
        c->kind = E2E_AC_BOUNCE_HARD;
        return p->qualified && p->has_ac && !p->bounced_hard &&
               e2e_person_active_lists(p) >= 1 && find_record(p, -1, 0) >= 0;
}

static int pick_soft_bounce(const struct e2e_person *p, struct e2e_change *c)
{
        c->kind = E2E_AC_BOUNCE_SOFT;
        return p->qualified && p->has_ac && !p->bounced_hard &&
               e2e_person_active_lists(p) >= 1 && find_record(p, -1, 0) >= 0;
}

static int pick_tick_contact(const struct e2e_person *p, struct e2e_change *c)
{
        int contact = find_record(p, E2E_SF_CONTACT, 0);

        c->kind   = E2E_SF_TICK;
        c->record = contact >= 0 ? (size_t)contact : 0;
        /* The duplicate-email case: a Lead with the same email must be
         * ticked too (R4, then R2's effect on every record). */
        return p->qualified && p->has_ac && e2e_person_active_lists(p) >= 1 &&
               contact >= 0 && find_record(p, E2E_SF_LEAD, 0) >= 0;
}

static int pick_tick_lead(const struct e2e_person *p, struct e2e_change *c)
{
        int lead = find_record(p, E2E_SF_LEAD, 0);

        c->kind   = E2E_SF_TICK;
        c->record = lead >= 0 ? (size_t)lead : 0;
        return p->qualified && p->has_ac && e2e_person_active_lists(p) >= 1 &&
               lead >= 0;
}

static int pick_unqualified(const struct e2e_person *p, struct e2e_change *c)
{
        c->kind = E2E_AC_UNSUBSCRIBE_ALL;
        return !p->qualified && p->has_ac && e2e_person_active_lists(p) >= 1 &&
               find_record(p, -1, 0) >= 0;
}

static int pick_converted(const struct e2e_person *p, struct e2e_change *c)
{
        c->kind = E2E_AC_UNSUBSCRIBE_ALL;
        return p->qualified && p->has_ac && e2e_person_active_lists(p) >= 1 &&
               has_converted(p) && find_record(p, E2E_SF_CONTACT, 0) >= 0;
}

static int pick_untick(const struct e2e_person *p, struct e2e_change *c)
{
        int rec = find_record(p, E2E_SF_CONTACT, 1);

        c->kind   = E2E_SF_UNTICK;
        c->record = rec >= 0 ? (size_t)rec : 0;
        return p->qualified && p->has_ac && rec >= 0 &&
               e2e_person_active_lists(p) == 0;
}

const struct e2e_scenario e2e_scenarios[] = {
    {"r2_unsubscribe_all",
     "A contact unsubscribes from all lists through a link", pick_unsub_all},
    {"r1_resubscribe_from_zero", "A contact on zero lists subscribes again",
     pick_resubscribe},
    {"r1_second_list_no_change",
     "A contact on one list subscribes to a second one", pick_second_list},
    {"r3_hard_bounce", "A campaign hard-bounces", pick_hard_bounce},
    {"r3_soft_bounce_no_change", "A campaign soft-bounces", pick_soft_bounce},
    {"r4_tick_contact_with_lead",
     "An SF user ticks Email Opt Out on a Contact (a Lead shares the email)",
     pick_tick_contact},
    {"r4_tick_lead", "An SF user ticks Email Opt Out on a Lead",
     pick_tick_lead},
    {"unqualified_no_change",
     "An unqualified contact unsubscribes from all lists", pick_unqualified},
    {"converted_lead_untouched",
     "A contact whose Lead was converted unsubscribes", pick_converted},
    {"r4_untick_no_change", "An SF user unticks Email Opt Out", pick_untick},
};

const size_t e2e_n_scenarios = sizeof(e2e_scenarios) / sizeof(e2e_scenarios[0]);

const struct e2e_scenario *e2e_scenario_find(const char *id)
{
        for (size_t i = 0; i < e2e_n_scenarios; i++)
                if (!strcmp(e2e_scenarios[i].id, id))
                        return &e2e_scenarios[i];
        return NULL;
}

int e2e_scenario_pick(const struct e2e_scenario *sc, const struct e2e_world *w,
                      unsigned char *used, struct e2e_change *c)
{
        for (size_t who = 0; who < w->n; who++) {
                struct e2e_change pick = {.person = who};

                if (!used[who] && sc->pick(&w->people[who], &pick)) {
                        *c        = pick;
                        used[who] = 1;
                        return 0;
                }
        }
        return -1;
}
