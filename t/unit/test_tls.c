/*
 * t/unit/test_tls.c — lib/tls.c and lib/tlscert.c: real handshakes in
 * memory (a BIO pair between a server SSL from tls_conf_ctx() and a
 * client SSL) with keys and certificates made here: the protocol range
 * (TLS 1.1 refused, 1.2 and 1.3 served; tls_protocols in both syntaxes),
 * SNI picking the certificate (exact, case, one wildcard level, default
 * for the rest), a session outliving its tls_conf, key/certificate
 * mismatch refused, the key permission warning, the client context
 * (opportunistic and verifying), the handshake summary, and the
 * protocol-list parser.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "lib/tls.h"
#include "lib/tlscert.h"
#include "tap.h"

static char dir[] = "/tmp/test_tls.XXXXXX";
static char err[1024];

static const char *path_in(const char *name)
{
    static char buf[4][PATH_MAX];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
    return buf[i];
}

static void write_file(const char *path, const char *data, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    size_t len = strlen(data);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len || fchmod(fd, mode) < 0 || close(fd) < 0) {
        perror(path);
        exit(2);
    }
}

/* NAME.crt and NAME.key (0600) for host. */
static void make_pair(const char *name, const char *host, enum tls_key_type type)
{
    char *key, *cert, f[64];
    size_t kl, cl;
    if (tls_selfsigned(host, 30, type, &key, &kl, &cert, &cl, err, sizeof err) < 0) {
        fprintf(stderr, "tls_selfsigned: %s\n", err);
        exit(2);
    }
    snprintf(f, sizeof f, "%s.key", name);
    write_file(path_in(f), key, 0600);
    snprintf(f, sizeof f, "%s.crt", name);
    write_file(path_in(f), cert, 0644);
    free(key);
    free(cert);
}

static struct tls_conf *server(const char *name, char **protos, size_t nprotos,
                               const char *ciphers, const char *sni)
{
    char c[64], k[64];
    snprintf(c, sizeof c, "%s.crt", name);
    snprintf(k, sizeof k, "%s.key", name);
    struct tls_server_opts o = {
        .cert_file = path_in(c), .key_file = path_in(k), .protocols = protos,
        .nprotocols = nprotos, .ciphers = ciphers, .sni_maps = sni,
    };
    err[0] = '\0';
    return tls_conf_new(&o, err, sizeof err);
}

/* A client context at most `max` (and at least `min`) that will try
 * everything this OpenSSL has, so a refusal is the server's doing. */
static SSL_CTX *client(int min, int max)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    if (!c || !SSL_CTX_set_min_proto_version(c, min) || !SSL_CTX_set_max_proto_version(c, max) ||
        !SSL_CTX_set_cipher_list(c, "ALL:@SECLEVEL=0")) {
        fprintf(stderr, "client ctx\n");
        exit(2);
    }
    SSL_CTX_set_security_level(c, 0);
    return c;
}

struct hs {
    int ok, version;
    char cn[256], info[200];
};

/* Drive both ends over a BIO pair until both finish or one fails. */
static void handshake(SSL *s, SSL *c, struct hs *r)
{
    BIO *bs, *bc;
    int sd = 0, cd = 0, failed = 0;
    memset(r, 0, sizeof *r);
    if (!BIO_new_bio_pair(&bs, 0, &bc, 0))
        exit(2);
    SSL_set_bio(s, bs, bs);
    SSL_set_bio(c, bc, bc);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    for (int i = 0; i < 100 && !(sd && cd) && !failed; i++) {
        SSL *side[2] = { c, s };
        int *done[2] = { &cd, &sd };
        for (int j = 0; j < 2 && !failed; j++) {
            if (*done[j])
                continue;
            int rc = SSL_do_handshake(side[j]);
            if (rc == 1) {
                *done[j] = 1;
                continue;
            }
            int e = SSL_get_error(side[j], rc);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                failed = 1;
        }
    }
    ERR_clear_error();
    r->ok = sd && cd && !failed;
    if (!r->ok)
        return;
    r->version = SSL_version(c);
    X509 *x = SSL_get1_peer_certificate(c);
    if (x) {
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, r->cn, sizeof r->cn);
        X509_free(x);
    }
    tls_info_format(s, r->info, sizeof r->info);
}

