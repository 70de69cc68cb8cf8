/*
 * mta/daemon.c — wires hatod together: logging, limits, state directories,
 * resolver, tables, listeners and control socket (bound as root), the
 * privilege drop, worker pool, queue recovery, scheduler and its agents,
 * the SMTP server and the maildrop pickup; then SIGHUP reloads and the
 * bounded SIGTERM shutdown.  Also the recipient expansion the SMTP server
 * and the pickup share.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth/popb4smtp.h"
#include "auth/throttle.h"
#include "lib/conf.h"
#include "lib/dns.h"
#include "lib/fsutil.h"
#include "lib/iplist.h"
#include "lib/log.h"
#include "lib/timeutil.h"
#include "lib/tls.h"
#include "lib/work.h"
#include "mta/control.h"
#include "mta/daemon.h"
#include "mta/generation.h"
#include "mta/listen.h"
#include "mta/local.h"
#include "mta/pickup.h"
#include "mta/pop3d.h"
#include "mta/remote.h"
#include "mta/router.h"
#include "mta/sender_login.h"
#include "mta/tables.h"
#include "proto/pop3.h"
#include "proto/smtp_server.h"
#include "queue/queue.h"
#include "queue/scheduler.h"

#define THROTTLE_ENTRIES 65536     /* clients whose login failures are remembered */
#define AGENT_LOCAL 0
#define AGENT_SMTP  1
#define SHUTDOWN_POLL_MS 100

/* ------------------------------------------------------------ recipients */

static enum smtp_rcpt_verdict expand_into(const struct tables *tb, struct envelope *env,
                                          const char *address, const char *orcpt)
{
    struct route_target *t = NULL;
    size_t n = 0;
    switch (router_expand(&tb->rc, address, &t, &n)) {
    case ROUTE_OK: break;
    case ROUTE_UNKNOWN: return SMTP_RCPT_UNKNOWN;
    case ROUTE_LOOP: return SMTP_RCPT_LOOP;
    case ROUTE_TOO_MANY: return SMTP_RCPT_TOO_MANY;
    default: return SMTP_RCPT_TEMP;
    }
    enum smtp_rcpt_verdict v = SMTP_RCPT_OK;
    for (size_t i = 0; i < n && v == SMTP_RCPT_OK; i++)
        if (env_add_rcpt_unique(env, t[i].addr, orcpt) < 0)
            v = SMTP_RCPT_TEMP;
    router_free_targets(t, n);
    return v;
}

/* A session holds the generation it started with (mta/generation.h). */
static void *ops_gen_ref(void *ctx, struct filter_chain **filters)
{
    struct hatod *d = ctx;
    *filters = d->gen->filters;
    return generation_ref(d->gen);
}

static void ops_gen_unref(void *ctx, void *gen)
{
    struct generation *g = gen;
    (void)ctx;
    generation_unref(&g);
}

static int ops_is_local(void *gen, const char *domain)
{
    const struct generation *g = gen;
    return router_is_local(&g->tables->rc, domain);
}

static enum smtp_rcpt_verdict ops_add_rcpt(void *gen, struct envelope *env,
                                           const char *address, const char *orcpt)
{
    const struct generation *g = gen;
    return expand_into(g->tables, env, address, orcpt);
}

static void ops_queued(void *ctx, const struct envelope *env)
{
    struct hatod *d = ctx;
    if (sched_add(d->sched, env) < 0)
        log_err("%s: cannot schedule (will be delivered after a restart)", env->id);
}

int daemon_add_rcpt_or_bounce(struct hatod *d, struct envelope *env, const char *addr)
{
    const char *why = NULL;
    switch (expand_into(d->tables, env, addr, addr)) {
    case SMTP_RCPT_OK: return 0;
    case SMTP_RCPT_UNKNOWN: why = "user unknown"; break;
    case SMTP_RCPT_LOOP: why = "alias expansion loop"; break;
    case SMTP_RCPT_TOO_MANY: why = "alias expands to too many recipients"; break;
    default: return -1;
    }
    if (env_add_rcpt(env, addr, addr) < 0)
        return -1;
    return env_rcpt_set(&env->rcpts[env->nrcpt - 1], RCPT_BOUNCED,
                        !strcmp(why, "user unknown") ? "5.1.1" : "5.4.6", why);
}

/* ------------------------------------------------------------ config views */

