/*
 * test_redis_live.c - the Redis helpers against a real redis-server:
 * round trips, big pipelines, reconnects (restart, killed connection,
 * timeout), NOSCRIPT recovery, AUTH and SELECT.
 */
#include "osy_test.h"
#include "redis_restart.h"
#include "optsync/redis.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct osy_test_redis srv;

static int group_setup(void **state)
{
        (void)state;
        return osy_test_redis_start(&srv);
}

static int group_teardown(void **state)
{
        (void)state;
        osy_test_redis_stop(&srv);
        return 0;
}

static osy_redis_t *open_handle(const char *password, int db, int timeout_ms)
{
        char err[OSY_ERRSTR_SIZE];
        struct osy_redis_opts o = {.host               = "127.0.0.1",
                                   .port               = srv.port,
                                   .password           = password,
                                   .db                 = db,
                                   .command_timeout_ms = timeout_ms};
        osy_redis_t *r          = NULL;
        osy_err_t e             = osy_redis_connect(&r, &o, err, sizeof(err));

        if (e)
                fail_msg("connect: %s: %s", osy_err2str(e), err);
        return r;
}

/* Send the NULL-terminated string arguments; the reply (if @p reply) is
 * the caller's, else freed here. Error text goes to @p err. */
static osy_err_t cmdv(osy_redis_t *r, redisReply **reply, char *err,
                      size_t size, const char *first, ...)
{
        const char *argv[16];
        redisReply *rep = NULL;
        int argc        = 0;
        osy_err_t e;
        va_list ap;

        va_start(ap, first);
        for (const char *a = first; a && argc < 16;
             a             = va_arg(ap, const char *))
                argv[argc++] = a;
        va_end(ap);
        e = osy_redis_command_argv(r, argc, argv, NULL, &rep, err, size);
        if (reply)
                *reply = rep;
        else if (rep)
                freeReplyObject(rep);
        return e;
}

#define CMD(r, reply, ...)                                                     \
        cmdv((r), (reply), err, sizeof(err), __VA_ARGS__, (const char *)NULL)

/* Every case starts from an empty server without a password. */
static int clean(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        osy_redis_t *r = open_handle(NULL, 0, 0);

        (void)state;
        assert_int_equal(CMD(r, NULL, "FLUSHALL"), OSY_OK);
        assert_int_equal(CMD(r, NULL, "SCRIPT", "FLUSH"), OSY_OK);
        osy_redis_destroy(r);
        return 0;
}

/* Plain commands: values, binary arguments, and error replies that are
 * described but leave the connection usable. */
static void command_round_trip(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        osy_redis_t *r      = open_handle(NULL, 0, 0);
        const char *argv[]  = {"SET", "bin", "a\0b"};
        const size_t lens[] = {3, 3, 3};
        redisReply *reply   = NULL;

        (void)state;
        assert_int_equal(CMD(r, NULL, "SET", "k", "v"), OSY_OK);
        assert_int_equal(CMD(r, &reply, "GET", "k"), OSY_OK);
        assert_int_equal(reply->type, REDIS_REPLY_STRING);
        assert_string_equal(reply->str, "v");
        freeReplyObject(reply);
        /* Binary-safe with explicit lengths. */
        assert_int_equal(
            osy_redis_command_argv(r, 3, argv, lens, &reply, err, sizeof(err)),
            OSY_OK);
        freeReplyObject(reply);
        assert_int_equal(CMD(r, &reply, "STRLEN", "bin"), OSY_OK);
        assert_int_equal(reply->integer, 3);
        freeReplyObject(reply);
        /* Error replies are classified, described and never handed out. */
        assert_int_equal(CMD(r, &reply, "INCR", "k"), OSY_ERR_INVALID);
        assert_null(reply);
        assert_non_null(strstr(err, "not an integer"));
        assert_non_null(strstr(err, "INCR"));
        assert_int_equal(CMD(r, &reply, "NOSUCHCOMMAND"), OSY_ERR_INVALID);
        assert_null(reply);
        /* The connection survives error replies. */
        assert_int_equal(CMD(r, NULL, "PING"), OSY_OK);
        struct osy_redis_stats st;
        osy_redis_get_stats(r, &st);
        assert_int_equal(st.connects, 1);
        assert_int_equal(st.disconnects, 0);
        osy_redis_destroy(r);
}

