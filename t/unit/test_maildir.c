/*
 * t/unit/test_maildir.c — store/maildir.c: names, byte-exact content,
 * S=, quota (4.2.2), maildirsize recompute, abort, concurrent deliveries;
 * the lib/fsutil.c path join and mkdir it (and store/layout.c) build on.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/fsutil.h"
#include "store/maildir.h"
#include "t/unit/tap.h"

#define BIG_LEN     (200 * 1024 + 17)   /* crosses several 64 KiB chunks */
#define NTHREADS    4
#define PER_THREAD  50

static char root[PATH_MAX];

static void path_of(char *buf, size_t len, const char *a, const char *b)
{
    int r = snprintf(buf, len, "%s/%s", a, b);

    if (r < 0 || (size_t)r >= len)
        exit(2);
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "w");

    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

/* Read a whole file into a malloc'd buffer; NULL if missing. */
static char *read_file(const char *path, size_t *len)
{
    struct stat st;
    char *buf;
    int fd = open(path, O_RDONLY);

    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) != 0 || (buf = malloc((size_t)st.st_size + 1)) == NULL) {
        close(fd);
        return NULL;
    }
    *len = (size_t)read(fd, buf, (size_t)st.st_size);
    buf[*len] = '\0';
    close(fd);
    return buf;
}

/* Count entries in dir (not . or ..); first name into first. */
static int count_dir(const char *dir, char *first, size_t flen)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n++ == 0 && first)
            snprintf(first, flen, "%s", de->d_name);
    }
    closedir(d);
    return n;
}

static void rm_rf(const char *path)
{
    char cmd[PATH_MAX + 16];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", path);
}

/* A content file of len octets with a recognisable pattern. */
static int make_content(long long len)
{
    char path[PATH_MAX];
    char *buf = malloc((size_t)len + 1);
    long long i;
    int fd;

    for (i = 0; i < len; i++)
        buf[i] = (char)('a' + i % 26 + (i % 4099 == 0 ? 1 : 0));
    path_of(path, sizeof(path), root, "content");
    write_file(path, buf, (size_t)len);
    free(buf);
    fd = open(path, O_RDONLY);
    if (fd < 0)
        exit(2);
    return fd;
}

/* Check "SECS.M<usec>P<pid>Q<n>.HOST,S=SIZE"; returns SIZE or -1. */
static long long check_name(const char *name)
{
    long long secs, size;
    long usec, pid;
    unsigned long q;
    int used = 0;
    const char *host, *s;

    if (sscanf(name, "%lld.M%ldP%ldQ%lu.%n", &secs, &usec, &pid, &q, &used) != 4 || used == 0)
        return -1;
    if (pid != (long)getpid() || usec < 0 || usec > 999999 || q == 0)
        return -1;
    host = name + used;
    s = strstr(host, ",S=");
    if (s == NULL || s == host || memchr(host, '/', (size_t)(s - host))
        || memchr(host, ':', (size_t)(s - host)))
        return -1;
    if (sscanf(s, ",S=%lld", &size) != 1)
        return -1;
    return size;
}

