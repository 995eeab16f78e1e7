/*
 * rules_state.c - the person state of the rules worker: a sorted set of
 * active lists, the qualifying-tag mask, and the compact string that holds
 * it all in Redis.
 */
#include "rules_state.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "optsync/timeutil.h"

const char *const osy_rules_qualifying_tags[OSY_RULES_QUALIFYING_TAGS] = {
    "added-to-salesforce-lead", "created-from-salesforce-lead",
    "added-to-salesforce-contact", "created-from-salesforce-contact",
    "salesforce-lead-converted-to-contact"};

#define FLAG_LISTS 1u
#define FLAG_TAGS 2u
#define FLAG_AC_MISSING 4u

void osy_rules_person_clear(struct osy_rules_person *p)
{
        if (!p)
                return;
        for (size_t i = 0; i < p->lists_cnt; i++)
                free(p->lists[i]);
        free(p->lists);
        memset(p, 0, sizeof(*p));
}

osy_err_t osy_rules_person_copy(struct osy_rules_person *dst,
                                const struct osy_rules_person *src)
{
        osy_rules_person_clear(dst);
        *dst           = *src;
        dst->lists     = NULL;
        dst->lists_cnt = 0;
        if (!src->lists_cnt)
                return OSY_OK;
        if (!(dst->lists = calloc(src->lists_cnt, sizeof(*dst->lists))))
                goto nomem;
        for (size_t i = 0; i < src->lists_cnt; i++) {
                if (!(dst->lists[i] = strdup(src->lists[i])))
                        goto nomem;
                dst->lists_cnt++;
        }
        return OSY_OK;
nomem:
        osy_rules_person_clear(dst);
        return OSY_ERR_NOMEM;
}

