/*
 * mta/daemon.h — hatod as one object: the config, the event base and
 * everything hung on it, start-up in the right order (bind and open as
 * root, then drop privileges), reload on SIGHUP, and the bounded shutdown
 * on SIGTERM.
 */
#ifndef HATO_DAEMON_H
#define HATO_DAEMON_H

#include <sys/types.h>
#include "mta/config.h"
#include "filters/filter.h"
#include "queue/envelope.h"

struct event;
struct event_base;
struct work_pool;
struct dns;
struct queue;
struct scheduler;
struct smtp_server;
struct filter_chain;
struct iplist;
struct tables;
struct local_agent;
struct listeners;
struct generation;
struct control;
struct pickup;
struct pop3_server;

struct hatod {
    /* The configuration generation in force (mta/generation.h); cfg,
     * filters, relay and tables below are views of it, owned by it. */
    struct generation *gen;
    struct hato_config cfg;
    char *config_path;
    int foreground;
    struct event_base *base;
    struct work_pool *pool;
    struct dns *dns;
    struct queue *queue;
    struct scheduler *sched;
    struct smtp_server *smtp;
    struct filter_chain *filters;
    struct iplist *relay;
    struct tables *tables;
    struct local_agent *local;
    struct remote_agent *remote;     /* the "smtp" agent (mta/remote.h) */
    struct listeners *listeners;
    struct control *control;
    struct pickup *pickup;
    struct throttle *throttle;       /* login failures per client, every service */
    struct pop3_server *pop3;        /* proto/pop3.h, wired by mta/pop3d.c */
    struct event *sig_hup, *sig_term, *sig_int, *shutdown_timer;
    long long shutdown_deadline_us;
    uid_t run_uid;
    int stopping;
    int reloading, reload_again;     /* a reload job is in the pool / wanted after it */
    unsigned long reload_gen;        /* reloads started */
    char double_bounce_to[300];      /* sched_config.postmaster points here */
};

/* Everything up to the loop.  0, or -1 after logging why. */
int daemon_start(struct hatod *d);
/* Run until SIGTERM has finished; returns the exit code. */
int daemon_run(struct hatod *d);
/* SIGHUP work, also the control socket's RELOAD: config, tables and relay
 * list are read in the worker pool and put in force on the loop (or, on any
 * error, logged and the old ones kept).  Returns the reload generation
 * that will reflect the files as they are now (0 if no reload can start);
 * its outcome is reported to control_reloaded(). */
unsigned long daemon_reload(struct hatod *d);
void daemon_free(struct hatod *d);
/* The server TLS configuration in force (the current generation's), or
 * NULL without tls_cert_file.  A session takes its SSL_CTX from the
 * generation it holds (generation->tls), so a reload never changes the
 * certificate under it. */
struct tls_conf *daemon_tls(const struct hatod *d);
/* Expand a recipient through the router into env (local mail submitted
 * through the maildrop): an unknown local user is added as already
 * bounced (5.1.1), so the sender gets a DSN.  0, or -1 (out of memory). */
int daemon_add_rcpt_or_bounce(struct hatod *d, struct envelope *env, const char *addr);

#endif
