/*
 * redis_restart.h - restart a test redis-server on the same port, so a
 * client's reconnect path can be exercised (helper for test_redis_live).
 */
#ifndef OSY_TEST_REDIS_RESTART_H
#define OSY_TEST_REDIS_RESTART_H

#include "osy_test.h"

/**
 * @brief Stop the redis-server of @p r (started by osy_test_redis_start())
 *        and start a fresh one in the same directory on the same port.
 *        Its data and script cache are gone, like after a crash.
 * @returns 0 when the new server answers PING.
 */
int osy_test_redis_restart(struct osy_test_redis *r);

/**
 * @brief Stop the redis-server of @p r but keep its directory and port, so
 *        osy_test_redis_restart() can bring it back (and
 *        osy_test_redis_stop() still cleans up). @returns 0 once it exited.
 */
int osy_test_redis_halt(struct osy_test_redis *r);

#endif /* OSY_TEST_REDIS_RESTART_H */