static void test_basic(void)
{
    static const char prefix[] = "Return-Path: <a@example.net>\r\nDelivered-To: bob@example.com\r\n";
    char dir[PATH_MAX], newd[PATH_MAX], tmpd[PATH_MAX], name[NAME_MAX + 1];
    char path[PATH_MAX + NAME_MAX + 2];
    struct maildir_tmp t;
    struct maildir_err e;
    struct stat st;
    char *got, *want;
    size_t glen, plen = sizeof(prefix) - 1;
    int fd = make_content(BIG_LEN);

    path_of(dir, sizeof(dir), root, "mail/example.com/bob");
    path_of(newd, sizeof(newd), dir, "new");
    path_of(tmpd, sizeof(tmpd), dir, "tmp");
    is_int(maildir_begin(dir, prefix, plen, fd, BIG_LEN, 0, &t, &e), 0, "begin creates maildir and writes");
    ok(t.fd >= 0, "tmp fd open after begin");
    is_int(t.created, 1, "begin says it made the Maildir (the caller gives it its layout)");
    is_int(t.size, (long long)plen + BIG_LEN, "size = prefix + content");
    is_int(count_dir(tmpd, NULL, 0), 1, "one file in tmp/ before finish");
    is_int(count_dir(newd, NULL, 0), 0, "nothing in new/ before finish");
    is_int(maildir_sync_tmp(&t, &e), 0, "sync tmp");
    is_int(maildir_finish(&t, &e), 0, "finish");
    is_int(t.fd, -1, "fd closed after finish");
    is_int(count_dir(tmpd, NULL, 0), 0, "tmp/ empty after finish");
    is_int(count_dir(newd, name, sizeof(name)), 1, "one file in new/");
    is_int(check_name(name), (long long)plen + BIG_LEN, "name format and S= size");
    snprintf(path, sizeof(path), "%s/%s", newd, name);
    got = read_file(path, &glen);
    want = malloc(plen + BIG_LEN);
    memcpy(want, prefix, plen);
    if (pread(fd, want + plen, BIG_LEN, 0) != BIG_LEN)
        exit(2);
    ok(got && glen == plen + BIG_LEN && memcmp(got, want, glen) == 0,
       "content = prefix + content, byte exact");
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "message mode 0600");
    ok(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700, "maildir mode 0700");
    ok(stat(tmpd, &st) == 0 && (st.st_mode & 0777) == 0700, "tmp/ mode 0700");
    path_of(path, sizeof(path), dir, "cur");
    ok(stat(path, &st) == 0 && S_ISDIR(st.st_mode), "cur/ exists");
    path_of(path, sizeof(path), dir, "maildirsize");
    ok(access(path, F_OK) != 0, "no maildirsize without quota");
    ok(lseek(fd, 0, SEEK_CUR) == 0, "content fd offset untouched (pread)");
    is_int(maildir_finish(&t, &e), -1, "second finish fails");
    free(got);
    free(want);
    close(fd);
}

static void test_empty_and_short(void)
{
    char dir[PATH_MAX], sub[PATH_MAX], name[NAME_MAX + 1];
    struct maildir_tmp t;
    struct maildir_err e;
    int fd = make_content(100);

    path_of(dir, sizeof(dir), root, "short");
    is_int(maildir_begin(dir, "X: y\n", 5, -1, 0, 0, &t, &e), 0, "prefix only, no content");
    is_int(maildir_finish(&t, &e), 0, "finish prefix-only");
    path_of(sub, sizeof(sub), dir, "new");
    count_dir(sub, name, sizeof(name));
    is_int(check_name(name), 5, "S=5 for prefix-only message");
    is_int(maildir_begin(dir, NULL, 0, fd, 200, 0, &t, &e), -1, "content shorter than content_len fails");
    ok(e.temporary == 1 && strcmp(e.dsn, "4.3.0") == 0, "short content is 4.3.0 temporary");
    path_of(sub, sizeof(sub), dir, "tmp");
    is_int(count_dir(sub, NULL, 0), 0, "failed begin leaves no tmp file");
    is_int(maildir_begin(dir, NULL, 0, 9999, 10, 0, &t, &e), -1, "bad content fd fails");
    ok(e.temporary == 1 && strcmp(e.dsn, "4.3.0") == 0 && strstr(e.text, "Bad file") != NULL,
       "bad fd: 4.3.0 with strerror (%s)", e.text);
    close(fd);
}

static void test_abort(void)
{
    char dir[PATH_MAX], sub[PATH_MAX];
    struct maildir_tmp t;
    struct maildir_err e;
    int fd = make_content(1000);

    path_of(dir, sizeof(dir), root, "abort");
    is_int(maildir_begin(dir, "", 0, fd, 1000, 0, &t, &e), 0, "begin");
    maildir_abort(&t);
    is_int(t.fd, -1, "abort closes fd");
    path_of(sub, sizeof(sub), dir, "tmp");
    is_int(count_dir(sub, NULL, 0), 0, "abort leaves nothing in tmp/");
    path_of(sub, sizeof(sub), dir, "new");
    is_int(count_dir(sub, NULL, 0), 0, "abort leaves nothing in new/");
    maildir_abort(&t);
    ok(1, "second abort is harmless");
    close(fd);
}

