/*
 * test_kafka_roundtrip.c - the producer and consumer helpers against the
 * embedded cluster: every keyed message acknowledged and consumed; a member
 * killed mid-stream loses nothing it had not finished (offsets are stored
 * only after processing); a cooperative rebalance hands over partitions
 * incrementally, with the hooks running while the partitions are still
 * owned.
 */
#include "osy_test.h"
#include "osy_test_kafka.h"
#include "optsync/kafka.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOPIC "optsync.ac.events"
#define PARTITIONS 6
#define MAX_IDS 256

static struct osy_test_kafka kafka;

static int setup(void **state)
{
        (void)state;
        return osy_test_kafka_start(&kafka, 1, PARTITIONS);
}

static int teardown(void **state)
{
        (void)state;
        osy_test_kafka_stop(&kafka);
        return 0;
}

static struct osy_kafka_opts opts_for(const char *client_id)
{
        struct osy_kafka_opts o = {.bootstrap = kafka.bootstrap,
                                   .client_id = client_id,
                                   .extra     = osy_test_kafka_fast_props,
                                   .close_timeout_ms = 5000};
        return o;
}

/* ---- producing ---------------------------------------------------------- */

struct delivery {
        int ok;
        int failed;
        int bad_position;
        int partitions_seen[PARTITIONS];
};

static void on_delivery(void *opaque, osy_err_t err, const char *errstr,
                        int32_t partition, int64_t offset)
{
        struct delivery *d = opaque;
        (void)errstr;

        if (err) {
                d->failed++;
                return;
        }
        d->ok++;
        if (partition < 0 || partition >= PARTITIONS || offset < 0)
                d->bad_position++;
        else
                d->partitions_seen[partition]++;
}

/* Produce ids [first, first + n) keyed "person-<id>", all acknowledged. The
 * producer is destroyed before returning (no librdkafka thread remains). */
static void produce_ids(int first, int n, struct delivery *d)
{
        struct osy_kafka_opts opts = opts_for("test-producer");
        osy_kafka_producer_t *p;
        char errstr[OSY_ERRSTR_SIZE], key[32], val[32];

        memset(d, 0, sizeof(*d));
        assert_int_equal(
            osy_kafka_producer_new(&p, &opts, errstr, sizeof(errstr)), OSY_OK);
        for (int id = first; id < first + n; id++) {
                int kl = snprintf(key, sizeof(key), "person-%d", id);
                int vl = snprintf(val, sizeof(val), "id-%d", id);
                osy_err_t e;
                while ((e = osy_kafka_produce(p, TOPIC, key, (size_t)kl, val,
                                              (size_t)vl, on_delivery, d,
                                              errstr, sizeof(errstr))) ==
                       OSY_ERR_TRANSIENT)
                        osy_kafka_producer_poll(p, 10); /* queue full */
                assert_int_equal(e, OSY_OK);
        }
        assert_int_equal(
            osy_kafka_producer_flush(p, 15000, errstr, sizeof(errstr)), OSY_OK);
        osy_kafka_producer_destroy(p);
        assert_int_equal(d->ok, n);
        assert_int_equal(d->failed, 0);
        assert_int_equal(d->bad_position, 0);
}

static int msg_id(const rd_kafka_message_t *m)
{
        char buf[32];
        long v;
        char *end;

        if (!m->payload || m->len < 4 || m->len >= sizeof(buf))
                return -1;
        memcpy(buf, m->payload, m->len);
        buf[m->len] = '\0';
        if (strncmp(buf, "id-", 3))
                return -1;
        v = strtol(buf + 3, &end, 10);
        if (*end || v < 0 || v >= MAX_IDS)
                return -1;
        return (int)v;
}

/* ---- (a) everything produced is consumed -------------------------------- */

