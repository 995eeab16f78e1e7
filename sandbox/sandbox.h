/*
 * sandbox.h - the interface between the sandbox's parts: the HTTP core
 * (server.c: routing, clock, faults, request log, fixtures), the
 * ActiveCampaign simulator (ac_*.c), the Salesforce simulator (sf_*.c) and
 * its CometD/CDC endpoint (cometd.c).
 *
 * URL layout (one AC account and one SF org per tenant):
 *   /ac/<tenant>/api/3/...            AC API v3          -> sbx_ac_handle()
 *   /sf/<tenant>/services/oauth2/...  SF OAuth           -> sbx_sf_handle()
 *   /sf/<tenant>/services/data/...    SF REST            -> sbx_sf_handle()
 *   /sf/<tenant>/cometd/<ver>         SF CDC (CometD)    -> sbx_cometd_handle()
 *   /sandbox/...                      controls (core)
 *   /sandbox/ac/<tenant>/...          AC scenario actions -> sbx_ac_control()
 *   /sandbox/sf/<tenant>/...          SF scenario actions -> sbx_sf_control()
 * A tenant's AC base URL is therefore http://HOST:PORT/ac/<tenant> and its
 * SF instance_url http://HOST:PORT/sf/<tenant>.
 */
#ifndef OPTSYNC_SANDBOX_H
#define OPTSYNC_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

typedef struct sbx_s sbx_t;

/** A decoded name/value pair (query argument or header). */
struct sbx_kv {
        const char *key;
        const char *value;
};

/** One request, as the core hands it to a module. Valid during the call. */
struct sbx_req {
        const char *method; /**< "GET", "POST", ... */
        const char *url;    /**< full path as received, without query */
        const char *tenant; /**< from the path prefix; "" for /sandbox/ */
        const char *path;   /**< the rest after the prefix: "/api/3/contacts",
                                 "/services/data/v59.0/query", "/cometd/59.0",
                                 for controls: after "/sandbox/ac/<tenant>" */
        const struct sbx_kv *query; /**< decoded, in order, keys as sent
                                         ("orders[id]") */
        size_t query_cnt;
        const struct sbx_kv *headers; /**< as received */
        size_t header_cnt;
        const char *body; /**< NUL-terminated copy (may hold NULs too) */
        size_t body_len;
};

/** @returns the first query value for @p key, or NULL. */
const char *sbx_req_query(const struct sbx_req *req, const char *key);
/** @returns the header value for @p name (case-insensitive), or NULL. */
const char *sbx_req_header(const struct sbx_req *req, const char *name);

#define SBX_RESP_MAX_HEADERS 12

/** The answer a module fills; the core sends it and frees it. */
struct sbx_resp {
        int status; /**< 0 = not handled (the core answers 404) */
        char *body; /**< malloc()ed, owned by the response */
        size_t body_len;
        char content_type[64];
        struct {
                char *name, *value; /* malloc()ed */
        } headers[SBX_RESP_MAX_HEADERS];
        size_t header_cnt;
        int reset_connection; /**< fault: close the socket, send nothing */
};

/** @brief Answer with @p json (consumed, freed here) as application/json. */
void sbx_resp_json(struct sbx_resp *resp, int status, cJSON *json);
/** @brief Answer with a copy of @p text and the given content type. */
void sbx_resp_text(struct sbx_resp *resp, int status, const char *ctype,
                   const char *text);
/** @brief Add a response header (copied). */
void sbx_resp_header(struct sbx_resp *resp, const char *name,
                     const char *value);

/* ---- shared services of the core ----------------------------------------- */

/** @returns the simulator clock: real UTC ms plus the offset that the
 *  /sandbox/clock control advances. Every timestamp the sandbox writes and
 *  every limit window uses it. */
int64_t sbx_now_ms(sbx_t *sbx);

/** @brief The one lock around all simulated state (both platforms). Never
 *  hold it while blocking (long-poll waits, webhook deliveries). */
void sbx_lock(sbx_t *sbx);
void sbx_unlock(sbx_t *sbx);

/** @returns a number in [0, 1) from the seeded generator (/sandbox/seed
 *  sets the seed, so a failing test replays). Call with the lock held. */
double sbx_random(sbx_t *sbx);

/**
 * @brief Apply the fault rules configured for this request (error rates,
 *        HTML or JSON 5xx, latency, resets, 429 storms, ...).
 * @param endpoint a short class name the module chooses, e.g.
 *        "ac.contacts", "sf.query", "sf.composite", "sf.token", "cometd".
 * @returns 1 when a fault answer was written into @p resp (the module then
 *          returns at once), 0 to go on. May sleep (latency faults).
 */
