/*
 * test_e2e_soak.c - random changes across both platforms through the
 * whole pipeline while the sandbox injects retryable faults (5xx, 429
 * storms, latency) and one worker of each kind is SIGKILLed and restarted
 * mid-run. The final state of both platforms must equal what the oracle
 * gives for the same history; no acknowledged event may be lost; the
 * account's AC quota is never exceeded; and every DLQ entry must be
 * explained by a permanent fault the test injected.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "osy_test.h"
#include "scenarios.h"
#include "stack.h"
#include "world.h"

#define TENANT "acme"
#define PEOPLE 300
#define AC_RATE 10

struct fixture {
        struct e2e_world world;
        struct e2e_stack stack;
        unsigned char used[PEOPLE];
        char err[4096];
};

static int start(struct fixture *f, uint64_t seed)
{
        char *fx, *st;

        if (e2e_world_generate(&f->world, TENANT, PEOPLE, seed))
                return -1;
        /* The sandbox enforces AC's per-account limit; optsync must stay
         * under it across every replica and restart. */
        fx                      = e2e_world_fixture_json(&f->world, AC_RATE);
        struct e2e_stack_opts o = {.tenant        = TENANT,
                                   .fixture_json  = fx,
                                   .ac_rate_per_s = AC_RATE,
                                   .fast_failover = 1,
                                   .keep_dir      = getenv("E2E_KEEP") != NULL};
        int rc = e2e_stack_start(&f->stack, &o, f->err, sizeof(f->err));
        free(fx);
        if (rc) {
                fprintf(stderr, "stack: %s\n", f->err);
                return -1;
        }
        st = e2e_stack_state(&f->stack);
        rc = st ? e2e_world_bind(&f->world, st, f->err, sizeof(f->err)) : -1;
        free(st);
        return rc;
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

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        *state = f;
        return f ? 0 : -1;
}

static void post(struct fixture *f, const char *path, const char *body)
{
        char *resp = NULL;
        int st     = e2e_stack_call(&f->stack, "POST", path, body, &resp);

        if (st < 200 || st > 299)
                fail_msg("POST %s: %d %s", path, st, resp ? resp : "");
        free(resp);
}

static void random_changes(struct fixture *f, uint64_t *rng, int n)
{
        for (int i = 0; i < n; i++) {
                struct e2e_change c;
                const char *rule;

                if (e2e_world_random_change(&f->world, rng, f->used, &c)) {
                        memset(f->used, 0, sizeof(f->used));
                        assert_int_equal(e2e_world_random_change(&f->world, rng,
                                                                 f->used, &c),
                                         0);
                }
                if (e2e_world_play(&f->world, f->stack.sandbox_url, &c, &rule,
                                   f->err, sizeof(f->err)))
                        fail_msg("change %d: %s", i, f->err);
        }
}

static void settle_and_compare(struct fixture *f, const char *when)
{
        char report[8192];
        long bad = e2e_check(&f->stack, &f->world, 2000, 240000, NULL, report,
                             sizeof(report));

        if (bad) {
                /* The run's directory goes with the test: show how the
                 * workers saw the end of it. */
                e2e_stack_print_log_tails(&f->stack, stderr, 4000);
                fail_msg("%s: %ld people differ from the rules (-1: no "
                         "verdict):\n%s",
                         when, bad, report);
        }
}

/* ---- "no acknowledged event is lost" ------------------------------------ */

struct email_counts {
        cJSON *counts; /* email -> number */
};

static void count_email(cJSON *counts, const char *email)
{
        cJSON *n = cJSON_GetObjectItemCaseSensitive(counts, email);

        if (n)
                cJSON_SetNumberValue(n, n->valuedouble + 1);
        else
                cJSON_AddNumberToObject(counts, email, 1);
}

static void on_event(const char *value, size_t len, void *opaque)
{
        cJSON *msg         = cJSON_ParseWithLength(value, len);
        const cJSON *email = cJSON_GetObjectItemCaseSensitive(msg, "email");

        if (cJSON_IsString(email))
                count_email(opaque, email->valuestring);
        cJSON_Delete(msg);
}

