/*
 * sf_util.c - small pure helpers of the Salesforce simulator: a string hash
 * map, the Contact/Lead field table, record ids, REST/SOQL time formats,
 * form decoding and the error shapes.
 */
#include "sf_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- allocation ---------------------------------------------------------- */

void *sf_xcalloc(size_t n, size_t size)
{
        void *p = calloc(n ? n : 1, size ? size : 1);

        if (!p)
                abort(); /* see sf_internal.h: a test tool fails loudly */
        return p;
}

void *sf_xrealloc(void *p, size_t size)
{
        void *q = realloc(p, size ? size : 1);

        if (!q)
                abort();
        return q;
}

/* Copy @p n bytes and terminate. */
char *sf_xstrndup(const char *s, size_t n)
{
        char *d = sf_xcalloc(1, n + 1);

        memcpy(d, s, n);
        return d;
}

/* NULL-preserving strdup. */
char *sf_xstrdup(const char *s)
{
        return s ? sf_xstrndup(s, strlen(s)) : NULL;
}

/* ASCII lower case: emails are indexed case-insensitively. */
char *sf_lower(const char *s)
{
        char *d = sf_xstrdup(s);

        for (char *p = d; p && *p; p++)
                *p = (char)tolower((unsigned char)*p);
        return d;
}

/* ---- hash map ------------------------------------------------------------ */

/* FNV-1a: fast enough for ids and emails, no seed needed here. */
static size_t map_hash(const char *s)
{
        uint64_t h = 1469598103934665603ULL;

        for (; *s; s++) {
                h ^= (unsigned char)*s;
                h *= 1099511628211ULL;
        }
        return (size_t)h;
}

/* An empty map (no buckets until the first insert). */
void sf_map_init(struct sf_map *m)
{
        memset(m, 0, sizeof(*m));
}

/* Double the buckets (power of two, so masks replace modulo). */
static void map_grow(struct sf_map *m)
{
        size_t nb             = m->nb ? m->nb * 2 : 64;
        struct sf_map_ent **b = sf_xcalloc(nb, sizeof(*b));

        for (size_t i = 0; i < m->nb; i++) {
                struct sf_map_ent *e = m->b[i], *next;

                for (; e; e = next) {
                        size_t h = map_hash(e->key) & (nb - 1);

                        next    = e->next;
                        e->next = b[h];
                        b[h]    = e;
                }
        }
        free(m->b);
        m->b  = b;
        m->nb = nb;
}

/* The link that holds @p key, or the empty link where it would go. */
static struct sf_map_ent **map_slot(const struct sf_map *m, const char *key)
{
        struct sf_map_ent **pp;

        if (!m->nb)
                return NULL;
        pp = &m->b[map_hash(key) & (m->nb - 1)];
        for (; *pp; pp = &(*pp)->next)
                if (!strcmp((*pp)->key, key))
                        return pp;
        return pp;
}

void *sf_map_get(const struct sf_map *m, const char *key)
{
        struct sf_map_ent **pp = map_slot(m, key);

        return pp && *pp ? (*pp)->val : NULL;
}

void *sf_map_put(struct sf_map *m, const char *key, void *val)
{
        struct sf_map_ent **pp, *e;

        /* keep the load factor under 3/4 */
        if (m->cnt + 1 > m->nb * 3 / 4)
                map_grow(m);
        pp = map_slot(m, key);
        if (*pp) {
                void *old  = (*pp)->val;
                (*pp)->val = val;
                return old;
        }
        e      = sf_xcalloc(1, sizeof(*e));
        e->key = sf_xstrdup(key);
        e->val = val;
        *pp    = e;
        m->cnt++;
        return NULL;
}

void *sf_map_del(struct sf_map *m, const char *key)
{
        struct sf_map_ent **pp = map_slot(m, key), *e;
        void *val;

        if (!pp || !*pp)
                return NULL;
        e   = *pp;
        *pp = e->next;
        val = e->val;
        free(e->key);
        free(e);
        m->cnt--;
        return val;
}

void sf_map_clear(struct sf_map *m, void (*free_val)(void *))
{
        for (size_t i = 0; i < m->nb; i++) {
                struct sf_map_ent *e = m->b[i], *next;

                for (; e; e = next) {
                        next = e->next;
                        if (free_val)
                                free_val(e->val);
                        free(e->key);
                        free(e);
                }
        }
        free(m->b);
        sf_map_init(m);
}

