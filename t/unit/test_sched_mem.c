/*
 * t/unit/test_sched_mem.c — what a queued message costs the scheduler in
 * heap, against a real queue directory and pool and a fake agent that
 * defers every recipient from inside its deliver call (as the "smtp"
 * agent does when a destination is held back):
 *   - an envelope copy (the scheduler's) of a 1-recipient message with the
 *     usual empty fields costs at most ENV_COPY_MAX octets, and a queued
 *     message (struct smsg, the copy, its table and heap slots) QUEUED_MAX;
 *   - an attempt that defers N messages leaves at most LEFT_MAX octets
 *     each behind (the new reason strings; the per-attempt result arrays,
 *     about 1 KiB a recipient, are not kept while the message waits);
 *   - a message out in an attempt (the agent holds its delivery) costs at
 *     most INFLIGHT_MAX octets more: up to 512 are out at once in a drain
 *     (no result array per message beside the delivery's, a content path
 *     of its own size, not PATH_MAX).
 * Heap figures come from glibc's mallinfo2 (the loop's arena); under a
 * sanitizer (its own allocator) they are skipped, the attempts still run.
 * bench/sched-mem measures the whole process (PSS per queued message).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "lib/timeutil.h"
#include "lib/work.h"
#include "queue/queue.h"
#include "queue/scheduler.h"
#include "t/unit/sched_fixture.h"
#include "t/unit/tap.h"

#if defined(__SANITIZE_ADDRESS__)
#define HEAP_FIGURES 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HEAP_FIGURES 0
#endif
#endif
#ifndef HEAP_FIGURES
#ifdef __GLIBC__
#define HEAP_FIGURES 1
#include <malloc.h>
#else
#define HEAP_FIGURES 0
#endif
#endif

#define N             300       /* messages queued at once */
#define ENV_COPY_MAX  240       /* octets of heap per envelope copy (glibc chunks:
                                   208 now; 256 with client/helo/proto apart) */
#define QUEUED_MAX    470       /* octets per message the scheduler holds
                                   (smsg + envelope copy + table and heap slots) */
#define LEFT_MAX      200       /* octets an attempt leaves per waiting message */
#define INFLIGHT_MAX  1536      /* octets per message out in an attempt (about
                                   1,100 now: the delivery and its 952-octet
                                   result; 6 KiB with a message result array
                                   and a PATH_MAX path) */
#define SPIN_MAX      2000      /* loop passes of at most 10 ms each */

static struct sched_fixture fx;
static struct event_base *base;
static size_t attempts;
static int holding;                         /* fake_deliver keeps the deliveries */
static struct sched_delivery *out[N];
static size_t nheld;

static long long heap_used(void)
{
#if HEAP_FIGURES
    struct mallinfo2 mi = mallinfo2();
    return (long long)mi.uordblks;
#else
    return 0;
#endif
}

static void fake_deliver(void *ctx, struct sched_delivery *dl)
{
    (void)ctx;
    attempts++;
    if (holding && nheld < N) {
        out[nheld++] = dl;
        return;
    }
    for (size_t k = 0; k < dl->n; k++) {
        dl->res[k].state = RCPT_PENDING;
        snprintf(dl->res[k].dsn, sizeof dl->res[k].dsn, "4.4.1");
        snprintf(dl->res[k].text, sizeof dl->res[k].text, "451 4.4.1 try later");
    }
    sched_delivery_done(dl);
}

static void one_envelope(struct envelope *e, int i)
{
    char addr[64];
    env_init(e);
    snprintf(addr, sizeof addr, "user%d@d%d.remote.test", i, i % 100);
    if (env_set_sender(e, "sender@example.test") < 0 ||
        env_set_client(e, "127.0.0.1", "client.example.test", "ESMTP") < 0 ||
        env_add_rcpt(e, addr, "") < 0)
        BAIL_OUT("envelope");
    e->arrival_us = time_now_us();
}

