/*
 * proto/smtp_data.h — the DATA stream decoder (RFC 5321 §4.1.1.4, §4.5.2):
 * finds the end of data, undoes dot-stuffing, normalises line ends, and
 * measures the header section.  A pure byte-at-a-time state machine: the
 * result of feeding input in any split is the same (trickle-tested).
 *
 * Rules (defence against SMTP smuggling, CVE-2023-51764):
 *  - Only <CR><LF>.<CR><LF> ends the data (the leading CRLF may be the one
 *    that ended the DATA command: data that starts with ".\r\n" is empty).
 *    <LF>.<LF>, <LF>.<CR><LF>, <CR>.<CR>, <CR><LF>.<LF> ... never do.
 *  - Dot-unstuffing: a '.' that starts a line after a real CRLF (or at the
 *    start of data) is removed.  After a bare LF nothing is removed.
 *  - Bare LF (LF not preceded by CR), policy SMTP_BARE_LF_NORMALIZE: stored
 *    as CRLF.  Policy SMTP_BARE_LF_REJECT: feeding stops with
 *    SMTP_DATA_BARE_LF at the LF (caller answers 521 5.5.2 and closes).
 *  - A bare CR (not followed by LF) is kept as is.
 *  - Output always uses CRLF line ends; the end-of-data line is not output.
 *  - The header section is the output up to and including the first empty
 *    line, or up to the first line that is not a header field (a field name
 *    of printable octets then ':', or a continuation line starting with
 *    white space), as Postfix does; header_bytes counts it (all output so
 *    far while the header section lasts).
 *  - After END or BARE_LF the decoder stays in that state (further calls
 *    consume nothing) until smtp_data_init.
 */
#ifndef HATO_SMTP_DATA_H
#define HATO_SMTP_DATA_H

#include <stddef.h>

enum smtp_bare_lf { SMTP_BARE_LF_NORMALIZE = 0, SMTP_BARE_LF_REJECT };

enum smtp_data_status {
    SMTP_DATA_MORE = 0,   /* all input consumed, end not seen */
    SMTP_DATA_END,        /* end of data seen; *consumed says where */
    SMTP_DATA_BARE_LF,    /* bare LF under the REJECT policy */
};

struct smtp_data {
    int state;            /* private */
    enum smtp_bare_lf policy;
    int in_header;        /* still in the header section */
    long long header_bytes;
    long long bytes_out;  /* octets produced so far */
    int hstate;           /* private: header-section scanner */
    long long line_start; /* private: offset of the current header line */
};

void smtp_data_init(struct smtp_data *d, enum smtp_bare_lf policy);
/* Decode in[0..inlen).  Output goes to out, which must have room for
 * 2 * inlen + 4 octets; *outlen is set to what was written.  *consumed is
 * the input used (all of it unless END or BARE_LF). */
enum smtp_data_status smtp_data_feed(struct smtp_data *d, const char *in, size_t inlen,
                                     size_t *consumed, char *out, size_t *outlen);

#endif
