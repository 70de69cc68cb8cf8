/*
 * lib/iplist.c — IP address lists behind lib/iplist.h.  Owns parsing of
 * single addresses, CIDR blocks (host bits are masked off), ranges in full
 * form ("10.0.0.1-10.0.0.9", v4 or v6) and last-octet short form
 * ("192.168.0.21-24"), optional [brackets] around v6 addresses, and the
 * match of a socket address.  Every entry is stored as an inclusive range
 * [lo, hi] of network-order bytes; v4-mapped v6 (::ffff:a.b.c.d) is stored
 * and matched as v4.  Knows nothing of mail.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/iplist.h"

#define IPL_ITEM_MAX   128     /* octets of one item we are willing to parse */
#define IPL_V4_LEN     4
#define IPL_V6_LEN     16
#define IPL_MAPPED_LEN 12      /* ::ffff: prefix of a v4-mapped v6 address */

struct ipl_entry {
    int v6;                         /* 0: 4-byte addresses, 1: 16-byte */
    unsigned char lo[IPL_V6_LEN], hi[IPL_V6_LEN];
};

struct iplist {
    struct ipl_entry *e;
    size_t n;
};

static const unsigned char ipl_mapped[IPL_MAPPED_LEN] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

/* An address (optionally in [brackets]) into bin; returns 4, 16 or 0. */
static int ipl_addr(const char *s, size_t len, unsigned char *bin)
{
    char buf[IPL_ITEM_MAX + 1];

    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s++;
        len -= 2;
    }
    if (len == 0 || len > IPL_ITEM_MAX)
        return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (memchr(s, '\0', len) != NULL)
        return 0;
    if (inet_pton(AF_INET, buf, bin) == 1)
        return IPL_V4_LEN;
    if (inet_pton(AF_INET6, buf, bin) == 1)
        return IPL_V6_LEN;
    return 0;
}

/* Decimal 0..max from s[0..len); -1 when not. */
static int ipl_small_num(const char *s, size_t len, int max)
{
    int v = 0;
    size_t i;

    if (len == 0 || len > 3)
        return -1;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= max ? v : -1;
}

/* v4-mapped v6 entries become v4 entries (prefixes are mapped with them). */
static void ipl_unmap(struct ipl_entry *e)
{
    if (!e->v6 || memcmp(e->lo, ipl_mapped, IPL_MAPPED_LEN) != 0 ||
        memcmp(e->hi, ipl_mapped, IPL_MAPPED_LEN) != 0)
        return;
    memmove(e->lo, e->lo + IPL_MAPPED_LEN, IPL_V4_LEN);
    memmove(e->hi, e->hi + IPL_MAPPED_LEN, IPL_V4_LEN);
    e->v6 = 0;
}

static int ipl_cidr(const char *s, size_t slash, size_t len, struct ipl_entry *e)
{
    int alen = ipl_addr(s, slash, e->lo), bits, i;

    if (alen == 0)
        return -1;
    bits = ipl_small_num(s + slash + 1, len - slash - 1, alen * 8);
    if (bits < 0)
        return -1;
    e->v6 = alen == IPL_V6_LEN;
    for (i = 0; i < alen; i++) {
        int keep = bits >= (i + 1) * 8 ? 8 : (bits > i * 8 ? bits - i * 8 : 0);
        unsigned char mask = (unsigned char)(0xff00 >> keep);
        e->lo[i] &= mask;
        e->hi[i] = (unsigned char)(e->lo[i] | (unsigned char)~mask);
    }
    return 0;
}

static int ipl_range(const char *s, size_t dash, size_t len, struct ipl_entry *e)
{
    int alen = ipl_addr(s, dash, e->lo), blen, last;
    const char *t = s + dash + 1;
    size_t tlen = len - dash - 1;

    if (alen == 0)
        return -1;
    e->v6 = alen == IPL_V6_LEN;
    last = alen == IPL_V4_LEN ? ipl_small_num(t, tlen, 255) : -1;
    if (last >= 0) {
        memcpy(e->hi, e->lo, IPL_V4_LEN);
        e->hi[3] = (unsigned char)last;
    } else {
        blen = ipl_addr(t, tlen, e->hi);
        if (blen != alen)
            return -1;
    }
    return memcmp(e->lo, e->hi, (size_t)alen) <= 0 ? 0 : -1;
}

