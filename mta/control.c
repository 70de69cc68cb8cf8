/*
 * mta/control.c — the control socket (mta/control.h has the protocol):
 * accepts local connections, reads one command line, and either hands the
 * connection to the SMTP server as a local submission or answers RELOAD,
 * QUEUE LIST [JSON], QUEUE FLUSH [DOMAIN], and the operator's queue verbs
 * (SHOW, HOLD, RELEASE, DELETE, REQUEUE through the scheduler's hooks).
 * The caller's uid comes from SO_PEERCRED; RELOAD, AUTH and the queue
 * verbs that change something are for root and run_user only.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "auth/throttle.h"
#include "lib/log.h"
#include "lib/timeutil.h"
#include "mta/control.h"
#include "mta/daemon.h"
#include "mta/pickup.h"
#include "proto/smtp_server.h"
#include "queue/listing.h"
#include "queue/scheduler.h"

#define CONTROL_TIMEOUT 30

struct ctl_conn;

struct control {
    struct hatod *d;
    struct evconnlistener *ev;
    struct ctl_conn *waiting;    /* RELOAD callers waiting for their reload */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

struct lockout_out {
    FILE *f;
    long long now;
};

struct ctl_conn {
    struct control *c;
    struct bufferevent *bev;
    uid_t uid;
    unsigned long reload_gen;    /* waiting for this reload; 0 = not waiting */
    int half_closed;             /* answer sent and SHUT_WR done */
    struct ctl_conn *next;
};

struct list_acc {
    struct queue_item *items;
    size_t n, cap;
};

static void conn_free(struct ctl_conn *cc)
{
    for (struct ctl_conn **pp = &cc->c->waiting; *pp; pp = &(*pp)->next)
        if (*pp == cc) {
            *pp = cc->next;
            break;
        }
    bufferevent_free(cc->bev);
    free(cc);
}

/* The answer is written: half-close, and free when the client closes (its
 * EOF or the timeout).  Closing at once with input unread would make the
 * kernel reset the connection, and the client could lose the answer. */
static void on_flushed(struct bufferevent *bev, void *arg)
{
    struct ctl_conn *cc = arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) != 0 || cc->half_closed)
        return;
    cc->half_closed = 1;
    if (shutdown(bufferevent_getfd(bev), SHUT_WR) < 0)
        conn_free(cc);
}

/* After the answer: whatever else the client sends is dropped. */
static void on_discard(struct bufferevent *bev, void *arg)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
}

static void on_conn_event(struct bufferevent *bev, short what, void *arg)
{
    conn_free(arg);
}

/* Send the answer and close once it is written. */
static void answer(struct ctl_conn *cc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void answer(struct ctl_conn *cc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(bufferevent_get_output(cc->bev), fmt, ap);
    va_end(ap);
    evbuffer_drain(bufferevent_get_input(cc->bev), evbuffer_get_length(bufferevent_get_input(cc->bev)));
    bufferevent_setcb(cc->bev, on_discard, on_flushed, on_conn_event, cc);
    bufferevent_enable(cc->bev, EV_READ | EV_WRITE);
}

static void collect(void *arg, const struct envelope *env, int state)
{
    struct list_acc *acc = arg;
    if (acc->n == acc->cap) {
        size_t cap = acc->cap ? acc->cap * 2 : 64;
        void *p = realloc(acc->items, cap * sizeof *acc->items);
        if (!p)
            return;
        acc->items = p;
        acc->cap = cap;
    }
    acc->items[acc->n].env = env;
    acc->items[acc->n].active = (state & SCHED_ACTIVE) != 0;
    acc->items[acc->n].held = (state & SCHED_HELD) != 0;
    acc->n++;
}

static int by_id(const void *a, const void *b)
{
    const struct queue_item *x = a, *y = b;
    return strcmp(x->env->id, y->env->id);
}

static void queue_list(struct ctl_conn *cc, int json)
{
    struct list_acc acc = { 0 };
    char *text = NULL;
    size_t len = 0;
    sched_foreach(cc->c->d->sched, collect, &acc);
    if (acc.n > 1)
        qsort(acc.items, acc.n, sizeof *acc.items, by_id);
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        free(acc.items);
        answer(cc, "ERR out of memory\n");
        return;
    }
    if (json)
        queue_listing_json(f, acc.items, acc.n);
    else
        queue_listing_text(f, acc.items, acc.n);
    fclose(f);
    free(acc.items);
    answer(cc, "OK\n%s", text ? text : "");
    free(text);
}

