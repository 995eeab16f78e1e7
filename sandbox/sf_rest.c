/*
 * sf_rest.c - the HTTP side of the simulated org: POST
 * /services/oauth2/token and /services/data/vNN.N/ {sobjects, query,
 * composite/sobjects, limits}, with per-org API usage accounting and
 * Sforce-Limit-Info on every REST answer.
 */
#include "sf_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define SF_MAX_COLLECTION 200 /* records per sObject Collections call */
#define SF_MAX_CHUNKS 10      /* runs of one type per call */
#define SF_MAX_CURSORS 1000   /* open query cursors per org */
#define SF_BATCH_MIN 200      /* Sforce-Query-Options batchSize range */
#define SF_BATCH_MAX 2000
#define SF_JWT_MAX_AHEAD_S 180 /* exp at most 3 minutes ahead */
#define SF_CURSOR_TTL_MS (2LL * 24 * 3600 * 1000)

static const char NOT_FOUND_MSG[] = "The requested resource does not exist";

/* One REST call being answered (lock held from auth to the end). */
struct rest_ctx {
        sbx_t *sbx;
        const struct sbx_req *req;
        struct sbx_resp *resp;
        struct sf_org *org;
        const char *method; /* after the _HttpMethod override */
        char ver[16];       /* "59.0" */
        const char *rest;   /* after /services/data/vNN.N */
        char origin[192];   /* CDC changeOrigin of writes */
};

/* Answer a REST error array [{"message","errorCode"(,"fields")}]. */
static void rest_err(struct rest_ctx *c, int status, const char *code,
                     const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void rest_err(struct rest_ctx *c, int status, const char *code,
                     const char *field, const char *fmt, ...)
{
        struct sf_err e;
        va_list ap;

        e.status = status;
        snprintf(e.code, sizeof(e.code), "%s", code);
        snprintf(e.field, sizeof(e.field), "%s", field ? field : "");
        va_start(ap, fmt);
        vsnprintf(e.message, sizeof(e.message), fmt, ap);
        va_end(ap);
        sf_resp_err(c->resp, &e);
}

/* 405 with the list Salesforce would give. */
static void method_not_allowed(struct rest_ctx *c, const char *allowed)
{
        rest_err(c, 405, "METHOD_NOT_ALLOWED", NULL,
                 "HTTP Method '%s' not allowed. Allowed are %s", c->method,
                 allowed);
}

static void resp_no_content(struct sbx_resp *resp)
{
        resp->status = 204; /* no body, no content type */
}

/* Parse a JSON request body the way Salesforce reports bad JSON. */
static cJSON *parse_body(struct rest_ctx *c)
{
        const char *body = c->req->body ? c->req->body : "";
        cJSON *j         = cJSON_ParseWithLength(body, c->req->body_len);
        const char *at;

        if (j)
                return j;
        if (!c->req->body_len) {
                rest_err(c, 400, "JSON_PARSER_ERROR", NULL,
                         "No content to map due to end-of-input at "
                         "[line:1, column:0]");
                return NULL;
        }
        at = cJSON_GetErrorPtr();
        if (!at || at < body || at > body + c->req->body_len)
                at = body;
        rest_err(c, 400, "JSON_PARSER_ERROR", NULL,
                 "Unexpected character ('%c' (code %d)): expected a valid "
                 "value at [line:1, column:%d]",
                 *at ? *at : ' ', (unsigned char)*at, (int)(at - body) + 1);
        return NULL;
}

/* ---- OAuth token endpoint ------------------------------------------------ */

static void oauth_error(struct sbx_resp *resp, const char *error,
                        const char *desc)
{
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "error", error);
        cJSON_AddStringToObject(o, "error_description", desc);
        sbx_resp_json(resp, 400, o);
}

/* Standard base64 (with padding), for the token signature. */
static char *b64_std(const unsigned char *in, size_t len)
{
        char *out = sf_xcalloc(1, 4 * ((len + 2) / 3) + 1);

        EVP_EncodeBlock((unsigned char *)out, in, (int)len);
        return out;
}

/* client_id/client_secret from the form, else from HTTP Basic. */
static void client_creds(const struct sbx_req *req, char **id, char **secret)
{
        const char *h = sbx_req_header(req, "Authorization");

        *id     = sf_form_get(req->body, req->body_len, "client_id");
        *secret = sf_form_get(req->body, req->body_len, "client_secret");
        if (!*id && h && !strncasecmp(h, "Basic ", 6)) {
                size_t len         = strlen(h + 6);
                unsigned char *dec = sf_xcalloc(1, len + 4);
                int n = EVP_DecodeBlock(dec, (const unsigned char *)h + 6,
                                        (int)len);
                char *colon;

                if (n > 0) {
                        while (len && h[6 + len - 1] == '=') {
                                len--;
                                n--;
                        }
                        dec[n > 0 ? n : 0] = '\0';
                        colon              = strchr((char *)dec, ':');
                        if (colon) {
                                *id = sf_xstrndup(
                                    (char *)dec, (size_t)(colon - (char *)dec));
                                if (!*secret)
                                        *secret = sf_xstrdup(colon + 1);
                        }
                }
                free(dec);
        }
}

/* The success answer: no expires_in (sessions end on inactivity). */
static void token_success(sbx_t *sbx, struct sf_org *org, struct sbx_resp *resp,
                          const char *refresh, const char *scope)
{
        const char *tok = sf_token_issue(sbx, org);
        char issued[32], inst[256], id[384], data[448];
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int maclen = 0;
        cJSON *o            = cJSON_CreateObject();
        char *sig;

        /* issued_at is the sandbox clock in ms, as a string like Salesforce's
         */
        snprintf(issued, sizeof(issued), "%lld", (long long)sbx_now_ms(sbx));
        snprintf(inst, sizeof(inst), "%s/sf/%s", sbx_base_url(sbx),
                 org->tenant);
        /* the identity URL names org and user; the sandbox does not serve it */
        snprintf(id, sizeof(id), "%s/id/%s/%s", inst, org->org_id,
                 org->user_id);
        /* signature = base64(HMAC-SHA256(client_secret, id + issued_at)) */
        snprintf(data, sizeof(data), "%s%s", id, issued);
        HMAC(EVP_sha256(), org->client_secret, (int)strlen(org->client_secret),
             (const unsigned char *)data, strlen(data), mac, &maclen);
        sig = b64_std(mac, maclen);
        cJSON_AddStringToObject(o, "access_token", tok);
        if (refresh)
                cJSON_AddStringToObject(o, "refresh_token", refresh);
        cJSON_AddStringToObject(o, "signature", sig);
        cJSON_AddStringToObject(o, "scope", scope);
        cJSON_AddStringToObject(o, "instance_url", inst);
        cJSON_AddStringToObject(o, "id", id);
        cJSON_AddStringToObject(o, "token_type", "Bearer");
        cJSON_AddStringToObject(o, "issued_at", issued);
        free(sig);
        sbx_resp_json(resp, 200, o);
}

