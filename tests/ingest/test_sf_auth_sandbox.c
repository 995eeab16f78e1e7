/*
 * test_sf_auth_sandbox.c - Salesforce OAuth (common/sf_auth.c) against the
 * sandbox's /services/oauth2/token: the three grants, refresh token
 * rotation, refused credentials, an outage of the token endpoint, and
 * sessions that expire mid-run (refreshed once, then the call repeated).
 */
#include "osy_test.h"
#include "osy_test_sandbox.h"
#include "optsync/sf_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#define LIMITS "/services/data/v59.0/limits"

/* JWT expiry is wall-clock time: osy_sf_call() wants real UTC ms. */
static int64_t wall_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct fx {
        struct osy_test_sandbox sb;
        char key_path[64];   /* the tenant's JWT signing key */
        char other_path[64]; /* a key Salesforce does not know */
        osy_http_client_t *http;
};

/* A fresh RSA key per run, written as PEM; @p pub gets its public half. */
static int make_key(char *path, size_t size, char **pub)
{
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, NULL);
        EVP_PKEY *key     = NULL;
        BIO *b            = NULL;
        BUF_MEM *mem;
        FILE *f;
        int fd;

        if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 ||
            EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048) != 1 ||
            EVP_PKEY_keygen(ctx, &key) != 1)
                return -1;
        EVP_PKEY_CTX_free(ctx);
        snprintf(path, size, "/tmp/optsync-sfkey-XXXXXX");
        if ((fd = mkstemp(path)) < 0 || !(f = fdopen(fd, "w")) ||
            PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) != 1)
                return -1;
        fclose(f);
        if (pub) {
                b = BIO_new(BIO_s_mem());
                PEM_write_bio_PUBKEY(b, key);
                BIO_get_mem_ptr(b, &mem);
                *pub = strndup(mem->data, mem->length);
                BIO_free(b);
        }
        EVP_PKEY_free(key);
        return 0;
}

static int setup(void **state)
{
        struct fx *f = calloc(1, sizeof(*f));
        char *pub    = NULL, *fixture;
        cJSON *root, *sf, *jwt;
        char e[OSY_ERRSTR_SIZE];
        int rc;

        if (!f || make_key(f->key_path, sizeof(f->key_path), &pub) ||
            make_key(f->other_path, sizeof(f->other_path), NULL))
                return -1;
        /* The org knows our public key and two refresh tokens; it rotates
         * them on use, like "refresh token rotation" in Salesforce. */
        root = cJSON_CreateObject();
        sf   = cJSON_AddObjectToObject(
              cJSON_AddObjectToObject(cJSON_AddObjectToObject(root, "tenants"),
                                      "acme"),
              "sf");
        cJSON_AddStringToObject(sf, "refresh_token", "5Aep-rt-one");
        cJSON_AddTrueToObject(sf, "rotate_refresh_token");
        jwt = cJSON_AddObjectToObject(sf, "jwt");
        cJSON_AddStringToObject(jwt, "public_key_pem", pub);
        cJSON_AddStringToObject(jwt, "username", "jwt.user@acme.sandbox");
        fixture = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        free(pub);
        rc = osy_test_sandbox_start(&f->sb, fixture, NULL);
        free(fixture);
        if (rc || osy_http_client_new(&f->http, NULL, e, sizeof(e)))
                return -1;
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fx *f = *state;

        osy_http_client_destroy(f->http);
        osy_test_sandbox_stop(&f->sb);
        unlink(f->key_path);
        unlink(f->other_path);
        free(f);
        return 0;
}

/* A tenant of the given grant against the sandbox org "acme". */
static osy_sf_auth_t *auth_for(struct fx *f, osy_sf_grant_t grant,
                               const char *secret, const char *key_path)
{
        struct osy_tenant t;
        char login[128], e[OSY_ERRSTR_SIZE] = "";
        osy_sf_auth_t *a = NULL;

        memset(&t, 0, sizeof(t));
        snprintf(login, sizeof(login), "%s/sf/acme", f->sb.base_url);
        t.id                  = "acme";
        t.has_sf              = 1;
        t.sf.login_url        = login;
        t.sf.auth             = grant;
        t.sf.client_id        = "sandbox-client-id";
        t.sf.client_secret    = (char *)secret;
        t.sf.username         = "jwt.user@acme.sandbox";
        t.sf.private_key_file = (char *)key_path;
        t.sf.refresh_token    = "5Aep-rt-one";
        if (osy_sf_auth_new(&a, &t, NULL, e, sizeof(e)))
                fail_msg("auth_new: %s", e);
        return a;
}

