/*
 * t/unit/test_listing.c — mailq text (golden comparisons) and JSON output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "queue/listing.h"
#include "t/unit/tap.h"

#define IND "                                         "   /* 41 spaces */
#define HDR "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"

static char *out;
static size_t outlen;

typedef int (*lister)(FILE *, const struct queue_item *, size_t);

static const char *run(lister fn, const struct queue_item *items, size_t n, int *rc)
{
    FILE *f;

    free(out);
    out = NULL;
    f = open_memstream(&out, &outlen);
    if (f == NULL)
        abort();
    *rc = fn(f, items, n);
    fclose(f);
    return out;
}

static void mk(struct envelope *e, const char *id, long long arrival_s, long long size,
               const char *sender)
{
    env_init(e);
    memcpy(e->id, id, QID_LEN + 1);
    e->arrival_us = arrival_s * 1000000 + 123456;
    e->size = size;
    if (env_set_sender(e, sender) < 0)
        abort();
}

static void rcpt(struct envelope *e, const char *addr, enum rcpt_state st, const char *text)
{
    if (env_add_rcpt(e, addr, "") < 0 ||
        env_rcpt_set(&e->rcpts[e->nrcpt - 1], st, "", text) < 0)
        abort();
}

#define R1 "connect to mx.example.org[192.0.2.1]:25: Connection refused"
#define R2 "host mx.example.net[192.0.2.2] said: 450 4.2.0 try later (in reply to RCPT TO command)"

static void test_text(void)
{
    struct envelope a, b, c;
    struct queue_item items[3] = { { 0 } };
    int rc;

    run(queue_listing_text, items, 0, &rc);
    is_str(out, "Mail queue is empty\n", "empty queue");
    is_int(rc, 0, "  rc 0");

    mk(&a, "64441F8EB5800000", 1763900000, 1234, "sender@example.com");
    rcpt(&a, "a@example.org", RCPT_PENDING, R1);
    rcpt(&a, "b@example.net", RCPT_PENDING, R2);
    rcpt(&a, "done@example.org", RCPT_SENT, "250 ok");
    rcpt(&a, "c@example.org", RCPT_PENDING, R1);
    rcpt(&a, "new@example.org", RCPT_PENDING, "");
    rcpt(&a, "bounced@example.org", RCPT_BOUNCED, "550 no");
    memset(items, 0, sizeof(items));
    items[0].env = &a;
    items[0].active = 1;
    run(queue_listing_text, items, 1, &rc);
    is_str(out,
           HDR
           "64441F8EB5800000*     1234 Sun Nov 23 12:13:20  sender@example.com\n"
           IND "new@example.org\n"
           "(connect to mx.example.org[192.0.2.1]:25: Connection refused)\n"
           IND "a@example.org\n"
           IND "c@example.org\n"
           "(host mx.example.net[192.0.2.2] said: 450 4.2.0 try later (in reply to RCPT TO )\n"
           IND "b@example.net\n"
           "\n"
           "-- 2 Kbytes in 1 Request.\n",
           "one active message, two reasons, singular footer");

    mk(&b, "60A24181E4000001", 1700000000, 100, "");
    rcpt(&b, "x@example.com", RCPT_PENDING, "");
    mk(&c, "5AF3107A40000002", 1600000000, 1024, "u@example.com");
    rcpt(&c, "y\x1b[31m@example.com", RCPT_PENDING, "bad\ttab");
    items[0].active = 0;
    items[1].env = &b;
    items[1].held = 1;
    items[2].env = &c;
    run(queue_listing_text, items, 3, &rc);
    is_str(out,
           HDR
           "64441F8EB5800000      1234 Sun Nov 23 12:13:20  sender@example.com\n"
           IND "new@example.org\n"
           "(connect to mx.example.org[192.0.2.1]:25: Connection refused)\n"
           IND "a@example.org\n"
           IND "c@example.org\n"
           "(host mx.example.net[192.0.2.2] said: 450 4.2.0 try later (in reply to RCPT TO )\n"
           IND "b@example.net\n"
           "\n"
           "60A24181E4000001!      100 Tue Nov 14 22:13:20  MAILER-DAEMON\n"
           IND "x@example.com\n"
           "\n"
           "5AF3107A40000002      1024 Sun Sep 13 12:26:40  u@example.com\n"
           "(bad?tab)\n"
           IND "y?[31m@example.com\n"
           "\n"
           "-- 3 Kbytes in 3 Requests.\n",
           "three messages: held, null sender, control bytes, plural footer");

    items[0].env = &c;
    run(queue_listing_text, items, 1, &rc);
    ok(strstr(out, "-- 1 Kbytes in 1 Request.\n") != NULL, "1024 octets = 1 Kbytes");
    c.size = 1025;
    run(queue_listing_text, items, 1, &rc);
    ok(strstr(out, "-- 2 Kbytes in 1 Request.\n") != NULL, "1025 octets round up to 2");
    items[0].held = 1;
    items[0].active = 1;
    run(queue_listing_text, items, 1, &rc);
    ok(strstr(out, "5AF3107A40000002!") != NULL, "held wins over active");

    env_clear(&a);
    env_clear(&b);
    env_clear(&c);
}

static void test_json(void)
{
    struct envelope a, b;
    struct queue_item items[2] = { { 0 } };
    int rc;
    const char *nl;

    mk(&a, "64441F8EB5800000", 1763900000, 1234, "se\"nd\\er@example.com");
    rcpt(&a, "a@example.org", RCPT_PENDING, "line\nbreak");
    rcpt(&a, "done@example.org", RCPT_SENT, "");
    rcpt(&a, "\xc3\xa9t\xc3\xa9@example.fr", RCPT_PENDING, "bad \xff byte");
    mk(&b, "60A24181E4000001", 1700000000, 100, "");
    memset(items, 0, sizeof(items));
    items[0].env = &a;
    items[0].active = 1;
    items[1].env = &b;
    items[1].held = 1;

    run(queue_listing_json, items, 0, &rc);
    is_str(out, "", "empty queue: no output");
    run(queue_listing_json, items, 2, &rc);
    is_int(rc, 0, "json rc");
    nl = strchr(out, '\n');
    ok(nl != NULL && strchr(nl + 1, '\n') != NULL && nl[1] == '{' &&
       strchr(nl + 1, '\n')[1] == '\0', "two lines, one object each");
    ok(strstr(out, "{\"queue_name\":\"active\",\"queue_id\":\"64441F8EB5800000\","
                   "\"arrival_time\":1763900000,\"message_size\":1234,"
                   "\"sender\":\"se\\\"nd\\\\er@example.com\",\"recipients\":["
                   "{\"address\":\"a@example.org\",\"delay_reason\":\"line\\u000abreak\"},"
                   "{\"address\":\"\xc3\xa9t\xc3\xa9@example.fr\","
                   "\"delay_reason\":\"bad \\u00ff byte\"}]}\n") == out,
       "first object exact (escapes, UTF-8 kept, bad byte escaped, sent rcpt omitted)");
    ok(strstr(out, "\n{\"queue_name\":\"hold\",\"queue_id\":\"60A24181E4000001\","
                   "\"arrival_time\":1700000000,\"message_size\":100,\"sender\":\"\","
                   "\"recipients\":[]}\n") != NULL, "held, null sender, no recipients");
    items[0].active = 0;
    run(queue_listing_json, items, 1, &rc);
    ok(strncmp(out, "{\"queue_name\":\"deferred\"", 24) == 0, "deferred when neither");
    env_clear(&a);
    env_clear(&b);
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    test_text();
    test_json();
    free(out);
    return tap_done();
}
