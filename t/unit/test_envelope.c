/*
 * t/unit/test_envelope.c — envelope format round trips and rejections,
 * the shared %-encoding, and the maildrop file (write + parse).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/envelope.h"
#include "lib/pctenc.h"
#include "queue/maildrop.h"
#include "t/unit/tap.h"

#define ID "0005E8C2F1A2B001"

static char err[256];

/* ------------------------------------------------------------------ */

static int parse_str(const char *s, struct envelope *e)
{
    return env_parse(s, strlen(s), e, err, sizeof(err));
}

static void build(struct envelope *e)
{
    env_init(e);
    memcpy(e->id, ID, QID_LEN + 1);
    e->arrival_us = 1763900000123456LL;
    e->size = 1234;
    e->attempts = 3;
    e->next_try = 1763900300;
    e->warned = 1;
    e->flags = ENV_F_BOUNCE;
    env_set_sender(e, "\"odd sender\"@example.com");
    env_set_client(e, "127.0.0.1", "mail.example.com", "ESMTP");
    env_add_rcpt(e, "\"john smith\"@example.org", "");
    env_add_rcpt(e, "100%@example.org", "Alias@Example.org");
    env_add_rcpt(e, "\xc3\xa9t\xc3\xa9@exemple.fr", "-");
    env_add_rcpt(e, "-", "");
    env_rcpt_set(&e->rcpts[0], RCPT_SENT, "2.0.0", "250 ok");
    env_rcpt_set(&e->rcpts[1], RCPT_BOUNCED, "5.1.1", "550 5.1.1 <100%@example.org>: no\tsuch user");
    env_rcpt_set(&e->rcpts[2], RCPT_PENDING, "4.4.1", "connect to mx[1.2.3.4]:25: timed out");
    env_rcpt_set(&e->rcpts[3], RCPT_DONE, "", "-");
}

static int env_equal(const struct envelope *a, const struct envelope *b)
{
    size_t i;

    if (strcmp(a->id, b->id) || a->arrival_us != b->arrival_us || a->size != b->size ||
        a->attempts != b->attempts || a->next_try != b->next_try ||
        a->warned != b->warned || a->flags != b->flags || a->nrcpt != b->nrcpt ||
        strcmp(a->sender, b->sender) || strcmp(a->client, b->client) ||
        strcmp(a->helo, b->helo) || strcmp(a->proto, b->proto) || a->ret != b->ret ||
        strcmp(a->envid ? a->envid : "", b->envid ? b->envid : ""))
        return 0;
    for (i = 0; i < a->nrcpt; i++) {
        const struct env_rcpt *x = &a->rcpts[i], *y = &b->rcpts[i];
        if (x->state != y->state || strcmp(x->addr, y->addr) || strcmp(x->orcpt, y->orcpt) ||
            strcmp(x->dsn, y->dsn) || strcmp(x->text, y->text) || x->notify != y->notify ||
            x->attempts != y->attempts || x->last_try != y->last_try ||
            strcmp(x->dsn_orcpt, y->dsn_orcpt) || strcmp(x->remote, y->remote) ||
            strcmp(x->tls, y->tls))
            return 0;
    }
    return 1;
}

static void test_round_trip(void)
{
    struct envelope e, p;
    char *buf = NULL;
    size_t len = 0;

    build(&e);
    env_init(&p);
    is_int(env_format(&e, &buf, &len), 0, "format");
    ok(len > 0 && buf[len - 1] == '\n' && len >= 4 && memcmp(buf + len - 4, "end\n", 4) == 0,
       "ends with end marker");
    ok(strncmp(buf, "hato-envelope 2\nid " ID "\n", 36) == 0, "header and id first");
    ok(strstr(buf, "\nsender \"odd%20sender\"@example.com\n") != NULL, "sender encoded");
    ok(strstr(buf, "\nrcpt B 100%25@example.org Alias@Example.org 0 - 0 0 - - 5.1.1 ") != NULL,
       "percent encoded");
    ok(strstr(buf, "\nrcpt P %C3%A9t%C3%A9@exemple.fr %2D 0 - 0 0 - - 4.4.1 ") != NULL,
       "non-ASCII and literal dash encoded");
    ok(strstr(buf, "\nrcpt D %2D - 0 - 0 0 - - - %2D\n") != NULL, "dash address, empty tokens");
    ok(strstr(buf, "no%09such") != NULL, "tab encoded");
    is_int(env_parse(buf, len, &p, err, sizeof(err)), 0, "parse back");
    ok(env_equal(&e, &p), "round trip equal");
    is_str(p.rcpts[2].orcpt, "-", "literal dash orcpt survives");
    is_str(p.rcpts[3].addr, "-", "literal dash address survives");
    is_str(p.rcpts[3].dsn, "", "empty dsn survives");
    is_int(env_pending(&p), 1, "one pending");
    free(buf);
    env_clear(&p);
    env_clear(&e);
}

