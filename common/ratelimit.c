/*
 * ratelimit.c - GCRA rate limiter shared by replicas through one Redis
 * key per (tenant, API), decided atomically by a Lua script.
 */
#include "optsync/ratelimit.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * The script is the C function osy_rl_gcra_step() below, line for line;
 * the integration test runs both on the same sequence. Times are integer
 * microseconds: Lua numbers are doubles, exact below 2^53, which the
 * argument checks in C keep us under. string.format('%d') stores the TAT
 * as an integer, never in the "%.14g" exponent form tostring() would use.
 * The clock comes in ARGV because managed Redis services refuse scripts
 * that read TIME; a script that only reads its arguments is deterministic
 * and replicates verbatim.
 *
 * KEYS[1] bucket; ARGV now, interval, tolerance, cost, skew.
 * Returns {allowed 1|0, wait, tat}: wait 0 when allowed, tat as stored.
 */
static const char gcra_lua[] =
    "local now = tonumber(ARGV[1])\n"
    "local interval = tonumber(ARGV[2])\n"
    "local tolerance = tonumber(ARGV[3])\n"
    "local cost = tonumber(ARGV[4])\n"
    "local skew = tonumber(ARGV[5])\n"
    "if not (now and interval and tolerance and cost and skew)\n"
    "   or interval < 1 or cost < 1 or skew < 0 then\n"
    "  return redis.error_reply('ERR gcra: bad arguments')\n"
    "end\n"
    "local inc = cost * interval\n"
    "if inc > tolerance then\n"
    "  return redis.error_reply('ERR gcra: cost exceeds burst')\n"
    "end\n"
    /* A missing (expired) or unreadable key is a full bucket. */
    "local tat = tonumber(redis.call('GET', KEYS[1])) or now\n"
    "local allow_at = math.max(tat, now) + inc - tolerance\n"
    "if allow_at > now then\n"
    "  return {0, allow_at - now, tat}\n"
    "end\n"
    "local new_tat = math.max(tat, now + skew) + inc\n"
    /* Idle keys vanish once the bucket would be full for every caller,
     * including one whose clock lags by skew. */
    "local ttl_ms = math.ceil((new_tat - now + skew) / 1000) + 1\n"
    "redis.call('SET', KEYS[1], string.format('%d', new_tat),\n"
    "           'PX', string.format('%d', ttl_ms))\n"
    "return {1, 0, new_tat}\n";

/* Everything the script needs, precomputed once in microseconds. */
struct osy_rl_s {
        osy_redis_t *redis; /* not owned */
        osy_redis_script_t *script;
        char *prefix;
        int64_t burst;
        int64_t interval_us;
        int64_t tolerance_us;
        int64_t skew_us;
};

int64_t osy_rl_interval_us(int64_t rate, int64_t period_ms)
{
        if (rate < 1 || period_ms < 1 || period_ms > OSY_RL_MAX_TOLERANCE_MS)
                return -1;
        /* rate may exceed one per microsecond only by truncation: refuse,
         * as rounding up to 1 us would silently lower the rate. */
        if (rate > period_ms * 1000)
                return -1;
        return (period_ms * 1000 + rate - 1) / rate;
}

int osy_rl_gcra_step(int64_t tat, int64_t now, int64_t interval,
                     int64_t tolerance, int64_t cost, int64_t skew,
                     int64_t *new_tat, int64_t *wait)
{
        int64_t inc, allow_at;

        if (interval < 1 || cost < 1 || skew < 0 || cost > tolerance / interval)
                return -1;
        inc      = cost * interval;
        allow_at = (tat > now ? tat : now) + inc - tolerance;
        if (allow_at > now) {
                /* Denied: nothing changes, so a caller that keeps asking
                 * does not push its own turn further away. */
                *new_tat = tat;
                *wait    = allow_at - now;
                return 0;
        }
        /*
         * Allowed. A plain GCRA restarts a refilled bucket at the caller's
         * clock. If that clock lags the others by d, the bucket starts d in
         * the past and d worth of tokens appear that no real time paid
         * for. Restarting at now + skew makes every bucket start no earlier
         * than real time as long as clocks disagree by at most skew. The
         * decision above still uses the caller's clock, so no one waits
         * for the margin: it only shortens the next burst.
         */
        *new_tat = (tat > now + skew ? tat : now + skew) + inc;
        *wait    = 0;
        return 1;
}

int64_t osy_rl_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Tenants and prefixes end up around or before the hash tag: braces in
 * them would move it, and split one tenant's buckets across nodes. */
