/*
 * mta/remote.c — the "smtp" delivery agent (contract in remote.h).  Owns
 * the jobs (one per next hop and group of recipients of one delivery),
 * the SMTP sessions (proto/smtp_client.h) and their idle cache, the
 * client TLS context, and the mapping of replies into sched_result.  The
 * window and dead-site bookkeeping is mta/dest.c; routing is
 * mta/transport.c; MX lookups are mta/mx.c.  Never blocks: every step is
 * a callback on the loop.
 *
 * Lifetimes: a job lives from remote_agent_deliver() until its recipients
 * are decided; a delivery is handed back (sched_delivery_done) when its
 * last job ends.  A session belongs to one destination; while it serves a
 * job, s->job is set; idle, it sits in the destination's cache with a
 * timer.  smtp_client never calls back after smtp_client_free(), and an
 * MX lookup never after mx_cancel(), so the pointers they carry are safe.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "lib/log.h"
#include "lib/timeutil.h"
#include "lib/tls.h"
#include "mta/config.h"
#include "mta/dest.h"
#include "mta/mx.h"
#include "mta/remote.h"
#include "mta/transport.h"
#include "proto/smtp_client.h"
#include "queue/scheduler.h"

struct settings {
    char helo[256];
    enum smtp_tls_level tls;
    int fallback;                /* SMTP_FALLBACK_* */
    unsigned concurrency;
    size_t rcpt_limit;
    int mx_sessions;
    struct mx_opts mxo;
    long long cache_us;
    int sasl_tls_required;
    struct smtp_client_timeouts t;
};

struct job;

struct session {
    struct remote_agent *ra;
    struct dest *d;
    struct smtp_client *cl;
    struct job *job;             /* the job it serves; NULL while idle */
    int quitting;                /* QUIT sent (the cache time ran out) */
    int handshake;               /* reached READY once */
    int on_idle;                 /* in its destination's cache */
    int dirty;                   /* a transaction ended on it: RSET before the next */
    struct event *idle_timer;
    struct session *idle_next, *idle_prev;
    struct session *all_next, *all_prev;
    SSL_CTX *ctx;                /* a reference while the session lives */
    char *user, *pass;           /* SASL, copies */
};

struct delivery {
    struct sched_delivery *sd;
    int jobs;                    /* not yet ended */
};

struct job {
    struct remote_agent *ra;
    struct delivery *dv;
    struct dest *d;
    size_t n;
    size_t *k;                   /* per recipient: its index in sd->res */
    unsigned char *decided;      /* per recipient: sent or bounced */
    struct smtp_rcpt *rc;        /* the transaction's recipients (undecided ones) */
    char **dsnp;                 /* per recipient: its DSN parameters (RFC 3461), or NULL */
    char *mail_dsn;              /* the MAIL parameters (RFC 3461), or NULL */
    size_t *rk;                  /* rc[i] is recipient rk[i] */
    struct smtp_msg msg;
    uint64_t mx_id;
    struct mx_result *mxr;
    size_t next_addr;
    int sessions_used;
    int delivered;               /* a session ended a transaction */
    int site_failures, throttled;
    int plaintext;               /* the next session goes without TLS (fallback) */
    char *last;                  /* the last site failure, for deferrals, or NULL
                                  * (heap: up to 512 jobs are out at once) */
    struct session *s;
    struct job *wait_next;       /* in the destination's queue */
    struct job *all_next, *all_prev;
};

struct remote_agent {
    struct event_base *base;
    struct work_pool *pool;
    struct mx *mx;
    struct dest_table *dests;
    struct settings set;
    const struct transport *tr;
    SSL_CTX *tls_ctx;
    unsigned sessions;           /* open */
    unsigned owned;              /* ... serving a job */
    unsigned jobs_active;        /* jobs started (looking up, connecting or sending) */
    int pumping_blocked;
    struct session *all_sessions;
    struct job *all_jobs;
};

/* ------------------------------------------------------------ settings */

