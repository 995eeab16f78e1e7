/*
 * test_sbx_sf.c - the simulated Salesforce org through real HTTP: OAuth
 * (client credentials, refresh, JWT bearer), sessions, sObject REST, SOQL
 * queries with paging, sObject Collections, API limits and the scenario
 * controls.
 */
#include "test_sbx_sf.h"

#include "sf_internal.h" /* sf_b64url_encode for signing test JWTs */

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <time.h>

/* Ids the fixture below gets (deterministic, counter based). */
#define C1 "003SB0000000001YAA" /* ann@example.com */
#define C2 "003SB0000000002YAA" /* ANN@example.com, opted out */
#define C3 "003SB0000000003YAA" /* o'brien@example.com */
#define C4 "003SB0000000004YAA" /* a+b@example.com */
#define L5 "00QSB00000000052AA" /* ann@example.com lead */
#define L6 "00QSB00000000062AA" /* converted lead */
#define L7 "00QSB00000000072AA" /* lead7, opted out */

#define FX                                                                     \
        "{\"refresh_token\":\"rt-1\",\"contacts\":["                           \
        "{\"Email\":\"ann@example.com\",\"LastName\":\"Ann\","                 \
        "\"SystemModstamp\":\"2024-01-01T00:00:00Z\","                         \
        "\"LastModifiedDate\":\"2024-01-01T00:00:00Z\"},"                      \
        "{\"Email\":\"ANN@example.com\",\"LastName\":\"Ann2\","                \
        "\"HasOptedOutOfEmail\":true,"                                         \
        "\"SystemModstamp\":\"2024-01-03T00:00:00Z\"},"                        \
        "{\"Email\":\"o'brien@example.com\",\"LastName\":\"OBrien\","          \
        "\"SystemModstamp\":\"2024-01-02T00:00:00Z\"},"                        \
        "{\"Email\":\"a+b@example.com\",\"LastName\":\"Plus\","                \
        "\"SystemModstamp\":\"2024-01-04T00:00:00Z\"}],"                       \
        "\"leads\":["                                                          \
        "{\"Email\":\"ann@example.com\",\"LastName\":\"L\","                   \
        "\"Company\":\"Acme\"},"                                               \
        "{\"Email\":\"conv@example.com\",\"LastName\":\"C\","                  \
        "\"Company\":\"Acme\",\"IsConverted\":true,"                           \
        "\"ConvertedContactId\":\"" C1 "\"},"                                  \
        "{\"Email\":\"lead7@example.com\",\"LastName\":\"Seven\","             \
        "\"Company\":\"Acme\",\"HasOptedOutOfEmail\":true}]}"

static const char *const FORM[] = {
    "Content-Type: application/x-www-form-urlencoded", NULL};

static struct osy_test_sandbox sb;
static char *auth;

static int setup(void **state)
{
        (void)state;
        sf_start(&sb, FX, NULL);
        auth = sf_auth(&sb);
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        free(auth);
        auth = NULL;
        osy_test_sandbox_stop(&sb);
        return 0;
}

static void api(const char *method, const char *path, const char *body,
                struct sfr *r)
{
        const char *const h[] = {auth, "Content-Type: application/json", NULL};
        char full[2048];

        snprintf(full, sizeof(full), "%s%s", SF_API, path);
        sf_call(&sb, method, full, h, body, r);
}

static void token(const char *form, struct sfr *r)
{
        sf_call(&sb, "POST", "/sf/t1/services/oauth2/token", FORM, form, r);
}

static void assert_oauth_error(const struct sfr *r, const char *error,
                               const char *desc)
{
        assert_int_equal(r->status, 400);
        assert_string_equal(sf_str(r->json, "error"), error);
        assert_string_equal(sf_str(r->json, "error_description"), desc);
}

/* ---- OAuth ------------------------------------------------------------------
 */

static void token_client_credentials_shape(void **state)
{
        struct sfr r;
        char inst[128];
        const char *issued;

        (void)state;
        token("grant_type=client_credentials&client_id=sandbox-client-id"
              "&client_secret=sandbox-client-secret",
              &r);
        assert_int_equal(r.status, 200);
        snprintf(inst, sizeof(inst), "%s/sf/t1", sb.base_url);
        assert_string_equal(sf_str(r.json, "instance_url"), inst);
        assert_string_equal(sf_str(r.json, "token_type"), "Bearer");
        assert_non_null(sf_str(r.json, "signature"));
        assert_non_null(sf_str(r.json, "id"));
        issued = sf_str(r.json, "issued_at");
        assert_non_null(issued);
        assert_int_equal(strlen(issued), 13); /* ms since the epoch */
        assert_true(!strncmp(sf_str(r.json, "access_token"), "00DSB", 5));
        /* Salesforce never says when a token expires */
        assert_null(cJSON_GetObjectItem(r.json, "expires_in"));
        assert_null(cJSON_GetObjectItem(r.json, "refresh_token"));
        sfr_free(&r);
        /* the client may authenticate with HTTP Basic instead */
        {
                static const char cred[] =
                    "sandbox-client-id:sandbox-client-secret";
                unsigned char b64[128];
                char basic[160];
                const char *const h[] = {basic, FORM[0], NULL};

                EVP_EncodeBlock(b64, (const unsigned char *)cred,
                                (int)strlen(cred));
                snprintf(basic, sizeof(basic), "Authorization: Basic %s", b64);
                sf_call(&sb, "POST", "/sf/t1/services/oauth2/token", h,
                        "grant_type=client_credentials", &r);
                assert_int_equal(r.status, 200);
                sfr_free(&r);
        }
}

static void token_errors(void **state)
{
        struct sfr r;

        (void)state;
        token("grant_type=client_credentials&client_id=nope"
              "&client_secret=sandbox-client-secret",
              &r);
        assert_oauth_error(&r, "invalid_client_id",
                           "client identifier invalid");
        sfr_free(&r);
        token("grant_type=client_credentials&client_id=sandbox-client-id"
              "&client_secret=wrong",
              &r);
        assert_oauth_error(&r, "invalid_client", "invalid client credentials");
        sfr_free(&r);
        token("grant_type=password&client_id=sandbox-client-id", &r);
        assert_oauth_error(&r, "unsupported_grant_type",
                           "grant type not supported");
        sfr_free(&r);
        sf_call(&sb, "GET", "/sf/t1/services/oauth2/token", NULL, NULL, &r);
        assert_int_equal(r.status, 400);
        sfr_free(&r);
}

