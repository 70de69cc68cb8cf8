/*
 * t/unit/test_from_header.c — the From:/Sender: address parser
 * (proto/from_header.h): display names, quoted strings, comments, angle
 * addresses, several mailboxes, groups, folding, obs-routes, the errors,
 * and every case fed in one block, one octet at a time and cut at every
 * offset in two, which must all agree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/from_header.h"
#include "t/unit/tap.h"

/* The addresses joined by ' ', or "ERR:reason". */
static void run(const char *name, const char *hdr, size_t step, size_t cut, char *out, size_t len)
{
    static struct from_parser p;
    size_t n = strlen(hdr);
    from_parser_init(&p, name);
    if (cut) {
        from_parser_feed(&p, hdr, cut);
        from_parser_feed(&p, hdr + cut, n - cut);
    } else {
        for (size_t i = 0; i < n; i += step)
            from_parser_feed(&p, hdr + i, n - i < step ? n - i : step);
    }
    enum from_err e = from_parser_end(&p);
    out[0] = '\0';
    if (e != FROM_OK) {
        snprintf(out, len, "ERR:%s", from_strerror(e));
        return;
    }
    for (size_t i = 0; i < p.naddrs; i++) {
        size_t u = strlen(out);
        snprintf(out + u, len - u, "%s%s", i ? " " : "", p.addrs[i]);
    }
}

/* One block, one octet at a time, every two-piece cut: same answer. */
static void check(const char *name, const char *hdr, const char *want, const char *what)
{
    char one[8192], other[8192];
    run(name, hdr, strlen(hdr) ? strlen(hdr) : 1, 0, one, sizeof one);
    is_str(one, want, what);
    run(name, hdr, 1, 0, other, sizeof other);
    int same = strcmp(one, other) == 0;
    for (size_t cut = 1; same && cut < strlen(hdr); cut++) {
        run(name, hdr, 1, cut, other, sizeof other);
        same = strcmp(one, other) == 0;
    }
    ok(same, "%s: trickle and every cut agree", what);
}

struct tcase {
    const char *hdr, *want, *what;
};

static const struct tcase from_cases[] = {
    { "From: bob@example.test\r\n\r\n", "bob@example.test", "bare addr-spec" },
    { "From: <bob@example.test>\r\n", "bob@example.test", "angle-addr only" },
    { "From: Bob Smith <bob@Example.TEST>\r\n", "bob@example.test", "display name, domain lower-cased" },
    { "from :  \"Smith, Bob\" <bob@example.test>\r\n", "bob@example.test",
      "quoted display name with a comma, obs white space before the colon" },
    { "From: bob@example.test (Bob Smith)\r\n", "bob@example.test", "comment after" },
    { "From: (x (nested \\) paren) y) bob(c)@(d)example.test\r\n", "bob@example.test",
      "nested comments with quoted-pairs, comments inside the addr-spec" },
    { "From: a@example.test, Bee <b@example.test>,c@example.test\r\n",
      "a@example.test b@example.test c@example.test", "several mailboxes" },
    { "From: a@example.test, , b@example.test,\r\n", "a@example.test b@example.test",
      "empty list elements (obs-mbox-list)" },
    { "From: Team: a@example.test, B <b@example.test>;\r\n", "a@example.test b@example.test",
      "a group" },
    { "From: Team: a@example.test;, c@example.test\r\n", "a@example.test c@example.test",
      "a group then a mailbox" },
    { "From: Bob\r\n Smith\r\n\t<bob@example.test>\r\n", "bob@example.test", "folded" },
    { "From: \"Bob\r\n Smith\" <bob@\r\n example.test>\r\n", "bob@example.test",
      "folded inside a quoted string and an angle-addr" },
    { "From: \"bob\"@example.test\r\n", "bob@example.test", "quoted local part unquoted" },
    { "From: \"b\\\"o b\"@example.test\r\n", "b\"o b@example.test", "quoted-pair in a local part" },
    { "From: <@relay.test,@other.test:bob@example.test>\r\n", "bob@example.test", "obs-route dropped" },
    { "From: bob@[192.0.2.1]\r\n", "bob@[192.0.2.1]", "domain literal" },
    { "From: =?utf-8?q?B=C3=B6b?= <bob@example.test>\r\n", "bob@example.test", "encoded word" },
    { "From: J\xc3\xb6rg <j\xc3\xb6rg@example.test>\r\n", "j\xc3\xb6rg@example.test", "UTF-8" },
    { "Subject: From: mallory@evil.test\r\nFrom: bob@example.test\r\n", "bob@example.test",
      "From: inside another field is not a From: field" },
    { "X-From: mallory@evil.test\r\nFromage: x@evil.test\r\nFrom: bob@example.test\r\n",
      "bob@example.test", "names that start with From are other fields" },
    { "From: a@example.test\r\nTo: x@y.test\r\nFROM: b@example.test\r\n",
      "a@example.test b@example.test", "two From: fields: both counted" },
    { "From: bob@example.test\r\n\r\nFrom: mallory@evil.test\r\n", "bob@example.test",
      "the body is not the header" },
    { "From: bob@example.test\n", "bob@example.test", "bare LF" },
    { "To: x@y.test\r\n", "", "no From:" },
    { "From: Bob bob@example.test\r\n", "ERR:syntax error", "phrase without <>" },
    { "From: Bob Smith\r\n", "ERR:syntax error", "display name only" },
    { "From: bob\r\n", "ERR:syntax error", "no domain" },
    { "From: @example.test\r\n", "ERR:syntax error", "no local part" },
    { "From: <bob@example.test\r\n", "ERR:syntax error", "unclosed angle" },
    { "From: \"bob@example.test\r\n", "ERR:syntax error", "unclosed quote" },
    { "From: bob@example.test (x\r\n", "ERR:syntax error", "unclosed comment" },
    { "From: <a@example.test> <b@example.test>\r\n", "ERR:syntax error", "two angle-addrs" },
    { "From: <a@example.test> junk\r\n", "ERR:syntax error", "words after the angle-addr" },
    { "From: <bob smith@example.test>\r\n", "ERR:syntax error", "two words inside <>" },
    { "From: a: b: c@example.test;;\r\n", "ERR:syntax error", "nested group" },
    { "From: Team: a@example.test\r\n", "ERR:syntax error", "unterminated group" },
    { "From: a@example.test;\r\n", "ERR:syntax error", "';' outside a group" },
    { "From: undisclosed:;\r\n", "ERR:no address", "an empty group names no one" },
    { "From: \r\n", "ERR:no address", "an empty From:" },
    { "From: a@example.test\r\nFrom:\r\n", "ERR:no address", "a second, empty From:" },
    { "From: b\x01ob@example.test\r\n", "ERR:syntax error", "control character" },
    { "From: bob)@example.test\r\n", "ERR:syntax error", "stray ')'" },
    { "From: bob@example.test", "bob@example.test", "no final line end" },
};

