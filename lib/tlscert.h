/*
 * lib/tlscert.h — a new private key and a self-signed server certificate
 * for it, as PEM text (hatoctl tls selfsigned, and the TLS tests).  Knows
 * nothing of mail and writes no file.
 */
#ifndef HATO_TLSCERT_H
#define HATO_TLSCERT_H

#include <stddef.h>

enum tls_key_type {
    TLS_KEY_RSA2048,      /* the widest reach: every TLS client speaks RSA */
    TLS_KEY_EC_P256,      /* smaller and faster; Mozilla's first choice */
};

/* Key of `type`, certificate for `hostname` (checked with
 * tls_hostname_ok(…, 1)): subject CN=hostname, subjectAltName DNS:hostname,
 * extendedKeyUsage serverAuth, CA:FALSE, a random 128-bit serial, valid
 * from now for `days` (1..36500), signed with SHA-256.  *key_pem and
 * *cert_pem are malloc'd NUL-terminated PEM (PKCS#8 key).  0, or -1 with a
 * message. */
int tls_selfsigned(const char *hostname, int days, enum tls_key_type type,
                   char **key_pem, size_t *key_len, char **cert_pem, size_t *cert_len,
                   char *err, size_t errlen);

#endif
