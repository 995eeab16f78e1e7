/*
 * ac_writer.c - the ac-writer handler: resolve the contact (command hint,
 * the rules' state, a Redis cache, else GET /contacts?email=), its active
 * lists (GET /contacts/{id}/contactLists: AC's truth), then
 * unsubscribe from each list, or in bulk when a backlog builds.
 */
#include "ac_writer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "optsync/ac_client.h"
#include "optsync/ac_write.h"
#include "optsync/log.h"
#include "optsync/shutdown.h"
#include "rules_state.h"

/* ---- state --------------------------------------------------------------- */

struct acw_tenant {
        char *id;
        osy_ac_client_t *rd; /* reads (the rules engineer's client) */
        osy_ac_write_t *wr;  /* writes */
        int64_t auth_paused_until;
        struct acw_tenant *next;
};

struct acw_s {
        struct acw_opts o;
        char *prefix;
        osy_writer_t *w;
        struct acw_tenant *tenants;
        struct acw_stats st;
        int64_t deadline; /* of the running process() call, monotonic ms */
        int auth_hit;     /* AC refused the token in this process() call */
        osy_metric_t *m_calls;
        osy_series_t *m_wait;
};

/* The active lists of a contact, kept with the command while it waits
 * for its turn (a deferred command does not read them again). */
struct lists {
        char **v;
        size_t n;
        int known;
};

/* What a command has done so far (the item's priv). */
struct acw_item {
        char contact[OSY_AC_ID_MAX + 1];
        int no_bulk;   /* the importer refused it: go one list at a time */
        int refreshed; /* the contact was looked up again after a 404 */
        char batch[OSY_AC_BATCH_ID_MAX + 1]; /* import waiting to finish */
        int64_t batch_at, next_poll;
        int import_status;
        int import_calls; /* calls this import took (POST, polls) */
        char import_lists[200];
        struct lists lists; /* active lists not yet written, read at
                               lists_at */
        int64_t lists_at;
        int lists_done; /* lists unsubscribed so far */
};

/* Forgets the lists (they will be read again). */
static void lists_free(struct lists *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i]);
        free(l->v);
        memset(l, 0, sizeof(*l));
}

/* Appends a copy of a list id. */
static osy_err_t lists_add(struct lists *l, const char *id)
{
        char **nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
        if (!nv)
                return OSY_ERR_NOMEM;
        l->v = nv;
        if (!(l->v[l->n] = strdup(id)))
                return OSY_ERR_NOMEM;
        l->n++;
        return OSY_OK;
}

/* The runtime frees a command's state with this (the free_priv hook). */
static void item_state_free(void *opaque, void *priv)
{
        struct acw_item *y = priv;
        (void)opaque;
        if (y)
                lists_free(&y->lists);
        free(y);
}

/* ---- verdict helpers ----------------------------------------------------- */

static int64_t mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * At 5 calls per second shared by every replica, a batch of commands can
 * take minutes. One process() call stops starting new calls after its
 * budget (or at a shutdown request) and defers the rest, so the runtime
 * keeps polling Kafka (and the group keeps this member) and SIGTERM is
 * served within the grace period.
 */
static int out_of_time(const acw_t *a)
{
        return osy_shutdown_requested() || mono_ms() > a->deadline;
}

/* @returns 1 while nothing has been decided for the command in this call. */
static int undecided(const struct osy_writer_item *p)
{
        return p->verdict == OSY_WRITER_UNDECIDED;
}

/* Not attempted now: due again at @p until, no attempt counted. */
static void defer(struct osy_writer_item *p, int64_t until, const char *text)
{
        p->verdict        = OSY_WRITER_DEFER;
        p->defer_until_ms = until;
        if (text)
                snprintf(p->text, sizeof(p->text), "%s", text);
}

/*
 * The one mapping from a failed AC call to a verdict: a refused token is a
 * configuration problem of the tenant (wait, do not dead-letter every
 * command); retryable classes back off; everything else is permanent.
 */
static void failed(acw_t *a, struct osy_writer_item *p, osy_err_t err,
                   const struct osy_ac_answer *ans, int64_t retry_after_ms,
                   const char *text, int64_t now_ms)
{
        snprintf(p->text, sizeof(p->text), "%s", text);
        if (ans && ans->limited) {
                /* The shared limiter had no token in time: others are
                 * using the budget. Not this command's failure. */
                defer(p, now_ms + 1000, NULL);
                return;
        }
        if (err == OSY_ERR_AUTH) {
                /* The whole tenant waits (process() checks the pause), so
                 * a bad token costs one call a minute, not one per
                 * command. */
                if (!a->auth_hit)
                        osy_log_error("ac-writer: %s: AC refused the API "
                                      "token: %s",
                                      p->tenant, text);
                a->auth_hit = 1;
                defer(p, now_ms + ACW_AUTH_PAUSE_MS, NULL);
                return;
        }
        p->err            = err;
        p->retry_after_ms = retry_after_ms;
        p->verdict =
            osy_err_is_retryable(err) ? OSY_WRITER_RETRY : OSY_WRITER_FAILED;
}

