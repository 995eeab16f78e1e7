/*
 * spool.c - the durable spool: length-prefixed, CRC-checked records in
 * one append-only file, group-committed with fdatasync, a cursor file for
 * what Kafka already has, and recovery that cuts torn tails.
 */
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "optsync/log.h"

/*
 * Record layout, little-endian:
 *   0  magic "OSY1"
 *   4  u32 key length
 *   8  u32 value length
 *  12  u32 CRC-32 of bytes 4..11, 16..23, then key and value
 *  16  i64 append time, ms since the epoch
 *  24  key, value
 * The CRC covers the lengths, so a torn or overwritten header is caught
 * before its lengths are trusted for anything but a bounds check.
 */
#define HDR_SIZE 24
static const unsigned char MAGIC[4] = {'O', 'S', 'Y', '1'};

/* Scan window when looking for the next record after a corrupt one. */
#define SCAN_CHUNK 65536

struct osy_spool_s {
        pthread_mutex_t lock;
        pthread_cond_t synced_cond;
        int fd;
        char *log_path;
        char *cursor_path;
        char *cursor_tmp;
        char *dir;
        uint64_t max_bytes;
        uint64_t end;       /* bytes written (file size as we see it) */
        uint64_t synced;    /* bytes known durable */
        uint64_t fail_upto; /* appends ending at or below failed to sync */
        int syncing;        /* a group commit is in progress */
        int broken;         /* last write or sync failed */
        int full;           /* an append did not fit; cleared by replay */
        uint64_t cursor;    /* first undelivered record */
        uint64_t records;   /* undelivered records */
        int64_t head_ms;    /* append time of the record at the cursor */
};

/* ---- CRC-32 (IEEE 802.3, reflected, as zlib's crc32) --------------------- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;
                for (int k = 0; k < 8; k++)
                        c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
                crc_table[i] = c;
        }
}

uint32_t osy_crc32(uint32_t crc, const void *data, size_t len)
{
        const unsigned char *p = data;

        pthread_once(&crc_once, crc_init);
        crc = ~crc;
        for (size_t i = 0; i < len; i++)
                crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
        return ~crc;
}

/* ---- encoding ------------------------------------------------------------ */

static void put32(unsigned char *p, uint32_t v)
{
        for (int i = 0; i < 4; i++)
                p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
               (uint32_t)p[3] << 24;
}

