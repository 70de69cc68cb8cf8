/*
 * auth/sasl.c — server-side SASL exchanges: PLAIN, LOGIN, CRAM-MD5,
 * SCRAM-SHA-256(-PLUS); their strict decoders; the stored secrets
 * (cram-md5=, scram-sha-256=) made from a password.
 *
 * Owns: the state of one exchange (struct sasl) and every octet a client
 * sends inside it.  Never touches a socket, never checks a crypt(3) hash
 * (PLAIN and LOGIN hand the password to the caller, who runs auth/passwd
 * in the worker pool), never logs.  Every comparison of a secret is
 * CRYPTO_memcmp; every buffer that held a password or a key is wiped.
 *
 * CRAM-MD5 uses the MD5 chaining state (MD5_CTX.A..D), which only the
 * deprecated low-level MD5 API exposes: that is what lets the file store
 * HMAC-MD5's inner/outer states instead of the password.  Hence
 * OPENSSL_SUPPRESS_DEPRECATED, in this file only.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/md5.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "auth/sasl.h"
#include "auth/users.h"
#include "lib/base64.h"

#define SCRAM_KEY      SHA256_DIGEST_LENGTH
#define SCRAM_FIRST_MAX  2048      /* octets of a client-first message */
#define SCRAM_SFIRST_MAX 512       /* octets of our server-first message */
#define SCRAM_FINAL_MAX  4096      /* octets of a client-final message */
#define SCRAM_NONCE_MAX  255       /* client nonce */
#define SCRAM_SNONCE_RAW 24        /* random octets of our nonce */
#define SCRAM_FAKE_SALT  16
#define CRAM_CHAL_MAX    256
#define CHALLENGE_MAX    1024      /* base64 characters we send */

enum mech { M_PLAIN, M_LOGIN, M_CRAM, M_SCRAM, M_SCRAM_PLUS, M_NONE };

static const char *const mech_names[] = {
    "PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"
};

enum state {
    ST_PLAIN,          /* waiting for the PLAIN message */
    ST_LOGIN_USER,     /* "Username:" sent */
    ST_LOGIN_PASS,     /* "Password:" sent */
    ST_CRAM,           /* challenge sent */
    ST_SCRAM_FIRST,    /* empty challenge sent, waiting for client-first */
    ST_SCRAM_FINAL,    /* server-first sent */
    ST_SCRAM_ACK,      /* server-final sent as a challenge */
    ST_VERIFY,         /* NEED_VERIFY returned */
    ST_DONE
};

struct sasl {
    enum mech mech;
    enum state state;
    int final_as_challenge;
    char cb_type[32];
    unsigned char cb_data[SASL_CB_MAX];
    size_t cb_len;
    char hostname[256];
    char fixed_nonce[SCRAM_NONCE_MAX + 1];
    int have_fixed_nonce;

    char authcid[SASL_ID_MAX + 1];
    char password[SASL_PASSWORD_MAX + 1];
    unsigned char dec[SASL_DECODED_MAX + 1];      /* the decoded client line */
    size_t dec_len;
    char challenge[CHALLENGE_MAX + 1];

    char cram_chal[CRAM_CHAL_MAX];                /* CRAM-MD5 */

    char gs2[64 + SASL_ID_MAX * 3];               /* SCRAM: gs2 header */
    size_t gs2_len;
    char cfirst_bare[SCRAM_FIRST_MAX + 1];
    size_t cfirst_bare_len;
    char sfirst[SCRAM_SFIRST_MAX];
    size_t sfirst_len;
    char nonce[SCRAM_NONCE_MAX + 2 * SCRAM_SNONCE_RAW + 1];   /* client + server */
    size_t nonce_len;
    int user_known;
    unsigned char stored_key[SCRAM_KEY], server_key[SCRAM_KEY];
    char final_b64[B64_ENCODED_SIZE(2 + B64_ENCODED_SIZE(SCRAM_KEY))];
};

/* ---- small helpers --------------------------------------------------- */

static void res_init(struct sasl *s, struct sasl_result *r)
{
    memset(r, 0, sizeof(*r));
    r->mech = s && s->mech < M_NONE ? mech_names[s->mech] : "";
}

static void wipe_password(struct sasl *s)
{
    explicit_bzero(s->password, sizeof(s->password));
}

static void fail(struct sasl *s, struct sasl_result *r, const char *why)
{
    wipe_password(s);
    s->state = ST_DONE;
    r->status = SASL_FAIL;
    r->reason = why;
    r->authcid = s->authcid[0] ? s->authcid : NULL;
}

static void challenge_raw(struct sasl *s, struct sasl_result *r, const void *p, size_t n)
{
    /* every caller sends far less than CHALLENGE_MAX * 3 / 4 octets */
    b64_encode(p, n, s->challenge);
    r->status = SASL_CHALLENGE;
    r->challenge = s->challenge;
}

static void success(struct sasl *s, struct sasl_result *r)
{
    wipe_password(s);
    s->state = ST_DONE;
    r->status = SASL_SUCCESS;
    r->authcid = s->authcid;
}

