/*
 * mta/mx.c — next hop → ordered addresses (contract in mx.h): MX query,
 * null MX, implicit MX, A and AAAA per MX host in parallel, the address
 * order and limit.  Owns the lookups in flight and their DNS queries.
 * Must never block, call back from inside mx_lookup(), or let a DNS
 * answer reach a lookup that was cancelled (dns_cancel guarantees that the
 * embedded query records below are never touched after mx_cancel).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <unbound.h>

#include "lib/dns.h"
#include "mta/mx.h"

#define RR_A 1
#define RR_MX 15
#define RR_AAAA 28
#define RCODE_SERVFAIL 2

struct mx_lookup;

/* One DNS query of a lookup: host < 0 is the MX query. */
struct qref {
    struct mx_lookup *lk;
    int host;
    int rrtype;
    int id;                      /* dns_resolve id while in flight, else 0 */
    int depth;                   /* CNAMEs followed */
};

/* libunbound answers a CNAME in local-data without following it (the
 * fake Internet of the tests; a recursive answer comes chased already):
 * we follow at most this many. */
#define MX_CNAME_MAX 8

struct mx_host {
    char name[256];
    int pref;
    uint32_t key;                /* random order among equal preferences */
    struct qref qa, qaaaa;
    int pending;                 /* queries in flight */
    int temp;                    /* a query failed temporarily */
    size_t n;
    struct mx_addr addrs[MX_ADDR_MAX];
};

struct mx_lookup {
    uint64_t id;
    struct mx *m;
    mx_cb cb;
    void *arg;
    struct mx_opts o;
    char name[256];
    struct qref qmx;
    struct mx_host *hosts;       /* nhosts of them */
    size_t nhosts;
    struct event ev_timer, ev_done;
    struct mx_result res;
    int finished;
    struct mx_lookup *next, *prev;
};

struct mx {
    struct event_base *base;
    struct dns *dns;
    uint64_t next_id;
    size_t n;
    struct mx_lookup *list;
};

static uint32_t rnd32(void)
{
    return arc4random();
}

/* ------------------------------------------------------------ next hops */

static int parse_port(const char *p, int *port)
{
    char *end;
    long v = strtol(p, &end, 10);
    if (!*p || *end || v < 1 || v > 65535 || !isdigit((unsigned char)*p))
        return -1;
    *port = (int)v;
    return 0;
}

int mx_parse_nexthop(const char *nh, char *host, size_t hostlen, int *literal, int *port)
{
    *literal = 0;
    *port = 0;
    const char *end;
    if (!nh || !*nh)
        return -1;
    if (nh[0] == '[') {
        end = strchr(nh, ']');
        if (!end || end == nh + 1)
            return -1;
        *literal = 1;
        if ((size_t)(end - nh - 1) >= hostlen)
            return -1;
        memcpy(host, nh + 1, (size_t)(end - nh - 1));
        host[end - nh - 1] = '\0';
        end++;
        if (*end == ':')
            return parse_port(end + 1, port);
        return *end ? -1 : 0;
    }
    end = strchr(nh, ':');
    size_t len = end ? (size_t)(end - nh) : strlen(nh);
    if (len == 0 || len >= hostlen || strchr(nh, '[') || strchr(nh, ']'))
        return -1;
    memcpy(host, nh, len);
    host[len] = '\0';
    return end ? parse_port(end + 1, port) : 0;
}

static int host_name_ok(const char *s)
{
    if (!*s || strlen(s) > 253)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.' && *s != '_')
            return 0;
    return 1;
}

/* ------------------------------------------------------------ finishing */

static void cancel_queries(struct mx_lookup *lk)
{
    if (lk->qmx.id) {
        dns_cancel(lk->m->dns, lk->qmx.id);
        lk->qmx.id = 0;
    }
    for (size_t i = 0; i < lk->nhosts; i++) {
        struct mx_host *h = &lk->hosts[i];
        if (h->qa.id)
            dns_cancel(lk->m->dns, h->qa.id);
        if (h->qaaaa.id)
            dns_cancel(lk->m->dns, h->qaaaa.id);
        h->qa.id = h->qaaaa.id = 0;
        h->pending = 0;
    }
}

