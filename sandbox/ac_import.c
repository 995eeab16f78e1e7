/*
 * ac_import.c - AC bulk import: POST /import/bulk_import with its size and
 * per-minute limits (reported as 400s, in the endpoint's own shape), the
 * asynchronous apply (driven by the simulator clock, firing no webhooks),
 * and the status endpoints GET /import/info and GET /import/bulk_import.
 */
#include "ac_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AC_IMPORTS_KEEP 1000 /* batches remembered for /import/info */
#define AC_WEEK_MS ((int64_t)7 * 24 * 3600 * 1000)

/* NULL-safe. */
void ac_import_free(struct ac_import *im)
{
        if (!im)
                return;
        cJSON_Delete(im->contacts);
        cJSON_Delete(im->success);
        cJSON_Delete(im->failure);
        free(im);
}

/* {"success":0,"message":...,"failureReasons":[...]} (reasons consumed). */
static void reply_failure(struct ac_ctx *x, const char *message, cJSON *reasons)
{
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "success", 0);
        cJSON_AddStringToObject(o, "message", message);
        if (reasons)
                cJSON_AddItemToObject(o, "failureReasons", reasons);
        ac_reply(x, 400, o);
}

/* The importer's validation failure (a 400). */
static void reply_invalid(struct ac_ctx *x, cJSON *reasons)
{
        reply_failure(x,
                      "JSON payload did not pass validation. Please review "
                      "failureReasons for details.",
                      reasons);
}

/* failureReasons with one string: the form the rate limit uses. */
static cJSON *one_reason(const char *s)
{
        cJSON *arr = cJSON_CreateArray();
        cJSON_AddItemToArray(arr, cJSON_CreateString(s));
        return arr;
}

/*
 * Sliding one-minute window kept as a ring of the last @p limit request
 * times: full when the oldest of them is less than a minute old.
 */
static int window_take(int64_t **ring, size_t *pos, int limit, int64_t now)
{
        if (limit <= 0)
                return 1;
        if (!*ring) {
                *ring = calloc((size_t)limit, sizeof(**ring));
                *pos  = 0;
                if (!*ring)
                        return 1;
        }
        size_t p = *pos % (size_t)limit;
        if ((*ring)[p] && now - (*ring)[p] < 60000)
                return 0;
        (*ring)[p] = now;
        *pos       = (p + 1) % (size_t)limit;
        return 1;
}

/* Per-contact checks; @returns the failureReasons array (maybe empty). */
static cJSON *validate(struct ac_account *a, const cJSON *contacts)
{
        cJSON *reasons = cJSON_CreateArray();
        int i          = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, contacts)
        {
                const char *why   = NULL;
                const char *email = ac_json_str(c, "email");
                const cJSON *tags = cJSON_GetObjectItemCaseSensitive(c, "tags");
                if (!cJSON_IsObject(c))
                        why = "Each contact must be an object.";
                else if (!email)
                        why = "The email field is required.";
                else if (!ac_email_valid(email))
                        why = "The email field must be a valid email address.";
                else if (tags && !cJSON_IsArray(tags))
                        why = "The tags field must be an array of strings.";
                for (int k = 0; !why && k < 2; k++) {
                        const char *key = k ? "unsubscribe" : "subscribe";
                        const cJSON *arr =
                            cJSON_GetObjectItemCaseSensitive(c, key);
                        const cJSON *e;
                        if (arr && !cJSON_IsArray(arr))
                                why = "subscribe/unsubscribe must be arrays of "
                                      "{\"listid\":N}.";
                        cJSON_ArrayForEach(e, arr)
                        {
                                long l =
                                    ac_json_id(cJSON_GetObjectItemCaseSensitive(
                                        e, "listid"));
                                if (!l || !ac_list_find(a, l))
                                        why = "A listid does not exist.";
                        }
                }
                if (why) {
                        cJSON *r = cJSON_CreateObject();
                        cJSON_AddNumberToObject(r, "contact", i);
                        cJSON_AddStringToObject(r, "failureReason", why);
                        cJSON_AddItemToArray(reasons, r);
                }
                i++;
        }
        return reasons;
}

