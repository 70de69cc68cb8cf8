/*
 * mta/config.c — hato.conf's schema (names, types, defaults), the typed
 * view of it (struct hato_config) and the checks that span keys.  The file
 * syntax itself is lib/conf.c.  Used by hatod and by the tools.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/conf.h"
#include "lib/iplist.h"
#include "lib/tls.h"
#include "mta/config.h"

#define HOSTNAME_MAX 256

/* Every key hatod knows.  Postfix names keep Postfix meanings and units. */
static const struct conf_def schema[] = {
    { "myhostname", CT_STR, NULL, NULL },          /* default: gethostname() */
    { "mydomain", CT_STR, NULL, NULL },            /* default: myhostname minus its first label */
    { "mail_name", CT_STR, "hato", NULL },
    { "smtpd_banner", CT_STR, "$myhostname ESMTP $mail_name", NULL },
    { "config_directory", CT_STR, NULL, NULL },    /* default: the config file's directory */
    { "state_directory", CT_STR, "/var/lib/hato", NULL },
    { "run_user", CT_STR, "hato", NULL },
    { "log_file", CT_STR, "", NULL },
    { "local_domains", CT_LIST, "$mydomain", NULL },
    { "smtp_listen", CT_LIST, "0.0.0.0:25, [::]:25", NULL },
    { "submission_listen", CT_LIST, "0.0.0.0:587, [::]:587", NULL },
    { "smtps_listen", CT_LIST, "", NULL },
    { "pop3_listen", CT_LIST, "", NULL },
    { "pop3s_listen", CT_LIST, "", NULL },
    { "imap_listen", CT_LIST, "", NULL },
    { "imaps_listen", CT_LIST, "", NULL },
    { "smtp_tls", CT_CHOICE, "none", "none,may,encrypt" },
    { "submission_tls", CT_CHOICE, "none", "none,may,encrypt" },
    { "pop3_tls", CT_CHOICE, "none", "none,may,encrypt" },
    { "imap_tls", CT_CHOICE, "none", "none,may,encrypt" },
    { "pop3d_banner", CT_STR, "$mail_name POP3 server ready", NULL },
    { "pop3d_timeout", CT_TIME, "600s", NULL },        /* RFC 1939 §3: at least 10 minutes */
    { "pop3_apop", CT_BOOL, "no", NULL },
    { "auth_plaintext_clients", CT_LIST, "127.0.0.0/8, ::1", NULL },   /* Dovecot: localhost is secure */
    { "pop_before_smtp_time", CT_TIME, "0", NULL },    /* 0 = off */
    { "tls_cert_file", CT_STR, "", NULL },
    { "tls_key_file", CT_STR, "", NULL },
    { "tls_protocols", CT_LIST, ">=TLSv1.2", NULL },   /* lib/tls.h: tls_protocols_parse */
    { "tls_ciphers", CT_STR, "", NULL },               /* "": Mozilla intermediate */
    { "tls_ciphersuites", CT_STR, "", NULL },          /* "": OpenSSL's TLS 1.3 default */
    { "tls_sni_maps", CT_STR, "", NULL },
    { "users_file", CT_STR, "$config_directory/users", NULL },
    { "alias_maps", CT_LIST, "$config_directory/aliases", NULL },
    { "relay_clients", CT_LIST, "127.0.0.0/8, ::1", NULL },
    { "resolver_config", CT_STR, "", NULL },
    { "relayhost", CT_STR, "", NULL },
    { "transport_maps", CT_LIST, "", NULL },
    { "recipient_delimiter", CT_STR, "+", NULL },
    { "postmaster_recipient", CT_STR, "", NULL },  /* "": the first user of the first local domain */
    { "defer_transports", CT_LIST, "", NULL },
    { "message_size_limit", CT_SIZE, "10240000", NULL },
    { "default_quota", CT_SIZE, "0", NULL },        /* users without quota=; 0 = unlimited */
    { "quota_full_permanent", CT_BOOL, "no", NULL },  /* over quota: 552 5.2.2 and bounce, not 452 4.2.2 and defer */
    { "quota_warning_percent", CT_INT, "0", NULL },   /* warning mail at this usage; 0 = off */
    { "header_size_limit", CT_SIZE, "102400", NULL },
    { "smtpd_recipient_limit", CT_INT, "1000", NULL },
    { "smtpd_hard_error_limit", CT_INT, "20", NULL },
    { "smtpd_client_connection_count_limit", CT_INT, "50", NULL },
    { "smtpd_client_connection_rate_limit", CT_INT, "0", NULL },
    { "smtpd_client_ipv6_prefix", CT_INT, "64", NULL },
    { "smtpd_sasl_auth_enable", CT_BOOL, "no", NULL },    /* AUTH on smtp_listen too */
    { "submission_auth", CT_CHOICE, "required", "required,optional" },
    { "smtpd_tls_auth_only", CT_BOOL, "yes", NULL },
    { "auth_exempt_clients", CT_LIST, "", NULL },
    { "sender_login_maps", CT_STR, "", NULL },         /* mta/sender_login.h; "" = none */
    { "allow_null_sender_auth", CT_BOOL, "no", NULL },  /* MAIL FROM:<> after AUTH */
    { "auth_failure_limit", CT_INT, "10", NULL },      /* auth/throttle.h */
    { "auth_failure_window", CT_TIME, "10m", NULL },
    { "auth_lockout_time", CT_TIME, "30m", NULL },
    { "anvil_rate_time_unit", CT_TIME, "60s", NULL },
    { "smtpd_timeout", CT_TIME, "300s", NULL },
    { "smtpd_min_data_rate", CT_INT, "500", NULL },   /* octets/s in DATA; 0 = off */
    { "smtpd_pipelining_limit", CT_INT, "100", NULL },
    { "smtpd_forbid_bare_newline", CT_CHOICE, "normalize", "normalize,yes,no" },
    { "smtp_client_port", CT_INT, "25", NULL },
    /* outbound (mta/remote.c, mta/transport.h); Postfix's names and defaults */
    { "default_transport", CT_STR, "smtp", NULL },
    { "smtp_sasl_password_maps", CT_STR, "", NULL },
    { "smtp_sasl_tls_required", CT_BOOL, "yes", NULL },
    { "smtp_tls_security_level", CT_CHOICE, "may", "none,may,encrypt" },
    { "smtp_tls_fallback", CT_CHOICE, "plaintext", "plaintext,next_attempt,none" },
    { "smtp_client_concurrency", CT_INT, "100", NULL },
    { "default_destination_concurrency_limit", CT_INT, "20", NULL },
    { "initial_destination_concurrency", CT_INT, "5", NULL },
    { "smtp_destination_recipient_limit", CT_INT, "50", NULL },
    { "smtp_connection_cache_time_limit", CT_TIME, "2s", NULL },
    { "smtp_mx_address_limit", CT_INT, "5", NULL },
    { "smtp_mx_session_limit", CT_INT, "2", NULL },
    { "smtp_address_preference", CT_CHOICE, "any", "any,ipv6,ipv4" },
    { "smtp_connect_timeout", CT_TIME, "30s", NULL },
    { "smtp_helo_timeout", CT_TIME, "300s", NULL },
    { "smtp_starttls_timeout", CT_TIME, "300s", NULL },
    { "smtp_mail_timeout", CT_TIME, "300s", NULL },
    { "smtp_rcpt_timeout", CT_TIME, "300s", NULL },
    { "smtp_data_init_timeout", CT_TIME, "120s", NULL },
    { "smtp_data_xfer_timeout", CT_TIME, "180s", NULL },
    { "smtp_data_done_timeout", CT_TIME, "600s", NULL },
    { "smtp_rset_timeout", CT_TIME, "20s", NULL },
    { "smtp_quit_timeout", CT_TIME, "300s", NULL },
    { "minimal_backoff_time", CT_TIME, "300s", NULL },
    { "maximal_backoff_time", CT_TIME, "4000s", NULL },
    { "maximal_queue_lifetime", CT_TIME, "5d", NULL },
    { "bounce_queue_lifetime", CT_TIME, "5d", NULL },
    { "delay_warning_time", CT_TIME, "0h", NULL },
    { "bounce_return_original", CT_CHOICE, "headers", "headers,full" },  /* DSN RET overrides */
    { "retry_schedule", CT_LIST, "", NULL },
    { "queue_run_delay", CT_TIME, "300s", NULL },
    { "worker_threads", CT_INT, "4", NULL },
    { "queue_group_commit", CT_BOOL, "yes", NULL },
    { "local_delivery_batch", CT_BOOL, "yes", NULL },
    { "shutdown_timeout", CT_TIME, "30s", NULL },
    /* test-only (filters/hold.h): hold the answer at these phases */
    { "test_filter_hold", CT_LIST, "", NULL },
    { "test_filter_hold_ms", CT_INT, "1000", NULL },
};
#define NSCHEMA (sizeof schema / sizeof schema[0])

