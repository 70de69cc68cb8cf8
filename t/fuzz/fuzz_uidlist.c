/*
 * t/fuzz/fuzz_uidlist.c — libFuzzer target for the dovecot-uidlist reader
 * (store_uidlist_parse): any octets are refused whole or give entries that
 * keep its promises — UIDs below next, bases unique, sorted, without '/'
 * or ':' — and every entry is found again by store_uidlist_find.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/uidlist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct store_uidlist u;

    if (store_uidlist_parse((const char *)data, size, &u) != 0) {
        if (u.n != 0 || u.v != NULL)
            abort();
        return 0;
    }
    if (u.validity == 0 || u.next == 0)
        abort();
    for (size_t i = 0; i < u.n; i++) {
        const char *b = u.v[i].base;
        size_t len = strlen(b);
        if (u.v[i].uid == 0 || u.v[i].uid >= u.next || len == 0 || strchr(b, '/')
            || strchr(b, ':'))
            abort();
        if (i && strcmp(u.v[i - 1].base, b) >= 0)
            abort();
        if (store_uidlist_find(&u, b, len) != u.v[i].uid)
            abort();
    }
    store_uidlist_free(&u);
    return 0;
}
