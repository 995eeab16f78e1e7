/*
 * test_redis.c - the Redis helpers without a Redis: option checks, a
 * refused and a silent peer, reply classification, script SHA1s.
 */
#include "osy_test.h"
#include "optsync/redis.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A loopback socket bound to a free port; listening if @p do_listen.
 * Bound but not listening, the port refuses connections and nobody else
 * can take it meanwhile. */
static int loopback_socket(int do_listen, int *port)
{
        struct sockaddr_in sa;
        socklen_t len = sizeof(sa);
        int fd        = socket(AF_INET, SOCK_STREAM, 0);

        assert_true(fd >= 0);
        memset(&sa, 0, sizeof(sa));
        sa.sin_family      = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        if (do_listen)
                assert_int_equal(listen(fd, 4), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
        *port = ntohs(sa.sin_port);
        return fd;
}

/* Options are checked before any I/O, each with a reason naming the field. */
static void bad_options_are_invalid(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        struct osy_redis_opts ok = {.host = "127.0.0.1", .port = 6379};
        struct osy_redis_opts o;
        osy_redis_t *r = (osy_redis_t *)1;

        (void)state;
        assert_int_equal(osy_redis_connect(&r, NULL, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_null(r);
        o      = ok;
        o.host = NULL;
        assert_int_equal(osy_redis_connect(&r, &o, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(err, "host"));
        o      = ok;
        o.host = "";
        assert_int_equal(osy_redis_connect(&r, &o, err, sizeof(err)),
                         OSY_ERR_INVALID);
        o      = ok;
        o.port = 0;
        assert_int_equal(osy_redis_connect(&r, &o, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(err, "port 0"));
        o.port = 65536;
        assert_int_equal(osy_redis_connect(&r, &o, err, sizeof(err)),
                         OSY_ERR_INVALID);
        o    = ok;
        o.db = -1;
        assert_int_equal(osy_redis_connect(&r, &o, err, sizeof(err)),
                         OSY_ERR_INVALID);
        o                    = ok;
        o.command_timeout_ms = -1;
        assert_int_equal(osy_redis_connect(&r, &o, err, sizeof(err)),
                         OSY_ERR_INVALID);
        o                    = ok;
        o.connect_timeout_ms = -5;
        assert_int_equal(osy_redis_connect(&r, &o, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_int_equal(osy_redis_connect(NULL, &ok, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_null(r);
}

/* Redis down at startup: retryable, fast, says where it tried, and
 * never shows the password. */
static void refused_port_is_transient_and_quick(void **state)
{
        char err[OSY_ERRSTR_SIZE], want[64];
        struct osy_redis_opts o = {.host     = "127.0.0.1",
                                   .password = "hunter2-not-logged"};
        osy_redis_t *r          = (osy_redis_t *)1;
        int fd                  = loopback_socket(0, &o.port);
        int64_t t0              = osy_test_now_ms();

        (void)state;
        assert_int_equal(osy_redis_connect(&r, &o, err, sizeof(err)),
                         OSY_ERR_TRANSIENT);
        assert_true(osy_test_now_ms() - t0 < 1000);
        assert_null(r);
        snprintf(want, sizeof(want), "127.0.0.1:%d", o.port);
        assert_non_null(strstr(err, want));
        assert_null(strstr(err, "hunter2"));
        close(fd);
}

/* A peer that accepts but never answers (a hung server) must not hang
 * the worker: the command timeout bounds the handshake too. */
static void silent_server_times_out(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        struct osy_redis_opts o = {.host               = "127.0.0.1",
                                   .command_timeout_ms = 150};
        osy_redis_t *r          = NULL;
        int fd                  = loopback_socket(1, &o.port);
        int64_t t0              = osy_test_now_ms(), took;

        (void)state;
        /* The kernel accepts the connection; nobody ever answers the PING
         * that checks the server: the command timeout must fire. */
        assert_int_equal(osy_redis_connect(&r, &o, err, sizeof(err)),
                         OSY_ERR_TRANSIENT);
        took = osy_test_now_ms() - t0;
        assert_true(took >= 100 && took < 2000);
        assert_non_null(strstr(err, "PING: timed out after 150 ms"));
        assert_null(r);
        close(fd);
}

/* Parse one RESP value the way hiredis would receive it. */
static redisReply *parse(const char *resp)
{
        redisReader *rd = redisReaderCreate();
        void *reply     = NULL;

        assert_non_null(rd);
        assert_int_equal(redisReaderFeed(rd, resp, strlen(resp)), REDIS_OK);
        assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
        assert_non_null(reply);
        redisReaderFree(rd);
        return reply;
}

static osy_err_t classify(const char *resp, char *err, size_t size)
{
        redisReply *reply = parse(resp);
        osy_err_t e       = osy_redis_reply_err(reply, err, size);

        freeReplyObject(reply);
        return e;
}

/* Each Redis error class maps to the retry decision the callers need. */
static void error_replies_are_classified(void **state)
{
        char err[OSY_ERRSTR_SIZE];

        (void)state;
        assert_int_equal(classify("-NOSCRIPT No matching script. Please use "
                                  "EVAL.\r\n",
                                  err, sizeof(err)),
                         OSY_ERR_NOT_FOUND);
        assert_string_equal(err, "NOSCRIPT No matching script. Please use "
                                 "EVAL.");
        assert_int_equal(
            classify("-NOAUTH Authentication required.\r\n", err, sizeof(err)),
            OSY_ERR_AUTH);
        assert_int_equal(classify("-WRONGPASS invalid username-password "
                                  "pair\r\n",
                                  err, sizeof(err)),
                         OSY_ERR_AUTH);
        assert_int_equal(classify("-NOPERM no\r\n", err, sizeof(err)),
                         OSY_ERR_AUTH);
        /* A restart or a failover in progress: try again later. */
        assert_int_equal(classify("-LOADING Redis is loading the dataset\r\n",
                                  err, sizeof(err)),
                         OSY_ERR_TRANSIENT);
        assert_int_equal(classify("-READONLY You can't write against a read "
                                  "only replica.\r\n",
                                  err, sizeof(err)),
                         OSY_ERR_TRANSIENT);
        assert_int_equal(classify("-BUSY Redis is busy running a script.\r\n",
                                  err, sizeof(err)),
                         OSY_ERR_TRANSIENT);
        assert_int_equal(
            classify("-OOM command not allowed\r\n", err, sizeof(err)),
            OSY_ERR_TRANSIENT);
        assert_int_equal(
            classify("-MOVED 3999 127.0.0.1:6381\r\n", err, sizeof(err)),
            OSY_ERR_PERMANENT);
        assert_int_equal(
            classify("-ERR unknown command 'FOO'\r\n", err, sizeof(err)),
            OSY_ERR_INVALID);
        assert_int_equal(classify("-WRONGTYPE Operation against a key\r\n", err,
                                  sizeof(err)),
                         OSY_ERR_INVALID);
        /* Whole words only. */
        assert_int_equal(classify("-NOSCRIPTS x\r\n", err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_int_equal(classify("-NOSCRIPT\r\n", err, sizeof(err)),
                         OSY_ERR_NOT_FOUND);
}

/* Only a top-level error reply is an error. */
static void other_replies_are_ok(void **state)
{
        char err[OSY_ERRSTR_SIZE] = "untouched";

        (void)state;
        assert_int_equal(classify("+OK\r\n", err, sizeof(err)), OSY_OK);
        assert_int_equal(classify(":42\r\n", err, sizeof(err)), OSY_OK);
        assert_int_equal(classify("$-1\r\n", err, sizeof(err)), OSY_OK);
        /* An array holding an error is not itself an error. */
        assert_int_equal(classify("*1\r\n-ERR x\r\n", err, sizeof(err)),
                         OSY_OK);
        assert_int_equal(osy_redis_reply_err(NULL, err, sizeof(err)), OSY_OK);
        assert_string_equal(err, "untouched");
}

/* The SHA1 is Redis's own name for the script, computed offline. */
static void script_sha1_is_computed_locally(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        osy_redis_script_t *s = NULL;

        (void)state;
        /* The SHA1 Redis itself gives "return 1" (printf 'return 1' |
         * sha1sum). */
        assert_int_equal(osy_redis_script_new(&s, "return 1", err, sizeof(err)),
                         OSY_OK);
        assert_string_equal(osy_redis_script_sha(s),
                            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
        osy_redis_script_destroy(s);
        assert_int_equal(osy_redis_script_new(&s, "", err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_null(s);
        assert_int_equal(osy_redis_script_new(&s, NULL, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_int_equal(
            osy_redis_script_new(NULL, "return 1", err, sizeof(err)),
            OSY_ERR_INVALID);
}

/* Misuse with NULL handles is an error, never a crash. */
static void null_handles_are_rejected(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        const char *argv[]        = {"PING"};
        const char *const keys[]  = {"k"};
        redisReply *reply         = (redisReply *)1;
        redisReply *replies[2]    = {(redisReply *)1, (redisReply *)1};
        struct osy_redis_stats st = {.replies = 9};

        (void)state;
        assert_int_equal(osy_redis_command_argv(NULL, 1, argv, NULL, &reply,
                                                err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_null(reply);
        assert_int_equal(osy_redis_pipeline_append_argv(NULL, 1, argv, NULL,
                                                        err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_int_equal(
            osy_redis_pipeline_exec(NULL, replies, 2, err, sizeof(err)),
            OSY_ERR_INVALID);
        reply = (redisReply *)1;
        assert_int_equal(osy_redis_eval(NULL, NULL, 1, keys, 0, NULL, &reply,
                                        err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_null(reply);
        assert_int_equal(osy_redis_script_load(NULL, NULL, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_int_equal(osy_redis_pipeline_pending(NULL), 0);
        assert_false(osy_redis_is_connected(NULL));
        osy_redis_get_stats(NULL, &st);
        assert_int_equal(st.replies, 0);
        /* NULL-safe destroyers. */
        osy_redis_destroy(NULL);
        osy_redis_script_destroy(NULL);
        osy_redis_replies_free(NULL, 2);
        assert_string_equal(osy_redis_script_sha(NULL), "");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(bad_options_are_invalid),
    cmocka_unit_test(refused_port_is_transient_and_quick),
    cmocka_unit_test(silent_server_times_out),
    cmocka_unit_test(error_replies_are_classified),
    cmocka_unit_test(other_replies_are_ok),
    cmocka_unit_test(script_sha1_is_computed_locally),
    cmocka_unit_test(null_handles_are_rejected),
};
OSY_TEST_MAIN(tests, NULL, NULL)
