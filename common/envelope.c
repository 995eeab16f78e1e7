/*
 * envelope.c - strict JSON encode/decode of the optsync messages, their
 * schema rules, deterministic ids (SHA-256) and the partition key.
 * docs/events.md is the human-readable side of this file: keep in step.
 */
#include "optsync/envelope.h"
#include "optsync/email.h"
#include "optsync/timeutil.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every error path in this file reports the JSON path of the problem. */
#define BAD(...) osy_err_set(OSY_ERR_INVALID, errstr, errstr_size, __VA_ARGS__)

/* Integers travel as JSON numbers (doubles): beyond 2^53 they lose
 * precision, so no field may hold more. */
#define INT_JSON_MAX INT64_C(9007199254740991)

/* ---- per-thread scratch ----------------------------------------------- */

/*
 * Decoding one event made about fifty small allocations: cJSON's nodes and
 * strings, all freed again before the decode returns. While a thread
 * decodes, cJSON allocates from that thread's bump arena instead, emptied
 * after each message (bench: rules-bench-gen --cpu). The hooks are set
 * once before main(), so no thread ever sees them change; outside a
 * decode, and for what does not fit, they are malloc() and free().
 */
#define PARSE_ARENA_SIZE (192 * 1024) /* three times OSY_MSG_MAX_BYTES */

struct scratch {
        char *arena;
        size_t used;
        int active;     /* this thread is decoding: allocate from arena */
        EVP_MD_CTX *md; /* reused for every id this thread hashes */
};

static pthread_key_t scratch_key;
static int scratch_key_ok; /* 0: no key, so no per-thread scratch */
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static _Thread_local struct scratch *tls_scratch;

static void scratch_free(void *p)
{
        struct scratch *sc = p;

        if (!sc)
                return;
        if (tls_scratch == sc)
                tls_scratch = NULL;
        EVP_MD_CTX_free(sc->md);
        free(sc->arena);
        free(sc);
}

static void scratch_key_make(void)
{
        scratch_key_ok = !pthread_key_create(&scratch_key, scratch_free);
}

/* This thread's scratch, made on first use; NULL without memory. */
static struct scratch *scratch(void)
{
        struct scratch *sc = tls_scratch;

        if (sc)
                return sc;
        pthread_once(&scratch_once, scratch_key_make);
        if (!scratch_key_ok || !(sc = calloc(1, sizeof(*sc))))
                return NULL;
        if (pthread_setspecific(scratch_key, sc)) {
                free(sc);
                return NULL;
        }
        tls_scratch = sc;
        return sc;
}

static void *json_alloc(size_t n)
{
        struct scratch *sc = tls_scratch;

        if (sc && sc->active) {
                size_t need = (n + 15) & ~(size_t)15;
                if (need >= n && PARSE_ARENA_SIZE - sc->used >= need) {
                        void *p = sc->arena + sc->used;
                        sc->used += need;
                        return p;
                }
        }
        return malloc(n);
}

static void json_free(void *p)
{
        struct scratch *sc = tls_scratch;

        if (sc && sc->arena && (char *)p >= sc->arena &&
            (char *)p < sc->arena + PARSE_ARENA_SIZE)
                return; /* the arena is emptied as a whole */
        free(p);
}

__attribute__((constructor)) static void json_hooks_install(void)
{
        cJSON_Hooks h = {json_alloc, json_free};
        cJSON_InitHooks(&h);
}

/* Decode from the arena until arena_end(); 0 if it cannot be had (then
 * cJSON simply uses malloc). */
static struct scratch *arena_begin(void)
{
        struct scratch *sc = scratch();

        if (!sc)
                return NULL;
        if (!sc->arena && !(sc->arena = malloc(PARSE_ARENA_SIZE)))
                return NULL;
        sc->used   = 0;
        sc->active = 1;
        return sc;
}

static void arena_end(struct scratch *sc)
{
        if (sc) {
                sc->active = 0;
                sc->used   = 0;
        }
}

/* Decimal @p v into @p buf (24 bytes), without snprintf (a call per id
 * showed in profiles). */
static void dec_i64(int64_t v, char buf[24])
{
        char tmp[24];
        uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        size_t t = 0, m = 0;

        do {
                tmp[t++] = (char)('0' + u % 10);
                u /= 10;
        } while (u);
        if (v < 0)
                buf[m++] = '-';
        while (t)
                buf[m++] = tmp[--t];
        buf[m] = '\0';
}

/* ---- names ------------------------------------------------------------ */

/*
 * One table per enum gives both directions (encode: value -> name,
 * decode: name -> value), so the two can never disagree. The enums in
 * envelope.h keep 0 for "not set", which makes a zeroed struct mean
 * "nothing filled in" and lets validation say "required".
 */

/* Wire names, indexed by enum value; index 0 ("not set") has none. */
static const char *const type_names[OSY_MSG__CNT] = {
    NULL, "ac.event", "sf.event", "sf.command", "ac.command", "audit", "dlq"};
static const char *const source_names[OSY_SRC__CNT] = {
    NULL, "ac", "sf", "rules", "sf-writer", "ac-writer", "reconciler"};
static const char *const ac_kind_names[OSY_AC_KIND__CNT] = {
    NULL,     "subscribe",         "unsubscribe",
    "bounce", "contact_tag_added", "contact_tag_removed",
    "update"};
static const char *const bounce_names[OSY_BOUNCE__CNT]  = {NULL, "hard", "soft",
                                                           "unknown"};
static const char *const initiator_names[OSY_INIT__CNT] = {
    NULL, "public", "admin", "api", "system", "unknown"};
static const char *const sf_kind_names[OSY_SF_KIND__CNT] = {
    NULL, "opt_out_changed", "lead_converted", "created", "undeleted"};
static const char *const sf_object_names[OSY_SF_OBJ__CNT] = {NULL, "Contact",
                                                             "Lead"};
static const char *const rule_names[OSY_RULE__CNT] = {NULL, "R1", "R2", "R3",
                                                      "R4"};
static const char *const ac_action_names[OSY_AC_ACTION__CNT] = {
    NULL, "unsubscribe_all_lists"};
static const char *const stage_names[OSY_STAGE__CNT] = {
    NULL,        "ac-ingest", "sf-ingest", "rules",
    "sf-writer", "ac-writer", "reconciler"};
static const char *const outcome_names[OSY_OUTCOME__CNT] = {
    NULL,        "applied",  "skipped", "duplicate",    "stale",
    "coalesced", "retrying", "failed",  "dead_lettered"};
static const char *const api_names[OSY_API__CNT] = {NULL, "ac", "sf"};

#define NAME(tab, v)                                                           \
        ((int)(v) > 0 && (size_t)(v) < sizeof(tab) / sizeof(tab[0])            \
             ? tab[(int)(v)]                                                   \
             : "?")

const char *osy_msg_type2str(osy_msg_type_t t)
{
        return NAME(type_names, t);
}
const char *osy_source2str(osy_source_t s)
{
        return NAME(source_names, s);
}
const char *osy_ac_kind2str(osy_ac_kind_t k)
{
        return NAME(ac_kind_names, k);
}
const char *osy_sf_kind2str(osy_sf_kind_t k)
{
        return NAME(sf_kind_names, k);
}
const char *osy_rule2str(osy_rule_t r)
{
        return NAME(rule_names, r);
}
const char *osy_stage2str(osy_stage_t s)
{
        return NAME(stage_names, s);
}
const char *osy_outcome2str(osy_outcome_t o)
{
        return NAME(outcome_names, o);
}

osy_topic_t osy_msg_type_topic(osy_msg_type_t type)
{
        switch (type) {
        case OSY_MSG_AC_EVENT:
                return OSY_TOPIC_AC_EVENTS;
        case OSY_MSG_SF_EVENT:
                return OSY_TOPIC_SF_EVENTS;
        case OSY_MSG_SF_COMMAND:
                return OSY_TOPIC_SF_COMMANDS;
        case OSY_MSG_AC_COMMAND:
                return OSY_TOPIC_AC_COMMANDS;
        case OSY_MSG_AUDIT:
                return OSY_TOPIC_AUDIT;
        case OSY_MSG_DLQ:
                return OSY_TOPIC_DLQ;
        default:
                return OSY_TOPIC__CNT;
        }
}

/* @returns the enum value whose name is @p s, or 0 if none. */
static int enum_parse(const char *const *names, int cnt, const char *s)
{
        for (int i = 1; i < cnt; i++)
                if (!strcmp(names[i], s))
                        return i;
        return 0;
}

/* "a|b|c" for error messages. */
static const char *enum_expected(const char *const *names, int cnt, char *buf,
                                 size_t size)
{
        size_t off = 0;

        buf[0] = '\0';
        for (int i = 1; i < cnt && off < size; i++) {
                int n = snprintf(buf + off, size - off, "%s%s",
                                 i > 1 ? "|" : "", names[i]);
                if (n < 0)
                        break;
                off += (size_t)n;
        }
        return buf;
}

/* ---- life cycle --------------------------------------------------------- */

/*
 * A message owns every string it points to. All payload structs are
 * members (not a union), so clearing frees the lot whatever the type says.
 */

void osy_msg_init(struct osy_msg *msg, osy_msg_type_t type)
{
        memset(msg, 0, sizeof(*msg));
        msg->type = type;
}

void osy_msg_clear(struct osy_msg *msg)
{
        if (!msg)
                return;
        free(msg->tenant);
        free(msg->email);
        free(msg->ac_event.contact_id);
        free(msg->ac_event.list_id);
        free(msg->ac_event.campaign_id);
        free(msg->ac_event.tag);
        for (size_t i = 0; i < msg->ac_event.tags_cnt; i++)
                free(msg->ac_event.tags[i]);
        free(msg->ac_event.tags);
        free(msg->sf_event.record_id);
        free(msg->sf_event.converted_contact_id);
        free(msg->sf_event.change_origin);
        free(msg->sf_event.replay_id);
        free(msg->sf_command.version.tie);
        free(msg->ac_command.contact_id);
        free(msg->ac_command.version.tie);
        free(msg->audit.action);
        free(msg->audit.detail);
        free(msg->dlq.reason);
        free(msg->dlq.first_error);
        free(msg->dlq.last_error);
        free(msg->dlq.original.topic);
        free(msg->dlq.original.key);
        free(msg->dlq.original.value);
        memset(msg, 0, sizeof(*msg));
}

struct osy_msg *osy_msg_new(osy_msg_type_t type)
{
        struct osy_msg *msg = malloc(sizeof(*msg));

        if (msg)
                osy_msg_init(msg, type);
        return msg;
}

void osy_msg_free(struct osy_msg *msg)
{
        osy_msg_clear(msg);
        free(msg);
}

/* ---- filling ------------------------------------------------------------ */

/*
 * Setters copy their input, so callers can fill a message from short-lived
 * buffers (a webhook body, a CometD frame) and free those right away.
 */

/* malloc()ed copy of @p len bytes plus a NUL. */
static char *memdup0(const void *p, size_t len)
{
        char *s = malloc(len + 1);

        if (!s)
                return NULL;
        if (len)
                memcpy(s, p, len);
        s[len] = '\0';
        return s;
}

