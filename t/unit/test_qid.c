/*
 * t/unit/test_qid.c — queue IDs: format, validation, monotonic order
 * (also across threads), string order = time order, time decoding, and
 * qid_seen raising the counter above IDs found on disk.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "queue/qid.h"
#include "t/unit/tap.h"

#define N_SEQ      20000
#define N_THREADS  4
#define N_PER      5000

static long long now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void test_valid(void)
{
    ok(qid_valid("0005E8C2F1A2B001"), "valid id");
    ok(qid_valid("FFFFFFFFFFFFFFFF"), "all F valid");
    ok(!qid_valid("0005e8c2f1a2b001"), "lower case rejected");
    ok(!qid_valid("0005E8C2F1A2B00"), "15 digits rejected");
    ok(!qid_valid("0005E8C2F1A2B0011"), "17 digits rejected");
    ok(!qid_valid("0005E8C2F1A2B00G"), "non-hex rejected");
    ok(!qid_valid("0005E8C2F1A2B0 1"), "space rejected");
    ok(!qid_valid(""), "empty rejected");
    ok(!qid_valid(NULL), "NULL rejected");
    ok(!qid_valid("../../etc/passwd"), "path rejected");
}

static void test_time(void)
{
    char id[QID_LEN + 1];
    long long before, after, t;

    is_int(qid_time_us("64441F8EB5800000"), 1763900000000000LL, "decode known id");
    is_int(qid_time_us("64441F8EB5800FFF"), 1763900000000000LL, "sequence ignored");
    is_int(qid_time_us("bogus"), -1, "invalid id -> -1");
    before = now_us();
    qid_new(id);
    after = now_us();
    t = qid_time_us(id);
    ok(t >= before - 1000 && t <= after + 1000000, "new id time %lld in [%lld, %lld]",
       t, before, after);
}

static void test_monotonic(void)
{
    char prev[QID_LEN + 1], cur[QID_LEN + 1];
    int i, bad_order = 0, bad_form = 0;

    qid_new(prev);
    for (i = 0; i < N_SEQ; i++) {
        qid_new(cur);
        if (!qid_valid(cur))
            bad_form++;
        if (strcmp(prev, cur) >= 0)
            bad_order++;
        memcpy(prev, cur, sizeof(prev));
    }
    is_int(bad_form, 0, "every new id well formed");
    is_int(bad_order, 0, "strictly increasing in a tight loop");
}

static void test_sort_is_time(void)
{
    char a[QID_LEN + 1], b[QID_LEN + 1];

    qid_new(a);
    usleep(2000);
    qid_new(b);
    ok(strcmp(a, b) < 0, "later id sorts after");
    ok(qid_time_us(b) - qid_time_us(a) >= 1000, "time part advanced by >= 1 ms");
}

static char ids[N_THREADS * N_PER][QID_LEN + 1];

static void *worker(void *arg)
{
    int base = (int)(long)arg * N_PER, i;
    int bad = 0;

    for (i = 0; i < N_PER; i++) {
        qid_new(ids[base + i]);
        if (i > 0 && strcmp(ids[base + i - 1], ids[base + i]) >= 0)
            bad++;
    }
    return (void *)(long)bad;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_threads(void)
{
    pthread_t th[N_THREADS];
    long bad = 0;
    int i, dups = 0;

    for (i = 0; i < N_THREADS; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)(long)i) != 0)
            bad++;
    for (i = 0; i < N_THREADS; i++) {
        void *r;
        pthread_join(th[i], &r);
        bad += (long)r;
    }
    is_int(bad, 0, "increasing within each thread");
    qsort(ids, N_THREADS * N_PER, sizeof(ids[0]), cmp_id);
    for (i = 1; i < N_THREADS * N_PER; i++)
        if (strcmp(ids[i - 1], ids[i]) == 0)
            dups++;
    is_int(dups, 0, "no duplicates across threads");
}

/* An ID from the future (a clock that has since stepped back): the next
 * new IDs sort after it; an older or malformed one changes nothing. */
static void test_seen(void)
{
    char a[QID_LEN + 1], b[QID_LEN + 1], c[QID_LEN + 1];
    char future[QID_LEN + 1];

    qid_new(a);
    snprintf(future, sizeof future, "%013llX%03X",
             (unsigned long long)(qid_time_us(a) + 3600LL * 1000000), 0x123);
    qid_seen(future);
    qid_new(b);
    ok(strcmp(b, future) > 0, "new id %s after seen %s", b, future);
    qid_seen("0000000000000001");
    qid_seen("not-an-id");
    qid_seen(NULL);
    qid_new(c);
    ok(strcmp(c, b) > 0, "older/malformed seen ids do not lower the counter");
    char suffixed[QID_LEN + 8];
    snprintf(suffixed, sizeof suffixed, "%013llX%03X.env",
             (unsigned long long)(qid_time_us(c) + 7200LL * 1000000), 0);
    qid_seen(suffixed);
    qid_new(a);
    ok(strncmp(a, suffixed, QID_LEN) > 0, "ID.env names count too");
}

int main(void)
{
    test_valid();
    test_time();
    test_monotonic();
    test_sort_is_time();
    test_threads();
    test_seen();
    return tap_done();
}
