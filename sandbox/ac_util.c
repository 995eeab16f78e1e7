/*
 * ac_util.c - the pure parts of the ActiveCampaign simulator: a string hash
 * map, PHP-style form encoding, AC's date formats and the token bucket.
 * Nothing here touches the sandbox core, so unit tests link it directly.
 */
#include "ac_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- hash map ------------------------------------------------------------ */

/* FNV-1a: short keys (ids, emails), no adversary. */
static uint64_t map_hash(const char *s)
{
        uint64_t h = 1469598103934665603ULL;
        for (; *s; s++) {
                h ^= (unsigned char)*s;
                h *= 1099511628211ULL;
        }
        return h;
}

/* Lookups hash once and compare the full hash before the key. */
void *ac_map_get(const struct ac_map *m, const char *key)
{
        if (!m->nb || !key)
                return NULL;
        uint64_t h = map_hash(key);
        for (struct ac_map_ent *e = m->b[h & (m->nb - 1)]; e; e = e->next)
                if (e->hash == h && !strcmp(e->key, key))
                        return e->val;
        return NULL;
}

/* Double the bucket array once the load passes 1, keeping lookups O(1). */
static int map_grow(struct ac_map *m)
{
        size_t nb             = m->nb ? m->nb * 2 : 64;
        struct ac_map_ent **b = calloc(nb, sizeof(*b));
        if (!b)
                return -1;
        for (size_t i = 0; i < m->nb; i++) {
                struct ac_map_ent *e = m->b[i], *next;
                for (; e; e = next) {
                        next                  = e->next;
                        e->next               = b[e->hash & (nb - 1)];
                        b[e->hash & (nb - 1)] = e;
                }
        }
        free(m->b);
        m->b  = b;
        m->nb = nb;
        return 0;
}

/* Insert at the bucket head; grows before the load passes 1. */
int ac_map_put(struct ac_map *m, const char *key, void *val)
{
        if (m->n >= m->nb && map_grow(m) != 0)
                return -1;
        uint64_t h               = map_hash(key);
        struct ac_map_ent **slot = &m->b[h & (m->nb - 1)];
        for (struct ac_map_ent *e = *slot; e; e = e->next) {
                if (e->hash == h && !strcmp(e->key, key)) {
                        e->val = val;
                        return 0;
                }
        }
        size_t klen          = strlen(key);
        struct ac_map_ent *e = malloc(sizeof(*e) + klen + 1);
        if (!e)
                return -1;
        memcpy(e->key, key, klen + 1);
        e->hash = h;
        e->val  = val;
        e->next = *slot;
        *slot   = e;
        m->n++;
        return 0;
}

/* Unlink and free the entry of @p key. */
void ac_map_del(struct ac_map *m, const char *key)
{
        if (!m->nb || !key)
                return;
        uint64_t h             = map_hash(key);
        struct ac_map_ent **pp = &m->b[h & (m->nb - 1)];
        for (; *pp; pp = &(*pp)->next) {
                struct ac_map_ent *e = *pp;
                if (e->hash == h && !strcmp(e->key, key)) {
                        *pp = e->next;
                        free(e);
                        m->n--;
                        return;
                }
        }
}

/* Free every entry; the values belong to the caller. */
void ac_map_clear(struct ac_map *m)
{
        for (size_t i = 0; i < m->nb; i++) {
                struct ac_map_ent *e = m->b[i], *next;
                for (; e; e = next) {
                        next = e->next;
                        free(e);
                }
        }
        free(m->b);
        memset(m, 0, sizeof(*m));
}

/* ---- growing buffer ---------------------------------------------------- */

/* Append @p n bytes, doubling the capacity as needed; on OOM the buffer
 * stops growing and remembers it (b->oom). */
void ac_buf_add(struct ac_buf *b, const char *s, size_t n)
{
        if (b->oom)
                return;
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 256;
                while (cap < b->len + n + 1)
                        cap *= 2;
                char *p = realloc(b->p, cap);
                if (!p) {
                        b->oom = 1;
                        return;
                }
                b->p   = p;
                b->cap = cap;
        }
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
}

void ac_buf_adds(struct ac_buf *b, const char *s)
{
        ac_buf_add(b, s, strlen(s));
}

/* Never NULL for an empty buffer: "" (or NULL only on OOM). */
char *ac_buf_take(struct ac_buf *b)
{
        char *p = b->p;
        if (!p)
                p = calloc(1, 1);
        memset(b, 0, sizeof(*b));
        return p;
}

void ac_buf_free(struct ac_buf *b)
{
        free(b->p);
        memset(b, 0, sizeof(*b));
}

/* ---- form encoding ------------------------------------------------------- */

