/*
 * sf_soql.c - building the sf-writer's SOQL: string-literal escaping, URL
 * encoding ('+' as %2B), chunked "Email IN (...)" lookups, and reading
 * query results and the record cache format.
 */
#include "sf_writer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* ---- buffer -------------------------------------------------------------- */

void sfw_buf_add(struct sfw_buf *b, const char *s, size_t n)
{
        if (b->oom)
                return;
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 256;
                while (cap < b->len + n + 1)
                        cap *= 2;
                char *p = realloc(b->p, cap);
                if (!p) {
                        b->oom = 1;
                        return;
                }
                b->p   = p;
                b->cap = cap;
        }
        if (n)
                memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
}

void sfw_buf_adds(struct sfw_buf *b, const char *s)
{
        sfw_buf_add(b, s, strlen(s));
}

/* Formats into a small stack buffer, or a heap one when it is longer. */
void sfw_buf_addf(struct sfw_buf *b, const char *fmt, ...)
{
        char tmp[512];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        if ((size_t)n < sizeof(tmp)) {
                sfw_buf_add(b, tmp, (size_t)n);
                return;
        }
        char *big = malloc((size_t)n + 1);
        if (!big) {
                b->oom = 1;
                return;
        }
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        sfw_buf_add(b, big, (size_t)n);
        free(big);
}

void sfw_buf_free(struct sfw_buf *b)
{
        free(b->p);
        memset(b, 0, sizeof(*b));
}

/* ---- escaping ------------------------------------------------------------ */

osy_err_t sfw_soql_escape(struct sfw_buf *out, const char *in)
{
        /* Salesforce's reserved characters in a literal are ' and \; the
         * escapes it knows are \n \r \t \b \f \" \' \\ (and \uXXXX). Any
         * other backslash or raw control character is a MALFORMED_QUERY,
         * so those inputs are refused here rather than sent. */
        for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
                const char *esc = NULL;
                switch (*p) {
                case '\\':
                        esc = "\\\\";
                        break;
                case '\'':
                        esc = "\\'";
                        break;
                case '"':
                        esc = "\\\"";
                        break;
                case '\n':
                        esc = "\\n";
                        break;
                case '\r':
                        esc = "\\r";
                        break;
                case '\t':
                        esc = "\\t";
                        break;
                case '\b':
                        esc = "\\b";
                        break;
                case '\f':
                        esc = "\\f";
                        break;
                default:
                        if (*p < 0x20 || *p == 0x7f)
                                return OSY_ERR_INVALID;
                }
                if (esc)
                        sfw_buf_adds(out, esc);
                else
                        sfw_buf_add(out, (const char *)p, 1);
        }
        return out->oom ? OSY_ERR_NOMEM : OSY_OK;
}

void sfw_url_encode(struct sfw_buf *out, const char *in, size_t len)
{
        static const char hex[] = "0123456789ABCDEF";

        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)in[i];
                if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                    c == '_' || c == '~') {
                        sfw_buf_add(out, (const char *)&c, 1);
                } else {
                        char e[3] = {'%', hex[c >> 4], hex[c & 15]};
                        sfw_buf_add(out, e, 3);
                }
        }
}

const char *sfw_obj2str(sfw_obj_t obj)
{
        return obj == SFW_LEAD ? "Lead" : "Contact";
}

/* Ids come from our cache and from Salesforce; checking them keeps a
 * corrupt cache value from reaching a query or a request body. */
int sfw_id_valid(const char *id)
{
        size_t n = 0;

        if (!id)
                return 0;
        for (; id[n]; n++) {
                char c = id[n];
                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                      (c >= '0' && c <= '9')))
                        return 0;
        }
        return n == 15 || n == 18;
}

/* ---- query paths --------------------------------------------------------- */

