/*
 * ingest_harness.c - process, HTTP and Kafka helpers shared by ac-ingest's
 * integration tests (see ingest_harness.h).
 */
#include "ingest_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <librdkafka/rdkafka.h>

#include "osy_test.h"

#ifndef OSY_AC_INGEST_BIN
#error "OSY_AC_INGEST_BIN must name the ac-ingest binary"
#endif

#define START_TIMEOUT_MS 15000

static int write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");
        if (!f)
                return -1;
        fputs(text, f);
        return fclose(f);
}

/* Wait for "ingest_port=N admin_port=M" in the log. */
static int wait_ports(struct ingest_proc *p)
{
        int64_t deadline = osy_test_now_ms() + START_TIMEOUT_MS;

        while (osy_test_now_ms() < deadline) {
                char *text = osy_test_read_file(p->log);
                char *line = text ? strstr(text, "ingest_port=") : NULL;
                int status;

                if (line && sscanf(line, "ingest_port=%d admin_port=%d",
                                   &p->port, &p->admin_port) == 2) {
                        free(text);
                        return 0;
                }
                free(text);
                if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
                        fprintf(stderr, "ac-ingest exited early; log %s\n",
                                p->log);
                        p->pid = 0;
                        return -1;
                }
                osy_test_sleep_ms(20);
        }
        return -1;
}

int ingest_start(struct ingest_proc *p, const char *bootstrap,
                 const char *tenant, const char *const *env)
{
        char tenants[1024], tfile[700];
        pid_t pid;

        if (!p->dir[0]) {
                char *d = osy_test_mkdtemp("ingest");
                if (!d)
                        return -1;
                snprintf(p->dir, sizeof(p->dir), "%s", d);
                free(d);
                snprintf(p->spool, sizeof(p->spool), "%s/spool", p->dir);
        }
        snprintf(p->tenant, sizeof(p->tenant), "%s", tenant);
        snprintf(p->token, sizeof(p->token), "tok-%s-s3cret", tenant);
        snprintf(p->log, sizeof(p->log), "%s/ingest.log", p->dir);
        snprintf(tfile, sizeof(tfile), "%s/tenants.json", p->dir);
        if (!p->ac_base[0])
                snprintf(p->ac_base, sizeof(p->ac_base),
                         "http://127.0.0.1:9/ac/%s", tenant);
        snprintf(tenants, sizeof(tenants),
                 "{\"tenants\":["
                 "{\"id\":\"%s\",\"ac\":{\"base_url\":\"%s\","
                 "\"api_token\":\"api-%s-token\","
                 "\"webhook_token\":\"%s\"}},"
                 "{\"id\":\"%s-off\",\"ac\":{\"base_url\":\"http://127.0.0.1:"
                 "9/ac/x\",\"api_token\":\"api-x-token\"}}]}",
                 tenant, p->ac_base, tenant, p->token, tenant);
        if (write_file(tfile, tenants))
                return -1;
        /* A fresh log per run, so the port line is this run's. */
        unlink(p->log);
        pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                char buf[800];
                int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
                if (fd >= 0) {
                        dup2(fd, STDOUT_FILENO);
                        dup2(fd, STDERR_FILENO);
                        close(fd);
                }
                setenv("OPTSYNC_KAFKA_BOOTSTRAP", bootstrap, 1);
                setenv("OPTSYNC_TENANTS_FILE", tfile, 1);
                setenv("OPTSYNC_INGEST_SPOOL_DIR", p->spool, 1);
                setenv("OPTSYNC_INGEST_PORT", "0", 1);
                setenv("OPTSYNC_INGEST_LISTEN_ADDR", "127.0.0.1", 1);
                setenv("OPTSYNC_ADMIN_PORT", "0", 1);
                setenv("OPTSYNC_ADMIN_ADDR", "127.0.0.1", 1);
                setenv("OPTSYNC_INGEST_ACK_TIMEOUT", "1s", 1);
                setenv("OPTSYNC_KAFKA_PRODUCE_TIMEOUT", "2s", 1);
                setenv("OPTSYNC_SHUTDOWN_GRACE", "5s", 1);
                for (size_t i = 0; env && env[i]; i++) {
                        const char *eq = strchr(env[i], '=');
                        if (!eq)
                                continue;
                        snprintf(buf, sizeof(buf), "%.*s", (int)(eq - env[i]),
                                 env[i]);
                        setenv(buf, eq + 1, 1);
                }
                execl(OSY_AC_INGEST_BIN, OSY_AC_INGEST_BIN, (char *)NULL);
                fprintf(stderr, "exec %s: %s\n", OSY_AC_INGEST_BIN,
                        strerror(errno));
                _exit(127);
        }
        p->pid = pid;
        if (wait_ports(p)) {
                ingest_kill9(p);
                return -1;
        }
        return 0;
}

