/*
 * proto/smtp_client.c — the SMTP client state machine (contract in
 * smtp_client.h): non-blocking connect, greeting, EHLO/HELO, STARTTLS,
 * MAIL/RCPT/DATA with or without PIPELINING, the content stream, RSET and
 * QUIT, per-phase timeouts.  Owns the session's conn and the content
 * file's fd.  Must never block the loop (the content is read in bounded
 * chunks, in the pool when there is one), send a line that does not end
 * in CRLF or a bare CR/LF inside the data, or call its caller back from
 * inside one of the caller's own calls (those go through ev_defer).
 *
 * A pool read job holds a reference: a client freed while one is out stays
 * allocated, inert, until its done callback runs (the pool cannot cancel).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "lib/base64.h"
#include "lib/work.h"
#include "proto/conn.h"
#include "proto/lineio.h"
#include "proto/smtp_client.h"
#include "proto/smtp_reply.h"

#define CLIENT_INPUT_MAX (32 * 1024)
#define PENDING_MAX 4096            /* replies awaited in one pipelined group */

enum state {
    S_NEW, S_CONNECTING, S_GREETING, S_EHLO, S_HELO, S_STARTTLS, S_TLS,
    S_AUTH, S_AUTH_USER, S_AUTH_PASS,
    S_READY, S_TXN, S_BODY, S_DOT, S_RSET, S_QUIT, S_CLOSED, S_FAILED,
};

/* What a reply in S_TXN answers. */
enum await { A_MAIL, A_RCPT, A_DATA };

struct read_job {
    struct smtp_client *cl;
    const char *path;               /* opened by the first read (fd < 0) */
    int fd;
    long long off;
    ssize_t n;
    int err;
    size_t cap;                     /* of buf: the message's size, at most SMTP_CLIENT_CHUNK */
    char buf[];
};

struct smtp_client {
    uint64_t id;
    struct event_base *base;
    struct smtp_client_opts o;
    smtp_client_cb cb;
    void *arg;
    enum state st;
    int fd;                         /* while connecting */
    struct conn *c;
    struct event ev_connect, ev_defer;
    enum smtp_client_event deferred;
    struct line_reader lr;
    struct smtp_reply reply;
    struct smtp_ext ext;
    struct smtp_client_status status;
    char host[256], ip[46];
    int port;
    char tls_version[16], tls_cipher[64];   /* kept when the conn closes */
    int helo_sent;                  /* HELO after a refused EHLO */
    /* the transaction */
    struct smtp_msg *msg;
    size_t next_rcpt;               /* next recipient to consider sending */
    size_t *sent;                   /* recipients whose RCPT went out, in order */
    unsigned char *acc;             /* per recipient: RCPT got a 2xx */
    size_t nsent, nreplied;         /* RCPTs sent / answered */
    int mail_sent, mail_replied, mail_ok, data_sent;
    size_t accepted;
    int pipelining;
    int txn_open;                   /* MAIL accepted, no final reply/RSET yet */
    int rset_first, rset_sent, rset_replied;   /* smtp_client_send_reset() */
    /* the content */
    int content_fd;
    long long content_off;
    struct read_job *job;           /* the chunk buffer; in the pool while job_out */
    int job_out, content_eof;
    struct smtp_dot_enc enc;
    int in_cb, dead;
};

static uint64_t next_id;

/* ------------------------------------------------------------ the DATA encoder */

void smtp_dot_enc_init(struct smtp_dot_enc *e)
{
    e->bol = 1;
    e->skip_lf = 0;
    e->col = 0;
}

/* Octets of one line (no CR or LF among them), folded at SMTP_LINE_FOLD. */
static int add_folded(struct smtp_dot_enc *e, const char *p, size_t n, struct evbuffer *out)
{
    while (n > 0) {
        if (e->col >= SMTP_LINE_FOLD) {
            if (evbuffer_add(out, "\r\n ", 3) < 0)
                return -1;
            e->col = 1;
        }
        size_t k = SMTP_LINE_FOLD - e->col;
        if (k > n)
            k = n;
        if (evbuffer_add(out, p, k) < 0)
            return -1;
        e->col += k;
        p += k;
        n -= k;
    }
    return 0;
}

int smtp_dot_encode(struct smtp_dot_enc *e, const char *in, size_t n, struct evbuffer *out)
{
    size_t i = 0;
    while (i < n) {
        if (e->skip_lf) {
            e->skip_lf = 0;
            if (in[i] == '\n') {
                i++;
                continue;
            }
        }
        if (in[i] == '\r' || in[i] == '\n') {
            if (evbuffer_add(out, "\r\n", 2) < 0)
                return -1;
            e->bol = 1;
            e->col = 0;
            e->skip_lf = in[i] == '\r';
            i++;
            continue;
        }
        if (e->bol && in[i] == '.' && add_folded(e, ".", 1, out) < 0)
            return -1;
        e->bol = 0;
        size_t j = i;
        while (j < n && in[j] != '\r' && in[j] != '\n')
            j++;
        if (add_folded(e, in + i, j - i, out) < 0)
            return -1;
        i = j;
    }
    return 0;
}

int smtp_dot_enc_end(struct smtp_dot_enc *e, struct evbuffer *out)
{
    if (!e->bol && evbuffer_add(out, "\r\n", 2) < 0)
        return -1;
    e->bol = 1;
    e->skip_lf = 0;
    e->col = 0;
    return evbuffer_add(out, ".\r\n", 3);
}

/* ------------------------------------------------------------ reporting */