static void test_quota(void)
{
    char dir[PATH_MAX], sz[PATH_MAX], sub[PATH_MAX];
    struct maildir_tmp t;
    struct maildir_err e;
    char *text;
    size_t len;
    int fd = make_content(1000);

    path_of(dir, sizeof(dir), root, "quota");
    path_of(sz, sizeof(sz), dir, "maildirsize");
    is_int(maildir_begin(dir, NULL, 0, fd, 1000, 2500, &t, &e), 0, "first 1000 under 2500");
    is_int(maildir_finish(&t, &e), 0, "finish 1");
    text = read_file(sz, &len);
    is_str(text, "2500S\n0 0\n1000 1\n", "maildirsize created then appended");
    free(text);
    is_int(maildir_begin(dir, NULL, 0, fd, 1000, 2500, &t, &e), 0, "second 1000 (2000 <= 2500)");
    is_int(t.created, 0, "an existing Maildir is not made again");
    is_int(maildir_finish(&t, &e), 0, "finish 2");
    is_int(maildir_usage(dir), 2000, "usage 2000");
    is_int(maildir_begin(dir, NULL, 0, fd, 1000, 2500, &t, &e), -1, "third 1000 exceeds quota");
    ok(e.temporary == 1, "quota exceeded is temporary (the queue retries, then bounces)");
    is_str(e.dsn, "4.2.2", "quota dsn 4.2.2");
    is_str(e.text, "mailbox full", "quota text");
    path_of(sub, sizeof(sub), dir, "tmp");
    is_int(count_dir(sub, NULL, 0), 0, "quota failure leaves no tmp file");
    is_int(maildir_begin(dir, "x", 1, fd, 499, 2500, &t, &e), 0, "exactly reaching the quota is fine");
    maildir_abort(&t);
    is_int(maildir_usage(dir), 2000, "aborted delivery not counted");
    is_int(maildir_begin(dir, NULL, 0, fd, 1000, 0, &t, &e), 0, "quota 0 = unlimited");
    is_int(maildir_finish(&t, &e), 0, "finish unlimited");
    is_int(maildir_usage(dir), 3000, "existing maildirsize still appended when quota 0");
    /* a changed quota rewrites the header */
    is_int(maildir_begin(dir, NULL, 0, fd, 1000, 10000, &t, &e), 0, "bigger quota accepted");
    maildir_abort(&t);
    text = read_file(sz, &len);
    is_str(text, "10000S\n3000 3\n", "quota change recomputes maildirsize");
    free(text);
    close(fd);
}

static void test_recompute(void)
{
    char dir[PATH_MAX], p[PATH_MAX + 64], sz[PATH_MAX];
    char *text;
    size_t len;

    path_of(dir, sizeof(dir), root, "recount");
    ok(maildir_create(dir) == 0, "maildir_create");
    is_int(maildir_create(dir), 0, "maildir_create again is fine");
    snprintf(p, sizeof(p), "%s/new/1.M1P1Q1.h,S=100", dir);
    write_file(p, "x", 1);
    snprintf(p, sizeof(p), "%s/cur/2.M1P1Q1.h,S=250:2,S", dir);
    write_file(p, "x", 1);
    snprintf(p, sizeof(p), "%s/cur/3.nosize.h:2,", dir);
    write_file(p, "1234567", 7);
    snprintf(p, sizeof(p), "%s/.Sent", dir);
    ok(maildir_create(p) == 0, "folder .Sent");
    snprintf(p, sizeof(p), "%s/.Sent/cur/4.M1P1Q1.h,S=1000:2,S", dir);
    write_file(p, "x", 1);
    snprintf(p, sizeof(p), "%s/tmp/5.M1P1Q1.h,S=99999", dir);
    write_file(p, "x", 1);
    path_of(sz, sizeof(sz), dir, "maildirsize");
    is_int(maildir_usage(dir), 1357, "recomputed from S= of new/ cur/ and folders (stat when no S=)");
    text = read_file(sz, &len);
    is_str(text, "0S\n1357 4\n", "maildirsize written on recompute");
    free(text);
    write_file(sz, "100S\n1357 4\n-100 -1\n", 20);
    is_int(maildir_usage(dir), 1257, "usage sums lines incl. negative ones");
    write_file(sz, "100S\n1357 4\ngarbage\n", 20);
    is_int(maildir_usage(dir), 1357, "unparsable maildirsize recomputed");
    text = read_file(sz, &len);
    is_str(text, "100S\n1357 4\n", "recompute keeps the quota line");
    free(text);
    write_file(sz, "100S\n1357 4\n12", 14);
    is_int(maildir_usage(dir), 1357, "torn last line recomputed");
    write_file(sz, "100S\n50 1\n-100 -1\n", 19);
    is_int(maildir_usage(dir), 1357, "negative total recomputed");
    write_file(sz, "", 0);
    is_int(maildir_usage(dir), 1357, "empty maildirsize recomputed");
    is_int(maildir_usage("/nonexistent/hato/x"), -1, "usage of a missing maildir fails");
}

struct worker {
    int fd;
    const char *dir;
    int failures;
};

