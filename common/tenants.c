/*
 * tenants.c - the tenants file: per-tenant AC and SF settings and
 * credentials, parsed strictly so a typo is an error at startup, with
 * every secret registered for log masking and wiped on destroy.
 */
#include "optsync/tenants.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "optsync/envelope.h"
#include "optsync/log.h"

#define TENANTS_FILE_MAX (1024 * 1024)

struct osy_tenants_s {
        struct osy_tenant *v;
        size_t cnt;
};

/* One string field of a block: where it goes and whether it is secret. */
struct field_def {
        const char *name;
        size_t offset; /* of the char * inside the block struct */
        int secret;
        int url;
};

static const struct field_def ac_fields[] = {
    {"base_url", offsetof(struct osy_tenant_ac, base_url), 0, 1},
    {"api_token", offsetof(struct osy_tenant_ac, api_token), 1, 0},
    {"webhook_token", offsetof(struct osy_tenant_ac, webhook_token), 1, 0},
    {NULL, 0, 0, 0}};

static const struct field_def sf_fields[] = {
    {"login_url", offsetof(struct osy_tenant_sf, login_url), 0, 1},
    {"api_version", offsetof(struct osy_tenant_sf, api_version), 0, 0},
    {"client_id", offsetof(struct osy_tenant_sf, client_id), 0, 0},
    {"client_secret", offsetof(struct osy_tenant_sf, client_secret), 1, 0},
    {"username", offsetof(struct osy_tenant_sf, username), 0, 0},
    {"private_key_file", offsetof(struct osy_tenant_sf, private_key_file), 0,
     0},
    {"refresh_token", offsetof(struct osy_tenant_sf, refresh_token), 1, 0},
    {NULL, 0, 0, 0}};

static const char *const sf_auth_names[] = {NULL, "client_credentials", "jwt",
                                            "refresh_token"};

static void wipe_free(char *s)
{
        if (!s)
                return;
        /* volatile so the compiler keeps the wipe of memory about to go */
        for (volatile char *p = s; *p; p++)
                *p = 0;
        free(s);
}

static void free_block(void *block, const struct field_def *defs)
{
        for (const struct field_def *d = defs; d->name; d++) {
                char **slot = (char **)((char *)block + d->offset);
                if (d->secret)
                        wipe_free(*slot);
                else
                        free(*slot);
                *slot = NULL;
        }
}

void osy_tenants_destroy(osy_tenants_t *ts)
{
        if (!ts)
                return;
        for (size_t i = 0; i < ts->cnt; i++) {
                free(ts->v[i].id);
                free_block(&ts->v[i].ac, ac_fields);
                free_block(&ts->v[i].sf, sf_fields);
        }
        free(ts->v);
        free(ts);
}

static int is_http_url(const char *s)
{
        return (!strncmp(s, "http://", 7) && s[7]) ||
               (!strncmp(s, "https://", 8) && s[8]);
}

/* Fills a block's string fields from @p obj; rejects unknown keys. The
 * path in messages is like "tenants[2].ac.api_token". */
static osy_err_t parse_block(const cJSON *obj, void *block,
                             const struct field_def *defs, const char *path,
                             const cJSON **auth_item, char *errstr,
                             size_t errstr_size)
{
        const cJSON *item;

        if (!cJSON_IsObject(obj))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "%s: must be an object", path);
        cJSON_ArrayForEach(item, obj)
        {
                const struct field_def *d = defs;
                if (auth_item && !strcmp(item->string, "auth")) {
                        *auth_item = item;
                        continue;
                }
                while (d->name && strcmp(d->name, item->string))
                        d++;
                if (!d->name)
                        return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                           "%s.%s: unknown key", path,
                                           item->string);
                if (!cJSON_IsString(item) || !*item->valuestring)
                        return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                           "%s.%s: must be a non-empty string",
                                           path, d->name);
                if (d->url && !is_http_url(item->valuestring))
                        return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                           "%s.%s: must start with http:// or "
                                           "https://",
                                           path, d->name);
                char **slot = (char **)((char *)block + d->offset);
                if (*slot)
                        return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                           "%s.%s: given twice", path, d->name);
                *slot = strdup(item->valuestring);
                if (!*slot)
                        return OSY_ERR_NOMEM;
                if (d->secret)
                        osy_log_add_secret(*slot);
        }
        return OSY_OK;
}

