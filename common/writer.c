/*
 * writer.c - the runtime shared by sf-writer and ac-writer: offset tracking,
 * per-person coalescing, the in-process retry schedule, applied markers in
 * Redis, audit and DLQ records, and the consume/step loop.
 */
#include "optsync/writer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "optsync/log.h"
#include "optsync/shutdown.h"
#include "optsync/timeutil.h"

/* ======================================================================
 * Offset tracking
 * ====================================================================== */

/* One partition: the tracked offsets in increasing order, each with a done
 * flag; entries before @c head are finished and forgotten. */
struct opart {
        int used;
        int64_t *off;
        unsigned char *done;
        size_t head, n, cap;
        size_t open;           /* entries not done */
        int64_t last_done_all; /* committable when everything is done */
};

/* All partitions, indexed by partition number (partitions are dense,
 * 0..N-1, so an array is simpler than a map). */
struct osy_offsets_s {
        struct opart *p;
        size_t np;
};

/* Offsets arrive in increasing order per partition and finish in any
 * order; the tracker keeps the window [oldest unfinished, newest seen] as
 * a sorted array with a "done" flag each, and drops the finished prefix. */
osy_offsets_t *osy_offsets_new(void)
{
        return calloc(1, sizeof(osy_offsets_t));
}

void osy_offsets_destroy(osy_offsets_t *o)
{
        if (!o)
                return;
        for (size_t i = 0; i < o->np; i++) {
                free(o->p[i].off);
                free(o->p[i].done);
        }
        free(o->p);
        free(o);
}

/* @returns the partition's window, or NULL when it was never tracked. */
static struct opart *opart_get(const osy_offsets_t *o, int32_t partition)
{
        if (partition < 0 || (size_t)partition >= o->np ||
            !o->p[partition].used)
                return NULL;
        return &o->p[partition];
}

/* @returns the partition's window, growing the array for a new partition
 * number (librdkafka numbers partitions 0..N-1). */
static struct opart *opart_make(osy_offsets_t *o, int32_t partition)
{
        if (partition < 0)
                return NULL;
        if ((size_t)partition >= o->np) {
                size_t np       = (size_t)partition + 1;
                struct opart *p = realloc(o->p, np * sizeof(*p));
                if (!p)
                        return NULL;
                memset(p + o->np, 0, (np - o->np) * sizeof(*p));
                o->p  = p;
                o->np = np;
        }
        struct opart *op = &o->p[partition];
        if (!op->used) {
                op->used          = 1;
                op->last_done_all = -1;
        }
        return op;
}

/* Drops the finished prefix, so the arrays only hold the window between
 * the oldest unfinished offset and the newest tracked one. */
static void opart_compact(struct opart *op)
{
        while (op->head < op->n && op->done[op->head]) {
                op->last_done_all = op->off[op->head];
                op->head++;
        }
        if (op->head == op->n) {
                op->head = op->n = 0;
                return;
        }
        if (op->head > 64 && op->head * 2 > op->n) {
                memmove(op->off, op->off + op->head,
                        (op->n - op->head) * sizeof(*op->off));
                memmove(op->done, op->done + op->head, op->n - op->head);
                op->n -= op->head;
                op->head = 0;
        }
}

/* @returns the index of @p offset in the window, or where it would go. */
static size_t opart_find(const struct opart *op, int64_t offset, int *found)
{
        size_t lo = op->head, hi = op->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (op->off[mid] < offset)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *found = lo < op->n && op->off[lo] == offset;
        return lo;
}

/* Binary search + insert: appends in the usual case (increasing offsets),
 * keeps the window sorted when a seek replays older ones. */
osy_err_t osy_offsets_track(osy_offsets_t *o, int32_t partition, int64_t offset)
{
        struct opart *op = opart_make(o, partition);
        int found;
        size_t at;

        if (!op)
                return OSY_ERR_NOMEM;
        at = opart_find(op, offset, &found);
        if (found)
                return OSY_OK;
        if (op->n == op->cap) {
                size_t cap         = op->cap ? op->cap * 2 : 64;
                int64_t *off       = realloc(op->off, cap * sizeof(*off));
                unsigned char *don = off ? realloc(op->done, cap) : NULL;
                if (off)
                        op->off = off;
                if (!off || !don)
                        return OSY_ERR_NOMEM;
                op->done = don;
                op->cap  = cap;
        }
        memmove(op->off + at + 1, op->off + at,
                (op->n - at) * sizeof(*op->off));
        memmove(op->done + at + 1, op->done + at, op->n - at);
        op->off[at]  = offset;
        op->done[at] = 0;
        op->n++;
        op->open++;
        /* An offset older than what was already finished (a seek back):
         * nothing before it may be stored any more. */
        if (op->last_done_all >= offset)
                op->last_done_all = offset - 1;
        return OSY_OK;
}

/* Marking the oldest unfinished offset done slides the window forward
 * past every finished one behind it. */
void osy_offsets_done(osy_offsets_t *o, int32_t partition, int64_t offset)
{
        struct opart *op = opart_get(o, partition);
        int found;
        size_t at;

        if (!op)
                return;
        at = opart_find(op, offset, &found);
        if (!found || op->done[at])
                return;
        op->done[at] = 1;
        op->open--;
        opart_compact(op);
}

/* Everything before the window's head is finished; with an empty window,
 * the last offset ever finished is. */
int64_t osy_offsets_committable(const osy_offsets_t *o, int32_t partition)
{
        const struct opart *op = opart_get(o, partition);

        if (!op)
                return -1;
        if (op->head < op->n)
                return op->off[op->head] - 1 >= 0 ? op->off[op->head] - 1 : -1;
        return op->last_done_all;
}

size_t osy_offsets_outstanding(const osy_offsets_t *o, int32_t partition)
{
        const struct opart *op = opart_get(o, partition);
        return op ? op->open : 0;
}

void osy_offsets_forget(osy_offsets_t *o, int32_t partition)
{
        struct opart *op = opart_get(o, partition);

        if (!op)
                return;
        free(op->off);
        free(op->done);
        memset(op, 0, sizeof(*op));
}

/* ======================================================================
 * Attempt history
 * ====================================================================== */

void osy_writer_history_add(struct osy_writer_history *h, int attempt,
                            const char *error)
{
        const char *e = error && *error ? error : "(no detail)";

        if (h->n > 0 &&
            !strncmp(h->run[h->n - 1].text, e, sizeof(h->run[0].text) - 1)) {
                h->run[h->n - 1].to = attempt;
                return;
        }
        if (h->n == OSY_WRITER_HIST_RUNS) {
                /* Keep the first three runs (how it started) and make room
                 * at the end (how it is going). */
                memmove(&h->run[3], &h->run[4],
                        (size_t)(OSY_WRITER_HIST_RUNS - 4) * sizeof(h->run[0]));
                h->n--;
                h->dropped++;
        }
        h->run[h->n].from = attempt;
        h->run[h->n].to   = attempt;
        snprintf(h->run[h->n].text, sizeof(h->run[0].text), "%s", e);
        h->n++;
}

/* The text goes into a DLQ record capped at 1 KB: snprintf cuts it, and a
 * cut text is still NUL-terminated. */
void osy_writer_history_format(const struct osy_writer_history *h, char *buf,
                               size_t size)
{
        size_t len = 0;

        if (!size)
                return;
        buf[0] = '\0';
        for (int i = 0; i < h->n && len + 1 < size; i++) {
                int w;
                if (i == 3 && h->dropped > 0) {
                        w = snprintf(buf + len, size - len, "; (%d more)",
                                     h->dropped);
                        len += w > 0 ? (size_t)w : 0;
                        if (len >= size)
                                break;
                }
                if (h->run[i].from == h->run[i].to)
                        w = snprintf(buf + len, size - len, "%s%d) %s",
                                     i ? "; " : "", h->run[i].from,
                                     h->run[i].text);
                else
                        w = snprintf(buf + len, size - len, "%s%d-%d) %s",
                                     i ? "; " : "", h->run[i].from,
                                     h->run[i].to, h->run[i].text);
                len += w > 0 ? (size_t)w : 0;
        }
        if (len >= size)
                buf[size - 1] = '\0';
}

/* ======================================================================
 * The runtime
 * ====================================================================== */

