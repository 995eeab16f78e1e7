/*
 * test_e2e_world.c - the e2e world and its oracle: the rules table case by
 * case, the generator, and the oracle's model of the sandbox checked
 * against a real optsync-sandbox (no workers: only the user's part).
 */
#include "osy_test.h"
#include "osy_test_sandbox.h"
#include "world.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- hand-made people for the oracle table ------------------------------ */

static void person(struct e2e_person *p, const char *email, int has_ac,
                   int qualified, int l0, int l1, int l2)
{
        memset(p, 0, sizeof(*p));
        snprintf(p->email, sizeof(p->email), "%s", email);
        snprintf(p->name, sizeof(p->name), "Test Person");
        p->has_ac         = has_ac;
        p->qualified      = qualified;
        p->list_status[0] = l0;
        p->list_status[1] = l1;
        p->list_status[2] = l2;
        if (has_ac)
                snprintf(p->ac_id, sizeof(p->ac_id), "7");
}

static size_t record(struct e2e_person *p, enum e2e_sf_type type, int converted,
                     int opted_out)
{
        struct e2e_sf_record *r = &p->sf[p->n_sf];

        r->type      = type;
        r->converted = converted;
        r->opted_out = opted_out;
        snprintf(r->id, sizeof(r->id), "%sSB00000000%02zuAAA",
                 type == E2E_SF_CONTACT ? "003" : "00Q", p->n_sf);
        return p->n_sf++;
}

static struct e2e_world one(struct e2e_person *p)
{
        struct e2e_world w = {.n = 1, .people = p};

        snprintf(w.tenant, sizeof(w.tenant), "t1");
        return w;
}

static int apply(struct e2e_person *p, enum e2e_change_kind kind, int list,
                 size_t rec, const char **rule)
{
        struct e2e_world w  = one(p);
        struct e2e_change c = {
            .kind = kind, .person = 0, .list = list, .record = rec};

        return e2e_world_apply(&w, &c, rule);
}

enum {
        NM = E2E_NOT_MEMBER,
        UC = E2E_UNCONFIRMED,
        AC = E2E_ACTIVE,
        UN = E2E_UNSUBSCRIBED,
        BO = E2E_BOUNCED
};

static void oracle_r1_from_zero_lists(void **state)
{
        struct e2e_person p;
        const char *rule = NULL;
        size_t c, l, cl;

        (void)state;
        person(&p, "a@x.test", 1, 1, UN, NM, UN);
        c  = record(&p, E2E_SF_CONTACT, 0, 1);
        l  = record(&p, E2E_SF_LEAD, 0, 1);
        cl = record(&p, E2E_SF_LEAD, 1, 1);
        assert_int_equal(apply(&p, E2E_AC_SUBSCRIBE, 1, 0, &rule), 2);
        assert_string_equal(rule, "R1: first active list");
        assert_int_equal(p.list_status[1], AC);
        assert_int_equal(p.list_status[0], UN);
        assert_int_equal(p.sf[c].opted_out, 0);
        assert_int_equal(p.sf[l].opted_out, 0);
        assert_int_equal(p.sf[cl].opted_out, 1); /* converted: untouched */
}

static void oracle_second_list_is_noop(void **state)
{
        struct e2e_person p;
        const char *rule = NULL;

        (void)state;
        person(&p, "a@x.test", 1, 1, AC, UN, NM);
        record(&p, E2E_SF_CONTACT, 0, 1); /* even an inconsistent one */
        assert_int_equal(apply(&p, E2E_AC_SUBSCRIBE, 2, 0, &rule), 0);
        assert_string_equal(rule, "none: a second list");
        assert_int_equal(p.list_status[2], AC);
        assert_int_equal(p.sf[0].opted_out, 1);
}

static void oracle_r2_last_list(void **state)
{
        struct e2e_person p;
        const char *rule = NULL;

        (void)state;
        person(&p, "a@x.test", 1, 1, UN, AC, UC);
        record(&p, E2E_SF_CONTACT, 0, 0);
        record(&p, E2E_SF_LEAD, 0, 0);
        record(&p, E2E_SF_LEAD, 1, 0);
        assert_int_equal(apply(&p, E2E_AC_UNSUBSCRIBE_LIST, 1, 0, &rule), 2);
        assert_string_equal(rule, "R2: no active list left");
        assert_int_equal(p.list_status[1], UN);
        assert_int_equal(p.list_status[2], UC); /* not active: untouched */
        assert_int_equal(p.sf[0].opted_out, 1);
        assert_int_equal(p.sf[1].opted_out, 1);
        assert_int_equal(p.sf[2].opted_out, 0);
}

static void oracle_unsubscribe_all_is_r2(void **state)
{
        struct e2e_person p;
        const char *rule = NULL;

        (void)state;
        person(&p, "a@x.test", 1, 1, AC, AC, UN);
        record(&p, E2E_SF_LEAD, 0, 0);
        assert_int_equal(apply(&p, E2E_AC_UNSUBSCRIBE_ALL, 0, 0, &rule), 1);
        assert_string_equal(rule, "R2: no active list left");
        assert_int_equal(e2e_person_active_lists(&p), 0);
        assert_int_equal(p.list_status[0], UN);
        assert_int_equal(p.list_status[1], UN);
        assert_int_equal(p.sf[0].opted_out, 1);
}

