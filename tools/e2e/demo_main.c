/*
 * optsync-demo - the whole pipeline the way a user meets it: every worker
 * as its own process against the sandbox seeded with a realistic account,
 * scenarios played as users would, both platforms' state printed before
 * and after, each checked against the opt-out rules (the oracle in
 * world.c). Exits 0 only when every scenario and every other person ends
 * as the rules say.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "scenarios.h"
#include "stack.h"
#include "world.h"

#define EXIT_MISMATCH 1
#define EXIT_USAGE 2
#define EXIT_BROKEN 3
#define EXIT_INTERRUPTED 130

#define TENANT "acme"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
        (void)sig;
        stop_requested = 1;
}

struct demo_opts {
        size_t people;
        uint64_t seed;
        long load;
        int load_rate; /* changes per second; 0: as fast as possible */
        int ac_rate;
        int keep;
        int settle_timeout_s;
        const char *fault; /* a sandbox fault rule (JSON), or NULL */
};

struct played {
        size_t person;
        struct e2e_change change;
        const char *rule;
        int writes;
        char before[1024];
};

/* ---- printing ----------------------------------------------------------- */

/* Prints a multi-line description with a label on the first line. */
static void print_block(const char *label, const char *text)
{
        const char *line = text;
        int first        = 1;

        while (line && *line) {
                const char *nl = strchr(line, '\n');
                int len        = nl ? (int)(nl - line) : (int)strlen(line);
                printf("   %-8s %.*s\n", first ? label : "", len, line);
                first = 0;
                line  = nl ? nl + 1 : NULL;
        }
}

static int person_matches(const struct e2e_person *expected,
                          const struct e2e_person *actual, char *report,
                          size_t size)
{
        struct e2e_world e = {.n = 1, .people = (struct e2e_person *)expected};
        struct e2e_world a = {.n = 1, .people = (struct e2e_person *)actual};

        return e2e_world_diff(&e, &a, report, size) == 0;
}

/* ---- latency from the sandbox's CDC log --------------------------------- */

struct opt_write {
        char id[19];
        int64_t when_ms; /* realtime of the user's change */
};

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

static int64_t realtime_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Finds, in the CDC event log, the first HasOptedOutOfEmail change of each
 * record after its user change; fills @p lat (ms). @returns how many. */
static size_t latencies(struct e2e_stack *s, const struct opt_write *w,
                        size_t n, double *lat)
{
        char path[128];
        char *body = NULL;
        cJSON *root, *events, *ev;
        size_t found  = 0;
        int64_t *best = calloc(n ? n : 1, sizeof(*best));

        snprintf(path, sizeof(path), "/sandbox/sf/%s/cdc/events", TENANT);
        if (!best || e2e_stack_call(s, "GET", path, NULL, &body) != 200 ||
            !(root = cJSON_Parse(body))) {
                free(body);
                free(best);
                return 0;
        }
        free(body);
        events = cJSON_IsArray(root)
                     ? root
                     : cJSON_GetObjectItemCaseSensitive(root, "events");
        cJSON_ArrayForEach(ev, events)
        {
                const cJSON *hdr = NULL, *payload, *ids, *id, *fields, *f;
                int opt_field    = 0;
                int64_t commit;

                payload = cJSON_GetObjectItemCaseSensitive(ev, "payload");
                if (!payload)
                        payload = cJSON_GetObjectItemCaseSensitive(
                            cJSON_GetObjectItemCaseSensitive(ev, "data"),
                            "payload");
                hdr = cJSON_GetObjectItemCaseSensitive(payload,
                                                       "ChangeEventHeader");
                if (!hdr)
                        continue;
                commit = (int64_t)cJSON_GetNumberValue(
                    cJSON_GetObjectItemCaseSensitive(hdr, "commitTimestamp"));
                fields = cJSON_GetObjectItemCaseSensitive(hdr, "changedFields");
                cJSON_ArrayForEach(f, fields)
                {
                        if (cJSON_IsString(f) &&
                            !strcmp(f->valuestring, "HasOptedOutOfEmail"))
                                opt_field = 1;
                }
                if (!opt_field)
                        continue;
                ids = cJSON_GetObjectItemCaseSensitive(hdr, "recordIds");
                cJSON_ArrayForEach(id, ids)
                {
                        for (size_t i = 0; i < n; i++)
                                if (cJSON_IsString(id) &&
                                    !strcmp(id->valuestring, w[i].id) &&
                                    commit >= w[i].when_ms &&
                                    (!best[i] || commit < best[i]))
                                        best[i] = commit;
                }
        }
        cJSON_Delete(root);
        for (size_t i = 0; i < n; i++)
                if (best[i])
                        lat[found++] = (double)(best[i] - w[i].when_ms);
        free(best);
        return found;
}

