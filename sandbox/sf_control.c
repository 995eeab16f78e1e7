/*
 * sf_control.c - scenario controls of the simulated orgs, under
 * /sandbox/sf/<tenant>/...: what a human or Salesforce itself does to the
 * data (UI edits, conversions, automation), and the faults tests need
 * (expired sessions, spent API allowance, row locks, CDC gaps and stalls).
 */
#include "sf_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Control errors use the core's {"error","message"} shape. */
static void ctl_error(struct sbx_resp *resp, int status, const char *code,
                      const char *message)
{
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "error", code);
        cJSON_AddStringToObject(o, "message", message);
        sbx_resp_json(resp, status, o);
}

/* A Salesforce-side refusal as a control error. */
static void ctl_sf_error(struct sbx_resp *resp, const struct sf_err *e)
{
        ctl_error(resp, e->status >= 400 ? e->status : 400, e->code,
                  e->message);
}

/* POST /records {"type":"Contact"|"Lead", <fields>} : a record created in
 * the UI (CDC CREATE with an empty changeOrigin). Read-only fields such as
 * IsConverted or LastModifiedDate may be set, to build scenarios. */
static void ctl_create(sbx_t *sbx, struct sf_org *org, const cJSON *body,
                       struct sbx_resp *resp)
{
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(body, "type");
        cJSON *fields, *o;
        struct sf_change ch;
        struct sf_err err;
        struct sf_record probe, *r;
        int e =
            cJSON_IsString(type)
                ? sf_entity_lookup(type->valuestring, strlen(type->valuestring))
                : -1;

        if (e < 0) {
                ctl_error(resp, 400, "BAD_REQUEST",
                          "\"type\" must be \"Contact\" or \"Lead\"");
                return;
        }
        /* the body minus "type" is the field list */
        fields = cJSON_Duplicate(body, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(fields, "type");
        if (sf_change_parse((enum sf_entity)e, fields, 1, &ch, &err)) {
                cJSON_Delete(fields);
                ctl_sf_error(resp, &err);
                return;
        }
        cJSON_Delete(fields);
        memset(&probe, 0, sizeof(probe));
        probe.entity = (enum sf_entity)e;
        if (sf_change_check(org, &probe, &ch, 0, &err)) {
                sf_change_free(&ch);
                ctl_sf_error(resp, &err);
                return;
        }
        r = sf_record_create(sbx, org, (enum sf_entity)e, &ch, "");
        sf_change_free(&ch);
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", r->id);
        cJSON_AddItemToObject(o, "record", sf_record_json(r, "59.0", NULL, 0));
        sbx_resp_json(resp, 201, o);
}

/* A user saving the record in the UI: timestamps bump, CDC UPDATE with an
 * empty changeOrigin and the human as commitUser. */
static void ctl_edit(sbx_t *sbx, struct sf_org *org, struct sf_record *r,
                     const cJSON *fields, struct sbx_resp *resp)
{
        struct sf_change ch;
        struct sf_err err;
        struct sf_delta d;
        const char *id = r->id;

        /* UI users cannot set read-only fields either */
        if (sf_change_parse(r->entity, fields, 0, &ch, &err)) {
                ctl_sf_error(resp, &err);
                return;
        }
        if (sf_change_check(org, r, &ch, 0, &err)) {
                sf_change_free(&ch);
                ctl_sf_error(resp, &err);
                return;
        }
        sf_change_apply(sbx, org, r, &ch, &d);
        sf_change_free(&ch);
        sf_delta_publish(sbx, org, r->entity, &id, 1, &d, "");
        sbx_resp_json(resp, 200, sf_record_json(r, "59.0", NULL, 0));
}

/* /records/<id>[/edit|/optout|/automation|/delete|/undelete]. */
static void ctl_record(sbx_t *sbx, struct sf_org *org, const char *method,
                       const char *rest, const cJSON *body,
                       struct sbx_resp *resp)
{
        char id[64];
        size_t n           = strcspn(rest, "/");
        const char *action = rest + n;
        struct sf_record *r;
        const char *rid;