const char *config_default_path(const char *given)
{
    if (given && *given)
        return given;
    const char *env = getenv("HATO_CONFIG");
    if (env && *env)
        return env;
    return HATO_DEFAULT_CONFIG;
}

void config_path(const struct hato_config *cfg, const char *sub, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", cfg->state_directory, sub);
}

/* Defaults that depend on the machine or on the file's location. */
struct dyn_defaults {
    char host[HOSTNAME_MAX];
    char domain[HOSTNAME_MAX];
    char confdir[4096];
};

static void compute_defaults(const char *path, struct dyn_defaults *dd)
{
    if (gethostname(dd->host, sizeof dd->host) < 0 || !dd->host[0])
        snprintf(dd->host, sizeof dd->host, "localhost");
    dd->host[sizeof dd->host - 1] = '\0';
    const char *dot = strchr(dd->host, '.');
    snprintf(dd->domain, sizeof dd->domain, "%s", dot && dot[1] ? dot + 1 : dd->host);
    snprintf(dd->confdir, sizeof dd->confdir, "%s", path ? path : HATO_DEFAULT_CONFIG);
    char *slash = strrchr(dd->confdir, '/');
    if (slash == dd->confdir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dd->confdir, sizeof dd->confdir, ".");
}

static const struct conf_value *val(const struct hato_config *c, const char *name)
{
    const struct conf_value *v = conf_get(c->conf, name);
    if (!v)
        abort();                    /* a name missing from schema[]: a bug */
    return v;
}

