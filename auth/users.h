/*
 * auth/users.h — the user table (`users_file`): one line per mailbox,
 *   address  password-hash  [quota=100M] [cram-md5=HEX] [scram-sha-256=I:S:K:K]
 *            [apop=B64]
 * `#` comments and blank lines allowed.  The hash is crypt(3) output, or
 * "*" / "!" for an account that cannot log in.  Addresses are lower-cased.
 * The options come in any order, each at most once; any other is an error.
 *   cram-md5=       64 hex digits: the HMAC-MD5 inner and outer states of
 *                   the password (MD5 chaining values after the ipad and
 *                   opad blocks, 4 little-endian words each), as Dovecot's
 *                   CRAM-MD5 scheme stores them
 *   scram-sha-256=  ITER:SALT:STOREDKEY:SERVERKEY (RFC 5802 §3, base64;
 *                   ITER 4096..10000000, salt 8..64 octets, keys 32 octets)
 *   apop=           base64 of the password itself (1..256 octets, no NUL):
 *                   APOP (RFC 1939 §7) hashes it with the banner's timestamp
 * Both are derived from the password by `hatoctl user passwd --with-cram /
 * --with-scram` (auth/sasl.h makes them); what storing them costs is in
 * doc/architecture.md ("Authentication").
 * Also the atomic edits `hatoctl user add|del|passwd` make (comments kept).
 */
#ifndef HATO_USERS_H
#define HATO_USERS_H

#include <stddef.h>

#define USERS_SCRAM_ITER_MIN 4096        /* RFC 7677 §4 */
#define USERS_SCRAM_ITER_MAX 10000000
#define USERS_SCRAM_SALT_MIN 8
#define USERS_SCRAM_SALT_MAX 64
#define USERS_SCRAM_KEY_LEN  32          /* SHA-256 */
#define USERS_CRAM_LEN       32          /* two MD5 states */
#define USERS_APOP_MAX       256         /* octets of a password stored for APOP */

/* Secrets for the challenge-response mechanisms; absent ones are zero. */
struct user_secrets {
    int has_cram, has_scram;
    unsigned char cram_md5[USERS_CRAM_LEN];     /* inner state, outer state */
    long scram_iter;
    unsigned char scram_salt[USERS_SCRAM_SALT_MAX];
    size_t scram_salt_len;
    unsigned char scram_stored_key[USERS_SCRAM_KEY_LEN];
    unsigned char scram_server_key[USERS_SCRAM_KEY_LEN];
    int has_apop;
    char apop[USERS_APOP_MAX + 1];              /* the password itself, NUL-terminated */
};

struct user {
    char *address;     /* "local@domain", lower-case */
    char *hash;
    long long quota;   /* bytes; 0 = none given (default_quota applies),
                          USERS_QUOTA_UNLIMITED for quota=unlimited */
    struct user_secrets *secrets;   /* NULL when the line has neither */
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
/* Set a user's password: the hash field of its line becomes `hash`, its
 * cram-md5=, scram-sha-256= and apop= options are dropped (they belong to the old
 * password) and `secrets` (" cram-md5=... scram-sha-256=...", or NULL) is
 * appended; every other option (quota=) and every other line is kept.  The
 * new line is parsed as users_load would before anything is written.
 * Fails if the address has no line. */
int users_file_passwd(const char *path, const char *address, const char *hash,
                      const char *secrets, char *err, size_t errlen);
#define USERS_QUOTA_UNLIMITED (-1LL)
/* Set a user's quota= (bytes; 0 drops it: default_quota then applies;
 * USERS_QUOTA_UNLIMITED writes quota=unlimited),
 * keeping the hash, the secrets and every other line.  Fails if the address
 * has no line. */
int users_file_quota(const char *path, const char *address, long long quota, char *err,
                     size_t errlen);

#endif
