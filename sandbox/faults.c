/*
 * faults.c - fault rules: matched by endpoint class, tenant and method,
 * triggered by count, every-nth and a seeded probability (each rule has its
 * own random stream, so one tenant's traffic does not shift another's
 * faults and the same seed replays the same failures).
 */
#include "server_internal.h"

#include <fnmatch.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A timeout fault holds the connection this long unless told otherwise:
 * longer than any sane client timeout. */
#define FAULT_DEFAULT_TIMEOUT_MS 120000
#define FAULT_MAX_MS (10 * 60 * 1000)

enum fault_kind {
        FK_STATUS,
        FK_JSON503,
        FK_HTML503,
        FK_LATENCY,
        FK_TIMEOUT,
        FK_RESET,
        FK_STORM429,
        FK_TRUNCATE,
        FK_MALFORMED,
};

static const char *const kind_names[] = {
    "status", "json503",  "html503",  "latency",   "timeout",
    "reset",  "storm429", "truncate", "malformed",
};

/* One rule as parsed; counters and the stream under the faults lock. */
struct rule {
        long id;
        cJSON *def; /* as given, for listing */
        char *endpoint, *tenant, *method;
        enum fault_kind kind;
        int status;
        char *body; /* NULL: the platform's default shape */
        char *content_type;
        char *retry_after;
        struct sbx_kv *headers;
        size_t header_cnt;
        int ms;
        double probability;
        long count; /* -1: unlimited */
        long remaining;
        long every_nth;
        int has_seed;
        uint64_t seed;
        uint64_t rng;
        uint64_t seen, fired;
};

/* The rules in the order they were added (the order they are tried). */
struct sbx_faults {
        pthread_mutex_t lock;
        struct rule **rules;
        size_t cnt, cap;
        long next_id;
        uint64_t seed;
        uint64_t ordinal; /* rules created since the last seed */
        atomic_size_t active;
};

/* The answer of a triggered rule, copied out so the lock is not held
 * while the response is built or a connection held open. */
struct action {
        enum fault_kind kind;
        int status, ms;
        char *body, *content_type, *retry_after;
        struct sbx_kv *headers;
        size_t header_cnt;
        int latency_ms;
        int mangle; /* FK_TRUNCATE or FK_MALFORMED, 0: none */
        int hit;
};

static void rule_free(struct rule *r)
{
        if (!r)
                return;
        cJSON_Delete(r->def);
        free(r->endpoint);
        free(r->tenant);
        free(r->method);
        free(r->body);
        free(r->content_type);
        free(r->retry_after);
        for (size_t i = 0; i < r->header_cnt; i++) {
                free((char *)r->headers[i].key);
                free((char *)r->headers[i].value);
        }
        free(r->headers);
        free(r);
}

/* The stream of a rule: its own seed, or the server seed and the rule's
 * ordinal since that seed was set. */
static void rule_seed(struct rule *r, uint64_t seed, uint64_t ordinal)
{
        uint64_t s = r->has_seed
                         ? r->seed
                         : seed ^ ((ordinal + 1) * 0xd1b54a32d192ed03ULL);

        r->rng       = sbx_rng_next(&s);
        r->seen      = 0;
        r->fired     = 0;
        r->remaining = r->count;
}

struct sbx_faults *sbx_faults_new(uint64_t seed)
{
        struct sbx_faults *f = calloc(1, sizeof(*f));

        if (!f)
                return NULL;
        pthread_mutex_init(&f->lock, NULL);
        f->seed    = seed;
        f->next_id = 1;
        return f;
}

void sbx_faults_clear(struct sbx_faults *f)
{
        pthread_mutex_lock(&f->lock);
        for (size_t i = 0; i < f->cnt; i++)
                rule_free(f->rules[i]);
        f->cnt = 0;
        atomic_store(&f->active, 0);
        pthread_mutex_unlock(&f->lock);
}

void sbx_faults_free(struct sbx_faults *f)
{
        if (!f)
                return;
        sbx_faults_clear(f);
        free(f->rules);
        pthread_mutex_destroy(&f->lock);
        free(f);
}

