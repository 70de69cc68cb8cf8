/*
 * proto/conn.c — the connection object (contract in conn.h): one socket,
 * plain or TLS, two evbuffers, four events (readable, writable, idle
 * timer, and a "kick" that runs deferred work from the loop), and the
 * back-pressure rules.  No bufferevent: we read and write ourselves so
 * that TLS is OpenSSL on our own reads (SSL_read into the input buffer's
 * free space, SSL_write from its front), big reads need no second path,
 * and STARTTLS is a state of this object instead of a filter stacked on
 * another.  Never blocks; never calls back into a protocol from inside one
 * of its own calls (deferred work goes through the kick event).
 *
 * A server's expensive handshake step may run in the worker pool
 * (conn_set_work_pool): one SSL_do_handshake on the non-blocking fd, as a
 * WORK_TLS job, so that the key exchange and the private-key operation are
 * not paid by the loop (hs_offload says which step).  While a step runs the conn arms no fd event and nothing on the loop
 * touches the SSL handle; the step's outcome comes back to the loop, which
 * re-arms (WANT_READ / WANT_WRITE) or finishes.  A conn freed meanwhile is
 * released when its step comes back.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "lib/timeutil.h"
#include "lib/tls.h"
#include "lib/work.h"
#include "proto/conn.h"

/* Octets asked of one read call: 2^k - CONN_CHAIN_SLACK, k from
 * CONN_READ_MIN_K to CONN_READ_MAX_K, per conn.  libevent rounds a new
 * buffer chain (its header included) up to a power of two, so a step of
 * exactly 64 KiB would take 128 KiB of heap per read; and a session that
 * reads 30-octet replies needs no 64 KiB at all.  The step doubles after a
 * read that filled it (a DATA stream, a RETR) and halves after one that
 * did not fill half of it. */
#define CONN_CHAIN_SLACK 128
#define CONN_READ_MIN_K  12
#define CONN_READ_MAX_K  16
/* An SSL_read hands over one record at most (16 KiB): a TLS step stops at
 * the first that holds a whole one, and a whole record counts as full
 * (else a 16 KiB - 128 step would take each record in two reads). */
#define CONN_READ_MAX_K_TLS 15
#define CONN_TLS_RECORD     16384
#define CONN_TLS_WRITE  (16 * 1024)   /* one TLS record's worth per SSL_write */

enum tls_state {
    TLS_NONE,        /* plaintext */
    TLS_WAIT_FLUSH,  /* conn_starttls: the last plaintext reply is leaving */
    TLS_HANDSHAKE,
    TLS_UP,
};

struct conn {
    struct event_base *base;
    int fd;
    conn_cb cb;
    void *arg;
    struct conn_limits lim;
    struct evbuffer *in, *out;
    struct event ev_rd, ev_wr, ev_timer, ev_kick;
    SSL *ssl;
    enum tls_state tls;
    int server;                 /* TLS role */
    size_t tls_wlen;            /* length of an SSL_write to repeat, 0 = none */
    size_t plain_left;          /* TLS_WAIT_FLUSH: plaintext octets still to send */
    unsigned long long nin, nout;
    long long min_rate;         /* octets/s a read must keep up, 0 = idle timer only */
    long long deadline_us;      /* with min_rate: when the reads' time runs out */
    int in_cb;                  /* callback depth */
    struct work_pool *pool;     /* handshake steps run there (NULL: on the loop) */
    /* a step's outcome, written by the worker while hs_busy, read by the loop after */
    int hs_ret, hs_err;
    char hs_why[160];
    unsigned user_read : 1;     /* the protocol wants input */
    unsigned out_blocked : 1;   /* output above output_high, until a third */
    unsigned rd_on : 1, wr_on : 1, timer_on : 1;
    unsigned eof : 1, failed : 1, dead : 1;
    unsigned want_drain : 1;
    unsigned kick_read : 1;     /* report CONN_READ / read OpenSSL's buffer */
    unsigned rd_wants_wr : 1;   /* SSL_read needs the socket writable */
    unsigned hs_busy : 1;       /* a handshake step runs in the pool */
    unsigned wr_wants_rd : 1;   /* SSL_write needs the socket readable */
    unsigned rd_k : 5;          /* read step: 2^rd_k - CONN_CHAIN_SLACK */
    unsigned rd_starved : 1;    /* the last SSL_read wanted the socket: what
                                 * OpenSSL holds is part of a record at most */
    char err[160];
};

