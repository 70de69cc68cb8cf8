/*
 * mta/listen.c — TCP listeners and per-client connection limits (count and
 * rate, like Postfix's anvil).  Owns the listening sockets, the per-client
 * counters (one per IPv4 address, one per IPv6 smtpd_client_ipv6_prefix,
 * /64 by default: a client holds a whole /64) and the pause-on-EMFILE
 * timer; a session is handed to
 * proto/smtp_server.c or proto/pop3.c as soon as it is admitted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "lib/hash.h"
#include "lib/iplist.h"
#include "lib/log.h"
#include "lib/timeutil.h"
#include "mta/daemon.h"
#include "mta/listen.h"
#include "proto/pop3.h"
#include "proto/smtp_server.h"

#define LISTEN_BACKLOG   4096
#define LISTEN_BUCKETS   1024
#define LISTEN_MAX       64

struct client {                 /* anvil entry for one IPv4 address or IPv6 prefix */
    char ip[64];                /* ip_client_key(): "192.0.2.1", "2001:db8::/64" */
    long long count;            /* connections open */
    long long rate;             /* connections in the current window */
    long long window_start;     /* seconds */
    struct client *next;
};

enum service_proto { SVC_SMTP, SVC_POP3 };

struct listener {
    struct evconnlistener *ev;
    enum service_proto proto;
    enum smtp_mode mode;        /* SVC_SMTP */
    int implicit_tls;           /* SVC_POP3: pop3s */
    struct listeners *owner;
};

struct conn_ref {
    struct listeners *ls;
    struct client *c;
};

struct listeners {
    struct hatod *d;
    struct listener l[LISTEN_MAX];
    size_t n;
    struct client *buckets[LISTEN_BUCKETS];
    struct event *resume;
    struct event *sweep;        /* drops idle per-IP entries */
    int disabled;
};

static size_t ip_hash(const char *ip)
{
    return (size_t)(hash_str(ip) % LISTEN_BUCKETS);
}

static struct client *client_get(struct listeners *ls, const char *ip)
{
    size_t h = ip_hash(ip);
    for (struct client *c = ls->buckets[h]; c; c = c->next)
        if (!strcmp(c->ip, ip))
            return c;
    struct client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    snprintf(c->ip, sizeof c->ip, "%s", ip);
    c->next = ls->buckets[h];
    ls->buckets[h] = c;
    return c;
}

static void client_put(struct listeners *ls, struct client *c)
{
    long long now = time_mono_us() / 1000000;
    if (c->count > 0 || now - c->window_start < ls->d->cfg.anvil_rate_time_unit)
        return;
    struct client **pp = &ls->buckets[ip_hash(c->ip)];
    while (*pp && *pp != c)
        pp = &(*pp)->next;
    if (*pp)
        *pp = c->next;
    free(c);
}

/* Free every entry with no connection and an expired rate window, so the
 * table holds only clients seen within the last anvil_rate_time_unit. */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct listeners *ls = arg;
    long long now = time_mono_us() / 1000000;
    for (size_t b = 0; b < LISTEN_BUCKETS; b++) {
        struct client **pp = &ls->buckets[b];
        while (*pp) {
            struct client *c = *pp;
            if (c->count == 0 && now - c->window_start >= ls->d->cfg.anvil_rate_time_unit) {
                *pp = c->next;
                free(c);
            } else {
                pp = &c->next;
            }
        }
    }
}

static void on_session_close(void *arg)
{
    struct conn_ref *r = arg;
    r->c->count--;
    client_put(r->ls, r->c);
    free(r);
}

/* Over a limit: one 421 line (POP3: -ERR), best effort, and close.  A
 * pop3s client gets no line: it expects a TLS handshake. */
static void refuse(evutil_socket_t fd, const struct listener *l, const char *host, const char *ip)
{
    char line[512];
    int n = 0;
    if (l->proto == SVC_SMTP)
        n = snprintf(line, sizeof line, "421 4.7.0 %s Error: too many connections from %s\r\n",
                     host, ip);
    else if (!l->implicit_tls)
        n = snprintf(line, sizeof line, "-ERR [SYS/TEMP] Too many connections from %s\r\n", ip);
    if (n > 0 && send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        log_debug("refuse %s: %s", ip, strerror(errno));
    close(fd);
}

static int over_limits(struct listeners *ls, struct client *c)
{
    const struct hato_config *cfg = &ls->d->cfg;
    long long now = time_mono_us() / 1000000;
    if (now - c->window_start >= cfg->anvil_rate_time_unit) {
        c->window_start = now;
        c->rate = 0;
    }
    if (cfg->smtpd_client_connection_count_limit > 0 &&
        c->count >= cfg->smtpd_client_connection_count_limit) {
        log_warn("connection count limit %lld exceeded for %s",
                 cfg->smtpd_client_connection_count_limit, c->ip);
        return 1;
    }
    if (cfg->smtpd_client_connection_rate_limit > 0 &&
        c->rate >= cfg->smtpd_client_connection_rate_limit) {
        log_warn("connection rate limit %lld exceeded for %s",
                 cfg->smtpd_client_connection_rate_limit, c->ip);
        return 1;
    }
    return 0;
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct listener *l = arg;
    struct listeners *ls = l->owner;
    struct hatod *d = ls->d;
    char ip[64];
    ip_client_key(sa, (int)d->cfg.smtpd_client_ipv6_prefix, ip, sizeof ip);
    struct client *c = client_get(ls, ip);
    struct conn_ref *r = malloc(sizeof *r);
    if (!c || !r) {
        free(r);
        close(fd);
        return;
    }
    int exempt = d->relay && iplist_match(d->relay, sa);
    if (!exempt && over_limits(ls, c)) {
        free(r);
        refuse(fd, l, d->cfg.myhostname, ip);
        client_put(ls, c);
        return;
    }
    c->count++;
    c->rate++;
    r->ls = ls;
    r->c = c;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (l->proto == SVC_POP3)
        pop3_session_start(d->pop3, fd, l->implicit_tls, sa, (socklen_t)salen, on_session_close, r);
    else
        smtp_session_start(d->smtp, fd, NULL, l->mode, sa, (socklen_t)salen, 0, on_session_close,
                           r);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct listeners *ls = arg;
    if (ls->disabled)
        return;
    for (size_t i = 0; i < ls->n; i++)
        evconnlistener_enable(ls->l[i].ev);
}

static void on_accept_error(struct evconnlistener *evl, void *arg)
{
    struct listener *l = arg;
    struct listeners *ls = l->owner;
    int e = EVUTIL_SOCKET_ERROR();
    if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
        log_warn("accept: %s: pausing the listeners for 1 s", strerror(e));
        for (size_t i = 0; i < ls->n; i++)
            evconnlistener_disable(ls->l[i].ev);
        struct timeval tv = { 1, 0 };
        evtimer_add(ls->resume, &tv);
        return;
    }
    log_warn("accept: %s", strerror(e));
}

