/*
 * bench/store-index.c — the two on-disk forms of the folder index, timed on
 * the disk DIR is on, both with the durability they need:
 *   log:   store/index.c as it is (append-only checksummed records, one
 *          write + fdatasync per change, compaction by tmp + rename);
 *   naive: the whole index rewritten per change (tmp file, write, fsync,
 *          rename, fsync the folder), the same fields as text lines.
 * Three figures each: appending N messages one by one (the rename into new/
 * included in both), flag changes on a folder of N (the rename into cur/
 * included), and opening + loading an N-message index.  The naive rewrite
 * is O(N) per change, so its append run stops at NAIVE_MAX messages and its
 * per-change cost is also given at size N.
 * Usage: store-index DIR [N] [FLAGS] [NAIVE_MAX]   (bench/RESULTS.md)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/fsutil.h"
#include "store/index.h"
#include "store/maildir.h"

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void msg_name(char *buf, size_t len, int i)
{
    snprintf(buf, len, "1700000000.M%06dP4242Q%d.bench.test,S=1024", i, i);
}

static void put_tmp(const char *folder, const char *name, char *path, size_t len)
{
    int fd;

    snprintf(path, len, "%s/tmp/%s", folder, name);
    fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    if (fd < 0 || write(fd, "Subject: b\r\n\r\nbody\r\n", 20) != 20 || close(fd) != 0)
        die(path);
}

/* ---- log: store/index.c ------------------------------------------------ */

static void bench_log(const char *dir, int n, int nflags)
{
    char folder[512], name[128], path[1024];
    struct store_newmsg m = { 1024, 1700000000, 20 };
    struct store_index *ix;
    double t0, t1;

    snprintf(folder, sizeof(folder), "%s/log", dir);
    if (maildir_create(folder) != 0)
        die(folder);
    t0 = now();
    for (int i = 0; i < n; i++) {
        msg_name(name, sizeof(name), i);
        put_tmp(folder, name, path, sizeof(path));
        if (store_index_deliver(folder, path, name, &m, 0) != 0)
            die("deliver");
    }
    t1 = now();
    printf("log    append %6d one by one: %8.3f s  (%.0f/s)\n", n, t1 - t0, n / (t1 - t0));
    t0 = now();
    if (store_index_open(folder, &ix) != 0)
        die("open");
    t1 = now();
    printf("log    open+load %6zu:           %8.2f ms\n", ix->n, (t1 - t0) * 1e3);
    t0 = now();
    for (int i = 0; i < nflags; i++)
        if (store_index_set_flags(ix, (uint32_t)(i * 7 % n) + 1,
                                  i & 1 ? STORE_F_SEEN : STORE_F_FLAGGED, 0) != 0)
            die("set_flags");
    t1 = now();
    printf("log    %5d flag changes on %d: %8.3f s  (%.2f ms each)\n", nflags, n, t1 - t0,
           (t1 - t0) * 1e3 / nflags);
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", folder, STORE_INDEX_FILE);
    if (stat(path, &st) == 0)
        printf("log    file after the flag changes: %lld octets\n", (long long)st.st_size);
    store_index_close(ix);
    t0 = now();
    if (store_index_open(folder, &ix) != 0)
        die("open");
    t1 = now();
    printf("log    open+load %6zu after flags: %6.2f ms\n", ix->n, (t1 - t0) * 1e3);
    store_index_close(ix);
}

/* ---- naive: the whole index per change ---------------------------------- */

struct nmsg {
    unsigned uid, flags;
    char name[128];
};

static int naive_write(const char *folder, const struct nmsg *v, int n, unsigned uidnext)
{
    char tmp[600], dst[600];
    size_t cap = (size_t)(n + 1) * 160, o = 0;
    char *buf = malloc(cap);
    int fd;

    if (buf == NULL)
        return -1;
    o += (size_t)snprintf(buf, cap, "V1 1700000000 %u\n", uidnext);
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%u %u 1024 1700000000 20 %s\n", v[i].uid,
                              v[i].flags, v[i].name);
    snprintf(tmp, sizeof(tmp), "%s/naive.tmp", folder);
    snprintf(dst, sizeof(dst), "%s/naive.index", folder);
    fd = open(tmp, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    if (fd < 0 || fs_write_all(fd, buf, o) != 0 || fsync(fd) != 0 || close(fd) != 0
        || rename(tmp, dst) != 0 || fs_fsync_dir(folder) != 0) {
        free(buf);
        return -1;
    }
    free(buf);
    return 0;
}

