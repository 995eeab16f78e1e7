/*
 * test_log.c - JSON-lines logging: one valid JSON object per line, levels
 * filter before formatting, secrets never reach the output.
 */
#include "osy_test.h"
#include "optsync/log.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct capture {
        char *buf;
        size_t len;
        FILE *f;
};

static int cap_setup(void **state)
{
        struct capture *c = calloc(1, sizeof(*c));
        c->f              = open_memstream(&c->buf, &c->len);
        osy_log_init("test", OSY_LOG_DEBUG, c->f);
        *state = c;
        return 0;
}

static int cap_teardown(void **state)
{
        struct capture *c = *state;
        osy_log_init("optsync", OSY_LOG_INFO, NULL);
        osy_log_clear_secrets();
        fclose(c->f);
        free(c->buf);
        free(c);
        return 0;
}

/* Parses the n-th line (0-based) of the capture as JSON. */
static cJSON *line_json(struct capture *c, int n)
{
        fflush(c->f);
        char *p = c->buf;
        for (int i = 0; i < n && p; i++) {
                p = strchr(p, '\n');
                p = p ? p + 1 : NULL;
        }
        if (!p || !*p)
                return NULL;
        char *end = strchr(p, '\n');
        return cJSON_ParseWithLength(p, end ? (size_t)(end - p) : strlen(p));
}

static const char *field(cJSON *o, const char *name)
{
        cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
        return cJSON_IsString(f) ? f->valuestring : NULL;
}

static void line_is_json_with_fields(void **state)
{
        struct capture *c = *state;
        osy_log_info("hello %d", 42);
        cJSON *o = line_json(c, 0);
        assert_non_null(o);
        assert_string_equal(field(o, "level"), "info");
        assert_string_equal(field(o, "component"), "test");
        assert_string_equal(field(o, "msg"), "hello 42");
        const char *ts = field(o, "ts");
        assert_non_null(ts);
        assert_int_equal(strlen(ts), 24); /* 2026-11-26T04:13:00.123Z */
        assert_int_equal(ts[23], 'Z');
        cJSON_Delete(o);
}

static void special_characters_are_escaped(void **state)
{
        struct capture *c = *state;
        osy_log_warn("quote \" backslash \\ newline \n tab \t bell \a end");
        cJSON *o = line_json(c, 0);
        assert_non_null(o); /* still one parseable line */
        assert_string_equal(
            field(o, "msg"),
            "quote \" backslash \\ newline \n tab \t bell \a end");
        assert_null(line_json(c, 1)); /* the newline did not split it */
        cJSON_Delete(o);
}

static void key_values_are_fields(void **state)
{
        struct capture *c      = *state;
        const char *const kv[] = {"tenant", "acme", "event_id", "ab\"cd", NULL};
        osy_log_kv(OSY_LOG_ERROR, kv, "write failed");
        cJSON *o = line_json(c, 0);
        assert_non_null(o);
        assert_string_equal(field(o, "tenant"), "acme");
        assert_string_equal(field(o, "event_id"), "ab\"cd");
        assert_string_equal(field(o, "level"), "error");
        cJSON_Delete(o);
}

static int evaluated;
static int count_evaluation(void)
{
        return ++evaluated;
}

static void level_filters_before_evaluating(void **state)
{
        struct capture *c = *state;
        osy_log_init("test", OSY_LOG_WARN, c->f);
        evaluated = 0;
        osy_log_info("dropped %d", count_evaluation());
        osy_log_debug("dropped %d", count_evaluation());
        assert_int_equal(evaluated, 0);
        osy_log_error("kept %d", count_evaluation());
        assert_int_equal(evaluated, 1);
        cJSON *o = line_json(c, 0);
        assert_string_equal(field(o, "msg"), "kept 1");
        assert_null(line_json(c, 1));
        cJSON_Delete(o);
}

static void secrets_are_masked_everywhere(void **state)
{
        struct capture *c      = *state;
        const char *const kv[] = {"header", "Api-Token: s3cr3t-t0ken", NULL};
        osy_log_add_secret("s3cr3t-t0ken");
        osy_log_kv(OSY_LOG_INFO, kv,
                   "token is s3cr3t-t0ken, twice s3cr3t-t0ken");
        fflush(c->f);
        assert_null(strstr(c->buf, "s3cr3t-t0ken"));
        cJSON *o = line_json(c, 0);
        assert_string_equal(field(o, "msg"), "token is ***, twice ***");
        assert_string_equal(field(o, "header"), "Api-Token: ***");
        cJSON_Delete(o);
}

static void short_secrets_are_ignored(void **state)
{
        struct capture *c = *state;
        osy_log_add_secret("ab"); /* would mask ordinary words */
        osy_log_info("about abc");
        cJSON *o = line_json(c, 0);
        assert_string_equal(field(o, "msg"), "about abc");
        cJSON_Delete(o);
}

static void level_names_parse(void **state)
{
        (void)state;
        assert_int_equal(osy_log_level_parse("debug"), OSY_LOG_DEBUG);
        assert_int_equal(osy_log_level_parse("error"), OSY_LOG_ERROR);
        assert_int_equal(osy_log_level_parse("off"), OSY_LOG_OFF);
        assert_int_equal(osy_log_level_parse("verbose"), -1);
        assert_int_equal(osy_log_level_parse(NULL), -1);
}

static void long_message_is_truncated_not_broken(void **state)
{
        struct capture *c = *state;
        char *big         = malloc(20000);
        memset(big, 'x', 19999);
        big[19999] = '\0';
        osy_log_info("%s", big);
        cJSON *o = line_json(c, 0);
        assert_non_null(o); /* truncated, still valid JSON */
        assert_true(strlen(field(o, "msg")) > 1000);
        cJSON_Delete(o);
        free(big);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(line_is_json_with_fields, cap_setup,
                                    cap_teardown),
    cmocka_unit_test_setup_teardown(special_characters_are_escaped, cap_setup,
                                    cap_teardown),
    cmocka_unit_test_setup_teardown(key_values_are_fields, cap_setup,
                                    cap_teardown),
    cmocka_unit_test_setup_teardown(level_filters_before_evaluating, cap_setup,
                                    cap_teardown),
    cmocka_unit_test_setup_teardown(secrets_are_masked_everywhere, cap_setup,
                                    cap_teardown),
    cmocka_unit_test_setup_teardown(short_secrets_are_ignored, cap_setup,
                                    cap_teardown),
    cmocka_unit_test(level_names_parse),
    cmocka_unit_test_setup_teardown(long_message_is_truncated_not_broken,
                                    cap_setup, cap_teardown),
};
OSY_TEST_MAIN(tests, NULL, NULL)