static int may_reload(const struct ctl_conn *cc)
{
    return cc->uid == 0 || cc->uid == cc->c->d->run_uid || cc->uid == geteuid();
}

static void print_lockout(void *arg, const struct throttle_entry *e)
{
    struct lockout_out *o = arg;
    fprintf(o->f, "%s %d %lld\n", e->key, e->failures, e->locked_until - o->now);
}

/* AUTH LOCKOUTS / AUTH UNLOCK IP (the login-failure table, auth/throttle.h). */
static void auth_command(struct ctl_conn *cc, const char *rest)
{
    struct throttle *t = cc->c->d->throttle;
    long long now = time_mono_us() / 1000000;
    if (!t) {
        answer(cc, "ERR not available\n");
        return;
    }
    if (!strcasecmp(rest, "LOCKOUTS")) {
        char *text = NULL;
        size_t len = 0;
        struct lockout_out o = { open_memstream(&text, &len), now };
        if (!o.f) {
            answer(cc, "ERR out of memory\n");
            return;
        }
        throttle_list(t, now, print_lockout, &o);
        fclose(o.f);
        answer(cc, "OK\n%s", text ? text : "");
        free(text);
        return;
    }
    if (!strncasecmp(rest, "UNLOCK ", 7)) {
        char key[THROTTLE_KEY_MAX];
        if (throttle_key_text(t, rest + 7, key, sizeof key) < 0) {
            answer(cc, "ERR not an IP address\n");
            return;
        }
        if (throttle_unlock(t, key, now) < 0) {
            answer(cc, "ERR %s is not locked out\n", key);
            return;
        }
        log_info("auth lockout of %s lifted by uid %u", key, (unsigned)cc->uid);
        answer(cc, "OK\n");
        return;
    }
    answer(cc, "ERR unknown command\n");
}

/* ---- the operator's queue verbs (hatoctl queue ...) ---------------- */

static const char *rcpt_status(enum rcpt_state st)
{
    switch (st) {
    case RCPT_SENT: return "sent";
    case RCPT_BOUNCED: return "bounced (notice pending)";
    case RCPT_DONE: return "bounced";
    default: return "pending";
    }
}

static void show_time(FILE *f, const char *label, long long t)
{
    char buf[64];
    time_t tt = (time_t)t;
    struct tm tm;
    if (t <= 0 || !gmtime_r(&tt, &tm) || !strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm))
        return;
    fprintf(f, "%s: %s (%lld)\n", label, buf, t);
}

static void show_rcpt(FILE *f, const struct env_rcpt *r)
{
    fprintf(f, "recipient: %s\n  status: %s\n", r->addr, rcpt_status(r->state));
    if (r->orcpt && *r->orcpt && strcmp(r->orcpt, r->addr))
        fprintf(f, "  original: %s\n", r->orcpt);
    if (r->dsn_orcpt && *r->dsn_orcpt)
        fprintf(f, "  orcpt: %s\n", r->dsn_orcpt);
    if ((r->dsn && *r->dsn) || (r->text && *r->text))
        fprintf(f, "  last reply: %s %s\n", r->dsn ? r->dsn : "", r->text ? r->text : "");
    fprintf(f, "  host: %s\n", r->remote && *r->remote ? r->remote : "local");
    fprintf(f, "  tls: %s\n", r->tls && *r->tls ? r->tls : "none");
    fprintf(f, "  attempts: %d\n", r->attempts);
    show_time(f, "  last attempt", r->last_try);
    if (r->notify)
        fprintf(f, "  notify: %s%s%s%s\n", r->notify & ENV_N_NEVER ? "NEVER" : "",
                r->notify & ENV_N_SUCCESS ? "SUCCESS " : "", r->notify & ENV_N_FAILURE ? "FAILURE " : "",
                r->notify & ENV_N_DELAY ? "DELAY" : "");
}