static void really_free(struct smtp_client *cl)
{
    if (cl->c)
        conn_free(cl->c);
    if (cl->fd >= 0)
        close(cl->fd);
    if (cl->content_fd >= 0)
        close(cl->content_fd);
    event_del(&cl->ev_connect);
    event_del(&cl->ev_defer);
    free(cl->job);
    free(cl->sent);
    free(cl->acc);
    free(cl);
}

static void maybe_free(struct smtp_client *cl)
{
    if (cl->dead && cl->in_cb == 0 && !cl->job_out)
        really_free(cl);
}

/* Tell the caller.  Returns -1 if the client was freed meanwhile. */
static int report(struct smtp_client *cl, enum smtp_client_event ev)
{
    if (cl->dead)
        return -1;
    cl->in_cb++;
    cl->cb(cl->arg, cl->id, ev);
    cl->in_cb--;
    if (cl->dead) {
        maybe_free(cl);
        return -1;
    }
    return 0;
}

static void on_defer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct smtp_client *cl = arg;
    report(cl, cl->deferred);
}

/* Report from the loop, not from inside the caller's call. */
static void report_later(struct smtp_client *cl, enum smtp_client_event ev)
{
    cl->deferred = ev;
    event_active(&cl->ev_defer, 0, 0);
}

static void set_status(struct smtp_client *cl, const char *stage, int code, const char *enh,
                       const char *text)
{
    cl->status.stage = stage;
    cl->status.code = code;
    snprintf(cl->status.enh, sizeof cl->status.enh, "%s", enh);
    snprintf(cl->status.text, sizeof cl->status.text, "%s", text);
}

static const char *stage_name(const struct smtp_client *cl)
{
    switch (cl->st) {
    case S_NEW: case S_CONNECTING: return "connect";
    case S_GREETING: return "greeting";
    case S_EHLO: return "EHLO";
    case S_HELO: return "HELO";
    case S_STARTTLS: return "STARTTLS";
    case S_TLS: return "TLS";
    case S_AUTH: case S_AUTH_USER: case S_AUTH_PASS: return "AUTH";
    case S_TXN:
        if (cl->rset_sent && !cl->rset_replied)
            return "RSET";
        return !cl->mail_replied ? "MAIL" : cl->nreplied < cl->nsent ? "RCPT" : "DATA";
    case S_BODY: return "DATA";
    case S_DOT: return "end of data";
    case S_RSET: return "RSET";
    case S_QUIT: return "QUIT";
    default: return "idle";
    }
}

static void close_conn(struct smtp_client *cl)
{
    if (cl->c) {
        conn_free(cl->c);
        cl->c = NULL;
    }
    if (cl->fd >= 0) {
        close(cl->fd);
        cl->fd = -1;
    }
    if (cl->content_fd >= 0 && !cl->job_out) {
        close(cl->content_fd);
        cl->content_fd = -1;
    }
    event_del(&cl->ev_connect);
}

/* Recipients not refused for good are TEMP with the failure. */
static void rcpts_temp(struct smtp_client *cl)
{
    if (!cl->msg)
        return;
    for (size_t i = 0; i < cl->msg->n; i++) {
        struct smtp_rcpt *r = &cl->msg->rcpts[i];
        if (r->cls == SMTP_C_PERM || r->cls == SMTP_C_TEMP)
            continue;            /* a reply of its own (RCPT 4xx/5xx) says more */
        r->cls = SMTP_C_TEMP;
        r->code = cl->status.code;
        snprintf(r->enh, sizeof r->enh, "%s", cl->status.enh);
        snprintf(r->text, sizeof r->text, "%.*s", (int)sizeof r->text - 1, cl->status.text);
    }
}

/* A site failure: close, fail the transaction's open recipients, report. */
static void site_fail(struct smtp_client *cl, int code, const char *enh, const char *fmt,
                      const char *arg)
{
    char text[SMTP_LINE_MAX + 32];
    snprintf(text, sizeof text, fmt, arg);
    set_status(cl, stage_name(cl), code, enh, text);
    rcpts_temp(cl);
    close_conn(cl);
    cl->st = S_FAILED;
    cl->msg = NULL;
    report(cl, SMTP_CLIENT_FAILED);
}

/* ------------------------------------------------------------ sending */

static int text_safe(const char *s)
{
    for (; s && *s; s++)
        if (*s == '\r' || *s == '\n' || (unsigned char)*s < 0x20)
            return 0;
    return 1;
}

static int addr_safe(const char *s)
{
    return s && text_safe(s) && !strpbrk(s, "<> ") && strlen(s) <= 256;
}

/* One command line; only ever "text CRLF" (callers checked the text). */
static void send_line(struct smtp_client *cl, const char *line)
{
    evbuffer_add_printf(conn_output(cl->c), "%s\r\n", line);
}

static void phase_timeout(struct smtp_client *cl, int ms)
{
    conn_set_timeout(cl->c, ms);
}

static void send_ehlo(struct smtp_client *cl, int helo)
{
    char line[SMTP_LINE_MAX];
    snprintf(line, sizeof line, "%s %s", helo ? "HELO" : "EHLO", cl->o.helo_name);
    smtp_ext_init(&cl->ext);
    cl->st = helo ? S_HELO : S_EHLO;
    phase_timeout(cl, cl->o.t.helo);
    send_line(cl, line);
}

/* ------------------------------------------------------------ results */

static void rcpt_set(struct smtp_rcpt *r, enum smtp_class cls, int code, const char *enh,
                     const char *text)
{
    r->cls = cls;
    r->code = code;
    snprintf(r->enh, sizeof r->enh, "%s", enh);
    snprintf(r->text, sizeof r->text, "%s", text);
}