/* PHP urlencode(): RFC 1738 style, which http_build_query() uses. */
static void form_escape(struct ac_buf *b, const char *s)
{
        static const char hex[] = "0123456789ABCDEF";
        char chunk[96];
        size_t n = 0;
        for (; *s; s++) {
                unsigned char ch = (unsigned char)*s;
                if (n + 3 >= sizeof(chunk)) {
                        ac_buf_add(b, chunk, n);
                        n = 0;
                }
                if (isalnum(ch) || ch == '.' || ch == '_' || ch == '-') {
                        chunk[n++] = (char)ch;
                } else if (ch == ' ') {
                        chunk[n++] = '+';
                } else {
                        chunk[n++] = '%';
                        chunk[n++] = hex[ch >> 4];
                        chunk[n++] = hex[ch & 15];
                }
        }
        ac_buf_add(b, chunk, n);
}

/* One pair, '&'-joined to what is there. */
void ac_form_add(struct ac_buf *b, const char *key, const char *value)
{
        if (b->len)
                ac_buf_add(b, "&", 1);
        form_escape(b, key);
        ac_buf_add(b, "=", 1);
        form_escape(b, value ? value : "");
}

/* The value of one hex digit, or -1. */
static int hexval(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Decode one %XX / '+' escaped run into a fresh string. */
static char *form_unescape(const char *s, size_t n)
{
        char *out = malloc(n + 1);
        if (!out)
                return NULL;
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
                if (s[i] == '+') {
                        out[o++] = ' ';
                } else if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 &&
                           hexval(s[i + 2]) >= 0) {
                        out[o++] =
                            (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
                        i += 2;
                } else {
                        out[o++] = s[i];
                }
        }
        out[o] = '\0';
        return out;
}

/* Split on '&', then '='; both sides unescaped. */
cJSON *ac_form_decode(const char *body, size_t len)
{
        cJSON *obj = cJSON_CreateObject();
        if (!obj)
                return NULL;
        size_t i = 0;
        while (i < len) {
                size_t end = i;
                while (end < len && body[end] != '&')
                        end++;
                size_t eq = i;
                while (eq < end && body[eq] != '=')
                        eq++;
                if (end > i) {
                        char *k = form_unescape(body + i, eq - i);
                        char *v = eq < end ? form_unescape(body + eq + 1,
                                                           end - eq - 1)
                                           : ac_strdup("");
                        if (!k || !v) {
                                free(k);
                                free(v);
                                cJSON_Delete(obj);
                                return NULL;
                        }
                        cJSON_DeleteItemFromObjectCaseSensitive(obj, k);
                        cJSON_AddStringToObject(obj, k, v);
                        free(k);
                        free(v);
                }
                i = end + 1;
        }
        return obj;
}

/* ---- dates --------------------------------------------------------------- */

/* "+HH:MM" / "-HH:MM" (at most 14 h) or "Z", "UTC". */
int ac_tz_parse(const char *s, int *minutes)
{
        if (!s)
                return -1;
        if (!strcmp(s, "Z") || !strcmp(s, "UTC") || !strcmp(s, "+00:00")) {
                *minutes = 0;
                return 0;
        }
        if ((s[0] != '+' && s[0] != '-') || strlen(s) != 6 || s[3] != ':')
                return -1;
        for (int i = 1; i < 6; i++)
                if (i != 3 && !isdigit((unsigned char)s[i]))
                        return -1;
        int h = (s[1] - '0') * 10 + (s[2] - '0');
        int m = (s[4] - '0') * 10 + (s[5] - '0');
        if (h > 14 || m > 59)
                return -1;
        *minutes = (s[0] == '-' ? -1 : 1) * (h * 60 + m);
        return 0;
}

/* Break @p ms into the account's wall clock. */
static void local_tm(int64_t ms, int tz_min, struct tm *tm)
{
        int64_t s = ms / 1000;
        if (ms < 0 && ms % 1000)
                s--;
        time_t t = (time_t)(s + (int64_t)tz_min * 60);
        gmtime_r(&t, tm);
}

/* The offset is printed as given: AC's samples show e.g. -05:00. */
void ac_fmt_iso(char *out, size_t outsz, int64_t ms, int tz_min)
{
        struct tm tm;
        local_tm(ms, tz_min, &tm);
        int a = tz_min < 0 ? -tz_min : tz_min;
        snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, tz_min < 0 ? '-' : '+', a / 60, a % 60);
}

