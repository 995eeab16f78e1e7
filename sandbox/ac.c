/*
 * ac.c - the ActiveCampaign simulator's frame: per-tenant accounts (create,
 * seed from the fixture, dump, reset), the /api/3 router with the Api-Token
 * gate and the account-wide rate limit, and the shared response helpers.
 */
#include "ac_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AC_DEFAULT_TOKEN "sandbox-ac-token"
#define AC_DEFAULT_TZ "-06:00"

/* ---- options ------------------------------------------------------------- */

/* A numeric --set option ("ac.rate_per_s=2"), or @p dflt when absent or
 * not a number: a typo must not turn the limit off silently. */
static double opt_num(sbx_t *sbx, const char *key, double dflt)
{
        const char *v = sbx ? sbx_option(sbx, key) : NULL;
        if (!v || !*v)
                return dflt;
        char *end = NULL;
        double d  = strtod(v, &end);
        return end && !*end ? d : dflt;
}

/* ---- accounts ------------------------------------------------------------ */

struct ac_account *ac_account_find(struct sbx_ac *ac, const char *tenant)
{
        /* A handful of tenants: a scan is cheaper than a map here. */
        for (size_t i = 0; tenant && i < ac->nacc; i++)
                if (!strcmp(ac->acc[i]->tenant, tenant))
                        return ac->acc[i];
        return NULL;
}

/* Free an account and everything it owns (lock held, or at shutdown). */
static void account_free(struct ac_account *a)
{
        if (!a)
                return;
        for (size_t i = 0; i < a->ncontacts; i++)
                ac_contact_free(a->contacts[i]);
        free(a->contacts);
        ac_map_clear(&a->by_id);
        ac_map_clear(&a->by_email);
        ac_map_clear(&a->ctag_by_id);
        for (size_t i = 0; i < a->nlists; i++) {
                free(a->lists[i].name);
                free(a->lists[i].stringid);
        }
        free(a->lists);
        for (size_t i = 0; i < a->ntags; i++) {
                free(a->tags[i]->tag);
                free(a->tags[i]->tag_lc);
                free(a->tags[i]->description);
                free(a->tags[i]->type);
                free(a->tags[i]);
        }
        free(a->tags);
        ac_map_clear(&a->tag_by_id);
        ac_map_clear(&a->tag_by_name);
        for (size_t i = 0; i < a->nhooks; i++)
                ac_hook_free(a->hooks[i]);
        free(a->hooks);
        for (size_t i = 0; i < a->nimports; i++)
                ac_import_free(a->imports[i]);
        free(a->imports);
        ac_map_clear(&a->exclusions);
        for (size_t i = 0; i < a->ntok; i++)
                free(a->tokens[i]);
        free(a->tokens);
        free(a->imp_single);
        free(a->imp_multi);
        ac_account_deliveries_free(a);
        free(a->tenant);
        free(a);
}

/* An empty account with the defaults (and the --set ac.* overrides). */
static struct ac_account *account_new(struct sbx_ac *ac, const char *tenant)
{
        struct ac_account *a = calloc(1, sizeof(*a));
        if (!a)
                return NULL;
        a->tenant = ac_strdup(tenant);
        if (!a->tenant) {
                free(a);
                return NULL;
        }
        const char *tz = sbx_option(ac->sbx, "ac.timezone");
        if (!tz || ac_tz_parse(tz, &a->tz_min) != 0)
                (void)ac_tz_parse(AC_DEFAULT_TZ, &a->tz_min);
        a->rate_per_s = opt_num(ac->sbx, "ac.rate_per_s", 5);
        a->rate_mode =
            (int)opt_num(ac->sbx, "ac.rate_mode", 429) == 503 ? 503 : 429;
        a->rate_headers  = (int)opt_num(ac->sbx, "ac.rate_headers", 1) != 0;
        a->retry_after_s = (int)opt_num(ac->sbx, "ac.retry_after_s", 0);
        a->import_delay_ms =
            (int64_t)opt_num(ac->sbx, "ac.import_delay_ms", 1000);
        a->import_single_per_min = 20;
        a->import_multi_per_min  = 100;
        a->import_max_contacts   = 250;
        a->import_max_bytes      = 400000;
        a->next_contact = a->next_ctag = a->next_clist = a->next_bounce = 1;
        a->next_field = a->next_tag = a->next_hook = 1;
        a->first_rec = a->next_rec = 1;
        return a;
}

/* Append @p a to the tenant table. @returns 0, -1 on OOM (a not taken). */
static int account_add(struct sbx_ac *ac, struct ac_account *a)
{
        struct ac_account **n =
            realloc(ac->acc, (ac->nacc + 1) * sizeof(*ac->acc));
        if (!n)
                return -1;
        ac->acc             = n;
        ac->acc[ac->nacc++] = a;
        return 0;
}