/* 1000 commands queued without I/O, sent and answered in one exec,
 * replies in order. */
static void pipeline_of_1000_in_one_exec(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        osy_redis_t *r     = open_handle(NULL, 0, 0);
        const char *argv[] = {"INCR", "ctr"};
        redisReply **rep   = calloc(1000, sizeof(*rep));
        struct osy_redis_stats before, after;

        (void)state;
        assert_non_null(rep);
        osy_redis_get_stats(r, &before);
        for (int i = 0; i < 1000; i++)
                assert_int_equal(osy_redis_pipeline_append_argv(
                                     r, 2, argv, NULL, err, sizeof(err)),
                                 OSY_OK);
        assert_int_equal(osy_redis_pipeline_pending(r), 1000);
        /* Nothing went out yet: appends do no I/O. */
        osy_redis_get_stats(r, &after);
        assert_int_equal(after.replies, before.replies);
        assert_int_equal(
            osy_redis_pipeline_exec(r, rep, 1000, err, sizeof(err)), OSY_OK);
        for (int i = 0; i < 1000; i++) {
                assert_int_equal(rep[i]->type, REDIS_REPLY_INTEGER);
                assert_int_equal(rep[i]->integer, i + 1); /* in order */
        }
        osy_redis_replies_free(rep, 1000);
        assert_null(rep[999]);
        assert_int_equal(osy_redis_pipeline_pending(r), 0);
        osy_redis_get_stats(r, &after);
        assert_int_equal(after.replies - before.replies, 1000);
        free(rep);
        osy_redis_destroy(r);
}

/* osy_redis_pipeline_send() puts the commands on the wire at once: they
 * run before exec, which then only reads their replies; a connection
 * that dies in between makes exec TRANSIENT and the next call
 * reconnects. */
static void pipeline_sent_early_runs_before_exec(void **state)
{
        char err[OSY_ERRSTR_SIZE], id[32];
        osy_redis_t *admin = open_handle(NULL, 0, 0);
        osy_redis_t *r     = open_handle(NULL, 0, 0);
        const char *set[]  = {"SET", "early", "yes"};
        const char *get[]  = {"GET", "early"};
        redisReply *rep[2] = {NULL, NULL}, *reply = NULL;

        (void)state;
        assert_int_equal(
            osy_redis_pipeline_append_argv(r, 3, set, NULL, err, sizeof(err)),
            OSY_OK);
        assert_int_equal(
            osy_redis_pipeline_append_argv(r, 2, get, NULL, err, sizeof(err)),
            OSY_OK);
        assert_int_equal(osy_redis_pipeline_send(r, err, sizeof(err)), OSY_OK);
        assert_int_equal(osy_redis_pipeline_pending(r), 2);
        /* Another connection sees the SET although nothing was read. */
        for (int i = 0; i < 200; i++) {
                assert_int_equal(CMD(admin, &reply, "GET", "early"), OSY_OK);
                if (reply->type == REDIS_REPLY_STRING)
                        break;
                freeReplyObject(reply);
                reply = NULL;
                osy_test_sleep_ms(5);
        }
        assert_non_null(reply);
        assert_int_equal(reply->type, REDIS_REPLY_STRING);
        freeReplyObject(reply);
        assert_int_equal(osy_redis_pipeline_exec(r, rep, 2, err, sizeof(err)),
                         OSY_OK);
        assert_int_equal(rep[0]->type, REDIS_REPLY_STATUS);
        assert_string_equal(rep[1]->str, "yes");
        osy_redis_replies_free(rep, 2);

        /* The connection is killed under a queued command: the send may
         * still be taken by the kernel, but exec reports the loss as
         * TRANSIENT (never a reply), and the next command reconnects. */
        assert_int_equal(CMD(r, &reply, "CLIENT", "ID"), OSY_OK);
        snprintf(id, sizeof(id), "%lld", reply->integer);
        freeReplyObject(reply);
        assert_int_equal(
            osy_redis_pipeline_append_argv(r, 2, get, NULL, err, sizeof(err)),
            OSY_OK);
        assert_int_equal(CMD(admin, NULL, "CLIENT", "KILL", "ID", id), OSY_OK);
        osy_test_sleep_ms(50);
        {
                osy_err_t e = osy_redis_pipeline_send(r, err, sizeof(err));
                assert_true(e == OSY_OK || e == OSY_ERR_TRANSIENT);
        }
        assert_int_equal(osy_redis_pipeline_exec(r, rep, 1, err, sizeof(err)),
                         OSY_ERR_TRANSIENT);
        assert_null(rep[0]);
        assert_int_equal(CMD(r, &reply, "GET", "early"), OSY_OK);
        assert_string_equal(reply->str, "yes");
        freeReplyObject(reply);
        /* Sending with nothing queued is a no-op. */
        assert_int_equal(osy_redis_pipeline_send(r, err, sizeof(err)), OSY_OK);
        assert_int_equal(osy_redis_pipeline_pending(r), 0);
        osy_redis_destroy(r);
        osy_redis_destroy(admin);
}