static void oracle_unsubscribe_one_of_two_is_noop(void **state)
{
        struct e2e_person p;
        const char *rule = NULL;

        (void)state;
        person(&p, "a@x.test", 1, 1, AC, NM, AC);
        record(&p, E2E_SF_CONTACT, 0, 0);
        assert_int_equal(apply(&p, E2E_AC_UNSUBSCRIBE_LIST, 0, 0, &rule), 0);
        assert_string_equal(rule, "none: other lists still active");
        assert_int_equal(p.list_status[0], UN);
        assert_int_equal(p.list_status[2], AC);
        assert_int_equal(p.sf[0].opted_out, 0);
}

static void oracle_r3_hard_bounce(void **state)
{
        struct e2e_person p;
        const char *rule = NULL;

        (void)state;
        person(&p, "a@x.test", 1, 1, AC, UC, UN);
        record(&p, E2E_SF_CONTACT, 0, 0);
        record(&p, E2E_SF_LEAD, 1, 0);
        assert_int_equal(apply(&p, E2E_AC_BOUNCE_HARD, 0, 0, &rule), 1);
        assert_string_equal(rule, "R3: hard bounce");
        /* 0 and 1 become bounced, an unsubscribe stays */
        assert_int_equal(p.list_status[0], BO);
        assert_int_equal(p.list_status[1], BO);
        assert_int_equal(p.list_status[2], UN);
        assert_true(p.bounced_hard);
        assert_int_equal(p.sf[0].opted_out, 1);
        assert_int_equal(p.sf[1].opted_out, 0);
}

static void oracle_soft_bounce_is_noop(void **state)
{
        struct e2e_person p, before;
        struct e2e_world wb = one(&before), wp = one(&p);
        const char *rule = NULL;

        (void)state;
        person(&p, "a@x.test", 1, 1, AC, NM, NM);
        record(&p, E2E_SF_CONTACT, 0, 0);
        before = p;
        assert_int_equal(apply(&p, E2E_AC_BOUNCE_SOFT, 0, 0, &rule), 0);
        assert_string_equal(rule, "none: soft bounce");
        assert_int_equal(e2e_world_diff(&wb, &wp, NULL, 0), 0);
}

static void oracle_r4_contact_tick(void **state)
{
        struct e2e_person p;
        const char *rule = NULL;
        size_t c, l;

        (void)state;
        person(&p, "a@x.test", 1, 1, AC, UN, AC);
        c = record(&p, E2E_SF_CONTACT, 0, 0);
        l = record(&p, E2E_SF_LEAD, 0, 0);
        /* two lists unsubscribed plus the same-email Lead ticked */
        assert_int_equal(apply(&p, E2E_SF_TICK, 0, c, &rule), 3);
        assert_string_equal(rule, "R4: ticked in SF");
        assert_int_equal(p.sf[c].opted_out, 1);
        assert_int_equal(p.sf[l].opted_out, 1);
        assert_int_equal(p.list_status[0], UN);
        assert_int_equal(p.list_status[1], UN);
        assert_int_equal(p.list_status[2], UN);
}

static void oracle_r4_lead_tick(void **state)
{
        struct e2e_person p;
        const char *rule = NULL;
        size_t c, l;

        (void)state;
        person(&p, "a@x.test", 1, 1, NM, AC, UC);
        c = record(&p, E2E_SF_CONTACT, 0, 0);
        l = record(&p, E2E_SF_LEAD, 0, 0);
        assert_int_equal(apply(&p, E2E_SF_TICK, 0, l, &rule), 2);
        assert_string_equal(rule, "R4: ticked in SF");
        assert_int_equal(p.sf[l].opted_out, 1);
        assert_int_equal(p.sf[c].opted_out, 1);
        assert_int_equal(p.list_status[1], UN);
        assert_int_equal(p.list_status[2], UC); /* only active lists */
}

static void oracle_untick_does_nothing_else(void **state)
{
        struct e2e_person p;
        const char *rule = NULL;

        (void)state;
        person(&p, "a@x.test", 1, 1, UN, UN, NM);
        record(&p, E2E_SF_CONTACT, 0, 1);
        record(&p, E2E_SF_LEAD, 0, 1);
        assert_int_equal(apply(&p, E2E_SF_UNTICK, 0, 0, &rule), 0);
        assert_string_equal(rule, "none: an untick never subscribes in AC");
        assert_int_equal(p.sf[0].opted_out, 0);
        assert_int_equal(p.sf[1].opted_out, 1);
        assert_int_equal(e2e_person_active_lists(&p), 0);
}

static void oracle_unqualified_only_the_users_change(void **state)
{
        struct e2e_person p;
        const char *rule = NULL;

        (void)state;
        person(&p, "a@x.test", 1, 0, AC, AC, NM);
        record(&p, E2E_SF_CONTACT, 0, 0);
        record(&p, E2E_SF_LEAD, 0, 0);
        assert_int_equal(apply(&p, E2E_AC_UNSUBSCRIBE_ALL, 0, 0, &rule), 0);
        assert_string_equal(rule, "none: not qualified");
        assert_int_equal(e2e_person_active_lists(&p), 0);
        assert_int_equal(p.sf[0].opted_out + p.sf[1].opted_out, 0);

        person(&p, "b@x.test", 1, 0, AC, NM, NM);
        record(&p, E2E_SF_CONTACT, 0, 0);
        record(&p, E2E_SF_LEAD, 0, 0);
        assert_int_equal(apply(&p, E2E_SF_TICK, 0, 1, &rule), 0);
        assert_string_equal(rule, "none: not qualified");
        assert_int_equal(p.sf[1].opted_out, 1);
        assert_int_equal(p.sf[0].opted_out, 0);
        assert_int_equal(p.list_status[0], AC);

        person(&p, "c@x.test", 1, 0, UN, NM, NM);
        record(&p, E2E_SF_CONTACT, 0, 1);
        assert_int_equal(apply(&p, E2E_AC_SUBSCRIBE, 0, 0, &rule), 0);
        assert_int_equal(p.sf[0].opted_out, 1);
        assert_int_equal(p.list_status[0], AC);

        person(&p, "d@x.test", 1, 0, AC, NM, NM);
        record(&p, E2E_SF_CONTACT, 0, 0);
        assert_int_equal(apply(&p, E2E_AC_BOUNCE_HARD, 0, 0, &rule), 0);
        assert_int_equal(p.sf[0].opted_out, 0);
        assert_int_equal(p.list_status[0], BO);
}

