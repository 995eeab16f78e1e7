/*
 * server.c - the sandbox core: one libmicrohttpd server (a thread per
 * connection, so long-polls block only their own connection) that routes
 * by URL prefix to the AC and SF simulators, and the shared services they
 * use: the clock, the state lock, wait/notify, the seeded random numbers,
 * fixtures and the /sandbox/ control routes.
 */
/*
 * A request's path through the core:
 *   on_uri()      MHD hands the raw URI; a req_ctx is born (start time).
 *   on_access()   first call: headers known; an announced over-cap body is
 *                 refused here. Then once per body chunk (body_append),
 *                 and a last time with no data: dispatch().
 *   dispatch()    fills the sbx_req, route()s it to a module or a control,
 *                 logs it, and sends the sbx_resp (or closes the socket
 *                 for reset/timeout faults).
 *   on_completed() frees the req_ctx, whatever happened.
 * The thread that runs all this is the connection's own, so a module that
 * blocks (a CometD long-poll) holds up no one else.
 */
#include "server_internal.h"

#include "optsync/log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

/* Enough for hundreds of parked long-polls plus load; MHD_USE_POLL keeps
 * file descriptors above FD_SETSIZE usable. */
#define SBX_CONNECTION_LIMIT 1024
/* Idle keep-alive connections close after this; a running handler (a
 * long-poll) is not cut by it. */
#define SBX_CONNECTION_TIMEOUT_S 300
/* Bodies above the cap are read and dropped (so the client sees a clean
 * 413) up to this much; beyond it the connection is closed at once. */
#define SBX_DISCARD_MAX ((uint64_t)256 * 1024 * 1024)
#define SBX_WAIT_MAX_MS (10 * 60 * 1000)

struct sbx_s {
        struct MHD_Daemon *daemon;
        int port;
        char base_url[64];
        size_t max_body;
        int verbose;

        /* The state lock and the condition that sbx_wait() parks on. */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        uint64_t notify_gen; /* bumped by sbx_notify() */
        atomic_int stopping;
        atomic_int ready; /* modules and fixture loaded */

        /* Interruptible sleeps (latency/timeout faults): never the state
         * lock, so a sleeping request does not block others. */
        pthread_mutex_t sleep_lock;
        pthread_cond_t sleep_cond;

        _Atomic int64_t clock_offset_ms;
        uint64_t start_seed; /* what reset goes back to */
        uint64_t seed;       /* the current one */
        uint64_t rng;        /* state lock */

        /* Tenants of the loaded fixture, sorted for bsearch; read on every
         * API request, so under their own rwlock, not the state lock. */
        pthread_rwlock_t tenants_lock;
        char **tenants;
        size_t tenant_cnt;
        cJSON *fixture; /* the loaded fixture (state lock), for reset */

        struct sbx_kv *set; /* --set options, immutable */
        size_t set_cnt;

        struct sbx_ac *ac;
        struct sbx_sf *sf;
        struct sbx_cdc *cdc;
        struct sbx_faults *faults;
        struct sbx_reqlog *log;
};

/* One request in progress: the sbx_req handed to modules, plus what the
 * core needs to read the body and log the outcome. */
struct req_ctx {
        struct sbx_req req;
        struct sbx_kv *query;
        size_t query_cnt, query_cap;
        struct sbx_kv *headers;
        size_t header_cnt, header_cap;
        char *body;
        size_t body_len, body_cap;
        uint64_t discarded; /* bytes dropped past the cap */
        int too_large;
        int logged;       /* an API route: goes into the request log */
        int64_t start_ns; /* monotonic */
        int started;      /* on_access has seen this request */
        char *raw_uri;    /* path and query exactly as sent, for the log */
        char tenant[SBX_TENANT_MAX + 1];
        char endpoint[48];
        char fault[16];
        enum sbx_mangle mangle;
};

/* The request this connection thread is serving, for sbx_req_note(). */
static _Thread_local struct req_ctx *cur_ctx;

/* ---- small helpers ------------------------------------------------------- */

static int64_t mono_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Bounded copy that always terminates (truncates silently). */
static void set_str(char *dst, size_t size, const char *src)
{
        size_t n = strlen(src);

        if (n >= size)
                n = size - 1;
        memcpy(dst, src, n);
        dst[n] = '\0';
}

static int starts_with(const char *s, const char *prefix)
{
        return !strncmp(s, prefix, strlen(prefix));
}

/* Parse a whole decimal integer; 0 on success. */
static int parse_i64(const char *s, int64_t *out)
{
        char *end;
        long long v;

        if (!s || !*s)
                return -1;
        errno = 0;
        v     = strtoll(s, &end, 10);
        if (errno || *end)
                return -1;
        *out = v;
        return 0;
}

uint64_t sbx_rng_next(uint64_t *state)
{
        uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

/* ---- sbx_req / sbx_resp helpers ------------------------------------------ */

const char *sbx_req_query(const struct sbx_req *req, const char *key)
{
        for (size_t i = 0; req && key && i < req->query_cnt; i++)
                if (!strcmp(req->query[i].key, key))
                        return req->query[i].value;
        return NULL;
}

const char *sbx_req_header(const struct sbx_req *req, const char *name)
{
        for (size_t i = 0; req && name && i < req->header_cnt; i++)
                if (!strcasecmp(req->headers[i].key, name))
                        return req->headers[i].value;
        return NULL;
}

/* Replace the body (taking @p body), status and content type. */
static void resp_set_body(struct sbx_resp *resp, int status, char *body,
                          size_t len, const char *ctype)
{
        free(resp->body);
        resp->status   = status;
        resp->body     = body;
        resp->body_len = len;
        set_str(resp->content_type, sizeof(resp->content_type), ctype);
}

void sbx_resp_json(struct sbx_resp *resp, int status, cJSON *json)
{
        char *text = json ? cJSON_PrintUnformatted(json) : NULL;

        cJSON_Delete(json);
        if (!text) {
                sbx_resp_text(resp, 500, "application/json",
                              "{\"message\":\"sandbox: out of memory\"}");
                return;
        }
        resp_set_body(resp, status, text, strlen(text), "application/json");
}

void sbx_resp_text(struct sbx_resp *resp, int status, const char *ctype,
                   const char *text)
{
        char *copy = strdup(text ? text : "");

        if (!copy) {
                resp_set_body(resp, 500, NULL, 0, "text/plain");
                return;
        }
        resp_set_body(resp, status, copy, strlen(copy),
                      ctype ? ctype : "text/plain");
}

void sbx_resp_header(struct sbx_resp *resp, const char *name, const char *value)
{
        char *n, *v;

        if (resp->header_cnt >= SBX_RESP_MAX_HEADERS) {
                osy_log_warn("sandbox: more than %d response headers, "
                             "dropped %s",
                             SBX_RESP_MAX_HEADERS, name);
                return;
        }
        n = strdup(name);
        v = strdup(value ? value : "");
        if (!n || !v) {
                free(n);
                free(v);
                return;
        }
        resp->headers[resp->header_cnt].name  = n;
        resp->headers[resp->header_cnt].value = v;
        resp->header_cnt++;
}

/* Free what a response owns; the core does this after sending. */
static void resp_free(struct sbx_resp *resp)
{
        free(resp->body);
        for (size_t i = 0; i < resp->header_cnt; i++) {
                free(resp->headers[i].name);
                free(resp->headers[i].value);
        }
        memset(resp, 0, sizeof(*resp));
}

/* {"error":code,"message":...}: the shape of every core error. */
static void resp_error(struct sbx_resp *resp, int status, const char *code,
                       const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void resp_error(struct sbx_resp *resp, int status, const char *code,
                       const char *fmt, ...)
{
        char msg[512];
        va_list ap;
        cJSON *o = cJSON_CreateObject();

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        cJSON_AddStringToObject(o, "error", code);
        cJSON_AddStringToObject(o, "message", msg);
        sbx_resp_json(resp, status, o);
}

/* ---- shared services ----------------------------------------------------- */

int64_t sbx_now_ms(sbx_t *sbx)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 +
               atomic_load(&sbx->clock_offset_ms);
}

void sbx_lock(sbx_t *sbx)
{
        pthread_mutex_lock(&sbx->lock);
}

void sbx_unlock(sbx_t *sbx)
{
        pthread_mutex_unlock(&sbx->lock);
}

double sbx_random(sbx_t *sbx)
{
        return (double)(sbx_rng_next(&sbx->rng) >> 11) * 0x1.0p-53;
}

/* An absolute CLOCK_MONOTONIC deadline for pthread_cond_timedwait(). */
static struct timespec deadline_after(int ms)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        return ts;
}

