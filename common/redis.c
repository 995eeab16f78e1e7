/*
 * redis.c - a hiredis 0.14 synchronous connection that reconnects by
 * itself, pipelines, and Lua scripts run by SHA with NOSCRIPT recovery.
 */
#include "optsync/redis.h"
#include "optsync/log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include <openssl/sha.h>

/*
 * One connection and what is needed to rebuild it. The options are copied
 * so that a reconnect long after osy_redis_connect() does not depend on
 * the caller's config strings still being alive.
 */
struct osy_redis_s {
        redisContext *ctx; /* NULL while disconnected */
        char *host;
        char *password; /* NULL: no AUTH; wiped on destroy */
        int port;
        int db;
        struct timeval connect_tv;
        struct timeval command_tv;
        size_t pending;     /* commands appended, not yet exec'd */
        osy_err_t pipe_err; /* first error of a discarded pipeline */
        char pipe_errstr[OSY_ERRSTR_SIZE];
        struct osy_redis_stats stats;
};

/* Immutable after osy_redis_script_new(): no lock needed to share it. */
struct osy_redis_script_s {
        char *source; /* kept for SCRIPT LOAD after NOSCRIPT */
        size_t len;
        char sha[41]; /* 40 hex digits + NUL */
};

/*
 * hiredis 0.14 writes with write(2), so writing to a connection the server
 * has closed raises SIGPIPE, which kills a process that did not ignore it.
 * A library must not change the process's signal dispositions, so the
 * signal is blocked on this thread around our I/O and a SIGPIPE we caused
 * is consumed before unblocking. The write then fails with EPIPE, which is
 * an ordinary I/O error for us.
 */
struct sigpipe_guard {
        sigset_t old;
        int was_pending;
};

