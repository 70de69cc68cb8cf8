/*
 * queue/bounce.c — delivery status notifications (see bounce.h): builds
 * the RFC 3464 multipart/report text for "failed", "delayed" and success
 * notices, honouring each recipient's DSN NOTIFY and the message's RET.
 *
 * Owns the DSN's wording and layout, the MIME boundary (from the DSN's own
 * queue ID, so unique) and the line discipline: every line ends in CRLF and
 * is at most 998 octets (long values are folded, the original headers are
 * re-terminated and split).  Addresses and reasons are shown with bytes
 * outside printable ASCII replaced by '?', except that a report about an
 * SMTPUTF8 message (RFC 6533) keeps well-formed UTF-8 and uses the global
 * types: message/global-delivery-status with "utf-8" addresses,
 * message/global-headers or message/global for the original.  Pure text building: no I/O,
 * no global state; the caller queues the result.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* vasprintf, memmem; the build also defines it */
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/addr.h"
#include "queue/bounce.h"

#define BNC_FOLD_SOFT    78     /* fold lines longer than this at a space */
#define BNC_FOLD_HARD    990    /* never longer (RFC 5322 allows 998) */
#define BNC_BOUNDARY_MAX 70     /* RFC 2046 */
#define BNC_HOST_IN_BND  24     /* octets of myhostname used in the boundary */
#define BNC_BND_TRIES    100    /* variants tried if the headers contain one */
#define BNC_DEFAULT_HOST "localhost"
#define BNC_STATUS_FAIL  "5.0.0"
#define BNC_STATUS_DELAY "4.0.0"
#define BNC_SUBJ_FAIL    "Undelivered Mail Returned to Sender"
#define BNC_SUBJ_DELAY   "Delayed Mail (still being retried)"
#define BNC_SUBJ_OK      "Successful Mail Delivery Report"
#define BNC_STATUS_OK    "2.0.0"
#define BNC_SIGNATURE    "                   The mail system"

struct bnc {
    FILE *f;
    const struct envelope *e;
    enum bounce_kind kind;
    const struct bounce_info *info;
    const char *host;
    char boundary[BNC_BOUNDARY_MAX + 1];
    int eightbit;              /* the original headers have 8-bit bytes */
    int utf8;                  /* about an SMTPUTF8 message: RFC 6533 */
};

/* ------------------------------------------------------------------ */
/* line output                                                         */

/* Copy of s: controls become ' ' (tab, CR, LF) or '?', 8-bit bytes '?'
 * (with utf8, a well-formed UTF-8 character stays), runs of spaces
 * collapse, trailing space goes. */
static char *bnc_clean(const char *s, int utf8)
{
    size_t n = strlen(s), o = 0, i, k;
    char *c = malloc(n + 1);

    if (c == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (utf8 && ch >= 0x80 && (k = addr_utf8_char(s + i, n - i)) > 0) {
            memcpy(c + o, s + i, k);
            o += k;
            i += k - 1;
            continue;
        }
        if (ch == '\t' || ch == '\r' || ch == '\n')
            ch = ' ';
        else if (ch < 0x20 || ch > 0x7e)
            ch = '?';
        if (ch == ' ' && (o == 0 || c[o - 1] == ' '))
            continue;
        c[o++] = (char)ch;
    }
    while (o > 0 && c[o - 1] == ' ')
        o--;
    c[o] = '\0';
    return c;
}

/* Where to end the first line of p (len > BNC_FOLD_SOFT): before a space,
 * preferably within the soft limit; else a hard cut. */
static size_t bnc_cut(const char *p, size_t len)
{
    size_t i;

    for (i = BNC_FOLD_SOFT; i >= 1; i--)
        if (p[i] == ' ')
            return i;
    for (i = BNC_FOLD_SOFT + 1; i < len && i <= BNC_FOLD_HARD; i++)
        if (p[i] == ' ')
            return i;
    return len <= BNC_FOLD_HARD ? len : BNC_FOLD_HARD;
}

