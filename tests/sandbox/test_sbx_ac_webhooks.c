/*
 * test_sbx_ac_webhooks.c - AC webhooks end to end: a small receiver (MHD on
 * 127.0.0.1) captures what the sandbox POSTs; the tests check the exact
 * form fields, the events / sources / list filters, API echoes, 410
 * deactivation, no retries, and the duplicate / drop / hold-and-reorder
 * controls.
 */
#include "test_sbx_ac.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>

/* ---- the receiver -------------------------------------------------------- */

#define RX_MAX 256

struct rx_req {
        char path[64];
        char method[8];
        char ctype[128];
        char *body;
};

static struct {
        struct MHD_Daemon *d;
        int port;
        pthread_mutex_t mu;
        struct rx_req r[RX_MAX];
        size_t n;
} RX;

struct rx_acc {
        char *p;
        size_t n;
};

static enum MHD_Result rx_access(void *cls, struct MHD_Connection *c,
                                 const char *url, const char *method,
                                 const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
        (void)cls;
        (void)version;
        struct rx_acc *a = *con_cls;
        if (!a) {
                *con_cls = calloc(1, sizeof(struct rx_acc));
                return *con_cls ? MHD_YES : MHD_NO;
        }
        if (*upload_size) {
                char *p = realloc(a->p, a->n + *upload_size + 1);
                if (!p)
                        return MHD_NO;
                memcpy(p + a->n, upload, *upload_size);
                a->p = p;
                a->n += *upload_size;
                a->p[a->n]   = '\0';
                *upload_size = 0;
                return MHD_YES;
        }
        const char *ct =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
        pthread_mutex_lock(&RX.mu);
        if (RX.n < RX_MAX) {
                struct rx_req *r = &RX.r[RX.n++];
                snprintf(r->path, sizeof(r->path), "%s", url);
                snprintf(r->method, sizeof(r->method), "%s", method);
                snprintf(r->ctype, sizeof(r->ctype), "%s", ct ? ct : "");
                r->body = strdup(a->p ? a->p : "");
        }
        pthread_mutex_unlock(&RX.mu);
        unsigned status = strstr(url, "/gone")   ? 410
                          : strstr(url, "/fail") ? 500
                                                 : 200;
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(2, "ok", MHD_RESPMEM_PERSISTENT);
        enum MHD_Result rc = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return rc;
}

static void rx_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
        (void)cls;
        (void)c;
        (void)toe;
        struct rx_acc *a = *con_cls;
        if (a) {
                free(a->p);
                free(a);
        }
        *con_cls = NULL;
}

static int rx_start(void)
{
        memset(&RX, 0, sizeof(RX));
        pthread_mutex_init(&RX.mu, NULL);
        struct sockaddr_in sa = {0};
        sa.sin_family         = AF_INET;
        sa.sin_addr.s_addr    = htonl(INADDR_LOOPBACK);
        RX.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
                                rx_access, NULL, MHD_OPTION_SOCK_ADDR, &sa,
                                MHD_OPTION_NOTIFY_COMPLETED, rx_done, NULL,
                                MHD_OPTION_END);
        if (!RX.d)
                return -1;
        const union MHD_DaemonInfo *i =
            MHD_get_daemon_info(RX.d, MHD_DAEMON_INFO_BIND_PORT);
        RX.port = i ? i->port : 0;
        return RX.port ? 0 : -1;
}

static void rx_stop(void)
{
        if (RX.d)
                MHD_stop_daemon(RX.d);
        for (size_t i = 0; i < RX.n; i++)
                free(RX.r[i].body);
        pthread_mutex_destroy(&RX.mu);
        memset(&RX, 0, sizeof(RX));
}

static size_t rx_count(void)
{
        pthread_mutex_lock(&RX.mu);
        size_t n = RX.n;
        pthread_mutex_unlock(&RX.mu);
        return n;
}

