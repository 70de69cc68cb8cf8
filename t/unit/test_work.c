/*
 * t/unit/test_work.c — the worker pool: every job runs once on a worker
 * thread, every `done` runs once on the loop thread, and freeing the pool
 * waits for queued jobs of every class.  Classes: a class saturated with
 * jobs that do not finish does not delay a commit; the threads reserved to
 * a class stay free for it while every other class is saturated; no class
 * runs more jobs than its cap; FIFO order within a class and, on one
 * thread, across classes.  Saturating jobs wait on a gate the test opens
 * (or 10 s pass), so no assertion depends on how fast the machine is.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
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

/* ------------------------------------------------------------ classes */

static pthread_mutex_t obs_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t obs_cv = PTHREAD_COND_INITIALIZER;
static int gate_open;                       /* guarded by obs_mu */
static int started[WORK_CLASSES], now_running[WORK_CLASSES], max_running[WORK_CLASSES];
static int busy, max_busy;                  /* gated jobs running; guarded by obs_mu */

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

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void obs_reset(void)
{
    pthread_mutex_lock(&obs_mu);
    gate_open = 0;
    busy = max_busy = 0;
    for (int c = 0; c < WORK_CLASSES; c++)
        started[c] = now_running[c] = max_running[c] = 0;
    pthread_mutex_unlock(&obs_mu);
}

/* A job of the class in *arg that runs until the gate opens (10 s at most). */
static void gated(void *arg)
{
    int c = *(int *)arg;
    struct timespec limit;
    ts_after(&limit, 10000);
    pthread_mutex_lock(&obs_mu);
    started[c]++;
    if (++now_running[c] > max_running[c])
        max_running[c] = now_running[c];
    if (++busy > max_busy)
        max_busy = busy;
    pthread_cond_broadcast(&obs_cv);
    while (!gate_open)
        if (pthread_cond_timedwait(&obs_cv, &obs_mu, &limit) == ETIMEDOUT)
            break;
    now_running[c]--;
    busy--;
    pthread_mutex_unlock(&obs_mu);
}

/* The probe: records whether it started while the gate was still shut. */
static int probe_ran, probe_before_gate;
static double probe_at;
static void probe(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&obs_mu);
    probe_ran = 1;
    probe_before_gate = !gate_open;
    probe_at = now_ms();
    pthread_cond_broadcast(&obs_cv);
    pthread_mutex_unlock(&obs_mu);
}

/* Wait (ms at most) until *counter >= want; returns whether it got there. */
static int wait_for(const int *counter, int want, int ms)
{
    struct timespec limit;
    ts_after(&limit, ms);
    pthread_mutex_lock(&obs_mu);
    while (*counter < want)
        if (pthread_cond_timedwait(&obs_cv, &obs_mu, &limit) == ETIMEDOUT)
            break;
    int got = *counter >= want;
    pthread_mutex_unlock(&obs_mu);
    return got;
}

static void open_gate(void)
{
    pthread_mutex_lock(&obs_mu);
    gate_open = 1;
    pthread_cond_broadcast(&obs_cv);
    pthread_mutex_unlock(&obs_mu);
}

static int class_ids[WORK_CLASSES] = { 0, 1, 2, 3, 4, 5 };
static const char *class_names[WORK_CLASSES] = { "commit", "delivery", "auth", "filter", "scan",
                                                 "tls" };

/* Saturate the classes in mask with `per` gated jobs each (interleaved, so
 * they compete), let them take what they may, then submit a probe of class
 * c: it must start before the gate opens. */
