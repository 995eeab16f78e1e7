/*
 * test_rules_apply.c - the Lua script that writes a batch's person states
 * (osy_rules_apply_lua) against a real redis-server: newer or equal
 * versions replace the stored state, an older one is refused and leaves
 * the stored state (and a TTL) in place, and the count of refusals is
 * returned. Stale events losing across members rests on this.
 */
#include "osy_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optsync/redis.h"
#include "rules_worker.h"

static struct {
        struct osy_test_redis redis;
        osy_redis_t *r;
        osy_redis_script_t *s;
} E;

static int setup(void **state)
{
        struct osy_redis_opts ro = {0};
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        memset(&E, 0, sizeof(E));
        if (osy_test_redis_start(&E.redis))
                return -1;
        ro.host = "127.0.0.1";
        ro.port = E.redis.port;
        if (osy_redis_connect(&E.r, &ro, errstr, sizeof(errstr)) ||
            osy_redis_script_new(&E.s, osy_rules_apply_lua, errstr,
                                 sizeof(errstr)))
                return -1;
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        osy_redis_script_destroy(E.s);
        osy_redis_destroy(E.r);
        osy_test_redis_stop(&E.redis);
        return 0;
}

/* A Redis command's reply (the caller frees it). */
static redisReply *cmd(int argc, const char **argv)
{
        char errstr[OSY_ERRSTR_SIZE];
        redisReply *rep = NULL;

        if (osy_redis_command_argv(E.r, argc, argv, NULL, &rep, errstr,
                                   sizeof(errstr)))
                fail_msg("redis: %s", errstr);
        return rep;
}

static void set_raw(const char *key, const char *val)
{
        const char *argv[] = {"SET", key, val};
        freeReplyObject(cmd(3, argv));
}

static void expect(const char *key, const char *val)
{
        const char *argv[] = {"GET", key};
        redisReply *rep    = cmd(2, argv);

        assert_int_equal(rep->type, REDIS_REPLY_STRING);
        assert_string_equal(rep->str, val);
        freeReplyObject(rep);
}

static long long pttl(const char *key)
{
        const char *argv[] = {"PTTL", key};
        redisReply *rep    = cmd(2, argv);
        long long v        = rep->integer;

        freeReplyObject(rep);
        return v;
}

/* Run the script over @p n keys with their states and version times;
 * @returns the number refused. */
static long long apply(int n, const char **keys, const char **states,
                       const char **ms)
{
        const char *args[1 + 2 * 8];
        char errstr[OSY_ERRSTR_SIZE];
        redisReply *rep = NULL;
        long long refused;

        assert_true(n <= 8);
        args[0] = "60000";
        for (int i = 0; i < n; i++) {
                args[1 + 2 * i] = states[i];
                args[2 + 2 * i] = ms[i];
        }
        if (osy_redis_eval(E.r, E.s, n, keys, 1 + 2 * n, args, &rep, errstr,
                           sizeof(errstr)))
                fail_msg("apply: %s", errstr);
        assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
        refused = rep->integer;
        freeReplyObject(rep);
        return refused;
}

static void absent_state_is_written_with_ttl(void **state)
{
        const char *k[] = {"t:a1"}, *st[] = {"1|100|x|3|0|-|7|"},
                   *ms[] = {"100"};
        (void)state;

        assert_int_equal(apply(1, k, st, ms), 0);
        expect("t:a1", "1|100|x|3|0|-|7|");
        assert_true(pttl("t:a1") > 0 && pttl("t:a1") <= 60000);
}

static void newer_or_equal_version_replaces(void **state)
{
        const char *k[]  = {"t:b1", "t:b2"};
        const char *st[] = {"1|200|y|3|0|1|7|", "1|100|z|3|0|0|7|2"};
        const char *ms[] = {"200", "100"};
        (void)state;

        set_raw("t:b1", "1|100|x|3|0|-|7|");
        set_raw("t:b2", "1|100|x|3|0|-|7|1");
        assert_int_equal(apply(2, k, st, ms), 0);
        expect("t:b1", "1|200|y|3|0|1|7|");
        expect("t:b2", "1|100|z|3|0|0|7|2");
}

static void older_version_is_refused_and_stored_one_kept(void **state)
{
        const char *k[]  = {"t:c1", "t:c2", "t:c3"};
        const char *st[] = {"1|200|old|3|0|1|7|", "1|500|new|3|0|1|7|",
                            "1|10|old|3|0|1|7|"};
        const char *ms[] = {"200", "500", "10"};
        (void)state;

        set_raw("t:c1", "1|300|cur|3|0|0|7|1");
        set_raw("t:c2", "1|300|cur|3|0|0|7|1");
        set_raw("t:c3", "1|9007199254740000|cur|3|0|0|7|");
        assert_int_equal(apply(3, k, st, ms), 2);
        expect("t:c1", "1|300|cur|3|0|0|7|1");
        expect("t:c2", "1|500|new|3|0|1|7|");
        expect("t:c3", "1|9007199254740000|cur|3|0|0|7|");
        /* The kept state still expires. */
        assert_true(pttl("t:c1") > 0);
}

static void unreadable_stored_state_is_overwritten(void **state)
{
        const char *k[] = {"t:d1"}, *st[] = {"1|5|t|3|0|-|7|"}, *ms[] = {"5"};
        (void)state;

        set_raw("t:d1", "garbage|999999|");
        assert_int_equal(apply(1, k, st, ms), 0);
        expect("t:d1", "1|5|t|3|0|-|7|");
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(absent_state_is_written_with_ttl),
            cmocka_unit_test(newer_or_equal_version_replaces),
            cmocka_unit_test(older_version_is_refused_and_stored_one_kept),
            cmocka_unit_test(unreadable_stored_state_is_overwritten),
        };
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, setup, teardown);
}
