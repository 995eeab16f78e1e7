/*
 * sf_writer.c - the sf-writer handler: resolve people to their Contacts and
 * unconverted Leads (Redis cache, else batched SOQL), write the newest
 * desired HasOptedOutOfEmail with sObject Collections (200 per call),
 * follow converted Leads, and stay inside the org's daily allowance.
 */
#include "sf_writer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "optsync/log.h"
#include "optsync/sf_auth.h"
#include "optsync/shutdown.h"

/* ---- state --------------------------------------------------------------- */

struct sfw_tenant {
        char *id;
        const struct osy_tenant *conf;
        osy_sf_auth_t *auth;
        osy_http_client_t *http;
        struct sfw_quota quota;
        int64_t auth_paused_until; /* token endpoint refused us */
        int64_t auth_backoff_ms;
        osy_series_t *m_quota;
        struct sfw_tenant *next;
};

struct sfw_s {
        struct sfw_opts o;
        char *prefix;
        osy_writer_t *w;
        struct sfw_tenant *tenants;
        struct sfw_stats st;
        uint64_t call_seq;
        osy_metric_t *m_calls, *m_quota;
        osy_series_t *m_records, *m_wait;
};

/* What one command has done so far (the item's priv). */
enum rstate {
        R_PENDING = 0,
        R_DONE,
        R_FAILED,
        R_CONVERTED
};

struct sfw_item {
        int resolved;
        int reresolved; /* resolved again after a record vanished */
        struct sfw_rec *recs;
        unsigned char *rs; /* enum rstate per record */
        size_t n;
        char failed[OSY_WRITER_TEXT_MAX]; /* permanent failures so far */
        /* per process() call */
        int retry, defer, follow, gone, unresolvable;
        osy_err_t err;
        int64_t retry_after_ms, defer_until;
        char text[OSY_WRITER_TEXT_MAX];
};

/* The runtime frees a command's state with this (the free_priv hook). */
static void item_state_free(void *opaque, void *priv)
{
        struct sfw_item *si = priv;
        (void)opaque;
        if (!si)
                return;
        free(si->recs);
        free(si->rs);
        free(si);
}

/* Gives a command its records (taking @p recs), all still to write. */
static void si_set_recs(struct sfw_item *si, struct sfw_rec *recs, size_t n)
{
        free(si->recs);
        free(si->rs);
        si->recs     = recs;
        si->n        = n;
        si->rs       = calloc(n ? n : 1, 1);
        si->resolved = si->rs != NULL;
}

/* ---- metrics
 * ----------------------------------------------------------------- */

static void count_call(sfw_t *s, const char *endpoint, int status,
                       osy_err_t err)
{
        char st[16];
        const char *v[] = {"sf-writer", "sf", endpoint, st};

        if (err)
                snprintf(st, sizeof(st), "%s", osy_err2str(err));
        else
                snprintf(st, sizeof(st), "%d", status);
        osy_counter_inc(osy_metric_series(s->m_calls, v));
        s->st.calls++;
}

/* Calls by endpoint and status, records per call, limiter waits and the
 * quota gauge. The families are shared with ac-writer by name. */
static osy_err_t metrics_init(sfw_t *s, char *errstr, size_t size)
{
        static const char *const calls_l[]  = {"worker", "api", "endpoint",
                                               "status", NULL};
        static const char *const worker_l[] = {"worker", NULL};
        static const char *const wait_l[]   = {"worker", "api", NULL};
        static const char *const quota_l[]  = {"tenant", NULL};
        static const double rec_b[]         = {1, 10, 25, 50, 100, 150, 200};
        static const double wait_b[]        = {0.001, 0.01, 0.05, 0.1, 0.25,
                                               0.5,   1,    2,    5,   10};
        osy_metric_t *m;
        osy_err_t err;

        if (!s->o.metrics)
                return OSY_OK;
        if ((err = osy_metrics_counter_new(
                 s->o.metrics, &s->m_calls, "optsync_writer_api_calls_total",
                 "External API calls, by API, endpoint and HTTP status (or "
                 "error class).",
                 calls_l, errstr, size)))
                return err;
        if ((err = osy_metrics_histogram_new(
                 s->o.metrics, &m, "optsync_writer_records_per_call",
                 "Records sent per write call.", worker_l, rec_b,
                 sizeof(rec_b) / sizeof(*rec_b), errstr, size)))
                return err;
        const char *w1[] = {"sf-writer"};
        s->m_records     = osy_metric_series(m, w1);
        if ((err = osy_metrics_histogram_new(
                 s->o.metrics, &m, "optsync_writer_limiter_wait_seconds",
                 "Time spent waiting for the shared rate limiter per call.",
                 wait_l, wait_b, sizeof(wait_b) / sizeof(*wait_b), errstr,
                 size)))
                return err;
        const char *w2[] = {"sf-writer", "sf"};
        s->m_wait        = osy_metric_series(m, w2);
        return osy_metrics_gauge_new(
            s->o.metrics, &s->m_quota, "optsync_sf_quota_remaining",
            "Daily API calls the org has left (Sforce-Limit-Info), per "
            "tenant.",
            quota_l, errstr, size);
}

/* ---- life cycle
 * -------------------------------------------------------------- */

osy_err_t sfw_new(sfw_t **sp, const struct sfw_opts *opts, char *errstr,
                  size_t errstr_size)
{
        sfw_t *s;
        osy_err_t err;

        *sp = NULL;
        if (!opts || !opts->tenants)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "sf-writer: no tenants");
        s = calloc(1, sizeof(*s));
        if (!s)
                return OSY_ERR_NOMEM;
        s->o = *opts;
        if (!s->o.lookup_chunk)
                s->o.lookup_chunk = 500;
        if (!s->o.max_path)
                s->o.max_path = 15000;
        if (s->o.cache_ttl_ms <= 0)
                s->o.cache_ttl_ms = 3600 * 1000;
        if (s->o.rl_max_wait_ms <= 0)
                s->o.rl_max_wait_ms = 10000;
        if (s->o.auth_pause_ms <= 0)
                s->o.auth_pause_ms = 30000;
        s->prefix = strdup(opts->redis_prefix ? opts->redis_prefix : "optsync");
        if (!s->prefix) {
                free(s);
                return OSY_ERR_NOMEM;
        }
        s->o.redis_prefix = s->prefix;
        if ((err = metrics_init(s, errstr, errstr_size))) {
                sfw_destroy(s);
                return err;
        }
        *sp = s;
        return OSY_OK;
}

