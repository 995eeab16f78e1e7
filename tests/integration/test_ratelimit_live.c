/*
 * test_ratelimit_live.c - the GCRA script on a real redis-server, driven
 * by a fake clock: two replicas sharing a bucket, skewed clocks, expiry,
 * and step-by-step agreement with the C reference.
 */
#include "osy_test.h"
#include "redis_restart.h"
#include "optsync/ratelimit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A realistic epoch time, so the microsecond TATs are ~1.7e15. */
#define T0 INT64_C(1700000000000)

static struct osy_test_redis srv;

static int group_setup(void **state)
{
        (void)state;
        return osy_test_redis_start(&srv);
}

static int group_teardown(void **state)
{
        (void)state;
        osy_test_redis_stop(&srv);
        return 0;
}

static osy_redis_t *open_redis(void)
{
        char err[OSY_ERRSTR_SIZE];
        struct osy_redis_opts o = {.host = "127.0.0.1", .port = srv.port};
        osy_redis_t *r          = NULL;

        if (osy_redis_connect(&r, &o, err, sizeof(err)))
                fail_msg("connect: %s", err);
        return r;
}

static osy_rl_t *open_rl(osy_redis_t *r, int64_t rate, int64_t period_ms,
                         int64_t burst, int64_t skew_ms)
{
        char err[OSY_ERRSTR_SIZE];
        struct osy_rl_opts o = {"t", rate, period_ms, burst, skew_ms};
        osy_rl_t *rl         = NULL;

        if (osy_rl_new(&rl, r, &o, err, sizeof(err)))
                fail_msg("osy_rl_new: %s", err);
        return rl;
}

/* "CMD [key]" answering a string or an integer (GET, PTTL, DBSIZE);
 * @returns that integer, or -1 for a nil reply. */
static int64_t get_int(osy_redis_t *r, const char *cmd, const char *key)
{
        char err[OSY_ERRSTR_SIZE];
        const char *argv[] = {cmd, key};
        redisReply *reply  = NULL;
        int64_t v          = -1;

        if (osy_redis_command_argv(r, key ? 2 : 1, argv, NULL, &reply, err,
                                   sizeof(err)))
                fail_msg("%s %s: %s", cmd, key, err);
        if (reply->type == REDIS_REPLY_STRING)
                v = strtoll(reply->str, NULL, 10);
        else if (reply->type == REDIS_REPLY_INTEGER)
                v = reply->integer;
        freeReplyObject(reply);
        return v;
}

static int clean(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        const char *flush[]   = {"FLUSHALL"};
        const char *scripts[] = {"SCRIPT", "FLUSH"};
        osy_redis_t *r        = open_redis();
        redisReply *reply     = NULL;

        (void)state;
        /* Scripts too: a case may count SCRIPT LOADs. */
        assert_int_equal(
            osy_redis_command_argv(r, 1, flush, NULL, &reply, err, sizeof(err)),
            OSY_OK);
        freeReplyObject(reply);
        assert_int_equal(osy_redis_command_argv(r, 2, scripts, NULL, &reply,
                                                err, sizeof(err)),
                         OSY_OK);
        freeReplyObject(reply);
        osy_redis_destroy(r);
        return 0;
}

static int acquire(osy_rl_t *rl, const char *tenant, const char *api,
                   int64_t now_ms, int cost, int64_t *wait)
{
        char err[OSY_ERRSTR_SIZE];
        int64_t w = -1;
        osy_err_t e =
            osy_rl_acquire(rl, tenant, api, now_ms, cost, &w, err, sizeof(err));

        if (e)
                fail_msg("acquire: %s: %s", osy_err2str(e), err);
        if (wait)
                *wait = w;
        return w == 0;
}

/*
 * Two replicas, each with its own connection, take turns asking for one
 * token every 2 ms of fake time for 10 s; client 1's clock lags by
 * @p lag_ms and asks first. With @p bursty they ask only 1 s out of every
 * 2 s, so the bucket refills and is restarted by the lagging clock each
 * time. Every window between two allowed calls must hold at most
 * rate * length + burst tokens (length in real time). @returns the count.
 */
