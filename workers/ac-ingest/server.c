/*
 * server.c - the webhook receiver: routing and token check, bounded body
 * collection, decode, then a suspended connection until the pipeline
 * answers. Status codes: 200, 400, 401, 404, 405, 413, 503; never 410.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "optsync/log.h"

#define DEFAULT_THREADS 2
#define DEFAULT_MAX_CONNECTIONS 4096
#define DEFAULT_MAX_BODY 262144
#define CONNECTION_TIMEOUT_S 60
/* A client that keeps sending past the limit is cut off after this many
 * times the limit (the 413 is answered when the body ends, if it does). */
#define DISCARD_FACTOR 4

struct route {
        char tenant[OSY_TENANT_MAX + 1];
        unsigned char digest[SHA256_DIGEST_LENGTH];
        int enabled;
};

struct osy_ingest_server_s {
        struct MHD_Daemon *daemon;
        int port;
        size_t max_body;
        struct route *routes;
        size_t n_routes;
        osy_pipe_t *pipe;
        osy_metric_t *m_requests;
        osy_series_t *m_waiting; /* gauge: the waiting count below */
        int quiesced;
        /* Handed to the pipeline and not yet answered: from the suspend
         * until MHD reports the answer sent (or the connection gone). */
        atomic_int waiting;
};

enum req_state {
        RS_RECEIVING = 0, /* headers checked, body arriving */
        RS_WAITING,       /* suspended until the pipeline answers */
        RS_DONE           /* result set: answer on the next call */
};

/* One request, from its headers to MHD's completion notice. */
struct req {
        osy_ingest_server_t *srv;
        struct MHD_Connection *conn;
        const struct route *route;
        unsigned status; /* an error decided while receiving (0: none) */
        int answered;    /* a response is queued: ignore what follows */
        int waited;      /* counted in srv->waiting until completed */
        char reason[OSY_ERRSTR_SIZE];
        char *body;
        size_t len, cap, discarded;
        atomic_int state;
        atomic_int result; /* osy_pipe_result_t */
        struct osy_acwh_result res;
};

/* ---- answers ------------------------------------------------------------- */

static void count(osy_ingest_server_t *s, const char *type, const char *outcome)
{
        const char *labels[] = {type, outcome};

        if (s->m_requests)
                osy_counter_inc(osy_metric_series(s->m_requests, labels));
}

/* Append @p src to @p out as JSON string content (no quotes). */
static size_t json_escape(char *out, size_t size, const char *src)
{
        size_t o = 0;

        for (const unsigned char *p = (const unsigned char *)src;
             *p && o + 7 < size; p++) {
                if (*p == '"' || *p == '\\') {
                        out[o++] = '\\';
                        out[o++] = (char)*p;
                } else if (*p < 0x20 || *p == 0x7f) {
                        o += (size_t)snprintf(out + o, size - o, "\\u%04x", *p);
                } else {
                        out[o++] = (char)*p;
                }
        }
        out[o] = '\0';
        return o;
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status,
                               const char *body, const char *allow)
{
        struct MHD_Response *r = MHD_create_response_from_buffer(
            strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
        enum MHD_Result ret;

        if (!r)
                return MHD_NO; /* MHD closes the connection */
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "application/json");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        if (allow)
                MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
        ret = MHD_queue_response(conn, status, r);
        MHD_destroy_response(r);
        return ret;
}

static const char *outcome_of(unsigned status)
{
        switch (status) {
        case MHD_HTTP_BAD_REQUEST:
                return "bad_request";
        case MHD_HTTP_UNAUTHORIZED:
                return "unauthorized";
        case MHD_HTTP_NOT_FOUND:
                return "not_found";
        case MHD_HTTP_METHOD_NOT_ALLOWED:
                return "method_not_allowed";
        case MHD_HTTP_CONTENT_TOO_LARGE:
                return "too_large";
        default:
                return "failed";
        }
}