static const char *str(const struct hato_config *c, const char *name)
{
    return val(c, name)->str;
}

static long long num(const struct hato_config *c, const char *name)
{
    return val(c, name)->num;
}

static char **list(const struct hato_config *c, const char *name, size_t *n)
{
    const struct conf_value *v = val(c, name);
    *n = v->nlist;
    return v->list;
}

/* struct hato_config.smtp_timeouts[], in struct smtp_client_timeouts order */
static const char *const smtp_timeout_keys[SMTP_TIMEOUTS] = { "smtp_connect_timeout",
    "smtp_helo_timeout", "smtp_starttls_timeout", "smtp_mail_timeout", "smtp_rcpt_timeout",
    "smtp_data_init_timeout", "smtp_data_xfer_timeout", "smtp_data_done_timeout",
    "smtp_rset_timeout", "smtp_quit_timeout" };

static void fill(struct hato_config *c)
{
    c->myhostname = str(c, "myhostname");
    c->mydomain = str(c, "mydomain");
    c->mail_name = str(c, "mail_name");
    c->smtpd_banner = str(c, "smtpd_banner");
    c->config_directory = str(c, "config_directory");
    c->state_directory = str(c, "state_directory");
    c->run_user = str(c, "run_user");
    c->log_file = str(c, "log_file");
    c->local_domains = list(c, "local_domains", &c->nlocal_domains);
    c->smtp_listen = list(c, "smtp_listen", &c->nsmtp_listen);
    c->submission_listen = list(c, "submission_listen", &c->nsubmission_listen);
    c->smtps_listen = list(c, "smtps_listen", &c->nsmtps_listen);
    c->pop3_listen = list(c, "pop3_listen", &c->npop3_listen);
    c->pop3s_listen = list(c, "pop3s_listen", &c->npop3s_listen);
    c->imap_listen = list(c, "imap_listen", &c->nimap_listen);
    c->imaps_listen = list(c, "imaps_listen", &c->nimaps_listen);
    c->smtp_tls = (enum tls_policy)num(c, "smtp_tls");
    c->submission_tls = (enum tls_policy)num(c, "submission_tls");
    c->pop3_tls = (enum tls_policy)num(c, "pop3_tls");
    c->imap_tls = (enum tls_policy)num(c, "imap_tls");
    c->pop3d_banner = str(c, "pop3d_banner");
    c->pop3d_timeout = num(c, "pop3d_timeout");
    c->pop3_apop = num(c, "pop3_apop");
    c->auth_plaintext_clients = list(c, "auth_plaintext_clients", &c->nauth_plaintext_clients);
    c->pop_before_smtp_time = num(c, "pop_before_smtp_time");
    c->tls_cert_file = str(c, "tls_cert_file");
    c->tls_key_file = str(c, "tls_key_file");
    c->tls_protocols = list(c, "tls_protocols", &c->ntls_protocols);
    c->tls_ciphers = str(c, "tls_ciphers");
    c->tls_ciphersuites = str(c, "tls_ciphersuites");
    c->tls_sni_maps = str(c, "tls_sni_maps");
    c->users_file = str(c, "users_file");
    c->alias_maps = list(c, "alias_maps", &c->nalias_maps);
    c->relay_clients = list(c, "relay_clients", &c->nrelay_clients);
    c->resolver_config = str(c, "resolver_config");
    c->relayhost = str(c, "relayhost");
    c->transport_maps = list(c, "transport_maps", &c->ntransport_maps);
    c->recipient_delimiter = str(c, "recipient_delimiter");
    c->postmaster_recipient = str(c, "postmaster_recipient");
    c->defer_transports = list(c, "defer_transports", &c->ndefer_transports);
    c->message_size_limit = num(c, "message_size_limit");
    c->default_quota = num(c, "default_quota");
    c->quota_full_permanent = num(c, "quota_full_permanent");
    c->quota_warning_percent = num(c, "quota_warning_percent");
    c->header_size_limit = num(c, "header_size_limit");
    c->smtpd_recipient_limit = num(c, "smtpd_recipient_limit");
    c->smtpd_hard_error_limit = num(c, "smtpd_hard_error_limit");
    c->smtpd_client_connection_count_limit = num(c, "smtpd_client_connection_count_limit");
    c->smtpd_client_connection_rate_limit = num(c, "smtpd_client_connection_rate_limit");
    c->smtpd_client_ipv6_prefix = num(c, "smtpd_client_ipv6_prefix");
    c->smtpd_min_data_rate = num(c, "smtpd_min_data_rate");
    c->smtpd_sasl_auth_enable = num(c, "smtpd_sasl_auth_enable");
    c->submission_auth_required = num(c, "submission_auth") == 0;
    c->smtpd_tls_auth_only = num(c, "smtpd_tls_auth_only");
    c->auth_exempt_clients = list(c, "auth_exempt_clients", &c->nauth_exempt_clients);
    c->sender_login_maps = str(c, "sender_login_maps");
    c->allow_null_sender_auth = num(c, "allow_null_sender_auth");
    c->auth_failure_limit = num(c, "auth_failure_limit");
    c->auth_failure_window = num(c, "auth_failure_window");
    c->auth_lockout_time = num(c, "auth_lockout_time");
    c->anvil_rate_time_unit = num(c, "anvil_rate_time_unit");
    c->smtpd_timeout = num(c, "smtpd_timeout");
    c->smtpd_pipelining_limit = num(c, "smtpd_pipelining_limit");
    /* "no" (Postfix's old behaviour) is served as normalize: bare LF is
     * accepted as a line end, and it still never ends the data */
    c->smtpd_forbid_bare_newline = num(c, "smtpd_forbid_bare_newline") == 1 ? BARE_LF_REJECT
                                                                            : BARE_LF_NORMALIZE;
    c->smtp_client_port = num(c, "smtp_client_port");
    c->default_transport = str(c, "default_transport");
    c->smtp_sasl_password_maps = str(c, "smtp_sasl_password_maps");
    c->smtp_sasl_tls_required = num(c, "smtp_sasl_tls_required");
    c->smtp_tls_security_level = (enum tls_policy)num(c, "smtp_tls_security_level");
    c->smtp_tls_fallback = num(c, "smtp_tls_fallback");
    c->smtp_client_concurrency = num(c, "smtp_client_concurrency");
    c->default_destination_concurrency_limit = num(c, "default_destination_concurrency_limit");
    c->initial_destination_concurrency = num(c, "initial_destination_concurrency");
    c->smtp_destination_recipient_limit = num(c, "smtp_destination_recipient_limit");
    c->smtp_connection_cache_time_limit = num(c, "smtp_connection_cache_time_limit");
    c->smtp_mx_address_limit = num(c, "smtp_mx_address_limit");
    c->smtp_mx_session_limit = num(c, "smtp_mx_session_limit");
    c->smtp_address_preference = num(c, "smtp_address_preference");
    for (int i = 0; i < SMTP_TIMEOUTS; i++)
        c->smtp_timeouts[i] = num(c, smtp_timeout_keys[i]);
    c->minimal_backoff_time = num(c, "minimal_backoff_time");
    c->maximal_backoff_time = num(c, "maximal_backoff_time");
    c->maximal_queue_lifetime = num(c, "maximal_queue_lifetime");
    c->bounce_queue_lifetime = num(c, "bounce_queue_lifetime");
    c->delay_warning_time = num(c, "delay_warning_time");
    c->bounce_return_full = num(c, "bounce_return_original") == 1;
    c->retry_schedule = list(c, "retry_schedule", &c->nretry_schedule);
    c->queue_run_delay = num(c, "queue_run_delay");
    c->worker_threads = num(c, "worker_threads");
    c->queue_group_commit = num(c, "queue_group_commit");
    c->local_delivery_batch = num(c, "local_delivery_batch");
    c->shutdown_timeout = num(c, "shutdown_timeout");
    c->test_filter_hold = list(c, "test_filter_hold", &c->ntest_filter_hold);
    c->test_filter_hold_ms = num(c, "test_filter_hold_ms");
}