static void need_verify(struct sasl *s, struct sasl_result *r)
{
    s->state = ST_VERIFY;
    r->status = SASL_NEED_VERIFY;
    r->authcid = s->authcid;
    r->password = s->password;
}

/* Strict UTF-8 (no overlongs, surrogates or > U+10FFFF). */
static int utf8_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = p[i];
        size_t len, k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; }
        else return 0;
        if (i + len > n)
            return 0;
        for (k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
            || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        i += len;
    }
    return 1;
}

/* An authcid/authzid: 1..SASL_ID_MAX octets of UTF-8, no controls. */
static const char *check_id(const unsigned char *p, size_t n)
{
    if (n == 0)
        return "empty identity";
    if (n > SASL_ID_MAX)
        return "identity too long";
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] == 0x7f)
            return "control character in identity";
    return utf8_valid(p, n) ? NULL : "identity is not UTF-8";
}

static const char *check_password(const unsigned char *p, size_t n)
{
    if (n == 0)
        return "empty password";
    if (n > SASL_PASSWORD_MAX)
        return "password too long";
    if (memchr(p, '\0', n) != NULL)
        return "NUL in password";
    return utf8_valid(p, n) ? NULL : "password is not UTF-8";
}

/* authzid must be empty or name the authcid itself. */
static const char *check_authzid(const char *authzid, const char *authcid)
{
    if (authzid[0] == '\0' || strcasecmp(authzid, authcid) == 0)
        return NULL;
    return "authorization identity differs from the authentication identity";
}

/* The client's line into s->dec.  0; 1 for "*" (CANCEL set); -1 (FAIL set). */
static int decode_line(struct sasl *s, const char *line, size_t len, struct sasl_result *r)
{
    enum b64_err e;

    if (len == 1 && line[0] == '*') {
        wipe_password(s);
        s->state = ST_DONE;
        r->status = SASL_CANCEL;
        return 1;
    }
    if (len > SASL_LINE_MAX) {
        fail(s, r, "client line too long");
        return -1;
    }
    e = b64_decode(line, len, s->dec, SASL_DECODED_MAX, &s->dec_len);
    if (e != B64_OK) {
        fail(s, r, b64_strerror(e));
        return -1;
    }
    s->dec[s->dec_len] = '\0';
    return 0;
}

static const struct user_secrets *find_secrets(const struct sasl_lookup *lk, const char *who)
{
    return lk && lk->find ? lk->find(lk->arg, who) : NULL;
}

const struct user_secrets *sasl_usertab_find(const void *usertab, const char *authcid)
{
    const struct user *u = users_find(usertab, authcid);

    return u ? u->secrets : NULL;
}

static int random_bytes(unsigned char *p, size_t n)
{
    return RAND_bytes(p, (int)n) == 1 ? 0 : -1;
}

/* ---- mechanisms: names ----------------------------------------------- */

static enum mech mech_lookup(const char *name, const struct sasl_params *p)
{
    int have_cb = p && p->cb_type && p->cb_data && p->cb_len > 0 && p->cb_len <= SASL_CB_MAX;

    for (int i = 0; i < M_NONE; i++) {
        if (name && strcasecmp(name, mech_names[i]) == 0)
            return i == M_SCRAM_PLUS && !have_cb ? M_NONE : (enum mech)i;
    }
    return M_NONE;
}

int sasl_mech_offered(const char *name, const struct sasl_params *params)
{
    return mech_lookup(name, params) != M_NONE;
}

const char *sasl_mech_list(const struct sasl_params *params)
{
    if (mech_lookup("SCRAM-SHA-256-PLUS", params) != M_NONE)
        return "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256 SCRAM-SHA-256-PLUS";
    return "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256";
}

/* ---- PLAIN (RFC 4616) -------------------------------------------------- */

int sasl_plain_parse(const unsigned char *msg, size_t n, char *buf, const char **authzid,
                     const char **authcid, const char **passwd, const char **why)
{
    const unsigned char *nul1, *nul2;
    size_t zlen, clen, plen;

    nul1 = memchr(msg, '\0', n);
    nul2 = nul1 ? memchr(nul1 + 1, '\0', n - (size_t)(nul1 + 1 - msg)) : NULL;
    if (nul2 == NULL) {
        *why = "PLAIN message needs two NUL separators";
        return -1;
    }
    if (memchr(nul2 + 1, '\0', n - (size_t)(nul2 + 1 - msg)) != NULL) {
        *why = "NUL in PLAIN password";
        return -1;
    }
    zlen = (size_t)(nul1 - msg);
    clen = (size_t)(nul2 - nul1 - 1);
    plen = n - (size_t)(nul2 + 1 - msg);
    if ((zlen > 0 && (*why = check_id(msg, zlen)) != NULL)
        || (*why = check_id(nul1 + 1, clen)) != NULL
        || (*why = check_password(nul2 + 1, plen)) != NULL)
        return -1;
    memcpy(buf, msg, n);
    buf[n] = '\0';
    *authzid = buf;
    *authcid = buf + zlen + 1;
    *passwd = buf + zlen + 1 + clen + 1;
    if ((*why = check_authzid(*authzid, *authcid)) != NULL) {
        explicit_bzero(buf, n);
        return -1;
    }
    return 0;
}

