/*
 * store/pop3drop.h — a POP3 maildrop over the store: the INBOX of a
 * mailbox as a numbered list (UID order) of messages with their UIDs and
 * their sizes as a POP3 client receives them (CRLF line ends), the maildrop
 * lock, opening one message, and the deletions of the UPDATE state through
 * the index (store/index.h: unlink, EXPUNGE record, maildirsize).  IMAP
 * will reuse the lock-free parts (load, open).  Blocking: worker threads
 * only.
 *
 * Sizes (RFC 1939 §11: the octets the client will receive before
 * dot-stuffing): a name with Dovecot's ",W=N" gives N; a file hato
 * delivered ("SECS.M<usec>P<pid>Q<n>.HOST,S=SIZE": queue content, CRLF
 * already) gives its size; any other file is read once and counted as sent
 * (every bare LF becomes CRLF, a last line without one gets CRLF), and the
 * count kept in FOLDER/hato.pop3.sizes for the next logins.
 */
#ifndef HATO_STORE_POP3DROP_H
#define HATO_STORE_POP3DROP_H

#include <stddef.h>
#include <stdint.h>

#define POP3DROP_LOCK  "hato.pop3.lock"
#define POP3DROP_SIZES "hato.pop3.sizes"   /* counted sizes, a cache */

struct pop3drop_msg {
    uint32_t uid;
    int64_t size;          /* octets as sent, CRLF line ends */
    char *rel;             /* "new/NAME" or "cur/NAME:2,FLAGS", owned */
};

struct pop3drop {
    uint32_t uidvalidity;
    struct pop3drop_msg *msgs;   /* UID order */
    size_t n;
};

/* Take the maildrop's lock: FOLDER/hato.pop3.lock, flock(LOCK_EX|LOCK_NB),
 * so a second hatod (or any tool that flocks it) is kept out.  Creates the
 * Maildir when missing.  The fd (close it to unlock), or -1 with errno
 * (EWOULDBLOCK: held elsewhere). */
int pop3drop_lock(const char *folder);
/* The maildrop as it is now (the index synced with the Maildir first, so
 * files others put there count).  0, or -1 with errno. */
int pop3drop_load(const char *folder, struct pop3drop **out);
void pop3drop_free(struct pop3drop *d);
/* Open message m read-only; when its file moved (another program renamed
 * it) the index is synced and the new name tried, and m->rel follows it.
 * fd or -1 (errno). */
int pop3drop_open(const char *folder, struct pop3drop_msg *m);
/* Expunge these UIDs through the index.  Returns how many could not be
 * removed (0: all gone, also those gone already), -1 if the index could
 * not be opened. */
long pop3drop_expunge(const char *folder, const uint32_t *uids, size_t n);
/* Octets n octets of file content become when sent: the running count is
 * kept in *bare_lfs / *last (call with chunks in order; last starts at 0
 * for "no octet yet").  pop3drop_wire_size gives the total. */
void pop3drop_count(const unsigned char *p, size_t n, int64_t *bare_lfs, int *last);
int64_t pop3drop_wire_size(int64_t file_size, int64_t bare_lfs, int last);
/* 1 if name is a file hato's local delivery wrote (CRLF as stored). */
int pop3drop_name_is_ours(const char *name);

#endif