int ingest_register(const struct ingest_proc *p, const char *public_url,
                    const char *const *args, char **out)
{
        char tfile[700], ofile[700];
        char *argv[16];
        size_t n = 0;
        int status;
        pid_t pid;

        *out = NULL;
        snprintf(tfile, sizeof(tfile), "%s/tenants.json", p->dir);
        snprintf(ofile, sizeof(ofile), "%s/register.out", p->dir);
        unlink(ofile);
        argv[n++] = OSY_AC_INGEST_BIN;
        argv[n++] = "register";
        for (size_t i = 0; args && args[i] && n < 15; i++)
                argv[n++] = (char *)args[i];
        argv[n] = NULL;
        if ((pid = fork()) < 0)
                return -1;
        if (pid == 0) {
                int fd = open(ofile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                if (fd >= 0) {
                        dup2(fd, STDOUT_FILENO);
                        dup2(fd, STDERR_FILENO);
                        close(fd);
                }
                setenv("OPTSYNC_TENANTS_FILE", tfile, 1);
                setenv("OPTSYNC_INGEST_PUBLIC_URL", public_url, 1);
                setenv("OPTSYNC_LOG_LEVEL", "warn", 1);
                execv(OSY_AC_INGEST_BIN, argv);
                _exit(127);
        }
        if (waitpid(pid, &status, 0) != pid)
                return -1;
        *out = osy_test_read_file(ofile);
        if (!*out)
                *out = strdup("");
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int ingest_stop(struct ingest_proc *p, int grace_ms)
{
        int status = -1;

        if (p->pid > 0)
                status = osy_test_stop(p->pid, grace_ms);
        p->pid = 0;
        return status;
}

void ingest_kill9(struct ingest_proc *p)
{
        if (p->pid <= 0)
                return;
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
}

void ingest_cleanup(struct ingest_proc *p)
{
        ingest_kill9(p);
        if (p->dir[0])
                osy_test_rmtree(p->dir);
        memset(p, 0, sizeof(*p));
}

/* ---- HTTP ---------------------------------------------------------------- */

struct buf {
        char *data;
        size_t len;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
        struct buf *b = ud;
        size_t n      = size * nmemb;
        char *d       = realloc(b->data, b->len + n + 1);

        if (!d)
                return 0;
        memcpy(d + b->len, ptr, n);
        b->len += n;
        d[b->len] = '\0';
        b->data   = d;
        return n;
}

struct upload {
        const char *data;
        size_t len, off;
};

static size_t on_read(char *ptr, size_t size, size_t nmemb, void *ud)
{
        struct upload *u = ud;
        size_t n         = size * nmemb;

        /* Small pieces, so a chunked body really arrives in chunks. */
        if (n > 1000)
                n = 1000;
        if (n > u->len - u->off)
                n = u->len - u->off;
        memcpy(ptr, u->data + u->off, n);
        u->off += n;
        return n;
}

void http_call(const char *method, const char *url, const char *content_type,
               const char *body, size_t len, int chunked, struct http_reply *r)
{
        CURL *c                 = curl_easy_init();
        struct curl_slist *hdrs = NULL;
        struct buf b            = {NULL, 0};
        struct upload up        = {body, len, 0};
        char ct[256];

        r->status = 0;
        r->body   = NULL;
        if (!c)
                return;
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        if (content_type) {
                snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
                hdrs = curl_slist_append(hdrs, ct);
        } else {
                hdrs = curl_slist_append(hdrs, "Content-Type:");
        }
        hdrs = curl_slist_append(hdrs, "Expect:");
        if (body && chunked) {
                hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
                curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
                curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
                curl_easy_setopt(c, CURLOPT_READDATA, &up);
        } else if (body) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                                 (curl_off_t)len);
        }
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        if (curl_easy_perform(c) == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        r->body = b.data ? b.data : strdup("");
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(c);
}

void ingest_post(const struct ingest_proc *p, const char *body,
                 struct http_reply *r)
{
        char url[256];

        snprintf(url, sizeof(url), "http://127.0.0.1:%d/webhooks/ac/%s/%s",
                 p->port, p->tenant, p->token);
        http_call("POST", url, "application/x-www-form-urlencoded", body,
                  strlen(body), 0, r);
}

void admin_get(const struct ingest_proc *p, const char *path,
               struct http_reply *r)
{
        char url[256];

        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", p->admin_port,
                 path);
        http_call("GET", url, NULL, NULL, 0, 0, r);
}