static int naive_load(const char *folder, struct nmsg **out)
{
    char path[600], *text;
    size_t len;
    int n = 0, cap = 1024;
    struct nmsg *v = malloc(sizeof(*v) * (size_t)cap);

    snprintf(path, sizeof(path), "%s/naive.index", folder);
    if (v == NULL || fs_read_file(path, 1 << 30, &text, &len) != 0)
        return -1;
    for (char *line = strchr(text, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        if (n == cap) {
            cap *= 2;
            v = realloc(v, sizeof(*v) * (size_t)cap);
            if (v == NULL)
                return -1;
        }
        if (sscanf(line + 1, "%u %u %*d %*d %*d %127s", &v[n].uid, &v[n].flags, v[n].name) != 3)
            return -1;
        n++;
    }
    free(text);
    *out = v;
    return n;
}

static void bench_naive(const char *dir, int n, int nflags, int naive_max)
{
    char folder[512], name[128], path[1024], to[1200];
    struct nmsg *v = calloc((size_t)n, sizeof(*v));
    int upto = n < naive_max ? n : naive_max;
    double t0, t1;

    snprintf(folder, sizeof(folder), "%s/naive", dir);
    if (v == NULL || maildir_create(folder) != 0)
        die(folder);
    t0 = now();
    for (int i = 0; i < upto; i++) {
        msg_name(name, sizeof(name), i);
        put_tmp(folder, name, path, sizeof(path));
        snprintf(to, sizeof(to), "%s/new/%s", folder, name);
        if (rename(path, to) != 0)
            die("rename");
        v[i].uid = (unsigned)i + 1;
        snprintf(v[i].name, sizeof(v[i].name), "%s", name);
        if (naive_write(folder, v, i + 1, (unsigned)i + 2) != 0)
            die("naive write");
    }
    t1 = now();
    printf("naive  append %6d one by one: %8.3f s  (%.0f/s)\n", upto, t1 - t0, upto / (t1 - t0));
    for (int i = upto; i < n; i++) {           /* the rest without timing */
        msg_name(name, sizeof(name), i);
        put_tmp(folder, name, path, sizeof(path));
        snprintf(to, sizeof(to), "%s/new/%s", folder, name);
        if (rename(path, to) != 0)
            die("rename");
        v[i].uid = (unsigned)i + 1;
        snprintf(v[i].name, sizeof(v[i].name), "%s", name);
    }
    if (naive_write(folder, v, n, (unsigned)n + 1) != 0)
        die("naive write");
    int extra = nflags < 200 ? nflags : 200;
    t0 = now();
    for (int i = 0; i < extra; i++) {        /* an append at size n */
        if (naive_write(folder, v, n, (unsigned)n + 1) != 0)
            die("naive write");
    }
    t1 = now();
    printf("naive  append at size %d:       %8.2f ms each\n", n, (t1 - t0) * 1e3 / extra);
    struct nmsg *lv = NULL;
    t0 = now();
    int ln = naive_load(folder, &lv);
    t1 = now();
    if (ln != n)
        die("naive load");
    printf("naive  open+load %6d:           %8.2f ms\n", ln, (t1 - t0) * 1e3);
    free(lv);
    t0 = now();
    for (int i = 0; i < nflags; i++) {
        struct nmsg *m = &v[i * 7 % n];
        unsigned fl = i & 1 ? STORE_F_SEEN : STORE_F_FLAGGED;
        char from[1200], info[40];
        store_flags_format(m->flags, 0, info, sizeof(info));
        snprintf(from, sizeof(from), "%s/%s/%s%s", folder, m->flags ? "cur" : "new", m->name,
                 m->flags ? info : "");
        store_flags_format(fl, 0, info, sizeof(info));
        snprintf(to, sizeof(to), "%s/cur/%s%s", folder, m->name, info);
        if (rename(from, to) != 0)
            die(from);
        m->flags = fl;
        if (naive_write(folder, v, n, (unsigned)n + 1) != 0)
            die("naive write");
    }
    t1 = now();
    printf("naive  %5d flag changes on %d: %8.3f s  (%.2f ms each)\n", nflags, n, t1 - t0,
           (t1 - t0) * 1e3 / nflags);
    free(v);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : NULL;
    int n = argc > 2 ? atoi(argv[2]) : 10000;
    int nflags = argc > 3 ? atoi(argv[3]) : 1000;
    int naive_max = argc > 4 ? atoi(argv[4]) : 2000;

    if (dir == NULL || n <= 0 || nflags <= 0) {
        fprintf(stderr, "usage: store-index DIR [N] [FLAGS] [NAIVE_MAX]\n");
        return 2;
    }
    if (fs_mkdirs(dir, 0700) != 0)
        die(dir);
    bench_log(dir, n, nflags);
    bench_naive(dir, n, nflags, naive_max);
    return 0;
}
