/*
 * store/index.c — the per-folder index (store/index.h): its file format,
 * the reader, the writers (delivery, sync with the Maildir, flag changes,
 * expunges), compaction and the rebuild of a lost or corrupt index.
 *
 * File: header (32 octets, little-endian)
 *   "HATOIX01" | uidvalidity u32 | uidnext u32 | highestmodseq u64 |
 *   reserved u32 | crc32 of the 28 octets before
 * then records, each
 *   len u32 | type u8 | 0 0 0 | uid u32 | uidnext u32 | modseq u64 |
 *   flags u32 | 0 u32 | keywords u64 | size i64 | date i64 | hdr_end i64 |
 *   name_len u16 | in_cur u8 | 0 | name | crc32 of all before | len u32
 * uidnext and modseq are the folder's after the record, so a delivery reads
 * the header and the last record only (the trailing len finds it).
 *
 * Never: writes without the lock, reuses a UID, assigns a UID to a name that
 * has one, keeps a record it cannot checksum.  Worker threads only.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/fsutil.h"
#include "lib/log.h"
#include "store/index.h"
#include "store/uidlist.h"
#include "store/maildir.h"

#define IX_MAGIC        "HATOIX01"
#define IX_HDR          STORE_INDEX_HDR_LEN
#define IX_FIXED        STORE_INDEX_REC_FIXED   /* record octets before the name */
#define IX_REC_MIN      (IX_FIXED + 8)
#define IX_REC_MAX      (IX_FIXED + NAME_MAX + 8)
#define IX_MODE         0600
#define IX_READ_CHUNK   (256 * 1024)
#define IX_HDR_SCAN_MAX (1024 * 1024) /* header end searched this far */
#define IX_SCAN_TRIES   3

enum { REC_APPEND = 1, REC_FLAGS = 2, REC_EXPUNGE = 3 };

/* ---- checksums and little-endian fields ------------------------------ */

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t store_index_crc32(const unsigned char *p, size_t len)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    uint32_t c = 0xFFFFFFFFu;

    pthread_once(&once, crc_init);
    while (len--)
        c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* ---- flags ------------------------------------------------------------ */

static const char flag_letters[] = "DFPRST";   /* bit i = letter i */

void store_flags_parse(const char *info, uint32_t *flags, uint64_t *keywords)
{
    *flags = 0;
    *keywords = 0;
    if (info == NULL || strncmp(info, "2,", 2) != 0)
        return;
    for (const char *p = info + 2; *p; p++) {
        const char *f = strchr(flag_letters, *p);
        if (*p >= 'a' && *p <= 'z')
            *keywords |= 1ull << (*p - 'a');
        else if (f != NULL)
            *flags |= 1u << (f - flag_letters);
    }
}

void store_flags_format(uint32_t flags, uint64_t keywords, char *buf, size_t len)
{
    size_t o = 0;

    if (len < 40) {
        if (len)
            buf[0] = '\0';
        return;
    }
    memcpy(buf, ":2,", 3);
    o = 3;
    for (int i = 0; flag_letters[i]; i++)
        if (flags & (1u << i))
            buf[o++] = flag_letters[i];
    for (int i = 0; i < 26; i++)
        if (keywords & (1ull << i))
            buf[o++] = (char)('a' + i);
    buf[o] = '\0';
}

/* Split a Maildir file name: base length and the info after ':' (or NULL). */
static size_t name_split(const char *name, const char **info)
{
    const char *c = strchr(name, ':');

    *info = c ? c + 1 : NULL;
    return c ? (size_t)(c - name) : strlen(name);
}

/* ---- the in-memory state ---------------------------------------------- */

struct store_index *store_index_new_empty(void)
{
    struct store_index *ix = calloc(1, sizeof(*ix));

    if (ix == NULL)
        return NULL;
    ix->fd = -1;
    ix->lockfd = -1;
    return ix;
}

static void msgs_clear(struct store_index *ix)
{
    for (size_t i = 0; i < ix->n; i++)
        free(ix->msgs[i].name);
    ix->n = 0;
}

/* Forget everything read from the file (before a reload). */
static void state_reset(struct store_index *ix)
{
    msgs_clear(ix);
    ix->parsed = 0;
    ix->nrec = 0;
    ix->snap_left = 0;
    ix->uidvalidity = 0;
    ix->uidnext = 0;
    ix->highestmodseq = 0;
    ix->bad = 0;
}

void store_index_close(struct store_index *ix)
{
    if (ix == NULL)
        return;
    msgs_clear(ix);
    free(ix->msgs);
    if (ix->fd >= 0)
        (void)close(ix->fd);
    if (ix->lockfd >= 0)
        (void)close(ix->lockfd);
    free(ix->folder);
    free(ix);
}

