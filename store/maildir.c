/*
 * store/maildir.c — delivery into a Maildir++ folder and its quota file.
 *
 * Owns: unique file names ("SECS.M<usec>P<pid>Q<n>.HOST,S=SIZE"), the
 * tmp/ → new/ two-phase write, and `maildirsize` (read, append, recompute
 * from the ,S= sizes of every message when missing or unreadable).
 *
 * Runs on worker threads: no libevent, no global state except the
 * process-wide delivery counter.  Never lseek()s the content fd (several
 * threads share it); reads it with pread() from offset 0.  Never fsyncs on
 * its own except in maildir_sync_tmp(), when rewriting maildirsize and
 * when it makes directories (their entries are flushed where they are
 * made): making deliveries durable is the caller's choice (see maildir.h).
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "lib/fsutil.h"
#include "store/index.h"
#include "store/maildir.h"

#define MAILDIR_MODE          0700
#define MAILDIR_FILE_MODE     0600
#define MAILDIR_COPY_CHUNK    (64 * 1024)
#define MAILDIR_HOST_MAX      256          /* escaped host name, octets */
#define MAILDIR_SIZE_FILE     "maildirsize"
#define MAILDIR_SIZE_READ_MAX 5120         /* Maildir++: bigger → recompute */
#define MAILDIR_LINE_MAX      64           /* "<bytes> <count>\n" */
#define MAILDIR_WARN_FILE     "hato.quotawarn"  /* a warning was given since usage crossed */

/* The only mutable global: Q<n> in unique names, shared by all threads. */
static atomic_ulong maildir_counter;

/* ---- errors ---------------------------------------------------------- */

static void err_set(struct maildir_err *e, int temporary, const char *dsn,
                    const char *text)
{
    if (e == NULL)
        return;
    e->temporary = temporary;
    snprintf(e->dsn, sizeof(e->dsn), "%s", dsn);
    snprintf(e->text, sizeof(e->text), "%s", text);
}

/* An I/O failure: disk full is 4.3.1, anything else 4.3.0 + strerror. */
static void err_io(struct maildir_err *e, const char *what, int errnum)
{
    char buf[128], text[256];
    const char *s;

    if (errnum == ENOSPC || errnum == EDQUOT) {
        err_set(e, 1, "4.3.1", "insufficient system storage");
        return;
    }
    s = strerror_r(errnum, buf, sizeof(buf));
    snprintf(text, sizeof(text), "%s: %s", what, s);
    err_set(e, 1, "4.3.0", text);
}

/* ---- unique names ---------------------------------------------------- */

static char maildir_host[MAILDIR_HOST_MAX];   /* escaped, set once */
static long maildir_pid;
static pthread_once_t maildir_once = PTHREAD_ONCE_INIT;

/* gethostname() with '/' → \057 and ':' → \072 (Maildir spec). */
static void host_escaped(char *out, size_t len)
{
    char host[MAILDIR_HOST_MAX];
    size_t o = 0;
    const char *h;

    if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    for (h = host; *h && o + 5 < len; h++) {
        if (*h == '/' || *h == ':') {
            memcpy(out + o, *h == '/' ? "\\057" : "\\072", 4);
            o += 4;
        } else {
            out[o++] = *h;
        }
    }
    out[o] = '\0';
}

/* The host and pid parts of names: a process writes into Maildirs only
 * after its last fork, and the host name does not change under it. */
static void name_parts_init(void)
{
    host_escaped(maildir_host, sizeof(maildir_host));
    maildir_pid = (long)getpid();
}

