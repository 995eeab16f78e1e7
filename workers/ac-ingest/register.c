/*
 * register.c - reconcile a tenant's AC webhooks with what ac-ingest
 * needs: list (every page), then create, update or delete only what
 * differs. Tokens never reach the report, the log or an error string.
 */
#include "register.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "server.h"
#include "optsync/log.h"

#define PAGE_LIMIT 100
#define MAX_PAGES 100     /* 10,000 hooks: far beyond any real account */
#define MAX_ATTEMPTS 4    /* per call, on 429 / 5xx / transport errors */
#define MAX_WAIT_MS 30000 /* longest Retry-After honoured */
#define URL_MAX 4096

const char *const osy_acwh_hook_events[] = {
    "subscribe",           "unsubscribe", "bounce", "contact_tag_added",
    "contact_tag_removed", "update",      NULL};
const char *const osy_acwh_hook_sources[] = {"public", "admin", "api", "system",
                                             NULL};

/* One existing hook, as far as reconciling needs it. */
struct hook {
        char id[32];
        char *url;
        int complete; /* events, sources and listid as wanted */
};

/* Everything one tenant's run needs. */
struct ctx {
        osy_http_client_t *c;
        const struct osy_tenant *t;
        const struct osy_acwh_register_opts *o;
        FILE *out;
        char api[URL_MAX];    /* "<base>/api/3" */
        char prefix[URL_MAX]; /* "<public>/webhooks/ac/<tenant>/" */
        char ours[URL_MAX];   /* prefix + token */
        char auth[600];       /* "Api-Token: ..." */
};

/*
 * One AC call with retries on 429 (honouring Retry-After), 5xx and
 * transport errors. @returns OSY_OK with @p resp filled on a 2xx, else the
 * class of the failure (resp freed).
 */
static osy_err_t call(struct ctx *x, osy_http_method_t method, const char *url,
                      const char *body, struct osy_http_response *resp,
                      char *errstr, size_t errstr_size)
{
        const char *headers[]       = {x->auth, "Accept: application/json",
                                       "Content-Type: application/json", NULL};
        struct osy_http_request req = {.method   = method,
                                       .url      = url,
                                       .headers  = headers,
                                       .body     = body,
                                       .body_len = body ? strlen(body) : 0};
        osy_err_t err               = OSY_OK;

        for (int attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
                int64_t wait = 250LL << attempt;
                const char *ra;

                memset(resp, 0, sizeof(*resp));
                err = osy_http_do(x->c, &req, resp, errstr, errstr_size);
                if (!err) {
                        err = osy_err_from_http(resp->status, resp->body);
                        if (!err)
                                return OSY_OK;
                        osy_err_set(
                            err, errstr, errstr_size, "AC answered %d to %s %s",
                            resp->status, osy_http_method2str(method),
                            strstr(url, "/api/3/") ? strstr(url, "/api/3/")
                                                   : "?");
                        ra = osy_http_response_header(resp, "Retry-After");
                        if (ra) {
                                int64_t hint =
                                    osy_http_retry_after_ms(ra, time(NULL));
                                if (hint >= 0)
                                        wait = hint;
                        }
                        osy_http_response_free(resp);
                }
                if (!osy_err_is_retryable(err) || attempt == MAX_ATTEMPTS)
                        break;
                if (wait > MAX_WAIT_MS)
                        wait = MAX_WAIT_MS;
                usleep((useconds_t)(wait * 1000));
        }
        if (err == OSY_ERR_AUTH)
                osy_err_set(err, errstr, errstr_size,
                            "AC refused the tenant's Api-Token (403)");
        return err;
}

/* Does JSON array @p arr hold exactly the names of @p want (any order)? */
static int same_names(const cJSON *arr, const char *const *want)
{
        size_t n = 0, have = 0;
        const cJSON *it;

        if (!cJSON_IsArray(arr))
                return 0;
        for (n = 0; want[n]; n++) {
                int found = 0;
                cJSON_ArrayForEach(it, arr)
                {
                        if (cJSON_IsString(it) &&
                            !strcmp(it->valuestring, want[n]))
                                found = 1;
                }
                if (!found)
                        return 0;
        }
        cJSON_ArrayForEach(it, arr)
        {
                have++;
        }
        return have == n;
}

