/*
 * sf_plan.c - the pure decisions of the sf-writer: which value each record
 * receives (the newest command wins), how writes are ordered and cut into
 * calls, what each SaveResult means, and when the daily quota says stop.
 */
#include "sf_writer.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* ---- the plan ------------------------------------------------------------ */

struct plan_ent {
        size_t target;
        const struct sfw_target *t;
};

/* Contacts before Leads, then by id. */
static int cmp_rec(const struct sfw_rec *a, const struct sfw_rec *b)
{
        if (a->obj != b->obj)
                return a->obj == SFW_CONTACT ? -1 : 1;
        return strcmp(a->id, b->id);
}

/* qsort order of the plan: by record, then by the callers' order. */
static int cmp_ent(const void *pa, const void *pb)
{
        const struct plan_ent *a = pa, *b = pb;
        int c = cmp_rec(&a->t->rec, &b->t->rec);
        if (c)
                return c;
        /* Stable: equal records keep the callers' order. */
        return a->target < b->target ? -1 : a->target > b->target;
}

osy_err_t sfw_plan(const struct sfw_target *t, size_t n,
                   struct sfw_write **writes, size_t *nwrites,
                   size_t *of_target)
{
        struct plan_ent *e  = NULL;
        struct sfw_write *w = NULL;
        size_t nw           = 0;

        *writes  = NULL;
        *nwrites = 0;
        if (!n)
                return OSY_OK;
        e = malloc(n * sizeof(*e));
        w = malloc(n * sizeof(*w));
        if (!e || !w) {
                free(e);
                free(w);
                return OSY_ERR_NOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                e[i].target = i;
                e[i].t      = &t[i];
        }
        /* Contacts before Leads (at most two type chunks per call, where
         * Salesforce allows ten), then by id so equal records are
         * adjacent. */
        qsort(e, n, sizeof(*e), cmp_ent);
        for (size_t i = 0; i < n; i++) {
                const struct sfw_target *ti = e[i].t;
                if (nw && !cmp_rec(&w[nw - 1].rec, &ti->rec)) {
                        struct sfw_write *cur = &w[nw - 1];
                        /* One record, two commands: the newest wins. */
                        if (osy_version_cmp(ti->version,
                                            t[cur->winner].version) > 0) {
                                cur->winner = e[i].target;
                                cur->value  = ti->value;
                        }
                } else {
                        w[nw].rec    = ti->rec;
                        w[nw].value  = ti->value;
                        w[nw].winner = e[i].target;
                        nw++;
                }
                of_target[e[i].target] = nw - 1;
        }
        free(e);
        *writes  = w;
        *nwrites = nw;
        return OSY_OK;
}

void sfw_collection_body(const struct sfw_write *w, size_t n,
                         struct sfw_buf *out)
{
        sfw_buf_adds(out, "{\"allOrNone\":false,\"records\":[");
        for (size_t i = 0; i < n; i++)
                sfw_buf_addf(
                    out,
                    "%s{\"attributes\":{\"type\":\"%s\"},\"id\":\"%s\","
                    "\"HasOptedOutOfEmail\":%s}",
                    i ? "," : "", sfw_obj2str(w[i].rec.obj), w[i].rec.id,
                    w[i].value ? "true" : "false");
        sfw_buf_adds(out, "]}");
}

/* ---- results ------------------------------------------------------------- */

sfw_res_t sfw_classify_code(const char *code)
{
        if (!code || !*code)
                return SFW_RES_PERMANENT;
        if (!strcmp(code, "CANNOT_UPDATE_CONVERTED_LEAD"))
                return SFW_RES_CONVERTED;
        /* In a collections call: no record with this id (any more). The
         * cached mapping is stale; look the person up again. */
        if (!strcmp(code, "INVALID_CROSS_REFERENCE_KEY"))
                return SFW_RES_GONE;
        /* allOrNone is false, but a rolled-back record is innocent. */
        if (!strcmp(code, "ALL_OR_NONE_OPERATION_ROLLED_BACK") ||
            !strcmp(code, "PROCESSING_HALTED"))
                return SFW_RES_RETRY;
        switch (osy_err_from_sf_code(code)) {
        case OSY_ERR_NOT_FOUND:
                return SFW_RES_GONE;
        case OSY_ERR_TRANSIENT:
        case OSY_ERR_THROTTLED:
                return SFW_RES_RETRY;
        default:
                return SFW_RES_PERMANENT;
        }
}