/* urn:ietf:params:oauth:grant-type:jwt-bearer: verify the assertion;
 * no refresh token is issued for this flow. */
static void grant_jwt(sbx_t *sbx, struct sf_org *org, const struct sbx_req *req,
                      struct sbx_resp *resp)
{
        char *assertion = sf_form_get(req->body, req->body_len, "assertion");
        const char *aud[8 + 16];
        char inst[256];
        size_t n = 0;
        struct sf_jwt_expect e;
        enum sf_jwt_result r;
        const char *error, *desc;

        snprintf(inst, sizeof(inst), "%s/sf/%s", sbx_base_url(sbx),
                 org->tenant);
        /* Accepted audiences: both login hosts, this org's instance URL
         * (clients whose login URL is the sandbox) and the server itself. */
        aud[n++] = "https://login.salesforce.com";
        aud[n++] = "https://test.salesforce.com";
        aud[n++] = inst;
        aud[n++] = sbx_base_url(sbx);
        for (size_t i = 0; i < org->jwt_aud_cnt && n < 24; i++)
                aud[n++] = org->jwt_aud[i];
        memset(&e, 0, sizeof(e));
        e.iss         = org->client_id;
        e.sub         = org->jwt_username ? org->jwt_username : org->username;
        e.aud         = aud;
        e.aud_cnt     = n;
        e.now_s       = (int64_t)time(NULL); /* the client's clock is real */
        e.max_ahead_s = SF_JWT_MAX_AHEAD_S;
        r = org->jwt_key ? sf_jwt_verify(assertion, org->jwt_key, &e)
                         : SF_JWT_BAD_SIGNATURE;
        free(assertion);
        if (r != SF_JWT_OK) {
                sf_jwt_oauth_error(r, &error, &desc);
                oauth_error(resp, error, desc);
                return;
        }
        token_success(sbx, org, resp, NULL, "api");
}

/* grant_type=refresh_token: client_id must match, the secret is
 * optional but checked when given. */
static void grant_refresh(sbx_t *sbx, struct sf_org *org,
                          const struct sbx_req *req, struct sbx_resp *resp,
                          const char *id, const char *secret)
{
        char *rt = sf_form_get(req->body, req->body_len, "refresh_token");
        char fresh[64];

        if (!id || strcmp(id, org->client_id)) {
                oauth_error(resp, "invalid_client_id",
                            "client identifier invalid");
        } else if (secret && strcmp(secret, org->client_secret)) {
                oauth_error(resp, "invalid_client",
                            "invalid client credentials");
        } else if (!rt || !sf_map_get(&org->refresh_tokens, rt)) {
                oauth_error(resp, "invalid_grant",
                            "expired access/refresh token");
        } else if (org->rotate_refresh) {
                /* rotation: the old token dies, a new one is returned */
                sf_map_del(&org->refresh_tokens, rt);
                snprintf(fresh, sizeof(fresh), "5Aep861SBrefresh%08x%06llu",
                         (unsigned)(sbx_random(sbx) * 4294967295.0),
                         (unsigned long long)++org->token_seq);
                sf_map_put(&org->refresh_tokens, fresh, (void *)1);
                token_success(sbx, org, resp, fresh, "api refresh_token");
        } else {
                token_success(sbx, org, resp, NULL, "api refresh_token");
        }
        free(rt);
}

/* POST /services/oauth2/token (form-encoded). Not an API call: it
 * neither counts nor carries Sforce-Limit-Info. */
static void handle_token(sbx_t *sbx, const struct sbx_req *req,
                         struct sbx_resp *resp)
{
        struct sf_org *org;
        char *grant = NULL, *id = NULL, *secret = NULL;

        if (sbx_fault_apply(sbx, "sf.token", req, resp))
                return;
        if (strcmp(req->method, "POST")) {
                oauth_error(resp, "invalid_request", "must use HTTP POST");
                return;
        }
        sbx_lock(sbx);
        org = sf_org_get(sbx, req->tenant);
        if (!org) {
                oauth_error(resp, "invalid_client_id",
                            "client identifier invalid");
                goto out;
        }
        /* The body is application/x-www-form-urlencoded, as Salesforce
         * requires; parameters in the query string are not read. */
        grant = sf_form_get(req->body, req->body_len, "grant_type");
        client_creds(req, &id, &secret);
        if (!grant) {
                oauth_error(resp, "unsupported_grant_type",
                            "grant type not supported");
        } else if (!strcmp(grant, "client_credentials")) {
                if (!id || strcmp(id, org->client_id))
                        oauth_error(resp, "invalid_client_id",
                                    "client identifier invalid");
                else if (!secret || strcmp(secret, org->client_secret))
                        oauth_error(resp, "invalid_client",
                                    "invalid client credentials");
                else
                        token_success(sbx, org, resp, NULL, "api");
        } else if (!strcmp(grant, "refresh_token")) {
                grant_refresh(sbx, org, req, resp, id, secret);
        } else if (!strcmp(grant,
                           "urn:ietf:params:oauth:grant-type:jwt-bearer")) {
                grant_jwt(sbx, org, req, resp);
        } else {
                oauth_error(resp, "unsupported_grant_type",
                            "grant type not supported");
        }
out:
        sbx_unlock(sbx);
        free(grant);
        free(id);
        free(secret);
}

/* ---- sObject rows -------------------------------------------------------- */

