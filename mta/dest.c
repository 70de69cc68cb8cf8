/*
 * mta/dest.c — the destination table and its concurrency feedback
 * (contract in dest.h).  Numbers follow Postfix's qmgr_queue.c /
 * qmgr_feedback.c with the default cohort limit of 1: a destination goes
 * dead when a site failure finds its window at 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/hash.h"
#include "mta/dest.h"

#define DEST_BUCKETS 1024

struct dest_table {
    struct dest_limits l;
    struct dest *b[DEST_BUCKETS];
    struct dest *blocked_head, **blocked_tail;
};

struct dest_table *dest_table_new(const struct dest_limits *l)
{
    struct dest_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->blocked_tail = &t->blocked_head;
    dest_table_set_limits(t, l);
    return t;
}

void dest_table_set_limits(struct dest_table *t, const struct dest_limits *l)
{
    t->l = *l;
    if (t->l.limit < 1)
        t->l.limit = 1;
    if (t->l.initial < 1)
        t->l.initial = 1;
    if (t->l.initial > t->l.limit)
        t->l.initial = t->l.limit;
    for (size_t i = 0; i < DEST_BUCKETS; i++)
        for (struct dest *d = t->b[i]; d; d = d->next)
            if (d->window > t->l.limit)
                d->window = t->l.limit;
}

void dest_table_free(struct dest_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < DEST_BUCKETS; i++) {
        struct dest *d = t->b[i];
        while (d) {
            struct dest *n = d->next;
            free(d->nexthop);
            free(d);
            d = n;
        }
    }
    free(t);
}

struct dest *dest_get(struct dest_table *t, const char *nexthop)
{
    size_t h = (size_t)(hash_str(nexthop) % DEST_BUCKETS);
    for (struct dest *d = t->b[h]; d; d = d->next)
        if (!strcmp(d->nexthop, nexthop))
            return d;
    struct dest *d = calloc(1, sizeof *d);
    if (!d || !(d->nexthop = strdup(nexthop))) {
        free(d);
        return NULL;
    }
    d->window = t->l.initial;
    d->next = t->b[h];
    t->b[h] = d;
    return d;
}

int dest_dead(struct dest_table *t, struct dest *d, long long now_us)
{
    if (!d->dead_until_us)
        return 0;
    if (now_us < d->dead_until_us)
        return 1;
    d->dead_until_us = 0;        /* the backoff passed: try again, carefully */
    d->window = t->l.initial;
    d->failures = 0;
    return 0;
}

int dest_has_slot(const struct dest *d)
{
    return d->active < d->window;
}

void dest_success(struct dest_table *t, struct dest *d)
{
    d->failures = 0;
    if (d->window < t->l.limit)
        d->window++;
}

int dest_site_failed(struct dest_table *t, struct dest *d, const char *reason, long long now_us)
{
    d->failures++;
    if (d->window > 1) {
        d->window--;
        return 0;
    }
    d->dead_until_us = now_us + t->l.dead_time_us;
    snprintf(d->dead_reason, sizeof d->dead_reason, "%s", reason);
    return 1;
}

void dest_throttle(struct dest *d)
{
    if (d->window > 1)
        d->window--;
}

void dest_block(struct dest_table *t, struct dest *d)
{
    if (d->blocked)
        return;
    d->blocked = 1;
    d->blocked_next = NULL;
    *t->blocked_tail = d;
    t->blocked_tail = &d->blocked_next;
}

struct dest *dest_unblock(struct dest_table *t)
{
    struct dest *d = t->blocked_head;
    if (!d)
        return NULL;
    t->blocked_head = d->blocked_next;
    if (!t->blocked_head)
        t->blocked_tail = &t->blocked_head;
    d->blocked = 0;
    return d;
}

int dest_any_blocked(const struct dest_table *t)
{
    return t->blocked_head != NULL;
}

void dest_foreach(struct dest_table *t, void (*fn)(void *arg, struct dest *d), void *arg)
{
    for (size_t i = 0; i < DEST_BUCKETS; i++)
        for (struct dest *d = t->b[i]; d; d = d->next)
            fn(arg, d);
}