/* Decode a form body with libcurl's unescaping (not the sandbox's own). */
static cJSON *form_fields(const char *body)
{
        cJSON *o      = cJSON_CreateObject();
        const char *p = body;
        while (*p) {
                size_t n  = strcspn(p, "&");
                char *kv  = strndup(p, n);
                char *eq  = strchr(kv, '=');
                char *val = eq ? eq + 1 : kv + strlen(kv);
                if (eq)
                        *eq = '\0';
                for (char *q = kv; *q; q++)
                        if (*q == '+')
                                *q = ' ';
                for (char *q = val; *q; q++)
                        if (*q == '+')
                                *q = ' ';
                char *k = curl_easy_unescape(NULL, kv, 0, NULL);
                char *v = curl_easy_unescape(NULL, val, 0, NULL);
                cJSON_AddStringToObject(o, k, v);
                curl_free(k);
                curl_free(v);
                free(kv);
                p += n + (p[n] == '&');
        }
        return o;
}

/* The fields of capture @p i (caller frees). */
static cJSON *rx_fields(size_t i)
{
        pthread_mutex_lock(&RX.mu);
        cJSON *o = i < RX.n ? form_fields(RX.r[i].body) : NULL;
        pthread_mutex_unlock(&RX.mu);
        return o;
}

static const char *rx_path(size_t i)
{
        return i < RX.n ? RX.r[i].path : "";
}

/* ---- helpers ------------------------------------------------------------- */

static const char *FIXTURE =
    "{\"tenants\":{\"t1\":{\"ac\":{\"api_token\":\"tok\",\"timezone\":"
    "\"-06:00\",\"rate_per_s\":0,"
    "\"lists\":[{\"id\":\"1\",\"name\":\"Newsletter\"},"
    "{\"id\":\"2\",\"name\":\"Promo\"}],"
    "\"tags\":[{\"id\":\"1\",\"tag\":\"added-to-salesforce-contact\"},"
    "{\"id\":\"2\",\"tag\":\"vip\"}],"
    "\"contacts\":["
    "{\"id\":\"1\",\"email\":\"ann@x.com\",\"first_name\":\"Ann\","
    "\"last_name\":\"Lee\",\"tags\":[\"added-to-salesforce-contact\","
    "\"vip\"],\"lists\":{\"1\":1,\"2\":1}},"
    "{\"id\":\"2\",\"email\":\"bob@x.com\",\"lists\":{\"1\":1}}]}}}}";

static int setup(void **state)
{
        (void)state;
        if (rx_start() != 0)
                return -1;
        if (t_start(FIXTURE, NULL) != 0) {
                rx_stop();
                return -1;
        }
        return 0;
}

static int teardown(void **state)
{
        t_stop(state);
        rx_stop();
        return 0;
}

/* Register a webhook to the receiver's @p path; @returns its id. */
static long hook(const char *path, const char *events, const char *sources,
                 const char *listid)
{
        char body[1024];
        int st;
        snprintf(body, sizeof(body),
                 "{\"webhook\":{\"name\":\"h%s\",\"url\":\"http://"
                 "127.0.0.1:%d%s\",\"events\":%s,\"sources\":%s,"
                 "\"listid\":\"%s\"}}",
                 path, RX.port, path, events, sources, listid);
        cJSON *j = t_api("POST", "/webhooks", body, &st);
        assert_int_equal(st, 201);
        long id = strtol(t_str(j, "webhook/id"), NULL, 10);
        cJSON_Delete(j);
        return id;
}

/* Wait until every queued delivery of t1 got its answer. */
static void flush(void)
{
        int st;
        cJSON *j = t_ctl("POST", "/sandbox/ac/t1/webhooks/flush",
                         "{\"timeout_ms\":5000}", &st);
        assert_int_equal(st, 200);
        assert_true(cJSON_IsTrue(t_item(j, "flushed")));
        cJSON_Delete(j);
}

static void ctl(const char *what, const char *body)
{
        char path[128];
        snprintf(path, sizeof(path), "/sandbox/ac/t1/%s", what);
        t_ctl_ok("POST", path, body);
}

#define ALL_SOURCES "[\"public\",\"admin\",\"api\",\"system\"]"

/* ---- payload shape ------------------------------------------------------- */

