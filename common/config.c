/*
 * config.c - loads OPTSYNC_* environment variables against the key table in
 * config_keys.h: parsing, ranges, secrets from files, and every error at
 * once; also renders the table as docs/configuration.md.
 */
#include "optsync/config.h"
#include "optsync/log.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* POSIX declares it in no header; used when the caller passes no envp. */
extern char **environ;

#define CFG_PREFIX "OPTSYNC_"
#define CFG_FILE_SUFFIX "_FILE"
/* Secret files are tokens and passwords; anything bigger is a wrong path. */
#define CFG_SECRET_FILE_MAX 65536
/* Longest user value echoed back in an error message. */
#define CFG_SHOW_MAX 40
/* Longest name compared for "did you mean"; keys are far shorter. */
#define CFG_NAME_MAX 128

/* The TYPE column of config_keys.h; T_##TYPE turns the table's token into
 * one of these. */
enum key_type {
        T_STRING,
        T_SECRET,
        T_INT,
        T_BOOL,
        T_ENUM,
        T_DURATION
};

/* Type names as the reference documentation shows them, by key_type. */
static const char *const type_names[] = {"string", "secret", "int",
                                         "bool",   "enum",   "duration"};

/* One row of the table. Everything is text, as the user would write it:
 * the same parser checks user values, defaults and bounds, and the docs
 * quote them verbatim. */
struct key_def {
        const char *name;    /* the environment variable, OPTSYNC_... */
        enum key_type type;  /* how the value is parsed */
        const char *def;     /* default; "" for none (always for secrets) */
        const char *lo;      /* minimum, or for ENUM the values "a|b|c" */
        const char *hi;      /* maximum; "" = unbounded */
        const char *used_by; /* workers acting on it (documentation only) */
        const char *doc;     /* one sentence for docs/configuration.md */
};

/* The table, indexed by osy_cfg_id_t: both come from the same rows in
 * the same order, which the assertion below double-checks. */
static const struct key_def keys[] = {
#define OSY_CFG(id, name, type, def, lo, hi, used_by, doc)                     \
        {name, T_##type, def, lo, hi, used_by, doc},
#include "optsync/config_keys.h"
#undef OSY_CFG
};

_Static_assert(sizeof(keys) / sizeof(keys[0]) == OSY_CFG__COUNT,
               "key table and id enum differ");

/* Where a value came from: shown by osy_config_dump(), and anything but
 * SRC_DEFAULT makes osy_config_is_set() true. */
enum source {
        SRC_DEFAULT,
        SRC_ENV,
        SRC_FILE
};

static const char *const source_names[] = {"default", "env", "file"};

struct value {
        char *text;  /* owned; "" when empty, never NULL after load */
        int64_t num; /* INT, DURATION (ms), BOOL (0/1), ENUM (index) */
        enum source src;
};

/* A loaded configuration: one value per key, immutable after load, so it
 * can be read from any thread without a lock. */
struct osy_config_s {
        struct value v[OSY_CFG__COUNT];
};

/* ---- error list ----------------------------------------------------------
 * Messages are collected in a growing buffer so that every problem can be
 * reported, then copied (truncated with "...") into the caller's errstr. */

struct errs {
        char *buf;       /* "; "-separated messages, NUL-terminated */
        size_t len, cap; /* used and allocated bytes of buf */
        int count;       /* messages added (even if memory ran out) */
        int nomem;       /* an allocation failed: report NOMEM instead */
};

__attribute__((format(printf, 2, 3))) static void errs_add(struct errs *e,
                                                           const char *fmt, ...)
{
        va_list ap;
        int n;
        const char *sep = e->count ? "; " : "";

        e->count++;
        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0 || e->nomem)
                return;
        size_t need = e->len + strlen(sep) + (size_t)n + 1;
        if (need > e->cap) {
                size_t cap = e->cap ? e->cap : 256;
                while (cap < need)
                        cap *= 2;
                char *nb = realloc(e->buf, cap);
                if (!nb) {
                        e->nomem = 1;
                        return;
                }
                e->buf = nb;
                e->cap = cap;
        }
        e->len += (size_t)snprintf(e->buf + e->len, e->cap - e->len, "%s", sep);
        va_start(ap, fmt);
        vsnprintf(e->buf + e->len, e->cap - e->len, fmt, ap);
        va_end(ap);
        e->len += (size_t)n;
}

