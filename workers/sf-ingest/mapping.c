/*
 * mapping.c - the decisions of sf-ingest as pure functions (no I/O): CDC
 * event -> plan, polled record + known state -> events, SOQL text, query
 * answers, and the sf.event envelope.
 */
#include "mapping.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "optsync/timeutil.h"

static const char *const skip_names[OSY_SFI_SKIP__CNT] = {
    [OSY_SFI_SKIP_NOT_OPT_OUT]  = "not_opt_out",
    [OSY_SFI_SKIP_OTHER_ENTITY] = "other_entity",
    [OSY_SFI_SKIP_DELETE]       = "delete",
    [OSY_SFI_SKIP_MALFORMED]    = "malformed",
    [OSY_SFI_SKIP_NO_EMAIL]     = "no_email",
    [OSY_SFI_SKIP_BAD_EMAIL]    = "bad_email",
    [OSY_SFI_SKIP_NOT_FOUND]    = "not_found",
    [OSY_SFI_SKIP_UNCHANGED]    = "unchanged",
};

const char *osy_sfi_skip2str(osy_sfi_skip_t r)
{
        if ((int)r < 0 || r >= OSY_SFI_SKIP__CNT)
                return "?";
        return skip_names[r];
}

/* ---- small helpers --------------------------------------------------- */

/* Bounded copy for ASCII values (ids, replay ids): cut, never overrun. */
static void copy_str(char *dst, size_t size, const char *src)
{
        size_t n = src ? strlen(src) : 0;

        if (n >= size)
                n = size - 1;
        memcpy(dst, src ? src : "", n);
        dst[n] = '\0';
}

void osy_sfi_copy_utf8(char *dst, size_t size, const char *src)
{
        size_t n = src ? strlen(src) : 0;

        if (n >= size) {
                n = size - 1;
                /* Back off continuation bytes (10xxxxxx) to a boundary. */
                while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
                        n--;
        }
        memcpy(dst, src ? src : "", n);
        dst[n] = '\0';
        /* The envelope wants one printable line of valid UTF-8; CDC text
         * is not checked by anyone before us, so mask what would not do. */
        if (!osy_utf8_valid(dst, n)) {
                for (size_t i = 0; i < n; i++)
                        if ((unsigned char)dst[i] >= 0x80)
                                dst[i] = '?';
        }
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)dst[i] < 0x20 || dst[i] == 0x7f)
                        dst[i] = '?';
}

/* Whether changedFields names @p name exactly (compound fields such as
 * "Name.FirstName" never match a plain field name). */
static int has_field(const struct osy_sfi_event *ev, const char *name)
{
        for (size_t i = 0; i < ev->changed_cnt; i++)
                if (!strcmp(ev->changed_fields[i], name))
                        return 1;
        return 0;
}

/* Doubles an array's capacity when it is full. */
static osy_err_t grow(void **arr, size_t cnt, size_t *cap, size_t elem)
{
        void *p;
        size_t ncap;

        if (cnt < *cap)
                return OSY_OK;
        ncap = *cap ? *cap * 2 : 8;
        if (!(p = realloc(*arr, ncap * elem)))
                return OSY_ERR_NOMEM;
        *arr = p;
        *cap = ncap;
        return OSY_OK;
}

/* ---- plan ----------------------------------------------------------- */

void osy_sfi_plan_init(struct osy_sfi_plan *p)
{
        memset(p, 0, sizeof(*p));
        for (int i = 0; i < OSY_SF_OBJ__CNT; i++)
                p->overflow_from[i] = -1;
}

void osy_sfi_plan_clear(struct osy_sfi_plan *p)
{
        if (!p)
                return;
        free(p->changes);
        free(p->rereads);
        free(p->states);
        osy_sfi_plan_init(p);
}

osy_err_t osy_sfi_plan_add_change(struct osy_sfi_plan *p,
                                  const struct osy_sfi_change *c)
{
        if (grow((void **)&p->changes, p->change_cnt, &p->change_cap,
                 sizeof(*c)))
                return OSY_ERR_NOMEM;
        p->changes[p->change_cnt++] = *c;
        return OSY_OK;
}

