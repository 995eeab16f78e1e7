/*
 * test_config.c - configuration from the environment: every type, ranges,
 * secrets and their files, unknown keys, all errors at once, the dump and
 * the generated reference. Each case passes its own envp: no setenv.
 */
#include "osy_test.h"
#include "optsync/config.h"
#include "optsync/log.h"

#include <stdlib.h>
#include <string.h>

extern char **environ;

/* Every row of the table, as the tests see it. */
struct row {
        osy_cfg_id_t id;
        const char *name, *type, *def, *lo, *hi, *used_by, *doc;
};

static const struct row rows[] = {
#define OSY_CFG(id, name, type, def, lo, hi, used_by, doc)                     \
        {OSY_CFG_##id, name, #type, def, lo, hi, used_by, doc},
#include "optsync/config_keys.h"
#undef OSY_CFG
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

static char errbuf[4096];

/* Loads @p env (NULL-terminated), expecting success. */
static osy_config_t *load_ok(char *const *env)
{
        osy_config_t *cfg = NULL;
        osy_err_t err     = osy_config_load(&cfg, env, errbuf, sizeof(errbuf));
        if (err != OSY_OK)
                fail_msg("load failed: %s", errbuf);
        assert_non_null(cfg);
        return cfg;
}

/* Loads @p env expecting OSY_ERR_INVALID; returns the error text. */
static const char *load_bad(char *const *env)
{
        /* Any non-NULL value: the load must reset it to NULL. */
        osy_config_t *cfg = (osy_config_t *)(void *)errbuf;
        osy_err_t err     = osy_config_load(&cfg, env, errbuf, sizeof(errbuf));
        assert_int_equal(err, OSY_ERR_INVALID);
        assert_null(cfg);
        assert_true(strlen(errbuf) > 0);
        return errbuf;
}

/* Loads a single NAME=VALUE and expects exactly @p msg as the error. */
static void expect_error(const char *entry, const char *msg)
{
        char *env[] = {(char *)entry, NULL};
        assert_string_equal(load_bad(env), msg);
}

/* Loads a single NAME=VALUE and expects an error containing @p part. */
static void expect_error_has(const char *entry, const char *part)
{
        char *env[]   = {(char *)entry, NULL};
        const char *e = load_bad(env);
        if (!strstr(e, part))
                fail_msg("'%s' lacks '%s'", e, part);
}

static int count_of(const char *hay, const char *needle)
{
        int n = 0;
        for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

/* Whole output of a FILE-writing function, as a string (caller frees). */
static char *capture(void (*fn)(const osy_config_t *, FILE *),
                     const osy_config_t *cfg)
{
        char *buf = NULL;
        size_t len;
        FILE *f = open_memstream(&buf, &len);
        assert_non_null(f);
        fn(cfg, f);
        fclose(f);
        return buf;
}

static void markdown_adapter(const osy_config_t *cfg, FILE *out)
{
        (void)cfg;
        osy_config_markdown(out);
}

static char *write_file(const char *dir, const char *name, const char *data,
                        size_t len)
{
        size_t n   = strlen(dir) + strlen(name) + 2;
        char *path = malloc(n);
        assert_non_null(path);
        snprintf(path, n, "%s/%s", dir, name);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, len, f), len);
        fclose(f);
        return path;
}

static int teardown_secrets(void **state)
{
        (void)state;
        osy_log_clear_secrets();
        return 0;
}

/* ---- defaults and the table ---------------------------------------------- */

static void defaults_when_nothing_set(void **state)
{
        char *env[]       = {NULL};
        osy_config_t *cfg = load_ok(env);
        (void)state;
        assert_string_equal(osy_config_str(cfg, OSY_CFG_KAFKA_BOOTSTRAP),
                            "127.0.0.1:9092");
        assert_string_equal(osy_config_str(cfg, OSY_CFG_ADMIN_ADDR), "0.0.0.0");
        assert_int_equal(osy_config_int(cfg, OSY_CFG_ADMIN_PORT), 9090);
        assert_int_equal(osy_config_int(cfg, OSY_CFG_REDIS_PORT), 6379);
        assert_int_equal(osy_config_int(cfg, OSY_CFG_HTTP_MAX_BODY),
                         8 * 1024 * 1024);
        assert_int_equal(osy_config_ms(cfg, OSY_CFG_DEDUP_TTL),
                         80LL * 3600 * 1000);
        assert_int_equal(osy_config_ms(cfg, OSY_CFG_RETRY_BASE), 200);
        assert_int_equal(osy_config_ms(cfg, OSY_CFG_SHUTDOWN_GRACE), 25000);
        assert_int_equal(osy_config_enum(cfg, OSY_CFG_LOG_LEVEL), OSY_LOG_INFO);
        assert_string_equal(osy_config_str(cfg, OSY_CFG_LOG_LEVEL), "info");
        assert_int_equal(osy_config_bool(cfg, OSY_CFG_SYNC_ALL_CONTACTS), 0);
        assert_string_equal(osy_config_str(cfg, OSY_CFG_REDIS_PASSWORD), "");
        for (size_t i = 0; i < NROWS; i++)
                assert_int_equal(osy_config_is_set(cfg, rows[i].id), 0);
        osy_config_destroy(cfg);
}

static void dedup_ttl_outlasts_cdc_replay_window(void **state)
{
        char *env[]       = {NULL};
        osy_config_t *cfg = load_ok(env);
        (void)state;
        /* SF CDC replays 72 h: a shorter dedup entry would reprocess. */
        assert_true(osy_config_ms(cfg, OSY_CFG_DEDUP_TTL) > 72LL * 3600000);
        expect_error("OPTSYNC_DEDUP_TTL=71h",
                     "OPTSYNC_DEDUP_TTL: '71h' is below the minimum 72h");
        osy_config_destroy(cfg);
}

static void table_rows_are_complete(void **state)
{
        (void)state;
        assert_int_equal(NROWS, OSY_CFG__COUNT);
        for (size_t i = 0; i < NROWS; i++) {
                const struct row *r = &rows[i];
                assert_int_equal(r->id, (osy_cfg_id_t)i);
                assert_string_equal(osy_config_name(r->id), r->name);
                assert_int_equal(strncmp(r->name, "OPTSYNC_", 8), 0);
                assert_true(strlen(r->doc) > 10);
                assert_true(strlen(r->used_by) > 0);
                if (!strcmp(r->type, "SECRET"))
                        assert_string_equal(r->def, ""); /* no defaults */
                for (size_t j = 0; j < i; j++)
                        assert_string_not_equal(rows[j].name, r->name);
        }
}

/* Both bounds and every enum value of every row are accepted values: the
 * table's min/max strings parse with the key's own syntax. */
static void table_bounds_and_values_load(void **state)
{
        (void)state;
        for (size_t i = 0; i < NROWS; i++) {
                const struct row *r = &rows[i];
                char entry[256];
                /* The entry comes first (first wins); the others satisfy
                 * the cross-key rules whatever bound is being tried. */
                char *env[]         = {entry,
                                       "OPTSYNC_KAFKA_SASL_USERNAME=user",
                                       "OPTSYNC_KAFKA_SASL_PASSWORD=pass",
                                       "OPTSYNC_RETRY_BASE=1ms",
                                       "OPTSYNC_RETRY_MAX_DELAY=1h",
                                       "OPTSYNC_HTTP_CONNECT_TIMEOUT=100ms",
                                       "OPTSYNC_HTTP_TIMEOUT=10m",
                                       NULL};
                const char *vals[2] = {r->lo, r->hi};

                if (!strcmp(r->type, "ENUM")) {
                        /* Each "a|b|c" value in turn, by index. */
                        const char *p = r->lo;
                        for (int idx = 0; *p; idx++) {
                                int n = (int)strcspn(p, "|");
                                char v[64];
                                snprintf(v, sizeof(v), "%.*s", n, p);
                                snprintf(entry, sizeof(entry), "%s=%s", r->name,
                                         v);
                                osy_config_t *cfg = load_ok(env);
                                assert_int_equal(osy_config_enum(cfg, r->id),
                                                 idx);
                                assert_string_equal(osy_config_str(cfg, r->id),
                                                    v);
                                osy_config_destroy(cfg);
                                p += n + (p[n] == '|');
                        }
                        continue;
                }
                for (int b = 0; b < 2; b++) {
                        if (!*vals[b])
                                continue;
                        assert_true(!strcmp(r->type, "INT") ||
                                    !strcmp(r->type, "DURATION"));
                        snprintf(entry, sizeof(entry), "%s=%s", r->name,
                                 vals[b]);
                        osy_config_destroy(load_ok(env));
                }
        }
}

/* ---- types ----------------------------------------------------------------
 */

static void non_optsync_vars_ignored(void **state)
{
        char *env[]       = {"PATH=/usr/bin",     "HOME=/root",
                             "OPTSYNCX=1",        "optsync_redis_port=abc",
                             "XOPTSYNC_FOO=1",    "OPTSYNC_REDIS_PORT", /* no '=' */
                             "KAFKA_BOOTSTRAP=x", NULL};
        osy_config_t *cfg = load_ok(env);
        (void)state;
        assert_int_equal(osy_config_int(cfg, OSY_CFG_REDIS_PORT), 6379);
        assert_int_equal(osy_config_is_set(cfg, OSY_CFG_REDIS_PORT), 0);
        osy_config_destroy(cfg);
}

static void strings_taken_as_is(void **state)
{
        char *env[]       = {"OPTSYNC_KAFKA_BOOTSTRAP=k1:9092,k2:9092",
                             "OPTSYNC_KAFKA_SSL_CA_LOCATION=", NULL};
        osy_config_t *cfg = load_ok(env);
        (void)state;
        assert_string_equal(osy_config_str(cfg, OSY_CFG_KAFKA_BOOTSTRAP),
                            "k1:9092,k2:9092");
        assert_int_equal(osy_config_is_set(cfg, OSY_CFG_KAFKA_BOOTSTRAP), 1);
        /* An empty string is a value for strings, not an error. */
        assert_string_equal(osy_config_str(cfg, OSY_CFG_KAFKA_SSL_CA_LOCATION),
                            "");
        assert_int_equal(osy_config_is_set(cfg, OSY_CFG_KAFKA_SSL_CA_LOCATION),
                         1);
        osy_config_destroy(cfg);
}

static void ints_parse(void **state)
{
        char *env[]       = {"OPTSYNC_REDIS_PORT=6380", "OPTSYNC_REDIS_DB=15",
                             "OPTSYNC_ADMIN_PORT=0", NULL};
        osy_config_t *cfg = load_ok(env);
        (void)state;
        assert_int_equal(osy_config_int(cfg, OSY_CFG_REDIS_PORT), 6380);
        assert_int_equal(osy_config_int(cfg, OSY_CFG_REDIS_DB), 15);
        assert_int_equal(osy_config_int(cfg, OSY_CFG_ADMIN_PORT), 0);
        assert_int_equal(osy_config_is_set(cfg, OSY_CFG_ADMIN_PORT), 1);
        osy_config_destroy(cfg);
}

static void ints_reject_garbage(void **state)
{
        static const char *const bad[] = {
            "abc", "12x", " 12", "+5", "1e3", "0x10", "99999999999999999999"};
        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char entry[64], want[128];
                snprintf(entry, sizeof(entry), "OPTSYNC_REDIS_PORT=%s", bad[i]);
                snprintf(want, sizeof(want),
                         "OPTSYNC_REDIS_PORT: '%s' is not an integer", bad[i]);
                expect_error(entry, want);
        }
}

