/*
 * t/unit/test_throttle.c — auth/throttle: growing delays and their cap,
 * the failure window, lockout and its expiry (clock passed in), success,
 * IPv6 per /64, the bounded table evicting the oldest, list and unlock;
 * the failure log line against fail2ban's stock filter (fail2ban-regex).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/throttle.h"
#include "t/unit/tap.h"

static struct sockaddr_storage ss;

static const struct sockaddr *ip(const char *text)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, text, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
    } else if (inet_pton(AF_INET6, text, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
    } else {
        fprintf(stderr, "bad address %s\n", text);
        exit(2);
    }
    return (struct sockaddr *)&ss;
}

static struct throttle_limits small(void)
{
    struct throttle_limits l;

    throttle_limits_default(&l);
    l.limit = 3;
    l.window = 60;
    l.lockout = 100;
    l.delay_step = 1000;
    l.delay_max = 2500;
    return l;
}

static void test_limits(void)
{
    struct throttle_limits l = small();
    struct throttle *t = throttle_new(&l, 100);
    int locked;

    is_int(throttle_locked(t, ip("192.0.2.1"), 0), 0, "new client not locked");
    is_int(throttle_failure(t, ip("192.0.2.1"), 0, &locked), 1000, "1st failure: 1 s");
    ok(!locked, "not locked after 1");
    is_int(throttle_failure(t, ip("192.0.2.1"), 1, &locked), 2000, "2nd failure: 2 s");
    is_int(throttle_locked(t, ip("192.0.2.1"), 1), 0, "not locked after 2");
    is_int(throttle_failure(t, ip("192.0.2.1"), 2, &locked), 2500, "3rd failure: capped at 2.5 s");
    ok(locked, "3rd failure within the window locks out");
    is_int(throttle_locked(t, ip("192.0.2.1"), 2), 100, "locked for 100 s");
    is_int(throttle_locked(t, ip("192.0.2.2"), 2), 0, "another client is not");
    throttle_failure(t, ip("192.0.2.1"), 3, &locked);
    ok(!locked, "a failure while locked does not start a new lockout");
    is_int(throttle_locked(t, ip("192.0.2.1"), 50), 52, "still locked at 50 (lockout from 2)");
    throttle_success(t, ip("192.0.2.1"));
    ok(throttle_locked(t, ip("192.0.2.1"), 50) > 0, "a success does not lift a lockout");
    is_int(throttle_locked(t, ip("192.0.2.1"), 101), 1, "locked at 101");
    is_int(throttle_locked(t, ip("192.0.2.1"), 102), 0, "expired at 102");
    is_int(throttle_failure(t, ip("192.0.2.1"), 103, &locked), 1000, "after expiry: counting from 1");
    ok(!locked, "not locked again at once");
    throttle_free(t);
}

static void test_window(void)
{
    struct throttle_limits l = small();
    struct throttle *t = throttle_new(&l, 100);
    int locked;

    throttle_failure(t, ip("198.51.100.7"), 0, &locked);
    throttle_failure(t, ip("198.51.100.7"), 30, &locked);
    is_int(throttle_failure(t, ip("198.51.100.7"), 60, &locked), 1000,
           "3rd failure 60 s after the 1st: a new window, delay 1 s");
    ok(!locked, "failures spread over more than the window do not lock");
    throttle_failure(t, ip("198.51.100.7"), 61, &locked);
    throttle_failure(t, ip("198.51.100.7"), 62, &locked);
    ok(locked, "3 within the new window lock");

    throttle_failure(t, ip("198.51.100.8"), 0, &locked);
    throttle_failure(t, ip("198.51.100.8"), 1, &locked);
    throttle_success(t, ip("198.51.100.8"));
    is_int(throttle_failure(t, ip("198.51.100.8"), 2, &locked), 1000, "a success forgets failures");
    ok(!locked, "so no lockout at the 3rd");
    is_int(throttle_locked(t, ip("198.51.100.8"), 100), 0, "window over: entry dropped");
    throttle_free(t);

    l.limit = 0;
    t = throttle_new(&l, 10);
    for (int i = 0; i < 50; i++)
        throttle_failure(t, ip("198.51.100.9"), i, &locked);
    is_int(throttle_locked(t, ip("198.51.100.9"), 50), 0, "limit 0: never locked");
    throttle_free(t);
}

static void test_ipv6(void)
{
    struct throttle_limits l = small();
    struct throttle *t = throttle_new(&l, 100);
    char key[THROTTLE_KEY_MAX];
    int locked;

    throttle_failure(t, ip("2001:db8:1:2::1"), 0, &locked);
    throttle_failure(t, ip("2001:db8:1:2:ffff::9"), 0, &locked);
    throttle_failure(t, ip("2001:db8:1:2:1:2:3:4"), 0, &locked);
    ok(locked, "three addresses in one /64 lock it");
    ok(throttle_locked(t, ip("2001:db8:1:2::abcd"), 1) > 0, "the whole /64 is locked");
    is_int(throttle_locked(t, ip("2001:db8:1:3::1"), 1), 0, "the next /64 is not");
    throttle_key(t, ip("2001:db8:1:2::abcd"), key, sizeof(key));
    is_str(key, "2001:db8:1:2::/64", "key of the /64");
    throttle_failure(t, ip("::ffff:192.0.2.9"), 0, &locked);
    throttle_failure(t, ip("192.0.2.9"), 0, &locked);
    throttle_failure(t, ip("::ffff:192.0.2.9"), 0, &locked);
    ok(locked, "v4-mapped IPv6 counts as the IPv4 address");
    ok(throttle_key_text(t, "2001:db8:1:2::77", key, sizeof(key)) == 0
       && strcmp(key, "2001:db8:1:2::/64") == 0, "key from text");
    ok(throttle_key_text(t, "not-an-ip", key, sizeof(key)) == -1, "bad text: -1");
    is_int(throttle_unlock(t, "2001:db8:1:2::/64", 2), 0, "unlock the /64");
    is_int(throttle_locked(t, ip("2001:db8:1:2::1"), 2), 0, "unlocked");
    is_int(throttle_unlock(t, "2001:db8:1:2::/64", 2), -1, "unlock again: not locked");
    throttle_free(t);

    l.v6_prefix = 128;
    t = throttle_new(&l, 100);
    throttle_failure(t, ip("2001:db8::1"), 0, &locked);
    throttle_failure(t, ip("2001:db8::2"), 0, &locked);
    throttle_failure(t, ip("2001:db8::3"), 0, &locked);
    ok(!locked, "prefix 128: each address on its own");
    throttle_free(t);
}

static int nlisted;
static char listed[8][THROTTLE_KEY_MAX];

static void list_cb(void *arg, const struct throttle_entry *e)
{
    if (nlisted < 8)
        snprintf(listed[nlisted++], THROTTLE_KEY_MAX, "%s", e->key);
}

static void test_bounded(void)
{
    struct throttle_limits l = small();
    struct throttle *t = throttle_new(&l, 4);
    char a[32];
    int locked;

    for (int i = 0; i < 3; i++)
        throttle_failure(t, ip("203.0.113.1"), 0, &locked);
    throttle_failure(t, ip("203.0.113.2"), 1, &locked);
    throttle_failure(t, ip("203.0.113.3"), 2, &locked);
    throttle_failure(t, ip("203.0.113.4"), 3, &locked);
    is_int(throttle_count(t), 4, "4 clients in a table of 4");
    ok(throttle_locked(t, ip("203.0.113.1"), 4) > 0, ".1 locked (and touched: now the newest)");
    throttle_failure(t, ip("203.0.113.5"), 5, &locked);
    is_int(throttle_count(t), 4, "a 5th client: still 4");
    ok(throttle_locked(t, ip("203.0.113.1"), 6) > 0, "the touched lockout survived");
    is_int(throttle_failure(t, ip("203.0.113.2"), 7, &locked), 1000,
           "the .2 entry (oldest touch) was evicted: it counts from 1 again");
    is_int(throttle_failure(t, ip("203.0.113.4"), 8, &locked), 2000, ".4 was kept: its 2nd failure");
    ok(throttle_locked(t, ip("203.0.113.1"), 9) > 0, "the lockout is still there");
    throttle_free(t);

    t = throttle_new(&l, 1000);
    for (int i = 0; i < 100000; i++) {
        snprintf(a, sizeof(a), "10.%d.%d.%d", i >> 16 & 255, i >> 8 & 255, i & 255);
        throttle_failure(t, ip(a), i / 1000, &locked);
    }
    is_int(throttle_count(t), 1000, "100,000 clients through a table of 1000: 1000 kept");
    throttle_free(t);

    t = throttle_new(&l, 100);
    for (int i = 0; i < 3; i++) {
        throttle_failure(t, ip("192.0.2.10"), 0, &locked);
        throttle_failure(t, ip("192.0.2.11"), 10, &locked);
    }
    throttle_failure(t, ip("192.0.2.12"), 10, &locked);
    nlisted = 0;
    is_int(throttle_list(t, 20, list_cb, NULL), 2, "two lockouts listed");
    ok(nlisted == 2 && strcmp(listed[0], "192.0.2.10") == 0 && strcmp(listed[1], "192.0.2.11") == 0,
       "listed oldest first, counting-only clients not listed");
    nlisted = 0;
    is_int(throttle_list(t, 105, list_cb, NULL), 1, "at 105 the first has expired");
    is_int(throttle_unlock(t, "192.0.2.11", 105), 0, "unlock .11");
    is_int(throttle_list(t, 105, list_cb, NULL), 0, "nothing locked");
    is_int(throttle_unlock(t, "192.0.2.12", 105), -1, "unlock of a client that is not locked: -1");
    throttle_free(t);
}

/* The line the session logs, in hato's two log formats, must be matched by
 * fail2ban's stock filter with only the daemon name set. */