/* Longest prefix of s[0..len) that does not cut a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
        size_t cut = len <= max ? len : max;

        if (cut == len)
                return cut;
        while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
                cut--;
        return cut;
}

osy_err_t osy_msg_strset_trunc(char **field, const char *value, size_t max)
{
        char *copy = NULL;

        if (value) {
                size_t len = strlen(value);
                if (!(copy = memdup0(value, utf8_cut(value, len, max))))
                        return OSY_ERR_NOMEM;
        }
        free(*field);
        *field = copy;
        return OSY_OK;
}

osy_err_t osy_msg_strset(char **field, const char *value)
{
        return osy_msg_strset_trunc(field, value, SIZE_MAX);
}

osy_err_t osy_tenant_check(const char *tenant, char *errstr, size_t errstr_size)
{
        size_t len;

        if (!tenant || !*tenant)
                return BAD("tenant: empty");
        len = strlen(tenant);
        if (len > OSY_TENANT_MAX)
                return BAD("tenant: %zu bytes, more than %d", len,
                           OSY_TENANT_MAX);
        for (size_t i = 0; i < len; i++) {
                char c = tenant[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                      c == '-'))
                        return BAD("tenant: character 0x%02x at byte %zu is "
                                   "not in [A-Za-z0-9_.-]",
                                   (unsigned char)c, i);
        }
        return OSY_OK;
}

osy_err_t osy_msg_set_envelope(struct osy_msg *msg, const char *tenant,
                               const char *email, osy_source_t source,
                               int64_t occurred_at, char *errstr,
                               size_t errstr_size)
{
        char norm[OSY_EMAIL_BUFSZ];
        osy_err_t err;

        if ((err = osy_tenant_check(tenant, errstr, errstr_size)) != OSY_OK)
                return err;
        if ((err = osy_email_normalise(email, norm, sizeof(norm), errstr,
                                       errstr_size)) != OSY_OK)
                return err;
        if (osy_msg_strset(&msg->tenant, tenant) != OSY_OK ||
            osy_msg_strset(&msg->email, norm) != OSY_OK)
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "out of memory");
        msg->source      = source;
        msg->occurred_at = occurred_at;
        return OSY_OK;
}

/* Append one tag (a copy of @p len bytes). The cap keeps a hostile
 * webhook from growing a message without bound. */
static osy_err_t tags_push(struct osy_ac_event *ev, const char *tag, size_t len)
{
        char **tags;
        char *copy;

        if (ev->tags_cnt >= OSY_TAGS_MAX)
                return OSY_ERR_TOO_LARGE;
        if (!(copy = memdup0(tag, len)))
                return OSY_ERR_NOMEM;
        tags = realloc(ev->tags, (ev->tags_cnt + 1) * sizeof(*tags));
        if (!tags) {
                free(copy);
                return OSY_ERR_NOMEM;
        }
        tags[ev->tags_cnt++] = copy;
        ev->tags             = tags;
        ev->has_tags         = 1;
        return OSY_OK;
}

osy_err_t osy_ac_event_add_tag(struct osy_ac_event *ev, const char *tag)
{
        if (!tag)
                return OSY_ERR_INVALID;
        return tags_push(ev, tag, strlen(tag));
}

osy_err_t osy_ac_event_set_tags_csv(struct osy_ac_event *ev, const char *csv)
{
        const char *p = csv ? csv : "";
        osy_err_t err;

        for (size_t i = 0; i < ev->tags_cnt; i++)
                free(ev->tags[i]);
        free(ev->tags);
        ev->tags     = NULL;
        ev->tags_cnt = 0;
        ev->has_tags = 1; /* known, even if empty */
        /* AC joins tag names with ", "; a name holding a comma cannot be
         * told apart, which is AC's format's limit, not ours. */
        while (*p) {
                const char *end = strchr(p, ',');
                const char *b = p, *e = end ? end : p + strlen(p);

                while (b < e && (*b == ' ' || *b == '\t'))
                        b++;
                while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
                        e--;
                if (e > b &&
                    (err = tags_push(ev, b, (size_t)(e - b))) != OSY_OK)
                        return err;
                if (!end)
                        break;
                p = end + 1;
        }
        return OSY_OK;
}

osy_err_t osy_msg_dlq_set_original(struct osy_msg *msg, const char *topic,
                                   int32_t partition, int64_t offset,
                                   const void *key, size_t key_len,
                                   const void *value, size_t value_len)
{
        struct osy_dlq_original *o = &msg->dlq.original;
        size_t klen = key_len > OSY_DLQ_KEY_MAX ? OSY_DLQ_KEY_MAX : key_len;
        size_t vlen =
            value_len > OSY_DLQ_VALUE_MAX ? OSY_DLQ_VALUE_MAX : value_len;
        char *t = NULL, *k = NULL, *v = NULL;

        /* Copies first, so a failure leaves the old original intact. */
        if ((topic && !(t = memdup0(topic, strlen(topic)))) ||
            (key && !(k = memdup0(key, klen))) ||
            !(v = memdup0(value ? value : "", value ? vlen : 0))) {
                free(t);
                free(k);
                free(v);
                return OSY_ERR_NOMEM;
        }
        free(o->topic);
        free(o->key);
        free(o->value);
        o->topic      = t;
        o->partition  = partition;
        o->offset     = offset;
        o->has_key    = key != NULL;
        o->key        = (unsigned char *)k;
        o->key_len    = key ? klen : 0;
        o->value      = (unsigned char *)v;
        o->value_len  = value ? vlen : 0;
        o->value_size = value ? (int64_t)value_len : 0;
        return OSY_OK;
}

/* Bytewise tie order (strcmp) on purpose: locale-free, so every replica
 * (and any other language comparing bytes) agrees on the newest. */
int osy_version_cmp(const struct osy_version *a, const struct osy_version *b)
{
        if (a->ms != b->ms)
                return a->ms < b->ms ? -1 : 1;
        if (!a->tie || !b->tie)
                return (a->tie != NULL) - (b->tie != NULL);
        return strcmp(a->tie, b->tie);
}

/* ---- validation --------------------------------------------------------- */

/*
 * The schema's semantic rules live here and only here. Decoding turns JSON
 * into the structs (types, enum names, time syntax) and then calls
 * osy_msg_validate(); encoding calls it first. So a producer can never
 * write what a consumer would refuse, and the error text is the same in
 * both directions: "<json path>: <problem>".
 */

/* Character classes of string fields. */
typedef enum {
        CS_TOKEN,     /* AC ids: [A-Za-z0-9_.:-] */
        CS_SFID,      /* SF ids: 15 or 18 of [A-Za-z0-9] */
        CS_ACTION,    /* audit action: [a-z0-9_.-] */
        CS_PRINTABLE, /* printable ASCII, no space: ties, replay ids */
        CS_TOPIC,     /* Kafka topic: [A-Za-z0-9._-] */
        CS_LINE,      /* UTF-8 without control characters */
        CS_TEXT       /* any UTF-8 (control characters are escaped) */
} charset_t;

static const char *const charset_desc[] = {"[A-Za-z0-9_.:-]",
                                           "[A-Za-z0-9]",
                                           "[a-z0-9_.-]",
                                           "printable ASCII",
                                           "[A-Za-z0-9._-]",
                                           "no control characters",
                                           "any"};

static int char_ok(charset_t cs, unsigned char c)
{
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9');

        switch (cs) {
        case CS_TOKEN:
                return alnum || c == '_' || c == '.' || c == ':' || c == '-';
        case CS_SFID:
                return alnum;
        case CS_ACTION:
                return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                       c == '_' || c == '.' || c == '-';
        case CS_PRINTABLE:
                return c > 0x20 && c < 0x7f;
        case CS_TOPIC:
                return alnum || c == '.' || c == '_' || c == '-';
        case CS_LINE:
                return c >= 0x20 && c != 0x7f;
        case CS_TEXT:
                return 1;
        }
        return 0;
}

/*
 * Check one string field. NULL passes unless @p required. An empty string
 * never passes: optional fields are omitted, not empty.
 */
static osy_err_t check_str(const char *path, const char *s, int required,
                           size_t max, charset_t cs, char *errstr,
                           size_t errstr_size)
{
        size_t len;

        if (!s)
                return required ? BAD("%s: required", path) : OSY_OK;
        len = strlen(s);
        if (len == 0)
                return BAD("%s: empty (omit the field instead)", path);
        if (len > max)
                return BAD("%s: %zu bytes, more than %zu", path, len, max);
        if (!osy_utf8_valid(s, len))
                return BAD("%s: not valid UTF-8", path);
        if (cs == CS_SFID && len != 15 && len != 18)
                return BAD("%s: a Salesforce id has 15 or 18 characters, "
                           "not %zu",
                           path, len);
        for (size_t i = 0; i < len; i++)
                if (!char_ok(cs, (unsigned char)s[i]))
                        return BAD("%s: character 0x%02x at byte %zu not "
                                   "allowed (%s)",
                                   path, (unsigned char)s[i], i,
                                   charset_desc[cs]);
        return OSY_OK;
}

/* 32 lowercase hex digits. */
static int is_id(const char *s)
{
        size_t i;

        for (i = 0; i < OSY_ID_LEN; i++)
                if (!((s[i] >= '0' && s[i] <= '9') ||
                      (s[i] >= 'a' && s[i] <= 'f')))
                        return 0;
        return s[i] == '\0';
}

static osy_err_t check_id(const char *path, const char *s, char *errstr,
                          size_t errstr_size)
{
        if (!s[0])
                return BAD("%s: required", path);
        if (!is_id(s))
                return BAD("%s: expected 32 lowercase hex digits", path);
        return OSY_OK;
}

static osy_err_t check_time(const char *path, int64_t ms, char *errstr,
                            size_t errstr_size)
{
        if (ms < 0 || ms > OSY_TIME_MAX_MS)
                return BAD("%s: %lld ms is outside 1970..9999", path,
                           (long long)ms);
        return OSY_OK;
}

static osy_err_t check_version(const char *path, const struct osy_version *v,
                               char *errstr, size_t errstr_size)
{
        char p[64];
        osy_err_t err;

        snprintf(p, sizeof(p), "%s.ms", path);
        if ((err = check_time(p, v->ms, errstr, errstr_size)) != OSY_OK)
                return err;
        snprintf(p, sizeof(p), "%s.tie", path);
        return check_str(p, v->tie, 1, 64, CS_PRINTABLE, errstr, errstr_size);
}

/* Which producers may write each type (bit per osy_source_t). */
#define SRC(s) (1u << (s))
static const unsigned type_sources[OSY_MSG__CNT] = {
    [OSY_MSG_AC_EVENT]   = SRC(OSY_SRC_AC) | SRC(OSY_SRC_RECONCILER),
    [OSY_MSG_SF_EVENT]   = SRC(OSY_SRC_SF) | SRC(OSY_SRC_RECONCILER),
    [OSY_MSG_SF_COMMAND] = SRC(OSY_SRC_RULES) | SRC(OSY_SRC_RECONCILER),
    [OSY_MSG_AC_COMMAND] = SRC(OSY_SRC_RULES) | SRC(OSY_SRC_RECONCILER),
    [OSY_MSG_AUDIT]      = ~0u,
    [OSY_MSG_DLQ]        = ~0u,
};

