/*
 * ac_write.c - ActiveCampaign writes for the ac-writer: list unsubscribes,
 * bulk import of unsubscribes and its status, each call through the shared
 * limiter, each answer classified by osy_err_from_http().
 */
#include "optsync/ac_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "optsync/ac_client.h"
#include "optsync/log.h"

struct osy_ac_write_s {
        char *base; /* ".../api/3" */
        char *auth; /* "Api-Token: ..." (secret) */
        char *tenant;
        osy_rl_t *limiter, *bulk_limiter;
        int64_t max_wait_ms;
        osy_http_client_t *http;
};

/* The base is kept with "/api/3" and the token as a ready header line (a
 * secret, wiped on destroy); the HTTP client keeps its connection open
 * between calls, as AC's rate makes them frequent. */
osy_err_t osy_ac_write_new(osy_ac_write_t **wp,
                           const struct osy_ac_write_opts *opts, char *errstr,
                           size_t errstr_size)
{
        osy_ac_write_t *w;
        size_t len;
        osy_err_t err;

        *wp = NULL;
        if (!opts || !opts->base_url || !*opts->base_url || !opts->api_token ||
            !*opts->api_token || !opts->tenant || !*opts->tenant)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ac write: base_url, api_token and tenant "
                                   "are required");
        if (!(w = calloc(1, sizeof(*w))))
                return OSY_ERR_NOMEM;
        len     = strlen(opts->base_url) + sizeof("/api/3");
        w->base = malloc(len);
        if (w->base) {
                snprintf(w->base, len, "%s/api/3", opts->base_url);
                /* "https://x/" + "/api/3" would give "//api/3". */
                char *dbl = strstr(w->base, "//api/3");
                if (dbl)
                        memmove(dbl, dbl + 1, strlen(dbl + 1) + 1);
        }
        len     = strlen(opts->api_token) + sizeof("Api-Token: ");
        w->auth = malloc(len);
        if (w->auth)
                snprintf(w->auth, len, "Api-Token: %s", opts->api_token);
        w->tenant       = strdup(opts->tenant);
        w->limiter      = opts->limiter;
        w->bulk_limiter = opts->bulk_limiter;
        w->max_wait_ms =
            opts->limiter_max_wait_ms > 0 ? opts->limiter_max_wait_ms : 30000;
        if (!w->base || !w->auth || !w->tenant) {
                osy_ac_write_destroy(w);
                return OSY_ERR_NOMEM;
        }
        osy_log_add_secret(opts->api_token);
        if ((err = osy_http_client_new(&w->http, opts->http, errstr,
                                       errstr_size))) {
                osy_ac_write_destroy(w);
                return err;
        }
        *wp = w;
        return OSY_OK;
}

void osy_ac_write_destroy(osy_ac_write_t *w)
{
        if (!w)
                return;
        osy_http_client_destroy(w->http);
        free(w->base);
        if (w->auth) {
                /* The token is a secret: do not leave it in freed memory. */
                memset(w->auth, 0, strlen(w->auth));
                free(w->auth);
        }
        free(w->tenant);
        free(w);
}

/* One call: limiter token(s), then the request. @p resp is filled when an
 * answer came (caller frees); the answer's class is the return value. */
