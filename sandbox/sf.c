/*
 * sf.c - the simulated Salesforce orgs: module hooks of sandbox.h (new,
 * reset, seed, dump), the Contact/Lead store with its id and email
 * indexes, field writes with their change events, lead conversion and the
 * access-token sessions. The HTTP handlers live in sf_rest.c.
 */
#include "sf_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optsync/timeutil.h"

#define SF_MAX_TOKENS 10000 /* per org; the oldest session is dropped */
#define SF_MAX_EMAIL_LEN 80 /* Email is an 80-char field */
#define SF_MAX_TENANT_LEN 64

/* ---- options and helpers ------------------------------------------------- */

int64_t sf_opt_int(sbx_t *sbx, const char *key, int64_t def)
{
        const char *v = sbx_option(sbx, key);
        char *end;
        long long n;

        if (!v || !*v)
                return def;
        errno = 0;
        n     = strtoll(v, &end, 10);
        if (errno || *end)
                return def;
        return n;
}

/* Salesforce stores dateTime fields to the second (the API always shows
 * .000), so equal timestamps are common: polling clients must cope. */
static int64_t now_s_ms(sbx_t *sbx)
{
        int64_t now = sbx_now_ms(sbx);

        return now - now % 1000;
}

/* Read a PEM file (at most 64 KiB, plenty for a key or a certificate). */
static char *read_small_file(const char *path)
{
        FILE *f = fopen(path, "rb");
        char *buf;
        size_t n;

        if (!f)
                return NULL;
        buf = sf_xcalloc(1, 65536 + 1);
        n   = fread(buf, 1, 65536, f);
        fclose(f);
        buf[n] = '\0';
        return buf;
}

/* ---- orgs ---------------------------------------------------------------- */

static void token_free(void *p)
{
        struct sf_token *t = p;

        if (t) {
                free(t->value);
                free(t);
        }
}

static void cursor_free(void *p)
{
        struct sf_cursor *c = p;

        if (c) {
                free(c->fields);
                free(c->ids);
                free(c);
        }
}

static void reclist_free(void *p)
{
        struct sf_reclist *l = p;

        if (l) {
                free(l->v);
                free(l);
        }
}

/* Free an org with everything it owns (records, sessions, cursors). */
static void org_free(void *p)
{
        struct sf_org *org = p;

        if (!org)
                return;
        free(org->client_id);
        free(org->client_secret);
        free(org->username);
        sf_map_clear(&org->refresh_tokens, NULL);
        EVP_PKEY_free(org->jwt_key);
        free(org->jwt_username);
        for (size_t i = 0; i < org->jwt_aud_cnt; i++)
                free(org->jwt_aud[i]);
        free(org->jwt_aud);
        sf_map_clear(&org->tokens, token_free);
        sf_map_clear(&org->by_email, reclist_free);
        sf_map_clear(&org->by_id, NULL);
        for (int e = 0; e < SF_ENTITY_CNT; e++) {
                for (size_t i = 0; i < org->all[e].n; i++)
                        sf_record_free(org->all[e].v[i]);
                free(org->all[e].v);
        }
        sf_map_clear(&org->cursors, cursor_free);
        sf_map_clear(&org->lockfail, free);
        free(org->tenant);
        free(org);
}

/* Tenant names become map keys and URL parts: keep them plain. */
static int tenant_name_ok(const char *t)
{
        size_t n = t ? strlen(t) : 0;

        if (!n || n > SF_MAX_TENANT_LEN)
                return 0;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)t[i]) && t[i] != '-' &&
                    t[i] != '_' && t[i] != '.')
                        return 0;
        return 1;
}

/* Replace the org's JWT key by the one in @p path (if readable). */
static void org_load_jwt_key_file(struct sf_org *org, const char *path)
{
        char *pem = path ? read_small_file(path) : NULL;

        if (pem) {
                EVP_PKEY_free(org->jwt_key);
                org->jwt_key = sf_jwt_load_pubkey(pem, strlen(pem));
                free(pem);
        }
}

/* A new org with the defaults (--set sf.* options apply). */
static struct sf_org *org_new(struct sbx_sf *sf, const char *tenant)
{
        sbx_t *sbx         = sf->sbx;
        struct sf_org *org = sf_xcalloc(1, sizeof(*org));
        uint64_t n         = ++sf->org_seq;
        char user[128];

        /* ids from the org counter: 00D.. org, 005.. users (API and UI) */
        org->tenant = sf_xstrdup(tenant);
        sf_id_make("00D", n, org->org_id);
        sf_id_make("005", n * 2 - 1, org->user_id);
        sf_id_make("005", n * 2, org->ui_user_id);
        /* default credentials, overridable by the fixture */
        org->client_id     = sf_xstrdup("sandbox-client-id");
        org->client_secret = sf_xstrdup("sandbox-client-secret");
        snprintf(user, sizeof(user), "integration@%s.sandbox", tenant);
        org->username = sf_xstrdup(user);
        sf_map_init(&org->refresh_tokens);
        sf_map_put(&org->refresh_tokens, "sandbox-refresh-token", (void *)1);
        org->rotate_refresh =
            (int)sf_opt_int(sbx, "sf.rotate_refresh_token", 0);
        org_load_jwt_key_file(org, sbx_option(sbx, "sf.jwt_public_key"));
        sf_map_init(&org->tokens);
        /* limits and sizes: --set options first, fixture values later */
        org->session_timeout_ms =
            sf_opt_int(sbx, "sf.session_timeout_ms", 2 * 3600 * 1000);
        org->api_max = sf_opt_int(sbx, "sf.api_limit", 15000);
        org->query_batch_size =
            (long)sf_opt_int(sbx, "sf.query_batch_size", 2000);
        org->cometd_max_clients =
            (int)sf_opt_int(sbx, "sf.cometd_max_clients", 1000);
        sf_map_init(&org->by_id);
        sf_map_init(&org->by_email);
        sf_map_init(&org->cursors);
        sf_map_init(&org->lockfail);
        return org;
}

