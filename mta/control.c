/*
 * mta/control.c — the control socket (mta/control.h has the protocol):
 * accepts local connections, reads one command line, and either hands the
 * connection to the SMTP server as a local submission or answers RELOAD,
 * QUEUE LIST [JSON] and QUEUE FLUSH.  The caller's uid comes from
 * SO_PEERCRED; RELOAD is for root and run_user only.
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

static void collect(void *arg, const struct envelope *env, int active)
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
    acc->items[acc->n].active = active;
    acc->items[acc->n].held = 0;
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