/*
 * The life of one command in the runtime:
 *   feed      decoded and queued (W_QUEUED, due now); its offset is tracked;
 *             a queued older command of the same person is finished as
 *             "coalesced" (newest wins, before any call is made).
 *   step      once due, and the batch is full or has lingered, it goes to
 *             the handler with the other due commands of its tenant, after
 *             the applied-marker check has removed replays.
 *   verdict   finished (W_FINAL), or due again later (retry, deferral).
 *   complete  W_FINAL and every audit/DLQ record of it acknowledged by
 *             Kafka: its offset is marked finished and the item is freed;
 *             the consumer's store moves past it once everything before it
 *             is finished as well.
 * One thread does all of it: the loop, the handler's blocking calls and
 * the delivery callbacks (librdkafka serves them from producer_poll() in
 * this thread), so nothing here takes a lock.
 */
enum wstate {
        W_QUEUED = 0,
        W_FINAL
};

/* One command (or undecodable record) held by the runtime. The public part
 * comes first, so the handler's pointer converts back. */
struct witem {
        struct osy_writer_item pub;
        struct witem *prev, *next; /* every held item, arrival order */
        struct witem *hnext;       /* person hash chain, while queued */
        int in_hash;
        char person[OSY_PARTITION_KEY_BUFSZ];
        int decoded;
        int32_t partition;
        int64_t offset;
        int tracked; /* the offset is in the tracker */
        int orphan;  /* partition revoked: never store its offset */
        unsigned char *key;
        size_t keylen;
        int has_key;
        unsigned char *value;
        size_t len;
        enum wstate state;
        int64_t due_ms;
        struct osy_retry_state rs;
        int64_t first_failed_at, last_failed_at;
        char first_error[OSY_WRITER_TEXT_MAX];
        struct osy_writer_history *hist;
        int acks; /* audit/DLQ deliveries not acknowledged yet */
};

/* One produced audit/DLQ record, kept until acknowledged so that a failed
 * delivery can be sent again. */
struct wout {
        osy_writer_t *w;
        struct witem *it; /* NULL once the item is gone (never, by design) */
        const char *topic;
        char *key;
        size_t keylen;
        char *value;
        size_t len;
        int64_t resend_at;
        struct wout *next;
};

struct wpart {
        int used;
        int64_t stored; /* last offset handed to store, -1 none */
};

#define HASH_BUCKETS 16384

struct osy_writer_s {
        struct osy_writer_opts o;
        char *redis_prefix;
        char *name;
        char *topic; /* the command topic (from the first record) */
        struct witem *head, *tail;
        size_t held, queued;
        struct witem **hash;
        osy_offsets_t *offsets;
        struct wpart *parts;
        size_t nparts;
        struct wout *resend; /* failed deliveries waiting to be resent */
        int paused;
        int64_t last_feed_ms; /* when the latest record was fed */
        struct osy_writer_stats st;
        osy_series_t *m_outcome[OSY_OUTCOME__CNT];
        osy_series_t *m_retries, *m_dlq, *m_pending, *m_batch;
};

/* ---- small helpers ------------------------------------------------------- */

/* Queued commands are indexed by person ("tenant|email") so that a new
 * command finds the one it supersedes in constant time (FNV-1a). */
static uint64_t hash_str(const char *s)
{
        uint64_t h = 1469598103934665603ULL;
        for (; *s; s++) {
                h ^= (unsigned char)*s;
                h *= 1099511628211ULL;
        }
        return h;
}

/* Unlinks @p it from its bucket (a no-op when it is not indexed). */
static void hash_del(osy_writer_t *w, struct witem *it)
{
        struct witem **pp;

        if (!it->in_hash)
                return;
        pp = &w->hash[hash_str(it->person) % HASH_BUCKETS];
        for (; *pp; pp = &(*pp)->hnext)
                if (*pp == it) {
                        *pp = it->hnext;
                        break;
                }
        it->hnext   = NULL;
        it->in_hash = 0;
}

/* @returns the queued command of @p person, or NULL. */
static struct witem *hash_get(osy_writer_t *w, const char *person)
{
        struct witem *it = w->hash[hash_str(person) % HASH_BUCKETS];
        for (; it; it = it->hnext)
                if (!strcmp(it->person, person))
                        return it;
        return NULL;
}

/* Indexes a queued command under its person (at most one per person). */
static void hash_put(osy_writer_t *w, struct witem *it)
{
        struct witem **b = &w->hash[hash_str(it->person) % HASH_BUCKETS];
        it->hnext        = *b;
        *b               = it;
        it->in_hash      = 1;
}

/* What was last handed to the consumer's offset store, per partition, so
 * each store call moves forward and none is repeated. */
static struct wpart *wpart_get(osy_writer_t *w, int32_t partition)
{
        if (partition < 0)
                return NULL;
        if ((size_t)partition >= w->nparts) {
                size_t n         = (size_t)partition + 1;
                struct wpart *np = realloc(w->parts, n * sizeof(*np));
                if (!np)
                        return NULL;
                for (size_t i = w->nparts; i < n; i++) {
                        np[i].used   = 0;
                        np[i].stored = -1;
                }
                w->parts  = np;
                w->nparts = n;
        }
        w->parts[partition].used = 1;
        return &w->parts[partition];
}

/* Frees an item, its copies of the record and the handler's state. */
static void item_free(osy_writer_t *w, struct witem *it)
{
        if (!it)
                return;
        if (it->pub.priv && w->o.handler.free_priv)
                w->o.handler.free_priv(w->o.handler.opaque, it->pub.priv);
        osy_msg_clear(&it->pub.cmd);
        free(it->key);
        free(it->value);
        free(it->hist);
        free(it);
}

/* Takes an item out of the list of held items (the caller frees it). */
static void item_unlink(osy_writer_t *w, struct witem *it)
{
        if (it->prev)
                it->prev->next = it->next;
        else
                w->head = it->next;
        if (it->next)
                it->next->prev = it->prev;
        else
                w->tail = it->prev;
        it->prev = it->next = NULL;
        w->held--;
}

/* Frees an item whose outputs are all acknowledged, marking its offset
 * finished (unless its partition was revoked). */
static void item_maybe_complete(osy_writer_t *w, struct witem *it)
{
        if (it->state != W_FINAL || it->acks > 0)
                return;
        if (it->tracked && !it->orphan)
                osy_offsets_done(w->offsets, it->partition, it->offset);
        item_unlink(w, it);
        item_free(w, it);
        osy_gauge_set(w->m_pending, (double)w->held);
}

/* Gives an item its final outcome: it leaves the queue and the person
 * index at once (a newer command is then written on its own), and is freed
 * once every audit/DLQ record of it is acknowledged. */
static void item_finalize(osy_writer_t *w, struct witem *it,
                          osy_outcome_t outcome)
{
        if (it->state == W_QUEUED) {
                hash_del(w, it);
                w->queued--;
        }
        it->state = W_FINAL;
        if (outcome > OSY_OUTCOME_NONE && outcome < OSY_OUTCOME__CNT)
                osy_counter_inc(w->m_outcome[outcome]);
        item_maybe_complete(w, it);
}

/* ---- outputs (audit, DLQ) ------------------------------------------------ */

/* Frees an output record (after its acknowledgement, or at teardown). */
static void wout_free(struct wout *out)
{
        if (!out)
                return;
        free(out->key);
        free(out->value);
        free(out);
}

/* Delivery report of an output record (defined below). */
static void wout_dr(void *opaque, osy_err_t err, const char *errstr,
                    int32_t partition, int64_t offset);

/* Hands one record to the producer (or to the test's emit function). A
 * refusal (a full local queue) is kept for resending like a failed
 * delivery, so the item simply stays unfinished meanwhile. */
static void wout_send(osy_writer_t *w, struct wout *out)
{
        char errstr[OSY_ERRSTR_SIZE] = "";
        osy_err_t err;

        if (w->o.emit)
                err =
                    w->o.emit(w->o.emit_opaque, out->topic, out->key,
                              out->keylen, out->value, out->len, wout_dr, out);
        else if (w->o.producer)
                err = osy_kafka_produce(w->o.producer, out->topic, out->key,
                                        out->keylen, out->value, out->len,
                                        wout_dr, out, errstr, sizeof(errstr));
        else
                err = osy_err_set(OSY_ERR_INVALID, errstr, sizeof(errstr),
                                  "no producer");
        if (err) {
                /* Not queued, so no callback comes: resend it later. */
                osy_log_warn("%s: produce to %s: %s %s", w->name, out->topic,
                             osy_err2str(err), errstr);
                w->st.emit_failures++;
                out->resend_at = 0; /* set by the caller's clock below */
                out->next      = w->resend;
                w->resend      = out;
        }
}

