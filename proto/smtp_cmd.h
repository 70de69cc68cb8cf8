/*
 * proto/smtp_cmd.h — the SMTP command parser (RFC 5321 §4.1): the verb, and
 * the arguments of MAIL and RCPT (path + ESMTP parameters).  Pure: no I/O,
 * no session state; every error is a reply (code, enhanced code, text).
 */
#ifndef HATO_SMTP_CMD_H
#define HATO_SMTP_CMD_H

#include <stddef.h>
#include "lib/addr.h"

enum smtp_verb {
    SMTP_V_UNKNOWN = 0,
    SMTP_V_HELO, SMTP_V_EHLO, SMTP_V_MAIL, SMTP_V_RCPT, SMTP_V_DATA,
    SMTP_V_RSET, SMTP_V_NOOP, SMTP_V_QUIT, SMTP_V_VRFY, SMTP_V_EXPN,
    SMTP_V_HELP, SMTP_V_STARTTLS, SMTP_V_AUTH, SMTP_V_BDAT,
};

struct smtp_cmd {
    enum smtp_verb verb;
    const char *arg;      /* points into the line: text after the verb and
                             one space ("" if none); never NULL */
};

/* An error answer. */
struct smtp_err {
    int code;             /* 501, 555, 552 ... */
    const char *enh;      /* "5.5.4" */
    const char *text;     /* static text */
};

enum smtp_body { SMTP_BODY_7BIT = 0, SMTP_BODY_8BITMIME };

struct smtp_mail_args {
    struct addr path;
    long long size;       /* SIZE=, -1 if absent */
    enum smtp_body body;  /* BODY= */
};

struct smtp_rcpt_args {
    struct addr path;     /* ADDR_E_NODOMAIN allowed only for postmaster */
};

/* Split a command line (CRLF removed, NUL-terminated, len octets; may hold
 * NULs, which make it UNKNOWN) into verb and argument.  Verbs are
 * case-insensitive.  Returns 0, or -1 for an empty/garbage line. */
int smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd);

/* "FROM:<path> [SIZE=n] [BODY=7BIT|8BITMIME]" (case-insensitive FROM:,
 * one optional space after the colon tolerated like Postfix).  Unknown
 * parameters → 555 5.5.4.  0, or -1 with *err set. */
int smtp_parse_mail(const char *arg, struct smtp_mail_args *out, struct smtp_err *err);
/* "TO:<path>" with no parameters supported yet (unknown → 555 5.5.4).
 * "<postmaster>" (any case) without a domain is allowed. */
int smtp_parse_rcpt(const char *arg, struct smtp_rcpt_args *out, struct smtp_err *err);
/* The text of a HELO/EHLO argument is a domain or address literal; returns
 * 0 if acceptable (non-empty, printable, no spaces, ≤ 255). */
int smtp_check_helo(const char *arg);

#endif
