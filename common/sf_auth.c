/*
 * sf_auth.c - Salesforce OAuth 2.0 token handling for one tenant: the
 * three grant types, one shared token, and the refresh-once-on-401 rule
 * that Salesforce's missing expires_in makes necessary.
 */
#include "optsync/sf_auth.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "optsync/log.h"

#define FORM_MAX 16384
#define JWT_LIFETIME_S 180 /* Salesforce accepts exp at most 3 min ahead */

struct osy_sf_auth_s {
        pthread_mutex_t lock; /* guards everything below */
        osy_http_client_t *http;
        osy_sf_grant_t flow;
        char *token_url; /* <login_url>/services/oauth2/token */
        char *login_url;
        char *api_version;
        char *client_id;
        char *client_secret;
        char *username;
        char *refresh_token;
        EVP_PKEY *key; /* JWT signing key */
        char *key_path;
        struct osy_sf_token token;
        int have_token;
        uint64_t fetches;
};

static void wipe_free(char *s)
{
        if (!s)
                return;
        for (volatile char *p = s; *p; p++)
                *p = 0;
        free(s);
}

void osy_sf_auth_destroy(osy_sf_auth_t *a)
{
        if (!a)
                return;
        osy_http_client_destroy(a->http);
        free(a->token_url);
        free(a->login_url);
        free(a->api_version);
        free(a->client_id);
        wipe_free(a->client_secret);
        free(a->username);
        wipe_free(a->refresh_token);
        free(a->key_path);
        EVP_PKEY_free(a->key);
        memset(&a->token, 0, sizeof(a->token));
        pthread_mutex_destroy(&a->lock);
        free(a);
}

static char *dup_or_null(const char *s)
{
        return s ? strdup(s) : NULL;
}

static EVP_PKEY *load_private_key(const char *path, char *errstr,
                                  size_t errstr_size)
{
        FILE *f = fopen(path, "r");
        EVP_PKEY *key;

        if (!f) {
                osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                            "sf.private_key_file: cannot open %s", path);
                return NULL;
        }
        key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
        if (!key || EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
                EVP_PKEY_free(key);
                osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                            "sf.private_key_file: %s is not a PEM RSA "
                            "private key",
                            path);
                return NULL;
        }
        return key;
}

osy_err_t osy_sf_auth_new(osy_sf_auth_t **ap, const struct osy_tenant *tenant,
                          const struct osy_http_opts *http, char *errstr,
                          size_t errstr_size)
{
        const struct osy_tenant_sf *sf = &tenant->sf;
        struct osy_http_opts defaults  = {0};
        osy_sf_auth_t *a               = NULL;
        osy_err_t err                  = OSY_ERR_INVALID;
        const char *missing            = NULL;

        *ap = NULL;
        if (!tenant->has_sf)
                return osy_err_set(err, errstr, errstr_size,
                                   "tenant %s: no \"sf\" block", tenant->id);
        if (!sf->login_url)
                missing = "login_url";
        else if (!sf->client_id)
                missing = "client_id";
        else if (sf->auth == OSY_SF_AUTH_CLIENT_CREDENTIALS &&
                 !sf->client_secret)
                missing = "client_secret";
        else if (sf->auth == OSY_SF_AUTH_JWT && !sf->username)
                missing = "username";
        else if (sf->auth == OSY_SF_AUTH_JWT && !sf->private_key_file)
                missing = "private_key_file";
        else if (sf->auth == OSY_SF_AUTH_REFRESH_TOKEN && !sf->refresh_token)
                missing = "refresh_token";
        if (missing)
                return osy_err_set(err, errstr, errstr_size,
                                   "tenant %s: sf.%s is required for auth "
                                   "%d",
                                   tenant->id, missing, (int)sf->auth);

        a = calloc(1, sizeof(*a));
        if (!a)
                return OSY_ERR_NOMEM;
        pthread_mutex_init(&a->lock, NULL);
        a->flow      = sf->auth;
        size_t n     = strlen(sf->login_url) + sizeof("/services/oauth2/token");
        a->token_url = malloc(n);
        if (a->token_url)
                snprintf(a->token_url, n, "%s/services/oauth2/token",
                         sf->login_url);
        a->login_url     = strdup(sf->login_url);
        a->api_version   = strdup(sf->api_version ? sf->api_version
                                                  : OSY_SF_DEFAULT_API_VERSION);
        a->client_id     = strdup(sf->client_id);
        a->client_secret = dup_or_null(sf->client_secret);
        a->username      = dup_or_null(sf->username);
        a->refresh_token = dup_or_null(sf->refresh_token);
        a->key_path      = dup_or_null(sf->private_key_file);
        if (!a->token_url || !a->login_url || !a->api_version ||
            !a->client_id) {
                err = OSY_ERR_NOMEM;
                goto out;
        }
        if (a->flow == OSY_SF_AUTH_JWT &&
            !(a->key = load_private_key(a->key_path, errstr, errstr_size)))
                goto out;
        err = osy_http_client_new(&a->http, http ? http : &defaults, errstr,
                                  errstr_size);
        if (err)
                goto out;
        *ap = a;
        a   = NULL;
out:
        osy_sf_auth_destroy(a);
        return err;
}