static int ipl_item(const char *s, struct ipl_entry *e)
{
    size_t len = strlen(s);
    const char *slash = strchr(s, '/'), *dash = strchr(s, '-');
    int alen;

    memset(e, 0, sizeof(*e));
    if (slash && dash)
        return -1;
    if (slash && ipl_cidr(s, (size_t)(slash - s), len, e) < 0)
        return -1;
    if (dash && ipl_range(s, (size_t)(dash - s), len, e) < 0)
        return -1;
    if (!slash && !dash) {
        alen = ipl_addr(s, len, e->lo);
        if (alen == 0)
            return -1;
        e->v6 = alen == IPL_V6_LEN;
        memcpy(e->hi, e->lo, sizeof(e->hi));
    }
    ipl_unmap(e);
    return 0;
}

struct iplist *iplist_new(char *const *items, size_t n, char *err, size_t errlen)
{
    struct iplist *l = calloc(1, sizeof(*l));
    size_t i;

    if (l == NULL || (l->e = calloc(n ? n : 1, sizeof(*l->e))) == NULL) {
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        free(l);
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (items[i] == NULL || ipl_item(items[i], &l->e[i]) < 0) {
            if (err && errlen)
                snprintf(err, errlen, "bad address, network or range '%.*s'",
                         IPL_ITEM_MAX, items[i] ? items[i] : "(null)");
            iplist_free(l);
            return NULL;
        }
        l->n = i + 1;
    }
    return l;
}

/* The bytes of sa to compare: 4 (v4 or v4-mapped v6) or 16; 0 if not IP. */
static int ipl_sockaddr(const struct sockaddr *sa, const unsigned char **bin)
{
    const struct sockaddr_in6 *s6;

    if (sa->sa_family == AF_INET) {
        *bin = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
        return IPL_V4_LEN;
    }
    if (sa->sa_family != AF_INET6)
        return 0;
    s6 = (const struct sockaddr_in6 *)sa;
    *bin = s6->sin6_addr.s6_addr;
    if (memcmp(*bin, ipl_mapped, IPL_MAPPED_LEN) == 0) {
        *bin += IPL_MAPPED_LEN;
        return IPL_V4_LEN;
    }
    return IPL_V6_LEN;
}

static int ipl_in(const struct iplist *l, const unsigned char *bin, int alen)
{
    size_t i;

    for (i = 0; i < l->n; i++) {
        const struct ipl_entry *e = &l->e[i];
        if ((e->v6 ? IPL_V6_LEN : IPL_V4_LEN) != alen)
            continue;
        if (memcmp(bin, e->lo, (size_t)alen) >= 0 && memcmp(bin, e->hi, (size_t)alen) <= 0)
            return 1;
    }
    return 0;
}

/* A v4-mapped v6 client matches v4 entries and also v6 entries that
 * cover it as v6 (e.g. "::/0"). */
int iplist_match(const struct iplist *l, const struct sockaddr *sa)
{
    const unsigned char *bin;
    int alen;

    if (l == NULL || sa == NULL || (alen = ipl_sockaddr(sa, &bin)) == 0)
        return 0;
    if (ipl_in(l, bin, alen))
        return 1;
    if (alen == IPL_V4_LEN && sa->sa_family == AF_INET6)
        return ipl_in(l, ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr, IPL_V6_LEN);
    return 0;
}

void iplist_free(struct iplist *l)
{
    if (l == NULL)
        return;
    free(l->e);
    free(l);
}

void ip_to_string(const struct sockaddr *sa, char *buf, size_t len)
{
    const unsigned char *bin;
    int alen;

    if (len == 0)
        return;
    alen = sa ? ipl_sockaddr(sa, &bin) : 0;
    if (alen == 0) {
        snprintf(buf, len, "%s", sa && sa->sa_family == AF_UNIX ? "unix" : "unknown");
        return;
    }
    if (inet_ntop(alen == IPL_V4_LEN ? AF_INET : AF_INET6, bin, buf, (socklen_t)len) == NULL)
        snprintf(buf, len, "unknown");
}

void ip_client_key(const struct sockaddr *sa, int v6_prefix, char *buf, size_t len)
{
    const unsigned char *bin;
    unsigned char net[IPL_V6_LEN];
    char text[INET6_ADDRSTRLEN];
    int alen = sa ? ipl_sockaddr(sa, &bin) : 0;

    if (alen != IPL_V6_LEN || v6_prefix >= 128 || v6_prefix < 0) {
        ip_to_string(sa, buf, len);
        return;
    }
    memset(net, 0, sizeof(net));
    memcpy(net, bin, (size_t)v6_prefix / 8);
    if (v6_prefix % 8)
        net[v6_prefix / 8] = (unsigned char)(bin[v6_prefix / 8] & (0xff00 >> (v6_prefix % 8)));
    if (inet_ntop(AF_INET6, net, text, sizeof(text)) == NULL)
        snprintf(buf, len, "unknown");
    else
        snprintf(buf, len, "%s/%d", text, v6_prefix);
}
