/*
 * queue/spare.c — the pool of spare queue files: a directory of files named
 * by kind and number (m17, e18), and a FIFO of (number, size, epoch) per
 * kind behind a mutex.  It must never let a spare replace an existing file,
 * never hand out a spare whose move into the pool may not be on disk yet
 * (see spares_sync_begin), and must bound the stale octets it keeps on disk
 * (SPARE_KEEP_FILE, SPARE_KEEP_TOTAL).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/spare.h"

struct spares {
    char dir[PATH_MAX];
    pthread_mutex_t mu;
    struct spare *ring[SPARE_KINDS];    /* the files in the pool, by kind, oldest first */
    size_t head[SPARE_KINDS], n[SPARE_KINDS], max;   /* max: per kind */
    unsigned long long started;         /* flushes begun (spares_sync_begin) */
    unsigned long long durable;         /* highest flush completed */
    long long bytes;             /* stale octets in the pool */
    unsigned long next;          /* next unused number */
};

static const char kind_char[SPARE_KINDS] = { 'm', 'e' };

static void num_path(const struct spares *s, enum spare_kind k, unsigned long num,
                     char *buf, size_t len)
{
    snprintf(buf, len, "%s/%c%lu", s->dir, kind_char[k], num);
}

void spares_path(const struct spares *s, const struct spare *sp, char *buf, size_t len)
{
    num_path(s, sp->kind, sp->num, buf, len);
}

/* "m17" / "e18" → kind and number. */
static int parse_name(const char *name, enum spare_kind *k, unsigned long *out)
{
    char *end;
    const char *c = memchr(kind_char, name[0], SPARE_KINDS);
    if (!c || name[1] < '0' || name[1] > '9')
        return -1;
    *k = (enum spare_kind)(c - kind_char);
    errno = 0;
    *out = strtoul(name + 1, &end, 10);
    return errno || *end ? -1 : 0;
}

/* Under the lock: may a file of `size` octets keep its blocks? */
static int may_keep(const struct spares *s, long long size)
{
    return size <= SPARE_KEEP_FILE && s->bytes + size <= SPARE_KEEP_TOTAL;
}

static int ftruncateat_empty(int dfd, const char *name)
{
    int fd = openat(dfd, name, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    return close(fd);
}

/* The inode numbers of the files in dirs (a NULL-terminated list), sorted. */
struct inos {
    ino_t *v;
    size_t n, cap;
};

static int ino_cmp(const void *a, const void *b)
{
    ino_t x = *(const ino_t *)a, y = *(const ino_t *)b;
    return x < y ? -1 : x > y;
}

static int collect_inos(const char *const *dirs, struct inos *in)
{
    for (; dirs && *dirs; dirs++) {
        DIR *d = opendir(*dirs);
        struct dirent *de;
        if (!d)
            continue;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.')
                continue;
            if (in->n == in->cap) {
                size_t cap = in->cap ? in->cap * 2 : 256;
                ino_t *v = realloc(in->v, cap * sizeof *v);
                if (!v) {
                    closedir(d);
                    return -1;
                }
                in->v = v;
                in->cap = cap;
            }
            in->v[in->n++] = de->d_ino;
        }
        closedir(d);
    }
    if (in->n)
        qsort(in->v, in->n, sizeof *in->v, ino_cmp);
    return 0;
}

static int ino_live(const struct inos *in, ino_t ino)
{
    return in->n && bsearch(&ino, in->v, in->n, sizeof *in->v, ino_cmp) != NULL;
}

/* Adopt what a previous run left in the pool (start-up, single-threaded).
 * A name in the pool whose file also has a name in a live directory is
 * dropped (only that name): after a power loss during a commit's flush the
 * pool's directory may still list a spare that was renamed into msg/ or
 * env/, and writing into it would overwrite queued mail. */
static int adopt(struct spares *s, const char *const *live_dirs)
{
    struct inos live = { 0 };
    if (collect_inos(live_dirs, &live) < 0)
        return -1;
    DIR *d = opendir(s->dir);
    struct dirent *de;
    struct stat st;
    if (!d) {
        free(live.v);
        return 0;
    }
    while ((de = readdir(d))) {
        unsigned long num;
        enum spare_kind k;
        if (de->d_name[0] == '.')
            continue;
        if (parse_name(de->d_name, &k, &num) < 0 || s->n[k] == s->max ||
            ino_live(&live, de->d_ino) ||
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
            unlinkat(dirfd(d), de->d_name, 0);
            continue;
        }
        long long size = st.st_size;
        if (!may_keep(s, size)) {
            if (ftruncateat_empty(dirfd(d), de->d_name) < 0) {
                unlinkat(dirfd(d), de->d_name, 0);
                continue;
            }
            size = 0;
        }
        /* epoch 0: found on disk, so its name in free/ is already durable */
        s->ring[k][s->n[k]++] = (struct spare){ .num = num, .stale = size, .kind = k };
        s->bytes += size;
        if (num >= s->next)
            s->next = num + 1;
    }
    closedir(d);
    free(live.v);
    return 0;
}