static void ints_out_of_range(void **state)
{
        (void)state;
        expect_error("OPTSYNC_REDIS_PORT=70000",
                     "OPTSYNC_REDIS_PORT: '70000' is above the maximum 65535");
        expect_error("OPTSYNC_REDIS_PORT=0",
                     "OPTSYNC_REDIS_PORT: '0' is below the minimum 1");
        expect_error("OPTSYNC_REDIS_DB=-1",
                     "OPTSYNC_REDIS_DB: '-1' is below the minimum 0");
        expect_error("OPTSYNC_REDIS_DB=16",
                     "OPTSYNC_REDIS_DB: '16' is above the maximum 15");
        expect_error(
            "OPTSYNC_SF_DAILY_RESERVE_PERCENT=91",
            "OPTSYNC_SF_DAILY_RESERVE_PERCENT: '91' is above the maximum 90");
}

static void durations_with_units(void **state)
{
        char *env[]       = {"OPTSYNC_RETRY_BASE=250ms",
                             "OPTSYNC_HTTP_TIMEOUT=5s",
                             "OPTSYNC_SHUTDOWN_GRACE=2m",
                             "OPTSYNC_DEDUP_TTL=100h",
                             "OPTSYNC_REDIS_COMMAND_TIMEOUT=1500", /* bare: ms */
                             NULL};
        osy_config_t *cfg = load_ok(env);
        (void)state;
        assert_int_equal(osy_config_ms(cfg, OSY_CFG_RETRY_BASE), 250);
        assert_int_equal(osy_config_ms(cfg, OSY_CFG_HTTP_TIMEOUT), 5000);
        assert_int_equal(osy_config_ms(cfg, OSY_CFG_SHUTDOWN_GRACE), 120000);
        assert_int_equal(osy_config_ms(cfg, OSY_CFG_DEDUP_TTL),
                         100LL * 3600000);
        assert_int_equal(osy_config_ms(cfg, OSY_CFG_REDIS_COMMAND_TIMEOUT),
                         1500);
        /* The text is kept as the user wrote it, for messages and dumps. */
        assert_string_equal(osy_config_str(cfg, OSY_CFG_RETRY_BASE), "250ms");
        osy_config_destroy(cfg);
}

