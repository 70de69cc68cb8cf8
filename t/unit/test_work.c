/*
 * t/unit/test_work.c — the worker pool: every job runs once on a worker
 * thread, every `done` runs once on the loop thread, and freeing the pool
 * waits for queued jobs.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/work.h"
#include "t/unit/tap.h"

#define NJOBS 2000

static atomic_int ran;
static int done_count, done_on_loop = 1, fn_off_loop = 1;
static pthread_t loop_thread;
static struct event_base *base;

static void job(void *arg)
{
    if (pthread_equal(pthread_self(), loop_thread))
        fn_off_loop = 0;
    atomic_fetch_add(&ran, 1);
    *(int *)arg += 1;
}

static void done(void *arg)
{
    if (!pthread_equal(pthread_self(), loop_thread))
        done_on_loop = 0;
    done_count++;
    if (done_count == NJOBS)
        event_base_loopbreak(base);
}

static void slow(void *arg)
{
    usleep(20000);
    atomic_fetch_add(&ran, 1);
}

int main(void)
{
    static int hits[NJOBS];
    loop_thread = pthread_self();
    base = event_base_new();
    struct work_pool *p = work_pool_new(base, 4);
    ok(p != NULL, "pool created");
    for (int i = 0; i < NJOBS; i++)
        if (work_submit(p, WORK_COMMIT, job, done, &hits[i]) < 0)
            ok(0, "submit %d", i);
    is_int(work_pending(p), NJOBS, "all jobs pending before the loop runs");
    event_base_dispatch(base);
    is_int(atomic_load(&ran), NJOBS, "every job ran");
    is_int(done_count, NJOBS, "every done ran");
    int once = 1;
    for (int i = 0; i < NJOBS; i++)
        if (hits[i] != 1)
            once = 0;
    ok(once, "each job ran exactly once");
    ok(done_on_loop, "done callbacks run on the loop thread");
    ok(fn_off_loop, "jobs run off the loop thread");
    is_int(work_pending(p), 0, "nothing pending after the loop");

    atomic_store(&ran, 0);
    for (int i = 0; i < 8; i++)
        work_submit(p, WORK_SCAN, slow, NULL, NULL);
    work_pool_free(p);
    is_int(atomic_load(&ran), 8, "free waits for queued jobs");

    struct work_pool *p1 = work_pool_new(base, 0);
    ok(p1 != NULL, "a pool of 0 threads gets one thread");
    work_pool_free(p1);
    event_base_free(base);
    return tap_done();
}
