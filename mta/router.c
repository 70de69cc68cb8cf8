/*
 * mta/router.c — recipient routing: local or remote, aliases (nested, with
 * loop detection), users, plus-addressing.
 *
 * Owns the expansion algorithm (see router.h for the contract):
 *  - split at the LAST '@'; domains compare case-insensitively;
 *  - remote domain → one ROUTE_REMOTE target, the address as given;
 *  - local: alias of the full local part, else (recipient_delimiter) of the
 *    part before the delimiter; each target expands recursively, a bare
 *    target meaning the same domain; a target naming the alias itself
 *    ("bob: bob", or "bob: bob+x") is the user, as in sendmail;
 *  - no alias: user "local@domain", else "base@domain"; the mailbox is
 *    "domain/base" (never the extension), addr keeps the extension.
 * An alias met again on its own expansion path is a loop; one met again
 * elsewhere has already been expanded and is skipped (duplicates go).
 * Local parts that could leave the mail directory ("", "/", leading '.',
 * control characters: store_name_ok)
 * are unknown.  Any unknown target makes the whole recipient unknown.
 * "postmaster" (any case, no extension) whose alias is missing or unknown
 * in its domain, and that has no user there, expands rc->postmaster
 * instead, once per expansion (a postmaster_recipient that comes back to
 * postmaster is unknown, not a recursion).
 *
 * Pure computation over the tables: no I/O, no global state.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/users.h"
#include "mta/aliases.h"
#include "mta/router.h"
#include "store/path.h"

#define ROUTER_ADDR_MAX   320                       /* octets of an address */
#define ROUTER_MAX_STEPS  (ROUTER_MAX_TARGETS * 10) /* addresses looked at */

struct expand {
    const struct router_config *rc;
    struct route_target *v;
    size_t n, cap;
    char *path[ROUTER_MAX_DEPTH + 1];   /* "alias@domain" being expanded */
    size_t depth;
    char **done;                        /* aliases fully expanded */
    size_t ndone, capdone;
    size_t steps;
    int postmaster_used;                /* rc->postmaster already expanded */
};

/* An address split for lookups. */
struct raddr {
    char local[ROUTER_ADDR_MAX + 1];    /* as given */
    char llc[ROUTER_ADDR_MAX + 1];      /* lower-case */
    char base[ROUTER_ADDR_MAX + 1];     /* llc before the delimiter, or "" */
    char domain[ROUTER_ADDR_MAX + 1];   /* lower-case */
};

static enum route_result expand_addr(struct expand *x, const char *addr);

/* ---- helpers --------------------------------------------------------- */

static void lower_copy(char *dst, const char *src, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        dst[i] = (char)tolower((unsigned char)src[i]);
    dst[len] = '\0';
}

int router_is_local(const struct router_config *rc, const char *domain)
{
    size_t i;

    if (rc == NULL || domain == NULL || domain[0] == '\0')
        return 0;
    for (i = 0; i < rc->nlocal_domains; i++) {
        if (rc->local_domains[i] && strcasecmp(rc->local_domains[i], domain) == 0)
            return 1;
    }
    return 0;
}

/* A name usable as a directory under mail/DOMAIN/. */

/* Fill a from local (len octets) and domain.  -1 if too long. */
static int raddr_set(const struct router_config *rc, struct raddr *a,
                     const char *local, size_t llen, const char *domain)
{
    const char *delim = rc->recipient_delimiter;
    size_t dlen = strlen(domain), b;

    if (llen > ROUTER_ADDR_MAX || dlen > ROUTER_ADDR_MAX)
        return -1;
    memcpy(a->local, local, llen);
    a->local[llen] = '\0';
    lower_copy(a->llc, local, llen);
    lower_copy(a->domain, domain, dlen);
    a->base[0] = '\0';
    if (delim != NULL && delim[0] != '\0') {
        b = strcspn(a->llc, delim);
        if (b > 0 && b < llen) {
            memcpy(a->base, a->llc, b);
            a->base[b] = '\0';
        }
    }
    return 0;
}

static void target_free(struct route_target *t)
{
    free(t->addr);
    free(t->mailbox);
}

/* Same recipient: remote by address (domain any case), local by mailbox
 * and address (any case). */
static int target_same(const struct route_target *a, const struct route_target *b)
{
    const char *at1, *at2;

    if (a->kind != b->kind)
        return 0;
    if (a->kind == ROUTE_LOCAL)
        return strcmp(a->mailbox, b->mailbox) == 0 && strcasecmp(a->addr, b->addr) == 0;
    at1 = strrchr(a->addr, '@');
    at2 = strrchr(b->addr, '@');
    if (at1 == NULL || at2 == NULL)
        return strcmp(a->addr, b->addr) == 0;
    return at1 - a->addr == at2 - b->addr
           && strncmp(a->addr, b->addr, (size_t)(at1 - a->addr)) == 0
           && strcasecmp(at1, at2) == 0;
}

