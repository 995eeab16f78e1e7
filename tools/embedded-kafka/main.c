/*
 * optsync-embedded-kafka - a Kafka cluster for demos and tests: librdkafka's
 * mock brokers with the contract's topics, and a line-based control port on
 * loopback that injects faults (broker down, RTT, request errors).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "optsync/log.h"
#include "optsync/topics.h"

#define CTL_LINE_MAX 1024 /* longer control lines are refused */
#define CTL_MAX_CLIENTS 32
#define CTL_REPLY_MAX 2048
#define CTL_MAX_ARGS 6
#define POLL_TICK_MS 200 /* bounds the reaction time to SIGTERM */

#define MAX_BROKERS 16
#define MAX_PARTITIONS 1000
#define MAX_API_KEY 999
#define MAX_ERROR_PUSH 100000
#define MAX_RTT_MS 600000

/* Cleared by SIGTERM/SIGINT; the poll loop checks it every tick. */
static volatile sig_atomic_t run = 1;

static void on_term(int sig)
{
        (void)sig;
        run = 0;
}

/* What the control commands act on. */
struct launcher {
        rd_kafka_t *rk;
        rd_kafka_mock_cluster_t *mc;
        int brokers;
        int replication;
        const char *bootstrap; /* owned by mc */
};

/* One control connection: bytes received but not yet a full line. */
struct client {
        int fd;
        size_t len;
        char buf[CTL_LINE_MAX];
};

static void usage(FILE *out)
{
        fprintf(out,
                "Usage: optsync-embedded-kafka [options]\n"
                "  --brokers N            mock brokers (default 1)\n"
                "  --partitions P         partitions per topic (default 6)\n"
                "  --prefix PREFIX        topic prefix (default optsync)\n"
                "  --bootstrap-file PATH  write the bootstrap address there\n"
                "  --control-port PORT    control port on 127.0.0.1 (default "
                "0: any free port)\n"
                "  --control-file PATH    write the control port there\n"
                "  --help                 this text\n"
                "Prints bootstrap=HOST:PORT[,...] and control=127.0.0.1:PORT "
                "on stdout,\nthen runs until SIGTERM or SIGINT. See "
                "tools/embedded-kafka/README.md.\n");
}

/* Parse a whole decimal integer within [min, max]; 0 on success. */
static int parse_long(const char *s, long min, long max, long *out)
{
        char *end;
        long v;

        if (!s || !*s)
                return -1;
        errno = 0;
        v     = strtol(s, &end, 10);
        if (errno || *end || v < min || v > max)
                return -1;
        *out = v;
        return 0;
}

/* Write @p content to @p path atomically: readers see all or nothing. */
static int write_file_atomic(const char *path, const char *content)
{
        char tmp[4096];
        size_t len = strlen(content), off = 0;
        int fd, n;

        n = snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
        if (n < 0 || (size_t)n >= sizeof(tmp))
                return -1;
        if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
                return -1;
        while (off < len) {
                ssize_t w = write(fd, content + off, len - off);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0) {
                        close(fd);
                        unlink(tmp);
                        return -1;
                }
                off += (size_t)w;
        }
        if (fsync(fd) || close(fd) || rename(tmp, path)) {
                unlink(tmp);
                return -1;
        }
        return 0;
}

static int topic_name_ok(const char *s)
{
        size_t len = strlen(s);

        if (len == 0 || len > 249)
                return 0;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') ||
                      (s[i] >= 'A' && s[i] <= 'Z') ||
                      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
                      s[i] == '_' || s[i] == '-'))
                        return 0;
        return 1;
}

/* An error code as an integer or a name ("NOT_LEADER_FOR_PARTITION",
 * "_TRANSPORT"); only codes librdkafka knows are accepted. */
static int parse_error_code(const char *s, rd_kafka_resp_err_t *out)
{
        const struct rd_kafka_err_desc *descs;
        size_t cnt;
        long v;
        int by_number = parse_long(s, -200, 1000, &v) == 0;

        rd_kafka_get_err_descs(&descs, &cnt);
        for (size_t i = 0; i < cnt; i++) {
                if (!descs[i].name)
                        continue;
                if (by_number ? descs[i].code == (rd_kafka_resp_err_t)v
                              : !strcmp(descs[i].name, s)) {
                        *out = descs[i].code;
                        return 0;
                }
        }
        return -1;
}

/* Broker ids are 1..N; -1 addresses every broker (the mock's convention).
 * Checked here because the mock accepts unknown ids silently for some
 * calls, and the operator deserves an ERR for a typo. */