static void token_refresh_grant(void **state)
{
        struct sfr r;

        (void)state;
        token("grant_type=refresh_token&client_id=sandbox-client-id"
              "&client_secret=sandbox-client-secret&refresh_token=rt-1",
              &r);
        assert_int_equal(r.status, 200);
        assert_non_null(sf_str(r.json, "access_token"));
        assert_null(cJSON_GetObjectItem(r.json, "refresh_token"));
        sfr_free(&r);
        token("grant_type=refresh_token&client_id=sandbox-client-id"
              "&refresh_token=rt-unknown",
              &r);
        assert_oauth_error(&r, "invalid_grant", "expired access/refresh token");
        sfr_free(&r);
}

static void token_refresh_rotation(void **state)
{
        struct sfr r;
        char form[256];
        char *fresh;

        (void)state;
        sf_control(&sb, "POST", "/sandbox/sf/t1/settings",
                   "{\"rotate_refresh_token\":true}", 200);
        token("grant_type=refresh_token&client_id=sandbox-client-id"
              "&refresh_token=rt-1",
              &r);
        assert_int_equal(r.status, 200);
        fresh = sf_dup(sf_str(r.json, "refresh_token"));
        assert_non_null(fresh);
        assert_string_not_equal(fresh, "rt-1");
        sfr_free(&r);
        /* the old refresh token died with the rotation */
        token("grant_type=refresh_token&client_id=sandbox-client-id"
              "&refresh_token=rt-1",
              &r);
        assert_oauth_error(&r, "invalid_grant", "expired access/refresh token");
        sfr_free(&r);
        snprintf(form, sizeof(form),
                 "grant_type=refresh_token&client_id=sandbox-client-id"
                 "&refresh_token=%s",
                 fresh);
        token(form, &r);
        assert_int_equal(r.status, 200);
        sfr_free(&r);
        free(fresh);
}

/* ---- JWT bearer
 * -------------------------------------------------------------- */

static EVP_PKEY *jwt_key, *other_key;

static char *pubkey_pem(EVP_PKEY *k)
{
        BIO *b = BIO_new(BIO_s_mem());
        char *data, *out;
        long n;

        assert_int_equal(PEM_write_bio_PUBKEY(b, k), 1);
        n   = BIO_get_mem_data(b, &data);
        out = calloc(1, (size_t)n + 1);
        memcpy(out, data, (size_t)n);
        BIO_free(b);
        return out;
}

/* Sign header.claims with RS256 (or leave the signature of @p alg). */
static char *jwt_make(EVP_PKEY *k, const char *alg, const char *iss,
                      const char *sub, const char *aud, long long exp)
{
        char hdr[64], claims[512], *h64, *c64, *s64, *signing, *out;
        unsigned char sig[512];
        size_t siglen   = sizeof(sig), n;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();

        snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\"}", alg);
        snprintf(claims, sizeof(claims),
                 "{\"iss\":\"%s\",\"sub\":\"%s\",\"aud\":\"%s\",\"exp\":%lld}",
                 iss, sub, aud, exp);
        h64 = sf_b64url_encode((const unsigned char *)hdr, strlen(hdr));
        c64 = sf_b64url_encode((const unsigned char *)claims, strlen(claims));
        n   = strlen(h64) + strlen(c64) + 2;
        signing = malloc(n);
        snprintf(signing, n, "%s.%s", h64, c64);
        assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k),
                         1);
        assert_int_equal(EVP_DigestSign(ctx, sig, &siglen,
                                        (const unsigned char *)signing,
                                        strlen(signing)),
                         1);
        s64 = sf_b64url_encode(sig, siglen);
        n   = strlen(signing) + strlen(s64) + 2;
        out = malloc(n);
        snprintf(out, n, "%s.%s", signing, s64);
        EVP_MD_CTX_free(ctx);
        free(h64);
        free(c64);
        free(s64);
        free(signing);
        return out;
}

static int setup_jwt(void **state)
{
        cJSON *fx = cJSON_CreateObject(), *jwt;
        char *pem, *text;

        (void)state;
        jwt_key   = EVP_RSA_gen(2048);
        other_key = EVP_RSA_gen(2048);
        assert_non_null(jwt_key);
        assert_non_null(other_key);
        pem = pubkey_pem(jwt_key);
        cJSON_AddStringToObject(fx, "client_id", "jwt-app");
        jwt = cJSON_AddObjectToObject(fx, "jwt");
        cJSON_AddStringToObject(jwt, "public_key_pem", pem);
        cJSON_AddStringToObject(jwt, "username", "sync@example.com");
        text = cJSON_PrintUnformatted(fx);
        sf_start(&sb, text, NULL);
        free(text);
        free(pem);
        cJSON_Delete(fx);
        return 0;
}

static int teardown_jwt(void **state)
{
        EVP_PKEY_free(jwt_key);
        EVP_PKEY_free(other_key);
        jwt_key = other_key = NULL;
        return teardown(state);
}

static void jwt_token(const char *assertion, struct sfr *r)
{
        size_t n   = strlen(assertion) + 128;
        char *form = malloc(n);

        snprintf(form, n,
                 "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3A"
                 "jwt-bearer&assertion=%s",
                 assertion);
        token(form, r);
        free(form);
}

static void jwt_valid_assertion_gives_session(void **state)
{
        long long now = (long long)time(NULL);
        char *a = jwt_make(jwt_key, "RS256", "jwt-app", "sync@example.com",
                           "https://login.salesforce.com", now + 120);
        struct sfr r;
        char h[256];
        const char *const hdrs[] = {h, NULL};

        (void)state;
        jwt_token(a, &r);
        free(a);
        assert_int_equal(r.status, 200);
        assert_null(cJSON_GetObjectItem(r.json, "refresh_token"));
        snprintf(h, sizeof(h), "Authorization: Bearer %s",
                 sf_str(r.json, "access_token"));
        sfr_free(&r);
        sf_call(&sb, "GET", SF_API "/limits", hdrs, NULL, &r);
        assert_int_equal(r.status, 200);
        sfr_free(&r);
}

