/*
 * t/unit/test_filter.c — the filter chain: filters run in order and stop
 * at the first objection; a pending filter completes later through
 * filter_resume() and the chain goes on from the next filter; a cancelled
 * run tells the pending filter and never calls back; the relay ACL.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "filters/acl.h"
#include "filters/filter.h"
#include "lib/iplist.h"
#include "t/unit/tap.h"

static char trace[64];
static void *pending_token;
static int cancelled;
static int done_calls;
static enum filter_verdict done_v;
static struct filter_reply done_r;

static void mark(const char *s)
{
    strncat(trace, s, sizeof trace - strlen(trace) - 1);
}

static enum filter_verdict f_ok(void *ctx, const struct filter_txn *t, struct filter_reply *r,
                                void *token)
{
    mark(ctx);
    return FILTER_CONTINUE;
}

static enum filter_verdict f_reject(void *ctx, const struct filter_txn *t,
                                    struct filter_reply *r, void *token)
{
    mark(ctx);
    r->code = 550;
    strcpy(r->enh, "5.7.1");
    strcpy(r->text, "no");
    return FILTER_REJECT;
}

static enum filter_verdict f_pending(void *ctx, const struct filter_txn *t,
                                     struct filter_reply *r, void *token)
{
    mark(ctx);
    pending_token = token;
    return FILTER_PENDING;
}

static void f_cancel(void *ctx, void *token)
{
    if (token == pending_token)
        cancelled++;
}

static void on_done(void *arg, enum filter_verdict v, const struct filter_reply *r)
{
    done_calls++;
    done_v = v;
    memset(&done_r, 0, sizeof done_r);
    if (r)
        done_r = *r;
}

static struct filter make(const char *name,
                          enum filter_verdict (*hook)(void *, const struct filter_txn *,
                                                      struct filter_reply *, void *))
{
    struct filter f;
    memset(&f, 0, sizeof f);
    f.name = name;
    f.hook[FILTER_RCPT] = hook;
    f.cancel = f_cancel;
    f.ctx = (void *)name;
    return f;
}

static void reset(void)
{
    trace[0] = '\0';
    pending_token = NULL;
    cancelled = done_calls = 0;
}

static void chain_tests(void)
{
    struct filter_txn t;
    memset(&t, 0, sizeof t);
    struct filter_chain *c = filter_chain_new();
    struct filter a = make("A", f_ok), p = make("P", f_pending), b = make("B", f_ok),
                  x = make("X", f_reject);
    filter_chain_add(c, &a);
    filter_chain_add(c, &p);
    filter_chain_add(c, &b);

    reset();
    ok(filter_run(c, FILTER_HELO, &t, on_done, NULL) == NULL && done_calls == 1 &&
       done_v == FILTER_CONTINUE && trace[0] == '\0',
       "a phase without hooks finishes at once");

    reset();
    struct filter_run *run = filter_run(c, FILTER_RCPT, &t, on_done, NULL);
    ok(run != NULL && done_calls == 0, "a pending filter leaves the run open");
    is_str(trace, "AP", "filters ran in order up to the pending one");
    filter_resume(pending_token, FILTER_CONTINUE, NULL);
    is_int(done_calls, 1, "resume finishes the run once");
    is_str(trace, "APB", "and the chain went on after the pending filter");
    is_int(done_v, FILTER_CONTINUE, "with no objection");

    reset();
    run = filter_run(c, FILTER_RCPT, &t, on_done, NULL);
    struct filter_reply r = { 450, "4.7.1", "try later" };
    filter_resume(pending_token, FILTER_TEMPFAIL, &r);
    ok(done_calls == 1 && done_v == FILTER_TEMPFAIL && done_r.code == 450 &&
       !strcmp(done_r.text, "try later"), "a pending tempfail is the answer");
    is_str(trace, "AP", "and no later filter runs");

    reset();
    run = filter_run(c, FILTER_RCPT, &t, on_done, NULL);
    filter_run_cancel(run);
    is_int(cancelled, 1, "cancel tells the pending filter");
    is_int(done_calls, 0, "and the run never calls back");
    filter_chain_free(c);

    c = filter_chain_new();
    filter_chain_add(c, &a);
    filter_chain_add(c, &x);
    filter_chain_add(c, &b);
    reset();
    ok(filter_run(c, FILTER_RCPT, &t, on_done, NULL) == NULL, "a synchronous run returns NULL");
    ok(done_calls == 1 && done_v == FILTER_REJECT && done_r.code == 550, "a rejection stops the chain");
    is_str(trace, "AX", "the filter after the rejecting one is not called");
    filter_chain_free(c);
}

static void acl_tests(void)
{
    char err[128];
    char *items[] = { "192.168.0.0/24" };
    struct iplist *l = iplist_new(items, 1, err, sizeof err);
    struct filter f;
    struct filter_reply r;
    struct filter_txn t;
    struct sockaddr_in in = { .sin_family = AF_INET };
    acl_filter(&f, l);
    memset(&t, 0, sizeof t);
    t.client = (struct sockaddr *)&in;
    t.rcpt = "x@far.test";
    inet_pton(AF_INET, "192.0.2.1", &in.sin_addr);
    memset(&r, 0, sizeof r);
    ok(f.hook[FILTER_RCPT](f.ctx, &t, &r, NULL) == FILTER_REJECT && r.code == 554 &&
       !strcmp(r.enh, "5.7.1") && strstr(r.text, "Relay access denied"),
       "remote rcpt from an outside client: 554 5.7.1 Relay access denied");
    t.rcpt_local = 1;
    ok(f.hook[FILTER_RCPT](f.ctx, &t, &r, NULL) == FILTER_CONTINUE, "local rcpt: accepted");
    t.rcpt_local = 0;
    t.authenticated = 1;
    ok(f.hook[FILTER_RCPT](f.ctx, &t, &r, NULL) == FILTER_CONTINUE, "authenticated: may relay");
    t.authenticated = 0;
    t.trusted = 1;
    ok(f.hook[FILTER_RCPT](f.ctx, &t, &r, NULL) == FILTER_CONTINUE, "local submission: may relay");
    t.trusted = 0;
    inet_pton(AF_INET, "192.168.0.7", &in.sin_addr);
    ok(f.hook[FILTER_RCPT](f.ctx, &t, &r, NULL) == FILTER_CONTINUE, "relay_clients: may relay");
    iplist_free(l);
}

int main(void)
{
    chain_tests();
    acl_tests();
    return tap_done();
}