/* ---- metrics ------------------------------------------------------------- */

static void count_call(acw_t *a, const char *endpoint, int status,
                       osy_err_t err)
{
        char st[16];
        const char *v[] = {"ac-writer", "ac", endpoint, st};

        if (status > 0)
                snprintf(st, sizeof(st), "%d", status);
        else
                snprintf(st, sizeof(st), "%s", err ? osy_err2str(err) : "200");
        osy_counter_inc(osy_metric_series(a->m_calls, v));
        a->st.calls++;
}

/* The call and limiter-wait families, shared with sf-writer by name. */
static osy_err_t metrics_init(acw_t *a, char *errstr, size_t size)
{
        static const char *const calls_l[] = {"worker", "api", "endpoint",
                                              "status", NULL};
        static const char *const wait_l[]  = {"worker", "api", NULL};
        static const double wait_b[]       = {0.001, 0.01, 0.05, 0.1, 0.25,
                                              0.5,   1,    2,    5,   10};
        osy_metric_t *m;
        osy_err_t err;

        if (!a->o.metrics)
                return OSY_OK;
        if ((err = osy_metrics_counter_new(
                 a->o.metrics, &a->m_calls, "optsync_writer_api_calls_total",
                 "External API calls, by API, endpoint and HTTP status (or "
                 "error class).",
                 calls_l, errstr, size)))
                return err;
        if ((err = osy_metrics_histogram_new(
                 a->o.metrics, &m, "optsync_writer_limiter_wait_seconds",
                 "Time spent waiting for the shared rate limiter per call.",
                 wait_l, wait_b, sizeof(wait_b) / sizeof(*wait_b), errstr,
                 size)))
                return err;
        const char *v[] = {"ac-writer", "ac"};
        a->m_wait       = osy_metric_series(m, v);
        return OSY_OK;
}

/* ---- life cycle ---------------------------------------------------------- */

osy_err_t acw_new(acw_t **ap, const struct acw_opts *opts, char *errstr,
                  size_t errstr_size)
{
        acw_t *a;
        osy_err_t err;

        *ap = NULL;
        if (!opts || !opts->tenants)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ac-writer: no tenants");
        if (!(a = calloc(1, sizeof(*a))))
                return OSY_ERR_NOMEM;
        a->o = *opts;
        if (a->o.rl_max_wait_ms <= 0)
                a->o.rl_max_wait_ms = 30000;
        if (a->o.bulk_poll_ms <= 0)
                a->o.bulk_poll_ms = 2000;
        if (a->o.import_give_up_ms <= 0)
                a->o.import_give_up_ms = ACW_IMPORT_GIVE_UP_MS;
        a->prefix = strdup(opts->redis_prefix ? opts->redis_prefix : "optsync");
        if (!a->prefix) {
                free(a);
                return OSY_ERR_NOMEM;
        }
        a->o.redis_prefix = a->prefix;
        if ((err = metrics_init(a, errstr, errstr_size))) {
                acw_destroy(a);
                return err;
        }
        *ap = a;
        return OSY_OK;
}

void acw_set_writer(acw_t *a, osy_writer_t *w)
{
        a->w = w;
}

void acw_destroy(acw_t *a)
{
        if (!a)
                return;
        while (a->tenants) {
                struct acw_tenant *t = a->tenants;
                a->tenants           = t->next;
                osy_ac_client_destroy(t->rd);
                osy_ac_write_destroy(t->wr);
                free(t->id);
                free(t);
        }
        free(a->prefix);
        free(a);
}

void acw_get_stats(const acw_t *a, struct acw_stats *out)
{
        *out = a->st;
}

/* The clients of one account, made on first use: reads through the
 * rules' AC client, writes through ours, both on the shared limiter. */