static void plain_message(struct sasl *s, struct sasl_result *r)
{
    char buf[SASL_DECODED_MAX + 1];
    const char *z, *c, *p, *why;

    if (sasl_plain_parse(s->dec, s->dec_len, buf, &z, &c, &p, &why) != 0) {
        explicit_bzero(s->dec, sizeof(s->dec));
        fail(s, r, why);
        return;
    }
    snprintf(s->authcid, sizeof(s->authcid), "%s", c);
    snprintf(s->password, sizeof(s->password), "%s", p);
    explicit_bzero(buf, sizeof(buf));
    explicit_bzero(s->dec, sizeof(s->dec));
    need_verify(s, r);
}

/* ---- LOGIN ------------------------------------------------------------- */

static void login_user(struct sasl *s, struct sasl_result *r)
{
    const char *why = check_id(s->dec, s->dec_len);

    if (why != NULL) {
        fail(s, r, why);
        return;
    }
    memcpy(s->authcid, s->dec, s->dec_len + 1);
    s->state = ST_LOGIN_PASS;
    challenge_raw(s, r, "Password:", 9);
}

static void login_pass(struct sasl *s, struct sasl_result *r)
{
    const char *why = check_password(s->dec, s->dec_len);

    if (why != NULL) {
        explicit_bzero(s->dec, sizeof(s->dec));
        fail(s, r, why);
        return;
    }
    memcpy(s->password, s->dec, s->dec_len + 1);
    explicit_bzero(s->dec, sizeof(s->dec));
    need_verify(s, r);
}

/* ---- CRAM-MD5 (RFC 2195) with stored HMAC-MD5 states ------------------- */

static void md5_state_out(const MD5_CTX *c, unsigned char out[16])
{
    const MD5_LONG w[4] = { c->A, c->B, c->C, c->D };

    for (int i = 0; i < 4; i++) {
        out[4 * i] = (unsigned char)w[i];
        out[4 * i + 1] = (unsigned char)(w[i] >> 8);
        out[4 * i + 2] = (unsigned char)(w[i] >> 16);
        out[4 * i + 3] = (unsigned char)(w[i] >> 24);
    }
}

/* A context that has absorbed one 64-octet block and holds state st. */
static void md5_state_in(MD5_CTX *c, const unsigned char st[16])
{
    MD5_LONG w[4];

    for (int i = 0; i < 4; i++)
        w[i] = (MD5_LONG)st[4 * i] | (MD5_LONG)st[4 * i + 1] << 8
             | (MD5_LONG)st[4 * i + 2] << 16 | (MD5_LONG)st[4 * i + 3] << 24;
    MD5_Init(c);
    c->A = w[0]; c->B = w[1]; c->C = w[2]; c->D = w[3];
    c->Nl = 512;
    c->Nh = 0;
    c->num = 0;
}

int sasl_cram_secret(const char *password, char out[65])
{
    unsigned char key[64], pad[64], st[32];
    size_t n = strlen(password);
    MD5_CTX c;

    memset(key, 0, sizeof(key));
    if (n > sizeof(key))
        MD5((const unsigned char *)password, n, key);
    else
        memcpy(key, password, n);
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 64; i++)
            pad[i] = key[i] ^ (k == 0 ? 0x36 : 0x5c);
        MD5_Init(&c);
        MD5_Update(&c, pad, sizeof(pad));
        md5_state_out(&c, st + 16 * k);
    }
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", st[i]);
    explicit_bzero(key, sizeof(key));
    explicit_bzero(pad, sizeof(pad));
    explicit_bzero(st, sizeof(st));
    explicit_bzero(&c, sizeof(c));
    return 0;
}

/* HMAC-MD5(password, msg) from the stored states. */
static void cram_hmac(const unsigned char st[32], const void *msg, size_t n,
                      unsigned char mac[16])
{
    unsigned char inner[16];
    MD5_CTX c;

    md5_state_in(&c, st);
    MD5_Update(&c, msg, n);
    MD5_Final(inner, &c);
    md5_state_in(&c, st + 16);
    MD5_Update(&c, inner, sizeof(inner));
    MD5_Final(mac, &c);
    explicit_bzero(&c, sizeof(c));
}

static void cram_start(struct sasl *s, struct sasl_result *r)
{
    unsigned char rnd[8];
    unsigned long long v = 0;

    if (s->have_fixed_nonce) {
        snprintf(s->cram_chal, sizeof(s->cram_chal), "%s", s->fixed_nonce);
    } else {
        if (random_bytes(rnd, sizeof(rnd)) != 0) {
            fail(s, r, "no random numbers");
            return;
        }
        for (int i = 0; i < 8; i++)
            v = v << 8 | rnd[i];
        snprintf(s->cram_chal, sizeof(s->cram_chal), "<%llu.%lld@%s>", v,
                 (long long)time(NULL), s->hostname);
    }
    s->state = ST_CRAM;
    challenge_raw(s, r, s->cram_chal, strlen(s->cram_chal));
}

