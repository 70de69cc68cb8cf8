/*
 * lib/timeutil.h — clocks and time formatting.
 */
#ifndef HATO_TIMEUTIL_H
#define HATO_TIMEUTIL_H

#include <stddef.h>
#include <time.h>

/* Wall clock in microseconds since the epoch. */
long long time_now_us(void);
/* Monotonic clock in microseconds. */
long long time_mono_us(void);
/* RFC 5322 date ("Mon, 23 Nov 2026 14:09:14 +0000") for t into buf. */
void time_rfc5322(time_t t, char *buf, size_t len);

#endif
