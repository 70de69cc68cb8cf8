/*
 * lib/tls.c — server and client SSL_CTX building (lib/tls.h): protocol
 * lists, certificate and key loading and matching, the settings every
 * context shares, the SNI table and its callback, the key permission
 * check, handshake summaries.  It never reads or writes a connection.
 *
 * Ownership: struct tls_conf holds one reference to the default SSL_CTX.
 * The SNI table hangs on that ctx as ex_data and is freed with it (by the
 * ex_data free callback), and holds one reference to each SNI ctx; an SSL
 * holds its initial ctx (as session ctx) and the one SNI switched it to.
 * So a tls_conf may be dropped while sessions made from it still run.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "lib/fsutil.h"
#include "lib/tls.h"

/* Mozilla Server Side TLS guidelines 5.7 (github.com/mozilla/server-side-tls,
 * Server_Side_TLS.mediawiki at 7a81eec, 2023-05-16), "Intermediate
 * compatibility (recommended)": TLS 1.2 cipher suites, in its order.  Its
 * TLS 1.3 suites (AES-128-GCM, AES-256-GCM, CHACHA20-POLY1305) are
 * OpenSSL 3's default set, so TLS 1.3 is left at the default. */
const char tls_intermediate_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";
/* Same source: "TLS curves: X25519, prime256v1, secp384r1"; DH parameters
 * ffdhe2048 (RFC 7919), which OpenSSL's dh auto picks for 2048-bit keys. */
#define TLS_GROUPS "X25519:prime256v1:secp384r1"
/* Postfix's smtpd_tls_session_cache_timeout default. */
#define TLS_SESSION_TIMEOUT 3600
/* Sessions kept in the server cache per context (OpenSSL's default is
 * 20480); a full cache drops the oldest. */
#define TLS_SESSION_CACHE_SIZE 10240
#define TLS_SID_CTX "hato"
#define TLS_TICKETS 1
#define SNI_MAP_MAX (16 * 1024 * 1024)
#define TLS_WARN_MAX 32

/* ---------------------------------------------------------------- errors */

/* "what: OpenSSL's first queued reason" into err; clears the queue. */
static void ssl_err(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_peek_error();     /* the first reason is the cause */
    char buf[256] = "";
    if (e) {
        const char *r = ERR_reason_error_string(e);
        if (r)
            snprintf(buf, sizeof buf, "%s", r);
        else
            ERR_error_string_n(e, buf, sizeof buf);
    }
    snprintf(err, errlen, "%s%s%s", what, buf[0] ? ": " : "", buf);
    ERR_clear_error();
}

/* ------------------------------------------------------------ protocols */

static const struct { const char *name; int version; } protos[] = {
    { "SSLv2", 0 },               /* never supported: may only be excluded */
    { "SSLv3", SSL3_VERSION },    /* not built into OpenSSL 3 by default: likewise */
    { "TLSv1", TLS1_VERSION },
    { "TLSv1.1", TLS1_1_VERSION },
    { "TLSv1.2", TLS1_2_VERSION },
    { "TLSv1.3", TLS1_3_VERSION },
};
#define NPROTOS (sizeof protos / sizeof protos[0])
#define PROTO_FIRST_USABLE 2      /* index of TLSv1 */
#define PROTO_DEFAULT_MIN 4       /* index of TLSv1.2 */

static int proto_index(const char *name)
{
    for (size_t i = 0; i < NPROTOS; i++)
        if (!strcasecmp(name, protos[i].name))
            return (int)i;
    if (!strcasecmp(name, "TLSv1.0"))
        return PROTO_FIRST_USABLE;
    return -1;
}

const char *tls_version_name(int version)
{
    for (size_t i = 1; i < NPROTOS; i++)
        if (protos[i].version == version)
            return protos[i].name;
    return "unknown";
}

