/*
 * test_ratelimit.c - the GCRA arithmetic the Lua script shares with C:
 * exact bursts and waits, the long-run bound under random arrivals and
 * skewed clocks, and the limiter's argument checks (no Redis needed).
 */
#include "osy_test.h"
#include "optsync/ratelimit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS 1000 /* microseconds */

/* AC's limit: 5 requests per second, burst 5. */
#define I_AC (200 * MS)
#define TOL_AC (5 * I_AC)

/* xorshift64*: a seeded PRNG so property tests repeat exactly. */
static uint64_t rnd_next(uint64_t *s)
{
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * UINT64_C(2685821657736338717);
}

static int64_t rnd_range(uint64_t *s, int64_t lo, int64_t hi)
{
        return lo + (int64_t)(rnd_next(s) % (uint64_t)(hi - lo + 1));
}

/* The interval is whole microseconds, rounded toward the safe side. */
static void interval_rounds_up(void **state)
{
        (void)state;
        assert_int_equal(osy_rl_interval_us(5, 1000), 200000);
        /* 1/3 s is not a whole number of us: rounding up keeps the rate
         * at or under 3 per second. */
        assert_int_equal(osy_rl_interval_us(3, 1000), 333334);
        assert_int_equal(osy_rl_interval_us(1, 1), 1000);
        assert_int_equal(osy_rl_interval_us(1000, 1), 1);
        assert_int_equal(osy_rl_interval_us(1001, 1), -1);
        assert_int_equal(osy_rl_interval_us(0, 1000), -1);
        assert_int_equal(osy_rl_interval_us(5, 0), -1);
        assert_int_equal(osy_rl_interval_us(-5, 1000), -1);
        assert_int_equal(osy_rl_interval_us(1, OSY_RL_MAX_TOLERANCE_MS + 1),
                         -1);
}

/* A full bucket gives exactly burst tokens at once, then the exact wait. */
static void burst_allowed_at_t0_then_exact_wait(void **state)
{
        int64_t tat = 0, nt, wait;

        (void)state;
        for (int i = 0; i < 5; i++) {
                assert_int_equal(
                    osy_rl_gcra_step(tat, 0, I_AC, TOL_AC, 1, 0, &nt, &wait),
                    1);
                assert_int_equal(wait, 0);
                assert_int_equal(nt, (i + 1) * I_AC);
                tat = nt;
        }
        /* The sixth must wait exactly one interval, and the denial must
         * not move the TAT. */
        assert_int_equal(
            osy_rl_gcra_step(tat, 0, I_AC, TOL_AC, 1, 0, &nt, &wait), 0);
        assert_int_equal(wait, I_AC);
        assert_int_equal(nt, tat);
}

/* One interval later exactly one token is back, not before. */
static void allowed_again_after_interval(void **state)
{
        int64_t tat = TOL_AC, nt, wait; /* a bucket just emptied at t=0 */

        (void)state;
        assert_int_equal(
            osy_rl_gcra_step(tat, I_AC - 1, I_AC, TOL_AC, 1, 0, &nt, &wait), 0);
        assert_int_equal(wait, 1);
        assert_int_equal(
            osy_rl_gcra_step(tat, I_AC, I_AC, TOL_AC, 1, 0, &nt, &wait), 1);
        assert_int_equal(nt, TOL_AC + I_AC);
        /* ... and only one token came back. */
        assert_int_equal(
            osy_rl_gcra_step(nt, I_AC, I_AC, TOL_AC, 1, 0, &nt, &wait), 0);
        assert_int_equal(wait, I_AC);
}

/* A caller that keeps asking while denied is not penalised. */
static void denied_calls_do_not_push_the_turn(void **state)
{
        int64_t tat = TOL_AC, nt, wait;

        (void)state;
        /* Hammering while denied: each wait shrinks by the time passed. */
        for (int64_t now = 0; now < I_AC; now += 7 * MS) {
                assert_int_equal(
                    osy_rl_gcra_step(tat, now, I_AC, TOL_AC, 1, 0, &nt, &wait),
                    0);
                assert_int_equal(wait, I_AC - now);
                assert_int_equal(nt, tat);
        }
        assert_int_equal(
            osy_rl_gcra_step(tat, I_AC, I_AC, TOL_AC, 1, 0, &nt, &wait), 1);
}

