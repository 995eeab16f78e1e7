/*
 * test_sbx_cometd.c - Change Data Capture over the simulated CometD
 * endpoint through real HTTP: handshake, cookie, subscribe with replay,
 * long-poll connect, event shapes (echo origin, merged record ids, lead
 * conversion, gaps), retention, stalls and the documented errors.
 */
#include "test_sbx_sf.h"

#include <pthread.h>

#define C1 "003SB0000000001YAA"
#define C2 "003SB0000000002YAA"
#define L3 "00QSB00000000032AA"

#define FX                                                                     \
        "{\"contacts\":[{\"Email\":\"a@example.com\",\"LastName\":\"A\"},"     \
        "{\"Email\":\"b@example.com\",\"LastName\":\"B\"}],"                   \
        "\"leads\":[{\"Email\":\"lead@example.com\",\"LastName\":\"L\","       \
        "\"Company\":\"Acme\",\"HasOptedOutOfEmail\":true}]}"

#define REPLAY_ERR_FMT                                                         \
        "400::The replayId {%s} you provided was invalid.  Please provide a "  \
        "valid ID, -2 to replay all events, or -1 to replay only new events."

static struct osy_test_sandbox sb;
static char *auth;
static char cookie[160]; /* "Cookie: BAYEUX_BROWSER=..." or "" */

static int setup_with(const char *fx, const char *timeout)
{
        char opt[64];
        const char *args[] = {"--set", opt, NULL};

        snprintf(opt, sizeof(opt), "sf.cometd_timeout_ms=%s", timeout);
        sf_start(&sb, fx, args);
        auth      = sf_auth(&sb);
        cookie[0] = '\0';
        return 0;
}

static int setup(void **state)
{
        (void)state;
        return setup_with(FX, "1000");
}

static int setup_slow(void **state)
{
        (void)state;
        return setup_with(FX, "5000");
}

static int setup_one_client(void **state)
{
        (void)state;
        return setup_with("{\"cometd_max_clients\":1}", "1000");
}

static int teardown(void **state)
{
        (void)state;
        free(auth);
        auth = NULL;
        osy_test_sandbox_stop(&sb);
        return 0;
}

/* POST Bayeux messages with the session and the cookie (if any). */
static void bayeux(const char *json, struct sfr *r)
{
        const char *h[] = {auth, "Content-Type: application/json",
                           cookie[0] ? cookie : NULL, NULL};

        sf_call(&sb, "POST", SF_COMETD, h, json, r);
}

static const cJSON *msg(const struct sfr *r, const char *channel)
{
        const cJSON *m;

        cJSON_ArrayForEach(m, r->json)
        {
                if (!strcmp(sf_str(m, "channel") ? sf_str(m, "channel") : "",
                            channel))
                        return m;
        }
        return NULL;
}

static int successful(const cJSON *m)
{
        return cJSON_IsTrue(cJSON_GetObjectItem(m, "successful"));
}

/* Handshake; keeps the cookie; @returns the clientId (static buffer). */
static const char *handshake(void)
{
        static char cid[64];
        struct sfr r;
        const cJSON *m;

        bayeux("[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
               "\"minimumVersion\":\"1.0\",\"supportedConnectionTypes\":"
               "[\"long-polling\"],\"ext\":{\"replay\":true},\"id\":\"1\"}]",
               &r);
        assert_int_equal(r.status, 200);
        m = msg(&r, "/meta/handshake");
        assert_true(successful(m));
        snprintf(cid, sizeof(cid), "%s", sf_str(m, "clientId"));
        if (r.set_cookie) {
                size_t n = strcspn(r.set_cookie, ";");

                snprintf(cookie, sizeof(cookie), "Cookie: %.*s", (int)n,
                         r.set_cookie);
        }
        sfr_free(&r);
        return cid;
}

