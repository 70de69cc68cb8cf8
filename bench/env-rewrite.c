/*
 * bench/env-rewrite.c — what one envelope rewrite costs (issue 7: deferrals
 * rewrite env/ID after every attempt).  Owns only the measurement: a real
 * queue directory and worker pool, one message with R recipients (state,
 * remote host and reason changed before each rewrite, as after an attempt),
 * rewritten through queue_update (tmp/ID.upd written, fdatasync, rename
 * over env/ID, fsync of env/) N times one after the other (latency), then
 * K messages rewritten at once, ROUNDS times (throughput with the pool's
 * threads), and env_format alone.  Build and run: bench/README.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "lib/timeutil.h"
#include "lib/work.h"
#include "queue/queue.h"

static struct event_base *base;
static int outstanding, failed;

static void done(void *arg, int err)
{
    (void)arg;
    if (err)
        failed++;
    if (--outstanding == 0)
        event_base_loopbreak(base);
}

static void wait_all(void)
{
    while (outstanding > 0)
        event_base_loop(base, EVLOOP_ONCE);
}

static void make(struct queue *q, struct envelope *e, int nrcpt)
{
    static const char msg[] = "Subject: bench\r\n\r\nbody\r\n";
    char a[64];
    env_init(e);
    env_set_sender(e, "sender@example.test");
    env_set_client(e, "127.0.0.1", "client.example.test", "ESMTP");
    for (int i = 0; i < nrcpt; i++) {
        snprintf(a, sizeof a, "user%d@remote%d.example", i, i % 7);
        env_add_rcpt(e, a, "");
    }
    e->arrival_us = time_now_us();
    outstanding = 1;
    if (queue_inject(q, msg, sizeof msg - 1, e, done, NULL) < 0) {
        fprintf(stderr, "inject failed\n");
        exit(1);
    }
    wait_all();
}

/* What an attempt changes: each recipient's reply, host and counters. */
static void touch(struct envelope *e, int round)
{
    char text[128];
    snprintf(text, sizeof text, "451 4.4.1 host busy, try again later (round %d)", round);
    for (size_t i = 0; i < e->nrcpt; i++) {
        env_rcpt_set(&e->rcpts[i], RCPT_PENDING, "4.4.1", text);
        env_rcpt_set_remote(&e->rcpts[i], "mx1.remote.example[192.0.2.25]:25",
                            "TLSv1.3 TLS_AES_256_GCM_SHA384", time_now_us() / 1000000);
    }
    e->attempts++;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static void serial(struct queue *q, int nrcpt, int n)
{
    struct envelope e;
    long long *t = calloc((size_t)n, sizeof *t);
    char *buf;
    size_t len = 0;
    make(q, &e, nrcpt);
    env_format(&e, &buf, &len);
    free(buf);
    for (int i = 0; i < n; i++) {
        touch(&e, i);
        long long t0 = time_now_us();
        outstanding = 1;
        if (queue_update(q, &e, done, NULL) < 0)
            failed++;
        wait_all();
        t[i] = time_now_us() - t0;
    }
    qsort(t, (size_t)n, sizeof *t, cmp_ll);
    long long f0 = time_now_us();
    for (int i = 0; i < 1000; i++) {
        env_format(&e, &buf, &len);
        free(buf);
    }
    double fmt = (double)(time_now_us() - f0) / 1000.0;
    printf("serial, %3d rcpt (%5zu-octet envelope): %d rewrites, median %lld us, p90 %lld us, "
           "max %lld us; env_format alone %.1f us\n", nrcpt, len, n, t[n / 2], t[n * 9 / 10],
           t[n - 1], fmt);
    env_clear(&e);
    free(t);
}

static void parallel(struct queue *q, int nrcpt, int k, int rounds)
{
    struct envelope *e = calloc((size_t)k, sizeof *e);
    for (int i = 0; i < k; i++)
        make(q, &e[i], nrcpt);
    long long t0 = time_now_us();
    for (int r = 0; r < rounds; r++) {
        outstanding = k;
        for (int i = 0; i < k; i++) {
            touch(&e[i], r);
            if (queue_update(q, &e[i], done, NULL) < 0) {
                failed++;
                outstanding--;
            }
        }
        wait_all();
    }
    double secs = (double)(time_now_us() - t0) / 1e6;
    printf("parallel, %3d rcpt, %d messages at once: %d rewrites in %.2f s = %.0f rewrites/s\n",
           nrcpt, k, k * rounds, secs, k * rounds / secs);
    for (int i = 0; i < k; i++)
        env_clear(&e[i]);
    free(e);
}

int main(int argc, char **argv)
{
    char err[256];
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [N=500] [THREADS=4]\n", argv[0]);
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 500;
    int threads = argc > 3 ? atoi(argv[3]) : 4;
    base = event_base_new();
    struct work_pool *pool = work_pool_new(base, threads);
    struct queue *q = queue_open(argv[1], pool, 1, err, sizeof err);
    if (!base || !pool || !q) {
        fprintf(stderr, "queue_open: %s\n", err);
        return 1;
    }
    serial(q, 1, n);
    serial(q, 50, n);
    parallel(q, 1, 64, n / 10 > 0 ? n / 10 : 1);
    printf("failed rewrites: %d\n", failed);
    queue_close(q);
    work_pool_free(pool);
    event_base_free(base);
    return failed != 0;
}
