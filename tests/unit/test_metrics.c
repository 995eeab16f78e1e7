/*
 * test_metrics.c - the Prometheus registry: exact text rendering, escaping,
 * name validation, histogram semantics and lock-free concurrent updates.
 */
#include "osy_test.h"
#include "optsync/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Render @p reg and compare with @p expect in full. */
static void assert_render(osy_metrics_t *reg, const char *expect)
{
        char errstr[OSY_ERRSTR_SIZE];
        char *text = NULL;
        size_t len = 0;

        assert_int_equal(
            osy_metrics_render(reg, &text, &len, errstr, sizeof(errstr)),
            OSY_OK);
        assert_non_null(text);
        assert_string_equal(text, expect);
        assert_int_equal(len, strlen(expect));
        free(text);
}

static osy_metric_t *counter(osy_metrics_t *reg, const char *name,
                             const char *help, const char *const *labels)
{
        char errstr[OSY_ERRSTR_SIZE];
        osy_metric_t *m = NULL;

        assert_int_equal(osy_metrics_counter_new(reg, &m, name, help, labels,
                                                 errstr, sizeof(errstr)),
                         OSY_OK);
        assert_non_null(m);
        return m;
}

static osy_metric_t *gauge(osy_metrics_t *reg, const char *name,
                           const char *help, const char *const *labels)
{
        char errstr[OSY_ERRSTR_SIZE];
        osy_metric_t *m = NULL;

        assert_int_equal(osy_metrics_gauge_new(reg, &m, name, help, labels,
                                               errstr, sizeof(errstr)),
                         OSY_OK);
        assert_non_null(m);
        return m;
}

static void counters_and_gauges_render_exactly(void **state)
{
        osy_metrics_t *reg = osy_metrics_new();
        osy_metric_t *req, *lag;
        (void)state;

        req = counter(reg, "optsync_requests_total", "Requests handled.",
                      (const char *const[]){"type", "outcome", NULL});
        lag = gauge(reg, "optsync_lag_messages", "Consumer lag.", NULL);
        osy_counter_inc(
            osy_metric_series(req, (const char *const[]){"unsubscribe", "ok"}));
        osy_counter_add(
            osy_metric_series(req, (const char *const[]){"subscribe", "ok"}),
            2);
        osy_counter_inc(osy_metric_series(
            req, (const char *const[]){"subscribe", "error"}));
        osy_gauge_set(osy_metric_series(lag, NULL), 42);
        osy_gauge_add(osy_metric_series(lag, NULL), -2.5);
        /* Families sorted by name, series by label values. */
        assert_render(reg, "# HELP optsync_lag_messages Consumer lag.\n"
                           "# TYPE optsync_lag_messages gauge\n"
                           "optsync_lag_messages 39.5\n"
                           "# HELP optsync_requests_total Requests handled.\n"
                           "# TYPE optsync_requests_total counter\n"
                           "optsync_requests_total{type=\"subscribe\","
                           "outcome=\"error\"} 1\n"
                           "optsync_requests_total{type=\"subscribe\","
                           "outcome=\"ok\"} 2\n"
                           "optsync_requests_total{type=\"unsubscribe\","
                           "outcome=\"ok\"} 1\n");
        osy_metrics_destroy(reg);
}

static void histogram_buckets_are_cumulative(void **state)
{
        char errstr[OSY_ERRSTR_SIZE];
        osy_metrics_t *reg    = osy_metrics_new();
        const double bounds[] = {0.5, 1, 2.5};
        osy_metric_t *h       = NULL;
        osy_series_t *s;
        (void)state;

        assert_int_equal(osy_metrics_histogram_new(
                             reg, &h, "optsync_call_seconds", "Call latency.",
                             NULL, bounds, 3, errstr, sizeof(errstr)),
                         OSY_OK);
        s = osy_metric_series(h, NULL);
        osy_histogram_observe(s, 0.25);
        osy_histogram_observe(s, 0.5); /* le is inclusive */
        osy_histogram_observe(s, 0.75);
        osy_histogram_observe(s, 3);   /* only in +Inf */
        osy_histogram_observe(s, NAN); /* ignored */
        assert_render(reg, "# HELP optsync_call_seconds Call latency.\n"
                           "# TYPE optsync_call_seconds histogram\n"
                           "optsync_call_seconds_bucket{le=\"0.5\"} 2\n"
                           "optsync_call_seconds_bucket{le=\"1\"} 3\n"
                           "optsync_call_seconds_bucket{le=\"2.5\"} 3\n"
                           "optsync_call_seconds_bucket{le=\"+Inf\"} 4\n"
                           "optsync_call_seconds_sum 4.5\n"
                           "optsync_call_seconds_count 4\n");
        osy_metrics_destroy(reg);
}

