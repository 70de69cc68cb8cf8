/*
 * tools/ctlclient.h — the client side of hatod's control socket
 * (state_directory/hatod.sock, protocol in mta/control.h) for hatoctl and
 * hato-sendmail: connect, send a command line, read the reply with
 * timeouts; and the queue listing both tools print, read straight from
 * state_directory/queue/ when hatod is not running.
 */
#ifndef HATO_CTLCLIENT_H
#define HATO_CTLCLIENT_H

#include <stddef.h>
#include <stdio.h>

struct hato_config;

#define CTL_TIMEOUT_MS 30000      /* connect, each read, each write */
#define CTL_BUF_SIZE   8192       /* read buffer */
#define CTL_LINE_MAX   4096       /* longest reply line accepted */

enum ctl_status {
    CTL_OK = 0,
    CTL_ERR = 1,     /* the server answered "ERR reason" (reason in err) */
    CTL_DOWN = 2,    /* hatod is not running (no socket / refused) */
    CTL_FAIL = -1,   /* any other failure: I/O, timeout, protocol (err) */
};

struct ctl_conn {
    int fd;
    int timeout_ms;
    size_t off, len;             /* unread bytes: buf[off .. len) */
    char buf[CTL_BUF_SIZE];
};

/* Connect to the control socket of cfg.  CTL_OK, CTL_DOWN (ENOENT or
 * ECONNREFUSED) or CTL_FAIL; err says why unless CTL_OK.  The fd is
 * non-blocking; every wait is bounded by CTL_TIMEOUT_MS. */
int ctl_open(struct ctl_conn *c, const struct hato_config *cfg, char *err, size_t errlen);
void ctl_close(struct ctl_conn *c);
/* Write all of buf.  0, or -1 + err (timeout, peer gone). */
int ctl_write(struct ctl_conn *c, const void *buf, size_t len, char *err, size_t errlen);
/* Read one line into line (LF or CRLF removed, NUL-terminated).  0, or -1
 * + err on EOF, timeout, I/O error or a line longer than len - 1. */
int ctl_read_line(struct ctl_conn *c, char *line, size_t len, char *err, size_t errlen);
/* Copy everything up to EOF to out.  0, or -1 + err. */
int ctl_copy_rest(struct ctl_conn *c, FILE *out, char *err, size_t errlen);

/* One control command ("RELOAD", "QUEUE FLUSH", ...): connect, send it,
 * read "OK" (then copy the rest to out, if out is not NULL) or "ERR ...". */
int ctl_command(const struct hato_config *cfg, const char *cmd, FILE *out,
                char *err, size_t errlen);

/* The mailq listing (text, or JSON lines): from hatod when it runs, else
 * read from state_directory/queue/{env,hold} directly.  0, or -1 + err. */
int ctl_queue_list(const struct hato_config *cfg, int json, FILE *out,
                   char *err, size_t errlen);
/* The offline half of ctl_queue_list, on a queue directory. */
int ctl_queue_list_dir(const char *queue_dir, int json, FILE *out,
                       char *err, size_t errlen);

#endif