static void fill_settings(struct settings *s, const struct hato_config *c)
{
    memset(s, 0, sizeof *s);
    snprintf(s->helo, sizeof s->helo, "%s", c->myhostname);
    s->tls = c->smtp_tls_security_level == TLS_ENCRYPT ? SMTP_TLS_ENCRYPT
           : c->smtp_tls_security_level == TLS_MAY ? SMTP_TLS_MAY : SMTP_TLS_NONE;
    s->fallback = (int)c->smtp_tls_fallback;
    s->concurrency = (unsigned)c->smtp_client_concurrency;
    s->rcpt_limit = (size_t)c->smtp_destination_recipient_limit;
    s->mx_sessions = (int)c->smtp_mx_session_limit;
    s->mxo.port = (int)c->smtp_client_port;
    s->mxo.max_addrs = (int)c->smtp_mx_address_limit;
    s->mxo.family = c->smtp_address_preference == 1 ? MX_FAMILY_IPV6
                  : c->smtp_address_preference == 2 ? MX_FAMILY_IPV4 : MX_FAMILY_ANY;
    s->cache_us = c->smtp_connection_cache_time_limit * 1000000LL;
    s->sasl_tls_required = c->smtp_sasl_tls_required != 0;
    int *t[SMTP_TIMEOUTS] = { &s->t.connect, &s->t.helo, &s->t.starttls, &s->t.mail,
        &s->t.rcpt, &s->t.data_init, &s->t.data_xfer, &s->t.data_done, &s->t.rset, &s->t.quit };
    for (int i = 0; i < SMTP_TIMEOUTS; i++)
        *t[i] = (int)(c->smtp_timeouts[i] * 1000);
}

static SSL_CTX *client_ctx(const struct hato_config *c)
{
    char err[512];
    struct tls_client_opts o = { .protocols = c->tls_protocols, .nprotocols = c->ntls_protocols,
                                 .ciphers = c->tls_ciphers, .ciphersuites = c->tls_ciphersuites };
    SSL_CTX *ctx = tls_client_ctx_new(&o, err, sizeof err);
    if (!ctx)
        log_err("smtp: no client TLS context: %s", err);
    return ctx;
}

struct remote_agent *remote_agent_new(struct event_base *base, struct dns *dns,
                                      struct work_pool *pool)
{
    struct remote_agent *ra = calloc(1, sizeof *ra);
    if (!ra)
        return NULL;
    struct dest_limits l = { 5, 20, 300 * 1000000LL };
    ra->base = base;
    ra->pool = pool;
    ra->mx = mx_new(base, dns);
    ra->dests = dest_table_new(&l);
    if (!ra->mx || !ra->dests) {
        remote_agent_free(ra);
        return NULL;
    }
    return ra;
}

int remote_agent_configure(struct remote_agent *ra, const struct hato_config *cfg,
                           const struct transport *tr)
{
    fill_settings(&ra->set, cfg);
    struct dest_limits l = { (int)cfg->initial_destination_concurrency,
                             (int)cfg->default_destination_concurrency_limit,
                             cfg->minimal_backoff_time * 1000000LL };
    dest_table_set_limits(ra->dests, &l);
    ra->tr = tr;                 /* the old generation's is freed after this call */
    SSL_CTX *ctx = NULL;
    if (cfg->smtp_tls_security_level != TLS_NONE && !(ctx = client_ctx(cfg)))
        return -1;               /* the previous context stays */
    if (ra->tls_ctx)
        SSL_CTX_free(ra->tls_ctx);   /* sessions hold their own reference */
    ra->tls_ctx = ctx;
    return 0;
}

unsigned remote_agent_sessions(const struct remote_agent *ra)
{
    return ra->sessions;
}

/* ------------------------------------------------------------ results */

static struct sched_result *res_of(struct job *j, size_t i)
{
    return &j->dv->sd->res[j->k[i]];
}

static void set_remote(struct sched_result *r, const struct smtp_client *cl)
{
    const char *v = smtp_client_tls_version(cl), *c = smtp_client_tls_cipher(cl);
    snprintf(r->remote, sizeof r->remote, "%s[%s]:%d", smtp_client_host(cl), smtp_client_ip(cl),
             smtp_client_port(cl));
    snprintf(r->tls, sizeof r->tls, "%s%s%s", v ? v : "", v && c ? " " : "", v && c ? c : "");
}

/* One recipient's reply from a session: sent, bounced, or deferred (for
 * now: a later address may still take it). */
