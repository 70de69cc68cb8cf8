/*
 * t/unit/test_iplist.c — lib/iplist.c: single addresses, CIDR (v4, v6,
 * host bits, /0 and full-length), short and full ranges, brackets, v4-mapped
 * v6 in both directions, the bad-item error texts, and ip_to_string.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "lib/iplist.h"
#include "tap.h"

static char err[256];

static struct iplist *mk(const char *a, const char *b, const char *c)
{
    char *items[3];
    size_t n = 0;

    if (a)
        items[n++] = (char *)a;
    if (b)
        items[n++] = (char *)b;
    if (c)
        items[n++] = (char *)c;
    err[0] = '\0';
    return iplist_new(items, n, err, sizeof(err));
}

/* Match a printable address (v4 or v6) against l. */
static int m(const struct iplist *l, const char *ip)
{
    struct sockaddr_in s4;
    struct sockaddr_in6 s6;

    memset(&s4, 0, sizeof(s4));
    memset(&s6, 0, sizeof(s6));
    if (inet_pton(AF_INET, ip, &s4.sin_addr) == 1) {
        s4.sin_family = AF_INET;
        s4.sin_port = htons(25);
        return iplist_match(l, (struct sockaddr *)&s4);
    }
    if (inet_pton(AF_INET6, ip, &s6.sin6_addr) == 1) {
        s6.sin6_family = AF_INET6;
        return iplist_match(l, (struct sockaddr *)&s6);
    }
    printf("# bad test address %s\n", ip);
    return -1;
}

static void test_v4(void)
{
    struct iplist *l = mk("127.0.0.1", "10.0.0.0/8", "192.168.0.21-24");

    ok(l != NULL, "v4 list: %s", err);
    if (l == NULL)
        return;
    is_int(m(l, "127.0.0.1"), 1, "single");
    is_int(m(l, "127.0.0.2"), 0, "single neighbour");
    is_int(m(l, "10.0.0.0"), 1, "cidr first");
    is_int(m(l, "10.255.255.255"), 1, "cidr last");
    is_int(m(l, "11.0.0.0"), 0, "cidr after");
    is_int(m(l, "9.255.255.255"), 0, "cidr before");
    is_int(m(l, "192.168.0.20"), 0, "short range before");
    is_int(m(l, "192.168.0.21"), 1, "short range first");
    is_int(m(l, "192.168.0.23"), 1, "short range middle");
    is_int(m(l, "192.168.0.24"), 1, "short range last");
    is_int(m(l, "192.168.0.25"), 0, "short range after");
    is_int(m(l, "::ffff:10.1.2.3"), 1, "v4-mapped socket matches v4 cidr");
    is_int(m(l, "::ffff:192.168.0.25"), 0, "v4-mapped outside");
    is_int(m(l, "::1"), 0, "v6 against v4 list");
    is_int(m(l, "::a01:203"), 0, "v4-compatible is not v4-mapped");
    iplist_free(l);
}

