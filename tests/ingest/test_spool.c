/*
 * test_spool.c - the durable spool: records come back in order, survive a
 * reopen, leave once consumed; a torn tail (crash mid-append) is cut and
 * never replayed half; a corrupt record is skipped without losing those
 * after it; the cap, the lock and concurrent group-committed appends.
 */
#include "osy_test.h"
#include "spool.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HDR 24 /* record header size, see spool.c */

static char *dir;

static int setup(void **state)
{
        (void)state;
        dir = osy_test_mkdtemp("spool");
        return dir ? 0 : -1;
}

static int teardown(void **state)
{
        (void)state;
        osy_test_rmtree(dir);
        free(dir);
        dir = NULL;
        return 0;
}

static osy_spool_t *open_ok(uint64_t max)
{
        char errstr[OSY_ERRSTR_SIZE] = "";
        osy_spool_t *sp              = NULL;

        if (osy_spool_open(&sp, dir, max, errstr, sizeof(errstr)))
                fail_msg("open: %s", errstr);
        return sp;
}

/* Append records "k<i>" = "value-<i>" for i in [from, to), one call each. */
static void append_range(osy_spool_t *sp, int from, int to)
{
        char errstr[OSY_ERRSTR_SIZE] = "";

        for (int i = from; i < to; i++) {
                char k[16], v[32];
                struct osy_spool_rec r = {k, 0, v, 0};
                r.key_len   = (size_t)snprintf(k, sizeof(k), "k%d", i);
                r.value_len = (size_t)snprintf(v, sizeof(v), "value-%d", i);
                if (osy_spool_append(sp, &r, 1, 1000 + i, errstr,
                                     sizeof(errstr)))
                        fail_msg("append: %s", errstr);
        }
}

/* Peek everything and check it is exactly ids [from, to) in order. */
static void expect_range(osy_spool_t *sp, struct osy_spool_batch *b, int from,
                         int to)
{
        char errstr[OSY_ERRSTR_SIZE] = "";

        assert_int_equal(
            osy_spool_peek(sp, b, 10000, 1 << 24, errstr, sizeof(errstr)),
            OSY_OK);
        assert_int_equal(b->n, (size_t)(to - from));
        for (int i = from; i < to; i++) {
                char v[32];
                snprintf(v, sizeof(v), "value-%d", i);
                assert_string_equal(b->items[i - from].value, v);
                assert_int_equal(b->items[i - from].value_len, strlen(v));
                assert_int_equal(b->items[i - from].appended_ms, 1000 + i);
        }
}

static char *log_path(void)
{
        static char p[512];
        snprintf(p, sizeof(p), "%s/%s", dir, OSY_SPOOL_LOG_NAME);
        return p;
}

static off_t file_size(void)
{
        struct stat st;
        return stat(log_path(), &st) == 0 ? st.st_size : -1;
}

static void crc32_check_value(void **state)
{
        (void)state;
        assert_int_equal(osy_crc32(0, "123456789", 9), 0xCBF43926u);
        assert_int_equal(osy_crc32(osy_crc32(0, "1234", 4), "56789", 5),
                         0xCBF43926u);
}

