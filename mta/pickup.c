/*
 * mta/pickup.c — queues the maildrop (state_directory/maildrop/, mode 1733:
 * any local user can put anything there; queue/maildrop.h has the format).
 * Owns: listing it, deciding what is a submission, streaming each accepted
 * file into a queue file, and removing the file once its message is
 * committed.
 *
 * A file is taken only if, on the descriptor opened with O_NOFOLLOW and
 * O_NONBLOCK (a symlink fails, a FIFO does not block), it is a regular file
 * with one link (not a hard link to someone else's file), owned by the uid
 * its "uid" line records (when it has one), with a header that parses,
 * plain mailbox addresses, and a message within message_size_limit.  The
 * owner, which only the kernel sets, is the submitter the Received: line
 * names.  Anything else is moved to queue/corrupt/maildrop-NAME with a log
 * line (name, owner, size, why): never read further, never deleted.
 *
 * Must never: touch the maildrop from the loop (opens, reads, renames and
 * unlinks all run in the pool), hold a message in memory (content is copied
 * in PICKUP_STEP pieces, one pool job each, for at most PICKUP_INFLIGHT
 * files at a time), or keep hatod from stopping (after SIGTERM no piece is
 * started; the file stays for the next start).
 *
 * One file: check (pool) → queue writer and recipients (loop) → copy
 * pieces (pool, repeated) → commit (queue) → unlink, with one fsync of the
 * maildrop per batch of unlinks (pool).  A scan starts only when nothing
 * of the last one is in flight, so no file is read twice.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/addr.h"
#include "lib/log.h"
#include "lib/timeutil.h"
#include "lib/work.h"
#include "mta/daemon.h"
#include "mta/pickup.h"
#include "proto/local_headers.h"
#include "queue/maildrop.h"
#include "queue/queue.h"
#include "queue/scheduler.h"

#define PICKUP_INTERVAL   60                   /* seconds between scans */
#define PICKUP_BATCH      100                  /* names per scan */
#define PICKUP_INFLIGHT   8                    /* files between check and commit */
#define PICKUP_CHUNK      65536                /* one read() */
#define PICKUP_STEP       (4LL * 1024 * 1024)  /* octets copied per pool job */
#define PICKUP_HDR_MAX    (8 * 1024 * 1024)    /* a maildrop header (the recipients) */
#define PICKUP_HEAD_SCAN  (256 * 1024)         /* message octets searched for Date: ... */
#define PICKUP_STALE_TMP  (24 * 3600)
#define PICKUP_AWAY_NAME  200                  /* octets of a name kept in corrupt/ */

enum pf_state {
    PF_OK = 0,
    PF_GONE,         /* removed before we opened it: nothing to do */
    PF_REJECTED,     /* moved aside (or could not be: stuck) */
    PF_RETRY,        /* a local error (EMFILE, EIO, ENOSPC): try at the next scan */
};

struct pickup_file {
    struct pickup *p;
    char name[NAME_MAX + 1];
    int fd;
    enum pf_state st;
    int stuck;                   /* rejected but still in the maildrop */
    int err;                     /* errno for PF_RETRY */
    char why[256];
    uid_t uid;                   /* the file's owner: the submitter */
    dev_t dev;
    ino_t ino;
    long long fsize;
    long long limit;             /* message_size_limit at the start, 0: none */
    struct maildrop_hdr hdr;
    char *buf;                   /* what the check read: header + message start */
    size_t buflen;
    char *prefix;                /* Received: and missing fields, written first */
    size_t prefixlen;
    char *ibuf, *obuf;           /* copy buffers: PICKUP_CHUNK, twice that */
    long long out;               /* message octets written (CRLF form) */
    char last;                   /* last input octet copied */
    int eof;
    struct queue_writer w;
    int writing;                 /* w is open */
    struct envelope env;
};

struct pickup_gone {             /* committed; its maildrop name goes next */
    char name[NAME_MAX + 1];
    dev_t dev;
    ino_t ino;
    struct pickup_gone *next;
};