void sbx_faults_seed(struct sbx_faults *f, uint64_t seed)
{
        pthread_mutex_lock(&f->lock);
        f->seed    = seed;
        f->ordinal = 0;
        for (size_t i = 0; i < f->cnt; i++)
                rule_seed(f->rules[i], seed, f->ordinal++);
        pthread_mutex_unlock(&f->lock);
}

/* ---- parsing ------------------------------------------------------------- */

/* Optional integer member in [lo, hi]: 1 read, 0 absent, -1 bad (why in
 * @p err). */
static int get_int(const cJSON *o, const char *key, long lo, long hi, long *out,
                   char *err, size_t errsz)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        if (!v)
                return 0;
        if (!cJSON_IsNumber(v) ||
            v->valuedouble != (double)(long)v->valuedouble ||
            v->valuedouble < (double)lo || v->valuedouble > (double)hi) {
                snprintf(err, errsz, "\"%s\" must be an integer in %ld..%ld",
                         key, lo, hi);
                return -1;
        }
        *out = (long)v->valuedouble;
        return 1;
}

/* Optional non-empty string member, copied: 1 read, 0 absent, -1 bad. */
static int get_str(const cJSON *o, const char *key, char **out, char *err,
                   size_t errsz)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        if (!v)
                return 0;
        if (!cJSON_IsString(v) || !*v->valuestring) {
                snprintf(err, errsz, "\"%s\" must be a non-empty string", key);
                return -1;
        }
        if (!(*out = strdup(v->valuestring))) {
                snprintf(err, errsz, "out of memory");
                return -1;
        }
        return 1;
}

/* Anything else in a rule is a typo worth reporting, not ignoring. */
static const char *const known_keys[] = {
    "endpoint",    "tenant", "method",     "kind",       "status",
    "body",        "ms",     "latency_ms", "timeout_ms", "retry_after",
    "probability", "count",  "every_nth",  "seed",       "content_type",
    "headers",     "name",   NULL,
};

/* "headers": extra response headers of an answering rule. */
static int parse_headers(struct rule *r, const cJSON *h, char *err,
                         size_t errsz)
{
        const cJSON *it;
        size_t n = (size_t)cJSON_GetArraySize(h);

        if (!cJSON_IsObject(h) || n > 8) {
                snprintf(err, errsz,
                         "\"headers\" must be an object of at "
                         "most 8 string values");
                return -1;
        }
        if (!(r->headers = calloc(n + 1, sizeof(*r->headers))))
                goto oom;
        cJSON_ArrayForEach(it, h)
        {
                if (!cJSON_IsString(it)) {
                        snprintf(err, errsz, "header \"%s\" must be a string",
                                 it->string);
                        return -1;
                }
                r->headers[r->header_cnt].key   = strdup(it->string);
                r->headers[r->header_cnt].value = strdup(it->valuestring);
                r->header_cnt++;
                if (!r->headers[r->header_cnt - 1].key ||
                    !r->headers[r->header_cnt - 1].value)
                        goto oom;
        }
        return 0;
oom:
        snprintf(err, errsz, "out of memory");
        return -1;
}

/* Validate one rule object into a struct rule (not yet seeded or listed).
 * @returns NULL with the reason in @p err. */
static struct rule *rule_parse(const cJSON *o, char *err, size_t errsz)
{
        struct rule *r = calloc(1, sizeof(*r));
        const cJSON *it, *kind, *prob, *body, *seed, *ra;
        long ms = -1, v = 0;
        size_t k;

