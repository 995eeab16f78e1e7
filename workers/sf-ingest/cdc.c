/*
 * cdc.c - Bayeux messages for Salesforce CDC: build the requests, parse
 * the answers. The parser is fed raw network bytes (and fuzzed), so every
 * field is type-checked and bounded before it is used.
 */
#include "cdc.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "optsync/timeutil.h"

/* JSON numbers are doubles: integers above 2^53 are not exact. */
#define MAX_EXACT_INT 9007199254740991.0

static const char *const change_type_names[OSY_SFI_CT__CNT] = {
    [OSY_SFI_CT_UNKNOWN]      = "UNKNOWN",
    [OSY_SFI_CT_CREATE]       = "CREATE",
    [OSY_SFI_CT_UPDATE]       = "UPDATE",
    [OSY_SFI_CT_DELETE]       = "DELETE",
    [OSY_SFI_CT_UNDELETE]     = "UNDELETE",
    [OSY_SFI_CT_GAP_CREATE]   = "GAP_CREATE",
    [OSY_SFI_CT_GAP_UPDATE]   = "GAP_UPDATE",
    [OSY_SFI_CT_GAP_DELETE]   = "GAP_DELETE",
    [OSY_SFI_CT_GAP_UNDELETE] = "GAP_UNDELETE",
    [OSY_SFI_CT_GAP_OVERFLOW] = "GAP_OVERFLOW",
};

const char *osy_sfi_change_type2str(osy_sfi_change_type_t t)
{
        if ((int)t < 0 || t >= OSY_SFI_CT__CNT)
                return "UNKNOWN";
        return change_type_names[t];
}

int osy_sfi_change_type_is_gap(osy_sfi_change_type_t t)
{
        return t >= OSY_SFI_CT_GAP_CREATE && t <= OSY_SFI_CT_GAP_OVERFLOW;
}

/* Exact, case-sensitive names as Salesforce sends them; anything else is
 * UNKNOWN, which the parser turns into a malformed event. */
static osy_sfi_change_type_t change_type_parse(const char *s)
{
        for (int i = 1; i < OSY_SFI_CT__CNT; i++)
                if (!strcmp(s, change_type_names[i]))
                        return (osy_sfi_change_type_t)i;
        return OSY_SFI_CT_UNKNOWN;
}

/* Only the alphabet and lengths of Salesforce ids: these strings end up
 * inside SOQL and Redis keys, so nothing else may get through. */
int osy_sfi_id_valid(const char *s)
{
        size_t n = 0;

        if (!s)
                return 0;
        for (; s[n]; n++) {
                char c = s[n];
                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                      (c >= 'A' && c <= 'Z')))
                        return 0;
                if (n > 18)
                        return 0;
        }
        return n == 15 || n == 18;
}

/* ---- small helpers --------------------------------------------------- */

/* Keeps the first problem found: it is the one worth logging. */
static void ev_error(struct osy_sfi_event *ev, int *nomem, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ev_error(struct osy_sfi_event *ev, int *nomem, const char *fmt, ...)
{
        char buf[256];
        va_list ap;

        if (ev->error)
                return;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (!(ev->error = strdup(buf)))
                *nomem = 1;
}

/* Member of an object, or NULL for a missing member and for a non-object
 * (so chains like get(get(m, "ext"), "sfdc") never crash). */
static const cJSON *get(const cJSON *o, const char *name)
{
        return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, name)
                                 : NULL;
}

/* An integral JSON number within [0, max]; else -1. */
static int64_t json_uint(const cJSON *v, double max)
{
        double d;

        if (!cJSON_IsNumber(v))
                return -1;
        d = v->valuedouble;
        if (!isfinite(d) || d < 0 || d > max || floor(d) != d)
                return -1;
        return (int64_t)d;
}

/* Bayeux advice: what the server wants us to do next. Unknown reconnect
 * values are kept as OTHER and treated like "retry" by the caller. */