static void rcpt_result(struct job *j, size_t i, const struct smtp_rcpt *r,
                        const struct smtp_client *cl)
{
    struct sched_result *res = res_of(j, i);
    set_remote(res, cl);
    snprintf(res->dsn, sizeof res->dsn, "%s", r->enh);
    if (r->cls == SMTP_C_OK) {
        res->state = RCPT_SENT;
        /* the next hop got NOTIFY: a success notice is its to send */
        res->dsn_passed = (smtp_client_ext(cl)->flags & SMTP_EXT_DSN) && r->dsn_params &&
                          strstr(r->dsn_params, "NOTIFY=") != NULL;
        snprintf(res->text, sizeof res->text, "%d %s %s", r->code, r->enh, r->text);
        j->decided[i] = 1;
        return;
    }
    if (r->code)
        snprintf(res->text, sizeof res->text, "host %s[%s] said: %d %s %s",
                 smtp_client_host(cl), smtp_client_ip(cl), r->code, r->enh, r->text);
    else
        snprintf(res->text, sizeof res->text, "%s", r->text);
    if (r->cls == SMTP_C_PERM) {
        res->state = RCPT_BOUNCED;
        j->decided[i] = 1;
        return;
    }
    res->state = RCPT_PENDING;
    if (!strncmp(r->enh, "4.7.", 4))
        j->throttled = 1;
}

/* Every undecided recipient of j: state with dsn and text (no host). */
static void job_set_all(struct job *j, enum rcpt_state st, const char *dsn, const char *text)
{
    for (size_t i = 0; i < j->n; i++) {
        if (j->decided[i])
            continue;
        struct sched_result *res = res_of(j, i);
        res->state = st;
        snprintf(res->dsn, sizeof res->dsn, "%s", dsn);
        snprintf(res->text, sizeof res->text, "%s", text);
    }
}

/* ------------------------------------------------------------ jobs */

static void pump(struct remote_agent *ra, struct dest *d);
static void pump_blocked(struct remote_agent *ra);
static void try_next_addr(struct job *j);
static void session_release(struct session *s);
static void session_idle(struct session *s);

/* The job's memory: its arrays and itself (job_new's failure path too). */
static void job_free_mem(struct job *j)
{
    for (size_t i = 0; j->dsnp && i < j->n; i++)
        free(j->dsnp[i]);
    free(j->dsnp);
    free(j->k);
    free(j->decided);
    free(j->rc);
    free(j->rk);
    free(j->mxr);
    free(j->mail_dsn);
    free(j->last);
    free(j);
}