static void sigpipe_block(struct sigpipe_guard *g)
{
        sigset_t set, pending;

        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        /* A SIGPIPE already pending is not ours: leave it be. */
        sigemptyset(&pending);
        sigpending(&pending);
        g->was_pending = sigismember(&pending, SIGPIPE) == 1;
        pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

static void sigpipe_unblock(struct sigpipe_guard *g)
{
        sigset_t set, pending;

        sigemptyset(&pending);
        sigpending(&pending);
        /* Ours: consume it now, or unblocking would deliver it. */
        if (!g->was_pending && sigismember(&pending, SIGPIPE) == 1) {
                struct timespec zero = {0, 0};
                sigemptyset(&set);
                sigaddset(&set, SIGPIPE);
                while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
                        ;
        }
        pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

static struct timeval ms_to_tv(int ms)
{
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        return tv;
}

/* Does the error text @p s (length @p len) start with the word @p w?
 * Redis puts its error class first ("NOSCRIPT No matching script"); a
 * whole-word match keeps "NOSCRIPTS" or a script's own message from being
 * mistaken for a class. */
static int err_word_is(const char *s, size_t len, const char *w)
{
        size_t wl = strlen(w);

        return len >= wl && !memcmp(s, w, wl) && (len == wl || s[wl] == ' ');
}

osy_err_t osy_redis_reply_err(const redisReply *reply, char *errstr,
                              size_t errstr_size)
{
        static const char *const transient[] = {
            "LOADING",  "BUSY",        "TRYAGAIN", "MASTERDOWN",
            "READONLY", "CLUSTERDOWN", "OOM",      NULL};
        const char *s;
        size_t len;

        if (!reply || reply->type != REDIS_REPLY_ERROR)
                return OSY_OK;
        s   = reply->str ? reply->str : "";
        len = reply->str ? (size_t)reply->len : 0;
        osy_err_set(OSY_OK, errstr, errstr_size, "%.*s", (int)len, s);
        /* NOT_FOUND, not INVALID: osy_redis_eval() must tell "load it
         * and retry" from a script that failed. */
        if (err_word_is(s, len, "NOSCRIPT"))
                return OSY_ERR_NOT_FOUND;
        if (err_word_is(s, len, "NOAUTH") || err_word_is(s, len, "WRONGPASS") ||
            err_word_is(s, len, "NOPERM"))
                return OSY_ERR_AUTH;
        /* Passing states of a healthy deployment: a server loading its
         * data, a script running long, a replica promoted mid-failover. */
        for (size_t i = 0; transient[i]; i++)
                if (err_word_is(s, len, transient[i]))
                        return OSY_ERR_TRANSIENT;
        /* We speak to one node and do not follow cluster redirects: the
         * same command would be redirected again. */
        if (err_word_is(s, len, "MOVED") || err_word_is(s, len, "ASK"))
                return OSY_ERR_PERMANENT;
        /* ERR, WRONGTYPE, script errors: the request itself is wrong and
         * would fail the same way again. */
        return OSY_ERR_INVALID;
}

/* Forget the connection after an I/O error: hiredis contexts are unusable
 * once err is set, and the next call reconnects. */
static void drop_connection(osy_redis_t *r, const char *why)
{
        if (!r->ctx)
                return;
        osy_log_warn("redis %s:%d: connection dropped: %s", r->host, r->port,
                     why);
        redisFree(r->ctx);
        r->ctx     = NULL;
        r->pending = 0;
        r->stats.disconnects++;
}

/* Why the context @p c failed, in words: a read or write that hit the
 * socket timeout surfaces from hiredis as EAGAIN's strerror. */
static void ctx_reason(const osy_redis_t *r, const redisContext *c, char *buf,
                       size_t size)
{
        if (!c || !c->err)
                snprintf(buf, size, "no reply");
        else if (c->err == REDIS_ERR_IO &&
                 strstr(c->errstr, "temporarily unavailable"))
                snprintf(buf, size, "timed out after %ld ms",
                         (long)(r->command_tv.tv_sec * 1000 +
                                r->command_tv.tv_usec / 1000));
        else
                snprintf(buf, size, "%s", c->errstr);
}

/* Report the context's I/O error as TRANSIENT and drop the connection. */
static osy_err_t io_error(osy_redis_t *r, const char *what, char *errstr,
                          size_t errstr_size)
{
        char detail[160];
        osy_err_t err = OSY_ERR_TRANSIENT;

        if (r->ctx && r->ctx->err == REDIS_ERR_OOM)
                err = OSY_ERR_NOMEM;
        ctx_reason(r, r->ctx, detail, sizeof(detail));
        osy_err_set(err, errstr, errstr_size, "redis %s:%d: %s: %s", r->host,
                    r->port, what, detail);
        drop_connection(r, detail);
        return err;
}

/* One command during the handshake on a fresh context @p c. */
static osy_err_t handshake(osy_redis_t *r, redisContext *c, int argc,
                           const char **argv, char *errstr, size_t errstr_size)
{
        char msg[OSY_ERRSTR_SIZE];
        redisReply *reply = redisCommandArgv(c, argc, argv, NULL);
        osy_err_t err;

        if (!reply) {
                ctx_reason(r, c, msg, sizeof(msg));
                return osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                   "redis %s:%d: %s: %s", r->host, r->port,
                                   argv[0], msg);
        }
        r->stats.replies++;
        err = osy_redis_reply_err(reply, msg, sizeof(msg));
        freeReplyObject(reply);
        if (err == OSY_OK)
                return OSY_OK;
        if (!strcmp(argv[0], "AUTH")) {
                /* Whatever the server says, AUTH failing is a credentials
                 * problem. Redis does not echo the password, but keep only
                 * the first word should another server do so. */
                if (r->password && strstr(msg, r->password))
                        msg[strcspn(msg, " ")] = '\0';
                err = OSY_ERR_AUTH;
        } else if (!strcmp(argv[0], "PING") && err == OSY_ERR_AUTH) {
                return osy_err_set(err, errstr, errstr_size,
                                   "redis %s:%d: server requires a password "
                                   "and none is configured (%s)",
                                   r->host, r->port, msg);
        }
        return osy_err_set(err, errstr, errstr_size, "redis %s:%d: %s: %s",
                           r->host, r->port, argv[0], msg);
}

/* Open a connection and bring it to the state callers expect: the
 * command timeout set, authenticated, the right database selected. AUTH
 * comes first because a server with requirepass refuses SELECT before it.
 * Only a fully prepared context is stored in @p r, so no command can ever
 * run unauthenticated or in db 0 by mistake. */
static osy_err_t do_connect(osy_redis_t *r, char *errstr, size_t errstr_size)
{
        struct sigpipe_guard guard;
        redisContext *c;
        osy_err_t err = OSY_OK;
        char dbbuf[24];

        sigpipe_block(&guard);
        c = redisConnectWithTimeout(r->host, r->port, r->connect_tv);
        if (!c) {
                err =
                    osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                "redis %s:%d: out of memory", r->host, r->port);
                goto out;
        }
        if (c->err) {
                err = osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                  "redis %s:%d: connect: %s", r->host, r->port,
                                  c->errstr);
                goto out;
        }
        /* Without this a stuck server blocks the worker forever. */
        if (redisSetTimeout(c, r->command_tv) != REDIS_OK) {
                err = osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                  "redis %s:%d: set timeout: %s", r->host,
                                  r->port, c->errstr);
                goto out;
        }
        if (r->password) {
                const char *argv[] = {"AUTH", r->password};
                if ((err = handshake(r, c, 2, argv, errstr, errstr_size)))
                        goto out;
        }
        if (r->db != 0) {
                const char *argv[] = {"SELECT", dbbuf};
                snprintf(dbbuf, sizeof(dbbuf), "%d", r->db);
                if ((err = handshake(r, c, 2, argv, errstr, errstr_size)))
                        goto out;
        }
        if (!r->password && r->db == 0) {
                /* Nothing was sent yet: make sure this is a Redis that
                 * will serve us, so a missing password fails here. */
                const char *argv[] = {"PING"};
                if ((err = handshake(r, c, 1, argv, errstr, errstr_size)))
                        goto out;
        }
        r->ctx = c;
        c      = NULL; /* owned by r now */
        r->stats.connects++;