static double percentile(double *v, size_t n, double p)
{
        if (!n)
                return 0;
        qsort(v, n, sizeof(*v), cmp_double);
        size_t i = (size_t)(p * (double)(n - 1) + 0.5);
        return v[i < n ? i : n - 1];
}

/* ---- the run ------------------------------------------------------------ */

static void usage(FILE *out)
{
        fprintf(out,
                "Usage: optsync-demo [--load N [--load-rate R]] [--people N] "
                "[--seed N]\n"
                "                    [--ac-rate N] [--keep]\n"
                "  --load N     after the scenarios, N random changes across "
                "both platforms;\n"
                "               reports throughput and AC webhook -> SF write "
                "latency (p50/p99)\n"
                "  --load-rate R  make the load's changes at R per second "
                "(default: at once)\n"
                "  --people N   people in the seeded account (default 1000)\n"
                "  --seed N     seed of the fixture and the random changes "
                "(default 1)\n"
                "  --ac-rate N  AC API calls per second, in the sandbox and "
                "in optsync\n"
                "               (default 5, AC's documented limit)\n"
                "  --keep       keep the run directory with every process's "
                "log\n"
                "  --fault JSON a sandbox fault rule in force during the run "
                "(docs/sandbox.md),\n"
                "               e.g. SF refusing every write: the demo then "
                "shows what does not match\n");
}

static int parse_args(int argc, char **argv, struct demo_opts *o)
{
        static const struct option longs[] = {
            {"load", required_argument, NULL, 'l'},
            {"load-rate", required_argument, NULL, 'L'},
            {"people", required_argument, NULL, 'p'},
            {"seed", required_argument, NULL, 's'},
            {"ac-rate", required_argument, NULL, 'r'},
            {"keep", no_argument, NULL, 'k'},
            {"fault", required_argument, NULL, 'f'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0}};
        int c;

        o->people           = 1000;
        o->seed             = 1;
        o->ac_rate          = 5;
        o->settle_timeout_s = 180;
        while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
                char *end = NULL;
                long v    = 0;

                if (c == 'f') {
                        o->fault = optarg;
                        continue;
                }
                if (optarg)
                        v = strtol(optarg, &end, 10);
                if (optarg && (*end || v < 0)) {
                        fprintf(stderr, "optsync-demo: bad number '%s'\n",
                                optarg);
                        return -1;
                }
                switch (c) {
                case 'l':
                        o->load = v;
                        break;
                case 'L':
                        o->load_rate = (int)v;
                        break;
                case 'p':
                        o->people = (size_t)v;
                        break;
                case 's':
                        o->seed = (uint64_t)v;
                        break;
                case 'r':
                        o->ac_rate = (int)v;
                        break;
                case 'k':
                        o->keep = 1;
                        break;
                case 'h':
                        usage(stdout);
                        exit(0);
                default:
                        return -1;
                }
        }
        if (optind < argc || o->people < 100 || o->people > 100000 ||
            o->ac_rate < 1 || o->ac_rate > 1000 || o->load > 100000 ||
            o->load_rate > 10000) {
                fprintf(stderr, "optsync-demo: bad arguments (--people "
                                "100..100000, --ac-rate 1..1000, --load "
                                "0..100000, --load-rate 0..10000)\n");
                return -1;
        }
        return 0;
}

/* @returns the sandbox time (ms) of the last write optsync made to either
 * platform (API requests other than GET, CometD and OAuth), or 0. */
static int64_t last_write_ms(struct e2e_stack *s)
{
        char *body = NULL;
        cJSON *root, *req;
        int64_t last = 0;

        if (e2e_stack_call(s, "GET", "/sandbox/requests?limit=100000", NULL,
                           &body) != 200 ||
            !(root = cJSON_Parse(body))) {
                free(body);
                return 0;
        }
        free(body);
        cJSON_ArrayForEach(req,
                           cJSON_GetObjectItemCaseSensitive(root, "requests"))
        {
                const char *method = cJSON_GetStringValue(
                    cJSON_GetObjectItemCaseSensitive(req, "method"));
                const char *ep = cJSON_GetStringValue(
                    cJSON_GetObjectItemCaseSensitive(req, "endpoint"));
                double t = cJSON_GetNumberValue(
                    cJSON_GetObjectItemCaseSensitive(req, "time_ms"));

                if (!method || !ep || !strcmp(method, "GET") ||
                    !strcmp(ep, "cometd") || !strcmp(ep, "sf.token"))
                        continue;
                if ((int64_t)t > last)
                        last = (int64_t)t;
        }
        cJSON_Delete(root);
        return last;
}