        if (!r) {
                snprintf(err, errsz, "out of memory");
                return NULL;
        }
        r->count = -1;
        if (!cJSON_IsObject(o)) {
                snprintf(err, errsz, "a rule must be an object");
                goto bad;
        }
        cJSON_ArrayForEach(it, o)
        {
                for (k = 0; known_keys[k]; k++)
                        if (!strcmp(known_keys[k], it->string))
                                break;
                if (!known_keys[k] && it->string[0] != '_') {
                        snprintf(err, errsz, "unknown key \"%s\"", it->string);
                        goto bad;
                }
        }
        kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
        for (k = 0; cJSON_IsString(kind) &&
                    k < sizeof(kind_names) / sizeof(kind_names[0]);
             k++)
                if (!strcmp(kind_names[k], kind->valuestring))
                        break;
        if (!cJSON_IsString(kind) ||
            k == sizeof(kind_names) / sizeof(kind_names[0])) {
                snprintf(err, errsz,
                         "\"kind\" must be one of status, json503, html503, "
                         "latency, timeout, reset, storm429, truncate, "
                         "malformed");
                goto bad;
        }
        r->kind = (enum fault_kind)k;
        if (get_str(o, "endpoint", &r->endpoint, err, errsz) < 0 ||
            get_str(o, "tenant", &r->tenant, err, errsz) < 0 ||
            get_str(o, "method", &r->method, err, errsz) < 0 ||
            get_str(o, "content_type", &r->content_type, err, errsz) < 0)
                goto bad;
        if (!r->endpoint && !(r->endpoint = strdup("*"))) {
                snprintf(err, errsz, "out of memory");
                goto bad;
        }
        r->status = r->kind == FK_STORM429                           ? 429
                    : r->kind == FK_JSON503 || r->kind == FK_HTML503 ? 503
                                                                     : 500;
        if (get_int(o, "status", 100, 599, &v, err, errsz) < 0)
                goto bad;
        if (cJSON_GetObjectItemCaseSensitive(o, "status")) {
                if (r->kind != FK_STATUS) {
                        snprintf(err, errsz,
                                 "\"status\" only goes with kind "
                                 "\"status\"");
                        goto bad;
                }
                r->status = (int)v;
        }
        if (get_int(o, "ms", 0, FAULT_MAX_MS, &ms, err, errsz) < 0 ||
            get_int(o, "latency_ms", 0, FAULT_MAX_MS, &ms, err, errsz) < 0 ||
            get_int(o, "timeout_ms", 0, FAULT_MAX_MS, &ms, err, errsz) < 0)
                goto bad;
        if (r->kind == FK_LATENCY && ms < 0) {
                snprintf(err, errsz, "kind \"latency\" needs \"ms\"");
                goto bad;
        }
        r->ms = ms >= 0                 ? (int)ms
                : r->kind == FK_TIMEOUT ? FAULT_DEFAULT_TIMEOUT_MS
                                        : 0;
        ra    = cJSON_GetObjectItemCaseSensitive(o, "retry_after");
        if (ra) {
                char buf[32];

                if (cJSON_IsNumber(ra) && ra->valuedouble >= 0 &&
                    ra->valuedouble <= 86400 &&
                    ra->valuedouble == (double)(long)ra->valuedouble) {
                        snprintf(buf, sizeof(buf), "%ld",
                                 (long)ra->valuedouble);
                        r->retry_after = strdup(buf);
                } else if (cJSON_IsString(ra) && *ra->valuestring) {
                        r->retry_after = strdup(ra->valuestring);
                } else {
                        snprintf(err, errsz,
                                 "\"retry_after\" must be seconds "
                                 "(0..86400) or a string such as "
                                 "an HTTP-date");
                        goto bad;
                }
        } else if (r->kind == FK_STORM429) {
                r->retry_after = strdup("1");
        }
        body = cJSON_GetObjectItemCaseSensitive(o, "body");
        if (body) {
                r->body = cJSON_IsString(body) ? strdup(body->valuestring)
                                               : cJSON_PrintUnformatted(body);
                if (!r->body) {
                        snprintf(err, errsz, "out of memory");
                        goto bad;
                }
        }
        it = cJSON_GetObjectItemCaseSensitive(o, "headers");
        if (it && parse_headers(r, it, err, errsz))
                goto bad;
        prob           = cJSON_GetObjectItemCaseSensitive(o, "probability");
        r->probability = 1.0;
        if (prob) {
                if (!cJSON_IsNumber(prob) || prob->valuedouble < 0 ||
                    prob->valuedouble > 1) {
                        snprintf(err, errsz,
                                 "\"probability\" must be a number in 0..1");
                        goto bad;
                }
                r->probability = prob->valuedouble;
        }
        if (get_int(o, "count", 1, 1000000000L, &r->count, err, errsz) < 0 ||
            get_int(o, "every_nth", 1, 1000000000L, &r->every_nth, err, errsz) <
                0)
                goto bad;
        seed = cJSON_GetObjectItemCaseSensitive(o, "seed");
        if (seed) {
                if (!cJSON_IsNumber(seed) || seed->valuedouble < 0) {
                        snprintf(err, errsz,
                                 "\"seed\" must be an integer >= 0");
                        goto bad;
                }
                r->has_seed = 1;
                r->seed     = (uint64_t)seed->valuedouble;
        }
        if (!(r->def = cJSON_Duplicate(o, 1))) {
                snprintf(err, errsz, "out of memory");
                goto bad;
        }
        return r;
bad:
        rule_free(r);
        return NULL;
}