static void test_null_sender(void)
{
    struct envelope e, p;
    char *buf = NULL;
    size_t len = 0;

    build(&e);
    env_init(&p);
    env_set_sender(&e, "");
    env_set_client(&e, "local", "", "local");
    is_int(env_format(&e, &buf, &len), 0, "format null sender");
    ok(strstr(buf, "\nsender\n") != NULL, "sender line empty");
    ok(strstr(buf, "\nhelo -\n") != NULL, "no helo written as -");
    is_int(env_parse(buf, len, &p, err, sizeof(err)), 0, "parse null sender");
    is_str(p.sender, "", "null sender read back");
    is_str(p.helo, "", "empty helo read back");
    free(buf);
    env_clear(&p);
    env_clear(&e);
}

static void test_truncation(void)
{
    struct envelope e, p;
    char *buf = NULL;
    size_t len = 0, cut;
    int bad = 0;

    build(&e);
    env_init(&p);
    env_format(&e, &buf, &len);
    for (cut = 0; cut < len; cut++) {
        char *copy = malloc(cut ? cut : 1);   /* exact size: ASan sees overreads */
        if (copy == NULL)
            abort();
        memcpy(copy, buf, cut);
        if (env_parse(copy, cut, &p, err, sizeof(err)) == 0 && !env_equal(&e, &p))
            bad++;
        env_clear(&p);
        free(copy);
    }
    is_int(bad, 0, "every truncation rejected or equal");
    is_int(env_parse(buf, len - 1, &p, err, sizeof(err)), -1, "missing final newline rejected");
    ok(strstr(err, "end") != NULL, "reason mentions end marker: %s", err);
    free(buf);
    env_clear(&e);
}

#define GOOD_HEAD "hato-envelope 1\nid " ID "\narrival 1\nsender a@b\nclient local\n" \
                  "helo -\nproto ESMTP\nsize 10\nattempts 0\nnext_try 0\nwarned 0\nflags 0\n"
#define GOOD_HEAD2 "hato-envelope 2\nid " ID "\narrival 1\nsender a@b\nclient local\n" \
                   "helo -\nproto ESMTP\nsize 10\nattempts 0\nnext_try 0\nwarned 0\nflags 0\n" \
                   "ret 0\nenvid -\n"

static void expect_bad(const char *text, const char *name)
{
    struct envelope e;

    env_init(&e);
    if (!ok(parse_str(text, &e) == -1, "%s", name))
        return;
    ok(err[0] != '\0', "  with a reason (%s)", err);
    ok(e.nrcpt == 0 && e.sender == NULL, "  envelope cleared");
}