int sbx_wait(sbx_t *sbx, int timeout_ms)
{
        uint64_t gen = sbx->notify_gen;
        struct timespec until;

        if (timeout_ms < 0)
                timeout_ms = 0;
        until = deadline_after(timeout_ms);
        /* Spurious wake-ups loop; a notify or a stop ends the wait. */
        while (gen == sbx->notify_gen && !atomic_load(&sbx->stopping)) {
                if (pthread_cond_timedwait(&sbx->cond, &sbx->lock, &until) ==
                    ETIMEDOUT)
                        break;
        }
        return gen != sbx->notify_gen;
}

void sbx_notify(sbx_t *sbx)
{
        sbx->notify_gen++;
        pthread_cond_broadcast(&sbx->cond);
}

int sbx_stopping(sbx_t *sbx)
{
        return atomic_load(&sbx->stopping);
}

void sbx_sleep_ms(sbx_t *sbx, int ms)
{
        struct timespec until = deadline_after(ms > 0 ? ms : 0);

        pthread_mutex_lock(&sbx->sleep_lock);
        while (!atomic_load(&sbx->stopping)) {
                if (pthread_cond_timedwait(&sbx->sleep_cond, &sbx->sleep_lock,
                                           &until) == ETIMEDOUT)
                        break;
        }
        pthread_mutex_unlock(&sbx->sleep_lock);
}

struct sbx_ac *sbx_ac_state(sbx_t *sbx)
{
        return sbx->ac;
}

struct sbx_sf *sbx_sf_state(sbx_t *sbx)
{
        return sbx->sf;
}

struct sbx_cdc *sbx_cdc_state(sbx_t *sbx)
{
        return sbx->cdc;
}

const char *sbx_base_url(sbx_t *sbx)
{
        return sbx->base_url;
}

const char *sbx_option(sbx_t *sbx, const char *key)
{
        /* The last --set of a key wins. */
        for (size_t i = sbx->set_cnt; key && i > 0; i--)
                if (!strcmp(sbx->set[i - 1].key, key))
                        return sbx->set[i - 1].value;
        return NULL;
}

struct sbx_faults *sbx_faults_of(sbx_t *sbx)
{
        return sbx->faults;
}

void sbx_req_note(const struct sbx_req *req, const char *endpoint,
                  const char *fault)
{
        struct req_ctx *c = cur_ctx;

        /* Modules may build requests of their own (composite sub-requests):
         * only the one this thread received is noted. */
        if (!c || &c->req != req)
                return;
        if (endpoint)
                set_str(c->endpoint, sizeof(c->endpoint), endpoint);
        if (fault)
                set_str(c->fault, sizeof(c->fault), fault);
}

void sbx_req_mangle(const struct sbx_req *req, enum sbx_mangle mode)
{
        struct req_ctx *c = cur_ctx;

        if (c && &c->req == req)
                c->mangle = mode;
}

/* ---- tenants and fixtures ------------------------------------------------ */

