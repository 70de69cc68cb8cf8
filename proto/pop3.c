/*
 * proto/pop3.c — the POP3 server session (RFC 1939, 2449, 2595, 5034) on a
 * connection object (proto/conn.h).  Owns the session state machine
 * (AUTHORIZATION → TRANSACTION → UPDATE), the command table, the
 * in-process maildrop lock table, RETR/TOP streaming with back-pressure,
 * and the one teardown path.  Never blocks: password checks, the maildrop
 * lock and listing, message reads and the UPDATE expunges run in the
 * worker pool, and the session reads nothing while one is pending; every
 * job finds its session again by id and cleans up after itself when the
 * session is gone.  Never deletes anything unless the client said QUIT.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "auth/apop.h"
#include "auth/login_fail.h"
#include "auth/passwd.h"
#include "auth/sasl.h"
#include "auth/throttle.h"
#include "lib/hash.h"
#include "lib/iplist.h"
#include "lib/log.h"
#include "lib/timeutil.h"
#include "lib/work.h"
#include "proto/conn.h"
#include "proto/lineio.h"
#include "proto/pop3.h"
#include "proto/pop3_cmd.h"
#include "proto/pop3_msg.h"
#include "proto/sessions.h"
#include "store/path.h"
#include "store/pop3drop.h"

#define POP3_LOCK_BUCKETS 1024
#define POP3_PIPELINE     64              /* command lines buffered before reading stops */
#define POP3_OUTPUT_HIGH  (256 * 1024)    /* stop reading (and executing) above this */
#define POP3_CHUNK        (128 * 1024)    /* message octets read per pool job */
#define POP3_ERRORS_MAX   20              /* bad commands before the session is closed */
#define POP3_FOLDER_MAX   4096

enum pstate {
    P_AUTHZ,        /* AUTHORIZATION: reading commands */
    P_SASL,         /* an AUTH exchange: the next line is the client's answer */
    P_WAIT,         /* a password check, failure delay or maildrop load: reading nothing */
    P_TRANS,        /* TRANSACTION: reading commands */
    P_SEND,         /* RETR/TOP streaming: executing nothing more */
    P_UPDATE,       /* QUIT's deletions run in the pool */
    P_TLS,          /* the handshake runs */
    P_CLOSING,      /* flushing the last reply, then free */
};

struct send_job;

struct psess {
    struct sess_link link;      /* id and the server's table */
    struct pop3_server *srv;
    struct conn *c;
    struct sockaddr_storage peer;
    char peer_addr[64];
    enum pstate state;
    struct line_reader lr, sasl_lr;
    int tls, greeted, eof, errors, output_blocked, shutting;
    int in_dispatch;            /* a command (or SASL line) is being executed */
    char *user;                 /* USER's argument */
    char *login;                /* logged in as */
    char apop_ts[160];          /* the banner's <timestamp>, "" without APOP */
    char method[32];            /* how the login was made, for the log */
    struct sasl *sasl;
    struct event *fail_timer;
    int fail_pending;
    void *gen;
    /* the maildrop, once logged in */
    char *folder;
    int lockfd;                 /* hato.pop3.lock, -1 when not held */
    int in_table;               /* the session owns folder's entry in the lock table
                                   (a login job owns it while it runs) */
    struct pop3drop *drop;
    unsigned char *deleted;     /* per message: marked by DELE */
    size_t ndeleted;
    long long deleted_octets;
    struct send_job *send;      /* RETR/TOP between chunks (NULL while a chunk job runs) */
    void (*on_close)(void *);
    void *close_arg;
};

struct lock_ent {
    char *folder;
    struct lock_ent *next;
};

struct pop3_server {
    struct event_base *base;
    struct pop3_server_ops ops;
    struct pop3_server_params p;
    char *myhostname, *banner, *mail_root;
    struct iplist *plaintext;
    struct sess_table sessions;
    struct lock_ent *locks[POP3_LOCK_BUCKETS];
    size_t nbusy_jobs;
    int shutting;
    struct sasl_params sasl;
    char line[POP3_LINE_MAX + 1];
    char sasl_line[SASL_LINE_MAX + 3];
};

static void process_input(struct psess *s);
static void session_free(struct psess *s);
static void start_session_greeting(struct psess *s);

/* ------------------------------------------------------------ tables */

/* The in-process half of the maildrop lock (the flock is the other): a
 * second session of this hatod is refused without a trip to the pool. */
static struct lock_ent **lock_slot(struct pop3_server *srv, const char *folder)
{
    struct lock_ent **pp = &srv->locks[hash_str(folder) % POP3_LOCK_BUCKETS];
    while (*pp && strcmp((*pp)->folder, folder))
        pp = &(*pp)->next;
    return pp;
}

static int lock_take(struct pop3_server *srv, const char *folder)
{
    struct lock_ent **pp = lock_slot(srv, folder);
    if (*pp)
        return 1;
    struct lock_ent *e = calloc(1, sizeof *e);
    if (!e || !(e->folder = strdup(folder))) {
        free(e);
        return -1;
    }
    *pp = e;
    return 0;
}

static void lock_release(struct pop3_server *srv, const char *folder)
{
    struct lock_ent **pp = lock_slot(srv, folder);
    struct lock_ent *e = *pp;
    if (!e)
        return;
    *pp = e->next;
    free(e->folder);
    free(e);
}

/* ------------------------------------------------------------ replies */

