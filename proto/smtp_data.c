/*
 * proto/smtp_data.c — the DATA stream decoder (see smtp_data.h for the rules).
 *
 * Owns: finding <CR><LF>.<CR><LF> (and nothing else) as the end of data,
 * dot-unstuffing after a real CRLF, bare-LF normalisation or rejection, and
 * measuring the header section.
 * Must never: end the data on any other line-end variant (SMTP smuggling,
 * CVE-2023-51764), depend on how the input is split, or write more than
 * 2 * inlen octets of output.
 *
 * Shape: a per-byte state machine (step) that is the definition of the
 * behaviour, plus a fast path (fast_run) that copies runs of ordinary text
 * and whole CRLF lines not starting with '.', CR or LF in one memcpy; it is
 * only entered in S_TEXT and stops wherever step would do anything but copy.
 */
#include <string.h>

#include "proto/smtp_data.h"

enum {
    S_BOL = 0,  /* line start after a real CRLF, or data start: '.' unstuffs */
    S_BOLN,     /* line start after a (normalised) bare LF: no unstuffing */
    S_DOT,      /* S_BOL then '.', which was dropped; output line empty */
    S_DOTCR,    /* S_DOT then CR, held back (LF next ends the data) */
    S_TEXT,     /* inside a line with content */
    S_CR0,      /* CR (emitted) at the start of an output line */
    S_CR1,      /* CR (emitted) after content */
    S_END,      /* end of data seen; sticky */
    S_BARELF,   /* bare LF under REJECT; sticky */
};

enum {          /* header-section scanner over the decoded output */
    H_LSTART = 0,   /* at the start of a line */
    H_NAME,         /* in a field name */
    H_NAMEWS,       /* white space after a field name (obsolete syntax) */
    H_VALUE,        /* in a field body or a continuation line */
    H_CR,           /* CR inside a header line */
    H_EMPTYCR,      /* CR at the start of a line */
};

struct data_ctx {
    struct smtp_data *d;
    char *out;        /* start of this call's output */
    char *o;          /* next octet to write */
};

void smtp_data_init(struct smtp_data *d, enum smtp_bare_lf policy)
{
    d->state = S_BOL;
    d->policy = policy;
    d->in_header = 1;
    d->header_bytes = 0;
    d->bytes_out = 0;
    d->hstate = H_LSTART;
    d->line_start = 0;
}

static void header_end(struct smtp_data *d, long long at)
{
    d->in_header = 0;
    d->header_bytes = at;
}

/* Field-name octets (RFC 5322 §3.6.8): printable US-ASCII except ':'. */
static int ftext(unsigned char ch)
{
    return ch >= 33 && ch <= 126 && ch != ':';
}

/* One octet of output at offset `pos` while in the header section. */
static void header_octet(struct smtp_data *d, unsigned char ch, long long pos)
{
    switch (d->hstate) {
    case H_LSTART:
        d->line_start = pos;
        if (ch == '\r')
            d->hstate = H_EMPTYCR;
        else if (ch == ' ' || ch == '\t')
            d->hstate = pos == 0 ? (header_end(d, 0), H_VALUE) : H_VALUE;
        else if (ftext(ch))
            d->hstate = H_NAME;
        else
            header_end(d, pos);
        return;
    case H_NAME:
        if (ch == ':')
            d->hstate = H_VALUE;
        else if (ch == ' ' || ch == '\t')
            d->hstate = H_NAMEWS;
        else if (!ftext(ch))
            header_end(d, d->line_start);
        return;
    case H_NAMEWS:
        if (ch == ':')
            d->hstate = H_VALUE;
        else if (ch != ' ' && ch != '\t')
            header_end(d, d->line_start);
        return;
    case H_EMPTYCR:
        if (ch == '\n')
            header_end(d, pos + 1);      /* the empty line belongs to the header */
        else
            header_end(d, d->line_start);
        return;
    case H_CR:
        d->hstate = ch == '\n' ? H_LSTART : H_VALUE;
        return;
    default:
        if (ch == '\r')
            d->hstate = H_CR;
        return;
    }
}

/* Run the header scanner over this call's output while the header lasts. */
static void header_scan(struct smtp_data *d, const char *out, size_t n)
{
    long long base = d->bytes_out;
    for (size_t i = 0; i < n && d->in_header; i++)
        header_octet(d, (unsigned char)out[i], base + (long long)i);
    if (d->in_header)
        d->header_bytes = base + (long long)n;
}