/* Append t (taking its strings) unless already there. */
static enum route_result target_add(struct expand *x, struct route_target *t)
{
    size_t i;

    if (t->addr == NULL || (t->kind == ROUTE_LOCAL && t->mailbox == NULL)) {
        target_free(t);
        return ROUTE_ERROR;
    }
    for (i = 0; i < x->n; i++) {
        if (target_same(&x->v[i], t)) {
            target_free(t);
            return ROUTE_OK;
        }
    }
    if (x->n >= ROUTER_MAX_TARGETS) {
        target_free(t);
        return ROUTE_TOO_MANY;
    }
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 4;
        struct route_target *v = realloc(x->v, cap * sizeof(*v));
        if (v == NULL) {
            target_free(t);
            return ROUTE_ERROR;
        }
        x->v = v;
        x->cap = cap;
    }
    x->v[x->n++] = *t;
    return ROUTE_OK;
}

static enum route_result add_remote(struct expand *x, const char *addr)
{
    struct route_target t = { ROUTE_REMOTE, strdup(addr), NULL, 0 };

    return target_add(x, &t);
}

static int key_in(char *const *v, size_t n, const char *key)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strcmp(v[i], key) == 0)
            return 1;
    }
    return 0;
}

static int done_add(struct expand *x, const char *key)
{
    char *k;

    if (x->ndone == x->capdone) {
        size_t cap = x->capdone ? x->capdone * 2 : 8;
        char **v = realloc(x->done, cap * sizeof(*v));
        if (v == NULL)
            return -1;
        x->done = v;
        x->capdone = cap;
    }
    k = strdup(key);
    if (k == NULL)
        return -1;
    x->done[x->ndone++] = k;
    return 0;
}

/* ---- users ----------------------------------------------------------- */

/* Deliver a to its user: "local@domain", else "base@domain". */
static enum route_result expand_user(struct expand *x, const struct raddr *a)
{
    char key[2 * ROUTER_ADDR_MAX + 2], buf[2 * ROUTER_ADDR_MAX + 2];
    const struct user *u;
    const char *mbase = a->llc;
    struct route_target t = { ROUTE_LOCAL, NULL, NULL, 0 };

    snprintf(key, sizeof(key), "%s@%s", a->llc, a->domain);
    u = users_find(x->rc->users, key);
    if (u == NULL && a->base[0] != '\0') {
        snprintf(key, sizeof(key), "%s@%s", a->base, a->domain);
        u = users_find(x->rc->users, key);
        mbase = a->base;
    }
    if (u == NULL || store_mailbox_rel(buf, sizeof(buf), a->domain, mbase) != 0)
        return ROUTE_UNKNOWN;        /* a name that could leave mail/ (store/path.h) */
    t.mailbox = strdup(buf);
    snprintf(buf, sizeof(buf), "%s@%s", a->local, a->domain);
    t.addr = strdup(buf);
    t.quota = u->quota > 0 ? u->quota : u->quota < 0 ? 0 : x->rc->default_quota;
    return target_add(x, &t);
}

/* ---- aliases --------------------------------------------------------- */

/* One target of alias `name` in `domain`. */
static enum route_result expand_target(struct expand *x, const char *name,
                                       const char *domain, const char *target)
{
    char full[2 * ROUTER_ADDR_MAX + 2];
    const char *at = strrchr(target, '@');
    struct raddr a;
    int n;

    if (at == NULL)
        n = snprintf(full, sizeof(full), "%s@%s", target, domain);
    else
        n = snprintf(full, sizeof(full), "%s", target);
    if (n < 0 || (size_t)n >= sizeof(full))
        return ROUTE_UNKNOWN;
    at = strrchr(full, '@');
    if (raddr_set(x->rc, &a, full, (size_t)(at - full), at + 1) != 0)
        return ROUTE_UNKNOWN;
    /* "bob: bob" (or "bob: bob+x"): the user, not the alias again */
    if (strcmp(a.domain, domain) == 0
        && (strcmp(a.llc, name) == 0 || strcmp(a.base, name) == 0)) {
        if (!store_name_ok(a.llc))
            return ROUTE_UNKNOWN;
        return expand_user(x, &a);
    }
    return expand_addr(x, full);
}

