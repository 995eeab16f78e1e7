/*
 * acwh.c - AC webhook bodies to ac.event envelopes: a PHP-compatible form
 * decoder, a JSON flattener onto the same paths, field extraction and
 * normalisation. Any bytes in, never a crash (fuzzed in tests/fuzz).
 */
#include "acwh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "optsync/timeutil.h"

/* JSON nesting beyond this is refused before cJSON recurses into it. */
#define JSON_MAX_NEST 32

/* ---- form storage -------------------------------------------------------- */

void osy_acwh_form_clear(struct osy_acwh_form *form)
{
        if (!form)
                return;
        for (size_t i = 0; i < form->n; i++)
                free(form->f[i].mem);
        free(form->f);
        memset(form, 0, sizeof(*form));
}

/* Take ownership of a filled field (mem and the pointers into it). */
static osy_err_t form_push(struct osy_acwh_form *form,
                           struct osy_acwh_field *fld, char *errstr,
                           size_t errstr_size)
{
        if (form->n >= OSY_ACWH_MAX_FIELDS) {
                free(fld->mem);
                return osy_err_set(OSY_ERR_TOO_LARGE, errstr, errstr_size,
                                   "body: more than %d fields",
                                   OSY_ACWH_MAX_FIELDS);
        }
        if (form->n == form->cap) {
                size_t cap = form->cap ? form->cap * 2 : 32;
                struct osy_acwh_field *f =
                    realloc(form->f, cap * sizeof(*form->f));
                if (!f) {
                        free(fld->mem);
                        return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                           "out of memory");
                }
                form->f   = f;
                form->cap = cap;
        }
        form->f[form->n++] = *fld;
        return OSY_OK;
}

const char *osy_acwh_form_get(const struct osy_acwh_form *form,
                              const char *const *path, size_t n)
{
        /* Backwards: the last duplicate wins, as in PHP's $_POST. */
        for (size_t i = form->n; i-- > 0;) {
                const struct osy_acwh_field *f = &form->f[i];
                size_t k;

                if (f->nseg != n)
                        continue;
                for (k = 0; k < n && !strcmp(f->seg[k], path[k]); k++)
                        ;
                if (k == n)
                        return f->value;
        }
        return NULL;
}

/*
 * Split a key held in @p buf (modified in place) PHP-style: the base up
 * to the first '[', then one segment per "[...]" group; text after a
 * group that does not open another is ignored, and an unclosed first
 * group makes the whole key one literal name. Appends to seg[*nseg].
 * @returns 0, or -1 when the key is unusable (empty base, too deep).
 */
static int split_key(char *buf, const char **seg, size_t *nseg)
{
        char *open = strchr(buf, '[');
        char *p;

        if (!*buf || open == buf)
                return -1; /* PHP drops variables without a name */
        if (*nseg >= OSY_ACWH_MAX_DEPTH)
                return -1;
        if (!open || !strchr(open, ']')) {
                seg[(*nseg)++] = buf;
                return 0;
        }
        *open          = '\0';
        seg[(*nseg)++] = buf;
        p              = open + 1;
        for (;;) {
                char *close = strchr(p, ']');

                if (!close)
                        break;
                *close = '\0';
                if (*nseg >= OSY_ACWH_MAX_DEPTH)
                        return -1;
                seg[(*nseg)++] = p;
                if (close[1] != '[')
                        break;
                p = close + 2;
        }
        return 0;
}

/* ---- form-urlencoded ----------------------------------------------------- */