/* Drop the account of @p tenant if any: seeding the same tenant twice
 * (POST /sandbox/fixture) replaces it. */
static void account_remove(struct sbx_ac *ac, const char *tenant)
{
        for (size_t i = 0; i < ac->nacc; i++) {
                if (strcmp(ac->acc[i]->tenant, tenant))
                        continue;
                account_free(ac->acc[i]);
                memmove(&ac->acc[i], &ac->acc[i + 1],
                        (ac->nacc - i - 1) * sizeof(*ac->acc));
                ac->nacc--;
                return;
        }
}

/* ---- lifecycle ----------------------------------------------------------- */

/* Module state plus its delivery thread; the accounts come from the
 * fixture (sbx_ac_seed). */
struct sbx_ac *sbx_ac_new(sbx_t *sbx)
{
        struct sbx_ac *ac = calloc(1, sizeof(*ac));
        if (!ac)
                return NULL;
        ac->sbx        = sbx;
        ac->timeout_ms = (long)opt_num(sbx, "ac.webhook_timeout_ms", 2000);
        if (pthread_mutex_init(&ac->qmu, NULL) != 0) {
                free(ac);
                return NULL;
        }
        if (pthread_cond_init(&ac->qcv, NULL) != 0) {
                pthread_mutex_destroy(&ac->qmu);
                free(ac);
                return NULL;
        }
        if (ac_delivery_start(ac) != 0) {
                sbx_ac_free(ac);
                return NULL;
        }
        return ac;
}

void sbx_ac_free(struct sbx_ac *ac)
{
        if (!ac)
                return;
        /* Joins the delivery thread: the caller must not hold the lock. */
        ac_delivery_stop(ac);
        for (size_t i = 0; i < ac->nacc; i++)
                account_free(ac->acc[i]);
        free(ac->acc);
        pthread_cond_destroy(&ac->qcv);
        pthread_mutex_destroy(&ac->qmu);
        free(ac);
}

void sbx_ac_reset(struct sbx_ac *ac)
{
        if (!ac)
                return;
        for (size_t i = 0; i < ac->nacc; i++)
                account_free(ac->acc[i]);
        free(ac->acc);
        ac->acc  = NULL;
        ac->nacc = 0;
        /* Deliveries in flight belong to the old state: drop their
         * results when they come back. */
        ac->epoch++;
        ac_delivery_clear(ac);
}

/* ---- fixture ------------------------------------------------------------- */

static int fx_err(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fx_err(char *err, size_t errsz, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        if (err && errsz)
                vsnprintf(err, errsz, fmt, ap);
        va_end(ap);
        return -1;
}

/* A number given as a JSON number or a numeric string. */
static int fx_num(const cJSON *o, const char *key, double *out)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        if (cJSON_IsNumber(v)) {
                *out = v->valuedouble;
                return 1;
        }
        if (cJSON_IsString(v) && v->valuestring[0]) {
                char *end = NULL;
                double d  = strtod(v->valuestring, &end);
                if (end && !*end) {
                        *out = d;
                        return 1;
                }
        }
        return 0;
}

/* The string at @p k1, else at @p k2: fixtures may say first_name or
 * firstName, like the import and the API do. */
static const char *fx_str2(const cJSON *o, const char *k1, const char *k2)
{
        const char *s = ac_json_str(o, k1);
        return s ? s : (k2 ? ac_json_str(o, k2) : NULL);
}

/* Account-wide knobs: timezone, rate limit, import limits, keys,
 * exclusions. Keys default to --set ac.api_token or AC_DEFAULT_TOKEN. */
