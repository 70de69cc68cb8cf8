/*
 * t/unit/test_smtp_data.c — the DATA decoder: end of data (smuggling
 * variants), dot-unstuffing, bare LF / bare CR, header measurement, and
 * trickle tests (whole, byte-at-a-time, every 2-piece split) plus an
 * exhaustive comparison with a naive reference decoder on short inputs.
 */
#include <stdlib.h>
#include <string.h>

#include "proto/smtp_data.h"
#include "t/unit/tap.h"

#define BIG 4096

struct result {
    enum smtp_data_status st;
    char out[2 * BIG + 8];
    size_t outlen;
    size_t consumed;
    long long header_bytes;
    long long bytes_out;
};

/* Feed in[0..n) in pieces cut at cuts[0..ncuts) (increasing). */
static void run(const char *in, size_t n, enum smtp_bare_lf pol,
                const size_t *cuts, size_t ncuts, struct result *r)
{
    struct smtp_data d;
    size_t from = 0, k;
    char *buf = malloc(2 * n + 4);

    smtp_data_init(&d, pol);
    memset(r, 0, sizeof(*r));
    r->st = SMTP_DATA_MORE;
    for (k = 0; k <= ncuts && buf; k++) {
        size_t to = k < ncuts ? cuts[k] : n, used = 0, olen = 0;
        r->st = smtp_data_feed(&d, in + from, to - from, &used, buf, &olen);
        if (olen > 2 * (to - from) + 4 || r->outlen + olen > sizeof(r->out))
            abort();
        memcpy(r->out + r->outlen, buf, olen);
        r->outlen += olen;
        r->consumed += used;
        if (r->st != SMTP_DATA_MORE)
            break;
        if (used != to - from)
            abort();
        from = to;
    }
    free(buf);
    r->header_bytes = d.header_bytes;
    r->bytes_out = d.bytes_out;
}

static int same(const struct result *a, const struct result *b)
{
    return a->st == b->st && a->outlen == b->outlen && a->consumed == b->consumed &&
           memcmp(a->out, b->out, a->outlen) == 0 && a->header_bytes == b->header_bytes &&
           a->bytes_out == b->bytes_out;
}

/* Whole, byte-at-a-time, and every split in two: all must equal `want`.
 * Returns the number of mismatching runs. */
static int trickle(const char *in, size_t n, enum smtp_bare_lf pol, const struct result *want)
{
    static size_t cuts[BIG];
    struct result r;
    size_t i;
    int bad = 0;

    run(in, n, pol, NULL, 0, &r);
    bad += !same(&r, want);
    for (i = 0; i + 1 < n && i < BIG; i++)
        cuts[i] = i + 1;
    run(in, n, pol, cuts, n ? n - 1 : 0, &r);
    bad += !same(&r, want);
    for (i = 0; i <= n; i++) {
        run(in, n, pol, &i, 1, &r);
        bad += !same(&r, want);
    }
    return bad;
}

struct dcase {
    const char *name;
    const char *in;
    size_t inlen;
    enum smtp_bare_lf pol;
    enum smtp_data_status st;
    const char *out;
    size_t outlen;
    size_t consumed;
    long long hdr;
};

#define N SMTP_BARE_LF_NORMALIZE
#define R SMTP_BARE_LF_REJECT
#define C(name, in, pol, st, out, consumed, hdr) \
    { name, in, sizeof(in) - 1, pol, st, out, sizeof(out) - 1, consumed, hdr }
#define END SMTP_DATA_END
#define MORE SMTP_DATA_MORE
#define BLF SMTP_DATA_BARE_LF