static int unique_name(char *buf, size_t len, long long size)
{
    struct timeval tv;
    unsigned long q = atomic_fetch_add(&maildir_counter, 1) + 1;
    int r;

    if (gettimeofday(&tv, NULL) != 0)
        return -1;
    pthread_once(&maildir_once, name_parts_init);
    r = snprintf(buf, len, "%lld.M%ldP%ldQ%lu.%s,S=%lld", (long long)tv.tv_sec,
                 (long)tv.tv_usec, maildir_pid, q, maildir_host, size);
    if (r < 0 || (size_t)r >= len) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* ---- maildirsize ----------------------------------------------------- */

/* ",S=123" in a file name → 123; -1 if absent. */
static long long name_size(const char *name)
{
    const char *p = strstr(name, ",S=");
    long long v = 0;

    if (p == NULL)
        return -1;
    p += 3;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (*p != '\0' && *p != ',' && *p != ':')
        return -1;
    return v;
}

/* Sum the messages of one new/ or cur/ directory. */
static int scan_dir(const char *path, long long *bytes, long long *count)
{
    DIR *d = opendir(path);
    struct dirent *de;
    struct stat st;

    if (d == NULL)
        return errno == ENOENT ? 0 : -1;
    while ((de = readdir(d)) != NULL) {
        long long s;
        if (de->d_name[0] == '.')
            continue;
        s = name_size(de->d_name);
        if (s < 0) {
            if (fstatat(dirfd(d), de->d_name, &st, 0) != 0)
                continue;          /* moved or expunged meanwhile */
            if (!S_ISREG(st.st_mode))
                continue;
            s = st.st_size;
        }
        *bytes += s;
        (*count)++;
    }
    return closedir(d);
}

/* new/ and cur/ of one folder. */
static int scan_folder(const char *folder, long long *bytes, long long *count)
{
    char path[PATH_MAX];

    if (fs_join(path, sizeof(path), folder, "new") != 0
        || scan_dir(path, bytes, count) != 0)
        return -1;
    if (fs_join(path, sizeof(path), folder, "cur") != 0
        || scan_dir(path, bytes, count) != 0)
        return -1;
    return 0;
}

/* The root and every ".Folder" below it. */
static int scan_all(const char *dir, long long *bytes, long long *count)
{
    char path[PATH_MAX];
    struct dirent *de;
    DIR *d;

    *bytes = 0;
    *count = 0;
    if (scan_folder(dir, bytes, count) != 0)
        return -1;
    d = opendir(dir);
    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0
            || strcmp(de->d_name, "..") == 0)
            continue;
        if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
            continue;
        if (fs_join(path, sizeof(path), dir, de->d_name) != 0
            || scan_folder(path, bytes, count) != 0) {
            closedir(d);
            return -1;
        }
    }
    return closedir(d);
}

/* Write maildirsize via tmp/ + rename (fsynced: it is rewritten rarely). */
static int size_file_write(const char *dir, long long quota, long long bytes,
                           long long count)
{
    char name[NAME_MAX + 1], tmp[PATH_MAX], dst[PATH_MAX], tdir[PATH_MAX];
    char text[2 * MAILDIR_LINE_MAX];
    int fd, n, saved;

    n = snprintf(text, sizeof(text), "%lldS\n%lld %lld\n", quota, bytes, count);
    if (n < 0 || (size_t)n >= sizeof(text)) {
        errno = EOVERFLOW;
        return -1;
    }
    if (unique_name(name, sizeof(name), n) != 0
        || fs_join(tdir, sizeof(tdir), dir, "tmp") != 0
        || fs_join(tmp, sizeof(tmp), tdir, name) != 0
        || fs_join(dst, sizeof(dst), dir, MAILDIR_SIZE_FILE) != 0)
        return -1;
    fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, MAILDIR_FILE_MODE);
    if (fd < 0)
        return -1;
    if (fs_write_all(fd, text, (size_t)n) != 0 || fsync(fd) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, dst) != 0)
        goto fail;
    return 0;
fail:
    saved = errno;
    if (fd >= 0)
        (void)close(fd);
    (void)unlink(tmp);
    errno = saved;
    return -1;
}

/* Parse "<n>S[,<m>C]" (either order); *quota = n (0 if absent). */
static int parse_quota_line(const char *s, size_t len, long long *quota)
{
    size_t i = 0;

    *quota = 0;
    while (i < len) {
        long long v = 0;
        size_t start = i;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            if (v > (INT64_MAX - 9) / 10)
                return -1;
            v = v * 10 + (s[i] - '0');
        }
        if (i == start || i >= len || (s[i] != 'S' && s[i] != 'C'))
            return -1;
        if (s[i] == 'S')
            *quota = v;
        i++;
        if (i < len && s[i] != ',')
            return -1;
        if (i < len)
            i++;
    }
    return 0;
}

/* One signed decimal at *p; advances *p. */
static int parse_signed(const char **p, const char *end, long long *out)
{
    const char *s = *p;
    int neg = 0;
    long long v = 0;

    if (s < end && *s == '-') {
        neg = 1;
        s++;
    }
    if (s >= end || *s < '0' || *s > '9')
        return -1;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    *out = neg ? -v : v;
    *p = s;
    return 0;
}

/* "<bytes> <count>" */
static int parse_usage_line(const char *s, size_t len, long long *bytes)
{
    const char *p = s, *end = s + len;
    long long b, c;

    while (p < end && *p == ' ')
        p++;
    if (parse_signed(&p, end, &b) != 0)
        return -1;
    if (p >= end || (*p != ' ' && *p != '\t'))
        return -1;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (parse_signed(&p, end, &c) != 0)
        return -1;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
        p++;
    if (p != end)
        return -1;
    if ((b > 0 && *bytes > INT64_MAX - b) || (b < 0 && *bytes < INT64_MIN - b))
        return -1;
    *bytes += b;
    return 0;
}

