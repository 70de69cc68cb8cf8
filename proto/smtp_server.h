/*
 * proto/smtp_server.h — the SMTP server: sessions on connection objects
 * (proto/conn.h), driven
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

struct evbuffer;
struct event_base;
struct queue;
struct filter_chain;
struct envelope;
struct smtp_server;
struct usertab;
struct work_pool;
struct throttle;

enum smtp_mode {
    SMTP_MODE_MX,          /* port 25: STARTTLS per smtp_tls */
    SMTP_MODE_SUBMISSION,  /* port 587: STARTTLS per submission_tls (AUTH: its own issue) */
    SMTP_MODE_SUBMISSIONS, /* port 465: submission over implicit TLS (RFC 8314) */
    SMTP_MODE_LOCAL,       /* the control socket: sendmail, trusted */
};

/* smtp_tls / submission_tls: offer STARTTLS or not, or require it before
 * MAIL (530 5.7.0). */
enum smtp_tls_policy { SMTP_TLS_NONE, SMTP_TLS_MAY, SMTP_TLS_ENCRYPT };

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
    enum smtp_tls_policy smtp_tls, submission_tls;
    int auth_mx;                      /* smtpd_sasl_auth_enable: AUTH on port 25 too */
    int submission_auth_required;     /* submission_auth = required (587 and 465) */
    int tls_auth_only;                /* smtpd_tls_auth_only: AUTH only over TLS */
    long long min_data_rate;          /* smtpd_min_data_rate: octets/s in DATA, 0 = off */
    int allow_null_sender_auth;       /* MAIL FROM:<> after AUTH */
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
    /* The generation's server TLS context, or NULL: no STARTTLS offered
     * and an implicit-TLS session is closed. */
    struct ssl_ctx_st *(*tls_ctx)(void *gen);
    /* The generation's users (AUTH checks passwords and secrets there). */
    const struct usertab *(*users)(void *gen);
    /* 1 if the client needs no AUTH to submit (auth_exempt_clients). */
    int (*auth_exempt)(void *gen, const struct sockaddr *client);
    /* 1 if the authenticated user login may send as sender ("local@domain",
     * local part unquoted: MAIL FROM and From:/Sender: after AUTH), 0 if
     * not, -1 on a temporary failure (mta/sender_login.h has the rule).
     * NULL: every sender is owned. */
    int (*sender_owned)(void *gen, const char *login, const char *sender);
    void *ctx;
    /* Not functions: the worker pool password checks run in (WORK_AUTH) and
     * the login-failure table shared by every service (auth/throttle.h). */
    struct work_pool *pool;
    struct throttle *throttle;
};

struct smtp_server *smtp_server_new(struct event_base *base, struct queue *q,
                                    const struct smtp_server_ops *ops,
                                    const struct smtp_server_params *params);
/* New parameters (SIGHUP); sessions already open keep going and see the
 * new limits and names (they are copied here; tables and filters come from
 * each session's generation, see gen_ref). */
void smtp_server_set_params(struct smtp_server *srv, const struct smtp_server_params *p);

/* Start a session on fd (connected, non-blocking; the server owns it from
 * now on).  pending: octets already read from it (moved into the session's
 * input), or NULL.  peer is NULL for SMTP_MODE_LOCAL, where uid is the
 * submitting user.  `on_close` (may be NULL) runs once when the session
 * ends, for connection accounting: also when the start fails (-1; fd is
 * closed then too). */
int smtp_session_start(struct smtp_server *srv, int fd, struct evbuffer *pending,
                       enum smtp_mode mode, const struct sockaddr *peer, socklen_t peerlen,
                       uid_t uid, void (*on_close)(void *arg), void *close_arg);
/* Sessions open; sessions with a transaction in progress. */
size_t smtp_server_sessions(const struct smtp_server *srv);
size_t smtp_server_busy(const struct smtp_server *srv);
/* Shutdown: idle sessions get 421 and close now; sessions in a transaction
 * close after it ends (421 at their next command). */
void smtp_server_shutdown(struct smtp_server *srv);
/* Close everything at once (end of the shutdown grace period) and free. */
void smtp_server_free(struct smtp_server *srv);

#endif
