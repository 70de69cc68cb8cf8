/*
 * bench/work-classes.c — commit latency in the worker pool while another
 * class is saturated (bench/work-classes builds and runs it).  A commit job
 * writes 1 KiB and fdatasyncs it in DIR (the disk the queue would use); the
 * loop submits one every 5 ms and measures submit → done on the loop.  The
 * saturating load: slow filter jobs (a 50 ms SPF lookup stand-in, asleep),
 * twice as many queued as the pool has threads at all times.  Built twice:
 * against the pool before classes (-DONE_FIFO: one FIFO, no class argument)
 * and against lib/work.c as it is.  Prints p50/p99/max in ms for idle and
 * saturated runs.  Usage: work-classes DIR [commits] [threads]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/work.h"

#ifdef ONE_FIFO
#define SUBMIT(p, cls, fn, done, arg) work_submit(p, fn, done, arg)
#else
#define SUBMIT(p, cls, fn, done, arg) work_submit(p, cls, fn, done, arg)
#endif

static struct event_base *base;
static struct work_pool *pool;
static const char *dir;
static int want, got, saturate, filters_out, nthreads = 4;
static double *lat;
static double t_sub;
static struct event *tick;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void commit_run(void *arg)
{
    char path[4096], buf[1024];
    memset(buf, 'x', sizeof buf);
    snprintf(path, sizeof path, "%s/c%d", dir, *(int *)arg);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, buf, sizeof buf) != (ssize_t)sizeof buf || fdatasync(fd) < 0)
        perror(path);
    if (fd >= 0)
        close(fd);
    unlink(path);
}

static void filter_run(void *arg)
{
    (void)arg;
    usleep(50000);
}

static void filter_done(void *arg);

static void top_up(void)
{
    while (saturate && filters_out < 2 * nthreads) {
        if (SUBMIT(pool, WORK_FILTER, filter_run, filter_done, NULL) < 0)
            return;
        filters_out++;
    }
}

static void filter_done(void *arg)
{
    (void)arg;
    filters_out--;
    top_up();
}

static int slot;
static void commit_done(void *arg)
{
    (void)arg;
    lat[got++] = now_ms() - t_sub;
    if (got == want) {
        saturate = 0;
        event_base_loopbreak(base);
        return;
    }
    struct timeval tv = { 0, 5000 };
    evtimer_add(tick, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    t_sub = now_ms();
    if (SUBMIT(pool, WORK_COMMIT, commit_run, commit_done, &slot) < 0)
        exit(1);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run(const char *label, int sat)
{
    got = 0;
    saturate = sat;
    top_up();
    struct timeval tv = { 0, 100000 };    /* let the load fill the pool */
    evtimer_add(tick, &tv);
    event_base_dispatch(base);
    while (filters_out > 0)
        event_base_loop(base, EVLOOP_ONCE);
    qsort(lat, (size_t)want, sizeof *lat, cmp);
    printf("%-10s %-10s %7d %8.2f %8.2f %8.2f\n",
#ifdef ONE_FIFO
           "one-fifo",
#else
           "classes",
#endif
           label, want, lat[want / 2], lat[(want * 99) / 100], lat[want - 1]);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [commits] [threads]\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    want = argc > 2 ? atoi(argv[2]) : 200;
    nthreads = argc > 3 ? atoi(argv[3]) : 4;
    lat = calloc((size_t)want, sizeof *lat);
    base = event_base_new();
    pool = work_pool_new(base, nthreads);
    tick = evtimer_new(base, on_tick, NULL);
    if (!lat || !base || !pool || !tick)
        return 1;
    run("idle", 0);
    run("saturated", 1);
    work_pool_free(pool);
    event_free(tick);
    event_base_free(base);
    return 0;
}
