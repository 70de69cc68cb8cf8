/*
 * t/unit/test_sasl.c — lib/base64 and auth/sasl: RFC 4648 vectors and
 * strictness, every decoder fed byte by byte and in one block; PLAIN
 * (RFC 4616 examples, NUL rules, authzid rules), LOGIN, CRAM-MD5 (RFC 2195
 * example against the stored HMAC-MD5 states), SCRAM-SHA-256 (the RFC 7677
 * exchange reproduced exactly, -PLUS with channel binding, unknown users,
 * malformed attributes, every prefix), limits, secret wiping.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "auth/sasl.h"
#include "auth/users.h"
#include "lib/base64.h"
#include "t/unit/tap.h"

/* ---- base64 ------------------------------------------------------------ */

struct b64case {
    const char *in;
    const char *out;        /* NULL: must fail with err */
    size_t outlen;
    enum b64_err err;
};

static const struct b64case b64cases[] = {
    { "", "", 0, B64_OK },
    { "Zg==", "f", 1, B64_OK },
    { "Zm8=", "fo", 2, B64_OK },
    { "Zm9v", "foo", 3, B64_OK },
    { "Zm9vYg==", "foob", 4, B64_OK },
    { "Zm9vYmE=", "fooba", 5, B64_OK },
    { "Zm9vYmFy", "foobar", 6, B64_OK },
    { "AGZvbwBiYXI=", "\0foo\0bar", 8, B64_OK },
    { "+/+/", "\xfb\xff\xbf", 3, B64_OK },
    { "Zg=", NULL, 0, B64_E_TRUNC },
    { "Zg", NULL, 0, B64_E_TRUNC },
    { "Zm9vY", NULL, 0, B64_E_TRUNC },
    { "Z===", NULL, 0, B64_E_PAD },
    { "====", NULL, 0, B64_E_PAD },
    { "=Zg=", NULL, 0, B64_E_PAD },
    { "Zg=a", NULL, 0, B64_E_PAD },
    { "Zg==Zg==", NULL, 0, B64_E_PAD },
    { "Zm8=Zm8=", NULL, 0, B64_E_PAD },
    { "Zg===", NULL, 0, B64_E_PAD },
    { "Zh==", NULL, 0, B64_E_BITS },
    { "Zm9=", NULL, 0, B64_E_BITS },
    { "Zm 9v", NULL, 0, B64_E_CHAR },
    { "Zm9v\r\n", NULL, 0, B64_E_CHAR },
    { "Zm9v-_", NULL, 0, B64_E_CHAR },
    { "Zm9\0v", NULL, 0, B64_E_CHAR },
};

/* Decode in one block and byte by byte: same outcome, same octets. */
static void b64_both(const char *in, size_t n, unsigned char *out1, size_t cap,
                     enum b64_err *e1, size_t *len1, int *same)
{
    unsigned char out2[256];
    struct b64_dec d1, d2;
    enum b64_err e2;

    b64_dec_init(&d1, out1, cap);
    b64_dec_feed(&d1, in, n);
    *e1 = b64_dec_finish(&d1);
    *len1 = d1.len;
    b64_dec_init(&d2, out2, cap < sizeof(out2) ? cap : sizeof(out2));
    for (size_t i = 0; i < n; i++)
        b64_dec_feed(&d2, in + i, 1);
    e2 = b64_dec_finish(&d2);
    *same = e2 == *e1 && d2.len == d1.len && memcmp(out1, out2, d1.len) == 0;
}

static void test_base64(void)
{
    unsigned char out[256];
    char enc[64];
    size_t len;
    enum b64_err e;
    int same;

    for (size_t i = 0; i < sizeof(b64cases) / sizeof(b64cases[0]); i++) {
        const struct b64case *c = &b64cases[i];
        size_t n = strlen(c->in);
        if (i == sizeof(b64cases) / sizeof(b64cases[0]) - 1)
            n = 5;     /* with its NUL */
        char name[32];
        size_t k;
        for (k = 0; k < n && k < sizeof(name) - 1; k++)
            name[k] = c->in[k] >= ' ' ? c->in[k] : '?';
        name[k] = '\0';
        b64_both(c->in, n, out, sizeof(out), &e, &len, &same);
        ok(same, "base64 '%s': byte by byte = one block", name);
        if (c->out) {
            ok(e == B64_OK && len == c->outlen && memcmp(out, c->out, len) == 0,
               "base64 decode '%s'", c->in);
            b64_encode((const unsigned char *)c->out, c->outlen, enc);
            is_str(enc, c->in, "base64 encode back");
        } else {
            ok(e == c->err, "base64 '%s' refused: %s (got %s)", name, b64_strerror(c->err),
               b64_strerror(e));
        }
    }
    b64_both("Zm9vYmFy", 8, out, 5, &e, &len, &same);
    ok(e == B64_E_TOOBIG && same, "cap 5 for 6 octets: too big, both ways");
    b64_both("Zm9vYmFy", 8, out, 6, &e, &len, &same);
    ok(e == B64_OK && len == 6, "cap 6 for 6 octets: fits");
    b64_both("Zm9vYg==", 8, out, 3, &e, &len, &same);
    ok(e == B64_E_TOOBIG && len == 3, "cap honoured inside a padded quantum");
}