static int listid_zero(const cJSON *v)
{
        if (!v || cJSON_IsNull(v))
                return 1;
        if (cJSON_IsNumber(v))
                return v->valuedouble == 0;
        return cJSON_IsString(v) &&
               (!strcmp(v->valuestring, "0") || !*v->valuestring);
}

/* AC's webhook id as 1..20 digits (a string, or a whole JSON number);
 * 0 if it is anything else. */
static int hook_id(const cJSON *id, char *out, size_t size)
{
        size_t len;

        out[0] = '\0';
        if (cJSON_IsNumber(id) && id->valuedouble >= 1 &&
            id->valuedouble < 9007199254740992.0 &&
            id->valuedouble == floor(id->valuedouble))
                snprintf(out, size, "%.0f", id->valuedouble);
        else if (cJSON_IsString(id) && id->valuestring)
                snprintf(out, size, "%s", id->valuestring);
        len = strlen(out);
        if (!len || len > 20 || strspn(out, "0123456789") != len) {
                out[0] = '\0';
                return 0;
        }
        return 1;
}

static osy_err_t list_hooks(struct ctx *x, struct hook **hooks, size_t *n,
                            char *errstr, size_t errstr_size)
{
        osy_err_t err = OSY_OK;

        *hooks = NULL;
        *n     = 0;
        for (int page = 0; page < MAX_PAGES; page++) {
                struct osy_http_response resp;
                char url[URL_MAX + 64];
                const cJSON *arr, *w;
                cJSON *root;
                size_t got = 0;

                snprintf(url, sizeof(url), "%s/webhooks?limit=%d&offset=%d",
                         x->api, PAGE_LIMIT, page * PAGE_LIMIT);
                if ((err = call(x, OSY_HTTP_GET, url, NULL, &resp, errstr,
                                errstr_size)))
                        return err;
                root = cJSON_Parse(resp.body);
                osy_http_response_free(&resp);
                arr = cJSON_GetObjectItemCaseSensitive(root, "webhooks");
                if (!cJSON_IsArray(arr)) {
                        cJSON_Delete(root);
                        return osy_err_set(OSY_ERR_PERMANENT, errstr,
                                           errstr_size,
                                           "GET /webhooks: no \"webhooks\" "
                                           "array in the answer");
                }
                cJSON_ArrayForEach(w, arr)
                {
                        const cJSON *id =
                            cJSON_GetObjectItemCaseSensitive(w, "id");
                        const cJSON *u =
                            cJSON_GetObjectItemCaseSensitive(w, "url");
                        struct hook *h, *grown;

                        char hid[sizeof((*hooks)->id)];
                        int seen = 0;

                        got++;
                        if (!cJSON_IsString(u))
                                continue;
                        /* The id goes into DELETE and PUT paths: digits
                         * only. "../contacts/5" would have become
                         * DELETE /api/3/contacts/5 (curl resolves dot
                         * segments), and 12.6 hook 13. A hook listed
                         * twice (pages shifting under offset paging) is
                         * one hook, not a duplicate to delete. */
                        if (!hook_id(id, hid, sizeof(hid))) {
                                fprintf(x->out,
                                        "%s: a webhook with an unreadable id "
                                        "left alone\n",
                                        x->t->id);
                                continue;
                        }
                        for (size_t k = 0; k < *n && !seen; k++)
                                seen = !strcmp((*hooks)[k].id, hid);
                        if (seen)
                                continue;
                        if (!(grown = realloc(*hooks,
                                              (*n + 1) * sizeof(**hooks)))) {
                                cJSON_Delete(root);
                                return osy_err_set(OSY_ERR_NOMEM, errstr,
                                                   errstr_size,
                                                   "out of memory");
                        }
                        *hooks = grown;
                        h      = &(*hooks)[*n];
                        memset(h, 0, sizeof(*h));
                        memcpy(h->id, hid, sizeof(h->id));
                        if (!(h->url = strdup(u->valuestring))) {
                                cJSON_Delete(root);
                                return osy_err_set(OSY_ERR_NOMEM, errstr,
                                                   errstr_size,
                                                   "out of memory");
                        }
                        (*n)++;
                        h->complete =
                            same_names(
                                cJSON_GetObjectItemCaseSensitive(w, "events"),
                                osy_acwh_hook_events) &&
                            same_names(
                                cJSON_GetObjectItemCaseSensitive(w, "sources"),
                                osy_acwh_hook_sources) &&
                            listid_zero(
                                cJSON_GetObjectItemCaseSensitive(w, "listid"));
                }
                cJSON_Delete(root);
                if (got < PAGE_LIMIT)
                        break;
        }
        return OSY_OK;
}