static void test_cases(void)
{
    for (size_t i = 0; i < sizeof from_cases / sizeof from_cases[0]; i++)
        check("From", from_cases[i].hdr, from_cases[i].want, from_cases[i].what);
    check("Sender", "From: a@example.test\r\nSender: Bob <bob@example.test>\r\n",
          "bob@example.test", "Sender: field by name");
    check("Sender", "From: a@example.test\r\n", "", "no Sender:");
}

static void test_limits(void)
{
    char hdr[20000], want[32];
    /* FROM_ADDRS_MAX addresses fit, one more does not */
    for (int extra = 0; extra <= 1; extra++) {
        strcpy(hdr, "From: ");
        for (int i = 0; i < FROM_ADDRS_MAX + extra; i++) {
            size_t u = strlen(hdr);
            snprintf(hdr + u, sizeof hdr - u, "%su%d@example.test", i ? ", " : "", i);
        }
        strcat(hdr, "\r\n");
        char out[16384];
        run("From", hdr, strlen(hdr), 0, out, sizeof out);
        if (extra)
            is_str(out, "ERR:too many addresses", "one address over FROM_ADDRS_MAX");
        else
            ok(strncmp(out, "u0@example.test ", 16) == 0 && strstr(out, "u31@example.test"),
               "FROM_ADDRS_MAX addresses kept");
    }
    /* an address of FROM_ADDR_MAX octets fits, one more does not, in <> and bare */
    for (int extra = 0; extra <= 1; extra++)
        for (int angle = 0; angle <= 1; angle++) {
            size_t local = FROM_ADDR_MAX - strlen("@example.test") + (size_t)extra;
            strcpy(hdr, angle ? "From: <" : "From: ");
            memset(hdr + strlen(hdr), 'a', local);
            hdr[(angle ? 7 : 6) + local] = '\0';
            strcat(hdr, angle ? "@example.test>\r\n" : "@example.test\r\n");
            char out[1024];
            run("From", hdr, 1, 0, out, sizeof out);
            snprintf(want, sizeof want, "%s", extra ? "ERR:address too long" : "");
            if (extra)
                is_str(out, want, angle ? "over-long address in <>" : "over-long bare address");
            else
                ok(strlen(out) == FROM_ADDR_MAX, "an address of FROM_ADDR_MAX octets (%s)",
                   angle ? "<>" : "bare");
        }
    /* NUL or a control character inside quotes would cut the address short:
     * "bob@example.test<NUL>"@evil.test must never read as bob@example.test */
    static const char nul[] = "From: \"bob@example.test\0\"@evil.test\r\n";
    static const char ctl[] = "From: (\x01) \"bob\x1b\"@example.test\r\n";
    static struct from_parser fp;
    from_parser_init(&fp, "From");
    from_parser_feed(&fp, nul, sizeof nul - 1);
    is_int(from_parser_end(&fp), FROM_E_SYNTAX, "NUL inside a quoted string");
    from_parser_init(&fp, "From");
    from_parser_feed(&fp, ctl, sizeof ctl - 1);
    is_int(from_parser_end(&fp), FROM_E_SYNTAX, "control characters in a comment and quotes");
    /* a display name longer than an address is fine */
    strcpy(hdr, "From: \"");
    memset(hdr + 7, 'n', 1000);
    strcpy(hdr + 1007, "\" <bob@example.test>\r\n");
    check("From", hdr, "bob@example.test", "a 1000-octet display name");
}

int main(void)
{
    test_cases();
    test_limits();
    return tap_done();
}
