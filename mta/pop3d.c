/*
 * mta/pop3d.c — wires the POP3 server (proto/pop3.c) into hatod: its
 * parameters from the configuration, the operations it calls back
 * (the generation a session holds, its TLS context and users), and the
 * POP-before-SMTP hook (auth/popb4smtp.h).  Owns nothing but that glue.
 */
#include <limits.h>
#include <stdio.h>

#include "auth/popb4smtp.h"
#include "lib/log.h"
#include "lib/timeutil.h"
#include "lib/tls.h"
#include "mta/daemon.h"
#include "mta/generation.h"
#include "mta/pop3d.h"
#include "mta/tables.h"
#include "proto/pop3.h"

static char mail_root[PATH_MAX];

static void *gen_ref(void *ctx)
{
    struct hatod *d = ctx;
    return generation_ref(d->gen);
}

static void gen_unref(void *ctx, void *gen)
{
    struct generation *g = gen;
    (void)ctx;
    generation_unref(&g);
}

static SSL_CTX *tls_ctx(void *gen)
{
    const struct generation *g = gen;
    return g->tls ? tls_conf_ctx(g->tls) : NULL;
}

static const struct usertab *users(void *gen)
{
    const struct generation *g = gen;
    return g->tables->users;
}

static void logged_in(void *ctx, const struct sockaddr *client)
{
    (void)ctx;
    popb4smtp_login(client, time_mono_us() / 1000000);
}

static void params(const struct hato_config *c, struct pop3_server_params *p)
{
    config_path(c, "mail", mail_root, sizeof mail_root);
    p->myhostname = c->myhostname;
    p->banner = c->pop3d_banner;
    p->mail_root = mail_root;
    p->timeout = c->pop3d_timeout;
    p->tls = c->pop3_tls == TLS_ENCRYPT ? POP3_TLS_ENCRYPT
           : c->pop3_tls == TLS_MAY ? POP3_TLS_MAY : POP3_TLS_NONE;
    p->apop = c->pop3_apop != 0;
    p->plaintext_clients = c->auth_plaintext_clients;
    p->nplaintext_clients = c->nauth_plaintext_clients;
}

int pop3d_start(struct hatod *d)
{
    struct pop3_server_params p;
    struct pop3_server_ops ops = {
        gen_ref, gen_unref, tls_ctx, users, logged_in, d, d->pool, d->throttle,
    };
    params(&d->cfg, &p);
    popb4smtp_configure(d->cfg.pop_before_smtp_time);
    d->pop3 = pop3_server_new(d->base, &ops, &p);
    if (!d->pop3) {
        log_err("pop3: cannot start the server: out of memory");
        return -1;
    }
    if ((d->cfg.npop3_listen || d->cfg.npop3s_listen) && !d->cfg.tls_cert_file[0] &&
        d->cfg.pop3_tls == TLS_MAY)
        log_warn("pop3_tls = may, but no tls_cert_file: STLS is not offered");
    return 0;
}

void pop3d_reload(struct hatod *d)
{
    struct pop3_server_params p;
    params(&d->cfg, &p);
    popb4smtp_configure(d->cfg.pop_before_smtp_time);
    if (pop3_server_set_params(d->pop3, &p) < 0)
        log_err("reload: pop3 keeps its previous parameters (out of memory)");
}
