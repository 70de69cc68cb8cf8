/*
 * t/unit/test_spare.c — the pool of spare queue files: a recycled file is
 * empty, a spare never replaces an existing file, the pool holds at most
 * `max` files, and files left by a previous run are adopted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/spare.h"
#include "t/unit/tap.h"

static char dir[64], pool[128];

static void put_file(const char *name, const char *text)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static long size_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static int count_pool(void)
{
    char cmd[300];
    int n = -1;
    snprintf(cmd, sizeof cmd, "ls %s | wc -l", pool);
    FILE *f = popen(cmd, "r");
    if (f) {
        if (fscanf(f, "%d", &n) != 1)
            n = -1;
        pclose(f);
    }
    return n;
}

int main(void)
{
    char p[256], q[256];
    snprintf(dir, sizeof dir, "/tmp/hato-test-spare-XXXXXX");
    ok(mkdtemp(dir) != NULL, "temp dir");
    snprintf(pool, sizeof pool, "%s/free", dir);
    mkdir(pool, 0700);

    struct spares *s = spares_open(pool, 2);
    ok(s != NULL, "pool opened");
    snprintf(p, sizeof p, "%s/new1", dir);
    is_int(spares_take(s, p), -1, "an empty pool gives nothing");

    put_file("a", "secret mail");
    snprintf(p, sizeof p, "%s/a", dir);
    is_int(spares_put(s, p), 0, "a spent file goes into the pool");
    ok(access(p, F_OK) != 0, "and is gone from its old place");
    is_int(spares_count(s), 1, "one spare");
    snprintf(q, sizeof q, "%s/0", pool);
    is_int(size_of(q), 0, "the spare is empty (no mail kept)");

    put_file("b", "x");
    put_file("c", "y");
    snprintf(p, sizeof p, "%s/b", dir);
    is_int(spares_put(s, p), 0, "second spare");
    snprintf(p, sizeof p, "%s/c", dir);
    is_int(spares_put(s, p), -1, "a full pool refuses");
    ok(access(p, F_OK) == 0, "and leaves the file for the caller to unlink");

    put_file("taken", "exists");
    snprintf(p, sizeof p, "%s/taken", dir);
    errno = 0;
    ok(spares_take(s, p) < 0 && errno == EEXIST, "a spare never replaces an existing file");
    is_int(size_of(p), 6, "the existing file is untouched");
    is_int(spares_count(s), 2, "the spare went back into the pool");

    snprintf(p, sizeof p, "%s/fresh", dir);
    int fd = spares_take(s, p);
    ok(fd >= 0, "take renames a spare into place");
    ok(write(fd, "hello", 5) == 5, "and it is writable");
    close(fd);
    is_int(size_of(p), 5, "with exactly what was written");
    is_int(spares_count(s), 1, "one spare left");
    spares_close(s);

    put_file("free/junk", "z");
    s = spares_open(pool, 8);
    is_int(spares_count(s), 1, "a new pool adopts the numbered spares");
    is_int(count_pool(), 1, "and removes what is not a spare");
    spares_close(s);

    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return tap_done();
}
