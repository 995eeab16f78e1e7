/*
 * redis.h - one synchronous Redis connection that reconnects by itself
 * (AUTH + SELECT again), pipelines, and Lua scripts run by SHA.
 */
#ifndef OPTSYNC_REDIS_H
#define OPTSYNC_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "optsync/err.h"

/** A Redis connection handle. Not thread-safe: one per thread. */
typedef struct osy_redis_s osy_redis_t;

/** A Lua script, known by its SHA1. Immutable: share it across handles
 *  and threads freely. */
typedef struct osy_redis_script_s osy_redis_script_t;

/** Defaults used when a timeout field is 0. */
#define OSY_REDIS_CONNECT_TIMEOUT_MS 2000
#define OSY_REDIS_COMMAND_TIMEOUT_MS 1000

/** Where and how to connect. Strings are copied by osy_redis_connect(). */
struct osy_redis_opts {
        const char *host;       /**< name or address, required */
        int port;               /**< 1..65535 */
        const char *password;   /**< NULL or "": no AUTH. Never logged. */
        int db;                 /**< SELECTed on every (re)connect, >= 0 */
        int connect_timeout_ms; /**< 0: OSY_REDIS_CONNECT_TIMEOUT_MS */
        int command_timeout_ms; /**< per reply; 0: ..._COMMAND_TIMEOUT_MS */
};

/** Counters, for metrics and for tests that must see a path taken. */
struct osy_redis_stats {
        uint64_t connects;         /**< successful (re)connects */
        uint64_t connect_failures; /**< failed (re)connect attempts */
        uint64_t disconnects;      /**< connections dropped after I/O errors */
        uint64_t replies;          /**< replies received (errors included) */
        uint64_t script_loads;     /**< SCRIPT LOAD sent */
        uint64_t noscript;         /**< NOSCRIPT replies seen */
};

/**
 * @brief Validate @p opts, connect, AUTH, SELECT (or PING when neither
 *        is needed, so a server that wants a password is caught here).
 *
 * The password is registered with osy_log_add_secret(). After a
 * connection is lost (I/O error, EOF, timeout) the next call on the
 * handle reconnects before it sends anything; the failed call itself is
 * never replayed, since it may have been executed.
 *
 * @param rp receives the handle (caller destroys it), NULL on error.
 * @returns OSY_OK; OSY_ERR_INVALID for bad options or a refused SELECT;
 *          OSY_ERR_AUTH when the password is missing or wrong (the text
 *          never contains it); OSY_ERR_TRANSIENT when the server cannot
 *          be reached (errstr names host:port); OSY_ERR_NOMEM.
 */
