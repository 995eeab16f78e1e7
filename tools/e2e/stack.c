/*
 * stack.c - starts and stops the whole pipeline as real processes (see
 * stack.h), tells when it has settled (offsets and topics), and reads the
 * counters a run reports.
 */
#define _GNU_SOURCE
#include "stack.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

#include "optsync/http.h"

extern char **environ;

#define STARTUP_TIMEOUT_MS 60000
#define GROUPS 3

/* Binaries, relative to the build directory this library was built in. */
static const char *const worker_bin[E2E_WORKERS] = {
    "workers/ac-ingest/ac-ingest", "workers/sf-ingest/sf-ingest",
    "workers/rules/rules", "workers/sf-writer/sf-writer",
    "workers/ac-writer/ac-writer"};

static const char *const worker_names[E2E_WORKERS] = {
    "ac-ingest", "sf-ingest", "rules", "sf-writer", "ac-writer"};

/* The consumer groups whose lag says whether work is pending, and the
 * topics each one reads (the workers' default group ids). */
static const struct {
        const char *group;
        const char *topics[2];
} groups[GROUPS] = {
    {"optsync-rules", {"ac.events", "sf.events"}},
    {"optsync-sf-writer", {"sf.commands", NULL}},
    {"optsync-ac-writer", {"ac.commands", NULL}},
};

/* Every topic whose growth means the pipeline is still moving. */
static const char *const all_topics[] = {
    "ac.events", "sf.events", "sf.commands", "ac.commands", "audit", "dlq"};
#define N_TOPICS (sizeof(all_topics) / sizeof(all_topics[0]))

/* Set by the caller's signal handler: long waits give up when it is. */
static volatile sig_atomic_t *interrupt_flag;

void e2e_stack_interrupt_on(volatile sig_atomic_t *flag)
{
        interrupt_flag = flag;
}

static int interrupted(void)
{
        return interrupt_flag && *interrupt_flag;
}

struct kafka_handles {
        rd_kafka_t *group_rk[GROUPS]; /* committed offsets of each group */
        int partitions;
};

static void fmt_err(char *err, size_t size, const char *fmt, ...)
{
        va_list ap;

        if (!err || !size)
                return;
        va_start(ap, fmt);
        vsnprintf(err, size, fmt, ap);
        va_end(ap);
}

const char *e2e_worker_name(enum e2e_worker w)
{
        return (unsigned)w < E2E_WORKERS ? worker_names[w] : "?";
}

int64_t e2e_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void e2e_sleep_ms(int ms)
{
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

        while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
                ;
}

/* A free loopback port right now (another process may still take it
 * before the server binds; the callers retry or fail loudly). */
static int free_port(void)
{
        struct sockaddr_in a = {.sin_family = AF_INET};
        socklen_t len        = sizeof(a);
        int fd               = socket(AF_INET, SOCK_STREAM, 0);
        int port             = -1;

        if (fd < 0)
                return -1;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (!bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
            !getsockname(fd, (struct sockaddr *)&a, &len))
                port = ntohs(a.sin_port);
        close(fd);
        return port;
}

static char *read_file(const char *path)
{
        FILE *f = fopen(path, "r");
        char *buf;
        size_t n;

        if (!f)
                return NULL;
        buf = calloc(1, 65536);
        n   = buf ? fread(buf, 1, 65535, f) : 0;
        fclose(f);
        while (buf && n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                buf[--n] = '\0';
        return buf;
}

static int write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");
        int rc;

        if (!f)
                return -1;
        rc = fputs(text, f) < 0 ? -1 : 0;
        return fclose(f) || rc ? -1 : 0;
}

/* The last ~1.5 KB of a log, for an error message. */
static void log_tail(const char *path, char *out, size_t size)
{
        char *text  = read_file(path);
        size_t n    = text ? strlen(text) : 0;
        size_t keep = size > 1 ? size - 1 : 0;

        if (keep > 1500)
                keep = 1500;
        snprintf(out, size, "%s", text ? text + (n > keep ? n - keep : 0) : "");
        free(text);
}

/*
 * fork + exec with its own process group (so a terminal's Ctrl-C reaches
 * only the orchestrator, which stops everything in order) and a parent
 * death signal (so a killed orchestrator leaves nothing behind).
 */
static pid_t spawn(char *const argv[], char *const envp[], const char *log)
{
        pid_t parent = getpid();
        pid_t pid    = fork();

        if (pid != 0)
                return pid;
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
                _exit(127);
        int in = open("/dev/null", O_RDONLY);
        if (in >= 0) {
                dup2(in, STDIN_FILENO);
                close(in);
        }
        if (log) {
                int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
                if (fd >= 0) {
                        dup2(fd, STDOUT_FILENO);
                        dup2(fd, STDERR_FILENO);
                        close(fd);
                }
        }
        execve(argv[0], argv, envp ? envp : environ);
        _exit(127);
}

