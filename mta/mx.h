/*
 * mta/mx.h — where to send mail for a next hop: the ordered list of
 * addresses an SMTP delivery tries (RFC 5321 §5.1), from libunbound in
 * async mode (lib/dns.h), never blocking the loop.
 *
 * A next hop is either a domain ("example.com", optionally ":port"): its
 * MX records in preference order, equal preferences in random order, and
 * without MX records the domain's own address (implicit MX); or a literal
 * "[host]" / "[host]:port" (Postfix's relayhost syntax): no MX lookup,
 * host's addresses, or the IP itself for "[192.0.2.1]" / "[IPv6:2001:db8::1]"
 * / "[2001:db8::1]".
 *
 * For each MX host both families are asked (A and AAAA, in parallel);
 * `family` orders them: MX_FAMILY_ANY (default, like Postfix's
 * smtp_address_preference = any) shuffles one host's addresses across
 * families; MX_FAMILY_IPV6 / MX_FAMILY_IPV4 put that family first.  At
 * most `max_addrs` addresses (Postfix smtp_mx_address_limit, 5) in all.
 *
 * Outcomes: MX_OK with addrs; MX_NULL (RFC 7505 "0 ." as the only MX: the
 * caller bounces 5.1.10); MX_PERM (NXDOMAIN, or no MX host has an address
 * and every lookup was definite: 5.4.4); MX_TEMP (SERVFAIL, a bogus
 * DNSSEC answer, libunbound errors, the lookup timeout, and "no address"
 * when some lookup failed temporarily: 4.4.3).  A lookup whose MX hosts
 * partly failed temporarily still returns MX_OK with what it found, and
 * says so in `tempfail` (the caller defers rather than bounces if every
 * address it got then fails permanently).
 *
 * Callbacks run on the loop, never from inside mx_lookup(), and carry the
 * lookup's id: callers look their delivery up by it (STYLE.md example 3).
 * mx_cancel() stops a lookup (its DNS queries are cancelled, ub_cancel);
 * its callback never runs.
 */
#ifndef HATO_MX_H
#define HATO_MX_H

#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

struct event_base;
struct dns;
struct mx;

#define MX_ADDR_LIMIT 5          /* Postfix smtp_mx_address_limit */
#define MX_ADDR_MAX 32           /* hard cap on max_addrs */
#define MX_HOSTS_MAX 16          /* MX hosts resolved per lookup */
#define MX_TIMEOUT_MS 60000      /* whole lookup, then MX_TEMP */

enum mx_status { MX_OK, MX_NULL, MX_PERM, MX_TEMP };
enum mx_family { MX_FAMILY_ANY, MX_FAMILY_IPV6, MX_FAMILY_IPV4 };

struct mx_addr {
    struct sockaddr_storage sa;  /* with the port set */
    socklen_t salen;
    char ip[46];                 /* "192.0.2.1", "2001:db8::1" */
    char host[256];              /* the MX host (for SNI and logs), or the literal */
    int pref;                    /* MX preference; 0 for implicit MX and literals */
};

struct mx_result {
    enum mx_status status;
    char dsn[8];                 /* "5.1.10", "5.4.4", "4.4.3"; "" for MX_OK */
    char text[256];              /* why, for logs and bounces */
    int tempfail;                /* MX_OK: some MX host's lookup failed temporarily */
    size_t n;
    struct mx_addr addrs[MX_ADDR_MAX];
};

struct mx_opts {
    int port;                    /* smtp_client_port; 0 = 25 */
    int max_addrs;               /* 0 = MX_ADDR_LIMIT */
    enum mx_family family;
    int timeout_ms;              /* 0 = MX_TIMEOUT_MS */
};

/* r is valid during the call only. */
typedef void (*mx_cb)(void *arg, uint64_t id, const struct mx_result *r);

struct mx *mx_new(struct event_base *base, struct dns *dns);
/* Start a lookup for nexthop.  Returns its id (> 0), or 0 if it cannot
 * start (out of memory, a malformed literal: then nothing is called). */
uint64_t mx_lookup(struct mx *m, const char *nexthop, const struct mx_opts *o,
                   mx_cb cb, void *arg);
/* Stop a lookup; an unknown or finished id is fine. */
void mx_cancel(struct mx *m, uint64_t id);
/* Lookups in flight. */
size_t mx_pending(const struct mx *m);
/* Cancels every lookup (no callbacks). */
void mx_free(struct mx *m);

/* Parse a next hop: "[host]:port" → host, *literal = 1; "domain:port" →
 * domain, *literal = 0; *port 0 when none is given.  0, or -1 if malformed
 * (empty, unbalanced brackets, a bad port). */
int mx_parse_nexthop(const char *nexthop, char *host, size_t hostlen, int *literal, int *port);

#endif
