/*
 * t/unit/test_smtp_client.c — proto/smtp_client.c against a scripted SMTP
 * server in this process (a loopback listener on the same event loop,
 * itself on proto/conn + lineio): per-recipient 250/4xx/5xx in one
 * transaction, pipelining and its absence, 421 and 554 greetings, EHLO
 * refused → HELO, SIZE too small (5.3.4 before MAIL), SMTPUTF8 missing,
 * MAIL refused, every RCPT refused, 421 mid-transaction, a server that
 * stalls mid-DATA (timeout), STARTTLS with a self-signed certificate made
 * here, TLS required but not offered, dot-stuffing and bare CR/LF
 * normalised on the wire, over-long and over-many reply lines, reuse with
 * RSET, QUIT, connection refused, the client freed in its callback, the
 * content read in the worker pool; the DATA encoder trickle-tested; and
 * Postfix's smtp-sink receiving a message (when /usr/sbin/smtp-sink exists).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "lib/work.h"
#include "proto/conn.h"
#include "proto/lineio.h"
#include "proto/smtp_client.h"
#include "t/unit/tap.h"
#include "t/unit/tls_pair.h"

static struct event_base *base;
static SSL_CTX *server_ctx, *client_ctx;

/* ------------------------------------------------------------ the scripted server */

struct script {
    const char *greeting;         /* default "220 sink ESMTP" */
    int ehlo_refused;             /* 502 to EHLO */
    int no_pipelining;
    long long size;               /* SIZE offered (0: "SIZE" without a limit) */
    int starttls;                 /* offer STARTTLS */
    int stall_data;               /* stop reading after the 354 */
    int smtputf8;
    const char *mail_reply;       /* default "250 2.1.0 Ok" */
    int data_354_always;          /* 354 even with no recipient accepted */
    const char *ehlo_raw;         /* the whole EHLO reply, CRLFs included */
    int starttls_refuse;          /* 454 to STARTTLS */
    int no_final;                 /* read the data, never answer it */
    int silent;                   /* accept, never greet */
    int starttls_garbage;         /* 220 to STARTTLS, then plaintext instead of TLS */
    const char *auth;             /* the AUTH keyword's mechanisms ("PLAIN LOGIN") */
    int auth_refuse;              /* 535 to every AUTH */
    const char *rset_reply;       /* default "250 2.0.0 Ok" */
};

struct server {
    struct script sc;
    int lfd;
    struct event *lev;
    struct conn *c;
    struct line_reader lr;
    int in_data;
    struct evbuffer *raw;         /* the DATA octets as they came */
    char log[8192];               /* every command line, '\n' after each */
    int ehlos, mails, rcpts_ok;
    int mail_pipelined;           /* at MAIL, RCPTs and DATA were already there */
    int waited;                   /* each command came alone (no pipelining) */
    int cmds;
    int port;
    int auth_step;                /* AUTH LOGIN: 1 username due, 2 password due */
    int authed;                   /* user "u" / password "p w" was accepted */
};

static struct server S;

static void srv_reply(const char *text)
{
    evbuffer_add_printf(conn_output(S.c), "%s\r\n", text);
}

static void srv_ehlo(void)
{
    S.ehlos++;
    if (S.sc.ehlo_raw) {
        evbuffer_add(conn_output(S.c), S.sc.ehlo_raw, strlen(S.sc.ehlo_raw));
        return;
    }
    if (S.sc.ehlo_refused) {
        srv_reply("502 5.5.2 Error: command not recognized");
        return;
    }
    srv_reply("250-sink.test");
    if (!S.sc.no_pipelining)
        srv_reply("250-PIPELINING");
    if (S.sc.size)
        evbuffer_add_printf(conn_output(S.c), "250-SIZE %lld\r\n", S.sc.size);
    else
        srv_reply("250-SIZE");
    if (S.sc.starttls && !conn_is_tls(S.c))
        srv_reply("250-STARTTLS");
    if (S.sc.smtputf8)
        srv_reply("250-SMTPUTF8");
    if (S.sc.auth)
        evbuffer_add_printf(conn_output(S.c), "250-AUTH %s\r\n", S.sc.auth);
    srv_reply("250-ENHANCEDSTATUSCODES");
    srv_reply("250-8BITMIME");
    srv_reply("250 DSN");
}

static void srv_rcpt(const char *line)
{
    if (strstr(line, "<temp")) {
        srv_reply("451 4.2.0 try later");
    } else if (strstr(line, "<perm")) {
        srv_reply("550 5.1.1 no such user");
    } else if (strstr(line, "<close")) {
        srv_reply("421 4.3.2 closing");
    } else {
        S.rcpts_ok++;
        srv_reply("250 2.1.5 Ok");
    }
}

/* AUTH PLAIN / LOGIN for user "u", password "p w" (base64 on the wire). */
static void srv_auth(const char *line)
{
    if (S.sc.auth_refuse) {
        S.auth_step = 0;
        srv_reply("535 5.7.8 Error: authentication failed");
    } else if (S.auth_step == 1) {
        S.auth_step = !strcmp(line, "dQ==") ? 2 : 0;   /* "u" */
        srv_reply(S.auth_step ? "334 UGFzc3dvcmQ6" : "535 5.7.8 bad user");
    } else if (S.auth_step == 2) {
        S.auth_step = 0;
        S.authed = !strcmp(line, "cCB3");              /* "p w" */
        srv_reply(S.authed ? "235 2.7.0 Authentication successful" : "535 5.7.8 bad password");
    } else if (!strcasecmp(line, "AUTH LOGIN")) {
        S.auth_step = 1;
        srv_reply("334 VXNlcm5hbWU6");
    } else {
        S.authed = !strcmp(line, "AUTH PLAIN AHUAcCB3");   /* "\0u\0p w" */
        srv_reply(S.authed ? "235 2.7.0 Authentication successful" : "535 5.7.8 bad");
    }
}

static void srv_command(const char *line)
{
    size_t rest = evbuffer_get_length(conn_input(S.c));
    S.cmds++;
    if (rest > 0 && strncasecmp(line, "QUIT", 4))
        S.waited = 0;
    strncat(S.log, line, sizeof S.log - strlen(S.log) - 2);
    strcat(S.log, "\n");
    if (S.auth_step || !strncasecmp(line, "AUTH ", 5)) {
        srv_auth(line);
    } else if (!strncasecmp(line, "EHLO", 4)) {
        srv_ehlo();
    } else if (!strncasecmp(line, "HELO", 4)) {
        srv_reply("250 sink.test");
    } else if (!strncasecmp(line, "STARTTLS", 8) && S.sc.starttls_refuse) {
        srv_reply("454 4.7.0 TLS not available due to local problem");
    } else if (!strncasecmp(line, "STARTTLS", 8) && S.sc.starttls_garbage) {
        srv_reply("220 2.0.0 go ahead");
        srv_reply("this is no ServerHello, this is plaintext");
    } else if (!strncasecmp(line, "STARTTLS", 8)) {
        srv_reply("220 2.0.0 go ahead");
        if (conn_starttls(S.c, server_ctx, 1, NULL) < 0)
            abort();
    } else if (!strncasecmp(line, "MAIL", 4)) {
        S.mails++;
        S.rcpts_ok = 0;
        S.mail_pipelined = rest > 0;
        srv_reply(S.sc.mail_reply ? S.sc.mail_reply : "250 2.1.0 Ok");
    } else if (!strncasecmp(line, "RCPT", 4)) {
        srv_rcpt(line);
    } else if (!strncasecmp(line, "DATA", 4)) {
        if (S.rcpts_ok == 0 && !S.sc.data_354_always) {
            srv_reply("554 5.5.1 Error: no valid recipients");
            return;
        }
        srv_reply("354 End data with <CR><LF>.<CR><LF>");
        evbuffer_drain(S.raw, evbuffer_get_length(S.raw));   /* this message's only */
        S.in_data = 1;
        if (S.sc.stall_data)
            conn_read_enable(S.c, 0);
    } else if (!strncasecmp(line, "RSET", 4)) {
        srv_reply(S.sc.rset_reply ? S.sc.rset_reply : "250 2.0.0 Ok");
    } else if (!strncasecmp(line, "QUIT", 4)) {
        srv_reply("221 2.0.0 Bye");
    } else {
        srv_reply("502 5.5.2 Error: command not recognized");
    }
}

