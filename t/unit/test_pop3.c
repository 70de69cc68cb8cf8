/*
 * t/unit/test_pop3.c — the pure pieces of POP3: the command parser
 * (proto/pop3_cmd.c), the message as sent (proto/pop3_msg.c, trickle-fed
 * one octet at a time and compared with one block), the sizes as sent and
 * hato's own names (store/pop3drop.c), the APOP digest (RFC 1939's own
 * example), the POP-before-SMTP table (auth/popb4smtp.c) and the
 * session-id table POP3 and SMTP share (proto/sessions.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "auth/apop.h"
#include "auth/popb4smtp.h"
#include "proto/pop3_cmd.h"
#include "proto/pop3_msg.h"
#include "proto/sessions.h"
#include "store/maildir.h"
#include "store/pop3drop.h"
#include "tap.h"

static enum pop3_parse parse(const char *text, struct pop3_cmd *c, char *buf)
{
    size_t n = strlen(text);
    memcpy(buf, text, n + 1);
    return pop3_cmd_parse(buf, n, c);
}

static void test_parser(void)
{
    char buf[POP3_LINE_MAX + 1];
    struct pop3_cmd c;

    is_int(parse("STAT", &c, buf), POP3_OK, "STAT");
    is_int(c.verb, POP3_V_STAT, "STAT verb");
    is_int(parse("stat", &c, buf), POP3_OK, "keywords are case-insensitive");
    is_int(parse("RETR 12", &c, buf), POP3_OK, "RETR 12");
    is_int(c.num[0], 12, "RETR's number");
    is_int(parse("TOP 3 0", &c, buf), POP3_OK, "TOP 3 0");
    is_int(c.num[0] * 100 + c.num[1], 300, "TOP's numbers");
    is_int(parse("LIST", &c, buf), POP3_OK, "LIST without argument");
    is_int(c.nargs, 0, "no argument");
    is_int(parse("UIDL 1", &c, buf), POP3_OK, "UIDL 1");
    is_int(parse("PASS pass with spaces", &c, buf), POP3_OK, "PASS takes the rest");
    is_str(c.arg[0], "pass with spaces", "PASS's argument kept whole");
    is_int(parse("USER bob@example.test", &c, buf), POP3_OK, "USER");
    is_str(c.arg[0], "bob@example.test", "USER's argument");
    is_int(parse("APOP bob c4c9334bac560ecc979e58001b3e22fb", &c, buf), POP3_OK, "APOP");
    is_str(c.arg[1], "c4c9334bac560ecc979e58001b3e22fb", "APOP digest");
    is_int(parse("AUTH", &c, buf), POP3_OK, "AUTH alone (mechanism list)");
    is_int(parse("AUTH PLAIN AGJvYgBwdw==", &c, buf), POP3_OK, "AUTH with initial response");
    is_str(c.arg[1], "AGJvYgBwdw==", "initial response");

    static const char *const unknown[] = { "", "FOO", "RETRX 1", "ST", "STATS", " STAT", "X 1" };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        is_int(parse(unknown[i], &c, buf), POP3_E_UNKNOWN, unknown[i]);
    static const char *const syntax[] = {
        "RETR", "RETR x", "RETR -1", "RETR +1", "RETR 1 2", "RETR 1 ", "LIST  1", "LIST ",
        "TOP 1", "TOP 1 x", "DELE 1000000000", "STAT 1", "QUIT now", "PASS", "PASS ",
        "USER", "APOP bob", "APOP a b c", "AUTH A B C", "STLS x", "UIDL 1 2", "NOOP x",
    };
    for (size_t i = 0; i < sizeof syntax / sizeof syntax[0]; i++)
        is_int(parse(syntax[i], &c, buf), POP3_E_SYNTAX, syntax[i]);
    is_int(parse("DELE 999999999", &c, buf), POP3_OK, "the largest number");
    /* a NUL inside the line */
    memcpy(buf, "RETR 1\0x", 8);
    is_int(pop3_cmd_parse(buf, 8, &c), POP3_E_SYNTAX, "NUL in the line");
    is_str(pop3_verb_name(POP3_V_RETR), "RETR", "verb name");
}

/* The message through pop3_msg_out, in chunks of `step` (0: one block). */
static char *send_as(const char *msg, size_t n, long top, size_t step, size_t *outlen)
{
    struct evbuffer *out = evbuffer_new();
    struct pop3_msg_out m;
    pop3_msg_out_init(&m, top);
    size_t off = 0;
    while (off < n) {
        size_t k = step && step < n - off ? step : n - off;
        if (pop3_msg_out_feed(&m, msg + off, k, out) < 0)
            return NULL;
        off += k;
    }
    pop3_msg_out_end(&m, out);
    *outlen = evbuffer_get_length(out);
    char *s = malloc(*outlen + 1);
    evbuffer_remove(out, s, *outlen);
    s[*outlen] = '\0';
    evbuffer_free(out);
    return s;
}

