/*
 * lease.c - a tenant's lease in Redis: taken with SET NX PX, renewed by a
 * compare-and-extend script, released by compare-and-delete; the holder
 * counts its validity on its own monotonic clock (fencing).
 */
#include "lease.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define MIN_LEASE_MS 30

/* Compare-and-extend: 1 when the value is ours (and the TTL renewed),
 * else the current value ("" when the key is gone), for the logs. */
static const char renew_lua[] = "local v = redis.call('GET', KEYS[1])\n"
                                "if v == ARGV[1] then\n"
                                "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                                "  return 1\n"
                                "end\n"
                                "if v then return v end\n"
                                "return ''\n";

/* Compare-and-swap from a holder known to be dead to us. */
static const char steal_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

/* Compare-and-delete: never deletes another replica's lease. */
static const char release_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('DEL', KEYS[1])\n"
    "end\n"
    "return 0\n";

/*
 * Timing, with L the lease: the key lives L after each take or renew; the
 * holder renews every L/3 and counts itself valid for L - margin (L/5 by
 * default) from the moment it SENT the command. So with a healthy Redis it
 * renews twice before its validity could end, and with a dead one it stops
 * at least the margin before any other replica can take the key: the
 * margin covers clock-rate differences between machines, a delivery still
 * in flight in the Kafka client, and the time between check and produce.
 */
struct osy_sfi_lease_s {
        char *key, *owner;
        int64_t lease_ms, margin_ms;
        int64_t renew_ms; /* lease / 3: the renew and take-over pace */
        int64_t retry_ms; /* after a failed renew: sooner */
        osy_redis_script_t *renew, *steal, *release;

        int held;
        int64_t valid_until; /* monotonic; meaningful while held */
        int64_t next_ms;     /* the next renew or take attempt */
        char holder[OSY_SFI_OWNER_BUFSZ];
        char lost_reason[OSY_SFI_OWNER_BUFSZ + 32];
};

osy_err_t osy_sfi_lease_new(osy_sfi_lease_t **lp,
                            const struct osy_sfi_lease_opts *o, char *errstr,
                            size_t errstr_size)
{
        osy_sfi_lease_t *l = NULL;
        osy_err_t err      = OSY_ERR_INVALID;

        *lp = NULL;
        if (!o || !o->key || !*o->key || !o->owner || !*o->owner ||
            strlen(o->owner) >= OSY_SFI_OWNER_BUFSZ)
                return osy_err_set(err, errstr, errstr_size,
                                   "lease: key and owner are required");
        if (o->lease_ms < MIN_LEASE_MS)
                return osy_err_set(err, errstr, errstr_size,
                                   "lease: %lld ms is too short",
                                   (long long)o->lease_ms);
        if (!(l = calloc(1, sizeof(*l))))
                return OSY_ERR_NOMEM;
        l->lease_ms  = o->lease_ms;
        l->margin_ms = o->margin_ms ? o->margin_ms : o->lease_ms / 5;
        l->renew_ms  = o->lease_ms / 3;
        l->retry_ms  = l->renew_ms / 3 ? l->renew_ms / 3 : 1;
        /* The validity must outlast one renew interval, or a healthy
         * holder would stop between two renewals. */
        if (l->margin_ms < 0 || l->lease_ms - l->margin_ms <= l->renew_ms) {
                osy_err_set(err, errstr, errstr_size,
                            "lease: margin %lld ms leaves no time to renew "
                            "a %lld ms lease",
                            (long long)l->margin_ms, (long long)l->lease_ms);
                goto out;
        }
        if (!(l->key = strdup(o->key)) || !(l->owner = strdup(o->owner))) {
                err = OSY_ERR_NOMEM;
                goto out;
        }
        if ((err = osy_redis_script_new(&l->renew, renew_lua, errstr,
                                        errstr_size)) ||
            (err = osy_redis_script_new(&l->steal, steal_lua, errstr,
                                        errstr_size)) ||
            (err = osy_redis_script_new(&l->release, release_lua, errstr,
                                        errstr_size)))
                goto out;
        *lp = l;
        l   = NULL;
        err = OSY_OK;
out:
        osy_sfi_lease_destroy(l);
        return err;
}

void osy_sfi_lease_destroy(osy_sfi_lease_t *l)
{
        if (!l)
                return;
        osy_redis_script_destroy(l->renew);
        osy_redis_script_destroy(l->steal);
        osy_redis_script_destroy(l->release);
        free(l->key);
        free(l->owner);
        free(l);
}

/* Held from @p sent_ms on: the key's TTL started no earlier than the
 * command was sent, so counting from there is on the safe side. */
static void took(osy_sfi_lease_t *l, int64_t sent_ms)
{
        l->held        = 1;
        l->valid_until = sent_ms + l->lease_ms - l->margin_ms;
        l->next_ms     = sent_ms + l->renew_ms;
        l->holder[0]   = '\0';
}

