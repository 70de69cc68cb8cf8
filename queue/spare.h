/*
 * queue/spare.h — spent queue files kept for reuse (queue/free/N).
 *
 * A removed message's files are renamed into the pool instead of unlinked,
 * and a new queue file is written into a spare where it lies and renamed
 * from there into msg/ or env/ at commit.  The queue then allocates and
 * frees (almost) no inodes and no blocks in steady state.  On this
 * project's reference disk (ext4 without a journal, mounted with discard)
 * that saves the inode allocator's scan past recently freed inodes, and the
 * synchronous discard that truncating or unlinking a file costs
 * (bench/RESULTS.md).
 *
 * Content files and envelopes are pooled apart (free/mN, free/eN), so that
 * a small envelope is not written into a spare that held a big message:
 * cutting that one short would free its blocks again.
 *
 * A spare may hold stale bytes of the file it used to be: whoever takes
 * one overwrites it from offset 0 and cuts it to what it wrote
 * (spare_seal) before renaming it into place.  The pool keeps at most
 * SPARE_KEEP_FILE octets in one spare and SPARE_KEEP_TOTAL in all;
 * beyond that a spare is truncated to empty when it enters the pool.
 * The pool lives inside queue/ (mode 0700), like the queue files it
 * recycles.
 *
 * Moving a spent file into the pool is a rename nobody flushes.  Until a
 * flush of the filesystem records it, a power loss could bring the old name
 * (env/ID or msg/ID of a delivered message) back, now pointing at whatever
 * was written into the spare since: another message's content under the
 * old envelope.  So a spare is handed out only once a flush that began after
 * it entered the pool has completed (the queue reports its syncfs calls with
 * spares_sync_begin/end; they run every batch), oldest first; until then
 * spares_take finds nothing and the caller creates a new file.  Thread-safe.
 */
#ifndef HATO_SPARE_H
#define HATO_SPARE_H

#include <stddef.h>

#define SPARE_KEEP_FILE  (1024LL * 1024)          /* larger spares are emptied */
#define SPARE_KEEP_TOTAL (64LL * 1024 * 1024)     /* stale octets in the whole pool */

struct spares;

enum spare_kind { SPARE_MSG, SPARE_ENV, SPARE_KINDS };

/* One spare taken from the pool: still named free/<kind><num>; `stale`
 * octets of old content in it. */
struct spare {
    unsigned long num;
    long long stale;
    enum spare_kind kind;
    unsigned long long epoch;   /* flushes begun before it entered the pool */
};

/* The pool in dir (created by the caller), at most max files of each kind;
 * files found there are adopted (other names are removed, and so is a name
 * whose file also has a name in one of live_dirs, a NULL-terminated list or
 * NULL).  NULL on ENOMEM. */
struct spares *spares_open(const char *dir, size_t max, const char *const *live_dirs);
/* Take the oldest spare of kind k whose entry into the pool is durable, and
 * open it for writing (not truncated).  The fd, or -1 when there is none
 * (the caller then creates a new file). */
int spares_take(struct spares *s, enum spare_kind k, struct spare *sp);
/* The path of a taken spare (free/<kind><num>). */
void spares_path(const struct spares *s, const struct spare *sp, char *buf, size_t len);
/* Give back a taken spare that was not renamed away (it keeps its epoch);
 * `size` is what it holds now.  If the pool is full it is unlinked. */
void spares_give_back(struct spares *s, const struct spare *sp, long long size);
/* Recycle the file at `path` into the pool (renamed; emptied if it would
 * exceed the keep limits).  0, or -1 when the pool is full or the rename
 * failed (the caller unlinks). */
int spares_put(struct spares *s, enum spare_kind k, const char *path);
/* Around a flush (syncfs) of the pool's filesystem: begin returns a ticket,
 * end reports that flush complete.  Call end only if the flush succeeded. */
unsigned long long spares_sync_begin(struct spares *s);
void spares_sync_end(struct spares *s, unsigned long long ticket);
size_t spares_count(struct spares *s);
/* Stale octets held by the pool. */
long long spares_bytes(struct spares *s);
void spares_close(struct spares *s);

/* Cut a file written from offset 0 with `len` octets to that length when
 * it held `stale` octets before.  0 or -1 (errno). */
int spare_seal(int fd, long long stale, long long len);

#endif
