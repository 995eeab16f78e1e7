/*
 * sf-writer - applies sf.command messages (the desired HasOptedOutOfEmail
 * of a person) to every Contact and unconverted Lead with that email, in
 * sObject Collections calls of 200, within the org's daily allowance.
 */
#include <stdio.h>
#include <string.h>

#include "sf_writer.h"
#include "optsync/config.h"
#include "optsync/log.h"
#include "optsync/ratelimit.h"
#include "optsync/writer.h"

#define EXIT_FATAL 1

int main(int argc, char **argv)
{
        struct osy_writer_env env;
        struct osy_writer_opts wopts;
        struct sfw_opts sopts;
        osy_config_t *cfg = NULL;
        osy_rl_t *rl      = NULL;
        sfw_t *sfw        = NULL;
        char errstr[4096];
        int rc = EXIT_FATAL;

        rc = osy_writer_main_begin(argc, argv, "sf-writer", &cfg, &env);
        if (rc != OSY_WRITER_MAIN_GO)
                goto out;
        rc = EXIT_FATAL;

        /* Every SF call of every replica shares the org's call rate. */
        int64_t rate = osy_config_int(cfg, OSY_CFG_SF_RATE_PER_SECOND);
        struct osy_rl_opts rlopts = {
            .prefix    = osy_config_str(cfg, OSY_CFG_REDIS_KEY_PREFIX),
            .rate      = rate,
            .period_ms = 1000,
            .burst     = rate,
            .skew_ms   = 0};
        if (osy_rl_new(&rl, env.redis, &rlopts, errstr, sizeof(errstr))) {
                osy_log_error("sf-writer: %s", errstr);
                goto out;
        }
        memset(&sopts, 0, sizeof(sopts));
        sopts.tenants      = env.tenants;
        sopts.redis        = env.redis;
        sopts.redis_prefix = osy_config_str(cfg, OSY_CFG_REDIS_KEY_PREFIX);
        sopts.cache_ttl_ms = osy_config_ms(cfg, OSY_CFG_SF_RECORD_CACHE_TTL);
        sopts.rl           = rl;
        sopts.http         = env.http;
        sopts.reserve_pct =
            (int)osy_config_int(cfg, OSY_CFG_SF_DAILY_RESERVE_PERCENT);
        sopts.probe_ms = osy_config_ms(cfg, OSY_CFG_SF_QUOTA_PROBE_INTERVAL);
        sopts.lookup_chunk =
            (size_t)osy_config_int(cfg, OSY_CFG_SF_LOOKUP_CHUNK);
        sopts.metrics = env.metrics;
        if (sfw_new(&sfw, &sopts, errstr, sizeof(errstr))) {
                osy_log_error("sf-writer: %s", errstr);
                goto out;
        }

        memset(&wopts, 0, sizeof(wopts));
        wopts.stage    = OSY_STAGE_SF_WRITER;
        wopts.source   = OSY_SRC_SF_WRITER;
        wopts.cmd_type = OSY_MSG_SF_COMMAND;
        wopts.name     = "sf-writer";
        wopts.handler  = sfw_handler(sfw);
        if (osy_writer_env_start(
                &env, &wopts, osy_config_str(cfg, OSY_CFG_SF_WRITER_GROUP_ID),
                OSY_TOPIC_SF_COMMANDS, errstr, sizeof(errstr))) {
                osy_log_error("sf-writer: %s", errstr);
                goto out;
        }
        sfw_set_writer(sfw, env.writer);
        rc = osy_writer_env_run(&env);
out:
        /* The runtime's items hold handler state: close it first. */
        osy_writer_env_close(&env);
        sfw_destroy(sfw);
        osy_rl_destroy(rl);
        osy_config_destroy(cfg);
        return rc;
}