static void *deliver_many(void *arg)
{
    struct worker *w = arg;
    struct maildir_tmp t;
    struct maildir_err e;
    int i;

    for (i = 0; i < PER_THREAD; i++) {
        if (maildir_begin(w->dir, "P\n", 2, w->fd, 3000, 1LL << 30, &t, &e) != 0
            || maildir_finish(&t, &e) != 0)
            w->failures++;
    }
    return NULL;
}

static void test_threads(void)
{
    char dir[PATH_MAX], newd[PATH_MAX], path[PATH_MAX + NAME_MAX + 2];
    struct maildir_tmp t;
    struct maildir_err e;
    struct worker w[NTHREADS];
    pthread_t th[NTHREADS];
    struct dirent *de;
    int fd = make_content(3000), i, failures = 0, good = 0, n = 0;
    DIR *d;

    path_of(dir, sizeof(dir), root, "threads");
    /* one delivery first, so maildirsize exists and threads only append */
    is_int(maildir_begin(dir, "P\n", 2, fd, 3000, 1LL << 30, &t, &e), 0, "first delivery");
    is_int(maildir_finish(&t, &e), 0, "first finish");
    for (i = 0; i < NTHREADS; i++) {
        w[i].fd = fd;
        w[i].dir = dir;
        w[i].failures = 0;
        if (pthread_create(&th[i], NULL, deliver_many, &w[i]) != 0)
            exit(2);
    }
    for (i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        failures += w[i].failures;
    }
    is_int(failures, 0, "no failed concurrent delivery");
    path_of(newd, sizeof(newd), dir, "new");
    d = opendir(newd);
    while (d && (de = readdir(d)) != NULL) {
        size_t len;
        char *buf;
        if (de->d_name[0] == '.')
            continue;
        n++;
        snprintf(path, sizeof(path), "%s/%s", newd, de->d_name);
        buf = read_file(path, &len);
        if (buf && len == 3002 && check_name(de->d_name) == 3002 && memcmp(buf, "P\nbbc", 5) == 0)
            good++;
        free(buf);
    }
    if (d)
        closedir(d);
    is_int(n, NTHREADS * PER_THREAD + 1, "every concurrent delivery has its own name");
    is_int(good, n, "every concurrent message is complete");
    is_int(maildir_usage(dir), 3002LL * n, "maildirsize accounts every delivery");
    close(fd);
}

static void test_errors(void)
{
    char dir[PATH_MAX], file[PATH_MAX];
    struct maildir_tmp t;
    struct maildir_err e;

    path_of(file, sizeof(file), root, "plainfile");
    write_file(file, "x", 1);
    path_of(dir, sizeof(dir), file, "sub");
    is_int(maildir_create(dir), -1, "maildir_create under a file fails");
    is_int(maildir_create(file), -1, "maildir_create on a file fails");
    is_int(errno, ENOTDIR, "ENOTDIR");
    is_int(maildir_begin(dir, "x", 1, -1, 0, 0, &t, &e), -1, "begin under a file fails");
    ok(e.temporary == 1 && strcmp(e.dsn, "4.3.0") == 0, "I/O error is 4.3.0 temporary");
    is_int(t.fd, -1, "no fd after failed begin");
}

static void test_fs_helpers(void)
{
    char buf[8], dir[PATH_MAX], file[PATH_MAX];
    struct stat st;

    is_int(fs_join(buf, sizeof(buf), "abc", "def"), 0, "fs_join: a/b that fits");
    is_str(buf, "abc/def", "fs_join: a/b");
    errno = 0;
    is_int(fs_join(buf, sizeof(buf), "abcd", "def"), -1, "fs_join: one octet too long");
    is_int(errno, ENAMETOOLONG, "ENAMETOOLONG");
    path_of(dir, sizeof(dir), root, "fsdir");
    is_int(fs_mkdir(dir, 0700), 0, "fs_mkdir makes a directory");
    ok(stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700,
       "a directory with the mode given");
    is_int(fs_mkdir(dir, 0700), 0, "fs_mkdir: an existing directory is fine");
    path_of(file, sizeof(file), root, "fsfile");
    write_file(file, "x", 1);
    errno = 0;
    is_int(fs_mkdir(file, 0700), -1, "fs_mkdir: a file in its place is refused");
    is_int(errno, ENOTDIR, "ENOTDIR");
}

int main(void)
{
    snprintf(root, sizeof(root), "/tmp/hato-test-maildir-XXXXXX");
    if (mkdtemp(root) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    test_basic();
    test_empty_and_short();
    test_abort();
    test_quota();
    test_recompute();
    test_threads();
    test_errors();
    test_fs_helpers();
    rm_rf(root);
    return tap_done();
}