static void put64(unsigned char *p, uint64_t v)
{
        for (int i = 0; i < 8; i++)
                p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get64(const unsigned char *p)
{
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
                v = v << 8 | p[i];
        return v;
}

static uint32_t rec_crc(const unsigned char *hdr, const void *key,
                        size_t key_len, const void *value, size_t value_len)
{
        uint32_t c = osy_crc32(0, hdr + 4, 8);
        c          = osy_crc32(c, hdr + 16, 8);
        c          = osy_crc32(c, key, key_len);
        return osy_crc32(c, value, value_len);
}

/* ---- file helpers -------------------------------------------------------- */

static char *path_join(const char *dir, const char *name)
{
        size_t n = strlen(dir) + strlen(name) + 2;
        char *p  = malloc(n);

        if (p)
                snprintf(p, n, "%s/%s", dir, name);
        return p;
}

/* pread all of @p n bytes. @returns 1 if read fully, 0 at EOF, -1 error. */
static int pread_full(int fd, void *buf, size_t n, uint64_t off)
{
        size_t got = 0;

        while (got < n) {
                ssize_t r =
                    pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -1;
                if (r == 0)
                        return 0;
                got += (size_t)r;
        }
        return 1;
}

static int pwrite_full(int fd, const void *buf, size_t n, uint64_t off)
{
        size_t put = 0;

        while (put < n) {
                ssize_t r = pwrite(fd, (const char *)buf + put, n - put,
                                   (off_t)(off + put));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return -1;
                put += (size_t)r;
        }
        return 0;
}

static int fsync_dir(const char *dir)
{
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int r;

        if (fd < 0)
                return -1;
        r = fsync(fd);
        close(fd);
        return r;
}

/* Write the cursor file atomically (tmp + rename); with @p durable also
 * fsync the file and the directory. */
static int cursor_save(osy_spool_t *sp, uint64_t cursor, int durable)
{
        char text[32];
        int n  = snprintf(text, sizeof(text), "%" PRIu64 "\n", cursor);
        int fd = open(sp->cursor_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                      0600);

        if (fd < 0)
                return -1;
        if (pwrite_full(fd, text, (size_t)n, 0) < 0 ||
            (durable && fsync(fd) < 0)) {
                close(fd);
                return -1;
        }
        if (close(fd) < 0 || rename(sp->cursor_tmp, sp->cursor_path) < 0)
                return -1;
        return durable ? fsync_dir(sp->dir) : 0;
}

static uint64_t cursor_load(const char *path)
{
        char text[32];
        ssize_t n;
        char *end;
        unsigned long long v;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return 0;
        n = read(fd, text, sizeof(text) - 1);
        close(fd);
        if (n <= 0)
                return 0;
        text[n] = '\0';
        errno   = 0;
        v       = strtoull(text, &end, 10);
        if (errno || end == text || (*end && *end != '\n'))
                return 0; /* unreadable: replay from the start (duplicates) */
        return (uint64_t)v;
}

/*
 * Check the record at @p off (below @p limit). On success fills @p hdr
 * and, when @p payload is not NULL, reads key + value into *payload
 * (grown as needed). @returns 1 valid, 0 invalid or truncated, -1 I/O.
 */
static int rec_read(osy_spool_t *sp, uint64_t off, uint64_t limit,
                    unsigned char hdr[HDR_SIZE], char **payload,
                    size_t *payload_size)
{
        uint32_t klen, vlen;
        char *buf;
        int r;

        if (limit - off < HDR_SIZE)
                return 0;
        if ((r = pread_full(sp->fd, hdr, HDR_SIZE, off)) <= 0)
                return r;
        if (memcmp(hdr, MAGIC, 4))
                return 0;
        klen = get32(hdr + 4);
        vlen = get32(hdr + 8);
        if ((uint64_t)klen + vlen > OSY_SPOOL_MAX_RECORD ||
            limit - off - HDR_SIZE < (uint64_t)klen + vlen)
                return 0;
        if (*payload_size < (size_t)klen + vlen + 1) {
                if (!(buf = realloc(*payload, (size_t)klen + vlen + 1)))
                        return -1;
                *payload      = buf;
                *payload_size = (size_t)klen + vlen + 1;
        }
        if ((r = pread_full(sp->fd, *payload, (size_t)klen + vlen,
                            off + HDR_SIZE)) <= 0)
                return r;
        if (rec_crc(hdr, *payload, klen, *payload + klen, vlen) !=
            get32(hdr + 12))
                return 0;
        return 1;
}

/* Find the first valid record after @p off. @returns its offset, or
 * @p limit when there is none. */
static uint64_t rec_scan(osy_spool_t *sp, uint64_t off, uint64_t limit,
                         char **scratch, size_t *scratch_size)
{
        unsigned char chunk[SCAN_CHUNK], hdr[HDR_SIZE];

        for (uint64_t base = off + 1; base < limit;) {
                size_t want = limit - base < SCAN_CHUNK ? (size_t)(limit - base)
                                                        : SCAN_CHUNK;
                if (pread_full(sp->fd, chunk, want, base) <= 0)
                        return limit;
                for (size_t i = 0; i + 4 <= want; i++)
                        if (!memcmp(chunk + i, MAGIC, 4) &&
                            rec_read(sp, base + i, limit, hdr, scratch,
                                     scratch_size) == 1)
                                return base + i;
                /* Overlap by 3 so a magic split across chunks is seen. */
                base += want > 3 ? want - 3 : want;
        }
        return limit;
}

/* ---- open / close -------------------------------------------------------- */

/* Walk the undelivered records, count them, cut a torn tail. */
static osy_err_t recover(osy_spool_t *sp, char *errstr, size_t errstr_size)
{
        struct stat st;
        unsigned char hdr[HDR_SIZE];
        char *scratch       = NULL;
        size_t scratch_size = 0;
        uint64_t off, size;
        osy_err_t err = OSY_OK;

        if (fstat(sp->fd, &st) < 0)
                return osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                   "spool: stat %s: %s", sp->log_path,
                                   strerror(errno));
        size       = (uint64_t)st.st_size;
        sp->cursor = cursor_load(sp->cursor_path);
        if (sp->cursor > size)
                sp->cursor = 0; /* emptied, cursor reset not yet written */
        for (off = sp->cursor; off < size;) {
                int r = rec_read(sp, off, size, hdr, &scratch, &scratch_size);
                uint64_t next;

                if (r < 0) {
                        err = osy_err_set(OSY_ERR_TRANSIENT, errstr,
                                          errstr_size, "spool: read %s: %s",
                                          sp->log_path, strerror(errno));
                        goto out;
                }
                if (r == 1) {
                        if (sp->records++ == 0)
                                sp->head_ms = (int64_t)get64(hdr + 16);
                        off += HDR_SIZE + (uint64_t)get32(hdr + 4) +
                               get32(hdr + 8);
                        continue;
                }
                next = rec_scan(sp, off, size, &scratch, &scratch_size);
                if (next == size) {
                        /* A crash mid-append: that event was never
                         * acknowledged, so cutting it loses nothing. */
                        osy_log_warn("spool: cutting a torn tail of %" PRIu64
                                     " bytes at offset %" PRIu64,
                                     size - off, off);
                        if (ftruncate(sp->fd, (off_t)off) < 0 ||
                            fsync(sp->fd) < 0) {
                                err = osy_err_set(
                                    OSY_ERR_TRANSIENT, errstr, errstr_size,
                                    "spool: truncate %s: %s", sp->log_path,
                                    strerror(errno));
                                goto out;
                        }
                        size = off;
                        break;
                }
                osy_log_error("spool: %" PRIu64 " corrupt bytes at offset "
                              "%" PRIu64 " skipped; the records after them "
                              "are kept",
                              next - off, off);
                off = next;
        }
        sp->end = sp->synced = size;
        if (sp->records)
                osy_log_info("spool: %" PRIu64 " undelivered record(s) "
                             "to replay",
                             sp->records);
out:
        free(scratch);
        return err;
}

