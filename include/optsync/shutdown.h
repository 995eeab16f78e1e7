/*
 * shutdown.h - graceful shutdown: SIGTERM/SIGINT set a flag and wake any
 * poll() loop through a self-pipe; the worker then drains in-flight work,
 * commits, leaves its group and exits 0 within the grace period.
 */
#ifndef OPTSYNC_SHUTDOWN_H
#define OPTSYNC_SHUTDOWN_H

#include "optsync/err.h"

/**
 * @brief Install the SIGTERM and SIGINT handlers (and ignore SIGPIPE, so a
 *        peer closing a socket is an error return, not a death).
 *
 * A second SIGINT while shutting down exits at once with status 130, for
 * a person pressing Ctrl-C twice; a second SIGTERM is ignored (Kubernetes
 * sends SIGKILL when the grace period ends anyway).
 */
osy_err_t osy_shutdown_install(char *errstr, size_t errstr_size);

/** @returns 1 once a shutdown was requested (signal or call), else 0. */
int osy_shutdown_requested(void);

/** @returns the signal that asked for the shutdown, or 0. */
int osy_shutdown_signal(void);

/**
 * @returns a file descriptor that becomes readable when a shutdown is
 *          requested, for poll()/select() loops; -1 before install.
 */
int osy_shutdown_fd(void);

/** @brief Ask for a shutdown from code (fatal error, tests). */
void osy_shutdown_request(void);

/**
 * @brief Sleep until a shutdown is requested or @p timeout_ms passes
 *        (-1: no limit). @returns 1 if a shutdown was requested.
 */
int osy_shutdown_wait(int timeout_ms);

/** @brief Forget a past request (tests that run several shutdowns). */
void osy_shutdown_reset(void);

#endif /* OPTSYNC_SHUTDOWN_H */