        snprintf(id, sizeof(id), "%.*s", (int)(n < 63 ? n : 63), rest);
        r = sf_org_find(org, id);
        if (!r) {
                ctl_error(resp, 404, "NOT_FOUND", "no such record");
                return;
        }
        rid = r->id;
        if (!*action && !strcmp(method, "GET")) {
                sbx_resp_json(resp, 200, sf_record_json(r, "59.0", NULL, 0));
        } else if (!strcmp(action, "/edit") && !strcmp(method, "POST")) {
                ctl_edit(sbx, org, r, body, resp);
        } else if (!strcmp(action, "/optout") && !strcmp(method, "POST")) {
                /* the user ticks (or unticks) Email Opt Out */
                const cJSON *v =
                    cJSON_GetObjectItemCaseSensitive(body, "value");
                cJSON *f = cJSON_CreateObject();

                cJSON_AddBoolToObject(f, "HasOptedOutOfEmail",
                                      v ? cJSON_IsTrue(v) : 1);
                ctl_edit(sbx, org, r, f, resp);
                cJSON_Delete(f);
        } else if (!strcmp(action, "/automation") && !strcmp(method, "POST")) {
                /* a system process touched the row: SystemModstamp only,
                 * no change event (SystemModstamp is never in events) */
                int64_t now = sbx_now_ms(sbx);

                r->system_modstamp_ms = now - now % 1000;
                sbx_resp_json(resp, 200, sf_record_json(r, "59.0", NULL, 0));
        } else if ((!strcmp(action, "/delete") ||
                    !strcmp(action, "/undelete")) &&
                   !strcmp(method, "POST")) {
                int del     = !strcmp(action, "/delete");
                int64_t now = sbx_now_ms(sbx);

                /* deleting twice (or undeleting a live row) is a mistake */
                if (r->is_deleted == del) {
                        ctl_error(resp, 400, "BAD_REQUEST",
                                  del ? "already deleted" : "not deleted");
                        return;
                }
                r->is_deleted         = del;
                r->system_modstamp_ms = now - now % 1000;
                sf_cdc_set_user(sbx, org->ui_user_id);
                sbx_cdc_publish(
                    sbx, org->tenant, sf_entity_name(r->entity),
                    del ? "DELETE" : "UNDELETE", &rid, 1, NULL,
                    del ? cJSON_CreateObject() : sf_record_event_body(r), "");
                sbx_resp_json(resp, 200, sf_record_json(r, "59.0", NULL, 0));
        } else {
                ctl_error(resp, 404, "NOT_FOUND", "unknown record control");
        }
}

/* POST /leads/<id>/convert {"contact_id": "003..."?} */
static void ctl_convert(sbx_t *sbx, struct sf_org *org, const char *rest,
                        const cJSON *body, struct sbx_resp *resp)
{
        char id[64];
        size_t n         = strcspn(rest, "/");
        const cJSON *cid = cJSON_GetObjectItemCaseSensitive(body, "contact_id");
        struct sf_record *lead, *contact = NULL, *res;
        struct sf_err err;
        cJSON *o;

        snprintf(id, sizeof(id), "%.*s", (int)(n < 63 ? n : 63), rest);
        if (strcmp(rest + n, "/convert")) {
                ctl_error(resp, 404, "NOT_FOUND", "unknown lead control");
                return;
        }
        lead = sf_org_find(org, id);
        if (!lead || lead->entity != SF_LEAD) {
                ctl_error(resp, 404, "NOT_FOUND", "no such lead");
                return;
        }
        /* convert into this existing contact */
        if (cJSON_IsString(cid)) {
                contact = sf_org_find(org, cid->valuestring);
                if (!contact) {
                        ctl_error(resp, 404, "NOT_FOUND", "no such contact");
                        return;
                }
        }
        /* one transaction: Contact CREATE (if new) + Lead UPDATE share a
         * transactionKey */
        sf_cdc_txn_begin(sbx);
        res = sf_lead_convert(sbx, org, lead, contact, &err);
        sf_cdc_txn_end(sbx);
        if (!res) {
                ctl_sf_error(resp, &err);
                return;
        }
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "lead_id", lead->id);
        cJSON_AddStringToObject(o, "contact_id", res->id);
        cJSON_AddStringToObject(o, "account_id", lead->conv_account);
        cJSON_AddBoolToObject(o, "new_contact", contact == NULL);
        sbx_resp_json(resp, 200, o);
}

/* An optional integer of a control body. */
static int get_count(const cJSON *body, const char *key, long def)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);

        return cJSON_IsNumber(v) ? (int)v->valuedouble : (int)def;
}

/* POST /lock_rows {"ids":[...],"count":N}: the next N API writes of each
 * id fail with UNABLE_TO_LOCK_ROW (count 0 clears). */