/* A v4 UUID from the seeded generator, so runs replay. */
static void batch_uuid(sbx_t *sbx, char *out, size_t outsz)
{
        unsigned char b[16];
        for (int i = 0; i < 16; i++)
                b[i] = (unsigned char)(sbx_random(sbx) * 256.0);
        b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
        b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
        snprintf(out, outsz,
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
                 "%02x%02x%02x%02x%02x%02x",
                 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
                 b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* POST /import/bulk_import: size, rate, count, then per-contact checks;
 * the accepted batch waits for its due time (ac_apply_due_imports). */
static void import_post(struct ac_ctx *x)
{
        struct ac_account *a = x->a;
        cJSON *body          = NULL;
        char msg[160];
        /* "under 400,000 bytes": 399,999 is the largest accepted */
        if (x->req->body_len >= a->import_max_bytes) {
                snprintf(msg, sizeof(msg),
                         "The request payload must be smaller than %zu "
                         "bytes.",
                         a->import_max_bytes);
                reply_invalid(x, one_reason(msg));
                goto out;
        }
        /* the contacts array is detached and kept until the apply */
        body            = ac_body_json(x);
        cJSON *contacts = cJSON_GetObjectItemCaseSensitive(body, "contacts");
        if (!cJSON_IsArray(contacts) || cJSON_GetArraySize(contacts) < 1) {
                reply_invalid(x, one_reason("The contacts field is required "
                                            "and must be a non-empty array."));
                goto out;
        }
        size_t n = (size_t)cJSON_GetArraySize(contacts);
        /* The importer's own per-minute limits, answered as 400s. */
        int single = n == 1;
        int limit = single ? a->import_single_per_min : a->import_multi_per_min;
        if (!(single ? window_take(&a->imp_single, &a->imp_single_pos, limit,
                                   x->now)
                     : window_take(&a->imp_multi, &a->imp_multi_pos, limit,
                                   x->now))) {
                snprintf(msg, sizeof(msg),
                         single ? "Up to %d single-contact imports may be "
                                  "requested per minute. Please wait and "
                                  "try again."
                                : "Up to %d imports may be requested per "
                                  "minute. Please wait and try again.",
                         limit);
                reply_failure(x, "Rate limit exceeded.", one_reason(msg));
                goto out;
        }
        /* counted after the rate check: a refused request still costs */
        if (n > a->import_max_contacts) {
                snprintf(msg, sizeof(msg),
                         "Up to %zu contacts may be imported per request.",
                         a->import_max_contacts);
                reply_invalid(x, one_reason(msg));
                goto out;
        }
        cJSON *reasons = validate(a, contacts);
        if (cJSON_GetArraySize(reasons) > 0) {
                reply_invalid(x, reasons);
                goto out;
        }
        cJSON_Delete(reasons);

        struct ac_import *im = calloc(1, sizeof(*im));
        struct ac_import **arr =
            realloc(a->imports, (a->nimports + 1) * sizeof(*arr));
        if (!im || !arr) {
                free(im);
                ac_reply_message(x, 500, "out of memory");
                goto out;
        }
        a->imports = arr;
        batch_uuid(x->sbx, im->batch_id, sizeof(im->batch_id));
        im->created_ms = x->now;
        im->due_ms     = x->now + a->import_delay_ms;
        im->ncontacts  = n;
        im->contacts =
            cJSON_DetachItemFromObjectCaseSensitive(body, "contacts");
        a->imports[a->nimports++] = im;
        a->imports_pending++;
        /* forget the oldest applied batch past the cap */
        if (a->nimports > AC_IMPORTS_KEEP && a->imports[0]->applied) {
                ac_import_free(a->imports[0]);
                memmove(a->imports, a->imports + 1,
                        (a->nimports - 1) * sizeof(*a->imports));
                a->nimports--;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "Success", 1); /* capital S, as AC */
        cJSON_AddNumberToObject(o, "queued_contacts", (double)n);
        cJSON_AddStringToObject(o, "batchId", im->batch_id);
        cJSON_AddStringToObject(o, "message", "Contact import queued");
        ac_reply(x, 200, o);
        /* a zero delay applies at once (still no webhooks) */
        ac_apply_due_imports(x->ac, a, x->now);
out:
        cJSON_Delete(body);
}

/* ---- apply --------------------------------------------------------------- */

/* Replace *dst when @p v is given and differs; note the change. */
static void set_if(char **dst, const char *v, int *changed)
{
        if (!v || !strcmp(*dst, v))
                return;
        char *n = ac_strdup(v);
        if (!n)
                return;
        free(*dst);
        *dst     = n;
        *changed = 1;
}

/* One contact of a batch. @returns the contact, or NULL (a failure). */
static struct ac_contact *apply_one(struct ac_account *a, const cJSON *in,
                                    int64_t now)
{
        /* the fixture's exclusion list: skipped, reported at status time */
        const char *email = ac_json_str(in, "email");
        char *lc          = ac_strlower(email);
        int excluded      = lc && ac_map_get(&a->exclusions, lc) != NULL;
        free(lc);
        if (!email || excluded)
                return NULL;
        struct ac_contact *c = ac_contact_by_email(a, email);
        if (c && c->bounced_hard)
                return NULL; /* the importer refuses bounced addresses */
        if (!c && !(c = ac_contact_create(a, 0, email, now)))
                return NULL;
        int changed = 0;
        set_if(&c->first_name, ac_json_str(in, "first_name"), &changed);
        set_if(&c->last_name, ac_json_str(in, "last_name"), &changed);
        set_if(&c->phone, ac_json_str(in, "phone"), &changed);
        if (changed && c->cdate != now)
                c->udate = now;
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(in, "tags"))
        {
                if (!cJSON_IsString(t) || !t->valuestring[0])
                        continue;
                /* tags that do not exist are created */
                struct ac_tag *tag = ac_tag_by_name(a, t->valuestring);
                if (!tag)
                        tag = ac_tag_create(a, 0, t->valuestring, "", "contact",
                                            now);
                if (tag && !ac_ctag_find_tag(c, tag->id))
                        (void)ac_ctag_add(a, c, tag->id, now);
        }
        const cJSON *e;
        /* list changes go through ac_set_status with no source: no
         * webhook, as AC's mass operations fire none */
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(in, "subscribe"))
        {
                long l =
                    ac_json_id(cJSON_GetObjectItemCaseSensitive(e, "listid"));
                struct ac_membership *m = ac_membership_find(c, l);
                /* never re-subscribes an unsubscribed (or bounced) one */
                if (m && (m->status == 2 || m->status == 3))
                        continue;
                (void)ac_set_status(NULL, a, c, l, 1, NULL, NULL, 0, now);
        }
        cJSON_ArrayForEach(e,
                           cJSON_GetObjectItemCaseSensitive(in, "unsubscribe"))
        {
                long l =
                    ac_json_id(cJSON_GetObjectItemCaseSensitive(e, "listid"));
                (void)ac_set_status(NULL, a, c, l, 2, NULL, NULL, 0, now);
        }
        return c;
}

