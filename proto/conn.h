/*
 * proto/conn.h — the connection object every protocol sits on (SMTP server
 * and client, POP3, IMAP): it owns the socket, TLS (OpenSSL on our own
 * reads and writes), the input and output buffers, back-pressure and the
 * idle timeout, and reports a few events to one callback.  Protocols never
 * touch the fd or the SSL handle.
 *
 * Contract:
 * - Input: whatever arrives is appended to conn_input() and CONN_READ is
 *   reported.  Reading stops while the input holds input_max octets (a line
 *   reader that finds no line end in a full buffer answers "line too long")
 *   or while the output holds more than output_high, and resumes by itself
 *   when the protocol drains the input or the output falls to a third of
 *   output_high.  A protocol that must not read (waiting for a filter, a
 *   commit, a password check) calls conn_read_enable(c, 0).
 * - Output: append to conn_output(); the conn writes once per loop pass,
 *   straight to the socket (no EV_WRITE unless the socket is full).
 *   conn_want_drain() asks for one CONN_DRAINED when the output is empty.
 * - STARTTLS (either side): queue the last plaintext reply, then call
 *   conn_starttls(): the conn stops reading, waits for the output to
 *   leave, discards every plaintext octet already received (a pipelined
 *   command after STARTTLS is never executed, CVE-2011-0411), runs the
 *   handshake and reports CONN_TLS_READY (or CONN_ERROR).  Implicit TLS is
 *   the same call right after conn_new().
 * - Timeout: the idle timer runs while the protocol wants input (also
 *   after CONN_EOF, so a protocol state that forgot to act on it still
 *   ends), while output waits or during a handshake, and restarts on every octet read or written; it
 *   reports CONN_TIMEOUT after each idle period (the protocol answers and
 *   closes, and frees on the next one if even that answer does not leave).
 * - CONN_EOF: the peer closed its side; input may still hold octets, and
 *   output is still written (replies after a half-close).  CONN_ERROR: the
 *   connection is unusable; free it.
 * - conn_free() may be called from inside the callback: the conn is freed
 *   when the callback returns, and reports nothing more.
 */
#ifndef HATO_CONN_H
#define HATO_CONN_H

#include <stddef.h>

struct event_base;
struct evbuffer;
struct conn;
typedef struct ssl_ctx_st SSL_CTX;

enum conn_event {
    CONN_READ,        /* new octets in conn_input() */
    CONN_DRAINED,     /* the output is empty (after conn_want_drain) */
    CONN_TLS_READY,   /* the handshake is done */
    CONN_EOF,         /* the peer closed its side */
    CONN_TIMEOUT,     /* nothing moved for the idle timeout */
    CONN_ERROR,       /* reset, write error, TLS failure: free the conn */
};

typedef void (*conn_cb)(struct conn *c, enum conn_event ev, void *arg);

struct conn_limits {
    size_t input_max;     /* stop reading while the input holds this much */
    size_t output_high;   /* stop reading while the output holds more */
    size_t read_max;      /* octets read per readiness event (fairness) */
    int timeout_ms;       /* idle timeout, 0 = none */
};

/* Take fd (non-blocking, connected).  NULL on allocation failure (the fd is
 * then not closed: the caller still owns it). */
struct conn *conn_new(struct event_base *base, int fd, const struct conn_limits *lim,
                      conn_cb cb, void *arg);
/* Close the fd (and TLS) and free; no callback afterwards. */
void conn_free(struct conn *c);

struct evbuffer *conn_input(struct conn *c);
struct evbuffer *conn_output(struct conn *c);
/* The protocol's own pause (0) and resume (1).  Resuming reports CONN_READ
 * from the loop if input is already buffered. */
void conn_read_enable(struct conn *c, int on);
void conn_set_input_max(struct conn *c, size_t max);
void conn_set_timeout(struct conn *c, int ms);
/* A minimum data rate for reads (0: off): from now on the idle timeout is
 * a budget that octets read extend by 1 s per octets_per_s, up to one
 * timeout ahead, instead of a timer every octet restarts — a peer that
 * drips slower runs out of time.  SMTP sets it for DATA. */
void conn_set_min_rate(struct conn *c, long long octets_per_s);
/* Report CONN_DRAINED once the output is empty (at once from the loop if
 * it already is). */
void conn_want_drain(struct conn *c);
/* 1 while the output holds more than output_high: a protocol stops
 * executing pipelined commands until it falls (conn_want_drain). */
int conn_output_full(const struct conn *c);
/* 1 if the peer closed its side. */
int conn_eof(const struct conn *c);

/* Run a server handshake's expensive step in pool (class WORK_TLS) instead
 * of on the loop: the SSL_do_handshake that takes the ClientHello (key
 * exchange, the private-key signature) is one job on the non-blocking fd;
 * the conn reads and writes nothing meanwhile and re-arms when the step
 * comes back.  The cheap steps, and every client-side step, stay on the
 * loop.  NULL (the default): all on the loop.  Set it before
 * conn_starttls; the pool must outlive the conn. */
struct work_pool;
void conn_set_work_pool(struct conn *c, struct work_pool *pool);

/* Start TLS as server (server = 1) or client; sni: the name a client asks
 * for (NULL: none).  0, or -1 if TLS cannot even start (then nothing
 * changed).  The conn keeps a reference to ctx. */
int conn_starttls(struct conn *c, SSL_CTX *ctx, int server, const char *sni);
int conn_is_tls(const struct conn *c);
/* "TLSv1.3" and the cipher name, or NULL before the handshake. */
const char *conn_tls_version(const struct conn *c);
const char *conn_tls_cipher(const struct conn *c);
/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" (the phrase
 * of a Received: comment and of log lines), "" before the handshake. */
void conn_tls_describe(const struct conn *c, char *buf, size_t len);
int conn_tls_bits(const struct conn *c);
/* The channel binding of the TLS connection, for SCRAM-*-PLUS: TLS 1.3
 * "tls-exporter" (RFC 9266: 32 octets of the exporter with the label
 * "EXPORTER-Channel-Binding", no context); TLS 1.2 "tls-server-end-point"
 * (RFC 5929 §4: the server certificate hashed with its signature's hash,
 * SHA-256 for MD5 and SHA-1).  tls-unique is never given: without the
 * extended master secret it is open to the triple-handshake attack, and
 * TLS 1.3 has none.  Returns the octets written to buf and sets *type, or -1
 * (no TLS yet, no certificate, a signature without a defined hash, buf too
 * small). */
int conn_tls_channel_binding(const struct conn *c, const char **type, unsigned char *buf,
                             size_t len);
/* What the last CONN_ERROR was about ("connection reset", a TLS alert). */
const char *conn_error(const struct conn *c);
/* Octets read and written so far (for logs and rate checks). */
unsigned long long conn_bytes_in(const struct conn *c);
unsigned long long conn_bytes_out(const struct conn *c);

#endif
