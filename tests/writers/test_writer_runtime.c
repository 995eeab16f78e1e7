/*
 * test_writer_runtime.c - the writers' shared runtime without Kafka or
 * Redis: offset tracking, coalescing (newest wins), the retry schedule,
 * dead letters with every attempt's error, deferral, resent deliveries.
 */
#include "osy_test.h"
#include "optsync/writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- offsets ------------------------------------------------------------- */

static void offsets_store_below_oldest_unfinished(void **state)
{
        osy_offsets_t *o = osy_offsets_new();
        (void)state;
        assert_non_null(o);
        assert_int_equal(osy_offsets_committable(o, 0), -1);
        for (int64_t off = 10; off < 15; off++)
                assert_int_equal(osy_offsets_track(o, 0, off), OSY_OK);
        /* 11 and 12 finish first: 10 still holds everything back. */
        osy_offsets_done(o, 0, 11);
        osy_offsets_done(o, 0, 12);
        assert_int_equal(osy_offsets_committable(o, 0), 9);
        osy_offsets_done(o, 0, 10);
        assert_int_equal(osy_offsets_committable(o, 0), 12);
        assert_int_equal(osy_offsets_outstanding(o, 0), 2);
        osy_offsets_done(o, 0, 14);
        assert_int_equal(osy_offsets_committable(o, 0), 12);
        osy_offsets_done(o, 0, 13);
        assert_int_equal(osy_offsets_committable(o, 0), 14);
        assert_int_equal(osy_offsets_outstanding(o, 0), 0);
        /* Another partition is independent. */
        assert_int_equal(osy_offsets_committable(o, 3), -1);
        osy_offsets_destroy(o);
}

static void offsets_first_message_unfinished_is_not_committable(void **state)
{
        osy_offsets_t *o = osy_offsets_new();
        (void)state;
        assert_int_equal(osy_offsets_track(o, 1, 0), OSY_OK);
        assert_int_equal(osy_offsets_committable(o, 1), -1);
        osy_offsets_done(o, 1, 0);
        assert_int_equal(osy_offsets_committable(o, 1), 0);
        osy_offsets_destroy(o);
}

static void offsets_seek_back_and_forget(void **state)
{
        osy_offsets_t *o = osy_offsets_new();
        (void)state;
        assert_int_equal(osy_offsets_track(o, 0, 100), OSY_OK);
        osy_offsets_done(o, 0, 100);
        assert_int_equal(osy_offsets_committable(o, 0), 100);
        /* A redelivered older offset pulls the store point back. */
        assert_int_equal(osy_offsets_track(o, 0, 50), OSY_OK);
        assert_int_equal(osy_offsets_committable(o, 0), 49);
        osy_offsets_done(o, 0, 50);
        assert_int_equal(osy_offsets_committable(o, 0), 50);
        osy_offsets_forget(o, 0);
        assert_int_equal(osy_offsets_committable(o, 0), -1);
        osy_offsets_destroy(o);
}

static void offsets_many_in_order(void **state)
{
        osy_offsets_t *o = osy_offsets_new();
        (void)state;
        for (int64_t i = 0; i < 5000; i++)
                assert_int_equal(osy_offsets_track(o, 0, i), OSY_OK);
        for (int64_t i = 0; i < 5000; i += 2)
                osy_offsets_done(o, 0, i);
        assert_int_equal(osy_offsets_committable(o, 0), 0);
        for (int64_t i = 1; i < 4000; i += 2)
                osy_offsets_done(o, 0, i);
        assert_int_equal(osy_offsets_committable(o, 0), 4000);
        assert_int_equal(osy_offsets_outstanding(o, 0), 500);
        osy_offsets_destroy(o);
}

/* ---- history ------------------------------------------------------------- */