void sfw_set_writer(sfw_t *s, osy_writer_t *w)
{
        s->w = w;
}

void sfw_destroy(sfw_t *s)
{
        if (!s)
                return;
        while (s->tenants) {
                struct sfw_tenant *t = s->tenants;
                s->tenants           = t->next;
                osy_sf_auth_destroy(t->auth);
                osy_http_client_destroy(t->http);
                free(t->id);
                free(t);
        }
        free(s->prefix);
        free(s);
}

void sfw_get_stats(const sfw_t *s, struct sfw_stats *out)
{
        *out = s->st;
}

/* The state of one org, made on first use: its token, its HTTP connection
 * (kept open), its quota view. */
static struct sfw_tenant *tenant_get(sfw_t *s, const char *id, char *errstr,
                                     size_t size)
{
        struct sfw_tenant *t;
        const struct osy_tenant *conf;

        for (t = s->tenants; t; t = t->next)
                if (!strcmp(t->id, id))
                        return t;
        conf = osy_tenants_find(s->o.tenants, id);
        if (!conf || !conf->has_sf) {
                snprintf(errstr, size,
                         "tenant '%s' has no Salesforce org "
                         "configured",
                         id);
                return NULL;
        }
        t = calloc(1, sizeof(*t));
        if (!t || !(t->id = strdup(id)) ||
            osy_sf_auth_new(&t->auth, conf, &s->o.http, errstr, size) ||
            osy_http_client_new(&t->http, &s->o.http, errstr, size)) {
                if (t) {
                        osy_sf_auth_destroy(t->auth);
                        free(t->id);
                }
                free(t);
                return NULL;
        }
        t->conf = conf;
        sfw_quota_init(&t->quota, s->o.reserve_pct, s->o.probe_ms);
        if (s->m_quota) {
                const char *v[] = {id};
                t->m_quota      = osy_metric_series(s->m_quota, v);
        }
        t->next    = s->tenants;
        s->tenants = t;
        return t;
}

/* ---- one REST call
 * ------------------------------------------------------------- */

/* How a call went, from the point of view of the commands behind it. */
enum call_outcome {
        C_OK = 0,
        C_RETRY,     /* passing: back off (err, retry_after) */
        C_PERMANENT, /* the request itself is refused */
        C_QUOTA,     /* the daily allowance: wait without counting */
        C_AUTH,      /* the token endpoint refused the credentials */
        C_WAIT       /* the limiter had no token in time: wait */
};

struct call_res {
        enum call_outcome oc;
        osy_err_t err;
        int status;
        int64_t retry_after_ms;
        int64_t until; /* C_QUOTA / C_AUTH / C_WAIT: when to look again */
        char text[OSY_WRITER_TEXT_MAX];
};

/* The token endpoint refused the credentials: no call for this org until
 * the pause ends (doubling up to 10 min), commands deferred meanwhile. */
static void pause_auth(sfw_t *s, struct sfw_tenant *t, int64_t now_ms)
{
        t->auth_backoff_ms =
            t->auth_backoff_ms ? t->auth_backoff_ms * 2 : s->o.auth_pause_ms;
        if (t->auth_backoff_ms > 10 * 60 * 1000)
                t->auth_backoff_ms = 10 * 60 * 1000;
        t->auth_paused_until = now_ms + t->auth_backoff_ms;
}

/* Summarises a response body for an error text: a REST error's code and
 * message, or the start of whatever else came (an HTML 503 page). */
static void body_summary(const struct osy_http_response *resp, char *out,
                         size_t size)
{
        char code[64], msg[256];
        size_t j = 0;

        sfw_rest_error(resp->body, code, sizeof(code), msg, sizeof(msg));
        if (*code) {
                snprintf(out, size, "%s: %s", code, msg);
                return;
        }
        for (size_t i = 0;
             resp->body && resp->body[i] && j + 1 < size && j < 80; i++) {
                unsigned char c = (unsigned char)resp->body[i];
                out[j++]        = c < 0x20 || c == 0x7f ? ' ' : (char)c;
        }
        out[j] = '\0';
}

/*
 * Makes one call through the per-tenant limiter, counts it, reads
 * Sforce-Limit-Info, and classifies the outcome. @p resp is filled on
 * C_OK only (caller frees); on other outcomes it is freed here.
 */
static void sf_call(sfw_t *s, struct sfw_tenant *t, osy_http_method_t method,
                    const char *endpoint, const char *path, const char *body,
                    size_t body_len, int64_t now_ms,
                    struct osy_http_response *resp, struct call_res *cr)
{
        char errstr[OSY_ERRSTR_SIZE] = "", sum[200];
        int64_t waited               = 0, used, max;
        const char *hdr;
        osy_err_t err;