/* A rule as listed: its definition plus id, counters and remaining. */
static cJSON *rule_json(const struct rule *r)
{
        cJSON *o = cJSON_Duplicate(r->def, 1);

        if (!o)
                return NULL;
        cJSON_DeleteItemFromObjectCaseSensitive(o, "id");
        cJSON_AddNumberToObject(o, "id", (double)r->id);
        if (!cJSON_GetObjectItemCaseSensitive(o, "endpoint"))
                cJSON_AddStringToObject(o, "endpoint", r->endpoint);
        cJSON_AddNumberToObject(o, "seen", (double)r->seen);
        cJSON_AddNumberToObject(o, "fired", (double)r->fired);
        if (r->count >= 0)
                cJSON_AddNumberToObject(o, "remaining", (double)r->remaining);
        return o;
}

cJSON *sbx_faults_add(struct sbx_faults *f, const cJSON *json, char *err,
                      size_t errsz)
{
        const cJSON *list    = json, *it;
        struct rule **parsed = NULL;
        size_t n = 0, i = 0;
        cJSON *out = NULL;
        char why[300];

        if (cJSON_IsObject(json) &&
            cJSON_GetObjectItemCaseSensitive(json, "rules"))
                list = cJSON_GetObjectItemCaseSensitive(json, "rules");
        n = cJSON_IsArray(list) ? (size_t)cJSON_GetArraySize(list) : 1;
        if (cJSON_IsArray(list) && n == 0) {
                snprintf(err, errsz, "no rules given");
                return NULL;
        }
        if (!(parsed = calloc(n, sizeof(*parsed)))) {
                snprintf(err, errsz, "out of memory");
                return NULL;
        }
        /* All or nothing: parse every rule before adding any. */
        if (cJSON_IsArray(list)) {
                cJSON_ArrayForEach(it, list)
                {
                        if (!(parsed[i] = rule_parse(it, why, sizeof(why)))) {
                                snprintf(err, errsz, "rule %zu: %s", i, why);
                                goto out;
                        }
                        i++;
                }
        } else if (!(parsed[i++] = rule_parse(list, err, errsz))) {
                goto out;
        }
        out = cJSON_CreateArray();
        pthread_mutex_lock(&f->lock);
        if (f->cnt + n > f->cap) {
                size_t ncap = f->cap ? f->cap * 2 : 16;
                struct rule **nr;

                while (ncap < f->cnt + n)
                        ncap *= 2;
                if (!(nr = realloc(f->rules, ncap * sizeof(*nr)))) {
                        pthread_mutex_unlock(&f->lock);
                        snprintf(err, errsz, "out of memory");
                        cJSON_Delete(out);
                        out = NULL;
                        goto out;
                }
                f->rules = nr;
                f->cap   = ncap;
        }
        for (i = 0; i < n; i++) {
                parsed[i]->id = f->next_id++;
                rule_seed(parsed[i], f->seed, f->ordinal++);
                f->rules[f->cnt++] = parsed[i];
                cJSON_AddItemToArray(out, rule_json(parsed[i]));
                parsed[i] = NULL;
        }
        atomic_store(&f->active, f->cnt);
        pthread_mutex_unlock(&f->lock);
        i = n;
out:
        for (size_t j = 0; j < n; j++)
                rule_free(parsed[j]);
        free(parsed);
        return out;
}