/* Copies the collected messages into errstr, marking a cut with "...". */
static void errs_export(const struct errs *e, char *errstr, size_t size)
{
        if (!errstr || !size)
                return;
        const char *msg = e->buf ? e->buf : "invalid configuration";
        size_t n        = strlen(msg);
        if (n < size) {
                memcpy(errstr, msg, n + 1);
                return;
        }
        memcpy(errstr, msg, size - 1);
        errstr[size - 1] = '\0';
        if (size > 4)
                memcpy(errstr + size - 4, "...", 4);
}

/* A user value made safe to echo: bounded, control characters replaced.
 * Never called with a secret. */
static const char *show(const char *s, char *buf, size_t size)
{
        size_t i = 0;
        for (; s[i] && i + 1 < size && i < CFG_SHOW_MAX; i++)
                buf[i] = iscntrl((unsigned char)s[i]) ? '?' : s[i];
        buf[i] = '\0';
        if (s[i] && i >= 3)
                memcpy(buf + i - 3, "...", 3);
        return buf;
}

/* ---- parsers -------------------------------------------------------------
 * Each returns 0 and the number, or -1; the caller words the message. */

static int parse_int(const char *s, int64_t *out)
{
        char *end;
        long long v;

        /* strtoll would also take leading blanks and '+': be strict. */
        if (!(isdigit((unsigned char)s[0]) ||
              (s[0] == '-' && isdigit((unsigned char)s[1]))))
                return -1;
        errno = 0;
        v     = strtoll(s, &end, 10);
        if (errno || *end)
                return -1;
        *out = v;
        return 0;
}

/* "250ms", "5s", "2m", "1h" or bare milliseconds. Whole numbers only:
 * "1.5s" is refused rather than silently read as 1 s. Days are left out
 * on purpose: 72h reads unambiguously next to SF's documented window. */
