/*
 * auth/users.h — the user table (`users_file`): one line per mailbox,
 *   address  password-hash  [quota=100M]
 * `#` comments and blank lines allowed.  The hash is crypt(3) output, or
 * "*" / "!" for an account that cannot log in.  Addresses are lower-cased.
 * Also the atomic edits `hatoctl user add|del` makes (comments kept).
 */
#ifndef HATO_USERS_H
#define HATO_USERS_H

#include <stddef.h>

struct user {
    char *address;     /* "local@domain", lower-case */
    char *hash;
    long long quota;   /* bytes, 0 = unlimited */
};

struct usertab;

/* Load; a missing file is an empty table.  NULL + "FILE:LINE: reason". */
struct usertab *users_load(const char *path, char *err, size_t errlen);
const struct user *users_find(const struct usertab *t, const char *address);
size_t users_count(const struct usertab *t);
const struct user *users_at(const struct usertab *t, size_t i);
void users_free(struct usertab *t);

/* Edit the file atomically (tmp + fsync + rename), keeping other lines and
 * comments.  add: fails if the address exists.  0, or -1 + message. */
int users_file_add(const char *path, const char *address, const char *hash,
                   long long quota, char *err, size_t errlen);
int users_file_del(const char *path, const char *address, char *err, size_t errlen);

#endif