osy_err_t sfw_parse_save_results(const char *body, size_t n,
                                 struct sfw_result *out, char *errstr,
                                 size_t errstr_size)
{
        cJSON *root   = cJSON_Parse(body ? body : "");
        osy_err_t err = OSY_OK;
        size_t i      = 0;
        const cJSON *r;

        if (!cJSON_IsArray(root) || (size_t)cJSON_GetArraySize(root) != n) {
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "expected an array of %zu SaveResults", n);
                goto out;
        }
        cJSON_ArrayForEach(r, root)
        {
                struct sfw_result *o = &out[i++];
                const cJSON *ok =
                    cJSON_GetObjectItemCaseSensitive(r, "success");
                const cJSON *errs =
                    cJSON_GetObjectItemCaseSensitive(r, "errors");
                const cJSON *e0 = cJSON_GetArrayItem(errs, 0);
                const cJSON *sc =
                    cJSON_GetObjectItemCaseSensitive(e0, "statusCode");
                const cJSON *msg =
                    cJSON_GetObjectItemCaseSensitive(e0, "message");

                memset(o, 0, sizeof(*o));
                if (!cJSON_IsObject(r) || !cJSON_IsBool(ok)) {
                        err =
                            osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                        "SaveResult %zu has no success", i - 1);
                        goto out;
                }
                if (cJSON_IsString(sc) && sc->valuestring)
                        snprintf(o->code, sizeof(o->code), "%s",
                                 sc->valuestring);
                if (cJSON_IsString(msg) && msg->valuestring)
                        snprintf(o->message, sizeof(o->message), "%s",
                                 msg->valuestring);
                if (cJSON_IsTrue(ok)) {
                        o->res = SFW_RES_OK;
                        o->err = OSY_OK;
                        continue;
                }
                o->res = sfw_classify_code(o->code);
                o->err = o->res == SFW_RES_RETRY ? OSY_ERR_TRANSIENT
                                                 : OSY_ERR_PERMANENT;
                if (o->res == SFW_RES_RETRY &&
                    !strcmp(o->code, "REQUEST_LIMIT_EXCEEDED"))
                        o->err = OSY_ERR_THROTTLED;
        }
out:
        cJSON_Delete(root);
        return err;
}

void sfw_rest_error(const char *body, char *code, size_t code_size,
                    char *message, size_t message_size)
{
        cJSON *root = cJSON_Parse(body ? body : "");
        const cJSON *e0 =
            cJSON_IsArray(root) ? cJSON_GetArrayItem(root, 0) : root;
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e0, "errorCode");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e0, "message");

        code[0] = message[0] = '\0';
        if (cJSON_IsString(c) && c->valuestring)
                snprintf(code, code_size, "%s", c->valuestring);
        if (cJSON_IsString(m) && m->valuestring)
                snprintf(message, message_size, "%s", m->valuestring);
        cJSON_Delete(root);
}

/* ---- quota --------------------------------------------------------------- */

/* Parse the decimal digits at @p p (no sign) up to SFW_QUOTA_MAX; *endp
 * gets the first byte after them. -1 if none, or too large. */
static int quota_number(const char *p, const char **endp, int64_t *out)
{
        int64_t v     = 0;
        const char *s = p;

        for (; *s >= '0' && *s <= '9'; s++) {
                v = v * 10 + (*s - '0');
                if (v > SFW_QUOTA_MAX)
                        return -1;
        }
        *endp = s;
        if (s == p)
                return -1;
        *out = v;
        return 0;
}