int tls_protocols_parse(char *const *tok, size_t n, int *min, int *max,
                        char *err, size_t errlen)
{
    int inc[NPROTOS] = { 0 }, exc[NPROTOS] = { 0 }, any_inc = 0;
    int lo = PROTO_FIRST_USABLE, hi = (int)NPROTOS - 1;
    if (n == 0)
        lo = PROTO_DEFAULT_MIN;
    for (size_t i = 0; i < n; i++) {
        const char *t = tok[i];
        int kind = 0;                  /* 0 include, 1 exclude, 2 >=, 3 <= */
        if (t[0] == '!')
            kind = 1, t++;
        else if (!strncmp(t, ">=", 2))
            kind = 2, t += 2;
        else if (!strncmp(t, "<=", 2))
            kind = 3, t += 2;
        int p = proto_index(t);
        if (p < 0) {
            snprintf(err, errlen, "unknown protocol '%s' (SSLv2, SSLv3, TLSv1, TLSv1.1, "
                     "TLSv1.2, TLSv1.3, each optionally after !, >= or <=)", tok[i]);
            return -1;
        }
        if (kind != 1 && p < PROTO_FIRST_USABLE) {
            snprintf(err, errlen, "'%s': %s is not supported (only as !%s)",
                     tok[i], protos[p].name, protos[p].name);
            return -1;
        }
        if (kind == 0)
            inc[p] = any_inc = 1;
        else if (kind == 1)
            exc[p] = 1;
        else if (kind == 2 && p > lo)
            lo = p;
        else if (kind == 3 && p < hi)
            hi = p;
    }
    int first = -1, last = -1;
    for (int p = PROTO_FIRST_USABLE; p < (int)NPROTOS; p++) {
        int on = (any_inc ? inc[p] : 1) && !exc[p] && p >= lo && p <= hi;
        if (!on)
            continue;
        if (last >= 0 && last != p - 1) {
            snprintf(err, errlen, "the protocols must be one unbroken range "
                     "(%s and %s without %s)", protos[last].name, protos[p].name,
                     protos[last + 1].name);
            return -1;
        }
        if (first < 0)
            first = p;
        last = p;
    }
    if (first < 0) {
        snprintf(err, errlen, "no protocol left");
        return -1;
    }
    *min = protos[first].version;
    *max = last == (int)NPROTOS - 1 ? 0 : protos[last].version;
    return 0;
}

/* ------------------------------------------------------------ names */

int tls_hostname_ok(const char *name, int allow_wildcard)
{
    if (allow_wildcard && name[0] == '*' && name[1] == '.')
        name += 2;
    size_t len = strlen(name), label = 0;
    if (len == 0 || len > 253)
        return 0;
    for (const char *p = name; ; p++) {
        if (*p == '.' || *p == '\0') {
            if (label == 0 || label > 63 || p[-1] == '-')
                return 0;
            if (*p == '\0')
                return 1;
            label = 0;
            continue;
        }
        int c = (unsigned char)*p;
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && label > 0))
            return 0;
        label++;
    }
}

/* ------------------------------------------------------------ permissions */

/* Can someone other than the owner reach (search) every directory above
 * the resolved path?  xbits: S_IXOTH, or S_IXGRP|S_IXOTH. */
static int dirs_searchable(const char *real, mode_t xbits)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", real);
    for (char *slash = strrchr(dir, '/'); slash; slash = strrchr(dir, '/')) {
        if (slash == dir)
            slash[1] = '\0';
        else
            *slash = '\0';
        struct stat st;
        if (stat(dir, &st) < 0 || !(st.st_mode & xbits))
            return 0;
        if (slash == dir)
            break;
    }
    return 1;
}

int tls_key_file_warning(const char *path, char *buf, size_t len)
{
    char real[PATH_MAX];
    struct stat st;
    if (!realpath(path, real) || stat(real, &st) < 0)
        return 0;
    const char *who = NULL;
    if ((st.st_mode & S_IROTH) && dirs_searchable(real, S_IXOTH))
        who = "every user";
    else if ((st.st_mode & S_IRGRP) && dirs_searchable(real, S_IXGRP | S_IXOTH))
        who = "its group";
    if (!who)
        return 0;
    snprintf(buf, len, "private key %s is readable by %s (mode %04o): "
             "chmod 600 it (owner: the user hatod runs as)", path, who,
             (unsigned)(st.st_mode & 07777));
    return 1;
}

/* ------------------------------------------------------------ contexts */

/* Settings every context of one configuration shares. */
struct ctx_settings {
    int min, max;
    const char *ciphers, *ciphersuites;
};