static void histogram_with_labels_puts_le_last(void **state)
{
        char errstr[OSY_ERRSTR_SIZE];
        osy_metrics_t *reg    = osy_metrics_new();
        const double bounds[] = {0.1};
        osy_metric_t *h       = NULL;
        (void)state;

        assert_int_equal(
            osy_metrics_histogram_new(reg, &h, "lat", "L.",
                                      (const char *const[]){"api", NULL},
                                      bounds, 1, errstr, sizeof(errstr)),
            OSY_OK);
        /* A labelled family has no series until one is asked for. */
        assert_render(reg, "");
        osy_histogram_observe(osy_metric_series(h, (const char *const[]){"sf"}),
                              0.05);
        assert_render(reg, "# HELP lat L.\n"
                           "# TYPE lat histogram\n"
                           "lat_bucket{api=\"sf\",le=\"0.1\"} 1\n"
                           "lat_bucket{api=\"sf\",le=\"+Inf\"} 1\n"
                           "lat_sum{api=\"sf\"} 0.05\n"
                           "lat_count{api=\"sf\"} 1\n");
        osy_metrics_destroy(reg);
}

static void label_values_and_help_escaped(void **state)
{
        osy_metrics_t *reg = osy_metrics_new();
        osy_metric_t *m;
        (void)state;

        m = counter(reg, "esc_total", "Back\\slash and\nnewline \"kept\".",
                    (const char *const[]){"v", NULL});
        osy_counter_inc(
            osy_metric_series(m, (const char *const[]){"a\"b\\c\nd"}));
        assert_render(reg, "# HELP esc_total Back\\\\slash and\\nnewline "
                           "\"kept\".\n"
                           "# TYPE esc_total counter\n"
                           "esc_total{v=\"a\\\"b\\\\c\\nd\"} 1\n");
        osy_metrics_destroy(reg);
}

static void invalid_metric_names_rejected(void **state)
{
        const char *bad[] = {"", "1abc", "a-b", "a b", "é", "a.b", NULL};
        char errstr[OSY_ERRSTR_SIZE];
        osy_metrics_t *reg = osy_metrics_new();
        osy_metric_t *m    = (osy_metric_t *)1;
        (void)state;

        for (size_t i = 0; bad[i]; i++) {
                errstr[0] = '\0';
                assert_int_equal(osy_metrics_counter_new(reg, &m, bad[i], "h",
                                                         NULL, errstr,
                                                         sizeof(errstr)),
                                 OSY_ERR_INVALID);
                assert_null(m);
                assert_non_null(strstr(errstr, "invalid metric name"));
        }
        assert_int_equal(osy_metrics_gauge_new(reg, &m, NULL, "h", NULL, errstr,
                                               sizeof(errstr)),
                         OSY_ERR_INVALID);
        /* The grammar's edges are accepted. */
        counter(reg, ":a_b:c9", "h", NULL);
        counter(reg, "_x", "h", NULL);
        osy_metrics_destroy(reg);
}

static void invalid_label_names_rejected(void **state)
{
        const char *const *bad[] = {
            (const char *const[]){"__reserved", NULL},
            (const char *const[]){"1a", NULL},
            (const char *const[]){"a-b", NULL},
            (const char *const[]){"a:b", NULL}, /* ':' only in names */
            (const char *const[]){"x", "x", NULL},
            (const char *const[]){"a", "b", "c", "d", "e", NULL},
            NULL};
        char errstr[OSY_ERRSTR_SIZE];
        osy_metrics_t *reg   = osy_metrics_new();
        const double bound[] = {1};
        osy_metric_t *m      = NULL;
        (void)state;

        for (size_t i = 0; bad[i]; i++)
                assert_int_equal(osy_metrics_counter_new(reg, &m, "c", "h",
                                                         bad[i], errstr,
                                                         sizeof(errstr)),
                                 OSY_ERR_INVALID);
        /* "le" is the histogram's own label, fine elsewhere. */
        assert_int_equal(
            osy_metrics_histogram_new(reg, &m, "h", "h",
                                      (const char *const[]){"le", NULL}, bound,
                                      1, errstr, sizeof(errstr)),
            OSY_ERR_INVALID);
        counter(reg, "c", "h", (const char *const[]){"le", NULL});
        /* Four labels is the documented maximum. */
        counter(reg, "four", "h",
                (const char *const[]){"a", "b", "c", "d", NULL});
        osy_metrics_destroy(reg);
}