static int has_brace(const char *s)
{
        return strchr(s, '{') || strchr(s, '}');
}

osy_err_t osy_rl_format_key(char *buf, size_t size, const char *prefix,
                            const char *tenant, const char *api, char *errstr,
                            size_t errstr_size)
{
        int n;

        if (buf && size)
                buf[0] = '\0';
        if (!buf || !size)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ratelimit: no key buffer");
        if (!prefix || !*prefix || !tenant || !*tenant || !api || !*api)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ratelimit: prefix, tenant and api are "
                                   "required");
        if (has_brace(prefix) || has_brace(tenant))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ratelimit: braces are not allowed in "
                                   "prefix or tenant");
        n = snprintf(buf, size, "%s:rl:{%s}:%s", prefix, tenant, api);
        if (n < 0 || (size_t)n >= size) {
                buf[0] = '\0';
                return osy_err_set(OSY_ERR_TOO_LARGE, errstr, errstr_size,
                                   "ratelimit: key for tenant '%.64s' is "
                                   "longer than %zu bytes",
                                   tenant, size - 1);
        }
        return OSY_OK;
}

osy_err_t osy_rl_new(osy_rl_t **rlp, osy_redis_t *redis,
                     const struct osy_rl_opts *opts, char *errstr,
                     size_t errstr_size)
{
        osy_rl_t *rl = NULL;
        int64_t interval;
        osy_err_t err;

        if (!rlp)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ratelimit: no handle pointer");
        *rlp = NULL;
        if (!opts)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ratelimit: no options");
        if (!opts->prefix || !*opts->prefix || has_brace(opts->prefix))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ratelimit: prefix must be non-empty and "
                                   "without braces");
        interval = osy_rl_interval_us(opts->rate, opts->period_ms);
        if (interval < 0)
                return osy_err_set(
                    OSY_ERR_INVALID, errstr, errstr_size,
                    "ratelimit: rate %" PRId64 " per %" PRId64
                    " ms is invalid (rate >= 1, 1 ms <= period <= 1 day, "
                    "at most one request per microsecond)",
                    opts->rate, opts->period_ms);
        if (opts->burst < 1 ||
            opts->burst > OSY_RL_MAX_TOLERANCE_MS * 1000 / interval)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ratelimit: burst %" PRId64
                                   " must be >= 1 and refill within a day",
                                   opts->burst);
        /* A larger margin than the burst's spare tokens would make the
         * bucket restart beyond the next request's turn on every call,
         * lowering the long-run rate: refuse the configuration. */
        if (opts->skew_ms < 0 ||
            opts->skew_ms * 1000 > (opts->burst - 1) * interval)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ratelimit: skew_ms %" PRId64
                                   " must be in 0..(burst-1)*period/rate "
                                   "(%" PRId64 " ms)",
                                   opts->skew_ms,
                                   (opts->burst - 1) * interval / 1000);
        /* Checked last, so tests can check the options without Redis. */
        if (!redis)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ratelimit: no redis handle");
        if (!(rl = calloc(1, sizeof(*rl))) ||
            !(rl->prefix = strdup(opts->prefix))) {
                err = osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                  "ratelimit: out of memory");
                goto out;
        }
        if ((err = osy_redis_script_new(&rl->script, gcra_lua, errstr,
                                        errstr_size)))
                goto out;
        rl->redis        = redis;
        rl->burst        = opts->burst;
        rl->interval_us  = interval;
        rl->tolerance_us = opts->burst * interval;
        rl->skew_us      = opts->skew_ms * 1000;
        *rlp             = rl;
        rl               = NULL; /* the caller owns it now */
        err              = OSY_OK;
out:
        osy_rl_destroy(rl);
        return err;
}

void osy_rl_destroy(osy_rl_t *rl)
{
        if (!rl)
                return;
        osy_redis_script_destroy(rl->script);
        free(rl->prefix);
        free(rl);
}

/* An integer element of the script's reply array (Redis turns Lua
 * numbers into integer replies). @returns 0, or -1 if it is not one. */
static int reply_int(const redisReply *reply, size_t i, int64_t *v)
{
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements <= i ||
            reply->element[i]->type != REDIS_REPLY_INTEGER)
                return -1;
        *v = (int64_t)reply->element[i]->integer;
        return 0;
}

