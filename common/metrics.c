/*
 * metrics.c - Prometheus registry: one mutex guards the family and series
 * lists (rarely changed); values are atomics updated without locks.
 */
#include "optsync/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
        T_COUNTER,
        T_GAUGE,
        T_HISTOGRAM
} mtype_t;

static const char *const type_names[] = {"counter", "gauge", "histogram"};

struct osy_series_s {
        struct osy_series_s *next; /* sorted by label values */
        osy_metric_t *m;
        char **values;        /* m->n_labels strings */
        _Atomic uint64_t val; /* counter/gauge value; histogram sum */
        /* Histogram only: per-bucket (not cumulative) counts, the last one
         * for +Inf. Cumulating happens at render time, so observe() does
         * a single atomic increment. */
        _Atomic uint64_t counts[];
};

struct osy_metric_s {
        struct osy_metric_s *next; /* sorted by name */
        mtype_t type;
        char *name;
        char *help;
        size_t n_labels;
        char *labels[OSY_METRICS_MAX_LABELS];
        double *buckets; /* histogram upper bounds, without +Inf */
        size_t n_buckets;
        osy_series_t *series;
        osy_metrics_t *reg;
};

struct osy_metrics_s {
        pthread_mutex_t lock; /* families, series lists; not the values */
        osy_metric_t *families;
};

/* Doubles travel through 64-bit atomics as their bit patterns: C11 has
 * no portable lock-free atomic double add, a CAS loop does it. */
static uint64_t d2u(double d)
{
        uint64_t u;

        memcpy(&u, &d, sizeof(u));
        return u;
}

static double u2d(uint64_t u)
{
        double d;

        memcpy(&d, &u, sizeof(d));
        return d;
}

static void atomic_add_double(_Atomic uint64_t *a, double v)
{
        uint64_t old = atomic_load_explicit(a, memory_order_relaxed);

        while (!atomic_compare_exchange_weak_explicit(
            a, &old, d2u(u2d(old) + v), memory_order_relaxed,
            memory_order_relaxed))
                ; /* old was reloaded: retry with the fresh value */
}

osy_metrics_t *osy_metrics_new(void)
{
        osy_metrics_t *reg = calloc(1, sizeof(*reg));

        if (!reg)
                return NULL;
        if (pthread_mutex_init(&reg->lock, NULL) != 0) {
                free(reg);
                return NULL;
        }
        return reg;
}

static void series_free(osy_series_t *s, size_t n_labels)
{
        if (!s)
                return;
        for (size_t i = 0; s->values && i < n_labels; i++)
                free(s->values[i]);
        free(s->values);
        free(s);
}

static void metric_free(osy_metric_t *m)
{
        if (!m)
                return;
        while (m->series) {
                osy_series_t *s = m->series;

                m->series = s->next;
                series_free(s, m->n_labels);
        }
        for (size_t i = 0; i < m->n_labels; i++)
                free(m->labels[i]);
        free(m->name);
        free(m->help);
        free(m->buckets);
        free(m);
}

void osy_metrics_destroy(osy_metrics_t *reg)
{
        if (!reg)
                return;
        while (reg->families) {
                osy_metric_t *m = reg->families;

                reg->families = m->next;
                metric_free(m);
        }
        pthread_mutex_destroy(&reg->lock);
        free(reg);
}

