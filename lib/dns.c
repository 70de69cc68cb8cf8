/*
 * lib/dns.c — the daemon's libunbound context: async mode (threads, never
 * fork), its fd watched by the loop, answers delivered through ub_process.
 * Owns the query table that lets a caller cancel a query it no longer
 * wants; a cancelled query's callback never runs.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <event2/event.h>
#include <unbound.h>

#include "lib/dns.h"
#include "lib/fsutil.h"
#include "lib/log.h"

struct dns_query {
    struct dns *dns;
    dns_cb cb;
    void *arg;
    int ub_id;
    struct dns_query *next, *prev;
};

struct dns {
    struct ub_ctx *ctx;
    struct event *ev;
    struct dns_query *queries;   /* in flight */
};

static void query_unlink(struct dns *d, struct dns_query *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        d->queries = q->next;
    if (q->next)
        q->next->prev = q->prev;
}

static void on_answer(void *arg, int err, struct ub_result *result)
{
    struct dns_query *q = arg;
    query_unlink(q->dns, q);
    dns_cb cb = q->cb;
    void *cbarg = q->arg;
    free(q);
    cb(cbarg, err, result);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct dns *d = arg;
    int rc = ub_process(d->ctx);
    if (rc != 0)
        log_warn("dns: ub_process: %s", ub_strerror(rc));
}

#define DNS_CONFIG_MAX (4 * 1024 * 1024)

/* 1 if the first meaningful line of an unbound.conf is a clause header
 * ("server:", "forward-zone:" ...), which libunbound requires. */
static int starts_with_clause(const char *text)
{
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (*p != '#')
            break;
        while (*p && *p != '\n')
            p++;
    }
    const char *q = p;
    while (isalnum((unsigned char)*q) || *q == '-')
        q++;
    if (q == p || *q != ':')
        return 0;
    for (q++; *q == ' ' || *q == '\t' || *q == '\r'; q++)
        ;
    return *q == '\n' || *q == '\0' || *q == '#';
}

/* libunbound reads options only inside a clause.  A resolver_config that
 * starts directly with options (`local-zone: "." static`, as the tests and
 * the demo write it) is handed over with "server:" in front, through a
 * memfd; *tmpfd is that memfd (to close after), or -1 when the file is
 * used as it is.  The path to give libunbound goes to buf. */
static int config_path(const char *conf, char *buf, size_t len, int *tmpfd,
                       char *err, size_t errlen)
{
    char *text;
    size_t n;
    *tmpfd = -1;
    if (fs_read_file(conf, DNS_CONFIG_MAX, &text, &n) < 0) {
        snprintf(err, errlen, "resolver_config %s: %s", conf, strerror(errno));
        return -1;
    }
    if (starts_with_clause(text)) {
        free(text);
        snprintf(buf, len, "%s", conf);
        return 0;
    }
    int fd = memfd_create("hato-resolver-config", MFD_CLOEXEC);
    if (fd < 0 || fs_write_all(fd, "server:\n", 8) < 0 || fs_write_all(fd, text, n) < 0) {
        snprintf(err, errlen, "resolver_config %s: %s", conf, strerror(errno));
        free(text);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    free(text);
    *tmpfd = fd;
    snprintf(buf, len, "/proc/self/fd/%d", fd);
    return 0;
}

static int configure(struct ub_ctx *ctx, const char *conf, char *err, size_t errlen)
{
    int rc;
    if (conf && *conf) {
        char path[4200];
        int tmpfd;
        if (config_path(conf, path, sizeof path, &tmpfd, err, errlen) < 0)
            return -1;
        rc = ub_ctx_config(ctx, path);
        if (tmpfd >= 0)
            close(tmpfd);
        if (rc != 0) {
            snprintf(err, errlen, "resolver_config %s: %s%s", conf, ub_strerror(rc),
                     tmpfd >= 0 ? " (read with a \"server:\" line added in front, so"
                                  " libunbound's line numbers are one higher)" : "");
            return -1;
        }
    } else {
        rc = ub_ctx_resolvconf(ctx, NULL);
        if (rc == 0)
            rc = ub_ctx_hosts(ctx, NULL);
        if (rc != 0) {
            snprintf(err, errlen, "system resolver settings: %s", ub_strerror(rc));
            return -1;
        }
    }
    rc = ub_ctx_async(ctx, 1);
    if (rc != 0) {
        snprintf(err, errlen, "libunbound async mode: %s", ub_strerror(rc));
        return -1;
    }
    return 0;
}

struct dns *dns_new(struct event_base *base, const char *resolver_config,
                    char *err, size_t errlen)
{
    struct dns *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->ctx = ub_ctx_create();
    if (!d->ctx) {
        snprintf(err, errlen, "cannot create a libunbound context");
        free(d);
        return NULL;
    }
    /* A failed ub_ctx_config leaves the context unusable: we stop here. */
    if (configure(d->ctx, resolver_config, err, errlen) < 0) {
        ub_ctx_delete(d->ctx);
        free(d);
        return NULL;
    }
    d->ev = event_new(base, ub_fd(d->ctx), EV_READ | EV_PERSIST, on_readable, d);
    if (!d->ev || event_add(d->ev, NULL) < 0) {
        snprintf(err, errlen, "cannot watch the resolver fd");
        dns_free(d);
        return NULL;
    }
    return d;
}

int dns_resolve(struct dns *d, const char *name, int rrtype, dns_cb cb, void *arg)
{
    struct dns_query *q = calloc(1, sizeof *q);
    if (!q)
        return -1;
    q->dns = d;
    q->cb = cb;
    q->arg = arg;
    int rc = ub_resolve_async(d->ctx, name, rrtype, 1 /* IN */, q, on_answer, &q->ub_id);
    if (rc != 0) {
        log_warn("dns: %s: %s", name, ub_strerror(rc));
        free(q);
        return -1;
    }
    q->next = d->queries;
    if (d->queries)
        d->queries->prev = q;
    d->queries = q;
    return q->ub_id + 1;   /* > 0 even when libunbound's id is 0 */
}

void dns_cancel(struct dns *d, int id)
{
    for (struct dns_query *q = d->queries; q; q = q->next) {
        if (q->ub_id == id - 1) {
            ub_cancel(d->ctx, q->ub_id);
            query_unlink(d, q);
            free(q);
            return;
        }
    }
}

void dns_free(struct dns *d)
{
    if (!d)
        return;
    while (d->queries) {
        struct dns_query *q = d->queries;
        ub_cancel(d->ctx, q->ub_id);
        query_unlink(d, q);
        free(q);
    }
    if (d->ev)
        event_free(d->ev);
    ub_ctx_delete(d->ctx);
    free(d);
}