/* QUEUE SHOW ID: the envelope, one block per recipient (hatoctl adds the
 * message's headers, read from the queue directory). */
static void queue_show(struct ctl_conn *cc, const char *id)
{
    int state = 0;
    long long due = 0;
    const struct envelope *e = sched_find(cc->c->d->sched, id, &state, &due);
    char *text = NULL;
    size_t len = 0;
    if (!e) {
        answer(cc, "ERR no such message: %s\n", id);
        return;
    }
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        answer(cc, "ERR out of memory\n");
        return;
    }
    fprintf(f, "queue id: %s\nqueue: %s\nsender: <%s>\n", e->id,
            state & SCHED_HELD ? "hold" : state & SCHED_ACTIVE ? "active" : "deferred", e->sender);
    show_time(f, "arrival", e->arrival_us / 1000000);
    fprintf(f, "size: %lld\nclient: %s (helo %s), %s\nattempts: %d\n", e->size, e->client,
            e->helo && *e->helo ? e->helo : "none", e->proto, e->attempts);
    if (state & SCHED_HELD)
        fprintf(f, "next attempt: none (on hold)\n");
    else if (state & SCHED_ACTIVE)
        fprintf(f, "next attempt: now (being delivered)\n");
    else
        show_time(f, "next attempt", due > 0 ? due : e->next_try);
    if (e->ret || (e->envid && *e->envid))
        fprintf(f, "dsn: ret=%s envid=%s\n", e->ret == ENV_RET_FULL ? "FULL" :
                e->ret == ENV_RET_HDRS ? "HDRS" : "-", e->envid && *e->envid ? e->envid : "-");
    if (e->flags & (ENV_F_SMTPUTF8 | ENV_F_BOUNCE))
        fprintf(f, "flags:%s%s\n", e->flags & ENV_F_SMTPUTF8 ? " SMTPUTF8" : "",
                e->flags & ENV_F_BOUNCE ? " NOTIFICATION" : "");
    for (size_t i = 0; i < e->nrcpt; i++)
        show_rcpt(f, &e->rcpts[i]);
    fclose(f);
    answer(cc, "OK\n%s", text ? text : "");
    free(text);
}

enum qverb { QV_HOLD, QV_RELEASE, QV_DELETE, QV_REQUEUE };

static int qverb_apply(struct scheduler *s, enum qverb v, const char *id)
{
    switch (v) {
    case QV_HOLD: return sched_hold(s, id);
    case QV_RELEASE: return sched_release(s, id);
    case QV_DELETE: return sched_delete(s, id);
    default: return sched_requeue(s, id);
    }
}

struct id_acc {
    char (*ids)[QID_LEN + 1];
    size_t n, cap;
    const char *from, *to;       /* DELETE FROM addr / TO domain; NULL = all */
};

static int rcpt_in_domain(const struct envelope *e, const char *domain)
{
    for (size_t i = 0; i < e->nrcpt; i++) {
        const char *at = strrchr(e->rcpts[i].addr, '@');
        if (e->rcpts[i].state == RCPT_PENDING && at && !strcasecmp(at + 1, domain))
            return 1;
    }
    return 0;
}

static void collect_id(void *arg, const struct envelope *e, int state)
{
    struct id_acc *a = arg;
    (void)state;
    if ((a->from && strcasecmp(e->sender, a->from)) || (a->to && !rcpt_in_domain(e, a->to)))
        return;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        void *p = realloc(a->ids, cap * sizeof *a->ids);
        if (!p)
            return;
        a->ids = p;
        a->cap = cap;
    }
    memcpy(a->ids[a->n++], e->id, QID_LEN + 1);
}

static const char *qverb_done(enum qverb v, int rc)
{
    static const char *const now[] = { "placed on hold", "released", "deleted", "requeued" };
    static const char *const later[] = { "placed on hold when its delivery attempt ends",
                                         "released", "deleted when its delivery attempt ends",
                                         "being delivered now" };
    return rc == 1 ? later[v] : now[v];
}