/* @p seg: the path segment after /sobjects/<Type>/ (an id). */
static struct sf_record *find_record(struct rest_ctx *c, enum sf_entity e,
                                     const char *seg)
{
        char id[SF_ID_LEN + 1];
        struct sf_record *r;

        if (sf_id_normalize(seg, id)) {
                /* not an id: Salesforce reads it as an external id */
                rest_err(c, 404, "NOT_FOUND", NULL,
                         "Provided external ID field does not exist or is "
                         "not accessible: %s",
                         seg);
                return NULL;
        }
        /* a Contact URL with a Lead id is simply not found */
        r = sf_map_get(&c->org->by_id, id);
        if (!r || r->entity != e) {
                rest_err(c, 404, "NOT_FOUND", NULL, "%s", NOT_FOUND_MSG);
                return NULL;
        }
        return r;
}

/* ?fields=A,B: @returns 0 and the list (caller frees), or -1 (answered). */
static int parse_fields_param(struct rest_ctx *c, enum sf_entity e,
                              const char *list, int **fields, size_t *cnt)
{
        const char *p = list;

        *fields = sf_xcalloc(SF_F_CNT + strlen(list), sizeof(int));
        *cnt    = 0;
        while (*p) {
                size_t len;
                int f;

                while (*p == ' ' || *p == ',')
                        p++;
                len = strcspn(p, ",");
                while (len && p[len - 1] == ' ')
                        len--;
                if (!len)
                        break;
                f = sf_field_lookup(e, p, len);
                if (f < 0) {
                        rest_err(c, 400, "INVALID_FIELD", NULL,
                                 "No such column '%.*s' on entity '%s'. If "
                                 "you are attempting to use a custom field, "
                                 "be sure to append the '__c' after the "
                                 "custom field name. Please reference your "
                                 "WSDL or the describe call for the "
                                 "appropriate names.",
                                 (int)len, p, sf_entity_name(e));
                        free(*fields);
                        *fields = NULL;
                        return -1;
                }
                (*fields)[(*cnt)++] = f;
                p += len;
                while (*p && *p != ',')
                        p++;
        }
        return 0;
}

/* GET a row; deleted rows are ENTITY_IS_DELETED like Salesforce. */
static void sobject_get(struct rest_ctx *c, struct sf_record *r)
{
        const char *list = sbx_req_query(c->req, "fields");
        int *fields      = NULL;
        size_t cnt       = 0;

        if (r->is_deleted) {
                rest_err(c, 404, "ENTITY_IS_DELETED", NULL,
                         "entity is deleted");
                return;
        }
        if (list && parse_fields_param(c, r->entity, list, &fields, &cnt))
                return;
        if (fields) {
                /* Id and attributes always come back */
                int *all = sf_xcalloc(cnt + 1, sizeof(int));

                all[0] = SF_F_ID;
                for (size_t i = 0; i < cnt; i++)
                        all[i + 1] = fields[i];
                sbx_resp_json(c->resp, 200,
                              sf_record_json(r, c->ver, all, cnt + 1));
                free(all);
                free(fields);
                return;
        }
        sbx_resp_json(c->resp, 200, sf_record_json(r, c->ver, NULL, 0));
}

/* PATCH a row: parse, check, write, publish the UPDATE, 204. */
static void sobject_patch(struct rest_ctx *c, struct sf_record *r)
{
        cJSON *body = parse_body(c);
        struct sf_change ch;
        struct sf_err err;
        struct sf_delta d;
        const char *id = r->id;

        if (!body)
                return;
        /* parse errors (unknown or read-only field, JSON types) come first */
        if (sf_change_parse(r->entity, body, 0, &ch, &err)) {
                cJSON_Delete(body);
                sf_resp_err(c->resp, &err);
                return;
        }
        cJSON_Delete(body);
        /* then the row: deleted, locked (control), converted, bad email */
        if (sf_change_check(c->org, r, &ch, 1, &err)) {
                sf_change_free(&ch);
                sf_resp_err(c->resp, &err);
                return;
        }
        sf_change_apply(c->sbx, c->org, r, &ch, &d);
        sf_change_free(&ch);
        /* one UPDATE event, origin from Sforce-Call-Options */
        sf_delta_publish(c->sbx, c->org, r->entity, &id, 1, &d, c->origin);
        resp_no_content(c->resp);
}

/* DELETE marks the row deleted (queries skip it) and emits DELETE. */
static void sobject_delete(struct rest_ctx *c, struct sf_record *r)
{
        struct sf_err err;
        const char *id = r->id;
        int64_t now    = sbx_now_ms(c->sbx);

        /* deleting a converted lead is allowed; a locked row is not */
        if (sf_change_check(c->org, r, NULL, 1, &err) &&
            strcmp(err.code, "CANNOT_UPDATE_CONVERTED_LEAD")) {
                sf_resp_err(c->resp, &err);
                return;
        }
        r->is_deleted         = 1;
        r->system_modstamp_ms = now - now % 1000;
        sf_cdc_set_user(c->sbx, c->org->user_id);
        sbx_cdc_publish(c->sbx, c->org->tenant, sf_entity_name(r->entity),
                        "DELETE", &id, 1, NULL, cJSON_CreateObject(),
                        c->origin);
        resp_no_content(c->resp);
}

/* POST /sobjects/<Type>: the required fields of the real objects
 * (LastName; Company for leads) are enforced. */
static void sobject_create(struct rest_ctx *c, enum sf_entity e)
{
        cJSON *body = parse_body(c);
        struct sf_change ch;
        struct sf_err err;
        struct sf_record probe, *r;
        cJSON *o;

        if (!body)
                return;
        if (sf_change_parse(e, body, 0, &ch, &err)) {
                cJSON_Delete(body);
                sf_resp_err(c->resp, &err);
                return;
        }
        cJSON_Delete(body);
        if (!ch.set[SF_F_LASTNAME] || !ch.str[SF_F_LASTNAME] ||
            (e == SF_LEAD &&
             (!ch.set[SF_F_COMPANY] || !ch.str[SF_F_COMPANY]))) {
                const char *missing =
                    !ch.str[SF_F_LASTNAME] ? "LastName" : "Company";

                sf_change_free(&ch);
                rest_err(c, 400, "REQUIRED_FIELD_MISSING", missing,
                         "Required fields are missing: [%s]", missing);
                return;
        }
        /* an empty row of the type, to run the per-row value checks */
        memset(&probe, 0, sizeof(probe));
        probe.entity = e;
        if (sf_change_check(c->org, &probe, &ch, 0, &err)) {
                sf_change_free(&ch);
                sf_resp_err(c->resp, &err);
                return;
        }
        r = sf_record_create(c->sbx, c->org, e, &ch, c->origin);
        sf_change_free(&ch);
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", r->id);
        cJSON_AddBoolToObject(o, "success", 1);
        cJSON_AddItemToObject(o, "errors", cJSON_CreateArray());
        sbx_resp_json(c->resp, 201, o);
}