static void all_keyed_messages_delivered_and_consumed(void **state)
{
        const char *const topics[]  = {TOPIC, NULL};
        struct osy_kafka_opts opts  = opts_for("test-consumer");
        unsigned char seen[MAX_IDS] = {0};
        struct delivery d;
        osy_kafka_consumer_t *c;
        char errstr[OSY_ERRSTR_SIZE];
        int distinct = 0;
        (void)state;

        produce_ids(0, 200, &d);
        /* Keys spread over every partition. */
        for (int i = 0; i < PARTITIONS; i++)
                assert_true(d.partitions_seen[i] > 0);

        assert_int_equal(osy_kafka_consumer_new(&c, &opts, "roundtrip", topics,
                                                NULL, errstr, sizeof(errstr)),
                         OSY_OK);
        int64_t deadline = osy_test_now_ms() + 20000;
        while (distinct < 200 && osy_test_now_ms() < deadline) {
                rd_kafka_message_t *m = osy_kafka_consumer_poll(c, 100);
                if (!m)
                        continue;
                int id = msg_id(m);
                assert_true(id >= 0 && id < 200);
                /* The key came along and matches the value. */
                char key[32];
                int kl = snprintf(key, sizeof(key), "person-%d", id);
                assert_int_equal(m->key_len, (size_t)kl);
                assert_memory_equal(m->key, key, (size_t)kl);
                if (!seen[id]++)
                        distinct++;
                assert_int_equal(
                    osy_kafka_consumer_store(c, m, errstr, sizeof(errstr)),
                    OSY_OK);
                rd_kafka_message_destroy(m);
        }
        assert_int_equal(distinct, 200);
        assert_int_equal(
            osy_kafka_consumer_commit_sync(c, errstr, sizeof(errstr)), OSY_OK);
        assert_int_equal(osy_kafka_consumer_close(c, errstr, sizeof(errstr)),
                         OSY_OK);
        osy_kafka_consumer_destroy(c);
}

/* ---- close commits what was stored ------------------------------------- */

static void close_commits_stored_offsets(void **state)
{
        const char *const topics[] = {TOPIC, NULL};
        /* No periodic commit during the test: only close can commit. */
        const char *const extra[]  = {"session.timeout.ms",
                                      "3000",
                                      "heartbeat.interval.ms",
                                      "300",
                                      "auto.commit.interval.ms",
                                      "600000",
                                      NULL};
        struct osy_kafka_opts opts = opts_for("closer");
        rd_kafka_topic_partition_list_t *parts;
        osy_kafka_consumer_t *c;
        char errstr[OSY_ERRSTR_SIZE];
        struct delivery d;
        int got = 0, stored = 10;
        (void)state;

        opts.extra = extra;
        produce_ids(0, 30, &d);
        assert_int_equal(osy_kafka_consumer_new(&c, &opts, "close-group",
                                                topics, NULL, errstr,
                                                sizeof(errstr)),
                         OSY_OK);
        /* Process (and store) only the first 10 messages polled. */
        int64_t deadline = osy_test_now_ms() + 20000;
        while (got < 30 && osy_test_now_ms() < deadline) {
                rd_kafka_message_t *m = osy_kafka_consumer_poll(c, 100);
                if (!m)
                        continue;
                if (got++ < stored)
                        assert_int_equal(osy_kafka_consumer_store(
                                             c, m, errstr, sizeof(errstr)),
                                         OSY_OK);
                rd_kafka_message_destroy(m);
        }
        assert_int_equal(got, 30);
        assert_int_equal(osy_kafka_consumer_close(c, errstr, sizeof(errstr)),
                         OSY_OK);
        osy_kafka_consumer_destroy(c);

        /* Read the group's committed offsets back. Each partition starts
         * at 0 and is consumed in order, so their sum is the number of
         * messages marked processed: exactly the stored ones. */
        assert_int_equal(osy_kafka_consumer_new(&c, &opts, "close-group",
                                                topics, NULL, errstr,
                                                sizeof(errstr)),
                         OSY_OK);
        parts = rd_kafka_topic_partition_list_new(PARTITIONS);
        for (int i = 0; i < PARTITIONS; i++)
                rd_kafka_topic_partition_list_add(parts, TOPIC, i);
        assert_int_equal(
            rd_kafka_committed(osy_kafka_consumer_handle(c), parts, 5000), 0);
        int64_t sum = 0;
        for (int i = 0; i < PARTITIONS; i++)
                if (parts->elems[i].offset > 0)
                        sum += parts->elems[i].offset;
        rd_kafka_topic_partition_list_destroy(parts);
        assert_int_equal(sum, stored);
        osy_kafka_consumer_destroy(c);
}

/* ---- (b) a member killed mid-stream loses nothing ----------------------- */

#define CRASH_TOTAL 200
#define CRASH_PROCESSED 60  /* finished: recorded, then offset stored */
#define CRASH_UNFINISHED 20 /* polled, never finished, never stored */

static int append_line_synced(int fd, int id)
{
        char line[32];
        int n = snprintf(line, sizeof(line), "%d\n", id);
        return write(fd, line, (size_t)n) == n && fsync(fd) == 0 ? 0 : -1;
}

