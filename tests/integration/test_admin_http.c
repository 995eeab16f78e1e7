/*
 * test_admin_http.c - the admin server and the HTTP client against each
 * other over loopback, plus a small libmicrohttpd server of the test's own
 * for timeouts, oversize bodies, 429s, keep-alive and request bodies.
 */
#include "osy_test.h"
#include "optsync/admin.h"
#include "optsync/http.h"
#include "optsync/log.h"
#include "optsync/metrics.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the test's own HTTP server ----------------------------------------- */

static struct MHD_Daemon *peer;
static int peer_port;
static atomic_int peer_connections; /* TCP connections accepted */
static atomic_int peer_stopping;    /* ends /slow handlers early */

/* Per-request state: the uploaded body. */
struct upload {
        char *buf;
        size_t len;
};

static void on_peer_notify(void *cls, struct MHD_Connection *conn,
                           void **socket_context,
                           enum MHD_ConnectionNotificationCode toe)
{
        (void)cls;
        (void)conn;
        (void)socket_context;
        if (toe == MHD_CONNECTION_NOTIFY_STARTED)
                atomic_fetch_add(&peer_connections, 1);
}

static void on_peer_completed(void *cls, struct MHD_Connection *conn,
                              void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
        struct upload *u = *con_cls;

        (void)cls;
        (void)conn;
        (void)toe;
        if (u) {
                free(u->buf);
                free(u);
                *con_cls = NULL;
        }
}

/* Endless body without Content-Length (chunked): only a client that stops
 * reading on its own gets out of it quickly. */
static ssize_t endless_body(void *cls, uint64_t pos, char *buf, size_t max)
{
        (void)cls;
        if (pos > (uint64_t)1 << 30)
                return MHD_CONTENT_READER_END_OF_STREAM;
        memset(buf, 'x', max);
        return (ssize_t)max;
}

static enum MHD_Result peer_send(struct MHD_Connection *conn,
                                 unsigned int status, struct MHD_Response *r)
{
        enum MHD_Result ret = MHD_queue_response(conn, status, r);

        MHD_destroy_response(r);
        return ret;
}

static enum MHD_Result on_peer_request(void *cls, struct MHD_Connection *conn,
                                       const char *url, const char *method,
                                       const char *version,
                                       const char *upload_data,
                                       size_t *upload_data_size, void **con_cls)
{
        struct upload *u = *con_cls;
        struct MHD_Response *r;
        (void)cls;
        (void)version;

        /* First call: headers only. Then body pieces, then a final call
         * with nothing left, where we answer. */
        if (!u) {
                *con_cls = calloc(1, sizeof(struct upload));
                return *con_cls ? MHD_YES : MHD_NO;
        }
        if (*upload_data_size) {
                char *nb = realloc(u->buf, u->len + *upload_data_size);

                if (!nb)
                        return MHD_NO;
                memcpy(nb + u->len, upload_data, *upload_data_size);
                u->buf = nb;
                u->len += *upload_data_size;
                *upload_data_size = 0;
                return MHD_YES;
        }

        if (!strcmp(url, "/slow")) {
                const char *ms = MHD_lookup_connection_value(
                    conn, MHD_GET_ARGUMENT_KIND, "ms");
                int64_t until =
                    osy_test_now_ms() + (ms ? strtol(ms, NULL, 10) : 3000);

                while (osy_test_now_ms() < until &&
                       !atomic_load(&peer_stopping))
                        osy_test_sleep_ms(5);
                r = MHD_create_response_from_buffer(4, (void *)"late",
                                                    MHD_RESPMEM_PERSISTENT);
                return peer_send(conn, MHD_HTTP_OK, r);
        }
        if (!strcmp(url, "/big")) {
                static char big[64 * 1024];

                memset(big, 'b', sizeof(big));
                r = MHD_create_response_from_buffer(sizeof(big), big,
                                                    MHD_RESPMEM_PERSISTENT);
                return peer_send(conn, MHD_HTTP_OK, r);
        }
        if (!strcmp(url, "/endless")) {
                r = MHD_create_response_from_callback(
                    MHD_SIZE_UNKNOWN, 16 * 1024, endless_body, NULL, NULL);
                return peer_send(conn, MHD_HTTP_OK, r);
        }
        if (!strcmp(url, "/throttle")) {
                r = MHD_create_response_from_buffer(9, (void *)"slow down",
                                                    MHD_RESPMEM_PERSISTENT);
                MHD_add_response_header(r, "Retry-After", "7");
                MHD_add_response_header(r, "X-Dup", "first");
                MHD_add_response_header(r, "X-Dup", "second");
                return peer_send(conn, 429, r);
        }
        if (!strcmp(url, "/echo")) {
                /* The body back as it arrived, the method and the token
                 * header in response headers. */
                const char *tok = MHD_lookup_connection_value(
                    conn, MHD_HEADER_KIND, "Api-Token");
                const char *ct = MHD_lookup_connection_value(
                    conn, MHD_HEADER_KIND, "Content-Type");

                r = MHD_create_response_from_buffer(
                    u->len, u->buf ? u->buf : (void *)"",
                    MHD_RESPMEM_MUST_COPY);
                MHD_add_response_header(r, "X-Method", method);
                MHD_add_response_header(r, "X-Token", tok ? tok : "-");
                MHD_add_response_header(r, "X-Content-Type", ct ? ct : "-");
                return peer_send(conn, MHD_HTTP_OK, r);
        }
        r = MHD_create_response_from_buffer(5, (void *)"hello",
                                            MHD_RESPMEM_PERSISTENT);
        return peer_send(conn, MHD_HTTP_OK, r);
}