int sfw_limit_info_parse(const char *value, int64_t *used, int64_t *max)
{
        const char *p = value ? strstr(value, "api-usage=") : NULL;
        const char *end;
        int64_t u, m;

        /* "per-app-api-usage=" also contains the needle: take the one at
         * the start or after a separator. */
        while (p && p != value && p[-1] != ' ' && p[-1] != ';' && p[-1] != ',')
                p = strstr(p + 1, "api-usage=");
        if (!p)
                return -1;
        p += strlen("api-usage=");
        if (quota_number(p, &end, &u) || *end != '/')
                return -1;
        if (quota_number(end + 1, &end, &m) || m <= 0)
                return -1;
        *used = u;
        *max  = m;
        return 0;
}

/* An early /limits example sends numbers as strings: accept both, as
 * whole numbers in 0..SFW_QUOTA_MAX (a fraction, a sign, an exponent
 * beyond it or trailing bytes: -1). */
static int json_int(const cJSON *it, int64_t *out)
{
        const char *end;

        if (cJSON_IsNumber(it)) {
                double d = it->valuedouble;
                if (!(d >= 0 && d <= (double)SFW_QUOTA_MAX) || d != floor(d))
                        return -1;
                *out = (int64_t)d;
                return 0;
        }
        if (cJSON_IsString(it) && it->valuestring &&
            !quota_number(it->valuestring, &end, out) && !*end)
                return 0;
        return -1;
}

int sfw_limits_parse(const char *body, int64_t *max, int64_t *remaining)
{
        cJSON *root = cJSON_Parse(body ? body : "");
        const cJSON *d =
            cJSON_GetObjectItemCaseSensitive(root, "DailyApiRequests");
        int rc = -1;

        if (cJSON_IsObject(d) &&
            !json_int(cJSON_GetObjectItemCaseSensitive(d, "Max"), max) &&
            !json_int(cJSON_GetObjectItemCaseSensitive(d, "Remaining"),
                      remaining) &&
            *max > 0 && *remaining <= *max)
                rc = 0;
        cJSON_Delete(root);
        return rc;
}

int sfw_is_daily_limit(int status, const char *body)
{
        char code[64], msg[256];

        if (status != 403 || !body)
                return 0;
        sfw_rest_error(body, code, sizeof(code), msg, sizeof(msg));
        if (strcmp(code, "REQUEST_LIMIT_EXCEEDED"))
                return 0;
        /* The concurrent-request cap uses the same code; it clears in
         * seconds. Anything else with this code is the daily allowance. */
        return !strstr(msg, "Concurrent");
}

void sfw_quota_init(struct sfw_quota *q, int reserve_pct, int64_t probe_ms)
{
        memset(q, 0, sizeof(*q));
        q->reserve_pct = reserve_pct;
        q->probe_ms    = probe_ms > 0 ? probe_ms : 60000;
}

int64_t sfw_quota_reserve(const struct sfw_quota *q)
{
        return q->have ? q->max * q->reserve_pct / 100 : 0;
}

void sfw_quota_observe(struct sfw_quota *q, int64_t used, int64_t max,
                       int64_t now_ms)
{
        q->have = 1;
        q->used = used;
        q->max  = max;
        if (max - used > sfw_quota_reserve(q)) {
                q->paused = 0;
                return;
        }
        /* At the reserve: what is left belongs to the org's other
         * integrations. Look again later; the allowance is a rolling
         * 24 h window, so it comes back by itself. */
        if (!q->paused || q->paused_until <= now_ms)
                q->paused_until = now_ms + q->probe_ms;
        q->paused = 1;
}

void sfw_quota_exhausted(struct sfw_quota *q, int64_t now_ms)
{
        if (q->have)
                q->used = q->max;
        if (!q->paused || q->paused_until <= now_ms)
                q->paused_until = now_ms + q->probe_ms;
        q->paused = 1;
}

int sfw_quota_may_call(const struct sfw_quota *q, int64_t now_ms,
                       int64_t *until)
{
        (void)now_ms;
        if (!q->paused)
                return 1;
        *until = q->paused_until;
        return 0;
}