osy_err_t osy_sfi_plan_add_state(struct osy_sfi_plan *p,
                                 const struct osy_sfi_state_update *u)
{
        if (grow((void **)&p->states, p->state_cnt, &p->state_cap, sizeof(*u)))
                return OSY_ERR_NOMEM;
        p->states[p->state_cnt++] = *u;
        return OSY_OK;
}

/* Queues a record to read back through REST before the batch commits. */
static osy_err_t add_reread(struct osy_sfi_plan *p, osy_sf_object_t object,
                            const char *id)
{
        struct osy_sfi_ref *r;

        if (grow((void **)&p->rereads, p->reread_cnt, &p->reread_cap,
                 sizeof(*r)))
                return OSY_ERR_NOMEM;
        r         = &p->rereads[p->reread_cnt++];
        r->object = object;
        copy_str(r->record_id, sizeof(r->record_id), id);
        return OSY_OK;
}

/* The replay position moves with every event, published or not: a
 * filtered event is as "done" as a delivered one. */
static void track_position(struct osy_sfi_plan *p,
                           const struct osy_sfi_event *ev)
{
        struct osy_sfi_position *pos = NULL;

        if (!ev->replay_id || strlen(ev->channel) >= sizeof(pos->channel))
                return;
        for (size_t i = 0; i < p->pos_cnt; i++)
                if (!strcmp(p->pos[i].channel, ev->channel))
                        pos = &p->pos[i];
        if (!pos) {
                if (p->pos_cnt == OSY_SFI_MAX_CHANNELS)
                        return;
                pos = &p->pos[p->pos_cnt++];
                copy_str(pos->channel, sizeof(pos->channel), ev->channel);
                pos->commit_ts = -1;
        }
        copy_str(pos->replay_id, sizeof(pos->replay_id), ev->replay_id);
        if (ev->commit_ts >= 0)
                pos->commit_ts = ev->commit_ts;
}

/* Normalise a body Email into @p out; @returns the skip reason or -1. */
static int body_email(const struct osy_sfi_event *ev, char *out, size_t size)
{
        char err[OSY_ERRSTR_SIZE];

        out[0] = '\0';
        if (!ev->email_present)
                return -1; /* not in the body: look it up */
        if (!ev->email)
                return OSY_SFI_SKIP_NO_EMAIL;
        if (osy_email_normalise(ev->email, out, size, err, sizeof(err))) {
                out[0] = '\0';
                return OSY_SFI_SKIP_BAD_EMAIL;
        }
        return -1;
}

/* The fields every change of a CDC event shares: where and when it came
 * from, and whether it is our own write coming back. */
static void change_init(struct osy_sfi_change *c,
                        const struct osy_sfi_event *ev, const char *id,
                        const char *client)
{
        memset(c, 0, sizeof(*c));
        c->object      = ev->object;
        c->occurred_at = ev->commit_ts;
        copy_str(c->record_id, sizeof(c->record_id), id);
        osy_sfi_copy_utf8(c->change_origin, sizeof(c->change_origin),
                          ev->change_origin);
        copy_str(c->replay_id, sizeof(c->replay_id), ev->replay_id);
        c->echo = osy_sfi_origin_is_client(ev->change_origin, client);
}

/*
 * A malformed event that names no record to read back (no entityName, no
 * usable recordIds, a GAP_OVERFLOW without its time) still stood for
 * changes, and its replay id is passed all the same: poll its object, or
 * both when it does not say which, back from its commit time, else from
 * the last one its channel gave in this answer, else from the watermark.
 */
