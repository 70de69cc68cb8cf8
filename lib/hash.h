/*
 * lib/hash.h — the one string hash for hato's in-memory tables (users,
 * aliases, scheduler, envelope address index, per-IP counters): 64-bit
 * FNV-1a.  Not for anything an attacker can aim at to gain more than a
 * longer bucket chain; every table bounds its chains by its own growth.
 */
#ifndef HATO_HASH_H
#define HATO_HASH_H

#include <ctype.h>
#include <stddef.h>
#include <stdint.h>

#define HASH_FNV_BASIS 1469598103934665603ULL
#define HASH_FNV_PRIME 1099511628211ULL

/* FNV-1a of a NUL-terminated string. */
static inline uint64_t hash_str(const char *s)
{
    uint64_t h = HASH_FNV_BASIS;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * HASH_FNV_PRIME;
    return h;
}

/* FNV-1a of len octets, folded to lower case (ASCII). */
static inline uint64_t hash_lower(const char *s, size_t len)
{
    uint64_t h = HASH_FNV_BASIS;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)tolower((unsigned char)s[i])) * HASH_FNV_PRIME;
    return h;
}

#endif
