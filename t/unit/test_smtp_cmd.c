/*
 * t/unit/test_smtp_cmd.c — the SMTP command parser: verbs (case, NULs,
 * garbage), MAIL FROM / RCPT TO paths and ESMTP parameters with every
 * error reply, and the HELO argument check.  Table-driven: each row is a
 * whole command line run through smtp_cmd_parse and, for MAIL and RCPT,
 * through smtp_parse_mail / smtp_parse_rcpt.
 */
#include <string.h>

#include "proto/smtp_cmd.h"
#include "t/unit/tap.h"

struct row {
    const char *line;
    size_t len;
    int rc;                 /* smtp_cmd_parse */
    enum smtp_verb verb;
    const char *arg;        /* expected arg (non-MAIL/RCPT rows), NULL: skip */
    int code;               /* MAIL/RCPT: 0 = accepted, else the reply code */
    const char *enh;
    const char *full;       /* path.full when accepted */
    long long size;
    enum smtp_body body;
};

#define L(s) s, sizeof(s) - 1
#define V(s, verb, arg) { L(s), 0, verb, arg, 0, NULL, NULL, -1, SMTP_BODY_7BIT }
#define BAD(s) { L(s), -1, SMTP_V_UNKNOWN, "", 0, NULL, NULL, -1, SMTP_BODY_7BIT }
#define MOK(s, full, size, body) { L(s), 0, SMTP_V_MAIL, NULL, 0, NULL, full, size, body }
#define MERR(s, code, enh) { L(s), 0, SMTP_V_MAIL, NULL, code, enh, NULL, -1, SMTP_BODY_7BIT }
#define ROK(s, full) { L(s), 0, SMTP_V_RCPT, NULL, 0, NULL, full, -1, SMTP_BODY_7BIT }
#define RERR(s, code, enh) { L(s), 0, SMTP_V_RCPT, NULL, code, enh, NULL, -1, SMTP_BODY_7BIT }
#define B7 SMTP_BODY_7BIT
#define B8 SMTP_BODY_8BITMIME