/* DATA: keep the raw octets until CRLF.CRLF */
static int srv_data(void)
{
    struct evbuffer *in = conn_input(S.c);
    evbuffer_add_buffer(S.raw, in);
    size_t n = evbuffer_get_length(S.raw);
    struct evbuffer_ptr p = evbuffer_search(S.raw, "\r\n.\r\n", 5, NULL);
    if (p.pos < 0 && !(n == 3 && !memcmp(evbuffer_pullup(S.raw, 3), ".\r\n", 3)))
        return 0;
    size_t end = p.pos >= 0 ? (size_t)p.pos + 5 : 3;
    if (end < n) {                  /* pipelined after the data: back to the input */
        struct evbuffer *tail = evbuffer_new();
        evbuffer_add(tail, (char *)evbuffer_pullup(S.raw, -1) + end, n - end);
        evbuffer_drain(S.raw, n - end);
        evbuffer_prepend_buffer(in, tail);
        evbuffer_free(tail);
    }
    S.in_data = 0;
    if (!S.sc.no_final)
        srv_reply("250 2.0.0 Ok: queued as ABC");
    return 1;
}

static void srv_event(struct conn *c, enum conn_event ev, void *arg)
{
    (void)arg;
    if (ev == CONN_READ) {
        for (;;) {
            if (S.in_data) {
                if (!srv_data())
                    return;
                continue;
            }
            char line[SMTP_LINE_MAX + 1];
            size_t len;
            int bare;
            if (line_read(&S.lr, conn_input(c), line, &len, &bare) != LINE_OK)
                return;
            srv_command(line);
            if (S.sc.stall_data && S.in_data)
                return;
            if (conn_is_tls(c) == 0 && !strncasecmp(line, "STARTTLS", 8) &&
                !S.sc.starttls_refuse && !S.sc.starttls_garbage)
                return;
        }
    }
    if (ev == CONN_EOF || ev == CONN_ERROR || ev == CONN_TIMEOUT) {
        conn_free(c);
        S.c = NULL;
    }
}

static void srv_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    int s = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (s < 0)
        return;
    if (S.c) {                      /* one session at a time */
        close(s);
        return;
    }
    struct conn_limits l = { 64 * 1024, 1 << 20, 0, 0 };
    S.c = conn_new(base, s, &l, srv_event, NULL);
    line_reader_init(&S.lr, SMTP_LINE_MAX);
    if (!S.sc.silent)
        srv_reply(S.sc.greeting ? S.sc.greeting : "220 sink.test ESMTP");
}

static void server_start(const struct script *sc)
{
    if (S.c)
        conn_free(S.c);
    if (S.raw)
        evbuffer_free(S.raw);
    int lfd = S.lfd, port = S.port;
    struct event *lev = S.lev;
    memset(&S, 0, sizeof S);
    S.lfd = lfd;
    S.port = port;
    S.lev = lev;
    S.sc = *sc;
    S.raw = evbuffer_new();
    S.waited = 1;
}

