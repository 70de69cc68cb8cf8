/*
 * proto/smtp_client.h — the SMTP client (RFC 5321) on the connection
 * object (proto/conn.h): one session to one address, any number of
 * transactions on it.  It connects (non-blocking, with a timeout), reads
 * the greeting, says EHLO (HELO when EHLO gets a 5xx), applies the TLS
 * policy (STARTTLS, then EHLO again), and then sends messages: MAIL FROM
 * (SIZE=, BODY=8BITMIME, SMTPUTF8, DSN parameters as the server offers),
 * RCPT TO per recipient, DATA with the content streamed from the queue
 * file, dot-stuffed and with every line ending normalised to CRLF (no bare
 * CR or LF ever leaves: outbound smuggling), and the final reply.  With
 * PIPELINING, MAIL + RCPTs + DATA go in one write (RFC 2920).  RSET makes
 * the session ready for the next message; QUIT ends it.
 *
 * Contract:
 * - Every call only starts something; the callback runs later on the loop
 *   with the client's id (callers key their delivery by it).  The client
 *   may be freed from inside the callback.
 * - READY: greeting, EHLO and TLS are done (or RSET answered): call
 *   smtp_client_send() or smtp_client_quit().
 * - DONE: the transaction ended; every recipient of the message has its
 *   result (class, code, enhanced code, text); the session is READY for
 *   smtp_client_reset() or smtp_client_quit().
 * - FAILED: a site failure — connect, greeting, EHLO/HELO, TLS, a 421, a
 *   timeout, a lost connection or a protocol error (a reply line over
 *   SMTP_LINE_MAX, over SMTP_REPLY_LINES_MAX lines, a malformed one), a
 *   refused AUTH.  The
 *   connection is closed; smtp_client_status() says why and where.  During
 *   a transaction, recipients refused with a 5xx keep their PERM result and
 *   every other one is TEMP: the caller tries them at the next address.
 * - A READY session is not timed (the caller's connection cache is); a
 *   server that closes it meanwhile makes it report FAILED.
 * - CLOSED: QUIT was answered (or the peer closed after it).
 * - The content file is opened and read in chunks of SMTP_CLIENT_CHUNK: in
 *   the worker pool when one is given (WORK_DELIVERY), else with one bounded
 *   pread per step on the loop.  Output is kept under SMTP_CLIENT_OUT_HIGH.
 *   A file that cannot be read fails the session (status.local) without an
 *   end of data, so the server discards what it got.
 */
#ifndef HATO_SMTP_CLIENT_H
#define HATO_SMTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proto/lineio.h"
#include "proto/smtp_reply.h"

struct event_base;
struct evbuffer;
struct work_pool;
struct smtp_client;
typedef struct ssl_ctx_st SSL_CTX;

#define SMTP_CLIENT_CHUNK (64 * 1024)
#define SMTP_CLIENT_OUT_HIGH (128 * 1024)

/* Per-phase timeouts in milliseconds, Postfix's names and defaults. */
struct smtp_client_timeouts {
    int connect;      /* smtp_connect_timeout 30s */
    int helo;         /* smtp_helo_timeout 300s: greeting, EHLO, HELO */
    int starttls;     /* smtp_starttls_timeout 300s: the reply and the handshake */
    int mail;         /* smtp_mail_timeout 300s */
    int rcpt;         /* smtp_rcpt_timeout 300s */
    int data_init;    /* smtp_data_init_timeout 120s: the 354 */
    int data_xfer;    /* smtp_data_xfer_timeout 180s: no progress sending content */
    int data_done;    /* smtp_data_done_timeout 600s: the reply to "." */
    int rset;         /* smtp_rset_timeout 20s */
    int quit;         /* smtp_quit_timeout 300s */
};
void smtp_client_timeouts_default(struct smtp_client_timeouts *t);

/* smtp_tls_security_level, Postfix's names: none, may (STARTTLS when
 * offered; a refused STARTTLS goes on in plaintext, a failed handshake is
 * a site failure with tls_failed for the caller's smtp_tls_fallback),
 * encrypt (no STARTTLS offered or refused: site failure, tls_missing). */
enum smtp_tls_level { SMTP_TLS_NONE, SMTP_TLS_MAY, SMTP_TLS_ENCRYPT };

struct smtp_client_opts {
    const char *helo_name;        /* myhostname */
    enum smtp_tls_level tls;
    SSL_CTX *tls_ctx;             /* tls_client_ctx_new(); needed unless NONE */
    struct smtp_client_timeouts t;
    struct work_pool *pool;       /* content reads; NULL: on the loop */
    /* smtp_sasl_password_maps: AUTH PLAIN (else LOGIN) after EHLO when both
     * are set and the server offers one.  With sasl_tls_required a
     * session without TLS fails (4.7.0) before any password is sent.  A refused AUTH is a site
     * failure (stage "AUTH"), as Postfix defers it. */
    const char *sasl_user, *sasl_pass;
    int sasl_tls_required;
};

enum smtp_class { SMTP_C_NONE = 0, SMTP_C_OK, SMTP_C_TEMP, SMTP_C_PERM };

