/*
 * proto/lineio.h — taking protocol command lines out of an evbuffer with a
 * hard length limit.  A line over the limit is reported once (LINE_TOO_LONG)
 * and the rest of it, up to its LF, is discarded as it arrives; the reader
 * then goes on with the next line.  Lines end in CRLF; a bare LF also ends
 * a line and is reported so the caller can apply its bare-newline policy.
 */
#ifndef HATO_LINEIO_H
#define HATO_LINEIO_H

#include <stddef.h>

/* SMTP command and reply lines, CRLF included (RFC 5321 §4.5.3.1.4-5):
 * the server's command reader and the client's reply reader share it. */
#define SMTP_LINE_MAX 512

struct evbuffer;

enum line_status {
    LINE_NONE = 0,     /* no complete line yet */
    LINE_OK,           /* a line in buf (without CRLF/LF), NUL-terminated */
    LINE_TOO_LONG,     /* a line exceeded max; its tail will be skipped */
};

struct line_reader {
    size_t max;        /* octets including the CRLF (512 for SMTP) */
    int skipping;      /* discarding the tail of an over-long line */
};

void line_reader_init(struct line_reader *r, size_t max);
/* buf must have room for max + 1 octets.  *bare_lf = 1 when the line ended
 * in LF without CR.  A NUL inside a line is returned as is (len counts it). */
enum line_status line_read(struct line_reader *r, struct evbuffer *in,
                           char *buf, size_t *len, int *bare_lf);

#endif