struct pickup_scan_job {
    struct pickup *p;
    char names[PICKUP_BATCH][NAME_MAX + 1];
    int n;
};

struct pickup_reap_job {
    struct pickup *p;
    struct pickup_gone *list;
};

struct pickup {
    struct hatod *d;
    struct event *timer;
    int dirfd;                   /* the maildrop */
    char dir[PATH_MAX];
    char corrupt[PATH_MAX];
    struct pickup_scan_job *todo;   /* names of the last scan not started yet */
    int next;                    /* first of todo->names not started */
    int running;                 /* a scan job is in the pool */
    int active;                  /* files between check and commit */
    struct pickup_gone *gone;    /* committed, waiting for a reap job */
    int reaping;                 /* a reap job is in the pool */
    int more;                    /* scan again when this one is done */
    int failed;                  /* files of the last scan not queued */
};

static void scan_more(struct pickup *p);

/* ------------------------------------------------------------ worker side */

static int is_tmp_name(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && !strcmp(name + n - 4, ".tmp");
}

/* Octets of the message's header section: up to and including the first
 * empty line (LF or CRLF), or all of what is there. */
static size_t header_len(const char *body, size_t blen)
{
    if (blen > 0 && (body[0] == '\n' || (blen > 1 && body[0] == '\r' && body[1] == '\n')))
        return 0;                          /* starts with the empty line: no header */
    for (size_t i = 0; i < blen; i++) {
        if (body[i] != '\n')
            continue;
        if (i + 1 < blen && body[i + 1] == '\n')
            return i + 2;
        if (i + 2 < blen && body[i + 1] == '\r' && body[i + 2] == '\n')
            return i + 3;
    }
    return blen;
}

static const char *kind_of(mode_t m)
{
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISLNK(m))
        return "a symbolic link";
    if (S_ISCHR(m) || S_ISBLK(m))
        return "a device";
    if (S_ISSOCK(m))
        return "a socket";
    return "not a regular file";
}

/* Rename DIR/name to corrupt/maildrop-NAME, NAME cut to PICKUP_AWAY_NAME
 * octets (a name that cannot be moved would be read again at every scan),
 * never over an existing one (a user could name a file to replace the
 * evidence of another). */
static int move_aside(struct pickup *p, const char *name, ino_t ino, char *to, size_t tolen)
{
    snprintf(to, tolen, "%s/maildrop-%.*s", p->corrupt, PICKUP_AWAY_NAME, name);
    int rc = renameat2(p->dirfd, name, AT_FDCWD, to, RENAME_NOREPLACE);
    if (rc < 0 && errno == EEXIST) {
        snprintf(to, tolen, "%s/maildrop-%.*s.%llu", p->corrupt, PICKUP_AWAY_NAME, name,
                 (unsigned long long)ino);
        rc = renameat2(p->dirfd, name, AT_FDCWD, to, RENAME_NOREPLACE);
    }
    if (rc < 0 && errno == EINVAL)            /* a file system without the flag */
        rc = renameat(p->dirfd, name, AT_FDCWD, to);
    return rc;
}

/* Skip a maildrop entry: log why (with its owner and size, from st) and
 * move it aside. */
static void reject_entry(struct pickup *p, const char *name, const struct stat *st,
                         const char *why, int *stuck)
{
    char to[PATH_MAX];
    if (move_aside(p, name, st->st_ino, to, sizeof to) == 0) {
        log_err("maildrop file %s: %s (uid %u, size %lld); moved to %s", name, why,
                (unsigned)st->st_uid, (long long)st->st_size, to);
        return;
    }
    int e = errno;
    if (e == ENOENT)
        return;                               /* its owner removed it */
    log_err("maildrop file %s: %s (uid %u, size %lld); cannot move it to %s: %s", name, why,
            (unsigned)st->st_uid, (long long)st->st_size, to, strerror(e));
    *stuck = 1;
}

static void reject(struct pickup_file *pf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void reject(struct pickup_file *pf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pf->why, sizeof pf->why, fmt, ap);
    va_end(ap);
    struct stat st = { .st_uid = pf->uid, .st_size = pf->fsize, .st_ino = pf->ino };
    pf->st = PF_REJECTED;
    reject_entry(pf->p, pf->name, &st, pf->why, &pf->stuck);
}

