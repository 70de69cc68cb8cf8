/*
 * proto/lineio.c — takes protocol command lines out of an evbuffer with a
 * hard length limit (see lineio.h for the contract).
 *
 * Owns: finding the end of a line (LF) within the first `max` octets,
 * stripping CRLF / bare LF, and discarding the tail of an over-long line.
 * Must never: read more than `max` octets to decide, copy a line longer than
 * `max` into the caller's buffer, or use evbuffer_readln (unbounded).
 */
#include <string.h>
#include <sys/types.h>

#include <event2/buffer.h>

#include "proto/lineio.h"

void line_reader_init(struct line_reader *r, size_t max)
{
    r->max = max;
    r->skipping = 0;
}

/* Discard input through the next LF.  Returns 1 when the LF was found (the
 * reader is then back to normal), 0 when all buffered input was dropped. */
static int skip_tail(struct line_reader *r, struct evbuffer *in)
{
    struct evbuffer_ptr lf = evbuffer_search(in, "\n", 1, NULL);

    if (lf.pos < 0) {
        (void)evbuffer_drain(in, evbuffer_get_length(in));
        return 0;
    }
    (void)evbuffer_drain(in, (size_t)lf.pos + 1);
    r->skipping = 0;
    return 1;
}

/* Position of the first LF among the first `lim` octets of `in`, or -1. */
static ssize_t find_lf(struct evbuffer *in, size_t lim)
{
    struct evbuffer_ptr end, lf;

    if (lim == 0)
        return -1;
    if (evbuffer_ptr_set(in, &end, lim, EVBUFFER_PTR_SET) < 0)
        return -1;
    lf = evbuffer_search_range(in, "\n", 1, NULL, &end);
    return lf.pos < 0 ? -1 : (ssize_t)lf.pos;
}

enum line_status line_read(struct line_reader *r, struct evbuffer *in,
                           char *buf, size_t *len, int *bare_lf)
{
    size_t avail, lim, n;
    ssize_t lf;

    *len = 0;
    *bare_lf = 0;
    buf[0] = '\0';
    if (r->skipping && !skip_tail(r, in))
        return LINE_NONE;
    avail = evbuffer_get_length(in);
    lim = avail < r->max ? avail : r->max;
    lf = find_lf(in, lim);
    if (lf < 0) {
        if (avail < r->max)
            return LINE_NONE;
        /* No LF within max octets: the line (with its CRLF) is too long. */
        r->skipping = 1;
        (void)skip_tail(r, in);
        return LINE_TOO_LONG;
    }
    n = (size_t)lf;                         /* octets before the LF, <= max - 1 */
    if (n > 0 && evbuffer_copyout(in, buf, n) != (ssize_t)n)
        return LINE_NONE;                   /* cannot happen: n < avail */
    (void)evbuffer_drain(in, n + 1);
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    else
        *bare_lf = 1;
    buf[n] = '\0';
    *len = n;
    return LINE_OK;
}
