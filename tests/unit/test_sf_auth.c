/*
 * test_sf_auth.c - Salesforce OAuth without a server: each flow demands
 * what it needs, and the JWT bearer assertion is a valid RS256 token with
 * the claims Salesforce checks.
 */
#include "osy_test.h"
#include "optsync/sf_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

struct keys {
        char priv_path[64];
        EVP_PKEY *key;
};

/* A fresh RSA key per run: no private key is ever committed. */
static int make_key(void **state)
{
        struct keys *k    = calloc(1, sizeof(*k));
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, NULL);
        if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 ||
            EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048) != 1 ||
            EVP_PKEY_keygen(ctx, &k->key) != 1)
                return -1;
        EVP_PKEY_CTX_free(ctx);
        snprintf(k->priv_path, sizeof(k->priv_path), "/tmp/optsync-jwt-XXXXXX");
        int fd  = mkstemp(k->priv_path);
        FILE *f = fdopen(fd, "w");
        if (!f ||
            PEM_write_PrivateKey(f, k->key, NULL, NULL, 0, NULL, NULL) != 1)
                return -1;
        fclose(f);
        *state = k;
        return 0;
}

static int free_key(void **state)
{
        struct keys *k = *state;
        unlink(k->priv_path);
        EVP_PKEY_free(k->key);
        free(k);
        return 0;
}

/* Decodes base64url (no padding) into a malloc()ed buffer. */
static unsigned char *b64url_decode(const char *in, size_t len, size_t *out_len)
{
        size_t padded      = (len + 3) / 4 * 4;
        char *tmp          = calloc(1, padded + 1);
        unsigned char *out = calloc(1, padded);
        for (size_t i = 0; i < padded; i++)
                tmp[i] = i < len ? (in[i] == '-'   ? '+'
                                    : in[i] == '_' ? '/'
                                                   : in[i])
                                 : '=';
        int n = EVP_DecodeBlock(out, (unsigned char *)tmp, (int)padded);
        free(tmp);
        *out_len = (size_t)n - (padded - len); /* minus the '=' we added */
        return out;
}

static void jwt_is_valid_rs256_with_claims(void **state)
{
        struct keys *k = *state;
        char err[OSY_ERRSTR_SIZE], *jwt = NULL;
        assert_int_equal(
            osy_sf_jwt_assertion(k->priv_path, "consumer-key", "sync@acme.com",
                                 "https://login.salesforce.com", 1700000000,
                                 &jwt, err, sizeof(err)),
            OSY_OK);
        char *dot1 = strchr(jwt, '.');
        char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
        assert_non_null(dot2);
        assert_null(strchr(jwt, '=')); /* no padding */
        assert_null(strchr(jwt, '+'));

        size_t n;
        unsigned char *hdr = b64url_decode(jwt, (size_t)(dot1 - jwt), &n);
        assert_memory_equal(hdr, "{\"alg\":\"RS256\"}", n);
        unsigned char *claims =
            b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &n);
        cJSON *c = cJSON_ParseWithLength((char *)claims, n);
        assert_non_null(c);
        assert_string_equal(cJSON_GetObjectItem(c, "iss")->valuestring,
                            "consumer-key");
        assert_string_equal(cJSON_GetObjectItem(c, "sub")->valuestring,
                            "sync@acme.com");
        assert_string_equal(cJSON_GetObjectItem(c, "aud")->valuestring,
                            "https://login.salesforce.com");
        /* exp within Salesforce's 3-minute window */
        assert_int_equal((long)cJSON_GetObjectItem(c, "exp")->valuedouble,
                         1700000000L + 180);

        size_t sig_len;
        unsigned char *sig =
            b64url_decode(dot2 + 1, strlen(dot2 + 1), &sig_len);
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        assert_int_equal(
            EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->key), 1);
        assert_int_equal(EVP_DigestVerify(md, sig, sig_len,
                                          (unsigned char *)jwt,
                                          (size_t)(dot2 - jwt)),
                         1);
        /* A changed claim no longer verifies. */
        jwt[dot1 - jwt + 2] ^= 1;
        assert_int_not_equal(EVP_DigestVerify(md, sig, sig_len,
                                              (unsigned char *)jwt,
                                              (size_t)(dot2 - jwt)),
                             1);
        EVP_MD_CTX_free(md);
        cJSON_Delete(c);
        free(hdr);
        free(claims);
        free(sig);
        free(jwt);
}