/* ---- helpers for the exchanges ------------------------------------------ */

struct fake_user {
    const char *name;
    struct user_secrets sec;
};

static struct fake_user fakes[4];
static size_t nfakes;

static const struct user_secrets *fake_find(const void *arg, const char *who)
{
    (void)arg;
    for (size_t i = 0; i < nfakes; i++)
        if (strcmp(fakes[i].name, who) == 0)
            return &fakes[i].sec;
    return NULL;
}

static const struct sasl_lookup lookup = { fake_find, NULL };

/* base64 of a string (static buffer, one at a time). */
static const char *b64(const char *s, size_t n)
{
    static char buf[4096];

    b64_encode((const unsigned char *)s, n, buf);
    return buf;
}

/* The text a challenge decodes to (static buffer). */
static const char *unb64(const char *s)
{
    static char buf[4096];
    size_t n;

    if (s == NULL || b64_decode(s, strlen(s), (unsigned char *)buf, sizeof(buf) - 1, &n) != B64_OK)
        return "(bad base64)";
    buf[n] = '\0';
    return buf;
}

static void step_str(struct sasl *s, const char *raw, size_t n, struct sasl_result *r)
{
    char line[4096];

    snprintf(line, sizeof(line), "%s", b64(raw, n));
    sasl_step(s, &lookup, line, strlen(line), r);
}

/* ---- PLAIN -------------------------------------------------------------- */

static void plain_expect(const char *msg, size_t n, int want_ok, const char *what)
{
    struct sasl_result r;
    struct sasl *s = sasl_start("PLAIN", NULL, b64(msg, n), &lookup, &r);

    if (want_ok)
        ok(s && r.status == SASL_NEED_VERIFY, "PLAIN %s: accepted", what);
    else
        ok(s && r.status == SASL_FAIL, "PLAIN %s: refused (%s)", what,
           r.reason ? r.reason : "-");
    sasl_free(s);
}

static void test_plain(void)
{
    struct sasl_result r;
    struct sasl *s;
    const char *pw;
    char longid[SASL_ID_MAX + 8];

    /* RFC 4616 §4, first example: no authzid */
    s = sasl_start("PLAIN", NULL, NULL, &lookup, &r);
    ok(s && r.status == SASL_CHALLENGE && strcmp(r.challenge, "") == 0,
       "PLAIN without initial response: empty challenge");
    step_str(s, "\0tim\0tanstaaftanstaaf", 21, &r);
    ok(r.status == SASL_NEED_VERIFY, "RFC 4616 example 1: need verify");
    is_str(r.authcid, "tim", "authcid tim");
    is_str(r.password, "tanstaaftanstaaf", "password");
    pw = r.password;
    sasl_verified(s, 1, &r);
    ok(r.status == SASL_SUCCESS, "verified: success");
    is_str(r.authcid, "tim", "success names tim");
    ok(pw[0] == '\0' && memcmp(pw, "\0\0\0\0\0\0\0\0", 8) == 0, "password wiped after verify");
    sasl_step(s, &lookup, "", 0, &r);
    ok(r.status == SASL_FAIL, "a step after the end fails");
    sasl_free(s);

    /* RFC 4616 §4, second example: authzid Ursel for authcid Kurt: refused */
    s = sasl_start("plain", NULL, b64("Ursel\0Kurt\0xipj3plmq", 20), &lookup, &r);
    ok(s && r.status == SASL_FAIL && strstr(r.reason, "authorization"),
       "RFC 4616 example 2 (authzid Ursel for Kurt): refused (%s)", r.reason);
    sasl_free(s);

    s = sasl_start("PLAIN", NULL, b64("\0tim\0pw", 7), &lookup, &r);
    sasl_verified(s, 0, &r);
    ok(r.status == SASL_FAIL, "verify failed: FAIL");
    sasl_free(s);

    plain_expect("tim\0tim\0pw", 10, 1, "authzid = authcid");
    plain_expect("TIM\0tim\0pw", 10, 1, "authzid = authcid in another case");
    plain_expect("timx\0tim\0pw", 11, 0, "authzid differs");
    plain_expect("timpw", 5, 0, "no NUL");
    plain_expect("\0timpw", 6, 0, "one NUL");
    plain_expect("\0tim\0p\0w", 8, 0, "NUL in password (three NULs)");
    plain_expect("\0\0pw", 4, 0, "empty authcid");
    plain_expect("\0tim\0", 5, 0, "empty password");
    plain_expect("\0t\x01m\0pw", 7, 0, "control character in authcid");
    plain_expect("\0t\xc3\0pw", 6, 0, "truncated UTF-8 in authcid");
    plain_expect("\0t\xc0\xafm\0pw", 8, 0, "overlong UTF-8 in authcid");
    plain_expect("\0tim\0p\xed\xa0\x80w", 10, 0, "surrogate in password");
    plain_expect("\0j\xc3\xb6rg\0p\xc3\xa4ss\tw\x01", 15, 1, "UTF-8 identity, tab and ^A in password");
    memset(longid, 'a', sizeof(longid));
    longid[0] = '\0';
    longid[SASL_ID_MAX + 1] = '\0';
    longid[SASL_ID_MAX + 2] = 'p';
    plain_expect(longid, SASL_ID_MAX + 3, 1, "320-octet authcid");
    longid[SASL_ID_MAX + 1] = 'a';
    longid[SASL_ID_MAX + 2] = '\0';
    longid[SASL_ID_MAX + 3] = 'p';
    plain_expect(longid, SASL_ID_MAX + 4, 0, "321-octet authcid");

    s = sasl_start("PLAIN", NULL, "=", &lookup, &r);
    ok(s && r.status == SASL_FAIL, "PLAIN with '=' (empty) initial response: refused");
    sasl_free(s);
    s = sasl_start("PLAIN", NULL, "AHRpbQBwdw", &lookup, &r);
    ok(s && r.status == SASL_FAIL, "unpadded base64 initial response: refused (%s)", r.reason);
    sasl_free(s);
    s = sasl_start("PLAIN", NULL, NULL, &lookup, &r);
    sasl_step(s, &lookup, "*", 1, &r);
    ok(r.status == SASL_CANCEL, "'*' cancels");
    sasl_free(s);
    s = sasl_start("NOSUCH", NULL, NULL, &lookup, &r);
    ok(s == NULL && r.status == SASL_FAIL, "unknown mechanism: FAIL, no exchange");
}