static void saturate_then_probe(int nthreads, unsigned mask, int per, int c, const char *what)
{
    obs_reset();
    probe_ran = probe_before_gate = 0;
    struct work_pool *p = work_pool_new(base, nthreads);
    int may = 0;                            /* threads the saturating classes may take */
    for (int i = 0; i < per; i++)
        for (int d = 0; d < WORK_CLASSES; d++)
            if (mask & (1u << d))
                work_submit(p, (enum work_class)d, gated, NULL, &class_ids[d]);
    for (int d = 0, res, cap; d < WORK_CLASSES; d++)
        if (mask & (1u << d)) {
            work_class_limits(nthreads, (enum work_class)d, &res, &cap);
            may += cap;
        }
    int res_c, cap_c;
    work_class_limits(nthreads, (enum work_class)c, &res_c, &cap_c);
    if (may > nthreads - res_c)
        may = nthreads - res_c;
    wait_for(&busy, may, 5000);
    usleep(100000);                         /* room for a wrong pool to take more */
    pthread_mutex_lock(&obs_mu);
    int seen_busy = max_busy;
    pthread_mutex_unlock(&obs_mu);
    if (!tap_ok(seen_busy == may, "%s: the saturating classes occupy %d threads, no more", what, may))
        printf("#   they occupied %d\n", seen_busy);
    double t0 = now_ms();
    work_submit(p, (enum work_class)c, probe, NULL, NULL);
    wait_for(&probe_ran, 1, 5000);
    ok(probe_ran && probe_before_gate, "%s: the %s job starts while the others are saturated",
       what, class_names[c]);
    if (probe_ran)
        printf("# %s: %s job started %.2f ms after submission\n", what, class_names[c],
               probe_at - t0);
    open_gate();
    work_pool_free(p);
}

/* No class runs more at once than its cap. */
static void check_cap(int nthreads, int c)
{
    int res, cap;
    work_class_limits(nthreads, (enum work_class)c, &res, &cap);
    obs_reset();
    struct work_pool *p = work_pool_new(base, nthreads);
    for (int i = 0; i < cap + 4; i++)
        work_submit(p, (enum work_class)c, gated, NULL, &class_ids[c]);
    wait_for(&started[c], cap, 5000);
    usleep(100000);
    pthread_mutex_lock(&obs_mu);
    int m = max_running[c];
    pthread_mutex_unlock(&obs_mu);
    if (!tap_ok(m == cap, "%d threads: %s runs %d jobs at once (its cap)", nthreads,
                class_names[c], cap))
        printf("#   ran %d at once\n", m);
    open_gate();
    work_pool_free(p);
    is_int(started[c], cap + 4, "and every one of them ran");
}

static int order[64], norder;
static pthread_mutex_t order_mu = PTHREAD_MUTEX_INITIALIZER;
static int order_ids[64];
static void record(void *arg)
{
    pthread_mutex_lock(&order_mu);
    order[norder++] = *(int *)arg;
    pthread_mutex_unlock(&order_mu);
    usleep(1000);
}

/* Jobs of one capped class start in submission order; on one thread jobs
 * of every class do. */
static void check_fifo(int nthreads, int mixed)
{
    norder = 0;
    struct work_pool *p = work_pool_new(base, nthreads);
    for (int i = 0; i < 40; i++) {
        order_ids[i] = i;
        enum work_class c = mixed ? (enum work_class)(i % WORK_CLASSES) : WORK_SCAN;
        work_submit(p, c, record, NULL, &order_ids[i]);
    }
    work_pool_free(p);
    int in_order = norder == 40;
    for (int i = 0; in_order && i < 40; i++)
        if (order[i] != i)
            in_order = 0;
    ok(in_order, "%d thread(s): %s start in submission order", nthreads,
       mixed ? "jobs of every class" : "jobs of one class");
}

static int drained_done;
static void drained(void *arg)
{
    (void)arg;
    drained_done++;
}

static void slow_job(void *arg)
{
    (void)arg;
    usleep(5000);
    atomic_fetch_add(&ran, 1);
}

/* work_pool_free waits for every queued job of every class. */
static void check_drain(void)
{
    atomic_store(&ran, 0);
    drained_done = 0;
    struct work_pool *p = work_pool_new(base, 4);
    for (int i = 0; i < 10; i++)
        for (int c = 0; c < WORK_CLASSES; c++)
            work_submit(p, (enum work_class)c, slow_job, drained, NULL);
    work_pool_free(p);
    is_int(atomic_load(&ran), 10 * WORK_CLASSES, "free runs every queued job of every class");
    is_int(drained_done, 10 * WORK_CLASSES, "and every done");
}

