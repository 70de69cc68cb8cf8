/*
 * filters/chain.c — runs the filters of one phase in order, stopping at the
 * first objection, and waits for a pending filter's filter_resume().  Owns
 * the run objects; a cancelled run tells the pending filter and never calls
 * back its session.
 */
#include <stdlib.h>
#include <string.h>

#include "filters/filter.h"

struct filter_chain {
    struct filter f[FILTER_MAX];
    int n;
};

struct filter_run {
    struct filter_chain *c;
    enum filter_phase phase;
    const struct filter_txn *t;
    filter_done_fn done;
    void *arg;
    int next;                    /* index of the filter to call next */
    int pending;                 /* index of the filter we wait for, -1 none */
};

struct filter_chain *filter_chain_new(void)
{
    return calloc(1, sizeof(struct filter_chain));
}

int filter_chain_add(struct filter_chain *c, const struct filter *f)
{
    if (c->n == FILTER_MAX)
        return -1;
    c->f[c->n++] = *f;
    return 0;
}

void filter_chain_free(struct filter_chain *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++)
        if (c->f[i].free_ctx)
            c->f[i].free_ctx(c->f[i].ctx);
    free(c);
}

/* Call hooks from run->next on.  Returns 1 when the run finished (done
 * called, run freed), 0 when it waits for a pending filter. */
static int advance(struct filter_run *run)
{
    struct filter_reply r;
    while (run->next < run->c->n) {
        const struct filter *f = &run->c->f[run->next++];
        if (!f->hook[run->phase])
            continue;
        memset(&r, 0, sizeof r);
        enum filter_verdict v = f->hook[run->phase](f->ctx, run->t, &r, run);
        if (v == FILTER_PENDING) {
            run->pending = run->next - 1;
            return 0;
        }
        if (v != FILTER_CONTINUE) {
            run->done(run->arg, v, &r);
            free(run);
            return 1;
        }
    }
    run->done(run->arg, FILTER_CONTINUE, NULL);
    free(run);
    return 1;
}

struct filter_run *filter_run(struct filter_chain *c, enum filter_phase phase,
                              const struct filter_txn *t, filter_done_fn done, void *arg)
{
    if (!c || c->n == 0) {
        done(arg, FILTER_CONTINUE, NULL);
        return NULL;
    }
    struct filter_run *run = calloc(1, sizeof *run);
    if (!run) {
        struct filter_reply r = { 451, "4.3.0", "Error: out of memory" };
        done(arg, FILTER_TEMPFAIL, &r);
        return NULL;
    }
    run->c = c;
    run->phase = phase;
    run->t = t;
    run->done = done;
    run->arg = arg;
    run->pending = -1;
    return advance(run) ? NULL : run;
}

void filter_resume(void *token, enum filter_verdict v, const struct filter_reply *r)
{
    struct filter_run *run = token;
    run->pending = -1;
    if (v == FILTER_CONTINUE || v == FILTER_PENDING) {
        advance(run);
        return;
    }
    run->done(run->arg, v, r);
    free(run);
}

void filter_run_cancel(struct filter_run *run)
{
    if (!run)
        return;
    if (run->pending >= 0) {
        const struct filter *f = &run->c->f[run->pending];
        if (f->cancel)
            f->cancel(f->ctx, run);
    }
    free(run);
}
