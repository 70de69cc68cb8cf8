/*
 * store/pop3drop.c — the POP3 maildrop over the store: lock file, the
 * numbered listing with sizes as sent, opening a message, UPDATE-state
 * expunges.  Owns only hato.pop3.lock; every message fact comes from the
 * folder's index (store/index.c), which alone assigns UIDs.
 * Never: opens a message file to list one hato delivered, or deletes
 * anything but through store_index_expunge.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/fsutil.h"
#include "lib/log.h"
#include "store/index.h"
#include "store/layout.h"
#include "store/maildir.h"
#include "store/pop3drop.h"

int pop3drop_lock(const char *folder)
{
    char path[PATH_MAX];
    /* the folders a first delivery makes, for a mailbox never delivered to
     * or made by another program; a failure costs only the folders */
    if (store_layout_ensure(folder) != 0)
        log_warn("pop3: %s: cannot make the mailbox's folders: %s", folder, strerror(errno));
    if (maildir_create(folder) != 0)
        return -1;
    if (snprintf(path, sizeof path, "%s/%s", folder, POP3DROP_LOCK) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EINTR)
            continue;
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int pop3drop_name_is_ours(const char *name)
{
    /* SECS.M<usec>P<pid>Q<n>.HOST,S=SIZE (store/maildir.c); Dovecot and
     * mutt never write the Q part */
    const char *p = name;
    static const char marks[] = "MPQ";
    if (*p < '0' || *p > '9')
        return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p++ != '.')
        return 0;
    for (int i = 0; i < 3; i++) {
        if (*p++ != marks[i] || *p < '0' || *p > '9')
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '.' && strstr(p, ",S=") != NULL;
}

void pop3drop_count(const unsigned char *p, size_t n, int64_t *bare_lfs, int *last)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' && *last != '\r')
            (*bare_lfs)++;
        *last = p[i];
    }
}

int64_t pop3drop_wire_size(int64_t file_size, int64_t bare_lfs, int last)
{
    return file_size + bare_lfs + (file_size > 0 && last != '\n' ? 2 : 0);
}

/* ",W=123" (Dovecot's size with CRLF line ends), else -1. */
static int64_t name_wsize(const char *name)
{
    const char *p = strstr(name, ",W=");
    int64_t v = 0;
    if (!p || p[3] < '0' || p[3] > '9')
        return -1;
    for (p += 3; *p >= '0' && *p <= '9'; p++) {
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    return (*p == '\0' || *p == ',' || *p == ':') ? v : -1;
}

/* m's file relative to the folder.  In new/, hato's files never carry
 * ":2,"; anyone else's may (Dovecot and mutt flag files left in new/), so
 * the index finds which name exists (a stat, for foreign files only). */
static int rel_of(const struct store_index *ix, const struct store_msg *m, char **out)
{
    char info[40] = "", path[PATH_MAX];
    if (!m->in_cur && !pop3drop_name_is_ours(m->name) &&
        store_index_msg_path(ix, m, path, sizeof path) == 0) {
        size_t fl = strlen(ix->folder);
        if (strncmp(path, ix->folder, fl) == 0 && path[fl] == '/')
            return (*out = strdup(path + fl + 1)) ? 0 : -1;
    }
    if (m->in_cur)
        store_flags_format(m->flags, m->keywords, info, sizeof info);
    return asprintf(out, "%s/%s%s", m->in_cur ? "cur" : "new", m->name, info) < 0 ? -1 : 0;
}

/* A file someone else wrote: read it and count. */
static int64_t scan_size(const char *folder, const char *rel)
{
    char path[PATH_MAX];
    unsigned char buf[65536];
    int64_t total = 0, bare = 0;
    int last = 0;
    if (snprintf(path, sizeof path, "%s/%s", folder, rel) >= (int)sizeof path)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            close(fd);
            return r < 0 ? -1 : pop3drop_wire_size(total, bare, last);
        }
        pop3drop_count(buf, (size_t)r, &bare, &last);
        total += r;
    }
}

/* ---- the size cache: FOLDER/hato.pop3.sizes, lines "WIRE FILE NAME" for
 * the files that had to be counted (neither hato's nor with ,W=).  A Maildir
 * file never changes, so a base name and its file size identify the count;
 * an entry whose file size differs from the index's is ignored.  Only a
 * cache: lost or damaged, the files are counted again. */

struct size_ent {
    const char *name;           /* into the cache text, or a store_msg's name */
    int64_t fsize, wsize;
};

struct size_cache {
    char *text;                 /* the file read, NUL-terminated */
    struct size_ent *old, *cur; /* as read (sorted by name); as it will be */
    size_t nold, ncur;
    int dirty;
};

static int ent_cmp(const void *a, const void *b)
{
    return strcmp(((const struct size_ent *)a)->name, ((const struct size_ent *)b)->name);
}

static int parse_i64(char **p, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(*p, &end, 10);
    if (errno || end == *p || *end != ' ' || v < 0)
        return -1;
    *out = v;
    *p = end + 1;
    return 0;
}