static int apply_settings(SSL_CTX *ctx, const struct ctx_settings *s, int server,
                          char *err, size_t errlen)
{
    if (!SSL_CTX_set_min_proto_version(ctx, s->min) ||
        !SSL_CTX_set_max_proto_version(ctx, s->max)) {
        ssl_err(err, errlen, "tls_protocols: OpenSSL refuses this range");
        return -1;
    }
    if (!SSL_CTX_set_cipher_list(ctx, s->ciphers && *s->ciphers ? s->ciphers
                                                                  : tls_intermediate_ciphers)) {
        ssl_err(err, errlen, "tls_ciphers: no usable cipher");
        return -1;
    }
    if (s->ciphersuites && *s->ciphersuites && !SSL_CTX_set_ciphersuites(ctx, s->ciphersuites)) {
        ssl_err(err, errlen, "tls_ciphersuites: no usable TLS 1.3 suite");
        return -1;
    }
    if (!SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) || !SSL_CTX_set_dh_auto(ctx, 1)) {
        ssl_err(err, errlen, "cannot set the key exchange groups");
        return -1;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                             SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (server) {
        SSL_CTX_clear_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(ctx, TLS_SESSION_CACHE_SIZE);
        SSL_CTX_set_timeout(ctx, TLS_SESSION_TIMEOUT);
        /* TLS 1.3: one ticket per handshake, not OpenSSL's two: a client
         * resumes its next connection with it and gets a new one there;
         * each ticket is a sealed session, a record and a write */
        if (!SSL_CTX_set_num_tickets(ctx, TLS_TICKETS)) {
            ssl_err(err, errlen, "cannot set the number of session tickets");
            return -1;
        }
        /* the chain is what tls_cert_file holds: without this OpenSSL runs
         * a certificate verification per handshake looking for more in an
         * empty store whenever the file holds the leaf alone */
        SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
        if (!SSL_CTX_set_session_id_context(ctx, (const unsigned char *)TLS_SID_CTX,
                                            sizeof TLS_SID_CTX - 1)) {
            ssl_err(err, errlen, "cannot set the session id context");
            return -1;
        }
    }
    return 0;
}

/* Warnings gathered while building; at most TLS_WARN_MAX are kept. */
struct warnings {
    char *w[TLS_WARN_MAX];
    size_t n;
};

static void warn_add(struct warnings *w, const char *text)
{
    if (w->n < TLS_WARN_MAX) {
        char *s = strdup(text);
        if (s)
            w->w[w->n++] = s;
    }
}

static void warnings_free(struct warnings *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->w[i]);
    w->n = 0;
}

static void check_validity(SSL_CTX *ctx, const char *cert_file, struct warnings *w)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    char msg[PATH_MAX + 128];
    if (!x)
        return;
    if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0) {
        snprintf(msg, sizeof msg, "certificate %s has expired", cert_file);
        warn_add(w, msg);
    } else if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0) {
        snprintf(msg, sizeof msg, "certificate %s is not valid yet", cert_file);
        warn_add(w, msg);
    }
}

/* OpenSSL says "system lib" for a file it cannot open: say why. */
static int readable(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

/* Load a certificate chain and its key into ctx; they must match. */
static int load_pair(SSL_CTX *ctx, const char *cert, const char *key, struct warnings *w,
                     char *err, size_t errlen)
{
    char what[PATH_MAX + 64], msg[PATH_MAX + 160];
    ERR_clear_error();
    if (!cert || !*cert || !key || !*key) {
        snprintf(err, errlen, "a certificate needs both a certificate file and a key file");
        return -1;
    }
    if (readable(cert, err, errlen) < 0 || readable(key, err, errlen) < 0)
        return -1;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(what, sizeof what, "%s: cannot load the certificate chain", cert);
        ssl_err(err, errlen, what);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        snprintf(what, sizeof what, "%s: cannot load the private key (or it does not "
                 "match %s)", key, cert);
        ssl_err(err, errlen, what);
        return -1;
    }
    /* A key of another type than the certificate's loads into another
     * slot without complaint: this check is what catches it. */
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "%s: the private key does not match the certificate in %s",
                 key, cert);
        ERR_clear_error();
        return -1;
    }
    if (tls_key_file_warning(key, msg, sizeof msg))
        warn_add(w, msg);
    check_validity(ctx, cert, w);
    return 0;
}