static int is_alpha_(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_digit(char c)
{
        return c >= '0' && c <= '9';
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* */
static int valid_metric_name(const char *s)
{
        if (!s || !(is_alpha_(*s) || *s == ':'))
                return 0;
        for (s++; *s; s++)
                if (!is_alpha_(*s) && !is_digit(*s) && *s != ':')
                        return 0;
        return 1;
}

/* [a-zA-Z_][a-zA-Z0-9_]*, and "__" prefixes are Prometheus' own. */
static int valid_label_name(const char *s)
{
        if (!s || !is_alpha_(*s) || !strncmp(s, "__", 2))
                return 0;
        for (s++; *s; s++)
                if (!is_alpha_(*s) && !is_digit(*s))
                        return 0;
        return 1;
}

static size_t series_size(const osy_metric_t *m)
{
        return sizeof(osy_series_t) +
               (m->type == T_HISTOGRAM ? (m->n_buckets + 1) : 0) *
                   sizeof(_Atomic uint64_t);
}

/* Same definition as an existing family? Then registering is a no-op. */
static int same_definition(const osy_metric_t *m, mtype_t type,
                           const char *const *labels, size_t n_labels,
                           const double *buckets, size_t n_buckets)
{
        if (m->type != type || m->n_labels != n_labels)
                return 0;
        for (size_t i = 0; i < n_labels; i++)
                if (strcmp(m->labels[i], labels[i]))
                        return 0;
        if (type == T_HISTOGRAM &&
            (m->n_buckets != n_buckets ||
             memcmp(m->buckets, buckets, n_buckets * sizeof(*buckets))))
                return 0;
        return 1;
}

static osy_err_t validate(mtype_t type, const char *name,
                          const char *const *labels, size_t *n_labelsp,
                          const double *buckets, size_t n_buckets, char *errstr,
                          size_t errstr_size)
{
        size_t n = 0;

        if (!valid_metric_name(name))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "metrics: invalid metric name \"%s\"",
                                   name ? name : "(null)");
        for (; labels && labels[n]; n++) {
                if (n == OSY_METRICS_MAX_LABELS)
                        return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                           "metrics: %s: more than %d labels",
                                           name, OSY_METRICS_MAX_LABELS);
                if (!valid_label_name(labels[n]) ||
                    (type == T_HISTOGRAM && !strcmp(labels[n], "le")))
                        return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                           "metrics: %s: invalid label "
                                           "name \"%s\"",
                                           name, labels[n]);
                for (size_t j = 0; j < n; j++)
                        if (!strcmp(labels[j], labels[n]))
                                return osy_err_set(
                                    OSY_ERR_INVALID, errstr, errstr_size,
                                    "metrics: %s: label \"%s\" twice", name,
                                    labels[n]);
        }
        if (type == T_HISTOGRAM) {
                if (!buckets || n_buckets == 0)
                        return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                           "metrics: %s: no buckets", name);
                for (size_t i = 0; i < n_buckets; i++)
                        if (!isfinite(buckets[i]) ||
                            (i > 0 && !(buckets[i] > buckets[i - 1])))
                                return osy_err_set(
                                    OSY_ERR_INVALID, errstr, errstr_size,
                                    "metrics: %s: buckets must be finite and "
                                    "strictly increasing",
                                    name);
        }
        *n_labelsp = n;
        return OSY_OK;
}

static osy_series_t *series_new(osy_metric_t *m, const char *const *values)
{
        osy_series_t *s = calloc(1, series_size(m));

        if (!s)
                return NULL;
        s->m = m;
        if (m->n_labels) {
                s->values = calloc(m->n_labels, sizeof(*s->values));
                if (!s->values)
                        goto fail;
                for (size_t i = 0; i < m->n_labels; i++)
                        if (!(s->values[i] = strdup(values[i])))
                                goto fail;
        }
        /* calloc's zero bits are 0.0 and 0 counts, so the atomics start
         * right; initialise them formally anyway. */
        atomic_init(&s->val, d2u(0.0));
        if (m->type == T_HISTOGRAM)
                for (size_t i = 0; i <= m->n_buckets; i++)
                        atomic_init(&s->counts[i], 0);
        return s;
fail:
        series_free(s, m->n_labels);
        return NULL;
}

static int cmp_values(char *const *a, const char *const *b, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                int c = strcmp(a[i], b[i]);

                if (c)
                        return c;
        }
        return 0;
}