static void print_totals(struct e2e_stack *s, double converge_s)
{
        struct e2e_totals t;

        if (e2e_stack_totals(s, &t)) {
                printf("   (totals unavailable)\n");
                return;
        }
        printf("   events       %lld from AC webhooks, %lld from SF CDC\n",
               (long long)t.ac_events, (long long)t.sf_events);
        double decisions =
            e2e_stack_metric(s, E2E_RULES, "optsync_rules_decisions_total");
        printf("   decisions    %.0f by rules (%lld audit records: decisions "
               "and writes)\n",
               decisions, (long long)t.audit);
        printf("   commands     %lld to SF, %lld to AC\n",
               (long long)t.sf_commands, (long long)t.ac_commands);
        printf("   API calls    AC %lld, SF %lld (+ %lld CometD long-polls)\n",
               (long long)t.ac_api_calls, (long long)t.sf_api_calls,
               (long long)t.cometd_calls);
        printf("   429s         %lld\n", (long long)t.http_429);
        printf("   DLQ entries  %lld\n", (long long)t.dlq);
        if (converge_s >= 0)
                printf("   converged in %.1f s (first change -> optsync's last "
                       "write)\n",
                       converge_s);
}

static int run_load(struct e2e_stack *s, struct e2e_world *w,
                    const struct demo_opts *o, unsigned char *used)
{
        struct opt_write *writes =
            calloc((size_t)o->load * E2E_MAX_SF + 1, sizeof(*writes));
        double *lat  = calloc((size_t)o->load * E2E_MAX_SF + 1, sizeof(*lat));
        uint64_t rng = o->seed * 0x9E3779B97F4A7C15ull + 7;
        size_t n_writes = 0, played = 0;
        char err[512];
        int64_t t0;
        int rc = 0;

        if (!writes || !lat) {
                free(writes);
                free(lat);
                return -1;
        }
        printf("\n== Load: %ld random changes across both platforms, %s\n",
               o->load, o->load_rate ? "paced" : "all at once");
        if (o->load_rate)
                printf("   at %d changes/s\n", o->load_rate);
        t0 = e2e_now_ms();
        for (long i = 0; i < o->load && !stop_requested; i++) {
                struct e2e_change c;
                const char *rule = NULL;
                int64_t when;

                if (o->load_rate) {
                        int64_t due = t0 + i * 1000 / o->load_rate;
                        int64_t now = e2e_now_ms();
                        if (due > now)
                                e2e_sleep_ms((int)(due - now));
                }
                when = realtime_ms();
                if (e2e_world_random_change(w, &rng, used, &c)) {
                        /* Every person has had a change: next round. */
                        memset(used, 0, w->n);
                        if (e2e_world_random_change(w, &rng, used, &c))
                                break;
                }
                struct e2e_person before = w->people[c.person];
                if (e2e_world_play(w, s->sandbox_url, &c, &rule, err,
                                   sizeof(err))) {
                        fprintf(stderr, "demo: load change failed: %s\n", err);
                        rc = -1;
                        break;
                }
                played++;
                /* AC-originated changes that optsync must carry to SF:
                 * the records whose opt-out the oracle flipped. */
                if (c.kind == E2E_SF_TICK || c.kind == E2E_SF_UNTICK)
                        continue;
                const struct e2e_person *after = &w->people[c.person];
                for (size_t r = 0; r < after->n_sf; r++)
                        if (after->sf[r].opted_out != before.sf[r].opted_out) {
                                memcpy(writes[n_writes].id, after->sf[r].id,
                                       sizeof(writes[0].id));
                                writes[n_writes++].when_ms = when;
                        }
        }
        double issue_s = (double)(e2e_now_ms() - t0) / 1000.0;
        if (rc || stop_requested) {
                free(writes);
                free(lat);
                return -1;
        }
        printf("   %zu changes made in %.1f s; waiting for optsync to "
               "settle ...\n",
               played, issue_s);
        if (e2e_stack_settle(s, 1500,
                             o->settle_timeout_s * 1000 +
                                 (int)(o->load * 1000 / o->ac_rate),
                             err, sizeof(err))) {
                fprintf(stderr, "demo: %s\n", err);
                free(writes);
                free(lat);
                return -1;
        }
        double total_s = (double)(e2e_now_ms() - t0) / 1000.0 - 1.5;
        size_t got     = latencies(s, writes, n_writes, lat);
        printf("   throughput   %.1f changes/s end to end (%zu changes, "
               "%.1f s until settled)\n",
               total_s > 0 ? (double)played / total_s : 0.0, played, total_s);
        printf("   latency      AC webhook -> SF write: p50 %.0f ms, p99 "
               "%.0f ms over %zu SF writes (%zu expected)\n",
               percentile(lat, got, 0.50), percentile(lat, got, 0.99), got,
               n_writes);
        if (got != n_writes) {
                printf("   MISMATCH: %zu expected SF writes never happened\n",
                       n_writes - got);
                rc = 1;
        }
        free(writes);
        free(lat);
        return rc;
}

