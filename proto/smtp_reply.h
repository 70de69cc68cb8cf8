/*
 * proto/smtp_reply.h — the SMTP client's reply parser (RFC 5321 §4.2,
 * enhanced codes RFC 3463/2034) and the EHLO keyword parser (RFC 5321
 * §4.1.1.1 and the extensions hato's client uses).  Pure: lines in,
 * fields out; no I/O, no session state.  Lines come from proto/lineio.h
 * with the same 512-octet limit as the server's commands (SMTP_LINE_MAX).
 */
#ifndef HATO_SMTP_REPLY_H
#define HATO_SMTP_REPLY_H

#include <stddef.h>
#include "proto/lineio.h"

/* A reply of more lines than this is a protocol error (a peer cannot keep
 * the client reading forever; real EHLO answers have ~15). */
#define SMTP_REPLY_LINES_MAX 100

struct smtp_reply {
    int code;                    /* 200..599; 0 until the first line */
    char enh[16];                /* "5.1.1" when the first line has one, else "" */
    char text[SMTP_LINE_MAX];    /* the first line's text after the enhanced code */
    int nlines;
    int done;
};

void smtp_reply_init(struct smtp_reply *r);
/* Feed one line (line ending removed; may hold NULs, which are an error).
 * 1: the reply is complete; 0: more lines follow; -1: malformed (not three
 * digits 2-5/0-5/0-9, a separator other than ' ' or '-', a code that
 * changes between lines, too many lines, a NUL): a protocol error.  *text
 * and *tlen give this line's text after the separator (for EHLO). */
int smtp_reply_line(struct smtp_reply *r, const char *line, size_t len,
                    const char **text, size_t *tlen);

/* Service extensions from an EHLO reply. */
enum {
    SMTP_EXT_PIPELINING = 1 << 0,
    SMTP_EXT_SIZE = 1 << 1,
    SMTP_EXT_8BITMIME = 1 << 2,
    SMTP_EXT_STARTTLS = 1 << 3,
    SMTP_EXT_DSN = 1 << 4,
    SMTP_EXT_SMTPUTF8 = 1 << 5,
    SMTP_EXT_AUTH = 1 << 6,
    SMTP_EXT_ENHANCEDSTATUSCODES = 1 << 7,
};

enum {
    SMTP_AUTH_PLAIN = 1 << 0,
    SMTP_AUTH_LOGIN = 1 << 1,
    SMTP_AUTH_CRAM_MD5 = 1 << 2,
    SMTP_AUTH_SCRAM_SHA_256 = 1 << 3,
    SMTP_AUTH_OTHER = 1 << 4,
};

struct smtp_ext {
    unsigned flags;              /* SMTP_EXT_* */
    unsigned auth;               /* SMTP_AUTH_* */
    long long size;              /* SIZE n; 0 = offered without a limit or not offered */
};

void smtp_ext_init(struct smtp_ext *x);
/* One EHLO line's text (the first line is the greeting name, not a
 * keyword: callers skip it).  Keywords are case-insensitive; "AUTH=LOGIN"
 * (the pre-RFC form) counts as AUTH; unknown keywords are ignored; a SIZE
 * argument that is not a number is taken as no limit. */
void smtp_ext_line(struct smtp_ext *x, const char *text, size_t len);

#endif