/* Binary search; *pos receives the insertion point when absent. */
static int lists_find(const struct osy_rules_person *p, const char *list,
                      size_t *pos)
{
        size_t lo = 0, hi = p->lists_cnt;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c      = strcmp(p->lists[mid], list);
                if (!c) {
                        *pos = mid;
                        return 1;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *pos = lo;
        return 0;
}

int osy_rules_lists_has(const struct osy_rules_person *p, const char *list)
{
        size_t pos;
        return lists_find(p, list, &pos);
}

osy_err_t osy_rules_lists_add(struct osy_rules_person *p, const char *list)
{
        size_t pos;
        char **nl, *copy;

        if (lists_find(p, list, &pos))
                return OSY_OK;
        if (p->lists_cnt >= OSY_RULES_LISTS_MAX)
                return OSY_ERR_TOO_LARGE;
        if (!(copy = strdup(list)))
                return OSY_ERR_NOMEM;
        if (!(nl = realloc(p->lists, (p->lists_cnt + 1) * sizeof(*nl)))) {
                free(copy);
                return OSY_ERR_NOMEM;
        }
        p->lists = nl;
        memmove(nl + pos + 1, nl + pos, (p->lists_cnt - pos) * sizeof(*nl));
        nl[pos] = copy;
        p->lists_cnt++;
        return OSY_OK;
}

void osy_rules_lists_remove(struct osy_rules_person *p, const char *list)
{
        size_t pos;

        if (!lists_find(p, list, &pos))
                return;
        free(p->lists[pos]);
        memmove(p->lists + pos, p->lists + pos + 1,
                (p->lists_cnt - pos - 1) * sizeof(*p->lists));
        p->lists_cnt--;
}

void osy_rules_lists_clear(struct osy_rules_person *p)
{
        for (size_t i = 0; i < p->lists_cnt; i++)
                free(p->lists[i]);
        free(p->lists);
        p->lists     = NULL;
        p->lists_cnt = 0;
}

unsigned osy_rules_tag_bit(const char *tag)
{
        size_t len;

        if (!tag)
                return 0;
        /* contact[tags] items are trimmed by ac-ingest; a tag event's name
         * may not be, so trim here too. */
        while (*tag == ' ' || *tag == '\t')
                tag++;
        len = strlen(tag);
        while (len && (tag[len - 1] == ' ' || tag[len - 1] == '\t'))
                len--;
        for (unsigned i = 0; i < OSY_RULES_QUALIFYING_TAGS; i++) {
                const char *q = osy_rules_qualifying_tags[i];
                if (strlen(q) == len && !strncasecmp(q, tag, len))
                        return 1u << i;
        }
        return 0;
}

unsigned osy_rules_tag_mask(const char *const *tags, size_t n)
{
        unsigned mask = 0;
        for (size_t i = 0; i < n; i++)
                mask |= osy_rules_tag_bit(tags[i]);
        return mask;
}

/* ---- the Redis string ----------------------------------------------------
 * "1|<ms>|<tie>|<flags>|<mask>|<sf>|<contact>|<l1>,<l2>" */

osy_err_t osy_rules_person_encode(const struct osy_rules_person *p, char **out,
                                  size_t *lenp)
{
        size_t cap     = 128 + strlen(p->contact_id), len;
        unsigned flags = (p->lists_known ? FLAG_LISTS : 0) |
                         (p->tags_known ? FLAG_TAGS : 0) |
                         (p->ac_missing ? FLAG_AC_MISSING : 0);
        char *buf;
        int n;

        *out = NULL;
        for (size_t i = 0; i < p->lists_cnt; i++)
                cap += strlen(p->lists[i]) + 1;
        if (!(buf = malloc(cap)))
                return OSY_ERR_NOMEM;
        n = snprintf(buf, cap,
                     OSY_RULES_STATE_FORMAT "|%" PRId64 "|%s|%u|%u|%s|%s|",
                     p->version_ms, p->version_tie, flags, p->tag_mask,
                     p->sf_opted_out == OSY_TRI_TRUE    ? "1"
                     : p->sf_opted_out == OSY_TRI_FALSE ? "0"
                                                        : "-",
                     p->contact_id);
        if (n < 0 || (size_t)n >= cap) {
                free(buf);
                return OSY_ERR_NOMEM;
        }
        len = (size_t)n;
        for (size_t i = 0; i < p->lists_cnt; i++) {
                size_t l = strlen(p->lists[i]);
                if (i)
                        buf[len++] = ',';
                memcpy(buf + len, p->lists[i], l);
                len += l;
        }
        buf[len] = '\0';
        *out     = buf;
        if (lenp)
                *lenp = len;
        return OSY_OK;
}

/* A token as in envelope.c: [A-Za-z0-9_.:-]. */
static int token_ok(const char *s, size_t len)
{
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                      c == ':' || c == '-'))
                        return 0;
        }
        return 1;
}

/* Parse a non-negative decimal field of exactly @p len bytes. */
static int parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
        uint64_t v = 0;

        if (len == 0 || len > 20)
                return -1;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -1;
                uint64_t d = (uint64_t)(s[i] - '0');
                if (d > max || v > (max - d) / 10)
                        return -1;
                v = v * 10 + d;
        }
        *out = v;
        return 0;
}