static const struct dcase cases[] = {
    C("empty data", ".\r\n", N, END, "", 3, 0),
    C("normal end", "Subject: x\r\n\r\nbody\r\n.\r\n", N, END,
      "Subject: x\r\n\r\nbody\r\n", 23, 14),
    C("dot-stuffed line", "a\r\n..x\r\n.\r\n", N, END, "a\r\n.x\r\n", 11, 0),
    C("stuffed lone dot at start", "..\r\n.\r\n", N, END, ".\r\n", 7, 0),
    C("dot at data start unstuffed", ".x\r\n.\r\n", N, END, "x\r\n", 7, 0),
    C("LF.LF does not end", "a\n.\nb\r\n.\r\n", N, END, "a\r\n.\r\nb\r\n", 10, 0),
    C("LF.CRLF does not end", "a\n.\r\nb\r\n.\r\n", N, END, "a\r\n.\r\nb\r\n", 11, 0),
    C("CR.CR does not end", "a\r.\rb\r\n.\r\n", N, END, "a\r.\rb\r\n", 10, 0),
    C("CRLF.LF does not end", "a\r\n.\nb\r\n.\r\n", N, END, "a\r\n\r\nb\r\n", 11, 0),
    C("CRLF.CRCRLF does not end", "a\r\n.\r\r\nb\r\n.\r\n", N, END,
      "a\r\n\r\r\nb\r\n", 13, 0),
    C("CRLF.CRLF ends", "a\r\n.\r\n", N, END, "a\r\n", 6, 0),
    C("smuggled command is data",
      "a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n", N, END, "a\r\n.\r\nMAIL FROM:<x@y>\r\n", 25, 0),
    C("pipelined command not consumed", "a\r\n.\r\nQUIT\r\n", N, END, "a\r\n", 6, 0),
    C("bare LF normalised", "a\nb\n\nc\r\n.\r\n", N, END, "a\r\nb\r\n\r\nc\r\n", 11, 0),
    C("bare CR kept", "a\rb\r\n\r\r\n.\r\n", N, END, "a\rb\r\n\r\r\n", 11, 0),
    C("CR at end of line kept", "a\r\r\n\r\n.\r\n", N, END, "a\r\r\n\r\n", 9, 0),
    C("reject stops at bare LF", "ab\r\ncd\nef\r\n.\r\n", R, BLF, "ab\r\ncd", 6, 0),
    C("reject: bare LF first", "\nx", R, BLF, "", 0, 0),
    C("reject: CRLF.LF", "x\r\n.\nz", R, BLF, "x\r\n", 4, 0),
    C("reject: clean message", "H: v\r\n\r\nb\r\n.\r\n", R, END, "H: v\r\n\r\nb\r\n", 14, 8),
    C("no end yet", "abc\r\n", N, MORE, "abc\r\n", 5, 0),
    C("no end yet, CR held", "abc\r\n.\r", N, MORE, "abc\r\n", 7, 0),
    C("no end yet, dot held", "abc\r\n.", N, MORE, "abc\r\n", 6, 0),
    C("empty input", "", N, MORE, "", 0, 0),
    C("header ends at bare-LF empty line", "H: v\n\nbody\r\n.\r\n", N, END,
      "H: v\r\n\r\nbody\r\n", 15, 8),
    C("empty first line", "\r\nbody\r\n.\r\n", N, END, "\r\nbody\r\n", 11, 2),
    C("no empty line: all header", "A: 1\r\nB: 2\r\n.\r\n", N, END, "A: 1\r\nB: 2\r\n", 15, 12),
    C("header ends at a non-field line", "A: 1\r\n cont\r\nB : 2\r\nbody line\r\n.\r\n", N, END,
      "A: 1\r\n cont\r\nB : 2\r\nbody line\r\n", 34, 20),
    C("unfinished field name keeps the header open", "Subj", N, MORE, "Subj", 4, 4),
    C("colon first is not a field", ":x\r\n.\r\n", N, END, ":x\r\n", 7, 0),
    C("continuation first is not a header", " x\r\n.\r\n", N, END, " x\r\n", 7, 0),
    C("NUL bytes kept", "a\0b\r\n.\r\n", N, END, "a\0b\r\n", 8, 0),
    C("CR then dot at start", "\r.\r\n.\r\n", N, END, "\r.\r\n", 7, 0),
    C("dot-CR-X", "a\r\n.\rX\r\n.\r\n", N, END, "a\r\n\rX\r\n", 11, 0),
    C("LF after end not looked at", ".\r\n\n", R, END, "", 3, 0),
    C("double dot CRLF at end", "a\r\n..\r\n.\r\n", N, END, "a\r\n.\r\n", 10, 0),
};