/* Orgs are created lazily; the core has already refused unknown
 * tenants, so this only fills in defaults. */
struct sf_org *sf_org_get(sbx_t *sbx, const char *tenant)
{
        struct sbx_sf *sf = sbx_sf_state(sbx);
        struct sf_org *org;

        if (!sf || !tenant_name_ok(tenant))
                return NULL;
        org = sf_map_get(&sf->orgs, tenant);
        if (!org) {
                /* Any well-formed tenant has an org with default
                 * credentials, so demos work without a fixture. */
                org = org_new(sf, tenant);
                sf_map_put(&sf->orgs, tenant, org);
        }
        return org;
}

/* Find by 15- or 18-char id (normalised first). */
struct sf_record *sf_org_find(struct sf_org *org, const char *id)
{
        char norm[SF_ID_LEN + 1];

        if (sf_id_normalize(id, norm))
                return NULL;
        return sf_map_get(&org->by_id, norm);
}

/* ---- module hooks -------------------------------------------------------- */

struct sbx_sf *sbx_sf_new(sbx_t *sbx)
{
        struct sbx_sf *sf = sf_xcalloc(1, sizeof(*sf));

        sf->sbx = sbx;
        sf_map_init(&sf->orgs);
        return sf;
}

/* Free the module state (NULL-safe). */
void sbx_sf_free(struct sbx_sf *sf)
{
        if (!sf)
                return;
        sf_map_clear(&sf->orgs, org_free);
        free(sf);
}

/* Forget every org (fixture reload); the counters restart so ids
 * stay deterministic. */
void sbx_sf_reset(struct sbx_sf *sf)
{
        if (!sf)
                return;
        sf_map_clear(&sf->orgs, org_free);
        sf->org_seq = 0;
}

/* ---- the email index ----------------------------------------------------- */

static void reclist_add(struct sf_reclist *l, struct sf_record *r)
{
        if (l->n == l->cap) {
                l->cap = l->cap ? l->cap * 2 : 4;
                l->v   = sf_xrealloc(l->v, l->cap * sizeof(*l->v));
        }
        l->v[l->n++] = r;
}

/* Remove @p r, keeping the order (lists stay in creation order). */
static void reclist_remove(struct sf_reclist *l, const struct sf_record *r)
{
        for (size_t i = 0; i < l->n; i++)
                if (l->v[i] == r) {
                        memmove(&l->v[i], &l->v[i + 1],
                                (l->n - i - 1) * sizeof(*l->v));
                        l->n--;
                        return;
                }
}

void sf_record_set_email(struct sf_org *org, struct sf_record *r,
                         const char *email)
{
        char *key;
        struct sf_reclist *l;

        /* leave the old address's list (and drop the list when empty) */
        if (r->email) {
                key = sf_lower(r->email);
                l   = sf_map_get(&org->by_email, key);
                if (l) {
                        reclist_remove(l, r);
                        if (!l->n)
                                reclist_free(sf_map_del(&org->by_email, key));
                }
                free(key);
        }
        free(r->email);
        r->email = sf_xstrdup(email);
        if (!r->email)
                return;
        /* Email is not unique: one address maps to 0..N records. */
        key = sf_lower(r->email);
        l   = sf_map_get(&org->by_email, key);
        if (!l) {
                l = sf_xcalloc(1, sizeof(*l));
                sf_map_put(&org->by_email, key, l);
        }
        reclist_add(l, r);
        free(key);
}

/* ---- records ------------------------------------------------------------- */

static struct sf_record *record_new(sbx_t *sbx, struct sf_org *org,
                                    enum sf_entity e, const char *id)
{
        struct sf_record *r = sf_xcalloc(1, sizeof(*r));
        int64_t now         = now_s_ms(sbx);

        r->entity = e;
        if (id) {
                memcpy(r->id, id, SF_ID_LEN + 1);
        } else {
                /* skip numbers a fixture already used for its own ids */
                do
                        sf_id_make(sf_entity_prefix(e), ++org->id_seq, r->id);
                while (sf_map_get(&org->by_id, r->id));
        }
        r->seq                = ++org->rec_seq;
        r->conv_date_ms       = -1;
        r->created_ms         = now;
        r->last_modified_ms   = now;
        r->system_modstamp_ms = now;
        sf_map_put(&org->by_id, r->id, r);
        reclist_add(&org->all[e], r);
        return r;
}

/* Replace an owned string (NULL stays NULL = a null field). */
static void set_str(char **dst, const char *src)
{
        free(*dst);
        *dst = sf_xstrdup(src);
}

/* Copy an id into a fixed field ("" = null). */
static void set_id(char dst[SF_ID_LEN + 1], const char *src)
{
        snprintf(dst, SF_ID_LEN + 1, "%s", src ? src : "");
}