/* Tenant names go into URLs, logs and file-free keys: keep them plain. */
static int tenant_name_ok(const char *t, size_t len)
{
        if (len == 0 || len > SBX_TENANT_MAX)
                return 0;
        for (size_t i = 0; i < len; i++)
                if (!isalnum((unsigned char)t[i]) && t[i] != '_' &&
                    t[i] != '-' && t[i] != '.')
                        return 0;
        return 1;
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* On every API request: a read lock and a binary search, no state lock. */
static int tenant_known(sbx_t *sbx, const char *t)
{
        int found;

        pthread_rwlock_rdlock(&sbx->tenants_lock);
        found = sbx->tenant_cnt && bsearch(&t, sbx->tenants, sbx->tenant_cnt,
                                           sizeof(char *), cmp_str) != NULL;
        pthread_rwlock_unlock(&sbx->tenants_lock);
        return found;
}

static void free_tenants(char **list, size_t cnt)
{
        for (size_t i = 0; list && i < cnt; i++)
                free(list[i]);
        free(list);
}

/* Check the fixture's shape before anything is reset, so a bad one leaves
 * the state alone. */
static int fixture_check(const cJSON *fx, char *err, size_t errsz)
{
        const cJSON *it, *tenants, *part;

        if (!cJSON_IsObject(fx)) {
                snprintf(err, errsz,
                         "fixture: the top level must be an "
                         "object {\"tenants\":{...}}");
                return -1;
        }
        cJSON_ArrayForEach(it, fx)
        {
                if (strcmp(it->string, "tenants") &&
                    strcmp(it->string, "faults") && it->string[0] != '_') {
                        snprintf(err, errsz,
                                 "fixture: unknown top-level key \"%s\" "
                                 "(expected \"tenants\", \"faults\")",
                                 it->string);
                        return -1;
                }
        }
        tenants = cJSON_GetObjectItemCaseSensitive(fx, "tenants");
        if (tenants && !cJSON_IsObject(tenants)) {
                snprintf(err, errsz,
                         "fixture: \"tenants\" must be an object "
                         "keyed by tenant name");
                return -1;
        }
        cJSON_ArrayForEach(it, tenants)
        {
                if (!tenant_name_ok(it->string, strlen(it->string))) {
                        snprintf(err, errsz,
                                 "fixture: bad tenant name \"%.80s\" (1-%d "
                                 "of A-Z a-z 0-9 _ - .)",
                                 it->string, SBX_TENANT_MAX);
                        return -1;
                }
                if (!cJSON_IsObject(it)) {
                        snprintf(err, errsz,
                                 "fixture: tenant \"%s\" must be an object "
                                 "{\"ac\":{...},\"sf\":{...}}",
                                 it->string);
                        return -1;
                }
                cJSON_ArrayForEach(part, it)
                {
                        if (strcmp(part->string, "ac") &&
                            strcmp(part->string, "sf") &&
                            part->string[0] != '_') {
                                snprintf(err, errsz,
                                         "fixture: tenant \"%s\": unknown "
                                         "key \"%s\" (expected \"ac\", "
                                         "\"sf\")",
                                         it->string, part->string);
                                return -1;
                        }
                        if (part->string[0] != '_' && !cJSON_IsObject(part)) {
                                snprintf(err, errsz,
                                         "fixture: tenant \"%s\": \"%s\" "
                                         "must be an object",
                                         it->string, part->string);
                                return -1;
                        }
                }
        }
        it = cJSON_GetObjectItemCaseSensitive(fx, "faults");
        if (it && !cJSON_IsArray(it)) {
                snprintf(err, errsz,
                         "fixture: \"faults\" must be an array "
                         "of fault rules");
                return -1;
        }
        return 0;
}

/* Empty every module (state lock held); CDC first, as SF feeds it. */
static void modules_reset(sbx_t *sbx)
{
        sbx_cdc_reset(sbx->cdc);
        sbx_sf_reset(sbx->sf);
        sbx_ac_reset(sbx->ac);
}

/*
 * Replace the module state and the fault rules with @p fx (state lock
 * held). The modules get every tenant, with {} for a missing part, so a
 * tenant listed with no data still exists.
 */
static int fixture_apply(sbx_t *sbx, const cJSON *fx, char *err, size_t errsz)
{
        const cJSON *tenants, *t, *faults;
        cJSON *empty = cJSON_CreateObject(), *added = NULL;
        char **names = NULL, **old;
        size_t cnt   = 0, old_cnt;
        int rc       = -1;

        if (!empty || fixture_check(fx, err, errsz))
                goto out;
        tenants = cJSON_GetObjectItemCaseSensitive(fx, "tenants");
        names = calloc((size_t)cJSON_GetArraySize(tenants) + 1, sizeof(char *));
        if (!names) {
                snprintf(err, errsz, "fixture: out of memory");
                goto out;
        }
        modules_reset(sbx);
        sbx_faults_clear(sbx->faults);
        cJSON_ArrayForEach(t, tenants)
        {
                const cJSON *ac = cJSON_GetObjectItemCaseSensitive(t, "ac");
                const cJSON *sf = cJSON_GetObjectItemCaseSensitive(t, "sf");
                char why[400]   = "";

                if (sbx_ac_seed(sbx->ac, t->string, ac ? ac : empty, why,
                                sizeof(why))) {
                        snprintf(err, errsz, "fixture: tenant \"%s\": ac: %s",
                                 t->string, why[0] ? why : "rejected");
                        goto out;
                }
                if (sbx_sf_seed(sbx->sf, t->string, sf ? sf : empty, why,
                                sizeof(why))) {
                        snprintf(err, errsz, "fixture: tenant \"%s\": sf: %s",
                                 t->string, why[0] ? why : "rejected");
                        goto out;
                }
                if (!(names[cnt] = strdup(t->string))) {
                        snprintf(err, errsz, "fixture: out of memory");
                        goto out;
                }
                cnt++;
        }
        faults = cJSON_GetObjectItemCaseSensitive(fx, "faults");
        if (faults && cJSON_GetArraySize(faults) > 0) {
                char why[400] = "";

                if (!(added = sbx_faults_add(sbx->faults, faults, why,
                                             sizeof(why)))) {
                        snprintf(err, errsz, "fixture: faults: %s", why);
                        goto out;
                }
        }
        qsort(names, cnt, sizeof(char *), cmp_str);
        pthread_rwlock_wrlock(&sbx->tenants_lock);
        old             = sbx->tenants;
        old_cnt         = sbx->tenant_cnt;
        sbx->tenants    = names;
        sbx->tenant_cnt = cnt;
        pthread_rwlock_unlock(&sbx->tenants_lock);
        names = old;
        cnt   = old_cnt;
        rc    = 0;
out:
        free_tenants(names, cnt);
        cJSON_Delete(added);
        cJSON_Delete(empty);
        return rc;
}

/* Load @p fx as the current fixture (state lock held). On failure the
 * previous fixture is loaded again, so the state stays consistent. */
static int fixture_load(sbx_t *sbx, const cJSON *fx, char *err, size_t errsz)
{
        cJSON *copy;
        char ignored[256];

        if (fixture_check(fx, err, errsz))
                return -1;
        if (!(copy = cJSON_Duplicate(fx, 1))) {
                snprintf(err, errsz, "fixture: out of memory");
                return -1;
        }
        if (fixture_apply(sbx, copy, err, errsz)) {
                cJSON_Delete(copy);
                if (sbx->fixture &&
                    fixture_apply(sbx, sbx->fixture, ignored, sizeof(ignored)))
                        osy_log_warn("sandbox: previous fixture failed to "
                                     "reload: %s",
                                     ignored);
                return -1;
        }
        cJSON_Delete(sbx->fixture);
        sbx->fixture = copy;
        return 0;
}

/* The module stream and every fault stream restart from @p seed. */
static void reseed(sbx_t *sbx, uint64_t seed)
{
        sbx->seed = seed;
        sbx->rng  = seed;
        sbx_faults_seed(sbx->faults, seed);
}

/* ---- core control routes ------------------------------------------------- */

typedef void (*control_fn)(sbx_t *sbx, const struct sbx_req *req,
                           struct sbx_resp *resp);

/* Parse a control's JSON body: NULL body is {} when @p empty_ok. */
static cJSON *control_body(const struct sbx_req *req, struct sbx_resp *resp,
                           int empty_ok)
{
        cJSON *json;
        const char *p = req->body;

        while (p < req->body + req->body_len && isspace((unsigned char)*p))
                p++;
        if (p == req->body + req->body_len) {
                if (empty_ok)
                        return cJSON_CreateObject();
                resp_error(resp, 400, "bad_request",
                           "%s %s: a JSON body is required", req->method,
                           req->url);
                return NULL;
        }
        json = cJSON_ParseWithLength(req->body, req->body_len);
        if (!json)
                resp_error(resp, 400, "bad_request",
                           "%s %s: the body is not valid JSON (near \"%.40s\")",
                           req->method, req->url,
                           cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "");
        return json;
}

/* Read an integer member; 1 if present and valid, 0 if absent, -1 bad. */
static int json_i64(const cJSON *o, const char *key, int64_t *out)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        if (!v)
                return 0;
        if (cJSON_IsNumber(v) && v->valuedouble >= -9.0e15 &&
            v->valuedouble <= 9.0e15 &&
            v->valuedouble == (double)(int64_t)v->valuedouble) {
                *out = (int64_t)v->valuedouble;
                return 1;
        }
        if (cJSON_IsString(v) && !parse_i64(v->valuestring, out))
                return 1;
        return -1;
}

static void ctl_ping(sbx_t *sbx, const struct sbx_req *req,
                     struct sbx_resp *resp)
{
        /* A core endpoint that fault rules apply to ("sandbox.ping"), so
         * a client's error handling can be tested without a module. */
        if (sbx_fault_apply(sbx, "sandbox.ping", req, resp))
                return;
        sbx_resp_text(resp, 200, "application/json", "{\"ok\":true}");
}

static void ctl_info(sbx_t *sbx, const struct sbx_req *req,
                     struct sbx_resp *resp)
{
        cJSON *o   = cJSON_CreateObject(),
              *set = cJSON_AddObjectToObject(o, "options"), *tl;

        (void)req;
        cJSON_AddStringToObject(o, "base_url", sbx->base_url);
        cJSON_AddNumberToObject(o, "port", sbx->port);
        sbx_lock(sbx);
        cJSON_AddNumberToObject(o, "seed", (double)sbx->seed);
        sbx_unlock(sbx);
        cJSON_AddNumberToObject(o, "max_body", (double)sbx->max_body);
        for (size_t i = 0; i < sbx->set_cnt; i++) {
                cJSON_DeleteItemFromObjectCaseSensitive(set, sbx->set[i].key);
                cJSON_AddStringToObject(set, sbx->set[i].key,
                                        sbx->set[i].value);
        }
        tl = cJSON_AddArrayToObject(o, "tenants");
        pthread_rwlock_rdlock(&sbx->tenants_lock);
        for (size_t i = 0; i < sbx->tenant_cnt; i++)
                cJSON_AddItemToArray(tl, cJSON_CreateString(sbx->tenants[i]));
        pthread_rwlock_unlock(&sbx->tenants_lock);
        sbx_resp_json(resp, 200, o);
}