static void lose(osy_sfi_lease_t *l, int64_t now_ms, const char *why)
{
        l->held        = 0;
        l->valid_until = 0;
        l->next_ms     = now_ms + l->renew_ms;
        snprintf(l->lost_reason, sizeof(l->lost_reason), "%s", why);
}

osy_sfi_lease_change_t osy_sfi_lease_expire(osy_sfi_lease_t *l, int64_t now_ms)
{
        if (!l->held || now_ms < l->valid_until)
                return OSY_SFI_LEASE_UNCHANGED;
        /* Not renewed in time (Redis unreachable, or this process did not
         * run): another replica may take it at the expiry. */
        lose(l, now_ms, "not renewed in time");
        l->next_ms = now_ms; /* try to take it again at once */
        return OSY_SFI_LEASE_LOST;
}

/* A string reply into l->holder (""), for logs and the dead check. */
static void note_holder(osy_sfi_lease_t *l, const redisReply *rep)
{
        l->holder[0] = '\0';
        if (rep && rep->type == REDIS_REPLY_STRING)
                snprintf(l->holder, sizeof(l->holder), "%.*s", (int)rep->len,
                         rep->str);
}

/* Renew a held lease. */
static osy_err_t renew(osy_sfi_lease_t *l, osy_redis_t *r, int64_t now_ms,
                       osy_sfi_lease_change_t *change, char *errstr,
                       size_t errstr_size)
{
        const char *keys[] = {l->key};
        char ms[32];
        const char *args[] = {l->owner, ms};
        redisReply *rep    = NULL;
        osy_err_t err;

        snprintf(ms, sizeof(ms), "%lld", (long long)l->lease_ms);
        err = osy_redis_eval(r, l->renew, 1, keys, 2, args, &rep, errstr,
                             errstr_size);
        if (err) {
                /* Keep going until the validity runs out: a short Redis
                 * hiccup must not stop CDC. */
                l->next_ms = now_ms + l->retry_ms;
                return err;
        }
        if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 1) {
                took(l, now_ms);
        } else {
                char why[sizeof(l->lost_reason)];

                note_holder(l, rep);
                if (l->holder[0])
                        snprintf(why, sizeof(why), "now held by %s", l->holder);
                else
                        snprintf(why, sizeof(why), "the key expired");
                lose(l, now_ms, why);
                *change = OSY_SFI_LEASE_LOST;
        }
        freeReplyObject(rep);
        return OSY_OK;
}

/* Try to take a free lease, re-adopt our own (a lease this process still
 * holds in Redis after it stopped counting it), or take the lease of a
 * holder whose process is gone. */
static osy_err_t take(osy_sfi_lease_t *l, osy_redis_t *r, int64_t now_ms,
                      osy_sfi_lease_change_t *change, char *errstr,
                      size_t errstr_size)
{
        const char *keys[] = {l->key};
        char ms[32], dead[OSY_SFI_OWNER_BUFSZ];
        const char *set[]   = {"SET", l->key, l->owner, "NX", "PX", ms};
        const char *args[]  = {l->owner, ms};
        const char *sargs[] = {dead, l->owner, ms};
        redisReply *rep     = NULL;
        osy_err_t err;
        int ok = 0;

        l->next_ms = now_ms + l->renew_ms;
        snprintf(ms, sizeof(ms), "%lld", (long long)l->lease_ms);
        if ((err = osy_redis_command_argv(r, 6, set, NULL, &rep, errstr,
                                          errstr_size)))
                return err;
        ok = rep->type == REDIS_REPLY_STATUS;
        freeReplyObject(rep);
        rep = NULL;
        if (!ok) {
                if ((err = osy_redis_eval(r, l->renew, 1, keys, 2, args, &rep,
                                          errstr, errstr_size)))
                        return err;
                ok = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
                if (!ok)
                        note_holder(l, rep);
                freeReplyObject(rep);
                rep = NULL;
        }
        if (!ok && l->holder[0] && osy_sfi_lease_owner_dead(l->holder)) {
                snprintf(dead, sizeof(dead), "%s", l->holder);
                if ((err = osy_redis_eval(r, l->steal, 1, keys, 3, sargs, &rep,
                                          errstr, errstr_size)))
                        return err;
                ok = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
                freeReplyObject(rep);
        }
        if (ok) {
                took(l, now_ms);
                *change = OSY_SFI_LEASE_ACQUIRED;
        }
        return OSY_OK;
}

/* One step per call: the local expiry first (it needs no Redis, so it
 * happens even when every command would time out), then the due I/O. */
osy_err_t osy_sfi_lease_tick(osy_sfi_lease_t *l, osy_redis_t *r, int64_t now_ms,
                             osy_sfi_lease_change_t *change, char *errstr,
                             size_t errstr_size)
{
        *change = osy_sfi_lease_expire(l, now_ms);
        if (*change != OSY_SFI_LEASE_UNCHANGED || now_ms < l->next_ms)
                return OSY_OK;
        if (l->held)
                return renew(l, r, now_ms, change, errstr, errstr_size);
        return take(l, r, now_ms, change, errstr, errstr_size);
}