static int parse_duration(const char *s, int64_t *out)
{
        static const struct {
                const char *unit;
                int64_t ms;
        } units[] = {
            {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
        char *end;
        long long v;

        if (!isdigit((unsigned char)s[0]))
                return -1; /* no sign, no blank, no bare unit */
        errno = 0;
        v     = strtoll(s, &end, 10);
        if (errno)
                return -1;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
                if (strcmp(end, units[i].unit))
                        continue;
                if (v > INT64_MAX / units[i].ms)
                        return -1;
                *out = v * units[i].ms;
                return 0;
        }
        return -1;
}

/* The usual spellings, any case. "on"/"off" are not taken: a short list
 * is easier to document and to grep for. */
static int parse_bool(const char *s, int64_t *out)
{
        static const char *const yes[] = {"true", "1", "yes"};
        static const char *const no[]  = {"false", "0", "no"};
        for (size_t i = 0; i < 3; i++) {
                if (!strcasecmp(s, yes[i])) {
                        *out = 1;
                        return 0;
                }
                if (!strcasecmp(s, no[i])) {
                        *out = 0;
                        return 0;
                }
        }
        return -1;
}

/* Finds @p s among the '|'-separated @p values, case-insensitively.
 * Returns the index and where the table's spelling starts, or -1. */
static int parse_enum(const char *values, const char *s, const char **canon,
                      size_t *canon_len)
{
        const char *p = values;
        for (int idx = 0; *p; idx++) {
                size_t n = strcspn(p, "|");
                if (n == strlen(s) && !strncasecmp(p, s, n)) {
                        *canon     = p;
                        *canon_len = n;
                        return idx;
                }
                p += n;
                if (*p == '|')
                        p++;
        }
        return -1;
}

/* Parses a bound from the table ("" = none) with the key's own syntax. */
static int parse_bound(const struct key_def *k, const char *b, int64_t *out)
{
        if (!*b)
                return -1;
        return k->type == T_INT ? parse_int(b, out) : parse_duration(b, out);
}

/* Parses @p s (from the environment or the table default) for key @p k into
 * @p v. On error adds a message naming the key and returns -1. */
static int parse_value(const struct key_def *k, const char *s, struct value *v,
                       struct errs *e)
{
        char shown[CFG_SHOW_MAX + 1];
        const char *canon = s;
        size_t canon_len  = strlen(s);
        int64_t num       = 0, bound;

        if (!*s && k->type != T_STRING && k->type != T_SECRET) {
                errs_add(e,
                         "%s: empty value (unset the variable to use the "
                         "default '%s')",
                         k->name, k->def);
                return -1;
        }
        switch (k->type) {
        case T_STRING:
        case T_SECRET:
                break;
        case T_INT:
                if (parse_int(s, &num)) {
                        errs_add(e, "%s: '%s' is not an integer", k->name,
                                 show(s, shown, sizeof(shown)));
                        return -1;
                }
                break;
        case T_DURATION:
                if (parse_duration(s, &num)) {
                        errs_add(e,
                                 "%s: '%s' is not a duration (use a whole "
                                 "number and a unit: 250ms, 5s, 2m, 1h, or "
                                 "bare milliseconds)",
                                 k->name, show(s, shown, sizeof(shown)));
                        return -1;
                }
                break;
        case T_BOOL:
                if (parse_bool(s, &num)) {
                        errs_add(e,
                                 "%s: '%s' is not a boolean (use true/false, "
                                 "yes/no or 1/0)",
                                 k->name, show(s, shown, sizeof(shown)));
                        return -1;
                }
                break;
        case T_ENUM: {
                int idx = parse_enum(k->lo, s, &canon, &canon_len);
                if (idx < 0) {
                        errs_add(e, "%s: '%s' is not one of %s", k->name,
                                 show(s, shown, sizeof(shown)), k->lo);
                        return -1;
                }
                num = idx;
                break;
        }
        }
        if (k->type == T_INT || k->type == T_DURATION) {
                /* Bounds are quoted as the table writes them ("72h"). */
                if (!parse_bound(k, k->lo, &bound) && num < bound) {
                        errs_add(e, "%s: '%s' is below the minimum %s", k->name,
                                 show(s, shown, sizeof(shown)), k->lo);
                        return -1;
                }
                if (!parse_bound(k, k->hi, &bound) && num > bound) {
                        errs_add(e, "%s: '%s' is above the maximum %s", k->name,
                                 show(s, shown, sizeof(shown)), k->hi);
                        return -1;
                }
        }
        free(v->text);
        v->text = strndup(canon, canon_len);
        if (!v->text) {
                e->nomem = 1;
                return -1;
        }
        v->num = num;
        return 0;
}

/* Reads a secret file: whole content, trailing newlines stripped. The
 * messages name the key and the path, never any of the content. */
static int read_secret_file(const struct key_def *k, const char *path,
                            char **out, struct errs *e)
{
        FILE *f    = NULL;
        char *buf  = NULL;
        size_t len = 0;
        int rc     = -1;

        if (!*path) {
                errs_add(e, "%s%s: empty path", k->name, CFG_FILE_SUFFIX);
                goto out;
        }
        f = fopen(path, "rb");
        if (!f) {
                errs_add(e, "%s%s: cannot open '%s': %s", k->name,
                         CFG_FILE_SUFFIX, path, strerror(errno));
                goto out;
        }
        buf = malloc(CFG_SECRET_FILE_MAX + 1);
        if (!buf) {
                e->nomem = 1;
                goto out;
        }
        len = fread(buf, 1, CFG_SECRET_FILE_MAX + 1, f);
        if (ferror(f)) {
                /* A directory opens fine and fails here with EISDIR. */
                errs_add(e, "%s%s: cannot read '%s': %s", k->name,
                         CFG_FILE_SUFFIX, path, strerror(errno));
                goto out;
        }
        if (len > CFG_SECRET_FILE_MAX) {
                errs_add(e, "%s%s: '%s' is larger than %d bytes", k->name,
                         CFG_FILE_SUFFIX, path, CFG_SECRET_FILE_MAX);
                goto out;
        }
        if (memchr(buf, '\0', len)) {
                errs_add(e, "%s%s: '%s' contains a NUL byte", k->name,
                         CFG_FILE_SUFFIX, path);
                goto out;
        }
        /* Secrets are often written with echo or an editor: drop the
         * newline they add (and a CR from Windows editors). */
        while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
                len--;
        if (!len) {
                errs_add(e, "%s%s: '%s' is empty", k->name, CFG_FILE_SUFFIX,
                         path);
                goto out;
        }
        buf[len] = '\0';
        *out     = buf;
        buf      = NULL;
        rc       = 0;
out:
        if (f)
                fclose(f);
        free(buf);
        return rc;
}

/* ---- unknown keys --------------------------------------------------------
 * Optimal string alignment distance: Levenshtein plus adjacent swaps, so a
 * transposed PROT for PORT counts as one edit. */

static size_t edit_distance(const char *a, size_t na, const char *b, size_t nb)
{
        size_t rows[3][CFG_NAME_MAX + 1];
        size_t *pp = rows[0], *prev = rows[1], *cur = rows[2];

        for (size_t j = 0; j <= nb; j++)
                prev[j] = j;
        for (size_t i = 1; i <= na; i++) {
                cur[0] = i;
                for (size_t j = 1; j <= nb; j++) {
                        size_t cost = a[i - 1] != b[j - 1];
                        size_t best = prev[j - 1] + cost;
                        if (prev[j] + 1 < best)
                                best = prev[j] + 1;
                        if (cur[j - 1] + 1 < best)
                                best = cur[j - 1] + 1;
                        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
                            a[i - 2] == b[j - 1] && pp[j - 2] + 1 < best)
                                best = pp[j - 2] + 1;
                        cur[j] = best;
                }
                size_t *t = pp;
                pp        = prev;
                prev      = cur;
                cur       = t;
        }
        return prev[nb];
}