static osy_err_t validate_envelope(const struct osy_msg *m, char *errstr,
                                   size_t errstr_size)
{
        int dlq = m->type == OSY_MSG_DLQ;
        osy_err_t err;

        if (m->type <= OSY_MSG_NONE || m->type >= OSY_MSG__CNT)
                return BAD("type: not set");
        /* A dead letter may come from bytes nobody could parse: then the
         * person is unknown, and both fields are left out. */
        if (dlq && !m->tenant && !m->email)
                goto source;
        if (dlq && (!m->tenant || !m->email))
                return BAD("%s: dlq carries tenant and email together or "
                           "neither",
                           m->tenant ? "email" : "tenant");
        if (!m->tenant)
                return BAD("tenant: required");
        if ((err = osy_tenant_check(m->tenant, errstr, errstr_size)) != OSY_OK)
                return err;
        if (!m->email)
                return BAD("email: required");
        if (!osy_email_is_normal(m->email)) {
                char norm[OSY_EMAIL_BUFSZ];

                /* Say why: invalid, or valid but not in normal form. */
                if ((err = osy_email_normalise(m->email, norm, sizeof(norm),
                                               errstr, errstr_size)) != OSY_OK)
                        return err;
                return BAD("email: not normalised (expected \"%s\")", norm);
        }
source:
        if (m->source <= OSY_SRC_NONE || m->source >= OSY_SRC__CNT)
                return BAD("source: required");
        if (!(type_sources[m->type] & SRC(m->source)))
                return BAD("source: %s does not produce %s messages",
                           osy_source2str(m->source),
                           osy_msg_type2str(m->type));
        return check_time("occurred_at", m->occurred_at, errstr, errstr_size);
}

/*
 * Kind-specific fields are required for their kind and refused elsewhere:
 * a bounce_type on an unsubscribe is a producer bug, and accepting it would
 * let R3 fire on the wrong event.
 */
static osy_err_t validate_ac_event(const struct osy_ac_event *e, char *errstr,
                                   size_t errstr_size)
{
        int tag_kind =
            e->kind == OSY_AC_TAG_ADDED || e->kind == OSY_AC_TAG_REMOVED;
        osy_err_t err;

        if (e->kind <= OSY_AC_KIND_NONE || e->kind >= OSY_AC_KIND__CNT)
                return BAD("payload.kind: required");
        if ((err = check_str("payload.contact_id", e->contact_id, 1, 64,
                             CS_TOKEN, errstr, errstr_size)) != OSY_OK)
                return err;
        if (!e->list_id &&
            (e->kind == OSY_AC_SUBSCRIBE || e->kind == OSY_AC_UNSUBSCRIBE))
                return BAD("payload.list_id: required for kind=%s",
                           osy_ac_kind2str(e->kind));
        if ((err = check_str("payload.list_id", e->list_id, 0, 64, CS_TOKEN,
                             errstr, errstr_size)) != OSY_OK)
                return err;
        if (e->kind == OSY_AC_BOUNCE && (e->bounce_type <= OSY_BOUNCE_NONE ||
                                         e->bounce_type >= OSY_BOUNCE__CNT))
                return BAD("payload.bounce_type: required for kind=bounce");
        if (e->kind != OSY_AC_BOUNCE && e->bounce_type != OSY_BOUNCE_NONE)
                return BAD("payload.bounce_type: only for kind=bounce");
        if ((err = check_str("payload.campaign_id", e->campaign_id, 0, 64,
                             CS_TOKEN, errstr, errstr_size)) != OSY_OK)
                return err;
        if (tag_kind && !e->tag)
                return BAD("payload.tag: required for kind=%s",
                           osy_ac_kind2str(e->kind));
        if (!tag_kind && e->tag)
                return BAD("payload.tag: only for kind=contact_tag_added or "
                           "contact_tag_removed");
        if ((err = check_str("payload.tag", e->tag, 0, OSY_TAG_MAX, CS_LINE,
                             errstr, errstr_size)) != OSY_OK)
                return err;
        if (!e->has_tags && e->tags_cnt)
                return BAD("payload.tags: set but has_tags is 0");
        if (e->tags_cnt > OSY_TAGS_MAX)
                return BAD("payload.tags: %zu tags, more than %d", e->tags_cnt,
                           OSY_TAGS_MAX);
        for (size_t i = 0; i < e->tags_cnt; i++) {
                char path[48];

                snprintf(path, sizeof(path), "payload.tags[%zu]", i);
                if ((err = check_str(path, e->tags[i], 1, OSY_TAG_MAX, CS_LINE,
                                     errstr, errstr_size)) != OSY_OK)
                        return err;
        }
        if (e->initiated_by <= OSY_INIT_NONE ||
            e->initiated_by >= OSY_INIT__CNT)
                return BAD("payload.initiated_by: required");
        return OSY_OK;
}

/*
 * Lead conversion ties three fields together: a converted Lead is written
 * through its Contact only (ARCHITECTURE.md section 1), so the rules must
 * never see a conversion without the Contact id, nor one on a Contact.
 */
static osy_err_t validate_sf_event(const struct osy_sf_event *e, char *errstr,
                                   size_t errstr_size)
{
        int lead = e->object == OSY_SF_LEAD;
        osy_err_t err;

        if (e->kind <= OSY_SF_KIND_NONE || e->kind >= OSY_SF_KIND__CNT)
                return BAD("payload.kind: required");
        if (e->object <= OSY_SF_OBJ_NONE || e->object >= OSY_SF_OBJ__CNT)
                return BAD("payload.object: required");
        if ((err = check_str("payload.record_id", e->record_id, 1, 18, CS_SFID,
                             errstr, errstr_size)) != OSY_OK)
                return err;
        if (e->has_opted_out_of_email == OSY_TRI_UNSET &&
            e->kind != OSY_SF_LEAD_CONVERTED)
                return BAD("payload.has_opted_out_of_email: required for "
                           "kind=%s",
                           osy_sf_kind2str(e->kind));
        if (!lead && e->is_converted != OSY_TRI_UNSET)
                return BAD("payload.is_converted: only for object=Lead");
        if (!lead && e->converted_contact_id)
                return BAD("payload.converted_contact_id: only for "
                           "object=Lead");
        if (e->kind == OSY_SF_LEAD_CONVERTED) {
                if (!lead)
                        return BAD("payload.object: must be Lead for "
                                   "kind=lead_converted");
                if (e->is_converted != OSY_TRI_TRUE)
                        return BAD("payload.is_converted: must be true for "
                                   "kind=lead_converted");
                if (!e->converted_contact_id)
                        return BAD("payload.converted_contact_id: required "
                                   "for kind=lead_converted");
        }
        if (e->converted_contact_id && e->is_converted != OSY_TRI_TRUE)
                return BAD("payload.is_converted: must be true when "
                           "converted_contact_id is set");
        if ((err = check_str("payload.converted_contact_id",
                             e->converted_contact_id, 0, 18, CS_SFID, errstr,
                             errstr_size)) != OSY_OK ||
            (err = check_str("payload.change_origin", e->change_origin, 0, 255,
                             CS_LINE, errstr, errstr_size)) != OSY_OK ||
            (err = check_str("payload.replay_id", e->replay_id, 0, 128,
                             CS_PRINTABLE, errstr, errstr_size)) != OSY_OK)
                return err;
        return OSY_OK;
}

static osy_err_t validate_sf_command(const struct osy_sf_command *c,
                                     char *errstr, size_t errstr_size)
{
        osy_err_t err;

        if (c->rule <= OSY_RULE_NONE || c->rule >= OSY_RULE__CNT)
                return BAD("payload.rule: required");
        /* The rules fix the direction: only R1 ever clears the flag. */
        if (!!c->has_opted_out_of_email != (c->rule != OSY_RULE_R1))
                return BAD("payload.has_opted_out_of_email: must be %s for "
                           "rule=%s",
                           c->rule == OSY_RULE_R1 ? "false" : "true",
                           osy_rule2str(c->rule));
        if ((err = check_id("payload.cause_event_id", c->cause_event_id, errstr,
                            errstr_size)) != OSY_OK)
                return err;
        return check_version("payload.version", &c->version, errstr,
                             errstr_size);
}

/* Only R4 writes to AC, and only by unsubscribing everything: the rules
 * never subscribe anyone in AC (ARCHITECTURE.md section 1). */
static osy_err_t validate_ac_command(const struct osy_ac_command *c,
                                     char *errstr, size_t errstr_size)
{
        osy_err_t err;

        if (c->action <= OSY_AC_ACTION_NONE || c->action >= OSY_AC_ACTION__CNT)
                return BAD("payload.action: required");
        if (c->rule != OSY_RULE_R4)
                return BAD("payload.rule: must be R4 for "
                           "action=unsubscribe_all_lists");
        if ((err = check_id("payload.cause_event_id", c->cause_event_id, errstr,
                            errstr_size)) != OSY_OK ||
            (err = check_str("payload.contact_id", c->contact_id, 0, 64,
                             CS_TOKEN, errstr, errstr_size)) != OSY_OK)
                return err;
        return check_version("payload.version", &c->version, errstr,
                             errstr_size);
}

/* Call fields (http_status, calls) only make sense with the api they were
 * made against: the rate-limit benchmark sums calls per api. */
static osy_err_t validate_audit(const struct osy_audit *a, char *errstr,
                                size_t errstr_size)
{
        osy_err_t err;

        if (a->stage <= OSY_STAGE_NONE || a->stage >= OSY_STAGE__CNT)
                return BAD("payload.stage: required");
        if ((err = check_str("payload.action", a->action, 1, 64, CS_ACTION,
                             errstr, errstr_size)) != OSY_OK)
                return err;
        if (a->rule < OSY_RULE_NONE || a->rule >= OSY_RULE__CNT)
                return BAD("payload.rule: out of range");
        if (a->outcome <= OSY_OUTCOME_NONE || a->outcome >= OSY_OUTCOME__CNT)
                return BAD("payload.outcome: required");
        if ((err = check_id("payload.ref_id", a->ref_id, errstr,
                            errstr_size)) != OSY_OK ||
            (err = check_str("payload.detail", a->detail, 0, OSY_TEXT_MAX,
                             CS_TEXT, errstr, errstr_size)) != OSY_OK)
                return err;
        if (a->api < OSY_API_NONE || a->api >= OSY_API__CNT)
                return BAD("payload.api: out of range");
        if (a->http_status && (a->http_status < 100 || a->http_status > 599))
                return BAD("payload.http_status: %d is not 100..599",
                           a->http_status);
        if (a->calls < 0 || a->calls > 1000000000)
                return BAD("payload.calls: out of range");
        if ((a->http_status || a->calls) && a->api == OSY_API_NONE)
                return BAD("payload.api: required with %s",
                           a->http_status ? "http_status" : "calls");
        return OSY_OK;
}

/* The original record is kept bounded (see OSY_DLQ_*_MAX) so that a dead
 * letter can always be written: a DLQ that refuses a record loses it. */
