/*
 * world.h - the people of an end-to-end run: a seeded, realistic fixture
 * (AC contacts with tags and list memberships, the matching SF Contacts and
 * Leads), the changes a scenario makes through the sandbox's controls, and
 * the oracle: the state both platforms must reach by the opt-out rules.
 *
 * The oracle is written from ../shared/spec/optout-rules.txt and the
 * decision table in docs/rules.md, independently of workers/rules, so that
 * the demo and the e2e suite check the system against the rules rather
 * than against itself.
 */
#ifndef OSY_E2E_WORLD_H
#define OSY_E2E_WORLD_H

#include <stddef.h>
#include <stdint.h>

/** AC lists of the fixture: ids "1".."E2E_LISTS". */
#define E2E_LISTS 3
/** Most SF records one person (one email) has. */
#define E2E_MAX_SF 3

/** AC list membership status (as AC numbers them); E2E_NOT_MEMBER: none. */
enum e2e_list_status {
        E2E_NOT_MEMBER   = -1,
        E2E_UNCONFIRMED  = 0,
        E2E_ACTIVE       = 1,
        E2E_UNSUBSCRIBED = 2,
        E2E_BOUNCED      = 3
};

enum e2e_sf_type {
        E2E_SF_CONTACT,
        E2E_SF_LEAD
};

/** One SF record of a person. */
struct e2e_sf_record {
        enum e2e_sf_type type;
        int converted; /**< a converted lead: read-only, never written */
        int opted_out; /**< HasOptedOutOfEmail */
        /** 18-char id: set by e2e_world_generate() and pinned in the
         *  fixture (so a converted lead can name its contact); checked
         *  against the sandbox by e2e_world_bind() */
        char id[19];
};

/** One person: an email, its AC contact (if any) and SF records. */
struct e2e_person {
        char email[96];
        char name[64];  /**< "First Last", for printing */
        int has_ac;     /**< an AC contact exists for the email */
        char ac_id[16]; /**< AC contact id, filled by e2e_world_bind() */
        int qualified;  /**< carries one of the five qualifying tags */
        int list_status[E2E_LISTS]; /**< enum e2e_list_status per list */
        int bounced_hard;           /**< AC hard-bounced (informational) */
        size_t n_sf;
        struct e2e_sf_record sf[E2E_MAX_SF];
};

/** The whole population of one tenant. */
struct e2e_world {
        char tenant[64];
        size_t n;
        struct e2e_person *people; /**< owned; e2e_world_free() */
};

/** What a user does on one platform. */
enum e2e_change_kind {
        E2E_AC_UNSUBSCRIBE_ALL,  /**< clicks the unsubscribe link: every
                                    active list, source public */
        E2E_AC_UNSUBSCRIBE_LIST, /**< unsubscribes from one list (public) */
        E2E_AC_SUBSCRIBE,        /**< is subscribed to one list (admin) */
        E2E_AC_BOUNCE_HARD,      /**< a campaign hard-bounces */
        E2E_AC_BOUNCE_SOFT,      /**< a campaign soft-bounces (always the
                                    same campaign, so never escalates) */
        E2E_SF_TICK,             /**< an SF user ticks Email Opt Out */
        E2E_SF_UNTICK,           /**< an SF user unticks it */
        E2E_CHANGE_KINDS
};

/** One change: who, what, and on which list or SF record. */
struct e2e_change {
        enum e2e_change_kind kind;
        size_t person; /**< index into world->people */
        int list;      /**< 0-based list index, for the list changes */
        size_t record; /**< index into person->sf, for the SF changes */
};

/**
 * @brief Build a deterministic population of @p n people (n >= 40) from
 *        @p seed: about 80% qualified (a mix of the five tags) and the
 *        rest unqualified (other tags only); memberships over the lists
 *        with some people already on zero active lists; most people have a
 *        SF Contact, some a Lead, some both (duplicate email), a few a
 *        converted lead beside its contact, a few have no SF record and a
 *        few are SF-only (no AC contact). SF opt-out starts consistent
 *        with the AC state (opted out exactly when no active list). Emails
 *        are lower case and unique.
 * @returns 0, or -1 on allocation failure.
 */
int e2e_world_generate(struct e2e_world *w, const char *tenant, size_t n,
                       uint64_t seed);

/** @brief Free what e2e_world_generate()/e2e_world_copy() allocated. */
void e2e_world_free(struct e2e_world *w);

/** @brief Deep copy @p src into @p dst. @returns 0 or -1. */
int e2e_world_copy(struct e2e_world *dst, const struct e2e_world *src);

