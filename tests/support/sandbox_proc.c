/*
 * sandbox_proc.c - runs sandbox/optsync-sandbox for a test: a private
 * directory for its fixture, port file and log; readiness by port file;
 * one-off HTTP calls through the project's client.
 */
#include "osy_test_sandbox.h"
#include "osy_test.h"

#include "optsync/http.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define SANDBOX_PATH OSY_BINARY_DIR "/sandbox/optsync-sandbox"
#define READY_TIMEOUT_MS 15000
#define STOP_GRACE_MS 5000
#define CALL_TIMEOUT_MS 10000
#define MAX_ARGS 64

/* fork + exec with the log as stdout/stderr; the child dies with the test
 * (PR_SET_PDEATHSIG), so a crashed test leaves no sandbox behind. */
static pid_t spawn(char *const argv[], const char *log_path)
{
        pid_t parent = getpid();
        pid_t pid    = fork();

        if (pid != 0)
                return pid;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
                _exit(127);
        if (!freopen(log_path, "a", stdout) || dup2(1, 2) < 0)
                _exit(127);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
}

static int write_file(const char *path, const char *text)
{
        FILE *f  = fopen(path, "w");
        size_t n = strlen(text);

        if (!f)
                return -1;
        if (fwrite(text, 1, n, f) != n) {
                fclose(f);
                return -1;
        }
        return fclose(f) == 0 ? 0 : -1;
}

static void dump_log(const struct osy_test_sandbox *s)
{
        char path[600];
        char *log;

        snprintf(path, sizeof(path), "%s/sandbox.log", s->dir);
        log = osy_test_read_file(path);
        fprintf(stderr, "---- sandbox log (%s) ----\n%s\n----\n", path,
                log ? log : "(none)");
        free(log);
}

int osy_test_sandbox_start(struct osy_test_sandbox *s, const char *fixture_json,
                           const char *const *extra_args)
{
        char fixture[600], port_file[600], log[600];
        char *argv[MAX_ARGS];
        char *port = NULL;
        int n      = 0, status;

        memset(s, 0, sizeof(*s));
        if (!(s->dir = osy_test_mkdtemp("sandbox")))
                return -1;
        snprintf(fixture, sizeof(fixture), "%s/fixture.json", s->dir);
        snprintf(port_file, sizeof(port_file), "%s/port", s->dir);
        snprintf(log, sizeof(log), "%s/sandbox.log", s->dir);
        argv[n++] = SANDBOX_PATH;
        argv[n++] = "--port";
        argv[n++] = "0";
        argv[n++] = "--port-file";
        argv[n++] = port_file;
        if (fixture_json) {
                if (write_file(fixture, fixture_json)) {
                        fprintf(stderr, "sandbox: cannot write %s\n", fixture);
                        goto fail;
                }
                argv[n++] = "--fixture";
                argv[n++] = fixture;
        }
        for (size_t i = 0; extra_args && extra_args[i]; i++) {
                if (n >= MAX_ARGS - 1) {
                        fprintf(stderr, "sandbox: too many arguments\n");
                        goto fail;
                }
                argv[n++] = (char *)extra_args[i];
        }
        argv[n] = NULL;
        if ((s->pid = spawn(argv, log)) <= 0) {
                s->pid = 0;
                goto fail;
        }
        /* Ready once the port file exists; give up early if it died. */
        for (int64_t end = osy_test_now_ms() + READY_TIMEOUT_MS;;) {
                if (osy_test_wait_file(port_file, 20) == 0)
                        break;
                if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
                        s->pid = 0;
                        fprintf(stderr, "sandbox: exited during start\n");
                        goto fail;
                }
                if (osy_test_now_ms() > end) {
                        fprintf(stderr, "sandbox: no port file after %d ms\n",
                                READY_TIMEOUT_MS);
                        goto fail;
                }
        }
        port    = osy_test_read_file(port_file);
        s->port = port ? (int)strtol(port, NULL, 10) : 0;
        free(port);
        if (s->port <= 0 || s->port > 65535)
                goto fail;
        snprintf(s->base_url, sizeof(s->base_url), "http://127.0.0.1:%d",
                 s->port);
        return 0;
fail:
        dump_log(s);
        osy_test_sandbox_stop(s);
        return -1;
}

int osy_test_sandbox_stop_status(struct osy_test_sandbox *s, long *took_ms)
{
        int64_t t0 = osy_test_now_ms();
        int status = -1;

        if (s->pid > 0) {
                status = osy_test_stop(s->pid, STOP_GRACE_MS);
                /* Not an assertion, but a crash, a sanitizer report or a
                 * hang on SIGTERM must not go unseen. */
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                        fprintf(stderr, "sandbox: stopped with status 0x%x\n",
                                (unsigned)status);
                        dump_log(s);
                }
        }
        if (took_ms)
                *took_ms = (long)(osy_test_now_ms() - t0);
        if (s->dir) {
                osy_test_rmtree(s->dir);
                free(s->dir);
        }
        memset(s, 0, sizeof(*s));
        return status;
}

void osy_test_sandbox_stop(struct osy_test_sandbox *s)
{
        (void)osy_test_sandbox_stop_status(s, NULL);
}

static int method_of(const char *m, osy_http_method_t *out)
{
        static const struct {
                const char *name;
                osy_http_method_t m;
        } map[] = {{"GET", OSY_HTTP_GET},
                   {"POST", OSY_HTTP_POST},
                   {"PUT", OSY_HTTP_PUT},
                   {"PATCH", OSY_HTTP_PATCH},
                   {"DELETE", OSY_HTTP_DELETE}};

        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
                if (!strcmp(map[i].name, m)) {
                        *out = map[i].m;
                        return 0;
                }
        return -1;
}

int osy_test_sandbox_call(struct osy_test_sandbox *s, const char *method,
                          const char *path, const char *const *headers,
                          const char *body, char **resp_body)
{
        struct osy_http_opts o     = {.timeout_ms = CALL_TIMEOUT_MS};
        struct osy_http_request rq = {0};
        struct osy_http_response r = {0};
        osy_http_client_t *c       = NULL;
        char errstr[OSY_ERRSTR_SIZE], url[4096];
        int status = -1;

        if (resp_body)
                *resp_body = NULL;
        if (method_of(method, &rq.method) ||
            snprintf(url, sizeof(url), "%s%s", s->base_url, path) >=
                (int)sizeof(url))
                return -1;
        rq.url      = url;
        rq.headers  = headers;
        rq.body     = body;
        rq.body_len = body ? strlen(body) : 0;
        if (osy_http_client_new(&c, &o, errstr, sizeof(errstr)) != OSY_OK)
                return -1;
        if (osy_http_do(c, &rq, &r, errstr, sizeof(errstr)) != OSY_OK) {
                fprintf(stderr, "sandbox call %s %s: %s\n", method, path,
                        errstr);
                goto out;
        }
        status = r.status;
        if (resp_body)
                *resp_body = strdup(r.body);
out:
        osy_http_response_free(&r);
        osy_http_client_destroy(c);
        return status;
}