static void unsubscribe_link_posts_php_style_form(void **state)
{
        (void)state;
        hook("/in", "[\"unsubscribe\"]", "[\"public\"]", "0");
        ctl("unsubscribe", "{\"email\":\"ann@x.com\",\"list\":\"1\","
                           "\"reason\":\"Too many emails\",\"campaign\":42}");
        flush();
        assert_int_equal(rx_count(), 1);
        assert_string_equal(RX.r[0].method, "POST");
        assert_string_equal(RX.r[0].ctype, "application/x-www-form-urlencoded");
        /* bracketed keys, escaped the way PHP's http_build_query does */
        assert_non_null(strstr(RX.r[0].body, "contact%5Bemail%5D=ann%40x.com"));
        cJSON *f = rx_fields(0);
        assert_jstr(f, "type", "unsubscribe");
        assert_jstr(f, "initiated_from", "public");
        assert_jstr(f, "initiated_by", "public");
        assert_jstr(f, "list", "1");
        assert_jstr(f, "contact[id]", "1");
        assert_jstr(f, "contact[email]", "ann@x.com");
        assert_jstr(f, "contact[first_name]", "Ann");
        assert_jstr(f, "contact[last_name]", "Lee");
        /* one string, comma and space */
        assert_jstr(f, "contact[tags]", "added-to-salesforce-contact, vip");
        assert_jstr(f, "unsubscribe[reason]", "Too many emails");
        assert_jstr(f, "campaign[id]", "42");
        assert_true(t_is_iso(t_str(f, "date_time"), "-06:00"));
        cJSON_Delete(f);
}

static void unsubscribe_all_fires_one_per_active_list(void **state)
{
        (void)state;
        hook("/in", "[\"unsubscribe\"]", ALL_SOURCES, "0");
        ctl("unsubscribe", "{\"email\":\"ann@x.com\",\"list\":\"all\"}");
        flush();
        assert_int_equal(rx_count(), 2);
        cJSON *a = rx_fields(0), *b = rx_fields(1);
        assert_jstr(a, "list", "1");
        assert_jstr(b, "list", "2");
        assert_null(t_str(a, "unsubscribe[reason]")); /* none given */
        cJSON_Delete(a);
        cJSON_Delete(b);
        /* already unsubscribed everywhere: nothing changes, nothing fires */
        ctl("unsubscribe", "{\"email\":\"ann@x.com\"}");
        flush();
        assert_int_equal(rx_count(), 2);
}

/* The other documented form of a public unsubscribe: list=0 plus
 * list[0][id]; the hook's list filter still sees the real list. */
static void public_unsubscribe_in_list_array_form(void **state)
{
        (void)state;
        hook("/in", "[\"unsubscribe\"]", ALL_SOURCES, "2");
        ctl("settings", "{\"public_unsubscribe_list\":\"array\"}");
        ctl("unsubscribe", "{\"contact\":\"1\",\"list\":\"2\"}");
        ctl("unsubscribe",
            "{\"contact\":\"1\",\"list\":\"1\",\"source\":\"admin\"}");
        ctl("subscribe", "{\"contact\":\"1\",\"list\":\"2\"}");
        ctl("unsubscribe",
            "{\"contact\":\"1\",\"list\":\"2\",\"source\":\"admin\"}");
        flush();
        assert_int_equal(rx_count(), 2);
        cJSON *f = rx_fields(0);
        assert_jstr(f, "list", "0");
        assert_jstr(f, "list[0][id]", "2");
        assert_non_null(strstr(RX.r[0].body, "&list%5B0%5D%5Bid%5D=2"));
        cJSON_Delete(f);
        f = rx_fields(1); /* admin: the plain form */
        assert_jstr(f, "list", "2");
        assert_null(t_str(f, "list[0][id]"));
        cJSON_Delete(f);
}

/* ---- filters ------------------------------------------------------------- */

