/*
 * proto/pop3_msg.h — a message as RETR and TOP send it (RFC 1939 §3):
 * CRLF line ends (a bare LF becomes CRLF), dot-stuffing, a CRLF after a
 * last line that had none, TOP's cut after the header and n body lines,
 * and the terminating ".".  Pure and incremental: the file comes in chunks
 * of any size and the output is the same (trickle-tested).
 */
#ifndef HATO_POP3_MSG_H
#define HATO_POP3_MSG_H

#include <stddef.h>

struct evbuffer;

struct pop3_msg_out {
    long top;          /* body lines to send, -1: the whole message */
    long lines;        /* body lines sent */
    size_t linelen;    /* octets of the current line so far */
    int bol;           /* at the start of a line */
    int cr;            /* the current line's last octet is CR */
    int in_header;
    int done;          /* TOP's cut reached: the rest is not sent */
};

void pop3_msg_out_init(struct pop3_msg_out *m, long top);
/* Append the transformed chunk to out; 0, or -1 when out of memory. */
int pop3_msg_out_feed(struct pop3_msg_out *m, const char *in, size_t n, struct evbuffer *out);
/* After the last chunk: the missing CRLF and ".\r\n".  0 or -1. */
int pop3_msg_out_end(struct pop3_msg_out *m, struct evbuffer *out);
/* 1 once nothing more of the file would be sent (TOP). */
int pop3_msg_out_done(const struct pop3_msg_out *m);

#endif
