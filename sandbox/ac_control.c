/*
 * ac_control.c - scenario controls under /sandbox/ac/<tenant>/...: act as
 * an AC user, admin or AC itself would (unsubscribe links, admin changes,
 * bounces, tags), each firing the webhooks AC would fire with the right
 * initiated_from; plus account settings and the import clock.
 */
#include "ac_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* {"error":...} with @p status: the controls' own error shape. */
void ac_control_reply(struct ac_ctx *x, int status, const char *error)
{
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "error", error);
        ac_reply(x, status, o);
}

/* "contact" (an id) wins over "email". */
struct ac_contact *ac_control_contact(struct ac_ctx *x, const cJSON *body)
{
        const cJSON *id   = cJSON_GetObjectItemCaseSensitive(body, "contact");
        const char *email = ac_json_str(body, "email");
        if (id)
                return ac_contact_by_id(x->a, ac_json_id(id));
        return email ? ac_contact_by_email(x->a, email) : NULL;
}

/* The "source" of a control body, checked; @p dflt when absent. */
static const char *body_source(const cJSON *body, const char *dflt)
{
        const char *s = ac_json_str(body, "source");
        if (!s)
                return dflt;
        return ac_source_known(s) ? s : NULL;
}

/* An id from a control body ("12" or 12), 0 when absent. */
static long body_id(const cJSON *body, const char *key)
{
        return ac_json_id(cJSON_GetObjectItemCaseSensitive(body, key));
}

/* {"ok":true,"contact":"7","changed":N,"deliveries":M} */
static void reply_done(struct ac_ctx *x, const struct ac_contact *c,
                       int changed, uint64_t rec_before)
{
        cJSON *o = cJSON_CreateObject();
        cJSON_AddTrueToObject(o, "ok");
        if (c)
                cJSON_AddStringToObject(o, "contact", c->idstr);
        cJSON_AddNumberToObject(o, "changed", changed);
        cJSON_AddNumberToObject(o, "deliveries",
                                (double)(x->a->next_rec - rec_before));
        ac_reply(x, 200, o);
}

/* Unsubscribe link (public by default): one list, or "all" active ones. */
static void ctl_unsubscribe(struct ac_ctx *x, const cJSON *body,
                            struct ac_contact *c, uint64_t before)
{
        const char *source = body_source(body, "public");
        const cJSON *jl    = cJSON_GetObjectItemCaseSensitive(body, "list");
        int all =
            !jl || (cJSON_IsString(jl) && !strcmp(jl->valuestring, "all"));
        long list = all ? 0 : ac_json_id(jl);
        if (!source || (!all && !ac_list_find(x->a, list))) {
                ac_control_reply(x, 400,
                                 !source ? "unknown source" : "unknown list");
                return;
        }
        const char *reason = ac_json_str(body, "reason");
        long campaign      = body_id(body, "campaign");
        int changed        = 0;
        /* collect first: ac_set_status may grow the membership array */
        /* the lists to change, collected before any change: setting a
         * status may grow (move) the membership array */
        size_t n    = c->nml;
        long *lists = calloc(n + 1, sizeof(long));
        size_t k    = 0;
        for (size_t i = 0; lists && i < n; i++)
                if ((all && c->ml[i].status == 1) ||
                    (!all && c->ml[i].list == list))
                        lists[k++] = c->ml[i].list;
        if (!all && !k && lists)
                lists[k++] = list;
        for (size_t i = 0; i < k; i++)
                changed += ac_set_status(x->ac, x->a, c, lists[i], 2, source,
                                         reason, campaign, x->now) > 0;
        free(lists);
        reply_done(x, c, changed, before);
}

/* Admin (default) subscribes a contact to a list: fires subscribe. */
static void ctl_subscribe(struct ac_ctx *x, const cJSON *body,
                          struct ac_contact *c, uint64_t before)
{
        const char *source = body_source(body, "admin");
        long list          = body_id(body, "list");
        if (!source || !ac_list_find(x->a, list)) {
                ac_control_reply(x, 400,
                                 !source ? "unknown source" : "unknown list");
                return;
        }
        int r = ac_set_status(x->ac, x->a, c, list, 1, source, NULL, 0, x->now);
        reply_done(x, c, r > 0, before);
}

