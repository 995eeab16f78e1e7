/*
 * main.c - optsync-sandbox: command line, signals and the server's
 * lifetime. Everything else lives in the optsync_sandbox library.
 */
#include "server_internal.h"

#include "optsync/log.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Every module entry point, referenced from the first object on the link
 * line: the linker then takes each one from the module that defines it
 * (ac_*.o, cometd.o, sf_*.o) before it reaches the weak stand-ins of
 * weak_defaults.o, which sorts after them in the archive. Without this,
 * server.o's references could be satisfied by the stand-ins first and the
 * real modules would silently be left out.
 */
struct module_anchor {
        struct sbx_ac *(*ac_new)(sbx_t *);
        void (*ac_free)(struct sbx_ac *);
        void (*ac_reset)(struct sbx_ac *);
        int (*ac_seed)(struct sbx_ac *, const char *, const cJSON *, char *,
                       size_t);
        cJSON *(*ac_dump)(struct sbx_ac *, const char *);
        void (*ac_handle)(sbx_t *, const struct sbx_req *, struct sbx_resp *);
        void (*ac_control)(sbx_t *, const struct sbx_req *, struct sbx_resp *);
        struct sbx_sf *(*sf_new)(sbx_t *);
        void (*sf_free)(struct sbx_sf *);
        void (*sf_reset)(struct sbx_sf *);
        int (*sf_seed)(struct sbx_sf *, const char *, const cJSON *, char *,
                       size_t);
        cJSON *(*sf_dump)(struct sbx_sf *, const char *);
        void (*sf_handle)(sbx_t *, const struct sbx_req *, struct sbx_resp *);
        void (*sf_control)(sbx_t *, const struct sbx_req *, struct sbx_resp *);
        struct sbx_cdc *(*cdc_new)(sbx_t *);
        void (*cdc_free)(struct sbx_cdc *);
        void (*cdc_reset)(struct sbx_cdc *);
        void (*cdc_publish)(sbx_t *, const char *, const char *, const char *,
                            const char *const *, size_t, const cJSON *, cJSON *,
                            const char *);
        void (*cometd_handle)(sbx_t *, const struct sbx_req *,
                              struct sbx_resp *);
};

__attribute__((used)) static const struct module_anchor module_anchor = {
    sbx_ac_new,    sbx_ac_free,     sbx_ac_reset,      sbx_ac_seed,
    sbx_ac_dump,   sbx_ac_handle,   sbx_ac_control,    sbx_sf_new,
    sbx_sf_free,   sbx_sf_reset,    sbx_sf_seed,       sbx_sf_dump,
    sbx_sf_handle, sbx_sf_control,  sbx_cdc_new,       sbx_cdc_free,
    sbx_cdc_reset, sbx_cdc_publish, sbx_cometd_handle,
};

#define MAX_SET 256

static void usage(FILE *out)
{
        fputs("usage: optsync-sandbox [options]\n"
              "A stateful ActiveCampaign + Salesforce simulator on one HTTP "
              "server.\n"
              "See docs/sandbox.md.\n\n"
              "  --port N          listen on port N (0, the default: any free "
              "port)\n"
              "  --bind ADDR       listen address (default 127.0.0.1)\n"
              "  --port-file PATH  write the port there once listening\n"
              "  --fixture PATH    load this JSON fixture at start\n"
              "  --seed N          seed of the random faults (default 1)\n"
              "  --set KEY=VALUE   a module option (repeatable; see "
              "docs/sandbox-ac.md,\n"
              "                    docs/sandbox-sf.md)\n"
              "  --max-body BYTES  request body cap, 413 above (default "
              "8 MiB)\n"
              "  --log-size N      request log entries kept (default 4096)\n"
              "  --verbose         log every request\n"
              "  --help            this text\n",
              out);
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
        char *end;
        unsigned long long v;

        if (!s || !*s || *s == '-')
                return -1;
        errno = 0;
        v     = strtoull(s, &end, 10);
        if (errno || *end || v > max)
                return -1;
        *out = v;
        return 0;
}

/* Write the port to a temporary file and rename it, so a reader never
 * sees a partial number. */
