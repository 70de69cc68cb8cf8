/*
 * lib/dns.h — the daemon's one libunbound context, in async mode, its fd on
 * the event loop.  Settings come from an unbound.conf (`resolver_config`);
 * without one, the system's resolv.conf and hosts.
 *
 * Contract: callbacks run on the loop.  A query is cancelled with
 * dns_cancel(); after that its callback never runs.
 */
#ifndef HATO_DNS_H
#define HATO_DNS_H

struct event_base;
struct ub_result;
struct dns;

typedef void (*dns_cb)(void *arg, int err, struct ub_result *result);

/* Build the context.  On a config libunbound rejects, returns NULL and puts
 * libunbound's message in err. */
struct dns *dns_new(struct event_base *base, const char *resolver_config,
                    char *err, size_t errlen);
/* Start a query (rrtype/rrclass as in ub_resolve).  Returns a query id > 0
 * for dns_cancel, or -1.  `result` is owned by the callback (ub_resolve_free). */
int dns_resolve(struct dns *dns, const char *name, int rrtype, dns_cb cb, void *arg);
void dns_cancel(struct dns *dns, int id);
void dns_free(struct dns *dns);

#endif