static enum MHD_Result respond_error(struct req *r, unsigned status,
                                     const char *type_label)
{
        char body[2 * OSY_ERRSTR_SIZE + 32], esc[2 * OSY_ERRSTR_SIZE];

        r->status   = status;
        r->answered = 1;

        json_escape(esc, sizeof(esc), r->reason);
        snprintf(body, sizeof(body), "{\"error\":\"%s\"}", esc);
        count(r->srv, type_label, outcome_of(status));
        return respond(r->conn, status, body,
                       status == MHD_HTTP_METHOD_NOT_ALLOWED ? "POST" : NULL);
}

static enum MHD_Result fail(struct req *r, unsigned status,
                            const char *type_label, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum MHD_Result fail(struct req *r, unsigned status,
                            const char *type_label, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
        va_end(ap);
        return respond_error(r, status, type_label);
}

/* 200 with the ids, so a sender (or a test) can see what was stored. */
static enum MHD_Result respond_stored(struct req *r, osy_pipe_result_t res)
{
        const char *where = res == OSY_PIPE_KAFKA ? "kafka" : "spool";
        size_t size       = 64 + r->res.n * (OSY_ID_LEN + 3);
        char *body        = malloc(size);
        enum MHD_Result ret;
        size_t o;

        if (!body)
                return MHD_NO;
        o = (size_t)snprintf(body, size,
                             "{\"ok\":true,\"stored\":\"%s\","
                             "\"ids\":[",
                             where);
        for (size_t i = 0; i < r->res.n; i++)
                o += (size_t)snprintf(body + o, size - o, "%s\"%s\"",
                                      i ? "," : "", r->res.out[i].id);
        snprintf(body + o, size - o, "]}");
        count(r->srv, r->res.type_label,
              res == OSY_PIPE_KAFKA ? "kafka" : "spooled");
        ret = respond(r->conn, MHD_HTTP_OK, body, NULL);
        free(body);
        return ret;
}

/* ---- routing ------------------------------------------------------------- */

/* "/webhooks/ac/<tenant>/<token>": the route, and whether the token is
 * right. @returns 404, 401 or 0 (with *route set). */
static unsigned route_check(osy_ingest_server_t *s, const char *url,
                            const struct route **route, char *why,
                            size_t why_size)
{
        const char *rest, *slash;
        unsigned char got[SHA256_DIGEST_LENGTH];
        size_t tlen;

        *route = NULL;
        if (strncmp(url, OSY_INGEST_ROUTE_PREFIX,
                    strlen(OSY_INGEST_ROUTE_PREFIX))) {
                snprintf(why, why_size, "no such route");
                return MHD_HTTP_NOT_FOUND;
        }
        rest  = url + strlen(OSY_INGEST_ROUTE_PREFIX);
        slash = strchr(rest, '/');
        if (!slash || slash == rest || !slash[1] || strchr(slash + 1, '/')) {
                snprintf(why, why_size,
                         "no such route (expected "
                         "/webhooks/ac/<tenant>/<token>)");
                return MHD_HTTP_NOT_FOUND;
        }
        tlen = (size_t)(slash - rest);
        for (size_t i = 0; i < s->n_routes; i++) {
                const struct route *rt = &s->routes[i];
                if (strlen(rt->tenant) == tlen &&
                    !memcmp(rt->tenant, rest, tlen) && rt->enabled) {
                        *route = rt;
                        break;
                }
        }
        if (!*route) {
                snprintf(why, why_size, "unknown tenant");
                return MHD_HTTP_NOT_FOUND;
        }
        /* AC signs nothing: the token is the only secret. Compare digests
         * of equal length in constant time, so neither the token's length
         * nor its prefix leaks through timing. */
        SHA256((const unsigned char *)slash + 1, strlen(slash + 1), got);
        if (CRYPTO_memcmp(got, (*route)->digest, sizeof(got))) {
                snprintf(why, why_size, "wrong token");
                return MHD_HTTP_UNAUTHORIZED;
        }
        return 0;
}

/* ---- the request handler ------------------------------------------------- */

static void on_pipe_done(void *opaque, osy_pipe_result_t res)
{
        struct req *r = opaque;

        atomic_store(&r->result, (int)res);
        atomic_store(&r->state, RS_DONE);
        MHD_resume_connection(r->conn); /* any thread may resume */
}

/* First call: only the headers are known. */
static enum MHD_Result on_headers(osy_ingest_server_t *s, struct req *r,
                                  const char *url, const char *method)
{
        const char *cl;
        unsigned st;

        st = route_check(s, url, &r->route, r->reason, sizeof(r->reason));
        if (st == MHD_HTTP_NOT_FOUND)
                return respond_error(r, st, "none");
        if (strcmp(method, MHD_HTTP_METHOD_POST)) {
                snprintf(r->reason, sizeof(r->reason),
                         "method %s not allowed; AC webhooks are POSTs",
                         method);
                return respond_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "none");
        }
        if (st)
                return respond_error(r, st, "none");
        cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                         MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
                char *end;
                unsigned long long n;
                errno = 0;
                n     = strtoull(cl, &end, 10);
                if (!errno && end != cl && n > s->max_body) {
                        snprintf(r->reason, sizeof(r->reason),
                                 "body of %llu bytes is over the limit of "
                                 "%zu",
                                 n, s->max_body);
                        return respond_error(r, MHD_HTTP_CONTENT_TOO_LARGE,
                                             "none");
                }
        }
        return MHD_YES;
}

