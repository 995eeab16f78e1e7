/*
 * check_tenants.c - loads each tenants file named on the command line the
 * way a worker does at start (osy_tenants_load_file), so tests/deploy can
 * prove the files the deployment kit ships are ones the workers accept.
 */
#include <stdio.h>

#include "optsync/err.h"
#include "optsync/tenants.h"

int main(int argc, char **argv)
{
        int bad = 0;

        if (argc < 2) {
                fputs("usage: check_tenants FILE...\n", stderr);
                return 2;
        }
        for (int i = 1; i < argc; i++) {
                char errstr[OSY_ERRSTR_SIZE];
                osy_tenants_t *ts = NULL;

                if (osy_tenants_load_file(&ts, argv[i], errstr,
                                          sizeof(errstr)) != OSY_OK) {
                        fprintf(stderr, "%s: %s\n", argv[i], errstr);
                        bad = 1;
                        continue;
                }
                printf("%s: %zu tenant(s)\n", argv[i], osy_tenants_count(ts));
                osy_tenants_destroy(ts);
        }
        return bad;
}
