/*
 * world.c - the seeded population of an end-to-end run, its sandbox
 * fixture, the sandbox controls a scenario plays, and the rules oracle.
 */
#include "world.h"

#include "optsync/http.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- names, lists, tags ------------------------------------------------ */

static const char *const first_names[] = {
    "Ann",   "Ben",   "Carla",  "David", "Eva",   "Farid", "Grace",  "Hugo",
    "Ines",  "Jonas", "Kira",   "Liam",  "Maya",  "Noah",  "Olga",   "Pedro",
    "Quinn", "Rosa",  "Sami",   "Tara",  "Umar",  "Vera",  "Will",   "Xenia",
    "Yusuf", "Zoe",   "Amir",   "Bella", "Chen",  "Dana",  "Emil",   "Fiona",
    "Gita",  "Hanna", "Ivan",   "Julia", "Kofi",  "Lena",  "Marco",  "Nadia",
    "Oscar", "Priya", "Rafael", "Sofia", "Tomas", "Ulla",  "Viktor", "Wanda"};
static const char *const last_names[] = {
    "Lee",     "Garcia",  "Smith",  "Novak",  "Okafor", "Rossi",  "Meyer",
    "Kumar",   "Silva",   "Jensen", "Dubois", "Tanaka", "Haddad", "Moreau",
    "Kowal",   "Brown",   "Nguyen", "Weber",  "Costa",  "Ahmed",  "Larsen",
    "Fischer", "Ivanova", "Lopez",  "Murphy", "Sato",   "Berg",   "Khan",
    "Olsen",   "Park",    "Quist",  "Reyes",  "Stone",  "Torres", "Varga",
    "Walsh",   "Young",   "Zhang",  "Adams",  "Bauer",  "Clark",  "Diaz",
    "Evans",   "Ford",    "Gomez",  "Hill",   "Ito",    "Jones"};
static const char *const companies[] = {
    "Acme Corp", "Globex",        "Initech",   "Umbrella Labs",
    "Hooli",     "Vandelay Inc.", "Stark Ltd", "Wayne Foods",
    "Soylent",   "Tyrell GmbH"};

static const char *const list_names[E2E_LISTS] = {"Newsletter", "Product news",
                                                  "Events"};
static const char *const list_stringids[E2E_LISTS] = {"newsletter",
                                                      "product-news", "events"};

/* The five tags that make a contact "qualified" (optout-rules.txt). */
static const char *const qual_tags[] = {
    "added-to-salesforce-lead", "created-from-salesforce-lead",
    "added-to-salesforce-contact", "created-from-salesforce-contact",
    "salesforce-lead-converted-to-contact"};
#define N_QUAL_TAGS (sizeof(qual_tags) / sizeof(*qual_tags))
/* Everyday tags that qualify nobody. */
static const char *const other_tags[] = {
    "vip", "webinar", "customer", "trial", "partner", "newsletter-signup"};
#define N_OTHER_TAGS (sizeof(other_tags) / sizeof(*other_tags))

/* Campaign numbers the bounce controls name. Soft bounces always come
 * from the same campaign so the sandbox never escalates them (it needs
 * three different campaigns in a row). */
#define E2E_SOFT_CAMPAIGN 7001
#define E2E_HARD_CAMPAIGN 7002

#define ARRAY_LEN(a) (sizeof(a) / sizeof(*(a)))

/* ---- random numbers ------------------------------------------------------ */

static uint64_t xs64(uint64_t *s)
{
        uint64_t x = *s;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return *s = x;
}

/* A uniform-enough draw in [0, n): n is small, the modulo bias is nil. */
static size_t rnd(uint64_t *s, size_t n)
{
        return n ? (size_t)(xs64(s) % n) : 0;
}

/* splitmix64 of the seed, so nearby seeds give unrelated streams and
 * seed 0 still yields a valid (non-zero) xorshift state. */
static uint64_t seed_state(uint64_t seed)
{
        uint64_t z = seed + 0x9E3779B97F4A7C15ULL;

        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        return z ? z : 0x2545F4914F6CDD1DULL;
}

/* FNV-1a over the lower-cased bytes: stable per-person variety for the
 * fixture (tags) and the index below. */
static uint64_t hash_ci(const char *s)
{
        uint64_t h = 0xcbf29ce484222325ULL;

        for (; *s; s++) {
                h ^= (unsigned char)tolower((unsigned char)*s);
                h *= 0x100000001b3ULL;
        }
        return h;
}

/* ---- Salesforce ids ------------------------------------------------------ */

/* The 3-char suffix that makes an id case-insensitively unique: one char
 * per 5-char chunk encoding which of its characters are upper case (the
 * sandbox refuses 18-char ids with a wrong one, as Salesforce does). */
