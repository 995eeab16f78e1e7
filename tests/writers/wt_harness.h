/*
 * wt_harness.h - shared by the writers' integration tests (header-only,
 * static inline): redis-server and the sandbox, the writer runtime with a
 * handler (sf-writer or ac-writer) in-process, commands fed directly,
 * audit/DLQ records captured, sandbox state and request log read back.
 */
#ifndef OSY_WT_HARNESS_H
#define OSY_WT_HARNESS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ac_writer.h"
#include "optsync/envelope.h"
#include "optsync/log.h"
#include "optsync/ratelimit.h"
#include "optsync/redis.h"
#include "optsync/tenants.h"
#include "optsync/writer.h"
#include "osy_test.h"
#include "osy_test_sandbox.h"
#include "sf_writer.h"

#define WT_TENANT "t1"
#define WT_MAX_OUT 8192

struct wt_out {
        char topic[32];
        char *value;
};

/** Everything one test runs against. */
struct wt {
        struct osy_test_redis r;
        struct osy_test_sandbox sb;
        osy_redis_t *redis;
        osy_tenants_t *tenants;
        osy_metrics_t *metrics;
        osy_rl_t *rl, *bulk_rl;
        sfw_t *sfw;
        acw_t *acw;
        osy_writer_t *w;
        struct osy_writer_opts wo; /* what the next runtime gets */
        struct sfw_opts so;
        struct acw_opts ao;
        struct wt_out out[WT_MAX_OUT];
        int n_out;
        int64_t next_offset;
};

static inline osy_err_t wt_emit(void *opaque, const char *topic,
                                const void *key, size_t keylen,
                                const void *value, size_t len,
                                osy_kafka_dr_cb *cb, void *cb_opaque)
{
        struct wt *t = opaque;
        (void)key;
        (void)keylen;
        if (t->n_out < WT_MAX_OUT) {
                snprintf(t->out[t->n_out].topic, sizeof(t->out[0].topic), "%s",
                         topic);
                t->out[t->n_out++].value = strndup(value, len);
        }
        cb(cb_opaque, OSY_OK, "", 0, t->n_out);
        return OSY_OK;
}

/**
 * Starts redis-server and the sandbox (with @p fixture and the extra
 * sandbox arguments @p sb_args), writes the tenant t1 (AC and SF at the
 * sandbox), and fills default options for both handlers.
 */
static inline int wt_start(struct wt *t, const char *fixture,
                           const char *const *sb_args)
{
        char tj[2048], e[OSY_ERRSTR_SIZE];
        struct osy_redis_opts ro = {0};

        memset(t, 0, sizeof(*t));
        osy_log_init("writers-test", OSY_LOG_WARN, NULL);
        if (osy_test_redis_start(&t->r) ||
            osy_test_sandbox_start(&t->sb, fixture, sb_args))
                return -1;
        ro.host = "127.0.0.1";
        ro.port = t->r.port;
        if (osy_redis_connect(&t->redis, &ro, e, sizeof(e)))
                return -1;
        snprintf(tj, sizeof(tj),
                 "{\"tenants\":[{\"id\":\"" WT_TENANT "\","
                 "\"ac\":{\"base_url\":\"%s/ac/" WT_TENANT "\","
                 "\"api_token\":\"sandbox-ac-token\"},"
                 "\"sf\":{\"login_url\":\"%s/sf/" WT_TENANT "\","
                 "\"api_version\":\"59.0\",\"auth\":\"client_credentials\","
                 "\"client_id\":\"sandbox-client-id\","
                 "\"client_secret\":\"sandbox-client-secret\"}}]}",
                 t->sb.base_url, t->sb.base_url);
        if (osy_tenants_parse(&t->tenants, tj, strlen(tj), e, sizeof(e)))
                return -1;
        t->metrics = osy_metrics_new();

        t->wo.audit_topic              = "optsync.audit";
        t->wo.dlq_topic                = "optsync.dlq";
        t->wo.emit                     = wt_emit;
        t->wo.emit_opaque              = t;
        t->wo.redis                    = t->redis;
        t->wo.redis_prefix             = "wt";
        t->wo.retry.base_ms            = 50;
        t->wo.retry.max_delay_ms       = 400;
        t->wo.retry.max_attempts       = 6;
        t->wo.retry.max_age_ms         = 60000;
        t->wo.retry.retry_after_cap_ms = 2000;
        t->wo.batch_max                = 1000;
        t->wo.linger_ms                = 20;
        t->wo.metrics                  = t->metrics;

        t->so.tenants         = t->tenants;
        t->so.redis           = t->redis;
        t->so.redis_prefix    = "wt";
        t->so.cache_ttl_ms    = 3600 * 1000;
        t->so.http.timeout_ms = 3000;
        t->so.reserve_pct     = 20;
        t->so.probe_ms        = 1000;
        t->so.metrics         = t->metrics;
        t->so.auth_pause_ms   = 500;

        t->ao.tenants         = t->tenants;
        t->ao.redis           = t->redis;
        t->ao.redis_prefix    = "wt";
        t->ao.http.timeout_ms = 3000;
        t->ao.bulk_poll_ms    = 300;
        t->ao.use_rules_state = 1;
        t->ao.metrics         = t->metrics;
        return 0;
}