osy_err_t osy_spool_open(osy_spool_t **spp, const char *dir, uint64_t max_bytes,
                         char *errstr, size_t errstr_size)
{
        osy_spool_t *sp = NULL;
        struct stat st;
        osy_err_t err;

        *spp = NULL;
        if (!dir || !*dir)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "spool: no directory given");
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "spool: mkdir %s: %s", dir, strerror(errno));
        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "spool: %s is not a directory", dir);
        if (!(sp = calloc(1, sizeof(*sp))))
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "out of memory");
        sp->fd        = -1;
        sp->max_bytes = max_bytes;
        pthread_mutex_init(&sp->lock, NULL);
        pthread_cond_init(&sp->synced_cond, NULL);
        if (!(sp->dir = strdup(dir)) ||
            !(sp->log_path = path_join(dir, OSY_SPOOL_LOG_NAME)) ||
            !(sp->cursor_path = path_join(dir, OSY_SPOOL_CURSOR_NAME)) ||
            !(sp->cursor_tmp = path_join(dir, OSY_SPOOL_CURSOR_NAME ".tmp"))) {
                err = osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                  "out of memory");
                goto out;
        }
        if ((sp->fd = open(sp->log_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) <
            0) {
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "spool: open %s: %s", sp->log_path,
                                  strerror(errno));
                goto out;
        }
        /* Two replicas on one volume would interleave their records. */
        if (flock(sp->fd, LOCK_EX | LOCK_NB) < 0) {
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "spool: %s is in use by another process "
                                  "(%s)",
                                  sp->log_path, strerror(errno));
                goto out;
        }
        if ((err = recover(sp, errstr, errstr_size)))
                goto out;
        /* The file may be new: make its directory entry durable too. */
        if (fsync_dir(dir) < 0) {
                err = osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                  "spool: fsync %s: %s", dir, strerror(errno));
                goto out;
        }
        *spp = sp;
        sp   = NULL;
        err  = OSY_OK;
