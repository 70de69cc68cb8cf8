/*
 * lib/work.h — the worker pool: a few pthreads that run blocking jobs
 * (fsync, Maildir writes, crypt(), big scans) off the event loop.
 *
 * Contract: `fn` runs on a worker thread and must not touch libevent
 * objects; `done` runs later on the loop thread, in submission-independent
 * order, via one eventfd drained by the loop.  A job is never cancelled:
 * callers that may have gone away key their state by id, not by pointer,
 * and check it in `done`.
 */
#ifndef HATO_WORK_H
#define HATO_WORK_H

struct event_base;
struct work_pool;

typedef void (*work_fn)(void *arg);
typedef void (*work_done_fn)(void *arg);

struct work_pool *work_pool_new(struct event_base *base, int nthreads);
/* Queue a job.  Returns 0, or -1 if the pool is shutting down. */
int work_submit(struct work_pool *pool, work_fn fn, work_done_fn done, void *arg);
/* Jobs queued or running. */
int work_pending(const struct work_pool *pool);
/* Wait for every queued job, run their `done`s, stop the threads, free. */
void work_pool_free(struct work_pool *pool);

#endif