static osy_err_t family_new(osy_metrics_t *reg, osy_metric_t **mp, mtype_t type,
                            const char *name, const char *help,
                            const char *const *labels, const double *buckets,
                            size_t n_buckets, char *errstr, size_t errstr_size)
{
        osy_metric_t *m = NULL, **pos;
        size_t n_labels = 0;
        osy_err_t err;

        if (!reg || !mp)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "metrics: no registry");
        *mp = NULL;
        err = validate(type, name, labels, &n_labels, buckets, n_buckets,
                       errstr, errstr_size);
        if (err != OSY_OK)
                return err;

        pthread_mutex_lock(&reg->lock);
        /* Families stay sorted by name: render order is stable. */
        for (pos = &reg->families; *pos; pos = &(*pos)->next) {
                int c = strcmp((*pos)->name, name);

                if (c == 0) {
                        if (same_definition(*pos, type, labels, n_labels,
                                            buckets, n_buckets)) {
                                *mp = *pos;
                                err = OSY_OK;
                        } else {
                                err = osy_err_set(
                                    OSY_ERR_INVALID, errstr, errstr_size,
                                    "metrics: %s already registered as a "
                                    "different %s",
                                    name, type_names[(*pos)->type]);
                        }
                        goto out;
                }
                if (c > 0)
                        break;
        }
        err = OSY_ERR_NOMEM;
        m   = calloc(1, sizeof(*m));
        if (!m)
                goto nomem;
        m->type     = type;
        m->reg      = reg;
        m->n_labels = n_labels;
        m->name     = strdup(name);
        m->help     = strdup(help ? help : "");
        if (!m->name || !m->help)
                goto nomem;
        for (size_t i = 0; i < n_labels; i++)
                if (!(m->labels[i] = strdup(labels[i])))
                        goto nomem;
        if (type == T_HISTOGRAM) {
                m->buckets = malloc(n_buckets * sizeof(*buckets));
                if (!m->buckets)
                        goto nomem;
                memcpy(m->buckets, buckets, n_buckets * sizeof(*buckets));
                m->n_buckets = n_buckets;
        }
        /* A family without labels has exactly one series: create it now so
         * it is exported (as 0) before its first update. */
        if (n_labels == 0 && !(m->series = series_new(m, NULL)))
                goto nomem;
        m->next = *pos;
        *pos    = m;
        *mp     = m;
        m       = NULL;
        err     = OSY_OK;
        goto out;
nomem:
        osy_err_set(err, errstr, errstr_size, "metrics: out of memory");
out:
        pthread_mutex_unlock(&reg->lock);
        metric_free(m);
        return err;
}

osy_err_t osy_metrics_counter_new(osy_metrics_t *reg, osy_metric_t **mp,
                                  const char *name, const char *help,
                                  const char *const *label_names, char *errstr,
                                  size_t errstr_size)
{
        return family_new(reg, mp, T_COUNTER, name, help, label_names, NULL, 0,
                          errstr, errstr_size);
}

osy_err_t osy_metrics_gauge_new(osy_metrics_t *reg, osy_metric_t **mp,
                                const char *name, const char *help,
                                const char *const *label_names, char *errstr,
                                size_t errstr_size)
{
        return family_new(reg, mp, T_GAUGE, name, help, label_names, NULL, 0,
                          errstr, errstr_size);
}

osy_err_t osy_metrics_histogram_new(osy_metrics_t *reg, osy_metric_t **mp,
                                    const char *name, const char *help,
                                    const char *const *label_names,
                                    const double *buckets, size_t n_buckets,
                                    char *errstr, size_t errstr_size)
{
        return family_new(reg, mp, T_HISTOGRAM, name, help, label_names,
                          buckets, n_buckets, errstr, errstr_size);
}