static void wout_dr(void *opaque, osy_err_t err, const char *errstr,
                    int32_t partition, int64_t offset)
{
        struct wout *out = opaque;
        osy_writer_t *w  = out->w;

        (void)partition;
        (void)offset;
        if (err) {
                /* The item cannot finish without this record: the DLQ copy
                 * is the only trace of a dead command, and every external
                 * write must be audited. Send it again. */
                osy_log_warn("%s: delivery to %s failed (%s), resending",
                             w->name, out->topic, errstr ? errstr : "");
                w->st.emit_failures++;
                out->resend_at = 0;
                out->next      = w->resend;
                w->resend      = out;
                return;
        }
        struct witem *it = out->it;
        wout_free(out);
        if (it) {
                it->acks--;
                item_maybe_complete(w, it);
        }
}

/* Sends again the records whose delivery failed, one second after the
 * failure was noticed: the broker is usually back by then, and a tight
 * loop would only fill the log. */
static void resend_due(osy_writer_t *w, int64_t now_ms)
{
        struct wout *list = w->resend, *keep = NULL;

        w->resend = NULL;
        while (list) {
                struct wout *out = list;
                list             = out->next;
                out->next        = NULL;
                if (out->resend_at == 0)
                        out->resend_at = now_ms + 1000;
                if (out->resend_at > now_ms) {
                        out->next = keep;
                        keep      = out;
                        continue;
                }
                wout_send(w, out);
        }
        /* wout_send() may have pushed new failures onto w->resend. */
        while (keep) {
                struct wout *out = keep;
                keep             = out->next;
                out->next        = w->resend;
                w->resend        = out;
        }
}

/* Encodes @p msg and sends it, counting an ack the item waits for. */
static void emit_msg(osy_writer_t *w, struct witem *it, const char *topic,
                     const void *key, size_t keylen, struct osy_msg *msg)
{
        char errstr[OSY_ERRSTR_SIZE];
        char *json = NULL;
        size_t len = 0;
        osy_err_t err;
        struct wout *out;

        err = osy_msg_encode(msg, &json, &len, errstr, sizeof(errstr));
        if (err) {
                /* Our own message failed validation: a bug, not data. */
                osy_log_error("%s: cannot encode %s: %s", w->name,
                              osy_msg_type2str(msg->type), errstr);
                free(json);
                return;
        }
        out = calloc(1, sizeof(*out));
        if (!out || (keylen && !(out->key = malloc(keylen)))) {
                osy_log_error("%s: out of memory emitting %s", w->name,
                              osy_msg_type2str(msg->type));
                free(json);
                wout_free(out);
                return;
        }
        if (keylen)
                memcpy(out->key, key, keylen);
        out->keylen = keylen;
        out->w      = w;
        out->it     = it;
        out->topic  = topic;
        out->value  = json;
        out->len    = len;
        it->acks++;
        wout_send(w, out);
}

void osy_writer_audit(osy_writer_t *w, struct osy_writer_item *item,
                      const char *action, osy_outcome_t outcome, osy_api_t api,
                      int http_status, int64_t calls, const char *detail,
                      int64_t now_ms)
{
        struct witem *it = (struct witem *)item;
        struct osy_msg m;
        char errstr[OSY_ERRSTR_SIZE], key[OSY_PARTITION_KEY_BUFSZ];
        osy_err_t err;

        if (!it->decoded)
                return;
        osy_msg_init(&m, OSY_MSG_AUDIT);
        err = osy_msg_set_envelope(&m, item->tenant, item->email, w->o.source,
                                   now_ms, errstr, sizeof(errstr));
        if (!err)
                err = osy_msg_strset(&m.audit.action, action);
        if (!err && detail && *detail)
                err =
                    osy_msg_strset_trunc(&m.audit.detail, detail, OSY_TEXT_MAX);
        if (!err)
                err = osy_partition_key(item->tenant, item->email, key,
                                        sizeof(key));
        if (err) {
                osy_log_error("%s: audit: %s", w->name, osy_err2str(err));
                osy_msg_clear(&m);
                return;
        }
        m.audit.stage   = w->o.stage;
        m.audit.outcome = outcome;
        m.audit.rule    = w->o.cmd_type == OSY_MSG_SF_COMMAND
                              ? item->cmd.sf_command.rule
                              : item->cmd.ac_command.rule;
        memcpy(m.audit.ref_id, item->cmd.id, sizeof(m.audit.ref_id));
        if (api != OSY_API_NONE) {
                m.audit.api = api;
                m.audit.http_status =
                    http_status >= 100 && http_status <= 599 ? http_status : 0;
                m.audit.calls = calls > 0 ? calls : 0;
        }
        emit_msg(w, it, w->o.audit_topic, key, strlen(key), &m);
        osy_msg_clear(&m);
}

/* Sends the original record to the DLQ with the history of its errors,
 * then finishes the item (it completes when the DLQ record is acked). */
static void dead_letter(osy_writer_t *w, struct witem *it, const char *reason,
                        const char *last_error, int64_t now_ms)
{
        struct osy_msg m;
        char errstr[OSY_ERRSTR_SIZE], hist[OSY_TEXT_MAX];
        char tenant[OSY_TENANT_MAX + 1] = "", email[OSY_EMAIL_BUFSZ] = "";
        char last[2 * OSY_TEXT_MAX + 64];
        osy_err_t err = OSY_OK;

        osy_msg_init(&m, OSY_MSG_DLQ);
        if (it->decoded) {
                snprintf(tenant, sizeof(tenant), "%s", it->pub.tenant);
                snprintf(email, sizeof(email), "%s", it->pub.email);
        } else {
                (void)osy_msg_peek_person(it->value, it->len, tenant,
                                          sizeof(tenant), email, sizeof(email));
        }
        if (*tenant && *email)
                err = osy_msg_set_envelope(&m, tenant, email, w->o.source,
                                           now_ms, errstr, sizeof(errstr));
        else {
                m.source      = w->o.source;
                m.occurred_at = now_ms;
        }
        if (!it->first_failed_at) {
                it->first_failed_at = now_ms;
                snprintf(it->first_error, sizeof(it->first_error), "%s",
                         last_error);
        }
        /* The last error carries every attempt's error, so the dead letter
         * alone explains what happened. */
        if (it->hist && (it->hist->n > 1 || it->hist->run[0].to > 1)) {
                osy_writer_history_format(it->hist, hist, sizeof(hist));
                snprintf(last, sizeof(last), "%s [attempts: %s]", last_error,
                         hist);
        } else
                snprintf(last, sizeof(last), "%s", last_error);
        m.dlq.stage           = w->o.stage;
        m.dlq.attempts        = it->rs.attempts > 0 ? it->rs.attempts : 1;
        m.dlq.first_failed_at = it->first_failed_at;
        m.dlq.last_failed_at =
            now_ms >= it->first_failed_at ? now_ms : it->first_failed_at;
        if (!err)
                err =
                    osy_msg_strset_trunc(&m.dlq.reason, reason, OSY_REASON_MAX);
        if (!err)
                err = osy_msg_strset_trunc(&m.dlq.first_error,
                                           *it->first_error ? it->first_error
                                                            : last_error,
                                           OSY_TEXT_MAX);
        if (!err)
                err =
                    osy_msg_strset_trunc(&m.dlq.last_error, last, OSY_TEXT_MAX);
        if (!err)
                err = osy_msg_dlq_set_original(&m, w->topic ? w->topic : "?",
                                               it->partition, it->offset,
                                               it->has_key ? it->key : NULL,
                                               it->keylen, it->value, it->len);
        if (err)
                osy_log_error("%s: dead letter p%d@%" PRId64 ": %s", w->name,
                              it->partition, it->offset, osy_err2str(err));
        else
                emit_msg(w, it, w->o.dlq_topic, it->has_key ? it->key : NULL,
                         it->has_key ? it->keylen : 0, &m);
        osy_msg_clear(&m);
        osy_log_warn("%s: dead-lettered p%d@%" PRId64 " (%s): %s", w->name,
                     it->partition, it->offset, reason, last_error);
        w->st.dead_letters++;
        osy_counter_inc(w->m_dlq);
        if (it->decoded)
                osy_writer_audit(w, &it->pub, "dead_letter",
                                 OSY_OUTCOME_DEAD_LETTERED, OSY_API_NONE, 0, 0,
                                 reason, now_ms);
        item_finalize(w, it, OSY_OUTCOME_DEAD_LETTERED);
}

