/*
 * auth/popb4smtp.c — the POP-before-SMTP table: address → expiry, an open
 * hash table of fixed capacity with linear probing and tombstone-free
 * deletion by rehashing the run.  Owns the table; knows nothing of
 * sessions.  Loop thread only.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/popb4smtp.h"

#define SLOTS (POPB4SMTP_MAX * 2)       /* load at most 1/2 */

struct slot {
    unsigned char addr[16];             /* IPv4 as v4-mapped IPv6 */
    long long until;                    /* 0: empty */
};

static struct slot *table;
static unsigned long used;
static long long ttl;

void popb4smtp_configure(long long seconds)
{
    ttl = seconds > 0 ? seconds : 0;
}

static int addr_of(const struct sockaddr *sa, unsigned char out[16])
{
    if (!sa)
        return -1;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &in->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return 0;
    }
    return -1;
}

static size_t hash_of(const unsigned char a[16])
{
    uint64_t h = 1469598103934665603ULL;      /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ a[i]) * 1099511628211ULL;
    return (size_t)(h % SLOTS);
}

/* The slot holding a, or the empty one where it would go. */
static size_t find(const unsigned char a[16])
{
    size_t i = hash_of(a);
    while (table[i].until && memcmp(table[i].addr, a, 16) != 0)
        i = (i + 1) % SLOTS;
    return i;
}

/* Empty slot i and re-place the entries of its run behind it. */
static void remove_at(size_t i)
{
    table[i].until = 0;
    used--;
    for (size_t j = (i + 1) % SLOTS; table[j].until; j = (j + 1) % SLOTS) {
        struct slot s = table[j];
        table[j].until = 0;
        table[find(s.addr)] = s;
    }
}

/* Full: drop what expired, else the entry that expires soonest. */
static void make_room(long long now)
{
    size_t soonest = SLOTS;
    for (size_t i = 0; i < SLOTS; i++) {
        if (!table[i].until)
            continue;
        if (table[i].until <= now) {
            remove_at(i);
            if (table[i].until)
                i--;                     /* an entry moved into i: look again */
            continue;
        }
        if (soonest == SLOTS || table[i].until < table[soonest].until)
            soonest = i;
    }
    if (used >= POPB4SMTP_MAX && soonest < SLOTS)
        remove_at(soonest);
}

void popb4smtp_login(const struct sockaddr *sa, long long now)
{
    unsigned char a[16];
    if (ttl <= 0 || addr_of(sa, a) < 0)
        return;
    if (!table && !(table = calloc(SLOTS, sizeof *table)))
        return;                          /* out of memory: no relay, nothing else lost */
    size_t i = find(a);
    if (!table[i].until) {
        if (used >= POPB4SMTP_MAX) {
            make_room(now);
            i = find(a);
        }
        memcpy(table[i].addr, a, 16);
        used++;
    }
    table[i].until = now + ttl;
}

int popb4smtp_allowed(const struct sockaddr *sa, long long now)
{
    unsigned char a[16];
    if (ttl <= 0 || !table || addr_of(sa, a) < 0)
        return 0;
    size_t i = find(a);
    if (!table[i].until)
        return 0;
    if (table[i].until <= now) {
        remove_at(i);
        return 0;
    }
    return 1;
}

unsigned long popb4smtp_count(void)
{
    return used;
}

void popb4smtp_clear(void)
{
    free(table);
    table = NULL;
    used = 0;
}
