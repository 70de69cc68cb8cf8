/*
 * proto/pop3_msg.c — the octets of a message as RETR/TOP send them:
 * line ends, dot-stuffing, TOP's cut, the final dot.  Owns no buffer: it
 * appends to the caller's evbuffer a line's run at a time (memchr for the
 * LF; for RETR, runs of lines that need no change as one append), so a big
 * message costs a pass, not a copy per octet.
 */
#include <string.h>

#include <event2/buffer.h>

#include "proto/pop3_msg.h"

void pop3_msg_out_init(struct pop3_msg_out *m, long top)
{
    memset(m, 0, sizeof *m);
    m->top = top;
    m->bol = 1;
    m->in_header = 1;
}

int pop3_msg_out_done(const struct pop3_msg_out *m)
{
    return m->done;
}

/* A line ended (its LF is next in the input). */
static int line_end(struct pop3_msg_out *m, struct evbuffer *out)
{
    if (evbuffer_add(out, m->cr ? "\n" : "\r\n", m->cr ? 1 : 2) < 0)
        return -1;
    int empty = m->linelen == 0 || (m->linelen == 1 && m->cr);
    if (m->in_header) {
        if (empty) {
            m->in_header = 0;
            if (m->top == 0)
                m->done = 1;
        }
    } else if (m->top >= 0 && ++m->lines >= m->top) {
        m->done = 1;
    }
    m->bol = 1;
    m->cr = 0;
    m->linelen = 0;
    return 0;
}

static int add_run(struct evbuffer *out, const char *in, size_t from, size_t to)
{
    return to > from ? evbuffer_add(out, in + from, to - from) : 0;
}

/* RETR: no cut, so no line counting; what needs no change (CRLF lines not
 * starting with a dot: all of a message hato stored) leaves in one run per
 * chunk instead of two appends per line. */
static int feed_whole(struct pop3_msg_out *m, const char *in, size_t n, struct evbuffer *out)
{
    size_t run = 0, i = 0;      /* in[run, i) goes out as it is */
    while (i < n) {
        if (m->bol) {
            m->bol = 0;
            if (in[i] == '.') {
                if (add_run(out, in, run, i) < 0 || evbuffer_add(out, ".", 1) < 0)
                    return -1;
                run = i;
            }
        }
        const char *lf = memchr(in + i, '\n', n - i);
        if (!lf) {
            m->cr = in[n - 1] == '\r';
            i = n;
            break;
        }
        size_t end = (size_t)(lf - in);
        if (!(end > i ? in[end - 1] == '\r' : m->cr)) {    /* a bare LF: CRLF */
            if (add_run(out, in, run, end) < 0 || evbuffer_add(out, "\r\n", 2) < 0)
                return -1;
            run = end + 1;
        }
        m->cr = 0;
        m->bol = 1;
        i = end + 1;
    }
    return add_run(out, in, run, i);
}

int pop3_msg_out_feed(struct pop3_msg_out *m, const char *in, size_t n, struct evbuffer *out)
{
    if (m->top < 0)
        return feed_whole(m, in, n, out);
    size_t i = 0;
    while (i < n && !m->done) {
        if (m->bol) {
            m->bol = 0;
            if (in[i] == '.' && evbuffer_add(out, ".", 1) < 0)
                return -1;
        }
        const char *lf = memchr(in + i, '\n', n - i);
        size_t end = lf ? (size_t)(lf - in) : n;
        if (end > i) {
            /* the CR of a CRLF is sent as it is; line_end adds the LF */
            if (evbuffer_add(out, in + i, end - i) < 0)
                return -1;
            m->cr = in[end - 1] == '\r';
            m->linelen += end - i;
        }
        if (!lf)
            break;
        if (line_end(m, out) < 0)
            return -1;
        i = end + 1;
    }
    return 0;
}

int pop3_msg_out_end(struct pop3_msg_out *m, struct evbuffer *out)
{
    if (!m->bol && !m->done && evbuffer_add(out, "\r\n", 2) < 0)
        return -1;
    return evbuffer_add(out, ".\r\n", 3);
}