static void check_limits(void)
{
    for (int n = 1; n <= 64; n++) {
        int sum = 0, good = 1;
        for (int c = 0; c < WORK_CLASSES; c++) {
            int res, cap;
            work_class_limits(n, (enum work_class)c, &res, &cap);
            sum += res;
            if (cap < 1 || cap > n || res > cap)
                good = 0;
        }
        if (!good || (n == 1 && sum != 0) || (n > 1 && sum > n - 1)) {
            ok(0, "%d threads: every cap in 1..n, reservations leave a shared thread", n);
            return;
        }
    }
    ok(1, "1..64 threads: every cap in 1..n, reservations leave a shared thread");
    int res, cap;
    work_class_limits(4, WORK_COMMIT, &res, &cap);
    ok(res == 1 && cap == 3, "4 threads: one reserved to commits, which may use 3");
    work_class_limits(4, WORK_DELIVERY, &res, &cap);
    ok(res == 1 && cap == 3, "4 threads: one reserved to deliveries, which may use 3");
}

static int seen_nice[3];
static void nice_probe(void *arg)
{
    errno = 0;
    int n = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    *(int *)arg = errno ? -100 : n;
}

/* A password hash runs niced below the loop; the thread's next job of
 * another class runs at the thread's own priority again. */
static void *can_come_back(void *arg)
{
    id_t tid = (id_t)syscall(SYS_gettid);
    int n = getpriority(PRIO_PROCESS, tid);
    *(int *)arg = n < 19 && setpriority(PRIO_PROCESS, tid, n + 1) == 0 &&
                  setpriority(PRIO_PROCESS, tid, n) == 0;
    return NULL;
}

static void check_auth_nice(void)
{
    errno = 0;
    int nice0 = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    int want = nice0 + 10 > 19 ? 19 : nice0 + 10;
    int back = 0;
    pthread_t t;
    (void)work_priority_prepare();
    if (pthread_create(&t, NULL, can_come_back, &back) == 0)
        pthread_join(t, NULL);
    if (!back) {
        printf("# threads here cannot return to a lower nice: the pool must renice nothing\n");
        want = nice0;
    }
    struct work_pool *p = work_pool_new(base, 1);
    work_submit(p, WORK_COMMIT, nice_probe, NULL, &seen_nice[0]);
    work_submit(p, WORK_AUTH, nice_probe, NULL, &seen_nice[1]);
    work_submit(p, WORK_COMMIT, nice_probe, NULL, &seen_nice[2]);
    work_pool_free(p);
    is_int(seen_nice[0], nice0, "a commit job runs at the loop's nice");
    is_int(seen_nice[1], want, "a password hash runs 10 nicer (where threads can come back)");
    is_int(seen_nice[2], nice0, "the next commit job on that thread is back at the loop's nice");
}

static void test_classes(void)
{
    check_limits();
    check_auth_nice();
    /* DESIGN.md's login storm: more auth jobs than threads */
    saturate_then_probe(4, 1u << WORK_AUTH, 8, WORK_COMMIT, "auth storm");
    saturate_then_probe(2, 1u << WORK_AUTH, 8, WORK_COMMIT, "auth storm, 2 threads");
    /* a handshake storm leaves a thread to logins, and the reverse */
    saturate_then_probe(4, 1u << WORK_TLS, 8, WORK_AUTH, "handshake storm");
    saturate_then_probe(4, 1u << WORK_AUTH, 8, WORK_TLS, "login storm");
    saturate_then_probe(4, 1u << WORK_TLS, 8, WORK_COMMIT, "handshake storm");
    /* the reservations: every other class saturated */
    unsigned all = (1u << WORK_CLASSES) - 1;
    saturate_then_probe(4, all & ~(1u << WORK_COMMIT), 8, WORK_COMMIT, "all others");
    saturate_then_probe(4, all & ~(1u << WORK_DELIVERY), 8, WORK_DELIVERY, "all others");
    saturate_then_probe(2, all & ~(1u << WORK_COMMIT), 8, WORK_COMMIT, "all others, 2 threads");
    check_cap(8, WORK_AUTH);
    check_cap(8, WORK_SCAN);
    check_cap(8, WORK_TLS);
    check_cap(4, WORK_DELIVERY);
    check_fifo(4, 0);
    check_fifo(1, 1);
    check_drain();
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
    test_classes();
    event_base_free(base);
    return tap_done();
}
