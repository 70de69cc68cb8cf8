/*
 * t/integ/shims/fail_add_cb.c — LD_PRELOAD shim for hatod: the first
 * $HATO_SHIM_FAIL_ADD_CB calls of libevent's evbuffer_add_cb() made by
 * hatod itself fail (return NULL, as when out of memory); libevent's own
 * calls (bufferevent_socket_new adds one) and every later call go to
 * libevent.  hatod's first call for a connection is in conn_new()
 * (proto/conn.c), which then fails, so on an SMTP connection this forces
 * that many failed session starts.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

typedef struct evbuffer_cb_entry *(*add_cb_fn)(struct evbuffer *, evbuffer_cb_func, void *);

/* 1 if the code at addr belongs to libevent. */
static int from_libevent(void *addr)
{
    Dl_info info;
    return dladdr(addr, &info) && info.dli_fname && strstr(info.dli_fname, "libevent");
}

struct evbuffer_cb_entry *evbuffer_add_cb(struct evbuffer *buf, evbuffer_cb_func cb, void *arg)
{
    static int left = -1;
    static add_cb_fn real;

    if (left < 0) {
        const char *n = getenv("HATO_SHIM_FAIL_ADD_CB");
        left = n ? atoi(n) : 0;
    }
    if (left > 0 && !from_libevent(__builtin_return_address(0))) {
        left--;
        return NULL;
    }
    if (!real)
        real = (add_cb_fn)dlsym(RTLD_NEXT, "evbuffer_add_cb");
    return real ? real(buf, cb, arg) : NULL;
}