/* QUEUE HOLD|RELEASE|DELETE|REQUEUE ID | ALL | FROM addr | TO domain. */
static void queue_verb(struct ctl_conn *cc, enum qverb v, const char *arg)
{
    struct scheduler *s = cc->c->d->sched;
    struct id_acc a = { 0 };
    if (!strncasecmp(arg, "FROM ", 5) && v == QV_DELETE)
        a.from = arg + 5;
    else if (!strncasecmp(arg, "TO ", 3) && v == QV_DELETE)
        a.to = arg + 3;
    else if (strcasecmp(arg, "ALL")) {
        int rc = qid_valid(arg) ? qverb_apply(s, v, arg) : -1;
        if (rc == -1)
            answer(cc, "ERR no such message: %s\n", arg);
        else if (rc < -1)
            answer(cc, "ERR %s: cannot start (see the log)\n", arg);
        else {
            log_info("%s: %s by uid %u", arg, qverb_done(v, rc), (unsigned)cc->uid);
            answer(cc, "OK\n%s: %s\n", arg, qverb_done(v, rc));
        }
        return;
    }
    sched_foreach(s, collect_id, &a);
    size_t done = 0;
    for (size_t i = 0; i < a.n; i++)
        if (qverb_apply(s, v, a.ids[i]) >= 0)
            done++;
    free(a.ids);
    log_info("queue: %zu message(s) %s by uid %u", done, qverb_done(v, 0), (unsigned)cc->uid);
    answer(cc, "OK\n%zu message(s) %s\n", done, qverb_done(v, 0));
}

/* "QUEUE ..." after LIST: 1 when it was one of the operator's verbs. */
static int queue_command(struct ctl_conn *cc, const char *rest)
{
    static const struct { const char *name; enum qverb v; } verbs[] = {
        { "HOLD ", QV_HOLD }, { "RELEASE ", QV_RELEASE }, { "DELETE ", QV_DELETE },
        { "REQUEUE ", QV_REQUEUE },
    };
    if (!strncasecmp(rest, "SHOW ", 5)) {
        queue_show(cc, rest + 5);
        return 1;
    }
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        size_t n = strlen(verbs[i].name);
        if (strncasecmp(rest, verbs[i].name, n))
            continue;
        if (!may_reload(cc))
            answer(cc, "ERR permission denied\n");
        else
            queue_verb(cc, verbs[i].v, rest + n);
        return 1;
    }
    if (!strncasecmp(rest, "FLUSH ", 6)) {
        sched_flush_domain(cc->c->d->sched, rest + 6);
        answer(cc, "OK\n");
        return 1;
    }
    return 0;
}

static void run_command(struct ctl_conn *cc, const char *line)
{
    struct hatod *d = cc->c->d;
    if (!strcasecmp(line, "SMTP")) {
        /* the session takes the socket and whatever followed this line */
        struct bufferevent *bev = cc->bev;
        int fd = bufferevent_getfd(bev);
        struct evbuffer *pending = evbuffer_new();
        uid_t uid = cc->uid;
        free(cc);
        if (!pending || evbuffer_add_buffer(pending, bufferevent_get_input(bev)) < 0) {
            if (pending)
                evbuffer_free(pending);
            bufferevent_free(bev);      /* closes fd */
            return;
        }
        bufferevent_setfd(bev, -1);     /* so that freeing it keeps fd open */
        bufferevent_free(bev);
        smtp_session_start(d->smtp, fd, pending, SMTP_MODE_LOCAL, NULL, 0, uid, NULL, NULL);
        evbuffer_free(pending);
        return;
    }
    if (!strcasecmp(line, "RELOAD")) {
        if (!may_reload(cc)) {
            answer(cc, "ERR permission denied\n");
            return;
        }
        cc->reload_gen = daemon_reload(d);
        if (!cc->reload_gen) {
            answer(cc, "ERR cannot reload now\n");
            return;
        }
        bufferevent_disable(cc->bev, EV_READ);     /* answered by control_reloaded */
        cc->next = cc->c->waiting;
        cc->c->waiting = cc;
        return;
    }
    if (!strcasecmp(line, "QUEUE LIST") || !strcasecmp(line, "QUEUE LIST JSON")) {
        queue_list(cc, strlen(line) > 10);
        return;
    }
    if (!strncasecmp(line, "AUTH ", 5)) {
        if (!may_reload(cc)) {
            answer(cc, "ERR permission denied\n");
            return;
        }
        auth_command(cc, line + 5);
        return;
    }
    if (!strcasecmp(line, "QUEUE FLUSH")) {
        pickup_scan(d->pickup);
        sched_flush(d->sched);
        answer(cc, "OK\n");
        return;
    }
    if (!strncasecmp(line, "QUEUE ", 6) && queue_command(cc, line + 6))
        return;
    answer(cc, "ERR unknown command\n");
}

