/*
 * t/fuzz/fuzz_addr.c — libFuzzer target for lib/addr.c.  Feeds the input to
 * addr_parse_path (null path allowed and not) and addr_parse_mailbox, and
 * checks the invariants: on success `full` is NUL-terminated within its
 * buffer, `domain` has no upper-case letters, consumed <= size and ends on
 * '>', every field within its limit, and parsing is deterministic.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_fields(const struct addr *a)
{
    const char *p;

    if (memchr(a->full, '\0', sizeof(a->full)) == NULL ||
        memchr(a->local, '\0', sizeof(a->local)) == NULL ||
        memchr(a->domain, '\0', sizeof(a->domain)) == NULL)
        abort();
    for (p = a->domain; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            abort();
    }
    for (p = a->full; *p; p++) {
        if ((unsigned char)*p >= 0x80)
            abort();
    }
    if (strlen(a->local) > ADDR_LOCAL_MAX || strlen(a->domain) > ADDR_DOMAIN_MAX)
        abort();
    if (!a->is_null && a->local[0] == '\0')
        abort();
}

static void check_path(const char *in, size_t size, int allow_null)
{
    struct addr a, b;
    size_t consumed = (size_t)-1, consumed2 = (size_t)-1;
    enum addr_err rc, rc2;

    rc = addr_parse_path(in, size, allow_null, &a, &consumed);
    if (rc == ADDR_OK || rc == ADDR_E_NODOMAIN) {
        if (consumed > size || consumed < 2 || in[consumed - 1] != '>')
            abort();
        if (consumed > ADDR_PATH_MAX && rc == ADDR_OK)
            abort();
        check_fields(&a);
        if (rc == ADDR_OK && !a.is_null && a.domain[0] == '\0')
            abort();
        /* The path alone parses the same. */
        rc2 = addr_parse_path(in, consumed, allow_null, &b, &consumed2);
        if (rc2 != rc || consumed2 != consumed || strcmp(a.full, b.full) != 0)
            abort();
    }
    if (rc == ADDR_OK && a.is_null && !allow_null)
        abort();
}

static void check_mailbox(const char *in, size_t size)
{
    struct addr a, b;
    enum addr_err rc;
    char buf[ADDR_LOCAL_MAX + 1];

    rc = addr_parse_mailbox(in, size, &a);
    if (rc != ADDR_OK && rc != ADDR_E_NODOMAIN)
        return;
    check_fields(&a);
    if (rc == ADDR_OK) {
        /* full re-parses to itself. */
        if (addr_parse_mailbox(a.full, strlen(a.full), &b) != ADDR_OK ||
            strcmp(a.full, b.full) != 0)
            abort();
    }
    addr_local_unquoted(&a, buf, sizeof(buf));
    if (strlen(buf) > strlen(a.local))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy of exactly `size` octets, so ASan sees any over-read. */
    char *in = malloc(size ? size : 1);

    if (in == NULL)
        return 0;
    if (size)
        memcpy(in, data, size);
    check_path(in, size, 0);
    check_path(in, size, 1);
    check_mailbox(in, size);
    free(in);
    return 0;
}