static int hexval(int c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Decode @p n bytes of @p s ('+' is a space, %XX a byte) into @p out,
 * NUL-terminated. @returns the length, or -1 for an encoded NUL. */
static long url_decode(const char *s, size_t n, char *out)
{
        size_t o = 0;

        for (size_t i = 0; i < n; i++) {
                int hi, lo;

                if (s[i] == '+') {
                        out[o++] = ' ';
                } else if (s[i] == '%' && i + 2 < n &&
                           (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
                           (lo = hexval((unsigned char)s[i + 2])) >= 0) {
                        if (hi == 0 && lo == 0)
                                return -1;
                        out[o++] = (char)(hi * 16 + lo);
                        i += 2;
                } else {
                        /* Malformed escapes stay literal, as in PHP. */
                        out[o++] = s[i];
                }
        }
        out[o] = '\0';
        return (long)o;
}

static osy_err_t parse_form(struct osy_acwh_form *form, const char *body,
                            size_t len, char *errstr, size_t errstr_size)
{
        const char *p = body, *end = body + len;

        if (memchr(body, '\0', len))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "body: NUL byte in form data");
        while (p < end) {
                const char *amp = memchr(p, '&', (size_t)(end - p));
                const char *pe  = amp ? amp : end;
                const char *eq  = memchr(p, '=', (size_t)(pe - p));
                size_t klen     = (size_t)((eq ? eq : pe) - p);
                size_t vlen     = eq ? (size_t)(pe - eq - 1) : 0;
                struct osy_acwh_field fld;
                osy_err_t err;
                long kn, vn;

                if (klen == 0)
                        goto next; /* "&&" or "=value": nothing to name */
                memset(&fld, 0, sizeof(fld));
                if (!(fld.mem = malloc(klen + vlen + 2)))
                        return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                           "out of memory");
                kn = url_decode(p, klen, fld.mem);
                vn = kn < 0
                         ? -1
                         : url_decode(eq ? eq + 1 : "", vlen, fld.mem + kn + 1);
                if (kn < 0 || vn < 0) {
                        free(fld.mem);
                        return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                           "body: %%00 (NUL) in form data");
                }
                fld.value = fld.mem + kn + 1;
                if (split_key(fld.mem, fld.seg, &fld.nseg) < 0) {
                        free(fld.mem);
                        goto next;
                }
                if ((err = form_push(form, &fld, errstr, errstr_size)))
                        return err;
        next:
                p = pe + (amp ? 1 : 0);
        }
        return OSY_OK;
}

/* ---- JSON ---------------------------------------------------------------- */

/* The path from the root to the value being flattened. Object keys are
 * copied (split in place); array indexes are formatted into idx[]. */
struct jpath {
        const char *seg[OSY_ACWH_MAX_DEPTH];
        size_t nseg;
        char idx[OSY_ACWH_MAX_DEPTH][24];
};

/* Store one leaf: its path and @p value copied into one allocation. */
static osy_err_t json_leaf(struct osy_acwh_form *form, const struct jpath *jp,
                           const char *value, char *errstr, size_t errstr_size)
{
        struct osy_acwh_field fld;
        size_t need = strlen(value) + 1, off = 0;

        for (size_t i = 0; i < jp->nseg; i++)
                need += strlen(jp->seg[i]) + 1;
        memset(&fld, 0, sizeof(fld));
        if (!(fld.mem = malloc(need)))
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "out of memory");
        for (size_t i = 0; i < jp->nseg; i++) {
                size_t l = strlen(jp->seg[i]) + 1;
                memcpy(fld.mem + off, jp->seg[i], l);
                fld.seg[i] = fld.mem + off;
                off += l;
        }
        fld.nseg = jp->nseg;
        memcpy(fld.mem + off, value, strlen(value) + 1);
        fld.value = fld.mem + off;
        return form_push(form, &fld, errstr, errstr_size);
}

static osy_err_t json_walk(struct osy_acwh_form *form, const cJSON *node,
                           struct jpath *jp, char *errstr, size_t errstr_size)
{
        char num[48];
        osy_err_t err = OSY_OK;