static void advice_parse(const cJSON *a, struct osy_sfi_advice *out)
{
        const cJSON *v;

        out->reconnect   = OSY_SFI_RECONNECT_UNSET;
        out->interval_ms = -1;
        out->timeout_ms  = -1;
        if (!cJSON_IsObject(a))
                return;
        v = get(a, "reconnect");
        if (cJSON_IsString(v)) {
                if (!strcmp(v->valuestring, "retry"))
                        out->reconnect = OSY_SFI_RECONNECT_RETRY;
                else if (!strcmp(v->valuestring, "handshake"))
                        out->reconnect = OSY_SFI_RECONNECT_HANDSHAKE;
                else if (!strcmp(v->valuestring, "none"))
                        out->reconnect = OSY_SFI_RECONNECT_NONE;
                else
                        out->reconnect = OSY_SFI_RECONNECT_OTHER;
        }
        /* Bounded to a day: a silly advice must not park a worker. */
        out->interval_ms = json_uint(get(a, "interval"), 86400000.0);
        out->timeout_ms  = json_uint(get(a, "timeout"), 86400000.0);
}

/* One /meta reply. Only strings of the right type are copied; a reply
 * without "successful": true counts as a failure, whatever else it says. */
static osy_err_t meta_parse(const cJSON *m, const char *channel,
                            struct osy_sfi_meta *out)
{
        const cJSON *v;

        memset(out, 0, sizeof(*out));
        out->successful = cJSON_IsTrue(get(m, "successful"));
        if (!(out->channel = strdup(channel)))
                return OSY_ERR_NOMEM;
        v = get(m, "error");
        if (cJSON_IsString(v) && !(out->error = strdup(v->valuestring)))
                return OSY_ERR_NOMEM;
        v = get(m, "clientId");
        if (cJSON_IsString(v) && v->valuestring[0] &&
            !(out->client_id = strdup(v->valuestring)))
                return OSY_ERR_NOMEM;
        v = get(m, "subscription");
        if (cJSON_IsString(v) && !(out->subscription = strdup(v->valuestring)))
                return OSY_ERR_NOMEM;
        v = get(get(get(m, "ext"), "sfdc"), "failureReason");
        if (cJSON_IsString(v) &&
            !(out->failure_reason = strdup(v->valuestring)))
                return OSY_ERR_NOMEM;
        advice_parse(get(m, "advice"), &out->advice);
        return OSY_OK;
}

/* Frees what meta_parse() copied. */
static void meta_clear(struct osy_sfi_meta *m)
{
        free(m->channel);
        free(m->error);
        free(m->client_id);
        free(m->subscription);
        free(m->failure_reason);
        memset(m, 0, sizeof(*m));
}

/* Frees what event_parse() copied, and zeroes the event. */
static void event_clear(struct osy_sfi_event *ev)
{
        free(ev->channel);
        free(ev->replay_id);
        free(ev->error);
        free(ev->entity_name);
        free(ev->change_type_name);
        free(ev->record_ids);
        for (size_t i = 0; i < ev->changed_cnt; i++)
                free(ev->changed_fields[i]);
        free(ev->changed_fields);
        free(ev->change_origin);
        free(ev->transaction_key);
        free(ev->converted_contact_id);
        free(ev->email);
        memset(ev, 0, sizeof(*ev));
}

/* A replay id sent as a string: the digits of an integer in 0..2^53-1,
 * as a JSON number must be. Anything else ("-2", "+7", "1.5", 20 digits)
 * would be stored, then read differently, or not at all, when the next
 * subscribe sends it back as a number (replay_number): "-2" asks for the
 * whole 72 h again, "-1" skips to the tip. */
static int replay_digits(const char *s)
{
        int64_t v = 0;
        size_t n  = 0;

        for (; s[n]; n++) {
                if (s[n] < '0' || s[n] > '9' || n >= 16)
                        return 0;
                v = v * 10 + (s[n] - '0');
        }
        return n > 0 && (double)v <= MAX_EXACT_INT;
}

/* The replay id as decimal text: a JSON integer in 0..2^53-1 (beyond that
 * a double is not exact and rounding would point at another event), or
 * the same digits when a server sends it as a string. */