static long msg_pos(const struct store_index *ix, uint32_t uid)
{
    size_t lo = 0, hi = ix->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->msgs[mid].uid == uid)
            return (long)mid;
        if (ix->msgs[mid].uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

const struct store_msg *store_index_find(const struct store_index *ix, uint32_t uid)
{
    long p = msg_pos(ix, uid);

    return p < 0 ? NULL : &ix->msgs[p];
}

/* ---- records ----------------------------------------------------------- */

size_t store_index_rec_encode(const struct store_index_rec *r, unsigned char *out)
{
    size_t len = IX_FIXED + r->name_len + 8;

    memset(out, 0, IX_FIXED);
    put32(out, (uint32_t)len);
    out[4] = (unsigned char)r->type;
    put32(out + 8, r->uid);
    put32(out + 12, r->uidnext);
    put64(out + 16, r->modseq);
    put32(out + 24, r->flags);
    put64(out + 32, r->keywords);
    put64(out + 40, (uint64_t)r->size);
    put64(out + 48, (uint64_t)r->date);
    put64(out + 56, (uint64_t)r->hdr_end);
    out[64] = (unsigned char)(r->name_len & 0xFF);
    out[65] = (unsigned char)(r->name_len >> 8);
    out[66] = (unsigned char)(r->in_cur != 0);
    memcpy(out + IX_FIXED, r->name, r->name_len);
    put32(out + IX_FIXED + r->name_len, store_index_crc32(out, IX_FIXED + r->name_len));
    put32(out + IX_FIXED + r->name_len + 4, (uint32_t)len);
    return len;
}

/* A whole record at p (len octets, len already in range): 0, or -1. */
static int rec_decode(const unsigned char *p, size_t len, struct store_index_rec *r)
{
    size_t nl = (size_t)p[64] | (size_t)p[65] << 8;

    if (nl != len - IX_REC_MIN || get32(p + len - 4) != len
        || get32(p + len - 8) != store_index_crc32(p, len - 8))
        return -1;
    r->type = p[4];
    r->uid = get32(p + 8);
    r->uidnext = get32(p + 12);
    r->modseq = get64(p + 16);
    r->flags = get32(p + 24);
    r->keywords = get64(p + 32);
    r->size = (int64_t)get64(p + 40);
    r->date = (int64_t)get64(p + 48);
    r->hdr_end = (int64_t)get64(p + 56);
    r->in_cur = p[66] != 0;
    r->name = (const char *)p + IX_FIXED;
    r->name_len = nl;
    return 0;
}

static int msg_push(struct store_index *ix, const struct store_index_rec *r)
{
    struct store_msg *m;

    if (ix->n == ix->cap) {
        size_t cap = ix->cap ? ix->cap * 2 : 64;
        struct store_msg *v = realloc(ix->msgs, cap * sizeof(*v));
        if (v == NULL)
            return -1;
        ix->msgs = v;
        ix->cap = cap;
    }
    m = &ix->msgs[ix->n];
    m->name = strndup(r->name, r->name_len);
    if (m->name == NULL)
        return -1;
    m->uid = r->uid;
    m->flags = r->flags;
    m->keywords = r->keywords;
    m->modseq = r->modseq;
    m->size = r->size;
    m->date = r->date;
    m->hdr_end = r->hdr_end;
    m->in_cur = r->in_cur;
    ix->n++;
    return 0;
}

/* Apply one decoded record.  0, or -1 when it breaks an invariant. */
static int rec_apply(struct store_index *ix, const struct store_index_rec *r)
{
    long p;

    if (r->modseq <= ix->highestmodseq || r->uidnext < ix->uidnext)
        return -1;
    if (r->type == REC_APPEND) {
        if (r->uid < ix->uidnext || r->uidnext <= r->uid || r->name_len == 0
            || memchr(r->name, '\0', r->name_len) || memchr(r->name, '/', r->name_len))
            return -1;
        if (msg_push(ix, r) != 0)
            return -1;
    } else if (r->type == REC_FLAGS || r->type == REC_EXPUNGE) {
        if (r->name_len != 0 || r->uid >= ix->uidnext)
            return -1;
        p = msg_pos(ix, r->uid);
        if (p >= 0 && r->type == REC_FLAGS) {
            ix->msgs[p].flags = r->flags;
            ix->msgs[p].keywords = r->keywords;
            ix->msgs[p].in_cur = r->in_cur;
            ix->msgs[p].modseq = r->modseq;
        } else if (p >= 0) {
            free(ix->msgs[p].name);
            memmove(&ix->msgs[p], &ix->msgs[p + 1], (ix->n - (size_t)p - 1) * sizeof(ix->msgs[0]));
            ix->n--;
        }
    } else {
        return -1;
    }
    ix->uidnext = r->uidnext;
    ix->highestmodseq = r->modseq;
    ix->nrec++;
    return 0;
}

static int hdr_decode(struct store_index *ix, const unsigned char *p)
{
    if (memcmp(p, IX_MAGIC, 8) != 0 || get32(p + 28) != store_index_crc32(p, 28))
        return -1;
    ix->uidvalidity = get32(p + 8);
    ix->uidnext = get32(p + 12);
    ix->snap_left = get32(p + 16);
    ix->highestmodseq = get64(p + 20);
    if (ix->uidvalidity == 0 || ix->uidnext == 0 || ix->snap_left >= ix->uidnext)
        return -1;
    return 0;
}

/* A header (store/index.h).  A snapshot's gives the folder's state, and how
 * many APPEND records (one per message, UID order, modseqs up to the
 * header's) follow. */
void store_index_hdr_encode(unsigned char *p, uint32_t uidvalidity, uint32_t uidnext,
                            uint32_t nsnap, uint64_t highestmodseq)
{
    memset(p, 0, IX_HDR);
    memcpy(p, IX_MAGIC, 8);
    put32(p + 8, uidvalidity);
    put32(p + 12, uidnext);
    put32(p + 16, nsnap);
    put64(p + 20, highestmodseq);
    put32(p + 28, store_index_crc32(p, 28));
}

/* A snapshot record: an APPEND below the header's UIDNEXT and modseq. */
static int snap_apply(struct store_index *ix, const struct store_index_rec *r)
{
    uint32_t last = ix->n ? ix->msgs[ix->n - 1].uid : 0;

    if (r->type != REC_APPEND || r->uid <= last || r->uid >= ix->uidnext
        || r->uidnext != ix->uidnext || r->modseq > ix->highestmodseq || r->name_len == 0
        || memchr(r->name, '\0', r->name_len) || memchr(r->name, '/', r->name_len))
        return -1;
    if (msg_push(ix, r) != 0)
        return -1;
    ix->snap_left--;
    ix->nrec++;
    return 0;
}

/* A run of zeros where a record should start: after a power loss, an append
 * that never reached the disk while a later one did (unflushed writes are not
 * ordered).  Its records were never durable, so never acknowledged; the next
 * record starts at the first non-zero octet, or one before it (a length of
 * 256 starts with a zero).  0: *off moved to that record; 1: not enough
 * octets to tell yet; -1: no record there. */
static int hole_skip(const unsigned char *buf, size_t len, size_t *off)
{
    size_t p = *off;
    struct store_index_rec r;

    while (p < len && buf[p] == 0)
        p++;
    if (p == len)
        return 1;
    for (size_t q = p - 1; q <= p; q++) {
        size_t rl;
        if (len - q < 4)
            return 1;
        rl = get32(buf + q);
        if (rl < IX_REC_MIN || rl > IX_REC_MAX)
            continue;
        if (len - q < rl)
            return 1;
        if (rec_decode(buf + q, rl, &r) == 0) {
            *off = q;
            return 0;
        }
    }
    return -1;
}

size_t store_index_feed(struct store_index *ix, const unsigned char *buf, size_t len)
{
    size_t off = 0;

    ix->bad = 0;
    if (ix->parsed == 0) {
        if (len < IX_HDR)
            return 0;
        if (hdr_decode(ix, buf) != 0) {
            ix->bad = 2;
            return 0;
        }
        off = IX_HDR;
    }
    while (len - off >= 4) {
        size_t rl = get32(buf + off);
        struct store_index_rec r;
        if (rl == 0) {
            int h = hole_skip(buf, len, &off);
            if (h == 0)
                continue;
            ix->bad = h < 0 ? 1 : 0;
            break;
        }
        if (rl < IX_REC_MIN || rl > IX_REC_MAX) {
            ix->bad = 1;
            break;
        }
        if (len - off < rl)
            break;
        if (rec_decode(buf + off, rl, &r) != 0) {
            ix->bad = 1;
            break;
        }
        if ((ix->snap_left ? snap_apply(ix, &r) : rec_apply(ix, &r)) != 0) {
            ix->bad = 2;
            break;
        }
        off += rl;
    }
    ix->parsed += off;
    return off;
}

/* ---- file helpers ------------------------------------------------------ */

static char *folder_path(const char *folder, const char *name)
{
    char *p = NULL;

    if (asprintf(&p, "%s/%s", folder, name) < 0)
        return NULL;
    return p;
}

static int lock_take(struct store_index *ix, int how)
{
    char *p = folder_path(ix->folder, STORE_INDEX_LOCK);
    int fd;

    if (p == NULL)
        return -1;
    fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, IX_MODE);
    free(p);
    if (fd < 0)
        return -1;
    while (flock(fd, how) != 0) {
        if (errno != EINTR) {
            (void)close(fd);
            return -1;
        }
    }
    ix->lockfd = fd;
    return 0;
}