/* Remember the last site failure (its text goes into the deferrals). */
static const char *job_set_last(struct job *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const char *job_set_last(struct job *j, const char *fmt, ...)
{
    char buf[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *t = strdup(buf);
    if (t) {
        free(j->last);
        j->last = t;
    }
    return j->last ? j->last : "out of memory";
}

static void job_free(struct job *j)
{
    if (j->mx_id)
        mx_cancel(j->ra->mx, j->mx_id);
    if (j->all_prev)
        j->all_prev->all_next = j->all_next;
    else
        j->ra->all_jobs = j->all_next;
    if (j->all_next)
        j->all_next->all_prev = j->all_prev;
    job_free_mem(j);
}

static void delivery_job_ended(struct delivery *dv)
{
    if (--dv->jobs == 0) {
        sched_delivery_done(dv->sd);
        free(dv);
    }
}

/* The job is over: feedback to its destination, results handed back. */
static void job_end(struct job *j)
{
    struct remote_agent *ra = j->ra;
    struct dest *d = j->d;
    long long now = time_now_us();
    if (j->delivered) {
        dest_success(ra->dests, d);
        if (j->throttled)
            dest_throttle(d);
    } else if (j->site_failures) {
        const char *why = j->last ? j->last : "site failure";
        if (dest_site_failed(ra->dests, d, why, now))
            log_warn("smtp: %s: destination dead for now (%s)", d->nexthop, why);
    } else if (j->throttled) {
        dest_throttle(d);
    }
    d->active--;
    ra->jobs_active--;
    struct delivery *dv = j->dv;
    job_free(j);
    delivery_job_ended(dv);
    pump(ra, d);
    pump_blocked(ra);
}

/* The undecided recipients as the next transaction's list.  Their number. */
static size_t job_build_msg(struct job *j)
{
    size_t m = 0;
    for (size_t i = 0; i < j->n; i++) {
        if (j->decided[i])
            continue;
        const struct env_rcpt *er = &j->dv->sd->env->rcpts[j->dv->sd->idx[j->k[i]]];
        memset(&j->rc[m], 0, sizeof j->rc[m]);
        j->rc[m].addr = er->addr;
        if (!j->dsnp[i]) {
            char p[ENV_DSN_PARAMS_MAX];
            if (env_dsn_rcpt_params(er, p, sizeof p) == 0 && p[0])
                j->dsnp[i] = strdup(p);   /* NULL (none sent) if out of memory */
        }
        j->rc[m].dsn_params = j->dsnp[i];
        j->rk[m++] = i;
    }
    j->msg.rcpts = j->rc;
    j->msg.n = m;
    return m;
}

static void job_deferred_dead(struct job *j)
{
    char text[400];
    snprintf(text, sizeof text, "delivery temporarily suspended: %s", j->d->dead_reason);
    job_set_all(j, RCPT_PENDING, "4.4.1", text);
}

/* ------------------------------------------------------------ sessions */

/* Global slots in use: every started job (with its session, if any) and
 * every session that serves none (cached or quitting). */
static unsigned slots_used(const struct remote_agent *ra)
{
    return ra->jobs_active + (ra->sessions - ra->owned);
}

static void session_set_job(struct session *s, struct job *j)
{
    if (!s->job && j)
        s->ra->owned++;
    else if (s->job && !j)
        s->ra->owned--;
    s->job = j;
}

static void session_unlink_idle(struct session *s)
{
    struct dest *d = s->d;
    if (!s->on_idle)
        return;
    if (s->idle_prev)
        s->idle_prev->idle_next = s->idle_next;
    else
        d->idle = s->idle_next;
    if (s->idle_next)
        s->idle_next->idle_prev = s->idle_prev;
    s->idle_next = s->idle_prev = NULL;
    s->on_idle = 0;
    d->nidle--;
    evtimer_del(s->idle_timer);
}

static void session_free(struct session *s)
{
    struct remote_agent *ra = s->ra;
    session_unlink_idle(s);
    session_set_job(s, NULL);
    smtp_client_free(s->cl);
    if (s->idle_timer)
        event_free(s->idle_timer);
    if (s->ctx)
        SSL_CTX_free(s->ctx);
    if (s->pass)
        memset(s->pass, 0, strlen(s->pass));
    free(s->user);
    free(s->pass);
    if (s->all_prev)
        s->all_prev->all_next = s->all_next;
    else
        ra->all_sessions = s->all_next;
    if (s->all_next)
        s->all_next->all_prev = s->all_prev;
    free(s);
    ra->sessions--;
}

/* A session ended: its slot may go to a destination waiting for one. */
static void session_gone(struct remote_agent *ra, struct session *s)
{
    session_free(s);
    pump_blocked(ra);
}

static void on_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;
    (void)fd;
    (void)what;
    session_unlink_idle(s);
    s->quitting = 1;
    if (smtp_client_quit(s->cl) < 0)
        session_gone(s->ra, s);
}

static void session_cb(void *arg, uint64_t id, enum smtp_client_event ev);

static struct session *session_new(struct remote_agent *ra, struct job *j)
{
    struct session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->ra = ra;
    s->d = j->d;
    int plain = j->plaintext || j->d->no_tls_next;
    struct smtp_client_opts o = { .helo_name = ra->set.helo, .tls = plain ? SMTP_TLS_NONE : ra->set.tls,
                                  .tls_ctx = plain ? NULL : ra->tls_ctx, .t = ra->set.t,
                                  .pool = ra->pool, .sasl_tls_required = ra->set.sasl_tls_required };
    const char *user, *pass;
    if (ra->tr && transport_sasl(ra->tr, j->d->nexthop, &user, &pass)) {
        s->user = strdup(user);
        s->pass = strdup(pass);
        o.sasl_user = s->user;
        o.sasl_pass = s->pass;
    }
    s->idle_timer = evtimer_new(ra->base, on_idle_timeout, s);
    s->cl = smtp_client_new(ra->base, &o, session_cb, s);
    if (!s->idle_timer || !s->cl || (o.sasl_user && (!s->user || !s->pass))) {
        if (s->cl)
            smtp_client_free(s->cl);
        if (s->idle_timer)
            event_free(s->idle_timer);
        free(s->user);
        free(s->pass);
        free(s);
        return NULL;
    }
    if (o.tls_ctx && SSL_CTX_up_ref(o.tls_ctx) == 1)
        s->ctx = o.tls_ctx;
    j->plaintext = 0;
    j->d->no_tls_next = 0;
    s->all_next = ra->all_sessions;
    if (s->all_next)
        s->all_next->all_prev = s;
    ra->all_sessions = s;
    ra->sessions++;
    return s;
}

/* Send the job's undecided recipients on s (READY). */
static void session_send(struct session *s, struct job *j)
{
    session_set_job(s, j);
    j->s = s;
    int rc = job_build_msg(j) == 0 ? -1 : s->dirty ? smtp_client_send_reset(s->cl, &j->msg)
                                                   : smtp_client_send(s->cl, &j->msg);
    s->dirty = 1;
    if (rc < 0) {
        j->s = NULL;
        session_gone(s->ra, s);
        job_end(j);
    }
}

/* A session with no job left goes to the cache as it is: its RSET goes
 * out with the next transaction, pipelined (smtp_client_send_reset), so
 * reuse costs no round trip of its own. */
static void session_release(struct session *s)
{
    session_set_job(s, NULL);
    session_idle(s);
}

/* After RSET: the next waiting job of its destination, else the cache. */
static void session_idle(struct session *s)
{
    struct remote_agent *ra = s->ra;
    struct dest *d = s->d;
    if (!d->wait_head && dest_any_blocked(ra->dests)) {
        session_gone(ra, s);     /* its slot is wanted elsewhere */
        return;
    }
    s->on_idle = 1;
    s->idle_next = d->idle;
    s->idle_prev = NULL;
    if (s->idle_next)
        s->idle_next->idle_prev = s;
    d->idle = s;
    d->nidle++;
    long long us = ra->set.cache_us;
    struct timeval tv = { us / 1000000, us % 1000000 };
    evtimer_add(s->idle_timer, &tv);
    pump(ra, d);
}

/* Take an idle session of d for job j.  1 if one was taken. */
static int session_take(struct dest *d, struct job *j)
{
    struct session *s = d->idle;
    if (!s)
        return 0;
    session_unlink_idle(s);
    session_send(s, j);
    return 1;
}

/* ------------------------------------------------------------ the walk */

static void on_done(struct session *s, struct job *j)
{
    j->delivered = 1;
    for (size_t m = 0; m < j->msg.n; m++)
        rcpt_result(j, j->rk[m], &j->rc[m], s->cl);
    j->s = NULL;
    session_release(s);
    size_t left = 0;
    for (size_t i = 0; i < j->n; i++)
        left += !j->decided[i];
    if (left && j->mxr)
        try_next_addr(j);        /* soft errors: the next address may take them */
    else
        job_end(j);
}

static int tls_fallback_now(struct remote_agent *ra, struct job *j,
                            const struct smtp_client_status *st)
{
    if (!st->tls_failed || ra->set.tls != SMTP_TLS_MAY)
        return 0;
    if (ra->set.fallback == SMTP_FALLBACK_PLAINTEXT) {
        j->plaintext = 1;
        return 1;
    }
    if (ra->set.fallback == SMTP_FALLBACK_NEXT_ATTEMPT)
        j->d->no_tls_next = 1;
    return 0;
}

static int site_level(const struct smtp_client_status *st)
{
    const char *stage = st->stage;
    return !st->local && (!strcmp(stage, "connect") || !strcmp(stage, "greeting") ||
           !strcmp(stage, "EHLO") || !strcmp(stage, "HELO") || !strcmp(stage, "STARTTLS") ||
           !strcmp(stage, "TLS") || st->code == 421);
}

static void on_failed(struct session *s, struct job *j)
{
    struct remote_agent *ra = s->ra;
    const struct smtp_client_status *st = smtp_client_status(s->cl);
    j->s = NULL;
    if (s->handshake)
        j->sessions_used++;
    if (site_level(st))
        j->site_failures++;
    if (st->code == 421 || !strncmp(st->enh, "4.7.", 4))
        j->throttled = 1;
    const char *last = job_set_last(j, "%s[%s]:%d: %s", smtp_client_host(s->cl),
                                    smtp_client_ip(s->cl), smtp_client_port(s->cl), st->text);
    job_set_all(j, RCPT_PENDING, st->enh[0] ? st->enh : "4.4.2", last);
    for (size_t i = 0; i < j->n; i++)
        if (!j->decided[i])
            set_remote(res_of(j, i), s->cl);
    /* a reply of a recipient's own (5xx, or a 4xx before the failure) says more */
    for (size_t m = 0; m < j->msg.n; m++)
        if (j->rc[m].cls == SMTP_C_PERM || (j->rc[m].cls == SMTP_C_TEMP && j->rc[m].code &&
                                           strcmp(j->rc[m].text, st->text)))
            rcpt_result(j, j->rk[m], &j->rc[m], s->cl);
    int again = tls_fallback_now(ra, j, st);
    session_gone(ra, s);
    if (again && j->mxr && j->next_addr > 0)
        j->next_addr--;          /* the same address, without TLS */
    try_next_addr(j);            /* after a cached session: the lookup starts now */
}

static void session_cb(void *arg, uint64_t id, enum smtp_client_event ev)
{
    struct session *s = arg;
    struct job *j = s->job;
    (void)id;
    switch (ev) {
    case SMTP_CLIENT_READY:
        s->handshake = 1;
        if (!j) {
            session_idle(s);
            return;
        }
        session_send(s, j);
        return;
    case SMTP_CLIENT_DONE:
        if (j)
            on_done(s, j);
        else
            session_release(s);
        return;
    case SMTP_CLIENT_FAILED:
        if (j) {
            on_failed(s, j);
            return;
        }
        session_gone(s->ra, s);  /* idle: the server closed it */
        return;
    case SMTP_CLIENT_CLOSED:
        session_gone(s->ra, s);
        return;
    }
}

static void connect_addr(struct job *j, const struct mx_addr *a)
{
    struct session *s = session_new(j->ra, j);
    if (!s) {
        job_set_last(j, "out of memory");
        job_set_all(j, RCPT_PENDING, "4.3.0", "out of memory");
        job_end(j);
        return;
    }
    session_set_job(s, j);
    j->s = s;
    if (smtp_client_connect(s->cl, (const struct sockaddr *)&a->sa, a->salen, a->host) < 0) {
        j->s = NULL;
        session_gone(j->ra, s);
        job_set_all(j, RCPT_PENDING, "4.3.0", "cannot start a connection");
        job_end(j);
    }
}

static void on_mx(void *arg, uint64_t id, const struct mx_result *r);

/* Connect to the next address, or end the job. */
static void try_next_addr(struct job *j)
{
    if (!j->mxr) {
        if (j->mx_id)
            return;              /* the lookup is under way */
        j->mx_id = mx_lookup(j->ra->mx, j->d->nexthop, &j->ra->set.mxo, on_mx, j);
        if (!j->mx_id) {         /* a configuration error: never the sender's fault */
            char text[400];
            snprintf(text, sizeof text, "cannot use next hop '%s' (transport_maps, relayhost)",
                     j->d->nexthop);
            job_set_all(j, RCPT_PENDING, "4.3.5", text);
            job_end(j);
        }
        return;
    }
    if (j->next_addr >= j->mxr->n || j->sessions_used >= j->ra->set.mx_sessions) {
        job_end(j);
        return;
    }
    connect_addr(j, &j->mxr->addrs[j->next_addr++]);
}

static void on_mx(void *arg, uint64_t id, const struct mx_result *r)
{
    struct job *j = arg;
    (void)id;
    j->mx_id = 0;
    if (r->status != MX_OK) {
        char text[400];
        if (r->status == MX_NULL)
            snprintf(text, sizeof text, "%s: domain does not accept mail (null MX)", j->d->nexthop);
        else
            snprintf(text, sizeof text, "%s: %s", j->d->nexthop, r->text);
        job_set_all(j, r->status == MX_TEMP ? RCPT_PENDING : RCPT_BOUNCED,
                    r->status == MX_NULL ? "5.1.10" : r->dsn, text);
        job_end(j);
        return;
    }
    j->mxr = malloc(sizeof *j->mxr);
    if (!j->mxr) {
        job_set_all(j, RCPT_PENDING, "4.3.0", "out of memory");
        job_end(j);
        return;
    }
    *j->mxr = *r;
    j->next_addr = 0;
    try_next_addr(j);
}

/* ------------------------------------------------------------ scheduling */

static struct job *wait_pop(struct dest *d)
{
    struct job *j = d->wait_head;
    if (j) {
        d->wait_head = j->wait_next;
        if (!d->wait_head)
            d->wait_tail = NULL;
    }
    return j;
}

static void wait_push(struct dest *d, struct job *j)
{
    j->wait_next = NULL;
    if (d->wait_tail)
        ((struct job *)d->wait_tail)->wait_next = j;
    else
        d->wait_head = j;
    d->wait_tail = j;
}

/* Close one idle session of another destination to free a global slot. */
struct victim { struct dest *skip; struct session *s; };

static void find_idle(void *arg, struct dest *d)
{
    struct victim *v = arg;
    if (!v->s && d != v->skip && d->idle)
        v->s = d->idle;
}

static int evict_idle(struct remote_agent *ra, struct dest *skip)
{
    struct victim v = { skip, NULL };
    dest_foreach(ra->dests, find_idle, &v);
    if (!v.s)
        return 0;
    session_free(v.s);
    return 1;
}

static void pump_dest(struct remote_agent *ra, struct dest *d, long long now);

/* Start what d's window and the global cap allow (never recursively). */
static void pump(struct remote_agent *ra, struct dest *d)
{
    long long now = time_now_us();
    if (d->pumping)
        return;                  /* a job ended inside this loop: it goes on */
    d->pumping = 1;
    pump_dest(ra, d, now);
    d->pumping = 0;
}

static void pump_dest(struct remote_agent *ra, struct dest *d, long long now)
{
    while (d->wait_head) {
        if (dest_dead(ra->dests, d, now)) {
            struct job *j = wait_pop(d);
            d->active++;
            ra->jobs_active++;
            job_deferred_dead(j);
            job_end(j);
            continue;
        }
        if (!dest_has_slot(d))
            return;
        if (d->idle) {
            struct job *j = wait_pop(d);
            d->active++;
            ra->jobs_active++;
            session_take(d, j);
            continue;
        }
        /* (an idle session would have been taken above: a new connection
         * only when the destination has none to reuse) */
        if (slots_used(ra) >= ra->set.concurrency && !evict_idle(ra, d)) {
            dest_block(ra->dests, d);
            return;
        }
        struct job *j = wait_pop(d);
        d->active++;
        ra->jobs_active++;
        try_next_addr(j);
    }
}

static void pump_blocked(struct remote_agent *ra)
{
    struct dest *d;
    if (ra->pumping_blocked)
        return;
    ra->pumping_blocked = 1;
    while (slots_used(ra) < ra->set.concurrency && (d = dest_unblock(ra->dests)) != NULL)
        pump(ra, d);
    ra->pumping_blocked = 0;
}

/* ------------------------------------------------------------ deliveries */

static struct job *job_new(struct remote_agent *ra, struct delivery *dv, struct dest *d,
                           size_t cap)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->ra = ra;
    j->dv = dv;
    j->d = d;
    j->k = calloc(cap, sizeof *j->k);
    j->decided = calloc(cap, 1);
    j->rc = calloc(cap, sizeof *j->rc);
    j->rk = calloc(cap, sizeof *j->rk);
    j->dsnp = calloc(cap, sizeof *j->dsnp);
    if (!j->k || !j->decided || !j->rc || !j->rk || !j->dsnp) {
        job_free_mem(j);                /* nothing linked yet, n == 0 */
        return NULL;
    }
    const struct envelope *e = dv->sd->env;
    j->msg.sender = e->sender;
    j->msg.content_path = dv->sd->msg_path;
    j->msg.size = e->size;
    j->msg.smtputf8 = (e->flags & ENV_F_SMTPUTF8) != 0;
    char dsn[ENV_DSN_PARAMS_MAX];
    if (env_dsn_mail_params(e, dsn, sizeof dsn) == 0 && dsn[0]) {
        if ((j->mail_dsn = strdup(dsn)) == NULL) {
            job_free_mem(j);                /* nothing linked yet, n == 0 */
            return NULL;
        }
        j->msg.mail_dsn_params = j->mail_dsn;
    }
    j->all_next = ra->all_jobs;
    if (j->all_next)
        j->all_next->all_prev = j;
    ra->all_jobs = j;
    dv->jobs++;
    return j;
}

