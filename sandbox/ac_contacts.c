/*
 * ac_contacts.c - AC contacts and what hangs off them: list memberships
 * (the opt-out state), tags and contact tags, bounces and bounce logs; the
 * JSON shapes AC answers with, and the /api/3 handlers for all of them.
 */
#include "ac_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- contact store ----------------------------------------------------- */

/* The map key of a numeric id. */
static void idkey(char *buf, size_t sz, long id)
{
        snprintf(buf, sz, "%ld", id);
}

/* O(1) through the by_id index. */
struct ac_contact *ac_contact_by_id(struct ac_account *a, long id)
{
        char k[24];
        idkey(k, sizeof(k), id);
        return ac_map_get(&a->by_id, k);
}

/* O(1), case-insensitive: the index holds lower-cased addresses. */
struct ac_contact *ac_contact_by_email(struct ac_account *a, const char *email)
{
        if (!email)
                return NULL;
        char stack[256];
        size_t n = strlen(email);
        if (n >= sizeof(stack))
                return NULL; /* longer than any valid address */
        for (size_t i = 0; i <= n; i++)
                stack[i] = (char)tolower((unsigned char)email[i]);
        return ac_map_get(&a->by_email, stack);
}

/* Index of the first contact with id >= @p id in the sorted array. */
static size_t contact_lower_bound(const struct ac_account *a, long id)
{
        size_t lo = 0, hi = a->ncontacts;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (a->contacts[mid]->id < id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

/* A stable 32-hex "hash" per contact, like AC's (which is an md5). */
static void contact_hash(struct ac_contact *c)
{
        uint64_t h1 = 1469598103934665603ULL, h2 = 0x9e3779b97f4a7c15ULL;
        for (const char *p = c->email_lc; *p; p++) {
                h1 = (h1 ^ (unsigned char)*p) * 1099511628211ULL;
                h2 = (h2 ^ (unsigned char)*p) * 0x100000001b3ULL + 7;
        }
        h2 ^= (uint64_t)c->id * 0xff51afd7ed558ccdULL;
        snprintf(c->hash, sizeof(c->hash), "%016llx%016llx",
                 (unsigned long long)h1, (unsigned long long)h2);
}

/* A new contact (id 0: the next free one), indexed by id and email and
 * kept in the id-sorted array. @returns NULL on OOM (nothing added). */
struct ac_contact *ac_contact_create(struct ac_account *a, long id,
                                     const char *email, int64_t now)
{
        if (!id)
                id = a->next_contact;
        if (a->ncontacts == a->ccap) {
                size_t cap            = a->ccap ? a->ccap * 2 : 64;
                struct ac_contact **n = realloc(a->contacts, cap * sizeof(*n));
                if (!n)
                        return NULL;
                a->contacts = n;
                a->ccap     = cap;
        }
        struct ac_contact *c = calloc(1, sizeof(*c));
        if (!c)
                return NULL;
        c->id = id;
        snprintf(c->idstr, sizeof(c->idstr), "%ld", id);
        c->email      = ac_strdup(email);
        c->email_lc   = ac_strlower(email);
        c->first_name = ac_strdup("");
        c->last_name  = ac_strdup("");
        c->phone      = ac_strdup("");
        c->cdate = c->udate = now;
        if (!c->email || !c->email_lc || !c->first_name || !c->last_name ||
            !c->phone || ac_map_put(&a->by_id, c->idstr, c) != 0) {
                ac_contact_free(c);
                return NULL;
        }
        if (ac_map_put(&a->by_email, c->email_lc, c) != 0) {
                ac_map_del(&a->by_id, c->idstr);
                ac_contact_free(c);
                return NULL;
        }
        contact_hash(c);
        /* ids only grow, so this is an append except for fixtures */
        size_t pos = contact_lower_bound(a, id);
        memmove(&a->contacts[pos + 1], &a->contacts[pos],
                (a->ncontacts - pos) * sizeof(*a->contacts));
        a->contacts[pos] = c;
        a->ncontacts++;
        if (id >= a->next_contact)
                a->next_contact = id + 1;
        return c;
}

/* Free a contact that is no longer indexed. */
void ac_contact_free(struct ac_contact *c)
{
        if (!c)
                return;
        for (size_t i = 0; i < c->nml; i++)
                free(c->ml[i].unsubreason);
        for (size_t i = 0; i < c->nfv; i++)
                free(c->fv[i].value);
        free(c->ml);
        free(c->ct);
        free(c->bl);
        free(c->fv);
        free(c->email);
        free(c->email_lc);
        free(c->first_name);
        free(c->last_name);
        free(c->phone);
        free(c);
}

/* Unindex and free @p c; its tag counts drop. @returns 0, -1 if absent. */
int ac_contact_delete(struct ac_account *a, struct ac_contact *c)
{
        size_t pos = contact_lower_bound(a, c->id);
        if (pos >= a->ncontacts || a->contacts[pos] != c)
                return -1;
        memmove(&a->contacts[pos], &a->contacts[pos + 1],
                (a->ncontacts - pos - 1) * sizeof(*a->contacts));
        a->ncontacts--;
        ac_map_del(&a->by_id, c->idstr);
        ac_map_del(&a->by_email, c->email_lc);
        char k[24];
        for (size_t i = 0; i < c->nct; i++) {
                idkey(k, sizeof(k), c->ct[i].id);
                ac_map_del(&a->ctag_by_id, k);
                struct ac_tag *t = ac_tag_by_id(a, c->ct[i].tag);
                if (t)
                        t->count--;
        }
        ac_contact_free(c);
        return 0;
}

/* ---- lists and memberships ----------------------------------------------- */

/* Lists are few (a fixture's): a scan. */
struct ac_list *ac_list_find(struct ac_account *a, long id)
{
        for (size_t i = 0; i < a->nlists; i++)
                if (a->lists[i].id == id)
                        return &a->lists[i];
        return NULL;
}

/* A contact's membership of @p list, or NULL (a contact has few). */
struct ac_membership *ac_membership_find(struct ac_contact *c, long list)
{
        for (size_t i = 0; i < c->nml; i++)
                if (c->ml[i].list == list)
                        return &c->ml[i];
        return NULL;
}

/* Find or create (status 0, *created = 1) the membership of @p list. */
struct ac_membership *ac_membership_get(struct ac_account *a,
                                        struct ac_contact *c, long list,
                                        int64_t now, int *created)
{
        struct ac_membership *m = ac_membership_find(c, list);
        *created                = 0;
        if (m)
                return m;
        struct ac_membership *n = realloc(c->ml, (c->nml + 1) * sizeof(*n));
        if (!n)
                return NULL;
        c->ml = n;
        m     = &c->ml[c->nml++];
        memset(m, 0, sizeof(*m));
        m->id    = a->next_clist++;
        m->list  = list;
        m->sdate = m->udate = now;
        *created            = 1;
        return m;
}

/* See ac_internal.h. Statuses other than 1 and 2 never fire: AC has no
 * event for them (bounces fire "bounce" themselves). */
int ac_set_status(struct sbx_ac *ac, struct ac_account *a, struct ac_contact *c,
                  long list, int status, const char *source, const char *reason,
                  long campaign, int64_t now)
{
        int created;
        struct ac_membership *m = ac_membership_get(a, c, list, now, &created);
        if (!m)
                return -1;
        if (!created && m->status == status)
                return 0;
        m->status = status;
        m->udate  = now;
        if (status == 1) {
                /* a (re)subscription starts a new subscription date */
                m->sdate = now;
                free(m->unsubreason);
                m->unsubreason = NULL;
                m->campaign    = 0;
        } else if (status == 2) {
                free(m->unsubreason);
                m->unsubreason = reason ? ac_strdup(reason) : NULL;
                m->campaign    = campaign;
        }
        if (!source)
                return 1;
        struct ac_kv extra[4];
        size_t nextra = 0;
        char camp[24], lid[24];
        /* optional: public unsubscribes in the "list=0&list[0][id]=N" form
         * one copy of AC's docs describes */
        if (status == 2 && a->unsub_list_array && !strcmp(source, "public")) {
                snprintf(lid, sizeof(lid), "%ld", list);
                extra[nextra++] = (struct ac_kv){"list", "0"};
                extra[nextra++] = (struct ac_kv){"list[0][id]", lid};
        }
        if (status == 2 && campaign) {
                snprintf(camp, sizeof(camp), "%ld", campaign);
                extra[nextra++] = (struct ac_kv){"campaign[id]", camp};
        }
        if (status == 2 && reason && *reason)
                extra[nextra++] = (struct ac_kv){"unsubscribe[reason]", reason};
        if (status == 1 || status == 2)
                ac_fire(ac, a, status == 1 ? "subscribe" : "unsubscribe",
                        source, c, list, extra, nextra, now);
        return 1;
}

/* ---- bounces ------------------------------------------------------------- */

/* Bounced: every subscription that could still mail turns status 3. */
static void mark_bounced(struct ac_contact *c, int64_t now)
{
        c->bounced_date = now;
        for (size_t i = 0; i < c->nml; i++) {
                if (c->ml[i].status == 0 || c->ml[i].status == 1) {
                        c->ml[i].status = 3;
                        c->ml[i].udate  = now;
                }
        }
}

/* See ac_internal.h; the bounce log row is written first, so even a
 * bounce that changes nothing else is visible in /bounceLogs. */
void ac_bounce(struct sbx_ac *ac, struct ac_account *a, struct ac_contact *c,
               int hard, long campaign, long message, long code, int64_t now)
{
        struct ac_bouncelog *n = realloc(c->bl, (c->nbl + 1) * sizeof(*n));
        if (n) {
                c->bl           = n;
                c->bl[c->nbl++] = (struct ac_bouncelog){
                    .id       = a->next_bounce++,
                    .campaign = campaign,
                    .message  = message,
                    .code     = code,
                    .hard     = hard,
                    .tstamp   = now,
                };
        }
        /* the counters only grow; bounced_date marks the bounced state */
        if (hard) {
                c->bounced_hard++;
                c->soft_streak = 0;
                mark_bounced(c, now);
        } else {
                c->bounced_soft++;
                /* "3 soft bounces in a row, on 3 separate campaigns": a
                 * second bounce from the same campaign does not count. */
                int seen = 0;
                for (int i = 0; i < c->soft_streak && i < 3; i++)
                        if (c->soft_campaigns[i] == campaign)
                                seen = 1;
                if (!seen && c->soft_streak < 3) {
                        c->soft_campaigns[c->soft_streak++] = campaign;
                        if (c->soft_streak == 3)
                                mark_bounced(c, now);
                }
        }
        char camp[24];
        snprintf(camp, sizeof(camp), "%ld", campaign);
        struct ac_kv extra[] = {
            {"campaign[id]", camp},
            {"bounce[type]", hard ? "hard" : "soft"},
        };
        ac_fire(ac, a, "bounce", "system", c, 0, extra, 2, now);
}

/* ---- tags ---------------------------------------------------------------- */

/* O(1) through the tag_by_id index. */
struct ac_tag *ac_tag_by_id(struct ac_account *a, long id)
{
        char k[24];
        idkey(k, sizeof(k), id);
        return ac_map_get(&a->tag_by_id, k);
}

/* O(1), case-insensitive (AC treats "VIP" and "vip" as one tag). */
struct ac_tag *ac_tag_by_name(struct ac_account *a, const char *name)
{
        char *lc         = ac_strlower(name);
        struct ac_tag *t = lc ? ac_map_get(&a->tag_by_name, lc) : NULL;
        free(lc);
        return t;
}

/* A new tag (id 0: the next free one), indexed by id and name. */
struct ac_tag *ac_tag_create(struct ac_account *a, long id, const char *name,
                             const char *description, const char *type,
                             int64_t now)
{
        if (!id)
                id = a->next_tag;
        struct ac_tag **arr = realloc(a->tags, (a->ntags + 1) * sizeof(*arr));
        if (!arr)
                return NULL;
        a->tags          = arr;
        struct ac_tag *t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        t->id          = id;
        t->tag         = ac_strdup(name);
        t->tag_lc      = ac_strlower(name);
        t->description = ac_strdup(description);
        t->type        = ac_strdup(type && *type ? type : "contact");
        t->cdate       = now;
        char k[24];
        idkey(k, sizeof(k), id);
        if (!t->tag || !t->tag_lc || !t->description || !t->type ||
            ac_map_put(&a->tag_by_id, k, t) != 0 ||
            ac_map_put(&a->tag_by_name, t->tag_lc, t) != 0) {
                ac_map_del(&a->tag_by_id, k);
                free(t->tag);
                free(t->tag_lc);
                free(t->description);
                free(t->type);
                free(t);
                return NULL;
        }
        a->tags[a->ntags++] = t;
        if (id >= a->next_tag)
                a->next_tag = id + 1;
        return t;
}

/* Forget a tag; contact tags pointing at it stay but are hidden. */
static void tag_delete(struct ac_account *a, struct ac_tag *t)
{
        char k[24];
        idkey(k, sizeof(k), t->id);
        ac_map_del(&a->tag_by_id, k);
        ac_map_del(&a->tag_by_name, t->tag_lc);
        for (size_t i = 0; i < a->ntags; i++) {
                if (a->tags[i] == t) {
                        memmove(&a->tags[i], &a->tags[i + 1],
                                (a->ntags - i - 1) * sizeof(*a->tags));
                        a->ntags--;
                        break;
                }
        }
        free(t->tag);
        free(t->tag_lc);
        free(t->description);
        free(t->type);
        free(t);
}

/* The contact's association with tag @p tag, or NULL. */
struct ac_ctag *ac_ctag_find_tag(struct ac_contact *c, long tag)
{
        for (size_t i = 0; i < c->nct; i++)
                if (c->ct[i].tag == tag)
                        return &c->ct[i];
        return NULL;
}

/* Tag a contact: a new association id, indexed for DELETE
 * /contactTags/{id}. No webhook here: the callers fire. */
struct ac_ctag *ac_ctag_add(struct ac_account *a, struct ac_contact *c,
                            long tag, int64_t now)
{
        struct ac_ctag *n = realloc(c->ct, (c->nct + 1) * sizeof(*n));
        if (!n)
                return NULL;
        c->ct             = n;
        struct ac_ctag *t = &c->ct[c->nct];
        t->id             = a->next_ctag;
        t->tag            = tag;
        t->cdate          = now;
        char k[24];
        idkey(k, sizeof(k), t->id);
        if (ac_map_put(&a->ctag_by_id, k, c) != 0)
                return NULL;
        a->next_ctag++;
        c->nct++;
        struct ac_tag *tg = ac_tag_by_id(a, tag);
        if (tg)
                tg->count++;
        return t;
}

/* Remove association @p ctag_id of @p c (no webhook here either). */
void ac_ctag_remove(struct ac_account *a, struct ac_contact *c, long ctag_id)
{
        for (size_t i = 0; i < c->nct; i++) {
                if (c->ct[i].id != ctag_id)
                        continue;
                struct ac_tag *tg = ac_tag_by_id(a, c->ct[i].tag);
                if (tg)
                        tg->count--;
                memmove(&c->ct[i], &c->ct[i + 1],
                        (c->nct - i - 1) * sizeof(*c->ct));
                c->nct--;
                char k[24];
                idkey(k, sizeof(k), ctag_id);
                ac_map_del(&a->ctag_by_id, k);
                return;
        }
}

/* ---- JSON views ---------------------------------------------------------- */

static const char *const contact_links[] = {
    "bounceLogs",      "contactAutomations",
    "contactData",     "contactGoals",
    "contactLists",    "contactLogs",
    "contactTags",     "contactDeals",
    "deals",           "fieldValues",
    "geoIps",          "notes",
    "organization",    "plusAppend",
    "trackingLogs",    "scoreValues",
    "accountContacts", "automationEntryCounts",
};

/* Shorthands for the many null and string-number fields. */
static void add_null(cJSON *o, const char *k)
{
        cJSON_AddNullToObject(o, k);
}

static void add_int_str(cJSON *o, const char *k, long v)
{
        cJSON_AddItemToObject(o, k, ac_str_id(v));
}

/* The links{} block every contact carries (absolute URLs). */
static void contact_links_json(const struct ac_ctx *x, cJSON *o,
                               const struct ac_contact *c)
{
        cJSON *links = cJSON_AddObjectToObject(o, "links");
        for (size_t i = 0; i < sizeof(contact_links) / sizeof(*contact_links);
             i++) {
                if (!strcmp(contact_links[i], "contactAutomations"))
                        ac_add_link(x, links, contact_links[i], "contacts",
                                    c->id,
                                    "contactAutomations?limit=1000&orders%"
                                    "5Blastdate%5D=DESC");
                else
                        ac_add_link(x, links, contact_links[i], "contacts",
                                    c->id, contact_links[i]);
        }
}

/* One fieldValue object, as POST /contact/sync side-loads them. */
static cJSON *field_value_json(const struct ac_ctx *x,
                               const struct ac_contact *c,
                               const struct ac_fieldval *f)
{
        int tz   = x->a->tz_min;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "contact", c->idstr);
        add_int_str(o, "field", f->field);
        cJSON_AddStringToObject(o, "value", f->value);
        ac_add_iso(o, "cdate", f->cdate, tz);
        ac_add_iso(o, "udate", f->udate, tz);
        add_null(o, "created_by");
        add_null(o, "updated_by");
        cJSON *links = cJSON_AddObjectToObject(o, "links");
        ac_add_link(x, links, "owner", "fieldValues", f->id, "owner");
        ac_add_link(x, links, "field", "fieldValues", f->id, "field");
        add_int_str(o, "id", f->id);
        cJSON_AddStringToObject(o, "owner", c->idstr);
        return o;
}

/* Every fieldValue of @p c as an array. */
static cJSON *field_values_json(const struct ac_ctx *x,
                                const struct ac_contact *c)
{
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; i < c->nfv; i++)
                cJSON_AddItemToArray(arr, field_value_json(x, c, &c->fv[i]));
        return arr;
}

