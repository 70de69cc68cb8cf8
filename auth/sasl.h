/*
 * auth/sasl.h — the server side of the SASL mechanisms (RFC 4422), one
 * exchange at a time, as an explicit state machine that knows nothing of
 * sessions, sockets or protocols: SMTP AUTH (RFC 4954), POP3 AUTH
 * (RFC 5034) and IMAP AUTHENTICATE (RFC 3501) all drive it the same way.
 *
 *   PLAIN          RFC 4616: [authzid] NUL authcid NUL passwd
 *   LOGIN          draft-murchison-sasl-login: "Username:", "Password:"
 *   CRAM-MD5       RFC 2195, against the stored HMAC-MD5 states (cram-md5=)
 *   SCRAM-SHA-256  RFC 5802 / RFC 7677, against the stored keys (scram-sha-256=)
 *   SCRAM-SHA-256-PLUS  the same with channel binding, offered only when the
 *                  caller gives the binding data of its TLS connection
 *
 * The caller's loop:
 *   s = sasl_start(name, params, initial_response or NULL, lookup, &r);
 *   while (r.status == SASL_CHALLENGE) {
 *       send r.challenge (base64, maybe "") as "334 " / "+ ";
 *       read one line;  sasl_step(s, lookup, line, len, &r);
 *   }
 *   SASL_NEED_VERIFY: run auth_verify(r.authcid, r.password) (auth/passwd.h)
 *       in the pool, then sasl_verified(s, verdict == AUTH_PASS, &r):
 *       SUCCESS or FAIL (AUTH_TEMPFAIL: answer 454 and sasl_free instead).
 *   SASL_SUCCESS: logged in as r.authcid.  If r.final is set (SCRAM's
 *       server-final message) it must reach the client before the success
 *       reply: as additional data where the protocol has it, else (SMTP
 *       and IMAP without SASL-IR success data, POP3) as one more challenge
 *       whose answer must be an empty line — sasl_step handles that step
 *       when r.final_needs_ack was asked for (params.final_as_challenge).
 *   SASL_FAIL: 535 / -ERR / NO; r.reason is for the log, never the client.
 *   SASL_CANCEL: the client sent "*" (501 in SMTP).
 * Every result's strings point into s and live until the next call on s or
 * sasl_free.  The lookup is used only during a call (the secrets an
 * exchange needs are copied into s), so a reload between steps is safe.
 *
 * Input limits: a client line of more than SASL_LINE_MAX characters, or
 * decoding to more than SASL_DECODED_MAX octets, fails the exchange; base64
 * is strict (lib/base64.h).  Identities are UTF-8 without NUL or control
 * characters, at most SASL_ID_MAX octets; passwords UTF-8 without NUL, at
 * most SASL_PASSWORD_MAX octets.  An authzid must be empty or equal the authcid
 * (ASCII case-insensitive): hato has no proxy logins.
 *
 * Unknown users: CRAM-MD5 and SCRAM go through the whole exchange with a
 * made-up secret (SCRAM's salt derived from the name with a per-process
 * key, so it is the same on every try) and fail at the proof, as a wrong
 * password does; the reason says which.  No SASLprep (RFC 4013): names and
 * passwords are compared as their UTF-8 octets, which is SASLprep for
 * ASCII; `hatoctl` derives the secrets from the same octets.
 */
#ifndef HATO_SASL_H
#define HATO_SASL_H

#include <stddef.h>

struct usertab;
struct user_secrets;
struct sasl;

/* Where an exchange finds a user's stored secrets (auth/users.h), during a
 * call only.  A NULL lookup or answer: the user has none. */
struct sasl_lookup {
    const struct user_secrets *(*find)(const void *arg, const char *authcid);
    const void *arg;
};
/* find for a users table: arg is a const struct usertab *. */
const struct user_secrets *sasl_usertab_find(const void *usertab, const char *authcid);

#define SASL_LINE_MAX      12288   /* base64 characters in one client line */
#define SASL_DECODED_MAX   9216    /* octets it may decode to */
#define SASL_ID_MAX        320     /* octets of an authcid / authzid */
#define SASL_PASSWORD_MAX  1024    /* octets of a password */
#define SASL_SCRAM_ITER    4096    /* iterations hatoctl uses by default */
#define SASL_CB_MAX        64      /* octets of channel-binding data */

enum sasl_status {
    SASL_CHALLENGE,     /* send r.challenge, call sasl_step with the answer */
    SASL_NEED_VERIFY,   /* check r.authcid / r.password, call sasl_verified */
    SASL_SUCCESS,       /* r.authcid logged in (r.final: see above) */
    SASL_FAIL,          /* r.reason */
    SASL_CANCEL         /* the client's "*" */
};

