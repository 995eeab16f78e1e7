/*
 * writers-bench-gen - the helper of bench/writers.sh: writes the sandbox
 * fixture, produces sf.command / ac.command messages, seeds the rules'
 * person state in Redis, and reads call counts and the AC rate use back
 * from the sandbox's request log.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "optsync/envelope.h"
#include "optsync/http.h"
#include "optsync/kafka.h"
#include "optsync/log.h"
#include "optsync/redis.h"
#include "rules_state.h"

#define TENANT "t1"

static int usage(void)
{
        fprintf(stderr,
                "usage: writers-bench-gen fixture PERSONS LEAD_EVERY LISTS\n"
                "       writers-bench-gen produce BOOTSTRAP sf|ac FROM COUNT "
                "VERSION VALUE [hint]\n"
                "       writers-bench-gen seed-rules REDIS_PORT PREFIX FROM "
                "COUNT LISTS\n"
                "       writers-bench-gen calls SANDBOX_URL SINCE_SEQ "
                "PATTERN...\n"
                "       writers-bench-gen rate-use SANDBOX_URL SINCE_SEQ "
                "WINDOW_MS RATE\n"
                "       writers-bench-gen last-seq SANDBOX_URL\n");
        return 2;
}

/* A non-negative decimal argument, or exit 2. */
static long num(const char *s)
{
        char *end;
        long v = strtol(s, &end, 10);
        if (*end || v < 0) {
                fprintf(stderr, "writers-bench-gen: bad number '%s'\n", s);
                exit(2);
        }
        return v;
}

/* The address of person @p i, as the fixture names it. */
static void email_of(long i, char *buf, size_t size)
{
        snprintf(buf, size, "person.%04ld@example.com", i);
}

/* Persons 0..n-1: an SF Contact each and a Lead for every k-th; an AC
 * contact (id i+1) active on @p lists lists. */
static int fixture(long n, long k, long lists)
{
        char email[64];
        printf("{\"tenants\":{\"" TENANT "\":{\"sf\":{\"contacts\":[");
        for (long i = 0; i < n; i++) {
                email_of(i, email, sizeof(email));
                printf("%s{\"Email\":\"%s\",\"LastName\":\"P%ld\"}",
                       i ? "," : "", email, i);
        }
        printf("],\"leads\":[");
        for (long i = 0, first = 1; k > 0 && i < n; i += k, first = 0) {
                email_of(i, email, sizeof(email));
                printf("%s{\"Email\":\"%s\",\"LastName\":\"L%ld\","
                       "\"Company\":\"Co\"}",
                       first ? "" : ",", email, i);
        }
        printf("]},\"ac\":{\"rate_per_s\":5,\"lists\":[");
        for (long l = 1; l <= lists; l++)
                printf("%s{\"id\":\"%ld\",\"name\":\"L%ld\"}", l > 1 ? "," : "",
                       l, l);
        printf("],\"contacts\":[");
        for (long i = 0; i < n; i++) {
                email_of(i, email, sizeof(email));
                printf("%s{\"id\":\"%ld\",\"email\":\"%s\",\"lists\":{",
                       i ? "," : "", i + 1, email);
                for (long l = 1; l <= lists; l++)
                        printf("%s\"%ld\":1", l > 1 ? "," : "", l);
                printf("}}");
        }
        printf("]}}}}\n");
        return 0;
}

/* Produces COUNT commands for persons FROM.., keyed by person, waiting
 * for every delivery report. */
