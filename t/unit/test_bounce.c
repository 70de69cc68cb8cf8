/*
 * t/unit/test_bounce.c — DSN structure: headers, MIME boundaries, status
 * fields, which recipients are reported, CRLF and line-length discipline.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "queue/bounce.h"
#include "t/unit/tap.h"

#define HDRS "Received: from client.example.com\r\nSubject: hello\r\n" \
             "Message-ID: <abc@example.com>\r\nFrom: sender@example.com\r\n\r\n"

static int count(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle), i;
    int c = 0;

    for (i = 0; i + n <= len; i++)
        if (memcmp(hay + i, needle, n) == 0)
            c++;
    return c;
}

/* 1 if every LF is preceded by CR, every CR followed by LF, no line > 998. */
static int lines_ok(const char *s, size_t len, size_t *longest)
{
    size_t i, col = 0;

    *longest = 0;
    for (i = 0; i < len; i++) {
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
            return 0;
        if (s[i] == '\r' && (i + 1 >= len || s[i + 1] != '\n'))
            return 0;
        if (s[i] == '\r' || s[i] == '\n') {
            if (col > *longest)
                *longest = col;
            col = 0;
            continue;
        }
        col++;
    }
    return col == 0 && *longest <= 998;
}

static void mk(struct envelope *e)
{
    env_init(e);
    memcpy(e->id, "64441F8EB5800000", QID_LEN + 1);
    e->arrival_us = 1763900000000000LL;
    env_set_sender(e, "sender@example.com");
    env_add_rcpt(e, "a@example.org", "");
    env_add_rcpt(e, "b@example.org", "B@Example.Org");
    env_add_rcpt(e, "c@example.org", "");
    env_add_rcpt(e, "d@example.org", "");
    env_rcpt_set(&e->rcpts[0], RCPT_BOUNCED, "5.1.1", "host mx said: 550 5.1.1 no such user");
    env_rcpt_set(&e->rcpts[1], RCPT_BOUNCED, "", "");
    env_rcpt_set(&e->rcpts[2], RCPT_PENDING, "4.4.1", "connect to mx: timed out");
    env_rcpt_set(&e->rcpts[3], RCPT_SENT, "2.0.0", "250 ok");
}

static struct bounce_info info(const char *hdrs)
{
    struct bounce_info in;

    memset(&in, 0, sizeof(in));
    in.myhostname = "mail.example.net";
    in.mail_name = "hato";
    in.new_id = "64441F8EB5900007";
    in.now = 1763914400;
    in.orig_headers = hdrs;
    in.orig_headers_len = hdrs ? strlen(hdrs) : 0;
    return in;
}