/* ---- life cycle ---------------------------------------------------------- */

static const char *stage_short(osy_stage_t stage)
{
        return osy_stage2str(stage);
}

osy_err_t osy_writer_applied_key(char *buf, size_t size, const char *prefix,
                                 osy_stage_t stage, const char *tenant,
                                 const char *email)
{
        int n = snprintf(buf, size, "%s:%s:applied:{%s}:%s", prefix,
                         stage_short(stage), tenant, email);
        return n < 0 || (size_t)n >= size ? OSY_ERR_TOO_LARGE : OSY_OK;
}

/* The runtime's own series (outcomes, retries, DLQ, held commands, batch
 * sizes); the handlers register the per-API ones. Without a registry every
 * series is NULL, which the update functions accept. */
static osy_err_t metrics_init(osy_writer_t *w, char *errstr, size_t size)
{
        osy_metric_t *m;
        osy_err_t err;
        static const char *const lab1[] = {"worker", NULL};
        static const char *const lab2[] = {"worker", "outcome", NULL};

        if (!w->o.metrics)
                return OSY_OK;
        err = osy_metrics_counter_new(
            w->o.metrics, &m, "optsync_writer_commands_total",
            "Commands finished, by outcome.", lab2, errstr, size);
        if (err)
                return err;
        for (int i = 1; i < OSY_OUTCOME__CNT; i++) {
                const char *v[] = {w->name, osy_outcome2str((osy_outcome_t)i)};
                w->m_outcome[i] = osy_metric_series(m, v);
        }
        const char *v1[] = {w->name};
        if ((err = osy_metrics_counter_new(
                 w->o.metrics, &m, "optsync_writer_retries_total",
                 "Retryable failures scheduled again.", lab1, errstr, size)))
                return err;
        w->m_retries = osy_metric_series(m, v1);
        if ((err = osy_metrics_counter_new(
                 w->o.metrics, &m, "optsync_writer_dlq_total",
                 "Commands sent to the DLQ.", lab1, errstr, size)))
                return err;
        w->m_dlq = osy_metric_series(m, v1);
        if ((err = osy_metrics_gauge_new(
                 w->o.metrics, &m, "optsync_writer_pending",
                 "Commands held in memory (queued, waiting, finishing).", lab1,
                 errstr, size)))
                return err;
        w->m_pending                  = osy_metric_series(m, v1);
        static const double buckets[] = {1, 10, 50, 100, 200, 500, 1000};
        if ((err = osy_metrics_histogram_new(
                 w->o.metrics, &m, "optsync_writer_batch_commands",
                 "Commands per handler batch.", lab1, buckets,
                 sizeof(buckets) / sizeof(*buckets), errstr, size)))
                return err;
        w->m_batch = osy_metric_series(m, v1);
        return OSY_OK;
}

osy_err_t osy_writer_new(osy_writer_t **wp, const struct osy_writer_opts *opts,
                         char *errstr, size_t errstr_size)
{
        osy_writer_t *w = NULL;
        osy_err_t err;

        *wp = NULL;
        if (!opts || !opts->handler.process || !opts->audit_topic ||
            !opts->dlq_topic || !opts->name ||
            (opts->cmd_type != OSY_MSG_SF_COMMAND &&
             opts->cmd_type != OSY_MSG_AC_COMMAND))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "writer: incomplete options");
        if ((err =
                 osy_retry_policy_validate(&opts->retry, errstr, errstr_size)))
                return err;
        w = calloc(1, sizeof(*w));
        if (!w)
                return OSY_ERR_NOMEM;
        w->o = *opts;
        if (!w->o.batch_max)
                w->o.batch_max = 1000;
        if (!w->o.max_pending)
                w->o.max_pending = 20000;
        if (w->o.applied_ttl_ms <= 0)
                w->o.applied_ttl_ms = 7LL * 24 * 3600 * 1000;
        if (w->o.linger_ms < 0)
                w->o.linger_ms = 0;
        w->name = strdup(opts->name);
        w->redis_prefix =
            strdup(opts->redis_prefix ? opts->redis_prefix : "optsync");
        w->hash    = calloc(HASH_BUCKETS, sizeof(*w->hash));
        w->offsets = osy_offsets_new();
        if (!w->name || !w->redis_prefix || !w->hash || !w->offsets) {
                err = OSY_ERR_NOMEM;
                goto out;
        }
        w->o.name         = w->name;
        w->o.redis_prefix = w->redis_prefix;
        if ((err = metrics_init(w, errstr, errstr_size)))
                goto out;
        *wp = w;
        w   = NULL;
out:
        osy_writer_destroy(w);
        return err;
}

void osy_writer_destroy(osy_writer_t *w)
{
        if (!w)
                return;
        while (w->head) {
                struct witem *it = w->head;
                item_unlink(w, it);
                item_free(w, it);
        }
        while (w->resend) {
                struct wout *out = w->resend;
                w->resend        = out->next;
                wout_free(out);
        }
        osy_offsets_destroy(w->offsets);
        free(w->parts);
        free(w->hash);
        free(w->name);
        free(w->redis_prefix);
        free(w->topic);
        free(w);
}

void osy_writer_get_stats(const osy_writer_t *w, struct osy_writer_stats *out)
{
        *out         = w->st;
        out->pending = w->held;
}

int64_t osy_writer_committable(const osy_writer_t *w, int32_t partition)
{
        return osy_offsets_committable(w->offsets, partition);
}

/* ---- offsets and rebalances ---------------------------------------------- */

static void store_offsets(osy_writer_t *w)
{
        char errstr[OSY_ERRSTR_SIZE];

        if (!w->o.consumer || !w->topic)
                return;
        for (size_t p = 0; p < w->nparts; p++) {
                struct wpart *wp = &w->parts[p];
                int64_t c;
                if (!wp->used)
                        continue;
                c = osy_offsets_committable(w->offsets, (int32_t)p);
                if (c < 0 || c <= wp->stored)
                        continue;
                /* Everything up to c is finished (applied, skipped or
                 * dead-lettered, with its audit/DLQ records acked). */
                osy_err_t err = osy_kafka_consumer_store_offset(
                    w->o.consumer, w->topic, (int32_t)p, c, errstr,
                    sizeof(errstr));
                if (err == OSY_OK || err == OSY_ERR_NOT_FOUND)
                        wp->stored = c;
                else
                        osy_log_warn("%s: store offset p%zu@%" PRId64 ": %s",
                                     w->name, p, c, errstr);
        }
}

/* Drops the unfinished commands of a revoked partition: the new owner
 * consumes them again from the stored offset. */
static void drop_partition(osy_writer_t *w, int32_t partition)
{
        struct witem *it = w->head, *next;

        for (; it; it = next) {
                next = it->next;
                if (it->partition != partition || !it->tracked)
                        continue;
                it->orphan = 1;
                if (it->state == W_QUEUED) {
                        hash_del(w, it);
                        w->queued--;
                        it->state = W_FINAL;
                }
                item_maybe_complete(w, it);
        }
        osy_offsets_forget(w->offsets, partition);
        if ((size_t)partition < w->nparts) {
                w->parts[partition].used   = 0;
                w->parts[partition].stored = -1;
        }
}

/* Before partitions go: store what is finished, drop the rest (the new
 * owner consumes it again from the stored offset). */
static void on_revoke(void *opaque, const rd_kafka_topic_partition_list_t *ps)
{
        osy_writer_t *w = opaque;

        store_offsets(w); /* last chance for what is finished */
        for (int i = 0; i < ps->cnt; i++)
                drop_partition(w, ps->elems[i].partition);
        osy_gauge_set(w->m_pending, (double)w->held);
}

/* New partitions start from a clean window: the committed offset is where
 * consumption resumes, whatever this member tracked before. */
