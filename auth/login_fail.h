/*
 * auth/login_fail.h — what every service that takes a password (SMTP AUTH,
 * POP3; IMAP next) does around the throttle (auth/throttle.h), in one
 * place: the failure line fail2ban reads, the count, the lockout note, all
 * on the loop's monotonic clock.  A NULL throttle (none configured) only
 * logs: no delay, never locked.  Loop thread only.
 */
#ifndef HATO_AUTH_LOGIN_FAIL_H
#define HATO_AUTH_LOGIN_FAIL_H

#include <sys/socket.h>

struct throttle;

/* A failed login from peer (peer_addr as printed; client_name is the
 * HELO name or NULL): logged with AUTH_FAILURE_LOG_FMT (mech and why may
 * be NULL), counted, and the lockout it starts logged.  Returns the delay
 * before the answer, in ms (0: answer now). */
long long login_failure(struct throttle *t, const struct sockaddr *peer, const char *client_name,
                        const char *peer_addr, const char *mech, const char *why);
/* Seconds peer is still locked out, or 0. */
long long login_locked(struct throttle *t, const struct sockaddr *peer);
/* A successful login: peer's failures are forgotten. */
void login_success(struct throttle *t, const struct sockaddr *peer);

#endif