/* A minimal describeGlobal: enough for a health check. */
static void describe_global(struct rest_ctx *c)
{
        cJSON *o = cJSON_CreateObject(), *arr;

        cJSON_AddStringToObject(o, "encoding", "UTF-8");
        cJSON_AddNumberToObject(o, "maxBatchSize", SF_MAX_COLLECTION);
        arr = cJSON_AddArrayToObject(o, "sobjects");
        for (int e = 0; e < SF_ENTITY_CNT; e++) {
                cJSON *s = cJSON_CreateObject();

                cJSON_AddStringToObject(s, "name",
                                        sf_entity_name((enum sf_entity)e));
                cJSON_AddStringToObject(s, "keyPrefix",
                                        sf_entity_prefix((enum sf_entity)e));
                cJSON_AddBoolToObject(s, "updateable", 1);
                cJSON_AddBoolToObject(s, "queryable", 1);
                cJSON_AddItemToArray(arr, s);
        }
        sbx_resp_json(c->resp, 200, o);
}

/* /sobjects[/<Type>[/<id>]] */
static void rest_sobjects(struct rest_ctx *c)
{
        const char *p = c->rest + strlen("/sobjects");
        size_t tlen;
        int e;
        char seg[64];
        struct sf_record *r;

        if (!*p || !strcmp(p, "/")) {
                if (strcmp(c->method, "GET"))
                        method_not_allowed(c, "GET,HEAD");
                else
                        describe_global(c);
                return;
        }
        p++;
        tlen = strcspn(p, "/");
        /* object names are case-insensitive in URLs */
        e = sf_entity_lookup(p, tlen);
        if (e < 0) {
                rest_err(c, 404, "NOT_FOUND", NULL, "%s", NOT_FOUND_MSG);
                return;
        }
        p += tlen;
        if (!*p || !strcmp(p, "/")) {
                if (!strcmp(c->method, "POST"))
                        sobject_create(c, (enum sf_entity)e);
                else
                        method_not_allowed(c, "GET,HEAD,POST");
                return;
        }
        p++;
        if (strchr(p, '/') || strlen(p) >= sizeof(seg)) {
                rest_err(c, 404, "NOT_FOUND", NULL, "%s", NOT_FOUND_MSG);
                return;
        }
        snprintf(seg, sizeof(seg), "%s", p);
        if (strcmp(c->method, "GET") && strcmp(c->method, "PATCH") &&
            strcmp(c->method, "DELETE")) {
                method_not_allowed(c, "HEAD,GET,PATCH,DELETE");
                return;
        }
        r = find_record(c, (enum sf_entity)e, seg);
        if (!r)
                return;
        if (!strcmp(c->method, "GET"))
                sobject_get(c, r);
        else if (!strcmp(c->method, "PATCH"))
                sobject_patch(c, r);
        else
                sobject_delete(c, r);
}

/* ---- query --------------------------------------------------------------- */

/* qsort has no context argument in C11; the lock serialises queries, the
 * thread-local keeps this correct even without it. */
static _Thread_local const struct sf_soql *sort_q;

/* ORDER BY, then creation order: a total order, so qsort's lack of
 * stability cannot show. */
static int row_cmp(const void *a, const void *b)
{
        const struct sf_record *ra = *(struct sf_record *const *)a;
        const struct sf_record *rb = *(struct sf_record *const *)b;
        int c                      = sort_q ? sf_soql_cmp(sort_q, ra, rb) : 0;

        if (c)
                return c;
        return ra->seq < rb->seq ? -1 : ra->seq > rb->seq;
}

/* Append to the result list. */
static void rows_add(struct sf_reclist *rows, struct sf_record *r)
{
        if (rows->n == rows->cap) {
                rows->cap = rows->cap ? rows->cap * 2 : 64;
                rows->v   = sf_xrealloc(rows->v, rows->cap * sizeof(*rows->v));
        }
        rows->v[rows->n++] = r;
}

/* Matching rows in result order, LIMIT applied. Equality on Id or Email
 * uses the indexes instead of a scan. */
static void collect_rows(struct sf_org *org, const struct sf_soql *q,
                         struct sf_reclist *rows)
{
        const struct sf_value *vals = NULL;
        size_t cnt = 0, keep = 0;
        int hint = sf_soql_hint(q, &vals, &cnt);

        memset(rows, 0, sizeof(*rows));
        /* Candidates: from the id map, the email index, or every row of
         * the object; the WHERE clause then decides for each. */
        if (hint == SF_F_ID) {
                for (size_t i = 0; i < cnt; i++) {
                        struct sf_record *r =
                            vals[i].is_null
                                ? NULL
                                : sf_map_get(&org->by_id, vals[i].s);

                        if (r && r->entity == q->entity)
                                rows_add(rows, r);
                }
        } else if (hint == SF_F_EMAIL) {
                for (size_t i = 0; i < cnt; i++) {
                        struct sf_reclist *l;
                        char *key;

                        if (vals[i].is_null)
                                continue;
                        key = sf_lower(vals[i].s);
                        l   = sf_map_get(&org->by_email, key);
                        free(key);
                        for (size_t k = 0; l && k < l->n; k++)
                                if (l->v[k]->entity == q->entity)
                                        rows_add(rows, l->v[k]);
                }
        } else {
                for (size_t i = 0; i < org->all[q->entity].n; i++)
                        rows_add(rows, org->all[q->entity].v[i]);
        }
        for (size_t i = 0; i < rows->n; i++)
                if (!rows->v[i]->is_deleted && sf_soql_match(q, rows->v[i]))
                        rows->v[keep++] = rows->v[i];
        rows->n = keep;
        if (hint >= 0 && rows->n > 1) {
                /* an IN list may name a row twice */
                sort_q = NULL;
                qsort(rows->v, rows->n, sizeof(*rows->v), row_cmp);
                keep = 1;
                for (size_t i = 1; i < rows->n; i++)
                        if (rows->v[i] != rows->v[keep - 1])
                                rows->v[keep++] = rows->v[i];
                rows->n = keep;
        }
        if (q->order_cnt && rows->n > 1) {
                sort_q = q;
                qsort(rows->v, rows->n, sizeof(*rows->v), row_cmp);
                sort_q = NULL;
        }
        /* LIMIT applies after ordering, as in SQL */
        if (q->limit >= 0 && rows->n > (size_t)q->limit)
                rows->n = (size_t)q->limit;
}

