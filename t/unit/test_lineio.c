/*
 * t/unit/test_lineio.c — the bounded line reader: CRLF / bare LF, CR kept
 * inside a line, NULs, the exact length limit (max OK, max + 1 too long),
 * skipping the tail of an over-long line, and trickle tests (a stream fed
 * whole, byte-at-a-time and at every 2-piece split gives the same events).
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "proto/lineio.h"
#include "t/unit/tap.h"

#define MAXL 10             /* small limit so the edges are easy to write */
#define EVMAX 64
#define EVTXT 32

/* One result of line_read, as a comparable record. */
struct event {
    enum line_status st;
    size_t len;
    int bare_lf;
    char text[EVTXT];
};

struct trace {
    struct event ev[EVMAX];
    int n;
    size_t left;            /* octets still buffered at the end */
};

/* Read every available line; record all but LINE_NONE. */
static void drain_lines(struct line_reader *r, struct evbuffer *b, struct trace *t)
{
    char buf[MAXL + 1];
    size_t len;
    int bare;
    enum line_status st;

    while ((st = line_read(r, b, buf, &len, &bare)) != LINE_NONE) {
        struct event *e;
        if (t->n >= EVMAX)
            abort();
        e = &t->ev[t->n++];
        memset(e, 0, sizeof(*e));
        e->st = st;
        e->len = len;
        e->bare_lf = bare;
        if (st == LINE_OK) {
            if (len > MAXL || buf[len] != '\0')
                abort();
            memcpy(e->text, buf, len);
        }
    }
}

/* Feed s[0..n) in pieces cut at cuts[0..ncuts). */
static void feed(const char *s, size_t n, const size_t *cuts, size_t ncuts, struct trace *t)
{
    struct line_reader r;
    struct evbuffer *b = evbuffer_new();
    size_t from = 0, k;

    memset(t, 0, sizeof(*t));
    if (b == NULL)
        abort();
    line_reader_init(&r, MAXL);
    for (k = 0; k <= ncuts; k++) {
        size_t to = k < ncuts ? cuts[k] : n;
        if (to > from && evbuffer_add(b, s + from, to - from) != 0)
            abort();
        drain_lines(&r, b, t);
        from = to;
    }
    t->left = evbuffer_get_length(b);
    evbuffer_free(b);
}

static int same(const struct trace *a, const struct trace *b)
{
    return a->n == b->n && a->left == b->left &&
           memcmp(a->ev, b->ev, sizeof(a->ev[0]) * (size_t)a->n) == 0;
}

static int trickle(const char *s, size_t n, const struct trace *want)
{
    size_t cuts[256], i;
    struct trace t;
    int bad = 0;

    for (i = 0; i + 1 < n && i < 256; i++)
        cuts[i] = i + 1;
    feed(s, n, cuts, n ? n - 1 : 0, &t);
    bad += !same(&t, want);
    for (i = 0; i <= n; i++) {
        feed(s, n, &i, 1, &t);
        bad += !same(&t, want);
    }
    return bad;
}

static void expect(const struct trace *t, int i, enum line_status st, const char *text,
                   size_t len, int bare, const char *name)
{
    if (i >= t->n) {
        ok(0, "%s: event %d missing", name, i);
        return;
    }
    is_int(t->ev[i].st, st, name);
    if (st == LINE_OK) {
        is_int(t->ev[i].len, len, "length");
        ok(memcmp(t->ev[i].text, text, len) == 0, "%s: text", name);
        is_int(t->ev[i].bare_lf, bare, "bare_lf");
    }
}

#define S(x) x, sizeof(x) - 1

static void basics(void)
{
    static const char in[] =
        "HELO x\r\n"        /* ordinary */
        "bare\n"            /* bare LF */
        "\r\n"              /* empty */
        "\n"                /* empty, bare */
        "a\rb\r\n"          /* CR inside kept */
        "a\0b\r\n"          /* NUL kept */
        "\r\r\n"            /* a CR before the CRLF */
        "partial";          /* no LF yet */
    struct trace t;

    feed(S(in), NULL, 0, &t);
    is_int(t.n, 7, "basics: 7 lines");
    expect(&t, 0, LINE_OK, "HELO x", 6, 0, "CRLF line");
    expect(&t, 1, LINE_OK, "bare", 4, 1, "bare LF line");
    expect(&t, 2, LINE_OK, "", 0, 0, "empty line");
    expect(&t, 3, LINE_OK, "", 0, 1, "empty bare line");
    expect(&t, 4, LINE_OK, "a\rb", 3, 0, "CR inside");
    expect(&t, 5, LINE_OK, "a\0b", 3, 0, "NUL inside");
    expect(&t, 6, LINE_OK, "\r", 1, 0, "CR before CRLF");
    is_int(t.left, 7, "partial line stays buffered");
    is_int(trickle(S(in), &t), 0, "basics: trickle");
}