/* A call of cost k takes k tokens and waits for k. */
static void cost_takes_that_many_tokens(void **state)
{
        int64_t tat = 0, nt, wait;

        (void)state;
        assert_int_equal(
            osy_rl_gcra_step(tat, 0, I_AC, TOL_AC, 3, 0, &nt, &wait), 1);
        tat = nt;
        /* Two tokens left: 3 must wait for one more, 2 fits. */
        assert_int_equal(
            osy_rl_gcra_step(tat, 0, I_AC, TOL_AC, 3, 0, &nt, &wait), 0);
        assert_int_equal(wait, I_AC);
        assert_int_equal(
            osy_rl_gcra_step(tat, 0, I_AC, TOL_AC, 2, 0, &nt, &wait), 1);
        assert_int_equal(nt, TOL_AC);
        /* The whole burst at once is allowed on a full bucket. */
        assert_int_equal(osy_rl_gcra_step(0, 0, I_AC, TOL_AC, 5, 0, &nt, &wait),
                         1);
}

/* Impossible requests are errors (-1), not endless waits. */
static void bad_arguments_rejected(void **state)
{
        int64_t nt = 42, wait = 42;

        (void)state;
        /* More than the burst could never be allowed: an error, not a
         * wait that would never end. */
        assert_int_equal(osy_rl_gcra_step(0, 0, I_AC, TOL_AC, 6, 0, &nt, &wait),
                         -1);
        assert_int_equal(osy_rl_gcra_step(0, 0, I_AC, TOL_AC, 0, 0, &nt, &wait),
                         -1);
        assert_int_equal(
            osy_rl_gcra_step(0, 0, I_AC, TOL_AC, -1, 0, &nt, &wait), -1);
        assert_int_equal(osy_rl_gcra_step(0, 0, 0, TOL_AC, 1, 0, &nt, &wait),
                         -1);
        assert_int_equal(
            osy_rl_gcra_step(0, 0, I_AC, TOL_AC, 1, -1, &nt, &wait), -1);
        assert_int_equal(
            osy_rl_gcra_step(0, 0, I_AC, TOL_AC, INT64_MAX / 2, 0, &nt, &wait),
            -1);
}

/* A clock that went backwards (or lags) only ever waits longer. */
static void clock_behind_the_stored_tat_waits_longer(void **state)
{
        int64_t tat = 1000 * MS + TOL_AC, nt, wait;

        (void)state;
        /* Another replica emptied the bucket at t=1 s; a caller whose clock
         * reads 0.9 s must wait 100 ms more than one interval. */
        assert_int_equal(
            osy_rl_gcra_step(tat, 900 * MS, I_AC, TOL_AC, 1, 0, &nt, &wait), 0);
        assert_int_equal(wait, I_AC + 100 * MS);
}

/* Where the skew margin applies, and where it does not. */
static void skew_margin_restarts_refilled_bucket_later(void **state)
{
        int64_t nt, wait;

        (void)state;
        /* Full bucket: allowed on the caller's clock, but stored as if the
         * bucket restarted skew later. */
        assert_int_equal(osy_rl_gcra_step(0, 1000 * MS, I_AC, TOL_AC, 1,
                                          50 * MS, &nt, &wait),
                         1);
        assert_int_equal(nt, 1000 * MS + 50 * MS + I_AC);
        /* A busy bucket (TAT ahead by more than skew) is unaffected. */
        assert_int_equal(osy_rl_gcra_step(1000 * MS + 500 * MS, 1000 * MS, I_AC,
                                          TOL_AC, 1, 50 * MS, &nt, &wait),
                         1);
        assert_int_equal(nt, 1000 * MS + 500 * MS + I_AC);
}

/*
 * Why the margin exists: replica B's clock lags 50 ms and it is first to
 * use a full bucket at real time 0 (its clock: -50 ms), taking the burst.
 * Replica A, on time, asks at real 150 ms: without a margin it gets a
 * sixth token although 150 ms < one interval has passed.
 */
