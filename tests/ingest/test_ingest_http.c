/*
 * test_ingest_http.c - the ac-ingest binary end to end: real-format
 * webhooks posted with libcurl land on optsync.ac.events as the right
 * envelopes; every error status; Kafka down -> spool -> Kafka up ->
 * everything delivered in order; kill -9 during a burst loses no
 * acknowledged event.
 */
#include "osy_test.h"
#include "osy_test_kafka.h"
#include "acwh_samples.h"
#include "ingest_harness.h"
#include "optsync/envelope.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define MAX_RECS 4096

static struct osy_test_kafka kafka;
static struct ingest_proc ing;
static struct rec recs[MAX_RECS];

static int group_setup(void **state)
{
        (void)state;
        return osy_test_kafka_start(&kafka, 1, INGEST_TEST_PARTITIONS);
}

static int group_teardown(void **state)
{
        (void)state;
        osy_test_kafka_stop(&kafka);
        return 0;
}

/* Each case: its own tenant (so its records are told apart on the shared
 * topic), its own process and spool. */
static int case_teardown(void **state)
{
        (void)state;
        /* Leave the broker up whatever the case did. */
        osy_test_kafka_control(&kafka, "broker-up 1", NULL, 0);
        ingest_cleanup(&ing);
        return 0;
}

static void start(const char *tenant, const char *const *env)
{
        if (ingest_start(&ing, kafka.bootstrap, tenant, env))
                fail_msg("ac-ingest did not start (log %s)", ing.log);
}

/* POST @p body; the answer must be @p status. @returns the body. */
static char *post_expect(const char *body, long status)
{
        struct http_reply r;

        ingest_post(&ing, body, &r);
        if (r.status != status)
                fail_msg("status %ld (want %ld): %s", r.status, status, r.body);
        return r.body;
}

static void decode_rec(const struct rec *r, struct osy_msg *m)
{
        char errstr[OSY_ERRSTR_SIZE];

        if (osy_msg_decode(r->value, r->len, m, errstr, sizeof(errstr)))
                fail_msg("record does not decode: %s: %s", errstr, r->value);
}

/* ---- happy path ---------------------------------------------------------- */

static void curl_posts_land_as_envelopes(void **state)
{
        static const struct {
                const char *body;
                osy_ac_kind_t kind;
        } posts[]       = {{ACWH_SUBSCRIBE, OSY_AC_SUBSCRIBE},
                           {ACWH_UNSUB_PUBLIC, OSY_AC_UNSUBSCRIBE},
                           {ACWH_UNSUB_ADMIN, OSY_AC_UNSUBSCRIBE},
                           {ACWH_UPDATE, OSY_AC_UPDATE},
                           {ACWH_TAG_ADDED, OSY_AC_TAG_ADDED},
                           {ACWH_TAG_REMOVED, OSY_AC_TAG_REMOVED},
                           {ACWH_BOUNCE, OSY_AC_BOUNCE},
                           {ACWH_BOUNCE_HARD, OSY_AC_BOUNCE}};
        const size_t np = sizeof(posts) / sizeof(posts[0]);
        char ids[8][33];
        (void)state;

        start("land", NULL);
        for (size_t i = 0; i < np; i++) {
                char *body = post_expect(posts[i].body, 200);
                assert_non_null(strstr(body, "\"stored\":\"kafka\""));
                assert_int_equal(reply_ids(body, &ids[i], 1), 1);
                free(body);
        }
        size_t n = consume_tenant(kafka.bootstrap, "land", np, 300, 15000, recs,
                                  MAX_RECS);
        assert_int_equal(n, np);
        /* One person: one partition, in the order they were answered. */
        for (size_t i = 0; i < np; i++) {
                struct osy_msg m;
                decode_rec(&recs[i], &m);
                assert_string_equal(recs[i].key, "land|jane.doe@example.com");
                assert_string_equal(m.id, ids[i]);
                assert_string_equal(m.tenant, "land");
                assert_int_equal(m.source, OSY_SRC_AC);
                assert_int_equal(m.ac_event.kind, posts[i].kind);
                assert_int_equal(recs[i].partition, recs[0].partition);
                if (i == 1) {
                        assert_string_equal(m.ac_event.list_id, "2");
                        assert_string_equal(m.ac_event.campaign_id, "41");
                        assert_int_equal(m.ac_event.initiated_by,
                                         OSY_INIT_PUBLIC);
                }
                if (i == 6)
                        assert_int_equal(m.ac_event.bounce_type,
                                         OSY_BOUNCE_UNKNOWN);
                if (i == 7)
                        assert_int_equal(m.ac_event.bounce_type,
                                         OSY_BOUNCE_HARD);
                osy_msg_clear(&m);
        }
        recs_free(recs, n);
        assert_int_equal(WEXITSTATUS(ingest_stop(&ing, 10000)), 0);
}