static void listener_open(void)
{
    S.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, small = 4096;
    setsockopt(S.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(S.lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(S.lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(S.lfd, 16) < 0 ||
        getsockname(S.lfd, (struct sockaddr *)&a, &al) < 0)
        abort();
    S.port = ntohs(a.sin_port);
    S.lev = event_new(base, S.lfd, EV_READ | EV_PERSIST, srv_accept, NULL);
    event_add(S.lev, NULL);
}

/* ------------------------------------------------------------ the client side */

struct watch {
    int ev[4];                    /* counts per smtp_client_event */
    int last;
    uint64_t id;
    struct smtp_client *cl;
    int free_on_done;
};

static void on_client(void *arg, uint64_t id, enum smtp_client_event ev)
{
    struct watch *w = arg;
    w->ev[ev]++;
    w->last = (int)ev;
    w->id = id;
    if (w->free_on_done && ev == SMTP_CLIENT_DONE) {
        smtp_client_free(w->cl);
        w->cl = NULL;
    }
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run the loop until event ev has been seen n times in all (or 10 s). */
static int wait_ev(struct watch *w, enum smtp_client_event ev, int n)
{
    long long end = now_ms() + 10000;
    while (w->ev[ev] < n && now_ms() < end) {
        int failed = w->ev[SMTP_CLIENT_FAILED];
        struct timeval tv = { 0, 5000 };
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
        if (ev != SMTP_CLIENT_FAILED && w->ev[SMTP_CLIENT_FAILED] > failed)
            break;
    }
    return w->ev[ev] >= n;
}

static void spin(int ms)
{
    long long end = now_ms() + ms;
    while (now_ms() < end) {
        struct timeval tv = { 0, 5000 };
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
}

static struct smtp_client_opts opts(enum smtp_tls_level tls, struct work_pool *pool)
{
    struct smtp_client_opts o = { .helo_name = "client.test", .tls = tls, .tls_ctx = client_ctx,
                                  .pool = pool };
    smtp_client_timeouts_default(&o.t);
    return o;
}

static struct sockaddr_in server_addr(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    return a;
}

/* A client connected to the scripted server and READY (or not). */
static struct smtp_client *open_client(struct watch *w, const struct smtp_client_opts *o)
{
    memset(w, 0, sizeof *w);
    w->cl = smtp_client_new(base, o, on_client, w);
    struct sockaddr_in a = server_addr(S.port);
    smtp_client_connect(w->cl, (struct sockaddr *)&a, sizeof a, "mx.test");
    wait_ev(w, SMTP_CLIENT_READY, 1);
    return w->cl;
}

static char content_path[64];

static void write_content(const char *text, size_t len)
{
    int fd = open(content_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len)
        abort();
    close(fd);
}

static const char *simple_msg = "Subject: hi\r\n\r\nhello\r\n";

static struct smtp_msg make_msg(struct smtp_rcpt *r, size_t n)
{
    struct smtp_msg m = { "sender@client.test", content_path, (long long)strlen(simple_msg),
                          1, 0, "RET=HDRS", r, n };
    return m;
}

static void finish(struct watch *w)
{
    if (w->cl) {
        smtp_client_free(w->cl);
        w->cl = NULL;
    }
    spin(10);
}

/* ------------------------------------------------------------ tests */

static void test_transaction(struct work_pool *pool)
{
    struct script sc = { .size = 10000000 };
    server_start(&sc);
    write_content(simple_msg, strlen(simple_msg));
    struct smtp_client_opts o = opts(SMTP_TLS_NONE, pool);
    struct watch w;
    struct smtp_client *cl = open_client(&w, &o);
    ok(w.ev[SMTP_CLIENT_READY] == 1 && w.id == smtp_client_id(cl), "READY with the client's id");
    const struct smtp_ext *x = smtp_client_ext(cl);
    ok((x->flags & SMTP_EXT_PIPELINING) && (x->flags & SMTP_EXT_SIZE) && x->size == 10000000 &&
       (x->flags & SMTP_EXT_8BITMIME) && (x->flags & SMTP_EXT_DSN), "EHLO keywords parsed");
    struct smtp_rcpt r[4] = { { .addr = "ok@sink.test", .dsn_params = "NOTIFY=FAILURE" },
                              { .addr = "temp1@sink.test" }, { .addr = "perm1@sink.test" },
                              { .addr = "ok2@sink.test" } };
    struct smtp_msg m = make_msg(r, 4);
    ok(smtp_client_send(cl, &m) == 0 && wait_ev(&w, SMTP_CLIENT_DONE, 1), "DONE");
    ok(r[0].cls == SMTP_C_OK && r[0].code == 250 && !strcmp(r[0].enh, "2.0.0") &&
       strstr(r[0].text, "queued"), "accepted recipient: the final reply (%d %s %s)", r[0].code,
       r[0].enh, r[0].text);
    ok(r[1].cls == SMTP_C_TEMP && r[1].code == 451 && !strcmp(r[1].enh, "4.2.0"),
       "451 recipient: TEMP 4.2.0");
    ok(r[2].cls == SMTP_C_PERM && r[2].code == 550 && !strcmp(r[2].enh, "5.1.1") &&
       !strcmp(r[2].text, "no such user"), "550 recipient: PERM 5.1.1, text kept");
    ok(r[3].cls == SMTP_C_OK, "second accepted recipient");
    ok(S.mail_pipelined && smtp_client_pipelined(cl), "MAIL, RCPTs and DATA in one write");
    ok(strstr(S.log, "MAIL FROM:<sender@client.test> SIZE=22 BODY=8BITMIME RET=HDRS\n") != NULL,
       "MAIL FROM with SIZE=, BODY=8BITMIME and the DSN parameters");
    ok(strstr(S.log, "RCPT TO:<ok@sink.test> NOTIFY=FAILURE\n") != NULL, "RCPT with NOTIFY=");
    ok(evbuffer_get_length(S.raw) == strlen(simple_msg) + 3 &&
       !memcmp(evbuffer_pullup(S.raw, -1), "Subject: hi\r\n\r\nhello\r\n.\r\n",
               strlen(simple_msg) + 3), "the content and the end of data on the wire");
    is_str(smtp_client_ip(cl), "127.0.0.1", "the IP that answered");
    is_str(smtp_client_host(cl), "mx.test", "and the host name");
    ok(smtp_client_tls_version(cl) == NULL, "no TLS");
    /* reuse */
    ok(smtp_client_reset(cl) == 0 && wait_ev(&w, SMTP_CLIENT_READY, 2), "RSET: READY again");
    struct smtp_rcpt r2[1] = { { .addr = "again@sink.test" } };
    struct smtp_msg m2 = make_msg(r2, 1);
    ok(smtp_client_send(cl, &m2) == 0 && wait_ev(&w, SMTP_CLIENT_DONE, 2) &&
       r2[0].cls == SMTP_C_OK && S.mails == 2, "a second message on the same session (%d %s; %s)",
       r2[0].code, r2[0].text, smtp_client_status(cl)->text);
    ok(smtp_client_quit(cl) == 0 && wait_ev(&w, SMTP_CLIENT_CLOSED, 1), "QUIT: CLOSED (%s: %s)",
       smtp_client_status(cl)->stage, smtp_client_status(cl)->text);
    ok(strstr(S.log, "RSET\nMAIL") && strstr(S.log, "QUIT\n"), "RSET and QUIT were sent");
    is_int(w.ev[SMTP_CLIENT_FAILED], 0, "no failure");
    finish(&w);
}

static void test_greetings(void)
{
    const char *g[2] = { "421 4.3.2 too busy", "554 5.7.1 go away" };
    for (int i = 0; i < 2; i++) {
        struct script sc = { .greeting = g[i] };
        server_start(&sc);
        struct smtp_client_opts o = opts(SMTP_TLS_NONE, NULL);
        struct watch w;
        struct smtp_client *cl = open_client(&w, &o);
        const struct smtp_client_status *st = smtp_client_status(cl);
        ok(w.ev[SMTP_CLIENT_FAILED] == 1 && !strcmp(st->stage, "greeting") &&
           st->code == (i ? 554 : 421) && strstr(st->text, g[i] + 10),
           "%s greeting: site failure at the greeting (%s: %s)", i ? "5xx" : "421", st->stage,
           st->text);
        finish(&w);
    }
}

static void test_helo_fallback(void)
{
    struct script sc = { .ehlo_refused = 1 };
    server_start(&sc);
    write_content(simple_msg, strlen(simple_msg));
    struct smtp_client_opts o = opts(SMTP_TLS_NONE, NULL);
    struct watch w;
    struct smtp_client *cl = open_client(&w, &o);
    ok(w.ev[SMTP_CLIENT_READY] == 1 && strstr(S.log, "EHLO client.test\nHELO client.test\n"),
       "EHLO refused with 502: HELO, READY");
    is_int((int)smtp_client_ext(cl)->flags, 0, "no extensions after HELO");
    struct smtp_rcpt r[1] = { { .addr = "ok@sink.test" } };
    struct smtp_msg m = make_msg(r, 1);
    ok(smtp_client_send(cl, &m) == 0 && wait_ev(&w, SMTP_CLIENT_DONE, 1) && r[0].cls == SMTP_C_OK,
       "and mail goes through");
    ok(strstr(S.log, "MAIL FROM:<sender@client.test>\n") != NULL,
       "MAIL without SIZE=, BODY= or DSN parameters");
    ok(!S.mail_pipelined, "not pipelined");
    finish(&w);
}

static void test_no_pipelining(void)
{
    struct script sc = { .no_pipelining = 1 };
    server_start(&sc);
    write_content(simple_msg, strlen(simple_msg));
    struct smtp_client_opts o = opts(SMTP_TLS_NONE, NULL);
    struct watch w;
    struct smtp_client *cl = open_client(&w, &o);
    struct smtp_rcpt r[3] = { { .addr = "a@sink.test" }, { .addr = "perm@sink.test" },
                              { .addr = "b@sink.test" } };
    struct smtp_msg m = make_msg(r, 3);
    ok(smtp_client_send(cl, &m) == 0 && wait_ev(&w, SMTP_CLIENT_DONE, 1), "DONE");
    ok(S.waited && !S.mail_pipelined && !smtp_client_pipelined(cl),
       "without PIPELINING every command waits for its reply");
    ok(r[0].cls == SMTP_C_OK && r[1].cls == SMTP_C_PERM && r[2].cls == SMTP_C_OK,
       "per-recipient results");
    /* every recipient refused: no DATA at all */
    ok(smtp_client_reset(cl) == 0 && wait_ev(&w, SMTP_CLIENT_READY, 2), "RSET");
    struct smtp_rcpt r2[2] = { { .addr = "perm1@sink.test" }, { .addr = "temp1@sink.test" } };
    struct smtp_msg m2 = make_msg(r2, 2);
    int cmds = S.cmds;
    ok(smtp_client_send(cl, &m2) == 0 && wait_ev(&w, SMTP_CLIENT_DONE, 2) &&
       r2[0].cls == SMTP_C_PERM && r2[1].cls == SMTP_C_TEMP, "every RCPT refused: DONE");
    ok(S.cmds == cmds + 3 && !strstr(strstr(S.log, "RSET"), "DATA"), "and no DATA sent");
    finish(&w);
}

static void test_refusals(void)
{
    /* MAIL refused */
    struct script sc = { .mail_reply = "553 5.7.1 sender rejected" };
    server_start(&sc);
    write_content(simple_msg, strlen(simple_msg));
    struct smtp_client_opts o = opts(SMTP_TLS_NONE, NULL);
    struct watch w;
    struct smtp_client *cl = open_client(&w, &o);
    struct smtp_rcpt r[2] = { { .addr = "a@sink.test" }, { .addr = "b@sink.test" } };
    struct smtp_msg m = make_msg(r, 2);
    ok(smtp_client_send(cl, &m) == 0 && wait_ev(&w, SMTP_CLIENT_DONE, 1) &&
       r[0].cls == SMTP_C_PERM && r[1].cls == SMTP_C_PERM && r[1].code == 553 &&
       !strcmp(r[1].enh, "5.7.1"), "MAIL refused (pipelined): every recipient gets its 553");
    is_int((int)evbuffer_get_length(S.raw), 3, "no content sent: \".\" alone after the 354");
    finish(&w);

    /* every RCPT refused, but the server says 354 to the pipelined DATA */
    struct script sc2 = { .data_354_always = 1 };
    server_start(&sc2);
    cl = open_client(&w, &o);
    struct smtp_rcpt r2[2] = { { .addr = "perm1@sink.test" }, { .addr = "perm2@sink.test" } };
    m = make_msg(r2, 2);
    ok(smtp_client_send(cl, &m) == 0 && wait_ev(&w, SMTP_CLIENT_DONE, 1) &&
       r2[0].cls == SMTP_C_PERM && r2[1].cls == SMTP_C_PERM,
       "all RCPTs refused, DATA answered 354: DONE, both PERM");
    ok(evbuffer_get_length(S.raw) == 3, "only \".\" was sent as the data (%zu)",
       evbuffer_get_length(S.raw));
    finish(&w);

    /* SIZE too small */
    struct script sc3 = { .size = 10 };
    server_start(&sc3);
    cl = open_client(&w, &o);
    struct smtp_rcpt r3[2] = { { .addr = "a@sink.test" }, { .addr = "b@sink.test" } };
    m = make_msg(r3, 2);
    ok(smtp_client_send(cl, &m) == 0 && wait_ev(&w, SMTP_CLIENT_DONE, 1) &&
       r3[0].cls == SMTP_C_PERM && !strcmp(r3[0].enh, "5.3.4") && r3[1].cls == SMTP_C_PERM &&
       strstr(r3[0].text, "exceeds size limit 10"), "SIZE 10 < 22: PERM 5.3.4 (%s)", r3[0].text);
    is_int(S.mails, 0, "refused before MAIL");
    /* SMTPUTF8 needed, not offered */
    m.smtputf8 = 1;
    m.size = 1;
    ok(smtp_client_send(cl, &m) == 0 && wait_ev(&w, SMTP_CLIENT_DONE, 2) &&
       r3[0].cls == SMTP_C_PERM && !strcmp(r3[0].enh, "5.6.7"), "SMTPUTF8 not offered: 5.6.7");
    /* an address that would smuggle a command */
    struct smtp_rcpt r4[2] = { { .addr = "x@sink.test>\r\nRCPT TO:<evil@sink.test" },
                               { .addr = "fine@sink.test" } };
    m = make_msg(r4, 2);
    struct script sc4 = { 0 };
    server_start(&sc4);
    finish(&w);
    cl = open_client(&w, &o);
    ok(smtp_client_send(cl, &m) == 0 && wait_ev(&w, SMTP_CLIENT_DONE, 1) &&
       r4[0].cls == SMTP_C_PERM && !strcmp(r4[0].enh, "5.1.3") && r4[1].cls == SMTP_C_OK,
       "an address with CR LF: refused locally, the other one delivered");
    ok(!strstr(S.log, "evil"), "nothing of it reached the server");
    finish(&w);
}

static void test_421_mid(void)
{
    struct script sc = { 0 };
    server_start(&sc);
    write_content(simple_msg, strlen(simple_msg));
    struct smtp_client_opts o = opts(SMTP_TLS_NONE, NULL);
    struct watch w;
    struct smtp_client *cl = open_client(&w, &o);
    struct smtp_rcpt r[3] = { { .addr = "perm@sink.test" }, { .addr = "close@sink.test" },
                              { .addr = "ok@sink.test" } };
    struct smtp_msg m = make_msg(r, 3);
    ok(smtp_client_send(cl, &m) == 0 && wait_ev(&w, SMTP_CLIENT_FAILED, 1),
       "421 to a RCPT: site failure");
    const struct smtp_client_status *st = smtp_client_status(cl);
    ok(st->code == 421 && !strcmp(st->stage, "RCPT"), "at RCPT, 421 (%s %d)", st->stage, st->code);
    ok(r[0].cls == SMTP_C_PERM && r[1].cls == SMTP_C_TEMP && r[2].cls == SMTP_C_TEMP,
       "the 550 stays PERM, the others TEMP for the next MX");
    finish(&w);
}

static void test_stall(struct work_pool *pool)
{
    struct script sc = { .stall_data = 1 };
    server_start(&sc);
    size_t big = 8u << 20;
    char *text = malloc(big);
    for (size_t i = 0; i < big; i++)
        text[i] = (i % 64 == 63) ? '\n' : 'x';
    write_content(text, big);
    free(text);
    struct smtp_client_opts o = opts(SMTP_TLS_NONE, pool);
    o.t.data_xfer = 300;
    struct watch w;
    struct smtp_client *cl = open_client(&w, &o);
    struct smtp_rcpt r[1] = { { .addr = "ok@sink.test" } };
    struct smtp_msg m = make_msg(r, 1);
    m.size = (long long)big;
    long long t0 = now_ms();
    ok(smtp_client_send(cl, &m) == 0 && wait_ev(&w, SMTP_CLIENT_FAILED, 1),
       "a server that stops reading mid-DATA: site failure");
    const struct smtp_client_status *st = smtp_client_status(cl);
    ok(!strcmp(st->stage, "DATA") && strstr(st->text, "timeout") && !strcmp(st->enh, "4.4.2"),
       "a timeout in DATA, 4.4.2 (%s: %s, %lld ms)", st->stage, st->text, now_ms() - t0);
    ok(r[0].cls == SMTP_C_TEMP, "the recipient is TEMP");
    finish(&w);
}

static void test_phase_timeouts(void)
{
    struct script sc = { .no_final = 1 };
    server_start(&sc);
    write_content(simple_msg, strlen(simple_msg));
    struct smtp_client_opts o = opts(SMTP_TLS_NONE, NULL);
    o.t.data_done = 300;
    struct watch w;
    struct smtp_client *cl = open_client(&w, &o);
    struct smtp_rcpt r[1] = { { .addr = "ok@sink.test" } };
    struct smtp_msg m = make_msg(r, 1);
    ok(smtp_client_send(cl, &m) == 0 && wait_ev(&w, SMTP_CLIENT_FAILED, 1) &&
       !strcmp(smtp_client_status(cl)->stage, "end of data") && r[0].cls == SMTP_C_TEMP,
       "no reply to \".\": smtp_data_done_timeout, the recipient TEMP (%s: %s)",
       smtp_client_status(cl)->stage, smtp_client_status(cl)->text);
    ok(evbuffer_get_length(S.raw) == strlen(simple_msg) + 3, "the whole message had been sent");
    finish(&w);
    struct script quiet = { .silent = 1 };
    server_start(&quiet);
    o = opts(SMTP_TLS_NONE, NULL);
    o.t.helo = 300;
    cl = open_client(&w, &o);
    ok(w.ev[SMTP_CLIENT_FAILED] == 1 && !strcmp(smtp_client_status(cl)->stage, "greeting") &&
       strstr(smtp_client_status(cl)->text, "timeout"), "no greeting: smtp_helo_timeout (%s)",
       smtp_client_status(cl)->text);
    finish(&w);
}

static void test_missing_content(struct work_pool *pool)
{
    struct script sc = { 0 };
    server_start(&sc);
    struct smtp_client_opts o = opts(SMTP_TLS_NONE, pool);
    struct watch w;
    struct smtp_client *cl = open_client(&w, &o);
    struct smtp_rcpt r[1] = { { .addr = "ok@sink.test" } };
    struct smtp_msg m = make_msg(r, 1);
    m.content_path = "/nonexistent/queue/file";
    ok(smtp_client_send(cl, &m) == 0 && wait_ev(&w, SMTP_CLIENT_FAILED, 1) &&
       smtp_client_status(cl)->local && r[0].cls == SMTP_C_TEMP,
       "an unreadable queue file (%s): FAILED, local, TEMP (%s)", pool ? "pool" : "loop",
       smtp_client_status(cl)->text);
    spin(20);
    ok(S.in_data && evbuffer_get_length(S.raw) == 0, "the session closed without an end of data");
    finish(&w);
}

static void test_wire_encoding(void)
{
    struct script sc = { 0 };
    server_start(&sc);
    static const char in[] = "line1\n.leading dot\r\n..two\rbare cr\r\r\n.\nend";
    static const char want[] = "line1\r\n..leading dot\r\n...two\r\nbare cr\r\n\r\n..\r\nend\r\n.\r\n";
    write_content(in, sizeof in - 1);
    struct smtp_client_opts o = opts(SMTP_TLS_NONE, NULL);
    struct watch w;
    struct smtp_client *cl = open_client(&w, &o);
    struct smtp_rcpt r[1] = { { .addr = "ok@sink.test" } };
    struct smtp_msg m = make_msg(r, 1);
    ok(smtp_client_send(cl, &m) == 0 && wait_ev(&w, SMTP_CLIENT_DONE, 1) && r[0].cls == SMTP_C_OK,
       "DONE");
    size_t n = evbuffer_get_length(S.raw);
    const char *got = (const char *)evbuffer_pullup(S.raw, -1);
    ok(n == sizeof want - 1 && !memcmp(got, want, n),
       "dot-stuffed, bare LF and bare CR sent as CRLF, a final CRLF added");
    int bare = 0;
    for (size_t i = 0; i < n; i++)
        if ((got[i] == '\r' && (i + 1 == n || got[i + 1] != '\n')) ||
            (got[i] == '\n' && (i == 0 || got[i - 1] != '\r')))
            bare++;
    is_int(bare, 0, "no bare CR or LF on the wire");
    finish(&w);
}

static void test_bad_replies(void)
{
    char longline[700];
    memset(longline, 'x', sizeof longline);
    memcpy(longline, "250-", 4);
    memcpy(longline + sizeof longline - 3, "\r\n", 3);
    struct script sc = { 0 };
    char raw[2000];
    snprintf(raw, sizeof raw, "250-sink.test\r\n%s250 8BITMIME\r\n", longline);
    sc.ehlo_raw = raw;
    server_start(&sc);
    struct smtp_client_opts o = opts(SMTP_TLS_NONE, NULL);
    struct watch w;
    struct smtp_client *cl = open_client(&w, &o);
    ok(w.ev[SMTP_CLIENT_FAILED] == 1 && strstr(smtp_client_status(cl)->text, "too long"),
       "a reply line over 512 octets: protocol error (%s)", smtp_client_status(cl)->text);
    finish(&w);
    static char many[120 * 12];
    many[0] = '\0';
    for (int i = 0; i < 110; i++)
        strcat(many, "250-X-KEY\r\n");
    strcat(many, "250 DSN\r\n");
    sc.ehlo_raw = many;
    server_start(&sc);
    cl = open_client(&w, &o);
    ok(w.ev[SMTP_CLIENT_FAILED] == 1 && strstr(smtp_client_status(cl)->text, "malformed"),
       "a reply of 111 lines: protocol error (%s)", smtp_client_status(cl)->text);
    finish(&w);
    sc.ehlo_raw = "250-sink.test\r\n251 changed code\r\n";
    server_start(&sc);
    cl = open_client(&w, &o);
    ok(w.ev[SMTP_CLIENT_FAILED] == 1, "a code that changes between lines: protocol error");
    finish(&w);
}

static struct smtp_client *auth_client(struct watch *w, const char *mechs, int refuse,
                                       int tls, int required)
{
    struct script sc = { .starttls = tls, .auth = mechs, .auth_refuse = refuse };
    server_start(&sc);
    struct smtp_client_opts o = opts(tls ? SMTP_TLS_MAY : SMTP_TLS_NONE, NULL);
    o.sasl_user = "u";
    o.sasl_pass = "p w";
    o.sasl_tls_required = required;
    return open_client(w, &o);
}

static void test_auth(void)
{
    struct watch w;
    auth_client(&w, "LOGIN PLAIN", 0, 1, 1);
    ok(w.ev[SMTP_CLIENT_READY] == 1 && S.authed && strstr(S.log, "STARTTLS\nEHLO client.test\n"
       "AUTH PLAIN AHUAcCB3\n"), "AUTH PLAIN after STARTTLS and the second EHLO");
    finish(&w);
    auth_client(&w, "LOGIN", 0, 0, 0);
    ok(w.ev[SMTP_CLIENT_READY] == 1 && S.authed && strstr(S.log, "AUTH LOGIN\ndQ==\ncCB3\n"),
       "AUTH LOGIN when PLAIN is not offered (plaintext, tls not required)");
    finish(&w);
    struct smtp_client *cl = auth_client(&w, "PLAIN", 0, 0, 1);
    ok(w.ev[SMTP_CLIENT_FAILED] == 1 && !strstr(S.log, "AUTH") &&
       !strcmp(smtp_client_status(cl)->enh, "4.7.0"),
       "smtp_sasl_tls_required without TLS: no password sent, site failure (%s)",
       smtp_client_status(cl)->text);
    finish(&w);
    cl = auth_client(&w, "PLAIN", 1, 0, 0);
    ok(w.ev[SMTP_CLIENT_FAILED] == 1 && !strcmp(smtp_client_status(cl)->stage, "AUTH") &&
       strstr(smtp_client_status(cl)->text, "535 5.7.8"),
       "535 to AUTH: site failure at AUTH with the reply (%s)", smtp_client_status(cl)->text);
    finish(&w);
    cl = auth_client(&w, NULL, 0, 0, 1);
    ok(w.ev[SMTP_CLIENT_READY] == 1 && !strstr(S.log, "AUTH"),
       "AUTH not offered: no AUTH, READY");
    finish(&w);
}

/* RSET pipelined with the next transaction, and alone without PIPELINING. */
static void test_send_reset(void)
{
    for (int pipe = 1; pipe >= 0; pipe--) {
        struct script sc = { .no_pipelining = !pipe };
        server_start(&sc);
        write_content(simple_msg, strlen(simple_msg));
        struct smtp_client_opts o = opts(SMTP_TLS_NONE, NULL);
        struct watch w;
        struct smtp_client *cl = open_client(&w, &o);
        struct smtp_rcpt r[1] = { { .addr = "ok@sink.test" } };
        struct smtp_msg m = make_msg(r, 1);
        ok(smtp_client_send(cl, &m) == 0 && wait_ev(&w, SMTP_CLIENT_DONE, 1), "first message");
        struct smtp_rcpt r2[1] = { { .addr = "again@sink.test" } };
        struct smtp_msg m2 = make_msg(r2, 1);
        int before = S.cmds;
        ok(smtp_client_send_reset(cl, &m2) == 0 && wait_ev(&w, SMTP_CLIENT_DONE, 2) &&
           r2[0].cls == SMTP_C_OK && S.mails == 2, "%s: RSET + the next message (%s)",
           pipe ? "pipelined" : "lock-step", smtp_client_status(cl)->text);
        ok(strstr(S.log, "\nRSET\nMAIL FROM:<sender@client.test>") != NULL && S.cmds == before + 4,
           "RSET went first, once");
        if (pipe)
            ok(S.mail_pipelined, "in one write with MAIL, RCPT and DATA");
        else
            ok(S.waited, "each command waited for its reply");
        finish(&w);
    }
    struct script refuse = { .rset_reply = "421 4.3.0 no more" };
    server_start(&refuse);
    struct smtp_client_opts o = opts(SMTP_TLS_NONE, NULL);
    struct watch w;
    struct smtp_client *cl = open_client(&w, &o);
    struct smtp_rcpt r[1] = { { .addr = "ok@sink.test" } };
    struct smtp_msg m = make_msg(r, 1);
    smtp_client_send(cl, &m);
    wait_ev(&w, SMTP_CLIENT_DONE, 1);
    struct smtp_rcpt r2[1] = { { .addr = "again@sink.test" } };
    struct smtp_msg m2 = make_msg(r2, 1);
    ok(smtp_client_send_reset(cl, &m2) == 0 && wait_ev(&w, SMTP_CLIENT_FAILED, 1) &&
       r2[0].cls == SMTP_C_TEMP && !strcmp(smtp_client_status(cl)->stage, "RSET"),
       "a refused RSET: site failure at RSET, the recipient TEMP");
    finish(&w);
}

static void test_tls(void)
{
    struct script sc = { .starttls = 1 };
    server_start(&sc);
    write_content(simple_msg, strlen(simple_msg));
    struct smtp_client_opts o = opts(SMTP_TLS_MAY, NULL);
    struct watch w;
    struct smtp_client *cl = open_client(&w, &o);
    ok(w.ev[SMTP_CLIENT_READY] == 1 && S.ehlos == 2 && strstr(S.log, "STARTTLS\nEHLO"),
       "may: STARTTLS, then EHLO again");
    ok(smtp_client_tls_version(cl) && !strcmp(smtp_client_tls_version(cl), "TLSv1.3") &&
       smtp_client_tls_cipher(cl) != NULL, "TLS version and cipher (%s %s)",
       smtp_client_tls_version(cl), smtp_client_tls_cipher(cl));
    ok(!(smtp_client_ext(cl)->flags & SMTP_EXT_STARTTLS), "the EHLO after TLS replaced the first");
    struct smtp_rcpt r[1] = { { .addr = "ok@sink.test" } };
    struct smtp_msg m = make_msg(r, 1);
    ok(smtp_client_send(cl, &m) == 0 && wait_ev(&w, SMTP_CLIENT_DONE, 1) && r[0].cls == SMTP_C_OK &&
       evbuffer_get_length(S.raw) == strlen(simple_msg) + 3, "a message over TLS");
    ok(smtp_client_quit(cl) == 0 && wait_ev(&w, SMTP_CLIENT_CLOSED, 1), "QUIT");
    is_str(smtp_client_tls_version(cl), "TLSv1.3", "the TLS version outlives the connection");
    finish(&w);

    struct script refuse = { .starttls = 1, .starttls_refuse = 1 };
    server_start(&refuse);
    o = opts(SMTP_TLS_MAY, NULL);
    cl = open_client(&w, &o);
    ok(w.ev[SMTP_CLIENT_READY] == 1 && !smtp_client_tls_version(cl),
       "may, STARTTLS answered 454: on in plaintext");
    finish(&w);
    server_start(&refuse);
    o = opts(SMTP_TLS_ENCRYPT, NULL);
    cl = open_client(&w, &o);
    ok(w.ev[SMTP_CLIENT_FAILED] == 1 && smtp_client_status(cl)->tls_missing &&
       strstr(smtp_client_status(cl)->text, "454"), "encrypt, STARTTLS answered 454: site failure (%s)",
       smtp_client_status(cl)->text);
    finish(&w);
    struct script garbage = { .starttls = 1, .starttls_garbage = 1 };
    server_start(&garbage);
    o = opts(SMTP_TLS_MAY, NULL);
    cl = open_client(&w, &o);
    ok(w.ev[SMTP_CLIENT_FAILED] == 1 && smtp_client_status(cl)->tls_failed &&
       !strcmp(smtp_client_status(cl)->stage, "TLS"),
       "a handshake that fails: site failure with tls_failed, for smtp_tls_fallback (%s)",
       smtp_client_status(cl)->text);
    finish(&w);

    struct script plain = { 0 };
    server_start(&plain);
    o = opts(SMTP_TLS_ENCRYPT, NULL);
    cl = open_client(&w, &o);
    ok(w.ev[SMTP_CLIENT_FAILED] == 1 && smtp_client_status(cl)->tls_missing &&
       !strcmp(smtp_client_status(cl)->enh, "4.7.4"), "encrypt, STARTTLS not offered: 4.7.4 (%s)",
       smtp_client_status(cl)->text);
    finish(&w);
    server_start(&plain);
    o = opts(SMTP_TLS_MAY, NULL);
    cl = open_client(&w, &o);
    ok(w.ev[SMTP_CLIENT_READY] == 1 && !smtp_client_tls_version(cl),
       "may, STARTTLS not offered: plaintext");
    finish(&w);
}

static void test_connect_refused(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = server_addr(0);
    socklen_t al = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);                      /* a port nobody listens on */
    struct smtp_client_opts o = opts(SMTP_TLS_NONE, NULL);
    struct watch w = { 0 };
    w.cl = smtp_client_new(base, &o, on_client, &w);
    ok(smtp_client_connect(w.cl, (struct sockaddr *)&a, sizeof a, NULL) == 0 &&
       w.ev[SMTP_CLIENT_FAILED] == 0, "connect starts; nothing reported from inside the call");
    ok(wait_ev(&w, SMTP_CLIENT_FAILED, 1), "connection refused: FAILED");
    const struct smtp_client_status *st = smtp_client_status(w.cl);
    ok(!strcmp(st->stage, "connect") && !strcmp(st->enh, "4.4.1") && strstr(st->text, "refused"),
       "at connect, 4.4.1 (%s)", st->text);
    finish(&w);
}

/* A listener whose accept queue is full drops new SYNs: connect hangs. */
static void test_connect_timeout(void)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = server_addr(0);
    socklen_t al = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 0) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) < 0)
        abort();
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        (void)connect(fill[i], (struct sockaddr *)&a, sizeof a);
    }
    spin(50);
    struct smtp_client_opts o = opts(SMTP_TLS_NONE, NULL);
    o.t.connect = 300;
    struct watch w = { 0 };
    w.cl = smtp_client_new(base, &o, on_client, &w);
    long long t0 = now_ms();
    smtp_client_connect(w.cl, (struct sockaddr *)&a, sizeof a, "slow.test");
    ok(wait_ev(&w, SMTP_CLIENT_FAILED, 1), "a connect that never completes: FAILED");
    const struct smtp_client_status *st = smtp_client_status(w.cl);
    ok(!strcmp(st->stage, "connect") && strstr(st->text, "timed out") && !strcmp(st->enh, "4.4.1"),
       "after smtp_connect_timeout (%s, %lld ms)", st->text, now_ms() - t0);
    finish(&w);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}

