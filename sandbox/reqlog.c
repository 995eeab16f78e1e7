/*
 * reqlog.c - the request log (a bounded ring of the last N API requests,
 * read by tests through /sandbox/requests) and the request counters behind
 * /sandbox/stats. One short lock; strings copied into one block per entry.
 */
#include "server_internal.h"

#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Request bodies are kept up to this much: enough to check what a client
 * sent, bounded so the ring stays small. */
#define LOG_BODY_MAX 4096
#define STAT_ENDPOINT_MAX 48

/* One logged request; an empty slot has buf == NULL. */
struct entry {
        uint64_t seq;
        int64_t time_ms;
        double duration_ms;
        int status;
        int body_truncated;
        size_t body_len;
        char *buf; /* one block: the strings below point into it */
        const char *method, *url, *tenant, *endpoint, *fault;
        const char *call_options, *user_agent, *body;
};

/* One (endpoint class, status) counter. */
struct stat_row {
        char endpoint[STAT_ENDPOINT_MAX];
        int status;
        uint64_t n;
};

struct sbx_reqlog {
        pthread_mutex_t lock;
        struct entry *ring;
        size_t cap, head, cnt; /* head: where the next entry goes */
        uint64_t next_seq;
        uint64_t dropped; /* entries pushed out of the ring */
        struct stat_row *rows;
        size_t row_cnt, row_cap;
        uint64_t total;
        struct {
                char kind[16];
                uint64_t n;
        } faults[16];
        size_t fault_cnt;
};

struct sbx_reqlog *sbx_reqlog_new(size_t cap)
{
        struct sbx_reqlog *l = calloc(1, sizeof(*l));

        if (!l)
                return NULL;
        if (!(l->ring = calloc(cap ? cap : 1, sizeof(*l->ring)))) {
                free(l);
                return NULL;
        }
        pthread_mutex_init(&l->lock, NULL);
        l->cap      = cap ? cap : 1;
        l->next_seq = 1;
        return l;
}

/* Empty the ring (lock held). */
static void clear_locked(struct sbx_reqlog *l)
{
        for (size_t i = 0; i < l->cap; i++) {
                free(l->ring[i].buf);
                memset(&l->ring[i], 0, sizeof(l->ring[i]));
        }
        l->head = 0;
        l->cnt  = 0;
}

void sbx_reqlog_free(struct sbx_reqlog *l)
{
        if (!l)
                return;
        clear_locked(l);
        free(l->ring);
        free(l->rows);
        pthread_mutex_destroy(&l->lock);
        free(l);
}

void sbx_reqlog_clear(struct sbx_reqlog *l)
{
        pthread_mutex_lock(&l->lock);
        clear_locked(l);
        l->dropped = 0;
        pthread_mutex_unlock(&l->lock);
}

void sbx_reqlog_clear_stats(struct sbx_reqlog *l)
{
        pthread_mutex_lock(&l->lock);
        l->row_cnt   = 0;
        l->total     = 0;
        l->fault_cnt = 0;
        pthread_mutex_unlock(&l->lock);
}

/* Copy @p s (may be NULL) to *pos, pointing *out at it. */
static void put(char **pos, const char *s, size_t len, const char **out)
{
        if (!s) {
                *out = NULL;
                return;
        }
        memcpy(*pos, s, len);
        (*pos)[len] = '\0';
        *out        = *pos;
        *pos += len + 1;
}