static void retry(struct pickup_file *pf, int err, const char *what)
{
    pf->st = PF_RETRY;
    pf->err = err;
    snprintf(pf->why, sizeof pf->why, "%s", what);
}

/* The maildrop is world-writable and its values are %-decoded: every
 * address must be a plain mailbox (no CR, LF or other control octets that
 * would end up in Return-Path:, Delivered-To: or a DSN).  0 or -1. */
static int check_addresses(struct pickup_file *pf)
{
    struct addr a;
    const char *sender = pf->hdr.sender ? pf->hdr.sender : "";
    if (*sender && addr_parse_mailbox(sender, strlen(sender), &a) != ADDR_OK) {
        reject(pf, "bad sender address");
        return -1;
    }
    for (size_t i = 0; i < pf->hdr.nrcpt; i++) {
        const char *r = pf->hdr.rcpts[i];
        if (addr_parse_mailbox(r, strlen(r), &a) != ADDR_OK) {
            reject(pf, "bad recipient address (#%zu)", i + 1);
            return -1;
        }
    }
    return 0;
}

/* Read the maildrop header and up to PICKUP_HEAD_SCAN octets of the message
 * after it into pf->buf.  0, or -1 with pf->st set. */
static int read_head(struct pickup_file *pf)
{
    size_t cap = 0, hend = 0;
    for (;;) {
        if (hend ? pf->buflen - hend >= PICKUP_HEAD_SCAN : pf->buflen >= PICKUP_HDR_MAX)
            break;
        if (cap - pf->buflen < PICKUP_CHUNK) {
            char *nb = realloc(pf->buf, cap + PICKUP_CHUNK);
            if (!nb) {
                retry(pf, ENOMEM, "cannot read it");
                return -1;
            }
            pf->buf = nb;
            cap += PICKUP_CHUNK;
        }
        ssize_t r = read(pf->fd, pf->buf + pf->buflen, cap - pf->buflen);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            retry(pf, errno, "cannot read it");
            return -1;
        }
        if (r == 0) {
            pf->eof = 1;
            break;
        }
        size_t from = pf->buflen ? pf->buflen - 1 : 0;     /* "\n\n" across reads */
        pf->buflen += (size_t)r;
        if (!hend) {
            size_t e = maildrop_header_end(pf->buf + from, pf->buflen - from);
            hend = e ? from + e : 0;
        }
    }
    if (!hend && !pf->eof) {
        reject(pf, "header longer than %d octets", PICKUP_HDR_MAX);
        return -1;
    }
    return 0;
}

/* The checks on the open descriptor, before anything is read. */
static int check_stat(struct pickup_file *pf, const struct stat *st)
{
    pf->uid = st->st_uid;
    pf->dev = st->st_dev;
    pf->ino = st->st_ino;
    pf->fsize = st->st_size;
    if (!S_ISREG(st->st_mode)) {
        reject(pf, "%s", kind_of(st->st_mode));
        return -1;
    }
    if (st->st_nlink != 1) {
        reject(pf, "has %lu links (a hard link is not a submission)",
               (unsigned long)st->st_nlink);
        return -1;
    }
    if (pf->limit > 0 && st->st_size > pf->limit + PICKUP_HDR_MAX) {
        reject(pf, "larger than message_size_limit (%lld)", pf->limit);
        return -1;
    }
    return 0;
}

/* Open without following a symlink or waiting for a FIFO's writer; what is
 * not a regular file is not even opened (a device may act on open).  The
 * descriptor is checked again after (it may have been swapped).  0, or -1
 * with pf->st set. */
