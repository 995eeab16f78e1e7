/*
 * osy_test.h - shared by every test binary: the cmocka main that runs one
 * named case (CTest registers each case separately) and helpers that start
 * and stop real server processes on loopback.
 */
#ifndef OSY_TEST_H
#define OSY_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

/*
 * main() for a test binary: "binary" runs every case, "binary NAME" only
 * the case NAME (the way CTest calls it).
 */
#define OSY_TEST_MAIN(tests, setup, teardown)                                  \
        int main(int argc, char **argv)                                        \
        {                                                                      \
                if (argc > 1)                                                  \
                        cmocka_set_test_filter(argv[1]);                       \
                return cmocka_run_group_tests(tests, setup, teardown);         \
        }

/** @returns a fresh private directory under $TMPDIR (caller frees). */
char *osy_test_mkdtemp(const char *tag);

/** @brief rm -rf @p dir (best effort). */
void osy_test_rmtree(const char *dir);

/**
 * @brief Start a process; stdout/stderr go to @p log_path (or inherit if
 *        NULL). @returns its pid, or -1.
 */
pid_t osy_test_spawn(char *const argv[], const char *log_path);

/** @brief SIGTERM, wait up to @p grace_ms, then SIGKILL. @returns exit status
 *         as from waitpid, or -1. */
int osy_test_stop(pid_t pid, int grace_ms);

/** @brief Wait until @p path exists and is non-empty (or @p timeout_ms).
 *         @returns 0 when it does. */
int osy_test_wait_file(const char *path, int timeout_ms);

/** @brief Read a whole small file into a NUL-terminated string (caller
 *         frees), trailing newline stripped. NULL if absent. */
char *osy_test_read_file(const char *path);

/** @returns monotonic milliseconds. */
int64_t osy_test_now_ms(void);

/** @brief Sleep @p ms milliseconds. */
void osy_test_sleep_ms(int ms);

/* ---- Redis -------------------------------------------------------------- */

/** A redis-server started by scripts/redis-start.sh in a private dir. */
struct osy_test_redis {
        char *dir;
        int port;
};

/** @brief Start redis-server on a free port. @returns 0 on success. */
int osy_test_redis_start(struct osy_test_redis *r);

/** @brief Stop it and remove its directory. Safe on a zeroed struct. */
void osy_test_redis_stop(struct osy_test_redis *r);

#endif /* OSY_TEST_H */