/* Parse a whole maildirsize; 0 ok, -1 unparsable. */
static int size_parse(const char *text, size_t len, long long *quota,
                      long long *bytes)
{
    const char *p = text, *end = text + len;
    int first = 1;

    *bytes = 0;
    if (len == 0)
        return -1;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        int r;
        if (nl == NULL)
            return -1;     /* torn append: recompute */
        if (first)
            r = parse_quota_line(p, l, quota);
        else
            r = l == 0 ? 0 : parse_usage_line(p, l, bytes);
        if (r != 0)
            return -1;
        first = 0;
        p = nl + 1;
    }
    return first || *bytes < 0 ? -1 : 0;     /* negative: corrupt, recount */
}

/* Read maildirsize: 0 ok, 1 missing/unusable/too big, -1 error. */
static int size_file_read(const char *dir, long long *quota, long long *bytes)
{
    char path[PATH_MAX], buf[MAILDIR_SIZE_READ_MAX + 1];
    size_t got = 0;
    int fd;

    if (fs_join(path, sizeof(path), dir, MAILDIR_SIZE_FILE) != 0)
        return -1;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 1 : -1;
    while (got < sizeof(buf)) {
        ssize_t r = read(fd, buf + got, sizeof(buf) - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            (void)close(fd);
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    if (close(fd) != 0)
        return -1;
    if (got > MAILDIR_SIZE_READ_MAX) {
        const char *nl = memchr(buf, '\n', got);
        if (nl == NULL || parse_quota_line(buf, (size_t)(nl - buf), quota) != 0)
            *quota = 0;
        return 1;
    }
    return size_parse(buf, got, quota, bytes) == 0 ? 0 : 1;
}

/* Usage, recomputing (and rewriting maildirsize with `quota`) when the file
 * is missing, unparsable, too big, or declares another quota (want >= 0). */
static long long usage_get(const char *dir, long long want_quota)
{
    long long quota = 0, bytes = 0, count = 0;
    int r = size_file_read(dir, &quota, &bytes);

    if (r < 0)
        return -1;
    if (r == 0 && (want_quota < 0 || want_quota == quota))
        return bytes;
    if (want_quota >= 0)
        quota = want_quota;
    if (scan_all(dir, &bytes, &count) != 0)
        return -1;
    if (size_file_write(dir, quota, bytes, count) != 0)
        return -1;
    return bytes;
}

long long maildir_usage_peek(const char *dir)
{
    long long quota = 0, bytes = 0, count = 0;
    int r = size_file_read(dir, &quota, &bytes);

    if (r == 0)
        return bytes;
    if (r < 0)
        return -1;
    if (scan_all(dir, &bytes, &count) != 0)
        return errno == ENOENT ? 0 : -1;
    return bytes;
}

long long maildir_usage(const char *dir)
{
    return usage_get(dir, -1);
}

/* Append "BYTES COUNT" to maildirsize.  A failure removes the file so the
 * next reader recomputes it (the mail itself is fine: never an error).
 * 1 if there was no file to append to. */
static int size_file_append(const char *dir, long long bytes, long long count)
{
    char path[PATH_MAX], line[2 * MAILDIR_LINE_MAX];
    int fd, n;

    if (fs_join(path, sizeof(path), dir, MAILDIR_SIZE_FILE) != 0)
        return 0;
    fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT;
    n = snprintf(line, sizeof(line), "%lld %lld\n", bytes, count);
    if (n < 0 || (size_t)n >= sizeof(line) || fs_write_all(fd, line, (size_t)n) != 0) {
        (void)close(fd);
        (void)unlink(path);
        return 0;
    }
    if (close(fd) != 0)
        (void)unlink(path);
    return 0;
}

/* Account one delivered message; with a quota a missing file is counted
 * afresh (the count includes this message). */
static void size_file_add(const char *dir, long long size, long long quota)
{
    if (size_file_append(dir, size, 1) == 1 && quota > 0)
        (void)usage_get(dir, quota);
}

void maildir_usage_add(const char *dir, long long bytes, long long count)
{
    (void)size_file_append(dir, bytes, count);    /* missing: recomputed when next needed */
}

/* ---- delivery -------------------------------------------------------- */

int maildir_create(const char *dir)
{
    static const char *const subs[] = { "cur", "new", "tmp" };
    char path[PATH_MAX];
    size_t i;

    /* Each directory made is flushed into its parent: the first delivery to
     * a new Maildir is made durable with an fsync of new/ alone and the
     * queue files go after it, so a power loss must not be able to take the
     * new directories (and the mail in them) away.  cur/ and new/ are
     * flushed before tmp/ is made, since ensure_maildir() takes tmp/ for a
     * whole Maildir; tmp/ itself needs no flush (lost, it is made again). */
    if (fs_mkdirs_flushed(dir, MAILDIR_MODE) != 0)
        return -1;
    for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (fs_join(path, sizeof(path), dir, subs[i]) != 0)
            return -1;
        if (i == 2 && fs_fsync_dir(dir) != 0)
            return -1;
        if (fs_mkdir(path, MAILDIR_MODE) != 0)
            return -1;
    }
    return 0;
}

/* maildir_create() unless tmp/ is already there (one stat per delivery).
 * *created = 1 when it was not. */
static int ensure_maildir(const char *dir, int *created)
{
    char path[PATH_MAX];
    struct stat st;

    if (fs_join(path, sizeof(path), dir, "tmp") == 0 && stat(path, &st) == 0
        && S_ISDIR(st.st_mode))
        return 0;
    *created = 1;
    return maildir_create(dir);
}

/* Track the end of the header across chunks: *state 1 = at a line start,
 * 2 = after a CR at a line start, 0 = inside a line, -1 = found. */
static void hdr_scan(const char *p, size_t n, long long base, int *state, long long *end)
{
    for (size_t i = 0; i < n && *state >= 0; i++) {
        if (p[i] == '\n') {
            if (*state == 1 || *state == 2) {
                *end = base + (long long)i + 1;
                *state = -1;
                return;
            }
            *state = 1;
        } else {
            *state = *state == 1 && p[i] == '\r' ? 2 : 0;
        }
    }
}

/* Copy content_len octets of content_fd (from offset 0) to fd; *hdr_end is
 * the content offset after the header's blank line (content_len if none). */
static int copy_content(int fd, int content_fd, long long content_len,
                        long long *hdr_end, struct maildir_err *e)
{
    int hstate = 1;

    char *buf;
    long long off = 0;

    *hdr_end = content_len;
    if (content_len == 0)
        return 0;
    buf = malloc(MAILDIR_COPY_CHUNK);
    if (buf == NULL) {
        err_io(e, "malloc", errno);
        return -1;
    }
    while (off < content_len) {
        size_t want = content_len - off > MAILDIR_COPY_CHUNK
                          ? MAILDIR_COPY_CHUNK : (size_t)(content_len - off);
        ssize_t r = pread(content_fd, buf, want, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                err_set(e, 1, "4.3.0", "read content: file shorter than expected");
            else
                err_io(e, "read content", errno);
            free(buf);
            return -1;
        }
        if (fs_write_all(fd, buf, (size_t)r) != 0) {
            err_io(e, "write", errno);
            free(buf);
            return -1;
        }
        hdr_scan(buf, (size_t)r, off, &hstate, hdr_end);
        off += r;
    }
    free(buf);
    return 0;
}

int store_quota_check(const char *dir, long long size, long long quota)
{
    long long used;

    if (quota <= 0)
        return 0;
    used = usage_get(dir, quota);
    if (used < 0)
        return -1;
    return size > quota || used > quota - size ? 1 : 0;
}

/* Path of the quota warning marker into buf.  0 or -1. */
static int warn_marker(const char *dir, char *buf, size_t len)
{
    return fs_join(buf, len, dir, MAILDIR_WARN_FILE);
}

int store_quota_warn(const char *dir, long long quota, int percent, long long *usage)
{
    char path[PATH_MAX];
    long long used, limit;
    int fd;

    if (quota <= 0 || percent <= 0)
        return 0;
    used = usage_get(dir, quota);
    if (used < 0 || warn_marker(dir, path, sizeof(path)) != 0)
        return -1;
    if (usage)
        *usage = used;
    limit = quota / 100 * percent + quota % 100 * percent / 100;
    if (used < limit) {
        if (unlink(path) != 0 && errno != ENOENT)
            return -1;
        return 0;                  /* below: the next crossing warns again */
    }
    fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, MAILDIR_FILE_MODE);
    if (fd < 0)
        return errno == EEXIST ? 0 : -1;    /* warned already since it crossed */
    return close(fd) == 0 ? 1 : -1;
}

