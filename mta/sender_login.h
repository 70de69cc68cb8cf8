/*
 * mta/sender_login.h — which addresses an authenticated user may send as
 * (MAIL FROM and the From:/Sender: of a message submitted after AUTH):
 *  - the login itself (domain and local part in any case, as routing
 *    treats them);
 *  - a local address whose expansion (aliases, plus-addressing:
 *    mta/router.h) delivers to the login's mailbox and to no other local
 *    mailbox: "bob+tag@", "b.smith: bob", "postmaster" when it ends at bob.
 *    An alias with several local recipients ("info: bob, alice") is shared
 *    and owned by none of them; remote targets of an alias do not count;
 *  - grants in `sender_login_maps`, Postfix's smtpd_sender_login_maps idea:
 *    a file of lines `address login[, login...]` (`#` comment lines,
 *    a line starting with white space continues the previous one).  The key
 *    is "local@domain" or "@domain" (every address of that domain); the
 *    lookup tries the address, then it without its extension ("info+x@" →
 *    "info@"), then "@domain", and the first key found decides.  Keys and
 *    logins are lower-cased; a key given twice is an error.
 * Pure over the tables; the map is loaded with the other tables
 * (mta/tables.c), so SIGHUP reloads it.
 */
#ifndef HATO_SENDER_LOGIN_H
#define HATO_SENDER_LOGIN_H

#include <stddef.h>

struct router_config;
struct sender_logins;

/* Load; a missing file is an empty table.  NULL + "FILE:LINE: reason". */
struct sender_logins *sender_logins_load(const char *path, char *err, size_t errlen);
void sender_logins_free(struct sender_logins *t);
size_t sender_logins_count(const struct sender_logins *t);
/* 1 if the map (t may be NULL: no map) grants sender to login. */
int sender_logins_granted(const struct sender_logins *t, const char *login, const char *sender,
                          const char *delimiter);
/* 1 if login owns sender ("local@domain", local part unquoted) by the rules
 * above, 0 if not, -1 when out of memory. */
int sender_owned(const struct router_config *rc, const struct sender_logins *t,
                 const char *login, const char *sender);

#endif