/**
 * @brief The sandbox fixture for this world (caller frees): one tenant
 *        with its "ac" part (lists named Newsletter, Product news, Events;
 *        the five qualifying tags; contacts) and "sf" part (contacts and
 *        leads with the world's pinned Ids; a converted lead carries
 *        IsConverted and ConvertedContactId = its person's contact).
 *        @p ac_rate_per_s goes to the account's "rate_per_s" (0: no
 *        limit). No webhook: ac-ingest registers its own.
 */
char *e2e_world_fixture_json(const struct e2e_world *w, int ac_rate_per_s);

/**
 * @brief Fill the AC contact ids and SF record ids from the sandbox state
 *        (the body of GET /sandbox/state?tenant=T).
 * @returns 0, or -1 with the reason in @p err when a person or record of
 *          the world is missing from the state.
 */
int e2e_world_bind(struct e2e_world *w, const char *state_json, char *err,
                   size_t err_size);

/**
 * @brief Read both platforms' actual state from the sandbox state JSON
 *        into @p actual, a copy of @p model (same people, same order)
 *        whose list statuses, qualification, bounce and SF opt-outs are
 *        replaced by what the sandbox holds. @p actual is overwritten
 *        (pass a zeroed or freed struct); the caller frees it with
 *        e2e_world_free(), also after an error (it is then empty).
 * @returns 0 or -1 with @p err (e.g. an SF record of the model is gone).
 */
int e2e_world_read(struct e2e_world *actual, const struct e2e_world *model,
                   const char *state_json, char *err, size_t err_size);

/**
 * @brief Compare the oracle's @p expected with @p actual.
 * @param report if not NULL, receives up to @p report_size bytes: one line
 *        per differing person ("ann@x.test: SF Lead 00Q.. opted_out
 *        expected true, is false; AC list 2 expected unsubscribed, is
 *        active").
 * @returns the number of people that differ (0: equal).
 */
size_t e2e_world_diff(const struct e2e_world *expected,
                      const struct e2e_world *actual, char *report,
                      size_t report_size);

/**
 * @brief Apply @p c to the oracle only (no HTTP): the user's change
 *        itself, then what the rules make optsync do (R1-R4, consequences,
 *        qualification, converted leads untouched).
 * @param rule if not NULL, receives a short static text naming the rule
 *        that fires and why ("R2: no active list left", "none: a second
 *        list", "none: not qualified", ...).
 * @returns the number of writes optsync must make for it: records and
 *          lists whose value changes (an sf.command to a record already at
 *          the value counts 0; for R4 the AC lists unsubscribed plus the
 *          other SF records ticked). 0 when nothing should change.
 */
int e2e_world_apply(struct e2e_world *w, const struct e2e_change *c,
                    const char **rule);

/**
 * @brief Make the change happen in the sandbox through its scenario
 *        controls (as the user would), then apply it to the oracle.
 * @param sandbox_url "http://127.0.0.1:PORT".
 * @param rule as in e2e_world_apply().
 * @returns 0, or -1 with the HTTP failure in @p err (oracle unchanged).
 */
int e2e_world_play(struct e2e_world *w, const char *sandbox_url,
                   const struct e2e_change *c, const char **rule, char *err,
                   size_t err_size);

/**
 * @brief Pick a random change that makes sense for the current oracle
 *        state (e.g. subscribe only to a list the person is not active
 *        on and never for a bounced contact; tick only an unticked,
 *        unconverted record), for a person whose @p used flag is 0; sets
 *        that flag. @p rng is a xorshift64 state (non-zero).
 * @returns 0, or -1 when no unused person has a possible change.
 */
int e2e_world_random_change(const struct e2e_world *w, uint64_t *rng,
                            unsigned char *used, struct e2e_change *out);

/** @returns how many lists @p p is active on (status 1). */
int e2e_person_active_lists(const struct e2e_person *p);

/** @brief "unsubscribe from every list (link)", ... for printing. */
const char *e2e_change_name(enum e2e_change_kind kind);

/**
 * @brief One line per platform describing @p p for the demo, e.g.
 *        "AC  lists: Newsletter active, Events unsubscribed; tags: qualified"
 *        "SF  Contact 003SB..: opted in; Lead 00QSB..: opted out"
 *        into @p buf. @returns @p buf.
 */
char *e2e_person_describe(const struct e2e_person *p, char *buf, size_t size);

#endif /* OSY_E2E_WORLD_H */
