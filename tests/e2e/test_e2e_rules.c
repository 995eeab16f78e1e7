/*
 * test_e2e_rules.c - acceptance tests, one per rule and edge: every worker
 * runs as a real process (embedded Kafka, redis-server, the sandbox); a
 * user change is made through the sandbox, the pipeline settles, and both
 * platforms must hold what the oracle (tools/e2e/world.c) says, for the
 * person changed and for everybody else. Also: optsync's own writes come
 * back as webhooks and CDC events and cause no further calls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "osy_test.h"
#include "scenarios.h"
#include "stack.h"
#include "world.h"

#define TENANT "acme"
#define PEOPLE 200
#define SEED 7

struct fixture {
        struct e2e_world world;
        struct e2e_stack stack;
        unsigned char used[PEOPLE];
        char err[4096];
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        char *fx, *st;

        if (!f || e2e_world_generate(&f->world, TENANT, PEOPLE, SEED))
                return -1;
        /* No AC limit in the sandbox, 50/s in optsync: the rules are under
         * test here, the limiter has its own tests. */
        fx                      = e2e_world_fixture_json(&f->world, 0);
        struct e2e_stack_opts o = {.tenant        = TENANT,
                                   .fixture_json  = fx,
                                   .ac_rate_per_s = 50,
                                   .fast_failover = 1,
                                   .keep_dir      = getenv("E2E_KEEP") != NULL};
        if (e2e_stack_start(&f->stack, &o, f->err, sizeof(f->err))) {
                fprintf(stderr, "stack: %s\n", f->err);
                free(fx);
                return -1;
        }
        free(fx);
        st = e2e_stack_state(&f->stack);
        if (!st || e2e_world_bind(&f->world, st, f->err, sizeof(f->err))) {
                fprintf(stderr, "bind: %s\n", f->err);
                free(st);
                return -1;
        }
        free(st);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;

        if (!f)
                return 0;
        if (f->stack.keep_dir)
                fprintf(stderr, "logs kept in %s\n", f->stack.dir);
        e2e_stack_stop(&f->stack);
        e2e_world_free(&f->world);
        free(f);
        return 0;
}

/* Settles, then compares the whole world with the oracle. */
static void assert_world_as_rules_say(struct fixture *f)
{
        char report[8192];
        long bad = e2e_check(&f->stack, &f->world, 1500, 90000, NULL, report,
                             sizeof(report));

        if (bad)
                fail_msg(
                    "%ld people differ from the rules (-1: no verdict):\n%s",
                    bad, report);
}

/* Plays the scenario @p id on a fitting person; @returns the oracle's
 * count of writes optsync must make. */
static int play(struct fixture *f, const char *id, struct e2e_change *c)
{
        const struct e2e_scenario *sc = e2e_scenario_find(id);
        const char *rule              = NULL;

        assert_non_null(sc);
        if (e2e_scenario_pick(sc, &f->world, f->used, c))
                fail_msg("nobody in the fixture fits %s", id);
        struct e2e_world before = {0};
        assert_int_equal(e2e_world_copy(&before, &f->world), 0);
        if (e2e_world_play(&f->world, f->stack.sandbox_url, c, &rule, f->err,
                           sizeof(f->err)))
                fail_msg("%s: %s", id, f->err);
        int writes = 0;
        /* Recount from the oracle's before/after: what optsync must do. */
        const struct e2e_person *a = &f->world.people[c->person];
        const struct e2e_person *b = &before.people[c->person];
        for (size_t r = 0; r < a->n_sf; r++)
                writes += a->sf[r].opted_out != b->sf[r].opted_out;
        for (int l = 0; l < E2E_LISTS; l++)
                writes += a->list_status[l] != b->list_status[l];
        e2e_world_free(&before);
        return writes;
}

static void run_scenario(void **state, const char *id)
{
        struct fixture *f = *state;
        struct e2e_change c;

        play(f, id, &c);
        assert_world_as_rules_say(f);
}

static void r1_subscribe_from_zero_lists_unticks_sf(void **state)
{
        run_scenario(state, "r1_resubscribe_from_zero");
}

static void r1_second_list_changes_nothing_in_sf(void **state)
{
        run_scenario(state, "r1_second_list_no_change");
}

static void r2_unsubscribe_from_all_lists_ticks_sf(void **state)
{
        run_scenario(state, "r2_unsubscribe_all");
}

static void r3_hard_bounce_ticks_sf(void **state)
{
        run_scenario(state, "r3_hard_bounce");
}

static void r3_soft_bounce_changes_nothing(void **state)
{
        run_scenario(state, "r3_soft_bounce_no_change");
}

static void r4_contact_tick_unsubscribes_ac_and_ticks_the_lead(void **state)
{
        run_scenario(state, "r4_tick_contact_with_lead");
}

