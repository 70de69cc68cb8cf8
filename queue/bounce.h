/*
 * queue/bounce.h — delivery status notifications (RFC 3464
 * multipart/report; report-type=delivery-status): "failed" bounces for the
 * recipients in state B, and "delayed" notices for those still pending.
 * Pure text building; the caller queues the result like any message.
 */
#ifndef HATO_BOUNCE_H
#define HATO_BOUNCE_H

#include <stddef.h>
#include <time.h>
#include "queue/envelope.h"

enum bounce_kind { BOUNCE_FAILED, BOUNCE_DELAYED };

struct bounce_info {
    const char *myhostname;     /* Reporting-MTA: dns; myhostname */
    const char *mail_name;      /* "hato" */
    const char *new_id;         /* queue ID of the DSN itself (Message-ID) */
    time_t now;
    const char *orig_headers;   /* header section of the original (CRLF), or NULL */
    size_t orig_headers_len;
};

/* Build the DSN (CRLF line ends, headers From: MAILER-DAEMON@myhostname,
 * To: the original sender, Subject: "Undelivered Mail Returned to Sender"
 * or "Delayed Mail (still being retried)", Auto-Submitted: auto-replied),
 * a human-readable part, a message/delivery-status part (Final-Recipient,
 * Original-Recipient, Action failed|delayed, Status, Diagnostic-Code), and
 * the original headers as text/rfc822-headers.  Malloc'd into *out.
 * Returns 0, or -1 if there is nothing to report. */
int bounce_build(const struct envelope *orig, enum bounce_kind kind,
                 const struct bounce_info *info, char **out, size_t *outlen);

#endif
