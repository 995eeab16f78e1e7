/*
 * shutdown.c - signal handling for graceful shutdown. The handler only
 * does async-signal-safe work: set a flag and write one byte to a pipe.
 */
#include "optsync/shutdown.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

/* Atomics, not volatile sig_atomic_t: the handler runs on whichever thread
 * the signal lands on, and other threads read the flag (sig_atomic_t only
 * covers a handler and the thread it interrupted; scripts/tsan.sh flagged
 * it). Lock-free atomics are safe in a signal handler. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "atomic int must be lock-free");
static atomic_int shutdown_flag;
static atomic_int shutdown_signo;
static int wake_pipe[2] = {-1, -1};

static void wake(void)
{
        if (wake_pipe[1] >= 0) {
                /* Non-blocking: a full pipe already means "wake up". */
                ssize_t n = write(wake_pipe[1], "x", 1);
                (void)n;
        }
}

static void on_signal(int signo)
{
        if (atomic_load(&shutdown_flag) && signo == SIGINT)
                _exit(130); /* Ctrl-C twice: the person wants out now */
        atomic_store(&shutdown_signo, signo);
        atomic_store(&shutdown_flag, 1);
        wake();
}

osy_err_t osy_shutdown_install(char *errstr, size_t errstr_size)
{
        struct sigaction sa;

        if (wake_pipe[0] < 0) {
                if (pipe(wake_pipe) != 0)
                        return osy_err_set(OSY_ERR_FATAL, errstr, errstr_size,
                                           "shutdown: pipe: %s",
                                           strerror(errno));
                for (int i = 0; i < 2; i++) {
                        fcntl(wake_pipe[i], F_SETFL,
                              fcntl(wake_pipe[i], F_GETFL) | O_NONBLOCK);
                        fcntl(wake_pipe[i], F_SETFD, FD_CLOEXEC);
                }
        }
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        /* No SA_RESTART: blocking calls return EINTR and loops re-check. */
        if (sigaction(SIGTERM, &sa, NULL) != 0 ||
            sigaction(SIGINT, &sa, NULL) != 0)
                return osy_err_set(OSY_ERR_FATAL, errstr, errstr_size,
                                   "shutdown: sigaction: %s", strerror(errno));
        signal(SIGPIPE, SIG_IGN);
        return OSY_OK;
}

int osy_shutdown_requested(void)
{
        return atomic_load(&shutdown_flag) != 0;
}

int osy_shutdown_signal(void)
{
        return atomic_load(&shutdown_signo);
}

int osy_shutdown_fd(void)
{
        return wake_pipe[0];
}

void osy_shutdown_request(void)
{
        atomic_store(&shutdown_flag, 1);
        wake();
}

int osy_shutdown_wait(int timeout_ms)
{
        struct pollfd pfd = {.fd = wake_pipe[0], .events = POLLIN};

        if (osy_shutdown_requested())
                return 1;
        if (wake_pipe[0] < 0) {
                /* Not installed: plain sleep, the flag may still be set. */
                if (timeout_ms > 0)
                        usleep((useconds_t)timeout_ms * 1000);
                return osy_shutdown_requested();
        }
        poll(&pfd, 1, timeout_ms);
        return osy_shutdown_requested();
}

void osy_shutdown_reset(void)
{
        char buf[64];

        atomic_store(&shutdown_flag, 0);
        atomic_store(&shutdown_signo, 0);
        if (wake_pipe[0] >= 0)
                while (read(wake_pipe[0], buf, sizeof(buf)) > 0)
                        ;
}