/* Reports an unknown OPTSYNC_ name, suggesting the closest valid variable
 * (a key, or NAME_FILE of a secret) within two edits. Its value is never
 * shown: it may be a misspelt secret. */
static void report_unknown(const char *name, size_t n, struct errs *e)
{
        char cand[CFG_NAME_MAX + 1];
        const char *best_name = NULL;
        int best_file         = 0;
        size_t best           = 3;

        for (size_t i = 0; n <= CFG_NAME_MAX && i < OSY_CFG__COUNT; i++) {
                for (int file = 0; file <= (keys[i].type == T_SECRET); file++) {
                        int cn =
                            snprintf(cand, sizeof(cand), "%s%s", keys[i].name,
                                     file ? CFG_FILE_SUFFIX : "");
                        if (cn < 0 || (size_t)cn > CFG_NAME_MAX)
                                continue;
                        size_t d = edit_distance(name, n, cand, (size_t)cn);
                        if (d < best) {
                                best      = d;
                                best_name = keys[i].name;
                                best_file = file;
                        }
                }
        }
        if (best_name)
                errs_add(e, "%.*s: unknown key (did you mean %s%s?)",
                         (int)(n > CFG_NAME_MAX ? CFG_NAME_MAX : n), name,
                         best_name, best_file ? CFG_FILE_SUFFIX : "");
        else
                errs_add(e,
                         "%.*s: unknown key (see docs/configuration.md or "
                         "optsync-config --markdown)",
                         (int)(n > CFG_NAME_MAX ? CFG_NAME_MAX : n), name);
}

/* @returns the index of the key named by the first @p n bytes of @p name,
 * or -1. A linear scan: it runs once per variable at startup. */
static int find_key(const char *name, size_t n)
{
        for (int i = 0; i < OSY_CFG__COUNT; i++)
                if (strlen(keys[i].name) == n && !memcmp(keys[i].name, name, n))
                        return i;
        return -1;
}

/* Sorts one "NAME=value" entry into env_val/file_path by key, or reports
 * it. The first occurrence of a name wins, as with getenv(). */
static void classify(const char *entry, const char **env_val,
                     const char **file_path, struct errs *e)
{
        const char *eq  = strchr(entry, '=');
        const size_t sl = strlen(CFG_FILE_SUFFIX);
        size_t n;
        int k;

        if (strncmp(entry, CFG_PREFIX, strlen(CFG_PREFIX)) || !eq)
                return; /* not ours */
        n = (size_t)(eq - entry);
        if ((k = find_key(entry, n)) >= 0) {
                if (!env_val[k])
                        env_val[k] = eq + 1;
                return;
        }
        if (n > sl && !memcmp(entry + n - sl, CFG_FILE_SUFFIX, sl) &&
            (k = find_key(entry, n - sl)) >= 0) {
                if (keys[k].type != T_SECRET)
                        errs_add(e,
                                 "%.*s: %s is not a secret, only secrets can "
                                 "be read from a file",
                                 (int)n, entry, keys[k].name);
                else if (!file_path[k])
                        file_path[k] = eq + 1;
                return;
        }
        report_unknown(entry, n, e);
}

