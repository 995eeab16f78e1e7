/*
 * server_internal.h - the sandbox core's private interface: the server's
 * lifecycle (for main.c) and the pieces shared by server.c, faults.c and
 * reqlog.c. Modules (ac_*.c, sf_*.c, cometd.c) use sandbox.h only.
 */
#ifndef OPTSYNC_SANDBOX_SERVER_INTERNAL_H
#define OPTSYNC_SANDBOX_SERVER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sandbox.h"

/** Request bodies above this get 413 (override: --max-body). */
#define SBX_DEFAULT_MAX_BODY ((size_t)8 * 1024 * 1024)
/** Entries the request log keeps (override: --log-size). */
#define SBX_DEFAULT_LOG_SIZE 4096
/** The seed used when --seed is not given: runs replay by default. */
#define SBX_DEFAULT_SEED 1
/** Tenant names: [A-Za-z0-9_.-], at most this long. */
#define SBX_TENANT_MAX 64

/** What main.c parsed from the command line. Nothing is kept by pointer. */
struct sbx_opts {
        const char *bind;         /**< NULL: 127.0.0.1 */
        int port;                 /**< 0: any free port */
        const char *fixture_path; /**< NULL: start empty */
        uint64_t seed;
        size_t max_body;          /**< 0: SBX_DEFAULT_MAX_BODY */
        size_t log_size;          /**< 0: SBX_DEFAULT_LOG_SIZE */
        const struct sbx_kv *set; /**< --set key=value pairs, copied */
        size_t set_cnt;
        int verbose; /**< log every request */
};

/**
 * @brief Create the modules, load the fixture and start listening.
 * @returns 0 and *sp (caller stops and frees), or -1 with a reason in @p err.
 */
int sbx_server_start(sbx_t **sp, const struct sbx_opts *opts, char *err,
                     size_t errsz);

/** @returns the port the server listens on. */
int sbx_server_port(sbx_t *sbx);

/** @brief Stop: wake every waiter and sleeper, close the connections and
 *         join their threads. Idempotent. */
void sbx_server_stop(sbx_t *sbx);

/** @brief Stop if needed, free the modules and everything else. NULL-safe. */
void sbx_server_free(sbx_t *sbx);

/* ---- shared inside the core ---------------------------------------------- */

/** @brief Sleep @p ms of real time, cut short when the server stops.
 *  Takes no lock. */
void sbx_sleep_ms(sbx_t *sbx, int ms);

/** @brief Note on the request being served by this thread (if @p req is
 *  it) its endpoint class and, if not NULL, the fault applied to it; both
 *  go into the request log and the stats. */
void sbx_req_note(const struct sbx_req *req, const char *endpoint,
                  const char *fault);

/** How a fault spoils the answer a module then writes. */
enum sbx_mangle {
        SBX_MANGLE_NONE = 0,
        SBX_MANGLE_TRUNCATE,  /**< full Content-Length, half the body, close */
        SBX_MANGLE_MALFORMED, /**< half the body, a matching Content-Length */
};

/** @brief Mark the request this thread serves (if @p req is it) so that
 *  its answer is spoiled as @p mode says when sent. */
void sbx_req_mangle(const struct sbx_req *req, enum sbx_mangle mode);

/** @returns 64 pseudo-random bits from @p state (splitmix64). */
uint64_t sbx_rng_next(uint64_t *state);

/* Fault rules: faults.c. Their own lock; never the state lock. */
struct sbx_faults;
struct sbx_faults *sbx_faults_new(uint64_t seed);
void sbx_faults_free(struct sbx_faults *f);
/** @brief Drop every rule. */
void sbx_faults_clear(struct sbx_faults *f);
/** @brief Restart the random streams from @p seed (rules and counters
 *  restart too, so the same traffic after the same seed replays). */
void sbx_faults_seed(struct sbx_faults *f, uint64_t seed);
/**
 * @brief Add one rule (object) or several (array, or {"rules":[...]}).
 * @returns the array of the new rules as listed by sbx_faults_list()
 *          (caller owns), or NULL with a reason in @p err (nothing added).
 */
cJSON *sbx_faults_add(struct sbx_faults *f, const cJSON *json, char *err,
                      size_t errsz);
/** @returns {"rules":[...]} with counters (caller owns). */
cJSON *sbx_faults_list(struct sbx_faults *f);
/** @returns 1 if rule @p id was removed, 0 if there was none. */
int sbx_faults_remove(struct sbx_faults *f, long id);
struct sbx_faults *sbx_faults_of(sbx_t *sbx);

/* The request log and the stats: reqlog.c. Their own lock. */
struct sbx_logentry {
        const char *method, *url, *tenant, *endpoint, *fault;
        const char *call_options, *user_agent; /* NULL when absent */
        const char *body;
        size_t body_len;
        int status; /**< 0 when the connection was reset */
        int64_t time_ms;
        double duration_ms;
};
struct sbx_reqlog;
struct sbx_reqlog *sbx_reqlog_new(size_t cap);
void sbx_reqlog_free(struct sbx_reqlog *l);
/** @brief Record one request (copied) and count it in the stats. */
void sbx_reqlog_add(struct sbx_reqlog *l, const struct sbx_logentry *e);
/**
 * @returns {"requests":[...],"last_seq":N,"dropped":N} of entries with
 *          seq > @p since_seq, filtered by @p tenant and @p endpoint (an
 *          fnmatch pattern) when not NULL, at most @p limit (caller owns).
 */
cJSON *sbx_reqlog_query(struct sbx_reqlog *l, const char *tenant,
                        const char *endpoint, uint64_t since_seq, size_t limit);
/** @brief Forget the entries (the sequence numbers keep counting). */
void sbx_reqlog_clear(struct sbx_reqlog *l);
/** @returns the stats object (caller owns). */
cJSON *sbx_reqlog_stats(struct sbx_reqlog *l);
/** @brief Zero the stats. */
void sbx_reqlog_clear_stats(struct sbx_reqlog *l);

#endif /* OPTSYNC_SANDBOX_SERVER_INTERNAL_H */