static void ctl_wait(sbx_t *sbx, const struct sbx_req *req,
                     struct sbx_resp *resp)
{
        int64_t ms = 1000;
        int notified;
        cJSON *o;

        if (sbx_req_query(req, "ms") &&
            (parse_i64(sbx_req_query(req, "ms"), &ms) || ms < 0 ||
             ms > SBX_WAIT_MAX_MS)) {
                resp_error(resp, 400, "bad_request",
                           "ms must be an integer in 0..%d", SBX_WAIT_MAX_MS);
                return;
        }
        sbx_lock(sbx);
        notified = sbx_wait(sbx, (int)ms);
        sbx_unlock(sbx);
        o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "notified", notified);
        cJSON_AddBoolToObject(o, "stopping", sbx_stopping(sbx));
        sbx_resp_json(resp, 200, o);
}

static void ctl_notify(sbx_t *sbx, const struct sbx_req *req,
                       struct sbx_resp *resp)
{
        (void)req;
        sbx_lock(sbx);
        sbx_notify(sbx);
        sbx_unlock(sbx);
        sbx_resp_text(resp, 200, "application/json", "{\"ok\":true}");
}

static void ctl_fixture_get(sbx_t *sbx, const struct sbx_req *req,
                            struct sbx_resp *resp)
{
        cJSON *copy;

        (void)req;
        sbx_lock(sbx);
        copy = sbx->fixture ? cJSON_Duplicate(sbx->fixture, 1)
                            : cJSON_CreateObject();
        sbx_unlock(sbx);
        sbx_resp_json(resp, 200, copy);
}

static void ctl_fixture_post(sbx_t *sbx, const struct sbx_req *req,
                             struct sbx_resp *resp)
{
        char err[512];
        cJSON *fx = control_body(req, resp, 0);
        int rc;

        if (!fx)
                return;
        sbx_lock(sbx);
        rc = fixture_load(sbx, fx, err, sizeof(err));
        /* Long-polls re-check what changed. */
        sbx_notify(sbx);
        sbx_unlock(sbx);
        cJSON_Delete(fx);
        if (rc)
                resp_error(resp, 400, "bad_fixture", "%s", err);
        else
                sbx_resp_text(resp, 200, "application/json", "{\"ok\":true}");
}

static void ctl_reset(sbx_t *sbx, const struct sbx_req *req,
                      struct sbx_resp *resp)
{
        char err[512] = "";
        int rc        = 0;
        cJSON *body   = control_body(req, resp, 1);
        const cJSON *empty;

        if (!body)
                return;
        /* {"empty":true} drops the fixture too. */
        empty = cJSON_GetObjectItemCaseSensitive(body, "empty");
        sbx_lock(sbx);
        atomic_store(&sbx->clock_offset_ms, 0);
        reseed(sbx, sbx->start_seed);
        if (cJSON_IsTrue(empty)) {
                cJSON *none = cJSON_CreateObject();

                rc = none ? fixture_load(sbx, none, err, sizeof(err)) : -1;
                cJSON_Delete(none);
        } else if (sbx->fixture) {
                rc = fixture_apply(sbx, sbx->fixture, err, sizeof(err));
        } else {
                modules_reset(sbx);
                sbx_faults_clear(sbx->faults);
        }
        sbx_notify(sbx);
        sbx_unlock(sbx);
        sbx_reqlog_clear(sbx->log);
        sbx_reqlog_clear_stats(sbx->log);
        cJSON_Delete(body);
        if (rc)
                resp_error(resp, 500, "reset_failed", "%s",
                           err[0] ? err : "reset failed");
        else
                sbx_resp_text(resp, 200, "application/json", "{\"ok\":true}");
}

/* One tenant's {"ac":...,"sf":...} (state lock held); null for a
 * module that keeps no state in this build. */
static cJSON *dump_tenant(sbx_t *sbx, const char *t)
{
        cJSON *o = cJSON_CreateObject(), *ac, *sf;

        ac = sbx_ac_dump(sbx->ac, t);
        sf = sbx_sf_dump(sbx->sf, t);
        cJSON_AddItemToObject(o, "ac", ac ? ac : cJSON_CreateNull());
        cJSON_AddItemToObject(o, "sf", sf ? sf : cJSON_CreateNull());
        return o;
}

static void ctl_state(sbx_t *sbx, const struct sbx_req *req,
                      struct sbx_resp *resp)
{
        const char *t = sbx_req_query(req, "tenant");
        cJSON *o, *all;
        char **names = NULL;
        size_t cnt   = 0;

        if (t && *t) {
                if (!tenant_known(sbx, t)) {
                        resp_error(resp, 404, "unknown_tenant",
                                   "unknown sandbox tenant \"%.80s\"", t);
                        return;
                }
                sbx_lock(sbx);
                o = dump_tenant(sbx, t);
                sbx_unlock(sbx);
                cJSON_AddStringToObject(o, "tenant", t);
                sbx_resp_json(resp, 200, o);
                return;
        }
        o   = cJSON_CreateObject();
        all = cJSON_AddObjectToObject(o, "tenants");
        sbx_lock(sbx);
        /* The tenant list only changes under the state lock too. */
        pthread_rwlock_rdlock(&sbx->tenants_lock);
        names = sbx->tenants;
        cnt   = sbx->tenant_cnt;
        for (size_t i = 0; i < cnt; i++)
                cJSON_AddItemToObject(all, names[i],
                                      dump_tenant(sbx, names[i]));
        pthread_rwlock_unlock(&sbx->tenants_lock);
        sbx_unlock(sbx);
        cJSON_AddNumberToObject(o, "now_ms", (double)sbx_now_ms(sbx));
        sbx_resp_json(resp, 200, o);
}

/* {"now_ms","now","offset_ms"}: the answer of both clock routes. */
static cJSON *clock_json(sbx_t *sbx)
{
        int64_t now = sbx_now_ms(sbx);
        time_t secs = (time_t)(now / 1000);
        struct tm tm;
        char iso[40], buf[48];
        cJSON *o = cJSON_CreateObject();

        gmtime_r(&secs, &tm);
        strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf, sizeof(buf), "%s.%03dZ", iso, (int)(now % 1000));
        cJSON_AddNumberToObject(o, "now_ms", (double)now);
        cJSON_AddStringToObject(o, "now", buf);
        cJSON_AddNumberToObject(o, "offset_ms",
                                (double)atomic_load(&sbx->clock_offset_ms));
        return o;
}

static void ctl_clock_get(sbx_t *sbx, const struct sbx_req *req,
                          struct sbx_resp *resp)
{
        (void)req;
        sbx_resp_json(resp, 200, clock_json(sbx));
}

static void ctl_clock_post(sbx_t *sbx, const struct sbx_req *req,
                           struct sbx_resp *resp)
{
        cJSON *body = control_body(req, resp, 0);
        int64_t adv = 0, off = 0, now = 0;
        int has_adv, has_off, has_now;