static int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;      /* RFC 2195: lower-case hex */
}

static void cram_response(struct sasl *s, const struct sasl_lookup *lookup, struct sasl_result *r)
{
    const unsigned char *sp = NULL;
    const struct user_secrets *u;
    unsigned char want[16], got[16], st[32];
    const char *why;
    size_t ulen;

    for (size_t i = 0; i < s->dec_len; i++)
        if (s->dec[i] == ' ')
            sp = s->dec + i;
    if (sp == NULL || s->dec + s->dec_len - (sp + 1) != 32) {
        fail(s, r, "CRAM-MD5 response is not 'user digest'");
        return;
    }
    ulen = (size_t)(sp - s->dec);
    if ((why = check_id(s->dec, ulen)) != NULL) {
        fail(s, r, why);
        return;
    }
    for (int i = 0; i < 16; i++) {
        int hi = hex_digit(sp[1 + 2 * i]), lo = hex_digit(sp[2 + 2 * i]);
        if (hi < 0 || lo < 0) {
            fail(s, r, "CRAM-MD5 digest is not 32 lower-case hex digits");
            return;
        }
        got[i] = (unsigned char)(hi << 4 | lo);
    }
    memcpy(s->authcid, s->dec, ulen);
    s->authcid[ulen] = '\0';
    u = find_secrets(lookup, s->authcid);
    why = u == NULL || !u->has_cram ? "unknown user or no cram-md5 secret" : NULL;
    if (why == NULL)
        memcpy(st, u->cram_md5, sizeof(st));
    else if (random_bytes(st, sizeof(st)) != 0)
        memset(st, 0, sizeof(st));
    cram_hmac(st, s->cram_chal, strlen(s->cram_chal), want);
    if (CRYPTO_memcmp(want, got, sizeof(want)) != 0 && why == NULL)
        why = "wrong password";
    explicit_bzero(st, sizeof(st));
    explicit_bzero(want, sizeof(want));
    if (why != NULL)
        fail(s, r, why);
    else
        success(s, r);
}

/* ---- SCRAM attribute parsing (RFC 5802 §7) ----------------------------- */

static int is_printable_nonce(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e && c != ',';
}

/* saslname [p, p+n) with =2C / =3D into out (<= SASL_ID_MAX). */
static const char *saslname_decode(const char *p, size_t n, char *out)
{
    size_t o = 0;

    if (n == 0)
        return "empty saslname";
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '=') {
            if (i + 2 >= n)
                return "bad '=' escape in saslname";
            if (p[i + 1] == '2' && p[i + 2] == 'C')
                c = ',';
            else if (p[i + 1] == '3' && p[i + 2] == 'D')
                c = '=';
            else
                return "bad '=' escape in saslname";
            i += 2;
        } else if (c == ',' || c == '\0') {
            return "bad character in saslname";
        }
        if (o == SASL_ID_MAX)
            return "identity too long";
        out[o++] = c;
    }
    out[o] = '\0';
    return check_id((const unsigned char *)out, o);
}

/* A walk over the ','-separated attributes of a message. */
struct attrs {
    const char *p, *end;
    int done;           /* the last attribute has been read */
};

static int next_attr(struct attrs *c, const char **a, size_t *alen)
{
    const char *comma;

    if (c->done)
        return -1;
    comma = memchr(c->p, ',', (size_t)(c->end - c->p));
    *a = c->p;
    *alen = comma ? (size_t)(comma - c->p) : (size_t)(c->end - c->p);
    if (comma) {
        c->p = comma + 1;
    } else {
        c->p = c->end;
        c->done = 1;
    }
    return 0;
}

/* "k=value" with key k and a non-empty value. */
static int attr_is(const char *a, size_t alen, char k)
{
    return alen >= 3 && a[0] == k && a[1] == '=';
}

/* extensions = attr-val *("," attr-val); attr-val = ALPHA "=" value */
static int attr_ext_ok(const char *a, size_t alen)
{
    if (alen < 3 || a[1] != '=')
        return 0;
    if (!((a[0] >= 'a' && a[0] <= 'z') || (a[0] >= 'A' && a[0] <= 'Z')))
        return 0;
    return memchr(a, '\0', alen) == NULL && utf8_valid((const unsigned char *)a, alen);
}