/** Makes the shared limiter ("sf" or "ac" bucket) at @p rate per second
 *  with @p burst, plus AC's import-per-minute limiter. */
static inline void wt_limiters(struct wt *t, int64_t rate, int64_t burst)
{
        char e[OSY_ERRSTR_SIZE];
        struct osy_rl_opts o = {
            .prefix = "wt", .rate = rate, .period_ms = 1000, .burst = burst};
        struct osy_rl_opts b = {
            .prefix = "wt", .rate = 100, .period_ms = 60000, .burst = 1};
        assert_int_equal(osy_rl_new(&t->rl, t->redis, &o, e, sizeof(e)),
                         OSY_OK);
        assert_int_equal(osy_rl_new(&t->bulk_rl, t->redis, &b, e, sizeof(e)),
                         OSY_OK);
}

/** Starts an in-process sf-writer (handler + runtime) with t->so/t->wo. */
static inline void wt_sf_writer(struct wt *t)
{
        char e[OSY_ERRSTR_SIZE];
        if (t->rl)
                t->so.rl = t->rl;
        assert_int_equal(sfw_new(&t->sfw, &t->so, e, sizeof(e)), OSY_OK);
        t->wo.stage    = OSY_STAGE_SF_WRITER;
        t->wo.source   = OSY_SRC_SF_WRITER;
        t->wo.cmd_type = OSY_MSG_SF_COMMAND;
        t->wo.name     = "sf-writer";
        t->wo.handler  = sfw_handler(t->sfw);
        assert_int_equal(osy_writer_new(&t->w, &t->wo, e, sizeof(e)), OSY_OK);
        sfw_set_writer(t->sfw, t->w);
}

/** Starts an in-process ac-writer with t->ao/t->wo. */
static inline void wt_ac_writer(struct wt *t)
{
        char e[OSY_ERRSTR_SIZE];
        t->ao.rl      = t->rl;
        t->ao.bulk_rl = t->bulk_rl;
        assert_int_equal(acw_new(&t->acw, &t->ao, e, sizeof(e)), OSY_OK);
        t->wo.stage    = OSY_STAGE_AC_WRITER;
        t->wo.source   = OSY_SRC_AC_WRITER;
        t->wo.cmd_type = OSY_MSG_AC_COMMAND;
        t->wo.name     = "ac-writer";
        t->wo.handler  = acw_handler(t->acw);
        assert_int_equal(osy_writer_new(&t->w, &t->wo, e, sizeof(e)), OSY_OK);
        acw_set_writer(t->acw, t->w);
}

static inline void wt_stop(struct wt *t)
{
        osy_writer_destroy(t->w);
        sfw_destroy(t->sfw);
        acw_destroy(t->acw);
        osy_rl_destroy(t->rl);
        osy_rl_destroy(t->bulk_rl);
        osy_redis_destroy(t->redis);
        osy_tenants_destroy(t->tenants);
        osy_metrics_destroy(t->metrics);
        for (int i = 0; i < t->n_out; i++)
                free(t->out[i].value);
        osy_test_sandbox_stop(&t->sb);
        osy_test_redis_stop(&t->r);
}

static inline int64_t wt_wall_ms(void)
{
        return osy_rl_now_ms();
}