static void update_io(struct conn *c);
static void want_write(struct conn *c, int on);

/* ------------------------------------------------------------ reporting */

/* The memory, the fd and the SSL handle go only here, once no handler of
 * this conn is running: a protocol may free the conn from its callback and
 * the handler that called it still holds the pointer (each handler is
 * framed by enter/leave, as OpenSMTPD's io frames its dispatch). */
static void really_free(struct conn *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    close(c->fd);
    evbuffer_free(c->in);
    evbuffer_free(c->out);
    free(c);
}

static void enter(struct conn *c)
{
    c->in_cb++;
}

static void leave(struct conn *c)
{
    if (--c->in_cb == 0 && c->dead && !c->hs_busy)
        really_free(c);
}

/* Call the protocol.  -1: the conn was freed meanwhile (it stays valid
 * memory until the handler leaves): do nothing more with it. */
static int report(struct conn *c, enum conn_event ev)
{
    if (c->dead)
        return -1;
    c->cb(c, ev, c->arg);
    return c->dead ? -1 : 0;
}

static int fail(struct conn *c, const char *what)
{
    if (!c->failed) {
        c->failed = 1;
        snprintf(c->err, sizeof c->err, "%s", what);
    }
    update_io(c);
    want_write(c, 0);
    return report(c, CONN_ERROR);
}

static void tls_error_text(struct conn *c, const char *what, char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    char detail[120] = "";
    if (e)
        ERR_error_string_n(e, detail, sizeof detail);
    else if (errno)
        snprintf(detail, sizeof detail, "%s", strerror(errno));
    else
        snprintf(detail, sizeof detail, "connection closed");
    ERR_clear_error();
    snprintf(buf, len, "%s: %s", what, detail);
    (void)c;
}

/* ------------------------------------------------------------ events on/off */

static int reading_wanted(const struct conn *c)
{
    if (c->failed || c->dead || c->hs_busy)
        return 0;
    if (c->tls == TLS_HANDSHAKE)
        return 1;                /* the handshake decides; see hs_step */
    if (c->tls == TLS_WAIT_FLUSH || c->eof)
        return c->wr_wants_rd;
    return (c->user_read && !c->out_blocked && evbuffer_get_length(c->in) < c->lim.input_max) ||
           c->wr_wants_rd;
}

/* With a minimum data rate, n octets read buy n / min_rate seconds more,
 * but never more than one idle timeout ahead (Postfix's deadlines with
 * smtpd_min_data_rate): a client that drips slower than the rate runs out
 * of time however often it sends an octet. */
static void rate_credit(struct conn *c, size_t n)
{
    if (c->min_rate <= 0)
        return;
    long long now = time_mono_us();
    long long cap = now + (long long)c->lim.timeout_ms * 1000;
    if (c->deadline_us < now)
        c->deadline_us = now;
    c->deadline_us += (long long)n * 1000000 / c->min_rate;
    if (c->deadline_us > cap)
        c->deadline_us = cap;
}

static void timer_update(struct conn *c, int progress)
{
    int want = c->lim.timeout_ms > 0 && !c->failed && !c->dead &&
               (c->tls == TLS_HANDSHAKE || evbuffer_get_length(c->out) > 0 || c->user_read);
    if (want && (progress || !c->timer_on)) {
        long long us = (long long)c->lim.timeout_ms * 1000;
        if (c->min_rate > 0) {
            us = c->deadline_us - time_mono_us();     /* progress does not reset it */
            if (us < 0)
                us = 0;
        }
        struct timeval tv = { (time_t)(us / 1000000), (suseconds_t)(us % 1000000) };
        event_add(&c->ev_timer, &tv);
        c->timer_on = 1;
    } else if (!want && c->timer_on) {
        event_del(&c->ev_timer);
        c->timer_on = 0;
    }
}

/* Does OpenSSL hold input that only another SSL_read will hand over?
 * Decrypted octets (SSL_pending), or, with read-ahead, whole records read
 * from the socket but not yet opened (SSL_has_pending) — unless the last
 * SSL_read already asked the socket for more: then what is held is the
 * start of a record whose rest the fd event will announce, and kicking a
 * read for it would spin. */
static int tls_input_held(const struct conn *c)
{
    return SSL_pending(c->ssl) > 0 || (!c->rd_starved && SSL_has_pending(c->ssl));
}