/* Appends "&name=value" (form-urlencoded) to @p buf; 0, or -1 when full. */
static int form_add(char *buf, size_t size, const char *name, const char *value)
{
        size_t len = strlen(buf);
        int n = snprintf(buf + len, size - len, "%s%s=", len ? "&" : "", name);
        if (n < 0 || (size_t)n >= size - len)
                return -1;
        len += (size_t)n;
        for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
                if (len + 4 >= size)
                        return -1;
                if (isalnum(*p) || strchr("-._~", *p))
                        buf[len++] = (char)*p;
                else
                        len += (size_t)snprintf(buf + len, 4, "%%%02X", *p);
        }
        buf[len] = '\0';
        return 0;
}

/* base64url without padding (RFC 7515), into a malloc()ed string. */
static char *base64url(const unsigned char *in, size_t len)
{
        size_t cap = 4 * ((len + 2) / 3) + 1;
        char *out  = malloc(cap);
        if (!out)
                return NULL;
        int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
        while (n > 0 && out[n - 1] == '=')
                n--;
        out[n] = '\0';
        for (char *p = out; *p; p++)
                *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
        return out;
}

static osy_err_t sign_jwt(EVP_PKEY *key, const char *iss, const char *sub,
                          const char *aud, int64_t now_s, char **out,
                          char *errstr, size_t errstr_size)
{
        static const char header[] = "{\"alg\":\"RS256\"}";
        char *h = NULL, *c = NULL, *s = NULL, *input = NULL, *claims = NULL;
        unsigned char *sig = NULL;
        size_t sig_len     = 0;
        EVP_MD_CTX *md     = NULL;
        osy_err_t err      = OSY_ERR_NOMEM;
        cJSON *cl          = cJSON_CreateObject();

        *out = NULL;
        if (!cl || !cJSON_AddStringToObject(cl, "iss", iss) ||
            !cJSON_AddStringToObject(cl, "sub", sub) ||
            !cJSON_AddStringToObject(cl, "aud", aud) ||
            !cJSON_AddNumberToObject(cl, "exp",
                                     (double)(now_s + JWT_LIFETIME_S)))
                goto out;
        claims = cJSON_PrintUnformatted(cl);
        h      = base64url((const unsigned char *)header, strlen(header));
        c = claims ? base64url((unsigned char *)claims, strlen(claims)) : NULL;
        if (!h || !c)
                goto out;
        size_t in_len = strlen(h) + 1 + strlen(c);
        input         = malloc(in_len + 1);
        if (!input)
                goto out;
        snprintf(input, in_len + 1, "%s.%s", h, c);

        md = EVP_MD_CTX_new();
        if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
            EVP_DigestSign(md, NULL, &sig_len, (unsigned char *)input,
                           in_len) != 1 ||
            !(sig = malloc(sig_len)) ||
            EVP_DigestSign(md, sig, &sig_len, (unsigned char *)input, in_len) !=
                1) {
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "jwt: RS256 signing failed");
                goto out;
        }
        s = base64url(sig, sig_len);
        if (!s)
                goto out;
        size_t total = in_len + 1 + strlen(s) + 1;
        *out         = malloc(total);
        if (!*out)
                goto out;
        snprintf(*out, total, "%s.%s", input, s);
        err = OSY_OK;
out:
        EVP_MD_CTX_free(md);
        cJSON_Delete(cl);
        free(claims);
        free(h);
        free(c);
        free(s);
        free(sig);
        free(input);
        return err;
}