/* A contact in the shape the calling endpoint answers with (see
 * enum ac_cshape): the samples differ per endpoint. */
cJSON *ac_contact_json(const struct ac_ctx *x, const struct ac_contact *c,
                       enum ac_cshape shape)
{
        int tz   = x->a->tz_min;
        cJSON *o = cJSON_CreateObject();
        if (shape == AC_CJ_SHORT) {
                /* what POST /contacts and a creating /contact/sync show */
                cJSON_AddStringToObject(o, "email", c->email);
                cJSON_AddStringToObject(o, "phone", c->phone);
                cJSON_AddStringToObject(o, "firstName", c->first_name);
                cJSON_AddStringToObject(o, "lastName", c->last_name);
                cJSON_AddFalseToObject(o, "email_empty");
                ac_add_iso(o, "cdate", c->cdate, tz);
                ac_add_iso(o, "udate", c->udate, tz);
                cJSON_AddStringToObject(o, "orgid", "");
                cJSON_AddStringToObject(o, "orgname", "");
                contact_links_json(x, o, c);
                cJSON_AddStringToObject(o, "hash", c->hash);
                cJSON *fv = cJSON_AddArrayToObject(o, "fieldValues");
                for (size_t i = 0; i < c->nfv; i++)
                        cJSON_AddItemToArray(fv, ac_str_id(c->fv[i].id));
                cJSON_AddStringToObject(o, "id", c->idstr);
                cJSON_AddStringToObject(o, "organization", "");
                return o;
        }
        /* the full shape: fields and order of samples 22 and 24 (real
         * recordings); unknowable values are AC's "empty" ones */
        ac_add_iso(o, "cdate", c->cdate, tz);
        cJSON_AddStringToObject(o, "email", c->email);
        cJSON_AddStringToObject(o, "phone", c->phone);
        cJSON_AddStringToObject(o, "firstName", c->first_name);
        cJSON_AddStringToObject(o, "lastName", c->last_name);
        cJSON_AddStringToObject(o, "orgid", "0");
        cJSON_AddStringToObject(o, "orgname", "");
        cJSON_AddStringToObject(o, "segmentio_id", "");
        add_int_str(o, "bounced_hard", c->bounced_hard);
        add_int_str(o, "bounced_soft", c->bounced_soft);
        if (c->bounced_date) {
                char d[AC_TIME_LEN];
                ac_fmt_date(d, sizeof(d), c->bounced_date, tz);
                cJSON_AddStringToObject(o, "bounced_date", d);
        } else {
                add_null(o, "bounced_date");
        }
        /* no tracking data: AC's zero values */
        cJSON_AddStringToObject(o, "ip", "0");
        add_null(o, "ua");
        cJSON_AddStringToObject(o, "hash", c->hash);
        add_null(o, "socialdata_lastcheck");
        cJSON_AddStringToObject(o, "email_local", "");
        cJSON_AddStringToObject(o, "email_domain", "");
        cJSON_AddStringToObject(o, "sentcnt", "0");
        add_null(o, "rating_tstamp");
        cJSON_AddStringToObject(o, "gravatar", "0");
        cJSON_AddStringToObject(o, "deleted", "0");
        cJSON_AddStringToObject(o, "anonymized", "0");
        add_null(o, "adate");
        ac_add_iso(o, "udate", c->udate, tz);
        add_null(o, "edate");
        add_null(o, "deleted_at");
        /* AC's "utc" timestamps hold the account-local wall clock */
        ac_add_wall(o, "created_utc_timestamp", c->cdate, tz);
        ac_add_wall(o, "updated_utc_timestamp", c->udate, tz);
        ac_add_wall(o, "created_timestamp", c->cdate, tz);
        ac_add_wall(o, "updated_timestamp", c->udate, tz);
        add_null(o, "created_by");
        add_null(o, "updated_by");
        cJSON_AddFalseToObject(o, "email_empty");
        /* what each endpoint adds around links{} */
        if (shape == AC_CJ_LIST) {
                cJSON_AddStringToObject(o, "mpp_tracking", "0");
                cJSON_AddArrayToObject(o, "scoreValues");
        } else if (shape == AC_CJ_ONE) {
                cJSON_AddArrayToObject(o, "contactAutomations");
                cJSON *cl = cJSON_AddArrayToObject(o, "contactLists");
                for (size_t i = 0; i < c->nml; i++)
                        cJSON_AddItemToArray(cl, ac_str_id(c->ml[i].id));
                cJSON *fv = cJSON_AddArrayToObject(o, "fieldValues");
                for (size_t i = 0; i < c->nfv; i++)
                        cJSON_AddItemToArray(fv, ac_str_id(c->fv[i].id));
                cJSON_AddArrayToObject(o, "geoIps");
                cJSON_AddArrayToObject(o, "deals");
        }
        cJSON_AddArrayToObject(o, "accountContacts");
        contact_links_json(x, o, c);
        cJSON_AddStringToObject(o, "id", c->idstr);
        add_null(o, "organization");
        return o;
}