static int64_t two_replicas(const char *tenant, int64_t lag_ms, int64_t skew_ms,
                            int bursty)
{
        osy_redis_t *r[2] = {open_redis(), open_redis()};
        osy_rl_t *rl[2]   = {open_rl(r[0], 5, 1000, 5, skew_ms),
                             open_rl(r[1], 5, 1000, 5, skew_ms)};
        int64_t at[200];
        size_t n = 0;

        for (int64_t t = T0; t <= T0 + 10000; t += 2) {
                if (bursty && (t - T0) % 2000 >= 1000)
                        continue;
                for (int c = 1; c >= 0; c--) {
                        int64_t now = c == 1 ? t - lag_ms : t;
                        if (!acquire(rl[c], tenant, "ac", now, 1, NULL))
                                continue;
                        assert_true(n < sizeof(at) / sizeof(at[0]));
                        at[n++] = t;
                }
        }
        /* tokens in [at[i], at[j]] <= 5 * (at[j] - at[i]) / 1000 + 5 */
        for (size_t i = 0; i < n; i++)
                for (size_t j = i; j < n; j++)
                        if ((int64_t)(j - i + 1) * 1000 >
                            5 * (at[j] - at[i]) + 5 * 1000)
                                fail_msg("%zu allowed in %" PRId64 " ms",
                                         j - i + 1, at[j] - at[i]);
        for (int k = 0; k < 2; k++) {
                osy_rl_destroy(rl[k]);
                osy_redis_destroy(r[k]);
        }
        return (int64_t)n;
}

static void two_replicas_share_the_rate(void **state)
{
        (void)state;
        /* 5/s over 10 s plus the burst is 55: reach 95% of it. */
        assert_true(two_replicas("acme", 0, 0, 0) * 100 >= 95 * 55);
}

static void lagging_clock_stays_within_bound(void **state)
{
        (void)state;
        /* The bound is checked inside; the margin costs little. */
        assert_true(two_replicas("acme", 50, 50, 0) * 100 >= 95 * 55);
        /* Five active seconds after idle ones: each starts with a
         * (margin-shortened) burst, then the rate: 47 in practice. */
        assert_true(two_replicas("globex", 50, 50, 1) >= 40);
}

static void lagging_clock_needs_the_margin(void **state)
{
        osy_redis_t *r  = open_redis();
        osy_rl_t *plain = open_rl(r, 5, 1000, 5, 0);
        osy_rl_t *safe  = open_rl(r, 5, 1000, 5, 50);
        int n_plain = 0, n_safe = 0;

        (void)state;
        /* Replica B (clock -50 ms) empties a full bucket at real T0;
         * replica A asks at real T0 + 150 ms, when the bound is 5.75. The
         * script without a margin hands out a sixth token, as the C
         * reference predicts (see test_ratelimit). */
        for (int i = 0; i < 5; i++) {
                n_plain += acquire(plain, "p", "ac", T0 - 50, 1, NULL);
                n_safe += acquire(safe, "s", "ac", T0 - 50, 1, NULL);
        }
        n_plain += acquire(plain, "p", "ac", T0 + 150, 1, NULL);
        n_safe += acquire(safe, "s", "ac", T0 + 150, 1, NULL);
        assert_int_equal(n_plain, 6);
        assert_true(n_safe <= 5);
        osy_rl_destroy(plain);
        osy_rl_destroy(safe);
        osy_redis_destroy(r);
}

/* Buckets are per (tenant, API); the tenant is the cluster hash tag. */
static void tenants_and_apis_are_independent(void **state)
{
        osy_redis_t *r = open_redis();
        osy_rl_t *rl   = open_rl(r, 5, 1000, 5, 0);
        int64_t wait;

        (void)state;
        for (int i = 0; i < 5; i++)
                assert_true(acquire(rl, "acme", "ac", T0, 1, NULL));
        assert_false(acquire(rl, "acme", "ac", T0, 1, &wait));
        assert_int_equal(wait, 200);
        /* Same tenant, other API; other tenant, same API. */
        assert_true(acquire(rl, "acme", "sf", T0, 5, NULL));
        assert_true(acquire(rl, "globex", "ac", T0, 5, NULL));
        assert_false(acquire(rl, "globex", "ac", T0, 1, NULL));
        /* The keys carry the tenant as a hash tag. */
        assert_true(get_int(r, "GET", "t:rl:{acme}:ac") > 0);
        assert_true(get_int(r, "GET", "t:rl:{acme}:sf") > 0);
        assert_true(get_int(r, "GET", "t:rl:{globex}:ac") > 0);
        osy_rl_destroy(rl);
        osy_redis_destroy(r);
}

/* Keys live only while they hold information; a denied call writes
 * nothing. */
