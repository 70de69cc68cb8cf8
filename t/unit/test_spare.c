/*
 * t/unit/test_spare.c — the pool of spare queue files: a spent file enters
 * the pool by rename and keeps its blocks within the keep limits (else it
 * is emptied), a taken spare is opened where it lies, spare_seal cuts
 * stale bytes, the pool holds at most `max` files of a kind, content and
 * envelope spares are kept apart, a given-back spare is reused, files left
 * by a previous run are adopted with their kinds and sizes, and a spare is
 * handed out only after a flush that began after it entered the pool.
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

static void unlink_spare(struct spares *s, const struct spare *sp)
{
    char p[256];
    spares_path(s, sp, p, sizeof p);
    unlink(p);
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

/* A flush of the pool's filesystem, as the queue reports its syncfs. */
static void flush(struct spares *s)
{
    spares_sync_end(s, spares_sync_begin(s));
}

static void test_put_take(void)
{
    char p[256], q[256], buf[32];
    struct spare sp;
    struct spares *s = spares_open(pool, 2, NULL);
    ok(s != NULL, "pool opened");
    is_int(spares_take(s, SPARE_MSG, &sp), -1, "an empty pool gives nothing");

    put_file("a", "old mail text");
    snprintf(p, sizeof p, "%s/a", dir);
    is_int(spares_put(s, SPARE_MSG, p), 0, "a spent file goes into the pool");
    ok(access(p, F_OK) != 0, "and is gone from its old place");
    is_int(spares_count(s), 1, "one spare");
    is_int(spares_bytes(s), 13, "it keeps its 13 octets (no truncate, no discard)");

    put_file("b", "x");
    put_file("c", "y");
    snprintf(p, sizeof p, "%s/b", dir);
    is_int(spares_put(s, SPARE_MSG, p), 0, "second spare");
    snprintf(p, sizeof p, "%s/c", dir);
    is_int(spares_put(s, SPARE_MSG, p), -1, "a full pool refuses");
    ok(access(p, F_OK) == 0, "and leaves the file for the caller to unlink");
    flush(s);

    int fd = spares_take(s, SPARE_MSG, &sp);
    ok(fd >= 0, "take opens a spare");
    is_int((int)sp.stale, 13, "the oldest comes out first, with its size");
    spares_path(s, &sp, q, sizeof q);
    ok(access(q, F_OK) == 0, "the spare is still in the pool directory");
    close(fd);
    spares_give_back(s, &sp, sp.stale);
    is_int(spares_count(s), 2, "a spare given back is in the pool again");

    fd = spares_take(s, SPARE_MSG, &sp);
    is_int((int)sp.stale, 1, "then the second");
    close(fd);
    fd = spares_take(s, SPARE_MSG, &sp);
    is_int((int)sp.stale, 13, "then the one given back, with its 13 stale octets");
    ok(pwrite(fd, "hello", 5, 0) == 5, "it is writable from offset 0");
    is_int(spare_seal(fd, sp.stale, 5), 0, "seal cuts it");
    close(fd);
    spares_path(s, &sp, q, sizeof q);
    is_int(size_of(q), 5, "to exactly what was written");
    fd = open(q, O_RDONLY);
    memset(buf, 0, sizeof buf);
    ok(fd >= 0 && read(fd, buf, sizeof buf) == 5 && !strcmp(buf, "hello"), "no stale byte left");
    if (fd >= 0)
        close(fd);
    is_int(spare_seal(-1, 5, 5), 0, "seal does nothing when nothing is stale");
    spares_close(s);
}

static void test_limits(void)
{
    char p[256];
    struct spares *s = spares_open(pool, 16, NULL);
    size_t before = spares_count(s);
    snprintf(p, sizeof p, "%s/big", dir);
    int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    ok(fd >= 0 && ftruncate(fd, SPARE_KEEP_FILE + 1) == 0, "a file over the per-file limit");
    if (fd >= 0)
        close(fd);
    long long bytes = spares_bytes(s);
    is_int(spares_put(s, SPARE_MSG, p), 0, "enters the pool");
    is_int(spares_count(s), before + 1, "as a spare");
    ok(spares_bytes(s) == bytes, "but emptied: the pool holds no more octets");
    spares_close(s);
}

/* Sparse files: the pool counts st_size, so 64 MiB of them cost no disk. */
static void test_total_limit(void)
{
    char sub[160], p[256];
    snprintf(sub, sizeof sub, "%s/free4", dir);
    mkdir(sub, 0700);
    struct spares *s = spares_open(sub, 200, NULL);
    int files = (int)(SPARE_KEEP_TOTAL / SPARE_KEEP_FILE);
    int all = 1;
    for (int i = 0; i <= files; i++) {
        snprintf(p, sizeof p, "%s/t%d", dir, i);
        int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0600);
        if (fd < 0 || ftruncate(fd, SPARE_KEEP_FILE) != 0 || spares_put(s, SPARE_MSG, p) != 0)
            all = 0;
        if (fd >= 0)
            close(fd);
    }
    ok(all, "%d files of the per-file limit enter the pool", files + 1);
    is_int(spares_count(s), files + 1, "all of them as spares");
    ok(spares_bytes(s) == SPARE_KEEP_TOTAL, "but the pool keeps no more than its total");
    int emptied = 0;
    struct spare sp;
    spares_sync_end(s, spares_sync_begin(s));
    for (int fd; (fd = spares_take(s, SPARE_MSG, &sp)) >= 0; close(fd))
        emptied += sp.stale == 0;
    is_int(emptied, 1, "the one over it was emptied");
    spares_close(s);
}