/* SIGTERM, up to @p grace_ms, then SIGKILL; always reaps. */
static void stop_pid(pid_t *pidp, int grace_ms)
{
        pid_t pid = *pidp;

        if (pid <= 0)
                return;
        kill(pid, SIGTERM);
        for (int waited = 0; waited <= grace_ms; waited += 10) {
                pid_t r = waitpid(pid, NULL, WNOHANG);
                if (r == pid || r < 0) {
                        *pidp = 0;
                        return;
                }
                e2e_sleep_ms(10);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        *pidp = 0;
}

static int exited(pid_t pid)
{
        return pid <= 0 || waitpid(pid, NULL, WNOHANG) == pid;
}

static void path_in(const struct e2e_stack *s, char *out, size_t size,
                    const char *name)
{
        snprintf(out, size, "%s/%s", s->dir, name);
}

void e2e_stack_print_log_tails(const struct e2e_stack *s, FILE *out,
                               size_t bytes)
{
        for (int w = 0; w < E2E_WORKERS; w++) {
                char name[64], path[sizeof(s->dir) + 64];
                char *text;
                size_t n;

                snprintf(name, sizeof(name), "%s.log", worker_names[w]);
                path_in(s, path, sizeof(path), name);
                if (!(text = read_file(path)))
                        continue;
                n = strlen(text);
                fprintf(out, "---- %s (last %zu of %zu bytes)\n%s\n", name,
                        n > bytes ? bytes : n, n,
                        text + (n > bytes ? n - bytes : 0));
                free(text);
        }
}

static void bin_path(char *out, size_t size, const char *rel)
{
        snprintf(out, size, "%s/%s", OSY_BUILD_DIR, rel);
}

/* One GET/POST on loopback; @returns the status or -1. */
static int http_call(const char *method, const char *url, const char *body,
                     char **resp, long timeout_ms)
{
        struct osy_http_opts ho             = {.timeout_ms         = timeout_ms,
                                               .connect_timeout_ms = 2000,
                                               .max_body           = 64u << 20};
        struct osy_http_response r          = {0};
        osy_http_client_t *c                = NULL;
        static const char *const json_hdr[] = {"Content-Type: application/json",
                                               NULL};
        struct osy_http_request req         = {.url = url};
        char e[OSY_ERRSTR_SIZE];
        int status = -1;

        if (resp)
                *resp = NULL;
        if (!strcmp(method, "POST"))
                req.method = OSY_HTTP_POST;
        else if (!strcmp(method, "DELETE"))
                req.method = OSY_HTTP_DELETE;
        else
                req.method = OSY_HTTP_GET;
        if (body) {
                req.body     = body;
                req.body_len = strlen(body);
                req.headers  = json_hdr;
        }
        if (osy_http_client_new(&c, &ho, e, sizeof(e)))
                return -1;
        if (!osy_http_do(c, &req, &r, e, sizeof(e))) {
                status = r.status;
                if (resp && r.body)
                        *resp = strdup(r.body);
        }
        osy_http_response_free(&r);
        osy_http_client_destroy(c);
        return status;
}

int e2e_stack_call(struct e2e_stack *s, const char *method, const char *path,
                   const char *body, char **resp)
{
        char url[1024];

        snprintf(url, sizeof(url), "%s%s", s->sandbox_url, path);
        return http_call(method, url, body, resp, 30000);
}

char *e2e_stack_state(struct e2e_stack *s)
{
        char path[160];
        char *body = NULL;

        snprintf(path, sizeof(path), "/sandbox/state?tenant=%s", s->tenant);
        if (e2e_stack_call(s, "GET", path, NULL, &body) != 200) {
                free(body);
                return NULL;
        }
        return body;
}

/* ---- servers ------------------------------------------------------------ */

static int redis_ping(int port)
{
        struct timeval tv = {0, 300000};
        redisContext *c   = redisConnectWithTimeout("127.0.0.1", port, tv);
        int ok            = 0;

        if (c && !c->err) {
                redisReply *r = redisCommand(c, "PING");
                ok            = r && r->type == REDIS_REPLY_STATUS &&
                     !strcmp(r->str, "PONG");
                if (r)
                        freeReplyObject(r);
        }
        if (c)
                redisFree(c);
        return ok;
}

/* The first executable @p name on $PATH (Debian puts redis-server in
 * /usr/bin; a developer's own build may come first). @returns 0 or -1. */
static int which(const char *name, char *out, size_t size)
{
        const char *path = getenv("PATH");
        const char *p = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";

        while (*p) {
                size_t len = strcspn(p, ":");
                if (len &&
                    (size_t)snprintf(out, size, "%.*s/%s", (int)len, p, name) <
                        size &&
                    access(out, X_OK) == 0)
                        return 0;
                p += len + (p[len] == ':');
        }
        return -1;
}

static int start_redis(struct e2e_stack *s, char *err, size_t err_size)
{
        char dir[300], log[320], port_s[16], bin[600];

        path_in(s, dir, sizeof(dir), "redis");
        mkdir(dir, 0700);
        path_in(s, log, sizeof(log), "redis.log");
        if (which("redis-server", bin, sizeof(bin))) {
                fmt_err(err, err_size,
                        "redis-server not found on PATH (scripts/deps.sh "
                        "installs Debian's)");
                return -1;
        }
        for (int attempt = 0; attempt < 5; attempt++) {
                int port = free_port();
                snprintf(port_s, sizeof(port_s), "%d", port);
                /* No persistence: a private, clean, fast server. */
                char *const argv[] = {
                    bin,     "--port",      port_s,   "--bind", "127.0.0.1",
                    "--dir", dir,           "--save", "",       "--appendonly",
                    "no",    "--daemonize", "no",     NULL};
                s->redis_pid = spawn(argv, NULL, log);
                for (int i = 0; i < 200 && s->redis_pid > 0; i++) {
                        if (redis_ping(port)) {
                                s->redis_port = port;
                                return 0;
                        }
                        if (exited(s->redis_pid)) {
                                s->redis_pid = 0;
                                break;
                        }
                        e2e_sleep_ms(25);
                }
                stop_pid(&s->redis_pid, 1000);
        }
        fmt_err(err, err_size, "redis-server did not start (log: %s)", log);
        return -1;
}

/* Waits for a file a child writes once it listens. */
static char *wait_file(const char *path, pid_t pid, int timeout_ms)
{
        int64_t until = e2e_now_ms() + timeout_ms;

        while (e2e_now_ms() < until) {
                char *text = read_file(path);
                if (text && *text)
                        return text;
                free(text);
                if (exited(pid))
                        return NULL;
                e2e_sleep_ms(20);
        }
        return NULL;
}

static int start_kafka(struct e2e_stack *s, int partitions, char *err,
                       size_t err_size)
{
        char bin[600], boot[300], ctl[300], log[300], parts[16];

        bin_path(bin, sizeof(bin),
                 "tools/embedded-kafka/optsync-embedded-kafka");
        path_in(s, boot, sizeof(boot), "kafka.bootstrap");
        path_in(s, ctl, sizeof(ctl), "kafka.control");
        path_in(s, log, sizeof(log), "kafka.log");
        snprintf(parts, sizeof(parts), "%d", partitions);
        char *const argv[] = {bin,   "--brokers",
                              "3",   "--partitions",
                              parts, "--bootstrap-file",
                              boot,  "--control-file",
                              ctl,   NULL};
        s->kafka_pid       = spawn(argv, NULL, log);
        char *b            = wait_file(boot, s->kafka_pid, STARTUP_TIMEOUT_MS);
        char *c            = b ? wait_file(ctl, s->kafka_pid, 5000) : NULL;
        if (!b || !c) {
                char tail[1600];
                log_tail(log, tail, sizeof(tail));
                fmt_err(err, err_size, "embedded Kafka did not start: %s",
                        tail);
                free(b);
                free(c);
                return -1;
        }
        snprintf(s->bootstrap, sizeof(s->bootstrap), "%s", b);
        /* The control file holds "127.0.0.1:PORT" or just the port. */
        const char *colon     = strrchr(c, ':');
        s->kafka_control_port = (int)strtol(colon ? colon + 1 : c, NULL, 10);
        free(b);
        free(c);
        return 0;
}

static int start_sandbox(struct e2e_stack *s, const struct e2e_stack_opts *o,
                         char *err, size_t err_size)
{
        char bin[600], fx[300], port_file[300], log[300];
        char *argv[64];
        size_t n = 0;

        bin_path(bin, sizeof(bin), "sandbox/optsync-sandbox");
        path_in(s, fx, sizeof(fx), "fixture.json");
        path_in(s, port_file, sizeof(port_file), "sandbox.port");
        path_in(s, log, sizeof(log), "sandbox.log");
        if (write_file(fx, o->fixture_json)) {
                fmt_err(err, err_size, "cannot write %s", fx);
                return -1;
        }
        argv[n++] = bin;
        argv[n++] = "--port";
        argv[n++] = "0";
        argv[n++] = "--port-file";
        argv[n++] = port_file;
        argv[n++] = "--fixture";
        argv[n++] = fx;
        for (size_t i = 0; o->sandbox_args && o->sandbox_args[i] && n < 62; i++)
                argv[n++] = (char *)o->sandbox_args[i];
        argv[n]        = NULL;
        s->sandbox_pid = spawn(argv, NULL, log);
        char *port     = wait_file(port_file, s->sandbox_pid, 30000);
        if (!port) {
                char tail[1600];
                log_tail(log, tail, sizeof(tail));
                fmt_err(err, err_size, "sandbox did not start: %s", tail);
                return -1;
        }
        s->sandbox_port = (int)strtol(port, NULL, 10);
        free(port);
        snprintf(s->sandbox_url, sizeof(s->sandbox_url), "http://127.0.0.1:%d",
                 s->sandbox_port);
        return 0;
}

/* ---- workers ------------------------------------------------------------ */

static int write_tenants(struct e2e_stack *s, char *path, size_t size)
{
        unsigned char rnd[16];
        char token[40];
        char text[2048];
        int fd = open("/dev/urandom", O_RDONLY);

        /* A fresh webhook route token per run, as an operator would make. */
        if (fd < 0 || read(fd, rnd, sizeof(rnd)) != (ssize_t)sizeof(rnd)) {
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        close(fd);
        for (size_t i = 0; i < sizeof(rnd); i++)
                snprintf(token + 2 * i, 3, "%02x", rnd[i]);
        path_in(s, path, size, "tenants.json");
        snprintf(text, sizeof(text),
                 "{\"tenants\":[{\"id\":\"%s\","
                 "\"ac\":{\"base_url\":\"%s/ac/%s\","
                 "\"api_token\":\"sandbox-ac-token\","
                 "\"webhook_token\":\"%s\"},"
                 "\"sf\":{\"login_url\":\"%s/sf/%s\","
                 "\"auth\":\"client_credentials\","
                 "\"client_id\":\"sandbox-client-id\","
                 "\"client_secret\":\"sandbox-client-secret\"}}]}\n",
                 s->tenant, s->sandbox_url, s->tenant, token, s->sandbox_url,
                 s->tenant);
        return write_file(path, text);
}

static int env_add(char ***envp, size_t *n, const char *fmt, ...)
{
        char buf[1024];
        va_list ap;
        char **grown;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        grown = realloc(*envp, (*n + 2) * sizeof(char *));
        if (!grown)
                return -1;
        *envp           = grown;
        (*envp)[(*n)++] = strdup(buf);
        (*envp)[*n]     = NULL;
        return 0;
}

/*
 * The workers' environment: the caller's, minus any OPTSYNC_* (a worker
 * rejects keys it does not know, and the demo must not depend on the
 * shell it runs in), plus the stack's settings. The admin port is added
 * per worker at spawn.
 */
static int build_env(struct e2e_stack *s, const struct e2e_stack_opts *o,
                     const char *tenants)
{
        char **envp = NULL;
        size_t n    = 0;
        int rc      = 0;

        for (char **e = environ; *e; e++)
                if (strncmp(*e, "OPTSYNC_", 8))
                        rc |= env_add(&envp, &n, "%s", *e);
        rc |= env_add(&envp, &n, "OPTSYNC_KAFKA_BOOTSTRAP=%s", s->bootstrap);
        rc |= env_add(&envp, &n, "OPTSYNC_REDIS_PORT=%d", s->redis_port);
        rc |= env_add(&envp, &n, "OPTSYNC_TENANTS_FILE=%s", tenants);
        rc |= env_add(&envp, &n, "OPTSYNC_ADMIN_ADDR=127.0.0.1");
        rc |= env_add(&envp, &n, "OPTSYNC_SHUTDOWN_GRACE=5s");
        rc |= env_add(&envp, &n, "OPTSYNC_AC_RATE_PER_SECOND=%d",
                      o->ac_rate_per_s > 0 ? o->ac_rate_per_s : 5);
        rc |= env_add(&envp, &n, "OPTSYNC_INGEST_LISTEN_ADDR=127.0.0.1");
        rc |= env_add(&envp, &n, "OPTSYNC_INGEST_PORT=%d", s->ingest_port);
        rc |= env_add(&envp, &n, "OPTSYNC_INGEST_SPOOL_DIR=%s/spool", s->dir);
        rc |=
            env_add(&envp, &n, "OPTSYNC_INGEST_PUBLIC_URL=http://127.0.0.1:%d",
                    s->ingest_port);
        /* Nothing that happened in SF before sf-ingest first subscribed
         * may be skipped. */
        rc |= env_add(&envp, &n, "OPTSYNC_SF_CDC_REPLAY_START=earliest");
        if (o->fast_failover) {
                rc |= env_add(&envp, &n, "OPTSYNC_RULES_SESSION_TIMEOUT=6s");
                rc |= env_add(&envp, &n, "OPTSYNC_WRITER_SESSION_TIMEOUT=6s");
                rc |= env_add(&envp, &n, "OPTSYNC_RETRY_BASE=100ms");
                rc |= env_add(&envp, &n, "OPTSYNC_RETRY_MAX_DELAY=2s");
                rc |= env_add(&envp, &n, "OPTSYNC_SF_CDC_BACKOFF_BASE=100ms");
                rc |= env_add(&envp, &n, "OPTSYNC_SF_CDC_BACKOFF_MAX=1s");
                rc |= env_add(&envp, &n, "OPTSYNC_SF_POLL_INTERVAL=2s");
                rc |= env_add(&envp, &n, "OPTSYNC_SF_CDC_FALLBACK_AFTER=5s");
        }
        for (size_t i = 0; o->worker_env && o->worker_env[i]; i++)
                rc |= env_add(&envp, &n, "%s", o->worker_env[i]);
        s->worker_envp = envp;
        return rc ? -1 : 0;
}

static void free_env(char **envp)
{
        for (size_t i = 0; envp && envp[i]; i++)
                free(envp[i]);
        free(envp);
}

/* Waits until the worker answers 200 on /readyz. */
static int wait_ready(struct e2e_stack *s, enum e2e_worker w, int timeout_ms,
                      char *err, size_t err_size)
{
        char url[128], log[300];
        int64_t until = e2e_now_ms() + timeout_ms;
        int last      = -1;

        snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz",
                 s->admin_port[w]);
        while (e2e_now_ms() < until && !interrupted()) {
                if (exited(s->pid[w])) {
                        s->pid[w] = 0;
                        break;
                }
                last = http_call("GET", url, NULL, NULL, 2000);
                if (last == 200)
                        return 0;
                e2e_sleep_ms(50);
        }
        char name[64], tail[1600];
        snprintf(name, sizeof(name), "%s.log", worker_names[w]);
        path_in(s, log, sizeof(log), name);
        log_tail(log, tail, sizeof(tail));
        fmt_err(err, err_size, "%s not ready (%s, /readyz %d); log %s: %s",
                worker_names[w], s->pid[w] ? "running" : "exited", last, log,
                tail);
        return -1;
}

/* Spawns one worker (argv extra: "register" for the webhook set-up). */
static pid_t spawn_worker(struct e2e_stack *s, enum e2e_worker w,
                          const char *const *extra, const char *log_name)
{
        char bin[600], log[300], admin[48];
        char *argv[8];
        size_t n = 0, envn = 0;
        char **envp;
        pid_t pid;

        bin_path(bin, sizeof(bin), worker_bin[w]);
        path_in(s, log, sizeof(log), log_name);
        argv[n++] = bin;
        for (size_t i = 0; extra && extra[i] && n < 7; i++)
                argv[n++] = (char *)extra[i];
        argv[n] = NULL;
        while (s->worker_envp[envn])
                envn++;
        envp = calloc(envn + 2, sizeof(char *));
        if (!envp)
                return -1;
        memcpy(envp, s->worker_envp, envn * sizeof(char *));
        snprintf(admin, sizeof(admin), "OPTSYNC_ADMIN_PORT=%d",
                 extra ? 0 : s->admin_port[w]);
        envp[envn] = admin;
        pid        = spawn(argv, envp, log);
        free(envp);
        return pid;
}

/*
 * Waits until a consumer worker's log, past @p from bytes, says the group
 * gave it partitions: /readyz turns true before the group's first
 * rebalance ends, and a scenario played before then would measure the
 * join, not the pipeline.
 */
static int wait_assigned(struct e2e_stack *s, enum e2e_worker w, long from,
                         int timeout_ms, char *err, size_t err_size)
{
        char log[300], name[64];
        int64_t until = e2e_now_ms() + timeout_ms;

        snprintf(name, sizeof(name), "%s.log", worker_names[w]);
        path_in(s, log, sizeof(log), name);
        while (e2e_now_ms() < until && !interrupted()) {
                FILE *f = fopen(log, "r");
                char line[4096];
                int seen = 0;

                if (f && !fseek(f, from, SEEK_SET))
                        while (!seen && fgets(line, sizeof(line), f))
                                seen =
                                    strstr(line, "consumer assigned") != NULL;
                if (f)
                        fclose(f);
                if (seen)
                        return 0;
                if (exited(s->pid[w]))
                        break;
                e2e_sleep_ms(50);
        }
        fmt_err(err, err_size, "%s got no partitions within %d ms (log %s)",
                worker_names[w], timeout_ms, log);
        return -1;
}

static int is_consumer(enum e2e_worker w)
{
        return w == E2E_RULES || w == E2E_SF_WRITER || w == E2E_AC_WRITER;
}

/* Spawns a worker and waits for /readyz; *from gets its log's size
 * before the start (where to look for the assignment). */
static int launch(struct e2e_stack *s, enum e2e_worker w, long *from, char *err,
                  size_t err_size)
{
        char log_name[64], log[300];
        struct stat st;

        if (s->pid[w] > 0) {
                fmt_err(err, err_size, "%s is already running",
                        worker_names[w]);
                return -1;
        }
        s->admin_port[w] = free_port();
        snprintf(log_name, sizeof(log_name), "%s.log", worker_names[w]);
        path_in(s, log, sizeof(log), log_name);
        *from     = !stat(log, &st) ? (long)st.st_size : 0;
        s->pid[w] = spawn_worker(s, w, NULL, log_name);
        if (s->pid[w] <= 0) {
                s->pid[w] = 0;
                fmt_err(err, err_size, "cannot start %s", worker_names[w]);
                return -1;
        }
        return wait_ready(s, w, STARTUP_TIMEOUT_MS, err, err_size);
}

int e2e_stack_start_worker(struct e2e_stack *s, enum e2e_worker w, char *err,
                           size_t err_size)
{
        long from = 0;

        if (launch(s, w, &from, err, err_size))
                return -1;
        return is_consumer(w) ? wait_assigned(s, w, from, STARTUP_TIMEOUT_MS,
                                              err, err_size)
                              : 0;
}

void e2e_stack_kill(struct e2e_stack *s, enum e2e_worker w)
{
        if (s->pid[w] <= 0)
                return;
        kill(s->pid[w], SIGKILL);
        waitpid(s->pid[w], NULL, 0);
        s->pid[w] = 0;
        s->restarts[w]++;
}

/* `ac-ingest register --tenant T`: the operator's webhook set-up. */
static int register_webhook(struct e2e_stack *s, char *err, size_t err_size)
{
        const char *const extra[] = {"register", "--tenant", s->tenant, NULL};
        pid_t pid = spawn_worker(s, E2E_AC_INGEST, extra, "register.log");
        int status;

        if (pid <= 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
                char log[300], tail[1600];
                path_in(s, log, sizeof(log), "register.log");
                log_tail(log, tail, sizeof(tail));
                fmt_err(err, err_size, "ac-ingest register failed: %s", tail);
                return -1;
        }
        return 0;
}

/* ---- Kafka offsets ------------------------------------------------------ */

static rd_kafka_t *kafka_handle(const struct e2e_stack *s, const char *group)
{
        char e[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();

        if (rd_kafka_conf_set(conf, "bootstrap.servers", s->bootstrap, e,
                              sizeof(e)) ||
            rd_kafka_conf_set(conf, "group.id", group, e, sizeof(e)) ||
            rd_kafka_conf_set(conf, "enable.auto.commit", "false", e,
                              sizeof(e)) ||
            rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", e,
                              sizeof(e)) ||
            rd_kafka_conf_set(conf, "log_level", "3", e, sizeof(e))) {
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof(e));
        if (!rk)
                rd_kafka_conf_destroy(conf);
        return rk;
}

static struct kafka_handles *handles(struct e2e_stack *s)
{
        struct kafka_handles *k = s->kafka;

        if (k)
                return k;
        k = calloc(1, sizeof(*k));
        if (!k)
                return NULL;
        k->partitions = s->partitions;
        for (int g = 0; g < GROUPS; g++)
                k->group_rk[g] = kafka_handle(s, groups[g].group);
        s->kafka = k;
        return k;
}

static void handles_free(struct e2e_stack *s)
{
        struct kafka_handles *k = s->kafka;

        if (!k)
                return;
        for (int g = 0; g < GROUPS; g++)
                if (k->group_rk[g])
                        rd_kafka_destroy(k->group_rk[g]);
        free(k);
        s->kafka = NULL;
}

static void topic_name(char *out, size_t size, const char *suffix)
{
        snprintf(out, size, "optsync.%s", suffix);
}

/* @returns the high watermark of one partition, or -1. */
static int64_t high_mark(rd_kafka_t *rk, const char *topic, int p)
{
        int64_t lo = 0, hi = 0;

        if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 5000))
                return -1;
        return hi;
}