/** Encodes a command of the type the runtime takes, for @p email. */
static inline char *wt_command(struct wt *t, const char *email, int opt_out,
                               int64_t ver_ms, const char *contact_hint)
{
        struct osy_msg m;
        char e[OSY_ERRSTR_SIZE], *json = NULL, tie[40];
        size_t len;

        osy_msg_init(&m, t->wo.cmd_type);
        assert_int_equal(osy_msg_set_envelope(&m, WT_TENANT, email,
                                              OSY_SRC_RULES, ver_ms, e,
                                              sizeof(e)),
                         OSY_OK);
        snprintf(tie, sizeof(tie), "%032llx", (unsigned long long)ver_ms);
        if (t->wo.cmd_type == OSY_MSG_SF_COMMAND) {
                m.sf_command.has_opted_out_of_email = opt_out;
                m.sf_command.rule = opt_out ? OSY_RULE_R2 : OSY_RULE_R1;
                memcpy(m.sf_command.cause_event_id, tie, OSY_ID_BUFSZ);
                m.sf_command.version.ms = ver_ms;
                assert_int_equal(osy_msg_strset(&m.sf_command.version.tie, tie),
                                 OSY_OK);
        } else {
                m.ac_command.action = OSY_AC_UNSUBSCRIBE_ALL_LISTS;
                m.ac_command.rule   = OSY_RULE_R4;
                memcpy(m.ac_command.cause_event_id, tie, OSY_ID_BUFSZ);
                m.ac_command.version.ms = ver_ms;
                assert_int_equal(osy_msg_strset(&m.ac_command.version.tie, tie),
                                 OSY_OK);
                if (contact_hint)
                        assert_int_equal(
                            osy_msg_strset(&m.ac_command.contact_id,
                                           contact_hint),
                            OSY_OK);
        }
        assert_int_equal(osy_msg_encode(&m, &json, &len, e, sizeof(e)), OSY_OK);
        osy_msg_clear(&m);
        return json;
}

/** Feeds one command (partition 0, the next offset). */
static inline void wt_feed(struct wt *t, const char *email, int opt_out,
                           int64_t ver_ms, const char *contact_hint)
{
        char *json = wt_command(t, email, opt_out, ver_ms, contact_hint);
        assert_int_equal(osy_writer_feed(t->w, "optsync.cmd", 0,
                                         t->next_offset++, "k", 1, json,
                                         strlen(json), wt_wall_ms()),
                         OSY_OK);
        free(json);
}

/** Steps the runtime on the real clock until nothing is held (returns 0)
 *  or @p timeout_ms passes (-1). */
static inline int wt_drain(struct wt *t, int timeout_ms)
{
        int64_t end = osy_test_now_ms() + timeout_ms;
        struct osy_writer_stats st;

        for (;;) {
                assert_int_equal(osy_writer_step(t->w, wt_wall_ms(), 0),
                                 OSY_OK);
                osy_writer_get_stats(t->w, &st);
                if (!st.pending)
                        return 0;
                if (osy_test_now_ms() > end)
                        return -1;
                int64_t wait = osy_writer_next_wait(t->w, wt_wall_ms(), 50);
                osy_test_sleep_ms(wait > 0 ? (int)wait : 1);
        }
}

/** One sandbox call; @returns the body (caller frees). */
static inline char *wt_call(struct wt *t, const char *method, const char *path,
                            const char *body, int *status)
{
        char *out = NULL;
        int st = osy_test_sandbox_call(&t->sb, method, path, NULL, body, &out);
        if (status)
                *status = st;
        return out;
}

/** POSTs a control or fault rule; asserts it was accepted. */
static inline void wt_post(struct wt *t, const char *path, const char *body)
{
        int st;
        char *out = wt_call(t, "POST", path, body, &st);
        if (st < 200 || st >= 300)
                fail_msg("POST %s -> %d %s", path, st, out ? out : "");
        free(out);
}

/** @returns the tenant's state (caller deletes). */
static inline cJSON *wt_state(struct wt *t)
{
        char *body =
            wt_call(t, "GET", "/sandbox/state?tenant=" WT_TENANT, NULL, NULL);
        cJSON *j = cJSON_Parse(body ? body : "");
        free(body);
        assert_non_null(j);
        return j;
}

/** @returns HasOptedOutOfEmail of SF record @p id (1/0), -1 if absent. */
static inline int wt_sf_optout(struct wt *t, const char *id)
{
        cJSON *j            = wt_state(t);
        const cJSON *sf     = cJSON_GetObjectItem(j, "sf"), *r;
        int v               = -1;
        const char *lists[] = {"contacts", "leads"};
        for (int k = 0; k < 2; k++)
                cJSON_ArrayForEach(r, cJSON_GetObjectItem(sf, lists[k]))
                {
                        const cJSON *rid = cJSON_GetObjectItem(r, "Id");
                        if (cJSON_IsString(rid) &&
                            !strcmp(rid->valuestring, id))
                                v = cJSON_IsTrue(cJSON_GetObjectItem(
                                    r, "HasOptedOutOfEmail"));
                }
        cJSON_Delete(j);
        return v;
}