static const char *const clist_links[] = {
    "automation",
    "list",
    "contact",
    "form",
    "autosyncLog",
    "campaign",
    "unsubscribeAutomation",
    "message",
};

/* A contactList: GET shape (status a string, timestamps) or the
 * POST /contactLists shape (status a number, no timestamps). */
cJSON *ac_membership_json(const struct ac_ctx *x, const struct ac_contact *c,
                          const struct ac_membership *m, int for_post)
{
        int tz   = x->a->tz_min;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "contact", c->idstr);
        add_int_str(o, "list", m->list);
        add_null(o, "form");
        cJSON_AddStringToObject(o, "seriesid", "0");
        ac_add_iso(o, "sdate", m->sdate, tz);
        if (for_post) {
                /* POST /contactLists shows the status as a number */
                cJSON_AddNumberToObject(o, "status", m->status);
        } else {
                ac_add_iso(o, "udate", m->udate, tz);
                add_int_str(o, "status", m->status);
        }
        cJSON_AddStringToObject(o, "responder", "1");
        cJSON_AddStringToObject(o, "sync", "0");
        if (m->unsubreason)
                cJSON_AddStringToObject(o, "unsubreason", m->unsubreason);
        else if (for_post)
                cJSON_AddStringToObject(o, "unsubreason", "");
        else
                add_null(o, "unsubreason");
        if (m->campaign)
                add_int_str(o, "campaign", m->campaign);
        else
                add_null(o, "campaign");
        add_null(o, "message");
        cJSON_AddStringToObject(o, "first_name", c->first_name);
        cJSON_AddStringToObject(o, "last_name", c->last_name);
        cJSON_AddStringToObject(o, "ip4Sub", "0");
        add_int_str(o, "sourceid", m->sourceid);
        add_null(o, "autosyncLog");
        cJSON_AddStringToObject(o, "ip4_last", "0");
        cJSON_AddStringToObject(o, "ip4Unsub", "0");
        if (!for_post) {
                ac_add_wall(o, "created_timestamp", m->sdate, tz);
                ac_add_wall(o, "updated_timestamp", m->udate, tz);
                add_null(o, "created_by");
                add_null(o, "updated_by");
        }
        add_null(o, "unsubscribeAutomation");
        cJSON *links = cJSON_AddObjectToObject(o, "links");
        for (size_t i = 0; i < sizeof(clist_links) / sizeof(*clist_links); i++)
                ac_add_link(x, links, clist_links[i], "contactLists", m->id,
                            clist_links[i]);
        add_int_str(o, "id", m->id);
        add_null(o, "automation");
        return o;
}

