/*
 * t/unit/test_mx.c — mta/mx.c against a real libunbound context on the
 * event loop: a temp unbound.conf whose local-data is the fake Internet
 * (MX preferences, equal preferences in every order, implicit MX, null
 * MX, NXDOMAIN, a CNAME'd MX host, A+AAAA and the family orders, the
 * address limit, "[host]:port" literals, smtp_client_port), and a tiny
 * UDP DNS server in the test for what local-data cannot say: SERVFAIL,
 * and silence (the lookup timeout, cancellation).
 */
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/dns.h"
#include "mta/mx.h"
#include "t/unit/tap.h"

static struct event_base *base;
static struct dns *dns;
static struct mx *mx;

/* ------------------------------------------------------------ fake DNS server */

/* Answers every query under fail.test: SERVFAIL for servfail.fail.test,
 * nothing at all for silent.fail.test. */
static int udp_fd;
static struct event *udp_ev;
static int udp_queries;

static void on_udp(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    unsigned char q[512];
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(fd, q, sizeof q, 0, (struct sockaddr *)&from, &fl);
    if (n < 12)
        return;
    udp_queries++;
    if (memmem(q, (size_t)n, "\006silent", 7))
        return;
    q[2] = 0x80 | (q[2] & 0x01);          /* QR, opcode 0, RD as asked */
    q[3] = 0x80 | 2;                      /* RA, SERVFAIL */
    memset(q + 6, 0, 6);                  /* no answer, authority, additional */
    /* keep the question: it ends after the name, QTYPE and QCLASS */
    size_t i = 12;
    while (i < (size_t)n && q[i])
        i += q[i] + 1;
    size_t len = i + 5 <= (size_t)n ? i + 5 : (size_t)n;
    q[11] = 0;
    (void)sendto(fd, q, len, 0, (struct sockaddr *)&from, fl);
}

static int udp_start(void)
{
    udp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(udp_fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(udp_fd, (struct sockaddr *)&a, &al) < 0)
        abort();
    udp_ev = event_new(base, udp_fd, EV_READ | EV_PERSIST, on_udp, NULL);
    event_add(udp_ev, NULL);
    return ntohs(a.sin_port);
}

/* ------------------------------------------------------------ resolver */

static char conf_path[] = "/tmp/test_mx_XXXXXX";

static void write_conf(int port)
{
    int fd = mkstemp(conf_path);
    FILE *f = fdopen(fd, "w");
    fprintf(f,
            "server:\n"
            "  local-zone: \".\" static\n"
            "  local-zone: \"fail.test.\" transparent\n"
            "  do-not-query-localhost: no\n"
            "  local-data: \"pref.test. MX 20 mx20.pref.test.\"\n"
            "  local-data: \"pref.test. MX 10 mx10.pref.test.\"\n"
            "  local-data: \"pref.test. MX 30 mx30.pref.test.\"\n"
            "  local-data: \"mx10.pref.test. A 127.0.0.10\"\n"
            "  local-data: \"mx20.pref.test. A 127.0.0.20\"\n"
            "  local-data: \"mx30.pref.test. A 127.0.0.30\"\n"
            "  local-data: \"eq.test. MX 10 a.eq.test.\"\n"
            "  local-data: \"eq.test. MX 10 b.eq.test.\"\n"
            "  local-data: \"eq.test. MX 10 c.eq.test.\"\n"
            "  local-data: \"a.eq.test. A 127.0.1.1\"\n"
            "  local-data: \"b.eq.test. A 127.0.1.2\"\n"
            "  local-data: \"c.eq.test. A 127.0.1.3\"\n"
            "  local-data: \"nomx.test. A 127.0.0.7\"\n"
            "  local-data: \"nomx.test. TXT \\\"just a host\\\"\"\n"
            "  local-data: \"null.test. MX 0 .\"\n"
            "  local-data: \"nothing.test. TXT \\\"no MX, no address\\\"\"\n"
            "  local-data: \"cname.test. MX 10 alias.cname.test.\"\n"
            "  local-data: \"alias.cname.test. CNAME real.cname.test.\"\n"
            "  local-data: \"real.cname.test. A 127.0.0.42\"\n"
            "  local-data: \"dual.test. MX 10 mx.dual.test.\"\n"
            "  local-data: \"mx.dual.test. A 127.0.0.6\"\n"
            "  local-data: \"mx.dual.test. AAAA ::1\"\n"
            "  local-data: \"many.test. MX 10 m1.many.test.\"\n"
            "  local-data: \"many.test. MX 20 m2.many.test.\"\n"
            "  local-data: \"many.test. MX 30 m3.many.test.\"\n"
            "  local-data: \"m1.many.test. A 127.0.2.1\"\n"
            "  local-data: \"m1.many.test. A 127.0.2.2\"\n"
            "  local-data: \"m2.many.test. A 127.0.2.3\"\n"
            "  local-data: \"m2.many.test. A 127.0.2.4\"\n"
            "  local-data: \"m3.many.test. A 127.0.2.5\"\n"
            "  local-data: \"m3.many.test. A 127.0.2.6\"\n"
            "  local-data: \"half.test. MX 10 gone.half.test.\"\n"
            "  local-data: \"half.test. MX 20 mx.half.test.\"\n"
            "  local-data: \"mx.half.test. A 127.0.3.1\"\n"
            "  local-data: \"dead.test. MX 10 gone.dead.test.\"\n"
            "  local-data: \"tmp.test. MX 10 servfail.fail.test.\"\n"
            "  local-data: \"tmp.test. MX 20 mx.tmp.test.\"\n"
            "  local-data: \"mx.tmp.test. A 127.0.4.1\"\n"
            "  local-data: \"dup.test. MX 10 x.dup.test.\"\n"
            "  local-data: \"dup.test. MX 20 y.dup.test.\"\n"
            "  local-data: \"x.dup.test. A 127.0.5.1\"\n"
            "  local-data: \"y.dup.test. A 127.0.5.1\"\n"
            "forward-zone:\n"
            "  name: \"fail.test.\"\n"
            "  forward-addr: 127.0.0.1@%d\n", port);
    fclose(f);
}