static int fx_settings(sbx_t *sbx, struct ac_account *a, const cJSON *fx,
                       char *err, size_t errsz)
{
        double d;
        const char *tz = ac_json_str(fx, "timezone");
        if (tz && ac_tz_parse(tz, &a->tz_min) != 0)
                return fx_err(err, errsz, "ac.timezone: bad offset '%s'", tz);
        if (fx_num(fx, "rate_per_s", &d))
                a->rate_per_s = d;
        if (fx_num(fx, "rate_mode", &d))
                a->rate_mode = (int)d == 503 ? 503 : 429;
        const cJSON *rh = cJSON_GetObjectItemCaseSensitive(fx, "rate_headers");
        if (cJSON_IsBool(rh))
                a->rate_headers = cJSON_IsTrue(rh);
        if (fx_num(fx, "retry_after_s", &d))
                a->retry_after_s = (int)d;
        const char *form = ac_json_str(fx, "public_unsubscribe_list");
        if (form && strcmp(form, "array") && strcmp(form, "list"))
                return fx_err(err, errsz,
                              "ac.public_unsubscribe_list: \"list\" or "
                              "\"array\"");
        a->unsub_list_array = form && !strcmp(form, "array");
        const cJSON *im     = cJSON_GetObjectItemCaseSensitive(fx, "import");
        if (cJSON_IsObject(im)) {
                if (fx_num(im, "delay_ms", &d))
                        a->import_delay_ms = (int64_t)d;
                if (fx_num(im, "single_per_min", &d) && d >= 0)
                        a->import_single_per_min = (int)d;
                if (fx_num(im, "multi_per_min", &d) && d >= 0)
                        a->import_multi_per_min = (int)d;
                if (fx_num(im, "max_contacts", &d) && d >= 1)
                        a->import_max_contacts = (size_t)d;
                if (fx_num(im, "max_bytes", &d) && d >= 1)
                        a->import_max_bytes = (size_t)d;
        }
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(fx, "api_tokens");
        const cJSON *one = cJSON_GetObjectItemCaseSensitive(fx, "api_token");
        size_t n = (cJSON_IsArray(tok) ? (size_t)cJSON_GetArraySize(tok) : 0) +
                   (cJSON_IsString(one) ? 1 : 0);
        a->tokens = calloc(n ? n : 1, sizeof(char *));
        if (!a->tokens)
                return fx_err(err, errsz, "out of memory");
        if (cJSON_IsString(one))
                a->tokens[a->ntok++] = ac_strdup(one->valuestring);
        const cJSON *t;
        cJSON_ArrayForEach(t, tok)
        {
                if (!cJSON_IsString(t))
                        return fx_err(err, errsz,
                                      "ac.api_tokens: strings expected");
                a->tokens[a->ntok++] = ac_strdup(t->valuestring);
        }
        if (!a->ntok) {
                const char *dflt = sbx_option(sbx, "ac.api_token");
                a->tokens[a->ntok++] =
                    ac_strdup(dflt ? dflt : AC_DEFAULT_TOKEN);
        }
        const cJSON *ex;
        cJSON_ArrayForEach(ex,
                           cJSON_GetObjectItemCaseSensitive(fx, "exclusions"))
        {
                char *lc =
                    cJSON_IsString(ex) ? ac_strlower(ex->valuestring) : NULL;
                if (lc)
                        (void)ac_map_put(&a->exclusions, lc, (void *)1);
                free(lc);
        }
        return 0;
}

/* "lists":[{id,name,stringid}] - ids default to the next free one. */
static int fx_lists(struct ac_account *a, const cJSON *fx, int64_t now,
                    char *err, size_t errsz)
{
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(fx, "lists");
        int n            = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
        if (!n)
                return 0;
        a->lists = calloc((size_t)n, sizeof(*a->lists));
        if (!a->lists)
                return fx_err(err, errsz, "out of memory");
        long next = 1;
        const cJSON *l;
        cJSON_ArrayForEach(l, arr)
        {
                long id = ac_json_id(cJSON_GetObjectItemCaseSensitive(l, "id"));
                if (!id)
                        id = next;
                if (ac_list_find(a, id))
                        return fx_err(err, errsz, "ac.lists: id %ld twice", id);
                struct ac_list *li = &a->lists[a->nlists++];
                const char *name   = ac_json_str(l, "name");
                li->id             = id;
                li->name           = ac_strdup(name ? name : "List");
                li->stringid       = ac_strdup(ac_json_str(l, "stringid"));
                li->cdate          = now;
                if (id >= next)
                        next = id + 1;
        }
        return 0;
}

/* "tags":[{id,tag,description,tagType}] - names unique, any case. */
static int fx_tags(struct ac_account *a, const cJSON *fx, int64_t now,
                   char *err, size_t errsz)
{
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(fx, "tags"))
        {
                const char *name = fx_str2(t, "tag", "name");
                if (!name || !*name)
                        return fx_err(err, errsz, "ac.tags: 'tag' missing");
                long id = ac_json_id(cJSON_GetObjectItemCaseSensitive(t, "id"));
                if ((id && ac_tag_by_id(a, id)) || ac_tag_by_name(a, name))
                        return fx_err(err, errsz, "ac.tags: '%s' twice", name);
                if (!ac_tag_create(a, id, name, ac_json_str(t, "description"),
                                   fx_str2(t, "tagType", NULL), now))
                        return fx_err(err, errsz, "out of memory");
        }
        return 0;
}

/* A fixture contact's "lists":{"<list id>":status}; statuses 0/1/2/3
 * and the rare 91 are allowed, set without webhooks. */
