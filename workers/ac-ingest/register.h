/*
 * register.h - `ac-ingest register`: make each tenant's AC account hold
 * exactly one webhook to this receiver, with the events and sources
 * optsync needs. Idempotent: lists the hooks first, changes only what
 * differs, and reports every change.
 */
#ifndef OSY_INGEST_REGISTER_H
#define OSY_INGEST_REGISTER_H

#include <stdio.h>

#include "optsync/err.h"
#include "optsync/http.h"
#include "optsync/tenants.h"

/** Name given to the webhooks this command creates. */
#define OSY_ACWH_HOOK_NAME "optsync"

/** The AC events optsync consumes, and the sources it listens to. */
extern const char *const osy_acwh_hook_events[];
extern const char *const osy_acwh_hook_sources[];

/** Options a caller fills. */
struct osy_acwh_register_opts {
        /** Base URL AC calls (OPTSYNC_INGEST_PUBLIC_URL); required. */
        const char *public_url;
        int dry_run; /**< report what would change, change nothing */
        int prune;   /**< also delete our hooks that carry an old token */
};

/** What one tenant's run did (counts of hooks). */
struct osy_acwh_register_report {
        int created, updated, deleted, unchanged, stale;
};

/**
 * @brief Reconcile one tenant's webhooks: GET /api/3/webhooks (every
 *        page), then POST a missing hook, PUT one whose events, sources or
 *        list differ, DELETE duplicates of our URL (and, with prune, our
 *        hooks with another token). One line per action goes to @p out,
 *        tokens masked.
 * @param c  HTTP client (not shared with other threads).
 * @returns OSY_OK; OSY_ERR_INVALID (tenant lacks ac.base_url, api_token
 *          or webhook_token; bad public URL); the class of an AC failure
 *          (OSY_ERR_AUTH for a refused Api-Token, ...), reason in @p errstr.
 */
osy_err_t
osy_acwh_register_tenant(osy_http_client_t *c, const struct osy_tenant *t,
                         const struct osy_acwh_register_opts *opts, FILE *out,
                         struct osy_acwh_register_report *rep, char *errstr,
                         size_t errstr_size) OSY_MUSTCHECK;

#endif /* OSY_INGEST_REGISTER_H */