static void filtered_by_events_and_sources(void **state)
{
        (void)state;
        hook("/a", "[\"unsubscribe\"]", "[\"admin\"]", "0");
        hook("/b", "[\"subscribe\"]", "[\"public\",\"admin\"]", "0");
        /* public unsubscribe: /a wants admin only, /b wants subscribes */
        ctl("unsubscribe", "{\"contact\":\"1\",\"list\":\"1\"}");
        flush();
        assert_int_equal(rx_count(), 0);
        ctl("unsubscribe",
            "{\"contact\":\"2\",\"list\":\"1\",\"source\":\"admin\"}");
        ctl("subscribe", "{\"contact\":\"1\",\"list\":\"1\"}"); /* admin */
        flush();
        assert_int_equal(rx_count(), 2);
        assert_string_equal(rx_path(0), "/a");
        assert_string_equal(rx_path(1), "/b");
        cJSON *f = rx_fields(1);
        assert_jstr(f, "type", "subscribe");
        assert_jstr(f, "initiated_from", "admin");
        cJSON_Delete(f);
}

static void filtered_by_list_except_tag_events(void **state)
{
        (void)state;
        hook("/l2", "[\"unsubscribe\",\"contact_tag_added\"]", ALL_SOURCES,
             "2");
        ctl("unsubscribe", "{\"contact\":\"1\",\"list\":\"1\"}");
        flush();
        assert_int_equal(rx_count(), 0); /* list 1 is not the hook's */
        ctl("unsubscribe", "{\"contact\":\"1\",\"list\":\"2\"}");
        /* listid has no effect on tag events: bob is not even on list 2 */
        ctl("tag", "{\"contact\":\"2\",\"tag\":\"created-from-salesforce-"
                   "contact\",\"source\":\"system\"}");
        flush();
        assert_int_equal(rx_count(), 2);
        cJSON *f = rx_fields(1);
        assert_jstr(f, "type", "contact_tag_added");
        assert_jstr(f, "tag", "created-from-salesforce-contact");
        assert_jstr(f, "list", "0");
        assert_jstr(f, "initiated_from", "system");
        assert_jstr(f, "contact[tags]", "created-from-salesforce-contact");
        cJSON_Delete(f);
}

/* ---- echoes of API writes ------------------------------------------------ */

static void api_writes_echo_with_source_api(void **state)
{
        (void)state;
        int st;
        hook("/api",
             "[\"subscribe\",\"unsubscribe\",\"update\",\"contact_tag_added\","
             "\"contact_tag_removed\"]",
             "[\"api\"]", "0");
        hook("/noapi", "[\"unsubscribe\",\"update\"]",
             "[\"public\",\"admin\",\"system\"]", "0");
        const char *unsub = "{\"contactList\":{\"list\":\"1\",\"contact\":"
                            "\"2\",\"status\":\"2\"}}";
        cJSON_Delete(t_api("POST", "/contactLists", unsub, &st));
        assert_int_equal(st, 201);
        /* the same status again changes nothing and fires nothing */
        cJSON_Delete(t_api("POST", "/contactLists", unsub, &st));
        cJSON_Delete(t_api("PUT", "/contacts/2",
                           "{\"contact\":{\"firstName\":\"Bob\"}}", &st));
        cJSON *j =
            t_api("POST", "/contactTags",
                  "{\"contactTag\":{\"contact\":\"2\",\"tag\":\"2\"}}", &st);
        char path[64];
        snprintf(path, sizeof(path), "/contactTags/%s",
                 t_str(j, "contactTag/id"));
        cJSON_Delete(j);
        cJSON_Delete(t_api("DELETE", path, NULL, &st));
        assert_int_equal(st, 200);
        flush();
        assert_int_equal(rx_count(), 4);
        static const char *const types[] = {"unsubscribe", "update",
                                            "contact_tag_added",
                                            "contact_tag_removed"};
        for (size_t i = 0; i < 4; i++) {
                cJSON *f = rx_fields(i);
                assert_string_equal(rx_path(i), "/api");
                assert_jstr(f, "type", types[i]);
                assert_jstr(f, "initiated_from", "api");
                assert_jstr(f, "contact[email]", "bob@x.com");
                if (i >= 2)
                        assert_jstr(f, "tag", "vip");
                if (i == 1)
                        assert_jstr(f, "contact[first_name]", "Bob");
                cJSON_Delete(f);
        }
}