/* A tag as GET /tags lists it (the live shape with subscriber_count). */
cJSON *ac_tag_json(const struct ac_ctx *x, const struct ac_tag *t)
{
        int tz   = x->a->tz_min;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "tagType", t->type);
        cJSON_AddStringToObject(o, "tag", t->tag);
        cJSON_AddStringToObject(o, "description", t->description);
        add_int_str(o, "subscriber_count", t->count < 0 ? 0 : t->count);
        ac_add_iso(o, "cdate", t->cdate, tz);
        ac_add_wall(o, "created_timestamp", t->cdate, tz);
        ac_add_wall(o, "updated_timestamp", t->cdate, tz);
        add_null(o, "created_by");
        add_null(o, "updated_by");
        cJSON *links = cJSON_AddObjectToObject(o, "links");
        ac_add_link(x, links, "contactGoalTags", "tags", t->id,
                    "contactGoalTags");
        add_int_str(o, "id", t->id);
        return o;
}

/* A contactTag; @p full adds the timestamps GET shows. */
cJSON *ac_ctag_json(const struct ac_ctx *x, const struct ac_contact *c,
                    const struct ac_ctag *t, int full)
{
        int tz   = x->a->tz_min;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "contact", c->idstr);
        add_int_str(o, "tag", t->tag);
        ac_add_iso(o, "cdate", t->cdate, tz);
        if (full) {
                ac_add_wall(o, "created_timestamp", t->cdate, tz);
                ac_add_wall(o, "updated_timestamp", t->cdate, tz);
                add_null(o, "created_by");
                add_null(o, "updated_by");
        }
        cJSON *links = cJSON_AddObjectToObject(o, "links");
        ac_add_link(x, links, "tag", "contactTags", t->id, "tag");
        ac_add_link(x, links, "contact", "contactTags", t->id, "contact");
        add_int_str(o, "id", t->id);
        return o;
}

/* One bounce log row, as GET /contacts/{id}/bounceLogs shows it. */
static cJSON *bouncelog_json(const struct ac_ctx *x, const struct ac_contact *c,
                             const struct ac_bouncelog *b)
{
        static const char *const links_k[] = {"bounce", "contact", "campaign",
                                              "message", "code"};
        int tz                             = x->a->tz_min;
        cJSON *o                           = cJSON_CreateObject();
        long bounce = b->hard ? 1 : 2; /* the bounce type object */
        ac_add_iso(o, "tstamp", b->tstamp, tz);
        add_int_str(o, "bounceid", bounce);
        cJSON_AddStringToObject(o, "subscriberid", c->idstr);
        add_int_str(o, "campaignid", b->campaign);
        add_int_str(o, "messageid", b->message);
        add_int_str(o, "codeid", b->code);
        cJSON_AddStringToObject(o, "email", c->email);
        cJSON_AddStringToObject(o, "error", "");
        cJSON_AddStringToObject(o, "source", "");
        ac_add_wall(o, "created_timestamp", b->tstamp, tz);
        ac_add_wall(o, "updated_timestamp", b->tstamp, tz);
        add_null(o, "created_by");
        add_null(o, "updated_by");
        cJSON *links = cJSON_AddObjectToObject(o, "links");
        for (size_t i = 0; i < 5; i++)
                ac_add_link(x, links, links_k[i], "bounceLogs", b->id,
                            links_k[i]);
        add_int_str(o, "id", b->id);
        add_int_str(o, "bounce", bounce);
        cJSON_AddStringToObject(o, "contact", c->idstr);
        add_int_str(o, "campaign", b->campaign);
        add_int_str(o, "message", b->message);
        add_int_str(o, "code", b->code);
        return o;
}

/* The compact view /sandbox/state shows: list statuses by list id and
 * tag names, not AC's API shape. */
cJSON *ac_dump_contact(const struct ac_account *a, const struct ac_contact *c)
{
        char buf[AC_TIME_LEN];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", c->idstr);
        cJSON_AddStringToObject(o, "email", c->email);
        cJSON_AddStringToObject(o, "firstName", c->first_name);
        cJSON_AddStringToObject(o, "lastName", c->last_name);
        cJSON_AddStringToObject(o, "phone", c->phone);
        ac_fmt_iso(buf, sizeof(buf), c->cdate, a->tz_min);
        cJSON_AddStringToObject(o, "cdate", buf);
        ac_fmt_iso(buf, sizeof(buf), c->udate, a->tz_min);
        cJSON_AddStringToObject(o, "udate", buf);
        cJSON_AddNumberToObject(o, "bounced_hard", c->bounced_hard);
        cJSON_AddNumberToObject(o, "bounced_soft", c->bounced_soft);
        cJSON_AddNumberToObject(o, "soft_streak", c->soft_streak);
        if (c->bounced_date) {
                ac_fmt_date(buf, sizeof(buf), c->bounced_date, a->tz_min);
                cJSON_AddStringToObject(o, "bounced_date", buf);
        } else {
                cJSON_AddNullToObject(o, "bounced_date");
        }
        cJSON *lists = cJSON_AddObjectToObject(o, "lists");
        for (size_t i = 0; i < c->nml; i++) {
                char k[24];
                snprintf(k, sizeof(k), "%ld", c->ml[i].list);
                cJSON_AddNumberToObject(lists, k, c->ml[i].status);
        }
        cJSON *tags = cJSON_AddArrayToObject(o, "tags");
        for (size_t i = 0; i < c->nct; i++) {
                struct ac_tag *t =
                    ac_tag_by_id((struct ac_account *)a, c->ct[i].tag);
                if (t)
                        cJSON_AddItemToArray(tags, cJSON_CreateString(t->tag));
        }
        cJSON_AddNumberToObject(o, "bounce_logs", (double)c->nbl);
        return o;
}

/* ---- GET /contacts ------------------------------------------------------- */

struct cfilter {
        long id_greater, id_less;
        long *ids;
        size_t nids;
        const char *email_like; /* lower-cased copy in like_lc */
        char *like_lc;
        char *search_lc;
        long listid, tagid;
        int status; /* -1 any */
        int has_ca, has_cb, has_ua, has_ub;
        int64_t ca, cb, ua, ub;
};

/* @returns 1 if @p hay contains @p needle_lc, ignoring case. */
static int contains_ci(const char *hay, const char *needle_lc)
{
        size_t n = strlen(needle_lc);
        for (const char *p = hay; *p; p++) {
                size_t i = 0;
                while (i < n && p[i] &&
                       tolower((unsigned char)p[i]) == needle_lc[i])
                        i++;
                if (i == n)
                        return 1;
        }
        return n == 0;
}

/* Does @p c pass every row filter of GET /contacts? */
static int cfilter_match(const struct cfilter *f, struct ac_contact *c)
{
        if (f->id_greater && c->id <= f->id_greater)
                return 0;
        if (f->id_less && c->id >= f->id_less)
                return 0;
        if (f->nids) {
                size_t i = 0;
                while (i < f->nids && f->ids[i] != c->id)
                        i++;
                if (i == f->nids)
                        return 0;
        }
        if (f->like_lc && !strstr(c->email_lc, f->like_lc))
                return 0;
        if (f->search_lc && !contains_ci(c->email, f->search_lc) &&
            !contains_ci(c->first_name, f->search_lc) &&
            !contains_ci(c->last_name, f->search_lc))
                return 0;
        if (f->listid || f->status >= 0) {
                int ok = 0;
                for (size_t i = 0; i < c->nml && !ok; i++)
                        ok = (!f->listid || c->ml[i].list == f->listid) &&
                             (f->status < 0 || c->ml[i].status == f->status);
                if (!ok)
                        return 0;
        }
        if (f->tagid && !ac_ctag_find_tag(c, f->tagid))
                return 0;
        if (f->has_ca && c->cdate < f->ca)
                return 0;
        if (f->has_cb && c->cdate > f->cb)
                return 0;
        if (f->has_ua && c->udate < f->ua)
                return 0;
        if (f->has_ub && c->udate > f->ub)
                return 0;
        return 1;
}

struct sortent {
        struct ac_contact *c;
        const char *s;
        int64_t v;
};

/* qsort orders for orders[...]: the key, then the id, so DESC (read
 * backwards) stays deterministic. */
static int cmp_str(const void *pa, const void *pb)
{
        const struct sortent *a = pa, *b = pb;
        int r = strcmp(a->s, b->s);
        return r ? r : (a->c->id < b->c->id ? -1 : a->c->id > b->c->id);
}

static int cmp_num(const void *pa, const void *pb)
{
        const struct sortent *a = pa, *b = pb;
        if (a->v != b->v)
                return a->v < b->v ? -1 : 1;
        return a->c->id < b->c->id ? -1 : a->c->id > b->c->id;
}