/* Sforce-Query-Options: batchSize=N is a hint in [200, 2000]; the
 * org's configured size caps it. */
static size_t batch_size(struct rest_ctx *c)
{
        const char *h = sbx_req_header(c->req, "Sforce-Query-Options");
        long b        = SF_BATCH_MAX;
        const char *p = h ? strstr(h, "batchSize=") : NULL;

        if (p) {
                char *end;
                long v;

                errno = 0;
                v     = strtol(p + 10, &end, 10);
                if (!errno && end != p + 10)
                        b = v < SF_BATCH_MIN   ? SF_BATCH_MIN
                            : v > SF_BATCH_MAX ? SF_BATCH_MAX
                                               : v;
        }
        /* the org's configured size caps it: tests page with tiny ones */
        if (c->org->query_batch_size < b)
                b = c->org->query_batch_size;
        return b < 1 ? 1 : (size_t)b;
}

static cJSON *query_page(size_t total, int done, const char *next,
                         cJSON *records)
{
        cJSON *o = cJSON_CreateObject();

        cJSON_AddNumberToObject(o, "totalSize", (double)total);
        cJSON_AddBoolToObject(o, "done", done);
        if (next)
                cJSON_AddStringToObject(o, "nextRecordsUrl", next);
        cJSON_AddItemToObject(o, "records", records);
        return o;
}

/* Cursors are bounded per org: drop the oldest when full. */
static void cursor_evict_oldest(struct sf_org *org)
{
        struct sf_map_iter it = {0};
        const char *key, *oldest = NULL;
        void *val;
        int64_t t = INT64_MAX;

        while (sf_map_next(&org->cursors, &it, &key, &val)) {
                struct sf_cursor *cur = val;

                if (cur->created_ms < t) {
                        t      = cur->created_ms;
                        oldest = key;
                }
        }
        if (oldest) {
                struct sf_cursor *cur = sf_map_del(&org->cursors, oldest);

                free(cur->fields);
                free(cur->ids);
                free(cur);
        }
}

/* Close one cursor. */
static void cursor_drop(struct sf_org *org, const char *locator)
{
        struct sf_cursor *cur = sf_map_del(&org->cursors, locator);

        if (cur) {
                free(cur->fields);
                free(cur->ids);
                free(cur);
        }
}

/* GET /query?q=: parse, collect, answer the first page and keep a
 * cursor when more pages follow. */
static void query_first(struct rest_ctx *c)
{
        const char *q = sbx_req_query(c->req, "q");
        struct sf_soql_error err;
        struct sf_soql *s;
        struct sf_reclist rows;
        size_t batch, first;
        cJSON *records;
        char next[128];

        if (!q || !*q) {
                rest_err(c, 400, "MALFORMED_QUERY", NULL,
                         "A query string has to be specified");
                return;
        }
        /* the parser answers Salesforce's code and caret message */
        s = sf_soql_parse(q, &err);
        if (!s) {
                rest_err(c, 400, err.code, NULL, "%s", err.message);
                return;
        }
        collect_rows(c->org, s, &rows);
        /* the first page goes out now; the rest waits in a cursor */
        batch   = batch_size(c);
        first   = rows.n < batch ? rows.n : batch;
        records = cJSON_CreateArray();
        for (size_t i = 0; i < first; i++)
                cJSON_AddItemToArray(
                    records,
                    sf_record_json(rows.v[i], c->ver, s->fields, s->field_cnt));
        if (first == rows.n) {
                sbx_resp_json(c->resp, 200,
                              query_page(rows.n, 1, NULL, records));
        } else {
                /* a cursor remembers the matching ids; later pages show
                 * the rows as they are when fetched */
                struct sf_cursor *cur = sf_xcalloc(1, sizeof(*cur));

                /* bounded memory: the oldest cursor makes room */
                if (c->org->cursors.cnt >= SF_MAX_CURSORS)
                        cursor_evict_oldest(c->org);
                sf_id_make("01g", ++c->org->cursor_seq, cur->locator);
                snprintf(cur->ver, sizeof(cur->ver), "%s", c->ver);
                cur->entity    = s->entity;
                cur->field_cnt = s->field_cnt;
                cur->fields    = sf_xcalloc(s->field_cnt, sizeof(int));
                memcpy(cur->fields, s->fields, s->field_cnt * sizeof(int));
                cur->n   = rows.n;
                cur->ids = sf_xcalloc(rows.n, sizeof(*cur->ids));
                for (size_t i = 0; i < rows.n; i++)
                        memcpy(cur->ids[i], rows.v[i]->id, SF_ID_LEN + 1);
                cur->batch      = batch;
                cur->created_ms = sbx_now_ms(c->sbx);
                sf_map_put(&c->org->cursors, cur->locator, cur);
                /* nextRecordsUrl: locator and the offset of the next row */
                snprintf(next, sizeof(next), "/services/data/v%s/query/%s-%zu",
                         c->ver, cur->locator, first);
                sbx_resp_json(c->resp, 200,
                              query_page(rows.n, 0, next, records));
        }
        free(rows.v);
        sf_soql_free(s);
}