/* Rules that involve more than one key. Only run on keys that parsed. */
static void cross_check(const osy_config_t *cfg, const int *ok, struct errs *e)
{
        const struct value *v = cfg->v;

        if (ok[OSY_CFG_KAFKA_SECURITY_PROTOCOL] &&
            !strncmp(v[OSY_CFG_KAFKA_SECURITY_PROTOCOL].text, "sasl_", 5)) {
                static const osy_cfg_id_t need[] = {
                    OSY_CFG_KAFKA_SASL_USERNAME, OSY_CFG_KAFKA_SASL_PASSWORD};
                for (size_t i = 0; i < 2; i++)
                        if (ok[need[i]] && !*v[need[i]].text)
                                errs_add(
                                    e, "%s: required when %s is %s",
                                    keys[need[i]].name,
                                    keys[OSY_CFG_KAFKA_SECURITY_PROTOCOL].name,
                                    v[OSY_CFG_KAFKA_SECURITY_PROTOCOL].text);
        }
        if (ok[OSY_CFG_RETRY_BASE] && ok[OSY_CFG_RETRY_MAX_DELAY] &&
            v[OSY_CFG_RETRY_MAX_DELAY].num < v[OSY_CFG_RETRY_BASE].num)
                errs_add(e, "%s: '%s' is below %s '%s'",
                         keys[OSY_CFG_RETRY_MAX_DELAY].name,
                         v[OSY_CFG_RETRY_MAX_DELAY].text,
                         keys[OSY_CFG_RETRY_BASE].name,
                         v[OSY_CFG_RETRY_BASE].text);
        if (ok[OSY_CFG_HTTP_CONNECT_TIMEOUT] && ok[OSY_CFG_HTTP_TIMEOUT] &&
            v[OSY_CFG_HTTP_CONNECT_TIMEOUT].num > v[OSY_CFG_HTTP_TIMEOUT].num)
                errs_add(e, "%s: '%s' is above %s '%s'",
                         keys[OSY_CFG_HTTP_CONNECT_TIMEOUT].name,
                         v[OSY_CFG_HTTP_CONNECT_TIMEOUT].text,
                         keys[OSY_CFG_HTTP_TIMEOUT].name,
                         v[OSY_CFG_HTTP_TIMEOUT].text);
}

osy_err_t osy_config_load(osy_config_t **cfgp, char *const *envp, char *errstr,
                          size_t errstr_size)
{
        const char *env_val[OSY_CFG__COUNT]   = {0};
        const char *file_path[OSY_CFG__COUNT] = {0};
        int ok[OSY_CFG__COUNT]                = {0};
        struct errs e                         = {0};
        osy_config_t *cfg                     = calloc(1, sizeof(*cfg));
        osy_err_t err                         = OSY_ERR_NOMEM;

        *cfgp = NULL;
        if (errstr && errstr_size)
                errstr[0] = '\0';
        if (!cfg)
                goto out;
        if (!envp)
                envp = environ;
        /* Pass 1: sort the environment by key, reporting strangers. */
        for (size_t i = 0; envp && envp[i]; i++)
                classify(envp[i], env_val, file_path, &e);

        /* Pass 2: every key gets a value (file, env or default); a failure
         * is recorded and the loop goes on, so all problems are reported. */

        for (int i = 0; i < OSY_CFG__COUNT; i++) {
                const struct key_def *k = &keys[i];
                struct value *v         = &cfg->v[i];

                if (k->type == T_SECRET && env_val[i] && file_path[i]) {
                        errs_add(&e, "%s and %s%s are both set (set only one)",
                                 k->name, k->name, CFG_FILE_SUFFIX);
                        continue;
                }
                if (file_path[i]) {
                        if (read_secret_file(k, file_path[i], &v->text, &e))
                                continue;
                        v->src = SRC_FILE;
                } else if (env_val[i]) {
                        if (parse_value(k, env_val[i], v, &e))
                                continue;
                        v->src = SRC_ENV;
                } else if (parse_value(k, k->def, v, &e)) {
                        continue; /* a bad table row: test_config catches */
                }
                ok[i] = 1;
        }
        /* Pass 3: rules between keys, on the keys that parsed. */
        cross_check(cfg, ok, &e);

        if (e.nomem)
                goto out;
        if (e.count) {
                err = OSY_ERR_INVALID;
                goto out;
        }
        /* From here on no log line can print a secret, even by mistake
         * (e.g. a connection error that echoes a URL with a password). */
        for (int i = 0; i < OSY_CFG__COUNT; i++)
                if (keys[i].type == T_SECRET)
                        osy_log_add_secret(cfg->v[i].text);
        *cfgp = cfg;
        cfg   = NULL; /* the caller owns it now */
        err   = OSY_OK;
out:
        if (err == OSY_ERR_NOMEM)
                osy_err_set(err, errstr, errstr_size,
                            "out of memory loading the configuration");
        else if (err != OSY_OK)
                errs_export(&e, errstr, errstr_size);
        free(e.buf);
        osy_config_destroy(cfg);
        return err;
}