/* The body of POST / PUT: our URL, the events, sources, every list. */
static char *hook_body(struct ctx *x)
{
        cJSON *root = cJSON_CreateObject(), *w, *ev, *src;
        char *text  = NULL;

        if (!root)
                return NULL;
        w = cJSON_AddObjectToObject(root, "webhook");
        if (w && cJSON_AddStringToObject(w, "name", OSY_ACWH_HOOK_NAME) &&
            cJSON_AddStringToObject(w, "url", x->ours) &&
            (ev = cJSON_AddArrayToObject(w, "events")) &&
            (src = cJSON_AddArrayToObject(w, "sources")) &&
            cJSON_AddNumberToObject(w, "listid", 0)) {
                for (size_t i = 0; osy_acwh_hook_events[i]; i++)
                        cJSON_AddItemToArray(
                            ev, cJSON_CreateString(osy_acwh_hook_events[i]));
                for (size_t i = 0; osy_acwh_hook_sources[i]; i++)
                        cJSON_AddItemToArray(
                            src, cJSON_CreateString(osy_acwh_hook_sources[i]));
                text = cJSON_PrintUnformatted(root);
        }
        cJSON_Delete(root);
        return text;
}

/* What reports show of a hook URL: the route prefix, then "***". */
static void masked(const struct ctx *x, const char *url, char *buf, size_t size)
{
        size_t pl = strlen(x->prefix);

        if (!strncmp(url, x->prefix, pl))
                snprintf(buf, size, "%s***", x->prefix);
        else
                snprintf(buf, size, "%s", url);
}

/* POST, PUT or DELETE one hook (id NULL for POST), unless dry-run. */
static osy_err_t change(struct ctx *x, osy_http_method_t method, const char *id,
                        char *errstr, size_t errstr_size)
{
        struct osy_http_response resp;
        char url[URL_MAX + 64];
        char *body = NULL;
        osy_err_t err;

        if (x->o->dry_run)
                return OSY_OK;
        if (method != OSY_HTTP_DELETE && !(body = hook_body(x)))
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "out of memory");
        if (id)
                snprintf(url, sizeof(url), "%s/webhooks/%s", x->api, id);
        else
                snprintf(url, sizeof(url), "%s/webhooks", x->api);
        err = call(x, method, url, body, &resp, errstr, errstr_size);
        if (!err)
                osy_http_response_free(&resp);
        free(body);
        return err;
}

