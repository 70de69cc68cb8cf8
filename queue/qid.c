/*
 * queue/qid.c — queue IDs (see qid.h).
 *
 * Owns the process-wide "last ID issued" counter, the only mutable state
 * here.  An ID is a 64-bit value printed as 16 upper-case hex digits:
 * (arrival time in µs << 12) | sequence.  Each new value is
 * max(last + 1, now << 12), so IDs strictly increase within the process
 * even when the wall clock steps back (the time part then runs a little
 * ahead of the clock until the clock catches up).  qid_seen() raises the
 * counter to an ID found on disk, so a restart with the clock set back
 * still issues IDs above every queued one.  Lock-free: compare-and-swap
 * loops on an atomic.  Never blocks, never allocates.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "queue/qid.h"

#define QID_SEQ_BITS   12          /* the last 3 hex digits */
#define QID_TIME_HEX   13          /* the first 13 hex digits */

static _Atomic uint64_t qid_last;

static uint64_t qid_clock_value(void)
{
    struct timespec ts;
    uint64_t us;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0)
        return 0;   /* fall back to last + 1 */
    us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    return us << QID_SEQ_BITS;
}

static void qid_print(uint64_t v, char out[QID_LEN + 1])
{
    static const char hex[] = "0123456789ABCDEF";
    int i;

    for (i = QID_LEN - 1; i >= 0; i--) {
        out[i] = hex[v & 0xf];
        v >>= 4;
    }
    out[QID_LEN] = '\0';
}

static int qid_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void qid_seen(const char *id)
{
    uint64_t v = 0;
    int i;

    if (id == NULL)
        return;
    for (i = 0; i < QID_LEN; i++) {
        int d = qid_hexval(id[i]);
        if (d < 0)
            return;
        v = v << 4 | (uint64_t)d;
    }
    uint64_t last = atomic_load(&qid_last);
    while (last < v && !atomic_compare_exchange_weak(&qid_last, &last, v))
        ;
}

void qid_new(char out[QID_LEN + 1])
{
    uint64_t last = atomic_load(&qid_last);
    uint64_t next;

    do {
        uint64_t now = qid_clock_value();
        next = last + 1 > now ? last + 1 : now;
    } while (!atomic_compare_exchange_weak(&qid_last, &last, next));
    qid_print(next, out);
}


int qid_valid(const char *s)
{
    int i;

    if (s == NULL)
        return 0;
    for (i = 0; i < QID_LEN; i++)
        if (qid_hexval(s[i]) < 0)
            return 0;    /* also stops at a short string's NUL */
    return s[QID_LEN] == '\0';
}

long long qid_time_us(const char *id)
{
    long long v = 0;
    int i;

    if (!qid_valid(id))
        return -1;
    for (i = 0; i < QID_TIME_HEX; i++)
        v = v * 16 + qid_hexval(id[i]);
    return v;
}
