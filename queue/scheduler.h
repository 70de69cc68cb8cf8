/*
 * queue/scheduler.h — what to deliver when.  Holds every queued envelope in
 * memory (rebuilt from env/ at start), a heap of next-attempt times, and a
 * table of delivery agents that mta/ registers ("local", "smtp"); it never
 * includes proto/ or mta/.  After an attempt it records each recipient's
 * result, rewrites or removes the envelope, queues bounces (RFC 3464) and
 * one delay notice, and computes the next try: Postfix backoff (time in
 * queue clamped to [minimal_backoff_time, maximal_backoff_time]) or the
 * explicit retry_schedule; after maximal_queue_lifetime (bounce_queue_
 * lifetime for DSNs) pending recipients bounce.
 */
#ifndef HATO_SCHEDULER_H
#define HATO_SCHEDULER_H

#include <stddef.h>
#include "queue/envelope.h"

struct event_base;
struct queue;
struct work_pool;
struct scheduler;

#define SCHED_MAX_AGENTS 8

/* One agent's share of one message.  The envelope is read-only for the
 * agent while the delivery runs; the agent fills res[] and then calls
 * sched_delivery_done() on the loop. */
struct sched_result {
    enum rcpt_state state;   /* RCPT_SENT, RCPT_PENDING (deferred), RCPT_BOUNCED */
    char dsn[16];
    char text[512];
    char remote[320];        /* "host[ip]:port" that gave the reply, "" for local */
    char tls[96];            /* TLS version and cipher of that session, or "" */
    int dsn_passed;          /* sent to a next hop that offers DSN, NOTIFY passed
                                on: it sends any success notice, not hatod */
};

struct sched_delivery {
    struct scheduler *sched;
    const struct envelope *env;
    const char *msg_path;        /* content file */
    size_t *idx;                 /* recipient indexes for this agent */
    size_t n;
    struct sched_result *res;    /* n results, pre-set to deferred "4.3.0" */
    int agent;
};

struct sched_agent {
    const char *name;            /* transport name, as in defer_transports */
    void (*deliver)(void *ctx, struct sched_delivery *dl);
    void *ctx;
};

struct sched_config {
    const char *myhostname, *mail_name;
    long long minimal_backoff, maximal_backoff;
    long long *retry_schedule;   /* seconds, nretry of them (0 = Postfix backoff) */
    size_t nretry;
    long long max_lifetime, bounce_lifetime, delay_warning;
    char *const *defer_transports;
    size_t ndefer;
    int bounce_return_full;      /* bounce_return_original = full */
    const char *postmaster;      /* double bounces go here; NULL = discarded */
    /* Which agent handles a recipient address (index into the agents). */
    int (*route)(void *ctx, const char *rcpt);
    void *route_ctx;
};

struct scheduler *sched_new(struct event_base *base, struct queue *q, struct work_pool *pool,
                            const struct sched_config *cfg);
/* Replace the config (SIGHUP); agents stay. */
void sched_set_config(struct scheduler *s, const struct sched_config *cfg);
int sched_add_agent(struct scheduler *s, const struct sched_agent *agent);
/* A committed message (takes a copy).  Its pending recipients are due now,
 * or at env->next_try after a restart. */
int sched_add(struct scheduler *s, const struct envelope *env);
void sched_delivery_done(struct sched_delivery *dl);
/* Make every deferred message due now (sendmail -q, hatoctl queue flush),
 * including those held back by defer_transports. */
void sched_flush(struct scheduler *s);
/* Messages known / being delivered. */
size_t sched_count(const struct scheduler *s);
size_t sched_active(const struct scheduler *s);
/* Visit every message (for mailq): env and its state, SCHED_ACTIVE (being
 * delivered) and SCHED_HELD (in hold/) bits. */
#define SCHED_ACTIVE 0x1
#define SCHED_HELD   0x2
void sched_foreach(const struct scheduler *s,
                   void (*fn)(void *arg, const struct envelope *env, int state), void *arg);
/* One message: its envelope (valid until the loop runs on), state bits and
 * next attempt (unix seconds; 0 = not scheduled: held or in an attempt).
 * NULL if there is no such message. */
const struct envelope *sched_find(const struct scheduler *s, const char *id, int *state,
                                  long long *due);
/* Operator verbs (hatoctl queue ...), safe while a message is being
 * delivered.  Each returns 0 done (or started: the disk work finishes in
 * the pool), 1 deferred until the attempt under way ends (hold, delete) or
 * nothing to do now (requeue during an attempt), -1 no such message, -2
 * could not start (logged).
 * hold: env/ID to hold/ID, never scheduled until released (survives
 * restarts: sched_add_held at recovery).  release: back and due now.
 * delete: both files removed, no notice to anybody.  requeue: due now
 * with the backoff started over (a held message is released). */
int sched_hold(struct scheduler *s, const char *id);
int sched_release(struct scheduler *s, const char *id);
int sched_delete(struct scheduler *s, const char *id);
int sched_requeue(struct scheduler *s, const char *id);
/* A message recovered from hold/. */
int sched_add_held(struct scheduler *s, const struct envelope *env);
/* sched_flush for the messages with a pending recipient in domain (-qR). */
void sched_flush_domain(struct scheduler *s, const char *domain);
/* Queue a notice generated here (a quota warning): content text (copied,
 * CRLF), null sender, one recipient, never bounced (ENV_F_BOUNCE); it is
 * scheduled once committed.  0, or -1 if it could not even start. */
int sched_notice(struct scheduler *s, const char *rcpt, const char *text, size_t len);
/* Stop starting deliveries (shutdown); deliveries under way finish. */
void sched_stop(struct scheduler *s);
void sched_free(struct scheduler *s);

#endif
