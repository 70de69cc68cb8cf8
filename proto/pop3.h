/*
 * proto/pop3.h — the POP3 server (RFC 1939, CAPA and response codes of
 * RFC 2449, STLS of RFC 2595, AUTH of RFC 5034) on connection objects
 * (proto/conn.h).  It knows the rest of hatod only through this contract:
 * mta/ fills pop3_server_ops (the configuration generation, its users and
 * TLS context, the pool, the login throttle) and pop3_server_params.
 * The maildrop is the INBOX of the login's mailbox (store/pop3drop.h);
 * one session per maildrop; deletions happen only at QUIT.
 */
#ifndef HATO_POP3_H
#define HATO_POP3_H

#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct usertab;
struct work_pool;
struct throttle;
struct pop3_server;
typedef struct ssl_ctx_st SSL_CTX;

/* pop3_tls: STLS offered (may, when a certificate is there) and required
 * before any login (encrypt). */
enum pop3_tls_policy { POP3_TLS_NONE, POP3_TLS_MAY, POP3_TLS_ENCRYPT };

struct pop3_server_params {
    const char *myhostname;
    const char *banner;              /* pop3d_banner, expanded: "+OK BANNER [<ts>]" */
    const char *mail_root;           /* state_directory/mail */
    long long timeout;               /* pop3d_timeout, seconds */
    enum pop3_tls_policy tls;
    int apop;                        /* pop3_apop: timestamp in the banner, APOP */
    /* auth_plaintext_clients: where USER/PASS and AUTH PLAIN/LOGIN are
     * allowed without TLS (copied; a bad item is skipped with a log line,
     * mta/config.c has checked them) */
    char *const *plaintext_clients;
    size_t nplaintext_clients;
};

struct pop3_server_ops {
    /* The generation in force for a session that starts now (a reference
     * dropped with gen_unref when the session ends). */
    void *(*gen_ref)(void *ctx);
    void (*gen_unref)(void *ctx, void *gen);
    /* The generation's server TLS context, or NULL (no STLS; an implicit-TLS
     * session is closed). */
    SSL_CTX *(*tls_ctx)(void *gen);
    const struct usertab *(*users)(void *gen);
    /* A login succeeded from this client (POP-before-SMTP); may be NULL. */
    void (*logged_in)(void *ctx, const struct sockaddr *client);
    void *ctx;
    struct work_pool *pool;          /* password checks, maildrop I/O */
    struct throttle *throttle;       /* shared with every service; may be NULL */
};

struct pop3_server *pop3_server_new(struct event_base *base, const struct pop3_server_ops *ops,
                                    const struct pop3_server_params *p);
/* New parameters (SIGHUP): copied; open sessions see them from their next
 * command. */
int pop3_server_set_params(struct pop3_server *srv, const struct pop3_server_params *p);
/* Start a session on fd (connected, non-blocking; owned from now on).
 * implicit_tls: pop3s (995), the greeting after the handshake.  on_close
 * runs once when the session ends, also when the start fails (-1). */
int pop3_session_start(struct pop3_server *srv, int fd, int implicit_tls,
                       const struct sockaddr *peer, socklen_t peerlen,
                       void (*on_close)(void *arg), void *close_arg);
size_t pop3_server_sessions(const struct pop3_server *srv);
/* Sessions that must finish before the process exits (UPDATE running). */
size_t pop3_server_busy(const struct pop3_server *srv);
/* Shutdown: idle sessions get "-ERR [SYS/TEMP]" and close (nothing is
 * deleted: RFC 1939 deletes only at QUIT); a running UPDATE finishes. */
void pop3_server_shutdown(struct pop3_server *srv);
void pop3_server_free(struct pop3_server *srv);

#endif
