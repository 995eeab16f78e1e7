/*
 * acwh_samples.h - AC webhook bodies in the real wire format (PHP
 * http_build_query: form-urlencoded, brackets as %5B %5D), built from the
 * fields listed in /work/shared/reference/activecampaign.md section 7.
 * Macros, so each test file uses only what it needs.
 */
#ifndef OSY_TEST_ACWH_SAMPLES_H
#define OSY_TEST_ACWH_SAMPLES_H

/* A public unsubscribe (unsubscribe link): list[][id] form [S25], a
 * campaign and a reason, the contact block with keyed custom fields. */
#define ACWH_UNSUB_PUBLIC                                                      \
        "type=unsubscribe&date_time=2024-02-28T07%3A04%3A13-06%3A00"           \
        "&initiated_from=public&initiated_by=public&list=0"                    \
        "&list%5B0%5D%5Bid%5D=2"                                               \
        "&contact%5Bid%5D=18723&contact%5Bemail%5D=Jane.Doe%40Example.com"     \
        "&contact%5Bfirst_name%5D=Jane&contact%5Blast_name%5D=Doe"             \
        "&contact%5Bphone%5D=&contact%5Bip%5D=127.0.0.1"                       \
        "&contact%5Btags%5D=added-to-salesforce-contact%2C+newsletter"         \
        "&contact%5Borgname%5D=&contact%5Bcustomer_acct_name%5D="              \
        "&contact%5Bfields%5D%5Bcontact_owner%5D=3"                            \
        "&campaign%5Bid%5D=41&unsubscribe%5Breason%5D=Too+many+emails"         \
        "&orgname=&customer_acct_name=&customer_acct_id=0"

/* An admin unsubscribe: the list id in "list" [S25]. */
#define ACWH_UNSUB_ADMIN                                                       \
        "type=unsubscribe&date_time=2024-02-28T07%3A10%3A00-06%3A00"           \
        "&initiated_from=admin&initiated_by=admin&list=4"                      \
        "&contact%5Bid%5D=18723&contact%5Bemail%5D=jane.doe%40example.com"     \
        "&contact%5Btags%5D=added-to-salesforce-contact"

/* A subscribe through a form; "list" is often 0 in the docs [S25][S13]. */
#define ACWH_SUBSCRIBE                                                         \
        "type=subscribe&date_time=2024-02-28T07%3A04%3A13-06%3A00"             \
        "&initiated_from=public&initiated_by=public&list=0&form%5Bid%5D=5"     \
        "&contact%5Bid%5D=18723&contact%5Bemail%5D=jane.doe%40example.com"     \
        "&contact%5Bfirst_name%5D=Jane&contact%5Btags%5D="

/* update: positional custom fields [S12], tags as one string [S11]. */
#define ACWH_UPDATE                                                            \
        "type=update&date_time=2024-02-28T07%3A04%3A13-06%3A00"                \
        "&initiated_from=admin&initiated_by=admin&list=0"                      \
        "&contact%5Bid%5D=18723&contact%5Bemail%5D=jane.doe%40example.com"     \
        "&contact%5Btags%5D=tag1%2C+tag2"                                      \
        "&contact%5Bfields%5D%5B0%5D=Blue&contact%5Bfields%5D%5B1%5D=42"       \
        "&customer_acct_name=Acme&customer_acct_id=7&orgname=Acme"

/* contact_tag_added: the tag name at top level, list 0 [S11]. */
#define ACWH_TAG_ADDED                                                         \
        "type=contact_tag_added&date_time=2024-02-28T07%3A04%3A13-06%3A00"     \
        "&initiated_from=admin&initiated_by=admin&list=0&tag=tag2"             \
        "&contact%5Bid%5D=18723&contact%5Bemail%5D=jane.doe%40example.com"     \
        "&contact%5Btags%5D=tag1%2C+tag2"

#define ACWH_TAG_REMOVED                                                       \
        "type=contact_tag_removed&date_time=2024-02-28T07%3A05%3A00-06%3A00"   \
        "&initiated_from=api&initiated_by=api&list=0&tag=tag2"                 \
        "&contact%5Bid%5D=18723&contact%5Bemail%5D=jane.doe%40example.com"     \
        "&contact%5Btags%5D=tag1"

/* A bounce without any bounce[...] block: type unknown [S13]. */
#define ACWH_BOUNCE                                                            \
        "type=bounce&date_time=2024-02-28T07%3A04%3A13-06%3A00"                \
        "&initiated_from=system&initiated_by=system&list=0"                    \
        "&campaign%5Bid%5D=12"                                                 \
        "&contact%5Bid%5D=18723&contact%5Bemail%5D=jane.doe%40example.com"

/* A bounce with the (unconfirmed) bounce block saying hard. */
#define ACWH_BOUNCE_HARD                                                       \
        ACWH_BOUNCE "&bounce%5Btype%5D=hard&bounce%5Bcode%5D=5.1.1"            \
                    "&bounce%5Bdescription%5D=Mailbox+unavailable"

/* An event type optsync does not use. */
#define ACWH_OPEN                                                              \
        "type=open&date_time=2024-02-28T07%3A04%3A13-06%3A00"                  \
        "&initiated_from=public&initiated_by=public&list=0"                    \
        "&campaign%5Bid%5D=12&contact%5Bid%5D=18723"                           \
        "&contact%5Bemail%5D=jane.doe%40example.com"

/* The already-parsed JSON view third-party docs show [S11][S12]. */
#define ACWH_UNSUB_JSON                                                        \
        "{\"type\":\"unsubscribe\",\"date_time\":\"2024-02-28T07:04:13-06:"    \
        "00\","                                                                \
        "\"initiated_from\":\"public\",\"initiated_by\":\"public\","           \
        "\"list\":\"0\",\"list[0][id]\":\"2\","                                \
        "\"contact\":{\"id\":\"18723\",\"email\":\"Jane.Doe@Example.com\","    \
        "\"first_name\":\"Jane\",\"tags\":\"added-to-salesforce-contact, "     \
        "newsletter\",\"fields\":[\"Blue\",\"42\"]},"                          \
        "\"campaign\":{\"id\":41},\"unsubscribe\":{\"reason\":\"Too many "     \
        "emails\"}}"

#endif /* OSY_TEST_ACWH_SAMPLES_H */
