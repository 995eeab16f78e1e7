/*
 * test_shutdown.c - SIGTERM and SIGINT set the flag and wake poll loops;
 * a worker process exits cleanly on SIGTERM.
 */
#include "osy_test.h"
#include "optsync/shutdown.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static int setup(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        (void)state;
        return osy_shutdown_install(err, sizeof(err)) == OSY_OK ? 0 : -1;
}

static int reset(void **state)
{
        (void)state;
        osy_shutdown_reset();
        return 0;
}

static void sigterm_sets_flag_and_signal(void **state)
{
        (void)state;
        assert_false(osy_shutdown_requested());
        raise(SIGTERM);
        assert_true(osy_shutdown_requested());
        assert_int_equal(osy_shutdown_signal(), SIGTERM);
}

static void signal_wakes_poll_loop(void **state)
{
        struct pollfd pfd = {.fd = osy_shutdown_fd(), .events = POLLIN};
        (void)state;
        assert_true(pfd.fd >= 0);
        assert_int_equal(poll(&pfd, 1, 0), 0); /* nothing yet */
        raise(SIGINT);
        assert_int_equal(poll(&pfd, 1, 1000), 1);
        assert_int_equal(osy_shutdown_signal(), SIGINT);
}

static void wait_returns_on_request(void **state)
{
        (void)state;
        int64_t t0 = osy_test_now_ms();
        assert_false(osy_shutdown_wait(50)); /* times out, no request */
        assert_true(osy_test_now_ms() - t0 >= 40);
        osy_shutdown_request();
        t0 = osy_test_now_ms();
        assert_true(osy_shutdown_wait(10000));
        assert_true(osy_test_now_ms() - t0 < 1000);
        assert_int_equal(osy_shutdown_signal(), 0); /* not a signal */
}

static void reset_clears_request(void **state)
{
        (void)state;
        osy_shutdown_request();
        osy_shutdown_reset();
        assert_false(osy_shutdown_requested());
        assert_false(osy_shutdown_wait(0));
}

static void child_drains_and_exits_zero_on_sigterm(void **state)
{
        int pipefd[2], status;
        char c;
        (void)state;
        assert_int_equal(pipe(pipefd), 0);
        pid_t pid = fork();
        if (pid == 0) {
                /* A miniature worker: loop until asked, then "drain". */
                int drained = 0;
                if (write(pipefd[1], "r", 1) != 1)
                        _exit(3);
                while (!osy_shutdown_wait(1000))
                        ;
                drained = 1;
                _exit(drained && osy_shutdown_signal() == SIGTERM ? 0 : 2);
        }
        assert_int_equal(read(pipefd[0], &c, 1), 1); /* child is in its loop */
        kill(pid, SIGTERM);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        close(pipefd[0]);
        close(pipefd[1]);
}

static void second_sigint_exits_at_once(void **state)
{
        int status;
        (void)state;
        pid_t pid = fork();
        if (pid == 0) {
                raise(SIGINT);
                raise(SIGINT); /* handler calls _exit(130) */
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 130);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(sigterm_sets_flag_and_signal, reset, reset),
    cmocka_unit_test_setup_teardown(signal_wakes_poll_loop, reset, reset),
    cmocka_unit_test_setup_teardown(wait_returns_on_request, reset, reset),
    cmocka_unit_test_setup_teardown(reset_clears_request, reset, reset),
    cmocka_unit_test_setup_teardown(child_drains_and_exits_zero_on_sigterm,
                                    reset, reset),
    cmocka_unit_test_setup_teardown(second_sigint_exits_at_once, reset, reset),
};
OSY_TEST_MAIN(tests, setup, NULL)