static int fx_contact_lists(struct ac_account *a, struct ac_contact *c,
                            const cJSON *lists, int64_t now, char *err,
                            size_t errsz)
{
        const cJSON *l;
        cJSON_ArrayForEach(l, lists)
        {
                long list = ac_id_parse(l->string);
                double st = -1;
                if (cJSON_IsNumber(l))
                        st = l->valuedouble;
                else if (cJSON_IsString(l))
                        st = (double)strtol(l->valuestring, NULL, 10);
                if (!list || !ac_list_find(a, list))
                        return fx_err(err, errsz,
                                      "ac.contacts[%s].lists: no list '%s'",
                                      c->email, l->string ? l->string : "");
                if (!(st == 0 || st == 1 || st == 2 || st == 3 || st == 91))
                        return fx_err(err, errsz,
                                      "ac.contacts[%s].lists: bad status",
                                      c->email);
                int created;
                struct ac_membership *m =
                    ac_membership_get(a, c, list, now, &created);
                if (!m)
                        return fx_err(err, errsz, "out of memory");
                m->status = (int)st;
        }
        return 0;
}

/* "contacts":[...]: email required and unique (case-insensitive); tags
 * by name (created when unknown); lists by id. No webhook fires while
 * seeding. */
static int fx_contacts(struct ac_account *a, const cJSON *fx, int64_t now,
                       char *err, size_t errsz)
{
        const cJSON *o;
        cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(fx, "contacts"))
        {
                const char *email = ac_json_str(o, "email");
                if (!email || !ac_email_valid(email))
                        return fx_err(err, errsz,
                                      "ac.contacts: bad or missing email");
                if (ac_contact_by_email(a, email))
                        return fx_err(err, errsz, "ac.contacts: '%s' twice",
                                      email);
                long id = ac_json_id(cJSON_GetObjectItemCaseSensitive(o, "id"));
                if (id && ac_contact_by_id(a, id))
                        return fx_err(err, errsz, "ac.contacts: id %ld twice",
                                      id);
                int64_t cdate = now;
                (void)ac_parse_time(ac_json_str(o, "cdate"), a->tz_min, &cdate);
                struct ac_contact *c = ac_contact_create(a, id, email, cdate);
                if (!c)
                        return fx_err(err, errsz, "out of memory");
                c->udate = c->cdate;
                (void)ac_parse_time(ac_json_str(o, "udate"), a->tz_min,
                                    &c->udate);
                const char *s;
                if ((s = fx_str2(o, "first_name", "firstName"))) {
                        free(c->first_name);
                        c->first_name = ac_strdup(s);
                }
                if ((s = fx_str2(o, "last_name", "lastName"))) {
                        free(c->last_name);
                        c->last_name = ac_strdup(s);
                }
                if ((s = ac_json_str(o, "phone"))) {
                        free(c->phone);
                        c->phone = ac_strdup(s);
                }
                double d;
                if (fx_num(o, "bounced_hard", &d))
                        c->bounced_hard = (int)d;
                if (fx_num(o, "bounced_soft", &d))
                        c->bounced_soft = (int)d;
                if (c->bounced_hard)
                        c->bounced_date = c->udate;
                const cJSON *t;
                cJSON_ArrayForEach(t,
                                   cJSON_GetObjectItemCaseSensitive(o, "tags"))
                {
                        if (!cJSON_IsString(t))
                                return fx_err(err, errsz,
                                              "ac.contacts[%s].tags: names "
                                              "expected",
                                              email);
                        struct ac_tag *tag = ac_tag_by_name(a, t->valuestring);
                        if (!tag)
                                tag = ac_tag_create(a, 0, t->valuestring, "",
                                                    "contact", now);
                        if (!tag || (!ac_ctag_find_tag(c, tag->id) &&
                                     !ac_ctag_add(a, c, tag->id, cdate)))
                                return fx_err(err, errsz, "out of memory");
                }
                if (fx_contact_lists(
                        a, c, cJSON_GetObjectItemCaseSensitive(o, "lists"),
                        cdate, err, errsz) != 0)
                        return -1;
        }
        return 0;
}