static osy_err_t validate_dlq(const struct osy_dlq *d, char *errstr,
                              size_t errstr_size)
{
        const struct osy_dlq_original *o = &d->original;
        osy_err_t err;

        if (d->stage <= OSY_STAGE_NONE || d->stage >= OSY_STAGE__CNT)
                return BAD("payload.stage: required");
        if ((err = check_str("payload.reason", d->reason, 1, OSY_REASON_MAX,
                             CS_TEXT, errstr, errstr_size)) != OSY_OK)
                return err;
        if (d->attempts < 1 || d->attempts > 1000000000)
                return BAD("payload.attempts: must be 1 or more");
        if ((err = check_str("payload.first_error", d->first_error, 1,
                             OSY_TEXT_MAX, CS_TEXT, errstr, errstr_size)) !=
                OSY_OK ||
            (err = check_str("payload.last_error", d->last_error, 1,
                             OSY_TEXT_MAX, CS_TEXT, errstr, errstr_size)) !=
                OSY_OK ||
            (err = check_time("payload.first_failed_at", d->first_failed_at,
                              errstr, errstr_size)) != OSY_OK ||
            (err = check_time("payload.last_failed_at", d->last_failed_at,
                              errstr, errstr_size)) != OSY_OK)
                return err;
        if (d->last_failed_at < d->first_failed_at)
                return BAD("payload.last_failed_at: before first_failed_at");
        if ((err = check_str("payload.original.topic", o->topic, 1, 249,
                             CS_TOPIC, errstr, errstr_size)) != OSY_OK)
                return err;
        if (o->partition < 0)
                return BAD("payload.original.partition: negative");
        if (o->offset < 0 || o->offset > INT_JSON_MAX)
                return BAD("payload.original.offset: out of range");
        if (!o->has_key && (o->key || o->key_len))
                return BAD("payload.original.key: set but has_key is 0");
        if ((o->key_len && !o->key) || (o->value_len && !o->value))
                return BAD("payload.original: a length without bytes");
        if (o->key_len > OSY_DLQ_KEY_MAX)
                return BAD("payload.original.key: more than %d bytes",
                           OSY_DLQ_KEY_MAX);
        if (o->value_len > OSY_DLQ_VALUE_MAX)
                return BAD("payload.original.value: more than %d bytes",
                           OSY_DLQ_VALUE_MAX);
        if (o->value_size < (int64_t)o->value_len ||
            o->value_size > INT_JSON_MAX)
                return BAD("payload.original.value_size: smaller than the "
                           "value or out of range");
        /* Values are only ever cut at the cap (osy_msg_dlq_set_original). */
        if (o->value_size > (int64_t)o->value_len &&
            o->value_len != OSY_DLQ_VALUE_MAX)
                return BAD("payload.original.value_size: larger than the "
                           "value, which is not cut at %d bytes",
                           OSY_DLQ_VALUE_MAX);
        return OSY_OK;
}

osy_err_t osy_msg_validate(const struct osy_msg *m, char *errstr,
                           size_t errstr_size)
{
        osy_err_t err;

        if (!m)
                return BAD("message: missing");
        if ((err = validate_envelope(m, errstr, errstr_size)) != OSY_OK)
                return err;
        switch (m->type) {
        case OSY_MSG_AC_EVENT:
                return validate_ac_event(&m->ac_event, errstr, errstr_size);
        case OSY_MSG_SF_EVENT:
                return validate_sf_event(&m->sf_event, errstr, errstr_size);
        case OSY_MSG_SF_COMMAND:
                return validate_sf_command(&m->sf_command, errstr, errstr_size);
        case OSY_MSG_AC_COMMAND:
                return validate_ac_command(&m->ac_command, errstr, errstr_size);
        case OSY_MSG_AUDIT:
                return validate_audit(&m->audit, errstr, errstr_size);
        case OSY_MSG_DLQ:
                return validate_dlq(&m->dlq, errstr, errstr_size);
        default:
                return BAD("type: not set");
        }
}

/* ---- ids ---------------------------------------------------------------- */

/*
 * Ids are computed, never assigned: the same occurrence seen twice (a
 * duplicate webhook, a CDC replay, a re-decided event) gets the same id,
 * which is what the rules' Redis dedup entries key on.
 */

/* SHA-256 fetched once: EVP_sha256() in a DigestInit makes OpenSSL 3
 * look the implementation up again on every call, which cost more than
 * hashing a short message. Never freed (one object per process). */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
        sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* "<len>:" without snprintf (it showed in profiles). @returns its length. */
static size_t len_prefix(size_t len, char *buf)
{
        char tmp[24];
        size_t n = 0, k = 0;

        do {
                tmp[n++] = (char)('0' + len % 10);
                len /= 10;
        } while (len);
        while (n)
                buf[k++] = tmp[--n];
        buf[k++] = ':';
        return k;
}

osy_err_t osy_id_hash(const char *const *fields, size_t n,
                      char out[OSY_ID_BUFSZ])
{
        static const char hex[] = "0123456789abcdef";
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        struct scratch *sc = scratch();
        EVP_MD_CTX *ctx    = NULL;
        osy_err_t err      = OSY_ERR_NOMEM;

        out[0] = '\0';
        /* One context per thread, reset by each DigestInit: a new one per
         * id was an allocation and a free per message. */
        if (sc && !sc->md)
                sc->md = EVP_MD_CTX_new();
        ctx = sc ? sc->md : EVP_MD_CTX_new();
        pthread_once(&sha256_once, sha256_fetch);
        if (!ctx ||
            !EVP_DigestInit_ex(ctx, sha256_md ? sha256_md : EVP_sha256(), NULL))
                goto out;
        for (size_t i = 0; i < n; i++) {
                char hdr[32];
                size_t len;

                /* Length prefixes make the encoding injective: no choice
                 * of field contents can make two field lists collide. */
                if (!fields[i]) {
                        if (!EVP_DigestUpdate(ctx, "~,", 2))
                                goto out;
                        continue;
                }
                len = strlen(fields[i]);
                if (!EVP_DigestUpdate(ctx, hdr, len_prefix(len, hdr)) ||
                    !EVP_DigestUpdate(ctx, fields[i], len) ||
                    !EVP_DigestUpdate(ctx, ",", 1))
                        goto out;
        }
        if (!EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen < OSY_ID_LEN / 2)
                goto out;
        for (int i = 0; i < OSY_ID_LEN / 2; i++) {
                out[2 * i]     = hex[md[i] >> 4];
                out[2 * i + 1] = hex[md[i] & 0xf];
        }
        out[OSY_ID_LEN] = '\0';
        err             = OSY_OK;
out:
        if (!sc)
                EVP_MD_CTX_free(ctx);
        return err;
}

static const char *tri_str(osy_tri_t t)
{
        return t == OSY_TRI_TRUE ? "true" : t == OSY_TRI_FALSE ? "false" : NULL;
}

/* The enum's wire name, or NULL when unset (an absent field). */
static const char *opt_name(const char *const *names, int cnt, int v)
{
        return v > 0 && v < cnt ? names[v] : NULL;
}

/*
 * The identifying fields of each type, in order (docs/events.md, "Ids").
 * Events: what the source reported, including its occurrence time, but
 * not how it reached us (echo, replay id, change origin). Commands: the
 * cause and the desired state. dlq: the failed Kafka record and stage.
 * Every type starts with type, tenant, email.
 */
static osy_err_t compute_id(const struct osy_msg *m, char out[OSY_ID_BUFSZ])
{
        const char *f[16];
        size_t n = 0;
        char t[24], a[24], b[24], c[24];
        char *tags = NULL;
        osy_err_t err;

        dec_i64(m->occurred_at, t);
        f[n++] = osy_msg_type2str(m->type);
        f[n++] = m->tenant; /* NULL only in a dlq without a person */
        f[n++] = m->email;
        switch (m->type) {
        case OSY_MSG_AC_EVENT: {
                const struct osy_ac_event *e = &m->ac_event;

                if (e->has_tags) {
                        /* The tag list as one field: a nested
                         * length-prefixed list, so absent, empty and
                         * ["a,b"] vs ["a","b"] all differ. */
                        size_t len = 1;
                        for (size_t i = 0; i < e->tags_cnt; i++)
                                len += strlen(e->tags[i]) + 24;
                        if (!(tags = malloc(len)))
                                return OSY_ERR_NOMEM;
                        size_t off = 0;
                        tags[0]    = '\0';
                        for (size_t i = 0; i < e->tags_cnt; i++)
                                off += (size_t)snprintf(
                                    tags + off, len - off, "%zu:%s,",
                                    strlen(e->tags[i]), e->tags[i]);
                }
                f[n++] = t;
                f[n++] = ac_kind_names[e->kind];
                f[n++] = e->contact_id;
                f[n++] = e->list_id;
                f[n++] =
                    opt_name(bounce_names, OSY_BOUNCE__CNT, e->bounce_type);
                f[n++] = e->campaign_id;
                f[n++] = e->automation ? "true" : "false";
                f[n++] = e->tag;
                f[n++] = tags;
                f[n++] = initiator_names[e->initiated_by];
                break;
        }
        case OSY_MSG_SF_EVENT: {
                const struct osy_sf_event *e = &m->sf_event;

                f[n++] = t;
                f[n++] = sf_kind_names[e->kind];
                f[n++] = sf_object_names[e->object];
                f[n++] = e->record_id;
                f[n++] = tri_str(e->has_opted_out_of_email);
                f[n++] = tri_str(e->is_converted);
                f[n++] = e->converted_contact_id;
                break;
        }
        case OSY_MSG_SF_COMMAND:
                f[n++] = m->sf_command.cause_event_id;
                f[n++] = rule_names[m->sf_command.rule];
                f[n++] =
                    m->sf_command.has_opted_out_of_email ? "true" : "false";
                break;
        case OSY_MSG_AC_COMMAND:
                f[n++] = m->ac_command.cause_event_id;
                f[n++] = rule_names[m->ac_command.rule];
                f[n++] = ac_action_names[m->ac_command.action];
                break;
        case OSY_MSG_AUDIT: {
                const struct osy_audit *au = &m->audit;

                snprintf(a, sizeof(a), "%d", au->http_status);
                f[n++] = t;
                f[n++] = stage_names[au->stage];
                f[n++] = au->action;
                f[n++] = opt_name(rule_names, OSY_RULE__CNT, au->rule);
                f[n++] = outcome_names[au->outcome];
                f[n++] = au->ref_id;
                f[n++] = opt_name(api_names, OSY_API__CNT, au->api);
                f[n++] = au->http_status ? a : NULL;
                break;
        }
        case OSY_MSG_DLQ: {
                const struct osy_dlq *d = &m->dlq;

                snprintf(b, sizeof(b), "%ld", (long)d->original.partition);
                snprintf(c, sizeof(c), "%lld", (long long)d->original.offset);
                f[n++] = stage_names[d->stage];
                f[n++] = d->original.topic;
                f[n++] = b;
                f[n++] = c;
                break;
        }
        default:
                return OSY_ERR_INVALID;
        }
        err = osy_id_hash(f, n, out);
        free(tags);
        return err;
}

osy_err_t osy_msg_compute_id(const struct osy_msg *msg, char *out, char *errstr,
                             size_t errstr_size)
{
        osy_err_t err;

        out[0] = '\0';
        if ((err = osy_msg_validate(msg, errstr, errstr_size)) != OSY_OK)
                return err;
        if ((err = compute_id(msg, out)) != OSY_OK)
                return osy_err_set(err, errstr, errstr_size,
                                   "id: hashing failed (out of memory)");
        return OSY_OK;
}