static int write_port_file(const char *path, int port)
{
        char tmp[4096];
        FILE *f;

        if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
                return -1;
        if (!(f = fopen(tmp, "w")))
                return -1;
        fprintf(f, "%d\n", port);
        if (fclose(f) != 0 || rename(tmp, path) != 0) {
                unlink(tmp);
                return -1;
        }
        return 0;
}

int main(int argc, char **argv)
{
        static const struct option longopts[] = {
            {"port", required_argument, NULL, 'p'},
            {"bind", required_argument, NULL, 'b'},
            {"port-file", required_argument, NULL, 'P'},
            {"fixture", required_argument, NULL, 'f'},
            {"seed", required_argument, NULL, 's'},
            {"set", required_argument, NULL, 'S'},
            {"max-body", required_argument, NULL, 'm'},
            {"log-size", required_argument, NULL, 'l'},
            {"verbose", no_argument, NULL, 'v'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0}};
        struct sbx_opts opts = {.seed = SBX_DEFAULT_SEED};
        struct sbx_kv set[MAX_SET];
        const char *port_file = NULL;
        char err[512];
        sigset_t sigs;
        sbx_t *sbx = NULL;
        uint64_t v;
        int opt, sig = 0;

        (void)module_anchor;
        osy_log_init("optsync-sandbox", OSY_LOG_INFO, stderr);
        while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                switch (opt) {
                case 'p':
                        if (parse_u64(optarg, 65535, &v))
                                goto bad_arg;
                        opts.port = (int)v;
                        break;
                case 'b':
                        opts.bind = optarg;
                        break;
                case 'P':
                        port_file = optarg;
                        break;
                case 'f':
                        opts.fixture_path = optarg;
                        break;
                case 's':
                        if (parse_u64(optarg, UINT64_MAX, &opts.seed))
                                goto bad_arg;
                        break;
                case 'S': {
                        char *eq = strchr(optarg, '=');

                        if (!eq || eq == optarg || opts.set_cnt == MAX_SET) {
                                fprintf(stderr,
                                        "optsync-sandbox: --set wants "
                                        "KEY=VALUE (at most %d), got \"%s\"\n",
                                        MAX_SET, optarg);
                                return 2;
                        }
                        /* Split in place: argv lives as long as main. */
                        *eq                     = '\0';
                        set[opts.set_cnt].key   = optarg;
                        set[opts.set_cnt].value = eq + 1;
                        opts.set_cnt++;
                        break;
                }
                case 'm':
                        if (parse_u64(optarg, (uint64_t)1 << 32, &v) || !v)
                                goto bad_arg;
                        opts.max_body = (size_t)v;
                        break;
                case 'l':
                        if (parse_u64(optarg, 1000000, &v) || !v)
                                goto bad_arg;
                        opts.log_size = (size_t)v;
                        break;
                case 'v':
                        opts.verbose = 1;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "optsync-sandbox: unexpected argument \"%s\"\n",
                        argv[optind]);
                usage(stderr);
                return 2;
        }
        opts.set = set;

        /* Block the stop signals in every thread (MHD's inherit the mask)
         * and take them here with sigwait(): no async-signal handler. */
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGTERM);
        sigaddset(&sigs, SIGINT);
        pthread_sigmask(SIG_BLOCK, &sigs, NULL);
        signal(SIGPIPE, SIG_IGN);

        if (sbx_server_start(&sbx, &opts, err, sizeof(err))) {
                osy_log_error("sandbox: %s", err);
                return 1;
        }
        if (port_file && write_port_file(port_file, sbx_server_port(sbx))) {
                osy_log_error("sandbox: cannot write port file %s: %s",
                              port_file, strerror(errno));
                sbx_server_free(sbx);
                return 1;
        }
        osy_log_info("sandbox: listening on %s (seed %llu)", sbx_base_url(sbx),
                     (unsigned long long)opts.seed);
        while (sigwait(&sigs, &sig) != 0)
                ;
        osy_log_info("sandbox: signal %d, stopping", sig);
        sbx_server_free(sbx);
        return 0;

bad_arg:
        fprintf(stderr, "optsync-sandbox: bad option value \"%s\"\n", optarg);
        usage(stderr);
        return 2;
}
