/*
 * mta/config.h — hato.conf: the schema of every key (DESIGN.md's contract
 * plus the Postfix parameters hato honours), and the typed view the daemon
 * and the tools use.  Parsing is lib/conf.c; this file owns names,
 * defaults and cross-key checks.
 */
#ifndef HATO_CONFIG_H
#define HATO_CONFIG_H

#include <stddef.h>

#ifndef SYSCONFDIR
#define SYSCONFDIR "/usr/local/etc"
#endif
#define HATO_DEFAULT_CONFIG SYSCONFDIR "/hato/hato.conf"

enum tls_policy { TLS_NONE = 0, TLS_MAY, TLS_ENCRYPT };
enum bare_lf_policy { BARE_LF_NORMALIZE = 0, BARE_LF_REJECT };
/* smtp_tls_fallback: after a failed TLS handshake under smtp_tls_security_level = may */
enum { SMTP_FALLBACK_PLAINTEXT = 0, SMTP_FALLBACK_NEXT_ATTEMPT, SMTP_FALLBACK_NONE };
#define SMTP_TIMEOUTS 10                /* smtp_*_timeout keys, in struct smtp_client_timeouts order */

struct hato_config {
    struct conf *conf;              /* owns every string below */
    const char *path;

    const char *myhostname, *mydomain, *mail_name, *smtpd_banner;
    const char *config_directory, *state_directory, *run_user, *log_file;
    char **local_domains; size_t nlocal_domains;   /* lower-cased */
    char **smtp_listen; size_t nsmtp_listen;
    char **submission_listen; size_t nsubmission_listen;
    char **smtps_listen; size_t nsmtps_listen;
    char **pop3_listen; size_t npop3_listen;
    char **pop3s_listen; size_t npop3s_listen;
    char **imap_listen; size_t nimap_listen;
    char **imaps_listen; size_t nimaps_listen;
    enum tls_policy smtp_tls, submission_tls, pop3_tls, imap_tls;
    const char *pop3d_banner;            /* after "+OK " */
    long long pop3d_timeout;             /* seconds idle in a POP3 session */
    long long pop3_apop;                 /* bool: APOP timestamp in the banner */
    char **auth_plaintext_clients; size_t nauth_plaintext_clients;  /* plaintext logins w/o TLS */
    long long pop_before_smtp_time;      /* seconds a POP3 login allows relay; 0 = off */
    const char *tls_cert_file, *tls_key_file;   /* "" = no TLS */
    char **tls_protocols; size_t ntls_protocols;  /* lib/tls.h syntax */
    const char *tls_ciphers, *tls_ciphersuites;   /* "" = lib/tls.c defaults */
    const char *tls_sni_maps;                     /* "name cert key" lines; "" = none */
    const char *users_file;
    char **alias_maps; size_t nalias_maps;
    char **relay_clients; size_t nrelay_clients;
    const char *resolver_config;
    const char *relayhost;
    char **transport_maps; size_t ntransport_maps;
    const char *recipient_delimiter;
    const char *postmaster_recipient;    /* "" = the first user of the first local domain */
    char **defer_transports; size_t ndefer_transports;

    long long message_size_limit;        /* bytes; 0 = none */
    long long default_quota;             /* bytes, users without quota=; 0 = unlimited */
    long long quota_full_permanent;      /* bool: over quota is 552 5.2.2 / a bounce */
    long long quota_warning_percent;     /* warning mail at this usage (1..100); 0 = off */
    long long header_size_limit;         /* bytes */
    long long smtpd_recipient_limit;
    long long smtpd_hard_error_limit;
    long long smtpd_client_connection_count_limit;  /* 0 = none */
    long long smtpd_client_connection_rate_limit;   /* per anvil_rate_time_unit; 0 = none */
    long long smtpd_client_ipv6_prefix;  /* IPv6 clients counted per this prefix (0..128) */
    long long smtpd_min_data_rate;       /* octets/s a DATA sender must keep up; 0 = off */
    long long smtpd_sasl_auth_enable;    /* AUTH offered on smtp_listen too */
    long long submission_auth_required;  /* submission_auth = required: MAIL needs AUTH */
    long long smtpd_tls_auth_only;       /* AUTH only over TLS */
    char **auth_exempt_clients; size_t nauth_exempt_clients;   /* need no AUTH to submit */
    const char *sender_login_maps;       /* file of "address login, ..." grants; "" = none */
    long long allow_null_sender_auth;    /* MAIL FROM:<> allowed after AUTH */
    long long auth_failure_limit;        /* failed logins before a lockout; 0 = never */
    long long auth_failure_window;       /* seconds the failures are counted over */
    long long auth_lockout_time;         /* seconds a locked-out client waits */
    long long anvil_rate_time_unit;      /* seconds */
    long long smtpd_timeout;             /* seconds */
    long long smtpd_pipelining_limit;    /* queued commands before reading stops */
    enum bare_lf_policy smtpd_forbid_bare_newline;
    long long smtp_client_port;
    /* outbound: mta/remote.c and mta/transport.h */
    const char *default_transport;       /* "smtp", "retry:TEXT", "error:TEXT", "smtp:[host]:port" */
    const char *smtp_sasl_password_maps; /* file of "[host]:port user:password"; "" = none */
    long long smtp_sasl_tls_required;    /* AUTH only over TLS */
    enum tls_policy smtp_tls_security_level;
    long long smtp_tls_fallback;         /* SMTP_FALLBACK_*: a failed TLS handshake under may */
    long long smtp_client_concurrency;   /* outbound sessions in all */
    long long default_destination_concurrency_limit;
    long long initial_destination_concurrency;
    long long smtp_destination_recipient_limit;
    long long smtp_connection_cache_time_limit;   /* seconds an idle session is kept */
    long long smtp_mx_address_limit, smtp_mx_session_limit;
    long long smtp_address_preference;   /* 0 any, 1 ipv6, 2 ipv4 (enum mx_family) */
    long long smtp_timeouts[SMTP_TIMEOUTS];         /* seconds: connect, helo, starttls, mail, rcpt,
                                            data_init, data_xfer, data_done, rset, quit */
    long long minimal_backoff_time, maximal_backoff_time;
    long long maximal_queue_lifetime, bounce_queue_lifetime;
    long long delay_warning_time;        /* 0 = no notices */
    int bounce_return_full;              /* bounce_return_original = full */
    char **retry_schedule; size_t nretry_schedule;  /* times, optional */
    long long queue_run_delay;           /* seconds between deferred-queue scans */
    long long worker_threads;
    long long queue_group_commit;        /* bool */
    long long local_delivery_batch;      /* bool: share one flush across deliveries */
    long long shutdown_timeout;          /* seconds to finish in-flight work on SIGTERM */
    char **test_filter_hold; size_t ntest_filter_hold;   /* test-only: filters/hold.h */
    long long test_filter_hold_ms;
};

/* Load and check a config file.  0, or -1 with "FILE:LINE: key: reason". */
int config_load(const char *path, struct hato_config *cfg, char *err, size_t errlen);
void config_free(struct hato_config *cfg);
/* Paths under state_directory. */
void config_path(const struct hato_config *cfg, const char *sub, char *buf, size_t len);
/* The config file to use: -f/-C argument, else $HATO_CONFIG, else the default. */
const char *config_default_path(const char *given);

#endif
