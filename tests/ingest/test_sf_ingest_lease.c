/*
 * test_sf_ingest_lease.c - several sf-ingest replicas against one org: one
 * holds the tenant's lease and follows CDC, the other stands by (ready);
 * changes are published once; a killed, stopped or terminated holder is
 * replaced without losing a change; a holder whose lease was taken stops.
 */
#include "test_sf_harness.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "optsync/http.h"

#define NREC 12
#define LEASE_KEY "optsync:sf-ingest:lease:{" SFH_TENANT "}"
/* 3 s: renewed every 1 s, publishing stops 2.4 s after the last renew. */
#define LEASE_MS 3000

struct proc {
        pid_t pid;
        int admin_port;
        char log[512];
};

struct fx {
        struct sfh h;
        char *dir;
        char tenants[512];
        struct proc p[2];
        struct sfh_rec *recs;
        size_t nrecs;
};

static int setup(void **state)
{
        struct fx *f = calloc(1, sizeof(*f));
        char *fx     = sfh_contacts_fixture(NREC);

        if (!f || sfh_start(&f->h, fx, NULL))
                return -1;
        free(fx);
        f->dir  = osy_test_mkdtemp("sfi-lease");
        f->recs = calloc(SFH_MAX_RECS, sizeof(*f->recs));
        for (int i = 0; i < 2; i++)
                snprintf(f->p[i].log, sizeof(f->p[i].log), "%s/sfi-%d.log",
                         f->dir, i);
        snprintf(f->tenants, sizeof(f->tenants), "%s/tenants.json", f->dir);
        /* The children inherit this environment. */
        if (sfh_binary_env(&f->h, f->tenants))
                return -1;
        setenv("OPTSYNC_LOG_LEVEL", "info", 1);
        setenv("OPTSYNC_SF_INGEST_LEASE", "3s", 1);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fx *f = *state;

        for (int i = 0; i < 2; i++)
                if (f->p[i].pid > 0) {
                        kill(f->p[i].pid, SIGCONT);
                        osy_test_stop(f->p[i].pid, 5000);
                }
        sfh_recs_free(f->recs, f->nrecs);
        free(f->recs);
        sfh_stop(&f->h);
        osy_test_rmtree(f->dir);
        free(f->dir);
        free(f);
        return 0;
}

/* Starts replica @p i and reads its admin port from "admin_port=N". */
static void run(struct fx *f, int i)
{
        char *const argv[] = {(char *)OSY_SF_INGEST_BIN, NULL};
        struct proc *p     = &f->p[i];
        int64_t until      = osy_test_now_ms() + 10000;

        p->pid        = osy_test_spawn(argv, p->log);
        p->admin_port = 0;
        assert_true(p->pid > 0);
        while (!p->admin_port && osy_test_now_ms() < until) {
                char *text    = osy_test_read_file(p->log);
                const char *s = text ? strstr(text, "admin_port=") : NULL;

                if (s)
                        p->admin_port = (int)strtol(s + 11, NULL, 10);
                free(text);
                if (!p->admin_port)
                        osy_test_sleep_ms(20);
        }
        if (!p->admin_port)
                fail_msg("sf-ingest %d did not start; log: %s", i,
                         osy_test_read_file(p->log));
}

/* GET on replica @p i's admin port; @returns the status (-1: no answer),
 * the body in @p body when not NULL. */
static int admin(struct fx *f, int i, const char *path, char **body)
{
        struct osy_http_response resp = {0};
        osy_http_client_t *c          = NULL;
        char url[128], e[OSY_ERRSTR_SIZE];
        struct osy_http_request req = {.method = OSY_HTTP_GET, .url = url};
        int st                      = -1;

        if (body)
                *body = NULL;
        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", f->p[i].admin_port,
                 path);
        if (osy_http_client_new(&c, NULL, e, sizeof(e)))
                fail_msg("http: %s", e);
        if (!osy_http_do(c, &req, &resp, e, sizeof(e))) {
                st = resp.status;
                if (body)
                        *body = strdup(resp.body);
        }
        osy_http_response_free(&resp);
        osy_http_client_destroy(c);
        return st;
}

