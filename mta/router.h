/*
 * mta/router.h — where a recipient goes: local domains, users, aliases
 * (nested, with loop detection), plus-addressing (recipient_delimiter).
 * Expansion happens when the recipient is accepted (RCPT), like Postfix's
 * virtual aliases in cleanup, so the envelope holds final recipients.
 * postmaster at every local domain (RFC 5321 §4.5.1) is never unknown while
 * a target exists: its alias (unless that names someone unknown in the
 * domain), else the user postmaster@domain, else postmaster_recipient.  abuse (RFC 2142) has no such fallback: it is an
 * ordinary alias (a bare "abuse:" entry covers every local domain).
 */
#ifndef HATO_ROUTER_H
#define HATO_ROUTER_H

#include <stddef.h>

struct usertab;
struct aliastab;

#define ROUTER_MAX_TARGETS 1000   /* expansion of one recipient */
#define ROUTER_MAX_DEPTH   20     /* alias nesting */

enum route_kind { ROUTE_LOCAL, ROUTE_REMOTE };

struct route_target {
    enum route_kind kind;
    char *addr;        /* final address, e.g. "bob+tag@example.com" */
    char *mailbox;     /* ROUTE_LOCAL: "example.com/bob" under mail/ */
    long long quota;   /* ROUTE_LOCAL: bytes, 0 = none */
};

enum route_result {
    ROUTE_OK = 0,
    ROUTE_UNKNOWN,     /* local domain, no such user or alias: 550 5.1.1 */
    ROUTE_LOOP,        /* alias loop or too deep: 554 5.4.6 */
    ROUTE_TOO_MANY,    /* expansion over ROUTER_MAX_TARGETS: 552 5.3.4 */
    ROUTE_ERROR,       /* out of memory */
};

struct router_config {
    char *const *local_domains;   /* lower-case; the first is the default */
    size_t nlocal_domains;
    const char *recipient_delimiter;  /* "+" or "" */
    const struct usertab *users;
    const struct aliastab *aliases;
    /* postmaster_recipient: where postmaster@ a local domain goes when that
     * domain has no postmaster alias that routes and no postmaster user; NULL or "" =
     * nowhere (postmaster is then unknown, which hatod -n warns about). */
    const char *postmaster;
    long long default_quota;      /* bytes for users without quota= (0: unlimited) */
};

/* 1 if domain (any case) is one of local_domains. */
int router_is_local(const struct router_config *rc, const char *domain);
/* Expand one recipient "local@domain" (local part unquoted, as for lookups)
 * into final targets; duplicates removed.  Remote addresses come back as
 * ROUTE_REMOTE.  Caller frees with router_free_targets. */
enum route_result router_expand(const struct router_config *rc, const char *address,
                                struct route_target **out, size_t *n);
void router_free_targets(struct route_target *t, size_t n);

#endif