/* One GET of /limits through osy_sf_call(); @returns its status. */
static int call_limits(struct fx *f, osy_sf_auth_t *a, osy_err_t *errp, char *e,
                       size_t esz)
{
        struct osy_http_response resp = {0};
        int status;

        *errp  = osy_sf_call(a, f->http, OSY_HTTP_GET, LIMITS, NULL, 0,
                             wall_ms(), &resp, e, esz);
        status = resp.status;
        if (*errp || status != 200)
                print_message("limits: err %d status %d: %s\n", *errp, status,
                              *errp ? e : resp.body);
        osy_http_response_free(&resp);
        return status;
}

static int count_requests(struct fx *f, const char *endpoint, int status)
{
        char path[128], *body = NULL;
        cJSON *o, *it;
        int n = 0;

        snprintf(path, sizeof(path), "/sandbox/requests?endpoint=%s", endpoint);
        if (osy_test_sandbox_call(&f->sb, "GET", path, NULL, NULL, &body) !=
            200)
                fail_msg("request log");
        o = cJSON_Parse(body);
        cJSON_ArrayForEach(it, cJSON_GetObjectItem(o, "requests"))
        {
                if (cJSON_GetObjectItem(it, "status")->valueint == status)
                        n++;
        }
        cJSON_Delete(o);
        free(body);
        return n;
}

static void expire_sessions(struct fx *f, const char *body)
{
        assert_int_equal(osy_test_sandbox_call(&f->sb, "POST",
                                               "/sandbox/sf/acme/tokens/expire",
                                               NULL, body, NULL),
                         200);
}

/* Regression: osy_sf_call() cut URLs at 2 KiB, so a long SOQL query (an
 * Id IN (...) lookup of 200 records) reached Salesforce truncated. */
static void long_query_url_is_sent_whole(void **state)
{
        struct fx *f     = *state;
        osy_sf_auth_t *a = auth_for(f, OSY_SF_AUTH_CLIENT_CREDENTIALS,
                                    "sandbox-client-secret", NULL);
        struct osy_http_response resp = {0};
        char e[OSY_ERRSTR_SIZE]       = "";
        size_t cap                    = 16384, len;
        char *path                    = malloc(cap);

        len = (size_t)snprintf(path, cap,
                               "/services/data/v59.0/query?q=SELECT+Id+FROM+"
                               "Contact+WHERE+Id+IN+(");
        for (int i = 0; i < 200; i++)
                len +=
                    (size_t)snprintf(path + len, cap - len,
                                     "%s'0030000000%05dAAA'", i ? "," : "", i);
        snprintf(path + len, cap - len, ")");
        assert_true(strlen(path) > 4096);
        assert_int_equal(osy_sf_call(a, f->http, OSY_HTTP_GET, path, NULL, 0,
                                     wall_ms(), &resp, e, sizeof(e)),
                         OSY_OK);
        /* A cut query would be MALFORMED_QUERY (400); the whole one finds
         * no such records and answers 200 with totalSize 0. */
        if (resp.status != 200)
                print_message("query: %d %s\n", resp.status, resp.body);
        assert_int_equal(resp.status, 200);
        assert_non_null(strstr(resp.body, "\"totalSize\":0"));
        osy_http_response_free(&resp);
        free(path);
        osy_sf_auth_destroy(a);
}

/* ---- the grants --------------------------------------------------------- */

static void client_credentials_grant(void **state)
{
        struct fx *f     = *state;
        osy_sf_auth_t *a = auth_for(f, OSY_SF_AUTH_CLIENT_CREDENTIALS,
                                    "sandbox-client-secret", NULL);
        struct osy_sf_token tok;
        char e[OSY_ERRSTR_SIZE] = "", want[128];
        osy_err_t err;

        assert_int_equal(osy_sf_auth_token(a, wall_ms(), &tok, e, sizeof(e)),
                         OSY_OK);
        snprintf(want, sizeof(want), "%s/sf/acme", f->sb.base_url);
        assert_string_equal(tok.instance_url, want);
        assert_true(strlen(tok.access_token) > 10);
        assert_int_equal(call_limits(f, a, &err, e, sizeof(e)), 200);
        assert_int_equal(err, OSY_OK);
        assert_int_equal(call_limits(f, a, &err, e, sizeof(e)), 200);
        /* One token serves every call. */
        assert_int_equal(osy_sf_auth_fetches(a), 1);
        osy_sf_auth_destroy(a);
}