static void sf_id(const char *prefix, uint64_t n, char out[19])
{
        static const char map[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

        snprintf(out, 19, "%.3sSB%010llu", prefix,
                 (unsigned long long)(n % 10000000000ULL));
        for (int c = 0; c < 3; c++) {
                int flags = 0;

                for (int i = 0; i < 5; i++)
                        if (isupper((unsigned char)out[c * 5 + i]))
                                flags |= 1 << i;
                out[15 + c] = map[flags];
        }
        out[18] = '\0';
}

/* ---- small helpers ------------------------------------------------------- */

static void set_err(char *err, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t size, const char *fmt, ...)
{
        va_list ap;

        if (!err || !size)
                return;
        va_start(ap, fmt);
        vsnprintf(err, size, fmt, ap);
        va_end(ap);
}

/* Bounded append to a report buffer; never overflows, silently cuts. */
static void append(char *buf, size_t size, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void append(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
        va_list ap;
        int n;

        if (!buf || !size || *len >= size - 1)
                return;
        va_start(ap, fmt);
        n = vsnprintf(buf + *len, size - *len, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        *len += (size_t)n;
        if (*len > size - 1)
                *len = size - 1;
}

int e2e_person_active_lists(const struct e2e_person *p)
{
        int n = 0;

        for (int l = 0; l < E2E_LISTS; l++)
                n += p->list_status[l] == E2E_ACTIVE;
        return n;
}

static const char *status_name(int st)
{
        switch (st) {
        case E2E_NOT_MEMBER:
                return "not a member";
        case E2E_UNCONFIRMED:
                return "unconfirmed";
        case E2E_ACTIVE:
                return "active";
        case E2E_UNSUBSCRIBED:
                return "unsubscribed";
        case E2E_BOUNCED:
                return "bounced";
        default:
                return "?";
        }
}

static const char *sf_type_name(enum e2e_sf_type t)
{
        return t == E2E_SF_CONTACT ? "Contact" : "Lead";
}

/* ---- the population ------------------------------------------------------ */

/* SF make-up of a person; the first six have an AC contact. */
enum kind {
        K_CONTACT,       /* one SF Contact */
        K_LEAD,          /* one SF Lead */
        K_DUP,           /* a Contact and an open Lead, same email */
        K_CONVERTED,     /* a Contact and the Lead converted into it */
        K_CONVERTED_DUP, /* both, plus a newer open Lead */
        K_AC_ONLY,       /* no SF record */
        K_SF_ONLY_CONTACT,
        K_SF_ONLY_LEAD,
        K_KINDS
};

/* AC list state of a person with an AC contact. */
enum lstate {
        L_NORMAL,
        L_ZERO,
        L_BOUNCED,
        L_STATES
};

/* Per-mille shares with a floor, so that even n = 40 has every kind. */
struct quota {
        int value;
        size_t per_mille, min;
};

static const struct quota kind_quotas[] = {
    {K_LEAD, 120, 2},         {K_DUP, 100, 2},    {K_CONVERTED, 30, 1},
    {K_CONVERTED_DUP, 10, 1}, {K_AC_ONLY, 60, 2}, {K_SF_ONLY_CONTACT, 30, 1},
    {K_SF_ONLY_LEAD, 20, 1}};
static const struct quota lstate_quotas[]      = {{L_ZERO, 120, 2},
                                                  {L_BOUNCED, 20, 1}};
static const struct quota unqualified_quotas[] = {{1, 200, 2}};

/* @p n values: exactly the quota of each listed value (the rest 0),
 * shuffled with @p rng. Caller frees. */
static int *deck(size_t n, const struct quota *q, size_t nq, uint64_t *rng)
{
        int *d   = calloc(n ? n : 1, sizeof(*d));
        size_t k = 0;

        if (!d)
                return NULL;
        for (size_t i = 0; i < nq; i++) {
                size_t c = n * q[i].per_mille / 1000;

                if (c < q[i].min)
                        c = q[i].min;
                for (size_t j = 0; j < c && k < n; j++)
                        d[k++] = q[i].value;
        }
        for (size_t i = n; i > 1; i--) {
                size_t j = rnd(rng, i);
                int t    = d[i - 1];

                d[i - 1] = d[j];
                d[j]     = t;
        }
        return d;
}

static void lower_copy(char *dst, size_t size, const char *src)
{
        size_t i = 0;

        for (; src[i] && i + 1 < size; i++)
                dst[i] = (char)tolower((unsigned char)src[i]);
        dst[i] = '\0';
}

/* The AC memberships of one person with an AC contact. */
static void fill_lists(struct e2e_person *p, enum lstate ls, uint64_t *rng)
{
        int order[E2E_LISTS];
        size_t k = 1 + rnd(rng, E2E_LISTS);

        for (int l = 0; l < E2E_LISTS; l++) {
                order[l]          = l;
                p->list_status[l] = E2E_NOT_MEMBER;
        }
        for (size_t i = E2E_LISTS; i > 1; i--) {
                size_t j     = rnd(rng, i);
                int t        = order[i - 1];
                order[i - 1] = order[j];
                order[j]     = t;
        }
        for (size_t i = 0; i < k; i++) {
                int *st  = &p->list_status[order[i]];
                size_t r = rnd(rng, 10);

                switch (ls) {
                case L_NORMAL:
                        /* the first list is active: >= 1 active list */
                        *st = i == 0 || r < 6 ? E2E_ACTIVE
                              : r < 9         ? E2E_UNSUBSCRIBED
                                              : E2E_UNCONFIRMED;
                        break;
                case L_ZERO:
                        *st = i > 0 && r == 0 ? E2E_UNCONFIRMED
                                              : E2E_UNSUBSCRIBED;
                        break;
                default:
                        /* a hard bounce turned what could mail into 3 */
                        *st = i == 0 || r < 7 ? E2E_BOUNCED : E2E_UNSUBSCRIBED;
                        break;
                }
        }
        p->bounced_hard = ls == L_BOUNCED;
}

static void add_sf(struct e2e_person *p, enum e2e_sf_type type, int converted,
                   int opted_out, uint64_t *seq)
{
        struct e2e_sf_record *r = &p->sf[p->n_sf++];

        r->type      = type;
        r->converted = converted;
        r->opted_out = opted_out;
        sf_id(type == E2E_SF_CONTACT ? "003" : "00Q", ++*seq, r->id);
}

int e2e_world_generate(struct e2e_world *w, const char *tenant, size_t n,
                       uint64_t seed)
{
        uint64_t rng = seed_state(seed), sf_seq = 0;
        int *kinds = NULL, *lstates = NULL, *unq = NULL;
        size_t m = 0, j = 0;
        int rc = -1;

        memset(w, 0, sizeof(*w));
        snprintf(w->tenant, sizeof(w->tenant), "%s", tenant ? tenant : "");
        w->people = calloc(n ? n : 1, sizeof(*w->people));
        kinds     = deck(n, kind_quotas, ARRAY_LEN(kind_quotas), &rng);
        if (!w->people || !kinds)
                goto out;
        w->n = n;
        for (size_t i = 0; i < n; i++)
                m += kinds[i] < K_SF_ONLY_CONTACT;
        /* traits are dealt over the people with an AC contact only, so
         * their floors hold whatever the SF make-up */
        lstates = deck(m, lstate_quotas, ARRAY_LEN(lstate_quotas), &rng);
        unq = deck(m, unqualified_quotas, ARRAY_LEN(unqualified_quotas), &rng);
        if (!lstates || !unq)
                goto out;
        for (size_t i = 0; i < n; i++) {
                struct e2e_person *p = &w->people[i];
                const char *fn = first_names[rnd(&rng, ARRAY_LEN(first_names))];
                const char *ln = last_names[rnd(&rng, ARRAY_LEN(last_names))];
                char lf[32], ll[32];
                int sf_out;

                snprintf(p->name, sizeof(p->name), "%s %s", fn, ln);
                lower_copy(lf, sizeof(lf), fn);
                lower_copy(ll, sizeof(ll), ln);
                /* the index keeps emails unique whatever the names */
                snprintf(p->email, sizeof(p->email), "%s.%s.%zu@example.test",
                         lf, ll, i + 1);
                for (int l = 0; l < E2E_LISTS; l++)
                        p->list_status[l] = E2E_NOT_MEMBER;
                p->has_ac = kinds[i] < K_SF_ONLY_CONTACT;
                if (p->has_ac) {
                        p->qualified = !unq[j];
                        fill_lists(p, (enum lstate)lstates[j], &rng);
                        j++;
                        /* SF starts where the rules would have left it */
                        sf_out = e2e_person_active_lists(p) == 0;
                } else {
                        sf_out = rnd(&rng, 100) < 15;
                }
                switch (kinds[i]) {
                case K_CONTACT:
                case K_SF_ONLY_CONTACT:
                        add_sf(p, E2E_SF_CONTACT, 0, sf_out, &sf_seq);
                        break;
                case K_LEAD:
                case K_SF_ONLY_LEAD:
                        add_sf(p, E2E_SF_LEAD, 0, sf_out, &sf_seq);
                        break;
                case K_DUP:
                        add_sf(p, E2E_SF_CONTACT, 0, sf_out, &sf_seq);
                        add_sf(p, E2E_SF_LEAD, 0, sf_out, &sf_seq);
                        break;
                case K_CONVERTED:
                case K_CONVERTED_DUP:
                        add_sf(p, E2E_SF_CONTACT, 0, sf_out, &sf_seq);
                        /* frozen at conversion time: may disagree */
                        add_sf(p, E2E_SF_LEAD, 1, (int)rnd(&rng, 2), &sf_seq);
                        if (kinds[i] == K_CONVERTED_DUP)
                                add_sf(p, E2E_SF_LEAD, 0, sf_out, &sf_seq);
                        break;
                default:
                        break; /* K_AC_ONLY */
                }
        }
        rc = 0;
out:
        free(kinds);
        free(lstates);
        free(unq);
        if (rc)
                e2e_world_free(w);
        return rc;
}

void e2e_world_free(struct e2e_world *w)
{
        if (!w)
                return;
        free(w->people);
        memset(w, 0, sizeof(*w));
}

int e2e_world_copy(struct e2e_world *dst, const struct e2e_world *src)
{
        memset(dst, 0, sizeof(*dst));
        dst->people = calloc(src->n ? src->n : 1, sizeof(*dst->people));
        if (!dst->people)
                return -1;
        memcpy(dst->tenant, src->tenant, sizeof(dst->tenant));
        if (src->n)
                memcpy(dst->people, src->people, src->n * sizeof(*dst->people));
        dst->n = src->n;
        return 0;
}

/* ---- the fixture --------------------------------------------------------- */

/* "Ann Lee" -> "Ann" into @p first, "Lee" in *last. */
static void split_name(const struct e2e_person *p, char *first, size_t size,
                       const char **last)
{
        const char *sp = strchr(p->name, ' ');

        snprintf(first, size, "%.*s", sp ? (int)(sp - p->name) : 0, p->name);
        *last = sp ? sp + 1 : p->name;
}

/* Tags of a person: a qualifying one that matches its SF make-up (or none),
 * and 0..2 everyday ones, varied by the email's hash. */
static void add_tags(cJSON *tags, const struct e2e_person *p)
{
        uint64_t h      = hash_ci(p->email);
        int has_contact = 0, has_lead = 0, has_converted = 0;
        size_t n_other   = p->qualified ? h % 3 : 1 + h % 2;
        const char *qtag = NULL;

        for (size_t k = 0; k < p->n_sf; k++) {
                has_contact |= p->sf[k].type == E2E_SF_CONTACT;
                has_lead |= p->sf[k].type == E2E_SF_LEAD && !p->sf[k].converted;
                has_converted |= p->sf[k].converted;
        }
        if (p->qualified) {
                int alt = (int)((h >> 8) & 1);

                if (has_converted)
                        qtag = qual_tags[4];
                else if (has_contact)
                        qtag = qual_tags[alt ? 3 : 2];
                else if (has_lead)
                        qtag = qual_tags[alt ? 1 : 0];
                else /* synced once, the SF record deleted since */
                        qtag = qual_tags[2];
                cJSON_AddItemToArray(tags, cJSON_CreateString(qtag));
        }
        for (size_t k = 0; k < n_other; k++)
                cJSON_AddItemToArray(
                    tags, cJSON_CreateString(
                              other_tags[((h >> 16) + k * 3) % N_OTHER_TAGS]));
}

static cJSON *fixture_ac(const struct e2e_world *w, int ac_rate_per_s)
{
        cJSON *ac = cJSON_CreateObject(), *arr, *o;
        char id[16];

        cJSON_AddNumberToObject(ac, "rate_per_s", ac_rate_per_s);
        arr = cJSON_AddArrayToObject(ac, "lists");
        for (int l = 0; l < E2E_LISTS; l++) {
                o = cJSON_CreateObject();
                snprintf(id, sizeof(id), "%d", l + 1);
                cJSON_AddStringToObject(o, "id", id);
                cJSON_AddStringToObject(o, "name", list_names[l]);
                cJSON_AddStringToObject(o, "stringid", list_stringids[l]);
                cJSON_AddItemToArray(arr, o);
        }
        arr = cJSON_AddArrayToObject(ac, "tags");
        for (size_t t = 0; t < N_QUAL_TAGS + N_OTHER_TAGS; t++) {
                o = cJSON_CreateObject();
                snprintf(id, sizeof(id), "%zu", t + 1);
                cJSON_AddStringToObject(o, "id", id);
                cJSON_AddStringToObject(o, "tag",
                                        t < N_QUAL_TAGS
                                            ? qual_tags[t]
                                            : other_tags[t - N_QUAL_TAGS]);
                cJSON_AddStringToObject(o, "description", "");
                cJSON_AddItemToArray(arr, o);
        }
        arr = cJSON_AddArrayToObject(ac, "contacts");
        for (size_t i = 0; i < w->n; i++) {
                const struct e2e_person *p = &w->people[i];
                char first[64];
                const char *last;
                cJSON *lists;

                if (!p->has_ac)
                        continue;
                o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "email", p->email);
                split_name(p, first, sizeof(first), &last);
                cJSON_AddStringToObject(o, "first_name", first);
                cJSON_AddStringToObject(o, "last_name", last);
                add_tags(cJSON_AddArrayToObject(o, "tags"), p);
                lists = cJSON_AddObjectToObject(o, "lists");
                for (int l = 0; l < E2E_LISTS; l++) {
                        if (p->list_status[l] == E2E_NOT_MEMBER)
                                continue;
                        snprintf(id, sizeof(id), "%d", l + 1);
                        cJSON_AddNumberToObject(lists, id, p->list_status[l]);
                }
                cJSON_AddNumberToObject(o, "bounced_hard", p->bounced_hard);
                cJSON_AddItemToArray(arr, o);
        }
        return ac;
}

/* One SF record of the fixture. About one record in nine spells the
 * email with capitals, as people type them: Salesforce keeps the case. */
static cJSON *fixture_sf_record(const struct e2e_person *p,
                                const struct e2e_sf_record *r,
                                const struct e2e_person *owner, size_t ord)
{
        cJSON *o = cJSON_CreateObject();
        char email[sizeof(p->email)], first[64];
        const char *last;

        snprintf(email, sizeof(email), "%s", p->email);
        if (hash_ci(r->id) % 9 == 4) {
                /* "ann.lee.7@..." -> "Ann.Lee.7@..." */
                char *dot = strchr(email, '.');

                email[0] = (char)toupper((unsigned char)email[0]);
                if (dot && dot < strchr(email, '@'))
                        dot[1] = (char)toupper((unsigned char)dot[1]);
        }
        split_name(p, first, sizeof(first), &last);
        cJSON_AddStringToObject(o, "Id", r->id);
        cJSON_AddStringToObject(o, "FirstName", first);
        cJSON_AddStringToObject(o, "LastName", last);
        cJSON_AddStringToObject(o, "Email", email);
        cJSON_AddBoolToObject(o, "HasOptedOutOfEmail", r->opted_out);
        if (r->type == E2E_SF_LEAD) {
                cJSON_AddStringToObject(
                    o, "Company",
                    companies[hash_ci(p->email) % ARRAY_LEN(companies)]);
                cJSON_AddBoolToObject(o, "IsConverted", r->converted);
        }
        if (r->converted) {
                char acct[19];

                /* the lead was converted into the person's own contact */
                for (size_t k = 0; k < owner->n_sf; k++)
                        if (owner->sf[k].type == E2E_SF_CONTACT) {
                                cJSON_AddStringToObject(o, "ConvertedContactId",
                                                        owner->sf[k].id);
                                break;
                        }
                sf_id("001", 9000000000ULL + ord, acct);
                cJSON_AddStringToObject(o, "ConvertedAccountId", acct);
                cJSON_AddStringToObject(o, "ConvertedDate", "2024-05-14");
        }
        return o;
}

static cJSON *fixture_sf(const struct e2e_world *w)
{
        cJSON *sf       = cJSON_CreateObject();
        cJSON *contacts = cJSON_AddArrayToObject(sf, "contacts");
        cJSON *leads    = cJSON_AddArrayToObject(sf, "leads");
        size_t ord      = 0;

        /* contacts first: the sandbox seeds them before leads anyway */
        for (size_t i = 0; i < w->n; i++)
                for (size_t k = 0; k < w->people[i].n_sf; k++)
                        if (w->people[i].sf[k].type == E2E_SF_CONTACT)
                                cJSON_AddItemToArray(
                                    contacts,
                                    fixture_sf_record(&w->people[i],
                                                      &w->people[i].sf[k],
                                                      &w->people[i], ord++));
        for (size_t i = 0; i < w->n; i++)
                for (size_t k = 0; k < w->people[i].n_sf; k++)
                        if (w->people[i].sf[k].type == E2E_SF_LEAD)
                                cJSON_AddItemToArray(
                                    leads,
                                    fixture_sf_record(&w->people[i],
                                                      &w->people[i].sf[k],
                                                      &w->people[i], ord++));
        return sf;
}

char *e2e_world_fixture_json(const struct e2e_world *w, int ac_rate_per_s)
{
        cJSON *root = cJSON_CreateObject(), *tenants, *t;
        char *out;

        cJSON_AddStringToObject(root, "_comment",
                                "generated by tools/e2e/world.c");
        tenants = cJSON_AddObjectToObject(root, "tenants");
        t       = cJSON_AddObjectToObject(tenants, w->tenant);
        cJSON_AddItemToObject(t, "ac", fixture_ac(w, ac_rate_per_s));
        cJSON_AddItemToObject(t, "sf", fixture_sf(w));
        out = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        return out;
}

/* ---- reading the sandbox state ------------------------------------------ */

/* A small open-addressing index: key (case-insensitive) -> JSON object. */
struct index {
        const char **keys;
        const cJSON **vals;
        size_t cap;
};

static int index_init(struct index *x, size_t n)
{
        x->cap = 16;
        while (x->cap < n * 2)
                x->cap <<= 1;
        x->keys = calloc(x->cap, sizeof(*x->keys));
        x->vals = calloc(x->cap, sizeof(*x->vals));
        return x->keys && x->vals ? 0 : -1;
}

static void index_free(struct index *x)
{
        free(x->keys);
        free(x->vals);
        memset(x, 0, sizeof(*x));
}

/* The first object with a key wins (a later duplicate is ignored). */
static void index_put(struct index *x, const char *key, const cJSON *val)
{
        size_t i = (size_t)hash_ci(key) & (x->cap - 1);

        while (x->keys[i]) {
                if (!strcasecmp(x->keys[i], key))
                        return;
                i = (i + 1) & (x->cap - 1);
        }
        x->keys[i] = key;
        x->vals[i] = val;
}

static const cJSON *index_get(const struct index *x, const char *key)
{
        size_t i = (size_t)hash_ci(key) & (x->cap - 1);

        while (x->keys[i]) {
                if (!strcasecmp(x->keys[i], key))
                        return x->vals[i];
                i = (i + 1) & (x->cap - 1);
        }
        return NULL;
}

static const char *json_str(const cJSON *o, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The parsed state of one tenant, indexed: AC contacts by email, SF
 * records by Id. */
struct state {
        cJSON *root;
        struct index ac, sf;
};

static void state_free(struct state *s)
{
        cJSON_Delete(s->root);
        index_free(&s->ac);
        index_free(&s->sf);
}

static int state_load(struct state *s, const char *tenant, const char *json,
                      char *err, size_t err_size)
{
        const cJSON *t, *ac, *sf, *arr, *it;
        size_t n_ac, n_sf;

        memset(s, 0, sizeof(*s));
        s->root = json ? cJSON_Parse(json) : NULL;
        if (!cJSON_IsObject(s->root)) {
                set_err(err, err_size, "sandbox state: not a JSON object");
                return -1;
        }
        /* both shapes: ?tenant=T, or every tenant under "tenants" */
        t = cJSON_GetObjectItemCaseSensitive(s->root, "tenants");
        t = t ? cJSON_GetObjectItemCaseSensitive(t, tenant) : s->root;
        if (t == s->root && json_str(t, "tenant") &&
            strcmp(json_str(t, "tenant"), tenant)) {
                set_err(err, err_size, "sandbox state: tenant %s, not %s",
                        json_str(t, "tenant"), tenant);
                return -1;
        }
        ac = cJSON_GetObjectItemCaseSensitive(t, "ac");
        sf = cJSON_GetObjectItemCaseSensitive(t, "sf");
        if (!cJSON_IsObject(ac) || !cJSON_IsObject(sf)) {
                set_err(err, err_size,
                        "sandbox state: no \"ac\" and \"sf\" for tenant %s",
                        tenant);
                return -1;
        }
        arr  = cJSON_GetObjectItemCaseSensitive(ac, "contacts");
        n_ac = (size_t)cJSON_GetArraySize(arr);
        n_sf = (size_t)cJSON_GetArraySize(
                   cJSON_GetObjectItemCaseSensitive(sf, "contacts")) +
               (size_t)cJSON_GetArraySize(
                   cJSON_GetObjectItemCaseSensitive(sf, "leads"));
        if (index_init(&s->ac, n_ac) || index_init(&s->sf, n_sf)) {
                set_err(err, err_size, "out of memory");
                return -1;
        }
        cJSON_ArrayForEach(it, arr)
        {
                if (json_str(it, "email") && json_str(it, "id"))
                        index_put(&s->ac, json_str(it, "email"), it);
        }
        for (int e = 0; e < 2; e++) {
                cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(
                                           sf, e ? "leads" : "contacts"))
                {
                        if (json_str(it, "Id"))
                                index_put(&s->sf, json_str(it, "Id"), it);
                }
        }
        return 0;
}

/* Check one SF record of the model against the state's row. */
static const cJSON *state_sf_record(const struct state *s,
                                    const struct e2e_person *p,
                                    const struct e2e_sf_record *r, char *err,
                                    size_t err_size)
{
        const cJSON *o = r->id[0] ? index_get(&s->sf, r->id) : NULL;
        const char *email;

        if (!o) {
                set_err(err, err_size, "%s: SF %s %s missing from the sandbox",
                        p->email, sf_type_name(r->type),
                        r->id[0] ? r->id : "(no id)");
                return NULL;
        }
        email = json_str(o, "Email");
        if (!email || strcasecmp(email, p->email) ||
            strncmp(r->id, r->type == E2E_SF_CONTACT ? "003" : "00Q", 3)) {
                set_err(err, err_size, "%s: SF record %s is %s, not this %s",
                        p->email, r->id, email ? email : "(no email)",
                        sf_type_name(r->type));
                return NULL;
        }
        return o;
}

int e2e_world_bind(struct e2e_world *w, const char *state_json, char *err,
                   size_t err_size)
{
        struct state s;
        int rc = -1;

        if (state_load(&s, w->tenant, state_json, err, err_size))
                goto out;
        for (size_t i = 0; i < w->n; i++) {
                struct e2e_person *p = &w->people[i];
                const cJSON *c       = index_get(&s.ac, p->email);

                if (!!c != !!p->has_ac) {
                        set_err(err, err_size, "%s: %s AC contact", p->email,
                                c ? "unexpected" : "missing");
                        goto out;
                }
                p->ac_id[0] = '\0';
                if (c)
                        snprintf(p->ac_id, sizeof(p->ac_id), "%s",
                                 json_str(c, "id"));
                for (size_t k = 0; k < p->n_sf; k++)
                        if (!state_sf_record(&s, p, &p->sf[k], err, err_size))
                                goto out;
        }
        rc = 0;
out:
        state_free(&s);
        return rc;
}

int e2e_world_read(struct e2e_world *actual, const struct e2e_world *model,
                   const char *state_json, char *err, size_t err_size)
{
        struct state s;
        int rc = -1;

        memset(actual, 0, sizeof(*actual));
        if (state_load(&s, model->tenant, state_json, err, err_size))
                goto out;
        if (e2e_world_copy(actual, model)) {
                set_err(err, err_size, "out of memory");
                goto out;
        }
        for (size_t i = 0; i < actual->n; i++) {
                struct e2e_person *p = &actual->people[i];
                const cJSON *c       = index_get(&s.ac, p->email);
                const cJSON *lists, *l, *tag;

                p->has_ac       = c != NULL;
                p->qualified    = 0;
                p->bounced_hard = 0;
                for (int k = 0; k < E2E_LISTS; k++)
                        p->list_status[k] = E2E_NOT_MEMBER;
                if (c) {
                        const cJSON *bh =
                            cJSON_GetObjectItemCaseSensitive(c, "bounced_hard");

                        snprintf(p->ac_id, sizeof(p->ac_id), "%s",
                                 json_str(c, "id"));
                        p->bounced_hard =
                            cJSON_IsNumber(bh) && bh->valuedouble > 0;
                        lists = cJSON_GetObjectItemCaseSensitive(c, "lists");
                        cJSON_ArrayForEach(l, lists)
                        {
                                char *end;
                                long id = strtol(l->string, &end, 10);

                                if (*end || id < 1 || id > E2E_LISTS ||
                                    !cJSON_IsNumber(l))
                                        continue; /* not one of ours */
                                p->list_status[id - 1] = l->valueint;
                        }
                        cJSON_ArrayForEach(
                            tag, cJSON_GetObjectItemCaseSensitive(c, "tags"))
                        {
                                for (size_t q = 0; q < N_QUAL_TAGS; q++)
                                        if (cJSON_IsString(tag) &&
                                            !strcasecmp(tag->valuestring,
                                                        qual_tags[q]))
                                                p->qualified = 1;
                        }
                }
                for (size_t k = 0; k < p->n_sf; k++) {
                        const cJSON *o =
                            state_sf_record(&s, p, &p->sf[k], err, err_size);

                        if (!o)
                                goto out;
                        p->sf[k].opted_out =
                            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                                o, "HasOptedOutOfEmail"));
                        p->sf[k].converted = cJSON_IsTrue(
                            cJSON_GetObjectItemCaseSensitive(o, "IsConverted"));
                }
        }
        rc = 0;
out:
        state_free(&s);
        if (rc)
                e2e_world_free(actual);
        return rc;
}