static void subscribe_raw(const char *cid, const char *channel,
                          const char *replay, struct sfr *r)
{
        char body[512];

        if (replay)
                snprintf(
                    body, sizeof(body),
                    "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\","
                    "\"subscription\":\"%s\",\"ext\":{\"replay\":"
                    "{\"%s\":%s}},\"id\":\"2\"}]",
                    cid, channel, channel, replay);
        else
                snprintf(
                    body, sizeof(body),
                    "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\","
                    "\"subscription\":\"%s\",\"id\":\"2\"}]",
                    cid, channel);
        bayeux(body, r);
}

static void subscribe(const char *cid, const char *channel, const char *replay)
{
        struct sfr r;

        subscribe_raw(cid, channel, replay, &r);
        assert_true(successful(msg(&r, "/meta/subscribe")));
        sfr_free(&r);
}

static void connect_raw(const char *cid, struct sfr *r)
{
        char body[256];

        snprintf(body, sizeof(body),
                 "[{\"channel\":\"/meta/connect\",\"clientId\":\"%s\","
                 "\"connectionType\":\"long-polling\",\"id\":\"3\"}]",
                 cid);
        bayeux(body, r);
}

/* A ready subscriber: handshake, subscribe, first (immediate) connect. */
static const char *subscriber(const char *channel, const char *replay)
{
        const char *cid = handshake();
        struct sfr r;

        subscribe(cid, channel, replay);
        connect_raw(cid, &r);
        assert_true(successful(msg(&r, "/meta/connect")));
        sfr_free(&r);
        return cid;
}

/* The n-th event message (one with "data") of a connect answer. */
static const cJSON *event(const struct sfr *r, int n)
{
        const cJSON *m;

        cJSON_ArrayForEach(m, r->json)
        {
                if (cJSON_GetObjectItem(m, "data") && n-- == 0)
                        return m;
        }
        return NULL;
}

static int event_count(const struct sfr *r)
{
        int n = 0;

        while (event(r, n))
                n++;
        return n;
}

static const cJSON *payload(const cJSON *ev)
{
        return cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "data"), "payload");
}

static const cJSON *header(const cJSON *ev)
{
        return cJSON_GetObjectItem(payload(ev), "ChangeEventHeader");
}

static long long replay_id(const cJSON *ev)
{
        return (long long)cJSON_GetObjectItem(
                   cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "data"),
                                       "event"),
                   "replayId")
            ->valuedouble;
}

static void patch_contact(const char *id, const char *body, int optsync)
{
        const char *const h[] = {
            auth, "Content-Type: application/json",
            optsync ? "Sforce-Call-Options: client=optsync" : NULL, NULL};
        char path[256];
        struct sfr r;

        snprintf(path, sizeof(path), "%s/sobjects/Contact/%s", SF_API, id);
        sf_call(&sb, "PATCH", path, h, body, &r);
        assert_int_equal(r.status, 204);
        sfr_free(&r);
}

static int array_has(const cJSON *arr, const char *s)
{
        const cJSON *it;

        cJSON_ArrayForEach(it, arr)
        {
                if (cJSON_IsString(it) && !strcmp(it->valuestring, s))
                        return 1;
        }
        return 0;
}

/* ---- handshake, cookie, clients
 * ------------------------------------------------ */

static void handshake_shape_and_cookie(void **state)
{
        struct sfr r;
        const cJSON *m;

        (void)state;
        bayeux("[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
               "\"supportedConnectionTypes\":[\"long-polling\"],"
               "\"ext\":{\"replay\":true},\"id\":\"7\"}]",
               &r);
        assert_int_equal(r.status, 200);
        m = msg(&r, "/meta/handshake");
        assert_true(successful(m));
        assert_string_equal(sf_str(m, "id"), "7");
        assert_string_equal(sf_str(m, "version"), "1.0");
        assert_true(strlen(sf_str(m, "clientId")) > 10);
        assert_string_equal(
            cJSON_GetArrayItem(
                cJSON_GetObjectItem(m, "supportedConnectionTypes"), 0)
                ->valuestring,
            "long-polling");
        assert_true(cJSON_IsTrue(
            cJSON_GetObjectItem(cJSON_GetObjectItem(m, "ext"), "replay")));
        assert_non_null(r.set_cookie);
        assert_true(!strncmp(r.set_cookie, "BAYEUX_BROWSER=", 15));
        sfr_free(&r);
}

