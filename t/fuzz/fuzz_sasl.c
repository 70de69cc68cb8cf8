/*
 * t/fuzz/fuzz_sasl.c — libFuzzer target for the SASL decoders: lib/base64
 * (one block = byte by byte, and a decoding re-encodes to its input: the
 * decoder is canonical), PLAIN's NUL rules (what parses has exactly two
 * NULs and the parts re-assemble to the input), SCRAM's client-first and
 * client-final parsers (what parses points inside the input), and whole
 * exchanges of every mechanism driven by the input's lines.
 * The first input byte picks the mode.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/sasl.h"
#include "auth/users.h"
#include "lib/base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_base64(const char *in, size_t n)
{
    static unsigned char out1[4096], out2[4096];
    static char enc[B64_ENCODED_SIZE(4096)];
    struct b64_dec d1, d2;
    enum b64_err e1, e2;
    size_t cap = n % 7 == 0 ? 3 : sizeof(out1);

    b64_dec_init(&d1, out1, cap);
    b64_dec_feed(&d1, in, n);
    e1 = b64_dec_finish(&d1);
    b64_dec_init(&d2, out2, cap);
    for (size_t i = 0; i < n; i++)
        b64_dec_feed(&d2, in + i, 1);
    e2 = b64_dec_finish(&d2);
    if (e1 != e2 || d1.len != d2.len || memcmp(out1, out2, d1.len) != 0 || d1.len > cap)
        abort();
    if (e1 == B64_OK) {
        size_t m = b64_encode(out1, d1.len, enc);
        if (m != n || memcmp(enc, in, n) != 0)
            abort();
    }
}

static void fuzz_plain(const unsigned char *in, size_t n)
{
    static char buf[SASL_DECODED_MAX + 1];
    const char *z, *c, *p, *why;
    size_t zl, cl, pl;

    if (n > SASL_DECODED_MAX)
        return;
    if (sasl_plain_parse(in, n, buf, &z, &c, &p, &why) != 0)
        return;
    zl = strlen(z);
    cl = strlen(c);
    pl = strlen(p);
    if (zl + cl + pl + 2 != n || cl == 0 || pl == 0 || memcmp(in, z, zl) != 0 || in[zl] != 0
        || memcmp(in + zl + 1, c, cl) != 0 || in[zl + 1 + cl] != 0
        || memcmp(in + zl + cl + 2, p, pl) != 0)
        abort();
}

static void fuzz_scram(const char *in, size_t n)
{
    struct scram_client_first cf;
    struct scram_client_final cfin;
    const char *why;

    if (scram_parse_client_first(in, n, &cf, &why) == 0) {
        if (cf.nonce < in || cf.nonce + cf.nonce_len > in + n || cf.nonce_len == 0
            || cf.gs2_len > n || in[cf.gs2_len - 1] != ',' || cf.user[0] == '\0')
            abort();
        for (size_t i = 0; i < cf.nonce_len; i++)
            if (cf.nonce[i] == ',')
                abort();
    }
    if (scram_parse_client_final(in, n, &cfin, &why) == 0) {
        if (cfin.proof < in || cfin.proof + cfin.proof_len != in + n
            || cfin.without_proof_len + 3 + cfin.proof_len != n
            || memcmp(in + cfin.without_proof_len, ",p=", 3) != 0)
            abort();
    }
}

/* "user" has both secrets. */
static struct user_secrets sec;

static const struct user_secrets *find(const void *arg, const char *who)
{
    (void)arg;
    return strcmp(who, "user") == 0 ? &sec : NULL;
}

static void fuzz_exchange(unsigned sel, const char *in, size_t n)
{
    static const char *const mechs[] = { "PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256",
                                         "SCRAM-SHA-256-PLUS" };
    static const unsigned char cb[32] = { 1, 2, 3 };
    struct sasl_params p = { .cb_type = "tls-exporter", .cb_data = cb, .cb_len = 32,
                             .final_as_challenge = (int)(sel >> 3 & 1),
                             .fixed_nonce = (sel & 16) ? "fixednonce" : NULL };
    struct sasl_lookup lk = { find, NULL };
    struct sasl_result r;
    struct sasl *s;
    const char *end = in + n, *nl;
    int steps = 0, more = 1;

    if (!sec.has_scram) {
        /* zero keys: no proof matches; everything up to the check is fuzzed */
        sec.has_scram = 1;
        sec.scram_iter = 4096;
        memcpy(sec.scram_salt, "saltsalt", 8);
        sec.scram_salt_len = 8;
        sec.has_cram = 1;
    }
    s = sasl_start(mechs[sel % 5], &p, NULL, &lk, &r);
    while (s && r.status == SASL_CHALLENGE && more && steps++ < 8) {
        nl = memchr(in, '\n', (size_t)(end - in));
        sasl_step(s, &lk, in, nl ? (size_t)(nl - in) : (size_t)(end - in), &r);
        more = nl != NULL;
        in = nl ? nl + 1 : end;
        if (r.status == SASL_NEED_VERIFY)
            sasl_verified(s, r.password[0] == 'x', &r);
    }
    sasl_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data + 1;
    size_t n = size ? size - 1 : 0;

    if (size == 0 || n > 3 * SASL_DECODED_MAX)
        return 0;
    switch (data[0] & 3) {
    case 0: fuzz_base64(in, n < 4000 ? n : 4000); break;
    case 1: fuzz_plain((const unsigned char *)in, n); break;
    case 2: fuzz_scram(in, n); break;
    default: fuzz_exchange(data[0] >> 2, in, n); break;
    }
    return 0;
}
