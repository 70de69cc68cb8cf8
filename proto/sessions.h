/*
 * proto/sessions.h — the session-id table every protocol server keeps
 * (SMTP, POP3; IMAP next): sessions are numbered from 1 as they start and
 * found again by number, so a pool job or a timer that outlives its
 * session holds an id, never a pointer, and learns on return that the
 * session is gone.  Intrusive: a session embeds a struct sess_link.
 * A fixed bucket array (no allocation, zeroed = empty).  Loop thread only.
 */
#ifndef HATO_PROTO_SESSIONS_H
#define HATO_PROTO_SESSIONS_H

#include <stddef.h>

#define SESS_BUCKETS 4096

struct sess_link {
    unsigned long long id;      /* 0 until added */
    void *owner;                /* the session this link is in */
    struct sess_link *next;
};

struct sess_table {
    struct sess_link *buckets[SESS_BUCKETS];
    size_t n;
    unsigned long long last_id;
};

/* Give l the next id and link it; owner is what find returns. */
void sess_table_add(struct sess_table *t, struct sess_link *l, void *owner);
/* Unlink l (nothing if it is not in t). */
void sess_table_remove(struct sess_table *t, struct sess_link *l);
/* The owner of the session with this id, or NULL when it is gone. */
void *sess_table_find(const struct sess_table *t, unsigned long long id);
/* Call fn(owner, arg) for each session; fn may remove (free) the one it is
 * given, not others. */
void sess_table_each(struct sess_table *t, void (*fn)(void *owner, void *arg), void *arg);
/* Some session's owner, or NULL when the table is empty (free-all loops). */
void *sess_table_any(const struct sess_table *t);

#endif