static void handshake_denied_without_session(void **state)
{
        const char *const h[] = {"Authorization: Bearer 00Dnope!AQx", NULL};
        struct sfr r;
        const cJSON *m;

        (void)state;
        sf_call(&sb, "POST", SF_COMETD, h,
                "[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
                "\"supportedConnectionTypes\":[\"long-polling\"]}]",
                &r);
        m = msg(&r, "/meta/handshake");
        assert_non_null(m);
        assert_false(successful(m));
        assert_string_equal(sf_str(m, "error"), "403::Handshake denied");
        assert_string_equal(
            sf_str(cJSON_GetObjectItem(cJSON_GetObjectItem(m, "ext"), "sfdc"),
                   "failureReason"),
            "401::Authentication invalid");
        assert_string_equal(
            sf_str(cJSON_GetObjectItem(m, "advice"), "reconnect"), "none");
        sfr_free(&r);
}

static void connect_needs_the_cookie(void **state)
{
        const char *cid = handshake();
        struct sfr r;
        const cJSON *m;

        (void)state;
        cookie[0] = '\0'; /* a client without a cookie jar */
        connect_raw(cid, &r);
        m = msg(&r, "/meta/connect");
        assert_false(successful(m));
        assert_string_equal(sf_str(m, "error"), "403::Unknown client");
        assert_string_equal(
            sf_str(cJSON_GetObjectItem(m, "advice"), "reconnect"), "handshake");
        sfr_free(&r);
}

static void unknown_client_id(void **state)
{
        struct sfr r;

        (void)state;
        (void)handshake();
        connect_raw("nosuchclient", &r);
        assert_string_equal(sf_str(msg(&r, "/meta/connect"), "error"),
                            "403::Unknown client");
        sfr_free(&r);
        subscribe_raw("nosuchclient", "/data/ChangeEvents", NULL, &r);
        assert_string_equal(sf_str(msg(&r, "/meta/subscribe"), "error"),
                            "403::Unknown client");
        sfr_free(&r);
}

static void idle_client_expires(void **state)
{
        const char *cid = subscriber("/data/ChangeEvents", "-1");
        struct sfr r;

        (void)state;
        sf_advance(&sb, 60000); /* no reconnect within 40 s */
        connect_raw(cid, &r);
        assert_string_equal(sf_str(msg(&r, "/meta/connect"), "error"),
                            "403::Unknown client");
        sfr_free(&r);
}

static void disconnect_forgets_client(void **state)
{
        const char *cid = subscriber("/data/ChangeEvents", "-1");
        char body[256];
        struct sfr r;

        (void)state;
        snprintf(body, sizeof(body),
                 "[{\"channel\":\"/meta/disconnect\",\"clientId\":\"%s\"}]",
                 cid);
        bayeux(body, &r);
        assert_true(successful(msg(&r, "/meta/disconnect")));
        sfr_free(&r);
        connect_raw(cid, &r);
        assert_string_equal(sf_str(msg(&r, "/meta/connect"), "error"),
                            "403::Unknown client");
        sfr_free(&r);
}

static void concurrent_client_limit(void **state)
{
        struct sfr r;
        const cJSON *m;

        (void)state;
        (void)handshake();
        bayeux("[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
               "\"supportedConnectionTypes\":[\"long-polling\"]}]",
               &r);
        m = msg(&r, "/meta/handshake");
        assert_false(successful(m));
        assert_string_equal(sf_str(m, "error"),
                            "403::Organization concurrent user limit exceeded");
        sfr_free(&r);
}