static struct acw_tenant *tenant_get(acw_t *a, const char *id, char *errstr,
                                     size_t size)
{
        const struct osy_tenant *conf;
        struct acw_tenant *t;

        for (t = a->tenants; t; t = t->next)
                if (!strcmp(t->id, id))
                        return t;
        conf = osy_tenants_find(a->o.tenants, id);
        if (!conf || !conf->has_ac || !conf->ac.base_url ||
            !conf->ac.api_token) {
                snprintf(errstr, size,
                         "tenant '%s' has no ActiveCampaign account "
                         "configured",
                         id);
                return NULL;
        }
        struct osy_ac_client_opts ro = {.base_url  = conf->ac.base_url,
                                        .api_token = conf->ac.api_token,
                                        .tenant    = id,
                                        .limiter   = a->o.rl,
                                        .limiter_max_wait_ms =
                                            a->o.rl_max_wait_ms,
                                        .http = &a->o.http};
        struct osy_ac_write_opts wo  = {.base_url     = conf->ac.base_url,
                                        .api_token    = conf->ac.api_token,
                                        .tenant       = id,
                                        .limiter      = a->o.rl,
                                        .bulk_limiter = a->o.bulk_rl,
                                        .limiter_max_wait_ms =
                                            a->o.rl_max_wait_ms,
                                        .http = &a->o.http};
        t                            = calloc(1, sizeof(*t));
        if (!t || !(t->id = strdup(id)) ||
            osy_ac_client_new(&t->rd, &ro, errstr, size) ||
            osy_ac_write_new(&t->wr, &wo, errstr, size)) {
                if (t) {
                        osy_ac_client_destroy(t->rd);
                        free(t->id);
                }
                free(t);
                return NULL;
        }
        t->next    = a->tenants;
        a->tenants = t;
        return t;
}

/* ---- bulk imports waiting to finish -------------------------------------- */

static int email_in(const struct osy_ac_import_status *s, const char *email)
{
        for (size_t i = 0; i < s->n_failure; i++)
                if (!strcmp(s->failure[i], email))
                        return 1;
        return 0;
}

/* Asks GET /import/info once per batch whose poll is due, and settles its
 * commands: applied when completed (the importer's failures go the direct
 * way instead), else wait for the next poll. */
static void poll_imports(acw_t *a, struct acw_tenant *t,
                         struct osy_writer_item *const *items,
                         struct acw_item **x, size_t n, int64_t now_ms)
{
        char errstr[OSY_ERRSTR_SIZE];

        for (size_t i = 0; i < n; i++) {
                struct osy_ac_import_status st;
                struct osy_ac_answer ans;
                osy_err_t err;

                if (!x[i]->batch[0] || !undecided(items[i]))
                        continue;
                if (now_ms < x[i]->next_poll) {
                        defer(items[i], x[i]->next_poll, NULL);
                        for (size_t j = i + 1; j < n; j++)
                                if (!strcmp(x[j]->batch, x[i]->batch))
                                        defer(items[j], x[i]->next_poll, NULL);
                        continue;
                }
                a->st.import_polls++;
                err = osy_ac_import_info(t->wr, x[i]->batch, &st, &ans, errstr,
                                         sizeof(errstr));
                if (!ans.limited)
                        count_call(a, "import_info", ans.status, err);
                char batch[OSY_AC_BATCH_ID_MAX + 1];
                memcpy(batch, x[i]->batch, sizeof(batch));
                int first = 1;
                for (size_t j = i; j < n; j++) {
                        struct osy_writer_item *p = items[j];
                        struct acw_item *y        = x[j];
                        if (strcmp(y->batch, batch) || !undecided(p))
                                continue;
                        if (!ans.limited)
                                y->import_calls++;
                        if (err == OSY_ERR_NOT_FOUND ||
                            (!err && !st.completed &&
                             now_ms - y->batch_at > a->o.import_give_up_ms)) {
                                /* Lost (or stuck): import it again. */
                                y->batch[0] = '\0';
                                defer(p, now_ms, NULL);
                                continue;
                        }
                        if (err == OSY_ERR_INVALID ||
                            (err &&
                             now_ms - y->batch_at > a->o.import_give_up_ms)) {
                                /* An answer we cannot read says nothing
                                 * about who was refused, and one that
                                 * fails past the give-up may never come:
                                 * the contacts go list by list (an
                                 * unsubscribe done twice is still one).
                                 * Polling on, as before, held the
                                 * commands, and the partition's offsets,
                                 * forever. */
                                y->no_bulk  = 1;
                                y->batch[0] = '\0';
                                if (a->w)
                                        osy_writer_audit(
                                            a->w, p, "ac_bulk_unsubscribe",
                                            OSY_OUTCOME_RETRYING, OSY_API_AC,
                                            ans.status,
                                            first ? y->import_calls : 0, errstr,
                                            now_ms);
                                first = 0;
                                defer(p, now_ms, NULL);
                                continue;
                        }
                        if (err || !st.completed) {
                                /* The import was accepted: waiting for it
                                 * is not a failed attempt. */
                                y->next_poll = now_ms + a->o.bulk_poll_ms;
                                defer(p, y->next_poll, NULL);
                                continue;
                        }
                        char d[OSY_WRITER_TEXT_MAX];
                        if (email_in(&st, p->email)) {
                                /* Refused by the importer (bounced,
                                 * excluded): one list at a time. */
                                y->no_bulk  = 1;
                                y->batch[0] = '\0';
                                snprintf(d, sizeof(d),
                                         "bulk import %s refused the contact; "
                                         "retrying list by list",
                                         batch);
                                if (a->w)
                                        osy_writer_audit(
                                            a->w, p, "ac_bulk_unsubscribe",
                                            OSY_OUTCOME_RETRYING, OSY_API_AC,
                                            y->import_status,
                                            first ? y->import_calls : 0, d,
                                            now_ms);
                                defer(p, now_ms, NULL);
                        } else {
                                snprintf(d, sizeof(d),
                                         "unsubscribed from lists %s by bulk "
                                         "import %s (%zu contacts), confirmed "
                                         "by GET /import/info; attempt %d",
                                         y->import_lists, batch, st.n_success,
                                         p->attempts + 1);
                                if (a->w)
                                        osy_writer_audit(
                                            a->w, p, "ac_bulk_unsubscribe",
                                            OSY_OUTCOME_APPLIED, OSY_API_AC,
                                            y->import_status,
                                            first ? y->import_calls : 0, d,
                                            now_ms);
                                p->verdict = OSY_WRITER_APPLIED;
                                snprintf(p->text, sizeof(p->text), "%s", d);
                        }
                        first = 0;
                }
                if (!err)
                        osy_ac_import_status_clear(&st);
                osy_histogram_observe(a->m_wait,
                                      (double)ans.waited_ms / 1000.0);
        }
}