static osy_err_t setup(struct ctx *x, char *errstr, size_t errstr_size)
{
        const struct osy_tenant *t = x->t;
        size_t pl;

        if (!t->has_ac || !t->ac.base_url || !t->ac.api_token ||
            !t->ac.webhook_token || !*t->ac.webhook_token)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "tenant %s: needs ac.base_url, "
                                   "ac.api_token and ac.webhook_token",
                                   t->id);
        if (!x->o->public_url || (strncmp(x->o->public_url, "http://", 7) &&
                                  strncmp(x->o->public_url, "https://", 8)))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "OPTSYNC_INGEST_PUBLIC_URL must be an "
                                   "http(s) URL");
        pl = strlen(x->o->public_url);
        while (pl && x->o->public_url[pl - 1] == '/')
                pl--;
        if ((size_t)snprintf(x->prefix, sizeof(x->prefix), "%.*s%s%s/", (int)pl,
                             x->o->public_url, OSY_INGEST_ROUTE_PREFIX,
                             t->id) >= sizeof(x->prefix) ||
            (size_t)snprintf(x->ours, sizeof(x->ours), "%s%s", x->prefix,
                             t->ac.webhook_token) >= sizeof(x->ours) ||
            (size_t)snprintf(x->api, sizeof(x->api), "%s/api/3",
                             t->ac.base_url) >= sizeof(x->api) ||
            (size_t)snprintf(x->auth, sizeof(x->auth), "Api-Token: %s",
                             t->ac.api_token) >= sizeof(x->auth))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "tenant %s: URL or token too long", t->id);
        /* The route token travels in the URL: keep it out of every log. */
        osy_log_add_secret(t->ac.webhook_token);
        osy_log_add_secret(t->ac.api_token);
        return OSY_OK;
}

osy_err_t osy_acwh_register_tenant(osy_http_client_t *c,
                                   const struct osy_tenant *t,
                                   const struct osy_acwh_register_opts *opts,
                                   FILE *out,
                                   struct osy_acwh_register_report *rep,
                                   char *errstr, size_t errstr_size)
{
        struct ctx x        = {.c = c, .t = t, .o = opts, .out = out};
        struct hook *hooks  = NULL;
        size_t n            = 0;
        const char *would   = opts->dry_run ? "would be " : "";
        struct hook *keeper = NULL;
        char shown[URL_MAX];
        osy_err_t err;

        memset(rep, 0, sizeof(*rep));
        if ((err = setup(&x, errstr, errstr_size)) ||
            (err = list_hooks(&x, &hooks, &n, errstr, errstr_size)))
                goto out;
        /* Keep one hook with our exact URL, a complete one if any. */
        for (size_t i = 0; i < n; i++)
                if (!strcmp(hooks[i].url, x.ours) &&
                    (!keeper || (!keeper->complete && hooks[i].complete)))
                        keeper = &hooks[i];
        for (size_t i = 0; i < n; i++) {
                struct hook *h = &hooks[i];
                int exact      = !strcmp(h->url, x.ours);

                if (h == keeper || strncmp(h->url, x.prefix, strlen(x.prefix)))
                        continue; /* not ours: someone else's hook */
                masked(&x, h->url, shown, sizeof(shown));
                if (!exact && !opts->prune) {
                        rep->stale++;
                        fprintf(out,
                                "%s: webhook %s points here with another "
                                "token (kept; --prune deletes it)\n",
                                t->id, h->id);
                        continue;
                }
                if ((err = change(&x, OSY_HTTP_DELETE, h->id, errstr,
                                  errstr_size)))
                        goto out;
                rep->deleted++;
                fprintf(out, "%s: webhook %s %sdeleted (%s)\n", t->id, h->id,
                        would, exact ? "duplicate" : "old token");
        }
        masked(&x, x.ours, shown, sizeof(shown));
        if (!keeper) {
                if ((err =
                         change(&x, OSY_HTTP_POST, NULL, errstr, errstr_size)))
                        goto out;
                rep->created++;
                fprintf(out, "%s: webhook %screated for %s\n", t->id, would,
                        shown);
        } else if (!keeper->complete) {
                if ((err = change(&x, OSY_HTTP_PUT, keeper->id, errstr,
                                  errstr_size)))
                        goto out;
                rep->updated++;
                fprintf(out,
                        "%s: webhook %s %supdated (events, sources, all "
                        "lists)\n",
                        t->id, keeper->id, would);
        } else {
                rep->unchanged++;
                fprintf(out, "%s: webhook %s unchanged\n", t->id, keeper->id);
        }
out:
        for (size_t i = 0; i < n; i++)
                free(hooks[i].url);
        free(hooks);
        OPENSSL_cleanse(x.auth, sizeof(x.auth));
        return err;
}
