/*
 * ac_client.c - ActiveCampaign API v3 look-ups over the shared HTTP client
 * and rate limiter: contacts, list memberships, tag names (cached), bounce
 * logs. AC sends ids and counters as strings, sometimes as numbers: both
 * are accepted.
 */
#include "optsync/ac_client.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "optsync/log.h"

#define DEFAULT_LIMITER_WAIT_MS 2000
/* Pages of GET /tags read on first use (100 tags each). */
#define TAG_PAGES_MAX 50
#define TAG_PAGE_SIZE 100
/* The cache is never emptied; cap it so a hostile account cannot grow
 * a worker without bound. */
#define TAG_CACHE_MAX 100000
#define TAG_BUCKETS 1024

struct tag_entry {
        struct tag_entry *next;
        char *id;
        char *name;
};

struct osy_ac_client_s {
        osy_http_client_t *http;
        osy_rl_t *limiter; /* not owned */
        int64_t limiter_max_wait_ms;
        char *base;   /* base_url + "/api/3" */
        char *tenant; /* limiter bucket */
        char *auth;   /* "Api-Token: ..." header line (secret) */
        int64_t retry_after_ms;
        struct tag_entry *tags[TAG_BUCKETS];
        size_t tags_cnt;
        int tags_loaded; /* GET /tags was read once */
        struct osy_ac_client_stats stats;
};

osy_err_t osy_ac_url_escape(const char *in, char *out, size_t out_size)
{
        static const char hex[] = "0123456789ABCDEF";
        size_t o                = 0;

        for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
                int keep = (*p >= 'a' && *p <= 'z') ||
                           (*p >= 'A' && *p <= 'Z') ||
                           (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
                           *p == '_' || *p == '~';
                if (o + (keep ? 1 : 3) >= out_size)
                        return OSY_ERR_TOO_LARGE;
                if (keep) {
                        out[o++] = (char)*p;
                } else {
                        out[o++] = '%';
                        out[o++] = hex[*p >> 4];
                        out[o++] = hex[*p & 15];
                }
        }
        if (o >= out_size)
                return OSY_ERR_TOO_LARGE;
        out[o] = '\0';
        return OSY_OK;
}

osy_err_t osy_ac_client_new(osy_ac_client_t **cp,
                            const struct osy_ac_client_opts *opts, char *errstr,
                            size_t errstr_size)
{
        osy_ac_client_t *c = NULL;
        size_t len;
        osy_err_t err;

        *cp = NULL;
        if (!opts || !opts->base_url || !*opts->base_url || !opts->api_token ||
            !*opts->api_token || !opts->tenant || !*opts->tenant)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ac client: base_url, api_token and "
                                   "tenant are required");
        if (strncmp(opts->base_url, "http://", 7) &&
            strncmp(opts->base_url, "https://", 8))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ac client: base_url must be http(s)");
        if (!(c = calloc(1, sizeof(*c))))
                goto nomem;
        osy_log_add_secret(opts->api_token);
        c->limiter             = opts->limiter;
        c->limiter_max_wait_ms = opts->limiter_max_wait_ms > 0
                                     ? opts->limiter_max_wait_ms
                                     : DEFAULT_LIMITER_WAIT_MS;
        c->retry_after_ms      = -1;
        len                    = strlen(opts->base_url);
        while (len && opts->base_url[len - 1] == '/')
                len--; /* "https://x/" + "/api/3" would double the slash */
        if (!(c->base = malloc(len + sizeof("/api/3"))))
                goto nomem;
        memcpy(c->base, opts->base_url, len);
        memcpy(c->base + len, "/api/3", sizeof("/api/3"));
        len = strlen(opts->api_token) + sizeof("Api-Token: ");
        if (!(c->auth = malloc(len)) || !(c->tenant = strdup(opts->tenant)))
                goto nomem;
        snprintf(c->auth, len, "Api-Token: %s", opts->api_token);
        if ((err = osy_http_client_new(&c->http, opts->http, errstr,
                                       errstr_size)))
                goto out;
        *cp = c;
        return OSY_OK;
nomem:
        err = osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                          "ac client: out of memory");