static int route_rcpt(void *ctx, const char *rcpt)
{
    struct hatod *d = ctx;
    const char *at = strrchr(rcpt, '@');
    return at && router_is_local(&d->tables->rc, at + 1) ? AGENT_LOCAL : AGENT_SMTP;
}

static void sched_cfg(struct hatod *d, struct sched_config *sc, long long *retry)
{
    const struct hato_config *c = &d->cfg;
    memset(sc, 0, sizeof *sc);
    sc->myhostname = c->myhostname;
    sc->mail_name = c->mail_name;
    sc->minimal_backoff = c->minimal_backoff_time;
    sc->maximal_backoff = c->maximal_backoff_time;
    for (size_t i = 0; i < c->nretry_schedule && i < 64; i++)
        if (conf_parse_time(c->retry_schedule[i], &retry[sc->nretry]) == 0)
            sc->nretry++;
    sc->retry_schedule = retry;
    sc->max_lifetime = c->maximal_queue_lifetime;
    sc->bounce_lifetime = c->bounce_queue_lifetime;
    sc->delay_warning = c->delay_warning_time;
    sc->bounce_return_full = c->bounce_return_full;
    /* double bounces: postmaster of the first local domain (the router
     * resolves it: alias, user or postmaster_recipient) */
    snprintf(d->double_bounce_to, sizeof d->double_bounce_to, "postmaster@%s",
             c->nlocal_domains ? c->local_domains[0] : "");
    sc->postmaster = c->nlocal_domains ? d->double_bounce_to : NULL;
    sc->defer_transports = c->defer_transports;
    sc->ndefer = c->ndefer_transports;
    sc->route = route_rcpt;
    sc->route_ctx = d;
}

static enum smtp_tls_policy smtp_policy(enum tls_policy t)
{
    switch (t) {
    case TLS_MAY: return SMTP_TLS_MAY;
    case TLS_ENCRYPT: return SMTP_TLS_ENCRYPT;
    default: return SMTP_TLS_NONE;
    }
}

static void smtp_params(const struct hato_config *c, struct smtp_server_params *p)
{
    memset(p, 0, sizeof *p);
    p->myhostname = c->myhostname;
    p->mail_name = c->mail_name;
    p->banner = c->smtpd_banner;
    p->default_domain = c->nlocal_domains ? c->local_domains[0] : "";
    p->message_size_limit = c->message_size_limit;
    p->header_size_limit = c->header_size_limit;
    p->recipient_limit = c->smtpd_recipient_limit;
    p->hard_error_limit = c->smtpd_hard_error_limit;
    p->timeout = c->smtpd_timeout;
    p->pipelining_limit = c->smtpd_pipelining_limit;
    p->bare_lf_reject = c->smtpd_forbid_bare_newline == BARE_LF_REJECT;
    p->smtp_tls = smtp_policy(c->smtp_tls);
    p->submission_tls = smtp_policy(c->submission_tls);
    p->auth_mx = c->smtpd_sasl_auth_enable != 0;
    p->submission_auth_required = c->submission_auth_required != 0;
    p->tls_auth_only = c->smtpd_tls_auth_only != 0;
    p->min_data_rate = c->smtpd_min_data_rate;
    p->allow_null_sender_auth = c->allow_null_sender_auth != 0;
}

/* Make g current: d->cfg, d->tables, d->relay and d->filters are views of
 * it (owned by g).  The caller drops its reference to the previous one. */
static void use_generation(struct hatod *d, struct generation *g)
{
    d->gen = g;
    d->cfg = g->cfg;
    d->tables = g->tables;
    d->relay = g->relay;
    d->filters = g->filters;
}

/* ------------------------------------------------------------ start-up steps */

static int open_log(struct hatod *d)
{
    int rc;
    log_forget_pid();                  /* after detach() this is the daemon */
    if (d->cfg.log_file[0]) {
        rc = log_open(LOG_DEST_FILE, d->cfg.log_file);
        log_tee_stderr(d->foreground);   /* -d: stderr as well as the file */
    } else if (d->foreground) {
        rc = log_open(LOG_DEST_STDERR, NULL);
    } else {
        rc = log_open(LOG_DEST_SYSLOG, "hatod");
    }
    if (rc < 0)
        fprintf(stderr, "hatod: cannot open the log: %s\n", strerror(errno));
    return rc;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            log_warn("cannot raise the descriptor limit: %s", strerror(errno));
    }
}