/* Store the new value of field @p f from @p ch into @p r. */
static void record_set(struct sf_org *org, struct sf_record *r, int f,
                       const struct sf_change *ch)
{
        switch (f) {
        case SF_F_FIRSTNAME:
                set_str(&r->first_name, ch->str[f]);
                break;
        case SF_F_LASTNAME:
                set_str(&r->last_name, ch->str[f]);
                break;
        case SF_F_COMPANY:
                set_str(&r->company, ch->str[f]);
                break;
        case SF_F_EMAIL:
                sf_record_set_email(org, r, ch->str[f]);
                break;
        case SF_F_OPTOUT:
                r->opted_out = ch->b[f];
                break;
        case SF_F_ISCONVERTED:
                r->is_converted = ch->b[f];
                break;
        case SF_F_ISDELETED:
                r->is_deleted = ch->b[f];
                break;
        case SF_F_CONVCONTACT:
                set_id(r->conv_contact, ch->str[f]);
                break;
        case SF_F_CONVACCOUNT:
                set_id(r->conv_account, ch->str[f]);
                break;
        case SF_F_CONVDATE:
                r->conv_date_ms =
                    ch->t[f] < 0 ? -1 : ch->t[f] - ch->t[f] % 86400000;
                break;
        case SF_F_CREATED:
                if (ch->t[f] >= 0)
                        r->created_ms = ch->t[f];
                break;
        case SF_F_LASTMOD:
                if (ch->t[f] >= 0)
                        r->last_modified_ms = ch->t[f];
                break;
        case SF_F_SYSMOD:
                if (ch->t[f] >= 0)
                        r->system_modstamp_ms = ch->t[f];
                break;
        default:
                break;
        }
}

/* The value @p ch would give field @p f, for change detection. */
static void change_value(const struct sf_change *ch, int f, struct sf_value *v)
{
        memset(v, 0, sizeof(*v));
        v->type = sf_fields[f].type;
        switch (v->type) {
        case SF_T_BOOL:
                v->b = ch->b[f];
                break;
        case SF_T_DATE:
        case SF_T_DATETIME:
                v->t       = ch->t[f];
                v->is_null = ch->t[f] < 0;
                break;
        default:
                v->s       = ch->str[f];
                v->is_null = !ch->str[f];
                break;
        }
}

/* @returns 1 if a write would leave the value as it is. */
static int value_same(const struct sf_value *a, const struct sf_value *b)
{
        if (a->is_null || b->is_null)
                return a->is_null == b->is_null;
        switch (a->type) {
        case SF_T_BOOL:
                return a->b == b->b;
        case SF_T_DATE:
        case SF_T_DATETIME:
                return a->t == b->t;
        default:
                return !strcmp(a->s, b->s); /* a case change is a change */
        }
}

/* CDC payloads spell dateTimes "2024-01-02T03:04:05.000Z" (REST: +0000). */
static cJSON *value_event_json(const struct sf_value *v)
{
        char buf[OSY_TIME_BUFSZ];

        if (!v->is_null && v->type == SF_T_DATETIME) {
                if (osy_time_format_ms(v->t, buf, sizeof(buf)) != OSY_OK)
                        return cJSON_CreateNull();
                return cJSON_CreateString(buf);
        }
        return sf_value_json(v);
}

cJSON *sf_record_json(const struct sf_record *r, const char *ver,
                      const int *fields, size_t field_cnt)
{
        cJSON *o = cJSON_CreateObject(), *attr = cJSON_CreateObject();
        char url[128];

        snprintf(url, sizeof(url), "/services/data/v%s/sobjects/%s/%s", ver,
                 sf_entity_name(r->entity), r->id);
        cJSON_AddStringToObject(attr, "type", sf_entity_name(r->entity));
        cJSON_AddStringToObject(attr, "url", url);
        cJSON_AddItemToObject(o, "attributes", attr);
        for (size_t i = 0; i < (fields ? field_cnt : (size_t)SF_F_CNT); i++) {
                int f = fields ? fields[i] : (int)i;
                struct sf_value v;

                if (!(sf_fields[f].entities & SF_ENT_BIT(r->entity)))
                        continue;
                sf_record_get(r, (enum sf_field)f, &v);
                cJSON_AddItemToObject(o, sf_fields[f].name, sf_value_json(&v));
        }
        return o;
}

cJSON *sf_record_event_body(const struct sf_record *r)
{
        cJSON *o = cJSON_CreateObject();

        /* CREATE/UNDELETE carry every non-empty field; never Id,
         * IsDeleted or SystemModstamp. */
        for (int f = 0; f < SF_F_CNT; f++) {
                struct sf_value v;

                if (f == SF_F_ID || f == SF_F_ISDELETED || f == SF_F_SYSMOD ||
                    !(sf_fields[f].entities & SF_ENT_BIT(r->entity)))
                        continue;
                sf_record_get(r, (enum sf_field)f, &v);
                if (v.is_null)
                        continue;
                cJSON_AddItemToObject(o, sf_fields[f].name,
                                      value_event_json(&v));
        }
        return o;
}

/* Publish with the committing user: the integration user for API calls,
 * the human for UI changes (empty origin). */
static void publish(sbx_t *sbx, struct sf_org *org, enum sf_entity e,
                    const char *type, const char *const *ids, size_t cnt,
                    const cJSON *changed, cJSON *body, const char *origin)
{
        sf_cdc_set_user(sbx, origin[0] ? org->user_id : org->ui_user_id);
        sbx_cdc_publish(sbx, org->tenant, sf_entity_name(e), type, ids, cnt,
                        changed, body, origin);
}