int sbx_fault_apply(sbx_t *sbx, const char *endpoint, const struct sbx_req *req,
                    struct sbx_resp *resp);

/**
 * @brief Wait (lock held; released while waiting) until sbx_notify() is
 *        called or @p timeout_ms of real time pass. For CometD long-polls.
 * @returns 1 if notified, 0 on timeout.
 */
int sbx_wait(sbx_t *sbx, int timeout_ms);
/** @brief Wake every sbx_wait()er (lock held). */
void sbx_notify(sbx_t *sbx);

/** @returns 1 once the server is stopping: long-polls return at once. */
int sbx_stopping(sbx_t *sbx);

/** @returns the module state pointers, created by each module's init. */
struct sbx_ac *sbx_ac_state(sbx_t *sbx);
struct sbx_sf *sbx_sf_state(sbx_t *sbx);
struct sbx_cdc *sbx_cdc_state(sbx_t *sbx);

/** @returns the server's own base URL, "http://127.0.0.1:PORT". */
const char *sbx_base_url(sbx_t *sbx);

/** @returns the value of a "--set key=value" command-line option (the last
 *  one wins), or NULL when it was not given. Owned by the server; valid
 *  until it stops. No lock needed: the options never change. */
const char *sbx_option(sbx_t *sbx, const char *key);

/* ---- module entry points (each module implements its own) -------------- */

/* ActiveCampaign: ac_*.c */
struct sbx_ac *sbx_ac_new(sbx_t *sbx);
void sbx_ac_free(struct sbx_ac *ac);
void sbx_ac_reset(struct sbx_ac *ac); /* lock held */
/** Seed one tenant from the fixture's "ac" object (lock held).
 *  @returns 0, or -1 with a reason in @p err. */
int sbx_ac_seed(struct sbx_ac *ac, const char *tenant, const cJSON *fixture,
                char *err, size_t errsz);
/** State dump for /sandbox/state (lock held); caller owns the result. */
cJSON *sbx_ac_dump(struct sbx_ac *ac, const char *tenant);
void sbx_ac_handle(sbx_t *sbx, const struct sbx_req *req,
                   struct sbx_resp *resp);
void sbx_ac_control(sbx_t *sbx, const struct sbx_req *req,
                    struct sbx_resp *resp);

/* Salesforce REST + OAuth: sf_*.c; CDC: cometd.c */
struct sbx_sf *sbx_sf_new(sbx_t *sbx);
void sbx_sf_free(struct sbx_sf *sf);
void sbx_sf_reset(struct sbx_sf *sf);
int sbx_sf_seed(struct sbx_sf *sf, const char *tenant, const cJSON *fixture,
                char *err, size_t errsz);
cJSON *sbx_sf_dump(struct sbx_sf *sf, const char *tenant);
void sbx_sf_handle(sbx_t *sbx, const struct sbx_req *req,
                   struct sbx_resp *resp);
void sbx_sf_control(sbx_t *sbx, const struct sbx_req *req,
                    struct sbx_resp *resp);

/* The CDC event log and CometD endpoint: cometd.c */
struct sbx_cdc *sbx_cdc_new(sbx_t *sbx);
void sbx_cdc_free(struct sbx_cdc *cdc);
void sbx_cdc_reset(struct sbx_cdc *cdc);
/**
 * @brief Record one change event for @p tenant (lock held) and wake the
 *        long-polls. Called by sf_*.c on every record write.
 * @param entity       "Contact" or "Lead".
 * @param change_type  "CREATE", "UPDATE", "DELETE", "UNDELETE", or a
 *                     "GAP_*" type.
 * @param record_ids   ids the event covers (several when merged).
 * @param changed      JSON array of changed field names (not consumed;
 *                     may be NULL for CREATE).
 * @param body         JSON object of the new field values (consumed).
 * @param change_origin "" or e.g. "com/salesforce/api/rest/59.0;client=optsync"
 *                      built from the caller's Sforce-Call-Options.
 */
void sbx_cdc_publish(sbx_t *sbx, const char *tenant, const char *entity,
                     const char *change_type, const char *const *record_ids,
                     size_t record_cnt, const cJSON *changed, cJSON *body,
                     const char *change_origin);
void sbx_cometd_handle(sbx_t *sbx, const struct sbx_req *req,
                       struct sbx_resp *resp);

#endif /* OPTSYNC_SANDBOX_H */