static osy_err_t call(osy_ac_write_t *w, osy_http_method_t method,
                      const char *path, const char *body, int bulk,
                      struct osy_http_response *resp, struct osy_ac_answer *ans,
                      char *errstr, size_t errstr_size)
{
        const char *headers[]       = {w->auth, "Accept: application/json",
                                 body ? "Content-Type: application/json" : NULL,
                                       NULL};
        struct osy_http_request req = {0};
        char url[2048];
        int64_t waited = 0;
        const char *ra;
        osy_err_t err;
        int n;

        memset(ans, 0, sizeof(*ans));
        memset(resp, 0, sizeof(*resp));
        ans->retry_after_ms = -1;
        n                   = snprintf(url, sizeof(url), "%s%s", w->base, path);
        if (n < 0 || (size_t)n >= sizeof(url))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ac: URL too long");
        /* The import's own per-minute limit first, so a wait there does
         * not hold an AC token unused. */
        if (bulk && w->bulk_limiter) {
                err = osy_rl_wait(w->bulk_limiter, w->tenant,
                                  OSY_AC_BULK_RL_API, 1, w->max_wait_ms, NULL,
                                  &waited, errstr, errstr_size);
                ans->waited_ms += waited;
                if (err) {
                        ans->limited = err == OSY_ERR_THROTTLED;
                        return err;
                }
        }
        /* 5 requests per second per account, shared by every key and
         * every replica (and the rules' look-ups). */
        if (w->limiter) {
                err = osy_rl_wait(w->limiter, w->tenant, OSY_AC_RL_API, 1,
                                  w->max_wait_ms, NULL, &waited, errstr,
                                  errstr_size);
                ans->waited_ms += waited;
                if (err) {
                        ans->limited = err == OSY_ERR_THROTTLED;
                        return err;
                }
        }
        req.method   = method;
        req.url      = url;
        req.headers  = headers;
        req.body     = body;
        req.body_len = body ? strlen(body) : 0;
        if ((err = osy_http_do(w->http, &req, resp, errstr, errstr_size)))
                return err;
        ans->status = resp->status;
        err         = osy_err_from_http(resp->status, resp->body);
        /* AC may answer 503 when over its rate, like a 429: honour the
         * hint either way. */
        if ((err == OSY_ERR_THROTTLED || resp->status == 503) &&
            (ra = osy_http_response_header(resp, "Retry-After")))
                ans->retry_after_ms = osy_http_retry_after_ms(ra, time(NULL));
        if (err)
                osy_err_set(err, errstr, errstr_size,
                            "ac %s %s: HTTP %d: %.120s",
                            osy_http_method2str(method), path, resp->status,
                            resp->body ? resp->body : "");
        return err;
}

/* AC's examples send list ids as numbers in bulk imports; a decimal id is
 * sent that way, anything else (future id formats) as a string. */
static int is_decimal(const char *s)
{
        if (!*s || strlen(s) > 15)
                return 0;
        for (; *s; s++)
                if (*s < '0' || *s > '9')
                        return 0;
        return 1;
}

/* Status 2 is "unsubscribed". AC answers 201 (live) or 200 (docs) with the
 * contact; a 404 names either the contact ("Subscriber") or the list. */
osy_err_t osy_ac_unsubscribe_list(osy_ac_write_t *w, const char *contact_id,
                                  const char *list_id,
                                  struct osy_ac_answer *ans, int *list_missing,
                                  char *errstr, size_t errstr_size)
{
        struct osy_http_response resp;
        cJSON *root = cJSON_CreateObject(), *cl;
        char *body  = NULL;
        osy_err_t err;

        *list_missing = 0;
        cl            = cJSON_AddObjectToObject(root, "contactList");
        if (!cl || !cJSON_AddStringToObject(cl, "list", list_id) ||
            !cJSON_AddStringToObject(cl, "contact", contact_id) ||
            !cJSON_AddNumberToObject(cl, "status", 2) ||
            !(body = cJSON_PrintUnformatted(root))) {
                cJSON_Delete(root);
                memset(ans, 0, sizeof(*ans));
                ans->retry_after_ms = -1;
                return OSY_ERR_NOMEM;
        }
        cJSON_Delete(root);
        err = call(w, OSY_HTTP_POST, "/contactLists", body, 0, &resp, ans,
                   errstr, errstr_size);
        if (err == OSY_ERR_NOT_FOUND && resp.body &&
            strstr(resp.body, "for List with id"))
                *list_missing = 1;
        osy_http_response_free(&resp);
        free(body);
        return err;
}