size_t e2e_world_diff(const struct e2e_world *expected,
                      const struct e2e_world *actual, char *report,
                      size_t report_size)
{
        size_t differ = 0, len = 0;

        if (report && report_size)
                report[0] = '\0';
        if (expected->n != actual->n) {
                append(report, report_size, &len,
                       "the worlds differ in size: %zu expected, %zu read\n",
                       expected->n, actual->n);
                return expected->n > actual->n ? expected->n : actual->n;
        }
        for (size_t i = 0; i < expected->n; i++) {
                const struct e2e_person *e = &expected->people[i];
                const struct e2e_person *a = &actual->people[i];
                int bad                    = 0;

/* one "email: " per person, then "; " between its differences */
#define DIFF_ITEM(...)                                                         \
        do {                                                                   \
                append(report, report_size, &len, "%s%s",                      \
                       bad ? "; " : e->email, bad ? "" : ": ");                \
                append(report, report_size, &len, __VA_ARGS__);                \
                bad = 1;                                                       \
        } while (0)
                if (e->has_ac != a->has_ac)
                        DIFF_ITEM("AC contact expected %s, is %s",
                                  e->has_ac ? "present" : "absent",
                                  a->has_ac ? "present" : "absent");
                if (e->qualified != a->qualified)
                        DIFF_ITEM("AC expected %squalified, is %squalified",
                                  e->qualified ? "" : "not ",
                                  a->qualified ? "" : "not ");
                if (!!e->bounced_hard != !!a->bounced_hard)
                        DIFF_ITEM("AC hard bounce expected %s, is %s",
                                  e->bounced_hard ? "yes" : "no",
                                  a->bounced_hard ? "yes" : "no");
                for (int l = 0; l < E2E_LISTS; l++)
                        if (e->list_status[l] != a->list_status[l])
                                DIFF_ITEM("AC list %s expected %s, is %s",
                                          list_names[l],
                                          status_name(e->list_status[l]),
                                          status_name(a->list_status[l]));
                for (size_t k = 0; k < e->n_sf && k < a->n_sf; k++) {
                        const struct e2e_sf_record *re = &e->sf[k];
                        const struct e2e_sf_record *ra = &a->sf[k];

                        if (re->opted_out != ra->opted_out)
                                DIFF_ITEM("SF %s %s opted_out expected %s, is "
                                          "%s",
                                          sf_type_name(re->type), re->id,
                                          re->opted_out ? "true" : "false",
                                          ra->opted_out ? "true" : "false");
                        if (re->converted != ra->converted)
                                DIFF_ITEM("SF %s %s expected %sconverted, is "
                                          "%sconverted",
                                          sf_type_name(re->type), re->id,
                                          re->converted ? "" : "not ",
                                          ra->converted ? "" : "not ");
                }
                if (e->n_sf != a->n_sf)
                        DIFF_ITEM("SF expected %zu records, has %zu", e->n_sf,
                                  a->n_sf);
#undef DIFF_ITEM
                if (bad) {
                        append(report, report_size, &len, "\n");
                        differ++;
                }
        }
        return differ;
}