static void replay_parse(const cJSON *v, struct osy_sfi_event *ev, int *nomem)
{
        char buf[32];
        int64_t n;

        if (cJSON_IsString(v)) {
                if (!v->valuestring || !replay_digits(v->valuestring)) {
                        ev_error(ev, nomem,
                                 "data.event.replayId: a string, but not an "
                                 "integer in 0..2^53-1");
                        return;
                }
                if (!(ev->replay_id = strdup(v->valuestring)))
                        *nomem = 1;
                return;
        }
        if ((n = json_uint(v, MAX_EXACT_INT)) < 0) {
                ev_error(ev, nomem,
                         v ? "data.event.replayId: not an integer in "
                             "0..2^53-1"
                           : "data.event.replayId: missing");
                return;
        }
        snprintf(buf, sizeof(buf), "%lld", (long long)n);
        if (!(ev->replay_id = strdup(buf)))
                *nomem = 1;
}

/* Reads the ChangeEventHeader: what changed, where, when, by whom. */
static void header_parse(const cJSON *h, struct osy_sfi_event *ev, int *nomem)
{
        const cJSON *v, *it;
        int64_t ts;

        if (!cJSON_IsObject(h)) {
                ev_error(ev, nomem, "payload.ChangeEventHeader: missing");
                return;
        }
        v = get(h, "entityName");
        if (!cJSON_IsString(v)) {
                ev_error(ev, nomem, "ChangeEventHeader.entityName: missing");
        } else {
                if (!(ev->entity_name = strdup(v->valuestring)))
                        *nomem = 1;
                if (!strcmp(v->valuestring, "Contact"))
                        ev->object = OSY_SF_CONTACT;
                else if (!strcmp(v->valuestring, "Lead"))
                        ev->object = OSY_SF_LEAD;
        }
        v = get(h, "changeType");
        if (!cJSON_IsString(v)) {
                ev_error(ev, nomem, "ChangeEventHeader.changeType: missing");
        } else {
                if (!(ev->change_type_name = strdup(v->valuestring)))
                        *nomem = 1;
                ev->change_type = change_type_parse(v->valuestring);
                if (ev->change_type == OSY_SFI_CT_UNKNOWN)
                        ev_error(ev, nomem,
                                 "ChangeEventHeader.changeType: unknown "
                                 "value");
        }
        /* The event's occurred_at, and the lower bound of a backfill. */
        v             = get(h, "commitTimestamp");
        ts            = json_uint(v, (double)OSY_TIME_MAX_MS);
        ev->commit_ts = ts;
        if (ts < 0)
                ev_error(ev, nomem,
                         "ChangeEventHeader.commitTimestamp: missing or not "
                         "a time in ms");
        v = get(h, "changeOrigin");
        if (cJSON_IsString(v) && v->valuestring[0] &&
            !(ev->change_origin = strdup(v->valuestring)))
                *nomem = 1;
        v = get(h, "transactionKey");
        if (cJSON_IsString(v) &&
            !(ev->transaction_key = strdup(v->valuestring)))
                *nomem = 1;

        v = get(h, "recordIds");
        if (!cJSON_IsArray(v)) {
                ev_error(ev, nomem, "ChangeEventHeader.recordIds: missing");
        } else {
                int n = cJSON_GetArraySize(v);
                if (n > OSY_SFI_MAX_RECORD_IDS) {
                        ev_error(ev, nomem,
                                 "ChangeEventHeader.recordIds: %d ids, more "
                                 "than %d",
                                 n, OSY_SFI_MAX_RECORD_IDS);
                } else if (n > 0) {
                        ev->record_ids = calloc((size_t)n, OSY_SFI_ID_BUFSZ);
                        if (!ev->record_ids)
                                *nomem = 1;
                }
                cJSON_ArrayForEach(it, v)
                {
                        if (!ev->record_ids)
                                break;
                        if (!cJSON_IsString(it) ||
                            !osy_sfi_id_valid(it->valuestring)) {
                                ev_error(ev, nomem,
                                         "ChangeEventHeader.recordIds[%zu]: "
                                         "not a Salesforce id",
                                         ev->record_cnt);
                                continue;
                        }
                        memcpy(ev->record_ids[ev->record_cnt++],
                               it->valuestring, strlen(it->valuestring) + 1);
                }
                /* Only an overflow may come without ids (it means "too
                 * many changes to list"). */
                if (!ev->record_cnt && !ev->error &&
                    ev->change_type != OSY_SFI_CT_GAP_OVERFLOW)
                        ev_error(ev, nomem,
                                 "ChangeEventHeader.recordIds: empty");
        }

        /* UPDATE events say which fields changed; that list is what
         * decides whether an update is about the opt-out at all. */
        v = get(h, "changedFields");
        if (v && !cJSON_IsArray(v) && !cJSON_IsNull(v)) {
                ev_error(ev, nomem,
                         "ChangeEventHeader.changedFields: not an array");
        } else if (cJSON_IsArray(v)) {
                int n = cJSON_GetArraySize(v);
                if (n > OSY_SFI_MAX_FIELDS) {
                        ev_error(ev, nomem,
                                 "ChangeEventHeader.changedFields: %d names, "
                                 "more than %d",
                                 n, OSY_SFI_MAX_FIELDS);
                        return;
                }
                if (n > 0 &&
                    !(ev->changed_fields = calloc((size_t)n, sizeof(char *)))) {
                        *nomem = 1;
                        return;
                }
                cJSON_ArrayForEach(it, v)
                {
                        if (!cJSON_IsString(it)) {
                                ev_error(ev, nomem,
                                         "ChangeEventHeader.changedFields: "
                                         "not a string");
                                continue;
                        }
                        if (!(ev->changed_fields[ev->changed_cnt] =
                                  strdup(it->valuestring))) {
                                *nomem = 1;
                                return;
                        }
                        ev->changed_cnt++;
                }
        }
}

