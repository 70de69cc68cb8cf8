/*
 * t/integ/shims/fail_ssl_new.c — LD_PRELOAD shim for hatod: the first
 * $HATO_SHIM_FAIL_SSL_NEW calls of OpenSSL's SSL_new() fail (return NULL,
 * as when out of memory); later calls go to libssl.  hatod calls SSL_new in
 * conn_starttls (proto/conn.c), so this makes that many STARTTLS commands
 * fail after their 220.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>

#include <openssl/ssl.h>

typedef SSL *(*ssl_new_fn)(SSL_CTX *);

SSL *SSL_new(SSL_CTX *ctx)
{
    static int left = -1;
    static ssl_new_fn real;

    if (left < 0) {
        const char *n = getenv("HATO_SHIM_FAIL_SSL_NEW");
        left = n ? atoi(n) : 0;
    }
    if (left > 0) {
        left--;
        return NULL;
    }
    if (!real)
        real = (ssl_new_fn)dlsym(RTLD_NEXT, "SSL_new");
    return real ? real(ctx) : NULL;
}
