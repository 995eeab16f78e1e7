/*
 * ac-writer - applies ac.command messages (R4: unsubscribe the person from
 * every list it is active on) to ActiveCampaign, within the account's 5
 * requests per second shared by every replica, in bulk when a backlog
 * builds.
 */
#include <stdio.h>
#include <string.h>

#include "ac_writer.h"
#include "optsync/ac_client.h"
#include "optsync/ac_write.h"
#include "optsync/config.h"
#include "optsync/log.h"
#include "optsync/ratelimit.h"
#include "optsync/writer.h"

#define EXIT_FATAL 1

int main(int argc, char **argv)
{
        struct osy_writer_env env;
        struct osy_writer_opts wopts;
        struct acw_opts aopts;
        osy_config_t *cfg = NULL;
        osy_rl_t *rl = NULL, *bulk_rl = NULL;
        acw_t *acw = NULL;
        char errstr[4096];
        int rc = EXIT_FATAL;

        rc = osy_writer_main_begin(argc, argv, "ac-writer", &cfg, &env);
        if (rc != OSY_WRITER_MAIN_GO)
                goto out;
        rc = EXIT_FATAL;

        /* The same bucket, rate and burst as the rules' AC look-ups: every
         * AC call of every replica shares the account's 5 per second. */
        const char *prefix = osy_config_str(cfg, OSY_CFG_REDIS_KEY_PREFIX);
        struct osy_rl_opts rlo;
        osy_ac_rl_opts(cfg, prefix, &rlo);
        struct osy_rl_opts bulko = {
            .prefix    = prefix,
            .rate      = osy_config_int(cfg, OSY_CFG_AC_BULK_RATE_PER_MINUTE),
            .period_ms = 60000,
            .burst     = 1};
        if (osy_rl_new(&rl, env.redis, &rlo, errstr, sizeof(errstr)) ||
            osy_rl_new(&bulk_rl, env.redis, &bulko, errstr, sizeof(errstr))) {
                osy_log_error("ac-writer: %s", errstr);
                goto out;
        }
        memset(&aopts, 0, sizeof(aopts));
        aopts.tenants      = env.tenants;
        aopts.redis        = env.redis;
        aopts.redis_prefix = prefix;
        aopts.rl           = rl;
        aopts.bulk_rl      = bulk_rl;
        aopts.http         = env.http;
        aopts.bulk_threshold =
            (size_t)osy_config_int(cfg, OSY_CFG_AC_BULK_THRESHOLD);
        aopts.bulk_poll_ms = osy_config_ms(cfg, OSY_CFG_AC_BULK_POLL_INTERVAL);
        aopts.use_rules_state = 1;
        aopts.metrics         = env.metrics;
        if (acw_new(&acw, &aopts, errstr, sizeof(errstr))) {
                osy_log_error("ac-writer: %s", errstr);
                goto out;
        }

        memset(&wopts, 0, sizeof(wopts));
        wopts.stage    = OSY_STAGE_AC_WRITER;
        wopts.source   = OSY_SRC_AC_WRITER;
        wopts.cmd_type = OSY_MSG_AC_COMMAND;
        wopts.name     = "ac-writer";
        wopts.handler  = acw_handler(acw);
        if (osy_writer_env_start(
                &env, &wopts, osy_config_str(cfg, OSY_CFG_AC_WRITER_GROUP_ID),
                OSY_TOPIC_AC_COMMANDS, errstr, sizeof(errstr))) {
                osy_log_error("ac-writer: %s", errstr);
                goto out;
        }
        acw_set_writer(acw, env.writer);
        rc = osy_writer_env_run(&env);
out:
        /* The runtime's items hold handler state: close it first. */
        osy_writer_env_close(&env);
        acw_destroy(acw);
        osy_rl_destroy(bulk_rl);
        osy_rl_destroy(rl);
        osy_config_destroy(cfg);
        return rc;
}
