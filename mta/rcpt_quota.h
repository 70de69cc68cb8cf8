/*
 * mta/rcpt_quota.h — the RCPT-time quota check, as a filter on the chain
 * (filters/filter.h): a local recipient whose mailboxes are all at or over
 * their quota is refused "452 4.2.2 Mailbox full" (with
 * quota_full_permanent "552 5.2.2").  The usage is read from maildirsize
 * in the worker pool (WORK_FILTER) while the session waits, never on the
 * loop, except that a mailbox found with room in the last second is taken
 * to have it still; an unlimited target, a remote recipient or a failed
 * read lets the recipient through (delivery checks again, mta/local.c).
 */
#ifndef HATO_RCPT_QUOTA_H
#define HATO_RCPT_QUOTA_H

#include "filters/filter.h"

struct tables;

/* The filter table over tables (not owned: the generation's) and
 * state_directory/mail.  0, or -1 out of memory. */
int rcpt_quota_filter(struct filter *f, const struct tables *t, const char *state_dir);

#endif