static void jwt_rejections(void **state)
{
        long long now = (long long)time(NULL);
        struct {
                EVP_PKEY **key;
                const char *alg, *iss, *sub, *aud;
                long long exp;
                const char *error, *desc;
        } cases[] = {
            {&other_key, "RS256", "jwt-app", "sync@example.com",
             "https://login.salesforce.com", now + 120, "invalid_grant",
             "invalid assertion"},
            {&jwt_key, "RS512", "jwt-app", "sync@example.com",
             "https://login.salesforce.com", now + 120, "invalid_grant",
             "invalid assertion"},
            {&jwt_key, "RS256", "jwt-app", "sync@example.com",
             "https://evil.example.com", now + 120, "invalid_grant",
             "audience is invalid"},
            {&jwt_key, "RS256", "jwt-app", "sync@example.com",
             "https://test.salesforce.com", now - 10, "invalid_grant",
             "expired authorization code"},
            {&jwt_key, "RS256", "jwt-app", "sync@example.com",
             "https://test.salesforce.com", now + 600, "invalid_grant",
             "expired authorization code"},
            {&jwt_key, "RS256", "other-app", "sync@example.com",
             "https://login.salesforce.com", now + 120, "invalid_client_id",
             "client identifier invalid"},
            {&jwt_key, "RS256", "jwt-app", "someone@example.com",
             "https://login.salesforce.com", now + 120, "invalid_grant",
             "user hasn't approved this consumer"},
        };

        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char *a = jwt_make(*cases[i].key, cases[i].alg, cases[i].iss,
                                   cases[i].sub, cases[i].aud, cases[i].exp);
                struct sfr r;

                jwt_token(a, &r);
                free(a);
                assert_oauth_error(&r, cases[i].error, cases[i].desc);
                sfr_free(&r);
        }
        {
                struct sfr r;

                jwt_token("not.a.jwt", &r);
                assert_oauth_error(&r, "invalid_grant", "invalid assertion");
                sfr_free(&r);
        }
}

/* ---- sessions and versions
 * ------------------------------------------------------ */

static void rest_requires_a_session(void **state)
{
        const char *const bad[] = {"Authorization: Bearer 00Dbogus!AQx", NULL};
        struct sfr r;

        (void)state;
        sf_call(&sb, "GET", SF_API "/sobjects/Contact/" C1, NULL, NULL, &r);
        assert_int_equal(r.status, 401);
        assert_string_equal(sf_errcode(&r), "INVALID_SESSION_ID");
        assert_string_equal(sf_errmsg(&r), "Session expired or invalid");
        sfr_free(&r);
        sf_call(&sb, "GET", SF_API "/sobjects/Contact/" C1, bad, NULL, &r);
        assert_int_equal(r.status, 401);
        sfr_free(&r);
}

static void tokens_expire_on_demand(void **state)
{
        struct sfr r;
        char *fresh;

        (void)state;
        api("GET", "/sobjects/Contact/" C1, NULL, &r);
        assert_int_equal(r.status, 200);
        sfr_free(&r);
        sf_control(&sb, "POST", "/sandbox/sf/t1/tokens/expire", NULL, 200);
        api("GET", "/sobjects/Contact/" C1, NULL, &r);
        assert_int_equal(r.status, 401);
        assert_string_equal(sf_errcode(&r), "INVALID_SESSION_ID");
        sfr_free(&r);
        /* re-authenticating works again */
        fresh = sf_auth(&sb);
        free(auth);
        auth = fresh;
        api("GET", "/sobjects/Contact/" C1, NULL, &r);
        assert_int_equal(r.status, 200);
        sfr_free(&r);
}

static void tokens_expire_when_idle(void **state)
{
        struct sfr r;

        (void)state;
        sf_control(&sb, "POST", "/sandbox/sf/t1/settings",
                   "{\"session_timeout_ms\":60000}", 200);
        /* each use restarts the inactivity timer */
        sf_advance(&sb, 50000);
        api("GET", "/limits", NULL, &r);
        assert_int_equal(r.status, 200);
        sfr_free(&r);
        sf_advance(&sb, 50000);
        api("GET", "/limits", NULL, &r);
        assert_int_equal(r.status, 200);
        sfr_free(&r);
        sf_advance(&sb, 61000);
        api("GET", "/limits", NULL, &r);
        assert_int_equal(r.status, 401);
        sfr_free(&r);
}

static void version_gate(void **state)
{
        const char *const h[] = {auth, NULL};
        struct sfr r;

        (void)state;
        sf_call(&sb, "GET", "/sf/t1/services/data/v59/limits", h, NULL, &r);
        assert_int_equal(r.status, 404);
        assert_string_equal(sf_errcode(&r), "NOT_FOUND");
        assert_string_equal(sf_errmsg(&r),
                            "The requested resource does not exist");
        sfr_free(&r);
        sf_call(&sb, "GET", "/sf/t1/services/data/v12.0/limits", h, NULL, &r);
        assert_int_equal(r.status, 404);
        sfr_free(&r);
        sf_call(&sb, "GET", "/sf/t1/services/data/v66.0/limits", h, NULL, &r);
        assert_int_equal(r.status, 200);
        sfr_free(&r);
}

/* ---- sObject rows
 * ------------------------------------------------------------------ */

static void sobject_get_shape(void **state)
{
        struct sfr r;
        const cJSON *attr;

        (void)state;
        api("GET", "/sobjects/Contact/" C1, NULL, &r);
        assert_int_equal(r.status, 200);
        attr = cJSON_GetObjectItem(r.json, "attributes");
        assert_string_equal(sf_str(attr, "type"), "Contact");
        assert_string_equal(sf_str(attr, "url"),
                            "/services/data/v59.0/sobjects/Contact/" C1);
        assert_string_equal(sf_str(r.json, "Id"), C1);
        assert_string_equal(sf_str(r.json, "Email"), "ann@example.com");
        assert_true(
            cJSON_IsFalse(cJSON_GetObjectItem(r.json, "HasOptedOutOfEmail")));
        assert_string_equal(sf_str(r.json, "SystemModstamp"),
                            "2024-01-01T00:00:00.000+0000");
        assert_null(cJSON_GetObjectItem(r.json, "IsConverted"));
        sfr_free(&r);
        /* 15-char ids work too; ?fields= narrows the answer */
        api("GET",
            "/sobjects/Lead/00QSB0000000006?fields=IsConverted,"
            "ConvertedContactId",
            NULL, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(sf_str(r.json, "Id"), L6);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "IsConverted")));
        assert_string_equal(sf_str(r.json, "ConvertedContactId"), C1);
        assert_null(cJSON_GetObjectItem(r.json, "Email"));
        sfr_free(&r);
        api("GET", "/sobjects/Lead/" L6 "?fields=Nope", NULL, &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(sf_errcode(&r), "INVALID_FIELD");
        sfr_free(&r);
}

static void sobject_not_found_shapes(void **state)
{
        struct sfr r;

        (void)state;
        api("GET", "/sobjects/Contact/003SB0000000999", NULL, &r);
        assert_int_equal(r.status, 404);
        assert_string_equal(sf_errcode(&r), "NOT_FOUND");
        sfr_free(&r);
        api("GET", "/sobjects/Contact/" L5, NULL, &r); /* a Lead id */
        assert_int_equal(r.status, 404);
        sfr_free(&r);
        api("GET", "/sobjects/Contact/bad-id", NULL, &r);
        assert_int_equal(r.status, 404);
        assert_non_null(strstr(sf_errmsg(&r), "external ID"));
        sfr_free(&r);
        api("GET", "/sobjects/Account/001SB0000000001", NULL, &r);
        assert_int_equal(r.status, 404);
        sfr_free(&r);
        api("PUT", "/sobjects/Contact/" C1, "{}", &r);
        assert_int_equal(r.status, 405);
        assert_string_equal(sf_errcode(&r), "METHOD_NOT_ALLOWED");
        sfr_free(&r);
}