static void history_folds_repeats_and_keeps_ends(void **state)
{
        struct osy_writer_history h;
        char buf[1024];
        (void)state;
        memset(&h, 0, sizeof(h));
        osy_writer_history_add(&h, 1, "timeout");
        osy_writer_history_add(&h, 2, "HTTP 503");
        osy_writer_history_add(&h, 3, "HTTP 503");
        osy_writer_history_add(&h, 4, "HTTP 503");
        osy_writer_history_add(&h, 5, "UNABLE_TO_LOCK_ROW");
        osy_writer_history_format(&h, buf, sizeof(buf));
        assert_string_equal(buf,
                            "1) timeout; 2-4) HTTP 503; 5) UNABLE_TO_LOCK_ROW");

        memset(&h, 0, sizeof(h));
        for (int i = 1; i <= 20; i++) {
                char e[32];
                snprintf(e, sizeof(e), "error %d", i);
                osy_writer_history_add(&h, i, e);
        }
        osy_writer_history_format(&h, buf, sizeof(buf));
        /* The first three and the latest stay; the middle is counted. */
        assert_non_null(strstr(buf, "1) error 1; 2) error 2; 3) error 3; "
                                    "(8 more); 12) error 12"));
        assert_non_null(strstr(buf, "20) error 20"));
        osy_writer_history_format(&h, buf, 16);
        assert_int_equal(strlen(buf), 15);
}

/* ---- the runtime with a scripted handler --------------------------------- */

#define MAX_EMITTED 256

struct emitted {
        char topic[64];
        char *value;
};

struct fixture {
        osy_writer_t *w;
        struct emitted out[MAX_EMITTED];
        int n_out;
        int fail_next_emits; /* deliveries to fail */
        /* handler script */
        osy_writer_verdict_t verdict[16]; /* per call */
        int n_verdicts;
        int calls;
        int64_t defer_until;
        int64_t retry_after;         /* hint given with RETRY */
        char seen[64][OSY_ID_BUFSZ]; /* command ids handed to process() */
        int n_seen;
        size_t batch_sizes[64];
        char batch_tenant[64][16];
};

static osy_err_t fake_emit(void *opaque, const char *topic, const void *key,
                           size_t keylen, const void *value, size_t len,
                           osy_kafka_dr_cb *cb, void *cb_opaque)
{
        struct fixture *f = opaque;
        (void)key;
        (void)keylen;
        if (f->n_out < MAX_EMITTED) {
                struct emitted *e = &f->out[f->n_out++];
                snprintf(e->topic, sizeof(e->topic), "%s", topic);
                e->value = strndup(value, len);
        }
        if (f->fail_next_emits > 0) {
                f->fail_next_emits--;
                cb(cb_opaque, OSY_ERR_TRANSIENT, "broker down", -1, -1);
        } else
                cb(cb_opaque, OSY_OK, "", 0, f->n_out);
        return OSY_OK;
}

static osy_err_t scripted_process(void *opaque,
                                  struct osy_writer_item *const *items,
                                  size_t n, int64_t now_ms)
{
        struct fixture *f      = opaque;
        osy_writer_verdict_t v = f->calls < f->n_verdicts ? f->verdict[f->calls]
                                                          : OSY_WRITER_APPLIED;
        (void)now_ms;
        if (f->calls < 64) {
                f->batch_sizes[f->calls] = n;
                snprintf(f->batch_tenant[f->calls], 16, "%s", items[0]->tenant);
        }
        f->calls++;
        for (size_t i = 0; i < n; i++) {
                if (f->n_seen < 64)
                        memcpy(f->seen[f->n_seen++], items[i]->cmd.id,
                               OSY_ID_BUFSZ);
                items[i]->verdict = v;
                items[i]->err     = v == OSY_WRITER_RETRY ? OSY_ERR_TRANSIENT
                                                          : OSY_ERR_PERMANENT;
                items[i]->defer_until_ms = f->defer_until;
                items[i]->retry_after_ms = f->retry_after;
                snprintf(items[i]->text, sizeof(items[i]->text),
                         "attempt %d of %s", items[i]->attempts + 1,
                         items[i]->email);
        }
        return OSY_OK;
}

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        struct osy_writer_opts o;
        char errstr[OSY_ERRSTR_SIZE];

        memset(&o, 0, sizeof(o));
        o.stage                    = OSY_STAGE_SF_WRITER;
        o.source                   = OSY_SRC_SF_WRITER;
        o.cmd_type                 = OSY_MSG_SF_COMMAND;
        o.name                     = "sf-writer";
        o.audit_topic              = "optsync.audit";
        o.dlq_topic                = "optsync.dlq";
        o.emit                     = fake_emit;
        o.emit_opaque              = f;
        o.retry.base_ms            = 100;
        o.retry.max_delay_ms       = 1000;
        o.retry.max_attempts       = 3;
        o.retry.max_age_ms         = 3600 * 1000;
        o.retry.retry_after_cap_ms = 5000;
        o.batch_max                = 10;
        o.linger_ms                = 50;
        o.handler.process          = scripted_process;
        o.handler.opaque           = f;
        assert_int_equal(osy_writer_new(&f->w, &o, errstr, sizeof(errstr)),
                         OSY_OK);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        osy_writer_destroy(f->w);
        for (int i = 0; i < f->n_out; i++)
                free(f->out[i].value);
        free(f);
        return 0;
}