int sf_map_next(const struct sf_map *m, struct sf_map_iter *it,
                const char **key, void **val)
{
        if (it->e)
                it->e = it->e->next;
        while (!it->e && it->b < m->nb)
                it->e = m->b[it->b++];
        if (!it->e)
                return 0;
        if (key)
                *key = it->e->key;
        if (val)
                *val = it->e->val;
        return 1;
}

/* ---- fields -------------------------------------------------------------- */

/* Order = the order GET /sobjects/<type>/<id> lists fields in. */
const struct sf_field_def sf_fields[SF_F_CNT] = {
    [SF_F_ID]          = {"Id", SF_T_ID, SF_ENT_BOTH, 0},
    [SF_F_ISDELETED]   = {"IsDeleted", SF_T_BOOL, SF_ENT_BOTH, 0},
    [SF_F_FIRSTNAME]   = {"FirstName", SF_T_STRING, SF_ENT_BOTH, 1},
    [SF_F_LASTNAME]    = {"LastName", SF_T_STRING, SF_ENT_BOTH, 1},
    [SF_F_EMAIL]       = {"Email", SF_T_EMAIL, SF_ENT_BOTH, 1},
    [SF_F_OPTOUT]      = {"HasOptedOutOfEmail", SF_T_BOOL, SF_ENT_BOTH, 1},
    [SF_F_COMPANY]     = {"Company", SF_T_STRING, SF_ENT_BIT(SF_LEAD), 1},
    [SF_F_ISCONVERTED] = {"IsConverted", SF_T_BOOL, SF_ENT_BIT(SF_LEAD), 0},
    [SF_F_CONVCONTACT] = {"ConvertedContactId", SF_T_ID, SF_ENT_BIT(SF_LEAD),
                          0},
    [SF_F_CONVACCOUNT] = {"ConvertedAccountId", SF_T_ID, SF_ENT_BIT(SF_LEAD),
                          0},
    [SF_F_CONVDATE]    = {"ConvertedDate", SF_T_DATE, SF_ENT_BIT(SF_LEAD), 0},
    [SF_F_CREATED]     = {"CreatedDate", SF_T_DATETIME, SF_ENT_BOTH, 0},
    [SF_F_LASTMOD]     = {"LastModifiedDate", SF_T_DATETIME, SF_ENT_BOTH, 0},
    [SF_F_SYSMOD]      = {"SystemModstamp", SF_T_DATETIME, SF_ENT_BOTH, 0},
};

/* Field names are case-insensitive in SOQL and JSON bodies alike. */
int sf_field_lookup(enum sf_entity e, const char *name, size_t len)
{
        for (int f = 0; f < SF_F_CNT; f++) {
                const struct sf_field_def *d = &sf_fields[f];

                if (!(d->entities & SF_ENT_BIT(e)))
                        continue;
                if (strlen(d->name) == len && !strncasecmp(d->name, name, len))
                        return f;
        }
        return -1;
}

static const char *const entity_names[SF_ENTITY_CNT]    = {"Contact", "Lead"};
static const char *const entity_prefixes[SF_ENTITY_CNT] = {"003", "00Q"};

int sf_entity_lookup(const char *name, size_t len)
{
        for (int e = 0; e < SF_ENTITY_CNT; e++)
                if (strlen(entity_names[e]) == len &&
                    !strncasecmp(entity_names[e], name, len))
                        return e;
        return -1;
}

const char *sf_entity_name(enum sf_entity e)
{
        return entity_names[e];
}

const char *sf_entity_prefix(enum sf_entity e)
{
        return entity_prefixes[e];
}

