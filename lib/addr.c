/*
 * lib/addr.c — RFC 5321 §4.1.2 Path and Mailbox parsing behind lib/addr.h.
 * Owns the grammar (dot-atom and quoted-string local parts, domains of
 * letter/digit/hyphen labels, IPv4/IPv6 address literals, source routes that
 * are accepted and dropped, the null path) and the §4.5.3.1 length limits.
 * Pure functions: no allocation, no global state, never reads past `len`.
 * `%` and `!` are ordinary atext, never routing.  Any octet >= 0x80 is
 * ADDR_E_8BIT, except through addr_parse_path_utf8 (SMTPUTF8), which checks
 * the UTF-8 and then parses with every non-ASCII character standing for a
 * letter.
 */
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "lib/addr.h"

#define ADDR_LABEL_MAX   63    /* octets of one domain label */
#define ADDR_LIT_MAX     64    /* octets inside [...] we are willing to look at */
#define ADDR_V6_TAG      "IPv6:"
#define ADDR_V6_TAG_LEN  5

/* A span of the input. */
struct addr_span {
    size_t off, len;
};

static int addr_is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int addr_is_letdig(unsigned char c)
{
    return addr_is_alpha(c) || (c >= '0' && c <= '9');
}

/* RFC 5322 atext. */
static int addr_is_atext(unsigned char c)
{
    return addr_is_letdig(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* RFC 5321 qtextSMTP: %d32-33 / %d35-91 / %d93-126. */
static int addr_is_qtext(unsigned char c)
{
    return c >= 32 && c <= 126 && c != '"' && c != '\\';
}

/* Dot-string at in[pos..end): returns the end of it (== pos: none). */
static size_t addr_dot_string(const char *in, size_t pos, size_t end)
{
    size_t p = pos, atom;

    for (;;) {
        atom = p;
        while (p < end && addr_is_atext((unsigned char)in[p]))
            p++;
        if (p == atom)
            return pos;                 /* empty atom: leading/double/trailing dot */
        if (p < end && in[p] == '.' && p + 1 < end &&
            addr_is_atext((unsigned char)in[p + 1])) {
            p++;
            continue;
        }
        return p;
    }
}

/* Quoted-string at in[pos..end) (in[pos] == '"'): end of it, or pos. */
static size_t addr_quoted(const char *in, size_t pos, size_t end)
{
    size_t p = pos + 1;

    while (p < end) {
        unsigned char c = (unsigned char)in[p];
        if (c == '"')
            return p + 1;
        if (c == '\\') {
            if (p + 1 >= end || in[p + 1] < 32 || in[p + 1] > 126)
                return pos;
            p += 2;
        } else if (addr_is_qtext(c)) {
            p++;
        } else {
            return pos;
        }
    }
    return pos;
}

/* Local-part: end of it, or pos when there is none. */
static size_t addr_local(const char *in, size_t pos, size_t end)
{
    if (pos < end && in[pos] == '"')
        return addr_quoted(in, pos, end);
    return addr_dot_string(in, pos, end);
}

/* Domain (sub-domain *("." sub-domain)) at in[pos..end): end, or pos. */
static size_t addr_domain(const char *in, size_t pos, size_t end)
{
    size_t p = pos, label;

    for (;;) {
        label = p;
        while (p < end && (addr_is_letdig((unsigned char)in[p]) || in[p] == '-'))
            p++;
        if (p == label || in[label] == '-' || in[p - 1] == '-' ||
            p - label > ADDR_LABEL_MAX)
            return pos;
        if (p < end && in[p] == '.') {
            p++;
            continue;
        }
        return p;
    }
}

/* The inside of an address literal, s[0..len): IPv4 or "IPv6:" + IPv6. */
static int addr_literal_ok(const char *s, size_t len)
{
    char buf[ADDR_LIT_MAX + 1];
    unsigned char bin[16];
    int af = AF_INET;

    if (len >= ADDR_V6_TAG_LEN && strncasecmp(s, ADDR_V6_TAG, ADDR_V6_TAG_LEN) == 0) {
        af = AF_INET6;
        s += ADDR_V6_TAG_LEN;
        len -= ADDR_V6_TAG_LEN;
    }
    if (len == 0 || len > ADDR_LIT_MAX)
        return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (memchr(buf, '\0', len) != NULL)
        return 0;
    return inet_pton(af, buf, bin) == 1;
}

/* Domain or address literal at in[pos..end): end, or pos. */
static size_t addr_domain_or_literal(const char *in, size_t pos, size_t end)
{
    const char *close;

    if (pos < end && in[pos] == '[') {
        close = memchr(in + pos, ']', end - pos);
        if (close == NULL)
            return pos;
        if (!addr_literal_ok(in + pos + 1, (size_t)(close - in) - pos - 1))
            return pos;
        return (size_t)(close - in) + 1;
    }
    return addr_domain(in, pos, end);
}

/* A-d-l ":" at in[pos..end) (in[pos] == '@'): position after ':', or pos. */
static size_t addr_source_route(const char *in, size_t pos, size_t end)
{
    size_t p = pos, d;

    for (;;) {
        if (p >= end || in[p] != '@')
            return pos;
        d = addr_domain(in, p + 1, end);
        if (d == p + 1)
            return pos;
        p = d;
        if (p < end && in[p] == ',') {
            p++;
            continue;
        }
        if (p < end && in[p] == ':')
            return p + 1;
        return pos;
    }
}

/* Any octet >= 0x80 in s[0..len). */
static int addr_has_8bit(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if ((unsigned char)s[i] >= 0x80)
            return 1;
    }
    return 0;
}

/* Fill out from the local and domain spans (lengths already checked). */
static void addr_fill(const char *in, struct addr_span lp, struct addr_span dom,
                      struct addr *out)
{
    size_t i;

    memcpy(out->local, in + lp.off, lp.len);
    out->local[lp.len] = '\0';
    for (i = 0; i < dom.len; i++) {
        unsigned char c = (unsigned char)in[dom.off + i];
        out->domain[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    out->domain[dom.len] = '\0';
    memcpy(out->full, out->local, lp.len);
    if (dom.len > 0) {
        out->full[lp.len] = '@';
        memcpy(out->full + lp.len + 1, out->domain, dom.len + 1);
    } else {
        out->full[lp.len] = '\0';
    }
}

/* Mailbox (or bare local part) filling exactly in[pos..end). */
static enum addr_err addr_mailbox_span(const char *in, size_t pos, size_t end,
                                       struct addr *out)
{
    struct addr_span lp = { pos, 0 }, dom = { 0, 0 };
    size_t p, d;

    p = addr_local(in, pos, end);
    if (p == pos)
        return ADDR_E_SYNTAX;
    lp.len = p - pos;
    if (p < end) {
        if (in[p] != '@')
            return ADDR_E_SYNTAX;
        d = addr_domain_or_literal(in, p + 1, end);
        if (d == p + 1 || d != end)
            return ADDR_E_SYNTAX;
        dom.off = p + 1;
        dom.len = end - dom.off;
    }
    if (lp.len > ADDR_LOCAL_MAX)
        return ADDR_E_LOCAL_LONG;
    if (dom.len > ADDR_DOMAIN_MAX)
        return ADDR_E_DOMAIN_LONG;
    addr_fill(in, lp, dom, out);
    return dom.len > 0 ? ADDR_OK : ADDR_E_NODOMAIN;
}

/* Find the '>' that closes a path starting at in[0] == '<', skipping
 * quoted strings.  Returns its index, or len when there is none; *eight is
 * set when an octet >= 0x80 comes first. */
static size_t addr_find_close(const char *in, size_t len, int *eight)
{
    size_t i;
    int quoted = 0;

    *eight = 0;
    for (i = 1; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 0x80) {
            *eight = 1;
            return len;
        }
        if (quoted && c == '\\')
            i++;
        else if (c == '"')
            quoted = !quoted;
        else if (!quoted && c == '>')
            return i;
    }
    return len;
}

enum addr_err addr_parse_path(const char *in, size_t len, int allow_null,
                              struct addr *out, size_t *consumed)
{
    size_t close, start = 1;
    enum addr_err rc;
    int eight;

    memset(out, 0, sizeof(*out));
    if (len == 0 || in[0] != '<')
        return addr_has_8bit(in, len) ? ADDR_E_8BIT : ADDR_E_NOBRACKET;
    close = addr_find_close(in, len, &eight);
    if (eight)
        return ADDR_E_8BIT;
    if (close >= len)
        return ADDR_E_SYNTAX;
    if (close == 1) {
        out->is_null = 1;
        *consumed = 2;
        return allow_null ? ADDR_OK : ADDR_E_NULL;
    }
    if (in[1] == '@') {
        start = addr_source_route(in, 1, close);
        if (start == 1)
            return ADDR_E_SYNTAX;
    }
    rc = addr_mailbox_span(in, start, close, out);
    if (rc == ADDR_OK && close + 1 > ADDR_PATH_MAX)
        rc = ADDR_E_PATH_LONG;
    if (rc != ADDR_OK && rc != ADDR_E_NODOMAIN) {
        memset(out, 0, sizeof(*out));
        return rc;
    }
    *consumed = close + 1;
    return rc;
}

/* Length of the well-formed UTF-8 sequence at s[0..len) (s[0] >= 0x80),
 * or 0 (RFC 3629 table: no overlongs, no surrogates, at most U+10FFFF). */
static size_t addr_utf8_seq(const unsigned char *s, size_t len)
{
    size_t n = s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : s[0] >= 0xe0 && s[0] <= 0xef ? 3 :
               s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;
    unsigned char lo = 0x80, hi = 0xbf;

    if (n == 0 || n > len)
        return 0;
    if (s[0] == 0xe0)
        lo = 0xa0;
    else if (s[0] == 0xed)
        hi = 0x9f;
    else if (s[0] == 0xf0)
        lo = 0x90;
    else if (s[0] == 0xf4)
        hi = 0x8f;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

size_t addr_utf8_char(const char *s, size_t len)
{
    return len > 0 ? addr_utf8_seq((const unsigned char *)s, len) : 0;
}

enum addr_err addr_parse_path_utf8(const char *in, size_t len, int allow_null,
                                   struct addr *out, size_t *consumed, int *eight)
{
    char ascii[ADDR_PATH_MAX + 1];
    size_t n = len < ADDR_PATH_MAX + 1 ? len : ADDR_PATH_MAX + 1, i, used = 0;
    enum addr_err rc;

    *eight = 0;
    /* every well-formed character >= U+0080 becomes 'a' (one octet each,
     * so the copy's offsets are the input's); a malformed octet stays and
     * makes the ASCII parse say ADDR_E_8BIT if it is inside the path */
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        size_t k = c < 0x80 ? 0 : addr_utf8_seq((const unsigned char *)in + i, n - i);
        if (k == 0) {
            ascii[i] = (char)c;
            continue;
        }
        memset(ascii + i, 'a', k);
        i += k - 1;
    }
    rc = addr_parse_path(ascii, n, allow_null, out, &used);
    if (rc == ADDR_E_8BIT)
        rc = ADDR_E_SYNTAX;
    if (rc != ADDR_OK && rc != ADDR_E_NODOMAIN)
        return rc;
    if (!addr_has_8bit(in, used))
        return addr_parse_path(in, len, allow_null, out, consumed);
    *eight = 1;
    /* local[@domain] fills in[..used-1) just before the '>' */
    size_t ll = strlen(out->local), dl = strlen(out->domain);
    size_t end = used - 1, dstart = end - dl, lstart = dstart - ll - (dl ? 1 : 0);
    struct addr_span lp = { lstart, ll }, dom = { dstart, dl };
    addr_fill(in, lp, dom, out);
    *consumed = used;
    return rc;
}

enum addr_err addr_parse_mailbox(const char *in, size_t len, struct addr *out)
{
    enum addr_err rc;

    memset(out, 0, sizeof(*out));
    if (addr_has_8bit(in, len))
        return ADDR_E_8BIT;
    rc = addr_mailbox_span(in, 0, len, out);
    if (rc != ADDR_OK && rc != ADDR_E_NODOMAIN)
        memset(out, 0, sizeof(*out));
    return rc;
}

void addr_local_unquoted(const struct addr *a, char *buf, size_t len)
{
    const char *s = a->local;
    size_t n = 0, slen = strlen(s);

    if (len == 0)
        return;
    if (slen >= 2 && s[0] == '"' && s[slen - 1] == '"') {
        s++;
        slen -= 2;
        for (; slen > 0 && n + 1 < len; s++, slen--) {
            if (*s == '\\' && slen > 1) {
                s++;
                slen--;
            }
            buf[n++] = *s;
        }
    } else {
        for (; n < slen && n + 1 < len; n++)
            buf[n] = s[n];
    }
    buf[n] = '\0';
}

const char *addr_strerror(enum addr_err e)
{
    switch (e) {
    case ADDR_OK: return "Address OK";
    case ADDR_E_SYNTAX: return "Syntax error in mailbox address";
    case ADDR_E_NOBRACKET: return "Address must be enclosed in <>";
    case ADDR_E_LOCAL_LONG: return "Local part too long";
    case ADDR_E_DOMAIN_LONG: return "Domain name too long";
    case ADDR_E_PATH_LONG: return "Path too long";
    case ADDR_E_NODOMAIN: return "Address has no domain";
    case ADDR_E_NULL: return "Null address not allowed here";
    case ADDR_E_8BIT: return "Non-ASCII address not allowed without SMTPUTF8";
    }
    return "Unknown address error";
}