out:
        osy_spool_close(sp);
        return err;
}

void osy_spool_close(osy_spool_t *sp)
{
        if (!sp)
                return;
        if (sp->fd >= 0)
                close(sp->fd); /* releases the flock */
        pthread_cond_destroy(&sp->synced_cond);
        pthread_mutex_destroy(&sp->lock);
        free(sp->dir);
        free(sp->log_path);
        free(sp->cursor_path);
        free(sp->cursor_tmp);
        free(sp);
}

/* ---- append -------------------------------------------------------------- */

osy_err_t osy_spool_append(osy_spool_t *sp, const struct osy_spool_rec *recs,
                           size_t n, int64_t now_ms, char *errstr,
                           size_t errstr_size)
{
        unsigned char *buf = NULL, *p;
        size_t total       = 0;
        uint64_t my_end;
        osy_err_t err = OSY_OK;

        for (size_t i = 0; i < n; i++) {
                if (recs[i].key_len + recs[i].value_len > OSY_SPOOL_MAX_RECORD)
                        return osy_err_set(OSY_ERR_TOO_LARGE, errstr,
                                           errstr_size,
                                           "spool: record of %zu bytes",
                                           recs[i].key_len + recs[i].value_len);
                total += HDR_SIZE + recs[i].key_len + recs[i].value_len;
        }
        if (n == 0)
                return OSY_OK;
        /* Encode outside the lock; the write itself is one pwrite. */
        if (!(buf = malloc(total)))
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "out of memory");
        p = buf;
        for (size_t i = 0; i < n; i++) {
                memcpy(p, MAGIC, 4);
                put32(p + 4, (uint32_t)recs[i].key_len);
                put32(p + 8, (uint32_t)recs[i].value_len);
                put64(p + 16, (uint64_t)now_ms);
                memcpy(p + HDR_SIZE, recs[i].key, recs[i].key_len);
                memcpy(p + HDR_SIZE + recs[i].key_len, recs[i].value,
                       recs[i].value_len);
                put32(p + 12, rec_crc(p, recs[i].key, recs[i].key_len,
                                      recs[i].value, recs[i].value_len));
                p += HDR_SIZE + recs[i].key_len + recs[i].value_len;
        }

        pthread_mutex_lock(&sp->lock);
        if (sp->end + total > sp->max_bytes) {
                sp->full = 1;
                err      = osy_err_set(OSY_ERR_TOO_LARGE, errstr, errstr_size,
                                       "spool: full (%" PRIu64 " of %" PRIu64
                                       " bytes)",
                                       sp->end, sp->max_bytes);
                goto unlock;
        }
        if (pwrite_full(sp->fd, buf, total, sp->end) < 0) {
                int e = errno;
                /* Never leave half a record behind live appends: cut
                 * back (recovery would also catch it by its CRC). */
                if (ftruncate(sp->fd, (off_t)sp->end) < 0)
                        osy_log_error("spool: cannot cut a failed append: %s",
                                      strerror(errno));
                sp->broken = 1;
                err        = osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                         "spool: write %s: %s", sp->log_path,
                                         strerror(e));
                goto unlock;
        }
        if (sp->records == 0)
                sp->head_ms = now_ms;
        sp->end += total;
        sp->records += n;
        my_end = sp->end;

        /* Group commit: one appender syncs everything written so far while
         * the others wait; each returns once its own bytes are durable. */
        while (sp->synced < my_end) {
                if (sp->fail_upto >= my_end) {
                        err = osy_err_set(
                            OSY_ERR_TRANSIENT, errstr, errstr_size,
                            "spool: fdatasync %s failed", sp->log_path);
                        goto unlock;
                }
                if (sp->syncing) {
                        pthread_cond_wait(&sp->synced_cond, &sp->lock);
                        continue;
                }
                uint64_t target = sp->end;
                int r;

                sp->syncing = 1;
                pthread_mutex_unlock(&sp->lock);
                r = fdatasync(sp->fd);
                pthread_mutex_lock(&sp->lock);
                sp->syncing = 0;
                if (r == 0) {
                        if (target > sp->synced)
                                sp->synced = target;
                        sp->broken = 0;
                } else {
                        osy_log_error("spool: fdatasync %s: %s", sp->log_path,
                                      strerror(errno));
                        sp->fail_upto = target;
                        sp->broken    = 1;
                }
                pthread_cond_broadcast(&sp->synced_cond);
        }