static const char *parse_gs2(struct attrs *c, struct scram_client_first *cf)
{
    const char *a;
    size_t alen;

    if (next_attr(c, &a, &alen) != 0 || c->done)
        return "no gs2 header";
    if (alen == 1 && (a[0] == 'n' || a[0] == 'y')) {
        cf->gs2_flag = a[0];
    } else if (alen > 2 && alen - 2 < sizeof(cf->cb_name) && a[0] == 'p' && a[1] == '=') {
        for (size_t i = 2; i < alen; i++) {
            char ch = a[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
                  || ch == '.' || ch == '-'))
                return "bad channel binding name";
        }
        cf->gs2_flag = 'p';
        memcpy(cf->cb_name, a + 2, alen - 2);
        cf->cb_name[alen - 2] = '\0';
    } else {
        return "bad gs2 channel binding flag";
    }
    if (next_attr(c, &a, &alen) != 0 || c->done)
        return "gs2 header not terminated";
    if (alen == 0)
        return NULL;
    if (!attr_is(a, alen, 'a'))
        return "bad gs2 authzid";
    return saslname_decode(a + 2, alen - 2, cf->authzid);
}

int scram_parse_client_first(const char *msg, size_t n, struct scram_client_first *cf,
                             const char **why)
{
    struct attrs c = { msg, msg + n, 0 };
    const char *a;
    size_t alen;

    memset(cf, 0, sizeof(*cf));
    if (memchr(msg, '\0', n) != NULL) {
        *why = "NUL in client-first message";
        return -1;
    }
    if ((*why = parse_gs2(&c, cf)) != NULL)
        return -1;
    cf->gs2_len = (size_t)(c.p - msg);
    (void)next_attr(&c, &a, &alen);
    if (attr_is(a, alen, 'm')) {
        *why = "mandatory extension not supported";
        return -1;
    }
    if (!attr_is(a, alen, 'n')) {
        *why = "client-first needs n=username";
        return -1;
    }
    if ((*why = saslname_decode(a + 2, alen - 2, cf->user)) != NULL)
        return -1;
    if (next_attr(&c, &a, &alen) != 0 || !attr_is(a, alen, 'r')) {
        *why = "client-first needs r=nonce";
        return -1;
    }
    if (alen - 2 > SCRAM_NONCE_MAX) {
        *why = "client nonce too long";
        return -1;
    }
    for (size_t i = 2; i < alen; i++)
        if (!is_printable_nonce((unsigned char)a[i])) {
            *why = "bad character in client nonce";
            return -1;
        }
    cf->nonce = a + 2;
    cf->nonce_len = alen - 2;
    while (next_attr(&c, &a, &alen) == 0) {
        if (!attr_ext_ok(a, alen)) {
            *why = "bad extension in client-first";
            return -1;
        }
    }
    return 0;
}

int scram_parse_client_final(const char *msg, size_t n, struct scram_client_final *cf,
                             const char **why)
{
    struct attrs c = { msg, msg + n, 0 };
    const char *a;
    size_t alen;

    memset(cf, 0, sizeof(*cf));
    if (memchr(msg, '\0', n) != NULL) {
        *why = "NUL in client-final message";
        return -1;
    }
    (void)next_attr(&c, &a, &alen);
    if (!attr_is(a, alen, 'c')) {
        *why = "client-final needs c=channel-binding first";
        return -1;
    }
    cf->cbind = a + 2;
    cf->cbind_len = alen - 2;
    if (next_attr(&c, &a, &alen) != 0 || !attr_is(a, alen, 'r')) {
        *why = "client-final needs r=nonce second";
        return -1;
    }
    cf->nonce = a + 2;
    cf->nonce_len = alen - 2;
    for (;;) {
        size_t at = (size_t)(c.p - msg);
        if (next_attr(&c, &a, &alen) != 0) {
            *why = "client-final needs p=proof last";
            return -1;
        }
        if (attr_is(a, alen, 'p') && c.done) {
            cf->proof = a + 2;
            cf->proof_len = alen - 2;
            cf->without_proof_len = at - 1;
            return 0;
        }
        if (!attr_ext_ok(a, alen) || a[0] == 'c' || a[0] == 'r' || a[0] == 'p') {
            *why = "bad attribute in client-final";
            return -1;
        }
    }
}

/* ---- SCRAM-SHA-256 (RFC 5802, RFC 7677) -------------------------------- */

static pthread_once_t fake_once = PTHREAD_ONCE_INIT;
static unsigned char fake_key[32];
static int fake_key_ok;

static void fake_key_init(void)
{
    fake_key_ok = random_bytes(fake_key, sizeof(fake_key)) == 0;
}

/* What an unknown user gets: a salt stable per name and process, and keys
 * no proof matches. */
static int scram_fake_user(const char *user, struct user_secrets *sec)
{
    unsigned char mac[SCRAM_KEY];
    unsigned int mlen = 0;

    pthread_once(&fake_once, fake_key_init);
    if (!fake_key_ok
        || HMAC(EVP_sha256(), fake_key, sizeof(fake_key), (const unsigned char *)user,
                strlen(user), mac, &mlen) == NULL
        || random_bytes(sec->scram_stored_key, SCRAM_KEY) != 0
        || random_bytes(sec->scram_server_key, SCRAM_KEY) != 0)
        return -1;
    memcpy(sec->scram_salt, mac, SCRAM_FAKE_SALT);
    sec->scram_salt_len = SCRAM_FAKE_SALT;
    sec->scram_iter = SASL_SCRAM_ITER;
    return 0;
}