static int group_setup(void **state)
{
        struct sockaddr_in sin = {.sin_family = AF_INET};
        const union MHD_DaemonInfo *info;
        const unsigned int flags =
            MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD;
        (void)state;

        /* A thread per connection, so /slow blocks nobody else. No error
         * log: the aborted /endless transfers are expected. */
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        peer = MHD_start_daemon(flags, 0, NULL, NULL, on_peer_request, NULL,
                                MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
                                MHD_OPTION_NOTIFY_CONNECTION, on_peer_notify,
                                NULL, MHD_OPTION_NOTIFY_COMPLETED,
                                on_peer_completed, NULL, MHD_OPTION_END);
        if (!peer)
                return -1;
        info      = MHD_get_daemon_info(peer, MHD_DAEMON_INFO_BIND_PORT);
        peer_port = info ? info->port : 0;
        return peer_port ? 0 : -1;
}

static int group_teardown(void **state)
{
        (void)state;
        atomic_store(&peer_stopping, 1);
        if (peer)
                MHD_stop_daemon(peer);
        return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static osy_http_client_t *client(long timeout_ms, size_t max_body)
{
        char errstr[OSY_ERRSTR_SIZE];
        struct osy_http_opts o = {.timeout_ms = timeout_ms,
                                  .max_body   = max_body};
        osy_http_client_t *c   = NULL;

        assert_int_equal(osy_http_client_new(&c, &o, errstr, sizeof(errstr)),
                         OSY_OK);
        return c;
}

static osy_err_t get(osy_http_client_t *c, int port, const char *path,
                     struct osy_http_response *resp, char *errstr)
{
        char url[256];
        struct osy_http_request req = {.method = OSY_HTTP_GET, .url = url};

        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
        return osy_http_do(c, &req, resp, errstr, OSY_ERRSTR_SIZE);
}

/* GET and expect an answer with @p status; the caller frees @p resp. */
static void get_status(osy_http_client_t *c, int port, const char *path,
                       int status, struct osy_http_response *resp)
{
        char errstr[OSY_ERRSTR_SIZE] = "";

        if (get(c, port, path, resp, errstr) != OSY_OK)
                fail_msg("GET %s: %s", path, errstr);
        assert_int_equal(resp->status, status);
}

/* ---- the admin server --------------------------------------------------- */

static atomic_int ready_flag;
static atomic_int live_flag;
static _Atomic int64_t fake_now;

static int ready_check(void *opaque, char *reason, size_t size)
{
        (void)opaque;
        if (atomic_load(&ready_flag))
                return 1;
        snprintf(reason, size, "partitions not assigned yet");
        return 0;
}

static int live_check(void *opaque, char *reason, size_t size)
{
        (void)opaque;
        if (atomic_load(&live_flag))
                return 1;
        snprintf(reason, size, "kafka handle fatal");
        return 0;
}

static int64_t fake_clock(void)
{
        return atomic_load(&fake_now);
}

static osy_admin_t *admin(struct osy_admin_opts *o)
{
        char errstr[OSY_ERRSTR_SIZE] = "";
        osy_admin_t *a               = NULL;

        if (osy_admin_start(&a, o, errstr, sizeof(errstr)) != OSY_OK)
                fail_msg("admin start: %s", errstr);
        assert_int_not_equal(osy_admin_port(a), 0);
        return a;
}

static void admin_port_zero_picks_free_ports(void **state)
{
        struct osy_admin_opts o = {0};
        osy_admin_t *a, *b;
        (void)state;

        a = admin(&o);
        b = admin(&o);
        assert_int_not_equal(osy_admin_port(a), osy_admin_port(b));
        osy_admin_stop(a);
        osy_admin_stop(b);
}

static void admin_start_errors(void **state)
{
        char errstr[OSY_ERRSTR_SIZE];
        struct osy_admin_opts o = {.bind_addr = "localhost"};
        osy_admin_t *a = NULL, *b = (osy_admin_t *)1;
        (void)state;

        /* Literals only: no DNS at startup. */
        assert_int_equal(osy_admin_start(&b, &o, errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
        assert_null(b);
        o.bind_addr = NULL;
        o.port      = 70000;
        assert_int_equal(osy_admin_start(&b, &o, errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
        /* A port already taken. */
        o.port = 0;
        a      = admin(&o);
        o.port = osy_admin_port(a);
        assert_int_equal(osy_admin_start(&b, &o, errstr, sizeof(errstr)),
                         OSY_ERR_TRANSIENT);
        assert_non_null(strstr(errstr, "cannot listen"));
        osy_admin_stop(a);
        osy_admin_stop(NULL);
}

static void admin_ipv6_loopback(void **state)
{
        struct osy_admin_opts o = {.bind_addr = "::1"};
        char errstr[OSY_ERRSTR_SIZE], url[64];
        osy_http_client_t *c = client(2000, 0);
        struct osy_http_response r;
        struct osy_http_request req = {.method = OSY_HTTP_GET, .url = url};
        osy_admin_t *a              = NULL;
        (void)state;

        if (osy_admin_start(&a, &o, errstr, sizeof(errstr)) != OSY_OK) {
                osy_http_client_destroy(c);
                skip(); /* no IPv6 on this host */
        }
        snprintf(url, sizeof(url), "http://[::1]:%d/healthz",
                 osy_admin_port(a));
        assert_int_equal(osy_http_do(c, &req, &r, errstr, sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(r.status, 200);
        osy_http_response_free(&r);
        osy_admin_stop(a);
        osy_http_client_destroy(c);
}

static void healthz_ok_with_content_type(void **state)
{
        struct osy_admin_opts o = {0};
        osy_http_client_t *c    = client(2000, 0);
        osy_admin_t *a          = admin(&o);
        struct osy_http_response r;
        (void)state;

        get_status(c, osy_admin_port(a), "/healthz", 200, &r);
        assert_string_equal(r.body, "ok\n");
        assert_string_equal(osy_http_response_header(&r, "content-type"),
                            "text/plain; charset=utf-8");
        assert_true(r.total_ms >= 0 && r.total_ms < 2000);
        osy_http_response_free(&r);
        osy_admin_stop(a);
        osy_http_client_destroy(c);
}

static void healthz_fails_on_stale_heartbeat(void **state)
{
        struct osy_admin_opts o = {.heartbeat_timeout_ms = 1000,
                                   .clock_ms             = fake_clock};
        osy_http_client_t *c    = client(2000, 0);
        struct osy_http_response r;
        osy_admin_t *a;
        (void)state;

        atomic_store(&fake_now, 50000);
        a = admin(&o); /* starting counts as a heartbeat */
        get_status(c, osy_admin_port(a), "/healthz", 200, &r);
        osy_http_response_free(&r);

        atomic_store(&fake_now, 51000); /* exactly at the limit: alive */
        get_status(c, osy_admin_port(a), "/healthz", 200, &r);
        osy_http_response_free(&r);

        atomic_store(&fake_now, 56000); /* the main loop is stuck */
        get_status(c, osy_admin_port(a), "/healthz", 503, &r);
        assert_non_null(strstr(r.body, "no heartbeat for 6000 ms"));
        osy_http_response_free(&r);

        osy_admin_heartbeat(a, 55500); /* it beats again */
        get_status(c, osy_admin_port(a), "/healthz", 200, &r);
        osy_http_response_free(&r);
        osy_admin_stop(a);
        osy_http_client_destroy(c);
}

static void healthz_liveness_callback(void **state)
{
        struct osy_admin_opts o = {.live_cb = live_check};
        osy_http_client_t *c    = client(2000, 0);
        osy_admin_t *a          = admin(&o);
        struct osy_http_response r;
        (void)state;

        atomic_store(&live_flag, 0);
        get_status(c, osy_admin_port(a), "/healthz", 503, &r);
        assert_string_equal(r.body, "unhealthy: kafka handle fatal\n");
        osy_http_response_free(&r);
        atomic_store(&live_flag, 1);
        get_status(c, osy_admin_port(a), "/healthz", 200, &r);
        osy_http_response_free(&r);
        osy_admin_stop(a);
        osy_http_client_destroy(c);
}

static void readyz_follows_callback(void **state)
{
        struct osy_admin_opts o = {.ready_cb = ready_check};
        osy_http_client_t *c    = client(2000, 0);
        osy_admin_t *a          = admin(&o);
        struct osy_http_response r;
        (void)state;

        atomic_store(&ready_flag, 0);
        get_status(c, osy_admin_port(a), "/readyz", 503, &r);
        assert_string_equal(r.body, "not ready: partitions not assigned yet\n");
        osy_http_response_free(&r);

        atomic_store(&ready_flag, 1);
        get_status(c, osy_admin_port(a), "/readyz", 200, &r);
        assert_string_equal(r.body, "ready\n");
        osy_http_response_free(&r);

        atomic_store(&ready_flag, 0);
        get_status(c, osy_admin_port(a), "/readyz", 503, &r);
        osy_http_response_free(&r);
        osy_admin_stop(a);
        osy_http_client_destroy(c);
}

static void readyz_without_callback_is_ready(void **state)
{
        struct osy_admin_opts o = {0};
        osy_http_client_t *c    = client(2000, 0);
        osy_admin_t *a          = admin(&o);
        struct osy_http_response r;
        (void)state;

        get_status(c, osy_admin_port(a), "/readyz", 200, &r);
        osy_http_response_free(&r);
        osy_admin_stop(a);
        osy_http_client_destroy(c);
}

static void metrics_served_as_prometheus_text(void **state)
{
        char errstr[OSY_ERRSTR_SIZE];
        osy_metrics_t *reg      = osy_metrics_new();
        struct osy_admin_opts o = {.metrics = reg};
        osy_http_client_t *c    = client(2000, 0);
        osy_metric_t *m         = NULL;
        struct osy_http_response r;
        osy_admin_t *a;
        (void)state;

        assert_int_equal(
            osy_metrics_counter_new(
                reg, &m, "optsync_test_requests_total", "Test requests.",
                (const char *const[]){"outcome", NULL}, errstr, sizeof(errstr)),
            OSY_OK);
        a = admin(&o);
        for (int i = 0; i < 3; i++)
                osy_counter_inc(
                    osy_metric_series(m, (const char *const[]){"ok"}));
        get_status(c, osy_admin_port(a), "/metrics", 200, &r);
        assert_string_equal(osy_http_response_header(&r, "Content-Type"),
                            "text/plain; version=0.0.4");
        assert_non_null(strstr(r.body, "# TYPE optsync_test_requests_total "
                                       "counter\n"));
        assert_non_null(
            strstr(r.body, "optsync_test_requests_total{outcome=\"ok\"} 3\n"));
        osy_http_response_free(&r);

        /* The page is live: a later increment shows up. */
        osy_counter_inc(osy_metric_series(m, (const char *const[]){"ok"}));
        get_status(c, osy_admin_port(a), "/metrics", 200, &r);
        assert_non_null(
            strstr(r.body, "optsync_test_requests_total{outcome=\"ok\"} 4\n"));
        osy_http_response_free(&r);
        osy_admin_stop(a);
        osy_http_client_destroy(c);
        osy_metrics_destroy(reg);
}

static void unknown_path_is_404(void **state)
{
        struct osy_admin_opts o = {0};
        osy_http_client_t *c    = client(2000, 0);
        osy_admin_t *a          = admin(&o);
        struct osy_http_response r;
        (void)state;

        get_status(c, osy_admin_port(a), "/nope", 404, &r);
        osy_http_response_free(&r);
        get_status(c, osy_admin_port(a), "/healthz/extra", 404, &r);
        osy_http_response_free(&r);
        /* A query string does not change the route. */
        get_status(c, osy_admin_port(a), "/healthz?verbose=1", 200, &r);
        osy_http_response_free(&r);
        osy_admin_stop(a);
        osy_http_client_destroy(c);
}

static void non_get_is_405_with_allow(void **state)
{
        const osy_http_method_t methods[] = {OSY_HTTP_POST, OSY_HTTP_PUT,
                                             OSY_HTTP_DELETE};
        struct osy_admin_opts o           = {0};
        osy_http_client_t *c              = client(2000, 0);
        osy_admin_t *a                    = admin(&o);
        char url[128], errstr[OSY_ERRSTR_SIZE];
        struct osy_http_response r;
        (void)state;

        snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz",
                 osy_admin_port(a));
        for (size_t i = 0; i < 3; i++) {
                struct osy_http_request req = {.method   = methods[i],
                                               .url      = url,
                                               .body     = "x=1",
                                               .body_len = 3};

                assert_int_equal(
                    osy_http_do(c, &req, &r, errstr, sizeof(errstr)), OSY_OK);
                assert_int_equal(r.status, 405);
                assert_string_equal(osy_http_response_header(&r, "Allow"),
                                    "GET");
                osy_http_response_free(&r);
        }
        osy_admin_stop(a);
        osy_http_client_destroy(c);
}

/* ---- the HTTP client against the test's server -------------------------- */

static void client_timeout_is_transient(void **state)
{
        char errstr[OSY_ERRSTR_SIZE] = "";
        osy_http_client_t *c         = client(300, 0);
        struct osy_http_response r;
        int64_t t0 = osy_test_now_ms(), took;
        (void)state;

        assert_int_equal(get(c, peer_port, "/slow?ms=3000", &r, errstr),
                         OSY_ERR_TRANSIENT);
        took = osy_test_now_ms() - t0;
        assert_true(took >= 250 && took < 2000);
        assert_non_null(strstr(errstr, "/slow"));
        assert_null(strstr(errstr, "ms=3000")); /* no query in errors */
        assert_null(r.body);
        osy_http_client_destroy(c);
}

static void client_connection_refused_is_transient(void **state)
{
        char errstr[OSY_ERRSTR_SIZE] = "";
        struct sockaddr_in sin       = {.sin_family = AF_INET};
        socklen_t len                = sizeof(sin);
        osy_http_client_t *c         = client(2000, 0);
        struct osy_http_response r;
        int fd = socket(AF_INET, SOCK_STREAM, 0), port;
        (void)state;

        /* A port that was free a moment ago and has no listener now. */
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
        port = ntohs(sin.sin_port);
        close(fd);
        assert_int_equal(get(c, port, "/", &r, errstr), OSY_ERR_TRANSIENT);
        assert_true(osy_err_is_retryable(OSY_ERR_TRANSIENT));
        assert_non_null(strstr(errstr, "curl 7")); /* COULDNT_CONNECT */
        osy_http_client_destroy(c);
}

static void client_oversize_body_is_too_large(void **state)
{
        char errstr[OSY_ERRSTR_SIZE] = "";
        osy_http_client_t *c         = client(5000, 1024);
        struct osy_http_response r;
        (void)state;

        assert_int_equal(get(c, peer_port, "/big", &r, errstr),
                         OSY_ERR_TOO_LARGE);
        assert_non_null(strstr(errstr, "1024"));
        assert_null(r.body);
        /* The client stays usable after an aborted transfer. */
        get_status(c, peer_port, "/hello", 200, &r);
        assert_string_equal(r.body, "hello");
        osy_http_response_free(&r);
        osy_http_client_destroy(c);
}

static void client_endless_chunked_body_aborted_early(void **state)
{
        char errstr[OSY_ERRSTR_SIZE] = "";
        osy_http_client_t *c         = client(10000, 100 * 1024);
        struct osy_http_response r;
        int64_t t0 = osy_test_now_ms();
        (void)state;

        /* No Content-Length: only the write callback can stop this. */
        assert_int_equal(get(c, peer_port, "/endless", &r, errstr),
                         OSY_ERR_TOO_LARGE);
        assert_true(osy_test_now_ms() - t0 < 3000);
        osy_http_client_destroy(c);
}

static void client_body_exactly_at_cap_is_ok(void **state)
{
        osy_http_client_t *c = client(5000, 64 * 1024);
        struct osy_http_response r;
        (void)state;

        get_status(c, peer_port, "/big", 200, &r);
        assert_int_equal(r.body_len, 64 * 1024);
        assert_int_equal(r.body[r.body_len], '\0');
        assert_int_equal(r.body[0], 'b');
        osy_http_response_free(&r);
        osy_http_client_destroy(c);
}

static void client_429_retry_after_captured(void **state)
{
        osy_http_client_t *c = client(2000, 0);
        struct osy_http_response r;
        const char *ra;
        (void)state;

        get_status(c, peer_port, "/throttle", 429, &r);
        assert_string_equal(r.body, "slow down");
        assert_int_equal(osy_err_from_http(r.status, r.body),
                         OSY_ERR_THROTTLED);
        ra = osy_http_response_header(&r, "retry-after");
        assert_non_null(ra);
        assert_int_equal(osy_http_retry_after_ms(ra, time(NULL)), 7000);
        assert_string_equal(osy_http_response_header(&r, "x-dup"), "second");
        osy_http_response_free(&r);
        osy_http_client_destroy(c);
}

static void client_keeps_connection_alive(void **state)
{
        osy_http_client_t *c = client(2000, 0), *c2;
        struct osy_http_response r;
        int before;
        (void)state;

        before = atomic_load(&peer_connections);
        for (int i = 0; i < 5; i++) {
                get_status(c, peer_port, "/hello", 200, &r);
                osy_http_response_free(&r);
        }
        assert_int_equal(atomic_load(&peer_connections) - before, 1);
        /* A second client has its own connection: the count is real. */
        c2 = client(2000, 0);
        get_status(c2, peer_port, "/hello", 200, &r);
        osy_http_response_free(&r);
        assert_int_equal(atomic_load(&peer_connections) - before, 2);
        osy_http_client_destroy(c2);
        osy_http_client_destroy(c);
}

static void client_post_body_delivered_intact(void **state)
{
        const osy_http_method_t methods[] = {OSY_HTTP_POST, OSY_HTTP_PUT,
                                             OSY_HTTP_PATCH, OSY_HTTP_DELETE};
        const char *const hdrs[] = {"Content-Type: application/octet-stream",
                                    NULL};
        char url[128], errstr[OSY_ERRSTR_SIZE];
        osy_http_client_t *c = client(5000, 0);
        size_t n             = 200 * 1024;
        unsigned char *body  = malloc(n);
        struct osy_http_response r;
        (void)state;

        /* Binary with NUL bytes, bigger than any single socket write. */
        for (size_t i = 0; i < n; i++)
                body[i] = (unsigned char)(i * 7 + i / 256);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", peer_port);
        for (size_t i = 0; i < 4; i++) {
                struct osy_http_request req = {.method   = methods[i],
                                               .url      = url,
                                               .headers  = hdrs,
                                               .body     = body,
                                               .body_len = n};

                assert_int_equal(
                    osy_http_do(c, &req, &r, errstr, sizeof(errstr)), OSY_OK);
                assert_int_equal(r.status, 200);
                assert_string_equal(osy_http_response_header(&r, "X-Method"),
                                    osy_http_method2str(methods[i]));
                assert_string_equal(
                    osy_http_response_header(&r, "X-Content-Type"),
                    "application/octet-stream");
                assert_int_equal(r.body_len, n);
                assert_memory_equal(r.body, body, n);
                osy_http_response_free(&r);
        }
        free(body);
        osy_http_client_destroy(c);
}

static void client_empty_post_and_total_time(void **state)
{
        char url[128], errstr[OSY_ERRSTR_SIZE];
        osy_http_client_t *c        = client(5000, 0);
        struct osy_http_request req = {.method = OSY_HTTP_POST, .url = url};
        struct osy_http_response r;
        (void)state;

        snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", peer_port);
        assert_int_equal(osy_http_do(c, &req, &r, errstr, sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(r.body_len, 0);
        assert_string_equal(r.body, ""); /* never NULL on success */
        assert_string_equal(osy_http_response_header(&r, "X-Method"), "POST");
        osy_http_response_free(&r);

        get_status(c, peer_port, "/slow?ms=200", 200, &r);
        assert_true(r.total_ms >= 150);
        osy_http_response_free(&r);
        osy_http_client_destroy(c);
}

static void client_never_logs_credentials(void **state)
{
        const char *const hdrs[] = {"Api-Token: s3cr3t-token-value",
                                    "Authorization: Bearer abc.def.ghi",
                                    "Accept: application/json", NULL};
        char url[128], errstr[OSY_ERRSTR_SIZE], line[4096];
        osy_http_client_t *c        = client(2000, 0);
        struct osy_http_request req = {
            .method = OSY_HTTP_GET, .url = url, .headers = hdrs};
        struct osy_http_response r;
        FILE *log = tmpfile();
        size_t got;
        (void)state;

        assert_non_null(log);
        osy_log_init("test", OSY_LOG_DEBUG, log);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo?api_key=q1w2e3",
                 peer_port);
        assert_int_equal(osy_http_do(c, &req, &r, errstr, sizeof(errstr)),
                         OSY_OK);
        /* The server got the real token ... */
        assert_string_equal(osy_http_response_header(&r, "X-Token"),
                            "s3cr3t-token-value");
        osy_http_response_free(&r);
        osy_log_init("test", OSY_LOG_OFF, NULL);

        /* ... and the debug log shows the request, masked. */
        fflush(log);
        rewind(log);
        got       = fread(line, 1, sizeof(line) - 1, log);
        line[got] = '\0';
        fclose(log);
        assert_non_null(strstr(line, "http request"));
        assert_non_null(strstr(line, "Api-Token: ***"));
        assert_non_null(strstr(line, "Accept: application/json"));
        assert_null(strstr(line, "s3cr3t"));
        assert_null(strstr(line, "abc.def"));
        assert_null(strstr(line, "q1w2e3"));
        osy_http_client_destroy(c);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(admin_port_zero_picks_free_ports),
    cmocka_unit_test(admin_start_errors),
    cmocka_unit_test(admin_ipv6_loopback),
    cmocka_unit_test(healthz_ok_with_content_type),
    cmocka_unit_test(healthz_fails_on_stale_heartbeat),
    cmocka_unit_test(healthz_liveness_callback),
    cmocka_unit_test(readyz_follows_callback),
    cmocka_unit_test(readyz_without_callback_is_ready),
    cmocka_unit_test(metrics_served_as_prometheus_text),
    cmocka_unit_test(unknown_path_is_404),
    cmocka_unit_test(non_get_is_405_with_allow),
    cmocka_unit_test(client_timeout_is_transient),
    cmocka_unit_test(client_connection_refused_is_transient),
    cmocka_unit_test(client_oversize_body_is_too_large),
    cmocka_unit_test(client_endless_chunked_body_aborted_early),
    cmocka_unit_test(client_body_exactly_at_cap_is_ok),
    cmocka_unit_test(client_429_retry_after_captured),
    cmocka_unit_test(client_keeps_connection_alive),
    cmocka_unit_test(client_post_body_delivered_intact),
    cmocka_unit_test(client_empty_post_and_total_time),
    cmocka_unit_test(client_never_logs_credentials),
};
OSY_TEST_MAIN(tests, group_setup, group_teardown)