static void sobject_patch_updates_and_bumps(void **state)
{
        struct sfr r;

        (void)state;
        api("PATCH", "/sobjects/Contact/" C1, "{\"HasOptedOutOfEmail\":true}",
            &r);
        assert_int_equal(r.status, 204);
        assert_true(!r.body || !r.body[0]);
        sfr_free(&r);
        api("GET", "/sobjects/Contact/" C1, NULL, &r);
        assert_true(
            cJSON_IsTrue(cJSON_GetObjectItem(r.json, "HasOptedOutOfEmail")));
        /* both timestamps moved past the fixture's 2024 values */
        assert_string_not_equal(sf_str(r.json, "LastModifiedDate"),
                                "2024-01-01T00:00:00.000+0000");
        assert_string_equal(sf_str(r.json, "LastModifiedDate"),
                            sf_str(r.json, "SystemModstamp"));
        sfr_free(&r);
}

static void sobject_patch_errors(void **state)
{
        struct sfr r;

        (void)state;
        api("PATCH", "/sobjects/Contact/" C1, "{\"Foo\":1}", &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(sf_errcode(&r), "INVALID_FIELD");
        assert_string_equal(sf_errmsg(&r),
                            "No such column 'Foo' on sobject of type Contact");
        sfr_free(&r);
        api("PATCH", "/sobjects/Contact/" C1, "{\"SystemModstamp\":null}", &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(sf_errcode(&r), "INVALID_FIELD_FOR_INSERT_UPDATE");
        sfr_free(&r);
        api("PATCH", "/sobjects/Contact/" C1, "{\"HasOptedOutOfEmail\":", &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(sf_errcode(&r), "JSON_PARSER_ERROR");
        sfr_free(&r);
        api("PATCH", "/sobjects/Contact/" C1,
            "{\"HasOptedOutOfEmail\":\"yes\"}", &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(sf_errcode(&r), "JSON_PARSER_ERROR");
        sfr_free(&r);
        api("PATCH", "/sobjects/Contact/" C1, "{\"Email\":\"not-an-email\"}",
            &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(sf_errcode(&r), "INVALID_EMAIL_ADDRESS");
        sfr_free(&r);
        /* nothing was written */
        api("GET", "/sobjects/Contact/" C1, NULL, &r);
        assert_string_equal(sf_str(r.json, "Email"), "ann@example.com");
        sfr_free(&r);
}

static void converted_lead_cannot_be_updated(void **state)
{
        struct sfr r;

        (void)state;
        api("PATCH", "/sobjects/Lead/" L6, "{\"HasOptedOutOfEmail\":true}", &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(sf_errcode(&r), "CANNOT_UPDATE_CONVERTED_LEAD");
        assert_string_equal(sf_errmsg(&r), "cannot reference converted lead");
        sfr_free(&r);
}

static void deleted_record_is_gone(void **state)
{
        struct sfr r;

        (void)state;
        sf_control(&sb, "POST", "/sandbox/sf/t1/records/" C3 "/delete", NULL,
                   200);
        api("PATCH", "/sobjects/Contact/" C3, "{\"HasOptedOutOfEmail\":true}",
            &r);
        assert_int_equal(r.status, 404);
        assert_string_equal(sf_errcode(&r), "ENTITY_IS_DELETED");
        sfr_free(&r);
        sf_query(&sb, auth, "SELECT Id FROM Contact WHERE Id = '" C3 "'", &r);
        assert_int_equal(r.status, 200);
        assert_int_equal(cJSON_GetObjectItem(r.json, "totalSize")->valueint, 0);
        sfr_free(&r);
}

static void patch_via_http_method_override(void **state)
{
        struct sfr r;

        (void)state;
        api("POST", "/sobjects/Contact/" C1 "?_HttpMethod=PATCH",
            "{\"FirstName\":\"Annie\"}", &r);
        assert_int_equal(r.status, 204);
        sfr_free(&r);
        api("GET", "/sobjects/Contact/" C1 "?fields=FirstName", NULL, &r);
        assert_string_equal(sf_str(r.json, "FirstName"), "Annie");
        sfr_free(&r);
}

static void sobject_create(void **state)
{
        struct sfr r;

        (void)state;
        api("POST", "/sobjects/Contact",
            "{\"LastName\":\"New\",\"Email\":\"new@example.com\"}", &r);
        assert_int_equal(r.status, 201);
        assert_string_equal(sf_str(r.json, "id"), "003SB0000000008YAA");
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "success")));
        sfr_free(&r);
        api("POST", "/sobjects/Lead", "{\"LastName\":\"NoCompany\"}", &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(sf_errcode(&r), "REQUIRED_FIELD_MISSING");
        sfr_free(&r);
}

/* ---- SOQL
 * ---------------------------------------------------------------------- */

static int total_size(const struct sfr *r)
{
        const cJSON *t = cJSON_GetObjectItem(r->json, "totalSize");

        return cJSON_IsNumber(t) ? t->valueint : -1;
}

static const char *record_id(const struct sfr *r, int i)
{
        return sf_str(
            cJSON_GetArrayItem(cJSON_GetObjectItem(r->json, "records"), i),
            "Id");
}

static void query_email_matches_case_insensitively(void **state)
{
        struct sfr r;
        const cJSON *rec;

        (void)state;
        sf_query(&sb, auth,
                 "SELECT Id, Email, HasOptedOutOfEmail FROM Contact "
                 "WHERE Email = 'Ann@Example.com'",
                 &r);
        assert_int_equal(r.status, 200);
        assert_int_equal(total_size(&r), 2); /* duplicates by email */
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "done")));
        assert_null(cJSON_GetObjectItem(r.json, "nextRecordsUrl"));
        assert_string_equal(record_id(&r, 0), C1);
        assert_string_equal(record_id(&r, 1), C2);
        rec = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "records"), 0);
        /* the SELECT list, in order, plus attributes */
        assert_string_equal(rec->child->string, "attributes");
        assert_string_equal(rec->child->next->string, "Id");
        assert_string_equal(rec->child->next->next->string, "Email");
        assert_null(cJSON_GetObjectItem(rec, "LastName"));
        assert_non_null(r.limit_info);
        sfr_free(&r);
}

