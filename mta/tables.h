/*
 * mta/tables.h — the lookup tables hatod routes with (users_file,
 * alias_maps, local_domains) loaded together, so a reload swaps them as
 * one: a bad file keeps the old set in force.
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
    struct router_config rc;     /* points into the above */
};

struct tables *tables_load(const struct hato_config *cfg, char *err, size_t errlen);
void tables_free(struct tables *t);
/* The file of alias_maps ("hash:/etc/aliases" → "/etc/aliases"); NULL if none. */
const char *tables_alias_file(const struct hato_config *cfg);

#endif