static void on_assign(void *opaque, const rd_kafka_topic_partition_list_t *ps)
{
        osy_writer_t *w = opaque;

        for (int i = 0; i < ps->cnt; i++) {
                osy_offsets_forget(w->offsets, ps->elems[i].partition);
                struct wpart *wp = wpart_get(w, ps->elems[i].partition);
                if (wp)
                        wp->stored = -1;
        }
        /* Partitions given to us while we hold too much start paused. */
        if (w->paused && w->o.consumer) {
                rd_kafka_topic_partition_list_t *copy =
                    rd_kafka_topic_partition_list_copy(ps);
                rd_kafka_pause_partitions(
                    osy_kafka_consumer_handle(w->o.consumer), copy);
                rd_kafka_topic_partition_list_destroy(copy);
        }
}

struct osy_kafka_consumer_hooks osy_writer_consumer_hooks(osy_writer_t *w)
{
        struct osy_kafka_consumer_hooks h = {on_assign, on_revoke, w};
        return h;
}

void osy_writer_set_consumer(osy_writer_t *w, osy_kafka_consumer_t *c)
{
        w->o.consumer = c;
}

/* ---- feeding ------------------------------------------------------------- */

/* The type name the writer takes ("sf.command"), for error texts. */
static const char *cmd_type_name(const osy_writer_t *w)
{
        return osy_msg_type2str(w->o.cmd_type);
}

/* The newest-wins version of a command, whichever type it is. */
static const struct osy_version *item_version(const osy_writer_t *w,
                                              const struct witem *it)
{
        return w->o.cmd_type == OSY_MSG_SF_COMMAND
                   ? &it->pub.cmd.sf_command.version
                   : &it->pub.cmd.ac_command.version;
}

osy_err_t osy_writer_feed(osy_writer_t *w, const char *topic, int32_t partition,
                          int64_t offset, const void *key, size_t keylen,
                          const void *value, size_t len, int64_t now_ms)
{
        char errstr[OSY_ERRSTR_SIZE];
        struct witem *it = calloc(1, sizeof(*it));
        osy_err_t err;

        if (!it)
                return OSY_ERR_NOMEM;
        /* A writer consumes one topic; its name is needed to store
         * offsets and to name the original record in dead letters. */
        if (!w->topic && topic && !(w->topic = strdup(topic))) {
                free(it);
                return OSY_ERR_NOMEM;
        }
        it->partition = partition;
        it->offset    = offset;
        it->has_key   = key != NULL;
        it->keylen    = key ? keylen : 0;
        it->len       = len;
        it->key       = malloc(it->keylen + 1);
        it->value     = malloc(len + 1);
        if (!it->key || !it->value || !wpart_get(w, partition)) {
                item_free(w, it);
                return OSY_ERR_NOMEM;
        }
        if (it->keylen)
                memcpy(it->key, key, it->keylen);
        if (len)
                memcpy(it->value, value, len);
        if (osy_offsets_track(w->offsets, partition, offset)) {
                item_free(w, it);
                return OSY_ERR_NOMEM;
        }
        it->tracked     = 1;
        it->due_ms      = now_ms;
        w->last_feed_ms = now_ms;
        it->pub.verdict = OSY_WRITER_UNDECIDED;
        /* The record is copied: the DLQ needs its exact bytes if the
         * command dies, long after librdkafka's message is gone. */
        /* Append to the held list. */
        it->prev = w->tail;
        if (w->tail)
                w->tail->next = it;
        else
                w->head = it;
        w->tail = it;
        w->held++;
        w->queued++;
        w->st.received++;
        osy_gauge_set(w->m_pending, (double)w->held);

        err = osy_msg_decode(value, len, &it->pub.cmd, errstr, sizeof(errstr));
        if (!err && it->pub.cmd.type != w->o.cmd_type) {
                err = osy_err_set(OSY_ERR_INVALID, errstr, sizeof(errstr),
                                  "type: %s on the %s topic",
                                  osy_msg_type2str(it->pub.cmd.type),
                                  cmd_type_name(w));
                osy_msg_clear(&it->pub.cmd);
        }
        if (err) {
                /* Never crash on bad input, never drop it silently. */
                if (err == OSY_ERR_NOMEM)
                        snprintf(errstr, sizeof(errstr), "out of memory");
                dead_letter(w, it, "invalid message", errstr, now_ms);
                return OSY_OK;
        }
        it->decoded    = 1;
        it->pub.tenant = it->pub.cmd.tenant;
        it->pub.email  = it->pub.cmd.email;
        if (osy_partition_key(it->pub.tenant, it->pub.email, it->person,
                              sizeof(it->person)))
                snprintf(it->person, sizeof(it->person), "%s|%s",
                         it->pub.tenant, it->pub.email);

        /* Newest wins: of two queued commands for one person only the
         * newer is written; the older is finished as coalesced. */
        struct witem *old = hash_get(w, it->person);
        if (old) {
                struct witem *loser = old, *winner = it;
                if (osy_version_cmp(item_version(w, it), item_version(w, old)) <
                    0) {
                        loser  = it;
                        winner = old;
                } else
                        hash_del(w, old);
                if (winner == it)
                        hash_put(w, it);
                w->st.coalesced++;
                osy_writer_audit(w, &loser->pub, "coalesce",
                                 OSY_OUTCOME_COALESCED, OSY_API_NONE, 0, 0,
                                 winner->pub.cmd.id, now_ms);
                item_finalize(w, loser, OSY_OUTCOME_COALESCED);
        } else
                hash_put(w, it);
        return OSY_OK;
}

/* ---- stepping ------------------------------------------------------------ */

/*
 * When a batch that is not full may start: LINGER after its first due
 * command, longer while commands are still arriving (a backlog being
 * fetched partition by partition), but never more than 4 x LINGER.
 */
static int64_t flush_at(const osy_writer_t *w, int64_t earliest)
{
        int64_t at    = earliest + w->o.linger_ms;
        int64_t quiet = w->last_feed_ms + w->o.linger_ms / 4;
        int64_t cap   = earliest + 4 * w->o.linger_ms;

        if (quiet > at)
                at = quiet < cap ? quiet : cap;
        return at;
}

int64_t osy_writer_next_wait(const osy_writer_t *w, int64_t now_ms,
                             int64_t cap_ms)
{
        int64_t best = cap_ms, earliest = INT64_MAX;
        size_t due = 0;

        for (const struct witem *it = w->head; it; it = it->next) {
                if (it->state != W_QUEUED)
                        continue;
                if (it->due_ms <= now_ms) {
                        due++;
                        if (it->due_ms < earliest)
                                earliest = it->due_ms;
                } else if (it->due_ms - now_ms < best)
                        best = it->due_ms - now_ms;
        }
        if (due >= w->o.batch_max)
                return 0;
        if (due && flush_at(w, earliest) - now_ms < best)
                best = flush_at(w, earliest) - now_ms;
        if (w->resend && best > 1000)
                best = 1000;
        return best < 0 ? 0 : best;
}

/* Reads the applied markers of @p items (one MGET) and finishes the ones
 * already applied (same version: duplicate) or overtaken (older: stale).
 * Redis trouble only costs the check: applying twice is harmless. */