static int find_run_user(struct hatod *d, gid_t *gid)
{
    d->run_uid = getuid();
    *gid = getgid();
    if (!d->cfg.run_user[0])
        return 0;
    struct passwd *pw = getpwnam(d->cfg.run_user);
    if (!pw) {
        log_err("%s: run_user: no such user '%s'", d->cfg.path, d->cfg.run_user);
        return -1;
    }
    if (getuid() != 0) {
        if (pw->pw_uid != getuid())
            log_warn("not started as root: run_user %s ignored", d->cfg.run_user);
        return 0;
    }
    d->run_uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return 0;
}

static int make_dir(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
    if (fs_mkdirs(path, mode) < 0) {
        log_err("%s: %s", path, strerror(errno));
        return -1;
    }
    if (chmod(path, mode) < 0 || (getuid() == 0 && chown(path, uid, gid) < 0)) {
        log_err("%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int make_state_dirs(struct hatod *d, gid_t gid)
{
    char path[4096];
    if (make_dir(d->cfg.state_directory, 0755, d->run_uid, gid) < 0)
        return -1;
    config_path(&d->cfg, "mail", path, sizeof path);
    if (make_dir(path, 0700, d->run_uid, gid) < 0)
        return -1;
    config_path(&d->cfg, "queue", path, sizeof path);
    if (make_dir(path, 0700, d->run_uid, gid) < 0)
        return -1;
    config_path(&d->cfg, "maildrop", path, sizeof path);
    return make_dir(path, 01733, d->run_uid, gid);
}

static int drop_privileges(struct hatod *d, gid_t gid)
{
    if (getuid() != 0 || !d->cfg.run_user[0])
        return 0;
    /* so that the pool's threads may return to nice 0 after a password
     * hash (lib/work.c; without it nothing is reniced) */
    (void)work_priority_prepare();
    if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(d->run_uid) < 0) {
        log_err("cannot drop privileges to %s: %s", d->cfg.run_user, strerror(errno));
        return -1;
    }
    return 0;
}

static void found_envelope(void *arg, struct envelope *env)
{
    struct hatod *d = arg;
    if (sched_add(d->sched, env) < 0)
        log_err("%s: cannot schedule", env->id);
}

/* A message in hold/ stays held (hatoctl queue release). */
static void found_held(void *arg, struct envelope *env)
{
    struct hatod *d = arg;
    if (sched_add_held(d->sched, env) < 0)
        log_err("%s: cannot keep the held message", env->id);
}

static int start_queue(struct hatod *d)
{
    char err[512];
    long long retry[64];
    struct sched_config sc;
    d->pool = work_pool_new(d->base, (int)d->cfg.worker_threads);
    if (!d->pool)
        return -1;
    d->queue = queue_open(d->cfg.state_directory, d->pool, (int)d->cfg.queue_group_commit,
                          err, sizeof err);
    if (!d->queue) {
        log_err("queue: %s", err);
        return -1;
    }
    sched_cfg(d, &sc, retry);
    d->sched = sched_new(d->base, d->queue, d->pool, &sc);
    d->local = local_agent_new(d->pool, d->cfg.state_directory, (int)d->cfg.local_delivery_batch);
    if (!d->sched || !d->local)
        return -1;
    local_agent_set_tables(d->local, d->tables);
    d->remote = remote_agent_new(d->base, d->dns, d->pool);
    if (!d->remote || remote_agent_configure(d->remote, &d->cfg, d->gen->transport) < 0)
        return -1;
    struct sched_agent local = { "local", local_agent_deliver, d->local };
    struct sched_agent smtp = { "smtp", remote_agent_deliver, d->remote };
    if (sched_add_agent(d->sched, &local) < 0 || sched_add_agent(d->sched, &smtp) < 0)
        return -1;
    int n = queue_recover(d->queue, found_envelope, d);
    int h = n < 0 ? -1 : queue_recover_held(d->queue, found_held, d);
    if (n < 0 || h < 0) {
        log_err("queue: cannot read %s: %s", queue_dir(d->queue), strerror(errno));
        return -1;
    }
    log_info("queue: %d message(s) recovered", n);
    if (h > 0)
        log_info("queue: %d message(s) on hold", h);
    return 0;
}

static const struct usertab *ops_users(void *gen)
{
    const struct generation *g = gen;
    return g->tables->users;
}

static int ops_auth_exempt(void *gen, const struct sockaddr *client)
{
    const struct generation *g = gen;
    return g->auth_exempt && iplist_match(g->auth_exempt, client);
}

static int ops_sender_owned(void *gen, const char *login, const char *sender)
{
    const struct generation *g = gen;
    return sender_owned(&g->tables->rc, g->tables->sender_logins, login, sender);
}

static void throttle_limits(const struct hato_config *c, struct throttle_limits *l)
{
    throttle_limits_default(l);
    l->limit = (int)c->auth_failure_limit;
    l->window = c->auth_failure_window;
    l->lockout = c->auth_lockout_time;
    l->v6_prefix = (int)c->smtpd_client_ipv6_prefix;
}

static SSL_CTX *ops_tls_ctx(void *gen)
{
    const struct generation *g = gen;
    return g->tls ? tls_conf_ctx(g->tls) : NULL;
}

static int start_smtp(struct hatod *d)
{
    struct smtp_server_params p;
    struct throttle_limits tl;
    throttle_limits(&d->cfg, &tl);
    d->throttle = throttle_new(&tl, THROTTLE_ENTRIES);
    if (!d->throttle)
        return -1;
    struct smtp_server_ops ops = {
        ops_gen_ref, ops_gen_unref, ops_is_local, ops_add_rcpt, ops_queued, ops_tls_ctx,
        ops_users, ops_auth_exempt, ops_sender_owned, d, d->pool, d->throttle,
    };
    smtp_params(&d->cfg, &p);
    d->smtp = smtp_server_new(d->base, d->queue, &ops, &p);
    return d->smtp ? 0 : -1;
}

static void warn_unavailable(const struct hato_config *c)
{
    if (c->nimap_listen || c->nimaps_listen)
        log_warn("imap/imaps listeners are not available in this version; ignored");
    if (!c->tls_cert_file[0] && (c->smtp_tls == TLS_MAY || c->submission_tls == TLS_MAY))
        log_warn("smtp_tls/submission_tls = may, but no tls_cert_file: STARTTLS is not offered");
}

/* The TLS configuration's warnings (a key others can read, a certificate
 * out of its validity), at start and after every reload. */
static void warn_tls(const struct generation *g)
{
    for (size_t i = 0; g->tls && i < tls_conf_nwarnings(g->tls); i++)
        log_warn("TLS: %s", tls_conf_warning(g->tls, i));
}

/* After the privilege drop: a reload reads the certificates as run_user. */
static void warn_tls_unreadable(const struct hato_config *c)
{
    const char *files[] = { c->tls_cert_file, c->tls_key_file };
    for (size_t i = 0; i < 2; i++) {
        if (!files[i][0])
            continue;
        int fd = open(files[i], O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
            close(fd);
        else
            log_warn("TLS: %s cannot be read after the privilege drop (%s): a reload "
                     "will fail until run_user can read it", files[i], strerror(errno));
    }
}

struct tls_conf *daemon_tls(const struct hatod *d)
{
    return d->gen ? d->gen->tls : NULL;
}

/* postmaster must reach someone (RFC 5321 §4.5.1): say so at start and
 * after every reload when it does not. */
static void warn_postmaster(const struct tables *t)
{
    char msg[1024];
    if (tables_check_postmaster(t, msg, sizeof msg) < 0)
        log_warn("%s", msg);
}

/* ------------------------------------------------------------ signals */

static void on_shutdown_poll(evutil_socket_t fd, short what, void *arg)
{
    struct hatod *d = arg;
    /* Sessions whose transaction ended since the last poll are idle now:
     * they get their 421 too.  The loop runs until every session is gone,
     * so the last reply of a transaction (the 250 after a commit) is
     * flushed to the client before the process exits, never cut off. */
    smtp_server_shutdown(d->smtp);
    pop3_server_shutdown(d->pop3);
    size_t busy = smtp_server_busy(d->smtp) + pop3_server_busy(d->pop3);
    int pending = work_pending(d->pool);
    if ((busy == 0 && pending == 0 && sched_active(d->sched) == 0 &&
         smtp_server_sessions(d->smtp) == 0 && pop3_server_sessions(d->pop3) == 0) ||
        time_mono_us() >= d->shutdown_deadline_us) {
        if (busy || pending)
            log_warn("shutdown timeout: %zu session(s) and %d job(s) cut short", busy, pending);
        event_base_loopexit(d->base, NULL);
        return;
    }
    struct timeval tv = { 0, SHUTDOWN_POLL_MS * 1000 };
    evtimer_add(d->shutdown_timer, &tv);
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
    struct hatod *d = arg;
    if (d->stopping)
        return;
    d->stopping = 1;
    log_info("stopping (signal %d)", (int)sig);
    listeners_disable(d->listeners);
    control_disable(d->control);
    smtp_server_shutdown(d->smtp);
    sched_stop(d->sched);
    remote_agent_drain(d->remote);
    d->shutdown_deadline_us = time_mono_us() + d->cfg.shutdown_timeout * 1000000LL;
    on_shutdown_poll(-1, 0, d);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    daemon_reload(arg);
}

/* SIGHUP/SIGTERM/SIGINT are held from the start of daemon_start() until
 * the loop's handlers exist: the listeners accept (into the backlog) before
 * the queue is recovered, and a reload or stop asked for in that window
 * must not kill the daemon with the default action.  Worker threads are
 * created meanwhile and inherit the mask, so signals go to the loop. */
static void hold_signals(int how)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (pthread_sigmask(how, &set, NULL) != 0)
        log_warn("cannot %s signals", how == SIG_BLOCK ? "hold" : "release");
}

static int start_signals(struct hatod *d)
{
    signal(SIGPIPE, SIG_IGN);
    d->sig_hup = evsignal_new(d->base, SIGHUP, on_hup, d);
    d->sig_term = evsignal_new(d->base, SIGTERM, on_term, d);
    d->sig_int = evsignal_new(d->base, SIGINT, on_term, d);
    d->shutdown_timer = evtimer_new(d->base, on_shutdown_poll, d);
    if (!d->sig_hup || !d->sig_term || !d->sig_int || !d->shutdown_timer)
        return -1;
    if (evsignal_add(d->sig_hup, NULL) < 0 || evsignal_add(d->sig_term, NULL) < 0 ||
        evsignal_add(d->sig_int, NULL) < 0)
        return -1;
    hold_signals(SIG_UNBLOCK);     /* pending ones reach the handlers now */
    return 0;
}

int daemon_start(struct hatod *d)
{
    char err[1024];
    gid_t gid;
    if (open_log(d) < 0)
        return -1;
    hold_signals(SIG_BLOCK);
    raise_nofile();
    if (find_run_user(d, &gid) < 0 || make_state_dirs(d, gid) < 0)
        return -1;
    d->base = event_base_new();
    if (!d->base)
        return -1;
    d->dns = dns_new(d->base, d->cfg.resolver_config, err, sizeof err);
    if (!d->dns) {
        log_err("%s", err);
        return -1;
    }
    struct generation *g = generation_new(&d->cfg, d->base, err, sizeof err);
    if (!g) {
        log_err("%s", err);
        return -1;
    }
    use_generation(d, g);
    warn_unavailable(&d->cfg);
    warn_postmaster(d->tables);
    warn_tls(d->gen);
    /* the control socket first: once SMTP answers, local submission works too */
    d->control = control_open(d);
    d->listeners = d->control ? listeners_open(d) : NULL;
    if (!d->listeners || drop_privileges(d, gid) < 0)
        return -1;
    warn_tls_unreadable(&d->cfg);
    if (start_queue(d) < 0 || start_smtp(d) < 0 || pop3d_start(d) < 0 || start_signals(d) < 0)
        return -1;
    d->pickup = pickup_new(d);
    if (!d->pickup)
        return -1;
    log_info("hatod started (%s), %zu message(s) queued", d->cfg.path, sched_count(d->sched));
    return 0;
}

int daemon_run(struct hatod *d)
{
    if (event_base_dispatch(d->base) < 0)
        return 1;
    log_info("stopped");
    return 0;
}

/* ------------------------------------------------------------ reload */

static int same_list(char **a, size_t na, char **b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]))
            return 0;
    return 1;
}

