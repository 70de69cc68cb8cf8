/*
 * proto/smtp_server.c — the SMTP server session (RFC 5321, with PIPELINING,
 * SIZE, 8BITMIME, ENHANCEDSTATUSCODES) on a connection object
 * (proto/conn.h).  Owns the session state machine, the command table, the
 * reply writer, DATA streaming into the queue, and the one teardown path.  It must never block: filters may answer later,
 * the queue commit runs in the worker pool, and while either is pending the
 * session reads no input.  Async results find their session by id.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "filters/filter.h"
#include "lib/addr.h"
#include "lib/iplist.h"
#include "lib/log.h"
#include "lib/timeutil.h"
#include "proto/conn.h"
#include "proto/from_header.h"
#include "proto/lineio.h"
#include "proto/local_headers.h"
#include "proto/sessions.h"
#include "proto/smtp_cmd.h"
#include "proto/smtp_data.h"
#include "proto/smtp_server.h"
#include "auth/passwd.h"
#include "auth/sasl.h"
#include "auth/login_fail.h"
#include "auth/throttle.h"
#include "auth/users.h"
#include "queue/envelope.h"
#include "queue/queue.h"

#define SMTP_OUTPUT_MAX    (256 * 1024)    /* stop executing commands above this */
#define SMTP_DATA_CHUNK    (64 * 1024)     /* DATA decoded per step */
#define SMTP_DATA_INPUT    (256 * 1024)    /* input buffered in DATA (one read event) */

enum sess_state {
    S_CMD,          /* reading and executing commands */
    S_WAIT,         /* a filter is pending: reading nothing */
    S_DATA,         /* receiving message content */
    S_COMMITTING,   /* the queue commit runs in the pool: reading nothing */
    S_TLS,          /* the TLS handshake runs (STARTTLS or implicit): reading nothing */
    S_AUTH,         /* a SASL exchange: the next line is the client's answer */
    S_AUTH_WAIT,    /* a password check or a failure delay runs: reading nothing */
    S_CLOSING,      /* flushing the last reply, then close */
};

struct session {
    struct sess_link link;      /* id and the server's table */
    struct smtp_server *srv;
    struct conn *c;
    enum smtp_mode mode;
    struct sockaddr_storage peer;
    char peer_addr[64];
    uid_t uid;
    enum sess_state state;
    struct line_reader lr;
    struct line_reader auth_lr; /* AUTH answers: up to SASL_LINE_MAX */
    char *helo;
    int esmtp;
    int tls;                    /* the handshake is done: the session is encrypted */
    int greeted;                /* the connect phase ran (implicit TLS: after the handshake) */
    char *auth_user;            /* logged in as (AUTH), or NULL */
    struct sasl *sasl;          /* the AUTH exchange under way */
    struct event *auth_timer;   /* the delay before a 535 */
    int auth_fail_pending;      /* the timer answers 535 */
    int errors;
    int shutting;
    int output_blocked;         /* too much output queued: commands wait */
    int in_filter_call;         /* filter_run() has not returned yet */
    int eof;                    /* the client half-closed: answer what is pending, then close */
    /* transaction */
    int have_mail;
    struct envelope env;
    long long nrcpt;            /* RCPT commands accepted */
    char *rcpt_pending;         /* address of the RCPT a filter is deciding */
    int rcpt_notify;            /* its DSN NOTIFY= bits and ORCPT= (or NULL) */
    char *rcpt_orcpt;
    int rcpt_local;
    struct queue_writer w;
    int writing;
    struct smtp_data data;
    int data_overflow, header_overflow;
    int from_refused;           /* FROM_REFUSED_*: answered at the end of data */
    struct evbuffer *hdrbuf;    /* local mode: the header section, held until it ends */
    struct filter_run *frun;
    struct filter_txn txn;
    void *gen;                  /* configuration generation (ops.gen_ref) */
    struct filter_chain *filters;   /* that generation's */
    void (*on_close)(void *);
    void *close_arg;
};

struct smtp_server {
    struct event_base *base;
    struct queue *q;
    struct smtp_server_ops ops;
    struct smtp_server_params p;
    char *strings[4];           /* owned copies of the params' strings */
    struct sess_table sessions;
    int shutting;
    char databuf[2 * SMTP_DATA_CHUNK + 4];   /* decoder output, loop-only */
    char authline[SASL_LINE_MAX + 3];        /* an AUTH answer, loop-only */
    struct sasl_params sasl;                 /* mechanisms offered (hostname) */
    struct from_parser fromp;                /* From:/Sender: after AUTH, loop-only */
};

/* Why a message submitted after AUTH is refused at the end of data. */
enum { FROM_REFUSED_NONE, FROM_REFUSED_FROM, FROM_REFUSED_SENDER, FROM_REFUSED_TEMP };

struct commit_ctx {
    struct smtp_server *srv;
    unsigned long long session_id;
    struct envelope env;
};

static void process_input(struct session *s);
static size_t command_input_max(const struct smtp_server *srv);
static void read_on(struct session *s);
static void session_free(struct session *s);
static void txn_reset(struct session *s);
static void flush_local_headers(struct session *s);

/* ------------------------------------------------------------ session table */

/* ------------------------------------------------------------ output */

/* Replies are appended to the connection's output buffer; the conn writes
 * once per loop pass (the replies to pipelined commands leave in one write)
 * and reports CONN_DRAINED when asked (proto/conn.h). */

static struct evbuffer *out_of(struct session *s)
{
    return conn_output(s->c);
}

/* CONN_DRAINED: the last reply is out (close), or the output that held
 * back pipelined commands is gone (go on). */
static void output_drained(struct session *s)
{
    if (s->state == S_CLOSING) {
        session_free(s);
        return;
    }
    if (s->output_blocked) {
        s->output_blocked = 0;
        if (s->state == S_CMD || s->state == S_DATA) {
            read_on(s);
            process_input(s);
        }
    }
}

/* ------------------------------------------------------------ replies */

static void close_after_reply(struct session *s)
{
    s->state = S_CLOSING;
    conn_read_enable(s->c, 0);
    conn_want_drain(s->c);       /* then output_drained() frees */
}