static void query_leads_unconverted(void **state)
{
        struct sfr r;

        (void)state;
        sf_query(&sb, auth,
                 "SELECT Id, IsConverted, ConvertedContactId FROM Lead WHERE "
                 "Email IN ('ann@example.com', 'conv@example.com')",
                 &r);
        assert_int_equal(total_size(&r), 2); /* converted leads stay */
        sfr_free(&r);
        sf_query(&sb, auth,
                 "select Id from lead where Email in ('ann@example.com', "
                 "'conv@example.com') and IsConverted = false",
                 &r);
        assert_int_equal(r.status, 200);
        assert_int_equal(total_size(&r), 1);
        assert_string_equal(record_id(&r, 0), L5);
        sfr_free(&r);
}

static void query_ids_15_and_18(void **state)
{
        struct sfr r;

        (void)state;
        sf_query(&sb, auth,
                 "SELECT Id FROM Contact WHERE Id IN ('003SB0000000003', '" C1
                 "', '" C1 "')",
                 &r);
        assert_int_equal(r.status, 200);
        assert_int_equal(total_size(&r), 2);
        assert_string_equal(record_id(&r, 0), C1);
        assert_string_equal(record_id(&r, 1), C3);
        sfr_free(&r);
        sf_query(&sb, auth, "SELECT Id FROM Contact WHERE Id = 'xyz'", &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(sf_errcode(&r), "INVALID_QUERY_FILTER_OPERATOR");
        sfr_free(&r);
}

static void query_string_escapes(void **state)
{
        struct sfr r;

        (void)state;
        sf_query(&sb, auth,
                 "SELECT Id FROM Contact WHERE Email = 'o\\'brien@example.com'",
                 &r);
        assert_int_equal(r.status, 200);
        assert_int_equal(total_size(&r), 1);
        assert_string_equal(record_id(&r, 0), C3);
        sfr_free(&r);
        /* an unescaped quote ends the literal */
        sf_query(&sb, auth,
                 "SELECT Id FROM Contact WHERE Email = 'o'brien@example.com'",
                 &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(sf_errcode(&r), "MALFORMED_QUERY");
        assert_non_null(strstr(sf_errmsg(&r), "ERROR at Row:1:Column:"));
        sfr_free(&r);
        sf_query(&sb, auth, "SELECT Id FROM Contact WHERE Email = 'a\\qb'", &r);
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(sf_errmsg(&r), "Illegal character sequence"));
        sfr_free(&r);
        /* '+' percent-encoded stays a plus */
        sf_query(&sb, auth,
                 "SELECT Id FROM Contact WHERE Email = 'a+b@example.com'", &r);
        assert_int_equal(total_size(&r), 1);
        assert_string_equal(record_id(&r, 0), C4);
        sfr_free(&r);
}

static void query_modstamp_order_limit(void **state)
{
        struct sfr r;

        (void)state;
        sf_query(&sb, auth,
                 "SELECT Id, SystemModstamp FROM Contact WHERE SystemModstamp "
                 "> 2024-01-01T12:00:00Z ORDER BY SystemModstamp DESC LIMIT 2",
                 &r);
        assert_int_equal(r.status, 200);
        assert_int_equal(total_size(&r), 2);
        assert_string_equal(record_id(&r, 0), C4); /* 01-04 */
        assert_string_equal(record_id(&r, 1), C2); /* 01-03 */
        sfr_free(&r);
        sf_query(&sb, auth,
                 "SELECT Id FROM Contact WHERE SystemModstamp > "
                 "2024-01-02T01:00:00+02:00 ORDER BY SystemModstamp",
                 &r);
        assert_int_equal(total_size(&r), 3); /* 01-01T23:00Z onwards */
        assert_string_equal(record_id(&r, 0), C3);
        sfr_free(&r);
        sf_query(&sb, auth,
                 "SELECT Id FROM Contact WHERE SystemModstamp > "
                 "'2024-01-01T00:00:00Z'",
                 &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(sf_errcode(&r), "INVALID_QUERY_FILTER_OPERATOR");
        sfr_free(&r);
}

static void query_error_shapes(void **state)
{
        const char *const h[] = {auth, NULL};
        struct sfr r;

        (void)state;
        sf_call(&sb, "GET", SF_API "/query", h, NULL, &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(sf_errcode(&r), "MALFORMED_QUERY");
        sfr_free(&r);
        sf_query(&sb, auth, "SELECT Id, Nope FROM Contact", &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(sf_errcode(&r), "INVALID_FIELD");
        assert_non_null(strstr(sf_errmsg(&r), "ERROR at Row:1:Column:12"));
        assert_non_null(
            strstr(sf_errmsg(&r), "No such column 'Nope' on entity 'Contact'"));
        sfr_free(&r);
        sf_query(&sb, auth, "SELECT Id FROM Widget", &r);
        assert_string_equal(sf_errcode(&r), "INVALID_TYPE");
        sfr_free(&r);
        sf_query(&sb, auth,
                 "SELECT Id FROM Contact WHERE Email = 'a@x.com' AND "
                 "IsDeleted = false OR Email = 'b@x.com'",
                 &r);
        assert_string_equal(sf_errcode(&r), "MALFORMED_QUERY");
        sfr_free(&r);
        sf_query(&sb, auth, "SELECT Id FROM Contact WHERE", &r);
        assert_string_equal(sf_errcode(&r), "MALFORMED_QUERY");
        assert_non_null(strstr(sf_errmsg(&r), "<EOF>"));
        sfr_free(&r);
}

static void query_pages_with_next_records_url(void **state)
{
        const char *const h[] = {auth, NULL};
        struct sfr r;
        char next[256], path[300];
        int seen = 0, pages = 0;

        (void)state;
        sf_control(&sb, "POST", "/sandbox/sf/t1/settings",
                   "{\"query_batch_size\":3}", 200);
        sf_query(&sb, auth, "SELECT Id FROM Contact", &r);
        for (;;) {
                const char *n = sf_str(r.json, "nextRecordsUrl");

                assert_int_equal(r.status, 200);
                assert_int_equal(total_size(&r), 4);
                seen +=
                    cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "records"));
                pages++;
                if (!n) {
                        assert_true(
                            cJSON_IsTrue(cJSON_GetObjectItem(r.json, "done")));
                        break;
                }
                assert_true(cJSON_IsFalse(cJSON_GetObjectItem(r.json, "done")));
                assert_true(!strncmp(n, "/services/data/v59.0/query/01g", 30));
                assert_string_equal(n + strlen(n) - 2, "-3");
                snprintf(next, sizeof(next), "%s", n);
                sfr_free(&r);
                snprintf(path, sizeof(path), "/sf/t1%s", next);
                sf_call(&sb, "GET", path, h, NULL, &r);
        }
        sfr_free(&r);
        assert_int_equal(seen, 4);
        assert_int_equal(pages, 2);
        /* the cursor closed with its last page */
        sf_call(&sb, "GET", path, h, NULL, &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(sf_errcode(&r), "INVALID_QUERY_LOCATOR");
        sfr_free(&r);
        sf_call(&sb, "GET", SF_API "/query/01gBOGUS-2000", h, NULL, &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(sf_errcode(&r), "INVALID_QUERY_LOCATOR");
        sfr_free(&r);
}

static void query_cursor_expires(void **state)
{
        const char *h[] = {auth, NULL};
        struct sfr r;
        char path[300];

        (void)state;
        sf_control(&sb, "POST", "/sandbox/sf/t1/settings",
                   "{\"query_batch_size\":1}", 200);
        sf_query(&sb, auth, "SELECT Id FROM Contact", &r);
        snprintf(path, sizeof(path), "/sf/t1%s",
                 sf_str(r.json, "nextRecordsUrl"));
        sfr_free(&r);
        sf_advance(&sb, 3LL * 24 * 3600 * 1000); /* cursors live 2 days */
        free(auth);
        auth = sf_auth(&sb);
        h[0] = auth;
        sf_call(&sb, "GET", path, h, NULL, &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(sf_errcode(&r), "INVALID_QUERY_LOCATOR");
        sfr_free(&r);
}

static void query_batch_size_header(void **state)
{
        const char *h[] = {NULL, "Sforce-Query-Options: batchSize=200", NULL};
        size_t cap = 64 * 260, n = 0;
        char *fx = malloc(cap);
        struct sfr r;

        (void)state;
        /* a fresh org with 250 contacts and the default 2000 batch */
        osy_test_sandbox_stop(&sb);
        n += (size_t)snprintf(fx + n, cap - n, "{\"contacts\":[");
        for (int i = 0; i < 250; i++)
                n += (size_t)snprintf(fx + n, cap - n,
                                      "%s{\"Email\":\"c%d@example.com\"}",
                                      i ? "," : "", i);
        snprintf(fx + n, cap - n, "]}");
        sf_start(&sb, fx, NULL);
        free(fx);
        free(auth);
        auth = sf_auth(&sb);
        h[0] = auth;
        /* '+' for spaces, as browsers send forms */
        sf_call(&sb, "GET", SF_API "/query?q=SELECT+Id+FROM+Contact", h, NULL,
                &r);
        assert_int_equal(r.status, 200);
        assert_int_equal(total_size(&r), 250);
        assert_int_equal(
            cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "records")), 200);
        assert_non_null(strstr(sf_str(r.json, "nextRecordsUrl"), "-200"));
        sfr_free(&r);
        sf_query(&sb, auth, "SELECT Id FROM Contact", &r);
        assert_int_equal(
            cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "records")), 250);
        sfr_free(&r);
}

/* ---- sObject Collections
 * --------------------------------------------------------- */

static const cJSON *result(const struct sfr *r, int i)
{
        return cJSON_GetArrayItem(r->json, i);
}

static const char *result_code(const struct sfr *r, int i)
{
        return sf_str(
            cJSON_GetArrayItem(cJSON_GetObjectItem(result(r, i), "errors"), 0),
            "statusCode");
}

static void collections_partial_success_in_order(void **state)
{
        struct sfr r;

        (void)state;
        api("PATCH", "/composite/sobjects",
            "{\"allOrNone\":false,\"records\":["
            "{\"attributes\":{\"type\":\"Contact\"},\"id\":\"" C1
            "\",\"HasOptedOutOfEmail\":true},"
            "{\"attributes\":{\"type\":\"Lead\"},\"id\":\"" L6
            "\",\"HasOptedOutOfEmail\":true},"
            "{\"attributes\":{\"type\":\"Lead\"},\"id\":\"00Q-bad\","
            "\"HasOptedOutOfEmail\":true},"
            "{\"attributes\":{\"type\":\"Lead\"},\"id\":\"" L5
            "\",\"HasOptedOutOfEmail\":true}]}",
            &r);
        assert_int_equal(r.status, 200);
        assert_int_equal(cJSON_GetArraySize(r.json), 4);
        assert_string_equal(sf_str(result(&r, 0), "id"), C1);
        assert_true(
            cJSON_IsTrue(cJSON_GetObjectItem(result(&r, 0), "success")));
        assert_int_equal(
            cJSON_GetArraySize(cJSON_GetObjectItem(result(&r, 0), "errors")),
            0);
        assert_true(
            cJSON_IsFalse(cJSON_GetObjectItem(result(&r, 1), "success")));
        assert_string_equal(result_code(&r, 1), "CANNOT_UPDATE_CONVERTED_LEAD");
        /* failed items carry no id: match by position */
        assert_null(cJSON_GetObjectItem(result(&r, 1), "id"));
        assert_non_null(cJSON_GetObjectItem(
            cJSON_GetArrayItem(cJSON_GetObjectItem(result(&r, 1), "errors"), 0),
            "fields"));
        assert_string_equal(result_code(&r, 2), "MALFORMED_ID");
        assert_string_equal(sf_str(result(&r, 3), "id"), L5);
        sfr_free(&r);
        api("GET", "/sobjects/Lead/" L5, NULL, &r);
        assert_true(
            cJSON_IsTrue(cJSON_GetObjectItem(r.json, "HasOptedOutOfEmail")));
        sfr_free(&r);
}

static void collections_all_or_none_rolls_back(void **state)
{
        struct sfr r;

        (void)state;
        api("PATCH", "/composite/sobjects",
            "{\"allOrNone\":true,\"records\":["
            "{\"attributes\":{\"type\":\"Contact\"},\"id\":\"" C1
            "\",\"HasOptedOutOfEmail\":true},"
            "{\"attributes\":{\"type\":\"Contact\"},\"id\":\"" C3
            "\",\"Email\":\"broken\"}]}",
            &r);
        assert_int_equal(r.status, 200);
        assert_false(
            cJSON_IsTrue(cJSON_GetObjectItem(result(&r, 0), "success")));
        assert_string_equal(result_code(&r, 0),
                            "ALL_OR_NONE_OPERATION_ROLLED_BACK");
        assert_string_equal(sf_str(result(&r, 0), "id"), C1);
        assert_string_equal(result_code(&r, 1), "INVALID_EMAIL_ADDRESS");
        sfr_free(&r);
        api("GET", "/sobjects/Contact/" C1, NULL, &r);
        assert_true(
            cJSON_IsFalse(cJSON_GetObjectItem(r.json, "HasOptedOutOfEmail")));
        sfr_free(&r);
}

static void collections_limits(void **state)
{
        char *body = malloc(64 * 210);
        size_t n   = 0;
        struct sfr r;

        (void)state;
        n += (size_t)snprintf(body, 64 * 210, "{\"records\":[");
        for (int i = 0; i < 201; i++)
                n +=
                    (size_t)snprintf(body + n, 64 * 210 - n,
                                     "%s{\"attributes\":{\"type\":\"Contact\"},"
                                     "\"id\":\"" C1 "\"}",
                                     i ? "," : "");
        snprintf(body + n, 64 * 210 - n, "]}");
        api("PATCH", "/composite/sobjects", body, &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(sf_errcode(&r), "EXCEEDED_ID_LIMIT");
        sfr_free(&r);
        /* 11 runs of one type: C,L,C,L,... */
        n = (size_t)snprintf(body, 64 * 210, "{\"records\":[");
        for (int i = 0; i < 11; i++)
                n += (size_t)snprintf(body + n, 64 * 210 - n,
                                      "%s{\"attributes\":{\"type\":\"%s\"},"
                                      "\"id\":\"%s\"}",
                                      i ? "," : "", i % 2 ? "Lead" : "Contact",
                                      i % 2 ? L5 : C1);
        snprintf(body + n, 64 * 210 - n, "]}");
        api("PATCH", "/composite/sobjects", body, &r);
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(sf_errmsg(&r), "more than 10 chunks"));
        sfr_free(&r);
        free(body);
        api("PATCH", "/composite/sobjects",
            "{\"records\":[{\"id\":\"" C1 "\",\"HasOptedOutOfEmail\":true}]}",
            &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(sf_errcode(&r), "INVALID_TYPE");
        sfr_free(&r);
        api("PATCH", "/composite/sobjects",
            "{\"records\":[{\"attributes\":{\"type\":\"Contact\"},\"id\":\"" C1
            "\",\"Bogus\":true}]}",
            &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(sf_errcode(&r), "INVALID_FIELD");
        sfr_free(&r);
        api("GET", "/composite/sobjects", NULL, &r);
        assert_int_equal(r.status, 405);
        sfr_free(&r);
}

static void unable_to_lock_row_for_chosen_ids(void **state)
{
        static const char body[] =
            "{\"records\":[{\"attributes\":{\"type\":\"Contact\"},\"id\":\"" C2
            "\",\"HasOptedOutOfEmail\":false},"
            "{\"attributes\":{\"type\":\"Contact\"},\"id\":\"" C1
            "\",\"HasOptedOutOfEmail\":true}]}";
        struct sfr r;

        (void)state;
        sf_control(&sb, "POST", "/sandbox/sf/t1/lock_rows",
                   "{\"ids\":[\"" C2 "\"],\"count\":2}", 200);
        api("PATCH", "/composite/sobjects", body, &r);
        assert_string_equal(result_code(&r, 0), "UNABLE_TO_LOCK_ROW");
        assert_true(
            cJSON_IsTrue(cJSON_GetObjectItem(result(&r, 1), "success")));
        sfr_free(&r);
        api("PATCH", "/sobjects/Contact/" C2, "{\"HasOptedOutOfEmail\":false}",
            &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(sf_errcode(&r), "UNABLE_TO_LOCK_ROW");
        assert_non_null(strstr(sf_errmsg(&r), C2));
        sfr_free(&r);
        /* the lock is gone after two writes */
        api("PATCH", "/composite/sobjects", body, &r);
        assert_true(
            cJSON_IsTrue(cJSON_GetObjectItem(result(&r, 0), "success")));
        sfr_free(&r);
}

/* ---- limits
 * ----------------------------------------------------------------------- */

static void api_usage_counted_and_reported(void **state)
{
        struct sfr r;

        (void)state;
        api("GET", "/limits", NULL, &r);
        assert_string_equal(r.limit_info, "api-usage=1/15000");
        assert_int_equal(
            cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "DailyApiRequests"),
                                "Max")
                ->valueint,
            15000);
        assert_int_equal(
            cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "DailyApiRequests"),
                                "Remaining")
                ->valueint,
            14999);
        assert_non_null(
            cJSON_GetObjectItem(r.json, "StreamingApiConcurrentClients"));
        sfr_free(&r);
        /* errors count too; the token endpoint does not */
        api("GET", "/sobjects/Contact/bad", NULL, &r);
        assert_string_equal(r.limit_info, "api-usage=2/15000");
        sfr_free(&r);
        free(auth);
        auth = sf_auth(&sb);
        sf_query(&sb, auth, "SELECT Id FROM Contact", &r);
        assert_string_equal(r.limit_info, "api-usage=3/15000");
        sfr_free(&r);
}

