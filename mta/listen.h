/*
 * mta/listen.h — the TCP listeners (smtp_listen, submission_listen), IPv4
 * and IPv6, and the per-client limits Postfix's anvil enforces:
 * smtpd_client_connection_count_limit (simultaneous) and
 * smtpd_client_connection_rate_limit (per anvil_rate_time_unit), counted
 * per IPv4 address and per IPv6 smtpd_client_ipv6_prefix (/64); clients in
 * relay_clients are exempt, as Postfix exempts $mynetworks.  Over a limit
 * the client gets "421 4.7.0 ... Error: too many connections" and is
 * closed.  When the process runs out of descriptors, accepting pauses.
 */
#ifndef HATO_LISTEN_H
#define HATO_LISTEN_H

struct hatod;
struct listeners;

/* Bind every configured address (as root, before dropping privileges). */
struct listeners *listeners_open(struct hatod *d);
/* Stop accepting (shutdown). */
void listeners_disable(struct listeners *l);
void listeners_free(struct listeners *l);

#endif