/* Reads the body fields sf-ingest needs; other fields are ignored. */
static void body_parse(const cJSON *p, struct osy_sfi_event *ev, int *nomem)
{
        const cJSON *v;

        v = get(p, "HasOptedOutOfEmail");
        if (cJSON_IsBool(v))
                ev->opt_out = cJSON_IsTrue(v) ? OSY_TRI_TRUE : OSY_TRI_FALSE;
        else if (v && !cJSON_IsNull(v))
                ev_error(ev, nomem, "HasOptedOutOfEmail: not a boolean");
        v = get(p, "IsConverted");
        if (cJSON_IsBool(v))
                ev->is_converted =
                    cJSON_IsTrue(v) ? OSY_TRI_TRUE : OSY_TRI_FALSE;
        else if (v && !cJSON_IsNull(v))
                ev_error(ev, nomem, "IsConverted: not a boolean");
        v = get(p, "ConvertedContactId");
        if (cJSON_IsString(v)) {
                if (!osy_sfi_id_valid(v->valuestring))
                        ev_error(ev, nomem,
                                 "ConvertedContactId: not a Salesforce id");
                else if (!(ev->converted_contact_id = strdup(v->valuestring)))
                        *nomem = 1;
        } else if (v && !cJSON_IsNull(v)) {
                ev_error(ev, nomem, "ConvertedContactId: not a string");
        }
        v = get(p, "Email");
        if (v) {
                ev->email_present = 1;
                if (cJSON_IsString(v)) {
                        /* "" is how some tools spell null. */
                        if (v->valuestring[0] &&
                            !(ev->email = strdup(v->valuestring)))
                                *nomem = 1;
                } else if (!cJSON_IsNull(v)) {
                        ev_error(ev, nomem, "Email: not a string");
                }
        }
}

/* One data message. Problems are recorded in ev->error, not returned:
 * the caller still needs the replay id and record ids of a bad event. */
static osy_err_t event_parse(const cJSON *m, const char *channel,
                             struct osy_sfi_event *ev)
{
        const cJSON *data, *payload;
        int nomem = 0;

        memset(ev, 0, sizeof(*ev));
        ev->commit_ts = -1;
        if (!(ev->channel = strdup(channel)))
                return OSY_ERR_NOMEM;
        data = get(m, "data");
        if (!cJSON_IsObject(data)) {
                ev_error(ev, &nomem, "data: missing");
                goto out;
        }
        replay_parse(get(get(data, "event"), "replayId"), ev, &nomem);
        payload = get(data, "payload");
        if (!cJSON_IsObject(payload)) {
                ev_error(ev, &nomem, "data.payload: missing or not an object");
                goto out;
        }
        header_parse(get(payload, "ChangeEventHeader"), ev, &nomem);
        body_parse(payload, ev, &nomem);
out:
        return nomem ? OSY_ERR_NOMEM : OSY_OK;
}