out:
        if (c)
                redisFree(c);
        sigpipe_unblock(&guard);
        if (err)
                r->stats.connect_failures++;
        return err;
}

/* Reconnect if the last connection was dropped. */
static osy_err_t ensure_connected(osy_redis_t *r, char *errstr,
                                  size_t errstr_size)
{
        osy_err_t err;

        if (r->ctx)
                return OSY_OK;
        err = do_connect(r, errstr, errstr_size);
        if (err == OSY_OK)
                osy_log_info("redis %s:%d: reconnected", r->host, r->port);
        else
                osy_log_debug("redis %s:%d: reconnect failed (%s)", r->host,
                              r->port, osy_err2str(err));
        return err;
}

static osy_err_t check_opts(const struct osy_redis_opts *o, char *errstr,
                            size_t errstr_size)
{
        if (!o)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "redis: no options");
        if (!o->host || !*o->host)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "redis: host is required");
        if (o->port < 1 || o->port > 65535)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "redis: port %d is not in 1..65535",
                                   o->port);
        if (o->db < 0)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "redis: db %d is negative", o->db);
        if (o->connect_timeout_ms < 0 || o->command_timeout_ms < 0)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "redis: timeouts must not be negative");
        return OSY_OK;
}

osy_err_t osy_redis_connect(osy_redis_t **rp, const struct osy_redis_opts *opts,
                            char *errstr, size_t errstr_size)
{
        osy_redis_t *r = NULL;
        osy_err_t err;

        if (!rp)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "redis: no handle pointer");
        *rp = NULL;
        if ((err = check_opts(opts, errstr, errstr_size)))
                goto out;
        /* The first connect is eager: a wrong password or db is a config
         * error the worker should report at startup, not at its first
         * command. Later connects are lazy (ensure_connected()). */
        err = OSY_ERR_NOMEM;
        if (!(r = calloc(1, sizeof(*r))) || !(r->host = strdup(opts->host)))
                goto nomem;
        if (opts->password && *opts->password) {
                if (!(r->password = strdup(opts->password)))
                        goto nomem;
                /* Masked in every log line from now on, even in a
                 * server message that quoted it. */
                osy_log_add_secret(r->password);
        }
        r->port = opts->port;
        r->db   = opts->db;
        r->connect_tv =
            ms_to_tv(opts->connect_timeout_ms ? opts->connect_timeout_ms
                                              : OSY_REDIS_CONNECT_TIMEOUT_MS);
        r->command_tv =
            ms_to_tv(opts->command_timeout_ms ? opts->command_timeout_ms
                                              : OSY_REDIS_COMMAND_TIMEOUT_MS);
        if ((err = do_connect(r, errstr, errstr_size)))
                goto out;
        *rp = r;
        r   = NULL; /* the caller owns it now */
        err = OSY_OK;
        goto out;
nomem:
        err = osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                          "redis: out of memory");
out:
        osy_redis_destroy(r);
        return err;
}

