/*
 * mta/pop3d.h — hatod's POP3 service: the proto/pop3.h server built from
 * the configuration (pop3_listen, pop3s_listen, pop3_tls, pop3d_banner,
 * pop3d_timeout, pop3_apop, auth_plaintext_clients) and its hooks into the
 * daemon (generations, TLS, users, the login throttle, POP-before-SMTP).
 */
#ifndef HATO_POP3D_H
#define HATO_POP3D_H

struct hatod;

/* Make d->pop3 (also without POP3 listeners: then it serves nothing).
 * 0, or -1 after logging why. */
int pop3d_start(struct hatod *d);
/* After a reload: the new parameters and pop_before_smtp_time. */
void pop3d_reload(struct hatod *d);

#endif
