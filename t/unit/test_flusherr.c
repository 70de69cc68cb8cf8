/*
 * t/unit/test_flusherr.c — flush errors reach every commit batch they
 * affect.  Linked with t/shim/flusherr.c, which models how Linux reports a
 * writeback error: once to each open descriptor (errseq).
 *  - Two batches on the disk at once, one writeback error while both are
 *    flushing: both answer an error (with one descriptor shared by the
 *    batches, one took the EIO and the other acknowledged).
 *  - A content file whose writeback failed before its batch began, the
 *    error already reported to another flush: that message gets an error,
 *    the others of its (syncfs) batch do not.
 *  - A lone commit whose content failed: fdatasync of its own descriptor.
 * The shim's hook holds the first batch's flush until the second batch is
 * flushing too, so the overlap does not depend on timing.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/work.h"
#include "queue/queue.h"
#include "t/shim/flusherr.h"
#include "t/unit/tap.h"

#define NMSG 6

static struct event_base *base;
static int outstanding;
static int result[NMSG];
static struct envelope envs[NMSG];

static void committed(void *arg, int err)
{
    result[(int)((struct envelope *)arg - envs)] = err;
    if (--outstanding == 0)
        event_base_loopbreak(base);
}

static int exists(const char *dir, const char *sub, const char *name)
{
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/queue/%s/%s", dir, sub, name);
    return stat(p, &st) == 0;
}

static void ts_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* The hook for two batches: the first syncfs waits for a second one, then
 * a writeback fails (a directory block: the filesystem's sequence moves),
 * then both go on.  5 s at most each way, so a broken queue fails the test
 * rather than hanging it. */
static pthread_mutex_t hmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hcv = PTHREAD_COND_INITIALIZER;
static int arrivals, injected;

static void two_batches_hook(const char *call, int fd)
{
    (void)fd;
    if (strcmp(call, "syncfs") != 0)
        return;
    struct timespec limit;
    ts_after(&limit, 5000);
    pthread_mutex_lock(&hmu);
    int n = ++arrivals;
    pthread_cond_broadcast(&hcv);
    if (n == 1) {
        while (arrivals < 2)
            if (pthread_cond_timedwait(&hcv, &hmu, &limit) == ETIMEDOUT)
                break;
        flusherr_fail_fs();
        injected = 1;
        pthread_cond_broadcast(&hcv);
    } else {
        while (!injected)
            if (pthread_cond_timedwait(&hcv, &hmu, &limit) == ETIMEDOUT)
                break;
    }
    pthread_mutex_unlock(&hmu);
}

static void open_writers(struct queue *q, struct queue_writer *w, int n)
{
    for (int i = 0; i < n; i++) {
        env_init(&envs[i]);
        env_set_sender(&envs[i], "a@example.test");
        env_set_client(&envs[i], "127.0.0.1", "helo.test", "ESMTP");
        env_add_rcpt(&envs[i], "bob@example.test", "bob@example.test");
        if (queue_writer_open(q, &w[i]) < 0 ||
            queue_writer_write(&w[i], "Subject: x\r\n\r\nbody\r\n", 20) < 0)
            ok(0, "writer %d", i);
    }
}

static void commit_all(struct queue *q, struct queue_writer *w, int n)
{
    outstanding = n;
    for (int i = 0; i < n; i++) {
        result[i] = -1;
        if (queue_commit(q, &w[i], &envs[i], committed, &envs[i]) < 0)
            ok(0, "commit %d started", i);
    }
    event_base_dispatch(base);
}

static void clear_envs(int n)
{
    for (int i = 0; i < n; i++)
        env_clear(&envs[i]);
}

static void test_two_batches(const char *dir)
{
    char err[256];
    struct queue_writer w[2];
    struct work_pool *pool = work_pool_new(base, 4);
    struct queue *q = queue_open(dir, pool, 1, err, sizeof err);
    ok(q != NULL, "queue opened");
    arrivals = injected = 0;
    int before = flusherr_reported();
    flusherr_set_hook(two_batches_hook);
    open_writers(q, w, 2);
    commit_all(q, w, 2);          /* two batches of one: both on the disk at once */
    flusherr_set_hook(NULL);
    is_int(arrivals, 2, "both batches reached their syncfs together");
    is_int(result[0], EIO, "the first batch answers the flush error");
    is_int(result[1], EIO, "so does the second, flushing at the same time");
    is_int(flusherr_reported() - before, 2, "the error was reported to each batch's descriptor");
    for (int i = 0; i < 2; i++)
        ok(!exists(dir, "env", envs[i].id) && !exists(dir, "msg", envs[i].id),
           "message %d is not left in the queue", i);
    clear_envs(2);
    queue_close(q);
    work_pool_free(pool);
}

static void test_content_before_batch(const char *dir)
{
    char err[256];
    struct queue_writer w[NMSG];
    struct work_pool *pool = work_pool_new(base, 1);
    struct queue *q = queue_open(dir, pool, 1, err, sizeof err);
    ok(q != NULL, "queue opened");
    open_writers(q, w, NMSG);
    /* message 2's content is lost in writeback before any batch begins;
     * batch 1 (message 0) is told first, through the filesystem's report */
    flusherr_fail_file(w[2].fd);
    commit_all(q, w, NMSG);       /* batches: {0}, {1}, then {2..5} flushed with syncfs */
    ok(result[2] != 0, "the message whose content was lost gets an error (got %d)", result[2]);
    ok(!exists(dir, "env", envs[2].id), "and is not in the queue");
    int others = 1;
    for (int i = 3; i < NMSG; i++)
        if (result[i] != 0 || !exists(dir, "env", envs[i].id))
            others = 0;
    ok(others, "the rest of its batch is queued");
    is_int(result[1], 0, "a batch after the report, with nothing lost, is queued");
    clear_envs(NMSG);
    queue_close(q);
    work_pool_free(pool);
}

static void test_lone_commit(const char *dir)
{
    char err[256];
    struct queue_writer w[1];
    struct work_pool *pool = work_pool_new(base, 2);
    struct queue *q = queue_open(dir, pool, 1, err, sizeof err);
    open_writers(q, w, 1);
    flusherr_fail_file(w[0].fd);
    commit_all(q, w, 1);
    is_int(result[0], EIO, "a lone commit whose content was lost gets EIO (fdatasync)");
    clear_envs(1);
    queue_close(q);
    work_pool_free(pool);
}

int main(void)
{
    char tmpl[] = "/tmp/hato-test-flusherr-XXXXXX";
    char *dir = mkdtemp(tmpl);
    ok(dir != NULL, "temp dir");
    base = event_base_new();
    flusherr_enable();
    test_two_batches(dir);
    test_content_before_batch(dir);
    test_lone_commit(dir);
    event_base_free(base);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        ok(0, "cleanup");
    return tap_done();
}