static void backfill_unnamed(struct osy_sfi_plan *p,
                             const struct osy_sfi_event *ev)
{
        int64_t from = ev->commit_ts;

        for (size_t i = 0; from < 0 && i < p->pos_cnt; i++)
                if (!strcmp(p->pos[i].channel, ev->channel))
                        from = p->pos[i].commit_ts;
        for (int obj = OSY_SF_CONTACT; obj <= OSY_SF_LEAD; obj++) {
                if (ev->object != OSY_SF_OBJ_NONE && (int)ev->object != obj)
                        continue;
                if (from < 0)
                        p->poll_now[obj] = 1;
                else if (p->overflow_from[obj] < 0 ||
                         from < p->overflow_from[obj])
                        p->overflow_from[obj] = from;
        }
}

osy_err_t osy_sfi_plan_add_event(struct osy_sfi_plan *p,
                                 const struct osy_sfi_event *ev,
                                 const char *client)
{
        char email[OSY_EMAIL_BUFSZ];
        int opt_changed, conv, email_changed, skip;
        osy_err_t err = OSY_OK;

        /* Only the two channels subscribed to: an event on another one
         * (a server bug, a forged answer) has no replay position of ours,
         * and would push the real ones out of pos[] (4 slots) and write
         * keys for invented channels. */
        if (strcmp(ev->channel, OSY_SFI_CHANNEL_CONTACT) &&
            strcmp(ev->channel, OSY_SFI_CHANNEL_LEAD)) {
                p->skipped[OSY_SFI_SKIP_OTHER_ENTITY]++;
                return OSY_OK;
        }
        track_position(p, ev);
        p->by_type[ev->change_type < OSY_SFI_CT__CNT ? ev->change_type : 0]++;
        if (ev->error) {
                /* We cannot trust what it says, but we know which records
                 * it is about: read them back rather than lose a change. */
                p->malformed++;
                p->skipped[OSY_SFI_SKIP_MALFORMED]++;
                if (ev->object == OSY_SF_OBJ_NONE || !ev->record_cnt) {
                        backfill_unnamed(p, ev);
                        return OSY_OK;
                }
                for (size_t i = 0; i < ev->record_cnt && !err; i++)
                        err = add_reread(p, ev->object, ev->record_ids[i]);
                return err;
        }
        if (ev->object == OSY_SF_OBJ_NONE) {
                p->skipped[OSY_SFI_SKIP_OTHER_ENTITY]++;
                return OSY_OK;
        }
        switch (ev->change_type) {
        case OSY_SFI_CT_GAP_OVERFLOW:
                /* Too many changes to list: poll them from that time. */
                if (p->overflow_from[ev->object] < 0 ||
                    ev->commit_ts < p->overflow_from[ev->object])
                        p->overflow_from[ev->object] = ev->commit_ts;
                return OSY_OK;
        case OSY_SFI_CT_GAP_CREATE:
        case OSY_SFI_CT_GAP_UPDATE:
        case OSY_SFI_CT_GAP_UNDELETE:
                for (size_t i = 0; i < ev->record_cnt && !err; i++)
                        err = add_reread(p, ev->object, ev->record_ids[i]);
                return err;
        case OSY_SFI_CT_GAP_DELETE:
        case OSY_SFI_CT_DELETE:
                p->skipped[OSY_SFI_SKIP_DELETE] += ev->record_cnt;
                return OSY_OK;
        default:
                break;
        }

        /* What the event says, once for all its records: an UPDATE lists
         * the fields it changed; a CREATE or UNDELETE carries every
         * non-empty field, so "changed" means "set to true" there. */
        skip = body_email(ev, email, sizeof(email));
        email_changed =
            ev->email_present &&
            (ev->change_type != OSY_SFI_CT_UPDATE || has_field(ev, "Email"));
        opt_changed = ev->change_type == OSY_SFI_CT_UPDATE
                          ? has_field(ev, "HasOptedOutOfEmail")
                          : ev->opt_out == OSY_TRI_TRUE;
        conv        = ev->object == OSY_SF_LEAD &&
               ev->change_type == OSY_SFI_CT_UPDATE &&
               has_field(ev, "IsConverted") && ev->is_converted == OSY_TRI_TRUE;
        if (ev->change_type == OSY_SFI_CT_UPDATE && opt_changed &&
            ev->opt_out == OSY_TRI_UNSET) {
                /* Named as changed but not in the body: read it back. */
                p->skipped[OSY_SFI_SKIP_MALFORMED]++;
                for (size_t i = 0; i < ev->record_cnt && !err; i++)
                        err = add_reread(p, ev->object, ev->record_ids[i]);
                return err;
        }
        if (conv && !ev->converted_contact_id) {
                for (size_t i = 0; i < ev->record_cnt && !err; i++)
                        err = add_reread(p, ev->object, ev->record_ids[i]);
                if (err)
                        return err;
                conv = 0;
        }

        for (size_t i = 0; i < ev->record_cnt; i++) {
                const char *id                 = ev->record_ids[i];
                struct osy_sfi_state_update st = {0};
                struct osy_sfi_change c;

                /* Remember what the body told us, even when nothing is
                 * published: it saves a lookup at the next update. */
                copy_str(st.record_id, sizeof(st.record_id), id);
                if (email_changed && email[0])
                        copy_str(st.email, sizeof(st.email), email);
                if (ev->change_type != OSY_SFI_CT_UPDATE || opt_changed)
                        st.opt_out = ev->opt_out;
                if (ev->object == OSY_SF_LEAD)
                        st.is_converted = ev->is_converted;
                if ((st.email[0] || st.opt_out || st.is_converted) &&
                    (err = osy_sfi_plan_add_state(p, &st)))
                        return err;

                if (!opt_changed && !conv) {
                        p->skipped[OSY_SFI_SKIP_NOT_OPT_OUT]++;
                        continue;
                }
                if (skip >= 0) {
                        p->skipped[skip]++;
                        continue;
                }
                change_init(&c, ev, id, client);
                copy_str(c.email, sizeof(c.email), email);
                if (ev->object == OSY_SF_LEAD)
                        c.is_converted = ev->is_converted;
                if (ev->converted_contact_id && c.is_converted == OSY_TRI_TRUE)
                        copy_str(c.converted_contact_id,
                                 sizeof(c.converted_contact_id),
                                 ev->converted_contact_id);
                if (opt_changed) {
                        c.kind    = ev->change_type == OSY_SFI_CT_CREATE
                                        ? OSY_SF_CREATED
                                    : ev->change_type == OSY_SFI_CT_UNDELETE
                                        ? OSY_SF_UNDELETED
                                        : OSY_SF_OPT_OUT_CHANGED;
                        c.opt_out = ev->opt_out;
                        if ((err = osy_sfi_plan_add_change(p, &c)))
                                return err;
                }
                if (conv) {
                        /* A separate event: the rules follow the Contact
                         * from now on, whatever the opt-out did. */
                        c.kind    = OSY_SF_LEAD_CONVERTED;
                        c.opt_out = ev->opt_out;
                        if ((err = osy_sfi_plan_add_change(p, &c)))
                                return err;
                }
        }
        return OSY_OK;
}