static void check_applied(osy_writer_t *w, struct witem **items, size_t *np,
                          int64_t now_ms)
{
        size_t n = *np, kept = 0;
        const char **argv;
        char(*keys)[OSY_PARTITION_KEY_BUFSZ + 128];
        redisReply *reply = NULL;
        char errstr[OSY_ERRSTR_SIZE];

        if (!w->o.redis || !n)
                return;
        argv = calloc(n + 1, sizeof(*argv));
        keys = calloc(n, sizeof(*keys));
        if (!argv || !keys)
                goto out;
        argv[0] = "MGET";
        for (size_t i = 0; i < n; i++) {
                if (osy_writer_applied_key(
                        keys[i], sizeof(keys[i]), w->redis_prefix, w->o.stage,
                        items[i]->pub.tenant, items[i]->pub.email))
                        goto out;
                argv[i + 1] = keys[i];
        }
        if (osy_redis_command_argv(w->o.redis, (int)n + 1, argv, NULL, &reply,
                                   errstr, sizeof(errstr))) {
                osy_log_warn("%s: applied markers: %s", w->name, errstr);
                goto out;
        }
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != n)
                goto out;
        /* A marker is "<ms> <tie>" of the newest version applied to the
         * person; anything malformed or missing means "not applied". */
        for (size_t i = 0; i < n; i++) {
                struct witem *it     = items[i];
                const redisReply *el = reply->element[i];
                struct osy_version v = {0, NULL};
                char *end            = NULL;
                int cmp;

                if (el->type != REDIS_REPLY_STRING) {
                        items[kept++] = it;
                        continue;
                }
                errno = 0;
                v.ms  = strtoll(el->str, &end, 10);
                /* Out of range is malformed too: a saturated INT64_MAX
                 * would read as "a newer command was applied" and skip
                 * every command of the person until the marker expires. */
                if (!end || *end != ' ' || end == el->str || errno ||
                    v.ms < 0 || v.ms > OSY_TIME_MAX_MS) {
                        items[kept++] = it;
                        continue;
                }
                v.tie = end + 1;
                cmp   = osy_version_cmp(item_version(w, it), &v);
                if (cmp > 0) {
                        items[kept++] = it;
                        continue;
                }
                osy_outcome_t oc =
                    cmp == 0 ? OSY_OUTCOME_DUPLICATE : OSY_OUTCOME_STALE;
                if (cmp == 0)
                        w->st.duplicates++;
                else
                        w->st.stale++;
                osy_writer_audit(w, &it->pub, "skip", oc, OSY_API_NONE, 0, 0,
                                 cmp == 0 ? "already applied"
                                          : "a newer command was applied",
                                 now_ms);
                item_finalize(w, it, oc);
        }
        *np = kept;
out:
        if (reply)
                freeReplyObject(reply);
        free(argv);
        free(keys);
}

/* Writes the applied markers of the items just applied (one pipeline). */
static void mark_applied(osy_writer_t *w, struct witem **items, size_t n)
{
        char key[OSY_PARTITION_KEY_BUFSZ + 128], val[128], ttl[32];
        char errstr[OSY_ERRSTR_SIZE];
        redisReply **replies;
        size_t queued = 0;

        if (!w->o.redis || !n)
                return;
        replies = calloc(n, sizeof(*replies));
        if (!replies)
                return;
        snprintf(ttl, sizeof(ttl), "%" PRId64, w->o.applied_ttl_ms);
        for (size_t i = 0; i < n; i++) {
                const struct osy_version *v = item_version(w, items[i]);
                if (osy_writer_applied_key(key, sizeof(key), w->redis_prefix,
                                           w->o.stage, items[i]->pub.tenant,
                                           items[i]->pub.email))
                        continue;
                snprintf(val, sizeof(val), "%" PRId64 " %s", v->ms,
                         v->tie ? v->tie : "");
                const char *argv[] = {"SET", key, val, "PX", ttl};
                if (osy_redis_pipeline_append_argv(w->o.redis, 5, argv, NULL,
                                                   errstr, sizeof(errstr)))
                        break;
                queued++;
        }
        if (queued && osy_redis_pipeline_exec(w->o.redis, replies, queued,
                                              errstr, sizeof(errstr)))
                osy_log_warn("%s: applied markers: %s", w->name, errstr);
        osy_redis_replies_free(replies, queued);
        free(replies);
}

/* Acts on the verdict the handler gave one item. */
/*
 * Verdicts, in short: APPLIED and SKIPPED finish the command; DEFER and
 * UNDECIDED only move its due time (no attempt is counted, so waiting for
 * quota or an import never exhausts the retries); RETRY asks the common
 * policy for the next time or gives up to the DLQ; FAILED goes to the DLQ
 * at once. Every failure is added to the command's history first.
 */
static void apply_verdict(osy_writer_t *w, struct witem *it, int64_t now_ms)
{
        struct osy_writer_item *p = &it->pub;
        int64_t delay             = 0;
        osy_retry_verdict_t rv;

        switch (p->verdict) {
        case OSY_WRITER_APPLIED:
                w->st.applied++;
                item_finalize(w, it, OSY_OUTCOME_APPLIED);
                return;
        case OSY_WRITER_SKIPPED:
                w->st.skipped++;
                osy_writer_audit(w, p, "skip", OSY_OUTCOME_SKIPPED,
                                 OSY_API_NONE, 0, 0, p->text, now_ms);
                item_finalize(w, it, OSY_OUTCOME_SKIPPED);
                return;
        case OSY_WRITER_DEFER:
                it->due_ms =
                    p->defer_until_ms > now_ms ? p->defer_until_ms : now_ms;
                return;
        case OSY_WRITER_UNDECIDED:
                it->due_ms = now_ms + 100; /* never a hot loop */
                return;
        case OSY_WRITER_RETRY:
        case OSY_WRITER_FAILED:
                break;
        }
        if (!it->hist && !(it->hist = calloc(1, sizeof(*it->hist))))
                osy_log_warn("%s: no memory for the error history", w->name);
        if (!it->first_failed_at) {
                it->first_failed_at = now_ms;
                snprintf(it->first_error, sizeof(it->first_error), "%s",
                         p->text);
        }
        it->last_failed_at = now_ms;
        if (it->hist)
                osy_writer_history_add(it->hist, it->rs.attempts + 1, p->text);
        if (p->verdict == OSY_WRITER_FAILED) {
                it->rs.attempts++;
                dead_letter(w, it, "permanent error", p->text, now_ms);
                return;
        }
        rv = osy_retry_next(&w->o.retry, &it->rs, p->err, p->retry_after_ms,
                            now_ms, &delay);
        p->attempts = it->rs.attempts;
        if (rv == OSY_RETRY_AGAIN) {
                w->st.retries++;
                osy_counter_inc(w->m_retries);
                it->due_ms = now_ms + delay;
                osy_log_info("%s: %s %s: attempt %d failed (%s), retry in "
                             "%" PRId64 " ms",
                             w->name, p->tenant, p->email, it->rs.attempts,
                             p->text, delay);
                return;
        }
        dead_letter(w, it,
                    rv == OSY_RETRY_PERMANENT ? "permanent error"
                                              : "retries exhausted",
                    p->text, now_ms);
}

/* Runs one batch: the due items of the tenant of the first due item. */
static osy_err_t run_batch(osy_writer_t *w, int64_t now_ms)
{
        /* One tenant per batch: a call goes to one org or account, with
         * its own token, quota and rate limit. Items are taken in arrival
         * order, so tenants take turns across batches. */
        struct witem **items = NULL, **applied = NULL, *it;
        const char *tenant = NULL;
        size_t n = 0, napplied = 0;
        osy_err_t err = OSY_OK;

        items   = calloc(w->o.batch_max, sizeof(*items));
        applied = calloc(w->o.batch_max, sizeof(*applied));
        if (!items || !applied) {
                err = OSY_ERR_NOMEM;
                goto out;
        }
        for (it = w->head; it && n < w->o.batch_max; it = it->next) {
                if (it->state != W_QUEUED || it->due_ms > now_ms)
                        continue;
                if (!tenant)
                        tenant = it->pub.tenant;
                else if (strcmp(tenant, it->pub.tenant))
                        continue;
                items[n++] = it;
        }
        check_applied(w, items, &n, now_ms);
        if (!n)
                goto out;
        for (size_t i = 0; i < n; i++) {
                struct osy_writer_item *p = &items[i]->pub;
                p->verdict                = OSY_WRITER_UNDECIDED;
                p->err                    = OSY_OK;
                p->retry_after_ms         = -1;
                p->defer_until_ms         = 0;
                p->text[0]                = '\0';
                p->attempts               = items[i]->rs.attempts;
        }
        w->st.batches++;
        osy_histogram_observe(w->m_batch, (double)n);
        osy_log_debug("%s: batch of %zu commands of %s (%zu held)", w->name, n,
                      tenant ? tenant : "?", w->held);
        err = w->o.handler.process(w->o.handler.opaque,
                                   (struct osy_writer_item *const *)items, n,
                                   now_ms);
        if (err == OSY_ERR_FATAL)
                goto out;
        if (err) {
                /* Not fatal and not per item: look again in a second. */
                osy_log_warn("%s: batch of %zu: %s", w->name, n,
                             osy_err2str(err));
                for (size_t i = 0; i < n; i++)
                        items[i]->due_ms = now_ms + 1000;
                err = OSY_OK;
                goto out;
        }
        /* Markers before the verdicts, which may free the items. */
        for (size_t i = 0; i < n; i++)
                if (items[i]->pub.verdict == OSY_WRITER_APPLIED)
                        applied[napplied++] = items[i];
        mark_applied(w, applied, napplied);
        for (size_t i = 0; i < n; i++)
                apply_verdict(w, items[i], now_ms);
out:
        free(items);
        free(applied);
        return err;
}

