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

/* DSN (RFC 3461): NOTIFY= bits (the values of ENV_N_*), RET=, and the
 * limits of ENVID= (100 characters as written) and ORCPT= (500). */
#define SMTP_NOTIFY_SUCCESS 0x1
#define SMTP_NOTIFY_FAILURE 0x2
#define SMTP_NOTIFY_DELAY   0x4
#define SMTP_NOTIFY_NEVER   0x8
enum smtp_ret { SMTP_RET_NONE = 0, SMTP_RET_FULL = 1, SMTP_RET_HDRS = 2 };
#define SMTP_ENVID_MAX 100
#define SMTP_ORCPT_MAX 500

struct smtp_mail_args {
    struct addr path;
    long long size;       /* SIZE=, -1 if absent */
    enum smtp_body body;  /* BODY= */
    int smtputf8;         /* SMTPUTF8 (RFC 6531) */
    enum smtp_ret ret;    /* RET= */
    char envid[SMTP_ENVID_MAX + 1];   /* ENVID= decoded, "" if absent */
};

struct smtp_rcpt_args {
    struct addr path;     /* ADDR_E_NODOMAIN allowed only for postmaster */
    int notify;           /* NOTIFY= bits, 0 if absent */
    char orcpt[SMTP_ORCPT_MAX + 1];   /* ORCPT= decoded "rfc822;a@b", or "" */
};

/* Split a command line (CRLF removed, NUL-terminated, len octets; may hold
 * NULs, which make it UNKNOWN) into verb and argument.  Verbs are
 * case-insensitive.  Returns 0, or -1 for an empty/garbage line. */
int smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd);

/* "FROM:<path> [SIZE=n] [BODY=7BIT|8BITMIME] [SMTPUTF8] [RET=FULL|HDRS]
 * [ENVID=xtext]" (case-insensitive FROM:, one optional space after the
 * colon tolerated like Postfix).  Unknown parameters → 555 5.5.4, bad
 * values or a parameter twice → 501 5.5.4, a non-ASCII path without
 * SMTPUTF8 → 553 5.6.7.  0, or -1 with *err set. */
int smtp_parse_mail(const char *arg, struct smtp_mail_args *out, struct smtp_err *err);
/* "TO:<path> [NOTIFY=NEVER|SUCCESS,FAILURE,DELAY] [ORCPT=type;xtext]".
 * "<postmaster>" (any case) without a domain is allowed.  smtp_parse_rcpt
 * refuses a non-ASCII path (553 5.6.7); the _utf8 form takes it when the
 * transaction's MAIL had SMTPUTF8 (utf8 != 0). */
int smtp_parse_rcpt(const char *arg, struct smtp_rcpt_args *out, struct smtp_err *err);
int smtp_parse_rcpt_utf8(const char *arg, int utf8, struct smtp_rcpt_args *out,
                         struct smtp_err *err);
/* Decode RFC 3461 xtext ("+XX" hex, upper case) of n octets into out
 * (room: n + 1).  Printable ASCII only, before and after decoding.  0 or -1. */
int smtp_xtext_decode(const char *in, size_t n, char *out, size_t outlen);
/* The text of a HELO/EHLO argument is a domain or address literal; returns
 * 0 if acceptable (non-empty, printable, no spaces, ≤ 255). */
int smtp_check_helo(const char *arg);

#endif