/* ---- polled / re-read records --------------------------------------- */

size_t osy_sfi_decide(const struct osy_sfi_record *rec,
                      const struct osy_sfi_recstate *prev,
                      struct osy_sfi_change out[2])
{
        osy_tri_t known_opt =
            prev && prev->known ? prev->opt_out : OSY_TRI_UNSET;
        osy_tri_t known_conv =
            prev && prev->known ? prev->is_converted : OSY_TRI_UNSET;
        int lead = rec->object == OSY_SF_LEAD;
        struct osy_sfi_change c;
        size_t n = 0;

        memset(&c, 0, sizeof(c));
        c.object      = rec->object;
        c.occurred_at = rec->system_modstamp;
        copy_str(c.record_id, sizeof(c.record_id), rec->record_id);
        if (rec->email_ok)
                copy_str(c.email, sizeof(c.email), rec->email);
        if (lead) {
                c.is_converted = rec->is_converted;
                if (rec->is_converted == OSY_TRI_TRUE)
                        copy_str(c.converted_contact_id,
                                 sizeof(c.converted_contact_id),
                                 rec->converted_contact_id);
        }
        c.opt_out = rec->opt_out;

        /* A poll cannot tell which field changed: the stored state is
         * what separates a real change from an unrelated edit. */
        if (rec->opt_out != OSY_TRI_UNSET &&
            (known_opt != OSY_TRI_UNSET ? known_opt != rec->opt_out
                                        : rec->opt_out == OSY_TRI_TRUE)) {
                c.kind   = OSY_SF_OPT_OUT_CHANGED;
                out[n++] = c;
        }
        if (lead && rec->is_converted == OSY_TRI_TRUE &&
            rec->converted_contact_id[0] && known_conv != OSY_TRI_TRUE) {
                c.kind   = OSY_SF_LEAD_CONVERTED;
                out[n++] = c;
        }
        return n;
}