static osy_err_t parse_tenant(const cJSON *obj, struct osy_tenant *t,
                              size_t idx, char *errstr, size_t errstr_size)
{
        char path[64], sub[80], why[OSY_ERRSTR_SIZE];
        const cJSON *item, *auth = NULL;
        osy_err_t err;

        snprintf(path, sizeof(path), "tenants[%zu]", idx);
        if (!cJSON_IsObject(obj))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "%s: must be an object", path);
        cJSON_ArrayForEach(item, obj)
        {
                const char *k = item->string;
                if (!strcmp(k, "id")) {
                        if (!cJSON_IsString(item))
                                return osy_err_set(
                                    OSY_ERR_INVALID, errstr, errstr_size,
                                    "%s.id: must be a string", path);
                        if (osy_tenant_check(item->valuestring, why,
                                             sizeof(why)))
                                return osy_err_set(OSY_ERR_INVALID, errstr,
                                                   errstr_size, "%s.id: %s",
                                                   path, why);
                        if (!(t->id = strdup(item->valuestring)))
                                return OSY_ERR_NOMEM;
                } else if (!strcmp(k, "ac")) {
                        snprintf(sub, sizeof(sub), "%s.ac", path);
                        t->has_ac = 1;
                        if ((err = parse_block(item, &t->ac, ac_fields, sub,
                                               NULL, errstr, errstr_size)))
                                return err;
                } else if (!strcmp(k, "sf")) {
                        snprintf(sub, sizeof(sub), "%s.sf", path);
                        t->has_sf = 1;
                        if ((err = parse_block(item, &t->sf, sf_fields, sub,
                                               &auth, errstr, errstr_size)))
                                return err;
                } else if (!strcmp(k, "sync_all_contacts")) {
                        if (!cJSON_IsBool(item))
                                return osy_err_set(
                                    OSY_ERR_INVALID, errstr, errstr_size,
                                    "%s.sync_all_contacts: must be true or "
                                    "false",
                                    path);
                        t->sync_all_contacts = cJSON_IsTrue(item);
                } else {
                        return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                           "%s.%s: unknown key", path, k);
                }
        }
        if (!t->id)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "%s.id: required", path);
        if (t->has_sf) {
                if (!auth || !cJSON_IsString(auth))
                        return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                           "%s.sf.auth: required: "
                                           "client_credentials, jwt or "
                                           "refresh_token",
                                           path);
                for (int a = 1; a <= OSY_SF_AUTH_REFRESH_TOKEN; a++)
                        if (!strcmp(auth->valuestring, sf_auth_names[a]))
                                t->sf.auth = (osy_sf_grant_t)a;
                if (t->sf.auth == OSY_SF_AUTH_NONE)
                        return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                           "%s.sf.auth: '%s' is not one of "
                                           "client_credentials, jwt, "
                                           "refresh_token",
                                           path, auth->valuestring);
        }
        return OSY_OK;
}

osy_err_t osy_tenants_parse(osy_tenants_t **tp, const char *json, size_t len,
                            char *errstr, size_t errstr_size)
{
        osy_tenants_t *ts = NULL;
        cJSON *root       = NULL;
        const cJSON *list, *item;
        osy_err_t err = OSY_ERR_INVALID;
        size_t i      = 0;

        *tp  = NULL;
        root = cJSON_ParseWithLength(json, len);
        if (!root || !cJSON_IsObject(root)) {
                osy_err_set(err, errstr, errstr_size,
                            "tenants: not a JSON object");
                goto out;
        }
        cJSON_ArrayForEach(item, root)
        {
                if (strcmp(item->string, "tenants")) {
                        osy_err_set(err, errstr, errstr_size, "%s: unknown key",
                                    item->string);
                        goto out;
                }
        }
        list = cJSON_GetObjectItemCaseSensitive(root, "tenants");
        if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0) {
                osy_err_set(err, errstr, errstr_size,
                            "tenants: must be a non-empty array");
                goto out;
        }
        ts = calloc(1, sizeof(*ts));
        if (ts)
                ts->v =
                    calloc((size_t)cJSON_GetArraySize(list), sizeof(*ts->v));
        if (!ts || !ts->v) {
                err = OSY_ERR_NOMEM;
                goto out;
        }
        cJSON_ArrayForEach(item, list)
        {
                ts->cnt = i + 1; /* so destroy frees a half-parsed entry */
                if ((err =
                         parse_tenant(item, &ts->v[i], i, errstr, errstr_size)))
                        goto out;
                for (size_t j = 0; j < i; j++)
                        if (!strcmp(ts->v[j].id, ts->v[i].id)) {
                                err = osy_err_set(
                                    OSY_ERR_INVALID, errstr, errstr_size,
                                    "tenants[%zu].id: '%s' repeats "
                                    "tenants[%zu]",
                                    i, ts->v[i].id, j);
                                goto out;
                        }
                i++;
        }
        *tp = ts;
        ts  = NULL;
        err = OSY_OK;
out:
        osy_tenants_destroy(ts);
        cJSON_Delete(root);
        return err;
}

osy_err_t osy_tenants_load_file(osy_tenants_t **tp, const char *path,
                                char *errstr, size_t errstr_size)
{
        FILE *f;
        char *buf;
        size_t n;
        osy_err_t err;

        *tp = NULL;
        if (!path || !*path)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "OPTSYNC_TENANTS_FILE: not set");
        f = fopen(path, "rb");
        if (!f)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "OPTSYNC_TENANTS_FILE: %s: %s", path,
                                   strerror(errno));
        buf = malloc(TENANTS_FILE_MAX + 1);
        if (!buf) {
                fclose(f);
                return OSY_ERR_NOMEM;
        }
        n = fread(buf, 1, TENANTS_FILE_MAX + 1, f);
        fclose(f);
        if (n > TENANTS_FILE_MAX) {
                free(buf);
                return osy_err_set(OSY_ERR_TOO_LARGE, errstr, errstr_size,
                                   "OPTSYNC_TENANTS_FILE: %s: larger than "
                                   "1 MiB",
                                   path);
        }
        err = osy_tenants_parse(tp, buf, n, errstr, errstr_size);
        /* The buffer held every secret: wipe it before it goes. */
        memset(buf, 0, n);
        free(buf);
        return err;
}

size_t osy_tenants_count(const osy_tenants_t *ts)
{
        return ts ? ts->cnt : 0;
}

const struct osy_tenant *osy_tenants_at(const osy_tenants_t *ts, size_t i)
{
        return ts && i < ts->cnt ? &ts->v[i] : NULL;
}

const struct osy_tenant *osy_tenants_find(const osy_tenants_t *ts,
                                          const char *id)
{
        for (size_t i = 0; ts && id && i < ts->cnt; i++)
                if (!strcmp(ts->v[i].id, id))
                        return &ts->v[i];
        return NULL;
}