/* One handshake against conf with a fresh client at [min, max]. */
static struct hs try_conf(const struct tls_conf *conf, int min, int max, const char *sni)
{
    struct hs r;
    SSL_CTX *cc = client(min, max);
    SSL *s = SSL_new(tls_conf_ctx(conf)), *c = SSL_new(cc);
    if (!s || !c)
        exit(2);
    if (sni)
        SSL_set_tlsext_host_name(c, sni);
    handshake(s, c, &r);
    SSL_free(s);
    SSL_free(c);
    SSL_CTX_free(cc);
    return r;
}

static void test_protocols(void)
{
    /* every cipher on the server too: the version floor must be what refuses 1.1 */
    struct tls_conf *c = server("def", NULL, 0, "ALL:@SECLEVEL=0", NULL);
    ok(c != NULL, "server ctx with the default protocols (%s)", err);
    if (!c)
        return;
    SSL_CTX_set_security_level(tls_conf_ctx(c), 0);
    struct hs r = try_conf(c, TLS1_VERSION, TLS1_1_VERSION, NULL);
    ok(!r.ok, "default: a client capped at TLS 1.1 is refused");
    r = try_conf(c, TLS1_2_VERSION, TLS1_2_VERSION, NULL);
    ok(r.ok && r.version == TLS1_2_VERSION, "default: TLS 1.2 is served");
    r = try_conf(c, TLS1_2_VERSION, TLS1_3_VERSION, NULL);
    ok(r.ok && r.version == TLS1_3_VERSION, "default: TLS 1.3 is served and preferred");
    ok(!strncmp(r.info, "TLSv1.3 with cipher TLS_", 24) && strstr(r.info, " bits)"),
       "summary: %s", r.info);
    tls_conf_unref(&c);
    ok(c == NULL, "unref clears the pointer");

    char *only13[] = { "TLSv1.3" };
    c = server("def", only13, 1, NULL, NULL);
    ok(c != NULL, "tls_protocols = TLSv1.3");
    if (c) {
        ok(!try_conf(c, TLS1_2_VERSION, TLS1_2_VERSION, NULL).ok, "TLSv1.3 only: 1.2 refused");
        ok(try_conf(c, TLS1_2_VERSION, TLS1_3_VERSION, NULL).ok, "TLSv1.3 only: 1.3 served");
        tls_conf_unref(&c);
    }
    char *postfix[] = { "!SSLv2", "!SSLv3", "!TLSv1", "!TLSv1.1" };
    c = server("def", postfix, 4, "ALL:@SECLEVEL=0", NULL);
    ok(c != NULL, "tls_protocols in Postfix's exclusion syntax");
    if (c) {
        SSL_CTX_set_security_level(tls_conf_ctx(c), 0);
        ok(!try_conf(c, TLS1_VERSION, TLS1_1_VERSION, NULL).ok, "exclusions: 1.1 refused");
        ok(try_conf(c, TLS1_2_VERSION, TLS1_2_VERSION, NULL).ok, "exclusions: 1.2 served");
        tls_conf_unref(&c);
    }
    char *bad[] = { "TLSv1.2", "TLSv9" };
    c = server("def", bad, 2, NULL, NULL);
    ok(c == NULL && strstr(err, "tls_protocols") && strstr(err, "TLSv9"),
       "an unknown protocol is refused: %s", err);
    c = server("def", NULL, 0, "NO-SUCH-CIPHER", NULL);
    ok(c == NULL && strstr(err, "tls_ciphers"), "an unusable tls_ciphers is refused: %s", err);
}