        memset(cr, 0, sizeof(*cr));
        memset(resp, 0, sizeof(*resp));
        cr->retry_after_ms = -1;
        /* The org's call rate is shared by every replica: take a token
         * first. No token in time is not a failure of the commands (no
         * call was made): they wait (C_WAIT). */
        if (s->o.rl) {
                err = osy_rl_wait(s->o.rl, t->id, "sf", 1, s->o.rl_max_wait_ms,
                                  NULL, &waited, errstr, sizeof(errstr));
                osy_histogram_observe(s->m_wait, (double)waited / 1000.0);
                if (err == OSY_ERR_THROTTLED) {
                        cr->oc    = C_WAIT;
                        cr->until = now_ms + waited + 1000;
                        snprintf(cr->text, sizeof(cr->text), "%s", errstr);
                        return;
                }
                if (err) {
                        cr->oc = C_RETRY;
                        cr->err =
                            osy_err_is_retryable(err) ? err : OSY_ERR_TRANSIENT;
                        snprintf(cr->text, sizeof(cr->text), "rate limiter: %s",
                                 errstr);
                        return;
                }
        }
        err = osy_sf_call(t->auth, t->http, method, path, body, body_len,
                          now_ms, resp, errstr, sizeof(errstr));
        count_call(s, endpoint, err ? 0 : resp->status, err);
        if (err) {
                if (err == OSY_ERR_AUTH) {
                        pause_auth(s, t, now_ms);
                        cr->oc    = C_AUTH;
                        cr->until = t->auth_paused_until;
                } else {
                        cr->oc = C_RETRY;
                        cr->err =
                            osy_err_is_retryable(err) ? err : OSY_ERR_TRANSIENT;
                }
                snprintf(cr->text, sizeof(cr->text), "%s %s: %s",
                         osy_http_method2str(method), endpoint, errstr);
                return;
        }
        cr->status         = resp->status;
        t->auth_backoff_ms = 0;
        hdr = osy_http_response_header(resp, "Sforce-Limit-Info");
        if (hdr && !sfw_limit_info_parse(hdr, &used, &max)) {
                sfw_quota_observe(&t->quota, used, max, now_ms);
                osy_gauge_set(t->m_quota, (double)(max - used));
        }
        if (resp->status >= 200 && resp->status < 300)
                return; /* C_OK */
        body_summary(resp, sum, sizeof(sum));
        snprintf(cr->text, sizeof(cr->text), "%s %s: HTTP %d %s",
                 osy_http_method2str(method), endpoint, resp->status, sum);
        if (sfw_is_daily_limit(resp->status, resp->body)) {
                sfw_quota_exhausted(&t->quota, now_ms);
                cr->oc    = C_QUOTA;
                cr->until = t->quota.paused_until;
                osy_log_warn("sf-writer: %s: daily API allowance exhausted; "
                             "pausing until the next check",
                             t->id);
        } else {
                cr->err = osy_err_from_http(resp->status, resp->body);
                if (cr->err == OSY_ERR_AUTH && resp->status == 401) {
                        /* Still 401 after a fresh token. */
                        pause_auth(s, t, now_ms);
                        cr->oc    = C_AUTH;
                        cr->until = t->auth_paused_until;
                } else if (osy_err_is_retryable(cr->err)) {
                        const char *ra =
                            osy_http_response_header(resp, "Retry-After");
                        cr->oc = C_RETRY;
                        if (ra)
                                cr->retry_after_ms =
                                    osy_http_retry_after_ms(ra, time(NULL));
                } else
                        cr->oc = C_PERMANENT;
        }
        osy_http_response_free(resp);
}

/* Applies a failed call's outcome to one item of it. */
static void item_call_failed(struct sfw_item *si, const struct call_res *cr)
{
        switch (cr->oc) {
        case C_OK:
                return;
        case C_RETRY:
                si->retry          = 1;
                si->err            = cr->err;
                si->retry_after_ms = cr->retry_after_ms;
                snprintf(si->text, sizeof(si->text), "%s", cr->text);
                return;
        case C_PERMANENT:
                /* The call, not a record, was refused: the record stays
                 * unwritten and the command is dead-lettered with why. */
                si->retry = 0;
                if (!si->resolved)
                        si->unresolvable = 1;
                for (size_t i = 0; i < si->n; i++)
                        if (si->rs[i] == R_PENDING)
                                si->rs[i] = R_FAILED;
                snprintf(si->failed, sizeof(si->failed), "%s", cr->text);
                return;
        case C_QUOTA:
        case C_AUTH:
        case C_WAIT:
                si->defer = 1;
                if (cr->until > si->defer_until)
                        si->defer_until = cr->until;
                return;
        }
}

/* ---- quota probe
 * ------------------------------------------------------------- */

/* While paused, one GET /limits per probe interval tells when budget is
 * back; every other call waits. @returns 1 when calls may go on. */
static int quota_check(sfw_t *s, struct sfw_tenant *t, int64_t now_ms,
                       int64_t *until)
{
        struct osy_http_response resp;
        struct call_res cr;
        char path[96];
        int64_t max, remaining;

        if (now_ms < t->auth_paused_until) {
                *until = t->auth_paused_until;
                return 0;
        }
        if (sfw_quota_may_call(&t->quota, now_ms, until))
                return 1;
        if (now_ms < *until)
                return 0;
        snprintf(path, sizeof(path), "/services/data/v%s/limits",
                 osy_sf_auth_api_version(t->auth));
        s->st.probe_calls++;
        /* The probe goes through the limiter like any call; its
         * Sforce-Limit-Info header updates the quota as well. */
        sf_call(s, t, OSY_HTTP_GET, "limits", path, NULL, 0, now_ms, &resp,
                &cr);
        if (cr.oc == C_OK) {
                if (!sfw_limits_parse(resp.body, &max, &remaining)) {
                        sfw_quota_observe(&t->quota, max - remaining, max,
                                          now_ms);
                        osy_gauge_set(t->m_quota, (double)remaining);
                }
                osy_http_response_free(&resp);
        }
        /* No answer, or no numbers: keep waiting, never spin. */
        if (t->quota.paused && t->quota.paused_until <= now_ms)
                t->quota.paused_until = now_ms + t->quota.probe_ms;
        if (t->quota.paused) {
                *until = t->quota.paused_until;
                osy_log_info("sf-writer: %s: quota still at the reserve "
                             "(%" PRId64 "/%" PRId64 " used), next check "
                             "in %" PRId64 " ms",
                             t->id, t->quota.used, t->quota.max,
                             *until - now_ms);
                return 0;
        }
        osy_log_info("sf-writer: %s: quota back (%" PRId64 "/%" PRId64
                     " used), resuming",
                     t->id, t->quota.used, t->quota.max);
        return 1;
}