osy_err_t osy_ac_bulk_body(const struct osy_ac_bulk_contact *c, size_t n,
                           char **json, size_t *len)
{
        cJSON *root   = cJSON_CreateObject(), *arr;
        osy_err_t err = OSY_ERR_NOMEM;

        *json = NULL;
        if (!n || n > OSY_AC_BULK_MAX) {
                cJSON_Delete(root);
                return OSY_ERR_INVALID;
        }
        if (!root || !(arr = cJSON_AddArrayToObject(root, "contacts")))
                goto out;
        for (size_t i = 0; i < n; i++) {
                cJSON *o = cJSON_CreateObject(), *un;
                if (!o)
                        goto out;
                cJSON_AddItemToArray(arr, o);
                if (!cJSON_AddStringToObject(o, "email", c[i].email) ||
                    !(un = cJSON_AddArrayToObject(o, "unsubscribe")))
                        goto out;
                for (size_t j = 0; j < c[i].n_lists; j++) {
                        cJSON *l = cJSON_CreateObject();
                        if (!l)
                                goto out;
                        cJSON_AddItemToArray(un, l);
                        if (!(is_decimal(c[i].lists[j])
                                  ? cJSON_AddNumberToObject(
                                        l, "listid",
                                        (double)strtoll(c[i].lists[j], NULL,
                                                        10))
                                  : cJSON_AddStringToObject(l, "listid",
                                                            c[i].lists[j])))
                                goto out;
                }
        }
        /* Our unsubscribes must not start the account's automations. */
        if (!cJSON_AddTrueToObject(root, "exclude_automations"))
                goto out;
        if (!(*json = cJSON_PrintUnformatted(root)))
                goto out;
        *len = strlen(*json);
        err  = OSY_OK;
        if (*len > OSY_AC_BULK_MAX_BYTES) {
                free(*json);
                *json = NULL;
                err   = OSY_ERR_TOO_LARGE;
        }
out:
        cJSON_Delete(root);
        return err;
}

osy_err_t osy_ac_bulk_parse(int status, const char *body, char *batch_id,
                            size_t batch_id_size, char *errstr,
                            size_t errstr_size)
{
        cJSON *root      = cJSON_Parse(body ? body : "");
        const cJSON *id  = cJSON_GetObjectItemCaseSensitive(root, "batchId");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(root, "message");
        osy_err_t err;

        batch_id[0] = '\0';
        if (status >= 200 && status < 300) {
                if (cJSON_IsString(id) && id->valuestring && *id->valuestring &&
                    strlen(id->valuestring) < batch_id_size) {
                        memcpy(batch_id, id->valuestring,
                               strlen(id->valuestring) + 1);
                        err = OSY_OK;
                } else
                        err =
                            osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                        "bulk import: HTTP %d without a "
                                        "batchId",
                                        status);
                goto out;
        }
        /* The importer reports its rate limit as a 400, and validation
         * failures as a 400 too: only the message tells them apart. */
        err = osy_err_from_http(status, body);
        osy_err_set(
            err, errstr, errstr_size, "bulk import: HTTP %d: %.160s", status,
            cJSON_IsString(msg) && msg->valuestring ? msg->valuestring : "");
out:
        cJSON_Delete(root);
        return err;
}

/* Only multi-contact imports count against the 100/min bucket; a single
 * contact import (20/min) is never sent by the writer's bulk path. */
osy_err_t osy_ac_bulk_unsubscribe(osy_ac_write_t *w,
                                  const struct osy_ac_bulk_contact *c, size_t n,
                                  char *batch_id, size_t batch_id_size,
                                  struct osy_ac_answer *ans, char *errstr,
                                  size_t errstr_size)
{
        struct osy_http_response resp;
        char *body = NULL;
        size_t len = 0;
        osy_err_t err;

        memset(ans, 0, sizeof(*ans));
        ans->retry_after_ms = -1;
        batch_id[0]         = '\0';
        if ((err = osy_ac_bulk_body(c, n, &body, &len)))
                return osy_err_set(err, errstr, errstr_size,
                                   "bulk import: cannot build the body (%s)",
                                   osy_err2str(err));
        err = call(w, OSY_HTTP_POST, "/import/bulk_import", body, n > 1, &resp,
                   ans, errstr, errstr_size);
        if (ans->status)
                err = osy_ac_bulk_parse(resp.status, resp.body, batch_id,
                                        batch_id_size, errstr, errstr_size);
        osy_http_response_free(&resp);
        free(body);
        return err;
}

