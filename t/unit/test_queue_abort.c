/*
 * t/unit/test_queue_abort.c — an aborted message (client gone mid-DATA,
 * 552, 521) is dropped in the worker pool, never on the calling thread:
 * with the pool's only thread held, queue_writer_abort returns with tmp/ID
 * still there and a big spare still uncut; once the job has run, tmp/ID is
 * gone and the spare is back in the pool, emptied, with its old epoch (it
 * is handed out again without another flush) — and not handed out while
 * the job was pending.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/work.h"
#include "queue/queue.h"
#include "t/unit/tap.h"

static struct event_base *base;
static struct work_pool *pool;
static int gate[2];                 /* the held job waits for a byte on gate[0] */
static int outstanding;

static void gate_run(void *arg)
{
    char c;
    (void)arg;
    while (read(gate[0], &c, 1) < 0 && errno == EINTR)
        ;
}

/* Occupy the pool's only thread until gate_open(). */
static void gate_close(void)
{
    ok(pipe(gate) == 0, "gate pipe");
    ok(work_submit(pool, WORK_DELIVERY, gate_run, NULL, NULL) == 0, "pool thread held");
}

static void drain(void)
{
    while (work_pending(pool) > 0)
        event_base_loop(base, EVLOOP_ONCE);
}

static void gate_open(void)
{
    ok(write(gate[1], "x", 1) == 1, "pool thread released");
    drain();
    close(gate[0]);
    close(gate[1]);
}

static long long size_at(const char *dir, const char *sub, const char *name)
{
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/queue/%s/%s", dir, sub, name);
    return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

static void spare_name(const struct queue_writer *w, char *buf, size_t len)
{
    snprintf(buf, len, "%c%lu", w->sp.kind == SPARE_ENV ? 'e' : 'm', w->sp.num);
}

static void committed(void *arg, int err)
{
    (void)arg;
    ok(err == 0, "commit ok");
    if (--outstanding == 0)
        event_base_loopbreak(base);
}

static void removed(void *arg, int err)
{
    (void)arg;
    ok(err == 0, "remove ok");
    event_base_loopbreak(base);
}

/* Commit one small message; returns its ID in id. */
static void commit_one(struct queue *q, char *id)
{
    struct queue_writer w;
    struct envelope e;
    env_init(&e);
    env_set_sender(&e, "a@example.test");
    env_set_client(&e, "127.0.0.1", "helo.test", "ESMTP");
    env_add_rcpt(&e, "bob@example.test", "bob@example.test");
    ok(queue_writer_open(q, &w) == 0, "writer opened");
    queue_writer_write(&w, "Subject: x\r\n\r\nbody\r\n", 20);
    outstanding = 1;
    ok(queue_commit(q, &w, &e, committed, NULL) == 0, "commit started");
    event_base_dispatch(base);
    if (id)
        memcpy(id, e.id, QID_LEN + 1);
    env_clear(&e);
}

static void test_tmp_file(const char *dir, struct queue *q)
{
    struct queue_writer w;
    ok(queue_writer_open(q, &w) == 0 && !w.spare, "empty pool: the writer is tmp/ID");
    queue_writer_write(&w, "partial content", 15);
    char id[QID_LEN + 1];
    memcpy(id, w.id, sizeof id);
    gate_close();
    queue_writer_abort(q, &w);
    is_int(w.fd, -1, "abort resets the writer at once");
    is_int(size_at(dir, "tmp", id), 15, "tmp/ID is not unlinked on the calling thread");
    gate_open();
    is_int(size_at(dir, "tmp", id), -1, "the pool job unlinked tmp/ID");
}

static void test_big_spare(const char *dir, struct queue *q)
{
    char id[QID_LEN + 1], name[64];
    struct queue_writer w, w2;
    commit_one(q, id);
    ok(queue_remove(q, id, removed, NULL) == 0, "remove started");
    event_base_dispatch(base);                /* msg/ID is now a spare in free/ */
    commit_one(q, NULL);                      /* a flush: that spare may be reused */
    ok(queue_writer_open(q, &w) == 0 && w.spare && w.sp.kind == SPARE_MSG,
       "the writer is the recycled spare");
    spare_name(&w, name, sizeof name);
    static char big[SPARE_KEEP_FILE + 4096];
    memset(big, 'x', sizeof big);
    ok(queue_writer_write(&w, big, sizeof big) == 0, "more than the pool keeps in a spare");
    gate_close();
    queue_writer_abort(q, &w);
    is_int(size_at(dir, "free", name), (long long)sizeof big,
           "the spare is not cut on the calling thread");
    ok(queue_writer_open(q, &w2) == 0 && !w2.spare,
       "a spare being cleaned is not handed out before its job ran");
    queue_writer_abort(q, &w2);
    gate_open();
    is_int(size_at(dir, "free", name), 0, "the pool job emptied the spare");
    ok(queue_writer_open(q, &w) == 0 && w.spare, "after the job the spare is handed out again");
    spare_name(&w, big, sizeof big);
    is_str(big, name, "the same spare, without a flush since: it kept its epoch");
    queue_writer_abort(q, &w);
    drain();
}

int main(void)
{
    char tmpl[] = "/tmp/hato-test-abort-XXXXXX", err[256];
    char *dir = mkdtemp(tmpl);
    ok(dir != NULL, "temp dir");
    base = event_base_new();
    pool = work_pool_new(base, 1);
    struct queue *q = queue_open(dir, pool, 1, err, sizeof err);
    ok(q != NULL, "queue opened");
    test_tmp_file(dir, q);
    test_big_spare(dir, q);
    queue_close(q);
    work_pool_free(pool);
    event_base_free(base);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return tap_done();
}