/* ---- resolving people to records ----------------------------------------- */

static void cache_key(const sfw_t *s, const char *tenant, const char *email,
                      char *buf, size_t size)
{
        snprintf(buf, size, "%s:sf-writer:recs:{%s}:%s", s->prefix, tenant,
                 email);
}

/* Runs the lookup queries, one GET each, and follows nextRecordsUrl pages
 * until done. (Salesforce could carry five of them in one POST /composite;
 * the sandbox has no /composite, so long IN lists keep the count low.) */
static void run_queries(sfw_t *s, struct sfw_tenant *t, char **paths,
                        const sfw_obj_t *objs, size_t np, struct sfw_row **rows,
                        size_t *nrows, int64_t now_ms, struct call_res *fail)
{
        char errstr[OSY_ERRSTR_SIZE];
        struct osy_http_response resp;

        memset(fail, 0, sizeof(*fail));
        for (size_t i = 0; i < np && fail->oc == C_OK; i++) {
                char *url = strdup(paths[i]);
                while (url && fail->oc == C_OK) {
                        char *next = NULL;
                        s->st.query_calls++;
                        sf_call(s, t, OSY_HTTP_GET, "query", url, NULL, 0,
                                now_ms, &resp, fail);
                        free(url);
                        url = NULL;
                        if (fail->oc != C_OK)
                                break;
                        if (sfw_parse_query(resp.body, objs[i], rows, nrows,
                                            &next, errstr, sizeof(errstr))) {
                                fail->oc  = C_RETRY;
                                fail->err = OSY_ERR_TRANSIENT;
                                snprintf(fail->text, sizeof(fail->text),
                                         "query: %s", errstr);
                        }
                        osy_http_response_free(&resp);
                        url = next;
                }
                free(url);
        }
}

/*
 * Gives every unresolved item its records: the cache first (one MGET),
 * then SOQL for the misses, whose answers are cached. Items whose lookup
 * failed get that failure.
 */
static void resolve(sfw_t *s, struct sfw_tenant *t, struct osy_writer_item **it,
                    struct sfw_item **si, size_t n, int64_t now_ms)
{
        char errstr[OSY_ERRSTR_SIZE], key[OSY_EMAIL_BUFSZ + 128];
        size_t *miss = calloc(n ? n : 1, sizeof(*miss)), nmiss = 0;
        const char **emails                = calloc(n ? n : 1, sizeof(*emails));
        const char **argv                  = calloc(n + 1, sizeof(*argv));
        char(*keys)[OSY_EMAIL_BUFSZ + 128] = calloc(n ? n : 1, sizeof(*keys));
        redisReply *reply                  = NULL;
        size_t nq                          = 0;
        int argc                           = 1;
        const char *ver                    = osy_sf_auth_api_version(t->auth);

        if (!miss || !emails || !argv || !keys)
                goto out;
        argv[0] = "MGET";
        for (size_t i = 0; i < n; i++) {
                if (si[i]->resolved)
                        continue;
                miss[nmiss++] = i;
                cache_key(s, t->id, it[i]->email, keys[argc - 1],
                          sizeof(keys[0]));
                argv[argc] = keys[argc - 1];
                argc++;
        }
        if (!nmiss)
                goto out;
        if (s->o.redis &&
            !osy_redis_command_argv(s->o.redis, argc, argv, NULL, &reply,
                                    errstr, sizeof(errstr)) &&
            reply->type == REDIS_REPLY_ARRAY &&
            reply->elements == (size_t)argc - 1) {
                size_t still = 0;
                for (size_t j = 0; j < nmiss; j++) {
                        const redisReply *el = reply->element[j];
                        struct sfw_rec *recs = NULL;
                        size_t nr            = 0;
                        if (el->type == REDIS_REPLY_STRING &&
                            !sfw_recs_parse(el->str, &recs, &nr) && nr) {
                                si[miss[j]]->resolved = 0;
                                si_set_recs(si[miss[j]], recs, nr);
                                s->st.cache_hits++;
                                continue;
                        }
                        free(recs);
                        miss[still++] = miss[j];
                }
                nmiss = still;
        }
        s->st.cache_misses += nmiss;
        if (!nmiss)
                goto out;