/*
 * The doomed member, in a child process: processes CRASH_PROCESSED
 * messages (records the id durably, then stores the offset), polls
 * CRASH_UNFINISHED more without finishing them, lets a commit happen (as
 * the auto-committer would at any moment), says so, and waits for SIGKILL.
 * Never returns.
 */
static void crashing_member(const char *dir)
{
        const char *const topics[] = {TOPIC, NULL};
        struct osy_kafka_opts opts = opts_for("doomed");
        osy_kafka_consumer_t *c;
        char path[600], errstr[OSY_ERRSTR_SIZE];
        int processed = 0, unfinished = 0, pfd, ufd;

        snprintf(path, sizeof(path), "%s/processed", dir);
        pfd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        snprintf(path, sizeof(path), "%s/unfinished", dir);
        ufd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (pfd < 0 || ufd < 0 ||
            osy_kafka_consumer_new(&c, &opts, "crash-group", topics, NULL,
                                   errstr, sizeof(errstr)))
                _exit(10);
        int64_t deadline = osy_test_now_ms() + 30000;
        while (unfinished < CRASH_UNFINISHED) {
                if (osy_test_now_ms() > deadline)
                        _exit(11);
                rd_kafka_message_t *m = osy_kafka_consumer_poll(c, 100);
                if (!m)
                        continue;
                int id = msg_id(m);
                if (id < 0)
                        _exit(12);
                if (processed < CRASH_PROCESSED) {
                        /* Finish the work durably, then mark it done. */
                        if (append_line_synced(pfd, id) ||
                            osy_kafka_consumer_store(c, m, errstr,
                                                     sizeof(errstr)))
                                _exit(13);
                        processed++;
                } else {
                        /* In flight when the process dies. */
                        if (append_line_synced(ufd, id))
                                _exit(14);
                        unfinished++;
                }
                rd_kafka_message_destroy(m);
        }
        if (osy_kafka_consumer_commit_sync(c, errstr, sizeof(errstr)))
                _exit(15);
        snprintf(path, sizeof(path), "%s/ready", dir);
        int rfd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (rfd < 0 || write(rfd, "1\n", 2) != 2)
                _exit(16);
        close(rfd);
        for (;;)
                pause(); /* keep polling nothing: SIGKILL comes */
}

/* Read a file of one id per line into @p set; @returns the line count. */
static int read_ids(const char *path, unsigned char *set)
{
        FILE *f = fopen(path, "r");
        char line[64];
        int n = 0;

        assert_non_null(f);
        while (fgets(line, sizeof(line), f)) {
                long id = strtol(line, NULL, 10);
                assert_true(id >= 0 && id < MAX_IDS);
                set[id] = 1;
                n++;
        }
        fclose(f);
        return n;
}

