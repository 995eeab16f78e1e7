/*
 * test_writers_procs.c - the writer binaries as processes, with the
 * embedded Kafka broker, redis-server and the sandbox: sf-writer applies
 * commands from the topic and survives kill -9 mid-batch without losing
 * one; four ac-writer replicas share one AC account for 30 s without a
 * single 429.
 */
#include "osy_test.h"
#include "osy_test_kafka.h"
#include "osy_test_sandbox.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "optsync/envelope.h"
#include "optsync/kafka.h"
#include "optsync/log.h"

#define SF_WRITER OSY_BINARY_DIR "/workers/sf-writer/sf-writer"
#define AC_WRITER OSY_BINARY_DIR "/workers/ac-writer/ac-writer"
#define MAX_PROCS 8

/* Everything a test started, so the teardown stops it even after a
 * failed assertion. */
static struct {
        struct osy_test_kafka k;
        struct osy_test_redis r;
        struct osy_test_sandbox sb;
        char *dir;
        pid_t pids[MAX_PROCS];
        int npids;
        osy_kafka_producer_t *producer;
} g;

static int setup(void **state)
{
        (void)state;
        memset(&g, 0, sizeof(g));
        osy_log_init("writers-procs-test", OSY_LOG_WARN, NULL);
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        for (int i = 0; i < g.npids; i++)
                if (g.pids[i] > 0) {
                        kill(g.pids[i], SIGKILL);
                        waitpid(g.pids[i], NULL, 0);
                }
        osy_kafka_producer_destroy(g.producer);
        osy_test_sandbox_stop(&g.sb);
        osy_test_kafka_stop(&g.k);
        osy_test_redis_stop(&g.r);
        if (g.dir && getenv("WT_KEEP"))
                fprintf(stderr, "kept %s\n", g.dir);
        else if (g.dir)
                osy_test_rmtree(g.dir);
        free(g.dir);
        return 0;
}

/* Starts Kafka (4 partitions), Redis and the sandbox; writes the tenants
 * file and the environment every writer process inherits. */
static void start_stack(const char *fixture, const char *const *env)
{
        char path[600], tj[1024], port[16];
        struct osy_kafka_opts ko          = {0};
        static const char *const pextra[] = {"message.timeout.ms", "10000",
                                             NULL};
        char e[OSY_ERRSTR_SIZE];
        FILE *f;

        assert_int_equal(osy_test_kafka_start(&g.k, 1, 4), 0);
        assert_int_equal(osy_test_redis_start(&g.r), 0);
        assert_int_equal(osy_test_sandbox_start(&g.sb, fixture, NULL), 0);
        assert_non_null(g.dir = osy_test_mkdtemp("writers-procs"));
        snprintf(path, sizeof(path), "%s/tenants.json", g.dir);
        snprintf(tj, sizeof(tj),
                 "{\"tenants\":[{\"id\":\"t1\",\"ac\":{\"base_url\":"
                 "\"%s/ac/t1\",\"api_token\":\"sandbox-ac-token\"},"
                 "\"sf\":{\"login_url\":\"%s/sf/t1\",\"auth\":"
                 "\"client_credentials\",\"client_id\":\"sandbox-client-id\","
                 "\"client_secret\":\"sandbox-client-secret\"}}]}",
                 g.sb.base_url, g.sb.base_url);
        assert_non_null(f = fopen(path, "w"));
        fputs(tj, f);
        fclose(f);
        snprintf(port, sizeof(port), "%d", g.r.port);
        setenv("OPTSYNC_KAFKA_BOOTSTRAP", g.k.bootstrap, 1);
        setenv("OPTSYNC_REDIS_PORT", port, 1);
        setenv("OPTSYNC_TENANTS_FILE", path, 1);
        setenv("OPTSYNC_ADMIN_PORT", "0", 1);
        setenv("OPTSYNC_ADMIN_ADDR", "127.0.0.1", 1);
        setenv("OPTSYNC_LOG_LEVEL", getenv("WT_DEBUG") ? "debug" : "info", 1);
        setenv("OPTSYNC_WRITER_SESSION_TIMEOUT", "6s", 1);
        setenv("OPTSYNC_RETRY_BASE", "100ms", 1);
        setenv("OPTSYNC_RETRY_MAX_DELAY", "2s", 1);
        setenv("OPTSYNC_SHUTDOWN_GRACE", "6s", 1);
        for (size_t i = 0; env && env[i]; i += 2)
                setenv(env[i], env[i + 1], 1);
        ko.bootstrap = g.k.bootstrap;
        ko.extra     = pextra;
        assert_int_equal(osy_kafka_producer_new(&g.producer, &ko, e, sizeof(e)),
                         OSY_OK);
}