        /* SOQL for the misses, chunked for both objects: Contacts, and
         * Leads that are not converted (a converted Lead is never written;
         * its Contact has a row of its own, or is followed on error). */
        for (size_t j = 0; j < nmiss; j++)
                emails[j] = it[miss[j]]->email;
        char **paths         = calloc(2 * nmiss, sizeof(*paths));
        sfw_obj_t *objs      = calloc(2 * nmiss, sizeof(*objs));
        struct sfw_row *rows = NULL;
        size_t nrows         = 0;
        struct call_res fail = {0};
        if (!paths || !objs)
                goto free_q;
        for (int o = 0; o < 2; o++) {
                for (size_t at = 0; at < nmiss;) {
                        struct sfw_buf p = {0};
                        size_t used      = 0;
                        osy_err_t e      = sfw_lookup_path(
                                 &p, ver, (sfw_obj_t)o, emails + at, nmiss - at,
                                 s->o.lookup_chunk, s->o.max_path, &used, errstr,
                                 sizeof(errstr));
                        if (!e) {
                                paths[nq]  = p.p;
                                objs[nq++] = (sfw_obj_t)o;
                        } else
                                sfw_buf_free(&p);
                        at += used ? used : 1;
                }
        }
        run_queries(s, t, paths, objs, nq, &rows, &nrows, now_ms, &fail);
        if (fail.oc != C_OK) {
                for (size_t j = 0; j < nmiss; j++)
                        item_call_failed(si[miss[j]], &fail);
                goto free_q;
        }
        /* Rows to people; every record with the email is written. */
        for (size_t j = 0; j < nmiss; j++) {
                struct sfw_item *x   = si[miss[j]];
                struct sfw_rec *recs = calloc(nrows ? nrows : 1, sizeof(*recs));
                size_t nr            = 0;
                if (!recs)
                        continue;
                for (size_t r = 0; r < nrows; r++) {
                        if (strcmp(rows[r].email, it[miss[j]]->email))
                                continue;
                        int dup = 0;
                        for (size_t q = 0; q < nr; q++)
                                dup |= !strcmp(recs[q].id, rows[r].id);
                        if (dup)
                                continue;
                        recs[nr].obj = rows[r].obj;
                        memcpy(recs[nr].id, rows[r].id, sizeof(recs[nr].id));
                        nr++;
                }
                si_set_recs(x, recs, nr);
                if (!nr || !s->o.redis)
                        continue; /* "no records" is not cached */
                struct sfw_buf v = {0};
                char ttl[32];
                sfw_recs_format(recs, nr, &v);
                snprintf(ttl, sizeof(ttl), "%" PRId64, s->o.cache_ttl_ms);
                cache_key(s, t->id, it[miss[j]]->email, key, sizeof(key));
                const char *set[] = {"SET", key, v.p ? v.p : "", "PX", ttl};
                if (!v.oom && osy_redis_pipeline_append_argv(
                                  s->o.redis, 5, set, NULL, errstr,
                                  sizeof(errstr)) == OSY_OK)
                        (void)0;
                sfw_buf_free(&v);
        }
        if (s->o.redis && osy_redis_pipeline_pending(s->o.redis)) {
                size_t np        = osy_redis_pipeline_pending(s->o.redis);
                redisReply **rep = calloc(np, sizeof(*rep));
                if (rep && osy_redis_pipeline_exec(s->o.redis, rep, np, errstr,
                                                   sizeof(errstr)))
                        osy_log_warn("sf-writer: record cache: %s", errstr);
                if (rep)
                        osy_redis_replies_free(rep, np);
                free(rep);
        }
free_q:
        for (size_t q = 0; paths && q < nq; q++)
                free(paths[q]);
        free(paths);
        free(objs);
        free(rows);
out:
        if (reply)
                freeReplyObject(reply);
        free(miss);
        free(emails);
        free(argv);
        free(keys);
}

/* Drops a person's cached record ids (one was deleted or converted). */
static void cache_forget(sfw_t *s, const char *tenant, const char *email)
{
        char key[OSY_EMAIL_BUFSZ + 128], errstr[OSY_ERRSTR_SIZE];
        redisReply *r = NULL;

        if (!s->o.redis)
                return;
        cache_key(s, tenant, email, key, sizeof(key));
        const char *argv[] = {"DEL", key};
        if (osy_redis_command_argv(s->o.redis, 2, argv, NULL, &r, errstr,
                                   sizeof(errstr)))
                osy_log_warn("sf-writer: record cache: %s", errstr);
        if (r)
                freeReplyObject(r);
}

/* Caches what is now known of a person's records (after a converted Lead
 * was replaced by its Contact). */
static void cache_store(sfw_t *s, const char *tenant, const char *email,
                        const struct sfw_rec *recs, size_t n)
{
        char key[OSY_EMAIL_BUFSZ + 128], errstr[OSY_ERRSTR_SIZE], ttl[32];
        struct sfw_buf v = {0};
        redisReply *r    = NULL;

        if (!s->o.redis)
                return;
        if (!n) {
                cache_forget(s, tenant, email);
                return;
        }
        sfw_recs_format(recs, n, &v);
        snprintf(ttl, sizeof(ttl), "%" PRId64, s->o.cache_ttl_ms);
        cache_key(s, tenant, email, key, sizeof(key));
        const char *argv[] = {"SET", key, v.p ? v.p : "", "PX", ttl};
        if (!v.oom && osy_redis_command_argv(s->o.redis, 5, argv, NULL, &r,
                                             errstr, sizeof(errstr)))
                osy_log_warn("sf-writer: record cache: %s", errstr);
        if (r)
                freeReplyObject(r);
        sfw_buf_free(&v);
}

/* ---- converted leads
 * ----------------------------------------------------------- */

/*
 * Reads ConvertedContactId of the Leads Salesforce refused as converted
 * and, in every item that holds one, replaces the Lead with its Contact
 * (unless the item already has it), then re-caches the person.
 */
