/*
 * lib/base64.h — strict base64 (RFC 4648 §4, the standard alphabet, with
 * padding) for protocol input: an incremental decoder that can be fed any
 * split of its input and rejects everything RFC 4648 §3 lets a decoder
 * refuse (characters outside the alphabet, whitespace, missing or
 * misplaced padding, non-zero pad bits, so that every text has one
 * decoding and every decoding one text), with a cap on the output; and an
 * encoder.  Knows nothing of SASL.
 */
#ifndef HATO_BASE64_H
#define HATO_BASE64_H

#include <stddef.h>

enum b64_err {
    B64_OK = 0,
    B64_E_CHAR,       /* octet outside the alphabet (incl. blanks, CR, LF) */
    B64_E_PAD,        /* '=' anywhere but the end of the last quantum, or data after it */
    B64_E_BITS,       /* non-zero bits under the padding (non-canonical) */
    B64_E_TRUNC,      /* length not a multiple of 4 at the end */
    B64_E_TOOBIG      /* the output would pass the cap */
};

struct b64_dec {
    unsigned char *out;    /* caller's buffer */
    size_t cap, len;       /* its size; octets written */
    unsigned int acc;      /* bits of the current quantum */
    int nq;                /* characters in the current quantum (0..3) */
    int npad;              /* '=' seen in the current quantum */
    int done;              /* a padded quantum ended the text */
    enum b64_err err;      /* sticky */
};

/* Decode into out[0..cap); nothing is ever written past cap. */
void b64_dec_init(struct b64_dec *d, unsigned char *out, size_t cap);
/* Feed n more characters; B64_OK or the (sticky) error. */
enum b64_err b64_dec_feed(struct b64_dec *d, const char *in, size_t n);
/* End of input: B64_OK with d->len octets, or the error. */
enum b64_err b64_dec_finish(struct b64_dec *d);
/* One call: decode in[0..n) into out (cap octets); *outlen set on success. */
enum b64_err b64_decode(const char *in, size_t n, unsigned char *out, size_t cap,
                        size_t *outlen);
const char *b64_strerror(enum b64_err e);

/* Characters b64_encode writes for n octets, plus one for the NUL. */
#define B64_ENCODED_SIZE(n) ((((n) + 2) / 3) * 4 + 1)
/* Encode in[0..n) into out (at least B64_ENCODED_SIZE(n)), NUL-terminated;
 * returns the length without the NUL. */
size_t b64_encode(const unsigned char *in, size_t n, char *out);

#endif