/* fork + exec with the log as stdout/stderr; the child dies with the test
 * process (PR_SET_PDEATHSIG), so nothing is left behind. */
static pid_t spawn(const char *bin, const char *log_name)
{
        char log[700];
        pid_t parent = getpid(), pid;

        snprintf(log, sizeof(log), "%s/%s", g.dir, log_name);
        pid = fork();
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(127);
                if (!freopen(log, "a", stdout) || dup2(1, 2) < 0)
                        _exit(127);
                execl(bin, bin, (char *)NULL);
                fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
                _exit(127);
        }
        assert_true(pid > 0);
        assert_true(g.npids < MAX_PROCS);
        g.pids[g.npids++] = pid;
        return pid;
}

/* SIGTERM and wait; @returns the exit status (or -1). */
static int stop_proc(pid_t pid)
{
        int st = osy_test_stop(pid, 15000);
        for (int i = 0; i < g.npids; i++)
                if (g.pids[i] == pid)
                        g.pids[i] = 0;
        if (!WIFEXITED(st) || WEXITSTATUS(st))
                fprintf(stderr, "process %d: %s %d\n", (int)pid,
                        WIFSIGNALED(st) ? "killed by signal" : "exit status",
                        WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void kill9(pid_t pid)
{
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        for (int i = 0; i < g.npids; i++)
                if (g.pids[i] == pid)
                        g.pids[i] = 0;
}

static void produce(osy_msg_type_t type, const char *email, int opt_out,
                    int64_t ms)
{
        struct osy_msg m;
        char e[OSY_ERRSTR_SIZE], *json = NULL, key[OSY_PARTITION_KEY_BUFSZ],
                                 tie[40];
        size_t len;
        const char *topic = type == OSY_MSG_SF_COMMAND ? "optsync.sf.commands"
                                                       : "optsync.ac.commands";

        osy_msg_init(&m, type);
        assert_int_equal(osy_msg_set_envelope(&m, "t1", email, OSY_SRC_RULES,
                                              ms, e, sizeof(e)),
                         OSY_OK);
        snprintf(tie, sizeof(tie), "%032llx", (unsigned long long)ms);
        if (type == OSY_MSG_SF_COMMAND) {
                m.sf_command.has_opted_out_of_email = opt_out;
                m.sf_command.rule = opt_out ? OSY_RULE_R2 : OSY_RULE_R1;
                memcpy(m.sf_command.cause_event_id, tie, OSY_ID_BUFSZ);
                m.sf_command.version.ms = ms;
                assert_int_equal(osy_msg_strset(&m.sf_command.version.tie, tie),
                                 OSY_OK);
        } else {
                m.ac_command.action = OSY_AC_UNSUBSCRIBE_ALL_LISTS;
                m.ac_command.rule   = OSY_RULE_R4;
                memcpy(m.ac_command.cause_event_id, tie, OSY_ID_BUFSZ);
                m.ac_command.version.ms = ms;
                assert_int_equal(osy_msg_strset(&m.ac_command.version.tie, tie),
                                 OSY_OK);
        }
        assert_int_equal(osy_msg_encode(&m, &json, &len, e, sizeof(e)), OSY_OK);
        assert_int_equal(osy_partition_key("t1", email, key, sizeof(key)),
                         OSY_OK);
        assert_int_equal(osy_kafka_produce(g.producer, topic, key, strlen(key),
                                           json, len, NULL, NULL, e, sizeof(e)),
                         OSY_OK);
        free(json);
        osy_msg_clear(&m);
}

static cJSON *sandbox_json(const char *path)
{
        char *body = NULL;
        cJSON *j;
        osy_test_sandbox_call(&g.sb, "GET", path, NULL, NULL, &body);
        j = cJSON_Parse(body ? body : "");
        free(body);
        assert_non_null(j);
        return j;
}

/* Counts logged requests of endpoint class @p ep with @p method and
 * @p status (0: any). */
static int count_requests(const char *ep, const char *method, int status)
{
        char path[128];
        const cJSON *r;
        int n = 0;
        snprintf(path, sizeof(path),
                 "/sandbox/requests?limit=100000&endpoint=%s", ep);
        cJSON *j = sandbox_json(path);
        cJSON_ArrayForEach(r, cJSON_GetObjectItem(j, "requests"))
        {
                const cJSON *m = cJSON_GetObjectItem(r, "method");
                const cJSON *s = cJSON_GetObjectItem(r, "status");
                if (method && strcmp(m->valuestring, method))
                        continue;
                if (status && s->valueint != status)
                        continue;
                n++;
        }
        cJSON_Delete(j);
        return n;
}

/* @returns how many SF Contacts have HasOptedOutOfEmail true. */
static int opted_out_contacts(void)
{
        cJSON *j = sandbox_json("/sandbox/state?tenant=t1");
        const cJSON *c;
        int n = 0;
        cJSON_ArrayForEach(
            c, cJSON_GetObjectItem(cJSON_GetObjectItem(j, "sf"), "contacts"))
            n += cJSON_IsTrue(cJSON_GetObjectItem(c, "HasOptedOutOfEmail"));
        cJSON_Delete(j);
        return n;
}

/* Reads every record of @p topic (4 partitions) from the start for @p ms,
 * with a plain assignment: no group, nothing committed. */
static int topic_count(const char *topic, int ms)
{
        char e[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_t *rk;
        rd_kafka_topic_partition_list_t *parts;
        int n = 0;

        assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers",
                                           g.k.bootstrap, e, sizeof(e)),
                         RD_KAFKA_CONF_OK);
        assert_int_equal(
            rd_kafka_conf_set(conf, "group.id", "wt-reader", e, sizeof(e)),
            RD_KAFKA_CONF_OK);
        assert_int_equal(rd_kafka_conf_set(conf, "enable.auto.commit", "false",
                                           e, sizeof(e)),
                         RD_KAFKA_CONF_OK);
        assert_non_null(
            rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof(e)));
        parts = rd_kafka_topic_partition_list_new(4);
        for (int p = 0; p < 4; p++)
                rd_kafka_topic_partition_list_add(parts, topic, p)->offset =
                    RD_KAFKA_OFFSET_BEGINNING;
        assert_int_equal(rd_kafka_assign(rk, parts),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_topic_partition_list_destroy(parts);
        int64_t end = osy_test_now_ms() + ms;
        while (osy_test_now_ms() < end) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
                if (!m)
                        continue;
                if (!m->err)
                        n++;
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return n;
}

static void sf_writer_kill9_mid_batch_loses_nothing(void **state)
{
        const int n                    = 1000;
        size_t cap                     = (size_t)n * 80 + 256;
        char *fx                       = malloc(cap), email[32];
        size_t len                     = 0;
        static const char *const env[] = {"OPTSYNC_WRITER_LINGER", "300ms",
                                          NULL};
        pid_t p1, p2;
        (void)state;

        len += (size_t)snprintf(fx + len, cap - len,
                                "{\"tenants\":{\"t1\":{\"sf\":{\"contacts\":[");
        for (int i = 0; i < n; i++)
                len += (size_t)snprintf(fx + len, cap - len,
                                        "%s{\"Email\":\"p%04d@x.com\","
                                        "\"LastName\":\"C\"}",
                                        i ? "," : "", i);
        snprintf(fx + len, cap - len,
                 "]}}},\"faults\":[{\"endpoint\":\"sf.composite\","
                 "\"kind\":\"latency\",\"ms\":700}]}");
        start_stack(fx, env);
        free(fx);
        for (int i = 0; i < n; i++) {
                snprintf(email, sizeof(email), "p%04d@x.com", i);
                produce(OSY_MSG_SF_COMMAND, email, 1, 1000 + i);
        }
        char e[OSY_ERRSTR_SIZE];
        assert_int_equal(
            osy_kafka_producer_flush(g.producer, 10000, e, sizeof(e)), OSY_OK);

        p1 = spawn(SF_WRITER, "sf-writer-1.log");
        /* Kill it as soon as the first write call has been answered: the
         * next one is in flight, offsets and audits are half done. */
        int64_t end = osy_test_now_ms() + 25000;
        while (count_requests("sf.composite", "PATCH", 0) < 1 &&
               osy_test_now_ms() < end)
                osy_test_sleep_ms(20);
        assert_true(count_requests("sf.composite", "PATCH", 0) >= 1);
        kill9(p1);
        /* Killed with most of the batch still to write. */
        int at_kill = opted_out_contacts();
        fprintf(stderr, "kill -9 with %d of %d contacts written\n", at_kill, n);
        assert_true(at_kill < n);

        p2  = spawn(SF_WRITER, "sf-writer-2.log");
        end = osy_test_now_ms() + 30000;
        while (opted_out_contacts() < n && osy_test_now_ms() < end)
                osy_test_sleep_ms(200);
        /* Every command applied, none lost, none dead-lettered. */
        assert_int_equal(opted_out_contacts(), n);
        fprintf(stderr, "after the restart: %d PATCH calls in all\n",
                count_requests("sf.composite", "PATCH", 0));
        assert_int_equal(stop_proc(p2), 0);
        assert_int_equal(topic_count("optsync.dlq", 1500), 0);
        assert_true(topic_count("optsync.audit", 1500) >= n);
}

static void four_ac_writers_share_one_account_for_30s(void **state)
{
        const int n                    = 200;
        size_t cap                     = (size_t)n * 160 + 512;
        char *fx                       = malloc(cap), email[32];
        size_t len                     = 0;
        static const char *const env[] = {"OPTSYNC_AC_BULK_THRESHOLD", "0",
                                          NULL};
        pid_t p[4];
        (void)state;

        len += (size_t)snprintf(
            fx + len, cap - len,
            "{\"tenants\":{\"t1\":{\"ac\":{\"rate_per_s\":5,\"lists\":["
            "{\"id\":\"1\"},{\"id\":\"2\"},{\"id\":\"3\"},{\"id\":\"4\"},"
            "{\"id\":\"5\"}],\"contacts\":[");
        for (int i = 1; i <= n; i++)
                len += (size_t)snprintf(
                    fx + len, cap - len,
                    "%s{\"id\":\"%d\",\"email\":\"c%d@x.com\",\"lists\":{"
                    "\"1\":1,\"2\":1,\"3\":1,\"4\":1,\"5\":1}}",
                    i > 1 ? "," : "", i, i);
        snprintf(fx + len, cap - len, "]}}}}");
        start_stack(fx, env);
        free(fx);
        for (int i = 1; i <= n; i++) {
                snprintf(email, sizeof(email), "c%d@x.com", i);
                produce(OSY_MSG_AC_COMMAND, email, 1, 1000 + i);
        }
        char e[OSY_ERRSTR_SIZE];
        assert_int_equal(
            osy_kafka_producer_flush(g.producer, 10000, e, sizeof(e)), OSY_OK);
        for (int i = 0; i < 4; i++) {
                char log[32];
                snprintf(log, sizeof(log), "ac-writer-%d.log", i);
                p[i] = spawn(AC_WRITER, log);
        }
        osy_test_sleep_ms(30000);
        for (int i = 0; i < 4; i++)
                assert_int_equal(stop_proc(p[i]), 0);
        /* Every call of every replica went through the shared limiter:
         * AC never had to say 429 (or 503). */
        int calls = count_requests("ac.*", NULL, 0);
        assert_true(calls > 0);
        if (getenv("WT_DUMP")) {
                char *body = NULL;
                osy_test_sandbox_call(
                    &g.sb, "GET",
                    "/sandbox/requests?limit=100000&endpoint=ac.*", NULL, NULL,
                    &body);
                FILE *f = fopen("/tmp/writers-scratch/reqlog.json", "w");
                if (f && body)
                        fputs(body, f);
                if (f)
                        fclose(f);
                free(body);
        }
        assert_int_equal(count_requests("ac.*", NULL, 429), 0);
        assert_int_equal(count_requests("ac.*", NULL, 503), 0);
        fprintf(stderr, "four ac-writers: %d AC calls in 30 s\n", calls);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(
                sf_writer_kill9_mid_batch_loses_nothing, setup, teardown),
            cmocka_unit_test_setup_teardown(
                four_ac_writers_share_one_account_for_30s, setup, teardown),
        };
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