osy_err_t osy_sf_jwt_assertion(const char *pem_path, const char *iss,
                               const char *sub, const char *aud, int64_t now_s,
                               char **out, char *errstr, size_t errstr_size)
{
        EVP_PKEY *key = load_private_key(pem_path, errstr, errstr_size);
        osy_err_t err;

        *out = NULL;
        if (!key)
                return OSY_ERR_INVALID;
        err = sign_jwt(key, iss, sub, aud, now_s, out, errstr, errstr_size);
        EVP_PKEY_free(key);
        return err;
}

/* The form body of a token request for the configured grant type. */
static osy_err_t token_form(osy_sf_auth_t *a, int64_t now_ms, char *form,
                            size_t size, char *errstr, size_t errstr_size)
{
        char *assertion = NULL;
        int bad         = 0;
        osy_err_t err;

        form[0] = '\0';
        switch (a->flow) {
        case OSY_SF_AUTH_CLIENT_CREDENTIALS:
                bad |= form_add(form, size, "grant_type", "client_credentials");
                bad |= form_add(form, size, "client_id", a->client_id);
                bad |= form_add(form, size, "client_secret", a->client_secret);
                break;
        case OSY_SF_AUTH_JWT:
                /* The audience is the login host the token is asked from. */
                err = sign_jwt(a->key, a->client_id, a->username, a->login_url,
                               now_ms / 1000, &assertion, errstr, errstr_size);
                if (err)
                        return err;
                bad |= form_add(form, size, "grant_type",
                                "urn:ietf:params:oauth:grant-type:jwt-bearer");
                bad |= form_add(form, size, "assertion", assertion);
                free(assertion);
                break;
        case OSY_SF_AUTH_REFRESH_TOKEN:
                bad |= form_add(form, size, "grant_type", "refresh_token");
                bad |= form_add(form, size, "refresh_token", a->refresh_token);
                bad |= form_add(form, size, "client_id", a->client_id);
                if (a->client_secret)
                        bad |= form_add(form, size, "client_secret",
                                        a->client_secret);
                break;
        default:
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "sf: no auth flow configured");
        }
        return bad ? osy_err_set(OSY_ERR_TOO_LARGE, errstr, errstr_size,
                                 "sf: token request too large")
                   : OSY_OK;
}

static const char *json_str(const cJSON *o, const char *name)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Every API call goes to instance_url with the bearer token: it must be
 * http(s) (plain http only when the login URL is plain http too: the
 * sandbox), with no user part ("https://x@evil.example" is evil.example)
 * and nothing unprintable. */
static int instance_url_ok(const char *u, const char *login_url)
{
        int https = !strncmp(u, "https://", 8);

        if (!https && (strncmp(u, "http://", 7) ||
                       strncmp(login_url ? login_url : "", "http://", 7)))
                return 0;
        if (!u[https ? 8 : 7])
                return 0;
        for (; *u; u++)
                if ((unsigned char)*u <= ' ' || (unsigned char)*u >= 0x7f ||
                    *u == '@')
                        return 0;
        return 1;
}

/* Fetches a token (lock held). */
static osy_err_t fetch_token(osy_sf_auth_t *a, int64_t now_ms, char *errstr,
                             size_t errstr_size)
{
        static const char *const headers[] = {
            "Content-Type: application/x-www-form-urlencoded",
            "Accept: application/json", NULL};
        struct osy_http_response resp = {0};
        char *form                    = malloc(FORM_MAX);
        cJSON *body                   = NULL;
        osy_err_t err;

        if (!form)
                return OSY_ERR_NOMEM;
        err = token_form(a, now_ms, form, FORM_MAX, errstr, errstr_size);
        if (err)
                goto out;
        struct osy_http_request req = {.method   = OSY_HTTP_POST,
                                       .url      = a->token_url,
                                       .headers  = headers,
                                       .body     = form,
                                       .body_len = strlen(form)};
        err = osy_http_do(a->http, &req, &resp, errstr, errstr_size);
        if (err)
                goto out;
        body = cJSON_ParseWithLength(resp.body, resp.body_len);
        if (resp.status != 200) {
                const char *code = body ? json_str(body, "error") : NULL;
                const char *desc =
                    body ? json_str(body, "error_description") : NULL;
                /* invalid_grant / invalid_client: the credentials are
                 * wrong, retrying will not help; 5xx will pass. */
                err = resp.status >= 500 || resp.status == 429
                          ? osy_err_from_http(resp.status, NULL)
                          : OSY_ERR_AUTH;
                osy_err_set(err, errstr, errstr_size,
                            "sf token: HTTP %d %s%s%s", resp.status,
                            code ? code : "(no error code)", desc ? ": " : "",
                            desc ? desc : "");
                goto out;
        }
        const char *token = body ? json_str(body, "access_token") : NULL;
        const char *inst  = body ? json_str(body, "instance_url") : NULL;
        if (!token || !inst || strlen(token) >= sizeof(a->token.access_token) ||
            strlen(inst) >= sizeof(a->token.instance_url)) {
                err = osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                  "sf token: answer without a usable "
                                  "access_token and instance_url");
                goto out;
        }
        if (!instance_url_ok(inst, a->login_url)) {
                err = osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                  "sf token: instance_url is not an "
                                  "http(s) URL of a host (%.80s)",
                                  inst);
                goto out;
        }
        osy_log_add_secret(token);
        snprintf(a->token.access_token, sizeof(a->token.access_token), "%s",
                 token);
        snprintf(a->token.instance_url, sizeof(a->token.instance_url), "%s",
                 inst);
        a->token.generation++;
        a->have_token = 1;
        a->fetches++;
        /* Refresh token rotation: the old one dies once a new is issued. */
        const char *rotated = json_str(body, "refresh_token");
        if (a->flow == OSY_SF_AUTH_REFRESH_TOKEN && rotated) {
                char *copy = strdup(rotated);
                if (copy) {
                        osy_log_add_secret(copy);
                        wipe_free(a->refresh_token);
                        a->refresh_token = copy;
                }
        }
        err = OSY_OK;