/* ---- SOQL ------------------------------------------------------------- */

/* What sf-ingest reads of each object: Contacts have no conversion
 * fields, and asking for them would be INVALID_FIELD. */
static const char *select_list(osy_sf_object_t object)
{
        return object == OSY_SF_LEAD
                   ? "SELECT Id, Email, HasOptedOutOfEmail, IsConverted, "
                     "ConvertedContactId, SystemModstamp FROM Lead"
                   : "SELECT Id, Email, HasOptedOutOfEmail, SystemModstamp "
                     "FROM Contact";
}

osy_err_t osy_sfi_soql_by_ids(osy_sf_object_t object,
                              const char (*ids)[OSY_SFI_ID_BUFSZ], size_t n,
                              char **out)
{
        const char *sel = select_list(object);
        size_t cap      = strlen(sel) + 32 + n * (OSY_SFI_ID_BUFSZ + 3);
        char *s;
        size_t off;

        *out = NULL;
        if (!n || (object != OSY_SF_CONTACT && object != OSY_SF_LEAD))
                return OSY_ERR_INVALID;
        for (size_t i = 0; i < n; i++)
                if (!osy_sfi_id_valid(ids[i]))
                        return OSY_ERR_INVALID;
        if (!(s = malloc(cap)))
                return OSY_ERR_NOMEM;
        off = (size_t)snprintf(s, cap, "%s WHERE Id IN (", sel);
        for (size_t i = 0; i < n; i++)
                off += (size_t)snprintf(s + off, cap - off, "%s'%s'",
                                        i ? ", " : "", ids[i]);
        snprintf(s + off, cap - off, ")");
        *out = s;
        return OSY_OK;
}

osy_err_t osy_sfi_soql_since(osy_sf_object_t object, int64_t from_ms,
                             char **out)
{
        char ts[OSY_TIME_BUFSZ];
        size_t cap = 256;
        char *s;

        *out = NULL;
        if (object != OSY_SF_CONTACT && object != OSY_SF_LEAD)
                return OSY_ERR_INVALID;
        if (from_ms < 0)
                from_ms = 0;
        /* Whole seconds, rounded down: ">=" then only re-reads a little
         * more, never less. */
        if (osy_time_format_ms(from_ms - from_ms % 1000, ts, sizeof(ts)))
                return OSY_ERR_INVALID;
        /* "2026-11-26T04:13:00.000Z" -> "2026-11-26T04:13:00Z" */
        memmove(ts + 19, ts + 23, 2);
        if (!(s = malloc(cap)))
                return OSY_ERR_NOMEM;
        snprintf(s, cap,
                 "%s WHERE SystemModstamp >= %s ORDER BY SystemModstamp, Id",
                 select_list(object), ts);
        *out = s;
        return OSY_OK;
}