static void test_rejections(void)
{
    struct envelope e;
    char *big;

    env_init(&e);
    is_int(parse_str(GOOD_HEAD "rcpt P a@b - - -\nend\n", &e), 0, "minimal good file");
    is_int(e.nrcpt, 1, "  one rcpt");
    env_clear(&e);
    is_int(parse_str(GOOD_HEAD "end\n", &e), 0, "no recipients is allowed");
    env_clear(&e);
    is_int(parse_str(GOOD_HEAD "rcpt P a@b - - %7e\nend\n", &e), 0, "lower-case escape");
    is_str(e.rcpts[0].text, "~", "  decoded");
    env_clear(&e);

    expect_bad(GOOD_HEAD "rcpt P a@b - - -\n", "missing end marker");
    expect_bad(GOOD_HEAD "rcpt P a@b - - -\nend", "end without newline");
    expect_bad(GOOD_HEAD "end\nrcpt P a@b - - -\n", "data after end");
    expect_bad(GOOD_HEAD "end\n\n", "blank line after end");
    expect_bad("", "empty input");
    expect_bad("end\n", "end only");
    expect_bad("hato-envelope 3\nend\n", "version 3 rejected");
    expect_bad("hato-envelope 1\nend\n", "header + end, keys missing");
    expect_bad(GOOD_HEAD "rcpt X a@b - - -\nend\n", "bad state letter");
    expect_bad(GOOD_HEAD "rcpt p a@b - - -\nend\n", "lower-case state letter");
    expect_bad(GOOD_HEAD "rcpt PP a@b - - -\nend\n", "two-letter state");
    expect_bad(GOOD_HEAD "rcpt P a@b - -\nend\n", "rcpt with 4 tokens");
    expect_bad(GOOD_HEAD "rcpt P a@b - - - x\nend\n", "rcpt with 6 tokens");
    expect_bad(GOOD_HEAD "rcpt P a@b  - - -\nend\n", "rcpt with empty token");
    expect_bad(GOOD_HEAD "rcpt P a@b - - -x \nend\n", "rcpt trailing space");
    expect_bad(GOOD_HEAD "rcpt P - - - -\nend\n", "rcpt empty address");
    expect_bad(GOOD_HEAD "rcpt P a@b - - %4\nend\n", "short escape");
    expect_bad(GOOD_HEAD "rcpt P a@b - - %zz\nend\n", "non-hex escape");
    expect_bad(GOOD_HEAD "rcpt P a@b - - a%00b\nend\n", "NUL escape");
    expect_bad(GOOD_HEAD "rcpt P a@b - - a\tb\nend\n", "raw tab");
    expect_bad(GOOD_HEAD "rcpt P a@b - - \xc3\xa9\nend\n", "raw non-ASCII");
    expect_bad(GOOD_HEAD "rcpt P a@b - - -\r\nend\n", "CRLF");
    expect_bad(GOOD_HEAD "color blue\nend\n", "unknown key");
    expect_bad(GOOD_HEAD "size 11\nend\n", "duplicate key");
    expect_bad("hato-envelope 1\nid " ID "\nend\n", "missing keys");
    expect_bad("hato-envelope 1\nid 0005e8c2f1a2b001\narrival 1\nsender a@b\nclient local\n"
               "helo -\nproto ESMTP\nsize 10\nattempts 0\nnext_try 0\nwarned 0\nflags 0\nend\n",
               "bad queue id");
    expect_bad("hato-envelope 1\nid " ID "\narrival -1\nsender a@b\nclient local\n"
               "helo -\nproto ESMTP\nsize 10\nattempts 0\nnext_try 0\nwarned 0\nflags 0\nend\n",
               "negative number");
    expect_bad("hato-envelope 1\nid " ID "\narrival 1\nsender a@b\nclient local\n"
               "helo -\nproto ESMTP\nsize 10\nattempts 99999999999\nnext_try 0\nwarned 0\n"
               "flags 0\nend\n", "int overflow");
    expect_bad("hato-envelope 1\nid " ID "\narrival 99999999999999999999\nsender a@b\n"
               "client local\nhelo -\nproto ESMTP\nsize 10\nattempts 0\nnext_try 0\n"
               "warned 0\nflags 0\nend\n", "long long overflow");
    expect_bad("hato-envelope 1\nid " ID "\narrival 1\nsender a b\nclient local\n"
               "helo -\nproto ESMTP\nsize 10\nattempts 0\nnext_try 0\nwarned 0\nflags 0\nend\n",
               "raw space in value");

    /* value and line limits */
    big = malloc(20000);
    if (big == NULL)
        return;
    memset(big, 'a', 4097);
    snprintf(big + 4097, 20000 - 4097, "@b - - -\nend\n");
    {
        char *doc = malloc(30000);
        if (doc == NULL)
            abort();
        snprintf(doc, 30000, GOOD_HEAD "rcpt P %s", big);
        expect_bad(doc, "value over 4 KiB");
        memset(big, 'a', 3000);
        big[3000] = '\0';
        snprintf(doc, 30000, GOOD_HEAD "rcpt P %s %s %s -\nend\n", big, big, big);
        env_init(&e);
        is_int(parse_str(doc, &e), 0, "9 KiB line accepted");
        env_clear(&e);
        snprintf(doc, 30000, GOOD_HEAD2 "rcpt P %s %s 0 %s 0 0 %s %s %s -\nend\n",
                 big, big, big, big, big, big);
        expect_bad(doc, "line over 16 KiB");
        snprintf(doc, 30000, GOOD_HEAD "rcpt P %s %s - -\nend\n", big, big);
        env_init(&e);
        is_int(parse_str(doc, &e), 0, "6 KiB line accepted");
        env_clear(&e);
        free(doc);
    }
    free(big);
}

static void test_rcpt_limit(void)
{
    const size_t line = strlen("rcpt P a@b - - -\n");
    size_t n, i, hl = strlen(GOOD_HEAD);
    char *doc = malloc(hl + 100001 * line + 8);
    struct envelope e;
    char *p;

    memcpy(doc, GOOD_HEAD, hl);
    for (n = 100000; n <= 100001; n++) {
        p = doc + hl;
        for (i = 0; i < n; i++, p += line)
            memcpy(p, "rcpt P a@b - - -\n", line);
        memcpy(p, "end\n", 4);
        p += 4;
        env_init(&e);
        if (n == 100000) {
            is_int(env_parse(doc, (size_t)(p - doc), &e, err, sizeof(err)), 0,
                   "100000 recipients accepted");
            is_int(e.nrcpt, 100000, "  all there");
        } else {
            is_int(env_parse(doc, (size_t)(p - doc), &e, err, sizeof(err)), -1,
                   "100001 recipients rejected");
        }
        env_clear(&e);
    }
    free(doc);
}