struct sf_record *sf_record_create(sbx_t *sbx, struct sf_org *org,
                                   enum sf_entity e, const struct sf_change *ch,
                                   const char *origin)
{
        struct sf_record *r = record_new(sbx, org, e, NULL);
        const char *id      = r->id;

        /* every given field, read-only ones included (callers validated) */
        for (int f = 0; f < SF_F_CNT; f++)
                if (ch->set[f])
                        record_set(org, r, f, ch);
        /* seeding passes no origin: fixtures are history, not changes */
        if (origin)
                publish(sbx, org, e, "CREATE", &id, 1, NULL,
                        sf_record_event_body(r), origin);
        return r;
}

/* ---- field writes -------------------------------------------------------- */

static const char *json_kind(const cJSON *it)
{
        if (cJSON_IsString(it))
                return "VALUE_STRING";
        if (cJSON_IsNumber(it))
                return it->valuedouble == (double)(long long)it->valuedouble
                           ? "VALUE_NUMBER_INT"
                           : "VALUE_NUMBER_FLOAT";
        if (cJSON_IsTrue(it))
                return "VALUE_TRUE";
        if (cJSON_IsFalse(it))
                return "VALUE_FALSE";
        if (cJSON_IsArray(it))
                return "START_ARRAY";
        return "START_OBJECT";
}

/* Free the strings a parsed change owns (safe twice). */
void sf_change_free(struct sf_change *ch)
{
        for (int f = 0; f < SF_F_CNT; f++) {
                free(ch->str[f]);
                ch->str[f] = NULL;
        }
}

/* Parse the JSON value of field @p f into @p ch, checking its JSON type
 * the way Salesforce's deserialiser does. */
static int parse_one(enum sf_entity e, const cJSON *it, int f,
                     struct sf_change *ch, struct sf_err *err)
{
        const struct sf_field_def *fd = &sf_fields[f];
        char id[SF_ID_LEN + 1];

        (void)e;
        switch (fd->type) {
        /* null clears a checkbox (false) */
        case SF_T_BOOL:
                if (cJSON_IsBool(it) || cJSON_IsNull(it)) {
                        ch->b[f] = cJSON_IsTrue(it);
                        return 0;
                }
                sf_err_set(err, 400, "JSON_PARSER_ERROR", NULL,
                           "Cannot deserialize instance of boolean from %s "
                           "value %s or request may be missing a required "
                           "field at [line:1, column:1]",
                           json_kind(it),
                           cJSON_IsString(it) ? it->valuestring : "");
                return -1;
        case SF_T_DATETIME:
        case SF_T_DATE:
                if (cJSON_IsNull(it)) {
                        ch->t[f] = -1;
                        return 0;
                }
                if (cJSON_IsString(it)) {
                        char es[OSY_ERRSTR_SIZE];

                        if (fd->type == SF_T_DATE &&
                            !sf_date_parse(it->valuestring,
                                           strlen(it->valuestring), &ch->t[f]))
                                return 0;
                        if (fd->type == SF_T_DATETIME &&
                            osy_time_parse(it->valuestring, &ch->t[f], es,
                                           sizeof(es)) == OSY_OK)
                                return 0;
                }
                sf_err_set(err, 400, "JSON_PARSER_ERROR", NULL,
                           "Cannot deserialize instance of %s from %s value",
                           fd->type == SF_T_DATE ? "date" : "datetime",
                           json_kind(it));
                return -1;
        default:
                if (cJSON_IsNull(it)) {
                        ch->str[f] = NULL;
                        return 0;
                }
                if (!cJSON_IsString(it)) {
                        sf_err_set(err, 400, "JSON_PARSER_ERROR", NULL,
                                   "Cannot deserialize instance of string "
                                   "from %s value",
                                   json_kind(it));
                        return -1;
                }
                /* reference fields (controls only) take 15 or 18 chars */
                if (fd->type == SF_T_ID) {
                        if (sf_id_normalize(it->valuestring, id)) {
                                sf_err_set(err, 400, "MALFORMED_ID", fd->name,
                                           "%s: id value of incorrect type: "
                                           "%s",
                                           fd->name, it->valuestring);
                                return -1;
                        }
                        ch->str[f] = sf_xstrdup(id);
                        return 0;
                }
                ch->str[f] = sf_xstrdup(it->valuestring);
                return 0;
        }
}

/* Unknown fields and JSON type errors stop the parse; read-only fields
 * are refused unless @p ui (controls and fixtures may set them). */
int sf_change_parse(enum sf_entity e, const cJSON *obj, int ui,
                    struct sf_change *ch, struct sf_err *err)
{
        const cJSON *it;

        memset(ch, 0, sizeof(*ch));
        for (int f = 0; f < SF_F_CNT; f++)
                ch->t[f] = -1;
        if (!cJSON_IsObject(obj)) {
                sf_err_set(err, 400, "JSON_PARSER_ERROR", NULL,
                           "Cannot deserialize instance of %s from %s value "
                           "at [line:1, column:1]",
                           sf_entity_name(e), obj ? json_kind(obj) : "null");
                return -1;
        }
        cJSON_ArrayForEach(it, obj)
        {
                const char *k = it->string;
                int f;

                if (!strcmp(k, "attributes") || !strcasecmp(k, "id"))
                        continue; /* the target, not a field write */
                f = sf_field_lookup(e, k, strlen(k));
                if (f < 0) {
                        sf_err_set(err, 400, "INVALID_FIELD", NULL,
                                   "No such column '%s' on sobject of type %s",
                                   k, sf_entity_name(e));
                        goto fail;
                }
                if (!sf_fields[f].writable && !ui) {
                        sf_err_set(err, 400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                                   sf_fields[f].name,
                                   "Unable to create/update fields: %s. "
                                   "Please check the security settings of "
                                   "this field and verify that it is "
                                   "read/write for your profile or "
                                   "permission set.",
                                   sf_fields[f].name);
                        goto fail;
                }
                /* a repeated key: the last one wins */
                free(ch->str[f]);
                ch->str[f] = NULL;
                if (parse_one(e, it, f, ch, err))
                        goto fail;
                ch->set[f] = 1;
        }
        return 0;
fail:
        sf_change_free(ch);
        return -1;
}