void osy_redis_destroy(osy_redis_t *r)
{
        if (!r)
                return;
        if (r->ctx)
                redisFree(r->ctx);
        /* Do not leave the password in freed heap memory (core dumps). */
        if (r->password) {
                explicit_bzero(r->password, strlen(r->password));
                free(r->password);
        }
        free(r->host);
        free(r);
}

int osy_redis_is_connected(const osy_redis_t *r)
{
        return r && r->ctx != NULL;
}

void osy_redis_get_stats(const osy_redis_t *r, struct osy_redis_stats *out)
{
        if (r)
                *out = r->stats;
        else
                memset(out, 0, sizeof(*out));
}

osy_err_t osy_redis_command_argv(osy_redis_t *r, int argc, const char **argv,
                                 const size_t *argvlen, redisReply **reply,
                                 char *errstr, size_t errstr_size)
{
        struct sigpipe_guard guard;
        redisReply *rep;
        osy_err_t err;

        if (reply)
                *reply = NULL;
        if (!r || argc < 1 || !argv || !argv[0] || !reply)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "redis: bad command arguments");
        /* A command read now would consume the first pipelined reply. */
        if (r->pending)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "redis: a pipeline is pending");
        /* A pipeline that failed to queue and was never exec'd: the caller
         * gave up on it, and nothing of it is in the output buffer. */
        r->pipe_err = OSY_OK;
        if ((err = ensure_connected(r, errstr, errstr_size)))
                return err;
        sigpipe_block(&guard);
        rep = redisCommandArgv(r->ctx, argc, argv, argvlen);
        sigpipe_unblock(&guard);
        /* No reply: the command may or may not have run (it could have
         * been written before the connection broke). Replaying it here
         * could apply an INCR twice, so report TRANSIENT and let the
         * caller, who knows whether it is idempotent, retry. */
        if (!rep)
                return io_error(r, argv[0], errstr, errstr_size);
        r->stats.replies++;
        if (rep->type == REDIS_REPLY_ERROR) {
                char msg[OSY_ERRSTR_SIZE];
                err = osy_redis_reply_err(rep, msg, sizeof(msg));
                if (err == OSY_ERR_NOT_FOUND)
                        r->stats.noscript++;
                freeReplyObject(rep);
                return osy_err_set(err, errstr, errstr_size, "redis %s: %s",
                                   argv[0], msg);
        }
        *reply = rep;
        return OSY_OK;
}

/* Throw the queued commands away; they live in hiredis's output buffer,
 * which only a fresh connection empties. */
static void pipeline_discard(osy_redis_t *r, osy_err_t err, const char *msg)
{
        if (r->pending)
                drop_connection(r, "pipeline discarded");
        r->pending = 0;
        if (!r->pipe_err) {
                r->pipe_err = err;
                snprintf(r->pipe_errstr, sizeof(r->pipe_errstr), "%s", msg);
        }
}

osy_err_t osy_redis_pipeline_append_argv(osy_redis_t *r, int argc,
                                         const char **argv,
                                         const size_t *argvlen, char *errstr,
                                         size_t errstr_size)
{
        char msg[OSY_ERRSTR_SIZE];
        osy_err_t err;

        if (!r || argc < 1 || !argv || !argv[0])
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "redis: bad command arguments");
        /* After an error every append fails the same way, quickly, until
         * exec reports it: no reconnect attempt per queued command. */
        if (r->pipe_err)
                return osy_err_set(r->pipe_err, errstr, errstr_size, "%s",
                                   r->pipe_errstr);
        if (r->pending == 0 && (err = ensure_connected(r, msg, sizeof(msg)))) {
                pipeline_discard(r, err, msg);
                return osy_err_set(err, errstr, errstr_size, "%s", msg);
        }
        if (redisAppendCommandArgv(r->ctx, argc, argv, argvlen) != REDIS_OK) {
                osy_err_set(OSY_ERR_NOMEM, msg, sizeof(msg),
                            "redis %s:%d: cannot queue %s: out of memory",
                            r->host, r->port, argv[0]);
                pipeline_discard(r, OSY_ERR_NOMEM, msg);
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size, "%s",
                                   msg);
        }
        r->pending++;
        return OSY_OK;
}

size_t osy_redis_pipeline_pending(const osy_redis_t *r)
{
        return r ? r->pending : 0;
}

void osy_redis_replies_free(redisReply **replies, size_t n)
{
        if (!replies)
                return;
        for (size_t i = 0; i < n; i++) {
                if (replies[i])
                        freeReplyObject(replies[i]);
                replies[i] = NULL;
        }
}