static int parse_broker(const struct launcher *l, const char *s, int32_t *id)
{
        long v;

        if (parse_long(s, -1, l->brokers, &v) || v == 0)
                return -1;
        *id = (int32_t)v;
        return 0;
}

/* Split @p line in place on blanks; returns the number of words, or -1 if
 * there are more than CTL_MAX_ARGS. */
static int split_words(char *line, char **argv)
{
        int argc = 0;
        char *p  = line;

        for (;;) {
                while (*p == ' ' || *p == '\t')
                        p++;
                if (!*p)
                        return argc;
                if (argc == CTL_MAX_ARGS)
                        return -1;
                argv[argc++] = p;
                while (*p && *p != ' ' && *p != '\t')
                        p++;
                if (*p)
                        *p++ = '\0';
        }
}

static const char help_text[] =
    "OK commands: ping | bootstrap | broker-down <id> | broker-up <id> | "
    "rtt <broker_id> <ms> | request-errors <api_key> <count> <error_code> | "
    "clear-request-errors <api_key> | topic-error <topic> <error_code> | "
    "create-topic <name> <partitions> | leader <topic> <partition> "
    "<broker_id> | help | quit (broker id -1 = all brokers; error codes as "
    "integers or names like NOT_LEADER_FOR_PARTITION)";

#define REPLY(...) snprintf(reply, reply_size, __VA_ARGS__)

/*
 * Execute one control command and write the one-line answer ("OK ..." or
 * "ERR <reason>", no newline) into @p reply. @returns 1 if the client asked
 * to quit.
 */
