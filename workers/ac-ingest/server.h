/*
 * server.h - ac-ingest's webhook receiver on libmicrohttpd: one route per
 * tenant, POST /webhooks/ac/<tenant>/<token>, answered only once the
 * pipeline has the events (Kafka or spool).
 */
#ifndef OSY_INGEST_SERVER_H
#define OSY_INGEST_SERVER_H

#include <stddef.h>

#include "pipeline.h"
#include "optsync/err.h"
#include "optsync/metrics.h"

/** Path prefix of every tenant route. */
#define OSY_INGEST_ROUTE_PREFIX "/webhooks/ac/"

/** One tenant's route. Copied by osy_ingest_server_start() (the token
 *  only as its SHA-256). */
struct osy_ingest_route {
        const char *tenant;
        const char *token; /**< secret; NULL or "": the route is off (404) */
};

/** Options a caller fills; zero fields take the defaults. */
struct osy_ingest_server_opts {
        const char *bind_addr;    /**< IPv4/IPv6 literal; NULL: 0.0.0.0 */
        int port;                 /**< 0: any free port */
        unsigned threads;         /**< epoll threads; 0: 2 */
        unsigned max_connections; /**< 0: 4096 */
        size_t max_body;          /**< 0: 262144; larger bodies get 413 */
        const struct osy_ingest_route *routes;
        size_t n_routes;
        osy_pipe_t *pipe;       /**< required; must outlive the server */
        osy_metrics_t *metrics; /**< may be NULL */
};

typedef struct osy_ingest_server_s osy_ingest_server_t;

/**
 * @brief Start listening (threads of its own).
 * @returns OSY_OK and *sp (stop with osy_ingest_server_stop());
 *          OSY_ERR_INVALID (bad address, tenant); OSY_ERR_TRANSIENT
 *          (cannot bind); OSY_ERR_NOMEM.
 */
osy_err_t osy_ingest_server_start(osy_ingest_server_t **sp,
                                  const struct osy_ingest_server_opts *opts,
                                  char *errstr,
                                  size_t errstr_size) OSY_MUSTCHECK;

/** @returns the bound port (the chosen one when opts.port was 0). */
int osy_ingest_server_port(const osy_ingest_server_t *s);

/**
 * @brief Stop accepting connections; open ones are still served (call
 *        before draining the pipeline at shutdown).
 */
void osy_ingest_server_quiesce(osy_ingest_server_t *s);

/**
 * @brief Wait until every webhook handed to the pipeline has had its
 *        answer sent (MHD reports the request complete), at most
 *        @p timeout_ms.
 * @returns the number still unanswered (0: idle).
 */
int osy_ingest_server_wait_idle(osy_ingest_server_t *s, int timeout_ms);

/**
 * @brief Stop serving and free. Every request must have its answer (the
 *        pipeline drained or destroyed) first. NULL-safe.
 */
void osy_ingest_server_stop(osy_ingest_server_t *s);

#endif /* OSY_INGEST_SERVER_H */