static void system_bounce_and_admin_update_events(void **state)
{
        (void)state;
        hook("/in", "[\"bounce\",\"update\"]", ALL_SOURCES, "0");
        ctl("bounce", "{\"contact\":\"1\",\"type\":\"hard\",\"campaign\":7}");
        ctl("update", "{\"contact\":\"2\",\"lastName\":\"Stone\"}");
        flush();
        assert_int_equal(rx_count(), 2);
        cJSON *f = rx_fields(0);
        assert_jstr(f, "type", "bounce");
        assert_jstr(f, "initiated_from", "system");
        assert_jstr(f, "campaign[id]", "7");
        assert_jstr(f, "bounce[type]", "hard");
        cJSON_Delete(f);
        f = rx_fields(1);
        assert_jstr(f, "type", "update");
        assert_jstr(f, "initiated_from", "admin");
        assert_jstr(f, "contact[last_name]", "Stone");
        cJSON_Delete(f);
}

static void import_fires_no_webhooks(void **state)
{
        (void)state;
        int st;
        hook("/in",
             "[\"subscribe\",\"unsubscribe\",\"update\",\"contact_tag_added\"]",
             ALL_SOURCES, "0");
        cJSON_Delete(t_api("POST", "/import/bulk_import",
                           "{\"contacts\":[{\"email\":\"ann@x.com\","
                           "\"tags\":[\"t9\"],\"unsubscribe\":[{\"listid\":"
                           "1}]},{\"email\":\"new@x.com\",\"subscribe\":[{"
                           "\"listid\":1}]}]}",
                           &st));
        assert_int_equal(st, 200);
        t_clock_advance(2000);
        cJSON *j = t_api("GET", "/contacts/1/contactLists", NULL, &st);
        assert_jstr(j, "contactLists/0/status", "2"); /* applied */
        cJSON_Delete(j);
        flush();
        assert_int_equal(rx_count(), 0);
}

/* ---- delivery semantics -------------------------------------------------- */

static void answer_410_deactivates_the_hook(void **state)
{
        (void)state;
        int st;
        long id = hook("/gone", "[\"unsubscribe\"]", ALL_SOURCES, "0");
        ctl("unsubscribe", "{\"contact\":\"1\",\"list\":\"1\"}");
        flush();
        assert_int_equal(rx_count(), 1);
        ctl("unsubscribe", "{\"contact\":\"1\",\"list\":\"2\"}");
        flush();
        assert_int_equal(rx_count(), 1); /* sends nothing more */
        cJSON *j = t_ctl("GET", "/sandbox/state?tenant=t1", NULL, &st);
        assert_true(cJSON_IsFalse(t_item(j, "ac/webhooks/0/active")));
        cJSON_Delete(j);
        /* still listed by the API, like in AC's UI */
        char path[32];
        snprintf(path, sizeof(path), "/webhooks/%ld", id);
        cJSON_Delete(t_api("GET", path, NULL, &st));
        assert_int_equal(st, 200);
        j = t_ctl("GET", "/sandbox/ac/t1/webhooks/deliveries", NULL, &st);
        assert_int_equal(cJSON_GetArraySize(t_item(j, "deliveries")), 1);
        assert_int_equal(
            (int)cJSON_GetNumberValue(t_item(j, "deliveries/0/http_status")),
            410);
        cJSON_Delete(j);
}

static void failed_deliveries_are_never_retried(void **state)
{
        (void)state;
        int st;
        hook("/fail", "[\"unsubscribe\"]", ALL_SOURCES, "0");
        /* and a hook on a port nobody listens on */
        cJSON_Delete(t_api("POST", "/webhooks",
                           "{\"webhook\":{\"name\":\"dead\",\"url\":\"http://"
                           "127.0.0.1:1/x\",\"events\":[\"unsubscribe\"],"
                           "\"sources\":[\"public\"]}}",
                           &st));
        assert_int_equal(st, 201);
        ctl("unsubscribe", "{\"contact\":\"1\",\"list\":\"1\"}");
        flush();
        osy_test_sleep_ms(300);
        assert_int_equal(rx_count(), 1);
        cJSON *j =
            t_ctl("GET", "/sandbox/ac/t1/webhooks/deliveries", NULL, &st);
        assert_int_equal(cJSON_GetArraySize(t_item(j, "deliveries")), 2);
        assert_jstr(j, "deliveries/0/state", "delivered");
        assert_int_equal(
            (int)cJSON_GetNumberValue(t_item(j, "deliveries/0/http_status")),
            500);
        assert_jstr(j, "deliveries/1/state", "failed");
        assert_non_null(t_str(j, "deliveries/1/error"));
        cJSON_Delete(j);
}