static enum smtp_class class_of(int code)
{
    return code / 100 == 2 ? SMTP_C_OK : code / 100 == 4 ? SMTP_C_TEMP : SMTP_C_PERM;
}

/* The reply's enhanced code, or X.0.0 from its class (as Postfix does). */
static const char *reply_enh(const struct smtp_reply *r, char *buf, size_t len)
{
    if (r->enh[0])
        return r->enh;
    snprintf(buf, len, "%d.0.0", r->code / 100);
    return buf;
}

static void rcpt_from_reply(struct smtp_rcpt *r, const struct smtp_reply *rep)
{
    char e[16];
    rcpt_set(r, class_of(rep->code), rep->code, reply_enh(rep, e, sizeof e), rep->text);
}

/* Every recipient without a result yet (or: every accepted one) gets rep. */
static void rcpts_from_reply(struct smtp_client *cl, const struct smtp_reply *rep, int accepted)
{
    for (size_t i = 0; i < cl->msg->n; i++)
        if (cl->msg->rcpts[i].cls == SMTP_C_NONE && (!accepted || cl->acc[i]))
            rcpt_from_reply(&cl->msg->rcpts[i], rep);
}

/* Every recipient without a result gets this local decision. */
static void rcpts_local(struct smtp_client *cl, enum smtp_class cls, int code, const char *enh,
                        const char *text)
{
    for (size_t i = 0; i < cl->msg->n; i++)
        if (cl->msg->rcpts[i].cls == SMTP_C_NONE)
            rcpt_set(&cl->msg->rcpts[i], cls, code, enh, text);
}

static void txn_done(struct smtp_client *cl)
{
    cl->msg = NULL;
    cl->st = S_READY;
    phase_timeout(cl, 0);
    report(cl, SMTP_CLIENT_DONE);
}

/* ------------------------------------------------------------ the content */

static void content_step(struct smtp_client *cl);

/* The open too runs where the reads run (the pool, when there is one). */
static void read_chunk(struct read_job *j)
{
    if (j->fd < 0)
        j->fd = open(j->path, O_RDONLY | O_CLOEXEC);
    j->n = j->fd < 0 ? -1 : pread(j->fd, j->buf, j->cap, (off_t)j->off);
    j->err = j->n < 0 ? errno : 0;
}

static void job_run(void *arg)
{
    read_chunk(arg);
}

static void local_fail(struct smtp_client *cl, const char *why, const char *arg)
{
    cl->status.local = 1;
    site_fail(cl, 0, "4.3.0", why, arg);
}

/* The content is all out: the end of data. */
static void end_body(struct smtp_client *cl)
{
    cl->content_eof = 1;
    close(cl->content_fd);
    cl->content_fd = -1;
    if (smtp_dot_enc_end(&cl->enc, conn_output(cl->c)) < 0) {
        local_fail(cl, "%s", "out of memory");
        return;
    }
    cl->st = S_DOT;
    phase_timeout(cl, cl->o.t.data_done);
}

static void got_chunk(struct smtp_client *cl)
{
    struct read_job *j = cl->job;
    if (j->n < 0) {
        local_fail(cl, "cannot read the queue file: %s", strerror(j->err));
        return;
    }
    if (j->n == 0) {
        end_body(cl);
        return;
    }
    cl->content_off += j->n;
    if (smtp_dot_encode(&cl->enc, j->buf, (size_t)j->n, conn_output(cl->c)) < 0) {
        local_fail(cl, "%s", "out of memory");
        return;
    }
    /* a short read of a regular file is its end (queue files never grow):
     * no second read just to see 0 (one pool round trip per small message) */
    if ((size_t)j->n < j->cap)
        end_body(cl);
}

static void job_done(void *arg)
{
    struct read_job *j = arg;
    struct smtp_client *cl = j->cl;
    cl->job_out = 0;
    cl->content_fd = j->fd;
    if (cl->dead) {
        maybe_free(cl);
        return;
    }
    if (cl->st != S_BODY) {          /* failed meanwhile */
        if (cl->content_fd >= 0 && !cl->c) {
            close(cl->content_fd);
            cl->content_fd = -1;
        }
        return;
    }
    cl->in_cb++;
    got_chunk(cl);
    if (!cl->dead && cl->st == S_BODY)
        content_step(cl);
    cl->in_cb--;
    maybe_free(cl);
}

/* Keep the output fed: the next chunk while it is under the mark. */
static void content_step(struct smtp_client *cl)
{
    while (cl->st == S_BODY && !cl->job_out && !cl->content_eof) {
        if (evbuffer_get_length(conn_output(cl->c)) >= SMTP_CLIENT_OUT_HIGH) {
            conn_want_drain(cl->c);
            return;
        }
        struct read_job *j = cl->job;
        j->cl = cl;
        j->fd = cl->content_fd;
        j->path = cl->msg->content_path;
        j->off = cl->content_off;
        if (cl->o.pool) {
            cl->job_out = 1;
            if (work_submit(cl->o.pool, WORK_DELIVERY, job_run, job_done, j) < 0) {
                cl->job_out = 0;
                local_fail(cl, "%s", "the worker pool is shutting down");
            }
            return;
        }
        read_chunk(j);               /* one bounded read per turn of this loop */
        cl->content_fd = j->fd;
        got_chunk(cl);
    }
}

/* The chunk buffer for this message: its size and one octet more, so
 * that a small message is one read whose shortness says it is all (4 KiB
 * pages; at most SMTP_CLIENT_CHUNK).  A session keeps the largest it had.
 * No read of an earlier body is out here: S_BODY is left only by end_body
 * (no read out) or for S_FAILED, which no transaction leaves. */