/* The stats side of sbx_reqlog_add() (lock held). */
static void count_locked(struct sbx_reqlog *l, const struct sbx_logentry *e)
{
        size_t i;

        l->total++;
        /* A handful of (endpoint, status) pairs: a scan is cheapest. */
        for (i = 0; i < l->row_cnt; i++)
                if (l->rows[i].status == e->status &&
                    !strcmp(l->rows[i].endpoint, e->endpoint))
                        break;
        if (i == l->row_cnt) {
                if (l->row_cnt == l->row_cap) {
                        size_t ncap = l->row_cap ? l->row_cap * 2 : 32;
                        struct stat_row *n =
                            realloc(l->rows, ncap * sizeof(*n));

                        if (!n)
                                return;
                        l->rows    = n;
                        l->row_cap = ncap;
                }
                snprintf(l->rows[i].endpoint, sizeof(l->rows[i].endpoint), "%s",
                         e->endpoint);
                l->rows[i].status = e->status;
                l->rows[i].n      = 0;
                l->row_cnt++;
        }
        l->rows[i].n++;
        if (!e->fault || !*e->fault)
                return;
        for (i = 0; i < l->fault_cnt; i++)
                if (!strcmp(l->faults[i].kind, e->fault))
                        break;
        if (i == l->fault_cnt) {
                if (i == sizeof(l->faults) / sizeof(l->faults[0]))
                        return;
                snprintf(l->faults[i].kind, sizeof(l->faults[i].kind), "%s",
                         e->fault);
                l->faults[i].n = 0;
                l->fault_cnt++;
        }
        l->faults[i].n++;
}

void sbx_reqlog_add(struct sbx_reqlog *l, const struct sbx_logentry *e)
{
        const char *s[7] = {e->method,    e->url,   e->tenant,
                            e->endpoint,  e->fault, e->call_options,
                            e->user_agent};
        size_t lens[7], total = 0, blen;
        char *buf, *pos;
        struct entry *slot;

        for (int i = 0; i < 7; i++) {
                lens[i] = s[i] ? strlen(s[i]) : 0;
                total += lens[i] + 1;
        }
        blen = e->body_len > LOG_BODY_MAX ? LOG_BODY_MAX : e->body_len;
        total += blen + 1;
        /* Build the copy before taking the lock. */
        if (!(buf = malloc(total)))
                return;
        pos = buf;
        pthread_mutex_lock(&l->lock);
        slot = &l->ring[l->head];
        if (slot->buf)
                l->dropped++;
        free(slot->buf);
        slot->buf = buf;
        put(&pos, s[0] ? s[0] : "", lens[0], &slot->method);
        put(&pos, s[1] ? s[1] : "", lens[1], &slot->url);
        put(&pos, s[2] ? s[2] : "", lens[2], &slot->tenant);
        put(&pos, s[3] ? s[3] : "", lens[3], &slot->endpoint);
        put(&pos, s[4] ? s[4] : "", lens[4], &slot->fault);
        put(&pos, s[5], lens[5], &slot->call_options);
        put(&pos, s[6], lens[6], &slot->user_agent);
        put(&pos, e->body ? e->body : "", blen, &slot->body);
        slot->body_len       = blen;
        slot->body_truncated = e->body_len > LOG_BODY_MAX;
        slot->seq            = l->next_seq++;
        slot->time_ms        = e->time_ms;
        slot->duration_ms    = e->duration_ms;
        slot->status         = e->status;
        l->head              = (l->head + 1) % l->cap;
        if (l->cnt < l->cap)
                l->cnt++;
        count_locked(l, e);
        pthread_mutex_unlock(&l->lock);
}

