/*
 * auth/throttle.c — per-client login-failure counts, lockouts, delays.
 *
 * Owns: a fixed-size table of clients (allocated once: max_entries nodes,
 * handed out from the low end on first use so the untouched rest stays
 * zero pages the kernel never backs — 65,536 nodes are 7.5 MiB of address
 * space, not of memory; chained hash buckets seeded per table so an
 * attacker cannot aim keys at one chain, and a least-recently-touched list for eviction).  Knows
 * nothing of sessions or logging: the caller logs with the formats in
 * throttle.h.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "auth/throttle.h"
#include "lib/hash.h"
#include "lib/iplist.h"

#define NIL ((size_t)-1)

struct node {
    struct throttle_entry e;
    size_t chain;            /* next in bucket, or NIL */
    size_t prev, next;       /* LRU list (head = oldest touch); free list uses next */
    int used;
};

struct throttle {
    struct throttle_limits lim;
    struct node *nodes;
    size_t max, count;
    size_t *bucket;          /* heads, NIL = empty */
    size_t nbucket;          /* power of two >= max */
    size_t lru_head, lru_tail, free_head;
    size_t fresh;            /* nodes [fresh, max) never used yet */
    uint64_t seed;
};

void throttle_limits_default(struct throttle_limits *l)
{
    l->limit = 10;
    l->window = 600;
    l->lockout = 1800;
    l->delay_step = 1000;
    l->delay_max = 10000;
    l->v6_prefix = 64;
}

static uint64_t key_hash(const struct throttle *t, const char *s)
{
    uint64_t h = HASH_FNV_BASIS ^ t->seed;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * HASH_FNV_PRIME;
    return h ^ (h >> 29);
}

struct throttle *throttle_new(const struct throttle_limits *l, size_t max_entries)
{
    struct throttle *t = calloc(1, sizeof(*t));
    size_t i;

    if (t == NULL)
        return NULL;
    t->max = max_entries ? max_entries : 1;
    for (t->nbucket = 16; t->nbucket < t->max; t->nbucket *= 2)
        ;
    t->nodes = calloc(t->max, sizeof(*t->nodes));
    t->bucket = malloc(t->nbucket * sizeof(*t->bucket));
    if (t->nodes == NULL || t->bucket == NULL) {
        throttle_free(t);
        return NULL;
    }
    if (RAND_bytes((unsigned char *)&t->seed, sizeof(t->seed)) != 1)
        t->seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL;
    for (i = 0; i < t->nbucket; i++)
        t->bucket[i] = NIL;
    t->free_head = NIL;
    t->fresh = 0;
    t->lru_head = t->lru_tail = NIL;
    t->lim = *l;
    return t;
}

void throttle_set_limits(struct throttle *t, const struct throttle_limits *l)
{
    t->lim = *l;
}

void throttle_free(struct throttle *t)
{
    if (t == NULL)
        return;
    free(t->nodes);
    free(t->bucket);
    free(t);
}

size_t throttle_count(const struct throttle *t)
{
    return t->count;
}

/* ---- keys -------------------------------------------------------------- */

void throttle_key(const struct throttle *t, const struct sockaddr *sa, char *key, size_t len)
{
    ip_client_key(sa, t->lim.v6_prefix, key, len);
}

int throttle_key_text(const struct throttle *t, const char *ip, char *key, size_t len)
{
    struct sockaddr_in6 s6;
    struct sockaddr_in s4;

    memset(&s4, 0, sizeof(s4));
    memset(&s6, 0, sizeof(s6));
    if (inet_pton(AF_INET, ip, &s4.sin_addr) == 1) {
        s4.sin_family = AF_INET;
        throttle_key(t, (struct sockaddr *)&s4, key, len);
        return 0;
    }
    if (inet_pton(AF_INET6, ip, &s6.sin6_addr) == 1) {
        s6.sin6_family = AF_INET6;
        throttle_key(t, (struct sockaddr *)&s6, key, len);
        return 0;
    }
    return -1;
}

/* ---- the table --------------------------------------------------------- */

static void lru_unlink(struct throttle *t, size_t i)
{
    struct node *n = &t->nodes[i];

    if (n->prev != NIL)
        t->nodes[n->prev].next = n->next;
    else
        t->lru_head = n->next;
    if (n->next != NIL)
        t->nodes[n->next].prev = n->prev;
    else
        t->lru_tail = n->prev;
}

static void lru_append(struct throttle *t, size_t i)
{
    struct node *n = &t->nodes[i];

    n->prev = t->lru_tail;
    n->next = NIL;
    if (t->lru_tail != NIL)
        t->nodes[t->lru_tail].next = i;
    else
        t->lru_head = i;
    t->lru_tail = i;
}