static void durations_reject_bad(void **state)
{
        static const char *const bad[] = {
            "5 s", "1.5s", "-5s", "5d",   "s",
            "5S",  "ms5",  " 5s", "5sec", "99999999999999999h"};
        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char entry[64], want[128];
                snprintf(entry, sizeof(entry), "OPTSYNC_HTTP_TIMEOUT=%s",
                         bad[i]);
                snprintf(want, sizeof(want),
                         "OPTSYNC_HTTP_TIMEOUT: '%s' is not a duration",
                         bad[i]);
                expect_error_has(entry, want);
        }
}

static void durations_out_of_range(void **state)
{
        char *env[]       = {"OPTSYNC_DEDUP_TTL=72h", NULL};
        osy_config_t *cfg = load_ok(env); /* the bound itself is allowed */
        (void)state;
        assert_int_equal(osy_config_ms(cfg, OSY_CFG_DEDUP_TTL), 72LL * 3600000);
        osy_config_destroy(cfg);
        expect_error("OPTSYNC_DEDUP_TTL=721h",
                     "OPTSYNC_DEDUP_TTL: '721h' is above the maximum 720h");
        /* Units are compared in ms: 4319m is just under 72 h. */
        expect_error("OPTSYNC_DEDUP_TTL=4319m",
                     "OPTSYNC_DEDUP_TTL: '4319m' is below the minimum 72h");
        expect_error("OPTSYNC_REDIS_COMMAND_TIMEOUT=9",
                     "OPTSYNC_REDIS_COMMAND_TIMEOUT: '9' is below the minimum "
                     "10ms");
}

