/*
 * rl_bench.c - rate-limit use with several replicas: N threads, each with
 * its own Redis connection (as N writer pods), share one GCRA bucket for
 * a while on the real clock. Reports achieved / allowed, the 429s an
 * exact limiter at the API would have answered, and acquire latency.
 */
#include "optsync/ratelimit.h"
#include "optsync/redis.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_GRANTS 1000000

struct bench {
        struct osy_redis_opts redis;
        struct osy_rl_opts rl;
        char tenant[64];
        int64_t deadline_ms;
        pthread_mutex_t lock;
        int64_t *grants; /* decision time of every token, all replicas */
        size_t ngrants;
        int64_t *lat_us; /* one acquire round trip, sampled */
        size_t nlat;
        int failed;
};

static int64_t mono_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_ms(int64_t ms)
{
        struct timespec ts = {(time_t)(ms / 1000),
                              (long)(ms % 1000) * 1000000L};

        while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
                ;
}

/* One writer pod: acquire, and when told to wait, sleep that long. Every
 * call's round trip is timed; every grant is recorded with the clock
 * value the limiter decided on. */
static void *replica_main(void *arg)
{
        struct bench *b = arg;
        char err[OSY_ERRSTR_SIZE];
        osy_redis_t *r = NULL;
        osy_rl_t *rl   = NULL;
        int64_t now;

        if (osy_redis_connect(&r, &b->redis, err, sizeof(err)) ||
            osy_rl_new(&rl, r, &b->rl, err, sizeof(err))) {
                fprintf(stderr, "rl_bench: %s\n", err);
                b->failed = 1;
                goto out;
        }
        while ((now = osy_rl_now_ms()) < b->deadline_ms) {
                int64_t wait = 0, t0 = mono_us(), t1;
                osy_err_t e = osy_rl_acquire(rl, b->tenant, "ac", now, 1, &wait,
                                             err, sizeof(err));

                t1 = mono_us();
                if (e) {
                        fprintf(stderr, "rl_bench: %s\n", err);
                        b->failed = 1;
                        break;
                }
                pthread_mutex_lock(&b->lock);
                if (b->nlat < MAX_GRANTS)
                        b->lat_us[b->nlat++] = t1 - t0;
                if (wait == 0 && b->ngrants < MAX_GRANTS)
                        b->grants[b->ngrants++] = now;
                pthread_mutex_unlock(&b->lock);
                if (wait > 0)
                        sleep_ms(wait);
        }
out:
        osy_rl_destroy(rl);
        osy_redis_destroy(r);
        return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

        return (x > y) - (x < y);
}

static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *v)
{
        char *end;
        long long n;

        errno = 0;
        n     = strtoll(s, &end, 10);
        if (errno || end == s || *end || n < lo || n > hi)
                return -1;
        *v = n;
        return 0;
}

static void usage(void)
{
        fprintf(stderr, "usage: rl_bench [-h host] [-p port] [-n replicas] "
                        "[-r rate] [-P period_ms] [-b burst] [-k skew_ms] "
                        "[-s seconds]\n");
}

int main(int argc, char **argv)
{
        struct bench b   = {.redis = {.host = "127.0.0.1", .port = 6379},
                            .rl    = {"optsync-bench", 5, 1000, 5, 0}};
        int64_t replicas = 4, seconds = 10, port = 6379, start;
        pthread_t th[64];
        int64_t tat = 0;
        size_t over = 0;
        int opt;

        while ((opt = getopt(argc, argv, "h:p:n:r:P:b:k:s:")) != -1) {
                int bad = 0;
                switch (opt) {
                case 'h':
                        b.redis.host = optarg;
                        break;
                case 'p':
                        bad = parse_i64(optarg, 1, 65535, &port);
                        break;
                case 'n':
                        bad = parse_i64(optarg, 1, 64, &replicas);
                        break;
                case 'r':
                        bad = parse_i64(optarg, 1, 1000000, &b.rl.rate);
                        break;
                case 'P':
                        bad = parse_i64(optarg, 1, 86400000, &b.rl.period_ms);
                        break;
                case 'b':
                        bad = parse_i64(optarg, 1, 1000000, &b.rl.burst);
                        break;
                case 'k':
                        bad = parse_i64(optarg, 0, 60000, &b.rl.skew_ms);
                        break;
                case 's':
                        bad = parse_i64(optarg, 1, 3600, &seconds);
                        break;
                default:
                        bad = 1;
                }
                if (bad) {
                        usage();
                        return 2;
                }
        }
        b.redis.port = (int)port;
        /* A fresh bucket per run, so runs do not see each other. */
        snprintf(b.tenant, sizeof(b.tenant), "run-%ld-%" PRId64, (long)getpid(),
                 osy_rl_now_ms());
        b.grants = calloc(MAX_GRANTS, sizeof(*b.grants));
        b.lat_us = calloc(MAX_GRANTS, sizeof(*b.lat_us));
        if (!b.grants || !b.lat_us || pthread_mutex_init(&b.lock, NULL))
                return 2;
        start         = osy_rl_now_ms();
        b.deadline_ms = start + seconds * 1000;
        for (int i = 0; i < replicas; i++)
                if (pthread_create(&th[i], NULL, replica_main, &b))
                        return 2;
        for (int i = 0; i < replicas; i++)
                pthread_join(th[i], NULL);
        if (b.failed)
                return 2;

        /*
         * Would the API's own limiter (same rate and burst, exact, on the
         * same clock) have answered 429? A sequence passes a GCRA exactly
         * when no window between two requests holds more than
         * rate * length / period + burst, so replay the grants through a
         * strict one. Times are scaled by rate, making the interval the
         * whole number period_ms.
         */
        qsort(b.grants, b.ngrants, sizeof(*b.grants), cmp_i64);
        for (size_t i = 0; i < b.ngrants; i++) {
                int64_t t = b.grants[i] * b.rl.rate;
                if (i > 0 && tat - t > (b.rl.burst - 1) * b.rl.period_ms) {
                        over++; /* a 429: the API does not count it */
                        continue;
                }
                tat = (i == 0 || tat < t ? t : tat) + b.rl.period_ms;
        }
        double allowed = (double)b.rl.rate * (double)(seconds * 1000) /
                             (double)b.rl.period_ms +
                         (double)b.rl.burst;
        qsort(b.lat_us, b.nlat, sizeof(*b.lat_us), cmp_i64);
        printf("replicas=%" PRId64 " rate=%" PRId64 "/%" PRId64
               "ms burst=%" PRId64 " skew_ms=%" PRId64 " seconds=%" PRId64 "\n",
               replicas, b.rl.rate, b.rl.period_ms, b.rl.burst, b.rl.skew_ms,
               seconds);
        printf("granted=%zu allowed=%.1f use=%.1f%% would_be_429s=%zu\n",
               b.ngrants, allowed, 100.0 * (double)b.ngrants / allowed, over);
        if (b.nlat)
                printf("acquire round trip: p50=%" PRId64 "us p99=%" PRId64
                       "us (n=%zu)\n",
                       b.lat_us[b.nlat / 2], b.lat_us[b.nlat * 99 / 100],
                       b.nlat);
        free(b.grants);
        free(b.lat_us);
        pthread_mutex_destroy(&b.lock);
        return over ? 1 : 0;
}
