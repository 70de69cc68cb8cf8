/*
 * proto/from_header.c — the streaming originator-field parser
 * (proto/from_header.h).  One octet at a time through two small machines:
 * the line level finds the fields of the wanted name and their
 * continuation lines (unfolding: the line break goes, the white space
 * stays), the body level tokenizes RFC 5322 mailboxes (atoms, quoted
 * strings, comments, domain literals, specials) and keeps each mailbox's
 * address.  All its state lives in struct from_parser, so any split of the
 * input gives the same answer.  Never allocates, never reads past what it
 * is fed.
 */
#include <ctype.h>
#include <string.h>

#include "proto/from_header.h"

enum { L_START, L_NAME, L_SKIP, L_BODY };
enum { T_NORM, T_QUOTE, T_QUOTE_ESC, T_COMMENT, T_COMMENT_ESC, T_LIT, T_LIT_ESC };

static void fail(struct from_parser *p, enum from_err e)
{
    if (p->err == FROM_OK)
        p->err = e;
}

static void mbox_reset(struct from_parser *p)
{
    p->plen = p->alen = 0;
    p->phrase = p->prev_word = p->in_atom = p->angle_done = p->plain_long = 0;
}

static void body_reset(struct from_parser *p)
{
    mbox_reset(p);
    p->tok = T_NORM;
    p->depth = 0;
    p->in_angle = p->in_group = 0;
    p->field_addrs = 0;
}

void from_parser_init(struct from_parser *p, const char *name)
{
    memset(p, 0, sizeof *p);
    size_t i;
    for (i = 0; name[i] && i < FROM_NAME_MAX; i++)
        p->name[i] = (char)tolower((unsigned char)name[i]);
    p->name[i] = '\0';
    p->line = L_START;
}

/* One octet of the address being built: inside <> or outside. */
static void append(struct from_parser *p, char c)
{
    if (p->in_angle) {
        if (p->alen >= FROM_ADDR_MAX) {
            fail(p, FROM_E_TOO_LONG);
            return;
        }
        p->angle[p->alen++] = c;
        return;
    }
    if (p->plen >= FROM_ADDR_MAX) {
        p->plain_long = 1;       /* an error only if it is the address */
        return;
    }
    p->plain[p->plen++] = c;
}

/* A word (atom, quoted string, literal) starts. */
static void word_start(struct from_parser *p)
{
    if (p->angle_done) {
        fail(p, FROM_E_SYNTAX);  /* "<a@b> more" */
        return;
    }
    if (p->prev_word) {
        if (p->in_angle)
            fail(p, FROM_E_SYNTAX);  /* "<bob smith@x>" */
        else
            p->phrase = 1;           /* a display name, unless no <addr> follows */
    }
    p->prev_word = 1;
}

/* local@domain with both parts non-empty: stored with the domain lower-cased. */
static void mbox_store(struct from_parser *p, const char *a, size_t len)
{
    const char *at = NULL;
    for (size_t i = 0; i < len; i++)
        if (a[i] == '@')
            at = a + i;
    if (!at || at == a || (size_t)(at - a) + 1 >= len) {
        fail(p, FROM_E_SYNTAX);
        return;
    }
    if (p->naddrs >= FROM_ADDRS_MAX) {
        fail(p, FROM_E_TOO_MANY);
        return;
    }
    char *d = p->addrs[p->naddrs++];
    size_t l = (size_t)(at - a);
    memcpy(d, a, l);
    for (size_t i = l; i < len; i++)
        d[i] = (char)tolower((unsigned char)a[i]);
    d[len] = '\0';
    p->field_addrs++;
}

/* A list element ends (',' ';' or the end of the field). */
static void mbox_end(struct from_parser *p)
{
    if (p->angle_done)
        mbox_store(p, p->angle, p->alen);
    else if (p->phrase)
        fail(p, FROM_E_SYNTAX);      /* "Bob Smith" or "Bob bob@x" without <> */
    else if (p->plain_long)
        fail(p, FROM_E_TOO_LONG);
    else if (p->plen > 0)
        mbox_store(p, p->plain, p->plen);
    mbox_reset(p);
}

static void field_end(struct from_parser *p)
{
    if (p->tok != T_NORM || p->in_angle || p->in_group)
        fail(p, FROM_E_SYNTAX);      /* unclosed quote, comment, literal, <, group */
    else
        mbox_end(p);
    if (p->err == FROM_OK && p->field_addrs == 0)
        fail(p, FROM_E_EMPTY);
    p->in_body = 0;
}

/* Specials and white space outside quotes and comments. */
static void norm_special(struct from_parser *p, char c)
{
    switch (c) {
    case '<':
        if (p->in_angle || p->angle_done)
            fail(p, FROM_E_SYNTAX);
        p->in_angle = 1;
        p->alen = 0;
        p->prev_word = 0;
        break;
    case '>':
        if (!p->in_angle)
            fail(p, FROM_E_SYNTAX);
        p->in_angle = 0;
        p->angle_done = 1;
        break;
    case ':':
        if (p->in_angle) {           /* the end of an obs-route: forget it */
            p->alen = 0;
            p->prev_word = 0;
        } else if (p->in_group || p->angle_done) {
            fail(p, FROM_E_SYNTAX);
        } else {                     /* "name:" opens a group; the name goes */
            p->in_group = 1;
            mbox_reset(p);
        }
        break;
    case ';':
        if (p->in_angle || !p->in_group)
            fail(p, FROM_E_SYNTAX);
        mbox_end(p);
        p->in_group = 0;
        break;
    case ',':
        if (!p->in_angle)            /* inside <>: between obs-route domains */
            mbox_end(p);
        break;
    case '@':
    case '.':
        if (p->angle_done)
            fail(p, FROM_E_SYNTAX);
        append(p, c);
        p->prev_word = 0;
        break;
    default:                         /* ')' ']' '\\' where they cannot be */
        fail(p, FROM_E_SYNTAX);
        break;
    }
}

