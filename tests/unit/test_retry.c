/*
 * test_retry.c - the retry policy: which errors retry, the full-jitter
 * backoff envelope, Retry-After honoured and capped, attempt and age limits.
 */
#include "osy_test.h"
#include "optsync/retry.h"

#include <string.h>

static const struct osy_retry_policy policy = {
    .base_ms            = 100,
    .max_delay_ms       = 1000,
    .max_attempts       = 6,
    .max_age_ms         = 60000,
    .retry_after_cap_ms = 5000,
};

static void permanent_errors_are_not_retried(void **state)
{
        const osy_err_t permanent[] = {OSY_ERR_INVALID,   OSY_ERR_PERMANENT,
                                       OSY_ERR_NOT_FOUND, OSY_ERR_AUTH,
                                       OSY_ERR_TOO_LARGE, OSY_ERR_FATAL};
        (void)state;
        for (size_t i = 0; i < sizeof(permanent) / sizeof(*permanent); i++) {
                struct osy_retry_state s = {.rng = 42};
                int64_t delay            = -1;
                assert_int_equal(
                    osy_retry_next(&policy, &s, permanent[i], -1, 1000, &delay),
                    OSY_RETRY_PERMANENT);
                assert_int_equal(delay, 0);
                assert_int_equal(s.attempts, 1);
        }
}

static void backoff_stays_within_full_jitter_envelope(void **state)
{
        (void)state;
        /* Over many seeds, attempt n waits in [0, min(max, base*2^(n-1))]
         * and the envelope is really used (not a constant). */
        for (uint64_t seed = 1; seed <= 200; seed++) {
                struct osy_retry_state s = {.rng = seed};
                int64_t delay, ceiling = policy.base_ms;
                for (int n = 1; n < policy.max_attempts; n++) {
                        assert_int_equal(osy_retry_next(&policy, &s,
                                                        OSY_ERR_TRANSIENT, -1,
                                                        0, &delay),
                                         OSY_RETRY_AGAIN);
                        assert_true(delay >= 0 && delay <= ceiling);
                        ceiling = ceiling * 2 > policy.max_delay_ms
                                      ? policy.max_delay_ms
                                      : ceiling * 2;
                }
        }
}

static void jitter_spreads_delays(void **state)
{
        int64_t min = INT64_MAX, max = -1, delay;
        (void)state;
        for (uint64_t seed = 1; seed <= 500; seed++) {
                struct osy_retry_state s = {.rng = seed, .attempts = 0};
                /* Fourth attempt: ceiling 800 ms. */
                for (int n = 0; n < 4; n++)
                        osy_retry_next(&policy, &s, OSY_ERR_TRANSIENT, -1, 0,
                                       &delay);
                min = delay < min ? delay : min;
                max = delay > max ? delay : max;
        }
        assert_true(min < 100);
        assert_true(max > 700 && max <= 800);
}

static void unseeded_states_differ(void **state)
{
        struct osy_retry_state a = {0}, b = {0};
        int64_t da, db, differ = 0;
        (void)state;
        /* Two replicas failing at the same instant must not stampede. */
        for (int n = 0; n < 5; n++) {
                osy_retry_next(&policy, &a, OSY_ERR_TRANSIENT, -1, 5, &da);
                osy_retry_next(&policy, &b, OSY_ERR_TRANSIENT, -1, 5, &db);
                differ += da != db;
        }
        assert_true(differ > 0);
}

static void retry_after_is_honoured(void **state)
{
        struct osy_retry_state s = {.rng = 7};
        int64_t delay;
        (void)state;
        assert_int_equal(
            osy_retry_next(&policy, &s, OSY_ERR_THROTTLED, 3000, 0, &delay),
            OSY_RETRY_AGAIN);
        assert_int_equal(delay, 3000);
}

static void retry_after_is_capped(void **state)
{
        struct osy_retry_state s = {.rng = 7};
        int64_t delay;
        (void)state;
        assert_int_equal(osy_retry_next(&policy, &s, OSY_ERR_THROTTLED,
                                        3600 * 1000, 0, &delay),
                         OSY_RETRY_AGAIN);
        assert_int_equal(delay, policy.retry_after_cap_ms);
}

static void short_retry_after_never_shortens_backoff(void **state)
{
        (void)state;
        /* A hint of 0 ("retry now") must not turn into a hot loop after
         * several failures: the backoff still applies when it is longer. */
        int64_t total = 0;
        for (uint64_t seed = 1; seed <= 50; seed++) {
                struct osy_retry_state s = {.rng = seed};
                int64_t delay            = 0;
                for (int n = 0; n < 5; n++)
                        osy_retry_next(&policy, &s, OSY_ERR_THROTTLED, 0, 0,
                                       &delay);
                total += delay;
        }
        assert_true(total > 50 * 100); /* average well above zero */
}