static void duplicate_control_sends_twice(void **state)
{
        (void)state;
        hook("/in", "[\"unsubscribe\"]", ALL_SOURCES, "0");
        ctl("webhooks/duplicate", "{\"count\":1}");
        ctl("unsubscribe", "{\"contact\":\"1\",\"list\":\"1\"}");
        ctl("unsubscribe", "{\"contact\":\"1\",\"list\":\"2\"}");
        flush();
        assert_int_equal(rx_count(), 3);
        assert_string_equal(RX.r[0].body, RX.r[1].body);
        cJSON *f = rx_fields(2);
        assert_jstr(f, "list", "2");
        cJSON_Delete(f);
}

static void drop_control_loses_one(void **state)
{
        (void)state;
        int st;
        hook("/in", "[\"unsubscribe\"]", ALL_SOURCES, "0");
        ctl("webhooks/drop", "{\"count\":1}");
        ctl("unsubscribe", "{\"contact\":\"1\",\"list\":\"1\"}");
        ctl("unsubscribe", "{\"contact\":\"1\",\"list\":\"2\"}");
        flush();
        assert_int_equal(rx_count(), 1);
        cJSON *f = rx_fields(0);
        assert_jstr(f, "list", "2");
        cJSON_Delete(f);
        cJSON *j =
            t_ctl("GET", "/sandbox/ac/t1/webhooks/deliveries", NULL, &st);
        assert_jstr(j, "deliveries/0/state", "dropped");
        assert_jstr(j, "deliveries/1/state", "delivered");
        cJSON_Delete(j);
}

static void hold_then_release_in_reverse(void **state)
{
        (void)state;
        int st;
        hook("/in", "[\"unsubscribe\"]", ALL_SOURCES, "0");
        ctl("webhooks/hold", "{}");
        ctl("unsubscribe", "{\"contact\":\"1\",\"list\":\"1\"}");
        ctl("unsubscribe", "{\"contact\":\"1\",\"list\":\"2\"}");
        ctl("unsubscribe", "{\"contact\":\"2\",\"list\":\"1\"}");
        flush();
        assert_int_equal(rx_count(), 0);
        cJSON *j =
            t_ctl("GET", "/sandbox/ac/t1/webhooks/deliveries", NULL, &st);
        assert_int_equal((int)cJSON_GetNumberValue(t_item(j, "held")), 3);
        assert_jstr(j, "deliveries/0/state", "held");
        cJSON_Delete(j);
        j = t_ctl("POST", "/sandbox/ac/t1/webhooks/release",
                  "{\"order\":\"reverse\"}", &st);
        assert_int_equal(st, 200);
        assert_int_equal((int)cJSON_GetNumberValue(t_item(j, "released")), 3);
        cJSON_Delete(j);
        flush();
        assert_int_equal(rx_count(), 3);
        static const char *const want[][2] = {
            {"2", "1"}, {"1", "2"}, {"1", "1"}};
        for (size_t i = 0; i < 3; i++) {
                cJSON *f = rx_fields(i);
                assert_jstr(f, "contact[id]", want[i][0]);
                assert_jstr(f, "list", want[i][1]);
                cJSON_Delete(f);
        }
        /* holding stopped with the release */
        ctl("subscribe", "{\"contact\":\"2\",\"list\":\"1\"}");
        ctl("unsubscribe", "{\"contact\":\"2\",\"list\":\"1\"}");
        flush();
        assert_int_equal(rx_count(), 4);
}