/* A hard or soft bounce from a campaign (source system). */
static void ctl_bounce(struct ac_ctx *x, const cJSON *body,
                       struct ac_contact *c, uint64_t before)
{
        const char *type = ac_json_str(body, "type");
        if (!type || (strcmp(type, "hard") && strcmp(type, "soft"))) {
                ac_control_reply(x, 400, "type: hard or soft");
                return;
        }
        /* report whether this bounce is the one that marked the contact */
        int was = c->bounced_date != 0;
        ac_bounce(x->ac, x->a, c, !strcmp(type, "hard"),
                  body_id(body, "campaign"), body_id(body, "message"),
                  body_id(body, "code"), x->now);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddTrueToObject(o, "ok");
        cJSON_AddStringToObject(o, "contact", c->idstr);
        cJSON_AddBoolToObject(o, "bounced", c->bounced_date != 0);
        cJSON_AddBoolToObject(o, "newly_bounced", !was && c->bounced_date);
        cJSON_AddNumberToObject(o, "soft_streak", c->soft_streak);
        cJSON_AddNumberToObject(o, "deliveries",
                                (double)(x->a->next_rec - before));
        ac_reply(x, 200, o);
}

/* Tag or untag by name (created when tagging with an unknown name);
 * fires contact_tag_added / _removed only on a change. */
static void ctl_tag(struct ac_ctx *x, const cJSON *body, struct ac_contact *c,
                    int add, uint64_t before)
{
        const char *source = body_source(body, "admin");
        const char *name   = ac_json_str(body, "tag");
        if (!source || !name || !*name) {
                ac_control_reply(x, 400,
                                 !source ? "unknown source"
                                         : "tag (a name) required");
                return;
        }
        struct ac_tag *t = ac_tag_by_name(x->a, name);
        if (!t && add)
                t = ac_tag_create(x->a, 0, name, "", "contact", x->now);
        struct ac_ctag *ct = t ? ac_ctag_find_tag(c, t->id) : NULL;
        int changed        = 0;
        if (t && add && !ct) {
                changed = ac_ctag_add(x->a, c, t->id, x->now) != NULL;
        } else if (t && !add && ct) {
                ac_ctag_remove(x->a, c, ct->id);
                changed = 1;
        }
        if (changed) {
                struct ac_kv extra[] = {{"tag", t->tag}};
                ac_fire(x->ac, x->a,
                        add ? "contact_tag_added" : "contact_tag_removed",
                        source, c, 0, extra, 1, x->now);
        }
        reply_done(x, c, changed, before);
}

/* Replace *dst by a copy of @p v when it differs. @returns 1 if so. */
static int set_field(char **dst, const char *v)
{
        if (!v || !strcmp(*dst, v))
                return 0;
        char *n = ac_strdup(v);
        if (!n)
                return 0;
        free(*dst);
        *dst = n;
        return 1;
}

/* An admin edit in the AC UI (fires "update"). */
static void ctl_update(struct ac_ctx *x, const cJSON *body,
                       struct ac_contact *c, uint64_t before)
{
        const char *source = body_source(body, "admin");
        if (!source) {
                ac_control_reply(x, 400, "unknown source");
                return;
        }
        int changed = set_field(&c->first_name, ac_json_str(body, "firstName"));
        changed |= set_field(&c->last_name, ac_json_str(body, "lastName"));
        changed |= set_field(&c->phone, ac_json_str(body, "phone"));
        if (changed) {
                c->udate = x->now;
                ac_fire(x->ac, x->a, "update", source, c, 0, NULL, 0, x->now);
        }
        reply_done(x, c, changed, before);
}

