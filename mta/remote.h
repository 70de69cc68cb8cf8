/*
 * mta/remote.h — the "smtp" delivery agent: recipients outside
 * local_domains.  Per delivery it routes each recipient (mta/transport.h:
 * relayhost, transport_maps, default_transport), groups recipients per
 * next hop (smtp_destination_recipient_limit a transaction), looks the
 * next hop up (mta/mx.h), walks its addresses (smtp_mx_session_limit
 * sessions that got through the handshake; only the last address's soft
 * error defers), talks SMTP (proto/smtp_client.h, STARTTLS per
 * smtp_tls_security_level and smtp_tls_fallback, AUTH per
 * smtp_sasl_password_maps) and maps the replies into sched_result: 2xx
 * sent, 4xx deferred, 5xx bounced with the remote reply and host; null MX
 * 5.1.10; too large 5.3.4; SMTPUTF8 not offered 5.6.7.
 * Concurrency: smtp_client_concurrency sessions in all, a feedback window
 * per destination with a dead-site timer (mta/dest.h), and a connection
 * cache (smtp_connection_cache_time_limit, RSET between messages).
 */
#ifndef HATO_REMOTE_H
#define HATO_REMOTE_H

struct event_base;
struct dns;
struct work_pool;
struct hato_config;
struct transport;
struct sched_delivery;
struct remote_agent;

struct remote_agent *remote_agent_new(struct event_base *base, struct dns *dns,
                                      struct work_pool *pool);
/* The configuration in force (start, reload).  cfg is read during the
 * call; tr (the generation's) must stay valid until the next call or
 * remote_agent_free (what a delivery needs from it is copied).  0, or -1
 * when no client TLS context could be built (logged; the previous one
 * stays, the rest is in force). */
int remote_agent_configure(struct remote_agent *ra, const struct hato_config *cfg,
                           const struct transport *tr);
void remote_agent_deliver(void *ctx, struct sched_delivery *dl);
/* Sessions open (busy and cached). */
unsigned remote_agent_sessions(const struct remote_agent *ra);
/* Close every cached session (shutdown); deliveries under way go on. */
void remote_agent_drain(struct remote_agent *ra);
void remote_agent_free(struct remote_agent *ra);

#endif