static void reply(struct session *s, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void reply(struct session *s, int code, const char *enh, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    struct evbuffer *out = out_of(s);
    if (enh && *enh)
        evbuffer_add_printf(out, "%d %s %s\r\n", code, enh, text);
    else
        evbuffer_add_printf(out, "%d %s\r\n", code, text);
}

/* An error reply counts towards smtpd_hard_error_limit. */
static void reply_error(struct session *s, int code, const char *enh, const char *text)
{
    reply(s, code, enh, "%s", text);
    if (++s->errors >= s->srv->p.hard_error_limit && s->srv->p.hard_error_limit > 0) {
        reply(s, 421, "4.7.0", "%s Error: too many errors", s->srv->p.myhostname);
        log_info("too many errors from %s", s->peer_addr);
        close_after_reply(s);
    }
}

static void reply_filter(struct session *s, enum filter_verdict v, const struct filter_reply *r)
{
    char text[300];
    int code = r && r->code ? r->code : (v == FILTER_REJECT ? 550 : 451);
    snprintf(text, sizeof text, "%s", r && r->text[0] ? r->text : "Error: rejected by policy");
    reply_error(s, code, r && r->enh[0] ? r->enh : (code >= 500 ? "5.7.1" : "4.7.1"), text);
}

/* ------------------------------------------------------------ reading control */

/* Read again, unless the client has already closed its side. */
static void read_on(struct session *s)
{
    if (!s->eof)
        conn_read_enable(s->c, 1);
}

/* The client closed its side and everything it sent has been executed:
 * drop an unfinished message, flush the replies, close. */
static void end_at_eof(struct session *s)
{
    if (s->state == S_DATA) {
        log_info("lost connection after DATA from %s", s->peer_addr);
        txn_reset(s);
    }
    close_after_reply(s);
}

static void stop_reading(struct session *s, enum sess_state st)
{
    s->state = st;
    conn_read_enable(s->c, 0);
}

static void resume_reading(struct session *s)
{
    if (s->state == S_CLOSING)
        return;
    s->state = S_CMD;
    read_on(s);
    process_input(s);
}

/* A filter phase ended.  When it ended inside filter_run() the command loop
 * that called it simply goes on (no recursion under pipelining, and no
 * reading switched off and on again); a filter that answered later resumes
 * reading here. */
static void filter_finished(struct session *s)
{
    if (s->state != S_WAIT)
        return;
    if (s->in_filter_call) {
        s->state = S_CMD;
        return;
    }
    resume_reading(s);
}

/* Run a phase's filters.  Reading stops only if one of them is pending. */
static void run_filters(struct session *s, enum filter_phase phase, filter_done_fn done)
{
    s->state = S_WAIT;
    s->in_filter_call = 1;
    s->frun = filter_run(s->filters, phase, &s->txn, done, s);
    s->in_filter_call = 0;
    if (s->state == S_WAIT && s->frun)
        conn_read_enable(s->c, 0);
}

/* ------------------------------------------------------------ transaction */

static void txn_reset(struct session *s)
{
    if (s->c) {
        conn_set_input_max(s->c, command_input_max(s->srv));
        conn_set_min_rate(s->c, 0);
    }
    if (s->hdrbuf)
        evbuffer_free(s->hdrbuf);
    s->hdrbuf = NULL;
    if (s->writing)
        queue_writer_abort(s->srv->q, &s->w);
    s->writing = 0;
    env_clear(&s->env);
    s->have_mail = 0;
    s->nrcpt = 0;
    free(s->rcpt_pending);
    s->rcpt_pending = NULL;
    free(s->rcpt_orcpt);
    s->rcpt_orcpt = NULL;
}

static void txn_view(struct session *s)
{
    s->txn.session_id = s->link.id;
    s->txn.client = s->mode == SMTP_MODE_LOCAL ? NULL : (struct sockaddr *)&s->peer;
    s->txn.client_addr = s->peer_addr;
    s->txn.helo = s->helo ? s->helo : "";
    s->txn.trusted = s->mode == SMTP_MODE_LOCAL;
    s->txn.authenticated = s->auth_user != NULL;
    s->txn.sender = s->have_mail ? s->env.sender : "";
    s->txn.pool = s->srv->ops.pool;
}

static const char *proto_name(const struct session *s)
{
    if (s->mode == SMTP_MODE_LOCAL)
        return "local";
    if (s->esmtp && (s->env.flags & ENV_F_SMTPUTF8)) {   /* RFC 6531 3.7.3 */
        if (s->auth_user)
            return s->tls ? "UTF8SMTPSA" : "UTF8SMTPA";
        return s->tls ? "UTF8SMTPS" : "UTF8SMTP";
    }
    if (s->esmtp) {                      /* RFC 3848 */
        if (s->auth_user)
            return s->tls ? "ESMTPSA" : "ESMTPA";
        return s->tls ? "ESMTPS" : "ESMTP";
    }
    return "SMTP";
}

/* A submission service completes the message: Date:, Message-ID: and
 * From: when missing (RFC 6409 §8, as Postfix's cleanup does for local
 * mail); mail relayed in from port 25 is never changed. */
static int adds_headers(const struct session *s)
{
    return s->mode == SMTP_MODE_LOCAL || s->mode == SMTP_MODE_SUBMISSION ||
           s->mode == SMTP_MODE_SUBMISSIONS;
}

static enum smtp_tls_policy tls_policy(const struct session *s)
{
    switch (s->mode) {
    case SMTP_MODE_MX: return s->srv->p.smtp_tls;
    case SMTP_MODE_SUBMISSION: return s->srv->p.submission_tls;
    case SMTP_MODE_SUBMISSIONS: return SMTP_TLS_ENCRYPT;
    default: return SMTP_TLS_NONE;
    }
}

static SSL_CTX *tls_ctx(const struct session *s)
{
    return s->srv->ops.tls_ctx ? s->srv->ops.tls_ctx(s->gen) : NULL;
}

/* AUTH is offered: on submission (and port 25 with smtpd_sasl_auth_enable),
 * over TLS unless smtpd_tls_auth_only = no, not once logged in. */
static int auth_offered(const struct session *s)
{
    if (s->auth_user || !s->srv->ops.users || !s->srv->ops.pool)
        return 0;
    if (s->mode == SMTP_MODE_LOCAL || (s->mode == SMTP_MODE_MX && !s->srv->p.auth_mx))
        return 0;
    return s->tls || !s->srv->p.tls_auth_only;
}

/* MAIL needs AUTH first: submission with submission_auth = required,
 * unless the client is in auth_exempt_clients. */
static int auth_required(const struct session *s)
{
    if (s->auth_user || !s->srv->p.submission_auth_required)
        return 0;
    if (s->mode != SMTP_MODE_SUBMISSION && s->mode != SMTP_MODE_SUBMISSIONS)
        return 0;
    return !(s->srv->ops.auth_exempt &&
             s->srv->ops.auth_exempt(s->gen, (const struct sockaddr *)&s->peer));
}

/* STARTTLS is offered: a policy that wants it, a certificate, not yet. */
static int starttls_offered(const struct session *s)
{
    return !s->tls && tls_policy(s) != SMTP_TLS_NONE && tls_ctx(s) != NULL;
}

/* ------------------------------------------------------------ commands */

/* The server's SASL parameters plus, once TLS is up, the connection's
 * channel binding: SCRAM-SHA-256-PLUS is offered over TLS only. */
static struct sasl_params session_sasl(struct session *s, unsigned char *cb, size_t cblen)
{
    struct sasl_params p = s->srv->sasl;
    const char *type = NULL;
    int n = conn_tls_channel_binding(s->c, &type, cb, cblen);
    if (n > 0) {
        p.cb_type = type;
        p.cb_data = cb;
        p.cb_len = (size_t)n;
    }
    return p;
}

static void ehlo_reply(struct session *s)
{
    struct evbuffer *out = out_of(s);
    evbuffer_add_printf(out, "250-%s\r\n250-PIPELINING\r\n", s->srv->p.myhostname);
    if (starttls_offered(s))
        evbuffer_add_printf(out, "250-STARTTLS\r\n");
    if (auth_offered(s)) {
        unsigned char cb[SASL_CB_MAX];
        struct sasl_params sp = session_sasl(s, cb, sizeof cb);
        evbuffer_add_printf(out, "250-AUTH %s\r\n", sasl_mech_list(&sp));
    }
    if (s->srv->p.message_size_limit > 0)
        evbuffer_add_printf(out, "250-SIZE %lld\r\n", s->srv->p.message_size_limit);
    else
        evbuffer_add_printf(out, "250-SIZE\r\n");
    evbuffer_add_printf(out, "250-VRFY\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"
                        "250-DSN\r\n250 SMTPUTF8\r\n");
}

static void helo_done(void *arg, enum filter_verdict v, const struct filter_reply *r)
{
    struct session *s = arg;
    s->frun = NULL;
    if (v != FILTER_CONTINUE) {
        free(s->helo);
        s->helo = NULL;
        reply_filter(s, v, r);
    } else if (s->esmtp) {
        ehlo_reply(s);
    } else {
        reply(s, 250, NULL, "%s", s->srv->p.myhostname);
    }
    filter_finished(s);
}

static void cmd_helo_common(struct session *s, const char *arg, int esmtp)
{
    if (smtp_check_helo(arg) < 0) {
        reply_error(s, 501, "5.5.4", esmtp ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
        return;
    }
    txn_reset(s);
    free(s->helo);
    s->helo = strdup(arg);
    if (!s->helo) {
        reply_error(s, 451, "4.3.0", "Error: out of memory");
        return;
    }
    s->esmtp = esmtp;
    txn_view(s);
    run_filters(s, FILTER_HELO, helo_done);
}

static void cmd_ehlo(struct session *s, const char *arg) { cmd_helo_common(s, arg, 1); }
static void cmd_helo(struct session *s, const char *arg) { cmd_helo_common(s, arg, 0); }

static void mail_done(void *arg, enum filter_verdict v, const struct filter_reply *r)
{
    struct session *s = arg;
    s->frun = NULL;
    if (v != FILTER_CONTINUE) {
        env_clear(&s->env);
        reply_filter(s, v, r);
    } else {
        s->have_mail = 1;
        reply(s, 250, "2.1.0", "Ok");
    }
    filter_finished(s);
}

/* 1 if the logged-in user owns addr ("local@domain", local part
 * unquoted), 0 if not, -1 on a temporary failure. */
static int sender_owned(const struct session *s, const char *addr)
{
    if (!s->srv->ops.sender_owned)
        return 1;
    return s->srv->ops.sender_owned(s->gen, s->auth_user, addr);
}

/* After AUTH, MAIL FROM must be an address the user owns, and <> only
 * with allow_null_sender_auth.  0 if it may go on, else answered. */
static int mail_sender_check(struct session *s, const struct addr *path)
{
    char local[ADDR_LOCAL_MAX + 1], addr[ADDR_BUF + 2], text[400];
    int r = 1;
    if (!s->auth_user)
        return 0;                 /* exempt clients, port 25: unaffected */
    if (path->is_null) {
        r = s->srv->p.allow_null_sender_auth;
        addr[0] = '\0';
    } else {
        addr_local_unquoted(path, local, sizeof local);
        snprintf(addr, sizeof addr, "%s@%s", local, path->domain);
        r = sender_owned(s, addr);
    }
    if (r > 0)
        return 0;
    if (r < 0) {
        reply_error(s, 451, "4.3.0", "Sender address rejected: temporary lookup failure");
        return -1;
    }
    log_info("NOQUEUE: reject: MAIL from %s: 553 5.7.1 <%s>: Sender address rejected: "
             "not owned by user %s", s->peer_addr, addr, s->auth_user);
    snprintf(text, sizeof text, "Sender address rejected: not owned by user %s", s->auth_user);
    reply_error(s, 553, "5.7.1", text);
    return -1;
}

static void cmd_mail(struct session *s, const char *arg)
{
    struct smtp_mail_args ma;
    struct smtp_err e;
    if (smtp_parse_mail(arg, &ma, &e) < 0) {
        reply_error(s, e.code, e.enh, e.text);
        return;
    }
    if (s->srv->p.message_size_limit > 0 && ma.size > s->srv->p.message_size_limit) {
        reply_error(s, 552, "5.3.4", "Message size exceeds fixed limit");
        return;
    }
    if (mail_sender_check(s, &ma.path) < 0)
        return;
    env_init(&s->env);
    if (ma.smtputf8)
        s->env.flags |= ENV_F_SMTPUTF8;  /* before proto_name() */
    char client[128];
    if (s->mode == SMTP_MODE_LOCAL)
        snprintf(client, sizeof client, "local uid=%u", (unsigned)s->uid);
    else
        snprintf(client, sizeof client, "%s", s->peer_addr);
    if (env_set_sender(&s->env, ma.path.is_null ? "" : ma.path.full) < 0 ||
        env_set_dsn(&s->env, (enum env_ret)ma.ret, ma.envid) < 0 ||
        env_set_client(&s->env, client, s->helo ? s->helo : "-", proto_name(s)) < 0) {
        env_clear(&s->env);
        reply_error(s, 451, "4.3.0", "Error: out of memory");
        return;
    }
    s->env.arrival_us = time_now_us();
    txn_view(s);
    s->txn.sender = s->env.sender;
    run_filters(s, FILTER_MAIL, mail_done);
}

/* The DSN parameters of one RCPT go to every recipient it expanded to. */
static void rcpt_set_dsn(struct session *s, size_t from)
{
    for (size_t i = from; i < s->env.nrcpt; i++)
        env_rcpt_set_dsn(&s->env.rcpts[i], s->rcpt_notify, s->rcpt_orcpt);
}

static void rcpt_add(struct session *s)
{
    const char *addr = s->rcpt_pending;
    size_t before = s->env.nrcpt;
    switch (s->srv->ops.add_rcpt(s->gen, &s->env, addr, addr)) {
    case SMTP_RCPT_OK:
        rcpt_set_dsn(s, before);
        s->nrcpt++;
        reply(s, 250, "2.1.5", "Ok");
        break;
    case SMTP_RCPT_UNKNOWN:
        reply_error(s, 550, "5.1.1", "Recipient address rejected: User unknown in local recipient table");
        break;
    case SMTP_RCPT_LOOP:
        reply_error(s, 554, "5.4.6", "Recipient address rejected: alias expansion loop");
        break;
    case SMTP_RCPT_TOO_MANY:
        reply_error(s, 552, "5.3.4", "Recipient address rejected: alias expands to too many recipients");
        break;
    default:
        reply_error(s, 451, "4.3.0", "Recipient address rejected: temporary lookup failure");
        break;
    }
}

static void rcpt_done(void *arg, enum filter_verdict v, const struct filter_reply *r)
{
    struct session *s = arg;
    s->frun = NULL;
    if (v != FILTER_CONTINUE)
        reply_filter(s, v, r);
    else
        rcpt_add(s);
    free(s->rcpt_pending);
    s->rcpt_pending = NULL;
    free(s->rcpt_orcpt);
    s->rcpt_orcpt = NULL;
    filter_finished(s);
}

/* The recipient as hatod keeps it: for a local domain "local@domain" with
 * the local part unquoted (the form lookups use; <postmaster> gets the
 * default domain); for any other domain the path as written, quotes kept,
 * so it goes out to the next hop as the client gave it. */
static int rcpt_address(struct session *s, const struct smtp_rcpt_args *ra, char *buf, size_t len)
{
    char local[ADDR_LOCAL_MAX + 1];
    const char *domain = ra->path.domain;
    if (!*domain)
        domain = s->srv->p.default_domain;   /* <postmaster> */
    if (!domain || !*domain)
        return -1;
    if (!s->srv->ops.is_local(s->gen, domain)) {
        snprintf(buf, len, "%s", ra->path.full);
        return 0;
    }
    addr_local_unquoted(&ra->path, local, sizeof local);
    snprintf(buf, len, "%s@%s", local, domain);
    return 0;
}

static void cmd_rcpt(struct session *s, const char *arg)
{
    struct smtp_rcpt_args ra;
    struct smtp_err e;
    char address[ADDR_BUF + 16];
    if (s->srv->p.recipient_limit > 0 && s->nrcpt >= s->srv->p.recipient_limit) {
        reply_error(s, 452, "4.5.3", "Error: too many recipients");
        return;
    }
    if (smtp_parse_rcpt_utf8(arg, (s->env.flags & ENV_F_SMTPUTF8) != 0, &ra, &e) < 0) {
        reply_error(s, e.code, e.enh, e.text);
        return;
    }
    if (rcpt_address(s, &ra, address, sizeof address) < 0) {
        reply_error(s, 550, "5.1.1", "Recipient address rejected: no local postmaster");
        return;
    }
    s->rcpt_pending = strdup(address);
    s->rcpt_notify = ra.notify;
    s->rcpt_orcpt = ra.orcpt[0] ? strdup(ra.orcpt) : NULL;
    if (!s->rcpt_pending || (ra.orcpt[0] && !s->rcpt_orcpt)) {
        free(s->rcpt_pending);
        free(s->rcpt_orcpt);
        s->rcpt_pending = s->rcpt_orcpt = NULL;
        reply_error(s, 451, "4.3.0", "Error: out of memory");
        return;
    }
    const char *at = strrchr(address, '@');
    s->rcpt_local = at ? s->srv->ops.is_local(s->gen, at + 1) : 1;
    txn_view(s);
    s->txn.rcpt = s->rcpt_pending;
    s->txn.rcpt_local = s->rcpt_local;
    run_filters(s, FILTER_RCPT, rcpt_done);
}

static int write_received(struct session *s)
{
    char tls[160];
    conn_tls_describe(s->c, tls, sizeof tls);
    struct received_info ri = {
        .tls = tls,
        .local = s->mode == SMTP_MODE_LOCAL,
        .uid = (unsigned)s->uid,
        .helo = s->helo,
        .client_addr = s->peer_addr,
        .ipv6 = s->peer.ss_family == AF_INET6,
        .myhostname = s->srv->p.myhostname,
        .mail_name = s->srv->p.mail_name,
        .proto = proto_name(s),
        .qid = s->w.id,
        .for_rcpt = s->env.nrcpt == 1 ? s->env.rcpts[0].orcpt : NULL,
        .now = time(NULL),
    };
    size_t n;
    char *buf = received_format(&ri, &n);
    if (!buf)
        return -1;
    int r = queue_writer_write(&s->w, buf, n);
    free(buf);
    return r;
}

static void cmd_data(struct session *s, const char *arg)
{
    if (s->env.nrcpt == 0) {
        reply_error(s, 554, "5.5.1", "Error: no valid recipients");
        return;
    }
    if (*arg) {
        reply_error(s, 501, "5.5.4", "Syntax: DATA");
        return;
    }
    if (queue_writer_open(s->srv->q, &s->w) < 0) {
        log_err("cannot create a queue file: %s", strerror(errno));
        reply_error(s, 452, "4.3.1", "Error: insufficient system storage");
        return;
    }
    s->writing = 1;
    if (write_received(s) < 0) {
        txn_reset(s);
        reply_error(s, 452, "4.3.1", "Error: insufficient system storage");
        return;
    }
    smtp_data_init(&s->data, s->srv->p.bare_lf_reject ? SMTP_BARE_LF_REJECT : SMTP_BARE_LF_NORMALIZE);
    if (adds_headers(s))
        s->hdrbuf = evbuffer_new();
    s->data_overflow = s->header_overflow = 0;
    s->from_refused = FROM_REFUSED_NONE;
    reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
    s->state = S_DATA;
    conn_set_input_max(s->c, SMTP_DATA_INPUT);
    conn_set_min_rate(s->c, s->srv->p.min_data_rate);   /* no drip-feeding */
}

static void cmd_rset(struct session *s, const char *arg)
{
    txn_reset(s);
    reply(s, 250, "2.0.0", "Ok");
}

static void cmd_noop(struct session *s, const char *arg)
{
    reply(s, 250, "2.0.0", "Ok");
}

static void cmd_quit(struct session *s, const char *arg)
{
    reply(s, 221, "2.0.0", "Bye");
    close_after_reply(s);
}

static void cmd_vrfy(struct session *s, const char *arg)
{
    if (!*arg) {
        reply_error(s, 501, "5.5.4", "Syntax: VRFY address");
        return;
    }
    reply(s, 252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery");
}

static void cmd_help(struct session *s, const char *arg)
{
    reply(s, 214, "2.0.0", "Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP");
}

/* RFC 3207: 220, then the handshake on the same connection.  The conn
 * discards whatever plaintext followed the command (CVE-2011-0411); after
 * the handshake the session forgets HELO/EHLO (on_tls_ready). */
static void cmd_starttls(struct session *s, const char *arg)
{
    if (*arg) {
        reply_error(s, 501, "5.5.4", "Syntax: STARTTLS");
        return;
    }
    if (s->tls) {
        reply_error(s, 503, "5.5.1", "Error: TLS already active");
        return;
    }
    SSL_CTX *ctx = starttls_offered(s) ? tls_ctx(s) : NULL;
    if (!ctx) {
        reply_error(s, 502, "5.5.1", "Error: command not implemented");
        return;
    }
    reply(s, 220, "2.0.0", "Ready to start TLS");
    if (conn_starttls(s->c, ctx, 1, NULL) < 0) {
        /* the client starts its handshake after the 220: a 454 now would be
         * read as a broken ServerHello; the 220 leaves and the session ends */
        log_err("cannot start TLS for %s: closed", s->peer_addr);
        close_after_reply(s);
        return;
    }
    s->state = S_TLS;
}

/* ------------------------------------------------------------ AUTH (RFC 4954) */

struct auth_ctx {
    struct smtp_server *srv;
    unsigned long long session_id;
};

static void auth_result(struct session *s, struct sasl_result *r);

static void auth_end(struct session *s)
{
    sasl_free(s->sasl);
    s->sasl = NULL;
    /* the tail of an over-long answer line is skipped as a command line */
    s->lr.skipping = s->lr.skipping || s->auth_lr.skipping;
    s->auth_lr.skipping = 0;
    conn_set_input_max(s->c, command_input_max(s->srv));
}

/* Back to commands after the exchange (the loop reports what is buffered). */
static void auth_resume(struct session *s)
{
    auth_end(s);
    if (s->state == S_CLOSING)
        return;
    s->state = S_CMD;
    read_on(s);
}

static void auth_fail_answer(struct session *s)
{
    reply_error(s, 535, "5.7.8", "Error: authentication failed");
    auth_resume(s);
}

static void on_auth_timer(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;
    (void)fd;
    (void)what;
    if (s->auth_fail_pending) {
        s->auth_fail_pending = 0;
        auth_fail_answer(s);
        process_input(s);
    }
}

/* A failed login: logged as Postfix does (fail2ban), counted, and answered
 * after the throttle's delay — the session waits, the loop does not. */
static void auth_failed(struct session *s, const struct sasl_result *r)
{
    long long delay = login_failure(s->srv->ops.throttle, (const struct sockaddr *)&s->peer,
                                    s->helo, s->peer_addr, r->mech, r->reason);
    if (!s->auth_timer)
        s->auth_timer = evtimer_new(s->srv->base, on_auth_timer, s);
    if (delay <= 0 || !s->auth_timer) {
        auth_fail_answer(s);
        return;
    }
    s->state = S_AUTH_WAIT;
    conn_read_enable(s->c, 0);
    s->auth_fail_pending = 1;
    struct timeval tv = { delay / 1000, (delay % 1000) * 1000 };
    evtimer_add(s->auth_timer, &tv);
}

static void auth_succeeded(struct session *s, const struct sasl_result *r)
{
    s->auth_user = strdup(r->authcid);
    if (!s->auth_user) {
        reply(s, 454, "4.7.0", "Temporary authentication failure");
        auth_resume(s);
        return;
    }
    login_success(s->srv->ops.throttle, (const struct sockaddr *)&s->peer);
    log_info("client=%s, sasl_method=%s, sasl_username=%s", s->peer_addr, r->mech, s->auth_user);
    reply(s, 235, "2.7.0", "Authentication successful");
    auth_resume(s);
}

static void auth_verified(void *arg, enum auth_verdict v)
{
    struct auth_ctx *a = arg;
    struct session *s = sess_table_find(&a->srv->sessions, a->session_id);
    free(a);
    if (!s || s->state != S_AUTH_WAIT || !s->sasl)
        return;                  /* the client left meanwhile */
    if (v == AUTH_TEMPFAIL) {
        reply(s, 454, "4.7.0", "Temporary authentication failure");
        auth_resume(s);
        process_input(s);
        return;
    }
    struct sasl_result r;
    sasl_verified(s->sasl, v == AUTH_PASS, &r);
    auth_result(s, &r);
    if (s->state == S_CMD)
        process_input(s);
}

/* PLAIN and LOGIN hand over a password: crypt() runs in the pool. */
static void auth_verify_start(struct session *s, const struct sasl_result *r)
{
    struct auth_ctx *a = malloc(sizeof *a);
    if (a) {
        a->srv = s->srv;
        a->session_id = s->link.id;
        s->state = S_AUTH_WAIT;
        conn_read_enable(s->c, 0);
        if (auth_verify(s->srv->ops.pool, s->srv->ops.users(s->gen), r->authcid, r->password,
                        auth_verified, a) == 0)
            return;
        free(a);
    }
    reply(s, 454, "4.7.0", "Temporary authentication failure");
    auth_resume(s);
}

static void auth_result(struct session *s, struct sasl_result *r)
{
    switch (r->status) {
    case SASL_CHALLENGE:
        reply(s, 334, NULL, "%s", r->challenge);
        s->state = S_AUTH;
        break;
    case SASL_NEED_VERIFY:
        auth_verify_start(s, r);
        break;
    case SASL_SUCCESS:
        auth_succeeded(s, r);
        break;
    case SASL_CANCEL:
        reply_error(s, 501, "5.7.0", "Authentication aborted");
        auth_resume(s);
        break;
    case SASL_FAIL:
        auth_failed(s, r);
        break;
    }
}

static struct sasl_lookup auth_lookup(struct session *s)
{
    struct sasl_lookup l = { sasl_usertab_find, s->srv->ops.users(s->gen) };
    return l;
}

static void cmd_auth(struct session *s, const char *arg)
{
    char mech[64];
    const char *sp = strchr(arg, ' ');
    size_t n = sp ? (size_t)(sp - arg) : strlen(arg);
    if (!auth_offered(s)) {
        reply_error(s, 503, "5.5.1", s->auth_user ? "Error: already authenticated"
                                                  : "Error: authentication not enabled");
        return;
    }
    if (n == 0 || n >= sizeof mech) {
        reply_error(s, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
        return;
    }
    /* locked out meanwhile (from another session): no more guesses here */
    if (login_locked(s->srv->ops.throttle, (const struct sockaddr *)&s->peer) > 0) {
        reply(s, 421, "4.7.0", "%s Error: too many failed logins, try again later",
              s->srv->p.myhostname);
        close_after_reply(s);
        return;
    }
    memcpy(mech, arg, n);
    mech[n] = '\0';
    struct sasl_lookup l = auth_lookup(s);
    struct sasl_result r;
    /* a SASL answer line may be longer than a command line */
    conn_set_input_max(s->c, SASL_LINE_MAX + 2 > command_input_max(s->srv)
                                 ? SASL_LINE_MAX + 2 : command_input_max(s->srv));
    line_reader_init(&s->auth_lr, SASL_LINE_MAX + 2);
    unsigned char cb[SASL_CB_MAX];
    struct sasl_params params = session_sasl(s, cb, sizeof cb);
    s->sasl = sasl_start(mech, &params, sp ? sp + 1 : NULL, &l, &r);
    if (!s->sasl && r.status != SASL_FAIL) {
        reply(s, 454, "4.7.0", "Temporary authentication failure");
        auth_end(s);
        return;
    }
    if (!s->sasl || (r.status == SASL_FAIL && r.reason && !sasl_mech_offered(mech, &params))) {
        reply_error(s, 504, "5.5.4", "Error: unsupported authentication mechanism");
        auth_end(s);
        return;
    }
    auth_result(s, &r);
}

/* One answer line of the exchange (S_AUTH). */
static void auth_input(struct session *s)
{
    size_t len;
    int bare_lf = 0;
    enum line_status ls = line_read(&s->auth_lr, conn_input(s->c), s->srv->authline, &len, &bare_lf);
    if (ls == LINE_NONE) {
        if (s->eof)
            close_after_reply(s);
        return;
    }
    if (ls == LINE_TOO_LONG) {
        reply_error(s, 500, "5.5.6", "Authentication exchange line is too long");
        auth_resume(s);
        return;
    }
    struct sasl_lookup l = auth_lookup(s);
    struct sasl_result r;
    sasl_step(s->sasl, &l, s->srv->authline, len, &r);
    auth_result(s, &r);
}

static void cmd_not_impl(struct session *s, const char *arg)
{
    reply_error(s, 502, "5.5.1", "Error: command not implemented");
}

/* Preconditions, checked in one place (precheck) before a command runs. */
enum {
    C_IDLE   = 1 << 0,   /* refused during shutdown unless a transaction runs */
    C_HELO   = 1 << 1,   /* after HELO/EHLO (not for the local submission) */
    C_NO_TXN = 1 << 2,   /* not inside a MAIL transaction */
    C_TXN    = 1 << 3,   /* inside one (after MAIL) */
    C_TLS    = 1 << 4,   /* after STARTTLS when the policy is "encrypt" */
    C_AUTH   = 1 << 5,   /* after AUTH where submission requires it */
};

struct smtp_command {
    enum smtp_verb verb;
    unsigned flags;
    const char *busy_text;   /* C_NO_TXN refusal */
    void (*run)(struct session *s, const char *arg);
};

static const struct smtp_command commands[] = {
    { SMTP_V_HELO, C_IDLE, NULL, cmd_helo },
    { SMTP_V_EHLO, C_IDLE, NULL, cmd_ehlo },
    { SMTP_V_MAIL, C_IDLE | C_HELO | C_NO_TXN | C_TLS | C_AUTH, "Error: nested MAIL command",
      cmd_mail },
    { SMTP_V_RCPT, C_TXN, NULL, cmd_rcpt },
    { SMTP_V_DATA, C_TXN, NULL, cmd_data },
    { SMTP_V_RSET, 0, NULL, cmd_rset },
    { SMTP_V_NOOP, 0, NULL, cmd_noop },
    { SMTP_V_QUIT, 0, NULL, cmd_quit },
    { SMTP_V_VRFY, 0, NULL, cmd_vrfy },
    { SMTP_V_HELP, 0, NULL, cmd_help },
    { SMTP_V_EXPN, 0, NULL, cmd_not_impl },
    { SMTP_V_STARTTLS, C_IDLE | C_HELO | C_NO_TXN, "Error: MAIL transaction in progress",
      cmd_starttls },
    { SMTP_V_AUTH, C_IDLE | C_HELO | C_NO_TXN | C_TLS, "Error: MAIL transaction in progress",
      cmd_auth },
    { SMTP_V_BDAT, 0, NULL, cmd_not_impl },
};

/* 0 if the command may run now, else it has been answered. */
static int precheck(struct session *s, const struct smtp_command *c)
{
    if (s->shutting && c->verb != SMTP_V_QUIT && ((c->flags & C_IDLE) || !s->have_mail)) {
        reply(s, 421, "4.3.2", "%s Service shutting down, closing transmission channel",
              s->srv->p.myhostname);
        close_after_reply(s);
        return -1;
    }
    if ((c->flags & C_HELO) && !s->helo && s->mode != SMTP_MODE_LOCAL) {
        reply_error(s, 503, "5.5.1", "Error: send HELO/EHLO first");
        return -1;
    }
    if ((c->flags & C_NO_TXN) && s->have_mail) {
        reply_error(s, 503, "5.5.1", c->busy_text ? c->busy_text : "Error: MAIL transaction in progress");
        return -1;
    }
    if ((c->flags & C_TXN) && !s->have_mail) {
        reply_error(s, 503, "5.5.1", "Error: need MAIL command");
        return -1;
    }
    if ((c->flags & C_TLS) && !s->tls && tls_policy(s) == SMTP_TLS_ENCRYPT) {
        reply_error(s, 530, "5.7.0", "Must issue a STARTTLS command first");
        return -1;
    }
    if ((c->flags & C_AUTH) && auth_required(s)) {
        reply_error(s, 530, "5.7.0", "Authentication required");
        return -1;
    }
    return 0;
}

static void dispatch(struct session *s, const char *line, size_t len)
{
    struct smtp_cmd cmd;
    if (smtp_cmd_parse(line, len, &cmd) < 0 || cmd.verb == SMTP_V_UNKNOWN) {
        reply_error(s, 500, "5.5.2", "Error: command not recognized");
        return;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (commands[i].verb != cmd.verb)
            continue;
        if (precheck(s, &commands[i]) == 0)
            commands[i].run(s, cmd.arg);
        return;
    }
    reply_error(s, 500, "5.5.2", "Error: command not recognized");
}

/* ------------------------------------------------------------ DATA */

static void commit_done(void *arg, int err)
{
    struct commit_ctx *c = arg;
    struct session *s = sess_table_find(&c->srv->sessions, c->session_id);
    if (err) {
        log_err("%s: queue commit failed: %s", c->env.id, strerror(err));
    } else {
        log_info("%s: client=%s, from=<%s>, size=%lld, nrcpt=%zu (queue active)", c->env.id,
                 c->env.client, c->env.sender, c->env.size, c->env.nrcpt);
        c->srv->ops.queued(c->srv->ops.ctx, &c->env);
    }
    if (s && s->state == S_COMMITTING) {
        if (err)
            reply_error(s, 452, "4.3.1", "Error: insufficient system storage");
        else {
            reply(s, 250, "2.0.0", "Ok: queued as %s", c->env.id);
            s->errors = 0;    /* the hard error limit counts errors between deliveries */
        }
        txn_reset(s);
        resume_reading(s);
    }
    env_clear(&c->env);
    free(c);
}

/* The commit could not even start: answer, and go on reading commands
 * (unless that answer hit the error limit and the session is closing). */
static void commit_not_started(struct session *s, int code, const char *enh, const char *text)
{
    txn_reset(s);
    reply_error(s, code, enh, text);
    if (s->state == S_CLOSING)
        return;
    s->state = S_WAIT;
    read_on(s);
    filter_finished(s);
}

static void eom_commit(struct session *s)
{
    struct commit_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        commit_not_started(s, 451, "4.3.0", "Error: out of memory");
        return;
    }
    c->srv = s->srv;
    c->session_id = s->link.id;
    c->env = s->env;              /* the transaction's envelope moves to the commit */
    env_init(&s->env);
    s->writing = 0;
    stop_reading(s, S_COMMITTING);
    if (queue_commit(s->srv->q, &s->w, &c->env, commit_done, c) < 0) {
        log_err("cannot commit a queue file: %s", strerror(errno));
        env_clear(&c->env);
        free(c);
        commit_not_started(s, 452, "4.3.1", "Error: insufficient system storage");
    }
}

static void eom_done(void *arg, enum filter_verdict v, const struct filter_reply *r)
{
    struct session *s = arg;
    s->frun = NULL;
    if (v != FILTER_CONTINUE) {
        txn_reset(s);
        reply_filter(s, v, r);
        filter_finished(s);
        return;
    }
    eom_commit(s);
}

static void data_end(struct session *s)
{
    conn_set_min_rate(s->c, 0);     /* the data has ended: commands again */
    const char *why = NULL;
    const char *enh = "5.3.4";
    int code = 552;
    if (s->data_overflow)
        why = "Error: message file too big";
    else if (s->header_overflow)
        why = "Error: message header size exceeds limit";
    else if (s->w.err) {
        log_err("%s: queue file write error: %s", s->w.id, strerror(s->w.err));
        why = "Error: insufficient system storage";
        code = 452;
        enh = "4.3.1";
    }
    if (why) {
        txn_reset(s);
        s->state = S_CMD;
        reply_error(s, code, enh, why);
        return;
    }
    if (s->hdrbuf)
        flush_local_headers(s);     /* a message that is all header */
    if (s->from_refused) {
        const char *what = s->from_refused == FROM_REFUSED_SENDER ? "Sender:" : "From:";
        char text[400];
        txn_reset(s);
        s->state = S_CMD;
        if (s->from_refused == FROM_REFUSED_TEMP) {
            reply_error(s, 451, "4.3.0", "Error: temporary lookup failure");
            return;
        }
        log_info("reject: END-OF-MESSAGE from %s: 553 5.7.1 %s address not owned by user %s",
                 s->peer_addr, what, s->auth_user);
        snprintf(text, sizeof text, "%s address not owned by user %s", what, s->auth_user);
        reply_error(s, 553, "5.7.1", text);
        return;
    }
    txn_view(s);
    s->txn.sender = s->env.sender;
    run_filters(s, FILTER_EOM, eom_done);
}

/* Every address of the header's `name` fields is owned by the login:
 * 1, or 0 (an address not owned, or a field that does not parse: nothing
 * shows it is owned), -1 on a temporary failure.  *other: one of them is
 * not the login itself. */
static int fields_owned(struct session *s, const char *name, const char *hdr, size_t n,
                        int *other, int *nfields)
{
    struct from_parser *p = &s->srv->fromp;
    from_parser_init(p, name);
    from_parser_feed(p, hdr, n);
    *nfields = p->nfields;
    if (from_parser_end(p) != FROM_OK)
        return 0;
    for (size_t i = 0; i < p->naddrs; i++) {
        int r = sender_owned(s, p->addrs[i]);
        if (r <= 0)
            return r;
        if (strcasecmp(p->addrs[i], s->auth_user) != 0)
            *other = 1;
    }
    return 1;
}

/* A login that can stand in a Sender: field as it is (dot-atom@dot-atom). */
static int header_safe(const char *a)
{
    for (; *a; a++)
        if ((unsigned char)*a <= ' ' || strchr("()<>[]:;\\,\"", *a))
            return 0;
    return 1;
}

/* After AUTH: From: (and a Sender: the client wrote) may name only owned
 * addresses, else from_refused; when From: names an owned address other
 * than the login (or, missing, gets the envelope sender that is one), a
 * "Sender: <login>" goes into add[*used].  Before the fields are written. */
static void originator_check(struct session *s, const char *hdr, size_t n, char *add,
                             size_t addlen, int *used)
{
    int other = 0, nfrom = 0, nsender = 0, other_sender = 0;
    int r = fields_owned(s, "From", hdr, n, &other, &nfrom);
    if (r > 0 && nfrom == 0 && s->env.sender[0] && strcasecmp(s->env.sender, s->auth_user))
        other = 1;                /* the From: added will be the envelope sender */
    if (r <= 0) {
        s->from_refused = r < 0 ? FROM_REFUSED_TEMP : FROM_REFUSED_FROM;
        return;
    }
    r = fields_owned(s, "Sender", hdr, n, &other_sender, &nsender);
    if (r <= 0) {
        s->from_refused = r < 0 ? FROM_REFUSED_TEMP : FROM_REFUSED_SENDER;
        return;
    }
    if (!other || nsender > 0 || *used < 0)
        return;
    const struct user *u = s->srv->ops.users ? users_find(s->srv->ops.users(s->gen), s->auth_user)
                                             : NULL;
    const char *login = u ? u->address : s->auth_user;
    if (!header_safe(login))
        return;
    int k = snprintf(add + *used, addlen - (size_t)*used, "Sender: <%s>\r\n", login);
    if (k > 0 && (size_t)k < addlen - (size_t)*used)
        *used += k;
}

/* Submission: write the fields the message lacks, then its header section
 * (after AUTH, From: and Sender: are checked first). */
static void flush_local_headers(struct session *s)
{
    char add[1536];
    size_t n = evbuffer_get_length(s->hdrbuf);
    const char *hdr = (const char *)evbuffer_pullup(s->hdrbuf, -1);
    int missing = local_headers_missing(hdr ? hdr : "", hdr ? n : 0);
    int alen = local_headers_format(missing, s->env.sender, s->w.id, s->srv->p.myhostname,
                                    time(NULL), add, 1024);
    if (s->auth_user)
        originator_check(s, hdr ? hdr : "", hdr ? n : 0, add, sizeof add, &alen);
    if (alen > 0 && !s->from_refused)
        queue_writer_write(&s->w, add, (size_t)alen);
    if (n && !s->from_refused) {
        queue_writer_write(&s->w, hdr, n);
        /* the header section checked must be the one every reader sees: one
         * that ended at a line that is no field (Postfix's rule, which lenient
         * readers may not share) gets the empty line that ends it */
        if (s->auth_user && !(n == 2 || (n >= 4 && !memcmp(hdr + n - 4, "\r\n\r\n", 4))))
            queue_writer_write(&s->w, "\r\n", 2);
    }
    evbuffer_free(s->hdrbuf);
    s->hdrbuf = NULL;
}

/* Store decoded content unless a limit was crossed (then keep reading and
 * discarding until the end, and answer 552 after it). */
static void data_store(struct session *s, const char *buf, size_t len)
{
    const struct smtp_server_params *p = &s->srv->p;
    if (p->message_size_limit > 0 && s->data.bytes_out > p->message_size_limit)
        s->data_overflow = 1;
    /* header_bytes is final once the header section has ended, possibly in
     * this very chunk: test it whether or not in_header is still set */
    if (p->header_size_limit > 0 && s->data.header_bytes > p->header_size_limit)
        s->header_overflow = 1;
    if (s->data_overflow || s->header_overflow || s->from_refused || !len)
        return;
    if (s->hdrbuf) {
        size_t take = len;
        if (!s->data.in_header) {
            long long start = s->data.bytes_out - (long long)len;   /* offset of buf */
            long long end = s->data.header_bytes;
            take = end > start ? (size_t)(end - start) : 0;
            if (take > len)
                take = len;
        }
        evbuffer_add(s->hdrbuf, buf, take);
        if (s->data.in_header)
            return;
        flush_local_headers(s);
        if (s->from_refused)
            return;               /* answered at the end of data */
        buf += take;
        len -= take;
    }
    if (len)
        queue_writer_write(&s->w, buf, len);
}

/* Decode n octets of DATA; returns how many were used (fewer only at the
 * end of the data or when the session ends on a bare LF). */
static size_t data_step(struct session *s, const char *p, size_t n)
{
    size_t used = 0, outlen = 0;
    enum smtp_data_status st = smtp_data_feed(&s->data, p, n, &used, s->srv->databuf, &outlen);
    if (st == SMTP_DATA_BARE_LF) {
        txn_reset(s);
        reply(s, 521, "5.5.2", "%s Error: bare <LF> received", s->srv->p.myhostname);
        close_after_reply(s);
        return used;
    }
    data_store(s, s->srv->databuf, outlen);
    if (st == SMTP_DATA_END)
        data_end(s);
    return used;
}

/* Message content: what the conn has read (up to SMTP_DATA_INPUT per read
 * event, in 64 KiB reads), decoded in steps of SMTP_DATA_CHUNK.  Octets
 * after the final dot (the next commands) stay in the input buffer. */
static void data_input(struct session *s)
{
    struct evbuffer *in = conn_input(s->c);
    while (s->state == S_DATA && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, SMTP_DATA_CHUNK, NULL, &v, 1) < 1)
            break;
        size_t n = v.iov_len < SMTP_DATA_CHUNK ? v.iov_len : SMTP_DATA_CHUNK;
        evbuffer_drain(in, data_step(s, v.iov_base, n));
    }
}

/* ------------------------------------------------------------ input loop */

static void process_input(struct session *s)
{
    char line[SMTP_LINE_MAX + 1];
    struct evbuffer *in = conn_input(s->c);
    while (s->state == S_CMD || s->state == S_DATA || s->state == S_AUTH) {
        if (s->state == S_AUTH) {
            enum sess_state before = s->state;
            size_t had = evbuffer_get_length(in);
            auth_input(s);
            if (s->state == before && evbuffer_get_length(in) == had)
                return;          /* waiting for the answer */
            continue;
        }
        if (s->state == S_DATA) {
            data_input(s);
            if (s->state == S_DATA) {
                if (s->eof)
                    end_at_eof(s);
                return;          /* waiting for more content */
            }
            continue;
        }
        if (conn_output_full(s->c)) {
            s->output_blocked = 1;          /* until output_drained() */
            conn_want_drain(s->c);
            return;
        }
        size_t len;
        int bare_lf = 0;
        enum line_status ls = line_read(&s->lr, in, line, &len, &bare_lf);
        if (ls == LINE_NONE) {
            if (s->eof)
                end_at_eof(s);
            return;
        }
        if (ls == LINE_TOO_LONG) {
            reply_error(s, 500, "5.5.2", "Line too long");
            continue;
        }
        if (bare_lf && s->srv->p.bare_lf_reject) {
            reply(s, 521, "5.5.2", "%s Error: bare <LF> received", s->srv->p.myhostname);
            close_after_reply(s);
            return;
        }
        dispatch(s, line, len);
    }
}

static void on_timeout(struct session *s)
{
    if (s->state == S_CLOSING) {
        session_free(s);         /* the client does not even take the last reply */
        return;
    }
    if (s->state == S_TLS) {
        log_info("timeout during the TLS handshake from %s", s->peer_addr);
        session_free(s);         /* no channel to answer on */
        return;
    }
    reply(s, 421, "4.4.2", "%s Error: timeout exceeded", s->srv->p.myhostname);
    log_info("timeout after %s from %s", s->state == S_DATA ? "DATA" : "command", s->peer_addr);
    close_after_reply(s);
}

/* The client closed its side: finish what it sent, answer it, close. */
static void on_eof(struct session *s)
{
    if (s->state == S_CLOSING || s->eof)
        return;
    s->eof = 1;
    if (s->state == S_CMD || s->state == S_DATA || s->state == S_AUTH)
        process_input(s);
}

static void greet(struct session *s);

/* The handshake is done: a STARTTLS session starts over (RFC 3207 §4.2:
 * HELO/EHLO and any transaction are forgotten), an implicit-TLS one gets
 * its greeting now. */
static void on_tls_ready(struct session *s)
{
    char desc[160];
    conn_tls_describe(s->c, desc, sizeof desc);
    log_info("TLS connection established from %s: %s", s->peer_addr, desc);
    s->tls = 1;
    txn_reset(s);
    free(s->helo);
    s->helo = NULL;
    free(s->auth_user);          /* a login before TLS is knowledge to drop too */
    s->auth_user = NULL;
    s->esmtp = 0;
    if (!s->greeted) {
        greet(s);
        return;
    }
    s->state = S_CMD;
    read_on(s);
}

static void on_conn(struct conn *c, enum conn_event ev, void *arg)
{
    struct session *s = arg;
    (void)c;
    switch (ev) {
    case CONN_READ:
        process_input(s);
        break;
    case CONN_DRAINED:
        output_drained(s);
        break;
    case CONN_EOF:
        on_eof(s);
        break;
    case CONN_TIMEOUT:
        on_timeout(s);
        break;
    case CONN_TLS_READY:
        on_tls_ready(s);
        break;
    case CONN_ERROR:
        if (s->state == S_TLS)
            log_info("TLS handshake failed for %s: %s", s->peer_addr, conn_error(s->c));
        else
            log_debug("connection error from %s: %s", s->peer_addr, conn_error(s->c));
        session_free(s);
        break;
    }
}

/* ------------------------------------------------------------ lifecycle */

static void session_free(struct session *s)
{
    if (s->frun)
        filter_run_cancel(s->frun);
    s->frun = NULL;
    txn_reset(s);
    s->srv->ops.gen_unref(s->srv->ops.ctx, s->gen);
    sess_table_remove(&s->srv->sessions, &s->link);
    conn_free(s->c);
    free(s->helo);
    sasl_free(s->sasl);
    free(s->auth_user);
    if (s->auth_timer)
        event_free(s->auth_timer);
    if (s->on_close)
        s->on_close(s->close_arg);
    free(s);
}

static void connect_done(void *arg, enum filter_verdict v, const struct filter_reply *r)
{
    struct session *s = arg;
    s->frun = NULL;
    if (v != FILTER_CONTINUE) {
        reply_filter(s, v, r);
        close_after_reply(s);
        return;
    }
    reply(s, 220, NULL, "%s", s->srv->p.banner);
    filter_finished(s);
}

/* Command mode buffers at most smtpd_pipelining_limit lines (the rest wait
 * in the kernel); DATA takes a whole read event's worth at a time. */
static size_t command_input_max(const struct smtp_server *srv)
{
    return (size_t)srv->p.pipelining_limit * SMTP_LINE_MAX;
}

/* The start failed before the session owned anything but fd. */
static int start_failed(struct smtp_server *srv, struct session *s, int fd,
                        void (*on_close)(void *arg), void *close_arg)
{
    log_err("cannot start a session for %s: out of memory", s ? s->peer_addr : "a client");
    if (s) {
        sess_table_remove(&s->srv->sessions, &s->link);
        srv->ops.gen_unref(srv->ops.ctx, s->gen);
        free(s);
    }
    close(fd);
    if (on_close)
        on_close(close_arg);    /* the caller's accounting ends here too */
    return -1;
}

int smtp_session_start(struct smtp_server *srv, int fd, struct evbuffer *pending,
                       enum smtp_mode mode, const struct sockaddr *peer, socklen_t peerlen,
                       uid_t uid, void (*on_close)(void *arg), void *close_arg)
{
    struct session *s = calloc(1, sizeof *s);
    if (!s)
        return start_failed(srv, NULL, fd, on_close, close_arg);
    s->srv = srv;
    s->mode = mode;
    s->uid = uid;
    s->on_close = on_close;
    s->close_arg = close_arg;
    if (peer && peerlen <= sizeof s->peer) {
        memcpy(&s->peer, peer, peerlen);
        ip_to_string(peer, s->peer_addr, sizeof s->peer_addr);
    } else {
        snprintf(s->peer_addr, sizeof s->peer_addr, "local");
    }
    line_reader_init(&s->lr, SMTP_LINE_MAX);
    env_init(&s->env);
    s->w.fd = -1;
    s->gen = srv->ops.gen_ref(srv->ops.ctx, &s->filters);
    sess_table_add(&srv->sessions, &s->link, s);
    struct conn_limits lim = {
        .input_max = command_input_max(srv),
        .output_high = SMTP_OUTPUT_MAX,
        .read_max = SMTP_DATA_INPUT,
        .timeout_ms = (int)(srv->p.timeout * 1000),
    };
    s->c = conn_new(srv->base, fd, &lim, on_conn, s);
    if (!s->c)
        return start_failed(srv, s, fd, on_close, close_arg);
    conn_set_work_pool(s->c, srv->ops.pool);     /* handshakes off the loop */
    /* a local client may have sent commands along with its first line */
    if (pending && evbuffer_add_buffer(conn_input(s->c), pending) < 0) {
        session_free(s);
        return -1;
    }
    if (srv->shutting) {
        reply(s, 421, "4.3.2", "%s Service shutting down", srv->p.myhostname);
        close_after_reply(s);
        return 0;
    }
    if (mode == SMTP_MODE_SUBMISSIONS) {
        /* implicit TLS (RFC 8314): the greeting comes after the handshake */
        SSL_CTX *ctx = tls_ctx(s);
        if (!ctx || conn_starttls(s->c, ctx, 1, NULL) < 0) {
            log_err("no TLS for the implicit-TLS session of %s: closed", s->peer_addr);
            session_free(s);
            return -1;
        }
        s->state = S_TLS;
        return 0;
    }
    greet(s);
    return 0;
}

/* The connect phase: filters, then the 220 greeting. */
static void greet(struct session *s)
{
    s->greeted = 1;
    s->state = S_CMD;
    long long left = 0;
    if (s->mode != SMTP_MODE_LOCAL)
        left = login_locked(s->srv->ops.throttle, (const struct sockaddr *)&s->peer);
    if (left > 0) {
        /* locked out after failed logins: every service says so at once */
        reply(s, 421, "4.7.0", "%s Error: too many failed logins, try again later",
              s->srv->p.myhostname);
        log_info("refused %s: locked out for %lld s more after failed logins", s->peer_addr, left);
        close_after_reply(s);
        return;
    }
    txn_view(s);
    run_filters(s, FILTER_CONNECT, connect_done);
    if (s->state == S_CMD)
        read_on(s);              /* reports buffered input from the loop */
}

/* ------------------------------------------------------------ server */

static char *dup_or_empty(const char *x)
{
    return strdup(x ? x : "");
}

void smtp_server_set_params(struct smtp_server *srv, const struct smtp_server_params *p)
{
    for (int i = 0; i < 4; i++)
        free(srv->strings[i]);
    srv->p = *p;
    srv->strings[0] = dup_or_empty(p->myhostname);
    srv->strings[1] = dup_or_empty(p->mail_name);
    srv->strings[2] = dup_or_empty(p->banner);
    srv->strings[3] = dup_or_empty(p->default_domain);
    srv->p.default_domain = srv->strings[3];
    srv->p.myhostname = srv->strings[0] ? srv->strings[0] : "localhost";
    srv->p.mail_name = srv->strings[1] ? srv->strings[1] : "hato";
    srv->p.banner = srv->strings[2] ? srv->strings[2] : "ESMTP";
    if (srv->p.pipelining_limit < 1)
        srv->p.pipelining_limit = 1;
    memset(&srv->sasl, 0, sizeof srv->sasl);
    srv->sasl.hostname = srv->p.myhostname;
    srv->sasl.final_as_challenge = 1;    /* SCRAM's server-final as a 334 */
}

struct smtp_server *smtp_server_new(struct event_base *base, struct queue *q,
                                    const struct smtp_server_ops *ops,
                                    const struct smtp_server_params *params)
{
    struct smtp_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return NULL;
    srv->base = base;
    srv->q = q;
    srv->ops = *ops;
    smtp_server_set_params(srv, params);
    return srv;
}

size_t smtp_server_sessions(const struct smtp_server *srv)
{
    return srv->sessions.n;
}

static void count_busy(void *owner, void *arg)
{
    const struct session *s = owner;
    if (s->have_mail || s->state == S_COMMITTING || s->state == S_DATA)
        (*(size_t *)arg)++;
}

size_t smtp_server_busy(const struct smtp_server *srv)
{
    size_t n = 0;
    sess_table_each((struct sess_table *)&srv->sessions, count_busy, &n);
    return n;
}

static void shutdown_one(void *owner, void *arg)
{
    struct session *s = owner;
    (void)arg;
    s->shutting = 1;
    if (s->state == S_CMD && !s->have_mail) {
        reply(s, 421, "4.3.2", "%s Service shutting down, closing transmission channel",
              s->srv->p.myhostname);
        close_after_reply(s);
    }
}

void smtp_server_shutdown(struct smtp_server *srv)
{
    srv->shutting = 1;
    sess_table_each(&srv->sessions, shutdown_one, NULL);
}

void smtp_server_free(struct smtp_server *srv)
{
    if (!srv)
        return;
    for (struct session *s; (s = sess_table_any(&srv->sessions));)
        session_free(s);
    for (int i = 0; i < 4; i++)
        free(srv->strings[i]);
    free(srv);
}
