/*
 * lib/work.c — the worker pool.  Owns its threads, the job queues (one FIFO
 * per class, under one mutex + condition variable), the per-class counts
 * of running jobs that enforce reservations and caps, and the completion
 * queue, which the loop drains when one eventfd becomes readable.  Never
 * touches a caller's libevent objects from a worker: `done` callbacks
 * always run on the loop thread.
 *
 * Password hashing (WORK_AUTH) runs at a lower CPU priority (nice
 * WORK_AUTH_NICE more) than the loop and the other jobs: on a busy machine a
 * login storm then waits for CPU rather than the loop (bench/RESULTS.md,
 * "AUTH PLAIN logins/s": a small effect next to the machine's own load).  A
 * thread goes back to nice 0 for its next job of another class, which an
 * unprivileged thread may do only under RLIMIT_NICE 20 (or with
 * CAP_SYS_NICE): the daemon raises the limit before the privilege drop
 * (work_priority_prepare), and the pool checks on a throwaway thread that
 * going back works; where it does not, nothing is reniced.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/log.h"
#include "lib/work.h"

#define WORK_MAX_THREADS 64
#define WORK_AUTH_NICE   10          /* see the top of the file */

struct work_job {
    work_fn fn;
    work_done_fn done;
    void *arg;
    enum work_class cls;
    unsigned long long seq;      /* submission order across classes */
    struct work_job *next;
};

struct work_list {
    struct work_job *head, *tail;
};

struct work_pool {
    struct event_base *base;
    struct event *ev;            /* eventfd readable: completions waiting */
    int efd;
    pthread_t threads[WORK_MAX_THREADS];
    int nthreads;                /* started */
    int size;                    /* asked for (clamped): the limits are computed for it */
    int reserved[WORK_CLASSES], cap[WORK_CLASSES];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct work_list todo[WORK_CLASSES];   /* guarded by mu */
    int running[WORK_CLASSES];   /* guarded by mu */
    int busy;                    /* threads running a job; guarded by mu */
    int queued;                  /* jobs in todo[]; guarded by mu */
    unsigned long long seq;      /* guarded by mu */
    struct work_list finished;   /* guarded by mu */
    int pending;                 /* queued + running + finished-not-reaped; loop only */
    int stopping;                /* guarded by mu */
    int renice;                  /* threads may go back to nice 0 (RLIMIT_NICE) */
};

static int clamp_threads(int n)
{
    if (n < 1)
        return 1;
    return n > WORK_MAX_THREADS ? WORK_MAX_THREADS : n;
}

void work_class_limits(int nthreads, enum work_class c, int *reserved, int *cap)
{
    int n = clamp_threads(nthreads);
    int res_commit = n >= 2, res_delivery = n >= 3;
    int shared = n - res_commit - res_delivery;
    int some = shared > 1 ? shared - 1 : 1;    /* leave one shared thread to the others */
    switch (c) {
    case WORK_COMMIT:   *reserved = res_commit;   *cap = n - res_delivery; break;
    case WORK_DELIVERY: *reserved = res_delivery; *cap = n - res_commit;   break;
    case WORK_AUTH:
    case WORK_FILTER:
    case WORK_TLS:      *reserved = 0;            *cap = some;             break;
    default:            *reserved = 0;            *cap = 1;                break;
    }
}

static void list_push(struct work_list *l, struct work_job *j)
{
    j->next = NULL;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
}

static struct work_job *list_pop(struct work_list *l)
{
    struct work_job *j = l->head;
    if (j) {
        l->head = j->next;
        if (!l->head)
            l->tail = NULL;
    }
    return j;
}

static void signal_loop(struct work_pool *p)
{
    uint64_t one = 1;
    while (write(p->efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

/* May an idle thread start a job of class c now?  Under its cap, and
 * either within its own reservation or leaving every other class's unused
 * reservation free.  Caller holds mu. */
static int may_start(const struct work_pool *p, int c)
{
    if (p->running[c] >= p->cap[c])
        return 0;
    if (p->running[c] < p->reserved[c])
        return 1;
    int owed = 0;
    for (int d = 0; d < WORK_CLASSES; d++)
        if (d != c && p->running[d] < p->reserved[d])
            owed += p->reserved[d] - p->running[d];
    return p->size - p->busy > owed;
}

/* The class whose oldest queued job may start now and is the oldest of
 * those, or -1.  Caller holds mu. */
static int pick_class(const struct work_pool *p)
{
    int best = -1;
    for (int c = 0; c < WORK_CLASSES; c++) {
        const struct work_job *j = p->todo[c].head;
        if (j && may_start(p, c) && (best < 0 || j->seq < p->todo[best].head->seq))
            best = c;
    }
    return best;
}

/* Wait for a job this thread may start; NULL when stopping and every queue
 * is empty.  Caller holds mu. */
static struct work_job *next_job(struct work_pool *p)
{
    for (;;) {
        int c = pick_class(p);
        if (c >= 0) {
            struct work_job *j = list_pop(&p->todo[c]);
            p->queued--;
            p->running[c]++;
            p->busy++;
            if (pick_class(p) >= 0)
                pthread_cond_signal(&p->cv);    /* more can start: wake another thread */
            return j;
        }
        if (p->stopping && p->queued == 0) {
            pthread_cond_broadcast(&p->cv);     /* let the others see it too */
            return NULL;
        }
        pthread_cond_wait(&p->cv, &p->mu);
    }
}

/* This thread's nice value for a job of class c (Linux: per thread):
 * WORK_AUTH_NICE above the one it started with, for password hashing. */
static void thread_nice(const struct work_pool *p, int base, int *now, enum work_class c)
{
    int want = c == WORK_AUTH ? base + WORK_AUTH_NICE : base;
    if (want > 19)
        want = 19;
    if (!p->renice || want == *now)
        return;
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), want) == 0)
        *now = want;
}