static void lock_drop(struct store_index *ix)
{
    if (ix->lockfd >= 0)
        (void)close(ix->lockfd);     /* releases the flock */
    ix->lockfd = -1;
}

/* Read fd from `from` to its end into a malloc'ed buffer. */
static int read_from(int fd, uint64_t from, unsigned char **out, size_t *outlen)
{
    struct stat st;
    unsigned char *buf;
    size_t got = 0, want;

    *out = NULL;
    *outlen = 0;
    if (fstat(fd, &st) != 0)
        return -1;
    if ((uint64_t)st.st_size <= from)
        return 0;
    want = (size_t)((uint64_t)st.st_size - from);
    buf = malloc(want);
    if (buf == NULL)
        return -1;
    while (got < want) {
        ssize_t r = pread(fd, buf + got, want - got, (off_t)(from + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    *out = buf;
    *outlen = got;
    return 0;
}

/* What the bytes left after a stop are: 0 a torn tail (an append that never
 * completed: safe to cut), 1 corruption (records may follow). */
static int tail_is_corrupt(const struct store_index *ix, const unsigned char *p, size_t n)
{
    size_t rl;

    if (ix->bad == 2)
        return 1;
    size_t z = 0;

    while (z < n && p[z] == 0)       /* a hole before the torn record */
        z++;
    if (n - z < 4 || z == n)
        return 0;
    if (z > 0 && (get32(p + z) < IX_REC_MIN || get32(p + z) > IX_REC_MAX))
        z--;                         /* a length of 256 starts with a zero */
    p += z;
    n -= z;
    rl = get32(p);
    if (rl >= IX_REC_MIN && rl <= IX_REC_MAX && rl >= n)
        return 0;              /* the last record, short or unchecksummed */
    return 1;
}

/* Apply new bytes of the open file.  Returns 0 (and *corrupt: 0 clean or
 * torn tail, 1 corrupt), or -1 on I/O error. */
static int apply_new(struct store_index *ix, int *corrupt, uint64_t *good_end)
{
    unsigned char *buf;
    size_t len, used;

    *corrupt = 0;
    if (read_from(ix->fd, ix->parsed, &buf, &len) != 0)
        return -1;
    used = store_index_feed(ix, buf, len);
    if (used < len || (ix->parsed == 0 && len > 0))
        *corrupt = ix->parsed == 0 ? 1 : tail_is_corrupt(ix, buf + used, len - used);
    *good_end = ix->parsed;
    free(buf);
    return 0;
}

/* Open the index file; 0, 1 if missing, -1. */
static int file_open(struct store_index *ix)
{
    char *p = folder_path(ix->folder, STORE_INDEX_FILE);
    struct stat st;

    if (p == NULL)
        return -1;
    if (ix->fd >= 0)
        (void)close(ix->fd);
    ix->fd = open(p, O_RDWR | O_APPEND | O_CLOEXEC);
    free(p);
    if (ix->fd < 0)
        return errno == ENOENT ? 1 : -1;
    if (fstat(ix->fd, &st) != 0)
        return -1;
    ix->ino = st.st_ino;
    ix->dev = st.st_dev;
    return 0;
}

/* 1 if the path no longer names our open file (compacted, rebuilt, lost). */
static int file_replaced(const struct store_index *ix)
{
    char *p = folder_path(ix->folder, STORE_INDEX_FILE);
    struct stat st;
    int r;

    if (p == NULL)
        return 1;
    r = stat(p, &st);
    free(p);
    return ix->fd < 0 || r != 0 || (uint64_t)st.st_ino != ix->ino || (uint64_t)st.st_dev != ix->dev;
}

/* ---- the Maildir side -------------------------------------------------- */

struct dent {
    char *name;                /* the whole file name */
    size_t base_len;
    int in_cur;
    uint32_t flags;
    uint64_t keywords;
};

struct listing {
    struct dent *v;
    size_t n, cap;
};

static void listing_free(struct listing *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].name);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static int listing_add(struct listing *l, const char *name, int in_cur)
{
    struct dent *d;
    const char *info;

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        struct dent *v = realloc(l->v, cap * sizeof(*v));
        if (v == NULL)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    d = &l->v[l->n];
    d->name = strdup(name);
    if (d->name == NULL)
        return -1;
    d->base_len = name_split(d->name, &info);
    d->in_cur = in_cur;
    store_flags_parse(info, &d->flags, &d->keywords);
    if (d->base_len == 0 || d->base_len > NAME_MAX - 40) {
        free(d->name);             /* no base, or no room for our flags */
        return 0;
    }
    l->n++;
    return 0;
}

static int mtime_of(const char *folder, const char *sub, struct timespec *ts)
{
    char path[PATH_MAX];
    struct stat st;

    if (snprintf(path, sizeof(path), "%s/%s", folder, sub) >= (int)sizeof(path))
        return -1;
    if (stat(path, &st) != 0)
        return -1;
    *ts = st.st_mtim;
    return 0;
}

static int list_dir(const char *folder, const char *sub, int in_cur, struct listing *l)
{
    char path[PATH_MAX];
    struct dirent *de;
    DIR *d;

    if (snprintf(path, sizeof(path), "%s/%s", folder, sub) >= (int)sizeof(path))
        return -1;
    d = opendir(path);
    if (d == NULL)
        return errno == ENOENT ? 0 : -1;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
            continue;
        if (listing_add(l, de->d_name, in_cur) != 0) {
            (void)closedir(d);
            return -1;
        }
    }
    return closedir(d);
}

static int dent_cmp(const void *a, const void *b)
{
    const struct dent *x = a, *y = b;
    size_t n = x->base_len < y->base_len ? x->base_len : y->base_len;
    int c = memcmp(x->name, y->name, n);

    if (c != 0)
        return c;
    if (x->base_len != y->base_len)
        return x->base_len < y->base_len ? -1 : 1;
    return x->in_cur - y->in_cur;            /* cur/ last: it wins */
}

/* new/ then cur/ (a file moving new/ → cur/ is seen at least once), again
 * while either directory changed during the listing; sorted by base, one
 * entry per base (the cur/ one). */
static int list_maildir(const char *folder, struct listing *l)
{
    for (int t = 0; t < IX_SCAN_TRIES; t++) {
        struct timespec n0, c0, n1, c1;
        int have = mtime_of(folder, "new", &n0) == 0 && mtime_of(folder, "cur", &c0) == 0;
        listing_free(l);
        if (list_dir(folder, "new", 0, l) != 0 || list_dir(folder, "cur", 1, l) != 0)
            return -1;
        if (!have || (mtime_of(folder, "new", &n1) == 0 && mtime_of(folder, "cur", &c1) == 0
                      && n0.tv_sec == n1.tv_sec && n0.tv_nsec == n1.tv_nsec
                      && c0.tv_sec == c1.tv_sec && c0.tv_nsec == c1.tv_nsec))
            break;
    }
    if (l->n > 1)
        qsort(l->v, l->n, sizeof(l->v[0]), dent_cmp);
    size_t o = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (i + 1 < l->n && l->v[i].base_len == l->v[i + 1].base_len
            && memcmp(l->v[i].name, l->v[i + 1].name, l->v[i].base_len) == 0) {
            free(l->v[i].name);
            continue;
        }
        l->v[o++] = l->v[i];
    }
    l->n = o;
    return 0;
}