static void test_fail2ban(void)
{
    static const char *const fmt[] = {
        "2026-12-01T21:30:00.123+0000 hatod[4242]: warning: ",      /* log_file */
        "Dec  1 21:30:00 mx hatod[4242]: warning: ",                  /* syslog */
    };
    static const char *const mech[] = { "PLAIN", "LOGIN", "CRAM-MD5" };
    char line[512], cmd[1024], out[4096];
    FILE *p;
    size_t n;

    if (access("/usr/bin/fail2ban-regex", X_OK) != 0) {
        ok(1, "# SKIP fail2ban-regex not installed");
        return;
    }
    for (int f = 0; f < 2; f++)
        for (int m = 0; m < 3; m++) {
            int len = snprintf(line, sizeof(line), "%s" AUTH_FAILURE_LOG_FMT, fmt[f],
                               "unknown", m == 1 ? "2001:db8::7" : "192.0.2.7", mech[m],
                               "authentication failure");
            ok(len > 0 && strchr(line, '\'') == NULL, "line has no quote");
            snprintf(cmd, sizeof(cmd),
                     "fail2ban-regex '%s' 'postfix[mode=auth, _daemon=hatod]' 2>&1", line);
            p = popen(cmd, "r");
            n = p ? fread(out, 1, sizeof(out) - 1, p) : 0;
            out[n] = '\0';
            if (p)
                pclose(p);
            ok(strstr(out, "1 matched") != NULL, "fail2ban postfix[mode=auth] matches: %s", line);
        }
}

/* Resident memory of this process, KiB (statm's second field). */
static long rss_kib(void)
{
    long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &res) != 2)
        res = -1;
    fclose(f);
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* A daemon's table (65,536 clients, 7.5 MiB of nodes) costs memory only
 * for the clients it has seen: nodes are handed out from the low end. */
static void test_untouched(void)
{
    struct throttle_limits l = small();
    int locked;
    long before = rss_kib();
    struct throttle *t = throttle_new(&l, 65536);
    long after = rss_kib();

    ok(t != NULL && before > 0 && after - before < 2048,
       "a new 65,536-client table adds under 2 MiB resident (added %ld KiB)", after - before);
    for (int i = 0; i < 3; i++)
        throttle_failure(t, ip("198.51.100.7"), 0, &locked);
    ok(throttle_locked(t, ip("198.51.100.7"), 1) > 0, "and it locks out as before");
    throttle_free(t);
}

int main(void)
{
    test_limits();
    test_window();
    test_ipv6();
    test_bounded();
    test_fail2ban();
    test_untouched();
    return tap_done();
}