static SSL_CTX *server_ctx_new(const struct ctx_settings *s, const char *cert, const char *key,
                               struct warnings *w, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_err(err, errlen, "cannot create a TLS context");
        return NULL;
    }
    if (apply_settings(ctx, s, 1, err, errlen) < 0 ||
        load_pair(ctx, cert, key, w, err, errlen) < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* ------------------------------------------------------------ SNI table */

struct sni_entry {
    char *name;                 /* lower case; "*.example.com" for a wildcard */
    char *cert, *key;           /* resolved paths */
    SSL_CTX *ctx;               /* shared by entries with the same pair: one ref each */
    int line;
};

struct sni_table {
    struct sni_entry *e;        /* sorted by name */
    size_t n;
};

static void sni_table_free(struct sni_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->e[i].name);
        free(t->e[i].cert);
        free(t->e[i].key);
        SSL_CTX_free(t->e[i].ctx);
    }
    free(t->e);
    free(t);
}

static int sni_index = -1;
static pthread_once_t sni_once = PTHREAD_ONCE_INIT;

static void sni_exdata_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                            long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    sni_table_free(ptr);
}

static void sni_index_init(void)
{
    sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, sni_exdata_free);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct sni_entry *)a)->name, ((const struct sni_entry *)b)->name);
}

static int by_pair(const void *a, const void *b)
{
    const struct sni_entry *x = a, *y = b;
    int c = strcmp(x->cert, y->cert);
    return c ? c : strcmp(x->key, y->key);
}

static const struct sni_entry *sni_find(const struct sni_table *t, const char *name)
{
    struct sni_entry k = { .name = (char *)name };
    return bsearch(&k, t->e, t->n, sizeof *t->e, by_name);
}

/* The ctx for a client's server name: exact, then "*." + its parent. */
static SSL_CTX *sni_lookup(const struct sni_table *t, const char *servername)
{
    char name[256];
    size_t len = strlen(servername);
    if (len && servername[len - 1] == '.')
        len--;
    if (len == 0 || len > 253)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        char c = servername[i];
        name[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    name[len] = '\0';
    const struct sni_entry *e = sni_find(t, name);
    if (e)
        return e->ctx;
    char *dot = strchr(name, '.');
    if (!dot || dot == name || !dot[1])
        return NULL;
    dot[-1] = '*';                      /* "*.parent", over the first label's end */
    e = sni_find(t, dot - 1);
    return e ? e->ctx : NULL;
}

static int sni_callback(SSL *ssl, int *alert, void *arg)
{
    const struct sni_table *t = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!t || !name)
        return SSL_TLSEXT_ERR_OK;       /* the default certificate */
    SSL_CTX *ctx = sni_lookup(t, name);
    if (ctx && ctx != SSL_get_SSL_CTX(ssl) && !SSL_set_SSL_CTX(ssl, ctx)) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
}

/* A path from the map: absolute, or relative to the map's directory. */
static char *map_path(const char *mapdir, const char *p)
{
    char buf[PATH_MAX];
    int n = p[0] == '/' ? snprintf(buf, sizeof buf, "%s", p)
                        : snprintf(buf, sizeof buf, "%s/%s", mapdir, p);
    if (n < 0 || (size_t)n >= sizeof buf)
        return NULL;
    return strdup(buf);
}