/* ---- the oracle ---------------------------------------------------------- */

/* Set every unconverted SF record of @p p (but @p skip) to @p value:
 * what an sf.command does. @returns the records that changed. */
static int sf_set_all(struct e2e_person *p, int value, size_t skip)
{
        int changed = 0;

        for (size_t k = 0; k < p->n_sf; k++) {
                struct e2e_sf_record *r = &p->sf[k];

                if (k == skip || r->converted || r->opted_out == value)
                        continue;
                r->opted_out = value;
                changed++;
        }
        return changed;
}

/* Every active list unsubscribed: what R4's ac.command does (and what
 * an unsubscribe-all link does). @returns the lists that changed. */
static int unsubscribe_active(struct e2e_person *p)
{
        int changed = 0;

        for (int l = 0; l < E2E_LISTS; l++)
                if (p->list_status[l] == E2E_ACTIVE) {
                        p->list_status[l] = E2E_UNSUBSCRIBED;
                        changed++;
                }
        return changed;
}

int e2e_world_apply(struct e2e_world *w, const struct e2e_change *c,
                    const char **rule)
{
        static const char *dummy;
        struct e2e_person *p;
        int before, writes = 0;

        if (!rule)
                rule = &dummy;
        if (!c || c->person >= w->n) {
                *rule = "none: no such person";
                return 0;
        }
        p      = &w->people[c->person];
        before = e2e_person_active_lists(p);
        if (c->kind <= E2E_AC_BOUNCE_SOFT && !p->has_ac) {
                *rule = "none: no AC contact";
                return 0;
        }
        if ((c->kind == E2E_AC_UNSUBSCRIBE_LIST ||
             c->kind == E2E_AC_SUBSCRIBE) &&
            (c->list < 0 || c->list >= E2E_LISTS)) {
                *rule = "none: no such list";
                return 0;
        }
        if ((c->kind == E2E_SF_TICK || c->kind == E2E_SF_UNTICK) &&
            c->record >= p->n_sf) {
                *rule = "none: no such SF record";
                return 0;
        }
        switch (c->kind) {
        case E2E_AC_UNSUBSCRIBE_ALL:
                unsubscribe_active(p);
                if (before == 0)
                        *rule = "none: no active list (no event)";
                else if (!p->qualified)
                        *rule = "none: not qualified";
                else {
                        *rule  = "R2: no active list left";
                        writes = sf_set_all(p, 1, (size_t)-1);
                }
                break;
        case E2E_AC_UNSUBSCRIBE_LIST:
                if (p->list_status[c->list] == E2E_UNSUBSCRIBED) {
                        *rule = "none: already unsubscribed (no event)";
                        break;
                }
                /* AC says the contact was on L: the rules count it in the
                 * "before" set even when it was not active (their look-up
                 * is an after view), so an empty "after" is an R2 */
                p->list_status[c->list] = E2E_UNSUBSCRIBED;
                if (e2e_person_active_lists(p) > 0)
                        *rule = "none: other lists still active";
                else if (!p->qualified)
                        *rule = "none: not qualified";
                else {
                        *rule  = "R2: no active list left";
                        writes = sf_set_all(p, 1, (size_t)-1);
                }
                break;
        case E2E_AC_SUBSCRIBE:
                if (p->list_status[c->list] == E2E_ACTIVE) {
                        *rule = "none: already active (no event)";
                        break;
                }
                p->list_status[c->list] = E2E_ACTIVE;
                if (before > 0)
                        *rule = "none: a second list";
                else if (!p->qualified)
                        *rule = "none: not qualified";
                else {
                        *rule  = "R1: first active list";
                        writes = sf_set_all(p, 0, (size_t)-1);
                }
                break;
        case E2E_AC_BOUNCE_HARD:
                /* AC marks every membership that could still mail */
                for (int l = 0; l < E2E_LISTS; l++)
                        if (p->list_status[l] == E2E_ACTIVE ||
                            p->list_status[l] == E2E_UNCONFIRMED)
                                p->list_status[l] = E2E_BOUNCED;
                p->bounced_hard = 1;
                if (!p->qualified)
                        *rule = "none: not qualified";
                else {
                        *rule  = "R3: hard bounce";
                        writes = sf_set_all(p, 1, (size_t)-1);
                }
                break;
        case E2E_AC_BOUNCE_SOFT:
                *rule = "none: soft bounce";
                break;
        case E2E_SF_TICK:
                if (p->sf[c->record].converted) {
                        *rule = "none: a converted lead is read-only";
                        break;
                }
                p->sf[c->record].opted_out = 1;
                if (!p->has_ac)
                        *rule = "none: no AC contact (R4 skipped)";
                else if (!p->qualified)
                        *rule = "none: not qualified";
                else {
                        /* R4: unsubscribe everywhere, and R2's effect on
                         * every other SF record of the email */
                        *rule = "R4: ticked in SF";
                        writes =
                            unsubscribe_active(p) + sf_set_all(p, 1, c->record);
                }
                break;
        case E2E_SF_UNTICK:
                if (p->sf[c->record].converted) {
                        *rule = "none: a converted lead is read-only";
                        break;
                }
                p->sf[c->record].opted_out = 0;
                *rule = "none: an untick never subscribes in AC";
                break;
        default:
                *rule = "none: unknown change";
                break;
        }
        return writes;
}

