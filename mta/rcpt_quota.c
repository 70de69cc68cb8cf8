/*
 * mta/rcpt_quota.c — the RCPT-time quota check (mta/rcpt_quota.h).  On the
 * loop: expand the recipient (mta/router.h) into its local mailboxes and
 * their quotas.  In the pool: store_quota_check() on each (maildirsize; a
 * missing Maildir is empty).  Owns the list of checks in flight, so a
 * cancelled one (the session went away, or the chain is freed with its
 * generation) is never resumed and never touches the filter again, and a
 * small cache of mailboxes found with room: for RQ_CACHE_US after a read
 * such a mailbox is answered on the loop without a pool job.  Only "room"
 * is cached, never "full" (a stale "room" costs a deferral at delivery,
 * which checks again; a stale "full" would refuse mail there is room for).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/hash.h"
#include "lib/log.h"
#include "lib/timeutil.h"
#include "lib/work.h"
#include "mta/rcpt_quota.h"
#include "mta/router.h"
#include "mta/tables.h"
#include "store/maildir.h"
#include "store/path.h"

#define RQ_TARGETS_MAX 8     /* an alias to more mailboxes is not checked here */
#define RQ_CACHE       256   /* mailboxes remembered with room (direct-mapped) */
#define RQ_CACHE_US    1000000LL

struct rq;

struct rq_job {
    struct rq *rq;                  /* NULL once cancelled */
    void *token;
    char *dirs[RQ_TARGETS_MAX];
    long long quotas[RQ_TARGETS_MAX];
    int room[RQ_TARGETS_MAX];       /* pool: this Maildir exists and has room */
    size_t n;
    int full;                       /* pool: every mailbox is full */
    struct rq_job *prev, *next;
};

struct rq_seen {
    char *dir;                      /* NULL: empty slot */
    long long quota;
    long long until_us;             /* monotonic: room known until then */
};

struct rq {
    const struct tables *tables;
    char maildirs[PATH_MAX];        /* state_directory/mail */
    struct rq_job *jobs;            /* in flight */
    struct rq_seen cache[RQ_CACHE];
};

static struct rq_seen *cache_slot(struct rq *rq, const char *dir)
{
    return &rq->cache[hash_str(dir) % RQ_CACHE];
}

/* Room in dir under quota known from a read less than RQ_CACHE_US ago? */
static int cache_has_room(struct rq *rq, const char *dir, long long quota, long long now)
{
    const struct rq_seen *c = cache_slot(rq, dir);
    return c->dir && c->quota == quota && c->until_us > now && strcmp(c->dir, dir) == 0;
}

static void cache_put(struct rq *rq, const char *dir, long long quota, long long now)
{
    struct rq_seen *c = cache_slot(rq, dir);
    if (!c->dir || strcmp(c->dir, dir) != 0) {
        char *d = strdup(dir);
        if (!d)
            return;
        free(c->dir);
        c->dir = d;
    }
    c->quota = quota;
    c->until_us = now + RQ_CACHE_US;
}

static void job_unlink(struct rq_job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else if (j->rq)
        j->rq->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    j->prev = j->next = NULL;
    j->rq = NULL;
}

static void job_free(struct rq_job *j)
{
    for (size_t i = 0; i < j->n; i++)
        free(j->dirs[i]);
    free(j);
}

/* Pool: full if every mailbox is at or over its quota.  A mailbox not made
 * yet holds nothing; a read error counts as room (delivery decides). */
static void job_run(void *arg)
{
    struct rq_job *j = arg;
    struct stat st;
    j->full = j->n > 0;
    for (size_t i = 0; i < j->n && j->full; i++) {
        if (stat(j->dirs[i], &st) != 0) {
            j->full = 0;                /* not made yet: not cached either */
            break;
        }
        int r = store_quota_check(j->dirs[i], 1, j->quotas[i]);
        if (r < 0)
            log_warn("quota: %s: cannot read the usage: %s", j->dirs[i], strerror(errno));
        j->room[i] = r == 0;
        j->full = r == 1;
    }
}