static void jwt_with_bad_key_file_is_invalid(void **state)
{
        char err[OSY_ERRSTR_SIZE], *jwt = NULL;
        (void)state;
        assert_int_equal(osy_sf_jwt_assertion("/nonexistent/key.pem", "a", "b",
                                              "c", 0, &jwt, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_null(jwt);
        assert_non_null(strstr(err, "/nonexistent/key.pem"));
}

static struct osy_tenant tenant_with(osy_sf_grant_t grant)
{
        struct osy_tenant t = {.id = "acme", .has_sf = 1};
        t.sf.auth           = grant;
        t.sf.login_url      = "http://127.0.0.1:1";
        t.sf.client_id      = "cid";
        return t;
}

static void each_flow_requires_its_fields(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        osy_sf_auth_t *a = NULL;
        (void)state;
        struct osy_tenant t = tenant_with(OSY_SF_AUTH_CLIENT_CREDENTIALS);
        assert_int_equal(osy_sf_auth_new(&a, &t, NULL, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(err, "client_secret"));
        t.sf.client_secret = "s3cret";
        assert_int_equal(osy_sf_auth_new(&a, &t, NULL, err, sizeof(err)),
                         OSY_OK);
        assert_string_equal(osy_sf_auth_api_version(a),
                            OSY_SF_DEFAULT_API_VERSION);
        assert_int_equal(osy_sf_auth_fetches(a), 0); /* nothing fetched yet */
        osy_sf_auth_destroy(a);

        t = tenant_with(OSY_SF_AUTH_REFRESH_TOKEN);
        assert_int_equal(osy_sf_auth_new(&a, &t, NULL, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(err, "refresh_token"));

        t = tenant_with(OSY_SF_AUTH_JWT);
        assert_int_equal(osy_sf_auth_new(&a, &t, NULL, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(err, "username"));
        t.sf.username         = "sync@acme.com";
        t.sf.private_key_file = "/nonexistent.pem";
        assert_int_equal(osy_sf_auth_new(&a, &t, NULL, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(err, "private_key_file"));

        struct osy_tenant none = {.id = "acme"};
        assert_int_equal(osy_sf_auth_new(&a, &none, NULL, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_null(a);
        osy_sf_auth_destroy(NULL);
}

static void jwt_flow_loads_key_at_start(void **state)
{
        struct keys *k = *state;
        char err[OSY_ERRSTR_SIZE];
        osy_sf_auth_t *a      = NULL;
        struct osy_tenant t   = tenant_with(OSY_SF_AUTH_JWT);
        t.sf.username         = "sync@acme.com";
        t.sf.private_key_file = k->priv_path;
        t.sf.api_version      = "60.0";
        assert_int_equal(osy_sf_auth_new(&a, &t, NULL, err, sizeof(err)),
                         OSY_OK);
        assert_string_equal(osy_sf_auth_api_version(a), "60.0");
        osy_sf_auth_destroy(a);
}

static void unreachable_token_endpoint_is_transient(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        osy_sf_auth_t *a = NULL;
        struct osy_sf_token tok;
        struct osy_http_opts http = {.connect_timeout_ms = 500,
                                     .timeout_ms         = 1000};
        (void)state;
        struct osy_tenant t = tenant_with(OSY_SF_AUTH_CLIENT_CREDENTIALS);
        t.sf.client_secret  = "s3cret";
        assert_int_equal(osy_sf_auth_new(&a, &t, &http, err, sizeof(err)),
                         OSY_OK);
        /* Port 1 on loopback refuses: a passing condition, retried. */
        assert_int_equal(osy_sf_auth_token(a, 0, &tok, err, sizeof(err)),
                         OSY_ERR_TRANSIENT);
        assert_null(strstr(err, "s3cret"));
        osy_sf_auth_destroy(a);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(jwt_is_valid_rs256_with_claims, make_key,
                                    free_key),
    cmocka_unit_test(jwt_with_bad_key_file_is_invalid),
    cmocka_unit_test(each_flow_requires_its_fields),
    cmocka_unit_test_setup_teardown(jwt_flow_loads_key_at_start, make_key,
                                    free_key),
    cmocka_unit_test(unreachable_token_endpoint_is_transient),
};
OSY_TEST_MAIN(tests, NULL, NULL)