/* ---- playing changes through the sandbox -------------------------------- */

const char *e2e_change_name(enum e2e_change_kind kind)
{
        switch (kind) {
        case E2E_AC_UNSUBSCRIBE_ALL:
                return "unsubscribe from every list (link)";
        case E2E_AC_UNSUBSCRIBE_LIST:
                return "unsubscribe from one list";
        case E2E_AC_SUBSCRIBE:
                return "subscribe to a list";
        case E2E_AC_BOUNCE_HARD:
                return "hard bounce";
        case E2E_AC_BOUNCE_SOFT:
                return "soft bounce";
        case E2E_SF_TICK:
                return "tick Email Opt Out in SF";
        case E2E_SF_UNTICK:
                return "untick Email Opt Out in SF";
        default:
                return "unknown change";
        }
}

/* The control request for @p c: path and JSON body. */
static int change_request(const struct e2e_world *w, const char *sandbox_url,
                          const struct e2e_change *c, char *url,
                          size_t url_size, char *body, size_t body_size,
                          char *err, size_t err_size)
{
        const struct e2e_person *p;
        int n = 0;

        if (c->person >= w->n) {
                set_err(err, err_size, "no person %zu", c->person);
                return -1;
        }
        p = &w->people[c->person];
        if (c->kind <= E2E_AC_BOUNCE_SOFT) {
                static const char *const action[] = {
                    [E2E_AC_UNSUBSCRIBE_ALL]  = "unsubscribe",
                    [E2E_AC_UNSUBSCRIBE_LIST] = "unsubscribe",
                    [E2E_AC_SUBSCRIBE]        = "subscribe",
                    [E2E_AC_BOUNCE_HARD]      = "bounce",
                    [E2E_AC_BOUNCE_SOFT]      = "bounce"};

                if (!p->has_ac || !p->ac_id[0]) {
                        set_err(err, err_size, "%s: no bound AC contact",
                                p->email);
                        return -1;
                }
                if ((c->kind == E2E_AC_UNSUBSCRIBE_LIST ||
                     c->kind == E2E_AC_SUBSCRIBE) &&
                    (c->list < 0 || c->list >= E2E_LISTS)) {
                        set_err(err, err_size, "no list %d", c->list);
                        return -1;
                }
                n = snprintf(url, url_size, "%s/sandbox/ac/%s/%s", sandbox_url,
                             w->tenant, action[c->kind]);
                if (n < 0 || (size_t)n >= url_size)
                        goto too_long;
                if (c->kind == E2E_AC_UNSUBSCRIBE_ALL)
                        n = snprintf(body, body_size,
                                     "{\"contact\":\"%s\",\"list\":\"all\"}",
                                     p->ac_id);
                else if (c->kind <= E2E_AC_SUBSCRIBE)
                        n = snprintf(body, body_size,
                                     "{\"contact\":\"%s\",\"list\":\"%d\"}",
                                     p->ac_id, c->list + 1);
                else
                        n = snprintf(
                            body, body_size,
                            "{\"contact\":\"%s\",\"type\":\"%s\","
                            "\"campaign\":%d}",
                            p->ac_id,
                            c->kind == E2E_AC_BOUNCE_HARD ? "hard" : "soft",
                            c->kind == E2E_AC_BOUNCE_HARD ? E2E_HARD_CAMPAIGN
                                                          : E2E_SOFT_CAMPAIGN);
        } else if (c->kind == E2E_SF_TICK || c->kind == E2E_SF_UNTICK) {
                if (c->record >= p->n_sf || !p->sf[c->record].id[0]) {
                        set_err(err, err_size, "%s: no SF record %zu", p->email,
                                c->record);
                        return -1;
                }
                n = snprintf(url, url_size,
                             "%s/sandbox/sf/%s/records/%s/optout", sandbox_url,
                             w->tenant, p->sf[c->record].id);
                if (n < 0 || (size_t)n >= url_size)
                        goto too_long;
                n = snprintf(body, body_size, "{\"value\":%s}",
                             c->kind == E2E_SF_TICK ? "true" : "false");
        } else {
                set_err(err, err_size, "unknown change kind %d", (int)c->kind);
                return -1;
        }
        if (n < 0 || (size_t)n >= body_size)
                goto too_long;
        return 0;
too_long:
        set_err(err, err_size, "request for %s too long", p->email);
        return -1;
}

