/*
 * queue/queue.c — the queue on disk: directory layout, the durable commit
 * (with group commit), envelope rewrites, removal and start-up recovery.
 * It must never acknowledge a message before its content, its envelope and
 * their directory entries are on stable storage, and never leave half a
 * message visible in msg/ + env/ after a failure.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/work.h"
#include "queue/queue.h"
#include "queue/spare.h"

#define QUEUE_ENV_MAX (64 * 1024 * 1024)   /* a 100k-recipient envelope fits */
#define QUEUE_SPARES  8192                 /* spent files kept for reuse */
#define BATCH_MAX     1024                 /* commits in one group batch */
#ifndef QUEUE_BATCHES
#define QUEUE_BATCHES 2                    /* group-commit batches on the disk at once */
#endif

/* A queue file being written: a spare (free/N) or a new file in tmp/. */
struct qfile {
    int fd;
    int spare;              /* 1: sp names it; 0: tmp/ID<suffix> */
    struct spare sp;
    long long len;          /* octets written */
    int placed;             /* renamed into msg/ or env/, or nothing left to drop */
    int renamed;            /* this commit renamed it into msg/ or env/ */
};

struct commit_item {
    struct queue *q;
    char id[QID_LEN + 1];
    struct qfile msg;       /* content */
    struct qfile env;       /* envelope, written in the worker */
    char *envbuf;
    size_t envlen;
    char *content;          /* queue_inject: content still to write */
    size_t content_len;
    queue_commit_cb cb;
    void *arg;
    int err;
    struct commit_item *next;
};

struct queue {
    char dir[PATH_MAX];
    char tmp[PATH_MAX], msg[PATH_MAX], env[PATH_MAX], hold[PATH_MAX], corrupt[PATH_MAX];
    char spare_dir[PATH_MAX];
    struct spares *spares;  /* queue/free: files reused instead of new inodes */
    struct work_pool *pool;
    int group_commit;
    struct commit_item *waiting, *waiting_tail;   /* loop only */
    int batches;                                  /* group batches on the disk; loop only */
};

struct queue_op {
    struct queue *q;
    char id[QID_LEN + 1];
    char *buf;
    size_t len;
    queue_done_cb cb;
    void *arg;
    int err;
};

static void path_in(const char *dir, const char *name, const char *suffix, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s%s", dir, name, suffix);
}

struct queue *queue_open(const char *state_dir, struct work_pool *pool, int group_commit,
                         char *err, size_t errlen)
{
    struct queue *q = calloc(1, sizeof *q);
    if (!q) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    q->pool = pool;
    q->group_commit = group_commit;
    snprintf(q->dir, sizeof q->dir, "%s/queue", state_dir);
    path_in(q->dir, "tmp", "", q->tmp, sizeof q->tmp);
    path_in(q->dir, "msg", "", q->msg, sizeof q->msg);
    path_in(q->dir, "env", "", q->env, sizeof q->env);
    path_in(q->dir, "hold", "", q->hold, sizeof q->hold);
    path_in(q->dir, "corrupt", "", q->corrupt, sizeof q->corrupt);
    path_in(q->dir, "free", "", q->spare_dir, sizeof q->spare_dir);
    const char *dirs[] = { q->tmp, q->msg, q->env, q->hold, q->corrupt, q->spare_dir };
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (fs_mkdirs(dirs[i], 0700) < 0) {
            snprintf(err, errlen, "%s: %s", dirs[i], strerror(errno));
            free(q);
            return NULL;
        }
    }
    const char *live[] = { q->msg, q->env, q->hold, q->corrupt, NULL };
    q->spares = spares_open(q->spare_dir, QUEUE_SPARES, live);
    if (!q->spares) {
        snprintf(err, errlen, "out of memory");
        free(q);
        return NULL;
    }
    return q;
}

void queue_close(struct queue *q)
{
    if (!q)
        return;
    spares_close(q->spares);
    free(q);
}

const char *queue_dir(const struct queue *q)
{
    return q->dir;
}