/* Split "host:port" / "[v6]:port". */
static int split_hostport(const char *item, char *host, size_t hlen, char *port, size_t plen)
{
    const char *colon = strrchr(item, ':');
    if (!colon)
        return -1;
    const char *h = item;
    size_t n = (size_t)(colon - item);
    if (item[0] == '[' && n >= 2 && item[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n >= hlen)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    snprintf(port, plen, "%s", colon + 1);
    return 0;
}

static int bind_one(struct listeners *ls, const char *item, enum service_proto proto,
                    enum smtp_mode mode, int implicit_tls)
{
    char host[256], port[16];
    struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    if (split_hostport(item, host, sizeof host, port, sizeof port) < 0) {
        log_err("%s: bad listen address", item);
        return -1;
    }
    int rc = getaddrinfo(*host ? host : NULL, port, &hints, &res);
    if (rc != 0) {
        log_err("%s: %s", item, gai_strerror(rc));
        return -1;
    }
    int ok = -1;
    for (struct addrinfo *ai = res; ai && ls->n < LISTEN_MAX; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
            log_err("cannot listen on %s: %s", item, strerror(errno));
            close(fd);
            continue;
        }
        struct listener *l = &ls->l[ls->n];
        l->proto = proto;
        l->mode = mode;
        l->implicit_tls = implicit_tls;
        l->owner = ls;
        l->ev = evconnlistener_new(ls->d->base, on_accept, l,
                                   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
        if (!l->ev) {
            close(fd);
            continue;
        }
        evconnlistener_set_error_cb(l->ev, on_accept_error);
        ls->n++;
        ok = 0;
    }
    freeaddrinfo(res);
    return ok;
}

struct listeners *listeners_open(struct hatod *d)
{
    struct listeners *ls = calloc(1, sizeof *ls);
    if (!ls)
        return NULL;
    ls->d = d;
    ls->resume = evtimer_new(d->base, on_resume, ls);
    ls->sweep = event_new(d->base, -1, EV_PERSIST, on_sweep, ls);
    struct timeval every = { d->cfg.anvil_rate_time_unit > 0 ? d->cfg.anvil_rate_time_unit : 60, 0 };
    if (!ls->resume || !ls->sweep || event_add(ls->sweep, &every) < 0)
        goto fail;
    /* the services: which addresses, and how a session starts there */
    const struct {
        char **addrs;
        size_t n;
        enum service_proto proto;
        enum smtp_mode mode;     /* SMTP_MODE_SUBMISSIONS: implicit TLS */
        int implicit_tls;        /* POP3: pop3s */
    } services[] = {
        { d->cfg.smtp_listen, d->cfg.nsmtp_listen, SVC_SMTP, SMTP_MODE_MX, 0 },
        { d->cfg.submission_listen, d->cfg.nsubmission_listen, SVC_SMTP, SMTP_MODE_SUBMISSION, 0 },
        { d->cfg.smtps_listen, d->cfg.nsmtps_listen, SVC_SMTP, SMTP_MODE_SUBMISSIONS, 1 },
        { d->cfg.pop3_listen, d->cfg.npop3_listen, SVC_POP3, SMTP_MODE_MX, 0 },
        { d->cfg.pop3s_listen, d->cfg.npop3s_listen, SVC_POP3, SMTP_MODE_MX, 1 },
    };
    for (size_t k = 0; k < sizeof services / sizeof services[0]; k++)
        for (size_t i = 0; i < services[k].n; i++)
            if (bind_one(ls, services[k].addrs[i], services[k].proto, services[k].mode,
                         services[k].implicit_tls) < 0)
                goto fail;
    return ls;
fail:
    listeners_free(ls);
    return NULL;
}

void listeners_disable(struct listeners *ls)
{
    if (!ls)
        return;
    ls->disabled = 1;
    for (size_t i = 0; i < ls->n; i++)
        evconnlistener_disable(ls->l[i].ev);
}

void listeners_free(struct listeners *ls)
{
    if (!ls)
        return;
    for (size_t i = 0; i < ls->n; i++)
        evconnlistener_free(ls->l[i].ev);
    for (size_t b = 0; b < LISTEN_BUCKETS; b++) {
        while (ls->buckets[b]) {
            struct client *c = ls->buckets[b];
            ls->buckets[b] = c->next;
            free(c);
        }
    }
    if (ls->resume)
        event_free(ls->resume);
    if (ls->sweep)
        event_free(ls->sweep);
    free(ls);
}