static void ctl_lock_rows(struct sf_org *org, const cJSON *body,
                          struct sbx_resp *resp)
{
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(body, "ids");
        const cJSON *it;
        long count = get_count(body, "count", 1);
        cJSON *o   = cJSON_CreateObject(), *done;

        if (!cJSON_IsArray(ids)) {
                cJSON_Delete(o);
                ctl_error(resp, 400, "BAD_REQUEST", "\"ids\" must be an array");
                return;
        }
        done = cJSON_AddArrayToObject(o, "ids");
        cJSON_ArrayForEach(it, ids)
        {
                char id[SF_ID_LEN + 1];
                long *left;

                if (!cJSON_IsString(it) || sf_id_normalize(it->valuestring, id))
                        continue;
                /* replace any earlier count for this id */
                free(sf_map_del(&org->lockfail, id));
                if (count > 0) {
                        left  = sf_xcalloc(1, sizeof(*left));
                        *left = count;
                        sf_map_put(&org->lockfail, id, left);
                }
                cJSON_AddItemToArray(done, cJSON_CreateString(id));
        }
        cJSON_AddNumberToObject(o, "count", (double)count);
        sbx_resp_json(resp, 200, o);
}

/* POST /cdc/gap {"ids":[...]|"entity":"Contact", "change_type":"GAP_*"} */
static void ctl_gap(sbx_t *sbx, struct sf_org *org, const cJSON *body,
                    struct sbx_resp *resp)
{
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(body, "ids");
        const cJSON *type =
            cJSON_GetObjectItemCaseSensitive(body, "change_type");
        const cJSON *ent = cJSON_GetObjectItemCaseSensitive(body, "entity");
        const char *ct =
            cJSON_IsString(type) ? type->valuestring : "GAP_UPDATE";
        int published = 0;

        if (strncmp(ct, "GAP_", 4)) {
                ctl_error(resp, 400, "BAD_REQUEST",
                          "change_type must be GAP_CREATE, GAP_UPDATE, "
                          "GAP_DELETE, GAP_UNDELETE or GAP_OVERFLOW");
                return;
        }
        sf_cdc_set_user(sbx, org->ui_user_id);
        /* one gap event per object that has ids (or is named by "entity") */
        for (int e = 0; e < SF_ENTITY_CNT; e++) {
                const char **v = NULL;
                size_t n       = 0;
                const cJSON *it;

                cJSON_ArrayForEach(it, ids)
                {
                        struct sf_record *r =
                            cJSON_IsString(it)
                                ? sf_org_find(org, it->valuestring)
                                : NULL;

                        if (r && (int)r->entity == e) {
                                v      = sf_xrealloc(v, (n + 1) * sizeof(*v));
                                v[n++] = r->id;
                        }
                }
                if (n || (cJSON_IsString(ent) &&
                          !strcmp(ent->valuestring,
                                  sf_entity_name((enum sf_entity)e)))) {
                        /* gap events carry a header only, no fields */
                        sbx_cdc_publish(sbx, org->tenant,
                                        sf_entity_name((enum sf_entity)e), ct,
                                        v, n, NULL, cJSON_CreateObject(), "");
                        published++;
                }
                free(v);
        }
        if (!published) {
                ctl_error(resp, 400, "BAD_REQUEST",
                          "no known record in \"ids\" and no \"entity\"");
                return;
        }
        {
                cJSON *o = cJSON_CreateObject();

                cJSON_AddNumberToObject(o, "events", published);
                sbx_resp_json(resp, 200, o);
        }
}

/* POST /settings: change per-org knobs at run time. */
static void ctl_settings(struct sf_org *org, const cJSON *body,
                         struct sbx_resp *resp)
{
        const cJSON *v;
        cJSON *o = cJSON_CreateObject();

        if ((v = cJSON_GetObjectItemCaseSensitive(body, "query_batch_size")) &&
            cJSON_IsNumber(v) && v->valuedouble >= 1)
                org->query_batch_size = (long)v->valuedouble;
        if ((v = cJSON_GetObjectItemCaseSensitive(body,
                                                  "session_timeout_ms")) &&
            cJSON_IsNumber(v) && v->valuedouble >= 0)
                org->session_timeout_ms = (int64_t)v->valuedouble;
        if ((v = cJSON_GetObjectItemCaseSensitive(body,
                                                  "rotate_refresh_token")))
                org->rotate_refresh = cJSON_IsTrue(v);
        if ((v = cJSON_GetObjectItemCaseSensitive(body,
                                                  "cometd_max_clients")) &&
            cJSON_IsNumber(v) && v->valuedouble >= 0)
                org->cometd_max_clients = (int)v->valuedouble;
        cJSON_AddNumberToObject(o, "query_batch_size",
                                (double)org->query_batch_size);
        cJSON_AddNumberToObject(o, "session_timeout_ms",
                                (double)org->session_timeout_ms);
        cJSON_AddBoolToObject(o, "rotate_refresh_token", org->rotate_refresh);
        cJSON_AddNumberToObject(o, "cometd_max_clients",
                                org->cometd_max_clients);
        sbx_resp_json(resp, 200, o);
}