static void request_limit_exceeded(void **state)
{
        struct sfr r;

        (void)state;
        sf_control(&sb, "POST", "/sandbox/sf/t1/limits",
                   "{\"used\":99,\"max\":100}", 200);
        api("GET", "/sobjects/Contact/" C1, NULL, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.limit_info, "api-usage=100/100");
        sfr_free(&r);
        api("GET", "/sobjects/Contact/" C1, NULL, &r);
        assert_int_equal(r.status, 403);
        assert_string_equal(sf_errcode(&r), "REQUEST_LIMIT_EXCEEDED");
        assert_string_equal(sf_errmsg(&r), "TotalRequests Limit exceeded.");
        assert_string_equal(r.limit_info, "api-usage=100/100");
        sfr_free(&r);
        sf_control(&sb, "POST", "/sandbox/sf/t1/limits", "{\"used\":0}", 200);
        sf_control(&sb, "POST", "/sandbox/sf/t1/concurrent_limit",
                   "{\"count\":1}", 200);
        api("GET", "/sobjects/Contact/" C1, NULL, &r);
        assert_int_equal(r.status, 403);
        assert_non_null(strstr(sf_errmsg(&r), "ConcurrentRequests"));
        sfr_free(&r);
        api("GET", "/sobjects/Contact/" C1, NULL, &r);
        assert_int_equal(r.status, 200);
        sfr_free(&r);
}

