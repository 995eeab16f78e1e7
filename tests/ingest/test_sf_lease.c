/*
 * test_sf_lease.c - sf-ingest's per-tenant lease (workers/sf-ingest/lease.c)
 * against a real redis-server, with a fake monotonic clock: take, renew,
 * steal detection, fencing when Redis is gone, release, expiry, and the
 * take-over of a holder whose process is gone.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lease.h"
#include "optsync/redis.h"
#include "osy_test.h"

#define KEY "optsync:sf-ingest:lease:{acme}"
#define LEASE_MS 3000 /* renew every 1000, valid for 2400 */

struct fx {
        struct osy_test_redis srv;
        osy_redis_t *r; /* the leases' connection */
        osy_redis_t *t; /* the test's own */
        osy_sfi_lease_t *a, *b;
        char owner_a[OSY_SFI_OWNER_BUFSZ], owner_b[OSY_SFI_OWNER_BUFSZ];
};

static osy_sfi_lease_t *lease(const char *owner, int64_t lease_ms)
{
        struct osy_sfi_lease_opts o = {0};
        osy_sfi_lease_t *l          = NULL;
        char e[OSY_ERRSTR_SIZE];

        o.key      = KEY;
        o.owner    = owner;
        o.lease_ms = lease_ms;
        if (osy_sfi_lease_new(&l, &o, e, sizeof(e)))
                fail_msg("lease: %s", e);
        return l;
}

static int setup(void **state)
{
        struct fx *f             = calloc(1, sizeof(*f));
        struct osy_redis_opts ro = {0};
        char e[OSY_ERRSTR_SIZE];

        if (!f || osy_test_redis_start(&f->srv))
                return -1;
        ro.host = "127.0.0.1";
        ro.port = f->srv.port;
        if (osy_redis_connect(&f->r, &ro, e, sizeof(e)) ||
            osy_redis_connect(&f->t, &ro, e, sizeof(e)) ||
            osy_sfi_lease_owner_id(f->owner_a, sizeof(f->owner_a)) ||
            osy_sfi_lease_owner_id(f->owner_b, sizeof(f->owner_b)))
                return -1;
        f->a   = lease(f->owner_a, LEASE_MS);
        f->b   = lease(f->owner_b, LEASE_MS);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fx *f = *state;

        osy_sfi_lease_destroy(f->a);
        osy_sfi_lease_destroy(f->b);
        osy_redis_destroy(f->r);
        osy_redis_destroy(f->t);
        osy_test_redis_stop(&f->srv);
        free(f);
        return 0;
}

/* A command on the test's connection; the reply as text ("" for nil,
 * integers printed) into @p out. */
static void cmd(struct fx *f, char *out, size_t size, int argc,
                const char **argv)
{
        redisReply *rep = NULL;
        char e[OSY_ERRSTR_SIZE];

        if (osy_redis_command_argv(f->t, argc, argv, NULL, &rep, e, sizeof(e)))
                fail_msg("redis: %s", e);
        if (out) {
                out[0] = '\0';
                if (rep->type == REDIS_REPLY_STRING ||
                    rep->type == REDIS_REPLY_STATUS)
                        snprintf(out, size, "%s", rep->str);
                else if (rep->type == REDIS_REPLY_INTEGER)
                        snprintf(out, size, "%lld", rep->integer);
        }
        freeReplyObject(rep);
}

static void get_key(struct fx *f, char *out, size_t size)
{
        const char *argv[] = {"GET", KEY};

        cmd(f, out, size, 2, argv);
}

static long long pttl(struct fx *f)
{
        const char *argv[] = {"PTTL", KEY};
        char buf[32];

        cmd(f, buf, sizeof(buf), 2, argv);
        return strtoll(buf, NULL, 10);
}

static void set_key(struct fx *f, const char *value, const char *px)
{
        const char *argv[] = {"SET", KEY, value, "PX", px};

        cmd(f, NULL, 0, 5, argv);
}

static osy_sfi_lease_change_t tick(struct fx *f, osy_sfi_lease_t *l,
                                   int64_t now)
{
        osy_sfi_lease_change_t c = OSY_SFI_LEASE_UNCHANGED;
        char e[OSY_ERRSTR_SIZE];

        if (osy_sfi_lease_tick(l, f->r, now, &c, e, sizeof(e)))
                fail_msg("tick: %s", e);
        return c;
}