osy_series_t *osy_metric_series(osy_metric_t *m, const char *const *values)
{
        osy_series_t *s = NULL, **pos;

        if (!m || (m->n_labels && !values))
                return NULL;
        for (size_t i = 0; i < m->n_labels; i++)
                if (!values[i])
                        return NULL;
        pthread_mutex_lock(&m->reg->lock);
        /* Series stay sorted by label values: render order is stable. */
        for (pos = &m->series; *pos; pos = &(*pos)->next) {
                int c = cmp_values((*pos)->values, values, m->n_labels);

                if (c == 0) {
                        s = *pos;
                        goto out;
                }
                if (c > 0)
                        break;
        }
        s = series_new(m, values);
        if (s) {
                s->next = *pos;
                *pos    = s;
        }
out:
        pthread_mutex_unlock(&m->reg->lock);
        return s;
}

void osy_counter_inc(osy_series_t *s)
{
        osy_counter_add(s, 1.0);
}

void osy_counter_add(osy_series_t *s, double v)
{
        if (!s || s->m->type != T_COUNTER || !(v >= 0)) /* also drops NaN */
                return;
        atomic_add_double(&s->val, v);
}

void osy_gauge_set(osy_series_t *s, double v)
{
        if (!s || s->m->type != T_GAUGE)
                return;
        atomic_store_explicit(&s->val, d2u(v), memory_order_relaxed);
}

void osy_gauge_add(osy_series_t *s, double v)
{
        if (!s || s->m->type != T_GAUGE)
                return;
        atomic_add_double(&s->val, v);
}

void osy_histogram_observe(osy_series_t *s, double v)
{
        size_t i = 0;

        /* A NaN would poison _sum for the life of the process. */
        if (!s || s->m->type != T_HISTOGRAM || isnan(v))
                return;
        while (i < s->m->n_buckets && v > s->m->buckets[i])
                i++;
        atomic_fetch_add_explicit(&s->counts[i], 1, memory_order_relaxed);
        atomic_add_double(&s->val, v);
}

double osy_series_value(const osy_series_t *s)
{
        if (!s)
                return 0;
        return u2d(atomic_load_explicit(&((osy_series_t *)s)->val,
                                        memory_order_relaxed));
}

/* ---- rendering ---------------------------------------------------------- */

struct sbuf {
        char *p;
        size_t len, cap;
        int nomem;
};

static void sb_putn(struct sbuf *b, const char *s, size_t n)
{
        if (b->nomem)
                return;
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 1024;
                char *np;

                while (cap < b->len + n + 1)
                        cap *= 2;
                np = realloc(b->p, cap);
                if (!np) {
                        b->nomem = 1;
                        return;
                }
                b->p   = np;
                b->cap = cap;
        }
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
        sb_putn(b, s, strlen(s));
}

/* Escape per text format 0.0.4: label values escape backslash, double
 * quote and newline; HELP text only backslash and newline. */
static void sb_escaped(struct sbuf *b, const char *s, int quotes)
{
        for (; *s; s++) {
                if (*s == '\\')
                        sb_puts(b, "\\\\");
                else if (*s == '\n')
                        sb_puts(b, "\\n");
                else if (quotes && *s == '"')
                        sb_puts(b, "\\\"");
                else
                        sb_putn(b, s, 1);
        }
}

/* Shortest text that reads back as the same double; integers without a
 * fraction, infinities as Prometheus spells them. */
static void sb_double(struct sbuf *b, double v)
{
        char num[40];

        if (isnan(v))
                snprintf(num, sizeof(num), "NaN");
        else if (isinf(v))
                snprintf(num, sizeof(num), "%s", v > 0 ? "+Inf" : "-Inf");
        else if (v == 0)
                snprintf(num, sizeof(num), "0"); /* also -0 */
        else if (v == floor(v) && fabs(v) < 1e15)
                snprintf(num, sizeof(num), "%.0f", v);
        else {
                snprintf(num, sizeof(num), "%.15g", v);
                if (strtod(num, NULL) != v)
                        snprintf(num, sizeof(num), "%.17g", v);
        }
        sb_puts(b, num);
}