/* Apply one batch (no webhooks): success holds contact ids, failure
 * the refused emails. */
static void apply_batch(struct ac_account *a, struct ac_import *im, int64_t now)
{
        im->success = cJSON_CreateArray();
        im->failure = cJSON_CreateArray();
        const cJSON *in;
        cJSON_ArrayForEach(in, im->contacts)
        {
                struct ac_contact *c = apply_one(a, in, now);
                if (c)
                        cJSON_AddItemToArray(im->success,
                                             cJSON_CreateString(c->idstr));
                else
                        cJSON_AddItemToArray(
                            im->failure,
                            cJSON_CreateString(ac_json_str(in, "email")
                                                   ? ac_json_str(in, "email")
                                                   : ""));
        }
        cJSON_Delete(im->contacts);
        im->contacts = NULL;
        im->applied  = 1;
}

/* Apply every batch whose due time passed on the simulator clock; called
 * at the start of every AC request, control and state dump. */
void ac_apply_due_imports(struct sbx_ac *ac, struct ac_account *a, int64_t now)
{
        (void)ac;
        if (!a->imports_pending)
                return; /* the hot path: nothing queued */
        for (size_t i = 0; i < a->nimports; i++) {
                struct ac_import *im = a->imports[i];
                if (im->applied || im->due_ms > now)
                        continue;
                apply_batch(a, im, now);
                a->imports_pending--;
        }
}

