/*
 * t/unit/test_local_headers.c — which fields a local message lacks, and
 * how the missing ones are written.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/local_headers.h"
#include "t/unit/tap.h"

#define ALL (LH_DATE | LH_MESSAGE_ID | LH_FROM)

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
    return tap_done();
}
