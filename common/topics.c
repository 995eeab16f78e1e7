/*
 * topics.c - the contract's topic names: one table of suffixes, joined to
 * a validated prefix so a typo in configuration fails at startup.
 */
#include "optsync/topics.h"

#include <stdio.h>
#include <string.h>

/* Longest prefix accepted: leaves room for the longest suffix within
 * Kafka's 249-character limit. */
#define TOPIC_PREFIX_MAX 200

/* Indexed by osy_topic_t; order matches the enum. */
static const char *const topic_suffixes[OSY_TOPIC__CNT] = {
    [OSY_TOPIC_AC_EVENTS]   = "ac.events",
    [OSY_TOPIC_SF_EVENTS]   = "sf.events",
    [OSY_TOPIC_SF_COMMANDS] = "sf.commands",
    [OSY_TOPIC_AC_COMMANDS] = "ac.commands",
    [OSY_TOPIC_AUDIT]       = "audit",
    [OSY_TOPIC_DLQ]         = "dlq",
};

const char *osy_topic_suffix(osy_topic_t topic)
{
        if ((int)topic < 0 || topic >= OSY_TOPIC__CNT)
                return NULL;
        return topic_suffixes[topic];
}

osy_err_t osy_topic_prefix_check(const char *prefix, char *errstr,
                                 size_t errstr_size)
{
        size_t len;

        if (!prefix || !*prefix)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "topic prefix is empty");
        len = strlen(prefix);
        if (len > TOPIC_PREFIX_MAX)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "topic prefix is %zu characters long "
                                   "(max %d)",
                                   len, TOPIC_PREFIX_MAX);
        for (size_t i = 0; i < len; i++) {
                char ch = prefix[i];
                if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
                    ch == '-')
                        continue;
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "topic prefix \"%s\": character %zu is not "
                                   "one of [A-Za-z0-9._-]",
                                   prefix, i + 1);
        }
        if (prefix[0] == '.' || prefix[len - 1] == '.')
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "topic prefix \"%s\" must not start or end "
                                   "with '.'",
                                   prefix);
        return OSY_OK;
}

osy_err_t osy_topic_name(osy_topic_t topic, const char *prefix, char *buf,
                         size_t buf_size, char *errstr, size_t errstr_size)
{
        const char *suffix = osy_topic_suffix(topic);
        osy_err_t err;
        int n;

        if (buf && buf_size)
                buf[0] = '\0';
        if (!suffix)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "unknown topic %d", (int)topic);
        if (!prefix)
                prefix = OSY_TOPIC_DEFAULT_PREFIX;
        if ((err = osy_topic_prefix_check(prefix, errstr, errstr_size)))
                return err;
        n = buf ? snprintf(buf, buf_size, "%s.%s", prefix, suffix) : -1;
        if (n < 0 || (size_t)n >= buf_size) {
                if (buf && buf_size)
                        buf[0] = '\0'; /* never hand out a cut name */
                return osy_err_set(OSY_ERR_TOO_LARGE, errstr, errstr_size,
                                   "topic name %s.%s does not fit in %zu "
                                   "bytes",
                                   prefix, suffix, buf_size);
        }
        return OSY_OK;
}

osy_err_t osy_topic_names_init(struct osy_topic_names *names,
                               const char *prefix, char *errstr,
                               size_t errstr_size)
{
        osy_err_t err = OSY_OK;

        memset(names, 0, sizeof(*names));
        for (int t = 0; t < OSY_TOPIC__CNT && !err; t++)
                err =
                    osy_topic_name((osy_topic_t)t, prefix, names->name[t],
                                   sizeof(names->name[t]), errstr, errstr_size);
        if (err)
                memset(names, 0, sizeof(*names));
        return err;
}
