/*
 * stack.h - the whole optsync pipeline as real processes, the way it runs
 * in production: the embedded Kafka cluster, a private redis-server, the
 * sandbox in place of ActiveCampaign and Salesforce, and the five workers,
 * each its own process with its own environment. The demo (optsync-demo)
 * and the e2e suite both drive it.
 */
#ifndef OSY_E2E_STACK_H
#define OSY_E2E_STACK_H

#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/types.h>

/** The workers, in the order they start. */
enum e2e_worker {
        E2E_AC_INGEST,
        E2E_SF_INGEST,
        E2E_RULES,
        E2E_SF_WRITER,
        E2E_AC_WRITER,
        E2E_WORKERS
};

/** How to start the stack. Zero fields take the defaults. */
struct e2e_stack_opts {
        const char *tenant;       /**< required: the fixture's tenant */
        const char *fixture_json; /**< required: the sandbox fixture */
        /** optsync's AC calls per second per account (default 5, AC's
         *  documented limit); the fixture sets the sandbox's own. */
        int ac_rate_per_s;
        int partitions; /**< per contract topic (default 6) */
        /** Short consumer-group session timeouts and retry delays, so a
         *  killed worker's partitions move in seconds (the e2e suite). */
        int fast_failover;
        /** Extra "NAME=value" settings for every worker (NULL-ended). */
        const char *const *worker_env;
        /** Extra sandbox command-line arguments (NULL-ended). */
        const char *const *sandbox_args;
        /** Keep the run directory (logs) after e2e_stack_stop(). */
        int keep_dir;
};

/** A running stack. Zero it before e2e_stack_start(). */
struct e2e_stack {
        char dir[256]; /**< run directory: logs, tenants file, spool */
        char tenant[64];
        char bootstrap[256]; /**< Kafka bootstrap servers */
        int kafka_control_port;
        int redis_port;
        int sandbox_port;
        char sandbox_url[64]; /**< "http://127.0.0.1:PORT" */
        int ingest_port;      /**< ac-ingest's webhook receiver */
        int partitions;       /**< per contract topic */
        int admin_port[E2E_WORKERS];
        pid_t pid[E2E_WORKERS]; /**< 0 when not running */
        int restarts[E2E_WORKERS];
        pid_t kafka_pid, redis_pid, sandbox_pid;
        char **worker_envp; /**< the environment every worker gets */
        void *kafka;        /**< private: handles for offsets (stack.c) */
        int keep_dir;
};

/** Counters of a run, from Kafka (messages per topic) and the sandbox. */
struct e2e_totals {
        int64_t ac_events, sf_events;     /**< published by the ingests */
        int64_t sf_commands, ac_commands; /**< published by rules */
        int64_t audit, dlq;               /**< decisions, dead letters */
        int64_t ac_api_calls;             /**< AC API requests served */
        int64_t sf_api_calls;             /**< SF REST + OAuth requests */
        int64_t cometd_calls;             /**< SF CometD requests */
        int64_t http_429;                 /**< answers with status 429 */
        int64_t faults;                   /**< injected faults that hit */
};

/** @returns "ac-ingest", "sf-ingest", "rules", "sf-writer", "ac-writer". */
const char *e2e_worker_name(enum e2e_worker w);

/**
 * @brief Start everything, register ac-ingest's webhook in the sandbox's
 *        AC account (`ac-ingest register`, as an operator would) and wait
 *        until every worker answers /readyz. Child processes get their own
 *        process group (a terminal's Ctrl-C reaches only the caller, which
 *        then stops them in order) and die with the caller if it is
 *        killed.
 * @returns 0; or -1 with the reason in @p err (what started is stopped).
 */
int e2e_stack_start(struct e2e_stack *s, const struct e2e_stack_opts *o,
                    char *err, size_t err_size);

/** @brief SIGTERM the workers (then the servers), SIGKILL what is still
 *         running after its grace, remove the run directory unless kept.
 *         Safe on a zeroed or half-started stack, and twice. */
void e2e_stack_stop(struct e2e_stack *s);

/** @brief Print the last @p bytes of each worker's log to @p out: what a
 *         failed check shows, where the run's directory is gone (CI). */
void e2e_stack_print_log_tails(const struct e2e_stack *s, FILE *out,
                               size_t bytes);

/** @brief SIGKILL one worker and reap it (a crash, no shutdown work). */
void e2e_stack_kill(struct e2e_stack *s, enum e2e_worker w);

/**
 * @brief (Re)start one worker with the stack's environment and wait for
 *        its /readyz. @returns 0 or -1 with @p err.
 */
int e2e_stack_start_worker(struct e2e_stack *s, enum e2e_worker w, char *err,
                           size_t err_size);

/**
 * @brief Wait until the pipeline is idle: the sandbox has no webhook
 *        queued or in flight, every consumer group (rules, sf-writer,
 *        ac-writer) has committed up to the end of its topics, and
 *        nothing new was published for @p quiet_ms.
 * @returns 0 when settled, -1 after @p timeout_ms (reason in @p err).
 */
int e2e_stack_settle(struct e2e_stack *s, int quiet_ms, int timeout_ms,
                     char *err, size_t err_size);

/**
 * @brief One request to the sandbox (method "GET", "POST", "DELETE"),
 *        @p path appended to its URL, @p body JSON or NULL.
 * @param resp if not NULL receives the body (caller frees).
 * @returns the HTTP status, or -1 when no answer came.
 */
int e2e_stack_call(struct e2e_stack *s, const char *method, const char *path,
                   const char *body, char **resp);

/** @brief The tenant's state from the sandbox (GET /sandbox/state?tenant=T;
 *         caller frees), NULL on failure. */
char *e2e_stack_state(struct e2e_stack *s);

/** @brief Fill @p t. @returns 0 or -1. */
int e2e_stack_totals(struct e2e_stack *s, struct e2e_totals *t);

/**
 * @brief Read every message of one topic from the start ("dlq", "audit",
 *        "sf.commands", ...: the suffix after the prefix), calling @p fn
 *        with each value. @returns the number read, or -1.
 */
long e2e_stack_read_topic(struct e2e_stack *s, const char *suffix,
                          void (*fn)(const char *value, size_t len,
                                     void *opaque),
                          void *opaque);

/** @returns the sum of one metric (all label sets) scraped from a worker's
 *           /metrics, or -1 when the worker or the metric is absent. */
double e2e_stack_metric(struct e2e_stack *s, enum e2e_worker w,
                        const char *name);

/**
 * @brief Make the long waits (start, settle) give up, with "interrupted",
 *        once *flag is non-zero: a SIGINT handler sets it.
 */
void e2e_stack_interrupt_on(volatile sig_atomic_t *flag);

/** @returns monotonic milliseconds. */
int64_t e2e_now_ms(void);

/** @brief Sleep @p ms milliseconds (restarts after signals). */
void e2e_sleep_ms(int ms);

#endif /* OSY_E2E_STACK_H */
