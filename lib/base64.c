/*
 * lib/base64.c — strict base64 decoding (incremental, capped) and
 * encoding; see base64.h for what "strict" refuses.
 */
#include "lib/base64.h"

static const char b64_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 0..63, or -1 outside the alphabet ('=' included). */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

void b64_dec_init(struct b64_dec *d, unsigned char *out, size_t cap)
{
    d->out = out;
    d->cap = cap;
    d->len = 0;
    d->acc = 0;
    d->nq = 0;
    d->npad = 0;
    d->done = 0;
    d->err = B64_OK;
}

static enum b64_err b64_put(struct b64_dec *d, unsigned char c)
{
    if (d->len >= d->cap)
        return B64_E_TOOBIG;
    d->out[d->len++] = c;
    return B64_OK;
}

/* A quantum of 4 characters, npad of them '=', is complete in acc. */
static enum b64_err b64_quantum(struct b64_dec *d)
{
    unsigned int a = d->acc;
    enum b64_err e = B64_OK;

    if (d->npad == 2 && (a & 0xffff) != 0)
        return B64_E_BITS;
    if (d->npad == 1 && (a & 0xff) != 0)
        return B64_E_BITS;
    e = b64_put(d, (unsigned char)(a >> 16));
    if (e == B64_OK && d->npad < 2)
        e = b64_put(d, (unsigned char)(a >> 8));
    if (e == B64_OK && d->npad < 1)
        e = b64_put(d, (unsigned char)a);
    d->acc = 0;
    d->nq = 0;
    if (d->npad)
        d->done = 1;
    d->npad = 0;
    return e;
}

static enum b64_err b64_char(struct b64_dec *d, unsigned char c)
{
    int v = b64_value(c);

    if (d->done)
        return c == '=' || v >= 0 ? B64_E_PAD : B64_E_CHAR;
    if (c == '=') {
        /* "xx==" or "xxx=": padding only in the last two places */
        if (d->nq + d->npad < 2)
            return B64_E_PAD;
        d->npad++;
        v = 0;
    } else if (v < 0) {
        return B64_E_CHAR;
    } else if (d->npad) {
        return B64_E_PAD;        /* "xx=x" */
    }
    d->acc = (d->acc << 6) | (unsigned int)v;
    if (c != '=')
        d->nq++;
    if (d->nq + d->npad == 4)
        return b64_quantum(d);
    return B64_OK;
}

enum b64_err b64_dec_feed(struct b64_dec *d, const char *in, size_t n)
{
    for (size_t i = 0; i < n && d->err == B64_OK; i++)
        d->err = b64_char(d, (unsigned char)in[i]);
    return d->err;
}

enum b64_err b64_dec_finish(struct b64_dec *d)
{
    if (d->err == B64_OK && (d->nq != 0 || d->npad != 0))
        d->err = B64_E_TRUNC;
    return d->err;
}

enum b64_err b64_decode(const char *in, size_t n, unsigned char *out, size_t cap,
                        size_t *outlen)
{
    struct b64_dec d;
    enum b64_err e;

    b64_dec_init(&d, out, cap);
    (void)b64_dec_feed(&d, in, n);
    e = b64_dec_finish(&d);
    if (e == B64_OK)
        *outlen = d.len;
    return e;
}

const char *b64_strerror(enum b64_err e)
{
    switch (e) {
    case B64_OK: return "ok";
    case B64_E_CHAR: return "character outside the base64 alphabet";
    case B64_E_PAD: return "misplaced base64 padding";
    case B64_E_BITS: return "non-canonical base64 (bits under the padding)";
    case B64_E_TRUNC: return "truncated base64";
    case B64_E_TOOBIG: return "base64 data too long";
    }
    return "?";
}

size_t b64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t i, o = 0;

    for (i = 0; i + 2 < n; i += 3) {
        unsigned int v = (unsigned int)in[i] << 16 | (unsigned int)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64_alpha[v >> 18];
        out[o++] = b64_alpha[(v >> 12) & 63];
        out[o++] = b64_alpha[(v >> 6) & 63];
        out[o++] = b64_alpha[v & 63];
    }
    if (i < n) {
        unsigned int v = (unsigned int)in[i] << 16 | (i + 1 < n ? (unsigned int)in[i + 1] << 8 : 0);
        out[o++] = b64_alpha[v >> 18];
        out[o++] = b64_alpha[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64_alpha[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}
