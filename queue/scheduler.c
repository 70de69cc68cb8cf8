/*
 * queue/scheduler.c — the delivery scheduler: an in-memory table of queued
 * messages (hash by ID), a min-heap of next-attempt times driven by one
 * libevent timer, the agents table, and the bookkeeping after an attempt
 * (log lines, backoff, lifetime, bounces, delay notices, envelope rewrite
 * or removal).  Disk work goes through queue/queue.c's pool jobs; reading
 * a message's headers for a DSN runs in the pool too.
 *
 * Never recursive: an agent may report a result from inside its deliver
 * call (the "smtp" agent defers at once), so a finished delivery is only
 * put on a ready list that an event drains from the loop, at most
 * SCHED_BATCH messages per pass; one timer pass starts at most SCHED_BATCH
 * attempts and yields.  A message holds its slot (SCHED_MAX_ACTIVE) from
 * the start of an attempt until its envelope is rewritten or removed, so
 * a due backlog never has more than that many jobs in the pool.
 */
#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/hash.h"
#include "lib/log.h"
#include "lib/timeutil.h"
#include "lib/work.h"
#include "queue/bounce.h"
#include "queue/queue.h"
#include "queue/scheduler.h"

#define SCHED_MAX_ACTIVE   512            /* messages in delivery at once */
#define SCHED_BATCH        64             /* attempts started / finished per loop pass */
#define SCHED_HEADERS_MAX  (64 * 1024)    /* original headers quoted in a DSN */
#define HEAP_NONE          SIZE_MAX
#define SCHED_TRIM_MIN     1000           /* queued at once before an emptied queue trims the heap */

enum smsg_phase { PH_IDLE, PH_DELIVERING, PH_BOUNCING, PH_WRITING, PH_MOVING };

/* An operator's verb for a message in an attempt: applied when it ends. */
enum smsg_want { WANT_NONE, WANT_HOLD, WANT_DELETE };

/* One per queued message, for as long as it is queued: kept small (the
 * 8-octet fields first, the flags as bytes at the end; bench/sched-mem). */
struct smsg {
    struct envelope env;
    long long due;               /* unix seconds */
    size_t heap_pos;
    long long started_us;
    struct smsg *hnext;
    struct smsg *ready_next;     /* on the ready list (attempt finished) */
    int outstanding;             /* agent deliveries not yet done */
    int bounces_pending;         /* DSN jobs/commits outstanding */
    unsigned char phase;         /* enum smsg_phase */
    unsigned char want;          /* enum smsg_want: hold or delete once the attempt ends */
    unsigned char flush;         /* next run ignores defer_transports */
    signed char held;            /* 1 in hold/: never scheduled; -1 holding, -2 releasing */
};

struct scheduler {
    struct event_base *base;
    struct queue *q;
    struct work_pool *pool;
    struct sched_config cfg;
    long long *retry;            /* owned copy of cfg.retry_schedule */
    struct sched_agent agents[SCHED_MAX_AGENTS];
    int nagents;
    struct smsg **buckets;
    size_t nbuckets, count;
    struct smsg **heap;
    size_t nheap, heapcap;
    struct event *timer;
    struct event *ready_ev;      /* drains the ready list */
    struct smsg *ready_head, **ready_tail;
    size_t active;               /* attempts holding a slot */
    size_t peak;                 /* most messages queued since the last trim */
    int stopped;
};

/* ------------------------------------------------------------ table */

static size_t hash_id(const char *id, size_t nb)
{
    return (size_t)(hash_str(id) % nb);
}

static struct smsg *lookup(const struct scheduler *s, const char *id)
{
    for (struct smsg *m = s->buckets[hash_id(id, s->nbuckets)]; m; m = m->hnext)
        if (!strcmp(m->env.id, id))
            return m;
    return NULL;
}

