/*
 * t/shim/flusherr.c — the errseq model of t/shim/flusherr.h.  Owns a table
 * of tracked descriptors (the file each one names and the two sequences it
 * has seen) and a table of files (device, inode, sequence).  Defines open,
 * open64, openat, openat64, close, syncfs, fsync, fdatasync and
 * sync_file_range for the program it is linked into; each calls libc's
 * (found with dlsym(RTLD_NEXT)) and then applies the model.  Test code
 * only: never linked into hatod.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t/shim/flusherr.h"

#define FE_FDS   4096
#define FE_FILES 4096
#define FE_SEEN  1u          /* errseq's "seen" flag; the counter is above it */

/* An error sequence as lib/errseq.c keeps one: 0 = never an error. */
typedef unsigned int errseq;

struct fe_file {
    dev_t dev;
    ino_t ino;
    errseq err;
};

struct fe_fd {
    int used;
    int file;                /* index in files[] */
    errseq fs_since, file_since;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int enabled, reported;
static errseq fs_err;
static struct fe_file files[FE_FILES];
static int nfiles;
static struct fe_fd fds[FE_FDS];
static flusherr_hook_fn hook;

/* errseq_sample: an error nobody has seen yet is reported to the new one. */
static errseq es_sample(errseq e)
{
    return (e & FE_SEEN) ? e : 0;
}

/* errseq_set: a new error after one that was seen moves the counter. */
static void es_set(errseq *e)
{
    if (*e == 0 || (*e & FE_SEEN))
        *e = ((*e >> 1) + 1) << 1;
}

/* errseq_check_and_advance: -1 once per descriptor per error. */
static int es_check(errseq *e, errseq *since)
{
    if (*e == *since)
        return 0;
    *e |= FE_SEEN;
    *since = *e;
    return -1;
}

static void *real(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (!f)
        _exit(99);
    return f;
}

/* Caller holds mu. */
static int file_index(dev_t dev, ino_t ino)
{
    for (int i = 0; i < nfiles; i++)
        if (files[i].dev == dev && files[i].ino == ino)
            return i;
    if (nfiles == FE_FILES)
        return -1;
    files[nfiles].dev = dev;
    files[nfiles].ino = ino;
    files[nfiles].err = 0;
    return nfiles++;
}

static void track(int fd)
{
    struct stat st;
    if (fd < 0 || fd >= FE_FDS || fstat(fd, &st) < 0)
        return;
    pthread_mutex_lock(&mu);
    if (enabled) {
        int f = file_index(st.st_dev, st.st_ino);
        fds[fd].used = f >= 0;
        fds[fd].file = f;
        fds[fd].fs_since = es_sample(fs_err);
        fds[fd].file_since = f >= 0 ? es_sample(files[f].err) : 0;
    } else {
        fds[fd].used = 0;
    }
    pthread_mutex_unlock(&mu);
}

static int tracked(int fd)
{
    pthread_mutex_lock(&mu);
    int t = fd >= 0 && fd < FE_FDS && fds[fd].used;
    pthread_mutex_unlock(&mu);
    return t;
}

/* After a real flush of fd that returned rc: apply the model. */
static int report(int fd, int whole_fs, int rc)
{
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&mu);
    int bad = 0;
    if (fd >= 0 && fd < FE_FDS && fds[fd].used) {
        struct fe_fd *d = &fds[fd];
        bad = whole_fs ? es_check(&fs_err, &d->fs_since)
                       : es_check(&files[d->file].err, &d->file_since);
    }
    if (bad)
        reported++;
    pthread_mutex_unlock(&mu);
    if (bad) {
        errno = EIO;
        return -1;
    }
    return 0;
}

static void before(const char *call, int fd)
{
    pthread_mutex_lock(&mu);
    flusherr_hook_fn h = hook;
    pthread_mutex_unlock(&mu);
    if (h && tracked(fd))
        h(call, fd);
}

void flusherr_enable(void)
{
    pthread_mutex_lock(&mu);
    enabled = 1;
    pthread_mutex_unlock(&mu);
}

void flusherr_fail_file(int fd)
{
    pthread_mutex_lock(&mu);
    if (fd >= 0 && fd < FE_FDS && fds[fd].used)
        es_set(&files[fds[fd].file].err);
    es_set(&fs_err);
    pthread_mutex_unlock(&mu);
}

void flusherr_fail_fs(void)
{
    pthread_mutex_lock(&mu);
    es_set(&fs_err);
    pthread_mutex_unlock(&mu);
}

void flusherr_set_hook(flusherr_hook_fn fn)
{
    pthread_mutex_lock(&mu);
    hook = fn;
    pthread_mutex_unlock(&mu);
}

int flusherr_reported(void)
{
    pthread_mutex_lock(&mu);
    int n = reported;
    pthread_mutex_unlock(&mu);
    return n;
}

/* ------------------------------------------------------------ libc's names */

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
    static int (*fn)(const char *, int, ...);
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    if (!fn)
        fn = (int (*)(const char *, int, ...))real("open");
    int fd = fn(path, flags, mode);
    track(fd);
    return fd;
}

int open64(const char *path, int flags, ...)
{
    static int (*fn)(const char *, int, ...);
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    if (!fn)
        fn = (int (*)(const char *, int, ...))real("open64");
    int fd = fn(path, flags, mode);
    track(fd);
    return fd;
}

int openat(int dirfd, const char *path, int flags, ...)
{
    static int (*fn)(int, const char *, int, ...);
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    if (!fn)
        fn = (int (*)(int, const char *, int, ...))real("openat");
    int fd = fn(dirfd, path, flags, mode);
    track(fd);
    return fd;
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    static int (*fn)(int, const char *, int, ...);
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    if (!fn)
        fn = (int (*)(int, const char *, int, ...))real("openat64");
    int fd = fn(dirfd, path, flags, mode);
    track(fd);
    return fd;
}

int close(int fd)
{
    static int (*fn)(int);
    if (!fn)
        fn = (int (*)(int))real("close");
    pthread_mutex_lock(&mu);
    if (fd >= 0 && fd < FE_FDS)
        fds[fd].used = 0;
    pthread_mutex_unlock(&mu);
    return fn(fd);
}

int syncfs(int fd)
{
    static int (*fn)(int);
    if (!fn)
        fn = (int (*)(int))real("syncfs");
    before("syncfs", fd);
    return report(fd, 1, fn(fd));
}

int fsync(int fd)
{
    static int (*fn)(int);
    if (!fn)
        fn = (int (*)(int))real("fsync");
    before("fsync", fd);
    return report(fd, 0, fn(fd));
}

int fdatasync(int fd)
{
    static int (*fn)(int);
    if (!fn)
        fn = (int (*)(int))real("fdatasync");
    before("fdatasync", fd);
    return report(fd, 0, fn(fd));
}

int sync_file_range(int fd, off_t off, off_t n, unsigned int flags)
{
    static int (*fn)(int, off_t, off_t, unsigned int);
    if (!fn)
        fn = (int (*)(int, off_t, off_t, unsigned int))real("sync_file_range");
    before("sync_file_range", fd);
    return report(fd, 0, fn(fd, off, n, flags));
}