osy_err_t sfw_lookup_path(struct sfw_buf *out, const char *api_version,
                          sfw_obj_t obj, const char *const *emails, size_t n,
                          size_t max_emails, size_t max_path, size_t *used,
                          char *errstr, size_t errstr_size)
{
        struct sfw_buf head = {0}, lit = {0}, item = {0};
        const char *tail = obj == SFW_LEAD ? ") AND IsConverted = false" : ")";
        size_t taken = 0, in_chunk = 0, tail_len;
        osy_err_t err = OSY_OK, bad = OSY_OK;

        *used = 0;
        sfw_buf_addf(&head, "/services/data/v%s/query?q=", api_version);
        /* The fixed parts, encoded once. */
        char sel[96];
        snprintf(sel, sizeof(sel), "SELECT Id, Email FROM %s WHERE Email IN (",
                 sfw_obj2str(obj));
        sfw_url_encode(&head, sel, strlen(sel));
        struct sfw_buf tailb = {0};
        sfw_url_encode(&tailb, tail, strlen(tail));
        tail_len = tailb.len;

        for (; taken < n && in_chunk < max_emails; taken++) {
                lit.len = 0;
                if (lit.p)
                        lit.p[0] = '\0';
                sfw_buf_adds(&lit, in_chunk ? ",'" : "'");
                if (sfw_soql_escape(&lit, emails[taken]) != OSY_OK) {
                        /* Cannot be a SOQL literal: leave it out and let
                         * the caller treat that person as unresolvable. */
                        bad = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                          "email cannot be put in SOQL");
                        continue;
                }
                sfw_buf_adds(&lit, "'");
                item.len = 0;
                if (item.p)
                        item.p[0] = '\0';
                sfw_url_encode(&item, lit.p, lit.len);
                if (head.len + item.len + tail_len > max_path) {
                        if (!in_chunk) {
                                err = osy_err_set(
                                    OSY_ERR_TOO_LARGE, errstr, errstr_size,
                                    "one email makes a %zu-byte query",
                                    head.len + item.len + tail_len);
                                taken++;
                        }
                        break;
                }
                sfw_buf_add(&head, item.p, item.len);
                in_chunk++;
        }
        *used = taken;
        if (!err && !in_chunk)
                err = bad ? bad
                          : osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                        "no email to look up");
        if (!err) {
                sfw_buf_add(&head, tailb.p, tailb.len);
                if (head.oom || lit.oom || item.oom || tailb.oom)
                        err = OSY_ERR_NOMEM;
                else
                        sfw_buf_add(out, head.p, head.len);
        }
        sfw_buf_free(&head);
        sfw_buf_free(&lit);
        sfw_buf_free(&item);
        sfw_buf_free(&tailb);
        return err;
}

osy_err_t sfw_converted_path(struct sfw_buf *out, const char *api_version,
                             const char *const *lead_ids, size_t n)
{
        struct sfw_buf q = {0};
        osy_err_t err    = OSY_OK;

        sfw_buf_adds(&q, "SELECT Id, ConvertedContactId FROM Lead WHERE Id "
                         "IN (");
        for (size_t i = 0; i < n; i++) {
                if (!sfw_id_valid(lead_ids[i])) {
                        err = OSY_ERR_INVALID;
                        goto out;
                }
                sfw_buf_addf(&q, "%s'%s'", i ? "," : "", lead_ids[i]);
        }
        sfw_buf_adds(&q, ")");
        if (q.oom) {
                err = OSY_ERR_NOMEM;
                goto out;
        }
        sfw_buf_addf(out, "/services/data/v%s/query?q=", api_version);
        sfw_url_encode(out, q.p, q.len);
        if (out->oom)
                err = OSY_ERR_NOMEM;
out:
        sfw_buf_free(&q);
        return err;
}

/* ---- cache format -------------------------------------------------------- */

void sfw_recs_format(const struct sfw_rec *r, size_t n, struct sfw_buf *out)
{
        for (size_t i = 0; i < n; i++)
                sfw_buf_addf(out, "%s%c:%s", i ? "," : "",
                             r[i].obj == SFW_LEAD ? 'L' : 'C', r[i].id);
        if (!n)
                sfw_buf_add(out, "", 0);
}

/* Anything not written by sfw_recs_format() is refused (a cache miss). */
osy_err_t sfw_recs_parse(const char *s, struct sfw_rec **out, size_t *n)
{
        size_t cnt = 0, cap = 0;
        struct sfw_rec *v = NULL;

        *out = NULL;
        *n   = 0;
        while (*s) {
                const char *end = strchr(s, ',');
                size_t len      = end ? (size_t)(end - s) : strlen(s);
                if (len < 3 || (s[0] != 'C' && s[0] != 'L') || s[1] != ':' ||
                    len - 2 >= SFW_ID_BUFSZ)
                        goto bad;
                if (cnt == cap) {
                        cap                = cap ? cap * 2 : 4;
                        struct sfw_rec *nv = realloc(v, cap * sizeof(*v));
                        if (!nv) {
                                free(v);
                                return OSY_ERR_NOMEM;
                        }
                        v = nv;
                }
                v[cnt].obj = s[0] == 'L' ? SFW_LEAD : SFW_CONTACT;
                memcpy(v[cnt].id, s + 2, len - 2);
                v[cnt].id[len - 2] = '\0';
                if (!sfw_id_valid(v[cnt].id))
                        goto bad;
                cnt++;
                s += len;
                if (*s == ',')
                        s++;
        }
        *out = v;
        *n   = cnt;
        return OSY_OK;
bad:
        free(v);
        return OSY_ERR_INVALID;
}

/* ---- query results ------------------------------------------------------- */