osy_err_t osy_msg_finalize(struct osy_msg *msg, char *errstr,
                           size_t errstr_size)
{
        char id[OSY_ID_BUFSZ];
        osy_err_t err = osy_msg_compute_id(msg, id, errstr, errstr_size);

        if (err == OSY_OK)
                memcpy(msg->id, id, sizeof(id));
        return err;
}

/* ---- partition key -------------------------------------------------------
 */

/* Keyed by person, every message about one person lands in one partition,
 * in order, and is handled by one rules worker at a time. */
osy_err_t osy_partition_key(const char *tenant, const char *email, char *buf,
                            size_t size)
{
        char norm[OSY_EMAIL_BUFSZ];
        int n;

        if (buf && size)
                buf[0] = '\0';
        if (osy_tenant_check(tenant, NULL, 0) != OSY_OK ||
            osy_email_normalise(email, norm, sizeof(norm), NULL, 0) != OSY_OK)
                return OSY_ERR_INVALID;
        if (!buf)
                return OSY_ERR_TOO_LARGE;
        n = snprintf(buf, size, "%s%c%s", tenant, OSY_PARTITION_KEY_SEP, norm);
        if (n < 0 || (size_t)n >= size) {
                if (size)
                        buf[0] = '\0';
                return OSY_ERR_TOO_LARGE;
        }
        return OSY_OK;
}

/* ---- base64 (dlq bytes) ------------------------------------------------- */

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const unsigned char *p, size_t len)
{
        char *out = malloc(4 * ((len + 2) / 3) + 1);
        size_t o  = 0;

        if (!out)
                return NULL;
        for (size_t i = 0; i < len; i += 3) {
                unsigned v = (unsigned)p[i] << 16;
                if (i + 1 < len)
                        v |= (unsigned)p[i + 1] << 8;
                if (i + 2 < len)
                        v |= p[i + 2];
                out[o++] = b64[(v >> 18) & 63];
                out[o++] = b64[(v >> 12) & 63];
                out[o++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
                out[o++] = i + 2 < len ? b64[v & 63] : '=';
        }
        out[o] = '\0';
        return out;
}

static int b64_val(char c)
{
        const char *p = c ? strchr(b64, c) : NULL;

        return p ? (int)(p - b64) : -1;
}

/* Strict: length a multiple of 4, '=' only as final padding.
 * @returns 0, or -1 if @p s is not base64 (or on no memory, *outp NULL). */
static int b64_decode(const char *s, unsigned char **outp, size_t *lenp)
{
        size_t len = strlen(s), o = 0;
        unsigned char *out;

        *outp = NULL;
        if (len % 4)
                return -1;
        if (!(out = malloc(len / 4 * 3 + 1)))
                return -2;
        for (size_t i = 0; i < len; i += 4) {
                int v[4], pad = 0;

                for (int k = 0; k < 4; k++) {
                        if (s[i + k] == '=' && i + 4 == len && k >= 2) {
                                v[k] = 0;
                                pad++;
                                continue;
                        }
                        if (pad || (v[k] = b64_val(s[i + k])) < 0) {
                                free(out);
                                return -1;
                        }
                }
                unsigned w =
                    (unsigned)(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
                out[o++] = (unsigned char)(w >> 16);
                if (pad < 2)
                        out[o++] = (unsigned char)(w >> 8);
                if (pad < 1)
                        out[o++] = (unsigned char)w;
        }
        out[o] = '\0';
        *outp  = out;
        *lenp  = o;
        return 0;
}

/*
 * Bytes as a JSON string: as text when they are UTF-8 without NUL and the
 * JSON escapes would not make it longer than base64; otherwise base64.
 * Readable when the original was JSON, compact when it was binary.
 */
static char *bytes_to_json_str(const unsigned char *p, size_t len, int *is_b64)
{
        size_t esc = 0;
        int text   = osy_utf8_valid((const char *)p, len);

        for (size_t i = 0; text && i < len; i++) {
                if (p[i] == 0)
                        text = 0;
                else if (p[i] == '"' || p[i] == '\\' || p[i] == '\n' ||
                         p[i] == '\r' || p[i] == '\t' || p[i] == '\b' ||
                         p[i] == '\f')
                        esc += 2;
                else if (p[i] < 0x20)
                        esc += 6;
                else
                        esc += 1;
        }
        *is_b64 = !(text && esc <= 4 * ((len + 2) / 3));
        return *is_b64 ? b64_encode(p, len) : memdup0(p, len);
}

/* ---- encode ------------------------------------------------------------- */

/*
 * The JSON is written straight into one growing buffer, byte for byte what
 * cJSON_PrintUnformatted() printed for the same members (this file used a
 * cJSON tree before; building and printing it cost more than the rest of
 * an encode). So: no spaces, members in call order, strings escaped as
 * cJSON escapes them, numbers formatted as cJSON formats them. The order
 * of the wb_*() calls below is the wire order documented in
 * docs/events.md (the doc test compares the two).
 */

/* Output buffer; @c fail remembers the first allocation failure. */
struct wb {
        char *p; /* starts at 1 KiB: an audit record fits */
        size_t len, cap;
        int fail;
        int depth;
        int comma[4]; /* per nesting level: a member was written */
};

static void wb_raw(struct wb *w, const char *s, size_t n)
{
        if (w->fail)
                return;
        if (w->len + n + 1 > w->cap) {
                size_t cap = w->cap ? w->cap : 1024;
                char *np;
                while (cap < w->len + n + 1)
                        cap *= 2;
                if (!(np = realloc(w->p, cap))) {
                        w->fail = 1;
                        return;
                }
                w->p   = np;
                w->cap = cap;
        }
        memcpy(w->p + w->len, s, n);
        w->len += n;
        w->p[w->len] = '\0';
}

/* A JSON string, escaped as cJSON's print_string_ptr() does: the two
 * mandatory escapes, the short forms for \b \f \n \r \t, \u00XX for the
 * other control bytes, everything else (UTF-8 included) as is. */
static void wb_quoted(struct wb *w, const char *s)
{
        static const char hex[] = "0123456789abcdef";
        const char *run         = s;

        wb_raw(w, "\"", 1);
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                char esc[6]     = {'\\', 0, '0', '0', 0, 0};
                size_t n        = 2;

                if (c >= 32 && c != '"' && c != '\\')
                        continue;
                wb_raw(w, run, (size_t)(s - run));
                run = s + 1;
                switch (c) {
                case '"':
                        esc[1] = '"';
                        break;
                case '\\':
                        esc[1] = '\\';
                        break;
                case '\b':
                        esc[1] = 'b';
                        break;
                case '\f':
                        esc[1] = 'f';
                        break;
                case '\n':
                        esc[1] = 'n';
                        break;
                case '\r':
                        esc[1] = 'r';
                        break;
                case '\t':
                        esc[1] = 't';
                        break;
                default:
                        esc[1] = 'u';
                        esc[4] = hex[c >> 4];
                        esc[5] = hex[c & 0xf];
                        n      = 6;
                }
                wb_raw(w, esc, n);
        }
        wb_raw(w, run, (size_t)(s - run));
        wb_raw(w, "\"", 1);
}

/* The member's key, after a comma unless it is the object's first.
 * Keys are this file's own literals ([a-z_]), never in need of escapes:
 * written in one piece. */
static void wb_key(struct wb *w, const char *k)
{
        char buf[40];
        size_t n = 0, len = strlen(k);

        if (len + 4 > sizeof(buf)) {
                if (w->comma[w->depth])
                        wb_raw(w, ",", 1);
                w->comma[w->depth] = 1;
                wb_quoted(w, k);
                wb_raw(w, ":", 1);
                return;
        }
        if (w->comma[w->depth])
                buf[n++] = ',';
        w->comma[w->depth] = 1;
        buf[n++]           = '"';
        memcpy(buf + n, k, len);
        n += len;
        buf[n++] = '"';
        buf[n++] = ':';
        wb_raw(w, buf, n);
}

static void wb_str(struct wb *w, const char *k, const char *v)
{
        if (!v)
                return;
        wb_key(w, k);
        wb_quoted(w, v);
}

/* A number as cJSON prints the double (double)v: "%d" when it is an int,
 * else "%1.15g", or "%1.17g" when that does not read back. Integers of up
 * to 15 digits print the same as plain decimals, without snprintf. */
static void wb_num(struct wb *w, const char *k, int64_t v)
{
        char buf[32];
        int n;

        wb_key(w, k);
        if (v > -INT64_C(1000000000000000) && v < INT64_C(1000000000000000)) {
                dec_i64(v, buf);
                wb_raw(w, buf, strlen(buf));
                return;
        }
        {
                double d = (double)v, back = 0;
                n = snprintf(buf, sizeof(buf), "%1.15g", d);
                if (sscanf(buf, "%lg", &back) != 1 ||
                    fabs(back - d) > fmax(fabs(back), fabs(d)) * DBL_EPSILON)
                        n = snprintf(buf, sizeof(buf), "%1.17g", d);
        }
        wb_raw(w, buf, n > 0 ? (size_t)n : 0);
}

static void wb_bool(struct wb *w, const char *k, int v)
{
        wb_key(w, k);
        if (v)
                wb_raw(w, "true", 4);
        else
                wb_raw(w, "false", 5);
}

static void wb_time(struct wb *w, const char *k, int64_t ms)
{
        char buf[OSY_TIME_BUFSZ];

        /* Validated already, so formatting cannot fail. */
        if (osy_time_format_ms(ms, buf, sizeof(buf)) != OSY_OK)
                w->fail = 1;
        else
                wb_str(w, k, buf);
}

static void wb_open(struct wb *w, const char *k, const char *brace)
{
        wb_key(w, k);
        wb_raw(w, brace, 1);
        if (w->depth + 1 >= (int)(sizeof(w->comma) / sizeof(*w->comma))) {
                w->fail = 1;
                return;
        }
        w->comma[++w->depth] = 0;
}

static void wb_close(struct wb *w, const char *brace)
{
        wb_raw(w, brace, 1);
        if (w->depth > 0)
                w->depth--;
}

static void wb_version(struct wb *w, const struct osy_version *v)
{
        wb_open(w, "version", "{");
        wb_num(w, "ms", v->ms);
        wb_str(w, "tie", v->tie);
        wb_close(w, "}");
}

static void wb_bytes(struct wb *w, const char *k, const char *enc_key,
                     const unsigned char *p, size_t len)
{
        int is_b64;
        char *s = bytes_to_json_str(p, len, &is_b64);

        if (!s) {
                w->fail = 1;
                return;
        }
        wb_str(w, k, s);
        if (is_b64)
                wb_str(w, enc_key, "base64");
        free(s);
}

static void encode_payload(struct wb *p, const struct osy_msg *m)
{
        switch (m->type) {
        case OSY_MSG_AC_EVENT: {
                const struct osy_ac_event *e = &m->ac_event;

                wb_str(p, "kind", ac_kind_names[e->kind]);
                wb_str(p, "contact_id", e->contact_id);
                wb_str(p, "list_id", e->list_id);
                wb_str(p, "bounce_type",
                       opt_name(bounce_names, OSY_BOUNCE__CNT, e->bounce_type));
                wb_str(p, "campaign_id", e->campaign_id);
                if (e->automation)
                        wb_bool(p, "automation", 1);
                wb_str(p, "tag", e->tag);
                if (e->has_tags) {
                        /* An array: its items have no keys. */
                        wb_key(p, "tags");
                        wb_raw(p, "[", 1);
                        for (size_t i = 0; i < e->tags_cnt; i++) {
                                if (i)
                                        wb_raw(p, ",", 1);
                                wb_quoted(p, e->tags[i]);
                        }
                        wb_raw(p, "]", 1);
                }
                wb_str(p, "initiated_by", initiator_names[e->initiated_by]);
                wb_bool(p, "echo", e->echo);
                break;
        }
        case OSY_MSG_SF_EVENT: {
                const struct osy_sf_event *e = &m->sf_event;

                wb_str(p, "kind", sf_kind_names[e->kind]);
                wb_str(p, "object", sf_object_names[e->object]);
                wb_str(p, "record_id", e->record_id);
                if (e->has_opted_out_of_email != OSY_TRI_UNSET)
                        wb_bool(p, "has_opted_out_of_email",
                                e->has_opted_out_of_email == OSY_TRI_TRUE);
                if (e->is_converted != OSY_TRI_UNSET)
                        wb_bool(p, "is_converted",
                                e->is_converted == OSY_TRI_TRUE);
                wb_str(p, "converted_contact_id", e->converted_contact_id);
                wb_str(p, "change_origin", e->change_origin);
                wb_str(p, "replay_id", e->replay_id);
                wb_bool(p, "echo", e->echo);
                break;
        }
        case OSY_MSG_SF_COMMAND:
                wb_bool(p, "has_opted_out_of_email",
                        m->sf_command.has_opted_out_of_email);
                wb_str(p, "rule", rule_names[m->sf_command.rule]);
                wb_str(p, "cause_event_id", m->sf_command.cause_event_id);
                wb_version(p, &m->sf_command.version);
                break;
        case OSY_MSG_AC_COMMAND:
                wb_str(p, "action", ac_action_names[m->ac_command.action]);
                wb_str(p, "rule", rule_names[m->ac_command.rule]);
                wb_str(p, "cause_event_id", m->ac_command.cause_event_id);
                wb_str(p, "contact_id", m->ac_command.contact_id);
                wb_version(p, &m->ac_command.version);
                break;
        case OSY_MSG_AUDIT: {
                const struct osy_audit *a = &m->audit;

                wb_str(p, "stage", stage_names[a->stage]);
                wb_str(p, "action", a->action);
                wb_str(p, "rule", opt_name(rule_names, OSY_RULE__CNT, a->rule));
                wb_str(p, "outcome", outcome_names[a->outcome]);
                wb_str(p, "ref_id", a->ref_id);
                wb_str(p, "detail", a->detail);
                wb_str(p, "api", opt_name(api_names, OSY_API__CNT, a->api));
                if (a->http_status)
                        wb_num(p, "http_status", a->http_status);
                if (a->calls)
                        wb_num(p, "calls", a->calls);
                break;
        }
        case OSY_MSG_DLQ: {
                const struct osy_dlq *d          = &m->dlq;
                const struct osy_dlq_original *o = &d->original;

                wb_str(p, "stage", stage_names[d->stage]);
                wb_str(p, "reason", d->reason);
                wb_num(p, "attempts", d->attempts);
                wb_str(p, "first_error", d->first_error);
                wb_str(p, "last_error", d->last_error);
                wb_time(p, "first_failed_at", d->first_failed_at);
                wb_time(p, "last_failed_at", d->last_failed_at);
                wb_open(p, "original", "{");
                wb_str(p, "topic", o->topic);
                wb_num(p, "partition", o->partition);
                wb_num(p, "offset", o->offset);
                if (o->has_key)
                        wb_bytes(p, "key", "key_encoding", o->key, o->key_len);
                wb_bytes(p, "value", "value_encoding", o->value, o->value_len);
                wb_num(p, "value_size", o->value_size);
                wb_close(p, "}");
                break;
        }
        default:
                p->fail = 1;
        }
}

/* The id is always recomputed here rather than trusted from msg->id, so an
 * encoded message is valid by construction. */
osy_err_t osy_msg_encode(const struct osy_msg *msg, char **jsonp, size_t *lenp,
                         char *errstr, size_t errstr_size)
{
        char id[OSY_ID_BUFSZ];
        struct wb w = {0};
        osy_err_t err;

        *jsonp = NULL;
        if (lenp)
                *lenp = 0;
        if ((err = osy_msg_compute_id(msg, id, errstr, errstr_size)) != OSY_OK)
                return err;
        if (msg->id[0] && strcmp(msg->id, id)) {
                return BAD("id: %.32s does not match the fields (%s): a field "
                           "changed after the id was computed",
                           msg->id, id);
        }
        wb_raw(&w, "{", 1);
        wb_num(&w, "v", OSY_MSG_VERSION);
        wb_str(&w, "type", osy_msg_type2str(msg->type));
        wb_str(&w, "id", id);
        wb_str(&w, "tenant", msg->tenant);
        wb_str(&w, "email", msg->email);
        wb_str(&w, "source", osy_source2str(msg->source));
        wb_time(&w, "occurred_at", msg->occurred_at);
        wb_open(&w, "payload", "{");
        encode_payload(&w, msg);
        wb_close(&w, "}");
        wb_raw(&w, "}", 1);
        if (w.fail) {
                free(w.p);
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "out of memory");
        }
        if (w.len > OSY_MSG_MAX_BYTES) {
                free(w.p);
                return osy_err_set(OSY_ERR_TOO_LARGE, errstr, errstr_size,
                                   "message: %zu bytes, more than %d", w.len,
                                   OSY_MSG_MAX_BYTES);
        }
        *jsonp = w.p; /* plain malloc(): the caller free()s it */
        if (lenp)
                *lenp = w.len;
        return OSY_OK;
}