int main(int argc, char **argv)
{
        struct demo_opts o     = {0};
        struct e2e_world world = {0}, actual = {0};
        struct e2e_stack stack;
        struct played played[16];
        unsigned char *used = NULL;
        char err[4096];
        char *fixture = NULL, *state = NULL;
        int rc = EXIT_BROKEN, mismatches = 0, scenario_bad = 0;
        size_t n_played = 0;

        memset(&stack, 0, sizeof(stack));
        if (parse_args(argc, argv, &o)) {
                usage(stderr);
                return EXIT_USAGE;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        struct sigaction sa = {.sa_handler = on_signal};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        e2e_stack_interrupt_on(&stop_requested);

        if (e2e_world_generate(&world, TENANT, o.people, o.seed) ||
            !(fixture = e2e_world_fixture_json(&world, o.ac_rate)) ||
            !(used = calloc(world.n, 1))) {
                fprintf(stderr, "demo: out of memory\n");
                goto out;
        }
        printf("== Starting optsync: embedded Kafka (3 brokers), "
               "redis-server, the sandbox\n"
               "   (AC and SF, tenant \"%s\": %zu people, AC limit %d "
               "calls/s), and 5 workers\n",
               TENANT, world.n, o.ac_rate);
        struct e2e_stack_opts so = {.tenant        = TENANT,
                                    .fixture_json  = fixture,
                                    .ac_rate_per_s = o.ac_rate,
                                    .keep_dir      = o.keep};
        int64_t t_start          = e2e_now_ms();
        if (e2e_stack_start(&stack, &so, err, sizeof(err))) {
                fprintf(stderr, "demo: %s\n", err);
                rc = stop_requested ? EXIT_INTERRUPTED : EXIT_BROKEN;
                goto out;
        }
        printf("   %-9s pid %-7d %s\n", "kafka", (int)stack.kafka_pid,
               stack.bootstrap);
        printf("   %-9s pid %-7d 127.0.0.1:%d\n", "redis", (int)stack.redis_pid,
               stack.redis_port);
        printf("   %-9s pid %-7d %s\n", "sandbox", (int)stack.sandbox_pid,
               stack.sandbox_url);
        for (int w = 0; w < E2E_WORKERS; w++)
                printf("   %-9s pid %-7d /metrics on 127.0.0.1:%d%s\n",
                       e2e_worker_name((enum e2e_worker)w), (int)stack.pid[w],
                       stack.admin_port[w],
                       w == E2E_AC_INGEST ? " (webhooks registered in AC)"
                                          : "");
        printf("   ready in %.1f s; run directory %s\n",
               (double)(e2e_now_ms() - t_start) / 1000.0, stack.dir);
        if (o.fault) {
                char *resp = NULL;
                int st     = e2e_stack_call(&stack, "POST", "/sandbox/faults",
                                            o.fault, &resp);
                if (st != 201) {
                        fprintf(stderr,
                                "demo: the sandbox refused --fault: %d "
                                "%s\n",
                                st, resp ? resp : "");
                        free(resp);
                        rc = EXIT_USAGE;
                        goto out;
                }
                printf("   fault rule in force: %s\n", o.fault);
                free(resp);
        }
        if (!(state = e2e_stack_state(&stack)) ||
            e2e_world_bind(&world, state, err, sizeof(err))) {
                fprintf(stderr, "demo: cannot bind the fixture: %s\n",
                        state ? err : "no state");
                goto out;
        }

        /* Pick a distinct person for each scenario and describe it. */
        for (size_t i = 0; i < e2e_n_scenarios && i < 16; i++) {
                struct played *p = &played[n_played];

                if (e2e_scenario_pick(&e2e_scenarios[i], &world, used,
                                      &p->change)) {
                        fprintf(stderr,
                                "demo: nobody in the fixture fits \"%s\"\n",
                                e2e_scenarios[i].title);
                        goto out;
                }
                p->person = p->change.person;
                e2e_person_describe(&world.people[p->person], p->before,
                                    sizeof(p->before));
                n_played++;
        }

        printf("\n== Playing %zu scenarios through the sandbox, as users "
               "would\n",
               n_played);
        int64_t t_play = e2e_now_ms(), t_play_real = realtime_ms();
        for (size_t i = 0; i < n_played && !stop_requested; i++)
                if (e2e_world_play(&world, stack.sandbox_url, &played[i].change,
                                   &played[i].rule, err, sizeof(err))) {
                        fprintf(stderr, "demo: scenario %zu: %s\n", i + 1, err);
                        goto out;
                }
        if (stop_requested)
                goto out;
        char report[4096];
        long others = e2e_check(&stack, &world, 1500, o.settle_timeout_s * 1000,
                                &actual, report, sizeof(report));
        if (others < 0) {
                fprintf(stderr, "demo: %s\n", report);
                goto out;
        }
        /* Converged: when the last write landed, not when the settle check
         * (commit interval, quiet period) noticed it. */
        int64_t last_write = last_write_ms(&stack);
        double converge_s =
            last_write > t_play_real
                ? (double)(last_write - t_play_real) / 1000.0
                : (double)(e2e_now_ms() - t_play) / 1000.0 - 1.5;

        for (size_t i = 0; i < n_played; i++) {
                const struct e2e_person *exp = &world.people[played[i].person];
                const struct e2e_person *act = &actual.people[played[i].person];
                char after[1024], why[1024];
                int ok = person_matches(exp, act, why, sizeof(why));

                printf("\n-- %zu. %s\n", i + 1, e2e_scenarios[i].title);
                printf("   person   %s <%s>, %s\n", exp->name, exp->email,
                       exp->qualified ? "qualified" : "not qualified");
                print_block("before", played[i].before);
                printf("   change   %s\n",
                       e2e_change_name(played[i].change.kind));
                e2e_person_describe(act, after, sizeof(after));
                print_block("after", after);
                printf("   rule     %s\n", played[i].rule);
                printf("   result   %s\n", ok ? "MATCH" : "MISMATCH");
                if (!ok) {
                        print_block("expected", why);
                        scenario_bad++;
                }
        }
        /* Nobody else may have changed (others counts the scenarios'
         * mismatches too). */
        size_t others_bad = others >= (long)scenario_bad
                                ? (size_t)others - (size_t)scenario_bad
                                : 0;
        mismatches        = scenario_bad;
        printf("\n== The other %zu people: %s\n", world.n - n_played,
               others_bad ? "CHANGED (see below)" : "unchanged, as expected");
        if (others_bad) {
                print_block("diff", report);
                mismatches += (int)others_bad;
        }
        printf("\n== Totals\n");
        print_totals(&stack, converge_s);

        if (o.load > 0) {
                int lr = run_load(&stack, &world, &o, used);
                if (lr < 0)
                        goto out;
                long bad = e2e_check(&stack, &world, 1500, 60000, NULL, report,
                                     sizeof(report));
                if (bad < 0) {
                        fprintf(stderr, "demo: %s\n", report);
                        goto out;
                }
                printf("   final state  %s\n", bad ? "DIFFERS from the rules"
                                                   : "as the rules say, "
                                                     "for every person");
                if (bad)
                        print_block("diff", report);
                mismatches += (int)bad + (lr > 0);
                printf("\n== Totals after the load\n");
                print_totals(&stack, -1);
        }
        printf("\n== %s: %zu of %zu scenarios match the rules; %s\n",
               mismatches ? "FAILED" : "OK", n_played - (size_t)scenario_bad,
               n_played,
               mismatches > scenario_bad ? "other people differ"
                                         : "everyone else as expected");
        rc = mismatches ? EXIT_MISMATCH : 0;
out:
        if (stop_requested) {
                printf("\n== Interrupted: stopping every process\n");
                rc = EXIT_INTERRUPTED;
        }
        e2e_stack_stop(&stack);
        if (o.keep && stack.dir[0])
                printf("   logs kept in %s\n", stack.dir);
        e2e_world_free(&world);
        e2e_world_free(&actual);
        free(fixture);
        free(state);
        free(used);
        return rc;
}
