/*
 * auth/passwd.h — checking a password against a users_file entry's crypt(3)
 * hash (yescrypt, sha512-crypt, bcrypt: whatever libcrypt knows), in the
 * worker pool (class WORK_AUTH), never on the loop.
 *
 * Lifetimes: auth_verify reads the user table only during the call and
 * copies the user's hash and the password into the job, so a reload may
 * free the table while the job runs.  The job is never cancelled: `cb`
 * runs on the loop once, always, and whoever passed `arg` must find its
 * session again by id (the session may have gone).
 *
 * Timing: an unknown user, a locked account ("*", "!..." or any hash that
 * is not a crypt setting) and a wrong password all cost one crypt(): the
 * password is hashed with another user's hash as the setting (same scheme
 * and cost as the table's users), or with a yescrypt dummy when the table
 * has none, and the answer is AUTH_FAIL.
 */
#ifndef HATO_PASSWD_H
#define HATO_PASSWD_H

struct work_pool;
struct usertab;

#define PASSWD_MAX 1024    /* octets of a password (SASL_PASSWORD_MAX) */

enum auth_verdict {
    AUTH_PASS,         /* the password matches */
    AUTH_FAIL,         /* wrong password, unknown user, locked account */
    AUTH_TEMPFAIL      /* could not check (out of memory): answer 454 4.7.0, and do
                        * not count it as a failed login (auth/throttle.h) */
};

typedef void (*auth_verify_cb)(void *arg, enum auth_verdict v);

/* Check user's password in the pool; cb(arg, verdict) later on the loop.
 * 0, or -1 if the job could not be queued (pool shutting down, no memory,
 * a password over PASSWD_MAX octets): then cb is never called. */
int auth_verify(struct work_pool *pool, const struct usertab *users, const char *user,
                const char *password, auth_verify_cb cb, void *arg);

/* The check itself, blocking (for the pool job and tests): does password
 * hash to `hash`?  "*", "!", "" and broken hashes never match. */
enum auth_verdict passwd_check(const char *hash, const char *password);

#endif
