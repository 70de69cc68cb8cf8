/*
 * t/shim/flusherr.h — a model of how Linux reports writeback errors
 * (errseq_t), linked into a test program in place of libc's open, close,
 * syncfs, fsync, fdatasync and sync_file_range (t/shim/flusherr.c).
 *
 * The model: the filesystem has one error sequence and every file one of
 * its own.  A descriptor samples both when it is opened (an error nobody
 * has seen yet is still reported to it); syncfs(fd) reports -1/EIO when
 * the filesystem's sequence moved since fd last looked, fsync, fdatasync
 * and sync_file_range when its file's did, and each then marks the error
 * seen by that descriptor.  So an error is reported once to each
 * descriptor, as in fs/sync.c and lib/errseq.c.  The real calls still run.
 */
#ifndef HATO_FLUSHERR_H
#define HATO_FLUSHERR_H

/* Track descriptors opened from now on (until then the shim only passes
 * calls through). */
void flusherr_enable(void);
/* The writeback of fd's file failed: its file's and the filesystem's
 * sequences move (what mapping_set_error does). */
void flusherr_fail_file(int fd);
/* A writeback failed that belongs to no open file (a directory block):
 * only the filesystem's sequence moves. */
void flusherr_fail_fs(void);
/* Called before every syncfs/fsync/fdatasync/sync_file_range of a tracked
 * descriptor, on the calling thread, without the shim's lock (it may
 * block, or inject an error).  NULL: none. */
typedef void (*flusherr_hook_fn)(const char *call, int fd);
void flusherr_set_hook(flusherr_hook_fn fn);
/* How many flushes the shim has answered with EIO. */
int flusherr_reported(void);

#endif
