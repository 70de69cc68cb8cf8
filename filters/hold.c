/*
 * filters/hold.c — the test-only hold filter (filters/hold.h).  Owns one
 * timer per pending answer and the list of them, so that a cancelled run
 * (the session went away) frees its timer and is never resumed.  Runs on
 * the loop only.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>

#include "filters/hold.h"
#include "lib/log.h"

static const char *const phase_names[FILTER_NPHASES] = {
    "connect", "helo", "mail", "rcpt", "data",
};

struct hold_item {
    struct hold *h;
    struct event *ev;
    void *token;
    unsigned long long session_id;
    enum filter_phase phase;
    struct hold_item *prev, *next;
};

struct hold {
    struct event_base *base;
    long long ms;
    struct hold_item *items;     /* pending answers */
};

int hold_phase_parse(const char *name)
{
    for (int p = 0; p < FILTER_NPHASES; p++)
        if (!strcmp(name, phase_names[p]))
            return p;
    return -1;
}

static void item_unlink_free(struct hold_item *it)
{
    if (it->prev)
        it->prev->next = it->next;
    else if (it->h)
        it->h->items = it->next;
    if (it->next)
        it->next->prev = it->prev;
    event_free(it->ev);
    free(it);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct hold_item *it = arg;
    void *token = it->token;
    (void)fd;
    (void)what;
    log_info("test filter: releasing %s of session %llu", phase_names[it->phase], it->session_id);
    item_unlink_free(it);
    filter_resume(token, FILTER_CONTINUE, NULL);
}

static enum filter_verdict hold_phase(struct hold *h, const struct filter_txn *t,
                                      enum filter_phase phase, void *token)
{
    struct hold_item *it = calloc(1, sizeof *it);
    struct timeval tv = { h->ms / 1000, (h->ms % 1000) * 1000 };
    if (!it)
        return FILTER_CONTINUE;
    it->ev = evtimer_new(h->base, on_timer, it);
    if (!it->ev || evtimer_add(it->ev, &tv) < 0) {
        if (it->ev)
            event_free(it->ev);
        free(it);
        return FILTER_CONTINUE;
    }
    it->h = h;
    it->token = token;
    it->session_id = t->session_id;
    it->phase = phase;
    it->next = h->items;
    if (h->items)
        h->items->prev = it;
    h->items = it;
    log_info("test filter: holding %s of session %llu for %lld ms", phase_names[phase],
             t->session_id, h->ms);
    return FILTER_PENDING;
}

#define HOLD_HOOK(fn, phase) \
    static enum filter_verdict fn(void *ctx, const struct filter_txn *t, \
                                  struct filter_reply *r, void *token) \
    { \
        (void)r; \
        return hold_phase(ctx, t, phase, token); \
    }
HOLD_HOOK(hold_connect, FILTER_CONNECT)
HOLD_HOOK(hold_helo, FILTER_HELO)
HOLD_HOOK(hold_mail, FILTER_MAIL)
HOLD_HOOK(hold_rcpt, FILTER_RCPT)
HOLD_HOOK(hold_eom, FILTER_EOM)

static void hold_cancel(void *ctx, void *token)
{
    struct hold *h = ctx;
    for (struct hold_item *it = h->items; it; it = it->next)
        if (it->token == token) {
            item_unlink_free(it);
            return;
        }
}

/* The chain is freed only when no run of it is pending, so no answer is
 * held here.  If one were (a broken invariant), its timer is left to fire
 * and resume the run, as a DNS answer arriving late would: the bug then
 * shows where it is (under ASan: a use of the freed chain). */
static void hold_free(void *ctx)
{
    struct hold *h = ctx;
    int n = 0;
    for (struct hold_item *it = h->items; it; it = it->next, n++)
        it->h = NULL;
    if (n)
        log_err("test filter: freed with %d answer(s) still pending", n);
    free(h);
}

int hold_filter(struct filter *f, struct event_base *base, char **phases, size_t nphases,
                long long ms)
{
    static enum filter_verdict (*const hooks[FILTER_NPHASES])(void *, const struct filter_txn *,
                                                              struct filter_reply *, void *) = {
        hold_connect, hold_helo, hold_mail, hold_rcpt, hold_eom,
    };
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < nphases; i++) {
        int p = hold_phase_parse(phases[i]);
        if (p < 0)
            return -1;
        f->hook[p] = hooks[p];
    }
    struct hold *h = calloc(1, sizeof *h);
    if (!h)
        return -1;
    h->base = base;
    h->ms = ms;
    f->name = "test-hold";
    f->cancel = hold_cancel;
    f->free_ctx = hold_free;
    f->ctx = h;
    return 0;
}
