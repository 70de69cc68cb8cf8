/*
 * proto/pop3_cmd.h — the POP3 command parser (RFC 1939, 2449, 2595, 5034):
 * the keyword and its arguments, checked for shape (how many, numbers that
 * are numbers).  Pure: no I/O, no session state; whether a message number
 * names a message, and whether the command is allowed now, is the
 * session's to decide.
 */
#ifndef HATO_POP3_CMD_H
#define HATO_POP3_CMD_H

#include <stddef.h>

/* RFC 2449 §4: a command line is at most 255 octets with its CRLF. */
#define POP3_LINE_MAX 255
/* Message numbers and TOP's line count fit in this (decimal digits). */
#define POP3_NUM_MAX  999999999UL

enum pop3_verb {
    POP3_V_UNKNOWN = 0,
    POP3_V_USER, POP3_V_PASS, POP3_V_APOP, POP3_V_AUTH, POP3_V_STLS, POP3_V_CAPA,
    POP3_V_STAT, POP3_V_LIST, POP3_V_RETR, POP3_V_DELE, POP3_V_RSET, POP3_V_NOOP,
    POP3_V_QUIT, POP3_V_TOP, POP3_V_UIDL,
};

enum pop3_parse {
    POP3_OK = 0,
    POP3_E_UNKNOWN,     /* no such keyword (or not a keyword at all) */
    POP3_E_SYNTAX,      /* a known keyword with bad arguments */
};

struct pop3_cmd {
    enum pop3_verb verb;
    size_t nargs;            /* 0..2 */
    const char *arg[2];      /* NUL-terminated, into the caller's line */
    unsigned long num[2];    /* the numeric arguments (LIST RETR DELE TOP UIDL) */
};

/* Parse one line (without CRLF) of len octets; line is modified (arguments
 * are cut out of it with NULs) and must have room for len + 1 octets.
 * USER and PASS take the rest of the line as one argument (a password may
 * hold spaces, as Dovecot and Qpopper allow); the other keywords split on
 * single spaces.  A NUL in the line is a syntax error. */
enum pop3_parse pop3_cmd_parse(char *line, size_t len, struct pop3_cmd *cmd);
/* The keyword as written in replies and logs ("RETR"), "?" for UNKNOWN. */
const char *pop3_verb_name(enum pop3_verb v);

#endif