static void expired_session_on_connect(void **state)
{
        const char *cid = subscriber("/data/ChangeEvents", "-1");
        struct sfr r;
        const cJSON *m;

        (void)state;
        sf_control(&sb, "POST", "/sandbox/sf/t1/tokens/expire", NULL, 200);
        connect_raw(cid, &r);
        m = msg(&r, "/meta/connect");
        assert_false(successful(m));
        assert_string_equal(sf_str(m, "error"), "401::Authentication invalid");
        assert_string_equal(
            sf_str(cJSON_GetObjectItem(m, "advice"), "reconnect"), "none");
        sfr_free(&r);
}

static void bad_version_method_and_size(void **state)
{
        const char *const h[] = {auth, NULL};
        char *big             = malloc(40000);
        struct sfr r;

        (void)state;
        sf_call(&sb, "POST", "/sf/t1/cometd/30.0", h,
                "[{\"channel\":\"/meta/handshake\"}]", &r);
        assert_int_equal(r.status, 400);
        sfr_free(&r);
        sf_call(&sb, "POST", "/sf/t1/cometd/latest", h,
                "[{\"channel\":\"/meta/handshake\"}]", &r);
        assert_int_equal(r.status, 400);
        sfr_free(&r);
        memset(big, ' ', 39999);
        big[0]     = '[';
        big[39998] = ']';
        big[39999] = '\0';
        sf_call(&sb, "POST", SF_COMETD, h, big, &r);
        assert_int_equal(r.status, 413);
        sfr_free(&r);
        free(big);
}

/* ---- long-polling
 * ---------------------------------------------------------------- */

static void first_connect_immediate_then_held(void **state)
{
        const char *cid = handshake();
        struct sfr r;
        const cJSON *advice;

        (void)state;
        subscribe(cid, "/data/ChangeEvents", "-1");
        connect_raw(cid, &r);
        assert_true(r.ms < 500);
        advice = cJSON_GetObjectItem(msg(&r, "/meta/connect"), "advice");
        assert_string_equal(sf_str(advice, "reconnect"), "retry");
        assert_int_equal(cJSON_GetObjectItem(advice, "interval")->valueint, 0);
        assert_int_equal(cJSON_GetObjectItem(advice, "timeout")->valueint,
                         1000);
        sfr_free(&r);
        /* nothing to deliver: held for the configured timeout */
        connect_raw(cid, &r);
        assert_true(successful(msg(&r, "/meta/connect")));
        assert_int_equal(event_count(&r), 0);
        assert_true(r.ms >= 900);
        assert_true(r.ms < 4000);
        sfr_free(&r);
}

struct poll_arg {
        const char *cid;
        struct sfr r;
};

static void *poll_thread(void *p)
{
        struct poll_arg *a = p;

        connect_raw(a->cid, &a->r);
        return NULL;
}

static void connect_returns_as_soon_as_an_event_arrives(void **state)
{
        struct poll_arg a = {0};
        pthread_t th;

        (void)state;
        a.cid = subscriber("/data/ContactChangeEvent", "-1");
        assert_int_equal(pthread_create(&th, NULL, poll_thread, &a), 0);
        osy_test_sleep_ms(300);
        patch_contact(C1, "{\"HasOptedOutOfEmail\":true}", 1);
        pthread_join(th, NULL);
        /* the long-poll is 5 s; the event ended it early */
        assert_true(a.r.ms < 3000);
        assert_int_equal(event_count(&a.r), 1);
        assert_true(successful(msg(&a.r, "/meta/connect")));
        sfr_free(&a.r);
}

static void newer_connect_replaces_older(void **state)
{
        struct poll_arg a = {0}, b = {0};
        pthread_t ta, tb;

        (void)state;
        a.cid = subscriber("/data/ContactChangeEvent", "-1");
        b.cid = a.cid;
        assert_int_equal(pthread_create(&ta, NULL, poll_thread, &a), 0);
        osy_test_sleep_ms(300);
        assert_int_equal(pthread_create(&tb, NULL, poll_thread, &b), 0);
        pthread_join(ta, NULL);
        /* the 5 s long-poll ended when the same client connected again */
        assert_true(a.r.ms < 3000);
        assert_true(successful(msg(&a.r, "/meta/connect")));
        assert_int_equal(event_count(&a.r), 0);
        patch_contact(C1, "{\"HasOptedOutOfEmail\":true}", 1);
        pthread_join(tb, NULL);
        assert_int_equal(event_count(&b.r), 1);
        sfr_free(&a.r);
        sfr_free(&b.r);
}

