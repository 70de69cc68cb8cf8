/*
 * auth/popb4smtp.h — POP-before-SMTP: after a successful POP3 (or IMAP)
 * login, the client's address may relay through SMTP for
 * pop_before_smtp_time seconds (0 = off, the default).  One table per
 * process, kept across reloads: POP3 and IMAP call popb4smtp_login, the
 * relay ACL (filters/acl.c) calls popb4smtp_allowed.  The address is the
 * exact one the login came from (IPv4, or the whole IPv6 address; a
 * v4-mapped IPv6 address counts as its IPv4 one).  At most
 * POPB4SMTP_MAX addresses are remembered; when full, expired ones go
 * first, then the one that expires soonest.  Loop thread only.
 *
 * Module state rather than an object handed around: the ACL runs inside
 * the filter chain of a configuration generation, which is rebuilt on
 * every reload, while the logins must outlive reloads.
 */
#ifndef HATO_POPB4SMTP_H
#define HATO_POPB4SMTP_H

#include <sys/socket.h>

#define POPB4SMTP_MAX 65536

/* pop_before_smtp_time, seconds (0: off: no login is recorded and none
 * allows relay).  Called at start and on every reload. */
void popb4smtp_configure(long long seconds);
/* A login from sa succeeded (now: monotonic seconds). */
void popb4smtp_login(const struct sockaddr *sa, long long now);
/* 1 if sa logged in within the time. */
int popb4smtp_allowed(const struct sockaddr *sa, long long now);
/* Addresses remembered (tests). */
unsigned long popb4smtp_count(void);
/* Forget everything (shutdown, tests). */
void popb4smtp_clear(void);

#endif