/** @returns the id of the SF record whose LastName is @p name (static
 *  buffer), or "" when none. */
static inline const char *wt_sf_id(struct wt *t, const char *name)
{
        static char id[32];
        cJSON *j            = wt_state(t);
        const cJSON *sf     = cJSON_GetObjectItem(j, "sf"), *r;
        const char *lists[] = {"contacts", "leads"};
        id[0]               = '\0';
        for (int k = 0; k < 2; k++)
                cJSON_ArrayForEach(r, cJSON_GetObjectItem(sf, lists[k]))
                {
                        const cJSON *ln = cJSON_GetObjectItem(r, "LastName");
                        const cJSON *ri = cJSON_GetObjectItem(r, "Id");
                        if (cJSON_IsString(ln) &&
                            !strcmp(ln->valuestring, name))
                                snprintf(id, sizeof(id), "%s", ri->valuestring);
                }
        cJSON_Delete(j);
        return id;
}

/** @returns the AC status of contact @p cid on @p list, -1 if none. */
static inline int wt_ac_status(struct wt *t, const char *cid, const char *list)
{
        cJSON *j = wt_state(t);
        const cJSON *c;
        int v = -1;
        cJSON_ArrayForEach(
            c, cJSON_GetObjectItem(cJSON_GetObjectItem(j, "ac"), "contacts"))
        {
                const cJSON *id = cJSON_GetObjectItem(c, "id");
                if (!cJSON_IsString(id) || strcmp(id->valuestring, cid))
                        continue;
                const cJSON *s =
                    cJSON_GetObjectItem(cJSON_GetObjectItem(c, "lists"), list);
                if (cJSON_IsNumber(s))
                        v = s->valueint;
        }
        cJSON_Delete(j);
        return v;
}

/**
 * @returns how many logged requests match: @p endpoint (fnmatch pattern of
 *          the sandbox's endpoint class, NULL any), @p method (NULL any),
 *          @p status (0 any), @p url_needle (NULL any).
 */
static inline int wt_requests(struct wt *t, const char *endpoint,
                              const char *method, int status,
                              const char *url_needle)
{
        char path[256];
        char *body;
        cJSON *j;
        const cJSON *r;
        int n = 0;

        snprintf(path, sizeof(path), "/sandbox/requests?limit=100000%s%s",
                 endpoint ? "&endpoint=" : "", endpoint ? endpoint : "");
        body = wt_call(t, "GET", path, NULL, NULL);
        j    = cJSON_Parse(body ? body : "");
        free(body);
        cJSON_ArrayForEach(r, cJSON_GetObjectItem(j, "requests"))
        {
                const cJSON *m = cJSON_GetObjectItem(r, "method");
                const cJSON *s = cJSON_GetObjectItem(r, "status");
                const cJSON *u = cJSON_GetObjectItem(r, "url");
                if (method &&
                    (!cJSON_IsString(m) || strcmp(m->valuestring, method)))
                        continue;
                if (status && (!cJSON_IsNumber(s) || s->valueint != status))
                        continue;
                if (url_needle &&
                    (!cJSON_IsString(u) || !strstr(u->valuestring, url_needle)))
                        continue;
                n++;
        }
        cJSON_Delete(j);
        return n;
}

/** @returns captured records on @p topic containing @p needle (NULL: all). */
static inline int wt_count_out(const struct wt *t, const char *topic,
                               const char *needle)
{
        int n = 0;
        for (int i = 0; i < t->n_out; i++)
                if (!strcmp(t->out[i].topic, topic) &&
                    (!needle || strstr(t->out[i].value, needle)))
                        n++;
        return n;
}

/** @returns the last captured record on @p topic, or NULL. */
static inline const char *wt_last_out(const struct wt *t, const char *topic)
{
        for (int i = t->n_out - 1; i >= 0; i--)
                if (!strcmp(t->out[i].topic, topic))
                        return t->out[i].value;
        return NULL;
}

#endif /* OSY_WT_HARNESS_H */