static void cache_load(const char *folder, struct size_cache *c, size_t nmsgs)
{
    char path[PATH_MAX];
    size_t len = 0;
    memset(c, 0, sizeof *c);
    c->cur = calloc(nmsgs ? nmsgs : 1, sizeof *c->cur);
    if (snprintf(path, sizeof path, "%s/%s", folder, POP3DROP_SIZES) >= (int)sizeof path ||
        fs_read_file_or_empty(path, 64u << 20, &c->text, &len) != 0)
        return;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += c->text[i] == '\n';
    c->old = calloc(lines ? lines : 1, sizeof *c->old);
    for (char *p = c->text, *nl; c->old && (nl = strchr(p, '\n')); p = nl + 1) {
        struct size_ent e;
        *nl = '\0';
        if (parse_i64(&p, &e.wsize) == 0 && parse_i64(&p, &e.fsize) == 0 && *p) {
            e.name = p;
            c->old[c->nold++] = e;
        }
    }
    if (c->old)
        qsort(c->old, c->nold, sizeof *c->old, ent_cmp);
}

/* The counted size of m, from the cache or by reading the file. */
static int64_t cache_size(struct size_cache *c, const char *folder, const struct store_msg *m,
                          const char *rel)
{
    struct size_ent key = { m->name, 0, 0 }, *hit = NULL;
    if (c->old)
        hit = bsearch(&key, c->old, c->nold, sizeof *c->old, ent_cmp);
    int64_t w = hit && hit->fsize == m->size ? hit->wsize : -1;
    if (w < 0) {
        w = scan_size(folder, rel);
        c->dirty = 1;
    }
    if (w >= 0 && c->cur) {
        struct size_ent e = { m->name, m->size, w };
        c->cur[c->ncur++] = e;
    }
    return w;
}

/* Write the cache when it changed (new counts, or entries for files gone). */
static void cache_save(const char *folder, struct size_cache *c)
{
    char path[PATH_MAX];
    if (!c->cur || (!c->dirty && c->ncur == c->nold))
        return;
    size_t cap = 1, n = 0;
    for (size_t i = 0; i < c->ncur; i++)
        cap += strlen(c->cur[i].name) + 44;
    char *out = malloc(cap);
    if (!out)
        return;
    for (size_t i = 0; i < c->ncur; i++)
        n += (size_t)snprintf(out + n, cap - n, "%lld %lld %s\n", (long long)c->cur[i].wsize,
                              (long long)c->cur[i].fsize, c->cur[i].name);
    if (snprintf(path, sizeof path, "%s/%s", folder, POP3DROP_SIZES) < (int)sizeof path)
        (void)fs_replace(path, out, n, 0600);    /* a cache: a failure costs a recount */
    free(out);
}

static void cache_free(struct size_cache *c)
{
    free(c->old);
    free(c->cur);
    free(c->text);
}

static int64_t wire_size(struct size_cache *c, const char *folder, const struct store_msg *m,
                         const char *rel)
{
    int64_t w = name_wsize(m->name);
    if (w >= 0)
        return w;
    if (pop3drop_name_is_ours(m->name))
        return m->size;
    w = cache_size(c, folder, m, rel);
    return w >= 0 ? w : m->size;     /* gone meanwhile: RETR will say so */
}

int pop3drop_load(const char *folder, struct pop3drop **out)
{
    struct store_index *ix = NULL;
    struct size_cache cache;
    struct pop3drop *d = calloc(1, sizeof *d);
    *out = NULL;
    memset(&cache, 0, sizeof cache);
    if (!d || maildir_create(folder) != 0 || store_index_open(folder, &ix) != 0 ||
        store_index_sync(ix) != 0)
        goto fail;
    d->uidvalidity = ix->uidvalidity;
    d->msgs = calloc(ix->n ? ix->n : 1, sizeof *d->msgs);
    if (!d->msgs)
        goto fail;
    cache_load(folder, &cache, ix->n);
    for (size_t i = 0; i < ix->n; i++) {
        struct pop3drop_msg *m = &d->msgs[d->n];
        if (rel_of(ix, &ix->msgs[i], &m->rel) < 0)
            goto fail;
        m->uid = ix->msgs[i].uid;
        m->size = wire_size(&cache, folder, &ix->msgs[i], m->rel);
        d->n++;
    }
    cache_save(folder, &cache);       /* before the index (its names) goes */
    cache_free(&cache);
    store_index_close(ix);
    *out = d;
    return 0;
fail:;
    int e = errno;
    cache_free(&cache);
    store_index_close(ix);
    pop3drop_free(d);
    errno = e ? e : EIO;
    return -1;
}

void pop3drop_free(struct pop3drop *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->msgs[i].rel);
    free(d->msgs);
    free(d);
}

static int open_rel(const char *folder, const char *rel)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", folder, rel) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return open(path, O_RDONLY | O_CLOEXEC);
}

int pop3drop_open(const char *folder, struct pop3drop_msg *m)
{
    int fd = open_rel(folder, m->rel);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    struct store_index *ix = NULL;
    if (store_index_open(folder, &ix) != 0 || store_index_sync(ix) != 0) {
        store_index_close(ix);
        errno = ENOENT;
        return -1;
    }
    const struct store_msg *sm = store_index_find(ix, m->uid);
    char *rel = NULL;
    if (sm && rel_of(ix, sm, &rel) == 0) {
        free(m->rel);            /* the session's copy follows the file */
        m->rel = rel;
        fd = open_rel(folder, m->rel);
    } else {
        errno = ENOENT;
    }
    store_index_close(ix);
    return fd;
}

long pop3drop_expunge(const char *folder, const uint32_t *uids, size_t n)
{
    struct store_index *ix = NULL;
    long failed = 0;
    if (store_index_open(folder, &ix) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (store_index_expunge(ix, uids[i]) < 0)
            failed++;
    store_index_close(ix);
    return failed;
}
