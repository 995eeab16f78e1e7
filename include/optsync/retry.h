/*
 * retry.h - when to try a failed call again: capped exponential backoff
 * with full jitter, a server's Retry-After hint (capped), a maximum number
 * of attempts and a maximum age. Pure: the clock and the random state are
 * passed in, so tests replay exact sequences.
 */
#ifndef OPTSYNC_RETRY_H
#define OPTSYNC_RETRY_H

#include <stdint.h>

#include "optsync/err.h"

/** Limits of a retry policy; every field must be > 0. */
struct osy_retry_policy {
        int64_t base_ms;            /**< first backoff ceiling */
        int64_t max_delay_ms;       /**< ceiling of any computed backoff */
        int max_attempts;           /**< attempts in all, the first included */
        int64_t max_age_ms;         /**< give up when retrying would pass it */
        int64_t retry_after_cap_ms; /**< longest Retry-After we will honour */
};

/** Defaults: 200 ms base, 60 s max delay, 10 attempts, 24 h, 5 min cap. */
#define OSY_RETRY_POLICY_DEFAULT                                               \
        {                                                                      \
                200, 60000, 10, 24LL * 3600 * 1000, 5LL * 60 * 1000            \
        }

/** Progress of one operation through its retries. Zero it to start. */
struct osy_retry_state {
        int attempts;       /**< attempts made so far */
        int throttled;      /**< of those, refused by a rate limit (429) */
        int64_t first_ms;   /**< when the first attempt failed */
        uint64_t rng;       /**< jitter state; 0: seeded on first use */
        osy_err_t last_err; /**< the error of the latest attempt */
};

typedef enum {
        OSY_RETRY_AGAIN = 0, /**< wait *delay_ms, then try again */
        OSY_RETRY_PERMANENT, /**< the error is not retryable: DLQ it */
        OSY_RETRY_EXHAUSTED  /**< attempts or age used up: DLQ it */
} osy_retry_verdict_t;

/** @returns "again", "permanent" or "exhausted". */
const char *osy_retry_verdict2str(osy_retry_verdict_t v);

/**
 * @brief Check a policy. @returns OSY_ERR_INVALID naming the bad field.
 */
osy_err_t osy_retry_policy_validate(const struct osy_retry_policy *p,
                                    char *errstr, size_t errstr_size);

/**
 * @brief Record a failed attempt and decide what comes next.
 *
 * Retryability comes from osy_err_is_retryable() alone. The backoff is
 * "full jitter": uniform in [0, min(max_delay, base * 2^(attempt-1))],
 * which spreads replicas that failed together. A Retry-After hint replaces
 * the backoff when it is longer: the server knows best, but a hint above
 * retry_after_cap_ms is capped so one bad header cannot park a worker.
 *
 * Throttled attempts (OSY_ERR_THROTTLED: a 429 or a quota answer) do not
 * use up max_attempts: the API asked us to wait, the message did nothing
 * wrong, and a storm of 429s from a shared account must not dead-letter
 * every opt-out in flight. They end only at max_age_ms.
 *
 * @param err            the error of the attempt that just failed.
 * @param retry_after_ms the server's hint, or -1 when it gave none.
 * @param now_ms         the caller's clock.
 * @param delay_ms       out: how long to wait (only for OSY_RETRY_AGAIN).
 */
osy_retry_verdict_t osy_retry_next(const struct osy_retry_policy *p,
                                   struct osy_retry_state *s, osy_err_t err,
                                   int64_t retry_after_ms, int64_t now_ms,
                                   int64_t *delay_ms);

#endif /* OPTSYNC_RETRY_H */