static void keys_expire_and_denials_change_nothing(void **state)
{
        osy_redis_t *r = open_redis();
        osy_rl_t *rl   = open_rl(r, 5, 1000, 5, 0);
        int64_t pttl, tat;

        (void)state;
        /* One token: the bucket is full again 200 ms later. */
        assert_true(acquire(rl, "one", "ac", T0, 1, NULL));
        pttl = get_int(r, "PTTL", "t:rl:{one}:ac");
        assert_true(pttl > 100 && pttl <= 201);
        /* The whole burst: 1 s. */
        assert_true(acquire(rl, "all", "ac", T0, 5, NULL));
        pttl = get_int(r, "PTTL", "t:rl:{all}:ac");
        assert_true(pttl > 900 && pttl <= 1001);
        tat = get_int(r, "GET", "t:rl:{all}:ac");
        assert_int_equal(tat, (T0 + 1000) * 1000);
        assert_false(acquire(rl, "all", "ac", T0 + 10, 1, NULL));
        assert_int_equal(get_int(r, "GET", "t:rl:{all}:ac"), tat);
        assert_true(get_int(r, "PTTL", "t:rl:{all}:ac") <= pttl);
        osy_test_sleep_ms(350);
        assert_int_equal(get_int(r, "EXISTS", "t:rl:{one}:ac"), 0);
        assert_int_equal(get_int(r, "EXISTS", "t:rl:{all}:ac"), 1);
        osy_rl_destroy(rl);
        osy_redis_destroy(r);
}

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

/* The script and osy_rl_gcra_step() agree on every decision, wait and
 * stored TAT of a random sequence, clock going backwards included. */
static void lua_matches_c_reference(void **state)
{
        /* One token per 12 s keeps every key alive (TTL >= 12 s of real
         * time) while the fake clock jumps around, also backwards. */
        const int64_t rate = 5, period_ms = 60000, burst = 5, skew_ms = 2000;
        const int64_t interval = osy_rl_interval_us(rate, period_ms);
        osy_redis_t *r         = open_redis();
        osy_rl_t *rl           = open_rl(r, rate, period_ms, burst, skew_ms);
        int64_t now = T0, tat = 0, nt, wait_c, wait_ms;
        int n_allowed = 0, n_denied = 0;
        uint64_t s = 42;

        (void)state;
        for (int i = 0; i < 400; i++) {
                int cost = (int)rnd_range(&s, 1, burst);
                int c    = osy_rl_gcra_step(tat, now * 1000, interval,
                                            burst * interval, cost, skew_ms * 1000,
                                            &nt, &wait_c);
                int l    = acquire(rl, "ref", "ac", now, cost, &wait_ms);

                assert_int_not_equal(c, -1);
                if (c != l)
                        fail_msg("step %d: C %d, Lua %d", i, c, l);
                assert_int_equal(wait_ms, (wait_c + 999) / 1000);
                assert_int_equal(get_int(r, "GET", "t:rl:{ref}:ac"), nt);
                tat = nt;
                n_allowed += c;
                n_denied += !c;
                now += rnd_range(&s, -3000, 9000);
        }
        /* The sequence exercised both branches. */
        assert_true(n_allowed > 50 && n_denied > 50);
        osy_rl_destroy(rl);
        osy_redis_destroy(r);
}