static void test_failed(void)
{
    struct envelope e;
    struct bounce_info in = info(HDRS);
    char *out = NULL, bnd[128], *p, *body;
    size_t len = 0, longest;

    mk(&e);
    is_int(bounce_build(&e, BOUNCE_FAILED, &in, &out, &len), 0, "failed DSN built");
    if (out == NULL)
        return;
    {
        int lines_good = lines_ok(out, len, &longest);
        ok(lines_good, "CRLF only, lines <= 998 (longest %zu)", longest);
    }
    ok(strlen(out) == len, "no NUL inside");
    p = strstr(out, "boundary=\"");
    ok(p != NULL, "boundary parameter");
    if (p == NULL)
        return;
    snprintf(bnd, sizeof(bnd), "--%.*s", (int)strcspn(p + 10, "\""), p + 10);
    ok(strstr(bnd, "64441F8EB5900007") != NULL, "boundary derived from new id (%s)", bnd);
    is_int(count(out, len, bnd), 4, "boundary 4 times");
    {
        char closing[140];
        snprintf(closing, sizeof(closing), "\r\n%s--\r\n", bnd);
        ok(len > strlen(closing) && strcmp(out + len - strlen(closing), closing) == 0,
           "ends with the closing boundary");
    }
    body = strstr(out, "\r\n\r\n");
    ok(body != NULL, "header/body separator");
    if (body == NULL)
        return;
    ok(count(out, (size_t)(body - out), "\r\nTo: <sender@example.com>\r\n") == 1, "To");
    ok(count(out, (size_t)(body - out),
             "From: Mail Delivery System <MAILER-DAEMON@mail.example.net>\r\n") == 1, "From");
    ok(count(out, (size_t)(body - out),
             "\r\nSubject: Undelivered Mail Returned to Sender\r\n") == 1, "Subject");
    ok(count(out, (size_t)(body - out),
             "\r\nMessage-ID: <64441F8EB5900007@mail.example.net>\r\n") == 1, "Message-ID");
    ok(count(out, (size_t)(body - out), "\r\nAuto-Submitted: auto-replied\r\n") == 1,
       "Auto-Submitted");
    ok(count(out, (size_t)(body - out), "\r\nMIME-Version: 1.0\r\n") == 1, "MIME-Version");
    ok(count(out, (size_t)(body - out), "Content-Type: multipart/report; "
             "report-type=delivery-status;") == 1, "Content-Type");
    ok(strncmp(out, "Date: ", 6) == 0 && strstr(out, " 2025 ") != NULL &&
       strstr(out, "Nov 2025") != NULL, "Date header");
    ok(strstr(out, "This is the mail system at host mail.example.net.") != NULL, "human intro");
    ok(strstr(out, "<a@example.org>: host mx said: 550 5.1.1 no such user\r\n") != NULL,
       "human reason");
    ok(strstr(out, "<b@example.org> (expanded from <B@Example.Org>): delivery failed") != NULL,
       "human default reason, expanded from");
    ok(strstr(out, "Content-Type: message/delivery-status\r\n") != NULL, "status part");
    ok(strstr(out, "Reporting-MTA: dns; mail.example.net\r\n") != NULL, "Reporting-MTA");
    ok(strstr(out, "X-Hato-Queue-ID: 64441F8EB5800000\r\n") != NULL, "queue id");
    ok(strstr(out, "Arrival-Date: ") != NULL, "Arrival-Date");
    is_int(count(out, len, "Final-Recipient: rfc822;"), 2, "two Final-Recipient");
    is_int(count(out, len, "Action: failed\r\n"), 2, "two Action: failed");
    is_int(count(out, len, "Status: 5.1.1\r\n"), 1, "given status");
    is_int(count(out, len, "Status: 5.0.0\r\n"), 1, "default status");
    is_int(count(out, len, "Original-Recipient: rfc822; B@Example.Org\r\n"), 1,
           "Original-Recipient when orcpt set");
    is_int(count(out, len, "Original-Recipient:"), 1, "only when orcpt set");
    is_int(count(out, len, "Diagnostic-Code: X-Hato; host mx said: 550 5.1.1 no such user\r\n"),
           1, "Diagnostic-Code");
    is_int(count(out, len, "Diagnostic-Code:"), 1, "no Diagnostic-Code without text");
    ok(strstr(out, "c@example.org") == NULL && strstr(out, "d@example.org") == NULL,
       "pending and sent recipients not in a failure DSN");
    ok(strstr(out, "Content-Type: text/rfc822-headers\r\n\r\nReceived: from client.example.com"
                   "\r\nSubject: hello\r\n") != NULL, "original headers");
    ok(strstr(out, "From: sender@example.com\r\n\r\n--") != NULL,
       "headers end, then the closing boundary");
    ok(strstr(out, "8bit") == NULL, "7-bit: no 8bit CTE");
    free(out);
    env_clear(&e);
}