static void lookup_free(struct mx_lookup *lk)
{
    struct mx *m = lk->m;
    cancel_queries(lk);
    event_del(&lk->ev_timer);
    event_del(&lk->ev_done);
    if (lk->prev)
        lk->prev->next = lk->next;
    else
        m->list = lk->next;
    if (lk->next)
        lk->next->prev = lk->prev;
    m->n--;
    free(lk->hosts);
    free(lk);
}

/* The result is in lk->res: report it from the loop (never from inside
 * mx_lookup or a libunbound callback). */
static void finish(struct mx_lookup *lk)
{
    if (lk->finished)
        return;
    lk->finished = 1;
    cancel_queries(lk);
    event_del(&lk->ev_timer);
    event_active(&lk->ev_done, 0, 0);
}

static void fail(struct mx_lookup *lk, enum mx_status st, const char *dsn, const char *fmt,
                 const char *what)
{
    lk->res.status = st;
    lk->res.n = 0;
    snprintf(lk->res.dsn, sizeof lk->res.dsn, "%s", dsn);
    snprintf(lk->res.text, sizeof lk->res.text, fmt, what);
    finish(lk);
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct mx_lookup *lk = arg;
    (void)fd;
    (void)what;
    mx_cb cb = lk->cb;
    void *cbarg = lk->arg;
    uint64_t id = lk->id;
    /* the result outlives the lookup for the call: the callback may cancel
     * or start lookups, or free the whole resolver */
    struct mx_result *r = malloc(sizeof *r);
    if (r)
        memcpy(r, &lk->res, sizeof *r);
    lookup_free(lk);
    if (!r) {
        static struct mx_result oom = { .status = MX_TEMP, .dsn = "4.3.0", .text = "out of memory" };
        cb(cbarg, id, &oom);
        return;
    }
    cb(cbarg, id, r);
    free(r);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mx_lookup *lk = arg;
    fail(lk, MX_TEMP, "4.4.3", "DNS lookup for %s timed out", lk->name);
}

/* ------------------------------------------------------------ addresses */

static void shuffle(struct mx_addr *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = arc4random_uniform((uint32_t)i);
        struct mx_addr t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* One host's addresses in the order the family preference asks for. */
static void order_host(struct mx_host *h, enum mx_family fam)
{
    if (fam == MX_FAMILY_ANY) {
        shuffle(h->addrs, h->n);
        return;
    }
    int first = fam == MX_FAMILY_IPV6 ? AF_INET6 : AF_INET;
    struct mx_addr tmp[MX_ADDR_MAX];
    size_t k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < h->n; i++)
            if ((h->addrs[i].sa.ss_family == first) == (pass == 0))
                tmp[k++] = h->addrs[i];
    memcpy(h->addrs, tmp, k * sizeof tmp[0]);
}

static int seen(const struct mx_result *r, const char *ip)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->addrs[i].ip, ip))
            return 1;
    return 0;
}

static size_t max_addrs(const struct mx_lookup *lk)
{
    int m = lk->o.max_addrs > 0 ? lk->o.max_addrs : MX_ADDR_LIMIT;
    return m > MX_ADDR_MAX ? MX_ADDR_MAX : (size_t)m;
}

static void build_result(struct mx_lookup *lk)
{
    struct mx_result *r = &lk->res;
    size_t limit = max_addrs(lk);
    int temp = 0;
    r->n = 0;
    for (size_t i = 0; i < lk->nhosts && r->n < limit; i++) {
        struct mx_host *h = &lk->hosts[i];
        temp |= h->temp;
        order_host(h, lk->o.family);
        for (size_t k = 0; k < h->n && r->n < limit; k++)
            if (!seen(r, h->addrs[k].ip))
                r->addrs[r->n++] = h->addrs[k];
    }
    if (r->n > 0) {
        r->status = MX_OK;
        r->tempfail = temp;
        finish(lk);
    } else if (temp) {
        fail(lk, MX_TEMP, "4.4.3", "no address for the mail exchangers of %s"
             " (temporary DNS failure)", lk->name);
    } else {
        fail(lk, MX_PERM, "5.4.4", "Host or domain name not found: no address for %s"
             " or its mail exchangers", lk->name);
    }
}

