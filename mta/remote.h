/*
 * mta/remote.h — the "smtp" transport: recipients outside local_domains.
 * Until outbound delivery lands (its own issue) every attempt defers with
 * "4.4.0 no outbound transport yet", so remote mail waits in the queue with
 * normal backoff, shows in mailq, and bounces after maximal_queue_lifetime.
 */
#ifndef HATO_REMOTE_H
#define HATO_REMOTE_H

struct sched_delivery;

void remote_agent_deliver(void *ctx, struct sched_delivery *dl);

#endif
