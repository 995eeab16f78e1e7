/*
 * test_sbx_sf_jwt.c - the JWT bearer check of the simulated token
 * endpoint: base64url, RS256 signatures (a key pair generated here, never
 * stored), each claim rule and the OAuth error each failure maps to.
 */
#include "osy_test.h"

#include "sf_internal.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1700000000LL

static EVP_PKEY *key, *other;
static EVP_PKEY *pub; /* key's public half, as the sandbox loads it */

static char *pem_of(EVP_PKEY *k)
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

static int group_setup(void **state)
{
        char *pem;

        (void)state;
        key   = EVP_RSA_gen(2048);
        other = EVP_RSA_gen(2048);
        if (!key || !other)
                return -1;
        pem = pem_of(key);
        pub = sf_jwt_load_pubkey(pem, strlen(pem));
        free(pem);
        return pub ? 0 : -1;
}

static int group_teardown(void **state)
{
        (void)state;
        EVP_PKEY_free(key);
        EVP_PKEY_free(other);
        EVP_PKEY_free(pub);
        return 0;
}

/* header.claims signed with @p k (RS256 digest whatever "alg" says). */
static char *sign(EVP_PKEY *k, const char *hdr, const char *claims)
{
        char *h64 = sf_b64url_encode((const unsigned char *)hdr, strlen(hdr));
        char *c64 =
            sf_b64url_encode((const unsigned char *)claims, strlen(claims));
        size_t n = strlen(h64) + strlen(c64) + 2, siglen = 512;
        char *signing = malloc(n), *s64, *out;
        unsigned char sig[512];
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();

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

static const char *const AUDS[] = {"https://login.salesforce.com",
                                   "https://test.salesforce.com"};

static enum sf_jwt_result check(const char *jwt)
{
        struct sf_jwt_expect e = {.iss         = "app",
                                  .sub         = "Sync@Example.com",
                                  .aud         = AUDS,
                                  .aud_cnt     = 2,
                                  .now_s       = NOW,
                                  .max_ahead_s = 180};

        return sf_jwt_verify(jwt, pub, &e);
}

static enum sf_jwt_result claims(EVP_PKEY *k, const char *alg, const char *body)
{
        char hdr[64];
        char *jwt;
        enum sf_jwt_result r;

        snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\"}", alg);
        jwt = sign(k, hdr, body);
        r   = check(jwt);
        free(jwt);
        return r;
}

#define GOOD                                                                   \
        "{\"iss\":\"app\",\"sub\":\"sync@example.com\","                       \
        "\"aud\":\"https://login.salesforce.com\",\"exp\":1700000120}"

static void base64url_round_trip(void **state)
{
        unsigned char in[64], *dec;
        size_t n;

        (void)state;
        for (size_t i = 0; i < sizeof(in); i++)
                in[i] = (unsigned char)(i * 37 + 250);
        for (size_t len = 0; len <= sizeof(in); len++) {
                char *enc = sf_b64url_encode(in, len);

                assert_null(strchr(enc, '='));
                assert_null(strchr(enc, '+'));
                assert_null(strchr(enc, '/'));
                dec = sf_b64url_decode(enc, strlen(enc), &n);
                assert_non_null(dec);
                assert_int_equal(n, len);
                assert_memory_equal(dec, in, len);
                free(dec);
                free(enc);
        }
        assert_null(sf_b64url_decode("ab+c", 4, &n));  /* not url-safe */
        assert_null(sf_b64url_decode("abcde", 5, &n)); /* impossible length */
}

static void valid_assertion(void **state)
{
        (void)state;
        assert_int_equal(claims(key, "RS256", GOOD), SF_JWT_OK);
        /* aud may be an array; a trailing slash is fine */
        assert_int_equal(
            claims(key, "RS256",
                   "{\"iss\":\"app\",\"sub\":\"sync@example.com\",\"aud\":"
                   "[\"x\",\"https://test.salesforce.com/\"],\"exp\":"
                   "1700000060}"),
            SF_JWT_OK);
}

static void signature_must_match_the_key(void **state)
{
        char *jwt = sign(key, "{\"alg\":\"RS256\"}", GOOD);
        char *dot;

        (void)state;
        assert_int_equal(claims(other, "RS256", GOOD), SF_JWT_BAD_SIGNATURE);
        /* a tampered claims segment breaks the signature */
        dot    = strchr(jwt, '.');
        dot[3] = dot[3] == 'A' ? 'B' : 'A';
        assert_int_not_equal(check(jwt), SF_JWT_OK);
        free(jwt);
        assert_int_equal(claims(key, "none", GOOD), SF_JWT_BAD_ALG);
        assert_int_equal(claims(key, "HS256", GOOD), SF_JWT_BAD_ALG);
}