/* A reload: everything is read and checked in the pool (a 100k-line users
 * file must not stall the loop); the swap happens on the loop. */
struct reload_job {
    struct hatod *d;
    unsigned long gen;
    struct hato_config nc;
    struct generation *ng;           /* built from nc (which it takes over) */
    int loaded;
    char err[1024];
};

static void reload_load(void *arg)
{
    struct reload_job *j = arg;
    if (config_load(j->d->config_path, &j->nc, j->err, sizeof j->err) < 0)
        return;
    j->ng = generation_new(&j->nc, j->d->base, j->err, sizeof j->err);
    j->loaded = j->ng != NULL;
}

static void reload_discard(struct reload_job *j)
{
    generation_unref(&j->ng);
    if (j->nc.conf)
        config_free(&j->nc);
}

/* Put the new generation in force.  The old one is freed when the last
 * session that started under it ends.  0 or -1. */
static int reload_apply(struct hatod *d, struct reload_job *j)
{
    struct hato_config *nc = &j->ng->cfg;
    /* The queue, the mailboxes, the maildrop and the control socket live
     * there and are open: a reload cannot move them. */
    if (strcmp(nc->state_directory, d->cfg.state_directory) != 0) {
        snprintf(j->err, sizeof j->err, "%s: state_directory cannot change on reload "
                 "(%s -> %s); restart hatod", d->cfg.path, d->cfg.state_directory,
                 nc->state_directory);
        return -1;
    }
    if (!same_list(nc->smtp_listen, nc->nsmtp_listen, d->cfg.smtp_listen, d->cfg.nsmtp_listen) ||
        !same_list(nc->submission_listen, nc->nsubmission_listen, d->cfg.submission_listen,
                   d->cfg.nsubmission_listen))
        log_warn("listen addresses changed: restart hatod to apply them");
    struct generation *old = d->gen;
    use_generation(d, j->ng);
    j->ng = NULL;
    warn_postmaster(d->tables);
    warn_tls(d->gen);
    struct smtp_server_params p;
    smtp_params(&d->cfg, &p);
    smtp_server_set_params(d->smtp, &p);
    pop3d_reload(d);
    struct throttle_limits tl;
    throttle_limits(&d->cfg, &tl);
    throttle_set_limits(d->throttle, &tl);
    long long retry[64];
    struct sched_config sc;
    sched_cfg(d, &sc, retry);
    sched_set_config(d->sched, &sc);
    local_agent_set_tables(d->local, d->tables);
    if (remote_agent_configure(d->remote, &d->cfg, d->gen->transport) < 0)
        log_err("reload: the smtp agent keeps its previous TLS settings");
    generation_unref(&old);
    log_reopen();
    return 0;
}