static void test_setters(void)
{
    struct envelope e, c;
    char *a = NULL, *b = NULL, *longtext;
    size_t al = 0, bl = 0, i;

    build(&e);
    env_init(&c);
    is_int(env_add_rcpt(&e, "", ""), -1, "empty address refused");
    is_int(env_add_rcpt(&e, NULL, ""), -1, "NULL address refused");
    is_int(env_rcpt_set(&e.rcpts[0], (enum rcpt_state)'Z', "", ""), -1, "bad state refused");
    is_str(e.rcpts[0].text, "250 ok", "  unchanged");

    /* a very long non-ASCII reason is cut, and still formats and parses */
    longtext = malloc(9001);
    for (i = 0; i < 9000; i++)
        longtext[i] = (char)(i % 2 ? 0xa9 : 0xc3);
    longtext[9000] = '\0';
    is_int(env_rcpt_set(&e.rcpts[2], RCPT_PENDING, "4.0.0", longtext), 0, "long reason set");
    is_int(env_format(&e, &a, &al), 0, "format with long reason");
    is_int(env_parse(a, al, &c, err, sizeof(err)), 0, "parse with long reason");
    ok(c.nrcpt == e.nrcpt && strlen(c.rcpts[2].text) > 1000 &&
       strncmp(c.rcpts[2].text, longtext, strlen(c.rcpts[2].text)) == 0, "reason is a prefix");
    free(longtext);
    env_clear(&c);

    /* deep copy */
    env_init(&c);
    is_int(env_copy(&c, &e), 0, "copy");
    ok(env_equal(&c, &e), "copy equal");
    ok(c.rcpts != e.rcpts && c.sender != e.sender, "copy is deep");
    env_format(&c, &b, &bl);
    ok(al == bl && memcmp(a, b, al) == 0, "copy formats the same");
    env_clear(&c);

    /* format refuses what parse would refuse */
    memcpy(e.id, "nope", 5);
    free(b);
    b = NULL;
    is_int(env_format(&e, &b, &bl), -1, "format refuses a bad id");
    free(a);
    env_clear(&e);
}

/* ------------------------------------------------------------------ */

static void test_pct(void)
{
    char in[256], enc[1024], dec[256];
    int i, all = 1;

    for (i = 1; i < 256; i++)
        in[i - 1] = (char)i;
    in[255] = '\0';
    is_int(pct_encode(in, enc, sizeof(enc), 0), 0, "encode all bytes");
    for (i = 0; enc[i]; i++)
        if ((unsigned char)enc[i] <= 0x20 || (unsigned char)enc[i] >= 0x7f)
            all = 0;
    ok(all, "encoded is printable, no spaces");
    is_int(pct_decode(enc, dec, sizeof(dec), 0), 0, "decode all bytes");
    ok(strcmp(in, dec) == 0, "all bytes round trip");

    is_int(pct_encode("a b%c", enc, sizeof(enc), 0), 0, "encode simple");
    is_str(enc, "a%20b%25c", "space and percent");
    is_int(pct_encode("", enc, sizeof(enc), 1), 0, "encode empty dash");
    is_str(enc, "-", "empty -> -");
    is_int(pct_encode("", enc, sizeof(enc), 0), 0, "encode empty");
    is_str(enc, "", "empty -> empty without dash");
    is_int(pct_encode("-", enc, sizeof(enc), 1), 0, "encode dash");
    is_str(enc, "%2D", "literal dash escaped");
    is_int(pct_encode("-", enc, sizeof(enc), 0), 0, "encode dash, no dash mode");
    is_str(enc, "-", "dash kept");
    is_int(pct_encode("a-b", enc, sizeof(enc), 1), 0, "inner dash");
    is_str(enc, "a-b", "inner dash kept");
    is_int(pct_encode("abc", enc, 4, 0), 0, "exact room");
    is_int(pct_encode("abc", enc, 3, 0), -1, "one short");
    is_int(pct_encode(" ", enc, 3, 0), -1, "escape does not fit");
    is_int(pct_encode("", enc, 0, 0), -1, "zero room");

    is_int(pct_decode("-", dec, sizeof(dec), 1), 0, "decode dash");
    is_str(dec, "", "dash -> empty");
    is_int(pct_decode("-", dec, sizeof(dec), 0), 0, "decode dash, no dash mode");
    is_str(dec, "-", "dash stays");
    is_int(pct_decode("%2D", dec, sizeof(dec), 1), 0, "decode %2D");
    is_str(dec, "-", "%2D -> -");
    is_int(pct_decode("%c3%A9", dec, sizeof(dec), 0), 0, "mixed case hex");
    is_str(dec, "\xc3\xa9", "decoded");
    is_int(pct_decode("%", dec, sizeof(dec), 0), -1, "lone %");
    is_int(pct_decode("ab%4", dec, sizeof(dec), 0), -1, "short escape at end");
    is_int(pct_decode("%G0", dec, sizeof(dec), 0), -1, "non-hex first");
    is_int(pct_decode("%0G", dec, sizeof(dec), 0), -1, "non-hex second");
    is_int(pct_decode("%00", dec, sizeof(dec), 0), -1, "%00 refused");
    is_int(pct_decode("abc", dec, 3, 0), -1, "output too small");
    is_int(pct_decode("abc", dec, 4, 0), 0, "output exact");
    strcpy(enc, "x%41y");
    is_int(pct_decode(enc, enc, sizeof(enc), 0), 0, "decode in place");
    is_str(enc, "xAy", "in place result");
}

