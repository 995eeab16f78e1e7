/*
 * test_harness_cleanup.c - the test harness itself: a test process that
 * ends without stopping its redis-server (a failed assertion skips the
 * stop) must not leave the server running.
 */
#include "osy_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* @returns 1 if something accepts TCP connections on 127.0.0.1:port. */
static int listening(int port)
{
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port   = htons((uint16_t)port)};
        int fd               = socket(AF_INET, SOCK_STREAM, 0), ok;

        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        if (fd >= 0)
                close(fd);
        return ok;
}

static void redis_of_a_process_that_exits_is_stopped(void **state)
{
        int fds[2], port = 0, status;
        pid_t pid;
        (void)state;

        assert_int_equal(pipe(fds), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                /* A "test" that starts redis and ends without stopping it. */
                struct osy_test_redis r;
                close(fds[0]);
                if (osy_test_redis_start(&r) == 0 &&
                    write(fds[1], &r.port, sizeof(r.port)) ==
                        (ssize_t)sizeof(r.port))
                        exit(1);
                exit(2);
        }
        close(fds[1]);
        assert_int_equal(read(fds[0], &port, sizeof(port)), sizeof(port));
        close(fds[0]);
        assert_true(port > 0);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
        /* redis-stop.sh waits for the server to be gone. */
        assert_false(listening(port));
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(redis_of_a_process_that_exits_is_stopped),
        };

        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
