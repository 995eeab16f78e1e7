/*
 * rules_lookup.h - how the rules worker fills a cache miss: the AC API,
 * per tenant, through the shared rate limiter (rules_lookup.c), or any
 * function with the same signature (tests).
 */
#ifndef OPTSYNC_RULES_LOOKUP_H
#define OPTSYNC_RULES_LOOKUP_H

#include <stddef.h>
#include <stdint.h>

#include "optsync/envelope.h"
#include "optsync/err.h"
#include "optsync/http.h"
#include "optsync/ratelimit.h"
#include "optsync/tenants.h"
#include "rules_decide.h"

/**
 * @brief Answer the OSY_RULES_NEED_* bits of @p need for the person of
 *        @p ev.
 * @param known what the rules know (contact id, when not "", saves the
 *              search by email).
 * @param out   zeroed by the caller; filled with done = 1 on OSY_OK. Its
 *              lists are malloc()ed: the caller frees them with
 *              osy_rules_lookup_clear().
 * @param retry_after_ms receives the server's hint after a throttled call,
 *              else -1.
 * @returns OSY_OK; a retryable error (the event waits and is tried again);
 *          any other error sends the event to the DLQ.
 */
typedef osy_err_t(osy_rules_lookup_fn)(void *opaque, const struct osy_msg *ev,
                                       const struct osy_rules_person *known,
                                       int need, struct osy_rules_lookup *out,
                                       int64_t *retry_after_ms, char *errstr,
                                       size_t errstr_size);

/** @brief Free the lists of a look-up filled by a osy_rules_lookup_fn and
 *         zero it. NULL-safe. */
void osy_rules_lookup_clear(struct osy_rules_lookup *lk);

/** The AC-backed look-up: one AC client per tenant, made on first use. */
typedef struct osy_rules_ac_s osy_rules_ac_t;

/** Options; nothing is owned. */
struct osy_rules_ac_opts {
        const osy_tenants_t *tenants;     /**< credentials; may be NULL (then
                                               every look-up fails permanently) */
        osy_rl_t *limiter;                /**< shared AC limiter; NULL: none */
        int64_t limiter_max_wait_ms;      /**< longest wait for a token */
        const struct osy_http_opts *http; /**< NULL: defaults */
};

/** @brief Create the AC look-up. @returns OSY_OK or OSY_ERR_NOMEM. */
osy_err_t osy_rules_ac_new(osy_rules_ac_t **ap,
                           const struct osy_rules_ac_opts *opts, char *errstr,
                           size_t errstr_size) OSY_MUSTCHECK;

/** @brief Free the clients. NULL-safe. */
void osy_rules_ac_destroy(osy_rules_ac_t *a);

/**
 * @brief The osy_rules_lookup_fn of the AC API (@p opaque is an
 *        osy_rules_ac_t). Contact: the known id, else GET /contacts?email=
 *        (none: found = 0). Lists: the memberships with status 1. Tags:
 *        the names, mapped to the qualifying-tag mask. Bounce type: hard
 *        when the contact's bounced_hard counter is above 0; else hard
 *        when a bounce log of the event's campaign names the hard bounce
 *        type (id 1), otherwise soft.
 */
osy_err_t osy_rules_ac_lookup(void *opaque, const struct osy_msg *ev,
                              const struct osy_rules_person *known, int need,
                              struct osy_rules_lookup *out,
                              int64_t *retry_after_ms, char *errstr,
                              size_t errstr_size);

/** @returns the number of AC API calls made so far (metrics, tests). */
uint64_t osy_rules_ac_calls(const osy_rules_ac_t *a);

#endif /* OPTSYNC_RULES_LOOKUP_H */