/* ---- event shapes
 * ---------------------------------------------------------------- */

static void update_event_shape_with_echo_origin(void **state)
{
        const char *cid = subscriber("/data/ContactChangeEvent", "-1");
        struct sfr r;
        const cJSON *ev, *h, *p;

        (void)state;
        patch_contact(C1, "{\"HasOptedOutOfEmail\":true}", 1);
        connect_raw(cid, &r);
        assert_int_equal(event_count(&r), 1);
        ev = event(&r, 0);
        assert_string_equal(sf_str(ev, "channel"), "/data/ContactChangeEvent");
        assert_non_null(sf_str(cJSON_GetObjectItem(ev, "data"), "schema"));
        assert_true(replay_id(ev) > 0);
        h = header(ev);
        assert_string_equal(sf_str(h, "entityName"), "Contact");
        assert_string_equal(sf_str(h, "changeType"), "UPDATE");
        assert_string_equal(sf_str(h, "changeOrigin"),
                            "com/salesforce/api/rest/59.0;client=optsync");
        assert_string_equal(
            cJSON_GetArrayItem(cJSON_GetObjectItem(h, "recordIds"), 0)
                ->valuestring,
            C1);
        assert_true(array_has(cJSON_GetObjectItem(h, "changedFields"),
                              "HasOptedOutOfEmail"));
        assert_true(array_has(cJSON_GetObjectItem(h, "changedFields"),
                              "LastModifiedDate"));
        assert_non_null(sf_str(h, "transactionKey"));
        assert_true(cJSON_GetObjectItem(h, "commitTimestamp")->valuedouble >
                    1.6e12);
        assert_non_null(sf_str(h, "commitUser"));
        assert_non_null(cJSON_GetObjectItem(h, "sequenceNumber"));
        p = payload(ev);
        /* UPDATE bodies: the changed fields and LastModifiedDate only */
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(p, "HasOptedOutOfEmail")));
        assert_non_null(sf_str(p, "LastModifiedDate"));
        assert_null(cJSON_GetObjectItem(p, "Email"));
        assert_null(cJSON_GetObjectItem(p, "SystemModstamp"));
        sfr_free(&r);
        /* without Sforce-Call-Options: the API origin has no client */
        patch_contact(C2, "{\"HasOptedOutOfEmail\":true}", 0);
        connect_raw(cid, &r);
        assert_string_equal(sf_str(header(event(&r, 0)), "changeOrigin"),
                            "com/salesforce/api/rest/59.0");
        sfr_free(&r);
}

static void ui_change_has_empty_origin(void **state)
{
        const char *cid = subscriber("/data/ContactChangeEvent", "-1");
        struct sfr r;
        char api_user[32];

        (void)state;
        patch_contact(C2, "{\"FirstName\":\"Bee\"}", 1);
        connect_raw(cid, &r);
        snprintf(api_user, sizeof(api_user), "%s",
                 sf_str(header(event(&r, 0)), "commitUser"));
        sfr_free(&r);
        sf_control(&sb, "POST", "/sandbox/sf/t1/records/" C1 "/optout",
                   "{\"value\":true}", 200);
        connect_raw(cid, &r);
        assert_int_equal(event_count(&r), 1);
        assert_string_equal(sf_str(header(event(&r, 0)), "changeOrigin"), "");
        assert_string_not_equal(sf_str(header(event(&r, 0)), "commitUser"),
                                api_user);
        assert_true(cJSON_IsTrue(
            cJSON_GetObjectItem(payload(event(&r, 0)), "HasOptedOutOfEmail")));
        sfr_free(&r);
}

