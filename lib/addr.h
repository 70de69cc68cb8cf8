/*
 * lib/addr.h — RFC 5321 paths and mailboxes: `<local@domain>`, quoted local
 * parts, address literals ([192.0.2.1], [IPv6:2001:db8::1]), the null path
 * `<>`, and source routes (`<@a,@b:user@c>`, accepted and dropped).
 * `%` and `!` are ordinary local-part characters, never routing.
 * Pure functions, no allocation; limits from RFC 5321 §4.5.3.1.
 */
#ifndef HATO_ADDR_H
#define HATO_ADDR_H

#include <stddef.h>

#define ADDR_LOCAL_MAX   64    /* octets of a local part (as written, quotes incl.) */
#define ADDR_DOMAIN_MAX  255
#define ADDR_PATH_MAX    256   /* octets of a whole path, brackets included */
#define ADDR_BUF         (ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2)

enum addr_err {
    ADDR_OK = 0,
    ADDR_E_SYNTAX,       /* not a path/mailbox */
    ADDR_E_NOBRACKET,    /* path without < > */
    ADDR_E_LOCAL_LONG,   /* local part over 64 */
    ADDR_E_DOMAIN_LONG,  /* domain over 255 */
    ADDR_E_PATH_LONG,    /* whole path over 256 */
    ADDR_E_NODOMAIN,     /* "<user>" with no @domain (caller decides: postmaster) */
    ADDR_E_NULL,         /* "<>" where a null path is not allowed */
    ADDR_E_8BIT,         /* non-ASCII without SMTPUTF8 */
};

struct addr {
    int is_null;                        /* "<>" */
    char local[ADDR_LOCAL_MAX + 1];     /* as written; quoted form kept ("a b") */
    char domain[ADDR_DOMAIN_MAX + 1];   /* lower-cased; literals keep brackets; "" if none */
    char full[ADDR_BUF];                /* "local@domain", "" for null, "local" if no domain */
};

/* Parse a path starting at in[0] ('<' expected; leading spaces not allowed).
 * On ADDR_OK sets *consumed to the octets used (through '>').
 * allow_null: "<>" accepted (MAIL FROM).  With ADDR_E_NODOMAIN the local part
 * is still filled in (for <postmaster>). */
enum addr_err addr_parse_path(const char *in, size_t len, int allow_null,
                              struct addr *out, size_t *consumed);
/* The same with SMTPUTF8 (RFC 6531): octets >= 0x80 are allowed where
 * the ASCII grammar has atext, qtext or a label's letters, provided they
 * form well-formed UTF-8 (no overlong forms, surrogates or values past
 * U+10FFFF: ADDR_E_SYNTAX otherwise).  *eight tells whether there were any. */
enum addr_err addr_parse_path_utf8(const char *in, size_t len, int allow_null,
                                   struct addr *out, size_t *consumed, int *eight);
/* Octets of the well-formed UTF-8 character at s[0..len) (s[0] >= 0x80),
 * or 0 if there is none there. */
size_t addr_utf8_char(const char *s, size_t len);
/* Parse a bare mailbox "local@domain" (no brackets) of exactly len octets:
 * for table files and command-line arguments. */
enum addr_err addr_parse_mailbox(const char *in, size_t len, struct addr *out);
/* The local part without quoting ("\"a b\"" -> "a b"), for lookups. */
void addr_local_unquoted(const struct addr *a, char *buf, size_t len);
const char *addr_strerror(enum addr_err e);

#endif