cJSON *sbx_faults_list(struct sbx_faults *f)
{
        cJSON *o   = cJSON_CreateObject(),
              *arr = cJSON_AddArrayToObject(o, "rules");

        pthread_mutex_lock(&f->lock);
        for (size_t i = 0; i < f->cnt; i++)
                cJSON_AddItemToArray(arr, rule_json(f->rules[i]));
        cJSON_AddNumberToObject(o, "seed", (double)f->seed);
        pthread_mutex_unlock(&f->lock);
        return o;
}

int sbx_faults_remove(struct sbx_faults *f, long id)
{
        int found = 0;

        pthread_mutex_lock(&f->lock);
        for (size_t i = 0; i < f->cnt; i++) {
                if (f->rules[i]->id != id)
                        continue;
                rule_free(f->rules[i]);
                memmove(&f->rules[i], &f->rules[i + 1],
                        (f->cnt - i - 1) * sizeof(*f->rules));
                f->cnt--;
                found = 1;
                break;
        }
        atomic_store(&f->active, f->cnt);
        pthread_mutex_unlock(&f->lock);
        return found;
}

/* ---- applying ------------------------------------------------------------ */

/* Does this request concern the rule at all (before any trigger)? */
static int rule_matches(const struct rule *r, const char *endpoint,
                        const struct sbx_req *req)
{
        if (r->count >= 0 && r->remaining <= 0)
                return 0;
        if (fnmatch(r->endpoint, endpoint, 0))
                return 0;
        if (r->tenant && strcmp(r->tenant, req->tenant ? req->tenant : ""))
                return 0;
        if (r->method && strcasecmp(r->method, req->method ? req->method : ""))
                return 0;
        return 1;
}

/* Decide under the lock; copy the answer out. */
static int decide(struct sbx_faults *f, const char *endpoint,
                  const struct sbx_req *req, struct action *a)
{
        pthread_mutex_lock(&f->lock);
        for (size_t i = 0; i < f->cnt; i++) {
                struct rule *r = f->rules[i];

                if (!rule_matches(r, endpoint, req))
                        continue;
                r->seen++;
                if (r->every_nth > 0 && r->seen % (uint64_t)r->every_nth)
                        continue;
                /* Draw only for probabilistic rules, so adding a certain
                 * rule does not shift another's stream. */
                if (r->probability < 1.0 &&
                    (double)(sbx_rng_next(&r->rng) >> 11) * 0x1.0p-53 >=
                        r->probability)
                        continue;
                if (r->count >= 0)
                        r->remaining--;
                r->fired++;
                if (r->kind == FK_LATENCY) {
                        /* Latency adds up and lets later rules apply. */
                        a->latency_ms += r->ms;
                        continue;
                }
                if (r->kind == FK_TRUNCATE || r->kind == FK_MALFORMED) {
                        /* These spoil the module's own answer. */
                        a->mangle = (int)r->kind;
                        continue;
                }
                a->hit    = 1;
                a->kind   = r->kind;
                a->status = r->status;
                a->ms     = r->ms;
                a->body   = r->body ? strdup(r->body) : NULL;
                a->content_type =
                    r->content_type ? strdup(r->content_type) : NULL;
                a->retry_after = r->retry_after ? strdup(r->retry_after) : NULL;
                if (r->header_cnt &&
                    (a->headers = calloc(r->header_cnt, sizeof(*a->headers)))) {
                        for (size_t h = 0; h < r->header_cnt; h++) {
                                a->headers[h].key = strdup(r->headers[h].key);
                                a->headers[h].value =
                                    strdup(r->headers[h].value);
                        }
                        a->header_cnt = r->header_cnt;
                }
                break;
        }
        pthread_mutex_unlock(&f->lock);
        return a->hit || a->latency_ms > 0 || a->mangle;
}

/* Free the copies decide() made. */
static void action_free(struct action *a)
{
        free(a->body);
        free(a->content_type);
        free(a->retry_after);
        for (size_t h = 0; h < a->header_cnt; h++) {
                free((char *)a->headers[h].key);
                free((char *)a->headers[h].value);
        }
        free(a->headers);
}

/* The platform's own error shape for a fault without a body, so clients
 * exercise their real error parsing: SF answers a JSON array of
 * {message, errorCode}, AC an object with "message". */