/* The contact[email] of a form-encoded AC webhook body, decoded. */
static int webhook_email(const char *body, char *out, size_t size)
{
        const char *key = "contact%5Bemail%5D=";
        const char *p   = strstr(body, key);
        size_t n        = 0;

        if (!p)
                return -1;
        for (p += strlen(key); *p && *p != '&' && n + 1 < size; p++) {
                if (*p == '%' && p[1] && p[2]) {
                        char hex[3] = {p[1], p[2], 0};
                        out[n++]    = (char)strtol(hex, NULL, 16);
                        p += 2;
                } else {
                        out[n++] = *p == '+' ? ' ' : *p;
                }
        }
        out[n] = '\0';
        return 0;
}

/*
 * Every webhook AC got a 200 for must be on optsync.ac.events, and every
 * Email Opt Out change SF logged must be on optsync.sf.events: per person,
 * at least as many events as the platform acknowledged or logged.
 */
static void assert_no_acknowledged_event_lost(struct fixture *f)
{
        cJSON *ac_topic = cJSON_CreateObject(),
              *sf_topic = cJSON_CreateObject();
        cJSON *acked = cJSON_CreateObject(), *cdc = cJSON_CreateObject();
        char path[160], email[200];
        char *body = NULL;
        cJSON *root, *item, *c;

        assert_true(e2e_stack_read_topic(&f->stack, "ac.events", on_event,
                                         ac_topic) >= 0);
        assert_true(e2e_stack_read_topic(&f->stack, "sf.events", on_event,
                                         sf_topic) >= 0);
        snprintf(path, sizeof(path),
                 "/sandbox/ac/%s/webhooks/deliveries?since_id=0", TENANT);
        assert_int_equal(e2e_stack_call(&f->stack, "GET", path, NULL, &body),
                         200);
        root = cJSON_Parse(body);
        free(body);
        cJSON_ArrayForEach(item,
                           cJSON_GetObjectItemCaseSensitive(root, "deliveries"))
        {
                const cJSON *st =
                    cJSON_GetObjectItemCaseSensitive(item, "http_status");
                const cJSON *b = cJSON_GetObjectItemCaseSensitive(item, "body");
                if (cJSON_IsNumber(st) && st->valueint == 200 &&
                    cJSON_IsString(b) &&
                    !webhook_email(b->valuestring, email, sizeof(email)))
                        count_email(acked, email);
        }
        cJSON_Delete(root);

        /* SF: the CDC log, record ids mapped to people by the world. */
        snprintf(path, sizeof(path), "/sandbox/sf/%s/cdc/events", TENANT);
        assert_int_equal(e2e_stack_call(&f->stack, "GET", path, NULL, &body),
                         200);
        root = cJSON_Parse(body);
        free(body);
        cJSON *events = cJSON_IsArray(root)
                            ? root
                            : cJSON_GetObjectItemCaseSensitive(root, "events");
        cJSON_ArrayForEach(item, events)
        {
                const cJSON *payload =
                    cJSON_GetObjectItemCaseSensitive(item, "payload");
                const cJSON *hdr = cJSON_GetObjectItemCaseSensitive(
                    payload, "ChangeEventHeader");
                const cJSON *f2, *id;
                int opt = 0;

                cJSON_ArrayForEach(
                    f2, cJSON_GetObjectItemCaseSensitive(hdr, "changedFields"))
                    opt |= cJSON_IsString(f2) &&
                           !strcmp(f2->valuestring, "HasOptedOutOfEmail");
                if (!opt)
                        continue;
                cJSON_ArrayForEach(
                    id, cJSON_GetObjectItemCaseSensitive(hdr, "recordIds"))
                {
                        for (size_t p = 0; p < f->world.n; p++)
                                for (size_t r = 0; r < f->world.people[p].n_sf;
                                     r++)
                                        if (cJSON_IsString(id) &&
                                            !strcmp(f->world.people[p].sf[r].id,
                                                    id->valuestring))
                                                count_email(
                                                    cdc,
                                                    f->world.people[p].email);
                }
        }
        cJSON_Delete(root);

        int checked = 0;
        cJSON_ArrayForEach(c, acked)
        {
                const cJSON *got =
                    cJSON_GetObjectItemCaseSensitive(ac_topic, c->string);
                if (!got || got->valuedouble < c->valuedouble)
                        fail_msg("%s: AC acknowledged %g webhooks, "
                                 "ac.events has %g",
                                 c->string, c->valuedouble,
                                 got ? got->valuedouble : 0.0);
                checked++;
        }
        cJSON_ArrayForEach(c, cdc)
        {
                const cJSON *got =
                    cJSON_GetObjectItemCaseSensitive(sf_topic, c->string);
                if (!got || got->valuedouble < c->valuedouble)
                        fail_msg("%s: SF logged %g opt-out changes, "
                                 "sf.events has %g",
                                 c->string, c->valuedouble,
                                 got ? got->valuedouble : 0.0);
                checked++;
        }
        assert_true(checked > 10);
        cJSON_Delete(ac_topic);
        cJSON_Delete(sf_topic);
        cJSON_Delete(acked);
        cJSON_Delete(cdc);
}

