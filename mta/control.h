/*
 * mta/control.h — the control socket, state_directory/hatod.sock (mode 0666),
 * for hatoctl and hato-sendmail.  SO_PEERCRED tells who is calling.
 *
 * Protocol: the client sends one command line ending in LF:
 *   SMTP              the server answers with an SMTP greeting ("220 ...")
 *                     and the connection becomes an SMTP session for local
 *                     submission (protocol "local", relaying allowed, the
 *                     caller's uid in the Received: header).
 *   RELOAD            re-read config and tables (uid 0 or run_user only)
 *   QUEUE LIST        the mailq text; QUEUE LIST JSON for JSON lines
 *   QUEUE FLUSH       deliver every deferred message now (sendmail -q)
 *   QUEUE FLUSH DOMAIN  the same for those with a recipient there (-qR)
 *   QUEUE SHOW ID     the envelope: state, next attempt, per recipient its
 *                     status, last reply, host, TLS, attempts
 *   QUEUE HOLD|RELEASE|DELETE|REQUEUE ID|ALL   (DELETE also FROM ADDR and
 *                     TO DOMAIN): "OK" and "ID: what was done" or "N
 *                     message(s) ..."; "ERR no such message: ID" (uid 0 or
 *                     run_user only).  Safe during a delivery: hold and
 *                     delete then wait for the attempt's end.
 *   AUTH LOCKOUTS     clients locked out after failed logins, one a line:
 *                     "KEY FAILURES SECONDS-LEFT" (uid 0 or run_user only)
 *   AUTH UNLOCK IP    lift IP's lockout (its IPv6 prefix); "ERR not locked
 *                     out" if it is not (uid 0 or run_user only)
 * Replies to the others: "OK\n" followed by the output (QUEUE LIST, AUTH
 * LOCKOUTS), then the server closes the connection; or "ERR reason\n" and
 * close.
 */
#ifndef HATO_CONTROL_H
#define HATO_CONTROL_H

#define CONTROL_SOCKET_NAME "hatod.sock"
#define CONTROL_LINE_MAX 256

struct hatod;
struct control;

/* Bind and listen (called before dropping privileges; the socket file is
 * then chowned to run_user).  NULL after logging why. */
struct control *control_open(struct hatod *d);
/* Stop accepting (shutdown). */
void control_disable(struct control *c);
/* Reload number `gen` has ended: answer every RELOAD caller that waited for
 * it or an earlier one ("OK", or "ERR reason"). */
void control_reloaded(struct control *c, unsigned long gen, int ok, const char *err);
void control_free(struct control *c);

#endif
