/*
 * store/index.h — the per-folder index of a Maildir++ folder: UIDVALIDITY,
 * UIDNEXT, HIGHESTMODSEQ and per message its UID, flags, keywords, MODSEQ,
 * size, internal date and header-end offset, keyed by the Maildir base name
 * (the file name before ":2,").  Listing a folder never opens a message.
 *
 * On disk (FOLDER/hato.index): a 32-byte header, then an append-only log of
 * checksummed records (APPEND, FLAGS, EXPUNGE), compacted by tmp + rename
 * when it holds twice as many records as messages.  Writers hold an flock
 * on FOLDER/hato.index.lock (LOCK_EX); readers take LOCK_SH while reading
 * the tail, so they see whole, flushed records only.  doc/architecture.md
 * ("Mailbox store") says why this form and what is flushed when.
 *
 * Invariants: a message never changes UID, never has two, and a UID is never
 * reused within one UIDVALIDITY.  An index that cannot prove its UIDs (lost,
 * or corrupt before its tail) is rebuilt from the Maildir with a new
 * UIDVALIDITY and a log line; a torn last record (kill -9 mid-append) is cut.
 *
 * Blocking (disk, locks): worker threads only.  One struct store_index is
 * used by one thread at a time; any number may be open on one folder.
 */
#ifndef HATO_STORE_INDEX_H
#define HATO_STORE_INDEX_H

#include <stddef.h>
#include <stdint.h>

/* Maildir flag letters. */
#define STORE_F_DRAFT    0x01u   /* D */
#define STORE_F_FLAGGED  0x02u   /* F */
#define STORE_F_PASSED   0x04u   /* P */
#define STORE_F_REPLIED  0x08u   /* R */
#define STORE_F_SEEN     0x10u   /* S */
#define STORE_F_TRASHED  0x20u   /* T */

#define STORE_INDEX_FILE  "hato.index"
#define STORE_INDEX_LOCK  "hato.index.lock"

struct store_msg {
    uint32_t uid;
    uint32_t flags;        /* STORE_F_* */
    uint64_t keywords;     /* bit i (< 26): Dovecot keyword letter 'a' + i */
    uint64_t modseq;
    int64_t size;          /* octets (the ,S= size when the name has one) */
    int64_t date;          /* internal date, seconds since the epoch */
    int64_t hdr_end;       /* offset of the body (after the blank line) */
    int in_cur;            /* the file is in cur/ (else new/) */
    char *name;            /* base name, owned */
};

struct store_index {
    char *folder;          /* the Maildir folder root */
    int fd;                /* hato.index, -1 when not open */
    uint64_t ino, dev;     /* of fd: a rename replaced the file when they differ */
    uint64_t parsed;       /* file octets applied to the state below */
    uint64_t nrec;         /* records in the file (compaction trigger) */
    uint32_t snap_left;    /* snapshot records still to read after the header */
    uint32_t uidvalidity, uidnext;
    uint64_t highestmodseq;
    struct store_msg *msgs;   /* sorted by UID */
    size_t n, cap;
    int lockfd;            /* hato.index.lock while locked, else -1 */
    int bad;               /* feed: 1 checksum/length, 2 broken invariant */
    uint32_t rebuilt;      /* times this handle rebuilt the index (tests) */
};

/* New message facts given by a delivery. */
struct store_newmsg {
    int64_t size, date, hdr_end;
};

/* Open FOLDER's index (made from the Maildir when missing: a folder with
 * messages and no index gets a new UIDVALIDITY, logged).  Loads every
 * record.  0, or -1 with errno. */
int store_index_open(const char *folder, struct store_index **out);
void store_index_close(struct store_index *ix);
/* Apply what others appended since (reload after a compaction). 0 / -1. */
int store_index_refresh(struct store_index *ix);
/* Under the lock: pick up the Maildir — new files get the next UIDs (by
 * mtime, then name), vanished ones are expunged, renamed :2,FLAGS become
 * flag changes.  0 / -1. */
int store_index_sync(struct store_index *ix);
/* Set a message's flags and keywords (renames the file into cur/ with the
 * new :2, suffix).  0, 1 if the UID is gone, -1 on error. */
int store_index_set_flags(struct store_index *ix, uint32_t uid, uint32_t flags,
                          uint64_t keywords);
/* Unlink the message and record its expunge.  0, 1 if gone already, -1. */
int store_index_expunge(struct store_index *ix, uint32_t uid);
/* The path of m's file as it is now (FOLDER/cur/NAME:2,FLAGS, or in new/
 * with or without ":2,FLAGS": Dovecot and mutt flag files in new/ too).
 * 0, 1 if the file is gone, -1 on error. */
int store_index_msg_path(const struct store_index *ix, const struct store_msg *m, char *buf,
                         size_t len);
/* The message with this UID, or NULL. */
const struct store_msg *store_index_find(const struct store_index *ix, uint32_t uid);

/* Local delivery: under FOLDER's lock, rename tmp_path to FOLDER/new/NAME and
 * append it with the next UID.  nosync: the caller flushes the file system
 * afterwards (syncfs); otherwise the record is fdatasync'ed before the lock
 * goes.  Reads only the header and the last record.  0 when delivered (even
 * if the index could not be written: the next sync picks the file up, logged),
 * -1 with errno when the rename failed. */
int store_index_deliver(const char *folder, const char *tmp_path, const char *name,
                        const struct store_newmsg *m, int nosync);

/* fdatasync FOLDER's index (after deliveries made with nosync, outside the
 * lock).  A missing index is 0: nothing of ours to flush.  0 or -1. */
int store_index_flush(const char *folder);

/* The reader, for tests and the fuzzer: an empty index, then bytes of an
 * index file from offset ix->parsed.  Returns how many octets were applied
 * (whole header and records only); ix->bad says why it stopped early. */
struct store_index *store_index_new_empty(void);
size_t store_index_feed(struct store_index *ix, const unsigned char *buf, size_t len);

/* The writer's encoders, for the fuzzer and tests that build index files
 * (store/index.c's top comment has the layout; little-endian, CRC-32 as
 * zlib's). */
#define STORE_INDEX_HDR_LEN   32    /* header octets */
#define STORE_INDEX_REC_FIXED 68    /* record octets before the name */

/* One record as stored. */
struct store_index_rec {
    int type;              /* 1 APPEND, 2 FLAGS, 3 EXPUNGE (others are refused) */
    uint32_t uid, uidnext, flags;
    uint64_t modseq, keywords;
    int64_t size, date, hdr_end;
    int in_cur;
    const char *name;      /* not NUL-terminated */
    size_t name_len;       /* at most NAME_MAX */
};

/* CRC-32 of len octets at p. */
uint32_t store_index_crc32(const unsigned char *p, size_t len);
/* r into out (STORE_INDEX_REC_FIXED + name_len + 8 octets, checksummed);
 * returns that length. */
size_t store_index_rec_encode(const struct store_index_rec *r, unsigned char *out);
/* A header into out (STORE_INDEX_HDR_LEN octets, checksummed); nsnap is how
 * many snapshot records follow it. */
void store_index_hdr_encode(unsigned char *out, uint32_t uidvalidity, uint32_t uidnext,
                            uint32_t nsnap, uint64_t highestmodseq);

/* Maildir info ("2,FRS" or "2,Sab"): flags and keywords.  Unknown letters are
 * ignored. */
void store_flags_parse(const char *info, uint32_t *flags, uint64_t *keywords);
/* ":2,FLAGS" suffix for them into buf (at least 40 octets). */
void store_flags_format(uint32_t flags, uint64_t keywords, char *buf, size_t len);

#endif
