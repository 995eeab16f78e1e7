/*
 * err.c - names of the project-wide error codes and the single retry
 * decision (HTTP status, Salesforce error codes) that every worker shares.
 */
#include "optsync/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *osy_err2str(osy_err_t err)
{
        switch (err) {
        case OSY_OK:
                return "ok";
        case OSY_ERR_INVALID:
                return "invalid";
        case OSY_ERR_NOMEM:
                return "nomem";
        case OSY_ERR_NOT_FOUND:
                return "not_found";
        case OSY_ERR_TOO_LARGE:
                return "too_large";
        case OSY_ERR_AUTH:
                return "auth";
        case OSY_ERR_TRANSIENT:
                return "transient";
        case OSY_ERR_THROTTLED:
                return "throttled";
        case OSY_ERR_PERMANENT:
                return "permanent";
        case OSY_ERR_FATAL:
                return "fatal";
        }
        return "unknown";
}

int osy_err_is_retryable(osy_err_t err)
{
        return err == OSY_ERR_TRANSIENT || err == OSY_ERR_THROTTLED;
}

/* Salesforce error codes that name a passing condition: the same request
 * succeeds later. Everything else SF names is a property of the record or
 * the request and will fail the same way again. */
static const char *const sf_transient_codes[] = {
    "UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "QUERY_TIMEOUT",
    "TXN_SECURITY_METERING_ERROR", NULL};

osy_err_t osy_err_from_sf_code(const char *code)
{
        if (!code || !*code)
                return OSY_ERR_PERMANENT;
        for (size_t i = 0; sf_transient_codes[i]; i++)
                if (!strcmp(code, sf_transient_codes[i]))
                        return OSY_ERR_TRANSIENT;
        /* The org's daily allowance is spent: wait for budget, never drop. */
        if (!strcmp(code, "REQUEST_LIMIT_EXCEEDED"))
                return OSY_ERR_THROTTLED;
        if (!strcmp(code, "INVALID_SESSION_ID"))
                return OSY_ERR_AUTH;
        if (!strcmp(code, "NOT_FOUND") || !strcmp(code, "ENTITY_IS_DELETED"))
                return OSY_ERR_NOT_FOUND;
        return OSY_ERR_PERMANENT;
}

osy_err_t osy_err_from_http(int status, const char *body)
{
        if (status >= 200 && status < 300)
                return OSY_OK;
        if (status == 0 || status == 408)
                return OSY_ERR_TRANSIENT; /* no answer: timeout or reset */
        if (status == 429)
                return OSY_ERR_THROTTLED;
        if (status == 401)
                return OSY_ERR_AUTH;
        if (status >= 500)
                return OSY_ERR_TRANSIENT; /* incl. AC's HTML 503 pages */
        if (body) {
                /* SF answers some passing conditions with 4xx and a code in
                 * the JSON body; AC's bulk import says "rate limit" in a
                 * 400. Both must be retried, not dead-lettered. */
                if (strstr(body, "UNABLE_TO_LOCK_ROW"))
                        return OSY_ERR_TRANSIENT;
                if (strstr(body, "REQUEST_LIMIT_EXCEEDED"))
                        return OSY_ERR_THROTTLED;
                if (strstr(body, "INVALID_SESSION_ID"))
                        return OSY_ERR_AUTH;
                if (status == 400 && strstr(body, "Rate limit exceeded"))
                        return OSY_ERR_THROTTLED;
        }
        if (status == 403)
                return OSY_ERR_AUTH;
        if (status == 404)
                return OSY_ERR_NOT_FOUND;
        if (status == 413)
                return OSY_ERR_TOO_LARGE;
        return OSY_ERR_PERMANENT;
}

osy_err_t osy_err_set(osy_err_t err, char *errstr, size_t errstr_size,
                      const char *fmt, ...)
{
        if (errstr && errstr_size) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(errstr, errstr_size, fmt, ap);
                va_end(ap);
        }
        return err;
}
