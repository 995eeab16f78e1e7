/*
 * admin.c - /healthz, /readyz and /metrics on libmicrohttpd's internal
 * polling thread; everything it reads from the worker is atomic or behind
 * the worker's own callbacks.
 */
#include "optsync/admin.h"
#include "optsync/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* A slow or idle client must not hold the single server thread for long,
 * nor a flood of them exhaust file descriptors. */
#define ADMIN_CONNECTION_LIMIT 32
#define ADMIN_CONNECTION_TIMEOUT_S 10

struct osy_admin_s {
        struct MHD_Daemon *daemon;
        struct osy_admin_opts opts; /* bind_addr is not kept */
        _Atomic int64_t heartbeat_ms;
        int port;
};

int64_t osy_admin_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t admin_now(const osy_admin_t *a)
{
        return a->opts.clock_ms ? a->opts.clock_ms() : osy_admin_now_ms();
}

/* MHD's error log, routed into our JSON lines. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
        char msg[512];
        size_t n;

        (void)cls;
        vsnprintf(msg, sizeof(msg), fmt, ap);
        n = strlen(msg);
        while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
                msg[--n] = '\0';
        osy_log_warn("admin: microhttpd: %s", msg);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status,
                             const char *content_type, const char *body,
                             size_t len, enum MHD_ResponseMemoryMode mode,
                             const char *allow)
{
        struct MHD_Response *r;
        enum MHD_Result ret;

        r = MHD_create_response_from_buffer(len, (void *)body, mode);
        if (!r) {
                if (mode == MHD_RESPMEM_MUST_FREE)
                        free((void *)body);
                return MHD_NO; /* MHD closes the connection */
        }
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        /* Probes must see the live state, never a cached answer. */
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        if (allow)
                MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
        ret = MHD_queue_response(conn, status, r);
        MHD_destroy_response(r);
        return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn,
                                  unsigned int status, const char *text)
{
        return reply(conn, status, "text/plain; charset=utf-8", text,
                     strlen(text), MHD_RESPMEM_MUST_COPY, NULL);
}

/* "<word>\n" when ok, "<word>: <reason>\n" otherwise. */
static enum MHD_Result reply_check(struct MHD_Connection *conn, int ok,
                                   const char *ok_word, const char *bad_word,
                                   const char *reason)
{
        char body[512];

        if (ok)
                snprintf(body, sizeof(body), "%s\n", ok_word);
        else
                snprintf(body, sizeof(body), "%s: %s\n", bad_word,
                         *reason ? reason : "no reason given");
        return reply_text(conn, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                          body);
}

static enum MHD_Result serve_healthz(osy_admin_t *a,
                                     struct MHD_Connection *conn)
{
        char reason[256] = "";
        int ok           = 1;

        /* A stuck main loop stops beating: let the orchestrator restart
         * us rather than leave a wedged consumer in the group. */
        if (a->opts.heartbeat_timeout_ms > 0) {
                int64_t age = admin_now(a) - atomic_load(&a->heartbeat_ms);

                if (age > a->opts.heartbeat_timeout_ms) {
                        ok = 0;
                        snprintf(reason, sizeof(reason),
                                 "no heartbeat for %lld ms (limit %lld)",
                                 (long long)age,
                                 (long long)a->opts.heartbeat_timeout_ms);
                }
        }
        if (ok && a->opts.live_cb &&
            !a->opts.live_cb(a->opts.live_opaque, reason, sizeof(reason)))
                ok = 0;
        return reply_check(conn, ok, "ok", "unhealthy", reason);
}

static enum MHD_Result serve_readyz(osy_admin_t *a, struct MHD_Connection *conn)
{
        char reason[256] = "";
        int ok           = 1;

        if (a->opts.ready_cb)
                ok = a->opts.ready_cb(a->opts.ready_opaque, reason,
                                      sizeof(reason));
        return reply_check(conn, ok, "ready", "not ready", reason);
}

static enum MHD_Result serve_metrics(osy_admin_t *a,
                                     struct MHD_Connection *conn)
{
        char errstr[OSY_ERRSTR_SIZE];
        char *text = NULL;
        size_t len = 0;

