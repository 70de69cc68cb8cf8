/*
 * lib/work.h — the worker pool: a few pthreads that run blocking jobs
 * (fsync, Maildir writes, crypt(), big scans) off the event loop.
 *
 * Contract: `fn` runs on a worker thread and must not touch libevent
 * objects; `done` runs later on the loop thread, in submission-independent
 * order, via one eventfd drained by the loop.  A job is never cancelled:
 * callers that may have gone away key their state by id, not by pointer,
 * and check it in `done`.
 *
 * Jobs come in classes, so that a slow kind of job never delays a queue
 * commit.  Each class has its own FIFO, a number of threads reserved to it
 * (no other class may take them, so its jobs start at once while it is
 * under its reservation) and a cap on the threads it may occupy.  An idle
 * thread starts the oldest queued job whose class may start one.  With one
 * thread the pool is a single FIFO.
 */
#ifndef HATO_WORK_H
#define HATO_WORK_H

struct event_base;
struct work_pool;

/* Who waits for the job decides its class. */
enum work_class {
    WORK_COMMIT,     /* queue commits: a client waits for its 250 */
    WORK_DELIVERY,   /* local delivery, envelope rewrite/removal, DSN build, aborted files */
    WORK_AUTH,       /* password hashing: a client waits, but may be slow */
    WORK_FILTER,     /* SPF and other blocking filter work */
    WORK_SCAN,       /* nobody waits soon: maildrop scans, reloads */
    WORK_TLS,        /* TLS handshake steps (the private-key operation): short, many */
    WORK_CLASSES
};

typedef void (*work_fn)(void *arg);
typedef void (*work_done_fn)(void *arg);

/* nthreads is clamped to 1..64. */
struct work_pool *work_pool_new(struct event_base *base, int nthreads);
/* The threads reserved to class c and its cap in a pool of nthreads (after
 * clamping).  1 thread: nothing reserved, every cap 1.  2: one reserved for
 * WORK_COMMIT.  3 or more: one each for WORK_COMMIT and WORK_DELIVERY; the
 * rest are shared, WORK_AUTH, WORK_FILTER and WORK_TLS may take all but one
 * of them, WORK_SCAN one. */
void work_class_limits(int nthreads, enum work_class c, int *reserved, int *cap);
/* WORK_AUTH jobs run at a lower CPU priority than the loop (nice + 10), and
 * a thread returns to its own nice for other jobs, which an unprivileged
 * process may do only with RLIMIT_NICE at 20 (or CAP_SYS_NICE): call this
 * as root before dropping privileges to raise the limit.  0 or -1; the pool
 * renices only if it finds it can come back. */
int work_priority_prepare(void);
/* Queue a job of class c.  Returns 0, or -1 if the pool is shutting down. */
int work_submit(struct work_pool *pool, enum work_class c, work_fn fn, work_done_fn done,
                void *arg);
/* Jobs queued or running. */
int work_pending(const struct work_pool *pool);
/* Wait for every queued job of every class, run their `done`s, stop the
 * threads, free. */
void work_pool_free(struct work_pool *pool);

#endif
