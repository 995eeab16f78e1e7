/*
 * log.c - JSON-lines logger. One line per call, written with a single
 * fwrite under a lock so lines from threads never interleave. Registered
 * secrets are masked in the message and in every value.
 */
#include "optsync/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_MAX_SECRETS 64
#define LOG_LINE_MAX 8192

static pthread_mutex_t log_lock      = PTHREAD_MUTEX_INITIALIZER;
static osy_log_level_t log_threshold = OSY_LOG_INFO;
static char log_component[64]        = "optsync";
static FILE *log_out;
static char *log_secrets[LOG_MAX_SECRETS];
static size_t log_secret_cnt;

static const char *const level_names[] = {"debug", "info", "warn", "error",
                                          "off"};

void osy_log_init(const char *component, osy_log_level_t level, FILE *out)
{
        pthread_mutex_lock(&log_lock);
        snprintf(log_component, sizeof(log_component), "%s",
                 component ? component : "optsync");
        log_threshold = level;
        log_out       = out;
        pthread_mutex_unlock(&log_lock);
}

osy_log_level_t osy_log_level(void)
{
        return log_threshold;
}

int osy_log_level_parse(const char *s)
{
        for (int i = 0; s && i <= OSY_LOG_OFF; i++)
                if (!strcmp(s, level_names[i]))
                        return i;
        return -1;
}

void osy_log_add_secret(const char *value)
{
        /* Short values would mask ordinary words; tokens are long. */
        if (!value || strlen(value) < 4)
                return;
        pthread_mutex_lock(&log_lock);
        if (log_secret_cnt < LOG_MAX_SECRETS) {
                char *copy = strdup(value);
                if (copy)
                        log_secrets[log_secret_cnt++] = copy;
        }
        pthread_mutex_unlock(&log_lock);
}

void osy_log_clear_secrets(void)
{
        pthread_mutex_lock(&log_lock);
        for (size_t i = 0; i < log_secret_cnt; i++)
                free(log_secrets[i]);
        log_secret_cnt = 0;
        pthread_mutex_unlock(&log_lock);
}

/* A bounded output buffer; writes past the end are dropped, and the line
 * is still terminated properly. */
struct line {
        char buf[LOG_LINE_MAX];
        size_t len;
};

static void put_raw(struct line *l, const char *s, size_t n)
{
        size_t room = sizeof(l->buf) - 3 - l->len; /* keep "}\n\0" */
        if (n > room)
                n = room;
        memcpy(l->buf + l->len, s, n);
        l->len += n;
}

/* Appends @p s as JSON string content, escaped, with every registered
 * secret replaced by "***". Called with log_lock held. */
static void put_escaped(struct line *l, const char *s)
{
        while (*s) {
                size_t skip = 0;
                for (size_t i = 0; i < log_secret_cnt && !skip; i++) {
                        size_t n = strlen(log_secrets[i]);
                        if (!strncmp(s, log_secrets[i], n))
                                skip = n;
                }
                if (skip) {
                        put_raw(l, "***", 3);
                        s += skip;
                        continue;
                }
                unsigned char c = (unsigned char)*s++;
                char esc[8];
                switch (c) {
                case '"':
                        put_raw(l, "\\\"", 2);
                        break;
                case '\\':
                        put_raw(l, "\\\\", 2);
                        break;
                case '\n':
                        put_raw(l, "\\n", 2);
                        break;
                case '\r':
                        put_raw(l, "\\r", 2);
                        break;
                case '\t':
                        put_raw(l, "\\t", 2);
                        break;
                default:
                        if (c < 0x20) {
                                snprintf(esc, sizeof(esc), "\\u%04x", c);
                                put_raw(l, esc, 6);
                        } else {
                                put_raw(l, (const char *)&c, 1);
                        }
                }
        }
}

static void put_field(struct line *l, const char *key, const char *value)
{
        put_raw(l, ",\"", 2);
        put_escaped(l, key);
        put_raw(l, "\":\"", 3);
        put_escaped(l, value ? value : "");
        put_raw(l, "\"", 1);
}

void osy_log_kv(osy_log_level_t level, const char *const *kv, const char *fmt,
                ...)
{
        char msg[4096], ts[96];
        struct timespec now;
        struct tm tm;
        struct line *l;
        va_list ap;

        if (level < log_threshold || level >= OSY_LOG_OFF)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);

        clock_gettime(CLOCK_REALTIME, &now);
        gmtime_r(&now.tv_sec, &tm);
        snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);

        l = malloc(sizeof(*l)); /* 8 KiB: too big for small thread stacks */
        if (!l)
                return;
        l->len = 0;
        pthread_mutex_lock(&log_lock);
        put_raw(l, "{\"ts\":\"", 7);
        put_raw(l, ts, strlen(ts));
        put_raw(l, "\"", 1);
        put_field(l, "level", level_names[level]);
        put_field(l, "component", log_component);
        put_field(l, "msg", msg);
        for (size_t i = 0; kv && kv[i] && kv[i + 1]; i += 2)
                put_field(l, kv[i], kv[i + 1]);
        l->buf[l->len++] = '}';
        l->buf[l->len++] = '\n';
        FILE *out        = log_out ? log_out : stderr;
        fwrite(l->buf, 1, l->len, out);
        fflush(out);
        pthread_mutex_unlock(&log_lock);
        free(l);
}