/* "FILE:LINE: key: reason" for a value that failed a cross-key check. */
static int bad(const struct hato_config *c, const char *key, char *err, size_t errlen,
               const char *fmt, const char *what)
{
    int line = val(c, key)->line;
    char msg[512];
    snprintf(msg, sizeof msg, fmt, what);
    if (line > 0)
        snprintf(err, errlen, "%s:%d: %s: %s", c->path, line, key, msg);
    else
        snprintf(err, errlen, "%s: %s (default): %s", c->path, key, msg);
    return -1;
}

/* "host:port" or "[v6]:port" with a numeric port. */
static int listen_item_ok(const char *item)
{
    const char *colon = strrchr(item, ':');
    if (!colon || colon == item || !colon[1])
        return 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535)
        return 0;
    if (item[0] == '[') {
        if (colon[-1] != ']')
            return 0;
        char a[64];
        size_t n = (size_t)(colon - 1 - (item + 1));
        if (n >= sizeof a)
            return 0;
        memcpy(a, item + 1, n);
        a[n] = '\0';
        struct in6_addr in6;
        return inet_pton(AF_INET6, a, &in6) == 1;
    }
    return 1;   /* a host name or IPv4: resolved when binding */
}

static int check_listen(const struct hato_config *c, const char *key, char *err, size_t errlen)
{
    size_t n;
    char **l = list(c, key, &n);
    for (size_t i = 0; i < n; i++)
        if (!listen_item_ok(l[i]))
            return bad(c, key, err, errlen, "bad listen address '%s' (want address:port)", l[i]);
    return 0;
}