static int control_exec(struct launcher *l, char *line, char *reply,
                        size_t reply_size)
{
        char *argv[CTL_MAX_ARGS];
        int argc = split_words(line, argv);
        rd_kafka_resp_err_t rerr, code;
        const char *cmd;
        int32_t broker;
        long a, b;

        if (argc < 0) {
                REPLY("ERR too many arguments; try help");
                return 0;
        }
        if (argc == 0) {
                REPLY("ERR empty command; try help");
                return 0;
        }
        cmd = argv[0];

#define NEED_ARGS(n, syntax)                                                   \
        do {                                                                   \
                if (argc != (n) + 1) {                                         \
                        REPLY("ERR usage: %s", syntax);                        \
                        return 0;                                              \
                }                                                              \
        } while (0)

        if (!strcmp(cmd, "ping")) {
                NEED_ARGS(0, "ping");
                REPLY("OK pong");
        } else if (!strcmp(cmd, "help")) {
                REPLY("%s", help_text);
        } else if (!strcmp(cmd, "quit")) {
                REPLY("OK bye");
                return 1;
        } else if (!strcmp(cmd, "bootstrap")) {
                NEED_ARGS(0, "bootstrap");
                REPLY("OK %s", l->bootstrap);
        } else if (!strcmp(cmd, "broker-down") || !strcmp(cmd, "broker-up")) {
                int down = !strcmp(cmd, "broker-down");
                NEED_ARGS(1, down ? "broker-down <id>" : "broker-up <id>");
                if (parse_broker(l, argv[1], &broker)) {
                        REPLY("ERR bad broker id \"%s\" (1..%d or -1)", argv[1],
                              l->brokers);
                        return 0;
                }
                rerr = down ? rd_kafka_mock_broker_set_down(l->mc, broker)
                            : rd_kafka_mock_broker_set_up(l->mc, broker);
                if (rerr)
                        REPLY("ERR %s", rd_kafka_err2str(rerr));
                else
                        REPLY("OK broker %d %s", (int)broker,
                              down ? "down" : "up");
        } else if (!strcmp(cmd, "rtt")) {
                NEED_ARGS(2, "rtt <broker_id> <ms>");
                if (parse_broker(l, argv[1], &broker) ||
                    parse_long(argv[2], 0, MAX_RTT_MS, &a)) {
                        REPLY("ERR bad broker id or rtt (1..%d or -1; "
                              "0..%d ms)",
                              l->brokers, MAX_RTT_MS);
                        return 0;
                }
                if ((rerr =
                         rd_kafka_mock_broker_set_rtt(l->mc, broker, (int)a)))
                        REPLY("ERR %s", rd_kafka_err2str(rerr));
                else
                        REPLY("OK broker %d rtt %ld ms", (int)broker, a);
        } else if (!strcmp(cmd, "request-errors")) {
                rd_kafka_resp_err_t *errs;
                NEED_ARGS(3, "request-errors <api_key> <count> <error_code>");
                if (parse_long(argv[1], 0, MAX_API_KEY, &a) ||
                    parse_long(argv[2], 1, MAX_ERROR_PUSH, &b)) {
                        REPLY("ERR bad api_key (0..%d) or count (1..%d)",
                              MAX_API_KEY, MAX_ERROR_PUSH);
                        return 0;
                }
                if (parse_error_code(argv[3], &code)) {
                        REPLY("ERR unknown error code \"%s\"", argv[3]);
                        return 0;
                }
                if (!(errs = calloc((size_t)b, sizeof(*errs)))) {
                        REPLY("ERR out of memory");
                        return 0;
                }
                for (long i = 0; i < b; i++)
                        errs[i] = code;
                rd_kafka_mock_push_request_errors_array(l->mc, (int16_t)a,
                                                        (size_t)b, errs);
                free(errs);
                REPLY("OK pushed %ld x %s for api_key %ld", b,
                      rd_kafka_err2name(code), a);
        } else if (!strcmp(cmd, "clear-request-errors")) {
                NEED_ARGS(1, "clear-request-errors <api_key>");
                if (parse_long(argv[1], 0, MAX_API_KEY, &a)) {
                        REPLY("ERR bad api_key (0..%d)", MAX_API_KEY);
                        return 0;
                }
                rd_kafka_mock_clear_request_errors(l->mc, (int16_t)a);
                REPLY("OK cleared api_key %ld", a);
        } else if (!strcmp(cmd, "topic-error")) {
                NEED_ARGS(2, "topic-error <topic> <error_code>");
                if (!topic_name_ok(argv[1])) {
                        REPLY("ERR bad topic name");
                        return 0;
                }
                if (parse_error_code(argv[2], &code)) {
                        REPLY("ERR unknown error code \"%s\"", argv[2]);
                        return 0;
                }
                rd_kafka_mock_topic_set_error(l->mc, argv[1], code);
                REPLY("OK topic %s error %s", argv[1], rd_kafka_err2name(code));
        } else if (!strcmp(cmd, "create-topic")) {
                NEED_ARGS(2, "create-topic <name> <partitions>");
                if (!topic_name_ok(argv[1]) ||
                    parse_long(argv[2], 1, MAX_PARTITIONS, &a)) {
                        REPLY("ERR bad topic name or partitions (1..%d)",
                              MAX_PARTITIONS);
                        return 0;
                }
                if ((rerr = rd_kafka_mock_topic_create(l->mc, argv[1], (int)a,
                                                       l->replication)))
                        REPLY("ERR %s", rd_kafka_err2str(rerr));
                else
                        REPLY("OK topic %s partitions %ld", argv[1], a);
        } else if (!strcmp(cmd, "leader")) {
                NEED_ARGS(3, "leader <topic> <partition> <broker_id>");
                if (!topic_name_ok(argv[1]) ||
                    parse_long(argv[2], 0, MAX_PARTITIONS - 1, &a) ||
                    parse_broker(l, argv[3], &broker)) {
                        REPLY("ERR bad topic, partition or broker id");
                        return 0;
                }
                if ((rerr = rd_kafka_mock_partition_set_leader(
                         l->mc, argv[1], (int32_t)a, broker)))
                        REPLY("ERR %s", rd_kafka_err2str(rerr));
                else
                        REPLY("OK %s[%ld] leader %d", argv[1], a, (int)broker);
        } else {
                char shown[65];
                size_t i;
                /* Echo a printable excerpt only: the input may be junk. */
                for (i = 0; cmd[i] && i < sizeof(shown) - 1; i++)
                        shown[i] =
                            (cmd[i] >= 0x20 && cmd[i] < 0x7f) ? cmd[i] : '?';
                shown[i] = '\0';
                REPLY("ERR unknown command \"%s\"; try help", shown);
        }
#undef NEED_ARGS
        return 0;
}

/* Replies are short and the client reads them: a blocking send is fine,
 * and MSG_NOSIGNAL keeps a vanished client from killing us with SIGPIPE. */
static void send_all(int fd, const char *buf, size_t len)
{
        while (len > 0) {
                ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return; /* the client went away; reading notices */
                buf += n;
                len -= (size_t)n;
        }
}

static void client_close(struct client *c)
{
        if (c->fd >= 0)
                close(c->fd);
        c->fd  = -1;
        c->len = 0;
}

