/*
 * filters/filter.h — the filter chain's contract.  A filter is a table of
 * optional hooks, one per SMTP phase.  A hook sees a read-only view of the
 * transaction (never the session) and answers accept (go on), reject (code,
 * enhanced code, text), tempfail, or pending: it will answer later through
 * filter_resume() (DNS, a worker), and the session waits reading nothing.
 * Filters may add header lines to the message (end-of-message phase).
 */
#ifndef HATO_FILTER_H
#define HATO_FILTER_H

#include <stddef.h>
#include <sys/socket.h>

enum filter_phase {
    FILTER_CONNECT, FILTER_HELO, FILTER_MAIL, FILTER_RCPT, FILTER_EOM,
    FILTER_NPHASES
};

enum filter_verdict {
    FILTER_CONTINUE = 0,   /* no objection: next filter */
    FILTER_REJECT,         /* permanent: reply.code 5xx */
    FILTER_TEMPFAIL,       /* temporary: reply.code 4xx */
    FILTER_PENDING,        /* answer comes later via filter_resume() */
};

struct filter_reply {
    int code;
    char enh[16];
    char text[256];
};

/* What a filter may look at.  Strings are valid for the hook call. */
struct filter_txn {
    unsigned long long session_id;
    const struct sockaddr *client;   /* NULL for local submission */
    const char *client_addr;         /* printable, "local" for the control socket */
    const char *helo;                /* "" before HELO */
    int authenticated;               /* SMTP AUTH done (its own issue) */
    int trusted;                     /* local submission (sendmail) */
    const char *sender;              /* MAIL: "" = null sender */
    const char *rcpt;                /* RCPT: the address as given */
    int rcpt_local;                  /* RCPT: domain is one of local_domains */
    struct work_pool *pool;          /* for blocking work (lib/work.h), or NULL */
};

struct filter_chain;
struct work_pool;
typedef void (*filter_done_fn)(void *arg, enum filter_verdict v, const struct filter_reply *r);

struct filter {
    const char *name;
    /* Each hook may be NULL.  For FILTER_PENDING, keep `token` and call
     * filter_resume(token, ...) exactly once, on the loop; if the session
     * goes away first, filter_cancel hooks are told via `cancel`. */
    enum filter_verdict (*hook[FILTER_NPHASES])(void *ctx, const struct filter_txn *t,
                                                struct filter_reply *r, void *token);
    void (*cancel)(void *ctx, void *token);
    /* May be NULL: frees ctx when the chain is freed (a filter owning its
     * state; the chain is freed only when no run of it is pending). */
    void (*free_ctx)(void *ctx);
    void *ctx;
};

#define FILTER_MAX 16

struct filter_chain *filter_chain_new(void);
int filter_chain_add(struct filter_chain *c, const struct filter *f);
void filter_chain_free(struct filter_chain *c);

/* Run every filter's hook for `phase` in order until one objects.  `done`
 * runs exactly once: at once when no filter is pending, else later.  The
 * returned handle cancels a pending run (then `done` never runs); NULL when
 * `done` already ran. */
struct filter_run *filter_run(struct filter_chain *c, enum filter_phase phase,
                              const struct filter_txn *t, filter_done_fn done, void *arg);
void filter_run_cancel(struct filter_run *run);
/* A pending hook's answer.  `t` must still describe the transaction. */
void filter_resume(void *token, enum filter_verdict v, const struct filter_reply *r);

#endif
