/*
 * t/fuzz/fuzz_index.c — libFuzzer target for the index reader
 * (store_index_feed): any octets are applied as a prefix of whole records
 * or refused, never read out of bounds; feeding in two pieces at any split
 * gives the state one block gives; the state keeps the invariants (UIDs
 * rising, all below UIDNEXT).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/index.h"

static void check(const struct store_index *ix)
{
    for (size_t i = 0; i < ix->n; i++) {
        if (ix->msgs[i].uid == 0 || ix->msgs[i].uid >= ix->uidnext)
            abort();
        if (i && ix->msgs[i].uid <= ix->msgs[i - 1].uid)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct store_index *one = store_index_new_empty(), *two = store_index_new_empty();
    size_t split = size ? data[0] % (size + 1) : 0, used;

    if (one == NULL || two == NULL)
        abort();
    used = store_index_feed(one, data, size);
    if (used > size)
        abort();
    check(one);
    /* two pieces: the second starts where the first stopped applying */
    size_t a = store_index_feed(two, data, split);
    size_t b = store_index_feed(two, data + a, size - a);
    if (a + b != used || two->n != one->n || two->uidnext != one->uidnext
        || two->highestmodseq != one->highestmodseq)
        abort();
    for (size_t i = 0; i < one->n; i++)
        if (one->msgs[i].uid != two->msgs[i].uid || strcmp(one->msgs[i].name, two->msgs[i].name))
            abort();
    store_index_close(one);
    store_index_close(two);
    return 0;
}