/* "webhooks":[...] in the POST /webhooks shape, plus "active". */
static int fx_webhooks(struct ac_account *a, const cJSON *fx, int64_t now,
                       char *err, size_t errsz)
{
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(fx, "webhooks");
        int n            = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
        if (!n)
                return 0;
        a->hooks = calloc((size_t)n, sizeof(*a->hooks));
        if (!a->hooks)
                return fx_err(err, errsz, "out of memory");
        const cJSON *o;
        cJSON_ArrayForEach(o, arr)
        {
                long id = ac_json_id(cJSON_GetObjectItemCaseSensitive(o, "id"));
                if (!id)
                        id = a->next_hook;
                if (ac_hook_find(a, id))
                        return fx_err(err, errsz, "ac.webhooks: id %ld twice",
                                      id);
                const char *bad      = NULL;
                struct ac_webhook *h = ac_hook_from_json(o, id, now, &bad);
                if (!h)
                        return fx_err(err, errsz, "ac.webhooks: bad '%s'",
                                      bad ? bad : "?");
                const cJSON *act =
                    cJSON_GetObjectItemCaseSensitive(o, "active");
                if (cJSON_IsBool(act))
                        h->active = cJSON_IsTrue(act);
                a->hooks[a->nhooks++] = h;
                if (id >= a->next_hook)
                        a->next_hook = id + 1;
        }
        return 0;
}

int sbx_ac_seed(struct sbx_ac *ac, const char *tenant, const cJSON *fixture,
                char *err, size_t errsz)
{
        if (!fixture || cJSON_IsNull(fixture))
                return 0; /* this tenant has no AC account */
        if (!cJSON_IsObject(fixture))
                return fx_err(err, errsz,
                              "tenant %s: \"ac\" must be an "
                              "object",
                              tenant);
        account_remove(ac, tenant);
        struct ac_account *a = account_new(ac, tenant);
        if (!a)
                return fx_err(err, errsz, "out of memory");
        int64_t now = sbx_now_ms(ac->sbx);
        if (fx_settings(ac->sbx, a, fixture, err, errsz) != 0 ||
            fx_lists(a, fixture, now, err, errsz) != 0 ||
            fx_tags(a, fixture, now, err, errsz) != 0 ||
            fx_contacts(a, fixture, now, err, errsz) != 0 ||
            fx_webhooks(a, fixture, now, err, errsz) != 0 ||
            account_add(ac, a) != 0) {
                if (err && errsz && !err[0])
                        snprintf(err, errsz, "out of memory");
                account_free(a);
                return -1;
        }
        return 0;
}

/* ---- state dump ---------------------------------------------------------- */

cJSON *sbx_ac_dump(struct sbx_ac *ac, const char *tenant)
{
        struct ac_account *a = ac ? ac_account_find(ac, tenant) : NULL;
        if (!a)
                return NULL;
        ac_apply_due_imports(ac, a, sbx_now_ms(ac->sbx));
        char tz[AC_TIME_LEN];
        ac_fmt_iso(tz, sizeof(tz), 0, a->tz_min);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "timezone", tz + 19);
        cJSON_AddNumberToObject(o, "rate_per_s", a->rate_per_s);
        cJSON_AddNumberToObject(o, "rate_mode", a->rate_mode);
        cJSON *lists = cJSON_AddArrayToObject(o, "lists");
        for (size_t i = 0; i < a->nlists; i++) {
                cJSON *l = cJSON_CreateObject();
                cJSON_AddItemToObject(l, "id", ac_str_id(a->lists[i].id));
                cJSON_AddStringToObject(l, "name", a->lists[i].name);
                cJSON_AddItemToArray(lists, l);
        }
        cJSON *tags = cJSON_AddArrayToObject(o, "tags");
        for (size_t i = 0; i < a->ntags; i++) {
                cJSON *t = cJSON_CreateObject();
                cJSON_AddItemToObject(t, "id", ac_str_id(a->tags[i]->id));
                cJSON_AddStringToObject(t, "tag", a->tags[i]->tag);
                cJSON_AddItemToArray(tags, t);
        }
        cJSON *cs = cJSON_AddArrayToObject(o, "contacts");
        for (size_t i = 0; i < a->ncontacts; i++)
                cJSON_AddItemToArray(cs, ac_dump_contact(a, a->contacts[i]));
        cJSON *hooks = cJSON_AddArrayToObject(o, "webhooks");
        for (size_t i = 0; i < a->nhooks; i++) {
                const struct ac_webhook *h = a->hooks[i];
                cJSON *w                   = cJSON_CreateObject();
                cJSON_AddItemToObject(w, "id", ac_str_id(h->id));
                cJSON_AddStringToObject(w, "name", h->name);
                cJSON_AddStringToObject(w, "url", h->url);
                cJSON *ev = cJSON_AddArrayToObject(w, "events");
                for (size_t k = 0; k < h->nev; k++)
                        cJSON_AddItemToArray(ev,
                                             cJSON_CreateString(h->events[k]));
                cJSON *src = cJSON_AddArrayToObject(w, "sources");
                for (size_t k = 0; k < h->nsrc; k++)
                        cJSON_AddItemToArray(src,
                                             cJSON_CreateString(h->sources[k]));
                char lid[24];
                snprintf(lid, sizeof(lid), "%ld", h->listid);
                cJSON_AddStringToObject(w, "listid", lid);
                cJSON_AddBoolToObject(w, "active", h->active);
                cJSON_AddItemToArray(hooks, w);
        }
        cJSON *imps = cJSON_AddArrayToObject(o, "imports");
        for (size_t i = 0; i < a->nimports; i++) {
                const struct ac_import *im = a->imports[i];
                cJSON *j                   = cJSON_CreateObject();
                cJSON_AddStringToObject(j, "batchId", im->batch_id);
                cJSON_AddStringToObject(j, "status",
                                        im->applied ? "completed" : "queued");
                cJSON_AddNumberToObject(j, "contacts", (double)im->ncontacts);
                cJSON_AddItemToArray(imps, j);
        }
        cJSON *d = cJSON_AddObjectToObject(o, "deliveries");
        cJSON_AddNumberToObject(d, "recorded", (double)a->nrecs);
        cJSON_AddNumberToObject(d, "pending", (double)a->pending);
        cJSON_AddNumberToObject(d, "held", (double)a->nheld);
        cJSON_AddBoolToObject(d, "hold", a->hold);
        cJSON_AddNumberToObject(d, "duplicate_next", a->dup_next);
        cJSON_AddNumberToObject(d, "drop_next", a->drop_next);
        return o;
}

