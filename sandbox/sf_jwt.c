/*
 * sf_jwt.c - the OAuth 2.0 JWT bearer assertion check of the simulated
 * token endpoint: RS256 signature (OpenSSL) against the connected app's
 * public key or certificate, then the iss/aud/exp/sub claims.
 */
#include "sf_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* The value of a base64url character, or -1. */
static int b64url_val(int c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '-')
                return 62;
        if (c == '_')
                return 63;
        return -1;
}

/* base64url (RFC 4648 section 5) without padding, as JWS uses. */
unsigned char *sf_b64url_decode(const char *in, size_t len, size_t *outlen)
{
        unsigned char *out;
        uint32_t acc = 0;
        int bits     = 0;
        size_t o     = 0;

        /* Padding is not part of the JWS encoding, but tolerate it. */
        while (len && in[len - 1] == '=')
                len--;
        /* a lone trailing character cannot encode a byte */
        if (len % 4 == 1)
                return NULL;
        out = sf_xcalloc(1, len * 3 / 4 + 3);
        for (size_t i = 0; i < len; i++) {
                int v = b64url_val((unsigned char)in[i]);

                if (v < 0) {
                        free(out);
                        return NULL;
                }
                acc = (acc << 6) | (uint32_t)v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[o++] = (unsigned char)(acc >> bits);
                }
        }
        *outlen = o;
        out[o]  = '\0';
        return out;
}

char *sf_b64url_encode(const unsigned char *in, size_t len)
{
        static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
                                  "qrstuvwxyz0123456789-_";
        char *out               = sf_xcalloc(1, len * 4 / 3 + 4);
        size_t o = 0, i = 0;

        /* three bytes make four characters; the tail is unpadded */
        for (; i + 2 < len; i += 3) {
                uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
                             in[i + 2];

                out[o++] = tbl[v >> 18];
                out[o++] = tbl[(v >> 12) & 63];
                out[o++] = tbl[(v >> 6) & 63];
                out[o++] = tbl[v & 63];
        }
        if (i < len) {
                uint32_t v = (uint32_t)in[i] << 16;

                if (i + 1 < len)
                        v |= (uint32_t)in[i + 1] << 8;
                out[o++] = tbl[v >> 18];
                out[o++] = tbl[(v >> 12) & 63];
                if (i + 1 < len)
                        out[o++] = tbl[(v >> 6) & 63];
        }
        out[o] = '\0';
        return out;
}

EVP_PKEY *sf_jwt_load_pubkey(const char *pem, size_t len)
{
        BIO *bio;
        EVP_PKEY *key = NULL;

        if (!pem || !len)
                return NULL;
        bio = BIO_new_mem_buf(pem, (int)len);
        if (!bio)
                return NULL;
        /* A connected app holds a certificate; tests use a bare key. */
        if (strstr(pem, "BEGIN CERTIFICATE")) {
                X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);

                if (x) {
                        key = X509_get_pubkey(x);
                        X509_free(x);
                }
        } else {
                key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
        }
        BIO_free(bio);
        if (key && EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
                EVP_PKEY_free(key);
                key = NULL;
        }
        return key;
}

/* Decode one base64url JSON segment. */
static cJSON *segment_json(const char *s, size_t len)
{
        size_t n;
        unsigned char *raw = sf_b64url_decode(s, len, &n);
        cJSON *j;

        if (!raw)
                return NULL;
        j = cJSON_ParseWithLength((const char *)raw, n);
        free(raw);
        if (j && !cJSON_IsObject(j)) {
                cJSON_Delete(j);
                return NULL;
        }
        return j;
}

/* aud: a string or an array, one of them accepted. */
static int aud_ok(const cJSON *aud, const struct sf_jwt_expect *e)
{
        const cJSON *a;

        if (cJSON_IsString(aud)) {
                for (size_t i = 0; i < e->aud_cnt; i++) {
                        size_t n = strlen(e->aud[i]);

                        /* a trailing slash is harmless */
                        if (!strncmp(aud->valuestring, e->aud[i], n) &&
                            (aud->valuestring[n] == '\0' ||
                             !strcmp(aud->valuestring + n, "/")))
                                return 1;
                }
                return 0;
        }
        if (!cJSON_IsArray(aud))
                return 0;
        cJSON_ArrayForEach(a, aud)
        {
                if (cJSON_IsString(a) && aud_ok(a, e))
                        return 1;
        }
        return 0;
}