/* ",S=123" in a name → 123, else -1. */
static int64_t name_size(const char *name, size_t base_len)
{
    const char *p = memmem(name, base_len, ",S=", 3);
    int64_t v = 0;

    if (p == NULL)
        return -1;
    for (p += 3; p < name + base_len && *p >= '0' && *p <= '9'; p++) {
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

/* Offset after the header's blank line ("\n\n" or "\n\r\n"); the file size
 * when there is none. */
static int64_t header_end_fd(int fd, int64_t fsize)
{
    unsigned char buf[8192];
    int64_t off = 0;
    int state = 1;                 /* 1: at a line start */

    while (off < fsize && off < IX_HDR_SCAN_MAX) {
        ssize_t r = pread(fd, buf, sizeof(buf), (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r; i++) {
            unsigned char c = buf[i];
            if (c == '\n') {
                if (state == 1 || state == 2)
                    return off + i + 1;
                state = 1;
            } else {
                state = state == 1 && c == '\r' ? 2 : 0;
            }
        }
        off += r;
    }
    return fsize;
}

struct newfile {
    struct dent *d;
    int64_t mtime_ns, size, hdr_end, date;
    uint32_t want;             /* the UID dovecot-uidlist gave it, or 0 */
};

/* Files with an adopted UID first, by it; then the rest by (mtime, name). */
static int newfile_cmp(const void *a, const void *b)
{
    const struct newfile *x = a, *y = b;

    if ((x->want != 0) != (y->want != 0))
        return x->want ? -1 : 1;
    if (x->want != y->want)
        return x->want < y->want ? -1 : 1;
    if (x->mtime_ns != y->mtime_ns)
        return x->mtime_ns < y->mtime_ns ? -1 : 1;
    return strcmp(x->d->name, y->d->name);
}

/* Facts of a file not yet indexed; 0, or 1 if it vanished. */
static int newfile_stat(const char *folder, struct newfile *f)
{
    char path[PATH_MAX];
    struct stat st;
    int fd;

    if (snprintf(path, sizeof(path), "%s/%s/%s", folder, f->d->in_cur ? "cur" : "new",
                 f->d->name) >= (int)sizeof(path))
        return 1;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            (void)close(fd);
        return 1;
    }
    f->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    f->date = (int64_t)st.st_mtim.tv_sec;
    f->size = name_size(f->d->name, f->d->base_len);
    if (f->size < 0)
        f->size = (int64_t)st.st_size;
    f->hdr_end = header_end_fd(fd, (int64_t)st.st_size);
    (void)close(fd);
    return 0;
}

/* ---- writing ----------------------------------------------------------- */

struct out {
    unsigned char *p;
    size_t len, cap;
};

static int out_rec(struct out *o, const struct store_index_rec *r)
{
    if (o->len + IX_REC_MAX > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64 * 1024;
        while (cap < o->len + IX_REC_MAX)
            cap *= 2;
        unsigned char *v = realloc(o->p, cap);
        if (v == NULL)
            return -1;
        o->p = v;
        o->cap = cap;
    }
    o->len += store_index_rec_encode(r, o->p + o->len);
    return 0;
}

/* Append records (one write) and apply them through the reader; then, unless
 * nosync, fdatasync before the lock goes. */
static int append_out(struct store_index *ix, struct out *o, int nosync)
{
    if (o->len == 0)
        return 0;
    if (fs_write_all(ix->fd, o->p, o->len) != 0)
        return -1;
    if (store_index_feed(ix, o->p, o->len) != o->len) {
        errno = EIO;
        return -1;
    }
    if (!nosync && fdatasync(ix->fd) != 0)
        return -1;
    return 0;
}

/* Write header + one APPEND per message to hato.index.tmp, fsync, rename
 * over hato.index, fsync the folder; reopen. */
static int snapshot_write(struct store_index *ix)
{
    char *tmp = folder_path(ix->folder, STORE_INDEX_FILE ".tmp");
    char *dst = folder_path(ix->folder, STORE_INDEX_FILE);
    struct out o = { 0 };
    int fd = -1, rc = -1;

    if (tmp == NULL || dst == NULL)
        goto out;
    o.cap = IX_HDR + IX_REC_MAX * (ix->n + 1);
    o.p = malloc(o.cap);
    if (o.p == NULL)
        goto out;
    store_index_hdr_encode(o.p, ix->uidvalidity, ix->uidnext, (uint32_t)ix->n,
                           ix->highestmodseq);
    o.len = IX_HDR;
    for (size_t i = 0; i < ix->n; i++) {
        const struct store_msg *m = &ix->msgs[i];
        struct store_index_rec r = { REC_APPEND, m->uid, ix->uidnext, m->flags, m->modseq,
                                     m->keywords, m->size, m->date, m->hdr_end, m->in_cur,
                                     m->name, strlen(m->name) };
        /* modseqs must grow through the file: the header holds the base */
        if (out_rec(&o, &r) != 0)
            goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, IX_MODE);
    if (fd < 0 || fs_write_all(fd, o.p, o.len) != 0 || fsync(fd) != 0)
        goto out;
    if (close(fd) != 0) {
        fd = -1;
        goto out;
    }
    fd = -1;
    if (rename(tmp, dst) != 0 || fs_fsync_dir(ix->folder) != 0)
        goto out;
    rc = 0;
out:
    if (fd >= 0)
        (void)close(fd);
    if (rc != 0 && tmp != NULL)
        (void)unlink(tmp);
    free(tmp);
    free(dst);
    free(o.p);
    return rc;
}

/* Reload the whole file after a snapshot (ours or another writer's). */
static int reload(struct store_index *ix, int *corrupt, int *missing)
{
    uint64_t end;
    int r;

    *corrupt = 0;
    *missing = 0;
    state_reset(ix);
    r = file_open(ix);
    if (r != 0) {
        *missing = r == 1;
        return r == 1 ? 0 : -1;
    }
    return apply_new(ix, corrupt, &end);
}

static int sync_locked(struct store_index *ix, int nosync);
static int sync_run(struct store_index *ix, int nosync, const struct store_uidlist *ad);

/* A fresh index from the Maildir.  Snapshot modseqs are at most the
 * header's highestmodseq, so the header is written with the state first
 * and the messages are then appended with rising modseqs by the sync. */
/* The lock file remembers the last UIDVALIDITY given ("%u\n"), so a new
 * one is greater even when the index itself is gone. */
static uint32_t validity_hint(const struct store_index *ix)
{
    char buf[16] = { 0 };
    ssize_t r = pread(ix->lockfd, buf, sizeof(buf) - 1, 0);

    return r > 0 ? (uint32_t)strtoul(buf, NULL, 10) : 0;
}

static void validity_remember(const struct store_index *ix, uint32_t v)
{
    char buf[16];
    int n = snprintf(buf, sizeof(buf), "%u\n", v);

    if (ftruncate(ix->lockfd, 0) != 0 || pwrite(ix->lockfd, buf, (size_t)n, 0) != n)
        log_warn("store: %s/%s: cannot record UIDVALIDITY %u", ix->folder, STORE_INDEX_LOCK, v);
}

/* A folder never indexed here that Dovecot kept: its UIDs, or NULL. */
static struct store_uidlist *adoptable(const struct store_index *ix, uint32_t old, uint32_t hint)
{
    struct store_uidlist *ad = calloc(1, sizeof(*ad));

    if (ad == NULL || old != 0 || hint != 0 || store_uidlist_read(ix->folder, ad) != 0
        || ad->n == 0) {
        if (ad)
            store_uidlist_free(ad);
        free(ad);
        return NULL;
    }
    return ad;
}

static void adopt_free(struct store_uidlist *ad)
{
    if (ad)
        store_uidlist_free(ad);
    free(ad);
}

static int rebuild(struct store_index *ix, uint32_t old_validity, const char *why)
{
    uint32_t v = (uint32_t)time(NULL), hint = validity_hint(ix);
    struct store_uidlist *ad = why == NULL ? adoptable(ix, old_validity, hint) : NULL;

    if (why == NULL && hint != 0)
        why = "was lost";               /* the lock file outlived it */
    if (hint > old_validity)
        old_validity = hint;
    if (v <= old_validity)
        v = old_validity + 1;
    if (ad)
        v = ad->validity;
    validity_remember(ix, v);
    state_reset(ix);
    ix->uidvalidity = v;
    ix->uidnext = 1;
    ix->highestmodseq = 1;
    int corrupt, missing;
    if (snapshot_write(ix) != 0 || reload(ix, &corrupt, &missing) != 0 || corrupt || missing
        || sync_run(ix, 0, ad) != 0) {
        adopt_free(ad);
        return -1;
    }
    if (ad && ix->uidnext < ad->next) {
        /* no file left to carry Dovecot's next UID: its UIDVALIDITY would
         * let UIDs it gave come back, so start afresh with one of ours */
        adopt_free(ad);
        return rebuild(ix, v, "had Dovecot's UIDs but no message left to carry them");
    }
    if (ad) {
        log_info("store: %s: indexed %zu messages, UIDs and UIDVALIDITY %u taken from %s",
                 ix->folder, ix->n, v, STORE_UIDLIST_FILE);
        adopt_free(ad);
        return 0;
    }
    if (why == NULL) {                  /* a new folder, or one never indexed */
        if (ix->n > 1)
            log_info("store: %s: indexed %zu messages from the Maildir (UIDVALIDITY %u)",
                     ix->folder, ix->n, v);
        return 0;
    }
    ix->rebuilt++;
    if (why != NULL)
        log_warn("store: %s/%s %s: rebuilt from the Maildir with new UIDVALIDITY %u (%zu messages)",
                 ix->folder, STORE_INDEX_FILE, why, v, ix->n);
    return 0;
}

/* Under the lock: bring the state up to the file, cutting a torn tail and
 * rebuilding a corrupt or vanished index. */
static int refresh_locked(struct store_index *ix)
{
    uint32_t old = ix->uidvalidity;
    uint64_t end;
    int corrupt = 0, missing = 0;

    if (file_replaced(ix)) {
        if (reload(ix, &corrupt, &missing) != 0)
            return -1;
    } else if (apply_new(ix, &corrupt, &end) != 0) {
        return -1;
    }
    if (missing)
        return rebuild(ix, old, old ? "vanished" : NULL);
    if (corrupt)
        return rebuild(ix, ix->uidvalidity > old ? ix->uidvalidity : old, "is corrupt");
    struct stat st;
    if (fstat(ix->fd, &st) != 0)
        return -1;
    if ((uint64_t)st.st_size > ix->parsed) {
        log_warn("store: %s/%s: cut a torn last record (%llu octets)", ix->folder,
                 STORE_INDEX_FILE, (unsigned long long)((uint64_t)st.st_size - ix->parsed));
        if (ftruncate(ix->fd, (off_t)ix->parsed) != 0 || fdatasync(ix->fd) != 0)
            return -1;
    }
    return 0;
}

/* Compact when the log holds twice the records it needs. */
static int maybe_compact(struct store_index *ix)
{
    int corrupt, missing;

    if (ix->nrec < 2 * (uint64_t)ix->n + 1024)
        return 0;
    if (snapshot_write(ix) != 0 || reload(ix, &corrupt, &missing) != 0)
        return -1;
    return corrupt || missing ? -1 : 0;
}

static int name_cmp_msg(const void *a, const void *b)
{
    const struct store_msg *x = *(const struct store_msg *const *)a;
    const struct store_msg *y = *(const struct store_msg *const *)b;

    return strcmp(x->name, y->name);
}

static int dent_vs_msg(const struct dent *d, const struct store_msg *m)
{
    size_t ml = strlen(m->name), n = d->base_len < ml ? d->base_len : ml;
    int c = memcmp(d->name, m->name, n);

    if (c != 0)
        return c;
    return d->base_len == ml ? 0 : d->base_len < ml ? -1 : 1;
}

/* Is the file of m still there under the name the index knows? */
/* The file of m as it is on disk into buf.  In cur/ its name carries
 * ":2,FLAGS"; in new/ it may or may not (Dovecot and mutt put flags on
 * files they leave in new/), so both are tried.  0, 1 if none exists, -1. */
static int msg_locate(const struct store_index *ix, const struct store_msg *m, char *buf,
                      size_t len)
{
    char info[40];
    struct stat st;

    store_flags_format(m->flags, m->keywords, info, sizeof(info));
    const char *tries[3] = { m->in_cur ? info : "", m->in_cur ? NULL : info,
                             m->in_cur ? NULL : ":2," };
    for (size_t i = 0; i < 3; i++) {
        if (tries[i] == NULL || (i == 2 && strcmp(info, ":2,") == 0))
            continue;
        if (snprintf(buf, len, "%s/%s/%s%s", ix->folder, m->in_cur ? "cur" : "new", m->name,
                     tries[i]) >= (int)len) {
            errno = ENAMETOOLONG;
            return -1;
        }
        if (lstat(buf, &st) == 0)
            return 0;
        if (errno != ENOENT)
            return -1;
    }
    return 1;
}

int store_index_msg_path(const struct store_index *ix, const struct store_msg *m, char *buf,
                         size_t len)
{
    return msg_locate(ix, m, buf, len);
}

static int msg_file_exists(const struct store_index *ix, const struct store_msg *m)
{
    char path[PATH_MAX];

    return msg_locate(ix, m, path, sizeof(path)) == 0;
}

struct sync_work {
    struct out o;
    struct newfile *nf;
    size_t nnf;
    const struct store_msg **byname;
};

static struct store_index_rec rec_change(struct store_index *ix, int type,
                                         const struct store_msg *m, uint64_t modseq)
{
    struct store_index_rec r = { type, m->uid, ix->uidnext, m->flags, modseq, m->keywords,
                                 0, 0, 0, m->in_cur, "", 0 };
    return r;
}

/* Compare the listing with the index: flag changes and expunges into w->o,
 * files without a UID into w->nf. */
static int sync_diff(struct store_index *ix, struct listing *l, struct sync_work *w, uint64_t *ms)
{
    size_t i = 0, k = 0;

    w->byname = malloc((ix->n + 1) * sizeof(*w->byname));
    w->nf = calloc(l->n + 1, sizeof(*w->nf));
    if (w->byname == NULL || w->nf == NULL)
        return -1;
    for (size_t j = 0; j < ix->n; j++)
        w->byname[j] = &ix->msgs[j];
    qsort(w->byname, ix->n, sizeof(*w->byname), name_cmp_msg);
    while (i < l->n || k < ix->n) {
        int c = i >= l->n ? 1 : k >= ix->n ? -1 : dent_vs_msg(&l->v[i], w->byname[k]);
        if (c < 0) {
            w->nf[w->nnf++].d = &l->v[i++];
            continue;
        }
        const struct store_msg *m = w->byname[k++];
        struct store_index_rec r;
        if (c > 0) {
            if (msg_file_exists(ix, m))
                continue;             /* missed by a racing readdir */
            r = rec_change(ix, REC_EXPUNGE, m, ++*ms);
        } else {
            const struct dent *d = &l->v[i++];
            if (d->flags == m->flags && d->keywords == m->keywords && d->in_cur == m->in_cur)
                continue;
            r = rec_change(ix, REC_FLAGS, m, ++*ms);
            r.flags = d->flags;
            r.keywords = d->keywords;
            r.in_cur = d->in_cur;
        }
        if (out_rec(&w->o, &r) != 0)
            return -1;
    }
    return 0;
}

/* New files: facts, stable order, next UIDs.  With ad (a first indexing
 * of a folder Dovecot kept): files it lists keep its UIDs, the others
 * follow from its next UID, and UIDNEXT is never below that. */
static int sync_new(struct store_index *ix, struct sync_work *w, uint64_t *ms,
                    const struct store_uidlist *ad)
{
    size_t o = 0;
    uint32_t uid = ix->uidnext;

    for (size_t j = 0; j < w->nnf; j++)
        if (newfile_stat(ix->folder, &w->nf[j]) == 0) {
            w->nf[j].want = ad ? store_uidlist_find(ad, w->nf[j].d->name, w->nf[j].d->base_len)
                               : 0;
            w->nf[o++] = w->nf[j];
        }
    w->nnf = o;
    if (w->nnf > 1)
        qsort(w->nf, w->nnf, sizeof(*w->nf), newfile_cmp);
    for (size_t j = 0; j < w->nnf; j++) {
        const struct newfile *f = &w->nf[j];
        if (f->want >= uid)
            uid = f->want;              /* adopted (rising: sorted by it) */
        else if (ad && uid < ad->next)
            uid = ad->next;             /* after Dovecot's: never one it gave */
        if (uid == UINT32_MAX) {
            errno = EOVERFLOW;
            return -1;
        }
        /* UIDNEXT only rises record by record: Dovecot's next on the last */
        uint32_t next = ad && j + 1 == w->nnf && uid + 1 < ad->next ? ad->next : uid + 1;
        struct store_index_rec r = { REC_APPEND, uid, next, f->d->flags, ++*ms,
                                     f->d->keywords, f->size, f->date, f->hdr_end,
                                     f->d->in_cur, f->d->name, f->d->base_len };
        uid++;
        if (out_rec(&w->o, &r) != 0)
            return -1;
    }
    return 0;
}

static int sync_run(struct store_index *ix, int nosync, const struct store_uidlist *ad)
{
    struct listing l = { 0 };
    struct sync_work w = { 0 };
    uint64_t ms = ix->highestmodseq;
    int rc = -1;

    if (list_maildir(ix->folder, &l) != 0)
        goto out;
    if (sync_diff(ix, &l, &w, &ms) != 0 || sync_new(ix, &w, &ms, ad) != 0)
        goto out;
    rc = append_out(ix, &w.o, nosync);
out:
    free(w.o.p);
    free(w.nf);
    free(w.byname);
    listing_free(&l);
    return rc;
}

static int sync_locked(struct store_index *ix, int nosync)
{
    return sync_run(ix, nosync, NULL);
}

/* ---- the calls --------------------------------------------------------- */

static int with_lock(struct store_index *ix)
{
    if (lock_take(ix, LOCK_EX) != 0)
        return -1;
    if (refresh_locked(ix) != 0) {
        lock_drop(ix);
        return -1;
    }
    return 0;
}

static int done_lock(struct store_index *ix, int rc)
{
    int saved = errno;

    if (rc == 0 && maybe_compact(ix) != 0)
        rc = -1;
    lock_drop(ix);
    if (rc != 0)
        errno = saved;
    return rc;
}

int store_index_open(const char *folder, struct store_index **out)
{
    struct store_index *ix = store_index_new_empty();
    int r;

    *out = NULL;
    if (ix == NULL || (ix->folder = strdup(folder)) == NULL) {
        store_index_close(ix);
        return -1;
    }
    r = store_index_refresh(ix);
    if (r == 0 && (ix->fd < 0 || ix->uidvalidity == 0))
        r = store_index_sync(ix);       /* missing: made from the Maildir */
    if (r != 0) {
        store_index_close(ix);
        return -1;
    }
    *out = ix;
    return 0;
}

int store_index_refresh(struct store_index *ix)
{
    int corrupt = 0, missing = 0, rc = 0;
    uint64_t end;

    if (lock_take(ix, LOCK_SH) != 0)
        return -1;
    if (file_replaced(ix))
        rc = reload(ix, &corrupt, &missing);
    else
        rc = apply_new(ix, &corrupt, &end);
    lock_drop(ix);
    if (rc == 0 && (corrupt || missing))
        return store_index_sync(ix);    /* a writer repairs it */
    return rc;
}

int store_index_sync(struct store_index *ix)
{
    if (with_lock(ix) != 0)
        return -1;
    return done_lock(ix, sync_locked(ix, 0));
}

static int msg_path(const struct store_index *ix, const struct store_msg *m, uint32_t flags,
                    uint64_t kw, int in_cur, char *buf, size_t len)
{
    char info[40];

    store_flags_format(flags, kw, info, sizeof(info));
    if (snprintf(buf, len, "%s/%s/%s%s", ix->folder, in_cur ? "cur" : "new", m->name,
                 in_cur ? info : "") >= (int)len) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* Rename m's file to carry flags/kw in cur/; 0, 1 if its file is gone. */
static int rename_flags(struct store_index *ix, const struct store_msg *m, uint32_t flags,
                        uint64_t kw)
{
    char from[PATH_MAX], to[PATH_MAX];

    int r = msg_locate(ix, m, from, sizeof(from));
    if (r != 0)
        return r;
    if (msg_path(ix, m, flags, kw, 1, to, sizeof(to)) != 0)
        return -1;
    if (strcmp(from, to) == 0 || rename(from, to) == 0)
        return 0;
    return errno == ENOENT ? 1 : -1;
}

int store_index_set_flags(struct store_index *ix, uint32_t uid, uint32_t flags,
                          uint64_t keywords)
{
    struct out o = { 0 };
    int rc;

    if (with_lock(ix) != 0)
        return -1;
    for (int attempt = 0;; attempt++) {
        long p = msg_pos(ix, uid);
        if (p < 0) {
            rc = 1;
            break;
        }
        rc = rename_flags(ix, &ix->msgs[p], flags, keywords);
        if (rc == 1 && attempt == 0 && sync_locked(ix, 0) == 0)
            continue;                   /* renamed by someone else: learn how */
        if (rc == 0) {
            struct store_index_rec r = rec_change(ix, REC_FLAGS, &ix->msgs[p],
                                                  ix->highestmodseq + 1);
            r.flags = flags;
            r.keywords = keywords;
            r.in_cur = 1;
            rc = out_rec(&o, &r) != 0 ? -1 : append_out(ix, &o, 0);
        }
        break;
    }
    free(o.p);
    return done_lock(ix, rc < 0 ? -1 : 0) != 0 ? -1 : rc;
}

/* Maildir++ counts usage at the root: a ".Folder" is one level below it. */
static void quota_release(const char *folder, int64_t size)
{
    const char *slash = strrchr(folder, '/');
    char root[PATH_MAX];

    if (slash != NULL && slash[1] == '.' && (size_t)(slash - folder) < sizeof(root)) {
        memcpy(root, folder, (size_t)(slash - folder));
        root[slash - folder] = '\0';
        maildir_usage_add(root, -(long long)size, -1);
    } else {
        maildir_usage_add(folder, -(long long)size, -1);
    }
}

int store_index_expunge(struct store_index *ix, uint32_t uid)
{
    char path[PATH_MAX];
    struct out o = { 0 };
    long p;
    int rc = 0;

    if (with_lock(ix) != 0)
        return -1;
    p = msg_pos(ix, uid);
    if (p < 0) {
        (void)done_lock(ix, 0);
        return 1;
    }
    const struct store_msg *m = &ix->msgs[p];
    int where = msg_locate(ix, m, path, sizeof(path));
    if (where < 0)
        rc = -1;
    else if (where == 0 && unlink(path) == 0)
        quota_release(ix->folder, m->size);
    else if (where == 0 && errno != ENOENT)
        rc = -1;
    if (rc == 0) {
        struct store_index_rec r = rec_change(ix, REC_EXPUNGE, m, ix->highestmodseq + 1);
        rc = out_rec(&o, &r) != 0 ? -1 : append_out(ix, &o, 0);
    }
    free(o.p);
    return done_lock(ix, rc);
}

/* ---- delivery ---------------------------------------------------------- */

/* The folder's uidnext and highestmodseq from the header and last record
 * of the open file; -1 when they cannot be trusted (full refresh then). */
static int tail_state(struct store_index *ix)
{
    unsigned char h[IX_HDR], t[IX_REC_MAX];
    struct stat st;
    struct store_index_rec r;
    uint32_t rl;

    if (fstat(ix->fd, &st) != 0 || st.st_size < IX_HDR
        || pread(ix->fd, h, IX_HDR, 0) != IX_HDR || hdr_decode(ix, h) != 0)
        return -1;
    if (st.st_size == IX_HDR)
        return ix->snap_left == 0 ? 0 : -1;
    if (st.st_size < IX_HDR + IX_REC_MIN || pread(ix->fd, t, 4, st.st_size - 4) != 4)
        return -1;
    rl = get32(t);
    if (rl < IX_REC_MIN || rl > IX_REC_MAX || (off_t)rl > st.st_size - IX_HDR
        || pread(ix->fd, t, rl, st.st_size - rl) != (ssize_t)rl || rec_decode(t, rl, &r) != 0
        || r.uidnext < ix->uidnext || r.uidnext == 0)
        return -1;
    ix->uidnext = r.uidnext;
    if (r.modseq > ix->highestmodseq)
        ix->highestmodseq = r.modseq;
    ix->parsed = (uint64_t)st.st_size;
    return 0;
}

int store_index_flush(const char *folder)
{
    char *p = folder_path(folder, STORE_INDEX_FILE);
    int fd, r, saved;

    if (p == NULL)
        return -1;
    fd = open(p, O_RDONLY | O_CLOEXEC);
    free(p);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    r = fdatasync(fd);
    saved = errno;
    (void)close(fd);
    errno = saved;
    return r;
}

/* Append one delivered message, the lock held; 0 or -1. */
static int deliver_append(struct store_index *ix, const char *name, const struct store_newmsg *m,
                          int nosync)
{
    unsigned char buf[IX_REC_MAX];
    size_t nl = strlen(name), len;

    if (nl == 0 || nl > NAME_MAX - 40 || strchr(name, '/') || strchr(name, ':')
        || ix->uidnext == UINT32_MAX) {
        errno = EINVAL;
        return -1;
    }
    struct store_index_rec r = { REC_APPEND, ix->uidnext, ix->uidnext + 1, 0,
                                 ix->highestmodseq + 1, 0, m->size, m->date, m->hdr_end, 0,
                                 name, nl };
    len = store_index_rec_encode(&r, buf);
    if (fs_write_all(ix->fd, buf, len) != 0)
        return -1;
    return nosync ? 0 : fdatasync(ix->fd);
}

int store_index_deliver(const char *folder, const char *tmp_path, const char *name,
                        const struct store_newmsg *m, int nosync)
{
    struct store_index *ix = store_index_new_empty();
    char to[PATH_MAX];
    int rc = -1, fresh = 0;

    if (snprintf(to, sizeof(to), "%s/new/%s", folder, name) >= (int)sizeof(to)) {
        errno = ENAMETOOLONG;
        store_index_close(ix);
        return -1;
    }
    if (ix == NULL || (ix->folder = strdup(folder)) == NULL || lock_take(ix, LOCK_EX) != 0) {
        store_index_close(ix);       /* no lock: deliver anyway, a sync indexes it */
        return rename(tmp_path, to);
    }
    if (rename(tmp_path, to) != 0) {
        int saved = errno;
        store_index_close(ix);
        errno = saved;
        return -1;
    }
    int r = file_open(ix);
    if (r == 0 && tail_state(ix) == 0) {
        fresh = 1;
        rc = deliver_append(ix, name, m, nosync);
    }
    if (!fresh && r >= 0) {
        /* missing, torn or replaced: the full path; the sync finds the file */
        state_reset(ix);
        if (ix->fd >= 0)
            (void)close(ix->fd);
        ix->fd = -1;
        rc = refresh_locked(ix) == 0 && sync_locked(ix, nosync) == 0 ? 0 : -1;
    }
    if (rc != 0)
        log_warn("store: %s: index not updated for %s (%s); the next sync adds it", folder,
                 name, strerror(errno));
    store_index_close(ix);
    return 0;
}