out:
        osy_ac_client_destroy(c);
        return err;
}

static void tags_free(osy_ac_client_t *c)
{
        for (size_t b = 0; b < TAG_BUCKETS; b++) {
                struct tag_entry *e = c->tags[b], *n;
                for (; e; e = n) {
                        n = e->next;
                        free(e->id);
                        free(e->name);
                        free(e);
                }
                c->tags[b] = NULL;
        }
        c->tags_cnt = 0;
}

void osy_ac_client_destroy(osy_ac_client_t *c)
{
        if (!c)
                return;
        tags_free(c);
        osy_http_client_destroy(c->http);
        if (c->auth) /* the token: do not leave it in freed memory */
                memset(c->auth, 0, strlen(c->auth));
        free(c->auth);
        free(c->base);
        free(c->tenant);
        free(c);
}

int64_t osy_ac_client_retry_after_ms(const osy_ac_client_t *c)
{
        return c->retry_after_ms;
}

void osy_ac_client_get_stats(const osy_ac_client_t *c,
                             struct osy_ac_client_stats *out)
{
        *out = c->stats;
}

/* ---- one call ------------------------------------------------------------ */

osy_err_t osy_ac_call(osy_ac_client_t *c, osy_http_method_t method,
                      const char *path, const char *body, cJSON **json,
                      char *errstr, size_t errstr_size)
{
        const char *headers[]         = {c->auth, "Accept: application/json",
                                 body ? "Content-Type: application/json" : NULL,
                                         NULL};
        struct osy_http_response resp = {0};
        struct osy_http_request req   = {0};
        char url[2048];
        const char *ra;
        osy_err_t err;
        int n;

        *json             = NULL;
        c->retry_after_ms = -1;
        n                 = snprintf(url, sizeof(url), "%s%s", c->base, path);
        if (n < 0 || (size_t)n >= sizeof(url))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ac: URL too long");
        /* AC allows 5 requests per second per account, shared by every
         * key and replica: take a token from the shared bucket first. */
        if (c->limiter) {
                err = osy_rl_wait(c->limiter, c->tenant, OSY_AC_RL_API, 1,
                                  c->limiter_max_wait_ms, NULL, NULL, errstr,
                                  errstr_size);
                if (err == OSY_ERR_THROTTLED)
                        c->stats.throttled++;
                if (err)
                        return err;
        }
        req.method   = method;
        req.url      = url;
        req.headers  = headers;
        req.body     = body;
        req.body_len = body ? strlen(body) : 0;
        c->stats.calls++;
        if ((err = osy_http_do(c->http, &req, &resp, errstr, errstr_size)))
                return err;
        if ((err = osy_err_from_http(resp.status, resp.body))) {
                if (err == OSY_ERR_THROTTLED || resp.status == 503) {
                        c->stats.throttled++;
                        if ((ra = osy_http_response_header(&resp,
                                                           "Retry-After")))
                                c->retry_after_ms =
                                    osy_http_retry_after_ms(ra, time(NULL));
                }
                osy_err_set(err, errstr, errstr_size,
                            "ac %s %s: HTTP %d: %.120s",
                            osy_http_method2str(method), path, resp.status,
                            resp.body ? resp.body : "");
                goto out;
        }
        if (!(*json = cJSON_ParseWithLength(resp.body, resp.body_len)))
                err =
                    osy_err_set(OSY_ERR_PERMANENT, errstr, errstr_size,
                                "ac %s %s: HTTP %d with a body that is "
                                "not JSON",
                                osy_http_method2str(method), path, resp.status);
out:
        osy_http_response_free(&resp);
        return err;
}

/* ---- JSON helpers ----------------------------------------------------------
 */

/* An id AC sends as "113" or 113. @returns 1 when copied. */
/* AC's ids, statuses and codes: what check_id() would let into a path.
 * Not only dots: "." and ".." are path segments curl resolves. */
static int id_token_ok(const char *s)
{
        int other = 0;

        for (; *s; s++) {
                if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') ||
                      (*s >= 'A' && *s <= 'Z') || *s == '-' || *s == '_' ||
                      *s == '.' || *s == ':'))
                        return 0;
                other |= *s != '.';
        }
        return other;
}