/* Doubles an array's capacity when it is full. */
static osy_err_t grow(void **arr, size_t cnt, size_t *cap, size_t elem)
{
        void *p;
        size_t ncap;

        if (cnt < *cap)
                return OSY_OK;
        ncap = *cap ? *cap * 2 : 4;
        if (!(p = realloc(*arr, ncap * elem)))
                return OSY_ERR_NOMEM;
        *arr = p;
        *cap = ncap;
        return OSY_OK;
}

osy_err_t osy_sfi_reply_parse(const char *buf, size_t len,
                              struct osy_sfi_reply *out, char *errstr,
                              size_t errstr_size)
{
        const char *end = NULL;
        size_t meta_cap = 0, ev_cap = 0;
        cJSON *root   = NULL, *m;
        osy_err_t err = OSY_OK;

        memset(out, 0, sizeof(*out));
        if (!buf || !len)
                return osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                   "cometd: empty answer");
        root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
        if (!root) {
                /* HTML error pages (a CDN's 503) end up here: say where. */
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "cometd: answer is not JSON (near byte %zu)",
                                  end && end >= buf ? (size_t)(end - buf) : 0);
                goto out;
        }
        /* Only white space may follow the array. */
        while (end < buf + len &&
               (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
                end++;
        if (end != buf + len) {
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "cometd: trailing data after the answer "
                                  "(byte %zu)",
                                  (size_t)(end - buf));
                goto out;
        }
        if (!cJSON_IsArray(root)) {
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "cometd: answer is not a JSON array");
                goto out;
        }
        /* Meta replies and data messages arrive mixed in one array; they
         * are split by channel, keeping their order within each kind. */
        cJSON_ArrayForEach(m, root)
        {
                const cJSON *ch = get(m, "channel");

                if (!cJSON_IsString(ch) || ch->valuestring[0] != '/') {
                        out->skipped++;
                        continue;
                }
                if (!strncmp(ch->valuestring, "/meta/", 6)) {
                        if ((err = grow((void **)&out->metas, out->meta_cnt,
                                        &meta_cap, sizeof(*out->metas))))
                                goto out;
                        err = meta_parse(m, ch->valuestring,
                                         &out->metas[out->meta_cnt++]);
                } else {
                        if ((err = grow((void **)&out->events, out->event_cnt,
                                        &ev_cap, sizeof(*out->events))))
                                goto out;
                        err = event_parse(m, ch->valuestring,
                                          &out->events[out->event_cnt++]);
                }
                if (err)
                        goto out;
        }
out:
        cJSON_Delete(root);
        if (err == OSY_ERR_NOMEM)
                osy_err_set(err, errstr, errstr_size, "cometd: out of memory");
        if (err)
                osy_sfi_reply_clear(out);
        return err;
}

void osy_sfi_reply_clear(struct osy_sfi_reply *r)
{
        if (!r)
                return;
        for (size_t i = 0; i < r->meta_cnt; i++)
                meta_clear(&r->metas[i]);
        for (size_t i = 0; i < r->event_cnt; i++)
                event_clear(&r->events[i]);
        free(r->metas);
        free(r->events);
        memset(r, 0, sizeof(*r));
}

const struct osy_sfi_meta *osy_sfi_reply_meta(const struct osy_sfi_reply *r,
                                              const char *channel)
{
        for (size_t i = 0; i < r->meta_cnt; i++)
                if (!strcmp(r->metas[i].channel, channel))
                        return &r->metas[i];
        return NULL;
}

int osy_sfi_error_is_invalid_replay(const char *error)
{
        /* "400::The replayId {N} you provided was invalid. Please ..." */
        return error && !strncmp(error, "400::", 5) &&
               strstr(error, "replayId") && strstr(error, "invalid");
}

int osy_sfi_meta_is_auth_error(const struct osy_sfi_meta *m)
{
        return (m->error && !strncmp(m->error, "401::", 5)) ||
               (m->failure_reason && !strncmp(m->failure_reason, "401::", 5));
}

int osy_sfi_origin_is_client(const char *change_origin, const char *client)
{
        const char *p;
        size_t n;

        if (!change_origin || !client || !(n = strlen(client)))
                return 0;
        /* The parameters follow the first ';', "key=value" separated by
         * ';' (Sforce-Call-Options syntax allows ',' as well). */
        for (p = strchr(change_origin, ';'); p; p = strpbrk(p + 1, ";,")) {
                const char *kv = p + 1;
                while (*kv == ' ')
                        kv++;
                if (!strncmp(kv, "client=", 7) && !strncmp(kv + 7, client, n) &&
                    (kv[7 + n] == '\0' || kv[7 + n] == ';' || kv[7 + n] == ','))
                        return 1;
        }
        return 0;
}

