/*
 * t/unit/tls_pair.h — a throwaway server and client SSL_CTX for unit tests
 * that shake hands over real sockets: a fresh P-256 key and a self-signed
 * certificate for "mx.test" valid for an hour; the client does not verify.
 */
#ifndef HATO_TEST_TLS_PAIR_H
#define HATO_TEST_TLS_PAIR_H

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

static inline void tls_pair_make(SSL_CTX **server, SSL_CTX **client)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"mx.test", -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509_sign(x, key, EVP_sha256());
    *server = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(*server, x);
    SSL_CTX_use_PrivateKey(*server, key);
    *client = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(*client, SSL_VERIFY_NONE, NULL);
    X509_free(x);
    EVP_PKEY_free(key);
}

#endif