static void check_send(const char *name, const char *msg, long top, const char *want)
{
    size_t n1, n2;
    char *a = send_as(msg, strlen(msg), top, 0, &n1);
    char *b = send_as(msg, strlen(msg), top, 1, &n2);
    is_str(a, want, name);
    ok(n1 == n2 && !memcmp(a, b, n1), "%s: one octet at a time gives the same", name);
    for (size_t step = 2; step < 8; step++) {
        size_t n3;
        char *c = send_as(msg, strlen(msg), top, step, &n3);
        if (!ok(n3 == n1 && !memcmp(c, a, n1), "%s: chunks of %zu", name, step))
            printf("#   got \"%s\"\n", c);
        free(c);
    }
    free(a);
    free(b);
}

static void test_msg_out(void)
{
    check_send("CRLF as it is", "A: b\r\n\r\nbody\r\n", -1, "A: b\r\n\r\nbody\r\n.\r\n");
    check_send("bare LF becomes CRLF", "A: b\n\nbody\n", -1, "A: b\r\n\r\nbody\r\n.\r\n");
    check_send("dot-stuffing", "A: b\r\n\r\n.\r\n..x\r\n.", -1,
               "A: b\r\n\r\n..\r\n...x\r\n..\r\n.\r\n");
    check_send("last line without newline", "A: b\r\n\r\nend", -1, "A: b\r\n\r\nend\r\n.\r\n");
    check_send("bare CR kept", "A: b\r\n\r\na\rb\r\n", -1, "A: b\r\n\r\na\rb\r\n.\r\n");
    check_send("empty message", "", -1, ".\r\n");
    check_send("mixed ends and dots", "a\r\n.b\nc\r\n\r\n.\n\n\r\r\n.", -1,
               "a\r\n..b\r\nc\r\n\r\n..\r\n\r\n\r\r\n..\r\n.\r\n");
    check_send("TOP 0", "A: b\r\nC: d\r\n\r\nl1\r\nl2\r\n", 0, "A: b\r\nC: d\r\n\r\n.\r\n");
    check_send("TOP 1", "A: b\r\n\r\nl1\r\n.l2\r\nl3\r\n", 1, "A: b\r\n\r\nl1\r\n.\r\n");
    check_send("TOP 2 with a dot line", "A: b\n\n.l1\n.l2\nl3\n", 2, "A: b\r\n\r\n..l1\r\n..l2\r\n.\r\n");
    check_send("TOP past the end", "A: b\r\n\r\nl1", 10, "A: b\r\n\r\nl1\r\n.\r\n");
    check_send("TOP of a header only", "A: b\r\nC: d", 3, "A: b\r\nC: d\r\n.\r\n");
}

/* The size store/pop3drop counts equals what pop3_msg_out sends, minus
 * the dot-stuffing and the final dot. */
static void test_sizes(void)
{
    static const char *const msgs[] = {
        "A: b\r\n\r\nbody\r\n", "A: b\n\nbody\n", "A: b\n\nno end", "x\r", "", "\n\n\n",
        "A: b\r\n\r\n.\n.x\r\n", "a\r\rb\n\r\n",
    };
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        const char *m = msgs[i];
        size_t n = strlen(m), sent;
        int64_t bare = 0;
        int last = 0;
        for (size_t k = 0; k < n; k++)       /* fed one octet at a time */
            pop3drop_count((const unsigned char *)m + k, 1, &bare, &last);
        char *s = send_as(m, n, -1, 0, &sent);
        size_t stuffed = 0;
        for (size_t k = 0; k + 3 < sent; k++)
            if (s[k] == '.' && (k == 0 || s[k - 1] == '\n'))
                stuffed++;
        char name[64];
        snprintf(name, sizeof name, "size as sent of message %zu", i);
        is_int(pop3drop_wire_size((int64_t)n, bare, last), (long long)(sent - 3 - stuffed), name);
        free(s);
    }
    ok(pop3drop_name_is_ours("1764633600.M123456P4242Q7.mx.example.test,S=1234"), "hato's name");
    ok(pop3drop_name_is_ours("1764633600.M1P2Q3.host,S=5:2,S"), "hato's name in cur/");
    ok(!pop3drop_name_is_ours("1764633600.M123456P4242.dovecot,S=12,W=14"), "Dovecot's name");
    ok(!pop3drop_name_is_ours("1764633600.4242_1.mutthost"), "mutt's name");
    ok(!pop3drop_name_is_ours("1764633600.M1P2Q3.host"), "no ,S=");
    ok(!pop3drop_name_is_ours("x1764633600.M1P2Q3.host,S=1"), "no leading digits");
}