static struct read_job *chunk_buffer(struct smtp_client *cl)
{
    size_t want = SMTP_CLIENT_CHUNK;
    if (cl->msg->size > 0 && (unsigned long long)cl->msg->size < SMTP_CLIENT_CHUNK)
        want = ((size_t)cl->msg->size + 1 + 4095) / 4096 * 4096;
    if (want > SMTP_CLIENT_CHUNK)
        want = SMTP_CLIENT_CHUNK;
    if (cl->job && cl->job->cap >= want)
        return cl->job;
    free(cl->job);
    cl->job = malloc(sizeof *cl->job + want);
    if (cl->job)
        cl->job->cap = want;
    return cl->job;
}

static void start_body(struct smtp_client *cl)
{
    if (!chunk_buffer(cl)) {
        local_fail(cl, "%s", "out of memory");
        return;
    }
    cl->content_fd = -1;            /* the first read opens it */
    cl->content_off = 0;
    cl->content_eof = 0;
    smtp_dot_enc_init(&cl->enc);
    cl->st = S_BODY;
    phase_timeout(cl, cl->o.t.data_xfer);
    content_step(cl);
}

/* ------------------------------------------------------------ the transaction */

static void send_mail(struct smtp_client *cl)
{
    struct smtp_msg *m = cl->msg;
    char line[SMTP_LINE_MAX * 2];
    size_t n = (size_t)snprintf(line, sizeof line, "MAIL FROM:<%s>", m->sender);
    if (cl->ext.flags & SMTP_EXT_SIZE)
        n += (size_t)snprintf(line + n, sizeof line - n, " SIZE=%lld", m->size);
    if (m->body_8bit && (cl->ext.flags & SMTP_EXT_8BITMIME))
        n += (size_t)snprintf(line + n, sizeof line - n, " BODY=8BITMIME");
    if (m->smtputf8)
        n += (size_t)snprintf(line + n, sizeof line - n, " SMTPUTF8");
    if (m->mail_dsn_params && *m->mail_dsn_params && (cl->ext.flags & SMTP_EXT_DSN))
        snprintf(line + n, sizeof line - n, " %s", m->mail_dsn_params);
    send_line(cl, line);
    cl->mail_sent = 1;
}

/* The next recipient to send, skipping those refused locally.  1 if sent. */
static int send_rcpt(struct smtp_client *cl)
{
    struct smtp_msg *m = cl->msg;
    while (cl->next_rcpt < m->n) {
        size_t i = cl->next_rcpt++;
        struct smtp_rcpt *r = &m->rcpts[i];
        if (r->cls != SMTP_C_NONE)
            continue;
        char line[SMTP_LINE_MAX * 2];
        int dsn = r->dsn_params && *r->dsn_params && (cl->ext.flags & SMTP_EXT_DSN);
        snprintf(line, sizeof line, "RCPT TO:<%s>%s%s", r->addr, dsn ? " " : "",
                 dsn ? r->dsn_params : "");
        send_line(cl, line);
        cl->sent[cl->nsent++] = i;
        return 1;
    }
    return 0;
}

/* Send what may go now: MAIL, every RCPT and DATA with PIPELINING (DATA
 * last in the group, RFC 2920), else the one command whose turn it is. */
static void txn_send(struct smtp_client *cl)
{
    if (cl->rset_first && !cl->rset_sent) {
        phase_timeout(cl, cl->o.t.rset);
        send_line(cl, "RSET");       /* RFC 2920: may open a pipelined group */
        cl->rset_sent = 1;
        if (!cl->pipelining)
            return;
    }
    if (cl->rset_first && !cl->rset_replied && !cl->pipelining)
        return;
    if (!cl->mail_sent) {
        phase_timeout(cl, cl->o.t.mail);
        send_mail(cl);
        if (!cl->pipelining)
            return;
    }
    if (send_rcpt(cl)) {
        phase_timeout(cl, cl->o.t.rcpt);
        if (!cl->pipelining)
            return;
        while (send_rcpt(cl))
            ;
    }
    if (!cl->data_sent && (cl->pipelining || (cl->mail_ok && cl->accepted > 0))) {
        phase_timeout(cl, cl->o.t.data_init);
        send_line(cl, "DATA");
        cl->data_sent = 1;
    }
}

static int replies_outstanding(const struct smtp_client *cl)
{
    return (cl->rset_sent && !cl->rset_replied) || (cl->mail_sent && !cl->mail_replied) ||
           cl->nreplied < cl->nsent;
}

static void on_data_reply(struct smtp_client *cl, const struct smtp_reply *rep)
{
    if (rep->code == 354) {
        if (cl->mail_ok && cl->accepted > 0) {
            start_body(cl);
            return;
        }
        /* DATA accepted after every recipient failed (RFC 2920 §3.1): an
         * empty message that the server should refuse; its reply is ignored */
        evbuffer_add(conn_output(cl->c), ".\r\n", 3);
        cl->st = S_DOT;
        cl->accepted = 0;
        phase_timeout(cl, cl->o.t.data_done);
        return;
    }
    if (cl->mail_ok)
        rcpts_from_reply(cl, rep, 1);
    txn_done(cl);
}

static void reply_fail(struct smtp_client *cl, const struct smtp_reply *rep);

