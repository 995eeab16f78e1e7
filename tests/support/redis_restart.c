/*
 * redis_restart.c - stop and start a test redis-server on the same port
 * through the same scripts the demo uses.
 */
#include "redis_restart.h"

#include <stdio.h>
#include <sys/wait.h>

/* Run "bash scripts/<script> DIR [PORT]"; @returns its exit status. */
static int run_script(const char *script, const char *dir, const char *port)
{
        char path[600];
        int status;

        snprintf(path, sizeof(path), "%s/scripts/%s", OSY_SOURCE_DIR, script);
        char *const argv[] = {"bash", path, (char *)dir, (char *)port, NULL};
        pid_t pid          = osy_test_spawn(argv, "/dev/null");
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
                return -1;
        return WEXITSTATUS(status);
}

int osy_test_redis_halt(struct osy_test_redis *r)
{
        if (!r->dir)
                return -1;
        return run_script("redis-stop.sh", r->dir, NULL) == 0 ? 0 : -1;
}

int osy_test_redis_restart(struct osy_test_redis *r)
{
        char port[16];

        if (!r->dir || r->port <= 0)
                return -1;
        snprintf(port, sizeof(port), "%d", r->port);
        if (run_script("redis-stop.sh", r->dir, NULL) != 0)
                return -1;
        /* The old server is gone (redis-stop.sh waits for it); redis sets
         * SO_REUSEADDR, so the port can be bound again at once. */
        return run_script("redis-start.sh", r->dir, port) == 0 ? 0 : -1;
}