/* Done when every host up to the one that fills the limit has answered
 * (a slow backup MX does not hold up a full list). */
static void try_finish(struct mx_lookup *lk)
{
    size_t have = 0, limit = max_addrs(lk);
    for (size_t i = 0; i < lk->nhosts; i++) {
        if (lk->hosts[i].pending)
            return;
        have += lk->hosts[i].n;
        if (have >= limit)
            break;
    }
    build_result(lk);
}

static void add_addr(struct mx_lookup *lk, struct mx_host *h, int family, const void *raw)
{
    if (h->n >= MX_ADDR_MAX)
        return;
    struct mx_addr *a = &h->addrs[h->n];
    memset(a, 0, sizeof *a);
    int port = lk->o.port > 0 ? lk->o.port : 25;
    if (family == AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)&a->sa;
        s->sin_family = AF_INET;
        s->sin_port = htons((uint16_t)port);
        memcpy(&s->sin_addr, raw, 4);
        a->salen = sizeof *s;
        inet_ntop(AF_INET, raw, a->ip, sizeof a->ip);
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&a->sa;
        s->sin6_family = AF_INET6;
        s->sin6_port = htons((uint16_t)port);
        memcpy(&s->sin6_addr, raw, 16);
        a->salen = sizeof *s;
        inet_ntop(AF_INET6, raw, a->ip, sizeof a->ip);
    }
    size_t hl = strnlen(h->name, sizeof a->host - 1);
    memcpy(a->host, h->name, hl);
    a->host[hl] = '\0';
    a->pref = h->pref;
    h->n++;
}

static void on_addr(void *arg, int err, struct ub_result *r);

static int answer_temp(int err, const struct ub_result *r)
{
    return err != 0 || !r || r->rcode == RCODE_SERVFAIL || r->bogus ||
           (r->rcode != 0 && !r->nxdomain);
}

/* A CNAME answer without data: ask again for its target.  1 if asked. */
static int follow_cname(struct qref *q, const struct ub_result *r, const char *qname)
{
    if (!r->canonname || !*r->canonname || q->depth >= MX_CNAME_MAX)
        return 0;
    size_t cl = strlen(r->canonname), ql = strlen(qname);
    if (r->canonname[cl - 1] == '.')
        cl--;
    if (ql > 0 && qname[ql - 1] == '.')
        ql--;
    if (cl == ql && !strncasecmp(r->canonname, qname, cl))
        return 0;
    int id = dns_resolve(q->lk->m->dns, r->canonname, q->rrtype, on_addr, q);
    if (id < 0)
        return 0;
    q->id = id;
    q->depth++;
    return 1;
}

static void on_addr(void *arg, int err, struct ub_result *r)
{
    struct qref *q = arg;
    struct mx_lookup *lk = q->lk;
    struct mx_host *h = &lk->hosts[q->host];
    q->id = 0;
    if (!answer_temp(err, r) && !r->havedata && !r->nxdomain && follow_cname(q, r, r->qname)) {
        ub_resolve_free(r);
        return;
    }
    h->pending--;
    if (answer_temp(err, r)) {
        h->temp = 1;
    } else if (r->havedata) {
        int fam = q->rrtype == RR_A ? AF_INET : AF_INET6;
        int want = fam == AF_INET ? 4 : 16;
        for (int i = 0; r->data[i]; i++)
            if (r->len[i] == want)
                add_addr(lk, h, fam, r->data[i]);
    }
    if (r)
        ub_resolve_free(r);
    try_finish(lk);
}