static void channel_filters_entity(void **state)
{
        const char *cid = subscriber("/data/LeadChangeEvent", "-1");
        struct sfr r;

        (void)state;
        patch_contact(C1, "{\"HasOptedOutOfEmail\":true}", 1);
        sf_control(&sb, "POST", "/sandbox/sf/t1/records/" L3 "/optout",
                   "{\"value\":false}", 200);
        connect_raw(cid, &r);
        assert_int_equal(event_count(&r), 1);
        assert_string_equal(sf_str(header(event(&r, 0)), "entityName"), "Lead");
        assert_string_equal(sf_str(event(&r, 0), "channel"),
                            "/data/LeadChangeEvent");
        sfr_free(&r);
}

static void collection_update_merges_record_ids(void **state)
{
        const char *cid       = subscriber("/data/ChangeEvents", "-1");
        const char *const h[] = {auth, "Sforce-Call-Options: client=optsync",
                                 NULL};
        struct sfr r;
        const cJSON *ids;

        (void)state;
        sf_call(&sb, "PATCH", SF_API "/composite/sobjects", h,
                "{\"records\":["
                "{\"attributes\":{\"type\":\"Contact\"},\"id\":\"" C1
                "\",\"HasOptedOutOfEmail\":true},"
                "{\"attributes\":{\"type\":\"Contact\"},\"id\":\"" C2
                "\",\"HasOptedOutOfEmail\":true},"
                "{\"attributes\":{\"type\":\"Lead\"},\"id\":\"" L3
                "\",\"HasOptedOutOfEmail\":false}]}",
                &r);
        assert_int_equal(r.status, 200);
        sfr_free(&r);
        connect_raw(cid, &r);
        /* identical changes in one call: one event, both ids */
        assert_int_equal(event_count(&r), 2);
        ids = cJSON_GetObjectItem(header(event(&r, 0)), "recordIds");
        assert_int_equal(cJSON_GetArraySize(ids), 2);
        assert_true(array_has(ids, C1));
        assert_true(array_has(ids, C2));
        assert_string_equal(sf_str(header(event(&r, 1)), "entityName"), "Lead");
        /* one transaction */
        assert_string_equal(sf_str(header(event(&r, 0)), "transactionKey"),
                            sf_str(header(event(&r, 1)), "transactionKey"));
        sfr_free(&r);
}

static void lead_conversion_events_share_a_transaction(void **state)
{
        const char *cid = subscriber("/data/ChangeEvents", "-1");
        struct sfr r;
        const cJSON *c, *l;

        (void)state;
        sf_control(&sb, "POST", "/sandbox/sf/t1/leads/" L3 "/convert", "{}",
                   200);
        connect_raw(cid, &r);
        assert_int_equal(event_count(&r), 2);
        c = event(&r, 0);
        l = event(&r, 1);
        assert_string_equal(sf_str(header(c), "entityName"), "Contact");
        assert_string_equal(sf_str(header(c), "changeType"), "CREATE");
        assert_int_equal(
            cJSON_GetArraySize(cJSON_GetObjectItem(header(c), "changedFields")),
            0);
        assert_string_equal(sf_str(payload(c), "Email"), "lead@example.com");
        assert_string_equal(sf_str(header(l), "entityName"), "Lead");
        assert_string_equal(sf_str(header(l), "changeType"), "UPDATE");
        assert_true(
            cJSON_IsTrue(cJSON_GetObjectItem(payload(l), "IsConverted")));
        assert_non_null(sf_str(payload(l), "ConvertedContactId"));
        assert_null(cJSON_GetObjectItem(payload(l), "LastModifiedDate"));
        assert_string_equal(sf_str(header(c), "transactionKey"),
                            sf_str(header(l), "transactionKey"));
        sfr_free(&r);
}