static void named_cases(void)
{
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct dcase *c = &cases[i];
        struct result r, want;

        run(c->in, c->inlen, c->pol, NULL, 0, &r);
        is_int(r.st, c->st, c->name);
        ok(r.outlen == c->outlen && memcmp(r.out, c->out, r.outlen) == 0,
           "%s: output", c->name);
        is_int(r.consumed, c->consumed, "consumed");
        is_int(r.header_bytes, c->hdr, "header_bytes");
        is_int(r.bytes_out, c->outlen, "bytes_out");
        memset(&want, 0, sizeof(want));
        want.st = c->st;
        memcpy(want.out, c->out, c->outlen);
        want.outlen = c->outlen;
        want.consumed = c->consumed;
        want.header_bytes = c->hdr;
        want.bytes_out = (long long)c->outlen;
        is_int(trickle(c->in, c->inlen, c->pol, &want), 0, "trickle: every split agrees");
    }
}

static int ref_ftext(char ch)
{
    return ch >= 33 && ch <= 126 && ch != ':';
}

/* The header section of decoded output, computed line by line: it ends
 * after the first empty line or before the first line that is not a field
 * ("name[WSP]*:" or a continuation); an unfinished line that could still
 * be a field leaves it open (all output). */
static long long ref_header(const char *o, size_t n)
{
    size_t pos = 0;
    while (pos < n) {
        size_t i = pos;
        if (o[i] == '\r') {
            if (i + 1 == n)
                return (long long)n;
            return o[i + 1] == '\n' ? (long long)i + 2 : (long long)pos;
        }
        if (o[i] == ' ' || o[i] == '\t') {
            if (pos == 0)
                return 0;
        } else {
            while (i < n && ref_ftext(o[i]))
                i++;
            if (i == pos)
                return (long long)pos;
            while (i < n && (o[i] == ' ' || o[i] == '\t'))
                i++;
            if (i == n)
                return (long long)n;
            if (o[i] != ':')
                return (long long)pos;
        }
        const char *crlf = memmem(o + i, n - i, "\r\n", 2);
        if (crlf == NULL)
            return (long long)n;
        pos = (size_t)(crlf - o) + 2;
    }
    return (long long)n;
}

/* A naive decoder written independently from the state machine. */
static void reference(const char *in, size_t n, enum smtp_bare_lf pol, struct result *r)
{
    size_t i = 0, pos = 0;
    int bol = 1;                              /* after a real CRLF / at start */
    char *o = r->out;

    memset(r, 0, sizeof(*r));
    r->st = SMTP_DATA_MORE;
    while (i < n) {
        if (bol && in[i] == '.') {
            if (i + 2 < n + 0 && in[i + 1] == '\r' && in[i + 2] == '\n') {
                r->st = SMTP_DATA_END;
                i += 3;
                break;
            }
            if (i + 1 == n || (in[i + 1] == '\r' && i + 2 == n)) {
                i = n;                        /* held back, consumed */
                break;
            }
            i++;                              /* unstuff */
        }
        bol = 0;
        if (in[i] == '\r' && i + 1 < n && in[i + 1] == '\n') {
            *o++ = '\r', *o++ = '\n', i += 2, bol = 1;
        } else if (in[i] == '\n') {
            if (pol == SMTP_BARE_LF_REJECT) {
                r->st = SMTP_DATA_BARE_LF;
                break;
            }
            *o++ = '\r', *o++ = '\n', i++;
        } else {
            *o++ = in[i++];
        }
    }
    r->consumed = i;
    r->outlen = (size_t)(o - r->out);
    r->bytes_out = (long long)r->outlen;
    r->header_bytes = ref_header(r->out, r->outlen);
    (void)pos;
}