static size_t *chain_find(struct throttle *t, const char *key)
{
    size_t *p = &t->bucket[key_hash(t, key) & (t->nbucket - 1)];

    while (*p != NIL && strcmp(t->nodes[*p].e.key, key) != 0)
        p = &t->nodes[*p].chain;
    return p;
}

static void node_remove(struct throttle *t, size_t i)
{
    size_t *p = chain_find(t, t->nodes[i].e.key);

    *p = t->nodes[i].chain;
    lru_unlink(t, i);
    memset(&t->nodes[i], 0, sizeof(t->nodes[i]));
    t->nodes[i].next = t->free_head;
    t->free_head = i;
    t->count--;
}

/* The node for key, made (evicting the oldest when full) if create. */
static struct node *lookup(struct throttle *t, const char *key, int create)
{
    size_t *p = chain_find(t, key), i;

    if (*p != NIL) {
        i = *p;
        lru_unlink(t, i);
        lru_append(t, i);
        return &t->nodes[i];
    }
    if (!create)
        return NULL;
    if (t->free_head == NIL && t->fresh < t->max) {
        i = t->fresh++;
    } else {
        if (t->free_head == NIL) {
            node_remove(t, t->lru_head);
            p = chain_find(t, key);   /* the chain may have changed */
        }
        i = t->free_head;
        t->free_head = t->nodes[i].next;
    }
    memset(&t->nodes[i], 0, sizeof(t->nodes[i]));
    snprintf(t->nodes[i].e.key, sizeof(t->nodes[i].e.key), "%s", key);
    t->nodes[i].used = 1;
    t->nodes[i].chain = NIL;
    *p = i;
    lru_append(t, i);
    t->count++;
    return &t->nodes[i];
}

/* Drop the lockout or window that has run out; 1 if nothing is left. */
static int expire(const struct throttle *t, struct throttle_entry *e, long long now)
{
    if (e->locked_until && now >= e->locked_until) {
        e->locked_until = 0;
        e->failures = 0;
    }
    if (!e->locked_until && e->failures && now - e->first >= t->lim.window)
        e->failures = 0;
    return !e->locked_until && e->failures == 0;
}

/* ---- the questions ----------------------------------------------------- */

long long throttle_locked(struct throttle *t, const struct sockaddr *sa, long long now)
{
    char key[THROTTLE_KEY_MAX];
    struct node *n;

    throttle_key(t, sa, key, sizeof(key));
    n = lookup(t, key, 0);
    if (n == NULL)
        return 0;
    if (expire(t, &n->e, now)) {
        node_remove(t, (size_t)(n - t->nodes));
        return 0;
    }
    return n->e.locked_until ? n->e.locked_until - now : 0;
}

long long throttle_failure(struct throttle *t, const struct sockaddr *sa, long long now,
                           int *locked_now)
{
    char key[THROTTLE_KEY_MAX];
    struct throttle_entry *e;
    struct node *n;
    long long d;

    *locked_now = 0;
    throttle_key(t, sa, key, sizeof(key));
    n = lookup(t, key, 1);
    e = &n->e;
    (void)expire(t, e, now);
    if (e->failures == 0)
        e->first = now;
    if (e->failures < INT32_MAX)
        e->failures++;
    if (t->lim.limit > 0 && !e->locked_until && e->failures >= t->lim.limit) {
        e->locked_until = now + (t->lim.lockout > 0 ? t->lim.lockout : 1);
        *locked_now = 1;
    }
    d = t->lim.delay_step * e->failures;
    if (d > t->lim.delay_max || d < 0)
        d = t->lim.delay_max;
    return d;
}

void throttle_success(struct throttle *t, const struct sockaddr *sa)
{
    char key[THROTTLE_KEY_MAX];
    struct node *n;

    throttle_key(t, sa, key, sizeof(key));
    n = lookup(t, key, 0);
    if (n != NULL && !n->e.locked_until)
        node_remove(t, (size_t)(n - t->nodes));
}

size_t throttle_list(struct throttle *t, long long now,
                     void (*fn)(void *arg, const struct throttle_entry *e), void *arg)
{
    size_t i = t->lru_head, listed = 0;

    while (i != NIL) {
        size_t next = t->nodes[i].next;
        if (expire(t, &t->nodes[i].e, now))
            node_remove(t, i);
        else if (t->nodes[i].e.locked_until) {
            fn(arg, &t->nodes[i].e);
            listed++;
        }
        i = next;
    }
    return listed;
}

int throttle_unlock(struct throttle *t, const char *key, long long now)
{
    struct node *n = lookup(t, key, 0);

    if (n == NULL || expire(t, &n->e, now) || !n->e.locked_until) {
        if (n != NULL && n->e.failures == 0)
            node_remove(t, (size_t)(n - t->nodes));
        return -1;
    }
    node_remove(t, (size_t)(n - t->nodes));
    return 0;
}