/* ---- response helpers ---------------------------------------------------- */

/* Hand @p json (consumed) to the core as the answer. */
void ac_reply(struct ac_ctx *x, int status, cJSON *json)
{
        sbx_resp_json(x->resp, status, json);
}

/* {"message":...}: the shape of AC's 404s ("No Result found for ..."). */
void ac_reply_message(struct ac_ctx *x, int status, const char *fmt, ...)
{
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "message", msg);
        ac_reply(x, status, o);
}

/* {}: AC's whole body for some 400s and for successful DELETEs. */
void ac_reply_empty(struct ac_ctx *x, int status)
{
        ac_reply(x, status, cJSON_CreateObject());
}

/* The JSON:API-like error array POST /contacts and friends answer with. */
void ac_reply_errors(struct ac_ctx *x, int status, const char *title,
                     const char *code, const char *pointer)
{
        cJSON *o   = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(o, "errors");
        cJSON *e   = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "title", title);
        cJSON_AddStringToObject(e, "detail", "");
        cJSON_AddStringToObject(e, "code", code);
        if (pointer) {
                cJSON *src = cJSON_AddObjectToObject(e, "source");
                cJSON_AddStringToObject(src, "pointer", pointer);
        }
        cJSON_AddItemToArray(arr, e);
        ac_reply(x, status, o);
}

/* AC sends every id and count as a JSON string. */
cJSON *ac_str_id(long id)
{
        char buf[24];
        snprintf(buf, sizeof(buf), "%ld", id);
        return cJSON_CreateString(buf);
}

/* The request body parsed, or NULL (absent or not JSON). */
cJSON *ac_body_json(const struct ac_ctx *x)
{
        if (!x->req->body || !x->req->body_len)
                return NULL;
        return cJSON_ParseWithLength(x->req->body, x->req->body_len);
}

/* The string member @p key of @p obj, or NULL (also for non-strings). */
const char *ac_json_str(const cJSON *obj, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* meta.total is a string in AC's answers ("total":"6"). */
cJSON *ac_meta_total(size_t total)
{
        char buf[24];
        snprintf(buf, sizeof(buf), "%zu", total);
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "total", buf);
        return m;
}

/* Add "2024-02-28T07:04:13-06:00" at the account offset. */
void ac_add_iso(cJSON *o, const char *key, int64_t ms, int tz_min)
{
        char buf[AC_TIME_LEN];
        ac_fmt_iso(buf, sizeof(buf), ms, tz_min);
        cJSON_AddStringToObject(o, key, buf);
}

/* Add "2024-02-28 07:04:13" (the account's wall clock). */
void ac_add_wall(cJSON *o, const char *key, int64_t ms, int tz_min)
{
        char buf[AC_TIME_LEN];
        ac_fmt_wall(buf, sizeof(buf), ms, tz_min);
        cJSON_AddStringToObject(o, key, buf);
}

/* Add a links{} entry: "<base>/<coll>/<id>/<sub>", absolute like AC's. */
void ac_add_link(const struct ac_ctx *x, cJSON *links, const char *key,
                 const char *coll, long id, const char *sub)
{
        char buf[512];
        snprintf(buf, sizeof(buf), "%s/%s/%ld/%s", x->base, coll, id, sub);
        cJSON_AddStringToObject(links, key, buf);
}

