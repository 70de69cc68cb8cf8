/*
 * mta/pickup.h — the maildrop pickup: queues what hato-sendmail left in
 * state_directory/maildrop/ while hatod was not running (queue/maildrop.h
 * has the format), at start-up, every minute, and on QUEUE FLUSH.  The file
 * is removed only after its message is committed to the queue.
 */
#ifndef HATO_PICKUP_H
#define HATO_PICKUP_H

struct hatod;
struct pickup;

struct pickup *pickup_new(struct hatod *d);
/* Scan the maildrop now (no-op if a scan is running). */
void pickup_scan(struct pickup *p);
void pickup_free(struct pickup *p);

#endif