        if (cJSON_IsObject(node) || cJSON_IsArray(node)) {
                size_t i = 0;
                for (const cJSON *c = node->child; c && !err; c = c->next) {
                        size_t saved = jp->nseg;
                        char *key    = NULL;

                        if (cJSON_IsArray(node)) {
                                if (jp->nseg >= OSY_ACWH_MAX_DEPTH)
                                        goto deep;
                                snprintf(jp->idx[jp->nseg], sizeof(jp->idx[0]),
                                         "%zu", i);
                                jp->seg[jp->nseg] = jp->idx[jp->nseg];
                                jp->nseg++;
                        } else {
                                if (!c->string || !(key = strdup(c->string)))
                                        return osy_err_set(OSY_ERR_NOMEM,
                                                           errstr, errstr_size,
                                                           "out of memory");
                                if (split_key(key, jp->seg, &jp->nseg) < 0) {
                                        /* Unnamed or too deep: dropped,
                                         * like the form decoder does. */
                                        free(key);
                                        jp->nseg = saved;
                                        i++;
                                        continue;
                                }
                        }
                        err      = json_walk(form, c, jp, errstr, errstr_size);
                        jp->nseg = saved;
                        free(key);
                        i++;
                }
                return err;
        }
        if (cJSON_IsString(node))
                return json_leaf(form, jp, node->valuestring, errstr,
                                 errstr_size);
        if (cJSON_IsNumber(node)) {
                double d = node->valuedouble;
                /* Ids arrive as numbers from some relays: print integers
                 * exactly ("12", not "12.0" or "1.2e1"). */
                if (d >= -9007199254740991.0 && d <= 9007199254740991.0 &&
                    d == (double)(long long)d)
                        snprintf(num, sizeof(num), "%lld", (long long)d);
                else
                        snprintf(num, sizeof(num), "%.17g", d);
                return json_leaf(form, jp, num, errstr, errstr_size);
        }
        if (cJSON_IsBool(node))
                return json_leaf(form, jp,
                                 cJSON_IsTrue(node) ? "true" : "false", errstr,
                                 errstr_size);
        return OSY_OK; /* null: absent */
deep:
        return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                           "body: JSON nested deeper than %d levels",
                           OSY_ACWH_MAX_DEPTH);
}

/* cJSON recurses once per level: refuse pathological nesting first. */
static int json_too_deep(const char *s, size_t len)
{
        int depth = 0, in_str = 0;

        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (in_str) {
                        if (c == '\\')
                                i++;
                        else if (c == '"')
                                in_str = 0;
                } else if (c == '"') {
                        in_str = 1;
                } else if (c == '{' || c == '[') {
                        if (++depth > JSON_MAX_NEST)
                                return 1;
                } else if (c == '}' || c == ']') {
                        depth--;
                }
        }
        return 0;
}

static osy_err_t parse_json(struct osy_acwh_form *form, const char *body,
                            size_t len, char *errstr, size_t errstr_size)
{
        struct jpath jp;
        const char *end = NULL;
        cJSON *root;
        osy_err_t err;

        if (memchr(body, '\0', len))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "body: NUL byte in JSON");
        if (json_too_deep(body, len))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "body: JSON nested deeper than %d levels",
                                   JSON_MAX_NEST);
        if (!(root = cJSON_ParseWithLengthOpts(body, len, &end, 0)))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "body: not valid JSON");
        /* Trailing bytes after the object are refused, not ignored. */
        while (end < body + len &&
               (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
                end++;
        if (end != body + len) {
                cJSON_Delete(root);
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "body: data after the JSON object");
        }
        if (!cJSON_IsObject(root)) {
                cJSON_Delete(root);
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "body: JSON is not an object");
        }
        memset(&jp, 0, sizeof(jp));
        err = json_walk(form, root, &jp, errstr, errstr_size);
        cJSON_Delete(root);
        return err;
}

