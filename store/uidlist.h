/*
 * store/uidlist.h — reading Dovecot's `dovecot-uidlist` (Maildir UIDs), so a
 * folder Dovecot kept keeps its UIDVALIDITY and UIDs when hato first
 * indexes it (a migrated IMAP client then resynchronises nothing).  Only
 * read, never written; only at a folder's first indexing (store/index.c).
 *
 * Formats (Dovecot src/lib-storage/index/maildir/maildir-uidlist.c):
 *   version 3: "3 V<uidvalidity> N<nextuid> [G<guid>] ..." then lines
 *              "<uid> [<ext>...] :<filename>"
 *   version 1: "1 <uidvalidity> <nextuid>" then lines "<uid> <filename>"
 * The file name is matched by its base (before ":2,").
 */
#ifndef HATO_STORE_UIDLIST_H
#define HATO_STORE_UIDLIST_H

#include <stddef.h>
#include <stdint.h>

#define STORE_UIDLIST_FILE "dovecot-uidlist"

struct store_uidlist_ent {
    uint32_t uid;
    char *base;                 /* owned */
};

struct store_uidlist {
    uint32_t validity, next;    /* next >= every uid + 1 */
    struct store_uidlist_ent *v;    /* sorted by base; bases unique */
    size_t n;
};

/* Parse a whole file.  0, or -1 when it is not a uidlist this reads (bad
 * header, a line that does not parse, a UID at or over next, UIDs not
 * rising, a base twice): then nothing can be trusted and *u is empty. */
int store_uidlist_parse(const char *text, size_t len, struct store_uidlist *u);
/* FOLDER/dovecot-uidlist: 0 read, 1 none or unusable, -1 error (errno). */
int store_uidlist_read(const char *folder, struct store_uidlist *u);
/* The UID of the message with this base name, or 0. */
uint32_t store_uidlist_find(const struct store_uidlist *u, const char *base, size_t len);
void store_uidlist_free(struct store_uidlist *u);

#endif
