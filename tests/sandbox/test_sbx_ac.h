/*
 * test_sbx_ac.h - helpers shared by the AC sandbox tests: start the sandbox
 * process, call it over real HTTP (optsync's client) with the Api-Token,
 * and read JSON answers. Everything is static inline: each test binary
 * uses its own subset.
 */
#ifndef TEST_SBX_AC_H
#define TEST_SBX_AC_H

#include "osy_test.h"
#include "osy_test_sandbox.h"

#include "optsync/http.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T_TOKEN "tok"

struct t_sbx {
        struct osy_test_sandbox sb;
        osy_http_client_t *http;
};

static struct t_sbx T;

static inline int t_start(const char *fixture, const char *const *args)
{
        char err[OSY_ERRSTR_SIZE];
        memset(&T, 0, sizeof(T));
        if (osy_test_sandbox_start(&T.sb, fixture, args) != 0)
                return -1;
        struct osy_http_opts o = {.timeout_ms = 15000};
        if (osy_http_client_new(&T.http, &o, err, sizeof(err)) != OSY_OK) {
                osy_test_sandbox_stop(&T.sb);
                return -1;
        }
        return 0;
}

static inline int t_stop(void **state)
{
        (void)state;
        osy_http_client_destroy(T.http);
        osy_test_sandbox_stop(&T.sb);
        memset(&T, 0, sizeof(T));
        return 0;
}

static inline osy_http_method_t t_method(const char *m)
{
        if (!strcmp(m, "POST"))
                return OSY_HTTP_POST;
        if (!strcmp(m, "PUT"))
                return OSY_HTTP_PUT;
        if (!strcmp(m, "DELETE"))
                return OSY_HTTP_DELETE;
        return OSY_HTTP_GET;
}

/**
 * One request to the sandbox. @p token NULL sends no Api-Token.
 * @returns the status; the response stays in @p rs (caller frees).
 */
static inline int t_raw(const char *method, const char *path, const char *token,
                        const char *body, struct osy_http_response *rs)
{
        char url[2048], auth[256], err[OSY_ERRSTR_SIZE];
        snprintf(url, sizeof(url), "%s%s", T.sb.base_url, path);
        snprintf(auth, sizeof(auth), "Api-Token: %s", token ? token : "");
        const char *hdrs[]         = {"Content-Type: application/json",
                              token ? auth : NULL, NULL};
        struct osy_http_request rq = {
            .method   = t_method(method),
            .url      = url,
            .headers  = hdrs,
            .body     = body,
            .body_len = body ? strlen(body) : 0,
        };
        memset(rs, 0, sizeof(*rs));
        if (osy_http_do(T.http, &rq, rs, err, sizeof(err)) != OSY_OK) {
                fprintf(stderr, "%s %s: %s\n", method, path, err);
                return -1;
        }
        return rs->status;
}

/** An AC API call with the default token; @returns the parsed body (or
 *  NULL) and the status in *status. */
static inline cJSON *t_api(const char *method, const char *path,
                           const char *body, int *status)
{
        char full[1024];
        struct osy_http_response rs;
        snprintf(full, sizeof(full), "/ac/t1/api/3%s", path);
        *status  = t_raw(method, full, T_TOKEN, body, &rs);
        cJSON *j = rs.body ? cJSON_Parse(rs.body) : NULL;
        osy_http_response_free(&rs);
        return j;
}

/** A sandbox control call (no token): @p path from "/sandbox/...". */
static inline cJSON *t_ctl(const char *method, const char *path,
                           const char *body, int *status)
{
        struct osy_http_response rs;
        *status  = t_raw(method, path, NULL, body, &rs);
        cJSON *j = rs.body ? cJSON_Parse(rs.body) : NULL;
        osy_http_response_free(&rs);
        return j;
}

/** A control call expected to answer 200; the body is dropped. */
static inline void t_ctl_ok(const char *method, const char *path,
                            const char *body)
{
        int st;
        cJSON *j = t_ctl(method, path, body, &st);
        if (st != 200) {
                char *s = j ? cJSON_PrintUnformatted(j) : NULL;
                fprintf(stderr, "%s %s -> %d %s\n", method, path, st,
                        s ? s : "");
                free(s);
        }
        assert_int_equal(st, 200);
        cJSON_Delete(j);
}

/** The item at a '/'-separated path of object keys and array indexes
 *  ("contacts/0/id"), or NULL. */
static inline const cJSON *t_item(const cJSON *j, const char *path)
{
        const cJSON *cur = j;
        const char *p    = path;
        while (cur && *p) {
                char tok[128];
                size_t n = strcspn(p, "/");
                if (n >= sizeof(tok))
                        return NULL;
                memcpy(tok, p, n);
                tok[n] = '\0';
                p += n + (p[n] == '/');
                char *end = NULL;
                long idx  = strtol(tok, &end, 10);
                if (cJSON_IsArray(cur) && n && end && !*end)
                        cur = cJSON_GetArrayItem(cur, (int)idx);
                else
                        cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
        }
        return cur;
}

static inline const char *t_str(const cJSON *j, const char *path)
{
        const cJSON *v = t_item(j, path);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

/** Asserts the string at @p path equals @p want. */
#define assert_jstr(j, path, want)                                             \
        do {                                                                   \
                const char *got_ = t_str((j), (path));                         \
                if (!got_ || strcmp(got_, (want)))                             \
                        fprintf(stderr, "%s: got %s, want %s\n", (path),       \
                                got_ ? got_ : "(none)", (want));               \
                assert_non_null(got_);                                         \
                assert_string_equal(got_, (want));                             \
        } while (0)

/** "2024-02-28T07:04:13-06:00" at the given offset. */
static inline int t_is_iso(const char *s, const char *offset)
{
        return s && strlen(s) == 25 && s[4] == '-' && s[7] == '-' &&
               s[10] == 'T' && s[13] == ':' && s[16] == ':' &&
               !strcmp(s + 19, offset);
}

/** "2024-02-28 07:04:13" */
static inline int t_is_wall(const char *s)
{
        return s && strlen(s) == 19 && s[10] == ' ' && s[13] == ':';
}

static inline void t_clock_advance(long ms)
{
        char body[64];
        snprintf(body, sizeof(body), "{\"advance_ms\":%ld}", ms);
        t_ctl_ok("POST", "/sandbox/clock", body);
}

#endif /* TEST_SBX_AC_H */