/* The value of one metric sample line of replica @p i (-1 if absent). */
static double metric(struct fx *f, int i, const char *sample)
{
        char *body = NULL;
        const char *p;
        double v = -1;

        if (admin(f, i, "/metrics", &body) == 200 && body &&
            (p = strstr(body, sample)))
                v = strtod(p + strlen(sample), NULL);
        free(body);
        return v;
}

static int holds(struct fx *f, int i)
{
        return metric(f, i,
                      "optsync_sf_ingest_lease_held{tenant=\"" SFH_TENANT
                      "\"} ") == 1;
}

static double published(struct fx *f, int i)
{
        char *body = NULL;
        double sum = 0;
        const char *p;

        if (admin(f, i, "/metrics", &body) != 200 || !body)
                return -1;
        for (p = body;
             (p = strstr(p, "\noptsync_sf_ingest_events_published_total{"));
             p++)
                sum += strtod(strchr(p, '}') + 1, NULL);
        free(body);
        return sum;
}

/* The lease key's value ("" when unset). */
static void lease_value(struct fx *f, char *buf, size_t size)
{
        const char *argv[] = {"GET", LEASE_KEY};
        redisReply *r      = NULL;
        char e[OSY_ERRSTR_SIZE];

        buf[0] = '\0';
        if (osy_redis_command_argv(f->h.redis, 2, argv, NULL, &r, e, sizeof(e)))
                fail_msg("redis: %s", e);
        if (r->type == REDIS_REPLY_STRING)
                snprintf(buf, size, "%s", r->str);
        freeReplyObject(r);
}

/* 1 if the lease key names replica @p i's process. */
static int key_names(struct fx *f, int i)
{
        char v[256], pid[32];

        lease_value(f, v, sizeof(v));
        snprintf(pid, sizeof(pid), ":%ld:", (long)f->p[i].pid);
        return strstr(v, pid) != NULL;
}

static int log_has(struct fx *f, int i, const char *text)
{
        char *s = osy_test_read_file(f->p[i].log);
        int yes = s && strstr(s, text);

        free(s);
        return yes;
}

/* Replica 0 holds the lease and is subscribed, replica 1 stands by;
 * both ready. */
static void two_replicas(struct fx *f)
{
        run(f, 0);
        SFH_WAIT(admin(f, 0, "/readyz", NULL) == 200, 10000);
        assert_true(key_names(f, 0));
        run(f, 1);
        /* A healthy standby is ready: it can take over. */
        SFH_WAIT(admin(f, 1, "/readyz", NULL) == 200, 10000);
        assert_true(holds(f, 0));
        SFH_WAIT(metric(f, 1,
                        "optsync_sf_ingest_lease_held{tenant=\"" SFH_TENANT
                        "\"} ") == 0,
                 5000);
        assert_true(key_names(f, 0));
}

/* Requests of the org's CometD endpoint whose body has @p text. */
static int cometd_requests(struct fx *f, const char *text)
{
        char *body = NULL;
        cJSON *o, *arr, *it;
        int n = 0;

        if (osy_test_sandbox_call(&f->h.sb, "GET",
                                  "/sandbox/requests?endpoint=cometd&limit="
                                  "100000",
                                  NULL, NULL, &body) != 200)
                fail_msg("request log");
        o   = cJSON_Parse(body);
        arr = cJSON_GetObjectItem(o, "requests");
        cJSON_ArrayForEach(it, arr)
        {
                const cJSON *b = cJSON_GetObjectItem(it, "body");

                if (cJSON_IsString(b) && strstr(b->valuestring, text))
                        n++;
        }
        cJSON_Delete(o);
        free(body);
        return n;
}

/* Reads the topic: at least @p want events, then quiet for 1.5 s. */
static void consume(struct fx *f, size_t want, int timeout_ms)
{
        sfh_recs_free(f->recs, f->nrecs);
        f->nrecs = sfh_consume(&f->h, want, 1500, timeout_ms, f->recs);
}

