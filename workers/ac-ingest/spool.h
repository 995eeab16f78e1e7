/*
 * spool.h - ac-ingest's durable local spool: an append-only file of
 * checksummed records (fsync'd before a webhook is answered) and a cursor
 * file naming the first record not yet delivered to Kafka.
 */
#ifndef OSY_SPOOL_H
#define OSY_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "optsync/err.h"

/** Largest key + value of one record; a larger append is refused. */
#define OSY_SPOOL_MAX_RECORD (1024 * 1024)

/** File names inside the spool directory. */
#define OSY_SPOOL_LOG_NAME "spool.log"
#define OSY_SPOOL_CURSOR_NAME "spool.cursor"

typedef struct osy_spool_s osy_spool_t;

/** One record to append; nothing is kept after the call. */
struct osy_spool_rec {
        const void *key;
        size_t key_len;
        const void *value;
        size_t value_len;
};

/** One record read back; pointers into the batch's buffer. */
struct osy_spool_item {
        const char *key;
        size_t key_len;
        const char *value;
        size_t value_len;
        int64_t appended_ms; /**< wall time of the append */
        uint64_t end_off;    /**< file offset just past this record */
};

/** Records read by osy_spool_peek(), oldest first. */
struct osy_spool_batch {
        struct osy_spool_item *items;
        size_t n;
        char *buf; /**< owns the bytes the items point into */
        size_t buf_size;
};

/** A snapshot for metrics and readiness. */
struct osy_spool_stats {
        uint64_t records;  /**< appended and not yet delivered */
        uint64_t bytes;    /**< file size (delivered records included) */
        int64_t oldest_ms; /**< append time of the oldest undelivered
                                record; 0 when there is none */
        int writable;      /**< 0 after a failed write/fsync, or when full */
};

/**
 * @brief Open (creating if needed) the spool in @p dir, holding an
 *        exclusive lock on it so two processes never share one.
 *
 * Reads the cursor, checks every undelivered record's checksum and cuts
 * a torn tail (a crash mid-append) so it is never replayed half. A
 * corrupt record in the middle is skipped with an error log; the records
 * after it are kept.
 *
 * @param max_bytes  size cap of the file; appends beyond it fail.
 * @param now_ms     wall clock, for the log of what was recovered.
 * @param sp         receives the spool (caller owns; osy_spool_close).
 * @returns OSY_OK; OSY_ERR_INVALID (not a directory, locked by another
 *          process); OSY_ERR_TRANSIENT (I/O error); OSY_ERR_NOMEM.
 */
osy_err_t osy_spool_open(osy_spool_t **sp, const char *dir, uint64_t max_bytes,
                         char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/** @brief Release the lock and free. NULL-safe. Nothing is lost: the
 *         undelivered records stay for the next open. */
void osy_spool_close(osy_spool_t *sp);

/**
 * @brief Append @p n records and return once they are on disk (write,
 *        then fdatasync shared with concurrent appenders: group commit).
 *        Thread-safe.
 * @returns OSY_OK (durable); OSY_ERR_TOO_LARGE (the file would pass its
 *          cap, or a record is too big); OSY_ERR_TRANSIENT (write or sync
 *          failed: not durable, answer 503).
 */
osy_err_t osy_spool_append(osy_spool_t *sp, const struct osy_spool_rec *recs,
                           size_t n, int64_t now_ms, char *errstr,
                           size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Read up to @p max_recs durable undelivered records (about
 *        @p max_bytes at most, but always at least one) from the cursor.
 *        One reader at a time (the replayer).
 * @param b zeroed or cleared; filled (n may be 0: nothing to replay).
 * @returns OSY_OK, OSY_ERR_TRANSIENT (read error), OSY_ERR_NOMEM.
 */
osy_err_t osy_spool_peek(osy_spool_t *sp, struct osy_spool_batch *b,
                         size_t max_recs, size_t max_bytes, char *errstr,
                         size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Mark the first @p k records of @p b delivered: the cursor moves
 *        past them (persisted). When nothing undelivered remains, the file
 *        is emptied (the cursor reset is fsync'd first, so a crash can
 *        only replay delivered records, never skip new ones).
 * @returns OSY_OK or OSY_ERR_TRANSIENT (the cursor could not be saved:
 *          the records will be replayed again, a harmless duplicate).
 */
osy_err_t osy_spool_consume(osy_spool_t *sp, const struct osy_spool_batch *b,
                            size_t k, char *errstr,
                            size_t errstr_size) OSY_MUSTCHECK;

/** @brief Free a batch's buffers and zero it. NULL-safe. */
void osy_spool_batch_clear(struct osy_spool_batch *b);

/** @brief Fill @p st with the current numbers. Thread-safe. */
void osy_spool_stats(osy_spool_t *sp, struct osy_spool_stats *st);

/** @returns the number of undelivered records. Thread-safe. */
uint64_t osy_spool_depth(osy_spool_t *sp);

/** @returns the CRC-32 (IEEE, as zlib) of @p len bytes, continuing
 *           from @p crc (0 to start). */
uint32_t osy_crc32(uint32_t crc, const void *data, size_t len);

#endif /* OSY_SPOOL_H */
