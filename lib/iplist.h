/*
 * lib/iplist.h — lists of IP addresses, CIDR blocks and ranges
 * ("127.0.0.0/8", "::1", "192.168.0.21-24", "10.0.0.1-10.0.0.9"), and the
 * match of a socket address against them (v4-mapped v6 counts as v4).
 */
#ifndef HATO_IPLIST_H
#define HATO_IPLIST_H

#include <stddef.h>
#include <sys/socket.h>

struct iplist;

/* Parse items; on error NULL and a message naming the item in err. */
struct iplist *iplist_new(char *const *items, size_t n, char *err, size_t errlen);
int iplist_match(const struct iplist *l, const struct sockaddr *sa);
void iplist_free(struct iplist *l);
/* Printable address of sa (no port) into buf. */
void ip_to_string(const struct sockaddr *sa, char *buf, size_t len);
/* The key per-client limits count under: an IPv4 address (v4-mapped v6
 * too) as ip_to_string writes it; an IPv6 address cut to its first
 * v6_prefix bits (0..128), as "2001:db8:1:2::/64" (no "/128" for 128), so
 * one client's many addresses in its /64 share one counter. */
void ip_client_key(const struct sockaddr *sa, int v6_prefix, char *buf, size_t len);

#endif
