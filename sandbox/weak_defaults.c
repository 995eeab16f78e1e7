/*
 * weak_defaults.c - stand-ins for the module entry points, so the sandbox
 * links whatever modules exist: a module's own (strong) definitions
 * replace these. main.c references every entry point so the linker pulls
 * the real modules from the archive before this file (see main.c).
 */
#include "sandbox.h"

#define SBX_WEAK __attribute__((weak))

static void not_implemented(struct sbx_resp *resp)
{
        sbx_resp_text(resp, 501, "application/json",
                      "{\"message\":\"not implemented in this build\"}");
}

SBX_WEAK struct sbx_ac *sbx_ac_new(sbx_t *sbx)
{
        (void)sbx;
        return NULL;
}

SBX_WEAK void sbx_ac_free(struct sbx_ac *ac)
{
        (void)ac;
}

SBX_WEAK void sbx_ac_reset(struct sbx_ac *ac)
{
        (void)ac;
}

SBX_WEAK int sbx_ac_seed(struct sbx_ac *ac, const char *tenant,
                         const cJSON *fixture, char *err, size_t errsz)
{
        (void)ac;
        (void)tenant;
        (void)fixture;
        (void)err;
        (void)errsz;
        return 0;
}

SBX_WEAK cJSON *sbx_ac_dump(struct sbx_ac *ac, const char *tenant)
{
        (void)ac;
        (void)tenant;
        return NULL;
}

SBX_WEAK void sbx_ac_handle(sbx_t *sbx, const struct sbx_req *req,
                            struct sbx_resp *resp)
{
        (void)sbx;
        (void)req;
        not_implemented(resp);
}

SBX_WEAK void sbx_ac_control(sbx_t *sbx, const struct sbx_req *req,
                             struct sbx_resp *resp)
{
        (void)sbx;
        (void)req;
        not_implemented(resp);
}

SBX_WEAK struct sbx_sf *sbx_sf_new(sbx_t *sbx)
{
        (void)sbx;
        return NULL;
}

SBX_WEAK void sbx_sf_free(struct sbx_sf *sf)
{
        (void)sf;
}

SBX_WEAK void sbx_sf_reset(struct sbx_sf *sf)
{
        (void)sf;
}

SBX_WEAK int sbx_sf_seed(struct sbx_sf *sf, const char *tenant,
                         const cJSON *fixture, char *err, size_t errsz)
{
        (void)sf;
        (void)tenant;
        (void)fixture;
        (void)err;
        (void)errsz;
        return 0;
}

SBX_WEAK cJSON *sbx_sf_dump(struct sbx_sf *sf, const char *tenant)
{
        (void)sf;
        (void)tenant;
        return NULL;
}

SBX_WEAK void sbx_sf_handle(sbx_t *sbx, const struct sbx_req *req,
                            struct sbx_resp *resp)
{
        (void)sbx;
        (void)req;
        not_implemented(resp);
}

SBX_WEAK void sbx_sf_control(sbx_t *sbx, const struct sbx_req *req,
                             struct sbx_resp *resp)
{
        (void)sbx;
        (void)req;
        not_implemented(resp);
}

SBX_WEAK struct sbx_cdc *sbx_cdc_new(sbx_t *sbx)
{
        (void)sbx;
        return NULL;
}

SBX_WEAK void sbx_cdc_free(struct sbx_cdc *cdc)
{
        (void)cdc;
}

SBX_WEAK void sbx_cdc_reset(struct sbx_cdc *cdc)
{
        (void)cdc;
}

SBX_WEAK void sbx_cdc_publish(sbx_t *sbx, const char *tenant,
                              const char *entity, const char *change_type,
                              const char *const *record_ids, size_t record_cnt,
                              const cJSON *changed, cJSON *body,
                              const char *change_origin)
{
        (void)sbx;
        (void)tenant;
        (void)entity;
        (void)change_type;
        (void)record_ids;
        (void)record_cnt;
        (void)changed;
        (void)change_origin;
        cJSON_Delete(body); /* consumed, as the real one does */
}

SBX_WEAK void sbx_cometd_handle(sbx_t *sbx, const struct sbx_req *req,
                                struct sbx_resp *resp)
{
        (void)sbx;
        (void)req;
        not_implemented(resp);
}