static void bools_parse(void **state)
{
        static const struct {
                const char *text;
                int want;
        } cases[] = {{"true", 1}, {"TRUE", 1},  {"yes", 1},   {"Yes", 1},
                     {"1", 1},    {"false", 0}, {"False", 0}, {"no", 0},
                     {"NO", 0},   {"0", 0}};
        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char entry[64];
                char *env[] = {entry, NULL};
                snprintf(entry, sizeof(entry), "OPTSYNC_SYNC_ALL_CONTACTS=%s",
                         cases[i].text);
                osy_config_t *cfg = load_ok(env);
                assert_int_equal(
                    osy_config_bool(cfg, OSY_CFG_SYNC_ALL_CONTACTS),
                    cases[i].want);
                osy_config_destroy(cfg);
        }
}

static void bools_reject_bad(void **state)
{
        (void)state;
        expect_error("OPTSYNC_SYNC_ALL_CONTACTS=maybe",
                     "OPTSYNC_SYNC_ALL_CONTACTS: 'maybe' is not a boolean "
                     "(use true/false, yes/no or 1/0)");
        expect_error_has("OPTSYNC_SYNC_ALL_CONTACTS=2",
                         "OPTSYNC_SYNC_ALL_CONTACTS: '2' is not a boolean");
        expect_error_has("OPTSYNC_SYNC_ALL_CONTACTS=on",
                         "OPTSYNC_SYNC_ALL_CONTACTS: 'on' is not a boolean");
}

static void enums_any_case_stored_canonical(void **state)
{
        char *env[]       = {"OPTSYNC_LOG_LEVEL=WARN",
                             "OPTSYNC_KAFKA_SASL_MECHANISM=scram-sha-512", NULL};
        osy_config_t *cfg = load_ok(env);
        (void)state;
        assert_string_equal(osy_config_str(cfg, OSY_CFG_LOG_LEVEL), "warn");
        assert_int_equal(osy_config_enum(cfg, OSY_CFG_LOG_LEVEL), OSY_LOG_WARN);
        assert_string_equal(osy_config_str(cfg, OSY_CFG_KAFKA_SASL_MECHANISM),
                            "SCRAM-SHA-512");
        assert_int_equal(osy_config_enum(cfg, OSY_CFG_KAFKA_SASL_MECHANISM), 2);
        osy_config_destroy(cfg);
}

static void enums_reject_unknown_values(void **state)
{
        (void)state;
        expect_error("OPTSYNC_LOG_LEVEL=verbose",
                     "OPTSYNC_LOG_LEVEL: 'verbose' is not one of "
                     "debug|info|warn|error");
        /* A prefix of a value is not the value. */
        expect_error_has("OPTSYNC_LOG_LEVEL=inf",
                         "OPTSYNC_LOG_LEVEL: 'inf' is not one of");
        expect_error_has("OPTSYNC_KAFKA_SECURITY_PROTOCOL=sasl",
                         "OPTSYNC_KAFKA_SECURITY_PROTOCOL: 'sasl' is not one");
}

static void empty_typed_values_rejected(void **state)
{
        (void)state;
        expect_error("OPTSYNC_REDIS_PORT=",
                     "OPTSYNC_REDIS_PORT: empty value (unset the variable to "
                     "use the default '6379')");
        expect_error_has("OPTSYNC_LOG_LEVEL=", "OPTSYNC_LOG_LEVEL: empty");
        expect_error_has("OPTSYNC_HTTP_TIMEOUT=",
                         "OPTSYNC_HTTP_TIMEOUT: empty");
        expect_error_has("OPTSYNC_SYNC_ALL_CONTACTS=",
                         "OPTSYNC_SYNC_ALL_CONTACTS: empty");
}

static void long_bad_values_are_shortened(void **state)
{
        char entry[300];
        (void)state;
        memcpy(entry, "OPTSYNC_REDIS_PORT=", 19);
        memset(entry + 19, '7', 200);
        entry[219]    = '\0';
        const char *e = load_bad((char *[]){entry, NULL});
        assert_null(strstr(e, entry + 19)); /* not the whole value */
        assert_non_null(strstr(e, "...' is not an integer"));
        assert_true(strlen(e) < 120);
}

static void first_of_duplicate_entries_wins(void **state)
{
        char *env[]       = {"OPTSYNC_REDIS_DB=3", "OPTSYNC_REDIS_DB=4", NULL};
        osy_config_t *cfg = load_ok(env);
        (void)state;
        /* getenv() returns the first too: the worker and --check agree. */
        assert_int_equal(osy_config_int(cfg, OSY_CFG_REDIS_DB), 3);
        osy_config_destroy(cfg);
}

static void null_envp_reads_process_environment(void **state)
{
        char *env[]       = {"OPTSYNC_REDIS_DB=7", "PATH=/bin", NULL};
        char **saved      = environ;
        osy_config_t *cfg = NULL;
        (void)state;
        environ       = env; /* hermetic: no setenv into the real environment */
        osy_err_t err = osy_config_load(&cfg, NULL, errbuf, sizeof(errbuf));
        environ       = saved;
        assert_int_equal(err, OSY_OK);
        assert_int_equal(osy_config_int(cfg, OSY_CFG_REDIS_DB), 7);
        osy_config_destroy(cfg);
}