/* An id-like field as text. Strings must be tokens (id_token_ok); numbers
 * whole, in 0..2^53: "%.0f" would have made 113.7 the id of contact 114,
 * a status of 1.4 "active" and bounced_hard 0.6 a hard bounce. */
static int json_id(const cJSON *obj, const char *key, char *out, size_t size)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        int n;

        out[0] = '\0';
        if (cJSON_IsString(v) && v->valuestring && *v->valuestring &&
            id_token_ok(v->valuestring))
                n = snprintf(out, size, "%s", v->valuestring);
        else if (cJSON_IsNumber(v) && v->valuedouble >= 0 &&
                 v->valuedouble < 9007199254740992.0 &&
                 v->valuedouble == floor(v->valuedouble))
                n = snprintf(out, size, "%.0f", v->valuedouble);
        else
                return 0;
        if (n < 0 || (size_t)n >= size) {
                out[0] = '\0';
                return 0;
        }
        return 1;
}

/* A counter AC sends as "0" or 0; absent or unreadable: 0. */
static int64_t json_int(const cJSON *obj, const char *key)
{
        char buf[32], *end;
        long long v;

        if (!json_id(obj, key, buf, sizeof(buf)))
                return 0;
        errno = 0;
        v     = strtoll(buf, &end, 10);
        return errno || *end || v < 0 ? 0 : (int64_t)v;
}

static osy_err_t parse_contact(const cJSON *o, struct osy_ac_contact *out,
                               char *errstr, size_t errstr_size)
{
        memset(out, 0, sizeof(*out));
        if (!cJSON_IsObject(o) || !json_id(o, "id", out->id, sizeof(out->id)))
                return osy_err_set(OSY_ERR_PERMANENT, errstr, errstr_size,
                                   "ac: contact without an id");
        out->bounced_hard = json_int(o, "bounced_hard");
        out->bounced_soft = json_int(o, "bounced_soft");
        return OSY_OK;
}

/* A path segment from an id we were given: refuse anything odd rather
 * than build another URL. */
static osy_err_t check_id(const char *id, char *errstr, size_t errstr_size)
{
        size_t len = id ? strlen(id) : 0;

        if (len == 0 || len > OSY_AC_ID_MAX)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ac: bad id");
        if (!id_token_ok(id))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ac: bad id '%.64s'", id);
        return OSY_OK;
}

/* ---- contacts ------------------------------------------------------------ */

osy_err_t osy_ac_find_contact(osy_ac_client_t *c, const char *email,
                              struct osy_ac_contact *out, char *errstr,
                              size_t errstr_size)
{
        char esc[1024], path[1100];
        const cJSON *arr;
        cJSON *json = NULL;
        osy_err_t err;

        memset(out, 0, sizeof(*out));
        if (!email || osy_ac_url_escape(email, esc, sizeof(esc)))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ac: bad email");
        snprintf(path, sizeof(path), "/contacts?email=%s", esc);
        if ((err = osy_ac_call(c, OSY_HTTP_GET, path, NULL, &json, errstr,
                               errstr_size)))
                return err;
        arr = cJSON_GetObjectItemCaseSensitive(json, "contacts");
        if (!cJSON_IsArray(arr)) {
                err = osy_err_set(OSY_ERR_PERMANENT, errstr, errstr_size,
                                  "ac: GET /contacts answer has no "
                                  "contacts array");
        } else if (cJSON_GetArraySize(arr) == 0) {
                err = osy_err_set(OSY_ERR_NOT_FOUND, errstr, errstr_size,
                                  "ac: no contact with this email");
        } else {
                /* AC matches case-insensitively; emails are unique per
                 * account, so the first is the one. */
                err = parse_contact(cJSON_GetArrayItem(arr, 0), out, errstr,
                                    errstr_size);
        }
        cJSON_Delete(json);
        return err;
}