void queue_msg_path(const struct queue *q, const char *id, char *buf, size_t len)
{
    path_in(q->msg, id, "", buf, len);
}

/* ------------------------------------------------------------ receiving */

/* Open a file to write a queue file into: a spare where it lies, or a new
 * tmp/<id><suffix>.  0, or -1 (errno; EEXIST: pick another ID). */
static int qfile_open(struct queue *q, const char *id, const char *suffix, struct qfile *f)
{
    char path[PATH_MAX];
    memset(f, 0, sizeof *f);
    f->fd = spares_take(q->spares, *suffix ? SPARE_ENV : SPARE_MSG, &f->sp);
    if (f->fd >= 0) {
        f->spare = 1;
        return 0;
    }
    path_in(q->tmp, id, suffix, path, sizeof path);
    f->fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    return f->fd < 0 ? -1 : 0;
}

static void qfile_path(const struct queue *q, const char *id, const char *suffix,
                       const struct qfile *f, char *buf, size_t len)
{
    if (f->spare)
        spares_path(q->spares, &f->sp, buf, len);
    else
        path_in(q->tmp, id, suffix, buf, len);
}

/* Cut the file to what was written (a spare may hold more). */
static int qfile_seal(const struct qfile *f)
{
    return spare_seal(f->fd, f->spare ? f->sp.stale : 0, f->len);
}

static int qfile_place(const struct queue *q, const char *id, const char *suffix,
                       struct qfile *f, const char *dir)
{
    char from[PATH_MAX], to[PATH_MAX];
    qfile_path(q, id, suffix, f, from, sizeof from);
    path_in(dir, id, "", to, sizeof to);
    /* never over an existing queue file: an ID reused across a restart
     * or a clock step fails this commit (4xx) instead of replacing mail */
    if (fs_rename_noreplace(from, to) < 0) {
        if (errno == EEXIST)
            log_err("%s: %s exists already: commit refused", id, to);
        return -1;
    }
    f->placed = 1;
    f->renamed = 1;
    return 0;
}