/* Every string over {a . CR LF} up to EXH_LEN octets, both policies. */
#define EXH_LEN 8
static void exhaustive(void)
{
    static const char alpha[4] = { 'a', '.', '\r', '\n' };
    char in[EXH_LEN];
    size_t len;
    long bad = 0, total = 0;

    for (len = 0; len <= EXH_LEN; len++) {
        unsigned long combos = 1UL << (2 * len), x;
        for (x = 0; x < combos; x++) {
            size_t i;
            int pol;
            for (i = 0; i < len; i++)
                in[i] = alpha[(x >> (2 * i)) & 3];
            for (pol = 0; pol < 2; pol++) {
                struct result want;
                reference(in, len, (enum smtp_bare_lf)pol, &want);
                bad += trickle(in, len, (enum smtp_bare_lf)pol, &want) != 0;
                total++;
            }
        }
    }
    is_int(bad, 0, "exhaustive: state machine equals reference on all short inputs");
    ok(total > 100000, "exhaustive: %ld inputs", total);
}

/* A long message: fast path over many lines, with dot lines sprinkled. */
static void long_message(void)
{
    static char in[BIG], want_out[BIG];
    size_t n = 0, w = 0, line;
    struct result want, r;

    memcpy(in, "Subject: big\r\n\r\n", 16);
    memcpy(want_out, in, 16);
    n = w = 16;
    for (line = 0; n + 100 < BIG - 8; line++) {
        const char *l = line % 7 == 3 ? "..dotted line\r\n" : "ordinary text line here\r\n";
        size_t ll = strlen(l);
        memcpy(in + n, l, ll);
        n += ll;
        if (l[0] == '.') {
            memcpy(want_out + w, l + 1, ll - 1);
            w += ll - 1;
        } else {
            memcpy(want_out + w, l, ll);
            w += ll;
        }
    }
    memcpy(in + n, ".\r\n", 3);
    n += 3;
    reference(in, n, SMTP_BARE_LF_NORMALIZE, &want);
    ok(want.outlen == w && memcmp(want.out, want_out, w) == 0, "long: reference output");
    run(in, n, SMTP_BARE_LF_NORMALIZE, NULL, 0, &r);
    ok(same(&r, &want), "long: whole feed");
    is_int(r.header_bytes, 16, "long: header_bytes");
    is_int(r.st, SMTP_DATA_END, "long: END");
    is_int(trickle(in, n, SMTP_BARE_LF_NORMALIZE, &want), 0, "long: trickle");
}

static void sticky(void)
{
    struct smtp_data d;
    char out[64];
    size_t used = 99, olen = 99;

    smtp_data_init(&d, SMTP_BARE_LF_NORMALIZE);
    is_int(smtp_data_feed(&d, ".\r\nX", 4, &used, out, &olen), SMTP_DATA_END, "end");
    is_int(used, 3, "end: consumed");
    is_int(smtp_data_feed(&d, "abc", 3, &used, out, &olen), SMTP_DATA_END, "END is sticky");
    is_int(used, 0, "sticky END: nothing consumed");
    is_int(olen, 0, "sticky END: no output");
    smtp_data_init(&d, SMTP_BARE_LF_REJECT);
    is_int(smtp_data_feed(&d, "a\nb", 3, &used, out, &olen), SMTP_DATA_BARE_LF, "bare LF");
    is_int(used, 1, "bare LF: stops at the LF");
    is_int(smtp_data_feed(&d, "\r\n", 2, &used, out, &olen), SMTP_DATA_BARE_LF,
           "BARE_LF is sticky");
    is_int(used, 0, "sticky BARE_LF: nothing consumed");
    smtp_data_init(&d, SMTP_BARE_LF_NORMALIZE);
    is_int(d.in_header, 1, "init: in header");
    is_int(smtp_data_feed(&d, "A: b\r\n\r\n", 8, &used, out, &olen), SMTP_DATA_MORE, "more");
    is_int(d.in_header, 0, "header section over");
    is_int(d.header_bytes, 8, "header bytes");
    is_int(smtp_data_feed(&d, "x\r\n\r\n", 5, &used, out, &olen), SMTP_DATA_MORE, "more");
    is_int(d.header_bytes, 8, "header bytes fixed after the empty line");
    is_int(d.bytes_out, 13, "bytes_out counts everything");
}

int main(void)
{
    named_cases();
    sticky();
    long_message();
    exhaustive();
    return tap_done();
}
