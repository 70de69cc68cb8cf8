/*
 * queue/listing.c — mailq output (see listing.h): Postfix's showq text
 * layout and postqueue -j style JSON, from envelopes the caller loaded.
 *
 * Pure formatting onto a FILE: no queue access, no global state.  Text
 * output replaces control bytes with '?' so a hostile address cannot drive
 * the terminal; JSON output is always valid UTF-8 JSON (bytes that are not
 * UTF-8 come out as \u00XX).  Only pending recipients are listed.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "queue/listing.h"

#define LST_HEADER   "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"
#define LST_EMPTY    "Mail queue is empty"
#define LST_INDENT   41          /* spaces before a recipient */
#define LST_REASON   78          /* octets of a reason shown */
#define LST_NULL_SENDER "MAILER-DAEMON"
#define LST_KBYTE    1024

/* ------------------------------------------------------------------ */
/* text                                                                */

/* Write s (at most max octets), control bytes as '?'. */
static int lst_put_safe(FILE *out, const char *s, size_t max)
{
    size_t i;

    for (i = 0; s != NULL && s[i] != '\0' && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (putc(c < 0x20 || c == 0x7f ? '?' : c, out) == EOF)
            return -1;
    }
    return 0;
}

/* "Mon Nov 23 14:09:14" in local time, independent of the locale. */
static void lst_ctime(long long arrival_us, char *buf, size_t len)
{
    static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *const mons[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    time_t t = (time_t)(arrival_us / 1000000);
    struct tm tm;

    if (localtime_r(&t, &tm) == NULL || tm.tm_wday < 0 || tm.tm_wday > 6 ||
        tm.tm_mon < 0 || tm.tm_mon > 11) {
        snprintf(buf, len, "%s", "???");
        return;
    }
    snprintf(buf, len, "%s %s %2d %02d:%02d:%02d", days[tm.tm_wday], mons[tm.tm_mon],
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static const char *lst_text(const char *s)
{
    return s != NULL ? s : "";
}

static int lst_rcpt_line(FILE *out, const struct env_rcpt *r)
{
    if (fprintf(out, "%*s", LST_INDENT, "") < 0 || lst_put_safe(out, r->addr, SIZE_MAX) < 0)
        return -1;
    return putc('\n', out) == EOF ? -1 : 0;
}

/* 1 if an earlier pending recipient than i has the same reason. */
static int lst_reason_seen(const struct envelope *e, size_t i)
{
    size_t j;

    for (j = 0; j < i; j++)
        if (e->rcpts[j].state == RCPT_PENDING &&
            strcmp(lst_text(e->rcpts[j].text), lst_text(e->rcpts[i].text)) == 0)
            return 1;
    return 0;
}

/* The "(reason)" line and every pending recipient with that reason. */
static int lst_reason_group(FILE *out, const struct envelope *e, const char *reason)
{
    size_t j;

    if (reason[0] != '\0') {
        if (putc('(', out) == EOF || lst_put_safe(out, reason, LST_REASON) < 0 ||
            fputs(")\n", out) == EOF)
            return -1;
    }
    for (j = 0; j < e->nrcpt; j++)
        if (e->rcpts[j].state == RCPT_PENDING &&
            strcmp(lst_text(e->rcpts[j].text), reason) == 0 &&
            lst_rcpt_line(out, &e->rcpts[j]) < 0)
            return -1;
    return 0;
}

static int lst_recipients(FILE *out, const struct envelope *e)
{
    size_t i;

    if (lst_reason_group(out, e, "") < 0)      /* no reason first */
        return -1;
    for (i = 0; i < e->nrcpt; i++) {
        const char *reason = lst_text(e->rcpts[i].text);
        if (e->rcpts[i].state != RCPT_PENDING || reason[0] == '\0' ||
            lst_reason_seen(e, i))
            continue;
        if (lst_reason_group(out, e, reason) < 0)
            return -1;
    }
    return 0;
}

static int lst_message(FILE *out, const struct queue_item *it)
{
    const struct envelope *e = it->env;
    const char *sender = lst_text(e->sender);
    char when[64];
    int mark = it->held ? '!' : it->active ? '*' : ' ';

    lst_ctime(e->arrival_us, when, sizeof(when));
    if (fprintf(out, "%-10s%c %8lld %.20s  ", e->id, mark, e->size, when) < 0)
        return -1;
    if (lst_put_safe(out, sender[0] ? sender : LST_NULL_SENDER, SIZE_MAX) < 0 ||
        putc('\n', out) == EOF)
        return -1;
    if (lst_recipients(out, e) < 0)
        return -1;
    return putc('\n', out) == EOF ? -1 : 0;
}

int queue_listing_text(FILE *out, const struct queue_item *items, size_t n)
{
    unsigned long long total = 0;
    size_t i, count = 0;

    for (i = 0; i < n; i++)
        if (items[i].env != NULL)
            count++;
    if (count == 0)
        return fprintf(out, "%s\n", LST_EMPTY) < 0 ? -1 : 0;
    if (fprintf(out, "%s\n", LST_HEADER) < 0)
        return -1;
    for (i = 0; i < n; i++) {
        if (items[i].env == NULL)
            continue;
        if (lst_message(out, &items[i]) < 0)
            return -1;
        if (items[i].env->size > 0)
            total += (unsigned long long)items[i].env->size;
    }
    if (fprintf(out, "-- %llu Kbytes in %zu Request%s.\n",
                (total + LST_KBYTE - 1) / LST_KBYTE, count, count == 1 ? "" : "s") < 0)
        return -1;
    return fflush(out) == EOF ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */

/* Length of a valid UTF-8 sequence at s (1..4), or 0. */
static size_t lst_utf8_len(const unsigned char *s)
{
    size_t n, i;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)   /* also stops at the NUL */
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

static int lst_json_str(FILE *out, const char *str)
{
    const unsigned char *s = (const unsigned char *)lst_text(str);

    if (putc('"', out) == EOF)
        return -1;
    while (*s != '\0') {
        size_t n = lst_utf8_len(s);
        int rc;
        if (*s == '"' || *s == '\\')
            rc = fprintf(out, "\\%c", *s);
        else if (n == 0 || *s < 0x20 || *s == 0x7f)
            rc = fprintf(out, "\\u%04x", *s);
        else
            rc = fwrite(s, 1, n, out) == n ? 0 : -1;
        if (rc < 0)
            return -1;
        s += n ? n : 1;
    }
    return putc('"', out) == EOF ? -1 : 0;
}

static const char *lst_queue_name(const struct queue_item *it)
{
    if (it->held)
        return "hold";
    return it->active ? "active" : "deferred";
}

static int lst_json_rcpts(FILE *out, const struct envelope *e)
{
    size_t i;
    int first = 1;

    if (fputs("\"recipients\":[", out) == EOF)
        return -1;
    for (i = 0; i < e->nrcpt; i++) {
        if (e->rcpts[i].state != RCPT_PENDING)
            continue;
        if (fputs(first ? "{\"address\":" : ",{\"address\":", out) == EOF ||
            lst_json_str(out, e->rcpts[i].addr) < 0 ||
            fputs(",\"delay_reason\":", out) == EOF ||
            lst_json_str(out, e->rcpts[i].text) < 0 || putc('}', out) == EOF)
            return -1;
        first = 0;
    }
    return putc(']', out) == EOF ? -1 : 0;
}

static int lst_json_one(FILE *out, const struct queue_item *it)
{
    const struct envelope *e = it->env;

    if (fprintf(out, "{\"queue_name\":\"%s\",\"queue_id\":", lst_queue_name(it)) < 0 ||
        lst_json_str(out, e->id) < 0 ||
        fprintf(out, ",\"arrival_time\":%lld,\"message_size\":%lld,\"sender\":",
                e->arrival_us / 1000000, e->size) < 0 ||
        lst_json_str(out, e->sender) < 0 || putc(',', out) == EOF ||
        lst_json_rcpts(out, e) < 0)
        return -1;
    return fputs("}\n", out) == EOF ? -1 : 0;
}

int queue_listing_json(FILE *out, const struct queue_item *items, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (items[i].env != NULL && lst_json_one(out, &items[i]) < 0)
            return -1;
    return fflush(out) == EOF ? -1 : 0;
}
