/*
 * t/unit/test_sched_ctl.c — the scheduler's operator verbs (hatoctl queue
 * hold/release/delete/requeue) against a real queue directory and pool,
 * with a fake delivery agent that answers only when the test says so:
 * hold and delete asked during an attempt wait for its end; a held message
 * is never tried (not even by a flush), lives in hold/ and survives a
 * restart held (its content is no orphan); release and requeue make it due
 * now; the attempt's remote host and TLS are in the envelope on disk.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/timeutil.h"
#include "lib/work.h"
#include "queue/queue.h"
#include "queue/scheduler.h"
#include "t/unit/sched_fixture.h"
#include "t/unit/tap.h"

#define SPIN_MAX 400            /* loop passes of at most 10 ms each */

static struct sched_fixture fx;
static struct event_base *base;
static struct sched_delivery *pending;   /* the fake agent's current delivery */
static int calls;
static const char *dir = fx.dir;

static void fake_deliver(void *ctx, struct sched_delivery *dl)
{
    (void)ctx;
    pending = dl;
    calls++;
}

/* Run the loop until cond() or SPIN_MAX passes; returns cond(). */
static int spin(int (*cond)(const char *), const char *arg)
{
    for (int i = 0; i < SPIN_MAX && !cond(arg); i++)
        event_base_loop(base, EVLOOP_ONCE);
    return cond(arg);
}

static int in(const char *sub, const char *id)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s/queue/%s/%s", dir, sub, id);
    return stat(p, &st) == 0;
}

static int in_hold(const char *id) { return in("hold", id); }
static int in_env(const char *id) { return in("env", id); }
static int gone(const char *id) { return !in("env", id) && !in("msg", id) && !in("hold", id); }
static int have_pending(const char *unused) { (void)unused; return pending != NULL; }

static struct scheduler *cur_s;
static int forgotten(const char *id)
{
    int st;
    long long due;
    return sched_find(cur_s, id, &st, &due) == NULL;
}
static int idle_deferred(const char *id)
{
    int st;
    long long due;
    return sched_find(cur_s, id, &st, &due) && !(st & SCHED_ACTIVE) && due > 0;
}

static int committed_flag;
static void committed(void *arg, int err)
{
    (void)arg;
    committed_flag = err ? -1 : 1;
}
static int is_committed(const char *unused) { (void)unused; return committed_flag != 0; }

/* Queue one message and hand it to the scheduler; its ID into id. */
static void add_message(struct queue *q, struct scheduler *s, char id[QID_LEN + 1])
{
    static const char msg[] = "Subject: ctl\r\n\r\nbody\r\n";
    struct envelope e;
    env_init(&e);
    env_set_sender(&e, "a@example.test");
    env_set_client(&e, "127.0.0.1", "h", "ESMTP");
    env_add_rcpt(&e, "r@remote.test", "");
    e.arrival_us = time_now_us();
    committed_flag = 0;
    if (queue_inject(q, msg, sizeof msg - 1, &e, committed, NULL) < 0 || !spin(is_committed, NULL))
        BAIL_OUT("inject");
    memcpy(id, e.id, QID_LEN + 1);
    sched_add(s, &e);
    env_clear(&e);
}

/* The fake agent answers: deferred, from a remote host over TLS. */
static void answer_deferred(void)
{
    struct sched_delivery *dl = pending;
    pending = NULL;
    dl->res[0].state = RCPT_PENDING;
    snprintf(dl->res[0].dsn, sizeof dl->res[0].dsn, "4.4.1");
    snprintf(dl->res[0].text, sizeof dl->res[0].text, "451 4.4.1 try later");
    snprintf(dl->res[0].remote, sizeof dl->res[0].remote, "mx.remote.test[127.0.0.2]:25");
    snprintf(dl->res[0].tls, sizeof dl->res[0].tls, "TLSv1.3 TLS_AES_128_GCM_SHA256");
    sched_delivery_done(dl);
}

static struct scheduler *new_sched(void)
{
    struct sched_agent agent = { "fake", fake_deliver, NULL };
    return fixture_sched(&fx, &agent);
}

static int recovered;
static struct scheduler *recover_into;
static void found(void *arg, struct envelope *e) { (void)arg; sched_add(recover_into, e); recovered++; }
static void found_held(void *arg, struct envelope *e) { (void)arg; sched_add_held(recover_into, e); recovered++; }