/* @returns the messages in a topic (sum of high marks), or -1. */
static int64_t topic_count(struct e2e_stack *s, rd_kafka_t *rk,
                           const char *suffix)
{
        struct kafka_handles *k = s->kafka;
        char topic[128];
        int64_t sum = 0;

        topic_name(topic, sizeof(topic), suffix);
        for (int p = 0; p < k->partitions; p++) {
                int64_t hi = high_mark(rk, topic, p);
                if (hi < 0)
                        return -1;
                sum += hi;
        }
        return sum;
}

/* @returns messages of the group's topics not yet committed, or -1. */
static int64_t group_lag(struct e2e_stack *s, int g)
{
        struct kafka_handles *k = s->kafka;
        rd_kafka_t *rk          = k->group_rk[g];
        rd_kafka_topic_partition_list_t *list;
        char topic[128];
        int64_t lag = 0;

        if (!rk)
                return -1;
        list = rd_kafka_topic_partition_list_new(2 * k->partitions);
        for (int t = 0; t < 2 && groups[g].topics[t]; t++) {
                topic_name(topic, sizeof(topic), groups[g].topics[t]);
                for (int p = 0; p < k->partitions; p++)
                        rd_kafka_topic_partition_list_add(list, topic, p);
        }
        if (rd_kafka_committed(rk, list, 5000)) {
                rd_kafka_topic_partition_list_destroy(list);
                return -1;
        }
        for (int i = 0; i < list->cnt; i++) {
                rd_kafka_topic_partition_t *tp = &list->elems[i];
                int64_t hi        = high_mark(rk, tp->topic, tp->partition);
                int64_t committed = tp->offset >= 0 ? tp->offset : 0;

                if (hi < 0) {
                        lag = -1;
                        break;
                }
                if (hi > committed)
                        lag += hi - committed;
        }
        rd_kafka_topic_partition_list_destroy(list);
        return lag;
}