/* ------------------------------------------------------------ running lookups */

struct got {
    int calls;
    uint64_t id;
    struct mx_result r;
};

static void on_result(void *arg, uint64_t id, const struct mx_result *r)
{
    struct got *g = arg;
    g->calls++;
    g->id = id;
    g->r = *r;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void spin_until(int *counter, int want, int ms)
{
    long long end = now_ms() + ms;
    while (*counter < want && now_ms() < end) {
        struct timeval tv = { 0, 10000 };
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
}

static struct got lookup_opts(const char *nh, const struct mx_opts *o)
{
    struct got g = { 0 };
    uint64_t id = mx_lookup(mx, nh, o, on_result, &g);
    if (!id) {
        g.calls = -1;
        return g;
    }
    is_int(g.calls, 0, "no callback from inside mx_lookup");
    spin_until(&g.calls, 1, 10000);
    if (g.id != id)
        g.calls = -2;
    return g;
}

static struct got lookup(const char *nh)
{
    return lookup_opts(nh, NULL);
}

static int port_of(const struct mx_addr *a)
{
    return a->sa.ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)&a->sa)->sin_port)
                                      : ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
}

/* ------------------------------------------------------------ tests */

static void test_preferences(void)
{
    struct got g = lookup("pref.test");
    ok(g.calls == 1 && g.r.status == MX_OK && g.r.n == 3, "three MX hosts (%d, %zu)",
       g.calls, g.r.n);
    ok(!strcmp(g.r.addrs[0].host, "mx10.pref.test") && !strcmp(g.r.addrs[1].host, "mx20.pref.test")
       && !strcmp(g.r.addrs[2].host, "mx30.pref.test"), "in preference order 10, 20, 30");
    ok(!strcmp(g.r.addrs[0].ip, "127.0.0.10") && g.r.addrs[0].pref == 10 &&
       port_of(&g.r.addrs[0]) == 25, "with address, preference and port 25");
}

static void test_equal_shuffled(void)
{
    int seen[6] = { 0 };
    int bad = 0;
    for (int run = 0; run < 200; run++) {
        struct got g = lookup("eq.test");
        if (g.calls != 1 || g.r.status != MX_OK || g.r.n != 3) {
            bad++;
            continue;
        }
        char order[4] = { g.r.addrs[0].host[0], g.r.addrs[1].host[0], g.r.addrs[2].host[0], 0 };
        static const char *perms[6] = { "abc", "acb", "bac", "bca", "cab", "cba" };
        for (int k = 0; k < 6; k++)
            if (!strcmp(order, perms[k]))
                seen[k]++;
    }
    is_int(bad, 0, "200 lookups of three equal MX hosts");
    int all = 1;
    for (int k = 0; k < 6; k++)
        all &= seen[k] > 0;
    ok(all, "every one of the 6 orders appears (%d %d %d %d %d %d)", seen[0], seen[1], seen[2],
       seen[3], seen[4], seen[5]);
}