osy_acwh_format_t osy_acwh_format_of(const char *content_type, const char *body,
                                     size_t len)
{
        if (content_type) {
                const char *semi = strchr(content_type, ';');
                size_t n =
                    semi ? (size_t)(semi - content_type) : strlen(content_type);
                while (n && (content_type[n - 1] == ' ' ||
                             content_type[n - 1] == '\t'))
                        n--;
                if ((n == 16 &&
                     !strncasecmp(content_type, "application/json", 16)) ||
                    (n > 5 && !strncasecmp(content_type + n - 5, "+json", 5)))
                        return OSY_ACWH_JSON;
                if (n && strncasecmp(content_type, "text/plain", n))
                        return OSY_ACWH_FORM;
        }
        /* No (or a vague) type: a JSON object is unmistakable. */
        for (size_t i = 0; i < len; i++) {
                if (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' ||
                    body[i] == '\n')
                        continue;
                return body[i] == '{' ? OSY_ACWH_JSON : OSY_ACWH_FORM;
        }
        return OSY_ACWH_FORM;
}

osy_err_t osy_acwh_form_parse(struct osy_acwh_form *form, const char *body,
                              size_t len, osy_acwh_format_t fmt, char *errstr,
                              size_t errstr_size)
{
        osy_err_t err;

        if (!body)
                len = 0;
        if (len == 0)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "body: empty");
        err = fmt == OSY_ACWH_JSON
                  ? parse_json(form, body, len, errstr, errstr_size)
                  : parse_form(form, body, len, errstr, errstr_size);
        if (err)
                osy_acwh_form_clear(form);
        return err;
}

/* ---- extraction ---------------------------------------------------------- */

#define GET(form, ...)                                                         \
        osy_acwh_form_get((form), (const char *const[]){__VA_ARGS__},          \
                          sizeof((const char *const[]){__VA_ARGS__}) /         \
                              sizeof(const char *))

/* AC's event names for the six kinds, indexed by osy_ac_kind_t. */
static osy_ac_kind_t kind_of(const char *type)
{
        for (int k = OSY_AC_KIND_NONE + 1; k < OSY_AC_KIND__CNT; k++)
                if (!strcmp(type, osy_ac_kind2str((osy_ac_kind_t)k)))
                        return (osy_ac_kind_t)k;
        return OSY_AC_KIND_NONE;
}

static osy_initiator_t initiator_of(const char *s)
{
        static const struct {
                const char *name;
                osy_initiator_t v;
        } map[] = {{"public", OSY_INIT_PUBLIC},
                   {"admin", OSY_INIT_ADMIN},
                   {"api", OSY_INIT_API},
                   {"system", OSY_INIT_SYSTEM}};

        for (size_t i = 0; s && i < sizeof(map) / sizeof(map[0]); i++)
                if (!strcasecmp(s, map[i].name))
                        return map[i].v;
        return OSY_INIT_UNKNOWN; /* absent, or a value AC added later */
}

static osy_bounce_t bounce_of(const char *s)
{
        if (s && !strcasecmp(s, "hard"))
                return OSY_BOUNCE_HARD;
        if (s && !strcasecmp(s, "soft"))
                return OSY_BOUNCE_SOFT;
        return OSY_BOUNCE_UNKNOWN;
}

static int all_digits(const char *s)
{
        if (!*s)
                return 0;
        for (; *s; s++)
                if (*s < '0' || *s > '9')
                        return 0;
        return 1;
}

/*
 * Does this field name a list? Every shape seen in AC material:
 * list=3, list[]=3, list[0]=3, list[id]=3, list[][id]=3, list[0][id]=3
 * (and the JSON equivalents, which flatten to the same paths).
 */
static int is_list_field(const struct osy_acwh_field *f)
{
        if (strcmp(f->seg[0], "list"))
                return 0;
        if (f->nseg == 1)
                return 1;
        if (f->nseg == 2)
                return !*f->seg[1] || all_digits(f->seg[1]) ||
                       !strcmp(f->seg[1], "id");
        if (f->nseg == 3)
                return (!*f->seg[1] || all_digits(f->seg[1])) &&
                       !strcmp(f->seg[2], "id");
        return 0;
}