        if (!body)
                return;
        has_adv = json_i64(body, "advance_ms", &adv);
        has_off = json_i64(body, "offset_ms", &off);
        has_now = json_i64(body, "now_ms", &now);
        cJSON_Delete(body);
        if (has_adv < 0 || has_off < 0 || has_now < 0 ||
            has_adv + has_off + has_now != 1 || adv < 0) {
                resp_error(resp, 400, "bad_request",
                           "clock: give exactly one of {\"advance_ms\":N>=0}, "
                           "{\"offset_ms\":N} or {\"now_ms\":N} (integers)");
                return;
        }
        if (has_adv)
                atomic_fetch_add(&sbx->clock_offset_ms, adv);
        else if (has_off)
                atomic_store(&sbx->clock_offset_ms, off);
        else
                atomic_store(&sbx->clock_offset_ms,
                             now - (sbx_now_ms(sbx) -
                                    atomic_load(&sbx->clock_offset_ms)));
        /* Time-based state (windows, expiries) is re-checked by waiters. */
        sbx_lock(sbx);
        sbx_notify(sbx);
        sbx_unlock(sbx);
        sbx_resp_json(resp, 200, clock_json(sbx));
}

static void ctl_seed_get(sbx_t *sbx, const struct sbx_req *req,
                         struct sbx_resp *resp)
{
        cJSON *o = cJSON_CreateObject();

        (void)req;
        sbx_lock(sbx);
        cJSON_AddNumberToObject(o, "seed", (double)sbx->seed);
        sbx_unlock(sbx);
        sbx_resp_json(resp, 200, o);
}

static void ctl_seed_post(sbx_t *sbx, const struct sbx_req *req,
                          struct sbx_resp *resp)
{
        cJSON *body = control_body(req, resp, 0);
        int64_t seed;
        int has;

        if (!body)
                return;
        has = json_i64(body, "seed", &seed);
        cJSON_Delete(body);
        if (has != 1 || seed < 0) {
                resp_error(resp, 400, "bad_request",
                           "seed: expected {\"seed\":N} with an integer "
                           "N >= 0");
                return;
        }
        sbx_lock(sbx);
        reseed(sbx, (uint64_t)seed);
        sbx_unlock(sbx);
        ctl_seed_get(sbx, req, resp);
}

static void ctl_requests_get(sbx_t *sbx, const struct sbx_req *req,
                             struct sbx_resp *resp)
{
        const char *since = sbx_req_query(req, "since_seq");
        const char *limit = sbx_req_query(req, "limit");
        const char *t     = sbx_req_query(req, "tenant");
        const char *ep    = sbx_req_query(req, "endpoint");
        int64_t s = 0, l = 1000000;

        if ((since && (parse_i64(since, &s) || s < 0)) ||
            (limit && (parse_i64(limit, &l) || l < 0))) {
                resp_error(resp, 400, "bad_request",
                           "since_seq and limit must be integers >= 0");
                return;
        }
        sbx_resp_json(resp, 200,
                      sbx_reqlog_query(sbx->log, t && *t ? t : NULL,
                                       ep && *ep ? ep : NULL, (uint64_t)s,
                                       (size_t)l));
}

static void ctl_requests_delete(sbx_t *sbx, const struct sbx_req *req,
                                struct sbx_resp *resp)
{
        (void)req;
        sbx_reqlog_clear(sbx->log);
        sbx_resp_text(resp, 200, "application/json", "{\"ok\":true}");
}

static void ctl_stats_get(sbx_t *sbx, const struct sbx_req *req,
                          struct sbx_resp *resp)
{
        (void)req;
        sbx_resp_json(resp, 200, sbx_reqlog_stats(sbx->log));
}

static void ctl_stats_delete(sbx_t *sbx, const struct sbx_req *req,
                             struct sbx_resp *resp)
{
        (void)req;
        sbx_reqlog_clear_stats(sbx->log);
        sbx_resp_text(resp, 200, "application/json", "{\"ok\":true}");
}

static void ctl_faults_get(sbx_t *sbx, const struct sbx_req *req,
                           struct sbx_resp *resp)
{
        (void)req;
        sbx_resp_json(resp, 200, sbx_faults_list(sbx->faults));
}

static void ctl_faults_post(sbx_t *sbx, const struct sbx_req *req,
                            struct sbx_resp *resp)
{
        char err[400] = "";
        cJSON *body   = control_body(req, resp, 0), *added, *o;

        if (!body)
                return;
        added = sbx_faults_add(sbx->faults, body, err, sizeof(err));
        cJSON_Delete(body);
        if (!added) {
                resp_error(resp, 400, "bad_fault", "faults: %s", err);
                return;
        }
        o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "rules", added);
        sbx_resp_json(resp, 201, o);
}

static void ctl_faults_delete(sbx_t *sbx, const struct sbx_req *req,
                              struct sbx_resp *resp)
{
        const char *id = sbx_req_query(req, "id");
        int64_t v;

        if (!id) {
                sbx_faults_clear(sbx->faults);
                sbx_resp_text(resp, 200, "application/json", "{\"ok\":true}");
                return;
        }
        if (parse_i64(id, &v)) {
                resp_error(resp, 400, "bad_request", "id must be an integer");
                return;
        }
        if (!sbx_faults_remove(sbx->faults, (long)v)) {
                resp_error(resp, 404, "not_found", "no fault rule with id %lld",
                           (long long)v);
                return;
        }
        sbx_resp_text(resp, 200, "application/json", "{\"ok\":true}");
}

static const struct control {
        const char *method, *path;
        control_fn fn;
} controls[] = {
    {"GET", "/sandbox/ping", ctl_ping},
    {"GET", "/sandbox/info", ctl_info},
    {"GET", "/sandbox/wait", ctl_wait},
    {"POST", "/sandbox/notify", ctl_notify},
    {"GET", "/sandbox/fixture", ctl_fixture_get},
    {"POST", "/sandbox/fixture", ctl_fixture_post},
    {"POST", "/sandbox/reset", ctl_reset},
    {"GET", "/sandbox/state", ctl_state},
    {"GET", "/sandbox/clock", ctl_clock_get},
    {"POST", "/sandbox/clock", ctl_clock_post},
    {"GET", "/sandbox/seed", ctl_seed_get},
    {"POST", "/sandbox/seed", ctl_seed_post},
    {"GET", "/sandbox/requests", ctl_requests_get},
    {"DELETE", "/sandbox/requests", ctl_requests_delete},
    {"GET", "/sandbox/stats", ctl_stats_get},
    {"DELETE", "/sandbox/stats", ctl_stats_delete},
    {"GET", "/sandbox/faults", ctl_faults_get},
    {"POST", "/sandbox/faults", ctl_faults_post},
    {"DELETE", "/sandbox/faults", ctl_faults_delete},
};

/* The core's own /sandbox/ routes: exact path, then method; a known path
 * with another method is a 405 that lists the allowed ones. */
static void route_control(sbx_t *sbx, struct req_ctx *c, struct sbx_resp *resp)
{
        const struct sbx_req *req = &c->req;
        char allow[64]            = "";
        size_t n                  = 0;

        for (size_t i = 0; i < sizeof(controls) / sizeof(controls[0]); i++) {
                if (strcmp(controls[i].path, req->url))
                        continue;
                if (!strcmp(controls[i].method, req->method)) {
                        /* The ping route stands in for an API endpoint. */
                        if (controls[i].fn == ctl_ping) {
                                c->logged = 1;
                                set_str(c->endpoint, sizeof(c->endpoint),
                                        "sandbox.ping");
                        }
                        controls[i].fn(sbx, req, resp);
                        return;
                }
                n += (size_t)snprintf(allow + n, sizeof(allow) - n, "%s%s",
                                      n ? ", " : "", controls[i].method);
                if (n >= sizeof(allow))
                        n = sizeof(allow) - 1;
        }
        if (allow[0]) {
                resp_error(resp, 405, "method_not_allowed",
                           "%s %s: method not allowed (allowed: %s)",
                           req->method, req->url, allow);
                sbx_resp_header(resp, "Allow", allow);
                return;
        }
        resp_error(resp, 404, "not_found", "no sandbox control %s %s",
                   req->method, req->url);
}