/* filters[...]: a date or date-time read at the account offset. */
static void filter_time(const struct ac_ctx *x, const char *key, int *has,
                        int64_t *v)
{
        const char *s = sbx_req_query(x->req, key);
        /* unparseable dates are ignored, like other unknown filters */
        if (s && ac_parse_time(s, x->a->tz_min, v) == 0)
                *has = 1;
}

/* GET /contacts: filters, ordering, paging; meta.total counts every
 * match, not just the page. */
static void contacts_list(struct ac_ctx *x)
{
        struct ac_account *a = x->a;
        struct cfilter f     = {.status = -1};
        const char *email    = sbx_req_query(x->req, "email");
        const char *s;
        f.id_greater = ac_id_parse(sbx_req_query(x->req, "id_greater"));
        f.id_less    = ac_id_parse(sbx_req_query(x->req, "id_less"));
        f.listid     = ac_id_parse(sbx_req_query(x->req, "listid"));
        f.tagid      = ac_id_parse(sbx_req_query(x->req, "tagid"));
        if ((s = sbx_req_query(x->req, "status")) && *s)
                f.status = (int)strtol(s, NULL, 10);
        if (f.status < -1)
                f.status = -1;
        if ((s = sbx_req_query(x->req, "email_like")) && *s)
                f.like_lc = ac_strlower(s);
        if ((s = sbx_req_query(x->req, "search")) && *s)
                f.search_lc = ac_strlower(s);
        if ((s = sbx_req_query(x->req, "ids")) && *s) {
                f.ids         = calloc(strlen(s) / 2 + 2, sizeof(long));
                const char *p = s;
                while (f.ids && *p) {
                        char *end = NULL;
                        long v    = strtol(p, &end, 10);
                        if (end == p)
                                break;
                        if (v > 0)
                                f.ids[f.nids++] = v;
                        p = *end == ',' ? end + 1 : end;
                }
                if (!f.nids)
                        f.ids[f.nids++] = -1; /* nothing matches */
        }
        filter_time(x, "filters[created_after]", &f.has_ca, &f.ca);
        filter_time(x, "filters[created_before]", &f.has_cb, &f.cb);
        filter_time(x, "filters[updated_after]", &f.has_ua, &f.ua);
        filter_time(x, "filters[updated_before]", &f.has_ub, &f.ub);

        /* orders[<field>]=ASC|DESC; the default is id ascending */
        const char *order = "id]"; /* as in "orders[id]" */
        int desc          = 0;
        for (size_t i = 0; i < x->req->query_cnt; i++) {
                const char *k = x->req->query[i].key;
                if (strncmp(k, "orders[", 7))
                        continue;
                order = k + 7;
                desc  = x->req->query[i].value &&
                       (x->req->query[i].value[0] == 'd' ||
                        x->req->query[i].value[0] == 'D');
                break;
        }
        size_t limit  = ac_query_size(x, "limit", 20, 100);
        size_t offset = ac_query_size(x, "offset", 0, 0);
        if (!limit)
                limit = 20;

        /* Candidates: one by the email index, else the id range. */
        /* m: the matches, built only when something must be filtered */
        struct sortent *m = NULL;
        size_t nm = 0, lo = 0, hi = 0;
        struct ac_contact *one = NULL;
        int is_id              = !strncmp(order, "id]", 3);
        /* Only id bounds and id order: the page is a slice of the sorted
         * array, so paging a big account with id_greater stays cheap. */
        int slice = !email && is_id && !f.nids && !f.like_lc && !f.search_lc &&
                    !f.listid && f.status < 0 && !f.tagid && !f.has_ca &&
                    !f.has_cb && !f.has_ua && !f.has_ub;
        if (email) {
                one = ac_contact_by_email(a, email);
        } else {
                lo =
                    f.id_greater ? contact_lower_bound(a, f.id_greater + 1) : 0;
                hi = f.id_less ? contact_lower_bound(a, f.id_less)
                               : a->ncontacts;
                if (hi < lo)
                        hi = lo;
        }
        if (slice) {
                nm = hi - lo;
        } else {
                m = calloc((email ? 1 : hi - lo) + 1, sizeof(*m));
                if (!m) {
                        ac_reply_message(x, 500, "out of memory");
                        goto out;
                }
                if (one && cfilter_match(&f, one))
                        m[nm++].c = one;
                for (size_t i = lo; !email && i < hi; i++)
                        if (cfilter_match(&f, a->contacts[i]))
                                m[nm++].c = a->contacts[i];
        }

        if (!is_id) {
                int num = !strncmp(order, "cdate]", 6) ||
                          !strncmp(order, "udate]", 6) ||
                          !strncmp(order, "updatedTimestamp]", 17);
                for (size_t i = 0; i < nm; i++) {
                        struct ac_contact *c = m[i].c;
                        m[i].v =
                            !strncmp(order, "cdate]", 6) ? c->cdate : c->udate;
                        m[i].s = !strncmp(order, "first_name]", 11) ||
                                         !strncmp(order, "name]", 5)
                                     ? c->first_name
                                 : !strncmp(order, "last_name]", 10)
                                     ? c->last_name
                                     : c->email_lc;
                }
                qsort(m, nm, sizeof(*m), num ? cmp_num : cmp_str);
        }

        cJSON *o = cJSON_CreateObject();
        cJSON_AddArrayToObject(o, "scoreValues");
        cJSON *arr = cJSON_AddArrayToObject(o, "contacts");
        for (size_t k = offset; k < nm && k < offset + limit; k++) {
                size_t i             = desc ? nm - 1 - k : k;
                struct ac_contact *c = slice ? a->contacts[lo + i] : m[i].c;
                cJSON_AddItemToArray(arr, ac_contact_json(x, c, AC_CJ_LIST));
        }
        /* meta: total as a string, page_input as AC echoes it (numbers) */
        cJSON *meta = ac_meta_total(nm);
        cJSON_AddTrueToObject(meta, "sortable");
        cJSON *pi = cJSON_AddObjectToObject(meta, "page_input");
        cJSON_AddNumberToObject(pi, "segmentid", 0);
        cJSON_AddNumberToObject(pi, "formid", 0);
        cJSON_AddNumberToObject(pi, "listid", (double)f.listid);
        cJSON_AddNumberToObject(pi, "tagid", (double)f.tagid);
        cJSON_AddNumberToObject(pi, "limit", (double)limit);
        cJSON_AddNumberToObject(pi, "offset", (double)offset);
        if (f.search_lc)
                cJSON_AddStringToObject(pi, "search",
                                        sbx_req_query(x->req, "search"));
        else
                add_null(pi, "search");
        add_null(pi, "sort");
        cJSON_AddNumberToObject(pi, "seriesid", 0);
        cJSON_AddNumberToObject(pi, "waitid", 0);
        cJSON_AddNumberToObject(pi, "status", f.status);
        cJSON_AddNumberToObject(pi, "forceQuery", 0);
        char cache[40];
        snprintf(
            cache, sizeof(cache), "%016llx%016llx",
            (unsigned long long)(nm * 0x9e3779b97f4a7c15ULL ^ (uint64_t)offset),
            (unsigned long long)((uint64_t)limit * 0xff51afd7ed558ccdULL ^
                                 (uint64_t)f.id_greater));
        cJSON_AddStringToObject(pi, "cacheid", cache);
        if (email)
                cJSON_AddStringToObject(pi, "email", email);
        cJSON_AddItemToObject(o, "meta", meta);
        ac_reply(x, 200, o);
out:
        free(m);
        free(f.ids);
        free(f.like_lc);
        free(f.search_lc);
}

/* ---- contact writes ------------------------------------------------------ */

/* 422 for a missing or malformed email (POST /contacts, sync, PUT). */
static void reply_email_invalid(struct ac_ctx *x)
{
        cJSON *o   = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(o, "errors");
        cJSON *e   = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "title",
                                "Contact Email Address is not "
                                "valid.");
        cJSON_AddStringToObject(e, "detail", "");
        cJSON_AddStringToObject(e, "code", "email_invalid");
        cJSON_AddStringToObject(e, "error", "must_be_valid_email_address");
        cJSON *src = cJSON_AddObjectToObject(e, "source");
        cJSON_AddStringToObject(src, "pointer", "/data/attributes/email");
        cJSON_AddItemToArray(arr, e);
        ac_reply(x, 422, o);
}

/* 422 code "duplicate", verbatim from AC's docs. */
static void reply_duplicate(struct ac_ctx *x)
{
        ac_reply_errors(x, 422, "Email address already exists in the system",
                        "duplicate", "/data/attributes/email");
}

