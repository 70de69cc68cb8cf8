/*
 * mta/transport.h — outbound routing: which transport and next hop a
 * remote recipient domain takes, and which SASL credentials a next hop
 * wants.  Built from relayhost, transport_maps, default_transport and
 * smtp_sasl_password_maps (Postfix's names and file syntax) once per
 * configuration generation (in the pool; the files are read there), then
 * read-only.
 *
 * transport_maps files: lines "KEY VALUE", '#' comments.  KEY is a domain
 * (exact), ".domain" (its subdomains) or "*" (everything else).  VALUE is
 * "[host]:port" / "host" (smtp to that next hop), "smtp:NEXTHOP",
 * "smtp:" (smtp to the recipient domain's MX, bypassing relayhost),
 * "retry:[X.Y.Z ]TEXT" (defer with TEXT) or "error:[X.Y.Z ]TEXT" (bounce).
 * Without a match: default_transport (same VALUE syntax; "smtp" is
 * relayhost when set, else the domain's MX).
 * smtp_sasl_password_maps: lines "NEXTHOP user:password", looked up by the
 * next hop as routed ("[relay.example]:587"), then by its bare host.
 */
#ifndef HATO_TRANSPORT_H
#define HATO_TRANSPORT_H

#include <stddef.h>

struct hato_config;
struct transport;

enum transport_kind { TR_SMTP, TR_RETRY, TR_ERROR };

#define TRANSPORT_NEXTHOP_MAX 300

struct transport_route {
    enum transport_kind kind;
    char nexthop[TRANSPORT_NEXTHOP_MAX];   /* TR_SMTP: "[host]:port" or a domain */
    char dsn[16];                          /* TR_RETRY / TR_ERROR */
    char text[256];
};

/* Load every map cfg names.  NULL with "FILE:LINE: reason" in err. */
struct transport *transport_load(const struct hato_config *cfg, char *err, size_t errlen);
void transport_free(struct transport *t);
/* Route a (lower-case) recipient domain.  Always fills *r. */
void transport_route(const struct transport *t, const char *domain, struct transport_route *r);
/* "user" and "password" for a next hop, or 0 (none).  1 when found. */
int transport_sasl(const struct transport *t, const char *nexthop, const char **user,
                   const char **pass);

#endif