/* ------------------------------------------------------------------ */

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void test_maildrop(void)
{
    char dir[] = "/tmp/test_envelope.XXXXXX", name[64], path[512], src[512];
    const char *content = "Subject: hi\r\n\r\nbody line\nsecond\n";
    char *rcpts[] = { "a b@example.org", "100%@x", "\xc3\xa9@y" };
    struct maildrop_hdr h;
    char buf[4096];
    ssize_t n;
    int fd, in;

    if (!ok(mkdtemp(dir) != NULL, "mkdtemp"))
        return;
    snprintf(src, sizeof(src), "%s.src", dir);
    in = open(src, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ok(in >= 0 && write(in, content, strlen(content)) == (ssize_t)strlen(content) &&
       lseek(in, 0, SEEK_SET) == 0, "content source");
    is_int(maildrop_write(dir, "s@example.com", rcpts, 3, in, name, sizeof(name)), 0,
           "maildrop_write");
    close(in);
    ok(strlen(name) > 16 && strstr(name, ".tmp") == NULL, "name %s", name);
    is_int(count_entries(dir), 1, "one file, no .tmp left");
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_RDONLY);
    n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
    if (fd >= 0)
        close(fd);
    ok(n > 0, "read back");
    if (n <= 0)
        n = 0;
    is_int(maildrop_parse(buf, (size_t)n, &h, err, sizeof(err)), 0, "maildrop_parse");
    is_str(h.sender, "s@example.com", "sender");
    is_int(h.nrcpt, 3, "three rcpts");
    ok(h.uid == (long long)geteuid(), "the writer's euid is recorded");
    if (h.nrcpt == 3) {
        is_str(h.rcpts[0], rcpts[0], "rcpt with space");
        is_str(h.rcpts[1], rcpts[1], "rcpt with %");
        is_str(h.rcpts[2], rcpts[2], "non-ASCII rcpt");
    }
    ok((size_t)n - h.body_offset == strlen(content) &&
       memcmp(buf + h.body_offset, content, strlen(content)) == 0, "content intact");
    maildrop_hdr_free(&h);
    ok(h.rcpts == NULL && h.nrcpt == 0, "free zeroes");
    unlink(path);

    /* null sender, from a pipe */
    {
        int pfd[2];
        ok(pipe(pfd) == 0, "pipe");
        ok(write(pfd[1], "x\n", 2) == 2, "pipe write");
        close(pfd[1]);
        is_int(maildrop_write(dir, "", rcpts, 1, pfd[0], name, sizeof(name)), 0,
               "write null sender from pipe");
        close(pfd[0]);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        fd = open(path, O_RDONLY);
        n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
        if (fd >= 0)
            close(fd);
        is_int(maildrop_parse(buf, n > 0 ? (size_t)n : 0, &h, err, sizeof(err)), 0,
               "parse null sender");
        is_str(h.sender, "", "null sender");
        maildrop_hdr_free(&h);
        unlink(path);
    }
    errno = 0;
    is_int(maildrop_write(dir, "s@x", rcpts, 0, 0, name, sizeof(name)), -1, "no rcpts refused");
    is_int(errno, EINVAL, "  EINVAL");
    is_int(maildrop_write("/nonexistent/dir", "s@x", rcpts, 1, 0, name, sizeof(name)), -1,
           "missing dir refused");
    is_int(maildrop_write(dir, "s@x", rcpts, 1, 0, name, 8), -1, "name buffer too small");
    is_int(count_entries(dir), 0, "nothing left behind");

    /* parse errors */
    {
        static const char *const bad[] = {
            "hato-maildrop 2\nsender a\nrcpt b\n\nx",
            "hato-maildrop 1\nsender a\nrcpt b\nx",
            "hato-maildrop 1\nsender a\n\nx",
            "hato-maildrop 1\nrcpt b\n\nx",
            "hato-maildrop 1\nsender a\nrcpt b c\n\nx",
            "hato-maildrop 1\nsender a\nrcpt\n\nx",
            "hato-maildrop 1\nsender a\nrcpt %zz\n\nx",
            "hato-maildrop 1\nsender a\nrecipient b\n\nx",
            "hato-maildrop 1\nsender a\r\nrcpt b\n\nx",
            "",
        };
        size_t i;
        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            int rc = maildrop_parse(bad[i], strlen(bad[i]), &h, err, sizeof(err));
            ok(rc == -1 && h.rcpts == NULL && h.sender == NULL, "maildrop bad %zu (%s)", i, err);
        }
        is_int(maildrop_parse("hato-maildrop 1\nsender\nrcpt b\n\n", 31, &h, err, sizeof(err)),
               0, "empty body ok");
        is_int(h.body_offset, 31, "body offset at end");
        maildrop_hdr_free(&h);
    }
    unlink(src);
    ok(rmdir(dir) == 0, "temp dir removed");
}