static enum MHD_Result on_body(osy_ingest_server_t *s, struct req *r,
                               const char *data, size_t *size)
{
        size_t n = *size;

        *size = 0; /* consumed (or discarded) */
        if (r->status) {
                r->discarded += n;
                return r->discarded > DISCARD_FACTOR * s->max_body ? MHD_NO
                                                                   : MHD_YES;
        }
        if (r->len + n > s->max_body) {
                /* Chunked, or Content-Length lied: keep reading to answer
                 * 413 properly, but keep nothing. */
                r->status = MHD_HTTP_CONTENT_TOO_LARGE;
                snprintf(r->reason, sizeof(r->reason),
                         "body is over the limit of %zu bytes", s->max_body);
                free(r->body);
                r->body = NULL;
                r->len = r->cap = 0;
                r->discarded    = n;
                return MHD_YES;
        }
        if (r->len + n + 1 > r->cap) {
                size_t cap = r->cap ? r->cap : 4096;
                char *b;
                while (cap < r->len + n + 1)
                        cap *= 2;
                if (!(b = realloc(r->body, cap)))
                        return MHD_NO;
                r->body = b;
                r->cap  = cap;
        }
        memcpy(r->body + r->len, data, n);
        r->len += n;
        return MHD_YES;
}

/* Last call of the upload: decode and hand over to the pipeline. */
static enum MHD_Result on_complete(osy_ingest_server_t *s, struct req *r)
{
        char errstr[OSY_ERRSTR_SIZE];
        const char *ct;
        osy_pipe_result_t res;
        osy_err_t err;

