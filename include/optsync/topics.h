/*
 * topics.h - the contract's Kafka topic names (ARCHITECTURE.md section 2),
 * built from a configurable prefix ("optsync" by default).
 */
#ifndef OPTSYNC_TOPICS_H
#define OPTSYNC_TOPICS_H

#include <stddef.h>

#include "optsync/err.h"

/** Prefix used when the configuration names none. */
#define OSY_TOPIC_DEFAULT_PREFIX "optsync"

/** Buffer size that holds any valid topic name (Kafka allows 249 chars). */
#define OSY_TOPIC_NAME_SIZE 250

/** The topics of the contract; values are dense, 0..OSY_TOPIC__CNT-1. */
typedef enum {
        OSY_TOPIC_AC_EVENTS = 0, /**< <prefix>.ac.events */
        OSY_TOPIC_SF_EVENTS,     /**< <prefix>.sf.events */
        OSY_TOPIC_SF_COMMANDS,   /**< <prefix>.sf.commands */
        OSY_TOPIC_AC_COMMANDS,   /**< <prefix>.ac.commands */
        OSY_TOPIC_AUDIT,         /**< <prefix>.audit */
        OSY_TOPIC_DLQ,           /**< <prefix>.dlq */
        OSY_TOPIC__CNT           /**< number of topics, not a topic */
} osy_topic_t;

/**
 * @brief Every contract topic name for one prefix, filled by
 *        osy_topic_names_init(); index it with osy_topic_t.
 */
struct osy_topic_names {
        char name[OSY_TOPIC__CNT][OSY_TOPIC_NAME_SIZE];
};

/**
 * @returns the part after the prefix ("ac.events"), a static string, or
 *          NULL if @p topic is not a contract topic.
 */
const char *osy_topic_suffix(osy_topic_t topic);

/**
 * @brief Check a prefix: 1..200 characters of [A-Za-z0-9._-], the
 *        characters Kafka allows in topic names, not starting or ending
 *        with '.' (that would give "a..ac.events").
 * @returns OSY_OK, or OSY_ERR_INVALID with the reason in @p errstr.
 */
osy_err_t osy_topic_prefix_check(const char *prefix, char *errstr,
                                 size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Write "<prefix>.<suffix>" for @p topic into @p buf.
 *
 * @param prefix NULL means OSY_TOPIC_DEFAULT_PREFIX.
 * @returns OSY_OK; OSY_ERR_INVALID for a bad prefix or topic;
 *          OSY_ERR_TOO_LARGE if @p buf_size is too small.
 */
osy_err_t osy_topic_name(osy_topic_t topic, const char *prefix, char *buf,
                         size_t buf_size, char *errstr,
                         size_t errstr_size) OSY_MUSTCHECK;

/**
 * @brief Fill @p names with every contract topic for @p prefix (NULL:
 *        the default). The embedded launcher creates exactly these.
 * @returns OSY_OK, or OSY_ERR_INVALID for a bad prefix.
 */
osy_err_t osy_topic_names_init(struct osy_topic_names *names,
                               const char *prefix, char *errstr,
                               size_t errstr_size) OSY_MUSTCHECK;

#endif /* OPTSYNC_TOPICS_H */