/* limit / offset style query values, clamped. */
size_t ac_query_size(const struct ac_ctx *x, const char *key, size_t dflt,
                     size_t max)
{
        const char *v = sbx_req_query(x->req, key);
        if (!v || !*v)
                return dflt;
        char *end = NULL;
        long n    = strtol(v, &end, 10);
        if (!end || *end || n < 0)
                return dflt;
        if (max && (size_t)n > max)
                return max;
        return (size_t)n;
}

/* ---- routing ------------------------------------------------------------- */

#define AC_MAX_SEG 8

/* Split "/api/3/contacts/12/contactLists" into its segments (in @p buf). */
static size_t split_path(const char *path, char *buf, size_t bufsz,
                         const char **seg)
{
        size_t len = strlen(path);
        if (len >= bufsz)
                return 0;
        memcpy(buf, path, len + 1);
        size_t n = 0;
        char *p  = buf;
        while (*p && n < AC_MAX_SEG) {
                while (*p == '/')
                        p++;
                if (!*p)
                        break;
                seg[n++] = p;
                while (*p && *p != '/')
                        p++;
                if (*p)
                        *p++ = '\0';
        }
        return n;
}

/* The fault-rule class of an /api/3 path (segments after "api","3"). */
static const char *endpoint_class(const char *const *seg, size_t n)
{
        if (!n)
                return "ac.other";
        if (!strcmp(seg[0], "contacts") && n >= 3) {
                if (!strcmp(seg[2], "contactLists"))
                        return "ac.contactLists";
                if (!strcmp(seg[2], "contactTags"))
                        return "ac.contactTags";
                if (!strcmp(seg[2], "bounceLogs"))
                        return "ac.bounceLogs";
        }
        if (!strcmp(seg[0], "contacts") || !strcmp(seg[0], "contact"))
                return "ac.contacts";
        if (!strcmp(seg[0], "contactLists") || !strcmp(seg[0], "lists"))
                return "ac.contactLists";
        if (!strcmp(seg[0], "tags"))
                return "ac.tags";
        if (!strcmp(seg[0], "contactTags"))
                return "ac.contactTags";
        if (!strcmp(seg[0], "webhooks") || !strcmp(seg[0], "webhook"))
                return "ac.webhooks";
        if (!strcmp(seg[0], "import"))
                return "ac.import";
        return "ac.other";
}

/* Api-Token check: any of the account's keys (each AC user has one). */
static int token_ok(const struct ac_account *a, const char *token)
{
        if (!token)
                return 0;
        for (size_t i = 0; i < a->ntok; i++)
                if (!strcmp(a->tokens[i], token))
                        return 1;
        return 0;
}

/* Fill the per-call context; the link base names this server and the
 * tenant, so links a client follows come back here. */
static void ctx_init(struct ac_ctx *x, sbx_t *sbx, const struct sbx_req *req,
                     struct sbx_resp *resp)
{
        memset(x, 0, sizeof(*x));
        x->sbx  = sbx;
        x->ac   = sbx_ac_state(sbx);
        x->req  = req;
        x->resp = resp;
        x->now  = sbx_now_ms(sbx);
        snprintf(x->base, sizeof(x->base), "%s/ac/%s/api/3", sbx_base_url(sbx),
                 req->tenant ? req->tenant : "");
}

/* The draft-standard headers AC documents (no reset header). */
static void add_rate_headers(struct ac_ctx *x)
{
        char buf[32];
        snprintf(buf, sizeof(buf), "%.0f", x->a->rate_per_s);
        sbx_resp_header(x->resp, "RateLimit-Limit", buf);
        double rem = x->a->bucket.tokens < 0 ? 0 : x->a->bucket.tokens;
        snprintf(buf, sizeof(buf), "%ld", (long)rem);
        sbx_resp_header(x->resp, "RateLimit-Remaining", buf);
}

/* Over the account's 5 req/s: 429 with Retry-After, or the 503 AC has
 * also been seen to answer. */
static void reply_rate_limited(struct ac_ctx *x, int64_t wait_ms)
{
        char buf[32];
        long secs = x->a->retry_after_s > 0 ? x->a->retry_after_s
                                            : (long)((wait_ms + 999) / 1000);
        if (secs < 1)
                secs = 1;
        if (x->a->rate_mode == 503) {
                sbx_resp_text(x->resp, 503, "text/html",
                              "<html><head><title>503 Service Temporarily "
                              "Unavailable</title></head><body><center><h1>"
                              "503 Service Temporarily Unavailable</h1>"
                              "</center></body></html>\n");
                return;
        }
        ac_reply_message(x, 429, "Too Many Requests");
        snprintf(buf, sizeof(buf), "%ld", secs);
        sbx_resp_header(x->resp, "Retry-After", buf);
}