/* Did the control do it? AC controls answer {"ok":true,...}; the SF
 * optout control answers the record as it now is. */
static int answer_ok(const struct e2e_world *w, const struct e2e_change *c,
                     const struct osy_http_response *resp, char *err,
                     size_t err_size)
{
        cJSON *o = cJSON_Parse(resp->body);
        int ok   = 0;

        if (resp->status < 200 || resp->status > 299)
                ok = 0;
        else if (c->kind <= E2E_AC_BOUNCE_SOFT)
                ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ok"));
        else
                ok = !strcmp(json_str(o, "Id") ? json_str(o, "Id") : "",
                             w->people[c->person].sf[c->record].id) &&
                     cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                         o, "HasOptedOutOfEmail")) == (c->kind == E2E_SF_TICK);
        cJSON_Delete(o);
        if (!ok)
                set_err(err, err_size, "%s for %s: HTTP %d %.200s",
                        e2e_change_name(c->kind), w->people[c->person].email,
                        resp->status, resp->body);
        return ok ? 0 : -1;
}

int e2e_world_play(struct e2e_world *w, const char *sandbox_url,
                   const struct e2e_change *c, const char **rule, char *err,
                   size_t err_size)
{
        static const char *const headers[] = {"Content-Type: application/json",
                                              NULL};
        struct osy_http_opts opts          = {.timeout_ms = 10000};
        struct osy_http_response resp      = {0};
        osy_http_client_t *client          = NULL;
        char url[512], body[256], es[OSY_ERRSTR_SIZE];
        struct osy_http_request req;
        int rc = -1;

        if (change_request(w, sandbox_url, c, url, sizeof(url), body,
                           sizeof(body), err, err_size))
                goto out;
        if (osy_http_client_new(&client, &opts, es, sizeof(es)) != OSY_OK) {
                set_err(err, err_size, "http client: %s", es);
                goto out;
        }
        req = (struct osy_http_request){.method   = OSY_HTTP_POST,
                                        .url      = url,
                                        .headers  = headers,
                                        .body     = body,
                                        .body_len = strlen(body)};
        if (osy_http_do(client, &req, &resp, es, sizeof(es)) != OSY_OK) {
                set_err(err, err_size, "POST %s: %s", url, es);
                goto out;
        }
        if (answer_ok(w, c, &resp, err, err_size))
                goto out;
        (void)e2e_world_apply(w, c, rule);
        rc = 0;
out:
        osy_http_response_free(&resp);
        osy_http_client_destroy(client);
        return rc;
}