static void test_delayed(void)
{
    struct envelope e;
    struct bounce_info in = info(NULL);
    char *out = NULL;
    size_t len = 0, longest;

    mk(&e);
    is_int(bounce_build(&e, BOUNCE_DELAYED, &in, &out, &len), 0, "delayed DSN built");
    if (out == NULL)
        return;
    ok(lines_ok(out, len, &longest), "delayed: CRLF, <= 998");
    ok(strstr(out, "\r\nSubject: Delayed Mail (still being retried)\r\n") != NULL, "Subject");
    ok(strstr(out, "THIS IS A WARNING ONLY") != NULL, "warning text");
    ok(strstr(out, "for 4.0 hours") != NULL, "age in hours");
    is_int(count(out, len, "Final-Recipient: rfc822; c@example.org\r\n"), 1,
           "pending recipient reported");
    is_int(count(out, len, "Final-Recipient:"), 1, "only the pending one");
    is_int(count(out, len, "Action: delayed\r\n"), 1, "Action: delayed");
    is_int(count(out, len, "Status: 4.4.1\r\n"), 1, "Status 4.4.1");
    ok(strstr(out, "rfc822-headers") == NULL, "no headers part without headers");
    {
        char *p = strstr(out, "boundary=\""), bnd[128];
        snprintf(bnd, sizeof(bnd), "--%.*s", p ? (int)strcspn(p + 10, "\"") : 0, p ? p + 10 : "");
        is_int(count(out, len, bnd), 3, "boundary 3 times with two parts");
    }
    free(out);

    /* default delayed status, bad status replaced */
    env_rcpt_set(&e.rcpts[2], RCPT_PENDING, "", "");
    out = NULL;
    bounce_build(&e, BOUNCE_DELAYED, &in, &out, &len);
    ok(out && strstr(out, "Status: 4.0.0\r\n") != NULL, "default 4.0.0");
    free(out);
    env_rcpt_set(&e.rcpts[2], RCPT_PENDING, "4.x.1\r\nX-Evil: 1", "");
    out = NULL;
    bounce_build(&e, BOUNCE_DELAYED, &in, &out, &len);
    ok(out && strstr(out, "Status: 4.0.0\r\n") != NULL && strstr(out, "X-Evil") == NULL,
       "malformed status replaced");
    free(out);
    env_clear(&e);
}

static void test_nothing(void)
{
    struct envelope e;
    struct bounce_info in = info(HDRS);
    char *out = NULL;
    size_t len = 0;

    mk(&e);
    e.rcpts[0].state = RCPT_SENT;
    e.rcpts[1].state = RCPT_DONE;
    is_int(bounce_build(&e, BOUNCE_FAILED, &in, &out, &len), -1, "no B recipients: -1");
    e.rcpts[2].state = RCPT_SENT;
    is_int(bounce_build(&e, BOUNCE_DELAYED, &in, &out, &len), -1, "no P recipients: -1");
    env_clear(&e);

    mk(&e);
    env_set_sender(&e, "");
    is_int(bounce_build(&e, BOUNCE_FAILED, &in, &out, &len), -1, "null sender: -1");
    env_clear(&e);
    mk(&e);
    e.flags = ENV_F_BOUNCE;
    is_int(bounce_build(&e, BOUNCE_FAILED, &in, &out, &len), -1, "a bounce is never bounced");
    ok(out == NULL, "nothing allocated");
    env_clear(&e);
}

