/*
 * t/fuzz/fuzz_from.c — the From:/Sender: parser (proto/from_header.c):
 * any octets as a header section, once in one block and once an octet at
 * a time, which must give the same result.  Invariants: at most
 * FROM_ADDRS_MAX addresses, each NUL-terminated, non-empty, at most
 * FROM_ADDR_MAX octets, with an '@' that is neither first nor last.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/from_header.h"

static struct from_parser one, trickle;

static void check(const struct from_parser *p)
{
    if (p->naddrs > FROM_ADDRS_MAX)
        abort();
    for (size_t i = 0; i < p->naddrs; i++) {
        const char *a = p->addrs[i];
        size_t n = strnlen(a, FROM_ADDR_MAX + 1);
        const char *at = strrchr(a, '@');
        if (n == 0 || n > FROM_ADDR_MAX || !at || at == a || at[1] == '\0')
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    from_parser_init(&one, "From");
    from_parser_feed(&one, (const char *)data, size);
    enum from_err e1 = from_parser_end(&one);
    from_parser_init(&trickle, "From");
    for (size_t i = 0; i < size; i++)
        from_parser_feed(&trickle, (const char *)data + i, 1);
    enum from_err e2 = from_parser_end(&trickle);
    if (e1 != e2 || one.naddrs != trickle.naddrs || one.nfields != trickle.nfields)
        abort();
    for (size_t i = 0; i < one.naddrs; i++)
        if (strcmp(one.addrs[i], trickle.addrs[i]) != 0)
            abort();
    check(&one);
    return 0;
}
