/*
 * t/unit/test_conn.c — the connection object over real sockets
 * (socketpair): reads and the input cap, output back-pressure, replies
 * after a half-close, the idle timeout, conn_free inside a callback, and
 * TLS: STARTTLS on both sides with plaintext pipelined behind STARTTLS
 * discarded, a big transfer through a small input cap (octets OpenSSL holds
 * decrypted must still be read), a handshake that fails, and handshakes
 * whose steps run in the worker pool (off the loop; a conn freed while one
 * waits there); what a read costs: the read step follows the traffic (a
 * conn reading short lines takes a few KiB of heap, not the 128 KiB a
 * 64 KiB libevent chain is), and a TLS conn holding the start of a record
 * (read-ahead) waits for the fd instead of spinning.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "lib/work.h"
#include "proto/conn.h"
#include "t/unit/tap.h"
#include "t/unit/tls_pair.h"

static struct event_base *base;

struct side {
    struct conn *c;
    int events[8];              /* counts per enum conn_event */
    size_t got;                 /* octets taken from the input */
    size_t take_max;            /* per CONN_READ (0 = all) */
    int consume;                /* take input at all */
    int free_on_read;
    char text[4096];            /* the first octets taken */
    size_t textlen;
    void (*hook)(struct side *s, enum conn_event ev);
    int peer;                   /* the other end, for tests that write to it */
};

static void on_event(struct conn *c, enum conn_event ev, void *arg)
{
    struct side *s = arg;
    s->events[ev]++;
    if (ev == CONN_READ && s->consume) {
        struct evbuffer *in = conn_input(c);
        size_t n = evbuffer_get_length(in);
        if (s->take_max && n > s->take_max)
            n = s->take_max;
        size_t room = sizeof s->text - s->textlen;
        size_t copy = n < room ? n : room;
        evbuffer_copyout(in, s->text + s->textlen, copy);
        s->textlen += copy;
        evbuffer_drain(in, n);
        s->got += n;
    }
    if (s->hook)
        s->hook(s, ev);
    if (ev == CONN_READ && s->free_on_read) {
        conn_free(c);
        s->c = NULL;
    }
}

