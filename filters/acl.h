/*
 * filters/acl.h — the relay ACL: mail to a domain that is not local is
 * accepted only from relay_clients, authenticated clients, or local
 * submission; otherwise "554 5.7.1 <rcpt>: Relay access denied"
 * (Postfix's reject_unauth_destination).
 */
#ifndef HATO_ACL_H
#define HATO_ACL_H

#include "filters/filter.h"

struct iplist;

/* The filter table for an ACL over `relay_clients` (not owned). */
void acl_filter(struct filter *f, const struct iplist *relay_clients);

#endif