/* Read one field as a typed value; strings stay borrowed. */
void sf_record_get(const struct sf_record *r, enum sf_field f,
                   struct sf_value *v)
{
        memset(v, 0, sizeof(*v));
        v->type = sf_fields[f].type;
        if (!(sf_fields[f].entities & SF_ENT_BIT(r->entity))) {
                v->is_null = 1;
                return;
        }
        switch (f) {
        case SF_F_ID:
                v->s = r->id;
                break;
        case SF_F_ISDELETED:
                v->b = r->is_deleted;
                break;
        case SF_F_FIRSTNAME:
                v->s = r->first_name;
                break;
        case SF_F_LASTNAME:
                v->s = r->last_name;
                break;
        case SF_F_EMAIL:
                v->s = r->email;
                break;
        case SF_F_OPTOUT:
                v->b = r->opted_out;
                break;
        case SF_F_COMPANY:
                v->s = r->company;
                break;
        case SF_F_ISCONVERTED:
                v->b = r->is_converted;
                break;
        case SF_F_CONVCONTACT:
                v->s = r->conv_contact[0] ? r->conv_contact : NULL;
                break;
        case SF_F_CONVACCOUNT:
                v->s = r->conv_account[0] ? r->conv_account : NULL;
                break;
        case SF_F_CONVDATE:
                v->t       = r->conv_date_ms;
                v->is_null = r->conv_date_ms < 0;
                return;
        case SF_F_CREATED:
                v->t = r->created_ms;
                return;
        case SF_F_LASTMOD:
                v->t = r->last_modified_ms;
                return;
        case SF_F_SYSMOD:
                v->t = r->system_modstamp_ms;
                return;
        default:
                v->is_null = 1;
                return;
        }
        if (v->type != SF_T_BOOL && !v->s)
                v->is_null = 1;
}

cJSON *sf_value_json(const struct sf_value *v)
{
        char buf[SF_TIME_BUFSZ];

        if (v->is_null)
                return cJSON_CreateNull();
        switch (v->type) {
        case SF_T_BOOL:
                return cJSON_CreateBool(v->b);
        case SF_T_DATETIME:
                sf_time_format(v->t, buf, sizeof(buf));
                return cJSON_CreateString(buf);
        case SF_T_DATE:
                sf_date_format(v->t, buf, sizeof(buf));
                return cJSON_CreateString(buf);
        default:
                return cJSON_CreateString(v->s);
        }
}

void sf_record_free(struct sf_record *r)
{
        if (!r)
                return;
        free(r->first_name);
        free(r->last_name);
        free(r->email);
        free(r->company);
        free(r);
}

/* ---- ids ----------------------------------------------------------------- */

/* The 3-char suffix that makes an id case-insensitively unique: one char
 * per 5-char chunk, encoding which of its characters are upper case. */
static void id_suffix(const char *id15, char out[3])
{
        static const char map[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

        for (int c = 0; c < 3; c++) {
                int flags = 0;

                for (int i = 0; i < 5; i++) {
                        char ch = id15[c * 5 + i];

                        if (ch >= 'A' && ch <= 'Z')
                                flags |= 1 << i;
                }
                out[c] = map[flags];
        }
}

/* Deterministic ids: prefix, "SB", a 10-digit counter, checksum. */
void sf_id_make(const char *prefix, uint64_t n, char out[SF_ID_LEN + 1])
{
        snprintf(out, SF_ID_LEN + 1, "%.3sSB%010llu", prefix,
                 (unsigned long long)(n % 10000000000ULL));
        id_suffix(out, out + 15);
        out[SF_ID_LEN] = '\0';
}

/* Accept 15 or 18 alphanumerics; an 18-char id must carry the right
 * checksum, as Salesforce refuses a mangled one. */
int sf_id_normalize(const char *in, char out[SF_ID_LEN + 1])
{
        size_t len = in ? strlen(in) : 0;
        char suffix[3];

        if (len != 15 && len != 18)
                return -1;
        for (size_t i = 0; i < len; i++)
                if (!isalnum((unsigned char)in[i]))
                        return -1;
        memcpy(out, in, 15);
        id_suffix(in, suffix);
        if (len == 18 && memcmp(in + 15, suffix, 3))
                return -1;
        memcpy(out + 15, suffix, 3);
        out[SF_ID_LEN] = '\0';
        return 0;
}

/* ---- time ---------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
        int64_t era;
        unsigned yoe, doy, doe;

        y -= m <= 2;
        era = (y >= 0 ? y : y - 399) / 400;
        yoe = (unsigned)(y - era * 400);
        doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
        int64_t era;
        unsigned doe, yoe, doy, mp;

        z += 719468;
        era = (z >= 0 ? z : z - 146096) / 146097;
        doe = (unsigned)(z - era * 146097);
        yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        mp  = (5 * doy + 2) / 153;
        *d  = (int)(doy - (153 * mp + 2) / 5 + 1);
        *m  = (int)(mp < 10 ? mp + 3 : mp - 9);
        *y  = (int)((int64_t)yoe + era * 400 + (*m <= 2));
}

/* Salesforce's REST dateTime form, always UTC (+0000). */
void sf_time_format(int64_t ms, char *buf, size_t size)
{
        int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
        int64_t rem  = ms - days * 86400000;
        int y, m, d;

        civil_from_days(days, &y, &m, &d);
        snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03d+0000", y, m, d,
                 (int)(rem / 3600000), (int)(rem / 60000 % 60),
                 (int)(rem / 1000 % 60), (int)(rem % 1000));
}