/* ---- decode ------------------------------------------------------------- */

/*
 * Decoding is a funnel: bytes (size, NUL, UTF-8, lexical checks), then
 * JSON (exactly one value), then the envelope ("v" before anything else),
 * then the payload's shape, then osy_msg_validate(), then the id. Each
 * step refuses with a path-named message; nothing after a refusal runs.
 */

/*
 * Lexical checks cJSON leaves out: raw control bytes (JSON forbids them
 * inside strings) and the \u0000 escape, which would silently cut a C
 * string short and let two different texts decode to one message.
 */
static osy_err_t lex_check(const char *s, size_t len, char *errstr,
                           size_t errstr_size)
{
        int in_str = 0;

        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];

                if (c < 0x20 && (in_str || !(c == ' ' || c == '\t' ||
                                             c == '\n' || c == '\r')))
                        return BAD("message: control byte 0x%02x at byte %zu",
                                   c, i);
                if (!in_str) {
                        in_str = c == '"';
                        continue;
                }
                if (c == '"') {
                        in_str = 0;
                } else if (c == '\\' && i + 1 < len) {
                        if (s[i + 1] == 'u' && i + 5 < len &&
                            !strncmp(s + i + 2, "0000", 4))
                                return BAD("message: \\u0000 at byte %zu is "
                                           "not allowed in strings",
                                           i);
                        i++; /* skip the escaped character */
                }
        }
        return OSY_OK;
}

/* Reject keys outside @p allowed (NULL-terminated) and repeated keys. */
static osy_err_t check_keys(const cJSON *obj, const char *pfx,
                            const char *const *allowed, char *errstr,
                            size_t errstr_size)
{
        size_t n = 0, next = 0;
        uint64_t seen = 0;

        while (allowed[n])
                n++;
        for (const cJSON *it = obj->child; it; it = it->next) {
                size_t k = n;

                /* Encoders write the keys in the allowed order, so the
                 * search starts after the last match (this loop showed in
                 * profiles as a strcmp per pair). */
                for (size_t i = 0; i < n; i++) {
                        size_t j = (next + i) % n;
                        if (allowed[j][0] == it->string[0] &&
                            !strcmp(allowed[j], it->string)) {
                                k = j;
                                break;
                        }
                }
                if (k == n)
                        return BAD("%s%.64s: unknown field (a new field "
                                   "needs a new \"v\")",
                                   pfx, it->string);
                next = k + 1;
                if (k < 64) {
                        if (seen & (UINT64_C(1) << k))
                                return BAD("%s%s: duplicate key", pfx,
                                           it->string);
                        seen |= UINT64_C(1) << k;
                        continue;
                }
                /* Only known keys get here, so this loop is short. */
                for (const cJSON *jt = obj->child; jt != it; jt = jt->next)
                        if (!strcmp(jt->string, it->string))
                                return BAD("%s%s: duplicate key", pfx,
                                           it->string);
        }
        return OSY_OK;
}

/* The decoders below leave absent fields alone; osy_msg_validate() then
 * says which absent fields are required. Fields whose absence the
 * structs cannot represent (numbers, booleans) take @p required. */

static osy_err_t get_str(const cJSON *obj, const char *pfx, const char *key,
                         char **out, char *errstr, size_t errstr_size)
{
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

        if (!it)
                return OSY_OK;
        if (!cJSON_IsString(it) || !it->valuestring)
                return BAD("%s%s: expected a string", pfx, key);
        if (!(*out = memdup0(it->valuestring, strlen(it->valuestring))))
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "out of memory");
        return OSY_OK;
}

static osy_err_t get_enum(const cJSON *obj, const char *pfx, const char *key,
                          const char *const *names, int cnt, int *out,
                          char *errstr, size_t errstr_size)
{
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
        char exp[160];

        if (!it)
                return OSY_OK;
        if (!cJSON_IsString(it) || !it->valuestring)
                return BAD("%s%s: expected a string (%s)", pfx, key,
                           enum_expected(names, cnt, exp, sizeof(exp)));
        if (!(*out = enum_parse(names, cnt, it->valuestring)))
                return BAD("%s%s: unknown value \"%.40s\" (expected %s)", pfx,
                           key, it->valuestring,
                           enum_expected(names, cnt, exp, sizeof(exp)));
        return OSY_OK;
}

static osy_err_t get_bool(const cJSON *obj, const char *pfx, const char *key,
                          int required, int *out, int *present, char *errstr,
                          size_t errstr_size)
{
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

        if (present)
                *present = it != NULL;
        if (!it)
                return required ? BAD("%s%s: required", pfx, key) : OSY_OK;
        if (!cJSON_IsBool(it))
                return BAD("%s%s: expected true or false", pfx, key);
        *out = cJSON_IsTrue(it) ? 1 : 0;
        return OSY_OK;
}

static osy_err_t get_tri(const cJSON *obj, const char *pfx, const char *key,
                         osy_tri_t *out, char *errstr, size_t errstr_size)
{
        int v = 0, present = 0;
        osy_err_t err =
            get_bool(obj, pfx, key, 0, &v, &present, errstr, errstr_size);

        if (err == OSY_OK && present)
                *out = v ? OSY_TRI_TRUE : OSY_TRI_FALSE;
        return err;
}

/* cJSON parses every number as a double; integers are accepted only when
 * the double is integral and inside [min, max] (both within 2^53). */