static void duplicate_delivery_keeps_one_id(void **state)
{
        char a[1][33], b[1][33], c[1][33];
        char *body;
        (void)state;

        start("dup", NULL);
        body = post_expect(ACWH_UNSUB_ADMIN, 200);
        reply_ids(body, a, 1);
        free(body);
        body = post_expect(ACWH_UNSUB_ADMIN, 200);
        reply_ids(body, b, 1);
        free(body);
        assert_string_equal(a[0], b[0]);
        size_t n = consume_tenant(kafka.bootstrap, "dup", 2, 300, 15000, recs,
                                  MAX_RECS);
        assert_int_equal(n, 2);
        assert_string_equal(recs[0].id, a[0]);
        assert_string_equal(recs[1].id, a[0]);
        recs_free(recs, n);

        /* A relay's JSON view of the same event: the same id again. */
        struct http_reply r;
        char url[256];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/webhooks/ac/dup/%s",
                 ing.port, ing.token);
        http_call("POST", url, "application/json", ACWH_UNSUB_JSON,
                  strlen(ACWH_UNSUB_JSON), 0, &r);
        assert_int_equal(r.status, 200);
        reply_ids(r.body, c, 1);
        free(r.body);
        body = post_expect(ACWH_UNSUB_PUBLIC, 200);
        reply_ids(body, a, 1);
        free(body);
        assert_string_equal(a[0], c[0]);
}

static void ignored_type_acknowledged_not_produced(void **state)
{
        struct http_reply r;
        char *body;
        (void)state;

        start("ign", NULL);
        body = post_expect(ACWH_OPEN, 200);
        assert_non_null(strstr(body, "\"ignored\":true"));
        free(body);
        free(post_expect(ACWH_SUBSCRIBE, 200));
        size_t n = consume_tenant(kafka.bootstrap, "ign", 1, 500, 15000, recs,
                                  MAX_RECS);
        assert_int_equal(n, 1); /* only the subscribe */
        assert_non_null(strstr(recs[0].value, "\"kind\":\"subscribe\""));
        recs_free(recs, n);
        admin_get(&ing, "/metrics", &r);
        assert_int_equal(r.status, 200);
        assert_true(metric_value(r.body,
                                 "optsync_ingest_requests_total{"
                                 "type=\"other\",outcome=\"ignored\"}") == 1);
        assert_true(metric_value(r.body,
                                 "optsync_ingest_requests_total{"
                                 "type=\"subscribe\",outcome=\"kafka\"}") == 1);
        free(r.body);
}

/* ---- error statuses ------------------------------------------------------ */

static void status_400_malformed_with_reason(void **state)
{
        char *body;
        (void)state;

        start("bad", NULL);
        body = post_expect("type=unsubscribe&contact[id]=1&"
                           "contact[email]=a@b.c",
                           400);
        assert_string_equal(body, "{\"error\":\"date_time: missing\"}");
        free(body);
        body = post_expect("type=update&date_time=2024-01-01T00:00:00Z&"
                           "contact[id]=1&contact[email]=nobody",
                           400);
        assert_non_null(strstr(body, "contact[email]"));
        free(body);
        body = post_expect("no type here", 400);
        assert_non_null(strstr(body, "type: missing"));
        free(body);
        /* Bad JSON, flagged by its content type. */
        struct http_reply r;
        char url[256];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/webhooks/ac/bad/%s",
                 ing.port, ing.token);
        http_call("POST", url, "application/json", "{\"type\":", 8, 0, &r);
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(r.body, "not valid JSON"));
        free(r.body);
        /* Nothing of this reached Kafka; a good one still does. */
        free(post_expect(ACWH_SUBSCRIBE, 200));
        size_t n = consume_tenant(kafka.bootstrap, "bad", 1, 500, 15000, recs,
                                  MAX_RECS);
        assert_int_equal(n, 1);
        recs_free(recs, n);
        admin_get(&ing, "/metrics", &r);
        assert_true(metric_value(r.body,
                                 "optsync_ingest_requests_total{type="
                                 "\"unsubscribe\",outcome=\"bad_request\"}") ==
                    1);
        free(r.body);
}