static void create_and_delete_events(void **state)
{
        const char *cid = subscriber("/data/ContactChangeEvent", "-1");
        struct sfr r;

        (void)state;
        sf_control(&sb, "POST", "/sandbox/sf/t1/records",
                   "{\"type\":\"Contact\",\"Email\":\"new@example.com\","
                   "\"LastName\":\"N\"}",
                   201);
        sf_control(&sb, "POST", "/sandbox/sf/t1/records/" C2 "/delete", NULL,
                   200);
        connect_raw(cid, &r);
        assert_int_equal(event_count(&r), 2);
        assert_string_equal(sf_str(header(event(&r, 0)), "changeType"),
                            "CREATE");
        assert_string_equal(sf_str(payload(event(&r, 0)), "LastName"), "N");
        assert_true(cJSON_IsFalse(
            cJSON_GetObjectItem(payload(event(&r, 0)), "HasOptedOutOfEmail")));
        assert_string_equal(sf_str(header(event(&r, 1)), "changeType"),
                            "DELETE");
        assert_null(cJSON_GetObjectItem(payload(event(&r, 1)), "Email"));
        sfr_free(&r);
}

static void gap_events_on_demand(void **state)
{
        const char *cid = subscriber("/data/ChangeEvents", "-1");
        struct sfr r;

        (void)state;
        sf_control(&sb, "POST", "/sandbox/sf/t1/cdc/gap",
                   "{\"ids\":[\"" C1 "\",\"" C2 "\"]}", 200);
        sf_control(&sb, "POST", "/sandbox/sf/t1/cdc/gap",
                   "{\"entity\":\"Lead\",\"change_type\":\"GAP_OVERFLOW\"}",
                   200);
        connect_raw(cid, &r);
        assert_int_equal(event_count(&r), 2);
        assert_string_equal(sf_str(header(event(&r, 0)), "changeType"),
                            "GAP_UPDATE");
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(
                             header(event(&r, 0)), "recordIds")),
                         2);
        assert_string_equal(sf_str(header(event(&r, 1)), "changeType"),
                            "GAP_OVERFLOW");
        sfr_free(&r);
}

static void stall_delivers_nothing_until_released(void **state)
{
        const char *cid = subscriber("/data/ChangeEvents", "-1");
        struct sfr r;

        (void)state;
        sf_control(&sb, "POST", "/sandbox/sf/t1/cdc/stall",
                   "{\"stalled\":true}", 200);
        patch_contact(C1, "{\"HasOptedOutOfEmail\":true}", 1);
        connect_raw(cid, &r);
        assert_true(successful(msg(&r, "/meta/connect")));
        assert_int_equal(event_count(&r), 0);
        assert_true(r.ms >= 900);
        sfr_free(&r);
        sf_control(&sb, "POST", "/sandbox/sf/t1/cdc/stall",
                   "{\"stalled\":false}", 200);
        connect_raw(cid, &r);
        assert_int_equal(event_count(&r), 1);
        sfr_free(&r);
}

/* ---- replay
 * ------------------------------------------------------------------------ */

static void replay_all_retained_versus_new_only(void **state)
{
        const char *cid;
        struct sfr r;

        (void)state;
        patch_contact(C1, "{\"HasOptedOutOfEmail\":true}", 1);
        patch_contact(C2, "{\"HasOptedOutOfEmail\":true}", 1);
        cid = handshake();
        subscribe(cid, "/data/ContactChangeEvent", "-2");
        connect_raw(cid, &r); /* the first connect brings the backlog */
        assert_int_equal(event_count(&r), 2);
        assert_true(replay_id(event(&r, 0)) < replay_id(event(&r, 1)));
        sfr_free(&r);
        cid = handshake();
        subscribe(cid, "/data/ContactChangeEvent", "-1");
        connect_raw(cid, &r);
        assert_int_equal(event_count(&r), 0);
        sfr_free(&r);
}