static void oracle_sf_only_tick_changes_only_that_record(void **state)
{
        struct e2e_person p;
        const char *rule = NULL;

        (void)state;
        person(&p, "a@x.test", 0, 0, NM, NM, NM);
        record(&p, E2E_SF_CONTACT, 0, 0);
        record(&p, E2E_SF_LEAD, 0, 0);
        assert_int_equal(apply(&p, E2E_SF_TICK, 0, 0, &rule), 0);
        assert_string_equal(rule, "none: no AC contact (R4 skipped)");
        assert_int_equal(p.sf[0].opted_out, 1);
        assert_int_equal(p.sf[1].opted_out, 0);
        /* and an AC change for it is refused */
        assert_int_equal(apply(&p, E2E_AC_UNSUBSCRIBE_ALL, 0, 0, &rule), 0);
        assert_string_equal(rule, "none: no AC contact");
}

static void oracle_converted_lead_never_changed(void **state)
{
        struct e2e_person p;
        const char *rule                   = NULL;
        const enum e2e_change_kind kinds[] = {
            E2E_AC_SUBSCRIBE, E2E_AC_UNSUBSCRIBE_ALL, E2E_AC_SUBSCRIBE,
            E2E_AC_BOUNCE_HARD};

        (void)state;
        for (int v = 0; v < 2; v++) {
                person(&p, "a@x.test", 1, 1, UN, NM, NM);
                record(&p, E2E_SF_CONTACT, 0, 1);
                record(&p, E2E_SF_LEAD, 1, v);
                for (size_t k = 0; k < sizeof(kinds) / sizeof(*kinds); k++) {
                        (void)apply(&p, kinds[k], 0, 0, &rule);
                        assert_int_equal(p.sf[1].opted_out, v);
                }
                /* R4 from the contact leaves it too */
                p.sf[0].opted_out = 0;
                (void)apply(&p, E2E_SF_TICK, 0, 0, &rule);
                assert_string_equal(rule, "R4: ticked in SF");
                assert_int_equal(p.sf[1].opted_out, v);
                /* a user cannot edit it either */
                assert_int_equal(
                    apply(&p, v ? E2E_SF_UNTICK : E2E_SF_TICK, 0, 1, &rule), 0);
                assert_string_equal(rule,
                                    "none: a converted lead is read-only");
                assert_int_equal(p.sf[1].opted_out, v);
        }
}

/* ---- the generator ------------------------------------------------------- */

static void generate_is_deterministic(void **state)
{
        struct e2e_world a, b, c;

        (void)state;
        assert_int_equal(e2e_world_generate(&a, "t1", 500, 42), 0);
        assert_int_equal(e2e_world_generate(&b, "t1", 500, 42), 0);
        assert_int_equal(e2e_world_generate(&c, "t1", 500, 43), 0);
        assert_int_equal(a.n, 500);
        assert_memory_equal(a.people, b.people, a.n * sizeof(*a.people));
        assert_int_equal(e2e_world_diff(&a, &b, NULL, 0), 0);
        /* another seed: other names and other states */
        assert_true(memcmp(a.people, c.people, a.n * sizeof(*a.people)));
        assert_true(e2e_world_diff(&a, &c, NULL, 0) > 100);
        e2e_world_free(&a);
        e2e_world_free(&b);
        e2e_world_free(&c);
}

/* Counts of each kind of person the demo and the suite look for. */
struct census {
        size_t qualified, unqualified_with_sf, dup, converted, sf_only, ac_only,
            zero_active, bounced, lead_only, two_lists;
};

static struct census count(const struct e2e_world *w)
{
        struct census k = {0};

        for (size_t i = 0; i < w->n; i++) {
                const struct e2e_person *p = &w->people[i];
                int contact = 0, lead = 0, conv = 0;

                for (size_t r = 0; r < p->n_sf; r++) {
                        contact += p->sf[r].type == E2E_SF_CONTACT;
                        lead +=
                            p->sf[r].type == E2E_SF_LEAD && !p->sf[r].converted;
                        conv += p->sf[r].converted;
                }
                k.qualified += p->has_ac && p->qualified;
                k.unqualified_with_sf += p->has_ac && !p->qualified && p->n_sf;
                k.dup += contact && lead;
                k.converted += conv > 0;
                k.sf_only += !p->has_ac;
                k.ac_only += p->has_ac && !p->n_sf;
                k.zero_active += p->has_ac && !p->bounced_hard &&
                                 e2e_person_active_lists(p) == 0;
                k.bounced += p->bounced_hard;
                k.lead_only += lead && !contact;
                k.two_lists += e2e_person_active_lists(p) >= 2;
        }
        return k;
}

