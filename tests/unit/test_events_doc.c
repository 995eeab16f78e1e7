/*
 * test_events_doc.c - docs/events.md cannot drift from the code: every
 * ```json example in it must decode (real ids included), there is one per
 * message type, and each is written in the encoder's own key order.
 */
#include "osy_test.h"
#include "optsync/envelope.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DOC_PATH OSY_SOURCE_DIR "/docs/events.md"
#define MAX_BLOCKS 32

struct doc {
        char *text;
        char *block[MAX_BLOCKS]; /* each a NUL-terminated copy */
        size_t nblocks;
};

static struct doc doc;

/* Load the doc and cut out every fenced json block. */
static int setup(void **state)
{
        FILE *f = fopen(DOC_PATH, "rb");
        long size;
        char *p;

        (void)state;
        if (!f)
                return -1;
        fseek(f, 0, SEEK_END);
        size = ftell(f);
        rewind(f);
        doc.text = calloc(1, (size_t)size + 1);
        if (!doc.text || fread(doc.text, 1, (size_t)size, f) != (size_t)size) {
                fclose(f);
                return -1;
        }
        fclose(f);
        p = doc.text;
        while ((p = strstr(p, "```json\n")) && doc.nblocks < MAX_BLOCKS) {
                char *end;

                p += 8;
                if (!(end = strstr(p, "\n```")))
                        return -1;
                doc.block[doc.nblocks] = calloc(1, (size_t)(end - p) + 1);
                memcpy(doc.block[doc.nblocks++], p, (size_t)(end - p));
                p = end + 4;
        }
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        for (size_t i = 0; i < doc.nblocks; i++)
                free(doc.block[i]);
        free(doc.text);
        return 0;
}

static void doc_examples_all_decode(void **state)
{
        (void)state;
        assert_true(doc.nblocks > 0);
        for (size_t i = 0; i < doc.nblocks; i++) {
                char err[OSY_ERRSTR_SIZE] = "";
                struct osy_msg m;

                if (osy_msg_decode(doc.block[i], strlen(doc.block[i]), &m, err,
                                   sizeof(err)) != OSY_OK)
                        fail_msg("docs/events.md example %zu: %s", i + 1, err);
                osy_msg_clear(&m);
        }
}

static void doc_has_one_example_per_type(void **state)
{
        int seen[OSY_MSG__CNT] = {0};

        (void)state;
        for (size_t i = 0; i < doc.nblocks; i++) {
                struct osy_msg m;

                if (osy_msg_decode(doc.block[i], strlen(doc.block[i]), &m, NULL,
                                   0) == OSY_OK)
                        seen[m.type]++;
                osy_msg_clear(&m);
        }
        for (int t = OSY_MSG_NONE + 1; t < OSY_MSG__CNT; t++)
                if (seen[t] != 1)
                        fail_msg("docs/events.md: %d examples of %s, want 1",
                                 seen[t], osy_msg_type2str((osy_msg_type_t)t));
}

/* Decode, re-encode, and compare with the example minus white space: the
 * doc shows fields in the order (and spelling) the encoder writes. */
static void doc_examples_are_in_encoder_key_order(void **state)
{
        (void)state;
        for (size_t i = 0; i < doc.nblocks; i++) {
                cJSON *tree = cJSON_Parse(doc.block[i]);
                char *compact, *json = NULL;
                struct osy_msg m;

                assert_non_null(tree);
                compact = cJSON_PrintUnformatted(tree);
                assert_int_equal(osy_msg_decode(doc.block[i],
                                                strlen(doc.block[i]), &m, NULL,
                                                0),
                                 OSY_OK);
                assert_int_equal(osy_msg_encode(&m, &json, NULL, NULL, 0),
                                 OSY_OK);
                if (strcmp(compact, json))
                        fail_msg("example %zu differs from the encoding:\n"
                                 "%s\n%s",
                                 i + 1, compact, json);
                free(json);
                cJSON_free(compact);
                cJSON_Delete(tree);
                osy_msg_clear(&m);
        }
}

/* Every key an example uses has a row "| `key` |" in some field table. */
static void check_rows(const cJSON *obj)
{
        for (const cJSON *it = obj->child; it; it = it->next) {
                char row[96];

                snprintf(row, sizeof(row), "| `%s` |", it->string);
                if (!strstr(doc.text, row))
                        fail_msg("docs/events.md has no table row %s", row);
                if (cJSON_IsObject(it))
                        check_rows(it);
        }
}

static void doc_tables_cover_example_fields(void **state)
{
        (void)state;
        for (size_t i = 0; i < doc.nblocks; i++) {
                cJSON *tree = cJSON_Parse(doc.block[i]);

                assert_non_null(tree);
                check_rows(tree);
                cJSON_Delete(tree);
        }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(doc_examples_all_decode),
    cmocka_unit_test(doc_has_one_example_per_type),
    cmocka_unit_test(doc_examples_are_in_encoder_key_order),
    cmocka_unit_test(doc_tables_cover_example_fields),
};
OSY_TEST_MAIN(tests, setup, teardown)