static void first_take_wins_the_other_stands_by(void **state)
{
        struct fx *f = *state;
        char v[OSY_SFI_OWNER_BUFSZ];

        assert_int_equal(tick(f, f->a, 0), OSY_SFI_LEASE_ACQUIRED);
        assert_int_equal(tick(f, f->b, 0), OSY_SFI_LEASE_UNCHANGED);
        assert_true(osy_sfi_lease_valid(f->a, 0));
        assert_false(osy_sfi_lease_valid(f->b, 0));
        get_key(f, v, sizeof(v));
        assert_string_equal(v, f->owner_a);
        /* The standby knows whom it waits for (logs). */
        assert_string_equal(osy_sfi_lease_holder(f->b), f->owner_a);
        assert_true(pttl(f) > 0 && pttl(f) <= LEASE_MS);
        /* The standby tries again a renew interval later. */
        assert_int_equal(osy_sfi_lease_next_ms(f->b), LEASE_MS / 3);
}

static void renew_extends_the_key_and_the_validity(void **state)
{
        struct fx *f          = *state;
        const char *shorten[] = {"PEXPIRE", KEY, "500"};
        osy_sfi_lease_change_t c;

        assert_int_equal(tick(f, f->a, 0), OSY_SFI_LEASE_ACQUIRED);
        assert_int_equal(osy_sfi_lease_valid_until(f->a), LEASE_MS * 4 / 5);
        /* Not due yet: no I/O, nothing changes. */
        cmd(f, NULL, 0, 3, shorten);
        assert_int_equal(tick(f, f->a, 999), OSY_SFI_LEASE_UNCHANGED);
        assert_true(pttl(f) <= 500);
        c = tick(f, f->a, 1000);
        assert_int_equal(c, OSY_SFI_LEASE_UNCHANGED);
        assert_true(pttl(f) > 2000);
        assert_int_equal(osy_sfi_lease_valid_until(f->a),
                         1000 + LEASE_MS * 4 / 5);
}

static void validity_ends_at_lease_minus_margin_without_any_io(void **state)
{
        struct fx *f = *state;

        assert_int_equal(tick(f, f->a, 0), OSY_SFI_LEASE_ACQUIRED);
        assert_int_equal(osy_sfi_lease_expire(f->a, 2399),
                         OSY_SFI_LEASE_UNCHANGED);
        assert_true(osy_sfi_lease_valid(f->a, 2399));
        /* 3000 - 600: stopped 600 ms before the key could expire. */
        assert_false(osy_sfi_lease_valid(f->a, 2400));
        assert_int_equal(osy_sfi_lease_expire(f->a, 2400), OSY_SFI_LEASE_LOST);
        assert_int_equal(osy_sfi_lease_valid_until(f->a), 0);
        assert_non_null(strstr(osy_sfi_lease_lost_reason(f->a), "in time"));
}

static void redis_down_holder_stops_before_the_key_expires(void **state)
{
        struct fx *f             = *state;
        osy_sfi_lease_change_t c = OSY_SFI_LEASE_UNCHANGED;
        char e[OSY_ERRSTR_SIZE];
        osy_err_t err;

        assert_int_equal(tick(f, f->a, 0), OSY_SFI_LEASE_ACQUIRED);
        assert_int_equal(tick(f, f->a, 1000), OSY_SFI_LEASE_UNCHANGED);
        osy_test_redis_stop(&f->srv);
        /* A failed renew keeps the lease until its validity runs out... */
        err = osy_sfi_lease_tick(f->a, f->r, 2000, &c, e, sizeof(e));
        assert_int_equal(err, OSY_ERR_TRANSIENT);
        assert_int_equal(c, OSY_SFI_LEASE_UNCHANGED);
        assert_true(osy_sfi_lease_valid(f->a, 2000));
        /* ...is retried sooner than the renew pace... */
        assert_true(osy_sfi_lease_next_ms(f->a) < 3000);
        /* ...and ends it at the last good renew + lease - margin. */
        err = osy_sfi_lease_tick(f->a, f->r, 3399, &c, e, sizeof(e));
        assert_int_equal(c, OSY_SFI_LEASE_UNCHANGED);
        assert_true(osy_sfi_lease_valid(f->a, 3399));
        err = osy_sfi_lease_tick(f->a, f->r, 3400, &c, e, sizeof(e));
        assert_int_equal(err, OSY_OK);
        assert_int_equal(c, OSY_SFI_LEASE_LOST);
        assert_false(osy_sfi_lease_valid(f->a, 3400));
}

