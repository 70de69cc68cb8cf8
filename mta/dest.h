/*
 * mta/dest.h — outbound destinations (one per next hop: "example.com",
 * "[relay.example]:587"): the concurrency window with Postfix's feedback
 * (start at initial_destination_concurrency, +1 per delivery that reached
 * the site, -1 per site failure or throttle, floor 1, at most
 * default_destination_concurrency_limit), the dead-site timer (a site
 * failure with the window at 1 suspends the destination for dead_time:
 * its jobs defer without connecting), the queue of jobs waiting for a
 * window slot, and the connection cache (idle sessions per destination,
 * each for cache_time at most).  Pure bookkeeping: no I/O, no callbacks;
 * mta/remote.c drives it.
 */
#ifndef HATO_DEST_H
#define HATO_DEST_H

#include <stddef.h>

struct dest_table;

struct dest_limits {
    int initial, limit;          /* window start and cap */
    long long dead_time_us;      /* how long a dead site stays suspended */
};

struct dest {
    char *nexthop;
    int window;                  /* jobs allowed to run at once */
    int active;                  /* jobs running */
    int failures;                /* site failures in a row */
    long long dead_until_us;     /* 0: alive */
    char dead_reason[256];
    int no_tls_next;             /* smtp_tls_fallback = next_attempt: the next job goes plaintext */
    void *wait_head, *wait_tail; /* jobs waiting for a slot (remote.c's, linked by it) */
    void *idle;                  /* idle sessions (remote.c's, linked by it) */
    size_t nidle;
    struct dest *next;           /* hash chain */
    struct dest *blocked_next;   /* on the table's list of destinations waiting for a global slot */
    int blocked;
    int pumping;                 /* remote.c is starting its jobs (no recursion) */
};

struct dest_table *dest_table_new(const struct dest_limits *l);
void dest_table_set_limits(struct dest_table *t, const struct dest_limits *l);
/* Free every destination (the caller emptied their queues). */
void dest_table_free(struct dest_table *t);
/* The destination for a next hop, made on first use.  NULL: out of memory. */
struct dest *dest_get(struct dest_table *t, const char *nexthop);
/* 1 when d is dead at now_us (a dead site whose time has passed comes back
 * with the initial window). */
int dest_dead(struct dest_table *t, struct dest *d, long long now_us);
/* A job may start: a window slot is free. */
int dest_has_slot(const struct dest *d);
/* Feedback after a job.  dest_site_failed returns 1 when it made d dead. */
void dest_success(struct dest_table *t, struct dest *d);
int dest_site_failed(struct dest_table *t, struct dest *d, const char *reason, long long now_us);
void dest_throttle(struct dest *d);
/* Destinations waiting for a global session slot, oldest first. */
void dest_block(struct dest_table *t, struct dest *d);
struct dest *dest_unblock(struct dest_table *t);
int dest_any_blocked(const struct dest_table *t);
/* Every destination, for sweeps (the idle cache under global pressure). */
void dest_foreach(struct dest_table *t, void (*fn)(void *arg, struct dest *d), void *arg);

#endif
