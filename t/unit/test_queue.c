/*
 * t/unit/test_queue.c — the on-disk queue: commit makes msg/ID and env/ID
 * (in both group and per-message modes), IDs are unique, inject, update and
 * remove work, a message written into a recycled spare holds no stale
 * bytes, a write error leaves nothing, a commit never replaces an existing
 * queue file, and recovery cleans tmp/, removes unacknowledged content,
 * moves corrupt envelopes aside and makes new IDs sort after every ID found.
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
static int outstanding;
static int errors;
static char ids[64][QID_LEN + 1];
static int nids;

static void committed(void *arg, int err)
{
    struct envelope *e = arg;
    if (err)
        errors++;
    else
        memcpy(ids[nids++], e->id, QID_LEN + 1);
    if (--outstanding == 0)
        event_base_loopbreak(base);
}

static void op_done(void *arg, int err)
{
    *(int *)arg = err ? err : -1;
    event_base_loopbreak(base);
}

/* Run the loop until the pool has no job left (aborts run there). */
static void drain(struct work_pool *pool)
{
    while (work_pending(pool) > 0)
        event_base_loop(base, EVLOOP_ONCE);
}

static int exists(const char *dir, const char *sub, const char *name)
{
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/queue/%s/%s", dir, sub, name);
    return stat(p, &st) == 0;
}

static int count(const char *dir, const char *sub)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "ls %s/queue/%s | wc -l", dir, sub);
    FILE *f = popen(cmd, "r");
    int n = -1;
    if (f) {
        if (fscanf(f, "%d", &n) != 1)
            n = -1;
        pclose(f);
    }
    return n;
}

static void make_env(struct envelope *e, const char *rcpt)
{
    env_init(e);
    env_set_sender(e, "a@example.test");
    env_set_client(e, "127.0.0.1", "helo.test", "ESMTP");
    env_add_rcpt(e, rcpt, rcpt);
}

static void commit_many(struct queue *q, int n, struct envelope *envs)
{
    outstanding = n;
    for (int i = 0; i < n; i++) {
        struct queue_writer w;
        make_env(&envs[i], "bob@example.test");
        ok(queue_writer_open(q, &w) == 0, "writer %d opened", i);
        queue_writer_write(&w, "Subject: x\r\n\r\nbody\r\n", 20);
        ok(queue_commit(q, &w, &envs[i], committed, &envs[i]) == 0, "commit %d started", i);
    }
    event_base_dispatch(base);
}

static void test_commit(const char *dir, int group)
{
    char err[256];
    struct work_pool *pool = work_pool_new(base, 2);
    struct queue *q = queue_open(dir, pool, group, err, sizeof err);
    struct envelope envs[10];
    ok(q != NULL, "queue opened (group=%d)", group);
    nids = errors = 0;
    commit_many(q, 10, envs);
    is_int(errors, 0, "no commit errors");
    is_int(nids, 10, "ten commits reported");
    int all = 1;
    for (int i = 0; i < nids; i++)
        if (!exists(dir, "msg", ids[i]) || !exists(dir, "env", ids[i]))
            all = 0;
    ok(all, "msg/ID and env/ID exist for each");
    is_int(count(dir, "tmp"), 0, "tmp/ is empty after commits");
    int uniq = 1;
    for (int i = 0; i < nids; i++)
        for (int j = i + 1; j < nids; j++)
            if (!strcmp(ids[i], ids[j]))
                uniq = 0;
    ok(uniq, "IDs are unique");
    struct envelope back;
    ok(queue_load_envelope(q, ids[0], &back) == 0, "envelope loads back");
    is_str(back.sender, "a@example.test", "sender round-trips");
    is_int(back.size, 20, "size is the content size");
    env_clear(&back);
    for (int i = 0; i < 10; i++)
        env_clear(&envs[i]);
    queue_close(q);
    work_pool_free(pool);
}