/* Encodes an sf.command for (tenant, email) with version (ms, tie). */
static char *command(const char *tenant, const char *email, int opt_out,
                     int64_t ms, const char *tie)
{
        struct osy_msg m;
        char errstr[OSY_ERRSTR_SIZE], *json = NULL;
        size_t len;

        osy_msg_init(&m, OSY_MSG_SF_COMMAND);
        assert_int_equal(osy_msg_set_envelope(&m, tenant, email, OSY_SRC_RULES,
                                              ms, errstr, sizeof(errstr)),
                         OSY_OK);
        m.sf_command.has_opted_out_of_email = opt_out;
        m.sf_command.rule = opt_out ? OSY_RULE_R2 : OSY_RULE_R1;
        snprintf(m.sf_command.cause_event_id, OSY_ID_BUFSZ, "%032llx",
                 (unsigned long long)ms);
        m.sf_command.version.ms = ms;
        assert_int_equal(osy_msg_strset(&m.sf_command.version.tie, tie),
                         OSY_OK);
        assert_int_equal(
            osy_msg_encode(&m, &json, &len, errstr, sizeof(errstr)), OSY_OK);
        osy_msg_clear(&m);
        return json;
}

static void feed(struct fixture *f, int32_t part, int64_t off, char *json,
                 int64_t now)
{
        assert_int_equal(osy_writer_feed(f->w, "optsync.sf.commands", part, off,
                                         "k", 1, json, strlen(json), now),
                         OSY_OK);
        free(json);
}

static int count_topic(const struct fixture *f, const char *topic,
                       const char *needle)
{
        int n = 0;
        for (int i = 0; i < f->n_out; i++)
                if (!strcmp(f->out[i].topic, topic) &&
                    (!needle || strstr(f->out[i].value, needle)))
                        n++;
        return n;
}

static const char *last_on(const struct fixture *f, const char *topic)
{
        for (int i = f->n_out - 1; i >= 0; i--)
                if (!strcmp(f->out[i].topic, topic))
                        return f->out[i].value;
        return NULL;
}

static void undecodable_record_goes_to_dlq(void **state)
{
        struct fixture *f = *state;
        const char *junk  = "{\"v\":1,\"type\":\"sf.command\",oops";
        assert_int_equal(osy_writer_feed(f->w, "optsync.sf.commands", 0, 7,
                                         NULL, 0, junk, strlen(junk), 1000),
                         OSY_OK);
        assert_int_equal(count_topic(f, "optsync.dlq", "invalid message"), 1);
        /* Finished at once: its offset may be stored. */
        assert_int_equal(osy_writer_committable(f->w, 0), 7);
        assert_int_equal(f->calls, 0);
}

static void wrong_type_goes_to_dlq(void **state)
{
        struct fixture *f = *state;
        struct osy_msg m;
        char errstr[OSY_ERRSTR_SIZE], *json = NULL;
        size_t len;

        osy_msg_init(&m, OSY_MSG_AC_COMMAND);
        assert_int_equal(osy_msg_set_envelope(&m, "acme", "a@x.com",
                                              OSY_SRC_RULES, 1000, errstr,
                                              sizeof(errstr)),
                         OSY_OK);
        m.ac_command.action = OSY_AC_UNSUBSCRIBE_ALL_LISTS;
        m.ac_command.rule   = OSY_RULE_R4;
        memset(m.ac_command.cause_event_id, 'a', OSY_ID_LEN);
        m.ac_command.version.ms = 1000;
        assert_int_equal(osy_msg_strset(&m.ac_command.version.tie, "t"),
                         OSY_OK);
        assert_int_equal(
            osy_msg_encode(&m, &json, &len, errstr, sizeof(errstr)), OSY_OK);
        osy_msg_clear(&m);
        feed(f, 0, 3, json, 1000);
        assert_int_equal(count_topic(f, "optsync.dlq", "ac.command on the"), 1);
        assert_int_equal(osy_writer_committable(f->w, 0), 3);
}