osy_err_t osy_ac_get_contact(osy_ac_client_t *c, const char *id,
                             struct osy_ac_contact *out, char *errstr,
                             size_t errstr_size)
{
        char path[128];
        cJSON *json = NULL;
        osy_err_t err;

        memset(out, 0, sizeof(*out));
        if ((err = check_id(id, errstr, errstr_size)))
                return err;
        snprintf(path, sizeof(path), "/contacts/%s", id);
        if ((err = osy_ac_call(c, OSY_HTTP_GET, path, NULL, &json, errstr,
                               errstr_size)))
                return err;
        err = parse_contact(cJSON_GetObjectItemCaseSensitive(json, "contact"),
                            out, errstr, errstr_size);
        cJSON_Delete(json);
        return err;
}

/* GET /contacts/{id}/<sub> and its array <key>. */
static osy_err_t get_sub_array(osy_ac_client_t *c, const char *id,
                               const char *sub, cJSON **json, const cJSON **arr,
                               char *errstr, size_t errstr_size)
{
        char path[160];
        osy_err_t err;

        *arr = NULL;
        if ((err = check_id(id, errstr, errstr_size)))
                return err;
        snprintf(path, sizeof(path), "/contacts/%s/%s", id, sub);
        if ((err = osy_ac_call(c, OSY_HTTP_GET, path, NULL, json, errstr,
                               errstr_size)))
                return err;
        *arr = cJSON_GetObjectItemCaseSensitive(*json, sub);
        if (!cJSON_IsArray(*arr)) {
                cJSON_Delete(*json);
                *json = NULL;
                return osy_err_set(OSY_ERR_PERMANENT, errstr, errstr_size,
                                   "ac: GET %s answer has no %s array", path,
                                   sub);
        }
        return OSY_OK;
}

osy_err_t osy_ac_contact_lists(osy_ac_client_t *c, const char *id,
                               struct osy_ac_membership **out, size_t *n,
                               char *errstr, size_t errstr_size)
{
        const cJSON *arr, *it;
        cJSON *json = NULL;
        size_t cnt  = 0;
        osy_err_t err;

        *out = NULL;
        *n   = 0;
        if ((err = get_sub_array(c, id, "contactLists", &json, &arr, errstr,
                                 errstr_size)))
                return err;
        if (cJSON_GetArraySize(arr) > 0 &&
            !(*out = calloc((size_t)cJSON_GetArraySize(arr), sizeof(**out)))) {
                cJSON_Delete(json);
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "ac: out of memory");
        }
        cJSON_ArrayForEach(it, arr)
        {
                struct osy_ac_membership *m = &(*out)[cnt];
                char st[16], *end;
                long v;

                /* A row without list or status tells nothing: skip it. */
                if (!cJSON_GetObjectItemCaseSensitive(it, "list") &&
                    !cJSON_GetObjectItemCaseSensitive(it, "status"))
                        continue;
                /* One that says something unreadable fails the look-up:
                 * skipping it could hide an active list (and let R2 opt
                 * the person out), misreading it could invent one. */
                if (!json_id(it, "list", m->list, sizeof(m->list)) ||
                    !json_id(it, "status", st, sizeof(st)) ||
                    strspn(st, "0123456789") != strlen(st) || strlen(st) > 3) {
                        free(*out);
                        *out = NULL;
                        cJSON_Delete(json);
                        return osy_err_set(OSY_ERR_PERMANENT, errstr,
                                           errstr_size,
                                           "ac: contact %s: a list membership "
                                           "without a readable list and "
                                           "status",
                                           id);
                }
                v         = strtol(st, &end, 10);
                m->status = (int)v;
                cnt++;
        }
        *n = cnt;
        cJSON_Delete(json);
        return OSY_OK;
}