static void test_v6(void)
{
    struct iplist *l = mk("2001:db8::/32", "::1", "[fe80::1]-[fe80::9]");

    ok(l != NULL, "v6 list: %s", err);
    if (l == NULL)
        return;
    is_int(m(l, "2001:db8::"), 1, "v6 cidr first");
    is_int(m(l, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"), 1, "v6 cidr last");
    is_int(m(l, "2001:db9::"), 0, "v6 cidr after");
    is_int(m(l, "::1"), 1, "v6 single");
    is_int(m(l, "::2"), 0, "v6 single neighbour");
    is_int(m(l, "fe80::5"), 1, "v6 range");
    is_int(m(l, "fe80::a"), 0, "v6 range after");
    is_int(m(l, "127.0.0.1"), 0, "v4 against v6 list");
    iplist_free(l);
}

static void test_mixed(void)
{
    struct iplist *l = mk("10.0.0.1-10.0.1.9", "172.16.5.5/12", "::ffff:203.0.113.0/120");

    ok(l != NULL, "mixed list: %s", err);
    if (l == NULL)
        return;
    is_int(m(l, "10.0.0.255"), 1, "full range crosses octet");
    is_int(m(l, "10.0.1.9"), 1, "full range last");
    is_int(m(l, "10.0.1.10"), 0, "full range after");
    is_int(m(l, "10.0.0.0"), 0, "full range before");
    is_int(m(l, "172.31.255.255"), 1, "host bits masked off");
    is_int(m(l, "172.32.0.0"), 0, "masked cidr after");
    is_int(m(l, "203.0.113.77"), 1, "v4-mapped entry matches plain v4 socket");
    is_int(m(l, "::ffff:203.0.113.77"), 1, "v4-mapped entry matches mapped socket");
    is_int(m(l, "203.0.114.1"), 0, "v4-mapped entry after");
    iplist_free(l);

    l = mk("0.0.0.0/0", "::/0", NULL);
    ok(l != NULL, "/0 list");
    is_int(m(l, "255.255.255.255"), 1, "v4 /0");
    is_int(m(l, "ffff::1"), 1, "v6 /0");
    iplist_free(l);
    l = mk("192.0.2.1/32", "2001:db8::1/128", NULL);
    ok(l != NULL, "full-length prefixes");
    is_int(m(l, "192.0.2.1"), 1, "/32");
    is_int(m(l, "192.0.2.0"), 0, "/32 neighbour");
    is_int(m(l, "2001:db8::1"), 1, "/128");
    is_int(m(l, "2001:db8::"), 0, "/128 neighbour");
    iplist_free(l);
    l = mk("10.0.0.0/9", NULL, NULL);
    is_int(m(l, "10.127.255.255"), 1, "/9 last");
    is_int(m(l, "10.128.0.0"), 0, "/9 after");
    iplist_free(l);
    l = mk(NULL, NULL, NULL);
    ok(l != NULL, "empty list");
    is_int(m(l, "127.0.0.1"), 0, "empty list matches nothing");
    iplist_free(l);
    is_int(iplist_match(NULL, NULL), 0, "NULL list");
}

static void test_errors(void)
{
    static const char *const bad[] = {
        "", "localhost", "10.0.0.256", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1",
        "2001:db8::/129", "192.168.0.24-21", "192.168.0.21-256", "10.0.0.9-10.0.0.1",
        "10.0.0.1-::1", "10.0.0.0/8-10", "1.2.3.4/8/8", "10.0.0.1-", "-10.0.0.1",
        "fe80::1%eth0", "10.0.0.0/08x",
    };
    size_t i;
    char want[300];

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct iplist *l = mk("127.0.0.1", bad[i], NULL);
        ok(l == NULL, "rejects '%s'", bad[i]);
        snprintf(want, sizeof(want), "bad address, network or range '%s'", bad[i]);
        is_str(err, want, "  error names the item");
        iplist_free(l);
    }
}

static void test_to_string(void)
{
    struct sockaddr_in s4;
    struct sockaddr_in6 s6;
    struct sockaddr_un su;
    char buf[64], tiny[4];

    memset(&s4, 0, sizeof(s4));
    s4.sin_family = AF_INET;
    inet_pton(AF_INET, "192.0.2.7", &s4.sin_addr);
    s4.sin_port = htons(25);
    ip_to_string((struct sockaddr *)&s4, buf, sizeof(buf));
    is_str(buf, "192.0.2.7", "v4 to string, no port");
    memset(&s6, 0, sizeof(s6));
    s6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8::1", &s6.sin6_addr);
    ip_to_string((struct sockaddr *)&s6, buf, sizeof(buf));
    is_str(buf, "2001:db8::1", "v6 to string");
    inet_pton(AF_INET6, "::ffff:198.51.100.1", &s6.sin6_addr);
    ip_to_string((struct sockaddr *)&s6, buf, sizeof(buf));
    is_str(buf, "198.51.100.1", "v4-mapped printed as v4");
    memset(&su, 0, sizeof(su));
    su.sun_family = AF_UNIX;
    ip_to_string((struct sockaddr *)&su, buf, sizeof(buf));
    is_str(buf, "unix", "unix socket");
    ip_to_string((struct sockaddr *)&s4, tiny, sizeof(tiny));
    ok(strlen(tiny) < sizeof(tiny), "tiny buffer stays terminated");
}

/* The per-client counter key of text address a with prefix p. */
static const char *key(const char *a, int p)
{
    static char buf[64];
    struct sockaddr_in s4;
    struct sockaddr_in6 s6;

    memset(&s4, 0, sizeof(s4));
    memset(&s6, 0, sizeof(s6));
    if (inet_pton(AF_INET, a, &s4.sin_addr) == 1) {
        s4.sin_family = AF_INET;
        ip_client_key((struct sockaddr *)&s4, p, buf, sizeof(buf));
    } else if (inet_pton(AF_INET6, a, &s6.sin6_addr) == 1) {
        s6.sin6_family = AF_INET6;
        s6.sin6_port = htons(25);
        ip_client_key((struct sockaddr *)&s6, p, buf, sizeof(buf));
    } else {
        snprintf(buf, sizeof(buf), "bad test address");
    }
    return buf;
}

static void test_client_key(void)
{
    char k1[64];

    is_str(key("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::/64", "v6 cut to its /64");
    snprintf(k1, sizeof(k1), "%s", key("2001:db8:1:2::1", 64));
    is_str(key("2001:db8:1:2:ffff:ffff:ffff:fffe", 64), k1, "two addresses in one /64 share a key");
    ok(strcmp(key("2001:db8:1:3::1", 64), k1) != 0, "the next /64 has its own key");
    ok(strcmp(key("2001:db9:1:2::1", 64), k1) != 0, "another network has its own key");
    is_str(key("2001:db8:1:2::1", 128), "2001:db8:1:2::1", "128: every address apart");
    is_str(key("2001:db8:1:2::1", 48), "2001:db8:1::/48", "/48");
    is_str(key("2001:db8:1:ffff::1", 57), "2001:db8:1:ff80::/57", "a prefix inside a byte");
    is_str(key("2001:db8::1", 1), "::/1", "/1: the first bit");
    is_str(key("8001:db8::1", 1), "8000::/1", "/1: the first bit set");
    is_str(key("2001:db8::1", 0), "::/0", "0: all of IPv6 shares one key");
    is_str(key("::1", 64), "::/64", "loopback /64");
    is_str(key("192.0.2.7", 64), "192.0.2.7", "v4: the address, whatever the prefix");
    is_str(key("::ffff:192.0.2.7", 64), "192.0.2.7", "v4-mapped v6: the v4 address");
}

int main(void)
{
    test_v4();
    test_v6();
    test_mixed();
    test_errors();
    test_to_string();
    test_client_key();
    return tap_done();
}