static void on_conn_read(struct bufferevent *bev, void *arg)
{
    struct ctl_conn *cc = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n;
    char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
    if (!line) {
        if (evbuffer_get_length(in) > CONTROL_LINE_MAX)
            answer(cc, "ERR line too long\n");
        return;
    }
    run_command(cc, line);
    free(line);
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct control *c = arg;
    struct ucred cred;
    socklen_t len = sizeof cred;
    struct ctl_conn *cc = calloc(1, sizeof *cc);
    if (!cc || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        free(cc);
        close(fd);
        return;
    }
    cc->c = c;
    cc->uid = cred.uid;
    cc->bev = bufferevent_socket_new(c->d->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!cc->bev) {
        free(cc);
        close(fd);
        return;
    }
    struct timeval tv = { CONTROL_TIMEOUT, 0 };
    bufferevent_set_timeouts(cc->bev, &tv, &tv);
    bufferevent_setwatermark(cc->bev, EV_READ, 0, CONTROL_LINE_MAX * 4);
    bufferevent_setcb(cc->bev, on_conn_read, NULL, on_conn_event, cc);
    bufferevent_enable(cc->bev, EV_READ | EV_WRITE);
}

struct control *control_open(struct hatod *d)
{
    struct control *c = calloc(1, sizeof *c);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (!c)
        return NULL;
    c->d = d;
    int n = snprintf(c->path, sizeof c->path, "%s/%s", d->cfg.state_directory, CONTROL_SOCKET_NAME);
    if (n < 0 || (size_t)n >= sizeof c->path) {
        log_err("control socket path too long under %s", d->cfg.state_directory);
        free(c);
        return NULL;
    }
    memcpy(sun.sun_path, c->path, (size_t)n + 1);
    unlink(c->path);
    c->ev = evconnlistener_new_bind(d->base, on_accept, c,
                                    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 128,
                                    (struct sockaddr *)&sun, sizeof sun);
    if (!c->ev) {
        log_err("cannot listen on %s: %s", c->path, strerror(errno));
        free(c);
        return NULL;
    }
    if (chmod(c->path, 0666) < 0 ||
        (d->run_uid != getuid() && chown(c->path, d->run_uid, (gid_t)-1) < 0))
        log_warn("%s: cannot set the owner or mode: %s", c->path, strerror(errno));
    return c;
}

void control_reloaded(struct control *c, unsigned long gen, int ok, const char *err)
{
    if (!c)
        return;
    struct ctl_conn **pp = &c->waiting;
    while (*pp) {
        struct ctl_conn *cc = *pp;
        if (cc->reload_gen > gen) {
            pp = &cc->next;
            continue;
        }
        *pp = cc->next;
        cc->next = NULL;
        if (ok)
            answer(cc, "OK\n");
        else
            answer(cc, "ERR %s\n", err);
    }
}

void control_disable(struct control *c)
{
    if (c)
        evconnlistener_disable(c->ev);
}

void control_free(struct control *c)
{
    if (!c)
        return;
    evconnlistener_free(c->ev);
    unlink(c->path);
    free(c);
}
