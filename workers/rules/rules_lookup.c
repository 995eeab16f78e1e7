/*
 * rules_lookup.c - fill a rules cache miss from the AC API: the contact,
 * its active lists, its qualifying tags, the type of a bounce. One AC
 * client per tenant, all sharing the AC rate limiter.
 */
#include "rules_lookup.h"

#include <stdlib.h>
#include <string.h>

#include "optsync/ac_client.h"
#include "optsync/log.h"

/* The bounce type object AC's bounce logs point to for a hard bounce
 * (the sandbox's model: 1 hard, 2 soft; UNCONFIRMED for the real AC). */
#define BOUNCE_TYPE_HARD "1"

struct client_slot {
        char *tenant;
        osy_ac_client_t *client;
};

struct osy_rules_ac_s {
        struct osy_rules_ac_opts opts;
        struct client_slot *slots;
        size_t slots_cnt;
        uint64_t calls_closed; /* calls of clients no longer kept */
};

void osy_rules_lookup_clear(struct osy_rules_lookup *lk)
{
        if (!lk)
                return;
        for (size_t i = 0; i < lk->lists_cnt; i++)
                free(lk->lists[i]);
        free(lk->lists);
        memset(lk, 0, sizeof(*lk));
}

osy_err_t osy_rules_ac_new(osy_rules_ac_t **ap,
                           const struct osy_rules_ac_opts *opts, char *errstr,
                           size_t errstr_size)
{
        osy_rules_ac_t *a = calloc(1, sizeof(*a));

        *ap = NULL;
        if (!a)
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "rules ac: out of memory");
        if (opts)
                a->opts = *opts;
        *ap = a;
        return OSY_OK;
}

void osy_rules_ac_destroy(osy_rules_ac_t *a)
{
        if (!a)
                return;
        for (size_t i = 0; i < a->slots_cnt; i++) {
                free(a->slots[i].tenant);
                osy_ac_client_destroy(a->slots[i].client);
        }
        free(a->slots);
        free(a);
}

uint64_t osy_rules_ac_calls(const osy_rules_ac_t *a)
{
        uint64_t n = a->calls_closed;
        for (size_t i = 0; i < a->slots_cnt; i++) {
                struct osy_ac_client_stats st;
                osy_ac_client_get_stats(a->slots[i].client, &st);
                n += st.calls;
        }
        return n;
}

/* The tenant's client, made on first use. */
static osy_err_t client_for(osy_rules_ac_t *a, const char *tenant,
                            osy_ac_client_t **cp, char *errstr,
                            size_t errstr_size)
{
        const struct osy_tenant *t;
        struct osy_ac_client_opts co = {0};
        struct client_slot *ns;
        osy_err_t err;

        for (size_t i = 0; i < a->slots_cnt; i++) {
                if (!strcmp(a->slots[i].tenant, tenant)) {
                        *cp = a->slots[i].client;
                        return OSY_OK;
                }
        }
        t = a->opts.tenants ? osy_tenants_find(a->opts.tenants, tenant) : NULL;
        if (!t || !t->has_ac || !t->ac.base_url || !t->ac.api_token)
                return osy_err_set(OSY_ERR_PERMANENT, errstr, errstr_size,
                                   "tenant '%s' has no AC credentials "
                                   "(OPTSYNC_TENANTS_FILE): cannot look up",
                                   tenant);
        co.base_url            = t->ac.base_url;
        co.api_token           = t->ac.api_token;
        co.tenant              = tenant;
        co.limiter             = a->opts.limiter;
        co.limiter_max_wait_ms = a->opts.limiter_max_wait_ms;
        co.http                = a->opts.http;
        if (!(ns = realloc(a->slots, (a->slots_cnt + 1) * sizeof(*ns))))
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "rules ac: out of memory");
        a->slots = ns;
        memset(&ns[a->slots_cnt], 0, sizeof(*ns));
        if (!(ns[a->slots_cnt].tenant = strdup(tenant)))
                return osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                   "rules ac: out of memory");
        if ((err = osy_ac_client_new(&ns[a->slots_cnt].client, &co, errstr,
                                     errstr_size))) {
                free(ns[a->slots_cnt].tenant);
                return err;
        }
        *cp = ns[a->slots_cnt++].client;
        return OSY_OK;
}

/* Unknown bounce type: the contact's hard-bounce counter, else the bounce
 * log of this campaign. */