/* ---- unknown keys ---------------------------------------------------------
 */

static void unknown_key_rejected_with_suggestion(void **state)
{
        (void)state;
        /* A swap, a missing letter, a wrong letter. */
        expect_error("OPTSYNC_REDIS_PROT=6379",
                     "OPTSYNC_REDIS_PROT: unknown key (did you mean "
                     "OPTSYNC_REDIS_PORT?)");
        expect_error_has("OPTSYNC_LOG_LEVL=info",
                         "(did you mean OPTSYNC_LOG_LEVEL?)");
        expect_error_has("OPTSYNC_REDIS_DD=1",
                         "(did you mean OPTSYNC_REDIS_DB?)");
        expect_error_has("OPTSYNC_REDIS_PASSWORD_FLE=/x",
                         "(did you mean OPTSYNC_REDIS_PASSWORD_FILE?)");
}

static void unknown_key_far_from_any_has_no_suggestion(void **state)
{
        (void)state;
        const char *e = load_bad((char *[]){"OPTSYNC_TOTALLY_UNKNOWN=1", NULL});
        assert_non_null(strstr(e, "OPTSYNC_TOTALLY_UNKNOWN: unknown key"));
        assert_null(strstr(e, "did you mean"));
        /* Three edits away is too far to guess. */
        e = load_bad((char *[]){"OPTSYNC_REDIS_PXXXT=1", NULL});
        assert_null(strstr(e, "did you mean"));
}

static void unknown_key_value_never_echoed(void **state)
{
        (void)state;
        /* A misspelt secret must not leak through the error. */
        const char *e = load_bad(
            (char *[]){"OPTSYNC_REDIS_PASWORD=correct-horse-battery", NULL});
        assert_null(strstr(e, "correct-horse"));
        assert_non_null(strstr(e, "did you mean OPTSYNC_REDIS_PASSWORD?"));
}

/* ---- secrets --------------------------------------------------------------
 */

static void secret_from_env(void **state)
{
        char *env[]       = {"OPTSYNC_REDIS_PASSWORD=s3cret-value", NULL};
        osy_config_t *cfg = load_ok(env);
        (void)state;
        assert_string_equal(osy_config_str(cfg, OSY_CFG_REDIS_PASSWORD),
                            "s3cret-value");
        assert_int_equal(osy_config_is_set(cfg, OSY_CFG_REDIS_PASSWORD), 1);
        osy_config_destroy(cfg);
}

static void secret_file_read_and_trimmed(void **state)
{
        char *dir = osy_test_mkdtemp("cfg");
        char *p1  = write_file(dir, "a", "pa55word\n\n", 10);
        char *p2  = write_file(dir, "b", "line1\nline2\r\n", 13);
        char e1[512], e2[512];
        char *env[] = {e1, e2, NULL};
        (void)state;
        snprintf(e1, sizeof(e1), "OPTSYNC_REDIS_PASSWORD_FILE=%s", p1);
        snprintf(e2, sizeof(e2), "OPTSYNC_KAFKA_SASL_PASSWORD_FILE=%s", p2);
        osy_config_t *cfg = load_ok(env);
        assert_string_equal(osy_config_str(cfg, OSY_CFG_REDIS_PASSWORD),
                            "pa55word");
        /* Only the trailing newline goes; inner ones are content. */
        assert_string_equal(osy_config_str(cfg, OSY_CFG_KAFKA_SASL_PASSWORD),
                            "line1\nline2");
        assert_int_equal(osy_config_is_set(cfg, OSY_CFG_REDIS_PASSWORD), 1);
        osy_config_destroy(cfg);
        osy_test_rmtree(dir);
        free(p1);
        free(p2);
        free(dir);
}

static void secret_and_file_both_set_is_error(void **state)
{
        char *dir = osy_test_mkdtemp("cfg");
        char *p   = write_file(dir, "pw", "filepass\n", 9);
        char e1[512];
        (void)state;
        snprintf(e1, sizeof(e1), "OPTSYNC_REDIS_PASSWORD_FILE=%s", p);
        const char *e =
            load_bad((char *[]){"OPTSYNC_REDIS_PASSWORD=envpass", e1, NULL});
        assert_string_equal(e, "OPTSYNC_REDIS_PASSWORD and "
                               "OPTSYNC_REDIS_PASSWORD_FILE are both set (set "
                               "only one)");
        assert_null(strstr(e, "envpass"));
        osy_test_rmtree(dir);
        free(p);
        free(dir);
}

static void secret_file_missing_names_key_and_path(void **state)
{
        (void)state;
        expect_error("OPTSYNC_REDIS_PASSWORD_FILE=/nonexistent/osy/pw",
                     "OPTSYNC_REDIS_PASSWORD_FILE: cannot open "
                     "'/nonexistent/osy/pw': No such file or directory");
        expect_error("OPTSYNC_REDIS_PASSWORD_FILE=",
                     "OPTSYNC_REDIS_PASSWORD_FILE: empty path");
}