static osy_err_t get_int(const cJSON *obj, const char *pfx, const char *key,
                         int required, int64_t min, int64_t max, int64_t *out,
                         char *errstr, size_t errstr_size)
{
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
        double d;

        if (!it)
                return required ? BAD("%s%s: required", pfx, key) : OSY_OK;
        if (!cJSON_IsNumber(it))
                return BAD("%s%s: expected an integer", pfx, key);
        d = it->valuedouble;
        /* Range first: converting an out-of-range double is undefined. */
        if (!isfinite(d) || d < (double)min || d > (double)max)
                return BAD("%s%s: out of range %lld..%lld", pfx, key,
                           (long long)min, (long long)max);
        if (d != floor(d))
                return BAD("%s%s: expected an integer", pfx, key);
        *out = (int64_t)d;
        return OSY_OK;
}

static osy_err_t get_time(const cJSON *obj, const char *pfx, const char *key,
                          int64_t *out, char *errstr, size_t errstr_size)
{
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
        char why[OSY_ERRSTR_SIZE];

        if (!it)
                return BAD("%s%s: required", pfx, key);
        if (!cJSON_IsString(it) || !it->valuestring)
                return BAD("%s%s: expected a string like "
                           "\"2026-11-26T04:13:00.123Z\"",
                           pfx, key);
        if (osy_time_parse_canonical(it->valuestring, out, why, sizeof(why)) !=
            OSY_OK)
                return BAD("%s%s: %s", pfx, key, why);
        return OSY_OK;
}

/* Fixed-size id fields (cause_event_id, ref_id). */
static osy_err_t get_idfield(const cJSON *obj, const char *pfx, const char *key,
                             char out[OSY_ID_BUFSZ], char *errstr,
                             size_t errstr_size)
{
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

        if (!it)
                return OSY_OK; /* validate says "required" */
        if (!cJSON_IsString(it) || !it->valuestring || !is_id(it->valuestring))
                return BAD("%s%s: expected 32 lowercase hex digits", pfx, key);
        memcpy(out, it->valuestring, OSY_ID_BUFSZ);
        return OSY_OK;
}

/* A required nested object: checks its type and keys. */
static osy_err_t get_obj(const cJSON *obj, const char *pfx, const char *key,
                         const char *const *allowed, const cJSON **out,
                         char *errstr, size_t errstr_size)
{
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
        char sub[48];

        *out = NULL;
        if (!it)
                return BAD("%s%s: required", pfx, key);
        if (!cJSON_IsObject(it))
                return BAD("%s%s: expected an object", pfx, key);
        snprintf(sub, sizeof(sub), "%s%s.", pfx, key);
        *out = it;
        return check_keys(it, sub, allowed, errstr, errstr_size);
}

#define TRY(x)                                                                 \
        do {                                                                   \
                if ((err = (x)) != OSY_OK)                                     \
                        return err;                                            \
        } while (0)

#define P "payload."

static osy_err_t decode_version(const cJSON *pl, struct osy_version *v,
                                char *errstr, size_t errstr_size)
{
        static const char *const keys[] = {"ms", "tie", NULL};
        const cJSON *o;
        osy_err_t err;

        TRY(get_obj(pl, P, "version", keys, &o, errstr, errstr_size));
        TRY(get_int(o, P "version.", "ms", 1, 0, OSY_TIME_MAX_MS, &v->ms,
                    errstr, errstr_size));
        TRY(get_str(o, P "version.", "tie", &v->tie, errstr, errstr_size));
        return OSY_OK;
}

/* Each decode_<type>() checks the payload's keys first, so a typo is
 * reported as "unknown field" rather than as a missing required field. */
static osy_err_t decode_ac_event(const cJSON *pl, struct osy_ac_event *e,
                                 char *errstr, size_t errstr_size)
{
        static const char *const keys[] = {
            "kind",         "contact_id", "list_id", "bounce_type",
            "campaign_id",  "automation", "tag",     "tags",
            "initiated_by", "echo",       NULL};
        const cJSON *tags;
        int k = 0;
        osy_err_t err;

        TRY(check_keys(pl, P, keys, errstr, errstr_size));
        TRY(get_enum(pl, P, "kind", ac_kind_names, OSY_AC_KIND__CNT, &k, errstr,
                     errstr_size));
        e->kind = (osy_ac_kind_t)k;
        TRY(get_str(pl, P, "contact_id", &e->contact_id, errstr, errstr_size));
        TRY(get_str(pl, P, "list_id", &e->list_id, errstr, errstr_size));
        k = 0;
        TRY(get_enum(pl, P, "bounce_type", bounce_names, OSY_BOUNCE__CNT, &k,
                     errstr, errstr_size));
        e->bounce_type = (osy_bounce_t)k;
        TRY(get_str(pl, P, "campaign_id", &e->campaign_id, errstr,
                    errstr_size));
        TRY(get_bool(pl, P, "automation", 0, &e->automation, NULL, errstr,
                     errstr_size));
        TRY(get_str(pl, P, "tag", &e->tag, errstr, errstr_size));
        if ((tags = cJSON_GetObjectItemCaseSensitive(pl, "tags"))) {
                size_t i = 0;

                if (!cJSON_IsArray(tags))
                        return BAD(P "tags: expected an array of strings");
                e->has_tags = 1;
                for (const cJSON *t = tags->child; t; t = t->next, i++) {
                        if (i >= OSY_TAGS_MAX)
                                return BAD(P "tags: more than %d tags",
                                           OSY_TAGS_MAX);
                        if (!cJSON_IsString(t) || !t->valuestring)
                                return BAD(P "tags[%zu]: expected a string", i);
                        if (tags_push(e, t->valuestring,
                                      strlen(t->valuestring)) != OSY_OK)
                                return osy_err_set(OSY_ERR_NOMEM, errstr,
                                                   errstr_size,
                                                   "out of memory");
                }
        }
        k = 0;
        TRY(get_enum(pl, P, "initiated_by", initiator_names, OSY_INIT__CNT, &k,
                     errstr, errstr_size));
        e->initiated_by = (osy_initiator_t)k;
        return get_bool(pl, P, "echo", 1, &e->echo, NULL, errstr, errstr_size);
}

static osy_err_t decode_sf_event(const cJSON *pl, struct osy_sf_event *e,
                                 char *errstr, size_t errstr_size)
{
        static const char *const keys[] = {
            "kind",          "object",
            "record_id",     "has_opted_out_of_email",
            "is_converted",  "converted_contact_id",
            "change_origin", "replay_id",
            "echo",          NULL};
        int k = 0;
        osy_err_t err;

        TRY(check_keys(pl, P, keys, errstr, errstr_size));
        TRY(get_enum(pl, P, "kind", sf_kind_names, OSY_SF_KIND__CNT, &k, errstr,
                     errstr_size));
        e->kind = (osy_sf_kind_t)k;
        k       = 0;
        TRY(get_enum(pl, P, "object", sf_object_names, OSY_SF_OBJ__CNT, &k,
                     errstr, errstr_size));
        e->object = (osy_sf_object_t)k;
        TRY(get_str(pl, P, "record_id", &e->record_id, errstr, errstr_size));
        TRY(get_tri(pl, P, "has_opted_out_of_email", &e->has_opted_out_of_email,
                    errstr, errstr_size));
        TRY(get_tri(pl, P, "is_converted", &e->is_converted, errstr,
                    errstr_size));
        TRY(get_str(pl, P, "converted_contact_id", &e->converted_contact_id,
                    errstr, errstr_size));
        TRY(get_str(pl, P, "change_origin", &e->change_origin, errstr,
                    errstr_size));
        TRY(get_str(pl, P, "replay_id", &e->replay_id, errstr, errstr_size));
        return get_bool(pl, P, "echo", 1, &e->echo, NULL, errstr, errstr_size);
}

static osy_err_t decode_sf_command(const cJSON *pl, struct osy_sf_command *c,
                                   char *errstr, size_t errstr_size)
{
        static const char *const keys[] = {"has_opted_out_of_email", "rule",
                                           "cause_event_id", "version", NULL};
        int k                           = 0;
        osy_err_t err;

        TRY(check_keys(pl, P, keys, errstr, errstr_size));
        TRY(get_bool(pl, P, "has_opted_out_of_email", 1,
                     &c->has_opted_out_of_email, NULL, errstr, errstr_size));
        TRY(get_enum(pl, P, "rule", rule_names, OSY_RULE__CNT, &k, errstr,
                     errstr_size));
        c->rule = (osy_rule_t)k;
        TRY(get_idfield(pl, P, "cause_event_id", c->cause_event_id, errstr,
                        errstr_size));
        return decode_version(pl, &c->version, errstr, errstr_size);
}

static osy_err_t decode_ac_command(const cJSON *pl, struct osy_ac_command *c,
                                   char *errstr, size_t errstr_size)
{
        static const char *const keys[] = {
            "action", "rule", "cause_event_id", "contact_id", "version", NULL};
        int k = 0;
        osy_err_t err;

        TRY(check_keys(pl, P, keys, errstr, errstr_size));
        TRY(get_enum(pl, P, "action", ac_action_names, OSY_AC_ACTION__CNT, &k,
                     errstr, errstr_size));
        c->action = (osy_ac_action_t)k;
        k         = 0;
        TRY(get_enum(pl, P, "rule", rule_names, OSY_RULE__CNT, &k, errstr,
                     errstr_size));
        c->rule = (osy_rule_t)k;
        TRY(get_idfield(pl, P, "cause_event_id", c->cause_event_id, errstr,
                        errstr_size));
        TRY(get_str(pl, P, "contact_id", &c->contact_id, errstr, errstr_size));
        return decode_version(pl, &c->version, errstr, errstr_size);
}

static osy_err_t decode_audit(const cJSON *pl, struct osy_audit *a,
                              char *errstr, size_t errstr_size)
{
        static const char *const keys[] = {
            "stage",  "action", "rule",        "outcome", "ref_id",
            "detail", "api",    "http_status", "calls",   NULL};
        int k       = 0;
        int64_t num = 0;
        osy_err_t err;

        TRY(check_keys(pl, P, keys, errstr, errstr_size));
        TRY(get_enum(pl, P, "stage", stage_names, OSY_STAGE__CNT, &k, errstr,
                     errstr_size));
        a->stage = (osy_stage_t)k;
        TRY(get_str(pl, P, "action", &a->action, errstr, errstr_size));
        k = 0;
        TRY(get_enum(pl, P, "rule", rule_names, OSY_RULE__CNT, &k, errstr,
                     errstr_size));
        a->rule = (osy_rule_t)k;
        k       = 0;
        TRY(get_enum(pl, P, "outcome", outcome_names, OSY_OUTCOME__CNT, &k,
                     errstr, errstr_size));
        a->outcome = (osy_outcome_t)k;
        TRY(get_idfield(pl, P, "ref_id", a->ref_id, errstr, errstr_size));
        TRY(get_str(pl, P, "detail", &a->detail, errstr, errstr_size));
        k = 0;
        TRY(get_enum(pl, P, "api", api_names, OSY_API__CNT, &k, errstr,
                     errstr_size));
        a->api = (osy_api_t)k;
        TRY(get_int(pl, P, "http_status", 0, 100, 599, &num, errstr,
                    errstr_size));
        a->http_status = (int)num;
        return get_int(pl, P, "calls", 0, 0, 1000000000, &a->calls, errstr,
                       errstr_size);
}

