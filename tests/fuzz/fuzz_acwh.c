/*
 * fuzz_acwh.c - fuzz the AC webhook body path (form and JSON parsing,
 * extraction, envelope building): any bytes in, no crash, and whatever it
 * accepts must decode back as a valid ac.event with the same id.
 */
#include "fuzz_acwh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acwh.h"
#include "optsync/envelope.h"

/* Every accepted event must survive the consumer's strict decoder. */
static void check(const struct osy_acwh_result *res)
{
        for (size_t i = 0; i < res->n; i++) {
                struct osy_msg m;
                char errstr[OSY_ERRSTR_SIZE];

                if (osy_msg_decode(res->out[i].value, res->out[i].value_len, &m,
                                   errstr, sizeof(errstr))) {
                        fprintf(stderr, "accepted but invalid: %s\n%s\n",
                                errstr, res->out[i].value);
                        abort();
                }
                if (strcmp(m.id, res->out[i].id) ||
                    strncmp(res->out[i].key, "fuzz|", 5))
                        abort();
                osy_msg_clear(&m);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const osy_acwh_format_t fmts[] = {OSY_ACWH_FORM, OSY_ACWH_JSON};
        const char *body                      = (const char *)data;

        /* Both decoders on every input: a JSON-looking body sent as a
         * form (and the reverse) must be refused cleanly too. */
        for (size_t f = 0; f < 2; f++) {
                struct osy_acwh_result res;
                char errstr[OSY_ERRSTR_SIZE];

                if (osy_acwh_decode("fuzz", body, size, fmts[f], &res, errstr,
                                    sizeof(errstr)) == OSY_OK)
                        check(&res);
                else if (res.n || !res.type_label)
                        abort(); /* an error leaves nothing behind */
                osy_acwh_result_clear(&res);
        }
        (void)osy_acwh_format_of(NULL, body, size);
        return 0;
}
