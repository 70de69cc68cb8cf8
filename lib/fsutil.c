/*
 * lib/fsutil.c — checked file-system helpers behind lib/fsutil.h: whole
 * writes, path joins, directory fsync, mkdir and mkdir -p, atomic replacement (tmp + fsync +
 * rename + directory fsync) and bounded whole-file reads.  Every call that
 * can fail is checked; on failure errno is what the failing call set.
 * Blocking by nature: callers on the event loop hand these to lib/work.c.
 */
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/fsutil.h"

#define FS_READ_CHUNK 65536    /* first allocation when the size is unknown */

int fs_rename_noreplace(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    /* no RENAME_NOREPLACE here: link() refuses an existing name too */
    if (link(from, to) < 0)
        return -1;
    if (unlink(from) < 0) {
        int e = errno;
        (void)unlink(to);
        errno = e;
        return -1;
    }
    return 0;
}

int fs_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    ssize_t w;

    while (len > 0) {
        w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* close() that keeps an earlier errno when `failed`. */
static int fs_close_keep(int fd, int failed)
{
    int saved = errno;

    if (close(fd) < 0 && !failed)
        return -1;
    if (failed)
        errno = saved;
    return failed ? -1 : 0;
}

int fs_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return -1;
    return fs_close_keep(fd, fsync(fd) < 0);
}

/* mkdir one component; an existing directory is fine.  flushed: a
 * directory it made is made durable in its parent (fsync of the parent). */
static int fs_mkdir_one(const char *path, mode_t mode, int flushed)
{
    struct stat st;

    if (mkdir(path, mode) == 0) {
        char parent[PATH_MAX];
        if (!flushed)
            return 0;
        fs_dirname(path, parent, sizeof parent);
        return fs_fsync_dir(parent);
    }
    if (errno != EEXIST)
        return -1;
    if (stat(path, &st) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static int fs_mkdirs_how(const char *path, mode_t mode, int flushed)
{
    char buf[PATH_MAX];
    size_t len = strlen(path), i;

    if (len == 0) {
        errno = ENOENT;
        return -1;
    }
    if (len >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, len + 1);
    for (i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        if (buf[i - 1] == '/')
            continue;                   /* "a//b" or a trailing slash */
        buf[i] = '\0';
        if (fs_mkdir_one(buf, mode, flushed) < 0)
            return -1;
        buf[i] = path[i];
    }
    return 0;
}

int fs_join(char *buf, size_t len, const char *a, const char *b)
{
    int r = snprintf(buf, len, "%s/%s", a, b);

    if (r < 0 || (size_t)r >= len) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

int fs_mkdir(const char *path, mode_t mode)
{
    return fs_mkdir_one(path, mode, 0);
}

int fs_mkdirs(const char *path, mode_t mode)
{
    return fs_mkdirs_how(path, mode, 0);
}

int fs_mkdirs_flushed(const char *path, mode_t mode)
{
    return fs_mkdirs_how(path, mode, 1);
}

void fs_dirname(const char *path, char *buf, size_t len)
{
    size_t n = strlen(path);

    if (len == 0)
        return;
    while (n > 1 && path[n - 1] == '/')
        n--;                            /* trailing slashes */
    while (n > 0 && path[n - 1] != '/')
        n--;                            /* the last component */
    while (n > 1 && path[n - 1] == '/')
        n--;                            /* the slashes before it */
    if (n == 0) {
        snprintf(buf, len, "%s", path[0] == '/' ? "/" : ".");
        return;
    }
    snprintf(buf, len, "%.*s", (int)n, path);
}

/* Write data to a new file `tmp` with `mode` and fsync it. */
static int fs_write_tmp(const char *tmp, const void *data, size_t len, mode_t mode)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

    if (fd < 0)
        return -1;
    if (fchmod(fd, mode) < 0 || fs_write_all(fd, data, len) < 0 || fsync(fd) < 0)
        return fs_close_keep(fd, 1);
    return fs_close_keep(fd, 0);
}

int fs_replace(const char *path, const void *data, size_t len, mode_t mode)
{
    static atomic_uint seq;
    char tmp[PATH_MAX], dir[PATH_MAX];
    struct stat st;
    int n, saved, exists = stat(path, &st) == 0;

    n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld.%u", path, (long)getpid(),
                 atomic_fetch_add(&seq, 1));
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (fs_write_tmp(tmp, data, len, exists ? (st.st_mode & 07777) : mode) < 0 ||
        (exists && chown(tmp, st.st_uid, st.st_gid) < 0 && errno != EPERM) ||
        rename(tmp, path) < 0) {
        saved = errno;
        (void)unlink(tmp);
        errno = saved;
        return -1;
    }
    fs_dirname(path, dir, sizeof(dir));
    return fs_fsync_dir(dir);
}

int fs_read_file_or_empty(const char *path, size_t max, char **out, size_t *outlen)
{
    if (fs_read_file(path, max, out, outlen) == 0)
        return 0;
    if (errno != ENOENT)
        return -1;
    *out = calloc(1, 1);
    *outlen = 0;
    return *out ? 0 : -1;
}

/* Read fd to EOF into a growing buffer, at most max octets. */
static int fs_read_fd(int fd, size_t max, size_t hint, char **out, size_t *outlen)
{
    size_t cap = (hint < max ? hint : max) + 1, len = 0;
    char *buf = malloc(cap), *nb;
    ssize_t r;

    if (buf == NULL)
        return -1;
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > max) {            /* a full buffer of max octets: one more? */
                char probe;
                r = read(fd, &probe, 1);
                if (r < 0 && errno == EINTR)
                    continue;
                if (r == 0)
                    break;
                free(buf);
                if (r > 0)
                    errno = EFBIG;
                return -1;
            }
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                return -1;
            }
            buf = nb;
        }
        r = read(fd, buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            return -1;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    *out = buf;
    if (outlen)
        *outlen = len;
    return 0;
}

int fs_read_file(const char *path, size_t max, char **out, size_t *outlen)
{
    struct stat st;
    size_t hint = FS_READ_CHUNK;
    int fd, rc;

    *out = NULL;
    if (max >= SIZE_MAX / 2) {
        errno = EINVAL;
        return -1;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0)
        return fs_close_keep(fd, 1);
    if (S_ISREG(st.st_mode)) {
        if ((unsigned long long)st.st_size > max) {
            errno = EFBIG;
            return fs_close_keep(fd, 1);
        }
        hint = (size_t)st.st_size;
    }
    rc = fs_read_fd(fd, max, hint, out, outlen);
    return fs_close_keep(fd, rc < 0);
}
