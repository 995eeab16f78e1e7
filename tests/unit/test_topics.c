/*
 * test_topics.c - the contract's topic names: default and custom prefixes,
 * refused prefixes, and buffers too small for a name.
 */
#include "osy_test.h"
#include "optsync/topics.h"

#include <string.h>

static void default_prefix_names_every_topic(void **state)
{
        static const char *const want[OSY_TOPIC__CNT] = {
            "optsync.ac.events",   "optsync.sf.events", "optsync.sf.commands",
            "optsync.ac.commands", "optsync.audit",     "optsync.dlq"};
        char buf[OSY_TOPIC_NAME_SIZE], errstr[OSY_ERRSTR_SIZE];
        (void)state;

        for (int t = 0; t < OSY_TOPIC__CNT; t++) {
                assert_int_equal(osy_topic_name((osy_topic_t)t, "optsync", buf,
                                                sizeof(buf), errstr,
                                                sizeof(errstr)),
                                 OSY_OK);
                assert_string_equal(buf, want[t]);
        }
}

static void null_prefix_means_default(void **state)
{
        char buf[OSY_TOPIC_NAME_SIZE];
        (void)state;

        assert_int_equal(
            osy_topic_name(OSY_TOPIC_DLQ, NULL, buf, sizeof(buf), NULL, 0),
            OSY_OK);
        assert_string_equal(buf, OSY_TOPIC_DEFAULT_PREFIX ".dlq");
}

static void custom_prefix_is_used(void **state)
{
        struct osy_topic_names names;
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(osy_topic_names_init(&names, "acme-prod_2.x", errstr,
                                              sizeof(errstr)),
                         OSY_OK);
        assert_string_equal(names.name[OSY_TOPIC_AC_EVENTS],
                            "acme-prod_2.x.ac.events");
        assert_string_equal(names.name[OSY_TOPIC_SF_COMMANDS],
                            "acme-prod_2.x.sf.commands");
        assert_string_equal(names.name[OSY_TOPIC_AUDIT], "acme-prod_2.x.audit");
}

static void names_list_is_complete_and_distinct(void **state)
{
        struct osy_topic_names names;
        (void)state;

        assert_int_equal(OSY_TOPIC__CNT, 6);
        assert_int_equal(osy_topic_names_init(&names, NULL, NULL, 0), OSY_OK);
        for (int i = 0; i < OSY_TOPIC__CNT; i++) {
                assert_true(strlen(names.name[i]) > strlen("optsync."));
                for (int j = i + 1; j < OSY_TOPIC__CNT; j++)
                        assert_string_not_equal(names.name[i], names.name[j]);
        }
}

static void bad_prefixes_are_refused(void **state)
{
        static const char *const bad[] = {"",      "a b",    "a/b", "ümlaut",
                                          ".lead", "trail.", "x\ny"};
        struct osy_topic_names names;
        char errstr[OSY_ERRSTR_SIZE];
        (void)state;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                errstr[0] = '\0';
                assert_int_equal(osy_topic_names_init(&names, bad[i], errstr,
                                                      sizeof(errstr)),
                                 OSY_ERR_INVALID);
                assert_non_null(strstr(errstr, "prefix"));
                /* Nothing half-filled is handed out. */
                assert_string_equal(names.name[0], "");
        }
}

static void overlong_prefix_is_refused(void **state)
{
        char prefix[300], buf[OSY_TOPIC_NAME_SIZE], errstr[OSY_ERRSTR_SIZE];
        (void)state;

        memset(prefix, 'p', sizeof(prefix) - 1);
        prefix[sizeof(prefix) - 1] = '\0';
        assert_int_equal(osy_topic_name(OSY_TOPIC_AUDIT, prefix, buf,
                                        sizeof(buf), errstr, sizeof(errstr)),
                         OSY_ERR_INVALID);
        assert_non_null(strstr(errstr, "max"));
        /* The longest allowed prefix still fits the longest suffix. */
        prefix[200] = '\0';
        assert_int_equal(osy_topic_name(OSY_TOPIC_SF_COMMANDS, prefix, buf,
                                        sizeof(buf), errstr, sizeof(errstr)),
                         OSY_OK);
        assert_int_equal(strlen(buf), 200 + strlen(".sf.commands"));
}

static void small_buffer_is_too_large(void **state)
{
        char buf[10], errstr[OSY_ERRSTR_SIZE];
        (void)state;

        assert_int_equal(osy_topic_name(OSY_TOPIC_AC_EVENTS, "optsync", buf,
                                        sizeof(buf), errstr, sizeof(errstr)),
                         OSY_ERR_TOO_LARGE);
        assert_string_equal(buf, ""); /* never a truncated name */
        /* Exactly enough room (name + NUL) is fine. */
        char exact[sizeof("optsync.dlq")];
        assert_int_equal(osy_topic_name(OSY_TOPIC_DLQ, "optsync", exact,
                                        sizeof(exact), NULL, 0),
                         OSY_OK);
        assert_string_equal(exact, "optsync.dlq");
}

static void unknown_topic_is_invalid(void **state)
{
        char buf[OSY_TOPIC_NAME_SIZE];
        (void)state;

        assert_null(osy_topic_suffix(OSY_TOPIC__CNT));
        assert_null(osy_topic_suffix((osy_topic_t)-1));
        assert_string_equal(osy_topic_suffix(OSY_TOPIC_SF_EVENTS), "sf.events");
        assert_int_equal(osy_topic_name(OSY_TOPIC__CNT, "optsync", buf,
                                        sizeof(buf), NULL, 0),
                         OSY_ERR_INVALID);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(default_prefix_names_every_topic),
    cmocka_unit_test(null_prefix_means_default),
    cmocka_unit_test(custom_prefix_is_used),
    cmocka_unit_test(names_list_is_complete_and_distinct),
    cmocka_unit_test(bad_prefixes_are_refused),
    cmocka_unit_test(overlong_prefix_is_refused),
    cmocka_unit_test(small_buffer_is_too_large),
    cmocka_unit_test(unknown_topic_is_invalid),
};

OSY_TEST_MAIN(tests, NULL, NULL)