/* ---- resolving the contact and its lists --------------------------------- */

static void contact_cache_key(const acw_t *a, const char *tenant,
                              const char *email, char *buf, size_t size)
{
        snprintf(buf, size, "%s:ac-writer:cid:{%s}:%s", a->prefix, tenant,
                 email);
}

/* Fills contact ids: one MGET of the rules' person states, one of our own
 * contact cache. */
static void from_redis(acw_t *a, struct acw_tenant *t,
                       struct osy_writer_item *const *items,
                       struct acw_item **x, size_t n)
{
        char errstr[OSY_ERRSTR_SIZE];
        size_t *idx                      = calloc(n, sizeof(*idx));
        const char **argv                = calloc(n + 1, sizeof(*argv));
        char(*keys)[OSY_RULES_KEY_BUFSZ] = calloc(n, sizeof(*keys));
        redisReply *reply                = NULL;
        size_t m;

        if (!a->o.redis || !idx || !argv || !keys)
                goto out;
        /* Two MGETs at most, whatever the batch size: the rules' person
         * states (contact id and active lists, when the rules know them),
         * then our own email -> contact id cache for the rest. */
        for (int pass = 0; pass < 2; pass++) {
                /* pass 0: the rules' state; pass 1: our contact cache */
                if (pass == 0 && !a->o.use_rules_state)
                        continue;
                m       = 0;
                argv[0] = "MGET";
                for (size_t i = 0; i < n; i++) {
                        if (!undecided(items[i]) || x[i]->batch[0])
                                continue;
                        if (pass == 1 && x[i]->contact[0])
                                continue;
                        if (pass == 0 && osy_rules_state_key(
                                             keys[m], sizeof(keys[m]),
                                             a->prefix, t->id, items[i]->email))
                                continue;
                        if (pass == 1)
                                contact_cache_key(a, t->id, items[i]->email,
                                                  keys[m], sizeof(keys[m]));
                        argv[m + 1] = keys[m];
                        idx[m++]    = i;
                }
                if (!m)
                        continue;
                if (osy_redis_command_argv(a->o.redis, (int)m + 1, argv, NULL,
                                           &reply, errstr, sizeof(errstr))) {
                        osy_log_warn("ac-writer: redis: %s", errstr);
                        continue;
                }
                for (size_t k = 0; reply->type == REDIS_REPLY_ARRAY &&
                                   k < reply->elements && k < m;
                     k++) {
                        const redisReply *el = reply->element[k];
                        size_t i             = idx[k];
                        if (el->type != REDIS_REPLY_STRING)
                                continue;
                        if (pass == 1) {
                                if (el->len < sizeof(x[i]->contact))
                                        memcpy(x[i]->contact, el->str,
                                               el->len + 1);
                                continue;
                        }
                        struct osy_rules_person p;
                        if (osy_rules_person_decode(el->str, el->len, &p,
                                                    errstr, sizeof(errstr)))
                                continue; /* unreadable: a cache miss */
                        /* Only the contact id: the lists in the rules'
                         * state are the *decided* state, and an R4
                         * decision (the only one that writes AC) empties
                         * them before this command runs. AC's own
                         * contactLists is the truth about what is left
                         * to unsubscribe. */
                        if (!x[i]->contact[0] && p.contact_id[0]) {
                                memcpy(x[i]->contact, p.contact_id,
                                       sizeof(x[i]->contact));
                                a->st.state_hits++;
                        }
                        osy_rules_person_clear(&p);
                }
                freeReplyObject(reply);
                reply = NULL;
        }
out:
        free(idx);
        free(argv);
        free(keys);
}