void osy_ac_import_status_clear(struct osy_ac_import_status *s)
{
        for (size_t i = 0; i < s->n_failure; i++)
                free(s->failure[i]);
        free(s->failure);
        memset(s, 0, sizeof(*s));
}

osy_err_t osy_ac_import_info_parse(const char *body,
                                   struct osy_ac_import_status *out,
                                   char *errstr, size_t errstr_size)
{
        cJSON *root = cJSON_Parse(body ? body : "");
        const cJSON *st, *fail, *ok, *e;
        osy_err_t err = OSY_OK;

        memset(out, 0, sizeof(*out));
        if (!cJSON_IsObject(root)) {
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "import info: not a JSON object");
                goto out;
        }
        st = cJSON_GetObjectItemCaseSensitive(root, "status");
        /* Right after the POST AC may answer "status":false. */
        out->completed = cJSON_IsString(st) && st->valuestring &&
                         !strcmp(st->valuestring, "completed");
        if (!out->completed)
                goto out;
        ok             = cJSON_GetObjectItemCaseSensitive(root, "success");
        fail           = cJSON_GetObjectItemCaseSensitive(root, "failure");
        out->n_success = cJSON_IsArray(ok) ? (size_t)cJSON_GetArraySize(ok) : 0;
        /* The emails the importer refused. Any other shape is not "none
         * refused": every contact of the batch would count as done. */
        if (fail && !cJSON_IsNull(fail) && !cJSON_IsArray(fail)) {
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "import info: failure is not a list");
                goto out;
        }
        cJSON_ArrayForEach(e, fail)
        {
                if (cJSON_IsString(e) && e->valuestring)
                        continue;
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "import info: failure holds something "
                                  "other than emails");
                goto out;
        }
        if (cJSON_IsArray(fail) && cJSON_GetArraySize(fail) > 0) {
                out->failure = calloc((size_t)cJSON_GetArraySize(fail),
                                      sizeof(*out->failure));
                if (!out->failure) {
                        err = OSY_ERR_NOMEM;
                        goto out;
                }
                cJSON_ArrayForEach(e, fail)
                {
                        char *s;
                        if (!(s = strdup(e->valuestring))) {
                                err = OSY_ERR_NOMEM;
                                goto out;
                        }
                        for (char *p = s; *p; p++)
                                if (*p >= 'A' && *p <= 'Z')
                                        *p = (char)(*p - 'A' + 'a');
                        out->failure[out->n_failure++] = s;
                }
        }
out:
        if (err)
                osy_ac_import_status_clear(out);
        cJSON_Delete(root);
        return err;
}

/* One GET per batch: the caller polls it until "completed". */
osy_err_t osy_ac_import_info(osy_ac_write_t *w, const char *batch_id,
                             struct osy_ac_import_status *out,
                             struct osy_ac_answer *ans, char *errstr,
                             size_t errstr_size)
{
        struct osy_http_response resp;
        char path[OSY_AC_BATCH_ID_MAX * 3 + 64],
            esc[OSY_AC_BATCH_ID_MAX * 3 + 1];
        osy_err_t err;

        memset(out, 0, sizeof(*out));
        if (osy_ac_url_escape(batch_id, esc, sizeof(esc)))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "import info: batch id too long");
        snprintf(path, sizeof(path), "/import/info?batchId=%s", esc);
        err = call(w, OSY_HTTP_GET, path, NULL, 0, &resp, ans, errstr,
                   errstr_size);
        if (!err)
                err = osy_ac_import_info_parse(resp.body, out, errstr,
                                               errstr_size);
        osy_http_response_free(&resp);
        return err;
}