/* Arm exactly the events the current state needs. */
static void update_io(struct conn *c)
{
    int rd = reading_wanted(c);
    if (rd && !c->rd_on)
        event_add(&c->ev_rd, NULL);
    else if (!rd && c->rd_on)
        event_del(&c->ev_rd);
    c->rd_on = rd;
    /* OpenSSL may hold octets no fd event will announce */
    if (rd && c->tls == TLS_UP && !c->wr_wants_rd && !c->rd_wants_wr && tls_input_held(c)) {
        c->kick_read = 1;
        event_active(&c->ev_kick, 0, 0);
    }
    timer_update(c, 0);
}

static void want_write(struct conn *c, int on)
{
    if (on && !c->wr_on)
        event_add(&c->ev_wr, NULL);
    else if (!on && c->wr_on)
        event_del(&c->ev_wr);
    c->wr_on = on;
}

/* ------------------------------------------------------------ reading */

/* One read call of at most room octets.  >0 octets, 0 nothing now, -1
 * end of file, -2 error (c->err set). */
/* recv() into the buffer's free space: evbuffer_read() would first ask
 * the kernel how much is waiting (FIONREAD), one more system call per
 * read. */
static int read_plain(struct conn *c, size_t room)
{
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(c->in, (ev_ssize_t)room, &v, 1) < 1) {
        snprintf(c->err, sizeof c->err, "out of memory");
        return -2;
    }
    size_t want = v.iov_len < room ? v.iov_len : room;
    ssize_t n = recv(c->fd, v.iov_base, want, 0);
    if (n > 0) {
        v.iov_len = (size_t)n;
        evbuffer_commit_space(c->in, &v, 1);
        return (int)n;
    }
    evbuffer_commit_space(c->in, &v, 0);
    if (n == 0)
        return -1;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return 0;
    snprintf(c->err, sizeof c->err, "read: %s", strerror(errno));
    return -2;
}

static int read_tls(struct conn *c, size_t room)
{
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(c->in, (ev_ssize_t)room, &v, 1) < 1) {
        snprintf(c->err, sizeof c->err, "out of memory");
        return -2;
    }
    size_t want = v.iov_len < room ? v.iov_len : room;
    ERR_clear_error();
    errno = 0;
    int r = SSL_read(c->ssl, v.iov_base, (int)want);
    c->rd_starved = 0;
    if (r > 0) {
        v.iov_len = (size_t)r;
        evbuffer_commit_space(c->in, &v, 1);
        return r;
    }
    evbuffer_commit_space(c->in, &v, 0);
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        c->rd_starved = 1;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        c->rd_wants_wr = 1;
        want_write(c, 1);
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        return -1;
    case SSL_ERROR_SYSCALL:
        if (errno == 0 || errno == ECONNRESET || errno == EPIPE)
            return -1;           /* closed without close_notify */
        /* fall through */
    default:
        tls_error_text(c, "TLS read", c->err, sizeof c->err);
        return -2;
    }
}

static size_t read_step(const struct conn *c)
{
    return ((size_t)1 << c->rd_k) - CONN_CHAIN_SLACK;
}

/* After a read asked for a whole step and got n. */
static void read_step_adapt(struct conn *c, size_t n)
{
    int tls = c->tls == TLS_UP;
    unsigned max_k = tls ? CONN_READ_MAX_K_TLS : CONN_READ_MAX_K;
    size_t step = read_step(c);
    size_t full = tls && step > CONN_TLS_RECORD ? CONN_TLS_RECORD : step;
    if (n >= full && c->rd_k < max_k)
        c->rd_k++;
    else if (n < full / 2 && c->rd_k > CONN_READ_MIN_K)
        c->rd_k--;
}