osy_err_t osy_ac_contact_bounce_logs(osy_ac_client_t *c, const char *id,
                                     struct osy_ac_bounce_log **out, size_t *n,
                                     char *errstr, size_t errstr_size)
{
        const cJSON *arr, *it;
        cJSON *json = NULL;
        size_t cnt  = 0;
        osy_err_t err;

        *out = NULL;
        *n   = 0;
        if ((err = get_sub_array(c, id, "bounceLogs", &json, &arr, errstr,
                                 errstr_size)))
                return err;
        if (cJSON_GetArraySize(arr) > 0 &&
            !(*out = calloc((size_t)cJSON_GetArraySize(arr), sizeof(**out)))) {
                cJSON_Delete(json);
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "ac: out of memory");
        }
        cJSON_ArrayForEach(it, arr)
        {
                struct osy_ac_bounce_log *b = &(*out)[cnt];
                if (!json_id(it, "id", b->id, sizeof(b->id)))
                        continue;
                /* Both spellings appear: "campaign" and "campaignid". */
                if (!json_id(it, "campaign", b->campaign, sizeof(b->campaign)))
                        json_id(it, "campaignid", b->campaign,
                                sizeof(b->campaign));
                if (!json_id(it, "bounce", b->bounce, sizeof(b->bounce)))
                        json_id(it, "bounceid", b->bounce, sizeof(b->bounce));
                if (!json_id(it, "code", b->code, sizeof(b->code)))
                        json_id(it, "codeid", b->code, sizeof(b->code));
                cnt++;
        }
        *n = cnt;
        cJSON_Delete(json);
        return OSY_OK;
}

/* ---- tags ------------------------------------------------------------------
 */

static size_t tag_hash(const char *id)
{
        size_t h = 5381;
        for (; *id; id++)
                h = h * 33 + (unsigned char)*id;
        return h % TAG_BUCKETS;
}

static const char *tag_lookup(osy_ac_client_t *c, const char *id)
{
        for (struct tag_entry *e = c->tags[tag_hash(id)]; e; e = e->next)
                if (!strcmp(e->id, id))
                        return e->name;
        return NULL;
}

/* Remember id -> name (a rename replaces the old name). */
static osy_err_t tag_store(osy_ac_client_t *c, const char *id, const char *name)
{
        size_t b = tag_hash(id);
        struct tag_entry *e;
        char *copy;

        for (e = c->tags[b]; e; e = e->next) {
                if (!strcmp(e->id, id)) {
                        if (!(copy = strdup(name)))
                                return OSY_ERR_NOMEM;
                        free(e->name);
                        e->name = copy;
                        return OSY_OK;
                }
        }
        if (c->tags_cnt >= TAG_CACHE_MAX)
                return OSY_OK; /* full: later misses fetch one by one */
        if (!(e = calloc(1, sizeof(*e))) || !(e->id = strdup(id)) ||
            !(e->name = strdup(name))) {
                if (e) {
                        free(e->id);
                        free(e);
                }
                return OSY_ERR_NOMEM;
        }
        e->next    = c->tags[b];
        c->tags[b] = e;
        c->tags_cnt++;
        return OSY_OK;
}

/* Store every {"id","tag"} object of a "tags" array. */
static osy_err_t tags_from_array(osy_ac_client_t *c, const cJSON *arr)
{
        const cJSON *it;
        osy_err_t err;

        cJSON_ArrayForEach(it, arr)
        {
                char id[OSY_AC_ID_MAX + 1];
                const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "tag");
                if (!json_id(it, "id", id, sizeof(id)) ||
                    !cJSON_IsString(name) || !name->valuestring)
                        continue;
                if ((err = tag_store(c, id, name->valuestring)))
                        return err;
        }
        return OSY_OK;
}

/* Read every tag of the account once (GET /tags, paged by offset): a
 * handful of calls instead of one per unseen tag id. */
static osy_err_t tags_load_all(osy_ac_client_t *c, char *errstr,
                               size_t errstr_size)
{
        osy_err_t err = OSY_OK;

        for (int page = 0; page < TAG_PAGES_MAX; page++) {
                char path[96];
                const cJSON *arr;
                cJSON *json = NULL;
                int cnt;

                snprintf(path, sizeof(path), "/tags?limit=%d&offset=%d",
                         TAG_PAGE_SIZE, page * TAG_PAGE_SIZE);
                if ((err = osy_ac_call(c, OSY_HTTP_GET, path, NULL, &json,
                                       errstr, errstr_size)))
                        return err;
                arr = cJSON_GetObjectItemCaseSensitive(json, "tags");
                cnt = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
                err = tags_from_array(c, arr);
                cJSON_Delete(json);
                if (err)
                        return osy_err_set(err, errstr, errstr_size,
                                           "ac: out of memory");
                if (cnt < TAG_PAGE_SIZE)
                        break;
        }
        c->tags_loaded = 1;
        return OSY_OK;
}