static void generate_has_every_kind_of_person(void **state)
{
        (void)state;
        for (uint64_t seed = 1; seed <= 5; seed++) {
                struct e2e_world w;
                struct census k;

                assert_int_equal(e2e_world_generate(&w, "t1", 1000, seed), 0);
                k = count(&w);
                assert_in_range(k.qualified, 700, 900); /* about 80% */
                assert_true(k.unqualified_with_sf > 50);
                assert_true(k.dup > 20);
                assert_true(k.converted > 10);
                assert_true(k.sf_only > 20);
                assert_true(k.ac_only > 20);
                assert_true(k.zero_active > 50);
                assert_true(k.bounced > 5);
                assert_true(k.lead_only > 50);
                assert_true(k.two_lists > 50);
                e2e_world_free(&w);
                /* the floors hold for the smallest world too */
                assert_int_equal(e2e_world_generate(&w, "t1", 40, seed), 0);
                k = count(&w);
                assert_true(k.qualified && k.dup && k.converted && k.sf_only &&
                            k.ac_only && k.zero_active && k.bounced &&
                            k.lead_only);
                e2e_world_free(&w);
        }
}

static void generate_emails_unique_and_lower_case(void **state)
{
        struct e2e_world w;

        (void)state;
        assert_int_equal(e2e_world_generate(&w, "t1", 1000, 7), 0);
        for (size_t i = 0; i < w.n; i++) {
                const char *e = w.people[i].email;

                assert_non_null(strstr(e, "@example.test"));
                for (const char *c = e; *c; c++)
                        assert_false(*c >= 'A' && *c <= 'Z');
                for (size_t j = i + 1; j < w.n; j++)
                        assert_string_not_equal(e, w.people[j].email);
        }
        e2e_world_free(&w);
}

static void generate_starts_where_the_rules_would_leave_it(void **state)
{
        struct e2e_world w;

        (void)state;
        assert_int_equal(e2e_world_generate(&w, "t1", 1000, 9), 0);
        for (size_t i = 0; i < w.n; i++) {
                const struct e2e_person *p = &w.people[i];
                int lists                  = 0;

                for (int l = 0; l < E2E_LISTS; l++)
                        lists += p->list_status[l] != E2E_NOT_MEMBER;
                if (p->has_ac)
                        assert_in_range(lists, 1, 3);
                else
                        assert_int_equal(lists, 0);
                assert_in_range(p->n_sf, 0, E2E_MAX_SF);
                for (size_t r = 0; r < p->n_sf; r++) {
                        assert_int_equal(strlen(p->sf[r].id), 18);
                        if (p->has_ac && !p->sf[r].converted)
                                assert_int_equal(p->sf[r].opted_out,
                                                 e2e_person_active_lists(p) ==
                                                     0);
                }
        }
        e2e_world_free(&w);
}

static void diff_report_names_each_difference(void **state)
{
        struct e2e_world a, b;
        char report[1024];
        size_t i = 0;

        (void)state;
        assert_int_equal(e2e_world_generate(&a, "t1", 100, 3), 0);
        assert_int_equal(e2e_world_copy(&b, &a), 0);
        while (!(a.people[i].has_ac && a.people[i].n_sf))
                i++;
        b.people[i].sf[0].opted_out = !a.people[i].sf[0].opted_out;
        b.people[i].list_status[2]  = a.people[i].list_status[2] == E2E_ACTIVE
                                          ? E2E_UNSUBSCRIBED
                                          : E2E_ACTIVE;
        assert_int_equal(e2e_world_diff(&a, &b, report, sizeof(report)), 1);
        assert_non_null(strstr(report, a.people[i].email));
        assert_non_null(strstr(report, a.people[i].sf[0].id));
        assert_non_null(strstr(report, "AC list Events expected"));
        assert_non_null(
            strstr(report, a.people[i].sf[0].opted_out
                               ? "opted_out expected true, is false"
                               : "opted_out expected false, is true"));
        /* a tiny buffer is cut, not overrun */
        assert_int_equal(e2e_world_diff(&a, &b, report, 8), 1);
        assert_int_equal(strlen(report), 7);
        e2e_world_free(&a);
        e2e_world_free(&b);
}

static void describe_shows_both_platforms(void **state)
{
        struct e2e_person p;
        char buf[512];

        (void)state;
        person(&p, "a@x.test", 1, 1, AC, NM, UN);
        record(&p, E2E_SF_CONTACT, 0, 0);
        record(&p, E2E_SF_LEAD, 1, 1);
        e2e_person_describe(&p, buf, sizeof(buf));
        assert_non_null(strstr(buf, "AC  #7 lists: Newsletter active, "
                                    "Events unsubscribed; qualified"));
        assert_non_null(strstr(buf, "\nSF  Contact 003"));
        assert_non_null(strstr(buf, ": opted in; Lead 00Q"));
        assert_non_null(strstr(buf, "opted out (converted"));
        person(&p, "b@x.test", 0, 0, NM, NM, NM);
        e2e_person_describe(&p, buf, sizeof(buf));
        assert_string_equal(buf, "AC  no contact\nSF  no record");
}

/* ---- against a real sandbox ---------------------------------------------- */

struct fx {
        struct osy_test_sandbox sb;
        struct e2e_world w;
};

static char *get_state(struct fx *f)
{
        char path[128], *body = NULL;

        snprintf(path, sizeof(path), "/sandbox/state?tenant=%s", f->w.tenant);
        assert_int_equal(
            osy_test_sandbox_call(&f->sb, "GET", path, NULL, NULL, &body), 200);
        assert_non_null(body);
        return body;
}