static void test_implicit_null_nx(void)
{
    struct got g = lookup("nomx.test");
    ok(g.r.status == MX_OK && g.r.n == 1 && !strcmp(g.r.addrs[0].ip, "127.0.0.7") &&
       !strcmp(g.r.addrs[0].host, "nomx.test"), "no MX: the domain's own A (implicit MX)");
    g = lookup("null.test");
    ok(g.r.status == MX_NULL && !strcmp(g.r.dsn, "5.1.10") && g.r.n == 0,
       "null MX: MX_NULL, 5.1.10 (%s)", g.r.text);
    g = lookup("nxdomain.test");
    ok(g.r.status == MX_PERM && !strcmp(g.r.dsn, "5.4.4") && strstr(g.r.text, "NXDOMAIN"),
       "NXDOMAIN: permanent, 5.4.4 (%s)", g.r.text);
    g = lookup("nothing.test");
    ok(g.r.status == MX_PERM && !strcmp(g.r.dsn, "5.4.4"),
       "a name with neither MX nor address: permanent (%s)", g.r.text);
    g = lookup("dead.test");
    ok(g.r.status == MX_PERM, "an MX host that does not exist: permanent (%s)", g.r.text);
}

static void test_cname_dual(void)
{
    struct got g = lookup("cname.test");
    ok(g.r.status == MX_OK && g.r.n == 1 && !strcmp(g.r.addrs[0].ip, "127.0.0.42") &&
       !strcmp(g.r.addrs[0].host, "alias.cname.test"),
       "an MX host that is a CNAME: its target's address, the MX name kept (%s)",
       g.r.n ? g.r.addrs[0].ip : g.r.text);
    struct mx_opts o = { .family = MX_FAMILY_IPV6 };
    g = lookup_opts("dual.test", &o);
    ok(g.r.n == 2 && g.r.addrs[0].sa.ss_family == AF_INET6 && !strcmp(g.r.addrs[0].ip, "::1") &&
       !strcmp(g.r.addrs[1].ip, "127.0.0.6"), "A and AAAA: both, IPv6 first when asked");
    o.family = MX_FAMILY_IPV4;
    g = lookup_opts("dual.test", &o);
    ok(g.r.n == 2 && !strcmp(g.r.addrs[0].ip, "127.0.0.6"), "IPv4 first when asked");
    int v6first = 0, v4first = 0;
    for (int i = 0; i < 100; i++) {
        g = lookup("dual.test");
        if (g.r.n == 2)
            *(g.r.addrs[0].sa.ss_family == AF_INET6 ? &v6first : &v4first) += 1;
    }
    ok(v6first > 0 && v4first > 0 && v6first + v4first == 100,
       "default (any, as Postfix): both orders (%d IPv6 first, %d IPv4 first)", v6first, v4first);
}

static void test_limit(void)
{
    struct got g = lookup("many.test");
    ok(g.r.status == MX_OK && g.r.n == 5, "six addresses, at most 5 (%zu)", g.r.n);
    int order_ok = g.r.n == 5;
    for (size_t i = 1; i < g.r.n; i++)
        order_ok &= g.r.addrs[i - 1].pref <= g.r.addrs[i].pref;
    ok(order_ok && g.r.addrs[4].pref == 30, "by preference, the last MX cut to one address");
    struct mx_opts o = { .max_addrs = 2 };
    g = lookup_opts("many.test", &o);
    ok(g.r.n == 2 && g.r.addrs[0].pref == 10 && g.r.addrs[1].pref == 10,
       "max_addrs = 2: the first MX host's two addresses");
    g = lookup("dup.test");
    ok(g.r.n == 1 && !strcmp(g.r.addrs[0].host, "x.dup.test"),
       "two MX hosts on one address: tried once, as the preferred host");
    g = lookup("half.test");
    ok(g.r.status == MX_OK && g.r.n == 1 && !strcmp(g.r.addrs[0].ip, "127.0.3.1"),
       "a primary MX without address is skipped for the backup");
}