static int start_host(struct mx_lookup *lk, size_t i)
{
    struct mx_host *h = &lk->hosts[i];
    struct qref *qs[2] = { &h->qa, &h->qaaaa };
    int types[2] = { RR_A, RR_AAAA };
    for (int k = 0; k < 2; k++) {
        qs[k]->lk = lk;
        qs[k]->host = (int)i;
        qs[k]->rrtype = types[k];
        qs[k]->id = dns_resolve(lk->m->dns, h->name, types[k], on_addr, qs[k]);
        if (qs[k]->id < 0) {
            qs[k]->id = 0;
            h->temp = 1;
        } else {
            h->pending++;
        }
    }
    return 0;
}

static void start_hosts(struct mx_lookup *lk)
{
    for (size_t i = 0; i < lk->nhosts; i++)
        start_host(lk, i);
    try_finish(lk);
}

/* ------------------------------------------------------------ MX records */

/* Wire-format name (uncompressed, as libunbound hands rdata) to text
 * without the final dot; "" for the root.  -1 if malformed. */
static int wire_name(const unsigned char *p, size_t len, char *out, size_t outlen)
{
    size_t i = 0, o = 0;
    while (i < len) {
        size_t l = p[i++];
        if (l == 0) {
            out[o] = '\0';
            return 0;
        }
        if (l > 63 || i + l > len || o + l + 2 > outlen)
            return -1;
        if (o > 0)
            out[o++] = '.';
        memcpy(out + o, p + i, l);
        o += l;
        i += l;
    }
    return -1;
}

static int host_cmp(const void *a, const void *b)
{
    const struct mx_host *x = a, *y = b;
    if (x->pref != y->pref)
        return x->pref < y->pref ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key;
}

/* Parse the MX answer into lk->hosts.  Returns the number of records
 * parsed, and *null = 1 when the only one is "0 ." (RFC 7505). */
static int parse_mx(struct mx_lookup *lk, const struct ub_result *r, int *null)
{
    size_t cnt = 0;
    *null = 0;
    while (r->data[cnt])
        cnt++;
    lk->hosts = calloc(cnt < MX_HOSTS_MAX ? (cnt ? cnt : 1) : MX_HOSTS_MAX, sizeof *lk->hosts);
    if (!lk->hosts)
        return -1;
    int records = 0, roots = 0;
    for (size_t i = 0; i < cnt; i++) {
        char name[256];
        if (r->len[i] < 3 || wire_name((unsigned char *)r->data[i] + 2, (size_t)r->len[i] - 2,
                                       name, sizeof name) < 0)
            continue;
        records++;
        int pref = ((unsigned char)r->data[i][0] << 8) | (unsigned char)r->data[i][1];
        if (!*name) {
            roots++;
            continue;            /* "." among real MX records is skipped */
        }
        if (!host_name_ok(name) || lk->nhosts >= MX_HOSTS_MAX)
            continue;
        struct mx_host *h = &lk->hosts[lk->nhosts++];
        snprintf(h->name, sizeof h->name, "%s", name);
        h->pref = pref;
        h->key = rnd32();
    }
    *null = records == 1 && roots == 1;
    qsort(lk->hosts, lk->nhosts, sizeof *lk->hosts, host_cmp);
    return records;
}

static int implicit_mx(struct mx_lookup *lk)
{
    if (!lk->hosts)
        lk->hosts = calloc(1, sizeof *lk->hosts);
    if (!lk->hosts)
        return -1;
    snprintf(lk->hosts[0].name, sizeof lk->hosts[0].name, "%s", lk->name);
    lk->nhosts = 1;
    return 0;
}

static void on_mx(void *arg, int err, struct ub_result *r)
{
    struct qref *q = arg;
    struct mx_lookup *lk = q->lk;
    q->id = 0;
    if (answer_temp(err, r)) {
        const char *why = err ? ub_strerror(err) : r && r->bogus ? "DNSSEC validation failed"
                                                             : "server failure";
        char text[sizeof lk->name + 64];
        snprintf(text, sizeof text, "%s (%s)", lk->name, why);
        fail(lk, MX_TEMP, "4.4.3", "DNS lookup of MX for %s failed", text);
    } else if (r->nxdomain) {
        fail(lk, MX_PERM, "5.4.4", "Host or domain name not found: %s (NXDOMAIN)", lk->name);
    } else {
        int null = 0, n = r->havedata ? parse_mx(lk, r, &null) : 0;
        if (n < 0)
            fail(lk, MX_TEMP, "4.3.0", "out of memory resolving %s", lk->name);
        else if (null)
            fail(lk, MX_NULL, "5.1.10", "Domain %s does not accept mail (null MX)", lk->name);
        else if (lk->nhosts == 0 && n > 0)
            fail(lk, MX_PERM, "5.4.4", "no usable MX host name for %s", lk->name);
        else if (lk->nhosts == 0 && implicit_mx(lk) < 0)
            fail(lk, MX_TEMP, "4.3.0", "out of memory resolving %s", lk->name);
        else
            start_hosts(lk);
    }
    if (r)
        ub_resolve_free(r);
}