static void start(struct fx *f, size_t n, uint64_t seed)
{
        static const char *const args[] = {"--set", "ac.rate_per_s=0", NULL};
        char err[512]                   = "", *fixture, *st;

        memset(f, 0, sizeof(*f));
        assert_int_equal(e2e_world_generate(&f->w, "e2e", n, seed), 0);
        fixture = e2e_world_fixture_json(&f->w, 0);
        assert_non_null(fixture);
        assert_int_equal(osy_test_sandbox_start(&f->sb, fixture, args), 0);
        free(fixture);
        st = get_state(f);
        if (e2e_world_bind(&f->w, st, err, sizeof(err)))
                fail_msg("bind: %s", err);
        free(st);
}

static void stop(struct fx *f)
{
        osy_test_sandbox_stop(&f->sb);
        e2e_world_free(&f->w);
}

/* Read the sandbox, compare with the oracle; @returns people differing. */
static size_t read_diff(struct fx *f, struct e2e_world *actual, char *report,
                        size_t size)
{
        char err[512] = "", *st = get_state(f);

        if (e2e_world_read(actual, &f->w, st, err, sizeof(err)))
                fail_msg("read: %s", err);
        free(st);
        return e2e_world_diff(&f->w, actual, report, size);
}

static void sandbox_fixture_loads_and_binds(void **state)
{
        struct fx f;
        struct e2e_world actual;
        char report[2048];
        char *st;
        cJSON *root;
        size_t ac = 0, sf = 0;

        (void)state;
        start(&f, 1000, 11);
        st   = get_state(&f);
        root = cJSON_Parse(st);
        free(st);
        for (size_t i = 0; i < f.w.n; i++) {
                ac += f.w.people[i].has_ac;
                sf += f.w.people[i].n_sf;
                if (f.w.people[i].has_ac)
                        assert_true(f.w.people[i].ac_id[0]);
        }
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(
                             cJSON_GetObjectItem(root, "ac"), "contacts")),
                         ac);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(
                             cJSON_GetObjectItem(root, "sf"), "contacts")) +
                             cJSON_GetArraySize(cJSON_GetObjectItem(
                                 cJSON_GetObjectItem(root, "sf"), "leads")),
                         sf);
        cJSON_Delete(root);
        if (read_diff(&f, &actual, report, sizeof(report)))
                fail_msg("fresh fixture differs: %s", report);
        e2e_world_free(&actual);
        stop(&f);
}

static void sandbox_bind_refuses_another_world(void **state)
{
        struct fx f;
        struct e2e_world other;
        char err[512] = "", *st;

        (void)state;
        start(&f, 60, 1);
        assert_int_equal(e2e_world_generate(&other, "e2e", 60, 2), 0);
        st = get_state(&f);
        assert_int_equal(e2e_world_bind(&other, st, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "@example.test"));
        free(st);
        e2e_world_free(&other);
        stop(&f);
}

typedef int (*pred_fn)(const struct e2e_person *p);

static size_t find(const struct e2e_world *w, pred_fn pred)
{
        for (size_t i = 0; i < w->n; i++)
                if (pred(&w->people[i]))
                        return i;
        fail_msg("no person fits");
        return 0;
}

static int unticked_open(const struct e2e_person *p)
{
        for (size_t r = 0; r < p->n_sf; r++)
                if (!p->sf[r].converted && !p->sf[r].opted_out)
                        return 1;
        return 0;
}

static int ticked_open(const struct e2e_person *p)
{
        for (size_t r = 0; r < p->n_sf; r++)
                if (!p->sf[r].converted && p->sf[r].opted_out)
                        return 1;
        return 0;
}

static int mailable(const struct e2e_person *p)
{
        return p->has_ac && !p->bounced_hard;
}

/*
 * Play @p c, then check the sandbox against the oracle: exactly this
 * person differs when the oracle says optsync has writes to make, and
 * only on the sides named (the user's own part has happened).
 */
static void play_and_check(struct fx *f, struct e2e_change c,
                           const char *want_rule, int ac_pending,
                           int sf_pending)
{
        struct e2e_world actual;
        struct e2e_person *e, *a;
        char err[512]    = "", report[2048];
        const char *rule = NULL;
        size_t differ;

        if (e2e_world_play(&f->w, f->sb.base_url, &c, &rule, err, sizeof(err)))
                fail_msg("play: %s", err);
        assert_non_null(rule);
        assert_string_equal(rule, want_rule);
        differ = read_diff(f, &actual, report, sizeof(report));
        assert_int_equal(differ, ac_pending || sf_pending);
        e = &f->w.people[c.person];
        a = &actual.people[c.person];
        assert_int_equal(
            memcmp(e->list_status, a->list_status, sizeof(e->list_status)) != 0,
            ac_pending);
        assert_int_equal(e->bounced_hard, a->bounced_hard);
        assert_int_equal(e->qualified, a->qualified);
        {
                int sf_differs = 0;

                for (size_t r = 0; r < e->n_sf; r++)
                        sf_differs |= e->sf[r].opted_out != a->sf[r].opted_out;
                assert_int_equal(sf_differs, sf_pending);
        }
        if (differ)
                assert_non_null(strstr(report, e->email));
        e2e_world_free(&actual);
}

static int r2_target(const struct e2e_person *p)
{
        return mailable(p) && p->qualified && e2e_person_active_lists(p) >= 1 &&
               unticked_open(p);
}