static void newest_command_wins_per_person(void **state)
{
        struct fixture *f = *state;
        char *newer       = command("acme", "a@x.com", 0, 2000, "b");
        char newer_id[OSY_ID_BUFSZ];
        struct osy_msg m;
        char errstr[OSY_ERRSTR_SIZE];

        assert_int_equal(
            osy_msg_decode(newer, strlen(newer), &m, errstr, sizeof(errstr)),
            OSY_OK);
        memcpy(newer_id, m.id, OSY_ID_BUFSZ);
        osy_msg_clear(&m);
        feed(f, 0, 0, command("acme", "a@x.com", 1, 1000, "a"), 1000);
        feed(f, 0, 1, newer, 1000);
        /* An older version arriving after the newer loses too. */
        feed(f, 0, 2, command("acme", "a@x.com", 1, 1500, "c"), 1000);
        assert_int_equal(count_topic(f, "optsync.audit", "\"coalesced\""), 2);
        assert_int_equal(osy_writer_step(f->w, 2000, 0), OSY_OK);
        assert_int_equal(f->calls, 1);
        assert_int_equal(f->n_seen, 1);
        assert_string_equal(f->seen[0], newer_id);
        assert_int_equal(osy_writer_committable(f->w, 0), 2);
}

static void linger_waits_for_more_commands(void **state)
{
        struct fixture *f = *state;
        feed(f, 0, 0, command("acme", "a@x.com", 1, 1000, "a"), 1000);
        assert_int_equal(osy_writer_next_wait(f->w, 1000, 500), 50);
        assert_int_equal(osy_writer_step(f->w, 1020, 0), OSY_OK);
        assert_int_equal(f->calls, 0);
        feed(f, 0, 1, command("acme", "b@x.com", 1, 1000, "a"), 1030);
        assert_int_equal(osy_writer_step(f->w, 1050, 0), OSY_OK);
        assert_int_equal(f->calls, 1);
        assert_int_equal(f->batch_sizes[0], 2);
}

static void linger_extends_while_commands_arrive(void **state)
{
        struct fixture *f = *state;
        char email[32];
        /* A backlog fetched bit by bit: one batch, not one per bit. */
        for (int i = 0; i < 8; i++) {
                snprintf(email, sizeof(email), "p%d@x.com", i);
                feed(f, 0, i, command("acme", email, 1, 1000, "a"),
                     1000 + i * 10);
                assert_int_equal(osy_writer_step(f->w, 1005 + i * 10, 0),
                                 OSY_OK);
        }
        assert_int_equal(f->calls, 0);
        /* Quiet for a quarter of LINGER (12 ms) after the last one. */
        assert_int_equal(osy_writer_step(f->w, 1080, 0), OSY_OK);
        assert_int_equal(f->calls, 0);
        assert_int_equal(osy_writer_next_wait(f->w, 1080, 500), 2);
        assert_int_equal(osy_writer_step(f->w, 1082, 0), OSY_OK);
        assert_int_equal(f->calls, 1);
        assert_int_equal(f->batch_sizes[0], 8);
}

static void lingering_is_capped(void **state)
{
        struct fixture *f = *state;
        char email[32];
        /* A steady stream: the batch goes at 4 x LINGER anyway. */
        for (int i = 0; i < 8; i++) {
                snprintf(email, sizeof(email), "p%d@x.com", i);
                feed(f, 0, i, command("acme", email, 1, 1000, "a"),
                     1000 + i * 30);
                assert_int_equal(osy_writer_step(f->w, 1000 + i * 30, 0),
                                 OSY_OK);
                assert_int_equal(f->calls, i < 7 ? 0 : 1);
        }
        assert_int_equal(f->batch_sizes[0], 8);
}

static void full_batch_does_not_linger(void **state)
{
        struct fixture *f = *state;
        for (int i = 0; i < 25; i++) {
                char email[32];
                snprintf(email, sizeof(email), "p%d@x.com", i);
                feed(f, 0, i, command("acme", email, 1, 1000, "a"), 1000);
        }
        assert_int_equal(osy_writer_next_wait(f->w, 1000, 500), 0);
        assert_int_equal(osy_writer_step(f->w, 1000, 0), OSY_OK);
        /* Two full batches of 10 go at once; the last 5 linger. */
        assert_int_equal(f->calls, 2);
        assert_int_equal(f->batch_sizes[0], 10);
        assert_int_equal(f->batch_sizes[1], 10);
        assert_int_equal(osy_writer_step(f->w, 1050, 0), OSY_OK);
        assert_int_equal(f->calls, 3);
        assert_int_equal(f->batch_sizes[2], 5);
        assert_int_equal(osy_writer_committable(f->w, 0), 24);
}