static void jwt_bearer_grant(void **state)
{
        struct fx *f     = *state;
        osy_sf_auth_t *a = auth_for(f, OSY_SF_AUTH_JWT, NULL, f->key_path);
        char e[OSY_ERRSTR_SIZE] = "";
        osy_err_t err;

        assert_int_equal(call_limits(f, a, &err, e, sizeof(e)), 200);
        assert_int_equal(err, OSY_OK);
        assert_int_equal(osy_sf_auth_fetches(a), 1);
        osy_sf_auth_destroy(a);

        /* Signed with a key the org does not trust: refused for good. */
        a = auth_for(f, OSY_SF_AUTH_JWT, NULL, f->other_path);
        call_limits(f, a, &err, e, sizeof(e));
        assert_int_equal(err, OSY_ERR_AUTH);
        assert_non_null(strstr(e, "invalid_grant"));
        osy_sf_auth_destroy(a);
}

static void refresh_token_grant_follows_rotation(void **state)
{
        struct fx *f            = *state;
        osy_sf_auth_t *a        = auth_for(f, OSY_SF_AUTH_REFRESH_TOKEN,
                                           "sandbox-client-secret", NULL);
        char e[OSY_ERRSTR_SIZE] = "";
        osy_err_t err;

        assert_int_equal(call_limits(f, a, &err, e, sizeof(e)), 200);
        /* The first refresh token died when it was used; only the rotated
         * one the client kept can get the next session. */
        expire_sessions(f, "{}");
        assert_int_equal(call_limits(f, a, &err, e, sizeof(e)), 200);
        assert_int_equal(err, OSY_OK);
        assert_int_equal(osy_sf_auth_fetches(a), 2);
        osy_sf_auth_destroy(a);
}

static void wrong_secret_is_an_auth_error(void **state)
{
        struct fx *f = *state;
        osy_sf_auth_t *a =
            auth_for(f, OSY_SF_AUTH_CLIENT_CREDENTIALS, "not-the-secret", NULL);
        struct osy_sf_token tok;
        char e[OSY_ERRSTR_SIZE] = "";

        assert_int_equal(osy_sf_auth_token(a, wall_ms(), &tok, e, sizeof(e)),
                         OSY_ERR_AUTH);
        assert_non_null(strstr(e, "invalid_client"));
        /* The secret itself never shows in the error. */
        assert_null(strstr(e, "not-the-secret"));
        osy_sf_auth_destroy(a);
}

/* ---- expiry and outages ------------------------------------------------ */

static void expired_session_is_refreshed_once(void **state)
{
        struct fx *f            = *state;
        osy_sf_auth_t *a        = auth_for(f, OSY_SF_AUTH_CLIENT_CREDENTIALS,
                                           "sandbox-client-secret", NULL);
        char e[OSY_ERRSTR_SIZE] = "";
        osy_err_t err;

        assert_int_equal(call_limits(f, a, &err, e, sizeof(e)), 200);
        expire_sessions(f, "{}");
        assert_int_equal(call_limits(f, a, &err, e, sizeof(e)), 200);
        assert_int_equal(osy_sf_auth_fetches(a), 2);
        /* Exactly one call saw the 401. */
        assert_int_equal(count_requests(f, "sf.limits", 401), 1);
        osy_sf_auth_destroy(a);
}

static void idle_session_times_out_by_the_clock(void **state)
{
        struct fx *f     = *state;
        osy_sf_auth_t *a = auth_for(f, OSY_SF_AUTH_JWT, NULL, f->key_path);
        char e[OSY_ERRSTR_SIZE] = "";
        osy_err_t err;

        assert_int_equal(call_limits(f, a, &err, e, sizeof(e)), 200);
        /* Sessions end after 2 h without a call. */
        assert_int_equal(osy_test_sandbox_call(&f->sb, "POST", "/sandbox/clock",
                                               NULL, "{\"advance_ms\":7500000}",
                                               NULL),
                         200);
        assert_int_equal(call_limits(f, a, &err, e, sizeof(e)), 200);
        assert_int_equal(osy_sf_auth_fetches(a), 2);
        osy_sf_auth_destroy(a);
}