static void sandbox_unsubscribe_all_leaves_r2_pending(void **state)
{
        struct fx f;
        size_t i;

        (void)state;
        start(&f, 1000, 21);
        i = find(&f.w, r2_target);
        play_and_check(
            &f,
            (struct e2e_change){.kind = E2E_AC_UNSUBSCRIBE_ALL, .person = i},
            "R2: no active list left", 0, 1);
        stop(&f);
}

static int one_active_list(const struct e2e_person *p)
{
        return r2_target(p) && e2e_person_active_lists(p) == 1;
}

static void sandbox_unsubscribe_last_list_leaves_r2_pending(void **state)
{
        struct fx f;
        size_t i;
        int l = 0;

        (void)state;
        start(&f, 1000, 22);
        i = find(&f.w, one_active_list);
        while (f.w.people[i].list_status[l] != E2E_ACTIVE)
                l++;
        play_and_check(&f,
                       (struct e2e_change){.kind   = E2E_AC_UNSUBSCRIBE_LIST,
                                           .person = i,
                                           .list   = l},
                       "R2: no active list left", 0, 1);
        stop(&f);
}

static int two_active_lists(const struct e2e_person *p)
{
        return r2_target(p) && e2e_person_active_lists(p) >= 2;
}

static void sandbox_unsubscribe_one_of_two_settles_at_once(void **state)
{
        struct fx f;
        size_t i;
        int l = 0;

        (void)state;
        start(&f, 1000, 23);
        i = find(&f.w, two_active_lists);
        while (f.w.people[i].list_status[l] != E2E_ACTIVE)
                l++;
        play_and_check(&f,
                       (struct e2e_change){.kind   = E2E_AC_UNSUBSCRIBE_LIST,
                                           .person = i,
                                           .list   = l},
                       "none: other lists still active", 0, 0);
        stop(&f);
}

static int r1_target(const struct e2e_person *p)
{
        return mailable(p) && p->qualified && e2e_person_active_lists(p) == 0 &&
               ticked_open(p);
}

static void sandbox_subscribe_from_zero_leaves_r1_pending(void **state)
{
        struct fx f;
        size_t i;
        int l = 0;

        (void)state;
        start(&f, 1000, 24);
        i = find(&f.w, r1_target);
        while (f.w.people[i].list_status[l] == E2E_BOUNCED)
                l++;
        play_and_check(&f,
                       (struct e2e_change){
                           .kind = E2E_AC_SUBSCRIBE, .person = i, .list = l},
                       "R1: first active list", 0, 1);
        stop(&f);
}

static int second_list_target(const struct e2e_person *p)
{
        return r2_target(p) && e2e_person_active_lists(p) < E2E_LISTS;
}

static void sandbox_subscribe_second_list_settles_at_once(void **state)
{
        struct fx f;
        size_t i;
        int l = 0;

        (void)state;
        start(&f, 1000, 25);
        i = find(&f.w, second_list_target);
        while (f.w.people[i].list_status[l] == E2E_ACTIVE)
                l++;
        play_and_check(&f,
                       (struct e2e_change){
                           .kind = E2E_AC_SUBSCRIBE, .person = i, .list = l},
                       "none: a second list", 0, 0);
        stop(&f);
}

static void sandbox_hard_bounce_leaves_r3_pending(void **state)
{
        struct fx f;
        size_t i;

        (void)state;
        start(&f, 1000, 26);
        i = find(&f.w, r2_target);
        play_and_check(
            &f, (struct e2e_change){.kind = E2E_AC_BOUNCE_HARD, .person = i},
            "R3: hard bounce", 0, 1);
        assert_true(f.w.people[i].bounced_hard);
        stop(&f);
}

static void sandbox_soft_bounce_changes_nothing(void **state)
{
        struct fx f;
        size_t i;

        (void)state;
        start(&f, 1000, 27);
        i = find(&f.w, r2_target);
        /* twice: the same campaign never escalates to bounced */
        for (int k = 0; k < 2; k++)
                play_and_check(&f,
                               (struct e2e_change){.kind   = E2E_AC_BOUNCE_SOFT,
                                                   .person = i},
                               "none: soft bounce", 0, 0);
        stop(&f);
}

/* A contact and an open lead, both unticked, with an active list. */
static int r4_target(const struct e2e_person *p)
{
        int contact = 0, lead = 0;

        for (size_t r = 0; r < p->n_sf; r++) {
                contact |=
                    p->sf[r].type == E2E_SF_CONTACT && !p->sf[r].opted_out;
                lead |= p->sf[r].type == E2E_SF_LEAD && !p->sf[r].converted &&
                        !p->sf[r].opted_out;
        }
        return r2_target(p) && contact && lead;
}

static void sandbox_tick_leaves_r4_pending_on_both_sides(void **state)
{
        struct fx f;
        size_t i, r = 0;

        (void)state;
        start(&f, 1000, 28);
        i = find(&f.w, r4_target);
        while (f.w.people[i].sf[r].type != E2E_SF_CONTACT)
                r++;
        play_and_check(
            &f,
            (struct e2e_change){.kind = E2E_SF_TICK, .person = i, .record = r},
            "R4: ticked in SF", 1, 1);
        stop(&f);
}

static int untick_target(const struct e2e_person *p)
{
        return p->has_ac && p->qualified && ticked_open(p);
}