int main(void)
{
    char err[256], a[QID_LEN + 1], b[QID_LEN + 1];
    int state;
    long long due;

    fixture_open(&fx, "schedctl");
    base = fx.base;
    struct work_pool *pool = fx.pool;
    struct queue *q = fx.q;
    struct scheduler *s = new_sched();

    /* hold asked during an attempt: applied when it ends */
    add_message(q, s, a);
    ok(spin(have_pending, NULL), "the agent got the message");
    is_int(sched_hold(s, a), 1, "hold during the attempt: deferred to its end");
    ok(sched_find(s, a, &state, &due) && (state & SCHED_ACTIVE), "  still active meanwhile");
    answer_deferred();
    ok(spin(in_hold, a), "after the attempt the envelope is in hold/");
    ok(!in_env(a), "  and not in env/");
    ok(sched_find(s, a, &state, &due) && (state & SCHED_HELD) && due == 0, "  held, no next attempt");
    struct envelope e;
    env_init(&e);
    {
        char p[512], *buf = NULL;
        size_t len = 0;
        FILE *f;
        snprintf(p, sizeof p, "%s/queue/hold/%s", dir, a);
        f = fopen(p, "r");
        if (f) {
            buf = malloc(65536);
            len = buf ? fread(buf, 1, 65536, f) : 0;
            fclose(f);
        }
        ok(buf && env_parse(buf, len, &e, err, sizeof err) == 0, "the held envelope parses");
        ok(e.nrcpt == 1 && !strcmp(e.rcpts[0].remote, "mx.remote.test[127.0.0.2]:25") &&
           !strcmp(e.rcpts[0].tls, "TLSv1.3 TLS_AES_128_GCM_SHA256") && e.rcpts[0].attempts == 1 &&
           e.rcpts[0].last_try > 0, "  with the attempt's remote host, TLS and count");
        free(buf);
        env_clear(&e);
    }
    sched_flush(s);
    for (int i = 0; i < 30; i++)
        event_base_loop(base, EVLOOP_ONCE);
    is_int(calls, 1, "a flush does not deliver a held message");
    is_int(sched_hold(s, a), 0, "hold again: nothing to do");

    /* restart: still held, content kept */
    sched_free(s);
    queue_close(q);
    q = fx.q = queue_open(dir, pool, 1, err, sizeof err);
    if (!q)
        BAIL_OUT("queue_open: %s", err);
    s = new_sched();
    recover_into = s;
    recovered = 0;
    ok(queue_recover(q, found, NULL) == 0 && queue_recover_held(q, found_held, NULL) == 1,
       "after a restart recovery finds it in hold/");
    ok(in("msg", a), "  its content is not removed as an orphan");
    ok(sched_find(s, a, &state, &due) && (state & SCHED_HELD), "  held again");
    for (int i = 0; i < 30; i++)
        event_base_loop(base, EVLOOP_ONCE);
    is_int(calls, 1, "  and not delivered");

    /* release: back to env/ and due now */
    is_int(sched_release(s, a), 0, "release");
    ok(spin(have_pending, NULL), "  delivered at once");
    ok(in_env(a) && !in_hold(a), "  envelope back in env/");
    is_int(calls, 2, "  second attempt");

    /* delete during an attempt: after it, both files gone */
    is_int(sched_delete(s, a), 1, "delete during the attempt: deferred to its end");
    answer_deferred();
    ok(spin(gone, a), "after the attempt both files are gone");
    cur_s = s;
    ok(spin(forgotten, a), "  and the scheduler forgot it");

    /* idle message: delete at once; requeue makes a deferred one due */
    add_message(q, s, b);
    ok(spin(have_pending, NULL), "another message tried");
    answer_deferred();
    ok(spin(idle_deferred, b), "  deferred for an hour");
    int before = calls;
    is_int(sched_requeue(s, b), 0, "requeue");
    ok(spin(have_pending, NULL) && calls == before + 1, "  tried again at once");
    answer_deferred();
    ok(spin(idle_deferred, b), "  deferred again");
    is_int(sched_delete(s, b), 0, "delete an idle message");
    ok(spin(gone, b), "  files gone");
    ok(spin(forgotten, b), "  and forgotten");

    is_int(sched_hold(s, "0000000000000001"), -1, "hold: no such message");
    is_int(sched_release(s, "0000000000000001"), -1, "release: no such message");
    is_int(sched_delete(s, "0000000000000001"), -1, "delete: no such message");
    is_int(sched_requeue(s, "0000000000000001"), -1, "requeue: no such message");

    sched_free(s);
    fixture_close(&fx);
    return tap_done();
}
