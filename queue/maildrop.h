/*
 * queue/maildrop.h — the maildrop: where `hato-sendmail` leaves mail when
 * hatod is not running (state_directory/maildrop/, mode 1733, like Postfix's
 * old world-writable maildrop).  hatod's pickup queues each file and removes
 * it.  The file's owner uid is the submitting user: only the kernel sets
 * it (no user can give a file away), so it is what the Received: line
 * names.  Format:
 *
 *   hato-maildrop 1\n
 *   sender ADDR\n            (%-encoded; empty value = null sender)
 *   uid N\n                  (the writer's effective uid; optional: files
 *                             of older writers lack it)
 *   rcpt ADDR\n              (one or more, %-encoded)
 *   \n
 *   message content, as the user gave it (LF or CRLF line ends)
 *
 * The writer creates NAME.tmp (O_EXCL), writes, fsyncs, then renames to
 * NAME without the suffix; the reader ignores *.tmp files younger than a day.
 * The reader (mta/pickup.c) accepts only a regular file with one link whose
 * owner is the recorded uid, if one is recorded.
 */
#ifndef HATO_MAILDROP_H
#define HATO_MAILDROP_H

#include <stddef.h>

struct maildrop_hdr {
    char *sender;
    char **rcpts;
    size_t nrcpt;
    long long uid;        /* the "uid" line, or -1 if the file has none */
    size_t body_offset;   /* where the content starts in the file */
};

/* Write header (with the caller's effective uid) + content read from fd
 * `in` (until EOF) into dir; the file name goes to name (room 64).  0 or
 * -1 (errno). */
int maildrop_write(const char *dir, const char *sender, char *const *rcpts,
                   size_t nrcpt, int in, char *name, size_t namelen);
/* Where the header of a maildrop file that starts with buf[0..len) ends
 * (the offset after its empty line), or 0 if that is not in buf yet. */
size_t maildrop_header_end(const char *buf, size_t len);
/* Parse the header of a maildrop file read into buf (at least the header).
 * 0, or -1 + reason. */
int maildrop_parse(const char *buf, size_t len, struct maildrop_hdr *h,
                   char *err, size_t errlen);
void maildrop_hdr_free(struct maildrop_hdr *h);

#endif