/* The TLS keys' syntax; the files are read when the TLS configuration is
 * built (mta/generation.c), which names them in its errors. */
static int check_tls(const struct hato_config *c, char *err, size_t errlen)
{
    char e[512];
    int min, max;
    if (tls_protocols_parse(c->tls_protocols, c->ntls_protocols, &min, &max, e, sizeof e) < 0)
        return bad(c, "tls_protocols", err, errlen, "%s", e);
    if (c->tls_cert_file[0] && !c->tls_key_file[0])
        return bad(c, "tls_key_file", err, errlen, "%s", "required when tls_cert_file is set");
    if (c->tls_key_file[0] && !c->tls_cert_file[0])
        return bad(c, "tls_cert_file", err, errlen, "%s", "required when tls_key_file is set");
    if (c->tls_sni_maps[0] && !c->tls_cert_file[0])
        return bad(c, "tls_sni_maps", err, errlen, "%s",
                   "needs tls_cert_file and tls_key_file (the certificate for other names)");
    /* a service that can only work with TLS needs a certificate */
    if (c->nsmtps_listen && !c->tls_cert_file[0])
        return bad(c, "smtps_listen", err, errlen, "%s", "implicit TLS needs tls_cert_file");
    if (c->smtp_tls == TLS_ENCRYPT && !c->tls_cert_file[0])
        return bad(c, "smtp_tls", err, errlen, "%s", "encrypt needs tls_cert_file");
    if (c->submission_tls == TLS_ENCRYPT && !c->tls_cert_file[0])
        return bad(c, "submission_tls", err, errlen, "%s", "encrypt needs tls_cert_file");
    if (c->npop3s_listen && !c->tls_cert_file[0])
        return bad(c, "pop3s_listen", err, errlen, "%s", "implicit TLS needs tls_cert_file");
    if (c->pop3_tls == TLS_ENCRYPT && !c->tls_cert_file[0])
        return bad(c, "pop3_tls", err, errlen, "%s", "encrypt needs tls_cert_file");
    return 0;
}

