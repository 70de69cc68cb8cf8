/*
 * mta/generation.c — builds a configuration generation (mta/generation.h)
 * and frees it with its last reference.  The filter chain is made here: the
 * test hold filter (test_filter_hold) first when configured, then the relay
 * ACL over this generation's relay_clients, then the RCPT-time quota check
 * over its tables (mta/rcpt_quota.h).  The server TLS configuration
 * (lib/tls.h) is built here too, so a certificate that fails to load fails
 * the start or the reload like any other file: a reload keeps the old
 * generation, certificate included.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/acl.h"
#include "filters/filter.h"
#include "filters/hold.h"
#include "lib/iplist.h"
#include "lib/log.h"
#include "lib/tls.h"
#include "mta/transport.h"
#include "mta/generation.h"
#include "mta/rcpt_quota.h"
#include "mta/tables.h"

static struct filter_chain *make_filters(const struct hato_config *c, struct event_base *base,
                                         const struct iplist *relay, const struct tables *t)
{
    struct filter_chain *fc = filter_chain_new();
    struct filter f;
    if (!fc)
        return NULL;
    if (c->ntest_filter_hold) {
        if (hold_filter(&f, base, c->test_filter_hold, c->ntest_filter_hold,
                        c->test_filter_hold_ms) < 0 || filter_chain_add(fc, &f) < 0) {
            filter_chain_free(fc);
            return NULL;
        }
    }
    acl_filter(&f, relay);
    if (filter_chain_add(fc, &f) < 0) {
        filter_chain_free(fc);
        return NULL;
    }
    if (rcpt_quota_filter(&f, t, c->state_directory) < 0) {
        filter_chain_free(fc);
        return NULL;
    }
    if (filter_chain_add(fc, &f) < 0) {
        f.free_ctx(f.ctx);
        filter_chain_free(fc);
        return NULL;
    }
    return fc;
}

int generation_load_tls(const struct hato_config *c, struct tls_conf **out,
                        char *err, size_t errlen)
{
    *out = NULL;
    if (!c->tls_cert_file[0])
        return 0;
    struct tls_server_opts o = {
        .cert_file = c->tls_cert_file, .key_file = c->tls_key_file,
        .protocols = c->tls_protocols, .nprotocols = c->ntls_protocols,
        .ciphers = c->tls_ciphers, .ciphersuites = c->tls_ciphersuites,
        .sni_maps = c->tls_sni_maps,
    };
    char e[1024];
    *out = tls_conf_new(&o, e, sizeof e);
    if (!*out) {
        snprintf(err, errlen, "%s: TLS: %s", c->path, e);
        return -1;
    }
    return 0;
}

static void generation_free(struct generation *g)
{
    tls_conf_unref(&g->tls);
    transport_free(g->transport);
    filter_chain_free(g->filters);
    iplist_free(g->relay);
    iplist_free(g->auth_exempt);
    tables_free(g->tables);
    config_free(&g->cfg);
    free(g);
}

struct generation *generation_new(struct hato_config *cfg, struct event_base *base,
                                  char *err, size_t errlen)
{
    struct generation *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "out of memory");
        config_free(cfg);
        return NULL;
    }
    g->refs = 1;
    g->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg);
    g->tables = tables_load(&g->cfg, err, errlen);
    if (g->tables)
        g->auth_exempt = iplist_new(g->cfg.auth_exempt_clients, g->cfg.nauth_exempt_clients,
                                    err, errlen);
    if (g->auth_exempt)
        g->relay = iplist_new(g->cfg.relay_clients, g->cfg.nrelay_clients, err, errlen);
    for (size_t i = 0; g->relay && i < g->cfg.ntest_filter_hold; i++)
        if (hold_phase_parse(g->cfg.test_filter_hold[i]) < 0) {
            snprintf(err, errlen, "%s: test_filter_hold: unknown phase '%s' "
                     "(connect, helo, mail, rcpt, data)", g->cfg.path, g->cfg.test_filter_hold[i]);
            generation_free(g);
            return NULL;
        }
    if (g->relay && generation_load_tls(&g->cfg, &g->tls, err, errlen) < 0) {
        generation_free(g);
        return NULL;
    }
    if (g->relay && !(g->transport = transport_load(&g->cfg, err, errlen))) {
        generation_free(g);
        return NULL;
    }
    if (g->relay) {
        g->filters = make_filters(&g->cfg, base, g->relay, g->tables);
        if (!g->filters)
            snprintf(err, errlen, "out of memory");
    }
    if (!g->filters) {
        generation_free(g);
        return NULL;
    }
    return g;
}

struct generation *generation_ref(struct generation *g)
{
    g->refs++;
    return g;
}

void generation_unref(struct generation **gp)
{
    struct generation *g = *gp;
    *gp = NULL;
    if (!g)
        return;
    if (g->refs <= 0) {
        log_err("generation: reference count underflow");   /* a bug: leak, never free twice */
        return;
    }
    if (--g->refs == 0)
        generation_free(g);
}