static void secret_file_errors_never_show_content(void **state)
{
        char *dir = osy_test_mkdtemp("cfg");
        char big[70000], entry[512];
        const char *e;
        (void)state;
        memset(big, 'Z', sizeof(big));
        memcpy(big, "MARKER-SECRET", 13);
        char *huge = write_file(dir, "huge", big, sizeof(big));
        char *nul  = write_file(dir, "nul", "MARKER-SECRET\0x\n", 16);
        char *nl   = write_file(dir, "empty", "\n", 1);

        snprintf(entry, sizeof(entry), "OPTSYNC_REDIS_PASSWORD_FILE=%s", huge);
        e = load_bad((char *[]){entry, NULL});
        assert_non_null(strstr(e, "is larger than"));
        assert_null(strstr(e, "MARKER"));
        snprintf(entry, sizeof(entry), "OPTSYNC_REDIS_PASSWORD_FILE=%s", nul);
        e = load_bad((char *[]){entry, NULL});
        assert_non_null(strstr(e, "contains a NUL byte"));
        assert_null(strstr(e, "MARKER"));
        /* Only a newline: a mis-mounted secret, not an empty password. */
        snprintf(entry, sizeof(entry), "OPTSYNC_REDIS_PASSWORD_FILE=%s", nl);
        e = load_bad((char *[]){entry, NULL});
        assert_non_null(strstr(e, "is empty"));
        /* A directory opens but cannot be read. */
        snprintf(entry, sizeof(entry), "OPTSYNC_REDIS_PASSWORD_FILE=%s", dir);
        e = load_bad((char *[]){entry, NULL});
        assert_non_null(strstr(e, "OPTSYNC_REDIS_PASSWORD_FILE: cannot"));
        assert_non_null(strstr(e, dir));
        osy_test_rmtree(dir);
        free(huge);
        free(nul);
        free(nl);
        free(dir);
}

static void file_suffix_only_for_secrets(void **state)
{
        (void)state;
        expect_error("OPTSYNC_REDIS_HOST_FILE=/etc/hostname",
                     "OPTSYNC_REDIS_HOST_FILE: OPTSYNC_REDIS_HOST is not a "
                     "secret, only secrets can be read from a file");
        /* TENANTS_FILE is a key of its own, not TENANTS read from a file. */
        char *env[]       = {"OPTSYNC_TENANTS_FILE=/etc/optsync/t.json", NULL};
        osy_config_t *cfg = load_ok(env);
        assert_string_equal(osy_config_str(cfg, OSY_CFG_TENANTS_FILE),
                            "/etc/optsync/t.json");
        osy_config_destroy(cfg);
}

static void secret_never_in_dump(void **state)
{
        char *dir = osy_test_mkdtemp("cfg");
        char *p   = write_file(dir, "pw", "kafka-file-secret\n", 18);
        char e1[512];
        (void)state;
        snprintf(e1, sizeof(e1), "OPTSYNC_KAFKA_SASL_PASSWORD_FILE=%s", p);
        char *env[] = {"OPTSYNC_REDIS_PASSWORD=redis-env-secret", e1, NULL};
        osy_config_t *cfg = load_ok(env);
        char *out         = capture(osy_config_dump, cfg);
        assert_null(strstr(out, "redis-env-secret"));
        assert_null(strstr(out, "kafka-file-secret"));
        assert_non_null(strstr(out, "OPTSYNC_REDIS_PASSWORD=***  # env\n"));
        assert_non_null(
            strstr(out, "OPTSYNC_KAFKA_SASL_PASSWORD=***  # file\n"));
        free(out);
        osy_config_destroy(cfg);
        osy_test_rmtree(dir);
        free(p);
        free(dir);
}

static void dump_shows_every_key_value_and_source(void **state)
{
        char *env[]       = {"OPTSYNC_REDIS_PORT=6380", NULL};
        osy_config_t *cfg = load_ok(env);
        char *out         = capture(osy_config_dump, cfg);
        (void)state;
        assert_non_null(strstr(out, "OPTSYNC_REDIS_PORT=6380  # env\n"));
        assert_non_null(
            strstr(out, "OPTSYNC_REDIS_HOST=127.0.0.1  # default\n"));
        /* Unset secrets print empty, so "***" always means "set". */
        assert_non_null(strstr(out, "OPTSYNC_REDIS_PASSWORD=  # default\n"));
        assert_int_equal(count_of(out, "\n"), OSY_CFG__COUNT);
        for (size_t i = 0; i < NROWS; i++) {
                char want[128];
                snprintf(want, sizeof(want), "%s=", rows[i].name);
                assert_non_null(strstr(out, want));
        }
        free(out);
        osy_config_destroy(cfg);
}

