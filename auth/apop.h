/*
 * auth/apop.h — APOP (RFC 1939 §7): the client proves it knows the
 * password by MD5(timestamp password), the timestamp being the one in this
 * session's banner.  The server needs the password itself for that: it is
 * stored as apop= beside the hash (`hatoctl user passwd --with-apop`,
 * auth/users.h), only for the users who want APOP.  What that costs is in
 * doc/architecture.md ("Authentication").  On the loop: one MD5.
 */
#ifndef HATO_APOP_H
#define HATO_APOP_H

struct usertab;

/* 0 if digest (32 hex digits, either case) is MD5(timestamp || the
 * user's apop password); -1 for a wrong digest, an unknown user or one
 * without apop=.  The comparison takes the same time whichever it is. */
int apop_check(const struct usertab *users, const char *user, const char *timestamp,
               const char *digest);
/* MD5(timestamp || password) as 32 lower-case hex digits into out[33]. */
void apop_digest(const char *timestamp, const char *password, char out[33]);

#endif