/* A deliberately simple check: one '@', a dot in the domain, no
 * spaces; Salesforce's own rules are looser in places and stricter in
 * others. */
static int email_valid(const char *s)
{
        const char *at = strchr(s, '@'), *dom;
        size_t n;

        if (!at || at == s || strchr(at + 1, '@'))
                return 0;
        dom = at + 1;
        n   = strlen(dom);
        if (!n || dom[0] == '.' || dom[n - 1] == '.' || !strchr(dom, '.'))
                return 0;
        for (const char *p = s; *p; p++)
                if ((unsigned char)*p <= ' ')
                        return 0;
        return 1;
}

/* Order matters: a deleted row is gone before anything else, a lock
 * is taken before validation. */
int sf_change_check(struct sf_org *org, const struct sf_record *r,
                    const struct sf_change *ch, int api, struct sf_err *err)
{
        long *lf;

        if (r->is_deleted) {
                sf_err_set(err, 404, "ENTITY_IS_DELETED", NULL,
                           "entity is deleted");
                return -1;
        }
        lf = api ? sf_map_get(&org->lockfail, r->id) : NULL;
        /* injected contention: fail this write, count it down */
        if (lf && *lf > 0) {
                if (--*lf == 0)
                        free(sf_map_del(&org->lockfail, r->id));
                sf_err_set(err, 400, "UNABLE_TO_LOCK_ROW", NULL,
                           "unable to obtain exclusive access to this record "
                           "or 1 records: %s",
                           r->id);
                return -1;
        }
        /* converted leads are read-only for normal users */
        if (r->entity == SF_LEAD && r->is_converted) {
                sf_err_set(err, 400, "CANNOT_UPDATE_CONVERTED_LEAD", NULL,
                           "cannot reference converted lead");
                return -1;
        }
        /* clearing the email is allowed; a new one must look like one */
        if (ch && ch->set[SF_F_EMAIL] && ch->str[SF_F_EMAIL]) {
                const char *em = ch->str[SF_F_EMAIL];

                if (strlen(em) > SF_MAX_EMAIL_LEN) {
                        sf_err_set(err, 400, "STRING_TOO_LONG", "Email",
                                   "Email: data value too large: %s (max "
                                   "length=%d)",
                                   em, SF_MAX_EMAIL_LEN);
                        return -1;
                }
                if (!email_valid(em)) {
                        sf_err_set(err, 400, "INVALID_EMAIL_ADDRESS", "Email",
                                   "Email: invalid email address: %s", em);
                        return -1;
                }
        }
        return 0;
}

/* Only values that really change go into the event; the timestamps
 * move on every save. */
void sf_change_apply(sbx_t *sbx, struct sf_org *org, struct sf_record *r,
                     const struct sf_change *ch, struct sf_delta *d)
{
        int64_t now = now_s_ms(sbx);
        struct sf_value v;

        d->changed = cJSON_CreateArray();
        d->body    = cJSON_CreateObject();
        for (int f = 0; f < SF_F_CNT; f++) {
                struct sf_value old, nv;

                if (!ch->set[f])
                        continue;
                sf_record_get(r, (enum sf_field)f, &old);
                change_value(ch, f, &nv);
                if (value_same(&old, &nv))
                        continue; /* only real changes are in events */
                record_set(org, r, f, ch);
                if (f == SF_F_CREATED || f == SF_F_LASTMOD ||
                    f == SF_F_SYSMOD || f == SF_F_ISDELETED)
                        continue; /* system fields: never in events */
                sf_record_get(r, (enum sf_field)f, &v);
                cJSON_AddItemToArray(d->changed,
                                     cJSON_CreateString(sf_fields[f].name));
                cJSON_AddItemToObject(d->body, sf_fields[f].name,
                                      value_event_json(&v));
        }
        /* every save is a modification, even one that changed nothing */
        r->last_modified_ms   = now;
        r->system_modstamp_ms = now;
        sf_record_get(r, SF_F_LASTMOD, &v);
        cJSON_AddItemToArray(d->changed,
                             cJSON_CreateString("LastModifiedDate"));
        cJSON_AddItemToObject(d->body, "LastModifiedDate",
                              value_event_json(&v));
}

/* Publish one UPDATE for @p ids and release the delta's JSON. */
void sf_delta_publish(sbx_t *sbx, struct sf_org *org, enum sf_entity e,
                      const char *const *ids, size_t cnt, struct sf_delta *d,
                      const char *origin)
{
        publish(sbx, org, e, "UPDATE", ids, cnt, d->changed, d->body, origin);
        cJSON_Delete(d->changed);
        d->changed = NULL;
        d->body    = NULL;
}

/* Convert @p lead like the UI's Convert button, with the events
 * Salesforce emits (the caller wraps them in one transaction). */
struct sf_record *sf_lead_convert(sbx_t *sbx, struct sf_org *org,
                                  struct sf_record *lead,
                                  struct sf_record *contact, struct sf_err *err)
{
        char date[SF_TIME_BUFSZ];
        const char *lead_id = lead->id;
        cJSON *changed, *body;
        int64_t now = now_s_ms(sbx);