static void on_txn_reply(struct smtp_client *cl, const struct smtp_reply *rep)
{
    if (cl->rset_sent && !cl->rset_replied) {
        cl->rset_replied = 1;
        if (rep->code / 100 != 2) {
            reply_fail(cl, rep);     /* a session that cannot be reset is no use */
            return;
        }
        if (!cl->pipelining)
            txn_send(cl);            /* MAIL now */
        return;
    }
    if (cl->mail_sent && !cl->mail_replied) {
        cl->mail_replied = 1;
        if (rep->code / 100 == 2) {
            cl->mail_ok = 1;
            cl->txn_open = 1;
        } else {
            rcpts_from_reply(cl, rep, 0);
        }
    } else if (cl->nreplied < cl->nsent) {
        size_t i = cl->sent[cl->nreplied++];
        if (cl->mail_ok && rep->code / 100 == 2) {
            cl->acc[i] = 1;
            cl->accepted++;
        } else if (cl->mail_ok) {
            rcpt_from_reply(&cl->msg->rcpts[i], rep);
        }
    } else if (cl->data_sent) {
        on_data_reply(cl, rep);
        return;
    }
    if (replies_outstanding(cl))
        return;
    if (!cl->pipelining && cl->mail_ok) {
        txn_send(cl);                /* the next RCPT, or DATA */
        if (replies_outstanding(cl) || cl->data_sent)
            return;
    }
    if (!cl->data_sent)
        txn_done(cl);                /* nobody accepted: no DATA */
}

static void on_dot_reply(struct smtp_client *cl, const struct smtp_reply *rep)
{
    cl->txn_open = 0;
    if (cl->accepted > 0)
        rcpts_from_reply(cl, rep, 1);
    txn_done(cl);
}

/* ------------------------------------------------------------ session replies */

static void set_reply_status(struct smtp_client *cl, const struct smtp_reply *rep)
{
    char e[16];
    set_status(cl, stage_name(cl), rep->code, reply_enh(rep, e, sizeof e), rep->text);
}

static void reply_fail(struct smtp_client *cl, const struct smtp_reply *rep)
{
    char e[16], text[SMTP_LINE_MAX + 24];
    snprintf(text, sizeof text, "%d %s%s%s", rep->code, rep->enh, rep->enh[0] ? " " : "",
             rep->text);
    site_fail(cl, rep->code, reply_enh(rep, e, sizeof e), "%s", text);
}

static void session_ready(struct smtp_client *cl)
{
    cl->st = S_READY;
    phase_timeout(cl, 0);
    report(cl, SMTP_CLIENT_READY);
}

/* ------------------------------------------------------------ AUTH */

/* base64 of n octets as one command line "prefix B64"; the secret is
 * wiped from the stack afterwards. */
static void send_b64(struct smtp_client *cl, const char *prefix, const char *in, size_t n)
{
    char line[SMTP_LINE_MAX * 2];
    char b64[B64_ENCODED_SIZE(SMTP_LINE_MAX)];
    b64_encode((const unsigned char *)in, n, b64);
    snprintf(line, sizeof line, "%s%s", prefix, b64);
    send_line(cl, line);
    memset(b64, 0, sizeof b64);
    memset(line, 0, sizeof line);
}

static int sasl_wanted(const struct smtp_client *cl)
{
    return cl->o.sasl_user && *cl->o.sasl_user && cl->o.sasl_pass;
}

/* After the last EHLO: AUTH if we have credentials and the server offers
 * PLAIN or LOGIN; otherwise READY. */
static void auth_or_ready(struct smtp_client *cl)
{
    if (!sasl_wanted(cl) || !(cl->ext.flags & SMTP_EXT_AUTH) ||
        !(cl->ext.auth & (SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN))) {
        session_ready(cl);
        return;
    }
    if (cl->o.sasl_tls_required && !conn_is_tls(cl->c)) {
        site_fail(cl, 0, "4.7.0", "%s", "not sending the SASL password without TLS "
                  "(smtp_sasl_tls_required)");
        return;
    }
    size_t ul = strlen(cl->o.sasl_user), pl = strlen(cl->o.sasl_pass);
    if (!text_safe(cl->o.sasl_user) || ul + pl + 2 > SMTP_LINE_MAX / 2) {
        cl->status.local = 1;
        site_fail(cl, 0, "4.7.0", "%s", "unusable SASL credentials");
        return;
    }
    phase_timeout(cl, cl->o.t.helo);
    if (cl->ext.auth & SMTP_AUTH_PLAIN) {
        char buf[SMTP_LINE_MAX];
        buf[0] = '\0';              /* authzid empty, NUL user NUL pass */
        memcpy(buf + 1, cl->o.sasl_user, ul);
        buf[1 + ul] = '\0';
        memcpy(buf + 2 + ul, cl->o.sasl_pass, pl);
        cl->st = S_AUTH;
        send_b64(cl, "AUTH PLAIN ", buf, ul + pl + 2);
        memset(buf, 0, sizeof buf);
        return;
    }
    cl->st = S_AUTH_USER;
    send_line(cl, "AUTH LOGIN");
}

static void on_auth_reply(struct smtp_client *cl, const struct smtp_reply *rep)
{
    if (rep->code == 235 && cl->st == S_AUTH) {
        session_ready(cl);
        return;
    }
    if (rep->code == 334 && cl->st == S_AUTH_USER) {
        cl->st = S_AUTH_PASS;
        send_b64(cl, "", cl->o.sasl_user, strlen(cl->o.sasl_user));
        return;
    }
    if (rep->code == 334 && cl->st == S_AUTH_PASS) {
        cl->st = S_AUTH;             /* the next reply is the outcome */
        send_b64(cl, "", cl->o.sasl_pass, strlen(cl->o.sasl_pass));
        return;
    }
    char text[SMTP_LINE_MAX + 40];
    snprintf(text, sizeof text, "SASL authentication failed: %d %s%s%s", rep->code, rep->enh,
             rep->enh[0] ? " " : "", rep->text);
    site_fail(cl, rep->code, "4.7.0", "%s", text);   /* deferred, as Postfix does */
}