static void follow_converted(sfw_t *s, struct sfw_tenant *t,
                             struct osy_writer_item **it, struct sfw_item **si,
                             size_t n, int64_t now_ms)
{
        const char **ids = NULL;
        size_t nids = 0, cap = 0, nrows = 0;
        struct sfw_row *rows = NULL;
        struct call_res fail = {0};
        char errstr[OSY_ERRSTR_SIZE];

        for (size_t i = 0; i < n; i++) {
                if (!si[i]->follow)
                        continue;
                for (size_t r = 0; r < si[i]->n; r++) {
                        if (si[i]->recs[r].obj != SFW_LEAD ||
                            si[i]->rs[r] != R_CONVERTED)
                                continue;
                        if (nids == cap) {
                                cap = cap ? cap * 2 : 16;
                                const char **nv =
                                    realloc(ids, cap * sizeof(*ids));
                                if (!nv)
                                        goto out;
                                ids = nv;
                        }
                        ids[nids++] = si[i]->recs[r].id;
                }
        }
        for (size_t at = 0; at < nids && fail.oc == C_OK;) {
                size_t k =
                    nids - at > SFW_BATCH_MAX ? SFW_BATCH_MAX : nids - at;
                struct sfw_buf p = {0};
                if (sfw_converted_path(&p, osy_sf_auth_api_version(t->auth),
                                       ids + at, k) == OSY_OK) {
                        struct osy_http_response resp;
                        char *next = NULL;
                        s->st.query_calls++;
                        sf_call(s, t, OSY_HTTP_GET, "query", p.p, NULL, 0,
                                now_ms, &resp, &fail);
                        if (fail.oc == C_OK) {
                                /* An answer that cannot be read must not
                                 * read as "no Contact to follow": that
                                 * would report the write done. */
                                if (sfw_parse_query(resp.body, SFW_LEAD, &rows,
                                                    &nrows, &next, errstr,
                                                    sizeof(errstr))) {
                                        fail.oc  = C_RETRY;
                                        fail.err = OSY_ERR_TRANSIENT;
                                        snprintf(fail.text, sizeof(fail.text),
                                                 "converted leads: %s", errstr);
                                }
                                osy_http_response_free(&resp);
                                free(next); /* 200 ids: one page */
                        }
                }
                sfw_buf_free(&p);
                at += k;
        }
        for (size_t i = 0; i < n; i++) {
                struct sfw_item *x = si[i];
                int changed        = 0;
                if (!x->follow)
                        continue;
                if (fail.oc != C_OK) {
                        item_call_failed(x, &fail);
                        /* The lead stays marked; retry reads it again. */
                        for (size_t r = 0; r < x->n; r++)
                                if (x->rs[r] == R_CONVERTED)
                                        x->rs[r] = R_PENDING;
                        continue;
                }
                for (size_t r = 0; r < x->n; r++) {
                        const char *cid = NULL;
                        if (x->rs[r] != R_CONVERTED)
                                continue;
                        for (size_t q = 0; q < nrows; q++)
                                if (!strcmp(rows[q].id, x->recs[r].id) &&
                                    *rows[q].converted_id)
                                        cid = rows[q].converted_id;
                        int have = 0;
                        for (size_t q = 0; cid && q < x->n; q++)
                                have |= !strcmp(x->recs[q].id, cid);
                        s->st.followed++;
                        changed = 1;
                        if (cid && !have) {
                                /* Write the Contact in the Lead's place. */
                                x->recs[r].obj = SFW_CONTACT;
                                snprintf(x->recs[r].id, sizeof(x->recs[r].id),
                                         "%s", cid);
                                x->rs[r] = R_PENDING;
                                osy_log_info("sf-writer: %s: converted Lead "
                                             "followed to Contact %s",
                                             it[i]->email, cid);
                        } else
                                x->rs[r] = R_DONE; /* nothing left to write */
                }
                if (changed) {
                        /* Cache what we now know, without finished ones
                         * duplicated. */
                        cache_store(s, t->id, it[i]->email, x->recs, x->n);
                        x->defer       = 1;
                        x->defer_until = now_ms;
                }
        }
out:
        free(ids);
        free(rows);
}

/* ---- writing
 * --------------------------------------------------------------------- */

struct tref {
        size_t item; /* index into the batch */
        size_t rec;  /* index into the item's records */
};

/* One audit record per person per write call: which records, which call,
 * what became of each, which attempt. */
static void audit_call(sfw_t *s, struct osy_writer_item **it,
                       struct sfw_item **si, const struct sfw_target *tg,
                       const struct tref *tr, const size_t *of_target,
                       size_t ntg, size_t wfrom, size_t wto,
                       const struct sfw_result *res, const struct call_res *cr,
                       uint64_t call_id, int64_t now_ms)
{
        int first = 1;

        for (size_t i = 0; i < ntg; i++) {
                size_t item      = tr[i].item;
                struct sfw_buf d = {0};
                int bad = 0, retry = 0, seen = 0;
                if (of_target[i] < wfrom || of_target[i] >= wto)
                        continue;
                /* Only the first target of each item in this call writes
                 * the record; it covers all of the item's targets. */
                for (size_t j = 0; j < i; j++)
                        if (tr[j].item == item && of_target[j] >= wfrom &&
                            of_target[j] < wto)
                                seen = 1;
                if (seen)
                        continue;
                sfw_buf_addf(&d, "HasOptedOutOfEmail=%s:",
                             it[item]->cmd.sf_command.has_opted_out_of_email
                                 ? "true"
                                 : "false");
                for (size_t j = i; j < ntg; j++) {
                        if (tr[j].item != item || of_target[j] < wfrom ||
                            of_target[j] >= wto)
                                continue;
                        const struct sfw_result *r =
                            res ? &res[of_target[j] - wfrom] : NULL;
                        const char *what = !r ? "not written"
                                           : r->res == SFW_RES_OK ? "ok"
                                                                  : r->code;
                        if (r && r->res == SFW_RES_PERMANENT)
                                bad = 1;
                        if (!r || r->res == SFW_RES_RETRY)
                                retry = 1;
                        sfw_buf_addf(&d, " %s %s %s",
                                     sfw_obj2str(tg[j].rec.obj), tg[j].rec.id,
                                     what);
                }
                sfw_buf_addf(&d,
                             "; call %" PRIu64 " PATCH composite/sobjects "
                             "(%zu records); attempt %d",
                             call_id, wto - wfrom, it[item]->attempts + 1);
                if (cr && cr->oc != C_OK)
                        sfw_buf_addf(&d, "; %s", cr->text);
                osy_outcome_t oc = bad     ? OSY_OUTCOME_FAILED
                                   : retry ? OSY_OUTCOME_RETRYING
                                           : OSY_OUTCOME_APPLIED;
                if (s->w)
                        osy_writer_audit(s->w, it[item], "sf_update", oc,
                                         OSY_API_SF, cr ? cr->status : 0,
                                         first ? 1 : 0, d.p, now_ms);
                first = 0;
                sfw_buf_free(&d);
                (void)si;
        }
}