static void test_apop(void)
{
    char d[33];
    /* RFC 1939 §7's example */
    apop_digest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf", d);
    is_str(d, "c4c9334bac560ecc979e58001b3e22fb", "RFC 1939 APOP example");
    is_int(apop_check(NULL, "mrose", "<1896.697170952@dbc.mtview.ca.us>",
                      "c4c9334bac560ecc979e58001b3e22fb"), -1, "no user table: refused");
}

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    inet_pton(AF_INET, ip, &sa.sin_addr);
    return sa;
}

static void test_popb4smtp(void)
{
    struct sockaddr_in a = v4("192.0.2.1"), b = v4("192.0.2.2");
    struct sockaddr_in6 m = { .sin6_family = AF_INET6 };
    inet_pton(AF_INET6, "::ffff:192.0.2.1", &m.sin6_addr);

    popb4smtp_configure(0);
    popb4smtp_login((struct sockaddr *)&a, 100);
    ok(!popb4smtp_allowed((struct sockaddr *)&a, 100), "off (0): a login allows nothing");
    is_int(popb4smtp_count(), 0, "off: nothing remembered");
    popb4smtp_configure(30);
    popb4smtp_login((struct sockaddr *)&a, 100);
    ok(popb4smtp_allowed((struct sockaddr *)&a, 110), "allowed within the time");
    ok(popb4smtp_allowed((struct sockaddr *)&m, 110), "v4-mapped IPv6 is the same client");
    ok(!popb4smtp_allowed((struct sockaddr *)&b, 110), "another address is not");
    ok(!popb4smtp_allowed((struct sockaddr *)&a, 130), "expired after 30 s");
    is_int(popb4smtp_count(), 0, "an expired entry is dropped");
    popb4smtp_login((struct sockaddr *)&a, 200);
    popb4smtp_configure(0);
    ok(!popb4smtp_allowed((struct sockaddr *)&a, 201), "turned off by a reload");
    popb4smtp_configure(30);
    /* a full table drops expired entries, then the one expiring soonest */
    for (unsigned i = 0; i < POPB4SMTP_MAX; i++) {
        struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
        s6.sin6_addr.s6_addr[0] = 0x20;
        memcpy(s6.sin6_addr.s6_addr + 12, &i, sizeof i);
        popb4smtp_login((struct sockaddr *)&s6, 1000 + (i == 5 ? -10 : 0));
    }
    ok(popb4smtp_count() <= POPB4SMTP_MAX, "at most POPB4SMTP_MAX entries (%lu)",
       popb4smtp_count());
    popb4smtp_login((struct sockaddr *)&b, 1001);
    ok(popb4smtp_allowed((struct sockaddr *)&b, 1001), "a new login gets in when full");
    ok(popb4smtp_count() <= POPB4SMTP_MAX, "still bounded");
    popb4smtp_clear();
    is_int(popb4smtp_count(), 0, "cleared");
}

static void put(const char *dir, const char *name, const char *content)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/new/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(content, f);
        fclose(f);
    }
}

/* The maildrop over a real Maildir: lock, listing with sizes as sent,
 * UIDs that survive a reload, open after a rename, expunge. */
