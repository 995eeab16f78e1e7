/*
 * store.c - sf-ingest's Redis state (see store.h for the key layout): small
 * reads, and batched writes in one MULTI/EXEC so a batch's replay id,
 * watermark and record states move together.
 */
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optsync/timeutil.h"

#define KEY_MAX 512
#define STATE_CHUNK 500 /* HMGETs per round trip */

struct osy_sfi_store_s {
        osy_redis_t *redis; /* borrowed */
        char *base;         /* "P:sfi:T:" */
        int64_t ttl_ms;
        size_t queued; /* commands in the open transaction, MULTI included */
        int in_tx;
};

osy_err_t osy_sfi_store_new(osy_sfi_store_t **sp, osy_redis_t *redis,
                            const char *prefix, const char *tenant,
                            int64_t record_ttl_ms, char *errstr,
                            size_t errstr_size)
{
        osy_sfi_store_t *s;
        size_t n;

        *sp = NULL;
        if (!redis || !prefix || !tenant || record_ttl_ms <= 0)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "sf-ingest store: bad arguments");
        if (!(s = calloc(1, sizeof(*s))))
                return OSY_ERR_NOMEM;
        n       = strlen(prefix) + strlen(tenant) + sizeof(":sfi::");
        s->base = malloc(n);
        if (!s->base) {
                free(s);
                return OSY_ERR_NOMEM;
        }
        snprintf(s->base, n, "%s:sfi:%s:", prefix, tenant);
        s->redis  = redis;
        s->ttl_ms = record_ttl_ms;
        *sp       = s;
        return OSY_OK;
}

void osy_sfi_store_destroy(osy_sfi_store_t *s)
{
        if (!s)
                return;
        free(s->base);
        free(s);
}

/* "P:sfi:T:<name>", refusing (not cutting) a name that does not fit. */
static osy_err_t make_key(const osy_sfi_store_t *s, const char *name, char *key,
                          char *errstr, size_t errstr_size)
{
        if ((size_t)snprintf(key, KEY_MAX, "%s%s", s->base, name) >= KEY_MAX)
                return osy_err_set(OSY_ERR_TOO_LARGE, errstr, errstr_size,
                                   "sf-ingest store: key too long");
        return OSY_OK;
}

osy_err_t osy_sfi_store_get(osy_sfi_store_t *s, const char *name, char *buf,
                            size_t size, char *errstr, size_t errstr_size)
{
        char key[KEY_MAX];
        const char *argv[] = {"GET", key};
        redisReply *r      = NULL;
        osy_err_t err;

        buf[0] = '\0';
        if ((err = make_key(s, name, key, errstr, errstr_size)) ||
            (err = osy_redis_command_argv(s->redis, 2, argv, NULL, &r, errstr,
                                          errstr_size)))
                return err;
        if (r->type == REDIS_REPLY_NIL)
                err = OSY_ERR_NOT_FOUND;
        else if (r->type != REDIS_REPLY_STRING)
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "sf-ingest store: %s is not a string", key);
        else if (r->len >= size)
                err = osy_err_set(OSY_ERR_TOO_LARGE, errstr, errstr_size,
                                  "sf-ingest store: %s is too long", key);
        else
                memcpy(buf, r->str, r->len + 1);
        freeReplyObject(r);
        return err;
}

osy_err_t osy_sfi_store_get_ms(osy_sfi_store_t *s, const char *name,
                               int64_t *out, char *errstr, size_t errstr_size)
{
        char buf[32], *end = NULL;
        long long v;
        osy_err_t err;

        if ((err = osy_sfi_store_get(s, name, buf, sizeof(buf), errstr,
                                     errstr_size)))
                return err;
        errno = 0;
        v     = strtoll(buf, &end, 10);
        /* A time in ms: callers subtract overlaps from it and format it,
         * so a negative or far too large value is refused here, not left
         * to overflow there. */
        if (errno || end == buf || *end || v < 0 || v > OSY_TIME_MAX_MS)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "sf-ingest store: %s%s is not a time in "
                                   "ms (0..%" PRId64 ")",
                                   s->base, name, OSY_TIME_MAX_MS);
        *out = v;
        return OSY_OK;
}

/* Discards whatever is queued and not sent (an exec of 0 commands with a
 * queue resets it; with a failed pipeline it clears the error). */