void sf_date_format(int64_t ms, char *buf, size_t size)
{
        int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
        int y, m, d;

        civil_from_days(days, &y, &m, &d);
        snprintf(buf, size, "%04d-%02d-%02d", y, m, d);
}

/* Reads exactly @p n digits at s[*i]. */
static int digits(const char *s, size_t len, size_t *i, int n, int *out)
{
        int v = 0;

        for (int k = 0; k < n; k++, (*i)++) {
                if (*i >= len || !isdigit((unsigned char)s[*i]))
                        return -1;
                v = v * 10 + (s[*i] - '0');
        }
        *out = v;
        return 0;
}

/* YYYY-MM-DD with month lengths and leap years checked. */
static int parse_ymd(const char *s, size_t len, size_t *i, int64_t *days)
{
        int y, m, d;
        static const int mdays[] = {31, 29, 31, 30, 31, 30,
                                    31, 31, 30, 31, 30, 31};

        if (digits(s, len, i, 4, &y) || *i >= len || s[(*i)++] != '-' ||
            digits(s, len, i, 2, &m) || *i >= len || s[(*i)++] != '-' ||
            digits(s, len, i, 2, &d))
                return -1;
        if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
                return -1;
        if (m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 || y % 400 == 0)))
                return -1;
        *days = days_from_civil(y, (unsigned)m, (unsigned)d);
        return 0;
}

int sf_date_parse(const char *s, size_t len, int64_t *ms)
{
        size_t i = 0;
        int64_t days;

        if (parse_ymd(s, len, &i, &days) || i != len)
                return -1;
        *ms = days * 86400000;
        return 0;
}

/* The SOQL forms only: 'T', seconds required, optional .fff, and a
 * zone (Z or +hh:mm/-hh:mm) that is not optional. */
int sf_datetime_parse(const char *s, size_t len, int64_t *ms)
{
        size_t i = 0;
        int64_t days, t;
        int hh, mi, ss, frac = 0, oh, om;

        if (parse_ymd(s, len, &i, &days) || i >= len || s[i++] != 'T' ||
            digits(s, len, &i, 2, &hh) || i >= len || s[i++] != ':' ||
            digits(s, len, &i, 2, &mi) || i >= len || s[i++] != ':' ||
            digits(s, len, &i, 2, &ss))
                return -1;
        if (hh > 23 || mi > 59 || ss > 59)
                return -1;
        if (i < len && s[i] == '.') {
                i++;
                if (digits(s, len, &i, 3, &frac))
                        return -1;
        }
        t = days * 86400000 + (int64_t)hh * 3600000 + (int64_t)mi * 60000 +
            (int64_t)ss * 1000 + frac;
        if (i < len && s[i] == 'Z' && i + 1 == len) {
                *ms = t;
                return 0;
        }
        if (i >= len || (s[i] != '+' && s[i] != '-'))
                return -1;
        {
                int sign = s[i++] == '-' ? -1 : 1;

                if (digits(s, len, &i, 2, &oh) || i >= len || s[i++] != ':' ||
                    digits(s, len, &i, 2, &om) || i != len || oh > 23 ||
                    om > 59)
                        return -1;
                /* local = UTC + offset, so UTC = local - offset */
                t -= sign * ((int64_t)oh * 3600000 + (int64_t)om * 60000);
        }
        *ms = t;
        return 0;
}

/* ---- request helpers ----------------------------------------------------- */

/* Known REST versions: 20.0 up to the newest documented (66.0). */
#define SF_MIN_VERSION 20
#define SF_MAX_VERSION 66

int sf_version_parse(const char *s, size_t len, char *out, size_t outsz)
{
        int major = 0;
        size_t i  = 1;

        if (len < 5 || s[0] != 'v')
                return -1;
        /* vNN.0: two digits (one accepted), a dot, a zero */
        for (; i < len && isdigit((unsigned char)s[i]) && i < 4; i++)
                major = major * 10 + (s[i] - '0');
        if (i == 1 || i + 2 != len || s[i] != '.' || s[i + 1] != '0')
                return -1;
        if (major < SF_MIN_VERSION || major > SF_MAX_VERSION)
                return -1;
        snprintf(out, outsz, "%d.0", major);
        return 0;
}