static void batches_hold_one_tenant(void **state)
{
        struct fixture *f = *state;
        feed(f, 0, 0, command("acme", "a@x.com", 1, 1000, "a"), 1000);
        feed(f, 1, 0, command("globex", "a@x.com", 1, 1000, "a"), 1000);
        feed(f, 0, 1, command("acme", "b@x.com", 1, 1000, "a"), 1000);
        assert_int_equal(osy_writer_step(f->w, 2000, 0), OSY_OK);
        assert_int_equal(f->calls, 2);
        assert_string_equal(f->batch_tenant[0], "acme");
        assert_int_equal(f->batch_sizes[0], 2);
        assert_string_equal(f->batch_tenant[1], "globex");
        assert_int_equal(f->batch_sizes[1], 1);
}

static void failing_command_does_not_block_the_next(void **state)
{
        struct fixture *f = *state;
        struct osy_writer_stats st;

        f->verdict[0]  = OSY_WRITER_RETRY;
        f->n_verdicts  = 1;
        f->retry_after = 500; /* longer than any jitter: deterministic */
        feed(f, 0, 0, command("acme", "a@x.com", 1, 1000, "a"), 1000);
        assert_int_equal(osy_writer_step(f->w, 2000, 0), OSY_OK);
        assert_int_equal(f->calls, 1);
        /* A later command is written while the first waits. */
        feed(f, 0, 1, command("acme", "b@x.com", 1, 1000, "a"), 2000);
        assert_int_equal(osy_writer_step(f->w, 2060, 0), OSY_OK);
        osy_writer_get_stats(f->w, &st);
        assert_int_equal(f->calls, 2);
        assert_int_equal(f->batch_sizes[1], 1);
        assert_int_equal(st.applied, 1);
        assert_int_equal(st.retries, 1);
        /* ... but its offset cannot be stored past the failing one. */
        assert_int_equal(osy_writer_committable(f->w, 0), -1);
        assert_int_equal(osy_writer_next_wait(f->w, 2060, 5000), 440);
        assert_int_equal(osy_writer_step(f->w, 2600, 1), OSY_OK);
        osy_writer_get_stats(f->w, &st);
        assert_int_equal(st.applied, 2);
        assert_int_equal(osy_writer_committable(f->w, 0), 1);
}

static void retries_exhausted_go_to_dlq_with_every_error(void **state)
{
        struct fixture *f = *state;
        int64_t now       = 1000;
        const char *dlq;

        for (int i = 0; i < 3; i++)
                f->verdict[i] = OSY_WRITER_RETRY;
        f->n_verdicts = 3;
        feed(f, 0, 5, command("acme", "a@x.com", 1, 1000, "a"), now);
        for (int i = 0; i < 3; i++) {
                now += 2000;
                assert_int_equal(osy_writer_step(f->w, now, 1), OSY_OK);
        }
        assert_int_equal(f->calls, 3);
        dlq = last_on(f, "optsync.dlq");
        assert_non_null(dlq);
        assert_non_null(strstr(dlq, "\"reason\":\"retries exhausted\""));
        assert_non_null(strstr(dlq, "\"attempts\":3"));
        assert_non_null(strstr(dlq, "\"first_error\":\"attempt 1 of"));
        assert_non_null(strstr(dlq, "1) attempt 1 of a@x.com; 2) attempt 2"));
        assert_non_null(strstr(dlq, "3) attempt 3"));
        assert_int_equal(count_topic(f, "optsync.audit", "dead_lettered"), 1);
        assert_int_equal(osy_writer_committable(f->w, 0), 5);
}

static void permanent_failure_goes_to_dlq_at_once(void **state)
{
        struct fixture *f = *state;
        f->verdict[0]     = OSY_WRITER_FAILED;
        f->n_verdicts     = 1;
        feed(f, 2, 9, command("acme", "a@x.com", 1, 1000, "a"), 1000);
        assert_int_equal(osy_writer_step(f->w, 2000, 0), OSY_OK);
        assert_int_equal(count_topic(f, "optsync.dlq", "permanent error"), 1);
        assert_int_equal(count_topic(f, "optsync.dlq", "\"partition\":2"), 1);
        assert_int_equal(osy_writer_committable(f->w, 2), 9);
}