unlock:
        pthread_mutex_unlock(&sp->lock);
        free(buf);
        return err;
}

/* ---- replay -------------------------------------------------------------- */

void osy_spool_batch_clear(struct osy_spool_batch *b)
{
        if (!b)
                return;
        free(b->items);
        free(b->buf);
        memset(b, 0, sizeof(*b));
}

osy_err_t osy_spool_peek(osy_spool_t *sp, struct osy_spool_batch *b,
                         size_t max_recs, size_t max_bytes, char *errstr,
                         size_t errstr_size)
{
        unsigned char hdr[HDR_SIZE];
        char *scratch       = NULL;
        size_t scratch_size = 0, used = 0;
        uint64_t off, limit;
        osy_err_t err = OSY_OK;

        osy_spool_batch_clear(b);
        pthread_mutex_lock(&sp->lock);
        off   = sp->cursor;
        limit = sp->synced; /* replay only what an answer promised */
        pthread_mutex_unlock(&sp->lock);
        if (max_recs == 0 || off >= limit)
                return OSY_OK;
        if (!(b->items = calloc(max_recs, sizeof(*b->items)))) {
                err = osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                  "out of memory");
                goto out;
        }
        while (off < limit && b->n < max_recs &&
               (b->n == 0 || used < max_bytes)) {
                int r = rec_read(sp, off, limit, hdr, &scratch, &scratch_size);
                uint32_t klen, vlen;
                struct osy_spool_item *it;

                if (r < 0) {
                        err = osy_err_set(OSY_ERR_TRANSIENT, errstr,
                                          errstr_size, "spool: read %s: %s",
                                          sp->log_path, strerror(errno));
                        goto out;
                }
                if (r == 0) {
                        /* Corrupted after it was written (the disk): skip
                         * to the next good record rather than stall. */
                        uint64_t next =
                            rec_scan(sp, off, limit, &scratch, &scratch_size);
                        osy_log_error("spool: %" PRIu64 " unreadable bytes at "
                                      "offset %" PRIu64 " skipped",
                                      next - off, off);
                        off = next;
                        continue;
                }
                klen = get32(hdr + 4);
                vlen = get32(hdr + 8);
                if (b->buf_size < used + klen + vlen + 2) {
                        size_t sz = (used + klen + vlen + 2) * 2;
                        char *nb  = realloc(b->buf, sz);
                        if (!nb) {
                                err = osy_err_set(OSY_ERR_NOMEM, errstr,
                                                  errstr_size, "out of memory");
                                goto out;
                        }
                        b->buf      = nb;
                        b->buf_size = sz;
                }
                it = &b->items[b->n++];
                /* Offsets for now: buf may still move. Each part gets a
                 * NUL so values can be used as strings. */
                memcpy(b->buf + used, scratch, klen);
                b->buf[used + klen] = '\0';
                memcpy(b->buf + used + klen + 1, scratch + klen, vlen);
                b->buf[used + klen + 1 + vlen] = '\0';
                it->key                        = (const char *)(uintptr_t)used;
                it->key_len                    = klen;
                it->value_len                  = vlen;
                it->appended_ms                = (int64_t)get64(hdr + 16);
                off += HDR_SIZE + (uint64_t)klen + vlen;
                it->end_off = off;
                used += klen + vlen + 2;
        }
        for (size_t i = 0; i < b->n; i++) {
                size_t at         = (size_t)(uintptr_t)b->items[i].key;
                b->items[i].key   = b->buf + at;
                b->items[i].value = b->buf + at + b->items[i].key_len + 1;
        }