/* env_add_rcpt_unique: O(1) duplicate suppression that survives growth,
 * sees plain adds, and is never shared by a copy. */
static void test_unique(void)
{
    struct envelope e, c;
    char a[64];
    int all_added = 1, all_dup = 1;
    env_init(&e);
    env_init(&c);
    is_int(env_add_rcpt_unique(&e, "bob@example.test", "bob@example.test"), 1, "unique: first add");
    is_int(env_add_rcpt_unique(&e, "bob@example.test", "x@example.test"), 0, "unique: duplicate refused");
    is_int(env_add_rcpt_unique(&e, "Bob@example.test", ""), 1, "unique: exact match only");
    env_add_rcpt(&e, "plain@example.test", "");
    is_int(env_add_rcpt_unique(&e, "plain@example.test", ""), 0, "unique: sees a plain add");
    for (int i = 0; i < 5000; i++) {
        snprintf(a, sizeof a, "u%d@example.test", i);
        if (env_add_rcpt_unique(&e, a, "") != 1)
            all_added = 0;
    }
    ok(all_added, "unique: 5000 distinct addresses added through many rehashes");
    for (int i = 0; i < 5000; i += 7) {
        snprintf(a, sizeof a, "u%d@example.test", i);
        if (env_add_rcpt_unique(&e, a, "") != 0)
            all_dup = 0;
    }
    ok(all_dup, "unique: every one of them is then a duplicate");
    is_int(e.nrcpt, 5003, "unique: recipient count");
    ok(env_copy(&c, &e) == 0 && c.index == NULL && c.nrcpt == e.nrcpt, "copy: no index shared");
    is_int(env_add_rcpt_unique(&c, "u1@example.test", ""), 0, "copy: builds its own index");
    env_clear(&e);
    ok(e.index == NULL && e.nrcpt == 0, "clear frees the index");
    env_clear(&c);
}

/* The "uid" line: written with the writer's euid, optional on reading,
 * strict in form; maildrop_header_end finds the empty line. */
static void test_maildrop_uid(void)
{
    struct maildrop_hdr h;
    char buf[256];
    const char *bad[] = { "uid -1", "uid 01", "uid 4294967295", "uid 1x", "uid ", "uid" };

    snprintf(buf, sizeof(buf), "hato-maildrop 1\nsender s@x\nuid 65534\nrcpt r@x\n\nbody");
    is_int(maildrop_parse(buf, strlen(buf), &h, err, sizeof(err)), 0, "parse with uid");
    ok(h.uid == 65534 && h.nrcpt == 1, "uid 65534, one rcpt");
    maildrop_hdr_free(&h);
    snprintf(buf, sizeof(buf), "hato-maildrop 1\nsender s@x\nrcpt r@x\n\nbody");
    is_int(maildrop_parse(buf, strlen(buf), &h, err, sizeof(err)), 0, "parse without uid");
    ok(h.uid == -1, "no uid: -1");
    maildrop_hdr_free(&h);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(buf, sizeof(buf), "hato-maildrop 1\nsender s@x\n%s\nrcpt r@x\n\n", bad[i]);
        ok(maildrop_parse(buf, strlen(buf), &h, err, sizeof(err)) == -1, "refused: %s", bad[i]);
    }
    snprintf(buf, sizeof(buf), "hato-maildrop 1\nsender s@x\nrcpt r@x\nuid 0\n\n");
    is_int(maildrop_parse(buf, strlen(buf), &h, err, sizeof(err)), -1, "uid only as line 3");
    is_int(maildrop_header_end("a\nb\n\nc", 7), 5, "header end");
    is_int(maildrop_header_end("a\nb\n", 4), 0, "header end not there yet");
    is_int(maildrop_header_end("", 0), 0, "header end of nothing");
}

