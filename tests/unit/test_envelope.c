/*
 * test_envelope.c - the message contract: round trips for every type, id
 * determinism and sensitivity, email and time normalisation, every
 * rejection path, and decoding of truncated or mutated bytes.
 */
#include "osy_test.h"
#include "optsync/email.h"
#include "optsync/envelope.h"
#include "optsync/timeutil.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2026-11-26T04:13:00.000Z, i.e. AC's "2026-11-25T22:13:00-06:00". */
#define T0 INT64_C(1795666380000)

static const char *const CAUSE = "0123456789abcdef0123456789abcdef";

/* ---- builders: one valid message per type ------------------------------- */

static void set_env(struct osy_msg *m, osy_source_t src)
{
        char err[OSY_ERRSTR_SIZE];

        assert_int_equal(osy_msg_set_envelope(m, "acme", "Jane.Doe@Example.com",
                                              src, T0, err, sizeof(err)),
                         OSY_OK);
}

static void set(char **field, const char *v)
{
        assert_int_equal(osy_msg_strset(field, v), OSY_OK);
}

static void build_ac_event(struct osy_msg *m)
{
        osy_msg_init(m, OSY_MSG_AC_EVENT);
        set_env(m, OSY_SRC_AC);
        m->ac_event.kind = OSY_AC_UNSUBSCRIBE;
        set(&m->ac_event.contact_id, "18723");
        set(&m->ac_event.list_id, "2");
        set(&m->ac_event.campaign_id, "41");
        assert_int_equal(osy_ac_event_set_tags_csv(
                             &m->ac_event, "added-to-salesforce-contact, vip"),
                         OSY_OK);
        m->ac_event.initiated_by = OSY_INIT_PUBLIC;
}

static void build_sf_event(struct osy_msg *m)
{
        osy_msg_init(m, OSY_MSG_SF_EVENT);
        set_env(m, OSY_SRC_SF);
        m->sf_event.kind                   = OSY_SF_OPT_OUT_CHANGED;
        m->sf_event.object                 = OSY_SF_CONTACT;
        m->sf_event.has_opted_out_of_email = OSY_TRI_TRUE;
        set(&m->sf_event.record_id, "0035g00000AbCdEAAZ");
        set(&m->sf_event.change_origin, "com/salesforce/api/rest/60.0");
        set(&m->sf_event.replay_id, "1234");
}

static void build_sf_command(struct osy_msg *m)
{
        osy_msg_init(m, OSY_MSG_SF_COMMAND);
        set_env(m, OSY_SRC_RULES);
        m->sf_command.has_opted_out_of_email = 1;
        m->sf_command.rule                   = OSY_RULE_R4;
        memcpy(m->sf_command.cause_event_id, CAUSE, OSY_ID_BUFSZ);
        m->sf_command.version.ms = T0;
        set(&m->sf_command.version.tie, CAUSE);
}

static void build_ac_command(struct osy_msg *m)
{
        osy_msg_init(m, OSY_MSG_AC_COMMAND);
        set_env(m, OSY_SRC_RULES);
        m->ac_command.action = OSY_AC_UNSUBSCRIBE_ALL_LISTS;
        m->ac_command.rule   = OSY_RULE_R4;
        memcpy(m->ac_command.cause_event_id, CAUSE, OSY_ID_BUFSZ);
        set(&m->ac_command.contact_id, "18723");
        m->ac_command.version.ms = T0;
        set(&m->ac_command.version.tie, CAUSE);
}

static void build_audit(struct osy_msg *m)
{
        osy_msg_init(m, OSY_MSG_AUDIT);
        set_env(m, OSY_SRC_SF_WRITER);
        m->audit.stage = OSY_STAGE_SF_WRITER;
        set(&m->audit.action, "sf_update");
        m->audit.rule    = OSY_RULE_R4;
        m->audit.outcome = OSY_OUTCOME_APPLIED;
        memcpy(m->audit.ref_id, CAUSE, OSY_ID_BUFSZ);
        set(&m->audit.detail, "2 records, 1 call");
        m->audit.api         = OSY_API_SF;
        m->audit.http_status = 200;
        m->audit.calls       = 1;
}

static void build_dlq(struct osy_msg *m)
{
        static const char orig[] = "{\"v\":1,\"type\":\"ac.event\"}";

        osy_msg_init(m, OSY_MSG_DLQ);
        set_env(m, OSY_SRC_RULES);
        m->dlq.stage = OSY_STAGE_RULES;
        set(&m->dlq.reason, "invalid message");
        m->dlq.attempts = 3;
        set(&m->dlq.first_error, "id: required");
        set(&m->dlq.last_error, "id: required\nagain");
        m->dlq.first_failed_at = T0;
        m->dlq.last_failed_at  = T0 + 5000;
        assert_int_equal(osy_msg_dlq_set_original(m, "optsync.ac.events", 3,
                                                  1234, "acme|a@b.c", 10, orig,
                                                  sizeof(orig) - 1),
                         OSY_OK);
}

typedef void (*builder_t)(struct osy_msg *);
static const builder_t builders[] = {build_ac_event,   build_sf_event,
                                     build_sf_command, build_ac_command,
                                     build_audit,      build_dlq};
#define NBUILDERS (sizeof(builders) / sizeof(builders[0]))

/* Encode @p m; the caller frees. */
static char *enc(const struct osy_msg *m)
{
        char err[OSY_ERRSTR_SIZE] = "";
        char *json                = NULL;
        size_t len                = 0;

        if (osy_msg_encode(m, &json, &len, err, sizeof(err)) != OSY_OK)
                fail_msg("encode: %s", err);
        assert_int_equal(len, strlen(json));
        return json;
}

/* Decode @p json expecting success. */
static void dec_ok(const char *json, struct osy_msg *m)
{
        char err[OSY_ERRSTR_SIZE] = "";

        if (osy_msg_decode(json, strlen(json), m, err, sizeof(err)) != OSY_OK)
                fail_msg("decode: %s\n%s", err, json);
}

/* Decode @p json expecting OSY_ERR_INVALID and @p frag in the message. */
#define DEC_BAD_LIT(lit, frag) dec_bad(lit, sizeof(lit) - 1, frag)
static void dec_bad(const char *json, size_t len, const char *frag)
{
        char err[OSY_ERRSTR_SIZE] = "";
        struct osy_msg m;

        assert_int_equal(osy_msg_decode(json, len, &m, err, sizeof(err)),
                         OSY_ERR_INVALID);
        if (!strstr(err, frag))
                fail_msg("error \"%s\" lacks \"%s\"", err, frag);
        assert_int_equal(m.type, OSY_MSG_NONE); /* left cleared */
        assert_null(m.tenant);
}

/*
 * Copy of a valid message of type @p b with the field at dotted @p path
 * set to the raw JSON @p raw (NULL: removed). The id is kept, so schema
 * errors (checked before the id) surface as themselves.
 */