void osy_config_destroy(osy_config_t *cfg)
{
        if (!cfg)
                return;
        for (int i = 0; i < OSY_CFG__COUNT; i++) {
                /* Secrets may sit in a core dump otherwise. */
                if (keys[i].type == T_SECRET && cfg->v[i].text)
                        memset(cfg->v[i].text, 0, strlen(cfg->v[i].text));
                free(cfg->v[i].text);
        }
        free(cfg);
}

/* ---- getters: a wrong id or type is a programming error ------------------ */

/* Checks the id and, when @p type >= 0, that the key has that type:
 * osy_config_int() on a duration is a bug to catch in tests, not data. */
static const struct value *get(const osy_config_t *cfg, osy_cfg_id_t id,
                               int type)
{
        assert(cfg && (int)id >= 0 && id < OSY_CFG__COUNT);
        assert(type < 0 || keys[id].type == (enum key_type)type);
        (void)type;
        return &cfg->v[id];
}

const char *osy_config_str(const osy_config_t *cfg, osy_cfg_id_t id)
{
        return get(cfg, id, -1)->text;
}

int64_t osy_config_int(const osy_config_t *cfg, osy_cfg_id_t id)
{
        return get(cfg, id, T_INT)->num;
}

int osy_config_bool(const osy_config_t *cfg, osy_cfg_id_t id)
{
        return get(cfg, id, T_BOOL)->num != 0;
}

int64_t osy_config_ms(const osy_config_t *cfg, osy_cfg_id_t id)
{
        return get(cfg, id, T_DURATION)->num;
}

int osy_config_enum(const osy_config_t *cfg, osy_cfg_id_t id)
{
        return (int)get(cfg, id, T_ENUM)->num;
}

int osy_config_is_set(const osy_config_t *cfg, osy_cfg_id_t id)
{
        return get(cfg, id, -1)->src != SRC_DEFAULT;
}

const char *osy_config_name(osy_cfg_id_t id)
{
        assert((int)id >= 0 && id < OSY_CFG__COUNT);
        return keys[id].name;
}

/* "NAME=value  # source": close to an env file, easy to diff between
 * two pods, and the source shows which values the Deployment sets. */
void osy_config_dump(const osy_config_t *cfg, FILE *out)
{
        for (int i = 0; i < OSY_CFG__COUNT; i++) {
                const struct value *v = &cfg->v[i];
                const char *text      = v->text;
                /* An unset secret prints empty, so "***" always means set. */
                if (keys[i].type == T_SECRET && *text)
                        text = "***";
                fprintf(out, "%s=%s  # %s\n", keys[i].name, text,
                        source_names[v->src]);
        }
}

/* ---- docs/configuration.md ---------------------------------------------- */

/* Writes table cell text; '|' would end the cell. */
static void md_cell(FILE *out, const char *s)
{
        for (; *s; s++) {
                if (*s == '|')
                        fputc('\\', out);
                fputc(*s, out);
        }
}

/* The "Range / values" cell: enum values as code, else "lo .. hi". */
static void md_range(FILE *out, const struct key_def *k)
{
        if (k->type == T_ENUM) {
                const char *p = k->lo;
                while (*p) {
                        size_t n = strcspn(p, "|");
                        fprintf(out, "%s`%.*s`", p == k->lo ? "" : ", ", (int)n,
                                p);
                        p += n;
                        if (*p == '|')
                                p++;
                }
        } else if (k->type == T_BOOL) {
                fputs("true/false, yes/no, 1/0", out);
        } else if (*k->lo && *k->hi) {
                fprintf(out, "%s .. %s", k->lo, k->hi);
        } else if (*k->lo) {
                fprintf(out, ">= %s", k->lo);
        } else if (*k->hi) {
                fprintf(out, "<= %s", k->hi);
        }
}