/* An entry as /sandbox/requests shows it. */
static cJSON *entry_json(const struct entry *en)
{
        cJSON *o    = cJSON_CreateObject(), *h;
        time_t secs = (time_t)(en->time_ms / 1000);
        struct tm tm;
        char iso[40], buf[48];

        gmtime_r(&secs, &tm);
        strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf, sizeof(buf), "%s.%03dZ", iso, (int)(en->time_ms % 1000));
        cJSON_AddNumberToObject(o, "seq", (double)en->seq);
        cJSON_AddNumberToObject(o, "time_ms", (double)en->time_ms);
        cJSON_AddStringToObject(o, "time", buf);
        cJSON_AddStringToObject(o, "method", en->method);
        cJSON_AddStringToObject(o, "url", en->url);
        cJSON_AddStringToObject(o, "tenant", en->tenant);
        cJSON_AddStringToObject(o, "endpoint", en->endpoint);
        cJSON_AddNumberToObject(o, "status", en->status);
        cJSON_AddNumberToObject(o, "duration_ms", en->duration_ms);
        if (*en->fault)
                cJSON_AddStringToObject(o, "fault", en->fault);
        h = cJSON_AddObjectToObject(o, "headers");
        if (en->call_options)
                cJSON_AddStringToObject(h, "Sforce-Call-Options",
                                        en->call_options);
        if (en->user_agent)
                cJSON_AddStringToObject(h, "User-Agent", en->user_agent);
        cJSON_AddStringToObject(o, "body", en->body);
        if (en->body_truncated)
                cJSON_AddBoolToObject(o, "body_truncated", 1);
        return o;
}

cJSON *sbx_reqlog_query(struct sbx_reqlog *l, const char *tenant,
                        const char *endpoint, uint64_t since_seq, size_t limit)
{
        cJSON *o   = cJSON_CreateObject(),
              *arr = cJSON_AddArrayToObject(o, "requests");
        size_t n   = 0;

        pthread_mutex_lock(&l->lock);
        for (size_t i = 0; i < l->cnt && n < limit; i++) {
                const struct entry *en =
                    &l->ring[(l->head + l->cap - l->cnt + i) % l->cap];

                if (en->seq <= since_seq)
                        continue;
                if (tenant && strcmp(tenant, en->tenant))
                        continue;
                if (endpoint && fnmatch(endpoint, en->endpoint, 0))
                        continue;
                cJSON_AddItemToArray(arr, entry_json(en));
                n++;
        }
        cJSON_AddNumberToObject(o, "last_seq", (double)(l->next_seq - 1));
        cJSON_AddNumberToObject(o, "dropped", (double)l->dropped);
        pthread_mutex_unlock(&l->lock);
        return o;
}

cJSON *sbx_reqlog_stats(struct sbx_reqlog *l)
{
        cJSON *o     = cJSON_CreateObject();
        cJSON *by_ep = cJSON_AddObjectToObject(o, "by_endpoint");
        cJSON *by_st = cJSON_AddObjectToObject(o, "by_status");
        cJSON *fl    = cJSON_AddObjectToObject(o, "faults");
        char code[16];

        pthread_mutex_lock(&l->lock);
        cJSON_AddNumberToObject(o, "total", (double)l->total);
        for (size_t i = 0; i < l->row_cnt; i++) {
                const struct stat_row *r = &l->rows[i];
                cJSON *ep =
                    cJSON_GetObjectItemCaseSensitive(by_ep, r->endpoint);
                cJSON *c;

                if (!ep) {
                        ep = cJSON_AddObjectToObject(by_ep, r->endpoint);
                        cJSON_AddNumberToObject(ep, "total", 0);
                        cJSON_AddObjectToObject(ep, "by_status");
                }
                snprintf(code, sizeof(code), "%d", r->status);
                cJSON_SetNumberValue(
                    cJSON_GetObjectItemCaseSensitive(ep, "total"),
                    cJSON_GetObjectItemCaseSensitive(ep, "total")->valuedouble +
                        (double)r->n);
                cJSON_AddNumberToObject(
                    cJSON_GetObjectItemCaseSensitive(ep, "by_status"), code,
                    (double)r->n);
                if ((c = cJSON_GetObjectItemCaseSensitive(by_st, code)))
                        cJSON_SetNumberValue(c, c->valuedouble + (double)r->n);
                else
                        cJSON_AddNumberToObject(by_st, code, (double)r->n);
        }
        for (size_t i = 0; i < l->fault_cnt; i++)
                cJSON_AddNumberToObject(fl, l->faults[i].kind,
                                        (double)l->faults[i].n);
        pthread_mutex_unlock(&l->lock);
        return o;
}