static void pipeline_drop(osy_sfi_store_t *s)
{
        if (osy_redis_pipeline_exec(s->redis, NULL, 0, NULL, 0) != OSY_OK) {
                /* Reported and reset: nothing else to do. */
        }
}

/* "1"/"0" back to a tri-state; a missing field (nil) is UNSET. */
static osy_tri_t tri_of(const redisReply *r)
{
        if (!r || r->type != REDIS_REPLY_STRING || r->len != 1)
                return OSY_TRI_UNSET;
        return r->str[0] == '1'   ? OSY_TRI_TRUE
               : r->str[0] == '0' ? OSY_TRI_FALSE
                                  : OSY_TRI_UNSET;
}

/* HMGET o c e -> a record state; any field present makes it "known". */
static void state_from_reply(const redisReply *r, struct osy_sfi_recstate *st)
{
        memset(st, 0, sizeof(*st));
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3)
                return;
        st->opt_out      = tri_of(r->element[0]);
        st->is_converted = tri_of(r->element[1]);
        if (r->element[2]->type == REDIS_REPLY_STRING &&
            r->element[2]->len < sizeof(st->email))
                memcpy(st->email, r->element[2]->str, r->element[2]->len + 1);
        st->known = st->opt_out != OSY_TRI_UNSET ||
                    st->is_converted != OSY_TRI_UNSET || st->email[0];
}

osy_err_t osy_sfi_store_get_states(osy_sfi_store_t *s,
                                   const char (*ids)[OSY_SFI_ID_BUFSZ],
                                   size_t n, struct osy_sfi_recstate *out,
                                   char *errstr, size_t errstr_size)
{
        redisReply *replies[STATE_CHUNK];
        osy_err_t err = OSY_OK;

        if (s->in_tx) {
                /* A read abandons an unfinished transaction. */
                pipeline_drop(s);
                s->in_tx = 0;
        }
        /* Pipelined in chunks: one round trip per STATE_CHUNK records,
         * and a bounded number of replies held at once. */
        for (size_t base = 0; base < n && !err; base += STATE_CHUNK) {
                size_t cnt = n - base < STATE_CHUNK ? n - base : STATE_CHUNK;

                for (size_t i = 0; i < cnt && !err; i++) {
                        char key[KEY_MAX], name[64];
                        const char *argv[] = {"HMGET", key, "o", "c", "e"};

                        snprintf(name, sizeof(name), "rec:%s", ids[base + i]);
                        if (!(err =
                                  make_key(s, name, key, errstr, errstr_size)))
                                err = osy_redis_pipeline_append_argv(
                                    s->redis, 5, argv, NULL, errstr,
                                    errstr_size);
                }
                if (err) {
                        pipeline_drop(s);
                        break;
                }
                if ((err = osy_redis_pipeline_exec(s->redis, replies, cnt,
                                                   errstr, errstr_size)))
                        break;
                for (size_t i = 0; i < cnt; i++) {
                        if (!err && (err = osy_redis_reply_err(
                                         replies[i], errstr, errstr_size)))
                                continue;
                        state_from_reply(replies[i], &out[base + i]);
                }
                osy_redis_replies_free(replies, cnt);
        }
        return err;
}

/* ---- transaction ------------------------------------------------------ */

/* Queues one command of the open transaction (counted for exec). */
static osy_err_t tx_append(osy_sfi_store_t *s, int argc, const char **argv,
                           char *errstr, size_t errstr_size)
{
        osy_err_t err;

        if (!s->in_tx)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "sf-ingest store: no transaction open");
        err = osy_redis_pipeline_append_argv(s->redis, argc, argv, NULL, errstr,
                                             errstr_size);
        if (!err)
                s->queued++;
        return err;
}

osy_err_t osy_sfi_store_begin(osy_sfi_store_t *s, char *errstr,
                              size_t errstr_size)
{
        const char *argv[] = {"MULTI"};

        /* Whatever an abandoned transaction left queued (or a failed
         * append left as an error) goes: it was never sent. */
        pipeline_drop(s);
        s->in_tx  = 1;
        s->queued = 0;
        return tx_append(s, 1, argv, errstr, errstr_size);
}