static void job_done(void *arg)
{
    struct rq_job *j = arg;
    struct rq *rq = j->rq;
    if (!rq) {                       /* cancelled meanwhile */
        job_free(j);
        return;
    }
    job_unlink(j);
    long long now = time_mono_us();
    for (size_t i = 0; i < j->n; i++)
        if (j->room[i])
            cache_put(rq, j->dirs[i], j->quotas[i], now);
    struct filter_reply r = { 0 };
    enum filter_verdict v = FILTER_CONTINUE;
    if (j->full) {
        int perm = rq->tables->quota_full_permanent;
        r.code = perm ? 552 : 452;
        snprintf(r.enh, sizeof r.enh, "%s", perm ? "5.2.2" : "4.2.2");
        snprintf(r.text, sizeof r.text, "Mailbox full");
        v = perm ? FILTER_REJECT : FILTER_TEMPFAIL;
    }
    void *token = j->token;
    job_free(j);
    filter_resume(token, v, &r);
}

/* The local mailboxes with a quota that rcpt routes to, into j.  0: some
 * target is unlimited, remote, or there are too many: nothing to check. */
static int collect(struct rq *rq, const char *rcpt, struct rq_job *j)
{
    struct route_target *t = NULL;
    size_t n = 0;
    int want = 1;
    if (router_expand(&rq->tables->rc, rcpt, &t, &n) != ROUTE_OK)
        return 0;                    /* unknown and the like: the RCPT answer says so */
    for (size_t i = 0; i < n && want; i++) {
        if (t[i].kind != ROUTE_LOCAL || t[i].quota <= 0 || j->n == RQ_TARGETS_MAX
            || !store_mailbox_rel_ok(t[i].mailbox)) {
            want = 0;
            break;
        }
        if (asprintf(&j->dirs[j->n], "%s/%s", rq->maildirs, t[i].mailbox) < 0) {
            want = 0;
            break;
        }
        j->quotas[j->n++] = t[i].quota;
    }
    if (t)
        router_free_targets(t, n);
    return want && j->n > 0;
}

static enum filter_verdict rq_rcpt(void *ctx, const struct filter_txn *t, struct filter_reply *r,
                                   void *token)
{
    struct rq *rq = ctx;
    (void)r;
    if (!t->rcpt_local || !t->pool || !rq->tables)
        return FILTER_CONTINUE;
    struct rq_job *j = calloc(1, sizeof *j);
    if (!j)
        return FILTER_CONTINUE;
    if (!collect(rq, t->rcpt, j)) {
        job_free(j);
        return FILTER_CONTINUE;
    }
    long long now = time_mono_us();
    for (size_t i = 0; i < j->n; i++)
        if (cache_has_room(rq, j->dirs[i], j->quotas[i], now)) {
            job_free(j);                /* one with room: no need to read */
            return FILTER_CONTINUE;
        }
    j->rq = rq;
    j->token = token;
    if (work_submit(t->pool, WORK_FILTER, job_run, job_done, j) < 0) {
        job_free(j);
        return FILTER_CONTINUE;
    }
    j->next = rq->jobs;
    if (rq->jobs)
        rq->jobs->prev = j;
    rq->jobs = j;
    return FILTER_PENDING;
}

static void rq_cancel(void *ctx, void *token)
{
    struct rq *rq = ctx;
    for (struct rq_job *j = rq->jobs; j; j = j->next)
        if (j->token == token) {
            job_unlink(j);           /* job_done frees it */
            return;
        }
}

static void rq_free(void *ctx)
{
    struct rq *rq = ctx;
    while (rq->jobs)
        job_unlink(rq->jobs);
    for (size_t i = 0; i < RQ_CACHE; i++)
        free(rq->cache[i].dir);
    free(rq);
}

int rcpt_quota_filter(struct filter *f, const struct tables *t, const char *state_dir)
{
    struct rq *rq = calloc(1, sizeof *rq);
    if (!rq)
        return -1;
    rq->tables = t;
    snprintf(rq->maildirs, sizeof rq->maildirs, "%s/mail", state_dir);
    memset(f, 0, sizeof *f);
    f->name = "quota";
    f->hook[FILTER_RCPT] = rq_rcpt;
    f->cancel = rq_cancel;
    f->free_ctx = rq_free;
    f->ctx = rq;
    return 0;
}
