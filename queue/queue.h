/*
 * queue/queue.h — the queue on disk (state_directory/queue/): tmp/ (being
 * received when no spare is at hand), msg/ID (content, immutable once
 * committed), env/ID (envelope, replaced via tmp + rename), hold/, corrupt/,
 * free/ (spare files, see queue/spare.h).
 *
 * Commit (DESIGN.md): content written → made durable → renamed into msg/;
 * envelope written → durable → renamed into env/; directories durable; only
 * then the callback reports success and the client may get its 250.  A new
 * file is normally a spare written where it lies in free/ and renamed from
 * there (one rename per file instead of two); env/ID is the commit point,
 * so msg/ID without it is debris that start-up removes.  In group-commit
 * mode every commit waiting while a batch is on the disk goes into the next
 * batch, which makes all its files durable with one syncfs() before the
 * renames and one after (2 flushes per batch instead of 4 per message).
 * All disk work of a commit runs in the worker pool; the content itself is
 * written from the loop into the page cache as it arrives.
 *
 * Callbacks run on the loop.  The queue never calls back into sessions: it
 * hands results to the callback given, which looks its caller up by id.
 */
#ifndef HATO_QUEUE_H
#define HATO_QUEUE_H

#include <limits.h>
#include <stddef.h>
#include "queue/envelope.h"
#include "queue/spare.h"

struct work_pool;
struct queue;

struct queue_writer {
    char id[QID_LEN + 1];
    int fd;               /* the content file, -1 when closed */
    long long size;       /* octets written */
    int err;              /* first write error (errno), 0 if none */
    int spare;            /* 1: fd is a spare (queue/free/N), 0: tmp/ID */
    struct spare sp;      /* which spare, and its stale octets */
};

/* Open the queue under state_dir, creating the directories (0700). */
struct queue *queue_open(const char *state_dir, struct work_pool *pool,
                         int group_commit, char *err, size_t errlen);
/* Only once the pool has run every job it was given for q (aborts too). */
void queue_close(struct queue *q);
const char *queue_dir(const struct queue *q);
/* Path of the content file msg/ID. */
void queue_msg_path(const struct queue *q, const char *id, char *buf, size_t len);

/* Start a new message: a fresh ID and a file to write it into (a spare, or
 * tmp/ID).  0, or -1 (errno). */
int queue_writer_open(struct queue *q, struct queue_writer *w);
/* Append content.  Errors are remembered in w->err (and returned as -1). */
int queue_writer_write(struct queue_writer *w, const void *buf, size_t len);
/* Drop an unfinished message: the writer is reset at once, and the pool
 * closes the file and unlinks tmp/ID or gives the spare back (emptied if
 * the pool keeps no more stale octets), so the loop never waits for the
 * blocks to be freed.  The spare is not handed out again before that job
 * has finished. */
void queue_writer_abort(struct queue *q, struct queue_writer *w);
/* The worker pool is gone (teardown): what queue_writer_abort hands to it
 * is done on the caller from now on. */
void queue_detach_pool(struct queue *q);

/* err = 0 on success, else an errno (ENOSPC, EIO ...). */
typedef void (*queue_commit_cb)(void *arg, int err);
/* Make the message durable.  Takes the writer's fd (w is reset); env is
 * serialised now (env->id and env->size are set from w).  cb runs on the
 * loop when the files and directories are durable, or with the error (then
 * nothing of the message is left).  0, or -1 if it could not even start
 * (then cb is not called and the writer is aborted). */
int queue_commit(struct queue *q, struct queue_writer *w, struct envelope *env,
                 queue_commit_cb cb, void *arg);
/* Queue a whole message held in memory (bounces, pickup): content is written
 * and committed in the worker pool; env->id is kept if it is a valid ID
 * (the caller wrote it into a Received: line), else set before returning. */
int queue_inject(struct queue *q, const char *content, size_t len, struct envelope *env,
                 queue_commit_cb cb, void *arg);

/* Rewrite env/ID (tmp + fsync + rename + fsync dir) in the pool. */
typedef void (*queue_done_cb)(void *arg, int err);
int queue_update(struct queue *q, const struct envelope *env, queue_done_cb cb, void *arg);
/* Remove env/ID then msg/ID in the pool (recycled into queue/free/ as
 * spares for the next messages, see queue/spare.h). */
int queue_remove(struct queue *q, const char *id, queue_done_cb cb, void *arg);

/* Move env/ID to hold/ID (hold) or back (release) in the pool: one rename,
 * then both directories made durable; a held message is never scheduled,
 * survives restarts held (queue_recover_held), and queue_remove removes it
 * too.  0, or -1 if it could not start. */
int queue_hold(struct queue *q, const char *id, int hold, queue_done_cb cb, void *arg);

/* Start-up recovery (blocking: call before serving).  Empties tmp/, moves
 * unreadable envelopes (and their content) to corrupt/ with a log line,
 * deletes content without an envelope (never acknowledged), and calls
 * found(arg, env) for every good envelope (the callee takes ownership of
 * *env's contents; env is reset after).  Returns the count, or -1: the
 * queue cannot be read, or (errno EPROTONOSUPPORT) an envelope is of a newer
 * version than this hatod reads — then recovery stops at once and leaves
 * every file where it is (see envelope.h, "Versions"). */
int queue_recover(struct queue *q, void (*found)(void *arg, struct envelope *env), void *arg);
/* The same for hold/ (after queue_recover; its content is never an orphan). */
int queue_recover_held(struct queue *q, void (*found)(void *arg, struct envelope *env),
                       void *arg);
/* Load env/ID now (blocking; tools and tests). 0 or -1. */
int queue_load_envelope(const struct queue *q, const char *id, struct envelope *env);

#endif