static void fault_rules_reach_sf_endpoints(void **state)
{
        struct sfr r;

        (void)state;
        sf_control(&sb, "POST", "/sandbox/faults",
                   "{\"endpoint\":\"sf.query\",\"kind\":\"json503\","
                   "\"count\":1}",
                   201);
        api("GET", "/sobjects/Contact/" C1, NULL, &r);
        assert_int_equal(r.status, 200);
        sfr_free(&r);
        sf_query(&sb, auth, "SELECT Id FROM Contact", &r);
        assert_int_equal(r.status, 503);
        sfr_free(&r);
        sf_query(&sb, auth, "SELECT Id FROM Contact", &r);
        assert_int_equal(r.status, 200);
        sfr_free(&r);
}

/* ---- scenario controls
 * ------------------------------------------------------------ */

static void ui_optout_bumps_both_timestamps(void **state)
{
        struct sfr r;
        char lmd[64];

        (void)state;
        sf_control(&sb, "POST", "/sandbox/sf/t1/records/" C1 "/optout",
                   "{\"value\":true}", 200);
        api("GET", "/sobjects/Contact/" C1, NULL, &r);
        assert_true(
            cJSON_IsTrue(cJSON_GetObjectItem(r.json, "HasOptedOutOfEmail")));
        assert_string_not_equal(sf_str(r.json, "LastModifiedDate"),
                                "2024-01-01T00:00:00.000+0000");
        snprintf(lmd, sizeof(lmd), "%s", sf_str(r.json, "LastModifiedDate"));
        sfr_free(&r);
        /* automation: SystemModstamp moves, LastModifiedDate does not */
        sf_advance(&sb, 5000);
        sf_control(&sb, "POST", "/sandbox/sf/t1/records/" C1 "/automation",
                   NULL, 200);
        api("GET", "/sobjects/Contact/" C1, NULL, &r);
        assert_string_equal(sf_str(r.json, "LastModifiedDate"), lmd);
        assert_string_not_equal(sf_str(r.json, "SystemModstamp"), lmd);
        sfr_free(&r);
}