osy_err_t osy_sfi_lease_release(osy_sfi_lease_t *l, osy_redis_t *r,
                                osy_sfi_lease_change_t *change, char *errstr,
                                size_t errstr_size)
{
        const char *keys[] = {l->key};
        const char *args[] = {l->owner};
        redisReply *rep    = NULL;
        osy_err_t err;

        *change = OSY_SFI_LEASE_UNCHANGED;
        if (!l->held)
                return OSY_OK;
        /* Stop counting it first: whatever Redis answers, this replica
         * no longer uses the lease (it expires by itself otherwise). */
        l->held        = 0;
        l->valid_until = 0;
        *change        = OSY_SFI_LEASE_RELEASED;
        err = osy_redis_eval(r, l->release, 1, keys, 1, args, &rep, errstr,
                             errstr_size);
        freeReplyObject(rep);
        return err;
}

int osy_sfi_lease_valid(const osy_sfi_lease_t *l, int64_t now_ms)
{
        return l->held && now_ms < l->valid_until;
}

int64_t osy_sfi_lease_valid_until(const osy_sfi_lease_t *l)
{
        return l->held ? l->valid_until : 0;
}

int64_t osy_sfi_lease_next_ms(const osy_sfi_lease_t *l)
{
        if (l->held && l->valid_until < l->next_ms)
                return l->valid_until;
        return l->next_ms;
}

const char *osy_sfi_lease_holder(const osy_sfi_lease_t *l)
{
        return l->holder;
}

const char *osy_sfi_lease_lost_reason(const osy_sfi_lease_t *l)
{
        return l->lost_reason;
}

/* ---- owner ids ---------------------------------------------------------- */

/* First line of a small file, without its newline ("" when unreadable). */
static void read_line(const char *path, char *buf, size_t size)
{
        FILE *f = fopen(path, "r");

        buf[0] = '\0';
        if (!f)
                return;
        if (!fgets(buf, (int)size, f))
                buf[0] = '\0';
        buf[strcspn(buf, "\r\n")] = '\0';
        fclose(f);
}

/* "<boot id>/<pid namespace inode>": equal only for processes that can
 * see each other's pids. "" when either is unknown. */
static void machine_scope(char *buf, size_t size)
{
        char boot[64], ns[64];
        ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1);

        read_line("/proc/sys/kernel/random/boot_id", boot, sizeof(boot));
        if (n <= 5 || !boot[0]) {
                buf[0] = '\0';
                return;
        }
        ns[n] = '\0';
        /* "pid:[4026531836]" -> "4026531836" */
        snprintf(buf, size, "%s/%.*s", boot, (int)strcspn(ns + 5, "]"), ns + 5);
}

osy_err_t osy_sfi_lease_owner_id(char *buf, size_t size)
{
        char host[128] = "", scope[160];
        unsigned char rnd[8];
        char hex[17];
        int n;

        if (gethostname(host, sizeof(host) - 1) || !host[0])
                snprintf(host, sizeof(host), "unknown");
        host[sizeof(host) - 1] = '\0';
        /* Random, so two incarnations with the same host and pid (a
         * container restarted as pid 1) never share an id. */
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
                struct timespec ts;
                uint64_t x;

                clock_gettime(CLOCK_REALTIME, &ts);
                x = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^
                    (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 32);
                memcpy(rnd, &x, sizeof(rnd));
        }
        for (size_t i = 0; i < sizeof(rnd); i++)
                snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
        machine_scope(scope, sizeof(scope));
        n = snprintf(buf, size, "%s:%ld:%s@%s", host, (long)getpid(), hex,
                     scope[0] ? scope : "-");
        if (n < 0 || (size_t)n >= size)
                return OSY_ERR_TOO_LARGE;
        return OSY_OK;
}

/* Conservative: only "same boot, same pid namespace, no such process"
 * counts as dead. A pid reused since then looks alive (we wait for the
 * expiry); an id from a container or machine we cannot see is alive. */
int osy_sfi_lease_owner_dead(const char *owner)
{
        char scope[160];
        const char *at = strrchr(owner, '@'), *p;
        char *end;
        long pid;

        machine_scope(scope, sizeof(scope));
        if (!at || !scope[0] || strcmp(at + 1, scope))
                return 0;
        if (!(p = strchr(owner, ':')) || p > at)
                return 0;
        errno = 0;
        pid   = strtol(p + 1, &end, 10);
        /* Beyond a pid_t the cast would name another process (or, at
         * 2^32, our process group): not provably dead. */
        if (errno || end == p + 1 || *end != ':' || pid <= 0 || pid > INT_MAX)
                return 0;
        /* Our own pid: another lease of this very process, alive. */
        if (pid == (long)getpid())
                return 0;
        return kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}
