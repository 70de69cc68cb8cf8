/*
 * t/unit/sched_fixture.h — what the scheduler unit tests share: a temporary
 * queue directory, a loop with a 10 ms tick (so that EVLOOP_ONCE returns),
 * a one-thread worker pool, the queue opened on it, a scheduler config
 * with hour-long backoffs whose router sends every recipient to agent 0,
 * and the clean-up.
 */
#ifndef HATO_TEST_SCHED_FIXTURE_H
#define HATO_TEST_SCHED_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include "lib/work.h"
#include "queue/queue.h"
#include "queue/scheduler.h"

#define BAIL_OUT(...) do { printf("Bail out! " __VA_ARGS__); printf("\n"); exit(1); } while (0)

struct sched_fixture {
    char dir[256];
    struct event_base *base;
    struct event *tick;
    struct work_pool *pool;
    struct queue *q;
};

static inline void fixture_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static inline int fixture_route0(void *ctx, const char *rcpt)
{
    (void)ctx;
    (void)rcpt;
    return 0;
}

/* name: a word for the directory, /tmp/hato-test-NAME-XXXXXX */
static inline void fixture_open(struct sched_fixture *f, const char *name)
{
    char err[256];
    snprintf(f->dir, sizeof f->dir, "/tmp/hato-test-%s-XXXXXX", name);
    if (!mkdtemp(f->dir))
        BAIL_OUT("mkdtemp");
    f->base = event_base_new();
    f->tick = event_new(f->base, -1, EV_PERSIST, fixture_tick, NULL);
    struct timeval ten_ms = { 0, 10000 };
    if (!f->base || !f->tick || event_add(f->tick, &ten_ms) < 0)
        BAIL_OUT("event base");
    f->pool = work_pool_new(f->base, 1);
    f->q = f->pool ? queue_open(f->dir, f->pool, 1, err, sizeof err) : NULL;
    if (!f->q)
        BAIL_OUT("queue_open: %s", err);
}

/* A scheduler on the fixture's queue with one agent, backoffs of an hour. */
static inline struct scheduler *fixture_sched(struct sched_fixture *f, const struct sched_agent *a)
{
    struct sched_config cfg = {
        .myhostname = "mx.example.test", .mail_name = "hato",
        .minimal_backoff = 3600, .maximal_backoff = 3600,
        .max_lifetime = 86400, .bounce_lifetime = 86400, .route = fixture_route0,
    };
    struct scheduler *s = sched_new(f->base, f->q, f->pool, &cfg);
    if (!s || sched_add_agent(s, a) < 0)
        BAIL_OUT("sched_new");
    return s;
}

static inline void fixture_close(struct sched_fixture *f)
{
    if (f->q)
        queue_close(f->q);
    work_pool_free(f->pool);
    event_free(f->tick);
    event_base_free(f->base);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", f->dir);
}

#endif