static void tls_missing(struct smtp_client *cl, const char *why)
{
    cl->status.tls_missing = 1;
    site_fail(cl, 0, "4.7.4", "TLS is required, but %s", why);
}

static void on_ehlo_reply(struct smtp_client *cl, const struct smtp_reply *rep)
{
    if (rep->code / 100 == 5 && cl->st == S_EHLO && !conn_is_tls(cl->c) &&
        cl->o.tls != SMTP_TLS_ENCRYPT) {
        send_ehlo(cl, 1);            /* an old server: HELO */
        return;
    }
    if (rep->code / 100 != 2) {
        reply_fail(cl, rep);
        return;
    }
    if (conn_is_tls(cl->c) || cl->o.tls == SMTP_TLS_NONE || !cl->o.tls_ctx) {
        if (cl->o.tls == SMTP_TLS_ENCRYPT && !conn_is_tls(cl->c)) {
            tls_missing(cl, "no TLS context was configured");
            return;
        }
        auth_or_ready(cl);
        return;
    }
    if (!(cl->ext.flags & SMTP_EXT_STARTTLS)) {
        if (cl->o.tls == SMTP_TLS_ENCRYPT)
            tls_missing(cl, "it was not offered by the host");
        else
            auth_or_ready(cl);
        return;
    }
    cl->st = S_STARTTLS;
    phase_timeout(cl, cl->o.t.starttls);
    send_line(cl, "STARTTLS");
}