static void test_version(void)
{
    char *buf = NULL;
    size_t len = 0;
    struct envelope e;

    env_init(&e);
    memcpy(e.id, "0005E8C2F1A2B001", QID_LEN + 1);
    env_set_sender(&e, "a@b");
    env_set_client(&e, "1.2.3.4", "h", "SMTP");
    env_add_rcpt(&e, "r@b", "");
    ok(env_format(&e, &buf, &len) == 0, "format");
    is_int(env_version(buf, len), ENV_VERSION, "env_format writes ENV_VERSION");
    is_int(env_version("hato-envelope 2\nid X\n", 21), 2, "a newer version is read as such");
    is_int(env_version("hato-envelope 17\n", 17), 17, "two digits");
    is_int(env_version("hato-envelope \n", 15), -1, "no number");
    is_int(env_version("hato-envelope 2", 15), -1, "no line end");
    is_int(env_version("hato-envelope 2x\n", 17), -1, "trailing junk");
    is_int(env_version("garbage\n", 8), -1, "no header");
    is_int(env_version(NULL, 0), -1, "nothing");
    is_int(env_version("hato-envelope 99999999999\n", 26), -1, "absurd number");
    free(buf);
    env_clear(&e);
}

/* Version 2: the DSN parameters and the per-recipient remote record
 * round-trip; a version 1 file still parses, with those fields empty. */
static void test_v2_fields(void)
{
    struct envelope e, p;
    char *buf = NULL;
    size_t len = 0;

    build(&e);
    env_init(&p);
    e.flags = ENV_F_SMTPUTF8;
    ok(env_set_dsn(&e, ENV_RET_HDRS, "QQ 314159") == 0, "set RET and ENVID");
    ok(env_rcpt_set_dsn(&e.rcpts[0], ENV_N_SUCCESS | ENV_N_DELAY, "rfc822;John@example.org") == 0,
       "set NOTIFY and ORCPT");
    ok(env_rcpt_set_remote(&e.rcpts[2], "mx.example.org[127.0.0.2]:25", "TLSv1.3 TLS_AES_256_GCM_SHA384",
                           1763900123) == 0, "set remote");
    env_rcpt_set_remote(&e.rcpts[2], "mx2.example.org[127.0.0.3]:25", "", 1763900456);
    ok(env_rcpt_set_dsn(&e.rcpts[1], ENV_N_NEVER | ENV_N_FAILURE, NULL) == -1, "NEVER with others refused");
    ok(env_rcpt_set_dsn(&e.rcpts[1], 0x10, NULL) == -1, "unknown NOTIFY bit refused");
    ok(env_set_dsn(&e, 3, NULL) == -1, "unknown RET refused");
    is_int(env_format(&e, &buf, &len), 0, "format v2");
    ok(strstr(buf, "\nret 2\nenvid QQ%20314159\n") != NULL, "ret and envid written");
    ok(strstr(buf, "\nrcpt S \"john%20smith\"@example.org - 5 rfc822;John@example.org 0 0 - - 2.0.0 ")
       != NULL, "notify and orcpt written");
    ok(strstr(buf, " %2D 0 - 2 1763900456 mx2.example.org[127.0.0.3]:25 - 4.4.1 ") != NULL,
       "attempts, last try, remote written");
    ok(env_parse(buf, len, &p, err, sizeof(err)) == 0, "parse v2 (%s)", err);
    ok(env_equal(&e, &p), "round trip equal");
    is_int(p.ret, ENV_RET_HDRS, "RET back");
    is_str(p.envid, "QQ 314159", "ENVID back");
    is_int(p.flags, ENV_F_SMTPUTF8, "SMTPUTF8 flag back");
    is_int(p.rcpts[0].notify, ENV_N_SUCCESS | ENV_N_DELAY, "NOTIFY back");
    is_str(p.rcpts[0].dsn_orcpt, "rfc822;John@example.org", "ORCPT back");
    is_int(p.rcpts[2].attempts, 2, "attempts counted");
    is_int((int)(p.rcpts[2].last_try - 1763900000), 456, "last try back");
    is_str(p.rcpts[2].remote, "mx2.example.org[127.0.0.3]:25", "remote back");
    is_str(p.rcpts[2].tls, "", "no TLS on the last attempt");
    env_clear(&p);
    ok(env_copy(&p, &e) == 0 && env_equal(&e, &p) && strcmp(p.envid, "QQ 314159") == 0 &&
       strcmp(p.rcpts[2].remote, e.rcpts[2].remote) == 0 && p.rcpts[0].notify == e.rcpts[0].notify,
       "env_copy keeps the v2 fields");
    free(buf);
    env_clear(&p);
    env_clear(&e);

    is_int(parse_str(GOOD_HEAD "rcpt B a@b o@b 5.1.1 550%20no\nend\n", &p), 0, "version 1 file read");
    ok(p.ret == 0 && strcmp(p.envid, "") == 0 && p.rcpts[0].notify == 0 &&
       strcmp(p.rcpts[0].dsn_orcpt, "") == 0 && strcmp(p.rcpts[0].remote, "") == 0 &&
       p.rcpts[0].attempts == 0 && strcmp(p.rcpts[0].text, "550 no") == 0,
       "  new fields empty, old ones kept");
    env_clear(&p);
    is_int(parse_str(GOOD_HEAD2 "rcpt P a@b - 2 - 1 7 h[1.2.3.4]:25 - - -\nend\n", &p), 0,
           "version 2 file read");
    env_clear(&p);
    expect_bad(GOOD_HEAD "ret 0\nend\n", "ret in a version 1 file");
    expect_bad(GOOD_HEAD2 "rcpt P a@b - - -\nend\n", "v1 rcpt line in a version 2 file");
    expect_bad(GOOD_HEAD "rcpt P a@b - 2 - 1 7 h - - -\nend\n", "v2 rcpt line in a version 1 file");
    expect_bad(GOOD_HEAD2 "rcpt P a@b - 16 - 1 7 h - - -\nend\n", "NOTIFY out of range");
    expect_bad(GOOD_HEAD2 "rcpt P a@b - x - 1 7 h - - -\nend\n", "NOTIFY not a number");
    expect_bad(GOOD_HEAD2 "rcpt P a@b - 2 - -1 7 h - - -\nend\n", "negative attempts");
    expect_bad("hato-envelope 2\nid " ID "\narrival 1\nsender a@b\nclient local\n"
               "helo -\nproto ESMTP\nsize 10\nattempts 0\nnext_try 0\nwarned 0\nflags 0\n"
               "end\n", "version 2 without ret and envid");
}

