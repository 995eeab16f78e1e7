/*
 * ac_writer.h - the ac-writer's handler for the writer runtime: carry out
 * ac.command unsubscribe_all_lists (R4) by unsubscribing the contact from
 * every list it is active on, one POST /contactLists per list, or with bulk
 * import when a backlog builds (confirmed through GET /import/info).
 */
#ifndef OPTSYNC_AC_WRITER_H
#define OPTSYNC_AC_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "optsync/err.h"
#include "optsync/http.h"
#include "optsync/metrics.h"
#include "optsync/ratelimit.h"
#include "optsync/redis.h"
#include "optsync/tenants.h"
#include "optsync/writer.h"

/** Lifetime of the cached email -> AC contact id mapping. */
#define ACW_CONTACT_TTL_MS (24LL * 3600 * 1000)

/** Time one process() call may spend starting calls; the rest waits for
 *  the next turn of the loop (Kafka is polled in between). */
#define ACW_PROCESS_BUDGET_MS 2000

/** Active lists read this recently are used without reading them again
 *  (a command deferred for its turn keeps them). */
#define ACW_LISTS_FRESH_MS 30000

/** Wait after AC refused the API token (403) before trying again. */
#define ACW_AUTH_PAUSE_MS 60000

/** An import still not applied after this long is sent again; one whose
 *  status cannot be read for this long goes list by list. */
#define ACW_IMPORT_GIVE_UP_MS (15LL * 60 * 1000)

/** What the handler needs; pointers are borrowed. */
struct acw_opts {
        const osy_tenants_t *tenants;
        osy_redis_t *redis;       /**< contact cache, rules' state (read) */
        const char *redis_prefix; /**< "optsync" */
        osy_rl_t *rl;             /**< 5 req/s per account ("ac") */
        osy_rl_t *bulk_rl;        /**< imports per minute ("ac-import") */
        int64_t rl_max_wait_ms;   /**< 0: 30 s */
        struct osy_http_opts http;
        size_t bulk_threshold; /**< due commands that switch to bulk; 0 off */
        int64_t bulk_poll_ms;  /**< GET /import/info period; 0: 2 s */
        /** Give-up on an import (see ACW_IMPORT_GIVE_UP_MS, the default
         *  for 0); tests shorten it. */
        int64_t import_give_up_ms;
        /** 1: take the contact id from the rules worker's cached person
         *  state when it has it (read only; never its lists, which hold
         *  the decided state, empty after R4). */
        int use_rules_state;
        osy_metrics_t *metrics; /**< may be NULL */
};

typedef struct acw_s acw_t;

/** @brief Make the handler. */
osy_err_t acw_new(acw_t **ap, const struct acw_opts *opts, char *errstr,
                  size_t errstr_size) OSY_MUSTCHECK;

/** @brief Tell the handler its runtime (for audit records). */
void acw_set_writer(acw_t *a, osy_writer_t *w);

/** @returns the callbacks for osy_writer_opts.handler. */
struct osy_writer_handler acw_handler(acw_t *a);

/** Counters for tests and the benchmark. */
struct acw_stats {
        uint64_t calls;        /**< AC calls made (reads and writes) */
        uint64_t lookups;      /**< GET /contacts?email= */
        uint64_t list_reads;   /**< GET /contacts/{id}/contactLists */
        uint64_t unsubscribes; /**< POST /contactLists */
        uint64_t imports;      /**< POST /import/bulk_import */
        uint64_t import_polls; /**< GET /import/info */
        uint64_t state_hits;   /**< contact ids taken from the rules' state */
};

void acw_get_stats(const acw_t *a, struct acw_stats *out);

/** @brief Free the handler. NULL-safe. */
void acw_destroy(acw_t *a);

#endif /* OPTSYNC_AC_WRITER_H */