struct spares *spares_open(const char *dir, size_t max, const char *const *live_dirs)
{
    struct spares *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    for (int k = 0; k < SPARE_KINDS; k++) {
        s->ring[k] = calloc(max ? max : 1, sizeof *s->ring[k]);
        if (!s->ring[k]) {
            spares_close(s);
            return NULL;
        }
    }
    s->max = max ? max : 1;
    s->started = s->durable = 1;
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    pthread_mutex_init(&s->mu, NULL);
    if (adopt(s, live_dirs) < 0) {
        spares_close(s);
        return NULL;
    }
    return s;
}

/* The oldest spare of kind k, if a flush begun after it entered the pool
 * has completed (else its old name might come back after a power loss,
 * pointing at whatever is written into it next). */
static int pop(struct spares *s, enum spare_kind k, struct spare *sp)
{
    int ok = 0;
    pthread_mutex_lock(&s->mu);
    if (s->n[k] > 0 && s->ring[k][s->head[k]].epoch < s->durable) {
        *sp = s->ring[k][s->head[k]];
        s->head[k] = (s->head[k] + 1) % s->max;
        s->n[k]--;
        s->bytes -= sp->stale;
        ok = 1;
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

int spares_take(struct spares *s, enum spare_kind k, struct spare *sp)
{
    char path[PATH_MAX];
    while (pop(s, k, sp)) {
        spares_path(s, sp, path, sizeof path);
        int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0)
            return fd;
        unlink(path);                    /* gone or unusable: try the next one */
    }
    errno = ENOENT;
    return -1;
}

/* Push the file of sp holding `size` octets; emptied when over the keep
 * limits.  0, or -1 when the pool is full (file left as is). */
static int push(struct spares *s, struct spare sp, long long size)
{
    enum spare_kind k = sp.kind;
    pthread_mutex_lock(&s->mu);
    if (s->n[k] == s->max) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    int keep = may_keep(s, size);
    if (keep)
        s->bytes += size;         /* reserved now so that threads do not overshoot */
    pthread_mutex_unlock(&s->mu);
    if (!keep) {
        char path[PATH_MAX];
        spares_path(s, &sp, path, sizeof path);
        if (truncate(path, 0) < 0)
            return -1;
        size = 0;
    }
    pthread_mutex_lock(&s->mu);
    if (s->n[k] == s->max) {
        s->bytes -= size;
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    sp.stale = size;
    s->ring[k][(s->head[k] + s->n[k]++) % s->max] = sp;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void spares_give_back(struct spares *s, const struct spare *sp, long long size)
{
    char path[PATH_MAX];
    if (push(s, *sp, size) < 0) {
        spares_path(s, sp, path, sizeof path);
        unlink(path);
    }
}

unsigned long long spares_sync_begin(struct spares *s)
{
    pthread_mutex_lock(&s->mu);
    unsigned long long t = ++s->started;
    pthread_mutex_unlock(&s->mu);
    return t;
}

void spares_sync_end(struct spares *s, unsigned long long ticket)
{
    pthread_mutex_lock(&s->mu);
    if (ticket > s->durable)
        s->durable = ticket;
    pthread_mutex_unlock(&s->mu);
}

int spares_put(struct spares *s, enum spare_kind k, const char *path)
{
    struct stat st;
    char to[PATH_MAX];
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return -1;
    pthread_mutex_lock(&s->mu);
    if (s->n[k] == s->max) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    struct spare sp = { .num = s->next++, .kind = k };
    pthread_mutex_unlock(&s->mu);
    spares_path(s, &sp, to, sizeof to);
    if (rename(path, to) < 0)
        return -1;
    pthread_mutex_lock(&s->mu);
    sp.epoch = s->started;          /* the rename is done: any flush begun later covers it */
    pthread_mutex_unlock(&s->mu);
    if (push(s, sp, st.st_size) < 0)
        unlink(to);
    return 0;
}

size_t spares_count(struct spares *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = 0;
    for (int k = 0; k < SPARE_KINDS; k++)
        n += s->n[k];
    pthread_mutex_unlock(&s->mu);
    return n;
}

long long spares_bytes(struct spares *s)
{
    pthread_mutex_lock(&s->mu);
    long long b = s->bytes;
    pthread_mutex_unlock(&s->mu);
    return b;
}

void spares_close(struct spares *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->mu);
    for (int k = 0; k < SPARE_KINDS; k++)
        free(s->ring[k]);
    free(s);
}

int spare_seal(int fd, long long stale, long long len)
{
    if (stale > len)
        return ftruncate(fd, (off_t)len);
    return 0;
}