/* What the outbound agent passes on to a next hop that offers DSN. */
static void test_dsn_params(void)
{
    struct envelope e;
    char buf[ENV_DSN_PARAMS_MAX];

    env_init(&e);
    env_add_rcpt(&e, "a@b", "");
    is_int(env_dsn_mail_params(&e, buf, sizeof buf), 0, "no DSN parameters at MAIL");
    is_str(buf, "", "  empty");
    is_int(env_dsn_rcpt_params(&e.rcpts[0], buf, sizeof buf), 0, "none at RCPT");
    is_str(buf, "", "  empty");
    env_set_dsn(&e, ENV_RET_HDRS, "a+b=c d");
    env_dsn_mail_params(&e, buf, sizeof buf);
    is_str(buf, "RET=HDRS ENVID=a+2Bb+3Dc+20d", "RET and ENVID in xtext");
    env_set_dsn(&e, ENV_RET_NONE, "x");
    env_dsn_mail_params(&e, buf, sizeof buf);
    is_str(buf, "ENVID=x", "ENVID alone");
    env_rcpt_set_dsn(&e.rcpts[0], ENV_N_FAILURE | ENV_N_SUCCESS | ENV_N_DELAY, "rfc822;A+x@b");
    env_dsn_rcpt_params(&e.rcpts[0], buf, sizeof buf);
    is_str(buf, "NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;A+2Bx@b", "NOTIFY and ORCPT");
    env_rcpt_set_dsn(&e.rcpts[0], ENV_N_NEVER, NULL);
    env_dsn_rcpt_params(&e.rcpts[0], buf, sizeof buf);
    is_str(buf, "NOTIFY=NEVER", "NEVER alone");
    is_int(env_dsn_rcpt_params(&e.rcpts[0], buf, 5), -1, "no room: -1");
    is_str(buf, "", "  and empty");
    env_clear(&e);
}

int main(void)
{
    test_dsn_params();
    test_v2_fields();
    test_version();
    test_unique();
    test_round_trip();
    test_null_sender();
    test_truncation();
    test_rejections();
    test_rcpt_limit();
    test_setters();
    test_pct();
    test_maildrop();
    test_maildrop_uid();
    return tap_done();
}