osy_err_t osy_sfi_query_path(const char *api_version, const char *soql,
                             char **out)
{
        static const char hex[] = "0123456789ABCDEF";
        size_t n                = strlen(soql);
        size_t cap = sizeof("/services/data/v/query?q=") + strlen(api_version) +
                     3 * n + 1;
        char *s = malloc(cap);
        size_t off;

        *out = NULL;
        if (!s)
                return OSY_ERR_NOMEM;
        off = (size_t)snprintf(s, cap,
                               "/services/data/v%s/query?q=", api_version);
        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)soql[i];
                if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
                    ch == '_' || ch == '~') {
                        s[off++] = (char)ch;
                } else {
                        /* Everything else, '+' included: a literal '+'
                         * would be read as a space. */
                        s[off++] = '%';
                        s[off++] = hex[ch >> 4];
                        s[off++] = hex[ch & 15];
                }
        }
        s[off] = '\0';
        *out   = s;
        return OSY_OK;
}

osy_err_t osy_sfi_lookup_path(const char *api_version, osy_sf_object_t object,
                              const char (*ids)[OSY_SFI_ID_BUFSZ], size_t n,
                              size_t max_len, size_t *k, char **path)
{
        size_t want = n < OSY_SFI_IN_MAX ? n : OSY_SFI_IN_MAX;
        osy_err_t err;

        *path = NULL;
        *k    = 0;
        while (want > 0) {
                char *soql = NULL;
                size_t len;

                if ((err = osy_sfi_soql_by_ids(object, ids, want, &soql)))
                        return err;
                err = osy_sfi_query_path(api_version, soql, path);
                free(soql);
                if (err)
                        return err;
                if ((len = strlen(*path)) <= max_len) {
                        *k = want;
                        return OSY_OK;
                }
                free(*path);
                *path = NULL;
                /* Every id costs about the same: scale down, then step. */
                if (want == 1)
                        break;
                want = want * max_len / len < want ? want * max_len / len
                                                   : want - 1;
                if (!want)
                        want = 1;
        }
        return OSY_ERR_TOO_LARGE;
}

/* A JSON boolean as a tri-state; null or any other type is UNSET. */
static osy_tri_t json_tri(const cJSON *v)
{
        if (!cJSON_IsBool(v))
                return OSY_TRI_UNSET;
        return cJSON_IsTrue(v) ? OSY_TRI_TRUE : OSY_TRI_FALSE;
}

/* One query row. Only a valid Id is required: an unusable Email or
 * SystemModstamp is flagged on the record and decided on by the caller.
 * Field names use the case-insensitive lookup, as SOQL itself does. */
static int record_parse(const cJSON *r, osy_sf_object_t object,
                        struct osy_sfi_record *out)
{
        char err[OSY_ERRSTR_SIZE];
        const cJSON *v;

        memset(out, 0, sizeof(*out));
        out->object          = object;
        out->system_modstamp = -1;
        v                    = cJSON_GetObjectItem(r, "Id");
        if (!cJSON_IsString(v) || !osy_sfi_id_valid(v->valuestring))
                return -1;
        copy_str(out->record_id, sizeof(out->record_id), v->valuestring);
        v = cJSON_GetObjectItem(r, "Email");
        if (!cJSON_IsString(v) || !v->valuestring[0])
                out->email_null = 1;
        else if (!osy_email_normalise(v->valuestring, out->email,
                                      sizeof(out->email), err, sizeof(err)))
                out->email_ok = 1;
        out->opt_out = json_tri(cJSON_GetObjectItem(r, "HasOptedOutOfEmail"));
        if (object == OSY_SF_LEAD) {
                out->is_converted =
                    json_tri(cJSON_GetObjectItem(r, "IsConverted"));
                v = cJSON_GetObjectItem(r, "ConvertedContactId");
                if (cJSON_IsString(v) && osy_sfi_id_valid(v->valuestring))
                        copy_str(out->converted_contact_id,
                                 sizeof(out->converted_contact_id),
                                 v->valuestring);
        }
        v = cJSON_GetObjectItem(r, "SystemModstamp");
        if (cJSON_IsString(v) &&
            osy_time_parse(v->valuestring, &out->system_modstamp, err,
                           sizeof(err)))
                out->system_modstamp = -1;
        return 0;
}