/* A path on the instance: '/' first, then printable ASCII only. */
static int path_ok(const char *p)
{
        if (p[0] != '/')
                return 0;
        for (; *p; p++)
                if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
                        return 0;
        return 1;
}

static void copy_str(char *dst, size_t size, const cJSON *item)
{
        dst[0] = '\0';
        if (cJSON_IsString(item) && item->valuestring &&
            strlen(item->valuestring) < size)
                memcpy(dst, item->valuestring, strlen(item->valuestring) + 1);
}

osy_err_t sfw_parse_query(const char *body, sfw_obj_t obj,
                          struct sfw_row **rows, size_t *nrows, char **next,
                          char *errstr, size_t errstr_size)
{
        cJSON *root   = cJSON_Parse(body ? body : "");
        osy_err_t err = sfw_parse_query_json(root, obj, rows, nrows, next,
                                             errstr, errstr_size);
        cJSON_Delete(root);
        return err;
}

/* Rows without a valid id are skipped; emails are lower-cased to match
 * the normalised address of the command (SOQL matched them case-
 * insensitively). */
osy_err_t sfw_parse_query_json(const cJSON *root, sfw_obj_t obj,
                               struct sfw_row **rows, size_t *nrows,
                               char **next, char *errstr, size_t errstr_size)
{
        const cJSON *recs, *rec, *nx;
        osy_err_t err = OSY_OK;

        *next = NULL;
        if (!root || !cJSON_IsObject(root)) {
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "query result is not a JSON object");
                goto out;
        }
        recs = cJSON_GetObjectItemCaseSensitive(root, "records");
        if (!cJSON_IsArray(recs)) {
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "query result has no records array");
                goto out;
        }
        size_t add = (size_t)cJSON_GetArraySize(recs);
        if (add) {
                struct sfw_row *nr =
                    realloc(*rows, (*nrows + add) * sizeof(**rows));
                if (!nr) {
                        err = OSY_ERR_NOMEM;
                        goto out;
                }
                *rows = nr;
        }
        cJSON_ArrayForEach(rec, recs)
        {
                struct sfw_row *r = &(*rows)[*nrows];
                const cJSON *attr =
                    cJSON_GetObjectItemCaseSensitive(rec, "attributes");
                const cJSON *type =
                    cJSON_GetObjectItemCaseSensitive(attr, "type");
                memset(r, 0, sizeof(*r));
                r->obj = obj;
                if (cJSON_IsString(type) && type->valuestring)
                        r->obj = !strcmp(type->valuestring, "Lead")
                                     ? SFW_LEAD
                                     : SFW_CONTACT;
                copy_str(r->id, sizeof(r->id),
                         cJSON_GetObjectItemCaseSensitive(rec, "Id"));
                copy_str(r->email, sizeof(r->email),
                         cJSON_GetObjectItemCaseSensitive(rec, "Email"));
                copy_str(r->converted_id, sizeof(r->converted_id),
                         cJSON_GetObjectItemCaseSensitive(
                             rec, "ConvertedContactId"));
                /* SOQL's = is case-insensitive; our keys are lower-case. */
                for (char *p = r->email; *p; p++)
                        if (*p >= 'A' && *p <= 'Z')
                                *p = (char)(*p - 'A' + 'a');
                if (!sfw_id_valid(r->id))
                        continue; /* not a row we can write: skip it */
                /* It becomes the id of a write (in the URL and the JSON
                 * body): anything but an SF id would break or redirect
                 * the whole call, so the answer is refused (and retried,
                 * then dead-lettered), never half-used. */
                if (*r->converted_id && !sfw_id_valid(r->converted_id)) {
                        err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                          "query result: ConvertedContactId "
                                          "of %s is not a Salesforce id",
                                          r->id);
                        goto out;
                }
                (*nrows)++;
        }
        nx = cJSON_GetObjectItemCaseSensitive(root, "nextRecordsUrl");
        if (cJSON_IsString(nx) && nx->valuestring && *nx->valuestring) {
                /* Appended to the instance URL with the bearer token: a
                 * path only. Without the leading '/', "@evil.example/x"
                 * would make the URL's host evil.example. */
                if (!path_ok(nx->valuestring)) {
                        err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                          "query result: nextRecordsUrl is "
                                          "not a path on the instance");
                        goto out;
                }
                *next = strdup(nx->valuestring);
                if (!*next)
                        err = OSY_ERR_NOMEM;
        } else if (cJSON_IsFalse(
                       cJSON_GetObjectItemCaseSensitive(root, "done"))) {
                /* More records and no way to them: using what came would
                 * leave some of the person's records unwritten. */
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "query result: done is false but "
                                  "nextRecordsUrl is missing");
        }
out:
        return err;
}
