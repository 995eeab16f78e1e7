/*
 * config.h - configuration from OPTSYNC_* environment variables (12-factor),
 * validated at startup against the one table in config_keys.h.
 */
#ifndef OPTSYNC_CONFIG_H
#define OPTSYNC_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "optsync/err.h"

/** Loaded configuration: one value per key of config_keys.h. */
typedef struct osy_config_s osy_config_t;

/** Key ids, in table order: OSY_CFG_LOG_LEVEL, OSY_CFG_REDIS_PORT, ... */
typedef enum {
#define OSY_CFG(id, ...) OSY_CFG_##id,
#include "optsync/config_keys.h"
#undef OSY_CFG
        OSY_CFG__COUNT /**< number of keys, not a key */
} osy_cfg_id_t;

/**
 * @brief Read and validate every key from @p envp.
 *
 * Every problem is reported at once, "; "-separated in @p errstr, each
 * naming its key ("OPTSYNC_REDIS_PORT: '70000' is above the maximum 65535").
 * Unknown OPTSYNC_* variables are errors (with a "did you mean" hint when a
 * key is close); other variables are ignored. A SECRET key NAME may instead
 * be given as NAME_FILE (file contents, trailing newlines stripped); both at
 * once is an error. Secret values never appear in @p errstr. On success
 * every secret is registered with osy_log_add_secret().
 *
 * @param cfgp        receives the configuration (caller owns it, frees
 *                    with osy_config_destroy()); NULL on failure.
 * @param envp        NULL-terminated "NAME=value" array like environ; not
 *                    kept. NULL means the process environment.
 * @param errstr      receives the errors (truncated with "..." if small;
 *                    a few KB holds every message). May be NULL.
 * @returns OSY_OK, OSY_ERR_INVALID (bad configuration) or OSY_ERR_NOMEM.
 */
OSY_MUSTCHECK osy_err_t osy_config_load(osy_config_t **cfgp, char *const *envp,
                                        char *errstr, size_t errstr_size);

/** @brief Free @p cfg (NULL-safe). Registered log secrets stay. */
void osy_config_destroy(osy_config_t *cfg);

/**
 * @returns the value of any key as text: strings and secrets as given,
 *          enums in the table's spelling, numbers as written by the user
 *          (or the default). Owned by @p cfg; never NULL.
 */
const char *osy_config_str(const osy_config_t *cfg, osy_cfg_id_t id);

/** @returns the value of an INT key. */
int64_t osy_config_int(const osy_config_t *cfg, osy_cfg_id_t id);

/** @returns 1 or 0 for a BOOL key. */
int osy_config_bool(const osy_config_t *cfg, osy_cfg_id_t id);

/** @returns the value of a DURATION key in milliseconds. */
int64_t osy_config_ms(const osy_config_t *cfg, osy_cfg_id_t id);

/**
 * @returns the position of an ENUM key's value in its list of allowed
 *          values (LOG_LEVEL: debug 0 .. error 3, as osy_log_level_t).
 */
int osy_config_enum(const osy_config_t *cfg, osy_cfg_id_t id);

/** @returns 1 if the environment set @p id (or its _FILE), 0 if defaulted. */
int osy_config_is_set(const osy_config_t *cfg, osy_cfg_id_t id);

/** @returns the variable name of @p id ("OPTSYNC_REDIS_PORT"), static. */
const char *osy_config_name(osy_cfg_id_t id);

/**
 * @brief Print the effective configuration, one "NAME=value" line per key
 *        with its source (default, env, file); secrets print as "***".
 */
void osy_config_dump(const osy_config_t *cfg, FILE *out);

/**
 * @brief Print the reference documentation of every key (the content of
 *        docs/configuration.md): an introduction, then one table row per
 *        key with type, default, range or values, users and description.
 */
void osy_config_markdown(FILE *out);

/**
 * @brief Append the Kafka security settings (security.protocol, the sasl.*
 *        trio for the sasl_* protocols, ssl.ca.location when set) to a
 *        NULL-terminated list of librdkafka name, value pairs, as every
 *        worker passes them in osy_kafka_opts.extra.
 * @param extra the list; entries [n, n + 8) are written (room for 8 more).
 * @param n     how many entries the list holds now.
 * @returns the new count; the caller writes the final NULL. The values are
 *          owned by @p cfg.
 */
size_t osy_config_kafka_security(const osy_config_t *cfg, const char **extra,
                                 size_t n);

#endif /* OPTSYNC_CONFIG_H */