static void test_free_in_callback(void)
{
    struct script sc = { 0 };
    server_start(&sc);
    write_content(simple_msg, strlen(simple_msg));
    struct smtp_client_opts o = opts(SMTP_TLS_NONE, NULL);
    struct watch w;
    struct smtp_client *cl = open_client(&w, &o);
    w.free_on_done = 1;
    struct smtp_rcpt r[1] = { { .addr = "ok@sink.test" } };
    struct smtp_msg m = make_msg(r, 1);
    ok(smtp_client_send(cl, &m) == 0 && wait_ev(&w, SMTP_CLIENT_DONE, 1) && w.cl == NULL,
       "freed in its DONE callback (ASan checks the memory)");
    spin(50);
    ok(w.ev[SMTP_CLIENT_FAILED] == 0 && w.ev[SMTP_CLIENT_CLOSED] == 0, "nothing reported after");
}

/* ------------------------------------------------------------ the encoder */

static void encode_all(const char *in, size_t n, size_t step, struct evbuffer *out)
{
    struct smtp_dot_enc e;
    smtp_dot_enc_init(&e);
    for (size_t i = 0; i < n; i += step)
        smtp_dot_encode(&e, in + i, n - i < step ? n - i : step, out);
    smtp_dot_enc_end(&e, out);
}