static void qfile_close(struct qfile *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

/* Give up a file that was not renamed into place: a spare goes back to the
 * pool, a tmp/ file is unlinked. */
static void qfile_drop(struct queue *q, const char *id, const char *suffix, struct qfile *f)
{
    char path[PATH_MAX];
    qfile_close(f);
    if (f->placed)
        return;
    if (f->spare) {
        spares_give_back(q->spares, &f->sp, f->sp.stale > f->len ? f->sp.stale : f->len);
        f->spare = 0;
        f->placed = 1;              /* nothing left to drop */
        return;
    }
    qfile_path(q, id, suffix, f, path, sizeof path);
    if (unlink(path) < 0 && errno != ENOENT)
        log_warn("%s: cannot remove %s: %s", id, path, strerror(errno));
    f->placed = 1;
}

static void writer_to_qfile(const struct queue_writer *w, struct qfile *f)
{
    memset(f, 0, sizeof *f);
    f->fd = w->fd;
    f->spare = w->spare;
    f->sp = w->sp;
    f->len = w->size;
}

int queue_writer_open(struct queue *q, struct queue_writer *w)
{
    for (int tries = 0; tries < 10; tries++) {
        struct qfile f;
        qid_new(w->id);
        if (qfile_open(q, w->id, "", &f) == 0) {
            w->fd = f.fd;
            w->spare = f.spare;
            w->sp = f.sp;
            w->size = 0;
            w->err = 0;
            return 0;
        }
        if (errno != EEXIST)
            return -1;
    }
    return -1;
}

int queue_writer_write(struct queue_writer *w, const void *buf, size_t len)
{
    if (w->err)
        return -1;
    if (fs_write_all(w->fd, buf, len) < 0) {
        w->err = errno ? errno : EIO;
        return -1;
    }
    w->size += (long long)len;
    return 0;
}

/* An aborted message's file, dropped in the pool: closing it, unlinking
 * tmp/ID or emptying a big spare on its way back into the pool frees
 * blocks, a synchronous discard on a discard-mounted ext4.  The spare goes
 * back (with its epoch) only when the job has cut it, so nobody takes it
 * before. */
struct abort_job {
    struct queue *q;
    char id[QID_LEN + 1];
    struct qfile f;
};

static void abort_run(void *arg)
{
    struct abort_job *j = arg;
    qfile_drop(j->q, j->id, "", &j->f);
}

void queue_writer_abort(struct queue *q, struct queue_writer *w)
{
    if (w->fd < 0)
        return;
    struct qfile f;
    writer_to_qfile(w, &f);
    w->fd = -1;
    struct abort_job *j = calloc(1, sizeof *j);
    if (j) {
        j->q = q;
        memcpy(j->id, w->id, sizeof j->id);
        j->f = f;
        if (q->pool && work_submit(q->pool, WORK_DELIVERY, abort_run, free, j) == 0)
            return;
        free(j);
    }
    qfile_drop(q, w->id, "", &f);     /* no pool (teardown) or no memory */
}

void queue_detach_pool(struct queue *q)
{
    q->pool = NULL;
}

/* ------------------------------------------------------------ committing */

/* Worker: write the envelope into a spare or tmp/ID.env. */
static int write_env(struct commit_item *it)
{
    if (qfile_open(it->q, it->id, ".env", &it->env) < 0)
        return -1;
    if (fs_write_all(it->env.fd, it->envbuf, it->envlen) < 0)
        return -1;
    it->env.len = (long long)it->envlen;
    return 0;
}

/* Worker: write injected content into a spare or tmp/ID. */
static int write_content(struct commit_item *it)
{
    if (qfile_open(it->q, it->id, "", &it->msg) < 0)
        return -1;
    if (fs_write_all(it->msg.fd, it->content, it->content_len) < 0)
        return -1;
    it->msg.len = (long long)it->content_len;
    return 0;
}

/* Drop whatever of the item's files was not renamed into place. */
static void drop_files(struct commit_item *it)
{
    qfile_drop(it->q, it->id, "", &it->msg);
    qfile_drop(it->q, it->id, ".env", &it->env);
}

/* Content first: env/ID is the commit point. */
static int rename_into(struct commit_item *it)
{
    if (qfile_place(it->q, it->id, "", &it->msg, it->q->msg) < 0)
        return -1;
    return qfile_place(it->q, it->id, ".env", &it->env, it->q->env);
}

/* syncfs of the queue's filesystem on a batch's own descriptor (-1: it
 * could not be opened), reported to the spare pool (a spare is reused only
 * after a flush that began after it entered the pool).  The descriptor was
 * opened before the ticket is taken, so a writeback error of a spare's
 * rename into free/ after the ticket reaches this syncfs.  Not covered: one
 * that happened before the descriptor was opened and that another flush
 * (the other batch, local delivery) reported first; that flush fails its
 * own work but does not tell the pool. */
static int queue_syncfs(struct queue *q, int fd)
{
    if (fd < 0)
        return -1;
    unsigned long long ticket = spares_sync_begin(q->spares);
    if (syncfs(fd) < 0)
        return -1;
    spares_sync_end(q->spares, ticket);
    return 0;
}

static void fail_item(struct commit_item *it)
{
    if (!it->err)
        it->err = errno ? errno : EIO;
}

/* After a syncfs that returned 0: did the content reach the disk?  It was
 * written on the loop before the batch opened its descriptor, so a
 * writeback error of it that another flush reported first is not reported
 * to the batch's syncfs; the content's own descriptor, open since before
 * those writes, is told.  sync_file_range only waits and reports (no
 * second flush of the disk's cache). */
static int content_written(const struct commit_item *it)
{
    return sync_file_range(it->msg.fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE |
                           SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
}

/* Worker: make a batch durable.  A big batch: syncfs before and after the
 * renames; a small one: fdatasync each file, syncfs after the renames.
 * Every flush error must reach every batch it affects.  The kernel reports
 * a writeback error once to each open file (errseq: to each descriptor that
 * has not seen it yet), so a descriptor shared by the two batches on the
 * disk would let one take the other's EIO while the other answers 250.
 * Each batch syncfs's on its own descriptor of the queue, opened before its
 * writes; the per-file descriptors are the batch's own already. */
static void commit_batch_run(void *arg)
{
    struct commit_item *batch = arg;
    struct queue *q = batch->q;
    int n = 0;
    for (struct commit_item *it = batch; it; it = it->next)
        n++;
    int whole_fs = fs_batch_wants_syncfs((size_t)n);
    int fd = open(q->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        for (struct commit_item *it = batch; it; it = it->next)
            fail_item(it);
    for (struct commit_item *it = batch; it; it = it->next) {
        if (!it->err && it->content && write_content(it) < 0)
            fail_item(it);
        if (!it->err && write_env(it) < 0)
            fail_item(it);
        if (!it->err && (qfile_seal(&it->msg) < 0 || qfile_seal(&it->env) < 0))
            fail_item(it);
        if (!it->err && !whole_fs && (fdatasync(it->msg.fd) < 0 || fdatasync(it->env.fd) < 0))
            fail_item(it);
    }
    if (whole_fs) {
        int fs_ok = queue_syncfs(q, fd) == 0;
        for (struct commit_item *it = batch; it; it = it->next)
            if (!it->err && (!fs_ok || content_written(it) < 0))
                fail_item(it);
    }
    for (struct commit_item *it = batch; it; it = it->next)
        if (!it->err && rename_into(it) < 0)
            fail_item(it);
    /* the renames: one syncfs covers both directories */
    int dirs_ok = queue_syncfs(q, fd) == 0;
    for (struct commit_item *it = batch; it; it = it->next) {
        if (!dirs_ok)
            fail_item(it);
        qfile_close(&it->msg);
        qfile_close(&it->env);
        if (it->err) {
            /* unplace only what this commit renamed into place, never an
             * existing file its rename was refused over */
            char path[PATH_MAX];
            path_in(q->env, it->id, "", path, sizeof path);
            if (it->env.renamed)
                unlink(path);
            path_in(q->msg, it->id, "", path, sizeof path);
            if (it->msg.renamed)
                unlink(path);
            drop_files(it);
        }
    }
    if (fd >= 0)
        close(fd);
}

static void start_batch(struct queue *q);

static void commit_batch_done(void *arg)
{
    struct commit_item *it = arg;
    struct queue *q = it->q;
    while (it) {
        struct commit_item *next = it->next;
        it->cb(it->arg, it->err);
        free(it->envbuf);
        free(it->content);
        free(it);
        it = next;
    }
    if (q->group_commit) {
        q->batches--;
        start_batch(q);
    }
}

static void start_batch(struct queue *q)
{
    while (q->waiting && !(q->group_commit && q->batches >= QUEUE_BATCHES)) {
        struct commit_item *head = q->waiting, *it = head;
        int n = 1;
        size_t limit = q->group_commit ? BATCH_MAX : 1;
        while (it->next && (size_t)n < limit) {
            it = it->next;
            n++;
        }
        q->waiting = it->next;
        if (!q->waiting)
            q->waiting_tail = NULL;
        it->next = NULL;
        if (work_submit(q->pool, WORK_COMMIT, commit_batch_run, commit_batch_done, head) < 0) {
            for (it = head; it; it = it->next) {
                it->err = ESHUTDOWN;
                drop_files(it);
            }
            commit_batch_done(head);
            continue;
        }
        if (q->group_commit)
            q->batches++;
    }
}

static void enqueue(struct queue *q, struct commit_item *it)
{
    it->next = NULL;
    if (q->waiting_tail)
        q->waiting_tail->next = it;
    else
        q->waiting = it;
    q->waiting_tail = it;
    start_batch(q);
}

static struct commit_item *item_new(struct queue *q, struct envelope *env,
                                    queue_commit_cb cb, void *arg)
{
    struct commit_item *it = calloc(1, sizeof *it);
    if (!it)
        return NULL;
    it->q = q;
    it->msg.fd = -1;
    it->env.fd = -1;
    it->env.placed = 1;     /* nothing to drop until write_env opens one */
    it->cb = cb;
    it->arg = arg;
    memcpy(it->id, env->id, sizeof it->id);
    if (env_format(env, &it->envbuf, &it->envlen) < 0) {
        free(it);
        return NULL;
    }
    return it;
}

int queue_commit(struct queue *q, struct queue_writer *w, struct envelope *env,
                 queue_commit_cb cb, void *arg)
{
    if (w->err) {
        errno = w->err;
        queue_writer_abort(q, w);
        return -1;
    }
    memcpy(env->id, w->id, sizeof env->id);
    env->size = w->size;
    struct commit_item *it = item_new(q, env, cb, arg);
    if (!it) {
        queue_writer_abort(q, w);
        errno = ENOMEM;
        return -1;
    }
    writer_to_qfile(w, &it->msg);
    w->fd = -1;
    enqueue(q, it);
    return 0;
}

int queue_inject(struct queue *q, const char *content, size_t len, struct envelope *env,
                 queue_commit_cb cb, void *arg)
{
    if (!qid_valid(env->id))
        qid_new(env->id);
    env->size = (long long)len;
    struct commit_item *it = item_new(q, env, cb, arg);
    if (!it)
        return -1;
    it->content = malloc(len ? len : 1);
    if (!it->content) {
        free(it->envbuf);
        free(it);
        return -1;
    }
    memcpy(it->content, content, len);
    it->content_len = len;
    it->msg.placed = 1;     /* nothing to drop until write_content opens one */
    enqueue(q, it);
    return 0;
}

/* ------------------------------------------------------------ update / remove */

static void op_done(void *arg)
{
    struct queue_op *op = arg;
    if (op->cb)
        op->cb(op->arg, op->err);
    free(op->buf);
    free(op);
}

/* Worker: write tmp/ID.upd and make it durable.  The new envelope is
 * staged in tmp/ (not next to env/ID) so that env/ only ever holds whole
 * envelopes: a crash mid-rewrite leaves debris that start-up removes, not
 * a stray file in env/ that recovery would call corrupt. */
static int update_write_tmp(struct queue_op *op, const char *tmp)
{
    int fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (fs_write_all(fd, op->buf, op->len) < 0 || fdatasync(fd) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return close(fd);
}

static void update_run(void *arg)
{
    struct queue_op *op = arg;
    char tmp[PATH_MAX], path[PATH_MAX];
    path_in(op->q->tmp, op->id, ".upd", tmp, sizeof tmp);
    path_in(op->q->env, op->id, "", path, sizeof path);
    if (update_write_tmp(op, tmp) < 0 || rename(tmp, path) < 0) {
        op->err = errno ? errno : EIO;
        unlink(tmp);
        return;
    }
    if (fs_fsync_dir(op->q->env) < 0)
        op->err = errno ? errno : EIO;
}

/* Recycle a spent file into the pool, or unlink it. */
static int retire(struct queue *q, enum spare_kind k, const char *path)
{
    if (spares_put(q->spares, k, path) == 0)
        return 0;
    if (unlink(path) < 0 && errno != ENOENT)
        return -1;
    return 0;
}

/* The envelope goes first: a content file without one is removed at start. */
static void remove_run(void *arg)
{
    struct queue_op *op = arg;
    char path[PATH_MAX];
    path_in(op->q->env, op->id, "", path, sizeof path);
    if (retire(op->q, SPARE_ENV, path) < 0)
        op->err = errno;
    path_in(op->q->hold, op->id, "", path, sizeof path);   /* a held message */
    if (unlink(path) < 0 && errno != ENOENT && !op->err)
        op->err = errno;
    path_in(op->q->msg, op->id, "", path, sizeof path);
    if (retire(op->q, SPARE_MSG, path) < 0 && !op->err)
        op->err = errno;
}

static int submit_op(struct queue *q, const char *id, char *buf, size_t len, work_fn fn,
                     queue_done_cb cb, void *arg)
{
    struct queue_op *op = calloc(1, sizeof *op);
    if (!op) {
        free(buf);
        return -1;
    }
    op->q = q;
    snprintf(op->id, sizeof op->id, "%s", id);
    op->buf = buf;
    op->len = len;
    op->cb = cb;
    op->arg = arg;
    if (work_submit(q->pool, WORK_DELIVERY, fn, op_done, op) < 0) {
        free(buf);
        free(op);
        return -1;
    }
    return 0;
}

int queue_update(struct queue *q, const struct envelope *env, queue_done_cb cb, void *arg)
{
    char *buf;
    size_t len;
    if (env_format(env, &buf, &len) < 0)
        return -1;
    return submit_op(q, env->id, buf, len, update_run, cb, arg);
}

int queue_remove(struct queue *q, const char *id, queue_done_cb cb, void *arg)
{
    return submit_op(q, id, NULL, 0, remove_run, cb, arg);
}

/* Worker: env/ID <-> hold/ID (op->len: 1 = hold).  One rename, so a crash
 * leaves the envelope in one of the two, then both directories durable. */
static void hold_run(void *arg)
{
    struct queue_op *op = arg;
    char from[PATH_MAX], to[PATH_MAX];
    path_in(op->len ? op->q->env : op->q->hold, op->id, "", from, sizeof from);
    path_in(op->len ? op->q->hold : op->q->env, op->id, "", to, sizeof to);
    if (rename(from, to) < 0 || fs_fsync_dir(op->q->hold) < 0 || fs_fsync_dir(op->q->env) < 0)
        op->err = errno ? errno : EIO;
}

int queue_hold(struct queue *q, const char *id, int hold, queue_done_cb cb, void *arg)
{
    return submit_op(q, id, NULL, hold ? 1 : 0, hold_run, cb, arg);
}

/* ------------------------------------------------------------ recovery */

static void clean_tmp(struct queue *q)
{
    DIR *d = opendir(q->tmp);
    if (!d)
        return;
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0)
            n++;
    }
    closedir(d);
    if (n)
        log_info("queue: removed %d unfinished file(s) from %s", n, q->tmp);
}

static void move_corrupt(struct queue *q, const char *dir, const char *id, const char *why)
{
    char from[PATH_MAX], to[PATH_MAX];
    path_in(dir, id, "", from, sizeof from);
    path_in(q->corrupt, id, ".env", to, sizeof to);
    if (rename(from, to) < 0 && errno != ENOENT)
        log_err("%s: cannot move %s to corrupt/: %s", id, from, strerror(errno));
    path_in(q->msg, id, "", from, sizeof from);
    path_in(q->corrupt, id, ".msg", to, sizeof to);
    if (rename(from, to) < 0 && errno != ENOENT)
        log_err("%s: cannot move %s to corrupt/: %s", id, from, strerror(errno));
    log_err("%s: corrupt queue file moved to %s: %s", id, q->corrupt, why);
}

int queue_load_envelope(const struct queue *q, const char *id, struct envelope *env)
{
    char path[PATH_MAX], err[256];
    char *buf;
    size_t len;
    path_in(q->env, id, "", path, sizeof path);
    if (fs_read_file(path, QUEUE_ENV_MAX, &buf, &len) < 0)
        return -1;
    env_init(env);
    int rc = env_parse(buf, len, env, err, sizeof err);
    free(buf);
    if (rc < 0)
        errno = EINVAL;
    return rc;
}

/* One env/ID at start-up: good → found() and 1; bad → corrupt/ and 0; a
 * newer version than ours → -1 (EPROTONOSUPPORT), nothing touched. */
static int recover_one(struct queue *q, const char *dir, const char *id,
                       void (*found)(void *, struct envelope *), void *arg)
{
    char path[PATH_MAX], err[256];
    char *buf;
    size_t len;
    struct stat st;
    if (!qid_valid(id)) {
        move_corrupt(q, dir, id, "not a queue ID");
        return 0;
    }
    path_in(dir, id, "", path, sizeof path);
    if (fs_read_file(path, QUEUE_ENV_MAX, &buf, &len) < 0) {
        move_corrupt(q, dir, id, strerror(errno));
        return 0;
    }
    int version = env_version(buf, len);
    if (version > ENV_VERSION) {
        /* a newer hatod's mail: never ours to call corrupt (envelope.h) */
        log_err("%s: %s is an envelope of version %d; this hatod reads versions up to %d: "
                "refusing to start (run the newer hatod)", id, path, version, ENV_VERSION);
        free(buf);
        errno = EPROTONOSUPPORT;
        return -1;
    }
    struct envelope env;
    env_init(&env);
    int rc = env_parse(buf, len, &env, err, sizeof err);
    free(buf);
    if (rc < 0) {
        move_corrupt(q, dir, id, err);
        return 0;
    }
    path_in(q->msg, id, "", path, sizeof path);
    if (stat(path, &st) < 0 || strcmp(env.id, id) != 0) {
        env_clear(&env);
        move_corrupt(q, dir, id, "content file missing or ID mismatch");
        return 0;
    }
    found(arg, &env);
    env_clear(&env);
    return 1;
}

/* Content files whose envelope never made it: the client got no 250. */
static void remove_orphans(struct queue *q)
{
    DIR *d = opendir(q->msg);
    if (!d)
        return;
    struct dirent *de;
    char path[PATH_MAX];
    struct stat st;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        path_in(q->env, de->d_name, "", path, sizeof path);
        if (stat(path, &st) == 0)
            continue;
        path_in(q->hold, de->d_name, "", path, sizeof path);   /* held */
        if (stat(path, &st) == 0)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0)
            log_info("%s: removed content without envelope (never acknowledged)", de->d_name);
    }
    closedir(d);
}