static osy_err_t collect_lists(const struct osy_acwh_form *form,
                               struct osy_acwh_event *ev, char *errstr,
                               size_t errstr_size)
{
        int real = 0;

        ev->n_lists = 0;
        for (size_t i = 0; i < form->n; i++) {
                const char *v = form->f[i].value;
                size_t k;

                if (!is_list_field(&form->f[i]) || !*v)
                        continue;
                for (k = 0; k < ev->n_lists && strcmp(ev->lists[k], v); k++)
                        ;
                if (k < ev->n_lists)
                        continue; /* named twice */
                if (ev->n_lists >= OSY_ACWH_MAX_LISTS)
                        return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                           "list: more than %d lists",
                                           OSY_ACWH_MAX_LISTS);
                ev->lists[ev->n_lists++] = v;
                real |= strcmp(v, "0") != 0;
        }
        /* "0" means "no particular list": meaningless next to a real one. */
        if (real) {
                size_t o = 0;
                for (size_t i = 0; i < ev->n_lists; i++)
                        if (strcmp(ev->lists[i], "0"))
                                ev->lists[o++] = ev->lists[i];
                ev->n_lists = o;
        }
        return OSY_OK;
}

static int64_t wall_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

osy_err_t osy_acwh_extract(const struct osy_acwh_form *form,
                           struct osy_acwh_event *ev, char *errstr,
                           size_t errstr_size)
{
        const char *dt, *bt, *auto_id;
        char terr[OSY_ERRSTR_SIZE];
        int64_t now;
        osy_err_t err;

        memset(ev, 0, sizeof(*ev));
        ev->form = form;
        if (!(ev->type = GET(form, "type")) || !*ev->type)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "type: missing");
        if ((ev->kind = kind_of(ev->type)) == OSY_AC_KIND_NONE)
                return OSY_OK; /* acknowledged and counted, not produced */

        if (!(dt = GET(form, "date_time")) || !*dt)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "date_time: missing");
        if (osy_time_parse(dt, &ev->occurred_at, terr, sizeof(terr)))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "date_time: %s", terr);
        /* A time ahead of ours (a wrong offset, a bad clock; 9999 in a
         * forged body) would become the person's version in the rules and
         * make every real change after it stale, for as long as the
         * state lives. Ours is the better time then: the webhook cannot
         * have happened after we got it. */
        now = wall_ms();
        if (ev->occurred_at > now + OSY_ACWH_AHEAD_MS) {
                ev->occurred_at  = now;
                ev->time_clamped = 1;
        }
        if (!(ev->email = GET(form, "contact", "email")))
                ev->email = GET(form, "email");
        if (!ev->email || !*ev->email)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "contact[email]: missing");
        if (!(ev->contact_id = GET(form, "contact", "id")) || !*ev->contact_id)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "contact[id]: missing");
        if (ev->kind == OSY_AC_TAG_ADDED || ev->kind == OSY_AC_TAG_REMOVED) {
                if (!(ev->tag = GET(form, "tag")) || !*ev->tag)
                        return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                           "tag: missing for type %s",
                                           ev->type);
        }
        ev->campaign_id = GET(form, "campaign", "id");
        if (ev->campaign_id &&
            (!*ev->campaign_id || !strcmp(ev->campaign_id, "0")))
                ev->campaign_id = NULL; /* "0": not caused by a campaign */
        /* Tags: one ", "-joined string (what AC sends), or an array. */
        ev->tags_csv = GET(form, "contact", "tags");
        for (size_t i = 0; i < form->n; i++)
                if (form->f[i].nseg == 3 &&
                    !strcmp(form->f[i].seg[0], "contact") &&
                    !strcmp(form->f[i].seg[1], "tags"))
                        ev->tag_items++;
        ev->initiated_by = initiator_of(GET(form, "initiated_from"));
        if (ev->kind == OSY_AC_BOUNCE) {
                if (!(bt = GET(form, "bounce", "type")))
                        bt = GET(form, "bounce_type");
                ev->bounce_type = bounce_of(bt);
        }
        auto_id        = GET(form, "automation", "id");
        ev->automation = auto_id && *auto_id && strcmp(auto_id, "0");
        if ((err = collect_lists(form, ev, errstr, errstr_size)))
                return err;
        return OSY_OK;
}

