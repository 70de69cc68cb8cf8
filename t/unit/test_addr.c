/*
 * t/unit/test_addr.c — lib/addr.c: a table of valid and invalid paths and
 * mailboxes (quoted locals, literals, source routes, every length limit at
 * and one past it, 8-bit, `%`/`!`), the null path, consumed counts,
 * unquoting and the error texts.
 */
#include <stdio.h>
#include <string.h>

#include "lib/addr.h"
#include "tap.h"

struct path_case {
    const char *in;
    int allow_null;
    enum addr_err rc;
    const char *full;      /* expected `full` on OK / NODOMAIN, NULL = skip */
    const char *domain;    /* expected `domain`, NULL = skip */
};

static const struct path_case path_cases[] = {
    /* valid */
    { "<user@example.com>", 0, ADDR_OK, "user@example.com", "example.com" },
    { "<User.Name+tag@Example.COM>", 0, ADDR_OK, "User.Name+tag@example.com", "example.com" },
    { "<a@b>", 0, ADDR_OK, "a@b", "b" },
    { "<user%other@example.com>", 0, ADDR_OK, "user%other@example.com", NULL },
    { "<host!user@example.com>", 0, ADDR_OK, "host!user@example.com", NULL },
    { "<!#$%&'*+-/=?^_`{|}~@example.com>", 0, ADDR_OK, "!#$%&'*+-/=?^_`{|}~@example.com", NULL },
    { "<\"john doe\"@example.com>", 0, ADDR_OK, "\"john doe\"@example.com", NULL },
    { "<\"a\\\"b\"@example.com>", 0, ADDR_OK, "\"a\\\"b\"@example.com", NULL },
    { "<\"a@b\"@example.com>", 0, ADDR_OK, "\"a@b\"@example.com", NULL },
    { "<\"a>b\"@example.com>", 0, ADDR_OK, "\"a>b\"@example.com", NULL },
    { "<\"\"@example.com>", 0, ADDR_OK, "\"\"@example.com", NULL },
    { "<user@[192.0.2.1]>", 0, ADDR_OK, "user@[192.0.2.1]", "[192.0.2.1]" },
    { "<user@[IPv6:2001:DB8::1]>", 0, ADDR_OK, "user@[ipv6:2001:db8::1]", "[ipv6:2001:db8::1]" },
    { "<user@[IPv6:::ffff:192.0.2.1]>", 0, ADDR_OK, NULL, NULL },
    { "<@a.example,@b.example:user@c.example>", 0, ADDR_OK, "user@c.example", "c.example" },
    { "<@a.example:user@c.example>", 0, ADDR_OK, "user@c.example", NULL },
    { "<user@a-b.example>", 0, ADDR_OK, NULL, "a-b.example" },
    { "<user@123.example>", 0, ADDR_OK, NULL, NULL },
    { "<user@sub.sub.example.co.uk>", 0, ADDR_OK, NULL, NULL },
    { "<>", 1, ADDR_OK, "", "" },
    /* no domain */
    { "<postmaster>", 0, ADDR_E_NODOMAIN, "postmaster", "" },
    { "<\"quoted\">", 0, ADDR_E_NODOMAIN, "\"quoted\"", "" },
    /* invalid */
    { "<>", 0, ADDR_E_NULL, NULL, NULL },
    { "user@example.com", 0, ADDR_E_NOBRACKET, NULL, NULL },
    { " <user@example.com>", 0, ADDR_E_NOBRACKET, NULL, NULL },
    { "", 0, ADDR_E_NOBRACKET, NULL, NULL },
    { "<user@example.com", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<user@@example.com>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<@example.com>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<user@>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<.user@example.com>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<user.@example.com>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<us..er@example.com>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<us er@example.com>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<user@example.com.>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<user@.example.com>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<user@exa..mple.com>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<user@-example.com>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<user@example-.com>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<user@exa_mple.com>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<user@[300.0.0.1]>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<user@[192.0.2]>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<user@[IPv6:2001:db8::g]>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<user@[2001:db8::1]>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<user@[192.0.2.1>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<user@[192.0.2.1]x>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<user@[]>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<\"unterminated@example.com>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<\"a\"b@example.com>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<\"a\tb\"@example.com>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<a\"b\"@example.com>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<@a.example,user@c.example>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<@a.example:>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<@:user@c.example>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<@a.example,:user@c.example>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<user@example.com >", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<<user@example.com>>", 0, ADDR_E_SYNTAX, NULL, NULL },
    { "<user@exam\xc3\xa9.com>", 0, ADDR_E_8BIT, NULL, NULL },
    { "<us\xe9r@example.com>", 0, ADDR_E_8BIT, NULL, NULL },
    { "<\"\xff\"@example.com>", 0, ADDR_E_8BIT, NULL, NULL },
    { "<user@example.com\x01>", 0, ADDR_E_SYNTAX, NULL, NULL },
};

static void test_table(void)
{
    size_t i, consumed;
    struct addr a;

    for (i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
        const struct path_case *c = &path_cases[i];
        enum addr_err rc;

        consumed = 9999;
        rc = addr_parse_path(c->in, strlen(c->in), c->allow_null, &a, &consumed);
        if (!ok(rc == c->rc, "path %zu '%s' -> %s", i, c->in, addr_strerror(c->rc)))
            printf("#   got %d (%s)\n", rc, addr_strerror(rc));
        if (c->full)
            is_str(a.full, c->full, "  full");
        if (c->domain)
            is_str(a.domain, c->domain, "  domain");
        if (rc == ADDR_OK)
            is_int(consumed, strlen(c->in), "  consumed all");
    }
}

/* A domain of dlen octets: labels of 50 letters. */
static void make_domain(char *buf, size_t dlen)
{
    size_t i;

    for (i = 0; i < dlen; i++)
        buf[i] = (i % 51 == 50) ? '.' : 'd';
    if (dlen > 0 && buf[dlen - 1] == '.')
        buf[dlen - 1] = 'e';
    buf[dlen] = '\0';
}

static enum addr_err try_path(size_t llen, const char *domain, struct addr *a)
{
    char buf[1024];
    size_t consumed, n = 0;

    buf[n++] = '<';
    memset(buf + n, 'l', llen);
    n += llen;
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "@%s>", domain);
    return addr_parse_path(buf, n, 0, a, &consumed);
}

static void test_limits(void)
{
    char dom[512], mbox[1024];
    struct addr a;
    size_t n;

    /* local part: 64 ok, 65 too long */
    is_int(try_path(64, "example.com", &a), ADDR_OK, "local 64 ok");
    is_int(strlen(a.local), 64, "local 64 kept");
    is_int(try_path(65, "example.com", &a), ADDR_E_LOCAL_LONG, "local 65 too long");
    {
        char q[80];
        struct addr b;
        size_t c;
        memset(q, 'q', sizeof(q));
        q[0] = '<';
        q[1] = '"';
        q[64] = '"';      /* quoted local of 64 octets incl. quotes */
        memcpy(q + 65, "@x.example>", 11);
        is_int(addr_parse_path(q, 76, 0, &b, &c), ADDR_OK, "quoted local 64 ok");
        q[64] = 'q';
        q[65] = '"';
        memcpy(q + 66, "@x.example>", 11);
        is_int(addr_parse_path(q, 77, 0, &b, &c), ADDR_E_LOCAL_LONG, "quoted local 65 too long");
    }
    /* label: 63 ok, 64 syntax */
    memset(dom, 'a', 63);
    strcpy(dom + 63, ".example");
    is_int(try_path(1, dom, &a), ADDR_OK, "label 63 ok");
    memset(dom, 'a', 64);
    strcpy(dom + 64, ".example");
    is_int(try_path(1, dom, &a), ADDR_E_SYNTAX, "label 64 rejected");
    /* path: 256 ok, 257 too long ("<" + 64 + "@" + 189 + ">" = 256) */
    make_domain(dom, 189);
    is_int(try_path(64, dom, &a), ADDR_OK, "path 256 ok");
    make_domain(dom, 190);
    is_int(try_path(64, dom, &a), ADDR_E_PATH_LONG, "path 257 too long");
    /* domain: 255 ok and 256 too long (as bare mailboxes: a path cannot hold them) */
    make_domain(dom, 255);
    n = (size_t)snprintf(mbox, sizeof(mbox), "u@%s", dom);
    is_int(addr_parse_mailbox(mbox, n, &a), ADDR_OK, "mailbox domain 255 ok");
    is_int(strlen(a.domain), 255, "domain 255 kept");
    is_int(strlen(a.full), 257, "full holds local@255");
    make_domain(dom, 256);
    n = (size_t)snprintf(mbox, sizeof(mbox), "u@%s", dom);
    is_int(addr_parse_mailbox(mbox, n, &a), ADDR_E_DOMAIN_LONG, "mailbox domain 256 too long");
    is_int(try_path(1, dom, &a), ADDR_E_DOMAIN_LONG, "path domain 256 too long");
    /* the longest local + the longest domain fills ADDR_BUF exactly */
    memset(mbox, 'l', 64);
    make_domain(dom, 255);
    n = 64 + (size_t)snprintf(mbox + 64, sizeof(mbox) - 64, "@%s", dom);
    is_int(addr_parse_mailbox(mbox, n, &a), ADDR_OK, "mailbox 64 + 255 ok");
    is_int(strlen(a.full), ADDR_BUF - 1, "full is ADDR_BUF - 1 long");
}

static void test_consumed(void)
{
    const char *cmd = "<user@example.com> SIZE=1000 BODY=8BITMIME";
    const char *q = "<\"a> b\"@example.com> x";
    struct addr a;
    size_t consumed = 0;

    is_int(addr_parse_path(cmd, strlen(cmd), 0, &a, &consumed), ADDR_OK, "path with params");
    is_int(consumed, 18, "consumed stops after '>'");
    is_int(addr_parse_path(q, strlen(q), 0, &a, &consumed), ADDR_OK, "quoted '>' in local");
    is_int(consumed, 20, "consumed skips quoted '>'");
    is_int(addr_parse_path("<> SIZE=5", 9, 1, &a, &consumed), ADDR_OK, "null with params");
    is_int(consumed, 2, "null consumed 2");
    ok(a.is_null && a.full[0] == '\0' && a.local[0] == '\0', "null path fields empty");
    /* len limits what is looked at: no reading past it */
    is_int(addr_parse_path(cmd, 17, 0, &a, &consumed), ADDR_E_SYNTAX, "len cuts off '>'");
    is_int(addr_parse_path("<a@b.example>", 13, 0, &a, &consumed), ADDR_OK, "exact len");
    ok(!a.is_null, "not null");
    /* 8-bit after the path is not the path's business */
    is_int(addr_parse_path("<a@b.example> \xff", 15, 0, &a, &consumed), ADDR_OK,
           "8-bit after path ignored");
}

static void test_mailbox(void)
{
    struct addr a;
    const char *s;

    s = "Joe@Example.ORG";
    is_int(addr_parse_mailbox(s, strlen(s), &a), ADDR_OK, "mailbox ok");
    is_str(a.full, "Joe@example.org", "mailbox full");
    is_str(a.local, "Joe", "mailbox local");
    s = "joe@example.org trailing";
    is_int(addr_parse_mailbox(s, 15, &a), ADDR_OK, "mailbox takes exactly len");
    is_int(addr_parse_mailbox(s, strlen(s), &a), ADDR_E_SYNTAX, "mailbox with trailing text");
    s = "<joe@example.org>";
    is_int(addr_parse_mailbox(s, strlen(s), &a), ADDR_E_SYNTAX, "mailbox with brackets");
    s = "@a.example:joe@example.org";
    is_int(addr_parse_mailbox(s, strlen(s), &a), ADDR_E_SYNTAX, "mailbox with source route");
    s = "joe";
    is_int(addr_parse_mailbox(s, strlen(s), &a), ADDR_E_NODOMAIN, "mailbox without domain");
    is_str(a.local, "joe", "nodomain local filled");
    is_int(addr_parse_mailbox("", 0, &a), ADDR_E_SYNTAX, "empty mailbox");
    s = "j\xc3\xb6@example.org";
    is_int(addr_parse_mailbox(s, strlen(s), &a), ADDR_E_8BIT, "8-bit mailbox");
    s = "\"a b\"@[10.0.0.1]";
    is_int(addr_parse_mailbox(s, strlen(s), &a), ADDR_OK, "quoted local + literal");
    is_str(a.domain, "[10.0.0.1]", "literal domain kept with brackets");
    s = "a@b.example";
    is_int(addr_parse_mailbox(s, 4, &a), ADDR_E_SYNTAX, "len ending after '.'");
    s = "a@b\0c";
    is_int(addr_parse_mailbox(s, 5, &a), ADDR_E_SYNTAX, "NUL inside len");
}

static void test_unquote(void)
{
    struct addr a;
    char buf[ADDR_LOCAL_MAX + 1], small[4];
    const char *s = "\"john \\\"j\\\\ doe\"@example.com";

    is_int(addr_parse_mailbox(s, strlen(s), &a), ADDR_OK, "quoted with pairs");
    is_str(a.local, "\"john \\\"j\\\\ doe\"", "local kept as written");
    addr_local_unquoted(&a, buf, sizeof(buf));
    is_str(buf, "john \"j\\ doe", "unquoted");
    addr_local_unquoted(&a, small, sizeof(small));
    is_str(small, "joh", "unquoted truncated to buffer");
    s = "plain.user@example.com";
    is_int(addr_parse_mailbox(s, strlen(s), &a), ADDR_OK, "plain");
    addr_local_unquoted(&a, buf, sizeof(buf));
    is_str(buf, "plain.user", "plain unchanged");
}

static void test_strerror(void)
{
    is_str(addr_strerror(ADDR_E_SYNTAX), "Syntax error in mailbox address", "strerror syntax");
    is_str(addr_strerror(ADDR_E_LOCAL_LONG), "Local part too long", "strerror local");
    ok(strlen(addr_strerror(ADDR_E_8BIT)) > 0, "strerror 8bit");
    ok(strlen(addr_strerror((enum addr_err)99)) > 0, "strerror unknown");
}

int main(void)
{
    test_table();
    test_limits();
    test_consumed();
    test_mailbox();
    test_unquote();
    test_strerror();
    return tap_done();
}