static const struct row rows[] = {
    /* verbs */
    V("HELO example.com", SMTP_V_HELO, "example.com"),
    V("ehlo example.com", SMTP_V_EHLO, "example.com"),
    V("EhLo x", SMTP_V_EHLO, "x"),
    V("HELO  x", SMTP_V_HELO, " x"),
    V("DATA", SMTP_V_DATA, ""),
    V("data ", SMTP_V_DATA, ""),
    V("RSET", SMTP_V_RSET, ""),
    V("noop hello there", SMTP_V_NOOP, "hello there"),
    V("QUIT", SMTP_V_QUIT, ""),
    V("VRFY bob", SMTP_V_VRFY, "bob"),
    V("EXPN list", SMTP_V_EXPN, "list"),
    V("help", SMTP_V_HELP, ""),
    V("STARTTLS", SMTP_V_STARTTLS, ""),
    V("StartTls", SMTP_V_STARTTLS, ""),
    V("AUTH PLAIN AGJvYgBwdw==", SMTP_V_AUTH, "PLAIN AGJvYgBwdw=="),
    V("BDAT 100 LAST", SMTP_V_BDAT, "100 LAST"),
    V("MAILX FROM:<a@b.c>", SMTP_V_UNKNOWN, "FROM:<a@b.c>"),
    V("MAIL:FROM:<a@b.c>", SMTP_V_UNKNOWN, ""),
    V("STARTTLSX", SMTP_V_UNKNOWN, ""),
    V("HEL", SMTP_V_UNKNOWN, ""),
    V("\x01\x02\x03", SMTP_V_UNKNOWN, ""),
    V("HE\0LO x", SMTP_V_UNKNOWN, ""),
    V("MAIL FROM:<a@b.c>\0", SMTP_V_UNKNOWN, ""),
    V("\0", SMTP_V_UNKNOWN, ""),
    BAD(""),
    BAD(" HELO x"),
    /* MAIL FROM */
    MOK("MAIL FROM:<a@example.com>", "a@example.com", -1, B7),
    MOK("mail from:<a@Example.COM>", "a@example.com", -1, B7),
    MOK("Mail From:<A@b.c>", "A@b.c", -1, B7),
    MOK("MAIL FROM: <a@b.c>", "a@b.c", -1, B7),
    MOK("MAIL FROM:<>", "", -1, B7),
    MOK("MAIL FROM:<> SIZE=100", "", 100, B7),
    MOK("MAIL FROM:<a@b.c> SIZE=12345 BODY=8BITMIME", "a@b.c", 12345, B8),
    MOK("MAIL FROM:<a@b.c>  body=8bitmime   size=0  ", "a@b.c", 0, B8),
    MOK("MAIL FROM:<a@b.c> BODY=7bit", "a@b.c", -1, B7),
    MOK("MAIL FROM:<a@b.c> SIZE=999999999999999999", "a@b.c", 999999999999999999LL, B7),
    MOK("MAIL FROM:<a@b.c> SIZE=007", "a@b.c", 7, B7),
    MOK("MAIL FROM:<@x.y,@z.w:a@b.c>", "a@b.c", -1, B7),
    MOK("MAIL FROM:<\"a b\"@c.d>", "\"a b\"@c.d", -1, B7),
    MOK("MAIL FROM:<a@[192.0.2.1]>", "a@[192.0.2.1]", -1, B7),
    MOK("MAIL FROM:<a%b!c@d.e>", "a%b!c@d.e", -1, B7),
    MERR("MAIL FROM:  <a@b.c>", 501, "5.1.7"),
    MERR("MAIL FROM:a@b.c", 501, "5.1.7"),
    MERR("MAIL FROM:<a@b.c", 501, "5.1.7"),
    MERR("MAIL FROM:<a..b@c.d>", 501, "5.1.7"),
    MERR("MAIL FROM:<\xc3\xa4@b.c>", 553, "5.6.7"),
    MERR("MAIL FROM:<user>", 501, "5.1.7"),
    MERR("MAIL FROM:<postmaster>", 501, "5.1.7"),
    MERR("MAIL FROM:", 501, "5.1.7"),
    MERR("MAIL TO:<a@b.c>", 501, "5.5.4"),
    MERR("MAIL FROM <a@b.c>", 501, "5.5.4"),
    MERR("MAIL FROM :<a@b.c>", 501, "5.5.4"),
    MERR("MAIL", 501, "5.5.4"),
    MERR("MAIL FROM:<a@b.c>x", 501, "5.5.4"),
    MERR("MAIL FROM:<a@b.c> @@", 501, "5.5.4"),
    MERR("MAIL FROM:<a@b.c> -X=1", 501, "5.5.4"),
    MERR("MAIL FROM:<a@b.c> SIZE=", 501, "5.5.4"),
    MERR("MAIL FROM:<a@b.c> SIZE", 501, "5.5.4"),
    MERR("MAIL FROM:<a@b.c> SIZE=12a", 501, "5.5.4"),
    MERR("MAIL FROM:<a@b.c> SIZE=-1", 501, "5.5.4"),
    MERR("MAIL FROM:<a@b.c> SIZE=1234567890123456789", 501, "5.5.4"),
    MERR("MAIL FROM:<a@b.c> BODY=BINARYMIME", 501, "5.5.4"),
    MERR("MAIL FROM:<a@b.c> BODY=", 501, "5.5.4"),
    MERR("MAIL FROM:<a@b.c> BODY=8BITMIMEX", 501, "5.5.4"),
    MERR("MAIL FROM:<a@b.c> AUTH=<>", 555, "5.5.4"),
    MERR("MAIL FROM:<> X-FOO", 555, "5.5.4"),
    /* RCPT TO */
    ROK("RCPT TO:<b@example.org>", "b@example.org"),
    ROK("rcpt to:<B@EXAMPLE.org>", "B@example.org"),
    ROK("RCPT TO: <b@c.d>", "b@c.d"),
    ROK("RCPT TO:<b@c.d>  ", "b@c.d"),
    ROK("RCPT TO:<postmaster>", "postmaster"),
    ROK("RCPT TO:<PostMaster>", "postmaster"),
    ROK("RCPT TO:<postmaster> ", "postmaster"),
    ROK("RCPT TO:<postmaster@example.org>", "postmaster@example.org"),
    RERR("RCPT TO:<>", 501, "5.1.3"),
    RERR("RCPT TO:<bob>", 501, "5.1.3"),
    RERR("RCPT TO:<\"postmaster\">", 501, "5.1.3"),
    RERR("RCPT TO:b@c.d", 501, "5.1.3"),
    RERR("RCPT TO:", 501, "5.1.3"),
    RERR("RCPT TO:<b@-c.d>", 501, "5.1.3"),
    RERR("RCPT FROM:<b@c.d>", 501, "5.5.4"),
    RERR("RCPT", 501, "5.5.4"),
    RERR("RCPT TO:<b@c.d>junk", 501, "5.5.4"),
    RERR("RCPT TO:<postmaster>x", 501, "5.5.4"),
    RERR("RCPT TO:<b@c.d> SIZE=10", 555, "5.5.4"),
    RERR("RCPT TO:<postmaster> X", 555, "5.5.4"),
};