/* Caches (or, with "", forgets) the contact id of an email for 24 h. */
static void cache_contact(acw_t *a, const char *tenant, const char *email,
                          const char *id)
{
        char key[OSY_RULES_KEY_BUFSZ], ttl[32], errstr[OSY_ERRSTR_SIZE];
        redisReply *r = NULL;

        if (!a->o.redis)
                return;
        contact_cache_key(a, tenant, email, key, sizeof(key));
        snprintf(ttl, sizeof(ttl), "%lld", (long long)ACW_CONTACT_TTL_MS);
        const char *set[] = {"SET", key, id, "PX", ttl};
        const char *del[] = {"DEL", key};
        if (osy_redis_command_argv(a->o.redis, *id ? 5 : 2, *id ? set : del,
                                   NULL, &r, errstr, sizeof(errstr)))
                osy_log_warn("ac-writer: contact cache: %s", errstr);
        if (r)
                freeReplyObject(r);
}

/* A contact that AC no longer knows: forget it and look it up again once;
 * the second time there is nothing left to unsubscribe. */
static void contact_gone(acw_t *a, const char *tenant,
                         struct osy_writer_item *p, struct acw_item *y,
                         int64_t now_ms)
{
        cache_contact(a, tenant, p->email, "");
        if (!y->refreshed) {
                y->refreshed  = 1;
                y->contact[0] = '\0';
                defer(p, now_ms, "contact not found: looking it up again");
                return;
        }
        p->verdict = OSY_WRITER_SKIPPED;
        snprintf(p->text, sizeof(p->text), "AC contact %s no longer exists",
                 y->contact);
}

/* Fills contact ids from the commands' hints, then what Redis knows. */
static void resolve_prepare(acw_t *a, struct acw_tenant *t,
                            struct osy_writer_item *const *items,
                            struct acw_item **x, size_t n, int64_t now_ms)
{
        for (size_t i = 0; i < n; i++) {
                const char *hint = items[i]->cmd.ac_command.contact_id;
                /* Lists read more than a little while ago may have changed
                 * (the contact subscribed again): read them again. */
                if (x[i]->lists.known &&
                    now_ms - x[i]->lists_at > ACW_LISTS_FRESH_MS)
                        lists_free(&x[i]->lists);
                if (undecided(items[i]) && !x[i]->batch[0] &&
                    !x[i]->contact[0] && hint && !x[i]->refreshed &&
                    strlen(hint) < sizeof(x[i]->contact))
                        memcpy(x[i]->contact, hint, strlen(hint) + 1);
        }
        from_redis(a, t, items, x, n);
}

/* Looks up what Redis did not know: the contact by email, then its active
 * lists. Sets a verdict when there is nothing to write or a call failed. */