static osy_err_t resolve_bounce(osy_ac_client_t *c, const struct osy_msg *ev,
                                const struct osy_ac_contact *contact, int *hard,
                                char *errstr, size_t errstr_size)
{
        struct osy_ac_bounce_log *logs = NULL;
        const char *campaign =
            ev->type == OSY_MSG_AC_EVENT ? ev->ac_event.campaign_id : NULL;
        size_t n = 0;
        osy_err_t err;

        *hard = contact->bounced_hard > 0;
        if (*hard)
                return OSY_OK;
        if ((err = osy_ac_contact_bounce_logs(c, contact->id, &logs, &n, errstr,
                                              errstr_size)))
                return err;
        for (size_t i = 0; i < n && !*hard; i++)
                if ((!campaign || !strcmp(logs[i].campaign, campaign)) &&
                    !strcmp(logs[i].bounce, BOUNCE_TYPE_HARD))
                        *hard = 1;
        free(logs);
        return OSY_OK;
}

osy_err_t osy_rules_ac_lookup(void *opaque, const struct osy_msg *ev,
                              const struct osy_rules_person *known, int need,
                              struct osy_rules_lookup *out,
                              int64_t *retry_after_ms, char *errstr,
                              size_t errstr_size)
{
        osy_rules_ac_t *a             = opaque;
        osy_ac_client_t *c            = NULL;
        struct osy_ac_contact contact = {0};
        const char *cid               = NULL;
        int have_contact              = 0;
        osy_err_t err;

        *retry_after_ms = -1;
        memset(out, 0, sizeof(*out));
        if ((err = client_for(a, ev->tenant, &c, errstr, errstr_size)))
                return err;

        /* Which contact: the event names it, or the cache knows it, or
         * search by email. */
        if (ev->type == OSY_MSG_AC_EVENT && ev->ac_event.contact_id)
                cid = ev->ac_event.contact_id;
        else if (known && known->contact_id[0])
                cid = known->contact_id;
        if (!cid || (need & OSY_RULES_NEED_BOUNCE)) {
                err = cid ? osy_ac_get_contact(c, cid, &contact, errstr,
                                               errstr_size)
                          : osy_ac_find_contact(c, ev->email, &contact, errstr,
                                                errstr_size);
                if (err == OSY_ERR_NOT_FOUND) {
                        out->done = 1; /* no such contact: found = 0 */
                        return OSY_OK;
                }
                if (err)
                        goto fail;
                cid          = contact.id;
                have_contact = 1;
        }
        out->found = 1;
        snprintf(out->contact_id, sizeof(out->contact_id), "%s", cid);

        if (need & OSY_RULES_NEED_LISTS) {
                struct osy_ac_membership *m = NULL;
                size_t n = 0, active = 0;

                err = osy_ac_contact_lists(c, cid, &m, &n, errstr, errstr_size);
                if (err == OSY_ERR_NOT_FOUND) {
                        out->found = 0;
                        out->done  = 1;
                        return OSY_OK;
                }
                if (err)
                        goto fail;
                if (n && !(out->lists = calloc(n, sizeof(*out->lists)))) {
                        free(m);
                        err = osy_err_set(OSY_ERR_NOMEM, errstr, errstr_size,
                                          "rules ac: out of memory");
                        goto fail;
                }
                for (size_t i = 0; i < n; i++) {
                        if (m[i].status != OSY_AC_LIST_ACTIVE)
                                continue;
                        if (!(out->lists[active] = strdup(m[i].list))) {
                                free(m);
                                err = osy_err_set(OSY_ERR_NOMEM, errstr,
                                                  errstr_size,
                                                  "rules ac: out of memory");
                                goto fail;
                        }
                        out->lists_cnt = ++active;
                }
                free(m);
                out->have_lists = 1;
        }
        if (need & OSY_RULES_NEED_TAGS) {
                char **names = NULL;
                size_t n     = 0;

                err = osy_ac_contact_tag_names(c, cid, &names, &n, errstr,
                                               errstr_size);
                if (err == OSY_ERR_NOT_FOUND) {
                        osy_rules_lookup_clear(out);
                        out->done = 1;
                        return OSY_OK;
                }
                if (err)
                        goto fail;
                out->tag_mask =
                    osy_rules_tag_mask((const char *const *)names, n);
                out->have_tags = 1;
                osy_ac_strv_free(names, n);
        }
        if (need & OSY_RULES_NEED_BOUNCE) {
                if (!have_contact) /* unreachable: fetched above */
                        goto fail;
                if ((err = resolve_bounce(c, ev, &contact, &out->bounce_hard,
                                          errstr, errstr_size)))
                        goto fail;
                out->have_bounce = 1;
        }
        out->done = 1;
        return OSY_OK;
fail:
        *retry_after_ms = osy_ac_client_retry_after_ms(c);
        osy_rules_lookup_clear(out);
        return err ? err : OSY_ERR_PERMANENT;
}