struct smtp_rcpt {
    const char *addr;             /* without <> */
    const char *dsn_params;       /* "NOTIFY=... ORCPT=...", sent if DSN is offered; or NULL */
    /* results */
    enum smtp_class cls;
    int code;                     /* the server's, or 0 for a local decision */
    char enh[16];                 /* the server's, else X.0.0 from the code */
    char text[SMTP_LINE_MAX];
};

struct smtp_msg {
    const char *sender;           /* "" for the null sender */
    const char *content_path;     /* the queue's content file (CRLF or LF lines) */
    long long size;               /* for SIZE= and the limit check */
    int body_8bit;                /* BODY=8BITMIME if offered */
    int smtputf8;                 /* needs SMTPUTF8: refused with 5.6.7 if not offered */
    const char *mail_dsn_params;  /* "RET=FULL ENVID=..." if DSN is offered; or NULL */
    struct smtp_rcpt *rcpts;
    size_t n;
};

enum smtp_client_event { SMTP_CLIENT_READY, SMTP_CLIENT_DONE, SMTP_CLIENT_FAILED,
                         SMTP_CLIENT_CLOSED };

typedef void (*smtp_client_cb)(void *arg, uint64_t id, enum smtp_client_event ev);

/* Why the session failed (or what the last reply was). */
struct smtp_client_status {
    const char *stage;            /* "connect", "greeting", "EHLO", "STARTTLS", "TLS",
                                     "AUTH", "MAIL", "RCPT", "DATA", "end of data", "RSET", "QUIT" */
    int code;                     /* the reply's, 0 when there was none */
    char enh[16];                 /* "4.4.2" for timeouts and lost connections ... */
    char text[SMTP_LINE_MAX + 64];
    int tls_failed;               /* the handshake failed (smtp_tls_fallback applies) */
    int tls_missing;              /* encrypt, and STARTTLS not offered or refused */
    int local;                    /* our side failed (the content file could not be read) */
};

struct smtp_client *smtp_client_new(struct event_base *base, const struct smtp_client_opts *o,
                                    smtp_client_cb cb, void *arg);
/* Connect to sa; host is the name for SNI and logs (an MX host or the
 * literal).  0, or -1 if the client is not new.  Failures arrive as FAILED. */
int smtp_client_connect(struct smtp_client *cl, const struct sockaddr *sa, socklen_t len,
                        const char *host);
/* Start a transaction (READY only).  msg and its recipients must stay
 * valid until DONE or FAILED.  0, or -1 when not READY. */
int smtp_client_send(struct smtp_client *cl, struct smtp_msg *msg);
/* RSET, then the transaction, as one pipelined group when PIPELINING is
 * offered (RFC 2920 §3.1 lets RSET open a group): reuse after DONE without
 * the RSET's own round trip.  A refused RSET is a site failure (stage
 * "RSET").  As smtp_client_send() otherwise. */
int smtp_client_send_reset(struct smtp_client *cl, struct smtp_msg *msg);
/* RSET (after DONE): READY again, or FAILED.  0 or -1. */
int smtp_client_reset(struct smtp_client *cl);
/* QUIT: CLOSED follows.  0 or -1. */
int smtp_client_quit(struct smtp_client *cl);
/* Close at once (no QUIT); no callback afterwards. */
void smtp_client_free(struct smtp_client *cl);

uint64_t smtp_client_id(const struct smtp_client *cl);
const struct smtp_client_status *smtp_client_status(const struct smtp_client *cl);
const struct smtp_ext *smtp_client_ext(const struct smtp_client *cl);
/* The peer as given to connect: "mx.example.com", "192.0.2.1", port. */
const char *smtp_client_host(const struct smtp_client *cl);
const char *smtp_client_ip(const struct smtp_client *cl);
int smtp_client_port(const struct smtp_client *cl);
/* "TLSv1.3" and the cipher, or NULL when the session is not encrypted. */
const char *smtp_client_tls_version(const struct smtp_client *cl);
const char *smtp_client_tls_cipher(const struct smtp_client *cl);
/* 1 when the session used PIPELINING for its last transaction. */
int smtp_client_pipelined(const struct smtp_client *cl);

/* The DATA encoder: dot-stuffing and CRLF normalisation (a bare LF, a bare
 * CR, and CRLF each become one CRLF), and lines longer than
 * SMTP_LINE_FOLD octets broken by inserting CRLF SPACE (RFC 5321
 * §4.5.3.1.6 allows 998 + CRLF; Postfix's smtp_line_length_limit does the
 * same); the same output in any split of the input. */
#define SMTP_LINE_FOLD 998
struct smtp_dot_enc {
    int bol;                      /* at the start of a line */
    int skip_lf;                  /* the last octet was CR: an LF now is its pair */
    size_t col;                   /* octets sent on the current line */
};
void smtp_dot_enc_init(struct smtp_dot_enc *e);
/* Encode n octets into out.  0, or -1 (out of memory). */
int smtp_dot_encode(struct smtp_dot_enc *e, const char *in, size_t n, struct evbuffer *out);
/* End the data: CRLF if the content did not end with a line end, then
 * ".\r\n". */
int smtp_dot_enc_end(struct smtp_dot_enc *e, struct evbuffer *out);

#endif
