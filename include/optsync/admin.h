/*
 * admin.h - the admin HTTP server every worker runs: /healthz (liveness),
 * /readyz (readiness) and /metrics (Prometheus), on libmicrohttpd.
 */
#ifndef OPTSYNC_ADMIN_H
#define OPTSYNC_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "optsync/err.h"
#include "optsync/metrics.h"

/** Content-Type of /metrics (Prometheus text format 0.0.4). */
#define OSY_ADMIN_METRICS_CONTENT_TYPE "text/plain; version=0.0.4"

/** Default bind address: the admin port is not for the outside world. */
#define OSY_ADMIN_DEFAULT_ADDR "127.0.0.1"

/**
 * @brief A health check. Runs on the server's own thread, so it must only
 *        read thread-safe state (atomics, a lock it takes briefly).
 * @param reason a buffer for a short explanation shown in the body.
 * @returns 1 when healthy / ready, 0 when not.
 */
typedef int(osy_admin_check_fn)(void *opaque, char *reason, size_t reason_size);

/** Clock for the heartbeat check: monotonic milliseconds. */
typedef int64_t(osy_admin_clock_fn)(void);

/** Options a caller fills; zero fields take the defaults. */
struct osy_admin_opts {
        const char *bind_addr;  /**< IPv4 or IPv6 literal; NULL: 127.0.0.1 */
        int port;               /**< 0: any free port (see osy_admin_port) */
        osy_metrics_t *metrics; /**< rendered at /metrics; may be NULL */
        /** /readyz: NULL means always ready. */
        osy_admin_check_fn *ready_cb;
        void *ready_opaque;
        /** /healthz: an extra liveness check; NULL for none. */
        osy_admin_check_fn *live_cb;
        void *live_opaque;
        /** /healthz turns 503 when osy_admin_heartbeat() was last called
         *  longer ago than this (the main loop is stuck); 0: no check. */
        int64_t heartbeat_timeout_ms;
        /** Clock for the heartbeat check; NULL: CLOCK_MONOTONIC. */
        osy_admin_clock_fn *clock_ms;
};

typedef struct osy_admin_s osy_admin_t;

/**
 * @brief Start serving on a thread of its own.
 * @param opts copied; the callbacks, their opaques and the registry must
 *             outlive the server.
 * @returns OSY_OK and *ap (stop it with osy_admin_stop()); OSY_ERR_INVALID
 *          for a bad address or port; OSY_ERR_TRANSIENT when the port
 *          cannot be bound.
 */
osy_err_t osy_admin_start(osy_admin_t **ap, const struct osy_admin_opts *opts,
                          char *errstr, size_t errstr_size) OSY_MUSTCHECK;

/** @returns the bound TCP port (the picked one when opts.port was 0). */
int osy_admin_port(const osy_admin_t *a);

/**
 * @brief Tell the server the main loop is alive. Call it every loop turn.
 * @param now_ms the same clock as opts.clock_ms (monotonic ms by default).
 *        Lock-free and safe from any thread.
 */
void osy_admin_heartbeat(osy_admin_t *a, int64_t now_ms);

/** @returns monotonic milliseconds (the default heartbeat clock). */
int64_t osy_admin_now_ms(void);

/** @brief Stop serving (waits for the server thread) and free. NULL-safe. */
void osy_admin_stop(osy_admin_t *a);

#endif /* OPTSYNC_ADMIN_H */
