/*
 * queue/bounce.h — delivery status notifications (RFC 3464
 * multipart/report; report-type=delivery-status): "failed" bounces for the
 * recipients in state B, "delayed" notices for those still pending, and
 * "delivered"/"relayed" success notices for recipients in state S that
 * asked for them (DSN NOTIFY=SUCCESS).  Each recipient's NOTIFY decides
 * (bounce_wanted); RET and bounce_return_original decide what of the
 * original a failure report returns.  Pure text building; the caller
 * queues the result like any message.
 */
#ifndef HATO_BOUNCE_H
#define HATO_BOUNCE_H

#include <stddef.h>
#include <time.h>
#include "queue/envelope.h"

enum bounce_kind { BOUNCE_FAILED, BOUNCE_DELAYED, BOUNCE_SUCCESS };

/* The largest original returned whole (RET=FULL, bounce_return_original =
 * full); a larger message returns its headers only (Postfix's
 * bounce_size_limit). */
#define BOUNCE_FULL_MAX (50 * 1024)

struct bounce_info {
    const char *myhostname;     /* Reporting-MTA: dns; myhostname */
    const char *mail_name;      /* "hato" */
    const char *new_id;         /* queue ID of the DSN itself (Message-ID) */
    time_t now;
    const char *orig_headers;   /* header section of the original (CRLF), or NULL */
    size_t orig_headers_len;
    /* The whole original (headers and body), or NULL: then, for a failure
     * report, it is returned as message/rfc822 instead of the headers. */
    const char *orig_full;
    size_t orig_full_len;
    /* Recipient of a double bounce (postmaster): a failure report about a
     * message from the null sender or about a notice; NULL otherwise. */
    const char *to;
};

/* Whether recipient r belongs in a notice of this kind: its state (B for
 * failed, P for delayed, S for success) and its NOTIFY (absent = FAILURE
 * and DELAY; NEVER = none). */
int bounce_wanted(const struct env_rcpt *r, enum bounce_kind kind);
/* Whether a failure report returns the whole message: RET=FULL, or no RET
 * and bounce_return_original = full (return_full). */
int bounce_return_full(const struct envelope *e, int return_full);

/* Build the DSN (CRLF line ends, headers From: MAILER-DAEMON@myhostname,
 * To: the original sender (or info->to), Subject: "Undelivered Mail
 * Returned to Sender", "Delayed Mail (still being retried)" or
 * "Successful Mail Delivery Report", Auto-Submitted: auto-replied), a
 * human-readable part, a message/delivery-status part (Original-Envelope-Id,
 * Final-Recipient, Original-Recipient, Action failed|delayed|delivered|
 * relayed, Status, Remote-MTA, Diagnostic-Code "smtp; ..." for a remote
 * reply), and the original headers as text/rfc822-headers or the whole
 * original as message/rfc822.  Malloc'd into *out.
 * Returns 0, or -1 if there is nothing to report. */
int bounce_build(const struct envelope *orig, enum bounce_kind kind,
                 const struct bounce_info *info, char **out, size_t *outlen);

#endif