int e2e_stack_settle(struct e2e_stack *s, int quiet_ms, int timeout_ms,
                     char *err, size_t err_size)
{
        struct kafka_handles *k = handles(s);
        int64_t until = e2e_now_ms() + timeout_ms, quiet_since = -1;
        int64_t last_total = -1, lag_total = 0;
        char path[160], flush[64];

        if (!k || !k->group_rk[0]) {
                fmt_err(err, err_size, "no Kafka client");
                return -1;
        }
        snprintf(path, sizeof(path), "/sandbox/ac/%s/webhooks/flush",
                 s->tenant);
        while (e2e_now_ms() < until && !interrupted()) {
                int64_t total = 0;
                int moving    = 0;

                /* Webhooks AC still has to send are work in flight. */
                snprintf(flush, sizeof(flush), "{\"timeout_ms\":%d}", 1000);
                if (e2e_stack_call(s, "POST", path, flush, NULL) != 200)
                        moving = 1;
                for (size_t t = 0; t < N_TOPICS; t++) {
                        int64_t c =
                            topic_count(s, k->group_rk[0], all_topics[t]);
                        if (c < 0)
                                moving = 1;
                        total += c;
                }
                lag_total = 0;
                for (int g = 0; g < GROUPS; g++) {
                        int64_t lag = group_lag(s, g);
                        if (lag != 0)
                                moving = 1;
                        if (lag > 0)
                                lag_total += lag;
                }
                if (total != last_total)
                        moving = 1;
                last_total = total;
                if (moving) {
                        quiet_since = -1;
                } else {
                        if (quiet_since < 0)
                                quiet_since = e2e_now_ms();
                        if (e2e_now_ms() - quiet_since >= quiet_ms)
                                return 0;
                }
                e2e_sleep_ms(100);
        }
        if (interrupted())
                fmt_err(err, err_size, "interrupted");
        else
                fmt_err(err, err_size,
                        "not settled after %d ms (%lld messages not yet "
                        "committed)",
                        timeout_ms, (long long)lag_total);
        return -1;
}

