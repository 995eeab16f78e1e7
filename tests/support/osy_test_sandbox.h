/*
 * osy_test_sandbox.h - start and stop the sandbox (optsync-sandbox) as a
 * process from a test, and make quick calls to it over real HTTP.
 */
#ifndef OSY_TEST_SANDBOX_H
#define OSY_TEST_SANDBOX_H

#include <sys/types.h>

/** A running sandbox and where to reach it. */
struct osy_test_sandbox {
        pid_t pid;
        char *dir; /**< private dir: fixture.json, port, sandbox.log */
        int port;
        char base_url[64]; /**< "http://127.0.0.1:PORT" */
};

/**
 * @brief Start optsync-sandbox on a free loopback port and wait until it
 *        listens.
 * @param fixture_json NULL for none; else JSON text written to a file and
 *        passed with --fixture.
 * @param extra_args NULL-terminated extra command-line arguments, or NULL.
 * @returns 0 when ready; -1 otherwise (the log is copied to stderr and the
 *          struct cleaned up).
 */
int osy_test_sandbox_start(struct osy_test_sandbox *s, const char *fixture_json,
                           const char *const *extra_args);

/** @brief SIGTERM (SIGKILL after 5 s), remove the directory. Asserts
 *         nothing; safe on a zeroed or stopped struct. */
void osy_test_sandbox_stop(struct osy_test_sandbox *s);

/**
 * @brief Like osy_test_sandbox_stop(), but
 * @returns the waitpid() status of the process (-1 if none was running),
 *          and how long the stop took in *took_ms (may be NULL).
 */
int osy_test_sandbox_stop_status(struct osy_test_sandbox *s, long *took_ms);

/**
 * @brief One request to the sandbox (10 s timeout).
 * @param method "GET", "POST", "PUT", "PATCH" or "DELETE".
 * @param path appended to base_url, e.g. "/sandbox/state?tenant=t1".
 * @param headers NULL-terminated "Name: value" lines, or NULL.
 * @param body NUL-terminated request body, or NULL.
 * @param resp_body if not NULL, receives a copy of the response body
 *        (caller frees; NULL on failure).
 * @returns the HTTP status, or -1 when no answer came.
 */
int osy_test_sandbox_call(struct osy_test_sandbox *s, const char *method,
                          const char *path, const char *const *headers,
                          const char *body, char **resp_body);

#endif /* OSY_TEST_SANDBOX_H */