static void nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void pair(int fds[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0)
        abort();
    nonblock(fds[0]);
    nonblock(fds[1]);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run the loop until pred() or ms pass. */
static int run_until(int (*pred)(void *), void *arg, int ms)
{
    long long end = now_ms() + ms;
    while (now_ms() < end) {
        if (pred(arg))
            return 1;
        struct timeval tv = { 0, 5000 };
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    return pred(arg);
}

static int never(void *arg)
{
    (void)arg;
    return 0;
}

static void spin(int ms)
{
    run_until(never, NULL, ms);
}

static struct conn_limits limits(size_t input_max, size_t output_high, int timeout_ms)
{
    struct conn_limits l = { input_max, output_high, 256 * 1024, timeout_ms };
    return l;
}

/* ------------------------------------------------------------ plaintext */

static int got_at_least_10(void *arg) { return ((struct side *)arg)->got >= 10; }

static void test_read_and_cap(void)
{
    int fds[2];
    pair(fds);
    struct side s = { 0 };
    struct conn_limits l = limits(16, 1024, 0);
    s.c = conn_new(base, fds[0], &l, on_event, &s);
    char buf[100];
    memset(buf, 'a', sizeof buf);
    ok(write(fds[1], buf, sizeof buf) == 100, "client wrote 100 octets");
    spin(50);
    ok(s.events[CONN_READ] >= 1, "CONN_READ reported");
    is_int((int)evbuffer_get_length(conn_input(s.c)), 16, "input stops at input_max (16)");
    s.consume = 1;
    evbuffer_drain(conn_input(s.c), 16);
    s.got = 16;
    ok(run_until(got_at_least_10, &s, 500) && (spin(50), s.got == 100),
       "draining the input resumes reading: all 100 octets arrive (%zu)", s.got);
    conn_free(s.c);
    close(fds[1]);
}

/* Heap in use while a conn holds a short line it has read: the read
 * step starts small.  A fixed 64 KiB step made libevent allocate a
 * 128 KiB chain for every read (its header rounds the chain up). */
static int got_any(void *arg) { return evbuffer_get_length(conn_input(((struct side *)arg)->c)) > 0; }

static void test_read_step(void)
{
    int fds[2];
    pair(fds);
    struct side s = { 0 };
    struct conn_limits l = limits(64 * 1024, 1024, 0);
    s.c = conn_new(base, fds[0], &l, on_event, &s);
    size_t before = mallinfo2().uordblks;
    ok(write(fds[1], "250 2.0.0 Ok: queued\r\n", 22) == 22, "peer wrote a 22-octet reply");
    ok(run_until(got_any, &s, 500), "the conn read it");
    size_t held = mallinfo2().uordblks - before;
    ok(held <= 8 * 1024, "a short read holds %zu octets of heap (at most 8 KiB)", held);
    /* a stream that fills its reads (the step grows to 64 KiB) arrives whole */
    s.consume = 1;
    s.textlen = sizeof s.text;       /* keep no copy */
    evbuffer_drain(conn_input(s.c), 22);
    static char big[1 << 20];
    memset(big, 'x', sizeof big);
    size_t off = 0;
    while (off < sizeof big) {
        ssize_t n = write(fds[1], big + off, sizeof big - off);
        if (n > 0)
            off += (size_t)n;
        spin(1);
    }
    spin(50);
    ok(s.got == sizeof big, "then 1 MiB arrived (%zu)", s.got);
    conn_free(s.c);
    close(fds[1]);
}

static void test_backpressure(void)
{
    int fds[2];
    pair(fds);
    struct side s = { 0 };
    s.consume = 1;
    struct conn_limits l = limits(4096, 64 * 1024, 0);
    s.c = conn_new(base, fds[0], &l, on_event, &s);
    static char big[1024 * 1024];
    memset(big, 'b', sizeof big);
    evbuffer_add(conn_output(s.c), big, sizeof big);   /* the peer reads nothing */
    spin(50);
    ok(conn_output_full(s.c), "output above output_high");
    ok(write(fds[1], "x", 1) == 1, "client sends a command");
    spin(50);
    is_int((int)s.got, 0, "nothing is read while the output is full");
    size_t total = 0;
    for (int i = 0; i < 2000 && total < sizeof big; i++) {
        char rb[65536];
        ssize_t r = read(fds[1], rb, sizeof rb);
        if (r > 0)
            total += (size_t)r;
        spin(5);
    }
    is_int((int)total, (int)sizeof big, "the peer got the whole megabyte");
    spin(20);
    ok(!conn_output_full(s.c) && s.got == 1, "below a third the conn reads again");
    conn_free(s.c);
    close(fds[1]);
}

static void reply_on_eof(struct side *s, enum conn_event ev)
{
    if (ev == CONN_EOF)
        evbuffer_add(conn_output(s->c), "bye\r\n", 5);
}

static void test_half_close(void)
{
    int fds[2];
    pair(fds);
    struct side s = { 0 };
    s.consume = 1;
    s.hook = reply_on_eof;
    struct conn_limits l = limits(4096, 65536, 0);
    s.c = conn_new(base, fds[0], &l, on_event, &s);
    ok(write(fds[1], "QUIT\r\n", 6) == 6 && shutdown(fds[1], SHUT_WR) == 0, "client half-closes");
    spin(50);
    ok(s.events[CONN_READ] == 1 && s.events[CONN_EOF] == 1 && s.got == 6,
       "CONN_READ with the last command, then CONN_EOF");
    char rb[16] = "";
    ssize_t r = read(fds[1], rb, sizeof rb);
    ok(r == 5 && !memcmp(rb, "bye\r\n", 5), "the reply after the half-close is written");
    conn_free(s.c);
    close(fds[1]);
}

static int timed_out(void *arg) { return ((struct side *)arg)->events[CONN_TIMEOUT] > 0; }

/* A protocol answers a timeout and stops reading. */
static void stop_on_timeout(struct side *s, enum conn_event ev)
{
    if (ev == CONN_TIMEOUT)
        conn_read_enable(s->c, 0);
}

static void test_timeout(void)
{
    int fds[2];
    pair(fds);
    struct side s = { 0 };
    s.consume = 1;
    struct conn_limits l = limits(4096, 65536, 150);
    s.hook = stop_on_timeout;
    s.c = conn_new(base, fds[0], &l, on_event, &s);
    spin(100);
    ok(write(fds[1], "a", 1) == 1, "progress");
    spin(100);
    is_int(s.events[CONN_TIMEOUT], 0, "progress restarts the idle timer");
    ok(run_until(timed_out, &s, 1000), "CONN_TIMEOUT after 150 ms of nothing");
    spin(300);
    is_int(s.events[CONN_TIMEOUT], 1, "once the protocol stops reading, no more timeouts");
    evbuffer_add(conn_output(s.c), "421 timeout\r\n", 13);
    static char fill[1 << 20];
    evbuffer_add(conn_output(s.c), fill, sizeof fill);   /* the peer reads none of it */
    spin(400);
    ok(s.events[CONN_TIMEOUT] >= 2, "output that cannot leave times out again (%d)",
       s.events[CONN_TIMEOUT]);
    conn_free(s.c);
    close(fds[1]);
}

/* Drip-feeding: 10 octets every 100 ms (100 B/s) against a 500 ms
 * timeout.  With the idle timer alone every octet restarts it, so it never
 * fires; with a minimum rate of 1000 B/s each 10 octets buy 10 ms for 100 ms
 * spent, and the budget runs out.  A sender above the rate is never cut. */
static int drip(struct side *s, int fd, int rate, int steps, int chunk)
{
    struct conn_limits l = limits(1 << 20, 65536, 500);
    s->consume = 1;
    s->c = conn_new(base, fd, &l, on_event, s);
    conn_set_min_rate(s->c, rate);
    char buf[256];
    memset(buf, 'd', sizeof buf);
    for (int i = 0; i < steps && s->events[CONN_TIMEOUT] == 0; i++) {
        spin(100);
        if (write(fd == -1 ? -1 : s->peer, buf, (size_t)chunk) != chunk)
            break;
    }
    spin(100);
    return s->events[CONN_TIMEOUT];
}

static void test_min_rate(void)
{
    int fds[2];
    struct side s = { 0 };
    pair(fds);
    s.peer = fds[1];
    ok(drip(&s, fds[0], 0, 12, 10) == 0, "without a rate a dripping peer is never cut (1.2 s)");
    conn_free(s.c);
    close(fds[1]);
    memset(&s, 0, sizeof s);
    pair(fds);
    s.peer = fds[1];
    int cut = drip(&s, fds[0], 1000, 12, 10);
    ok(cut > 0, "below the minimum rate the budget runs out (after %zu octets)", s.got);
    conn_free(s.c);
    close(fds[1]);
    memset(&s, 0, sizeof s);
    pair(fds);
    s.peer = fds[1];
    ok(drip(&s, fds[0], 1000, 12, 200) == 0, "a sender above the rate keeps its time");
    conn_free(s.c);
    close(fds[1]);
}

static void test_free_in_callback(void)
{
    int fds[2];
    pair(fds);
    struct side s = { 0 };
    s.consume = 1;
    s.free_on_read = 1;
    struct conn_limits l = limits(4096, 65536, 0);
    s.c = conn_new(base, fds[0], &l, on_event, &s);
    ok(write(fds[1], "abc", 3) == 3 && shutdown(fds[1], SHUT_WR) == 0, "data and EOF together");
    spin(50);
    ok(s.c == NULL && s.events[CONN_READ] == 1 && s.events[CONN_EOF] == 0,
       "freed in CONN_READ: nothing reported after (ASan checks the memory)");
    char rb[4];
    ok(read(fds[1], rb, sizeof rb) == 0, "and the socket is closed");
    close(fds[1]);
}

static int resumed(void *arg) { return ((struct side *)arg)->got == 5; }

static void test_pause_resume(void)
{
    int fds[2];
    pair(fds);
    struct side s = { 0 };
    struct conn_limits l = limits(4096, 65536, 0);
    s.c = conn_new(base, fds[0], &l, on_event, &s);
    conn_read_enable(s.c, 0);
    ok(write(fds[1], "hello", 5) == 5, "client writes while paused");
    spin(50);
    ok(s.events[CONN_READ] == 0, "nothing reported while paused");
    s.consume = 1;
    conn_read_enable(s.c, 1);
    ok(run_until(resumed, &s, 500), "resuming reads and reports");
    conn_free(s.c);
    close(fds[1]);
}

/* ------------------------------------------------------------ TLS */

static SSL_CTX *server_ctx, *client_ctx;

static void make_ctxs(void)
{
    tls_pair_make(&server_ctx, &client_ctx);
}

/* Server: the first line "STARTTLS\r\n" gets "220 go\r\n" and TLS starts;
 * whatever followed in the same read must be gone. */
static void server_hook(struct side *s, enum conn_event ev)
{
    if (ev == CONN_READ && s->events[CONN_TLS_READY] == 0 && s->textlen >= 10 &&
        !memcmp(s->text, "STARTTLS\r\n", 10) && s->events[CONN_READ] == 1) {
        s->take_max = 0;         /* took one line; the rest is the conn's */
        evbuffer_add(conn_output(s->c), "220 go\r\n", 8);
        if (conn_starttls(s->c, server_ctx, 1, NULL) < 0)
            abort();
    }
}

static void client_hook(struct side *s, enum conn_event ev)
{
    if (ev == CONN_READ && s->events[CONN_TLS_READY] == 0 && s->textlen >= 8 &&
        !memcmp(s->text, "220 go\r\n", 8)) {
        if (conn_starttls(s->c, client_ctx, 0, "mx.test") < 0)
            abort();
    }
    if (ev == CONN_TLS_READY)
        evbuffer_add(conn_output(s->c), "EHLO after\r\n", 12);
}

struct two { struct side *a, *b; size_t want; };

static int both_tls(void *arg)
{
    struct two *t = arg;
    return t->a->events[CONN_TLS_READY] && t->b->events[CONN_TLS_READY] &&
           t->a->got >= t->want;
}

static void test_starttls(void)
{
    int fds[2];
    pair(fds);
    struct side sv = { 0 }, cl = { 0 };
    sv.consume = cl.consume = 1;
    sv.hook = server_hook;
    sv.take_max = 10;            /* like a line reader: "STARTTLS\r\n" only */
    cl.hook = client_hook;
    struct conn_limits l = limits(4096, 65536, 2000);
    sv.c = conn_new(base, fds[0], &l, on_event, &sv);
    cl.c = conn_new(base, fds[1], &l, on_event, &cl);
    /* the client pipelines a command behind STARTTLS (CVE-2011-0411) */
    evbuffer_add(conn_output(cl.c), "STARTTLS\r\nMAIL FROM:<evil>\r\n", 28);
    struct two t = { &sv, &cl, 10 + 12 };
    sv.textlen = 0;
    ok(run_until(both_tls, &t, 3000) || (sv.got >= 10 && sv.events[CONN_TLS_READY]),
       "STARTTLS on both sides");
    spin(50);
    ok(conn_is_tls(sv.c) && conn_is_tls(cl.c), "both conns are TLS");
    ok(conn_tls_version(sv.c) && !strcmp(conn_tls_version(sv.c), "TLSv1.3"),
       "TLS 1.3 (%s, %s)", conn_tls_version(sv.c), conn_tls_cipher(sv.c));
    /* the server's text: "STARTTLS\r\n" + whatever it read after TLS */
    ok(sv.textlen >= 10 + 12 && !memcmp(sv.text + 10, "EHLO after\r\n", 12),
       "after the handshake the server reads the client's first TLS line");
    ok(memmem(sv.text, sv.textlen, "evil", 4) == NULL,
       "the pipelined plaintext after STARTTLS was never taken as input");
    conn_free(sv.c);
    conn_free(cl.c);
}

static int got_all(void *arg) { struct two *t = arg; return t->a->got >= t->want; }

static void start_server_tls(struct side *s, enum conn_event ev)
{
    (void)s;
    (void)ev;
}

static void test_tls_bulk_small_input(void)
{
    int fds[2];
    pair(fds);
    struct side sv = { 0 }, cl = { 0 };
    sv.consume = cl.consume = 1;
    sv.hook = start_server_tls;
    struct conn_limits ls = limits(1000, 65536, 5000);   /* records are 16 KiB */
    struct conn_limits lc = limits(65536, 4 << 20, 5000);
    sv.c = conn_new(base, fds[0], &ls, on_event, &sv);
    cl.c = conn_new(base, fds[1], &lc, on_event, &cl);
    ok(conn_starttls(sv.c, server_ctx, 1, NULL) == 0 &&
       conn_starttls(cl.c, client_ctx, 0, NULL) == 0, "implicit TLS on both sides");
    static char big[1024 * 1024];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    struct two t = { &sv, &cl, sizeof big };
    evbuffer_add(conn_output(cl.c), big, sizeof big);
    ok(run_until(got_all, &t, 10000), "a megabyte through TLS into a 1000-octet input (%zu)",
       sv.got);
    ok(sv.events[CONN_ERROR] == 0 && cl.events[CONN_ERROR] == 0, "no errors");
    conn_free(sv.c);
    conn_free(cl.c);
}

static int errored(void *arg) { return ((struct side *)arg)->events[CONN_ERROR] > 0; }

/* Two consuming conns over a socketpair, both starting implicit TLS (the
 * server's handshake steps in pool, if one is given). */
static int tls_conns(struct side *sv, struct side *cl, size_t input_max, SSL_CTX *sctx,
                     SSL_CTX *cctx, struct work_pool *pool)
{
    int fds[2];
    pair(fds);
    sv->consume = cl->consume = 1;
    struct conn_limits l = limits(input_max, 65536, 5000);
    sv->c = conn_new(base, fds[0], &l, on_event, sv);
    cl->c = conn_new(base, fds[1], &l, on_event, cl);
    sv->peer = fds[1];
    if (pool)
        conn_set_work_pool(sv->c, pool);
    return conn_starttls(sv->c, sctx, 1, NULL) == 0 && conn_starttls(cl->c, cctx, 0, NULL) == 0;
}

static int both_up(void *arg)
{
    struct two *t = arg;
    return conn_is_tls(t->a->c) && conn_is_tls(t->b->c);
}

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* With read-ahead OpenSSL holds what it read past a record; when that is
 * the start of a record only (its header and a few octets), the conn
 * must wait for the fd: kicking another read for it spins the loop. */
static void test_tls_partial_record_waits(void)
{
    struct side sv = { 0 }, cl = { 0 };
    ok(tls_conns(&sv, &cl, 4096, server_ctx, client_ctx, NULL), "implicit TLS on both sides");
    struct two t = { &sv, &cl, 0 };
    ok(run_until(both_up, &t, 3000), "handshake done");
    evbuffer_add(conn_output(cl.c), "NOOP\r\n", 6);
    t.want = 6;
    ok(run_until(got_all, &t, 2000), "a line through TLS");
    /* the start of an application-data record: header (length 100) and 10 octets */
    static const unsigned char part[15] = { 0x17, 0x03, 0x03, 0x00, 0x64 };
    ok(write(sv.peer, part, sizeof part) == (ssize_t)sizeof part, "peer sent part of a record");
    double c0 = cpu_ms();
    spin(200);
    double used = cpu_ms() - c0;
    ok(used < 100, "waiting 200 ms for the rest took %.0f ms of CPU (no spinning)", used);
    ok(sv.events[CONN_ERROR] == 0, "no error yet: the record is incomplete");
    conn_free(sv.c);
    conn_free(cl.c);
}

static void test_handshake_failure(void)
{
    int fds[2];
    pair(fds);
    struct side sv = { 0 };
    struct conn_limits l = limits(4096, 65536, 5000);
    sv.c = conn_new(base, fds[0], &l, on_event, &sv);
    ok(conn_starttls(sv.c, server_ctx, 1, NULL) == 0, "server waits for a ClientHello");
    ok(write(fds[1], "EHLO plaintext\r\n", 16) == 16, "client speaks plaintext");
    ok(run_until(errored, &sv, 2000), "CONN_ERROR: %s", conn_error(sv.c));
    ok(strstr(conn_error(sv.c), "TLS handshake") != NULL, "the error names the handshake");
    is_int(sv.events[CONN_READ], 0, "nothing was read as input");
    conn_free(sv.c);
    close(fds[1]);
}

/* ------------------------------------------------------------ handshakes in the pool */

static pthread_t loop_thread;
static atomic_int hs_on_loop, hs_off_loop;

/* The server's expensive states (the ServerHello with the key exchange,
 * the CertificateVerify signature): on which thread? */
static void count_thread(const SSL *ssl, int where, int ret)
{
    (void)ret;
    OSSL_HANDSHAKE_STATE st = SSL_get_state(ssl);
    if ((where & SSL_CB_LOOP) && (st == TLS_ST_SW_SRVR_HELLO || st == TLS_ST_SW_CERT_VRFY))
        atomic_fetch_add(pthread_equal(pthread_self(), loop_thread) ? &hs_on_loop : &hs_off_loop, 1);
}

static int pool_idle(void *arg) { return work_pending(arg) == 0; }

static void test_handshake_in_pool(void)
{
    SSL_CTX *sctx, *cctx;
    tls_pair_make(&sctx, &cctx);
    SSL_CTX_set_info_callback(sctx, count_thread);
    loop_thread = pthread_self();
    struct work_pool *pool = work_pool_new(base, 2);
    struct side sv = { 0 }, cl = { 0 };
    ok(tls_conns(&sv, &cl, 65536, sctx, cctx, pool),
       "implicit TLS, the server's handshake in the pool");
    static char data[256 * 1024];
    memset(data, 'x', sizeof data);
    evbuffer_add(conn_output(cl.c), data, sizeof data);
    struct two t = { &sv, &cl, sizeof data };
    int all = run_until(got_all, &t, 10000);
    ok(all && sv.events[CONN_TLS_READY] == 1, "handshake done and 256 KiB read after it (%zu)",
       sv.got);
    ok(atomic_load(&hs_off_loop) == 2 && atomic_load(&hs_on_loop) == 0,
       "ServerHello and CertificateVerify were made off the loop (%d on a worker, %d on the loop)",
       atomic_load(&hs_off_loop), atomic_load(&hs_on_loop));
    ok(sv.events[CONN_ERROR] == 0 && cl.events[CONN_ERROR] == 0, "no errors");
    conn_free(sv.c);
    conn_free(cl.c);
    /* a failing handshake reports its error from the pool's step */
    int fds[2];
    pair(fds);
    struct conn_limits l = limits(65536, 65536, 5000);
    struct side bad = { 0 };
    bad.c = conn_new(base, fds[0], &l, on_event, &bad);
    conn_set_work_pool(bad.c, pool);
    ok(conn_starttls(bad.c, sctx, 1, NULL) == 0 && write(fds[1], "EHLO plain\r\n", 12) == 12,
       "a plaintext client at a pooled handshake");
    ok(run_until(errored, &bad, 3000) && strstr(conn_error(bad.c), "TLS handshake"),
       "CONN_ERROR with OpenSSL's reason from the worker: %s", conn_error(bad.c));
    conn_free(bad.c);
    close(fds[1]);
    run_until(pool_idle, pool, 2000);
    work_pool_free(pool);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}

static atomic_int gate_open;
static void gated(void *arg)
{
    (void)arg;
    while (!atomic_load(&gate_open))
        usleep(1000);
}

static int two_pending(void *arg) { return work_pending(arg) >= 2; }

/* conn_free while a step waits or runs in the pool: the SSL handle and the
 * memory stay until the step is back (ASan reports the use after free
 * otherwise), and nothing is reported after the free. */
static void test_free_during_pooled_step(void)
{
    struct work_pool *pool = work_pool_new(base, 1);
    atomic_store(&gate_open, 0);
    work_submit(pool, WORK_SCAN, gated, NULL, NULL);   /* holds the only thread */
    int fds[2];
    pair(fds);
    struct side sv = { 0 }, cl = { 0 };
    struct conn_limits l = limits(4096, 65536, 5000);
    sv.c = conn_new(base, fds[0], &l, on_event, &sv);
    cl.c = conn_new(base, fds[1], &l, on_event, &cl);
    conn_set_work_pool(sv.c, pool);
    ok(conn_starttls(sv.c, server_ctx, 1, NULL) == 0 &&
       conn_starttls(cl.c, client_ctx, 0, NULL) == 0, "handshake started, ClientHello sent");
    ok(run_until(two_pending, pool, 2000), "the server's ClientHello step waits in the pool");
    conn_free(sv.c);
    atomic_store(&gate_open, 1);
    ok(run_until(pool_idle, pool, 3000), "the step ran after the conn was freed");
    int any = 0;
    for (int e = 0; e < 8; e++)
        any += sv.events[e];
    is_int(any, 0, "and nothing was reported");
    work_pool_free(pool);
    conn_free(cl.c);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    test_read_and_cap();
    test_read_step();
    test_backpressure();
    test_half_close();
    test_timeout();
    test_free_in_callback();
    test_min_rate();
    test_pause_resume();
    make_ctxs();
    test_starttls();
    test_tls_bulk_small_input();
    test_tls_partial_record_waits();
    test_handshake_failure();
    test_handshake_in_pool();
    test_free_during_pooled_step();
    SSL_CTX_free(server_ctx);
    SSL_CTX_free(client_ctx);
    event_base_free(base);
    return tap_done();
}
