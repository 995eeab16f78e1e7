/*
 * timeutil.c - RFC 3339 <-> UTC milliseconds, with the proleptic Gregorian
 * day arithmetic done by hand (timegm is neither C11 nor POSIX).
 */
#include "optsync/timeutil.h"

#include <stdio.h>
#include <string.h>

#define MS_PER_DAY INT64_C(86400000)

/* Days since 1970-01-01 of a civil date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
        int64_t era;
        unsigned yoe, doy, doe;

        y -= m <= 2;
        era = (y >= 0 ? y : y - 399) / 400;
        yoe = (unsigned)(y - era * 400);
        doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
        doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t)doe - 719468;
}

/* Inverse of days_from_civil(). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
        int64_t era;
        unsigned doe, yoe, doy, mp;

        z += 719468;
        era = (z >= 0 ? z : z - 146096) / 146097;
        doe = (unsigned)(z - era * 146097);
        yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        mp  = (5 * doy + 2) / 153;
        *d  = doy - (153 * mp + 2) / 5 + 1;
        *m  = mp < 10 ? mp + 3 : mp - 9;
        *y  = (int64_t)yoe + era * 400 + (*m <= 2);
}

static unsigned days_in_month(int64_t y, unsigned m)
{
        static const unsigned mdays[12] = {31, 28, 31, 30, 31, 30,
                                           31, 31, 30, 31, 30, 31};
        int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

        return m == 2 && leap ? 29 : mdays[m - 1];
}

/* @p v as exactly @p n digits at @p p (v fits: the caller's range). */
static char *put_digits(char *p, unsigned v, int n)
{
        for (int i = n - 1; i >= 0; i--) {
                p[i] = (char)('0' + v % 10);
                v /= 10;
        }
        return p + n;
}

osy_err_t osy_time_format_ms(int64_t ms, char *buf, size_t size)
{
        int64_t y;
        unsigned mo, d, rem;
        char *p = buf;

        if (buf && size)
                buf[0] = '\0';
        if (!buf || size < OSY_TIME_BUFSZ)
                return OSY_ERR_TOO_LARGE;
        if (ms < 0 || ms > OSY_TIME_MAX_MS)
                return OSY_ERR_INVALID;
        civil_from_days(ms / MS_PER_DAY, &y, &mo, &d);
        if (y < 0 || y > 9999)
                return OSY_ERR_INVALID;
        rem = (unsigned)(ms % MS_PER_DAY);
        /* By hand, not snprintf: every message encoded carries a time
         * stamp, and the format call showed in the rules worker's
         * profile. */
        p    = put_digits(p, (unsigned)y, 4);
        *p++ = '-';
        p    = put_digits(p, mo, 2);
        *p++ = '-';
        p    = put_digits(p, d, 2);
        *p++ = 'T';
        p    = put_digits(p, rem / 3600000, 2);
        *p++ = ':';
        p    = put_digits(p, rem / 60000 % 60, 2);
        *p++ = ':';
        p    = put_digits(p, rem / 1000 % 60, 2);
        *p++ = '.';
        p    = put_digits(p, rem % 1000, 3);
        *p++ = 'Z';
        *p   = '\0';
        return p - buf == OSY_TIME_BUFSZ - 1 ? OSY_OK : OSY_ERR_INVALID;
}

/* Read exactly @p n decimal digits at *p; advance *p. -1 if not digits. */
static int digits(const char **p, int n)
{
        int v = 0;

        for (int i = 0; i < n; i++) {
                char c = (*p)[i];
                if (c < '0' || c > '9')
                        return -1;
                v = v * 10 + (c - '0');
        }
        *p += n;
        return v;
}

/* Consume the character @p c at *p. @returns 0 if it is not there (and
 * never steps over the terminating NUL). */
static int lit(const char **p, char c)
{
        if (**p != c)
                return 0;
        (*p)++;
        return 1;
}

/*
 * The one parser behind both entry points. @p strict demands the
 * canonical spelling; otherwise the lenient forms listed in the header.
 */
static osy_err_t parse(const char *s, int strict, int64_t *out, char *errstr,
                       size_t errstr_size)
{
        const char *p = s;
        int y, mo, d, h, mi, sec, ms = 0, off_min = 0;
        int64_t t;

        if (!s)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "time: missing");
        if ((y = digits(&p, 4)) < 0 || !lit(&p, '-') ||
            (mo = digits(&p, 2)) < 0 || !lit(&p, '-') ||
            (d = digits(&p, 2)) < 0)
                goto bad;
        if (!(*p == 'T' || (!strict && (*p == 't' || *p == ' '))))
                goto bad;
        p++;
        if ((h = digits(&p, 2)) < 0 || !lit(&p, ':') ||
            (mi = digits(&p, 2)) < 0 || !lit(&p, ':') ||
            (sec = digits(&p, 2)) < 0)
                goto bad;
        if (*p == '.') {
                int nd = 0;

                p++;
                /* Keep three digits; finer precision is dropped (not
                 * rounded), so a time never moves into the next ms. */
                while (*p >= '0' && *p <= '9') {
                        if (nd < 3)
                                ms = ms * 10 + (*p - '0');
                        nd++;
                        p++;
                }
                if (nd == 0 || (strict && nd != 3))
                        goto bad;
                for (int i = nd; i < 3; i++)
                        ms *= 10;
        } else if (strict) {
                goto bad;
        }
        if (!strict && *p == ' ')
                p++;
        if (*p == 'Z' || (!strict && *p == 'z')) {
                p++;
        } else if (!strict && (*p == '+' || *p == '-')) {
                int sign = *p++ == '-' ? -1 : 1;
                int oh, om;

                if ((oh = digits(&p, 2)) < 0)
                        goto bad;
                if (*p == ':')
                        p++;
                if ((om = digits(&p, 2)) < 0 || oh > 23 || om > 59)
                        goto bad;
                off_min = sign * (oh * 60 + om);
        } else {
                goto bad;
        }
        if (*p != '\0')
                goto bad;
        /* Second 60 is a leap second (RFC 3339 allows it): it lands on the
         * next minute's first second, as timegm() would place it. */
        if (mo < 1 || mo > 12 || d < 1 ||
            (unsigned)d > days_in_month(y, (unsigned)mo) || h > 23 || mi > 59 ||
            sec > 60)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "time \"%.40s\": field out of range", s);
        t = days_from_civil(y, (unsigned)mo, (unsigned)d) * MS_PER_DAY +
            (int64_t)h * 3600000 + (int64_t)mi * 60000 + (int64_t)sec * 1000 +
            ms;
        /* Local time = UTC + offset, so UTC = local - offset. */
        t -= (int64_t)off_min * 60000;
        if (t < 0 || t > OSY_TIME_MAX_MS)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "time \"%.40s\": before 1970 or after 9999",
                                   s);
        *out = t;
        return OSY_OK;
bad:
        return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                           strict ? "time \"%.40s\": expected UTC RFC 3339 "
                                    "with milliseconds, like "
                                    "2026-11-26T04:13:00.123Z"
                                  : "time \"%.40s\": expected RFC 3339 with a "
                                    "zone, like 2024-02-28T07:04:13-06:00",
                           s);
}

osy_err_t osy_time_parse(const char *s, int64_t *ms, char *errstr,
                         size_t errstr_size)
{
        return parse(s, 0, ms, errstr, errstr_size);
}

osy_err_t osy_time_parse_canonical(const char *s, int64_t *ms, char *errstr,
                                   size_t errstr_size)
{
        return parse(s, 1, ms, errstr, errstr_size);
}