/* /query/<locator>-<offset> */
static void query_more(struct rest_ctx *c, const char *loc)
{
        /* <locator>-<offset>: the offset is after the last dash */
        const char *dash = strrchr(loc, '-');
        char locator[SF_ID_LEN + 8], next[128];
        struct sf_cursor *cur = NULL;
        long off              = -1;
        int64_t ttl =
            sf_opt_int(c->sbx, "sf.query_cursor_ttl_ms", SF_CURSOR_TTL_MS);
        cJSON *records;
        size_t end;

        if (dash && (size_t)(dash - loc) < sizeof(locator)) {
                char *e;

                snprintf(locator, sizeof(locator), "%.*s", (int)(dash - loc),
                         loc);
                errno = 0;
                off   = strtol(dash + 1, &e, 10);
                if (errno || *e || e == dash + 1)
                        off = -1;
                cur = sf_map_get(&c->org->cursors, locator);
        }
        /* cursors expire by the sandbox clock (2 days by default) */
        if (cur && sbx_now_ms(c->sbx) - cur->created_ms > ttl) {
                cursor_drop(c->org, locator);
                cur = NULL;
        }
        /* any offset inside the result is served, like re-reading a page */
        if (!cur || off <= 0 || (size_t)off >= cur->n) {
                rest_err(c, 400, "INVALID_QUERY_LOCATOR", NULL,
                         "invalid query locator");
                return;
        }
        end     = (size_t)off + cur->batch < cur->n ? (size_t)off + cur->batch
                                                    : cur->n;
        records = cJSON_CreateArray();
        for (size_t i = (size_t)off; i < end; i++) {
                /* rows are never freed before a reset, so every id resolves */
                struct sf_record *r = sf_map_get(&c->org->by_id, cur->ids[i]);

                if (r)
                        cJSON_AddItemToArray(
                            records, sf_record_json(r, cur->ver, cur->fields,
                                                    cur->field_cnt));
        }
        if (end == cur->n) {
                size_t total = cur->n;

                cursor_drop(c->org, locator); /* the last page closes it */
                sbx_resp_json(c->resp, 200,
                              query_page(total, 1, NULL, records));
                return;
        }
        snprintf(next, sizeof(next), "/services/data/v%s/query/%s-%zu",
                 cur->ver, cur->locator, end);
        sbx_resp_json(c->resp, 200, query_page(cur->n, 0, next, records));
}

/* /query and /query/<locator>-<offset> (GET only). */
static void rest_query(struct rest_ctx *c)
{
        const char *p = c->rest + strlen("/query");

        if (strcmp(c->method, "GET")) {
                method_not_allowed(c, "GET,HEAD");
                return;
        }
        if (!*p || !strcmp(p, "/"))
                query_first(c);
        else
                query_more(c, p + 1);
}

/* ---- sObject Collections update ------------------------------------------ */

struct coll_item {
        struct sf_record *r;
        struct sf_change ch;
        int parsed;
        int failed;
        struct sf_err err;
};

/* One CDC event per set of identical changes (same entity, fields and
 * values) in the call: Salesforce merges them, listing every recordId. */
struct coll_group {
        char *key;
        enum sf_entity e;
        const char **ids;
        size_t n;
        struct sf_delta d;
};

/* Resolve attributes.type of every record and count chunks (runs of
 * one type): both are whole-call errors. */
static int coll_types(struct rest_ctx *c, const cJSON *records,
                      enum sf_entity *ents)
{
        int prev = -1, chunks = 0;
        size_t i = 0;
        const cJSON *rec;

        cJSON_ArrayForEach(rec, records)
        {
                const cJSON *type = cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(rec, "attributes"),
                    "type");
                int e;

                if (!cJSON_IsString(type)) {
                        rest_err(c, 400, "INVALID_TYPE", NULL,
                                 "Must send a concrete entity type.");
                        return -1;
                }
                e = sf_entity_lookup(type->valuestring,
                                     strlen(type->valuestring));
                if (e < 0) {
                        rest_err(c, 400, "INVALID_TYPE", NULL,
                                 "sObject type '%s' is not supported.",
                                 type->valuestring);
                        return -1;
                }
                if (e != prev)
                        chunks++;
                prev      = e;
                ents[i++] = (enum sf_entity)e;
        }
        if (chunks > SF_MAX_CHUNKS) {
                rest_err(c, 400, "INVALID_BATCH_REQUEST", NULL,
                         "Cannot have more than %d chunks in a single "
                         "operation. Please rearrange the data to reduce "
                         "chunking.",
                         SF_MAX_CHUNKS);
                return -1;
        }
        return 0;
}

/* Resolve and check the target record of one collection item. */
static void coll_target(struct rest_ctx *c, const cJSON *rec, enum sf_entity e,
                        struct coll_item *it)
{
        const cJSON *jid = cJSON_GetObjectItemCaseSensitive(rec, "id");
        char id[SF_ID_LEN + 1];

        /* collections use "id"; "Id" is accepted too */
        if (!jid)
                jid = cJSON_GetObjectItemCaseSensitive(rec, "Id");
        if (!cJSON_IsString(jid)) {
                sf_err_set(&it->err, 400, "MISSING_ARGUMENT", NULL,
                           "Id not specified in an update call");
                goto failed;
        }
        if (sf_id_normalize(jid->valuestring, id)) {
                sf_err_set(&it->err, 400, "MALFORMED_ID", NULL,
                           "malformed id %s", jid->valuestring);
                goto failed;
        }
        /* the id's key prefix must match attributes.type */
        if (strncmp(id, sf_entity_prefix(e), 3)) {
                sf_err_set(&it->err, 400, "MALFORMED_ID", "Id",
                           "%s ID: id value of incorrect type: %s",
                           sf_entity_name(e), jid->valuestring);
                goto failed;
        }
        it->r = sf_map_get(&c->org->by_id, id);
        if (!it->r) {
                sf_err_set(&it->err, 400, "INVALID_CROSS_REFERENCE_KEY", NULL,
                           "invalid cross reference id");
                goto failed;
        }
        /* per-row checks; an injected lock is consumed here */
        if (sf_change_check(c->org, it->r, &it->ch, 1, &it->err))
                goto failed;
        return;
failed:
        it->failed = 1;
}

static cJSON *save_result(const char *id, int success, const struct sf_err *e)
{
        cJSON *o = cJSON_CreateObject(), *errs;

        /* failed items carry no id (Salesforce's own examples): clients
         * must match results by position */
        if (id)
                cJSON_AddStringToObject(o, "id", id);
        cJSON_AddBoolToObject(o, "success", success);
        errs = cJSON_AddArrayToObject(o, "errors");
        if (e)
                cJSON_AddItemToArray(errs, sf_err_json(e, "statusCode"));
        return o;
}

