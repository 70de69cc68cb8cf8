/*
 * queue/envelope.h — the envelope of a queued message: who sent it, to whom,
 * each recipient's delivery state and last reason, and when to try next.
 * Stored as a text file env/ID that ends with the line "end"; a file without
 * it is not an envelope (torn write).  Format (one field a line, values
 * %-encoded: '%', white space, control and non-ASCII bytes as %XX):
 *
 *   hato-envelope 2
 *   id 0005E8C2F1A2B001
 *   arrival 1763900000123456        µs since the epoch
 *   sender user@example.com         empty value for the null sender <>
 *   client 127.0.0.1                client address ("local" for sendmail)
 *   helo mail.example.com           ("-" when none)
 *   proto ESMTP
 *   size 1234                       octets of the content file
 *   attempts 0
 *   next_try 1763900000             unix seconds; 0 = now
 *   warned 0                        delay notice sent
 *   flags 0                         ENV_F_* bits
 *   ret 0                           DSN RET: 0 none, 1 FULL, 2 HDRS (v2)
 *   envid ABC123                    DSN ENVID, xtext-decoded ("-" none) (v2)
 *   rcpt STATE ADDR ORCPT NOTIFY DSNORCPT ATTEMPTS LAST REMOTE TLS DSN TEXT
 *                                   one per recipient; STATE P|S|B|D
 *   end
 *
 * In a rcpt line every token is %-encoded and "-" stands for empty.
 * NOTIFY is the ENV_N_* bits (0 = not given), DSNORCPT the RCPT ORCPT=
 * parameter decoded ("rfc822;user@example.com"), ATTEMPTS the attempts
 * that reached this recipient, LAST the unix second of the last one,
 * REMOTE the "host[ip]:port" that gave the last reply ("" for local
 * delivery), TLS the protocol and cipher of that session ("" none).
 * Version 1 (still read) has neither ret nor envid and its rcpt lines are
 * "rcpt STATE ADDR ORCPT DSN TEXT"; the new fields read as empty / 0.
 *
 * Versions.  The first line names the format's version (ENV_VERSION).
 * Within a version the format is fixed: every key once, unknown keys are
 * an error, so a file that does not parse as its own version is torn or
 * damaged and recovery moves it to corrupt/.  Any change an older reader
 * could not parse (a new key, per-recipient field, DSN or SMTPUTF8 data)
 * raises ENV_VERSION; a hatod reads every version up to its own and writes
 * its own.  An envelope of a newer version than this hatod knows is never
 * touched: recovery stops, hatod refuses to start and says which file and
 * which version (run the newer hatod again, or convert the queue), so a
 * downgrade can never move live mail to corrupt/.
 */
#ifndef HATO_ENVELOPE_H
#define HATO_ENVELOPE_H

#include <stddef.h>
#include "queue/qid.h"

struct env_index;

enum rcpt_state {
    RCPT_PENDING = 'P',   /* to deliver (never tried, or deferred) */
    RCPT_SENT    = 'S',   /* delivered */
    RCPT_BOUNCED = 'B',   /* failed permanently; bounce to be sent */
    RCPT_DONE    = 'D',   /* failed permanently and bounce already queued */
};

#define ENV_VERSION  2    /* the version env_format writes */

#define ENV_F_BOUNCE   0x1  /* this message is a DSN: never bounce it */
#define ENV_F_SMTPUTF8 0x2  /* MAIL FROM had SMTPUTF8 (RFC 6531) */
#define ENV_F_DOUBLE   0x4  /* a double bounce (to postmaster): never reported */

/* DSN NOTIFY= (RFC 3461 4.1); 0 = not given (then FAILURE,DELAY). */
#define ENV_N_SUCCESS 0x1
#define ENV_N_FAILURE 0x2
#define ENV_N_DELAY   0x4
#define ENV_N_NEVER   0x8

/* DSN RET= (RFC 3461 4.3). */
enum env_ret { ENV_RET_NONE = 0, ENV_RET_FULL = 1, ENV_RET_HDRS = 2 };