static void parse_is(const char *text, int min, int max)
{
    char buf[128], *tok[8], *save = NULL;
    size_t n = 0;
    int gmin = -1, gmax = -1;
    snprintf(buf, sizeof buf, "%s", text);
    for (char *t = strtok_r(buf, ", ", &save); t && n < 8; t = strtok_r(NULL, ", ", &save))
        tok[n++] = t;
    int rc = tls_protocols_parse(tok, n, &gmin, &gmax, err, sizeof err);
    ok(rc == 0 && gmin == min && gmax == max, "protocols '%s' -> %s..%s (%s)", text,
       tls_version_name(min), max ? tls_version_name(max) : "newest", rc ? err : "ok");
}

static void parse_fails(const char *text, const char *want)
{
    char buf[128], *tok[8], *save = NULL;
    size_t n = 0;
    int gmin, gmax;
    snprintf(buf, sizeof buf, "%s", text);
    for (char *t = strtok_r(buf, ", ", &save); t && n < 8; t = strtok_r(NULL, ", ", &save))
        tok[n++] = t;
    err[0] = '\0';
    int rc = tls_protocols_parse(tok, n, &gmin, &gmax, err, sizeof err);
    ok(rc < 0 && strstr(err, want), "protocols '%s' refused: %s", text, err);
}

static void test_parse(void)
{
    parse_is("", TLS1_2_VERSION, 0);
    parse_is(">=TLSv1.2", TLS1_2_VERSION, 0);
    parse_is("TLSv1.2 TLSv1.3", TLS1_2_VERSION, 0);
    parse_is("TLSv1.2", TLS1_2_VERSION, TLS1_2_VERSION);
    parse_is("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1", TLS1_2_VERSION, 0);
    parse_is("!SSLv2, !SSLv3", TLS1_VERSION, 0);
    parse_is("!TLSv1.3", TLS1_VERSION, TLS1_2_VERSION);
    parse_is(">=TLSv1.1 <=TLSv1.2", TLS1_1_VERSION, TLS1_2_VERSION);
    parse_is("tlsv1.3", TLS1_3_VERSION, 0);
    parse_fails("TLSv1 TLSv1.2", "unbroken");
    parse_fails("!TLSv1.2", "unbroken");
    parse_fails("SSLv3", "not supported");
    parse_fails("TLSv2", "unknown protocol");
    parse_fails("TLSv1.2 !TLSv1.2", "no protocol");
}

