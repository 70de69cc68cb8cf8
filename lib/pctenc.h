/*
 * lib/pctenc.h — %-encoding for one-token values in hato's text files (the
 * queue envelope, the maildrop header): '%', bytes <= 0x20 and >= 0x7f
 * become %XX (upper-case hex); %00 never decodes.
 */
#ifndef HATO_PCTENC_H
#define HATO_PCTENC_H

#include <stddef.h>

/* Encode into out (outlen octets with the NUL); "" is written as "-" and
 * a literal "-" as %2D when dash_empty.  0, or -1 if it does not fit. */
int pct_encode(const char *in, char *out, size_t outlen, int dash_empty);
/* Decode into out (room strlen(in)+1 suffices); "-" → "" when dash_empty.
 * 0, or -1 on a malformed escape, %00, or no room. */
int pct_decode(const char *in, char *out, size_t outlen, int dash_empty);

#endif
