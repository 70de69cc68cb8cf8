/*
 * t/unit/test_local_headers.c — which fields a local message lacks, how
 * the missing ones are written, and hatod's Received: field (complete,
 * date included, with the longest names it can hold).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/timeutil.h"
#include "proto/local_headers.h"
#include "t/unit/tap.h"

#define ALL (LH_DATE | LH_MESSAGE_ID | LH_FROM)

/* A Received: field is complete: starts with "Received: ", every line
 * but the first is a continuation, it ends in "; DATE\r\n" and holds each
 * of the parts. */
static int received_complete(const char *r, size_t len, const char *date,
                             const char *const *parts)
{
    char tail[80];
    if (len != strlen(r) || strncmp(r, "Received: ", 10) != 0)
        return 0;
    snprintf(tail, sizeof tail, "; %s\r\n", date);
    if (len < strlen(tail) || strcmp(r + len - strlen(tail), tail) != 0)
        return 0;
    for (const char *p = strstr(r, "\r\n"); p && p + 2 < r + len; p = strstr(p + 2, "\r\n"))
        if (p[2] != '\t')
            return 0;
    for (; *parts; parts++)
        if (!strstr(r, *parts))
            return 0;
    return 1;
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        exit(2);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_received(void)
{
    char date[64], rcpt[400];
    size_t len;
    time_t now = 1767225600;   /* Thu, 1 Jan 2026 00:00:00 +0000 */
    time_rfc5322(now, date, sizeof date);
    /* the longest HELO (255), a 255-octet myhostname, a 64+255 address */
    char *helo = repeat('h', 255), *host = repeat('m', 255), *local = repeat('l', 64);
    char *dom = repeat('d', 251);
    snprintf(rcpt, sizeof rcpt, "%s@%s.test", local, dom);
    struct received_info ri = { .helo = helo, .client_addr = "2001:db8::1", .ipv6 = 1,
                                .myhostname = host, .mail_name = "hato", .proto = "ESMTP",
                                .qid = "0123456789ABCDEF0123", .for_rcpt = rcpt, .now = now };
    char *r = received_format(&ri, &len);
    const char *parts[] = { helo, "([IPv6:2001:db8::1])", host, "(hato) with ESMTP id "
                            "0123456789ABCDEF0123", rcpt, NULL };
    ok(r && received_complete(r, len, date, parts), "longest names: complete, date kept (%zu octets)",
       len);
    free(r);
    ri.for_rcpt = NULL;
    ri.helo = NULL;
    ri.ipv6 = 0;
    ri.client_addr = "192.0.2.1";
    r = received_format(&ri, &len);
    const char *parts2[] = { "Received: from unknown ([192.0.2.1])\r\n\tby ", NULL };
    ok(r && received_complete(r, len, date, parts2) && !strstr(r, "for <"),
       "no HELO, no single recipient: no for clause");
    free(r);
    ri.local = 1;
    ri.uid = 1000;
    r = received_format(&ri, &len);
    const char *parts3[] = { "(hato, from userid 1000)\r\n\tid 0123456789ABCDEF0123", NULL };
    ok(r && received_complete(r, len, date, parts3) && !strstr(r, "from unknown"),
       "local submission: by ... from userid");
    free(r);
    ri.local = 0;
    ri.myhostname = "mx.example.test";
    ri.helo = "client.test";
    ri.for_rcpt = "bob@example.test";
    r = received_format(&ri, &len);
    char want[300];
    snprintf(want, sizeof want, "Received: from client.test ([192.0.2.1])\r\n"
             "\tby mx.example.test (hato) with ESMTP id 0123456789ABCDEF0123\r\n"
             "\tfor <bob@example.test>; %s\r\n", date);
    is_str(r ? r : "", want, "the usual field, byte for byte");
    free(r);
    free(helo);
    free(host);
    free(local);
    free(dom);
}

static int miss(const char *h)
{
    return local_headers_missing(h, strlen(h));
}

int main(void)
{
    char buf[512];
    setenv("TZ", "UTC", 1);
    tzset();
    is_int(miss(""), ALL, "empty header: all missing");
    is_int(miss("Subject: x\r\n\r\n"), ALL, "subject only: all missing");
    is_int(miss("Date: Mon, 1 Jan 2026 00:00:00 +0000\r\n"), LH_MESSAGE_ID | LH_FROM, "date present");
    is_int(miss("DATE : x\r\nmessage-id:<a@b>\r\nFrom: a@b\r\n"), 0, "case and space before colon");
    is_int(miss("Subject: x\r\n Date: folded\r\n"), ALL, "a continuation line does not count");
    is_int(miss("Dated: x\r\nFromage: y\r\n"), ALL, "longer names do not match");
    is_int(miss("X-From: a\r\nReply-To: b\r\n"), ALL, "other fields ending in the name do not match");
    is_int(miss("From: a\nDate: b\n"), LH_MESSAGE_ID, "LF line ends work too");
    int n = local_headers_format(ALL, "bob@example.test", "0123456789ABCDEF", "mx.example.test",
                                 0, buf, sizeof buf);
    ok(n > 0 && (size_t)n == strlen(buf), "format returns the length");
    ok(strstr(buf, "Date: Thu, ") != NULL && strstr(buf, "1 Jan 1970 00:00:00 +0000\r\n") != NULL,
       "Date line (%s)", buf);
    ok(strstr(buf, "Message-ID: <0123456789ABCDEF@mx.example.test>\r\n") != NULL, "Message-ID line");
    ok(strstr(buf, "From: <bob@example.test>\r\n") != NULL, "From line");
    n = local_headers_format(LH_FROM, "", "Q", "mx.example.test", 0, buf, sizeof buf);
    is_str(buf, "From: MAILER-DAEMON@mx.example.test\r\n", "null sender From");
    n = local_headers_format(0, "a@b", "Q", "h", 0, buf, sizeof buf);
    ok(n == 0 && buf[0] == '\0', "nothing missing: nothing written");
    n = local_headers_format(ALL, "a@b", "Q", "h", 0, buf, 20);
    is_int(n, -1, "too small a buffer is an error");
    test_received();
    return tap_done();
}