/* Read @p n replies of commands already queued (the first read writes
 * whatever is still unsent). On failure nothing is kept and the
 * connection is dropped. */
static osy_err_t read_replies(osy_redis_t *r, redisReply **replies, size_t n,
                              char *errstr, size_t errstr_size)
{
        struct sigpipe_guard guard;
        size_t got = 0;

        sigpipe_block(&guard);
        for (got = 0; got < n; got++) {
                void *rep = NULL;
                if (redisGetReply(r->ctx, &rep) != REDIS_OK || !rep) {
                        if (rep)
                                freeReplyObject(rep);
                        break;
                }
                replies[got] = rep;
                r->stats.replies++;
                if (replies[got]->type == REDIS_REPLY_ERROR &&
                    osy_redis_reply_err(replies[got], NULL, 0) ==
                        OSY_ERR_NOT_FOUND)
                        r->stats.noscript++;
        }
        sigpipe_unblock(&guard);
        /* A partial batch is useless to the caller, who cannot know which
         * of the rest ran: free what arrived and report the whole as
         * TRANSIENT; the caller decides whether resending is safe. */
        if (got < n) {
                char what[64];
                snprintf(what, sizeof(what), "pipeline reply %zu of %zu",
                         got + 1, n);
                osy_redis_replies_free(replies, got);
                return io_error(r, what, errstr, errstr_size);
        }
        r->pending -= n;
        return OSY_OK;
}

/* A discarded pipeline is reported once, then forgotten. */
static osy_err_t report_discarded(osy_redis_t *r, char *errstr,
                                  size_t errstr_size)
{
        osy_err_t err = r->pipe_err;

        r->pipe_err = OSY_OK;
        return osy_err_set(err, errstr, errstr_size, "pipeline discarded: %s",
                           r->pipe_errstr);
}

/* What exec and recv check first: the arguments (the slots are emptied),
 * then a discarded pipeline, reported once. */
static osy_err_t read_begin(osy_redis_t *r, redisReply **replies, size_t n,
                            char *errstr, size_t errstr_size)
{
        if (!r || (n && !replies))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "redis: bad pipeline arguments");
        for (size_t i = 0; i < n; i++)
                replies[i] = NULL;
        if (r->pipe_err)
                return report_discarded(r, errstr, errstr_size);
        return OSY_OK;
}

osy_err_t osy_redis_pipeline_exec(osy_redis_t *r, redisReply **replies,
                                  size_t n, char *errstr, size_t errstr_size)
{
        osy_err_t err = read_begin(r, replies, n, errstr, errstr_size);

        if (err)
                return err;
        if (n != r->pending) {
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "redis: pipeline exec of %zu but %zu queued",
                                  n, r->pending);
                pipeline_discard(r, OSY_ERR_INVALID, "");
                r->pipe_err = OSY_OK; /* reported right here */
                return err;
        }
        if (n == 0)
                return OSY_OK;
        /* The first redisGetReply() writes the whole buffer, then every
         * reply is read in order: one round trip for the batch. */
        return read_replies(r, replies, n, errstr, errstr_size);
}

osy_err_t osy_redis_pipeline_recv(osy_redis_t *r, redisReply **replies,
                                  size_t n, char *errstr, size_t errstr_size)
{
        osy_err_t err;

        if (!n)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "redis: bad pipeline arguments");
        if ((err = read_begin(r, replies, n, errstr, errstr_size)))
                return err;
        if (n > r->pending)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "redis: %zu replies wanted but %zu queued",
                                   n, r->pending);
        return read_replies(r, replies, n, errstr, errstr_size);
}

osy_err_t osy_redis_pipeline_send(osy_redis_t *r, char *errstr,
                                  size_t errstr_size)
{
        struct sigpipe_guard guard;
        char msg[OSY_ERRSTR_SIZE];
        int done = 0;

        if (!r)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "redis: bad pipeline arguments");
        if (r->pipe_err || !r->pending || !r->ctx)
                return OSY_OK; /* exec reports whatever happened */
        sigpipe_block(&guard);
        while (!done)
                if (redisBufferWrite(r->ctx, &done) != REDIS_OK)
                        break;
        sigpipe_unblock(&guard);
        if (done)
                return OSY_OK;
        io_error(r, "pipeline send", msg, sizeof(msg));
        pipeline_discard(r, OSY_ERR_TRANSIENT, msg);
        return osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size, "%s", msg);
}