static void test_ops(const char *dir)
{
    char err[256];
    struct work_pool *pool = work_pool_new(base, 2);
    struct queue *q = queue_open(dir, pool, 1, err, sizeof err);
    struct envelope e;
    make_env(&e, "carol@example.test");
    nids = errors = 0;
    outstanding = 1;
    ok(queue_inject(q, "Subject: i\r\n\r\nx\r\n", 17, &e, committed, &e) == 0, "inject started");
    event_base_dispatch(base);
    ok(nids == 1 && exists(dir, "msg", ids[0]), "injected message committed");
    e.attempts = 3;
    int res = 0;
    ok(queue_update(q, &e, op_done, &res) == 0, "update started");
    event_base_dispatch(base);
    is_int(res, -1, "update succeeded");
    struct envelope back;
    ok(queue_load_envelope(q, e.id, &back) == 0 && back.attempts == 3, "update is on disk");
    env_clear(&back);
    res = 0;
    ok(queue_remove(q, e.id, op_done, &res) == 0, "remove started");
    event_base_dispatch(base);
    ok(!exists(dir, "msg", e.id) && !exists(dir, "env", e.id), "remove deleted both files");

    /* the removed message's two files are spares now, but their move into
     * the pool is not flushed yet: the next message takes a new file, and
     * its commit's flush makes the spares usable */
    struct queue_writer w;
    struct envelope e4;
    ok(queue_writer_open(q, &w) == 0 && !w.spare, "right after a removal no spare is handed out");
    queue_writer_write(&w, "S\r\n", 3);
    make_env(&e4, "bob@example.test");
    outstanding = 1;
    ok(queue_commit(q, &w, &e4, committed, &e4) == 0, "a commit (with its flush)");
    event_base_dispatch(base);
    env_clear(&e4);
    /* now a new message is written into a spare where it lies, and stale
     * bytes never reach msg/ */
    ok(queue_writer_open(q, &w) == 0 && w.spare, "a new message is written into a spare");
    ok(w.sp.stale > 2, "which holds stale octets");
    queue_writer_write(&w, "S\r\n", 3);
    struct envelope e3;
    make_env(&e3, "bob@example.test");
    nids = errors = 0;
    outstanding = 1;
    ok(queue_commit(q, &w, &e3, committed, &e3) == 0, "commit into a spare started");
    event_base_dispatch(base);
    ok(nids == 1 && errors == 0, "and committed");
    char p[4096];
    snprintf(p, sizeof p, "%s/queue/msg/%s", dir, e3.id);
    struct stat st;
    ok(stat(p, &st) == 0 && st.st_size == 3, "msg/ID holds exactly the 3 octets written");
    struct envelope back3;
    ok(queue_load_envelope(q, e3.id, &back3) == 0, "the envelope written into a spare loads");
    env_clear(&back3);
    is_int(count(dir, "tmp"), 0, "tmp/ was not used");
    res = 0;
    ok(queue_remove(q, e3.id, op_done, &res) == 0, "remove it again");
    event_base_dispatch(base);
    env_clear(&e3);
    struct envelope e5;
    commit_many(q, 1, &e5);              /* a flush, so that those spares are usable */
    env_clear(&e5);

    ok(queue_writer_open(q, &w) == 0 && w.spare, "another spare");
    int before = count(dir, "free");
    queue_writer_abort(q, &w);
    is_int(count(dir, "free"), before, "abort gives the spare back to the pool");
    while (queue_writer_open(q, &w) == 0 && w.spare)
        close(w.fd);                     /* empty the pool (leaks the spares) */
    char tmpname[64];
    snprintf(tmpname, sizeof tmpname, "%s", w.id);
    ok(!w.spare && exists(dir, "tmp", tmpname), "with the pool empty the writer file is in tmp/");
    queue_writer_abort(q, &w);
    drain(pool);
    ok(!exists(dir, "tmp", tmpname), "abort removes it (in the pool)");

    queue_writer_open(q, &w);
    w.err = ENOSPC;                      /* as if a write had failed */
    struct envelope e2;
    make_env(&e2, "bob@example.test");
    errno = 0;
    ok(queue_commit(q, &w, &e2, committed, &e2) < 0 && errno == ENOSPC,
       "commit after a write error fails with that error");
    drain(pool);
    is_int(count(dir, "tmp"), 0, "and leaves nothing in tmp/");
    env_clear(&e2);
    env_clear(&e);
    queue_close(q);
    work_pool_free(pool);
}

static void read_back(const char *dir, const char *sub, const char *name, char *buf, size_t len)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/queue/%s/%s", dir, sub, name);
    FILE *f = fopen(p, "r");
    size_t n = f ? fread(buf, 1, len - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
}

static void put(const char *dir, const char *sub, const char *name, const char *text);

/* A message whose ID is already taken on disk (a reused ID): the commit
 * fails and the existing files are untouched. */