out:
        free(scratch);
        if (err)
                osy_spool_batch_clear(b);
        return err;
}

osy_err_t osy_spool_consume(osy_spool_t *sp, const struct osy_spool_batch *b,
                            size_t k, char *errstr, size_t errstr_size)
{
        unsigned char hdr[HDR_SIZE];
        osy_err_t err = OSY_OK;

        if (k == 0 || !b || k > b->n)
                return OSY_OK;
        pthread_mutex_lock(&sp->lock);
        sp->full    = 0; /* room is made only by emptying; try again */
        sp->cursor  = b->items[k - 1].end_off;
        sp->records = sp->records > k ? sp->records - k : 0;
        if (sp->cursor >= sp->end && !sp->syncing) {
                /* Everything delivered: empty the file. The cursor reset
                 * is made durable first; a crash before the truncate then
                 * replays delivered records (duplicates), never skips. */
                sp->records = 0;
                sp->head_ms = 0;
                if (cursor_save(sp, 0, 1) < 0 || ftruncate(sp->fd, 0) < 0 ||
                    fdatasync(sp->fd) < 0) {
                        err = osy_err_set(OSY_ERR_TRANSIENT, errstr,
                                          errstr_size, "spool: reset %s: %s",
                                          sp->log_path, strerror(errno));
                        /* The cursor file may say 0 now: stay consistent
                         * with it, replaying rather than skipping. */
                        sp->cursor  = 0;
                        sp->records = 0;
                        sp->broken  = 1;
                        goto unlock;
                }
                sp->cursor = sp->end = sp->synced = sp->fail_upto = 0;
                goto unlock;
        }
        sp->head_ms = k < b->n ? b->items[k].appended_ms
                      : pread_full(sp->fd, hdr, HDR_SIZE, sp->cursor) == 1
                          ? (int64_t)get64(hdr + 16)
                          : 0;
        /* Not fsync'd: losing this only replays delivered records. */
        if (cursor_save(sp, sp->cursor, 0) < 0)
                err = osy_err_set(OSY_ERR_TRANSIENT, errstr, errstr_size,
                                  "spool: save cursor: %s", strerror(errno));
unlock:
        pthread_mutex_unlock(&sp->lock);
        return err;
}

/* ---- stats --------------------------------------------------------------- */

void osy_spool_stats(osy_spool_t *sp, struct osy_spool_stats *st)
{
        pthread_mutex_lock(&sp->lock);
        st->records   = sp->records;
        st->bytes     = sp->end;
        st->oldest_ms = sp->records ? sp->head_ms : 0;
        st->writable  = !sp->broken && !sp->full && sp->end < sp->max_bytes;
        pthread_mutex_unlock(&sp->lock);
}

uint64_t osy_spool_depth(osy_spool_t *sp)
{
        uint64_t n;

        pthread_mutex_lock(&sp->lock);
        n = sp->records;
        pthread_mutex_unlock(&sp->lock);
        return n;
}