static const char *scram_check_gs2(struct sasl *s, const struct scram_client_first *cf)
{
    int plus = s->mech == M_SCRAM_PLUS;

    if (cf->gs2_flag == 'p' && !plus)
        return "channel binding requested with SCRAM-SHA-256 (not -PLUS)";
    if (cf->gs2_flag != 'p' && plus)
        return "SCRAM-SHA-256-PLUS without channel binding";
    if (cf->gs2_flag == 'y' && s->cb_len > 0)
        return "client thinks channel binding is not offered (downgrade?)";
    if (cf->gs2_flag == 'p' && strcmp(cf->cb_name, s->cb_type) != 0)
        return "unsupported channel binding type";
    if (cf->authzid[0] && strcasecmp(cf->authzid, cf->user) != 0)
        return "authorization identity differs from the authentication identity";
    return NULL;
}

/* Our nonce after the client's: fixed (tests) or 24 random octets as base64. */
static int scram_make_nonce(struct sasl *s, const struct scram_client_first *cf)
{
    unsigned char rnd[SCRAM_SNONCE_RAW];
    char b64[B64_ENCODED_SIZE(SCRAM_SNONCE_RAW)];
    const char *sn = s->fixed_nonce;

    if (!s->have_fixed_nonce) {
        if (random_bytes(rnd, sizeof(rnd)) != 0)
            return -1;
        b64_encode(rnd, sizeof(rnd), b64);
        sn = b64;
    }
    if (cf->nonce_len + strlen(sn) >= sizeof(s->nonce))
        return -1;
    memcpy(s->nonce, cf->nonce, cf->nonce_len);
    strcpy(s->nonce + cf->nonce_len, sn);
    s->nonce_len = strlen(s->nonce);
    return 0;
}

static void scram_first(struct sasl *s, const struct sasl_lookup *lookup, struct sasl_result *r)
{
    struct scram_client_first cf;
    struct user_secrets sec;
    const struct user_secrets *u;
    char salt[B64_ENCODED_SIZE(USERS_SCRAM_SALT_MAX)];
    const char *why;
    int n;

    if (s->dec_len > SCRAM_FIRST_MAX) {
        fail(s, r, "client-first message too long");
        return;
    }
    if (scram_parse_client_first((const char *)s->dec, s->dec_len, &cf, &why) != 0
        || (why = scram_check_gs2(s, &cf)) != NULL) {
        fail(s, r, why);
        return;
    }
    snprintf(s->authcid, sizeof(s->authcid), "%s", cf.user);
    memcpy(s->gs2, s->dec, cf.gs2_len);
    s->gs2_len = cf.gs2_len;
    s->cfirst_bare_len = s->dec_len - cf.gs2_len;
    memcpy(s->cfirst_bare, s->dec + cf.gs2_len, s->cfirst_bare_len);
    u = find_secrets(lookup, s->authcid);
    s->user_known = u && u->has_scram;
    memset(&sec, 0, sizeof(sec));
    if (s->user_known)
        memcpy(&sec, u, sizeof(sec));
    else if (scram_fake_user(s->authcid, &sec) != 0) {
        fail(s, r, "no random numbers");
        return;
    }
    memcpy(s->stored_key, sec.scram_stored_key, SCRAM_KEY);
    memcpy(s->server_key, sec.scram_server_key, SCRAM_KEY);
    b64_encode(sec.scram_salt, sec.scram_salt_len, salt);
    n = scram_make_nonce(s, &cf) != 0 ? -1
        : snprintf(s->sfirst, sizeof(s->sfirst), "r=%s,s=%s,i=%ld", s->nonce, salt,
                   sec.scram_iter);
    explicit_bzero(&sec, sizeof(sec));
    if (n < 0 || (size_t)n >= sizeof(s->sfirst)) {
        fail(s, r, "cannot make server-first message");
        return;
    }
    s->sfirst_len = (size_t)n;
    s->state = ST_SCRAM_FINAL;
    challenge_raw(s, r, s->sfirst, s->sfirst_len);
}

/* c= must be base64 of the gs2 header (+ the binding data for 'p'). */
static const char *scram_check_cbind(struct sasl *s, const struct scram_client_final *cf)
{
    unsigned char want[sizeof(s->gs2) + SASL_CB_MAX], got[sizeof(want)];
    size_t wlen = s->gs2_len, glen;

    memcpy(want, s->gs2, s->gs2_len);
    if (s->gs2[0] == 'p') {
        memcpy(want + wlen, s->cb_data, s->cb_len);
        wlen += s->cb_len;
    }
    if (b64_decode(cf->cbind, cf->cbind_len, got, sizeof(got), &glen) != B64_OK)
        return "bad base64 in c=";
    if (glen != wlen || CRYPTO_memcmp(got, want, wlen) != 0)
        return "channel binding does not match";
    return NULL;
}