static void invalid_buckets_rejected(void **state)
{
        const double dup[] = {1, 1}, down[] = {2, 1}, inf[] = {1, INFINITY},
                     nan[] = {NAN};
        char errstr[OSY_ERRSTR_SIZE];
        osy_metrics_t *reg = osy_metrics_new();
        osy_metric_t *m    = NULL;
        (void)state;

#define BAD(b, n)                                                              \
        assert_int_equal(osy_metrics_histogram_new(reg, &m, "h", "h", NULL,    \
                                                   (b), (n), errstr,           \
                                                   sizeof(errstr)),            \
                         OSY_ERR_INVALID)
        BAD(dup, 2);
        BAD(down, 2);
        BAD(inf, 2);
        BAD(nan, 1);
        BAD(dup, 0);
        BAD(NULL, 1);
#undef BAD
        osy_metrics_destroy(reg);
}

static void reregistering_returns_same_family(void **state)
{
        char errstr[OSY_ERRSTR_SIZE];
        osy_metrics_t *reg = osy_metrics_new();
        osy_metric_t *a, *b = NULL;
        (void)state;

        a = counter(reg, "x_total", "h", (const char *const[]){"k", NULL});
        assert_ptr_equal(counter(reg, "x_total", "other help",
                                 (const char *const[]){"k", NULL}),
                         a);
        /* Same name, different type or labels: a conflict. */
        assert_int_equal(osy_metrics_gauge_new(reg, &b, "x_total", "h",
                                               (const char *const[]){"k", NULL},
                                               errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(errstr, "already registered"));
        assert_int_equal(
            osy_metrics_counter_new(reg, &b, "x_total", "h",
                                    (const char *const[]){"j", NULL}, errstr,
                                    sizeof(errstr)),
            OSY_ERR_INVALID);
        assert_null(b);
        osy_metrics_destroy(reg);
}

static void series_lookup_is_stable_and_null_safe(void **state)
{
        osy_metrics_t *reg = osy_metrics_new();
        osy_metric_t *m;
        osy_series_t *s1, *s2, *s3;
        (void)state;

        m  = counter(reg, "c_total", "h", (const char *const[]){"a", NULL});
        s1 = osy_metric_series(m, (const char *const[]){"x"});
        s2 = osy_metric_series(m, (const char *const[]){"y"});
        s3 = osy_metric_series(m, (const char *const[]){"x"});
        assert_non_null(s1);
        assert_ptr_not_equal(s1, s2);
        assert_ptr_equal(s1, s3);
        assert_null(osy_metric_series(m, NULL));
        assert_null(osy_metric_series(m, (const char *const[]){NULL}));
        assert_null(osy_metric_series(NULL, NULL));
        /* Updates through a failed lookup are no-ops, not crashes. */
        osy_counter_inc(NULL);
        osy_gauge_set(NULL, 1);
        osy_histogram_observe(NULL, 1);
        assert_true(osy_series_value(NULL) == 0);
        osy_metrics_destroy(reg);
        osy_metrics_destroy(NULL);
}

static void counters_only_go_up_and_types_are_checked(void **state)
{
        osy_metrics_t *reg = osy_metrics_new();
        osy_series_t *c, *g;
        (void)state;

        c = osy_metric_series(counter(reg, "c_total", "h", NULL), NULL);
        g = osy_metric_series(gauge(reg, "g", "h", NULL), NULL);
        osy_counter_add(c, 1.5);
        osy_counter_add(c, -1);  /* ignored */
        osy_counter_add(c, NAN); /* ignored */
        osy_gauge_set(c, 100);   /* wrong type: ignored */
        osy_counter_inc(g);      /* wrong type: ignored */
        osy_gauge_add(g, -3);    /* gauges may go down */
        assert_true(osy_series_value(c) == 1.5);
        assert_true(osy_series_value(g) == -3);
        osy_metrics_destroy(reg);
}

static void values_formatted_for_prometheus(void **state)
{
        osy_metrics_t *reg = osy_metrics_new();
        osy_metric_t *m;
        const struct {
                double v;
                const char *label;
        } cases[] = {{0.1, "a"},  {-2.5, "b"}, {1.5e20, "c"}, {INFINITY, "d"},
                     {-0.0, "e"}, {1e-9, "f"}, {NAN, "g"},    {123456789, "h"}};
        (void)state;

        m = gauge(reg, "g", "h", (const char *const[]){"k", NULL});
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                osy_gauge_set(
                    osy_metric_series(m, (const char *const[]){cases[i].label}),
                    cases[i].v);
        assert_render(reg, "# HELP g h\n"
                           "# TYPE g gauge\n"
                           "g{k=\"a\"} 0.1\n"
                           "g{k=\"b\"} -2.5\n"
                           "g{k=\"c\"} 1.5e+20\n"
                           "g{k=\"d\"} +Inf\n"
                           "g{k=\"e\"} 0\n"
                           "g{k=\"f\"} 1e-09\n"
                           "g{k=\"g\"} NaN\n"
                           "g{k=\"h\"} 123456789\n");
        osy_metrics_destroy(reg);
}

static void render_rejects_bad_arguments(void **state)
{
        char errstr[OSY_ERRSTR_SIZE];
        char *text         = (char *)"x";
        osy_metrics_t *reg = osy_metrics_new();
        (void)state;

        assert_int_equal(
            osy_metrics_render(NULL, &text, NULL, errstr, sizeof(errstr)),
            OSY_ERR_INVALID);
        assert_int_equal(
            osy_metrics_render(reg, NULL, NULL, errstr, sizeof(errstr)),
            OSY_ERR_INVALID);
        assert_render(reg, ""); /* empty registry, empty text */
        osy_metrics_destroy(reg);
}

/* ---- concurrency -------------------------------------------------------- */

#define N_THREADS 8
#define N_INCS 20000

struct worker_arg {
        osy_metric_t *c, *h, *g;
};

static void *hammer(void *p)
{
        struct worker_arg *w = p;

        for (int i = 0; i < N_INCS; i++) {
                /* Look the series up every time: lookups race with each
                 * other and with the increments. */
                osy_counter_inc(osy_metric_series(
                    w->c, (const char *const[]){i % 2 ? "odd" : "even"}));
                osy_histogram_observe(osy_metric_series(w->h, NULL),
                                      (double)(i % 4));
                osy_gauge_add(osy_metric_series(w->g, NULL), 0.5);
        }
        return NULL;
}

static void concurrent_updates_add_up_exactly(void **state)
{
        char errstr[OSY_ERRSTR_SIZE];
        osy_metrics_t *reg    = osy_metrics_new();
        const double bounds[] = {1.5};
        struct worker_arg w   = {0};
        pthread_t th[N_THREADS];
        char *text = NULL, expect[256];
        (void)state;

        w.c = counter(reg, "n_total", "h", (const char *const[]){"k", NULL});
        w.g = gauge(reg, "g", "h", NULL);
        assert_int_equal(osy_metrics_histogram_new(reg, &w.h, "obs", "h", NULL,
                                                   bounds, 1, errstr,
                                                   sizeof(errstr)),
                         OSY_OK);
        for (int i = 0; i < N_THREADS; i++)
                assert_int_equal(pthread_create(&th[i], NULL, hammer, &w), 0);
        /* Render while the threads run: must not crash or deadlock. */
        for (int i = 0; i < 20; i++) {
                assert_int_equal(osy_metrics_render(reg, &text, NULL, errstr,
                                                    sizeof(errstr)),
                                 OSY_OK);
                free(text);
        }
        for (int i = 0; i < N_THREADS; i++)
                pthread_join(th[i], NULL);

        assert_true(osy_series_value(
                        osy_metric_series(w.c, (const char *const[]){"odd"})) ==
                    N_THREADS * N_INCS / 2);
        assert_true(osy_series_value(osy_metric_series(
                        w.c, (const char *const[]){"even"})) ==
                    N_THREADS * N_INCS / 2);
        assert_true(osy_series_value(osy_metric_series(w.g, NULL)) ==
                    N_THREADS * N_INCS * 0.5);
        /* Values 0,1 fall in le=1.5, 2,3 above; sum = 1.5 per value. */
        assert_int_equal(
            osy_metrics_render(reg, &text, NULL, errstr, sizeof(errstr)),
            OSY_OK);
        snprintf(expect, sizeof(expect),
                 "obs_bucket{le=\"1.5\"} %d\n"
                 "obs_bucket{le=\"+Inf\"} %d\n"
                 "obs_sum %d\n"
                 "obs_count %d\n",
                 N_THREADS * N_INCS / 2, N_THREADS * N_INCS,
                 N_THREADS * N_INCS * 3 / 2, N_THREADS * N_INCS);
        assert_non_null(strstr(text, expect));
        free(text);
        osy_metrics_destroy(reg);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(counters_and_gauges_render_exactly),
    cmocka_unit_test(histogram_buckets_are_cumulative),
    cmocka_unit_test(histogram_with_labels_puts_le_last),
    cmocka_unit_test(label_values_and_help_escaped),
    cmocka_unit_test(invalid_metric_names_rejected),
    cmocka_unit_test(invalid_label_names_rejected),
    cmocka_unit_test(invalid_buckets_rejected),
    cmocka_unit_test(reregistering_returns_same_family),
    cmocka_unit_test(series_lookup_is_stable_and_null_safe),
    cmocka_unit_test(counters_only_go_up_and_types_are_checked),
    cmocka_unit_test(values_formatted_for_prometheus),
    cmocka_unit_test(render_rejects_bad_arguments),
    cmocka_unit_test(concurrent_updates_add_up_exactly),
};
OSY_TEST_MAIN(tests, NULL, NULL)
