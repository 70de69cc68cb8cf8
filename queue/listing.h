/*
 * queue/listing.h — the mailq view of the queue: Postfix's mailq format,
 * or JSON for scripts.  Pure formatting of envelopes the caller loaded.
 *
 * Text (Postfix showq):
 *   -Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------
 *   0005E8C2F1A2B001*     1234 Mon Nov 23 14:09:14  sender@example.com
 *   (last deferral reason)
 *                                            rcpt@example.org
 *   <blank line>
 *   -- 2 Kbytes in 1 Request.
 * "Mail queue is empty" when there is nothing.  '*' = being delivered,
 * '!' = on hold.  Null sender prints as MAILER-DAEMON.  Only recipients
 * still pending are listed.
 */
#ifndef HATO_LISTING_H
#define HATO_LISTING_H

#include <stdio.h>
#include "queue/envelope.h"

struct queue_item {
    const struct envelope *env;
    int active;   /* being delivered now ('*') */
    int held;     /* in hold/ ('!') */
};

int queue_listing_text(FILE *out, const struct queue_item *items, size_t n);
/* JSON: one object per line (like `postqueue -j`):
 * {"queue_name":"active|deferred|hold","queue_id":"...","arrival_time":N,
 *  "message_size":N,"sender":"...","recipients":[{"address":"...",
 *  "delay_reason":"..."}]} */
int queue_listing_json(FILE *out, const struct queue_item *items, size_t n);

#endif
