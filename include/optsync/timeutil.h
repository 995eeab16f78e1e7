/*
 * timeutil.h - RFC 3339 timestamps <-> int64 milliseconds since the Unix
 * epoch (UTC). Pure functions: no locale, no TZ, no libc time zone state.
 */
#ifndef OPTSYNC_TIMEUTIL_H
#define OPTSYNC_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "optsync/err.h"

/** Buffer size for osy_time_format_ms(): "YYYY-MM-DDTHH:MM:SS.mmmZ" + NUL. */
#define OSY_TIME_BUFSZ 25

/** Largest accepted time: 9999-12-31T23:59:59.999Z. */
#define OSY_TIME_MAX_MS INT64_C(253402300799999)

/**
 * @brief Format @p ms (UTC) as "2026-11-26T04:13:00.123Z", the only form
 *        optsync messages carry.
 * @param buf  caller's buffer, at least OSY_TIME_BUFSZ bytes.
 * @returns OSY_OK; OSY_ERR_INVALID if @p ms is outside 0..OSY_TIME_MAX_MS
 *          (buf then holds ""); OSY_ERR_TOO_LARGE if @p size is too small.
 */
osy_err_t osy_time_format_ms(int64_t ms, char *buf, size_t size) OSY_MUSTCHECK;

/**
 * @brief Parse an RFC 3339 / ISO 8601 date-time with an explicit zone into
 *        UTC milliseconds.
 *
 * Accepted, so AC's account-local webhook times parse as they come:
 * "YYYY-MM-DD" then 'T', 't' or ' ', "HH:MM:SS", an optional fraction of
 * any number of digits (truncated to ms), an optional space, then 'Z', 'z',
 * "+hh:mm", "-hh:mm", "+hhmm" or "-hhmm". Examples:
 * "2024-02-28T07:04:13-06:00", "2026-11-25 22:13:00 -06:00",
 * "2026-11-26T04:13:00.123Z". A time without a zone is rejected: it is
 * ambiguous, and guessing would misorder events.
 *
 * @param ms  receives the time; untouched on error.
 * @returns OSY_OK, or OSY_ERR_INVALID with the reason in @p errstr.
 */
osy_err_t osy_time_parse(const char *s, int64_t *ms, char *errstr,
                         size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Parse only the canonical form osy_time_format_ms() writes
 *        (exactly "YYYY-MM-DDTHH:MM:SS.mmmZ"), as message decoding does,
 *        so a timestamp has one spelling on the bus.
 * @returns OSY_OK, or OSY_ERR_INVALID with the reason in @p errstr.
 */
osy_err_t osy_time_parse_canonical(const char *s, int64_t *ms, char *errstr,
                                   size_t errstr_size) OSY_MUSTCHECK;

#endif /* OPTSYNC_TIMEUTIL_H */