static void sb_u64(struct sbuf *b, uint64_t v)
{
        char num[24];

        snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
        sb_puts(b, num);
}

/* name{l1="v1",l2="v2"[,le="x"]} — the braces only when there is a
 * label; @p le is the histogram bound or NULL. */
static void sb_sample_name(struct sbuf *b, const osy_series_t *s,
                           const char *suffix, const char *le)
{
        const osy_metric_t *m = s->m;

        sb_puts(b, m->name);
        sb_puts(b, suffix);
        if (m->n_labels == 0 && !le) {
                sb_puts(b, " ");
                return;
        }
        sb_puts(b, "{");
        for (size_t i = 0; i < m->n_labels; i++) {
                if (i)
                        sb_puts(b, ",");
                sb_puts(b, m->labels[i]);
                sb_puts(b, "=\"");
                sb_escaped(b, s->values[i], 1);
                sb_puts(b, "\"");
        }
        if (le) {
                sb_puts(b, m->n_labels ? ",le=\"" : "le=\"");
                sb_puts(b, le);
                sb_puts(b, "\"");
        }
        sb_puts(b, "} ");
}

static void render_histogram(struct sbuf *b, const osy_series_t *s)
{
        const osy_metric_t *m = s->m;
        uint64_t cum          = 0;

        for (size_t i = 0; i <= m->n_buckets; i++) {
                struct sbuf le = {0};

                /* Read every bucket once: _count is the +Inf bucket, so
                 * the two agree even while observations race. */
                cum += atomic_load_explicit(&((osy_series_t *)s)->counts[i],
                                            memory_order_relaxed);
                if (i < m->n_buckets)
                        sb_double(&le, m->buckets[i]);
                else
                        sb_puts(&le, "+Inf");
                if (le.nomem) {
                        b->nomem = 1;
                        free(le.p);
                        return;
                }
                sb_sample_name(b, s, "_bucket", le.p);
                free(le.p);
                sb_u64(b, cum);
                sb_puts(b, "\n");
        }
        sb_sample_name(b, s, "_sum", NULL);
        sb_double(b, osy_series_value(s));
        sb_puts(b, "\n");
        sb_sample_name(b, s, "_count", NULL);
        sb_u64(b, cum);
        sb_puts(b, "\n");
}

osy_err_t osy_metrics_render(osy_metrics_t *reg, char **bufp, size_t *lenp,
                             char *errstr, size_t errstr_size)
{
        struct sbuf b = {0};

        if (!reg || !bufp)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "metrics: no registry or buffer");
        *bufp = NULL;
        if (lenp)
                *lenp = 0;
        sb_puts(&b, ""); /* an empty registry renders as "" */
        pthread_mutex_lock(&reg->lock);
        for (const osy_metric_t *m = reg->families; m; m = m->next) {
                if (!m->series)
                        continue;
                sb_puts(&b, "# HELP ");
                sb_puts(&b, m->name);
                sb_puts(&b, " ");
                sb_escaped(&b, m->help, 0);
                sb_puts(&b, "\n# TYPE ");
                sb_puts(&b, m->name);
                sb_puts(&b, " ");
                sb_puts(&b, type_names[m->type]);
                sb_puts(&b, "\n");
                for (const osy_series_t *s = m->series; s; s = s->next) {
                        if (m->type == T_HISTOGRAM) {
                                render_histogram(&b, s);
                                continue;
                        }
                        sb_sample_name(&b, s, "", NULL);
                        sb_double(&b, osy_series_value(s));
                        sb_puts(&b, "\n");
                }
        }
        pthread_mutex_unlock(&reg->lock);
        if (b.nomem) {
                free(b.p);
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "metrics: out of memory rendering");
        }
        *bufp = b.p;
        if (lenp)
                *lenp = b.len;
        return OSY_OK;
}