/* 429s the sandbox sent because the account's real limit was exceeded
 * (all 429s minus the injected storms). */
static long quota_429s(struct fixture *f)
{
        char *body = NULL;
        long n     = -1;

        if (e2e_stack_call(&f->stack, "GET", "/sandbox/stats", NULL, &body) ==
            200) {
                cJSON *root      = cJSON_Parse(body);
                const cJSON *all = cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(root, "by_status"), "429");
                const cJSON *storm = cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(root, "faults"),
                    "storm429");
                n = (long)(cJSON_IsNumber(all) ? all->valuedouble : 0) -
                    (long)(cJSON_IsNumber(storm) ? storm->valuedouble : 0);
                cJSON_Delete(root);
        }
        free(body);
        return n;
}

static void restart(struct fixture *f, enum e2e_worker w)
{
        if (e2e_stack_start_worker(&f->stack, w, f->err, sizeof(f->err)))
                fail_msg("restart %s: %s", e2e_worker_name(w), f->err);
}

static void soak_with_faults_and_kills_matches_the_oracle(void **state)
{
        struct fixture *f = *state;
        uint64_t rng      = 0x5eed5eedULL;
        char path[160];

        assert_int_equal(start(f, 11), 0);
        /* Retryable faults only: the rules' outcome must not change. */
        post(f, "/sandbox/faults",
             "["
             "{\"endpoint\":\"sf.composite\",\"kind\":\"json503\","
             "\"probability\":0.2},"
             "{\"endpoint\":\"sf.query\",\"kind\":\"status\",\"status\":500,"
             "\"probability\":0.1},"
             "{\"endpoint\":\"sf.*\",\"kind\":\"latency\",\"ms\":150,"
             "\"probability\":0.3},"
             "{\"endpoint\":\"ac.contactLists\",\"kind\":\"storm429\","
             "\"retry_after\":1,\"probability\":0.2},"
             "{\"endpoint\":\"ac.contact*\",\"kind\":\"json503\","
             "\"probability\":0.1},"
             "{\"endpoint\":\"ac.contacts\",\"kind\":\"latency\",\"ms\":100,"
             "\"probability\":0.3}"
             "]");

        /* Round 1: a burst of changes under faults. */
        random_changes(f, &rng, 40);
        settle_and_compare(f, "round 1");

        /* Round 2: crash every consumer-side worker mid-stream... */
        random_changes(f, &rng, 20);
        e2e_sleep_ms(300);
        e2e_stack_kill(&f->stack, E2E_RULES);
        e2e_stack_kill(&f->stack, E2E_SF_WRITER);
        e2e_stack_kill(&f->stack, E2E_AC_WRITER);
        e2e_stack_kill(&f->stack, E2E_SF_INGEST);
        /* ...changes keep coming while they are down (Kafka and the CDC
         * log keep them)... */
        random_changes(f, &rng, 15);
        restart(f, E2E_SF_INGEST);
        restart(f, E2E_RULES);
        restart(f, E2E_SF_WRITER);
        restart(f, E2E_AC_WRITER);
        /* ...and ac-ingest: AC never retries a webhook, so one in flight
         * at the kill would be lost by AC's design (a reconciler's job);
         * deliveries are held while it is down, as a load balancer in
         * front of its replicas would keep them from a dead pod. */
        snprintf(path, sizeof(path), "/sandbox/ac/%s/webhooks/flush", TENANT);
        post(f, path, "{\"timeout_ms\":10000}");
        snprintf(path, sizeof(path), "/sandbox/ac/%s/webhooks/hold", TENANT);
        post(f, path, "{}");
        e2e_stack_kill(&f->stack, E2E_AC_INGEST);
        random_changes(f, &rng, 10);
        restart(f, E2E_AC_INGEST);
        snprintf(path, sizeof(path), "/sandbox/ac/%s/webhooks/release", TENANT);
        post(f, path, "{\"order\":\"fifo\"}");
        random_changes(f, &rng, 15);
        settle_and_compare(f, "round 2 (kills)");

        /* Round 3: once more on the restarted workers. */
        random_changes(f, &rng, 40);
        settle_and_compare(f, "round 3");

        assert_no_acknowledged_event_lost(f);
        /* The shared limiter kept every replica and restart within AC's
         * per-account limit: no 429 beyond the injected storms. */
        assert_int_equal(quota_429s(f), 0);
        /* Only retryable faults were injected: nothing may be dead. */
        struct e2e_totals t;
        assert_int_equal(e2e_stack_totals(&f->stack, &t), 0);
        fprintf(stderr,
                "soak: %lld AC + %lld SF events, %lld decisions, %lld SF + "
                "%lld AC commands, AC %lld / SF %lld API calls, %lld faults "
                "injected, %lld 429s (all injected), DLQ %lld\n",
                (long long)t.ac_events, (long long)t.sf_events,
                (long long)t.audit, (long long)t.sf_commands,
                (long long)t.ac_commands, (long long)t.ac_api_calls,
                (long long)t.sf_api_calls, (long long)t.faults,
                (long long)t.http_429, (long long)t.dlq);
        assert_int_equal(t.dlq, 0);
        assert_true(t.faults > 0);
}