/* Apply every queued batch now, whatever the clock says (a control). */
void ac_import_apply_all(struct ac_account *a, int64_t now)
{
        for (size_t i = 0; i < a->nimports; i++) {
                if (a->imports[i]->applied)
                        continue;
                apply_batch(a, a->imports[i], now);
                a->imports_pending--;
        }
}

/* ---- status -------------------------------------------------------------- */

static void import_info(struct ac_ctx *x)
{
        const char *id = sbx_req_query(x->req, "batchId");
        if (!id || !*id) {
                reply_failure(x, "'batchId' is a required field.", NULL);
                return;
        }
        struct ac_import *im = NULL;
        for (size_t i = 0; i < x->a->nimports && !im; i++)
                if (!strcmp(x->a->imports[i]->batch_id, id))
                        im = x->a->imports[i];
        if (!im) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddNumberToObject(o, "success", 0);
                cJSON_AddStringToObject(o, "message", "Batch not found.");
                ac_reply(x, 404, o);
                return;
        }
        cJSON *o = cJSON_CreateObject();
        if (im->applied) {
                cJSON_AddStringToObject(o, "status", "completed");
                cJSON_AddItemToObject(o, "success",
                                      cJSON_Duplicate(im->success, 1));
                cJSON_AddItemToObject(o, "failure",
                                      cJSON_Duplicate(im->failure, 1));
        } else {
                /* right after the POST AC may say status:false */
                if (x->now - im->created_ms < 1000)
                        cJSON_AddFalseToObject(o, "status");
                else
                        cJSON_AddStringToObject(o, "status", "outstanding");
                cJSON_AddArrayToObject(o, "success");
                cJSON_AddArrayToObject(o, "failure");
        }
        ac_reply(x, 200, o);
}

/* Per-day aggregates of the last 7 days: outstanding and completed. */
static void import_summary(struct ac_ctx *x)
{
        cJSON *o    = cJSON_CreateObject();
        cJSON *outs = cJSON_AddArrayToObject(o, "outstanding");
        cJSON *done = cJSON_AddArrayToObject(o, "recentlyCompleted");
        for (size_t i = 0; i < x->a->nimports; i++) {
                const struct ac_import *im = x->a->imports[i];
                if (x->now - im->created_ms > AC_WEEK_MS)
                        continue;
                char day[AC_TIME_LEN];
                ac_fmt_date(day, sizeof(day), im->created_ms, x->a->tz_min);
                cJSON *arr = im->applied ? done : outs;
                cJSON *row = NULL, *it;
                cJSON_ArrayForEach(it, arr)
                {
                        const char *d = ac_json_str(it, "forDate");
                        if (d && !strcmp(d, day))
                                row = it;
                }
                if (!row) {
                        row = cJSON_CreateObject();
                        cJSON_AddStringToObject(row, "forDate", day);
                        cJSON_AddStringToObject(row, "batches", "0");
                        cJSON_AddStringToObject(row, "contacts", "0");
                        cJSON_AddItemToArray(arr, row);
                }
                char num[24];
                long b = strtol(ac_json_str(row, "batches"), NULL, 10) + 1;
                long c = strtol(ac_json_str(row, "contacts"), NULL, 10) +
                         (long)im->ncontacts;
                snprintf(num, sizeof(num), "%ld", b);
                cJSON_ReplaceItemInObjectCaseSensitive(row, "batches",
                                                       cJSON_CreateString(num));
                snprintf(num, sizeof(num), "%ld", c);
                cJSON_ReplaceItemInObjectCaseSensitive(row, "contacts",
                                                       cJSON_CreateString(num));
        }
        ac_reply(x, 200, o);
}

/* /import/bulk_import (POST, GET), /import/info (GET) */
void ac_api_import(struct ac_ctx *x, const char *const *seg, size_t nseg)
{
        const char *m = x->req->method;
        if (nseg != 1)
                return;
        if (!strcmp(seg[0], "bulk_import")) {
                if (!strcmp(m, "POST"))
                        import_post(x);
                else if (!strcmp(m, "GET"))
                        import_summary(x);
        } else if (!strcmp(seg[0], "info") && !strcmp(m, "GET")) {
                import_info(x);
        }
}
