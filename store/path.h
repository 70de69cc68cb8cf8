/*
 * store/path.h — the only way mailbox paths are made from addresses: a
 * local part or domain becomes a directory name only if it cannot leave or
 * hide in the mail directory, whatever the address syntax allowed.
 * Pure functions, no I/O.
 */
#ifndef HATO_STORE_PATH_H
#define HATO_STORE_PATH_H

#include <stddef.h>

/* 1 if s may be one path component under mail/: not empty, at most 255
 * octets, no '/', no leading '.' (so neither "." nor ".." nor a Maildir++
 * folder name), no control character (0x00-0x1f, 0x7f). */
int store_name_ok(const char *s);
/* "domain/local" into buf, both checked.  0, or -1 (unsafe or too long). */
int store_mailbox_rel(char *buf, size_t len, const char *domain, const char *local);
/* 1 if rel is exactly two safe components "domain/local". */
int store_mailbox_rel_ok(const char *rel);

#endif
