/*
 * lib/pctenc.c — the %-encoding of the queue's text formats (envelope,
 * maildrop header): a value becomes one token without white space or
 * control bytes.  Pure functions, no state.
 */
#include <stddef.h>
#include <string.h>

#include "lib/pctenc.h"


static int pct_needs_escape(unsigned char c)
{
    return c == '%' || c <= 0x20 || c >= 0x7f;
}

static int pct_hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* A value that is literally "-" is written %2D when "-" means empty. */
int pct_encode(const char *in, char *out, size_t outlen, int dash_empty)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    const unsigned char *p;

    if (in == NULL)
        in = "";
    if (dash_empty && (in[0] == '\0' || strcmp(in, "-") == 0)) {
        const char *rep = in[0] == '\0' ? "-" : "%2D";
        if (strlen(rep) >= outlen)
            return -1;
        memcpy(out, rep, strlen(rep) + 1);
        return 0;
    }
    for (p = (const unsigned char *)in; *p != '\0'; p++) {
        size_t need = pct_needs_escape(*p) ? 3 : 1;
        if (o + need >= outlen)
            return -1;
        if (need == 1) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 0xf];
        }
    }
    if (outlen == 0)
        return -1;
    out[o] = '\0';
    return 0;
}

int pct_decode(const char *in, char *out, size_t outlen, int dash_empty)
{
    size_t i = 0, o = 0;

    if (in == NULL || outlen == 0)
        return -1;
    if (dash_empty && strcmp(in, "-") == 0) {
        out[0] = '\0';
        return 0;
    }
    while (in[i] != '\0') {
        int c = (unsigned char)in[i];
        if (c == '%') {
            int hi = pct_hexval((unsigned char)in[i + 1]);
            int lo = hi < 0 ? -1 : pct_hexval((unsigned char)in[i + 2]);
            if (lo < 0 || (hi == 0 && lo == 0))
                return -1;          /* short, non-hex, or %00 */
            c = hi * 16 + lo;
            i += 3;
        } else {
            i++;
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}