/* The proof against StoredKey; on success the server signature in sig. */
static int scram_verify_proof(struct sasl *s, const struct scram_client_final *cf,
                              const unsigned char proof[SCRAM_KEY], unsigned char sig[SCRAM_KEY])
{
    unsigned char am[SCRAM_FIRST_MAX + SCRAM_SFIRST_MAX + SCRAM_FINAL_MAX + 2];
    unsigned char csig[SCRAM_KEY], ckey[SCRAM_KEY], stored[SCRAM_KEY];
    size_t n = 0;
    unsigned int len;
    int ok;

    memcpy(am, s->cfirst_bare, s->cfirst_bare_len);
    n = s->cfirst_bare_len;
    am[n++] = ',';
    memcpy(am + n, s->sfirst, s->sfirst_len);
    n += s->sfirst_len;
    am[n++] = ',';
    memcpy(am + n, s->dec, cf->without_proof_len);
    n += cf->without_proof_len;
    ok = HMAC(EVP_sha256(), s->stored_key, SCRAM_KEY, am, n, csig, &len) != NULL
         && HMAC(EVP_sha256(), s->server_key, SCRAM_KEY, am, n, sig, &len) != NULL;
    for (int i = 0; i < SCRAM_KEY; i++)
        ckey[i] = proof[i] ^ csig[i];
    SHA256(ckey, SCRAM_KEY, stored);
    ok = ok && CRYPTO_memcmp(stored, s->stored_key, SCRAM_KEY) == 0;
    explicit_bzero(ckey, sizeof(ckey));
    explicit_bzero(csig, sizeof(csig));
    return ok;
}

static void scram_final(struct sasl *s, struct sasl_result *r)
{
    struct scram_client_final cf;
    unsigned char proof[SCRAM_KEY + 1], sig[SCRAM_KEY];
    char msg[2 + B64_ENCODED_SIZE(SCRAM_KEY)];
    const char *why;
    size_t plen;

    if (s->dec_len > SCRAM_FINAL_MAX) {
        fail(s, r, "client-final message too long");
        return;
    }
    if (scram_parse_client_final((const char *)s->dec, s->dec_len, &cf, &why) != 0
        || (why = scram_check_cbind(s, &cf)) != NULL) {
        fail(s, r, why);
        return;
    }
    if (cf.nonce_len != s->nonce_len || memcmp(cf.nonce, s->nonce, s->nonce_len) != 0) {
        fail(s, r, "nonce does not match");
        return;
    }
    if (b64_decode(cf.proof, cf.proof_len, proof, sizeof(proof), &plen) != B64_OK
        || plen != SCRAM_KEY) {
        fail(s, r, "bad proof");
        return;
    }
    if (!scram_verify_proof(s, &cf, proof, sig) || !s->user_known) {
        fail(s, r, s->user_known ? "wrong password" : "unknown user or no scram-sha-256 secret");
        return;
    }
    memcpy(msg, "v=", 2);
    b64_encode(sig, SCRAM_KEY, msg + 2);
    b64_encode((const unsigned char *)msg, strlen(msg), s->final_b64);
    if (s->final_as_challenge) {
        s->state = ST_SCRAM_ACK;
        r->status = SASL_CHALLENGE;
        r->challenge = s->final_b64;
        return;
    }
    success(s, r);
    r->final = s->final_b64;
}

static void scram_ack(struct sasl *s, struct sasl_result *r)
{
    if (s->dec_len != 0) {
        fail(s, r, "answer to server-final is not empty");
        return;
    }
    success(s, r);
}

static int scram_derive(const char *password, long iter, const unsigned char *salt,
                        size_t salt_len, unsigned char stored[SCRAM_KEY],
                        unsigned char server[SCRAM_KEY])
{
    unsigned char salted[SCRAM_KEY], ckey[SCRAM_KEY];
    unsigned int len;
    int ok;

    ok = PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, (int)iter,
                           EVP_sha256(), SCRAM_KEY, salted) == 1
         && HMAC(EVP_sha256(), salted, SCRAM_KEY, (const unsigned char *)"Client Key", 10,
                 ckey, &len) != NULL
         && HMAC(EVP_sha256(), salted, SCRAM_KEY, (const unsigned char *)"Server Key", 10,
                 server, &len) != NULL
         && SHA256(ckey, SCRAM_KEY, stored) != NULL;
    explicit_bzero(salted, sizeof(salted));
    explicit_bzero(ckey, sizeof(ckey));
    return ok ? 0 : -1;
}