static void check_mail(const struct row *r, const struct smtp_cmd *c, int i)
{
    struct smtp_mail_args m;
    struct smtp_err e = { 0, NULL, NULL };
    int rc = smtp_parse_mail(c->arg, &m, &e);

    if (r->code == 0) {
        is_int(rc, 0, "mail accepted");
        is_str(m.path.full, r->full, "mail path");
        is_int(m.size, r->size, "mail SIZE");
        is_int(m.body, r->body, "mail BODY");
        return;
    }
    is_int(rc, -1, "mail rejected");
    is_int(e.code, r->code, "mail reply code");
    is_str(e.enh, r->enh, "mail enhanced code");
    ok(e.text != NULL && e.text[0] != '\0', "row %d: has a text", i);
}

static void check_rcpt(const struct row *r, const struct smtp_cmd *c, int i)
{
    struct smtp_rcpt_args a;
    struct smtp_err e = { 0, NULL, NULL };
    int rc = smtp_parse_rcpt(c->arg, &a, &e);

    if (r->code == 0) {
        is_int(rc, 0, "rcpt accepted");
        is_str(a.path.full, r->full, "rcpt path");
        ok(!a.path.is_null, "row %d: not null", i);
        return;
    }
    is_int(rc, -1, "rcpt rejected");
    is_int(e.code, r->code, "rcpt reply code");
    is_str(e.enh, r->enh, "rcpt enhanced code");
    ok(e.text != NULL && e.text[0] != '\0', "row %d: has a text", i);
}

static void table(void)
{
    size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *r = &rows[i];
        struct smtp_cmd c;
        int rc = smtp_cmd_parse(r->line, r->len, &c);

        printf("# row %zu: \"%s\"\n", i, r->line);
        is_int(rc, r->rc, "parse rc");
        is_int(c.verb, r->verb, "verb");
        ok(c.arg != NULL, "row %zu: arg never NULL", i);
        if (r->arg)
            is_str(c.arg, r->arg, "arg");
        if (rc == 0 && r->verb == SMTP_V_MAIL)
            check_mail(r, &c, (int)i);
        if (rc == 0 && r->verb == SMTP_V_RCPT)
            check_rcpt(r, &c, (int)i);
    }
}

/* The exact texts the brief promises for the common errors. */
static void texts(void)
{
    struct smtp_mail_args m;
    struct smtp_rcpt_args a;
    struct smtp_err e;

    smtp_parse_mail("FROM<a@b.c>", &m, &e);
    is_str(e.text, "Syntax: MAIL FROM:<address>", "MAIL syntax text");
    smtp_parse_rcpt("TO <a@b.c>", &a, &e);
    is_str(e.text, "Syntax: RCPT TO:<address>", "RCPT syntax text");
    smtp_parse_mail("FROM:<a@@b.c>", &m, &e);
    is_str(e.text, "Bad sender address syntax", "bad sender text");
    smtp_parse_rcpt("TO:<a@@b.c>", &a, &e);
    is_str(e.text, "Bad recipient address syntax", "bad recipient text");
    smtp_parse_rcpt("TO:<bob>", &a, &e);
    is_str(e.text, "Recipient address must contain a domain", "no-domain text");
    smtp_parse_rcpt("TO:<postmaster>", &a, &e);
    is_str(a.path.domain, "", "postmaster: empty domain");
    is_str(a.path.local, "postmaster", "postmaster: local part");
    is_int(smtp_parse_mail("FROM:<> SIZE=5", &m, &e), 0, "null sender with SIZE");
    ok(m.path.is_null, "null sender is_null");
}