static void test_maildrop(void)
{
    char dir[] = "/tmp/hato-test-pop3drop-XXXXXX", path[PATH_MAX];
    if (!mkdtemp(dir)) {
        ok(0, "mkdtemp");
        return;
    }
    int fd = pop3drop_lock(dir);
    ok(fd >= 0, "lock (creates the Maildir)");
    errno = 0;
    int fd2 = pop3drop_lock(dir);
    ok(fd2 < 0 && errno == EWOULDBLOCK, "a second lock is refused (EWOULDBLOCK)");
    close(fd);
    fd2 = pop3drop_lock(dir);
    ok(fd2 >= 0, "free again once closed");
    close(fd2);

    put(dir, "1764633600.M1P1Q1.host,S=10", "a: b\r\n\r\nx\r\n");       /* hato's: CRLF */
    put(dir, "1764633601.77_1.mutthost", "a: b\n\nx\n.y");               /* LF, no end */
    put(dir, "1764633602.M2P3.dove,S=5,W=9", "q\nr\n.");                 /* Dovecot's W= */
    struct pop3drop *d = NULL;
    ok(pop3drop_load(dir, &d) == 0 && d && d->n == 3, "three messages");
    if (d && d->n == 3) {
        is_int(d->msgs[0].size, 10, "hato's file: its size");
        is_int(d->msgs[1].size, 15, "a foreign file: counted with CRLF (10 + 3 + 2)");
        is_int(d->msgs[2].size, 9, "Dovecot's ,W=");
        ok(d->msgs[0].uid < d->msgs[1].uid && d->msgs[1].uid < d->msgs[2].uid, "UID order");
        uint32_t v = d->uidvalidity, u1 = d->msgs[1].uid;
        struct pop3drop *e = NULL;
        ok(pop3drop_load(dir, &e) == 0 && e->uidvalidity == v && e->msgs[1].uid == u1,
           "the same UIDs on the next load");
        snprintf(path, sizeof path, "%s/%s", dir, POP3DROP_SIZES);
        ok(access(path, F_OK) == 0, "the count is cached");
        /* another program moves a message to cur/ with flags: still opens */
        char from[PATH_MAX], to[PATH_MAX];
        snprintf(from, sizeof from, "%s/new/1764633601.77_1.mutthost", dir);
        snprintf(to, sizeof to, "%s/cur/1764633601.77_1.mutthost:2,S", dir);
        ok(rename(from, to) == 0, "renamed as mutt would");
        int mfd = pop3drop_open(dir, &e->msgs[1]);
        ok(mfd >= 0, "open finds it again through the index");
        ok(strstr(e->msgs[1].rel, "cur/") == e->msgs[1].rel, "and follows it (%s)", e->msgs[1].rel);
        if (mfd >= 0)
            close(mfd);
        uint32_t gone[2] = { d->msgs[0].uid, d->msgs[1].uid };
        is_int(pop3drop_expunge(dir, gone, 2), 0, "expunge two");
        is_int(pop3drop_expunge(dir, gone, 2), 0, "expunging them again is no error");
        pop3drop_free(e);
        e = NULL;
        ok(pop3drop_load(dir, &e) == 0 && e->n == 1 && e->msgs[0].uid == d->msgs[2].uid,
           "one left, its UID kept");
        snprintf(path, sizeof path, "%s/new/1764633600.M1P1Q1.host,S=10", dir);
        ok(access(path, F_OK) != 0, "the file is gone");
        pop3drop_free(e);
    }
    pop3drop_free(d);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        ok(0, "cleanup");
}

struct fake_sess {
    struct sess_link link;
    struct sess_table *t;
    int seen;
};

/* sess_table_each: the callback frees (removes) the one it is given */
static void drop_one(void *owner, void *arg)
{
    struct fake_sess *f = owner;
    f->seen++;
    (*(int *)arg)++;
    sess_table_remove(f->t, &f->link);
    f->link.next = NULL;                /* as good as freed: each must not follow it */
}

static void test_sessions(void)
{
    static struct sess_table t;         /* zeroed: empty */
    static struct fake_sess f[SESS_BUCKETS + 3];
    size_t n = sizeof f / sizeof f[0];
    ok(sess_table_any(&t) == NULL && sess_table_find(&t, 1) == NULL, "sessions: empty");
    for (size_t i = 0; i < n; i++) {
        f[i].t = &t;
        sess_table_add(&t, &f[i].link, &f[i]);
    }
    ok(t.n == n && f[0].link.id == 1 && f[n - 1].link.id == n, "sessions: ids from 1 in order");
    /* ids 1 and SESS_BUCKETS + 1 share a bucket: each is found as itself */
    ok(sess_table_find(&t, 1) == &f[0] && sess_table_find(&t, SESS_BUCKETS + 1) == &f[SESS_BUCKETS],
       "sessions: two ids in one bucket");
    sess_table_remove(&t, &f[0].link);
    ok(sess_table_find(&t, 1) == NULL && sess_table_find(&t, SESS_BUCKETS + 1) == &f[SESS_BUCKETS] &&
       t.n == n - 1, "sessions: removed, its bucket mate stays");
    sess_table_remove(&t, &f[0].link);
    ok(t.n == n - 1, "sessions: removing twice changes nothing");
    struct fake_sess late = { .t = &t };
    sess_table_add(&t, &late.link, &late);
    ok(late.link.id == n + 1, "sessions: an id is never reused");
    int calls = 0;
    sess_table_each(&t, drop_one, &calls);
    ok(calls == (int)n && t.n == 0 && sess_table_any(&t) == NULL && f[1].seen == 1 && f[0].seen == 0,
       "sessions: each visits every session once while they remove themselves");
}

int main(void)
{
    test_sessions();
    test_parser();
    test_msg_out();
    test_sizes();
    test_apop();
    test_popb4smtp();
    test_maildrop();
    return tap_done();
}