static void reload_done(void *arg)
{
    struct reload_job *j = arg;
    struct hatod *d = j->d;
    int ok = j->loaded && reload_apply(d, j) == 0;
    if (ok)
        log_info("reloaded %s", d->cfg.path);
    else {
        log_err("reload failed, old configuration kept: %s", j->err);
        reload_discard(j);
    }
    d->reloading = 0;
    control_reloaded(d->control, j->gen, ok, j->err);
    free(j);
    if (d->reload_again) {
        d->reload_again = 0;
        daemon_reload(d);
    }
}

unsigned long daemon_reload(struct hatod *d)
{
    if (d->reloading) {
        d->reload_again = 1;         /* the files may have changed since it read them */
        return d->reload_gen + 1;
    }
    struct reload_job *j = calloc(1, sizeof *j);
    if (!j) {
        log_err("reload: out of memory");
        return 0;
    }
    j->d = d;
    j->gen = d->reload_gen + 1;
    if (work_submit(d->pool, WORK_SCAN, reload_load, reload_done, j) < 0) {
        log_err("reload: cannot start (shutting down)");
        free(j);
        return 0;
    }
    d->reload_gen = j->gen;
    d->reloading = 1;
    return j->gen;
}

/* ------------------------------------------------------------ teardown */

void daemon_free(struct hatod *d)
{
    /* Jobs first: their callbacks still need the server, queue and scheduler. */
    if (d->pool)
        work_pool_free(d->pool);
    d->pool = NULL;
    if (d->queue)
        queue_detach_pool(d->queue);    /* sessions freed below abort inline */
    smtp_server_free(d->smtp);
    pop3_server_free(d->pop3);
    popb4smtp_clear();
    throttle_free(d->throttle);
    listeners_free(d->listeners);
    control_free(d->control);
    pickup_free(d->pickup);
    local_agent_free(d->local);
    remote_agent_free(d->remote);    /* hands its deliveries back first */
    sched_free(d->sched);
    queue_close(d->queue);
    dns_free(d->dns);
    if (d->gen) {                    /* sessions dropped theirs above */
        generation_unref(&d->gen);
        memset(&d->cfg, 0, sizeof d->cfg);   /* it was a view of the generation */
    }
    struct event *evs[] = { d->sig_hup, d->sig_term, d->sig_int, d->shutdown_timer };
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i])
            event_free(evs[i]);
    if (d->base)
        event_base_free(d->base);
    config_free(&d->cfg);
}