static void test_encoder_trickle(void)
{
    int same = 1, clean = 1, folded = 0;
    srand(7);
    for (int round = 0; round < 1000; round++) {
        static char in[5000];
        int longlines = round >= 500;        /* then mostly 'a': lines over 998 */
        size_t n = (size_t)(rand() % (longlines ? 5000 : 200));
        static const char alphabet[] = "\r\n.a";
        for (size_t i = 0; i < n; i++)
            in[i] = longlines && rand() % 1500 ? 'a' : alphabet[rand() % 4];
        struct evbuffer *one = evbuffer_new(), *trickle = evbuffer_new();
        encode_all(in, n, n ? n : 1, one);
        encode_all(in, n, 1, trickle);
        size_t l1 = evbuffer_get_length(one);
        const char *a = (const char *)evbuffer_pullup(one, -1);
        same &= l1 == evbuffer_get_length(trickle) &&
                !memcmp(a, evbuffer_pullup(trickle, -1), l1);
        /* CRLF only, and only the last line is "." alone */
        for (size_t i = 0; i < l1; i++) {
            if ((a[i] == '\r' && (i + 1 == l1 || a[i + 1] != '\n')) ||
                (a[i] == '\n' && (i == 0 || a[i - 1] != '\r')))
                clean = 0;
            if (a[i] == '.' && (i == 0 || a[i - 1] == '\n') && i + 3 < l1 && a[i + 1] == '\r')
                clean = 0;
        }
        clean &= l1 >= 3 && !memcmp(a + l1 - 3, ".\r\n", 3);
        size_t col = 0;
        for (size_t i = 0; i < l1; i++) {
            if (a[i] == '\r')
                continue;
            if (a[i] == '\n') {
                folded += i + 1 < l1 && a[i + 1] == ' ' && col == SMTP_LINE_FOLD;
                col = 0;
                continue;
            }
            if (++col > SMTP_LINE_FOLD)
                clean = 0;
        }
        evbuffer_free(one);
        evbuffer_free(trickle);
    }
    ok(same, "the encoder gives the same output fed one octet at a time");
    ok(clean, "and only CRLF line ends, no early end-of-data line, no line over 998");
    ok(folded > 0, "long lines folded with CRLF SPACE (%d)", folded);
    struct evbuffer *out = evbuffer_new();
    static char line[2500];
    memset(line, 'b', sizeof line);
    line[0] = '.';
    encode_all(line, sizeof line, 700, out);
    size_t ol = evbuffer_get_length(out);
    const char *o = (const char *)evbuffer_pullup(out, -1);
    ok(ol == 2501 + 3 * 2 + 2 + 3 && o[0] == '.' && o[1] == '.' &&
       !memcmp(o + 998, "\r\n ", 3) && !memcmp(o + 998 + 3 + 997, "\r\n ", 3),
       "a 2500-octet line starting with '.': stuffed, then broken after 998 and 997 more (%zu)", ol);
    evbuffer_free(out);
}