static void secrets_registered_with_log(void **state)
{
        char *env[]       = {"OPTSYNC_REDIS_PASSWORD=log-masked-secret", NULL};
        osy_config_t *cfg = load_ok(env);
        char *buf         = NULL;
        size_t len;
        FILE *f = open_memstream(&buf, &len);
        (void)state;
        assert_non_null(f);
        osy_log_init("test", OSY_LOG_INFO, f);
        osy_log_info("connecting with %s",
                     osy_config_str(cfg, OSY_CFG_REDIS_PASSWORD));
        osy_log_init("test", OSY_LOG_INFO, NULL);
        fclose(f);
        assert_null(strstr(buf, "log-masked-secret"));
        assert_non_null(strstr(buf, "connecting with ***"));
        free(buf);
        osy_config_destroy(cfg);
}

/* ---- cross-key rules --------------------------------------------------------
 */

/* Looks @p name up in a name/value list of @p n entries. */
static const char *prop(const char **extra, size_t n, const char *name)
{
        for (size_t i = 0; i + 1 < n; i += 2)
                if (!strcmp(extra[i], name))
                        return extra[i + 1];
        return NULL;
}

static void kafka_security_properties(void **state)
{
        const char *extra[16];
        size_t n;
        (void)state;
        osy_config_t *cfg = load_ok((char *[]){NULL});
        n                 = osy_config_kafka_security(cfg, extra, 0);
        assert_int_equal(n, 2); /* plaintext: the protocol only */
        assert_string_equal(prop(extra, n, "security.protocol"), "plaintext");
        osy_config_destroy(cfg);

        cfg = load_ok((char *[]){"OPTSYNC_KAFKA_SECURITY_PROTOCOL=sasl_ssl",
                                 "OPTSYNC_KAFKA_SASL_MECHANISM=SCRAM-SHA-512",
                                 "OPTSYNC_KAFKA_SASL_USERNAME=svc",
                                 "OPTSYNC_KAFKA_SASL_PASSWORD=pw-123456",
                                 "OPTSYNC_KAFKA_SSL_CA_LOCATION=/etc/ca.pem",
                                 NULL});
        extra[0] = "client.id"; /* appended after what is there */
        extra[1] = "x";
        n        = osy_config_kafka_security(cfg, extra, 2);
        assert_int_equal(n, 12);
        assert_string_equal(extra[0], "client.id");
        assert_string_equal(prop(extra, n, "security.protocol"), "sasl_ssl");
        assert_string_equal(prop(extra, n, "sasl.mechanisms"), "SCRAM-SHA-512");
        assert_string_equal(prop(extra, n, "sasl.username"), "svc");
        assert_string_equal(prop(extra, n, "sasl.password"), "pw-123456");
        assert_string_equal(prop(extra, n, "ssl.ca.location"), "/etc/ca.pem");
        osy_config_destroy(cfg);
        osy_log_clear_secrets();
}

static void sasl_requires_credentials(void **state)
{
        (void)state;
        const char *e = load_bad(
            (char *[]){"OPTSYNC_KAFKA_SECURITY_PROTOCOL=sasl_ssl", NULL});
        assert_string_equal(e, "OPTSYNC_KAFKA_SASL_USERNAME: required when "
                               "OPTSYNC_KAFKA_SECURITY_PROTOCOL is sasl_ssl; "
                               "OPTSYNC_KAFKA_SASL_PASSWORD: required when "
                               "OPTSYNC_KAFKA_SECURITY_PROTOCOL is sasl_ssl");
        char *env[] = {"OPTSYNC_KAFKA_SECURITY_PROTOCOL=SASL_SSL",
                       "OPTSYNC_KAFKA_SASL_USERNAME=svc",
                       "OPTSYNC_KAFKA_SASL_PASSWORD=pw-long-enough", NULL};
        osy_config_destroy(load_ok(env));
}

static void retry_and_timeout_orders_checked(void **state)
{
        (void)state;
        expect_error("OPTSYNC_RETRY_MAX_DELAY=100ms",
                     "OPTSYNC_RETRY_MAX_DELAY: '100ms' is below "
                     "OPTSYNC_RETRY_BASE '200ms'");
        expect_error("OPTSYNC_HTTP_CONNECT_TIMEOUT=40s",
                     "OPTSYNC_HTTP_CONNECT_TIMEOUT: '40s' is above "
                     "OPTSYNC_HTTP_TIMEOUT '30s'");
        /* A key that failed on its own is not compared again. */
        expect_error("OPTSYNC_RETRY_BASE=2h",
                     "OPTSYNC_RETRY_BASE: '2h' is above the maximum 1m");
}

/* ---- all errors at once -----------------------------------------------------
 */

static void multiple_errors_all_reported(void **state)
{
        char *env[] = {"OPTSYNC_REDIS_PORT=70000",
                       "OPTSYNC_LOG_LEVEL=loud",
                       "OPTSYNC_HTTP_TIMEOUT=soon",
                       "OPTSYNC_REDIS_PROT=1",
                       "PATH=/bin",
                       NULL};
        (void)state;
        const char *e = load_bad(env);
        assert_non_null(strstr(e, "OPTSYNC_REDIS_PORT: '70000' is above"));
        assert_non_null(strstr(e, "OPTSYNC_LOG_LEVEL: 'loud' is not one of"));
        assert_non_null(
            strstr(e, "OPTSYNC_HTTP_TIMEOUT: 'soon' is not a duration"));
        assert_non_null(strstr(e, "OPTSYNC_REDIS_PROT: unknown key"));
        assert_int_equal(count_of(e, "; "), 3);
}