static int open_entry(struct pickup_file *pf)
{
    struct stat pre;
    if (fstatat(pf->p->dirfd, pf->name, &pre, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            pf->st = PF_GONE;
        else
            retry(pf, errno, "cannot stat it");
        return -1;
    }
    if (!S_ISREG(pre.st_mode))
        return check_stat(pf, &pre);
    pf->fd = openat(pf->p->dirfd, pf->name,
                    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (pf->fd >= 0)
        return 0;
    int e = errno;
    struct stat st;
    if (e == ENOENT || fstatat(pf->p->dirfd, pf->name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        pf->st = PF_GONE;
        return -1;
    }
    if (e == EMFILE || e == ENFILE || e == ENOMEM || e == EINTR) {
        retry(pf, e, "cannot open it");
        return -1;
    }
    pf->uid = st.st_uid;
    pf->fsize = st.st_size;
    pf->ino = st.st_ino;
    if (S_ISLNK(st.st_mode))
        reject(pf, "a symbolic link");
    else
        reject(pf, "cannot open it: %s", strerror(e));
    return -1;
}

/* Pool: is this a submission?  Reads its header and the message start. */
static void check_run(void *arg)
{
    struct pickup_file *pf = arg;
    struct stat st;
    if (open_entry(pf) < 0)
        return;
    if (fstat(pf->fd, &st) < 0) {
        retry(pf, errno, "cannot stat it");
        return;
    }
    if (check_stat(pf, &st) < 0 || read_head(pf) < 0)
        return;
    char err[200];
    if (maildrop_parse(pf->buf, pf->buflen, &pf->hdr, err, sizeof err) < 0) {
        reject(pf, "%s", err[0] ? err : "bad maildrop file");
        return;
    }
    if (pf->hdr.uid >= 0 && pf->hdr.uid != (long long)pf->uid) {
        reject(pf, "written by uid %lld but owned by uid %u", pf->hdr.uid, (unsigned)pf->uid);
        return;
    }
    long long msg = pf->fsize - (long long)pf->hdr.body_offset;
    if (pf->limit > 0 && msg > pf->limit) {
        reject(pf, "message of %lld octets is over message_size_limit (%lld)", msg, pf->limit);
        return;
    }
    check_addresses(pf);
}

/* Convert n input octets (LF → CRLF) and write them to the queue file. */
static void copy_out(struct pickup_file *pf, const char *in, size_t n)
{
    while (n > 0 && pf->st == PF_OK && !pf->w.err) {
        size_t take = n < PICKUP_CHUNK ? n : PICKUP_CHUNK, o = 0;
        for (size_t i = 0; i < take; i++) {
            if (in[i] == '\n' && pf->last != '\r')
                pf->obuf[o++] = '\r';
            pf->obuf[o++] = in[i];
            pf->last = in[i];
        }
        pf->out += (long long)o;
        if (pf->limit > 0 && pf->out > pf->limit) {   /* it grew since the check */
            reject(pf, "message over message_size_limit (%lld)", pf->limit);
            return;
        }
        queue_writer_write(&pf->w, pf->obuf, o);
        in += take;
        n -= take;
    }
}

/* At EOF: a last line without its end gets one. */
static void copy_end(struct pickup_file *pf)
{
    pf->eof = 1;
    if (pf->out > 0 && pf->last != '\n') {
        pf->last = 0;
        copy_out(pf, "\n", 1);
    }
}

/* Pool: the next piece of the message into the queue file. */
static void copy_run(void *arg)
{
    struct pickup_file *pf = arg;
    if (pf->prefix) {
        queue_writer_write(&pf->w, pf->prefix, pf->prefixlen);
        free(pf->prefix);
        pf->prefix = NULL;
    }
    if (pf->buf) {
        copy_out(pf, pf->buf + pf->hdr.body_offset, pf->buflen - pf->hdr.body_offset);
        free(pf->buf);
        pf->buf = NULL;
        if (pf->eof)
            copy_end(pf);
    }
    long long done = 0;
    while (!pf->eof && done < PICKUP_STEP && pf->st == PF_OK && !pf->w.err) {
        ssize_t r = read(pf->fd, pf->ibuf, PICKUP_CHUNK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            retry(pf, errno, "cannot read it");
            return;
        }
        if (r == 0)
            copy_end(pf);
        else
            copy_out(pf, pf->ibuf, (size_t)r);
        done += r;
    }
    if (pf->st == PF_OK && pf->w.err)
        retry(pf, pf->w.err, "cannot write the queue file");
}

/* Pool: unlink committed files (only the very file that was read: its
 * owner may have put another under the name) and make that durable. */
static void reap_run(void *arg)
{
    struct pickup_reap_job *j = arg;
    int removed = 0;
    for (struct pickup_gone *g = j->list; g; g = g->next) {
        struct stat st;
        if (fstatat(j->p->dirfd, g->name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            st.st_dev != g->dev || st.st_ino != g->ino)
            continue;
        if (unlinkat(j->p->dirfd, g->name, 0) < 0)
            log_err("cannot remove maildrop file %s: %s", g->name, strerror(errno));
        else
            removed++;
    }
    if (removed && fsync(j->p->dirfd) < 0)
        log_err("%s: fsync: %s (a picked-up file may come back after a crash)", j->p->dir,
                strerror(errno));
}

/* Pool: list the maildrop.  Stale .tmp files go; a directory is moved
 * aside here, so hostile ones that cannot be moved never fill a batch. */
static void scan_run(void *arg)
{
    struct pickup_scan_job *j = arg;
    /* the directory every other call here goes through, not its path */
    int fd = openat(j->p->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dir) {
        log_err("%s: %s", j->p->dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    struct dirent *de;
    while (j->n < PICKUP_BATCH && (de = readdir(dir))) {
        struct stat st;
        if (de->d_name[0] == '.')
            continue;
        if (is_tmp_name(de->d_name)) {
            if (fstatat(j->p->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                !S_ISDIR(st.st_mode) && time(NULL) - st.st_mtime > PICKUP_STALE_TMP)
                unlinkat(j->p->dirfd, de->d_name, 0);
            continue;
        }
        if (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN) {
            int stuck = 0;
            if (fstatat(j->p->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISDIR(st.st_mode)) {
                reject_entry(j->p, de->d_name, &st, "a directory", &stuck);
                continue;
            }
        }
        snprintf(j->names[j->n++], NAME_MAX + 1, "%s", de->d_name);
    }
    closedir(dir);
}

/* ------------------------------------------------------------ loop side */

static void file_end(struct pickup_file *pf)
{
    struct pickup *p = pf->p;
    if (pf->writing)
        queue_writer_abort(p->d->queue, &pf->w);
    if (pf->fd >= 0)
        close(pf->fd);
    maildrop_hdr_free(&pf->hdr);
    env_clear(&pf->env);
    free(pf->buf);
    free(pf->prefix);
    free(pf->ibuf);
    free(pf->obuf);
    free(pf);
    p->active--;
    scan_more(p);
}

static void retry_later(struct pickup_file *pf)
{
    pf->p->failed++;
    log_err("maildrop file %s: %s%s%s; will retry", pf->name, pf->why,
            pf->err ? ": " : "", pf->err ? strerror(pf->err) : "");
    file_end(pf);
}

static void reap_done(void *arg)
{
    struct pickup_reap_job *j = arg;
    struct pickup *p = j->p;
    while (j->list) {
        struct pickup_gone *g = j->list;
        j->list = g->next;
        free(g);
    }
    free(j);
    p->reaping = 0;
    scan_more(p);
}

static void reap_start(struct pickup *p)
{
    if (p->reaping || !p->gone)
        return;
    struct pickup_reap_job *j = calloc(1, sizeof *j);
    if (!j)
        return;                  /* the next commit or scan_more tries again */
    j->p = p;
    j->list = p->gone;
    p->gone = NULL;
    p->reaping = 1;
    if (work_submit(p->d->pool, WORK_SCAN, reap_run, reap_done, j) < 0) {
        reap_run(j);             /* the pool is stopping: a file left would come twice */
        reap_done(j);
    }
}

static void committed(void *arg, int err)
{
    struct pickup_file *pf = arg;
    struct pickup *p = pf->p;
    if (err) {
        pf->err = err;
        snprintf(pf->why, sizeof pf->why, "pickup commit failed (kept in the maildrop)");
        retry_later(pf);
        return;
    }
    log_info("%s: uid=%u from=<%s>, size=%lld, nrcpt=%zu (queue active)", pf->env.id,
             (unsigned)pf->uid, pf->env.sender, pf->env.size, pf->env.nrcpt);
    sched_add(p->d->sched, &pf->env);
    struct pickup_gone *g = calloc(1, sizeof *g);
    if (g) {
        snprintf(g->name, sizeof g->name, "%s", pf->name);
        g->dev = pf->dev;
        g->ino = pf->ino;
        g->next = p->gone;
        p->gone = g;
    } else {
        log_err("%s: out of memory: maildrop file %s is not removed", pf->env.id, pf->name);
    }
    reap_start(p);
    file_end(pf);
}

static void copy_done(void *arg)
{
    struct pickup_file *pf = arg;
    struct pickup *p = pf->p;
    if (pf->st == PF_REJECTED) {
        if (pf->stuck)
            p->failed++;
        file_end(pf);
        return;
    }
    if (pf->st == PF_RETRY) {
        retry_later(pf);
        return;
    }
    if (p->d->stopping) {
        log_info("maildrop file %s: left for the next start (stopping)", pf->name);
        file_end(pf);
        return;
    }
    if (!pf->eof) {
        if (work_submit(p->d->pool, WORK_SCAN, copy_run, copy_done, pf) < 0)
            file_end(pf);
        return;
    }
    close(pf->fd);
    pf->fd = -1;
    pf->writing = 0;             /* the commit takes the writer, even on failure */
    if (queue_commit(p->d->queue, &pf->w, &pf->env, committed, pf) < 0) {
        pf->err = errno;
        snprintf(pf->why, sizeof pf->why, "cannot commit it");
        retry_later(pf);
    }
}

/* Received: (naming the owner) and the fields the message lacks. */
static int make_prefix(struct pickup_file *pf)
{
    char date[64], add[1024], host[256];
    const char *body = pf->buf + pf->hdr.body_offset;
    size_t blen = pf->buflen - pf->hdr.body_offset;
    time_t now = time(NULL);
    snprintf(host, sizeof host, "%s", pf->p->d->cfg.myhostname);
    time_rfc5322(now, date, sizeof date);
    int missing = local_headers_missing(body, header_len(body, blen));
    int alen = local_headers_format(missing, pf->hdr.sender ? pf->hdr.sender : "", pf->w.id,
                                    host, now, add, sizeof add);
    int n = asprintf(&pf->prefix, "Received: by %s (hato, from userid %u)\r\n\tid %s; %s\r\n%s",
                     host, (unsigned)pf->uid, pf->w.id, date, alen > 0 ? add : "");
    if (n < 0) {
        pf->prefix = NULL;
        return -1;
    }
    pf->prefixlen = (size_t)n;
    return 0;
}

/* Loop: the envelope, a queue writer, and the first piece. */
static int copy_start(struct pickup_file *pf)
{
    struct pickup *p = pf->p;
    char client[64];
    snprintf(client, sizeof client, "local uid=%u", (unsigned)pf->uid);
    if (env_set_sender(&pf->env, pf->hdr.sender ? pf->hdr.sender : "") < 0 ||
        env_set_client(&pf->env, client, "-", "local") < 0)
        return -1;
    for (size_t i = 0; i < pf->hdr.nrcpt; i++)
        if (daemon_add_rcpt_or_bounce(p->d, &pf->env, pf->hdr.rcpts[i]) < 0)
            return -1;
    pf->env.arrival_us = time_now_us();
    pf->ibuf = malloc(PICKUP_CHUNK);
    pf->obuf = malloc(2 * PICKUP_CHUNK);
    if (!pf->ibuf || !pf->obuf || queue_writer_open(p->d->queue, &pf->w) < 0)
        return -1;
    pf->writing = 1;
    if (make_prefix(pf) < 0)
        return -1;
    return work_submit(p->d->pool, WORK_SCAN, copy_run, copy_done, pf);
}

static void check_done(void *arg)
{
    struct pickup_file *pf = arg;
    struct pickup *p = pf->p;
    switch (pf->st) {
    case PF_OK:
        if (p->d->stopping)
            break;
        if (copy_start(pf) == 0)
            return;
        p->failed++;
        log_err("maildrop file %s: cannot queue it now; will retry", pf->name);
        break;
    case PF_RETRY:
        retry_later(pf);
        return;
    case PF_REJECTED:
        if (pf->stuck)
            p->failed++;
        break;
    case PF_GONE:
        break;
    }
    file_end(pf);
}

/* Start checking files of the last scan, up to PICKUP_INFLIGHT at once. */
static void start_files(struct pickup *p)
{
    while (p->todo && p->next < p->todo->n && p->active < PICKUP_INFLIGHT &&
           !p->d->stopping) {
        struct pickup_file *pf = calloc(1, sizeof *pf);
        if (!pf)
            break;
        pf->p = p;
        pf->fd = -1;
        pf->hdr.uid = -1;
        pf->limit = p->d->cfg.message_size_limit;
        env_init(&pf->env);
        snprintf(pf->name, sizeof pf->name, "%s", p->todo->names[p->next]);
        if (work_submit(p->d->pool, WORK_SCAN, check_run, check_done, pf) < 0) {
            free(pf);
            break;
        }
        p->next++;
        p->active++;
    }
    if (p->todo && (p->next >= p->todo->n || p->d->stopping) && p->active == 0) {
        free(p->todo);
        p->todo = NULL;
    }
}

static int busy(const struct pickup *p)
{
    return p->running || p->todo || p->active > 0 || p->gone || p->reaping;
}

/* Next files of the scan; once it is all done, and the last one left
 * files behind, scan again (unless some failed: then the timer retries,
 * so a full disk does not spin). */
static void scan_more(struct pickup *p)
{
    start_files(p);
    reap_start(p);
    if (busy(p) || !p->more)
        return;
    p->more = 0;
    if (!p->failed)
        pickup_scan(p);
}

static void scan_done(void *arg)
{
    struct pickup_scan_job *j = arg;
    struct pickup *p = j->p;
    p->running = 0;
    if (j->n >= PICKUP_BATCH)
        p->more = 1;                         /* more files wait */
    p->todo = j;
    p->next = 0;
    scan_more(p);
}

void pickup_scan(struct pickup *p)
{
    if (!p || p->d->stopping)
        return;
    if (busy(p)) {
        p->more = 1;     /* after this scan: a file being committed must not be read twice */
        return;
    }
    p->failed = 0;
    struct pickup_scan_job *j = calloc(1, sizeof *j);
    if (!j)
        return;
    j->p = p;
    if (work_submit(p->d->pool, WORK_SCAN, scan_run, scan_done, j) < 0) {
        free(j);
        return;
    }
    p->running = 1;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    pickup_scan(arg);
}

struct pickup *pickup_new(struct hatod *d)
{
    struct pickup *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->d = d;
    snprintf(p->dir, sizeof p->dir, "%s/maildrop", d->cfg.state_directory);
    snprintf(p->corrupt, sizeof p->corrupt, "%s/corrupt", queue_dir(d->queue));
    p->dirfd = open(p->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (p->dirfd < 0) {
        log_err("%s: %s", p->dir, strerror(errno));
        free(p);
        return NULL;
    }
    p->timer = event_new(d->base, -1, EV_PERSIST, on_timer, p);
    struct timeval tv = { PICKUP_INTERVAL, 0 };
    if (!p->timer || event_add(p->timer, &tv) < 0) {
        pickup_free(p);
        return NULL;
    }
    pickup_scan(p);
    return p;
}

void pickup_free(struct pickup *p)
{
    if (!p)
        return;
    if (p->timer)
        event_free(p->timer);
    while (p->gone) {
        struct pickup_gone *g = p->gone;
        p->gone = g->next;
        free(g);
    }
    free(p->todo);
    if (p->dirfd >= 0)
        close(p->dirfd);
    free(p);
}