static void claim_rules(void **state)
{
        (void)state;
        assert_int_equal(
            claims(key, "RS256",
                   "{\"iss\":\"other\",\"sub\":\"sync@example.com\","
                   "\"aud\":\"https://login.salesforce.com\",\"exp\":"
                   "1700000120}"),
            SF_JWT_BAD_ISS);
        assert_int_equal(
            claims(key, "RS256",
                   "{\"iss\":\"app\",\"sub\":\"sync@example.com\","
                   "\"aud\":\"https://evil.example.com\",\"exp\":1700000120}"),
            SF_JWT_BAD_AUD);
        assert_int_equal(
            claims(key, "RS256",
                   "{\"iss\":\"app\",\"sub\":\"sync@example.com\","
                   "\"aud\":\"https://login.salesforce.com\",\"exp\":"
                   "1700000000}"),
            SF_JWT_EXPIRED);
        assert_int_equal(
            claims(key, "RS256",
                   "{\"iss\":\"app\",\"sub\":\"sync@example.com\","
                   "\"aud\":\"https://login.salesforce.com\",\"exp\":"
                   "1700000181}"),
            SF_JWT_EXP_TOO_FAR);
        assert_int_equal(
            claims(key, "RS256",
                   "{\"iss\":\"app\",\"sub\":\"someone@example.com\","
                   "\"aud\":\"https://login.salesforce.com\",\"exp\":"
                   "1700000120}"),
            SF_JWT_BAD_SUB);
        assert_int_equal(claims(key, "RS256",
                                "{\"iss\":\"app\",\"sub\":\"sync@example.com\","
                                "\"aud\":\"https://login.salesforce.com\"}"),
                         SF_JWT_MALFORMED);
}

static void malformed_tokens(void **state)
{
        (void)state;
        assert_int_equal(check(NULL), SF_JWT_MALFORMED);
        assert_int_equal(check("abc"), SF_JWT_MALFORMED);
        assert_int_equal(check("a.b"), SF_JWT_MALFORMED);
        assert_int_equal(check("a.b.c.d"), SF_JWT_MALFORMED);
        assert_int_equal(check("!!.??.xx"), SF_JWT_MALFORMED);
        /* segments that are JSON but not objects */
        assert_int_equal(check("WzFd.WzJd.AAAA"), SF_JWT_MALFORMED);
}

static void public_keys_and_certificates_load(void **state)
{
        X509 *x      = X509_new();
        BIO *b       = BIO_new(BIO_s_mem());
        EVP_PKEY *ec = EVP_EC_gen("P-256");
        EVP_PKEY *k;
        char *data, *pem;
        long n;

        (void)state;
        /* a self-signed certificate, as a connected app stores it */
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), 0);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_pubkey(x, key);
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                   (const unsigned char *)"sbx", -1, -1, 0);
        X509_set_issuer_name(x, X509_get_subject_name(x));
        assert_true(X509_sign(x, key, EVP_sha256()) > 0);
        assert_int_equal(PEM_write_bio_X509(b, x), 1);
        n = BIO_get_mem_data(b, &data);
        k = sf_jwt_load_pubkey(data, (size_t)n);
        assert_non_null(k);
        assert_int_equal(EVP_PKEY_eq(k, pub), 1);
        EVP_PKEY_free(k);
        BIO_free(b);
        X509_free(x);
        assert_null(sf_jwt_load_pubkey("garbage", 7));
        assert_null(sf_jwt_load_pubkey(NULL, 0));
        /* RS256 needs an RSA key */
        pem = pem_of(ec);
        assert_null(sf_jwt_load_pubkey(pem, strlen(pem)));
        free(pem);
        EVP_PKEY_free(ec);
}

static void oauth_errors_for_each_failure(void **state)
{
        const char *err, *desc;

        (void)state;
        sf_jwt_oauth_error(SF_JWT_BAD_SIGNATURE, &err, &desc);
        assert_string_equal(err, "invalid_grant");
        assert_string_equal(desc, "invalid assertion");
        sf_jwt_oauth_error(SF_JWT_BAD_AUD, &err, &desc);
        assert_string_equal(desc, "audience is invalid");
        sf_jwt_oauth_error(SF_JWT_EXPIRED, &err, &desc);
        assert_string_equal(desc, "expired authorization code");
        sf_jwt_oauth_error(SF_JWT_BAD_ISS, &err, &desc);
        assert_string_equal(err, "invalid_client_id");
        sf_jwt_oauth_error(SF_JWT_BAD_SUB, &err, &desc);
        assert_string_equal(desc, "user hasn't approved this consumer");
        sf_jwt_oauth_error(SF_JWT_OK, &err, &desc);
        assert_null(err);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(base64url_round_trip),
            cmocka_unit_test(valid_assertion),
            cmocka_unit_test(signature_must_match_the_key),
            cmocka_unit_test(claim_rules),
            cmocka_unit_test(malformed_tokens),
            cmocka_unit_test(public_keys_and_certificates_load),
            cmocka_unit_test(oauth_errors_for_each_failure),
        };

        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