long e2e_stack_read_topic(struct e2e_stack *s, const char *suffix,
                          void (*fn)(const char *value, size_t len,
                                     void *opaque),
                          void *opaque)
{
        struct kafka_handles *k = handles(s);
        rd_kafka_t *rk = k ? kafka_handle(s, "optsync-e2e-reader") : NULL;
        rd_kafka_topic_partition_list_t *list;
        char topic[128];
        int64_t *end;
        long n = 0, left = 0;

        if (!rk)
                return -1;
        topic_name(topic, sizeof(topic), suffix);
        end  = calloc((size_t)k->partitions, sizeof(*end));
        list = rd_kafka_topic_partition_list_new(k->partitions);
        for (int p = 0; p < k->partitions; p++) {
                end[p] = high_mark(rk, topic, p);
                if (end[p] > 0) {
                        rd_kafka_topic_partition_list_add(list, topic, p)
                            ->offset = RD_KAFKA_OFFSET_BEGINNING;
                        left += end[p];
                }
        }
        if (list->cnt && rd_kafka_assign(rk, list))
                n = -1;
        int64_t until = e2e_now_ms() + 30000;
        while (n >= 0 && left > 0 && e2e_now_ms() < until) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
                if (!m)
                        continue;
                if (!m->err && m->offset < end[m->partition]) {
                        fn(m->payload ? (const char *)m->payload : "", m->len,
                           opaque);
                        n++;
                        left--;
                }
                rd_kafka_message_destroy(m);
        }
        if (left > 0)
                n = -1;
        rd_kafka_topic_partition_list_destroy(list);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        free(end);
        return n;
}