/* Write s as one logical line, folded (continuations start with a space). */
static int bnc_fold(FILE *f, const char *s)
{
    size_t len = strlen(s);

    while (len > BNC_FOLD_SOFT) {
        size_t cut = bnc_cut(s, len);
        if (cut == len)
            break;
        if (fwrite(s, 1, cut, f) != cut || fputs("\r\n", f) == EOF)
            return -1;
        s += cut;
        len -= cut;
        if (*s != ' ' && putc(' ', f) == EOF)   /* hard cut */
            return -1;
    }
    if (fwrite(s, 1, len, f) != len || fputs("\r\n", f) == EOF)
        return -1;
    return 0;
}

/* printf a logical line: cleaned, folded, CRLF. */
static int bnc_line(struct bnc *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int bnc_line(struct bnc *b, const char *fmt, ...)
{
    va_list ap;
    char *raw = NULL, *clean;
    int n, rc;

    va_start(ap, fmt);
    n = vasprintf(&raw, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    clean = bnc_clean(raw, b->utf8);
    free(raw);
    if (clean == NULL)
        return -1;
    rc = bnc_fold(b->f, clean);
    free(clean);
    return rc;
}

/* Fixed text lines, '\n' separated, each written with CRLF. */
static int bnc_text(struct bnc *b, const char *text)
{
    while (*text != '\0') {
        const char *nl = strchr(text, '\n');
        size_t n = nl ? (size_t)(nl - text) : strlen(text);
        if (fwrite(text, 1, n, b->f) != n || fputs("\r\n", b->f) == EOF)
            return -1;
        text += n + (nl ? 1 : 0);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* pieces                                                              */

/* "Mon, 23 Nov 2026 14:09:14 +0100", local time, locale-independent. */
static void bnc_date(time_t t, char *buf, size_t len)
{
    static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *const mons[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    struct tm tm;
    long off;

    if (localtime_r(&t, &tm) == NULL || tm.tm_wday < 0 || tm.tm_wday > 6 ||
        tm.tm_mon < 0 || tm.tm_mon > 11) {
        snprintf(buf, len, "Thu, 1 Jan 1970 00:00:00 +0000");
        return;
    }
    off = tm.tm_gmtoff / 60;
    snprintf(buf, len, "%s, %d %s %04d %02d:%02d:%02d %c%02ld%02ld",
             days[tm.tm_wday], tm.tm_mday, mons[tm.tm_mon], tm.tm_year + 1900,
             tm.tm_hour, tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+',
             (off < 0 ? -off : off) / 60, (off < 0 ? -off : off) % 60);
}

int bounce_wanted(const struct env_rcpt *r, enum bounce_kind kind)
{
    int n = r->notify;

    switch (kind) {
    case BOUNCE_FAILED:
        return r->state == RCPT_BOUNCED && (n == 0 || (n & ENV_N_FAILURE));
    case BOUNCE_DELAYED:
        return r->state == RCPT_PENDING && (n == 0 || (n & ENV_N_DELAY));
    case BOUNCE_SUCCESS:
    default:
        return r->state == RCPT_SENT && (n & ENV_N_SUCCESS);
    }
}

int bounce_return_full(const struct envelope *e, int return_full)
{
    if (e->ret == ENV_RET_FULL)
        return 1;
    if (e->ret == ENV_RET_HDRS)
        return 0;
    return return_full != 0;
}

static int bnc_wanted(const struct bnc *b, const struct env_rcpt *r)
{
    return bounce_wanted(r, b->kind);
}

static const char *bnc_subject(enum bounce_kind kind)
{
    return kind == BOUNCE_FAILED ? BNC_SUBJ_FAIL : kind == BOUNCE_DELAYED ? BNC_SUBJ_DELAY
                                                                          : BNC_SUBJ_OK;
}

/* Whether the original goes back whole (message/rfc822). */
static int bnc_full(const struct bnc *b)
{
    return b->kind == BOUNCE_FAILED && b->info->orig_full != NULL;
}

static const char *bnc_str(const char *s)
{
    return s != NULL ? s : "";
}

static int bnc_headers_contain(const struct bounce_info *in, const char *s)
{
    return (in->orig_headers != NULL &&
            memmem(in->orig_headers, in->orig_headers_len, s, strlen(s)) != NULL) ||
           (in->orig_full != NULL &&
            memmem(in->orig_full, in->orig_full_len, s, strlen(s)) != NULL);
}

/* ID.TIME/HOST, with only boundary-safe characters, not in the headers. */
static int bnc_boundary(struct bnc *b)
{
    char host[BNC_HOST_IN_BND + 1];
    size_t i;
    int t;

    snprintf(host, sizeof(host), "%s", b->host);
    for (i = 0; host[i] != '\0'; i++)
        if (!((host[i] >= 'a' && host[i] <= 'z') || (host[i] >= 'A' && host[i] <= 'Z') ||
              (host[i] >= '0' && host[i] <= '9') || host[i] == '.' || host[i] == '-'))
            host[i] = '-';
    for (t = 0; t < BNC_BND_TRIES; t++) {
        snprintf(b->boundary, sizeof(b->boundary), "%.20s.%lld/%s%s%.0d",
                 bnc_str(b->info->new_id), (long long)b->info->now, host,
                 t ? "." : "", t);
        if (!bnc_headers_contain(b->info, b->boundary))
            return 0;
    }
    errno = EINVAL;
    return -1;
}

static int bnc_top_headers(struct bnc *b)
{
    char date[64];

    bnc_date(b->info->now, date, sizeof(date));
    if (bnc_line(b, "Date: %s", date) < 0 ||
        bnc_line(b, "From: Mail Delivery System <MAILER-DAEMON@%s>", b->host) < 0 ||
        bnc_line(b, "To: <%s>", b->info->to ? b->info->to : bnc_str(b->e->sender)) < 0 ||
        bnc_line(b, "Subject: %s", bnc_subject(b->kind)) < 0 ||
        bnc_line(b, "Message-ID: <%s@%s>", bnc_str(b->info->new_id), b->host) < 0 ||
        bnc_line(b, "Auto-Submitted: auto-replied") < 0 ||
        bnc_line(b, "MIME-Version: 1.0") < 0 ||
        bnc_line(b, "Content-Type: multipart/report; report-type=%s; boundary=\"%s\"",
                 b->utf8 ? "global-delivery-status" : "delivery-status", b->boundary) < 0)
        return -1;
    if ((b->eightbit || b->utf8) && bnc_line(b, "Content-Transfer-Encoding: 8bit") < 0)
        return -1;
    return bnc_text(b, "\nThis is a MIME-encapsulated message.\n");
}

static int bnc_part_start(struct bnc *b, const char *desc, const char *type)
{
    return bnc_text(b, "\n") < 0 || bnc_line(b, "--%s", b->boundary) < 0 ||
           bnc_line(b, "Content-Description: %s", desc) < 0 ||
           bnc_line(b, "Content-Type: %s", type) < 0 ||
           (b->utf8 && bnc_line(b, "Content-Transfer-Encoding: 8bit") < 0) ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* part 1: for people                                                  */

static int bnc_human_intro(struct bnc *b)
{
    const struct envelope *e = b->e;
    double hours = ((double)b->info->now - (double)(e->arrival_us / 1000000)) / 3600.0;

    if (bnc_line(b, "This is the mail system at host %s.", b->host) < 0 || bnc_text(b, "\n") < 0)
        return -1;
    if (b->kind == BOUNCE_SUCCESS)
        return bnc_text(b, "Your message was successfully delivered to the destination(s)\n"
                           "listed below. If the message was delivered to a mailbox you will\n"
                           "receive no further notifications. Otherwise you may still receive\n"
                           "notifications of mail delivery errors from other systems.\n");
    if (b->kind == BOUNCE_DELAYED)
        return bnc_text(b, "####### THIS IS A WARNING ONLY. YOU DO NOT NEED TO RESEND YOUR MESSAGE. #######\n\n") < 0 ||
               bnc_line(b, "Your message could not be delivered for %.1f hours.",
                        hours > 0 ? hours : 0.0) < 0 ||
               bnc_text(b, "The mail system will keep trying to deliver it.\n\n"
                           "For further assistance, please send mail to postmaster.\n") < 0 ? -1 : 0;
    if (bnc_text(b, "I'm sorry to have to inform you that your message could not\n"
                    "be delivered to one or more recipients.\n") < 0)
        return -1;
    if (bnc_full(b) && bnc_text(b, "Your message is attached below.\n") < 0)
        return -1;
    if (!bnc_full(b) && b->info->orig_headers != NULL &&
        bnc_text(b, "The headers of your message are attached below.\n") < 0)
        return -1;
    return bnc_text(b, "\nFor further assistance, please send mail to postmaster.\n\n"
                       "If you do so, please include this problem report. You can\n"
                       "delete your own text from the attached returned message.\n");
}

static int bnc_human_rcpt(struct bnc *b, const struct env_rcpt *r)
{
    const char *text = bnc_str(r->text);
    const char *orcpt = bnc_str(r->orcpt);

    if (text[0] == '\0' || b->kind == BOUNCE_SUCCESS)
        text = b->kind == BOUNCE_FAILED ? "delivery failed" :
               b->kind == BOUNCE_DELAYED ? "delivery deferred" :
               bnc_str(r->remote)[0] ? "relayed" : "delivery successful";
    if (bnc_text(b, "\n") < 0)
        return -1;
    if (orcpt[0] != '\0' && strcmp(orcpt, bnc_str(r->addr)) != 0)
        return bnc_line(b, "<%s> (expanded from <%s>): %s", bnc_str(r->addr), orcpt, text);
    return bnc_line(b, "<%s>: %s", bnc_str(r->addr), text);
}

static int bnc_human(struct bnc *b)
{
    size_t i;

    if (bnc_part_start(b, "Notification",
                       b->utf8 ? "text/plain; charset=utf-8" : "text/plain; charset=us-ascii") < 0 ||
        bnc_text(b, "\n") < 0 || bnc_human_intro(b) < 0 ||
        bnc_text(b, "\n" BNC_SIGNATURE "\n") < 0)
        return -1;
    for (i = 0; i < b->e->nrcpt; i++)
        if (bnc_wanted(b, &b->e->rcpts[i]) && bnc_human_rcpt(b, &b->e->rcpts[i]) < 0)
            return -1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* part 2: for machines                                                */

/* "d.ddd.ddd" with the class the kind allows; else the default. */
static const char *bnc_status(const struct bnc *b, const char *dsn)
{
    const char *p = dsn;
    int part, digits;

    if (p == NULL || (*p != '2' && *p != '4' && *p != '5') || p[1] != '.')
        goto dflt;
    p += 2;
    for (part = 0; part < 2; part++) {
        for (digits = 0; *p >= '0' && *p <= '9'; p++)
            digits++;
        if (digits < 1 || digits > 3 || *p != (part == 0 ? '.' : '\0'))
            goto dflt;
        if (part == 0)
            p++;
    }
    return dsn;
dflt:
    return b->kind == BOUNCE_FAILED ? BNC_STATUS_FAIL :
           b->kind == BOUNCE_DELAYED ? BNC_STATUS_DELAY : BNC_STATUS_OK;
}

static const char *bnc_action(const struct bnc *b, const struct env_rcpt *r)
{
    if (b->kind == BOUNCE_FAILED)
        return "failed";
    if (b->kind == BOUNCE_DELAYED)
        return "delayed";
    return bnc_str(r->remote)[0] ? "relayed" : "delivered";
}

/* "host" of a "host[ip]:port" remote (the whole string if no '['). */
static int bnc_remote_mta(struct bnc *b, const char *remote)
{
    const char *br = strchr(remote, '[');
    int n = br ? (int)(br - remote) : (int)strlen(remote);

    if (n == 0 && br) {          /* "[ip]:port": the address */
        const char *end = strchr(br, ']');
        return bnc_line(b, "Remote-MTA: dns; [%.*s]", end ? (int)(end - br - 1) : 0, br + 1);
    }
    return bnc_line(b, "Remote-MTA: dns; %.*s", n, remote);
}

/* The address type for a: "utf-8" for a non-ASCII address (RFC 6533). */
static const char *bnc_type(const struct bnc *b, const char *a)
{
    for (; b->utf8 && *a; a++)
        if ((unsigned char)*a >= 0x80)
            return "utf-8";
    return "rfc822";
}

/* ORCPT= as given ("rfc822;a@b"), else the address before alias expansion. */
static int bnc_orig_rcpt(struct bnc *b, const struct env_rcpt *r)
{
    const char *dorcpt = bnc_str(r->dsn_orcpt), *orcpt = bnc_str(r->orcpt);
    const char *semi = strchr(dorcpt, ';');

    if (semi != NULL)
        return bnc_line(b, "Original-Recipient: %.*s; %s", (int)(semi - dorcpt), dorcpt,
                        semi + 1);
    if (orcpt[0] != '\0')
        return bnc_line(b, "Original-Recipient: %s; %s", bnc_type(b, orcpt), orcpt);
    return 0;
}

/* The remote reply in a reason "host H[ip] said: 550 5.1.1 ..." (the
 * agent's wording for people): what Diagnostic-Code: smtp; carries. */
static const char *bnc_smtp_reply(const char *text)
{
    const char *said = strncmp(text, "host ", 5) == 0 ? strstr(text, " said: ") : NULL;

    return said ? said + 7 : text;
}

static int bnc_report_rcpt(struct bnc *b, const struct env_rcpt *r)
{
    const char *text = bnc_str(r->text), *remote = bnc_str(r->remote);

    if (bnc_text(b, "\n") < 0 || bnc_orig_rcpt(b, r) < 0 ||
        bnc_line(b, "Final-Recipient: %s; %s", bnc_type(b, bnc_str(r->addr)),
                 bnc_str(r->addr)) < 0)
        return -1;
    if (bnc_line(b, "Action: %s", bnc_action(b, r)) < 0 ||
        bnc_line(b, "Status: %s", bnc_status(b, r->dsn)) < 0)
        return -1;
    if (remote[0] != '\0' && bnc_remote_mta(b, remote) < 0)
        return -1;
    if (text[0] != '\0' &&
        bnc_line(b, "Diagnostic-Code: %s; %s", remote[0] ? "smtp" : "X-Hato",
                 remote[0] ? bnc_smtp_reply(text) : text) < 0)
        return -1;
    return 0;
}

static int bnc_report(struct bnc *b)
{
    char date[64];
    const char *sender = bnc_str(b->e->sender);
    size_t i;

    bnc_date((time_t)(b->e->arrival_us / 1000000), date, sizeof(date));
    if (bnc_part_start(b, "Delivery report", b->utf8 ? "message/global-delivery-status"
                                                     : "message/delivery-status") < 0 ||
        bnc_text(b, "\n") < 0 ||
        (bnc_str(b->e->envid)[0] &&
         bnc_line(b, "Original-Envelope-Id: %s", b->e->envid) < 0) ||
        bnc_line(b, "Reporting-MTA: dns; %s", b->host) < 0 ||
        bnc_line(b, "X-Hato-Queue-ID: %s", b->e->id) < 0 ||
        bnc_line(b, "X-Hato-Sender: %s; %s", bnc_type(b, sender), sender) < 0 ||
        bnc_line(b, "Arrival-Date: %s", date) < 0)
        return -1;
    for (i = 0; i < b->e->nrcpt; i++)
        if (bnc_wanted(b, &b->e->rcpts[i]) && bnc_report_rcpt(b, &b->e->rcpts[i]) < 0)
            return -1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* part 3: the original headers                                         */

/* Copy with CRLF line ends, lines split before BNC_FOLD_HARD octets, NULs
 * as '?'.  headers: stop at the blank line that ends the header section,
 * and split a long line as a folded header ("\r\n " goes on with it);
 * otherwise the whole text, a long line split in two. */
static int bnc_copy(struct bnc *b, const char *m, size_t len, int headers)
{
    const char *split = headers ? "\r\n " : "\r\n";
    size_t i, col = 0;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)m[i];
        if (c == '\r' || c == '\n') {
            if (c == '\r' && i + 1 < len && m[i + 1] == '\n')
                i++;
            if (headers && col == 0)
                break;              /* end of the header section */
            if (fputs("\r\n", b->f) == EOF)
                return -1;
            col = 0;
            continue;
        }
        if (col >= BNC_FOLD_HARD) {
            if (fputs(split, b->f) == EOF)
                return -1;
            col = headers ? 1 : 0;
        }
        if (putc(c == 0 ? '?' : c, b->f) == EOF)
            return -1;
        col++;
    }
    return col > 0 && fputs("\r\n", b->f) == EOF ? -1 : 0;
}

/* The part that returns the original: the whole message (a failure with
 * orig_full) or its header section; none without either. */
static int bnc_orig(struct bnc *b)
{
    int full = bnc_full(b);
    const char *m = full ? b->info->orig_full : b->info->orig_headers;
    size_t len = full ? b->info->orig_full_len : b->info->orig_headers_len;
    const char *type = full ? (b->utf8 ? "message/global" : "message/rfc822")
                            : (b->utf8 ? "message/global-headers" : "text/rfc822-headers");

    if (m == NULL)
        return 0;
    if (bnc_part_start(b, full ? "Undelivered Message" : "Undelivered Message Headers",
                       type) < 0 ||
        (b->eightbit && !b->utf8 && bnc_line(b, "Content-Transfer-Encoding: 8bit") < 0) ||
        bnc_text(b, "\n") < 0)
        return -1;
    return bnc_copy(b, m, len, !full);
}

/* ------------------------------------------------------------------ */

static int bnc_any(const struct bnc *b)
{
    size_t i;

    for (i = 0; i < b->e->nrcpt; i++)
        if (bnc_wanted(b, &b->e->rcpts[i]))
            return 1;
    return 0;
}

static int bnc_has_8bit(const struct bounce_info *in, enum bounce_kind kind)
{
    const char *p = in->orig_headers;
    size_t i, n = in->orig_headers_len;

    if (kind == BOUNCE_FAILED && in->orig_full != NULL) {
        p = in->orig_full;
        n = in->orig_full_len;
    }
    for (i = 0; p != NULL && i < n; i++)
        if ((unsigned char)p[i] >= 0x80)
            return 1;
    return 0;
}

static int bnc_all(struct bnc *b)
{
    if (bnc_top_headers(b) < 0 || bnc_human(b) < 0 || bnc_report(b) < 0 ||
        bnc_orig(b) < 0 || bnc_text(b, "\n") < 0)
        return -1;
    return bnc_line(b, "--%s--", b->boundary);
}

int bounce_build(const struct envelope *orig, enum bounce_kind kind,
                 const struct bounce_info *info, char **out, size_t *outlen)
{
    struct bnc b;
    char *p = NULL;
    size_t n = 0;
    int rc;

    memset(&b, 0, sizeof(b));
    b.e = orig;
    b.kind = kind;
    b.info = info;
    b.host = info->myhostname && info->myhostname[0] ? info->myhostname : BNC_DEFAULT_HOST;
    b.eightbit = bnc_has_8bit(info, kind);
    b.utf8 = (orig->flags & ENV_F_SMTPUTF8) != 0;
    if (((orig->sender == NULL || orig->sender[0] == '\0' || (orig->flags & ENV_F_BOUNCE)) &&
         (info->to == NULL || kind != BOUNCE_FAILED)) || !bnc_any(&b)) {
        errno = ENOENT;             /* nobody to tell, or nothing to say */
        return -1;
    }
    if (bnc_boundary(&b) < 0)
        return -1;
    b.f = open_memstream(&p, &n);
    if (b.f == NULL)
        return -1;
    rc = bnc_all(&b);
    if (fclose(b.f) != 0)
        rc = -1;
    if (rc < 0) {
        free(p);
        return -1;
    }
    *out = p;
    *outlen = n;
    return 0;
}