void osy_sfi_store_abort(osy_sfi_store_t *s)
{
        pipeline_drop(s);
        s->in_tx  = 0;
        s->queued = 0;
}

osy_err_t osy_sfi_store_set(osy_sfi_store_t *s, const char *name,
                            const char *value, char *errstr, size_t errstr_size)
{
        char key[KEY_MAX];
        const char *argv[] = {"SET", key, value};
        osy_err_t err;

        if ((err = make_key(s, name, key, errstr, errstr_size)))
                return err;
        return tx_append(s, 3, argv, errstr, errstr_size);
}

osy_err_t osy_sfi_store_set_ms(osy_sfi_store_t *s, const char *name,
                               int64_t value, char *errstr, size_t errstr_size)
{
        char buf[32];

        snprintf(buf, sizeof(buf), "%lld", (long long)value);
        return osy_sfi_store_set(s, name, buf, errstr, errstr_size);
}

osy_err_t osy_sfi_store_del(osy_sfi_store_t *s, const char *name, char *errstr,
                            size_t errstr_size)
{
        char key[KEY_MAX];
        const char *argv[] = {"DEL", key};
        osy_err_t err;

        if ((err = make_key(s, name, key, errstr, errstr_size)))
                return err;
        return tx_append(s, 2, argv, errstr, errstr_size);
}

osy_err_t osy_sfi_store_state(osy_sfi_store_t *s,
                              const struct osy_sfi_state_update *u,
                              char *errstr, size_t errstr_size)
{
        char key[KEY_MAX], name[64], ttl[32];
        const char *argv[8];
        int argc = 0;
        osy_err_t err;

        if (!osy_sfi_id_valid(u->record_id))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "sf-ingest store: bad record id");
        if (!u->opt_out && !u->is_converted && !u->email[0])
                return OSY_OK;
        snprintf(name, sizeof(name), "rec:%s", u->record_id);
        if ((err = make_key(s, name, key, errstr, errstr_size)))
                return err;
        argv[argc++] = "HSET";
        argv[argc++] = key;
        if (u->opt_out) {
                argv[argc++] = "o";
                argv[argc++] = u->opt_out == OSY_TRI_TRUE ? "1" : "0";
        }
        if (u->is_converted) {
                argv[argc++] = "c";
                argv[argc++] = u->is_converted == OSY_TRI_TRUE ? "1" : "0";
        }
        if (u->email[0]) {
                argv[argc++] = "e";
                argv[argc++] = u->email;
        }
        if ((err = tx_append(s, argc, argv, errstr, errstr_size)))
                return err;
        /* Every write renews the TTL: records that keep changing stay
         * cached, forgotten ones age out. */
        snprintf(ttl, sizeof(ttl), "%lld", (long long)s->ttl_ms);
        argv[0] = "PEXPIRE";
        argv[1] = key;
        argv[2] = ttl;
        return tx_append(s, 3, argv, errstr, errstr_size);
}

osy_err_t osy_sfi_store_exec(osy_sfi_store_t *s, char *errstr,
                             size_t errstr_size)
{
        const char *argv[] = {"EXEC"};
        redisReply **replies;
        size_t n;
        osy_err_t err;

        if ((err = tx_append(s, 1, argv, errstr, errstr_size))) {
                s->in_tx = 0;
                return err;
        }
        s->in_tx = 0;
        n        = s->queued;
        if (!(replies = calloc(n, sizeof(*replies))))
                return OSY_ERR_NOMEM;
        err =
            osy_redis_pipeline_exec(s->redis, replies, n, errstr, errstr_size);
        if (err)
                goto out;
        /* MULTI: +OK, each command: +QUEUED (or an error), EXEC: the array
         * of results, or nil when the server discarded the transaction. */
        for (size_t i = 0; i < n && !err; i++)
                err = osy_redis_reply_err(replies[i], errstr, errstr_size);
        if (!err && (replies[n - 1]->type != REDIS_REPLY_ARRAY))
                err = osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                  "sf-ingest store: transaction discarded");
        for (size_t i = 0; !err && i < replies[n - 1]->elements; i++)
                err = osy_redis_reply_err(replies[n - 1]->element[i], errstr,
                                          errstr_size);
        osy_redis_replies_free(replies, n);
out:
        free(replies);
        return err;
}