/* Bad arguments are refused before Redis is asked: no key appears. */
static void bad_arguments_are_invalid_and_touch_nothing(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        osy_redis_t *r = open_redis();
        osy_rl_t *rl   = open_rl(r, 5, 1000, 5, 0);
        int64_t wait;

        (void)state;
        /* More than the burst could never be allowed. */
        assert_int_equal(
            osy_rl_acquire(rl, "x", "ac", T0, 6, &wait, err, sizeof(err)),
            OSY_ERR_INVALID);
        assert_non_null(strstr(err, "burst"));
        assert_int_equal(
            osy_rl_acquire(rl, "x", "ac", T0, 0, &wait, err, sizeof(err)),
            OSY_ERR_INVALID);
        assert_int_equal(
            osy_rl_acquire(rl, "x{y", "ac", T0, 1, &wait, err, sizeof(err)),
            OSY_ERR_INVALID);
        assert_int_equal(
            osy_rl_acquire(rl, NULL, "ac", T0, 1, &wait, err, sizeof(err)),
            OSY_ERR_INVALID);
        assert_int_equal(
            osy_rl_acquire(rl, "x", "", T0, 1, &wait, err, sizeof(err)),
            OSY_ERR_INVALID);
        assert_int_equal(
            osy_rl_acquire(rl, "x", "ac", -1, 1, &wait, err, sizeof(err)),
            OSY_ERR_INVALID);
        assert_int_equal(osy_rl_acquire(rl, "x", "ac", OSY_RL_MAX_NOW_MS + 1, 1,
                                        &wait, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_int_equal(
            osy_rl_acquire(rl, "x", "ac", T0, 1, NULL, err, sizeof(err)),
            OSY_ERR_INVALID);
        assert_int_equal(get_int(r, "DBSIZE", NULL), 0);
        osy_rl_destroy(rl);
        osy_redis_destroy(r);
}

/* A fake clock: sleeping advances it and records the total. */
struct fake_clock {
        int64_t now;
        int64_t slept;
        int sleeps;
};

static int64_t fake_now(void *opaque)
{
        return ((struct fake_clock *)opaque)->now;
}

static void fake_sleep(void *opaque, int64_t ms)
{
        struct fake_clock *fc = opaque;

        fc->now += ms;
        fc->slept += ms;
        fc->sleeps++;
}

/* osy_rl_wait() sleeps the exact wait once, and gives up (nothing
 * taken) when the wait exceeds its budget. */
static void wait_sleeps_exactly_then_acquires(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        osy_redis_t *r                = open_redis();
        osy_rl_t *rl                  = open_rl(r, 5, 1000, 5, 0);
        struct fake_clock fc          = {T0, 0, 0};
        const struct osy_rl_clock clk = {fake_now, fake_sleep, &fc};
        int64_t waited                = -1, tat;

        (void)state;
        assert_true(acquire(rl, "w", "ac", T0, 5, NULL));
        assert_int_equal(osy_rl_wait(rl, "w", "ac", 2, 1000, &clk, &waited, err,
                                     sizeof(err)),
                         OSY_OK);
        assert_int_equal(waited, 400); /* two tokens, 200 ms each */
        assert_int_equal(fc.sleeps, 1);
        /* Not enough budget: THROTTLED at once, nothing taken. */
        tat = get_int(r, "GET", "t:rl:{w}:ac");
        assert_int_equal(
            osy_rl_wait(rl, "w", "ac", 1, 100, &clk, &waited, err, sizeof(err)),
            OSY_ERR_THROTTLED);
        assert_int_equal(waited, 0);
        assert_non_null(strstr(err, "200 ms"));
        assert_int_equal(get_int(r, "GET", "t:rl:{w}:ac"), tat);
        assert_int_equal(fc.sleeps, 1);
        osy_rl_destroy(rl);
        osy_redis_destroy(r);
}

/* Redis away: TRANSIENT; back (empty, without the script): works. */
static void redis_away_is_transient_then_recovers(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        osy_redis_t *r = open_redis();
        osy_rl_t *rl   = open_rl(r, 5, 1000, 5, 0);
        int64_t wait;
        struct osy_redis_stats st;

        (void)state;
        assert_true(acquire(rl, "d", "ac", T0, 1, NULL));
        assert_int_equal(osy_test_redis_halt(&srv), 0);
        for (int i = 0; i < 2; i++)
                assert_int_equal(osy_rl_acquire(rl, "d", "ac", T0, 1, &wait,
                                                err, sizeof(err)),
                                 OSY_ERR_TRANSIENT);
        assert_int_equal(osy_test_redis_restart(&srv), 0);
        /* A fresh server: reconnect, script reloaded, bucket full. */
        assert_true(acquire(rl, "d", "ac", T0, 5, NULL));
        osy_redis_get_stats(r, &st);
        assert_int_equal(st.script_loads, 2);
        osy_rl_destroy(rl);
        osy_redis_destroy(r);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(two_replicas_share_the_rate, clean),
    cmocka_unit_test_setup(lagging_clock_stays_within_bound, clean),
    cmocka_unit_test_setup(lagging_clock_needs_the_margin, clean),
    cmocka_unit_test_setup(tenants_and_apis_are_independent, clean),
    cmocka_unit_test_setup(keys_expire_and_denials_change_nothing, clean),
    cmocka_unit_test_setup(lua_matches_c_reference, clean),
    cmocka_unit_test_setup(bad_arguments_are_invalid_and_touch_nothing, clean),
    cmocka_unit_test_setup(wait_sleeps_exactly_then_acquires, clean),
    cmocka_unit_test_setup(redis_away_is_transient_then_recovers, clean),
};
OSY_TEST_MAIN(tests, group_setup, group_teardown)
