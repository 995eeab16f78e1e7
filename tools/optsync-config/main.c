/*
 * optsync-config - prints the configuration reference (docs/configuration.md)
 * and checks the current environment against it.
 */
#include "optsync/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Big enough for every key to have an error at once. */
#define CHECK_ERRSTR_SIZE 16384

static void usage(FILE *out)
{
        fputs("usage: optsync-config --markdown | --check | --help\n"
              "\n"
              "  --markdown  print the configuration reference "
              "(docs/configuration.md)\n"
              "  --check     validate the OPTSYNC_* environment variables;\n"
              "              print the effective configuration (secrets "
              "masked),\n"
              "              or every problem on stderr and exit 2\n"
              "  --help      print this text\n",
              out);
}

/* Prints the "; "-separated errors one per line. A value echoed inside a
 * message could itself contain "; " - then it just wraps a little early. */
static void print_errors(const char *errs)
{
        fputs("optsync-config: invalid configuration:\n", stderr);
        while (*errs) {
                const char *sep = strstr(errs, "; ");
                size_t n        = sep ? (size_t)(sep - errs) : strlen(errs);
                fprintf(stderr, "  %.*s\n", (int)n, errs);
                errs += n + (sep ? 2 : 0);
        }
}

/* Exit codes: 0 valid, 2 invalid configuration (or bad usage), 1 when
 * the check itself could not run (out of memory). The environment is the
 * process's own, so `kubectl exec POD -- optsync-config --check` shows what
 * a worker in that pod would see. */
static int check(void)
{
        static char errstr[CHECK_ERRSTR_SIZE];
        osy_config_t *cfg = NULL;
        osy_err_t err     = osy_config_load(&cfg, NULL, errstr, sizeof(errstr));

        if (err == OSY_ERR_INVALID) {
                print_errors(errstr);
                return 2;
        }
        if (err != OSY_OK) {
                fprintf(stderr, "optsync-config: %s\n", errstr);
                return 1;
        }
        osy_config_dump(cfg, stdout);
        osy_config_destroy(cfg);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc != 2) {
                usage(stderr);
                return 2;
        }
        /* --markdown reads no environment: the output depends only on the
         * table, which is what lets CTest compare it with the docs. */
        if (!strcmp(argv[1], "--markdown")) {
                osy_config_markdown(stdout);
                return fflush(stdout) ? 1 : 0;
        }
        if (!strcmp(argv[1], "--check"))
                return check();
        if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
                usage(stdout);
                return 0;
        }
        fprintf(stderr, "optsync-config: unknown option '%s'\n", argv[1]);
        usage(stderr);
        return 2;
}