/* A contact added in the UI, subscribed to "lists" (fires subscribe). */
static void ctl_create(struct ac_ctx *x, const cJSON *body, uint64_t before)
{
        const char *source = body_source(body, "admin");
        const char *email  = ac_json_str(body, "email");
        if (!source || !email || !ac_email_valid(email)) {
                ac_control_reply(x, 400,
                                 !source ? "unknown source"
                                         : "a valid email is required");
                return;
        }
        if (ac_contact_by_email(x->a, email)) {
                ac_control_reply(x, 409, "contact exists");
                return;
        }
        const cJSON *lists = cJSON_GetObjectItemCaseSensitive(body, "lists");
        const cJSON *l;
        cJSON_ArrayForEach(l, lists)
        {
                if (!ac_list_find(x->a, ac_id_parse(l->string))) {
                        ac_control_reply(x, 400, "unknown list");
                        return;
                }
        }
        struct ac_contact *c = ac_contact_create(x->a, 0, email, x->now);
        if (!c) {
                ac_control_reply(x, 500, "out of memory");
                return;
        }
        (void)set_field(&c->first_name, ac_json_str(body, "firstName"));
        (void)set_field(&c->last_name, ac_json_str(body, "lastName"));
        (void)set_field(&c->phone, ac_json_str(body, "phone"));
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(body, "tags"))
        {
                if (!cJSON_IsString(t) || !t->valuestring[0])
                        continue;
                struct ac_tag *tag = ac_tag_by_name(x->a, t->valuestring);
                if (!tag)
                        tag = ac_tag_create(x->a, 0, t->valuestring, "",
                                            "contact", x->now);
                if (tag && !ac_ctag_find_tag(c, tag->id))
                        (void)ac_ctag_add(x->a, c, tag->id, x->now);
        }
        int changed = 0;
        cJSON_ArrayForEach(l, lists)
        {
                long st =
                    cJSON_IsNumber(l) ? (long)l->valuedouble : ac_json_id(l);
                if (st == 1 || st == 2)
                        changed += ac_set_status(
                                       x->ac, x->a, c, ac_id_parse(l->string),
                                       (int)st, source, NULL, 0, x->now) > 0;
        }
        reply_done(x, c, changed, before);
}

/* Force a raw list status (e.g. the rare 91), without any webhook. */
static void ctl_status(struct ac_ctx *x, const cJSON *body,
                       struct ac_contact *c, uint64_t before)
{
        long list      = body_id(body, "list");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(body, "status");
        long st        = cJSON_IsNumber(s)   ? (long)s->valuedouble
                         : cJSON_IsString(s) ? strtol(s->valuestring, NULL, 10)
                                             : -1;
        if (!ac_list_find(x->a, list) ||
            !(st == 0 || st == 1 || st == 2 || st == 3 || st == 91)) {
                ac_control_reply(x, 400, "list and status (0,1,2,3,91)");
                return;
        }
        int r =
            ac_set_status(x->ac, x->a, c, list, (int)st, NULL, NULL, 0, x->now);
        reply_done(x, c, r > 0, before);
}

/* A campaign reached the contact: the soft-bounce streak starts over. */
static void ctl_delivered(struct ac_ctx *x, struct ac_contact *c,
                          uint64_t before)
{
        c->soft_streak = 0;
        reply_done(x, c, 1, before);
}

/* Change an account's knobs at run time; a new rate restarts the
 * bucket, a new import limit restarts its window. */