/*
 * Writes the pending records of every resolved command of the batch:
 * targets per record, coalesced (newest wins) and ordered by sfw_plan(),
 * then one PATCH /composite/sobjects per 200. Each record's result goes
 * back to the command(s) that wanted it; a call that failed as a whole
 * touches every command in it; the quota is checked before each call.
 */
static void write_all(sfw_t *s, struct sfw_tenant *t,
                      struct osy_writer_item **it, struct sfw_item **si,
                      size_t n, int64_t now_ms)
{
        struct sfw_target *tg = NULL;
        struct tref *tr       = NULL;
        size_t ntg = 0, cap = 0, nw = 0, *of_target = NULL;
        struct sfw_write *w = NULL;
        char path[96], errstr[OSY_ERRSTR_SIZE];

        for (size_t i = 0; i < n; i++) {
                struct sfw_item *x = si[i];
                if (!x->resolved || x->retry || x->defer)
                        continue;
                for (size_t r = 0; r < x->n; r++) {
                        if (x->rs[r] != R_PENDING)
                                continue;
                        if (ntg == cap) {
                                cap = cap ? cap * 2 : 64;
                                struct sfw_target *ntgv =
                                    realloc(tg, cap * sizeof(*tg));
                                struct tref *ntr =
                                    ntgv ? realloc(tr, cap * sizeof(*tr))
                                         : NULL;
                                if (ntgv)
                                        tg = ntgv;
                                if (!ntgv || !ntr)
                                        goto out;
                                tr = ntr;
                        }
                        tg[ntg].rec = x->recs[r];
                        tg[ntg].value =
                            it[i]->cmd.sf_command.has_opted_out_of_email;
                        tg[ntg].version = &it[i]->cmd.sf_command.version;
                        tg[ntg].owner   = i;
                        tr[ntg].item    = i;
                        tr[ntg].rec     = r;
                        ntg++;
                }
        }
        if (!ntg)
                goto out;
        of_target = calloc(ntg, sizeof(*of_target));
        if (!of_target || sfw_plan(tg, ntg, &w, &nw, of_target))
                goto out;
        snprintf(path, sizeof(path), "/services/data/v%s/composite/sobjects",
                 osy_sf_auth_api_version(t->auth));

        for (size_t from = 0; from < nw; from += SFW_BATCH_MAX) {
                size_t to =
                    from + SFW_BATCH_MAX < nw ? from + SFW_BATCH_MAX : nw;
                struct sfw_result *res = NULL;
                struct osy_http_response resp;
                struct call_res cr;
                int64_t until;
                uint64_t call_id;

                if (osy_shutdown_requested()) {
                        /* Not started: these commands are replayed after
                         * the restart, never lost. */
                        cr.oc    = C_WAIT;
                        cr.until = now_ms;
                        for (size_t i = 0; i < ntg; i++)
                                if (of_target[i] >= from)
                                        item_call_failed(si[tr[i].item], &cr);
                        break;
                }
                if (!quota_check(s, t, now_ms, &until)) {
                        cr.oc    = C_QUOTA;
                        cr.until = until;
                        for (size_t i = 0; i < ntg; i++)
                                if (of_target[i] >= from)
                                        item_call_failed(si[tr[i].item], &cr);
                        break;
                }
                struct sfw_buf body = {0};
                sfw_collection_body(w + from, to - from, &body);
                if (body.oom) {
                        sfw_buf_free(&body);
                        break;
                }
                call_id = ++s->call_seq;
                s->st.write_calls++;
                s->st.records += to - from;
                osy_histogram_observe(s->m_records, (double)(to - from));
                sf_call(s, t, OSY_HTTP_PATCH, "composite_sobjects", path,
                        body.p, body.len, now_ms, &resp, &cr);
                sfw_buf_free(&body);
                if (cr.oc == C_OK) {
                        res = calloc(to - from, sizeof(*res));
                        if (!res ||
                            sfw_parse_save_results(resp.body, to - from, res,
                                                   errstr, sizeof(errstr))) {
                                /* The writes may or may not have happened:
                                 * retrying them is harmless. */
                                cr.oc  = C_RETRY;
                                cr.err = OSY_ERR_TRANSIENT;
                                snprintf(cr.text, sizeof(cr.text),
                                         "PATCH composite_sobjects: %s",
                                         res ? errstr : "out of memory");
                                free(res);
                                res = NULL;
                        }
                        osy_http_response_free(&resp);
                }
                /* Each target of this call learns its record's fate. */
                for (size_t i = 0; i < ntg; i++) {
                        size_t wi = of_target[i];
                        if (wi < from || wi >= to)
                                continue;
                        struct sfw_item *x = si[tr[i].item];
                        size_t r           = tr[i].rec;
                        if (!res) {
                                item_call_failed(x, &cr);
                                continue;
                        }
                        const struct sfw_result *rr = &res[wi - from];
                        switch (rr->res) {
                        case SFW_RES_OK:
                                x->rs[r] = R_DONE;
                                break;
                        case SFW_RES_CONVERTED:
                                x->rs[r]  = R_CONVERTED;
                                x->follow = 1;
                                break;
                        case SFW_RES_GONE:
                                if (x->reresolved)
                                        x->rs[r] = R_DONE;
                                else
                                        x->gone = 1;
                                break;
                        case SFW_RES_RETRY:
                                x->retry = 1;
                                x->err   = rr->err;
                                snprintf(x->text, sizeof(x->text),
                                         "%s %s: %s: %s",
                                         sfw_obj2str(w[wi].rec.obj),
                                         w[wi].rec.id, rr->code, rr->message);
                                break;
                        case SFW_RES_PERMANENT: {
                                size_t l = strlen(x->failed);
                                x->rs[r] = R_FAILED;
                                snprintf(x->failed + l, sizeof(x->failed) - l,
                                         "%s%s %s: %s: %s", l ? "; " : "",
                                         sfw_obj2str(w[wi].rec.obj),
                                         w[wi].rec.id, rr->code, rr->message);
                                break;
                        }
                        }
                }
                audit_call(s, it, si, tg, tr, of_target, ntg, from, to, res,
                           &cr, call_id, now_ms);
                free(res);
                if (cr.oc == C_QUOTA || cr.oc == C_AUTH) {
                        /* No more calls for this tenant now. */
                        for (size_t i = 0; i < ntg; i++)
                                if (of_target[i] >= to)
                                        item_call_failed(si[tr[i].item], &cr);
                        break;
                }
        }
out:
        free(tg);
        free(tr);
        free(w);
        free(of_target);
}