static void test_sni(void)
{
    char map[2048];
    snprintf(map, sizeof map,
             "# name cert key\n"
             "mail.example.com  ec.crt ec.key\n"
             "\n"
             "*.wild.test %s %s   # absolute paths\n"
             "MAIL2.Example.com ec.crt ec.key\n",
             path_in("wild.crt"), path_in("wild.key"));
    write_file(path_in("sni.map"), map, 0644);
    struct tls_conf *c = server("def", NULL, 0, NULL, path_in("sni.map"));
    ok(c != NULL, "server ctx with tls_sni_maps (%s)", err);
    if (!c)
        return;
    is_int(tls_conf_nsni(c), 3, "three SNI names");
    static const struct { const char *sni, *cn; } cases[] = {
        { NULL, "default.test" },
        { "mail.example.com", "mail.example.com" },
        { "MAIL.Example.COM", "mail.example.com" },
        { "mail2.example.com", "mail.example.com" },
        { "a.wild.test", "*.wild.test" },
        { "x-1.wild.test", "*.wild.test" },
        { "a.b.wild.test", "default.test" },   /* one label only */
        { "wild.test", "default.test" },
        { "other.test", "default.test" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct hs r = try_conf(c, TLS1_2_VERSION, TLS1_3_VERSION, cases[i].sni);
        ok(r.ok && !strcmp(r.cn, cases[i].cn), "SNI %s -> %s (got %s)",
           cases[i].sni ? cases[i].sni : "(none)", cases[i].cn, r.ok ? r.cn : "failure");
    }
    struct hs r = try_conf(c, TLS1_2_VERSION, TLS1_2_VERSION, "a.wild.test");
    ok(r.ok && !strcmp(r.cn, "*.wild.test"), "SNI over TLS 1.2 too");

    /* a session made before the reload finishes after its conf is gone */
    SSL_CTX *cc = client(TLS1_2_VERSION, TLS1_3_VERSION);
    SSL *s = SSL_new(tls_conf_ctx(c)), *cl = SSL_new(cc);
    tls_conf_unref(&c);
    SSL_set_tlsext_host_name(cl, "mail.example.com");
    handshake(s, cl, &r);
    ok(r.ok && !strcmp(r.cn, "mail.example.com"),
       "a session outlives its tls_conf and still uses the SNI table");
    SSL_free(s);
    SSL_free(cl);
    SSL_CTX_free(cc);

    write_file(path_in("sni-bad.map"), "mail.example.com ec.crt\n", 0644);
    c = server("def", NULL, 0, NULL, path_in("sni-bad.map"));
    ok(c == NULL && strstr(err, "sni-bad.map:1:"), "a short SNI line is refused: %s", err);
    write_file(path_in("sni-bad.map"), "a,b.test ec.crt ec.key\n", 0644);
    c = server("def", NULL, 0, NULL, path_in("sni-bad.map"));
    ok(c == NULL && strstr(err, "not a host name"), "a bad SNI name is refused: %s", err);
    write_file(path_in("sni-bad.map"), "a.test ec.crt ec.key\nb.test ec.crt nokey.key\n", 0644);
    c = server("def", NULL, 0, NULL, path_in("sni-bad.map"));
    ok(c == NULL && strstr(err, "sni-bad.map:2:") && strstr(err, "nokey.key"),
       "a missing SNI key is refused with its line: %s", err);
    write_file(path_in("sni-bad.map"), "a.test ec.crt ec.key\nA.test wild.crt wild.key\n", 0644);
    c = server("def", NULL, 0, NULL, path_in("sni-bad.map"));
    ok(c == NULL && strstr(err, "twice"), "a name listed twice is refused: %s", err);
}

static void test_mismatch(void)
{
    struct tls_server_opts o = { .cert_file = path_in("def.crt"), .key_file = path_in("other.key") };
    struct tls_conf *c = tls_conf_new(&o, err, sizeof err);
    ok(c == NULL && strstr(err, "other.key") && strstr(err, "match"),
       "a key of the same type that does not match is refused: %s", err);
    o.cert_file = path_in("ec.crt");
    o.key_file = path_in("def.key");
    c = tls_conf_new(&o, err, sizeof err);
    ok(c == NULL && strstr(err, "def.key") && strstr(err, "match"),
       "an RSA key for an EC certificate is refused: %s", err);
    o.cert_file = path_in("missing.crt");
    c = tls_conf_new(&o, err, sizeof err);
    ok(c == NULL && strstr(err, "missing.crt"), "a missing certificate is named: %s", err);
    write_file(path_in("junk.crt"), "not a certificate\n", 0644);
    o.cert_file = path_in("junk.crt");
    c = tls_conf_new(&o, err, sizeof err);
    ok(c == NULL && strstr(err, "junk.crt"), "a file without a certificate is refused: %s", err);
    o.cert_file = path_in("def.crt");
    o.key_file = "";
    c = tls_conf_new(&o, err, sizeof err);
    ok(c == NULL, "a certificate without a key file is refused: %s", err);
}

static int has_warning(const struct tls_conf *c, const char *what)
{
    for (size_t i = 0; i < tls_conf_nwarnings(c); i++)
        if (strstr(tls_conf_warning(c, i), what))
            return 1;
    return 0;
}

static void test_permissions(void)
{
    struct tls_conf *c = server("def", NULL, 0, NULL, NULL);
    ok(c && tls_conf_nwarnings(c) == 0, "a 0600 key: no warning");
    tls_conf_unref(&c);
    chmod(path_in("def.key"), 0644);
    c = server("def", NULL, 0, NULL, NULL);
    ok(c && has_warning(c, "readable by every user") && has_warning(c, "def.key") &&
       has_warning(c, "0644"), "a 0644 key: warning (%s)",
       c && tls_conf_nwarnings(c) ? tls_conf_warning(c, 0) : "none");
    tls_conf_unref(&c);
    chmod(path_in("def.key"), 0640);
    c = server("def", NULL, 0, NULL, NULL);
    ok(c && has_warning(c, "readable by its group"), "a 0640 key: warning for the group");
    tls_conf_unref(&c);
    chmod(path_in("def.key"), 0600);

    /* certbot keeps 0644 keys in a 0700 directory: nobody else can reach them */
    char sub[PATH_MAX], key[PATH_MAX], msg[512];
    snprintf(sub, sizeof sub, "%s/private", dir);
    snprintf(key, sizeof key, "%s/k.pem", sub);
    if (mkdir(sub, 0700) < 0)
        exit(2);
    write_file(key, "x", 0644);
    ok(tls_key_file_warning(key, msg, sizeof msg) == 0, "a 0644 key in a 0700 directory: none");
    chmod(sub, 0755);
    ok(tls_key_file_warning(key, msg, sizeof msg) == 1, "... in a 0755 one: %s", msg);
    unlink(key);
    rmdir(sub);
}

static void test_client(void)
{
    struct tls_conf *c = server("def", NULL, 0, NULL, NULL);
    struct tls_client_opts o = { .protocols = NULL };
    SSL_CTX *cc = tls_client_ctx_new(&o, err, sizeof err);
    ok(cc != NULL, "client ctx, defaults");
    is_int(cc ? SSL_CTX_get_min_proto_version(cc) : -1, TLS1_2_VERSION, "client: min TLS 1.2");
    if (!c || !cc)
        return;
    struct hs r;
    SSL *s = SSL_new(tls_conf_ctx(c)), *cl = SSL_new(cc);
    ok(tls_client_prepare(cl, "127.0.0.1") == 0 &&
       SSL_get_servername(cl, TLSEXT_NAMETYPE_host_name) == NULL, "no SNI for an IPv4 address");
    ok(tls_client_prepare(cl, "::1") == 0 &&
       SSL_get_servername(cl, TLSEXT_NAMETYPE_host_name) == NULL, "no SNI for an IPv6 address");
    ok(tls_client_prepare(cl, "default.test") == 0 &&
       !strcmp(SSL_get_servername(cl, TLSEXT_NAMETYPE_host_name), "default.test"),
       "client prepare sends SNI for a name");
    handshake(s, cl, &r);
    ok(r.ok && r.version == TLS1_3_VERSION, "opportunistic client accepts a self-signed server");
    SSL_free(s);
    SSL_free(cl);
    SSL_CTX_free(cc);

    o.verify = 1;
    o.ca_file = path_in("def.crt");
    cc = tls_client_ctx_new(&o, err, sizeof err);
    ok(cc != NULL, "verifying client ctx (%s)", err);
    const char *names[] = { "default.test", "wrong.test" };
    for (int i = 0; cc && i < 2; i++) {
        s = SSL_new(tls_conf_ctx(c));
        cl = SSL_new(cc);
        tls_client_prepare(cl, names[i]);
        handshake(s, cl, &r);
        ok(r.ok == (i == 0), "verifying client, name %s: %s", names[i],
           i == 0 ? "accepted" : "refused");
        SSL_free(s);
        SSL_free(cl);
    }
    SSL_CTX_free(cc);
    tls_conf_unref(&c);
}

/* A second connection resumes the first one's session, within the
 * advertised lifetime; also after SNI moved it to another context. */
static void test_resumption(void)
{
    struct tls_conf *c = server("def", NULL, 0, NULL, path_in("sni.map"));
    ok(c != NULL, "server for resumption (%s)", err);
    if (!c)
        return;
    const char *names[] = { NULL, "mail.example.com" };
    for (int n = 0; n < 2; n++) {
        SSL_CTX *cc = client(TLS1_2_VERSION, TLS1_2_VERSION);
        SSL_SESSION *sess = NULL;
        int reused = -1;
        for (int i = 0; i < 2; i++) {
            struct hs r;
            SSL *s = SSL_new(tls_conf_ctx(c)), *cl = SSL_new(cc);
            if (names[n])
                SSL_set_tlsext_host_name(cl, names[n]);
            if (sess)
                SSL_set_session(cl, sess);
            handshake(s, cl, &r);
            if (i == 0)
                sess = r.ok ? SSL_get1_session(cl) : NULL;
            else
                reused = r.ok ? SSL_session_reused(cl) : -1;
            /* a session freed without a shutdown is not resumable */
            SSL_set_shutdown(s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
            SSL_set_shutdown(cl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
            SSL_free(s);
            SSL_free(cl);
        }
        ok(sess && SSL_SESSION_get_ticket_lifetime_hint(sess) == 3600,
           "ticket lifetime 3600 s (%s)",
           names[n] ? names[n] : "default");
        ok(reused == 1, "the second connection resumes (%s)", names[n] ? names[n] : "default");
        SSL_SESSION_free(sess);
        SSL_CTX_free(cc);
    }
    tls_conf_unref(&c);
}

static int tickets_seen;

static int count_ticket(SSL *ssl, SSL_SESSION *sess)
{
    (void)ssl;
    (void)sess;
    tickets_seen++;
    return 0;                    /* not kept */
}

/* TLS 1.3: one session ticket per handshake (OpenSSL sends two unless
 * told): each is a sealed session, a record and a write per connection. */
static void test_tickets(void)
{
    struct tls_conf *c = server("def", NULL, 0, NULL, NULL);
    ok(c != NULL, "server for tickets (%s)", err);
    if (!c)
        return;
    SSL_CTX *cc = client(TLS1_3_VERSION, TLS1_3_VERSION);
    SSL_CTX_set_session_cache_mode(cc, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(cc, count_ticket);
    SSL *s = SSL_new(tls_conf_ctx(c)), *cl = SSL_new(cc);
    struct hs r;
    tickets_seen = 0;
    handshake(s, cl, &r);
    char b;
    int rc = SSL_read(cl, &b, 1);                /* takes the tickets, then wants more */
    ok(r.ok && rc <= 0 && SSL_get_error(cl, rc) == SSL_ERROR_WANT_READ, "TLS 1.3 handshake");
    is_int(tickets_seen, 1, "the server sent one session ticket");
    SSL_free(s);
    SSL_free(cl);
    SSL_CTX_free(cc);
    tls_conf_unref(&c);
}

static void test_selfsigned(void)
{
    char *key, *cert;
    size_t kl, cl;
    ok(tls_selfsigned("a,DNS:evil.test", 30, TLS_KEY_RSA2048, &key, &kl, &cert, &cl, err,
                      sizeof err) < 0 && key == NULL, "a host name with a comma is refused");
    ok(tls_selfsigned("ok.test", 0, TLS_KEY_RSA2048, &key, &kl, &cert, &cl, err,
                      sizeof err) < 0, "0 days is refused");
    ok(tls_hostname_ok("mx-1.example.com", 0) && !tls_hostname_ok("-a.example", 0) &&
       !tls_hostname_ok("a..b", 0) && !tls_hostname_ok("*.a.b", 0) &&
       tls_hostname_ok("*.a.b", 1) && !tls_hostname_ok("a.*.b", 1), "host name syntax");
}

static void cleanup(void)
{
    static const char *files[] = { "def.crt", "def.key", "ec.crt", "ec.key", "wild.crt",
        "wild.key", "other.crt", "other.key", "sni.map", "sni-bad.map", "junk.crt" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(path_in(files[i]));
    rmdir(dir);
}

int main(void)
{
    if (!mkdtemp(dir) || chmod(dir, 0755) < 0) {
        perror("mkdtemp");
        return 2;
    }
    make_pair("def", "default.test", TLS_KEY_RSA2048);
    make_pair("other", "default.test", TLS_KEY_RSA2048);
    make_pair("ec", "mail.example.com", TLS_KEY_EC_P256);
    make_pair("wild", "*.wild.test", TLS_KEY_RSA2048);
    test_parse();
    test_protocols();
    test_sni();
    test_mismatch();
    test_permissions();
    test_client();
    test_resumption();
    test_tickets();
    test_selfsigned();
    cleanup();
    return tap_done();
}