static void resolve_one(acw_t *a, struct acw_tenant *t,
                        struct osy_writer_item *p, struct acw_item *y,
                        int64_t now_ms)
{
        char errstr[OSY_ERRSTR_SIZE];
        osy_err_t err;

        if (!y->contact[0]) {
                struct osy_ac_contact c;
                a->st.lookups++;
                err = osy_ac_find_contact(t->rd, p->email, &c, errstr,
                                          sizeof(errstr));
                count_call(a, "contacts", 0, err);
                if (err == OSY_ERR_NOT_FOUND) {
                        p->verdict = OSY_WRITER_SKIPPED;
                        snprintf(p->text, sizeof(p->text),
                                 "no AC contact has this email");
                        return;
                }
                if (err) {
                        failed(a, p, err, NULL,
                               osy_ac_client_retry_after_ms(t->rd), errstr,
                               now_ms);
                        return;
                }
                memcpy(y->contact, c.id, sizeof(y->contact));
                cache_contact(a, t->id, p->email, c.id);
        }
        if (!y->lists.known) {
                struct osy_ac_membership *ms = NULL;
                size_t nm                    = 0;
                a->st.list_reads++;
                err = osy_ac_contact_lists(t->rd, y->contact, &ms, &nm, errstr,
                                           sizeof(errstr));
                count_call(a, "contactLists", 0, err);
                if (err == OSY_ERR_NOT_FOUND) {
                        contact_gone(a, t->id, p, y, now_ms);
                        return;
                }
                if (err) {
                        failed(a, p, err, NULL,
                               osy_ac_client_retry_after_ms(t->rd), errstr,
                               now_ms);
                        return;
                }
                y->lists.known = 1;
                y->lists_at    = now_ms;
                for (size_t k = 0; k < nm; k++)
                        if (ms[k].status == OSY_AC_LIST_ACTIVE &&
                            lists_add(&y->lists, ms[k].list)) {
                                y->lists.known = 0;
                                break;
                        }
                free(ms);
                if (!y->lists.known) {
                        lists_free(&y->lists);
                        defer(p, now_ms + 1000, "out of memory");
                        return;
                }
        }
        if (!y->lists.n && y->lists_done) {
                p->verdict = OSY_WRITER_APPLIED;
                snprintf(p->text, sizeof(p->text),
                         "contact %s unsubscribed from %d lists", y->contact,
                         y->lists_done);
        } else if (!y->lists.n) {
                p->verdict = OSY_WRITER_SKIPPED;
                snprintf(p->text, sizeof(p->text),
                         "contact %s has no active list", y->contact);
        }
}

/* ---- writing
 * ------------------------------------------------------------------ */

/* One POST /contactLists per active list, each audited. */
static void write_direct(acw_t *a, struct acw_tenant *t,
                         struct osy_writer_item *p, struct acw_item *y,
                         int64_t now_ms)
{
        char errstr[OSY_ERRSTR_SIZE], d[OSY_WRITER_TEXT_MAX];
        struct lists *l = &y->lists;

        /* Each list done leaves the item's active set, so a command that
         * waits for its turn (or retries) does not write it again. */
        while (l->n > 0) {
                struct osy_ac_answer ans;
                int list_missing = 0;
                osy_err_t err;

                if (out_of_time(a)) {
                        defer(p, now_ms, NULL);
                        return;
                }
                a->st.unsubscribes++;
                err = osy_ac_unsubscribe_list(t->wr, y->contact, l->v[0], &ans,
                                              &list_missing, errstr,
                                              sizeof(errstr));
                osy_histogram_observe(a->m_wait,
                                      (double)ans.waited_ms / 1000.0);
                if (ans.limited) {
                        /* No call was made; try the rest later. */
                        defer(p, now_ms + 1000, NULL);
                        return;
                }
                count_call(a, "contactLists_post", ans.status, err);
                snprintf(d, sizeof(d), "contact %s list %s: %s; attempt %d",
                         y->contact, l->v[0],
                         err ? errstr : "unsubscribed (status 2)",
                         p->attempts + 1);
                if (err == OSY_ERR_NOT_FOUND && !list_missing) {
                        if (a->w)
                                osy_writer_audit(a->w, p, "ac_unsubscribe",
                                                 OSY_OUTCOME_RETRYING,
                                                 OSY_API_AC, ans.status, 1, d,
                                                 now_ms);
                        lists_free(l);
                        contact_gone(a, t->id, p, y, now_ms);
                        return;
                }
                osy_outcome_t oc =
                    !err || list_missing ? OSY_OUTCOME_APPLIED
                    : osy_err_is_retryable(err) || err == OSY_ERR_AUTH
                        ? OSY_OUTCOME_RETRYING
                        : OSY_OUTCOME_FAILED;
                if (a->w)
                        osy_writer_audit(a->w, p, "ac_unsubscribe", oc,
                                         OSY_API_AC, ans.status, 1, d, now_ms);
                if (err && !list_missing) {
                        failed(a, p, err, &ans, ans.retry_after_ms, errstr,
                               now_ms);
                        return;
                }
                free(l->v[0]);
                memmove(l->v, l->v + 1, (l->n - 1) * sizeof(*l->v));
                l->n--;
                y->lists_done++;
        }
        p->verdict = OSY_WRITER_APPLIED;
        snprintf(p->text, sizeof(p->text),
                 "contact %s unsubscribed from %d lists", y->contact,
                 y->lists_done);
}