static void stolen_lease_is_lost_at_the_next_renew(void **state)
{
        struct fx *f = *state;

        assert_int_equal(tick(f, f->a, 0), OSY_SFI_LEASE_ACQUIRED);
        set_key(f, "thief:1:00@elsewhere/1", "60000");
        assert_int_equal(tick(f, f->a, 1000), OSY_SFI_LEASE_LOST);
        assert_false(osy_sfi_lease_valid(f->a, 1000));
        assert_non_null(
            strstr(osy_sfi_lease_lost_reason(f->a), "thief:1:00@elsewhere/1"));
        /* Standing by: a living thief keeps it. */
        assert_int_equal(tick(f, f->a, 2000), OSY_SFI_LEASE_UNCHANGED);
        assert_false(osy_sfi_lease_valid(f->a, 2000));
}

static void release_deletes_only_our_own_key(void **state)
{
        struct fx *f             = *state;
        osy_sfi_lease_change_t c = OSY_SFI_LEASE_UNCHANGED;
        char e[OSY_ERRSTR_SIZE], v[OSY_SFI_OWNER_BUFSZ];

        assert_int_equal(tick(f, f->a, 0), OSY_SFI_LEASE_ACQUIRED);
        assert_int_equal(tick(f, f->b, 0), OSY_SFI_LEASE_UNCHANGED);
        assert_int_equal(osy_sfi_lease_release(f->a, f->r, &c, e, sizeof(e)),
                         OSY_OK);
        assert_int_equal(c, OSY_SFI_LEASE_RELEASED);
        assert_false(osy_sfi_lease_valid(f->a, 1));
        get_key(f, v, sizeof(v));
        assert_string_equal(v, "");
        /* The standby takes it at its next attempt, not at an expiry. */
        assert_int_equal(tick(f, f->b, 1000), OSY_SFI_LEASE_ACQUIRED);
        /* A release by a replica that lost the lease is a no-op in Redis
         * (compare-and-delete). */
        assert_int_equal(tick(f, f->a, 2000), OSY_SFI_LEASE_UNCHANGED);
        set_key(f, f->owner_a, "60000");
        assert_int_equal(tick(f, f->a, 3000), OSY_SFI_LEASE_ACQUIRED);
        set_key(f, "other:1:00@elsewhere/1", "60000");
        assert_int_equal(osy_sfi_lease_release(f->a, f->r, &c, e, sizeof(e)),
                         OSY_OK);
        get_key(f, v, sizeof(v));
        assert_string_equal(v, "other:1:00@elsewhere/1");
}

static void expired_key_is_taken_by_the_standby(void **state)
{
        struct fx *f = *state;
        osy_sfi_lease_t *shortl;

        /* A holder that stopped renewing (its key lives 300 ms). */
        shortl = lease(f->owner_a, 300);
        assert_int_equal(tick(f, shortl, 0), OSY_SFI_LEASE_ACQUIRED);
        assert_int_equal(tick(f, f->b, 0), OSY_SFI_LEASE_UNCHANGED);
        osy_test_sleep_ms(400);
        assert_int_equal(tick(f, f->b, 1000), OSY_SFI_LEASE_ACQUIRED);
        assert_true(osy_sfi_lease_valid(f->b, 1000));
        /* The old holder finds out at its next renew. */
        assert_int_equal(tick(f, shortl, 100), OSY_SFI_LEASE_LOST);
        osy_sfi_lease_destroy(shortl);
}

static void own_key_is_readopted_after_local_expiry(void **state)
{
        struct fx *f = *state;

        assert_int_equal(tick(f, f->a, 0), OSY_SFI_LEASE_ACQUIRED);
        /* A long pause of this process: its validity ran out, the key
         * (real time) did not. It is still ours: take it back at once. */
        assert_int_equal(tick(f, f->a, 5000), OSY_SFI_LEASE_LOST);
        assert_int_equal(osy_sfi_lease_next_ms(f->a), 5000);
        assert_int_equal(tick(f, f->a, 5000), OSY_SFI_LEASE_ACQUIRED);
        assert_true(osy_sfi_lease_valid(f->a, 5001));
}

