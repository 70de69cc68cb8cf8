/*
 * t/fuzz/fuzz_index.c — libFuzzer target for the index reader
 * (store_index_feed): any octets are applied as a prefix of whole records
 * or refused, never read out of bounds; feeding in two pieces at any split
 * gives the state one block gives; the state keeps the invariants (UIDs
 * rising, all below UIDNEXT).
 *
 * Raw octets rarely get past the header's and records' CRC-32, so an input
 * that starts with 0xA5 is a program instead: header fields, then records
 * (APPEND, FLAGS, EXPUNGE, or any type) built from the following octets in
 * the on-disk format (store/index.c: 32-octet header, records of 68 fixed
 * octets + name + CRC + length) with valid checksums, and at the end
 * optionally one octet flipped — so the fuzzer explores what the records
 * mean (UIDs, UIDNEXT, MODSEQ, names, snapshot counts), not just framing.
 * The file is written by store/index.c's own encoders, not a copy here.
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

/* Octets of the program, 0 once it runs out. */
struct prog {
    const uint8_t *p;
    size_t n;
};

static uint8_t take(struct prog *g)
{
    if (g->n == 0)
        return 0;
    g->n--;
    return *g->p++;
}

#define FZ_MAX (64 * 1024)

#define FZ_NAME_MAX 24

/* One record from the program into out (store/index.c's encoder); its
 * length.  *uidnext and *modseq are the folder's, carried along. */
static size_t build_rec(struct prog *g, uint32_t *uidnext, uint64_t *modseq, unsigned char *out)
{
    uint8_t op = take(g), d = take(g), nl = 1 + take(g) % FZ_NAME_MAX;
    char name[FZ_NAME_MAX];
    struct store_index_rec r;

    memset(&r, 0, sizeof(r));
    r.type = (op & 0xF0) == 0xF0 ? op & 0x0f : 1 + op % 3;   /* rarely any type */
    if (r.type != 1 && (op & 0x30) != 0x30)
        nl = 0;                              /* FLAGS and EXPUNGE carry no name */
    if (r.type == 1)
        r.uid = *uidnext + (d & 3);          /* APPEND: at or over UIDNEXT */
    else
        r.uid = d % *uidnext + (op == 0x7e); /* FLAGS/EXPUNGE: an earlier UID (or not) */
    *uidnext = r.type == 1 ? r.uid + 1 + (take(g) & 1) : *uidnext + (d >> 6 == 3);
    *modseq += 1 + (d >> 7 && (op & 0x40)) - (op == 0x7f);
    r.uidnext = *uidnext;
    r.modseq = *modseq;
    r.flags = take(g) & 0x3f;
    r.keywords = take(g);
    r.size = take(g);
    r.in_cur = op & 1;
    for (size_t i = 0; i < nl; i++) {
        uint8_t c = take(g);                 /* rarely a character names may not hold */
        name[i] = c < 4 ? "/\0:\n"[c] : "abcx.,S=1"[c % 9];
    }
    r.name = name;
    r.name_len = nl;
    return store_index_rec_encode(&r, out);
}

/* An index file from the program into out; its length. */
static size_t build(struct prog *g, unsigned char *out)
{
    uint32_t uidnext = 1 + take(g) % 4;
    uint64_t modseq = 1 + take(g) % 3;
    uint32_t uidvalidity = 1 + take(g);
    uint8_t snap = take(g);
    size_t o = STORE_INDEX_HDR_LEN;

    /* snapshot records: mostly a log */
    store_index_hdr_encode(out, uidvalidity, uidnext, snap < 200 ? 0 : snap % 4, modseq);
    while (g->n > 0 && o + STORE_INDEX_REC_FIXED + FZ_NAME_MAX + 16 <= FZ_MAX)
        o += build_rec(g, &uidnext, &modseq, out + o);
    return o;
}

static void run(const uint8_t *data, size_t size, unsigned seed);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 && data[0] == 0xA5) {
        static unsigned char buf[FZ_MAX];
        struct prog g = { data + 1, size - 1 };
        size_t n = build(&g, buf);
        uint8_t flip = size > 2 ? data[size - 1] : 0;
        if (flip & 1)
            buf[((size_t)flip * 131 + size) % n] ^= (unsigned char)(flip | 1);
        run(buf, n, size > 3 ? data[size - 2] * 257u + data[size - 3] : 0);
        return 0;
    }
    run(data, size, size ? data[0] : 0);
    return 0;
}

/* Feed data whole and in two pieces (split from seed); compare. */
static void run(const uint8_t *data, size_t size, unsigned seed)
{
    struct store_index *one = store_index_new_empty(), *two = store_index_new_empty();
    size_t split = seed % (size + 1), used;

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
}
