/*
 * tools/hatoctl_tls.h — `hatoctl tls …` commands (tools/hatoctl_tls.c).
 */
#ifndef HATO_HATOCTL_TLS_H
#define HATO_HATOCTL_TLS_H

struct hato_config;

/* `tls selfsigned HOSTNAME [--days N] [--type rsa|ec] [--key FILE]
 * [--cert FILE] [--force]`.  argv holds what follows "selfsigned".
 * Exit code, or -2 for a usage error (hatoctl prints the usage). */
int hatoctl_tls_selfsigned(const struct hato_config *cfg, int argc, char **argv);

#endif