static void deferral_counts_no_attempt(void **state)
{
        struct fixture *f = *state;
        struct osy_writer_stats st;

        for (int i = 0; i < 10; i++)
                f->verdict[i] = OSY_WRITER_DEFER;
        f->n_verdicts  = 10;
        f->defer_until = 60000;
        feed(f, 0, 0, command("acme", "a@x.com", 1, 1000, "a"), 1000);
        assert_int_equal(osy_writer_step(f->w, 2000, 0), OSY_OK);
        assert_int_equal(f->calls, 1);
        /* Nothing due before the deferral ends: no hot loop. */
        assert_int_equal(osy_writer_next_wait(f->w, 2000, 100000), 58000);
        assert_int_equal(osy_writer_step(f->w, 30000, 1), OSY_OK);
        assert_int_equal(f->calls, 1);
        for (int64_t t = 60000; t < 60000 + 9 * 1000; t += 1000) {
                f->defer_until = t + 1000;
                assert_int_equal(osy_writer_step(f->w, t, 1), OSY_OK);
        }
        osy_writer_get_stats(f->w, &st);
        /* Ten deferrals, more than max_attempts: still not dead. */
        assert_int_equal(f->calls, 10);
        assert_int_equal(st.dead_letters, 0);
        assert_int_equal(st.retries, 0);
        assert_int_equal(osy_writer_step(f->w, 80000, 1), OSY_OK);
        osy_writer_get_stats(f->w, &st);
        assert_int_equal(st.applied, 1);
}

static void failed_delivery_is_resent_and_holds_the_offset(void **state)
{
        struct fixture *f = *state;
        const char *junk  = "not json";

        f->fail_next_emits = 1;
        assert_int_equal(osy_writer_feed(f->w, "optsync.sf.commands", 0, 0,
                                         NULL, 0, junk, strlen(junk), 1000),
                         OSY_OK);
        /* The DLQ record was not delivered: the offset stays. */
        assert_int_equal(osy_writer_committable(f->w, 0), -1);
        assert_int_equal(osy_writer_step(f->w, 1500, 0), OSY_OK);
        assert_int_equal(osy_writer_committable(f->w, 0), -1);
        assert_int_equal(osy_writer_step(f->w, 3000, 0), OSY_OK);
        assert_int_equal(count_topic(f, "optsync.dlq", NULL), 2);
        assert_int_equal(osy_writer_committable(f->w, 0), 0);
}

static void skipped_is_audited_with_its_reason(void **state)
{
        struct fixture *f = *state;
        f->verdict[0]     = OSY_WRITER_SKIPPED;
        f->n_verdicts     = 1;
        feed(f, 0, 0, command("acme", "a@x.com", 1, 1000, "a"), 1000);
        assert_int_equal(osy_writer_step(f->w, 2000, 0), OSY_OK);
        assert_int_equal(
            count_topic(f, "optsync.audit", "\"outcome\":\"skipped\""), 1);
        assert_int_equal(count_topic(f, "optsync.audit", "attempt 1 of"), 1);
        assert_int_equal(osy_writer_committable(f->w, 0), 0);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(offsets_store_below_oldest_unfinished),
            cmocka_unit_test(
                offsets_first_message_unfinished_is_not_committable),
            cmocka_unit_test(offsets_seek_back_and_forget),
            cmocka_unit_test(offsets_many_in_order),
            cmocka_unit_test(history_folds_repeats_and_keeps_ends),
            cmocka_unit_test_setup_teardown(undecodable_record_goes_to_dlq,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(wrong_type_goes_to_dlq, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(newest_command_wins_per_person,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(linger_waits_for_more_commands,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                linger_extends_while_commands_arrive, setup, teardown),
            cmocka_unit_test_setup_teardown(lingering_is_capped, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(full_batch_does_not_linger, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(batches_hold_one_tenant, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(
                failing_command_does_not_block_the_next, setup, teardown),
            cmocka_unit_test_setup_teardown(
                retries_exhausted_go_to_dlq_with_every_error, setup, teardown),
            cmocka_unit_test_setup_teardown(
                permanent_failure_goes_to_dlq_at_once, setup, teardown),
            cmocka_unit_test_setup_teardown(deferral_counts_no_attempt, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(
                failed_delivery_is_resent_and_holds_the_offset, setup,
                teardown),
            cmocka_unit_test_setup_teardown(skipped_is_audited_with_its_reason,
                                            setup, teardown),
        };
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