/* Every ID on disk, so that this process issues only greater ones (the
 * clock may have stepped back across the restart). */
static void note_ids(const struct queue *q)
{
    const char *dirs[] = { q->tmp, q->msg, q->env, q->hold, q->corrupt };
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        DIR *d = opendir(dirs[i]);
        if (!d)
            continue;
        struct dirent *de;
        while ((de = readdir(d)))
            qid_seen(de->d_name);
        closedir(d);
    }
}

/* recover_one for every entry of dir (env/ or hold/). */
static int recover_dir(struct queue *q, const char *dir,
                       void (*found)(void *arg, struct envelope *env), void *arg)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *de;
    int n = 0;
    char (*ids)[NAME_MAX + 1] = NULL;
    size_t nids = 0, cap = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        if (nids == cap) {
            cap = cap ? cap * 2 : 256;
            void *p = realloc(ids, cap * sizeof *ids);
            if (!p) {
                closedir(d);
                free(ids);
                return -1;
            }
            ids = p;
        }
        snprintf(ids[nids++], NAME_MAX + 1, "%s", de->d_name);
    }
    closedir(d);
    for (size_t i = 0; i < nids; i++) {
        int r = recover_one(q, dir, ids[i], found, arg);
        if (r < 0) {
            free(ids);
            return -1;           /* errno set; stop before removing anything */
        }
        n += r;
    }
    free(ids);
    return n;
}

int queue_recover(struct queue *q, void (*found)(void *arg, struct envelope *env), void *arg)
{
    note_ids(q);
    clean_tmp(q);
    int n = recover_dir(q, q->env, found, arg);
    if (n < 0)
        return -1;
    remove_orphans(q);
    return n;
}

int queue_recover_held(struct queue *q, void (*found)(void *arg, struct envelope *env), void *arg)
{
    return recover_dir(q, q->hold, found, arg);
}