static void test_long_and_dirty(void)
{
    struct envelope e;
    char *text = malloc(1901), *hdrs = malloc(5000), *out = NULL, *addr = malloc(1001);
    struct bounce_info in;
    size_t len = 0, longest, i, hl;

    if (text == NULL || hdrs == NULL || addr == NULL)
        abort();
    for (i = 0; i < 1900; i++)
        text[i] = i % 50 == 49 ? ' ' : 'x';
    text[1900] = '\0';
    memset(addr, 'y', 1000);
    memcpy(addr + 980, "@example.org", 13);
    /* bare LF, bare CR, a NUL, an 8-bit byte, a 3000-octet line, then a body */
    {
        static const char head[] = "Subject: a\nX-A: b\rX-B: c\xc3\xa9\r\nX-Long: ";
        static const char tail[] = "\r\nX-Nul: \0!\r\n\r\nbody\r\n";
        hl = sizeof(head) - 1;
        memcpy(hdrs, head, hl);
        memset(hdrs + hl, 'z', 3000);
        memcpy(hdrs + hl + 3000, tail, sizeof(tail) - 1);
        hl += 3000 + sizeof(tail) - 1;
    }
    mk(&e);
    env_rcpt_set(&e.rcpts[0], RCPT_BOUNCED, "5.0.0", text);
    env_rcpt_set(&e.rcpts[1], RCPT_BOUNCED, "5.0.0", "tab\there \x01\x7f end\r\nInjected: yes");
    env_add_rcpt(&e, addr, addr);
    env_rcpt_set(&e.rcpts[4], RCPT_BOUNCED, "", "");
    in = info(NULL);
    in.orig_headers = hdrs;
    in.orig_headers_len = hl;
    is_int(bounce_build(&e, BOUNCE_FAILED, &in, &out, &len), 0, "dirty DSN built");
    if (out != NULL) {
        ok(lines_ok(out, len, &longest), "dirty: CRLF only, <= 998 (longest %zu)", longest);
        ok(strstr(out, "\r\nInjected: yes") == NULL, "no header injection from a reason");
        ok(strstr(out, "tab here ?? end Injected: yes") != NULL, "controls cleaned");
        ok(strstr(out, "Subject: a\r\nX-A: b\r\nX-B: c\xc3\xa9\r\nX-Long: zzz") != NULL,
           "original header line ends normalised");
        ok(strstr(out, "X-Nul: ?!\r\n") != NULL, "NUL replaced");
        is_int(count(out, len, "\r\n zz"), 3, "a 3000-octet header line folded three times");
        is_int(count(out, len, "\r\nzz"), 0, "  always as a continuation (\"\\r\\n \")");
        ok(strstr(out, "body") == NULL, "original body not included");
        is_int(count(out, len, "Content-Transfer-Encoding: 8bit\r\n"), 2, "8bit declared");
        ok(count(out, len, "Diagnostic-Code: X-Hato; xxx") == 1, "long diagnostic present");
    }
    free(out);
    free(text);
    free(hdrs);
    free(addr);
    env_clear(&e);
}

/* The whole original: blank line kept, a long line split with no folding
 * space, a NUL as '?'. */
static void test_full_long_line(void)
{
    struct envelope e;
    struct bounce_info in = info(HDRS);
    char full[2100], *out = NULL;
    size_t len = 0, longest = 0, hl = strlen("Subject: s\r\n\r\n");

    memcpy(full, "Subject: s\r\n\r\n", hl);
    memset(full + hl, 'q', 2000);
    memcpy(full + hl + 2000, "\0x\r\n", 4);
    in.orig_full = full;
    in.orig_full_len = hl + 2004;
    mk(&e);
    is_int(bounce_build(&e, BOUNCE_FAILED, &in, &out, &len), 0, "failed DSN, long body line");
    int good = out != NULL && lines_ok(out, len, &longest);
    ok(good, "CRLF, <= 998 (longest %zu)", longest);
    if (out != NULL) {
        is_int(count(out, len, "Subject: s\r\n\r\nqq"), 1, "the blank line kept");
        is_int(count(out, len, "\r\nqq"), 3, "2000 octets: split twice");
        is_int(count(out, len, "\r\n qq"), 0, "  with no folding space");
        is_int(count(out, len, "q?x\r\n"), 1, "NUL replaced");
    }
    free(out);
    env_clear(&e);
}

/* Remote details, DSN fields, NOTIFY, success notices, the whole original
 * and the double bounce (issue 7). */