static void status_401_wrong_token(void **state)
{
        struct http_reply r;
        char url[256];
        (void)state;

        start("tok", NULL);
        /* Same length, one byte off; shorter; longer; empty-ish. */
        static const char *const bad[] = {"tok-tok-s3creT", "tok",
                                          "tok-tok-s3cret-and-more", "%20"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(url, sizeof(url),
                         "http://127.0.0.1:%d/webhooks/ac/tok/%s", ing.port,
                         bad[i]);
                http_call("POST", url, "application/x-www-form-urlencoded",
                          ACWH_SUBSCRIBE, strlen(ACWH_SUBSCRIBE), 0, &r);
                assert_int_equal(r.status, 401);
                assert_string_equal(r.body, "{\"error\":\"wrong token\"}");
                free(r.body);
        }
        /* The tenant's own token works. */
        free(post_expect(ACWH_SUBSCRIBE, 200));
}

static void status_404_unknown_route_or_tenant(void **state)
{
        static const char *const paths[] = {
            "/",
            "/webhooks/ac/",
            "/webhooks/ac/r404",
            "/webhooks/ac/r404/",
            "/webhooks/ac/r404/tok-r404-s3cret/extra",
            "/webhooks/ac/nobody/tok-r404-s3cret",
            "/webhooks/ac/r404-off/anything", /* tenant without a token */
            "/webhook/ac/r404/tok-r404-s3cret"};
        (void)state;

        start("r404", NULL);
        for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
                struct http_reply r;
                char url[256];
                snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", ing.port,
                         paths[i]);
                http_call("POST", url, "application/x-www-form-urlencoded",
                          ACWH_SUBSCRIBE, strlen(ACWH_SUBSCRIBE), 0, &r);
                if (r.status != 404)
                        fail_msg("%s: %ld", paths[i], r.status);
                assert_non_null(strstr(r.body, "\"error\""));
                free(r.body);
        }
        size_t n = consume_tenant(kafka.bootstrap, "r404", 0, 300, 3000, recs,
                                  MAX_RECS);
        assert_int_equal(n, 0);
}

static void status_405_wrong_method(void **state)
{
        static const char *const methods[] = {"GET", "PUT", "DELETE", "PATCH"};
        char url[256];
        (void)state;

        start("m405", NULL);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/webhooks/ac/m405/%s",
                 ing.port, ing.token);
        for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
                struct http_reply r;
                http_call(methods[i], url, NULL, NULL, 0, 0, &r);
                if (r.status != 405)
                        fail_msg("%s: %ld", methods[i], r.status);
                free(r.body);
        }
}

static void status_413_body_too_large(void **state)
{
        const char *const env[] = {"OPTSYNC_INGEST_MAX_BODY=2048", NULL};
        size_t len              = 5000;
        char *big               = malloc(len + 1);
        char url[256];
        struct http_reply r;
        (void)state;

        start("big", env);
        memset(big, 'a', len);
        memcpy(big, "type=update&x=", 14);
        big[len] = '\0';
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/webhooks/ac/big/%s",
                 ing.port, ing.token);
        /* Announced by Content-Length: refused before reading it. */
        http_call("POST", url, "application/x-www-form-urlencoded", big, len, 0,
                  &r);
        assert_int_equal(r.status, 413);
        assert_non_null(strstr(r.body, "over the limit"));
        free(r.body);
        /* Chunked: found out while reading. */
        http_call("POST", url, "application/x-www-form-urlencoded", big, len, 1,
                  &r);
        assert_int_equal(r.status, 413);
        free(r.body);
        /* Just under the limit, chunked, is accepted. */
        http_call("POST", url, "application/x-www-form-urlencoded",
                  ACWH_SUBSCRIBE, strlen(ACWH_SUBSCRIBE), 1, &r);
        assert_int_equal(r.status, 200);
        free(r.body);
        free(big);
}

static void admin_health_ready_metrics(void **state)
{
        struct http_reply r;
        (void)state;

        start("adm", NULL);
        free(post_expect(ACWH_UPDATE, 200));
        admin_get(&ing, "/healthz", &r);
        assert_int_equal(r.status, 200);
        free(r.body);
        admin_get(&ing, "/readyz", &r);
        assert_int_equal(r.status, 200);
        free(r.body);
        admin_get(&ing, "/metrics", &r);
        assert_int_equal(r.status, 200);
        assert_true(metric_value(r.body, "optsync_ingest_produce_latency_"
                                         "seconds_count") == 1);
        assert_true(metric_value(r.body, "optsync_ingest_spool_depth") == 0);
        assert_true(metric_value(r.body, "optsync_ingest_webhooks_waiting") ==
                    0); /* answered: none left waiting */
        assert_true(
            metric_value(r.body, "optsync_ingest_spool_oldest_age_seconds") ==
            0);
        assert_true(metric_value(r.body, "optsync_ingest_requests_total{type="
                                         "\"update\",outcome=\"kafka\"}") == 1);
        free(r.body);
}

