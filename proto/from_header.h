/*
 * proto/from_header.h — the addresses of one kind of originator field
 * (From: or Sender:, RFC 5322 §3.6.2, with RFC 6854's groups) in a message's
 * header section, for the submission policy that checks them against the
 * login (proto/smtp_server.c).  A streaming parser: the header section may
 * come in any pieces, one octet at a time included, with the same result.
 * It unfolds continuation lines, skips comments (nested, with quoted-pairs)
 * and display names (atoms, quoted strings, obs-phrase dots), takes the
 * address of an angle-addr (an obs-route "<@a,@b:u@d>" dropped), accepts
 * several mailboxes separated by commas, empty list elements, and groups
 * "name: a@b, c@d;".  Every field of that name counts (a message with two
 * From: fields has the addresses of both).  It stops at the empty line that
 * ends the header section.  Pure: no allocation, no I/O.
 */
#ifndef HATO_FROM_HEADER_H
#define HATO_FROM_HEADER_H

#include <stddef.h>

#define FROM_ADDRS_MAX 32     /* addresses kept; more is FROM_E_TOO_MANY */
#define FROM_ADDR_MAX  320    /* octets of one address (local@domain, unquoted) */
#define FROM_NAME_MAX  32     /* octets of the field name looked for */

enum from_err {
    FROM_OK = 0,
    FROM_E_SYNTAX,        /* unbalanced quote/comment/angle, phrase without <addr>, ... */
    FROM_E_TOO_MANY,      /* over FROM_ADDRS_MAX addresses */
    FROM_E_TOO_LONG,      /* an address over FROM_ADDR_MAX octets */
    FROM_E_EMPTY,         /* a field that names no address ("From: x:;") */
};

struct from_parser {
    char name[FROM_NAME_MAX + 1];   /* lower-case field name, e.g. "from" */
    /* line level */
    int line;                       /* where in the line (enum in the .c) */
    size_t namelen;
    char namebuf[FROM_NAME_MAX + 1];
    int done;                       /* the header section has ended */
    int in_body;                    /* inside a field of that name */
    /* body tokenizer */
    int tok;                        /* normal, quoted, comment, literal, escapes */
    int depth;                      /* comment nesting */
    int in_atom, prev_word;         /* the last token was a word */
    int in_angle, angle_done, in_group;
    int phrase;                     /* two words in a row outside <>: a display name */
    size_t field_addrs;             /* addresses of the current field */
    int plain_long;
    size_t plen, alen;
    char plain[FROM_ADDR_MAX + 1];  /* the addr-spec outside <> (or a display name) */
    char angle[FROM_ADDR_MAX + 1];  /* inside <> */
    /* results */
    enum from_err err;
    int nfields;                    /* fields of that name seen */
    size_t naddrs;
    char addrs[FROM_ADDRS_MAX][FROM_ADDR_MAX + 1];   /* "local@domain", local part unquoted */
};

/* Look for fields named `name` (any case, e.g. "From"); longer names are
 * truncated to FROM_NAME_MAX and then match nothing real. */
void from_parser_init(struct from_parser *p, const char *name);
/* Feed the next len octets of the header section (the empty line and
 * anything after it are ignored).  CR is ignored, LF ends a line. */
void from_parser_feed(struct from_parser *p, const char *buf, size_t len);
/* The input has ended: FROM_OK, or the first error met (the addresses
 * found before it are kept but must not be trusted). */
enum from_err from_parser_end(struct from_parser *p);
const char *from_strerror(enum from_err e);

#endif
