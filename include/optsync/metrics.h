/*
 * metrics.h - a thread-safe Prometheus metrics registry: counters, gauges
 * and fixed-bucket histograms with labels, rendered as text format 0.0.4.
 */
#ifndef OPTSYNC_METRICS_H
#define OPTSYNC_METRICS_H

#include <stddef.h>

#include "optsync/err.h"

/** Most label names one metric family may have. */
#define OSY_METRICS_MAX_LABELS 4

/** The registry: owns every family and series created in it. */
typedef struct osy_metrics_s osy_metrics_t;

/** A metric family: name, help, type, label names (and histogram buckets). */
typedef struct osy_metric_s osy_metric_t;

/**
 * One child of a family, for one tuple of label values. Its pointer stays
 * valid until the registry is destroyed, so hot paths look it up once.
 */
typedef struct osy_series_s osy_series_t;

/** @brief Create an empty registry. @returns NULL when out of memory. */
osy_metrics_t *osy_metrics_new(void);

/** @brief Free the registry and everything in it. NULL-safe. */
void osy_metrics_destroy(osy_metrics_t *reg);

/**
 * @brief Register a counter family.
 *
 * @param name        [a-zA-Z_:][a-zA-Z0-9_:]* (by convention ending _total).
 * @param help        one line of help text (may be NULL).
 * @param label_names NULL-terminated, at most OSY_METRICS_MAX_LABELS names
 *                    of the form [a-zA-Z_][a-zA-Z0-9_]* not starting "__";
 *                    NULL for none. Copied.
 * @param mp          receives the family, owned by @p reg.
 * @returns OSY_OK; registering the same name again with the same type and
 *          labels returns the existing family. OSY_ERR_INVALID for a bad or
 *          conflicting definition, OSY_ERR_NOMEM.
 */
osy_err_t osy_metrics_counter_new(osy_metrics_t *reg, osy_metric_t **mp,
                                  const char *name, const char *help,
                                  const char *const *label_names, char *errstr,
                                  size_t errstr_size) OSY_MUSTCHECK;

/** @brief Register a gauge family; as osy_metrics_counter_new(). */
osy_err_t osy_metrics_gauge_new(osy_metrics_t *reg, osy_metric_t **mp,
                                const char *name, const char *help,
                                const char *const *label_names, char *errstr,
                                size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Register a histogram family; as osy_metrics_counter_new(), plus:
 * @param buckets   upper bounds ("le"), finite and strictly increasing;
 *                  "+Inf" is always added. Copied. The label name "le" is
 *                  reserved.
 * @param n_buckets number of bounds (at least 1).
 */
osy_err_t osy_metrics_histogram_new(osy_metrics_t *reg, osy_metric_t **mp,
                                    const char *name, const char *help,
                                    const char *const *label_names,
                                    const double *buckets, size_t n_buckets,
                                    char *errstr,
                                    size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Find or create the series for one tuple of label values.
 * @param values exactly as many strings as the family has label names (any
 *               bytes; escaped on output); NULL for a family without labels.
 * @returns the series (owned by the registry), or NULL when out of memory
 *          or a value is NULL. Every update function accepts NULL and does
 *          nothing, so a failed lookup never crashes a worker.
 */
osy_series_t *osy_metric_series(osy_metric_t *m, const char *const *values);

/** @brief Add 1 to a counter series. Lock-free. */
void osy_counter_inc(osy_series_t *s);

/** @brief Add @p v to a counter series; negative or NaN @p v is ignored
 *         (counters only go up). Lock-free. */
void osy_counter_add(osy_series_t *s, double v);

/** @brief Set a gauge series. Lock-free. */
void osy_gauge_set(osy_series_t *s, double v);

/** @brief Add @p v (may be negative) to a gauge series. Lock-free. */
void osy_gauge_add(osy_series_t *s, double v);

/** @brief Record one observation in a histogram series. Lock-free. */
void osy_histogram_observe(osy_series_t *s, double v);

/** @returns the current value of a counter or gauge series (0 if NULL). */
double osy_series_value(const osy_series_t *s);

/**
 * @brief Render every family in the Prometheus text exposition format
 *        0.0.4: families sorted by name, series by label values, each
 *        family with "# HELP" and "# TYPE" lines. Families without any
 *        series are left out.
 * @param bufp receives a NUL-terminated malloc'd string the caller frees.
 * @param lenp receives its length (may be NULL).
 */
osy_err_t osy_metrics_render(osy_metrics_t *reg, char **bufp, size_t *lenp,
                             char *errstr, size_t errstr_size) OSY_MUSTCHECK;

#endif /* OPTSYNC_METRICS_H */