/* ---- building ------------------------------------------------------------ */

static osy_err_t set_tags(const struct osy_acwh_event *ev,
                          struct osy_ac_event *ae)
{
        const struct osy_acwh_form *form = ev->form;
        osy_err_t err;

        if (ev->tag_items) {
                ae->has_tags = 1;
                for (size_t i = 0; i < form->n; i++) {
                        const struct osy_acwh_field *f = &form->f[i];
                        if (f->nseg != 3 || strcmp(f->seg[0], "contact") ||
                            strcmp(f->seg[1], "tags") || !*f->value)
                                continue;
                        if ((err = osy_ac_event_add_tag(ae, f->value)))
                                return err;
                }
                return OSY_OK;
        }
        if (ev->tags_csv)
                return osy_ac_event_set_tags_csv(ae, ev->tags_csv);
        return OSY_OK;
}

static void drop_tags(struct osy_ac_event *ae)
{
        for (size_t i = 0; i < ae->tags_cnt; i++)
                free(ae->tags[i]);
        free(ae->tags);
        ae->tags     = NULL;
        ae->tags_cnt = 0;
        ae->has_tags = 0;
}

/* Fill one message for @p list (NULL: none). */
static osy_err_t build_one(const struct osy_acwh_event *ev, const char *tenant,
                           const char *list, struct osy_msg *m, char *errstr,
                           size_t errstr_size)
{
        struct osy_ac_event *ae = &m->ac_event;
        char why[OSY_ERRSTR_SIZE];
        osy_err_t err;

        osy_msg_init(m, OSY_MSG_AC_EVENT);
        if ((err = osy_msg_set_envelope(m, tenant, ev->email, OSY_SRC_AC,
                                        ev->occurred_at, why, sizeof(why)))) {
                if (err == OSY_ERR_INVALID)
                        osy_err_set(err, errstr, errstr_size,
                                    "contact[email]: %s", why);
                else
                        osy_err_set(err, errstr, errstr_size, "%s", why);
                goto out;
        }
        ae->kind = ev->kind;
        ae->bounce_type =
            ev->kind == OSY_AC_BOUNCE ? ev->bounce_type : OSY_BOUNCE_NONE;
        ae->automation   = ev->automation;
        ae->initiated_by = ev->initiated_by;
        ae->echo         = 0; /* AC does not say which API key acted */
        if ((err = osy_msg_strset(&ae->contact_id, ev->contact_id)) ||
            (err = osy_msg_strset(&ae->list_id, list)) ||
            (err = osy_msg_strset(&ae->campaign_id, ev->campaign_id)) ||
            (err = osy_msg_strset(&ae->tag, ev->tag))) {
                osy_err_set(err, errstr, errstr_size, "out of memory");
                goto out;
        }
        err = set_tags(ev, ae);
        if (err == OSY_ERR_NOMEM) {
                osy_err_set(err, errstr, errstr_size, "out of memory");
                goto out;
        }
        /* Tags are a cache hint: when they break the schema (too many, too
         * long, control bytes), leave them out and let the rules look the
         * contact's tags up rather than refuse the opt-out. */
        if (err || (ae->has_tags && osy_msg_validate(m, why, sizeof(why))))
                drop_tags(ae);
        if ((err = osy_msg_finalize(m, why, sizeof(why)))) {
                /* Name the webhook field behind the schema path. */
                osy_err_set(err, errstr, errstr_size, "%s", why);
                goto out;
        }
out:
        if (err)
                osy_msg_clear(m);
        return err;
}