        if (lead->entity != SF_LEAD || lead->is_deleted) {
                sf_err_set(err, 404, "NOT_FOUND", NULL, "no such lead: %s",
                           lead->id);
                return NULL;
        }
        if (lead->is_converted) {
                sf_err_set(err, 400, "CANNOT_UPDATE_CONVERTED_LEAD", NULL,
                           "cannot reference converted lead");
                return NULL;
        }
        if (contact && (contact->entity != SF_CONTACT || contact->is_deleted)) {
                sf_err_set(err, 400, "INVALID_CROSS_REFERENCE_KEY", NULL,
                           "invalid cross reference id: %s", contact->id);
                return NULL;
        }
        if (!contact) {
                /* The standard mapping copies the person, Email Opt Out
                 * included, into the new contact. */
                struct sf_change ch;

                memset(&ch, 0, sizeof(ch));
                ch.set[SF_F_FIRSTNAME] = ch.set[SF_F_LASTNAME] = 1;
                ch.set[SF_F_EMAIL] = ch.set[SF_F_OPTOUT] = 1;
                ch.str[SF_F_FIRSTNAME]                   = lead->first_name;
                ch.str[SF_F_LASTNAME]                    = lead->last_name;
                ch.str[SF_F_EMAIL]                       = lead->email;
                ch.b[SF_F_OPTOUT]                        = lead->opted_out;
                contact = sf_record_create(sbx, org, SF_CONTACT, &ch, "");
        }
        /* An existing contact keeps its own HasOptedOutOfEmail: Salesforce
         * does not update that field when merging a lead into a contact. */
        lead->is_converted = 1;
        set_id(lead->conv_contact, contact->id);
        /* no Account object exists; the id is for the lead's fields only */
        sf_id_make("001", ++org->account_seq, lead->conv_account);
        lead->conv_date_ms       = now - now % 86400000;
        lead->last_modified_ms   = now;
        lead->system_modstamp_ms = now;
        /* The Lead UPDATE of a conversion has no LastModifiedDate. */
        changed = cJSON_CreateArray();
        body    = cJSON_CreateObject();
        cJSON_AddItemToArray(changed, cJSON_CreateString("IsConverted"));
        cJSON_AddItemToArray(changed, cJSON_CreateString("ConvertedAccountId"));
        cJSON_AddItemToArray(changed, cJSON_CreateString("ConvertedContactId"));
        cJSON_AddItemToArray(changed, cJSON_CreateString("ConvertedDate"));
        cJSON_AddBoolToObject(body, "IsConverted", 1);
        cJSON_AddStringToObject(body, "ConvertedAccountId", lead->conv_account);
        cJSON_AddStringToObject(body, "ConvertedContactId", lead->conv_contact);
        sf_date_format(lead->conv_date_ms, date, sizeof(date));
        cJSON_AddStringToObject(body, "ConvertedDate", date);
        publish(sbx, org, SF_LEAD, "UPDATE", &lead_id, 1, changed, body, "");
        cJSON_Delete(changed);
        return contact;
}

/* ---- sessions ------------------------------------------------------------ */

static void token_unlink(struct sf_org *org, struct sf_token *t)
{
        if (t->prev)
                t->prev->next = t->next;
        else
                org->tok_head = t->next;
        if (t->next)
                t->next->prev = t->prev;
        else
                org->tok_tail = t->prev;
        sf_map_del(&org->tokens, t->value);
        token_free(t);
}

/* Every access token of the org dies at once (the expire control). */
void sf_tokens_expire(struct sf_org *org)
{
        sf_map_clear(&org->tokens, token_free);
        org->tok_head = org->tok_tail = NULL;
}

/* Tokens look like Salesforce session ids: org id, '!', then random
 * characters from the seeded generator plus a counter for uniqueness. */
