/*
 * osy_test_kafka.h - start and stop the embedded Kafka launcher
 * (optsync-embedded-kafka) from a test, and drive its control port.
 */
#ifndef OSY_TEST_KAFKA_H
#define OSY_TEST_KAFKA_H

#include <stddef.h>
#include <sys/types.h>

/** A running launcher and where to reach it. */
struct osy_test_kafka {
        pid_t pid;
        char *dir;           /**< private dir: files and launcher.log */
        char bootstrap[256]; /**< "127.0.0.1:port[,...]" */
        int control_port;    /**< control channel on 127.0.0.1 */
};

/**
 * librdkafka properties (name, value, ..., NULL) for quick tests: short
 * session and heartbeat so a group (re)balances in a few seconds, fast
 * reconnects after a broker comes back.
 */
extern const char *const osy_test_kafka_fast_props[];

/**
 * @brief Start the launcher with @p brokers brokers and @p partitions
 *        partitions per contract topic (prefix "optsync"); wait until it
 *        has written its bootstrap and control files.
 * @returns 0 when ready; -1 otherwise (the struct is cleaned up).
 */
int osy_test_kafka_start(struct osy_test_kafka *k, int brokers, int partitions);

/** @brief Same, with a topic prefix (NULL: the default). */
int osy_test_kafka_start_prefix(struct osy_test_kafka *k, int brokers,
                                int partitions, const char *prefix);

/**
 * @brief Send one control command (no newline) and read the reply line
 *        into @p reply (may be NULL).
 * @returns 0 if the reply starts with "OK", else -1.
 */
int osy_test_kafka_control(struct osy_test_kafka *k, const char *cmd,
                           char *reply, size_t reply_size);

/**
 * @brief SIGTERM the launcher (SIGKILL after 5 s), remove its directory.
 *        Safe on a zeroed or already stopped struct.
 * @returns the waitpid status, or -1 if nothing was running.
 */
int osy_test_kafka_stop(struct osy_test_kafka *k);

#endif /* OSY_TEST_KAFKA_H */