osy_err_t osy_redis_connect(osy_redis_t **rp, const struct osy_redis_opts *opts,
                            char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/** @brief Close and free @p r. NULL-safe. */
void osy_redis_destroy(osy_redis_t *r);

/** @returns 1 if a connection is open now (it may still be dead). */
int osy_redis_is_connected(const osy_redis_t *r);

/** @brief Copy the counters of @p r into @p out. */
void osy_redis_get_stats(const osy_redis_t *r, struct osy_redis_stats *out);

/**
 * @brief Classify a reply. NULL or non-error replies are OSY_OK.
 *
 * NOSCRIPT -> OSY_ERR_NOT_FOUND; NOAUTH, WRONGPASS, NOPERM -> OSY_ERR_AUTH;
 * LOADING, BUSY, TRYAGAIN, MASTERDOWN, READONLY, CLUSTERDOWN, OOM ->
 * OSY_ERR_TRANSIENT (a failover or a restart in progress); MOVED, ASK ->
 * OSY_ERR_PERMANENT (we do not follow cluster redirects); anything else
 * (ERR, WRONGTYPE, script errors) -> OSY_ERR_INVALID. The server's
 * message goes to @p errstr.
 */
osy_err_t osy_redis_reply_err(const redisReply *reply, char *errstr,
                              size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Send one command and wait for its reply.
 *
 * @param argv,argvlen the arguments; argvlen may be NULL (strlen is used).
 * @param reply receives the reply on OSY_OK only (caller frees it with
 *              freeReplyObject()); NULL otherwise. Error replies are
 *              classified by osy_redis_reply_err() and freed here.
 * @returns OSY_OK; OSY_ERR_TRANSIENT on I/O errors and timeouts (the
 *          connection is dropped; the next call reconnects); the class of
 *          an error reply; OSY_ERR_INVALID if a pipeline is pending.
 */
osy_err_t osy_redis_command_argv(osy_redis_t *r, int argc, const char **argv,
                                 const size_t *argvlen, redisReply **reply,
                                 char *errstr,
                                 size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Queue one command locally (no I/O) for osy_redis_pipeline_exec().
 *
 * The first append of a pipeline reconnects if needed. On any error the
 * whole pipeline is discarded: later appends fail at once with the same
 * error, and the next osy_redis_pipeline_exec() reports it (nothing is
 * sent) and resets the pipeline, as does any osy_redis_command_argv().
 */
osy_err_t osy_redis_pipeline_append_argv(osy_redis_t *r, int argc,
                                         const char **argv,
                                         const size_t *argvlen, char *errstr,
                                         size_t errstr_size) OSY_MUSTCHECK;

/** @returns the number of commands queued and not yet executed. */
size_t osy_redis_pipeline_pending(const osy_redis_t *r);

/**
 * @brief Send every queued command in one write and read all replies.
 *
 * @param replies array of @p n slots; on OSY_OK slot i holds the reply of
 *                the i-th appended command, owned by the caller (free with
 *                osy_redis_replies_free()). Error replies stay in their
 *                slot: classify each with osy_redis_reply_err(). On error
 *                every slot is NULL.
 * @param n       must equal osy_redis_pipeline_pending().
 * @returns OSY_OK; OSY_ERR_TRANSIENT on I/O errors (nothing is known about
 *          which commands ran; the connection is dropped); OSY_ERR_INVALID
 *          if @p n does not match (the queue is discarded).
 */
osy_err_t osy_redis_pipeline_exec(osy_redis_t *r, redisReply **replies,
                                  size_t n, char *errstr,
                                  size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Write every queued command now, without waiting for replies:
 *        the server works on them while the caller does something else;
 *        osy_redis_pipeline_exec() later reads the replies (the queue
 *        stays pending until then). Writes as much as the socket takes,
 *        blocking (up to the command timeout) only when it is full.
 * @returns OSY_OK; OSY_ERR_TRANSIENT on I/O errors (the connection is
 *          dropped and the pipeline discarded: the next exec reports it).
 */
osy_err_t osy_redis_pipeline_send(osy_redis_t *r, char *errstr,
                                  size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Read the replies of the @p n oldest queued commands, leaving the
 *        rest queued: for callers that keep several sends in flight on
 *        one connection (osy_redis_pipeline_send() each, then one recv
 *        per send, in order). Errors as osy_redis_pipeline_exec(); after
 *        one, every queued command is gone with the connection.
 * @returns OSY_OK; OSY_ERR_TRANSIENT; OSY_ERR_INVALID if fewer than @p n
 *          are queued (nothing is read).
 */
osy_err_t osy_redis_pipeline_recv(osy_redis_t *r, redisReply **replies,
                                  size_t n, char *errstr,
                                  size_t errstr_size) OSY_MUSTCHECK;

/** @brief freeReplyObject() each of the @p n slots and NULL it. */
void osy_redis_replies_free(redisReply **replies, size_t n);

/**
 * @brief Make a script from its Lua source; its SHA1 is computed here, so
 *        no connection is needed and any handle can run it.
 * @param sp receives the script (caller destroys it).
 * @returns OSY_OK, OSY_ERR_INVALID (empty source) or OSY_ERR_NOMEM.
 */
osy_err_t osy_redis_script_new(osy_redis_script_t **sp, const char *source,
                               char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/** @brief Free @p s. NULL-safe. */
void osy_redis_script_destroy(osy_redis_script_t *s);

/** @returns the script's SHA1 as 40 lowercase hex digits (owned by @p s),
 *           for callers that pipeline EVALSHA themselves. */
const char *osy_redis_script_sha(const osy_redis_script_t *s);

/**
 * @brief SCRIPT LOAD @p s on the server of @p r (for callers that pipeline
 *        EVALSHA and got NOSCRIPT). osy_redis_eval() does this by itself.
 * @returns OSY_OK, or the error of the command; OSY_ERR_PERMANENT if the
 *          server answers with another SHA1.
 */
osy_err_t osy_redis_script_load(osy_redis_t *r, const osy_redis_script_t *s,
                                char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Run @p s with EVALSHA. On NOSCRIPT (SCRIPT FLUSH, a restart, a
 *        failover to a replica that never saw it) SCRIPT LOAD it and retry
 *        once.
 * @param keys,args NUL-terminated strings, @p nkeys and @p nargs of them.
 * @param reply receives the script's reply on OSY_OK (caller frees it).
 * @returns as osy_redis_command_argv(); an error raised by the script is
 *          OSY_ERR_INVALID with its message in @p errstr.
 */
osy_err_t osy_redis_eval(osy_redis_t *r, const osy_redis_script_t *s, int nkeys,
                         const char *const *keys, int nargs,
                         const char *const *args, redisReply **reply,
                         char *errstr, size_t errstr_size) OSY_MUSTCHECK;

#endif /* OPTSYNC_REDIS_H */