const char *sf_token_issue(sbx_t *sbx, struct sf_org *org)
{
        static const char an[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
                                 "qrstuvwxyz0123456789";
        struct sf_token *t     = sf_xcalloc(1, sizeof(*t));
        char rnd[41], buf[96];

        for (int i = 0; i < 40; i++)
                rnd[i] = an[(int)(sbx_random(sbx) * 62) % 62];
        rnd[40] = '\0';
        snprintf(buf, sizeof(buf), "%.15s!AQ%s.%llu", org->org_id, rnd,
                 (unsigned long long)++org->token_seq);
        t->value        = sf_xstrdup(buf);
        t->last_used_ms = sbx_now_ms(sbx);
        t->prev         = org->tok_tail;
        if (org->tok_tail)
                org->tok_tail->next = t;
        else
                org->tok_head = t;
        org->tok_tail = t;
        sf_map_put(&org->tokens, t->value, t);
        /* bounded: a client that never reuses tokens cannot grow memory */
        while (org->tokens.cnt > SF_MAX_TOKENS)
                token_unlink(org, org->tok_head);
        return t->value;
}

/* Look up a session: sessions time out after session_timeout_ms of
 * inactivity by the sandbox clock, and each use restarts the timer. */
static int token_valid(sbx_t *sbx, struct sf_org *org, const char *value)
{
        struct sf_token *t = value ? sf_map_get(&org->tokens, value) : NULL;
        int64_t now        = sbx_now_ms(sbx);

        if (!t)
                return 0;
        if (now - t->last_used_ms > org->session_timeout_ms) {
                token_unlink(org, t);
                return 0;
        }
        t->last_used_ms = now;
        return 1;
}

/* Salesforce accepts both schemes; older CometD samples use OAuth. */
const char *sf_bearer(const struct sbx_req *req)
{
        const char *h = sbx_req_header(req, "Authorization");

        if (!h)
                return NULL;
        while (*h == ' ')
                h++;
        if (!strncasecmp(h, "Bearer ", 7))
                h += 7;
        else if (!strncasecmp(h, "OAuth ", 6))
                h += 6;
        else
                return NULL;
        while (*h == ' ')
                h++;
        return *h ? h : NULL;
}

/* Used by REST and CometD alike, so both see the same sessions. */
int sf_session_check(sbx_t *sbx, const char *tenant, const struct sbx_req *req)
{
        struct sf_org *org = sf_org_get(sbx, tenant);

        return org && token_valid(sbx, org, sf_bearer(req));
}

/* ---- fixtures ------------------------------------------------------------ */

static int seed_record(sbx_t *sbx, struct sf_org *org, enum sf_entity e,
                       const cJSON *obj, char *err, size_t errsz)
{
        const cJSON *jid = cJSON_GetObjectItemCaseSensitive(obj, "Id");
        char id[SF_ID_LEN + 1];
        struct sf_change ch;
        struct sf_err serr;
        struct sf_record *r;

        /* a fixture may pin ids so tests can name rows */
        if (cJSON_IsString(jid)) {
                if (sf_id_normalize(jid->valuestring, id) ||
                    strncmp(id, sf_entity_prefix(e), 3) ||
                    sf_map_get(&org->by_id, id)) {
                        snprintf(err, errsz,
                                 "sf: bad or duplicate %s Id '%s' (want a "
                                 "unique 15/18-char id starting %s)",
                                 sf_entity_name(e), jid->valuestring,
                                 sf_entity_prefix(e));
                        return -1;
                }
        }
        if (sf_change_parse(e, obj, 1, &ch, &serr)) {
                snprintf(err, errsz, "sf: %s record: %s", sf_entity_name(e),
                         serr.message);
                return -1;
        }
        r = record_new(sbx, org, e, cJSON_IsString(jid) ? id : NULL);
        for (int f = 0; f < SF_F_CNT; f++)
                if (ch.set[f])
                        record_set(org, r, f, &ch);
        /* SystemModstamp is never older than LastModifiedDate */
        if (ch.set[SF_F_LASTMOD] && !ch.set[SF_F_SYSMOD])
                r->system_modstamp_ms = r->last_modified_ms;
        sf_change_free(&ch);
        return 0;
}

/* Read an optional non-negative number from the fixture. */
static int seed_int(const cJSON *fx, const char *key, int64_t *out, char *err,
                    size_t errsz)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(fx, key);

        if (!v)
                return 0;
        if (!cJSON_IsNumber(v) || v->valuedouble < 0) {
                snprintf(err, errsz, "sf: \"%s\" must be a number >= 0", key);
                return -1;
        }
        *out = (int64_t)v->valuedouble;
        return 0;
}

/* Read an optional string from the fixture into an owned field. */
static int seed_str(const cJSON *fx, const char *key, char **out, char *err,
                    size_t errsz)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(fx, key);

        if (!v)
                return 0;
        if (!cJSON_IsString(v)) {
                snprintf(err, errsz, "sf: \"%s\" must be a string", key);
                return -1;
        }
        set_str(out, v->valuestring);
        return 0;
}

/* The "jwt" object: the key (PEM text or file), username, audiences. */
static int seed_jwt(struct sf_org *org, const cJSON *jwt, char *err,
                    size_t errsz)
{
        const cJSON *pem =
            cJSON_GetObjectItemCaseSensitive(jwt, "public_key_pem");
        const cJSON *file =
            cJSON_GetObjectItemCaseSensitive(jwt, "public_key_file");
        const cJSON *aud = cJSON_GetObjectItemCaseSensitive(jwt, "audiences");
        const cJSON *a;

        if (!cJSON_IsObject(jwt)) {
                snprintf(err, errsz, "sf: \"jwt\" must be an object");
                return -1;
        }
        if (cJSON_IsString(pem) || cJSON_IsString(file)) {
                EVP_PKEY_free(org->jwt_key);
                org->jwt_key = NULL;
                if (cJSON_IsString(pem))
                        org->jwt_key = sf_jwt_load_pubkey(
                            pem->valuestring, strlen(pem->valuestring));
                else
                        org_load_jwt_key_file(org, file->valuestring);
                if (!org->jwt_key) {
                        snprintf(err, errsz,
                                 "sf: jwt public key unreadable (want an RSA "
                                 "PUBLIC KEY or CERTIFICATE PEM)");
                        return -1;
                }
        }
        if (seed_str(jwt, "username", &org->jwt_username, err, errsz))
                return -1;
        cJSON_ArrayForEach(a, aud)
        {
                if (!cJSON_IsString(a))
                        continue;
                org->jwt_aud = sf_xrealloc(
                    org->jwt_aud, (org->jwt_aud_cnt + 1) * sizeof(char *));
                org->jwt_aud[org->jwt_aud_cnt++] = sf_xstrdup(a->valuestring);
        }
        return 0;
}

static const char *const fixture_keys[] = {"client_id",
                                           "client_secret",
                                           "username",
                                           "refresh_token",
                                           "rotate_refresh_token",
                                           "jwt",
                                           "api_limit",
                                           "api_used",
                                           "query_batch_size",
                                           "session_timeout_ms",
                                           "cometd_max_clients",
                                           "contacts",
                                           "leads",
                                           NULL};