/* RS256: RSASSA-PKCS1-v1_5 with SHA-256 over "header.claims". */
static int signature_ok(const char *signed_part, size_t signed_len,
                        const char *sig64, size_t sig64_len, EVP_PKEY *key)
{
        size_t siglen;
        unsigned char *sig = sf_b64url_decode(sig64, sig64_len, &siglen);
        EVP_MD_CTX *ctx    = EVP_MD_CTX_new();
        int ok             = 0;

        if (sig && ctx && key &&
            EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
            EVP_DigestVerify(ctx, sig, siglen,
                             (const unsigned char *)signed_part,
                             signed_len) == 1)
                ok = 1;
        EVP_MD_CTX_free(ctx);
        free(sig);
        return ok;
}

/* Checks in Salesforce's order: shape, alg, the app (iss) whose
 * key checks the signature, then aud, exp and the user (sub). */
enum sf_jwt_result sf_jwt_verify(const char *jwt, EVP_PKEY *key,
                                 const struct sf_jwt_expect *e)
{
        const char *dot1, *dot2;
        cJSON *hdr = NULL, *claims = NULL;
        const cJSON *alg, *iss, *sub, *exp;
        enum sf_jwt_result r = SF_JWT_MALFORMED;

        /* exactly three segments: header.claims.signature */
        if (!jwt || !(dot1 = strchr(jwt, '.')) ||
            !(dot2 = strchr(dot1 + 1, '.')) || strchr(dot2 + 1, '.'))
                goto out;
        hdr    = segment_json(jwt, (size_t)(dot1 - jwt));
        claims = segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
        if (!hdr || !claims)
                goto out;
        alg = cJSON_GetObjectItemCaseSensitive(hdr, "alg");
        if (!cJSON_IsString(alg) || strcmp(alg->valuestring, "RS256")) {
                r = SF_JWT_BAD_ALG;
                goto out;
        }
        /* iss names the connected app, whose key checks the signature. */
        iss = cJSON_GetObjectItemCaseSensitive(claims, "iss");
        if (!cJSON_IsString(iss) || !e->iss ||
            strcmp(iss->valuestring, e->iss)) {
                r = SF_JWT_BAD_ISS;
                goto out;
        }
        if (!signature_ok(jwt, (size_t)(dot2 - jwt), dot2 + 1, strlen(dot2 + 1),
                          key)) {
                r = SF_JWT_BAD_SIGNATURE;
                goto out;
        }
        if (!aud_ok(cJSON_GetObjectItemCaseSensitive(claims, "aud"), e)) {
                r = SF_JWT_BAD_AUD;
                goto out;
        }
        /* exp: required, in the future, at most max_ahead_s away */
        exp = cJSON_GetObjectItemCaseSensitive(claims, "exp");
        if (!cJSON_IsNumber(exp)) {
                r = SF_JWT_MALFORMED;
                goto out;
        }
        if ((int64_t)exp->valuedouble <= e->now_s) {
                r = SF_JWT_EXPIRED;
                goto out;
        }
        if ((int64_t)exp->valuedouble > e->now_s + e->max_ahead_s) {
                r = SF_JWT_EXP_TOO_FAR;
                goto out;
        }
        /* sub: the pre-authorised user (usernames ignore case) */
        sub = cJSON_GetObjectItemCaseSensitive(claims, "sub");
        if (!cJSON_IsString(sub) || !e->sub ||
            strcasecmp(sub->valuestring, e->sub)) {
                r = SF_JWT_BAD_SUB;
                goto out;
        }
        r = SF_JWT_OK;
out:
        cJSON_Delete(hdr);
        cJSON_Delete(claims);
        return r;
}

/* The token endpoint's error for each failure. */
void sf_jwt_oauth_error(enum sf_jwt_result r, const char **error,
                        const char **description)
{
        *error = "invalid_grant";
        switch (r) {
        case SF_JWT_OK:
                *error       = NULL;
                *description = NULL;
                break;
        case SF_JWT_BAD_ISS:
                *error       = "invalid_client_id";
                *description = "client identifier invalid";
                break;
        case SF_JWT_BAD_AUD:
                *description = "audience is invalid";
                break;
        case SF_JWT_EXPIRED:
        case SF_JWT_EXP_TOO_FAR:
                /* what Salesforce answers for an exp outside its window */
                *description = "expired authorization code";
                break;
        case SF_JWT_BAD_SUB:
                *description = "user hasn't approved this consumer";
                break;
        default:
                *description = "invalid assertion";
                break;
        }
}