static void do_read(struct conn *c)
{
    size_t total = 0;
    int end = 0;
    while (total < c->lim.read_max && evbuffer_get_length(c->in) < c->lim.input_max) {
        size_t room = c->lim.input_max - evbuffer_get_length(c->in);
        if (room > c->lim.read_max - total)
            room = c->lim.read_max - total;
        size_t step = read_step(c);
        if (room > step)
            room = step;
        int n = c->tls == TLS_UP ? read_tls(c, room) : read_plain(c, room);
        if (n > 0) {
            total += (size_t)n;
            if (room == step)
                read_step_adapt(c, (size_t)n);
            /* a short plaintext read means the socket is empty: no extra
             * call just to hear EAGAIN */
            if (c->tls != TLS_UP && (size_t)n < room)
                break;
            continue;
        }
        end = n;
        break;
    }
    if (total > 0) {
        c->nin += total;
        rate_credit(c, total);
        timer_update(c, 1);
        if (report(c, CONN_READ) < 0 || c->failed)
            return;
    }
    if (end == -1) {
        c->eof = 1;
        update_io(c);
        report(c, CONN_EOF);
        return;
    }
    if (end == -2) {
        char why[sizeof c->err];
        memcpy(why, c->err, sizeof why);
        fail(c, why);
        return;
    }
    update_io(c);
}

/* ------------------------------------------------------------ writing */

static void start_handshake(struct conn *c);

/* The output is empty (or, before a handshake, its plaintext part is
 * sent): what waited for that. */
static void output_empty(struct conn *c)
{
    want_write(c, 0);
    if (c->tls == TLS_WAIT_FLUSH) {
        start_handshake(c);
        return;
    }
    timer_update(c, 0);
    if (c->want_drain) {
        c->want_drain = 0;
        report(c, CONN_DRAINED);
    }
}

/* >0 written, 0 would block, -1 error (c->err). */
static int write_plain(struct conn *c)
{
    /* before a handshake only what was queued before conn_starttls() */
    int n = c->tls == TLS_WAIT_FLUSH ? evbuffer_write_atmost(c->out, c->fd, (ev_ssize_t)c->plain_left)
                                     : evbuffer_write(c->out, c->fd);
    if (n > 0)
        return n;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    snprintf(c->err, sizeof c->err, "write: %s", n < 0 ? strerror(errno) : "nothing written");
    return -1;
}

static int write_tls(struct conn *c)
{
    size_t len = evbuffer_get_length(c->out);
    if (c->tls_wlen)
        len = c->tls_wlen;       /* a repeat must pass what it passed */
    else if (len > CONN_TLS_WRITE)
        len = CONN_TLS_WRITE;
    unsigned char *p = evbuffer_pullup(c->out, (ev_ssize_t)len);
    if (!p) {
        snprintf(c->err, sizeof c->err, "out of memory");
        return -1;
    }
    ERR_clear_error();
    errno = 0;
    int r = SSL_write(c->ssl, p, (int)len);
    if (r > 0) {
        c->tls_wlen = 0;
        evbuffer_drain(c->out, (size_t)r);
        return r;
    }
    c->tls_wlen = len;
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_WRITE:
        return 0;
    case SSL_ERROR_WANT_READ:
        c->wr_wants_rd = 1;
        update_io(c);
        return 0;
    default:
        tls_error_text(c, "TLS write", c->err, sizeof c->err);
        return -1;
    }
}

static void do_flush(struct conn *c)
{
    if (c->tls == TLS_HANDSHAKE || c->failed || c->dead)
        return;
    int wrote = 0;
    while (evbuffer_get_length(c->out) > 0) {
        if (c->tls == TLS_WAIT_FLUSH && c->plain_left == 0)
            break;               /* the rest goes out encrypted */
        int n = c->tls == TLS_UP ? write_tls(c) : write_plain(c);
        if (n > 0) {
            c->nout += (unsigned long long)n;
            if (c->tls == TLS_WAIT_FLUSH)
                c->plain_left -= (size_t)n;
            wrote = 1;
            continue;
        }
        if (n < 0) {
            char why[sizeof c->err];
            memcpy(why, c->err, sizeof why);
            fail(c, why);
            return;
        }
        if (!c->wr_wants_rd)
            want_write(c, 1);    /* the socket is full */
        if (wrote)
            timer_update(c, 1);
        return;
    }
    if (wrote)
        timer_update(c, 1);
    output_empty(c);
}

/* ------------------------------------------------------------ TLS */

/* What one SSL_do_handshake returned, on the loop: finish, or wait for the
 * socket it needs.  why: the error's text, gathered where OpenSSL's
 * thread-local error queue was filled. */