        if (r->status)
                return respond_error(r, r->status, "none");
        ct  = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                          MHD_HTTP_HEADER_CONTENT_TYPE);
        err = osy_acwh_decode(r->route->tenant, r->body, r->len,
                              osy_acwh_format_of(ct, r->body, r->len), &r->res,
                              errstr, sizeof(errstr));
        if (err == OSY_ERR_NOMEM)
                return fail(r, MHD_HTTP_SERVICE_UNAVAILABLE, r->res.type_label,
                            "out of memory");
        if (err) {
                osy_log_debug("ac-ingest: tenant %s: refused a webhook: %s",
                              r->route->tenant, errstr);
                return fail(r, MHD_HTTP_BAD_REQUEST, r->res.type_label, "%s",
                            errstr);
        }
        if (r->res.kind == OSY_AC_KIND_NONE) {
                count(s, r->res.type_label, "ignored");
                return respond(r->conn, MHD_HTTP_OK,
                               "{\"ok\":true,\"ignored\":true}", NULL);
        }
        /* Suspend before submitting: the answer may come from the poller
         * thread before submit even returns. */
        atomic_store(&r->state, RS_WAITING);
        r->waited = 1;
        atomic_fetch_add(&s->waiting, 1);
        osy_gauge_add(s->m_waiting, 1);
        MHD_suspend_connection(r->conn);
        if (!osy_pipe_submit(s->pipe, r->res.out, r->res.n, on_pipe_done, r,
                             &res))
                on_pipe_done(r, res);
        return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
        osy_ingest_server_t *s = cls;
        struct req *r          = *con_cls;
        (void)version;

        if (!r) {
                if (!(r = calloc(1, sizeof(*r))))
                        return MHD_NO;
                r->srv   = s;
                r->conn  = conn;
                *con_cls = r;
                return on_headers(s, r, url, method);
        }
        if (atomic_load(&r->state) == RS_DONE) {
                osy_pipe_result_t res =
                    (osy_pipe_result_t)atomic_load(&r->result);
                atomic_store(&r->state, RS_RECEIVING);
                r->answered = 1;
                if (res == OSY_PIPE_FAILED)
                        return fail(r, MHD_HTTP_SERVICE_UNAVAILABLE,
                                    r->res.type_label,
                                    "neither Kafka nor the local spool "
                                    "took the event");
                return respond_stored(r, res);
        }
        if (atomic_load(&r->state) == RS_WAITING || r->answered) {
                *upload_data_size = 0; /* answered already: drop the rest */
                return MHD_YES;
        }
        if (*upload_data_size)
                return on_body(s, r, upload_data, upload_data_size);
        return on_complete(s, r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
        struct req *r = *con_cls;
        (void)cls;
        (void)conn;
        (void)toe;

        if (!r)
                return;
        if (r->waited) {
                /* Answered and sent (or the client went away): only now
                 * may a shutdown stop the HTTP threads (wait_idle). */
                atomic_fetch_sub(&r->srv->waiting, 1);
                osy_gauge_add(r->srv->m_waiting, -1);
        }
        osy_acwh_result_clear(&r->res);
        free(r->body);
        free(r);
        *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
        char line[512];
        size_t n;
        (void)cls;

        vsnprintf(line, sizeof(line), fmt, ap);
        n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                line[--n] = '\0';
        osy_log_warn("ac-ingest: http: %s", line);
}

/* ---- life cycle ---------------------------------------------------------- */