double metric_value(const char *metrics, const char *series)
{
        size_t n = strlen(series);

        for (const char *l = metrics; l && *l;) {
                if (!strncmp(l, series, n) && l[n] == ' ')
                        return strtod(l + n + 1, NULL);
                l = strchr(l, '\n');
                if (l)
                        l++;
        }
        return -1;
}

size_t reply_ids(const char *body, char ids[][33], size_t max)
{
        const char *p = body ? strstr(body, "\"ids\":[") : NULL;
        size_t n      = 0;

        if (!p)
                return 0;
        p += 7;
        while (n < max && *p == '"' && strlen(p) > 33 && p[33] == '"') {
                memcpy(ids[n], p + 1, 32);
                ids[n][32] = '\0';
                n++;
                p += 34;
                if (*p == ',')
                        p++;
        }
        return n;
}

/* ---- Kafka --------------------------------------------------------------- */

static void rec_id(struct rec *r)
{
        const char *p = strstr(r->value, "\"id\":\"");

        r->id[0] = '\0';
        if (p && strlen(p + 6) >= 32) {
                memcpy(r->id, p + 6, 32);
                r->id[32] = '\0';
        }
}

size_t consume_tenant(const char *bootstrap, const char *tenant, size_t want,
                      int quiet_ms, int timeout_ms, struct rec *out, size_t max)
{
        char errstr[512], prefix[64], gid[64];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_topic_partition_list_t *parts;
        rd_kafka_t *rk;
        int64_t deadline = osy_test_now_ms() + timeout_ms, last_new;
        size_t n         = 0;

        snprintf(prefix, sizeof(prefix), "%s|", tenant);
        snprintf(gid, sizeof(gid), "ingest-test-%d", (int)getpid());
        rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr,
                          sizeof(errstr));
        rd_kafka_conf_set(conf, "group.id", gid, errstr, sizeof(errstr));
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr,
                          sizeof(errstr));
        rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
        if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr,
                                sizeof(errstr)))) {
                fprintf(stderr, "consumer: %s\n", errstr);
                return 0;
        }
        rd_kafka_poll_set_consumer(rk);
        parts = rd_kafka_topic_partition_list_new(INGEST_TEST_PARTITIONS);
        for (int i = 0; i < INGEST_TEST_PARTITIONS; i++)
                rd_kafka_topic_partition_list_add(parts, "optsync.ac.events", i)
                    ->offset = RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_assign(rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        last_new = osy_test_now_ms();
        while (osy_test_now_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
                if (!m) {
                        if (n >= want &&
                            osy_test_now_ms() - last_new >= quiet_ms)
                                break;
                        continue;
                }
                if (!m->err && m->key && m->key_len >= strlen(prefix) &&
                    m->key_len < sizeof(out[0].key) &&
                    !memcmp(m->key, prefix, strlen(prefix)) && n < max) {
                        struct rec *r = &out[n++];
                        memcpy(r->key, m->key, m->key_len);
                        r->key[m->key_len] = '\0';
                        r->value           = malloc(m->len + 1);
                        memcpy(r->value, m->payload, m->len);
                        r->value[m->len] = '\0';
                        r->len           = m->len;
                        r->partition     = m->partition;
                        r->offset        = m->offset;
                        rec_id(r);
                        last_new = osy_test_now_ms();
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        /* Partition, then offset: the order Kafka keeps per person. */
        for (size_t i = 1; i < n; i++)
                for (size_t j = i;
                     j > 0 && (out[j - 1].partition > out[j].partition ||
                               (out[j - 1].partition == out[j].partition &&
                                out[j - 1].offset > out[j].offset));
                     j--) {
                        struct rec t = out[j];
                        out[j]       = out[j - 1];
                        out[j - 1]   = t;
                }
        return n;
}

void recs_free(struct rec *r, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(r[i].value);
}