/* A bare LF: normalised to CRLF, or refused. */
static enum smtp_data_status bare_lf(struct data_ctx *c)
{
    if (c->d->policy == SMTP_BARE_LF_REJECT) {
        c->d->state = S_BARELF;
        return SMTP_DATA_BARE_LF;
    }
    *c->o++ = '\r';
    *c->o++ = '\n';
    c->d->state = S_BOLN;
    return SMTP_DATA_MORE;
}

static enum smtp_data_status step_text(struct data_ctx *c, char ch)
{
    if (ch == '\n')
        return bare_lf(c);
    *c->o++ = ch;
    c->d->state = ch == '\r' ? S_CR1 : S_TEXT;
    return SMTP_DATA_MORE;
}

/* At the start of an output line (S_BOL after any dot test, S_BOLN, S_DOT). */
static enum smtp_data_status step_linestart(struct data_ctx *c, char ch)
{
    if (ch == '\n')
        return bare_lf(c);
    *c->o++ = ch;
    c->d->state = ch == '\r' ? S_CR0 : S_TEXT;
    return SMTP_DATA_MORE;
}

/* After an emitted CR: LF makes it a line end, anything else leaves it bare. */
static enum smtp_data_status step_cr(struct data_ctx *c, char ch)
{
    if (ch != '\n')
        return step_text(c, ch);
    *c->o++ = '\n';
    c->d->state = S_BOL;
    return SMTP_DATA_MORE;
}

/* One input octet through the state machine. */
static enum smtp_data_status step(struct data_ctx *c, char ch)
{
    switch (c->d->state) {
    case S_BOL:
        if (ch == '.') {
            c->d->state = S_DOT;
            return SMTP_DATA_MORE;
        }
        return step_linestart(c, ch);
    case S_BOLN:
        return step_linestart(c, ch);
    case S_DOT:
        if (ch == '\r') {
            c->d->state = S_DOTCR;
            return SMTP_DATA_MORE;
        }
        return step_linestart(c, ch);
    case S_DOTCR:
        if (ch == '\n') {
            c->d->state = S_END;
            return SMTP_DATA_END;
        }
        *c->o++ = '\r';             /* a bare CR after the dropped dot */
        return step_text(c, ch);
    case S_CR0:
        return step_cr(c, ch);
    case S_CR1:
        return step_cr(c, ch);
    case S_END:
        return SMTP_DATA_END;
    case S_BARELF:
        return SMTP_DATA_BARE_LF;
    default:
        return step_text(c, ch);
    }
}

/* In S_TEXT: copy everything up to the first octet that needs step().
 * Whole lines "text\r\n" are taken as long as the next line starts with an
 * ordinary octet (not '.', CR, LF); the state left is S_TEXT, or S_BOL if
 * the run ends just after a CRLF. */
static const char *fast_run(struct data_ctx *c, const char *p, const char *end)
{
    const char *start = p, *stop;

    for (;;) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        const char *lim = lf ? lf : end;
        const char *cr = memchr(p, '\r', (size_t)(lim - p));

        if (lf == NULL || cr != lf - 1) {
            stop = cr ? cr : lim;           /* a bare CR, a bare LF, or the end */
            break;
        }
        p = lf + 1;                         /* a CRLF line */
        if (p == end || *p == '.' || *p == '\r' || *p == '\n') {
            c->d->state = S_BOL;
            stop = p;
            break;
        }
    }
    memcpy(c->o, start, (size_t)(stop - start));
    c->o += stop - start;
    return stop;
}

enum smtp_data_status smtp_data_feed(struct smtp_data *d, const char *in, size_t inlen,
                                     size_t *consumed, char *out, size_t *outlen)
{
    struct data_ctx c = { d, out, out };
    const char *p = in, *end = in + inlen;
    enum smtp_data_status st = SMTP_DATA_MORE;

    if (d->state == S_END || d->state == S_BARELF) {
        st = d->state == S_END ? SMTP_DATA_END : SMTP_DATA_BARE_LF;
        end = p;
    }
    while (p < end) {
        if (d->state == S_TEXT) {
            p = fast_run(&c, p, end);
            if (p == end)
                break;
        }
        st = step(&c, *p);
        if (st == SMTP_DATA_BARE_LF)
            break;                          /* stop at the LF: not consumed */
        p++;
        if (st == SMTP_DATA_END)
            break;
    }
    *consumed = (size_t)(p - in);
    *outlen = (size_t)(c.o - out);
    if (d->in_header)
        header_scan(d, out, *outlen);
    d->bytes_out += (long long)*outlen;
    return st;
}