osy_err_t osy_acwh_build(const struct osy_acwh_event *ev, const char *tenant,
                         struct osy_msg *msgs, size_t max, size_t *n,
                         char *errstr, size_t errstr_size)
{
        int per_list =
            ev->kind == OSY_AC_SUBSCRIBE || ev->kind == OSY_AC_UNSUBSCRIBE;
        size_t want   = per_list && ev->n_lists > 1 ? ev->n_lists : 1;
        osy_err_t err = OSY_OK;

        *n = 0;
        if (ev->kind == OSY_AC_KIND_NONE)
                return OSY_OK;
        if (want > max)
                return osy_err_set(OSY_ERR_TOO_LARGE, errstr, errstr_size,
                                   "list: %zu lists, room for %zu", want, max);
        for (size_t i = 0; i < want && !err; i++) {
                const char *list;
                if (per_list)
                        list = ev->n_lists ? ev->lists[i] : "0";
                else /* optional elsewhere: only an unambiguous one */
                        list = ev->n_lists == 1 && strcmp(ev->lists[0], "0")
                                   ? ev->lists[0]
                                   : NULL;
                if (!(err = build_one(ev, tenant, list, &msgs[i], errstr,
                                      errstr_size)))
                        (*n)++;
        }
        if (err) {
                for (size_t i = 0; i < *n; i++)
                        osy_msg_clear(&msgs[i]);
                *n = 0;
        }
        return err;
}

/* ---- the whole path ------------------------------------------------------ */

void osy_acwh_result_clear(struct osy_acwh_result *res)
{
        if (!res)
                return;
        for (size_t i = 0; i < res->n; i++) {
                free(res->out[i].key);
                free(res->out[i].value);
        }
        free(res->out);
        memset(res, 0, sizeof(*res));
}

osy_err_t osy_acwh_decode(const char *tenant, const char *body, size_t len,
                          osy_acwh_format_t fmt, struct osy_acwh_result *res,
                          char *errstr, size_t errstr_size)
{
        struct osy_acwh_form form = {0};
        struct osy_acwh_event ev;
        struct osy_msg *msgs = NULL;
        size_t n             = 0, room;
        osy_err_t err;

        memset(res, 0, sizeof(*res));
        res->type_label = "none";
        if ((err = osy_acwh_form_parse(&form, body, len, fmt, errstr,
                                       errstr_size)))
                goto out;
        err = osy_acwh_extract(&form, &ev, errstr, errstr_size);
        if (ev.type && *ev.type)
                res->type_label = ev.kind ? osy_ac_kind2str(ev.kind) : "other";
        if (err || ev.kind == OSY_AC_KIND_NONE)
                goto out;
        res->kind = ev.kind;
        room      = ev.n_lists > 1 ? ev.n_lists : 1;
        if (!(msgs = calloc(room, sizeof(*msgs))) ||
            !(res->out = calloc(room, sizeof(*res->out)))) {
                err = osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                  "out of memory");
                goto out;
        }
        if ((err = osy_acwh_build(&ev, tenant, msgs, room, &n, errstr,
                                  errstr_size)))
                goto out;
        for (size_t i = 0; i < n; i++) {
                struct osy_acwh_out *o = &res->out[i];
                char key[OSY_PARTITION_KEY_BUFSZ];
                char why[OSY_ERRSTR_SIZE];

                if ((err = osy_msg_encode(&msgs[i], &o->value, &o->value_len,
                                          why, sizeof(why)))) {
                        osy_err_set(err, errstr, errstr_size, "%s", why);
                        goto out;
                }
                res->n++; /* owns o->value from here */
                if ((err = osy_partition_key(msgs[i].tenant, msgs[i].email, key,
                                             sizeof(key)))) {
                        osy_err_set(err, errstr, errstr_size,
                                    "partition key: %s", osy_err2str(err));
                        goto out;
                }
                o->key_len = strlen(key);
                if (!(o->key = strdup(key))) {
                        err = osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                          "out of memory");
                        goto out;
                }
                memcpy(o->id, msgs[i].id, sizeof(o->id));
        }
out:
        for (size_t i = 0; msgs && i < n; i++)
                osy_msg_clear(&msgs[i]);
        free(msgs);
        osy_acwh_form_clear(&form);
        if (err) {
                const char *label = res->type_label;
                osy_acwh_result_clear(res);
                res->type_label = label;
        }
        return err;
}