osy_err_t osy_ingest_server_start(osy_ingest_server_t **sp,
                                  const struct osy_ingest_server_opts *opts,
                                  char *errstr, size_t errstr_size)
{
        static const char *const labels[] = {"type", "outcome", NULL};
        struct sockaddr_storage ss        = {0};
        struct sockaddr_in *sin           = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *sin6         = (struct sockaddr_in6 *)&ss;
        unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                             MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
        const union MHD_DaemonInfo *info;
        osy_ingest_server_t *s = NULL;
        const char *addr;
        osy_err_t err;

        *sp = NULL;
        if (!opts || !opts->pipe)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ingest server: no pipeline");
        addr =
            opts->bind_addr && *opts->bind_addr ? opts->bind_addr : "0.0.0.0";
        if (opts->port < 0 || opts->port > 65535)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ingest server: bad port %d", opts->port);
        if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
                sin->sin_family = AF_INET;
                sin->sin_port   = htons((uint16_t)opts->port);
        } else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
                sin6->sin6_family = AF_INET6;
                sin6->sin6_port   = htons((uint16_t)opts->port);
                flags |= MHD_USE_IPv6;
        } else {
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "ingest server: bind address \"%s\" is "
                                   "not an IPv4 or IPv6 literal",
                                   addr);
        }
        if (!(s = calloc(1, sizeof(*s))) ||
            (opts->n_routes &&
             !(s->routes = calloc(opts->n_routes, sizeof(*s->routes))))) {
                err = osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                  "out of memory");
                goto out;
        }
        s->pipe     = opts->pipe;
        s->max_body = opts->max_body ? opts->max_body : DEFAULT_MAX_BODY;
        for (size_t i = 0; i < opts->n_routes; i++) {
                const struct osy_ingest_route *in = &opts->routes[i];
                struct route *rt                  = &s->routes[i];
                if ((err = osy_tenant_check(in->tenant, errstr, errstr_size)))
                        goto out;
                snprintf(rt->tenant, sizeof(rt->tenant), "%s", in->tenant);
                rt->enabled = in->token && *in->token;
                if (rt->enabled)
                        SHA256((const unsigned char *)in->token,
                               strlen(in->token), rt->digest);
        }
        s->n_routes = opts->n_routes;
        if (opts->metrics &&
            osy_metrics_counter_new(opts->metrics, &s->m_requests,
                                    "optsync_ingest_requests_total",
                                    "Webhook requests by AC event type and "
                                    "outcome",
                                    labels, errstr, errstr_size)) {
                err = OSY_ERR_INVALID;
                goto out;
        }
        if (opts->metrics) {
                osy_metric_t *m;
                if (osy_metrics_gauge_new(opts->metrics, &m,
                                          "optsync_ingest_webhooks_waiting",
                                          "Webhooks received and not yet "
                                          "answered: waiting for Kafka's "
                                          "acknowledgement or the spool",
                                          NULL, errstr, errstr_size)) {
                        err = OSY_ERR_INVALID;
                        goto out;
                }
                s->m_waiting = osy_metric_series(m, NULL);
        }
        errno     = 0;
        s->daemon = MHD_start_daemon(
            flags, (uint16_t)opts->port, NULL, NULL, on_request, s,
            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
            (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
            opts->threads ? opts->threads : (unsigned)DEFAULT_THREADS,
            MHD_OPTION_CONNECTION_LIMIT,
            opts->max_connections ? opts->max_connections
                                  : (unsigned)DEFAULT_MAX_CONNECTIONS,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
            MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
        if (!s->daemon) {
                err = osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                  "ingest server: cannot listen on %s port "
                                  "%d: %s",
                                  addr, opts->port,
                                  errno ? strerror(errno) : "failed");
                goto out;
        }
        info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
        if (!info || !info->port) {
                err = osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                  "ingest server: cannot learn the port");
                goto out;
        }
        s->port = info->port;
        osy_log_info("ac-ingest: receiving webhooks on %s port %d for %zu "
                     "tenant(s)",
                     addr, s->port, s->n_routes);
        *sp = s;
        s   = NULL;
        err = OSY_OK;
out:
        osy_ingest_server_stop(s);
        return err;
}

int osy_ingest_server_port(const osy_ingest_server_t *s)
{
        return s ? s->port : 0;
}

void osy_ingest_server_quiesce(osy_ingest_server_t *s)
{
        MHD_socket fd;

        if (!s || !s->daemon || s->quiesced)
                return;
        s->quiesced = 1;
        fd          = MHD_quiesce_daemon(s->daemon);
        if (fd != MHD_INVALID_SOCKET)
                close(fd);
}

int osy_ingest_server_wait_idle(osy_ingest_server_t *s, int timeout_ms)
{
        int left = s ? atomic_load(&s->waiting) : 0;

        /* Answers go out on MHD's threads once resumed; a request leaves
         * the count when MHD says its answer is sent (on_completed), so
         * nothing is cut off by the stop that follows. (A fixed 100 ms
         * for the writes was too short on a loaded machine.) */
        for (int waited = 0; left > 0 && waited < timeout_ms; waited += 10) {
                usleep(10000);
                left = atomic_load(&s->waiting);
        }
        return left;
}

void osy_ingest_server_stop(osy_ingest_server_t *s)
{
        if (!s)
                return;
        if (s->daemon)
                MHD_stop_daemon(s->daemon);
        if (s->routes)
                OPENSSL_cleanse(s->routes, s->n_routes * sizeof(*s->routes));
        free(s->routes);
        free(s);
}