static void attempts_are_bounded(void **state)
{
        struct osy_retry_state s = {.rng = 3};
        int64_t delay;
        int again = 0;
        (void)state;
        while (osy_retry_next(&policy, &s, OSY_ERR_TRANSIENT, -1, 0, &delay) ==
               OSY_RETRY_AGAIN)
                again++;
        assert_int_equal(again, policy.max_attempts - 1);
        assert_int_equal(s.attempts, policy.max_attempts);
        assert_int_equal(s.last_err, OSY_ERR_TRANSIENT);
}

/* A storm of 429s (the API's "wait", not our failure) does not use up the
 * attempt budget: only the age ends it. Failures of our own still count. */
static void throttled_attempts_end_only_at_the_age_limit(void **state)
{
        struct osy_retry_state s = {.rng = 3};
        int64_t delay, now = 0;
        int again = 0;
        (void)state;
        /* (The clock stands still here: only the count is under test.) */
        for (int n = 0; n < 3 * policy.max_attempts; n++)
                assert_int_equal(osy_retry_next(&policy, &s, OSY_ERR_THROTTLED,
                                                100, now, &delay),
                                 OSY_RETRY_AGAIN);
        assert_int_equal(s.throttled, 3 * policy.max_attempts);
        /* Mixed with failures of our own: those reach the budget. */
        while (osy_retry_next(&policy, &s, OSY_ERR_TRANSIENT, -1, now,
                              &delay) == OSY_RETRY_AGAIN)
                again++;
        assert_int_equal(again, policy.max_attempts - 1);
        /* And 429s alone stop at the age limit. */
        struct osy_retry_state t = {.rng = 5};
        assert_int_equal(
            osy_retry_next(&policy, &t, OSY_ERR_THROTTLED, 1000, 0, &delay),
            OSY_RETRY_AGAIN);
        assert_int_equal(osy_retry_next(&policy, &t, OSY_ERR_THROTTLED, 1000,
                                        policy.max_age_ms - 10, &delay),
                         OSY_RETRY_EXHAUSTED);
}

static void age_is_bounded(void **state)
{
        struct osy_retry_state s = {.rng = 3};
        int64_t delay;
        (void)state;
        assert_int_equal(
            osy_retry_next(&policy, &s, OSY_ERR_TRANSIENT, -1, 1000, &delay),
            OSY_RETRY_AGAIN);
        assert_int_equal(s.first_ms, 1000);
        /* 59.9 s after the first failure, a 1 s Retry-After would pass the
         * 60 s limit: give up now rather than wait to fail. */
        assert_int_equal(osy_retry_next(&policy, &s, OSY_ERR_THROTTLED, 1000,
                                        1000 + 59900, &delay),
                         OSY_RETRY_EXHAUSTED);
}

static void same_seed_same_sequence(void **state)
{
        struct osy_retry_state a = {.rng = 99}, b = {.rng = 99};
        int64_t da, db;
        (void)state;
        for (int n = 0; n < 5; n++) {
                osy_retry_next(&policy, &a, OSY_ERR_TRANSIENT, -1, 0, &da);
                osy_retry_next(&policy, &b, OSY_ERR_TRANSIENT, -1, 0, &db);
                assert_int_equal(da, db);
        }
}

static void policy_validation(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        struct osy_retry_policy p = policy;
        (void)state;
        assert_int_equal(osy_retry_policy_validate(&p, err, sizeof(err)),
                         OSY_OK);
        p.base_ms = 0;
        assert_int_equal(osy_retry_policy_validate(&p, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(err, "base_ms"));
        p              = policy;
        p.max_attempts = 0;
        assert_int_equal(osy_retry_policy_validate(&p, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(err, "max_attempts"));
        p              = policy;
        p.max_delay_ms = 10;
        assert_int_equal(osy_retry_policy_validate(&p, err, sizeof(err)),
                         OSY_ERR_INVALID);
        struct osy_retry_policy def = OSY_RETRY_POLICY_DEFAULT;
        assert_int_equal(osy_retry_policy_validate(&def, err, sizeof(err)),
                         OSY_OK);
        assert_string_equal(osy_retry_verdict2str(OSY_RETRY_EXHAUSTED),
                            "exhausted");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(permanent_errors_are_not_retried),
    cmocka_unit_test(backoff_stays_within_full_jitter_envelope),
    cmocka_unit_test(jitter_spreads_delays),
    cmocka_unit_test(unseeded_states_differ),
    cmocka_unit_test(retry_after_is_honoured),
    cmocka_unit_test(retry_after_is_capped),
    cmocka_unit_test(short_retry_after_never_shortens_backoff),
    cmocka_unit_test(attempts_are_bounded),
    cmocka_unit_test(throttled_attempts_end_only_at_the_age_limit),
    cmocka_unit_test(age_is_bounded),
    cmocka_unit_test(same_seed_same_sequence),
    cmocka_unit_test(policy_validation),
};
OSY_TEST_MAIN(tests, NULL, NULL)
