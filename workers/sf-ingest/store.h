/*
 * store.h - sf-ingest's durable state in Redis, per tenant: CDC replay ids
 * and the commit time they reached, polling watermarks, and per record the
 * last known opt-out, conversion and email (which doubles as the
 * id -> email cache). Writes happen in one MULTI/EXEC per batch, and only
 * after Kafka acknowledged the batch.
 *
 * Keys (P = OPTSYNC_REDIS_KEY_PREFIX, T = tenant):
 *   P:sfi:T:replay:<channel>    last replay id whose events are all in Kafka
 *   P:sfi:T:cdctime:<channel>   commitTimestamp (ms) that replay id reached
 *   P:sfi:T:wm:<Contact|Lead>   polling watermark (ms, SystemModstamp)
 *   P:sfi:T:rec:<record id>     hash o (0/1), c (0/1), e (email); with TTL
 */
#ifndef OPTSYNC_SF_INGEST_STORE_H
#define OPTSYNC_SF_INGEST_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "mapping.h"
#include "optsync/err.h"
#include "optsync/redis.h"

typedef struct osy_sfi_store_s osy_sfi_store_t;

/**
 * @brief A store for one tenant on connection @p redis (borrowed: it must
 *        outlive the store, and like it is used by one thread).
 * @param record_ttl_ms lifetime of a record's state after its last write.
 */
osy_err_t osy_sfi_store_new(osy_sfi_store_t **sp, osy_redis_t *redis,
                            const char *prefix, const char *tenant,
                            int64_t record_ttl_ms, char *errstr,
                            size_t errstr_size) OSY_MUSTCHECK;

/** @brief Free the store (not the connection). NULL-safe. */
void osy_sfi_store_destroy(osy_sfi_store_t *s);

/**
 * @brief Read the value of "P:sfi:T:<name>" into @p buf.
 * @returns OSY_OK; OSY_ERR_NOT_FOUND when unset; OSY_ERR_TOO_LARGE; the
 *          Redis error.
 */
osy_err_t osy_sfi_store_get(osy_sfi_store_t *s, const char *name, char *buf,
                            size_t size, char *errstr,
                            size_t errstr_size) OSY_MUSTCHECK;

/** @brief osy_sfi_store_get() of a time in ms; NOT_FOUND when unset,
 *         INVALID when the stored text is not an integer in
 *         0..OSY_TIME_MAX_MS. */
osy_err_t osy_sfi_store_get_ms(osy_sfi_store_t *s, const char *name,
                               int64_t *out, char *errstr,
                               size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Read the state of @p n records in one round trip.
 * @param out @p n states; unknown records get known = 0.
 */
osy_err_t osy_sfi_store_get_states(osy_sfi_store_t *s,
                                   const char (*ids)[OSY_SFI_ID_BUFSZ],
                                   size_t n, struct osy_sfi_recstate *out,
                                   char *errstr,
                                   size_t errstr_size) OSY_MUSTCHECK;

/* ---- one transaction ---------------------------------------------------
 * begin, then any number of set/del/state, then exec. Nothing is sent
 * before exec; exec runs the commands together (MULTI/EXEC: no other
 * client sees half of them). Redis does not roll back a command that
 * fails inside EXEC (a key of the wrong type): exec reports it, and the
 * caller treats the batch as not committed, which costs duplicates only. */

/** @brief Start a transaction (discarding any unfinished one). */
osy_err_t osy_sfi_store_begin(osy_sfi_store_t *s, char *errstr,
                              size_t errstr_size) OSY_MUSTCHECK;

/** @brief SET "P:sfi:T:<name>" @p value. */
osy_err_t osy_sfi_store_set(osy_sfi_store_t *s, const char *name,
                            const char *value, char *errstr,
                            size_t errstr_size) OSY_MUSTCHECK;

/** @brief SET an integer. */
osy_err_t osy_sfi_store_set_ms(osy_sfi_store_t *s, const char *name,
                               int64_t value, char *errstr,
                               size_t errstr_size) OSY_MUSTCHECK;

/** @brief DEL "P:sfi:T:<name>". */
osy_err_t osy_sfi_store_del(osy_sfi_store_t *s, const char *name, char *errstr,
                            size_t errstr_size) OSY_MUSTCHECK;

/** @brief Merge @p u into its record's state and renew its TTL. */
osy_err_t osy_sfi_store_state(osy_sfi_store_t *s,
                              const struct osy_sfi_state_update *u,
                              char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/** @brief Drop an unfinished transaction: nothing of it is sent, and the
 *         connection is free for other commands. */
void osy_sfi_store_abort(osy_sfi_store_t *s);

/**
 * @brief Send the transaction and check every answer.
 * @returns OSY_OK when every command succeeded; else the first error (after
 *          an I/O error it is unknown what ran). Either way the caller
 *          treats the batch as not committed: only duplicates follow.
 */
osy_err_t osy_sfi_store_exec(osy_sfi_store_t *s, char *errstr,
                             size_t errstr_size) OSY_MUSTCHECK;

#endif /* OPTSYNC_SF_INGEST_STORE_H */