static void domain_of(const char *addr, char *out, size_t len)
{
    const char *at = strrchr(addr, '@');
    snprintf(out, len, "%s", at ? at + 1 : "");
    for (char *p = out; *p; p++)
        *p = (char)tolower((unsigned char)*p);
}

/* Route recipient k: decided here (retry:, error:, no domain) or added to
 * the open job of its next hop.  The jobs are collected in order. */
static int route_one(struct remote_agent *ra, struct delivery *dv, size_t k,
                     struct job **jobs, size_t *njobs)
{
    struct sched_delivery *sd = dv->sd;
    const char *addr = sd->env->rcpts[sd->idx[k]].addr;
    char domain[256];
    struct transport_route r;
    domain_of(addr, domain, sizeof domain);
    if (!domain[0] || !ra->tr) {
        sd->res[k].state = domain[0] ? RCPT_PENDING : RCPT_BOUNCED;
        snprintf(sd->res[k].dsn, sizeof sd->res[k].dsn, domain[0] ? "4.3.5" : "5.1.3");
        snprintf(sd->res[k].text, sizeof sd->res[k].text, "%s",
                 domain[0] ? "outbound delivery is not configured" : "no domain in address");
        return 0;
    }
    transport_route(ra->tr, domain, &r);
    if (r.kind != TR_SMTP) {
        sd->res[k].state = r.kind == TR_RETRY ? RCPT_PENDING : RCPT_BOUNCED;
        snprintf(sd->res[k].dsn, sizeof sd->res[k].dsn, "%s", r.dsn);
        snprintf(sd->res[k].text, sizeof sd->res[k].text, "%s", r.text);
        return 0;
    }
    for (size_t i = 0; i < *njobs; i++) {
        struct job *j = jobs[i];
        if (!strcmp(j->d->nexthop, r.nexthop) && j->n < ra->set.rcpt_limit) {
            j->k[j->n++] = k;
            return 0;
        }
    }
    struct dest *d = dest_get(ra->dests, r.nexthop);
    size_t cap = sd->n < ra->set.rcpt_limit ? sd->n : ra->set.rcpt_limit;
    struct job *j = d ? job_new(ra, dv, d, cap) : NULL;
    if (!j)
        return -1;
    j->k[j->n++] = k;
    jobs[(*njobs)++] = j;
    return 0;
}