static void say(struct psess *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(struct psess *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(conn_output(s->c), fmt, ap);
    va_end(ap);
    evbuffer_add(conn_output(s->c), "\r\n", 2);
}

static void close_after_reply(struct psess *s)
{
    s->state = P_CLOSING;
    conn_read_enable(s->c, 0);
    conn_want_drain(s->c);
}

/* A bad command: -ERR, counted; too many end the session. */
static void bad_command(struct psess *s, const char *text)
{
    say(s, "-ERR %s", text);
    if (++s->errors >= POP3_ERRORS_MAX) {
        say(s, "-ERR Too many bad commands, closing");
        log_info("pop3: too many bad commands from %s", s->peer_addr);
        close_after_reply(s);
    }
}

static void read_on(struct psess *s)
{
    if (!s->eof)
        conn_read_enable(s->c, 1);
}

static void wait_state(struct psess *s)
{
    s->state = P_WAIT;
    conn_read_enable(s->c, 0);
}

/* Back to reading commands in state st; what is buffered runs now — by the
 * command loop itself when this happens inside a command (no recursion
 * under pipelining), else from here (a pool job or timer finished). */
static void resume(struct psess *s, enum pstate st)
{
    if (s->state == P_CLOSING)
        return;
    s->state = st;
    read_on(s);
    if (!s->in_dispatch)
        process_input(s);
}

/* ------------------------------------------------------------ policy */

static SSL_CTX *tls_ctx(const struct psess *s)
{
    return s->srv->ops.tls_ctx ? s->srv->ops.tls_ctx(s->gen) : NULL;
}

static int stls_offered(const struct psess *s)
{
    return !s->tls && s->srv->p.tls != POP3_TLS_NONE && tls_ctx(s);
}

/* No login at all before STLS under pop3_tls = encrypt. */
static int login_needs_tls(const struct psess *s)
{
    return !s->tls && s->srv->p.tls == POP3_TLS_ENCRYPT;
}

/* USER/PASS and AUTH PLAIN/LOGIN: over TLS, or from auth_plaintext_clients
 * (localhost by default, as Dovecot counts it secure). */
static int plaintext_ok(const struct psess *s)
{
    if (s->tls)
        return 1;
    if (login_needs_tls(s))
        return 0;
    return s->srv->plaintext && iplist_match(s->srv->plaintext, (const struct sockaddr *)&s->peer);
}

static int mech_is_plaintext(const char *mech)
{
    return !strcasecmp(mech, "PLAIN") || !strcasecmp(mech, "LOGIN");
}

/* The server's SASL parameters plus, once TLS is up, the connection's
 * channel binding (cb: SASL_CB_MAX octets): SCRAM-SHA-256-PLUS over TLS
 * only, as on SMTP. */
static struct sasl_params session_sasl(const struct psess *s, unsigned char *cb, size_t cblen)
{
    struct sasl_params p = s->srv->sasl;
    const char *type = NULL;
    int n = s->tls ? conn_tls_channel_binding(s->c, &type, cb, cblen) : -1;
    if (n > 0) {
        p.cb_type = type;
        p.cb_data = cb;
        p.cb_len = (size_t)n;
    }
    return p;
}

/* The mechanisms this session may use, space-separated, into buf. */
static void mech_list(const struct psess *s, char *buf, size_t len)
{
    char all[256];
    unsigned char cb[SASL_CB_MAX];
    struct sasl_params sp = session_sasl(s, cb, sizeof cb);
    size_t n = 0;
    snprintf(all, sizeof all, "%s", sasl_mech_list(&sp));
    buf[0] = '\0';
    for (char *save = NULL, *t = strtok_r(all, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (mech_is_plaintext(t) && !plaintext_ok(s))
            continue;
        int w = snprintf(buf + n, len - n, "%s%s", n ? " " : "", t);
        if (w < 0 || (size_t)w >= len - n)
            break;
        n += (size_t)w;
    }
}

/* ------------------------------------------------------------ login */

struct login_job {
    struct pop3_server *srv;
    unsigned long long sid;
    char *folder;
    int lockfd;
    int err;                    /* errno of the lock or load */
    struct pop3drop *drop;
};

static void login_failed(struct psess *s, const char *mech, const char *why);

static void login_job_free(struct login_job *j)
{
    if (j->lockfd >= 0)
        close(j->lockfd);
    pop3drop_free(j->drop);
    free(j->folder);
    free(j);
}

static void login_lock_load(void *arg)
{
    struct login_job *j = arg;
    j->lockfd = pop3drop_lock(j->folder);
    if (j->lockfd < 0) {
        j->err = errno;
        return;
    }
    if (pop3drop_load(j->folder, &j->drop) < 0)
        j->err = errno ? errno : EIO;
}

static void login_loaded(void *arg)
{
    struct login_job *j = arg;
    struct psess *s = sess_table_find(&j->srv->sessions, j->sid);
    if (!s || s->state != P_WAIT) {
        lock_release(j->srv, j->folder);      /* the client left meanwhile */
        login_job_free(j);
        return;
    }
    if (j->lockfd < 0 || !j->drop) {
        lock_release(j->srv, j->folder);
        if (j->lockfd < 0 && (j->err == EWOULDBLOCK || j->err == EAGAIN)) {
            say(s, "-ERR [IN-USE] Mailbox is locked by another POP3 session");
            log_info("pop3: %s from %s: maildrop in use", s->login, s->peer_addr);
        } else {
            say(s, "-ERR [SYS/TEMP] Cannot open the mailbox, try again later");
            log_err("pop3: %s: %s: %s", s->login, j->folder, strerror(j->err));
        }
        free(s->login);
        s->login = NULL;
        login_job_free(j);
        resume(s, P_AUTHZ);
        return;
    }
    s->lockfd = j->lockfd;
    s->drop = j->drop;
    s->in_table = 1;                      /* the session owns the entry now */
    j->lockfd = -1;
    j->drop = NULL;
    login_job_free(j);
    s->deleted = calloc(s->drop->n ? s->drop->n : 1, 1);
    if (!s->deleted) {
        say(s, "-ERR [SYS/TEMP] Out of memory");
        close_after_reply(s);
        return;
    }
    long long octets = 0;
    for (size_t i = 0; i < s->drop->n; i++)
        octets += s->drop->msgs[i].size;
    say(s, "+OK Logged in, %zu messages (%lld octets)", s->drop->n, octets);
    log_info("pop3: login: user=%s, method=%s, client=%s, messages=%zu%s", s->login, s->method,
             s->peer_addr, s->drop->n, s->tls ? ", TLS" : "");
    if (s->srv->ops.logged_in)
        s->srv->ops.logged_in(s->srv->ops.ctx, (const struct sockaddr *)&s->peer);
    resume(s, P_TRANS);
}

/* "local@domain" → MAIL_ROOT/domain/local; -1 for a name that is no safe
 * mailbox (store/path.h). */
static int folder_of(const struct psess *s, const char *login, char *buf, size_t len)
{
    char l[POP3_FOLDER_MAX], rel[POP3_FOLDER_MAX];
    const char *at = strrchr(login, '@');
    size_t n = strlen(login);
    if (!at || n >= sizeof l)
        return -1;
    for (size_t i = 0; i <= n; i++)
        l[i] = (char)((login[i] >= 'A' && login[i] <= 'Z') ? login[i] - 'A' + 'a' : login[i]);
    l[at - login] = '\0';
    if (store_mailbox_rel(rel, sizeof rel, l + (at - login) + 1, l) != 0)
        return -1;
    return snprintf(buf, len, "%s/%s", s->srv->mail_root, rel) < (int)len ? 0 : -1;
}

/* Credentials are good: take the maildrop (lock + listing, in the pool). */
static void login_ok(struct psess *s, const char *login, const char *mech)
{
    char folder[POP3_FOLDER_MAX];
    login_success(s->srv->ops.throttle, (const struct sockaddr *)&s->peer);
    free(s->login);
    s->login = strdup(login);
    if (!s->login || folder_of(s, login, folder, sizeof folder) < 0) {
        say(s, "-ERR [SYS/PERM] No mailbox for this login");
        free(s->login);
        s->login = NULL;
        resume(s, P_AUTHZ);
        return;
    }
    snprintf(s->method, sizeof s->method, "%s", mech);
    int held = lock_take(s->srv, folder);
    if (held != 0) {
        say(s, held > 0 ? "-ERR [IN-USE] Mailbox is locked by another POP3 session"
                        : "-ERR [SYS/TEMP] Out of memory");
        if (held > 0)
            log_info("pop3: %s from %s: maildrop in use", s->login, s->peer_addr);
        free(s->login);
        s->login = NULL;
        resume(s, P_AUTHZ);
        return;
    }
    struct login_job *j = calloc(1, sizeof *j);
    free(s->folder);                      /* left by an earlier refused login */
    s->folder = NULL;
    if (j && (j->folder = strdup(folder)) && (s->folder = strdup(folder))) {
        j->srv = s->srv;
        j->sid = s->link.id;
        j->lockfd = -1;
        wait_state(s);
        if (work_submit(s->srv->ops.pool, WORK_FILTER, login_lock_load, login_loaded, j) == 0)
            return;
    }
    if (j)
        free(j->folder);
    free(j);
    lock_release(s->srv, folder);
    say(s, "-ERR [SYS/TEMP] Cannot open the mailbox, try again later");
    free(s->login);
    s->login = NULL;
    resume(s, P_AUTHZ);
}

static void on_fail_timer(evutil_socket_t fd, short what, void *arg)
{
    struct psess *s = arg;
    (void)fd;
    (void)what;
    if (!s->fail_pending)
        return;
    s->fail_pending = 0;
    say(s, "-ERR [AUTH] Authentication failed");
    resume(s, P_AUTHZ);
}

/* Wrong credentials: logged as Postfix does (fail2ban), counted in the
 * shared throttle, answered after its delay (a timer; the loop never
 * sleeps). */
static void login_failed(struct psess *s, const char *mech, const char *why)
{
    long long delay = login_failure(s->srv->ops.throttle, (const struct sockaddr *)&s->peer,
                                    NULL, s->peer_addr, mech, why);
    if (!s->fail_timer)
        s->fail_timer = evtimer_new(s->srv->base, on_fail_timer, s);
    if (delay <= 0 || !s->fail_timer) {
        say(s, "-ERR [AUTH] Authentication failed");
        resume(s, P_AUTHZ);
        return;
    }
    wait_state(s);
    s->fail_pending = 1;
    struct timeval tv = { delay / 1000, (delay % 1000) * 1000 };
    evtimer_add(s->fail_timer, &tv);
}

/* A client locked out meanwhile (by another session) guesses no more. */
static int locked_out(struct psess *s)
{
    if (login_locked(s->srv->ops.throttle, (const struct sockaddr *)&s->peer) <= 0)
        return 0;
    say(s, "-ERR [SYS/TEMP] Too many failed logins, try again later");
    close_after_reply(s);
    return 1;
}

/* ------------------------------------------------------------ USER / PASS / APOP */

struct verify_ctx {
    struct pop3_server *srv;
    unsigned long long sid;
    char *user;
};

static void pass_verified(void *arg, enum auth_verdict v)
{
    struct verify_ctx *a = arg;
    struct psess *s = sess_table_find(&a->srv->sessions, a->sid);
    if (s && s->state == P_WAIT && !s->sasl) {
        if (v == AUTH_PASS)
            login_ok(s, a->user, "PASS");
        else if (v == AUTH_TEMPFAIL) {
            say(s, "-ERR [SYS/TEMP] Temporary authentication failure");
            resume(s, P_AUTHZ);
        } else
            login_failed(s, "LOGIN", "password mismatch");
    }
    free(a->user);
    free(a);
}

static void cmd_user(struct psess *s, struct pop3_cmd *c)
{
    if (!plaintext_ok(s)) {
        say(s, "-ERR [AUTH] Plaintext authentication disallowed on non-secure connections");
        return;
    }
    free(s->user);
    s->user = strdup(c->arg[0]);
    say(s, s->user ? "+OK" : "-ERR [SYS/TEMP] Out of memory");
}

static void cmd_pass(struct psess *s, struct pop3_cmd *c)
{
    if (!plaintext_ok(s)) {
        say(s, "-ERR [AUTH] Plaintext authentication disallowed on non-secure connections");
        return;
    }
    if (!s->user) {
        bad_command(s, "No username given (USER first)");
        return;
    }
    if (locked_out(s))
        return;
    struct verify_ctx *a = calloc(1, sizeof *a);
    if (a && (a->user = strdup(s->user))) {
        a->srv = s->srv;
        a->sid = s->link.id;
        wait_state(s);
        if (auth_verify(s->srv->ops.pool, s->srv->ops.users(s->gen), s->user, c->arg[0],
                        pass_verified, a) == 0) {
            free(s->user);
            s->user = NULL;
            return;
        }
        free(a->user);
    }
    free(a);
    free(s->user);
    s->user = NULL;
    say(s, "-ERR [SYS/TEMP] Temporary authentication failure");
    resume(s, P_AUTHZ);
}

static void cmd_apop(struct psess *s, struct pop3_cmd *c)
{
    if (!s->apop_ts[0]) {
        bad_command(s, "APOP is not enabled");
        return;
    }
    if (login_needs_tls(s)) {
        say(s, "-ERR [AUTH] Must issue a STLS command first");
        return;
    }
    if (locked_out(s))
        return;
    if (apop_check(s->srv->ops.users(s->gen), c->arg[0], s->apop_ts, c->arg[1]) == 0)
        login_ok(s, c->arg[0], "APOP");
    else
        login_failed(s, "APOP", "digest mismatch or no APOP secret");
}

/* ------------------------------------------------------------ AUTH (RFC 5034) */

static void sasl_end(struct psess *s)
{
    sasl_free(s->sasl);
    s->sasl = NULL;
    s->lr.skipping = s->lr.skipping || s->sasl_lr.skipping;
    s->sasl_lr.skipping = 0;
    conn_set_input_max(s->c, POP3_PIPELINE * POP3_LINE_MAX);
}

static void sasl_result(struct psess *s, struct sasl_result *r);

static void sasl_verified_cb(void *arg, enum auth_verdict v)
{
    struct verify_ctx *a = arg;
    struct psess *s = sess_table_find(&a->srv->sessions, a->sid);
    free(a->user);
    free(a);
    if (!s || s->state != P_WAIT || !s->sasl)
        return;
    if (v == AUTH_TEMPFAIL) {
        sasl_end(s);
        say(s, "-ERR [SYS/TEMP] Temporary authentication failure");
        resume(s, P_AUTHZ);
        return;
    }
    struct sasl_result r;
    sasl_verified(s->sasl, v == AUTH_PASS, &r);
    sasl_result(s, &r);
}

static void sasl_result(struct psess *s, struct sasl_result *r)
{
    struct verify_ctx *a;
    char id[SASL_ID_MAX + 1], mech[32];
    switch (r->status) {
    case SASL_CHALLENGE:
        say(s, "+ %s", r->challenge);
        s->state = P_SASL;
        return;
    case SASL_NEED_VERIFY:
        a = calloc(1, sizeof *a);
        if (a) {
            a->srv = s->srv;
            a->sid = s->link.id;
            wait_state(s);
            if (auth_verify(s->srv->ops.pool, s->srv->ops.users(s->gen), r->authcid,
                            r->password, sasl_verified_cb, a) == 0)
                return;
            free(a);
        }
        sasl_end(s);
        say(s, "-ERR [SYS/TEMP] Temporary authentication failure");
        resume(s, P_AUTHZ);
        return;
    case SASL_SUCCESS:
        snprintf(id, sizeof id, "%s", r->authcid);
        snprintf(mech, sizeof mech, "%s", r->mech ? r->mech : "AUTH");
        sasl_end(s);                      /* r's strings go with it: copied above */
        login_ok(s, id, mech);
        return;
    case SASL_CANCEL:
        sasl_end(s);
        say(s, "-ERR Authentication aborted");
        resume(s, P_AUTHZ);
        return;
    case SASL_FAIL: {
        char why[128];
        snprintf(mech, sizeof mech, "%s", r->mech ? r->mech : "?");
        snprintf(why, sizeof why, "%s", r->reason ? r->reason : "authentication failure");
        sasl_end(s);
        login_failed(s, mech, why);
        return;
    }
    }
}

/* "AUTH" alone lists the mechanisms (what Outlook and others send). */
static void auth_list(struct psess *s)
{
    char list[256];
    mech_list(s, list, sizeof list);
    say(s, "+OK");
    for (char *save = NULL, *t = strtok_r(list, " ", &save); t; t = strtok_r(NULL, " ", &save))
        say(s, "%s", t);
    say(s, ".");
}

static void cmd_auth(struct psess *s, struct pop3_cmd *c)
{
    if (login_needs_tls(s)) {
        say(s, "-ERR [AUTH] Must issue a STLS command first");
        return;
    }
    if (c->nargs == 0) {
        auth_list(s);
        return;
    }
    unsigned char cb[SASL_CB_MAX];
    struct sasl_params params = session_sasl(s, cb, sizeof cb);
    const struct sasl_params *sp = &params;
    if (!sasl_mech_offered(c->arg[0], sp) || (mech_is_plaintext(c->arg[0]) && !plaintext_ok(s))) {
        say(s, sasl_mech_offered(c->arg[0], sp)
                   ? "-ERR [AUTH] Plaintext authentication disallowed on non-secure connections"
                   : "-ERR Unsupported authentication mechanism");
        return;
    }
    if (locked_out(s))
        return;
    struct sasl_lookup l = { sasl_usertab_find, s->srv->ops.users(s->gen) };
    struct sasl_result r;
    conn_set_input_max(s->c, SASL_LINE_MAX + 2 + POP3_PIPELINE * POP3_LINE_MAX);
    line_reader_init(&s->sasl_lr, SASL_LINE_MAX + 2);
    s->sasl = sasl_start(c->arg[0], sp, c->nargs > 1 ? c->arg[1] : NULL, &l, &r);
    if (!s->sasl && r.status != SASL_FAIL) {
        sasl_end(s);
        say(s, "-ERR [SYS/TEMP] Temporary authentication failure");
        return;
    }
    if (!s->sasl) {
        sasl_end(s);
        login_failed(s, c->arg[0], r.reason);
        return;
    }
    sasl_result(s, &r);
}

static void sasl_input(struct psess *s)
{
    size_t len;
    int bare_lf = 0;
    enum line_status ls = line_read(&s->sasl_lr, conn_input(s->c), s->srv->sasl_line, &len,
                                    &bare_lf);
    if (ls == LINE_NONE)
        return;
    if (ls == LINE_TOO_LONG) {
        sasl_end(s);
        bad_command(s, "Authentication exchange line is too long");
        if (s->state != P_CLOSING)
            s->state = P_AUTHZ;
        return;
    }
    struct sasl_lookup l = { sasl_usertab_find, s->srv->ops.users(s->gen) };
    struct sasl_result r;
    sasl_step(s->sasl, &l, s->srv->sasl_line, len, &r);
    sasl_result(s, &r);
}

/* ------------------------------------------------------------ STLS, CAPA */

static void cmd_stls(struct psess *s, struct pop3_cmd *c)
{
    (void)c;
    SSL_CTX *ctx = stls_offered(s) ? tls_ctx(s) : NULL;
    if (!ctx) {
        bad_command(s, s->tls ? "TLS is already active" : "STLS is not available");
        return;
    }
    say(s, "+OK Begin TLS negotiation now");
    if (conn_starttls(s->c, ctx, 1, NULL) < 0) {
        log_err("pop3: cannot start TLS for %s", s->peer_addr);
        say(s, "-ERR [SYS/TEMP] TLS not available");
        close_after_reply(s);
        return;
    }
    s->state = P_TLS;
}

static void cmd_capa(struct psess *s, struct pop3_cmd *c)
{
    (void)c;
    say(s, "+OK Capability list follows");
    say(s, "TOP");
    say(s, "UIDL");
    say(s, "RESP-CODES");
    say(s, "AUTH-RESP-CODE");
    say(s, "PIPELINING");
    if (s->state == P_AUTHZ) {
        if (plaintext_ok(s))
            say(s, "USER");
        char list[256];
        mech_list(s, list, sizeof list);
        if (!login_needs_tls(s) && list[0])
            say(s, "SASL %s", list);
        if (stls_offered(s))
            say(s, "STLS");
    }
    say(s, ".");
}

/* ------------------------------------------------------------ TRANSACTION */

/* Message n (1-based) if it exists and is not deleted; else answered. */
static int msg_arg(struct psess *s, unsigned long n, size_t *idx)
{
    if (n < 1 || n > s->drop->n) {
        say(s, "-ERR No such message");
        return -1;
    }
    if (s->deleted[n - 1]) {
        say(s, "-ERR Message %lu is deleted", n);
        return -1;
    }
    *idx = n - 1;
    return 0;
}

static void cmd_stat(struct psess *s, struct pop3_cmd *c)
{
    (void)c;
    long long octets = 0;
    for (size_t i = 0; i < s->drop->n; i++)
        octets += s->deleted[i] ? 0 : s->drop->msgs[i].size;
    say(s, "+OK %zu %lld", s->drop->n - s->ndeleted, octets);
}

static void list_one(struct psess *s, size_t i, int uidl, int single)
{
    const struct pop3drop_msg *m = &s->drop->msgs[i];
    if (uidl)
        say(s, "%s%zu %u.%u", single ? "+OK " : "", i + 1, s->drop->uidvalidity, m->uid);
    else
        say(s, "%s%zu %lld", single ? "+OK " : "", i + 1, (long long)m->size);
}

static void cmd_list_common(struct psess *s, struct pop3_cmd *c, int uidl)
{
    size_t idx;
    if (c->nargs == 1) {
        if (msg_arg(s, c->num[0], &idx) == 0)
            list_one(s, idx, uidl, 1);
        return;
    }
    say(s, "+OK %zu messages", s->drop->n - s->ndeleted);
    for (size_t i = 0; i < s->drop->n; i++)
        if (!s->deleted[i])
            list_one(s, i, uidl, 0);
    say(s, ".");
}

static void cmd_list(struct psess *s, struct pop3_cmd *c) { cmd_list_common(s, c, 0); }
static void cmd_uidl(struct psess *s, struct pop3_cmd *c) { cmd_list_common(s, c, 1); }

static void cmd_dele(struct psess *s, struct pop3_cmd *c)
{
    size_t idx;
    if (msg_arg(s, c->num[0], &idx) < 0)
        return;
    s->deleted[idx] = 1;
    s->ndeleted++;
    s->deleted_octets += s->drop->msgs[idx].size;
    say(s, "+OK Message %lu deleted", c->num[0]);
}

static void cmd_rset(struct psess *s, struct pop3_cmd *c)
{
    (void)c;
    if (s->drop)
        memset(s->deleted, 0, s->drop->n ? s->drop->n : 1);
    s->ndeleted = 0;
    s->deleted_octets = 0;
    say(s, "+OK");
}

static void cmd_noop(struct psess *s, struct pop3_cmd *c)
{
    (void)c;
    say(s, "+OK");
}

/* ---- RETR / TOP: the file in POP3_CHUNK steps read in the pool; the next
 * step is read only once the output is below its high-water mark, so a
 * client that stops reading holds one chunk and no thread. */

struct send_job {
    struct pop3_server *srv;
    unsigned long long sid;
    char *folder;
    struct pop3drop_msg msg;    /* uid and a copy of rel */
    int fd;
    long long off;
    ssize_t got;                /* octets in buf, -1 on a read error */
    int err;
    int started;                /* the +OK line is out */
    struct pop3_msg_out out;
    char buf[POP3_CHUNK];
};

static void send_job_free(struct send_job *j)
{
    if (j->fd >= 0)
        close(j->fd);
    free(j->msg.rel);
    free(j->folder);
    free(j);
}

static void send_read(void *arg)
{
    struct send_job *j = arg;
    if (j->fd < 0) {
        j->fd = pop3drop_open(j->folder, &j->msg);
        if (j->fd < 0) {
            j->err = errno;
            j->got = -1;
            return;
        }
    }
    do
        j->got = pread(j->fd, j->buf, sizeof j->buf, j->off);
    while (j->got < 0 && errno == EINTR);
    if (j->got < 0)
        j->err = errno;
}

static void send_read_done(void *arg);

static void send_next(struct psess *s, struct send_job *j)
{
    s->send = NULL;
    if (work_submit(s->srv->ops.pool, WORK_FILTER, send_read, send_read_done, j) == 0)
        return;
    send_job_free(j);
    log_err("pop3: %s: cannot read a message (pool shutting down)", s->peer_addr);
    close_after_reply(s);
}

static void send_read_done(void *arg)
{
    struct send_job *j = arg;
    struct psess *s = sess_table_find(&j->srv->sessions, j->sid);
    if (!s || s->state != P_SEND) {
        send_job_free(j);                 /* the client left meanwhile */
        return;
    }
    struct evbuffer *out = conn_output(s->c);
    if (j->got < 0) {
        if (!j->started) {
            say(s, "-ERR [SYS/TEMP] Cannot read message: %s", strerror(j->err));
            log_err("pop3: %s: %s/%s: %s", s->login, j->folder, j->msg.rel, strerror(j->err));
            send_job_free(j);
            resume(s, P_TRANS);
        } else {
            log_err("pop3: %s: %s/%s: read error mid-message: %s", s->login, j->folder,
                    j->msg.rel, strerror(j->err));
            send_job_free(j);
            close_after_reply(s);         /* nothing can end the reply correctly */
        }
        return;
    }
    if (!j->started) {
        j->started = 1;
        if (j->out.top < 0)
            say(s, "+OK %lld octets", (long long)j->msg.size);
        else
            say(s, "+OK Top of message follows");
    }
    if (j->got > 0 && pop3_msg_out_feed(&j->out, j->buf, (size_t)j->got, out) < 0) {
        send_job_free(j);
        close_after_reply(s);
        return;
    }
    j->off += j->got;
    /* a short read of a regular file is its end: a message that fits in
     * one chunk costs one pool job */
    if (j->got < (ssize_t)sizeof j->buf || pop3_msg_out_done(&j->out)) {
        pop3_msg_out_end(&j->out, out);
        send_job_free(j);
        resume(s, P_TRANS);
        return;
    }
    if (evbuffer_get_length(out) < POP3_OUTPUT_HIGH / 2) {
        send_next(s, j);
        return;
    }
    s->send = j;                          /* CONN_DRAINED sends the next chunk */
    conn_want_drain(s->c);
}

static void send_start(struct psess *s, size_t idx, long top)
{
    struct send_job *j = malloc(sizeof *j);
    if (!j || !(j->folder = strdup(s->folder)) ||
        !(j->msg.rel = strdup(s->drop->msgs[idx].rel))) {
        if (j)
            free(j->folder);
        free(j);
        say(s, "-ERR [SYS/TEMP] Out of memory");
        return;
    }
    j->srv = s->srv;
    j->sid = s->link.id;
    j->msg.uid = s->drop->msgs[idx].uid;
    j->msg.size = s->drop->msgs[idx].size;
    j->fd = -1;
    j->off = 0;
    j->got = 0;
    j->err = 0;
    j->started = 0;
    pop3_msg_out_init(&j->out, top);
    s->state = P_SEND;
    conn_read_enable(s->c, 0);
    send_next(s, j);
}

static void cmd_retr(struct psess *s, struct pop3_cmd *c)
{
    size_t idx;
    if (msg_arg(s, c->num[0], &idx) == 0)
        send_start(s, idx, -1);
}

static void cmd_top(struct psess *s, struct pop3_cmd *c)
{
    size_t idx;
    if (msg_arg(s, c->num[0], &idx) == 0)
        send_start(s, idx, (long)c->num[1]);
}

/* ---- QUIT and the UPDATE state */

struct update_job {
    struct pop3_server *srv;
    unsigned long long sid;
    char *folder;
    int lockfd;
    uint32_t *uids;
    size_t n;
    long failed;
};

static void update_run(void *arg)
{
    struct update_job *j = arg;
    j->failed = pop3drop_expunge(j->folder, j->uids, j->n);
    close(j->lockfd);                     /* only now may the next session look */
    j->lockfd = -1;
}

static void update_done(void *arg)
{
    struct update_job *j = arg;
    struct psess *s = sess_table_find(&j->srv->sessions, j->sid);
    j->srv->nbusy_jobs--;
    lock_release(j->srv, j->folder);
    if (j->failed != 0)
        log_err("pop3: %s: %ld of %zu deletions failed", j->folder, j->failed < 0 ? (long)j->n
                                                                               : j->failed, j->n);
    if (s && s->state == P_UPDATE) {
        if (j->failed == 0)
            say(s, "+OK Logging out, %zu messages deleted", j->n);
        else
            say(s, "-ERR [SYS/TEMP] Some deleted messages could not be removed");
        close_after_reply(s);
    }
    free(j->uids);
    free(j->folder);
    free(j);
}

static void cmd_quit(struct psess *s, struct pop3_cmd *c)
{
    (void)c;
    if (!s->drop || s->ndeleted == 0) {
        say(s, "+OK Logging out");
        close_after_reply(s);
        return;
    }
    struct update_job *j = calloc(1, sizeof *j);
    if (j && (j->uids = calloc(s->ndeleted, sizeof *j->uids))) {
        for (size_t i = 0; i < s->drop->n; i++)
            if (s->deleted[i])
                j->uids[j->n++] = s->drop->msgs[i].uid;
        j->srv = s->srv;
        j->sid = s->link.id;
        j->folder = s->folder;            /* the job owns the lock from here */
        j->lockfd = s->lockfd;
        if (work_submit(s->srv->ops.pool, WORK_FILTER, update_run, update_done, j) == 0) {
            s->folder = NULL;
            s->lockfd = -1;
            s->in_table = 0;
            s->srv->nbusy_jobs++;
            s->state = P_UPDATE;
            conn_read_enable(s->c, 0);
            log_info("pop3: logout: user=%s, deleting %zu", s->login, j->n);
            return;
        }
        free(j->uids);
    }
    free(j);
    say(s, "-ERR [SYS/TEMP] Cannot delete messages now, nothing deleted");
    close_after_reply(s);
}

/* ------------------------------------------------------------ command table */

enum {
    C_AUTHZ = 1 << 0,   /* allowed in AUTHORIZATION */
    C_TRANS = 1 << 1,   /* allowed in TRANSACTION */
};

struct pop3_command {
    enum pop3_verb verb;
    unsigned flags;
    void (*run)(struct psess *s, struct pop3_cmd *c);
};

static const struct pop3_command commands[] = {
    { POP3_V_USER, C_AUTHZ, cmd_user },
    { POP3_V_PASS, C_AUTHZ, cmd_pass },
    { POP3_V_APOP, C_AUTHZ, cmd_apop },
    { POP3_V_AUTH, C_AUTHZ, cmd_auth },
    { POP3_V_STLS, C_AUTHZ, cmd_stls },
    { POP3_V_CAPA, C_AUTHZ | C_TRANS, cmd_capa },
    { POP3_V_QUIT, C_AUTHZ | C_TRANS, cmd_quit },
    { POP3_V_NOOP, C_TRANS, cmd_noop },
    { POP3_V_STAT, C_TRANS, cmd_stat },
    { POP3_V_LIST, C_TRANS, cmd_list },
    { POP3_V_UIDL, C_TRANS, cmd_uidl },
    { POP3_V_RETR, C_TRANS, cmd_retr },
    { POP3_V_TOP, C_TRANS, cmd_top },
    { POP3_V_DELE, C_TRANS, cmd_dele },
    { POP3_V_RSET, C_TRANS, cmd_rset },
};

static void dispatch(struct psess *s, char *line, size_t len)
{
    struct pop3_cmd c;
    enum pop3_parse r = pop3_cmd_parse(line, len, &c);
    if (r == POP3_E_UNKNOWN) {
        bad_command(s, "Unknown command");
        return;
    }
    if (s->shutting && c.verb != POP3_V_QUIT) {
        say(s, "-ERR [SYS/TEMP] Server shutting down");
        close_after_reply(s);
        return;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (commands[i].verb != c.verb)
            continue;
        unsigned need = s->state == P_TRANS ? C_TRANS : C_AUTHZ;
        if (!(commands[i].flags & need)) {
            bad_command(s, s->state == P_TRANS ? "Already logged in"
                                               : "Not logged in (USER/PASS, APOP or AUTH first)");
            return;
        }
        if (r == POP3_E_SYNTAX) {
            bad_command(s, "Syntax error in the arguments");
            return;
        }
        commands[i].run(s, &c);
        return;
    }
    bad_command(s, "Unknown command");
}

/* ------------------------------------------------------------ input loop */

static void process_input(struct psess *s)
{
    struct evbuffer *in = conn_input(s->c);
    while (s->state == P_AUTHZ || s->state == P_TRANS || s->state == P_SASL) {
        if (s->state == P_SASL) {
            size_t had = evbuffer_get_length(in);
            s->in_dispatch = 1;
            sasl_input(s);
            s->in_dispatch = 0;
            if (s->state == P_SASL && evbuffer_get_length(in) == had) {
                if (s->eof)
                    session_free(s);
                return;
            }
            continue;
        }
        if (conn_output_full(s->c)) {
            s->output_blocked = 1;
            conn_want_drain(s->c);
            return;
        }
        size_t len;
        int bare_lf = 0;
        enum line_status ls = line_read(&s->lr, in, s->srv->line, &len, &bare_lf);
        if (ls == LINE_NONE) {
            if (s->eof)
                close_after_reply(s);     /* a dropped connection deletes nothing */
            return;
        }
        if (ls == LINE_TOO_LONG) {
            bad_command(s, "Line too long");
            continue;
        }
        s->in_dispatch = 1;
        dispatch(s, s->srv->line, len);
        s->in_dispatch = 0;
    }
}

/* ------------------------------------------------------------ events */

static void on_drained(struct psess *s)
{
    if (s->state == P_CLOSING) {
        session_free(s);
        return;
    }
    if (s->state == P_SEND && s->send) {
        send_next(s, s->send);
        return;
    }
    if (s->output_blocked) {
        s->output_blocked = 0;
        if (s->state == P_AUTHZ || s->state == P_TRANS) {
            read_on(s);
            process_input(s);
        }
    }
}

static void on_timeout(struct psess *s)
{
    if (s->state == P_CLOSING || s->state == P_TLS || s->state == P_SEND) {
        log_info("pop3: timeout from %s (%s)", s->peer_addr,
                 s->state == P_SEND ? "client stopped reading a message" : "closing");
        session_free(s);                  /* no channel to answer on */
        return;
    }
    if (s->state == P_UPDATE || s->state == P_WAIT)
        return;                           /* our own work; the timer comes again */
    say(s, "-ERR Disconnected for inactivity");
    log_info("pop3: timeout from %s", s->peer_addr);
    close_after_reply(s);
}

static void on_eof(struct psess *s)
{
    if (s->eof)
        return;
    s->eof = 1;
    if (s->state == P_AUTHZ || s->state == P_TRANS || s->state == P_SASL)
        process_input(s);
}

/* The handshake is done: STLS forgets USER (RFC 2595 §4: a new start),
 * pop3s gets its greeting now. */
static void on_tls_ready(struct psess *s)
{
    char desc[160];
    conn_tls_describe(s->c, desc, sizeof desc);
    log_info("pop3: TLS connection established from %s: %s", s->peer_addr, desc);
    s->tls = 1;
    free(s->user);
    s->user = NULL;
    if (!s->greeted) {
        start_session_greeting(s);
        return;
    }
    s->state = P_AUTHZ;
    read_on(s);
}

static void on_conn(struct conn *c, enum conn_event ev, void *arg)
{
    struct psess *s = arg;
    (void)c;
    switch (ev) {
    case CONN_READ:
        process_input(s);
        break;
    case CONN_DRAINED:
        on_drained(s);
        break;
    case CONN_EOF:
        on_eof(s);
        break;
    case CONN_TIMEOUT:
        on_timeout(s);
        break;
    case CONN_TLS_READY:
        on_tls_ready(s);
        break;
    case CONN_ERROR:
        log_debug("pop3: connection error from %s: %s", s->peer_addr, conn_error(s->c));
        session_free(s);
        break;
    }
}

/* ------------------------------------------------------------ lifecycle */

/* The one teardown path.  A job in flight finds no session and cleans up
 * what it holds; the maildrop lock goes with the session unless UPDATE
 * took it over.  Nothing is deleted here. */
static void session_free(struct psess *s)
{
    sess_table_remove(&s->srv->sessions, &s->link);
    if (s->send)
        send_job_free(s->send);
    if (s->lockfd >= 0)
        close(s->lockfd);
    if (s->in_table)
        lock_release(s->srv, s->folder);
    pop3drop_free(s->drop);
    free(s->deleted);
    free(s->folder);
    free(s->user);
    free(s->login);
    sasl_free(s->sasl);
    if (s->fail_timer)
        event_free(s->fail_timer);
    s->srv->ops.gen_unref(s->srv->ops.ctx, s->gen);
    conn_free(s->c);
    if (s->on_close)
        s->on_close(s->close_arg);
    free(s);
}

/* "<pid.random.time@host>" (RFC 1939 §7: unique per banner). */
static void apop_timestamp(struct psess *s)
{
    unsigned char r[8];
    unsigned long long rnd = 0;
    if (RAND_bytes(r, sizeof r) == 1)
        memcpy(&rnd, r, sizeof rnd);
    snprintf(s->apop_ts, sizeof s->apop_ts, "<%ld.%016llx.%lld@%s>", (long)getpid(), rnd,
             (long long)time(NULL), s->srv->myhostname);
}

static void start_session_greeting(struct psess *s)
{
    s->greeted = 1;
    long long left = login_locked(s->srv->ops.throttle, (const struct sockaddr *)&s->peer);
    if (left > 0) {
        say(s, "-ERR [SYS/TEMP] Too many failed logins, try again later");
        log_info("pop3: refused %s: locked out for %lld s more after failed logins",
                 s->peer_addr, left);
        close_after_reply(s);
        return;
    }
    if (s->srv->shutting) {
        say(s, "-ERR [SYS/TEMP] Server shutting down");
        close_after_reply(s);
        return;
    }
    if (s->srv->p.apop)
        apop_timestamp(s);
    if (s->apop_ts[0])
        say(s, "+OK %s %s", s->srv->banner, s->apop_ts);
    else
        say(s, "+OK %s", s->srv->banner);
    s->state = P_AUTHZ;
    read_on(s);
}

static int start_failed(struct pop3_server *srv, int fd, void (*on_close)(void *), void *arg)
{
    log_err("pop3: cannot start a session: out of memory");
    close(fd);
    if (on_close)
        on_close(arg);
    (void)srv;
    return -1;
}

int pop3_session_start(struct pop3_server *srv, int fd, int implicit_tls,
                       const struct sockaddr *peer, socklen_t peerlen,
                       void (*on_close)(void *arg), void *close_arg)
{
    struct psess *s = calloc(1, sizeof *s);
    if (!s)
        return start_failed(srv, fd, on_close, close_arg);
    s->srv = srv;
    s->lockfd = -1;
    if (peer && peerlen <= sizeof s->peer) {
        memcpy(&s->peer, peer, peerlen);
        ip_to_string(peer, s->peer_addr, sizeof s->peer_addr);
    } else {
        snprintf(s->peer_addr, sizeof s->peer_addr, "unknown");
    }
    line_reader_init(&s->lr, POP3_LINE_MAX);
    struct conn_limits lim = {
        .input_max = POP3_PIPELINE * POP3_LINE_MAX,
        .output_high = POP3_OUTPUT_HIGH,
        .read_max = 64 * 1024,
        .timeout_ms = (int)(srv->p.timeout * 1000),
    };
    s->c = conn_new(srv->base, fd, &lim, on_conn, s);
    if (!s->c) {
        free(s);
        return start_failed(srv, fd, on_close, close_arg);
    }
    s->gen = srv->ops.gen_ref(srv->ops.ctx);
    s->on_close = on_close;
    s->close_arg = close_arg;
    sess_table_add(&srv->sessions, &s->link, s);
    if (implicit_tls) {
        SSL_CTX *ctx = tls_ctx(s);
        if (!ctx || conn_starttls(s->c, ctx, 1, NULL) < 0) {
            log_err("pop3: no TLS for the pop3s session of %s: closed", s->peer_addr);
            session_free(s);
            return -1;
        }
        s->state = P_TLS;
        return 0;
    }
    start_session_greeting(s);
    return 0;
}

/* ------------------------------------------------------------ server */

static int set_strings(struct pop3_server *srv, const struct pop3_server_params *p)
{
    char *h = strdup(p->myhostname ? p->myhostname : "localhost");
    char *b = strdup(p->banner ? p->banner : "POP3 ready");
    char *m = strdup(p->mail_root ? p->mail_root : "");
    char err[256];
    struct iplist *pl = iplist_new(p->plaintext_clients, p->nplaintext_clients, err, sizeof err);
    if (!pl && p->nplaintext_clients)
        log_err("pop3: auth_plaintext_clients: %s", err);
    if (!h || !b || !m) {
        free(h);
        free(b);
        free(m);
        iplist_free(pl);
        return -1;
    }
    free(srv->myhostname);
    free(srv->banner);
    free(srv->mail_root);
    iplist_free(srv->plaintext);
    srv->myhostname = h;
    srv->banner = b;
    srv->mail_root = m;
    srv->plaintext = pl;
    return 0;
}

int pop3_server_set_params(struct pop3_server *srv, const struct pop3_server_params *p)
{
    if (set_strings(srv, p) < 0)
        return -1;
    srv->p = *p;
    srv->p.myhostname = srv->myhostname;
    srv->p.banner = srv->banner;
    srv->p.mail_root = srv->mail_root;
    srv->p.plaintext_clients = NULL;
    srv->p.nplaintext_clients = 0;
    if (srv->p.timeout <= 0)
        srv->p.timeout = 600;
    memset(&srv->sasl, 0, sizeof srv->sasl);
    srv->sasl.hostname = srv->myhostname;
    srv->sasl.final_as_challenge = 1;     /* SCRAM's server-final as a "+ " line */
    return 0;
}

struct pop3_server *pop3_server_new(struct event_base *base, const struct pop3_server_ops *ops,
                                    const struct pop3_server_params *p)
{
    struct pop3_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return NULL;
    srv->base = base;
    srv->ops = *ops;
    if (pop3_server_set_params(srv, p) < 0) {
        free(srv);
        return NULL;
    }
    return srv;
}

size_t pop3_server_sessions(const struct pop3_server *srv)
{
    return srv ? srv->sessions.n : 0;
}

size_t pop3_server_busy(const struct pop3_server *srv)
{
    return srv ? srv->nbusy_jobs : 0;
}

static void shutdown_one(void *owner, void *arg)
{
    struct psess *s = owner;
    (void)arg;
    s->shutting = 1;
    if (s->state == P_AUTHZ || s->state == P_TRANS) {
        say(s, "-ERR [SYS/TEMP] Server shutting down");
        close_after_reply(s);
    }
}

void pop3_server_shutdown(struct pop3_server *srv)
{
    if (!srv)
        return;
    srv->shutting = 1;
    sess_table_each(&srv->sessions, shutdown_one, NULL);
}

void pop3_server_free(struct pop3_server *srv)
{
    if (!srv)
        return;
    for (struct psess *s; (s = sess_table_any(&srv->sessions));)
        session_free(s);
    for (size_t b = 0; b < POP3_LOCK_BUCKETS; b++)
        while (srv->locks[b]) {
            struct lock_ent *e = srv->locks[b];
            srv->locks[b] = e->next;
            free(e->folder);
            free(e);
        }
    free(srv->myhostname);
    free(srv->banner);
    free(srv->mail_root);
    iplist_free(srv->plaintext);
    free(srv);
}