static void limits(void)
{
    static const char in[] =
        "12345678\r\n"          /* 10 octets = max: OK */
        "123456789\r\n"         /* 11: too long */
        "ok\r\n"
        "123456789\n"           /* 10 with bare LF: OK */
        "1234567890\n"          /* 11 with bare LF: too long */
        "0123456789abcdefghijklmnopqrstuvwxyz\r\n" /* far too long */
        "next\r\n";
    struct trace t;

    feed(S(in), NULL, 0, &t);
    is_int(t.n, 7, "limits: 7 events");
    expect(&t, 0, LINE_OK, "12345678", 8, 0, "max octets incl. CRLF is OK");
    expect(&t, 1, LINE_TOO_LONG, NULL, 0, 0, "max + 1 is too long");
    expect(&t, 2, LINE_OK, "ok", 2, 0, "line after a too-long one");
    expect(&t, 3, LINE_OK, "123456789", 9, 1, "max with bare LF is OK");
    expect(&t, 4, LINE_TOO_LONG, NULL, 0, 0, "max + 1 with bare LF too long");
    expect(&t, 5, LINE_TOO_LONG, NULL, 0, 0, "long line reported once");
    expect(&t, 6, LINE_OK, "next", 4, 0, "reader recovers");
    is_int(t.left, 0, "nothing left");
    is_int(trickle(S(in), &t), 0, "limits: trickle");
}

/* An over-long line whose tail arrives much later. */
static void skipping(void)
{
    struct line_reader r;
    struct evbuffer *b = evbuffer_new();
    char buf[MAXL + 1];
    size_t len;
    int bare, i;

    line_reader_init(&r, MAXL);
    is_int(r.skipping, 0, "init: not skipping");
    ok(b != NULL && evbuffer_add(b, "123456789", 9) == 0, "add 9");
    is_int(line_read(&r, b, buf, &len, &bare), LINE_NONE, "9 octets, no LF: wait");
    ok(evbuffer_add(b, "0", 1) == 0, "add 1");
    is_int(line_read(&r, b, buf, &len, &bare), LINE_TOO_LONG, "10 octets, no LF: too long");
    is_int(r.skipping, 1, "skipping");
    is_int(evbuffer_get_length(b), 0, "buffered octets drained");
    for (i = 0; i < 100; i++) {
        if (evbuffer_add(b, "xxxxxxxxxxxxxxxxxxxx", 20) != 0 ||
            line_read(&r, b, buf, &len, &bare) != LINE_NONE || evbuffer_get_length(b) != 0)
            break;
    }
    is_int(i, 100, "tail discarded as it arrives, never reported again");
    ok(evbuffer_add(b, "tail\r\nQUIT\r\n", 12) == 0, "add end of tail");
    is_int(line_read(&r, b, buf, &len, &bare), LINE_OK, "next line");
    is_str(buf, "QUIT", "next line text");
    is_int(r.skipping, 0, "not skipping any more");
    is_int(line_read(&r, b, buf, &len, &bare), LINE_NONE, "nothing more");
    ok(evbuffer_add(b, "12345678\r", 9) == 0, "9 octets ending in CR");
    is_int(line_read(&r, b, buf, &len, &bare), LINE_NONE, "CR without LF: wait");
    ok(evbuffer_add(b, "\n", 1) == 0, "then LF");
    is_int(line_read(&r, b, buf, &len, &bare), LINE_OK, "max octets with split CRLF");
    is_int(len, 8, "length 8");
    ok(evbuffer_add(b, "123456789\r", 10) == 0, "10 octets ending in CR");
    is_int(line_read(&r, b, buf, &len, &bare), LINE_TOO_LONG, "its CRLF cannot fit");
    ok(evbuffer_add(b, "\nok\n", 4) == 0, "then LF and a line");
    is_int(line_read(&r, b, buf, &len, &bare), LINE_OK, "line after");
    is_str(buf, "ok", "line after text");
    is_int(bare, 1, "bare");
    evbuffer_free(b);
}

/* Many lines in many evbuffer chains. */
static void chains(void)
{
    struct line_reader r;
    struct evbuffer *b = evbuffer_new();
    char buf[MAXL + 1], want[16];
    size_t len;
    int bare, i, good = 0;

    line_reader_init(&r, MAXL);
    for (i = 0; i < 200 && b; i++) {
        int n = snprintf(want, sizeof(want), "L%d\r\n", i);
        struct evbuffer *c = evbuffer_new();
        if (c == NULL || evbuffer_add(c, want, (size_t)n) != 0 ||
            evbuffer_add_buffer(b, c) != 0)
            abort();
        evbuffer_free(c);
    }
    for (i = 0; i < 200; i++) {
        snprintf(want, sizeof(want), "L%d", i);
        if (line_read(&r, b, buf, &len, &bare) == LINE_OK && strcmp(buf, want) == 0 &&
            len == strlen(want) && !bare)
            good++;
    }
    is_int(good, 200, "200 lines across chains");
    is_int(line_read(&r, b, buf, &len, &bare), LINE_NONE, "then none");
    evbuffer_free(b);
}

int main(void)
{
    basics();
    limits();
    skipping();
    chains();
    return tap_done();
}