/* ---- Kafka down ---------------------------------------------------------- */

/* The i-th event of one person: an update one second after the last. */
static void nth_event(char *buf, size_t size, int i)
{
        snprintf(
            buf, size,
            "type=update&date_time=2024-03-01T10%%3A%02d%%3A%02d%%2B01%%3A00"
            "&initiated_from=admin&contact%%5Bid%%5D=77"
            "&contact%%5Bemail%%5D=one.person%%40example.com&seq=%d",
            i / 60, i % 60, i);
}

static void kafka_down_spool_then_delivered_in_order(void **state)
{
        enum {
                N = 30
        };
        char ids[N][33], body[512];
        struct http_reply r;
        (void)state;

        start("down", NULL);
        assert_int_equal(
            osy_test_kafka_control(&kafka, "broker-down 1", NULL, 0), 0);
        for (int i = 0; i < N; i++) {
                char *reply;
                nth_event(body, sizeof(body), i);
                reply = post_expect(body, 200);
                /* The first waits out the ack timeout, then all spool. */
                if (!strstr(reply, "\"stored\":\"spool\""))
                        fail_msg("event %d: %s", i, reply);
                assert_int_equal(reply_ids(reply, &ids[i], 1), 1);
                free(reply);
        }
        admin_get(&ing, "/readyz", &r); /* the spool takes events: ready */
        assert_int_equal(r.status, 200);
        free(r.body);
        osy_test_sleep_ms(300); /* gauges refresh every 100 ms */
        admin_get(&ing, "/metrics", &r);
        assert_true(metric_value(r.body, "optsync_ingest_spool_depth") >= N);
        assert_true(metric_value(r.body, "optsync_ingest_spooling") == 1);
        assert_true(metric_value(r.body,
                                 "optsync_ingest_requests_total{type="
                                 "\"update\",outcome=\"spooled\"}") == N);
        free(r.body);

        assert_int_equal(osy_test_kafka_control(&kafka, "broker-up 1", NULL, 0),
                         0);
        size_t n = consume_tenant(kafka.bootstrap, "down", N, 1000, 25000, recs,
                                  MAX_RECS);
        /* Every event, first occurrences in the order they were posted
         * (the first may also arrive once more: same id). */
        int next = 0;
        for (size_t i = 0; i < n; i++) {
                int seen = 0;
                for (int j = 0; j < next; j++)
                        seen |= !strcmp(recs[i].id, ids[j]);
                if (seen)
                        continue;
                if (next >= N || strcmp(recs[i].id, ids[next]))
                        fail_msg("record %zu is out of order (expected "
                                 "event %d)",
                                 i, next);
                next++;
        }
        assert_int_equal(next, N);
        recs_free(recs, n);
        /* Drained: spooling stops, the file is emptied. */
        int64_t deadline = osy_test_now_ms() + 5000;
        double depth     = -1;
        while (osy_test_now_ms() < deadline) {
                admin_get(&ing, "/metrics", &r);
                depth = metric_value(r.body, "optsync_ingest_spool_depth");
                int spooling =
                    metric_value(r.body, "optsync_ingest_spooling") > 0;
                free(r.body);
                if (depth == 0 && !spooling)
                        break;
                osy_test_sleep_ms(100);
        }
        assert_true(depth == 0);
        char *reply = post_expect(ACWH_SUBSCRIBE, 200);
        assert_non_null(strstr(reply, "\"stored\":\"kafka\""));
        free(reply);
}

