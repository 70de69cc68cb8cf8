/*
 * proto/local_headers.c — finds which of Date:, Message-ID: and From: a
 * local message lacks and formats the missing ones.  Never looks past the
 * header section it is given, never allocates.
 */
#include <stdio.h>
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
