/*
 * auth/throttle.h — login-failure tracking per client, for every service
 * that takes a password (SMTP AUTH now; POP3 and IMAP later).
 *
 * A client is its IP address, IPv6 cut to a prefix (ip_client_key in
 * lib/iplist.h, smtpd_client_ipv6_prefix: /64 by default), so one host's
 * many addresses count as one.  `limit` failures within `window` seconds
 * of the first lock the client out for `lockout` seconds: every service
 * then answers it 421 4.7.0 (SMTP) / -ERR / BYE at connect.  Each failure
 * also returns the delay the session waits before its 535 (delay_step ×
 * failures so far, at most delay_max), on a timer: the loop never sleeps.
 * A success forgets the client's failures (not a lockout).  The table holds
 * at most `max_entries` clients; when full, the one touched longest ago is
 * dropped (a flood of new addresses can make us forget old ones, never
 * exhaust memory).  Time is passed in by the caller (seconds, any
 * monotonic clock), so tests drive it.  Loop thread only.
 */
#ifndef HATO_THROTTLE_H
#define HATO_THROTTLE_H

#include <stddef.h>
#include <sys/socket.h>

/* The line a session logs (with log_warn, which adds "warning: ") for each
 * failed authentication: the client's name ("unknown" without one), its
 * address as the client connected from it (not the key), the mechanism,
 * and the reason.  It is Postfix's smtpd line, so fail2ban's stock
 * postfix-sasl jail (filter postfix[mode=auth] since fail2ban 0.10) bans
 * the address once the jail is told the daemon's name:
 *   [postfix-sasl]  filter = postfix[mode=auth, _daemon=hatod]
 * (checked with fail2ban-regex by t/unit/test_throttle).  The stock regex
 * knows LOGIN, PLAIN, CRAM-MD5 and DIGEST-MD5 only: SCRAM-SHA-256 failures
 * are logged the same way but fail2ban does not count them, as with
 * Postfix + Dovecot; hato's own lockout counts every mechanism. */
#define AUTH_FAILURE_LOG_FMT "%s[%s]: SASL %s authentication failed: %s"
/* The line logged (log_warn) when a client is locked out: key, failures,
 * seconds. */
#define AUTH_LOCKOUT_LOG_FMT "auth lockout: %s after %d failures, for %lld s"

#define THROTTLE_KEY_MAX 64   /* "xxxx:...:xxxx/64" fits */

struct throttle_limits {
    int limit;              /* auth_failure_limit (10); 0 = never lock out */
    long long window;       /* auth_failure_window, seconds (600) */
    long long lockout;      /* auth_lockout_time, seconds (1800) */
    long long delay_step;   /* milliseconds per failure (1000) */
    long long delay_max;    /* cap on the delay, milliseconds (10000) */
    int v6_prefix;          /* smtpd_client_ipv6_prefix (64) */
};

struct throttle;

struct throttle_entry {
    char key[THROTTLE_KEY_MAX];
    int failures;             /* in the current window */
    long long first;          /* when the window started */
    long long locked_until;   /* 0: not locked */
};

/* The defaults above into l. */
void throttle_limits_default(struct throttle_limits *l);
/* NULL when out of memory.  max_entries is at least 1. */
struct throttle *throttle_new(const struct throttle_limits *l, size_t max_entries);
/* New limits (reload); entries are kept. */
void throttle_set_limits(struct throttle *t, const struct throttle_limits *l);
void throttle_free(struct throttle *t);

/* The key sa counts under (ip_client_key with the limits' prefix). */
void throttle_key(const struct throttle *t, const struct sockaddr *sa, char *key, size_t len);
/* The same from a printed address ("192.0.2.1", "2001:db8::5"); -1 if it
 * is not one. */
int throttle_key_text(const struct throttle *t, const char *ip, char *key, size_t len);

/* Seconds the client at sa is still locked out, or 0. */
long long throttle_locked(struct throttle *t, const struct sockaddr *sa, long long now);
/* Record a failed login from sa: the delay before the answer, in ms.
 * *locked_now set when this failure started a lockout (log it then). */
long long throttle_failure(struct throttle *t, const struct sockaddr *sa, long long now,
                           int *locked_now);
/* A successful login from sa: its failures are forgotten. */
void throttle_success(struct throttle *t, const struct sockaddr *sa);

/* Every locked-out client, oldest touch first, through fn (expired
 * lockouts are dropped first).  Returns how many. */
size_t throttle_list(struct throttle *t, long long now,
                     void (*fn)(void *arg, const struct throttle_entry *e), void *arg);
/* Lift the lockout (and failures) of a key as throttle_key makes it.
 * 0, or -1 if it was not locked out. */
int throttle_unlock(struct throttle *t, const char *key, long long now);
/* Clients tracked (locked or counting). */
size_t throttle_count(const struct throttle *t);

#endif