/* The outbound limits: each a positive count within reason. */
static int check_outbound(const struct hato_config *c, char *err, size_t errlen)
{
    static const struct { const char *key; long long max; } lim[] = {
        { "smtp_client_concurrency", 10000 }, { "default_destination_concurrency_limit", 1000 },
        { "initial_destination_concurrency", 1000 }, { "smtp_destination_recipient_limit", 10000 },
        { "smtp_mx_address_limit", 32 }, { "smtp_mx_session_limit", 32 },
    };
    for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++) {
        long long v = num(c, lim[i].key);
        if (v < 1 || v > lim[i].max) {
            char why[64];
            snprintf(why, sizeof why, "must be 1..%lld", lim[i].max);
            return bad(c, lim[i].key, err, errlen, "%s", why);
        }
    }
    for (int i = 0; i < SMTP_TIMEOUTS; i++)
        if (c->smtp_timeouts[i] <= 0 || c->smtp_timeouts[i] > 86400)
            return bad(c, smtp_timeout_keys[i], err, errlen, "%s", "must be 1s..1d");
    return 0;
}

static int check(struct hato_config *c, char *err, size_t errlen)
{
    static const char *const listens[] = { "smtp_listen", "submission_listen", "smtps_listen",
        "pop3_listen", "pop3s_listen", "imap_listen", "imaps_listen" };
    for (size_t i = 0; i < sizeof listens / sizeof listens[0]; i++)
        if (check_listen(c, listens[i], err, errlen) < 0)
            return -1;
    if (c->nlocal_domains == 0)
        return bad(c, "local_domains", err, errlen, "%s", "at least one domain is required");
    for (size_t i = 0; i < c->nlocal_domains; i++)
        for (char *p = c->local_domains[i]; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    if (c->state_directory[0] != '/')
        return bad(c, "state_directory", err, errlen, "'%s' is not an absolute path", c->state_directory);
    char ipe[256];
    struct iplist *il = iplist_new(c->relay_clients, c->nrelay_clients, ipe, sizeof ipe);
    if (!il)
        return bad(c, "relay_clients", err, errlen, "%s", ipe);
    iplist_free(il);
    il = iplist_new(c->auth_exempt_clients, c->nauth_exempt_clients, ipe, sizeof ipe);
    if (!il)
        return bad(c, "auth_exempt_clients", err, errlen, "%s", ipe);
    iplist_free(il);
    il = iplist_new(c->auth_plaintext_clients, c->nauth_plaintext_clients, ipe, sizeof ipe);
    if (!il && c->nauth_plaintext_clients)
        return bad(c, "auth_plaintext_clients", err, errlen, "%s", ipe);
    iplist_free(il);
    if (c->pop3d_timeout <= 0)
        return bad(c, "pop3d_timeout", err, errlen, "%s", "must be > 0");
    if (c->pop_before_smtp_time < 0)
        return bad(c, "pop_before_smtp_time", err, errlen, "%s", "must be >= 0 (0: off)");
    for (size_t i = 0; i < c->nretry_schedule; i++) {
        long long t;
        if (conf_parse_time(c->retry_schedule[i], &t) < 0 || t <= 0)
            return bad(c, "retry_schedule", err, errlen, "bad time '%s'", c->retry_schedule[i]);
    }
    if (c->minimal_backoff_time <= 0 || c->maximal_backoff_time < c->minimal_backoff_time)
        return bad(c, "maximal_backoff_time", err, errlen, "%s",
                   "must be at least minimal_backoff_time (> 0)");
    if (c->smtpd_timeout <= 0)
        return bad(c, "smtpd_timeout", err, errlen, "%s", "must be > 0");
    if (c->worker_threads < 1 || c->worker_threads > 64)
        return bad(c, "worker_threads", err, errlen, "%s", "must be 1..64");
    if (c->smtp_client_port < 1 || c->smtp_client_port > 65535)
        return bad(c, "smtp_client_port", err, errlen, "%s", "must be 1..65535");
    if (check_outbound(c, err, errlen) < 0)
        return -1;
    if (c->smtpd_client_ipv6_prefix < 0 || c->smtpd_client_ipv6_prefix > 128)
        return bad(c, "smtpd_client_ipv6_prefix", err, errlen, "%s", "must be 0..128");
    if (c->smtpd_min_data_rate < 0)
        return bad(c, "smtpd_min_data_rate", err, errlen, "%s", "must be >= 0 (0: off)");
    if (c->quota_warning_percent < 0 || c->quota_warning_percent > 100)
        return bad(c, "quota_warning_percent", err, errlen, "%s", "must be 0 (off)..100");
    if (c->auth_failure_limit < 0 || c->auth_failure_limit > 1000000)
        return bad(c, "auth_failure_limit", err, errlen, "%s", "must be 0 (no lockout)..1000000");
    if (c->auth_failure_window <= 0)
        return bad(c, "auth_failure_window", err, errlen, "%s", "must be > 0");
    if (c->auth_lockout_time <= 0)
        return bad(c, "auth_lockout_time", err, errlen, "%s", "must be > 0");
    if (c->smtpd_pipelining_limit < 1)
        return bad(c, "smtpd_pipelining_limit", err, errlen, "%s", "must be >= 1");
    if (check_tls(c, err, errlen) < 0)
        return -1;
    return 0;
}

int config_load(const char *path, struct hato_config *cfg, char *err, size_t errlen)
{
    struct dyn_defaults dd;
    struct conf_def defs[NSCHEMA];

    memset(cfg, 0, sizeof *cfg);
    compute_defaults(path, &dd);
    memcpy(defs, schema, sizeof defs);
    for (size_t i = 0; i < NSCHEMA; i++) {
        if (!strcmp(defs[i].name, "myhostname"))
            defs[i].defval = dd.host;
        else if (!strcmp(defs[i].name, "mydomain"))
            defs[i].defval = dd.domain;
        else if (!strcmp(defs[i].name, "config_directory"))
            defs[i].defval = dd.confdir;
    }
    cfg->conf = conf_load(path, defs, NSCHEMA, err, errlen);
    if (!cfg->conf)
        return -1;
    cfg->path = conf_path(cfg->conf);
    fill(cfg);
    if (check(cfg, err, errlen) < 0) {
        config_free(cfg);
        return -1;
    }
    return 0;
}

void config_free(struct hato_config *cfg)
{
    if (cfg->conf)
        conf_free(cfg->conf);
    memset(cfg, 0, sizeof *cfg);
}
