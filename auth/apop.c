/*
 * auth/apop.c — the APOP check: MD5 over the banner's timestamp and the
 * stored password, compared in constant time.  Owns nothing; reads the
 * user table during the call only.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth/apop.h"
#include "auth/users.h"

void apop_digest(const char *timestamp, const char *password, char out[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    memset(md, 0, sizeof md);
    if (!c || EVP_DigestInit_ex(c, EVP_md5(), NULL) != 1 ||
        EVP_DigestUpdate(c, timestamp, strlen(timestamp)) != 1 ||
        EVP_DigestUpdate(c, password, strlen(password)) != 1 ||
        EVP_DigestFinal_ex(c, md, &n) != 1 || n != 16)
        memset(md, 0, sizeof md);        /* a digest no client can match: "" below */
    EVP_MD_CTX_free(c);
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[32] = '\0';
    if (n != 16)
        out[0] = '\0';
}

int apop_check(const struct usertab *users, const char *user, const char *timestamp,
               const char *digest)
{
    char want[33], got[33];
    const struct user *u = users_find(users, user);
    const char *pw = u && u->secrets && u->secrets->has_apop ? u->secrets->apop : NULL;
    /* an unknown user costs the same MD5, against nothing that can match */
    apop_digest(timestamp, pw ? pw : "", want);
    if (strlen(digest) != 32)
        return -1;
    for (int i = 0; i < 32; i++)
        got[i] = (char)((digest[i] >= 'A' && digest[i] <= 'F') ? digest[i] - 'A' + 'a' : digest[i]);
    got[32] = '\0';
    int same = want[0] && CRYPTO_memcmp(want, got, 32) == 0;
    OPENSSL_cleanse(want, sizeof want);
    return same && pw ? 0 : -1;
}