static void default_body(struct sbx_resp *resp, const char *endpoint,
                         int status, const char *message, const char *code)
{
        int sf   = !strncmp(endpoint, "sf.", 3) || !strcmp(endpoint, "cometd");
        cJSON *o = cJSON_CreateObject(), *arr;

        cJSON_AddStringToObject(o, "message", message);
        if (!sf) {
                sbx_resp_json(resp, status, o);
                return;
        }
        cJSON_AddStringToObject(o, "errorCode", code);
        arr = cJSON_CreateArray();
        cJSON_AddItemToArray(arr, o);
        sbx_resp_json(resp, status, arr);
}

static const char html503[] =
    "<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title>"
    "</head>\n<body><h1>Service Unavailable</h1>\n<p>The server is "
    "temporarily unable to service your request due to maintenance downtime "
    "or capacity problems. Please try again later.</p>\n</body></html>\n";

/* Write the answer of a triggered answering rule into @p resp. */
static void answer(struct action *a, const char *endpoint,
                   struct sbx_resp *resp)
{
        char msg[96];

        switch (a->kind) {
        case FK_HTML503:
                sbx_resp_text(resp, a->status, "text/html; charset=utf-8",
                              a->body ? a->body : html503);
                break;
        case FK_JSON503:
                if (!a->body)
                        default_body(resp, endpoint, a->status,
                                     "Server too busy, try again later",
                                     "SERVER_UNAVAILABLE");
                break;
        case FK_STORM429:
                if (!a->body)
                        default_body(resp, endpoint, a->status,
                                     "Too Many Requests",
                                     "REQUEST_LIMIT_EXCEEDED");
                sbx_resp_header(resp, "Retry-After", a->retry_after);
                break;
        default:
                snprintf(msg, sizeof(msg), "sandbox fault: injected HTTP %d",
                         a->status);
                if (!a->body)
                        default_body(resp, endpoint, a->status, msg,
                                     a->status >= 500 ? "UNKNOWN_EXCEPTION"
                                                      : "BAD_REQUEST");
                break;
        }
        if (a->body && a->kind != FK_HTML503)
                sbx_resp_text(resp, a->status, "application/json", a->body);
        if (a->content_type)
                snprintf(resp->content_type, sizeof(resp->content_type), "%s",
                         a->content_type);
        if (a->retry_after && a->kind != FK_STORM429)
                sbx_resp_header(resp, "Retry-After", a->retry_after);
        for (size_t h = 0; h < a->header_cnt; h++)
                if (a->headers[h].key && a->headers[h].value)
                        sbx_resp_header(resp, a->headers[h].key,
                                        a->headers[h].value);
}

int sbx_fault_apply(sbx_t *sbx, const char *endpoint, const struct sbx_req *req,
                    struct sbx_resp *resp)
{
        struct sbx_faults *f = sbx_faults_of(sbx);
        struct action a      = {0};

        if (!endpoint)
                endpoint = "";
        sbx_req_note(req, endpoint, NULL);
        /* The hot path: no rules, no lock. */
        if (!f || atomic_load(&f->active) == 0 || !decide(f, endpoint, req, &a))
                return 0;
        if (a.latency_ms > 0) {
                sbx_req_note(req, NULL, "latency");
                sbx_sleep_ms(sbx, a.latency_ms);
        }
        if (a.mangle) {
                sbx_req_note(req, NULL, kind_names[a.mangle]);
                sbx_req_mangle(req, a.mangle == FK_TRUNCATE
                                        ? SBX_MANGLE_TRUNCATE
                                        : SBX_MANGLE_MALFORMED);
        }
        if (!a.hit) {
                action_free(&a);
                return 0;
        }
        sbx_req_note(req, NULL, kind_names[a.kind]);
        if (a.kind == FK_TIMEOUT) {
                /* Hold the connection, then drop it unanswered. */
                sbx_sleep_ms(sbx, a.ms);
                resp->reset_connection = 1;
        } else if (a.kind == FK_RESET) {
                resp->reset_connection = 1;
        } else {
                answer(&a, endpoint, resp);
        }
        action_free(&a);
        return 1;
}