static int lagging_first_user_scenario(int64_t skew)
{
        int64_t tat = -1000 * MS, nt, wait;
        int allowed = 0;

        for (int i = 0; i < 5; i++) {
                allowed += osy_rl_gcra_step(tat, -50 * MS, I_AC, TOL_AC, 1,
                                            skew, &nt, &wait) == 1;
                tat = nt;
        }
        allowed += osy_rl_gcra_step(tat, 150 * MS, I_AC, TOL_AC, 1, skew, &nt,
                                    &wait) == 1;
        return allowed;
}

static void skew_margin_needed_against_lagging_clock(void **state)
{
        (void)state;
        /* Bound at real 150 ms: 5 + 150/200 = 5.75, so at most 5. */
        assert_int_equal(lagging_first_user_scenario(0), 6);
        assert_true(lagging_first_user_scenario(50 * MS) <= 5);
}

/*
 * Simulate @p nclients callers whose clocks are offset by 0..-skew_clock
 * from real time, asking at random real times for random costs, and check
 * that every window [t_i, t_j] between two allowed calls holds at most
 * rate * (t_j - t_i) / period + burst tokens. @returns tokens allowed.
 */
static int64_t simulate(uint64_t seed, int64_t rate, int64_t period_ms,
                        int64_t burst, int64_t skew_ms, int64_t clock_lag_ms,
                        int nclients, int64_t max_gap_us, int max_cost,
                        int64_t duration_us)
{
        int64_t interval = osy_rl_interval_us(rate, period_ms);
        int64_t period   = period_ms * MS;
        int64_t tol = burst * interval, tat = 0, nt, wait, total = 0;
        int64_t offs[8];
        int64_t *at, *cost_at;
        size_t n = 0, cap = 1 << 16;
        uint64_t s = seed;

        assert_true(nclients <= 8 && interval > 0);
        at      = calloc(cap, sizeof(*at));
        cost_at = calloc(cap, sizeof(*cost_at));
        assert_non_null(at);
        assert_non_null(cost_at);
        for (int c = 0; c < nclients; c++)
                offs[c] = c == 0 ? 0 : -rnd_range(&s, 0, clock_lag_ms * MS);
        /* Start away from 0 so a lagging clock is never negative. */
        for (int64_t t = 10000 * MS; t < 10000 * MS + duration_us;
             t += rnd_range(&s, 0, max_gap_us)) {
                int c       = (int)rnd_range(&s, 0, nclients - 1);
                int64_t k   = rnd_range(&s, 1, max_cost);
                int allowed = osy_rl_gcra_step(tat, t + offs[c], interval, tol,
                                               k, skew_ms * MS, &nt, &wait);
                assert_int_not_equal(allowed, -1);
                if (allowed) {
                        assert_true(n < cap);
                        at[n]      = t;
                        cost_at[n] = k;
                        n++;
                        total += k;
                }
                tat = nt;
        }
        /* Every window that starts and ends on an allowed call, checked
         * against the true rate (not the rounded interval). */
        for (size_t i = 0; i < n; i++) {
                int64_t sum = 0;
                for (size_t j = i; j < n; j++) {
                        sum += cost_at[j];
                        if (sum * period >
                            rate * (at[j] - at[i]) + burst * period) {
                                fail_msg("seed %" PRIu64 ": %" PRId64
                                         " tokens in %" PRId64 " us",
                                         seed, sum, at[j] - at[i]);
                        }
                }
        }
        free(at);
        free(cost_at);
        return total;
}

/* Property: no window ever exceeds rate * length + burst. */
static void property_bound_holds_for_random_arrivals(void **state)
{
        (void)state;
        for (uint64_t seed = 1; seed <= 20; seed++) {
                /* AC-like, a rate that does not divide a second, a big
                 * burst with big costs. */
                simulate(seed, 5, 1000, 5, 0, 0, 1, 300 * MS, 1, 60000 * MS);
                simulate(seed, 3, 1000, 2, 0, 0, 1, 500 * MS, 2, 60000 * MS);
                simulate(seed, 100, 1000, 20, 0, 0, 1, 30 * MS, 7, 20000 * MS);
        }
}