osy_err_t osy_writer_step(osy_writer_t *w, int64_t now_ms, int force)
{
        osy_err_t err = OSY_OK;

        resend_due(w, now_ms);
        /* Bounded rounds: the consumer must be polled again soon. */
        for (int round = 0; round < 64; round++) {
                size_t due       = 0;
                int64_t earliest = INT64_MAX;
                for (struct witem *it = w->head; it; it = it->next) {
                        if (it->state != W_QUEUED || it->due_ms > now_ms)
                                continue;
                        due++;
                        if (it->due_ms < earliest)
                                earliest = it->due_ms;
                }
                if (!due)
                        break;
                /* Linger: wait a little for more commands to batch, unless
                 * a full batch is there already. */
                if (!force && due < w->o.batch_max &&
                    flush_at(w, earliest) > now_ms)
                        break;
                if ((err = run_batch(w, now_ms)))
                        break;
        }
        store_offsets(w);
        osy_gauge_set(w->m_pending, (double)w->held);
        return err;
}

/* Wall-clock ms: audit and DLQ times are wall times, and the retry
 * schedule is compared with the same clock. */
static int64_t wall_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Pauses every assigned partition while too much is held, and resumes
 * below half of it, so memory stays bounded while the API is slow or the
 * quota is spent. */
static void flow_control(osy_writer_t *w)
{
        rd_kafka_topic_partition_list_t *parts = NULL;
        rd_kafka_t *rk;
        int want;

        if (!w->o.consumer)
                return;
        want = w->paused ? w->held >= w->o.max_pending / 2
                         : w->held >= w->o.max_pending;
        if (want == w->paused)
                return;
        rk = osy_kafka_consumer_handle(w->o.consumer);
        if (rd_kafka_assignment(rk, &parts) || !parts)
                return;
        if (want)
                rd_kafka_pause_partitions(rk, parts);
        else
                rd_kafka_resume_partitions(rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        w->paused = want;
        osy_log_info("%s: %s consumption (%zu commands held)", w->name,
                     want ? "paused" : "resumed", w->held);
}

/* Finished commands still waiting for their audit/DLQ acknowledgements. */
static size_t unacked(const osy_writer_t *w)
{
        size_t n = 0;
        for (const struct witem *it = w->head; it; it = it->next)
                if (it->state == W_FINAL)
                        n++;
        return n;
}

osy_err_t osy_writer_run(osy_writer_t *w, int64_t drain_ms,
                         void (*heartbeat)(void *opaque, int64_t now_ms),
                         void *heartbeat_opaque)
{
        char errstr[OSY_ERRSTR_SIZE];
        osy_err_t err = OSY_OK;

        if (!w->o.consumer)
                return osy_err_set(OSY_ERR_INVALID, errstr, sizeof(errstr),
                                   "writer: no consumer");
        /*
         * Each turn: wait for a record at most until something is due
         * (and 100 ms, to notice a shutdown), take whatever else is
         * already fetched (up to a batch), run what is due, serve the
         * delivery reports, store what is finished, and pause or resume
         * consumption by how much is held. A fatal producer or consumer
         * error ends the loop: the process exits and restarts, and what
         * was not stored is consumed again.
         */
        while (!osy_shutdown_requested()) {
                int64_t now = wall_ms();
                size_t got  = 0;
                if (heartbeat)
                        heartbeat(heartbeat_opaque, now);
                int64_t wait = osy_writer_next_wait(w, now, 100);
                rd_kafka_message_t *rkm =
                    osy_kafka_consumer_poll(w->o.consumer, (int)wait);
                while (rkm) {
                        err = osy_writer_feed(
                            w, rd_kafka_topic_name(rkm->rkt), rkm->partition,
                            rkm->offset, rkm->key, rkm->key_len, rkm->payload,
                            rkm->len, wall_ms());
                        rd_kafka_message_destroy(rkm);
                        if (err) {
                                /* Not tracked, so never stored: the record
                                 * comes back after a restart. */
                                osy_log_error("%s: feed: %s", w->name,
                                              osy_err2str(err));
                                return OSY_ERR_FATAL;
                        }
                        if (++got >= w->o.batch_max ||
                            w->held >= w->o.max_pending)
                                break;
                        rkm = osy_kafka_consumer_poll(w->o.consumer, 0);
                }
                if (w->o.producer)
                        osy_kafka_producer_poll(w->o.producer, 0);
                if ((err = osy_writer_step(w, wall_ms(), 0)))
                        return err;
                if (w->o.producer) {
                        osy_kafka_producer_poll(w->o.producer, 0);
                        if (osy_kafka_producer_fatal(w->o.producer, errstr,
                                                     sizeof(errstr))) {
                                osy_log_error("%s: producer: %s", w->name,
                                              errstr);
                                return OSY_ERR_FATAL;
                        }
                }
                if (osy_kafka_consumer_fatal(w->o.consumer, errstr,
                                             sizeof(errstr))) {
                        osy_log_error("%s: consumer: %s", w->name, errstr);
                        return OSY_ERR_FATAL;
                }
                store_offsets(w);
                flow_control(w);
        }
        /* Drain: no new batch starts; wait for the audit/DLQ records of
         * finished commands so their offsets can be stored. Unfinished
         * commands are simply not stored and come back after a restart. */
        int64_t deadline = wall_ms() + drain_ms;
        while (unacked(w) > 0 && wall_ms() < deadline) {
                resend_due(w, wall_ms());
                if (w->o.producer)
                        osy_kafka_producer_poll(w->o.producer, 50);
                else
                        break;
        }
        store_offsets(w);
        osy_log_info("%s: drained, %zu commands left unfinished", w->name,
                     w->queued);
        return OSY_OK;
}

int osy_writer_main_begin(int argc, char **argv, const char *name,
                          osy_config_t **cfg, struct osy_writer_env *env)
{
        char errstr[4096];

        memset(env, 0, sizeof(*env));
        *cfg = NULL;
        /* Kubernetes passes no arguments: everything is in the
         * environment, so any argument is a mistake worth refusing. */
        if (argc > 1) {
                int help = !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h");
                fprintf(help ? stdout : stderr,
                        "Usage: %s\n"
                        "Configuration: OPTSYNC_* environment variables (see "
                        "docs/configuration.md and docs/writers.md).\n",
                        name);
                return help ? 0 : 2;
        }
        if (osy_config_load(cfg, NULL, errstr, sizeof(errstr))) {
                fprintf(stderr, "%s: bad configuration: %s\n", name, errstr);
                return 2;
        }
        osy_log_init(name,
                     (osy_log_level_t)osy_config_enum(*cfg, OSY_CFG_LOG_LEVEL),
                     NULL);
        if (osy_shutdown_install(errstr, sizeof(errstr)) ||
            osy_writer_env_open(env, *cfg, name, errstr, sizeof(errstr))) {
                osy_log_error("%s: %s", name, errstr);
                return 1;
        }
        return OSY_WRITER_MAIN_GO;
}

/* ======================================================================
 * A writer process
 * ====================================================================== */

osy_err_t osy_writer_env_open(struct osy_writer_env *env,
                              const osy_config_t *cfg, const char *name,
                              char *errstr, size_t errstr_size)
{
        const char *file = osy_config_str(cfg, OSY_CFG_TENANTS_FILE);
        size_t n         = 0;
        osy_err_t err;

        memset(env, 0, sizeof(*env));
        env->cfg  = cfg;
        env->name = name;
        if (!*file)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "OPTSYNC_TENANTS_FILE is not set (the "
                                   "tenants and their API credentials)");
        if ((err = osy_tenants_load_file(&env->tenants, file, errstr,
                                         errstr_size)))
                return err;
        if ((err = osy_topic_names_init(
                 &env->topics, osy_config_str(cfg, OSY_CFG_KAFKA_TOPIC_PREFIX),
                 errstr, errstr_size)))
                return err;
        if (!(env->metrics = osy_metrics_new()))
                return OSY_ERR_NOMEM;

        struct osy_redis_opts ropts = {
            .host     = osy_config_str(cfg, OSY_CFG_REDIS_HOST),
            .port     = (int)osy_config_int(cfg, OSY_CFG_REDIS_PORT),
            .password = osy_config_str(cfg, OSY_CFG_REDIS_PASSWORD),
            .db       = (int)osy_config_int(cfg, OSY_CFG_REDIS_DB),
            .connect_timeout_ms =
                (int)osy_config_ms(cfg, OSY_CFG_REDIS_CONNECT_TIMEOUT),
            .command_timeout_ms =
                (int)osy_config_ms(cfg, OSY_CFG_REDIS_COMMAND_TIMEOUT)};
        if ((err = osy_redis_connect(&env->redis, &ropts, errstr, errstr_size)))
                return err;

        snprintf(env->timeout, sizeof(env->timeout), "%lld",
                 (long long)osy_config_ms(cfg, OSY_CFG_KAFKA_PRODUCE_TIMEOUT));
        n = osy_config_kafka_security(cfg, env->extra, n);
        /* The consumer's own settings; the producer ignores them. */
        int64_t sess = osy_config_ms(cfg, OSY_CFG_WRITER_SESSION_TIMEOUT);
        snprintf(env->session, sizeof(env->session), "%lld", (long long)sess);
        snprintf(env->heartbeat, sizeof(env->heartbeat), "%lld",
                 (long long)(sess / 10 > 100 ? sess / 10 : 100));
        size_t nprod    = n;
        env->extra[n++] = "session.timeout.ms";
        env->extra[n++] = env->session;
        env->extra[n++] = "heartbeat.interval.ms";
        env->extra[n++] = env->heartbeat;
        /* Prefetch at most 8 MB: a writer waiting for its quota must not
         * buffer the whole topic. */
        env->extra[n++]      = "queued.max.messages.kbytes";
        env->extra[n++]      = "8192";
        env->kopts.bootstrap = osy_config_str(cfg, OSY_CFG_KAFKA_BOOTSTRAP);
        env->kopts.client_id = name;
        env->kopts.extra     = env->extra;
        /* message.timeout.ms only means something to the producer. */
        const char *pextra[OSY_WRITER_ENV_EXTRA + 2];
        memcpy(pextra, env->extra, nprod * sizeof(*pextra));
        pextra[nprod]               = "message.timeout.ms";
        pextra[nprod + 1]           = env->timeout;
        pextra[nprod + 2]           = NULL;
        env->extra[n]               = NULL;
        struct osy_kafka_opts popts = env->kopts;
        popts.extra                 = pextra;
        /* Audit and DLQ records are acknowledged with acks=all by the
         * idempotent producer before a command counts as finished; a
         * delivery that cannot be made in message.timeout.ms fails and is
         * sent again by the runtime. */
        if ((err = osy_kafka_producer_new(&env->producer, &popts, errstr,
                                          errstr_size)))
                return err;

        env->retry.base_ms      = osy_config_ms(cfg, OSY_CFG_RETRY_BASE);
        env->retry.max_delay_ms = osy_config_ms(cfg, OSY_CFG_RETRY_MAX_DELAY);
        env->retry.max_attempts =
            (int)osy_config_int(cfg, OSY_CFG_RETRY_MAX_ATTEMPTS);
        env->retry.max_age_ms = osy_config_ms(cfg, OSY_CFG_RETRY_MAX_AGE);
        env->retry.retry_after_cap_ms =
            osy_config_ms(cfg, OSY_CFG_RETRY_AFTER_CAP);
        env->http.connect_timeout_ms =
            (long)osy_config_ms(cfg, OSY_CFG_HTTP_CONNECT_TIMEOUT);
        env->http.timeout_ms = (long)osy_config_ms(cfg, OSY_CFG_HTTP_TIMEOUT);
        env->http.max_body = (size_t)osy_config_int(cfg, OSY_CFG_HTTP_MAX_BODY);
        return OSY_OK;
}