/* ---- routing ------------------------------------------------------------- */

/* Split "<tenant>/rest" at @p p: tenant into c->tenant, returns the rest
 * ("/..." or ""), or NULL if the tenant segment is missing or bad. */
static const char *take_tenant(struct req_ctx *c, const char *p)
{
        const char *slash = strchr(p, '/');
        size_t len        = slash ? (size_t)(slash - p) : strlen(p);

        if (!tenant_name_ok(p, len))
                return NULL;
        memcpy(c->tenant, p, len);
        c->tenant[len] = '\0';
        return p + len;
}

/* 404 for a tenant the fixture does not list. */
static void unknown_tenant(struct sbx_resp *resp, const char *platform,
                           const char *t)
{
        char msg[160];
        cJSON *o, *arr;

        snprintf(msg, sizeof(msg), "unknown sandbox tenant \"%s\"", t);
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "message", msg);
        /* In each platform's own error shape, so clients parse it. */
        if (!strcmp(platform, "sf")) {
                cJSON_AddStringToObject(o, "errorCode", "NOT_FOUND");
                arr = cJSON_CreateArray();
                cJSON_AddItemToArray(arr, o);
                sbx_resp_json(resp, 404, arr);
                return;
        }
        cJSON_AddStringToObject(o, "error", "unknown_tenant");
        sbx_resp_json(resp, 404, o);
}

/*
 * Route by prefix (see sandbox.h): API requests are logged and need a
 * known tenant; module controls need one too; the rest are core controls
 * or 404. The endpoint class starts as the platform and is refined by the
 * module's sbx_fault_apply() call.
 */
static void route(sbx_t *sbx, struct req_ctx *c, struct sbx_resp *resp)
{
        struct sbx_req *req = &c->req;
        const char *url     = req->url, *rest;
        int is_ac;

        if (starts_with(url, "/ac/") || starts_with(url, "/sf/")) {
                is_ac     = url[1] == 'a';
                c->logged = 1;
                set_str(c->endpoint, sizeof(c->endpoint), is_ac ? "ac" : "sf");
                if (!(rest = take_tenant(c, url + 4))) {
                        resp_error(resp, 404, "not_found",
                                   "bad or missing tenant in %s", url);
                        return;
                }
                req->tenant = c->tenant;
                req->path   = rest;
                if (!tenant_known(sbx, c->tenant)) {
                        unknown_tenant(resp, is_ac ? "ac" : "sf", c->tenant);
                        return;
                }
                if (is_ac) {
                        sbx_ac_handle(sbx, req, resp);
                } else if (starts_with(rest, "/cometd") &&
                           (rest[7] == '/' || rest[7] == '\0')) {
                        set_str(c->endpoint, sizeof(c->endpoint), "cometd");
                        sbx_cometd_handle(sbx, req, resp);
                } else {
                        sbx_sf_handle(sbx, req, resp);
                }
                return;
        }
        if (starts_with(url, "/sandbox/ac/") ||
            starts_with(url, "/sandbox/sf/")) {
                is_ac = url[9] == 'a';
                if (!(rest = take_tenant(c, url + 12))) {
                        resp_error(resp, 404, "not_found",
                                   "bad or missing tenant in %s", url);
                        return;
                }
                req->tenant = c->tenant;
                req->path   = rest;
                if (!tenant_known(sbx, c->tenant)) {
                        unknown_tenant(resp, "core", c->tenant);
                        return;
                }
                if (is_ac)
                        sbx_ac_control(sbx, req, resp);
                else
                        sbx_sf_control(sbx, req, resp);
                return;
        }
        if (starts_with(url, "/sandbox/")) {
                /* A core route may carry a tenant (ping: for tenant faults). */
                const char *t = sbx_req_query(req, "tenant");

                if (t && tenant_name_ok(t, strlen(t)))
                        set_str(c->tenant, sizeof(c->tenant), t);
                req->tenant = c->tenant;
                req->path   = url;
                route_control(sbx, c, resp);
                return;
        }
        c->logged = 1;
        set_str(c->endpoint, sizeof(c->endpoint), "unrouted");
        resp_error(resp, 404, "not_found",
                   "no such route: %s %s (the sandbox serves /ac/<tenant>/..., "
                   "/sf/<tenant>/... and /sandbox/...)",
                   req->method, url);
}

/* ---- libmicrohttpd glue -------------------------------------------------- */

/* MHD iterator: gather query arguments or headers into the ctx's arrays.
 * The strings stay MHD's, valid until the request completes. */
static enum MHD_Result collect_kv(void *cls, enum MHD_ValueKind kind,
                                  const char *key, const char *value)
{
        struct req_ctx *c = cls;
        struct sbx_kv **arr;
        size_t *cnt, *cap;

        if (kind == MHD_GET_ARGUMENT_KIND) {
                arr = &c->query;
                cnt = &c->query_cnt;
                cap = &c->query_cap;
        } else {
                arr = &c->headers;
                cnt = &c->header_cnt;
                cap = &c->header_cap;
        }
        if (*cnt == *cap) {
                size_t ncap      = *cap ? *cap * 2 : 16;
                struct sbx_kv *n = realloc(*arr, ncap * sizeof(**arr));

                if (!n)
                        return MHD_NO;
                *arr = n;
                *cap = ncap;
        }
        (*arr)[*cnt].key   = key;
        (*arr)[*cnt].value = value ? value : "";
        (*cnt)++;
        return MHD_YES;
}

static void ctx_free(struct req_ctx *c)
{
        if (!c)
                return;
        free(c->query);
        free(c->headers);
        free(c->body);
        free(c->raw_uri);
        free(c);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
        (void)cls;
        (void)conn;
        (void)toe;
        ctx_free(*con_cls);
        *con_cls = NULL;
}

/* Keep a body chunk, or count it as dropped once over the cap (the
 * answer is a 413 at the end). @returns 0 to make MHD close the
 * connection: out of memory, or far too much data to drain. */
static int body_append(sbx_t *sbx, struct req_ctx *c, const char *data,
                       size_t len)
{
        if (c->too_large || c->body_len + len > sbx->max_body) {
                c->too_large = 1;
                c->discarded += len;
                return c->discarded <= SBX_DISCARD_MAX;
        }
        if (c->body_len + len + 1 > c->body_cap) {
                size_t ncap = c->body_cap ? c->body_cap : 1024;
                char *n;

                while (ncap < c->body_len + len + 1)
                        ncap *= 2;
                if (!(n = realloc(c->body, ncap)))
                        return 0;
                c->body     = n;
                c->body_cap = ncap;
        }
        memcpy(c->body + c->body_len, data, len);
        c->body_len += len;
        c->body[c->body_len] = '\0';
        return 1;
}

/* One request log entry (and stats) for an API request. */
static void log_request(sbx_t *sbx, struct req_ctx *c, int status)
{
        struct sbx_logentry e = {0};
        const char *url       = c->raw_uri ? c->raw_uri : c->req.url;

        e.method       = c->req.method;
        e.url          = url;
        e.tenant       = c->tenant;
        e.endpoint     = c->endpoint;
        e.fault        = c->fault;
        e.call_options = sbx_req_header(&c->req, "Sforce-Call-Options");
        e.user_agent   = sbx_req_header(&c->req, "User-Agent");
        e.body         = c->req.body;
        e.body_len     = c->req.body_len;
        e.status       = status;
        e.time_ms      = sbx_now_ms(sbx);
        e.duration_ms  = (double)(mono_ns() - c->start_ns) / 1e6;
        sbx_reqlog_add(sbx->log, &e);
        if (sbx->verbose)
                osy_log_info("sandbox: %s %s -> %d (%.1f ms)%s%s",
                             c->req.method, url, status, e.duration_ms,
                             c->fault[0] ? " fault " : "", c->fault);
}