/* ---- random changes ------------------------------------------------------ */

/* Every change that makes sense for @p p now (see world.h), at most
 * @p max, grouped by kind so a draw can pick the kind first. */
static size_t possible_changes(const struct e2e_person *p, size_t person,
                               struct e2e_change *out, size_t max)
{
        size_t n = 0;

#define ADD(k, l, r)                                                           \
        do {                                                                   \
                if (n < max)                                                   \
                        out[n++] = (struct e2e_change){.kind   = (k),          \
                                                       .person = person,       \
                                                       .list   = (l),          \
                                                       .record = (r)};         \
        } while (0)
        /* a bounced contact no longer mails: nothing to do in AC */
        if (p->has_ac && !p->bounced_hard) {
                int active = e2e_person_active_lists(p);

                if (active > 0)
                        ADD(E2E_AC_UNSUBSCRIBE_ALL, 0, 0);
                for (int l = 0; l < E2E_LISTS; l++)
                        if (p->list_status[l] == E2E_ACTIVE)
                                ADD(E2E_AC_UNSUBSCRIBE_LIST, l, 0);
                for (int l = 0; l < E2E_LISTS; l++)
                        if (p->list_status[l] != E2E_ACTIVE &&
                            p->list_status[l] != E2E_BOUNCED)
                                ADD(E2E_AC_SUBSCRIBE, l, 0);
                ADD(E2E_AC_BOUNCE_HARD, 0, 0);
                ADD(E2E_AC_BOUNCE_SOFT, 0, 0);
        }
        for (size_t k = 0; k < p->n_sf; k++)
                if (!p->sf[k].converted)
                        ADD(p->sf[k].opted_out ? E2E_SF_UNTICK : E2E_SF_TICK, 0,
                            k);
#undef ADD
        return n;
}