static void ctl_settings(struct ac_ctx *x, const cJSON *body)
{
        struct ac_account *a = x->a;
        const cJSON *v;
        const char *tz = ac_json_str(body, "timezone");
        int tzm;
        if (tz && ac_tz_parse(tz, &tzm) != 0) {
                ac_control_reply(x, 400, "timezone: e.g. \"-06:00\"");
                return;
        }
        if (tz)
                a->tz_min = tzm;
        if (cJSON_IsNumber(
                v = cJSON_GetObjectItemCaseSensitive(body, "rate_per_s"))) {
                a->rate_per_s = v->valuedouble;
                memset(&a->bucket, 0, sizeof(a->bucket));
        }
        if ((v = cJSON_GetObjectItemCaseSensitive(body, "rate_mode")))
                a->rate_mode = ac_json_id(v) == 503 ? 503 : 429;
        if (cJSON_IsBool(
                v = cJSON_GetObjectItemCaseSensitive(body, "rate_headers")))
                a->rate_headers = cJSON_IsTrue(v);
        if (cJSON_IsNumber(
                v = cJSON_GetObjectItemCaseSensitive(body, "retry_after_s")))
                a->retry_after_s = (int)v->valuedouble;
        const char *form = ac_json_str(body, "public_unsubscribe_list");
        if (form)
                a->unsub_list_array = !strcmp(form, "array");
        if (cJSON_IsNumber(
                v = cJSON_GetObjectItemCaseSensitive(body, "import_delay_ms")))
                a->import_delay_ms = (int64_t)v->valuedouble;
        if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(
                               body, "import_single_per_min"))) {
                a->import_single_per_min = (int)v->valuedouble;
                free(a->imp_single);
                a->imp_single = NULL;
        }
        if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(
                               body, "import_multi_per_min"))) {
                a->import_multi_per_min = (int)v->valuedouble;
                free(a->imp_multi);
                a->imp_multi = NULL;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddTrueToObject(o, "ok");
        cJSON_AddNumberToObject(o, "rate_per_s", a->rate_per_s);
        cJSON_AddNumberToObject(o, "rate_mode", a->rate_mode);
        cJSON_AddNumberToObject(o, "tz_minutes", a->tz_min);
        ac_reply(x, 200, o);
}

/* Route /sandbox/ac/<tenant>/<action> (lock held). */
void ac_control_dispatch(struct ac_ctx *x, const char *const *seg, size_t nseg)
{
        const char *w = nseg ? seg[0] : "";
        if (!strcmp(w, "webhooks")) {
                ac_control_webhooks(x, seg + 1, nseg - 1);
                return;
        }
        if (strcmp(x->req->method, "POST") || nseg != 1)
                return;
        cJSON *body     = ac_body_json(x);
        uint64_t before = x->a->next_rec;
        if (x->req->body_len && !cJSON_IsObject(body)) {
                ac_control_reply(x, 400, "body: a JSON object");
                goto out;
        }
        if (!strcmp(w, "settings")) {
                ctl_settings(x, body);
                goto out;
        }
        if (!strcmp(w, "contacts")) {
                ctl_create(x, body, before);
                goto out;
        }
        if (!strcmp(w, "imports")) {
                ac_import_apply_all(x->a, x->now);
                reply_done(x, NULL, 1, before);
                goto out;
        }
        static const char *const per_contact[] = {
            "unsubscribe", "subscribe", "bounce", "delivered",
            "tag",         "untag",     "update", "status"};
        int known = 0;
        for (size_t i = 0; i < sizeof(per_contact) / sizeof(*per_contact); i++)
                known |= !strcmp(w, per_contact[i]);
        if (!known)
                goto out;
        struct ac_contact *c = ac_control_contact(x, body);
        if (!c) {
                ac_control_reply(x, 404,
                                 "no such contact (give \"contact\" "
                                 "id or \"email\")");
                goto out;
        }
        if (!strcmp(w, "unsubscribe"))
                ctl_unsubscribe(x, body, c, before);
        else if (!strcmp(w, "subscribe"))
                ctl_subscribe(x, body, c, before);
        else if (!strcmp(w, "bounce"))
                ctl_bounce(x, body, c, before);
        else if (!strcmp(w, "delivered"))
                ctl_delivered(x, c, before);
        else if (!strcmp(w, "tag") || !strcmp(w, "untag"))
                ctl_tag(x, body, c, !strcmp(w, "tag"), before);
        else if (!strcmp(w, "update"))
                ctl_update(x, body, c, before);
        else if (!strcmp(w, "status"))
                ctl_status(x, body, c, before);
out:
        cJSON_Delete(body);
}