/* A truncate fault's body: what it serves, then an error so MHD closes the
 * connection short of the announced Content-Length. */
struct cut_body {
        char *body;
        size_t len, cut;
};

static ssize_t cut_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        struct cut_body *cb = cls;
        size_t n;

        if (pos >= cb->cut)
                return MHD_CONTENT_READER_END_WITH_ERROR;
        n = cb->cut - (size_t)pos;
        if (n > max)
                n = max;
        memcpy(buf, cb->body + pos, n);
        return (ssize_t)n;
}

static void cut_free(void *cls)
{
        struct cut_body *cb = cls;

        free(cb->body);
        free(cb);
}

static struct MHD_Response *cut_response(struct sbx_resp *resp)
{
        struct cut_body *cb = malloc(sizeof(*cb));
        struct MHD_Response *r;

        if (!cb)
                return NULL;
        cb->body = resp->body;
        cb->len  = resp->body_len;
        cb->cut  = resp->body_len / 2;
        r = MHD_create_response_from_callback(cb->len, 4096, cut_read, cb,
                                              cut_free);
        if (!r)
                free(cb);
        else
                resp->body = NULL; /* cut_free frees it */
        return r;
}

/* Hand @p resp to MHD (the body moves, headers are copied), spoiled as
 * a truncate/malformed fault asks; @p resp is empty afterwards. */
static enum MHD_Result send_resp(struct MHD_Connection *conn,
                                 struct sbx_resp *resp, enum sbx_mangle mangle)
{
        struct MHD_Response *r;
        enum MHD_Result ret;

        if (mangle == SBX_MANGLE_MALFORMED)
                resp->body_len /= 2;
        if (mangle == SBX_MANGLE_TRUNCATE && resp->body && resp->body_len) {
                r = cut_response(resp);
        } else if (resp->body) {
                r = MHD_create_response_from_buffer(resp->body_len, resp->body,
                                                    MHD_RESPMEM_MUST_FREE);
                if (r)
                        resp->body = NULL; /* MHD frees it now */
        } else {
                r = MHD_create_response_from_buffer(0, (void *)"",
                                                    MHD_RESPMEM_PERSISTENT);
        }
        if (!r) {
                resp_free(resp);
                return MHD_NO;
        }
        if (resp->content_type[0])
                MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                        resp->content_type);
        for (size_t i = 0; i < resp->header_cnt; i++)
                MHD_add_response_header(r, resp->headers[i].name,
                                        resp->headers[i].value);
        ret = MHD_queue_response(conn, (unsigned int)resp->status, r);
        MHD_destroy_response(r);
        resp_free(resp);
        return ret;
}

static enum MHD_Result dispatch(sbx_t *sbx, struct MHD_Connection *conn,
                                struct req_ctx *c, const char *url,
                                const char *method)
{
        struct sbx_resp resp = {0};
        int status;

        c->req.method = method;
        c->req.url    = url;
        c->req.tenant = c->tenant;
        c->req.path   = url;
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_kv, c);
        MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_kv, c);
        c->req.query      = c->query;
        c->req.query_cnt  = c->query_cnt;
        c->req.headers    = c->headers;
        c->req.header_cnt = c->header_cnt;
        c->req.body       = c->body ? c->body : "";
        c->req.body_len   = c->body_len;

        if (c->too_large) {
                c->logged = 1;
                /* Logged under its platform, though no module saw it. */
                set_str(c->endpoint, sizeof(c->endpoint),
                        starts_with(url, "/ac/")   ? "ac"
                        : starts_with(url, "/sf/") ? "sf"
                                                   : "sandbox");
                if (starts_with(url, "/ac/") || starts_with(url, "/sf/"))
                        (void)take_tenant(c, url + 4);
                resp_error(&resp, 413, "too_large",
                           "request body over the sandbox limit of %zu bytes",
                           sbx->max_body);
        } else {
                cur_ctx = c;
                route(sbx, c, &resp);
                cur_ctx = NULL;
        }
        if (!resp.status && !resp.reset_connection)
                resp_error(&resp, 404, "not_found", "no such resource: %s %s",
                           method, url);
        /* A truncate fault on an empty answer can only drop it. */
        if (c->mangle == SBX_MANGLE_TRUNCATE && !resp.body_len)
                resp.reset_connection = 1;
        status = resp.reset_connection ? 0 : resp.status;
        if (c->logged)
                log_request(sbx, c, status);
        if (resp.reset_connection) {
                resp_free(&resp);
                return MHD_NO; /* MHD closes the socket, sends nothing */
        }
        return send_resp(conn, &resp, c->mangle);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
        sbx_t *sbx        = cls;
        struct req_ctx *c = *con_cls;

        (void)version;
        if (!atomic_load(&sbx->ready)) {
                struct sbx_resp resp = {0};

                resp_error(&resp, 503, "starting", "the sandbox is starting");
                return send_resp(conn, &resp, SBX_MANGLE_NONE);
        }
        if (!c || !c->started) {
                const char *cl, *expect;
                int64_t len;

                if (!c && !(c = calloc(1, sizeof(*c))))
                        return MHD_NO;
                if (!c->start_ns)
                        c->start_ns = mono_ns();
                c->started = 1;
                *con_cls   = c;
                cl         = MHD_lookup_connection_value(
                            conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_EXPECT);
                /* Too big and announced: refuse before the body comes if
                 * the client waits for "100 Continue" or it is huge. */
                if (cl && !parse_i64(cl, &len) &&
                    (uint64_t)len > sbx->max_body &&
                    (expect || (uint64_t)len > SBX_DISCARD_MAX)) {
                        c->too_large = 1;
                        return dispatch(sbx, conn, c, url, method);
                }
                return MHD_YES;
        }
        if (*upload_data_size) {
                if (!body_append(sbx, c, upload_data, *upload_data_size))
                        return MHD_NO;
                *upload_data_size = 0;
                return MHD_YES;
        }
        return dispatch(sbx, conn, c, url, method);
}

/* MHD hands the raw request URI here first; what this returns becomes
 * the request's context, so the log can show the URL exactly as sent. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
        struct req_ctx *c = calloc(1, sizeof(*c));

        (void)cls;
        (void)conn;
        if (c) {
                c->start_ns = mono_ns();
                c->raw_uri  = strdup(uri ? uri : "");
        }
        return c;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
        char msg[512];
        size_t n;

        (void)cls;
        vsnprintf(msg, sizeof(msg), fmt, ap);
        n = strlen(msg);
        while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
                msg[--n] = '\0';
        /* Reset faults close connections on purpose: not worth a warning. */
        if (strstr(msg, "Application reported internal error"))
                osy_log_debug("sandbox: microhttpd: %s", msg);
        else
                osy_log_warn("sandbox: microhttpd: %s", msg);
}

/* ---- lifecycle ----------------------------------------------------------- */

