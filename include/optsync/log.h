/*
 * log.h - JSON-lines logging with levels. One object per line on stderr
 * (or a chosen fd), fields escaped, secrets never printed.
 */
#ifndef OPTSYNC_LOG_H
#define OPTSYNC_LOG_H

#include <stdio.h>

typedef enum {
        OSY_LOG_DEBUG = 0,
        OSY_LOG_INFO,
        OSY_LOG_WARN,
        OSY_LOG_ERROR,
        OSY_LOG_OFF
} osy_log_level_t;

/**
 * @brief Set the process-wide log sink.
 * @param component name written as "component" on every line ("rules").
 * @param level     lines below it are dropped before formatting.
 * @param out       stream to write to (NULL: stderr). Not owned.
 */
void osy_log_init(const char *component, osy_log_level_t level, FILE *out);

/** @returns the current threshold. */
osy_log_level_t osy_log_level(void);

/** @brief Parse "debug"/"info"/"warn"/"error"/"off". @returns -1 if bad. */
int osy_log_level_parse(const char *s);

/**
 * @brief Register a secret value (token, password) so that it is replaced
 *        with "***" wherever it would appear in a log line. Copies @p value;
 *        values shorter than 4 bytes are ignored (they would mask too much).
 */
void osy_log_add_secret(const char *value);

/** @brief Forget every registered secret (tests, config reload). */
void osy_log_clear_secrets(void);

/**
 * @brief Write one JSON line: {"ts":..., "level":..., "component":...,
 *        "msg":..., plus "key":"value" pairs}.
 *
 * @param kv NULL-terminated list of alternating keys and string values
 *           (may be NULL). Values are escaped and secret-masked.
 */
void osy_log_kv(osy_log_level_t level, const char *const *kv, const char *fmt,
                ...) __attribute__((format(printf, 3, 4)));

/* The level is checked before the arguments are evaluated. */
#define osy_log(level, ...)                                                    \
        do {                                                                   \
                if ((level) >= osy_log_level())                                \
                        osy_log_kv((level), NULL, __VA_ARGS__);                \
        } while (0)

#define osy_log_debug(...) osy_log(OSY_LOG_DEBUG, __VA_ARGS__)
#define osy_log_info(...) osy_log(OSY_LOG_INFO, __VA_ARGS__)
#define osy_log_warn(...) osy_log(OSY_LOG_WARN, __VA_ARGS__)
#define osy_log_error(...) osy_log(OSY_LOG_ERROR, __VA_ARGS__)

#endif /* OPTSYNC_LOG_H */