static void hs_result(struct conn *c, int r, int err, const char *why)
{
    if (r == 1) {
        c->tls = TLS_UP;
        want_write(c, evbuffer_get_length(c->out) > 0);
        timer_update(c, 1);
        if (report(c, CONN_TLS_READY) < 0)
            return;
        update_io(c);
        if (evbuffer_get_length(c->out) > 0)
            do_flush(c);
        return;
    }
    switch (err) {
    case SSL_ERROR_WANT_READ:
        want_write(c, 0);
        update_io(c);
        timer_update(c, 1);
        return;
    case SSL_ERROR_WANT_WRITE:
        update_io(c);
        want_write(c, 1);
        timer_update(c, 1);
        return;
    default:
        fail(c, why);
        return;
    }
}

/* One handshake step on whichever thread runs it. */
static void hs_run(struct conn *c)
{
    ERR_clear_error();
    errno = 0;
    c->hs_ret = SSL_do_handshake(c->ssl);
    c->hs_err = c->hs_ret == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, c->hs_ret);
    c->hs_why[0] = '\0';
    if (c->hs_ret != 1 && c->hs_err != SSL_ERROR_WANT_READ && c->hs_err != SSL_ERROR_WANT_WRITE)
        tls_error_text(c, "TLS handshake", c->hs_why, sizeof c->hs_why);
    ERR_clear_error();
}

/* The pool's side: touches the SSL handle and the hs_ fields only. */
static void hs_job(void *arg)
{
    hs_run(arg);
}

/* Back on the loop. */
static void hs_job_done(void *arg)
{
    struct conn *c = arg;
    enter(c);
    c->hs_busy = 0;
    if (!c->dead && !c->failed)
        hs_result(c, c->hs_ret, c->hs_err, c->hs_why);
    leave(c);                    /* frees a conn freed while the step ran */
}

/* Is this step worth a trip to the pool?  A server's expensive step is the
 * one that takes the ClientHello: key exchange and the signature.  So a
 * step goes out while the handshake has taken nothing yet (OpenSSL's state
 * still TLS_ST_BEFORE) and octets wait on the socket.  The first call after
 * the STARTTLS reply usually finds nothing (WANT_READ at once), and the
 * last one (the client's Finished, then the session tickets) is cheap: both
 * stay on the loop.  A second ClientHello after a HelloRetryRequest is
 * taken on the loop too (rare: clients send an X25519 or P-256 share). */