struct dlq_seen {
        int n;
        int explained;
};

static void on_dlq(const char *value, size_t len, void *opaque)
{
        struct dlq_seen *d = opaque;
        char *text         = strndup(value, len);

        d->n++;
        if (text && strstr(text, "INVALID_FIELD") &&
            strstr(text, "injected permanent fault"))
                d->explained++;
        free(text);
}

/*
 * A permanent SF error (400) dead-letters the command with the error in
 * the entry, and nothing else lands in the DLQ.
 */
static void permanent_fault_is_the_only_dlq_entry(void **state)
{
        struct fixture *f = *state;
        struct e2e_change c;
        const char *rule;
        struct dlq_seen seen = {0};

        assert_int_equal(start(f, 12), 0);
        post(f, "/sandbox/faults",
             "{\"endpoint\":\"sf.composite\",\"kind\":\"status\","
             "\"status\":400,\"count\":1,\"body\":[{\"message\":"
             "\"injected permanent fault\",\"errorCode\":\"INVALID_FIELD\"}]}");
        assert_int_equal(
            e2e_scenario_pick(e2e_scenario_find("r2_unsubscribe_all"),
                              &f->world, f->used, &c),
            0);
        /* The oracle without optsync's part: the SF write is dead. */
        struct e2e_world expected = {0};
        assert_int_equal(e2e_world_copy(&expected, &f->world), 0);
        assert_int_equal(e2e_world_play(&f->world, f->stack.sandbox_url, &c,
                                        &rule, f->err, sizeof(f->err)),
                         0);
        for (int l = 0; l < E2E_LISTS; l++)
                expected.people[c.person].list_status[l] =
                    f->world.people[c.person].list_status[l];
        char report[4096];
        long bad = e2e_check(&f->stack, &expected, 1500, 90000, NULL, report,
                             sizeof(report));
        e2e_world_free(&expected);
        if (bad)
                fail_msg("%ld people differ (-1: no verdict):\n%s", bad,
                         report);
        assert_true(e2e_stack_read_topic(&f->stack, "dlq", on_dlq, &seen) >= 0);
        assert_int_equal(seen.n, 1);
        assert_int_equal(seen.explained, 1);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(
                soak_with_faults_and_kills_matches_the_oracle, setup, teardown),
            cmocka_unit_test_setup_teardown(
                permanent_fault_is_the_only_dlq_entry, setup, teardown),
        };

        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
