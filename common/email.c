/*
 * email.c - email normalisation (trim, ASCII lower-case, light validation)
 * and the UTF-8 validator that message decoding shares.
 */
#include "optsync/email.h"

#include <string.h>

static int is_ascii_space(unsigned char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
               c == '\f';
}

int osy_utf8_valid(const char *s, size_t len)
{
        const unsigned char *p = (const unsigned char *)s;
        size_t i               = 0;

        while (i < len) {
                unsigned char c = p[i];
                size_t n;
                unsigned cp;

                if (c < 0x80) {
                        i++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf) {
                        n  = 1;
                        cp = c & 0x1f;
                } else if (c >= 0xe0 && c <= 0xef) {
                        n  = 2;
                        cp = c & 0x0f;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        n  = 3;
                        cp = c & 0x07;
                } else {
                        return 0; /* continuation byte, 0xc0/0xc1, > 0xf4 */
                }
                if (len - i - 1 < n)
                        return 0;
                for (size_t k = 1; k <= n; k++) {
                        if ((p[i + k] & 0xc0) != 0x80)
                                return 0;
                        cp = (cp << 6) | (p[i + k] & 0x3f);
                }
                /* Overlong forms, UTF-16 surrogates, beyond Unicode. */
                if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
                    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
                        return 0;
                i += n + 1;
        }
        return 1;
}

/* Validate an address that is already trimmed and lower-cased. */
static osy_err_t check(const char *s, size_t len, char *errstr,
                       size_t errstr_size)
{
        const char *at = NULL;

        if (len == 0)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "email: empty");
        if (len > OSY_EMAIL_MAX)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "email: %zu bytes, more than %d", len,
                                   OSY_EMAIL_MAX);
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];

                if (c < 0x20 || c == 0x7f || c == ' ')
                        return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                           "email: white space or control "
                                           "character at byte %zu",
                                           i);
                if (c == '@') {
                        if (at)
                                return osy_err_set(OSY_ERR_INVALID, errstr,
                                                   errstr_size,
                                                   "email: more than one '@'");
                        at = s + i;
                }
        }
        if (!at)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "email: no '@'");
        if (at == s || at == s + len - 1)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "email: empty %s before or after '@'",
                                   at == s ? "local part" : "domain");
        if (!osy_utf8_valid(s, len))
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "email: not valid UTF-8");
        return OSY_OK;
}

osy_err_t osy_email_normalise(const char *in, char *out, size_t out_size,
                              char *errstr, size_t errstr_size)
{
        size_t b = 0, e;
        osy_err_t err;

        if (out && out_size)
                out[0] = '\0';
        if (!in)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "email: missing");
        e = strlen(in);
        while (b < e && is_ascii_space((unsigned char)in[b]))
                b++;
        while (e > b && is_ascii_space((unsigned char)in[e - 1]))
                e--;
        if ((err = check(in + b, e - b, errstr, errstr_size)) != OSY_OK)
                return err;
        if (!out || out_size <= e - b)
                return osy_err_set(OSY_ERR_TOO_LARGE, errstr, errstr_size,
                                   "email: output buffer too small");
        /* ASCII-only lower-casing on purpose: tolower() depends on the
         * locale, and lower-casing multi-byte UTF-8 byte by byte would
         * corrupt it. */
        for (size_t i = b; i < e; i++) {
                char c     = in[i];
                out[i - b] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
        out[e - b] = '\0';
        return OSY_OK;
}

int osy_email_is_normal(const char *s)
{
        size_t len;

        if (!s)
                return 0;
        len = strlen(s);
        if (check(s, len, NULL, 0) != OSY_OK)
                return 0;
        for (size_t i = 0; i < len; i++)
                if (s[i] >= 'A' && s[i] <= 'Z')
                        return 0;
        /* check() already refused inner and outer spaces, so a valid
         * lower-case address is its own normal form. */
        return 1;
}
