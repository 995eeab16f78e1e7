/*
 * scenarios.h - the user stories the demo plays and the e2e suite tests,
 * one per rule and edge: who fits each (a predicate on the oracle's view
 * of a person) and what that person does.
 */
#ifndef OSY_E2E_SCENARIOS_H
#define OSY_E2E_SCENARIOS_H

#include <stddef.h>

#include "world.h"

/** One story: a stable id, a title, and the picker. */
struct e2e_scenario {
        const char *id;    /**< "r2_unsubscribe_all", for tests */
        const char *title; /**< what the user does, for the demo */
        /** Says whether @p p fits and fills the change (not c->person). */
        int (*pick)(const struct e2e_person *p, struct e2e_change *c);
};

/** The stories, in the demo's order. */
extern const struct e2e_scenario e2e_scenarios[];
/** How many there are. */
extern const size_t e2e_n_scenarios;

/** @returns the scenario with @p id, or NULL. */
const struct e2e_scenario *e2e_scenario_find(const char *id);

/**
 * @brief The first person of @p w whose @p used flag is 0 and who fits
 *        @p sc; fills @p c (person included) and sets the flag.
 * @returns 0, or -1 when nobody fits.
 */
int e2e_scenario_pick(const struct e2e_scenario *sc, const struct e2e_world *w,
                      unsigned char *used, struct e2e_change *c);

#endif /* OSY_E2E_SCENARIOS_H */