/* ---- LOGIN -------------------------------------------------------------- */

static void test_login(void)
{
    struct sasl_result r;
    struct sasl *s;

    s = sasl_start("LOGIN", NULL, NULL, &lookup, &r);
    ok(s && r.status == SASL_CHALLENGE, "LOGIN: challenge");
    is_str(r.challenge, "VXNlcm5hbWU6", "Username:");
    step_str(s, "tim", 3, &r);
    is_str(r.challenge, "UGFzc3dvcmQ6", "Password:");
    step_str(s, "tanstaaf", 8, &r);
    ok(r.status == SASL_NEED_VERIFY && strcmp(r.authcid, "tim") == 0
       && strcmp(r.password, "tanstaaf") == 0, "LOGIN: need verify tim/tanstaaf");
    sasl_free(s);

    s = sasl_start("LOGIN", NULL, b64("tim", 3), &lookup, &r);
    ok(s && r.status == SASL_CHALLENGE && strcmp(r.challenge, "UGFzc3dvcmQ6") == 0,
       "LOGIN with the user as initial response: asks the password");
    step_str(s, "pa\0ss", 5, &r);
    ok(r.status == SASL_FAIL, "NUL in a LOGIN password: refused");
    sasl_free(s);
    s = sasl_start("LOGIN", NULL, NULL, &lookup, &r);
    step_str(s, "", 0, &r);
    ok(r.status == SASL_FAIL, "empty LOGIN user: refused");
    sasl_free(s);
    s = sasl_start("LOGIN", NULL, NULL, &lookup, &r);
    step_str(s, "tim", 3, &r);
    sasl_step(s, &lookup, "*", 1, &r);
    ok(r.status == SASL_CANCEL, "'*' at the password: cancel");
    sasl_free(s);
}

/* ---- CRAM-MD5 ----------------------------------------------------------- */

static void cram_secrets(struct user_secrets *sec, const char *password)
{
    char hex[65];

    memset(sec, 0, sizeof(*sec));
    sasl_cram_secret(password, hex);
    for (int i = 0; i < 32; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        sec->cram_md5[i] = (unsigned char)v;
    }
    sec->has_cram = 1;
}

static void cram_try(const char *response, const char *what, enum sasl_status want)
{
    struct sasl_params p = { .fixed_nonce = "<1896.697170952@postoffice.reston.mci.net>" };
    struct sasl_result r;
    struct sasl *s = sasl_start("CRAM-MD5", &p, NULL, &lookup, &r);

    step_str(s, response, strlen(response), &r);
    ok(r.status == want, "CRAM-MD5 %s (%s)", what, r.reason ? r.reason : "ok");
    sasl_free(s);
}