/* Route a control (lock held). */
static void dispatch(sbx_t *sbx, struct sf_org *org, const struct sbx_req *req,
                     const cJSON *body, struct sbx_resp *resp)
{
        const char *p = req->path ? req->path : "";
        const char *m = req->method;
        cJSON *o;

        if (!strcmp(p, "/records") && !strcmp(m, "POST")) {
                ctl_create(sbx, org, body, resp);
        } else if (!strncmp(p, "/records/", 9)) {
                ctl_record(sbx, org, m, p + 9, body, resp);
        } else if (!strncmp(p, "/leads/", 7) && !strcmp(m, "POST")) {
                ctl_convert(sbx, org, p + 7, body, resp);
        } else if (!strcmp(p, "/tokens/expire") && !strcmp(m, "POST")) {
                o = cJSON_CreateObject();
                cJSON_AddNumberToObject(o, "expired", (double)org->tokens.cnt);
                sf_tokens_expire(org);
                if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                        body, "refresh_tokens")))
                        sf_map_clear(&org->refresh_tokens, NULL);
                sbx_resp_json(resp, 200, o);
        } else if (!strcmp(p, "/limits") && !strcmp(m, "POST")) {
                const cJSON *used =
                    cJSON_GetObjectItemCaseSensitive(body, "used");
                const cJSON *max =
                    cJSON_GetObjectItemCaseSensitive(body, "max");

                if (cJSON_IsNumber(used) && used->valuedouble >= 0)
                        org->api_used = (int64_t)used->valuedouble;
                if (cJSON_IsNumber(max) && max->valuedouble >= 0)
                        org->api_max = (int64_t)max->valuedouble;
                o = cJSON_CreateObject();
                cJSON_AddNumberToObject(o, "used", (double)org->api_used);
                cJSON_AddNumberToObject(o, "max", (double)org->api_max);
                sbx_resp_json(resp, 200, o);
        } else if (!strcmp(p, "/lock_rows") && !strcmp(m, "POST")) {
                ctl_lock_rows(org, body, resp);
        } else if (!strcmp(p, "/concurrent_limit") && !strcmp(m, "POST")) {
                org->concurrent_fail = get_count(body, "count", 1);
                o                    = cJSON_CreateObject();
                cJSON_AddNumberToObject(o, "count",
                                        (double)org->concurrent_fail);
                sbx_resp_json(resp, 200, o);
        } else if (!strcmp(p, "/settings") && !strcmp(m, "POST")) {
                ctl_settings(org, body, resp);
        } else if (!strcmp(p, "/cdc/gap") && !strcmp(m, "POST")) {
                ctl_gap(sbx, org, body, resp);
        } else if (!strncmp(p, "/cdc/", 5)) {
                sf_cdc_control(sbx, org->tenant, p + 5, m, body, resp);
        } else {
                ctl_error(resp, 404, "NOT_FOUND", "unknown sf control");
        }
}

/* Entry point for /sandbox/sf/<tenant>/...: parse the body, take the
 * lock, dispatch. */
void sbx_sf_control(sbx_t *sbx, const struct sbx_req *req,
                    struct sbx_resp *resp)
{
        cJSON *body = NULL;
        struct sf_org *org;

        /* controls take JSON bodies (or none) */
        if (req->body_len) {
                body = cJSON_ParseWithLength(req->body, req->body_len);
                if (!body) {
                        ctl_error(resp, 400, "BAD_REQUEST",
                                  "the body is not JSON");
                        return;
                }
        }
        sbx_lock(sbx);
        org = sf_org_get(sbx, req->tenant);
        if (!org)
                ctl_error(resp, 404, "NOT_FOUND", "bad tenant name");
        else
                dispatch(sbx, org, req, body, resp);
        sbx_unlock(sbx);
        cJSON_Delete(body);
}
