/*
 * rules_state.h - what the rules worker knows about one person (tenant,
 * email): the version of the last applied event, the AC contact, its set of
 * active lists, which of the five qualifying tags it carries, and the SF
 * opt-out the rules last decided. Kept in Redis as one compact string.
 */
#ifndef OPTSYNC_RULES_STATE_H
#define OPTSYNC_RULES_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "optsync/envelope.h"
#include "optsync/err.h"

/** Longest AC id (contact, list) kept: the envelope's token limit. */
#define OSY_RULES_ID_MAX 64

/** Most active lists tracked per contact; more is refused as corrupt. */
#define OSY_RULES_LISTS_MAX 1000

/** Version of the Redis string format (its first field). */
#define OSY_RULES_STATE_FORMAT "1"

/**
 * The five tags of a qualified AC contact (ARCHITECTURE.md section 1), as
 * bits of osy_rules_person.tag_mask, in this order.
 */
extern const char *const osy_rules_qualifying_tags[5];
#define OSY_RULES_QUALIFYING_TAGS 5

/** The person's state. A zeroed struct is "nothing known". */
struct osy_rules_person {
        /** Version of the last applied event: occurrence time (ms), then
         *  its id. ms 0 means no event applied yet. */
        int64_t version_ms;
        char version_tie[OSY_ID_BUFSZ];
        /** AC contact id, "" when not known. */
        char contact_id[OSY_RULES_ID_MAX + 1];
        /** 1: an AC look-up found no contact with this email. */
        int ac_missing;
        /** 1: lists[] is the contact's set of active lists (maybe empty). */
        int lists_known;
        char **lists; /**< owned, sorted (strcmp), no duplicates */
        size_t lists_cnt;
        /** 1: tag_mask is known. */
        int tags_known;
        unsigned tag_mask; /**< bit i: osy_rules_qualifying_tags[i] */
        /** The SF opt-out the rules last decided for every record of the
         *  person (TRUE after R2/R3/R4, FALSE after R1 or after an SF
         *  record was seen unticked); UNSET: not known. */
        osy_tri_t sf_opted_out;
};

/** @brief Free the lists and zero @p p. NULL-safe. */
void osy_rules_person_clear(struct osy_rules_person *p);

/** @brief Deep copy @p src into @p dst (cleared first).
 *  @returns OSY_OK or OSY_ERR_NOMEM (@p dst then cleared). */
osy_err_t
osy_rules_person_copy(struct osy_rules_person *dst,
                      const struct osy_rules_person *src) OSY_MUSTCHECK;

/** @returns 1 if @p list is in p->lists. */
int osy_rules_lists_has(const struct osy_rules_person *p, const char *list);

/** @brief Add @p list to p->lists (kept sorted; no-op if present).
 *  @returns OSY_OK, OSY_ERR_NOMEM, OSY_ERR_TOO_LARGE (the cap). */
osy_err_t osy_rules_lists_add(struct osy_rules_person *p,
                              const char *list) OSY_MUSTCHECK;

/** @brief Remove @p list from p->lists (no-op if absent). */
void osy_rules_lists_remove(struct osy_rules_person *p, const char *list);

/** @brief Empty p->lists (lists_known is left alone). */
void osy_rules_lists_clear(struct osy_rules_person *p);

/**
 * @returns the bit of @p tag among the five qualifying tags (compared
 *          case-insensitively, as AC does), or 0 for any other tag.
 */
unsigned osy_rules_tag_bit(const char *tag);

/** @returns the qualifying-tag mask of a list of tag names. */
unsigned osy_rules_tag_mask(const char *const *tags, size_t n);

/**
 * @brief Encode @p p as the Redis value:
 *        "1|<ms>|<tie>|<flags>|<tag_mask>|<sf>|<contact_id>|<l1>,<l2>,..."
 *        where flags has 1 = lists known, 2 = tags known, 4 = no AC
 *        contact, and sf is "-", "0" or "1". Ids are tokens of
 *        [A-Za-z0-9_.:-], so '|' and ',' never occur inside a field.
 * @param out receives a malloc()ed NUL-terminated string (caller frees).
 * @returns OSY_OK or OSY_ERR_NOMEM.
 */
osy_err_t osy_rules_person_encode(const struct osy_rules_person *p, char **out,
                                  size_t *lenp) OSY_MUSTCHECK;

/**
 * @brief Decode a value written by osy_rules_person_encode().
 * @param p overwritten (anything it held is not freed), then filled; on
 *          error it is left zeroed.
 * @returns OSY_OK; OSY_ERR_INVALID for anything malformed (the caller then
 *          treats the person as unknown: a cache miss, never a crash);
 *          OSY_ERR_NOMEM.
 */
osy_err_t osy_rules_person_decode(const char *buf, size_t len,
                                  struct osy_rules_person *p, char *errstr,
                                  size_t errstr_size) OSY_MUSTCHECK;

/** Buffer size for any Redis key of the rules worker. */
#define OSY_RULES_KEY_BUFSZ (256 + OSY_PARTITION_KEY_BUFSZ + OSY_ID_BUFSZ + 16)

/**
 * @brief Key of a person's state: "<prefix>:rules:p:{<tenant>|<email>}".
 *        The braces are a Redis Cluster hash tag.
 * @returns OSY_OK or OSY_ERR_TOO_LARGE.
 */
osy_err_t osy_rules_state_key(char *buf, size_t size, const char *prefix,
                              const char *tenant,
                              const char *email) OSY_MUSTCHECK;

/** Events decided are remembered in one hash per this much occurrence
 *  time (docs/rules.md, "Dedup"). */
#define OSY_RULES_SEEN_BUCKET_MS 1000

/**
 * @brief Key of the hash that remembers the events that occurred in the
 *        same second as @p occurred_at_ms (ms since the epoch, >= 0):
 *        "<prefix>:rules:seen:<unix second>". Its fields are event ids.
 *        An event id covers its occurrence time, so a replay of an event
 *        always looks in the hash its first pass wrote.
 * @returns OSY_OK or OSY_ERR_TOO_LARGE.
 */
osy_err_t osy_rules_seen_key(char *buf, size_t size, const char *prefix,
                             int64_t occurred_at_ms) OSY_MUSTCHECK;

#endif /* OPTSYNC_RULES_STATE_H */