int sasl_scram_secret_salt(const char *password, long iter, const unsigned char *salt,
                           size_t salt_len, char *out, size_t outlen)
{
    unsigned char stored[SCRAM_KEY], server[SCRAM_KEY];
    char s64[B64_ENCODED_SIZE(USERS_SCRAM_SALT_MAX)], k1[B64_ENCODED_SIZE(SCRAM_KEY)],
         k2[B64_ENCODED_SIZE(SCRAM_KEY)];
    int n;

    if (iter < USERS_SCRAM_ITER_MIN || iter > USERS_SCRAM_ITER_MAX
        || salt_len < USERS_SCRAM_SALT_MIN || salt_len > USERS_SCRAM_SALT_MAX
        || scram_derive(password, iter, salt, salt_len, stored, server) != 0)
        return -1;
    b64_encode(salt, salt_len, s64);
    b64_encode(stored, SCRAM_KEY, k1);
    b64_encode(server, SCRAM_KEY, k2);
    n = snprintf(out, outlen, "%ld:%s:%s:%s", iter, s64, k1, k2);
    explicit_bzero(stored, sizeof(stored));
    explicit_bzero(server, sizeof(server));
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

int sasl_scram_secret(const char *password, long iter, char *out, size_t outlen)
{
    unsigned char salt[SCRAM_FAKE_SALT];

    if (random_bytes(salt, sizeof(salt)) != 0)
        return -1;
    return sasl_scram_secret_salt(password, iter, salt, sizeof(salt), out, outlen);
}

/* ---- the exchange ------------------------------------------------------ */

static void copy_params(struct sasl *s, const struct sasl_params *p)
{
    snprintf(s->hostname, sizeof(s->hostname), "%s",
             p && p->hostname && p->hostname[0] ? p->hostname : "localhost");
    if (p && p->cb_type && p->cb_data && p->cb_len > 0 && p->cb_len <= SASL_CB_MAX
        && strlen(p->cb_type) < sizeof(s->cb_type)) {
        snprintf(s->cb_type, sizeof(s->cb_type), "%s", p->cb_type);
        memcpy(s->cb_data, p->cb_data, p->cb_len);
        s->cb_len = p->cb_len;
    }
    s->final_as_challenge = p ? p->final_as_challenge : 0;
    if (p && p->fixed_nonce && strlen(p->fixed_nonce) < sizeof(s->fixed_nonce)) {
        snprintf(s->fixed_nonce, sizeof(s->fixed_nonce), "%s", p->fixed_nonce);
        s->have_fixed_nonce = 1;
    }
}

/* The first state of each mechanism, before any client data. */
static void first_state(struct sasl *s, struct sasl_result *r)
{
    switch (s->mech) {
    case M_PLAIN:
        s->state = ST_PLAIN;
        challenge_raw(s, r, "", 0);
        break;
    case M_LOGIN:
        s->state = ST_LOGIN_USER;
        challenge_raw(s, r, "Username:", 9);
        break;
    case M_CRAM:
        cram_start(s, r);
        break;
    default:
        s->state = ST_SCRAM_FIRST;
        challenge_raw(s, r, "", 0);
        break;
    }
}

struct sasl *sasl_start(const char *mech, const struct sasl_params *params,
                        const char *initial_response, const struct sasl_lookup *lookup,
                        struct sasl_result *r)
{
    enum mech m = mech_lookup(mech, params);
    struct sasl *s;

    res_init(NULL, r);
    r->status = SASL_FAIL;
    r->reason = m == M_NONE ? "unknown mechanism" : "out of memory";
    if (m == M_NONE || (s = calloc(1, sizeof(*s))) == NULL)
        return NULL;
    s->mech = m;
    copy_params(s, params);
    res_init(s, r);
    if (initial_response == NULL) {
        first_state(s, r);
        return s;
    }
    if (m == M_CRAM) {
        fail(s, r, "CRAM-MD5 takes no initial response");
        return s;
    }
    /* "=" is an empty initial response (RFC 4954 §4) */
    first_state(s, r);
    if (strcmp(initial_response, "=") == 0)
        sasl_step(s, lookup, "", 0, r);
    else if (initial_response[0] == '\0')
        fail(s, r, "empty initial response (want '=')");
    else
        sasl_step(s, lookup, initial_response, strlen(initial_response), r);
    return s;
}

void sasl_step(struct sasl *s, const struct sasl_lookup *lookup, const char *line, size_t len,
               struct sasl_result *r)
{
    res_init(s, r);
    if (s->state == ST_VERIFY || s->state == ST_DONE) {
        fail(s, r, "exchange already over");
        return;
    }
    if (decode_line(s, line, len, r) != 0)
        return;
    switch (s->state) {
    case ST_PLAIN:       plain_message(s, r); break;
    case ST_LOGIN_USER:  login_user(s, r); break;
    case ST_LOGIN_PASS:  login_pass(s, r); break;
    case ST_CRAM:        cram_response(s, lookup, r); break;
    case ST_SCRAM_FIRST: scram_first(s, lookup, r); break;
    case ST_SCRAM_FINAL: scram_final(s, r); break;
    case ST_SCRAM_ACK:   scram_ack(s, r); break;
    default:             fail(s, r, "bad state"); break;
    }
}

void sasl_verified(struct sasl *s, int ok, struct sasl_result *r)
{
    res_init(s, r);
    if (s->state != ST_VERIFY) {
        fail(s, r, "no verification pending");
        return;
    }
    if (ok)
        success(s, r);
    else
        fail(s, r, "wrong password or unknown user");
}

void sasl_free(struct sasl *s)
{
    if (s == NULL)
        return;
    explicit_bzero(s, sizeof(*s));
    free(s);
}