static void test_kinds(void)
{
    char p[256];
    struct spare sp;
    struct spares *s = spares_open(pool, 16, NULL);
    put_file("env1", "hato-envelope 1");
    snprintf(p, sizeof p, "%s/env1", dir);
    is_int(spares_put(s, SPARE_ENV, p), 0, "an envelope file enters the pool");
    is_int(spares_count(s), 4, "next to three content spares");
    flush(s);
    int fd = spares_take(s, SPARE_ENV, &sp);
    ok(fd >= 0 && sp.kind == SPARE_ENV && sp.stale == 15, "an envelope takes the envelope spare");
    if (fd >= 0)
        close(fd);
    errno = 0;
    ok(spares_take(s, SPARE_ENV, &sp) < 0, "and never a content spare");
    spares_close(s);
}

static void test_epochs(void)
{
    char p[256], pool2[160];
    struct spare sp;
    snprintf(pool2, sizeof pool2, "%s/free2", dir);
    mkdir(pool2, 0700);
    put_file("free2/m7", "old");
    struct spares *s = spares_open(pool2, 16, NULL);
    int fd = spares_take(s, SPARE_MSG, &sp);
    ok(fd >= 0 && sp.stale == 3, "a spare found at start is handed out at once");
    if (fd >= 0)
        close(fd);
    unlink_spare(s, &sp);
    put_file("late", "spent");
    snprintf(p, sizeof p, "%s/late", dir);
    unsigned long long during = spares_sync_begin(s);    /* a flush already running */
    is_int(spares_put(s, SPARE_MSG, p), 0, "a spent file enters the pool");
    is_int(spares_take(s, SPARE_MSG, &sp), -1, "it is not handed out before any flush");
    spares_sync_end(s, during);
    is_int(spares_take(s, SPARE_MSG, &sp), -1, "nor after a flush that began before it came");
    (void)spares_sync_begin(s);            /* a flush that failed: never ended */
    is_int(spares_take(s, SPARE_MSG, &sp), -1, "nor after a failed flush");
    flush(s);
    fd = spares_take(s, SPARE_MSG, &sp);
    ok(fd >= 0 && sp.stale == 5, "but after a flush that began after it");
    if (fd >= 0)
        close(fd);
    spares_give_back(s, &sp, 5);
    fd = spares_take(s, SPARE_MSG, &sp);
    ok(fd >= 0 && sp.stale == 5, "a spare given back keeps its epoch (its name never moved)");
    if (fd >= 0)
        close(fd);
    spares_close(s);
}

static void test_adopt_not_live(void)
{
    char live_dir[160], a[256], b[256];
    const char *live[] = { live_dir, NULL };
    snprintf(live_dir, sizeof live_dir, "%s/msg", dir);
    mkdir(live_dir, 0700);
    snprintf(a, sizeof a, "%s/free3", dir);
    mkdir(a, 0700);
    /* as after a power loss during a commit's flush: the spare's old name in
     * the pool survived next to its new one in msg/ */
    put_file("free3/m1", "queued mail");
    snprintf(a, sizeof a, "%s/free3/m1", dir);
    snprintf(b, sizeof b, "%s/msg/ID1", dir);
    ok(link(a, b) == 0, "a file with a name in the pool and one in msg/");
    put_file("free3/m2", "a real spare");
    snprintf(a, sizeof a, "%s/free3", dir);
    struct spares *s = spares_open(a, 8, live);
    is_int(spares_count(s), 1, "only the real spare is adopted");
    snprintf(a, sizeof a, "%s/free3/m1", dir);
    ok(access(a, F_OK) != 0, "the stale name is removed from the pool");
    is_int(size_of(b), 11, "and the queued file is untouched");
    spares_close(s);
}

static void test_adopt(void)
{
    put_file("free/junk", "z");
    put_file("free/17", "a number without a kind");
    struct spares *s = spares_open(pool, 8, NULL);
    is_int(spares_count(s), 4, "a new pool adopts the spares");
    is_int(count_pool(), 4, "and removes what is not a spare");
    is_int(spares_bytes(s), 21, "with their sizes (1 + 5 + 0 + 15 octets)");
    struct spare sp;
    int fd = spares_take(s, SPARE_ENV, &sp);
    ok(fd >= 0 && sp.stale == 15, "and their kinds");
    if (fd >= 0)
        close(fd);
    spares_close(s);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/hato-test-spare-XXXXXX");
    ok(mkdtemp(dir) != NULL, "temp dir");
    snprintf(pool, sizeof pool, "%s/free", dir);
    mkdir(pool, 0700);
    test_put_take();
    test_limits();
    test_total_limit();
    test_kinds();
    test_epochs();
    test_adopt_not_live();
    test_adopt();
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return tap_done();
}