void ac_fmt_wall(char *out, size_t outsz, int64_t ms, int tz_min)
{
        struct tm tm;
        local_tm(ms, tz_min, &tm);
        snprintf(out, outsz, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The local calendar date: what bounced_date and forDate hold. */
void ac_fmt_date(char *out, size_t outsz, int64_t ms, int tz_min)
{
        struct tm tm;
        local_tm(ms, tz_min, &tm);
        snprintf(out, outsz, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday);
}

/* Read exactly @p n digits. */
static int digits(const char *s, int n, int *v)
{
        *v = 0;
        for (int i = 0; i < n; i++) {
                if (!isdigit((unsigned char)s[i]))
                        return -1;
                *v = *v * 10 + (s[i] - '0');
        }
        return 0;
}

/* See ac_internal.h; timegm() turns the broken-down time into UTC
 * seconds, then the offset is taken off. */
int ac_parse_time(const char *s, int tz_min, int64_t *ms)
{
        if (!s)
                return -1;
        int y, mo, d, h = 0, mi = 0, se = 0, off = tz_min;
        size_t len = strlen(s);
        if (len < 10 || digits(s, 4, &y) || s[4] != '-' ||
            digits(s + 5, 2, &mo) || s[7] != '-' || digits(s + 8, 2, &d))
                return -1;
        const char *p = s + 10;
        if (*p == 'T' || *p == ' ') {
                if (strlen(p) < 9 || digits(p + 1, 2, &h) || p[3] != ':' ||
                    digits(p + 4, 2, &mi) || p[6] != ':' ||
                    digits(p + 7, 2, &se))
                        return -1;
                p += 9;
                /* fractional seconds are accepted and ignored */
                if (*p == '.') {
                        p++;
                        while (isdigit((unsigned char)*p))
                                p++;
                }
                if (*p && ac_tz_parse(p, &off) != 0)
                        return -1;
        } else if (*p) {
                return -1;
        }
        if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
            se > 60)
                return -1;
        struct tm tm = {0};
        tm.tm_year   = y - 1900;
        tm.tm_mon    = mo - 1;
        tm.tm_mday   = d;
        tm.tm_hour   = h;
        tm.tm_min    = mi;
        tm.tm_sec    = se;
        time_t t     = timegm(&tm);
        *ms          = ((int64_t)t - (int64_t)off * 60) * 1000;
        return 0;
}

/* ---- token bucket -------------------------------------------------------- */

/* Refill by elapsed time, then take. The clock is the simulator's, so a
 * test that advances it refills the bucket at once. */
int ac_bucket_take(struct ac_bucket *b, double rate, int64_t now_ms,
                   int64_t *wait_ms)
{
        if (rate <= 0)
                return 1;
        /* No burst beyond one second's worth: AC documents none. */
        double cap = rate < 1 ? 1 : rate;
        if (b->last_ms == 0 || now_ms < b->last_ms) {
                if (b->last_ms == 0)
                        b->tokens = cap;
                b->last_ms = now_ms;
        }
        b->tokens += (double)(now_ms - b->last_ms) * rate / 1000.0;
        if (b->tokens > cap)
                b->tokens = cap;
        b->last_ms = now_ms;
        if (b->tokens >= 1.0 - 1e-9) { /* float error at the boundary */
                b->tokens -= 1.0;
                return 1;
        }
        if (wait_ms)
                *wait_ms = (int64_t)ceil((1.0 - b->tokens) * 1000.0 / rate);
        return 0;
}

/* ---- small string helpers ------------------------------------------------ */

/* Deliberately loose: one '@', a dot in the domain, no spaces. */
int ac_email_valid(const char *email)
{
        if (!email || !*email || strlen(email) > 254)
                return 0;
        const char *at = strchr(email, '@');
        if (!at || at == email || strchr(at + 1, '@'))
                return 0;
        for (const char *p = email; *p; p++)
                if (isspace((unsigned char)*p) || *p == ',' || *p == '<' ||
                    *p == '>')
                        return 0;
        const char *dot = strrchr(at + 1, '.');
        return dot && dot > at + 1 && dot[1] != '\0';
}

/* ASCII lower-casing (the email and tag-name indexes). */
char *ac_strlower(const char *s)
{
        char *out = ac_strdup(s);
        if (out)
                for (char *p = out; *p; p++)
                        *p = (char)tolower((unsigned char)*p);
        return out;
}

/* Strict: the whole string must be a positive decimal. */
long ac_id_parse(const char *s)
{
        if (!s || !*s)
                return 0;
        char *end = NULL;
        long v    = strtol(s, &end, 10);
        if (!end || *end || v <= 0)
                return 0;
        return v;
}

/* AC accepts ids as strings or numbers in request bodies. */
long ac_json_id(const cJSON *item)
{
        if (cJSON_IsString(item))
                return ac_id_parse(item->valuestring);
        if (cJSON_IsNumber(item) && item->valuedouble >= 1 &&
            item->valuedouble < 1e15 &&
            item->valuedouble == (double)(long)item->valuedouble)
                return (long)item->valuedouble;
        return 0;
}

/* NULL becomes "", so optional fields never hold NULL. */
char *ac_strdup(const char *s)
{
        if (!s)
                s = "";
        size_t n  = strlen(s);
        char *out = malloc(n + 1);
        if (out)
                memcpy(out, s, n + 1);
        return out;
}