        if (!a->opts.metrics)
                return reply(conn, MHD_HTTP_OK, OSY_ADMIN_METRICS_CONTENT_TYPE,
                             "", 0, MHD_RESPMEM_PERSISTENT, NULL);
        if (osy_metrics_render(a->opts.metrics, &text, &len, errstr,
                               sizeof(errstr)) != OSY_OK) {
                osy_log_error("admin: /metrics: %s", errstr);
                return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                  "cannot render metrics\n");
        }
        /* MHD frees the rendered text once it is sent. */
        return reply(conn, MHD_HTTP_OK, OSY_ADMIN_METRICS_CONTENT_TYPE, text,
                     len, MHD_RESPMEM_MUST_FREE, NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
        osy_admin_t *a = cls;

        (void)version;
        (void)upload_data;
        (void)upload_data_size;
        (void)con_cls;
        /* Answer on the first call: no route reads a request body, and
         * MHD drops whatever body a refused request carried. */
        if (strcmp(method, MHD_HTTP_METHOD_GET))
                return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                             "text/plain; charset=utf-8",
                             "method not allowed\n", 19, MHD_RESPMEM_PERSISTENT,
                             "GET");
        if (!strcmp(url, "/healthz"))
                return serve_healthz(a, conn);
        if (!strcmp(url, "/readyz"))
                return serve_readyz(a, conn);
        if (!strcmp(url, "/metrics"))
                return serve_metrics(a, conn);
        return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

osy_err_t osy_admin_start(osy_admin_t **ap, const struct osy_admin_opts *opts,
                          char *errstr, size_t errstr_size)
{
        struct sockaddr_storage ss = {0};
        struct sockaddr_in *sin    = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *sin6  = (struct sockaddr_in6 *)&ss;
        unsigned int flags =
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_AUTO;
        const union MHD_DaemonInfo *info;
        const char *addr;
        osy_admin_t *a = NULL;
        osy_err_t err;

        if (!ap || !opts)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "admin: no options");
        *ap  = NULL;
        addr = opts->bind_addr && *opts->bind_addr ? opts->bind_addr
                                                   : OSY_ADMIN_DEFAULT_ADDR;
        if (opts->port < 0 || opts->port > 65535 ||
            opts->heartbeat_timeout_ms < 0)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "admin: bad port %d or heartbeat timeout",
                                   opts->port);
        if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
                sin->sin_family = AF_INET;
                sin->sin_port   = htons((uint16_t)opts->port);
        } else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
                sin6->sin6_family = AF_INET6;
                sin6->sin6_port   = htons((uint16_t)opts->port);
                flags |= MHD_USE_IPv6;
        } else {
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "admin: bind address \"%s\" is not an "
                                   "IPv4 or IPv6 literal",
                                   addr);
        }

        a = calloc(1, sizeof(*a));
        if (!a)
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "admin: out of memory");
        a->opts           = *opts;
        a->opts.bind_addr = NULL; /* the caller's string may go away */
        atomic_init(&a->heartbeat_ms, admin_now(a));

        errno     = 0;
        a->daemon = MHD_start_daemon(
            flags, (uint16_t)opts->port, NULL, NULL, on_request, a,
            /* First, or MHD prints earlier option errors on stderr. */
            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
            (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned int)ADMIN_CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned int)ADMIN_CONNECTION_TIMEOUT_S, MHD_OPTION_END);
        if (!a->daemon) {
                err =
                    osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                "admin: cannot listen on %s port %d: %s", addr,
                                opts->port, errno ? strerror(errno) : "failed");
                goto out;
        }
        info = MHD_get_daemon_info(a->daemon, MHD_DAEMON_INFO_BIND_PORT);
        if (!info || !info->port) {
                err = osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                  "admin: cannot learn the bound port");
                goto out;
        }
        a->port = info->port;
        osy_log_info("admin: serving /healthz /readyz /metrics on %s port %d",
                     addr, a->port);
        *ap = a;
        a   = NULL; /* the caller owns it now */
        err = OSY_OK;
out:
        osy_admin_stop(a);
        return err;
}

int osy_admin_port(const osy_admin_t *a)
{
        return a ? a->port : 0;
}

void osy_admin_heartbeat(osy_admin_t *a, int64_t now_ms)
{
        if (a)
                atomic_store(&a->heartbeat_ms, now_ms);
}

void osy_admin_stop(osy_admin_t *a)
{
        if (!a)
                return;
        if (a->daemon)
                MHD_stop_daemon(a->daemon); /* joins the server thread */
        free(a);
}