static int hs_offload(const struct conn *c)
{
    char b;
    if (!c->pool || !c->server || SSL_get_state(c->ssl) != TLS_ST_BEFORE)
        return 0;
    return recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

static void hs_step(struct conn *c)
{
    if (c->hs_busy)
        return;
    if (hs_offload(c)) {
        c->hs_busy = 1;
        want_write(c, 0);
        update_io(c);            /* no fd event while the step runs */
        if (work_submit(c->pool, WORK_TLS, hs_job, hs_job_done, c) == 0)
            return;
        c->hs_busy = 0;          /* the pool is stopping: do it here */
    }
    hs_run(c);
    hs_result(c, c->hs_ret, c->hs_err, c->hs_why);
}

static void start_handshake(struct conn *c)
{
    c->tls = TLS_HANDSHAKE;
    update_io(c);
    hs_step(c);
}

int conn_starttls(struct conn *c, SSL_CTX *ctx, int server, const char *sni)
{
    if (c->tls != TLS_NONE || c->failed || !ctx)
        return -1;
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return -1;
    if (SSL_set_fd(ssl, c->fd) != 1 || (!server && sni && SSL_set_tlsext_host_name(ssl, sni) != 1)) {
        SSL_free(ssl);
        return -1;
    }
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* one read call takes every record waiting, not a header and then a
     * body per record (tls_input_held says when OpenSSL holds some) */
    SSL_set_read_ahead(ssl, 1);
    if (c->rd_k > CONN_READ_MAX_K_TLS)
        c->rd_k = CONN_READ_MAX_K_TLS;   /* grown on plaintext before */
    if (server)
        SSL_set_accept_state(ssl);
    else
        SSL_set_connect_state(ssl);
    c->ssl = ssl;
    c->server = server;
    /* plaintext that came before the handshake is never a command */
    evbuffer_drain(c->in, evbuffer_get_length(c->in));
    c->plain_left = evbuffer_get_length(c->out);
    c->tls = TLS_WAIT_FLUSH;
    update_io(c);
    event_active(&c->ev_kick, 0, 0);   /* from the loop: flush, then handshake */
    return 0;
}

/* ------------------------------------------------------------ event handlers */

static void readable(struct conn *c)
{
    if (c->tls == TLS_HANDSHAKE) {
        hs_step(c);
        return;
    }
    if (c->wr_wants_rd) {
        c->wr_wants_rd = 0;
        do_flush(c);
        if (c->dead || c->failed)
            return;
        update_io(c);
    }
    if (reading_wanted(c))
        do_read(c);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    enter(c);
    readable(c);
    leave(c);
}

static void writable(struct conn *c)
{
    if (c->tls == TLS_HANDSHAKE) {
        hs_step(c);
        return;
    }
    if (c->rd_wants_wr) {
        c->rd_wants_wr = 0;
        want_write(c, evbuffer_get_length(c->out) > 0);
        do_read(c);
        if (c->dead || c->failed)
            return;
    }
    do_flush(c);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    enter(c);
    writable(c);
    leave(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    c->timer_on = 0;
    enter(c);
    /* again after another idle period if the protocol still waits (say a
     * last reply the peer never reads: then it frees) */
    if (report(c, CONN_TIMEOUT) == 0)
        timer_update(c, 0);
    leave(c);
}

/* Deferred work, from the loop: the pass's flush, a resumed read, the
 * start of a handshake, a drain report. */
static void kicked(struct conn *c)
{
    if (c->dead || c->failed)
        return;
    if (!c->wr_on && !c->wr_wants_rd)
        do_flush(c);             /* also starts a waiting handshake */
    if (c->dead || c->failed || !c->kick_read)
        return;
    c->kick_read = 0;
    if (c->tls == TLS_UP && !c->rd_wants_wr && tls_input_held(c) && reading_wanted(c))
        do_read(c);
    else if (c->user_read && evbuffer_get_length(c->in) > 0 &&
             (c->tls == TLS_NONE || c->tls == TLS_UP))
        report(c, CONN_READ);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    enter(c);
    kicked(c);
    leave(c);
}

/* ------------------------------------------------------------ buffer hooks */

static void on_output_change(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    struct conn *c = arg;
    size_t len = evbuffer_get_length(b);
    if (info->n_added > 0 && !c->wr_on && !c->dead)
        event_active(&c->ev_kick, 0, 0);     /* one flush per loop pass */
    int was = c->out_blocked;
    if (len > c->lim.output_high)
        c->out_blocked = 1;
    else if (len <= c->lim.output_high / 3)
        c->out_blocked = 0;
    if (was != c->out_blocked && !c->dead)
        update_io(c);
}

static void on_input_change(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    struct conn *c = arg;
    (void)b;
    /* the protocol drained a full buffer: read again */
    if (info->n_deleted > 0 && !c->rd_on && !c->dead)
        update_io(c);
}

/* ------------------------------------------------------------ life cycle */

struct conn *conn_new(struct event_base *base, int fd, const struct conn_limits *lim,
                      conn_cb cb, void *arg)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->base = base;
    c->fd = fd;
    c->cb = cb;
    c->arg = arg;
    c->lim = *lim;
    c->rd_k = CONN_READ_MIN_K;
    if (c->lim.input_max == 0)
        c->lim.input_max = 64 * 1024;
    if (c->lim.read_max == 0)
        c->lim.read_max = 256 * 1024;
    if (c->lim.output_high == 0)
        c->lim.output_high = 256 * 1024;
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    if (!c->in || !c->out || !evbuffer_add_cb(c->out, on_output_change, c) ||
        !evbuffer_add_cb(c->in, on_input_change, c)) {
        if (c->in)
            evbuffer_free(c->in);
        if (c->out)
            evbuffer_free(c->out);
        free(c);
        return NULL;
    }
    event_assign(&c->ev_rd, base, fd, EV_READ | EV_PERSIST, on_readable, c);
    event_assign(&c->ev_wr, base, fd, EV_WRITE | EV_PERSIST, on_writable, c);
    evtimer_assign(&c->ev_timer, base, on_timer, c);
    event_assign(&c->ev_kick, base, -1, 0, on_kick, c);
    c->user_read = 1;
    update_io(c);
    return c;
}

void conn_free(struct conn *c)
{
    if (!c || c->dead)
        return;
    c->dead = 1;
    event_del(&c->ev_rd);
    event_del(&c->ev_wr);
    event_del(&c->ev_timer);
    event_del(&c->ev_kick);
    evbuffer_remove_cb(c->out, on_output_change, c);
    evbuffer_remove_cb(c->in, on_input_change, c);
    if (c->ssl && c->tls == TLS_UP && !c->failed)
        (void)SSL_shutdown(c->ssl);   /* best effort close_notify, never waits */
    if (c->in_cb == 0 && !c->hs_busy)
        really_free(c);
}

/* ------------------------------------------------------------ accessors */

struct evbuffer *conn_input(struct conn *c) { return c->in; }
struct evbuffer *conn_output(struct conn *c) { return c->out; }
int conn_output_full(const struct conn *c) { return c->out_blocked; }
int conn_eof(const struct conn *c) { return c->eof; }
int conn_is_tls(const struct conn *c) { return c->tls == TLS_UP; }
const char *conn_error(const struct conn *c) { return c->err; }
unsigned long long conn_bytes_in(const struct conn *c) { return c->nin; }
unsigned long long conn_bytes_out(const struct conn *c) { return c->nout; }

const char *conn_tls_version(const struct conn *c)
{
    return c->tls == TLS_UP ? SSL_get_version(c->ssl) : NULL;
}

const char *conn_tls_cipher(const struct conn *c)
{
    return c->tls == TLS_UP ? SSL_get_cipher_name(c->ssl) : NULL;
}

void conn_tls_describe(const struct conn *c, char *buf, size_t len)
{
    if (c->tls == TLS_UP)
        tls_info_format(c->ssl, buf, len);
    else if (len)
        buf[0] = '\0';
}

int conn_tls_bits(const struct conn *c)
{
    return c->tls == TLS_UP ? SSL_get_cipher_bits(c->ssl, NULL) : 0;
}

/* RFC 5929 §4.1: the certificate's signature hash, SHA-256 for MD5/SHA-1. */
static int end_point_hash(X509 *cert, unsigned char *buf, size_t len)
{
    int mdnid = NID_undef;
    if (!X509_get_signature_info(cert, &mdnid, NULL, NULL, NULL) || mdnid == NID_undef)
        return -1;               /* Ed25519 and others: no hash defined */
    if (mdnid == NID_md5 || mdnid == NID_sha1)
        mdnid = NID_sha256;
    const EVP_MD *md = EVP_get_digestbynid(mdnid);
    unsigned int n = 0;
    if (!md || (size_t)EVP_MD_get_size(md) > len || !X509_digest(cert, md, buf, &n))
        return -1;
    return (int)n;
}

int conn_tls_channel_binding(const struct conn *c, const char **type, unsigned char *buf,
                             size_t len)
{
    if (c->tls != TLS_UP)
        return -1;
    if (SSL_version(c->ssl) >= TLS1_3_VERSION) {
        static const char label[] = "EXPORTER-Channel-Binding";
        if (len < 32 ||
            SSL_export_keying_material(c->ssl, buf, 32, label, sizeof label - 1, NULL, 0, 0) != 1)
            return -1;
        *type = "tls-exporter";
        return 32;
    }
    X509 *cert = c->server ? SSL_get_certificate(c->ssl) : SSL_get0_peer_certificate(c->ssl);
    int n = cert ? end_point_hash(cert, buf, len) : -1;
    if (n > 0)
        *type = "tls-server-end-point";
    return n;
}

void conn_read_enable(struct conn *c, int on)
{
    if (c->dead)
        return;
    c->user_read = on ? 1 : 0;
    update_io(c);
    if (on && evbuffer_get_length(c->in) > 0) {
        c->kick_read = 1;
        event_active(&c->ev_kick, 0, 0);
    }
}

void conn_set_input_max(struct conn *c, size_t max)
{
    c->lim.input_max = max ? max : 1;
    update_io(c);
}

void conn_set_timeout(struct conn *c, int ms)
{
    c->lim.timeout_ms = ms;
    timer_update(c, 1);
}

void conn_set_min_rate(struct conn *c, long long octets_per_s)
{
    c->min_rate = octets_per_s > 0 ? octets_per_s : 0;
    c->deadline_us = time_mono_us() + (long long)c->lim.timeout_ms * 1000;
    timer_update(c, 1);
}

void conn_set_work_pool(struct conn *c, struct work_pool *pool)
{
    c->pool = pool;
}

void conn_want_drain(struct conn *c)
{
    if (c->dead)
        return;
    c->want_drain = 1;
    event_active(&c->ev_kick, 0, 0);
}