osy_err_t osy_rules_person_decode(const char *buf, size_t len,
                                  struct osy_rules_person *p, char *errstr,
                                  size_t errstr_size)
{
        const char *f[8];
        size_t fl[8], nf = 0;
        const char *s = buf, *end = buf + len;
        uint64_t v;
        osy_err_t err;

        memset(p, 0, sizeof(*p));
        /* Split into the 8 fields; the last (lists) runs to the end. */
        while (nf < 7) {
                const char *bar = memchr(s, '|', (size_t)(end - s));
                if (!bar)
                        break;
                f[nf]    = s;
                fl[nf++] = (size_t)(bar - s);
                s        = bar + 1;
        }
        if (nf != 7)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "person state: %zu fields, want 8", nf + 1);
        f[7]  = s;
        fl[7] = (size_t)(end - s);
        if (fl[0] != 1 || f[0][0] != OSY_RULES_STATE_FORMAT[0])
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "person state: unknown format");
        /* A time, as every version: beyond OSY_TIME_MAX_MS (year 9999)
         * it would make every later event of the person stale. */
        if (parse_u64(f[1], fl[1], (uint64_t)OSY_TIME_MAX_MS, &v))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "person state: bad version ms");
        p->version_ms = (int64_t)v;
        if (fl[2] >= sizeof(p->version_tie) || !token_ok(f[2], fl[2]))
                goto bad;
        memcpy(p->version_tie, f[2], fl[2]);
        p->version_tie[fl[2]] = '\0';
        if (parse_u64(f[3], fl[3], 7, &v))
                goto bad;
        p->lists_known = (v & FLAG_LISTS) != 0;
        p->tags_known  = (v & FLAG_TAGS) != 0;
        p->ac_missing  = (v & FLAG_AC_MISSING) != 0;
        if (parse_u64(f[4], fl[4], (1u << OSY_RULES_QUALIFYING_TAGS) - 1, &v))
                goto bad;
        p->tag_mask = (unsigned)v;
        if (fl[5] != 1)
                goto bad;
        switch (f[5][0]) {
        case '1':
                p->sf_opted_out = OSY_TRI_TRUE;
                break;
        case '0':
                p->sf_opted_out = OSY_TRI_FALSE;
                break;
        case '-':
                p->sf_opted_out = OSY_TRI_UNSET;
                break;
        default:
                goto bad;
        }
        if (fl[6] > OSY_RULES_ID_MAX || !token_ok(f[6], fl[6]))
                goto bad;
        memcpy(p->contact_id, f[6], fl[6]);
        p->contact_id[fl[6]] = '\0';
        /* Lists: comma-separated tokens. */
        s   = f[7];
        end = f[7] + fl[7];
        while (s < end) {
                const char *comma = memchr(s, ',', (size_t)(end - s));
                size_t l          = (size_t)((comma ? comma : end) - s);
                char item[OSY_RULES_ID_MAX + 1];

                if (l == 0 || l > OSY_RULES_ID_MAX || !token_ok(s, l))
                        goto bad;
                memcpy(item, s, l);
                item[l] = '\0';
                if ((err = osy_rules_lists_add(p, item))) {
                        osy_rules_person_clear(p);
                        return osy_err_set(
                            err, errstr, errstr_size, "person state: %s lists",
                            err == OSY_ERR_NOMEM ? "no memory" : "too many");
                }
                s += l + (comma ? 1 : 0);
                if (comma && s == end)
                        goto bad; /* trailing comma */
        }
        return OSY_OK;
bad:
        osy_rules_person_clear(p);
        return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                           "person state: malformed");
}

/* "<prefix>:rules:<kind>:{<tenant>|<email>}" by copying: these run for
 * every event, and snprintf's format parsing shows in profiles. */
static osy_err_t make_key(char *buf, size_t size, const char *prefix,
                          const char *kind, const char *tenant,
                          const char *email)
{
        const char *parts[] = {prefix, ":rules:", kind,  ":{",
                               tenant, "|",       email, "}"};
        size_t len          = 0;

        for (size_t i = 0; i < sizeof(parts) / sizeof(*parts); i++) {
                size_t l = strlen(parts[i]);
                if (len + l >= size)
                        return OSY_ERR_TOO_LARGE;
                memcpy(buf + len, parts[i], l);
                len += l;
        }
        buf[len] = '\0';
        return OSY_OK;
}

osy_err_t osy_rules_state_key(char *buf, size_t size, const char *prefix,
                              const char *tenant, const char *email)
{
        return make_key(buf, size, prefix, "p", tenant, email);
}

osy_err_t osy_rules_seen_key(char *buf, size_t size, const char *prefix,
                             int64_t occurred_at_ms)
{
        int64_t bucket = occurred_at_ms / OSY_RULES_SEEN_BUCKET_MS;
        int n = snprintf(buf, size, "%s:rules:seen:%" PRId64, prefix, bucket);

        return n < 0 || (size_t)n >= size ? OSY_ERR_TOO_LARGE : OSY_OK;
}
