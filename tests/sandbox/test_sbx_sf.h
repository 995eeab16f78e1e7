/*
 * test_sbx_sf.h - helpers shared by the Salesforce sandbox tests: start a
 * sandbox with one org ("t1"), get a session, make REST and CometD calls
 * through the project's HTTP client and read the JSON answers.
 */
#ifndef TEST_SBX_SF_H
#define TEST_SBX_SF_H

#include "osy_test.h"
#include "osy_test_sandbox.h"

#include "optsync/http.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SF_API "/sf/t1/services/data/v59.0"
#define SF_COMETD "/sf/t1/cometd/59.0"

/** One answer: status, parsed JSON (may be NULL) and the headers the SF
 *  tests look at. Free with sfr_free(). */
struct sfr {
        int status;
        char *body;
        cJSON *json;
        char *limit_info; /* Sforce-Limit-Info */
        char *set_cookie;
        long ms; /* how long the call took */
};

static inline void sfr_free(struct sfr *r)
{
        free(r->body);
        cJSON_Delete(r->json);
        free(r->limit_info);
        free(r->set_cookie);
        memset(r, 0, sizeof(*r));
}

static inline char *sf_dup(const char *s)
{
        return s ? strdup(s) : NULL;
}

/* Start the sandbox with {"tenants":{"t1":{"sf":<sf_part>}}} and a 1 s
 * CometD long-poll unless @p args say otherwise. */
static inline void sf_start(struct osy_test_sandbox *sb, const char *sf_part,
                            const char *const *args)
{
        static const char *const def[] = {"--set", "sf.cometd_timeout_ms=1000",
                                          NULL};
        size_t n                       = strlen(sf_part ? sf_part : "{}") + 64;
        char *fx                       = malloc(n);

        assert_non_null(fx);
        snprintf(fx, n, "{\"tenants\":{\"t1\":{\"sf\":%s}}}",
                 sf_part ? sf_part : "{}");
        if (osy_test_sandbox_start(sb, fx, args ? args : def))
                fail_msg("sandbox did not start");
        free(fx);
}

static inline osy_http_method_t sf_method(const char *m)
{
        if (!strcmp(m, "POST"))
                return OSY_HTTP_POST;
        if (!strcmp(m, "PATCH"))
                return OSY_HTTP_PATCH;
        if (!strcmp(m, "PUT"))
                return OSY_HTTP_PUT;
        if (!strcmp(m, "DELETE"))
                return OSY_HTTP_DELETE;
        return OSY_HTTP_GET;
}

/* One request; asserts that an HTTP answer came. */
static inline void sf_call_to(struct osy_test_sandbox *sb, const char *method,
                              const char *path, const char *const *headers,
                              const char *body, long timeout_ms,
                              struct sfr *out)
{
        struct osy_http_opts o     = {.timeout_ms = timeout_ms};
        struct osy_http_request rq = {0};
        struct osy_http_response r = {0};
        osy_http_client_t *c       = NULL;
        char errstr[OSY_ERRSTR_SIZE], url[4096];
        int64_t t0 = osy_test_now_ms();

        memset(out, 0, sizeof(*out));
        snprintf(url, sizeof(url), "%s%s", sb->base_url, path);
        rq.method   = sf_method(method);
        rq.url      = url;
        rq.headers  = headers;
        rq.body     = body;
        rq.body_len = body ? strlen(body) : 0;
        assert_int_equal(osy_http_client_new(&c, &o, errstr, sizeof(errstr)),
                         OSY_OK);
        if (osy_http_do(c, &rq, &r, errstr, sizeof(errstr)) != OSY_OK)
                fail_msg("%s %s: %s", method, path, errstr);
        osy_http_client_destroy(c);
        out->ms     = (long)(osy_test_now_ms() - t0);
        out->status = r.status;
        out->body   = sf_dup(r.body);
        out->json   = r.body ? cJSON_Parse(r.body) : NULL;
        out->limit_info =
            sf_dup(osy_http_response_header(&r, "Sforce-Limit-Info"));
        out->set_cookie = sf_dup(osy_http_response_header(&r, "Set-Cookie"));
        osy_http_response_free(&r);
}

static inline void sf_call(struct osy_test_sandbox *sb, const char *method,
                           const char *path, const char *const *headers,
                           const char *body, struct sfr *out)
{
        sf_call_to(sb, method, path, headers, body, 10000, out);
}

/* POST a sandbox control; asserts @p want_status. */
static inline void sf_control(struct osy_test_sandbox *sb, const char *method,
                              const char *path, const char *body,
                              int want_status)
{
        struct sfr r;

        sf_call(sb, method, path, NULL, body, &r);
        if (r.status != want_status)
                fail_msg("%s %s: status %d, want %d: %s", method, path,
                         r.status, want_status, r.body ? r.body : "");
        sfr_free(&r);
}

/* A session for t1 by client credentials (default credentials). Returns
 * "Authorization: Bearer <token>" (caller frees). */
static inline char *sf_auth(struct osy_test_sandbox *sb)
{
        static const char *const form[] = {
            "Content-Type: application/x-www-form-urlencoded", NULL};
        struct sfr r;
        const cJSON *tok;
        char *h;
        size_t n;

        sf_call(sb, "POST", "/sf/t1/services/oauth2/token", form,
                "grant_type=client_credentials&client_id=sandbox-client-id"
                "&client_secret=sandbox-client-secret",
                &r);
        assert_int_equal(r.status, 200);
        tok = cJSON_GetObjectItemCaseSensitive(r.json, "access_token");
        assert_true(cJSON_IsString(tok));
        n = strlen(tok->valuestring) + 32;
        h = malloc(n);
        assert_non_null(h);
        snprintf(h, n, "Authorization: Bearer %s", tok->valuestring);
        sfr_free(&r);
        return h;
}

/* @returns the "errorCode" of a REST error array. */
static inline const char *sf_errcode(const struct sfr *r)
{
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(r->json, 0), "errorCode");

        return cJSON_IsString(e) ? e->valuestring : "";
}

static inline const char *sf_errmsg(const struct sfr *r)
{
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(r->json, 0), "message");

        return cJSON_IsString(e) ? e->valuestring : "";
}

static inline const char *sf_str(const cJSON *o, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Move the sandbox clock forward. */
static inline void sf_advance(struct osy_test_sandbox *sb, long long ms)
{
        char body[64];

        snprintf(body, sizeof(body), "{\"advance_ms\":%lld}", ms);
        sf_control(sb, "POST", "/sandbox/clock", body, 200);
}

/* GET /query?q=<soql>, percent-encoding the query. */
static inline void sf_query(struct osy_test_sandbox *sb, const char *auth,
                            const char *soql, struct sfr *out)
{
        const char *const h[] = {auth, NULL};
        char path[4096];
        size_t n = (size_t)snprintf(path, sizeof(path), "%s/query?q=", SF_API);

        for (const unsigned char *p = (const unsigned char *)soql;
             *p && n + 4 < sizeof(path); p++) {
                if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
                    *p == '.')
                        path[n++] = (char)*p;
                else
                        n += (size_t)snprintf(path + n, sizeof(path) - n,
                                              "%%%02X", *p);
        }
        path[n] = '\0';
        sf_call(sb, "GET", path, h, NULL, out);
}

#endif /* TEST_SBX_SF_H */