static void replay_from_a_stored_id(void **state)
{
        const char *cid;
        struct sfr r;
        char stored[32];

        (void)state;
        patch_contact(C1, "{\"HasOptedOutOfEmail\":true}", 1);
        patch_contact(C2, "{\"HasOptedOutOfEmail\":true}", 1);
        patch_contact(C1, "{\"HasOptedOutOfEmail\":false}", 1);
        cid = handshake();
        subscribe(cid, "/data/ContactChangeEvent", "-2");
        connect_raw(cid, &r);
        assert_int_equal(event_count(&r), 3);
        snprintf(stored, sizeof(stored), "%lld", replay_id(event(&r, 0)));
        sfr_free(&r);
        /* a new client resumes after the first event */
        cid = handshake();
        subscribe(cid, "/data/ContactChangeEvent", stored);
        connect_raw(cid, &r);
        assert_int_equal(event_count(&r), 2);
        assert_string_equal(
            cJSON_GetArrayItem(
                cJSON_GetObjectItem(header(event(&r, 0)), "recordIds"), 0)
                ->valuestring,
            C2);
        sfr_free(&r);
}

static void invalid_replay_id_error(void **state)
{
        const char *cid = handshake();
        struct sfr r;
        char want[256];
        const cJSON *m;

        (void)state;
        patch_contact(C1, "{\"HasOptedOutOfEmail\":true}", 1);
        subscribe_raw(cid, "/data/ContactChangeEvent", "987654", &r);
        m = msg(&r, "/meta/subscribe");
        assert_false(successful(m));
        snprintf(want, sizeof(want), REPLAY_ERR_FMT, "987654");
        assert_string_equal(sf_str(m, "error"), want);
        assert_string_equal(sf_str(m, "subscription"),
                            "/data/ContactChangeEvent");
        sfr_free(&r);
        subscribe_raw(cid, "/data/Nope", NULL, &r);
        m = msg(&r, "/meta/subscribe");
        assert_false(successful(m));
        assert_true(!strncmp(sf_str(m, "error"), "400::", 5));
        sfr_free(&r);
}

static void replay_id_outside_retention(void **state)
{
        const char *cid = handshake();
        struct sfr r;
        char stored[32], want[256];

        (void)state;
        subscribe(cid, "/data/ContactChangeEvent", "-1");
        patch_contact(C1, "{\"HasOptedOutOfEmail\":true}", 1);
        connect_raw(cid, &r);
        snprintf(stored, sizeof(stored), "%lld", replay_id(event(&r, 0)));
        sfr_free(&r);
        /* 73 h later (sandbox clock): the event left the 72 h window */
        sf_advance(&sb, 73LL * 3600 * 1000);
        free(auth);
        auth = sf_auth(&sb);
        cid  = handshake();
        subscribe_raw(cid, "/data/ContactChangeEvent", stored, &r);
        snprintf(want, sizeof(want), REPLAY_ERR_FMT, stored);
        assert_string_equal(sf_str(msg(&r, "/meta/subscribe"), "error"), want);
        sfr_free(&r);
        subscribe(cid, "/data/ContactChangeEvent", "-2");
        connect_raw(cid, &r);
        assert_int_equal(event_count(&r), 0);
        sfr_free(&r);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(handshake_shape_and_cookie, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(handshake_denied_without_session,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(connect_needs_the_cookie, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(unknown_client_id, setup, teardown),
            cmocka_unit_test_setup_teardown(idle_client_expires, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(disconnect_forgets_client, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(concurrent_client_limit,
                                            setup_one_client, teardown),
            cmocka_unit_test_setup_teardown(expired_session_on_connect, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(bad_version_method_and_size, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(first_connect_immediate_then_held,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                connect_returns_as_soon_as_an_event_arrives, setup_slow,
                teardown),
            cmocka_unit_test_setup_teardown(newer_connect_replaces_older,
                                            setup_slow, teardown),
            cmocka_unit_test_setup_teardown(update_event_shape_with_echo_origin,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(ui_change_has_empty_origin, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(channel_filters_entity, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(collection_update_merges_record_ids,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                lead_conversion_events_share_a_transaction, setup, teardown),
            cmocka_unit_test_setup_teardown(create_and_delete_events, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(gap_events_on_demand, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(
                stall_delivers_nothing_until_released, setup, teardown),
            cmocka_unit_test_setup_teardown(replay_all_retained_versus_new_only,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(replay_from_a_stored_id, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(invalid_replay_id_error, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(replay_id_outside_retention, setup,
                                            teardown),
        };

        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