/* ------------------------------------------------------------ lookups */

/* "[192.0.2.1]", "[IPv6:2001:db8::1]", "[::1]": the address itself. */
static int literal_ip(struct mx_lookup *lk)
{
    const char *s = lk->name;
    if (!strncasecmp(s, "IPv6:", 5))
        s += 5;
    unsigned char raw[16];
    int fam = inet_pton(AF_INET, s, raw) == 1 ? AF_INET :
              inet_pton(AF_INET6, s, raw) == 1 ? AF_INET6 : 0;
    if (!fam)
        return 0;
    if (implicit_mx(lk) < 0)
        return -1;
    snprintf(lk->hosts[0].name, sizeof lk->hosts[0].name, "%s", s);
    add_addr(lk, &lk->hosts[0], fam, raw);
    return 1;
}

uint64_t mx_lookup(struct mx *m, const char *nexthop, const struct mx_opts *o, mx_cb cb,
                   void *arg)
{
    int literal, port;
    struct mx_lookup *lk = calloc(1, sizeof *lk);
    if (!lk)
        return 0;
    if (mx_parse_nexthop(nexthop, lk->name, sizeof lk->name, &literal, &port) < 0) {
        free(lk);
        return 0;
    }
    if (o)
        lk->o = *o;
    if (port)
        lk->o.port = port;
    lk->m = m;
    lk->cb = cb;
    lk->arg = arg;
    lk->id = ++m->next_id;
    evtimer_assign(&lk->ev_timer, m->base, on_timeout, lk);
    event_assign(&lk->ev_done, m->base, -1, 0, on_done, lk);
    lk->next = m->list;
    if (m->list)
        m->list->prev = lk;
    m->list = lk;
    m->n++;
    int ip = literal ? literal_ip(lk) : 0;
    if (ip < 0 || (!ip && !host_name_ok(lk->name))) {
        lookup_free(lk);
        return 0;
    }
    int ms = lk->o.timeout_ms > 0 ? lk->o.timeout_ms : MX_TIMEOUT_MS;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    event_add(&lk->ev_timer, &tv);
    uint64_t id = lk->id;
    if (ip) {
        build_result(lk);
    } else if (literal) {
        if (implicit_mx(lk) < 0) {
            lookup_free(lk);
            return 0;
        }
        start_hosts(lk);
    } else {
        lk->qmx.lk = lk;
        lk->qmx.host = -1;
        lk->qmx.rrtype = RR_MX;
        lk->qmx.id = dns_resolve(m->dns, lk->name, RR_MX, on_mx, &lk->qmx);
        if (lk->qmx.id < 0) {
            lk->qmx.id = 0;
            fail(lk, MX_TEMP, "4.4.3", "cannot start the DNS lookup of %s", lk->name);
        }
    }
    return id;
}

void mx_cancel(struct mx *m, uint64_t id)
{
    for (struct mx_lookup *lk = m->list; lk; lk = lk->next)
        if (lk->id == id) {
            lookup_free(lk);
            return;
        }
}

size_t mx_pending(const struct mx *m)
{
    return m->n;
}

struct mx *mx_new(struct event_base *base, struct dns *dns)
{
    struct mx *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->base = base;
    m->dns = dns;
    return m;
}

void mx_free(struct mx *m)
{
    if (!m)
        return;
    while (m->list)
        lookup_free(m->list);
    free(m);
}