static void *worker_main(void *arg)
{
    struct work_pool *p = arg;
    errno = 0;
    int base = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    if (errno)
        base = 0;
    int nice_now = base;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        struct work_job *j = next_job(p);
        if (!j)
            break;
        pthread_mutex_unlock(&p->mu);
        thread_nice(p, base, &nice_now, j->cls);
        j->fn(j->arg);
        pthread_mutex_lock(&p->mu);
        p->running[j->cls]--;
        p->busy--;
        /* the loop is told once per batch: a list that was not empty has
         * been announced, and its reap will take this job too */
        int announce = p->finished.head == NULL;
        list_push(&p->finished, j);
        if (announce)
            signal_loop(p);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Run the `done` of every finished job, on the loop. */
static void reap(struct work_pool *p)
{
    pthread_mutex_lock(&p->mu);
    struct work_job *j = p->finished.head;
    p->finished.head = p->finished.tail = NULL;
    pthread_mutex_unlock(&p->mu);
    while (j) {
        struct work_job *next = j->next;
        p->pending--;
        if (j->done)
            j->done(j->arg);
        free(j);
        j = next;
    }
}

static void on_eventfd(evutil_socket_t fd, short what, void *arg)
{
    struct work_pool *p = arg;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN && errno != EINTR)
        log_warn("work: eventfd read: %s", strerror(errno));
    reap(p);
}

/* On a throwaway thread: can a thread of ours go 1 nicer and back?  (With
 * CAP_SYS_NICE or RLIMIT_NICE 20 it can.)  A thread that could not come
 * back would run its commits niced, so the pool renices only if so. */
static void *renice_try(void *arg)
{
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int base = getpriority(PRIO_PROCESS, tid);
    *(int *)arg = errno == 0 && base < 19 && setpriority(PRIO_PROCESS, tid, base + 1) == 0 &&
                  setpriority(PRIO_PROCESS, tid, base) == 0;
    return NULL;
}

static int renice_works(void)
{
    pthread_t t;
    int ok = 0;
    if (pthread_create(&t, NULL, renice_try, &ok) != 0)
        return 0;
    pthread_join(t, NULL);
    return ok;
}

int work_priority_prepare(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NICE, &rl) < 0)
        return -1;
    if (rl.rlim_cur >= 20)
        return 0;
    rl.rlim_cur = 20;
    if (rl.rlim_max < 20)
        rl.rlim_max = 20;
    return setrlimit(RLIMIT_NICE, &rl);
}

struct work_pool *work_pool_new(struct event_base *base, int nthreads)
{
    struct work_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->efd = -1;
    nthreads = clamp_threads(nthreads);
    p->size = nthreads;
    for (int c = 0; c < WORK_CLASSES; c++)
        work_class_limits(nthreads, (enum work_class)c, &p->reserved[c], &p->cap[c]);
    p->base = base;
    (void)work_priority_prepare();
    p->renice = renice_works();
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0)
        goto fail;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->ev = event_new(base, p->efd, EV_READ | EV_PERSIST, on_eventfd, p);
    if (!p->ev || event_add(p->ev, NULL) < 0)
        goto fail;
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0)
            goto fail;
        p->nthreads++;
    }
    return p;
fail:
    log_err("work: cannot start the worker pool: %s", strerror(errno));
    work_pool_free(p);
    return NULL;
}

int work_submit(struct work_pool *p, enum work_class c, work_fn fn, work_done_fn done,
                void *arg)
{
    if ((unsigned)c >= WORK_CLASSES)
        c = WORK_SCAN;
    struct work_job *j = malloc(sizeof *j);
    if (!j)
        return -1;
    j->cls = c;
    j->fn = fn;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        free(j);
        return -1;
    }
    j->seq = p->seq++;
    list_push(&p->todo[c], j);
    p->queued++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    p->pending++;
    return 0;
}

int work_pending(const struct work_pool *p)
{
    return p->pending;
}

void work_pool_free(struct work_pool *p)
{
    if (!p)
        return;
    if (p->nthreads > 0) {
        pthread_mutex_lock(&p->mu);
        p->stopping = 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        for (int i = 0; i < p->nthreads; i++)
            pthread_join(p->threads[i], NULL);
        reap(p);
    }
    if (p->ev)
        event_free(p->ev);
    if (p->efd >= 0)
        close(p->efd);
    free(p);
}
