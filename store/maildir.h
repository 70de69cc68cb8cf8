/*
 * store/maildir.h — writing into Maildir++ folders (mail/DOMAIN/LOCAL/):
 * unique names "TIME.M<usec>P<pid>Q<n>.HOST,S=SIZE", tmp/ then new/, and the
 * Maildir++ quota file `maildirsize`.  Runs on worker threads only.
 *
 * Two phases so a caller can batch the flushes of many deliveries:
 *   maildir_begin  writes tmp/NAME (prefix + content), no fsync
 *   (caller makes the data durable: fsync each tmp fd or syncfs once)
 *   maildir_finish renames tmp/NAME to new/NAME, updates maildirsize
 *   (caller makes the directory entries durable: fsync new/ or syncfs)
 */
#ifndef HATO_MAILDIR_H
#define HATO_MAILDIR_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

struct maildir_err {
    int temporary;        /* 1: retry later; 0: bounce */
    char dsn[16];         /* "4.3.0", "5.2.2" */
    char text[256];       /* human reason */
};

/* Small on purpose (one per recipient of a delivery batch): the paths are
 * built from `dir` and `name` when needed. */
struct maildir_tmp {
    const char *dir;            /* the Maildir root: the caller's string, kept
                                   alive until finish/abort */
    char name[NAME_MAX + 1];    /* the file's unique name, "" when no tmp file */
    int fd;                     /* open on dir/tmp/name until finish/abort (-1 after) */
    long long size;             /* octets written */
    long long quota;            /* bytes, 0 = none */
    long long hdr_end;          /* offset after the header's blank line (size if none) */
    int created;                /* begin made the Maildir (its first delivery):
                                   the caller gives it its layout (store/layout.h) */
    int index_nosync;           /* finish: the caller flushes the index after
                                   (syncfs or store_index_flush), so the record
                                   is not fdatasync'ed under the lock */
};

/* mkdir -p DIR/{cur,new,tmp} (mode 0700).  0 or -1 (errno). */
int maildir_create(const char *dir);
/* Write prefix then the whole content of content_fd (read with pread from
 * offset 0, content_len octets) into a new tmp file.  Creates the Maildir
 * if missing.  quota > 0: if current usage + size would exceed it, fails
 * with 4.2.2 "mailbox full" (temporary: the user may make room; the
 * caller decides whether to bounce at once).  0, or -1 with *e filled. */
int maildir_begin(const char *dir, const char *prefix, size_t prefix_len,
                  int content_fd, long long content_len, long long quota,
                  struct maildir_tmp *t, struct maildir_err *e);
/* fsync the tmp file (when the caller does not syncfs).  0 or -1. */
int maildir_sync_tmp(struct maildir_tmp *t, struct maildir_err *e);
/* Rename into new/ and append the message to the folder's index
 * (store/index.h) under its lock, close, account in maildirsize.  0 or -1. */
int maildir_finish(struct maildir_tmp *t, struct maildir_err *e);
/* Close and unlink the tmp file. */
void maildir_abort(struct maildir_tmp *t);
/* Current usage in bytes from maildirsize (recomputed from ,S= names in
 * new/ and cur/ of every folder when missing).  -1 on error. */
long long maildir_usage(const char *dir);
/* maildir_usage without writing anything (for tools running as another
 * user): maildirsize when usable, else a count of the files; a missing
 * Maildir is 0.  -1 on error. */
long long maildir_usage_peek(const char *dir);
/* Account a change of usage (negative for removals) in dir's maildirsize, if
 * it exists; a failed append removes it, so the next reader recomputes. */
void maildir_usage_add(const char *dir, long long bytes, long long count);
/* After a delivery: 1 if usage (into *usage when not NULL) is at or above
 * percent % of quota and no warning was given since it last was below — the
 * marker FOLDER/hato.quotawarn is made now with O_EXCL, so of concurrent
 * deliveries one warns; 0 when no warning is due (below the mark, the
 * marker is removed: the next crossing warns again); -1 on error.  Reads
 * maildirsize (recomputed when missing); quota or percent <= 0: 0. */
int store_quota_warn(const char *dir, long long quota, int percent, long long *usage);
/* Would `size` more octets fit under `quota` (bytes, <= 0: unlimited) in the
 * Maildir at dir?  Reads maildirsize (recomputed only when missing or
 * unusable), never rescans per call.  0 fits, 1 over quota, -1 error. */
int store_quota_check(const char *dir, long long size, long long quota);

#endif
