/*
 * ratelimit.h - a rate limit shared by every replica: GCRA in one Lua
 * script on Redis, the clock passed in, plus the same arithmetic in C.
 */
#ifndef OPTSYNC_RATELIMIT_H
#define OPTSYNC_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "optsync/err.h"
#include "optsync/redis.h"

/** A limiter: one rate, burst and key prefix; buckets per tenant + API. */
typedef struct osy_rl_s osy_rl_t;

/** Largest now_ms accepted: times are kept in microseconds, and Lua
 *  numbers are doubles, exact only below 2^53 (about the year 2255). */
#define OSY_RL_MAX_NOW_MS INT64_C(8000000000000)

/** Longest a full bucket may take to refill (burst * interval): 1 day. */
#define OSY_RL_MAX_TOLERANCE_MS INT64_C(86400000)

/** Limits of one API, e.g. AC: rate 5, period_ms 1000, burst 5. */
struct osy_rl_opts {
        const char *prefix; /**< key prefix ("optsync"), copied */
        int64_t rate;       /**< requests allowed per period, >= 1 */
        int64_t period_ms;  /**< >= 1 */
        int64_t burst;      /**< requests allowed at once, >= 1 */
        /**
         * How far replicas' clocks may disagree. A bucket that refilled is
         * restarted skew_ms later than the caller's clock says, so a
         * replica whose clock lags cannot hand out time that has not
         * passed yet. The price is skew_ms of burst after an idle spell;
         * the long-run rate is unchanged while
         * skew_ms <= (burst - 1) * period_ms / rate, which is enforced.
         */
        int64_t skew_ms;
};

/**
 * @brief Make a limiter that runs its script through @p redis.
 * @param redis not owned; must outlive the limiter. Like it, the limiter
 *              is for one thread.
 * @returns OSY_OK, OSY_ERR_INVALID (bad opts, with the reason) or
 *          OSY_ERR_NOMEM.
 */
osy_err_t osy_rl_new(osy_rl_t **rlp, osy_redis_t *redis,
                     const struct osy_rl_opts *opts, char *errstr,
                     size_t errstr_size) OSY_MUSTCHECK;

/** @brief Free @p rl (not its Redis handle). NULL-safe. */
void osy_rl_destroy(osy_rl_t *rl);

/**
 * @brief Take @p cost tokens from the bucket of (@p tenant, @p api) if
 *        they are there.
 *
 * @param now_ms wall-clock milliseconds since the epoch (osy_rl_now_ms()),
 *               comparable across hosts, 0..OSY_RL_MAX_NOW_MS.
 * @param cost   1..burst; more could never be allowed.
 * @param wait_ms receives 0 when allowed; else the milliseconds after
 *               which this cost would be allowed if nobody else takes
 *               tokens. A denied call changes nothing.
 * @returns OSY_OK whether allowed or not; OSY_ERR_INVALID for bad
 *          arguments (cost > burst, an empty tenant or one with braces);
 *          the errors of osy_redis_eval() (TRANSIENT when Redis is away).
 */
osy_err_t osy_rl_acquire(osy_rl_t *rl, const char *tenant, const char *api,
                         int64_t now_ms, int cost, int64_t *wait_ms,
                         char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/** Clock and sleep for osy_rl_wait(); fakes make it testable. */
struct osy_rl_clock {
        int64_t (*now_ms)(void *opaque);            /**< wall-clock ms */
        void (*sleep_ms)(void *opaque, int64_t ms); /**< sleep that long */
        void *opaque;
};

/**
 * @brief osy_rl_acquire() until allowed, sleeping for each returned wait,
 *        but never sleeping more than @p max_wait_ms in total.
 * @param clock   NULL: osy_rl_now_ms() and nanosleep().
 * @param waited_ms receives the total slept (may be NULL).
 * @returns OSY_OK once allowed; OSY_ERR_THROTTLED when the next wait would
 *          pass @p max_wait_ms (nothing taken); errors of acquire.
 */
osy_err_t osy_rl_wait(osy_rl_t *rl, const char *tenant, const char *api,
                      int cost, int64_t max_wait_ms,
                      const struct osy_rl_clock *clock, int64_t *waited_ms,
                      char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/** @returns CLOCK_REALTIME in milliseconds since the epoch. */
int64_t osy_rl_now_ms(void);

/**
 * @brief Write the bucket key "<prefix>:rl:{<tenant>}:<api>" into @p buf.
 *        The braces are a Redis Cluster hash tag: all of a tenant's
 *        buckets live on one node.
 * @returns OSY_OK; OSY_ERR_INVALID for empty parts or a tenant with braces
 *          (it would change the hash tag); OSY_ERR_TOO_LARGE.
 */
osy_err_t osy_rl_format_key(char *buf, size_t size, const char *prefix,
                            const char *tenant, const char *api, char *errstr,
                            size_t errstr_size) OSY_MUSTCHECK;

/**
 * @returns the emission interval in microseconds for @p rate requests per
 *          @p period_ms, rounded UP so rounding can never exceed the rate;
 *          -1 if either is < 1 or the interval would be under 1 us.
 */
int64_t osy_rl_interval_us(int64_t rate, int64_t period_ms);

/**
 * @brief One GCRA decision, the arithmetic the Lua script performs.
 *
 * All times in the same unit (the limiter uses microseconds). With no
 * stored state pass any @p tat <= @p now.
 *   base = max(tat, now); allow_at = base + cost * interval - tolerance
 *   allowed iff allow_at <= now, and then
 *   new_tat = max(tat, now + skew) + cost * interval.
 * Any window of length L then holds at most L / interval + tolerance /
 * interval tokens, even when callers' clocks disagree by up to @p skew.
 *
 * @param tolerance burst * interval.
 * @param new_tat   receives the TAT to store (@p tat when denied).
 * @param wait      receives 0 when allowed, else allow_at - now.
 * @returns 1 allowed, 0 denied, -1 bad arguments (interval < 1, cost < 1,
 *          skew < 0, cost * interval > tolerance).
 */
int osy_rl_gcra_step(int64_t tat, int64_t now, int64_t interval,
                     int64_t tolerance, int64_t cost, int64_t skew,
                     int64_t *new_tat, int64_t *wait);

#endif /* OPTSYNC_RATELIMIT_H */