/* The name of one tag id: cache, else GET /tags/{id}. *name NULL when
 * the tag no longer exists. */
static osy_err_t tag_name(osy_ac_client_t *c, const char *id, const char **name,
                          char *errstr, size_t errstr_size)
{
        char path[96];
        const cJSON *tag, *nm;
        cJSON *json = NULL;
        osy_err_t err;

        if ((*name = tag_lookup(c, id))) {
                c->stats.tag_cache_hits++;
                return OSY_OK;
        }
        c->stats.tag_cache_misses++;
        if ((err = check_id(id, errstr, errstr_size)))
                return err;
        snprintf(path, sizeof(path), "/tags/%s", id);
        err = osy_ac_call(c, OSY_HTTP_GET, path, NULL, &json, errstr,
                          errstr_size);
        if (err == OSY_ERR_NOT_FOUND)
                return OSY_OK; /* deleted since: not a tag any more */
        if (err)
                return err;
        tag = cJSON_GetObjectItemCaseSensitive(json, "tag");
        nm  = cJSON_GetObjectItemCaseSensitive(tag, "tag");
        if (cJSON_IsString(nm) && nm->valuestring) {
                if ((err = tag_store(c, id, nm->valuestring))) {
                        cJSON_Delete(json);
                        return osy_err_set(err, errstr, errstr_size,
                                           "ac: out of memory");
                }
                *name = tag_lookup(c, id);
        }
        cJSON_Delete(json);
        return OSY_OK;
}

void osy_ac_strv_free(char **v, size_t n)
{
        if (!v)
                return;
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

osy_err_t osy_ac_contact_tag_names(osy_ac_client_t *c, const char *id,
                                   char ***names, size_t *n, char *errstr,
                                   size_t errstr_size)
{
        const cJSON *arr, *it;
        cJSON *json = NULL;
        char **v    = NULL;
        size_t cnt  = 0;
        osy_err_t err;

        *names = NULL;
        *n     = 0;
        if ((err = get_sub_array(c, id, "contactTags", &json, &arr, errstr,
                                 errstr_size)))
                return err;
        if (cJSON_GetArraySize(arr) > 0) {
                if (!c->tags_loaded &&
                    (err = tags_load_all(c, errstr, errstr_size)))
                        goto out;
                if (!(v = calloc((size_t)cJSON_GetArraySize(arr),
                                 sizeof(*v)))) {
                        err = osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                          "ac: out of memory");
                        goto out;
                }
        }
        cJSON_ArrayForEach(it, arr)
        {
                char tid[OSY_AC_ID_MAX + 1];
                const char *name;

                if (!json_id(it, "tag", tid, sizeof(tid)))
                        continue;
                if ((err = tag_name(c, tid, &name, errstr, errstr_size)))
                        goto out;
                if (!name)
                        continue;
                if (!(v[cnt] = strdup(name))) {
                        err = osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                          "ac: out of memory");
                        goto out;
                }
                cnt++;
        }
        *names = v;
        *n     = cnt;
        v      = NULL;
        err    = OSY_OK;
out:
        osy_ac_strv_free(v, cnt);
        cJSON_Delete(json);
        return err;
}

void osy_ac_rl_opts(const osy_config_t *cfg, const char *prefix,
                    struct osy_rl_opts *out)
{
        memset(out, 0, sizeof(*out));
        out->prefix    = prefix;
        out->rate      = osy_config_int(cfg, OSY_CFG_AC_RATE_PER_SECOND);
        out->period_ms = 1000;
        out->burst     = osy_config_int(cfg, OSY_CFG_AC_RATE_BURST);
        /* A call reaches AC some time after its token was granted, and the
         * first calls of a process (new connections) much later than the
         * next ones, so a granted burst can arrive compressed and overflow
         * AC's own bucket. Restarting a refilled bucket as late as allowed
         * trades the burst after an idle spell for that margin; the
         * long-run rate stays the same. */
        if (out->rate > 0 && out->burst > 1)
                out->skew_ms = (int64_t)(out->burst - 1) * 1000 / out->rate;
}