static void r4_lead_tick_unsubscribes_ac(void **state)
{
        run_scenario(state, "r4_tick_lead");
}

static void r4_untick_changes_nothing_in_ac(void **state)
{
        run_scenario(state, "r4_untick_no_change");
}

static void unqualified_contact_changes_nothing_in_sf(void **state)
{
        run_scenario(state, "unqualified_no_change");
}

static void converted_lead_is_never_written(void **state)
{
        run_scenario(state, "converted_lead_untouched");
}

/* Every scenario at once, on distinct people: no interference. */
static void all_scenarios_together(void **state)
{
        struct fixture *f = *state;
        struct e2e_change c;

        for (size_t i = 0; i < e2e_n_scenarios; i++)
                play(f, e2e_scenarios[i].id, &c);
        assert_world_as_rules_say(f);
}

/* Counts requests of one endpoint class and method in the request log. */
static long count_requests(struct fixture *f, const char *endpoint,
                           const char *method)
{
        char path[256];
        char *body = NULL;
        long n     = 0;

        snprintf(path, sizeof(path),
                 "/sandbox/requests?endpoint=%s&limit=100000", endpoint);
        assert_int_equal(e2e_stack_call(&f->stack, "GET", path, NULL, &body),
                         200);
        char needle[32];
        snprintf(needle, sizeof(needle), "\"method\":\"%s\"", method);
        for (const char *p = body; (p = strstr(p, needle)); p++)
                n++;
        free(body);
        return n;
}

/*
 * R4 makes optsync write both platforms: the AC unsubscribes come back as
 * `api` webhooks and the SF writes as CDC events. Those echoes reach the
 * rules and must cause no command and no further API write.
 */
static void echoes_of_own_writes_cause_no_further_calls(void **state)
{
        struct fixture *f = *state;
        struct e2e_change c;
        struct e2e_totals before, after, later;

        play(f, "r4_tick_contact_with_lead", &c);
        assert_world_as_rules_say(f);
        assert_int_equal(e2e_stack_totals(&f->stack, &before), 0);
        /* One user change: one SF event, and one command per platform. */
        assert_int_equal(before.ac_commands, 1);
        assert_int_equal(before.sf_commands, 1);
        /* The echoes did arrive (else this test proves nothing). */
        assert_true(before.ac_events >= 1);
        assert_true(before.sf_events >= 2);
        long ac_writes = count_requests(f, "ac.contactLists", "POST") +
                         count_requests(f, "ac.import", "POST");
        long sf_writes = count_requests(f, "sf.*", "PATCH");
        assert_true(ac_writes >= 1);
        assert_true(sf_writes >= 1);

        /* Let every echo travel once more through the whole pipeline. */
        e2e_sleep_ms(3000);
        assert_int_equal(
            e2e_stack_settle(&f->stack, 1500, 60000, f->err, sizeof(f->err)),
            0);
        assert_int_equal(e2e_stack_totals(&f->stack, &after), 0);
        assert_int_equal(after.ac_commands, before.ac_commands);
        assert_int_equal(after.sf_commands, before.sf_commands);
        assert_int_equal(count_requests(f, "ac.contactLists", "POST") +
                             count_requests(f, "ac.import", "POST"),
                         ac_writes);
        assert_int_equal(count_requests(f, "sf.*", "PATCH"), sf_writes);

        /* And an R2 from AC: its SF write echoes as CDC, nothing follows. */
        play(f, "r2_unsubscribe_all", &c);
        assert_world_as_rules_say(f);
        assert_int_equal(e2e_stack_totals(&f->stack, &later), 0);
        assert_int_equal(later.ac_commands, after.ac_commands);
        assert_int_equal(later.sf_commands, after.sf_commands + 1);
        assert_int_equal(later.dlq, 0);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(
                r1_subscribe_from_zero_lists_unticks_sf, setup, teardown),
            cmocka_unit_test_setup_teardown(
                r1_second_list_changes_nothing_in_sf, setup, teardown),
            cmocka_unit_test_setup_teardown(
                r2_unsubscribe_from_all_lists_ticks_sf, setup, teardown),
            cmocka_unit_test_setup_teardown(r3_hard_bounce_ticks_sf, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(r3_soft_bounce_changes_nothing,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                r4_contact_tick_unsubscribes_ac_and_ticks_the_lead, setup,
                teardown),
            cmocka_unit_test_setup_teardown(r4_lead_tick_unsubscribes_ac, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(r4_untick_changes_nothing_in_ac,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                unqualified_contact_changes_nothing_in_sf, setup, teardown),
            cmocka_unit_test_setup_teardown(converted_lead_is_never_written,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(all_scenarios_together, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(
                echoes_of_own_writes_cause_no_further_calls, setup, teardown),
        };

        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