/* ---- requests --------------------------------------------------------- */

/* Compact JSON of @p arr (NULL stays NULL); frees the tree either way. */
static char *print_and_free(cJSON *arr)
{
        char *s = arr ? cJSON_PrintUnformatted(arr) : NULL;

        cJSON_Delete(arr);
        return s;
}

/* A new Bayeux message in @p arr with channel, clientId (after the
 * handshake) and id: the server echoes the id in its reply. */
static cJSON *msg_new(cJSON *arr, const char *channel, const char *client_id,
                      uint64_t msg_id)
{
        cJSON *m = cJSON_CreateObject();
        char id[24];

        snprintf(id, sizeof(id), "%llu", (unsigned long long)msg_id);
        if (!m || !cJSON_AddStringToObject(m, "channel", channel) ||
            (client_id && !cJSON_AddStringToObject(m, "clientId", client_id)) ||
            !cJSON_AddStringToObject(m, "id", id)) {
                cJSON_Delete(m);
                return NULL;
        }
        cJSON_AddItemToArray(arr, m);
        return m;
}

char *osy_sfi_req_handshake(uint64_t msg_id)
{
        static const char *const types[] = {"long-polling"};
        cJSON *arr                       = cJSON_CreateArray();
        cJSON *m = arr ? msg_new(arr, "/meta/handshake", NULL, msg_id) : NULL;
        cJSON *ext;

        if (!m || !cJSON_AddStringToObject(m, "version", "1.0") ||
            !cJSON_AddStringToObject(m, "minimumVersion", "1.0") ||
            !cJSON_AddItemToObject(m, "supportedConnectionTypes",
                                   cJSON_CreateStringArray(types, 1)) ||
            !(ext = cJSON_AddObjectToObject(m, "ext")) ||
            !cJSON_AddTrueToObject(ext, "replay")) {
                cJSON_Delete(arr);
                return NULL;
        }
        return print_and_free(arr);
}

/* A replay id on the wire is a JSON integer (-2, -1 or a stored id). */
static int replay_number(const char *s, double *out)
{
        char *end = NULL;
        long long v;

        if (!s || !*s)
                return -1;
        v = strtoll(s, &end, 10);
        if (*end || v < -2 || (double)v > MAX_EXACT_INT)
                return -1;
        *out = (double)v;
        return 0;
}

char *osy_sfi_req_subscribe(const char *client_id, const char *const *channels,
                            const char *const *replay, size_t n,
                            uint64_t *msg_id)
{
        cJSON *arr = cJSON_CreateArray();

        if (!arr)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                cJSON *m =
                    msg_new(arr, "/meta/subscribe", client_id, (*msg_id)++);
                cJSON *ext, *map;
                double id;

                if (!m || replay_number(replay[i], &id) ||
                    !cJSON_AddStringToObject(m, "subscription", channels[i]) ||
                    !(ext = cJSON_AddObjectToObject(m, "ext")) ||
                    !(map = cJSON_AddObjectToObject(ext, "replay")) ||
                    /* The key must equal the subscription exactly. */
                    !cJSON_AddNumberToObject(map, channels[i], id)) {
                        cJSON_Delete(arr);
                        return NULL;
                }
        }
        return print_and_free(arr);
}

char *osy_sfi_req_connect(const char *client_id, uint64_t msg_id)
{
        cJSON *arr = cJSON_CreateArray();
        cJSON *m =
            arr ? msg_new(arr, "/meta/connect", client_id, msg_id) : NULL;

        if (!m ||
            !cJSON_AddStringToObject(m, "connectionType", "long-polling")) {
                cJSON_Delete(arr);
                return NULL;
        }
        return print_and_free(arr);
}

char *osy_sfi_req_disconnect(const char *client_id, uint64_t msg_id)
{
        cJSON *arr = cJSON_CreateArray();

        if (!arr || !msg_new(arr, "/meta/disconnect", client_id, msg_id)) {
                cJSON_Delete(arr);
                return NULL;
        }
        return print_and_free(arr);
}