/* Parse one line "name cert key" into e.  1 entry, 0 blank/comment, -1 error. */
static int sni_parse_line(char *line, int lineno, const char *path, const char *mapdir,
                          struct sni_entry *e, char *err, size_t errlen)
{
    char *f[4], *save = NULL;
    size_t nf = 0;
    char *hash = strchr(line, '#');
    if (hash)
        *hash = '\0';
    for (char *tok = strtok_r(line, " \t\r", &save); tok; tok = strtok_r(NULL, " \t\r", &save))
        if (nf < 4)
            f[nf++] = tok;
        else
            nf = 5;
    if (nf == 0)
        return 0;
    if (nf != 3) {
        snprintf(err, errlen, "%s:%d: want \"name certificate-file key-file\"", path, lineno);
        return -1;
    }
    for (char *p = f[0]; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    size_t nl = strlen(f[0]);
    if (nl > 1 && f[0][nl - 1] == '.')
        f[0][nl - 1] = '\0';
    if (!tls_hostname_ok(f[0], 1)) {
        snprintf(err, errlen, "%s:%d: '%s' is not a host name (or *.name)", path, lineno, f[0]);
        return -1;
    }
    e->name = strdup(f[0]);
    e->cert = map_path(mapdir, f[1]);
    e->key = map_path(mapdir, f[2]);
    e->line = lineno;
    if (!e->name || !e->cert || !e->key) {
        snprintf(err, errlen, "%s:%d: out of memory or path too long", path, lineno);
        return -1;
    }
    return 1;
}

static struct sni_table *sni_read(const char *path, char *err, size_t errlen)
{
    char *data, mapdir[PATH_MAX];
    size_t len, cap = 0;
    if (fs_read_file(path, SNI_MAP_MAX, &data, &len) < 0) {
        snprintf(err, errlen, "tls_sni_maps: %s: %s", path, strerror(errno));
        return NULL;
    }
    fs_dirname(path, mapdir, sizeof mapdir);
    struct sni_table *t = calloc(1, sizeof *t);
    int lineno = 0, rc = t ? 0 : -1;
    if (!t)
        snprintf(err, errlen, "out of memory");
    for (char *line = t ? data : NULL, *next; rc >= 0 && line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        if (t->n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            struct sni_entry *ne = realloc(t->e, nc * sizeof *ne);
            if (!ne) {
                snprintf(err, errlen, "out of memory");
                rc = -1;
                break;
            }
            t->e = ne;
            cap = nc;
        }
        memset(&t->e[t->n], 0, sizeof t->e[t->n]);
        rc = sni_parse_line(line, lineno, path, mapdir, &t->e[t->n], err, errlen);
        if (rc != 0)
            t->n++;                     /* also a half-filled entry on error: freed below */
    }
    free(data);
    if (rc < 0) {
        sni_table_free(t);
        return NULL;
    }
    return t;
}

/* Load each distinct (cert, key) pair once; entries share its ctx. */
static int sni_load(struct sni_table *t, const char *path, const struct ctx_settings *s,
                    struct warnings *w, char *err, size_t errlen)
{
    char e2[1024];
    qsort(t->e, t->n, sizeof *t->e, by_pair);
    for (size_t i = 0; i < t->n; i++) {
        if (i > 0 && by_pair(&t->e[i - 1], &t->e[i]) == 0) {
            if (!SSL_CTX_up_ref(t->e[i - 1].ctx)) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            t->e[i].ctx = t->e[i - 1].ctx;
            continue;
        }
        t->e[i].ctx = server_ctx_new(s, t->e[i].cert, t->e[i].key, w, e2, sizeof e2);
        if (!t->e[i].ctx) {
            snprintf(err, errlen, "tls_sni_maps: %s:%d: %s", path, t->e[i].line, e2);
            return -1;
        }
    }
    qsort(t->e, t->n, sizeof *t->e, by_name);
    for (size_t i = 1; i < t->n; i++)
        if (!strcmp(t->e[i - 1].name, t->e[i].name)) {
            int a = t->e[i - 1].line, b = t->e[i].line;
            snprintf(err, errlen, "tls_sni_maps: %s: '%s' is listed twice (lines %d and %d)",
                     path, t->e[i].name, a < b ? a : b, a < b ? b : a);
            return -1;
        }
    return 0;
}

/* ------------------------------------------------------------ tls_conf */

struct tls_conf {
    atomic_int refs;
    SSL_CTX *ctx;
    struct warnings warn;
    size_t nsni;
};

/* Read and load the SNI map, then give the table to ctx. */
static int attach_sni(SSL_CTX *ctx, const char *path, const struct ctx_settings *s,
                      struct tls_conf *c, char *err, size_t errlen)
{
    pthread_once(&sni_once, sni_index_init);
    if (sni_index < 0) {
        snprintf(err, errlen, "cannot register the SNI table with OpenSSL");
        return -1;
    }
    struct sni_table *t = sni_read(path, err, errlen);
    if (!t)
        return -1;
    if (sni_load(t, path, s, &c->warn, err, errlen) < 0 ||
        !SSL_CTX_set_ex_data(ctx, sni_index, t)) {
        if (!err[0])
            snprintf(err, errlen, "out of memory");
        sni_table_free(t);
        return -1;
    }
    c->nsni = t->n;                     /* ctx owns t from here on */
    SSL_CTX_set_tlsext_servername_callback(ctx, sni_callback);
    SSL_CTX_set_tlsext_servername_arg(ctx, t);
    return 0;
}

struct tls_conf *tls_conf_new(const struct tls_server_opts *o, char *err, size_t errlen)
{
    struct ctx_settings s = { .ciphers = o->ciphers, .ciphersuites = o->ciphersuites };
    char e2[1024];
    err[0] = '\0';
    if (tls_protocols_parse(o->protocols, o->nprotocols, &s.min, &s.max, e2, sizeof e2) < 0) {
        snprintf(err, errlen, "tls_protocols: %s", e2);
        return NULL;
    }
    struct tls_conf *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&c->refs, 1);
    c->ctx = server_ctx_new(&s, o->cert_file, o->key_file, &c->warn, err, errlen);
    if (c->ctx && o->sni_maps && *o->sni_maps &&
        attach_sni(c->ctx, o->sni_maps, &s, c, err, errlen) < 0) {
        SSL_CTX_free(c->ctx);
        c->ctx = NULL;
    }
    if (!c->ctx) {
        warnings_free(&c->warn);
        free(c);
        return NULL;
    }
    return c;
}

