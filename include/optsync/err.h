/*
 * err.h - the one error type of optsync, and the one place that decides
 * whether an error is worth retrying.
 */
#ifndef OPTSYNC_ERR_H
#define OPTSYNC_ERR_H

#include <stddef.h>

/** Functions whose result must be checked. */
#define OSY_MUSTCHECK __attribute__((warn_unused_result))

/** Size of the caller-owned buffers that receive error detail. */
#define OSY_ERRSTR_SIZE 256

/**
 * @brief Project-wide result codes.
 *
 * Every fallible function in common/ and workers/ returns one of these and,
 * where useful, writes human-readable detail into a caller's buffer.
 * Whether to retry is decided by osy_err_is_retryable() alone.
 */
typedef enum {
        OSY_OK = 0,
        OSY_ERR_INVALID,   /**< bad input, config or schema: never retry */
        OSY_ERR_NOMEM,     /**< allocation failed */
        OSY_ERR_NOT_FOUND, /**< the thing asked for does not exist */
        OSY_ERR_TOO_LARGE, /**< a size cap was hit (body, buffer) */
        OSY_ERR_AUTH,      /**< credentials rejected or expired */
        OSY_ERR_TRANSIENT, /**< timeout, 5xx, broker or Redis down: back off */
        OSY_ERR_THROTTLED, /**< 429 or quota: wait for the hint, then retry */
        OSY_ERR_PERMANENT, /**< the remote refused for good (4xx, rule) */
        OSY_ERR_FATAL      /**< the handle is unusable: the process exits */
} osy_err_t;

/** @returns a short constant name for @p err ("transient", ...). */
const char *osy_err2str(osy_err_t err);

/**
 * @brief The only place retry policy reads error codes.
 * @returns 1 for OSY_ERR_TRANSIENT and OSY_ERR_THROTTLED, else 0.
 */
int osy_err_is_retryable(osy_err_t err);

/**
 * @brief Classify an HTTP answer from AC, SF or any peer.
 *
 * @param status HTTP status, or 0 when no answer arrived (timeout, reset).
 * @param body   response body (may be NULL); used to spot Salesforce
 *               error codes such as UNABLE_TO_LOCK_ROW and HTML 503 pages.
 * @returns OSY_OK for 2xx, else the class of the failure.
 */
osy_err_t osy_err_from_http(int status, const char *body);

/**
 * @brief Classify a Salesforce per-record or per-call error code
 *        ("UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED", ...).
 */
osy_err_t osy_err_from_sf_code(const char *code);

/**
 * @brief Format into @p errstr (if not NULL), like snprintf, and return
 *        @p err, so error paths stay one line.
 */
osy_err_t osy_err_set(osy_err_t err, char *errstr, size_t errstr_size,
                      const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif /* OPTSYNC_ERR_H */