static void small_errstr_truncated_with_ellipsis(void **state)
{
        char small[40];
        osy_config_t *cfg = NULL;
        char *env[] = {"OPTSYNC_REDIS_PORT=70000", "OPTSYNC_REDIS_DB=99", NULL};
        (void)state;
        assert_int_equal(osy_config_load(&cfg, env, small, sizeof(small)),
                         OSY_ERR_INVALID);
        assert_int_equal(strlen(small), sizeof(small) - 1);
        assert_string_equal(small + sizeof(small) - 4, "...");
        /* No buffer at all is allowed too. */
        assert_int_equal(osy_config_load(&cfg, env, NULL, 0), OSY_ERR_INVALID);
        assert_null(cfg);
}

static void destroy_is_null_safe(void **state)
{
        (void)state;
        osy_config_destroy(NULL);
}

/* ---- docs/configuration.md ------------------------------------------------
 */

static void markdown_lists_every_key(void **state)
{
        char *md = capture(markdown_adapter, NULL);
        (void)state;
        for (size_t i = 0; i < NROWS; i++) {
                char want[160];
                snprintf(want, sizeof(want), "| `%s` |", rows[i].name);
                if (!strstr(md, want))
                        fail_msg("markdown lacks %s", rows[i].name);
                if (*rows[i].def) {
                        snprintf(want, sizeof(want), "| `%s` | ", rows[i].def);
                        assert_non_null(strstr(md, want));
                }
        }
        assert_non_null(strstr(md, "_FILE"));
        free(md);
}

static void markdown_rows_have_six_columns(void **state)
{
        char *md          = capture(markdown_adapter, NULL);
        size_t table_rows = 0;
        (void)state;
        /* Count unescaped '|' on every table line: a stray one in a doc
         * sentence would shift the columns of its row. */
        for (char *line = md; *line;) {
                char *nl = strchr(line, '\n');
                assert_non_null(nl); /* every line is terminated */
                *nl = '\0';
                if (line[0] == '|') {
                        int bars = 0;
                        for (char *p = line; *p; p++)
                                if (*p == '|' && (p == line || p[-1] != '\\'))
                                        bars++;
                        assert_int_equal(bars, 7);
                        table_rows++;
                }
                line = nl + 1;
        }
        assert_int_equal(table_rows, NROWS + 2); /* header and rule */
        free(md);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(defaults_when_nothing_set),
    cmocka_unit_test(dedup_ttl_outlasts_cdc_replay_window),
    cmocka_unit_test(table_rows_are_complete),
    cmocka_unit_test_teardown(table_bounds_and_values_load, teardown_secrets),
    cmocka_unit_test(non_optsync_vars_ignored),
    cmocka_unit_test(strings_taken_as_is),
    cmocka_unit_test(ints_parse),
    cmocka_unit_test(ints_reject_garbage),
    cmocka_unit_test(ints_out_of_range),
    cmocka_unit_test(durations_with_units),
    cmocka_unit_test(durations_reject_bad),
    cmocka_unit_test(durations_out_of_range),
    cmocka_unit_test(bools_parse),
    cmocka_unit_test(bools_reject_bad),
    cmocka_unit_test(enums_any_case_stored_canonical),
    cmocka_unit_test(enums_reject_unknown_values),
    cmocka_unit_test(empty_typed_values_rejected),
    cmocka_unit_test(long_bad_values_are_shortened),
    cmocka_unit_test(first_of_duplicate_entries_wins),
    cmocka_unit_test(null_envp_reads_process_environment),
    cmocka_unit_test(unknown_key_rejected_with_suggestion),
    cmocka_unit_test(unknown_key_far_from_any_has_no_suggestion),
    cmocka_unit_test(unknown_key_value_never_echoed),
    cmocka_unit_test_teardown(secret_from_env, teardown_secrets),
    cmocka_unit_test_teardown(secret_file_read_and_trimmed, teardown_secrets),
    cmocka_unit_test(secret_and_file_both_set_is_error),
    cmocka_unit_test(secret_file_missing_names_key_and_path),
    cmocka_unit_test(secret_file_errors_never_show_content),
    cmocka_unit_test(file_suffix_only_for_secrets),
    cmocka_unit_test_teardown(secret_never_in_dump, teardown_secrets),
    cmocka_unit_test(dump_shows_every_key_value_and_source),
    cmocka_unit_test_teardown(secrets_registered_with_log, teardown_secrets),
    cmocka_unit_test_teardown(kafka_security_properties, teardown_secrets),
    cmocka_unit_test_teardown(sasl_requires_credentials, teardown_secrets),
    cmocka_unit_test(retry_and_timeout_orders_checked),
    cmocka_unit_test(multiple_errors_all_reported),
    cmocka_unit_test(small_errstr_truncated_with_ellipsis),
    cmocka_unit_test(destroy_is_null_safe),
    cmocka_unit_test(markdown_lists_every_key),
    cmocka_unit_test(markdown_rows_have_six_columns),
};
OSY_TEST_MAIN(tests, NULL, NULL)