/* Read what is available and answer each complete line. */
static void client_serve(struct launcher *l, struct client *c)
{
        char reply[CTL_REPLY_MAX];
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);

        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return;
        if (n <= 0) {
                client_close(c);
                return;
        }
        c->len += (size_t)n;
        for (;;) {
                char *nl = memchr(c->buf, '\n', c->len);
                size_t line_len, reply_len;
                int quit;

                if (!nl) {
                        if (c->len == sizeof(c->buf)) {
                                snprintf(reply, sizeof(reply),
                                         "ERR line longer than %d bytes\n",
                                         CTL_LINE_MAX - 1);
                                send_all(c->fd, reply, strlen(reply));
                                client_close(c);
                        }
                        return;
                }
                *nl      = '\0';
                line_len = (size_t)(nl - c->buf);
                if (line_len > 0 && c->buf[line_len - 1] == '\r')
                        c->buf[line_len - 1] = '\0';
                /* NUL bytes inside the line end it early: harmless. */
                quit = control_exec(l, c->buf, reply, sizeof(reply) - 1);
                osy_log_debug("control: %s", reply);
                /* control_exec left room for the newline. */
                reply_len          = strlen(reply);
                reply[reply_len++] = '\n';
                send_all(c->fd, reply, reply_len);
                memmove(c->buf, nl + 1, c->len - line_len - 1);
                c->len -= line_len + 1;
                if (quit) {
                        client_close(c);
                        return;
                }
        }
}

/* Control listener on 127.0.0.1 only: it can take brokers down, so it
 * must never be reachable from outside the machine. @returns the fd. */
static int listen_loopback(int port, int *bound_port)
{
        struct sockaddr_in sa;
        socklen_t sl = sizeof(sa);
        int one      = 1;
        int fd       = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        memset(&sa, 0, sizeof(sa));
        sa.sin_family      = AF_INET;
        sa.sin_port        = htons((uint16_t)port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 16) ||
            getsockname(fd, (struct sockaddr *)&sa, &sl)) {
                close(fd);
                return -1;
        }
        *bound_port = ntohs(sa.sin_port);
        return fd;
}

/* librdkafka's own lines (mock cluster included) as JSON, warnings up. */
static void rk_log_cb(const rd_kafka_t *rk, int level, const char *fac,
                      const char *buf)
{
        (void)rk;
        if (level <= 4)
                osy_log_warn("librdkafka %s: %s", fac, buf);
}

/*
 * The control loop: a single thread polls the listener and every client;
 * commands run one at a time (the mock's calls are synchronous and quick),
 * so clients are served in turn without locking. Returns when run == 0.
 */
static void serve(struct launcher *l, int lfd)
{
        struct client clients[CTL_MAX_CLIENTS];
        struct pollfd pfd[CTL_MAX_CLIENTS + 1];

        for (int i = 0; i < CTL_MAX_CLIENTS; i++)
                clients[i].fd = -1;
        while (run) {
                int n = 0, map[CTL_MAX_CLIENTS + 1];

                pfd[n].fd     = lfd;
                pfd[n].events = POLLIN;
                map[n++]      = -1;
                for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
                        if (clients[i].fd < 0)
                                continue;
                        pfd[n].fd     = clients[i].fd;
                        pfd[n].events = POLLIN;
                        map[n++]      = i;
                }
                if (poll(pfd, (nfds_t)n, POLL_TICK_MS) <= 0)
                        continue; /* timeout, or EINTR from SIGTERM */
                if (pfd[0].revents & POLLIN) {
                        int fd   = accept(lfd, NULL, NULL);
                        int slot = -1;
                        for (int i = 0; fd >= 0 && i < CTL_MAX_CLIENTS; i++)
                                if (clients[i].fd < 0) {
                                        slot = i;
                                        break;
                                }
                        if (fd >= 0 && slot < 0) {
                                static const char busy[] =
                                    "ERR too many control clients\n";
                                send_all(fd, busy, sizeof(busy) - 1);
                                close(fd);
                        } else if (fd >= 0) {
                                clients[slot].fd  = fd;
                                clients[slot].len = 0;
                        }
                }
                for (int k = 1; k < n; k++)
                        if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
                                client_serve(l, &clients[map[k]]);
        }
        for (int i = 0; i < CTL_MAX_CLIENTS; i++)
                client_close(&clients[i]);
}

