/*
 * email.h - the one normal form of an email address, which (with the
 * tenant) names a person everywhere: Kafka keys, Redis keys, message ids.
 */
#ifndef OPTSYNC_EMAIL_H
#define OPTSYNC_EMAIL_H

#include <stddef.h>

#include "optsync/err.h"

/** Longest normalised address accepted (RFC 5321 path limit). */
#define OSY_EMAIL_MAX 254

/** Buffer size that holds any normalised address. */
#define OSY_EMAIL_BUFSZ (OSY_EMAIL_MAX + 1)

/**
 * @brief Normalise an address: trim ASCII white space at both ends and
 *        lower-case ASCII letters (bytes >= 0x80 are kept as they are).
 *
 * The result must then hold exactly one '@' with a non-empty local part
 * and domain, no white space or control characters, be valid UTF-8 and
 * at most OSY_EMAIL_MAX bytes. No further RFC 5322 checks are made:
 * SF and AC both accept addresses a strict parser would refuse, and
 * refusing them here would lose their opt-outs.
 *
 * @param out  caller's buffer (OSY_EMAIL_BUFSZ is always enough);
 *             "" on error. May not overlap @p in.
 * @returns OSY_OK; OSY_ERR_INVALID with the reason in @p errstr;
 *          OSY_ERR_TOO_LARGE if @p out_size is too small.
 */
osy_err_t osy_email_normalise(const char *in, char *out, size_t out_size,
                              char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/**
 * @returns 1 if @p s is already a valid normalised address (what
 *          osy_email_normalise() would return unchanged), else 0.
 */
int osy_email_is_normal(const char *s);

/**
 * @returns 1 if the @p len bytes at @p s are valid UTF-8 (shortest forms,
 *          no surrogates, at most U+10FFFF), else 0. NUL bytes count as
 *          valid here; callers that need C strings check for them.
 */
int osy_utf8_valid(const char *s, size_t len);

#endif /* OPTSYNC_EMAIL_H */
