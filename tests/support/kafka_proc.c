/*
 * kafka_proc.c - runs tools/embedded-kafka/optsync-embedded-kafka for a
 * test: a private directory for its files, readiness by file, control
 * commands over a short-lived loopback connection.
 */
#include "osy_test_kafka.h"
#include "osy_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define LAUNCHER_PATH                                                          \
        OSY_BINARY_DIR "/tools/embedded-kafka/optsync-embedded-kafka"
#define READY_TIMEOUT_MS 15000
#define STOP_GRACE_MS 5000
#define CONTROL_TIMEOUT_S 10

const char *const osy_test_kafka_fast_props[] = {
    "session.timeout.ms",
    "3000",
    "heartbeat.interval.ms",
    "300",
    "reconnect.backoff.ms",
    "50",
    "reconnect.backoff.max.ms",
    "300",
    "topic.metadata.refresh.interval.ms",
    "1000",
    "log_level",
    "3",
    NULL};

int osy_test_kafka_start_prefix(struct osy_test_kafka *k, int brokers,
                                int partitions, const char *prefix)
{
        char bfile[600], cfile[600], log[600], nb[16], np[16];
        char *bootstrap = NULL, *port = NULL;
        int rc = -1;

        memset(k, 0, sizeof(*k));
        if (!(k->dir = osy_test_mkdtemp("kafka")))
                return -1;
        snprintf(bfile, sizeof(bfile), "%s/bootstrap", k->dir);
        snprintf(cfile, sizeof(cfile), "%s/control", k->dir);
        snprintf(log, sizeof(log), "%s/launcher.log", k->dir);
        snprintf(nb, sizeof(nb), "%d", brokers);
        snprintf(np, sizeof(np), "%d", partitions);
        char *const argv[] = {LAUNCHER_PATH,
                              "--brokers",
                              nb,
                              "--partitions",
                              np,
                              "--bootstrap-file",
                              bfile,
                              "--control-file",
                              cfile,
                              "--prefix",
                              (char *)(prefix ? prefix : "optsync"),
                              NULL};
        k->pid             = osy_test_spawn(argv, log);
        if (k->pid <= 0)
                goto out;
        /* The launcher writes the control file first, bootstrap last. */
        if (osy_test_wait_file(bfile, READY_TIMEOUT_MS) ||
            osy_test_wait_file(cfile, 1000))
                goto out;
        bootstrap = osy_test_read_file(bfile);
        port      = osy_test_read_file(cfile);
        if (!bootstrap || !port || !*bootstrap ||
            strlen(bootstrap) >= sizeof(k->bootstrap))
                goto out;
        memcpy(k->bootstrap, bootstrap, strlen(bootstrap) + 1);
        k->control_port = (int)strtol(port, NULL, 10);
        if (k->control_port <= 0)
                goto out;
        rc = 0;
out:
        free(bootstrap);
        free(port);
        if (rc) {
                fprintf(stderr, "embedded kafka did not start (log: %s)\n",
                        log);
                osy_test_kafka_stop(k);
        }
        return rc;
}

int osy_test_kafka_start(struct osy_test_kafka *k, int brokers, int partitions)
{
        return osy_test_kafka_start_prefix(k, brokers, partitions, NULL);
}

int osy_test_kafka_control(struct osy_test_kafka *k, const char *cmd,
                           char *reply, size_t reply_size)
{
        struct sockaddr_in sa;
        struct timeval tv = {CONTROL_TIMEOUT_S, 0};
        char line[2048];
        size_t len = 0;
        int fd, rc = -1;

        if (reply && reply_size)
                reply[0] = '\0';
        if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
                return -1;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        memset(&sa, 0, sizeof(sa));
        sa.sin_family      = AF_INET;
        sa.sin_port        = htons((uint16_t)k->control_port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
                goto out;
        snprintf(line, sizeof(line), "%s\n", cmd);
        if (send(fd, line, strlen(line), MSG_NOSIGNAL) != (ssize_t)strlen(line))
                goto out;
        /* One reply line per command. */
        while (len < sizeof(line) - 1) {
                ssize_t n = recv(fd, line + len, 1, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0 || line[len] == '\n')
                        break;
                len++;
        }
        line[len] = '\0';
        if (reply && reply_size)
                snprintf(reply, reply_size, "%s", line);
        rc = strncmp(line, "OK", 2) ? -1 : 0;
out:
        close(fd);
        return rc;
}

int osy_test_kafka_stop(struct osy_test_kafka *k)
{
        int status = -1;

        if (k->pid > 0)
                status = osy_test_stop(k->pid, STOP_GRACE_MS);
        k->pid = 0;
        if (k->dir) {
                osy_test_rmtree(k->dir);
                free(k->dir);
                k->dir = NULL;
        }
        k->control_port = 0;
        k->bootstrap[0] = '\0';
        return status;
}