static void test_no_replace(const char *dir, int group)
{
    char err[256], buf[64];
    struct work_pool *pool = work_pool_new(base, 2);
    struct queue *q = queue_open(dir, pool, group, err, sizeof err);
    const char *which[] = { "msg", "env" };
    for (int k = 0; k < 2; k++) {
        struct queue_writer w;
        struct envelope e;
        ok(queue_writer_open(q, &w) == 0, "writer open");
        queue_writer_write(&w, "new\r\n", 5);
        put(dir, which[k], w.id, "OLD");
        make_env(&e, "bob@example.test");
        nids = errors = 0;
        outstanding = 1;
        ok(queue_commit(q, &w, &e, committed, &e) == 0, "commit over an existing %s/ID started",
           which[k]);
        event_base_dispatch(base);
        ok(errors == 1, "%s mode: commit over an existing %s/ID fails",
           group ? "group" : "single", which[k]);
        read_back(dir, which[k], e.id, buf, sizeof buf);
        ok(strcmp(buf, "OLD") == 0, "the existing %s/ID is untouched (%s: \"%s\")", which[k], e.id, buf);
        ok(!exists(dir, which[1 - k], e.id), "nothing of the new message under its ID");
        char p[4096];
        snprintf(p, sizeof p, "%s/queue/%s/%s", dir, which[k], e.id);
        unlink(p);
        env_clear(&e);
    }
    queue_close(q);
    work_pool_free(pool);
}

static int found;
static void on_found(void *arg, struct envelope *e)
{
    found++;
}

static void put(const char *dir, const char *sub, const char *name, const char *text)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/queue/%s/%s", dir, sub, name);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_recover(const char *dir)
{
    char err[256];
    struct work_pool *pool = work_pool_new(base, 1);
    struct queue *q = queue_open(dir, pool, 1, err, sizeof err);
    int before = count(dir, "env");
    put(dir, "tmp", "0000000000000AAA", "half a message");
    put(dir, "msg", "0000000000000BBB", "content without envelope");
    put(dir, "env", "0000000000000CCC", "hato-envelope 1\nid 0000000000000CCC\n");  /* torn */
    put(dir, "msg", "0000000000000CCC", "x");
    put(dir, "env", "garbage", "not an envelope");
    found = 0;
    int n = queue_recover(q, on_found, NULL);
    is_int(n, before, "recover reports the good envelopes only");
    is_int(found, before, "found() called for each good envelope");
    is_int(count(dir, "tmp"), 0, "tmp/ debris removed");
    ok(!exists(dir, "msg", "0000000000000BBB"), "content without envelope removed");
    ok(exists(dir, "corrupt", "0000000000000CCC.env") && exists(dir, "corrupt", "0000000000000CCC.msg"),
       "torn envelope and its content moved to corrupt/");
    ok(exists(dir, "corrupt", "garbage.env"), "garbage in env/ moved to corrupt/");
    queue_close(q);
    /* an envelope of a newer version: recovery stops and touches nothing */
    q = queue_open(dir, pool, 1, err, sizeof err);
    put(dir, "env", "0000000000000DDD", "hato-envelope 999\nid 0000000000000DDD\nfuture stuff\nend\n");
    put(dir, "msg", "0000000000000DDD", "x");
    put(dir, "msg", "0000000000000EEE", "content without envelope");
    errno = 0;
    ok(queue_recover(q, on_found, NULL) < 0 && errno == EPROTONOSUPPORT,
       "a newer envelope version stops recovery (EPROTONOSUPPORT)");
    ok(exists(dir, "env", "0000000000000DDD") && exists(dir, "msg", "0000000000000DDD") &&
       !exists(dir, "corrupt", "0000000000000DDD.env"), "and it stays in env/, not corrupt/");
    ok(exists(dir, "msg", "0000000000000EEE"), "nothing else was removed either");
    char p[4096];
    snprintf(p, sizeof p, "%s/queue/env/0000000000000DDD", dir);
    unlink(p);
    queue_close(q);
    /* IDs found on disk, from a clock ahead of today's: new ones sort after */
    q = queue_open(dir, pool, 1, err, sizeof err);
    put(dir, "corrupt", "7FFFFFFFFFFFF000.env", "x");
    put(dir, "msg", "7FFFFFFFFFFFE000", "never acknowledged");
    queue_recover(q, on_found, NULL);
    struct queue_writer w;
    ok(queue_writer_open(q, &w) == 0 && strcmp(w.id, "7FFFFFFFFFFFF000") > 0,
       "after recovery new IDs sort after every ID found (%s)", w.id);
    queue_writer_abort(q, &w);
    drain(pool);
    queue_close(q);
    work_pool_free(pool);
}

int main(void)
{
    char tmpl[] = "/tmp/hato-test-queue-XXXXXX";
    char *dir = mkdtemp(tmpl);
    base = event_base_new();
    ok(dir != NULL, "temp dir");
    test_commit(dir, 1);
    test_commit(dir, 0);
    test_ops(dir);
    test_no_replace(dir, 1);
    test_no_replace(dir, 0);
    test_recover(dir);
    event_base_free(base);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return tap_done();
}
