/*
 * mta/local.h — the "local" delivery agent: recipients in local_domains go
 * into their Maildir (store/maildir.c) with Return-Path: and Delivered-To:
 * prepended.  Deliveries that arrive together share their flushes (one
 * syncfs before and one after the renames into new/) when
 * local_delivery_batch is on.
 */
#ifndef HATO_LOCAL_H
#define HATO_LOCAL_H

struct work_pool;
struct sched_delivery;
struct tables;
struct local_agent;

struct local_agent *local_agent_new(struct work_pool *pool, const char *state_dir, int batch);
/* The tables used to find mailboxes (swapped on reload; not owned). */
void local_agent_set_tables(struct local_agent *la, const struct tables *t);
/* The scheduler's deliver hook (ctx = the agent). */
void local_agent_deliver(void *ctx, struct sched_delivery *dl);
void local_agent_free(struct local_agent *la);

#endif