static void sandbox_untick_settles_at_once(void **state)
{
        struct fx f;
        size_t i, r = 0;

        (void)state;
        start(&f, 1000, 29);
        i = find(&f.w, untick_target);
        while (f.w.people[i].sf[r].converted || !f.w.people[i].sf[r].opted_out)
                r++;
        play_and_check(&f,
                       (struct e2e_change){
                           .kind = E2E_SF_UNTICK, .person = i, .record = r},
                       "none: an untick never subscribes in AC", 0, 0);
        stop(&f);
}

static int unqualified_target(const struct e2e_person *p)
{
        return mailable(p) && !p->qualified &&
               e2e_person_active_lists(p) >= 1 && unticked_open(p);
}

static void sandbox_unqualified_unsubscribe_settles_at_once(void **state)
{
        struct fx f;
        size_t i;

        (void)state;
        start(&f, 1000, 30);
        i = find(&f.w, unqualified_target);
        play_and_check(
            &f,
            (struct e2e_change){.kind = E2E_AC_UNSUBSCRIBE_ALL, .person = i},
            "none: not qualified", 0, 0);
        stop(&f);
}

static int sf_only_target(const struct e2e_person *p)
{
        return !p->has_ac && unticked_open(p);
}

static void sandbox_sf_only_tick_settles_at_once(void **state)
{
        struct fx f;
        size_t i, r = 0;

        (void)state;
        start(&f, 1000, 31);
        i = find(&f.w, sf_only_target);
        while (f.w.people[i].sf[r].opted_out)
                r++;
        play_and_check(
            &f,
            (struct e2e_change){.kind = E2E_SF_TICK, .person = i, .record = r},
            "none: no AC contact (R4 skipped)", 0, 0);
        stop(&f);
}

static void sandbox_play_refusal_leaves_oracle_unchanged(void **state)
{
        struct fx f;
        struct e2e_world before;
        struct e2e_change c;
        char err[512] = "";
        size_t i;

        (void)state;
        start(&f, 100, 32);
        i = find(&f.w, r2_target);
        assert_int_equal(e2e_world_copy(&before, &f.w), 0);
        /* a contact the sandbox does not know: 404, nothing applied */
        snprintf(f.w.people[i].ac_id, sizeof(f.w.people[i].ac_id), "99999");
        c = (struct e2e_change){.kind = E2E_AC_UNSUBSCRIBE_ALL, .person = i};
        assert_int_equal(
            e2e_world_play(&f.w, f.sb.base_url, &c, NULL, err, sizeof(err)),
            -1);
        assert_non_null(strstr(err, "404"));
        snprintf(f.w.people[i].ac_id, sizeof(f.w.people[i].ac_id), "%s",
                 before.people[i].ac_id);
        assert_int_equal(e2e_world_diff(&before, &f.w, NULL, 0), 0);
        /* nobody listening: a transport error */
        c.kind = E2E_AC_BOUNCE_SOFT;
        assert_int_equal(e2e_world_play(&f.w, "http://127.0.0.1:1", &c, NULL,
                                        err, sizeof(err)),
                         -1);
        e2e_world_free(&before);
        stop(&f);
}

/* Does @p c make sense for @p p (world.h's promise)? */
static int change_is_valid(const struct e2e_person *p,
                           const struct e2e_change *c)
{
        switch (c->kind) {
        case E2E_AC_UNSUBSCRIBE_ALL:
                return mailable(p) && e2e_person_active_lists(p) > 0;
        case E2E_AC_UNSUBSCRIBE_LIST:
                return mailable(p) && p->list_status[c->list] == E2E_ACTIVE;
        case E2E_AC_SUBSCRIBE:
                return mailable(p) && p->list_status[c->list] != E2E_ACTIVE &&
                       p->list_status[c->list] != E2E_BOUNCED;
        case E2E_AC_BOUNCE_HARD:
        case E2E_AC_BOUNCE_SOFT:
                return mailable(p);
        case E2E_SF_TICK:
        case E2E_SF_UNTICK:
                return c->record < p->n_sf && !p->sf[c->record].converted &&
                       p->sf[c->record].opted_out == (c->kind == E2E_SF_UNTICK);
        default:
                return 0;
        }
}

/*
 * After @p c (and no workers), where may the sandbox differ from the
 * oracle for its person? The user's own side never; the other side
 * exactly when optsync owes writes (@p writes > 0).
 */
static void check_person(const struct e2e_person *e, const struct e2e_person *a,
                         const struct e2e_change *c, int writes)
{
        int ac_same =
            !memcmp(e->list_status, a->list_status, sizeof(e->list_status)) &&
            e->bounced_hard == a->bounced_hard && e->qualified == a->qualified;
        int others_same = 1;

        for (size_t r = 0; r < e->n_sf; r++)
                if (!(c->kind >= E2E_SF_TICK && r == c->record))
                        others_same &= e->sf[r].opted_out == a->sf[r].opted_out;
        if (c->kind < E2E_SF_TICK) {
                if (!ac_same)
                        fail_msg("%s after %s: AC side differs", e->email,
                                 e2e_change_name(c->kind));
                assert_int_equal(!others_same, writes > 0);
        } else {
                assert_int_equal(e->sf[c->record].opted_out,
                                 a->sf[c->record].opted_out);
                assert_int_equal(!ac_same || !others_same, writes > 0);
        }
}