int main(void)
{
    fixture_open(&fx, "schedmem");
    base = fx.base;

    /* one envelope copy */
    {
        struct envelope e, copies[100];
        one_envelope(&e, 1);
        long long before = heap_used();
        for (int i = 0; i < 100; i++) {
            env_init(&copies[i]);
            if (env_copy(&copies[i], &e) < 0)
                BAIL_OUT("env_copy");
        }
        long long per = (heap_used() - before) / 100;
        if (HEAP_FIGURES) {
            printf("# envelope copy: %lld octets\n", per);
            ok(per <= ENV_COPY_MAX, "an envelope copy costs %lld <= %d octets", per, ENV_COPY_MAX);
        } else {
            ok(1, "# SKIP envelope copy: no heap figures under a sanitizer");
        }
        for (int i = 0; i < 100; i++)
            env_clear(&copies[i]);
        env_clear(&e);
    }

    struct sched_agent agent = { "fake", fake_deliver, NULL };
    struct scheduler *s = fixture_sched(&fx, &agent);

    /* N messages known to the scheduler only (no files: each rewrite
     * fails and is logged, the message waits all the same) */
    struct envelope e;
    long long heap_add = heap_used();
    for (int i = 0; i < N; i++) {
        one_envelope(&e, i);
        snprintf(e.id, sizeof e.id, "%016X", 0x1000 + i);
        e.next_try = time_now_us() / 1000000 + 3600;     /* not due yet */
        if (sched_add(s, &e) < 0)
            BAIL_OUT("sched_add");
        env_clear(&e);
    }
    long long heap0 = heap_used();
    long long held = (heap0 - heap_add) / N;
    if (HEAP_FIGURES) {
        printf("# a queued message: %lld octets\n", held);
        ok(held <= QUEUED_MAX, "a queued message costs %lld <= %d octets", held, QUEUED_MAX);
    } else {
        ok(1, "# SKIP queued message: no heap figures under a sanitizer");
    }
    for (int i = 0; i < 20; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    heap0 = heap_used();
    sched_flush(s);                 /* all due: each attempted once, deferred */
    for (int i = 0; i < SPIN_MAX && (attempts < N || sched_active(s) > 0); i++)
        event_base_loop(base, EVLOOP_ONCE);
    is_int((long long)attempts, N, "every message attempted once");
    is_int((long long)sched_active(s), 0, "  and none in an attempt any more");
    long long per = (heap_used() - heap0) / N;
    if (HEAP_FIGURES) {
        printf("# an attempt left %lld octets per message\n", per);
        ok(per <= LEFT_MAX, "an attempt leaves %lld <= %d octets per waiting message",
           per, LEFT_MAX);
    } else {
        ok(1, "# SKIP attempt left-overs: no heap figures under a sanitizer");
    }

    /* every message out at once, held by the agent: what each costs */
    for (int i = 0; i < 20; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    heap0 = heap_used();
    holding = 1;
    attempts = 0;
    sched_flush(s);
    for (int i = 0; i < SPIN_MAX && nheld < N; i++)
        event_base_loop(base, EVLOOP_ONCE);
    is_int((long long)nheld, N, "every message out in an attempt at once");
    per = (heap_used() - heap0) / N;
    if (HEAP_FIGURES) {
        printf("# a message out in an attempt: %lld octets\n", per);
        ok(per <= INFLIGHT_MAX, "a message out in an attempt costs %lld <= %d octets", per,
           INFLIGHT_MAX);
    } else {
        ok(1, "# SKIP in-flight message: no heap figures under a sanitizer");
    }
    holding = 0;
    for (size_t k = 0; k < nheld; k++)
        fake_deliver(NULL, out[k]);
    for (int i = 0; i < SPIN_MAX && sched_active(s) > 0; i++)
        event_base_loop(base, EVLOOP_ONCE);
    is_int((long long)sched_active(s), 0, "all held attempts finished");

    sched_free(s);
    fixture_close(&fx);
    return tap_done();
}
