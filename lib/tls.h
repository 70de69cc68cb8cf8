/*
 * lib/tls.h — TLS configuration: the server SSL_CTX (certificate chain and
 * key, protocol range, ciphers, session settings, per-name certificates by
 * SNI) held in a refcounted struct tls_conf, the client SSL_CTX, the
 * protocol-list syntax, the key-file permission check, and a summary of a
 * finished handshake for log lines and Received: headers.  Self-signed
 * keys and certificates are lib/tlscert.h.
 *
 * This module knows nothing of mail and never touches a socket: the
 * connection layer makes an SSL from tls_conf_ctx() and does the I/O.
 *
 * Defaults (sources named where they are set, in lib/tls.c):
 *   protocols  TLS 1.2 and 1.3 (">=TLSv1.2")        Mozilla "intermediate"
 *   TLS 1.2    Mozilla intermediate cipher list; TLS 1.3 suites OpenSSL's
 *              default, which is Mozilla's intermediate list
 *   groups     X25519, P-256, P-384; DHE with ffdhe2048 (dh auto)
 *   order      the client's cipher preference (Mozilla; Postfix's
 *              tls_preempt_cipherlist = no)
 *   sessions   server-side cache in this process and stateless tickets,
 *              both 3600 s (Postfix's smtpd_tls_session_cache_timeout);
 *              ticket keys are random per SSL_CTX, so a reload or a
 *              restart rotates them
 *   also       no renegotiation, no compression, an EOF without
 *              close_notify reads as EOF (SMTP, POP3 and IMAP frame their
 *              own ends, as Postfix does since 3.6)
 * SSL modes (partial writes, moving buffers, releasing idle buffers) are
 * left to the connection layer: it sets them on each SSL it makes.
 */
#ifndef HATO_TLS_H
#define HATO_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

/* Mozilla Server Side TLS 5.7, "Intermediate compatibility", TLS 1.2 part. */
extern const char tls_intermediate_ciphers[];

/* ---- protocol lists ---------------------------------------------------- */

/* tls_protocols: a list of tokens, either positive ("TLSv1.2 TLSv1.3"),
 * Postfix's exclusions ("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1") or Postfix
 * 3.6's bounds (">=TLSv1.2", "<=TLSv1.3"), mixed as Postfix allows: the
 * included set (all known versions when no token includes) minus the
 * excluded ones, within the bounds.  Names: SSLv2 SSLv3 TLSv1 TLSv1.1
 * TLSv1.2 TLSv1.3; SSLv2/SSLv3 may only be excluded.  The result must be
 * one unbroken range.  *min and *max get OpenSSL versions (*max 0 when
 * the range reaches TLSv1.3: whatever is newest).  n == 0 means
 * ">=TLSv1.2".  0, or -1 with a message. */
int tls_protocols_parse(char *const *tok, size_t n, int *min, int *max,
                        char *err, size_t errlen);
/* "TLSv1.2" for TLS1_2_VERSION; "unknown" for anything else. */
const char *tls_version_name(int version);

/* ---- server configuration ---------------------------------------------- */

struct tls_server_opts {
    const char *cert_file;      /* PEM: the certificate, then its chain */
    const char *key_file;       /* PEM private key */
    char *const *protocols;     /* tls_protocols tokens; 0 of them = default */
    size_t nprotocols;
    const char *ciphers;        /* TLS 1.2 and below; NULL/"" = Mozilla intermediate */
    const char *ciphersuites;   /* TLS 1.3; NULL/"" = OpenSSL's default */
    const char *sni_maps;       /* file of "name cert key" lines; NULL/"" = none */
};

/* A server configuration: the default SSL_CTX and, through it, the SNI
 * contexts.  Immutable once built, so it may be built in a worker and then
 * shared; the reference count is atomic.  A reload builds a new one and
 * drops the old: an SSL made from the old ctx keeps it (and the SNI
 * contexts, which the default ctx owns) alive by OpenSSL's own counts, so
 * a session never sees its certificate change under it. */
struct tls_conf;

/* Build it: every certificate and key read and checked against each other
 * (the errors name the file and the setting), every option applied.
 * NULL with a message.  Warnings (a key readable by other users, a
 * certificate expired or not yet valid) are kept for the caller to log. */
struct tls_conf *tls_conf_new(const struct tls_server_opts *o, char *err, size_t errlen);
struct tls_conf *tls_conf_ref(struct tls_conf *c);
/* Drop a reference and clear *cp; NULL is fine. */
void tls_conf_unref(struct tls_conf **cp);
/* The context to SSL_new() a server session from.  The SNI callback on it
 * switches a session to a per-name context when the client asks for a
 * name in tls_sni_maps (exact, else "*.parent" for one more label);
 * unknown names, or none, get the default certificate. */
SSL_CTX *tls_conf_ctx(const struct tls_conf *c);
size_t tls_conf_nwarnings(const struct tls_conf *c);
const char *tls_conf_warning(const struct tls_conf *c, size_t i);
/* SNI entries loaded (names, not distinct certificates). */
size_t tls_conf_nsni(const struct tls_conf *c);

/* ---- client configuration ---------------------------------------------- */

struct tls_client_opts {
    char *const *protocols;     /* as tls_protocols; 0 of them = ">=TLSv1.2" */
    size_t nprotocols;
    const char *ciphers;        /* NULL/"" = Mozilla intermediate */
    const char *ciphersuites;   /* NULL/"" = OpenSSL's default */
    int verify;                 /* 0 (default): opportunistic, like Postfix's "may" */
    const char *ca_file;        /* with verify: NULL = the system's trust store */
    const char *cert_file, *key_file;   /* optional client certificate */
};

/* A client context.  Without verify the peer's certificate is not
 * checked (the session is encrypted, not authenticated: Postfix's "may"
 * level, RFC 7435); with it, the chain and the name given to
 * tls_client_prepare() must check.  NULL with a message. */
SSL_CTX *tls_client_ctx_new(const struct tls_client_opts *o, char *err, size_t errlen);
/* Per session, before the handshake: send servername as SNI when it is a
 * DNS name (never an address literal, RFC 6066) and, if the ctx verifies,
 * expect the name or address in the certificate.  0, or -1 (out of memory,
 * or a verifying ctx without a usable name). */
int tls_client_prepare(SSL *ssl, const char *servername);

/* ---- checks and summaries ---------------------------------------------- */

/* A key file that users other than its owner can read (group or other
 * read bit on the file, and every directory above it searchable by them):
 * writes a warning into buf and returns 1; 0 when private (or when it
 * cannot tell: the load reports a missing file). */
int tls_key_file_warning(const char *path, char *buf, size_t len);
/* Whether name is a DNS name a certificate or SNI entry may carry:
 * letters, digits, '-' and '.', labels of 1..63, at most 253 octets;
 * with allow_wildcard, "*." before such a name. */
int tls_hostname_ok(const char *name, int allow_wildcard);

struct tls_info {
    char version[16];           /* "TLSv1.3" */
    char cipher[64];            /* "TLS_AES_256_GCM_SHA384" */
    int bits, alg_bits;         /* secret bits used / of the algorithm */
};
/* The negotiated parameters of a session after its handshake. */
void tls_info_get(const SSL *ssl, struct tls_info *out);
/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)", the
 * phrase Postfix puts inside a Received: header's comment. */
void tls_info_format(const SSL *ssl, char *buf, size_t len);

#endif