/* Replace *dst by a copy of @p v when it differs. @returns 1 if so. */
static int set_str(char **dst, const char *v)
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

/* Apply firstName / lastName / phone / fieldValues. @returns 1 if any
 * value changed. */
static int contact_apply(struct ac_account *a, struct ac_contact *c,
                         const cJSON *in, int64_t now)
{
        int changed = 0;
        changed |= set_str(&c->first_name, ac_json_str(in, "firstName"));
        changed |= set_str(&c->last_name, ac_json_str(in, "lastName"));
        changed |= set_str(&c->phone, ac_json_str(in, "phone"));
        const cJSON *fv;
        cJSON_ArrayForEach(fv,
                           cJSON_GetObjectItemCaseSensitive(in, "fieldValues"))
        {
                long field =
                    ac_json_id(cJSON_GetObjectItemCaseSensitive(fv, "field"));
                const cJSON *val =
                    cJSON_GetObjectItemCaseSensitive(fv, "value");
                char num[32];
                const char *v = cJSON_IsString(val) ? val->valuestring : NULL;
                if (cJSON_IsNumber(val)) {
                        snprintf(num, sizeof(num), "%g", val->valuedouble);
                        v = num;
                }
                if (!field || !v)
                        continue;
                struct ac_fieldval *f = NULL;
                for (size_t i = 0; i < c->nfv; i++)
                        if (c->fv[i].field == field)
                                f = &c->fv[i];
                if (!f) {
                        struct ac_fieldval *n =
                            realloc(c->fv, (c->nfv + 1) * sizeof(*n));
                        if (!n)
                                continue;
                        c->fv = n;
                        f     = &c->fv[c->nfv++];
                        *f    = (struct ac_fieldval){.id    = a->next_field++,
                                                     .field = field,
                                                     .value = ac_strdup(""),
                                                     .cdate = now};
                }
                if (f->value && set_str(&f->value, v)) {
                        f->udate = now;
                        changed  = 1;
                }
        }
        if (changed)
                c->udate = now;
        return changed;
}

/* The "contact" object of a write body, or NULL (answer already given). */
static cJSON *contact_body(struct ac_ctx *x, cJSON **body)
{
        *body      = ac_body_json(x);
        cJSON *obj = cJSON_GetObjectItemCaseSensitive(*body, "contact");
        if (!cJSON_IsObject(obj)) {
                ac_reply_errors(x, 422, "Contact data is missing or invalid",
                                "field_missing", "/data/attributes");
                return NULL;
        }
        return obj;
}

/* The answer to a contact write: fieldValues side-loaded, then the
 * contact in @p shape. */
static void reply_contact_written(struct ac_ctx *x, struct ac_contact *c,
                                  int status, enum ac_cshape shape)
{
        cJSON *o = cJSON_CreateObject();
        if (shape == AC_CJ_SHORT || c->nfv)
                cJSON_AddItemToObject(o, "fieldValues",
                                      field_values_json(x, c));
        cJSON_AddItemToObject(o, "contact", ac_contact_json(x, c, shape));
        ac_reply(x, status, o);
}

/* POST /contacts (create only) and POST /contact/sync (upsert by email). */
static void contact_create_or_sync(struct ac_ctx *x, int sync)
{
        cJSON *body;
        cJSON *in = contact_body(x, &body);
        if (!in)
                goto out;
        const char *email = ac_json_str(in, "email");
        if (!email || !ac_email_valid(email)) {
                reply_email_invalid(x);
                goto out;
        }
        struct ac_contact *c = ac_contact_by_email(x->a, email);
        /* POST /contacts refuses an existing email; sync updates it */
        if (c && !sync) {
                reply_duplicate(x);
                goto out;
        }
        if (c) {
                if (contact_apply(x->a, c, in, x->now))
                        ac_fire(x->ac, x->a, "update", "api", c, 0, NULL, 0,
                                x->now);
                /* the live API answers 200 when sync updates */
                reply_contact_written(x, c, 200, AC_CJ_EMBED);
                goto out;
        }
        /* a new contact: created only, no event (AC has no contact_add
         * webhook; list events come with a subscription) */
        c = ac_contact_create(x->a, 0, email, x->now);
        if (!c) {
                ac_reply_message(x, 500, "out of memory");
                goto out;
        }
        (void)contact_apply(x->a, c, in, x->now);
        c->udate = c->cdate;
        reply_contact_written(x, c, 201, AC_CJ_SHORT);
out:
        cJSON_Delete(body);
}

/* POST /contact/sync */
void ac_api_contact_sync(struct ac_ctx *x)
{
        if (!strcmp(x->req->method, "POST"))
                contact_create_or_sync(x, 1);
}

/* PUT /contacts/{id}: a changed email moves the email index entry. */
static void contact_update(struct ac_ctx *x, struct ac_contact *c)
{
        cJSON *body;
        cJSON *in = contact_body(x, &body);
        if (!in)
                goto out;
        const char *email = ac_json_str(in, "email");
        int changed       = 0;
        if (email && strcmp(email, c->email)) {
                if (!ac_email_valid(email)) {
                        reply_email_invalid(x);
                        goto out;
                }
                /* the address must stay unique across contacts */
                struct ac_contact *other = ac_contact_by_email(x->a, email);
                if (other && other != c) {
                        reply_duplicate(x);
                        goto out;
                }
                char *lc = ac_strlower(email);
                char *cp = ac_strdup(email);
                if (!lc || !cp || ac_map_put(&x->a->by_email, lc, c) != 0) {
                        free(lc);
                        free(cp);
                        ac_reply_message(x, 500, "out of memory");
                        goto out;
                }
                if (strcmp(lc, c->email_lc))
                        ac_map_del(&x->a->by_email, c->email_lc);
                free(c->email_lc);
                free(c->email);
                c->email_lc = lc;
                c->email    = cp;
                changed     = 1;
        }
        changed |= contact_apply(x->a, c, in, x->now);
        if (changed) {
                c->udate = x->now;
                ac_fire(x->ac, x->a, "update", "api", c, 0, NULL, 0, x->now);
        }
        reply_contact_written(x, c, 200, AC_CJ_EMBED);
out:
        cJSON_Delete(body);
}

/* AC calls contacts "Subscriber" in its 404s. */
static void reply_no_subscriber(struct ac_ctx *x, const char *id)
{
        ac_reply_message(x, 404, "No Result found for Subscriber with id %s",
                         id);
}

/* GET /contacts/{id} with AC's side-loaded arrays. */
static void contact_get(struct ac_ctx *x, struct ac_contact *c)
{
        cJSON *o = cJSON_CreateObject();
        cJSON_AddArrayToObject(o, "contactAutomations");
        cJSON *cl = cJSON_AddArrayToObject(o, "contactLists");
        for (size_t i = 0; i < c->nml; i++)
                cJSON_AddItemToArray(cl,
                                     ac_membership_json(x, c, &c->ml[i], 0));
        cJSON_AddArrayToObject(o, "deals");
        cJSON_AddItemToObject(o, "fieldValues", field_values_json(x, c));
        cJSON_AddArrayToObject(o, "geoIps");
        cJSON_AddArrayToObject(o, "accountContacts");
        cJSON_AddItemToObject(o, "contact", ac_contact_json(x, c, AC_CJ_ONE));
        ac_reply(x, 200, o);
}

/* GET /contacts/{id}/<contactLists|contactTags|bounceLogs|fieldValues> */
static void contact_sub(struct ac_ctx *x, struct ac_contact *c, const char *sub)
{
        cJSON *o = cJSON_CreateObject();
        if (!strcmp(sub, "contactLists")) {
                cJSON *arr = cJSON_AddArrayToObject(o, "contactLists");
                for (size_t i = 0; i < c->nml; i++)
                        cJSON_AddItemToArray(
                            arr, ac_membership_json(x, c, &c->ml[i], 0));
        } else if (!strcmp(sub, "contactTags")) {
                /* tag ids only; associations of deleted tags are hidden */
                cJSON *arr = cJSON_AddArrayToObject(o, "contactTags");
                for (size_t i = 0; i < c->nct; i++)
                        if (ac_tag_by_id(x->a, c->ct[i].tag))
                                cJSON_AddItemToArray(
                                    arr, ac_ctag_json(x, c, &c->ct[i], 1));
        } else if (!strcmp(sub, "bounceLogs")) {
                cJSON *arr = cJSON_AddArrayToObject(o, "bounceLogs");
                for (size_t i = 0; i < c->nbl; i++)
                        cJSON_AddItemToArray(arr,
                                             bouncelog_json(x, c, &c->bl[i]));
        } else if (!strcmp(sub, "fieldValues")) {
                cJSON_AddItemToObject(o, "fieldValues",
                                      field_values_json(x, c));
        } else {
                cJSON_Delete(o);
                return; /* 404 from the router */
        }
        ac_reply(x, 200, o);
}