static void records_come_back_in_order(void **state)
{
        struct osy_spool_batch b = {0};
        osy_spool_t *sp          = open_ok(1 << 20);
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(osy_spool_depth(sp), 0);
        append_range(sp, 0, 5);
        assert_int_equal(osy_spool_depth(sp), 5);
        expect_range(sp, &b, 0, 5);
        assert_string_equal(b.items[2].key, "k2");
        /* Peeking twice without consuming gives the same records. */
        expect_range(sp, &b, 0, 5);
        assert_int_equal(osy_spool_consume(sp, &b, 2, errstr, sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(osy_spool_depth(sp), 3);
        expect_range(sp, &b, 2, 5);
        osy_spool_batch_clear(&b);
        osy_spool_close(sp);
}

static void peek_limits_batch(void **state)
{
        struct osy_spool_batch b = {0};
        osy_spool_t *sp          = open_ok(1 << 20);
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        append_range(sp, 0, 10);
        assert_int_equal(
            osy_spool_peek(sp, &b, 4, 1 << 20, errstr, sizeof(errstr)), OSY_OK);
        assert_int_equal(b.n, 4);
        /* A byte budget smaller than one record still returns one. */
        assert_int_equal(osy_spool_peek(sp, &b, 100, 1, errstr, sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(b.n, 1);
        osy_spool_batch_clear(&b);
        osy_spool_close(sp);
}

static void reopen_keeps_undelivered_from_cursor(void **state)
{
        struct osy_spool_batch b = {0};
        osy_spool_t *sp          = open_ok(1 << 20);
        char errstr[OSY_ERRSTR_SIZE];
        struct osy_spool_stats st;
        (void)state;

        append_range(sp, 0, 6);
        expect_range(sp, &b, 0, 6);
        assert_int_equal(osy_spool_consume(sp, &b, 4, errstr, sizeof(errstr)),
                         OSY_OK);
        osy_spool_close(sp); /* like a crash: nothing else is flushed */
        sp = open_ok(1 << 20);
        assert_int_equal(osy_spool_depth(sp), 2);
        osy_spool_stats(sp, &st);
        assert_int_equal(st.oldest_ms, 1004);
        expect_range(sp, &b, 4, 6);
        osy_spool_batch_clear(&b);
        osy_spool_close(sp);
}

static void consuming_everything_empties_file(void **state)
{
        struct osy_spool_batch b = {0};
        osy_spool_t *sp          = open_ok(1 << 20);
        char errstr[OSY_ERRSTR_SIZE];
        struct osy_spool_stats st;
        (void)state;

        append_range(sp, 0, 3);
        assert_true(file_size() > 0);
        expect_range(sp, &b, 0, 3);
        assert_int_equal(osy_spool_consume(sp, &b, 3, errstr, sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(file_size(), 0);
        osy_spool_stats(sp, &st);
        assert_int_equal(st.records, 0);
        assert_int_equal(st.oldest_ms, 0);
        /* Appends after the reset start from offset 0 and are found
         * again after a reopen (the cursor was reset durably). */
        append_range(sp, 10, 12);
        osy_spool_close(sp);
        sp = open_ok(1 << 20);
        expect_range(sp, &b, 10, 12);
        osy_spool_batch_clear(&b);
        osy_spool_close(sp);
}

static void torn_tail_cut_never_replayed(void **state)
{
        struct osy_spool_batch b = {0};
        osy_spool_t *sp          = open_ok(1 << 20);
        off_t full;
        (void)state;

        append_range(sp, 0, 3);
        osy_spool_close(sp);
        full = file_size();
        /* A crash mid-write of the third record: only part of it. */
        for (off_t cut = full - 1; cut > full - 12; cut -= 5) {
                assert_int_equal(truncate(log_path(), cut), 0);
                sp = open_ok(1 << 20);
                assert_int_equal(osy_spool_depth(sp), 2);
                expect_range(sp, &b, 0, 2);
                /* The torn bytes were cut: new records follow cleanly. */
                append_range(sp, 2, 3);
                osy_spool_close(sp);
                sp = open_ok(1 << 20);
                expect_range(sp, &b, 0, 3);
                osy_spool_close(sp);
        }
        osy_spool_batch_clear(&b);
}

static void garbage_tail_cut(void **state)
{
        struct osy_spool_batch b = {0};
        osy_spool_t *sp          = open_ok(1 << 20);
        off_t before;
        int fd;
        (void)state;

        append_range(sp, 0, 2);
        osy_spool_close(sp);
        before = file_size();
        fd     = open(log_path(), O_WRONLY | O_APPEND);
        assert_true(fd >= 0);
        /* Looks like a header (magic) but the lengths and CRC are junk. */
        assert_int_equal(write(fd, "OSY1\xff\xff\x00\x00garbage-garbage!", 24),
                         24);
        close(fd);
        sp = open_ok(1 << 20);
        assert_int_equal(file_size(), before);
        expect_range(sp, &b, 0, 2);
        osy_spool_batch_clear(&b);
        osy_spool_close(sp);
}

static void corrupt_record_skipped_rest_kept(void **state)
{
        struct osy_spool_batch b = {0};
        osy_spool_t *sp          = open_ok(1 << 20);
        char errstr[OSY_ERRSTR_SIZE];
        off_t rec_size;
        int fd;
        (void)state;

        append_range(sp, 0, 3); /* equal-size records: k0/value-0 ... */
        osy_spool_close(sp);
        rec_size = file_size() / 3;
        /* Flip one byte of the second record's value. */
        fd = open(log_path(), O_RDWR);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, "X", 1, rec_size + HDR + 3), 1);
        close(fd);
        sp = open_ok(1 << 20);
        assert_int_equal(osy_spool_depth(sp), 2);
        assert_int_equal(
            osy_spool_peek(sp, &b, 100, 1 << 20, errstr, sizeof(errstr)),
            OSY_OK);
        assert_int_equal(b.n, 2);
        assert_string_equal(b.items[0].value, "value-0");
        assert_string_equal(b.items[1].value, "value-2");
        osy_spool_batch_clear(&b);
        osy_spool_close(sp);
}

static void unreadable_cursor_replays_from_start(void **state)
{
        struct osy_spool_batch b = {0};
        osy_spool_t *sp          = open_ok(1 << 20);
        char path[600];
        FILE *f;
        (void)state;

        append_range(sp, 0, 3);
        osy_spool_close(sp);
        snprintf(path, sizeof(path), "%s/%s", dir, OSY_SPOOL_CURSOR_NAME);
        /* Beyond the file, then not a number: both mean "from 0" (a
         * duplicate is harmless, a skip would lose events). */
        f = fopen(path, "w");
        fprintf(f, "999999\n");
        fclose(f);
        sp = open_ok(1 << 20);
        expect_range(sp, &b, 0, 3);
        osy_spool_close(sp);
        f = fopen(path, "w");
        fprintf(f, "bogus\n");
        fclose(f);
        sp = open_ok(1 << 20);
        expect_range(sp, &b, 0, 3);
        osy_spool_batch_clear(&b);
        osy_spool_close(sp);
}

static void full_spool_refuses_append(void **state)
{
        osy_spool_t *sp = open_ok(200);
        char big[300], errstr[OSY_ERRSTR_SIZE];
        struct osy_spool_rec r = {"k", 1, big, 100};
        struct osy_spool_stats st;
        (void)state;

        memset(big, 'x', sizeof(big));
        assert_int_equal(osy_spool_append(sp, &r, 1, 1, errstr, sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(osy_spool_append(sp, &r, 1, 1, errstr, sizeof(errstr)),
                         OSY_ERR_TOO_LARGE);
        assert_non_null(strstr(errstr, "full"));
        osy_spool_stats(sp, &st);
        assert_int_equal(st.records, 1);
        assert_int_equal(st.writable, 0); /* readiness: it refused one */
        osy_spool_close(sp);
}

static void oversized_record_refused(void **state)
{
        osy_spool_t *sp = open_ok(1 << 30);
        char errstr[OSY_ERRSTR_SIZE];
        struct osy_spool_rec r = {"k", 1, "", OSY_SPOOL_MAX_RECORD};
        (void)state;

        assert_int_equal(osy_spool_append(sp, &r, 1, 1, errstr, sizeof(errstr)),
                         OSY_ERR_TOO_LARGE);
        assert_int_equal(osy_spool_depth(sp), 0);
        osy_spool_close(sp);
}

static void second_open_refused_while_locked(void **state)
{
        osy_spool_t *sp = open_ok(1 << 20), *sp2 = NULL;
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(
            osy_spool_open(&sp2, dir, 1 << 20, errstr, sizeof(errstr)),
            OSY_ERR_INVALID);
        assert_non_null(strstr(errstr, "in use"));
        assert_null(sp2);
        osy_spool_close(sp);
        sp2 = open_ok(1 << 20); /* released on close */
        osy_spool_close(sp2);
}

static void not_a_directory_refused(void **state)
{
        osy_spool_t *sp = NULL;
        char errstr[OSY_ERRSTR_SIZE];
        char path[600];
        FILE *f;
        (void)state;

        snprintf(path, sizeof(path), "%s/file", dir);
        f = fopen(path, "w");
        fclose(f);
        assert_int_equal(
            osy_spool_open(&sp, path, 1 << 20, errstr, sizeof(errstr)),
            OSY_ERR_INVALID);
        assert_null(sp);
}

struct writer {
        osy_spool_t *sp;
        int id;
};

static void *writer_main(void *arg)
{
        struct writer *w = arg;
        char errstr[OSY_ERRSTR_SIZE];

        for (int i = 0; i < 200; i++) {
                char v[32];
                struct osy_spool_rec r = {"k", 1, v, 0};
                r.value_len =
                    (size_t)snprintf(v, sizeof(v), "w%d-%03d", w->id, i);
                if (osy_spool_append(w->sp, &r, 1, 1, errstr, sizeof(errstr)))
                        return (void *)1;
        }
        return NULL;
}

static void concurrent_appends_all_kept_in_order_per_writer(void **state)
{
        osy_spool_t *sp          = open_ok(1 << 24);
        struct osy_spool_batch b = {0};
        struct writer w[4];
        pthread_t t[4];
        int next[4] = {0};
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        for (int i = 0; i < 4; i++) {
                w[i].sp = sp;
                w[i].id = i;
                pthread_create(&t[i], NULL, writer_main, &w[i]);
        }
        for (int i = 0; i < 4; i++) {
                void *rv;
                pthread_join(t[i], &rv);
                assert_null(rv);
        }
        assert_int_equal(
            osy_spool_peek(sp, &b, 10000, 1 << 24, errstr, sizeof(errstr)),
            OSY_OK);
        assert_int_equal(b.n, 800);
        for (size_t i = 0; i < b.n; i++) {
                int id  = b.items[i].value[1] - '0';
                int seq = (int)strtol(b.items[i].value + 3, NULL, 10);
                assert_true(id >= 0 && id < 4);
                assert_int_equal(seq, next[id]); /* each writer in order */
                next[id]++;
        }
        osy_spool_batch_clear(&b);
        osy_spool_close(sp);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(crc32_check_value),
            cmocka_unit_test_setup_teardown(records_come_back_in_order, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(peek_limits_batch, setup, teardown),
            cmocka_unit_test_setup_teardown(
                reopen_keeps_undelivered_from_cursor, setup, teardown),
            cmocka_unit_test_setup_teardown(consuming_everything_empties_file,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(torn_tail_cut_never_replayed, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(garbage_tail_cut, setup, teardown),
            cmocka_unit_test_setup_teardown(corrupt_record_skipped_rest_kept,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                unreadable_cursor_replays_from_start, setup, teardown),
            cmocka_unit_test_setup_teardown(full_spool_refuses_append, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(oversized_record_refused, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(second_open_refused_while_locked,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(not_a_directory_refused, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(
                concurrent_appends_all_kept_in_order_per_writer, setup,
                teardown),
        };
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