static int check_quota(const char *dir, long long quota, long long size,
                       struct maildir_err *e)
{
    int r = store_quota_check(dir, size, quota);

    if (r < 0)
        err_io(e, "maildirsize", errno);
    else if (r > 0)
        err_set(e, 1, "4.2.2", "mailbox full");    /* deferred: the user may make room */
    return r == 0 ? 0 : -1;
}

/* dir/SUB/name of a tmp file into buf.  0, or -1 (ENAMETOOLONG). */
static int tmp_path(const struct maildir_tmp *t, const char *sub, char *buf, size_t len)
{
    int r = snprintf(buf, len, "%s/%s/%s", t->dir, sub, t->name);
    if (r < 0 || (size_t)r >= len) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

static int make_paths(struct maildir_tmp *t, const char *dir, long long size)
{
    char path[PATH_MAX];

    t->dir = dir;
    if (unique_name(t->name, sizeof(t->name), size) != 0)
        return -1;
    if (tmp_path(t, "tmp", path, sizeof(path)) != 0 || tmp_path(t, "new", path, sizeof(path)) != 0) {
        t->name[0] = '\0';
        return -1;
    }
    return 0;
}

int maildir_begin(const char *dir, const char *prefix, size_t prefix_len,
                  int content_fd, long long content_len, long long quota,
                  struct maildir_tmp *t, struct maildir_err *e)
{
    long long size;

    memset(t, 0, sizeof(*t));
    t->fd = -1;
    if (content_len < 0 || prefix_len > (size_t)(INT64_MAX - content_len)) {
        err_set(e, 1, "4.3.0", "bad content length");
        return -1;
    }
    size = (long long)prefix_len + content_len;
    if (ensure_maildir(dir, &t->created) != 0) {
        err_io(e, "create maildir", errno);
        return -1;
    }
    if (check_quota(dir, quota, size, e) != 0)
        return -1;
    if (make_paths(t, dir, size) != 0) {
        err_io(e, "maildir name", errno);
        return -1;
    }
    t->quota = quota;
    char path[PATH_MAX];
    if (tmp_path(t, "tmp", path, sizeof(path)) == 0)
        t->fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, MAILDIR_FILE_MODE);
    if (t->fd < 0) {
        err_io(e, "create tmp file", errno);
        t->name[0] = '\0';
        return -1;
    }
    if (prefix_len > 0 && fs_write_all(t->fd, prefix, prefix_len) != 0) {
        err_io(e, "write", errno);
        maildir_abort(t);
        return -1;
    }
    long long hdr_end;
    if (copy_content(t->fd, content_fd, content_len, &hdr_end, e) != 0) {
        maildir_abort(t);
        return -1;
    }
    t->size = size;
    t->hdr_end = (long long)prefix_len + hdr_end;
    return 0;
}