static void release_shuffled_delivers_each_once(void **state)
{
        (void)state;
        int st;
        hook("/in", "[\"unsubscribe\",\"subscribe\"]", ALL_SOURCES, "0");
        ctl("webhooks/hold", "{}");
        for (int i = 0; i < 4; i++) {
                ctl("unsubscribe", "{\"contact\":\"1\",\"list\":\"1\"}");
                ctl("subscribe", "{\"contact\":\"1\",\"list\":\"1\"}");
        }
        cJSON_Delete(t_ctl("POST", "/sandbox/ac/t1/webhooks/release",
                           "{\"order\":\"shuffle\"}", &st));
        assert_int_equal(st, 200);
        flush();
        assert_int_equal(rx_count(), 8);
        /* each held body once: the date_time is equal, so count types */
        int unsub = 0, sub = 0, in_order = 1;
        for (size_t i = 0; i < 8; i++) {
                cJSON *f      = rx_fields(i);
                const char *t = t_str(f, "type");
                unsub += !strcmp(t, "unsubscribe");
                sub += !strcmp(t, "subscribe");
                in_order &= !strcmp(t, i % 2 ? "subscribe" : "unsubscribe");
                cJSON_Delete(f);
        }
        assert_int_equal(unsub, 4);
        assert_int_equal(sub, 4);
        assert_false(in_order); /* seed 1 does reorder these eight */
}

static void inspect_lists_url_body_and_answer(void **state)
{
        (void)state;
        int st;
        long id = hook("/in", "[\"subscribe\"]", ALL_SOURCES, "0");
        ctl("unsubscribe", "{\"contact\":\"2\",\"list\":\"1\"}");
        ctl("subscribe", "{\"contact\":\"2\",\"list\":\"1\"}");
        flush();
        cJSON *j =
            t_ctl("GET", "/sandbox/ac/t1/webhooks/deliveries", NULL, &st);
        assert_int_equal(st, 200);
        assert_int_equal(cJSON_GetArraySize(t_item(j, "deliveries")), 1);
        char url[64], wid[16];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/in", RX.port);
        snprintf(wid, sizeof(wid), "%ld", id);
        assert_jstr(j, "deliveries/0/url", url);
        assert_jstr(j, "deliveries/0/webhook", wid);
        assert_jstr(j, "deliveries/0/type", "subscribe");
        assert_jstr(j, "deliveries/0/state", "delivered");
        assert_int_equal(
            (int)cJSON_GetNumberValue(t_item(j, "deliveries/0/http_status")),
            200);
        assert_string_equal(t_str(j, "deliveries/0/body"), RX.r[0].body);
        cJSON_Delete(j);
        /* since_id pages; DELETE forgets */
        j = t_ctl("GET", "/sandbox/ac/t1/webhooks/deliveries?since_id=1", NULL,
                  &st);
        assert_int_equal(cJSON_GetArraySize(t_item(j, "deliveries")), 0);
        cJSON_Delete(j);
        t_ctl_ok("DELETE", "/sandbox/ac/t1/webhooks/deliveries", NULL);
        j = t_ctl("GET", "/sandbox/ac/t1/webhooks/deliveries", NULL, &st);
        assert_int_equal(cJSON_GetArraySize(t_item(j, "deliveries")), 0);
        cJSON_Delete(j);
}

/* ---- the /webhooks API --------------------------------------------------- */