/* Route /api/3/<seg...> to its handler; a handler that leaves the
 * answer empty means "no such route or method": 404. */
static void dispatch(struct ac_ctx *x, const char *const *seg, size_t n)
{
        const char *s0 = n ? seg[0] : "";
        if (!strcmp(s0, "contacts"))
                ac_api_contacts(x, seg + 1, n - 1);
        else if (!strcmp(s0, "contact") && n == 2 && !strcmp(seg[1], "sync"))
                ac_api_contact_sync(x);
        else if (!strcmp(s0, "contactLists"))
                ac_api_contact_lists(x, seg + 1, n - 1);
        else if (!strcmp(s0, "lists"))
                ac_api_lists(x, seg + 1, n - 1);
        else if (!strcmp(s0, "tags"))
                ac_api_tags(x, seg + 1, n - 1);
        else if (!strcmp(s0, "contactTags"))
                ac_api_contact_tags(x, seg + 1, n - 1);
        else if (!strcmp(s0, "webhooks"))
                ac_api_webhooks(x, seg + 1, n - 1);
        else if (!strcmp(s0, "webhook") && n == 2 && !strcmp(seg[1], "events"))
                ac_api_webhook_events(x);
        else if (!strcmp(s0, "import"))
                ac_api_import(x, seg + 1, n - 1);
        if (!x->resp->status)
                ac_reply_message(x, 404, "No Result found for route %s",
                                 x->req->path);
}

/* Every /ac/<tenant>/api/3 request: faults (before the lock), then under
 * the lock: account, token, rate limit, due imports, the handler. */
void sbx_ac_handle(sbx_t *sbx, const struct sbx_req *req, struct sbx_resp *resp)
{
        char buf[512];
        const char *seg[AC_MAX_SEG];
        size_t n =
            split_path(req->path ? req->path : "", buf, sizeof(buf), seg);
        if (n < 2 || strcmp(seg[0], "api") || strcmp(seg[1], "3")) {
                sbx_resp_text(resp, 404, "text/html",
                              "<html><body>Not Found</body></html>\n");
                return;
        }
        /* fault rules first, without the lock: they may sleep */
        if (sbx_fault_apply(sbx, endpoint_class(seg + 2, n - 2), req, resp))
                return;

        struct ac_ctx x;
        sbx_lock(sbx);
        ctx_init(&x, sbx, req, resp);
        x.a = ac_account_find(x.ac, req->tenant);
        /* the core checked the tenant; an SF-only tenant has none here */
        if (!x.a) {
                ac_reply_message(&x, 404, "No account for tenant %s",
                                 req->tenant ? req->tenant : "");
                goto out;
        }
        if (!token_ok(x.a, sbx_req_header(req, "Api-Token"))) {
                ac_reply_message(&x, 403, "Forbidden");
                goto out;
        }
        int64_t wait_ms = 0;
        /* only requests with a good key spend the account's budget */
        if (!ac_bucket_take(&x.a->bucket, x.a->rate_per_s, x.now, &wait_ms)) {
                reply_rate_limited(&x, wait_ms);
                if (x.a->rate_headers && x.resp->status == 429)
                        add_rate_headers(&x);
                goto out;
        }
        /* batches whose time came are applied before the request sees
         * the state: the apply is driven by the simulator clock */
        ac_apply_due_imports(x.ac, x.a, x.now);
        dispatch(&x, seg + 2, n - 2);
        if (x.a && x.a->rate_headers && x.a->rate_per_s > 0)
                add_rate_headers(&x);
out:
        sbx_unlock(sbx);
}

/* ---- controls ------------------------------------------------------------ */

/* /sandbox/ac/<tenant>/...: scenario and delivery controls (no token,
 * no rate limit, no faults). */
void sbx_ac_control(sbx_t *sbx, const struct sbx_req *req,
                    struct sbx_resp *resp)
{
        char buf[512];
        const char *seg[AC_MAX_SEG];
        size_t n =
            split_path(req->path ? req->path : "", buf, sizeof(buf), seg);
        struct ac_ctx x;
        sbx_lock(sbx);
        ctx_init(&x, sbx, req, resp);
        x.a = ac_account_find(x.ac, req->tenant);
        if (!x.a) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "error", "unknown AC tenant");
                ac_reply(&x, 404, o);
        } else {
                ac_apply_due_imports(x.ac, x.a, x.now);
                ac_control_dispatch(&x, seg, n);
        }
        if (!resp->status) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "error", "unknown AC control");
                ac_reply(&x, 404, o);
        }
        sbx_unlock(sbx);
}