int maildir_sync_tmp(struct maildir_tmp *t, struct maildir_err *e)
{
    if (t->fd < 0) {
        err_set(e, 1, "4.3.0", "sync: no open tmp file");
        return -1;
    }
    if (fsync(t->fd) != 0) {
        err_io(e, "fsync", errno);
        return -1;
    }
    return 0;
}

int maildir_finish(struct maildir_tmp *t, struct maildir_err *e)
{
    int r;

    if (t->fd < 0) {
        err_set(e, 1, "4.3.0", "finish: no open tmp file");
        return -1;
    }
    r = close(t->fd);
    t->fd = -1;
    if (r != 0) {
        err_io(e, "close", errno);     /* NFS-style late write error */
        maildir_abort(t);
        return -1;
    }
    /* ensure_maildir() only looks for tmp/: a Maildir that lost new/ (or
     * was made by hand with tmp/ alone) is repaired here, once. */
    char from[PATH_MAX], to[PATH_MAX];
    if (tmp_path(t, "tmp", from, sizeof(from)) != 0 || tmp_path(t, "new", to, sizeof(to)) != 0) {
        err_io(e, "maildir name", errno);
        maildir_abort(t);
        return -1;
    }
    struct store_newmsg m = { t->size, (int64_t)time(NULL), t->hdr_end };
    r = store_index_deliver(t->dir, from, t->name, &m, t->index_nosync);
    if (r != 0 && errno == ENOENT && maildir_create(t->dir) == 0)
        r = store_index_deliver(t->dir, from, t->name, &m, t->index_nosync);
    if (r != 0) {
        err_io(e, "rename into new/", errno);
        maildir_abort(t);
        return -1;
    }
    t->name[0] = '\0';
    size_file_add(t->dir, t->size, t->quota);
    return 0;
}

void maildir_abort(struct maildir_tmp *t)
{
    if (t->fd >= 0) {
        (void)close(t->fd);
        t->fd = -1;
    }
    char path[PATH_MAX];
    if (t->name[0] != '\0' && t->dir && tmp_path(t, "tmp", path, sizeof(path)) == 0)
        (void)unlink(path);
    t->name[0] = '\0';
}