/* Write the records that passed, in order, grouping identical changes
 * into one event per group; all in one CDC transaction. */
static void coll_apply(struct rest_ctx *c, struct coll_item *items, size_t n,
                       cJSON *results)
{
        struct coll_group *g = sf_xcalloc(n ? n : 1, sizeof(*g));
        size_t ng            = 0;

        /* one transactionKey for every event of the call */
        sf_cdc_txn_begin(c->sbx);
        for (size_t i = 0; i < n; i++) {
                struct sf_delta d;
                char *changed, *body, *key;
                size_t k, klen;

                if (items[i].failed) {
                        cJSON_AddItemToArray(
                            results, save_result(NULL, 0, &items[i].err));
                        continue;
                }
                sf_change_apply(c->sbx, c->org, items[i].r, &items[i].ch, &d);
                cJSON_AddItemToArray(results,
                                     save_result(items[i].r->id, 1, NULL));
                /* the group key: entity, changed fields and their new values */
                changed = cJSON_PrintUnformatted(d.changed);
                body    = cJSON_PrintUnformatted(d.body);
                klen    = strlen(changed) + strlen(body) + 16;
                key     = sf_xcalloc(1, klen);
                snprintf(key, klen, "%d|%s|%s", (int)items[i].r->entity,
                         changed, body);
                free(changed);
                free(body);
                for (k = 0; k < ng && strcmp(g[k].key, key); k++)
                        ;
                if (k == ng) {
                        g[ng].key = key;
                        g[ng].e   = items[i].r->entity;
                        g[ng].ids = sf_xcalloc(n, sizeof(char *));
                        g[ng].d   = d;
                        ng++;
                } else {
                        free(key);
                        cJSON_Delete(d.changed);
                        cJSON_Delete(d.body);
                }
                g[k].ids[g[k].n++] = items[i].r->id;
        }
        /* events go out after every write of the call, group by group */
        for (size_t k = 0; k < ng; k++) {
                sf_delta_publish(c->sbx, c->org, g[k].e, g[k].ids, g[k].n,
                                 &g[k].d, c->origin);
                free(g[k].key);
                free(g[k].ids);
        }
        sf_cdc_txn_end(c->sbx);
        free(g);
}

/* PATCH /composite/sobjects: validate the call, check each record,
 * then all-or-none or partial success. */
static void rest_collections(struct rest_ctx *c)
{
        cJSON *body, *results;
        const cJSON *records, *rec;
        enum sf_entity *ents    = NULL;
        struct coll_item *items = NULL;
        size_t n, i                 = 0;
        int all_or_none, any_failed = 0;

        if (strcmp(c->method, "PATCH")) {
                method_not_allowed(c, "PATCH");
                return;
        }
        body = parse_body(c);
        if (!body)
                return;
        records = cJSON_GetObjectItemCaseSensitive(body, "records");
        all_or_none =
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "allOrNone"));
        if (!cJSON_IsArray(records)) {
                rest_err(c, 400, "JSON_PARSER_ERROR", NULL,
                         "Cannot deserialize the request: \"records\" must be "
                         "an array");
                goto out;
        }
        n = (size_t)cJSON_GetArraySize(records);
        if (n > SF_MAX_COLLECTION) {
                rest_err(c, 400, "EXCEEDED_ID_LIMIT", NULL,
                         "record limit reached. cannot submit more than %d "
                         "records into this call",
                         SF_MAX_COLLECTION);
                goto out;
        }
        ents  = sf_xcalloc(n ? n : 1, sizeof(*ents));
        items = sf_xcalloc(n ? n : 1, sizeof(*items));
        if (coll_types(c, records, ents))
                goto out;
        /* Deserialisation errors (unknown field, wrong JSON type) fail the
         * whole call; field-level refusals fail one record. */
        cJSON_ArrayForEach(rec, records)
        {
                struct sf_err err;

                if (sf_change_parse(ents[i], rec, 0, &items[i].ch, &err)) {
                        if (strcmp(err.code,
                                   "INVALID_FIELD_FOR_INSERT_UPDATE")) {
                                sf_resp_err(c->resp, &err);
                                goto out;
                        }
                        items[i].err    = err;
                        items[i].failed = 1;
                } else {
                        items[i].parsed = 1;
                }
                i++;
        }
        /* Second pass: resolve and check every target row before writing
         * anything, so allOrNone can refuse the whole call. */
        i = 0;
        cJSON_ArrayForEach(rec, records)
        {
                if (!items[i].failed)
                        coll_target(c, rec, ents[i], &items[i]);
                any_failed |= items[i].failed;
                i++;
        }
        results = cJSON_CreateArray();
        /* all or none: failures keep their error, the others roll back */
        if (all_or_none && any_failed) {
                struct sf_err rb;

                sf_err_set(&rb, 400, "ALL_OR_NONE_OPERATION_ROLLED_BACK", NULL,
                           "Record rolled back because not all records were "
                           "valid and the request was using AllOrNone "
                           "header");
                for (i = 0; i < n; i++)
                        cJSON_AddItemToArray(
                            results, items[i].failed
                                         ? save_result(NULL, 0, &items[i].err)
                                         : save_result(items[i].r->id, 0, &rb));
        } else {
                coll_apply(c, items, n, results);
        }
        sbx_resp_json(c->resp, 200, results);
out:
        for (i = 0; items && i < n; i++)
                if (items[i].parsed)
                        sf_change_free(&items[i].ch);
        free(items);
        free(ents);
        cJSON_Delete(body);
}

/* ---- limits and versions ------------------------------------------------- */

static void add_limit(cJSON *o, const char *name, int64_t max, int64_t rem)
{
        cJSON *l = cJSON_AddObjectToObject(o, name);

        cJSON_AddNumberToObject(l, "Max", (double)max);
        cJSON_AddNumberToObject(l, "Remaining", (double)(rem < 0 ? 0 : rem));
}