osy_err_t osy_writer_env_start(struct osy_writer_env *env,
                               struct osy_writer_opts *opts,
                               const char *group_id, osy_topic_t topic,
                               char *errstr, size_t errstr_size)
{
        const osy_config_t *cfg = env->cfg;
        const char *topics[]    = {env->topics.name[topic], NULL};
        struct osy_kafka_consumer_hooks hooks;
        struct osy_admin_opts aopts;
        osy_err_t err;

        opts->audit_topic    = env->topics.name[OSY_TOPIC_AUDIT];
        opts->dlq_topic      = env->topics.name[OSY_TOPIC_DLQ];
        opts->producer       = env->producer;
        opts->redis          = env->redis;
        opts->redis_prefix   = osy_config_str(cfg, OSY_CFG_REDIS_KEY_PREFIX);
        opts->applied_ttl_ms = osy_config_ms(cfg, OSY_CFG_WRITER_APPLIED_TTL);
        opts->retry          = env->retry;
        opts->batch_max = (size_t)osy_config_int(cfg, OSY_CFG_WRITER_BATCH_MAX);
        opts->linger_ms = osy_config_ms(cfg, OSY_CFG_WRITER_LINGER);
        opts->max_pending =
            (size_t)osy_config_int(cfg, OSY_CFG_WRITER_MAX_PENDING);
        opts->metrics = env->metrics;
        if ((err = osy_writer_new(&env->writer, opts, errstr, errstr_size)))
                return err;
        /* The runtime must see every revoke before the partitions go (to
         * store what is finished and drop the rest), so its hooks are
         * registered when the consumer is made. */
        hooks = osy_writer_consumer_hooks(env->writer);
        if ((err = osy_kafka_consumer_new(&env->consumer, &env->kopts, group_id,
                                          topics, &hooks, errstr, errstr_size)))
                return err;
        osy_writer_set_consumer(env->writer, env->consumer);

        memset(&aopts, 0, sizeof(aopts));
        aopts.bind_addr = osy_config_str(cfg, OSY_CFG_ADMIN_ADDR);
        aopts.port      = (int)osy_config_int(cfg, OSY_CFG_ADMIN_PORT);
        aopts.metrics   = env->metrics;
        aopts.heartbeat_timeout_ms = 60000;
        if ((err = osy_admin_start(&env->admin, &aopts, errstr, errstr_size)))
                return err;
        /* One line tests and scripts can wait for. */
        printf("admin_port=%d\n", osy_admin_port(env->admin));
        fflush(stdout);
        return OSY_OK;
}

/* The admin server's liveness: the loop turned (on its own clock). */
static void env_heartbeat(void *opaque, int64_t now_ms)
{
        (void)now_ms;
        osy_admin_heartbeat(opaque, osy_admin_now_ms());
}

int osy_writer_env_run(struct osy_writer_env *env)
{
        int64_t grace = osy_config_ms(env->cfg, OSY_CFG_SHUTDOWN_GRACE);
        osy_err_t err;

        osy_log_info("%s: running", env->name);
        /* Half the grace drains deliveries; closing the consumer (commit,
         * leave the group) takes the rest. */
        err = osy_writer_run(env->writer, grace / 2, env_heartbeat, env->admin);
        if (err) {
                osy_log_error("%s: stopping: %s", env->name, osy_err2str(err));
                return 1;
        }
        osy_log_info("%s: shutting down (signal %d)", env->name,
                     osy_shutdown_signal());
        return 0;
}

void osy_writer_env_close(struct osy_writer_env *env)
{
        char errstr[OSY_ERRSTR_SIZE];

        if (env->consumer) {
                if (osy_kafka_consumer_close(env->consumer, errstr,
                                             sizeof(errstr)))
                        osy_log_warn("%s: consumer close: %s", env->name,
                                     errstr);
                osy_kafka_consumer_destroy(env->consumer);
                env->consumer = NULL;
        }
        if (env->writer)
                osy_writer_set_consumer(env->writer, NULL);
        osy_kafka_producer_destroy(env->producer);
        env->producer = NULL;
        osy_writer_destroy(env->writer);
        env->writer = NULL;
        osy_admin_stop(env->admin);
        env->admin = NULL;
        osy_redis_destroy(env->redis);
        env->redis = NULL;
        osy_metrics_destroy(env->metrics);
        env->metrics = NULL;
        osy_tenants_destroy(env->tenants);
        env->tenants = NULL;
}
