/*
 * proto/local_headers.c — formats hatod's Received: field (sized to what
 * it holds, so the date is never cut), finds which of Date:, Message-ID:
 * and From: a local message lacks and formats the missing ones.  Never
 * looks past the header section it is given; only received_format
 * allocates.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/timeutil.h"
#include "proto/local_headers.h"

struct field {
    const char *name;
    int bit;
};

static const struct field fields[] = {
    { "date", LH_DATE },
    { "message-id", LH_MESSAGE_ID },
    { "from", LH_FROM },
};

/* The bit of the field this line starts, or 0. */
static int field_bit(const char *line, size_t len)
{
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        size_t n = strlen(fields[i].name);
        if (len <= n || strncasecmp(line, fields[i].name, n) != 0)
            continue;
        size_t j = n;
        while (j < len && (line[j] == ' ' || line[j] == '\t'))
            j++;
        if (j < len && line[j] == ':')
            return fields[i].bit;
    }
    return 0;
}

int local_headers_missing(const char *hdr, size_t len)
{
    int present = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(hdr + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - hdr) + 1 : len;
        if (hdr[pos] != ' ' && hdr[pos] != '\t')
            present |= field_bit(hdr + pos, end - pos);
        pos = end;
    }
    return (LH_DATE | LH_MESSAGE_ID | LH_FROM) & ~present;
}

int local_headers_format(int missing, const char *sender, const char *qid,
                         const char *myhostname, time_t now, char *buf, size_t buflen)
{
    char date[64];
    size_t used = 0;
    int n;
    buf[0] = '\0';
    if (missing & LH_DATE) {
        time_rfc5322(now, date, sizeof date);
        n = snprintf(buf + used, buflen - used, "Date: %s\r\n", date);
        if (n < 0 || (size_t)n >= buflen - used)
            return -1;
        used += (size_t)n;
    }
    if (missing & LH_MESSAGE_ID) {
        n = snprintf(buf + used, buflen - used, "Message-ID: <%s@%s>\r\n", qid, myhostname);
        if (n < 0 || (size_t)n >= buflen - used)
            return -1;
        used += (size_t)n;
    }
    if (missing & LH_FROM) {
        if (sender && *sender)
            n = snprintf(buf + used, buflen - used, "From: <%s>\r\n", sender);
        else
            n = snprintf(buf + used, buflen - used, "From: MAILER-DAEMON@%s\r\n", myhostname);
        if (n < 0 || (size_t)n >= buflen - used)
            return -1;
        used += (size_t)n;
    }
    return (int)used;
}

/* printf into a new buffer of exactly the needed size. */
static char *format_alloc(size_t *len, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *format_alloc(size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *buf = malloc((size_t)n + 1);
    if (!buf)
        return NULL;
    va_start(ap, fmt);
    int m = vsnprintf(buf, (size_t)n + 1, fmt, ap);
    va_end(ap);
    if (m != n) {
        free(buf);
        return NULL;
    }
    *len = (size_t)n;
    return buf;
}

char *received_format(const struct received_info *ri, size_t *len)
{
    char date[64];
    time_rfc5322(ri->now, date, sizeof date);
    if (ri->local)
        return format_alloc(len, "Received: by %s (%s, from userid %u)\r\n\tid %s; %s\r\n",
                            ri->myhostname, ri->mail_name, ri->uid, ri->qid, date);
    int has_for = ri->for_rcpt && *ri->for_rcpt;
    int has_tls = ri->tls && *ri->tls;
    return format_alloc(len, "Received: from %s ([%s%s])\r\n%s%s%s"
                        "\tby %s (%s) with %s id %s%s%s%s; %s\r\n",
                        ri->helo ? ri->helo : "unknown", ri->ipv6 ? "IPv6:" : "",
                        ri->client_addr, has_tls ? "\t(using " : "", has_tls ? ri->tls : "",
                        has_tls ? ")\r\n" : "",
                        ri->myhostname, ri->mail_name, ri->proto, ri->qid,
                        has_for ? "\r\n\tfor <" : "", has_for ? ri->for_rcpt : "",
                        has_for ? ">" : "", date);
}