/* Property: the bound holds in real time with clocks up to skew apart. */
static void property_bound_holds_with_skewed_clocks(void **state)
{
        (void)state;
        /* Up to three replicas, clocks up to 50 ms behind the first, the
         * limiter told to expect 50 ms. */
        for (uint64_t seed = 1; seed <= 20; seed++) {
                simulate(seed, 5, 1000, 5, 50, 50, 3, 150 * MS, 1, 60000 * MS);
                simulate(seed, 10, 1000, 10, 50, 50, 2, 120 * MS, 3,
                         30000 * MS);
        }
}

/* The limiter does not starve: busy callers get nearly all the rate. */
static void hammering_reaches_the_rate(void **state)
{
        (void)state;
        /* Callers that ask every 0..2 ms for 60 s get at least 95% of
         * rate * T + burst (the bound itself is checked inside). */
        for (uint64_t seed = 1; seed <= 5; seed++) {
                int64_t got = simulate(seed, 5, 1000, 5, 50, 50, 2, 2 * MS, 1,
                                       60000 * MS);
                assert_true(got * 100 >= 95 * (5 * 60 + 5));
        }
}

/* Property: the returned wait is exact, to the microsecond. */
static void wait_is_exact_for_random_states(void **state)
{
        uint64_t s = 7;

        (void)state;
        for (int i = 0; i < 10000; i++) {
                int64_t interval = rnd_range(&s, 1, 1000 * MS);
                int64_t burst    = rnd_range(&s, 1, 10);
                int64_t tol      = burst * interval;
                int64_t now      = rnd_range(&s, 0, 100000 * MS);
                int64_t tat      = now + rnd_range(&s, -tol, 2 * tol);
                int64_t cost     = rnd_range(&s, 1, burst);
                int64_t nt, wait, nt2, wait2;

                if (osy_rl_gcra_step(tat, now, interval, tol, cost, 0, &nt,
                                     &wait) == 1)
                        continue;
                assert_true(wait > 0);
                assert_int_equal(osy_rl_gcra_step(tat, now + wait - 1, interval,
                                                  tol, cost, 0, &nt2, &wait2),
                                 0);
                assert_int_equal(wait2, 1);
                assert_int_equal(osy_rl_gcra_step(tat, now + wait, interval,
                                                  tol, cost, 0, &nt2, &wait2),
                                 1);
        }
}