/* /contacts, /contacts/{id}, /contacts/{id}/<sub> */
void ac_api_contacts(struct ac_ctx *x, const char *const *seg, size_t nseg)
{
        const char *m = x->req->method;
        if (nseg == 0) {
                if (!strcmp(m, "GET"))
                        contacts_list(x);
                else if (!strcmp(m, "POST"))
                        contact_create_or_sync(x, 0);
                return;
        }
        struct ac_contact *c = ac_contact_by_id(x->a, ac_id_parse(seg[0]));
        if (nseg > 2)
                return;
        if (!c) {
                reply_no_subscriber(x, seg[0]);
                return;
        }
        /* sub-resources answer GET only */
        if (nseg == 2) {
                if (!strcmp(m, "GET"))
                        contact_sub(x, c, seg[1]);
                return;
        }
        if (!strcmp(m, "GET")) {
                contact_get(x, c);
        } else if (!strcmp(m, "PUT")) {
                contact_update(x, c);
        } else if (!strcmp(m, "DELETE")) {
                (void)ac_contact_delete(x->a, c);
                ac_reply_empty(x, 200);
        }
}

/* ---- POST /contactLists -------------------------------------------------- */

/* POST /contactLists: subscribe (1) or unsubscribe (2) one contact on
 * one list; fires the webhook with source api when the status changes. */
void ac_api_contact_lists(struct ac_ctx *x, const char *const *seg, size_t nseg)
{
        (void)seg;
        if (nseg != 0 || strcmp(x->req->method, "POST"))
                return;
        cJSON *body    = ac_body_json(x);
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(body, "contactList");
        long list = ac_json_id(cJSON_GetObjectItemCaseSensitive(o, "list"));
        long cid  = ac_json_id(cJSON_GetObjectItemCaseSensitive(o, "contact"));
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "status");
        long status     = ac_json_id(st);
        /* AC's documented 400 for this endpoint is a bare {} */
        if (!list || !cid || (status != 1 && status != 2)) {
                ac_reply_empty(x, 400);
                goto out;
        }
        struct ac_contact *c = ac_contact_by_id(x->a, cid);
        if (!c) {
                ac_reply_message(
                    x, 404, "No Result found for Subscriber with id %ld", cid);
                goto out;
        }
        if (!ac_list_find(x->a, list)) {
                ac_reply_message(x, 404, "No Result found for List with id %ld",
                                 list);
                goto out;
        }
        const char *reason = ac_json_str(o, "unsubreason");
        if (ac_set_status(x->ac, x->a, c, list, (int)status, "api", reason, 0,
                          x->now) < 0) {
                ac_reply_message(x, 500, "out of memory");
                goto out;
        }
        /* sourceid is stored as given (AC: 4 when re-subscribing) */
        struct ac_membership *m = ac_membership_find(c, list);
        long src = ac_json_id(cJSON_GetObjectItemCaseSensitive(o, "sourceid"));
        if (src)
                m->sourceid = (int)src;
        cJSON *r  = cJSON_CreateObject();
        cJSON *cs = cJSON_AddArrayToObject(r, "contacts");
        cJSON_AddItemToArray(cs, ac_contact_json(x, c, AC_CJ_EMBED));
        cJSON_AddItemToObject(r, "contactList", ac_membership_json(x, c, m, 1));
        /* the live API answers 201 (its docs say 200) */
        ac_reply(x, 201, r);
out:
        cJSON_Delete(body);
}

/* ---- /lists -------------------------------------------------------------- */

/* A list as GET /lists shows it. */
static cJSON *list_json(const struct ac_ctx *x, const struct ac_list *l)
{
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "stringid", l->stringid);
        cJSON_AddStringToObject(o, "userid", "1");
        cJSON_AddStringToObject(o, "name", l->name);
        ac_add_iso(o, "cdate", l->cdate, x->a->tz_min);
        ac_add_iso(o, "udate", l->cdate, x->a->tz_min);
        cJSON *links = cJSON_AddObjectToObject(o, "links");
        ac_add_link(x, links, "contactGoalLists", "lists", l->id,
                    "contactGoalLists");
        ac_add_link(x, links, "user", "lists", l->id, "user");
        add_int_str(o, "id", l->id);
        return o;
}

/* GET /lists, GET /lists/{id} */
void ac_api_lists(struct ac_ctx *x, const char *const *seg, size_t nseg)
{
        if (strcmp(x->req->method, "GET") || nseg > 1)
                return;
        if (nseg == 1) {
                struct ac_list *l = ac_list_find(x->a, ac_id_parse(seg[0]));
                if (!l) {
                        ac_reply_message(x, 404,
                                         "No Result found for List with id %s",
                                         seg[0]);
                        return;
                }
                cJSON *o = cJSON_CreateObject();
                cJSON_AddItemToObject(o, "list", list_json(x, l));
                ac_reply(x, 200, o);
                return;
        }
        size_t limit  = ac_query_size(x, "limit", 20, 100);
        size_t offset = ac_query_size(x, "offset", 0, 0);
        cJSON *o      = cJSON_CreateObject();
        cJSON *arr    = cJSON_AddArrayToObject(o, "lists");
        for (size_t i = offset; i < x->a->nlists && i < offset + limit; i++)
                cJSON_AddItemToArray(arr, list_json(x, &x->a->lists[i]));
        cJSON_AddItemToObject(o, "meta", ac_meta_total(x->a->nlists));
        ac_reply(x, 200, o);
}

/* ---- /tags --------------------------------------------------------------- */

/* filters[search][op]=value on the tag name (case-insensitive). */
static int tag_filter(const struct ac_ctx *x, const struct ac_tag *t,
                      const char *search_lc)
{
        if (search_lc && !strstr(t->tag_lc, search_lc))
                return 0;
        for (size_t i = 0; i < x->req->query_cnt; i++) {
                const char *k = x->req->query[i].key;
                if (strncmp(k, "filters[search][", 16))
                        continue;
                char *v = ac_strlower(x->req->query[i].value);
                if (!v)
                        return 0;
                const char *op = k + 16;
                int cmp        = strcmp(t->tag_lc, v);
                int ok         = 1;
                if (!strncmp(op, "eq]", 3))
                        ok = cmp == 0;
                else if (!strncmp(op, "neq]", 4))
                        ok = cmp != 0;
                else if (!strncmp(op, "lt]", 3))
                        ok = cmp < 0;
                else if (!strncmp(op, "lte]", 4))
                        ok = cmp <= 0;
                else if (!strncmp(op, "gt]", 3))
                        ok = cmp > 0;
                else if (!strncmp(op, "gte]", 4))
                        ok = cmp >= 0;
                else if (!strncmp(op, "contains]", 9))
                        ok = strstr(t->tag_lc, v) != NULL;
                else if (!strncmp(op, "starts_with]", 12))
                        ok = !strncmp(t->tag_lc, v, strlen(v));
                free(v);
                if (!ok)
                        return 0;
        }
        return 1;
}

/* GET /tags: search (contains) and filters[search][op], paged. */
static void tags_list(struct ac_ctx *x)
{
        size_t limit    = ac_query_size(x, "limit", 20, 100);
        size_t offset   = ac_query_size(x, "offset", 0, 0);
        const char *q   = sbx_req_query(x->req, "search");
        char *search_lc = q && *q ? ac_strlower(q) : NULL;
        if (!limit)
                limit = 20;
        cJSON *o   = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(o, "tags");
        /* total counts every match; only offset..offset+limit are shown */
        size_t total = 0;
        for (size_t i = 0; i < x->a->ntags; i++) {
                if (!tag_filter(x, x->a->tags[i], search_lc))
                        continue;
                if (total >= offset && total < offset + limit)
                        cJSON_AddItemToArray(arr,
                                             ac_tag_json(x, x->a->tags[i]));
                total++;
        }
        cJSON_AddItemToObject(o, "meta", ac_meta_total(total));
        free(search_lc);
        ac_reply(x, 200, o);
}