static void kafka_down_spool_full_answers_503(void **state)
{
        const char *const env[] = {"OPTSYNC_INGEST_SPOOL_MAX_BYTES=65536",
                                   NULL};
        size_t cap              = 30000, o;
        char *body              = malloc(cap);
        struct http_reply r;
        int ok = 0, unavailable = 0;
        (void)state;

        start("full", env);
        assert_int_equal(
            osy_test_kafka_control(&kafka, "broker-down 1", NULL, 0), 0);
        for (int i = 0; i < 12 && !unavailable; i++) {
                /* ~20 KB of tags per event: the 64 KiB spool fills fast. */
                o = (size_t)snprintf(body, cap,
                                     "type=update&date_time=2024-01-01T00%%3A00"
                                     "%%3A%02dZ&contact[id]=1&"
                                     "contact[email]=a@b.c&contact[tags]=x",
                                     i);
                /* 80 tags of ~240 bytes: within the schema's limits. */
                for (int t = 0; t < 80; t++)
                        o += (size_t)snprintf(body + o, cap - o,
                                              "%%2C+tag-%03d-%0230d", t, 0);
                ingest_post(&ing, body, &r);
                if (r.status == 200)
                        ok++;
                else if (r.status == 503)
                        unavailable++;
                else
                        fail_msg("status %ld: %s", r.status, r.body);
                assert_int_not_equal(r.status, 410);
                free(r.body);
        }
        assert_true(ok >= 1);
        assert_int_equal(unavailable, 1);
        osy_test_sleep_ms(300);
        admin_get(&ing, "/readyz", &r); /* neither Kafka nor spool */
        assert_int_equal(r.status, 503);
        free(r.body);
        /* Kafka back: what was acknowledged arrives. */
        assert_int_equal(osy_test_kafka_control(&kafka, "broker-up 1", NULL, 0),
                         0);
        size_t n = consume_tenant(kafka.bootstrap, "full", (size_t)ok, 500,
                                  25000, recs, MAX_RECS);
        assert_true(n >= (size_t)ok);
        recs_free(recs, n);
        free(body);
}

/* ---- kill -9 during a burst ---------------------------------------------- */

#define BURST_THREADS 6
#define BURST_PER_THREAD 120

struct burst {
        const struct ingest_proc *p;
        int thread;
        atomic_int *acked;
        char (*ids)[33]; /* BURST_PER_THREAD slots for this thread */
        int n_ids;
};

static void *burst_main(void *arg)
{
        struct burst *b = arg;
        char body[512];

        for (int i = 0; i < BURST_PER_THREAD; i++) {
                struct http_reply r;
                snprintf(body, sizeof(body),
                         "type=update&date_time=2024-03-01T10%%3A00%%3A00Z"
                         "&initiated_from=api&contact%%5Bid%%5D=%d"
                         "&contact%%5Bemail%%5D=p%d.%d%%40example.com",
                         b->thread * 1000 + i, b->thread, i);
                ingest_post(b->p, body, &r);
                if (r.status == 200 &&
                    reply_ids(r.body, &b->ids[b->n_ids], 1) == 1) {
                        b->n_ids++;
                        atomic_fetch_add(b->acked, 1);
                }
                free(r.body);
                if (r.status == 0)
                        break; /* the server is gone */
        }
        return NULL;
}

/* Burst from several threads, SIGKILL once @p kill_after are acked,
 * restart on the same spool, and find every acknowledged id. */
static void burst_kill_restart(const char *tenant, int broker_down)
{
        static char ids[BURST_THREADS][BURST_PER_THREAD][33];
        struct burst b[BURST_THREADS];
        pthread_t t[BURST_THREADS];
        atomic_int acked = 0;
        size_t total = 0, n, missing = 0;

        start(tenant, NULL);
        if (broker_down)
                assert_int_equal(
                    osy_test_kafka_control(&kafka, "broker-down 1", NULL, 0),
                    0);
        for (int i = 0; i < BURST_THREADS; i++) {
                b[i] = (struct burst){&ing, i, &acked, ids[i], 0};
                pthread_create(&t[i], NULL, burst_main, &b[i]);
        }
        int64_t deadline = osy_test_now_ms() + 15000;
        while (atomic_load(&acked) < 150 && osy_test_now_ms() < deadline)
                osy_test_sleep_ms(2);
        kill(ing.pid, SIGKILL); /* mid-burst: requests are in flight */
        for (int i = 0; i < BURST_THREADS; i++) {
                pthread_join(t[i], NULL);
                total += (size_t)b[i].n_ids;
        }
        waitpid(ing.pid, NULL, 0);
        ing.pid = 0;
        assert_true(total >= 150);
        assert_true(total < BURST_THREADS * BURST_PER_THREAD); /* mid-burst */
        if (broker_down)
                assert_int_equal(
                    osy_test_kafka_control(&kafka, "broker-up 1", NULL, 0), 0);
        /* The restart replays whatever the spool still holds. */
        start(tenant, NULL);
        n = consume_tenant(kafka.bootstrap, tenant, total, 1500, 25000, recs,
                           MAX_RECS);
        for (int i = 0; i < BURST_THREADS; i++)
                for (int j = 0; j < b[i].n_ids; j++) {
                        int found = 0;
                        for (size_t k = 0; k < n && !found; k++)
                                found = !strcmp(recs[k].id, ids[i][j]);
                        if (!found)
                                missing++;
                }
        recs_free(recs, n);
        if (missing)
                fail_msg("%zu of %zu acknowledged events missing", missing,
                         total);
}

