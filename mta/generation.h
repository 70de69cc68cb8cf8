/*
 * mta/generation.h — one configuration generation: the config and what is
 * built from it at the same (re)load — routing tables (users, aliases,
 * local domains), relay list and filter chain.  A reload makes a new one
 * current; each session (and anything else that starts work under one and
 * may outlive a reload) holds a reference to the one it started with, so a
 * reload never frees what is still in use: the old generation is freed when
 * its last holder drops it.  References are taken and dropped on the loop
 * only (the count is not atomic); a generation may be built in a worker.
 */
#ifndef HATO_GENERATION_H
#define HATO_GENERATION_H

#include <stddef.h>
#include "mta/config.h"

struct event_base;
struct tables;
struct iplist;
struct filter_chain;
struct tls_conf;
struct transport;

struct generation {
    int refs;
    struct hato_config cfg;         /* owned */
    struct tables *tables;
    struct iplist *relay;           /* relay_clients */
    struct iplist *auth_exempt;     /* auth_exempt_clients */
    struct filter_chain *filters;   /* its filters point into relay */
    struct tls_conf *tls;           /* server TLS (lib/tls.h); NULL without tls_cert_file */
    struct transport *transport;    /* outbound routing (mta/transport.h) */
};

/* Build a generation from cfg, which it takes over (*cfg is reset, also on
 * failure): tables and relay list loaded, filter chain made (the test hold
 * filter's timers will run on base).  One reference; NULL with err. */
struct generation *generation_new(struct hato_config *cfg, struct event_base *base,
                                  char *err, size_t errlen);
struct generation *generation_ref(struct generation *g);
/* The server TLS configuration cfg asks for: *out is NULL when
 * tls_cert_file is empty.  Every file is read and checked (also by
 * `hatod -n`); warnings (tls_conf_warning) are the caller's to log.
 * 0, or -1 with err. */
int generation_load_tls(const struct hato_config *cfg, struct tls_conf **out,
                        char *err, size_t errlen);
/* Drop a reference and clear *gp; the last one frees everything. */
void generation_unref(struct generation **gp);

#endif