/* ------------------------------------------------------------ the parsers */

static int feed(struct smtp_reply *r, const char *line)
{
    const char *t;
    size_t tl;
    return smtp_reply_line(r, line, strlen(line), &t, &tl);
}

static void test_parsers(void)
{
    struct smtp_reply r;
    smtp_reply_init(&r);
    ok(feed(&r, "250 2.1.5 Ok") == 1 && r.code == 250 && !strcmp(r.enh, "2.1.5") &&
       !strcmp(r.text, "Ok"), "enhanced code split from the text");
    ok(feed(&r, "550 4.1.1 wrong class") == 1 && !r.enh[0] && !strcmp(r.text, "4.1.1 wrong class"),
       "an enhanced code of another class is text");
    ok(feed(&r, "250") == 1 && r.code == 250 && !r.text[0], "a bare code");
    ok(feed(&r, "250-first") == 0 && feed(&r, "250-second") == 0 && feed(&r, "250 last") == 1 &&
       r.nlines == 3 && !strcmp(r.text, "first"), "multi-line: the first line's text");
    ok(feed(&r, "199 x") < 0 && feed(&r, "2x0 x") < 0 && feed(&r, "250_x") < 0 &&
       feed(&r, "25") < 0 && feed(&r, "260 x") < 0, "malformed codes and separators");
    struct smtp_ext x;
    smtp_ext_init(&x);
    const char *lines[] = { "AUTH PLAIN LOGIN XOAUTH2", "AUTH=CRAM-MD5", "size 2048",
                            "PIPELININGX", "8bitmime", "SMTPUTF8 extra", "STARTTLS" };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        smtp_ext_line(&x, lines[i], strlen(lines[i]));
    ok((x.flags & SMTP_EXT_AUTH) && x.auth == (SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN | SMTP_AUTH_OTHER |
                                               SMTP_AUTH_CRAM_MD5),
       "AUTH mechanisms, the old AUTH= form too (%#x)", x.auth);
    ok((x.flags & SMTP_EXT_SIZE) && x.size == 2048, "SIZE, case-insensitive");
    ok(!(x.flags & SMTP_EXT_PIPELINING) && (x.flags & SMTP_EXT_8BITMIME) &&
       (x.flags & SMTP_EXT_SMTPUTF8) && (x.flags & SMTP_EXT_STARTTLS),
       "keywords match whole words only");
    smtp_ext_init(&x);
    smtp_ext_line(&x, "SIZE lots", 9);
    ok((x.flags & SMTP_EXT_SIZE) && x.size == 0, "SIZE with a non-number: no limit");
}