/* Each bad option is refused with a reason. */
static void new_rejects_bad_options(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        osy_rl_t *rl          = (osy_rl_t *)1;
        struct osy_rl_opts ok = {"optsync", 5, 1000, 5, 50};
        struct osy_rl_opts o;

        (void)state;
        /* Options are checked before the Redis handle, so no server is
         * needed to see each reason. */
        o        = ok;
        o.prefix = "";
        assert_int_equal(osy_rl_new(&rl, NULL, &o, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_null(rl);
        assert_non_null(strstr(err, "prefix"));
        o        = ok;
        o.prefix = "a{b}";
        assert_int_equal(osy_rl_new(&rl, NULL, &o, err, sizeof(err)),
                         OSY_ERR_INVALID);
        o      = ok;
        o.rate = 0;
        assert_int_equal(osy_rl_new(&rl, NULL, &o, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(err, "rate 0"));
        o           = ok;
        o.period_ms = -1;
        assert_int_equal(osy_rl_new(&rl, NULL, &o, err, sizeof(err)),
                         OSY_ERR_INVALID);
        o       = ok;
        o.burst = 0;
        assert_int_equal(osy_rl_new(&rl, NULL, &o, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(err, "burst"));
        o       = ok;
        o.burst = INT64_MAX / 2;
        assert_int_equal(osy_rl_new(&rl, NULL, &o, err, sizeof(err)),
                         OSY_ERR_INVALID);
        o         = ok;
        o.skew_ms = -1;
        assert_int_equal(osy_rl_new(&rl, NULL, &o, err, sizeof(err)),
                         OSY_ERR_INVALID);
        /* (burst - 1) * interval = 800 ms is the largest margin. */
        o         = ok;
        o.skew_ms = 801;
        assert_int_equal(osy_rl_new(&rl, NULL, &o, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(err, "800 ms"));
        o         = ok;
        o.burst   = 1;
        o.skew_ms = 1;
        assert_int_equal(osy_rl_new(&rl, NULL, &o, err, sizeof(err)),
                         OSY_ERR_INVALID);
        /* Good options, but no Redis. */
        assert_int_equal(osy_rl_new(&rl, NULL, &ok, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(err, "redis"));
        assert_int_equal(osy_rl_new(&rl, NULL, NULL, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_int_equal(osy_rl_new(NULL, NULL, &ok, err, sizeof(err)),
                         OSY_ERR_INVALID);
}

/* No limiter: an error, and *wait_ms is still written. */
static void acquire_and_wait_reject_missing_limiter(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        int64_t wait = 99;

        (void)state;
        assert_int_equal(
            osy_rl_acquire(NULL, "t", "ac", 0, 1, &wait, err, sizeof(err)),
            OSY_ERR_INVALID);
        assert_int_equal(wait, 0);
        assert_int_equal(osy_rl_wait(NULL, "t", "ac", 1, 1000, NULL, &wait, err,
                                     sizeof(err)),
                         OSY_ERR_INVALID);
        assert_int_equal(wait, 0);
        osy_rl_destroy(NULL);
}

/* The key layout other tools rely on, and its hash tag. */
static void key_format_and_hash_tag(void **state)
{
        char key[64], err[OSY_ERRSTR_SIZE];

        (void)state;
        assert_int_equal(osy_rl_format_key(key, sizeof(key), "optsync",
                                           "acme-1", "ac", err, sizeof(err)),
                         OSY_OK);
        assert_string_equal(key, "optsync:rl:{acme-1}:ac");
        /* A brace in the tenant would move the hash tag. */
        assert_int_equal(osy_rl_format_key(key, sizeof(key), "optsync", "a}b",
                                           "ac", err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_string_equal(key, "");
        assert_int_equal(osy_rl_format_key(key, sizeof(key), "optsync", "",
                                           "ac", err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_int_equal(osy_rl_format_key(key, sizeof(key), "optsync", "t",
                                           NULL, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_int_equal(osy_rl_format_key(key, 16, "optsync", "acme-1", "ac",
                                           err, sizeof(err)),
                         OSY_ERR_TOO_LARGE);
        assert_string_equal(key, "");
}

/* The default clock is the wall clock, shared by hosts, not CLOCK_MONOTONIC. */
static void wall_clock_is_epoch_ms(void **state)
{
        int64_t now = osy_rl_now_ms();

        (void)state;
        /* After 2020-01-01 and inside the range the limiter accepts. */
        assert_true(now > INT64_C(1577836800000));
        assert_true(now < OSY_RL_MAX_NOW_MS);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(interval_rounds_up),
    cmocka_unit_test(burst_allowed_at_t0_then_exact_wait),
    cmocka_unit_test(allowed_again_after_interval),
    cmocka_unit_test(denied_calls_do_not_push_the_turn),
    cmocka_unit_test(cost_takes_that_many_tokens),
    cmocka_unit_test(bad_arguments_rejected),
    cmocka_unit_test(clock_behind_the_stored_tat_waits_longer),
    cmocka_unit_test(skew_margin_restarts_refilled_bucket_later),
    cmocka_unit_test(skew_margin_needed_against_lagging_clock),
    cmocka_unit_test(property_bound_holds_for_random_arrivals),
    cmocka_unit_test(property_bound_holds_with_skewed_clocks),
    cmocka_unit_test(hammering_reaches_the_rate),
    cmocka_unit_test(wait_is_exact_for_random_states),
    cmocka_unit_test(new_rejects_bad_options),
    cmocka_unit_test(acquire_and_wait_reject_missing_limiter),
    cmocka_unit_test(key_format_and_hash_tag),
    cmocka_unit_test(wall_clock_is_epoch_ms),
};
OSY_TEST_MAIN(tests, NULL, NULL)