static void helo(void)
{
    char longname[300];

    is_int(smtp_check_helo("mail.example.com"), 0, "helo: domain");
    is_int(smtp_check_helo("[192.0.2.1]"), 0, "helo: literal");
    is_int(smtp_check_helo("[IPv6:2001:db8::1]"), 0, "helo: v6 literal");
    is_int(smtp_check_helo("x"), 0, "helo: one octet");
    is_int(smtp_check_helo(""), -1, "helo: empty");
    is_int(smtp_check_helo("a b"), -1, "helo: space");
    is_int(smtp_check_helo("a "), -1, "helo: trailing space");
    is_int(smtp_check_helo("a\tb"), -1, "helo: tab");
    is_int(smtp_check_helo("a\rb"), -1, "helo: CR");
    is_int(smtp_check_helo("h\xc3\xa9llo"), -1, "helo: 8-bit");
    memset(longname, 'a', sizeof(longname));
    longname[255] = '\0';
    is_int(smtp_check_helo(longname), 0, "helo: 255 octets");
    longname[255] = 'a';
    longname[256] = '\0';
    is_int(smtp_check_helo(longname), -1, "helo: 256 octets");
}

/* DSN (RFC 3461) and SMTPUTF8 (RFC 6531) parameters. */
static void dsn_utf8(void)
{
    struct smtp_mail_args m;
    struct smtp_rcpt_args a;
    struct smtp_err e;
    char out[64];

    is_int(smtp_xtext_decode("a+2Bb+3D", 8, out, sizeof out), 0, "xtext decodes");
    is_str(out, "a+b=", "  +2B and +3D");
    is_int(smtp_xtext_decode("a+2b", 4, out, sizeof out), -1, "xtext: lower-case hex refused");
    is_int(smtp_xtext_decode("a+2", 3, out, sizeof out), -1, "xtext: short escape refused");
    is_int(smtp_xtext_decode("a+0A", 4, out, sizeof out), -1, "xtext: control character refused");
    is_int(smtp_xtext_decode("a=b", 3, out, sizeof out), -1, "xtext: '=' refused");
    is_int(smtp_xtext_decode("abcd", 4, out, 4), -1, "xtext: no room refused");

    is_int(smtp_parse_mail("FROM:<a@b.c> RET=HDRS ENVID=QQ+2B314159", &m, &e), 0, "RET and ENVID");
    ok(m.ret == SMTP_RET_HDRS && strcmp(m.envid, "QQ+314159") == 0, "  values kept");
    is_int(smtp_parse_mail("FROM:<a@b.c> ret=full", &m, &e), 0, "RET=FULL any case");
    is_int(m.ret, SMTP_RET_FULL, "  FULL");
    is_int(smtp_parse_mail("FROM:<a@b.c>", &m, &e), 0, "no DSN parameters");
    ok(m.ret == SMTP_RET_NONE && m.envid[0] == '\0' && !m.smtputf8, "  none kept");
    is_int(smtp_parse_mail("FROM:<a@b.c> RET=ALL", &m, &e), -1, "RET=ALL refused");
    is_int(e.code, 501, "  501");
    is_int(smtp_parse_mail("FROM:<a@b.c> RET=FULL RET=HDRS", &m, &e), -1, "RET twice refused");
    is_int(smtp_parse_mail("FROM:<a@b.c> RET", &m, &e), -1, "RET without value refused");
    is_int(smtp_parse_mail("FROM:<a@b.c> ENVID=a+zz", &m, &e), -1, "bad ENVID xtext refused");
    is_int(e.code, 501, "  501");
    {
        char line[200];
        memset(line, 0, sizeof line);
        strcpy(line, "FROM:<a@b.c> ENVID=");
        memset(line + strlen(line), 'x', 101);
        is_int(smtp_parse_mail(line, &m, &e), -1, "ENVID over 100 refused");
        line[strlen(line) - 1] = '\0';
        is_int(smtp_parse_mail(line, &m, &e), 0, "ENVID of 100 accepted");
    }
    is_int(smtp_parse_mail("FROM:<j\xc3\xb6rg@b\xc3\xbc" "cher.de> SMTPUTF8", &m, &e), 0,
           "UTF-8 sender with SMTPUTF8");
    ok(m.smtputf8, "  flag set");
    is_str(m.path.full, "j\xc3\xb6rg@b\xc3\xbc" "cher.de", "  path kept as UTF-8");
    is_int(smtp_parse_mail("FROM:<j\xc3\xb6rg@B\xc3\xbc" "CHER.de> SMTPUTF8", &m, &e), 0, "mixed case");
    is_str(m.path.domain, "b\xc3\xbc" "cher.de", "  ASCII of the domain lower-cased");
    is_int(smtp_parse_mail("FROM:<\"j \xc3\xb6\"@b.de> SMTPUTF8", &m, &e), 0, "UTF-8 in quotes");
    is_str(m.path.local, "\"j \xc3\xb6\"", "  quoted local part");
    is_int(smtp_parse_mail("FROM:<j\xc3\xb6rg@b.de>", &m, &e), -1, "UTF-8 without SMTPUTF8");
    ok(e.code == 553 && strcmp(e.enh, "5.6.7") == 0, "  553 5.6.7");
    is_int(smtp_parse_mail("FROM:<j\xc3rg@b.de> SMTPUTF8", &m, &e), -1, "broken UTF-8 refused");
    is_int(e.code, 501, "  501");
    is_int(smtp_parse_mail("FROM:<j\xc0\xafrg@b.de> SMTPUTF8", &m, &e), -1, "overlong refused");
    is_int(smtp_parse_mail("FROM:<j\xed\xa0\x80@b.de> SMTPUTF8", &m, &e), -1, "surrogate refused");
    is_int(smtp_parse_mail("FROM:<a@[1.2.3.\xc3\xa4]> SMTPUTF8", &m, &e), -1, "UTF-8 in a literal refused");
    is_int(smtp_parse_mail("FROM:<a@b.c> SMTPUTF8=YES", &m, &e), -1, "SMTPUTF8 with a value refused");
    is_int(smtp_parse_mail("FROM:<a@b.c> SMTPUTF8 SMTPUTF8", &m, &e), -1, "SMTPUTF8 twice refused");

    is_int(smtp_parse_rcpt("TO:<b@c.d> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;B+40x@c.d", &a, &e), 0,
           "NOTIFY and ORCPT");
    ok(a.notify == (SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY), "  bits");
    is_str(a.orcpt, "rfc822;B@x@c.d", "  ORCPT decoded");
    is_int(smtp_parse_rcpt("TO:<b@c.d> notify=never", &a, &e), 0, "NOTIFY=NEVER");
    is_int(a.notify, SMTP_NOTIFY_NEVER, "  NEVER");
    is_int(smtp_parse_rcpt("TO:<b@c.d> NOTIFY=NEVER,FAILURE", &a, &e), -1, "NEVER with others refused");
    is_int(e.code, 501, "  501");
    is_int(smtp_parse_rcpt("TO:<b@c.d> NOTIFY=FAILURE,FAILURE", &a, &e), -1, "a keyword twice refused");
    is_int(smtp_parse_rcpt("TO:<b@c.d> NOTIFY=SUCCESS,", &a, &e), -1, "trailing comma refused");
    is_int(smtp_parse_rcpt("TO:<b@c.d> NOTIFY=SOMETIMES", &a, &e), -1, "unknown NOTIFY refused");
    is_int(smtp_parse_rcpt("TO:<b@c.d> NOTIFY=DELAY NOTIFY=DELAY", &a, &e), -1, "NOTIFY twice refused");
    is_int(smtp_parse_rcpt("TO:<b@c.d> ORCPT=b@c.d", &a, &e), -1, "ORCPT without type refused");
    is_int(smtp_parse_rcpt("TO:<b@c.d> ORCPT=rfc822;", &a, &e), -1, "ORCPT without address refused");
    is_int(smtp_parse_rcpt("TO:<b@c.d> ORCPT=rfc822;a+4", &a, &e), -1, "ORCPT bad xtext refused");
    is_int(smtp_parse_rcpt("TO:<b@c.d> SMTPUTF8", &a, &e), -1, "SMTPUTF8 at RCPT refused");
    is_int(e.code, 555, "  555");
    is_int(smtp_parse_rcpt("TO:<b@c.d> RET=FULL", &a, &e), -1, "RET at RCPT refused");
    is_int(smtp_parse_rcpt("TO:<\xc3\xa9@c.d>", &a, &e), -1, "UTF-8 recipient without SMTPUTF8");
    ok(e.code == 553 && strcmp(e.enh, "5.6.7") == 0, "  553 5.6.7");
    is_int(smtp_parse_rcpt_utf8("TO:<\xc3\xa9@c.d>", 1, &a, &e), 0, "UTF-8 recipient with SMTPUTF8");
    is_str(a.path.full, "\xc3\xa9@c.d", "  kept");
    is_int(smtp_parse_rcpt_utf8("TO:<b@c.d> NOTIFY=FAILURE", 1, &a, &e), 0, "ASCII with SMTPUTF8");
    is_int(a.notify, SMTP_NOTIFY_FAILURE, "  NOTIFY too");
}

int main(void)
{
    dsn_utf8();
    table();
    texts();
    helo();
    return tap_done();
}
