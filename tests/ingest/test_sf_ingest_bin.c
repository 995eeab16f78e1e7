/*
 * test_sf_ingest_bin.c - the sf-ingest binary as Kubernetes runs it:
 * configuration from the environment, /readyz false until CDC is
 * subscribed, /metrics, SIGTERM exits 0, and a kill -9 in the middle of a
 * stream loses nothing on restart (duplicates only, with the same ids).
 */
#include "test_sf_harness.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "optsync/http.h"

struct bin {
        struct sfh h;
        char *dir;
        char log[512];
        char tenants[512];
        pid_t pid;
        int admin_port;
};

static int setup(void **state)
{
        struct bin *b = calloc(1, sizeof(*b));
        char *fx      = sfh_contacts_fixture(20);

        if (!b || sfh_start(&b->h, fx, NULL))
                return -1;
        free(fx);
        b->dir = osy_test_mkdtemp("sfi-bin");
        snprintf(b->log, sizeof(b->log), "%s/sf-ingest.log", b->dir);
        snprintf(b->tenants, sizeof(b->tenants), "%s/tenants.json", b->dir);
        /* The child inherits this environment. */
        if (sfh_binary_env(&b->h, b->tenants))
                return -1;
        *state = b;
        return 0;
}

static int teardown(void **state)
{
        struct bin *b = *state;

        if (b->pid > 0)
                osy_test_stop(b->pid, 5000);
        sfh_stop(&b->h);
        osy_test_rmtree(b->dir);
        free(b->dir);
        free(b);
        return 0;
}

/* Starts the binary and reads its admin port from "admin_port=N". */
static void run(struct bin *b)
{
        char *const argv[] = {(char *)OSY_SF_INGEST_BIN, NULL};
        int64_t until      = osy_test_now_ms() + 10000;

        truncate(b->log, 0);
        b->pid        = osy_test_spawn(argv, b->log);
        b->admin_port = 0;
        assert_true(b->pid > 0);
        while (!b->admin_port && osy_test_now_ms() < until) {
                char *text    = osy_test_read_file(b->log);
                const char *p = text ? strstr(text, "admin_port=") : NULL;

                if (p)
                        b->admin_port = (int)strtol(p + 11, NULL, 10);
                free(text);
                if (!b->admin_port)
                        osy_test_sleep_ms(20);
        }
        if (!b->admin_port)
                fail_msg("sf-ingest did not start; log: %s",
                         osy_test_read_file(b->log));
}

/* GET on the admin port; @returns the status, body in @p body. */
static int admin(struct bin *b, const char *path, char **body)
{
        struct osy_http_response resp = {0};
        osy_http_client_t *c          = NULL;
        char url[128], e[OSY_ERRSTR_SIZE];
        struct osy_http_request req = {.method = OSY_HTTP_GET, .url = url};
        int st                      = -1;

        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", b->admin_port,
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

/* @returns 1 if *body contains @p text; frees and clears *body. */
static int body_has(char **body, const char *text)
{
        int yes = *body && strstr(*body, text);

        free(*body);
        *body = NULL;
        return yes;
}

static void readiness_metrics_and_sigterm(void **state)
{
        struct bin *b = *state;
        char *body    = NULL;
        int64_t t0;
        int status;

        sfh_ctl(&b->h, "POST", "/sandbox/faults",
                "{\"endpoint\":\"cometd\",\"kind\":\"html503\"}");
        run(b);
        assert_int_equal(admin(b, "/healthz", NULL), 200);
        assert_int_equal(admin(b, "/readyz", &body), 503);
        assert_non_null(strstr(body, "not subscribed"));
        free(body);
        /* Refused handshakes are counted while it keeps trying. */
        SFH_WAIT((admin(b, "/metrics", &body),
                  body_has(&body, "reason=\"handshake_failed\"")),
                 10000);
        sfh_ctl(&b->h, "DELETE", "/sandbox/faults", NULL);
        SFH_WAIT(admin(b, "/readyz", NULL) == 200, 10000);
        assert_int_equal(admin(b, "/metrics", &body), 200);
        assert_non_null(strstr(
            body, "optsync_sf_ingest_subscribed{tenant=\"" SFH_TENANT "\"} 1"));
        assert_non_null(strstr(body, "optsync_sf_ingest_reconnects_total"));
        assert_non_null(strstr(
            body, "optsync_sf_ingest_api_calls_total{tenant=\"" SFH_TENANT
                  "\",api=\"cometd\"}"));
        free(body);
        /* SIGTERM in the middle of a parked long-poll: out fast, 0. */
        t0     = osy_test_now_ms();
        status = osy_test_stop(b->pid, 10000);
        b->pid = 0;
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_true(osy_test_now_ms() - t0 < 5000);
}

static void kill9_mid_stream_loses_nothing(void **state)
{
        struct bin *b        = *state;
        struct sfh_rec *recs = calloc(SFH_MAX_RECS, sizeof(*recs));
        char buf[64];
        size_t n;

        run(b);
        SFH_WAIT(admin(b, "/readyz", NULL) == 200, 10000);
        /* A stream that has committed before: the replay id is stored. */
        sfh_optout(&b->h, sfh_id(&b->h, "contacts", 0), 1);
        SFH_WAIT((sfh_redis_get(&b->h, "replay:/data/ContactChangeEvent", buf,
                                sizeof(buf)),
                  buf[0] != '\0'),
                 10000);
        for (int i = 1; i < 10; i++)
                sfh_optout(&b->h, sfh_id(&b->h, "contacts", i), 1);
        /* No chance to commit anything in flight. */
        kill(b->pid, SIGKILL);
        waitpid(b->pid, NULL, 0);
        b->pid = 0;
        for (int i = 10; i < 20; i++)
                sfh_optout(&b->h, sfh_id(&b->h, "contacts", i), 1);
        run(b);
        n = sfh_consume(&b->h, 20, 1000, 20000, recs);
        for (int i = 0; i < 20; i++) {
                const char *id    = sfh_id(&b->h, "contacts", i);
                const char *first = NULL;

                assert_true(sfh_count(recs, n, id, OSY_SF_OPT_OUT_CHANGED) >=
                            1);
                for (size_t k = 0; k < n; k++) {
                        if (strcmp(recs[k].record_id, id))
                                continue;
                        if (!first)
                                first = recs[k].id;
                        else
                                assert_string_equal(recs[k].id, first);
                }
        }
        sfh_recs_free(recs, n);
        free(recs);
}

static void bad_configuration_exits_2(void **state)
{
        struct bin *b      = *state;
        char *const argv[] = {(char *)OSY_SF_INGEST_BIN, NULL};
        char *text;
        int status = -1;

        (void)b;
        setenv("OPTSYNC_SF_INGEST_MODE", "stream", 1);
        b->pid = osy_test_spawn(argv, b->log);
        unsetenv("OPTSYNC_SF_INGEST_MODE");
        waitpid(b->pid, &status, 0);
        b->pid = 0;
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 2);
        text = osy_test_read_file(b->log);
        assert_non_null(strstr(text, "OPTSYNC_SF_INGEST_MODE"));
        free(text);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(readiness_metrics_and_sigterm,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(kill9_mid_stream_loses_nothing,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(bad_configuration_exits_2, setup,
                                            teardown),
        };

        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