/* original.key / original.value with their optional "*_encoding". */
static osy_err_t decode_bytes(const cJSON *o, const char *key,
                              const char *enc_key, unsigned char **out,
                              size_t *lenp, char *errstr, size_t errstr_size)
{
        static const char *const encs[] = {NULL, "utf8", "base64"};
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
        int enc         = 0;
        osy_err_t err;

        TRY(get_enum(o, P "original.", enc_key, encs, 3, &enc, errstr,
                     errstr_size));
        if (!it)
                return enc ? BAD(P "original.%s: set without %s", enc_key, key)
                           : OSY_OK;
        if (!cJSON_IsString(it) || !it->valuestring)
                return BAD(P "original.%s: expected a string", key);
        if (enc == 2) {
                int rc = b64_decode(it->valuestring, out, lenp);
                if (rc == -2)
                        return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                           "out of memory");
                if (rc < 0)
                        return BAD(P "original.%s: not valid base64", key);
                return OSY_OK;
        }
        *lenp = strlen(it->valuestring);
        if (!(*out = (unsigned char *)memdup0(it->valuestring, *lenp)))
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "out of memory");
        return OSY_OK;
}

/* has_key follows the JSON: "key" absent means the record had no key,
 * which Kafka distinguishes from an empty key. */
static osy_err_t decode_dlq(const cJSON *pl, struct osy_dlq *d, char *errstr,
                            size_t errstr_size)
{
        static const char *const keys[] = {
            "stage",          "reason",     "attempts",
            "first_error",    "last_error", "first_failed_at",
            "last_failed_at", "original",   NULL};
        static const char *const okeys[] = {
            "topic", "partition",      "offset",     "key", "key_encoding",
            "value", "value_encoding", "value_size", NULL};
        struct osy_dlq_original *o = &d->original;
        const cJSON *oj;
        int k       = 0;
        int64_t num = 0;
        osy_err_t err;

        TRY(check_keys(pl, P, keys, errstr, errstr_size));
        TRY(get_enum(pl, P, "stage", stage_names, OSY_STAGE__CNT, &k, errstr,
                     errstr_size));
        d->stage = (osy_stage_t)k;
        TRY(get_str(pl, P, "reason", &d->reason, errstr, errstr_size));
        TRY(get_int(pl, P, "attempts", 1, 1, 1000000000, &d->attempts, errstr,
                    errstr_size));
        TRY(get_str(pl, P, "first_error", &d->first_error, errstr,
                    errstr_size));
        TRY(get_str(pl, P, "last_error", &d->last_error, errstr, errstr_size));
        TRY(get_time(pl, P, "first_failed_at", &d->first_failed_at, errstr,
                     errstr_size));
        TRY(get_time(pl, P, "last_failed_at", &d->last_failed_at, errstr,
                     errstr_size));
        TRY(get_obj(pl, P, "original", okeys, &oj, errstr, errstr_size));
        TRY(get_str(oj, P "original.", "topic", &o->topic, errstr,
                    errstr_size));
        TRY(get_int(oj, P "original.", "partition", 1, 0, INT32_MAX, &num,
                    errstr, errstr_size));
        o->partition = (int32_t)num;
        TRY(get_int(oj, P "original.", "offset", 1, 0, INT_JSON_MAX, &o->offset,
                    errstr, errstr_size));
        TRY(decode_bytes(oj, "key", "key_encoding", &o->key, &o->key_len,
                         errstr, errstr_size));
        o->has_key = cJSON_GetObjectItemCaseSensitive(oj, "key") != NULL;
        if (!cJSON_GetObjectItemCaseSensitive(oj, "value"))
                return BAD(P "original.value: required");
        TRY(decode_bytes(oj, "value", "value_encoding", &o->value,
                         &o->value_len, errstr, errstr_size));
        return get_int(oj, P "original.", "value_size", 1, 0, INT_JSON_MAX,
                       &o->value_size, errstr, errstr_size);
}

/* Parse @p len bytes into a cJSON tree, refusing everything JSON-ish
 * that is not exactly one JSON value. */
static osy_err_t parse_json(const void *buf, size_t len, cJSON **rootp,
                            char *errstr, size_t errstr_size)
{
        const char *end = NULL;
        char *copy;
        cJSON *root;
        osy_err_t err;

        *rootp = NULL;
        if (!buf || len == 0)
                return BAD("message: empty");
        if (len > OSY_MSG_MAX_BYTES)
                return BAD("message: %zu bytes, more than the %d-byte cap", len,
                           OSY_MSG_MAX_BYTES);
        if (memchr(buf, '\0', len))
                return BAD("message: NUL byte at offset %zu",
                           (size_t)((const char *)memchr(buf, '\0', len) -
                                    (const char *)buf));
        if (!osy_utf8_valid(buf, len))
                return BAD("message: not valid UTF-8");
        TRY(lex_check(buf, len, errstr, errstr_size));
        /* cJSON gets a NUL-terminated copy: the terminator bounds every
         * scan, whatever cJSON's length handling does at the edge. */
        if (!(copy = json_alloc(len + 1)))
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "out of memory");
        memcpy(copy, buf, len);
        copy[len] = '\0';
        root      = cJSON_ParseWithLengthOpts(copy, len + 1, &end, 0);
        if (!root) {
                size_t at = end && end >= copy ? (size_t)(end - copy) : 0;
                json_free(copy);
                return BAD("message: not valid JSON (near byte %zu)", at);
        }
        while (end &&
               (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
                end++;
        if (!end || *end != '\0') {
                size_t at = end ? (size_t)(end - copy) : 0;
                json_free(copy);
                cJSON_Delete(root);
                return BAD("message: trailing data at byte %zu", at);
        }
        json_free(copy);
        *rootp = root;
        return OSY_OK;
}

static osy_err_t decode_root(const cJSON *root, struct osy_msg *m, char *errstr,
                             size_t errstr_size)
{
        static const char *const keys[] = {"v",           "type",    "id",
                                           "tenant",      "email",   "source",
                                           "occurred_at", "payload", NULL};
        const cJSON *v, *pl;
        char id[OSY_ID_BUFSZ];
        int k = 0;
        osy_err_t err;

        if (!cJSON_IsObject(root))
                return BAD("message: not a JSON object");
        /* The version first: a v2 message must say "version", not trip
         * over a field this build does not know. */
        v = cJSON_GetObjectItemCaseSensitive(root, "v");
        if (!v)
                return BAD("v: required");
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
                return BAD("v: expected the integer %d", OSY_MSG_VERSION);
        if (v->valuedouble != OSY_MSG_VERSION)
                return BAD("v: unsupported version %.0f (this build reads "
                           "v%d only)",
                           isfinite(v->valuedouble) &&
                                   fabs(v->valuedouble) < 1e9
                               ? v->valuedouble
                               : -1.0,
                           OSY_MSG_VERSION);
        if (!cJSON_GetObjectItemCaseSensitive(root, "type"))
                return BAD("type: required");
        TRY(get_enum(root, "", "type", type_names, OSY_MSG__CNT, &k, errstr,
                     errstr_size));
        m->type = (osy_msg_type_t)k;
        TRY(check_keys(root, "", keys, errstr, errstr_size));
        v = cJSON_GetObjectItemCaseSensitive(root, "id");
        if (!v)
                return BAD("id: required");
        if (!cJSON_IsString(v) || !v->valuestring || !is_id(v->valuestring))
                return BAD("id: expected 32 lowercase hex digits");
        memcpy(m->id, v->valuestring, OSY_ID_BUFSZ);
        TRY(get_str(root, "", "tenant", &m->tenant, errstr, errstr_size));
        TRY(get_str(root, "", "email", &m->email, errstr, errstr_size));
        k = 0;
        TRY(get_enum(root, "", "source", source_names, OSY_SRC__CNT, &k, errstr,
                     errstr_size));
        m->source = (osy_source_t)k;
        TRY(get_time(root, "", "occurred_at", &m->occurred_at, errstr,
                     errstr_size));
        pl = cJSON_GetObjectItemCaseSensitive(root, "payload");
        if (!pl)
                return BAD("payload: required");
        if (!cJSON_IsObject(pl))
                return BAD("payload: expected an object");
        switch (m->type) {
        case OSY_MSG_AC_EVENT:
                TRY(decode_ac_event(pl, &m->ac_event, errstr, errstr_size));
                break;
        case OSY_MSG_SF_EVENT:
                TRY(decode_sf_event(pl, &m->sf_event, errstr, errstr_size));
                break;
        case OSY_MSG_SF_COMMAND:
                TRY(decode_sf_command(pl, &m->sf_command, errstr, errstr_size));
                break;
        case OSY_MSG_AC_COMMAND:
                TRY(decode_ac_command(pl, &m->ac_command, errstr, errstr_size));
                break;
        case OSY_MSG_AUDIT:
                TRY(decode_audit(pl, &m->audit, errstr, errstr_size));
                break;
        case OSY_MSG_DLQ:
                TRY(decode_dlq(pl, &m->dlq, errstr, errstr_size));
                break;
        default:
                return BAD("type: not set");
        }
        TRY(osy_msg_compute_id(m, id, errstr, errstr_size));
        /* The id is a function of the fields: a mismatch means corruption
         * or a producer that edited a field after computing the id. Either
         * way dedup would be keyed wrongly, so the message is refused. */
        if (strcmp(id, m->id))
                return BAD("id: %s does not match the message fields "
                           "(computed %s)",
                           m->id, id);
        return OSY_OK;
}

/* The message is cleared on every failure, so callers never free half a
 * decode and never act on one. */
osy_err_t osy_msg_decode(const void *buf, size_t len, struct osy_msg *msg,
                         char *errstr, size_t errstr_size)
{
        cJSON *root        = NULL;
        struct scratch *sc = arena_begin();
        osy_err_t err;

        osy_msg_init(msg, OSY_MSG_NONE);
        if ((err = parse_json(buf, len, &root, errstr, errstr_size)) == OSY_OK)
                err = decode_root(root, msg, errstr, errstr_size);
        cJSON_Delete(root);
        arena_end(sc);
        if (err != OSY_OK)
                osy_msg_clear(msg);
        return err;
}

/* Reads only the two envelope fields and checks them as the envelope
 * would, so a dead letter never carries a person the schema would refuse. */
int osy_msg_peek_person(const void *buf, size_t len, char *tenant,
                        size_t tenant_size, char *email, size_t email_size)
{
        cJSON *root = NULL;
        const cJSON *t, *e;
        int ok = 0;

        if (tenant && tenant_size)
                tenant[0] = '\0';
        if (email && email_size)
                email[0] = '\0';
        if (!tenant || !email || parse_json(buf, len, &root, NULL, 0) != OSY_OK)
                return 0;
        t = cJSON_GetObjectItemCaseSensitive(root, "tenant");
        e = cJSON_GetObjectItemCaseSensitive(root, "email");
        if (cJSON_IsString(t) && cJSON_IsString(e) && t->valuestring &&
            e->valuestring &&
            osy_tenant_check(t->valuestring, NULL, 0) == OSY_OK &&
            strlen(t->valuestring) < tenant_size &&
            osy_email_normalise(e->valuestring, email, email_size, NULL, 0) ==
                OSY_OK) {
                memcpy(tenant, t->valuestring, strlen(t->valuestring) + 1);
                ok = 1;
        }
        if (!ok && email_size)
                email[0] = '\0';
        cJSON_Delete(root);
        return ok;
}
