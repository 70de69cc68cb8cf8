/*
 * mta/tables.c — loads users_file, alias_maps and local_domains into one
 * routing snapshot (struct tables) for the router.  One alias file is
 * supported; a Postfix-style "type:" prefix (hash:, lmdb:, texthash:) is
 * accepted and ignored, since hato reads the text file itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/users.h"
#include "mta/aliases.h"
#include "mta/config.h"
#include "mta/tables.h"

const char *tables_alias_file(const struct hato_config *cfg)
{
    if (cfg->nalias_maps == 0)
        return NULL;
    const char *f = cfg->alias_maps[0];
    const char *colon = strchr(f, ':');
    if (colon && f[0] != '/')
        return colon + 1;
    return f;
}

void tables_free(struct tables *t)
{
    if (!t)
        return;
    users_free(t->users);
    aliases_free(t->aliases);
    for (size_t i = 0; i < t->ndomains; i++)
        free(t->domains[i]);
    free(t->domains);
    free(t->delimiter);
    free(t);
}

static int copy_domains(struct tables *t, const struct hato_config *cfg)
{
    t->domains = calloc(cfg->nlocal_domains ? cfg->nlocal_domains : 1, sizeof *t->domains);
    if (!t->domains)
        return -1;
    for (size_t i = 0; i < cfg->nlocal_domains; i++) {
        t->domains[i] = strdup(cfg->local_domains[i]);
        if (!t->domains[i])
            return -1;
        t->ndomains++;
    }
    return 0;
}

struct tables *tables_load(const struct hato_config *cfg, char *err, size_t errlen)
{
    struct tables *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (cfg->nalias_maps > 1) {
        snprintf(err, errlen, "%s: alias_maps: only one alias file is supported", cfg->path);
        tables_free(t);
        return NULL;
    }
    t->users = users_load(cfg->users_file, err, errlen);
    if (!t->users)
        goto fail;
    const char *af = tables_alias_file(cfg);
    if (af) {
        t->aliases = aliases_load(af, err, errlen);
        if (!t->aliases)
            goto fail;
    }
    t->delimiter = strdup(cfg->recipient_delimiter);
    if (!t->delimiter || copy_domains(t, cfg) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    t->rc.local_domains = t->domains;
    t->rc.nlocal_domains = t->ndomains;
    t->rc.recipient_delimiter = t->delimiter;
    t->rc.users = t->users;
    t->rc.aliases = t->aliases;
    return t;
fail:
    tables_free(t);
    return NULL;
}