/* ---- counters ----------------------------------------------------------- */

double e2e_stack_metric(struct e2e_stack *s, enum e2e_worker w,
                        const char *name)
{
        char url[128];
        char *body = NULL;
        double sum = -1;
        size_t len = strlen(name);

        if (s->pid[w] <= 0)
                return -1;
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics",
                 s->admin_port[w]);
        if (http_call("GET", url, NULL, &body, 5000) != 200 || !body) {
                free(body);
                return -1;
        }
        for (char *line = body; line && *line;) {
                char *next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                if (!strncmp(line, name, len) &&
                    (line[len] == '{' || line[len] == ' ')) {
                        const char *v = strrchr(line, ' ');
                        sum = (sum < 0 ? 0 : sum) + strtod(v + 1, NULL);
                }
                line = next;
        }
        free(body);
        return sum;
}

static int64_t json_int(const cJSON *obj, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

        return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

int e2e_stack_totals(struct e2e_stack *s, struct e2e_totals *t)
{
        struct kafka_handles *k = handles(s);
        char *body              = NULL;
        cJSON *root, *by_ep, *ep, *faults, *f;

        memset(t, 0, sizeof(*t));
        if (!k || !k->group_rk[0])
                return -1;
        t->ac_events   = topic_count(s, k->group_rk[0], "ac.events");
        t->sf_events   = topic_count(s, k->group_rk[0], "sf.events");
        t->sf_commands = topic_count(s, k->group_rk[0], "sf.commands");
        t->ac_commands = topic_count(s, k->group_rk[0], "ac.commands");
        t->audit       = topic_count(s, k->group_rk[0], "audit");
        t->dlq         = topic_count(s, k->group_rk[0], "dlq");
        if (e2e_stack_call(s, "GET", "/sandbox/stats", NULL, &body) != 200 ||
            !(root = cJSON_Parse(body))) {
                free(body);
                return -1;
        }
        free(body);
        by_ep = cJSON_GetObjectItemCaseSensitive(root, "by_endpoint");
        cJSON_ArrayForEach(ep, by_ep)
        {
                int64_t n = json_int(ep, "total");
                if (!strncmp(ep->string, "ac", 2))
                        t->ac_api_calls += n;
                else if (!strcmp(ep->string, "cometd"))
                        t->cometd_calls += n;
                else if (!strncmp(ep->string, "sf", 2))
                        t->sf_api_calls += n;
        }
        t->http_429 = json_int(
            cJSON_GetObjectItemCaseSensitive(root, "by_status"), "429");
        faults = cJSON_GetObjectItemCaseSensitive(root, "faults");
        cJSON_ArrayForEach(f, faults)
        {
                if (cJSON_IsNumber(f))
                        t->faults += (int64_t)f->valuedouble;
        }
        cJSON_Delete(root);
        return 0;
}

/* ---- start and stop ----------------------------------------------------- */

int e2e_stack_start(struct e2e_stack *s, const struct e2e_stack_opts *o,
                    char *err, size_t err_size)
{
        const char *base = getenv("TMPDIR");
        char tenants[300];
        int partitions = o->partitions > 0 ? o->partitions : 6;

        memset(s, 0, sizeof(*s));
        s->keep_dir = o->keep_dir;
        if (!o->tenant || !o->fixture_json) {
                fmt_err(err, err_size, "tenant and fixture are required");
                return -1;
        }
        snprintf(s->tenant, sizeof(s->tenant), "%s", o->tenant);
        snprintf(s->dir, sizeof(s->dir), "%s/optsync-e2e-XXXXXX",
                 base && *base ? base : "/tmp");
        if (!mkdtemp(s->dir)) {
                fmt_err(err, err_size, "mkdtemp %s: %s", s->dir,
                        strerror(errno));
                s->dir[0] = '\0';
                return -1;
        }
        if (start_redis(s, err, err_size) ||
            start_kafka(s, partitions, err, err_size) ||
            start_sandbox(s, o, err, err_size))
                goto fail;
        s->ingest_port = free_port();
        if (write_tenants(s, tenants, sizeof(tenants)) ||
            build_env(s, o, tenants)) {
                fmt_err(err, err_size, "cannot prepare the workers' settings");
                goto fail;
        }
        s->partitions = partitions;
        if (e2e_stack_start_worker(s, E2E_AC_INGEST, err, err_size) ||
            register_webhook(s, err, err_size))
                goto fail;
        /* Start the rest at once; their groups form in parallel. */
        long from[E2E_WORKERS] = {0};
        for (int w = E2E_SF_INGEST; w < E2E_WORKERS; w++)
                if (launch(s, (enum e2e_worker)w, &from[w], err, err_size))
                        goto fail;
        for (int w = E2E_SF_INGEST; w < E2E_WORKERS; w++)
                if (is_consumer((enum e2e_worker)w) &&
                    wait_assigned(s, (enum e2e_worker)w, from[w],
                                  STARTUP_TIMEOUT_MS, err, err_size))
                        goto fail;
        if (!handles(s)) {
                fmt_err(err, err_size, "no Kafka client");
                goto fail;
        }
        return 0;
fail:
        e2e_stack_stop(s);
        return -1;
}

void e2e_stack_stop(struct e2e_stack *s)
{
        handles_free(s);
        /* Sources first, so nothing new enters while the rest drains. */
        for (int w = 0; w < E2E_WORKERS; w++)
                if (s->pid[w] > 0)
                        kill(s->pid[w], SIGTERM);
        for (int w = 0; w < E2E_WORKERS; w++)
                stop_pid(&s->pid[w], 8000);
        stop_pid(&s->sandbox_pid, 5000);
        stop_pid(&s->kafka_pid, 5000);
        stop_pid(&s->redis_pid, 5000);
        free_env(s->worker_envp);
        s->worker_envp = NULL;
        if (s->dir[0] && !s->keep_dir) {
                char *const argv[] = {"/bin/rm", "-rf", s->dir, NULL};
                pid_t pid          = spawn(argv, NULL, NULL);
                if (pid > 0)
                        waitpid(pid, NULL, 0);
        }
        if (!s->keep_dir)
                s->dir[0] = '\0';
}