static void convert_lead_to_new_contact(void **state)
{
        struct sfr r;
        char cid[32];

        (void)state;
        sf_call(&sb, "POST", "/sandbox/sf/t1/leads/" L7 "/convert", NULL, "{}",
                &r);
        assert_int_equal(r.status, 200);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "new_contact")));
        snprintf(cid, sizeof(cid), "%s", sf_str(r.json, "contact_id"));
        assert_true(!strncmp(cid, "003", 3));
        sfr_free(&r);
        api("GET", "/sobjects/Lead/" L7, NULL, &r);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "IsConverted")));
        assert_string_equal(sf_str(r.json, "ConvertedContactId"), cid);
        assert_non_null(sf_str(r.json, "ConvertedDate"));
        sfr_free(&r);
        /* the standard mapping copied the opt-out into the new contact */
        {
                char path[128];

                snprintf(path, sizeof(path), "/sobjects/Contact/%s", cid);
                api("GET", path, NULL, &r);
        }
        assert_true(
            cJSON_IsTrue(cJSON_GetObjectItem(r.json, "HasOptedOutOfEmail")));
        assert_string_equal(sf_str(r.json, "Email"), "lead7@example.com");
        sfr_free(&r);
}

static void convert_lead_into_existing_contact_keeps_its_optout(void **state)
{
        struct sfr r;

        (void)state;
        sf_call(&sb, "POST", "/sandbox/sf/t1/leads/" L7 "/convert", NULL,
                "{\"contact_id\":\"" C1 "\"}", &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(sf_str(r.json, "contact_id"), C1);
        sfr_free(&r);
        /* Salesforce does not copy Email Opt Out into an existing contact */
        api("GET", "/sobjects/Contact/" C1, NULL, &r);
        assert_true(
            cJSON_IsFalse(cJSON_GetObjectItem(r.json, "HasOptedOutOfEmail")));
        sfr_free(&r);
        /* converting twice is refused */
        sf_call(&sb, "POST", "/sandbox/sf/t1/leads/" L7 "/convert", NULL, "{}",
                &r);
        assert_int_equal(r.status, 400);
        sfr_free(&r);
}

static void control_creates_records_with_deterministic_ids(void **state)
{
        struct sfr r;

        (void)state;
        sf_call(&sb, "POST", "/sandbox/sf/t1/records", NULL,
                "{\"type\":\"Lead\",\"Email\":\"made@example.com\","
                "\"LastName\":\"M\",\"Company\":\"X\"}",
                &r);
        assert_int_equal(r.status, 201);
        assert_string_equal(sf_str(r.json, "id"), "00QSB00000000082AA");
        sfr_free(&r);
        sf_query(&sb, auth,
                 "SELECT Id FROM Lead WHERE Email = 'MADE@example.com'", &r);
        assert_int_equal(total_size(&r), 1);
        sfr_free(&r);
        sf_call(&sb, "POST", "/sandbox/sf/t1/records", NULL,
                "{\"type\":\"Account\"}", &r);
        assert_int_equal(r.status, 400);
        sfr_free(&r);
}

static void state_dump_lists_records(void **state)
{
        struct sfr r;
        const cJSON *sf;

        (void)state;
        sf_call(&sb, "GET", "/sandbox/state?tenant=t1", NULL, NULL, &r);
        assert_int_equal(r.status, 200);
        sf = cJSON_GetObjectItem(r.json, "sf");
        assert_non_null(sf);
        assert_int_equal(
            cJSON_GetArraySize(cJSON_GetObjectItem(sf, "contacts")), 4);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(sf, "leads")),
                         3);
        sfr_free(&r);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(token_client_credentials_shape,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(token_errors, setup, teardown),
            cmocka_unit_test_setup_teardown(token_refresh_grant, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(token_refresh_rotation, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(jwt_valid_assertion_gives_session,
                                            setup_jwt, teardown_jwt),
            cmocka_unit_test_setup_teardown(jwt_rejections, setup_jwt,
                                            teardown_jwt),
            cmocka_unit_test_setup_teardown(rest_requires_a_session, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(tokens_expire_on_demand, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(tokens_expire_when_idle, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(version_gate, setup, teardown),
            cmocka_unit_test_setup_teardown(sobject_get_shape, setup, teardown),
            cmocka_unit_test_setup_teardown(sobject_not_found_shapes, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(sobject_patch_updates_and_bumps,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(sobject_patch_errors, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(converted_lead_cannot_be_updated,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(deleted_record_is_gone, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(patch_via_http_method_override,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(sobject_create, setup, teardown),
            cmocka_unit_test_setup_teardown(
                query_email_matches_case_insensitively, setup, teardown),
            cmocka_unit_test_setup_teardown(query_leads_unconverted, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(query_ids_15_and_18, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(query_string_escapes, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(query_modstamp_order_limit, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(query_error_shapes, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(query_pages_with_next_records_url,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(query_cursor_expires, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(query_batch_size_header, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(
                collections_partial_success_in_order, setup, teardown),
            cmocka_unit_test_setup_teardown(collections_all_or_none_rolls_back,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(collections_limits, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(unable_to_lock_row_for_chosen_ids,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(api_usage_counted_and_reported,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(request_limit_exceeded, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(fault_rules_reach_sf_endpoints,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(ui_optout_bumps_both_timestamps,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(convert_lead_to_new_contact, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(
                convert_lead_into_existing_contact_keeps_its_optout, setup,
                teardown),
            cmocka_unit_test_setup_teardown(
                control_creates_records_with_deterministic_ids, setup,
                teardown),
            cmocka_unit_test_setup_teardown(state_dump_lists_records, setup,
                                            teardown),
        };

        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
