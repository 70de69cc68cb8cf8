/*
 * lib/timeutil.c — clocks and date formatting behind lib/timeutil.h.
 * Owns: the wall and monotonic clocks in microseconds, and RFC 5322 dates
 * in local time with a numeric zone.  Locale-independent (day and month
 * names are fixed English), thread-safe (localtime_r), no global state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lib/timeutil.h"

#define TU_US_PER_S  1000000LL
#define TU_NS_PER_US 1000LL

static long long tu_clock_us(clockid_t id)
{
    struct timespec ts;

    if (clock_gettime(id, &ts) < 0)
        return 0;                       /* cannot happen for these clocks */
    return (long long)ts.tv_sec * TU_US_PER_S + ts.tv_nsec / TU_NS_PER_US;
}

long long time_now_us(void)
{
    return tu_clock_us(CLOCK_REALTIME);
}

long long time_mono_us(void)
{
    return tu_clock_us(CLOCK_MONOTONIC);
}

void time_rfc5322(time_t t, char *buf, size_t len)
{
    static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    struct tm tm;
    long off, aoff;

    if (len == 0)
        return;
    if (localtime_r(&t, &tm) == NULL || tm.tm_wday < 0 || tm.tm_wday > 6 ||
        tm.tm_mon < 0 || tm.tm_mon > 11) {
        snprintf(buf, len, "Thu, 01 Jan 1970 00:00:00 +0000");
        return;
    }
    off = tm.tm_gmtoff / 60;            /* minutes east of UTC */
    aoff = labs(off);
    snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld",
             days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
             tm.tm_hour, tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+', aoff / 60, aoff % 60);
}