/* ------------------------------------------------------------ smtp-sink */

static void test_smtp_sink(struct work_pool *pool)
{
    if (access("/usr/sbin/smtp-sink", X_OK) != 0) {
        ok(1, "# SKIP /usr/sbin/smtp-sink not installed");
        return;
    }
    char dir[] = "/tmp/test_smtp_sink_XXXXXX";
    if (!mkdtemp(dir))
        abort();
    chmod(dir, 0777);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = server_addr(0);
    socklen_t al = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    int port = ntohs(a.sin_port);
    char where[64], tmpl[128];
    snprintf(where, sizeof where, "127.0.0.1:%d", port);
    snprintf(tmpl, sizeof tmpl, "%s/", dir);
    pid_t pid = fork();
    if (pid == 0) {
        const char *user = getuid() == 0 ? "nobody" : NULL;
        if (user)
            execl("/usr/sbin/smtp-sink", "smtp-sink", "-u", user, "-d", tmpl, where, "10",
                  (char *)NULL);
        else
            execl("/usr/sbin/smtp-sink", "smtp-sink", "-d", tmpl, where, "10", (char *)NULL);
        _exit(127);
    }
    static const char body[] = "From: a@client.test\nSubject: to the sink\n\n.dot line\nbody\n";
    write_content(body, sizeof body - 1);
    struct smtp_client_opts o = opts(SMTP_TLS_NONE, NULL);
    struct watch w = { 0 };
    int up = 0;
    for (int tries = 0; tries < 100 && !up; tries++) {
        memset(&w, 0, sizeof w);
        w.cl = smtp_client_new(base, &o, on_client, &w);
        smtp_client_connect(w.cl, (struct sockaddr *)&a, sizeof a, "localhost");
        wait_ev(&w, SMTP_CLIENT_READY, 1);
        up = w.ev[SMTP_CLIENT_READY] == 1;
        if (!up) {
            finish(&w);
            usleep(50000);
        }
    }
    ok(up, "smtp-sink greets and answers EHLO");
    ok(smtp_client_ext(w.cl)->flags & SMTP_EXT_PIPELINING, "it offers PIPELINING");
    struct smtp_rcpt r[2] = { { .addr = "one@sink.test" }, { .addr = "two@sink.test" } };
    struct smtp_msg m = make_msg(r, 2);
    m.size = sizeof body - 1;
    ok(smtp_client_send(w.cl, &m) == 0 && wait_ev(&w, SMTP_CLIENT_DONE, 1) &&
       r[0].cls == SMTP_C_OK && r[1].cls == SMTP_C_OK, "smtp-sink accepts both (%d %s)",
       r[0].code, r[0].text);
    ok(smtp_client_quit(w.cl) == 0 && wait_ev(&w, SMTP_CLIENT_CLOSED, 1), "QUIT");
    finish(&w);
    /* a 3 MiB message with LF line ends, read in the pool */
    size_t bign = 3u << 20;
    char *big = malloc(bign);
    for (size_t i = 0; i < bign; i++)
        big[i] = i % 100 == 99 ? '\n' : i % 100 == 0 ? '.' : (char)('a' + i % 26);
    write_content(big, bign);
    free(big);
    o = opts(SMTP_TLS_NONE, pool);
    memset(&w, 0, sizeof w);
    w.cl = smtp_client_new(base, &o, on_client, &w);
    smtp_client_connect(w.cl, (struct sockaddr *)&a, sizeof a, "localhost");
    struct smtp_rcpt rb[1] = { { .addr = "big@sink.test" } };
    m = make_msg(rb, 1);
    m.size = (long long)bign;
    ok(wait_ev(&w, SMTP_CLIENT_READY, 1) && smtp_client_send(w.cl, &m) == 0 &&
       wait_ev(&w, SMTP_CLIENT_DONE, 1) && rb[0].cls == SMTP_C_OK,
       "a 3 MiB message, dot-stuffed lines, from the pool: accepted");
    finish(&w);
    /* the dumps: one file per transaction, with the envelope and the message */
    char found[512] = "", bigfile[512] = "";
    long long bigsize = 0;
    for (int t = 0; t < 100 && (!found[0] || !bigfile[0]); t++) {
        DIR *d = opendir(dir);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (de->d_name[0] == '.')
                continue;
            char path[512];
            struct stat sb;
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            if (stat(path, &sb) < 0)
                continue;
            if (sb.st_size > (1 << 20)) {
                snprintf(bigfile, sizeof bigfile, "%s", path);
                bigsize = (long long)sb.st_size;
            } else {
                snprintf(found, sizeof found, "%s", path);
            }
        }
        if (d)
            closedir(d);
        if (!found[0] || !bigfile[0])
            usleep(20000);
    }
    ok(bigsize > (long long)bign, "the big message's dump holds all of it (%lld octets)", bigsize);
    if (bigfile[0])
        unlink(bigfile);
    char dump[8192] = "";
    FILE *f = found[0] ? fopen(found, "r") : NULL;
    size_t dn = f ? fread(dump, 1, sizeof dump - 1, f) : 0;
    dump[dn] = '\0';
    if (f)
        fclose(f);
    ok(dn > 0, "smtp-sink dumped the message (%s)", found);
    ok(strstr(dump, "one@sink.test") && strstr(dump, "two@sink.test") &&
       strstr(dump, "sender@client.test"), "with the envelope sender and both recipients");
    ok(strstr(dump, "Subject: to the sink\r\n") || strstr(dump, "Subject: to the sink\n"),
       "and the header");
    ok(strstr(dump, "\n.dot line") && !strstr(dump, "..dot line"),
       "the leading dot arrives unstuffed");
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    if (found[0])
        unlink(found);
    rmdir(dir);
}

/* ------------------------------------------------------------ TLS context */

static void make_ctxs(void)
{
    tls_pair_make(&server_ctx, &client_ctx);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    make_ctxs();
    snprintf(content_path, sizeof content_path, "/tmp/test_smtp_client.%d", (int)getpid());
    listener_open();
    struct work_pool *pool = work_pool_new(base, 2);
    test_transaction(NULL);
    test_transaction(pool);
    test_greetings();
    test_helo_fallback();
    test_no_pipelining();
    test_refusals();
    test_421_mid();
    test_stall(pool);
    test_phase_timeouts();
    test_missing_content(NULL);
    test_missing_content(pool);
    test_wire_encoding();
    test_bad_replies();
    test_tls();
    test_auth();
    test_send_reset();
    test_connect_refused();
    test_connect_timeout();
    test_free_in_callback();
    test_encoder_trickle();
    test_parsers();
    test_smtp_sink(pool);
    if (S.c)
        conn_free(S.c);
    if (S.raw)
        evbuffer_free(S.raw);
    event_free(S.lev);
    close(S.lfd);
    work_pool_free(pool);
    unlink(content_path);
    SSL_CTX_free(server_ctx);
    SSL_CTX_free(client_ctx);
    event_base_free(base);
    return tap_done();
}