static int is_ip(const char *s)
{
    unsigned char b[16];
    return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

static void on_starttls_reply(struct smtp_client *cl, const struct smtp_reply *rep)
{
    if (rep->code != 220) {
        if (cl->o.tls == SMTP_TLS_ENCRYPT) {
            char why[SMTP_LINE_MAX + 32];
            snprintf(why, sizeof why, "STARTTLS was refused: %d %s", rep->code, rep->text);
            tls_missing(cl, why);
        } else {
            auth_or_ready(cl);       /* may: on in plaintext (Postfix) */
        }
        return;
    }
    cl->st = S_TLS;
    const char *sni = cl->host[0] && !is_ip(cl->host) ? cl->host : NULL;
    if (conn_starttls(cl->c, cl->o.tls_ctx, 0, sni) < 0) {
        cl->status.tls_failed = 1;
        site_fail(cl, 0, "4.7.5", "%s", "cannot start TLS");
    }
}

static void on_reply(struct smtp_client *cl)
{
    const struct smtp_reply *rep = &cl->reply;
    if (rep->code == 421 && cl->st != S_QUIT) {
        reply_fail(cl, rep);         /* the server is closing: next MX */
        return;
    }
    switch (cl->st) {
    case S_GREETING:
        if (rep->code != 220) {
            reply_fail(cl, rep);
            return;
        }
        send_ehlo(cl, 0);
        return;
    case S_EHLO:
    case S_HELO:
        on_ehlo_reply(cl, rep);
        return;
    case S_STARTTLS:
        on_starttls_reply(cl, rep);
        return;
    case S_AUTH:
    case S_AUTH_USER:
    case S_AUTH_PASS:
        on_auth_reply(cl, rep);
        return;
    case S_TXN:
        set_reply_status(cl, rep);
        on_txn_reply(cl, rep);
        return;
    case S_DOT:
        set_reply_status(cl, rep);
        on_dot_reply(cl, rep);
        return;
    case S_RSET:
        if (rep->code / 100 != 2) {
            reply_fail(cl, rep);
            return;
        }
        cl->txn_open = 0;
        session_ready(cl);
        return;
    case S_QUIT:
        close_conn(cl);
        cl->st = S_CLOSED;
        report(cl, SMTP_CLIENT_CLOSED);
        return;
    default:
        /* a reply nobody asked for (while idle or sending the content) */
        site_fail(cl, rep->code, "4.4.2", "unexpected reply: %s", rep->text);
        return;
    }
}

/* Take complete replies out of the input. */
static void on_input(struct smtp_client *cl)
{
    char line[SMTP_LINE_MAX + 1];
    size_t len;
    int bare;
    while (cl->c && cl->st != S_TLS) {
        enum line_status ls = line_read(&cl->lr, conn_input(cl->c), line, &len, &bare);
        if (ls == LINE_NONE)
            return;
        if (ls == LINE_TOO_LONG) {
            site_fail(cl, 0, "4.4.2", "%s", "protocol error: reply line too long");
            return;
        }
        const char *text;
        size_t tlen;
        int r = smtp_reply_line(&cl->reply, line, len, &text, &tlen);
        if (r < 0) {
            site_fail(cl, 0, "4.4.2", "protocol error: malformed reply \"%.80s\"", line);
            return;
        }
        if ((cl->st == S_EHLO) && cl->reply.nlines > 1 && cl->reply.code == 250)
            smtp_ext_line(&cl->ext, text, tlen);
        if (r == 0)
            continue;
        on_reply(cl);
        if (cl->dead || cl->st == S_FAILED || cl->st == S_CLOSED)
            return;
    }
}

/* ------------------------------------------------------------ conn events */

static void conn_event(struct smtp_client *cl, enum conn_event ev)
{
    switch (ev) {
    case CONN_READ:
        on_input(cl);
        return;
    case CONN_DRAINED:
        if (cl->st == S_BODY)
            content_step(cl);
        return;
    case CONN_TLS_READY:
        snprintf(cl->tls_version, sizeof cl->tls_version, "%s", conn_tls_version(cl->c));
        snprintf(cl->tls_cipher, sizeof cl->tls_cipher, "%s", conn_tls_cipher(cl->c));
        send_ehlo(cl, 0);            /* RFC 3207 §4.2: forget what was said before */
        return;
    case CONN_EOF:
        if (cl->st == S_QUIT) {
            close_conn(cl);
            cl->st = S_CLOSED;
            report(cl, SMTP_CLIENT_CLOSED);
            return;
        }
        on_input(cl);                /* a last reply before the close */
        if (!cl->dead && cl->c)
            site_fail(cl, 0, "4.4.2", "lost connection with %s", cl->host);
        return;
    case CONN_TIMEOUT:
        site_fail(cl, 0, "4.4.2", "timeout with %s", cl->host);
        return;
    case CONN_ERROR:
        if (cl->st == S_TLS) {
            cl->status.tls_failed = 1;
            site_fail(cl, 0, "4.7.5", "%s", conn_error(cl->c));
            return;
        }
        site_fail(cl, 0, "4.4.2", "%s", conn_error(cl->c));
        return;
    }
}

/* Entry points from the loop are framed: a client freed by its caller in
 * a callback is released only when the frame ends (the handlers below
 * still hold the pointer). */
static void on_conn(struct conn *c, enum conn_event ev, void *arg)
{
    struct smtp_client *cl = arg;
    (void)c;
    cl->in_cb++;
    conn_event(cl, ev);
    cl->in_cb--;
    maybe_free(cl);
}

/* ------------------------------------------------------------ connecting */

static void connected(struct smtp_client *cl)
{
    struct conn_limits lim = { CLIENT_INPUT_MAX, 2 * SMTP_CLIENT_OUT_HIGH, 0, cl->o.t.helo };
    cl->c = conn_new(cl->base, cl->fd, &lim, on_conn, cl);
    if (!cl->c) {
        cl->status.local = 1;
        site_fail(cl, 0, "4.3.0", "%s", "out of memory");
        return;
    }
    cl->fd = -1;                     /* the conn's now */
    line_reader_init(&cl->lr, SMTP_LINE_MAX);
    smtp_reply_init(&cl->reply);
    cl->st = S_GREETING;
}

static void on_connect(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_client *cl = arg;
    if (what & EV_TIMEOUT) {         /* the last thing done in this handler */
        site_fail(cl, 0, "4.4.1", "connect to %s: timed out", cl->ip);
        return;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        char why[128];
        snprintf(why, sizeof why, "connect to %s: %s", cl->ip, strerror(err));
        site_fail(cl, 0, "4.4.1", "%s", why);
        return;
    }
    connected(cl);
}

static void connect_failed_later(struct smtp_client *cl, int err)
{
    char why[128];
    snprintf(why, sizeof why, "connect to %s: %s", cl->ip, strerror(err));
    set_status(cl, "connect", 0, "4.4.1", why);
    close_conn(cl);
    cl->st = S_FAILED;
    report_later(cl, SMTP_CLIENT_FAILED);
}

int smtp_client_connect(struct smtp_client *cl, const struct sockaddr *sa, socklen_t len,
                        const char *host)
{
    if (cl->st != S_NEW || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
        return -1;
    const void *raw = sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                                               : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    inet_ntop(sa->sa_family, raw, cl->ip, sizeof cl->ip);
    cl->port = ntohs(sa->sa_family == AF_INET ? ((const struct sockaddr_in *)sa)->sin_port
                                              : ((const struct sockaddr_in6 *)sa)->sin6_port);
    snprintf(cl->host, sizeof cl->host, "%s", host && *host ? host : cl->ip);
    cl->st = S_CONNECTING;
    cl->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (cl->fd < 0) {
        connect_failed_later(cl, errno);
        return 0;
    }
    if (connect(cl->fd, sa, len) < 0 && errno != EINPROGRESS) {
        connect_failed_later(cl, errno);
        return 0;
    }
    /* even an immediate success is reported through the event: never from
     * inside this call */
    event_assign(&cl->ev_connect, cl->base, cl->fd, EV_WRITE, on_connect, cl);
    int ms = cl->o.t.connect;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    event_add(&cl->ev_connect, ms > 0 ? &tv : NULL);
    return 0;
}

/* ------------------------------------------------------------ the API */

void smtp_client_timeouts_default(struct smtp_client_timeouts *t)
{
    t->connect = 30000;
    t->helo = 300000;
    t->starttls = 300000;
    t->mail = 300000;
    t->rcpt = 300000;
    t->data_init = 120000;
    t->data_xfer = 180000;
    t->data_done = 600000;
    t->rset = 20000;
    t->quit = 300000;
}

struct smtp_client *smtp_client_new(struct event_base *base, const struct smtp_client_opts *o,
                                    smtp_client_cb cb, void *arg)
{
    struct smtp_client *cl = calloc(1, sizeof *cl);
    if (!cl)
        return NULL;
    cl->id = ++next_id;
    cl->base = base;
    cl->o = *o;
    if (!cl->o.helo_name || !*cl->o.helo_name || !text_safe(cl->o.helo_name) ||
        strchr(cl->o.helo_name, ' '))
        cl->o.helo_name = "localhost";
    cl->cb = cb;
    cl->arg = arg;
    cl->fd = -1;
    cl->content_fd = -1;
    cl->status.stage = "connect";
    event_assign(&cl->ev_defer, base, -1, 0, on_defer, cl);
    event_assign(&cl->ev_connect, base, -1, 0, on_connect, cl);
    return cl;
}

/* Local refusals before MAIL: the size limit, SMTPUTF8, unsafe addresses. */
static int txn_precheck(struct smtp_client *cl, struct smtp_msg *m)
{
    char text[SMTP_LINE_MAX];
    if ((cl->ext.flags & SMTP_EXT_SIZE) && cl->ext.size > 0 && m->size > cl->ext.size) {
        snprintf(text, sizeof text, "message size %lld exceeds size limit %lld of server %s[%s]",
                 m->size, cl->ext.size, cl->host, cl->ip);
        rcpts_local(cl, SMTP_C_PERM, 0, "5.3.4", text);
        return -1;
    }
    if (m->smtputf8 && !(cl->ext.flags & SMTP_EXT_SMTPUTF8)) {
        snprintf(text, sizeof text, "SMTPUTF8 is required, but was not offered by host %s[%s]",
                 cl->host, cl->ip);
        rcpts_local(cl, SMTP_C_PERM, 0, "5.6.7", text);
        return -1;
    }
    if (!m->sender || (*m->sender && !addr_safe(m->sender)) ||
        (m->mail_dsn_params && !text_safe(m->mail_dsn_params))) {
        rcpts_local(cl, SMTP_C_PERM, 0, "5.1.7", "bad sender address syntax");
        return -1;
    }
    size_t usable = 0;
    for (size_t i = 0; i < m->n; i++) {
        struct smtp_rcpt *r = &m->rcpts[i];
        if (!addr_safe(r->addr) || !*r->addr || (r->dsn_params && !text_safe(r->dsn_params)))
            rcpt_set(r, SMTP_C_PERM, 0, "5.1.3", "bad recipient address syntax");
        else
            usable++;
    }
    return usable > 0 ? 0 : -1;
}

static int send_txn(struct smtp_client *cl, struct smtp_msg *m, int rset_first)
{
    if (cl->st != S_READY || cl->txn_open || !m || !m->content_path)
        return -1;
    cl->rset_first = rset_first;
    cl->rset_sent = cl->rset_replied = 0;
    free(cl->sent);
    free(cl->acc);
    cl->sent = calloc(m->n ? m->n : 1, sizeof *cl->sent);
    cl->acc = calloc(m->n ? m->n : 1, 1);
    if (!cl->sent || !cl->acc)
        return -1;
    for (size_t i = 0; i < m->n; i++) {
        m->rcpts[i].cls = SMTP_C_NONE;
        m->rcpts[i].code = 0;
        m->rcpts[i].enh[0] = m->rcpts[i].text[0] = '\0';
    }
    cl->msg = m;
    cl->next_rcpt = cl->nsent = cl->nreplied = cl->accepted = 0;
    cl->mail_sent = cl->mail_replied = cl->mail_ok = cl->data_sent = 0;
    cl->pipelining = (cl->ext.flags & SMTP_EXT_PIPELINING) != 0;
    if (txn_precheck(cl, m) < 0) {
        cl->msg = NULL;
        report_later(cl, SMTP_CLIENT_DONE);
        return 0;
    }
    cl->st = S_TXN;
    txn_send(cl);
    return 0;
}

int smtp_client_send(struct smtp_client *cl, struct smtp_msg *m)
{
    return send_txn(cl, m, 0);
}

int smtp_client_send_reset(struct smtp_client *cl, struct smtp_msg *m)
{
    return send_txn(cl, m, 1);
}

int smtp_client_reset(struct smtp_client *cl)
{
    if (cl->st != S_READY)
        return -1;
    cl->st = S_RSET;
    phase_timeout(cl, cl->o.t.rset);
    send_line(cl, "RSET");
    return 0;
}

int smtp_client_quit(struct smtp_client *cl)
{
    if (cl->st != S_READY)
        return -1;
    cl->st = S_QUIT;
    phase_timeout(cl, cl->o.t.quit);
    send_line(cl, "QUIT");
    return 0;
}

void smtp_client_free(struct smtp_client *cl)
{
    if (!cl || cl->dead)
        return;
    cl->dead = 1;
    if (cl->c) {
        conn_free(cl->c);
        cl->c = NULL;
    }
    event_del(&cl->ev_connect);
    event_del(&cl->ev_defer);
    maybe_free(cl);
}

uint64_t smtp_client_id(const struct smtp_client *cl) { return cl->id; }
const struct smtp_client_status *smtp_client_status(const struct smtp_client *cl)
{
    return &cl->status;
}
const struct smtp_ext *smtp_client_ext(const struct smtp_client *cl) { return &cl->ext; }
const char *smtp_client_host(const struct smtp_client *cl) { return cl->host; }
const char *smtp_client_ip(const struct smtp_client *cl) { return cl->ip; }
int smtp_client_port(const struct smtp_client *cl) { return cl->port; }
int smtp_client_pipelined(const struct smtp_client *cl) { return cl->pipelining; }

const char *smtp_client_tls_version(const struct smtp_client *cl)
{
    return cl->c ? conn_tls_version(cl->c) : cl->tls_version[0] ? cl->tls_version : NULL;
}

const char *smtp_client_tls_cipher(const struct smtp_client *cl)
{
    return cl->c ? conn_tls_cipher(cl->c) : cl->tls_cipher[0] ? cl->tls_cipher : NULL;
}