static void sandbox_random_changes_all_play(void **state)
{
        struct fx f;
        struct e2e_world actual;
        struct e2e_change *changes;
        int *writes;
        unsigned char *used;
        uint64_t rng = 12345;
        size_t draws = 0, pending = 0, seen[E2E_CHANGE_KINDS] = {0};
        char err[512] = "", report[4096];
        struct e2e_change c;

        (void)state;
        start(&f, 400, 33);
        used    = calloc(f.w.n, 1);
        changes = calloc(f.w.n, sizeof(*changes));
        writes  = calloc(f.w.n, sizeof(*writes));
        assert_true(used && changes && writes);
        for (size_t i = 0; i < f.w.n; i++)
                writes[i] = -1;
        while (e2e_world_random_change(&f.w, &rng, used, &c) == 0) {
                struct e2e_world w2;

                assert_true(change_is_valid(&f.w.people[c.person], &c));
                assert_int_equal(writes[c.person], -1); /* once each */
                assert_true(used[c.person]);
                /* what optsync will owe, from a copy of the oracle */
                assert_int_equal(e2e_world_copy(&w2, &f.w), 0);
                writes[c.person]  = e2e_world_apply(&w2, &c, NULL);
                changes[c.person] = c;
                pending += writes[c.person] > 0;
                e2e_world_free(&w2);
                if (e2e_world_play(&f.w, f.sb.base_url, &c, NULL, err,
                                   sizeof(err)))
                        fail_msg("play %s: %s", e2e_change_name(c.kind), err);
                seen[c.kind]++;
                draws++;
        }
        /* nearly everyone has something to do (not a bounced AC-only
         * contact), and every kind of change came up */
        assert_true(draws > f.w.n * 9 / 10);
        for (int k = 0; k < E2E_CHANGE_KINDS; k++)
                if (!seen[k])
                        fail_msg("no %s drawn", e2e_change_name(k));
        /* no workers: exactly the people with writes owed differ, and
         * only on the side optsync has to write */
        assert_true(pending > 50);
        assert_int_equal(read_diff(&f, &actual, report, sizeof(report)),
                         pending);
        for (size_t i = 0; i < f.w.n; i++)
                if (writes[i] >= 0)
                        check_person(&f.w.people[i], &actual.people[i],
                                     &changes[i], writes[i]);
        e2e_world_free(&actual);
        free(used);
        free(changes);
        free(writes);
        stop(&f);
}

static void random_change_none_left(void **state)
{
        struct e2e_world w;
        unsigned char *used;
        struct e2e_change c;
        uint64_t rng = 0; /* 0 is not a xorshift state: fixed up */

        (void)state;
        assert_int_equal(e2e_world_generate(&w, "t1", 50, 5), 0);
        used = calloc(w.n, 1);
        assert_non_null(used);
        assert_int_equal(e2e_world_random_change(&w, &rng, used, &c), 0);
        assert_true(rng != 0);
        memset(used, 1, w.n);
        assert_int_equal(e2e_world_random_change(&w, &rng, used, &c), -1);
        free(used);
        e2e_world_free(&w);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(oracle_r1_from_zero_lists),
    cmocka_unit_test(oracle_second_list_is_noop),
    cmocka_unit_test(oracle_r2_last_list),
    cmocka_unit_test(oracle_unsubscribe_all_is_r2),
    cmocka_unit_test(oracle_unsubscribe_one_of_two_is_noop),
    cmocka_unit_test(oracle_r3_hard_bounce),
    cmocka_unit_test(oracle_soft_bounce_is_noop),
    cmocka_unit_test(oracle_r4_contact_tick),
    cmocka_unit_test(oracle_r4_lead_tick),
    cmocka_unit_test(oracle_untick_does_nothing_else),
    cmocka_unit_test(oracle_unqualified_only_the_users_change),
    cmocka_unit_test(oracle_sf_only_tick_changes_only_that_record),
    cmocka_unit_test(oracle_converted_lead_never_changed),
    cmocka_unit_test(generate_is_deterministic),
    cmocka_unit_test(generate_has_every_kind_of_person),
    cmocka_unit_test(generate_emails_unique_and_lower_case),
    cmocka_unit_test(generate_starts_where_the_rules_would_leave_it),
    cmocka_unit_test(diff_report_names_each_difference),
    cmocka_unit_test(describe_shows_both_platforms),
    cmocka_unit_test(sandbox_fixture_loads_and_binds),
    cmocka_unit_test(sandbox_bind_refuses_another_world),
    cmocka_unit_test(sandbox_unsubscribe_all_leaves_r2_pending),
    cmocka_unit_test(sandbox_unsubscribe_last_list_leaves_r2_pending),
    cmocka_unit_test(sandbox_unsubscribe_one_of_two_settles_at_once),
    cmocka_unit_test(sandbox_subscribe_from_zero_leaves_r1_pending),
    cmocka_unit_test(sandbox_subscribe_second_list_settles_at_once),
    cmocka_unit_test(sandbox_hard_bounce_leaves_r3_pending),
    cmocka_unit_test(sandbox_soft_bounce_changes_nothing),
    cmocka_unit_test(sandbox_tick_leaves_r4_pending_on_both_sides),
    cmocka_unit_test(sandbox_untick_settles_at_once),
    cmocka_unit_test(sandbox_unqualified_unsubscribe_settles_at_once),
    cmocka_unit_test(sandbox_sf_only_tick_settles_at_once),
    cmocka_unit_test(sandbox_play_refusal_leaves_oracle_unchanged),
    cmocka_unit_test(sandbox_random_changes_all_play),
    cmocka_unit_test(random_change_none_left),
};

OSY_TEST_MAIN(tests, NULL, NULL)