static void revoked_refresh_token_stops_with_auth_error(void **state)
{
        struct fx *f            = *state;
        osy_sf_auth_t *a        = auth_for(f, OSY_SF_AUTH_REFRESH_TOKEN,
                                           "sandbox-client-secret", NULL);
        char e[OSY_ERRSTR_SIZE] = "";
        osy_err_t err;

        assert_int_equal(call_limits(f, a, &err, e, sizeof(e)), 200);
        expire_sessions(f, "{\"refresh_tokens\":true}");
        call_limits(f, a, &err, e, sizeof(e));
        /* No loop: one refresh attempt, refused, reported. */
        assert_int_equal(err, OSY_ERR_AUTH);
        assert_non_null(strstr(e, "invalid_grant"));
        assert_int_equal(count_requests(f, "sf.limits", 401), 1);
        osy_sf_auth_destroy(a);
}

static void token_endpoint_outage_is_transient(void **state)
{
        struct fx *f     = *state;
        osy_sf_auth_t *a = auth_for(f, OSY_SF_AUTH_CLIENT_CREDENTIALS,
                                    "sandbox-client-secret", NULL);
        struct osy_sf_token tok;
        char e[OSY_ERRSTR_SIZE] = "";

        assert_int_equal(
            osy_test_sandbox_call(&f->sb, "POST", "/sandbox/faults", NULL,
                                  "{\"endpoint\":\"sf.token\",\"kind\":"
                                  "\"html503\",\"count\":1}",
                                  NULL),
            201);
        assert_int_equal(osy_sf_auth_token(a, wall_ms(), &tok, e, sizeof(e)),
                         OSY_ERR_TRANSIENT);
        /* It passes: the next try gets a token. */
        assert_int_equal(osy_sf_auth_token(a, wall_ms(), &tok, e, sizeof(e)),
                         OSY_OK);
        osy_sf_auth_destroy(a);
}

/* The token answer's instance_url receives every call and the bearer
 * token. Before, any string was taken: "http://evil.example@host" sends
 * to evil.example, "ftp://" or "gopher://" to whatever libcurl speaks. */
static void instance_url_must_be_a_host_of_ours(void **state)
{
        static const char *const bad[] = {
            "http://evil.example@127.0.0.1:9/sf/acme", "ftp://127.0.0.1/sf",
            "http://", "http://127.0.0.1/sf acme"};
        struct fx *f     = *state;
        osy_sf_auth_t *a = auth_for(f, OSY_SF_AUTH_CLIENT_CREDENTIALS,
                                    "sandbox-client-secret", NULL);
        struct osy_sf_token tok;
        char e[OSY_ERRSTR_SIZE] = "", rule[512];

        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                snprintf(rule, sizeof(rule),
                         "{\"endpoint\":\"sf.token\",\"kind\":\"status\","
                         "\"status\":200,\"count\":1,\"body\":{"
                         "\"access_token\":\"00Dforged!token\","
                         "\"instance_url\":\"%s\",\"token_type\":\"Bearer\"}}",
                         bad[i]);
                assert_int_equal(osy_test_sandbox_call(&f->sb, "POST",
                                                       "/sandbox/faults", NULL,
                                                       rule, NULL),
                                 201);
                if (osy_sf_auth_token(a, wall_ms(), &tok, e, sizeof(e)) ==
                    OSY_OK)
                        fail_msg("instance_url %s accepted", bad[i]);
        }
        /* The sandbox's own answer still passes. */
        assert_int_equal(osy_sf_auth_token(a, wall_ms(), &tok, e, sizeof(e)),
                         OSY_OK);
        osy_sf_auth_destroy(a);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(instance_url_must_be_a_host_of_ours,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(long_query_url_is_sent_whole, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(client_credentials_grant, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(jwt_bearer_grant, setup, teardown),
            cmocka_unit_test_setup_teardown(
                refresh_token_grant_follows_rotation, setup, teardown),
            cmocka_unit_test_setup_teardown(wrong_secret_is_an_auth_error,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(expired_session_is_refreshed_once,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(idle_session_times_out_by_the_clock,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                revoked_refresh_token_stops_with_auth_error, setup, teardown),
            cmocka_unit_test_setup_teardown(token_endpoint_outage_is_transient,
                                            setup, teardown),
        };

        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