static void webhooks_crud_shapes(void **state)
{
        (void)state;
        int st;
        cJSON *j = t_api("POST", "/webhooks",
                         "{\"webhook\":{\"name\":\"My Hook\",\"url\":"
                         "\"https://example.com/h\",\"events\":[\"subscribe\","
                         "\"unsubscribe\"],\"sources\":[\"public\",\"admin\","
                         "\"api\",\"system\"],\"listid\":0}}",
                         &st);
        assert_int_equal(st, 201);
        assert_jstr(j, "webhook/id", "1");
        assert_jstr(j, "webhook/listid", "0");
        assert_jstr(j, "webhook/events/1", "unsubscribe");
        assert_true(cJSON_IsArray(t_item(j, "webhook/links")));
        assert_true(t_is_iso(t_str(j, "webhook/cdate"), "-06:00"));
        cJSON_Delete(j);
        j = t_api("GET", "/webhooks", NULL, &st);
        assert_jstr(j, "meta/total", "1");
        assert_jstr(j, "webhooks/0/name", "My Hook");
        cJSON_Delete(j);
        j = t_api("PUT", "/webhooks/1",
                  "{\"webhook\":{\"name\":\"Renamed\",\"listid\":\"2\"}}", &st);
        assert_int_equal(st, 200);
        assert_jstr(j, "webhook/name", "Renamed");
        assert_jstr(j, "webhook/listid", "2");
        assert_jstr(j, "webhook/url", "https://example.com/h");
        cJSON_Delete(j);
        j = t_api("PUT", "/webhooks/1", "{\"webhook\":{\"events\":[\"nope\"]}}",
                  &st);
        assert_int_equal(st, 400);
        assert_int_equal(cJSON_GetArraySize(j), 0); /* {} */
        cJSON_Delete(j);
        j = t_api("POST", "/webhooks",
                  "{\"webhook\":{\"name\":\"x\",\"url\":\"https://e.com\","
                  "\"events\":[\"subscribe\"]}}",
                  &st);
        assert_int_equal(st, 422);
        assert_jstr(j, "errors/0/source/pointer", "/data/attributes/sources");
        cJSON_Delete(j);
        j = t_api("GET", "/webhook/events", NULL, &st);
        assert_int_equal(cJSON_GetArraySize(t_item(j, "webhookEvents")), 25);
        assert_true(cJSON_IsNumber(t_item(j, "meta/total")));
        cJSON_Delete(j);
        j = t_api("DELETE", "/webhooks/1", NULL, &st);
        assert_int_equal(st, 200);
        cJSON_Delete(j);
        j = t_api("GET", "/webhooks/1", NULL, &st);
        assert_int_equal(st, 404);
        assert_jstr(j, "message", "No Result found for Webhook with id 1");
        cJSON_Delete(j);
}

/* A webhook from the fixture delivers like one made through the API. */
static void fixture_webhook_delivers(void **state)
{
        (void)state;
        int st;
        char fx[2048];
        snprintf(fx, sizeof(fx),
                 "{\"tenants\":{\"t1\":{\"ac\":{\"api_token\":\"tok\","
                 "\"timezone\":\"+01:00\",\"lists\":[{\"id\":\"3\"}],"
                 "\"contacts\":[{\"email\":\"z@x.com\",\"lists\":{\"3\":1}}],"
                 "\"webhooks\":[{\"name\":\"fx\",\"url\":\"http://"
                 "127.0.0.1:%d/fx\",\"events\":[\"unsubscribe\"],"
                 "\"sources\":[\"public\"],\"listid\":\"3\"}]}}}}",
                 RX.port);
        cJSON_Delete(t_ctl("POST", "/sandbox/fixture", fx, &st));
        assert_int_equal(st, 200);
        ctl("unsubscribe", "{\"email\":\"z@x.com\"}");
        flush();
        assert_int_equal(rx_count(), 1);
        cJSON *f = rx_fields(0);
        assert_jstr(f, "list", "3");
        assert_true(t_is_iso(t_str(f, "date_time"), "+01:00"));
        cJSON_Delete(f);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(
                unsubscribe_link_posts_php_style_form, setup, teardown),
            cmocka_unit_test_setup_teardown(
                unsubscribe_all_fires_one_per_active_list, setup, teardown),
            cmocka_unit_test_setup_teardown(
                public_unsubscribe_in_list_array_form, setup, teardown),
            cmocka_unit_test_setup_teardown(filtered_by_events_and_sources,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(filtered_by_list_except_tag_events,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(api_writes_echo_with_source_api,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                system_bounce_and_admin_update_events, setup, teardown),
            cmocka_unit_test_setup_teardown(import_fires_no_webhooks, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(answer_410_deactivates_the_hook,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(failed_deliveries_are_never_retried,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(duplicate_control_sends_twice,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(drop_control_loses_one, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(hold_then_release_in_reverse, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(release_shuffled_delivers_each_once,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(inspect_lists_url_body_and_answer,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(webhooks_crud_shapes, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(fixture_webhook_delivers, setup,
                                            teardown),
        };
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
