/*
 * t/fuzz/fuzz_smtp_reply.c — the SMTP client's reply reader: any octets
 * as a server's output, split into lines by proto/lineio (SMTP_LINE_MAX)
 * and parsed by smtp_reply_line, EHLO continuation lines through
 * smtp_ext_line; once in one block and once an octet at a time, which must
 * give the same replies.  Invariants: codes 200..559, an enhanced code of
 * the reply's class, texts NUL-terminated in their fields, at most
 * SMTP_REPLY_LINES_MAX lines, SIZE never negative.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "proto/lineio.h"
#include "proto/smtp_reply.h"

struct run {
    unsigned long long hash;      /* of every complete reply and error */
    int replies, errors;
};

static void mix(struct run *r, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        r->hash = (r->hash ^ b[i]) * 1099511628211ULL;
}

static void check(const struct smtp_reply *rep, const struct smtp_ext *x)
{
    if (rep->code < 200 || rep->code > 559 || rep->nlines < 1 ||
        rep->nlines > SMTP_REPLY_LINES_MAX)
        abort();
    if (!memchr(rep->text, '\0', sizeof rep->text) || !memchr(rep->enh, '\0', sizeof rep->enh))
        abort();
    if (rep->enh[0] && (rep->enh[0] != '0' + rep->code / 100 || rep->enh[1] != '.'))
        abort();
    if (x->size < 0)
        abort();
}

static void lines(struct run *r, struct evbuffer *in, struct line_reader *lr,
                  struct smtp_reply *rep, struct smtp_ext *x)
{
    char line[SMTP_LINE_MAX + 1];
    size_t len, tlen;
    int bare;
    const char *text;
    for (;;) {
        enum line_status st = line_read(lr, in, line, &len, &bare);
        if (st == LINE_NONE)
            return;
        if (st == LINE_TOO_LONG) {
            r->errors++;
            mix(r, "L", 1);
            smtp_reply_init(rep);
            continue;
        }
        if (len > SMTP_LINE_MAX - 1)
            abort();
        int rc = smtp_reply_line(rep, line, len, &text, &tlen);
        if (rc < 0) {
            r->errors++;
            mix(r, "E", 1);
            smtp_reply_init(rep);
            continue;
        }
        if (text < line || text + tlen > line + len)
            abort();
        if (rep->nlines > 1)
            smtp_ext_line(x, text, tlen);
        if (rc == 1) {
            check(rep, x);
            r->replies++;
            mix(r, &rep->code, sizeof rep->code);
            mix(r, rep->enh, strlen(rep->enh));
            mix(r, rep->text, strlen(rep->text));
            mix(r, &x->flags, sizeof x->flags);
            mix(r, &x->size, sizeof x->size);
        }
    }
}

static struct run parse(const uint8_t *data, size_t size, size_t step)
{
    struct run r = { 14695981039346656037ULL, 0, 0 };
    struct evbuffer *in = evbuffer_new();
    struct line_reader lr;
    struct smtp_reply rep;
    struct smtp_ext x;
    line_reader_init(&lr, SMTP_LINE_MAX);
    smtp_reply_init(&rep);
    smtp_ext_init(&x);
    for (size_t i = 0; i < size; i += step) {
        evbuffer_add(in, data + i, size - i < step ? size - i : step);
        lines(&r, in, &lr, &rep, &x);
    }
    evbuffer_free(in);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384)
        return 0;
    struct run one = parse(data, size, size ? size : 1);
    struct run trickle = parse(data, size, 1);
    if (one.hash != trickle.hash || one.replies != trickle.replies || one.errors != trickle.errors)
        abort();
    return 0;
}
