/*
 * retry.c - the retry policy: full-jitter exponential backoff, Retry-After
 * honoured up to a cap, bounded by attempts and by age.
 */
#include "optsync/retry.h"

#include <stdint.h>

const char *osy_retry_verdict2str(osy_retry_verdict_t v)
{
        switch (v) {
        case OSY_RETRY_AGAIN:
                return "again";
        case OSY_RETRY_PERMANENT:
                return "permanent";
        case OSY_RETRY_EXHAUSTED:
                return "exhausted";
        }
        return "unknown";
}

osy_err_t osy_retry_policy_validate(const struct osy_retry_policy *p,
                                    char *errstr, size_t errstr_size)
{
        if (p->base_ms <= 0)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "retry: base_ms must be > 0");
        if (p->max_delay_ms < p->base_ms)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "retry: max_delay_ms must be >= base_ms");
        if (p->max_attempts < 1)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "retry: max_attempts must be >= 1");
        if (p->max_age_ms <= 0 || p->retry_after_cap_ms <= 0)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "retry: max_age_ms and retry_after_cap_ms "
                                   "must be > 0");
        return OSY_OK;
}

/* xorshift64*: small, fast, good enough to decorrelate replicas. */
static uint64_t next_random(uint64_t *state)
{
        uint64_t x = *state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *state = x;
        return x * 0x2545f4914f6cdd1dULL;
}

osy_retry_verdict_t osy_retry_next(const struct osy_retry_policy *p,
                                   struct osy_retry_state *s, osy_err_t err,
                                   int64_t retry_after_ms, int64_t now_ms,
                                   int64_t *delay_ms)
{
        int64_t ceiling = p->base_ms, delay;

        if (s->attempts == 0)
                s->first_ms = now_ms;
        /* An unseeded state takes the clock and its own address, so that
         * replicas failing at the same moment still draw different delays;
         * tests seed it to replay exact sequences. */
        if (s->rng == 0)
                s->rng = ((uint64_t)now_ms * 0x9e3779b97f4a7c15ULL) ^
                         (uint64_t)(uintptr_t)s ^ 0x5851f42d4c957f2dULL;
        s->attempts++;
        if (err == OSY_ERR_THROTTLED)
                s->throttled++;
        s->last_err = err;
        *delay_ms   = 0;

        if (!osy_err_is_retryable(err))
                return OSY_RETRY_PERMANENT;
        /* Only failures of our own count; 429s end at the age limit. */
        if (s->attempts - s->throttled >= p->max_attempts)
                return OSY_RETRY_EXHAUSTED;

        /* base * 2^(attempts-1), doubling until the cap: no overflow. */
        for (int i = 1; i < s->attempts && ceiling < p->max_delay_ms; i++)
                ceiling *= 2;
        if (ceiling > p->max_delay_ms)
                ceiling = p->max_delay_ms;
        delay = (int64_t)(next_random(&s->rng) % (uint64_t)(ceiling + 1));

        if (retry_after_ms >= 0) {
                int64_t hint = retry_after_ms < p->retry_after_cap_ms
                                   ? retry_after_ms
                                   : p->retry_after_cap_ms;
                if (hint > delay)
                        delay = hint;
        }
        /* Waiting past the age limit only to fail then helps nobody. */
        if (now_ms + delay - s->first_ms > p->max_age_ms)
                return OSY_RETRY_EXHAUSTED;
        *delay_ms = delay;
        return OSY_RETRY_AGAIN;
}