static int grow_table(struct scheduler *s)
{
    size_t nb = s->nbuckets * 2;
    struct smsg **b = calloc(nb, sizeof *b);
    if (!b)
        return -1;
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct smsg *m = s->buckets[i];
        while (m) {
            struct smsg *next = m->hnext;
            size_t h = hash_id(m->env.id, nb);
            m->hnext = b[h];
            b[h] = m;
            m = next;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = nb;
    return 0;
}

static void table_del(struct scheduler *s, struct smsg *m)
{
    struct smsg **pp = &s->buckets[hash_id(m->env.id, s->nbuckets)];
    while (*pp && *pp != m)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = m->hnext;
    s->count--;
}

/* ------------------------------------------------------------ heap */

static void heap_swap(struct scheduler *s, size_t a, size_t b)
{
    struct smsg *t = s->heap[a];
    s->heap[a] = s->heap[b];
    s->heap[b] = t;
    s->heap[a]->heap_pos = a;
    s->heap[b]->heap_pos = b;
}

static int heap_less(const struct smsg *a, const struct smsg *b)
{
    if (a->due != b->due)
        return a->due < b->due;
    return strcmp(a->env.id, b->env.id) < 0;
}

static void heap_up(struct scheduler *s, size_t i)
{
    while (i > 0 && heap_less(s->heap[i], s->heap[(i - 1) / 2])) {
        heap_swap(s, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct scheduler *s, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->nheap && heap_less(s->heap[l], s->heap[m]))
            m = l;
        if (r < s->nheap && heap_less(s->heap[r], s->heap[m]))
            m = r;
        if (m == i)
            return;
        heap_swap(s, i, m);
        i = m;
    }
}

static int heap_push(struct scheduler *s, struct smsg *m)
{
    if (s->nheap == s->heapcap) {
        size_t cap = s->heapcap ? s->heapcap * 2 : 1024;
        void *p = realloc(s->heap, cap * sizeof *s->heap);
        if (!p)
            return -1;
        s->heap = p;
        s->heapcap = cap;
    }
    m->heap_pos = s->nheap;
    s->heap[s->nheap++] = m;
    heap_up(s, m->heap_pos);
    return 0;
}

static struct smsg *heap_pop(struct scheduler *s)
{
    struct smsg *top = s->heap[0];
    s->nheap--;
    if (s->nheap > 0) {
        s->heap[0] = s->heap[s->nheap];
        s->heap[0]->heap_pos = 0;
        heap_down(s, 0);
    }
    top->heap_pos = HEAP_NONE;
    return top;
}

/* ------------------------------------------------------------ timer */

static void arm_timer(struct scheduler *s)
{
    if (s->stopped || s->nheap == 0) {
        evtimer_del(s->timer);
        return;
    }
    long long now = time_now_us() / 1000000;
    long long wait = s->heap[0]->due - now;
    /* Every slot busy and the head is due: a zero timer would spin the
     * loop until a delivery ends; finish_attempt() restarts the timer. */
    if (wait <= 0 && s->active >= SCHED_MAX_ACTIVE) {
        evtimer_del(s->timer);
        return;
    }
    struct timeval tv = { wait > 0 ? wait : 0, 0 };
    evtimer_add(s->timer, &tv);
}

static void smsg_free(struct smsg *m)
{
    env_clear(&m->env);
    free(m);
}

/* The queue is empty after a big backlog: give the freed heap back to the
 * kernel (glibc keeps it otherwise, fragmented, and the peak PSS stays). */
static void trim_if_empty(struct scheduler *s)
{
    if (s->count != 0 || s->peak < SCHED_TRIM_MIN)
        return;
    s->peak = 0;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

/* A message's files are gone: drop it from the table and free it. */
static void forget(struct scheduler *s, struct smsg *m)
{
    table_del(s, m);
    smsg_free(m);
    trim_if_empty(s);
}

static void start_message(struct scheduler *s, struct smsg *m);

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct scheduler *s = arg;
    long long now = time_now_us() / 1000000;
    (void)fd;
    (void)what;
    for (int n = 0; n < SCHED_BATCH; n++) {
        if (s->stopped || s->nheap == 0 || s->heap[0]->due > now || s->active >= SCHED_MAX_ACTIVE)
            break;
        start_message(s, heap_pop(s));
    }
    arm_timer(s);                /* more due: a zero timer, after the loop's I/O */
}

/* ------------------------------------------------------------ ready list */

static void finish_attempt(struct scheduler *s, struct smsg *m);

/* Every agent has reported for m: finish the attempt from the loop, never
 * from inside the agent's call (that recursed once per due message). */
static void attempt_ready(struct scheduler *s, struct smsg *m)
{
    m->ready_next = NULL;
    *s->ready_tail = m;
    s->ready_tail = &m->ready_next;
    event_active(s->ready_ev, 0, 0);
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    struct scheduler *s = arg;
    (void)fd;
    (void)what;
    for (int n = 0; n < SCHED_BATCH && s->ready_head; n++) {
        struct smsg *m = s->ready_head;
        s->ready_head = m->ready_next;
        if (!s->ready_head)
            s->ready_tail = &s->ready_head;
        finish_attempt(s, m);
    }
    if (s->ready_head)
        event_active(s->ready_ev, 0, 0);
}

/* The attempt's envelope is rewritten or removed: its slot is free. */
static void slot_release(struct scheduler *s)
{
    if (s->active > 0)
        s->active--;
    arm_timer(s);
}

/* ------------------------------------------------------------ config */

static int is_deferred_transport(const struct scheduler *s, const char *name)
{
    for (size_t i = 0; i < s->cfg.ndefer; i++)
        if (!strcmp(s->cfg.defer_transports[i], name))
            return 1;
    return 0;
}

void sched_set_config(struct scheduler *s, const struct sched_config *cfg)
{
    free(s->retry);
    s->retry = NULL;
    s->cfg = *cfg;
    if (cfg->nretry) {
        s->retry = malloc(cfg->nretry * sizeof *s->retry);
        if (s->retry)
            memcpy(s->retry, cfg->retry_schedule, cfg->nretry * sizeof *s->retry);
        else
            s->cfg.nretry = 0;
    }
    s->cfg.retry_schedule = s->retry;
}

struct scheduler *sched_new(struct event_base *base, struct queue *q, struct work_pool *pool,
                            const struct sched_config *cfg)
{
    struct scheduler *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->base = base;
    s->q = q;
    s->pool = pool;
    s->nbuckets = 1024;
    s->buckets = calloc(s->nbuckets, sizeof *s->buckets);
    s->timer = evtimer_new(base, on_timer, s);
    s->ready_ev = event_new(base, -1, 0, on_ready, s);
    s->ready_tail = &s->ready_head;
    if (!s->buckets || !s->timer || !s->ready_ev) {
        sched_free(s);
        return NULL;
    }
    sched_set_config(s, cfg);
    return s;
}

int sched_add_agent(struct scheduler *s, const struct sched_agent *agent)
{
    if (s->nagents == SCHED_MAX_AGENTS)
        return -1;
    s->agents[s->nagents++] = *agent;
    return 0;
}

/* ------------------------------------------------------------ adding */

static void schedule(struct scheduler *s, struct smsg *m, long long due)
{
    m->due = due;
    m->phase = PH_IDLE;
    if (heap_push(s, m) < 0)
        log_err("%s: out of memory scheduling", m->env.id);
    arm_timer(s);
}

int sched_add(struct scheduler *s, const struct envelope *env)
{
    if (lookup(s, env->id))
        return 0;
    struct smsg *m = calloc(1, sizeof *m);
    if (!m)
        return -1;
    env_init(&m->env);
    if (env_copy(&m->env, env) < 0) {
        free(m);
        return -1;
    }
    m->heap_pos = HEAP_NONE;
    if (s->count + 1 > s->nbuckets * 2 && grow_table(s) < 0) {
        smsg_free(m);
        return -1;
    }
    size_t h = hash_id(m->env.id, s->nbuckets);
    m->hnext = s->buckets[h];
    s->buckets[h] = m;
    s->count++;
    if (s->count > s->peak)
        s->peak = s->count;
    schedule(s, m, env->next_try);
    return 0;
}

/* ------------------------------------------------------------ attempts */

static void apply_result(struct scheduler *s, struct smsg *m, size_t i,
                         const struct sched_result *res);

/* A recipient this attempt does not send: its result goes straight into
 * the envelope, like an agent's (no per-attempt result array is kept:
 * up to SCHED_MAX_ACTIVE messages are out at once). */
static void defer_rcpt(struct scheduler *s, struct smsg *m, size_t i, const char *dsn,
                       const char *text)
{
    struct sched_result r = { .state = RCPT_PENDING };
    snprintf(r.dsn, sizeof r.dsn, "%s", dsn);
    snprintf(r.text, sizeof r.text, "%s", text);
    apply_result(s, m, i, &r);
}

static void launch(struct scheduler *s, struct smsg *m, int a, size_t *idx, size_t n)
{
    char pbuf[PATH_MAX];
    queue_msg_path(s->q, m->env.id, pbuf, sizeof pbuf);
    struct sched_delivery *dl = calloc(1, sizeof *dl);
    char *path = strdup(pbuf);   /* exact: up to SCHED_MAX_ACTIVE are out at once */
    struct sched_result *res = calloc(n, sizeof *res);
    if (!dl || !path || !res) {
        for (size_t k = 0; k < n; k++)
            defer_rcpt(s, m, idx[k], "4.3.0", "out of memory");
        free(dl);
        free(path);
        free(res);
        free(idx);
        return;
    }
    for (size_t k = 0; k < n; k++) {
        res[k].state = RCPT_PENDING;
        snprintf(res[k].dsn, sizeof res[k].dsn, "4.3.0");
        snprintf(res[k].text, sizeof res[k].text, "delivery did not complete");
    }
    dl->sched = s;
    dl->env = &m->env;
    dl->msg_path = path;
    dl->idx = idx;
    dl->n = n;
    dl->res = res;
    dl->agent = a;
    m->outstanding++;
    s->agents[a].deliver(s->agents[a].ctx, dl);
}

static void start_message(struct scheduler *s, struct smsg *m)
{
    m->phase = PH_DELIVERING;
    m->started_us = time_now_us();
    s->active++;
    int flush = m->flush;
    m->flush = 0;
    m->outstanding = 1;          /* held until every agent is launched */
    for (int a = 0; a < s->nagents; a++) {
        size_t *idx = malloc(m->env.nrcpt * sizeof *idx);
        size_t n = 0;
        if (!idx)
            break;
        for (size_t i = 0; i < m->env.nrcpt; i++) {
            if (m->env.rcpts[i].state != RCPT_PENDING)
                continue;
            if (s->cfg.route(s->cfg.route_ctx, m->env.rcpts[i].addr) != a)
                continue;
            if (!flush && is_deferred_transport(s, s->agents[a].name))
                defer_rcpt(s, m, i, "4.3.2", "deferred transport");
            else
                idx[n++] = i;
        }
        if (n)
            launch(s, m, a, idx, n);
        else
            free(idx);
    }
    if (--m->outstanding == 0)
        attempt_ready(s, m);
}

void sched_delivery_done(struct sched_delivery *dl)
{
    struct scheduler *s = dl->sched;
    struct smsg *m = lookup(s, dl->env->id);
    if (m)
        for (size_t k = 0; k < dl->n; k++)
            apply_result(s, m, dl->idx[k], &dl->res[k]);
    free((char *)dl->msg_path);
    free(dl->idx);
    free(dl->res);
    free(dl);
    if (m && --m->outstanding == 0)
        attempt_ready(s, m);
}

/* ------------------------------------------------------------ results */

static const char *status_word(enum rcpt_state st)
{
    switch (st) {
    case RCPT_SENT: return "sent";
    case RCPT_BOUNCED: return "bounced";
    default: return "deferred";
    }
}

static void log_result(const struct scheduler *s, const struct smsg *m, size_t i,
                       const char *relay)
{
    const struct env_rcpt *r = &m->env.rcpts[i];
    double delay = (double)(time_now_us() - m->env.arrival_us) / 1e6;
    char orig[600] = "";
    if (r->orcpt && *r->orcpt && strcmp(r->orcpt, r->addr))
        snprintf(orig, sizeof orig, ", orig_to=<%s>", r->orcpt);
    /* the host that answered, when there was one (the smtp agent) */
    if (r->remote && *r->remote)
        relay = r->remote;
    log_info("%s: to=<%s>%s, relay=%s, delay=%.2f, dsn=%s, %s%s%sstatus=%s (%s)", m->env.id,
             r->addr, orig, relay, delay, r->dsn, r->tls && *r->tls ? "tls=" : "",
             r->tls && *r->tls ? r->tls : "", r->tls && *r->tls ? ", " : "",
             status_word(r->state), r->text);
}

/* One recipient's result of this attempt, into the envelope (written
 * once the attempt is finished) and the log.  Agents read only their own
 * recipients' addresses and DSN fields, which this leaves alone. */
static void apply_result(struct scheduler *s, struct smsg *m, size_t i,
                         const struct sched_result *res)
{
    if (env_rcpt_set(&m->env.rcpts[i], res->state, res->dsn, res->text) < 0)
        log_err("%s: out of memory recording a result", m->env.id);
    if (res->state == RCPT_SENT && res->dsn_passed)
        m->env.rcpts[i].notify &= ~ENV_N_SUCCESS;   /* the next hop reports */
    if (env_rcpt_set_remote(&m->env.rcpts[i], res->remote, res->tls,
                            m->started_us / 1000000) < 0)
        log_err("%s: out of memory recording the remote host", m->env.id);
    int a = s->cfg.route(s->cfg.route_ctx, m->env.rcpts[i].addr);
    log_result(s, m, i, a >= 0 && a < s->nagents ? s->agents[a].name : "none");
}

/* Pending recipients of a message past its lifetime bounce now. */
static void expire(struct scheduler *s, struct smsg *m, long long now)
{
    long long life = (m->env.flags & ENV_F_BOUNCE) ? s->cfg.bounce_lifetime : s->cfg.max_lifetime;
    if (now - m->env.arrival_us / 1000000 < life)
        return;
    for (size_t i = 0; i < m->env.nrcpt; i++) {
        struct env_rcpt *r = &m->env.rcpts[i];
        if (r->state != RCPT_PENDING)
            continue;
        char text[700];
        snprintf(text, sizeof text, "message expired in the queue; last reason: %s",
                 r->text && *r->text ? r->text : "none");
        env_rcpt_set(r, RCPT_BOUNCED, r->dsn && r->dsn[0] == '4' ? r->dsn : "4.4.7", text);
        log_info("%s: to=<%s>, status=expired, returned to sender", m->env.id, r->addr);
    }
}

static long long backoff(const struct scheduler *s, const struct smsg *m, long long now)
{
    if (s->cfg.nretry) {
        size_t i = (size_t)(m->env.attempts > 0 ? m->env.attempts - 1 : 0);
        if (i >= s->cfg.nretry)
            i = s->cfg.nretry - 1;
        return s->cfg.retry_schedule[i];
    }
    long long wait = now - m->env.arrival_us / 1000000;
    if (wait < s->cfg.minimal_backoff)
        wait = s->cfg.minimal_backoff;
    if (wait > s->cfg.maximal_backoff)
        wait = s->cfg.maximal_backoff;
    return wait;
}

/* ------------------------------------------------------------ DSNs */

struct dsn_job {
    struct scheduler *s;
    char id[QID_LEN + 1];
    struct envelope env;         /* snapshot of the original */
    enum bounce_kind kind;
    int full;                    /* return the whole original (a failure report) */
    char *to;                    /* double bounce: postmaster; else NULL */
    char *path;
    char *text;                  /* built DSN */
    size_t len;
    struct envelope dsn_env;
    char new_id[QID_LEN + 1];
    /* copied at submission: a reload frees the config the scheduler's
     * strings point into while this job runs in a worker */
    char myhostname[256];
    char mail_name[128];
};

static size_t header_end(const char *buf, size_t len)
{
    for (size_t i = 0; i + 3 < len; i++)
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n')
            return i + 2;
    return len;
}

static void dsn_run(void *arg)
{
    struct dsn_job *j = arg;
    size_t room = j->full && BOUNCE_FULL_MAX + 1 > SCHED_HEADERS_MAX ? BOUNCE_FULL_MAX + 1
                                                                    : SCHED_HEADERS_MAX;
    char *hdr = malloc(room);
    ssize_t got = -1;
    int fd = open(j->path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && hdr) {
        got = pread(fd, hdr, room, 0);
        close(fd);
    } else if (fd >= 0) {
        close(fd);
    }
    /* whole only if it all fits; a larger message returns its headers */
    int whole = j->full && got > 0 && (size_t)got <= BOUNCE_FULL_MAX;
    struct bounce_info bi = {
        .myhostname = j->myhostname, .mail_name = j->mail_name,
        .new_id = j->new_id, .now = time(NULL),
        .orig_headers = got > 0 ? hdr : NULL,
        .orig_headers_len = got > 0 ? header_end(hdr, (size_t)got) : 0,
        .orig_full = whole ? hdr : NULL,
        .orig_full_len = whole ? (size_t)got : 0,
        .to = j->to,
    };
    if (bounce_build(&j->env, j->kind, &bi, &j->text, &j->len) < 0)
        j->text = NULL;
    free(hdr);
}

static void dsn_job_free(struct dsn_job *j)
{
    env_clear(&j->env);
    env_clear(&j->dsn_env);
    free(j->path);
    free(j->text);
    free(j->to);
    free(j);
}

static const char *kind_name(const struct dsn_job *j)
{
    if (j->to)
        return "double-bounce";
    return j->kind == BOUNCE_FAILED ? "non-delivery" :
           j->kind == BOUNCE_DELAYED ? "delay" : "success";
}

/* The notice is queued: mark what it reported so it is never sent twice. */
static void dsn_mark(struct smsg *m, enum bounce_kind kind)
{
    for (size_t i = 0; i < m->env.nrcpt; i++) {
        struct env_rcpt *r = &m->env.rcpts[i];
        if (kind == BOUNCE_FAILED && r->state == RCPT_BOUNCED)
            r->state = RCPT_DONE;
        else if (kind == BOUNCE_SUCCESS && r->state == RCPT_SENT)
            r->notify &= ~ENV_N_SUCCESS;
    }
}

static void after_bounces(struct scheduler *s, struct smsg *m);

static void dsn_committed(void *arg, int err)
{
    struct dsn_job *j = arg;
    struct scheduler *s = j->s;
    struct smsg *m = lookup(s, j->id);
    if (err) {
        log_err("%s: cannot queue the %s notice: %s", j->id, kind_name(j), strerror(err));
    } else {
        log_info("%s: %s %s notification: %s", j->id, j->to ? "postmaster" : "sender",
                 kind_name(j), j->dsn_env.id);
        sched_add(s, &j->dsn_env);
        if (m)
            dsn_mark(m, j->kind);
    }
    dsn_job_free(j);
    if (m && --m->bounces_pending == 0)
        after_bounces(s, m);
}

static void dsn_built(void *arg)
{
    struct dsn_job *j = arg;
    struct scheduler *s = j->s;
    struct envelope *e = &j->dsn_env;
    env_init(e);
    if (j->text && env_set_sender(e, "") == 0 &&
        env_set_client(e, "local", "-", "DSN") == 0 &&
        env_add_rcpt(e, j->to ? j->to : j->env.sender, "") == 0) {
        e->arrival_us = time_now_us();
        e->flags = ENV_F_BOUNCE | (j->to ? ENV_F_DOUBLE : 0) |
                   (j->env.flags & ENV_F_SMTPUTF8);   /* UTF-8 inside: RFC 6533 */
        if (queue_inject(s->q, j->text, j->len, e, dsn_committed, j) == 0)
            return;
    }
    dsn_committed(j, ENOMEM);
}

static int start_dsn(struct scheduler *s, struct smsg *m, enum bounce_kind kind, const char *to)
{
    struct dsn_job *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    j->s = s;
    j->kind = kind;
    j->full = kind == BOUNCE_FAILED && bounce_return_full(&m->env, s->cfg.bounce_return_full);
    if (to && !(j->to = strdup(to))) {
        free(j);
        return -1;
    }
    snprintf(j->myhostname, sizeof j->myhostname, "%s", s->cfg.myhostname);
    snprintf(j->mail_name, sizeof j->mail_name, "%s", s->cfg.mail_name);
    snprintf(j->id, sizeof j->id, "%s", m->env.id);
    env_init(&j->env);
    env_init(&j->dsn_env);
    j->path = malloc(PATH_MAX);
    if (!j->path || env_copy(&j->env, &m->env) < 0) {
        dsn_job_free(j);
        return -1;
    }
    queue_msg_path(s->q, m->env.id, j->path, PATH_MAX);
    qid_new(j->new_id);
    if (work_submit(s->pool, WORK_DELIVERY, dsn_run, dsn_built, j) < 0) {
        dsn_job_free(j);
        return -1;
    }
    m->bounces_pending++;
    return 0;
}

/* ------------------------------------------------------------ after an attempt */

static void written(void *arg, int err);
static void removed(void *arg, int err);

struct io_ref {
    struct scheduler *s;
    char id[QID_LEN + 1];
};

static struct io_ref *io_ref(struct scheduler *s, const struct smsg *m)
{
    struct io_ref *r = malloc(sizeof *r);
    if (r) {
        r->s = s;
        memcpy(r->id, m->env.id, sizeof r->id);
    }
    return r;
}

static int has_state(const struct smsg *m, enum rcpt_state st)
{
    for (size_t i = 0; i < m->env.nrcpt; i++)
        if (m->env.rcpts[i].state == st)
            return 1;
    return 0;
}

static int any_wanted(const struct smsg *m, enum bounce_kind kind)
{
    for (size_t i = 0; i < m->env.nrcpt; i++)
        if (bounce_wanted(&m->env.rcpts[i], kind))
            return 1;
    return 0;
}

/* Failed recipients whose NOTIFY declines a failure report: done now. */
static void drop_unwanted_bounces(struct smsg *m)
{
    for (size_t i = 0; i < m->env.nrcpt; i++) {
        struct env_rcpt *r = &m->env.rcpts[i];
        if (r->state == RCPT_BOUNCED && !bounce_wanted(r, BOUNCE_FAILED)) {
            r->state = RCPT_DONE;
            log_info("%s: to=<%s>: no non-delivery notification (NOTIFY)", m->env.id, r->addr);
        }
    }
}

/* Failure reports: to the sender; about a notice or a null-sender message
 * to postmaster once (a double bounce); a double bounce is never reported. */
static void report_failures(struct scheduler *s, struct smsg *m)
{
    drop_unwanted_bounces(m);
    if (!has_state(m, RCPT_BOUNCED))
        return;
    int orphan = (m->env.flags & ENV_F_BOUNCE) || !m->env.sender[0];
    if (orphan && ((m->env.flags & ENV_F_DOUBLE) || !s->cfg.postmaster || !*s->cfg.postmaster)) {
        log_info("%s: undeliverable double bounce: discarded", m->env.id);
        dsn_mark(m, BOUNCE_FAILED);
    } else if (start_dsn(s, m, BOUNCE_FAILED, orphan ? s->cfg.postmaster : NULL) < 0) {
        log_err("%s: cannot start the non-delivery notification", m->env.id);
    }
}

static void finish_attempt(struct scheduler *s, struct smsg *m)
{
    long long now = time_now_us() / 1000000;
    m->phase = PH_BOUNCING;
    m->env.attempts++;
    expire(s, m, now);
    m->bounces_pending = 1;      /* held while the jobs start */
    report_failures(s, m);
    int notices = !(m->env.flags & ENV_F_BOUNCE) && m->env.sender[0];
    if (notices && any_wanted(m, BOUNCE_SUCCESS) && start_dsn(s, m, BOUNCE_SUCCESS, NULL) < 0)
        log_err("%s: cannot start the success notification", m->env.id);
    if (s->cfg.delay_warning > 0 && !m->env.warned && notices &&
        any_wanted(m, BOUNCE_DELAYED) &&
        now - m->env.arrival_us / 1000000 >= s->cfg.delay_warning) {
        m->env.warned = 1;
        if (start_dsn(s, m, BOUNCE_DELAYED, NULL) < 0)
            log_err("%s: cannot start the delay notification", m->env.id);
    }
    if (--m->bounces_pending == 0)
        after_bounces(s, m);
}

/* Everything for this attempt is decided: rewrite or remove the envelope. */
static void after_bounces(struct scheduler *s, struct smsg *m)
{
    struct io_ref *r = io_ref(s, m);
    m->phase = PH_WRITING;
    if (!env_pending(&m->env) && !has_state(m, RCPT_BOUNCED)) {
        if (r && queue_remove(s->q, m->env.id, removed, r) == 0)
            return;
        free(r);
        /* Nothing is pending, but the files are still there: try the
         * removal again later (an attempt then finds nothing to do). */
        log_err("%s: cannot start removing the queue files; retrying later", m->env.id);
        schedule(s, m, time_now_us() / 1000000 + s->cfg.minimal_backoff);
        slot_release(s);
        return;
    }
    long long now = time_now_us() / 1000000;
    m->env.next_try = now + backoff(s, m, now);
    if (r && queue_update(s->q, &m->env, written, r) == 0)
        return;
    free(r);
    log_err("%s: cannot start the envelope rewrite", m->env.id);
    schedule(s, m, m->env.next_try);
    slot_release(s);
}

static int apply_want(struct scheduler *s, struct smsg *m);

static void written(void *arg, int err)
{
    struct io_ref *r = arg;
    struct smsg *m = lookup(r->s, r->id);
    if (err)
        log_err("%s: cannot rewrite the envelope: %s", r->id, strerror(err));
    if (m && !apply_want(r->s, m))
        schedule(r->s, m, m->env.next_try);
    slot_release(r->s);
    free(r);
}

static void removed(void *arg, int err)
{
    struct io_ref *r = arg;
    struct smsg *m = lookup(r->s, r->id);
    if (err)
        log_err("%s: cannot remove the queue files: %s", r->id, strerror(err));
    if (m) {
        log_info("%s: removed", r->id);
        forget(r->s, m);
    }
    slot_release(r->s);
    free(r);
}

/* ------------------------------------------------------------ hold, delete, requeue */

static void heap_remove(struct scheduler *s, struct smsg *m)
{
    size_t i = m->heap_pos;
    if (i == HEAP_NONE || i >= s->nheap)
        return;
    s->nheap--;
    if (i != s->nheap) {
        s->heap[i] = s->heap[s->nheap];
        s->heap[i]->heap_pos = i;
        heap_down(s, i);
        heap_up(s, s->heap[i]->heap_pos);
    }
    m->heap_pos = HEAP_NONE;
    arm_timer(s);
}

static void moved(void *arg, int err);
static void deleted(void *arg, int err);
static int apply_want(struct scheduler *s, struct smsg *m);

/* Start moving m to hold/ (hold) or back; it is out of the heap meanwhile. */
static int start_move(struct scheduler *s, struct smsg *m, int hold)
{
    struct io_ref *r = io_ref(s, m);
    m->phase = PH_MOVING;
    if (r && queue_hold(s->q, m->env.id, hold, moved, r) == 0) {
        m->held = hold ? -1 : -2;        /* in flight: -1 holding, -2 releasing */
        return 0;
    }
    free(r);
    log_err("%s: cannot start the %s", m->env.id, hold ? "hold" : "release");
    return -1;
}

static void moved(void *arg, int err)
{
    struct io_ref *r = arg;
    struct scheduler *s = r->s;
    struct smsg *m = lookup(s, r->id);
    free(r);
    if (!m)
        return;
    int holding = m->held == -1;
    if (err) {
        log_err("%s: cannot %s: %s", m->env.id, holding ? "hold" : "release", strerror(err));
        holding = !holding;              /* it stays where it was */
    } else {
        log_info("%s: %s", m->env.id, holding ? "placed on hold" : "released from hold");
    }
    m->held = holding;
    m->phase = PH_IDLE;
    if (m->want == WANT_HOLD && holding)
        m->want = WANT_NONE;
    if (apply_want(s, m))                /* a delete (or hold) asked for meanwhile */
        return;
    if (!holding)
        schedule(s, m, time_now_us() / 1000000);
}

static int start_delete(struct scheduler *s, struct smsg *m)
{
    struct io_ref *r = io_ref(s, m);
    heap_remove(s, m);
    m->phase = PH_WRITING;
    if (r && queue_remove(s->q, m->env.id, deleted, r) == 0)
        return 0;
    free(r);
    log_err("%s: cannot start the deletion", m->env.id);
    m->phase = PH_IDLE;
    if (!m->held)
        schedule(s, m, m->env.next_try);
    return -1;
}

static void deleted(void *arg, int err)
{
    struct io_ref *r = arg;
    struct smsg *m = lookup(r->s, r->id);
    if (err)
        log_err("%s: cannot remove the queue files: %s", r->id, strerror(err));
    if (m) {
        log_info("%s: removed (deleted by the operator)", r->id);
        forget(r->s, m);
    }
    free(r);
}

/* After an attempt's envelope is written: an operator's hold or delete
 * that waited for it.  1 when m is taken care of (not to be scheduled). */
static int apply_want(struct scheduler *s, struct smsg *m)
{
    enum smsg_want w = m->want;
    m->want = WANT_NONE;
    if (w == WANT_DELETE)
        return start_delete(s, m) == 0;
    if (w == WANT_HOLD)
        return start_move(s, m, 1) == 0;
    return 0;
}

int sched_add_held(struct scheduler *s, const struct envelope *env)
{
    if (sched_add(s, env) < 0)
        return -1;
    struct smsg *m = lookup(s, env->id);
    if (m) {
        heap_remove(s, m);
        m->held = 1;
    }
    return 0;
}

int sched_hold(struct scheduler *s, const char *id)
{
    struct smsg *m = lookup(s, id);
    if (!m)
        return -1;
    if (m->held == 1 || m->held == -1)
        return 0;
    if (m->phase != PH_IDLE) {
        m->want = WANT_HOLD;
        return 1;
    }
    heap_remove(s, m);
    if (start_move(s, m, 1) < 0) {
        m->phase = PH_IDLE;
        schedule(s, m, m->env.next_try);
        return -2;
    }
    return 0;
}

int sched_release(struct scheduler *s, const char *id)
{
    struct smsg *m = lookup(s, id);
    if (!m)
        return -1;
    if (m->want == WANT_HOLD) {          /* not held yet: forget the wish */
        m->want = WANT_NONE;
        return 0;
    }
    if (m->held != 1)
        return 0;                        /* not held, or already on its way out */
    return start_move(s, m, 0) < 0 ? -2 : 0;
}

int sched_delete(struct scheduler *s, const char *id)
{
    struct smsg *m = lookup(s, id);
    if (!m)
        return -1;
    if (m->phase != PH_IDLE) {           /* in an attempt or a move: after it */
        m->want = WANT_DELETE;
        return 1;
    }
    return start_delete(s, m) < 0 ? -2 : 0;
}

int sched_requeue(struct scheduler *s, const char *id)
{
    struct smsg *m = lookup(s, id);
    if (!m)
        return -1;
    if (m->held == 1)
        return sched_release(s, id);
    if (m->phase != PH_IDLE || m->heap_pos == HEAP_NONE)
        return 1;                        /* in an attempt: it is being tried now */
    m->env.attempts = 0;                 /* the backoff starts over */
    m->flush = 1;
    m->due = time_now_us() / 1000000;
    heap_up(s, m->heap_pos);
    arm_timer(s);
    return 0;
}

const struct envelope *sched_find(const struct scheduler *s, const char *id, int *state,
                                  long long *due)
{
    struct smsg *m = lookup(s, id);
    if (!m)
        return NULL;
    *state = (m->phase == PH_DELIVERING ? SCHED_ACTIVE : 0) | (m->held ? SCHED_HELD : 0);
    *due = m->heap_pos != HEAP_NONE ? m->due : 0;
    return &m->env;
}

/* 1 if a pending recipient's domain is `domain` (case-insensitive). */
static int has_domain(const struct smsg *m, const char *domain)
{
    for (size_t i = 0; i < m->env.nrcpt; i++) {
        const char *at = strrchr(m->env.rcpts[i].addr, '@');
        if (m->env.rcpts[i].state == RCPT_PENDING && at && !strcasecmp(at + 1, domain))
            return 1;
    }
    return 0;
}

void sched_flush_domain(struct scheduler *s, const char *domain)
{
    long long now = time_now_us() / 1000000;
    for (size_t i = 0; i < s->nheap; i++)
        if (has_domain(s->heap[i], domain)) {
            s->heap[i]->due = now;
            s->heap[i]->flush = 1;
        }
    for (size_t i = s->nheap; i > 0; i--)
        heap_down(s, i - 1);
    arm_timer(s);
}

/* ------------------------------------------------------------ control */

void sched_flush(struct scheduler *s)
{
    long long now = time_now_us() / 1000000;
    for (size_t i = 0; i < s->nheap; i++) {
        s->heap[i]->due = now;
        s->heap[i]->flush = 1;
    }
    for (size_t i = s->nheap; i > 0; i--)
        heap_down(s, i - 1);
    arm_timer(s);
}

size_t sched_count(const struct scheduler *s)
{
    return s->count;
}

size_t sched_active(const struct scheduler *s)
{
    return s->active;
}

void sched_foreach(const struct scheduler *s,
                   void (*fn)(void *arg, const struct envelope *env, int active), void *arg)
{
    for (size_t b = 0; b < s->nbuckets; b++)
        for (const struct smsg *m = s->buckets[b]; m; m = m->hnext)
            fn(arg, &m->env, (m->phase == PH_DELIVERING ? SCHED_ACTIVE : 0) |
                             (m->held ? SCHED_HELD : 0));
}

/* ------------------------------------------------------------ notices */

struct notice_job {
    struct scheduler *s;
    struct envelope env;
};

static void notice_committed(void *arg, int err)
{
    struct notice_job *j = arg;
    if (err) {
        log_err("cannot queue a notice to <%s>: %s", j->env.rcpts[0].addr, strerror(err));
    } else {
        log_info("%s: notice to <%s> queued", j->env.id, j->env.rcpts[0].addr);
        if (sched_add(j->s, &j->env) < 0)
            log_err("%s: out of memory scheduling the notice", j->env.id);
    }
    env_clear(&j->env);
    free(j);
}

int sched_notice(struct scheduler *s, const char *rcpt, const char *text, size_t len)
{
    struct notice_job *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    j->s = s;
    env_init(&j->env);
    if (env_set_sender(&j->env, "") == 0 && env_set_client(&j->env, "local", "-", "notice") == 0
        && env_add_rcpt(&j->env, rcpt, "") == 0) {
        j->env.arrival_us = time_now_us();
        j->env.flags = ENV_F_BOUNCE;       /* from MAILER-DAEMON: never bounced */
        if (queue_inject(s->q, text, len, &j->env, notice_committed, j) == 0)
            return 0;
    }
    env_clear(&j->env);
    free(j);
    return -1;
}

void sched_stop(struct scheduler *s)
{
    s->stopped = 1;
    evtimer_del(s->timer);
}

void sched_free(struct scheduler *s)
{
    if (!s)
        return;
    if (s->buckets) {
        for (size_t b = 0; b < s->nbuckets; b++) {
            struct smsg *m = s->buckets[b];
            while (m) {
                struct smsg *next = m->hnext;
                smsg_free(m);
                m = next;
            }
        }
    }
    if (s->timer)
        event_free(s->timer);
    if (s->ready_ev)
        event_free(s->ready_ev);
    free(s->buckets);
    free(s->heap);
    free(s->retry);
    free(s);
}