static void kill9_during_burst_loses_no_acked_event(void **state)
{
        (void)state;
        burst_kill_restart("k9", 0);
}

static void kill9_while_spooling_loses_no_acked_event(void **state)
{
        (void)state;
        burst_kill_restart("k9spool", 1);
}

struct post_job {
        const char *body;
        struct http_reply r;
};

static void *post_main(void *arg)
{
        struct post_job *j = arg;
        ingest_post(&ing, j->body, &j->r);
        return NULL;
}

/* The gauge of webhooks received and not yet answered. */
static double waiting_webhooks(void)
{
        struct http_reply r;
        double v;

        admin_get(&ing, "/metrics", &r);
        v = r.status == 200
                ? metric_value(r.body, "optsync_ingest_webhooks_waiting")
                : -1;
        free(r.body);
        return v;
}

static void sigterm_answers_pending_and_exits_zero(void **state)
{
        struct post_job job = {ACWH_TAG_ADDED, {0, NULL}};
        char ids[1][33];
        pthread_t t;
        int status;
        (void)state;

        start("term", NULL);
        /* A webhook waiting for Kafka's report when SIGTERM comes: it is
         * answered (spooled) before the process exits 0. */
        assert_int_equal(
            osy_test_kafka_control(&kafka, "broker-down 1", NULL, 0), 0);
        pthread_create(&t, NULL, post_main, &job);
        /* SIGTERM once it waits (a fixed sleep was too short when the
         * machine was busy: the post had not arrived). */
        for (int64_t end = osy_test_now_ms() + 15000;
             osy_test_now_ms() < end && waiting_webhooks() < 1;)
                osy_test_sleep_ms(20);
        assert_int_equal(waiting_webhooks(), 1);
        status = ingest_stop(&ing, 10000);
        pthread_join(t, NULL);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_equal(job.r.status, 200);
        assert_non_null(strstr(job.r.body, "\"stored\":\"spool\""));
        assert_int_equal(reply_ids(job.r.body, ids, 1), 1);
        free(job.r.body);
        /* The next start delivers it. */
        assert_int_equal(osy_test_kafka_control(&kafka, "broker-up 1", NULL, 0),
                         0);
        start("term", NULL);
        size_t n = consume_tenant(kafka.bootstrap, "term", 1, 500, 15000, recs,
                                  MAX_RECS);
        assert_true(n >= 1);
        assert_string_equal(recs[0].id, ids[0]);
        recs_free(recs, n);
        assert_int_equal(WEXITSTATUS(ingest_stop(&ing, 10000)), 0);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_teardown(curl_posts_land_as_envelopes,
                                      case_teardown),
            cmocka_unit_test_teardown(duplicate_delivery_keeps_one_id,
                                      case_teardown),
            cmocka_unit_test_teardown(ignored_type_acknowledged_not_produced,
                                      case_teardown),
            cmocka_unit_test_teardown(status_400_malformed_with_reason,
                                      case_teardown),
            cmocka_unit_test_teardown(status_401_wrong_token, case_teardown),
            cmocka_unit_test_teardown(status_404_unknown_route_or_tenant,
                                      case_teardown),
            cmocka_unit_test_teardown(status_405_wrong_method, case_teardown),
            cmocka_unit_test_teardown(status_413_body_too_large, case_teardown),
            cmocka_unit_test_teardown(admin_health_ready_metrics,
                                      case_teardown),
            cmocka_unit_test_teardown(kafka_down_spool_then_delivered_in_order,
                                      case_teardown),
            cmocka_unit_test_teardown(kafka_down_spool_full_answers_503,
                                      case_teardown),
            cmocka_unit_test_teardown(kill9_during_burst_loses_no_acked_event,
                                      case_teardown),
            cmocka_unit_test_teardown(kill9_while_spooling_loses_no_acked_event,
                                      case_teardown),
            cmocka_unit_test_teardown(sigterm_answers_pending_and_exits_zero,
                                      case_teardown),
        };
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
