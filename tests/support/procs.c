/*
 * procs.c - process helpers for tests: temporary directories, spawning and
 * stopping servers, waiting for the files they write, a Redis launcher
 * that goes through the same scripts as the demo.
 */
#include "osy_test.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

char *osy_test_mkdtemp(const char *tag)
{
        const char *base = getenv("TMPDIR");
        char path[512];

        snprintf(path, sizeof(path), "%s/optsync-%s-XXXXXX",
                 base && *base ? base : "/tmp", tag);
        if (!mkdtemp(path))
                return NULL;
        return strdup(path);
}

void osy_test_rmtree(const char *dir)
{
        if (!dir || !*dir || !strcmp(dir, "/"))
                return;
        char *const argv[] = {"rm", "-rf", (char *)dir, NULL};
        pid_t pid          = osy_test_spawn(argv, NULL);
        if (pid > 0)
                waitpid(pid, NULL, 0);
}

pid_t osy_test_spawn(char *const argv[], const char *log_path)
{
        pid_t pid = fork();

        if (pid != 0)
                return pid;
        if (log_path) {
                int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
                if (fd >= 0) {
                        dup2(fd, STDOUT_FILENO);
                        dup2(fd, STDERR_FILENO);
                        close(fd);
                }
        }
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
}

int osy_test_stop(pid_t pid, int grace_ms)
{
        int status = -1;

        if (pid <= 0)
                return -1;
        kill(pid, SIGTERM);
        for (int waited = 0; waited <= grace_ms; waited += 10) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid)
                        return status;
                if (r < 0)
                        return -1;
                osy_test_sleep_ms(10);
        }
        kill(pid, SIGKILL);
        if (waitpid(pid, &status, 0) != pid)
                return -1;
        return status;
}

int64_t osy_test_now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void osy_test_sleep_ms(int ms)
{
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
                ;
}

int osy_test_wait_file(const char *path, int timeout_ms)
{
        int64_t deadline = osy_test_now_ms() + timeout_ms;
        struct stat st;

        do {
                if (stat(path, &st) == 0 && st.st_size > 0)
                        return 0;
                osy_test_sleep_ms(20);
        } while (osy_test_now_ms() < deadline);
        return -1;
}

char *osy_test_read_file(const char *path)
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

/*
 * redis-start.sh leaves redis-server running on its own (it must outlive
 * the script). A test that fails an assertion skips its own stop, so every
 * server still running when the test process exits is stopped here.
 */
#define REDIS_TRACKED 16
static char *redis_running[REDIS_TRACKED];
static pid_t redis_owner; /* a forked child that exits must not stop them */

static void redis_stop_dir(const char *dir)
{
        char script[600];

        snprintf(script, sizeof(script), "%s/scripts/redis-stop.sh",
                 OSY_SOURCE_DIR);
        char *const argv[] = {"bash", script, (char *)dir, NULL};
        pid_t pid          = osy_test_spawn(argv, "/dev/null");
        if (pid > 0)
                waitpid(pid, NULL, 0);
        osy_test_rmtree(dir);
}

static void redis_stop_leftovers(void)
{
        if (getpid() != redis_owner)
                return;
        for (int i = 0; i < REDIS_TRACKED; i++)
                if (redis_running[i]) {
                        redis_stop_dir(redis_running[i]);
                        free(redis_running[i]);
                        redis_running[i] = NULL;
                }
}

static void redis_track(const char *dir, int on)
{
        static int registered;

        if (!registered) {
                registered  = 1;
                redis_owner = getpid();
                atexit(redis_stop_leftovers);
        }
        for (int i = 0; i < REDIS_TRACKED; i++) {
                if (on && !redis_running[i]) {
                        redis_running[i] = strdup(dir);
                        return;
                }
                if (!on && redis_running[i] && !strcmp(redis_running[i], dir)) {
                        free(redis_running[i]);
                        redis_running[i] = NULL;
                        return;
                }
        }
}

int osy_test_redis_start(struct osy_test_redis *r)
{
        char script[600], port_file[600];
        int status;

        memset(r, 0, sizeof(*r));
        r->dir = osy_test_mkdtemp("redis");
        if (!r->dir)
                return -1;
        snprintf(script, sizeof(script), "%s/scripts/redis-start.sh",
                 OSY_SOURCE_DIR);
        char *const argv[] = {"bash", script, r->dir, NULL};
        pid_t pid          = osy_test_spawn(argv, "/dev/null");
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0)
                return -1;
        redis_track(r->dir, 1);
        snprintf(port_file, sizeof(port_file), "%s/redis.port", r->dir);
        char *port = osy_test_read_file(port_file);
        r->port    = port ? (int)strtol(port, NULL, 10) : 0;
        free(port);
        return r->port > 0 ? 0 : -1;
}

void osy_test_redis_stop(struct osy_test_redis *r)
{
        if (!r->dir)
                return;
        redis_stop_dir(r->dir);
        redis_track(r->dir, 0);
        free(r->dir);
        r->dir  = NULL;
        r->port = 0;
}
