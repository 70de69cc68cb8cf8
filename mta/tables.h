/*
 * mta/tables.h — the lookup tables hatod routes with (users_file,
 * alias_maps, local_domains) loaded together, so a reload swaps them as
 * one: a bad file keeps the old set in force.  Also where postmaster goes
 * when a domain has no postmaster alias: postmaster_recipient, by default
 * the first user of the first local domain in users_file.
 */
#ifndef HATO_TABLES_H
#define HATO_TABLES_H

#include <stddef.h>
#include "mta/router.h"

struct hato_config;

struct tables {
    struct usertab *users;
    struct aliastab *aliases;
    char **domains;              /* copies, lower-case */
    size_t ndomains;
    char *delimiter;
    char *postmaster;            /* postmaster_recipient, or its default; NULL = none */
    struct sender_logins *sender_logins;   /* sender_login_maps, or NULL */
    struct router_config rc;     /* points into the above */
    int quota_full_permanent;    /* over quota: 552 5.2.2 at RCPT and a bounce at delivery */
    int quota_warning_percent;   /* local delivery queues a warning mail at this usage; 0 = off */
};

struct tables *tables_load(const struct hato_config *cfg, char *err, size_t errlen);
void tables_free(struct tables *t);
/* postmaster must reach someone at every local domain (RFC 5321 §4.5.1):
 * 0 if it does, else -1 with a warning in msg naming the first domain
 * where postmaster has no alias, no user and no postmaster_recipient that
 * routes.  Used by hatod -n, hatod's start and reload, and hatoctl. */
int tables_check_postmaster(const struct tables *t, char *msg, size_t len);
/* The file of alias_maps ("hash:/etc/aliases" → "/etc/aliases"); NULL if none. */
const char *tables_alias_file(const struct hato_config *cfg);

#endif