static enum route_result expand_alias(struct expand *x, const char *name,
                                      const char *domain, char *const *targets,
                                      size_t n)
{
    char key[2 * ROUTER_ADDR_MAX + 2];
    enum route_result r = ROUTE_OK;
    size_t i;

    snprintf(key, sizeof(key), "%s@%s", name, domain);
    if (key_in(x->path, x->depth, key) || x->depth >= ROUTER_MAX_DEPTH)
        return ROUTE_LOOP;
    if (key_in(x->done, x->ndone, key))
        return ROUTE_OK;
    x->path[x->depth] = strdup(key);
    if (x->path[x->depth] == NULL)
        return ROUTE_ERROR;
    x->depth++;
    for (i = 0; i < n && r == ROUTE_OK; i++)
        r = expand_target(x, name, domain, targets[i]);
    x->depth--;
    free(x->path[x->depth]);
    x->path[x->depth] = NULL;
    if (r == ROUTE_OK && done_add(x, key) != 0)
        r = ROUTE_ERROR;
    return r;
}

/* Drop the targets added since there were n0 of them. */
static void targets_truncate(struct expand *x, size_t n0)
{
    while (x->n > n0)
        target_free(&x->v[--x->n]);
}

/* postmaster@domain (RFC 5321 §4.5.1: it must be accepted): its alias;
 * if there is none, or it names someone unknown in this domain ("postmaster:
 * bob" read at a domain without bob), the user of that name, else
 * postmaster_recipient. */
static enum route_result expand_postmaster(struct expand *x, const struct raddr *a,
                                           char *const *targets, size_t n)
{
    const char *pm = x->rc->postmaster;
    size_t n0 = x->n;
    enum route_result r = ROUTE_UNKNOWN;

    if (targets != NULL && n > 0)
        r = expand_alias(x, a->llc, a->domain, targets, n);
    if (r != ROUTE_UNKNOWN)
        return r;
    targets_truncate(x, n0);
    r = expand_user(x, a);
    if (r != ROUTE_UNKNOWN || pm == NULL || pm[0] == '\0' || x->postmaster_used)
        return r;
    x->postmaster_used = 1;
    return expand_addr(x, pm);
}

/* A local-domain address: alias (full, then base), else user; postmaster
 * falls back to postmaster_recipient. */
static enum route_result expand_local(struct expand *x, const struct raddr *a)
{
    char *const *targets;
    const char *name = a->llc;
    size_t n = 0;

    if (!store_name_ok(a->llc) || !store_name_ok(a->domain))
        return ROUTE_UNKNOWN;
    targets = aliases_lookup(x->rc->aliases, a->llc, a->domain, &n);
    if (targets == NULL && a->base[0] != '\0') {
        name = a->base;
        targets = aliases_lookup(x->rc->aliases, a->base, a->domain, &n);
    }
    if (strcmp(a->llc, "postmaster") == 0)
        return expand_postmaster(x, a, targets, n);
    if (targets != NULL && n > 0)
        return expand_alias(x, name, a->domain, targets, n);
    return expand_user(x, a);
}

static enum route_result expand_addr(struct expand *x, const char *addr)
{
    const struct router_config *rc = x->rc;
    const char *at = strrchr(addr, '@');
    const char *domain;
    struct raddr a;
    size_t llen;

    if (++x->steps > ROUTER_MAX_STEPS)
        return ROUTE_TOO_MANY;
    if (strlen(addr) > ROUTER_ADDR_MAX)
        return ROUTE_UNKNOWN;
    if (at != NULL && !router_is_local(rc, at + 1)) {
        if (at == addr || at[1] == '\0')
            return ROUTE_UNKNOWN;
        return add_remote(x, addr);
    }
    if (at == NULL && rc->nlocal_domains == 0)
        return ROUTE_UNKNOWN;
    domain = at ? at + 1 : rc->local_domains[0];
    llen = at ? (size_t)(at - addr) : strlen(addr);
    if (raddr_set(rc, &a, addr, llen, domain) != 0)
        return ROUTE_UNKNOWN;
    return expand_local(x, &a);
}

/* ---- entry points ----------------------------------------------------- */

static void expand_free(struct expand *x)
{
    size_t i;

    for (i = 0; i < x->depth; i++)
        free(x->path[i]);
    for (i = 0; i < x->ndone; i++)
        free(x->done[i]);
    free(x->done);
}

enum route_result router_expand(const struct router_config *rc, const char *address,
                                struct route_target **out, size_t *n)
{
    struct expand x;
    enum route_result r;

    *out = NULL;
    *n = 0;
    if (rc == NULL || address == NULL || address[0] == '\0')
        return ROUTE_UNKNOWN;
    memset(&x, 0, sizeof(x));
    x.rc = rc;
    r = expand_addr(&x, address);
    expand_free(&x);
    if (r == ROUTE_OK && x.n == 0)
        r = ROUTE_UNKNOWN;
    if (r != ROUTE_OK) {
        router_free_targets(x.v, x.n);
        return r;
    }
    *out = x.v;
    *n = x.n;
    return ROUTE_OK;
}

void router_free_targets(struct route_target *t, size_t n)
{
    size_t i;

    if (t == NULL)
        return;
    for (i = 0; i < n; i++)
        target_free(&t[i]);
    free(t);
}