struct env_rcpt {
    char *addr;           /* where to deliver (after alias expansion) */
    char *orcpt;          /* as the client gave it at RCPT ("" if same) */
    enum rcpt_state state;
    char *dsn;            /* last enhanced status "4.4.1" or "" */
    char *text;           /* last reason, for mailq and DSNs, or "" */
    int notify;           /* ENV_N_* bits, 0 = not given */
    char *dsn_orcpt;      /* ORCPT= decoded, "rfc822;a@b", or "" */
    int attempts;         /* attempts that reached this recipient */
    long long last_try;   /* unix seconds of the last one, 0 = never */
    char *remote;         /* "host[ip]:port" of the last reply, or "" */
    char *tls;            /* TLS protocol and cipher used then, or "" */
};

struct envelope {
    char id[QID_LEN + 1];
    long long arrival_us;
    char *sender;         /* "" = null sender */
    char *client;
    char *helo;
    char *proto;
    long long size;
    int attempts;
    long long next_try;
    int warned;
    int flags;
    int ret;              /* enum env_ret */
    int client_packed;    /* private: helo and proto live in client's block */
    char *envid;          /* DSN ENVID= decoded, or "" */
    struct env_rcpt *rcpts;
    size_t nrcpt;
    size_t rcpt_cap;
    struct env_index *index;   /* private: recipients by address, built by
                                  env_add_rcpt_unique; never copied */
};

/* Zero an envelope (no allocation). */
void env_init(struct envelope *e);
/* Free what it owns and zero it. */
void env_clear(struct envelope *e);
/* Setters copy their strings.  0 or -1 (ENOMEM). */
int env_set_sender(struct envelope *e, const char *sender);
int env_set_client(struct envelope *e, const char *client, const char *helo, const char *proto);
int env_add_rcpt(struct envelope *e, const char *addr, const char *orcpt);
/* Add unless a recipient with exactly this address is already there, in
 * O(1) (a hash index kept with the envelope): 1 added, 0 duplicate, -1. */
int env_add_rcpt_unique(struct envelope *e, const char *addr, const char *orcpt);
int env_rcpt_set(struct env_rcpt *r, enum rcpt_state st, const char *dsn, const char *text);
/* Where the last reply came from and over what TLS (NULL = ""); counts
 * one attempt at `when`.  0 or -1. */
int env_rcpt_set_remote(struct env_rcpt *r, const char *remote, const char *tls, long long when);
/* RCPT's NOTIFY bits and decoded ORCPT (NULL = none).  0 or -1. */
int env_rcpt_set_dsn(struct env_rcpt *r, int notify, const char *dsn_orcpt);
/* MAIL's RET and decoded ENVID (NULL = none).  0 or -1. */
int env_set_dsn(struct envelope *e, enum env_ret ret, const char *envid);
/* Recipients still in state P. */
size_t env_pending(const struct envelope *e);

/* The DSN parameters to pass on to a next hop that offers DSN (RFC 3461,
 * values in xtext): "RET=FULL ENVID=..." for MAIL and "NOTIFY=SUCCESS,DELAY
 * ORCPT=rfc822;..." for RCPT, "" when there are none.  At most len - 1
 * octets; 0, or -1 if they do not fit (buf is then ""). */
#define ENV_DSN_PARAMS_MAX 1200   /* room that always suffices */
int env_dsn_mail_params(const struct envelope *e, char *buf, size_t len);
int env_dsn_rcpt_params(const struct env_rcpt *r, char *buf, size_t len);

/* Serialise to a malloc'd buffer (caller frees).  0 or -1. */
int env_format(const struct envelope *e, char **buf, size_t *len);
/* Parse; requires the header line and the end marker.  0, or -1 with a
 * reason in err.  `e` must be env_init'ed; on error it is cleared. */
int env_parse(const char *buf, size_t len, struct envelope *e, char *err, size_t errlen);
/* The version named by the file's first line ("hato-envelope N"), or -1
 * if it has no such line (then it is no envelope of any version). */
int env_version(const char *buf, size_t len);
/* Deep copy. 0 or -1. */
int env_copy(struct envelope *dst, const struct envelope *src);

#endif
