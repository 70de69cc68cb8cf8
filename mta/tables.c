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
#include "mta/sender_login.h"
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
    sender_logins_free(t->sender_logins);
    for (size_t i = 0; i < t->ndomains; i++)
        free(t->domains[i]);
    free(t->domains);
    free(t->delimiter);
    free(t->postmaster);
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

/* postmaster_recipient, else the first user (in file order) of the first
 * local domain; NULL if neither.  -1 only when out of memory. */
static int choose_postmaster(struct tables *t, const struct hato_config *cfg)
{
    const char *pm = cfg->postmaster_recipient;
    if (!pm[0] && t->ndomains > 0) {
        for (size_t i = 0; i < users_count(t->users); i++) {
            const char *a = users_at(t->users, i)->address;
            const char *at = strrchr(a, '@');
            if (at && !strcmp(at + 1, t->domains[0])) {
                pm = a;
                break;
            }
        }
    }
    if (!pm[0])
        return 0;
    t->postmaster = strdup(pm);
    return t->postmaster ? 0 : -1;
}

int tables_check_postmaster(const struct tables *t, char *msg, size_t len)
{
    char addr[400];
    for (size_t i = 0; i < t->ndomains; i++) {
        struct route_target *v = NULL;
        size_t n = 0;
        snprintf(addr, sizeof addr, "postmaster@%s", t->domains[i]);
        enum route_result r = router_expand(&t->rc, addr, &v, &n);
        router_free_targets(v, n);
        if (r == ROUTE_OK || r == ROUTE_ERROR)
            continue;
        const char *why = r == ROUTE_LOOP ? "alias loop"
                          : r == ROUTE_TOO_MANY ? "too many targets" : "unknown";
        if (t->postmaster)
            snprintf(msg, len, "%s does not route (%s), nor does postmaster_recipient %s: "
                     "mail to postmaster is refused", addr, why, t->postmaster);
        else
            snprintf(msg, len, "%s does not route (%s) and there is no postmaster_recipient "
                     "(no user in %s to default to): mail to postmaster is refused; "
                     "add an alias (hatoctl alias add postmaster USER) or set "
                     "postmaster_recipient", addr, why, t->domains[0]);
        return -1;
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
    if (cfg->sender_login_maps[0]) {
        t->sender_logins = sender_logins_load(cfg->sender_login_maps, err, errlen);
        if (!t->sender_logins)
            goto fail;
    }
    t->delimiter = strdup(cfg->recipient_delimiter);
    if (!t->delimiter || copy_domains(t, cfg) < 0 || choose_postmaster(t, cfg) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    t->rc.local_domains = t->domains;
    t->rc.nlocal_domains = t->ndomains;
    t->rc.recipient_delimiter = t->delimiter;
    t->rc.users = t->users;
    t->rc.aliases = t->aliases;
    t->rc.postmaster = t->postmaster;
    t->rc.default_quota = cfg->default_quota;
    t->quota_full_permanent = cfg->quota_full_permanent != 0;
    t->quota_warning_percent = (int)cfg->quota_warning_percent;
    return t;
fail:
    tables_free(t);
    return NULL;
}