void sf_origin_build(const char *call_options, const char *ver, char *out,
                     size_t outsz)
{
        const char *p = call_options;
        int n         = snprintf(out, outsz, "com/salesforce/api/rest/%s", ver);

        /* Sforce-Call-Options: client=NAME[, defaultNamespace=NS] */
        while (p && *p && n >= 0 && (size_t)n < outsz) {
                size_t len;

                while (*p == ' ' || *p == ',' || *p == '\t')
                        p++;
                len = strcspn(p, ",");
                /* only the client name matters for changeOrigin */
                if (len > 7 && !strncmp(p, "client=", 7)) {
                        size_t vlen = len - 7;

                        while (vlen && (p[7 + vlen - 1] == ' '))
                                vlen--;
                        snprintf(out + n, outsz - (size_t)n, ";client=%.*s",
                                 (int)vlen, p + 7);
                        return;
                }
                p += len;
        }
}

/* The value of a hex digit, or -1. */
static int hexval(int c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        c = tolower(c);
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

/* Percent-decode with '+' as space (the form encoding). */
static char *form_decode(const char *s, size_t len)
{
        char *out = sf_xcalloc(1, len + 1);
        size_t o  = 0;

        for (size_t i = 0; i < len; i++) {
                /* form encoding: '+' is a space, %XX a byte */
                if (s[i] == '+') {
                        out[o++] = ' ';
                } else if (s[i] == '%' && i + 2 < len &&
                           hexval((unsigned char)s[i + 1]) >= 0 &&
                           hexval((unsigned char)s[i + 2]) >= 0) {
                        out[o++] = (char)(hexval((unsigned char)s[i + 1]) * 16 +
                                          hexval((unsigned char)s[i + 2]));
                        i += 2;
                } else {
                        out[o++] = s[i];
                }
        }
        out[o] = '\0';
        return out;
}

/* Look a key up in a form body (the first occurrence wins). */
char *sf_form_get(const char *body, size_t len, const char *key)
{
        size_t klen = strlen(key), i = 0;

        while (body && i < len) {
                size_t end = i, eq;

                while (end < len && body[end] != '&')
                        end++;
                eq = i;
                while (eq < end && body[eq] != '=')
                        eq++;
                /* exact key match: client_id must not match client_id2 */
                if (eq - i == klen && !memcmp(body + i, key, klen))
                        return form_decode(body + eq + (eq < end),
                                           end - eq - (eq < end));
                i = end + 1;
        }
        return NULL;
}

/* ---- errors -------------------------------------------------------------- */

void sf_err_set(struct sf_err *e, int status, const char *code,
                const char *field, const char *fmt, ...)
{
        va_list ap;

        e->status = status;
        snprintf(e->code, sizeof(e->code), "%s", code);
        snprintf(e->field, sizeof(e->field), "%s", field ? field : "");
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof(e->message), fmt, ap);
        va_end(ap);
}

cJSON *sf_err_json(const struct sf_err *e, const char *code_key)
{
        cJSON *o = cJSON_CreateObject(), *fields = cJSON_CreateArray();

        if (!strcmp(code_key, "statusCode")) {
                /* SaveResult errors: statusCode, message, fields */
                cJSON_AddStringToObject(o, "statusCode", e->code);
                cJSON_AddStringToObject(o, "message", e->message);
        } else {
                cJSON_AddStringToObject(o, "message", e->message);
                cJSON_AddStringToObject(o, code_key, e->code);
        }
        if (e->field[0])
                cJSON_AddItemToArray(fields, cJSON_CreateString(e->field));
        /* REST call errors carry "fields" only when about fields (401,
         * 403, 404 bodies have none); SaveResult errors always do. */
        if (e->field[0] || !strcmp(code_key, "statusCode"))
                cJSON_AddItemToObject(o, "fields", fields);
        else
                cJSON_Delete(fields);
        return o;
}

void sf_resp_err(struct sbx_resp *resp, const struct sf_err *e)
{
        cJSON *arr = cJSON_CreateArray();

        cJSON_AddItemToArray(arr, sf_err_json(e, "errorCode"));
        sbx_resp_json(resp, e->status, arr);
}