static int produce(const char *bootstrap, const char *type, long from,
                   long count, long version, long value, int hint)
{
        struct osy_kafka_opts ko      = {0};
        static const char *const ex[] = {"message.timeout.ms", "30000",
                                         "linger.ms", "20", NULL};
        osy_kafka_producer_t *p       = NULL;
        char e[OSY_ERRSTR_SIZE];
        int sf = !strcmp(type, "sf");

        ko.bootstrap = bootstrap;
        ko.extra     = ex;
        if (osy_kafka_producer_new(&p, &ko, e, sizeof(e))) {
                fprintf(stderr, "produce: %s\n", e);
                return 1;
        }
        for (long i = from; i < from + count; i++) {
                struct osy_msg m;
                char email[64], key[OSY_PARTITION_KEY_BUFSZ], tie[40], cid[24];
                char *json = NULL;
                size_t len;
                osy_err_t err;

                email_of(i, email, sizeof(email));
                osy_msg_init(&m, sf ? OSY_MSG_SF_COMMAND : OSY_MSG_AC_COMMAND);
                snprintf(tie, sizeof(tie), "%016lx%016lx",
                         (unsigned long)version, (unsigned long)i);
                snprintf(cid, sizeof(cid), "%ld", i + 1);
                err = osy_msg_set_envelope(&m, TENANT, email, OSY_SRC_RULES,
                                           version, e, sizeof(e));
                if (sf) {
                        m.sf_command.has_opted_out_of_email = value != 0;
                        m.sf_command.rule = value ? OSY_RULE_R2 : OSY_RULE_R1;
                        memcpy(m.sf_command.cause_event_id, tie, OSY_ID_BUFSZ);
                        m.sf_command.version.ms = version;
                        if (!err)
                                err = osy_msg_strset(&m.sf_command.version.tie,
                                                     tie);
                } else {
                        m.ac_command.action = OSY_AC_UNSUBSCRIBE_ALL_LISTS;
                        m.ac_command.rule   = OSY_RULE_R4;
                        memcpy(m.ac_command.cause_event_id, tie, OSY_ID_BUFSZ);
                        m.ac_command.version.ms = version;
                        if (!err)
                                err = osy_msg_strset(&m.ac_command.version.tie,
                                                     tie);
                        if (!err && hint)
                                err = osy_msg_strset(&m.ac_command.contact_id,
                                                     cid);
                }
                if (!err)
                        err = osy_msg_encode(&m, &json, &len, e, sizeof(e));
                if (!err)
                        err =
                            osy_partition_key(TENANT, email, key, sizeof(key));
                while (!err) {
                        err = osy_kafka_produce(p,
                                                sf ? "optsync.sf.commands"
                                                   : "optsync.ac.commands",
                                                key, strlen(key), json, len,
                                                NULL, NULL, e, sizeof(e));
                        if (err != OSY_ERR_TRANSIENT)
                                break;
                        osy_kafka_producer_poll(p, 100); /* queue full */
                        err = OSY_OK;
                        continue;
                }
                free(json);
                osy_msg_clear(&m);
                if (err) {
                        fprintf(stderr, "produce: %s\n", e);
                        osy_kafka_producer_destroy(p);
                        return 1;
                }
                osy_kafka_producer_poll(p, 0);
        }
        if (osy_kafka_producer_flush(p, 60000, e, sizeof(e))) {
                fprintf(stderr, "produce: flush: %s\n", e);
                osy_kafka_producer_destroy(p);
                return 1;
        }
        osy_kafka_producer_destroy(p);
        return 0;
}

/* The rules' cached person state: contact id and active lists known. */
static int seed_rules(long port, const char *prefix, long from, long count,
                      long lists)
{
        struct osy_redis_opts ro = {.host = "127.0.0.1", .port = (int)port};
        osy_redis_t *r           = NULL;
        char e[OSY_ERRSTR_SIZE];

        if (osy_redis_connect(&r, &ro, e, sizeof(e))) {
                fprintf(stderr, "seed-rules: %s\n", e);
                return 1;
        }
        for (long i = from; i < from + count; i++) {
                struct osy_rules_person p;
                char email[64], key[OSY_RULES_KEY_BUFSZ], l[24], *val = NULL;
                size_t len;
                redisReply *rep = NULL;
                osy_err_t err   = OSY_OK;

                memset(&p, 0, sizeof(p));
                email_of(i, email, sizeof(email));
                snprintf(p.contact_id, sizeof(p.contact_id), "%ld", i + 1);
                p.lists_known = 1;
                for (long k = 1; !err && k <= lists; k++) {
                        snprintf(l, sizeof(l), "%ld", k);
                        err = osy_rules_lists_add(&p, l);
                }
                if (!err)
                        err = osy_rules_person_encode(&p, &val, &len);
                if (!err)
                        err = osy_rules_state_key(key, sizeof(key), prefix,
                                                  TENANT, email);
                const char *set[] = {"SET", key, val};
                if (!err)
                        err = osy_redis_command_argv(r, 3, set, NULL, &rep, e,
                                                     sizeof(e));
                if (rep)
                        freeReplyObject(rep);
                free(val);
                osy_rules_person_clear(&p);
                if (err) {
                        fprintf(stderr, "seed-rules: %s\n", osy_err2str(err));
                        osy_redis_destroy(r);
                        return 1;
                }
        }
        osy_redis_destroy(r);
        return 0;
}

