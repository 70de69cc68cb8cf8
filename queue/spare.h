/*
 * queue/spare.h — spent queue files kept for reuse (queue/free/N).
 *
 * A removed message's files are renamed into the pool and truncated instead
 * of unlinked, and a new queue file is a spare renamed into place.  The
 * queue then allocates and frees (almost) no inodes in steady state: on
 * ext4 that saves the inode allocator's work, which without a journal
 * scans past every inode freed in the last seconds and dominated hatod's
 * CPU under load (bench/RESULTS.md).  Spares hold no mail: they are
 * truncated when they enter the pool.  Thread-safe.
 */
#ifndef HATO_SPARE_H
#define HATO_SPARE_H

#include <stddef.h>

struct spares;

/* The pool in dir (created by the caller), at most max files; files found
 * there are adopted (non-numeric names are removed).  NULL on ENOMEM. */
struct spares *spares_open(const char *dir, size_t max);
/* Rename a spare to `path` (which must not exist) and open it for writing,
 * empty.  The fd, or -1 when the pool is empty or the rename failed (the
 * caller then creates the file itself). */
int spares_take(struct spares *s, const char *path);
/* Recycle the file at `path` into the pool (renamed, truncated).  0, or
 * -1 when the pool is full or the rename failed (the caller unlinks). */
int spares_put(struct spares *s, const char *path);
size_t spares_count(struct spares *s);
void spares_close(struct spares *s);

#endif
