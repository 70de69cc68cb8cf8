/*
 * proto/smtp_reply.c — parses SMTP replies line by line and EHLO keyword
 * lines (contract in smtp_reply.h).  Owns the reply grammar only; must
 * never trust a length it did not check, or keep more than one line.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/smtp_reply.h"

void smtp_reply_init(struct smtp_reply *r)
{
    memset(r, 0, sizeof *r);
}

/* Length of an enhanced status code "c.sss.ddd" at p (class c matching
 * the reply's first digit), followed by a space or the end; 0 if none. */
static size_t enh_len(const char *p, size_t len, int cls)
{
    size_t i = 0;
    if (len < 5 || p[0] != '0' + cls || p[1] != '.')
        return 0;
    i = 2;
    for (int part = 0; part < 2; part++) {
        size_t start = i;
        while (i < len && isdigit((unsigned char)p[i]) && i - start < 3)
            i++;
        if (i == start || (i < len && isdigit((unsigned char)p[i])))
            return 0;
        if (part == 0) {
            if (i >= len || p[i] != '.')
                return 0;
            i++;
        }
    }
    if (i < len && p[i] != ' ')
        return 0;
    return i;
}

static void first_line(struct smtp_reply *r, const char *t, size_t tlen)
{
    size_t e = enh_len(t, tlen, r->code / 100);
    if (e > 0 && e < sizeof r->enh) {
        memcpy(r->enh, t, e);
        r->enh[e] = '\0';
        t += e;
        tlen -= e;
        while (tlen > 0 && *t == ' ') {
            t++;
            tlen--;
        }
    }
    if (tlen >= sizeof r->text)
        tlen = sizeof r->text - 1;
    memcpy(r->text, t, tlen);
    r->text[tlen] = '\0';
}

int smtp_reply_line(struct smtp_reply *r, const char *line, size_t len,
                    const char **text, size_t *tlen)
{
    *text = "";
    *tlen = 0;
    if (r->done)
        smtp_reply_init(r);
    if (len < 3 || memchr(line, '\0', len))
        return -1;
    if (line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
        !isdigit((unsigned char)line[2]))
        return -1;
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (len > 3 && line[3] != ' ' && line[3] != '-')
        return -1;
    if (r->nlines > 0 && code != r->code)
        return -1;
    if (++r->nlines > SMTP_REPLY_LINES_MAX)
        return -1;
    const char *t = len > 4 ? line + 4 : line + len;   /* inside the line, always */
    size_t tl = len > 4 ? len - 4 : 0;
    if (r->nlines == 1) {
        r->code = code;
        first_line(r, t, tl);
    }
    *text = t;
    *tlen = tl;
    if (len > 3 && line[3] == '-')
        return 0;
    r->done = 1;
    return 1;
}

void smtp_ext_init(struct smtp_ext *x)
{
    memset(x, 0, sizeof *x);
}

/* The keyword at the start of text: its length (letters, digits, '-'). */
static size_t keyword_len(const char *t, size_t len)
{
    size_t i = 0;
    while (i < len && (isalnum((unsigned char)t[i]) || t[i] == '-'))
        i++;
    return i;
}

static int word_is(const char *w, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(w, name, n) == 0;
}

static void auth_mechs(struct smtp_ext *x, const char *p, size_t len)
{
    static const struct { const char *name; unsigned bit; } mechs[] = {
        { "PLAIN", SMTP_AUTH_PLAIN }, { "LOGIN", SMTP_AUTH_LOGIN },
        { "CRAM-MD5", SMTP_AUTH_CRAM_MD5 }, { "SCRAM-SHA-256", SMTP_AUTH_SCRAM_SHA_256 },
    };
    size_t i = 0;
    while (i < len) {
        while (i < len && p[i] == ' ')
            i++;
        size_t start = i;
        while (i < len && p[i] != ' ')
            i++;
        if (i == start)
            break;
        unsigned bit = SMTP_AUTH_OTHER;
        for (size_t k = 0; k < sizeof mechs / sizeof mechs[0]; k++)
            if (word_is(p + start, i - start, mechs[k].name))
                bit = mechs[k].bit;
        x->auth |= bit;
    }
}

/* SIZE's argument: digits only, else "no limit" (0). */
static long long size_arg(const char *p, size_t len)
{
    while (len > 0 && *p == ' ') {
        p++;
        len--;
    }
    long long v = 0;
    size_t i = 0;
    for (; i < len && isdigit((unsigned char)p[i]); i++) {
        if (v > (1LL << 50))
            return 0;                    /* absurd: treat as no limit */
        v = v * 10 + (p[i] - '0');
    }
    return i > 0 && (i == len || p[i] == ' ') ? v : 0;
}

void smtp_ext_line(struct smtp_ext *x, const char *t, size_t len)
{
    static const struct { const char *name; unsigned bit; } kw[] = {
        { "PIPELINING", SMTP_EXT_PIPELINING }, { "8BITMIME", SMTP_EXT_8BITMIME },
        { "STARTTLS", SMTP_EXT_STARTTLS }, { "DSN", SMTP_EXT_DSN },
        { "SMTPUTF8", SMTP_EXT_SMTPUTF8 },
        { "ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCEDSTATUSCODES },
    };
    size_t n = keyword_len(t, len);
    if (n == 0)
        return;
    if (word_is(t, n, "SIZE")) {
        x->flags |= SMTP_EXT_SIZE;
        x->size = size_arg(t + n, len - n);
        return;
    }
    if (word_is(t, n, "AUTH") && (n == len || t[n] == ' ' || t[n] == '=')) {
        x->flags |= SMTP_EXT_AUTH;
        auth_mechs(x, t + n + (n < len), len - n - (n < len));
        return;
    }
    if (n != len && t[n] != ' ')
        return;
    for (size_t k = 0; k < sizeof kw / sizeof kw[0]; k++)
        if (word_is(t, n, kw[k].name))
            x->flags |= kw[k].bit;
}