static char *with(builder_t b, const char *path, const char *raw)
{
        struct osy_msg m;
        char *json, *out, key[64];
        cJSON *root, *obj;
        const char *dot;

        b(&m);
        json = enc(&m);
        osy_msg_clear(&m);
        root = cJSON_Parse(json);
        free(json);
        assert_non_null(root);
        obj = root;
        while ((dot = strchr(path, '.'))) {
                snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
                obj = cJSON_GetObjectItemCaseSensitive(obj, key);
                assert_non_null(obj);
                path = dot + 1;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(obj, path);
        if (raw) {
                cJSON *v = cJSON_Parse(raw);
                assert_non_null(v);
                cJSON_AddItemToObject(obj, path, v);
        }
        out = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        return out;
}

static void bad_with(builder_t b, const char *path, const char *raw,
                     const char *frag)
{
        char *json = with(b, path, raw);

        dec_bad(json, strlen(json), frag);
        free(json);
}

/* ---- round trips -------------------------------------------------------- */

/* Every type must survive encode -> decode -> encode byte for byte: the
 * bus carries exactly what the producer meant, and re-publishing a decoded
 * message (reconciler, DLQ replay) does not change its id. */

/* Encode, decode, re-encode: the bytes must match and the id survive. */
static void roundtrip(builder_t b)
{
        struct osy_msg m, d;
        char *a, *c;

        b(&m);
        a = enc(&m);
        dec_ok(a, &d);
        assert_int_equal(d.type, m.type);
        assert_string_equal(d.tenant ? d.tenant : "", m.tenant ? m.tenant : "");
        assert_int_equal(d.occurred_at, m.occurred_at);
        c = enc(&d);
        assert_string_equal(a, c);
        assert_true(strlen(d.id) == OSY_ID_LEN);
        free(a);
        free(c);
        osy_msg_clear(&m);
        osy_msg_clear(&d);
}

static void roundtrip_ac_event(void **state)
{
        struct osy_msg m, d;
        char *a;

        (void)state;
        roundtrip(build_ac_event);
        build_ac_event(&m);
        a = enc(&m);
        dec_ok(a, &d);
        assert_int_equal(d.ac_event.kind, OSY_AC_UNSUBSCRIBE);
        assert_string_equal(d.email, "jane.doe@example.com");
        assert_string_equal(d.ac_event.list_id, "2");
        assert_int_equal(d.ac_event.tags_cnt, 2);
        assert_string_equal(d.ac_event.tags[1], "vip");
        assert_int_equal(d.ac_event.initiated_by, OSY_INIT_PUBLIC);
        free(a);
        osy_msg_clear(&m);
        osy_msg_clear(&d);
}

static void roundtrip_sf_event(void **state)
{
        (void)state;
        roundtrip(build_sf_event);
}

static void roundtrip_sf_command(void **state)
{
        (void)state;
        roundtrip(build_sf_command);
}

static void roundtrip_ac_command(void **state)
{
        (void)state;
        roundtrip(build_ac_command);
}

static void roundtrip_audit(void **state)
{
        (void)state;
        roundtrip(build_audit);
}

static void roundtrip_dlq(void **state)
{
        (void)state;
        roundtrip(build_dlq);
}

static void roundtrip_lead_converted(void **state)
{
        struct osy_msg m, d;
        char *a;

        (void)state;
        osy_msg_init(&m, OSY_MSG_SF_EVENT);
        set_env(&m, OSY_SRC_SF);
        m.sf_event.kind         = OSY_SF_LEAD_CONVERTED;
        m.sf_event.object       = OSY_SF_LEAD;
        m.sf_event.is_converted = OSY_TRI_TRUE;
        set(&m.sf_event.record_id, "00Q5g00000AbCdE");
        set(&m.sf_event.converted_contact_id, "0035g00000AbCdEAAZ");
        a = enc(&m);
        /* has_opted_out_of_email is optional here, so it is absent. */
        assert_null(strstr(a, "has_opted_out_of_email"));
        dec_ok(a, &d);
        assert_int_equal(d.sf_event.has_opted_out_of_email, OSY_TRI_UNSET);
        assert_string_equal(d.sf_event.converted_contact_id,
                            "0035g00000AbCdEAAZ");
        free(a);
        osy_msg_clear(&m);
        osy_msg_clear(&d);
}

static void roundtrip_dlq_binary_value_as_base64(void **state)
{
        static const unsigned char bin[] = {0xff, 0x00, 0x01, 'x', 0xc3};
        struct osy_msg m, d;
        char *a;

        (void)state;
        build_dlq(&m);
        assert_int_equal(
            osy_msg_dlq_set_original(&m, "t", 0, 0, NULL, 0, bin, sizeof(bin)),
            OSY_OK);
        a = enc(&m);
        assert_non_null(strstr(a, "\"value_encoding\":\"base64\""));
        assert_null(strstr(a, "\"key\"")); /* no key: omitted */
        dec_ok(a, &d);
        assert_int_equal(d.dlq.original.value_len, sizeof(bin));
        assert_memory_equal(d.dlq.original.value, bin, sizeof(bin));
        assert_int_equal(d.dlq.original.has_key, 0);
        free(a);
        osy_msg_clear(&m);
        osy_msg_clear(&d);
}

static void roundtrip_dlq_without_person(void **state)
{
        struct osy_msg m, d;
        char *a;

        (void)state;
        build_dlq(&m);
        set(&m.tenant, NULL);
        set(&m.email, NULL);
        a = enc(&m);
        assert_null(strstr(a, "\"tenant\""));
        dec_ok(a, &d);
        assert_null(d.tenant);
        assert_null(d.email);
        free(a);
        /* One without the other is refused. */
        set(&m.tenant, "acme");
        assert_int_equal(osy_msg_validate(&m, NULL, 0), OSY_ERR_INVALID);
        osy_msg_clear(&m);
        osy_msg_clear(&d);
}

static void dlq_truncates_big_values(void **state)
{
        size_t big = OSY_DLQ_VALUE_MAX + 5000;
        char *val  = malloc(big);
        struct osy_msg m, d;
        char *a;

        (void)state;
        memset(val, 'x', big);
        build_dlq(&m);
        assert_int_equal(
            osy_msg_dlq_set_original(&m, "t", 1, 2, val, 5000, val, big),
            OSY_OK);
        assert_int_equal(m.dlq.original.value_len, OSY_DLQ_VALUE_MAX);
        assert_int_equal(m.dlq.original.key_len, OSY_DLQ_KEY_MAX);
        assert_int_equal(m.dlq.original.value_size, (int64_t)big);
        a = enc(&m);
        assert_true(strlen(a) <= OSY_MSG_MAX_BYTES);
        dec_ok(a, &d);
        assert_int_equal(d.dlq.original.value_size, (int64_t)big);
        free(a);
        free(val);
        osy_msg_clear(&m);
        osy_msg_clear(&d);
}

/*
 * Decoding borrows a per-thread arena for cJSON's allocations: threads
 * decoding at once never see each other's trees, a message too big for
 * the arena falls back to malloc, and the arena is emptied between
 * messages (every decode re-encodes to the very same text).
 */
#define MT_THREADS 4
#define MT_ROUNDS 300

struct mt_job {
        char *texts[8];
        size_t n;
        int failures;
};

static void *mt_decode(void *arg)
{
        struct mt_job *job = arg;

        for (int r = 0; r < MT_ROUNDS; r++)
                for (size_t i = 0; i < job->n; i++) {
                        struct osy_msg d;
                        char err[OSY_ERRSTR_SIZE], *again = NULL;
                        if (osy_msg_decode(job->texts[i], strlen(job->texts[i]),
                                           &d, err, sizeof(err)) ||
                            osy_msg_encode(&d, &again, NULL, err,
                                           sizeof(err)) ||
                            strcmp(again, job->texts[i]))
                                job->failures++;
                        free(again);
                        osy_msg_clear(&d);
                }
        return NULL;
}

static void decode_on_many_threads_and_big_messages(void **state)
{
        struct mt_job jobs[MT_THREADS];
        pthread_t th[MT_THREADS];
        size_t nb  = sizeof(builders) / sizeof(*builders);
        size_t big = OSY_DLQ_VALUE_MAX;
        char *val  = malloc(big);
        struct osy_msg m;

        (void)state;
        assert_non_null(val);
        assert_true(nb + 1 <= 8);
        memset(val, 'y', big);
        for (int t = 0; t < MT_THREADS; t++) {
                jobs[t].n        = 0;
                jobs[t].failures = 0;
                /* Each thread its own messages: a different email. */
                for (size_t b = 0; b < nb; b++) {
                        char email[64];
                        builders[b](&m);
                        snprintf(email, sizeof(email), "t%d@example.com", t);
                        if (m.email)
                                set(&m.email, email);
                        jobs[t].texts[jobs[t].n++] = enc(&m);
                        osy_msg_clear(&m);
                }
                /* A dead letter near the size cap: its tree does not fit
                 * the arena. */
                build_dlq(&m);
                assert_int_equal(
                    osy_msg_dlq_set_original(&m, "t", 1, 2, "k", 1, val, big),
                    OSY_OK);
                jobs[t].texts[jobs[t].n++] = enc(&m);
                osy_msg_clear(&m);
        }
        for (int t = 0; t < MT_THREADS; t++)
                assert_int_equal(
                    pthread_create(&th[t], NULL, mt_decode, &jobs[t]), 0);
        for (int t = 0; t < MT_THREADS; t++)
                assert_int_equal(pthread_join(th[t], NULL), 0);
        for (int t = 0; t < MT_THREADS; t++) {
                assert_int_equal(jobs[t].failures, 0);
                for (size_t i = 0; i < jobs[t].n; i++)
                        free(jobs[t].texts[i]);
        }
        free(val);
}

static void encode_is_compact_with_fixed_key_order(void **state)
{
        struct osy_msg m;
        char *a, *b;

        (void)state;
        build_sf_command(&m);
        a = enc(&m);
        b = enc(&m);
        assert_string_equal(a, b);
        assert_true(
            !strncmp(a, "{\"v\":1,\"type\":\"sf.command\",\"id\":\"", 33));
        assert_non_null(strstr(a, "\"tenant\":\"acme\",\"email\":\"jane.doe@"
                                  "example.com\",\"source\":\"rules\","
                                  "\"occurred_at\":\"2026-11-26T04:13:00.000Z"
                                  "\",\"payload\":{\"has_opted_out_of_email\""
                                  ":true,\"rule\":\"R4\""));
        assert_non_null(strstr(a, "\"version\":{\"ms\":1795666380000,"));
        assert_null(strchr(a, ' '));
        free(a);
        free(b);
        osy_msg_clear(&m);
}

static void encode_refuses_field_changed_after_finalize(void **state)
{
        struct osy_msg m;
        char err[OSY_ERRSTR_SIZE];
        char *json = NULL;

        (void)state;
        build_ac_event(&m);
        assert_int_equal(osy_msg_finalize(&m, err, sizeof(err)), OSY_OK);
        assert_int_equal(strlen(m.id), OSY_ID_LEN);
        set(&m.ac_event.list_id, "3");
        assert_int_equal(osy_msg_encode(&m, &json, NULL, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_null(json);
        assert_non_null(strstr(err, "does not match"));
        osy_msg_clear(&m);
}

static void encode_refuses_invalid_message(void **state)
{
        struct osy_msg m;
        char err[OSY_ERRSTR_SIZE];
        char *json = NULL;

        (void)state;
        build_ac_event(&m);
        m.ac_event.kind = OSY_AC_SUBSCRIBE;
        set(&m.ac_event.list_id, NULL);
        assert_int_equal(osy_msg_encode(&m, &json, NULL, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_string_equal(err, "payload.list_id: required for "
                                 "kind=subscribe");
        osy_msg_clear(&m);
}

/* ---- ids ---------------------------------------------------------------- */

/* Dedup is only as good as the id: the same occurrence must hash the same,
 * and a change in any identifying field must not. */

static void id_hash_known_vector(void **state)
{
        const char *f[] = {"a", "", NULL};
        char id[OSY_ID_BUFSZ];

        (void)state;
        /* python3: hashlib.sha256(b'1:a,0:,~,').hexdigest()[:32] */
        assert_int_equal(osy_id_hash(f, 3, id), OSY_OK);
        assert_string_equal(id, "b4a5924d1733e73531b86865d5fb1844");
        assert_int_equal(osy_id_hash(f, 0, id), OSY_OK);
        assert_string_equal(id, "e3b0c44298fc1c149afbf4c8996fb924");
}

static void id_hash_length_prefix_separates_fields(void **state)
{
        const char *a[] = {"ab", "c"}, *b[] = {"a", "bc"};
        const char *c[] = {"x", NULL}, *d[] = {"x", ""};
        const char *e[] = {"1:a,", ""}, *f[] = {"1:a,0:,", NULL};
        char x[OSY_ID_BUFSZ], y[OSY_ID_BUFSZ];

        (void)state;
        assert_int_equal(osy_id_hash(a, 2, x), OSY_OK);
        assert_int_equal(osy_id_hash(b, 2, y), OSY_OK);
        assert_string_not_equal(x, y);
        assert_int_equal(osy_id_hash(c, 2, x), OSY_OK);
        assert_int_equal(osy_id_hash(d, 2, y), OSY_OK);
        assert_string_not_equal(x, y); /* absent is not empty */
        assert_int_equal(osy_id_hash(e, 2, x), OSY_OK);
        assert_int_equal(osy_id_hash(f, 2, y), OSY_OK);
        assert_string_not_equal(x, y);
}

static void id_of(const struct osy_msg *m, char *out)
{
        char err[OSY_ERRSTR_SIZE];

        if (osy_msg_compute_id(m, out, err, sizeof(err)) != OSY_OK)
                fail_msg("compute_id: %s", err);
}

static void ac_event_duplicate_delivery_same_id(void **state)
{
        struct osy_msg a, b;
        char x[OSY_ID_BUFSZ], y[OSY_ID_BUFSZ];
        char err[OSY_ERRSTR_SIZE];

        (void)state;
        build_ac_event(&a);
        build_ac_event(&b);
        /* Same webhook, delivered twice, normalised from a differently
         * spelled address: one occurrence, one id. */
        assert_int_equal(osy_msg_set_envelope(&b, "acme",
                                              "  JANE.doe@example.COM ",
                                              OSY_SRC_AC, T0, err, sizeof(err)),
                         OSY_OK);
        id_of(&a, x);
        id_of(&b, y);
        assert_string_equal(x, y);
        /* How it reached us is not part of the occurrence. */
        b.ac_event.echo = 1;
        b.source        = OSY_SRC_RECONCILER;
        id_of(&b, y);
        assert_string_equal(x, y);
        osy_msg_clear(&a);
        osy_msg_clear(&b);
}

static void ac_event_id_changes_with_every_identifying_field(void **state)
{
        char base[OSY_ID_BUFSZ], id[OSY_ID_BUFSZ];
        struct osy_msg m;

        (void)state;
        build_ac_event(&m);
        id_of(&m, base);
        osy_msg_clear(&m);

#define DIFFERS(stmt)                                                          \
        do {                                                                   \
                build_ac_event(&m);                                            \
                stmt;                                                          \
                id_of(&m, id);                                                 \
                if (!strcmp(id, base))                                         \
                        fail_msg("same id after: %s", #stmt);                  \
                osy_msg_clear(&m);                                             \
        } while (0)
        DIFFERS(set(&m.tenant, "acme2"));
        DIFFERS(set(&m.email, "jane@example.com"));
        DIFFERS(m.occurred_at += 1);
        DIFFERS(m.ac_event.kind = OSY_AC_SUBSCRIBE);
        DIFFERS(set(&m.ac_event.contact_id, "18724"));
        DIFFERS(set(&m.ac_event.list_id, "3"));
        DIFFERS(set(&m.ac_event.campaign_id, NULL));
        DIFFERS(m.ac_event.automation = 1);
        DIFFERS(m.ac_event.initiated_by = OSY_INIT_ADMIN);
        DIFFERS(assert_int_equal(osy_ac_event_set_tags_csv(&m.ac_event, "vip"),
                                 OSY_OK));
        DIFFERS(assert_int_equal(osy_ac_event_set_tags_csv(&m.ac_event, ""),
                                 OSY_OK));
        DIFFERS(m.ac_event.kind        = OSY_AC_BOUNCE;
                m.ac_event.bounce_type = OSY_BOUNCE_HARD);
#undef DIFFERS
        /* bounce hard vs soft, tag a vs b */
        build_ac_event(&m);
        m.ac_event.kind        = OSY_AC_BOUNCE;
        m.ac_event.bounce_type = OSY_BOUNCE_HARD;
        id_of(&m, base);
        m.ac_event.bounce_type = OSY_BOUNCE_SOFT;
        id_of(&m, id);
        assert_string_not_equal(base, id);
        m.ac_event.kind        = OSY_AC_TAG_ADDED;
        m.ac_event.bounce_type = OSY_BOUNCE_NONE;
        set(&m.ac_event.tag, "a");
        id_of(&m, base);
        set(&m.ac_event.tag, "b");
        id_of(&m, id);
        assert_string_not_equal(base, id);
        osy_msg_clear(&m);
}

static void sf_event_id_ignores_delivery_fields(void **state)
{
        char a[OSY_ID_BUFSZ], b[OSY_ID_BUFSZ];
        struct osy_msg m;

        (void)state;
        build_sf_event(&m);
        id_of(&m, a);
        /* A CDC replay has the same content; echo and origin follow. */
        set(&m.sf_event.replay_id, "99999");
        set(&m.sf_event.change_origin, NULL);
        m.sf_event.echo = 1;
        id_of(&m, b);
        assert_string_equal(a, b);
        m.sf_event.has_opted_out_of_email = OSY_TRI_FALSE;
        id_of(&m, b);
        assert_string_not_equal(a, b);
        m.sf_event.has_opted_out_of_email = OSY_TRI_TRUE;
        set(&m.sf_event.record_id, "0035g00000AbCdFAAZ");
        id_of(&m, b);
        assert_string_not_equal(a, b);
        osy_msg_clear(&m);
}

static void command_id_is_cause_and_desired_state(void **state)
{
        char a[OSY_ID_BUFSZ], b[OSY_ID_BUFSZ];
        struct osy_msg m, n;

        (void)state;
        build_sf_command(&m);
        id_of(&m, a);
        /* Re-deciding the same event (another time, version) is the same
         * command. */
        m.occurred_at += 60000;
        m.sf_command.version.ms += 5;
        id_of(&m, b);
        assert_string_equal(a, b);
        m.sf_command.cause_event_id[0] = 'f';
        id_of(&m, b);
        assert_string_not_equal(a, b);
        m.sf_command.cause_event_id[0] = '0';
        m.sf_command.rule              = OSY_RULE_R3;
        id_of(&m, b);
        assert_string_not_equal(a, b);
        /* The ac.command for the same cause is a different message. */
        build_ac_command(&n);
        id_of(&n, b);
        assert_string_not_equal(a, b);
        osy_msg_clear(&m);
        osy_msg_clear(&n);
}

static void audit_and_dlq_ids(void **state)
{
        char a[OSY_ID_BUFSZ], b[OSY_ID_BUFSZ];
        struct osy_msg m;

        (void)state;
        build_audit(&m);
        id_of(&m, a);
        set(&m.audit.detail, "other words");
        m.audit.calls = 2;
        id_of(&m, b);
        assert_string_equal(a, b);
        m.audit.http_status = 503;
        id_of(&m, b);
        assert_string_not_equal(a, b);
        osy_msg_clear(&m);

        /* A dead letter is "this record failed at this stage": retries
         * and error texts do not make it another one. */
        build_dlq(&m);
        id_of(&m, a);
        m.dlq.attempts++;
        m.dlq.last_failed_at += 1000;
        set(&m.dlq.last_error, "other");
        m.occurred_at += 1;
        id_of(&m, b);
        assert_string_equal(a, b);
        m.dlq.original.offset++;
        id_of(&m, b);
        assert_string_not_equal(a, b);
        osy_msg_clear(&m);
}

/* ---- email, tenant, partition key --------------------------------------- */

/* The person is (tenant, normalised email): every spelling of one address
 * must give one key, or one person's events would race in two partitions. */

static void email_normalise_trims_and_lowercases(void **state)
{
        char out[OSY_EMAIL_BUFSZ];

        (void)state;
        assert_int_equal(osy_email_normalise(" Jane.Doe@Example.COM ", out,
                                             sizeof(out), NULL, 0),
                         OSY_OK);
        assert_string_equal(out, "jane.doe@example.com");
        assert_int_equal(
            osy_email_normalise("\tA+tag@B.io\r\n", out, sizeof(out), NULL, 0),
            OSY_OK);
        assert_string_equal(out, "a+tag@b.io");
        /* Non-ASCII bytes are kept as they are. */
        assert_int_equal(osy_email_normalise("J\xc3\x96rg@Example.DE", out,
                                             sizeof(out), NULL, 0),
                         OSY_OK);
        assert_string_equal(out, "j\xc3\x96rg@example.de");
        assert_true(osy_email_is_normal("jane.doe@example.com"));
        assert_false(osy_email_is_normal("Jane.doe@example.com"));
        assert_false(osy_email_is_normal(" jane.doe@example.com"));
}

static void email_invalid_rejected(void **state)
{
        static const struct {
                const char *in, *frag;
        } cases[] = {
            {"", "empty"},
            {"   ", "empty"},
            {"jane.example.com", "no '@'"},
            {"a@b@c", "more than one"},
            {"@example.com", "local part"},
            {"jane@", "domain"},
            {"ja ne@example.com", "white space"},
            {"ja\x01ne@example.com", "control"},
            {"j\xc3@example.com", "UTF-8"},
        };
        char out[OSY_EMAIL_BUFSZ], err[OSY_ERRSTR_SIZE];
        char longmail[300];

        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                err[0] = '\0';
                assert_int_equal(osy_email_normalise(cases[i].in, out,
                                                     sizeof(out), err,
                                                     sizeof(err)),
                                 OSY_ERR_INVALID);
                if (!strstr(err, cases[i].frag))
                        fail_msg("%s: \"%s\"", cases[i].in, err);
                assert_string_equal(out, "");
        }
        memset(longmail, 'a', sizeof(longmail));
        memcpy(longmail + 200, "@example.com", 12);
        longmail[sizeof(longmail) - 1] = '\0';
        assert_int_equal(
            osy_email_normalise(longmail, out, sizeof(out), err, sizeof(err)),
            OSY_ERR_INVALID);
        assert_non_null(strstr(err, "more than 254"));
        assert_int_equal(osy_email_normalise(NULL, out, sizeof(out), NULL, 0),
                         OSY_ERR_INVALID);
        assert_int_equal(osy_email_normalise("a@b", out, 3, NULL, 0),
                         OSY_ERR_TOO_LARGE);
}

static void utf8_validator(void **state)
{
        (void)state;
        assert_true(osy_utf8_valid("plain", 5));
        assert_true(osy_utf8_valid("\xe2\x82\xac", 3));      /* euro */
        assert_true(osy_utf8_valid("\xf0\x9f\x98\x80", 4));  /* emoji */
        assert_false(osy_utf8_valid("\xc0\xaf", 2));         /* overlong */
        assert_false(osy_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
        assert_false(osy_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
        assert_false(osy_utf8_valid("\xe2\x82", 2));         /* truncated */
        assert_false(osy_utf8_valid("\x80", 1));
}

static void tenant_check_rules(void **state)
{
        char longt[OSY_TENANT_MAX + 2];

        (void)state;
        assert_int_equal(osy_tenant_check("acme-EU_1.prod", NULL, 0), OSY_OK);
        assert_int_equal(osy_tenant_check("", NULL, 0), OSY_ERR_INVALID);
        assert_int_equal(osy_tenant_check(NULL, NULL, 0), OSY_ERR_INVALID);
        assert_int_equal(osy_tenant_check("a|b", NULL, 0), OSY_ERR_INVALID);
        assert_int_equal(osy_tenant_check("a b", NULL, 0), OSY_ERR_INVALID);
        memset(longt, 'a', sizeof(longt));
        longt[OSY_TENANT_MAX] = '\0';
        assert_int_equal(osy_tenant_check(longt, NULL, 0), OSY_OK);
        longt[OSY_TENANT_MAX]     = 'a';
        longt[OSY_TENANT_MAX + 1] = '\0';
        assert_int_equal(osy_tenant_check(longt, NULL, 0), OSY_ERR_INVALID);
}

static void partition_key_is_tenant_bar_email(void **state)
{
        char key[OSY_PARTITION_KEY_BUFSZ];

        (void)state;
        assert_int_equal(osy_partition_key("acme", " Jane.Doe@Example.COM ",
                                           key, sizeof(key)),
                         OSY_OK);
        assert_string_equal(key, "acme|jane.doe@example.com");
        /* A '|' in the local part is legal; the tenant's cannot be. */
        assert_int_equal(osy_partition_key("acme", "a|b@c.d", key, sizeof(key)),
                         OSY_OK);
        assert_string_equal(key, "acme|a|b@c.d");
        assert_int_equal(osy_partition_key("ac|me", "a@b.c", key, sizeof(key)),
                         OSY_ERR_INVALID);
        assert_int_equal(osy_partition_key("acme", "nope", key, sizeof(key)),
                         OSY_ERR_INVALID);
        assert_int_equal(osy_partition_key("acme", "a@b.c", key, 8),
                         OSY_ERR_TOO_LARGE);
        assert_string_equal(key, "");
}

/* ---- time --------------------------------------------------------------- */

/* AC stamps webhooks in the account's local offset; the bus carries UTC
 * with milliseconds only, so ordering across sources is plain comparison. */

static void time_format_canonical(void **state)
{
        char buf[OSY_TIME_BUFSZ];

        (void)state;
        assert_int_equal(osy_time_format_ms(0, buf, sizeof(buf)), OSY_OK);
        assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
        assert_int_equal(osy_time_format_ms(T0 + 123, buf, sizeof(buf)),
                         OSY_OK);
        assert_string_equal(buf, "2026-11-26T04:13:00.123Z");
        assert_int_equal(
            osy_time_format_ms(INT64_C(951782400000), buf, sizeof(buf)),
            OSY_OK);
        assert_string_equal(buf, "2000-02-29T00:00:00.000Z");
        assert_int_equal(osy_time_format_ms(OSY_TIME_MAX_MS, buf, sizeof(buf)),
                         OSY_OK);
        assert_string_equal(buf, "9999-12-31T23:59:59.999Z");
        assert_int_equal(osy_time_format_ms(-1, buf, sizeof(buf)),
                         OSY_ERR_INVALID);
        assert_int_equal(osy_time_format_ms(0, buf, 10), OSY_ERR_TOO_LARGE);
}

static void time_parse_offsets_and_ac_formats(void **state)
{
        static const struct {
                const char *s;
                int64_t ms;
        } cases[] = {
            {"2026-11-26T04:13:00.123Z", T0 + 123},
            {"2026-11-25T22:13:00-06:00", T0},
            {"2026-11-25 22:13:00 -06:00", T0},
            {"2026-11-25T22:13:00-0600", T0},
            {"2026-11-26T09:43:00+05:30", T0},
            {"2026-11-26t04:13:00z", T0},
            {"2026-11-26T04:13:00.1Z", T0 + 100},
            {"2026-11-26T04:13:00.123999Z", T0 + 123},
            {"2026-11-26T04:13:00+00:00", T0},
            {"2024-02-28T07:04:13-06:00", INT64_C(1709125453000)},
            {"2016-12-31T23:59:60Z", INT64_C(1483228800000)},
        };
        int64_t ms;
        char err[OSY_ERRSTR_SIZE];

        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                ms = -1;
                if (osy_time_parse(cases[i].s, &ms, err, sizeof(err)) != OSY_OK)
                        fail_msg("%s: %s", cases[i].s, err);
                if (ms != cases[i].ms)
                        fail_msg("%s: %lld != %lld", cases[i].s, (long long)ms,
                                 (long long)cases[i].ms);
        }
}

static void time_parse_rejects(void **state)
{
        static const char *const bad[] = {
            "",
            "2026-11-26",
            "2026-11-26T04:13:00",       /* no zone */
            "2026-11-26T04:13:00.Z",     /* empty fraction */
            "2026-13-01T00:00:00Z",      /* month */
            "2026-02-29T00:00:00Z",      /* not a leap year */
            "2026-11-31T00:00:00Z",      /* day */
            "2026-11-26T24:00:00Z",      /* hour */
            "2026-11-26T04:60:00Z",      /* minute */
            "2026-11-26T04:13:00+24:00", /* offset */
            "2026-11-26T04:13:00Zjunk",  /* trailing */
            "1969-12-31T23:59:59Z",      /* before the epoch */
            "1970-01-01T00:30:00+01:00", /* also before the epoch */
            "2026-11-26T04:13:0",        /* truncated */
            "2026-1-26T04:13:00Z",
            "+2026-11-26T04:13:00Z",
        };
        int64_t ms = 42;

        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (osy_time_parse(bad[i], &ms, NULL, 0) != OSY_ERR_INVALID)
                        fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(ms, 42); /* untouched on error */
        assert_int_equal(osy_time_parse(NULL, &ms, NULL, 0), OSY_ERR_INVALID);
}

static void time_canonical_is_strict(void **state)
{
        int64_t ms;

        (void)state;
        assert_int_equal(
            osy_time_parse_canonical("2026-11-26T04:13:00.123Z", &ms, NULL, 0),
            OSY_OK);
        assert_int_equal(ms, T0 + 123);
        assert_int_equal(
            osy_time_parse_canonical("2026-11-26T04:13:00Z", &ms, NULL, 0),
            OSY_ERR_INVALID);
        assert_int_equal(osy_time_parse_canonical(
                             "2026-11-25T22:13:00.000-06:00", &ms, NULL, 0),
                         OSY_ERR_INVALID);
        assert_int_equal(
            osy_time_parse_canonical("2026-11-26 04:13:00.123Z", &ms, NULL, 0),
            OSY_ERR_INVALID);
        assert_int_equal(
            osy_time_parse_canonical("2026-11-26T04:13:00.1234Z", &ms, NULL, 0),
            OSY_ERR_INVALID);
}

static void time_format_parse_roundtrip(void **state)
{
        uint64_t x = 88172645463325252ull;
        char buf[OSY_TIME_BUFSZ];

        (void)state;
        for (int i = 0; i < 20000; i++) {
                int64_t ms, back = -1;

                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ms = (int64_t)(x % (uint64_t)(OSY_TIME_MAX_MS + 1));
                assert_int_equal(osy_time_format_ms(ms, buf, sizeof(buf)),
                                 OSY_OK);
                assert_int_equal(osy_time_parse_canonical(buf, &back, NULL, 0),
                                 OSY_OK);
                assert_int_equal(back, ms);
        }
}

/* ---- rejections, by path ------------------------------------------------ */

/* Each refusal must name the JSON path, because that text is what an
 * operator reads in the DLQ record. */

static void decode_rejects_malformed_input(void **state)
{
        char *big;

        (void)state;
        dec_bad("", 0, "message: empty");
        dec_bad(NULL, 10, "message: empty");
        DEC_BAD_LIT("{\"v\":1", "not valid JSON");
        DEC_BAD_LIT("nope", "not valid JSON");
        DEC_BAD_LIT("[1,2]", "not a JSON object");
        DEC_BAD_LIT("\"str\"", "not a JSON object");
        DEC_BAD_LIT("{} {}", "trailing data");
        DEC_BAD_LIT("{\"v\":1}\0", "NUL byte at offset 7");
        DEC_BAD_LIT("{\"v\":\"\xff\"}", "not valid UTF-8");
        DEC_BAD_LIT("{\"v\":\"a\x01\"}", "control byte 0x01");
        DEC_BAD_LIT("{\"tenant\":\"a\\u0000b\"}", "\\u0000");
        big = malloc(OSY_MSG_MAX_BYTES + 2);
        memset(big, ' ', OSY_MSG_MAX_BYTES + 1);
        big[0]                 = '{';
        big[OSY_MSG_MAX_BYTES] = '}';
        dec_bad(big, OSY_MSG_MAX_BYTES + 1, "65536-byte cap");
        free(big);
}

static void decode_rejects_versions(void **state)
{
        (void)state;
        DEC_BAD_LIT("{}", "v: required");
        bad_with(build_ac_event, "v", NULL, "v: required");
        bad_with(build_ac_event, "v", "2", "v: unsupported version 2");
        bad_with(build_ac_event, "v", "0", "unsupported version 0");
        bad_with(build_ac_event, "v", "\"1\"", "v: expected the integer 1");
        bad_with(build_ac_event, "v", "1.5", "v: expected the integer 1");
        /* A v2 message with new fields says "version", not "unknown". */
        DEC_BAD_LIT("{\"v\":2,\"type\":\"ac.event\",\"new\":1}",
                    "unsupported version 2");
}

static void decode_rejects_envelope_fields(void **state)
{
        (void)state;
        bad_with(build_ac_event, "type", NULL, "type: required");
        bad_with(build_ac_event, "type", "\"ac.evnt\"",
                 "type: unknown value \"ac.evnt\" (expected ac.event|");
        bad_with(build_ac_event, "type", "7", "type: expected a string");
        bad_with(build_ac_event, "id", NULL, "id: required");
        bad_with(build_ac_event, "id", "\"ABCDEF0123456789ABCDEF0123456789\"",
                 "id: expected 32 lowercase hex");
        bad_with(build_ac_event, "id", "\"abc\"", "id: expected 32");
        bad_with(build_ac_event, "tenant", NULL, "tenant: required");
        bad_with(build_ac_event, "tenant", "\"a|b\"", "tenant: character 0x7c");
        bad_with(build_ac_event, "tenant", "\"\"", "tenant: empty");
        bad_with(build_ac_event, "tenant", "5", "tenant: expected a string");
        bad_with(build_ac_event, "email", NULL, "email: required");
        bad_with(build_ac_event, "email", "\"Jane.Doe@example.com\"",
                 "email: not normalised (expected \"jane.doe@example.com\")");
        bad_with(build_ac_event, "email", "\"jane\"", "email: no '@'");
        bad_with(build_ac_event, "source", NULL, "source: required");
        bad_with(build_ac_event, "source", "\"ac-ingest\"",
                 "source: unknown value");
        bad_with(build_ac_event, "source", "\"sf\"",
                 "source: sf does not produce ac.event");
        bad_with(build_sf_command, "source", "\"ac\"",
                 "source: ac does not produce sf.command");
        bad_with(build_ac_event, "occurred_at", NULL, "occurred_at: required");
        bad_with(build_ac_event, "occurred_at",
                 "\"2026-11-25T22:13:00.000-06:00\"",
                 "occurred_at: time \"2026-11-25T22:13:00.000-06:00\": "
                 "expected UTC");
        bad_with(build_ac_event, "occurred_at", "1795666380000",
                 "occurred_at: expected a string");
        bad_with(build_ac_event, "payload", NULL, "payload: required");
        bad_with(build_ac_event, "payload", "[]",
                 "payload: expected an object");
}

static void decode_rejects_unknown_and_duplicate_keys(void **state)
{
        char *json, *p;

        (void)state;
        bad_with(build_ac_event, "tennant", "\"acme\"",
                 "tennant: unknown field");
        bad_with(build_ac_event, "payload.list", "\"2\"",
                 "payload.list: unknown field");
        bad_with(build_sf_command, "payload.version.seq", "1",
                 "payload.version.seq: unknown field");
        bad_with(build_dlq, "payload.original.headers", "{}",
                 "payload.original.headers: unknown field");
        /* Duplicate keys: readers would disagree on which one counts. */
        json = with(build_ac_event, "payload.kind", NULL);
        p    = strstr(json, "\"payload\":{");
        assert_non_null(p);
        {
                size_t len = strlen(json) + 64;
                char *dup  = malloc(len);
                snprintf(dup, len, "%.*s\"payload\":{\"echo\":false,%s",
                         (int)(p - json), json, p + 11);
                dec_bad(dup, strlen(dup), "payload.echo: duplicate key");
                free(dup);
        }
        free(json);
}

static void decode_rejects_ac_event_payload(void **state)
{
        (void)state;
        bad_with(build_ac_event, "payload.kind", NULL,
                 "payload.kind: required");
        bad_with(build_ac_event, "payload.kind", "\"unsub\"",
                 "payload.kind: unknown value \"unsub\" (expected "
                 "subscribe|unsubscribe|bounce|contact_tag_added|");
        bad_with(build_ac_event, "payload.contact_id", NULL,
                 "payload.contact_id: required");
        bad_with(build_ac_event, "payload.contact_id", "18723",
                 "payload.contact_id: expected a string");
        bad_with(build_ac_event, "payload.list_id", NULL,
                 "payload.list_id: required for kind=unsubscribe");
        bad_with(build_ac_event, "payload.list_id", "\"\"",
                 "payload.list_id: empty");
        bad_with(build_ac_event, "payload.list_id", "\"2 3\"",
                 "payload.list_id: character 0x20");
        bad_with(build_ac_event, "payload.bounce_type", "\"hard\"",
                 "payload.bounce_type: only for kind=bounce");
        bad_with(build_ac_event, "payload.kind", "\"bounce\"",
                 "payload.bounce_type: required for kind=bounce");
        bad_with(build_ac_event, "payload.kind", "\"contact_tag_added\"",
                 "payload.tag: required for kind=contact_tag_added");
        bad_with(build_ac_event, "payload.tag", "\"x\"",
                 "payload.tag: only for kind=contact_tag_added");
        bad_with(build_ac_event, "payload.tags", "\"a, b\"",
                 "payload.tags: expected an array of strings");
        bad_with(build_ac_event, "payload.tags", "[\"a\",3]",
                 "payload.tags[1]: expected a string");
        bad_with(build_ac_event, "payload.tags", "[\"a\",\"\"]",
                 "payload.tags[1]: empty");
        bad_with(build_ac_event, "payload.initiated_by", NULL,
                 "payload.initiated_by: required");
        bad_with(build_ac_event, "payload.initiated_by", "\"robot\"",
                 "payload.initiated_by: unknown value");
        bad_with(build_ac_event, "payload.echo", NULL,
                 "payload.echo: required");
        bad_with(build_ac_event, "payload.echo", "0",
                 "payload.echo: expected true or false");
        bad_with(build_ac_event, "payload.automation", "null",
                 "payload.automation: expected true or false");
}

static void decode_rejects_sf_event_payload(void **state)
{
        (void)state;
        bad_with(build_sf_event, "payload.object", "\"Account\"",
                 "payload.object: unknown value \"Account\" (expected "
                 "Contact|Lead)");
        bad_with(build_sf_event, "payload.object", NULL,
                 "payload.object: required");
        bad_with(build_sf_event, "payload.record_id", "\"0035g00000AbCd\"",
                 "payload.record_id: a Salesforce id has 15 or 18");
        bad_with(build_sf_event, "payload.record_id", "\"0035g00000AbCdEAA!\"",
                 "payload.record_id: character 0x21");
        bad_with(build_sf_event, "payload.has_opted_out_of_email", NULL,
                 "payload.has_opted_out_of_email: required for "
                 "kind=opt_out_changed");
        bad_with(build_sf_event, "payload.has_opted_out_of_email", "\"true\"",
                 "payload.has_opted_out_of_email: expected true or false");
        bad_with(build_sf_event, "payload.is_converted", "false",
                 "payload.is_converted: only for object=Lead");
        bad_with(build_sf_event, "payload.kind", "\"lead_converted\"",
                 "payload.object: must be Lead for kind=lead_converted");
        bad_with(build_sf_event, "payload.replay_id", "1234",
                 "payload.replay_id: expected a string");
        bad_with(build_sf_event, "payload.change_origin", "\"a\\nb\"",
                 "payload.change_origin: character 0x0a");
}

static void decode_rejects_lead_conversion_rules(void **state)
{
        struct osy_msg m;
        char err[OSY_ERRSTR_SIZE];

        (void)state;
        osy_msg_init(&m, OSY_MSG_SF_EVENT);
        set_env(&m, OSY_SRC_SF);
        m.sf_event.kind   = OSY_SF_LEAD_CONVERTED;
        m.sf_event.object = OSY_SF_LEAD;
        set(&m.sf_event.record_id, "00Q5g00000AbCdE");
        assert_int_equal(osy_msg_validate(&m, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_string_equal(err, "payload.is_converted: must be true for "
                                 "kind=lead_converted");
        m.sf_event.is_converted = OSY_TRI_TRUE;
        assert_int_equal(osy_msg_validate(&m, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_string_equal(err, "payload.converted_contact_id: required for "
                                 "kind=lead_converted");
        set(&m.sf_event.converted_contact_id, "0035g00000AbCdEAAZ");
        assert_int_equal(osy_msg_validate(&m, err, sizeof(err)), OSY_OK);
        /* A converted id on an unconverted lead is a contradiction. */
        m.sf_event.kind                   = OSY_SF_OPT_OUT_CHANGED;
        m.sf_event.has_opted_out_of_email = OSY_TRI_TRUE;
        m.sf_event.is_converted           = OSY_TRI_FALSE;
        assert_int_equal(osy_msg_validate(&m, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(err, "payload.is_converted: must be true when "
                                    "converted_contact_id"));
        osy_msg_clear(&m);
}

static void decode_rejects_command_payloads(void **state)
{
        (void)state;
        bad_with(build_sf_command, "payload.has_opted_out_of_email", "false",
                 "payload.has_opted_out_of_email: must be true for rule=R4");
        bad_with(build_sf_command, "payload.rule", "\"R1\"",
                 "payload.has_opted_out_of_email: must be false for rule=R1");
        bad_with(build_sf_command, "payload.rule", "\"R5\"",
                 "payload.rule: unknown value \"R5\" (expected R1|R2|R3|R4)");
        bad_with(build_sf_command, "payload.has_opted_out_of_email", NULL,
                 "payload.has_opted_out_of_email: required");
        bad_with(build_sf_command, "payload.cause_event_id", NULL,
                 "payload.cause_event_id: required");
        bad_with(build_sf_command, "payload.cause_event_id", "\"xyz\"",
                 "payload.cause_event_id: expected 32 lowercase hex");
        bad_with(build_sf_command, "payload.version", NULL,
                 "payload.version: required");
        bad_with(build_sf_command, "payload.version", "5",
                 "payload.version: expected an object");
        bad_with(build_sf_command, "payload.version.ms", "-1",
                 "payload.version.ms: out of range");
        bad_with(build_sf_command, "payload.version.ms", "1.5",
                 "payload.version.ms: expected an integer");
        bad_with(build_sf_command, "payload.version.tie", NULL,
                 "payload.version.tie: required");
        bad_with(build_sf_command, "payload.version.tie", "\"a b\"",
                 "payload.version.tie: character 0x20");
        bad_with(build_ac_command, "payload.rule", "\"R3\"",
                 "payload.rule: must be R4 for action=unsubscribe_all_lists");
        bad_with(build_ac_command, "payload.action", "\"subscribe\"",
                 "payload.action: unknown value");
        bad_with(build_ac_command, "payload.action", NULL,
                 "payload.action: required");
}

static void decode_rejects_audit_payload(void **state)
{
        (void)state;
        bad_with(build_audit, "payload.stage", "\"writer\"",
                 "payload.stage: unknown value");
        bad_with(build_audit, "payload.action", "\"SF Update\"",
                 "payload.action: character 0x53");
        bad_with(build_audit, "payload.outcome", NULL,
                 "payload.outcome: required");
        bad_with(build_audit, "payload.outcome", "\"ok\"",
                 "payload.outcome: unknown value");
        bad_with(build_audit, "payload.ref_id", NULL,
                 "payload.ref_id: required");
        bad_with(build_audit, "payload.http_status", "700",
                 "payload.http_status: out of range 100..599");
        bad_with(build_audit, "payload.api", NULL,
                 "payload.api: required with http_status");
        bad_with(build_audit, "payload.calls", "-1",
                 "payload.calls: out of range");
}

static void decode_rejects_dlq_payload(void **state)
{
        (void)state;
        bad_with(build_dlq, "payload.attempts", "0",
                 "payload.attempts: out of range 1..");
        bad_with(build_dlq, "payload.attempts", NULL,
                 "payload.attempts: required");
        bad_with(build_dlq, "payload.reason", NULL, "payload.reason: required");
        bad_with(build_dlq, "payload.last_failed_at",
                 "\"2026-11-26T04:12:59.000Z\"",
                 "payload.last_failed_at: before first_failed_at");
        bad_with(build_dlq, "payload.first_failed_at", "\"yesterday\"",
                 "payload.first_failed_at: time \"yesterday\"");
        bad_with(build_dlq, "payload.original", NULL,
                 "payload.original: required");
        bad_with(build_dlq, "payload.original.topic", "\"a topic\"",
                 "payload.original.topic: character 0x20");
        bad_with(build_dlq, "payload.original.partition", "-1",
                 "payload.original.partition: out of range");
        bad_with(build_dlq, "payload.original.offset", "1e300",
                 "payload.original.offset: out of range");
        bad_with(build_dlq, "payload.original.value", NULL,
                 "payload.original.value: required");
        bad_with(build_dlq, "payload.original.value_encoding", "\"base64\"",
                 "payload.original.value: not valid base64");
        bad_with(build_dlq, "payload.original.value_encoding", "\"hex\"",
                 "payload.original.value_encoding: unknown value");
        bad_with(build_dlq, "payload.original.value_size", "3",
                 "payload.original.value_size: smaller than the value");
        bad_with(build_dlq, "payload.original.value_size", "999999",
                 "payload.original.value_size: larger than the value");
        bad_with(build_dlq, "payload.original.key_encoding", "\"base64\"",
                 "payload.original.key: not valid base64");
        bad_with(build_dlq, "email", NULL,
                 "email: dlq carries tenant and email together");
}

static void decode_rejects_id_mismatch(void **state)
{
        struct osy_msg m;
        char *json;

        (void)state;
        /* An identifying field changed in flight: refused. */
        bad_with(build_ac_event, "payload.contact_id", "\"99\"",
                 "does not match the message fields (computed ");
        bad_with(build_ac_event, "id", "\"00000000000000000000000000000000\"",
                 "id: 00000000000000000000000000000000 does not match");
        /* A non-identifying one: still the same occurrence, accepted. */
        json = with(build_ac_event, "payload.echo", "true");
        dec_ok(json, &m);
        assert_int_equal(m.ac_event.echo, 1);
        osy_msg_clear(&m);
        free(json);
}

/* ---- robustness --------------------------------------------------------- */

/* Consumers decode whatever is on the topic: any byte string must end in
 * a valid message or OSY_ERR_INVALID, never a crash (run under ASan). */

/* Any result but a crash: OK (then the message re-encodes) or INVALID.
 * @returns 1 if accepted. */
static int decode_any(const void *buf, size_t len)
{
        char err[OSY_ERRSTR_SIZE];
        struct osy_msg m;
        osy_err_t e = osy_msg_decode(buf, len, &m, err, sizeof(err));

        assert_true(e == OSY_OK || e == OSY_ERR_INVALID);
        if (e == OSY_OK) {
                char *json = enc(&m);
                free(json);
        } else {
                assert_true(strlen(err) > 0);
        }
        osy_msg_clear(&m);
        return e == OSY_OK;
}

static void decode_survives_every_prefix(void **state)
{
        (void)state;
        for (size_t b = 0; b < NBUILDERS; b++) {
                struct osy_msg m;
                char *json;
                size_t len;

                builders[b](&m);
                json = enc(&m);
                len  = strlen(json);
                for (size_t n = 0; n < len; n++) {
                        /* An exact-size heap copy, so ASan sees any read
                         * past the given length. */
                        char *cut = malloc(n ? n : 1);
                        memcpy(cut, json, n);
                        decode_any(cut, n);
                        free(cut);
                }
                free(json);
                osy_msg_clear(&m);
        }
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
}

static void decode_survives_random_mutations(void **state)
{
        static const char interesting[] = "{}[]\":,\\ 0-1e.tfnu\x80\xff";
        int accepted                    = 0;

        (void)state;
        for (int i = 0; i < 6000; i++) {
                struct osy_msg m;
                char *json, *buf;
                size_t len, n;

                builders[i % NBUILDERS](&m);
                json = enc(&m);
                osy_msg_clear(&m);
                len = strlen(json);
                buf = malloc(len + 16);
                memcpy(buf, json, len);
                n = 1 + rnd() % 4;
                for (size_t k = 0; k < n; k++) {
                        size_t at = rnd() % len;
                        switch (rnd() % 4) {
                        case 0: /* flip */
                                buf[at] = (char)(buf[at] ^ (1 << (rnd() % 8)));
                                break;
                        case 1: /* replace with a JSON-significant byte */
                                buf[at] =
                                    interesting[rnd() %
                                                (sizeof(interesting) - 1)];
                                break;
                        case 2: /* delete */
                                memmove(buf + at, buf + at + 1, len - at - 1);
                                len--;
                                break;
                        case 3: /* insert */
                                memmove(buf + at + 1, buf + at, len - at);
                                buf[at] =
                                    interesting[rnd() %
                                                (sizeof(interesting) - 1)];
                                len++;
                                break;
                        }
                }
                {
                        char *exact = malloc(len ? len : 1);

                        memcpy(exact, buf, len);
                        accepted += decode_any(exact, len);
                        free(exact);
                }
                free(buf);
                free(json);
        }
        /* Mutations of free text (audit detail, dlq errors) are legitimately
         * accepted; anything near half would mean the checks are asleep. */
        assert_true(accepted < 1500);
}

static void decode_survives_random_bytes_and_nesting(void **state)
{
        char buf[512];
        char *deep;
        size_t n = 20000;

        (void)state;
        for (int i = 0; i < 2000; i++) {
                size_t len = rnd() % sizeof(buf);
                for (size_t k = 0; k < len; k++)
                        buf[k] = (char)rnd();
                decode_any(buf, len);
        }
        deep = malloc(2 * n);
        memset(deep, '[', n);
        memset(deep + n, ']', n);
        decode_any(deep, 2 * n);
        memset(deep, '{', n);
        decode_any(deep, 2 * n);
        free(deep);
}

/* ---- helpers ------------------------------------------------------------ */

static void tags_csv_parsing(void **state)
{
        struct osy_ac_event ev;
        struct osy_msg m;

        (void)state;
        osy_msg_init(&m, OSY_MSG_AC_EVENT);
        memset(&ev, 0, sizeof(ev));
        assert_int_equal(
            osy_ac_event_set_tags_csv(&m.ac_event, " tag1,  tag two ,,tag3 "),
            OSY_OK);
        assert_int_equal(m.ac_event.tags_cnt, 3);
        assert_string_equal(m.ac_event.tags[0], "tag1");
        assert_string_equal(m.ac_event.tags[1], "tag two");
        assert_string_equal(m.ac_event.tags[2], "tag3");
        assert_int_equal(osy_ac_event_set_tags_csv(&m.ac_event, ""), OSY_OK);
        assert_int_equal(m.ac_event.tags_cnt, 0);
        assert_int_equal(m.ac_event.has_tags, 1);
        assert_int_equal(osy_ac_event_add_tag(&m.ac_event, "x"), OSY_OK);
        assert_int_equal(m.ac_event.tags_cnt, 1);
        osy_msg_clear(&m);
}

static void strset_trunc_keeps_utf8_whole(void **state)
{
        char *s = NULL;

        (void)state;
        /* "ab€": the euro sign is 3 bytes; a cut at 3 or 4 drops it. */
        assert_int_equal(osy_msg_strset_trunc(&s, "ab\xe2\x82\xac", 4), OSY_OK);
        assert_string_equal(s, "ab");
        assert_int_equal(osy_msg_strset_trunc(&s, "ab\xe2\x82\xac", 5), OSY_OK);
        assert_string_equal(s, "ab\xe2\x82\xac");
        assert_int_equal(osy_msg_strset(&s, NULL), OSY_OK);
        assert_null(s);
}

static void peek_person_from_bad_message(void **state)
{
        static const char bad[] = "{\"v\":9,\"tenant\":\"acme\","
                                  "\"email\":\" X@Y.z \"}";
        char tenant[OSY_TENANT_MAX + 1], email[OSY_EMAIL_BUFSZ];

        (void)state;
        assert_true(osy_msg_peek_person(bad, sizeof(bad) - 1, tenant,
                                        sizeof(tenant), email, sizeof(email)));
        assert_string_equal(tenant, "acme");
        assert_string_equal(email, "x@y.z");
        assert_false(osy_msg_peek_person("{\"tenant\":\"a|b\",\"email\":"
                                         "\"x@y.z\"}",
                                         32, tenant, sizeof(tenant), email,
                                         sizeof(email)));
        assert_string_equal(tenant, "");
        assert_string_equal(email, "");
        assert_false(osy_msg_peek_person("garbage", 7, tenant, sizeof(tenant),
                                         email, sizeof(email)));
}

static void version_cmp_orders_ms_then_tie(void **state)
{
        struct osy_version a = {100, "b"}, b = {100, "c"}, c = {101, "a"};

        (void)state;
        assert_true(osy_version_cmp(&a, &b) < 0);
        assert_true(osy_version_cmp(&b, &a) > 0);
        assert_true(osy_version_cmp(&b, &c) < 0);
        assert_int_equal(osy_version_cmp(&a, &a), 0);
}

static void names_and_topics(void **state)
{
        (void)state;
        assert_string_equal(osy_msg_type2str(OSY_MSG_SF_COMMAND), "sf.command");
        assert_string_equal(osy_msg_type2str((osy_msg_type_t)99), "?");
        assert_string_equal(osy_source2str(OSY_SRC_SF_WRITER), "sf-writer");
        assert_string_equal(osy_ac_kind2str(OSY_AC_TAG_REMOVED),
                            "contact_tag_removed");
        assert_string_equal(osy_sf_kind2str(OSY_SF_UNDELETED), "undeleted");
        assert_string_equal(osy_rule2str(OSY_RULE_R3), "R3");
        assert_string_equal(osy_stage2str(OSY_STAGE_AC_INGEST), "ac-ingest");
        assert_string_equal(osy_outcome2str(OSY_OUTCOME_DEAD_LETTERED),
                            "dead_lettered");
        assert_int_equal(osy_msg_type_topic(OSY_MSG_AC_EVENT),
                         OSY_TOPIC_AC_EVENTS);
        assert_int_equal(osy_msg_type_topic(OSY_MSG_DLQ), OSY_TOPIC_DLQ);
        assert_int_equal(osy_msg_type_topic(OSY_MSG_NONE), OSY_TOPIC__CNT);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(roundtrip_ac_event),
    cmocka_unit_test(roundtrip_sf_event),
    cmocka_unit_test(roundtrip_sf_command),
    cmocka_unit_test(roundtrip_ac_command),
    cmocka_unit_test(roundtrip_audit),
    cmocka_unit_test(roundtrip_dlq),
    cmocka_unit_test(roundtrip_lead_converted),
    cmocka_unit_test(roundtrip_dlq_binary_value_as_base64),
    cmocka_unit_test(roundtrip_dlq_without_person),
    cmocka_unit_test(dlq_truncates_big_values),
    cmocka_unit_test(decode_on_many_threads_and_big_messages),
    cmocka_unit_test(encode_is_compact_with_fixed_key_order),
    cmocka_unit_test(encode_refuses_field_changed_after_finalize),
    cmocka_unit_test(encode_refuses_invalid_message),
    cmocka_unit_test(id_hash_known_vector),
    cmocka_unit_test(id_hash_length_prefix_separates_fields),
    cmocka_unit_test(ac_event_duplicate_delivery_same_id),
    cmocka_unit_test(ac_event_id_changes_with_every_identifying_field),
    cmocka_unit_test(sf_event_id_ignores_delivery_fields),
    cmocka_unit_test(command_id_is_cause_and_desired_state),
    cmocka_unit_test(audit_and_dlq_ids),
    cmocka_unit_test(email_normalise_trims_and_lowercases),
    cmocka_unit_test(email_invalid_rejected),
    cmocka_unit_test(utf8_validator),
    cmocka_unit_test(tenant_check_rules),
    cmocka_unit_test(partition_key_is_tenant_bar_email),
    cmocka_unit_test(time_format_canonical),
    cmocka_unit_test(time_parse_offsets_and_ac_formats),
    cmocka_unit_test(time_parse_rejects),
    cmocka_unit_test(time_canonical_is_strict),
    cmocka_unit_test(time_format_parse_roundtrip),
    cmocka_unit_test(decode_rejects_malformed_input),
    cmocka_unit_test(decode_rejects_versions),
    cmocka_unit_test(decode_rejects_envelope_fields),
    cmocka_unit_test(decode_rejects_unknown_and_duplicate_keys),
    cmocka_unit_test(decode_rejects_ac_event_payload),
    cmocka_unit_test(decode_rejects_sf_event_payload),
    cmocka_unit_test(decode_rejects_lead_conversion_rules),
    cmocka_unit_test(decode_rejects_command_payloads),
    cmocka_unit_test(decode_rejects_audit_payload),
    cmocka_unit_test(decode_rejects_dlq_payload),
    cmocka_unit_test(decode_rejects_id_mismatch),
    cmocka_unit_test(decode_survives_every_prefix),
    cmocka_unit_test(decode_survives_random_mutations),
    cmocka_unit_test(decode_survives_random_bytes_and_nesting),
    cmocka_unit_test(tags_csv_parsing),
    cmocka_unit_test(strset_trunc_keeps_utf8_whole),
    cmocka_unit_test(peek_person_from_bad_message),
    cmocka_unit_test(version_cmp_orders_ms_then_tie),
    cmocka_unit_test(names_and_topics),
};
OSY_TEST_MAIN(tests, NULL, NULL)