/* @p owner with its pid replaced by @p pid. */
static void with_pid(const char *owner, long pid, char *out, size_t size)
{
        const char *p1 = strchr(owner, ':');
        const char *p2 = strchr(p1 + 1, ':');

        snprintf(out, size, "%.*s:%ld%s", (int)(p1 - owner), owner, pid, p2);
}

static void dead_holder_on_this_machine_is_taken_at_once(void **state)
{
        struct fx *f = *state;
        char dead[OSY_SFI_OWNER_BUFSZ], alive[OSY_SFI_OWNER_BUFSZ];
        char v[OSY_SFI_OWNER_BUFSZ];
        pid_t child = fork();

        if (child == 0)
                _exit(0);
        assert_true(child > 0);
        waitpid(child, NULL, 0);
        with_pid(f->owner_a, (long)child, dead, sizeof(dead));
        with_pid(f->owner_a, (long)getppid(), alive, sizeof(alive));
        assert_true(osy_sfi_lease_owner_dead(dead));
        assert_false(osy_sfi_lease_owner_dead(alive));
        /* A pid no pid_t holds (a corrupted key) is not the dead child's
         * pid plus 2^32: it proves nothing. */
        with_pid(f->owner_a, (long)child + (1L << 32), dead, sizeof(dead));
        assert_false(osy_sfi_lease_owner_dead(dead));
        with_pid(f->owner_a, (long)child, dead, sizeof(dead));
        /* Another lease of this very process is alive. */
        assert_false(osy_sfi_lease_owner_dead(f->owner_a));
        /* Another machine or pid namespace: it could be alive. */
        assert_false(osy_sfi_lease_owner_dead("h:1:00@elsewhere/1"));
        assert_false(osy_sfi_lease_owner_dead("garbage"));

        set_key(f, alive, "60000");
        assert_int_equal(tick(f, f->b, 0), OSY_SFI_LEASE_UNCHANGED);
        set_key(f, dead, "60000");
        assert_int_equal(tick(f, f->b, 1000), OSY_SFI_LEASE_ACQUIRED);
        get_key(f, v, sizeof(v));
        assert_string_equal(v, f->owner_b);
        assert_true(pttl(f) <= LEASE_MS);
}

static void owner_ids_are_unique_and_name_the_process(void **state)
{
        struct fx *f = *state;
        char pid[32];

        assert_string_not_equal(f->owner_a, f->owner_b);
        snprintf(pid, sizeof(pid), ":%ld:", (long)getpid());
        assert_non_null(strstr(f->owner_a, pid));
        assert_non_null(strchr(f->owner_a, '@'));
}

static void bad_settings_are_refused(void **state)
{
        struct osy_sfi_lease_opts o = {.key = KEY, .owner = "x"};
        osy_sfi_lease_t *l          = NULL;
        char e[OSY_ERRSTR_SIZE];

        (void)state;
        o.lease_ms = 10;
        assert_int_equal(osy_sfi_lease_new(&l, &o, e, sizeof(e)),
                         OSY_ERR_INVALID);
        /* A margin that leaves less than the renew interval would stop a
         * healthy holder between two renewals. */
        o.lease_ms  = 3000;
        o.margin_ms = 2000;
        assert_int_equal(osy_sfi_lease_new(&l, &o, e, sizeof(e)),
                         OSY_ERR_INVALID);
        o.margin_ms = 0;
        o.owner     = NULL;
        assert_int_equal(osy_sfi_lease_new(&l, &o, e, sizeof(e)),
                         OSY_ERR_INVALID);
        assert_null(l);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(first_take_wins_the_other_stands_by,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                renew_extends_the_key_and_the_validity, setup, teardown),
            cmocka_unit_test_setup_teardown(
                validity_ends_at_lease_minus_margin_without_any_io, setup,
                teardown),
            cmocka_unit_test_setup_teardown(
                redis_down_holder_stops_before_the_key_expires, setup,
                teardown),
            cmocka_unit_test_setup_teardown(
                stolen_lease_is_lost_at_the_next_renew, setup, teardown),
            cmocka_unit_test_setup_teardown(release_deletes_only_our_own_key,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(expired_key_is_taken_by_the_standby,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                own_key_is_readopted_after_local_expiry, setup, teardown),
            cmocka_unit_test_setup_teardown(
                dead_holder_on_this_machine_is_taken_at_once, setup, teardown),
            cmocka_unit_test_setup_teardown(
                owner_ids_are_unique_and_name_the_process, setup, teardown),
            cmocka_unit_test(bad_settings_are_refused),
        };

        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