out:
        cJSON_Delete(body);
        osy_http_response_free(&resp);
        memset(form, 0, FORM_MAX);
        free(form);
        return err;
}

osy_err_t osy_sf_auth_token(osy_sf_auth_t *a, int64_t now_ms,
                            struct osy_sf_token *out, char *errstr,
                            size_t errstr_size)
{
        osy_err_t err = OSY_OK;

        pthread_mutex_lock(&a->lock);
        if (!a->have_token)
                err = fetch_token(a, now_ms, errstr, errstr_size);
        if (!err)
                *out = a->token;
        pthread_mutex_unlock(&a->lock);
        return err;
}

void osy_sf_auth_invalidate(osy_sf_auth_t *a, uint64_t generation)
{
        pthread_mutex_lock(&a->lock);
        if (a->have_token && a->token.generation == generation)
                a->have_token = 0;
        pthread_mutex_unlock(&a->lock);
}

uint64_t osy_sf_auth_fetches(const osy_sf_auth_t *a)
{
        return a->fetches;
}

const char *osy_sf_auth_api_version(const osy_sf_auth_t *a)
{
        return a->api_version;
}

osy_err_t osy_sf_call(osy_sf_auth_t *a, osy_http_client_t *client,
                      osy_http_method_t method, const char *path,
                      const char *body, size_t body_len, int64_t now_ms,
                      struct osy_http_response *resp, char *errstr,
                      size_t errstr_size)
{
        struct osy_sf_token tok;
        char auth[1100], *url = NULL;
        osy_err_t err = OSY_OK;

        for (int attempt = 0; attempt < 2; attempt++) {
                err = osy_sf_auth_token(a, now_ms, &tok, errstr, errstr_size);
                if (err)
                        break;
                /* Sized to fit: a long SOQL query must never be cut. */
                size_t n = strlen(tok.instance_url) + strlen(path) + 1;
                free(url);
                url = malloc(n);
                if (!url) {
                        err = OSY_ERR_NOMEM;
                        break;
                }
                snprintf(url, n, "%s%s", tok.instance_url, path);
                snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
                         tok.access_token);
                const char *headers[] = {
                    auth, "Content-Type: application/json",
                    "Accept: application/json",
                    "Sforce-Call-Options: client=" OSY_SF_CALL_CLIENT, NULL};
                struct osy_http_request req = {.method   = method,
                                               .url      = url,
                                               .headers  = headers,
                                               .body     = body,
                                               .body_len = body_len};
                err = osy_http_do(client, &req, resp, errstr, errstr_size);
                if (err || resp->status != 401 || attempt == 1)
                        break;
                /* Salesforce gives no expires_in: an expired session shows
                 * up as this 401. Fetch a new token once and repeat. */
                osy_log_info("sf: session expired (HTTP 401), fetching a "
                             "new token");
                osy_sf_auth_invalidate(a, tok.generation);
                osy_http_response_free(resp);
        }
        free(url);
        memset(auth, 0, sizeof(auth));
        return err;
}