osy_err_t osy_sfi_page_parse(const char *body, size_t len,
                             osy_sf_object_t object, struct osy_sfi_page *out,
                             char *errstr, size_t errstr_size)
{
        cJSON *root = cJSON_ParseWithLength(body, len);
        const cJSON *recs, *v, *r;
        osy_err_t err = OSY_OK;
        int n;

        memset(out, 0, sizeof(*out));
        if (!cJSON_IsObject(root)) {
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "query: answer is not a JSON object");
                goto out;
        }
        recs = cJSON_GetObjectItemCaseSensitive(root, "records");
        if (!cJSON_IsArray(recs)) {
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "query: answer has no records array");
                goto out;
        }
        out->done =
            !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(root, "done"));
        v = cJSON_GetObjectItemCaseSensitive(root, "nextRecordsUrl");
        /* Missing and null mean the same: the last page. */
        if (!out->done && cJSON_IsString(v) && v->valuestring[0] == '/' &&
            !(out->next_url = strdup(v->valuestring))) {
                err = OSY_ERR_NOMEM;
                goto out;
        }
        if (!out->done && !out->next_url) {
                err = osy_err_set(OSY_ERR_INVALID, errstr, errstr_size,
                                  "query: done is false but nextRecordsUrl "
                                  "is missing");
                goto out;
        }
        n = cJSON_GetArraySize(recs);
        if (n > 0 &&
            !(out->records = calloc((size_t)n, sizeof(*out->records)))) {
                err = OSY_ERR_NOMEM;
                goto out;
        }
        cJSON_ArrayForEach(r, recs)
        {
                if (!cJSON_IsObject(r) ||
                    record_parse(r, object, &out->records[out->record_cnt])) {
                        out->bad++;
                        continue;
                }
                out->record_cnt++;
        }
out:
        cJSON_Delete(root);
        if (err)
                osy_sfi_page_clear(out);
        return err;
}

void osy_sfi_page_clear(struct osy_sfi_page *pg)
{
        if (!pg)
                return;
        free(pg->records);
        free(pg->next_url);
        memset(pg, 0, sizeof(*pg));
}

/* ---- envelope --------------------------------------------------------- */

osy_err_t osy_sfi_change_encode(const struct osy_sfi_change *c,
                                const char *tenant, char **jsonp, size_t *lenp,
                                char *key, char *id, char *errstr,
                                size_t errstr_size)
{
        struct osy_msg m;
        struct osy_sf_event *e = &m.sf_event;
        osy_err_t err;

        *jsonp = NULL;
        osy_msg_init(&m, OSY_MSG_SF_EVENT);
        if ((err = osy_msg_set_envelope(&m, tenant, c->email, OSY_SRC_SF,
                                        c->occurred_at, errstr, errstr_size)))
                goto out;
        e->kind                   = c->kind;
        e->object                 = c->object;
        e->has_opted_out_of_email = c->opt_out;
        e->is_converted =
            c->object == OSY_SF_LEAD ? c->is_converted : OSY_TRI_UNSET;
        e->echo = c->echo;
        if ((err = osy_msg_strset(&e->record_id, c->record_id)) ||
            (c->converted_contact_id[0] &&
             (err = osy_msg_strset(&e->converted_contact_id,
                                   c->converted_contact_id))) ||
            (c->change_origin[0] &&
             (err = osy_msg_strset(&e->change_origin, c->change_origin))) ||
            (c->replay_id[0] &&
             (err = osy_msg_strset(&e->replay_id, c->replay_id))))
                goto out;
        if ((err = osy_msg_finalize(&m, errstr, errstr_size)) ||
            (err = osy_msg_encode(&m, jsonp, lenp, errstr, errstr_size)))
                goto out;
        if (id)
                memcpy(id, m.id, OSY_ID_BUFSZ);
        err = osy_partition_key(tenant, m.email, key, OSY_PARTITION_KEY_BUFSZ);
        if (err) {
                free(*jsonp);
                *jsonp = NULL;
        }
out:
        osy_msg_clear(&m);
        return err;
}
