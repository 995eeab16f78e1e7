/*
 * lease.h - one tenant's lease in Redis, so that several sf-ingest replicas
 * can run while only the holder follows CDC and polls: SET NX PX to take
 * it, a compare-and-extend script to renew it, compare-and-delete to give
 * it back. Time comes in as now_ms (monotonic), so tests use a fake clock.
 */
#ifndef OPTSYNC_SF_INGEST_LEASE_H
#define OPTSYNC_SF_INGEST_LEASE_H

#include <stddef.h>
#include <stdint.h>

#include "optsync/err.h"
#include "optsync/redis.h"

/** Longest owner id osy_sfi_lease_owner_id() makes, NUL included. */
#define OSY_SFI_OWNER_BUFSZ 256

typedef struct osy_sfi_lease_s osy_sfi_lease_t;

/** What a call changed. */
typedef enum {
        OSY_SFI_LEASE_UNCHANGED = 0,
        OSY_SFI_LEASE_ACQUIRED, /**< this replica holds it now */
        OSY_SFI_LEASE_LOST,     /**< held before, not any more */
        OSY_SFI_LEASE_RELEASED  /**< given back (osy_sfi_lease_release) */
} osy_sfi_lease_change_t;

/** Settings. Strings are copied. */
struct osy_sfi_lease_opts {
        const char *key;   /**< the Redis key, required */
        const char *owner; /**< this replica's unique id, required (see
                                osy_sfi_lease_owner_id()) */
        int64_t lease_ms;  /**< the key's PX, >= 30 */
        int64_t margin_ms; /**< stop this long before the lease could have
                                expired; 0: lease_ms / 5 */
};

/**
 * @brief A lease, not held yet. No I/O.
 * @param lp receives it (caller destroys it).
 * @returns OSY_OK; OSY_ERR_INVALID (missing key or owner, lease_ms < 30,
 *          a margin that leaves less than the renew interval); NOMEM.
 */
osy_err_t osy_sfi_lease_new(osy_sfi_lease_t **lp,
                            const struct osy_sfi_lease_opts *opts, char *errstr,
                            size_t errstr_size) OSY_MUSTCHECK;

/** @brief Free @p l (no I/O: release first). NULL-safe. */
void osy_sfi_lease_destroy(osy_sfi_lease_t *l);

/**
 * @brief Do what is due at @p now_ms (monotonic, taken BEFORE the call):
 *        a holder renews every lease/3, a standby tries to take the lease
 *        every lease/3. First of all, a holder whose validity ran out
 *        (osy_sfi_lease_valid_until()) loses it without I/O.
 *
 * A standby takes a lease held by an owner that is provably dead: same
 * boot and pid namespace, process gone (a restart on the same machine
 * need not wait for the expiry).
 *
 * @param change receives what changed (UNCHANGED on errors, or LOST when
 *               the validity ran out).
 * @returns OSY_OK, or the Redis error (the state is kept; a holder stays
 *          valid until its validity runs out).
 */
osy_err_t osy_sfi_lease_tick(osy_sfi_lease_t *l, osy_redis_t *r, int64_t now_ms,
                             osy_sfi_lease_change_t *change, char *errstr,
                             size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief The local part of a tick: a holder whose validity ran out at
 *        @p now_ms loses the lease. @returns what changed.
 */
osy_sfi_lease_change_t osy_sfi_lease_expire(osy_sfi_lease_t *l, int64_t now_ms);

/**
 * @brief Give the lease back (compare-and-delete) if held, so a standby
 *        takes over at its next attempt instead of after the expiry.
 * @param change RELEASED when it was held (even if Redis failed: this
 *               replica stops using it either way), else UNCHANGED.
 */
osy_err_t osy_sfi_lease_release(osy_sfi_lease_t *l, osy_redis_t *r,
                                osy_sfi_lease_change_t *change, char *errstr,
                                size_t errstr_size) OSY_MUSTCHECK;

/** @returns 1 if held and valid at @p now_ms: only then may the holder
 *           publish or commit. */
int osy_sfi_lease_valid(const osy_sfi_lease_t *l, int64_t now_ms);

/** @returns the monotonic time the holder must stop at (last successful
 *           take or renew + lease - margin), 0 when not held. */
int64_t osy_sfi_lease_valid_until(const osy_sfi_lease_t *l);

/** @returns when the next tick is due (monotonic ms). */
int64_t osy_sfi_lease_next_ms(const osy_sfi_lease_t *l);

/** @returns the owner seen at the last failed take or lost renew ("" when
 *           none or unknown), for logs. Owned by @p l. */
const char *osy_sfi_lease_holder(const osy_sfi_lease_t *l);

/** @returns why the lease was last lost ("" if never), for logs. */
const char *osy_sfi_lease_lost_reason(const osy_sfi_lease_t *l);

/**
 * @brief This process's owner id:
 *        "<hostname>:<pid>:<16 random hex>@<boot id>/<pid namespace>".
 *        The part after '@' lets a replica on the same machine and pid
 *        namespace tell that a holder's process is gone.
 * @returns OSY_OK, or OSY_ERR_TOO_LARGE when @p size is too small.
 */
osy_err_t osy_sfi_lease_owner_id(char *buf, size_t size) OSY_MUSTCHECK;

/**
 * @brief Whether @p owner names a process of this machine and pid
 *        namespace that no longer exists (an id of another machine, or one
 *        that does not parse, is never dead: it could be alive).
 */
int osy_sfi_lease_owner_dead(const char *owner);

#endif /* OPTSYNC_SF_INGEST_LEASE_H */
