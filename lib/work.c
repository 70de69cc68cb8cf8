/*
 * lib/work.c — the worker pool.  Owns its threads, the job queue (mutex +
 * condition variable) and the completion queue, which the loop drains when
 * one eventfd becomes readable.  Never touches a caller's libevent objects
 * from a worker: `done` callbacks always run on the loop thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/log.h"
#include "lib/work.h"

#define WORK_MAX_THREADS 64

struct work_job {
    work_fn fn;
    work_done_fn done;
    void *arg;
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
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct work_list todo;       /* guarded by mu */
    struct work_list finished;   /* guarded by mu */
    int pending;                 /* queued + running + finished-not-reaped; loop only */
    int stopping;                /* guarded by mu */
};

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

static void *worker_main(void *arg)
{
    struct work_pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->todo.head && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        struct work_job *j = list_pop(&p->todo);
        pthread_mutex_unlock(&p->mu);
        if (!j)
            return NULL;          /* stopping and nothing left */
        j->fn(j->arg);
        pthread_mutex_lock(&p->mu);
        list_push(&p->finished, j);
        pthread_mutex_unlock(&p->mu);
        signal_loop(p);
    }
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

struct work_pool *work_pool_new(struct event_base *base, int nthreads)
{
    struct work_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->efd = -1;
    if (nthreads < 1)
        nthreads = 1;
    if (nthreads > WORK_MAX_THREADS)
        nthreads = WORK_MAX_THREADS;
    p->base = base;
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

int work_submit(struct work_pool *p, work_fn fn, work_done_fn done, void *arg)
{
    struct work_job *j = malloc(sizeof *j);
    if (!j)
        return -1;
    j->fn = fn;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        free(j);
        return -1;
    }
    list_push(&p->todo, j);
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