/* Apply one tenant's "sf" fixture part (lock held by the core).
 * Unknown keys fail so that typos in fixtures do not go unnoticed. */
int sbx_sf_seed(struct sbx_sf *sf, const char *tenant, const cJSON *fx,
                char *err, size_t errsz)
{
        struct sf_org *org = sf ? sf_org_get(sf->sbx, tenant) : NULL;
        const cJSON *it, *rt;
        int64_t n;

        if (!org) {
                snprintf(err, errsz, "sf: bad tenant name '%s'",
                         tenant ? tenant : "");
                return -1;
        }
        if (!fx || cJSON_IsNull(fx))
                return 0;
        if (!cJSON_IsObject(fx)) {
                snprintf(err, errsz, "sf: the \"sf\" part must be an object");
                return -1;
        }
        /* refuse unknown keys before changing anything */
        cJSON_ArrayForEach(it, fx)
        {
                size_t k = 0;

                while (fixture_keys[k] && strcmp(fixture_keys[k], it->string))
                        k++;
                if (!fixture_keys[k]) {
                        snprintf(err, errsz, "sf: unknown fixture key \"%s\"",
                                 it->string);
                        return -1;
                }
        }
        if (seed_str(fx, "client_id", &org->client_id, err, errsz) ||
            seed_str(fx, "client_secret", &org->client_secret, err, errsz) ||
            seed_str(fx, "username", &org->username, err, errsz))
                return -1;
        rt = cJSON_GetObjectItemCaseSensitive(fx, "refresh_token");
        if (rt) {
                /* one token or a list of valid ones */
                sf_map_clear(&org->refresh_tokens, NULL);
                if (cJSON_IsString(rt))
                        sf_map_put(&org->refresh_tokens, rt->valuestring,
                                   (void *)1);
                const cJSON *list = cJSON_IsArray(rt) ? rt : NULL;

                cJSON_ArrayForEach(it, list)
                {
                        if (cJSON_IsString(it))
                                sf_map_put(&org->refresh_tokens,
                                           it->valuestring, (void *)1);
                }
        }
        it = cJSON_GetObjectItemCaseSensitive(fx, "rotate_refresh_token");
        if (it)
                org->rotate_refresh = cJSON_IsTrue(it);
        it = cJSON_GetObjectItemCaseSensitive(fx, "jwt");
        if (it && seed_jwt(org, it, err, errsz))
                return -1;
        if (seed_int(fx, "api_limit", &org->api_max, err, errsz) ||
            seed_int(fx, "api_used", &org->api_used, err, errsz) ||
            seed_int(fx, "session_timeout_ms", &org->session_timeout_ms, err,
                     errsz))
                return -1;
        /* a batch size of 0 would never finish a query */
        n = org->query_batch_size;
        if (seed_int(fx, "query_batch_size", &n, err, errsz))
                return -1;
        if (n < 1) {
                snprintf(err, errsz, "sf: query_batch_size must be >= 1");
                return -1;
        }
        org->query_batch_size = (long)n;
        n                     = org->cometd_max_clients;
        if (seed_int(fx, "cometd_max_clients", &n, err, errsz))
                return -1;
        org->cometd_max_clients = (int)n;
        /* records last, after the settings they may depend on */
        for (int e = 0; e < SF_ENTITY_CNT; e++) {
                const cJSON *list = cJSON_GetObjectItemCaseSensitive(
                    fx, e == SF_CONTACT ? "contacts" : "leads");

                if (list && !cJSON_IsArray(list)) {
                        snprintf(err, errsz,
                                 "sf: \"%s\" must be an array of records",
                                 e == SF_CONTACT ? "contacts" : "leads");
                        return -1;
                }
        }
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(fx, "contacts"))
        {
                if (seed_record(sf->sbx, org, SF_CONTACT, it, err, errsz))
                        return -1;
        }
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(fx, "leads"))
        {
                if (seed_record(sf->sbx, org, SF_LEAD, it, err, errsz))
                        return -1;
        }
        return 0;
}

cJSON *sbx_sf_dump(struct sbx_sf *sf, const char *tenant)
{
        struct sf_org *org = sf ? sf_map_get(&sf->orgs, tenant) : NULL;
        cJSON *o, *usage, *arr;

        if (!org)
                return cJSON_CreateNull();
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "org_id", org->org_id);
        cJSON_AddStringToObject(o, "client_id", org->client_id);
        cJSON_AddStringToObject(o, "username", org->username);
        usage = cJSON_AddObjectToObject(o, "api_usage");
        cJSON_AddNumberToObject(usage, "used", (double)org->api_used);
        cJSON_AddNumberToObject(usage, "max", (double)org->api_max);
        cJSON_AddNumberToObject(o, "sessions", (double)org->tokens.cnt);
        cJSON_AddNumberToObject(o, "query_cursors", (double)org->cursors.cnt);
        for (int e = 0; e < SF_ENTITY_CNT; e++) {
                arr = cJSON_AddArrayToObject(o, e == SF_CONTACT ? "contacts"
                                                                : "leads");
                for (size_t i = 0; i < org->all[e].n; i++)
                        cJSON_AddItemToArray(
                            arr,
                            sf_record_json(org->all[e].v[i], "59.0", NULL, 0));
        }
        cJSON_AddItemToObject(o, "cdc", sf_cdc_dump(sf->sbx, tenant));
        return o;
}