struct sasl_result {
    enum sasl_status status;
    const char *challenge;      /* CHALLENGE: base64, "" for an empty one */
    const char *authcid;        /* NEED_VERIFY, SUCCESS */
    const char *password;       /* NEED_VERIFY: wiped by sasl_verified / sasl_free */
    const char *final;          /* SUCCESS: base64 of SCRAM's server-final, or NULL */
    const char *reason;         /* FAIL */
    const char *mech;           /* the mechanism's name, for the log */
};

struct sasl_params {
    /* CRAM-MD5's challenge is <RANDOM.TIME@hostname>; NULL: "localhost". */
    const char *hostname;
    /* Channel binding of the connection (RFC 5929 / RFC 9266), or none:
     * cb_type "tls-exporter" or "tls-server-end-point" and its data.
     * Without it SCRAM-SHA-256-PLUS is not offered or accepted. */
    const char *cb_type;
    const unsigned char *cb_data;
    size_t cb_len;
    /* SCRAM's server-final as one more challenge (SMTP, POP3, IMAP): then
     * SUCCESS comes after the client's empty answer, with r.final NULL. */
    int final_as_challenge;
    /* Tests only: the server nonce (SCRAM) or the whole challenge
     * (CRAM-MD5) instead of random ones. */
    const char *fixed_nonce;
};

/* Is this mechanism (case-insensitive) known, and offered under params
 * (the -PLUS one only with channel binding)? */
int sasl_mech_offered(const char *name, const struct sasl_params *params);
/* The names to advertise, space-separated ("PLAIN LOGIN CRAM-MD5 ..."). */
const char *sasl_mech_list(const struct sasl_params *params);

/* Begin an exchange.  initial_response: the base64 given with the command
 * ("=" for an empty one), or NULL.  Returns the exchange, with *r set
 * (FAIL for an unknown mechanism, bad initial response ...), or NULL when
 * out of memory (r->status FAIL too). */
struct sasl *sasl_start(const char *mech, const struct sasl_params *params,
                        const char *initial_response, const struct sasl_lookup *lookup,
                        struct sasl_result *r);
/* The client's answer to a CHALLENGE: one line, without CRLF. */
void sasl_step(struct sasl *s, const struct sasl_lookup *lookup, const char *line, size_t len,
               struct sasl_result *r);
/* The outcome of auth_verify after NEED_VERIFY. */
void sasl_verified(struct sasl *s, int ok, struct sasl_result *r);
/* Free; wipes every secret it held.  NULL is fine. */
void sasl_free(struct sasl *s);

/* ---- the secrets `hatoctl user passwd --with-cram|--with-scram` stores -- */

/* The value of cram-md5= for password (64 hex digits + NUL).  0 or -1. */
int sasl_cram_secret(const char *password, char out[65]);
/* The value of scram-sha-256= for password with a fresh random salt and
 * iter iterations (USERS_SCRAM_ITER_MIN..MAX), into out (>= 160).  0 or -1. */
int sasl_scram_secret(const char *password, long iter, char *out, size_t outlen);
/* Same with a given salt (tests). */
int sasl_scram_secret_salt(const char *password, long iter, const unsigned char *salt,
                           size_t salt_len, char *out, size_t outlen);

/* ---- decoders, exposed for the fuzz target and the unit tests -------- */

/* RFC 4616 message of n octets: 0 and pointers into a NUL-terminated copy
 * in buf (n + 1 octets), or -1 and a reason. */
int sasl_plain_parse(const unsigned char *msg, size_t n, char *buf, const char **authzid,
                     const char **authcid, const char **passwd, const char **why);

/* RFC 5802 client-first-message. */
struct scram_client_first {
    char gs2_flag;              /* 'n', 'y' or 'p' */
    char cb_name[32];           /* after "p=" */
    char authzid[SASL_ID_MAX + 1];
    char user[SASL_ID_MAX + 1]; /* =2C and =3D decoded */
    const char *nonce;          /* into the message */
    size_t nonce_len;
    size_t gs2_len;             /* octets of the gs2 header, incl. its last ',' */
};
/* 0, or -1 and a reason. */
int scram_parse_client_first(const char *msg, size_t n, struct scram_client_first *cf,
                             const char **why);
/* RFC 5802 client-final-message: c=, r=, optional extensions, p= last. */
struct scram_client_final {
    const char *cbind;          /* base64 after "c=" */
    size_t cbind_len;
    const char *nonce;          /* after "r=" */
    size_t nonce_len;
    const char *proof;          /* base64 after "p=" */
    size_t proof_len;
    size_t without_proof_len;   /* octets before ",p=" */
};
int scram_parse_client_final(const char *msg, size_t n, struct scram_client_final *cf,
                             const char **why);

#endif