osy_err_t osy_redis_script_new(osy_redis_script_t **sp, const char *source,
                               char *errstr, size_t errstr_size)
{
        unsigned char md[SHA_DIGEST_LENGTH];
        osy_redis_script_t *s;

        if (!sp)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "redis script: no handle pointer");
        *sp = NULL;
        if (!source || !*source)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "redis script: empty source");
        if (!(s = calloc(1, sizeof(*s))) || !(s->source = strdup(source))) {
                osy_redis_script_destroy(s);
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "redis script: out of memory");
        }
        s->len = strlen(source);
        /* Redis names a script by the SHA1 of its exact text: computing it
         * here needs no round trip and no connection, and SCRIPT LOAD's
         * answer is checked against it. */
        SHA1((const unsigned char *)s->source, s->len, md);
        for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
                snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
        *sp = s;
        return OSY_OK;
}

void osy_redis_script_destroy(osy_redis_script_t *s)
{
        if (!s)
                return;
        free(s->source);
        free(s);
}

const char *osy_redis_script_sha(const osy_redis_script_t *s)
{
        return s ? s->sha : "";
}

osy_err_t osy_redis_script_load(osy_redis_t *r, const osy_redis_script_t *s,
                                char *errstr, size_t errstr_size)
{
        const char *argv[] = {"SCRIPT", "LOAD", NULL};
        size_t argvlen[]   = {6, 4, 0};
        redisReply *reply  = NULL;
        osy_err_t err;

        if (!r || !s)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "redis: bad script arguments");
        argv[2]    = s->source;
        argvlen[2] = s->len;
        r->stats.script_loads++;
        err = osy_redis_command_argv(r, 3, argv, argvlen, &reply, errstr,
                                     errstr_size);
        if (err)
                return err;
        /* A different answer means our local SHA1 and the server's
         * disagree, and every EVALSHA would end in NOSCRIPT. */
        if (reply->type != REDIS_REPLY_STRING || reply->len != 40 ||
            strncasecmp(reply->str, s->sha, 40) != 0)
                err = osy_err_set(OSY_ERR_PERMANENT, errstr, errstr_size,
                                  "redis %s:%d: SCRIPT LOAD answered another "
                                  "SHA1 than %s",
                                  r->host, r->port, s->sha);
        freeReplyObject(reply);
        return err;
}

osy_err_t osy_redis_eval(osy_redis_t *r, const osy_redis_script_t *s, int nkeys,
                         const char *const *keys, int nargs,
                         const char *const *args, redisReply **reply,
                         char *errstr, size_t errstr_size)
{
        const char **argv = NULL;
        char numkeys[16];
        osy_err_t err;
        int argc;

        if (reply)
                *reply = NULL;
        if (!r || !s || !reply || nkeys < 0 || nargs < 0 || (nkeys && !keys) ||
            (nargs && !args))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "redis: bad EVALSHA arguments");
        argc = 3 + nkeys + nargs;
        if (!(argv = calloc((size_t)argc, sizeof(*argv))))
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "redis: out of memory");
        /* EVALSHA sha numkeys key... arg...: borrowed pointers only. */
        snprintf(numkeys, sizeof(numkeys), "%d", nkeys);
        argv[0] = "EVALSHA";
        argv[1] = s->sha;
        argv[2] = numkeys;
        for (int i = 0; i < nkeys; i++)
                argv[3 + i] = keys[i];
        for (int i = 0; i < nargs; i++)
                argv[3 + nkeys + i] = args[i];

        err = osy_redis_command_argv(r, argc, argv, NULL, reply, errstr,
                                     errstr_size);
        if (err != OSY_ERR_NOT_FOUND)
                goto out;
        /* NOSCRIPT: the server lost its script cache (SCRIPT FLUSH, a
         * restart, a failover). Load and retry exactly once, so a server
         * that keeps forgetting cannot loop us. */
        osy_log_debug("redis %s:%d: NOSCRIPT for %s, loading it", r->host,
                      r->port, s->sha);
        if ((err = osy_redis_script_load(r, s, errstr, errstr_size)))
                goto out;
        err = osy_redis_command_argv(r, argc, argv, NULL, reply, errstr,
                                     errstr_size);
out:
        free(argv);
        return err;
}
