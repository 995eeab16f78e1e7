/*
 * fuzz_envelope.c - fuzz the envelope decoder every consumer runs on the
 * bytes of a Kafka record (rules, both writers): any bytes in, no crash.
 * What it accepts must be canonical: it encodes, the encoding decodes to
 * the same id, and encoding that again gives the same bytes. The DLQ's
 * best-effort person peek runs on every input too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_acwh.h"
#include "optsync/email.h"
#include "optsync/envelope.h"

static void die(const char *what, const char *detail)
{
        fprintf(stderr, "fuzz_envelope: %s: %s\n", what, detail ? detail : "");
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char e[OSY_ERRSTR_SIZE], tenant[OSY_TENANT_MAX + 1];
        char email[OSY_EMAIL_BUFSZ];
        char *json1 = NULL, *json2 = NULL;
        size_t len1 = 0, len2 = 0;
        struct osy_msg m1, m2;

        if (osy_msg_peek_person(data, size, tenant, sizeof(tenant), email,
                                sizeof(email)) &&
            (!tenant[0] || !email[0]))
                die("peek found a person with an empty field", tenant);
        if (osy_msg_decode(data, size, &m1, e, sizeof(e)))
                return 0;
        if (osy_msg_encode(&m1, &json1, &len1, e, sizeof(e)))
                die("accepted message does not encode", e);
        if (osy_msg_decode(json1, len1, &m2, e, sizeof(e)))
                die("encoding does not decode", e);
        if (strcmp(m1.id, m2.id))
                die("id changed by a round trip", json1);
        if (osy_msg_encode(&m2, &json2, &len2, e, sizeof(e)))
                die("decoded encoding does not encode", e);
        if (len1 != len2 || memcmp(json1, json2, len1))
                die("encoding is not canonical", json1);
        osy_msg_clear(&m1);
        osy_msg_clear(&m2);
        free(json1);
        free(json2);
        return 0;
}