static void killed_member_loses_nothing_unfinished(void **state)
{
        const char *const topics[]       = {TOPIC, NULL};
        struct osy_kafka_opts opts       = opts_for("survivor");
        unsigned char processed[MAX_IDS] = {0}, unfinished[MAX_IDS] = {0};
        unsigned char seen[MAX_IDS] = {0};
        char path[600], errstr[OSY_ERRSTR_SIZE];
        struct delivery d;
        osy_kafka_consumer_t *c;
        int status;
        (void)state;

        produce_ids(0, CRASH_TOTAL, &d);
        /* No librdkafka thread is alive here, so forking is safe. */
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
                crashing_member(kafka.dir);

        snprintf(path, sizeof(path), "%s/ready", kafka.dir);
        int64_t deadline = osy_test_now_ms() + 30000;
        while (access(path, F_OK) != 0 && osy_test_now_ms() < deadline) {
                if (waitpid(pid, &status, WNOHANG) == pid)
                        fail_msg("doomed member exited early: status %d",
                                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
                osy_test_sleep_ms(20);
        }
        kill(pid, SIGKILL);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_int_equal(access(path, F_OK), 0);

        snprintf(path, sizeof(path), "%s/processed", kafka.dir);
        assert_int_equal(read_ids(path, processed), CRASH_PROCESSED);
        snprintf(path, sizeof(path), "%s/unfinished", kafka.dir);
        assert_int_equal(read_ids(path, unfinished), CRASH_UNFINISHED);

        /* A new member of the same group takes over. */
        int want = 0, got = 0, replayed_processed = 0;
        for (int id = 0; id < CRASH_TOTAL; id++)
                want += !processed[id];
        assert_int_equal(osy_kafka_consumer_new(&c, &opts, "crash-group",
                                                topics, NULL, errstr,
                                                sizeof(errstr)),
                         OSY_OK);
        deadline = osy_test_now_ms() + 30000;
        while (got < want && osy_test_now_ms() < deadline) {
                rd_kafka_message_t *m = osy_kafka_consumer_poll(c, 100);
                if (!m)
                        continue;
                int id = msg_id(m);
                assert_true(id >= 0 && id < CRASH_TOTAL);
                if (processed[id])
                        replayed_processed++;
                else if (!seen[id])
                        got++;
                seen[id] = 1;
                assert_int_equal(
                    osy_kafka_consumer_store(c, m, errstr, sizeof(errstr)),
                    OSY_OK);
                rd_kafka_message_destroy(m);
        }
        /* Nothing lost: every id not durably processed came again,
         * including the ones the dead member had polled but not
         * finished. */
        for (int id = 0; id < CRASH_TOTAL; id++)
                if (!processed[id] && !seen[id])
                        fail_msg("id %d lost (unfinished by the dead member: "
                                 "%d)",
                                 id, unfinished[id]);
        for (int id = 0; id < CRASH_TOTAL; id++)
                if (unfinished[id])
                        assert_true(seen[id]);
        /* The stored offsets were committed: the survivor resumed right
         * after the processed messages instead of replaying them. */
        assert_int_equal(replayed_processed, 0);
        assert_int_equal(osy_kafka_consumer_close(c, errstr, sizeof(errstr)),
                         OSY_OK);
        osy_kafka_consumer_destroy(c);
}

/* ---- (c) cooperative-sticky hand-over ----------------------------------- */

#define BATCH 60

struct member {
        const char *name;
        osy_kafka_consumer_t *c;
        int owned[PARTITIONS]; /* current assignment, per hooks */
        int assign_calls;
        int assigned_total;      /* partitions ever given */
        int revoked[PARTITIONS]; /* partitions ever taken */
        int revoked_total;
        int64_t last_done[PARTITIONS]; /* offset of the last processed msg */
        int revoke_store_ok;
        int revoke_store_failed;
        int processed;
        unsigned char *done_by; /* shared: bit per member */
        unsigned char bit;
};

static void on_assign(void *opaque, const rd_kafka_topic_partition_list_t *l)
{
        struct member *mb = opaque;

        mb->assign_calls++;
        for (int i = 0; i < l->cnt; i++) {
                assert_string_equal(l->elems[i].topic, TOPIC);
                mb->owned[l->elems[i].partition] = 1;
                mb->assigned_total++;
        }
}

/* Runs before the partitions are given up: storing the offset of work
 * already finished on them must still succeed. */
static void on_revoke(void *opaque, const rd_kafka_topic_partition_list_t *l)
{
        struct member *mb = opaque;
        char errstr[OSY_ERRSTR_SIZE];

        for (int i = 0; i < l->cnt; i++) {
                int32_t p    = l->elems[i].partition;
                mb->owned[p] = 0;
                mb->revoked[p]++;
                mb->revoked_total++;
                if (mb->last_done[p] < 0)
                        continue;
                if (osy_kafka_consumer_store_offset(mb->c, TOPIC, p,
                                                    mb->last_done[p], errstr,
                                                    sizeof(errstr)) == OSY_OK)
                        mb->revoke_store_ok++;
                else
                        mb->revoke_store_failed++;
        }
}

static void member_start(struct member *mb, const char *name, int bit,
                         unsigned char *done_by)
{
        const char *const topics[]            = {TOPIC, NULL};
        struct osy_kafka_opts opts            = opts_for(name);
        struct osy_kafka_consumer_hooks hooks = {on_assign, on_revoke, mb};
        char errstr[OSY_ERRSTR_SIZE];

        memset(mb, 0, sizeof(*mb));
        mb->name    = name;
        mb->bit     = (unsigned char)bit;
        mb->done_by = done_by;
        for (int i = 0; i < PARTITIONS; i++)
                mb->last_done[i] = -1;
        assert_int_equal(osy_kafka_consumer_new(&mb->c, &opts, "coop-group",
                                                topics, &hooks, errstr,
                                                sizeof(errstr)),
                         OSY_OK);
}

/* One poll: process (record) the message, then store its offset. */
static void member_step(struct member *mb, int timeout_ms)
{
        char errstr[OSY_ERRSTR_SIZE];
        rd_kafka_message_t *m = osy_kafka_consumer_poll(mb->c, timeout_ms);

        if (!m)
                return;
        int id = msg_id(m);
        assert_true(id >= 0 && id < 2 * BATCH);
        mb->done_by[id] |= mb->bit;
        mb->processed++;
        mb->last_done[m->partition] = m->offset;
        assert_int_equal(
            osy_kafka_consumer_store(mb->c, m, errstr, sizeof(errstr)), OSY_OK);
        rd_kafka_message_destroy(m);
}

static int count_done(const unsigned char *done_by, int n)
{
        int c = 0;
        for (int i = 0; i < n; i++)
                c += done_by[i] != 0;
        return c;
}

static int owned_cnt(const struct member *mb)
{
        int c = 0;
        for (int i = 0; i < PARTITIONS; i++)
                c += mb->owned[i];
        return c;
}

static void cooperative_rebalance_hands_over_incrementally(void **state)
{
        unsigned char done_by[2 * BATCH] = {0};
        struct member a, b;
        struct delivery d;
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        produce_ids(0, BATCH, &d);
        member_start(&a, "member-a", 1, done_by);
        int64_t deadline = osy_test_now_ms() + 20000;
        while (count_done(done_by, BATCH) < BATCH &&
               osy_test_now_ms() < deadline)
                member_step(&a, 100);
        assert_int_equal(count_done(done_by, BATCH), BATCH);
        assert_int_equal(owned_cnt(&a), PARTITIONS);
        assert_int_equal(a.assign_calls, 1);

        /* B joins: A must give up some partitions, and only those. */
        member_start(&b, "member-b", 2, done_by);
        deadline = osy_test_now_ms() + 30000;
        while ((owned_cnt(&b) == 0 ||
                owned_cnt(&a) + owned_cnt(&b) != PARTITIONS) &&
               osy_test_now_ms() < deadline) {
                member_step(&a, 50);
                member_step(&b, 50);
        }
        assert_true(owned_cnt(&b) > 0);
        assert_int_equal(owned_cnt(&a) + owned_cnt(&b), PARTITIONS);
        assert_true(a.revoked_total > 0);
        assert_true(a.revoked_total < PARTITIONS); /* incremental */
        assert_int_equal(a.assign_calls, 1); /* kept the rest, no re-assign */
        for (int p = 0; p < PARTITIONS; p++) {
                assert_false(a.owned[p] && b.owned[p]);
                /* Sticky: B got exactly what A gave up. */
                assert_int_equal(b.owned[p], a.revoked[p] > 0);
        }
        /* The revoke hook ran while A still owned the partitions. */
        assert_true(a.revoke_store_ok > 0);
        assert_int_equal(a.revoke_store_failed, 0);
        /* Afterwards the same store is refused, distinctly. */
        for (int p = 0; p < PARTITIONS; p++)
                if (a.revoked[p] && a.last_done[p] >= 0) {
                        assert_int_equal(osy_kafka_consumer_store_offset(
                                             a.c, TOPIC, p, a.last_done[p],
                                             errstr, sizeof(errstr)),
                                         OSY_ERR_NOT_FOUND);
                        break;
                }

        /* New traffic is shared, and all of it is processed. */
        int a_before = a.processed, b_before = b.processed;
        produce_ids(BATCH, BATCH, &d);
        deadline = osy_test_now_ms() + 20000;
        while (count_done(done_by, 2 * BATCH) < 2 * BATCH &&
               osy_test_now_ms() < deadline) {
                member_step(&a, 50);
                member_step(&b, 50);
        }
        assert_int_equal(count_done(done_by, 2 * BATCH), 2 * BATCH);
        assert_true(a.processed > a_before);
        assert_true(b.processed > b_before);
        /* Every second-batch message was handled by exactly the member
         * that owns its partition now. */
        for (int id = BATCH; id < 2 * BATCH; id++)
                assert_true(done_by[id] == 1 || done_by[id] == 2);

        assert_int_equal(osy_kafka_consumer_close(b.c, errstr, sizeof(errstr)),
                         OSY_OK);
        /* Closing runs the revoke hook for everything B owned. */
        assert_int_equal(owned_cnt(&b), 0);
        osy_kafka_consumer_destroy(b.c);
        assert_int_equal(osy_kafka_consumer_close(a.c, errstr, sizeof(errstr)),
                         OSY_OK);
        osy_kafka_consumer_destroy(a.c);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(all_keyed_messages_delivered_and_consumed,
                                    setup, teardown),
    cmocka_unit_test_setup_teardown(close_commits_stored_offsets, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(killed_member_loses_nothing_unfinished,
                                    setup, teardown),
    cmocka_unit_test_setup_teardown(
        cooperative_rebalance_hands_over_incrementally, setup, teardown),
};

OSY_TEST_MAIN(tests, NULL, NULL)
