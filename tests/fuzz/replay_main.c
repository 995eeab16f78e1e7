/*
 * replay_main.c - run every file of the fuzz corpus through the parser
 * once, in the normal build (gcc CI included): the seeds and any crash
 * reproducer added to the corpus stay regression tests.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_acwh.h"

static unsigned char *slurp(const char *path, size_t *len)
{
        FILE *f            = fopen(path, "rb");
        unsigned char *buf = NULL;
        long size;

        if (!f)
                return NULL;
        if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 &&
            fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)size + 1)) &&
            fread(buf, 1, (size_t)size, f) == (size_t)size) {
                *len = (size_t)size;
        } else {
                free(buf);
                buf = NULL;
        }
        fclose(f);
        return buf;
}

int main(int argc, char **argv)
{
        size_t files = 0;

        if (argc < 2) {
                fprintf(stderr, "usage: %s CORPUS_DIR...\n", argv[0]);
                return 2;
        }
        for (int a = 1; a < argc; a++) {
                DIR *d = opendir(argv[a]);
                struct dirent *e;

                if (!d) {
                        fprintf(stderr, "cannot open %s\n", argv[a]);
                        return 1;
                }
                while ((e = readdir(d))) {
                        char path[4096];
                        struct stat st;
                        unsigned char *buf;
                        size_t len = 0;

                        snprintf(path, sizeof(path), "%s/%s", argv[a],
                                 e->d_name);
                        if (stat(path, &st) || !S_ISREG(st.st_mode))
                                continue;
                        if (!(buf = slurp(path, &len))) {
                                fprintf(stderr, "cannot read %s\n", path);
                                closedir(d);
                                return 1;
                        }
                        LLVMFuzzerTestOneInput(buf, len);
                        free(buf);
                        files++;
                }
                closedir(d);
        }
        printf("replayed %zu corpus file(s)\n", files);
        return files ? 0 : 1;
}