static size_t events_of(struct fx *f, int rec)
{
        return sfh_count(f->recs, f->nrecs, sfh_id(&f->h, "contacts", rec),
                         OSY_SF_OPT_OUT_CHANGED);
}

static void optout(struct fx *f, int from, int to)
{
        for (int i = from; i < to; i++)
                sfh_optout(&f->h, sfh_id(&f->h, "contacts", i), 1);
}

/* Waits until the replay id of the Contact channel is stored. */
static void wait_committed(struct fx *f)
{
        char buf[64];

        SFH_WAIT((sfh_redis_get(&f->h, "replay:/data/ContactChangeEvent", buf,
                                sizeof(buf)),
                  buf[0] != '\0'),
                 10000);
}

static void standby_does_not_subscribe_and_events_come_once(void **state)
{
        struct fx *f = *state;

        two_replicas(f);
        optout(f, 0, NREC);
        consume(f, NREC, 20000);
        /* Exactly one event per change while both run. */
        for (int i = 0; i < NREC; i++)
                assert_int_equal(events_of(f, i), 1);
        assert_int_equal(f->nrecs, NREC);
        /* One CometD client: one handshake, one subscription; the
         * standby never called the org (nor fetched a token). */
        assert_int_equal(cometd_requests(f, "/meta/handshake"), 1);
        assert_int_equal(cometd_requests(f, "/meta/subscribe"), 1);
        assert_int_equal(published(f, 0), NREC);
        assert_true(published(f, 1) <= 0);
        assert_true(
            metric(f, 1,
                   "optsync_sf_ingest_api_calls_total{tenant=\"" SFH_TENANT
                   "\",api=\"cometd\"} ") <= 0);
        assert_true(log_has(f, 1, "standing by: the lease is held by"));
        assert_true(log_has(f, 0, "lease acquired"));
}

static void killed_holder_is_replaced_and_nothing_is_lost(void **state)
{
        struct fx *f = *state;
        int64_t t0;

        two_replicas(f);
        optout(f, 0, 1);
        wait_committed(f);
        optout(f, 1, 4);
        /* No chance to commit or release anything. */
        kill(f->p[0].pid, SIGKILL);
        waitpid(f->p[0].pid, NULL, 0);
        f->p[0].pid = 0;
        t0          = osy_test_now_ms();
        /* Changes while nobody follows the org. */
        optout(f, 4, 8);
        SFH_WAIT(holds(f, 1), 2 * LEASE_MS);
        /* Within about the lease (here sooner: the standby sees that the
         * holder's process is gone). */
        assert_true(osy_test_now_ms() - t0 <= LEASE_MS + 1000);
        assert_true(key_names(f, 1));
        optout(f, 8, NREC);
        consume(f, NREC, 20000);
        /* Nothing lost; duplicates are allowed. */
        for (int i = 0; i < NREC; i++)
                assert_true(events_of(f, i) >= 1);
        SFH_WAIT(admin(f, 1, "/readyz", NULL) == 200, 5000);
}

static void stopped_holder_expires_and_stops_publishing(void **state)
{
        struct fx *f = *state;
        double before;
        int64_t t0, took;

        two_replicas(f);
        optout(f, 0, 1);
        wait_committed(f);
        /* A holder that is alive but does not run (a long GC pause, a
         * frozen VM): only the expiry lets the standby in. */
        kill(f->p[0].pid, SIGSTOP);
        t0 = osy_test_now_ms();
        optout(f, 1, 4);
        SFH_WAIT(holds(f, 1), 3 * LEASE_MS);
        took = osy_test_now_ms() - t0;
        assert_true(took >= LEASE_MS / 2);
        assert_true(took <= LEASE_MS + LEASE_MS / 3 + 1500);
        /* The old holder wakes up after its validity ran out: it must
         * not publish what its parked long-poll brings, and it leaves. */
        kill(f->p[0].pid, SIGCONT);
        SFH_WAIT(metric(f, 0,
                        "optsync_sf_ingest_lease_held{tenant=\"" SFH_TENANT
                        "\"} ") == 0,
                 5000);
        before = published(f, 0);
        optout(f, 4, NREC);
        consume(f, NREC, 20000);
        for (int i = 0; i < NREC; i++)
                assert_true(events_of(f, i) >= 1);
        /* Events after the wake-up came from the new holder only. */
        for (int i = 4; i < NREC; i++)
                assert_int_equal(events_of(f, i), 1);
        assert_true(published(f, 0) == before);
        assert_true(log_has(f, 0, "lease lost"));
        assert_true(key_names(f, 1));
}