/* --fixture: read the whole file, parse it, load it. */
static int load_fixture_file(sbx_t *sbx, const char *path, char *err,
                             size_t errsz)
{
        FILE *f    = fopen(path, "rb");
        char *text = NULL;
        size_t len = 0, cap = 0, n;
        cJSON *fx = NULL;
        int rc    = -1;

        if (!f) {
                snprintf(err, errsz, "fixture %s: %s", path, strerror(errno));
                return -1;
        }
        do {
                if (len + 65536 + 1 > cap) {
                        char *t;

                        cap = cap ? cap * 2 : 131072;
                        if (!(t = realloc(text, cap))) {
                                snprintf(err, errsz, "fixture: out of memory");
                                goto out;
                        }
                        text = t;
                }
                n = fread(text + len, 1, 65536, f);
                len += n;
        } while (n > 0);
        if (ferror(f)) {
                snprintf(err, errsz, "fixture %s: read error", path);
                goto out;
        }
        if (!(fx = cJSON_ParseWithLength(text ? text : "", len))) {
                snprintf(err, errsz,
                         "fixture %s: not valid JSON (near "
                         "\"%.40s\")",
                         path, cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "");
                goto out;
        }
        sbx_lock(sbx);
        rc = fixture_load(sbx, fx, err, errsz);
        sbx_unlock(sbx);
out:
        cJSON_Delete(fx);
        free(text);
        fclose(f);
        return rc;
}

static int init_sync(sbx_t *sbx)
{
        pthread_condattr_t ca;
        int rc = 0;

        /* Waits measure real elapsed time, immune to clock changes. */
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        rc |= pthread_mutex_init(&sbx->lock, NULL);
        rc |= pthread_cond_init(&sbx->cond, &ca);
        rc |= pthread_mutex_init(&sbx->sleep_lock, NULL);
        rc |= pthread_cond_init(&sbx->sleep_cond, &ca);
        rc |= pthread_rwlock_init(&sbx->tenants_lock, NULL);
        pthread_condattr_destroy(&ca);
        return rc ? -1 : 0;
}

int sbx_server_start(sbx_t **sp, const struct sbx_opts *opts, char *err,
                     size_t errsz)
{
        struct sockaddr_storage ss = {0};
        struct sockaddr_in *sin    = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *sin6  = (struct sockaddr_in6 *)&ss;
        unsigned int flags         = MHD_USE_THREAD_PER_CONNECTION |
                             MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                             MHD_USE_ERROR_LOG;
        const char *addr = opts->bind && *opts->bind ? opts->bind : "127.0.0.1";
        const union MHD_DaemonInfo *info;
        sbx_t *sbx = NULL;
        int rc     = -1;

        *sp = NULL;
        if (opts->port < 0 || opts->port > 65535) {
                snprintf(err, errsz, "bad port %d", opts->port);
                return -1;
        }
        if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
                sin->sin_family = AF_INET;
                sin->sin_port   = htons((uint16_t)opts->port);
        } else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
                sin6->sin6_family = AF_INET6;
                sin6->sin6_port   = htons((uint16_t)opts->port);
                flags |= MHD_USE_IPv6;
        } else {
                snprintf(err, errsz,
                         "bind address \"%s\" is not an IPv4 or IPv6 literal",
                         addr);
                return -1;
        }
        if (!(sbx = calloc(1, sizeof(*sbx))) || init_sync(sbx)) {
                snprintf(err, errsz, "out of memory");
                free(sbx);
                return -1;
        }
        sbx->max_body = opts->max_body ? opts->max_body : SBX_DEFAULT_MAX_BODY;
        sbx->verbose  = opts->verbose;
        sbx->start_seed = opts->seed;
        sbx->seed       = opts->seed;
        sbx->rng        = opts->seed;
        sbx->faults     = sbx_faults_new(opts->seed);
        sbx->log        = sbx_reqlog_new(opts->log_size ? opts->log_size
                                                        : SBX_DEFAULT_LOG_SIZE);
        sbx->set        = calloc(opts->set_cnt + 1, sizeof(*sbx->set));
        if (!sbx->faults || !sbx->log || !sbx->set) {
                snprintf(err, errsz, "out of memory");
                goto out;
        }
        for (size_t i = 0; i < opts->set_cnt; i++) {
                sbx->set[i].key   = strdup(opts->set[i].key);
                sbx->set[i].value = strdup(opts->set[i].value);
                sbx->set_cnt++;
                if (!sbx->set[i].key || !sbx->set[i].value) {
                        snprintf(err, errsz, "out of memory");
                        goto out;
                }
        }
        errno       = 0;
        sbx->daemon = MHD_start_daemon(
            flags, (uint16_t)opts->port, NULL, NULL, on_access, sbx,
            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
            (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned int)SBX_CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned int)SBX_CONNECTION_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED,
            on_completed, NULL, MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
            MHD_OPTION_END);
        if (!sbx->daemon) {
                snprintf(err, errsz, "cannot listen on %s port %d: %s", addr,
                         opts->port, errno ? strerror(errno) : "failed");
                goto out;
        }
        info = MHD_get_daemon_info(sbx->daemon, MHD_DAEMON_INFO_BIND_PORT);
        if (!info || !info->port) {
                snprintf(err, errsz, "cannot learn the bound port");
                goto out;
        }
        sbx->port = info->port;
        /* Clients on this host reach a wildcard bind through loopback. */
        if (!strcmp(addr, "0.0.0.0") || !strcmp(addr, "::"))
                addr = "127.0.0.1";
        snprintf(sbx->base_url, sizeof(sbx->base_url),
                 strchr(addr, ':') ? "http://[%s]:%d" : "http://%s:%d", addr,
                 sbx->port);
        /* The modules and the fixture come after listening, so that
         * sbx_base_url() is right from the start (instance_url, webhook
         * origins); requests before that get 503 (see on_access). */
        sbx->ac  = sbx_ac_new(sbx);
        sbx->sf  = sbx_sf_new(sbx);
        sbx->cdc = sbx_cdc_new(sbx);
        if (opts->fixture_path &&
            load_fixture_file(sbx, opts->fixture_path, err, errsz))
                goto out;
        atomic_store(&sbx->ready, 1);
        *sp = sbx;
        sbx = NULL;
        rc  = 0;
out:
        sbx_server_free(sbx);
        return rc;
}

int sbx_server_port(sbx_t *sbx)
{
        return sbx->port;
}

void sbx_server_stop(sbx_t *sbx)
{
        if (!sbx)
                return;
        atomic_store(&sbx->stopping, 1);
        /* Wake long-polls and fault sleeps so their threads can finish;
         * then MHD closes the sockets and joins the threads. */
        pthread_mutex_lock(&sbx->lock);
        pthread_cond_broadcast(&sbx->cond);
        pthread_mutex_unlock(&sbx->lock);
        pthread_mutex_lock(&sbx->sleep_lock);
        pthread_cond_broadcast(&sbx->sleep_cond);
        pthread_mutex_unlock(&sbx->sleep_lock);
        if (sbx->daemon) {
                MHD_stop_daemon(sbx->daemon);
                sbx->daemon = NULL;
        }
}

void sbx_server_free(sbx_t *sbx)
{
        if (!sbx)
                return;
        sbx_server_stop(sbx);
        sbx_cdc_free(sbx->cdc);
        sbx_sf_free(sbx->sf);
        sbx_ac_free(sbx->ac);
        sbx_faults_free(sbx->faults);
        sbx_reqlog_free(sbx->log);
        for (size_t i = 0; i < sbx->set_cnt; i++) {
                free((char *)sbx->set[i].key);
                free((char *)sbx->set[i].value);
        }
        free(sbx->set);
        free_tenants(sbx->tenants, sbx->tenant_cnt);
        cJSON_Delete(sbx->fixture);
        pthread_rwlock_destroy(&sbx->tenants_lock);
        pthread_cond_destroy(&sbx->sleep_cond);
        pthread_mutex_destroy(&sbx->sleep_lock);
        pthread_cond_destroy(&sbx->cond);
        pthread_mutex_destroy(&sbx->lock);
        free(sbx);
}
