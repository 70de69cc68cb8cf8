/*
 * store/path.c — validation of the names mailbox paths are built from
 * (store/path.h).  Owns the rule; mta/router.c and mta/local.c call it.
 */
#include <stdio.h>
#include <string.h>

#include "store/path.h"

#define STORE_NAME_MAX 255

int store_name_ok(const char *s)
{
    size_t n = 0;

    if (s == NULL || s[0] == '\0' || s[0] == '.')
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++) {
        if (*p == '/' || *p < 0x20 || *p == 0x7f || n >= STORE_NAME_MAX)
            return 0;
    }
    return 1;
}

int store_mailbox_rel(char *buf, size_t len, const char *domain, const char *local)
{
    int r;

    if (!store_name_ok(domain) || !store_name_ok(local))
        return -1;
    r = snprintf(buf, len, "%s/%s", domain, local);
    return r < 0 || (size_t)r >= len ? -1 : 0;
}

int store_mailbox_rel_ok(const char *rel)
{
    char buf[2 * STORE_NAME_MAX + 2];
    const char *slash;
    size_t dl;

    if (rel == NULL || (slash = strchr(rel, '/')) == NULL)
        return 0;
    dl = (size_t)(slash - rel);
    if (dl > STORE_NAME_MAX || strlen(slash + 1) > STORE_NAME_MAX)
        return 0;
    memcpy(buf, rel, dl);
    buf[dl] = '\0';
    return store_name_ok(buf) && store_name_ok(slash + 1);
}