static void test_literals_ports(void)
{
    struct got g = lookup("[127.0.0.5]:2525");
    ok(g.r.status == MX_OK && g.r.n == 1 && !strcmp(g.r.addrs[0].ip, "127.0.0.5") &&
       port_of(&g.r.addrs[0]) == 2525, "[127.0.0.5]:2525: that address and port");
    g = lookup("[IPv6:::1]");
    ok(g.r.n == 1 && g.r.addrs[0].sa.ss_family == AF_INET6 && port_of(&g.r.addrs[0]) == 25,
       "[IPv6:::1]: IPv6, port 25");
    g = lookup("[mx20.pref.test]:26");
    ok(g.r.n == 1 && !strcmp(g.r.addrs[0].ip, "127.0.0.20") && port_of(&g.r.addrs[0]) == 26,
       "[host]:port: the host's address, no MX lookup");
    g = lookup("[pref.test]");
    ok(g.r.status == MX_PERM, "[domain] does not follow its MX records (%s)", g.r.text);
    struct mx_opts o = { .port = 10025 };
    g = lookup_opts("pref.test", &o);
    ok(g.r.n == 3 && port_of(&g.r.addrs[0]) == 10025 && port_of(&g.r.addrs[2]) == 10025,
       "smtp_client_port 10025 for MX hosts");
    g = lookup_opts("pref.test:2600", &o);
    ok(g.r.n == 3 && port_of(&g.r.addrs[0]) == 2600, "domain:port overrides it");
    struct got dummy;
    ok(mx_lookup(mx, "[unclosed", NULL, on_result, &dummy) == 0 &&
       mx_lookup(mx, "[]", NULL, on_result, &dummy) == 0 &&
       mx_lookup(mx, "x.test:0", NULL, on_result, &dummy) == 0 &&
       mx_lookup(mx, "x.test:99999", NULL, on_result, &dummy) == 0 &&
       mx_lookup(mx, "", NULL, on_result, &dummy) == 0 &&
       mx_lookup(mx, "bad name.test", NULL, on_result, &dummy) == 0,
       "malformed next hops are refused at once");
    is_int((int)mx_pending(mx), 0, "and leave nothing behind");
}

static void test_temp_timeout_cancel(void)
{
    struct got g = lookup("servfail.fail.test");
    ok(g.r.status == MX_TEMP && !strcmp(g.r.dsn, "4.4.3"), "SERVFAIL: temporary (%s)", g.r.text);
    ok(udp_queries > 0, "the fake server was asked (%d)", udp_queries);
    g = lookup("tmp.test");
    ok(g.r.status == MX_OK && g.r.n == 1 && g.r.tempfail && !strcmp(g.r.addrs[0].ip, "127.0.4.1"),
       "primary MX SERVFAIL: the backup, flagged tempfail");
    struct mx_opts o = { .timeout_ms = 300 };
    long long t0 = now_ms();
    g = lookup_opts("silent.fail.test", &o);
    ok(g.r.status == MX_TEMP && strstr(g.r.text, "timed out"),
       "a silent server: temporary after the lookup timeout (%s, %lld ms)", g.r.text,
       now_ms() - t0);
    struct got c = { 0 };
    uint64_t id = mx_lookup(mx, "silent.fail.test", NULL, on_result, &c);
    ok(id > 0 && mx_pending(mx) == 1, "a lookup in flight");
    mx_cancel(mx, id);
    is_int((int)mx_pending(mx), 0, "cancelled");
    int never = 0;
    spin_until(&never, 1, 300);
    is_int(c.calls, 0, "a cancelled lookup never calls back");
    mx_cancel(mx, id);
    struct got c2 = { 0 };
    uint64_t id2 = mx_lookup(mx, "pref.test", NULL, on_result, &c2);
    mx_cancel(mx, id2);
    spin_until(&never, 1, 300);
    is_int(c2.calls, 0, "cancelled before an answer that does come: no callback (ASan: no query "
           "left to reach the freed lookup)");
    mx_cancel(mx, 12345);
    ok(1, "cancelling a finished or unknown id is harmless");
    id = mx_lookup(mx, "silent.fail.test", NULL, on_result, &c);
    (void)id;
    mx_free(mx);
    spin_until(&never, 1, 100);
    is_int(c.calls, 0, "mx_free cancels what is in flight");
    mx = mx_new(base, dns);
}

int main(void)
{
    base = event_base_new();
    int port = udp_start();
    write_conf(port);
    char err[512];
    dns = dns_new(base, conf_path, err, sizeof err);
    if (!dns) {
        printf("Bail out! dns_new: %s\n", err);
        return 1;
    }
    mx = mx_new(base, dns);
    test_preferences();
    test_equal_shuffled();
    test_implicit_null_nx();
    test_cname_dual();
    test_limit();
    test_literals_ports();
    test_temp_timeout_cancel();
    mx_free(mx);
    dns_free(dns);
    event_free(udp_ev);
    close(udp_fd);
    unlink(conf_path);
    event_base_free(base);
    return tap_done();
}