static void test_cram(void)
{
    struct sasl_params p = { .fixed_nonce = "<1896.697170952@postoffice.reston.mci.net>" };
    struct sasl_result r;
    struct sasl *s;
    unsigned char mac[16];
    unsigned int mlen;
    char hex[65], resp[128];

    fakes[nfakes].name = "tim";
    cram_secrets(&fakes[nfakes++].sec, "tanstaaftanstaaf");

    /* RFC 2195 §2 example */
    s = sasl_start("CRAM-MD5", &p, NULL, &lookup, &r);
    ok(s && r.status == SASL_CHALLENGE, "CRAM-MD5: challenge");
    is_str(r.challenge, "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+",
           "RFC 2195 challenge, base64");
    sasl_step(s, &lookup, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw", 48, &r);
    ok(r.status == SASL_SUCCESS && strcmp(r.authcid, "tim") == 0,
       "RFC 2195 response 'tim b913a602c7eda7a495b4e6e7334d3890': success");
    sasl_free(s);

    /* the stored states give what HMAC-MD5 with the password gives */
    HMAC(EVP_md5(), "tanstaaftanstaaf", 16, (const unsigned char *)"some other challenge", 20,
         mac, &mlen);
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    p.fixed_nonce = "some other challenge";
    s = sasl_start("CRAM-MD5", &p, NULL, &lookup, &r);
    snprintf(resp, sizeof(resp), "tim %s", hex);
    step_str(s, resp, strlen(resp), &r);
    ok(r.status == SASL_SUCCESS, "stored states = HMAC-MD5(password) on another challenge");
    sasl_free(s);

    /* a password longer than 64 octets is hashed first (RFC 2104) */
    fakes[nfakes].name = "long";
    memset(resp, 'x', 100);
    resp[100] = '\0';
    cram_secrets(&fakes[nfakes++].sec, resp);
    HMAC(EVP_md5(), resp, 100, (const unsigned char *)"some other challenge", 20, mac, &mlen);
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    snprintf(resp, sizeof(resp), "long %s", hex);
    s = sasl_start("CRAM-MD5", &p, NULL, &lookup, &r);
    step_str(s, resp, strlen(resp), &r);
    ok(r.status == SASL_SUCCESS, "100-octet password");
    sasl_free(s);

    cram_try("tim b913a602c7eda7a495b4e6e7334d3891", "wrong digest", SASL_FAIL);
    cram_try("tim B913A602C7EDA7A495B4E6E7334D3890", "upper-case hex", SASL_FAIL);
    cram_try("tom b913a602c7eda7a495b4e6e7334d3890", "unknown user", SASL_FAIL);
    cram_try("timb913a602c7eda7a495b4e6e7334d3890", "no space", SASL_FAIL);
    cram_try("tim b913a602c7eda7a495b4e6e7334d389", "31 digits", SASL_FAIL);
    cram_try(" b913a602c7eda7a495b4e6e7334d3890", "empty user", SASL_FAIL);
    p.fixed_nonce = "<1896.697170952@postoffice.reston.mci.net>";
    s = sasl_start("CRAM-MD5", &p, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw", &lookup, &r);
    ok(s && r.status == SASL_FAIL, "CRAM-MD5 with the right answer as initial response: refused");
    sasl_free(s);
    s = sasl_start("CRAM-MD5", NULL, NULL, &lookup, &r);
    ok(s && r.status == SASL_CHALLENGE && unb64(r.challenge)[0] == '<'
       && strstr(unb64(r.challenge), "@localhost>") != NULL,
       "random challenge <...@localhost> (%s)", unb64(r.challenge));
    sasl_free(s);
}

/* ---- SCRAM-SHA-256 ------------------------------------------------------ */

#define RFC7677_CFIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define RFC7677_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC7677_SFIRST "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
                       "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC7677_CFINAL "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
                       "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC7677_SFINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static void scram_user(const char *name, const char *password)
{
    unsigned char salt[16];
    char field[256], *p;
    struct user_secrets *sec = &fakes[nfakes].sec;
    size_t n;

    b64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", 24, salt, sizeof(salt), &n);
    sasl_scram_secret_salt(password, 4096, salt, n, field, sizeof(field));
    memset(sec, 0, sizeof(*sec));
    sec->scram_iter = strtol(field, &p, 10);
    memcpy(sec->scram_salt, salt, n);
    sec->scram_salt_len = n;
    p = strchr(p + 1, ':') + 1;
    b64_decode(p, 44, sec->scram_stored_key, 32, &n);
    b64_decode(p + 45, 44, sec->scram_server_key, 32, &n);
    sec->has_scram = 1;
    fakes[nfakes++].name = name;
}

/* The client side, to test exchanges the RFC does not list: the proof for
 * password over auth_message with the given salt. */
static void client_proof(const char *password, const unsigned char *salt, size_t salt_len,
                         const char *auth_message, char *out)
{
    unsigned char salted[32], ckey[32], stored[32], sig[32], proof[32];
    unsigned int len;

    PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, 4096,
                      EVP_sha256(), 32, salted);
    HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Client Key", 10, ckey, &len);
    SHA256(ckey, 32, stored);
    HMAC(EVP_sha256(), stored, 32, (const unsigned char *)auth_message, strlen(auth_message),
         sig, &len);
    for (int i = 0; i < 32; i++)
        proof[i] = ckey[i] ^ sig[i];
    b64_encode(proof, 32, out);
}

static void test_scram_rfc7677(void)
{
    struct sasl_params p = { .fixed_nonce = RFC7677_SNONCE };
    struct sasl_result r;
    struct sasl *s;
    char field[256];
    unsigned char salt[16];
    size_t n;

    scram_user("user", "pencil");
    b64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", 24, salt, sizeof(salt), &n);
    sasl_scram_secret_salt("pencil", 4096, salt, n, field, sizeof(field));
    ok(strncmp(field, "4096:W22ZaJ0SNY7soEsUEjb6gQ==:", 30) == 0, "secret field %s", field);

    s = sasl_start("SCRAM-SHA-256", &p, NULL, &lookup, &r);
    ok(s && r.status == SASL_CHALLENGE && r.challenge[0] == '\0', "SCRAM: empty first challenge");
    step_str(s, RFC7677_CFIRST, strlen(RFC7677_CFIRST), &r);
    ok(r.status == SASL_CHALLENGE, "client-first: challenge");
    is_str(unb64(r.challenge), RFC7677_SFIRST, "RFC 7677 server-first, exactly");
    step_str(s, RFC7677_CFINAL, strlen(RFC7677_CFINAL), &r);
    ok(r.status == SASL_SUCCESS && strcmp(r.authcid, "user") == 0, "RFC 7677 proof: success");
    is_str(unb64(r.final), RFC7677_SFINAL, "RFC 7677 server-final, exactly");
    sasl_free(s);

    /* initial response, and server-final as one more challenge */
    p.final_as_challenge = 1;
    s = sasl_start("SCRAM-SHA-256", &p, b64(RFC7677_CFIRST, strlen(RFC7677_CFIRST)), &lookup, &r);
    is_str(unb64(r.challenge), RFC7677_SFIRST, "with an initial response: same server-first");
    step_str(s, RFC7677_CFINAL, strlen(RFC7677_CFINAL), &r);
    ok(r.status == SASL_CHALLENGE, "final_as_challenge: server-final is a challenge");
    is_str(unb64(r.challenge), RFC7677_SFINAL, "... with v=");
    sasl_step(s, &lookup, "", 0, &r);
    ok(r.status == SASL_SUCCESS && r.final == NULL, "empty answer: success");
    sasl_free(s);
    s = sasl_start("SCRAM-SHA-256", &p, b64(RFC7677_CFIRST, strlen(RFC7677_CFIRST)), &lookup, &r);
    step_str(s, RFC7677_CFINAL, strlen(RFC7677_CFINAL), &r);
    step_str(s, "x", 1, &r);
    ok(r.status == SASL_FAIL, "non-empty answer to server-final: fail");
    sasl_free(s);
    p.final_as_challenge = 0;

    /* a wrong proof, a wrong nonce, a wrong password */
    s = sasl_start("SCRAM-SHA-256", &p, b64(RFC7677_CFIRST, strlen(RFC7677_CFIRST)), &lookup, &r);
    step_str(s, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVU=", 106, &r);
    ok(r.status == SASL_FAIL && strcmp(r.reason, "wrong password") == 0,
       "flipped proof bit: wrong password (%s)", r.reason);
    sasl_free(s);
    s = sasl_start("SCRAM-SHA-256", &p, b64(RFC7677_CFIRST, strlen(RFC7677_CFIRST)), &lookup, &r);
    step_str(s, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k1,"
                "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", 106, &r);
    ok(r.status == SASL_FAIL && strstr(r.reason, "nonce"), "other nonce: fail (%s)", r.reason);
    sasl_free(s);
}

/* A full exchange computed here: mech, gs2 header, user, cb data. */
static enum sasl_status scram_exchange(const char *mech, const struct sasl_params *p,
                                       const char *gs2, const char *user, const char *password,
                                       const unsigned char *cb, size_t cblen, char *salt_out)
{
    struct sasl_result r;
    struct sasl *s;
    char cfirst[512], sfirst[512], cfinal[1024], am[2048], proof[64], cbind[256];
    unsigned char cbin[256], salt[64];
    const char *sp, *nonce_end;
    size_t n, gl = strlen(gs2);
    enum sasl_status st;

    snprintf(cfirst, sizeof(cfirst), "%sn=%s,r=fyko+d2lbbFgONRv9qkxdawL", gs2, user);
    s = sasl_start(mech, p, b64(cfirst, strlen(cfirst)), &lookup, &r);
    if (r.status != SASL_CHALLENGE) {
        st = r.status;
        sasl_free(s);
        return st;
    }
    snprintf(sfirst, sizeof(sfirst), "%s", unb64(r.challenge));
    sp = strstr(sfirst, ",s=") + 3;
    nonce_end = strstr(sfirst, ",s=");
    b64_decode(sp, (size_t)(strchr(sp, ',') - sp), salt, sizeof(salt), &n);
    if (salt_out)
        snprintf(salt_out, 100, "%.*s", (int)(strchr(sp, ',') - sp), sp);
    memcpy(cbin, gs2, gl);
    if (cb)
        memcpy(cbin + gl, cb, cblen);
    b64_encode(cbin, gl + (cb ? cblen : 0), cbind);
    snprintf(cfinal, sizeof(cfinal), "c=%s,r=%.*s", cbind, (int)(nonce_end - sfirst - 2),
             sfirst + 2);
    snprintf(am, sizeof(am), "%s,%s,%s", cfirst + gl, sfirst, cfinal);
    client_proof(password, salt, n, am, proof);
    snprintf(cfinal + strlen(cfinal), sizeof(cfinal) - strlen(cfinal), ",p=%s", proof);
    step_str(s, cfinal, strlen(cfinal), &r);
    st = r.status;
    sasl_free(s);
    return st;
}

/* The RFC exchanges' client lines through the decoder byte by byte and in
 * one block, then through sasl_step: same octets, same outcome. */
static void test_trickle_lines(void)
{
    static const char *const msgs[] = { RFC7677_CFIRST, RFC7677_CFINAL,
        "tim b913a602c7eda7a495b4e6e7334d3890", "Ursel\0Kurt\0xipj3plmq" };
    static const size_t lens[] = { sizeof(RFC7677_CFIRST) - 1, sizeof(RFC7677_CFINAL) - 1, 36, 20 };
    unsigned char out[512];
    enum b64_err e;
    size_t len;
    int same;

    for (size_t i = 0; i < 4; i++) {
        char line[512];
        snprintf(line, sizeof(line), "%s", b64(msgs[i], lens[i]));
        b64_both(line, strlen(line), out, sizeof(out), &e, &len, &same);
        ok(same && e == B64_OK && len == lens[i] && memcmp(out, msgs[i], len) == 0,
           "client line %zu: byte by byte = one block = the message", i);
        /* every cut of the line fails to decode except the whole (and
         * quantum boundaries, which decode to a prefix) */
        int good = 1;
        for (size_t cut = 0; cut < strlen(line); cut++) {
            b64_both(line, cut, out, sizeof(out), &e, &len, &same);
            if (!same || (e == B64_OK && (cut % 4 != 0 || memcmp(out, msgs[i], len) != 0)))
                good = 0;
        }
        ok(good, "client line %zu: every cut refused or a prefix", i);
    }
}

static void test_scram_more(void)
{
    static const unsigned char cb[] = "0123456789abcdef0123456789abcdef";
    struct sasl_params plus = { .cb_type = "tls-exporter", .cb_data = cb, .cb_len = 32 };
    struct sasl_params other = plus;
    unsigned char cb2[32];
    char salt1[100], salt2[100];

    ok(scram_exchange("SCRAM-SHA-256", NULL, "n,,", "user", "pencil", NULL, 0, NULL)
       == SASL_SUCCESS, "computed exchange, random nonce: success");
    ok(scram_exchange("SCRAM-SHA-256", NULL, "n,,", "user", "pencil!", NULL, 0, NULL)
       == SASL_FAIL, "wrong password: fail");
    ok(scram_exchange("SCRAM-SHA-256", NULL, "n,a=user,", "user", "pencil", NULL, 0, NULL)
       == SASL_SUCCESS, "authzid = user: success");
    ok(scram_exchange("SCRAM-SHA-256", NULL, "n,a=admin,", "user", "pencil", NULL, 0, NULL)
       == SASL_FAIL, "authzid admin for user: fail");
    ok(scram_exchange("SCRAM-SHA-256", NULL, "y,,", "user", "pencil", NULL, 0, NULL)
       == SASL_SUCCESS, "'y' where -PLUS is not offered: success");
    ok(scram_exchange("SCRAM-SHA-256", &plus, "y,,", "user", "pencil", NULL, 0, NULL)
       == SASL_FAIL, "'y' where -PLUS is offered: fail (downgrade)");
    ok(scram_exchange("SCRAM-SHA-256", &plus, "n,,", "user", "pencil", NULL, 0, NULL)
       == SASL_SUCCESS, "'n' where -PLUS is offered: success");
    ok(scram_exchange("SCRAM-SHA-256", &plus, "p=tls-exporter,,", "user", "pencil", cb, 32, NULL)
       == SASL_FAIL, "'p' with the non-PLUS mechanism: fail");
    ok(scram_exchange("SCRAM-SHA-256-PLUS", &plus, "p=tls-exporter,,", "user", "pencil", cb, 32,
                      NULL) == SASL_SUCCESS, "-PLUS with the connection's binding: success");
    memcpy(cb2, cb, 32);
    cb2[31] ^= 1;
    ok(scram_exchange("SCRAM-SHA-256-PLUS", &plus, "p=tls-exporter,,", "user", "pencil", cb2, 32,
                      NULL) == SASL_FAIL, "-PLUS with another binding (MITM): fail");
    ok(scram_exchange("SCRAM-SHA-256-PLUS", &plus, "p=tls-unique,,", "user", "pencil", cb, 32,
                      NULL) == SASL_FAIL, "-PLUS with another binding type: fail");
    ok(scram_exchange("SCRAM-SHA-256-PLUS", &plus, "n,,", "user", "pencil", NULL, 0, NULL)
       == SASL_FAIL, "-PLUS without binding: fail");
    ok(scram_exchange("SCRAM-SHA-256-PLUS", NULL, "p=tls-exporter,,", "user", "pencil", cb, 32,
                      NULL) == SASL_FAIL, "-PLUS without TLS: not a mechanism");
    other.cb_type = "tls-server-end-point";
    ok(scram_exchange("SCRAM-SHA-256-PLUS", &other, "p=tls-server-end-point,,", "user", "pencil",
                      cb, 32, NULL) == SASL_SUCCESS, "tls-server-end-point binding: success");
    ok(sasl_mech_offered("scram-sha-256-plus", &plus) && !sasl_mech_offered("SCRAM-SHA-256-PLUS", NULL),
       "-PLUS offered only with binding data");
    is_str(sasl_mech_list(NULL), "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256", "mechanism list");
    is_str(sasl_mech_list(&plus), "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256 SCRAM-SHA-256-PLUS",
           "mechanism list with binding");

    /* unknown users: a salt that does not change between tries, then fail */
    ok(scram_exchange("SCRAM-SHA-256", NULL, "n,,", "nobody", "pencil", NULL, 0, salt1)
       == SASL_FAIL, "unknown user: fail at the proof");
    scram_exchange("SCRAM-SHA-256", NULL, "n,,", "nobody", "x", NULL, 0, salt2);
    is_str(salt1, salt2, "unknown user: the same salt every time");
    scram_exchange("SCRAM-SHA-256", NULL, "n,,", "nobody2", "x", NULL, 0, salt2);
    ok(strcmp(salt1, salt2) != 0, "another unknown user: another salt");
    fakes[nfakes].name = "us,er=";
    fakes[nfakes].sec = fakes[1 + 1].sec;      /* "user"'s secrets */
    nfakes++;
    ok(scram_exchange("SCRAM-SHA-256", NULL, "n,,", "us=2Cer=3D", "pencil", NULL, 0, NULL)
       == SASL_SUCCESS, "saslname =2C and =3D decoded");
}

static void first_bad(const char *msg, const char *what)
{
    struct scram_client_first cf;
    const char *why = NULL;

    ok(scram_parse_client_first(msg, strlen(msg), &cf, &why) == -1,
       "client-first %s: refused (%s)", what, why ? why : "ACCEPTED");
}

static void final_bad(const char *msg, const char *what)
{
    struct scram_client_final cf;
    const char *why = NULL;

    ok(scram_parse_client_final(msg, strlen(msg), &cf, &why) == -1,
       "client-final %s: refused (%s)", what, why ? why : "ACCEPTED");
}

static void test_scram_parse(void)
{
    struct scram_client_first cf;
    struct scram_client_final cfin;
    const char *why;
    char buf[512];
    size_t full;

    ok(scram_parse_client_first("n,,n=user,r=abc,x=ext", 21, &cf, &why) == 0
       && cf.nonce_len == 3 && cf.gs2_len == 3 && strcmp(cf.user, "user") == 0,
       "client-first with an extension");
    ok(scram_parse_client_first("p=tls-exporter,a=bob,n=bob,r=x", 30, &cf, &why) == 0
       && cf.gs2_flag == 'p' && strcmp(cf.cb_name, "tls-exporter") == 0
       && strcmp(cf.authzid, "bob") == 0 && cf.gs2_len == 21, "client-first p= a=");
    first_bad("", "empty");
    first_bad("n", "flag only");
    first_bad("n,", "gs2 unterminated");
    first_bad("n,,", "no username");
    first_bad("x,,n=user,r=abc", "bad flag");
    first_bad("p=,,n=user,r=abc", "empty cb name");
    first_bad("p=tls_x,,n=user,r=abc", "bad cb name");
    first_bad("n,b=x,n=user,r=abc", "bad authzid attribute");
    ok(scram_parse_client_first("n,,m=ext,n=user,r=abc", 21, &cf, &why) == -1
       && strcmp(why, "mandatory extension not supported") == 0, "client-first m=: refused as such");
    first_bad("n,,n=,r=abc", "empty user");
    first_bad("n,,n=us=2er,r=abc", "bad escape");
    first_bad("n,,n=user=,r=abc", "escape at the end");
    first_bad("n,,n=user=2,r=abc", "short escape");
    first_bad("n,,n=user", "no nonce");
    first_bad("n,,n=user,r=", "empty nonce");
    first_bad("n,,n=user,r=a b", "space in nonce");
    first_bad("n,,n=user,r=a\x7f", "DEL in nonce");
    first_bad("n,,n=user,r=abc,", "trailing comma");
    first_bad("n,,n=user,r=abc,1=x", "non-alpha extension");
    first_bad("n,,n=user,r=abc,x=", "empty extension value");
    first_bad("n,,r=abc,n=user", "attributes out of order");
    first_bad("n,,n=u\x01ser,r=abc", "control character in user");
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "n,,n=user,r=", 12);
    buf[12 + 256] = '\0';
    first_bad(buf, "256-character nonce");
    buf[12 + 255] = '\0';
    ok(scram_parse_client_first(buf, strlen(buf), &cf, &why) == 0, "255-character nonce");
    ok(scram_parse_client_first("n,,n=u\0x,r=abc", 14, &cf, &why) == -1, "NUL in client-first");

    ok(scram_parse_client_final("c=biws,r=abc,p=AAAA", 19, &cfin, &why) == 0
       && cfin.without_proof_len == 12 && cfin.proof_len == 4, "client-final");
    ok(scram_parse_client_final("c=biws,r=abc,x=1,p=AAAA", 23, &cfin, &why) == 0
       && cfin.without_proof_len == 16, "client-final with an extension");
    final_bad("", "empty");
    final_bad("c=biws", "no nonce");
    final_bad("c=biws,r=abc", "no proof");
    final_bad("r=abc,c=biws,p=AAAA", "out of order");
    final_bad("c=biws,r=abc,p=AAAA,x=1", "proof not last");
    final_bad("c=biws,r=abc,p=AAAA,p=AAAA", "two proofs");
    final_bad("c=biws,r=abc,c=biws,p=AAAA", "two bindings");
    final_bad("c=biws,r=abc,p=", "empty proof");
    final_bad("c=biws,r=abc,,p=AAAA", "empty attribute");

    /* every prefix of valid messages: no crash; what parses is sane */
    {
        int bad = 0;
        size_t pfx;
        full = strlen(RFC7677_CFIRST);
        for (size_t i = 0; i < full; i++)
            if (scram_parse_client_first(RFC7677_CFIRST, i, &cf, &why) == 0
                && memcmp(cf.nonce, "rOprNGfwEbeRWgbNEkqO", cf.nonce_len) != 0)
                bad++;
        ok(bad == 0 && scram_parse_client_first(RFC7677_CFIRST, full, &cf, &why) == 0,
           "every prefix of client-first: refused or a prefix of the nonce");
        full = strlen(RFC7677_CFINAL);
        pfx = (size_t)(strstr(RFC7677_CFINAL, ",p=") - RFC7677_CFINAL) + 4;
        for (size_t i = 0; i < full; i++)
            if (scram_parse_client_final(RFC7677_CFINAL, i, &cfin, &why) == 0 && i < pfx)
                bad++;
        ok(bad == 0 && scram_parse_client_final(RFC7677_CFINAL, full, &cfin, &why) == 0,
           "every prefix of client-final: refused until p= has a value");
    }
}

/* ---- limits ------------------------------------------------------------- */

static void test_limits(void)
{
    struct sasl_result r;
    struct sasl *s;
    char *line = malloc(SASL_LINE_MAX + 5);

    memset(line, 'A', SASL_LINE_MAX + 4);
    s = sasl_start("PLAIN", NULL, NULL, &lookup, &r);
    sasl_step(s, &lookup, line, SASL_LINE_MAX + 4, &r);
    ok(r.status == SASL_FAIL && strcmp(r.reason, "client line too long") == 0,
       "line of %d: too long, not decoded (%s)", SASL_LINE_MAX + 4, r.reason);
    sasl_free(s);
    s = sasl_start("PLAIN", NULL, NULL, &lookup, &r);
    sasl_step(s, &lookup, line, SASL_LINE_MAX, &r);
    ok(r.status == SASL_FAIL && strstr(r.reason, "NUL"), "line of %d decodes, PLAIN refuses (%s)",
       SASL_LINE_MAX, r.reason);
    sasl_free(s);
    s = sasl_start("SCRAM-SHA-256", NULL, NULL, &lookup, &r);
    sasl_step(s, &lookup, line, 4000, &r);
    ok(r.status == SASL_FAIL && strstr(r.reason, "too long"), "3000-octet client-first: %s", r.reason);
    sasl_free(s);
    free(line);
}

/* ---- secrets in users_file ---------------------------------------------- */

static void test_users_secrets(void)
{
    char path[] = "/tmp/hato-test-sasl-XXXXXX", line[512], cram[65], scram[200], err[256];
    struct usertab *t;
    const struct user *u;
    FILE *f;
    int fd = mkstemp(path);

    sasl_cram_secret("tanstaaftanstaaf", cram);
    ok(sasl_scram_secret("pencil", 4096, scram, sizeof(scram)) == 0, "random-salt SCRAM secret");
    snprintf(line, sizeof(line), "tim@example.test * cram-md5=%s scram-sha-256=%s quota=1M\n",
             cram, scram);
    f = fdopen(fd, "w");
    fputs(line, f);
    fclose(f);
    t = users_load(path, err, sizeof(err));
    u = t ? users_find(t, "tim@example.test") : NULL;
    ok(u && u->secrets && u->secrets->has_cram && u->secrets->has_scram && u->quota == 1 << 20,
       "users_file line with both secrets loads (%s)", t ? "" : err);
    ok(u && memcmp(u->secrets->cram_md5, fakes[0].sec.cram_md5, 32) == 0,
       "cram-md5= parsed to the states");
    ok(u && u->secrets->scram_iter == 4096 && u->secrets->scram_salt_len == 16, "scram-sha-256= parsed");
    users_free(t);
    unlink(path);
}

int main(void)
{
    test_base64();
    test_plain();
    test_login();
    test_cram();
    test_scram_rfc7677();
    test_trickle_lines();
    test_scram_more();
    test_scram_parse();
    test_limits();
    test_users_secrets();
    return tap_done();
}