/* ---- process
 * ------------------------------------------------------------------- */

static void set_all(struct osy_writer_item *const *items, size_t n,
                    osy_writer_verdict_t v, int64_t until, const char *text)
{
        for (size_t i = 0; i < n; i++) {
                items[i]->verdict        = v;
                items[i]->err            = OSY_ERR_PERMANENT;
                items[i]->defer_until_ms = until;
                snprintf(items[i]->text, sizeof(items[i]->text), "%s", text);
        }
}

/*
 * The handler: the tenant's pauses first (credentials, quota), then
 * resolve, write and follow converted leads for the whole batch, then one
 * verdict per command from what happened to each of its records.
 */
static osy_err_t sfw_process(void *opaque, struct osy_writer_item *const *items,
                             size_t n, int64_t now_ms)
{
        sfw_t *s                     = opaque;
        char errstr[OSY_ERRSTR_SIZE] = "";
        struct sfw_tenant *t;
        struct sfw_item **si;
        int64_t until = 0;

        t = tenant_get(s, items[0]->tenant, errstr, sizeof(errstr));
        if (!t) {
                /* Not configured here: nothing this worker can ever do. */
                set_all(items, n, OSY_WRITER_FAILED, 0, errstr);
                return OSY_OK;
        }
        if (!quota_check(s, t, now_ms, &until)) {
                set_all(items, n, OSY_WRITER_DEFER, until,
                        "waiting for Salesforce API budget");
                return OSY_OK;
        }
        si = calloc(n, sizeof(*si));
        if (!si)
                return OSY_ERR_NOMEM;
        for (size_t i = 0; i < n; i++) {
                if (!items[i]->priv)
                        items[i]->priv = calloc(1, sizeof(struct sfw_item));
                si[i] = items[i]->priv;
                if (!si[i]) {
                        for (size_t j = 0; j < n; j++)
                                items[j]->verdict = OSY_WRITER_UNDECIDED;
                        free(si);
                        return OSY_ERR_NOMEM;
                }
                si[i]->retry = si[i]->defer = si[i]->follow = si[i]->gone = 0;
                si[i]->unresolvable                                       = 0;
                si[i]->retry_after_ms                                     = -1;
                si[i]->defer_until                                        = 0;
                si[i]->text[0] = '\0';
        }
        resolve(s, t, (struct osy_writer_item **)items, si, n, now_ms);
        write_all(s, t, (struct osy_writer_item **)items, si, n, now_ms);
        follow_converted(s, t, (struct osy_writer_item **)items, si, n, now_ms);

        for (size_t i = 0; i < n; i++) {
                struct osy_writer_item *p = items[i];
                struct sfw_item *x        = si[i];
                size_t pending = 0, failed = 0;
                for (size_t r = 0; x->resolved && r < x->n; r++) {
                        pending += x->rs[r] == R_PENDING;
                        failed += x->rs[r] == R_FAILED;
                }
                /* The order matters: a retryable failure wins (the whole
                 * command is tried again, its finished records are not
                 * written twice); then what needs another round now; a
                 * permanent failure only once nothing else is left. */
                if (x->retry) {
                        p->verdict        = OSY_WRITER_RETRY;
                        p->err            = x->err;
                        p->retry_after_ms = x->retry_after_ms;
                        snprintf(p->text, sizeof(p->text), "%s", x->text);
                } else if (x->unresolvable) {
                        p->verdict = OSY_WRITER_FAILED;
                        p->err     = OSY_ERR_PERMANENT;
                        snprintf(p->text, sizeof(p->text), "%s", x->failed);
                } else if (x->gone) {
                        /* A record vanished (deleted, merged): read the
                         * person's records again, once. */
                        cache_forget(s, t->id, p->email);
                        x->resolved       = 0;
                        x->reresolved     = 1;
                        p->verdict        = OSY_WRITER_DEFER;
                        p->defer_until_ms = now_ms;
                } else if (x->defer || !x->resolved) {
                        p->verdict        = OSY_WRITER_DEFER;
                        p->defer_until_ms = x->defer_until;
                } else if (pending) {
                        /* Not reached this time (stopped mid-batch). */
                        p->verdict        = OSY_WRITER_DEFER;
                        p->defer_until_ms = now_ms;
                } else if (failed) {
                        p->verdict = OSY_WRITER_FAILED;
                        p->err     = OSY_ERR_PERMANENT;
                        snprintf(p->text, sizeof(p->text), "%s", x->failed);
                } else if (!x->n) {
                        p->verdict = OSY_WRITER_SKIPPED;
                        snprintf(p->text, sizeof(p->text),
                                 "no Salesforce Contact or unconverted Lead "
                                 "has this email");
                } else {
                        p->verdict = OSY_WRITER_APPLIED;
                        snprintf(p->text, sizeof(p->text),
                                 "HasOptedOutOfEmail=%s on %zu records",
                                 p->cmd.sf_command.has_opted_out_of_email
                                     ? "true"
                                     : "false",
                                 x->n);
                }
        }
        free(si);
        return OSY_OK;
}

struct osy_writer_handler sfw_handler(sfw_t *s)
{
        struct osy_writer_handler h = {sfw_process, item_state_free, s};
        return h;
}