/* POST /tags */
static void tag_create(struct ac_ctx *x)
{
        cJSON *body      = ac_body_json(x);
        const cJSON *t   = cJSON_GetObjectItemCaseSensitive(body, "tag");
        const char *name = ac_json_str(t, "tag");
        const char *type = ac_json_str(t, "tagType");
        if (!name || !*name) {
                ac_reply_errors(x, 422, "The tag field is required.",
                                "field_missing", "/data/attributes/tag");
                goto out;
        }
        if (type && strcmp(type, "contact") && strcmp(type, "template")) {
                ac_reply_errors(x, 422, "The tagType field is invalid.",
                                "field_invalid", "/data/attributes/tagType");
                goto out;
        }
        /* names are unique whatever their case */
        if (ac_tag_by_name(x->a, name)) {
                ac_reply_errors(x, 422, "Duplicate entry", "duplicate",
                                "/data/attributes/tag");
                goto out;
        }
        struct ac_tag *tag = ac_tag_create(
            x->a, 0, name, ac_json_str(t, "description"), type, x->now);
        if (!tag) {
                ac_reply_message(x, 500, "out of memory");
                goto out;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON *j = ac_tag_json(x, tag);
        /* the create answer omits the counters and timestamps */
        cJSON_DeleteItemFromObjectCaseSensitive(j, "subscriber_count");
        cJSON_DeleteItemFromObjectCaseSensitive(j, "created_timestamp");
        cJSON_DeleteItemFromObjectCaseSensitive(j, "updated_timestamp");
        cJSON_DeleteItemFromObjectCaseSensitive(j, "created_by");
        cJSON_DeleteItemFromObjectCaseSensitive(j, "updated_by");
        cJSON_AddItemToObject(o, "tag", j);
        ac_reply(x, 201, o);
out:
        cJSON_Delete(body);
}

/* /tags, /tags/{id} */
void ac_api_tags(struct ac_ctx *x, const char *const *seg, size_t nseg)
{
        const char *m = x->req->method;
        if (nseg == 0) {
                if (!strcmp(m, "GET"))
                        tags_list(x);
                else if (!strcmp(m, "POST"))
                        tag_create(x);
                return;
        }
        if (nseg != 1)
                return;
        struct ac_tag *t = ac_tag_by_id(x->a, ac_id_parse(seg[0]));
        if (!t) {
                ac_reply_message(x, 404, "No Result found for Tag with id %s",
                                 seg[0]);
                return;
        }
        if (!strcmp(m, "GET")) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddItemToObject(o, "tag", ac_tag_json(x, t));
                ac_reply(x, 200, o);
        } else if (!strcmp(m, "DELETE")) {
                tag_delete(x->a, t);
                ac_reply_empty(x, 200);
        }
}

/* ---- /contactTags -------------------------------------------------------- */

/* {"errors":[{"status":N,"title":...,"detail"|"source"}]}: this endpoint's
 * own error shape. */
static void reply_ctag_error(struct ac_ctx *x, int status, const char *title,
                             const char *detail, const char *pointer)
{
        cJSON *o   = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(o, "errors");
        cJSON *e   = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "status", status);
        cJSON_AddStringToObject(e, "title", title);
        if (detail)
                cJSON_AddStringToObject(e, "detail", detail);
        if (pointer) {
                cJSON *src = cJSON_AddObjectToObject(e, "source");
                cJSON_AddStringToObject(src, "pointer", pointer);
        }
        cJSON_AddItemToArray(arr, e);
        ac_reply(x, status, o);
}

/* POST /contactTags: fires contact_tag_added (source api) once. */
static void ctag_create(struct ac_ctx *x)
{
        cJSON *body     = ac_body_json(x);
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(body, "contactTag");
        const cJSON *jc = cJSON_GetObjectItemCaseSensitive(ct, "contact");
        const cJSON *jt = cJSON_GetObjectItemCaseSensitive(ct, "tag");
        if (!jc || cJSON_IsNull(jc)) {
                reply_ctag_error(x, 422, "Missing attribute", NULL,
                                 "/data/attributes/contact");
                goto out;
        }
        if (!jt || cJSON_IsNull(jt)) {
                reply_ctag_error(x, 422, "Missing attribute", NULL,
                                 "/data/attributes/tag");
                goto out;
        }
        struct ac_contact *c = ac_contact_by_id(x->a, ac_json_id(jc));
        if (!c) {
                reply_ctag_error(x, 404, "Not Found", "Contact not found",
                                 NULL);
                goto out;
        }
        struct ac_tag *t = ac_tag_by_id(x->a, ac_json_id(jt));
        if (!t) {
                reply_ctag_error(x, 404, "Not Found", "Tag not found", NULL);
                goto out;
        }
        /* Tagging twice gives back the existing association, no event. */
        struct ac_ctag *a = ac_ctag_find_tag(c, t->id);
        if (!a) {
                a = ac_ctag_add(x->a, c, t->id, x->now);
                if (!a) {
                        ac_reply_message(x, 500, "out of memory");
                        goto out;
                }
                struct ac_kv extra[] = {{"tag", t->tag}};
                ac_fire(x->ac, x->a, "contact_tag_added", "api", c, 0, extra, 1,
                        x->now);
                a = ac_ctag_find_tag(c, t->id);
        }
        cJSON *o  = cJSON_CreateObject();
        cJSON *cs = cJSON_AddArrayToObject(o, "contacts");
        cJSON_AddItemToArray(cs, ac_contact_json(x, c, AC_CJ_EMBED));
        cJSON_AddItemToObject(o, "contactTag", ac_ctag_json(x, c, a, 0));
        ac_reply(x, 201, o);
out:
        cJSON_Delete(body);
}

/* GET /contactTags, in contact-id order. */
static void ctags_list(struct ac_ctx *x)
{
        /* AC filters on column names; filters[contact] / filters[tag] are
         * silently ignored, like any unknown filter. */
        long sub = ac_id_parse(sbx_req_query(x->req, "filters[subscriberid]"));
        long tag = ac_id_parse(sbx_req_query(x->req, "filters[tagid]"));
        size_t limit  = ac_query_size(x, "limit", 20, 100);
        size_t offset = ac_query_size(x, "offset", 0, 0);
        if (!limit)
                limit = 20;
        cJSON *o                = cJSON_CreateObject();
        cJSON *arr              = cJSON_AddArrayToObject(o, "contactTags");
        size_t total            = 0;
        struct ac_contact *only = NULL;
        size_t lo = 0, hi = x->a->ncontacts;
        if (sub) {
                only = ac_contact_by_id(x->a, sub);
                hi   = only ? 1 : 0;
        }
        for (size_t i = lo; i < hi; i++) {
                struct ac_contact *c = only ? only : x->a->contacts[i];
                for (size_t k = 0; k < c->nct; k++) {
                        if ((tag && c->ct[k].tag != tag) ||
                            !ac_tag_by_id(x->a, c->ct[k].tag))
                                continue;
                        if (total >= offset && total < offset + limit)
                                cJSON_AddItemToArray(
                                    arr, ac_ctag_json(x, c, &c->ct[k], 1));
                        total++;
                }
        }
        cJSON_AddItemToObject(o, "meta", ac_meta_total(total));
        ac_reply(x, 200, o);
}

/* /contactTags, /contactTags/{id}: DELETE fires contact_tag_removed. */
void ac_api_contact_tags(struct ac_ctx *x, const char *const *seg, size_t nseg)
{
        const char *m = x->req->method;
        if (nseg == 0) {
                if (!strcmp(m, "POST"))
                        ctag_create(x);
                else if (!strcmp(m, "GET"))
                        ctags_list(x);
                return;
        }
        if (nseg != 1)
                return;
        long id = ac_id_parse(seg[0]);
        char k[24];
        idkey(k, sizeof(k), id);
        /* the association id leads to its contact in O(1), then a short
         * scan of that contact's tags */
        struct ac_contact *c = ac_map_get(&x->a->ctag_by_id, k);
        struct ac_ctag *t    = NULL;
        for (size_t i = 0; c && i < c->nct; i++)
                if (c->ct[i].id == id)
                        t = &c->ct[i];
        if (!t) {
                ac_reply_message(x, 404,
                                 "No Result found for SubscriberTag with id %s",
                                 seg[0]);
                return;
        }
        if (!strcmp(m, "GET")) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddItemToObject(o, "contactTag",
                                      ac_ctag_json(x, c, t, 1));
                ac_reply(x, 200, o);
        } else if (!strcmp(m, "DELETE")) {
                struct ac_tag *tag = ac_tag_by_id(x->a, t->tag);
                /* the event needs the name after the removal */
                char *name = tag ? ac_strdup(tag->tag) : NULL;
                ac_ctag_remove(x->a, c, id);
                if (name) {
                        struct ac_kv extra[] = {{"tag", name}};
                        ac_fire(x->ac, x->a, "contact_tag_removed", "api", c, 0,
                                extra, 1, x->now);
                }
                free(name);
                ac_reply_empty(x, 200);
        }
}