/* Bulk import: up to 250 contacts per call; the commands wait for
 * GET /import/info before they count as done. */
static void write_bulk(acw_t *a, struct acw_tenant *t,
                       struct osy_writer_item *const *items,
                       struct acw_item **x, const size_t *which, size_t nw,
                       int64_t now_ms)
{
        char errstr[OSY_ERRSTR_SIZE], batch[OSY_AC_BATCH_ID_MAX + 1];
        struct osy_ac_bulk_contact *bc = calloc(OSY_AC_BULK_MAX, sizeof(*bc));

        if (!bc) {
                for (size_t k = 0; k < nw; k++)
                        defer(items[which[k]], now_ms + 1000, "out of memory");
                return;
        }
        size_t limit = OSY_AC_BULK_MAX, cnt = 0;

        for (size_t from = 0; from < nw; from += cnt) {
                struct osy_ac_answer ans;
                osy_err_t err;

                cnt = nw - from < limit ? nw - from : limit;

                /* The first import always goes: reading the lists of a
                 * backlog can use a whole call's budget every time (one
                 * read per contact at 5 calls/s), and an import that
                 * waited for spare time would never be sent while the
                 * lists it carries went stale and were read again. */
                if (from > 0 && out_of_time(a)) {
                        for (size_t k = from; k < nw; k++)
                                defer(items[which[k]], now_ms, NULL);
                        break;
                }
                for (size_t k = 0; k < cnt; k++) {
                        size_t i      = which[from + k];
                        bc[k].email   = items[i]->email;
                        bc[k].lists   = (const char *const *)x[i]->lists.v;
                        bc[k].n_lists = x[i]->lists.n;
                }
                /* One import of up to 250: the commands in it wait for its
                 * batch id's status, polled by poll_imports(). */
                err = osy_ac_bulk_unsubscribe(t->wr, bc, cnt, batch,
                                              sizeof(batch), &ans, errstr,
                                              sizeof(errstr));
                /* Over the importer's 400,000 bytes (contacts on many
                 * lists): nothing was sent, so the same contacts go again
                 * in halves. Before, all of them were dead-lettered. */
                if (err == OSY_ERR_TOO_LARGE && cnt > 1) {
                        limit = cnt / 2;
                        cnt   = 0;
                        continue;
                }
                a->st.imports++;
                osy_histogram_observe(a->m_wait,
                                      (double)ans.waited_ms / 1000.0);
                if (!ans.limited)
                        count_call(a, "import_bulk", ans.status, err);
                for (size_t k = 0; k < cnt; k++) {
                        size_t i                  = which[from + k];
                        struct osy_writer_item *p = items[i];
                        struct acw_item *y        = x[i];
                        if (!err) {
                                memcpy(y->batch, batch, sizeof(y->batch));
                                y->batch_at        = now_ms;
                                y->next_poll       = now_ms + a->o.bulk_poll_ms;
                                y->import_status   = ans.status;
                                y->import_calls    = 1;
                                size_t len         = 0;
                                y->import_lists[0] = '\0';
                                for (size_t l = 0; l < y->lists.n; l++) {
                                        int w = snprintf(
                                            y->import_lists + len,
                                            sizeof(y->import_lists) - len,
                                            "%s%s", l ? "," : "",
                                            y->lists.v[l]);
                                        if (w < 0 ||
                                            (size_t)w >=
                                                sizeof(y->import_lists) - len)
                                                break;
                                        len += (size_t)w;
                                }
                                defer(p, y->next_poll, NULL);
                                continue;
                        }
                        if (ans.limited) {
                                defer(p, now_ms + 1000, NULL);
                                continue;
                        }
                        char d[OSY_WRITER_TEXT_MAX];
                        snprintf(d, sizeof(d),
                                 "bulk import of %zu contacts: %s; attempt %d",
                                 cnt, errstr, p->attempts + 1);
                        if (err == OSY_ERR_PERMANENT ||
                            err == OSY_ERR_INVALID ||
                            err == OSY_ERR_TOO_LARGE) {
                                /* The payload was refused (or one contact
                                 * alone is too large), nothing queued: do
                                 * these one list at a time instead. */
                                y->no_bulk = 1;
                                if (a->w)
                                        osy_writer_audit(
                                            a->w, p, "ac_bulk_unsubscribe",
                                            OSY_OUTCOME_RETRYING, OSY_API_AC,
                                            ans.status, k == 0 ? 1 : 0, d,
                                            now_ms);
                                defer(p, now_ms, NULL);
                                continue;
                        }
                        if (a->w)
                                osy_writer_audit(a->w, p, "ac_bulk_unsubscribe",
                                                 OSY_OUTCOME_RETRYING,
                                                 OSY_API_AC, ans.status,
                                                 k == 0 ? 1 : 0, d, now_ms);
                        failed(a, p, err, &ans, ans.retry_after_ms, errstr,
                               now_ms);
                }
        }
        free(bc);
}