static void test_dsn_fields(void)
{
    struct envelope e;
    struct bounce_info in = info(HDRS);
    char *out = NULL;
    size_t len = 0, longest = 0;
    static const char full[] = "Subject: hello\r\nFrom: s@example.com\r\n\r\nBODY\nline2\r\n";

    mk(&e);
    env_set_dsn(&e, ENV_RET_NONE, "ENV 42");
    env_rcpt_set_remote(&e.rcpts[0], "mx1.example.org[127.0.0.2]:25", "TLSv1.3", 1);
    env_rcpt_set(&e.rcpts[0], RCPT_BOUNCED, "5.1.1", "550 5.1.1 <a@example.org>: User unknown");
    env_rcpt_set_dsn(&e.rcpts[0], ENV_N_FAILURE, "rfc822;A@Example.org");
    env_rcpt_set_dsn(&e.rcpts[1], ENV_N_SUCCESS, NULL);      /* B, but no FAILURE */
    is_int(bounce_build(&e, BOUNCE_FAILED, &in, &out, &len), 0, "failed DSN with remote details");
    ok(count(out, len, "\r\nOriginal-Envelope-Id: ENV 42\r\n") == 1, "Original-Envelope-Id");
    ok(count(out, len, "\r\nRemote-MTA: dns; mx1.example.org\r\n") == 1, "Remote-MTA: dns; host");
    ok(count(out, len, "\r\nDiagnostic-Code: smtp; 550 5.1.1 <a@example.org>: User unknown\r\n") == 1,
       "Diagnostic-Code: smtp; the remote reply");
    free(out);
    out = NULL;
    env_rcpt_set(&e.rcpts[0], RCPT_BOUNCED, "5.1.1",
                 "host mx1.example.org[127.0.0.2] said: 550 5.1.1 no such user (in reply to RCPT TO)");
    is_int(bounce_build(&e, BOUNCE_FAILED, &in, &out, &len), 0, "failed DSN, agent's wording");
    ok(count(out, len, "\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user (in reply to RCPT TO)\r\n") == 1,
       "Diagnostic-Code: smtp; the reply without \"host ... said:\"");
    ok(count(out, len, "<a@example.org>: host mx1.example.org[127.0.0.2] said: 550") == 1,
       "the human part keeps the host");
    ok(count(out, len, "\r\nOriginal-Recipient: rfc822; A@Example.org\r\nFinal-Recipient: rfc822; a@example.org\r\n") == 1,
       "Original-Recipient from ORCPT=, before Final-Recipient");
    ok(count(out, len, "b@example.org") == 0, "NOTIFY=SUCCESS recipient not in the failure report");
    ok(count(out, len, "text/rfc822-headers") == 1, "headers only without orig_full");
    free(out);
    out = NULL;

    in.orig_full = full;
    in.orig_full_len = strlen(full);
    is_int(bounce_build(&e, BOUNCE_FAILED, &in, &out, &len), 0, "failed DSN, whole original");
    ok(count(out, len, "Content-Type: message/rfc822\r\n") == 1 &&
       count(out, len, "text/rfc822-headers") == 0, "message/rfc822 part instead of the headers");
    ok(count(out, len, "\r\nBODY\r\nline2\r\n") == 1, "body copied, bare LF made CRLF");
    ok(lines_ok(out, len, &longest), "CRLF discipline with the whole original");
    free(out);
    out = NULL;
    is_int(bounce_build(&e, BOUNCE_DELAYED, &in, &out, &len), 0, "delay notice");
    ok(count(out, len, "message/rfc822") == 0, "a delay notice never returns the whole message");
    free(out);
    out = NULL;
    in.orig_full = NULL;

    e.rcpts[0].notify = ENV_N_NEVER;
    e.rcpts[1].notify = ENV_N_NEVER;
    is_int(bounce_build(&e, BOUNCE_FAILED, &in, &out, &len), -1, "NOTIFY=NEVER everywhere: nothing");
    e.rcpts[2].notify = ENV_N_FAILURE;
    is_int(bounce_build(&e, BOUNCE_DELAYED, &in, &out, &len), -1, "pending without DELAY: nothing");
    is_int(bounce_build(&e, BOUNCE_SUCCESS, &in, &out, &len), -1, "no SUCCESS asked: nothing");

    e.rcpts[3].notify = ENV_N_SUCCESS;
    env_rcpt_set_remote(&e.rcpts[3], "relay.example.org[127.0.0.9]:25", "", 1);
    e.rcpts[2].state = RCPT_SENT;
    e.rcpts[2].notify = ENV_N_SUCCESS | ENV_N_FAILURE;
    is_int(bounce_build(&e, BOUNCE_SUCCESS, &in, &out, &len), 0, "success notice");
    ok(count(out, len, "Subject: Successful Mail Delivery Report\r\n") == 1, "success subject");
    ok(count(out, len, "\r\nFinal-Recipient: rfc822; d@example.org\r\nAction: relayed\r\n") == 1,
       "remote: Action relayed");
    ok(count(out, len, "\r\nFinal-Recipient: rfc822; c@example.org\r\nAction: delivered\r\n") == 1,
       "local: Action delivered");
    ok(count(out, len, "Status: 2.0.0\r\n") == 1 && count(out, len, "Status: 4.4.1") == 1,
       "statuses as recorded");
    free(out);
    out = NULL;
    env_clear(&e);

    mk(&e);
    env_set_sender(&e, "");
    e.flags = ENV_F_BOUNCE;
    in.to = "postmaster@example.net";
    is_int(bounce_build(&e, BOUNCE_FAILED, &in, &out, &len), 0, "double bounce to postmaster");
    ok(count(out, len, "\r\nTo: <postmaster@example.net>\r\n") == 1, "To: postmaster");
    free(out);
    out = NULL;
    is_int(bounce_build(&e, BOUNCE_DELAYED, &in, &out, &len), -1, "no delay notice about a notice");
    env_clear(&e);

    /* SMTPUTF8 (RFC 6533): the global types, UTF-8 kept, "utf-8" addresses */
    mk(&e);
    env_add_rcpt(&e, "m\xc3\xbcller@example.org", "");
    env_rcpt_set(&e.rcpts[4], RCPT_BOUNCED, "5.2.2", "mailbox full f\xc3\xbcr m\xc3\xbcller \xff");
    is_int(bounce_build(&e, BOUNCE_FAILED, &in, &out, &len), 0, "ASCII report about a UTF-8 rcpt");
    ok(count(out, len, "Final-Recipient: rfc822; m??ller@example.org\r\n") == 1,
       "without SMTPUTF8 non-ASCII shows as '?'");
    free(out);
    out = NULL;
    e.flags |= ENV_F_SMTPUTF8;
    is_int(bounce_build(&e, BOUNCE_FAILED, &in, &out, &len), 0, "report about an SMTPUTF8 message");
    ok(count(out, len, "report-type=global-delivery-status;") == 1, "report-type global-delivery-status");
    ok(count(out, len, "Content-Type: message/global-delivery-status\r\n") == 1, "global status part");
    ok(count(out, len, "Content-Type: message/global-headers\r\n") == 1, "global headers part");
    ok(count(out, len, "Content-Type: text/plain; charset=utf-8\r\n") == 1, "UTF-8 text part");
    ok(count(out, len, "Final-Recipient: utf-8; m\xc3\xbcller@example.org\r\n") == 1,
       "utf-8 address type, address kept");
    ok(count(out, len, "Final-Recipient: rfc822; a@example.org\r\n") == 1, "ASCII ones stay rfc822");
    ok(count(out, len, "f\xc3\xbcr m\xc3\xbcller ?") >= 1, "well-formed UTF-8 kept, a stray byte not");
    ok(lines_ok(out, len, &longest), "CRLF discipline");
    free(out);
    out = NULL;
    env_clear(&e);

    mk(&e);
    ok(!bounce_return_full(&e, 0) && bounce_return_full(&e, 1), "no RET: the config decides");
    e.ret = ENV_RET_FULL;
    ok(bounce_return_full(&e, 0), "RET=FULL beats headers");
    e.ret = ENV_RET_HDRS;
    ok(!bounce_return_full(&e, 1), "RET=HDRS beats full");
    env_clear(&e);
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    test_dsn_fields();
    test_failed();
    test_delayed();
    test_nothing();
    test_long_and_dirty();
    test_full_long_line();
    return tap_done();
}
