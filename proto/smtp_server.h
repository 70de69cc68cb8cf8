/*
 * proto/smtp_server.h — the SMTP server: sessions on bufferevents, driven
 * by a command table, streaming DATA to the queue, calling the filter chain
 * at each phase.  It knows the rest of hatod only through this contract:
 * mta/ fills smtp_server_ops (recipient resolution, queued-message hand-off)
 * and smtp_server_params (limits and names from the config).
 */
#ifndef HATO_SMTP_SERVER_H
#define HATO_SMTP_SERVER_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

struct bufferevent;
struct event_base;
struct queue;
struct filter_chain;
struct envelope;
struct smtp_server;

enum smtp_mode {
    SMTP_MODE_MX,          /* port 25 */
    SMTP_MODE_SUBMISSION,  /* port 587 (AUTH comes with its own issue) */
    SMTP_MODE_LOCAL,       /* the control socket: sendmail, trusted */
};

struct smtp_server_params {
    const char *myhostname;
    const char *mail_name;
    const char *banner;               /* smtpd_banner, already expanded */
    const char *default_domain;       /* first local domain: <postmaster> */
    long long message_size_limit;     /* 0 = none */
    long long header_size_limit;
    long long recipient_limit;
    long long hard_error_limit;
    long long timeout;                /* seconds */
    long long pipelining_limit;       /* commands buffered before reading stops */
    int bare_lf_reject;               /* smtpd_forbid_bare_newline = yes */
};

/* How the server learns where recipients go and hands over queued mail. */
enum smtp_rcpt_verdict {
    SMTP_RCPT_OK,          /* targets added */
    SMTP_RCPT_UNKNOWN,     /* 550 5.1.1 */
    SMTP_RCPT_LOOP,        /* 554 5.4.6 */
    SMTP_RCPT_TOO_MANY,    /* 552 5.3.4 */
    SMTP_RCPT_TEMP,        /* 451 4.3.0 */
};

struct smtp_server_ops {
    /* The configuration generation in force, for a session that starts now:
     * a reference the session drops with gen_unref when it ends (after its
     * pending filter run is cancelled), and that generation's filter chain
     * in *filters.  The session runs its whole life on that generation, so
     * a reload never frees the tables or filters it uses. */
    void *(*gen_ref)(void *ctx, struct filter_chain **filters);
    void (*gen_unref)(void *ctx, void *gen);
    /* 1 if domain is local (gen: the session's generation). */
    int (*is_local)(void *gen, const char *domain);
    /* Expand an accepted recipient (address with unquoted local part) and add
     * its final targets to env with env_add_rcpt(env, target, orcpt). */
    enum smtp_rcpt_verdict (*add_rcpt)(void *gen, struct envelope *env,
                                       const char *address, const char *orcpt);
    /* A message is committed: schedule it (called even if the client left). */
    void (*queued)(void *ctx, const struct envelope *env);
    void *ctx;
};

struct smtp_server *smtp_server_new(struct event_base *base, struct queue *q,
                                    const struct smtp_server_ops *ops,
                                    const struct smtp_server_params *params);
/* New parameters (SIGHUP); sessions already open keep going and see the
 * new limits and names (they are copied here; tables and filters come from
 * each session's generation, see gen_ref). */
void smtp_server_set_params(struct smtp_server *srv, const struct smtp_server_params *p);

/* Start a session on bev (the server owns it from now on).  peer is NULL
 * for SMTP_MODE_LOCAL, where uid is the submitting user.  `on_close` (may
 * be NULL) runs once when the session ends, for connection accounting:
 * also when the start fails (-1; bev is freed then too). */
int smtp_session_start(struct smtp_server *srv, struct bufferevent *bev, enum smtp_mode mode,
                       const struct sockaddr *peer, socklen_t peerlen, uid_t uid,
                       void (*on_close)(void *arg), void *close_arg);
/* Sessions open; sessions with a transaction in progress. */
size_t smtp_server_sessions(const struct smtp_server *srv);
size_t smtp_server_busy(const struct smtp_server *srv);
/* Shutdown: idle sessions get 421 and close now; sessions in a transaction
 * close after it ends (421 at their next command). */
void smtp_server_shutdown(struct smtp_server *srv);
/* Close everything at once (end of the shutdown grace period) and free. */
void smtp_server_free(struct smtp_server *srv);

#endif