/* ---- process ------------------------------------------------------------- */

static osy_err_t acw_process(void *opaque, struct osy_writer_item *const *items,
                             size_t n, int64_t now_ms)
{
        acw_t *a                     = opaque;
        char errstr[OSY_ERRSTR_SIZE] = "";
        struct acw_tenant *t;
        struct acw_item **x = NULL;
        size_t *which = NULL, nw = 0, fresh = 0;
        osy_err_t err = OSY_OK;
        int bulk, ran_out = 0;

        if (!(t = tenant_get(a, items[0]->tenant, errstr, sizeof(errstr)))) {
                for (size_t i = 0; i < n; i++) {
                        items[i]->verdict = OSY_WRITER_FAILED;
                        items[i]->err     = OSY_ERR_PERMANENT;
                        snprintf(items[i]->text, sizeof(items[i]->text), "%s",
                                 errstr);
                }
                return OSY_OK;
        }
        if (now_ms < t->auth_paused_until) {
                for (size_t i = 0; i < n; i++)
                        defer(items[i], t->auth_paused_until,
                              "AC refused the API token");
                return OSY_OK;
        }
        a->deadline = mono_ms() + ACW_PROCESS_BUDGET_MS;
        a->auth_hit = 0;
        x           = calloc(n, sizeof(*x));
        which       = calloc(n, sizeof(*which));
        if (!x || !which) {
                err = OSY_ERR_NOMEM;
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                if (!items[i]->priv &&
                    !(items[i]->priv = calloc(1, sizeof(struct acw_item)))) {
                        err = OSY_ERR_NOMEM;
                        goto out;
                }
                x[i] = items[i]->priv;
        }
        poll_imports(a, t, items, x, n, now_ms);

        /* A backlog of this tenant's commands goes by bulk import. */
        for (size_t i = 0; i < n; i++)
                fresh +=
                    undecided(items[i]) && !x[i]->batch[0] && !x[i]->no_bulk;
        bulk = a->o.bulk_threshold && fresh >= a->o.bulk_threshold;
        resolve_prepare(a, t, items, x, n, now_ms);
        /* One command at a time: resolve it, then write it (or queue it
         * for the import), until the time budget of this call is used. */
        for (size_t i = 0; i < n; i++) {
                struct osy_writer_item *p = items[i];
                if (!undecided(p) || x[i]->batch[0])
                        continue;
                if (a->auth_hit) {
                        defer(p, now_ms + ACW_AUTH_PAUSE_MS, NULL);
                        continue;
                }
                if (out_of_time(a)) {
                        defer(p, now_ms, NULL);
                        ran_out = 1;
                        continue;
                }
                resolve_one(a, t, p, x[i], now_ms);
                if (!undecided(p))
                        continue;
                if (bulk && !x[i]->no_bulk)
                        which[nw++] = i;
                else
                        write_direct(a, t, p, x[i], now_ms);
        }
        /* While the backlog is still being read, wait for a full import
         * rather than send many small ones; but never so long that the
         * first lists read go stale (they would be read again). */
        int64_t oldest = now_ms;
        for (size_t k = 0; k < nw; k++)
                if (x[which[k]]->lists_at < oldest)
                        oldest = x[which[k]]->lists_at;
        if (nw && ran_out && nw < a->o.bulk_threshold &&
            now_ms - oldest < ACW_LISTS_FRESH_MS / 2) {
                for (size_t k = 0; k < nw; k++)
                        defer(items[which[k]], now_ms, NULL);
        } else if (nw)
                write_bulk(a, t, items, x, which, nw, now_ms);
        if (a->auth_hit)
                t->auth_paused_until = now_ms + ACW_AUTH_PAUSE_MS;
        /* Lists read for a command that failed are not trusted later. */
        for (size_t i = 0; i < n; i++)
                if (items[i]->verdict == OSY_WRITER_RETRY ||
                    items[i]->verdict == OSY_WRITER_FAILED)
                        lists_free(&x[i]->lists);
out:
        free(x);
        free(which);
        return err;
}

struct osy_writer_handler acw_handler(acw_t *a)
{
        struct osy_writer_handler h = {acw_process, item_state_free, a};
        return h;
}