/* The request log after @p since (one page is enough: --log-size). */
static cJSON *requests(const char *url, long since)
{
        osy_http_client_t *c = NULL;
        struct osy_http_response resp;
        char u[512], e[OSY_ERRSTR_SIZE];
        struct osy_http_opts o = {.max_body = (size_t)256 << 20};
        cJSON *j               = NULL;

        snprintf(u, sizeof(u),
                 "%s/sandbox/requests?since_seq=%ld&limit=1000000", url, since);
        struct osy_http_request req = {.method = OSY_HTTP_GET, .url = u};
        if (osy_http_client_new(&c, &o, e, sizeof(e)) ||
            osy_http_do(c, &req, &resp, e, sizeof(e))) {
                fprintf(stderr, "requests: %s\n", e);
                osy_http_client_destroy(c);
                return NULL;
        }
        j = cJSON_Parse(resp.body);
        osy_http_response_free(&resp);
        osy_http_client_destroy(c);
        return j;
}

/* "ac.*" matches by prefix, anything else exactly. */
static int match(const char *ep, char **pats, int npats)
{
        for (int i = 0; i < npats; i++) {
                size_t n = strlen(pats[i]);
                if (n && pats[i][n - 1] == '*' ? !strncmp(ep, pats[i], n - 1)
                                               : !strcmp(ep, pats[i]))
                        return 1;
        }
        return 0;
}

/* Prints the number of logged requests after @p since whose endpoint
 * class matches one of the patterns ("sf.query", "ac.*"). */
static int calls(const char *url, long since, char **pats, int npats)
{
        cJSON *j = requests(url, since);
        const cJSON *r;
        long n = 0;

        if (!j)
                return 1;
        cJSON_ArrayForEach(r, cJSON_GetObjectItem(j, "requests"))
        {
                const cJSON *ep = cJSON_GetObjectItem(r, "endpoint");
                if (cJSON_IsString(ep) && match(ep->valuestring, pats, npats))
                        n++;
        }
        cJSON_Delete(j);
        printf("%ld\n", n);
        return 0;
}

/* AC calls answered in the window starting at the first one, over what
 * the rate allows in it, and the 429/503 count: "granted use z429". */
static int rate_use(const char *url, long since, long window_ms, long rate)
{
        cJSON *j = requests(url, since);
        const cJSON *r;
        double t0 = -1;
        long n = 0, throttled = 0;

        if (!j)
                return 1;
        cJSON_ArrayForEach(r, cJSON_GetObjectItem(j, "requests"))
        {
                const cJSON *ep = cJSON_GetObjectItem(r, "endpoint");
                const cJSON *t  = cJSON_GetObjectItem(r, "time_ms");
                const cJSON *st = cJSON_GetObjectItem(r, "status");
                if (!cJSON_IsString(ep) || strncmp(ep->valuestring, "ac.", 3))
                        continue;
                if (st->valueint == 429 || st->valueint == 503)
                        throttled++;
                if (t0 < 0)
                        t0 = t->valuedouble;
                if (t->valuedouble < t0 + (double)window_ms &&
                    st->valueint != 429 && st->valueint != 503)
                        n++;
        }
        cJSON_Delete(j);
        printf("%ld %.3f %ld\n", n,
               (double)n / ((double)rate * (double)window_ms / 1000.0),
               throttled);
        return 0;
}

/* The newest request sequence number, to count only what comes after. */
static int last_seq(const char *url)
{
        cJSON *j = requests(url, 0);
        const cJSON *s;
        if (!j)
                return 1;
        s = cJSON_GetObjectItem(j, "last_seq");
        printf("%.0f\n", cJSON_IsNumber(s) ? s->valuedouble : 0.0);
        cJSON_Delete(j);
        return 0;
}

int main(int argc, char **argv)
{
        osy_log_init("writers-bench-gen", OSY_LOG_WARN, NULL);
        if (argc < 2)
                return usage();
        if (!strcmp(argv[1], "fixture") && argc == 5)
                return fixture(num(argv[2]), num(argv[3]), num(argv[4]));
        if (!strcmp(argv[1], "produce") && (argc == 8 || argc == 9))
                return produce(argv[2], argv[3], num(argv[4]), num(argv[5]),
                               num(argv[6]), num(argv[7]), argc == 9);
        if (!strcmp(argv[1], "seed-rules") && argc == 7)
                return seed_rules(num(argv[2]), argv[3], num(argv[4]),
                                  num(argv[5]), num(argv[6]));
        if (!strcmp(argv[1], "calls") && argc >= 5)
                return calls(argv[2], num(argv[3]), argv + 4, argc - 4);
        if (!strcmp(argv[1], "rate-use") && argc == 6)
                return rate_use(argv[2], num(argv[3]), num(argv[4]),
                                num(argv[5]));
        if (!strcmp(argv[1], "last-seq") && argc == 3)
                return last_seq(argv[2]);
        return usage();
}