static void norm_char(struct from_parser *p, char c)
{
    unsigned char u = (unsigned char)c;
    if (c == ' ' || c == '\t') {
        p->in_atom = 0;
        return;
    }
    if (u < 0x20 || u == 0x7f) {
        fail(p, FROM_E_SYNTAX);
        return;
    }
    if (strchr("()<>[]:;@\\,.\"", c) == NULL) {   /* atext (UTF-8 included) */
        if (!p->in_atom) {
            word_start(p);
            p->in_atom = 1;
        }
        append(p, c);
        return;
    }
    p->in_atom = 0;
    if (c == '(') {
        p->tok = T_COMMENT;
        p->depth = 1;
    } else if (c == '"') {
        word_start(p);
        p->tok = T_QUOTE;
    } else if (c == '[') {
        word_start(p);
        append(p, c);
        p->tok = T_LIT;
    } else {
        norm_special(p, c);
    }
}

static void body_char(struct from_parser *p, char c)
{
    unsigned char u = (unsigned char)c;
    if ((u < 0x20 && c != '\t') || u == 0x7f) {
        fail(p, FROM_E_SYNTAX);   /* NUL and controls, quoted or not: an address is a C string */
        return;
    }
    switch (p->tok) {
    case T_NORM:
        norm_char(p, c);
        break;
    case T_QUOTE:
        if (c == '"')
            p->tok = T_NORM;
        else if (c == '\\')
            p->tok = T_QUOTE_ESC;
        else
            append(p, c);
        break;
    case T_QUOTE_ESC:
        append(p, c);
        p->tok = T_QUOTE;
        break;
    case T_COMMENT:
        if (c == '(')
            p->depth++;
        else if (c == ')' && --p->depth == 0)
            p->tok = T_NORM;
        else if (c == '\\')
            p->tok = T_COMMENT_ESC;
        break;
    case T_COMMENT_ESC:
        p->tok = T_COMMENT;
        break;
    case T_LIT:
        if (c == '[')
            fail(p, FROM_E_SYNTAX);
        append(p, c);
        if (c == ']')
            p->tok = T_NORM;
        else if (c == '\\')
            p->tok = T_LIT_ESC;
        break;
    case T_LIT_ESC:
        append(p, c);
        p->tok = T_LIT;
        break;
    }
}

/* A field name ended at ':': is it ours?  (White space before the colon
 * is obs-syntax and allowed.) */
static int name_matches(struct from_parser *p)
{
    size_t n = p->namelen;
    if (n > FROM_NAME_MAX)
        return 0;
    while (n > 0 && (p->namebuf[n - 1] == ' ' || p->namebuf[n - 1] == '\t'))
        n--;
    return n == strlen(p->name) && memcmp(p->namebuf, p->name, n) == 0;
}

static void line_start(struct from_parser *p, char c)
{
    if (c == '\n') {                 /* the empty line: the header section ends */
        if (p->in_body)
            field_end(p);
        p->done = 1;
        return;
    }
    if (c == ' ' || c == '\t') {     /* a continuation line */
        p->line = p->in_body ? L_BODY : L_SKIP;
        if (p->in_body)
            body_char(p, c);
        return;
    }
    if (p->in_body)
        field_end(p);
    p->namelen = 0;
    p->line = L_NAME;
}

static void feed_char(struct from_parser *p, char c)
{
    if (c == '\r')
        return;
    if (p->line == L_START) {
        line_start(p, c);
        if (p->line != L_NAME)
            return;
    }
    if (c == '\n') {
        p->line = L_START;
        return;
    }
    if (p->line == L_BODY) {
        body_char(p, c);
    } else if (p->line == L_NAME) {
        if (c == ':') {
            p->line = L_SKIP;
            if (name_matches(p)) {
                p->line = L_BODY;
                p->in_body = 1;
                p->nfields++;
                body_reset(p);
            }
        } else if (p->namelen < FROM_NAME_MAX) {
            p->namebuf[p->namelen++] = (char)tolower((unsigned char)c);
        } else {
            p->namelen = FROM_NAME_MAX + 1;   /* longer than any name we look for */
        }
    }
}

void from_parser_feed(struct from_parser *p, const char *buf, size_t len)
{
    for (size_t i = 0; i < len && !p->done && p->err == FROM_OK; i++)
        feed_char(p, buf[i]);
}

enum from_err from_parser_end(struct from_parser *p)
{
    if (!p->done && p->err == FROM_OK && p->in_body)
        field_end(p);
    p->done = 1;
    return p->err;
}

const char *from_strerror(enum from_err e)
{
    switch (e) {
    case FROM_OK: return "ok";
    case FROM_E_SYNTAX: return "syntax error";
    case FROM_E_TOO_MANY: return "too many addresses";
    case FROM_E_TOO_LONG: return "address too long";
    case FROM_E_EMPTY: return "no address";
    }
    return "?";
}