/* The text above the table, one string per output line so that the C
 * source reads like the Markdown it produces. */
static const char *const md_intro[] = {
    "# Configuration",
    "",
    "<!-- Generated by `optsync-config --markdown` from",
    "     include/optsync/config_keys.h. Do not edit: change the table,",
    "     then run `optsync-config --markdown > docs/configuration.md`. -->",
    "",
    "Every optsync worker is configured by environment variables only",
    "(12-factor). All of them start with `OPTSYNC_`. At startup a worker",
    "reads the whole table below, and if anything is wrong it exits listing",
    "every problem at once, each naming its variable. An unknown `OPTSYNC_*`",
    "variable is an error too (with a \"did you mean\" hint), so a typo never",
    "silently falls back to a default. Variables without the prefix are",
    "ignored. Unset variables take the default; an empty value is an error",
    "for every type except string and secret.",
    "",
    "Value syntax by type:",
    "",
    "- **string**: any text, used as is.",
    "- **int**: a decimal integer within the range shown.",
    "- **bool**: `true`/`false`, `yes`/`no` or `1`/`0`, in any case.",
    "- **enum**: one of the listed values, in any case.",
    "- **duration**: a whole number with a unit, `ms`, `s`, `m` or `h`",
    "  (`250ms`, `5s`, `2m`, `80h`); a bare number means milliseconds.",
    "- **secret**: a string that is never logged or printed. Instead of",
    "  `NAME`, set `NAME_FILE` to the path of a file holding the value (such",
    "  as a mounted Kubernetes Secret); trailing newlines are stripped.",
    "  Setting both is an error, and so is a missing, unreadable or empty",
    "  file.",
    "",
    "\"Used by\" names the workers that act on a key (`ac-ingest`,",
    "`sf-ingest`, `rules`, `sf-writer`, `ac-writer`); every worker still",
    "validates every key. `optsync-config --check` validates the current",
    "environment and prints the effective configuration with secrets masked.",
    "",
    "| Variable | Type | Default | Range / values | Used by | Description |",
    "|----------|------|---------|----------------|---------|-------------|",
};

/* Strings have no range, so that cell stays empty; an empty default is
 * written "(empty)" so it is not mistaken for a missing cell. */
void osy_config_markdown(FILE *out)
{
        for (size_t i = 0; i < sizeof(md_intro) / sizeof(md_intro[0]); i++)
                fprintf(out, "%s\n", md_intro[i]);
        for (int i = 0; i < OSY_CFG__COUNT; i++) {
                const struct key_def *k = &keys[i];
                fprintf(out, "| `%s` | %s | ", k->name, type_names[k->type]);
                if (*k->def) {
                        fputc('`', out);
                        md_cell(out, k->def);
                        fputc('`', out);
                } else {
                        fputs("(empty)", out);
                }
                fputs(" | ", out);
                md_range(out, k);
                fputs(" | ", out);
                md_cell(out, k->used_by);
                fputs(" | ", out);
                md_cell(out, k->doc);
                fputs(" |\n", out);
        }
}

size_t osy_config_kafka_security(const osy_config_t *cfg, const char **extra,
                                 size_t n)
{
        const char *proto =
            osy_config_str(cfg, OSY_CFG_KAFKA_SECURITY_PROTOCOL);
        const char *ca = osy_config_str(cfg, OSY_CFG_KAFKA_SSL_CA_LOCATION);

        extra[n++] = "security.protocol";
        extra[n++] = proto;
        if (!strncmp(proto, "sasl_", 5)) {
                extra[n++] = "sasl.mechanisms";
                extra[n++] = osy_config_str(cfg, OSY_CFG_KAFKA_SASL_MECHANISM);
                extra[n++] = "sasl.username";
                extra[n++] = osy_config_str(cfg, OSY_CFG_KAFKA_SASL_USERNAME);
                extra[n++] = "sasl.password";
                extra[n++] = osy_config_str(cfg, OSY_CFG_KAFKA_SASL_PASSWORD);
        }
        if (*ca) {
                extra[n++] = "ssl.ca.location";
                extra[n++] = ca;
        }
        return n;
}
