/*
 * proto/local_headers.h — the header fields hatod adds: its Received:
 * trace field on every message, and the fields a locally submitted message
 * must carry (RFC 5322 §3.6: Date: and From: are required, Message-ID:
 * should be there).  As Postfix's cleanup does for sendmail and local
 * SMTP, hatod adds the ones a local message lacks; mail from the network
 * is never changed otherwise.  Pure functions.
 */
#ifndef HATO_LOCAL_HEADERS_H
#define HATO_LOCAL_HEADERS_H

#include <stddef.h>
#include <time.h>

enum {
    LH_DATE = 1,
    LH_MESSAGE_ID = 2,
    LH_FROM = 4,
};

/* Which of the fields the header section hdr[0..len) lacks (bit mask).
 * Field names match case-insensitively at the start of a line; a
 * continuation line never counts. */
int local_headers_missing(const char *hdr, size_t len);

/* The missing fields as CRLF lines, into buf (NUL-terminated).  The
 * Message-ID is <QID@myhostname>; From: is the envelope sender (or
 * MAILER-DAEMON@myhostname for the null sender).  Returns the length, or
 * -1 if buf is too small. */
int local_headers_format(int missing, const char *sender, const char *qid,
                         const char *myhostname, time_t now, char *buf, size_t buflen);

/* What hatod's Received: field says (RFC 5321 §4.4). */
struct received_info {
    int local;                 /* local submission: "by ... from userid UID" */
    unsigned uid;
    const char *helo;          /* NULL: "unknown" */
    const char *client_addr;   /* the client's IP as text */
    int ipv6;                  /* client_addr is IPv6: "[IPv6:...]" */
    const char *myhostname, *mail_name, *proto, *qid;
    const char *for_rcpt;      /* NULL or "": no "for <...>" clause */
    const char *tls;           /* NULL or "": plaintext; else "TLSv1.3 with cipher ..." */
    time_t now;
};

/* The whole Received: field, folded, ending in CRLF and always with its
 * date, however long the names in it: a malloc'd string (*len = its
 * length), or NULL when out of memory. */
char *received_format(const struct received_info *ri, size_t *len);

#endif