int e2e_world_random_change(const struct e2e_world *w, uint64_t *rng,
                            unsigned char *used, struct e2e_change *out)
{
        /* at most: 1 + 3 + 3 + 2 AC changes and one per SF record */
        struct e2e_change opts[16];
        size_t start, n;

        if (!w->n)
                return -1;
        if (!*rng)
                *rng = seed_state(0);
        start = rnd(rng, w->n);
        /* from a random start, the first unused person with something to
         * do: a draw always succeeds while one is left */
        for (size_t step = 0; step < w->n; step++) {
                size_t i = (start + step) % w->n;
                size_t kinds[E2E_CHANGE_KINDS], nk = 0, pick, run, k;

                if (used[i])
                        continue;
                n = possible_changes(&w->people[i], i, opts, ARRAY_LEN(opts));
                if (!n)
                        continue;
                /* a kind first, then one of its changes: every kind is
                 * as likely as any other, however many options it has */
                for (k = 0; k < n; k++)
                        if (!nk || opts[kinds[nk - 1]].kind != opts[k].kind)
                                kinds[nk++] = k;
                k    = rnd(rng, nk);
                pick = kinds[k];
                /* runs of one kind are contiguous: this one ends where
                 * the next kind starts */
                run     = (k + 1 < nk ? kinds[k + 1] : n) - pick;
                *out    = opts[pick + rnd(rng, run)];
                used[i] = 1;
                return 0;
        }
        return -1;
}

/* ---- describing a person ------------------------------------------------- */

char *e2e_person_describe(const struct e2e_person *p, char *buf, size_t size)
{
        size_t len = 0;
        int first  = 1;

        if (!buf || !size)
                return buf;
        buf[0] = '\0';
        if (!p->has_ac) {
                append(buf, size, &len, "AC  no contact");
        } else {
                append(buf, size, &len,
                       "AC  #%s lists: ", p->ac_id[0] ? p->ac_id : "?");
                for (int l = 0; l < E2E_LISTS; l++) {
                        if (p->list_status[l] == E2E_NOT_MEMBER)
                                continue;
                        append(buf, size, &len, "%s%s %s", first ? "" : ", ",
                               list_names[l], status_name(p->list_status[l]));
                        first = 0;
                }
                append(buf, size, &len, "%s; %s%s", first ? "none" : "",
                       p->qualified ? "qualified" : "not qualified",
                       p->bounced_hard ? "; hard-bounced" : "");
        }
        append(buf, size, &len, "\nSF  ");
        if (!p->n_sf)
                append(buf, size, &len, "no record");
        for (size_t k = 0; k < p->n_sf; k++)
                append(buf, size, &len, "%s%s %s: %s%s", k ? "; " : "",
                       sf_type_name(p->sf[k].type),
                       p->sf[k].id[0] ? p->sf[k].id : "?",
                       p->sf[k].opted_out ? "opted out" : "opted in",
                       p->sf[k].converted ? " (converted, read-only)" : "");
        return buf;
}