int main(int argc, char **argv)
{
        const char *prefix         = OSY_TOPIC_DEFAULT_PREFIX;
        const char *bootstrap_file = NULL, *control_file = NULL;
        long brokers = 1, partitions = 6, control_port = 0;
        struct launcher l = {0};
        struct osy_topic_names names;
        struct sigaction sa;
        char errstr[512], buf[4096];
        rd_kafka_conf_t *conf;
        int lfd = -1, port = 0, rc = 1;

        osy_log_init("embedded-kafka", OSY_LOG_INFO, stderr);
        for (int i = 1; i < argc; i++) {
                const char *arg = argv[i];
                const char *val = i + 1 < argc ? argv[i + 1] : NULL;
                if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
                        usage(stdout);
                        return 0;
                }
                if (!val) {
                        fprintf(stderr,
                                "%s: unknown option or missing "
                                "value\n",
                                arg);
                        usage(stderr);
                        return 2;
                }
                i++;
                if (!strcmp(arg, "--brokers")) {
                        if (parse_long(val, 1, MAX_BROKERS, &brokers))
                                goto bad_value;
                } else if (!strcmp(arg, "--partitions")) {
                        if (parse_long(val, 1, MAX_PARTITIONS, &partitions))
                                goto bad_value;
                } else if (!strcmp(arg, "--control-port")) {
                        if (parse_long(val, 0, 65535, &control_port))
                                goto bad_value;
                } else if (!strcmp(arg, "--prefix")) {
                        prefix = val;
                } else if (!strcmp(arg, "--bootstrap-file")) {
                        bootstrap_file = val;
                } else if (!strcmp(arg, "--control-file")) {
                        control_file = val;
                } else {
                        fprintf(stderr, "%s: unknown option\n", arg);
                        usage(stderr);
                        return 2;
                }
                continue;
        bad_value:
                fprintf(stderr, "%s: bad value \"%s\"\n", arg, val);
                return 2;
        }
        if (osy_topic_names_init(&names, prefix, errstr, sizeof(errstr))) {
                fprintf(stderr, "--prefix: %s\n", errstr);
                return 2;
        }

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_term; /* no SA_RESTART: poll() wakes up */
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);

        /* The mock cluster needs an rd_kafka_t for its bookkeeping only;
         * librdkafka blocks signals in the threads it starts. */
        conf = rd_kafka_conf_new();
        rd_kafka_conf_set_log_cb(conf, rk_log_cb);
        if (!(l.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr,
                                  sizeof(errstr)))) {
                rd_kafka_conf_destroy(conf);
                osy_log_error("rd_kafka_new: %s", errstr);
                goto out;
        }
        l.brokers     = (int)brokers;
        l.replication = brokers < 3 ? (int)brokers : 3;
        if (!(l.mc = rd_kafka_mock_cluster_new(l.rk, l.brokers))) {
                osy_log_error("could not start the mock cluster");
                goto out;
        }
        l.bootstrap = rd_kafka_mock_cluster_bootstraps(l.mc);
        /* The mock does not implement CreateTopics: create them here. */
        for (int t = 0; t < OSY_TOPIC__CNT; t++) {
                rd_kafka_resp_err_t rerr = rd_kafka_mock_topic_create(
                    l.mc, names.name[t], (int)partitions, l.replication);
                if (rerr) {
                        osy_log_error("create topic %s: %s", names.name[t],
                                      rd_kafka_err2str(rerr));
                        goto out;
                }
        }
        if ((lfd = listen_loopback((int)control_port, &port)) < 0) {
                osy_log_error("control port %ld: %s", control_port,
                              strerror(errno));
                goto out;
        }
        /* Files last: their presence means "ready". */
        snprintf(buf, sizeof(buf), "%d\n", port);
        if (control_file && write_file_atomic(control_file, buf)) {
                osy_log_error("write %s: %s", control_file, strerror(errno));
                goto out;
        }
        snprintf(buf, sizeof(buf), "%s\n", l.bootstrap);
        if (bootstrap_file && write_file_atomic(bootstrap_file, buf)) {
                osy_log_error("write %s: %s", bootstrap_file, strerror(errno));
                goto out;
        }
        printf("bootstrap=%s\ncontrol=127.0.0.1:%d\n", l.bootstrap, port);
        fflush(stdout);
        osy_log_info("embedded kafka ready: %d broker(s), %ld partition(s), "
                     "prefix %s, bootstrap %s, control 127.0.0.1:%d",
                     l.brokers, partitions, prefix, l.bootstrap, port);

        serve(&l, lfd);
        osy_log_info("embedded kafka stopping");
        rc = 0;
out:
        if (lfd >= 0)
                close(lfd);
        if (l.mc)
                rd_kafka_mock_cluster_destroy(l.mc);
        if (l.rk)
                rd_kafka_destroy(l.rk);
        return rc;
}
