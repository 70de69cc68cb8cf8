/*
 * store/uidlist.c — the dovecot-uidlist reader (store/uidlist.h).  Pure
 * parsing plus one bounded file read; trusts nothing in the file: any line
 * it cannot prove is a refusal of the whole file, never a guess.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fsutil.h"
#include "store/uidlist.h"

#define UIDLIST_MAX (64 * 1024 * 1024)   /* ~1M messages */

void store_uidlist_free(struct store_uidlist *u)
{
    for (size_t i = 0; i < u->n; i++)
        free(u->v[i].base);
    free(u->v);
    memset(u, 0, sizeof(*u));
}

/* A decimal u32 at *p (advanced); -1 if none or too big. */
static int num32(const char **p, const char *end, uint32_t *out)
{
    unsigned long long v = 0;
    const char *s = *p;

    if (s >= end || *s < '0' || *s > '9')
        return -1;
    for (; s < end && *s >= '0' && *s <= '9'; s++)
        if ((v = v * 10 + (unsigned)(*s - '0')) > UINT32_MAX)
            return -1;
    *out = (uint32_t)v;
    *p = s;
    return 0;
}

/* The header line: version, validity, next. */
static int parse_header(const char *p, const char *end, struct store_uidlist *u, int *version)
{
    uint32_t ver;

    if (num32(&p, end, &ver) != 0 || (ver != 1 && ver != 3))
        return -1;
    *version = (int)ver;
    if (ver == 1) {
        if (p >= end || *p++ != ' ' || num32(&p, end, &u->validity) != 0 || p >= end
            || *p++ != ' ' || num32(&p, end, &u->next) != 0)
            return -1;
        return u->validity && u->next ? 0 : -1;
    }
    while (p < end) {                   /* " V123 N45 Gxxx": keys in any order */
        if (*p++ != ' ' || p >= end)
            return -1;
        char key = *p++;
        if (key == 'V' || key == 'N') {
            if (num32(&p, end, key == 'V' ? &u->validity : &u->next) != 0)
                return -1;
        } else {
            while (p < end && *p != ' ')
                p++;
        }
    }
    return u->validity && u->next ? 0 : -1;
}

/* "<uid> [ext...] :<name>" (v3) or "<uid> <name>" (v1) → one entry. */
static int parse_line(const char *p, const char *end, int version, uint32_t *uid,
                      const char **name, size_t *nlen)
{
    if (num32(&p, end, uid) != 0 || *uid == 0 || p >= end || *p++ != ' ')
        return -1;
    if (version == 3) {
        const char *c = memchr(p, ':', (size_t)(end - p));
        if (c == NULL || (c > p && c[-1] != ' '))
            return -1;
        p = c + 1;
    }
    const char *info = memchr(p, ':', (size_t)(end - p));
    *name = p;
    *nlen = (size_t)((info ? info : end) - p);
    if (*nlen == 0 || *nlen > NAME_MAX || memchr(p, '/', *nlen) || memchr(p, '\0', *nlen))
        return -1;
    return 0;
}

static int ent_cmp(const void *a, const void *b)
{
    return strcmp(((const struct store_uidlist_ent *)a)->base,
                  ((const struct store_uidlist_ent *)b)->base);
}

static int add_ent(struct store_uidlist *u, size_t *cap, uint32_t uid, const char *name,
                   size_t nlen)
{
    if (u->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        struct store_uidlist_ent *v = realloc(u->v, nc * sizeof(*v));
        if (v == NULL)
            return -1;
        u->v = v;
        *cap = nc;
    }
    if ((u->v[u->n].base = strndup(name, nlen)) == NULL)
        return -1;
    u->v[u->n++].uid = uid;
    return 0;
}

int store_uidlist_parse(const char *text, size_t len, struct store_uidlist *u)
{
    const char *p = text, *end = text + len;
    size_t cap = 0;
    uint32_t last = 0;
    int version = 0, first = 1;

    memset(u, 0, sizeof(*u));
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end, *name;
        size_t nlen;
        uint32_t uid;
        if (first) {
            if (parse_header(p, le, u, &version) != 0)
                goto bad;
            first = 0;
        } else if (le > p) {
            if (parse_line(p, le, version, &uid, &name, &nlen) != 0 || uid <= last
                || uid >= u->next || add_ent(u, &cap, uid, name, nlen) != 0)
                goto bad;
            last = uid;
        }
        p = nl ? nl + 1 : end;
    }
    if (first)
        goto bad;
    if (u->n > 1)
        qsort(u->v, u->n, sizeof(*u->v), ent_cmp);
    for (size_t i = 1; i < u->n; i++)
        if (strcmp(u->v[i - 1].base, u->v[i].base) == 0)
            goto bad;
    return 0;
bad:
    store_uidlist_free(u);
    return -1;
}

int store_uidlist_read(const char *folder, struct store_uidlist *u)
{
    char path[PATH_MAX], *text;
    size_t len;
    int r;

    memset(u, 0, sizeof(*u));
    r = snprintf(path, sizeof(path), "%s/%s", folder, STORE_UIDLIST_FILE);
    if (r < 0 || (size_t)r >= sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (fs_read_file(path, UIDLIST_MAX, &text, &len) != 0)
        return errno == ENOENT || errno == EFBIG ? 1 : -1;
    r = store_uidlist_parse(text, len, u) == 0 ? 0 : 1;
    free(text);
    return r;
}

uint32_t store_uidlist_find(const struct store_uidlist *u, const char *base, size_t len)
{
    size_t lo = 0, hi = u->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strncmp(u->v[mid].base, base, len);
        if (c == 0 && u->v[mid].base[len] != '\0')
            c = 1;
        if (c == 0)
            return u->v[mid].uid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}