struct tls_conf *tls_conf_ref(struct tls_conf *c)
{
    atomic_fetch_add(&c->refs, 1);
    return c;
}

void tls_conf_unref(struct tls_conf **cp)
{
    struct tls_conf *c = *cp;
    *cp = NULL;
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    SSL_CTX_free(c->ctx);               /* sessions still using it keep it */
    warnings_free(&c->warn);
    free(c);
}

SSL_CTX *tls_conf_ctx(const struct tls_conf *c)
{
    return c->ctx;
}

size_t tls_conf_nwarnings(const struct tls_conf *c)
{
    return c->warn.n;
}

const char *tls_conf_warning(const struct tls_conf *c, size_t i)
{
    return i < c->warn.n ? c->warn.w[i] : NULL;
}

size_t tls_conf_nsni(const struct tls_conf *c)
{
    return c->nsni;
}

/* ------------------------------------------------------------ client */

SSL_CTX *tls_client_ctx_new(const struct tls_client_opts *o, char *err, size_t errlen)
{
    struct ctx_settings s = { .ciphers = o->ciphers, .ciphersuites = o->ciphersuites };
    char e2[1024];
    if (tls_protocols_parse(o->protocols, o->nprotocols, &s.min, &s.max, e2, sizeof e2) < 0) {
        snprintf(err, errlen, "tls_protocols: %s", e2);
        return NULL;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        ssl_err(err, errlen, "cannot create a TLS context");
        return NULL;
    }
    if (apply_settings(ctx, &s, 0, err, errlen) < 0)
        goto fail;
    if (o->verify) {
        int ok = o->ca_file && *o->ca_file ? SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL)
                                           : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            ssl_err(err, errlen, "cannot load the trusted certificates");
            goto fail;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (o->cert_file && *o->cert_file) {
        struct warnings w = { .n = 0 };
        int rc = load_pair(ctx, o->cert_file, o->key_file, &w, err, errlen);
        warnings_free(&w);
        if (rc < 0)
            goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* An IPv4 or IPv6 address literal, which SNI must not carry (RFC 6066 §3). */
static int is_address(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

int tls_client_prepare(SSL *ssl, const char *servername)
{
    int verify = (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) != 0;
    if (servername && is_address(servername)) {
        if (verify && !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), servername))
            return -1;
        return 0;                       /* no SNI for an address */
    }
    if (!servername || !tls_hostname_ok(servername, 0))
        return verify ? -1 : 0;         /* nothing to check the certificate against */
    if (!SSL_set_tlsext_host_name(ssl, servername))
        return -1;
    if (verify) {
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (!SSL_set1_host(ssl, servername))
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ summaries */

void tls_info_get(const SSL *ssl, struct tls_info *out)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    memset(out, 0, sizeof *out);
    snprintf(out->version, sizeof out->version, "%s", SSL_get_version(ssl));
    snprintf(out->cipher, sizeof out->cipher, "%s", c ? SSL_CIPHER_get_name(c) : "none");
    if (c)
        out->bits = SSL_CIPHER_get_bits(c, &out->alg_bits);
}

void tls_info_format(const SSL *ssl, char *buf, size_t len)
{
    struct tls_info i;
    tls_info_get(ssl, &i);
    snprintf(buf, len, "%s with cipher %s (%d/%d bits)", i.version, i.cipher, i.bits,
             i.alg_bits);
}
