/*
 * t/unit/test_transport.c — outbound routing (mta/transport.c) and the
 * destination windows (mta/dest.c): transport_maps lookups (exact,
 * ".parent", "*", later line wins, retry:/error: with and without a code,
 * "smtp:" bypassing relayhost), default_transport with relayhost, bad
 * values refused with file:line, smtp_sasl_password_maps by next hop and
 * bare host; the window's feedback (+1, -1, floor, cap), the dead site and
 * its return, the blocked-destination FIFO.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mta/config.h"
#include "mta/dest.h"
#include "mta/transport.h"
#include "t/unit/tap.h"

static char dir[64];

static const char *file(const char *name, const char *text)
{
    static char path[4][128];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, 128, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        abort();
    return p;
}

static struct transport *load(const char *deftr, const char *relay, const char *maps,
                              const char *sasl, char *err, size_t errlen)
{
    struct hato_config c;
    memset(&c, 0, sizeof c);
    char *list[1] = { (char *)maps };
    c.path = "test.conf";
    c.default_transport = deftr;
    c.relayhost = relay;
    c.transport_maps = maps ? list : NULL;
    c.ntransport_maps = maps ? 1 : 0;
    c.smtp_sasl_password_maps = sasl ? sasl : "";
    return transport_load(&c, err, errlen);
}

static void test_routes(void)
{
    char err[512];
    const char *maps = file("transport",
        "# comment\n"
        "local.example.com [192.168.12.34]:1025\n"
        ".sub.test smtp:[127.0.0.6]:2525   # trailing comment\n"
        "sub.test smtp:\n"
        "held.test retry:4.3.5 held by the operator\n"
        "plain.test retry:come back later\n"
        "gone.test error:5.1.2 gone\n"
        "twice.test [10.0.0.1]\n"
        "twice.test [10.0.0.2]\n"
        "\n");
    struct transport *t = load("smtp", "[192.168.56.78]:25", maps, NULL, err, sizeof err);
    ok(t != NULL, "maps load (%s)", t ? "" : err);
    struct transport_route r;
    transport_route(t, "local.example.com", &r);
    ok(r.kind == TR_SMTP && !strcmp(r.nexthop, "[192.168.12.34]:1025"), "the seed's example: %s",
       r.nexthop);
    transport_route(t, "elsewhere.example", &r);
    ok(r.kind == TR_SMTP && !strcmp(r.nexthop, "[192.168.56.78]:25"),
       "everything else: relayhost (%s)", r.nexthop);
    transport_route(t, "a.b.sub.test", &r);
    ok(!strcmp(r.nexthop, "[127.0.0.6]:2525"), ".sub.test matches subdomains (%s)", r.nexthop);
    transport_route(t, "sub.test", &r);
    ok(r.kind == TR_SMTP && !strcmp(r.nexthop, "sub.test"),
       "sub.test itself: smtp: = its own MX, not relayhost (%s)", r.nexthop);
    transport_route(t, "xsub.test", &r);
    ok(!strcmp(r.nexthop, "[192.168.56.78]:25"), "xsub.test is no subdomain of sub.test");
    transport_route(t, "held.test", &r);
    ok(r.kind == TR_RETRY && !strcmp(r.dsn, "4.3.5") && !strcmp(r.text, "held by the operator"),
       "retry: with a code");
    transport_route(t, "plain.test", &r);
    ok(r.kind == TR_RETRY && !strcmp(r.dsn, "4.3.2") && !strcmp(r.text, "come back later"),
       "retry: without a code: 4.3.2");
    transport_route(t, "gone.test", &r);
    ok(r.kind == TR_ERROR && !strcmp(r.dsn, "5.1.2"), "error: bounces");
    transport_route(t, "twice.test", &r);
    ok(!strcmp(r.nexthop, "[10.0.0.2]"), "a later line wins (%s)", r.nexthop);
    transport_free(t);

    const char *star = file("star", "* retry:4.4.0 no outbound transport yet\nok.test smtp:\n");
    t = load("smtp", "", star, NULL, err, sizeof err);
    transport_route(t, "any.test", &r);
    ok(t && r.kind == TR_RETRY && !strcmp(r.text, "no outbound transport yet"), "* catches the rest");
    transport_route(t, "ok.test", &r);
    ok(r.kind == TR_SMTP && !strcmp(r.nexthop, "ok.test"), "an exact entry beats *");
    transport_free(t);

    t = load("smtp", "", NULL, NULL, err, sizeof err);
    transport_route(t, "mx.test", &r);
    ok(t && r.kind == TR_SMTP && !strcmp(r.nexthop, "mx.test"), "no maps, no relayhost: the MX");
    transport_free(t);
    t = load("retry:4.4.0 suspended", "", NULL, NULL, err, sizeof err);
    transport_route(t, "mx.test", &r);
    ok(t && r.kind == TR_RETRY && !strcmp(r.dsn, "4.4.0"), "default_transport = retry:");
    transport_free(t);
}

static void test_bad(void)
{
    char err[512];
    const char *bad = file("bad", "ok.test smtp:\nx.test lmtp:unix:/var/run/x\n");
    ok(load("smtp", "", bad, NULL, err, sizeof err) == NULL && strstr(err, "bad:2:") &&
       strstr(err, "unknown transport"), "an unknown transport: file:line (%s)", err);
    const char *half = file("half", "lonely.test\n");
    ok(load("smtp", "", half, NULL, err, sizeof err) == NULL && strstr(err, "half:1:"),
       "a key without a value (%s)", err);
    ok(load("local:", "", NULL, NULL, err, sizeof err) == NULL && strstr(err, "default_transport"),
       "a bad default_transport (%s)", err);
    const char *unbal = file("unbal", "x.test [10.0.0.1:25\n");
    ok(load("smtp", "", unbal, NULL, err, sizeof err) == NULL && strstr(err, "unbal:1:"),
       "an unbalanced next hop (%s)", err);
    ok(load("smtp", "[relay.test]:99999", NULL, NULL, err, sizeof err) == NULL &&
       strstr(err, "relayhost"), "a bad relayhost port (%s)", err);
    char missing[128];
    snprintf(missing, sizeof missing, "hash:%s/none", dir);
    ok(load("smtp", "", missing, NULL, err, sizeof err) == NULL && strstr(err, "/none"),
       "a missing map file, hash: prefix stripped (%s)", err);
    ok(load("smtp", "", NULL, file("sasl-bad", "[h]:25 nocolon\n"), err, sizeof err) == NULL &&
       strstr(err, "user:password"), "a SASL line without user:password (%s)", err);
}

static void test_sasl(void)
{
    char err[512];
    const char *pw = file("sasl", "# relays\n[Relay.Test]:587 u1:p#1:x\nother.test u2:p2\n");
    struct transport *t = load("smtp", "", NULL, pw, err, sizeof err);
    const char *u = NULL, *p = NULL;
    ok(t && transport_sasl(t, "[relay.test]:587", &u, &p) && !strcmp(u, "u1") &&
       !strcmp(p, "p#1:x"), "by next hop, case-insensitive; '#' and ':' in the password");
    ok(transport_sasl(t, "[other.test]:25", &u, &p) && !strcmp(u, "u2"), "by the bare host");
    ok(!transport_sasl(t, "[relay.test]:25", &u, &p), "another port of the first: none");
    ok(!transport_sasl(t, "nobody.test", &u, &p), "unknown: none");
    transport_free(t);
}

static void test_windows(void)
{
    struct dest_limits l = { 5, 7, 1000000 };
    struct dest_table *t = dest_table_new(&l);
    struct dest *d = dest_get(t, "dom.test");
    ok(d && d == dest_get(t, "dom.test") && d != dest_get(t, "other.test"), "one per next hop");
    is_int(d->window, 5, "initial window");
    for (int i = 0; i < 5; i++)
        dest_success(t, d);
    is_int(d->window, 7, "+1 per success, at most the limit");
    dest_throttle(d);
    is_int(d->window, 6, "a throttle: -1");
    for (int i = 0; i < 5; i++)
        ok(!dest_site_failed(t, d, "refused", 100), "site failure %d: not dead yet", i + 1);
    is_int(d->window, 1, "-1 per site failure, floor 1");
    dest_throttle(d);
    is_int(d->window, 1, "a throttle at 1 stays 1");
    ok(!dest_dead(t, d, 100), "alive at window 1");
    ok(dest_site_failed(t, d, "refused again", 100), "a failure at window 1: dead");
    ok(dest_dead(t, d, 100 + 999999) && !strcmp(d->dead_reason, "refused again"),
       "dead until the dead time has passed, with the reason");
    ok(!dest_dead(t, d, 100 + 1000000) && d->window == 5, "then back, at the initial window");
    d->active = 5;
    ok(!dest_has_slot(d), "no slot with the window full");
    d->active = 0;
    struct dest *e = dest_get(t, "e.test");
    ok(!dest_any_blocked(t), "nothing blocked");
    dest_block(t, d);
    dest_block(t, e);
    dest_block(t, d);
    ok(dest_unblock(t) == d && dest_unblock(t) == e && dest_unblock(t) == NULL,
       "blocked destinations: FIFO, each once");
    l.limit = 3;
    dest_table_set_limits(t, &l);
    ok(d->window <= 3, "a lower limit on reload caps the windows");
    dest_table_free(t);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_transport.%d", (int)getpid());
    if (mkdir(dir, 0700) < 0)
        return 1;
    test_routes();
    test_bad();
    test_sasl();
    test_windows();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        ok(0, "cleanup");
    return tap_done();
}
