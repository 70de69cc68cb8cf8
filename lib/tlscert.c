/*
 * lib/tlscert.c — self-signed key + certificate generation (lib/tlscert.h)
 * with OpenSSL 3's EVP and X509 APIs, in memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "lib/tls.h"
#include "lib/tlscert.h"

#define SERIAL_BITS 128
#define DAYS_MAX 36500

static int fail(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(err, errlen, "%s%s%s", what, r ? ": " : "", r ? r : "");
    ERR_clear_error();
    return -1;
}

static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return -1;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

static int set_serial(X509 *x)
{
    BIGNUM *bn = BN_new();
    int ok = bn && BN_rand(bn, SERIAL_BITS, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
             BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    return ok ? 0 : -1;
}

/* Fill and sign the certificate for pk. */
static int build_cert(X509 *x, EVP_PKEY *pk, const char *host, int days, enum tls_key_type type)
{
    char san[300];
    X509_NAME *name = X509_get_subject_name(x);
    snprintf(san, sizeof san, "DNS:%s", host);
    if (!X509_set_version(x, X509_VERSION_3) || set_serial(x) < 0 ||
        !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) ||
        !X509_set_pubkey(x, pk) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)host,
                                    -1, -1, 0) ||
        !X509_set_issuer_name(x, name))
        return -1;
    if (add_ext(x, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        add_ext(x, NID_key_usage, type == TLS_KEY_RSA2048
                    ? "critical,digitalSignature,keyEncipherment"
                    : "critical,digitalSignature") < 0 ||
        add_ext(x, NID_ext_key_usage, "serverAuth") < 0 ||
        add_ext(x, NID_subject_key_identifier, "hash") < 0 ||
        add_ext(x, NID_subject_alt_name, san) < 0)
        return -1;
    return X509_sign(x, pk, EVP_sha256()) > 0 ? 0 : -1;
}

/* BIO contents into a malloc'd NUL-terminated string. */
static char *bio_string(BIO *b, size_t *len)
{
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!s)
        return NULL;
    memcpy(s, p, (size_t)n);
    s[n] = '\0';
    *len = (size_t)n;
    return s;
}

int tls_selfsigned(const char *hostname, int days, enum tls_key_type type,
                   char **key_pem, size_t *key_len, char **cert_pem, size_t *cert_len,
                   char *err, size_t errlen)
{
    *key_pem = *cert_pem = NULL;
    if (!tls_hostname_ok(hostname, 1)) {
        snprintf(err, errlen, "'%s' is not a host name", hostname);
        return -1;
    }
    if (days < 1 || days > DAYS_MAX) {
        snprintf(err, errlen, "days must be 1..%d", DAYS_MAX);
        return -1;
    }
    EVP_PKEY *pk = type == TLS_KEY_EC_P256 ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
    if (!pk)
        return fail(err, errlen, "cannot generate a key");
    X509 *x = X509_new();
    BIO *kb = BIO_new(BIO_s_mem()), *cb = BIO_new(BIO_s_mem());
    int rc = -1;
    if (!x || !kb || !cb || build_cert(x, pk, hostname, days, type) < 0) {
        fail(err, errlen, "cannot make the certificate");
    } else if (!PEM_write_bio_PrivateKey(kb, pk, NULL, NULL, 0, NULL, NULL) ||
               !PEM_write_bio_X509(cb, x)) {
        fail(err, errlen, "cannot write PEM");
    } else {
        *key_pem = bio_string(kb, key_len);
        *cert_pem = bio_string(cb, cert_len);
        if (*key_pem && *cert_pem) {
            rc = 0;
        } else {
            snprintf(err, errlen, "out of memory");
            free(*key_pem);
            free(*cert_pem);
            *key_pem = *cert_pem = NULL;
        }
    }
    BIO_free(kb);
    BIO_free(cb);
    X509_free(x);
    EVP_PKEY_free(pk);
    return rc;
}