/* GET /limits: the API allowance is live, most others are constants. */
static void rest_limits(struct rest_ctx *c)
{
        cJSON *o;
        int clients;

        if (strcmp(c->method, "GET")) {
                method_not_allowed(c, "GET,HEAD");
                return;
        }
        /* Remaining values are after counting this call, like Salesforce */
        clients = sf_cdc_client_count(c->sbx, c->org->tenant);
        o       = cJSON_CreateObject();
        add_limit(o, "DailyApiRequests", c->org->api_max,
                  c->org->api_max - c->org->api_used);
        add_limit(o, "DailyBulkApiBatches", 15000, 15000);
        add_limit(o, "DailyBulkV2QueryJobs", 10000, 10000);
        add_limit(o, "DailyDeliveredPlatformEvents", 50000, 50000);
        add_limit(o, "StreamingApiConcurrentClients",
                  c->org->cometd_max_clients,
                  c->org->cometd_max_clients - clients);
        sbx_resp_json(c->resp, 200, o);
}

/* GET /services/data: every version the version gate accepts. */
static void versions_list(struct sbx_resp *resp)
{
        cJSON *arr = cJSON_CreateArray();

        for (int v = 20; v <= 66; v++) {
                cJSON *o = cJSON_CreateObject();
                char buf[64];

                snprintf(buf, sizeof(buf), "Sandbox v%d.0", v);
                cJSON_AddStringToObject(o, "label", buf);
                snprintf(buf, sizeof(buf), "/services/data/v%d.0", v);
                cJSON_AddStringToObject(o, "url", buf);
                snprintf(buf, sizeof(buf), "%d.0", v);
                cJSON_AddStringToObject(o, "version", buf);
                cJSON_AddItemToArray(arr, o);
        }
        sbx_resp_json(resp, 200, arr);
}

/* ---- dispatch ------------------------------------------------------------ */

static int path_is(const char *rest, const char *prefix)
{
        size_t n = strlen(prefix);

        return !strncmp(rest, prefix, n) && (rest[n] == '\0' || rest[n] == '/');
}

/* The fault-rule class of a REST path. */
static const char *endpoint_class(const char *rest)
{
        if (path_is(rest, "/sobjects"))
                return "sf.sobjects";
        if (path_is(rest, "/query"))
                return "sf.query";
        if (path_is(rest, "/composite"))
                return "sf.composite";
        if (path_is(rest, "/limits"))
                return "sf.limits";
        return "sf.rest";
}

/* Every /services/data call: faults, version, session, limits, then
 * the route; Sforce-Limit-Info on the answer. */
static void handle_rest(sbx_t *sbx, const struct sbx_req *req,
                        struct sbx_resp *resp)
{
        struct rest_ctx c;
        const char *p        = req->path + strlen("/services/data");
        const char *override = sbx_req_query(req, "_HttpMethod");
        size_t vlen;
        int ver_ok;
        char limit_info[64];

        /* the version list needs no session and is not counted */
        if (!*p || !strcmp(p, "/")) {
                versions_list(resp);
                return;
        }
        memset(&c, 0, sizeof(c));
        c.sbx    = sbx;
        c.req    = req;
        c.resp   = resp;
        c.method = req->method;
        if (!strcmp(req->method, "POST") && override)
                c.method = override; /* for clients that cannot PATCH */
        p++;
        vlen = strcspn(p, "/");
        ver_ok =
            p[-1] == '/' && !sf_version_parse(p, vlen, c.ver, sizeof(c.ver));
        c.rest = p + vlen;
        /* fault rules first, before the lock (latency faults sleep) */
        if (sbx_fault_apply(sbx, endpoint_class(c.rest), req, resp))
                return;
        sbx_lock(sbx);
        c.org = sf_org_get(sbx, req->tenant);
        if (!c.org) {
                rest_err(&c, 404, "NOT_FOUND", NULL, "%s", NOT_FOUND_MSG);
                sbx_unlock(sbx);
                return;
        }
        /* the changeOrigin every write of this call will carry */
        sf_origin_build(sbx_req_header(req, "Sforce-Call-Options"), c.ver,
                        c.origin, sizeof(c.origin));
        /* Gates in Salesforce's order: version, session, the injected
         * concurrency limit, the daily allowance; only then does it count. */
        if (!ver_ok) {
                rest_err(&c, 404, "NOT_FOUND", NULL, "%s", NOT_FOUND_MSG);
        } else if (!sf_session_check(sbx, req->tenant, req)) {
                rest_err(&c, 401, "INVALID_SESSION_ID", NULL,
                         "Session expired or invalid");
        } else if (c.org->concurrent_fail > 0) {
                c.org->concurrent_fail--;
                rest_err(&c, 403, "REQUEST_LIMIT_EXCEEDED", NULL,
                         "ConcurrentRequests (Concurrent API Requests) Limit "
                         "exceeded.");
        } else if (c.org->api_used >= c.org->api_max) {
                rest_err(&c, 403, "REQUEST_LIMIT_EXCEEDED", NULL,
                         "TotalRequests Limit exceeded.");
        } else {
                c.org->api_used++;
                if (path_is(c.rest, "/sobjects"))
                        rest_sobjects(&c);
                else if (path_is(c.rest, "/query"))
                        rest_query(&c);
                else if (!strcmp(c.rest, "/composite/sobjects") ||
                         !strcmp(c.rest, "/composite/sobjects/"))
                        rest_collections(&c);
                else if (path_is(c.rest, "/limits"))
                        rest_limits(&c);
                else
                        rest_err(&c, 404, "NOT_FOUND", NULL, "%s",
                                 NOT_FOUND_MSG);
        }
        /* on every REST answer, errors included */
        snprintf(limit_info, sizeof(limit_info), "api-usage=%lld/%lld",
                 (long long)c.org->api_used, (long long)c.org->api_max);
        sbx_unlock(sbx);
        sbx_resp_header(resp, "Sforce-Limit-Info", limit_info);
}

/* Entry point for /sf/<tenant>/... (the core routes /cometd here too
 * when asked). */
void sbx_sf_handle(sbx_t *sbx, const struct sbx_req *req, struct sbx_resp *resp)
{
        const char *p = req->path ? req->path : "";

        if (!strcmp(p, "/services/oauth2/token"))
                handle_token(sbx, req, resp);
        else if (path_is(p, "/services/data"))
                handle_rest(sbx, req, resp);
        else if (path_is(p, "/cometd"))
                sbx_cometd_handle(sbx, req, resp);
        else {
                struct sf_err e;

                sf_err_set(&e, 404, "NOT_FOUND", NULL, "%s", NOT_FOUND_MSG);
                sf_resp_err(resp, &e);
        }
}
