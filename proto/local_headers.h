/*
 * proto/local_headers.h — the header fields a locally submitted message
 * must carry (RFC 5322 §3.6: Date: and From: are required, Message-ID:
 * should be there).  As Postfix's cleanup does for sendmail and local
 * SMTP, hatod adds the ones a local message lacks; mail from the network
 * is never changed.  Pure functions.
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

#endif
