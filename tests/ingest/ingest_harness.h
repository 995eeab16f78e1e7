/*
 * ingest_harness.h - for ac-ingest's integration tests: run the real
 * ac-ingest binary against the embedded Kafka, post webhooks with
 * libcurl, read what landed on the topic.
 */
#ifndef OSY_INGEST_HARNESS_H
#define OSY_INGEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/** A running ac-ingest process and its private files. */
struct ingest_proc {
        pid_t pid;
        char dir[512];   /* private: tenants.json, ingest.log */
        char spool[600]; /* spool directory (kept across restarts) */
        char log[600];
        char tenant[32];   /* the tenant with a route */
        char token[64];    /* its webhook token */
        char ac_base[256]; /* its ac.base_url; "" for a dummy one */
        int port;          /* webhook port */
        int admin_port;
};

/**
 * @brief Start ac-ingest for tenant @p tenant (token "tok-<tenant>-s3cret",
 *        plus "<tenant>-off" without a token) on free ports.
 * @param p      zeroed, or holding a previous run whose spool to reuse
 *               (p->spool set, p->dir kept).
 * @param env    NULL-terminated extra "OPTSYNC_X=v" settings, or NULL.
 * @returns 0 once the ports are known.
 */
int ingest_start(struct ingest_proc *p, const char *bootstrap,
                 const char *tenant, const char *const *env);

/**
 * @brief Run `ac-ingest register ARGS...` for @p p's tenants file with
 *        OPTSYNC_INGEST_PUBLIC_URL=@p public_url.
 * @param out receives its stdout and stderr (caller frees).
 * @returns the exit code, or -1.
 */
int ingest_register(const struct ingest_proc *p, const char *public_url,
                    const char *const *args, char **out);

/** @brief SIGTERM (SIGKILL after @p grace_ms). @returns the wait status. */
int ingest_stop(struct ingest_proc *p, int grace_ms);

/** @brief SIGKILL now and reap. */
void ingest_kill9(struct ingest_proc *p);

/** @brief Remove the private directory (after the last stop). */
void ingest_cleanup(struct ingest_proc *p);

/** One HTTP exchange. */
struct http_reply {
        long status; /* 0: no answer (connection failed) */
        char *body;  /* NUL-terminated, caller frees */
};

/**
 * @brief One request with libcurl. @p content_type NULL: none sent;
 *        @p chunked: send the body with Transfer-Encoding: chunked.
 */
void http_call(const char *method, const char *url, const char *content_type,
               const char *body, size_t len, int chunked, struct http_reply *r);

/** @brief POST a form body to the process's tenant route. */
void ingest_post(const struct ingest_proc *p, const char *body,
                 struct http_reply *r);

/** @brief GET http://127.0.0.1:<admin_port><path>. */
void admin_get(const struct ingest_proc *p, const char *path,
               struct http_reply *r);

/** @returns the value of a Prometheus sample line starting with @p series
 *           (exact series text incl. labels), or -1 if absent. */
double metric_value(const char *metrics, const char *series);

/** A record read back from the topic. */
struct rec {
        char key[320];
        char *value; /* NUL-terminated */
        size_t len;
        int32_t partition;
        int64_t offset;
        char id[33]; /* "id" of the envelope */
};

/**
 * @brief Read optsync.ac.events from the beginning (every partition) and
 *        keep the records whose key starts with "<tenant>|". Returns once
 *        @p want are kept and nothing new came for @p quiet_ms, or at
 *        @p timeout_ms. Records are in partition, then offset order.
 * @returns the number kept (<= max); the caller frees with recs_free.
 */
size_t consume_tenant(const char *bootstrap, const char *tenant, size_t want,
                      int quiet_ms, int timeout_ms, struct rec *out,
                      size_t max);

void recs_free(struct rec *r, size_t n);

/** @returns the "ids":[...] of a 200 body, up to @p max, into @p ids. */
size_t reply_ids(const char *body, char ids[][33], size_t max);

/** Partitions of every contract topic in these tests. */
#define INGEST_TEST_PARTITIONS 3

#endif /* OSY_INGEST_HARNESS_H */