/* Two sends in flight on one connection: each recv reads the oldest
 * replies and leaves the rest queued; asking for more than is queued is
 * refused without reading anything. */
static void pipeline_recv_takes_the_oldest_replies(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        osy_redis_t *r       = open_handle(NULL, 0, 0);
        const char *incr[]   = {"INCR", "n"};
        const char *echo_a[] = {"ECHO", "a"};
        redisReply *rep[2]   = {NULL, NULL};

        (void)state;
        assert_int_equal(
            osy_redis_pipeline_append_argv(r, 2, incr, NULL, err, sizeof(err)),
            OSY_OK);
        assert_int_equal(
            osy_redis_pipeline_append_argv(r, 2, incr, NULL, err, sizeof(err)),
            OSY_OK);
        assert_int_equal(osy_redis_pipeline_send(r, err, sizeof(err)), OSY_OK);
        assert_int_equal(osy_redis_pipeline_append_argv(r, 2, echo_a, NULL, err,
                                                        sizeof(err)),
                         OSY_OK);
        assert_int_equal(osy_redis_pipeline_send(r, err, sizeof(err)), OSY_OK);
        assert_int_equal(osy_redis_pipeline_pending(r), 3);
        assert_int_equal(osy_redis_pipeline_recv(r, rep, 2, err, sizeof(err)),
                         OSY_OK);
        assert_int_equal(rep[0]->integer, 1);
        assert_int_equal(rep[1]->integer, 2);
        osy_redis_replies_free(rep, 2);
        assert_int_equal(osy_redis_pipeline_pending(r), 1);
        assert_int_equal(osy_redis_pipeline_recv(r, rep, 2, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_null(rep[0]);
        assert_int_equal(osy_redis_pipeline_recv(r, rep, 1, err, sizeof(err)),
                         OSY_OK);
        assert_string_equal(rep[0]->str, "a");
        osy_redis_replies_free(rep, 1);
        assert_int_equal(osy_redis_pipeline_pending(r), 0);
        assert_int_equal(CMD(r, NULL, "PING"), OSY_OK);
        osy_redis_destroy(r);
}

/* One failing command in a batch does not fail the batch: its error
 * reply stays in its slot for the caller to classify. */
static void pipeline_error_reply_stays_in_its_slot(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        osy_redis_t *r     = open_handle(NULL, 0, 0);
        const char *set[]  = {"SET", "s", "text"};
        const char *incr[] = {"INCR", "s"};
        const char *get[]  = {"GET", "s"};
        redisReply *rep[3];

        (void)state;
        assert_int_equal(
            osy_redis_pipeline_append_argv(r, 3, set, NULL, err, sizeof(err)),
            OSY_OK);
        assert_int_equal(
            osy_redis_pipeline_append_argv(r, 2, incr, NULL, err, sizeof(err)),
            OSY_OK);
        assert_int_equal(
            osy_redis_pipeline_append_argv(r, 2, get, NULL, err, sizeof(err)),
            OSY_OK);
        assert_int_equal(osy_redis_pipeline_exec(r, rep, 3, err, sizeof(err)),
                         OSY_OK);
        assert_int_equal(rep[0]->type, REDIS_REPLY_STATUS);
        assert_int_equal(osy_redis_reply_err(rep[1], err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(err, "not an integer"));
        assert_string_equal(rep[2]->str, "text");
        osy_redis_replies_free(rep, 3);
        osy_redis_destroy(r);
}

/* Mixing plain commands into a pending pipeline, or a wrong count, is
 * refused without sending half a batch. */
static void pipeline_misuse_is_invalid(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        osy_redis_t *r     = open_handle(NULL, 0, 0);
        const char *argv[] = {"INCR", "m"};
        redisReply *rep[3] = {NULL, NULL, NULL};
        redisReply *reply  = NULL;

        (void)state;
        assert_int_equal(
            osy_redis_pipeline_append_argv(r, 2, argv, NULL, err, sizeof(err)),
            OSY_OK);
        /* A plain command would read the pipelined reply: refused. */
        assert_int_equal(CMD(r, &reply, "PING"), OSY_ERR_INVALID);
        assert_non_null(strstr(err, "pipeline"));
        assert_int_equal(
            osy_redis_pipeline_append_argv(r, 2, argv, NULL, err, sizeof(err)),
            OSY_OK);
        /* Wrong count: the queue is discarded, not half sent. */
        assert_int_equal(osy_redis_pipeline_exec(r, rep, 3, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_null(rep[0]);
        assert_int_equal(osy_redis_pipeline_pending(r), 0);
        /* The handle works again, and neither INCR ran. */
        assert_int_equal(CMD(r, &reply, "EXISTS", "m"), OSY_OK);
        assert_int_equal(reply->integer, 0);
        freeReplyObject(reply);
        assert_int_equal(osy_redis_pipeline_exec(r, rep, 0, err, sizeof(err)),
                         OSY_OK);
        osy_redis_destroy(r);
}

/* A restart (same port) kills the connection: one TRANSIENT, then the
 * handle reconnects by itself. */
static void reconnects_after_server_restart(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        osy_redis_t *r    = open_handle(NULL, 0, 0);
        redisReply *reply = NULL;
        struct osy_redis_stats st;

        (void)state;
        assert_int_equal(CMD(r, NULL, "SET", "k", "before"), OSY_OK);
        assert_int_equal(osy_test_redis_restart(&srv), 0);
        /* The old connection is dead: the first command reports it and is
         * not replayed (it may have run). */
        assert_int_equal(CMD(r, &reply, "SET", "k", "after"),
                         OSY_ERR_TRANSIENT);
        assert_null(reply);
        assert_false(osy_redis_is_connected(r));
        assert_non_null(strstr(err, "127.0.0.1:"));
        /* The next one reconnects by itself. */
        assert_int_equal(CMD(r, NULL, "SET", "k", "after"), OSY_OK);
        assert_int_equal(CMD(r, &reply, "GET", "k"), OSY_OK);
        assert_string_equal(reply->str, "after");
        freeReplyObject(reply);
        osy_redis_get_stats(r, &st);
        assert_int_equal(st.connects, 2);
        assert_int_equal(st.disconnects, 1);
        osy_redis_destroy(r);
}

/* While the server is down every call fails fast and retryably, and
 * the handle recovers once it is back. */
static void reconnect_while_down_is_transient(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        osy_redis_t *r     = open_handle(NULL, 0, 0);
        const char *argv[] = {"PING"};
        struct osy_redis_stats st;

        (void)state;
        assert_int_equal(osy_test_redis_halt(&srv), 0);
        /* The dead connection first, then reconnects fail until the
         * server is back. */
        assert_int_equal(CMD(r, NULL, "PING"), OSY_ERR_TRANSIENT);
        assert_int_equal(CMD(r, NULL, "PING"), OSY_ERR_TRANSIENT);
        assert_non_null(strstr(err, "connect"));
        /* A pipeline cannot start either; exec then reports the cause. */
        assert_int_equal(
            osy_redis_pipeline_append_argv(r, 1, argv, NULL, err, sizeof(err)),
            OSY_ERR_TRANSIENT);
        assert_int_equal(
            osy_redis_pipeline_append_argv(r, 1, argv, NULL, err, sizeof(err)),
            OSY_ERR_TRANSIENT);
        assert_int_equal(osy_redis_pipeline_exec(r, NULL, 0, err, sizeof(err)),
                         OSY_ERR_TRANSIENT);
        assert_non_null(strstr(err, "discarded"));
        osy_redis_get_stats(r, &st);
        assert_int_equal(st.connect_failures, 2);
        assert_int_equal(osy_test_redis_restart(&srv), 0);
        assert_int_equal(CMD(r, NULL, "PING"), OSY_OK);
        osy_redis_destroy(r);
}

/* A reconnect repeats AUTH and SELECT: no command may run
 * unauthenticated or in the wrong database. */
static void killed_connection_reauths_and_reselects(void **state)
{
        char err[OSY_ERRSTR_SIZE], id[32];
        osy_redis_t *admin = open_handle(NULL, 0, 0);
        osy_redis_t *r;
        redisReply *reply = NULL;

        (void)state;
        assert_int_equal(
            CMD(admin, NULL, "CONFIG", "SET", "requirepass", "s3cret-pass"),
            OSY_OK);
        r = open_handle("s3cret-pass", 3, 0);
        assert_int_equal(CMD(r, NULL, "SET", "k", "in-db-3"), OSY_OK);
        assert_int_equal(CMD(r, &reply, "CLIENT", "ID"), OSY_OK);
        snprintf(id, sizeof(id), "%lld", reply->integer);
        freeReplyObject(reply);
        assert_int_equal(CMD(admin, NULL, "CLIENT", "KILL", "ID", id), OSY_OK);
        assert_int_equal(CMD(r, NULL, "GET", "k"), OSY_ERR_TRANSIENT);
        /* Reconnected: authenticated again, and still in db 3. */
        assert_int_equal(CMD(r, &reply, "GET", "k"), OSY_OK);
        assert_int_equal(reply->type, REDIS_REPLY_STRING);
        assert_string_equal(reply->str, "in-db-3");
        freeReplyObject(reply);
        assert_int_equal(CMD(admin, NULL, "CONFIG", "SET", "requirepass", ""),
                         OSY_OK);
        osy_redis_destroy(r);
        osy_redis_destroy(admin);
}

/* Wrong or missing passwords are OSY_ERR_AUTH at connect time, and the
 * message never contains a password. */
static void auth_errors_are_clear_and_secret_free(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        osy_redis_t *admin      = open_handle(NULL, 0, 0);
        struct osy_redis_opts o = {.host = "127.0.0.1", .port = srv.port};
        osy_redis_t *r          = NULL;

        (void)state;
        assert_int_equal(
            CMD(admin, NULL, "CONFIG", "SET", "requirepass", "s3cret-pass"),
            OSY_OK);
        o.password = "wrong-horse-battery";
        assert_int_equal(osy_redis_connect(&r, &o, err, sizeof(err)),
                         OSY_ERR_AUTH);
        assert_null(r);
        assert_non_null(strstr(err, "AUTH"));
        assert_null(strstr(err, "wrong-horse"));
        assert_null(strstr(err, "s3cret"));
        /* No password at all is caught at connect time too. */
        o.password = NULL;
        assert_int_equal(osy_redis_connect(&r, &o, err, sizeof(err)),
                         OSY_ERR_AUTH);
        assert_non_null(strstr(err, "requires a password"));
        o.password = "s3cret-pass";
        assert_int_equal(osy_redis_connect(&r, &o, err, sizeof(err)), OSY_OK);
        assert_int_equal(CMD(r, NULL, "PING"), OSY_OK);
        assert_int_equal(CMD(r, NULL, "CONFIG", "SET", "requirepass", ""),
                         OSY_OK);
        osy_redis_destroy(r);
        osy_redis_destroy(admin);
}

/* A db the server does not have is a config error, not a retry. */
static void bad_db_is_invalid(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        struct osy_redis_opts o = {
            .host = "127.0.0.1", .port = srv.port, .db = 99};
        osy_redis_t *r = NULL;

        (void)state;
        assert_int_equal(osy_redis_connect(&r, &o, err, sizeof(err)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(err, "SELECT"));
        assert_null(r);
}

/* A reply slower than the command timeout is TRANSIENT; the connection
 * (still owed that reply) is replaced. */
static void command_timeout_drops_and_recovers(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        osy_redis_t *r = open_handle(NULL, 0, 100);
        int64_t t0     = osy_test_now_ms();
        struct osy_redis_stats st;

        (void)state;
        /* BLPOP blocks this client only, for longer than our timeout. */
        assert_int_equal(CMD(r, NULL, "BLPOP", "empty", "5"),
                         OSY_ERR_TRANSIENT);
        assert_true(osy_test_now_ms() - t0 < 2000);
        assert_non_null(strstr(err, "timed out after 100 ms"));
        osy_redis_get_stats(r, &st);
        assert_int_equal(st.disconnects, 1);
        /* A fresh connection, not the one still waiting on BLPOP. */
        assert_int_equal(CMD(r, NULL, "PING"), OSY_OK);
        osy_redis_destroy(r);
}

/* EVALSHA first; on NOSCRIPT load and retry once, counted in the stats. */
static void evalsha_reloads_after_script_flush(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        osy_redis_t *r           = open_handle(NULL, 0, 0);
        osy_redis_script_t *s    = NULL;
        const char *const keys[] = {"key-a"};
        const char *const args[] = {"arg-b"};
        redisReply *reply        = NULL;
        struct osy_redis_stats st;

        (void)state;
        assert_int_equal(osy_redis_script_new(&s, "return KEYS[1] .. ARGV[1]",
                                              err, sizeof(err)),
                         OSY_OK);
        /* First run: the server never saw it: NOSCRIPT, load, retry. */
        assert_int_equal(
            osy_redis_eval(r, s, 1, keys, 1, args, &reply, err, sizeof(err)),
            OSY_OK);
        assert_string_equal(reply->str, "key-aarg-b");
        freeReplyObject(reply);
        osy_redis_get_stats(r, &st);
        assert_int_equal(st.script_loads, 1);
        assert_int_equal(st.noscript, 1);
        /* Second run: straight EVALSHA. */
        assert_int_equal(
            osy_redis_eval(r, s, 1, keys, 1, args, &reply, err, sizeof(err)),
            OSY_OK);
        freeReplyObject(reply);
        osy_redis_get_stats(r, &st);
        assert_int_equal(st.script_loads, 1);
        /* After SCRIPT FLUSH (as after a failover) it reloads by itself. */
        assert_int_equal(CMD(r, NULL, "SCRIPT", "FLUSH"), OSY_OK);
        assert_int_equal(
            osy_redis_eval(r, s, 1, keys, 1, args, &reply, err, sizeof(err)),
            OSY_OK);
        assert_string_equal(reply->str, "key-aarg-b");
        freeReplyObject(reply);
        osy_redis_get_stats(r, &st);
        assert_int_equal(st.script_loads, 2);
        assert_int_equal(st.noscript, 2);
        /* The server agrees with our locally computed SHA1. */
        assert_int_equal(
            CMD(r, &reply, "SCRIPT", "EXISTS", osy_redis_script_sha(s)),
            OSY_OK);
        assert_int_equal(reply->element[0]->integer, 1);
        freeReplyObject(reply);
        osy_redis_script_destroy(s);
        osy_redis_destroy(r);
}

/* A script that raises an error is INVALID with its message, and is
 * not reloaded in a loop. */
static void script_error_is_invalid_with_message(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        osy_redis_t *r        = open_handle(NULL, 0, 0);
        osy_redis_script_t *s = NULL;
        redisReply *reply     = NULL;

        (void)state;
        assert_int_equal(osy_redis_script_new(
                             &s, "return redis.error_reply('ERR boom here')",
                             err, sizeof(err)),
                         OSY_OK);
        assert_int_equal(
            osy_redis_eval(r, s, 0, NULL, 0, NULL, &reply, err, sizeof(err)),
            OSY_ERR_INVALID);
        assert_null(reply);
        assert_non_null(strstr(err, "boom here"));
        /* A script that fails is not reloaded over and over. */
        struct osy_redis_stats st;
        osy_redis_get_stats(r, &st);
        assert_int_equal(st.script_loads, 1);
        assert_int_equal(
            osy_redis_eval(r, s, -1, NULL, 0, NULL, &reply, err, sizeof(err)),
            OSY_ERR_INVALID);
        osy_redis_script_destroy(s);
        osy_redis_destroy(r);
}

/* Callers that batch EVALSHA themselves can preload and use the SHA1. */
static void pipelined_evalsha_after_script_load(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        osy_redis_t *r        = open_handle(NULL, 0, 0);
        osy_redis_script_t *s = NULL;
        redisReply *rep[2];

        (void)state;
        assert_int_equal(osy_redis_script_new(&s,
                                              "return tonumber(ARGV[1]) * 2",
                                              err, sizeof(err)),
                         OSY_OK);
        assert_int_equal(osy_redis_script_load(r, s, err, sizeof(err)), OSY_OK);
        const char *a1[] = {"EVALSHA", osy_redis_script_sha(s), "0", "21"};
        const char *a2[] = {"EVALSHA", osy_redis_script_sha(s), "0", "5"};
        assert_int_equal(
            osy_redis_pipeline_append_argv(r, 4, a1, NULL, err, sizeof(err)),
            OSY_OK);
        assert_int_equal(
            osy_redis_pipeline_append_argv(r, 4, a2, NULL, err, sizeof(err)),
            OSY_OK);
        assert_int_equal(osy_redis_pipeline_exec(r, rep, 2, err, sizeof(err)),
                         OSY_OK);
        assert_int_equal(rep[0]->integer, 42);
        assert_int_equal(rep[1]->integer, 10);
        osy_redis_replies_free(rep, 2);
        osy_redis_script_destroy(s);
        osy_redis_destroy(r);
}

/* After a restart the script cache is empty: the reconnect and the
 * reload both happen without the caller knowing. */
static void script_survives_restart(void **state)
{
        char err[OSY_ERRSTR_SIZE];
        osy_redis_t *r        = open_handle(NULL, 0, 0);
        osy_redis_script_t *s = NULL;
        redisReply *reply     = NULL;
        osy_err_t e;

        (void)state;
        assert_int_equal(osy_redis_script_new(&s, "return 7", err, sizeof(err)),
                         OSY_OK);
        assert_int_equal(
            osy_redis_eval(r, s, 0, NULL, 0, NULL, &reply, err, sizeof(err)),
            OSY_OK);
        freeReplyObject(reply);
        assert_int_equal(osy_test_redis_restart(&srv), 0);
        /* One transient failure (the dead connection), then the fresh
         * server without the script answers after a reload. */
        e = osy_redis_eval(r, s, 0, NULL, 0, NULL, &reply, err, sizeof(err));
        assert_int_equal(e, OSY_ERR_TRANSIENT);
        assert_int_equal(
            osy_redis_eval(r, s, 0, NULL, 0, NULL, &reply, err, sizeof(err)),
            OSY_OK);
        assert_int_equal(reply->integer, 7);
        freeReplyObject(reply);
        struct osy_redis_stats st;
        osy_redis_get_stats(r, &st);
        assert_int_equal(st.script_loads, 2);
        osy_redis_script_destroy(s);
        osy_redis_destroy(r);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(command_round_trip, clean),
    cmocka_unit_test_setup(pipeline_of_1000_in_one_exec, clean),
    cmocka_unit_test_setup(pipeline_sent_early_runs_before_exec, clean),
    cmocka_unit_test_setup(pipeline_recv_takes_the_oldest_replies, clean),
    cmocka_unit_test_setup(pipeline_error_reply_stays_in_its_slot, clean),
    cmocka_unit_test_setup(pipeline_misuse_is_invalid, clean),
    cmocka_unit_test_setup(reconnects_after_server_restart, clean),
    cmocka_unit_test_setup(reconnect_while_down_is_transient, clean),
    cmocka_unit_test_setup(killed_connection_reauths_and_reselects, clean),
    cmocka_unit_test_setup(auth_errors_are_clear_and_secret_free, clean),
    cmocka_unit_test_setup(bad_db_is_invalid, clean),
    cmocka_unit_test_setup(command_timeout_drops_and_recovers, clean),
    cmocka_unit_test_setup(evalsha_reloads_after_script_flush, clean),
    cmocka_unit_test_setup(script_error_is_invalid_with_message, clean),
    cmocka_unit_test_setup(pipelined_evalsha_after_script_load, clean),
    cmocka_unit_test_setup(script_survives_restart, clean),
};
OSY_TEST_MAIN(tests, group_setup, group_teardown)