osy_err_t osy_rl_acquire(osy_rl_t *rl, const char *tenant, const char *api,
                         int64_t now_ms, int cost, int64_t *wait_ms,
                         char *errstr, size_t errstr_size)
{
        char key[256], now[24], interval[24], tolerance[24], costs[24],
            skew[24];
        const char *keys[1];
        const char *args[5];
        redisReply *reply = NULL;
        int64_t allowed, wait_us;
        osy_err_t err;

        if (wait_ms)
                *wait_ms = 0;
        if (!rl || !wait_ms)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ratelimit: no limiter or wait pointer");
        /* Checked here as well as in the script, so a bad call costs no
         * round trip and leaves no key behind. */
        if (cost < 1 || cost > rl->burst)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ratelimit: cost %d is not in 1..burst "
                                   "(%" PRId64 ")",
                                   cost, rl->burst);
        if (now_ms < 0 || now_ms > OSY_RL_MAX_NOW_MS)
                return osy_err_set(
                    OSY_ERR_INVALID, errstr, errstr_size,
                    "ratelimit: now_ms %" PRId64 " is out of range", now_ms);
        if ((err = osy_rl_format_key(key, sizeof(key), rl->prefix, tenant, api,
                                     errstr, errstr_size)))
                return err;
        /* Every number goes as a decimal string; the script reads them
         * with tonumber(). */
        snprintf(now, sizeof(now), "%" PRId64, now_ms * 1000);
        snprintf(interval, sizeof(interval), "%" PRId64, rl->interval_us);
        snprintf(tolerance, sizeof(tolerance), "%" PRId64, rl->tolerance_us);
        snprintf(costs, sizeof(costs), "%d", cost);
        snprintf(skew, sizeof(skew), "%" PRId64, rl->skew_us);
        keys[0] = key;
        args[0] = now;
        args[1] = interval;
        args[2] = tolerance;
        args[3] = costs;
        args[4] = skew;
        if ((err = osy_redis_eval(rl->redis, rl->script, 1, keys, 5, args,
                                  &reply, errstr, errstr_size)))
                goto out;
        if (reply_int(reply, 0, &allowed) || reply_int(reply, 1, &wait_us) ||
            wait_us < 0) {
                err = osy_err_set(OSY_ERR_PERMANENT, errstr, errstr_size,
                                  "ratelimit: unexpected reply from the "
                                  "script for %s",
                                  key);
                goto out;
        }
        /* Round up: sleeping the rounded wait must be enough. */
        *wait_ms = allowed ? 0 : (wait_us + 999) / 1000;
        err      = OSY_OK;
out:
        if (reply)
                freeReplyObject(reply);
        return err;
}

/* The clock osy_rl_wait() uses when the caller passes none. */
static int64_t real_now_ms(void *opaque)
{
        (void)opaque;
        return osy_rl_now_ms();
}

static void real_sleep_ms(void *opaque, int64_t ms)
{
        struct timespec ts = {(time_t)(ms / 1000),
                              (long)(ms % 1000) * 1000000L};

        (void)opaque;
        while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
                ;
}

osy_err_t osy_rl_wait(osy_rl_t *rl, const char *tenant, const char *api,
                      int cost, int64_t max_wait_ms,
                      const struct osy_rl_clock *clock, int64_t *waited_ms,
                      char *errstr, size_t errstr_size)
{
        static const struct osy_rl_clock real = {real_now_ms, real_sleep_ms,
                                                 NULL};
        int64_t waited = 0, wait = 0;
        osy_err_t err;

        if (!clock)
                clock = &real;
        if (max_wait_ms < 0 || !clock->now_ms || !clock->sleep_ms) {
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "ratelimit: bad wait arguments");
                goto out;
        }
        /* Other replicas may take the tokens we slept for, so ask again
         * after each sleep. The budget counts sleeps, not the clock, so a
         * fake clock that does not move cannot loop forever. */
        for (;;) {
                err = osy_rl_acquire(rl, tenant, api,
                                     clock->now_ms(clock->opaque), cost, &wait,
                                     errstr, errstr_size);
                if (err || wait == 0)
                        goto out;
                if (waited + wait > max_wait_ms) {
                        err = osy_err_set(
                            OSY_ERR_THROTTLED, errstr, errstr_size,
                            "ratelimit: %s/%s needs %" PRId64
                            " ms more, over the %" PRId64 " ms allowed",
                            tenant, api, wait, max_wait_ms);
                        goto out;
                }
                clock->sleep_ms(clock->opaque, wait);
                waited += wait;
        }
out:
        if (waited_ms)
                *waited_ms = waited;
        return err;
}