void remote_agent_deliver(void *ctx, struct sched_delivery *sd)
{
    struct remote_agent *ra = ctx;
    struct delivery *dv = calloc(1, sizeof *dv);
    struct job **jobs = calloc(sd->n ? sd->n : 1, sizeof *jobs);
    size_t njobs = 0;
    if (!dv || !jobs) {
        free(dv);
        free(jobs);
        sched_delivery_done(sd);     /* results stay "4.3.0 delivery did not complete" */
        return;
    }
    dv->sd = sd;
    dv->jobs = 1;                    /* held while the jobs start */
    for (size_t k = 0; k < sd->n; k++)
        if (route_one(ra, dv, k, jobs, &njobs) < 0)
            log_err("%s: out of memory routing <%s>", sd->env->id,
                    sd->env->rcpts[sd->idx[k]].addr);
    for (size_t i = 0; i < njobs; i++) {
        wait_push(jobs[i]->d, jobs[i]);
        pump(ra, jobs[i]->d);
    }
    free(jobs);
    delivery_job_ended(dv);
}

/* ------------------------------------------------------------ teardown */

static void drain_dest(void *arg, struct dest *d)
{
    (void)arg;
    while (d->idle)
        session_free(d->idle);
}

void remote_agent_drain(struct remote_agent *ra)
{
    dest_foreach(ra->dests, drain_dest, NULL);
}

void remote_agent_free(struct remote_agent *ra)
{
    if (!ra)
        return;
    while (ra->all_sessions)
        session_free(ra->all_sessions);
    /* Jobs cut short (shutdown): their deliveries go back as they are
     * (deferred), before the scheduler is freed. */
    while (ra->all_jobs) {
        struct delivery *dv = ra->all_jobs->dv;
        job_free(ra->all_jobs);
        delivery_job_ended(dv);
    }
    if (ra->mx)
        mx_free(ra->mx);
    dest_table_free(ra->dests);
    if (ra->tls_ctx)
        SSL_CTX_free(ra->tls_ctx);
    free(ra);
}
