/*
 * filters/hold.h — a test-only filter ("test_filter_hold" in hato.conf): at
 * the phases it is given it answers "pending" and lets the chain go on
 * test_filter_hold_ms later from a libevent timer, as a filter waiting for
 * DNS or a worker would.  It is built into hatod so that the asynchronous
 * filter path (the session reads nothing while a filter decides; a reload
 * while a run is pending) is tested end to end against the real binary.
 * Not for production: it only delays mail.
 */
#ifndef HATO_HOLD_H
#define HATO_HOLD_H

#include <stddef.h>
#include "filters/filter.h"

struct event_base;

/* "connect", "helo", "mail", "rcpt", "data" (end of message) → the phase,
 * or -1. */
int hold_phase_parse(const char *name);
/* Fill f with a hold filter for the named phases (the filter owns its
 * state: free_ctx).  0, or -1 (unknown phase name, or out of memory). */
int hold_filter(struct filter *f, struct event_base *base, char **phases, size_t nphases,
                long long ms);

#endif