static void terminated_holder_releases_and_standby_takes_over(void **state)
{
        struct fx *f = *state;
        int64_t t0;
        int status;

        two_replicas(f);
        optout(f, 0, 2);
        wait_committed(f);
        t0     = osy_test_now_ms();
        status = osy_test_stop(f->p[0].pid, 10000);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_true(log_has(f, 0, "lease released"));
        f->p[0].pid = 0;
        optout(f, 2, NREC);
        SFH_WAIT(holds(f, 1), 2 * LEASE_MS);
        /* Released: the standby's next attempt (a third of the lease)
         * takes it; no waiting for the expiry. */
        assert_true(osy_test_now_ms() - t0 < LEASE_MS);
        consume(f, NREC, 20000);
        for (int i = 0; i < NREC; i++)
                assert_true(events_of(f, i) >= 1);
}

static void holder_whose_lease_was_taken_stops_publishing(void **state)
{
        struct fx *f       = *state;
        const char *argv[] = {"SET", LEASE_KEY, "thief:1:00@elsewhere/1", "PX",
                              "60000"};
        const char *del[]  = {"DEL", LEASE_KEY};
        redisReply *r      = NULL;
        char e[OSY_ERRSTR_SIZE];
        int subscribes;

        run(f, 0);
        SFH_WAIT(admin(f, 0, "/readyz", NULL) == 200, 10000);
        optout(f, 0, 1);
        wait_committed(f);
        subscribes = cometd_requests(f, "/meta/subscribe");
        if (osy_redis_command_argv(f->h.redis, 5, argv, NULL, &r, e, sizeof(e)))
                fail_msg("redis: %s", e);
        freeReplyObject(r);
        /* Found out at the next renew (a third of the lease). */
        SFH_WAIT(!holds(f, 0), LEASE_MS);
        assert_true(log_has(f, 0, "now held by thief"));
        /* It leaves the CometD session (frees the org's client slot)
         * and publishes nothing for the tenant. */
        SFH_WAIT(cometd_requests(f, "/meta/disconnect") == 1, 5000);
        optout(f, 1, 6);
        consume(f, 1, 3000);
        assert_int_equal(f->nrecs, 1);
        assert_int_equal(events_of(f, 0), 1);
        /* The thief goes: it takes the lease again and resumes from the
         * stored replay id: nothing of the gap is lost. */
        if (osy_redis_command_argv(f->h.redis, 2, del, NULL, &r, e, sizeof(e)))
                fail_msg("redis: %s", e);
        freeReplyObject(r);
        SFH_WAIT(holds(f, 0), 2 * LEASE_MS);
        SFH_WAIT(cometd_requests(f, "/meta/subscribe") > subscribes, 5000);
        consume(f, 6, 20000);
        for (int i = 0; i < 6; i++)
                assert_true(events_of(f, i) >= 1);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(
                standby_does_not_subscribe_and_events_come_once, setup,
                teardown),
            cmocka_unit_test_setup_teardown(
                killed_holder_is_replaced_and_nothing_is_lost, setup, teardown),
            cmocka_unit_test_setup_teardown(
                stopped_holder_expires_and_stops_publishing, setup, teardown),
            cmocka_unit_test_setup_teardown(
                terminated_holder_releases_and_standby_takes_over, setup,
                teardown),
            cmocka_unit_test_setup_teardown(
                holder_whose_lease_was_taken_stops_publishing, setup, teardown),
        };

        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
