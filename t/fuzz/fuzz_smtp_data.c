/*
 * t/fuzz/fuzz_smtp_data.c — the DATA decoder: a whole feed, a feed split at
 * a point taken from the input, and a byte-at-a-time feed must agree on
 * status, consumed input, output and header size; output never exceeds
 * 2 * input, and bytes_out / header_bytes stay consistent.
 * First input octet: bit 0 = policy, the rest picks the split point.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp_data.h"

struct res {
    enum smtp_data_status st;
    size_t consumed, outlen;
    long long hdr, bytes_out;
};

/* Feed in pieces of at most `step` octets, the first piece `first` long. */
static void feed(const char *in, size_t n, enum smtp_bare_lf pol, size_t first,
                 size_t step, char *out, struct res *r)
{
    struct smtp_data d;
    size_t from = 0;
    int piece = 0;

    smtp_data_init(&d, pol);
    memset(r, 0, sizeof(*r));
    do {
        size_t len = piece++ == 0 ? first : step, used = 0, olen = 0;
        if (len > n - from)
            len = n - from;
        r->st = smtp_data_feed(&d, in + from, len, &used, out + r->outlen, &olen);
        if (olen > 2 * len + 4 || used > len)
            abort();
        r->outlen += olen;
        r->consumed += used;
        if (r->st == SMTP_DATA_MORE && used != len)
            abort();
        from += len;
    } while (r->st == SMTP_DATA_MORE && from < n);
    r->hdr = d.header_bytes;
    r->bytes_out = d.bytes_out;
    if (r->outlen > 2 * n || r->bytes_out != (long long)r->outlen ||
        r->hdr > r->bytes_out || r->consumed > n)
        abort();
    if (r->st == SMTP_DATA_END && (r->consumed < 3 || memcmp(in + r->consumed - 3, ".\r\n", 3)))
        abort();
    if (r->st == SMTP_DATA_BARE_LF && in[r->consumed] != '\n')
        abort();
}

static int same(const struct res *a, const char *ao, const struct res *b, const char *bo)
{
    return a->st == b->st && a->consumed == b->consumed && a->outlen == b->outlen &&
           a->hdr == b->hdr && memcmp(ao, bo, a->outlen) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum smtp_bare_lf pol;
    size_t n, split;
    const char *in;
    char *o1, *o2, *o3;
    struct res r1, r2, r3;

    if (size < 1)
        return 0;
    pol = (data[0] & 1) ? SMTP_BARE_LF_REJECT : SMTP_BARE_LF_NORMALIZE;
    in = (const char *)data + 1;
    n = size - 1;
    split = n ? (data[0] >> 1) % (n + 1) : 0;
    o1 = malloc(2 * n + 8);
    o2 = malloc(2 * n + 8);
    o3 = malloc(2 * n + 8);
    if (!o1 || !o2 || !o3)
        abort();
    feed(in, n, pol, n, n, o1, &r1);
    feed(in, n, pol, split, n, o2, &r2);
    feed(in, n, pol, 1, 1, o3, &r3);
    if (!same(&r1, o1, &r2, o2) || !same(&r1, o1, &r3, o3))
        abort();
    free(o1);
    free(o2);
    free(o3);
    return 0;
}
