/*
 * lib/fsutil.h — small, checked file-system helpers: whole writes, path
 * joins, fsync of a directory, mkdir and mkdir -p, atomic file replacement, whole-file reads.
 */
#ifndef HATO_FSUTIL_H
#define HATO_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* write() until done; retries EINTR.  0 or -1 (errno). */
int fs_write_all(int fd, const void *buf, size_t len);
/* rename() that never replaces: -1/EEXIST if `to` exists.  Uses
 * renameat2(RENAME_NOREPLACE), or link + unlink where the filesystem
 * lacks it.  0 or -1 (errno). */
int fs_rename_noreplace(const char *from, const char *to);
/* fsync a directory by path.  0 or -1. */
int fs_fsync_dir(const char *path);
/* "a/b" into buf.  0, or -1/ENAMETOOLONG when it does not fit. */
int fs_join(char *buf, size_t len, const char *a, const char *b);
/* mkdir of one directory with mode; an existing directory is fine, anything
 * else in its place is -1/ENOTDIR.  0 or -1 (errno). */
int fs_mkdir(const char *path, mode_t mode);
/* mkdir -p with mode for created components.  0 or -1. */
int fs_mkdirs(const char *path, mode_t mode);
/* fs_mkdirs, and every directory it makes is fsynced into its parent
 * before the next is made (a power loss cannot take away a directory that
 * durable data was then written into). */
int fs_mkdirs_flushed(const char *path, mode_t mode);
/* Replace `path` atomically with `data`: write a unique path.tmp.PID.N,
 * fsync, rename, fsync the directory.  An existing file keeps its mode and
 * (when permitted) its owner; a new one gets `mode`.  0 or -1 (errno). */
int fs_replace(const char *path, const void *data, size_t len, mode_t mode);
/* fs_read_file, but a missing file reads as empty. */
int fs_read_file_or_empty(const char *path, size_t max, char **out, size_t *outlen);
/* Read a whole file (at most `max` bytes; larger → -1/EFBIG) into a
 * malloc'd NUL-terminated buffer.  0 or -1. */
int fs_read_file(const char *path, size_t max, char **out, size_t *outlen);
/* Directory part of path into buf. */
void fs_dirname(const char *path, char *buf, size_t len);

/* The batch flush policy shared by queue commits and local delivery: a
 * batch of FS_SYNCFS_BATCH_MIN files or more is flushed with one syncfs of
 * its filesystem, a smaller one (a lone session) with a flush per file,
 * which is cheaper there (bench/RESULTS.md).  -D overrides it for a bench. */
#ifndef FS_SYNCFS_BATCH_MIN
#define FS_SYNCFS_BATCH_MIN 4
#endif
static inline int fs_batch_wants_syncfs(size_t nfiles)
{
    return nfiles >= FS_SYNCFS_BATCH_MIN;
}

#endif
